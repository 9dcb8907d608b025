"""The training loop: L1 loss, Adam, a planned learning rate, an EMA of the weights, atomic
checkpoints, exact resume, validation.

Runs on one process or under ``torchrun`` (DDP, gloo on CPU / nccl on CUDA). Everything random
is a function of (seed, step), so ``resume`` continues bit for bit on the CPU.
"""

from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from napari_jpeg_restore.consistency import coefficients_from_bytes, project
from napari_jpeg_restore.device import memory_format, pick_device, run_precision
from napari_jpeg_restore.jpeg import facts_from_image, open_jpeg_bytes
from napari_jpeg_restore.model import PRESETS, VARIANTS, build_model, preset
from napari_jpeg_restore.network_io import NetworkIO, display_space, to_pixels
from napari_jpeg_restore.weights import load_model

from .bookkeeping import Bookkeeping
from .checkpoint import load_checkpoint
from .data import CROP, JpegVariety, PatchSampler, encode_bytes, load_pool
from .metrics import psnr
from .warm_start import warm_start

VAL_QUALITIES = (10, 30, 50, 90)
VAL_CROP = 256
SCHEDULES = ("step", "cosine")
LOSSES = ("l1", "balanced")
#: The balanced loss's floor on a patch's JPEG error (half a grey level): a near-lossless patch
#: must not get an unbounded weight.
BALANCE_FLOOR = 0.5 / 255
TRAIN_PRECISIONS = ("auto", "float32", "bfloat16")


def _setting(default=None, help: str = "", *, kind=None, choices=None, flag: bool = False, repeat: bool = False,
             required: bool = False, cli: bool = True):
    """A TrainSettings field and what its ``qgcn-train train --name`` option is (see
    :func:`qgcn_training.cli.settings_options`): help, value type, choices (a tuple, or a function
    giving them when the command is made), flag, repeatable, required; ``cli`` False: no option."""
    meta = {"help": help, "kind": kind, "choices": choices, "flag": flag, "repeat": repeat, "required": required,
            "cli": cli}
    if repeat:
        return field(default_factory=list, metadata=meta)
    return field(default=default, metadata=meta)


def _stages() -> tuple[str, ...]:
    return tuple(sorted({stage for v in VARIANTS.values() for stage in v.stages}))


