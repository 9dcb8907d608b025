"""What a network is fed and what it gives back: the one owner of that contract.

A :class:`ModelConfig` says whether a network takes quantization maps and a global input (and at
what size); :class:`NetworkIO` turns decoded pixels plus their JPEG facts into exactly that, and
the network's output back into pixels. The engine, the training sampler, the validator and the
evaluation all go through it, so no caller decides what a variant takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .color import rgb_to_ycbcr, ycbcr_to_rgb
from .errors import RestoreError
from .jpeg import JpegFacts
from .maps import normalise_tables, quantization_maps

if TYPE_CHECKING:  # the model module imports torch; building inputs needs only its config
    from torch import Tensor

    from .model import ModelConfig


def image_tensor(pixels: np.ndarray) -> "Tensor":
    """(H, W) or (H, W, 3) uint8 -> (1 or 3, H, W) float: Y, or Y/Cb/Cr, in [0, 1]."""
    import torch

    x = torch.from_numpy(pixels.astype(np.float32)).div_(255)
    return x[None] if x.ndim == 2 else rgb_to_ycbcr(x.permute(2, 0, 1))


def to_pixels(x: "Tensor") -> np.ndarray:
    """Inverse of :func:`image_tensor` for one image: clip, round, uint8 (H, W) or (H, W, 3)."""
    import torch

    if x.shape[0] == 3:
        x = ycbcr_to_rgb(x)
    return x.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).squeeze(2).cpu().numpy()


def display_space(x: "Tensor") -> "Tensor":
    """Network outputs or targets (B, Y or YCbCr, H, W) in the space the loss and the metrics use:
    RGB for colour, Y for grayscale, in [0, 1]."""
    return ycbcr_to_rgb(x) if x.shape[1] == 3 else x


@dataclass(frozen=True)
class NetworkIO:
    """Inputs for a network built from ``config``, and its output as pixels.

    ``global_on`` False feeds no global input although the network has a global branch: the
    64×64 training stage, where the branch's features are held at zero.
    """

    config: "ModelConfig"
    global_on: bool = True

    @property
    def takes_global(self) -> bool:
        return self.config.has_global and self.global_on

    def restoration_input(self, pixels: np.ndarray, facts: JpegFacts, top: int = 0, left: int = 0) -> "Tensor":
        """Image channels of ``pixels`` and, if the network takes them, the quantization maps of
        the region at (top, left) of the block-aligned image."""
        import torch

        x = image_tensor(pixels)
        if not self.config.uses_maps:
            return x
        return torch.cat([x, torch.from_numpy(quantization_maps(facts, x.shape[1], x.shape[2], top, left))])

    def global_input(self, pixels: np.ndarray, facts: JpegFacts) -> "Tensor | None":
        """The global branch's input, or None when it takes none: the whole image resized to
        ``global_size`` squared (antialiased bilinear), plus one constant plane per map holding
        its table's mean normalised step (the compression level without the aliasing a resized
        block pattern would bring). Resizing uint8 with Pillow keeps memory small on any image."""
        import torch

        if not self.takes_global:
            return None
        size = self.config.global_size
        small = np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR))
        planes = [torch.full((1, size, size), float(normalise_tables(t).mean())) for t in facts.map_tables]
        return torch.cat([image_tensor(small), *planes])

    def check(self, pixels: np.ndarray, facts: JpegFacts) -> None:
        """Raise a RestoreError naming the source when pixels, facts and network differ in kind."""
        colour = pixels.ndim == 3
        if colour != self.config.colour or colour != facts.colour:
            kind = lambda c: "colour" if c else "grayscale"  # noqa: E731
            raise RestoreError(f"{facts.source}: {kind(colour)} pixels, {kind(facts.colour)} JPEG facts and a "
                             f"{kind(self.config.colour)} model do not go together")
