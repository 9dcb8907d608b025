"""JPEG facts: quantization tables by component, table ids and sampling factors.

Everything the restoration needs to know about how a file was coded is collected in one
immutable :class:`JpegFacts`, read from a Pillow ``JpegImageFile`` (:func:`facts_from_image`),
built from tables the caller knows (:func:`facts_from_tables`), or estimated from the pixels
(:mod:`napari_jpeg_restore.blind`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from .errors import RestoreError

#: Side of a coding block (T.81: 8×8 samples per DCT).
BLOCK = 8
#: Tiles and padded sizes lie on this grid: a multiple of 8×8 luma blocks, 16×16 4:2:0 MCUs and
#: the networks' stride 2.
GRID = 16
#: File suffixes taken as JPEG files (the napari reader, the layer worker's file source).
JPEG_SUFFIXES = (".jpg", ".jpeg", ".jfif", ".jpe")

# Sampling factors (H, V) of the luma component for each chroma subsampling; chroma is (1, 1).
SUBSAMPLINGS: dict[str, tuple[int, int]] = {
    "4:4:4": (1, 1),
    "4:2:2": (2, 1),
    "4:2:0": (2, 2),
    "4:4:0": (1, 2),
    "4:1:1": (4, 1),
}

# ITU-T T.81 Annex K tables, the base of the IJG quality scaling used by libjpeg and Pillow.
_IJG_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
     14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
     18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.int64,
).reshape(8, 8)
_IJG_CHROMA = np.array(
    [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
     24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99]
    + [99] * 32,
    dtype=np.int64,
).reshape(8, 8)


class JpegError(RestoreError):
    """A file whose coding the restorer cannot use; the message names the file."""


def ijg_scale(quality: int) -> int:
    """libjpeg's percentage scaling of the Annex K tables for ``quality`` 1..100."""
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    return 5000 // quality if quality < 50 else 200 - 2 * quality


