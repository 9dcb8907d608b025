"""Checkpoint -> shipped weights, with the training record and the guard gains CI re-checks."""

from __future__ import annotations

import csv
import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from napari_jpeg_restore.engine import Engine
from napari_jpeg_restore.jpeg import encode_jpeg, facts_from_image
from napari_jpeg_restore.options import DEFAULTS
from napari_jpeg_restore.weights import load_model, save_weights, update_record

from .checkpoint import load_checkpoint, model_from_checkpoint
from .data import DATA_ROOT
from .metrics import psnr

GUARD_IMAGES, GUARD_QUALITIES = ("bikes", "parrots", "caps"), (10, 30, 50, 90)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def record_for(ck: dict) -> dict:
    """The training record stored with exported weights."""
    s = ck["settings"]
    return {
        "preset": s["preset"], "variant": s["variant"], "gray": s["gray"], "steps": ck["step"],
        "train_seconds": round(ck["elapsed"]),
        "train_cpu_seconds": round(ck["cpu_seconds"]),
        "batch": s["batch"], "patch": s["patch"], "lr": s["lr"], "schedule": s.get("schedule", "step"),
        "lr_step": s["lr_step"], "lr_gamma": s.get("lr_gamma"), "lr_final": s.get("lr_final"), "clip_grad": s.get("clip_grad"), "init": s["init"],
        "skip_global": s.get("skip_global", False), "train_only": s.get("train_only"), "init_from": s["init_from"],
        "loss": s.get("loss", "l1"), "train_consistency": s.get("consistency"), "seed": s.get("seed"),
        # what `qgcn-train train --continue` needs to go on: the settings, and the lineage's place in its plan
        "lineage_steps": s.get("steps_before", 0) + ck["step"], "plan_steps": s.get("plan_steps"), "settings": s,
        "data": s["data"],
        "holdout": s["holdout"], "jpeg_variety": s["variety"], "threads": s["threads"],
        "precision": s.get("precision", "float32 (bfloat16 autocast on CUDA)"), "ran": ck["ran"],
        "hardware": {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                     "cpus": os.cpu_count(), "torch": torch.__version__,
                     "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "git_commit": git_commit(),
    }


def guard_gains(folder: Path, data_root: Path) -> dict | None:
    """PSNR gains over JPEG of the exported weights on three LIVE1 images at QF 10, 30, 50, 90,
    through the engine with the default options: the values CI checks the shipped model against."""
    files = [data_root / "LIVE1" / f"{n}.png" for n in GUARD_IMAGES]
    if not all(f.is_file() for f in files):
        return None
    model = load_model(folder, colour=None)
    engine, gains = Engine.for_model(model, DEFAULTS), {}
    for name, f in zip(GUARD_IMAGES, files):
        with Image.open(f) as im:
            gt = np.asarray(im.convert("RGB" if model.config.colour else "L"))
        for q in GUARD_QUALITIES:
            jpeg = encode_jpeg(gt, quality=q)
            out = engine.run(np.asarray(jpeg), facts_from_image(jpeg))
            gains[f"{name}@{q}"] = round(psnr(out, gt) - psnr(np.asarray(jpeg), gt), 4)
    return gains


#: What an exported model's record says when the global branch, never trained, is not in its weights.
GLOBAL_LEFT_OUT = "left out: trained with --skip-global (global features held at zero)"


def export(checkpoint, out_dir, *, ema: bool = False, evaluation: dict | None = None, dtype: str = "float16",
           data_root=DATA_ROOT) -> Path:
    """Checkpoint -> shipped safetensors + config.json with the training record (no optimizer),
    including the guard gains (:func:`guard_gains`) measured on the exported weights. With
    ``ema``, the moving average of the weights is exported instead of the last weights."""
    ck = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ck, ema=ema)
    record = record_for(ck)
    record["weights"] = f"moving average, decay {ck['settings']['ema']}" if ema else "last step"
    if ck["settings"].get("skip_global"):
        record["global_branch"] = GLOBAL_LEFT_OUT
    if ck["settings"].get("init_from"):
        # the lineage: what the warm start itself was trained on, and how long
        try:
            record["warm_start"] = load_model(ck["settings"]["init_from"], colour=None).record
        except ValueError as exc:
            record["warm_start"] = {"unavailable": str(exc)}
    log = Path(checkpoint).with_name("log.csv")
    if log.exists():
        rows = list(csv.DictReader(log.open()))
        record["validation"] = rows[-1] if rows else None
    if evaluation:
        record["evaluation"] = evaluation
    folder = save_weights(model, out_dir, record=record, dtype=dtype)
    record_guard(folder, data_root)
    return folder


def record_guard(folder, data_root=DATA_ROOT) -> dict | None:
    """Measure :func:`guard_gains` of exported weights and store them in their record."""
    guard = guard_gains(Path(folder), Path(data_root))
    if guard is not None:
        update_record(folder, guard={"images": "LIVE1 " + ", ".join(GUARD_IMAGES), "tile": DEFAULTS.tile,
                                     "gains_db": guard})
    return guard
