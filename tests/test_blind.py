import numpy as np
import pytest

from imaging import data_image, jpeg
from napari_jpeg_restore.blind import estimate
from napari_jpeg_restore.jpeg import ijg_tables


@pytest.mark.parametrize("name", ["LIVE1/bikes.png", "LIVE1/womanhat.png"])
@pytest.mark.parametrize("quality", [10, 30, 50, 70, 90])
def test_pillow_tables_recovered_exactly(name, quality):
    found = estimate(np.asarray(jpeg(data_image(name), quality=quality)))
    assert found.quality == quality and found.grid_offset == (0, 0)
    luma, chroma = ijg_tables(quality)
    np.testing.assert_array_equal(found.facts.tables[0], luma)
    np.testing.assert_array_equal(found.facts.tables[1], chroma)
    assert found.facts.subsampling == "4:2:0"


def test_grayscale_recovered_with_dc():
    found = estimate(np.asarray(jpeg(data_image("LIVE1/caps.png", "L"), quality=40)))
    assert found.quality == 40 and not found.facts.colour
    assert found.raw_tables[0][0, 0] == ijg_tables(40)[0][0, 0]


@pytest.mark.parametrize("dy, dx", [(1, 0), (0, 3), (5, 7), (7, 2), (4, 4)])
def test_grid_offset_of_crops(dy, dx):
    pixels = np.asarray(jpeg(data_image("LIVE1/parrots.png"), quality=50))[dy:, dx:]
    found = estimate(pixels)
    # block boundaries of the crop lie at -dy, -dx modulo 8
    assert found.grid_offset == ((-dy) % 8, (-dx) % 8)
    assert found.quality == 50


def test_raw_estimates_of_custom_tables():
    rng = np.random.default_rng(3)
    uv = np.add.outer(np.arange(8), np.arange(8))
    luma = np.clip(np.rint(6 + 4 * uv + rng.integers(-2, 3, (8, 8))), 1, 255).astype(int)
    img = jpeg(data_image("LIVE1/bikes.png", "L"), qtables=[luma.ravel().tolist()])
    found = estimate(np.asarray(img))
    assert found.quality is None  # not an IJG table: raw estimates kept
    raw = found.raw_tables[0]
    determined = raw > 0
    assert determined[:4, :4].all()
    np.testing.assert_array_equal(raw[determined], luma[determined])
    np.testing.assert_array_equal(found.facts.tables[0][determined], luma[determined])


@pytest.mark.parametrize("name", ["LIVE1/caps.png", "LIVE1/monarch.png", "Classic5/barbara.png"])
def test_never_a_jpeg(name):
    assert estimate(np.asarray(data_image(name))).facts is None
