"""Remove JPEG compression artifacts with one network for every quality factor (QGCN).

>>> from PIL import Image
>>> from napari_jpeg_restore import restore, QGCNRestore
>>> clean = restore(Image.open("photo.jpg"))
>>> clean = Image.open("photo.jpg").filter(QGCNRestore())
"""

from .engine import RestoreCancelled
from .jpeg import JpegError
from .weights import ModelNotAvailable, WeightsError, shipped_models

__version__ = "0.1.0"
__all__ = [
    "JpegError", "ModelNotAvailable", "QGCNRestore", "RestoreCancelled", "WeightsError", "restore", "sample_jpeg",
    "shipped_models",
]


def __getattr__(name):
    # The Pillow face is imported on first use, so `import napari_jpeg_restore` stays light.
    if name in ("restore", "QGCNRestore", "sample_jpeg"):
        from . import filter as _filter

        return getattr(_filter, name)
    raise AttributeError(name)
