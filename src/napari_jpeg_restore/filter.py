"""The Pillow face: the :class:`QGCNRestore` image filter (and :func:`restore`, re-exported)."""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image, ImageFilter

from .consistency import Coefficients
from .image_restore import restore
from .jpeg import facts_from_image
from .options import DEFAULTS, RestoreOptions
from .table_sources import coefficients_for, find_tables

__all__ = ["QGCNRestore", "restore"]


class QGCNRestore(ImageFilter.MultibandFilter):
    """``img.filter(QGCNRestore())``: JPEG artifact removal as a Pillow filter.

    Pillow hands a filter only the pixels, so ``QGCNRestore()`` estimates the tables from them
    (blind mode); ``QGCNRestore.from_image(img)`` carries the file's own tables. The options are
    :func:`restore`'s.
    """

    name = "QGCNRestore"

    def __init__(self, quantization=None, subsampling: str | None = None, *, coefficients: Coefficients | None = None,
                 model: str | None = DEFAULTS.model, device: str | None = DEFAULTS.device, tile: int = DEFAULTS.tile,
                 overlap: int | None = DEFAULTS.overlap, threads: int | None = DEFAULTS.threads,
                 precision: str = DEFAULTS.precision, strength: float = DEFAULTS.strength,
                 consistency: str | float = DEFAULTS.consistency, progress: Callable[[int, int], None] | None = None,
                 cancel: Callable[[], bool] | None = None):
        self.quantization, self.subsampling, self.coefficients = quantization, subsampling, coefficients
        self.options = RestoreOptions(model=model, device=device, tile=tile, overlap=overlap, threads=threads,
                                      precision=precision, strength=strength, consistency=consistency).checked()
        self.progress, self.cancel = progress, cancel

    @classmethod
    def from_image(cls, img, **options) -> "QGCNRestore":
        """A filter that restores with ``img``'s own JPEG tables and sampling, and the quantized
        coefficients of the file it was opened from (the consistency projection's exact ones)."""
        found = find_tables(colour=img.mode != "L", image=img)
        if found.facts is None:
            facts_from_image(img)  # names why this is no JPEG file
        return cls(quantization=found.facts, coefficients=coefficients_for(found, (img.height, img.width)), **options)

    def filter(self, image):
        # Pillow's filter protocol hands over and takes back its core image object
        img = Image.new(image.mode, image.size)
        img.im = image
        return restore(img, quantization=self.quantization, subsampling=self.subsampling,
                       coefficients=self.coefficients, options=self.options,
                       progress=self.progress, cancel=self.cancel).im
