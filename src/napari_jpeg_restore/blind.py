"""Blind mode: quantization tables and block grid estimated from decoded pixels alone.

A JPEG decoder leaves each 8×8 block's DCT coefficients close to integer multiples of that
frequency's quantization step. For every frequency this module finds the largest step ``q`` on
which the coefficients that ``q`` would not round to zero sit close to a multiple: their mean
distance to one, capped at 1, stays below ``MAX_COST`` (the largest, because divisors of the
true step fit as well). Blocks with clipped pixels are left out: clipping moves coefficients off
the lattice. The grid offset is the shift
at which low frequencies show such steps best; an image where none shows a step above 1 was
never a JPEG (or was saved at quality 100, which leaves nothing to restore).

Estimates are snapped to the IJG family (libjpeg, Pillow, most software) when one IJG quality
reproduces the well-determined entries; otherwise the raw per-frequency estimates are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .color import rgb_to_ycbcr_levels
from .jpeg import SUBSAMPLINGS, JpegFacts, facts_from_tables, ijg_tables

MAX_COST = 0.42  # decoder rounding and colour conversion leave ~0.35 rms, a mean distance ~0.28;
# coefficients with no lattice give 0.5 at q = 2 and more above
MIN_COUNT = 4  # coefficients needed before a step is believed; fewer lets a divisor of the step win
MAX_BLOCKS = 16384
SNAP_SHARE = 0.9  # share of determined luma entries an IJG quality must agree with
_OFFSET_FREQS = [(0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (1, 2), (2, 1)]


def _dct_matrix() -> np.ndarray:
    k = np.arange(8)
    d = np.sqrt(2 / 8) * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / 16)
    d[0] /= np.sqrt(2)
    return d


_D = _dct_matrix()


def _blocks(plane: np.ndarray, offset) -> np.ndarray:
    dy, dx = offset
    h, w = (plane.shape[0] - dy) // 8, (plane.shape[1] - dx) // 8
    return plane[dy : dy + 8 * h, dx : dx + 8 * w].reshape(h, 8, w, 8).swapaxes(1, 2).reshape(-1, 8, 8)


def block_dct(plane: np.ndarray, offset=(0, 0), max_blocks: int = MAX_BLOCKS, clipped=None) -> np.ndarray:
    """Orthonormal 8×8 DCT (JPEG's scaling) of the level-shifted blocks starting at ``offset``:
    (n_blocks, 8, 8), at most ``max_blocks`` evenly spread blocks, without the blocks that hold
    a pixel where the boolean plane ``clipped`` is set."""
    blocks = _blocks(plane - 128.0, offset)
    if clipped is not None:
        blocks = blocks[~_blocks(clipped, offset).any(axis=(1, 2))]
    if len(blocks) > max_blocks:
        blocks = blocks[np.linspace(0, len(blocks) - 1, max_blocks).astype(int)]
    return _D @ blocks @ _D.T


def fit_steps(coefs: np.ndarray, qmax: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``coefs`` (frequencies × blocks): the estimated step, 0 when the coefficients
    cannot tell, and a lower bound on the step (twice the largest |coefficient| where almost
    all of them were rounded to zero, else 1)."""
    q = np.arange(1, qmax + 1, dtype=np.float64)[:, None]
    steps, bounds = np.zeros(len(coefs)), np.ones(len(coefs))
    for i, c in enumerate(coefs):
        c = c[np.abs(c) >= 0.5]  # what even step 1 would not round to zero
        if len(c) < MIN_COUNT:
            bounds[i] = max(1.0, 2 * np.abs(c).max(initial=0))
            continue
        active = np.abs(c)[None, :] >= q / 2
        distance = np.minimum(np.abs(c[None, :] - q * np.round(c[None, :] / q)), 1.0)
        n_active = active.sum(1)
        cost = (distance * active).sum(1) / np.maximum(n_active, 1)
        ok = np.flatnonzero((n_active >= MIN_COUNT) & (cost <= MAX_COST))
        # step 1 fits any coefficient: believe it only where many coefficients are clearly nonzero
        if len(ok) and (ok[-1] > 0 or np.sum(np.abs(c) >= 2) >= max(MIN_COUNT, 0.02 * coefs.shape[1])):
            steps[i] = q[ok[-1], 0]
    return steps, bounds


def find_grid_offset(plane: np.ndarray, clipped=None) -> tuple[tuple[int, int], float]:
    """The (row, col) offset of the 8×8 grid and its score (steps ≥ 2 found at low frequencies)."""
    best, best_score = (0, 0), -1.0
    rows, cols = zip(*_OFFSET_FREQS)
    for dy in range(8):
        for dx in range(8):
            c = block_dct(plane, (dy, dx), 4096, clipped)[:, rows, cols].T
            steps, _ = fit_steps(c, 64)
            score = float(np.sum(np.log2(np.maximum(steps, 1))))
            if score > best_score:
                best, best_score = (dy, dx), score
    return best, best_score


@dataclass(frozen=True)
class BlindEstimate:
    """What blind mode found. ``facts`` is None when the image shows no JPEG quantization."""

    facts: JpegFacts | None
    raw_tables: tuple[np.ndarray, ...]  # per map table; 0 = undetermined
    grid_offset: tuple[int, int]
    quality: int | None  # the IJG quality the tables were snapped to, if any


def _subsample(plane: np.ndarray, h: int, v: int, reduce=np.mean) -> np.ndarray:
    """``plane`` at a chroma component's coded resolution (``reduce`` over each h×v cell)."""
    hh, ww = plane.shape[0] // v * v, plane.shape[1] // h * h
    return reduce(plane[:hh, :ww].reshape(hh // v, v, ww // h, h), axis=(1, 3))


def _snap(luma: np.ndarray, luma_bound: np.ndarray) -> int | None:
    """The IJG quality whose luma table reproduces the estimates, or None.

    An estimate that divides the table's step is no conflict (with few large coefficients a
    divisor of the step fits as well); hits are exact matches; at most 10 % may conflict.
    """
    determined = luma > 0
    if determined.sum() < 3:
        return None
    best_q, best_hits = None, 0
    for quality in range(1, 101):
        table = ijg_tables(quality)[0]
        if np.any(table[~determined] < np.minimum(luma_bound[~determined], 255) / 2):
            continue
        hits = int(np.sum(table[determined] == luma[determined]))
        conflicts = int(np.sum(table[determined] % luma[determined] != 0))
        if conflicts <= (1 - SNAP_SHARE) * determined.sum() and hits > best_hits:
            best_q, best_hits = quality, hits
    return best_q if best_hits >= 3 else None


def _fill(raw: np.ndarray, bound: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Undetermined entries: the reference (nearest IJG) step, at least the lower bound."""
    return np.where(raw > 0, raw, np.clip(np.maximum(reference, bound), 1, 255))


def estimate(pixels: np.ndarray, subsampling: str | None = None, source: str = "<pixels>") -> BlindEstimate:
    """Estimate JPEG facts from (H, W) or (H, W, 3) uint8 pixels.

    ``subsampling`` of a colour image is taken as given, else assumed 4:2:0 (Pillow's and most
    cameras' default): pixels alone do not show it reliably after the decoder's up-sampling.
    """
    ycc = rgb_to_ycbcr_levels(pixels) if pixels.ndim == 3 else pixels[None].astype(np.float64)
    if min(ycc.shape[1:]) < 16:
        return BlindEstimate(None, (), (0, 0), None)
    clipped = (pixels == 0) | (pixels == 255)
    clipped = clipped.any(axis=2) if clipped.ndim == 3 else clipped
    offset, score = find_grid_offset(ycc[0], clipped)
    if score <= 0:
        return BlindEstimate(None, (), offset, None)
    planes = [(ycc[0], offset, clipped)]
    if pixels.ndim == 3:
        subsampling = subsampling or "4:2:0"
        h, v = SUBSAMPLINGS[subsampling]
        # chroma blocks start where luma's do, on the subsampled grid
        cut = clipped[offset[0] :, offset[1] :]
        planes += [(_subsample(p[offset[0] :, offset[1] :], h, v), (0, 0), _subsample(cut, h, v, np.max))
                   for p in ycc[1:]]
    raws, bounds = [], []
    for plane, at, mask in planes:
        coefs = block_dct(plane, at, clipped=mask).reshape(-1, 64).T
        steps, bound = fit_steps(coefs, 255 if np.abs(coefs).max() < 4 * 255 else 2048)
        if pixels.ndim == 3:
            # RGB rounding errors are equal across a flat block, so they pile up in its DC term
            # (8× a pixel's error): off the lattice, left to the snap or the nearest IJG table
            steps[0] = 0
        raws.append(steps.reshape(8, 8))
        bounds.append(bound.reshape(8, 8))
    colour = len(planes) == 3
    quality = _snap(raws[0], bounds[0])
    chroma: np.ndarray | None
    if quality is not None:
        luma, chroma = ijg_tables(quality)
    else:
        nearest = ijg_tables(_nearest_quality(raws[0]))
        luma = _fill(raws[0], bounds[0], nearest[0])
        chroma = _fill((raws[1] + raws[2]) / 2 * ((raws[1] > 0) & (raws[2] > 0)),
                       np.maximum(bounds[1], bounds[2]), nearest[1]) if colour else None
    if luma.max() <= 1:
        return BlindEstimate(None, tuple(raws), offset, None)
    raw_maps = (raws[0], (raws[1] + raws[2]) / 2) if colour else (raws[0],)
    facts = facts_from_tables(luma, chroma if colour else None, subsampling or "4:2:0", colour=colour,
                              source=source)
    facts = replace(facts, grid_offset=offset)
    return BlindEstimate(facts, raw_maps, offset, quality)


def _nearest_quality(luma: np.ndarray) -> int:
    """The IJG quality whose luma table is closest (log scale) on the determined entries."""
    d = luma > 0
    if not d.any():
        return 50
    errs = [np.mean(np.abs(np.log(ijg_tables(q)[0][d]) - np.log(luma[d]))) for q in range(1, 101)]
    return int(np.argmin(errs)) + 1
