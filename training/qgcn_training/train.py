"""The training loop: L1 loss, Adam, step decay, atomic checkpoints, exact resume, validation.

Runs on one process or under ``torchrun`` (DDP, gloo on CPU / nccl on CUDA). Everything random
is a function of (seed, step), so ``resume`` continues bit for bit on the CPU.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
import torch.nn.functional as F
from tqdm import tqdm

from napari_jpeg_restore.color import ycbcr_to_rgb
from napari_jpeg_restore.engine import global_input, network_input, pick_device
from napari_jpeg_restore.jpeg import facts_from_image
from napari_jpeg_restore.model import build_model, preset
from napari_jpeg_restore.weights import load_model

from .data import JpegVariety, PatchSampler, encode, load_pool

VAL_QUALITIES = (10, 30, 50, 90)
VAL_CROP = 256


@dataclass
class TrainSettings:
    data: list[str]
    out: str
    preset: str = "small"
    variant: str = "qgcn"
    gray: bool = False
    steps: int | None = None
    minutes: float | None = None
    batch: int = 16
    patch: int = 64
    lr: float = 5e-4
    lr_step: int = 20000
    lr_gamma: float = 0.1
    init: str = "default"  # or "gaussian": N(0, 0.01) as in the paper
    skip_global: bool = False  # QGCN only: train without the global branch (the 64×64 stage)
    clip_grad: float = 0.5  # max gradient norm; typical norms here are 0.03-0.15, a lr 1e-3 run blew up without
    seed: int = 0
    device: str | None = None
    threads: int | None = None
    holdout: int = 3
    val_every: int = 250
    checkpoint_minutes: float = 5.0
    init_from: str | None = None
    variety: dict = field(default_factory=lambda: asdict(JpegVariety()))


def rgb_or_gray(x):
    """Network output/target (Y or YCbCr) -> the space metrics and the loss use (RGB or Y)."""
    return ycbcr_to_rgb(x) if x.shape[1] == 3 else x


def _atomic_save(obj, path: Path):
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Validator:
    """PSNR on fixed held-out crops at fixed qualities (IJG tables, 4:2:0)."""

    def __init__(self, images, with_global: bool):
        self.with_global = with_global
        self.samples = []
        for pix in images:
            h, w = pix.shape[:2]
            y, x = (h - VAL_CROP) // 2, (w - VAL_CROP) // 2
            crop = np.ascontiguousarray(pix[y : y + VAL_CROP, x : x + VAL_CROP])
            for q in VAL_QUALITIES:
                jpeg = encode(crop, q, "ijg", "4:2:0", None)
                self.samples.append((crop, np.asarray(jpeg), facts_from_image(jpeg)))

    @staticmethod
    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
        return 10 * math.log10(255**2 / mse) if mse > 0 else float("inf")

    @torch.inference_mode()
    def __call__(self, model, device) -> tuple[float, float]:
        """(mean PSNR of the restored crops, mean PSNR of the JPEG inputs)."""
        model.eval()
        out, base = [], []
        for gt, decoded, facts in self.samples:
            x = network_input(decoded, facts if model.config.uses_maps else None)[None].to(device)
            g = global_input(decoded, facts)[None].to(device) if self.with_global else None
            y = rgb_or_gray(model(x, g).float()).clamp(0, 1).mul(255).round()[0].permute(1, 2, 0).squeeze(2)
            out.append(self.psnr(y.cpu().numpy(), gt))
            base.append(self.psnr(decoded, gt))
        model.train()
        return float(np.mean(out)), float(np.mean(base))


def _init_gaussian(model, std=0.01):
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.normal_(m.weight, 0.0, std)
            torch.nn.init.zeros_(m.bias)


def train(s: TrainSettings, resume: bool = False) -> Path:
    """Train until ``steps`` or ``minutes`` runs out; returns the final checkpoint path."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = pick_device(s.device)
    if distributed:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
    else:
        rank, world = 0, 1
    if s.threads:
        torch.set_num_threads(s.threads)
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"

    torch.manual_seed(s.seed)
    cfg = preset(s.preset, colour=not s.gray, variant=s.variant)
    model = build_model(cfg)
    if s.init == "gaussian":
        _init_gaussian(model)
    if s.init_from:
        model.load_state_dict(load_model(s.init_from, colour=not s.gray).state_dict())
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=s.lr_step, gamma=s.lr_gamma)
    step, elapsed, cpu = 0, 0.0, 0.0
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        torch.set_rng_state(ck["rng"])
        step, elapsed, cpu = ck["step"], ck["elapsed"], ck.get("cpu_seconds", 0.0)
    net = torch.nn.parallel.DistributedDataParallel(model) if distributed else model

    pool = load_pool([s.data[0]], s.gray)
    held = pool[-s.holdout :] if s.holdout else []
    pool = pool[: len(pool) - s.holdout] + load_pool(s.data[1:], s.gray)
    sampler = PatchSampler(pool, patch=s.patch, variety=JpegVariety(**s.variety), seed=s.seed,
                           with_global=cfg.has_global and not s.skip_global, global_size=cfg.global_size)
    validator = Validator([p for p, _ in held], sampler.with_global) if held and rank == 0 else None
    log_path = out / "log.csv"
    if rank == 0 and not (resume and log_path.exists()):
        log_path.write_text("step,loss,lr,val_psnr,val_jpeg_psnr,elapsed_s,data_wait_share,cpu_s\n")

    stop = {"now": False}
    old_handler = signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))

    def save(ranks_identical=None):
        if rank == 0:
            _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                          "scheduler": sched.state_dict(), "rng": torch.get_rng_state(), "step": step,
                          "elapsed": elapsed, "cpu_seconds": cpu, "settings": asdict(s), "config": cfg.to_dict(),
                          "world_size": world, "ranks_identical": ranks_identical}, ckpt_path)

    start, last_ckpt, wait, busy, losses = time.time() - elapsed, time.time(), 0.0, 0.0, []
    # CPU time of this process (all its threads): what "equal CPU time" compares, whatever else runs
    cpu_start = time.process_time() - cpu
    bar = tqdm(total=s.steps, initial=step, disable=rank != 0, dynamic_ncols=True, desc="train")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    model.train()
    while not stop["now"]:
        if s.steps is not None and step >= s.steps:
            break
        if s.minutes is not None and time.time() - start >= s.minutes * 60:
            break
        t0 = time.time()
        x, g, t = sampler.batch(step, s.batch // world, rank, world)
        x, t = x.to(device), t.to(device)
        g = g.to(device) if g is not None else None
        t1 = time.time()
        with autocast:
            y = net(x, g)
        loss = F.l1_loss(rgb_or_gray(y.float()), rgb_or_gray(t))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if s.clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), s.clip_grad)
        opt.step()
        sched.step()
        step += 1
        wait, busy = wait + (t1 - t0), busy + (time.time() - t1)
        losses.append(loss.item())
        elapsed, cpu = time.time() - start, time.process_time() - cpu_start
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", sps=f"{1 / max(time.time() - t0, 1e-9):.2f}")
        if step % s.val_every == 0 and rank == 0:
            val, base = validator(model, device) if validator else (float("nan"), float("nan"))
            with open(log_path, "a", newline="") as f:
                csv.writer(f).writerow([step, f"{np.mean(losses):.5f}", f"{sched.get_last_lr()[0]:.3g}",
                                        f"{val:.3f}", f"{base:.3f}", f"{elapsed:.0f}", f"{wait / (wait + busy):.3f}",
                                        f"{cpu:.1f}"])
            losses = []
        if time.time() - last_ckpt >= s.checkpoint_minutes * 60:
            save()
            last_ckpt = time.time()
    bar.close()
    ranks_identical = None
    if distributed:
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(world)]
        torch.distributed.all_gather(gathered, flat)
        ranks_identical = all(torch.equal(gathered[0], g) for g in gathered)
    save(ranks_identical)
    signal.signal(signal.SIGTERM, old_handler)
    if distributed:
        torch.distributed.destroy_process_group()
    return ckpt_path


