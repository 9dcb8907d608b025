"""A run's bookkeeping, apart from its training step: the log, the checkpoints, and the divergence
guard whose roll-backs halve the learning rate. All of it lives in the run folder."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from .checkpoint import save_checkpoint

#: log.csv's columns, in order: the header and every row are written from this one list
LOG_COLUMNS = ("step", "loss", "lr", "val_psnr", "val_jpeg_psnr", "elapsed_s", "data_wait_share", "cpu_s", "val_ema_psnr")
#: A validation this far below the best one means the run diverged (noise is ~0.05 dB).
DIVERGED_DB = 1.0


class Bookkeeping:
    """The run folder's files (``checkpoint.pt``, ``last-good.pt``, ``log.csv``) and the counters a
    checkpoint carries beside the weights: the best validation, the learning-rate scale the
    roll-backs left, the (diverged at, rolled back to) step pairs and the steps resumed at.
    ``writes``: this process writes the log and the checkpoint (rank 0 under DDP)."""

    def __init__(self, out: Path, *, writes: bool = True):
        self.checkpoint_path, self.log_path = out / "checkpoint.pt", out / "log.csv"
        #: the state at the last validation that was not a divergence: what a roll-back loads
        self.good_path = out / "last-good.pt"
        self.writes = writes
        self.best_val, self.lr_scale = -math.inf, 1.0
        self.rollbacks: list[tuple[int, int]] = []
        self.resumed_at: list[int] = []  # oldest first

    def counters(self) -> dict:
        return {"best_val": self.best_val, "lr_scale": self.lr_scale, "rollbacks": self.rollbacks,
                "resumed_at": self.resumed_at}

    def resume(self, ck: dict) -> None:
        """The counters of a checkpoint this run continues from (at its step)."""
        self.best_val, self.lr_scale = ck["best_val"], ck["lr_scale"]
        self.rollbacks = [tuple(r) for r in ck["rollbacks"]]
        self.resumed_at = [*ck["resumed_at"], ck["step"]]

    def start_log(self, resumed: bool) -> None:
        """A new log's header (a resumed run appends to its log)."""
        if self.writes and not (resumed and self.log_path.exists()):
            self.log_path.write_text(",".join(LOG_COLUMNS) + "\n")

    def log(self, row: dict) -> None:
        with open(self.log_path, "a", newline="") as f:
            csv.DictWriter(f, LOG_COLUMNS).writerow(row)  # a key missing from the list fails here

    def save(self, state: dict) -> None:
        if self.writes:
            save_checkpoint({**state, **self.counters()}, self.checkpoint_path)

    def diverged(self, val: float | None) -> bool:
        """Whether a validation (None: none was run) is far below the best, or not a number."""
        return val is not None and not val >= self.best_val - DIVERGED_DB

    def keep(self, val: float, state: dict) -> None:
        """A validation that did not diverge: its state is the last good one."""
        self.best_val = max(self.best_val, val)
        save_checkpoint({**state, **self.counters()}, self.good_path)

    def rolled_back(self, diverged_at: int, to_step: int) -> None:
        """The run went back to the last good state: it goes on from there at half the rate."""
        self.lr_scale /= 2
        self.rollbacks.append((diverged_at, to_step))
