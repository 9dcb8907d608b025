"""The restoration engine: device, padding to the block grid, global features once, tiles.

Faces (the Pillow filter, the napari widget, training and evaluation) call :class:`Engine`, or
:func:`network_input` / :func:`global_input` to build exactly what the network sees.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from .color import rgb_to_ycbcr, ycbcr_to_rgb
from .jpeg import JpegFacts
from .maps import normalise_tables, quantization_maps

#: Tiles start on this grid: a multiple of 8×8 luma blocks, 16×16 4:2:0 MCUs and the stride 2.
GRID = 16


class RestoreCancelled(Exception):
    """The caller's ``cancel()`` returned True; nothing partial was returned."""


def pick_device(device=None):
    """``device`` as given (checked to exist), else cuda, then mps, then cpu."""
    import torch

    if device is not None:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise ValueError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
        if (dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count())) \
                or (dev.type == "mps" and not torch.backends.mps.is_available()):
            raise ValueError(f"device {device!r} is not available on this machine")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def image_tensor(pixels: np.ndarray):
    """(H, W) or (H, W, 3) uint8 -> (1 or 3, H, W) float: Y, or Y/Cb/Cr, in [0, 1]."""
    import torch

    x = torch.from_numpy(pixels.astype(np.float32)).div_(255)
    return x[None] if x.ndim == 2 else rgb_to_ycbcr(x.permute(2, 0, 1))


def to_pixels(x) -> np.ndarray:
    """Inverse of :func:`image_tensor`: clip, round, uint8 (H, W) or (H, W, 3)."""
    import torch

    if x.shape[0] == 3:
        x = ycbcr_to_rgb(x)
    return x.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).squeeze(2).cpu().numpy()


def network_input(pixels: np.ndarray, facts: JpegFacts | None, top: int = 0, left: int = 0):
    """Image channels plus, with ``facts``, the quantization maps of the region at (top, left)."""
    import torch

    x = image_tensor(pixels)
    if facts is None:
        return x
    return torch.cat([x, torch.from_numpy(quantization_maps(facts, x.shape[1], x.shape[2], top, left))])


def global_input(pixels: np.ndarray, facts: JpegFacts, size: int = 112):
    """The global branch's input: the whole image resized to size×size (antialiased bilinear),
    plus one constant plane per map holding its table's mean normalised step.

    Resizing the uint8 image with Pillow keeps memory small on any image size; the map planes
    carry the compression level without the aliasing a resized block pattern would bring.
    """
    import torch

    small = np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR))
    planes = [torch.full((1, size, size), float(normalise_tables(t).mean())) for t in facts.map_tables]
    return torch.cat([image_tensor(small), *planes])