def record_for(ck: dict) -> dict:
    """The training record stored with exported weights."""
    s = ck["settings"]
    return {
        "preset": s["preset"], "variant": s["variant"], "gray": s["gray"], "steps": ck["step"],
        "train_seconds": round(ck["elapsed"]),
        "train_cpu_seconds": round(ck["cpu_seconds"]) if "cpu_seconds" in ck else None,
        "batch": s["batch"], "patch": s["patch"], "lr": s["lr"],
        "lr_step": s["lr_step"], "clip_grad": s.get("clip_grad"), "init": s["init"], "skip_global": s.get("skip_global", False), "init_from": s["init_from"], "data": s["data"],
        "holdout": s["holdout"], "jpeg_variety": s["variety"], "threads": s["threads"],
        "hardware": {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                     "cpus": os.cpu_count(), "torch": torch.__version__,
                     "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "git_commit": git_commit(),
    }


def model_from_checkpoint(ck: dict):
    """The network of a loaded checkpoint, as it was trained (eval mode)."""
    from napari_jpeg_restore.model import ModelConfig

    model = build_model(ModelConfig.from_dict(ck["config"]))
    model.load_state_dict(ck["model"])
    if ck["settings"].get("skip_global") and model.config.has_global:
        # trained with global features 0: make the untrained branch output exactly that, so the
        # engine needs no special case and a later 256×256 stage starts from what was learned
        torch.nn.init.zeros_(model.global_branch.fc[-1].weight)
        torch.nn.init.zeros_(model.global_branch.fc[-1].bias)
    return model.eval()


GUARD_IMAGES, GUARD_QUALITIES = ("bikes", "parrots", "caps"), (10, 30, 50, 90)


def guard_gains(folder: Path, data_root: Path) -> dict | None:
    """PSNR gains over JPEG of the exported weights on three LIVE1 images at QF 10, 30, 50, 90,
    through the engine with the default tile: the values CI checks the shipped model against."""
    from napari_jpeg_restore.engine import Engine
    from napari_jpeg_restore.weights import load_model

    from .evaluate import coded
    from .metrics import psnr

    files = [data_root / "LIVE1" / f"{n}.png" for n in GUARD_IMAGES]
    if not all(f.is_file() for f in files):
        return None
    model = load_model(folder, colour=None)
    engine, gains = Engine(model), {}
    for name, f in zip(GUARD_IMAGES, files):
        with Image.open(f) as im:
            gt = np.asarray(im.convert("RGB" if model.config.colour else "L"))
        for q in GUARD_QUALITIES:
            jpeg = coded(gt, q)
            out = engine.run(np.asarray(jpeg), facts_from_image(jpeg))
            gains[f"{name}@{q}"] = round(psnr(out, gt) - psnr(np.asarray(jpeg), gt), 4)
    return gains


def export(checkpoint, out_dir, *, evaluation: dict | None = None, dtype: str = "float16",
           data_root="../shared/data") -> Path:
    """Checkpoint -> shipped safetensors + config.json with the training record (no optimizer),
    including the guard gains (:func:`guard_gains`) measured on the exported weights."""
    from napari_jpeg_restore.weights import save_weights

    ck = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = model_from_checkpoint(ck)
    record = record_for(ck)
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


def record_guard(folder, data_root="../shared/data") -> dict | None:
    """Measure :func:`guard_gains` of exported weights and store them in their config.json
    (the weights and their checksums stay as they are)."""
    from napari_jpeg_restore.weights import read_config

    folder = Path(folder)
    guard = guard_gains(folder, Path(data_root))
    if guard is not None:
        config = read_config(folder)
        config["record"]["guard"] = {"images": "LIVE1 " + ", ".join(GUARD_IMAGES), "tile": 512, "gains_db": guard}
        tmp = folder / ".config.json.tmp"
        tmp.write_text(json.dumps(config, indent=2) + "\n")
        os.replace(tmp, folder / "config.json")
    return guard
