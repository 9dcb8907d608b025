"""Training-only surgery on networks: warm starts that may grow a network, and a global branch
held at zero for the 64×64 stage. The core never needs these, so they live here."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn


def warm_start(model: nn.Module, source: nn.Module) -> None:
    """Copy ``source``'s weights into ``model``. Their configs must match, except that ``model``
    may add the full-resolution path ``source`` lacks: that path starts at zero, so ``model``
    restores exactly as ``source`` does until training grows it."""
    want, have = model.config, source.config
    grows = not have.fine_channels and replace(want, fine_channels=0, fine_blocks=have.fine_blocks) == have
    if want != have and not grows:
        a, b = want.to_dict(), have.to_dict()
        differ = ", ".join(f"{k} {b[k]!r} (run: {a[k]!r})" for k in a if a[k] != b[k])
        raise ValueError(f"the warm start's network differs: {differ}")
    model.load_state_dict(source.state_dict(), strict=not grows)


def zero_global_output(model: nn.Module) -> None:
    """Make a global branch output zeros, as the 64×64 training stage assumed (no-op without one)."""
    branch = getattr(model, "global_branch", None)
    if branch is not None:
        torch.nn.init.zeros_(branch.fc[-1].weight)
        torch.nn.init.zeros_(branch.fc[-1].bias)
