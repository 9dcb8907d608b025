"""Consistency with the file: the restored image projected onto the JPEG's quantization constraint set.

A JPEG file fixes, for every 8×8 block of every component, the quantized DCT coefficients ``k``:
the original block's coefficient lay within ``[(k - 0.5) q, (k + 0.5) q]`` for the table step
``q``. :func:`project` clamps each block of a restored image to ``[(k - α) q, (k + α) q]`` (luma
on its grid, chroma on its own sampling grid: the restored chroma box-averaged as libjpeg's
encoder does, projected there, and the correction replicated back to full resolution), keeping
:data:`ROUNDING_MARGIN` from the edge of the file's own interval, so the restoration invents
nothing the file rules out. ``α`` 0.5 is the exact set; smaller holds the output nearer the coded
values (each model's α is chosen on training-pool images: ``qgcn-train choose-consistency``).

The coefficients come exactly from the file when a file or its bytes are at hand
(:func:`read_coefficients`, :func:`coefficients_from_bytes`: jpeglib, which decodes no pixels;
:func:`~napari_jpeg_restore.table_sources.coefficients_for` decides when); otherwise they are
estimated from the decoded pixels, block by block (``round(DCT(decoded) / q)``), which is exact
for almost every luma coefficient but not for up-sampled chroma, so then sub-sampled chroma is
left free.

The projection always uses the file's own tables: ``strength`` changes what the network is told,
not what the file says.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from .jpeg import JpegFacts

if TYPE_CHECKING:  # torch is imported where a tensor is made, so that importing this stays light
    from torch import Tensor

#: Interval half-width (in table steps) for models whose record names none: the exact set.
DEFAULT_ALPHA = 0.5
#: The jpeglib build that reads coefficients: libjpeg-turbo 2.1 also reads arithmetic-coded files,
#: which jpeglib's default (libjpeg 6b) refuses.
JPEGLIB_VERSION = "turbo210"
#: Grey levels kept between a clamped coefficient and its file interval's edge: rounding the
#: result to 8-bit RGB moves coefficients by up to about a level, which must not carry one out
#: of the file's interval (with it, re-encoding gives back more of the file's coefficients than
#: Pillow's own decode does, at QF 90 too; without, fewer at small steps).
ROUNDING_MARGIN = 1.0
#: Alternating projections per restored region (see :func:`project`).
ROUNDS = 3


@dataclass(frozen=True)
class Coefficients:
    """A file's quantized DCT coefficients: one (block rows, block cols, 8, 8) integer array per
    component (natural order, as coded), and where they came from."""

    blocks: tuple[np.ndarray, ...]
    source: str


def keep_reader_library() -> None:
    """Select jpeglib's library for the rest of this process. Each read otherwise selects it and
    then restores the one before, and each selection lists jpeglib's folder and runs a hundred
    regular expressions (1.1 ms a read, a fifth of a training patch's making); a process that
    reads many files and shares jpeglib with no one (training) calls this once."""
    import jpeglib

    jpeglib.version.set(JPEGLIB_VERSION)


@contextmanager
def _reader_library():
    """jpeglib's library set to :data:`JPEGLIB_VERSION` inside the block, as it was after."""
    import jpeglib

    if jpeglib.version.get() == JPEGLIB_VERSION:
        yield
        return
    with jpeglib.version(JPEGLIB_VERSION):
        yield


def _read(path: str, facts: JpegFacts) -> Coefficients | None:
    import jpeglib

    try:
        with _reader_library():
            jpeg = jpeglib.read_dct(path)
            planes = (jpeg.Y,) if not facts.colour else (jpeg.Y, jpeg.Cb, jpeg.Cr)
            tables = jpeg.qt
            table_no = list(jpeg.quant_tbl_no)
    except (OSError, RuntimeError, ValueError):
        return None
    if any(p is None for p in planes) or len(planes) != len(facts.tables):
        return None
    # the coefficients belong to these facts only if every component was quantized by its table
    if any(not np.array_equal(tables[t], f) for t, f in zip(table_no, facts.tables)):
        return None
    return Coefficients(tuple(np.asarray(p) for p in planes), facts.source)  # int16 as coded: 2 bytes a coefficient


def read_coefficients(path, facts: JpegFacts) -> Coefficients | None:
    """The quantized coefficients of the JPEG file at ``path``, or None when it cannot be read
    or was not coded with ``facts``' tables."""
    return _read(str(path), facts)


def coefficients_from_bytes(data: bytes, facts: JpegFacts) -> Coefficients | None:
    """:func:`read_coefficients` for a file held in memory (jpeglib reads only from paths)."""
    fd, tmp = tempfile.mkstemp(suffix=".jpg")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return _read(tmp, facts)
    finally:
        os.unlink(tmp)


def fits(coefficients: Coefficients, facts: JpegFacts, height: int, width: int) -> bool:
    """Whether the coefficient arrays are the block grids of an image of this size and coding."""
    if len(coefficients.blocks) != len(facts.tables):
        return False
    vmax, hmax = max(v for _, v in facts.sampling), max(h for h, _ in facts.sampling)
    for blocks, (h, v) in zip(coefficients.blocks, facts.sampling):
        rows, cols = -(-height * v // (vmax * 8)), -(-width * h // (hmax * 8))
        if blocks.shape != (rows, cols, 8, 8):
            return False
    return True


def _dct_matrix(dtype, device):
    """The orthonormal 8-point DCT-II (JPEG's FDCT): coefficients = D @ block @ D.T."""
    import torch

    n = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * n[None, :] + 1) * n[:, None] * torch.pi / 16) * 0.5
    d[0] /= 2**0.5
    return d.to(dtype=dtype, device=device)


