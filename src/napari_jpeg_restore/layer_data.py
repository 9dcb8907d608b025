"""Restoring napari layer data, free of Qt and napari: the widget's worker runs this.

Stacks (T×H×W or T×H×W×3) are restored frame by frame, with the tables
:func:`~napari_jpeg_restore.table_sources.find_tables` finds for the layer (a typed quality, the
layer metadata, the file the layer came from, else the pixels of each frame). Layers opened
upright from an EXIF-rotated file are turned back onto the stored block grid for restoration and
upright again after (the product's orientation rule).
"""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from .engine import Engine, drive
from .errors import RestoreError
from .jpeg import BLOCK, to_stored, to_upright
from .options import DEFAULTS, RestoreOptions
from .saving import FORMATS, save_output
from .table_sources import FoundTables, coefficients_for, estimate_tables, find_tables

#: The most pixels a preview restores: a few seconds on a laptop's CPU.
PREVIEW_PIXELS = 1_000_000


class LayerError(RestoreError):
    """Layer data the restorer cannot take; the message says which and why."""


class LayerResult(NamedTuple):
    """What :func:`restore_layer_data` returns: the restored array and where its tables came from
    (for blind frames with the IJG quality found), as said to the user."""

    data: np.ndarray
    tables: str


def frame_shape(data: np.ndarray, rgb: bool) -> tuple[int, ...]:
    return data.shape[-3:] if rgb else data.shape[-2:]


