"""Synthetic training images: the flat and graphic content a photo pool lacks.

Text at several sizes, line art, flat shapes, smooth gradients and UI-like screenshots, some with
sensor-like noise, drawn with Pillow from a numpy generator: each image is a pure function of the
generator's state, so batches stay a function of (seed, step). :func:`validation_images` is a
fixed set of them that ``qgcn-train evaluate --sets synthetic`` measures.
"""

from __future__ import annotations

import string

import numpy as np
from PIL import Image, ImageDraw, ImageFont

KINDS = ("text", "lines", "shapes", "gradient", "screenshot")
NOISY_SHARE = 0.3  # of synthetic images, those with added noise
VALIDATION_SEED, VALIDATION_SIZE, VALIDATION_PER_KIND = 20261202, 256, 4
_CHARS = string.ascii_letters + string.digits + "      .,:;-()%/"


def _colour(rng, gray: bool, dark: bool | None = None):
    """A random colour; ``dark`` True/False keeps it below/above mid-grey so text stays legible."""
    lo, hi = (0, 110) if dark else (150, 256) if dark is False else (0, 256)
    c = tuple(int(v) for v in rng.integers(lo, hi, 1 if gray else 3))
    return c[0] if gray else c


def _font(rng, lo: int, hi: int):
    return ImageFont.load_default(size=int(rng.integers(lo, hi + 1)))


def _text(rng, n_lo: int = 3, n_hi: int = 24) -> str:
    return "".join(_CHARS[i] for i in rng.integers(len(_CHARS), size=int(rng.integers(n_lo, n_hi + 1))))


def _draw_text(draw, rng, size, gray, bg_dark):
    y = int(rng.integers(-4, 8))
    while y < size:
        font = _font(rng, 7, 40)
        draw.text((int(rng.integers(-8, size // 3)), y), _text(rng), fill=_colour(rng, gray, dark=not bg_dark),
                  font=font)
        y += int(font.size * rng.uniform(1.1, 1.8))


def _draw_lines(draw, rng, size, gray, bg_dark):
    for _ in range(int(rng.integers(5, 30))):
        pts = [tuple(int(v) for v in rng.integers(-size // 4, size + size // 4, 2)) for _ in range(2)]
        fill, width = _colour(rng, gray, dark=not bg_dark), int(rng.integers(1, 5))
        if rng.random() < 0.3:
            box = sorted((pts[0][0], pts[1][0])), sorted((pts[0][1], pts[1][1]))
            draw.arc((box[0][0], box[1][0], box[0][1] + 1, box[1][1] + 1), int(rng.integers(360)),
                     int(rng.integers(360)), fill=fill, width=width)
        else:
            draw.line(pts, fill=fill, width=width)


def _draw_shapes(draw, rng, size, gray, bg_dark):
    for _ in range(int(rng.integers(3, 13))):
        x0, y0 = (int(v) for v in rng.integers(-size // 4, size, 2))
        x1, y1 = x0 + int(rng.integers(8, size)), y0 + int(rng.integers(8, size))
        outline = _colour(rng, gray) if rng.random() < 0.4 else None
        kind = rng.integers(3)
        if kind == 0:
            draw.rectangle((x0, y0, x1, y1), fill=_colour(rng, gray), outline=outline, width=int(rng.integers(1, 4)))
        elif kind == 1:
            draw.ellipse((x0, y0, x1, y1), fill=_colour(rng, gray), outline=outline, width=int(rng.integers(1, 4)))
        else:
            pts = [tuple(int(v) for v in rng.integers(-size // 4, size + size // 4, 2)) for _ in range(3)]
            draw.polygon(pts, fill=_colour(rng, gray), outline=outline)


def _draw_screenshot(draw, rng, size, gray, bg_dark):
    bar = int(rng.integers(14, 30))
    draw.rectangle((0, 0, size, bar), fill=_colour(rng, gray))
    draw.text((6, 2), _text(rng, 4, 14), fill=_colour(rng, gray, dark=False), font=_font(rng, 9, bar - 4))
    y = bar + int(rng.integers(4, 12))
    while y < size:
        x, kind = int(rng.integers(2, 16)), rng.integers(3)
        if kind == 0:  # a button with a label
            w, h = int(rng.integers(40, 120)), int(rng.integers(16, 30))
            draw.rounded_rectangle((x, y, x + w, y + h), radius=int(rng.integers(0, 8)), fill=_colour(rng, gray),
                                   outline=_colour(rng, gray, dark=True))
            draw.text((x + 6, y + 3), _text(rng, 3, 10), fill=_colour(rng, gray, dark=True), font=_font(rng, 8, h - 6))
            y += h + int(rng.integers(4, 12))
        elif kind == 1:  # a panel with a border and a line of text
            h = int(rng.integers(24, 70))
            draw.rectangle((x, y, size - x, y + h), outline=_colour(rng, gray), width=1)
            draw.text((x + 4, y + 4), _text(rng), fill=_colour(rng, gray, dark=not bg_dark), font=_font(rng, 8, 16))
            y += h + int(rng.integers(4, 12))
        else:  # small square icons in a row
            s = int(rng.integers(8, 20))
            for k in range(int(rng.integers(2, 8))):
                draw.rectangle((x + k * (s + 4), y, x + k * (s + 4) + s, y + s), fill=_colour(rng, gray))
            y += s + int(rng.integers(4, 12))


def _gradient(rng, size: int, gray: bool) -> np.ndarray:
    a, b = (np.atleast_1d(np.array(_colour(rng, gray), float)) for _ in range(2))
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(angle) + yy * np.sin(angle)
    else:
        cy, cx = rng.uniform(0, 1, 2)
        t = np.hypot(yy - cy, xx - cx)
    t = (t - t.min()) / max(np.ptp(t), 1e-6)
    return a + (b - a) * t[..., None]


_DRAW = {"text": _draw_text, "lines": _draw_lines, "shapes": _draw_shapes, "screenshot": _draw_screenshot}


def draw_synthetic(size: int, rng, *, gray: bool = False, kind: str | None = None) -> np.ndarray:
    """One ``size``×``size`` synthetic image, uint8 (H, W) if ``gray`` else (H, W, 3)."""
    kind = kind or KINDS[rng.integers(len(KINDS))]
    if kind == "gradient" or rng.random() < 0.25:  # other kinds sometimes drawn over a gradient
        base = _gradient(rng, size, gray)
    else:
        base = np.broadcast_to(np.atleast_1d(np.array(_colour(rng, gray), float)), (size, size, 1 if gray else 3))
    bg_dark = float(base.mean()) < 128
    im = Image.fromarray(np.ascontiguousarray(np.rint(base).astype(np.uint8)[..., 0] if gray else
                                              np.rint(base).astype(np.uint8)))
    if kind != "gradient":
        _DRAW[kind](ImageDraw.Draw(im), rng, size, gray, bg_dark)
    out = np.asarray(im)
    if rng.random() < NOISY_SHARE:
        noisy = out + rng.normal(0, rng.uniform(1.5, 8), out.shape)
        out = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)


def validation_images(gray: bool = False) -> list[tuple[str, np.ndarray]]:
    """The fixed synthetic evaluation set: ``VALIDATION_PER_KIND`` images of each kind."""
    rng = np.random.default_rng(VALIDATION_SEED)
    return [(f"{kind}{i}", draw_synthetic(VALIDATION_SIZE, rng, gray=gray, kind=kind))
            for kind in KINDS for i in range(VALIDATION_PER_KIND)]
