"""RGB <-> YCbCr as JPEG codes it (full-range BT.601): kornia's transform, on [0, 1] tensors for the
network and the projection, and the same transform in NumPy for blind estimation, which must not
need torch."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where a tensor is made, so that importing this stays light
    from torch import Tensor

# kornia centres chroma on 0.5; JPEG centres it on level 128 of 255.
_CHROMA_SHIFT = 128 / 255 - 0.5


@cache
def _affine() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """kornia's RGB -> YCbCr read off as the affine map it is (its value at black and at the three
    primaries), chroma centred as in JPEG: (matrix, offset, inverse matrix), float64. Each
    conversion is then one matrix product, about five times faster than kornia's pass per term,
    which counts in the projection's colour round trips. The inverse is the exact one (kornia's
    own rounds its constants to three digits: 0.0001 levels apart)."""
    import torch
    from kornia.color import rgb_to_ycbcr as kornia_rgb_to_ycbcr

    points = torch.cat([torch.zeros(1, 3), torch.eye(3)]).double()[:, :, None, None]  # black, R, G, B
    values = kornia_rgb_to_ycbcr(points)[:, :, 0, 0].numpy()
    matrix = np.ascontiguousarray((values[1:] - values[0]).T)  # row-major: BLAS's fast path
    return matrix, values[0] + [0.0, _CHROMA_SHIFT, _CHROMA_SHIFT], np.linalg.inv(matrix)


def _apply(matrix: np.ndarray, image: "Tensor", shift: np.ndarray) -> "Tensor":
    """``matrix`` @ each pixel of ``image`` (…, 3, H, W), plus ``shift``: one product, in the
    image's own precision even under autocast (which would run it in bfloat16: levels off)."""
    import torch

    m = torch.as_tensor(matrix, dtype=image.dtype, device=image.device)
    s = torch.as_tensor(shift, dtype=image.dtype, device=image.device)
    with torch.autocast(image.device.type, enabled=False):
        return (m @ image.flatten(-2)).add_(s[:, None]).unflatten(-1, image.shape[-2:])


def rgb_to_ycbcr(rgb: "Tensor") -> "Tensor":
    """(…, 3, H, W) RGB in [0, 1] -> Y, Cb, Cr in [0, 1], chroma centred on 128/255 as in JPEG."""
    matrix, offset, _ = _affine()
    return _apply(matrix, rgb, offset)


def ycbcr_to_rgb(ycc: "Tensor", clip: bool = True) -> "Tensor":
    """Inverse of :func:`rgb_to_ycbcr`; the result is clipped to [0, 1] unless ``clip`` is False."""
    _, offset, inverse = _affine()
    rgb = _apply(inverse, ycc, -inverse @ offset)
    return rgb.clamp(0, 1) if clip else rgb


def rgb_to_ycbcr_levels(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB levels 0..255 -> (3, H, W) float64 Y, Cb, Cr levels (no rounding): the same
    transform as :func:`rgb_to_ycbcr` (kornia's: BT.601 luma, chroma as scaled B−Y and R−Y, within
    0.07 levels of JFIF's), written out for NumPy because blind estimation must not need torch."""
    r, g, b = np.moveaxis(np.asarray(rgb, dtype=np.float64), 2, 0)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return np.stack([y, (b - y) * 0.564 + 128.0, (r - y) * 0.713 + 128.0])
