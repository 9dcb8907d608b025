"""Training data: a decoded image pool, 256×256 crops with step 128, random patches, and JPEG
variety (quality, subsampling, table families, double compression) made with Pillow.

Every batch is a pure function of (seed, step), so a resumed run sees exactly the data an
uninterrupted one would have seen, and DDP ranks draw disjoint samples of the same step.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from napari_jpeg_restore.consistency import coefficients_from_bytes, keep_reader_library
from napari_jpeg_restore.jpeg import JPEG_SUFFIXES, facts_from_image, ijg_scale, ijg_tables, jpeg_bytes, open_jpeg_bytes
from napari_jpeg_restore.network_io import NetworkIO, image_tensor, to_pixels

from .synthetic import draw_synthetic

IMAGE_SUFFIXES = {*JPEG_SUFFIXES, ".png", ".bmp", ".tif", ".tiff", ".webp"}
#: Where the evaluation and training sets are: $QGCN_DATA, else ../shared/data beside the repository
#: (found from this file, so commands run from any folder find it).
DATA_ROOT = Path(os.environ.get("QGCN_DATA") or Path(__file__).resolve().parents[2].parent / "shared" / "data")
CROP, CROP_STEP = 256, 128
JPEG_GT_MAX_QF = 85  # ground truths that are JPEGs carry q95-like error of their own
SHIFT_MARGIN = 8  # extra pixels drawn so double compression can shift its grid
#: The Gaussian blur (sigma in pixels, uniform) of a smoothed patch's chroma: see :func:`smooth_chroma`.
CHROMA_BLUR = (0.5, 2.0)


def _share(default: float, help: str) -> Any:
    """A JpegVariety share that ``qgcn-train train`` offers as ``--name`` (see
    :func:`qgcn_training.cli.variety_options`)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class JpegVariety:
    """How training patches are JPEG-coded. ``paper()`` is the paper's setting.

    Quality: with probability ``high_share`` uniform in ``high_qf``, else uniform in ``low_qf``.
    Tables: a family drawn by ``families`` weights (see :func:`make_tables`).
    """

    low_qf: tuple[int, int] = (1, 60)
    high_qf: tuple[int, int] = (61, 100)
    high_share: float = _share(0.3, "Share of patches coded at a high quality (61..100).")
    subsamplings: dict = field(
        default_factory=lambda: {"4:2:0": 0.45, "4:4:4": 0.2, "4:2:2": 0.2, "4:4:0": 0.075, "4:1:1": 0.075})
    families: dict = field(
        default_factory=lambda: {"ijg": 0.5, "ijg16": 0.05, "perturbed": 0.2, "flat": 0.075, "tilted": 0.1,
                                 "shared": 0.075})
    double_share: float = _share(0.1, "Share of double-compressed patches.")
    shifted_share: float = 0.5  # of double-compressed patches, those whose grid moves between saves
    synthetic_share: float = _share(0.15, "Share of patches drawn as text, line art, shapes, gradients, screenshots.")
    smooth_chroma_share: float = _share(0.0, "Share of photo patches (not JPEG truths) whose chroma is made "
                                              "coarser than their luma, as in camera photos.")

    @classmethod
    def paper(cls) -> "JpegVariety":
        return cls(high_share=0.0, subsamplings={"4:2:0": 1.0}, families={"ijg": 1.0}, double_share=0.0,
                   synthetic_share=0.0)

    @classmethod
    def from_dict(cls, d: dict) -> "JpegVariety":
        """A variety as settings and records store it; records before ``high_share`` stored its
        complement, ``low_share``."""
        d = dict(d)
        if "low_share" in d:
            d["high_share"] = 1.0 - d.pop("low_share")
        return cls(**d)


def _pick(rng, weights: dict):
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return keys[rng.choice(len(keys), p=p / p.sum())]


