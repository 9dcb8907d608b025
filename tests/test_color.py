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


def test_the_matrix_form_is_kornias_transform():
    """Each conversion is one matrix product read off kornia's transform: the same numbers."""
    from kornia.color import rgb_to_ycbcr as kornia_forward
    from kornia.color import ycbcr_to_rgb as kornia_inverse

    centre = torch.tensor([0.0, 128 / 255 - 0.5, 128 / 255 - 0.5])[:, None, None]
    rgb = torch.rand(2, 3, 16, 24, dtype=torch.float64)
    torch.testing.assert_close(rgb_to_ycbcr(rgb), kornia_forward(rgb) + centre, atol=1e-9, rtol=0)
    ycc = rgb_to_ycbcr(rgb) + torch.randn_like(rgb) * 0.1  # some out of range: both clip
    # kornia's inverse rounds its constants to three digits; this one is exact
    torch.testing.assert_close(ycbcr_to_rgb(ycc), kornia_inverse(ycc - centre), atol=0.001 / 255, rtol=0)
    pixels = torch.from_numpy(np.random.default_rng(2).random((16, 24, 3), dtype=np.float32))
    torch.testing.assert_close(rgb_to_ycbcr(pixels.permute(2, 0, 1)), rgb_to_ycbcr(pixels.permute(2, 0, 1).contiguous()))


def test_autocast_leaves_the_conversion_in_float32():
    """Under bfloat16 autocast (the engine's network runs in it) a matrix product would drop to
    bfloat16 and move pixels by levels; the conversion keeps the image's precision."""
    x = torch.rand(3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ycc = rgb_to_ycbcr(x)
        back = ycbcr_to_rgb(ycc)
    assert ycc.dtype == back.dtype == torch.float32
    torch.testing.assert_close(back, x, atol=1e-6, rtol=0)
