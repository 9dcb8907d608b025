import numpy as np
import pytest
from PIL import Image

from shared_data import DATA, need


@pytest.fixture(scope="session")
def pool_dir(tmp_path_factory):
    """Five 320×320 crops of WikiPhotos49 images as PNG (the last one is held out)."""
    folder = tmp_path_factory.mktemp("pool")
    for i, src in enumerate(sorted(need(DATA / "WikiPhotos49").glob("*.png"))[:5]):
        with Image.open(src) as im:
            w, h = im.size
            im.convert("RGB").crop((w // 2 - 160, h // 2 - 160, w // 2 + 160, h // 2 + 160)).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="session")
def real_pair():
    from napari_jpeg_restore.engine import Engine  # noqa: F401  (import cost paid once)

    with Image.open(need(DATA / "LIVE1" / "monarch.png")) as im:
        return np.asarray(im.convert("RGB"))