def make_tables(family: str, quality: int, rng) -> list[list[int]]:
    """Luma and chroma tables of one family at roughly the coarseness of IJG ``quality``.

    ``ijg`` the libjpeg tables; ``ijg16`` the same scaling without the baseline clamp at 255
    (16-bit tables at very low qualities); ``perturbed`` each entry scaled by a log-normal factor;
    ``flat`` one step everywhere (the luma table's mean); ``tilted`` a + b·(u + v) ramps, the
    shape of camera and Photoshop tables that rise more slowly than IJG's; ``shared`` one smooth
    symmetric table for luma and chroma, as mozjpeg's default (ImageMagick-style) tables are,
    scaled like IJG's.
    """
    if family == "ijg16":
        return [t.astype(int).ravel().tolist() for t in ijg_tables(quality, baseline=False)]
    luma, chroma = (t.astype(float) for t in ijg_tables(quality))
    if family == "perturbed":
        luma, chroma = (t * np.exp(rng.normal(0, 0.25, t.shape)) for t in (luma, chroma))
    elif family == "flat":
        luma = chroma = np.full((8, 8), luma.mean())
    elif family == "shared":
        uv = np.add.outer(np.arange(8), np.arange(8))
        luma = chroma = 16 * (1 + 0.06 * uv**1.6) * ijg_scale(quality) / 100
    elif family == "tilted":
        uv = np.add.outer(np.arange(8), np.arange(8))
        luma, chroma = (t.min() + (t.mean() - t.min()) * rng.uniform(0.3, 1.5) * uv / 7 for t in (luma, chroma))
    elif family != "ijg":
        raise ValueError(f"unknown table family {family!r}")
    return [np.clip(np.rint(t), 1, 255).astype(int).ravel().tolist() for t in (luma, chroma)]


PILLOW_SUBSAMPLINGS = ("4:4:4", "4:2:2", "4:2:0")


def encode_bytes(patch: np.ndarray, quality: int, family: str, subsampling: str, rng) -> bytes:
    """JPEG-code ``patch``: the file's bytes.

    Pillow codes everything it can; 4:4:0 and 4:1:1, which it cannot write, are coded by
    libjpeg-turbo through simplejpeg, with IJG tables whatever the family (it takes no others).
    """
    if patch.ndim == 3 and subsampling not in PILLOW_SUBSAMPLINGS:
        import simplejpeg

        return simplejpeg.encode_jpeg(np.ascontiguousarray(patch), quality=quality,
                                      colorsubsampling=subsampling.replace(":", ""))
    kwargs = {"qtables": make_tables(family, quality, rng)} if family != "ijg" else {"quality": quality}
    if patch.ndim == 2:  # one component: no chroma to subsample, one table
        subsampling = "4:4:4"
        if "qtables" in kwargs:
            kwargs["qtables"] = kwargs["qtables"][:1]
    if max(max(t) for t in kwargs.get("qtables", [[0]])) > 255:
        with _libjpeg_quiet():
            return jpeg_bytes(patch, subsampling=subsampling, **kwargs)
    return jpeg_bytes(patch, subsampling=subsampling, **kwargs)


@contextmanager
def _libjpeg_quiet():
    """libjpeg writes "Caution: quantization tables are too coarse for baseline JPEG" to the
    process's stderr (file descriptor 2, below Python) for every 16-bit table it codes; in a
    training run that would break the console's progress bar every few steps."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def encode(patch: np.ndarray, quality: int, family: str, subsampling: str, rng) -> Image.Image:
    """:func:`encode_bytes`, decoded: the file with its tables and sampling intact."""
    return open_jpeg_bytes(encode_bytes(patch, quality, family, subsampling, rng))


def smooth_chroma(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 with its chroma blurred (Gaussian, ``sigma`` pixels), its luma kept.
    Photos from cameras carry far less chroma detail than luma detail (Bayer sensors, chroma
    sub-sampled in the camera); WikiPhotos49, downsampled from very large files, carry four times
    LIVE1's share (chroma energy within 2×2 over luma's: 0.146 against 0.035), and a network
    trained on them alone adds chroma detail that such photos lack."""
    from kornia.filters import gaussian_blur2d

    ycc = image_tensor(np.ascontiguousarray(rgb))
    side = 2 * int(np.ceil(3 * sigma)) + 1
    ycc[1:] = gaussian_blur2d(ycc[None, 1:], (side, side), (sigma, sigma), border_type="reflect")[0]
    return to_pixels(ycc)


def load_pool(dirs, gray: bool = False) -> list[tuple[np.ndarray, bool]]:
    """Decode every image under ``dirs`` once: (pixels, is_jpeg) pairs kept in memory."""
    pool = []
    for d in dirs:
        files = sorted(p for p in Path(d).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"{d}: no training images found")
        for p in files:
            with Image.open(p) as im:
                pix = np.asarray(im.convert("L" if gray else "RGB"))
            if min(pix.shape[:2]) >= CROP:
                pool.append((pix, p.suffix.lower() in JPEG_SUFFIXES))
    return pool


