"""Restoring napari layer data, free of Qt and napari: the widget's worker runs this.

Stacks (T×H×W or T×H×W×3) are restored frame by frame, with the tables
:func:`~napari_jpeg_restore.table_sources.find_tables` finds for the layer (a typed quality, the
layer metadata, the file the layer came from, else the pixels of each frame). Layers opened
upright from an EXIF-rotated file are turned back onto the stored block grid for restoration and
upright again after (the product's orientation rule).
"""

from __future__ import annotations

import numpy as np

from .engine import Engine
from .jpeg import to_stored, to_upright
from .options import DEFAULTS, RestoreOptions
from .table_sources import estimate_facts, find_tables


class LayerError(ValueError):
    """Layer data the restorer cannot take; the message says which and why."""


def frame_shape(data: np.ndarray, rgb: bool) -> tuple[int, ...]:
    return data.shape[-3:] if rgb else data.shape[-2:]


def restore_layer_data(data, *, rgb: bool, metadata: dict | None = None, source_path=None,
                       quality: int | None = None, options: RestoreOptions = DEFAULTS):
    """Generator: yields (tiles done, total tiles) before each tile and once at the end, and
    returns the restored array (same shape). Closing it (a Stop button) stops between tiles.
    """
    data = np.asarray(data)
    if data.dtype != np.uint8:
        raise LayerError(f"the layer holds {data.dtype} data; only 8-bit (uint8) images come from JPEG files")
    if (rgb and (data.ndim < 3 or data.shape[-1] != 3)) or data.ndim < 2:
        raise LayerError(f"cannot restore a layer of shape {data.shape} (rgb={rgb}); expected H×W[×3] or a stack of them")
    shape = frame_shape(data, rgb)
    frames = data.reshape(-1, *shape)
    found = find_tables(colour=rgb, source=str(source_path or "<layer>"), quality=quality, metadata=metadata,
                        path=source_path, shape=shape)
    engine = Engine.for_kind(options, rgb)
    stored = [to_stored(f, found.orientation) for f in frames]
    facts = [found.facts or estimate_facts(f) for f in stored]
    total = sum(engine.tile_count(f.shape, ff) for f, ff in zip(stored, facts) if ff is not None)
    done, out = 0, np.empty_like(frames)
    for i, (frame, frame_facts) in enumerate(zip(stored, facts)):
        restored = frame
        if frame_facts is not None:
            restored = yield from engine.iter_tiles(frame, frame_facts, before=done, of=total)
            done += engine.tile_count(frame.shape, frame_facts)
        out[i] = to_upright(restored, found.orientation)
    if total == 0:  # no frame had tables to restore with: the end is still reported
        yield 0, 0
    return out.reshape(data.shape)