@dataclass
class TrainSettings:
    """Everything a run is made from; each field's metadata is its ``qgcn-train train`` option, so
    names, defaults and help are written here once."""

    data: list[str] = _setting(repeat=True, kind="folder",
                               help="Training image folder (repeatable). The first one's last --holdout images validate.")
    out: str = _setting("", required=True, kind="new-folder", help="Run folder: checkpoint.pt, log.csv.")
    preset: str = _setting("small", choices=lambda: tuple(PRESETS), help="Network size and body.")
    variant: str = _setting("qgcn", choices=lambda: tuple(VARIANTS), help="What the network takes (the registry).")
    gray: bool = _setting(False, flag=True, help="Grayscale model (Y + 1 map).")
    steps: int | None = _setting(None, kind=int, help="Stop after this many steps in all.")
    minutes: float | None = _setting(None, kind=float, help="Stop after this much training time in all.")
    batch: int = _setting(16, kind=int, help="Patches per step.")
    patch: int = _setting(64, kind=int, help="Patch side: 64, then 256 to fine-tune.")
    lr: float = _setting(5e-4, kind=float, help="Peak learning rate.")
    schedule: str = _setting("step", choices=SCHEDULES,
                             help="step: lr × --lr-gamma every --lr-step steps; cosine: lr to --lr-final over "
                                  "--plan-steps, else --steps/--minutes.")
    lr_step: int = _setting(20000, kind=int, help="Multiply lr by --lr-gamma every N steps.")
    lr_gamma: float = _setting(0.1, kind=float, help="The step schedule's factor.")
    lr_final: float = _setting(1e-5, kind=float, help="Where the cosine schedule ends.")
    # a continuation starts where the lineage's plan stood (steps_before), so the rate decays to
    # lr_final once over the whole budget instead of restarting every round
    plan_steps: int | None = _setting(None, kind=int, help="Cosine: plan the rate over this many steps of the whole "
                                                           "lineage (continued runs go on in it).")
    steps_before: int = _setting(0, cli=False)  # steps the lineage ran before this run (set by --continue)
    ema: float = _setting(0.0, kind=float,
                          help="Decay of an exponential moving average of the weights (e.g. 0.999; 0: none).")
    init: str = _setting("default", choices=("default", "gaussian"), help="gaussian: N(0, 0.01) as in the paper.")
    skip_global: bool = _setting(False, flag=True, help="QGCN: leave the global branch out (the 64x64 stage).")
    # a cheap first 256×256 stage on top of a trained QCN: the restoration branch frozen
    train_only: str | None = _setting(None, choices=_stages,
                                      help="Train only one stage's parameters (global: the global branch and the "
                                           "layer joining it; the restoration branch stays frozen).")
    clip_grad: float = _setting(0.5, kind=float, help="Max gradient norm (0: no clipping).")
    # plain L1 is dominated by the low-quality patches of a batch
    loss: str = _setting("l1", choices=LOSSES,
                         help="balanced: each patch's L1 weighted by the inverse of its JPEG's error, so high "
                              "qualities count.")
    consistency: float | None = _setting(None, kind="alpha",
                                         help="Train through the consistency projection at this half-width α (e.g. "
                                              "0.5; default: off), so the network learns what the file leaves.")
    seed: int = _setting(0, kind=int, help="Everything random is a function of (seed, step).")
    device: str | None = _setting(None, help="cpu, cuda, cuda:1, mps (default: the best available).")
    threads: int | None = _setting(None, kind=int, help="Torch CPU threads.")
    # master weights and the optimizer stay float32
    precision: str = _setting("auto", choices=TRAIN_PRECISIONS,
                              help="auto: bfloat16 autocast on a GPU or a CPU with native bfloat16, else float32.")
    holdout: int = _setting(3, kind=int, help="Images of the first --data folder kept to validate.")
    val_every: int = _setting(250, kind=int, help="Validate every N steps.")
    checkpoint_minutes: float = _setting(5.0, kind=float, help="Write checkpoint.pt this often.")
    init_from: str | None = _setting(None, help="Warm start from shipped weights (a name or an exported folder); "
                                      "a --gray run may start from a colour model.")
    variety: dict = field(default_factory=lambda: asdict(JpegVariety()), metadata={"cli": False})

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.schedule == "cosine" and self.steps is None and self.minutes is None and self.plan_steps is None:
            raise ValueError("the cosine schedule needs a budget to plan for: give steps, minutes or plan steps")
        if self.consistency is not None and not 0 < self.consistency <= 1:
            raise ValueError(f"consistency must be a half-width α in (0, 1], got {self.consistency}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.precision not in TRAIN_PRECISIONS:
            raise ValueError(f"precision must be one of {TRAIN_PRECISIONS}, got {self.precision!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        stages = VARIANTS[self.variant].stages
        if self.train_only is not None and self.train_only not in stages:
            raise ValueError(f"the {self.variant} variant has no stage {self.train_only!r} to train alone "
                             f"(its stages: {', '.join(stages) or 'none'})")
        if self.train_only == "global" and self.skip_global:
            raise ValueError("training only the global branch needs the qgcn variant with the global branch on "
                             "(no --skip-global)")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be a decay in [0, 1), got {self.ema}")

    def learning_rate(self, step: int, elapsed: float, scale: float = 1.0) -> float:
        """The rate for ``step``; a cosine plan follows the lineage's ``plan_steps`` if set, else
        whichever budget (steps, minutes) is used up faster, so a run stopped by its time budget
        still ends at ``lr_final``.
        ``scale`` is what roll-backs after a divergence left of the plan (halved each time)."""
        if self.schedule == "step":
            return scale * self.lr * self.lr_gamma ** (step // self.lr_step)
        if self.plan_steps:
            done = (self.steps_before + step) / self.plan_steps
        else:
            done = max(step / self.steps if self.steps else 0.0, elapsed / (60 * self.minutes) if self.minutes else 0.0)
        return scale * (self.lr_final + (self.lr - self.lr_final) * 0.5 * (1 + math.cos(math.pi * min(done, 1.0))))


class TrainingStopped(Exception):
    """A run that cannot go on; the message says why and what to do."""


class TrainingDiverged(TrainingStopped):
    """The run diverged before any good state was kept."""


class TrainingDataError(TrainingStopped, ValueError):
    """Training folders that cannot feed a run; the message says what was found and needed."""


def split_pool(s: TrainSettings):
    """(held-out images, training pool): the last ``holdout`` usable images of the first folder
    validate, the rest of it and every other folder train."""
    first = load_pool([s.data[0]], s.gray)
    if s.holdout and len(first) <= s.holdout and len(s.data) == 1:
        raise TrainingDataError(
            f"{s.data[0]}: {len(first)} usable images (at least {CROP}×{CROP} pixels) but --holdout {s.holdout} "
            f"keeps that many for validation; give at least {s.holdout + 1}, another --data folder, or a smaller --holdout")
    held = first[len(first) - s.holdout :] if s.holdout else []
    pool = first[: len(first) - len(held)] + load_pool(s.data[1:], s.gray)
    if not pool:
        raise TrainingDataError(f"{', '.join(s.data)}: no training images left after the {len(held)} held out")
    return held, pool


def consistent(y, constraints, alpha: float | None):
    """Network outputs (B, C, H, W) projected onto each patch's constraint set ((facts,
    coefficients) per patch; see :func:`napari_jpeg_restore.consistency.project`); as they are
    when ``alpha`` is None."""
    if alpha is None:
        return y
    # one round: whole patches have no partial blocks, and the rounds that follow clipping cost 3× for
    # nothing the gradient needs
    return torch.stack([project(yi, facts, alpha, coefficients=k, rounds=1) for yi, (facts, k) in zip(y, constraints)])


class Validator:
    """PSNR on fixed held-out crops at fixed qualities (IJG tables, 4:2:0), restored as the
    engine restores them (projected onto each file's constraint set when ``alpha`` is set)."""

    def __init__(self, images, io: NetworkIO, alpha: float | None = None):
        self.io, self.alpha = io, alpha
        self.samples = []
        for pix in images:
            h, w = pix.shape[:2]
            y, x = (h - VAL_CROP) // 2, (w - VAL_CROP) // 2
            crop = np.ascontiguousarray(pix[y : y + VAL_CROP, x : x + VAL_CROP])
            for q in VAL_QUALITIES:
                data = encode_bytes(crop, q, "ijg", "4:2:0", None)
                jpeg = open_jpeg_bytes(data)
                facts = facts_from_image(jpeg)
                self.samples.append((crop, np.asarray(jpeg), facts, coefficients_from_bytes(data, facts)))

    @torch.inference_mode()
    def __call__(self, model, device) -> tuple[float, float]:
        """(mean PSNR of the restored crops, mean PSNR of the JPEG inputs)."""
        model.eval()
        out, base = [], []
        for gt, decoded, facts, coefficients in self.samples:
            x = self.io.restoration_input(decoded, facts)[None].to(device)
            g = self.io.global_input(decoded, facts)
            y = model(x, None if g is None else g[None].to(device)).float()
            restored = to_pixels(consistent(y, [(facts, coefficients)], self.alpha)[0])
            out.append(psnr(restored, gt))
            base.append(psnr(decoded, gt))
        model.train()
        return float(np.mean(out)), float(np.mean(base))


def restoration_loss(restored, target, decoded, kind: str = "l1"):
    """The training loss on network outputs, targets and the decoded JPEG inputs (B, C, H, W,
    the network's colour space). ``balanced`` weights patch i by mean_j(e_j) / e_i, e the JPEG's
    own mean absolute error (at least :data:`BALANCE_FLOOR`): the loss keeps L1's scale while a
    QF 95 patch counts as much as a QF 5 one."""
    out, gt = display_space(restored.float()), display_space(target)
    if kind == "l1":
        return F.l1_loss(out, gt)
    per_patch = (out - gt).abs().mean(dim=(1, 2, 3))
    jpeg_error = (display_space(decoded.float()) - gt).abs().mean(dim=(1, 2, 3)).clamp_min(BALANCE_FLOOR)
    weights = jpeg_error.mean() / jpeg_error
    return (weights * per_patch).mean()


def _init_gaussian(model, std=0.01):
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.normal_(m.weight, 0.0, std)
            torch.nn.init.zeros_(m.bias)


class Trainer:
    """One run. Set-up: :meth:`build` the network and optimizer, :meth:`resume` a checkpoint,
    :meth:`prepare_data`; the step: :meth:`train_step`, driven by :meth:`fit`; the bookkeeping
    (log, checkpoints, roll-backs) is :class:`~qgcn_training.bookkeeping.Bookkeeping`'s."""

    def __init__(self, s: TrainSettings):
        self.s = s
        self.out = Path(s.out)  # made once the data is known to train on: a failed start leaves none
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.device = pick_device(s.device)
        self.rank, self.world = 0, 1
        if self.distributed:
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.rank, self.world = torch.distributed.get_rank(), torch.distributed.get_world_size()
            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
        if s.threads:
            torch.set_num_threads(s.threads)
        self.step, self.elapsed, self.cpu_seconds = 0, 0.0, 0.0
        self.book = Bookkeeping(self.out, writes=self.rank == 0)

    def build(self) -> None:
        s = self.s
        torch.manual_seed(s.seed)
        self.config = preset(s.preset, colour=not s.gray, variant=s.variant)
        self.io = NetworkIO(self.config, global_on=not s.skip_global)
        self.model = build_model(self.config)
        if s.init == "gaussian":
            _init_gaussian(self.model)
        if s.init_from:
            try:
                warm_start(self.model, load_model(s.init_from, colour=None).network)  # a gray run may start from colour
            except ValueError as exc:  # WeightsError is one too
                raise TrainingStopped(f"--init-from {s.init_from}: {exc}") from None
        self.layout = memory_format(self.device, training=True)
        self.model.to(self.device, memory_format=self.layout)
        if s.train_only:
            trains = VARIANTS[self.config.variant].stages[s.train_only]
            for name, p in self.model.named_parameters():
                p.requires_grad_(trains(name))
        # fused: one kernel for all parameters (a U-Net step's update 11 -> 3.6 ms on one CPU thread)
        self.optimizer = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=s.lr,
                                          fused=self.device.type in ("cpu", "cuda"))
        if s.skip_global and "global" in VARIANTS[self.config.variant].stages:
            # the global stage takes no part, and DDP refuses parameters it is told to train that get
            # no gradient. Frozen after the optimizer is made: it keeps them (never stepped), so
            # checkpoints written before they were frozen still resume.
            in_global = VARIANTS[self.config.variant].stages["global"]
            for name, p in self.model.named_parameters():
                if in_global(name):
                    p.requires_grad_(False)
        self.ema = torch.optim.swa_utils.AveragedModel(
            self.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(s.ema)) if s.ema else None
        self.net = torch.nn.parallel.DistributedDataParallel(self.model) if self.distributed else self.model

    def resume(self) -> bool:
        """Continue from the run folder's checkpoint, if there is one (model, EMA, optimizer,
        random state and counters; the learning rate follows from the counters)."""
        if not self.book.checkpoint_path.exists():
            return False
        ck = load_checkpoint(self.book.checkpoint_path)
        self._load_state(ck)
        self.elapsed, self.cpu_seconds = ck["elapsed"], ck["cpu_seconds"]
        self.book.resume(ck)
        return True

    def _load_state(self, ck: dict) -> None:
        """Weights, optimizer, EMA, random state and step of a checkpoint."""
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        if self.ema is not None and ck["ema"]:
            self.ema.load_state_dict(ck["ema"])
        torch.set_rng_state(ck["rng"])
        self.step = ck["step"]

    def check_divergence(self, val: float | None) -> None:
        """After a validation: keep this state as the last good one, or, if the run diverged
        (validation far below its best, or not a number), roll back to the last good state and
        halve the learning rate from there. Every rank takes rank 0's decision."""
        diverged = self.book.diverged(val)
        if self.distributed:
            flag = torch.tensor([float(diverged)], device=self.device)  # nccl broadcasts GPU tensors
            torch.distributed.broadcast(flag, 0)
            diverged = bool(flag.item())
        if not diverged:
            if val is not None:
                self.book.keep(val, self.state())
            return
        if not self.book.good_path.exists():
            raise TrainingDiverged(f"{self.s.out}: the run diverged at step {self.step} (validation {val:.2f} dB) "
                                    "before any good state was kept; start again with a lower --lr")
        diverged_at = self.step
        self._load_state(load_checkpoint(self.book.good_path))
        self.book.rolled_back(diverged_at, self.step)

    def prepare_data(self, resumed: bool) -> None:
        s = self.s
        held, pool = split_pool(s)
        self.out.mkdir(parents=True, exist_ok=True)
        self.sampler = PatchSampler(pool, self.io, patch=s.patch, variety=JpegVariety.from_dict(s.variety), seed=s.seed,
                                    with_coefficients=s.consistency is not None)
        self.validator = Validator([p for p, _ in held], self.io, s.consistency) if held and self.rank == 0 else None
        self.book.start_log(resumed)

    @property
    def precision(self) -> str:
        """The precision the training steps run in ("auto" resolved)."""
        return run_precision(self.s.precision, self.device, training=True)

    def next_batch(self):
        """This rank's share of the current step's batch: (network input, global input, target)."""
        return self.sampler.batch(self.step, self.s.batch // self.world, self.rank, self.world)

    def train_step(self, batch) -> float:
        """One optimizer step on ``batch``; returns its loss."""
        x, g, t, constraints = batch
        x, t = x.to(self.device, memory_format=self.layout), t.to(self.device)
        g = g.to(self.device, memory_format=self.layout) if g is not None else None
        with self.autocast:
            y = self.net(x, g)
        y = consistent(y.float(), constraints, self.s.consistency)  # float32: the transform is exact there
        loss = restoration_loss(y, t, x[:, : t.shape[1]], self.s.loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.s.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.s.clip_grad)
        for group in self.optimizer.param_groups:
            group["lr"] = self.s.learning_rate(self.step, self.elapsed, self.book.lr_scale)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step += 1
        return loss.item()

    def validate(self, losses: list[float], data_wait_share: float) -> float | None:
        """Log a validation row; returns the validation PSNR (None without held-out images)."""
        if self.validator is None:
            return None
        val, base = self.validator(self.model, self.device)
        val_ema = self.validator(self.ema.module, self.device)[0] if self.ema else float("nan")
        row = {"step": self.step, "loss": f"{np.mean(losses):.5f}", "lr": f"{self.optimizer.param_groups[0]['lr']:.3g}",
               "val_psnr": f"{val:.3f}", "val_jpeg_psnr": f"{base:.3f}", "elapsed_s": f"{self.elapsed:.0f}",
               "data_wait_share": f"{data_wait_share:.3f}", "cpu_s": f"{self.cpu_seconds:.1f}",
               "val_ema_psnr": f"{val_ema:.3f}"}
        self.book.log(row)
        ema = f", moving average {val_ema:.3f}" if self.ema else ""
        tqdm.write(f"step {self.step}: validation {val:.3f} dB{ema} (JPEG {base:.3f})")
        return val

    def state(self, ranks_identical=None) -> dict:
        """What a checkpoint holds but the bookkeeping's counters (which it adds)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "ema": self.ema.state_dict() if self.ema else None, "rng": torch.get_rng_state(),
                "step": self.step, "elapsed": self.elapsed, "cpu_seconds": self.cpu_seconds,
                "settings": asdict(self.s), "config": self.config.to_dict(), "world_size": self.world,
                "ranks_identical": ranks_identical,
                # what ran, where the settings say "auto" or name no device
                "ran": {"device": str(self.device), "precision": self.precision,
                        "layout": "channels-last" if self.layout == torch.channels_last else "contiguous"}}

    def _done(self, started: float, stop: dict) -> bool:
        """Whether to stop here: a budget spent or ``stop["now"]`` set. Under DDP every rank stops at
        the same step: their clocks and signals differ, and a rank that stops alone leaves the others
        waiting for it."""
        s = self.s
        done = stop["now"] or (s.steps is not None and self.step >= s.steps) or \
            (s.minutes is not None and time.time() - started >= s.minutes * 60)
        if not self.distributed:
            return done
        flag = torch.tensor([float(done)], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def fit(self, stop: dict) -> None:
        """Train until the step or time budget runs out or ``stop["now"]`` is set (SIGTERM)."""
        s = self.s
        started, last_save, waited, computed, losses = time.time() - self.elapsed, time.time(), 0.0, 0.0, []
        # CPU time of this process (all its threads): what "equal CPU time" compares, whatever else runs
        cpu_started = time.process_time() - self.cpu_seconds
        precision = self.precision
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")
        bar = tqdm(total=s.steps, initial=self.step, disable=self.rank != 0, dynamic_ncols=True, desc="train")
        self.model.train()
        while not self._done(started, stop):
            t0 = time.time()
            batch = self.next_batch()
            t1 = time.time()
            loss = self.train_step(batch)
            t2 = time.time()
            waited, computed = waited + (t1 - t0), computed + (t2 - t1)
            losses.append(loss)
            self.elapsed, self.cpu_seconds = t2 - started, time.process_time() - cpu_started
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", sps=f"{1 / max(t2 - t0, 1e-9):.2f}")
            if self.step % s.val_every == 0:
                val = self.validate(losses, waited / max(waited + computed, 1e-9)) if self.rank == 0 else None
                self.check_divergence(val)
                losses = []
            if time.time() - last_save >= s.checkpoint_minutes * 60:
                self.book.save(self.state())
                last_save = time.time()
        bar.close()

    def finish(self) -> Path:
        """The final checkpoint; under DDP it records whether every rank ended with the same weights."""
        ranks_identical = None
        if self.distributed:
            flat = torch.cat([p.detach().flatten() for p in self.model.parameters()])
            gathered = [torch.empty_like(flat) for _ in range(self.world)]
            torch.distributed.all_gather(gathered, flat)
            ranks_identical = all(torch.equal(gathered[0], g) for g in gathered)
        self.book.save(self.state(ranks_identical))
        if self.distributed:
            torch.distributed.destroy_process_group()
        return self.book.checkpoint_path


def train(s: TrainSettings, resume: bool = False) -> Path:
    """Train until ``steps`` or ``minutes`` runs out; returns the final checkpoint path."""
    trainer = Trainer(s)
    trainer.build()
    resumed = resume and trainer.resume()
    trainer.prepare_data(resumed)
    stop = {"now": False}
    old_handler = signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        trainer.fit(stop)
    finally:
        signal.signal(signal.SIGTERM, old_handler)
    return trainer.finish()