class PatchSampler:
    """Draws batches of (network input, global input, target, constraints) for a given step.

    ``constraints`` (when ``with_coefficients``): each patch's JPEG facts and the quantized
    coefficients of its file, read back from its bytes, for the consistency projection; else None.
    """

    def __init__(self, pool, io: NetworkIO, *, patch: int = 64, variety: JpegVariety = JpegVariety(), seed: int = 0,
                 with_coefficients: bool = False):
        if not pool:
            raise ValueError(f"no training images of at least {CROP}×{CROP} pixels")
        self.pool, self.io, self.patch, self.variety, self.seed = pool, io, patch, variety, seed
        self.with_coefficients = with_coefficients
        if with_coefficients:
            keep_reader_library()
        # 256×256 crops with step 128 (section IV-A); a patch is drawn inside a crop
        self.crops = [
            (i, y, x)
            for i, (pix, _) in enumerate(pool)
            for y in range(0, pix.shape[0] - CROP + 1, CROP_STEP)
            for x in range(0, pix.shape[1] - CROP + 1, CROP_STEP)
        ]

    def sample(self, rng):
        v, p = self.variety, self.patch
        size = min(p + SHIFT_MARGIN, CROP)
        if v.synthetic_share and rng.random() < v.synthetic_share:
            region, gt_is_jpeg = draw_synthetic(size, rng, gray=self.pool[0][0].ndim == 2), False
        else:
            i, cy, cx = self.crops[rng.integers(len(self.crops))]
            pix, gt_is_jpeg = self.pool[i]
            y, x = cy + rng.integers(CROP - size + 1), cx + rng.integers(CROP - size + 1)
            region = pix[y : y + size, x : x + size]
            if rng.random() < 0.5:
                region = region[:, ::-1]
            if rng.random() < 0.5:
                region = region[::-1]
            # drawn only when asked for, so runs without it see the batches they always did
            if v.smooth_chroma_share and not gt_is_jpeg and region.ndim == 3 and rng.random() < v.smooth_chroma_share:
                region = smooth_chroma(region, rng.uniform(*CHROMA_BLUR))
        quality = int(rng.integers(*v.low_qf, endpoint=True) if rng.random() < 1.0 - v.high_share
                      else rng.integers(*v.high_qf, endpoint=True))
        if gt_is_jpeg:
            quality = min(quality, JPEG_GT_MAX_QF)
        family, sub = _pick(rng, v.families), _pick(rng, v.subsamplings)
        source, dy, dx = region, 0, 0
        if rng.random() < v.double_share:
            first_q = int(rng.integers(max(quality - 20, 1), min(quality + 40, 100), endpoint=True))
            if gt_is_jpeg:
                first_q = min(first_q, JPEG_GT_MAX_QF)
            first = encode(np.ascontiguousarray(region), first_q, _pick(rng, v.families), sub, rng)
            source = np.asarray(first)
            if rng.random() < v.shifted_share and size > p:
                dy, dx = (int(s) for s in rng.integers(1, size - p, 2))  # 1..7: off the first grid
        gt = np.ascontiguousarray(region[dy : dy + p, dx : dx + p])
        data = encode_bytes(np.ascontiguousarray(source[dy : dy + p, dx : dx + p]), quality, family, sub, rng)
        return gt, open_jpeg_bytes(data), data

    def batch(self, step: int, size: int, rank: int = 0, world: int = 1):
        """The batch of ``step`` (``size`` samples per rank); deterministic in (seed, step, rank)."""
        xs, gs, ts, constraints = [], [], [], []
        for k in range(size):
            rng = np.random.default_rng([self.seed, step, rank * size + k])
            gt, jpeg, data = self.sample(rng)
            decoded = np.asarray(jpeg)
            facts = facts_from_image(jpeg)
            xs.append(self.io.restoration_input(decoded, facts))
            ts.append(image_tensor(gt))
            gs.append(self.io.global_input(decoded, facts))
            if self.with_coefficients:
                constraints.append((facts, coefficients_from_bytes(data, facts)))
        return (torch.stack(xs), (torch.stack(gs) if self.io.takes_global else None), torch.stack(ts),
                constraints if self.with_coefficients else None)
