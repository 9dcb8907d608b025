"""Guards on the models shipped inside the package: checksums, their recorded gains, tiling."""

import pytest

from imaging import assert_same_pixels, data_image, jpeg, psnr
from napari_jpeg_restore import restore
from napari_jpeg_restore.weights import load_model, shipped_models

SHIPPED = shipped_models()


@pytest.mark.parametrize("name", SHIPPED)
def test_recorded_gains_still_hold(name):
    model = load_model(name, colour=None)  # verifies every file's SHA-256
    record = model.record
    assert record["steps"] > 0 and record["hardware"] and record["data"]
    mode = "RGB" if model.config.colour else "L"
    gains = record["guard"]["gains_db"]
    assert len(gains) == 12
    for key, expected in gains.items():
        image, quality = key.split("@")
        gt = data_image(f"LIVE1/{image}.png", mode)
        coded = jpeg(gt, quality=int(quality))
        got = psnr(restore(coded, model=name), gt) - psnr(coded, gt)
        assert abs(got - expected) <= 0.1, (key, got, expected)


@pytest.mark.parametrize("name", SHIPPED)
def test_tiled_equals_untiled_with_trained_weights(name, textured):
    model = load_model(name, colour=None)
    img = jpeg(textured if model.config.colour else textured.convert("L"), quality=15)
    whole = restore(img, model=name, tile=0)
    assert_same_pixels(restore(img, model=name), whole)
    assert psnr(whole, img) < 60  # the weights do change the image