@lru_cache(maxsize=32)  # every tile of every image asks for the same few (their making was 4 % of a projection)
def _transforms(fy: int, fx: int, dtype, device):
    """For a component sampled every ``fy`` × ``fx`` pixels, (down, across, up, back): the
    coefficients of each (8 fy, 8 fx) block ``X`` of full-resolution pixels are
    ``down @ X @ across`` (the box average libjpeg's encoder takes, then the DCT: one product, no
    pooling pass), and a coefficient change ``C`` comes back to full resolution, each sample
    replicated over the pixels it averaged, as ``up @ C @ back``."""
    import torch

    # kept across calls, so never inference tensors (the engine's), which training could not use
    with torch.inference_mode(False):
        d = _dct_matrix(dtype, device)
        down, back = (torch.repeat_interleave(d, f, dim=1) / f for f in (fy, fx))
        return down, back.T.contiguous(), down.T * fy, back * fx


def _coefficients(planes, transforms):
    """Every block's DCT coefficients of pixels (…, H, W), as a coefficient plane (…, H / fy,
    W / fx): block (r, c)'s coefficient (u, v) at (8 r + u, 8 c + v). Two large products, one
    along rows and one along columns, where one product per block would be thousands of small ones."""
    down, across = transforms[:2]
    *lead, h, w = planes.shape
    rows = planes.reshape(*lead, h, w // across.shape[0], across.shape[0]) @ across
    rows = rows.reshape(*lead, h // down.shape[1], down.shape[1], -1)
    return (down @ rows).flatten(-3, -2)


def _pixels(coefficients, transforms):
    """Inverse of :func:`_coefficients` for a coefficient change: (…, H / fy, W / fx) to (…, H, W)."""
    up, back = transforms[2:]
    *lead, h, w = coefficients.shape
    cols = (up @ coefficients.reshape(*lead, h // 8, 8, w)).flatten(-3, -2)
    return (cols.reshape(*lead, cols.shape[-2], w // 8, 8) @ back).flatten(-2)


def _replicate_edges_(ycc, valid):
    """``ycc`` (C, H, W), the caller's own, with the pixels outside ``valid`` (y0, y1, x0, x1)
    replaced in place by the nearest pixel inside, as an encoder pads partial blocks. In place:
    every region of a row of tiles reaches the image's right edge, and a padded copy of each
    cost a twentieth of the projection."""
    y0, y1, x0, x1 = valid
    if valid == (0, ycc.shape[1], 0, ycc.shape[2]):
        return ycc
    ycc[:, :y0] = ycc[:, y0 : y0 + 1]
    ycc[:, y1:] = ycc[:, y1 - 1 : y1]
    ycc[:, :, :x0] = ycc[:, :, x0 : x0 + 1]  # after the rows: corners take the corner pixel
    ycc[:, :, x1:] = ycc[:, :, x1 - 1 : x1]
    return ycc


def _by_mcu(t, grid):
    """(…, H, W) regrouped by MCU, as a view: (MCU rows, MCU cols, …, H / MCU rows, W / MCU cols)."""
    *lead, h, w = t.shape
    n = len(lead)
    t = t.reshape(*lead, grid[0], h // grid[0], grid[1], w // grid[1])
    return t.permute(n, n + 2, *range(n), n + 1, n + 3)


def project(ycc: "Tensor", facts: JpegFacts, alpha: float, *, coefficients: Coefficients | None = None,
            decoded: "Tensor | None" = None, origin: tuple[int, int] = (0, 0),
            valid: tuple[int, int, int, int] | None = None, rounds: int = ROUNDS) -> "Tensor":
    """``ycc`` (C, H, W): a restored region (Y or Y/Cb/Cr in [0, 1], the network's space) whose
    top-left pixel sits at ``origin`` of the block-aligned image, on its MCU grid, and whose size
    is a whole number of MCUs. Returns it with every block's coefficients clamped to the
    intervals ``k q ± min(alpha q, q / 2 - ROUNDING_MARGIN)`` (at least ``k q`` itself);
    differentiable (a training loss can see it).

    ``k`` comes from ``coefficients`` (the file's; blocks the file lacks stay free) or, when
    None, from ``decoded`` (the JPEG's decoded region, same shape as ``ycc``). ``valid`` (y0, y1,
    x0, x1) is the region's part inside the image; outside it the pixels are replaced by edge
    replication before the transform, as the encoder did.

    What leaves the engine is clipped to the pixel range and, in partial edge blocks, padded by
    replication again, which can carry a block back out of its interval; ``rounds`` alternating
    projections (pixel range and padding, then the intervals: both sets are convex) bring the
    result into both.
    """
    import torch

    c, h, w = ycc.shape
    valid = valid or (0, h, 0, w)
    vmax, hmax = max(v for _, v in facts.sampling), max(h_ for h_, _ in facts.sampling)
    if coefficients is None and decoded is None:
        raise ValueError("project needs the file's coefficients or the decoded region to estimate them from")
    coded = None if coefficients is not None else decoded
    if coded is not None and valid != (0, h, 0, w):
        coded = _replicate_edges_(coded.clone(), valid)
    # The transforms run on [0, 1] pixels, the bounds come in levels (pixel level 128 is 0): a
    # block's coefficients in levels are 255 × those in pixels less 8 × 128 at DC. Tables are
    # (8, 1, 8), to meet every block of a coefficient plane seen as (block rows, 8, block cols, 8).
    shift = torch.zeros(8, 1, 8, dtype=ycc.dtype, device=ycc.device)
    shift[0, 0, 0] = 8 * 128
    bounds: list[tuple | None] = []  # per component: ((fy, fx), low, high) coefficient planes in pixels; None: free
    for i in range(c):
        (hs, vs), q = facts.sampling[i], torch.as_tensor(facts.tables[i], dtype=ycc.dtype, device=ycc.device)[:, None, :]
        fy, fx = vmax // vs, hmax // hs
        if coefficients is None and (fy, fx) != (1, 1):
            # k estimated from up-sampled chroma is not the file's (it costs 0.05 dB at QF 95): left free
            bounds.append(None)
            continue
        shape = (h // (8 * fy), w // (8 * fx))
        if coefficients is not None:
            blocks, row, col = coefficients.blocks[i], origin[0] // (8 * fy), origin[1] // (8 * fx)
            k = torch.as_tensor(_file_blocks(blocks, row, col, shape), dtype=ycc.dtype, device=ycc.device)
            have = (max(blocks.shape[0] - row, 0), max(blocks.shape[1] - col, 0))  # block rows, cols the file holds
        else:
            assert coded is not None  # checked above: no coefficients, so the decoded region
            k = torch.round((255 * _coefficients(coded[i], _transforms(fy, fx, ycc.dtype, ycc.device))
                             .reshape(shape[0], 8, shape[1], 8)
                             - shift) / q)
            have = shape
        half = torch.clamp(torch.minimum(alpha * q, 0.5 * q - ROUNDING_MARGIN), min=0)
        low, high = (torch.addcmul((shift + s * half) / 255, k, q / 255) for s in (-1, 1))
        if have[0] < shape[0] or have[1] < shape[1]:  # a block the file does not have stays as restored
            for bound, value in ((low, -torch.inf), (high, torch.inf)):
                bound[have[0] :] = value
                bound[:, :, have[1] :] = value
        bounds.append(((fy, fx), low.flatten(2).flatten(0, 1), high.flatten(2).flatten(0, 1)))
    mcu = (8 * vmax, 8 * hmax)
    grid = (h // mcu[0], w // mcu[1])
    out = _project_planes(_replicate_edges_(_in_pixel_range(ycc), valid), bounds)
    if rounds < 2:
        return out
    # The later rounds matter only for MCUs with clipped pixels or reaching outside the image: they
    # run on those MCUs alone, as a batch (an MCU holds whole blocks of every component, and the
    # pixels an edge MCU replicates lie inside it). Rounds leave in-range, consistent MCUs as they
    # are, so the MCUs chosen after the first round are all that later rounds can change.
    edge = torch.ones(grid, dtype=torch.bool, device=ycc.device)
    edge[-(-valid[0] // mcu[0]) : valid[1] // mcu[0], -(-valid[2] // mcu[1]) : valid[3] // mcu[1]] = False  # wholly inside
    clipped = _clipped(out, grid, mcu)
    chosen = (clipped | edge).nonzero(as_tuple=True)
    if not len(chosen[0]):
        return out
    part = _by_mcu(out, grid)[chosen]
    part_bounds = [None if b is None else (b[0], *(_blocks(_by_mcu(x, grid)[chosen], 8, 8) for x in b[1:]))
                   for b in bounds]
    # only MCUs that reach outside the image need their edges replicated (the gather is not free)
    part_valid = _mcu_valid(chosen, mcu, valid, ycc.device) if bool(edge[chosen].any()) else None
    for _ in range(rounds - 1):
        pixels = _in_pixel_range(part)
        if part_valid is not None:
            pixels = _edge_replicated_mcus(pixels, part_valid)
        part = _project_mcus(pixels, part_bounds)
    _by_mcu(out, grid)[chosen] = part  # out is this call's own (made by the first round)
    return out


def _mcu_valid(chosen, mcu, valid, device):
    """For each chosen MCU (rows, cols of the MCU grid), the index in the MCU of the pixel each of
    its rows and columns takes under edge replication: (N, MCU height), (N, MCU width)."""
    import torch

    index = []
    for at, size, lo, hi in ((chosen[0], mcu[0], valid[0], valid[1]), (chosen[1], mcu[1], valid[2], valid[3])):
        start = (at * size)[:, None]
        pixels = start + torch.arange(size, device=device)[None, :]
        # an MCU wholly outside the image (dropped by the engine) replicates its own first pixel
        index.append((pixels.clamp(lo, hi - 1) - start).clamp(0, size - 1))
    return tuple(index)


def _edge_replicated_mcus(batch, valid):
    """A batch of MCUs (N, C, h, w) with the pixels outside the image replaced by the nearest
    inside, ``valid`` as :func:`_mcu_valid` gives it."""
    import torch

    rows, cols = valid
    n, c = batch.shape[:2]
    at = torch.arange(n, device=batch.device)[:, None, None, None]
    return batch[at, torch.arange(c, device=batch.device)[None, :, None, None], rows[:, None, :, None],
                 cols[:, None, None, :]]


def _project_planes(planes, bounds):
    """Planes (C, H, W) in [0, 1] with every block's coefficients clamped to its bounds (as
    :func:`project` makes them), in place: every caller passes planes of its own (made by
    :func:`_in_pixel_range`)."""
    import torch

    for i, bound in enumerate(bounds):
        if bound is not None:
            plane, (factors, low, high) = planes[i], bound
            transforms = _transforms(*factors, planes.dtype, planes.device)
            dct = _coefficients(plane, transforms)  # the same transform as the estimate of k
            plane += _pixels(torch.clamp(dct, low, high).sub_(dct), transforms)
    return planes


def _project_mcus(batch, bounds):
    """:func:`_project_planes` for a batch of MCUs (N, C, h, w) of its own, in place, each bound
    gathered per MCU as :func:`_blocks` lays them out: each block's transform one dense product,
    where the planes' two small products per block row cost several times more on a few hundred
    MCUs."""
    import torch

    for i, bound in enumerate(bounds):
        if bound is not None:
            (fy, fx), low, high = bound
            forward, inverse = _block_transforms(fy, fx, batch.dtype, batch.device)
            pixels = _block_view(batch[:, i], 8 * fy, 8 * fx)
            dct = _blocks(batch[:, i], 8 * fy, 8 * fx) @ forward
            change = torch.clamp(dct, low, high).sub_(dct) @ inverse
            pixels.add_(change.view(pixels.transpose(2, 3).shape).transpose(2, 3))
    return batch


def _block_view(t, by: int, bx: int):
    """(N, h, w) seen as (N, block rows, ``by``, block cols, ``bx``), a view."""
    n, h, w = t.shape
    return t.view(n, h // by, by, w // bx, bx)


def _blocks(t, by: int, bx: int):
    """(N, h, w) cut in ``by`` × ``bx`` blocks, each flattened: (N × blocks, by × bx), a copy."""
    return _block_view(t, by, bx).transpose(2, 3).reshape(-1, by * bx)


@lru_cache(maxsize=32)
def _block_transforms(fy: int, fx: int, dtype, device):
    """(forward, inverse): :func:`_coefficients` and :func:`_pixels` for one block of 8 fy × 8 fx
    pixels as two dense matrices, read off those transforms at each basis vector: flattened
    pixels times ``forward`` are the block's 64 coefficients; a change of them times ``inverse``
    is its change in pixels."""
    import torch

    with torch.inference_mode(False):  # kept across calls, as _transforms' are
        transforms = _transforms(fy, fx, dtype, device)
        size = 64 * fy * fx
        forward = _coefficients(torch.eye(size, dtype=dtype, device=device).view(size, 8 * fy, 8 * fx), transforms)
        inverse = _pixels(torch.eye(64, dtype=dtype, device=device).view(64, 8, 8), transforms)
        return forward.reshape(size, 64), inverse.reshape(64, size)


def _clipped(ycc, grid, mcu):
    """Which MCUs of ``ycc`` (C, H, W) hold pixels outside the output's range: a bool (MCU rows, cols)."""
    from .color import ycbcr_to_rgb

    pixels = ycbcr_to_rgb(ycc, clip=False) if ycc.shape[0] == 3 else ycc
    # first across each MCU's rows, whole image rows at a time (a third faster than across channels first)
    rows = pixels.reshape(pixels.shape[0] * grid[0], mcu[0], -1)
    high, low = (r.view(pixels.shape[0], grid[0], grid[1], mcu[1]) for r in (rows.amax(1), rows.amin(1)))
    return (high.amax((0, 3)) > 1 + 1e-6) | (low.amin((0, 3)) < -1e-6)


def _in_pixel_range(ycc):
    """``ycc`` (…, C, H, W) with its pixels clipped as the engine's output will be (RGB, or Y, in [0, 1])."""
    from .color import rgb_to_ycbcr, ycbcr_to_rgb

    if ycc.shape[-3] == 1:  # (…, 1, H, W): gray, planes or a batch of MCUs
        return ycc.clamp(0, 1)
    return rgb_to_ycbcr(ycbcr_to_rgb(ycc))  # ycbcr_to_rgb clips


def _file_blocks(blocks: np.ndarray, row: int, col: int, shape) -> np.ndarray:
    """``shape`` blocks of a coefficient array from (row, col), as (block rows, 8, block cols, 8)
    (a coefficient plane's layout: see :func:`_coefficients`), zero where the file has none."""
    part = blocks[row : row + shape[0], col : col + shape[1]].transpose(0, 2, 1, 3)
    if part.shape[::2] == tuple(shape):  # a region inside the file: one pass, no fill
        return part.astype(np.float32)
    out = np.zeros((shape[0], 8, shape[1], 8), dtype=np.float32)
    out[: part.shape[0], :, : part.shape[2]] = part
    return out
