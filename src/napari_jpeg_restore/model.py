"""The QGCN family: one configurable network, variants and sizes as configs (paper, section III-C).

``build_model(config)`` returns an ``nn.Module`` with two entry points the engine uses:
``global_features(g)`` (the global branch on the 112×112 whole-image input, or ``None``) and
``restore(x, features)`` (the restoration branch on an image region plus its maps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from .jpeg import GRID

BODIES = ("flat", "unet")


@dataclass(frozen=True)
class Variant:
    """One entry of the variant registry (timm's ``register_model``): what the network takes, how
    it is built from a config, and which parameters each partial training stage trains."""

    name: str
    build: Callable[["ModelConfig"], "RestorationNet"]
    maps: bool  # takes the quantization maps beside the image
    global_input: bool  # has a global branch fed the whole image
    # stage name -> whether a parameter (by its name) trains in that stage
    stages: dict[str, Callable[[str], bool]] = field(default_factory=dict)


#: The registry: every variant the family knows, by name (the CLI's choices come from it).
VARIANTS: dict[str, Variant] = {}


def register_variant(name: str, *, maps: bool, global_input: bool, stages: dict | None = None):
    """Decorator: register ``build(config) -> nn.Module`` as variant ``name``."""
    def register(build):
        VARIANTS[name] = Variant(name, build, maps, global_input, stages or {})
        return build
    return register
BLOCKS = ("residual", "naf")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that builds a network. ``variant``:

    - ``qgcn``: restoration branch + global branch, image and quantization maps in;
    - ``qcn``: QGCN without the global branch;
    - ``edsr``: QCN without the maps (the paper's EDSR baseline, down-sampled like ours);
    - ``arcnn``: the 4-layer AR-CNN, image only.
    """

    variant: str = "qgcn"
    colour: bool = True
    channels: int = 32
    blocks: tuple[int, int] = (8, 8)  # residual blocks in group 1 and group 2
    res_scale: float = 0.1
    # "flat": the paper's two residual groups at H/2 (channels, blocks); "unet": levels at H/2,
    # H/4, … with ``unet_channels``, each with ``unet_blocks`` before and after the level below
    # (the lowest level: that many in all), the global features joined at the lowest level
    body: str = "flat"
    unet_channels: tuple[int, ...] = (32, 64, 128)
    unet_blocks: tuple[int, ...] = (2, 2, 4)
    # U-Net only: a path at full resolution (H×W) with ``fine_channels`` (0: none) and
    # ``fine_blocks`` residual blocks, for the pixel-level detail the H/2 levels lose
    fine_channels: int = 0
    fine_blocks: int = 2
    # the U-Net's blocks: "residual" (conv-ReLU-conv, EDSR) or "naf" (NAFNet's: layer norm, 1×1 and
    # depthwise convs, simple gates, no other non-linearity; a third of a residual block's MACs)
    block: str = "residual"
    global_channels: tuple[int, ...] = (32, 64, 128, 256)  # Table I, conv1..conv4
    global_pool: bool = False  # average-pool the 7×7 map before fc1 (small presets; paper: False)
    global_hidden: int = 1024  # fc1 width
    # fc2 width, broadcast over H/2×W/2; 0: no global branch (a qgcn trained with it left out ships
    # without it), its join kept over the body's features alone
    global_features: int = 64
    global_size: int = 112

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {tuple(VARIANTS)}, got {self.variant!r}")
        if self.body not in BODIES:
            raise ValueError(f"body must be one of {BODIES}, got {self.body!r}")
        for name in ("blocks", "global_channels", "unet_channels", "unet_blocks"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.unet_channels) != len(self.unet_blocks):
            raise ValueError("unet_channels and unet_blocks need one entry per level")
        if 2 ** len(self.unet_channels) > GRID:
            # the lowest level must divide every window the engine cuts on its grid
            raise ValueError(f"a U-Net body has at most {GRID.bit_length() - 1} levels, got {len(self.unet_channels)}")
        if self.fine_channels and self.body != "unet":
            raise ValueError("a full-resolution path (fine_channels) needs the unet body")
        if self.block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {self.block!r}")
        if self.block != "residual" and self.body != "unet":
            raise ValueError(f"{self.block} blocks need the unet body")

    @property
    def image_channels(self) -> int:
        return 3 if self.colour else 1

    @property
    def uses_maps(self) -> bool:
        return VARIANTS[self.variant].maps

    @property
    def map_channels(self) -> int:
        return (2 if self.colour else 1) if self.uses_maps else 0

    @property
    def joins_global(self) -> bool:
        """Whether the body has the layer joining global features (``merge``)."""
        return VARIANTS[self.variant].global_input

    @property
    def has_global(self) -> bool:
        """Whether a global branch is built and fed the whole image."""
        return self.joins_global and self.global_features > 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**d)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, padding=(k - 1) // 2 if stride == 1 else (k - stride) // 2)


