"""RGB <-> YCbCr as JPEG codes it (full-range BT.601): kornia's transform, on [0, 1] tensors for the
network and the projection, and the same transform in NumPy for blind estimation, which must not
need torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where a tensor is made, so that importing this stays light
    from torch import Tensor

# kornia centres chroma on 0.5; JPEG centres it on level 128 of 255.
_CHROMA_SHIFT = 128 / 255 - 0.5


def rgb_to_ycbcr(rgb: "Tensor") -> "Tensor":
    """(…, 3, H, W) RGB in [0, 1] -> Y, Cb, Cr in [0, 1], chroma centred on 128/255 as in JPEG."""
    from kornia.color import rgb_to_ycbcr as _convert

    ycc = _convert(rgb)
    return ycc + ycc.new_tensor([0.0, _CHROMA_SHIFT, _CHROMA_SHIFT])[:, None, None]


def ycbcr_to_rgb(ycc: "Tensor") -> "Tensor":
    """Inverse of :func:`rgb_to_ycbcr`; the result is clipped to [0, 1]."""
    from kornia.color import ycbcr_to_rgb as _convert

    return _convert(ycc - ycc.new_tensor([0.0, _CHROMA_SHIFT, _CHROMA_SHIFT])[:, None, None])


def rgb_to_ycbcr_levels(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB levels 0..255 -> (3, H, W) float64 Y, Cb, Cr levels (no rounding): the same
    transform as :func:`rgb_to_ycbcr` (kornia's: BT.601 luma, chroma as scaled B−Y and R−Y, within
    0.07 levels of JFIF's), written out for NumPy because blind estimation must not need torch."""
    r, g, b = np.moveaxis(np.asarray(rgb, dtype=np.float64), 2, 0)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return np.stack([y, (b - y) * 0.564 + 128.0, (r - y) * 0.713 + 128.0])
