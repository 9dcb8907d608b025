"""Where the quantization tables come from: the one decision every face asks the core for.

In order of precedence: tables the caller gives, a quality factor the user typed, the opened
JPEG file itself, napari layer metadata (our reader stores the file's facts there), the file a
layer came from, and last the pixels (blind mode, per image or frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .consistency import Coefficients, fits, read_coefficients
from .jpeg import (JPEG_SUFFIXES, JpegFacts, exif_orientation, facts_from_dict, facts_from_image,
                   facts_from_tables, ijg_tables)


@dataclass(frozen=True)
class FoundTables:
    """``facts`` None: estimate them from the pixels (:func:`estimate_facts`). ``orientation``:
    the EXIF orientation that turns the stored pixels upright (1 when the pixels are stored).
    ``path``: the JPEG file the facts were read from, whose quantized coefficients are then the
    exact ones (:func:`coefficients_for`); None when the tables came from anywhere else."""

    facts: JpegFacts | None
    orientation: int
    origin: str
    path: str | None = None


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
        raise ValueError(f"{source}: quantization holds no table")
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
                shape: tuple[int, ...] | None = None) -> FoundTables:
    """The tables to restore with, from the first source that has them (see the module doc).

    ``image``: a Pillow image (its own tables if it is an opened JPEG file); ``metadata``,
    ``path`` and ``shape`` (the pixels' (H, W[, 3])) describe a napari layer.
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
    return FoundTables(None, 1, "tables estimated from the pixels")


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


def estimate_facts(pixels: np.ndarray, subsampling: str | None = None, source: str = "<pixels>") -> JpegFacts | None:
    """Blind mode: facts estimated from the pixels, None when they show no JPEG quantization."""
    from .blind import estimate

    return estimate(pixels, subsampling, source).facts