class ResidualBlock(nn.Module):
    """conv-ReLU-conv, scaled by ``res_scale``, plus the skip; no batch norm (EDSR)."""

    def __init__(self, channels: int, res_scale: float):
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels), nn.ReLU(inplace=True), _conv(channels, channels))
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.body(x) * self.res_scale


class ResidualGroup(nn.Module):
    """N residual blocks and a conv, with a skip over the whole group."""

    def __init__(self, channels: int, n: int, res_scale: float):
        super().__init__()
        self.body = nn.Sequential(*[ResidualBlock(channels, res_scale) for _ in range(n)], _conv(channels, channels))

    def forward(self, x):
        return x + self.body(x)


class GlobalBranch(nn.Module):
    """Table I: four (4×4 stride-2 conv, 3×3 conv) pairs on the 112×112 input, fc1, fc2."""

    def __init__(self, cfg: ModelConfig, in_channels: int):
        super().__init__()
        layers, cin = [], in_channels
        for c in cfg.global_channels:
            layers += [_conv(cin, c, 4, 2), nn.ReLU(inplace=True), _conv(c, c), nn.ReLU(inplace=True)]
            cin = c
        self.features = nn.Sequential(*layers)
        side = cfg.global_size // 2 ** len(cfg.global_channels)
        self.pool = nn.AdaptiveAvgPool2d(1) if cfg.global_pool else nn.Identity()
        flat = cin if cfg.global_pool else cin * side * side
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, cfg.global_hidden), nn.ReLU(inplace=True),
            nn.Linear(cfg.global_hidden, cfg.global_features),
        )

    def forward(self, g):
        return self.fc(self.pool(self.features(g)))


class RestorationNet(nn.Module):
    """What every network of the family offers the engine: ``global_features(g)`` (None without a
    global branch) and ``restore(x, features)``; ``forward(x, g)`` is both. The QGCN frame's
    global branch and the join of its features (``merge``) are built and applied here, once."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.global_branch: GlobalBranch | None = None

    def _add_global_join(self, channels: int) -> None:
        """The global branch and the conv joining its features to ``channels`` body features.
        Subclasses call this where the join sits in their body, so parameters keep the order
        (optimizer states, seeded initialisation) they had before this frame existed."""
        cfg = self.config
        self.global_branch = GlobalBranch(cfg, cfg.image_channels + cfg.map_channels) if cfg.has_global else None
        self.merge = _conv(channels + cfg.global_features, channels) if cfg.joins_global else nn.Identity()

    def global_features(self, g: torch.Tensor) -> torch.Tensor | None:
        return None if self.global_branch is None else self.global_branch(g)

    def join_global(self, f: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        """Features ``f`` with the global vector broadcast beside them and merged (no-op for variants
        without the join, the join alone when the branch was left out); ``features`` None, as in
        the 64×64 training stage, joins zeros."""
        if not self.config.joins_global:
            return f
        if not self.config.global_features:
            return self.merge(f)
        b, _, h, w = f.shape
        if features is None:
            features = f.new_zeros(b, self.config.global_features)
        return self.merge(torch.cat([f, features[:, :, None, None].expand(b, -1, h, w)], 1))

    def restore(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        return self.restore(x, None if g is None else self.global_features(g))


class QGCN(RestorationNet):
    """Restoration branch (+ optional global branch); covers the qgcn, qcn and edsr variants.

    The output is added to the input image (global residual), so the network learns the
    correction, and an untrained correction of zero leaves the image as it was.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        c, cin = cfg.channels, cfg.image_channels + cfg.map_channels
        self.head = _conv(cin, c, 4, 2)
        self.group1 = ResidualGroup(c, cfg.blocks[0], cfg.res_scale)
        self._add_global_join(c)
        self.group2 = ResidualGroup(c, cfg.blocks[1], cfg.res_scale)
        self.tail = nn.Sequential(_conv(c, 4 * c), nn.PixelShuffle(2), _conv(c, cfg.image_channels))

    def restore(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, image + map channels, H, W) with H, W even; returns (B, image channels, H, W)."""
        f = self.join_global(self.group1(self.head(x)), features)
        return x[:, : self.config.image_channels] + self.tail(self.group2(f))


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of each pixel (NAFNet's): local, so tiles restore as the whole."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(channels)), nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        # torch's fused layer norm over the last dimension: 7× faster here than the sums written out
        return nn.functional.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, 1e-6) \
            .permute(0, 3, 1, 2)


class NAFBlock(nn.Module):
    """NAFNet's block (Chen et al. 2022): norm, 1×1 conv to 2c, 3×3 depthwise conv, simple gate (one
    half times the other), 1×1 conv; then norm, 1×1 to 2c, gate, 1×1; each added with a learnt
    per-channel scale that starts at zero. Its simplified channel attention pools the whole input,
    which would make a tile's output depend on the tile, so it is left out."""

    def __init__(self, channels: int):
        super().__init__()
        c = channels
        self.norm1, self.norm2 = LayerNorm2d(c), LayerNorm2d(c)
        self.expand1, self.depthwise = _conv(c, 2 * c, 1), nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.project1 = _conv(c, c, 1)
        self.expand2, self.project2 = _conv(c, 2 * c, 1), _conv(c, c, 1)
        self.beta, self.gamma = (nn.Parameter(torch.zeros(1, c, 1, 1)) for _ in range(2))

    @staticmethod
    def _gate(x):
        a, b = x.chunk(2, dim=1)
        return a * b

    def forward(self, x):
        y = x + self.beta * self.project1(self._gate(self.depthwise(self.expand1(self.norm1(x)))))
        return y + self.gamma * self.project2(self._gate(self.expand2(self.norm2(y))))


