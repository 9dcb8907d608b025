"""``jpeg-restore``: restore many files to lossless images, never touching the inputs.

Every file goes through :func:`napari_jpeg_restore.restore` (the file's own tables; blind mode for
non-JPEG images). Output is upright with EXIF orientation reset (the product's orientation rule),
keeps the rest of the EXIF and the ICC profile, and is written atomically: a stopped run leaves no
half-written output, and ``--skip-existing`` continues where it stopped.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import click
from PIL import Image, ImageOps, UnidentifiedImageError

from .engine import RestoreCancelled
from .filter import restore

INPUT_SUFFIXES = {".jpg", ".jpeg", ".jfif", ".jpe", ".png", ".tif", ".tiff", ".webp", ".bmp"}
FORMATS = {  # format -> (suffix, Pillow save options): all lossless
    "png": (".png", {"format": "PNG"}),
    "tiff": (".tiff", {"format": "TIFF", "compression": "tiff_adobe_deflate"}),
    "webp": (".webp", {"format": "WEBP", "lossless": True, "quality": 100}),
}


class FileFailed(Exception):
    """One input could not be restored; the message is one line naming the file."""


def find_inputs(paths, recursive: bool) -> list[tuple[Path, Path]]:
    """(input file, output path relative to OUTDIR without suffix) for every input."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            for f in sorted(p.glob(pattern)):
                if f.is_file() and f.suffix.lower() in INPUT_SUFFIXES:
                    found.append((f, f.relative_to(p).with_suffix("")))
        else:
            found.append((p, Path(p.stem)))
    return found


def open_image(path: Path) -> Image.Image:
    try:
        im = Image.open(path)
        im.load()
    except FileNotFoundError:
        raise FileFailed(f"{path}: no such file") from None
    except Image.DecompressionBombError as exc:
        raise FileFailed(f"{path}: too many pixels ({exc})") from None
    except UnidentifiedImageError:
        raise FileFailed(f"{path}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise FileFailed(f"{path}: unreadable image ({exc})") from None
    return im


def prepare(im: Image.Image, path: Path) -> Image.Image:
    """Modes restore() takes; palette images become RGB(A), 16-bit/float ones are refused."""
    if im.mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raise FileFailed(f"{path}: {im.mode} image ({'16-bit' if '16' in im.mode else '32-bit'}): never JPEG-coded, "
                         "nothing to restore")
    return im


def write_atomically(image: Image.Image, dst: Path, fmt: str) -> None:
    _, options = FORMATS[fmt]
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.partial")
    save = dict(options)
    if image.info.get("icc_profile"):
        save["icc_profile"] = image.info["icc_profile"]
    exif = image.getexif()
    if exif:
        save["exif"] = exif
    try:
        with open(tmp, "wb") as f:
            image.save(f, **save)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def restore_file(src: Path, dst: Path, fmt: str, models=("default", "default"), **options) -> None:
    """Restore ``src`` into ``dst`` (upright, orientation reset); raises :class:`FileFailed`.
    ``models``: (colour, gray) model specs."""
    im = prepare(open_image(src), src)
    model = models[0] if im.mode in ("RGB", "RGBA") else models[1]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # blind mode is expected for non-JPEG inputs
            out = restore(im, model=None if model == "default" else model, **options)
    except (ValueError, RestoreCancelled) as exc:  # JpegError, WeightsError, bad modes
        raise FileFailed(str(exc) if str(src) in str(exc) else f"{src}: {exc}") from None
    if "exif" in im.info:
        out.info["exif"] = im.info["exif"]
    out = ImageOps.exif_transpose(out)  # upright; drops the orientation tag, keeps the rest
    write_atomically(out, dst, fmt)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", "outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (made if missing).")
@click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders of folder inputs.")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="png", show_default=True,
              help="Lossless output format.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (never an input).")
@click.option("--skip-existing", is_flag=True, help="Leave existing outputs alone (continue a stopped run).")
@click.option("--model", default="default", show_default=True,
              help="Colour model: a shipped name or an exported folder.")
@click.option("--gray-model", default="default", show_default=True, help="Model for grayscale images.")
@click.option("--strength", type=float, default=1.0, show_default=True,
              help="> 1 removes more (as if compressed harder), < 1 less.")
@click.option("--device", help="cpu, cuda, mps (default: best available).")
@click.option("--tile", type=int, default=512, show_default=True)
@click.option("--threads", type=int, help="CPU threads for torch.")
def main(inputs, outdir, recursive, fmt, overwrite, skip_existing, model, gray_model, strength, device, tile,
         threads):
    """Remove JPEG artifacts from INPUTS (files or folders) into OUTDIR."""
    from tqdm import tqdm

    if overwrite and skip_existing:
        raise click.UsageError("--overwrite and --skip-existing exclude each other")
    jobs = find_inputs(inputs, recursive)
    sources = {src.resolve() for src, _ in jobs if src.exists()}
    failures, done, skipped = [], 0, 0
    options = dict(models=(model, gray_model), strength=strength, device=device, tile=tile, threads=threads)
    for src, rel in tqdm(jobs, desc="jpeg-restore", unit="file", disable=None):
        dst = outdir / rel.with_suffix(FORMATS[fmt][0])
        try:
            if dst.resolve() in sources:
                raise FileFailed(f"{src}: its output {dst} would overwrite an input")
            if dst.exists() and not overwrite:
                if skip_existing:
                    skipped += 1
                    continue
                raise FileFailed(f"{src}: {dst} exists (use --overwrite or --skip-existing)")
            restore_file(src, dst, fmt, **options)
            done += 1
        except FileFailed as exc:
            failures.append(str(exc))
    click.echo(f"{done} restored, {skipped} skipped, {len(failures)} failed (of {len(jobs)})", err=True)
    for line in failures:
        click.echo(f"failed: {line}", err=True)
    raise SystemExit(1 if failures else 0)
