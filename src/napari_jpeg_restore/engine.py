"""The restoration engine: device, padding to the block grid, global features once, tiles.

Faces make an :class:`Engine` from :class:`~napari_jpeg_restore.options.RestoreOptions`
(:meth:`Engine.for_kind`) and run it; what the network is fed is :class:`NetworkIO`'s business.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache

import numpy as np

from .consistency import DEFAULT_ALPHA, Coefficients, fits, project
from .device import cpu_threads, memory_format, pick_device, run_precision
from .jpeg import GRID, JpegFacts
from .network_io import NetworkIO, image_tensor, to_pixels
from .options import DEFAULTS, RestoreOptions
from .weights import TrainedModel, load_model, resolve


class RestoreCancelled(Exception):
    """The caller's ``cancel()`` returned True; nothing partial was returned."""


@lru_cache(maxsize=4)
def _cached_model(folder, colour: bool, device: str, stamp: float) -> TrainedModel:
    """:func:`load_model` with its network on ``device``; ``stamp`` (the config's mtime) renews it
    when the weights change. Engines never move or train it (see :func:`_on_device`)."""
    import torch

    trained = load_model(folder, colour=colour)
    return replace(trained, network=_on_device(trained.network, torch.device(device)))


def _on_device(model, device):
    """``model`` if it already lives on ``device`` in the layout the engine runs there, else a
    copy moved there: a model shared by other engines (the cache) is never changed under them."""
    param = next(model.parameters())
    fmt = memory_format(device)
    weight = next((p for p in model.parameters() if p.dim() == 4), param)
    if param.device.type == device.type and (device.index is None or param.device.index == device.index) \
            and weight.is_contiguous(memory_format=fmt):
        return model
    return copy.deepcopy(model).to(device, memory_format=fmt)


def drive(tiles, progress: Callable[[int, int], None] | None = None, cancel: Callable[[], bool] | None = None,
          source: str = "<image>"):
    """Run an :meth:`Engine.iter_tiles` generator to its end and return its result.

    ``progress(done, total)`` is called at every yield; ``cancel()`` returning True before a tile
    closes the generator and raises :class:`RestoreCancelled`.
    """
    while True:
        try:
            done, total = next(tiles)
        except StopIteration as finished:
            return finished.value
        if progress:
            progress(done, total)
        if cancel and done < total and cancel():
            tiles.close()
            raise RestoreCancelled(f"{source}: cancelled after {done} of {total} tiles")


def _shifted(region, top: int, left: int):
    """A (y0, y1, x0, x1) box of the image in the coordinates of its padded copy."""
    return None if region is None else (region[0] + top, region[1] + top, region[2] + left, region[3] + left)