def _stack(channels: int, n: int, res_scale: float, block: str = "residual") -> nn.Sequential:
    if block == "naf":
        return nn.Sequential(*[NAFBlock(channels) for _ in range(n)])
    return nn.Sequential(*[ResidualBlock(channels, res_scale) for _ in range(n)])


class UNetQGCN(RestorationNet):
    """The QGCN frame (maps in, global features, output added to the input) around a U-Net body:
    levels at H/2, H/4, … joined by stride-2 convs down and pixel-shuffle up, skips added."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        ch, nb, cin = cfg.unet_channels, cfg.unet_blocks, cfg.image_channels + cfg.map_channels
        self.head = _conv(cin, ch[0], 4, 2)
        self.encoders = nn.ModuleList(_stack(c, n, cfg.res_scale, cfg.block) for c, n in zip(ch[:-1], nb[:-1]))
        self.downs = nn.ModuleList(_conv(a, b, 4, 2) for a, b in zip(ch[:-1], ch[1:]))
        self._add_global_join(ch[-1])
        self.bottom = _stack(ch[-1], nb[-1], cfg.res_scale, cfg.block)
        self.ups = nn.ModuleList(nn.Sequential(_conv(b, 4 * a), nn.PixelShuffle(2)) for a, b in zip(ch[:-1], ch[1:]))
        self.decoders = nn.ModuleList(_stack(c, n, cfg.res_scale, cfg.block) for c, n in zip(ch[:-1], nb[:-1]))
        self.tail = nn.Sequential(_conv(ch[0], 4 * ch[0]), nn.PixelShuffle(2), _conv(ch[0], cfg.image_channels))
        if cfg.fine_channels:
            # sees the input itself beside the up-sampled features; its last conv starts at zero
            # so the network restores as it did without the path until training grows it
            last = _conv(cfg.fine_channels, cfg.image_channels)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)  # type: ignore[arg-type]  # a conv made with a bias
            self.fine: nn.Sequential | None = nn.Sequential(
                _conv(cin + ch[0], cfg.fine_channels), *_stack(cfg.fine_channels, cfg.fine_blocks, cfg.res_scale), last)
        else:
            self.fine = None

    def restore(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, image + map channels, H, W), H and W multiples of 2 ** levels."""
        f, skips = self.head(x), []
        for encode, down in zip(self.encoders, self.downs):
            f = encode(f)
            skips.append(f)
            f = down(f)
        f = self.bottom(self.join_global(f, features))
        for up, decode, skip in zip(reversed(self.ups), reversed(self.decoders), reversed(skips)):
            f = decode(up(f) + skip)
        f = self.tail[:2](f)  # features at H×W
        out = x[:, : self.config.image_channels] + self.tail[2](f)
        return out if self.fine is None else out + self.fine(torch.cat([x, f], 1))