def preview_box(shape, corners, max_pixels: int = PREVIEW_PIXELS) -> tuple[int, int, int, int]:
    """The region (y0, y1, x0, x1) of a frame of ``shape`` to preview for a view whose corner
    pixels are ``corners`` ((top, left), (bottom, right), inclusive, as napari's
    ``layer.corner_pixels``): clipped to the frame, edges on the 8×8 block grid, and at most
    ``max_pixels`` around the view's centre."""
    h, w = shape[:2]
    (top, left), (bottom, right) = ((int(a), int(b)) for a, b in corners)
    y0, x0 = max(top, 0) // BLOCK * BLOCK, max(left, 0) // BLOCK * BLOCK
    y1, x1 = min(-(-(bottom + 1) // BLOCK) * BLOCK, h), min(-(-(right + 1) // BLOCK) * BLOCK, w)
    shrink = math.sqrt(max_pixels / max((y1 - y0) * (x1 - x0), 1))
    if shrink < 1:  # keep the view's shape and centre
        hh = max(int((y1 - y0) * shrink) // BLOCK * BLOCK, BLOCK)
        ww = max(int((x1 - x0) * shrink) // BLOCK * BLOCK, BLOCK)
        y0 = max(int((y0 + y1 - hh) / 2) // BLOCK * BLOCK, 0)
        x0 = max(int((x0 + x1 - ww) / 2) // BLOCK * BLOCK, 0)
        y1, x1 = min(y0 + hh, h), min(x0 + ww, w)
    return y0, y1, x0, x1


def _stored_region(region, shape, orientation: int):
    """A box of the upright frame as the box it covers on the stored (block-grid) frame."""
    if region is None or orientation == 1:
        return region
    mask = np.zeros(shape[:2], bool)
    mask[region[0] : region[1], region[2] : region[3]] = True
    stored = to_stored(mask, orientation)
    rows, cols = np.flatnonzero(stored.any(1)), np.flatnonzero(stored.any(0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def frame_tables(data, *, rgb: bool, metadata: dict | None = None, source_path=None,
                 quality: int | None = None) -> list[FoundTables]:
    """The tables each frame of a layer is restored with (see
    :func:`~napari_jpeg_restore.table_sources.find_tables`): a stack our reader opened holds each
    file's facts in ``metadata["frames"]``; other layers have one source for all their frames.
    ``facts`` None: that frame's are estimated from its pixels. Reads only ``data.shape``."""
    shape = frame_shape(data, rgb)
    count = _frame_count(data, rgb)
    files = (metadata or {}).get("frames")
    if files is not None and len(files) == count:
        return [find_tables(colour=rgb, source=m.get("path", "<frame>"), quality=quality, metadata=m, path=m.get("path"),
                            shape=shape) for m in files]
    return [find_tables(colour=rgb, source=str(source_path or "<layer>"), quality=quality, metadata=metadata,
                        path=source_path, shape=shape)] * count


def _frame_count(data, rgb: bool) -> int:
    return math.prod(data.shape[: data.ndim - len(frame_shape(data, rgb))])


def layer_tables(data, **where) -> FoundTables:
    """The first frame's :func:`frame_tables`: what a layer's tables are, said before it runs."""
    return frame_tables(data, **where)[0]


def frame_metadata(metadata: dict, index: int) -> dict:
    """The metadata of frame ``index`` of a layer alone (a preview of the frame on screen)."""
    files = metadata.get("frames")
    return files[index] if files is not None and 0 <= index < len(files) else metadata


def _checked(data, rgb: bool):
    if data.dtype != np.uint8:
        raise LayerError(f"the layer holds {data.dtype} data; only 8-bit (uint8) images come from JPEG files")
    if (rgb and (data.ndim < 3 or data.shape[-1] != 3)) or data.ndim < 2:
        raise LayerError(f"cannot restore a layer of shape {data.shape} (rgb={rgb}); expected H×W[×3] or a stack of them")


class _Frame(NamedTuple):
    """One frame as it is restored: its pixels on the block grid, the tables it is restored with
    (estimated from those pixels where no source had any), and whether its file's exact
    coefficients may be read (the frame is that file)."""

    stored: np.ndarray
    tables: FoundTables
    orientation: int
    own_file: bool

    @classmethod
    def of(cls, pixels: np.ndarray, found: FoundTables, own_file: bool) -> "_Frame":
        stored = to_stored(pixels, found.orientation)
        # no source had tables: the frame's own estimate (the widget shows the origin, so no warning)
        tables = found if found.facts is not None or found.estimated else estimate_tables(stored, warn=False)
        return cls(stored, tables, found.orientation, own_file)

    def restored(self, engine: Engine, box, before: int = 0, of: int | None = None):
        """Generator (as :meth:`Engine.iter_tiles`) returning the frame restored, upright."""
        facts = self.tables.facts
        if facts is None:  # never a JPEG: as it was
            return to_upright(self.stored, self.orientation)
        exact = self.own_file and engine.alpha is not None
        coefficients = coefficients_for(self.tables, self.stored.shape) if exact else None
        out = yield from engine.iter_tiles(self.stored, facts, coefficients=coefficients, before=before, of=of,
                                           region=box)
        return to_upright(out, self.orientation)


def _own_files(sources: list[FoundTables]) -> list[bool]:
    """A file's exact coefficients go to the one frame that is that file, not to every frame of a
    stack that names one source (and only if the file still holds it: coefficients_for)."""
    files = Counter(found.path for found in sources)
    return [found.path is not None and files[found.path] == 1 for found in sources]


def restore_layer_data(data, *, rgb: bool, metadata: dict | None = None, source_path=None,
                       quality: int | None = None, options: RestoreOptions = DEFAULTS, region=None):
    """Generator: yields (tiles done, total tiles) before each tile and once at the end, and
    returns a :class:`LayerResult` (the restored array, same shape, and its tables' origin).
    Closing it (a Stop button) stops between tiles. With ``region`` (y0, y1, x0, x1 of each
    upright frame) only the tiles covering it run: a preview, exactly what the whole run gives
    there (the pixels elsewhere come back as they were).
    """
    data = np.asarray(data)
    _checked(data, rgb)
    shape = frame_shape(data, rgb)
    sources = frame_tables(data, rgb=rgb, metadata=metadata, source_path=source_path, quality=quality)
    engine = Engine.for_kind(options, rgb)
    frames = [_Frame.of(f, found, own) for f, found, own in zip(data.reshape(-1, *shape), sources, _own_files(sources))]
    boxes = [_stored_region(region, shape, f.orientation) for f in frames]
    counts = [engine.tile_count(f.stored.shape, f.tables.facts, box) if f.tables.facts is not None else 0
              for f, box in zip(frames, boxes)]
    done, total, out = 0, sum(counts), np.empty((len(frames), *shape), np.uint8)
    for i, (frame, box) in enumerate(zip(frames, boxes)):
        out[i] = yield from frame.restored(engine, box, before=done, of=total)
        done += counts[i]
    if total == 0:  # no frame had tables to restore with: the end is still reported
        yield 0, 0
    return LayerResult(out.reshape(data.shape), _tables_said([f.tables for f in frames]))


def _frame_restorer(data, *, rgb: bool, metadata: dict | None, source_path, quality: int | None,
                    options: RestoreOptions):
    """``restored(i)``: frame ``i`` of a stack (NumPy or dask, read only when asked) restored with
    its own tables, upright."""
    _checked(data, rgb)
    sources = frame_tables(data, rgb=rgb, metadata=metadata, source_path=source_path, quality=quality)
    engine = Engine.for_kind(options, rgb)
    frames, own = data.reshape(-1, *frame_shape(data, rgb)), _own_files(sources)

    def restored(i: int) -> np.ndarray:
        return drive(_Frame.of(np.asarray(frames[i]), sources[i], own[i]).restored(engine, None), source=f"frame {i}")

    return restored


def restore_lazily(data, *, rgb: bool, metadata: dict | None = None, source_path=None, quality: int | None = None,
                   options: RestoreOptions = DEFAULTS, keep: int = 8):
    """The restored stack as a dask array (the same shape, one task per frame): a frame is read and
    restored only when it is computed — in napari, when it is shown — and the last ``keep``
    restored frames are kept. ``data`` may be a dask array itself (a folder of frames opened lazily)."""
    import dask
    import dask.array as da

    frame = lru_cache(maxsize=keep)(_frame_restorer(data, rgb=rgb, metadata=metadata, source_path=source_path,
                                                    quality=quality, options=options))
    shape = frame_shape(data, rgb)
    lazy = [da.from_delayed(dask.delayed(frame, pure=True)(i), shape, np.uint8) for i in range(_frame_count(data, rgb))]
    return da.stack(lazy).reshape(data.shape)


def save_restored_frames(data, folder, *, rgb: bool, metadata: dict | None = None, source_path=None,
                         quality: int | None = None, options: RestoreOptions = DEFAULTS, fmt: str = "png"):
    """Generator: restores each frame of a stack (NumPy or dask: read one frame at a time) and
    writes it to ``folder`` as a lossless file (named after the frame's JPEG file, or a single
    image's, else ``frame00001``), atomically; yields (frames done, frames) before each frame and
    at the end, and returns the paths written. Closing it (Stop) stops between frames; what was
    written stays. Outputs that exist already are refused before any work (a LayerError naming one)."""
    _checked(data, rgb)
    count = _frame_count(data, rgb)
    files = (metadata or {}).get("frames")
    if files is None and count == 1 and (metadata or {}).get("path"):  # one image from a file
        files = [metadata]
    stems = [Path(m["path"]).stem for m in files] if files is not None and len(files) == count else \
        [f"frame{i + 1:05d}" for i in range(count)]
    targets = [Path(folder) / f"{stem}{FORMATS[fmt][0]}" for stem in stems]
    taken = next((t for t in targets if t.exists()), None)
    if taken is not None or len(set(targets)) < len(targets):
        raise LayerError(f"{taken or folder}: an output exists or two frames share a name; choose an empty folder")
    restored = _frame_restorer(data, rgb=rgb, metadata=metadata, source_path=source_path, quality=quality,
                               options=options)
    for i, target in enumerate(targets):
        yield i, len(targets)
        save_output(Image.fromarray(restored(i)), target, fmt)
    yield len(targets), len(targets)
    return targets


def _tables_said(per_frame: list[FoundTables]) -> str:
    """Where a layer's tables came from, for the user: the one origin all frames share, or a
    summary with the span of IJG qualities the frames' estimates were found to be."""
    origins = {f.origin for f in per_frame}
    if len(origins) == 1:
        return origins.pop()
    qualities = sorted({f.quality for f in per_frame if f.quality is not None})
    span = "" if not qualities else f" (IJG quality {qualities[0]})" if len(qualities) == 1 else \
        f" (IJG quality {qualities[0]}-{qualities[-1]})"
    some = "from each frame's file, else " if any(not f.estimated for f in per_frame) else ""
    return f"tables {some}estimated from each frame's pixels{span}"
