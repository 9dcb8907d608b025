"""Render docs/side_by_side.png: the bundled CC0 sample (samples/chelsea.png, photo by Stéfan van
der Walt) at JPEG quality 10 | restored by the shipped model | original, 2× enlarged crops.

    python docs/side_by_side.py [--model default] [--out docs/side_by_side.png]
"""

from __future__ import annotations

import argparse

from PIL import Image, ImageDraw

from napari_jpeg_restore import restore, sample_jpeg
from napari_jpeg_restore.sample_image import SAMPLE
from qgcn_training.metrics import psnr

BOX = (150, 40, 310, 200)  # the cat's eye and fur: texture, edges and smooth shading


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", default="docs/side_by_side.png")
    args = ap.parse_args()
    coded = sample_jpeg(10)
    restored = restore(coded, model=None if args.model == "default" else args.model)
    original = Image.open(SAMPLE).convert("RGB")
    panels = [im.crop(BOX).resize(((BOX[2] - BOX[0]) * 2, (BOX[3] - BOX[1]) * 2), Image.Resampling.NEAREST)
              for im in (coded, restored, original)]
    w, h = panels[0].size
    sheet = Image.new("RGB", (3 * w + 20, h + 24), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (panel, label) in enumerate(zip(panels, ("JPEG quality 10", "restored", "original"))):
        sheet.paste(panel, (i * (w + 10), 24))
        draw.text((i * (w + 10) + 4, 6), label, fill="black")
    sheet.save(args.out)

    print(f"whole image: JPEG {psnr(coded, original):.2f} dB, restored {psnr(restored, original):.2f} dB")


if __name__ == "__main__":
    main()
