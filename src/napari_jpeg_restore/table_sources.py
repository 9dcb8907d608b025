"""Where the quantization tables come from: the one decision every face asks the core for.

One ordered chain, the first source that has tables wins: tables the caller gives, a quality factor
the user typed, the opened JPEG file itself, napari layer metadata (our reader stores the file's
facts there), the file a layer came from, and last the pixels (blind mode, per image or frame, with
a :class:`BlindModeWarning`). The result says which source it was and whether it was estimated.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .consistency import Coefficients, fits, read_coefficients
from .errors import RestoreError
from .jpeg import (
    JPEG_SUFFIXES,
    JpegFacts,
    exif_orientation,
    facts_from_dict,
    facts_from_image,
    facts_from_tables,
    ijg_tables,
)

#: The origin blind mode reports for pixels that show no JPEG quantization (returned unchanged).
NEVER_JPEG = "none: the pixels show no JPEG quantization"


class BlindModeWarning(UserWarning):
    """The tables were estimated from the pixels, or none were found."""


@dataclass(frozen=True)
class FoundTables:
    """The tables to restore with and where they came from (``origin``, said to the user).

    ``facts`` None: no source had tables and the pixels were not given (estimate them per frame
    with :func:`estimate_tables`), or the pixels show no JPEG quantization (``estimated``: never a
    JPEG, nothing to restore). ``orientation``: the EXIF orientation that turns the stored pixels
    upright (1 when the pixels are stored). ``path``: the JPEG file the facts were read from, whose
    quantized coefficients are then the exact ones (:func:`coefficients_for`). ``quality``: the
    IJG quality estimated tables were found to be, if they are of that family."""

    facts: JpegFacts | None
    orientation: int
    origin: str
    path: str | None = None
    estimated: bool = False
    quality: int | None = None


def is_jpeg_file(img) -> bool:
    """An opened Pillow JPEG file, whose tables Pillow read (not a copy or a conversion)."""
    return getattr(img, "format", None) == "JPEG" and hasattr(img, "layer")


def _given(quantization, subsampling, colour: bool, source: str) -> JpegFacts:
    """Facts from a :class:`JpegFacts`, Pillow's ``{0: luma, 1: chroma}`` dict or a sequence
    of 64-value tables."""
    if isinstance(quantization, JpegFacts):
        return quantization
    tables = list(quantization.values()) if isinstance(quantization, dict) else list(quantization)
    if not tables:
        raise RestoreError(f"{source}: quantization holds no table")
    chroma = tables[1] if colour and len(tables) > 1 else None
    return facts_from_tables(tables[0], chroma, subsampling or "4:2:0", colour=colour, source=source)


def _file(path) -> tuple[JpegFacts, int, tuple[int, int]] | None:
    """Facts, EXIF orientation and stored (H, W) of a JPEG file, or None for anything else."""
    if not path or Path(str(path)).suffix.lower() not in JPEG_SUFFIXES or not Path(str(path)).is_file():
        return None
    with Image.open(path) as im:
        if im.format != "JPEG" or im.mode not in ("L", "RGB"):
            return None
        return facts_from_image(im), exif_orientation(im), (im.height, im.width)


def find_tables(*, colour: bool, source: str = "<image>", quantization=None, subsampling: str | None = None,
                quality: int | None = None, image=None, metadata: dict | None = None, path=None,
                shape: tuple[int, ...] | None = None, pixels: np.ndarray | None = None,
                warn: bool = True) -> FoundTables:
    """The tables to restore with, from the first source that has them (see the module doc).

    ``image``: a Pillow image (its own tables if it is an opened JPEG file); ``metadata``,
    ``path`` and ``shape`` (the pixels' (H, W[, 3])) describe a napari layer. ``pixels``: what
    blind mode estimates from when no source has tables (see :func:`estimate_tables`).
    """
    if quantization is not None:
        return FoundTables(_given(quantization, subsampling, colour, source), 1, "the tables given")
    if quality is not None:
        luma, chroma = ijg_tables(quality)
        facts = facts_from_tables(luma, chroma if colour else None, subsampling or "4:2:0", colour=colour,
                                  source=f"{source} at quality {quality}")
        return FoundTables(facts, 1, f"IJG tables of quality {quality}")
    if image is not None and is_jpeg_file(image):
        filename = getattr(image, "filename", "") or None
        return FoundTables(facts_from_image(image), 1, "the file's tables", filename)
    if metadata and metadata.get("jpeg"):
        return FoundTables(facts_from_dict(metadata["jpeg"]), metadata.get("orientation", 1),
                           "the file's tables (layer metadata)", metadata.get("path"))
    found = _file(path)
    if found is not None:
        facts, orientation, stored = found
        # a reader that kept the stored orientation needs no turning
        upright = 1 if shape is not None and tuple(shape[:2]) == stored else orientation
        return FoundTables(facts, upright, f"the tables of {path}", str(path))
    if pixels is None:
        return FoundTables(None, 1, "tables estimated from the pixels")
    return estimate_tables(pixels, subsampling, source, warn=warn)


def estimate_tables(pixels: np.ndarray, subsampling: str | None = None, source: str = "<pixels>", *,
                    warn: bool = True) -> FoundTables:
    """Blind mode, the chain's last source: tables estimated from the pixels, or none when they
    show no JPEG quantization (never a JPEG: nothing to restore). ``warn``: say so with a
    :class:`BlindModeWarning` (a face that shows the origin itself may pass False)."""
    from .blind import estimate

    if warn:
        warnings.warn(f"{source}: no JPEG tables at hand (not an opened JPEG file, or a filter, which sees only "
                      "pixels): estimating them from the pixels. restore(Image.open(path)) or "
                      "QGCNRestore.from_image(img) use the file's own tables.", BlindModeWarning, stacklevel=4)
    found = estimate(pixels, subsampling, source)
    facts = found.facts
    if facts is None:
        if warn:
            warnings.warn(f"{source}: no JPEG quantization found in the pixels; returned unchanged",
                          BlindModeWarning, stacklevel=4)
        return FoundTables(None, 1, NEVER_JPEG, estimated=True)
    quality = f" (IJG quality {found.quality})" if found.quality is not None else ""
    return FoundTables(facts, 1, f"tables estimated from the pixels{quality}", estimated=True, quality=found.quality)


def coefficients_for(found: FoundTables, stored_shape: tuple[int, ...]) -> Coefficients | None:
    """The exact quantized coefficients for pixels of ``stored_shape`` restored with ``found``:
    read from its file when there is one and it still holds this image, else None (the engine
    then estimates them from the pixels)."""
    if found.path is None or found.facts is None or not Path(found.path).is_file():
        return None
    coefficients = read_coefficients(found.path, found.facts)
    if coefficients is None or not fits(coefficients, found.facts, *stored_shape[:2]):
        return None
    return coefficients


