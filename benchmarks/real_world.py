"""Measurements of a model on real-world cases, through restore() (not a test).

    python benchmarks/real_world.py [--model default] [--gray-model default] [--threads 2]
        [--parts double,strength,high] [--kinds colour,gray]

- double: LIVE1 saved twice, QF pairs (10,30), (30,10), (10,50), (30,50) (FBCNN's double-JPEG
  table), aligned and with the grid shifted by (4, 4) between the saves (the first JPEG cropped by 4
  pixels at top and left), colour and gray: mean PSNR gain over the double-JPEG input and the worst
  image.
- strength: LIVE1 colour at QF 10 and 50, strength 0.5 ... 2: mean gain.
- high: LIVE1 colour and gray at QF 60, 70, 80, 90, 95 and the never-JPEG originals: mean gain and
  the worst image (the never-worse rule: no image may lose more than 0.05 dB).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from napari_jpeg_restore import restore
from napari_jpeg_restore.jpeg import encode_jpeg
from qgcn_training.metrics import psnr

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def coded(img: Image.Image, quality: int) -> Image.Image:
    return encode_jpeg(img, quality=quality)


def gains(pairs, **options):
    """[(name, ground truth, JPEG image)] -> list of (gain dB, name)."""
    out = []
    for name, gt, jpeg in pairs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            restored = restore(jpeg, **options)
        out.append((psnr(restored, gt) - psnr(jpeg, gt), name))
    return out


def summary(g) -> str:
    worst = min(g)
    return f"{np.mean([v for v, _ in g]):+.2f} | {worst[0]:+.2f} ({worst[1]})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--gray-model", default="default")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parts", default="double,strength,high")
    ap.add_argument("--kinds", default="colour,gray")
    ap.add_argument("--limit", type=int, help="First N images only (a quick look, not the table).")
    args = ap.parse_args()
    parts = args.parts.split(",")
    colour = [(p.stem, Image.open(p).convert("RGB")) for p in sorted((DATA / "LIVE1").glob("*.png"))][: args.limit]
    kinds = {"colour": (colour, args.model), "gray": ([(n, im.convert("L")) for n, im in colour], args.gray_model)}
    kinds = {k: v for k, v in kinds.items() if k in args.kinds.split(",")}
    opts = lambda model: dict(model=None if model == "default" else model, threads=args.threads)  # noqa: E731

    if "double" in parts:
        print("| kind | QF1 → QF2 | grid | mean gain (dB) | worst image |\n| --- | --- | --- | --- | --- |")
        for kind, (images, model) in kinds.items():
            for q1, q2 in [(10, 30), (30, 10), (10, 50), (30, 50)]:
                for shift in (0, 4):
                    pairs = []
                    for name, gt in images:
                        first = coded(gt, q1).crop((shift, shift, gt.width, gt.height))
                        pairs.append((name, gt.crop((shift, shift, gt.width, gt.height)), coded(first, q2)))
                    label = "aligned" if shift == 0 else "shifted (4, 4)"
                    print(f"| {kind} | {q1} → {q2} | {label} | {summary(gains(pairs, **opts(model)))} |")
    if "strength" in parts:
        images, model = kinds["colour"]
        print("\n| QF | strength | mean gain (dB) | worst image |\n| --- | --- | --- | --- |")
        for q in (10, 50):
            pairs = [(n, gt, coded(gt, q)) for n, gt in images]
            for s in (0.5, 0.75, 1.0, 1.5, 2.0):
                print(f"| {q} | {s} | {summary(gains(pairs, strength=s, **opts(model)))} |")
    if "high" in parts:
        print("\n| kind | QF | mean gain (dB) | worst image |\n| --- | --- | --- | --- |")
        for kind, (images, model) in kinds.items():
            for q in (60, 70, 80, 90, 95):
                pairs = [(n, gt, coded(gt, q)) for n, gt in images]
                print(f"| {kind} | {q} | {summary(gains(pairs, **opts(model)))} |")
            # never JPEG-coded: blind mode should find nothing and change nothing
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                change = [(psnr(restore(gt, **opts(model)), gt), n) for n, gt in images]
            same = sum(np.isinf(v) for v, _ in change)
            worst = min(change)
            print(f"| {kind} | never JPEG | {same}/{len(change)} returned unchanged | "
                  f"lowest PSNR(output, input) {worst[0]:.2f} dB ({worst[1]}) |")


if __name__ == "__main__":
    main()
