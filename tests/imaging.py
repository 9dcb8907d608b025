"""Helpers shared by the tests: data paths, in-memory JPEGs, PSNR."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_jpeg_restore.jpeg import encode_jpeg as jpeg  # noqa: F401  (image or array -> opened JPEG)
from qgcn_training.metrics import psnr  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def data_image(name: str, mode: str = "RGB") -> Image.Image:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} not found (tests read ../shared/data beside the repository)")
    with Image.open(path) as im:
        return im.convert(mode)


def assert_same_pixels(a, b) -> None:
    """Tiled and whole-image results agree to one grey level (float rounding at tile edges)."""
    a, b = np.asarray(a, dtype=np.int32), np.asarray(b, dtype=np.int32)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 1, f"max |diff| {np.abs(a - b).max()} at {np.unravel_index(np.abs(a - b).argmax(), a.shape)}"
