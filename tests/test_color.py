import numpy as np
import torch
from PIL import Image

from napari_jpeg_restore.color import rgb_to_ycbcr, rgb_to_ycbcr_levels, ycbcr_to_rgb


def test_kornia_matches_pillow_jpeg_ycbcr_within_one_level():
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rgb[0, :8] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [128, 128, 128]]
    ours = rgb_to_ycbcr(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255).permute(1, 2, 0).numpy() * 255
    pillow = np.asarray(Image.fromarray(rgb).convert("YCbCr")).astype(float)
    assert np.abs(np.round(ours) - pillow).max() <= 1
    r, g, b = rgb.astype(float).transpose(2, 0, 1)
    jfif = np.stack([0.299 * r + 0.587 * g + 0.114 * b,
                     128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
                     128 + 0.5 * r - 0.418688 * g - 0.081312 * b], -1)
    assert np.abs(ours - jfif).max() < 0.1  # JFIF's equations; Pillow truncates, hence ~1 level above


def test_round_trip():
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-5, rtol=0)


def test_the_numpy_form_is_the_same_transform():
    rgb = np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    tensor = rgb_to_ycbcr(torch.from_numpy(rgb).permute(2, 0, 1).double() / 255) * 255
    np.testing.assert_allclose(rgb_to_ycbcr_levels(rgb), tensor.numpy(), atol=1e-9, rtol=0)
