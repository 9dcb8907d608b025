"""Image quality metrics of the evaluation, on uint8-range arrays (H, W) or (H, W, C).

- PSNR over all values (every RGB value; gray: the one channel), peak 255, no border crop.
- SSIM (Wang et al. 2004) per channel with an 11×11 Gaussian window, σ = 1.5, K1 = 0.01,
  K2 = 0.03, population covariances; filtered with symmetric edge padding and averaged over the
  map without its 5-pixel rim, as scikit-image does (``gaussian_weights=True``); mean over channels.
- PSNR-B (Yim & Bovik 2011): 10·log10(255² / (MSE + BEF)), where BEF = η·(D_B − D_B^c), D_B the
  mean squared difference of neighbouring pixel pairs across 8×8 block boundaries of the image
  under test, D_B^c of pairs not across, η = log2(8) / log2(min(H, W)) when D_B > D_B^c, else 0.
  Computed per channel and averaged. The QGCN paper's colour PSNR-B instead adds the blocking
  terms of the R, G and B channels into one MSE-B (its numbers run lower); FBCNN uses Y only.
"""

from __future__ import annotations

import numpy as np

BLOCK = 8


def _channels(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[..., None] if a.ndim == 2 else a


def psnr(test: np.ndarray, ref: np.ndarray) -> float:
    mse = np.mean((_channels(test) - _channels(ref)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _gaussian_filter(x: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    t = np.arange(-radius, radius + 1)
    k = np.exp(-(t**2) / (2 * sigma**2))
    k /= k.sum()
    p = np.pad(x, radius, mode="symmetric")
    p = sum(w * p[:, i : i + x.shape[1]] for i, w in enumerate(k))
    return sum(w * p[i : i + x.shape[0]] for i, w in enumerate(k))


def ssim(test: np.ndarray, ref: np.ndarray) -> float:
    c1, c2, rim = (0.01 * 255) ** 2, (0.03 * 255) ** 2, 5
    values = []
    for x, y in zip(np.moveaxis(_channels(test), -1, 0), np.moveaxis(_channels(ref), -1, 0)):
        mx, my = _gaussian_filter(x), _gaussian_filter(y)
        vx = _gaussian_filter(x * x) - mx * mx
        vy = _gaussian_filter(y * y) - my * my
        cxy = _gaussian_filter(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        values.append(s[rim:-rim, rim:-rim].mean())
    return float(np.mean(values))


def blocking_effect(channel: np.ndarray) -> float:
    """BEF of one channel (Yim & Bovik 2011, eq. 8-12)."""
    h, w = channel.shape
    dh = np.diff(channel, axis=1) ** 2  # pair (x, x+1) crosses a boundary when (x+1) % 8 == 0
    dv = np.diff(channel, axis=0) ** 2
    across_h = (np.arange(1, w) % BLOCK) == 0
    across_v = (np.arange(1, h) % BLOCK) == 0
    n_b = across_h.sum() * h + across_v.sum() * w
    n_c = (~across_h).sum() * h + (~across_v).sum() * w
    if n_b == 0 or n_c == 0:
        return 0.0
    d_b = (dh[:, across_h].sum() + dv[across_v].sum()) / n_b
    d_c = (dh[:, ~across_h].sum() + dv[~across_v].sum()) / n_c
    eta = np.log2(BLOCK) / np.log2(min(h, w)) if d_b > d_c else 0.0
    return float(eta * (d_b - d_c))


def psnr_b(test: np.ndarray, ref: np.ndarray) -> float:
    values = []
    for x, y in zip(np.moveaxis(_channels(test), -1, 0), np.moveaxis(_channels(ref), -1, 0)):
        mse_b = np.mean((x - y) ** 2) + blocking_effect(x)
        values.append(float("inf") if mse_b == 0 else 10 * np.log10(255.0**2 / mse_b))
    return float(np.mean(values))
