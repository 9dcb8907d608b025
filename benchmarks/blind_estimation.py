"""How well blind mode recovers JPEG tables from pixels (not a test).

    python benchmarks/blind_estimation.py [--set LIVE1]

1. Exact recovery of Pillow's tables (luma and chroma, snapped to the IJG family) on every image
   of the set at QF 10, 20, ..., 90.
2. Raw estimates on custom non-IJG tables (``qtables=``): mean absolute error of the entries the
   estimator determined, and the share it determined.
3. Grid-offset detection on crops shifted by 1..7 pixels (both axes), QF 50.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from napari_jpeg_restore.blind import estimate
from napari_jpeg_restore.jpeg import encode_jpeg, ijg_tables

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def coded(img: Image.Image, **save) -> np.ndarray:
    return np.asarray(encode_jpeg(img, **save))


def custom_tables(rng) -> list[np.ndarray]:
    uv = np.add.outer(np.arange(8), np.arange(8))
    return [np.clip(np.rint(rng.uniform(2, 12) + rng.uniform(1, 8) * uv + rng.integers(-3, 4, (8, 8))), 1, 255)
            .astype(int) for _ in range(2)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default="LIVE1")
    args = ap.parse_args()
    images = [Image.open(p).convert("RGB") for p in sorted((DATA / args.set).glob("*.png"))]
    print(f"{args.set}: {len(images)} images\n\n| QF | exact luma+chroma | snapped QF correct |\n| --- | --- | --- |")
    for q in range(10, 100, 10):
        exact = snapped = 0
        luma, chroma = ijg_tables(q)
        for img in images:
            found = estimate(coded(img, quality=q))
            snapped += found.quality == q
            exact += found.facts is not None and np.array_equal(found.facts.tables[0], luma) and np.array_equal(
                found.facts.tables[1], chroma)
        print(f"| {q} | {exact}/{len(images)} ({100 * exact / len(images):.0f} %) | {snapped}/{len(images)} |")

    rng = np.random.default_rng(0)
    errors, shares = [], []
    for img in images:
        luma, chroma = custom_tables(rng)
        raw = estimate(coded(img, qtables=[luma.ravel().tolist(), chroma.ravel().tolist()], subsampling=0),
                       "4:4:4").raw_tables[0]
        known = raw > 0
        errors.append(np.abs(raw[known] - luma[known]).mean())
        shares.append(known.mean())
    print(f"\nCustom non-IJG tables (4:4:4), raw luma estimates: mean |error| {np.mean(errors):.2f} "
          f"on the determined entries ({100 * np.mean(shares):.0f} % of 64 determined; worst image "
          f"{np.max(errors):.2f})")

    print("\n| shift (dy=dx) | offset found |\n| --- | --- |")
    for s in range(1, 8):
        hits = sum(estimate(coded(img, quality=50)[s:, s:]).grid_offset == ((-s) % 8, (-s) % 8) for img in images)
        print(f"| {s} | {hits}/{len(images)} |")
    mixed = sum(estimate(coded(img, quality=50)[s:, 7 - s:]).grid_offset == ((-s) % 8, (s - 7) % 8)
                for s, img in zip(range(1, 8), images))
    print(f"| dy≠dx (7 images) | {mixed}/7 |")


if __name__ == "__main__":
    main()
