"""Helpers shared by the tests: data paths, in-memory JPEGs, PSNR."""

from pathlib import Path

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
