"""RGB <-> YCbCr as JPEG codes it (JFIF full-range BT.601): kornia on [0, 1] tensors for the
network, and one NumPy form for blind estimation, which must not need torch."""

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


#: JFIF's forward transform (ITU-T T.871), rows Y, Cb, Cr; chroma then offset by 128.
_JFIF = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def rgb_to_ycbcr_levels(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB levels 0..255 -> (3, H, W) float64 Y, Cb, Cr levels as a JPEG encoder
    computes them before the DCT (no rounding)."""
    ycc = np.tensordot(_JFIF, np.asarray(rgb, dtype=np.float64), axes=([1], [2]))
    ycc[1:] += 128.0
    return ycc
