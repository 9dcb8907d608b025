"""napari reader for JPEG files that keeps their quantization tables in the layer metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .jpeg import JPEG_SUFFIXES, JpegError, exif_orientation, facts_from_image, facts_to_dict, to_upright


def napari_get_reader(path):
    """The reader for one .jpg/.jpeg/.jfif path (napari may pass a list of one)."""
    if isinstance(path, list):
        path = path[0] if len(path) == 1 else None
    if not isinstance(path, (str, Path)) or Path(path).suffix.lower() not in JPEG_SUFFIXES:
        return None
    return read_jpeg


def jpeg_layer(im: Image.Image, name: str, source: str) -> tuple:
    """(data, kwargs, "image"): the upright pixels, with the file's facts and orientation."""
    orientation = exif_orientation(im)
    metadata: dict = {"orientation": orientation, "path": source}
    try:
        metadata["jpeg"] = facts_to_dict(facts_from_image(im))
    except JpegError:  # e.g. CMYK: shown; restoring it names the problem then
        pass
    stored = im if im.mode in ("L", "RGB") else im.convert("RGB")
    data = to_upright(np.asarray(stored), orientation)  # the product's one orientation rule
    return data, {"name": name, "rgb": data.ndim == 3, "metadata": metadata}, "image"


def read_jpeg(path) -> list[tuple]:
    path = str(path[0] if isinstance(path, list) else path)
    with Image.open(path) as im:
        return [jpeg_layer(im, Path(path).stem, path)]
