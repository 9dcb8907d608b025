"""Restoring a Pillow image: modes and alpha, the tables to use, the info a result keeps.

:func:`restore` is what every face that holds Pillow images calls (the :class:`QGCNRestore`
filter, ``jpeg-restore``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from .consistency import Coefficients
from .engine import Engine
from .errors import RestoreError
from .jpeg import JpegFacts, facts_from_image
from .options import DEFAULTS, RestoreOptions
from .table_sources import coefficients_for, find_tables, is_jpeg_file

#: Modes restored, and the mode the network sees (alpha is kept aside exactly).
MODES = {"L": "L", "RGB": "RGB", "LA": "L", "RGBA": "RGB"}
#: Image info a restored image keeps.
KEPT_INFO = ("icc_profile", "exif", "dpi")
#: What ``info["jpeg_restore"]["coefficients"]`` says, by whether the file's own were read.
COEFFICIENT_SOURCES = {True: "read from the file", False: "estimated from the pixels"}


def _source(img) -> str:
    return str(getattr(img, "filename", "") or "<image>")


def _check_tables_arguments(quantization, quality) -> None:
    """One-line errors naming the parameter, before anything deep inside fails on it."""
    if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100):
        raise RestoreError(f"quality must be a whole number in 1..100, got {quality!r}")
    if quantization is not None and not isinstance(quantization, (JpegFacts, dict, list, tuple)):
        hint = f"; for a quality factor pass quality={quantization}" if isinstance(quantization, int) else ""
        raise TypeError(f"quantization must be JpegFacts, Pillow's {{0: luma, 1: chroma}} dict or 64-value tables, "
                        f"not {type(quantization).__name__}{hint}")


def _array_image(pixels: np.ndarray) -> Image.Image:
    if pixels.dtype != np.uint8 or not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))):
        raise RestoreError(f"restore() takes uint8 arrays of shape H×W, H×W×3 or H×W×4, got {pixels.dtype} "
                         f"{pixels.shape}")
    return Image.fromarray(pixels)


def _open(path) -> Image.Image:
    try:
        im = Image.open(path)
        im.load()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise RestoreError(f"{path}: not an image file Pillow can read ({exc})") from None
    return im


def restore(img, *, model: str | None = DEFAULTS.model, device: str | None = DEFAULTS.device,
            tile: int = DEFAULTS.tile, overlap: int | None = DEFAULTS.overlap, threads: int | None = DEFAULTS.threads,
            precision: str = DEFAULTS.precision, strength: float = DEFAULTS.strength,
            consistency: str | float = DEFAULTS.consistency, quantization=None, quality: int | None = None,
            subsampling: str | None = None, coefficients: Coefficients | None = None,
            progress: Callable[[int, int], None] | None = None, cancel: Callable[[], bool] | None = None,
            options: RestoreOptions | None = None):
    """Remove JPEG artifacts from an image; returns a new one of the same size and mode.

    ``img``: a Pillow image, a path to an image file (opened here: a JPEG keeps its own tables and
    coefficients; a Pillow image comes back), or a uint8 NumPy array (H×W, H×W×3 or H×W×4; an array
    of the same shape comes back). A palette image is restored as RGB (RGBA with transparency).

    ``model``: None (the shipped model for the image's mode), a shipped name or a path to exported
    weights. ``tile``: window side in pixels (0 = whole image at once); ``overlap``: context on each
    side of a tile (None: the model's own, from its record). ``strength`` scales the quantization
    maps the network sees: > 1 removes more (as if compressed harder), < 1 less; 1.0 trusts the tables. ``consistency``: "auto" (the
    default) holds the result to the file's quantization intervals with the model's own α, a
    number sets α (0.5: the exact set), "off" skips it (see :mod:`.consistency`). ``options``: a
    :class:`RestoreOptions` to use instead of the keywords before it.

    ``quantization`` (a :class:`JpegFacts`, Pillow's ``{0: luma, 1: chroma}`` dict or 64-value
    tables), ``quality`` (1..100: libjpeg's and Pillow's tables at that quality) and ``subsampling``
    override the tables; else an opened JPEG file's own are used, and
    other images get tables estimated from the pixels (with a
    :class:`~napari_jpeg_restore.table_sources.BlindModeWarning`).
    ``coefficients``: the file's quantized coefficients when ``img`` is not the opened file
    itself (:func:`~napari_jpeg_restore.consistency.read_coefficients`); an opened file's own are
    read from it, other images' are estimated from the pixels.
    ``progress(done, total)`` is called per tile; ``cancel()`` returning True raises
    :class:`RestoreCancelled`. ICC profile, EXIF and dpi are kept; the input is never modified.
    EXIF orientation is not applied: the pixels are restored as stored, on their coding-block grid.
    ``result.info["jpeg_restore"]`` says where the tables came from and, when the result was
    projected, whether the file's own coefficients were read or estimated from the pixels.
    """
    options = options or RestoreOptions(model=model, device=device, tile=tile, overlap=overlap, threads=threads,
                                        precision=precision, strength=strength, consistency=consistency).checked()
    _check_tables_arguments(quantization, quality)
    if isinstance(img, np.ndarray):
        return np.asarray(restore(_array_image(img), quantization=quantization, quality=quality, subsampling=subsampling,
                                  coefficients=coefficients, progress=progress, cancel=cancel, options=options))
    if isinstance(img, (str, os.PathLike)):
        with _open(img) as opened:
            return restore(opened, quantization=quantization, quality=quality, subsampling=subsampling,
                           coefficients=coefficients, progress=progress, cancel=cancel, options=options)
    if not isinstance(img, Image.Image):
        raise TypeError(f"restore() takes a path, a Pillow image or a NumPy array, not {type(img).__name__}")
    if img.mode == "P":  # the rule jpeg-restore follows too
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    source = _source(img)
    if is_jpeg_file(img) and img.mode not in MODES:
        facts_from_image(img)  # names the unsupported JPEG kind (CMYK, YCCK)
    if img.mode not in MODES:
        raise RestoreError(f"{source}: mode {img.mode} is not supported; use L, LA, RGB or RGBA")
    base = img.convert(MODES[img.mode]) if img.mode != MODES[img.mode] else img
    pixels = np.asarray(base)
    colour = base.mode == "RGB"
    found = find_tables(colour=colour, source=source, quantization=quantization, quality=quality,
                        subsampling=subsampling, image=img, pixels=pixels)
    facts = found.facts
    note: dict[str, object] = {"tables": found.origin}
    if facts is not None:
        engine = Engine.for_kind(options, colour)
        if engine.alpha is not None:
            coefficients = coefficients or coefficients_for(found, pixels.shape)
            note.update(consistency=engine.alpha, coefficients=COEFFICIENT_SOURCES[coefficients is not None])
        pixels = engine.run(pixels, facts, coefficients=coefficients, progress=progress, cancel=cancel)
    result = Image.fromarray(np.ascontiguousarray(pixels), base.mode)
    if img.mode != base.mode:
        result.putalpha(img.getchannel("A"))
    result.info.update({k: img.info[k] for k in KEPT_INFO if k in img.info})
    result.info["jpeg_restore"] = note
    return result