class Engine:
    """Runs one model on whole images of any size, in overlapping tiles.

    ``options.tile``: the side of the window fed to the network (0 = the whole image at once);
    ``options.overlap``: context added on each side of a tile's kept core, so tile seams vanish
    (auto: the model's own, as far as it sees).
    Both lie on the :data:`GRID` (the options refuse values off it).
    """

    def __init__(self, model, options: RestoreOptions = DEFAULTS, *, trained_alpha: float | None = None,
                 trained_overlap: int | None = None):
        """``model``: a network of the family; ``trained_alpha`` and ``trained_overlap``: the
        consistency half-width and tile overlap chosen for it (its record's), which the options'
        auto settings use (else their defaults)."""
        self.options = options
        self.device = pick_device(options.device)
        self.model = _on_device(model, self.device).eval()
        self.io = NetworkIO(self.model.config)
        #: the consistency interval's half-width this engine projects with (None: off)
        self.alpha = options.alpha(DEFAULT_ALPHA if trained_alpha is None else trained_alpha)
        self.tile, self.overlap = options.tile, options.tile_overlap(trained_overlap)  # on the GRID (RestoreOptions' rule)

    @classmethod
    def for_model(cls, trained: TrainedModel, options: RestoreOptions = DEFAULTS) -> "Engine":
        """An engine for loaded weights, with the consistency α and tile overlap their record holds."""
        return cls(trained.network, options, trained_alpha=trained.consistency_alpha,
                   trained_overlap=trained.tile_overlap)

    @classmethod
    def for_kind(cls, options: RestoreOptions, colour: bool) -> "Engine":
        """An engine for ``options.model`` (the shipped default of this kind if None), its network
        kept in memory per (weights, kind, device) for the faces' repeated calls."""
        folder = resolve(options.model, colour)
        device = pick_device(options.device)
        stamp = (folder / "config.json").stat().st_mtime
        return cls.for_model(_cached_model(folder, colour, str(device), stamp), options)

    def run(self, pixels: np.ndarray, facts: JpegFacts, *, coefficients: Coefficients | None = None, progress=None,
            cancel=None) -> np.ndarray:
        """Restore (H, W) or (H, W, 3) uint8 pixels coded as ``facts`` say; same shape out.
        ``coefficients``: the file's (see :meth:`iter_tiles`). ``progress`` and ``cancel`` as in
        :func:`drive`."""
        return drive(self.iter_tiles(pixels, facts, coefficients=coefficients), progress, cancel, facts.source)

    def tile_count(self, shape: tuple[int, ...], facts: JpegFacts, region=None) -> int:
        """How many tiles :meth:`iter_tiles` runs for an image of this shape (and region)."""
        top, bottom, left, right = self._padding(shape, facts)
        return len(self._windows(shape[0] + top + bottom, shape[1] + left + right, self._steps(facts),
                                 _shifted(region, top, left)))

    def iter_tiles(self, pixels: np.ndarray, facts: JpegFacts, *, coefficients: Coefficients | None = None,
                   before: int = 0, of: int | None = None, region: tuple[int, int, int, int] | None = None):
        """Generator form of :meth:`run`: yields (tiles done, total) before each tile and at the
        end, and returns the restored pixels; closing it stops between tiles. Part of a larger
        job (frames of a stack), ``before`` tiles are done already, ``of`` are counted in all,
        and the end is yielded only by the part that ends the job. With ``region`` (y0, y1, x0,
        x1), only the tiles that cover it run (a preview): there the result is what the whole run
        gives; elsewhere the pixels come back as they were.

        Unless ``options.consistency`` is off, each row of tiles' output is projected onto the
        file's quantization constraint set (:mod:`.consistency`) with ``coefficients`` (the file's
        own) or, when None, coefficients estimated from ``pixels``. Tile cores lie on the MCU grid,
        so tiled and whole runs project the same blocks.
        """
        import torch

        self.io.check(pixels, facts)
        if coefficients is not None and not fits(coefficients, facts, *pixels.shape[:2]):
            raise ValueError(f"{facts.source}: the coefficients given are not those of a "
                             f"{pixels.shape[1]}×{pixels.shape[0]} image coded as its facts say")
        padded, (top, left) = self._pad(pixels, facts)
        height, width = padded.shape[:2]
        windows = self._windows(height, width, self._steps(facts), _shifted(region, top, left))
        of = len(windows) if of is None else of
        out = np.empty_like(padded) if region is None else padded.copy()
        precision = run_precision(self.options.precision, self.device)
        autocast = torch.autocast(self.device.type, dtype=getattr(torch, precision), enabled=precision != "float32")
        # the thread count is held only while computing, never across a yield (see cpu_threads)
        threads = self.options.threads
        fed = facts.scaled(self.options.strength)  # the tables as the network is told them
        global_features = None
        g = self.io.global_input(pixels, fed)
        if g is not None:
            with cpu_threads(threads), torch.inference_mode(), autocast:
                global_features = self.model.global_features(g[None].to(self.device))
        band: list = []  # the current row of tiles' restored cores, awaiting their projection
        for i, (win, core) in enumerate(windows):
            yield before + i, of
            (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) = win, core
            with cpu_threads(threads), torch.inference_mode(), autocast:
                x = self.io.restoration_input(padded[y0:y1, x0:x1], fed, y0, x0)[None].to(self.device)
                y = self.model.restore(x, global_features)[0].float()[:, cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
                if self.alpha is None:
                    out[cy0:cy1, cx0:cx1] = to_pixels(y)
                    continue
                if band and band[0][0][0] != cy0:
                    self._project_band(out, band, facts, coefficients, padded, (top, left), pixels.shape)
                band.append((core, y))
        if band:
            with cpu_threads(threads), torch.inference_mode():
                self._project_band(out, band, facts, coefficients, padded, (top, left), pixels.shape)
        if before + len(windows) == of:
            yield of, of
        return out[top : top + pixels.shape[0], left : left + pixels.shape[1]]

    def _project_band(self, out, band, facts, coefficients, padded, offset, shape):
        """Project a row of tile cores ``band`` [(core, output)] onto the constraint set as one
        region (see :meth:`iter_tiles`), write it to ``out`` and empty ``band``. The projection's
        cost is largely per call: one per row of tiles instead of one per tile took a third off it
        (1 MP, 512-pixel tiles)."""
        import torch

        (cy0, cy1, cx0, _), cx1, (top, left) = band[0][0], band[-1][0][3], offset
        y = torch.cat([y for _, y in band], dim=2) if len(band) > 1 else band[0][1]
        decoded = None if coefficients is not None else image_tensor(padded[cy0:cy1, cx0:cx1]).to(self.device)
        valid = (max(top - cy0, 0), min(top + shape[0] - cy0, cy1 - cy0),
                 max(left - cx0, 0), min(left + shape[1] - cx0, cx1 - cx0))
        with torch.autocast(self.device.type, enabled=False):  # the transform runs in float32
            y = project(y, facts, self.alpha, coefficients=coefficients, decoded=decoded, origin=(cy0, cx0),
                        valid=valid)
        out[cy0:cy1, cx0:cx1] = to_pixels(y)
        band.clear()

    @staticmethod
    def _steps(facts) -> tuple[int, int]:
        """The grid (rows, cols) padded sizes and tile cores lie on: the tile grid and the MCU."""
        step_y, step_x = (max(GRID, m) for m in facts.mcu)
        return step_y, step_x

    @classmethod
    def _padding(cls, shape, facts) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) so block boundaries sit on multiples of 8 and the size
        fits the MCU and the tile grid."""
        step_y, step_x = cls._steps(facts)
        top, left = ((-o) % 8 for o in facts.grid_offset)
        return top, (-(top + shape[0])) % step_y, left, (-(left + shape[1])) % step_x

    def _pad(self, pixels, facts):
        """Edge-replicated pixels (see :meth:`_padding`) and the (top, left) to crop back at."""
        top, bottom, left, right = self._padding(pixels.shape, facts)
        pad = ((top, bottom), (left, right)) + (((0, 0),) if pixels.ndim == 3 else ())
        return np.pad(pixels, pad, mode="edge"), (top, left)

    def _windows(self, h, w, steps, region=None):
        """(window, core) boxes (y0, y1, x0, x1): cores tile the image on the ``steps`` grid,
        windows add the overlap; with ``region``, only those whose core meets it."""
        if not self.tile or (h <= self.tile and w <= self.tile):
            return [((0, h, 0, w), (0, h, 0, w))]
        o = self.overlap
        core_y, core_x = (max((self.tile - 2 * o) // s * s, s) for s in steps)
        boxes = []
        for cy in range(0, h, core_y):
            for cx in range(0, w, core_x):
                cy1, cx1 = min(cy + core_y, h), min(cx + core_x, w)
                if region and not (cy < region[1] and region[0] < cy1 and cx < region[3] and region[2] < cx1):
                    continue
                win = (max(cy - o, 0), min(cy1 + o, h), max(cx - o, 0), min(cx1 + o, w))
                boxes.append((win, (cy, cy1, cx, cx1)))
        return boxes