class ARCNN(RestorationNet):
    """AR-CNN (Dong et al. 2015): feature extraction, enhancement, mapping, reconstruction."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        n = cfg.image_channels
        self.body = nn.Sequential(
            _conv(n, 64, 9), nn.ReLU(inplace=True), _conv(64, 32, 7), nn.ReLU(inplace=True),
            _conv(32, 16, 1), nn.ReLU(inplace=True), _conv(16, n, 5),
        )

    def restore(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.body(x)


def _frame(cfg: ModelConfig) -> RestorationNet:
    """The QGCN frame around the configured body."""
    return UNetQGCN(cfg) if cfg.body == "unet" else QGCN(cfg)


def _in_global_stage(name: str) -> bool:
    # the cheap first 256×256 stage: the global branch and the layer joining its features
    return name.startswith(("global_branch.", "merge."))


register_variant("qgcn", maps=True, global_input=True, stages={"global": _in_global_stage})(_frame)
register_variant("qcn", maps=True, global_input=False)(_frame)  # QGCN without the global branch
register_variant("edsr", maps=False, global_input=False)(_frame)  # QCN without the maps (EDSR baseline)
register_variant("arcnn", maps=False, global_input=False)(ARCNN)


def build_model(cfg: ModelConfig) -> RestorationNet:
    return VARIANTS[cfg.variant].build(cfg)


#: Presets differ in size only. ``paper`` is as published (N_res = 32, 64 channels, Table I with
#: its 7·7·256 -> 1024 fc). The others pool the 7×7 map before a smaller fc: the printed fc alone
#: holds 12.85 M weights, more than a whole small restoration branch.
PRESETS: dict[str, ModelConfig] = {
    "paper": ModelConfig(channels=64, blocks=(32, 32)),
    "medium": ModelConfig(channels=40, blocks=(4, 4), global_pool=True, global_hidden=256),
    "small": ModelConfig(channels=32, blocks=(6, 6), global_pool=True, global_hidden=256),
    "tiny": ModelConfig(
        channels=24, blocks=(4, 4), global_channels=(16, 32, 64, 128), global_pool=True, global_hidden=128
    ),
    # about small's cost per pixel, 4× its weights: wide layers at low resolution run faster here
    "unet": ModelConfig(body="unet", unet_channels=(32, 64, 128), unet_blocks=(2, 2, 4), global_pool=True,
                        global_hidden=256),
}
# unet plus a 16-channel path at full resolution: it warm-starts from unet weights (qgcn_training.warm_start)
PRESETS["unet-fine"] = replace(PRESETS["unet"], fine_channels=16)
# unet's levels with NAFNet blocks, three per residual block: about unet's MACs per pixel
PRESETS["unet-naf"] = replace(PRESETS["unet"], block="naf", unet_blocks=(6, 6, 12))


def preset(name: str, *, colour: bool = True, variant: str = "qgcn") -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return replace(PRESETS[name], colour=colour, variant=variant)


def model_cost(cfg: ModelConfig) -> dict:
    """Parameters, fp16 weight bytes, restoration MACs per pixel and global-branch MACs per image."""
    model = build_model(cfg)
    params = sum(p.numel() for p in model.parameters())
    counts = {"restoration": 0, "global": 0}

    def hook(name):
        def count(module, inputs, output):
            if isinstance(module, nn.Conv2d):
                k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
                counts[name] += output.numel() * k
            elif isinstance(module, nn.Linear):
                counts[name] += module.in_features * module.out_features
        return count

    branch = getattr(model, "global_branch", None)
    in_global = {id(m) for m in branch.modules()} if branch is not None else set()
    handles = [
        m.register_forward_hook(hook("global" if id(m) in in_global else "restoration"))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    side = 64
    with torch.no_grad():
        x = torch.zeros(1, cfg.image_channels + cfg.map_channels, side, side)
        g = torch.zeros(1, x.shape[1], cfg.global_size, cfg.global_size)
        model(x, g if cfg.has_global else None)
    for h in handles:
        h.remove()
    return {
        "params": params,
        "weights_fp16_bytes": 2 * params,
        "macs_per_pixel": counts["restoration"] / side**2,
        "global_macs_per_image": counts["global"],
    }
