"""napari reader for JPEG files that keeps their quantization tables in the layer metadata.

One file opens as one layer. Several files, or a folder of them, open as one stack layer when the
frames share a shape and kind, backed by a dask array that decodes a frame only when it is shown;
each frame's facts (tables, sampling, orientation, path) are kept in ``metadata["frames"]``, so
frames coded at different qualities are each restored with their own. Otherwise each file is a
layer of its own, as napari's reader does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import RestoreError
from .jpeg import JPEG_SUFFIXES, JpegError, exif_orientation, facts_from_image, facts_to_dict, to_upright


def _jpeg_paths(path) -> list[Path] | None:
    """The JPEG files ``path`` names (a file, a list of files, or a folder), or None when it names
    anything else (napari then asks other readers)."""
    paths = [Path(p) for p in (path if isinstance(path, list) else [path])]
    if len(paths) == 1 and paths[0].is_dir():
        paths = sorted(p for p in paths[0].iterdir() if p.suffix.lower() in JPEG_SUFFIXES and p.is_file())
    if not paths or any(p.suffix.lower() not in JPEG_SUFFIXES for p in paths):
        return None
    return paths


def napari_get_reader(path):
    """The reader for .jpg/.jpeg/.jfif/.jpe paths, a list of them, or a folder holding them."""
    if not isinstance(path, (str, Path, list)):
        return None
    return read_jpeg if _jpeg_paths(path) else None


def _frame_metadata(im: Image.Image, source: str) -> dict:
    """A file's facts and orientation as layer metadata (no "jpeg" when the restorer cannot use
    its coding, e.g. CMYK: it is shown; restoring it names the problem then)."""
    metadata: dict = {"orientation": exif_orientation(im), "path": source}
    try:
        metadata["jpeg"] = facts_to_dict(facts_from_image(im))
    except JpegError:
        pass
    return metadata


def _upright_pixels(im: Image.Image, orientation: int) -> np.ndarray:
    stored = im if im.mode in ("L", "RGB") else im.convert("RGB")
    return to_upright(np.asarray(stored), orientation)  # the product's one orientation rule


def jpeg_layer(im: Image.Image, name: str, source: str) -> tuple:
    """(data, kwargs, "image"): the upright pixels, with the file's facts and orientation."""
    metadata = _frame_metadata(im, source)
    data = _upright_pixels(im, metadata["orientation"])
    return data, {"name": name, "rgb": data.ndim == 3, "metadata": metadata}, "image"


def _decode(path: str, orientation: int) -> np.ndarray:
    with Image.open(path) as im:
        return _upright_pixels(im, orientation)


def _stack_layer(paths: list[Path], frames: list[dict], shape: tuple[int, ...]) -> tuple:
    """One lazy (T, H, W[, 3]) layer: a frame is decoded when napari shows it."""
    import dask
    import dask.array as da

    lazy = [da.from_delayed(dask.delayed(_decode)(str(p), f["orientation"]), shape, np.uint8)
            for p, f in zip(paths, frames)]
    name = paths[0].parent.name or paths[0].stem
    return da.stack(lazy), {"name": name, "rgb": len(shape) == 3, "metadata": {"frames": frames}}, "image"


def open_frames(path):
    """A folder of JPEG frames, or a list of JPEG files, as napari opens it with this reader: the
    lazy (T, H, W[, 3]) stack and its metadata (each frame's facts in ``metadata["frames"]``), for
    :func:`~napari_jpeg_restore.layer_data.restore_lazily` and
    :func:`~napari_jpeg_restore.layer_data.save_restored_frames`. Nothing is decoded here."""
    paths = _jpeg_paths(path)
    if not paths:
        raise RestoreError(f"{path}: no JPEG files to open as frames (a folder of .jpg files, or a list of them)")
    layers = read_jpeg(paths)
    if len(layers) > 1:
        kinds = sorted({layer[0].shape for layer in layers})
        said = ", ".join(map(str, kinds[:3])) + (", …" if len(kinds) > 3 else "")
        raise RestoreError(f"{path}: the frames differ in size or kind ({said}), so they make no one stack")
    data, kwargs, _ = layers[0]
    return data, kwargs["metadata"]


def read_jpeg(path) -> list[tuple]:
    paths = _jpeg_paths(path) or []
    if len(paths) == 1:
        with Image.open(paths[0]) as im:
            return [jpeg_layer(im, paths[0].stem, str(paths[0]))]
    frames, shapes = [], set()
    for p in paths:  # headers only: nothing is decoded here
        with Image.open(p) as im:
            frame = _frame_metadata(im, str(p))
            turned = frame["orientation"] in (5, 6, 7, 8)
            h, w = (im.width, im.height) if turned else (im.height, im.width)
            shapes.add((h, w) if im.mode == "L" else (h, w, 3))
        frames.append(frame)
    if len(shapes) == 1:
        return [_stack_layer(paths, frames, shapes.pop())]
    return [layer for p in paths for layer in read_jpeg(p)]  # shapes or kinds differ: a layer each
