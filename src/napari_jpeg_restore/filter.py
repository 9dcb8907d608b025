"""The Pillow face: :func:`restore` and the :class:`QGCNRestore` image filter."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from .blind import estimate
from .engine import Engine
from .jpeg import JpegFacts, facts_from_image, facts_from_tables
from .weights import cached_model

#: Modes restored, and the mode the network sees (alpha is kept aside exactly).
MODES = {"L": "L", "RGB": "RGB", "LA": "L", "RGBA": "RGB"}
KEPT_INFO = ("icc_profile", "exif", "dpi")


SAMPLE = Path(__file__).parent / "samples" / "chelsea.png"  # CC0, see samples/LICENSE.txt


def sample_jpeg(quality: int = 10) -> Image.Image:
    """The bundled sample photo JPEG-coded by Pillow at ``quality``, opened as a JPEG file."""
    buf = io.BytesIO()
    with Image.open(SAMPLE) as im:
        im.convert("RGB").save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf)


class BlindModeWarning(UserWarning):
    """The tables were estimated from the pixels, or none were found."""


def _source(img) -> str:
    return str(getattr(img, "filename", "") or "<image>")


def image_facts(img, quantization=None, subsampling=None) -> JpegFacts | None:
    """The JPEG facts to restore ``img`` with: given tables, the file's own, or blind estimates.

    ``quantization``: a :class:`JpegFacts`, Pillow's ``{0: luma, 1: chroma}`` dict or a
    sequence of 64-value tables. Returns None when blind mode finds no JPEG quantization.
    """
    colour = MODES[img.mode] == "RGB"
    if isinstance(quantization, JpegFacts):
        return quantization
    if quantization is not None:
        tables = list(quantization.values()) if isinstance(quantization, dict) else list(quantization)
        if not tables:
            raise ValueError(f"{_source(img)}: quantization holds no table")
        chroma = tables[1] if colour and len(tables) > 1 else None
        return facts_from_tables(tables[0], chroma, subsampling or "4:2:0", colour=colour, source=_source(img))
    if getattr(img, "format", None) == "JPEG" and hasattr(img, "layer"):
        return facts_from_image(img)
    warnings.warn(
        f"{_source(img)}: no JPEG tables at hand (not an opened JPEG file, or a filter, which sees only "
        "pixels): estimating them from the pixels. restore(Image.open(path)) or "
        "QGCNRestore.from_image(img) use the file's own tables.",
        BlindModeWarning, stacklevel=3,
    )
    found = estimate(np.asarray(img.convert(MODES[img.mode])), subsampling, _source(img)).facts
    if found is None:
        warnings.warn(f"{_source(img)}: no JPEG quantization found in the pixels; returned unchanged",
                      BlindModeWarning, stacklevel=3)
    return found


def restore(img, *, model=None, device=None, tile: int = 512, progress=None, cancel=None,
            quantization=None, subsampling: str | None = None, threads: int | None = None,
            precision: str = "float32", strength: float = 1.0) -> Image.Image:
    """Remove JPEG artifacts from a Pillow image; returns a new image of the same size and mode.

    ``model``: None (the shipped model for the image's mode), a shipped name or a path to exported
    weights. ``tile``: window side in pixels (0 = whole image at once). ``progress(done, total)``
    is called per tile; ``cancel()`` returning True raises :class:`RestoreCancelled`.
    ``quantization``/``subsampling`` override the tables (see :func:`image_facts`). ``strength``
    scales the quantization maps the network sees: > 1 removes more (as if compressed harder),
    < 1 less; 1.0 trusts the tables. ICC profile,
    EXIF and dpi are kept; the input is never modified. EXIF orientation is not applied: the
    pixels are restored as stored, on their coding-block grid.
    """
    source = _source(img)
    if getattr(img, "format", None) == "JPEG" and img.mode not in MODES:
        facts_from_image(img)  # names the unsupported JPEG kind (CMYK, YCCK)
    if img.mode not in MODES:
        raise ValueError(f"{source}: mode {img.mode} is not supported; use L, LA, RGB or RGBA")
    facts = image_facts(img, quantization, subsampling)
    base = img.convert(MODES[img.mode]) if img.mode != MODES[img.mode] else img
    pixels = np.asarray(base)
    if facts is not None:
        colour = base.mode == "RGB"
        engine = Engine(cached_model(model, colour=colour), device=device, threads=threads, tile=tile,
                        precision=precision)
        pixels = engine.run(pixels, facts, progress=progress, cancel=cancel, strength=strength)
    result = Image.fromarray(np.ascontiguousarray(pixels), base.mode)
    if img.mode != base.mode:
        result.putalpha(img.getchannel("A"))
    result.info.update({k: img.info[k] for k in KEPT_INFO if k in img.info})
    return result


class QGCNRestore(ImageFilter.MultibandFilter):
    """``img.filter(QGCNRestore())``: JPEG artifact removal as a Pillow filter.

    Pillow hands a filter only the pixels, so ``QGCNRestore()`` estimates the tables from them
    (blind mode); ``QGCNRestore.from_image(img)`` carries the file's own tables. Options are
    those of :func:`restore`.
    """

    name = "QGCNRestore"

    def __init__(self, quantization=None, subsampling: str | None = None, **options):
        unknown = set(options) - {"model", "device", "tile", "progress", "cancel", "threads", "precision", "strength"}
        if unknown:
            raise TypeError(f"QGCNRestore got unknown options: {', '.join(sorted(unknown))}")
        self.quantization, self.subsampling, self.options = quantization, subsampling, options

    @classmethod
    def from_image(cls, img, **options) -> "QGCNRestore":
        """A filter that restores with ``img``'s own JPEG tables and sampling."""
        return cls(quantization=facts_from_image(img), **options)

    def filter(self, image):
        img = Image.Image()._new(image)
        return restore(img, quantization=self.quantization, subsampling=self.subsampling, **self.options).im
