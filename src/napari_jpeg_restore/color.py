"""RGB <-> YCbCr as JPEG codes it (JFIF full-range BT.601), via kornia, on [0, 1] tensors."""

from __future__ import annotations

# kornia centres chroma on 0.5; JPEG centres it on level 128 of 255.
_CHROMA_SHIFT = 128 / 255 - 0.5


def rgb_to_ycbcr(rgb):
    """(…, 3, H, W) RGB in [0, 1] -> Y, Cb, Cr in [0, 1], chroma centred on 128/255 as in JPEG."""
    from kornia.color import rgb_to_ycbcr as _convert

    ycc = _convert(rgb)
    return ycc + ycc.new_tensor([0.0, _CHROMA_SHIFT, _CHROMA_SHIFT])[:, None, None]


def ycbcr_to_rgb(ycc):
    """Inverse of :func:`rgb_to_ycbcr`; the result is clipped to [0, 1]."""
    from kornia.color import ycbcr_to_rgb as _convert

    return _convert(ycc - ycc.new_tensor([0.0, _CHROMA_SHIFT, _CHROMA_SHIFT])[:, None, None])
