"""RGB <-> YCbCr as JPEG codes it (JFIF full-range BT.601), via kornia, on [0, 1] tensors."""

from __future__ import annotations


def rgb_to_ycbcr(rgb):
    """(…, 3, H, W) RGB in [0, 1] -> Y, Cb, Cr in [0, 1] (chroma centred on 0.5 = level 128)."""
    from kornia.color import rgb_to_ycbcr as _convert

    return _convert(rgb)


def ycbcr_to_rgb(ycc):
    """Inverse of :func:`rgb_to_ycbcr`; the result is clipped to [0, 1]."""
    from kornia.color import ycbcr_to_rgb as _convert

    return _convert(ycc)
