"""napari sample data: a CC0 photo (samples/chelsea.png) coded at JPEG quality 10 with Pillow."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from ._reader import jpeg_layer

SAMPLE = Path(__file__).parent / "samples" / "chelsea.png"


def jpeg_q10_sample() -> list[tuple]:
    buf = io.BytesIO()
    with Image.open(SAMPLE) as im:
        im.convert("RGB").save(buf, "JPEG", quality=10)
    buf.seek(0)
    with Image.open(buf) as jpeg:
        return [jpeg_layer(jpeg, "chelsea (JPEG quality 10)", "chelsea.png at JPEG quality 10")]