def ijg_tables(quality: int, *, baseline: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The (luma, chroma) tables libjpeg and Pillow write for ``quality`` 1..100; ``baseline``
    False leaves steps above 255 (16-bit tables) unclamped."""
    scale = ijg_scale(quality)
    luma, chroma = (np.clip((t * scale + 50) // 100, 1, 255 if baseline else 65535) for t in (_IJG_LUMA, _IJG_CHROMA))
    return luma, chroma


def jpeg_bytes(image, **save) -> bytes:
    """``image`` (a Pillow image or uint8 array) as the bytes of a JPEG file coded by Pillow
    with its ``save`` options."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, "JPEG", **save)
    return buf.getvalue()


def open_jpeg_bytes(data: bytes) -> Image.Image:
    """The decoded file held in ``data``: a JPEG image with its tables and sampling."""
    out = Image.open(io.BytesIO(data))
    out.load()
    return out


def encode_jpeg(image, **save) -> Image.Image:
    """``image`` JPEG-coded in memory (:func:`jpeg_bytes`) and opened again: a JPEG file with
    its tables and sampling, as read from disk."""
    return open_jpeg_bytes(jpeg_bytes(image, **save))


@dataclass(frozen=True)
class JpegFacts:
    """How an image was JPEG-coded: one 8×8 table (natural order) and (H, V) sampling per component.

    ``tables`` and ``sampling`` hold one entry per component: (Y,) for grayscale, (Y, Cb, Cr) for
    colour. ``table_ids`` are the DQT ids the file used (informative only). ``grid_offset`` is
    the (row, col) of a luma block boundary modulo 8: (0, 0) for a file, other values for a
    cropped JPEG found in blind mode.
    """

    tables: tuple[np.ndarray, ...]
    sampling: tuple[tuple[int, int], ...]
    table_ids: tuple[int, ...] = ()
    source: str = "<image>"
    grid_offset: tuple[int, int] = (0, 0)

    def scaled(self, strength: float) -> "JpegFacts":
        """The same coding with every step times ``strength`` (at least 1): what the restoration
        strength tells the network (> 1: treat as more compressed; < 1: less)."""
        if not strength > 0:
            raise ValueError(f"strength must be positive, got {strength}")
        if strength == 1:
            return self
        return replace(self, tables=tuple(np.maximum(t * strength, 1.0) for t in self.tables))

    @property
    def colour(self) -> bool:
        return len(self.tables) == 3

    @property
    def map_tables(self) -> tuple[np.ndarray, ...]:
        """The tables the network sees: luma, and for colour one chroma table.

        Rule for files whose Cb and Cr tables differ: the chroma map is their element-wise
        mean, so both channels' coarseness counts equally.
        """
        if not self.colour:
            return (self.tables[0],)
        return (self.tables[0], (self.tables[1] + self.tables[2]) / 2.0)

    @property
    def block_sizes(self) -> tuple[tuple[int, int], ...]:
        """Image pixels (rows, cols) covered by one 8×8 coding block of each map's component."""
        hmax = max(h for h, _ in self.sampling)
        vmax = max(v for _, v in self.sampling)
        comps = self.sampling if not self.colour else self.sampling[:2]
        return tuple((8 * vmax // v, 8 * hmax // h) for h, v in comps)

    @property
    def mcu(self) -> tuple[int, int]:
        """Minimum coded unit in image pixels (rows, cols)."""
        return 8 * max(v for _, v in self.sampling), 8 * max(h for h, _ in self.sampling)

    @property
    def subsampling(self) -> str:
        if not self.colour:
            return "gray"
        (hy, vy), (hc, vc), _ = self.sampling
        ratio = (hy / hc, vy / vc)
        return next((name for name, hv in SUBSAMPLINGS.items() if hv == ratio), f"{hy}x{vy},{hc}x{vc}")


def _table(values, name: str) -> np.ndarray:
    table = np.asarray(values, dtype=np.float64).reshape(8, 8)
    if table.min() < 1 or table.max() > 65535:
        raise JpegError(f"{name}: quantization table values must lie in 1..65535")
    return table


def facts_from_tables(
    luma, chroma=None, subsampling: str = "4:2:0", *, colour: bool | None = None, source="<tables>"
) -> JpegFacts:
    """Facts from tables the caller supplies (64 values each, natural row-major order).

    ``colour`` defaults to whether a chroma table was given; a colour image without one reuses
    the luma table for chroma.
    """
    colour = chroma is not None if colour is None else colour
    luma = _table(luma, source)
    if not colour:
        return JpegFacts((luma,), ((1, 1),), source=source)
    if subsampling not in SUBSAMPLINGS:
        raise RestoreError(f"subsampling must be one of {', '.join(SUBSAMPLINGS)}; got {subsampling!r}")
    chroma = luma if chroma is None else _table(chroma, source)
    return JpegFacts((luma, chroma, chroma), (SUBSAMPLINGS[subsampling], (1, 1), (1, 1)), source=source)


def facts_from_image(im) -> JpegFacts:
    """Read tables and sampling factors from a Pillow ``JpegImageFile``.

    Each component's table is found through its own table id (``im.layer``), so files with
    three tables, 16-bit tables or unusual ids are read as coded.
    """
    source = str(getattr(im, "filename", "") or "<JPEG image>")
    if getattr(im, "format", None) != "JPEG" or not hasattr(im, "layer"):
        raise JpegError(f"{source}: not a JPEG image")
    if im.mode not in ("L", "RGB"):
        kind = "YCCK" if im.info.get("adobe_transform") == 2 else im.mode
        raise JpegError(f"{source}: {kind} JPEG files are not supported (only grayscale and YCbCr)")
    if im.mode == "RGB" and im.info.get("adobe_transform") == 0 and "adobe" in im.info:
        raise JpegError(f"{source}: RGB-coded JPEG (Adobe transform 0) is not supported, only YCbCr")
    try:
        layers = list(im.layer)
        tables = tuple(_table(im.quantization[tq], source) for _, _, _, tq in layers)
    except KeyError as exc:
        raise JpegError(f"{source}: a component refers to quantization table {exc} which the file lacks") from None
    # Pillow's layer tuples are (id, H, V, table id): the SOF byte's high nibble is H.
    sampling = tuple((h, v) for _, h, v, _ in layers)
    if any(not 1 <= s <= 4 for hv in sampling for s in hv):
        raise JpegError(f"{source}: invalid sampling factors {sampling}")
    if len(layers) == 1:
        sampling = ((1, 1),)  # one component is never subsampled (T.81 A.2.1)
    else:
        hmax, vmax = max(h for h, _ in sampling), max(v for _, v in sampling)
        if any(hmax % h or vmax % v for h, v in sampling) or sampling[1] != sampling[2]:
            raise JpegError(f"{source}: unsupported sampling factors {sampling}")
    return JpegFacts(tables, sampling, tuple(tq for *_, tq in layers), source)


def facts_to_dict(facts: JpegFacts) -> dict:
    """Plain-data form (lists and ints) for napari layer metadata and JSON."""
    return {
        "tables": [t.astype(int).ravel().tolist() for t in facts.tables],
        "sampling": [list(hv) for hv in facts.sampling],
        "table_ids": list(facts.table_ids),
        "source": facts.source,
        "grid_offset": list(facts.grid_offset),
    }


def facts_from_dict(d: dict) -> JpegFacts:
    """Inverse of :func:`facts_to_dict`."""
    source = d.get("source", "<metadata>")
    return JpegFacts(
        tuple(_table(t, source) for t in d["tables"]),
        tuple(tuple(hv) for hv in d["sampling"]),
        tuple(d.get("table_ids", ())),
        source,
        tuple(d.get("grid_offset", (0, 0))),
    )


# The product's one orientation rule: restoration runs on the stored pixels (the block grid);
# what is shown or written is the upright image, with the EXIF orientation reset to 1.
_UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
_STORED = {**_UPRIGHT, 6: _UPRIGHT[8], 8: _UPRIGHT[6]}


def exif_orientation(im) -> int:
    """The EXIF orientation tag (1..8) of a Pillow image, 1 when absent or invalid."""
    value = im.getexif().get(0x0112, 1)
    return value if value in _UPRIGHT else 1


def to_upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Stored pixels (H, W[, C]) as they are meant to be seen."""
    return np.ascontiguousarray(_UPRIGHT.get(orientation, _UPRIGHT[1])(pixels))


def to_stored(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Inverse of :func:`to_upright`: upright pixels back on the file's block grid."""
    return np.ascontiguousarray(_STORED.get(orientation, _STORED[1])(pixels))
