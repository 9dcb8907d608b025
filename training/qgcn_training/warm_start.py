"""Training-only surgery on networks: warm starts that may grow a network, and the global branch
held at zero for the 64×64 stage, left out of what that stage exports and grown back for the next.
The core never needs these, so they live here."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from napari_jpeg_restore.model import build_model


def warm_start(model: nn.Module, source: nn.Module) -> None:
    """Copy ``source``'s weights into ``model``. Their configs must match, except that ``model``
    may add the full-resolution path ``source`` lacks (that path starts at zero, so ``model``
    restores exactly as ``source`` does until training grows it), or be the grayscale twin of a
    colour ``source`` (see :func:`gray_from_colour`). A ``source`` exported without its global
    branch (:func:`without_global_branch`) gets a branch held at zero first, as ``model`` has one."""
    if model.config.has_global and source.config.joins_global and not source.config.has_global:
        source = with_global_branch(source, model.config.global_features)
    want, have = model.config, source.config
    if have.colour and not want.colour and replace(have, colour=False) == want:
        model.load_state_dict(gray_from_colour(source.state_dict(), model.state_dict()))
        return
    grows = not have.fine_channels and replace(want, fine_channels=0, fine_blocks=have.fine_blocks) == have
    if want != have and not grows:
        a, b = want.to_dict(), have.to_dict()
        differ = ", ".join(f"{k} {b[k]!r} (run: {a[k]!r})" for k in a if a[k] != b[k])
        raise ValueError(f"the warm start's network differs: {differ}")
    model.load_state_dict(source.state_dict(), strict=not grows)


def gray_from_colour(colour: dict, gray: dict) -> dict:
    """A colour network's weights (state dict) for its grayscale twin (``gray``: the twin's own, for
    the shapes). A gray image is a colour one with neutral chroma: the layers that take the input
    (image channels Y, Cb, Cr, then the luma and chroma maps, then any features) keep Y's weights,
    fold Cb's and Cr's, times the neutral 0.5, into their bias, and give the one map the sum of
    both maps' weights (a gray file's table standing for both); the layers that give the image
    keep Y's output. Exact but for the zero padding at the image's edge."""
    out = {}
    for name, w in colour.items():
        want = gray[name].shape
        if w.shape == want:
            out.setdefault(name, w.clone())  # an input layer's bias may be set, folded, already
        elif w.dim() == 4 and w.shape[1] - want[1] in (2, 3):  # a layer taking the input
            maps = w.shape[1] - want[1] - 2  # 1 with quantization maps, 0 without
            bias = name.removesuffix("weight") + "bias"
            out[bias] = colour[bias] + 0.5 * w[:, 1:3].sum(dim=(1, 2, 3))
            taken = [w[:, :1]] + ([w[:, 3:4] + w[:, 4:5]] if maps else []) + [w[:, 3 + 2 * maps :]]
            out[name] = torch.cat(taken, 1)
        elif w.shape[0] == 3 and want[0] == 1:  # a layer giving the image: its Y row
            out[name] = w[:1].clone()
        else:
            raise ValueError(f"{name}: a colour {tuple(w.shape)} has no grayscale twin {tuple(want)}")
    return out


def zero_global_output(model: nn.Module) -> None:
    """Make a global branch output zeros, as the 64×64 training stage assumed (no-op without one)."""
    branch = getattr(model, "global_branch", None)
    if branch is not None:
        torch.nn.init.zeros_(branch.fc[-1].weight)
        torch.nn.init.zeros_(branch.fc[-1].bias)


def without_global_branch(model: nn.Module) -> nn.Module:
    """A QGCN trained with its global branch left out (``--skip-global``: global features held at
    zero) as the network it is: no branch, its join over the body's features alone. Same output;
    the untrained branch was 85 % of a ``small`` model's weights. No-op without a branch."""
    cfg = model.config
    if not cfg.has_global:
        return model
    out = build_model(replace(cfg, global_features=0))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("global_branch.")}
    state["merge.weight"] = state["merge.weight"][:, : -cfg.global_features]  # the body's channels come first
    out.load_state_dict(state)
    return out


def with_global_branch(model: nn.Module, features: int) -> nn.Module:
    """Inverse of :func:`without_global_branch`: a fresh global branch of ``features`` outputs held
    at zero, so the network restores as before until a global stage trains the branch. The join's
    weights on those features stay fresh too: were both zero, neither would ever get a gradient."""
    out = build_model(replace(model.config, global_features=features))
    state = model.state_dict()
    merge = out.state_dict()["merge.weight"].clone()
    merge[:, : state["merge.weight"].shape[1]] = state["merge.weight"]
    out.load_state_dict({**state, "merge.weight": merge}, strict=False)  # the branch: fresh
    zero_global_output(out)
    return out
