"""Quantization maps: each table tiled over the image on its component's coding-block grid."""

from __future__ import annotations

import numpy as np

from .jpeg import JpegFacts

#: Name stored with trained weights, so a model is never fed maps normalised another way.
MAP_NORMALISATION = "log2(q)/8"


def normalise_tables(q: np.ndarray) -> np.ndarray:
    """Map quantization steps to network inputs: ``log2(q) / 8``.

    Step 1 (lossless-like) gives 0, step 256 gives 1, a 16-bit step of 65535 gives 2. The log
    spreads high qualities (steps 1..10) as far apart as low ones, which a linear ``q / 255``
    squeezes near zero, and keeps 16-bit tables in range.
    """
    return np.log2(np.asarray(q, dtype=np.float64)) / 8.0


def quantization_maps(facts: JpegFacts, height: int, width: int, top: int = 0, left: int = 0) -> np.ndarray:
    """Normalised maps (1 or 2, height, width) float32 for the image region at (top, left).

    Coordinates are those of the block-aligned image: block boundaries lie at multiples of each
    component's block size (8 for luma; 16×16 image pixels for a 4:2:0 chroma block, whose
    table entries therefore each cover 2×2 pixels).
    """
    maps = np.empty((len(facts.map_tables), height, width), dtype=np.float32)
    rows, cols = np.arange(top, top + height), np.arange(left, left + width)
    for out, table, (by, bx) in zip(maps, facts.map_tables, facts.block_sizes):
        u = (rows % by) * 8 // by
        v = (cols % bx) * 8 // bx
        out[:] = normalise_tables(table)[np.ix_(u, v)]
    return maps
