"""Training checkpoints: written atomically, read back as the network they hold."""

from __future__ import annotations

from pathlib import Path

import torch

from napari_jpeg_restore.atomic import write_atomically
from napari_jpeg_restore.model import ModelConfig, build_model

from .warm_start import zero_global_output


def save_checkpoint(state: dict, path: Path) -> None:
    """``torch.save``, atomically: a stop mid-write leaves the previous checkpoint."""
    write_atomically(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def model_from_checkpoint(ck: dict, ema: bool = False):
    """The network of a loaded checkpoint, as it was trained (eval mode); with ``ema``, the
    exponential moving average of its weights instead of the last ones."""
    model = build_model(ModelConfig.from_dict(ck["config"]))
    if ema:
        if not ck.get("ema"):
            raise ValueError("this checkpoint has no moving average of its weights (trained without --ema)")
        # torch's AveragedModel keeps the network under "module." beside its own counter
        model.load_state_dict({k.removeprefix("module."): v for k, v in ck["ema"].items() if k.startswith("module.")})
    else:
        model.load_state_dict(ck["model"])
    if ck["settings"].get("skip_global"):
        # trained with global features 0: make the untrained branch output exactly that, so the
        # engine needs no special case and a later 256×256 stage starts from what was learned
        zero_global_output(model)
    return model.eval()
