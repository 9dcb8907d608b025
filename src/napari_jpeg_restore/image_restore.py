"""Restoring a Pillow image: modes and alpha, the tables to use, the info a result keeps.

:func:`restore` is what every face that holds Pillow images calls (the :class:`QGCNRestore`
filter, ``jpeg-restore``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from PIL import Image

from .engine import Engine
from .jpeg import facts_from_image
from .options import DEFAULTS, RestoreOptions
from .table_sources import estimate_facts, find_tables, is_jpeg_file

#: Modes restored, and the mode the network sees (alpha is kept aside exactly).
MODES = {"L": "L", "RGB": "RGB", "LA": "L", "RGBA": "RGB"}
#: Image info a restored image keeps.
KEPT_INFO = ("icc_profile", "exif", "dpi")


class BlindModeWarning(UserWarning):
    """The tables were estimated from the pixels, or none were found."""


def _source(img) -> str:
    return str(getattr(img, "filename", "") or "<image>")


def restore(img, *, model: str | None = DEFAULTS.model, device: str | None = DEFAULTS.device,
            tile: int = DEFAULTS.tile, overlap: int = DEFAULTS.overlap, threads: int | None = DEFAULTS.threads,
            precision: str = DEFAULTS.precision, strength: float = DEFAULTS.strength,
            quantization=None, subsampling: str | None = None,
            progress: Callable[[int, int], None] | None = None, cancel: Callable[[], bool] | None = None,
            options: RestoreOptions | None = None) -> Image.Image:
    """Remove JPEG artifacts from a Pillow image; returns a new image of the same size and mode.

    ``model``: None (the shipped model for the image's mode), a shipped name or a path to exported
    weights. ``tile``: window side in pixels (0 = whole image at once); ``overlap``: context on each
    side of a tile. ``strength`` scales the quantization maps the network sees: > 1 removes more
    (as if compressed harder), < 1 less; 1.0 trusts the tables. ``options``: a
    :class:`RestoreOptions` to use instead of the keywords before it.

    ``quantization`` (a :class:`JpegFacts`, Pillow's ``{0: luma, 1: chroma}`` dict or 64-value
    tables) and ``subsampling`` override the tables; else an opened JPEG file's own are used, and
    other images get tables estimated from the pixels (with a :class:`BlindModeWarning`).
    ``progress(done, total)`` is called per tile; ``cancel()`` returning True raises
    :class:`RestoreCancelled`. ICC profile, EXIF and dpi are kept; the input is never modified.
    EXIF orientation is not applied: the pixels are restored as stored, on their coding-block grid.
    """
    options = options or RestoreOptions(model=model, device=device, tile=tile, overlap=overlap, threads=threads,
                                        precision=precision, strength=strength)
    source = _source(img)
    if is_jpeg_file(img) and img.mode not in MODES:
        facts_from_image(img)  # names the unsupported JPEG kind (CMYK, YCCK)
    if img.mode not in MODES:
        raise ValueError(f"{source}: mode {img.mode} is not supported; use L, LA, RGB or RGBA")
    base = img.convert(MODES[img.mode]) if img.mode != MODES[img.mode] else img
    pixels = np.asarray(base)
    colour = base.mode == "RGB"
    facts = find_tables(colour=colour, source=source, quantization=quantization, subsampling=subsampling,
                        image=img).facts
    if facts is None:
        warnings.warn(
            f"{source}: no JPEG tables at hand (not an opened JPEG file, or a filter, which sees only "
            "pixels): estimating them from the pixels. restore(Image.open(path)) or "
            "QGCNRestore.from_image(img) use the file's own tables.",
            BlindModeWarning, stacklevel=2,
        )
        facts = estimate_facts(pixels, subsampling, source)
        if facts is None:
            warnings.warn(f"{source}: no JPEG quantization found in the pixels; returned unchanged",
                          BlindModeWarning, stacklevel=2)
    if facts is not None:
        pixels = Engine.for_kind(options, colour).run(pixels, facts, progress=progress, cancel=cancel)
    result = Image.fromarray(np.ascontiguousarray(pixels), base.mode)
    if img.mode != base.mode:
        result.putalpha(img.getchannel("A"))
    result.info.update({k: img.info[k] for k in KEPT_INFO if k in img.info})
    return result
