"""Training checkpoints: written atomically, read back as the network they hold."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from napari_jpeg_restore.atomic import write_atomically
from napari_jpeg_restore.model import ModelConfig, build_model

from .warm_start import without_global_branch

#: The checkpoint schema; bump it when a key changes meaning. Checkpoints without a "format" are 1.
CHECKPOINT_FORMAT = 2
#: Keys added since format 1, with what an older checkpoint means by their absence: read here
#: once, so no reader needs a default of its own.
ADDED_KEYS = {"cpu_seconds": 0.0, "best_val": -math.inf, "lr_scale": 1.0, "rollbacks": [], "resumed_at": [],
              "ema": None, "ran": None, "world_size": 1, "ranks_identical": None}


class CheckpointError(ValueError):
    """A checkpoint this version cannot read; the message names the file."""


def save_checkpoint(state: dict, path: Path) -> None:
    """``torch.save``, atomically (a stop mid-write leaves the previous checkpoint), stamped with
    :data:`CHECKPOINT_FORMAT`."""
    write_atomically(path, lambda tmp: torch.save({**state, "format": CHECKPOINT_FORMAT}, tmp))


def load_checkpoint(path) -> dict:
    """A checkpoint with every key of the current format (older ones filled in)."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if ck.get("format", 1) > CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {ck['format']} is newer than this version reads "
                              f"({CHECKPOINT_FORMAT}); update qgcn-train")
    return {**ADDED_KEYS, "format": 1, **ck}


def model_from_checkpoint(ck: dict, ema: bool = False):
    """The network of a loaded checkpoint, as it was trained (eval mode); with ``ema``, the
    exponential moving average of its weights instead of the last ones."""
    model = build_model(ModelConfig.from_dict(ck["config"]))
    if ema:
        if not ck["ema"]:
            raise ValueError("this checkpoint has no moving average of its weights (trained without --ema)")
        # torch's AveragedModel keeps the network under "module." beside its own counter
        model.load_state_dict({k.removeprefix("module."): v for k, v in ck["ema"].items() if k.startswith("module.")})
    else:
        model.load_state_dict(ck["model"])
    if ck["settings"].get("skip_global"):
        # trained with global features 0: the untrained branch is left out (a later 256×256 stage
        # grows it back from what was learned: warm_start)
        model = without_global_branch(model)
    return model.eval()
