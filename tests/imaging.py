"""Helpers shared by the tests: data paths, in-memory JPEGs, PSNR."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def psnr(a, b) -> float:
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def jpeg(img, **save) -> Image.Image:
    """``img`` (PIL or array) saved as JPEG in memory with Pillow and opened again."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, "JPEG", **save)
    buf.seek(0)
    return Image.open(buf)


def data_image(name: str, mode: str = "RGB") -> Image.Image:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} not found (tests read ../shared/data beside the repository)")
    with Image.open(path) as im:
        return im.convert(mode)
