"""Restoring napari layer data, free of Qt and napari: the widget's worker runs this.

Stacks (T×H×W or T×H×W×3) are restored frame by frame. The tables come from, in order: a
quality factor the user typed; the layer's metadata (our reader stores the file's facts there);
the file the layer came from (``layer.source.path``, e.g. napari's builtin reader); the pixels
(blind mode). Layers opened upright from an EXIF-rotated file are turned back onto the stored
block grid for restoration and upright again after (the product's orientation rule).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .blind import estimate
from .engine import Engine
from .jpeg import (JpegFacts, exif_orientation, facts_from_dict, facts_from_image, facts_from_tables, ijg_tables,
                   to_stored, to_upright)
from .weights import cached_model

JPEG_SUFFIXES = (".jpg", ".jpeg", ".jfif")


class LayerError(ValueError):
    """Layer data the restorer cannot take; the message says which and why."""


def frame_shape(data: np.ndarray, rgb: bool) -> tuple[int, ...]:
    return data.shape[-3:] if rgb else data.shape[-2:]


def file_facts(path) -> tuple[JpegFacts, int, tuple[int, int]] | None:
    """Facts, EXIF orientation and stored (H, W) of a JPEG file, or None for anything else."""
    if not path or Path(str(path)).suffix.lower() not in JPEG_SUFFIXES or not Path(str(path)).is_file():
        return None
    with Image.open(path) as im:
        if im.format != "JPEG" or im.mode not in ("L", "RGB"):
            return None
        return facts_from_image(im), exif_orientation(im), (im.height, im.width)


def table_source(metadata: dict, source_path, shape: tuple[int, ...], quality: int | None):
    """(facts or None, orientation, description) for a layer; None facts mean: estimate per frame."""
    colour = len(shape) == 3
    if quality is not None:
        luma, chroma = ijg_tables(quality)
        return facts_from_tables(luma, chroma if colour else None, colour=colour, source=f"quality {quality}"), 1, \
            f"IJG tables of quality {quality}"
    if metadata.get("jpeg"):
        return facts_from_dict(metadata["jpeg"]), metadata.get("orientation", 1), "the file's tables (metadata)"
    found = file_facts(source_path)
    if found is not None:
        facts, orientation, stored = found
        # a reader that kept the stored orientation needs no turning
        return facts, (1 if tuple(shape[:2]) == stored else orientation), f"the tables of {source_path}"
    return None, 1, "tables estimated from the pixels"


def restore_layer_data(data, *, rgb: bool, metadata: dict | None = None, source_path=None, quality: int | None = None,
                       model=None, device=None, tile: int = 512, threads: int | None = None, strength: float = 1.0):
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
    facts, orientation, _ = table_source(metadata or {}, source_path, shape, quality)
    engine = Engine(cached_model(model, colour=rgb), device=device, threads=threads, tile=tile)
    stored = [to_stored(f, orientation) for f in frames]
    per_frame = [facts if facts is not None else estimate(f).facts for f in stored]
    counts = [engine.tile_count(f.shape, ff) if ff is not None else 0 for f, ff in zip(stored, per_frame)]
    total, done, out = sum(counts), 0, np.empty_like(frames)
    for i, (frame, ff) in enumerate(zip(stored, per_frame)):
        restored = frame
        if ff is not None:
            steps = engine.steps(frame, ff, strength)
            try:
                while True:
                    k, n = next(steps)
                    if k < n:  # the end of a frame is the start of the next
                        yield done + k, total
            except StopIteration as finished:
                restored = finished.value
            done += counts[i]
        out[i] = to_upright(restored, orientation)
    yield total, total
    return out.reshape(data.shape)