class Engine:
    """Runs one model on whole images of any size, in overlapping tiles.

    ``tile``: the side of the window fed to the network (0 = the whole image at once);
    ``overlap``: context added on each side of a tile's kept core, so tile seams vanish.
    Both are rounded down to multiples of :data:`GRID`. ``precision``: "float32", or
    "bfloat16"/"float16" autocast on a GPU (float32 stays the default until measured there).
    """

    def __init__(self, model, *, device=None, threads: int | None = None, tile: int = 512, overlap: int = 32,
                 precision: str = "float32"):
        import torch

        if precision not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"precision must be float32, bfloat16 or float16, got {precision!r}")
        self.precision = precision
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.threads = threads
        self.tile = tile // GRID * GRID
        self.overlap = overlap // GRID * GRID
        if tile < 0 or overlap < 0 or (self.tile and self.tile <= 2 * self.overlap):
            raise ValueError(f"tile ({tile}) must be 0 or larger than twice the overlap ({overlap}) on a {GRID}-pixel grid")
        self._torch = torch

    @property
    def config(self):
        return self.model.config

    def run(
        self,
        pixels: np.ndarray,
        facts: JpegFacts,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
        strength: float = 1.0,
    ) -> np.ndarray:
        """Restore (H, W) or (H, W, 3) uint8 pixels coded as ``facts`` say; same shape out.

        ``progress(done, total)`` is called per tile; ``cancel()`` returning True before a tile
        raises :class:`RestoreCancelled`. ``strength`` scales the quantization maps the network
        sees (see :meth:`JpegFacts.scaled`); 1.0 = the file's own tables.
        """
        steps = self.steps(pixels, facts, strength)
        try:
            while True:
                done, total = next(steps)
                if progress:
                    progress(done, total)
                if cancel and done < total and cancel():
                    steps.close()
                    raise RestoreCancelled(f"{facts.source}: cancelled after {done} of {total} tiles")
        except StopIteration as finished:
            return finished.value

    def tile_count(self, shape: tuple[int, ...], facts: JpegFacts) -> int:
        """How many tiles :meth:`steps` runs for an image of this shape."""
        top, bottom, left, right = self._padding(shape, facts)
        return len(self._windows(shape[0] + top + bottom, shape[1] + left + right))

    def steps(self, pixels: np.ndarray, facts: JpegFacts, strength: float = 1.0):
        """Generator form of :meth:`run`: yields (tiles done, total) before each tile and at the
        end, and returns the restored pixels; closing it stops between tiles."""
        torch = self._torch
        colour = pixels.ndim == 3
        if colour != self.config.colour or colour != facts.colour:
            kind = lambda c: "colour" if c else "grayscale"  # noqa: E731
            raise ValueError(
                f"{facts.source}: {kind(colour)} pixels, {kind(facts.colour)} JPEG facts and a "
                f"{kind(self.config.colour)} model do not go together"
            )
        padded, (top, left) = self._pad(pixels, facts)
        windows = self._windows(*padded.shape[:2])
        out = np.empty_like(padded)
        old_threads = torch.get_num_threads()
        autocast = torch.autocast(self.device.type, dtype=getattr(torch, self.precision),
                                  enabled=self.precision != "float32")
        try:
            if self.threads:
                torch.set_num_threads(self.threads)
            feats, seen = None, facts.scaled(strength)
            if self.config.has_global:
                g = global_input(pixels, seen, self.config.global_size)
                with torch.inference_mode(), autocast:
                    feats = self.model.global_features(g[None].to(self.device))
            maps = seen if self.config.uses_maps else None
            for i, (win, core) in enumerate(windows):
                yield i, len(windows)
                (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) = win, core
                with torch.inference_mode(), autocast:
                    x = network_input(padded[y0:y1, x0:x1], maps, y0, x0)[None].to(self.device)
                    y = self.model.restore(x, feats)[0].float()
                    out[cy0:cy1, cx0:cx1] = to_pixels(y[:, cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0])
        finally:
            torch.set_num_threads(old_threads)
        yield len(windows), len(windows)
        return out[top : top + pixels.shape[0], left : left + pixels.shape[1]]

    @staticmethod
    def _padding(shape, facts) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) so block boundaries sit on multiples of 8 and the size
        fits the MCU and the tile grid."""
        step_y, step_x = (max(GRID, m) for m in facts.mcu)
        top, left = ((-o) % 8 for o in facts.grid_offset)
        return top, (-(top + shape[0])) % step_y, left, (-(left + shape[1])) % step_x

    def _pad(self, pixels, facts):
        """Edge-replicated pixels (see :meth:`_padding`) and the (top, left) to crop back at."""
        top, bottom, left, right = self._padding(pixels.shape, facts)
        pad = ((top, bottom), (left, right)) + (((0, 0),) if pixels.ndim == 3 else ())
        return np.pad(pixels, pad, mode="edge"), (top, left)

    def _windows(self, h, w):
        """(window, core) boxes (y0, y1, x0, x1): cores tile the image, windows add the overlap."""
        if not self.tile or (h <= self.tile and w <= self.tile):
            return [((0, h, 0, w), (0, h, 0, w))]
        core, o = self.tile - 2 * self.overlap, self.overlap
        boxes = []
        for cy in range(0, h, core):
            for cx in range(0, w, core):
                cy1, cx1 = min(cy + core, h), min(cx + core, w)
                win = (max(cy - o, 0), min(cy1 + o, h), max(cx - o, 0), min(cx1 + o, w))
                boxes.append((win, (cy, cy1, cx, cx1)))
        return boxes
