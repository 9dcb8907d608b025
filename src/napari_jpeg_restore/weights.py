"""Trained weights on disk: safetensors shards plus a JSON config with checksums and a record.

A model folder holds ``config.json`` and the ``*.safetensors`` files it lists with their
SHA-256. Nothing is ever unpickled. Shipped models live in the package's ``weights/`` folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import write_atomically
from .errors import RestoreError
from .jpeg import GRID
from .maps import MAP_NORMALISATION

if TYPE_CHECKING:
    from .model import ModelConfig, RestorationNet

FORMAT = "napari-jpeg-restore/1"
SHIPPED = Path(__file__).parent / "weights"
#: The shipped model used for each kind of image when the caller names none.
DEFAULTS = {"colour": "qgcn-colour", "gray": "qgcn-gray"}
SHARD_BYTES = 15 * 2**20  # files under 16 MiB stay within common upload and transfer limits


class WeightsError(RestoreError):
    """Weights that are missing, corrupt or do not fit; the message names the file."""


class ModelNotAvailable(WeightsError):
    """No trained weights exist for what was asked (never replaced by random weights)."""


@dataclass(frozen=True)
class TrainedModel:
    """What :func:`load_model` returns: the network (float32, eval mode), where it came from and
    its training record as exported (``config.json``'s ``record``: data, steps, evaluation, …)."""

    network: "RestorationNet"
    folder: Path
    record: dict = field(default_factory=dict)

    @property
    def config(self) -> "ModelConfig":
        return self.network.config

    @property
    def consistency_alpha(self) -> float | None:
        """The consistency half-width chosen for this model on the pool's validation images
        (``qgcn-train choose-consistency``), or None if none was chosen."""
        alpha = self.record.get("consistency", {}).get("alpha")
        return None if alpha is None else float(alpha)

    @property
    def tile_overlap(self) -> int | None:
        """The tile overlap chosen for this model (``qgcn-train choose-overlap``: tiled output
        equals the whole image's within a level), or None if none was chosen."""
        return recorded_overlap(self.record, self.folder)


def recorded_overlap(record: dict, folder) -> int | None:
    """The tile overlap a model's record names (None: none chosen); ``folder`` names it in errors."""
    overlap = record.get("tiling", {}).get("overlap")
    if overlap is not None and (not isinstance(overlap, int) or overlap < 0 or overlap % GRID):
        raise WeightsError(f"{folder}: the record's tile overlap {overlap!r} is not a multiple of {GRID} pixels")
    return overlap


def shipped_models() -> list[str]:
    return sorted(p.parent.name for p in SHIPPED.glob("*/config.json"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_weights(model, folder, *, record: dict | None = None, dtype: str = "float16") -> Path:
    """Write ``model`` (no optimizer state) as safetensors shards + config.json into ``folder``."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu", getattr(torch, dtype)).contiguous()
        # a tensor larger than a shard (the paper's 12544×1024 fc) is stored as row pieces "name#i"
        rows = max(1, SHARD_BYTES // max(1, v[0].numel() * v.element_size())) if v.ndim else 1
        pieces = v.split(rows) if v.ndim and v.numel() * v.element_size() > SHARD_BYTES else [v]
        tensors.update({k: v} if len(pieces) == 1 else {f"{k}#{i}": p.clone() for i, p in enumerate(pieces)})
    shards: list[dict] = []
    current: dict = {}
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if current and size + nbytes > SHARD_BYTES:
            shards.append(current)
            current, size = {}, 0
        current[name] = t
        size += nbytes
    shards.append(current)
    files = {}
    for i, shard in enumerate(shards):
        name = "model.safetensors" if len(shards) == 1 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_atomically(folder / name, lambda tmp, s=shard: save_file(s, tmp))
        files[name] = _sha256(folder / name)
    config = {
        "format": FORMAT,
        "model": model.config.to_dict(),
        "maps": MAP_NORMALISATION,
        "dtype": dtype,
        "files": files,
        "record": record or {},
    }
    _write_config(folder, config)
    return folder


def _write_config(folder: Path, config: dict) -> None:
    write_atomically(folder / "config.json", lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n"))


def update_record(folder, **entries) -> dict:
    """Add or replace entries of an exported model's training record; weights and checksums
    stay as they are. Returns the new record."""
    folder = Path(folder)
    config = read_config(folder)
    config["record"].update(entries)
    _write_config(folder, config)
    return config["record"]


def resolve(spec, colour: bool | None) -> Path:
    """The model folder for ``spec``: None/"default" (by image kind), a shipped name, or a path."""
    if spec is None or spec == "default":
        name = DEFAULTS["colour" if colour else "gray"]
        if not (SHIPPED / name / "config.json").is_file():
            kind = "colour" if colour else "grayscale"
            raise ModelNotAvailable(
                f"no trained {kind} model is shipped yet (expected {SHIPPED / name}); pass model=PATH "
                "to weights made by `qgcn-train export`"
            )
        return SHIPPED / name
    if isinstance(spec, str) and (SHIPPED / spec / "config.json").is_file():
        return SHIPPED / spec
    path = Path(spec)
    if path.is_file() and path.name == "config.json":
        return path.parent
    if path.is_dir() and (path / "config.json").is_file():
        return path
    if path.suffix == ".safetensors" and (path.parent / "config.json").is_file():
        return path.parent
    known = ", ".join(shipped_models()) or "none"
    raise WeightsError(f"{spec}: not a shipped model (shipped: {known}) nor a folder with config.json")


def read_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{folder / 'config.json'}: unreadable model config ({exc})") from None
    if config.get("format") != FORMAT:
        raise WeightsError(f"{folder / 'config.json'}: not a {FORMAT} model config")
    if config.get("maps") != MAP_NORMALISATION:
        raise WeightsError(f"{folder}: trained with maps {config.get('maps')!r}, this version makes {MAP_NORMALISATION!r}")
    return config


def load_model(spec=None, *, colour: bool | None = True) -> TrainedModel:
    """Build the network for ``spec``, load its checked weights (float32, eval mode) and its record.
    ``colour`` None accepts either kind (``spec`` must then name the model)."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .model import ModelConfig, build_model

    folder = resolve(spec, colour)
    config = read_config(folder)
    try:
        cfg = ModelConfig.from_dict(config["model"])
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{folder / 'config.json'}: bad model settings ({exc})") from None
    if colour is not None and cfg.colour != colour:
        want, have = ("colour", "grayscale") if colour else ("grayscale", "colour")
        raise WeightsError(f"{folder}: a {have} model cannot restore a {want} image")
    state = {}
    for name, digest in config["files"].items():
        path = folder / name
        if not path.is_file():
            raise WeightsError(f"{path}: weights file missing")
        if _sha256(path) != digest:
            raise WeightsError(f"{path}: checksum mismatch, the file is corrupt or was changed")
        try:
            state.update(load_file(path))
        except (SafetensorError, OSError) as exc:
            raise WeightsError(f"{path}: unreadable weights ({exc})") from None
    pieces: dict[str, list] = {}
    for key in sorted(k for k in state if "#" in k):
        name, index = key.rsplit("#", 1)
        pieces.setdefault(name, []).append((int(index), state.pop(key)))
    state.update({name: torch.cat([t for _, t in sorted(parts)]) for name, parts in pieces.items()})
    model = build_model(cfg)
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as exc:
        raise WeightsError(f"{folder}: weights do not fit the config ({str(exc).splitlines()[0]})") from None
    return TrainedModel(model.eval(), folder, config.get("record", {}))
