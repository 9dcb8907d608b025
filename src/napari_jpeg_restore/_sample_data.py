"""napari sample data: a CC0 photo (samples/chelsea.png) coded at JPEG quality 10 with Pillow."""

from __future__ import annotations

from ._reader import jpeg_layer
from .sample_image import sample_jpeg


def jpeg_q10_sample() -> list[tuple]:
    return [jpeg_layer(sample_jpeg(10), "chelsea (JPEG quality 10)", "chelsea.png at JPEG quality 10")]
