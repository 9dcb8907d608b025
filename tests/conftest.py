import pytest

from imaging import data_image


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
