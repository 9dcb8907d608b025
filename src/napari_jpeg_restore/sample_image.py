"""The bundled sample photo (samples/chelsea.png, CC0, see samples/LICENSE.txt)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .jpeg import encode_jpeg

SAMPLE = Path(__file__).parent / "samples" / "chelsea.png"


def sample_jpeg(quality: int = 10) -> Image.Image:
    """The bundled sample photo JPEG-coded by Pillow at ``quality``, opened as a JPEG file."""
    with Image.open(SAMPLE) as im:
        return encode_jpeg(im.convert("RGB"), quality=quality)
