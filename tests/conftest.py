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


@pytest.fixture(scope="session")
def textured():
    """A real photo (LIVE1 bikes, 768×512): texture everywhere, larger than one 512 tile."""
    return data_image("LIVE1/bikes.png")


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory):
    """Exported weights of untrained tiny QGCN models (colour, gray): they change the image a lot,
    which is what tiling, metadata and mode tests need; never shipped."""
    import torch

    from napari_jpeg_restore.model import build_model, preset
    from napari_jpeg_restore.weights import save_weights

    out = {}
    for colour in (True, False):
        torch.manual_seed(0)
        folder = tmp_path_factory.mktemp("colour" if colour else "gray")
        save_weights(build_model(preset("tiny", colour=colour)), folder, record={"trained": False})
        out["colour" if colour else "gray"] = folder
    return out
