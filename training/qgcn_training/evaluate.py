"""``qgcn-train evaluate``: the paper's protocol on LIVE1, BSDS500 test and Classic5.

Test JPEGs are made with Pillow at default settings (4:2:0, IJG tables), restored through the
core's engine with the file's own tables, and scored against the originals with PSNR, SSIM and
PSNR-B (see :mod:`.metrics`). Gains over JPEG are reported beside the paper's, since gains
compare across protocols where absolute PSNR does not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from napari_jpeg_restore.consistency import coefficients_from_bytes
from napari_jpeg_restore.engine import Engine
from napari_jpeg_restore.jpeg import facts_from_image, jpeg_bytes, open_jpeg_bytes
from napari_jpeg_restore.weights import TrainedModel, load_model, read_config, resolve

from .checkpoint import load_checkpoint, model_from_checkpoint
from .metrics import psnr, psnr_b, ssim
from .paper_tables import PAPER
from .synthetic import validation_images

#: Images of the training pool's first folder kept for choosing settings (the consistency α, a
#: recipe): its last ones, whole, so a choice is never made on LIVE1 or BSDS500 test.
POOL_VALIDATION = 12
# set name -> (folder under the data root, glob, gray, how many of the last files: None for all)
SETS = {
    "live1": ("LIVE1", "*.png", False, None),
    "live1-gray": ("LIVE1", "*.png", True, None),
    "bsds500": ("BSDS500/test", "*.jpg", False, None),
    "bsds500-gray": ("BSDS500/test", "*.jpg", True, None),
    "classic5": ("Classic5", "*.png", True, None),
    # drawn, not read: a fixed set of text, line art, shapes, gradients and screenshots
    "synthetic": (None, None, False, None),
    "synthetic-gray": (None, None, True, None),
    "pool-val": ("WikiPhotos49", "*.png", False, POOL_VALIDATION),
    "pool-val-gray": ("WikiPhotos49", "*.png", True, POOL_VALIDATION),
}


def load_any(spec: str, colour: bool):
    """Shipped weights ("default" or a name), an exported folder, or a training checkpoint;
    None for a named model of the other kind (its sets are skipped)."""
    path = Path(spec)
    if path.suffix == ".pt" and path.is_file():
        model = model_from_checkpoint(load_checkpoint(path))
        return TrainedModel(model, path.parent) if model.config.colour == colour else None
    if spec != "default" and read_config(resolve(spec, colour))["model"]["colour"] != colour:
        return None
    return load_model(spec, colour=colour)


def set_images(root: Path, name: str) -> list[tuple[str, np.ndarray]]:
    folder, pattern, gray, last = SETS[name]
    if folder is None:
        return validation_images(gray=gray)
    files = sorted((root / folder).glob(pattern))[-last if last else 0 :]
    if not files:
        raise FileNotFoundError(f"{root / folder}: no {pattern} images for set {name}")
    out = []
    for f in files:
        with Image.open(f) as im:
            out.append((f.stem, np.asarray(im.convert("L" if gray else "RGB"))))
    return out


@dataclass
class Row:
    set: str
    qf: int
    images: int
    jpeg: tuple[float, float, float]
    ours: tuple[float, float, float]
    worst_gain: float
    worst_image: str


def coded(gt: np.ndarray, quality: int):
    """``gt`` coded by Pillow at ``quality`` (its defaults: 4:2:0, IJG tables), as a file reader
    sees it: (decoded pixels, facts, the file's quantized coefficients)."""
    data = jpeg_bytes(gt, quality=quality)
    jpeg = open_jpeg_bytes(data)
    facts = facts_from_image(jpeg)
    return np.asarray(jpeg), facts, coefficients_from_bytes(data, facts)


def evaluate_set(engine: Engine, images, qualities, set_name: str, progress=None) -> list[Row]:
    rows = []
    for q in qualities:
        before, after, gains = [], [], []
        for name, gt in images:
            decoded, facts, coefficients = coded(gt, q)
            restored = engine.run(decoded, facts, coefficients=coefficients)
            b = (psnr(decoded, gt), ssim(decoded, gt), psnr_b(decoded, gt))
            a = (psnr(restored, gt), ssim(restored, gt), psnr_b(restored, gt))
            before.append(b)
            after.append(a)
            gains.append((a[0] - b[0], name))
            if progress:
                progress()
        worst = min(gains)
        rows.append(Row(set_name, q, len(images), tuple(np.mean(before, 0)), tuple(np.mean(after, 0)),
                        float(worst[0]), worst[1]))
    return rows


#: The consistency half-widths a model's α is chosen from, the qualities that choose it, and the
#: side of the centre crop of each image it is chosen on (the projection acts block by block, so a
#: crop shows it as well as the whole image, at a fifth of the cost).
ALPHA_CANDIDATES = (0.2, 0.3, 0.4, 0.5)
ALPHA_QUALITIES = (10, 30, 50, 90, 95)
ALPHA_CROP = 512


def centre_crops(images, size: int):
    """Each (name, pixels) cut to its centre ``size``×``size`` (or less where smaller)."""
    out = []
    for name, pix in images:
        y, x = max((pix.shape[0] - size) // 2, 0), max((pix.shape[1] - size) // 2, 0)
        out.append((name, np.ascontiguousarray(pix[y : y + size, x : x + size])))
    return out


def choose_alpha(model, images, options, qualities=ALPHA_QUALITIES, candidates=ALPHA_CANDIDATES, progress=None):
    """The consistency α that gives ``model`` the highest PSNR gain over JPEG on ``images``, each
    quality counting equally; returns (α, {setting: {qf: [mean gain, worst-image gain]}}) with
    the setting "off" (no projection) measured beside the candidates."""
    table = {}
    for setting in ("off", *candidates):
        rows = evaluate_set(Engine.for_model(model, replace(options, consistency=setting)), images, qualities, "choice",
                            progress)
        table[str(setting)] = {r.qf: [round(r.ours[0] - r.jpeg[0], 4), round(r.worst_gain, 4)] for r in rows}
    best = max(candidates, key=lambda a: np.mean([gain for gain, _ in table[str(a)].values()]))
    return best, table


#: The tile overlaps a model's own is chosen from (multiples of the MCU grid), the qualities that
#: choose it (the lowest correct the most, so seams show there first), the most a tiled output may
#: differ from the whole image's, in levels (1: the rounding of a float difference), and the side
#: of the centre crops it is chosen on (several default tiles each: seams, corners among them).
OVERLAP_CANDIDATES = (16, 32, 48, 64, 96, 128)
OVERLAP_QUALITIES = (10, 30)
OVERLAP_LEVELS = 1
OVERLAP_CROP = 1024


def choose_overlap(model, images, options, qualities=OVERLAP_QUALITIES, candidates=OVERLAP_CANDIDATES,
                   progress=None):
    """The smallest overlap at which ``model``'s output tiled as ``options.tile`` says equals its
    whole-image output within :data:`OVERLAP_LEVELS` on every image and quality (None if no
    candidate narrower than half the tile does); returns (overlap, {overlap: largest difference
    seen}); a candidate stops at its first image beyond that, so a failed one costs little.
    The projection is off (it acts block by block, the same tiled or whole), and the network runs
    in float32: bfloat16 rounds differently in windows of other sizes, by a level or two at any
    overlap, while the overlap answers for how far the network sees."""
    options = replace(options, precision="float32")
    cases = [coded(gt, q)[:2] for q in qualities for _, gt in images]
    untiled = Engine.for_model(model, replace(options, tile=0, consistency="off"))
    whole = [untiled.run(*case) for case in cases]
    table = {}
    for overlap in (o for o in candidates if 2 * o < options.tile):
        engine = Engine.for_model(model, replace(options, overlap=overlap, consistency="off"))
        table[overlap] = 0
        for case, reference in zip(cases, whole):
            tiled = engine.run(*case)
            table[overlap] = max(table[overlap], int(np.abs(tiled.astype(np.int16) - reference).max()))
            if progress:
                progress()
            if table[overlap] > OVERLAP_LEVELS:
                break
        else:
            return overlap, table
    return None, table


def inputs_hash(images) -> str:
    h = hashlib.sha256()
    for name, pix in images:
        h.update(name.encode())
        h.update(pix.tobytes())
    return h.hexdigest()[:16]


def merge_results(results: list[dict]) -> dict:
    """One record from several ``evaluate --json`` results of the same model and options (e.g. QF
    10-50 on two sets, QF 60-95 on LIVE1, the plot's curves): rows and hashes joined."""
    merged = {**results[0], "hashes": {}, "rows": [], "gain_curves": {}}
    seen = set()
    for r in results:
        for key in ("model", "options", "precision_run"):
            if r[key] != merged[key]:
                raise ValueError(f"results of different runs cannot be merged: {key} {merged[key]!r} vs {r[key]!r}")
        if r["gray_model"] and merged["gray_model"] not in (None, r["gray_model"]):
            raise ValueError(f"results of different gray models: {merged['gray_model']!r} vs {r['gray_model']!r}")
        merged["gray_model"] = merged["gray_model"] or r["gray_model"]
        for row in r["rows"]:
            if (row["set"], row["qf"]) in seen:
                raise ValueError(f"{row['set']} at QF {row['qf']} is measured twice")
            seen.add((row["set"], row["qf"]))
        merged["rows"] += r["rows"]
        merged["hashes"].update(r["hashes"])
        merged["gain_curves"].update(r["gain_curves"])
    return merged


def gains_summary(rows: list[Row]) -> str:
    """One line per set: PSNR gain over JPEG per QF, ours and (the paper's QGCN)."""
    qfs = sorted({r.qf for r in rows})
    lines = ["| PSNR gain over JPEG: ours (paper QGCN) | " + " | ".join(f"QF {q}" for q in qfs) + " |",
             "| --- |" + " --- |" * len(qfs)]
    by_key = {(r.set, r.qf): r for r in rows}
    for name in dict.fromkeys(r.set for r in rows):
        cells = []
        for q in qfs:
            r = by_key.get((name, q))
            paper_j, paper_q = PAPER.get((name, "jpeg"), {}).get(q), PAPER.get((name, "qgcn"), {}).get(q)
            paper = f" ({paper_q[0] - paper_j[0]:+.2f})" if paper_j else ""
            cells.append(f"{r.ours[0] - r.jpeg[0]:+.2f}{paper}" if r else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown(rows: list[Row], hashes: dict) -> str:
    lines = [gains_summary(rows), "| set | QF | n | metric | JPEG | ours | gain | worst-image gain | paper JPEG | paper QGCN | paper gain |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        paper_j, paper_q = PAPER.get((r.set, "jpeg"), {}).get(r.qf), PAPER.get((r.set, "qgcn"), {}).get(r.qf)
        for i, metric in enumerate(("PSNR", "SSIM", "PSNR-B")):
            fmt = "{:.4f}" if metric == "SSIM" else "{:.2f}"
            gain = r.ours[i] - r.jpeg[i]
            worst = f"{r.worst_gain:+.2f} ({r.worst_image})" if i == 0 else ""
            paper = [fmt.format(paper_j[i]), fmt.format(paper_q[i]), ("{:+" + fmt[2:]).format(paper_q[i] - paper_j[i])] \
                if paper_j else ["", "", ""]
            lines.append(f"| {r.set} | {r.qf} | {r.images} | {metric} | {fmt.format(r.jpeg[i])} | "
                         f"{fmt.format(r.ours[i])} | {('{:+' + fmt[2:]).format(gain)} | {worst} | " + " | ".join(paper) + " |")
    lines.append("")
    lines.append("Inputs (sha256 of names + pixels, 16 hex): " + ", ".join(f"{k} {v}" for k, v in hashes.items()))
    return "\n".join(lines) + "\n"


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    for label, points in curves.items():
        qs, gains = zip(*points)
        ax.plot(qs, gains, marker="o", label=label)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xlabel("JPEG quality factor (Pillow)")
    ax.set_ylabel("PSNR gain over JPEG (dB)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


CROP_IMAGES = ("bikes", "parrots", "sailing1", "womanhat")


def crops(engine: Engine, images, quality: int, folder: Path, size: int = 192) -> None:
    """Side-by-side centre crops (input | restored | ground truth) as PNG, one per image of
    :data:`CROP_IMAGES`, each restored whole (the global branch sees the whole image)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, gt in images:
        if name not in CROP_IMAGES:
            continue
        decoded, facts, coefficients = coded(gt, quality)
        restored = engine.run(decoded, facts, coefficients=coefficients)
        y, x = (gt.shape[0] - size) // 2, (gt.shape[1] - size) // 2
        row = np.concatenate([a[y : y + size, x : x + size] for a in (decoded, restored, gt)], axis=1)
        Image.fromarray(row).save(folder / f"{name}-qf{quality}.png")
