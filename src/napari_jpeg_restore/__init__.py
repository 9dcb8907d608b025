"""Remove JPEG compression artifacts with one network for every quality factor (QGCN).

>>> from PIL import Image
>>> from napari_jpeg_restore import restore, QGCNRestore
>>> clean = restore(Image.open("photo.jpg"))
>>> clean = Image.open("photo.jpg").filter(QGCNRestore())
"""

from importlib import import_module

__version__ = "0.1.0"

# Public names and the modules that hold them, imported on first use: `import napari_jpeg_restore`
# (and napari opening a file with our reader) stays light.
_PUBLIC = {
    "BlindModeWarning": "table_sources", "JpegError": "jpeg", "ModelNotAvailable": "weights", "QGCNRestore": "filter",
    "RestoreCancelled": "engine", "RestoreError": "errors", "RestoreOptions": "options", "WeightsError": "weights",
    "restore": "image_restore", "sample_jpeg": "sample_image", "save_restored": "saving", "shipped_models": "weights",
    "open_frames": "_reader", "restore_lazily": "layer_data", "save_restored_frames": "layer_data",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    # the public names are imported on first use, so list them for dir() and tab completion
    return sorted({*globals(), *_PUBLIC})
