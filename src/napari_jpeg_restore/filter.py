"""The Pillow face: the :class:`QGCNRestore` image filter (and :func:`restore`, re-exported)."""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image, ImageFilter

from .image_restore import restore
from .jpeg import facts_from_image
from .options import DEFAULTS, RestoreOptions

__all__ = ["QGCNRestore", "restore"]


class QGCNRestore(ImageFilter.MultibandFilter):
    """``img.filter(QGCNRestore())``: JPEG artifact removal as a Pillow filter.

    Pillow hands a filter only the pixels, so ``QGCNRestore()`` estimates the tables from them
    (blind mode); ``QGCNRestore.from_image(img)`` carries the file's own tables. The options are
    :func:`restore`'s.
    """

    name = "QGCNRestore"

    def __init__(self, quantization=None, subsampling: str | None = None, *, model: str | None = DEFAULTS.model,
                 device: str | None = DEFAULTS.device, tile: int = DEFAULTS.tile, overlap: int = DEFAULTS.overlap,
                 threads: int | None = DEFAULTS.threads, precision: str = DEFAULTS.precision,
                 strength: float = DEFAULTS.strength, progress: Callable[[int, int], None] | None = None,
                 cancel: Callable[[], bool] | None = None):
        self.quantization, self.subsampling = quantization, subsampling
        self.options = RestoreOptions(model=model, device=device, tile=tile, overlap=overlap, threads=threads,
                                      precision=precision, strength=strength)
        self.progress, self.cancel = progress, cancel

    @classmethod
    def from_image(cls, img, **options) -> "QGCNRestore":
        """A filter that restores with ``img``'s own JPEG tables and sampling."""
        return cls(quantization=facts_from_image(img), **options)

    def filter(self, image):
        # Pillow's filter protocol hands over and takes back its core image object
        img = Image.new(image.mode, image.size)
        img.im = image
        return restore(img, quantization=self.quantization, subsampling=self.subsampling, options=self.options,
                       progress=self.progress, cancel=self.cancel).im
