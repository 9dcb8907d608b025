"""Writing a restored image as the product writes it: upright, lossless, atomic, with its info.

One orientation rule for the whole product (:func:`~napari_jpeg_restore.jpeg.to_upright`): the
restoration runs on the stored pixels, on their coding-block grid; what is shown or written is the
upright image, its EXIF orientation reset. ``jpeg-restore`` and :func:`save_restored` write alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import write_atomically
from .jpeg import exif_orientation, to_upright

FORMATS: dict[str, tuple[str, dict]] = {  # format -> (suffix, Pillow save options): all lossless
    "png": (".png", {"format": "PNG"}),
    "tiff": (".tiff", {"format": "TIFF", "compression": "tiff_adobe_deflate"}),
    "webp": (".webp", {"format": "WEBP", "lossless": True, "quality": 100}),
}
SUFFIX_FORMATS = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".webp": "webp"}
#: Formats with no resolution field of their own: the dpi goes into the EXIF resolution tags.
DPI_IN_EXIF = ("webp",)
ORIENTATION, X_RESOLUTION, Y_RESOLUTION, RESOLUTION_UNIT, INCHES = 0x0112, 0x011A, 0x011B, 0x0128, 2


def upright(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation says, the tag reset and the dpi turned with it."""
    orientation = exif_orientation(image)
    if orientation == 1:
        return image
    turned = Image.fromarray(to_upright(np.asarray(image), orientation), image.mode)
    turned.info = dict(image.info)
    exif = image.getexif()
    del exif[ORIENTATION]
    turned.info["exif"] = exif.tobytes()
    if orientation >= 5 and "dpi" in turned.info:  # 5..8 swap width and height
        turned.info["dpi"] = tuple(reversed(turned.info["dpi"]))
    return turned


def save_output(image: Image.Image, dst: Path, fmt: str) -> None:
    """Write ``image`` losslessly as ``fmt`` at ``dst``, atomically, with the info ``restore()``
    keeps (ICC profile, EXIF, dpi)."""
    _, options = FORMATS[fmt]
    dst.parent.mkdir(parents=True, exist_ok=True)
    save = dict(options)
    if image.info.get("icc_profile"):
        save["icc_profile"] = image.info["icc_profile"]
    exif = image.getexif()
    if "dpi" in image.info:
        save["dpi"] = image.info["dpi"]
        if fmt in DPI_IN_EXIF:
            exif[X_RESOLUTION], exif[Y_RESOLUTION] = (float(d) for d in image.info["dpi"])
            exif[RESOLUTION_UNIT] = INCHES
    if exif:
        save["exif"] = exif
    write_atomically(dst, lambda tmp: image.save(tmp, **save))


def save_restored(image: Image.Image, path) -> Path:
    """Write a restored image as ``jpeg-restore`` does: upright (EXIF orientation applied and
    reset), lossless by the suffix (.png, .tif/.tiff, .webp), EXIF, ICC profile and dpi kept,
    atomically (a stop leaves no half file). Returns the path."""
    path = Path(path)
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: restored images are written losslessly as "
                         f"{', '.join(SUFFIX_FORMATS)}; not {path.suffix or 'a file without a suffix'}")
    save_output(upright(image), path, fmt)
    return path
