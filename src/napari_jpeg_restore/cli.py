"""``jpeg-restore``: restore many files to lossless images, never touching the inputs.

Every file goes through :func:`napari_jpeg_restore.restore` (the file's own tables; blind mode for
non-JPEG images). Output is upright with EXIF orientation reset (the product's orientation rule),
keeps the rest of the EXIF and the ICC profile, and is written atomically: a stopped run leaves no
half-written output, and ``--skip-existing`` continues where it stopped.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from pathlib import Path

import click
from PIL import Image, UnidentifiedImageError

from .errors import RestoreError
from .image_restore import restore
from .jpeg import JPEG_SUFFIXES
from .options import RestoreOptions, click_options
from .saving import FORMATS, save_output, upright
from .table_sources import NEVER_JPEG

INPUT_SUFFIXES = {*JPEG_SUFFIXES, ".png", ".tif", ".tiff", ".webp", ".bmp"}


class FileFailed(Exception):
    """One input could not be restored; the message is one line naming the file."""


def find_inputs(paths, recursive: bool) -> list[tuple[Path, Path]]:
    """(input file, output path relative to OUTDIR without suffix) for every input; a folder
    holding no image to restore is a usage error (a mistyped folder must not end as "0 of 0")."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            images = [f for f in sorted(p.glob(pattern)) if f.is_file() and f.suffix.lower() in INPUT_SUFFIXES]
            if not images:
                where = "in it or its sub-folders" if recursive else "in it (-r also looks in its sub-folders)"
                raise click.UsageError(f"{p}: no images to restore {where}; "
                                       f"looked for {', '.join(sorted(INPUT_SUFFIXES))}")
            found += [(f, f.relative_to(p).with_suffix("")) for f in images]
        else:
            found.append((p, Path(p.stem)))
    return found


def first_collision(jobs: list[tuple[Path, Path]]):
    """The first two inputs that map to one output path (x.jpg and x.jpeg in one folder), or None."""
    seen: dict[str, tuple[Path, Path]] = {}
    for job in jobs:
        key = job[1].as_posix()
        if key in seen:
            return seen[key], job
        seen[key] = job
    return None


def shard_of(jobs: list[tuple[Path, Path]], k: int, n: int) -> list[tuple[Path, Path]]:
    """Shard ``k`` of ``n`` (1-based): every n-th job in the order of output paths, so shards are
    disjoint, together cover every job, and agree on any machine that sees the same files."""
    ordered = sorted(jobs, key=lambda job: (job[1].as_posix(), job[0].as_posix()))
    return ordered[k - 1 :: n]


def _parse_shard(ctx, param, value):
    if value is None:
        return None
    try:
        k, n = (int(v) for v in value.split("/"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not K/N, e.g. 2/8") from None
    if not 1 <= k <= n:
        raise click.BadParameter(f"{value!r}: K must be in 1..N")
    return k, n


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
    """16-bit and float images are refused (never JPEG-coded); restore() takes the rest."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raise FileFailed(f"{path}: {im.mode} image ({'16-bit' if '16' in im.mode else '32-bit'}): never JPEG-coded, "
                         "nothing to restore")
    return im


def restore_file(src: Path, dst: Path, fmt: str, options: RestoreOptions, gray_options: RestoreOptions) -> str:
    """Restore ``src`` into ``dst`` (upright, orientation reset); returns where its tables came
    from; raises :class:`FileFailed`. ``gray_options`` are used for grayscale images (they name
    the gray model)."""
    im = prepare(open_image(src), src)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # blind mode is expected for non-JPEG inputs
            out = restore(im, options=gray_options if im.mode in ("L", "LA") else options)
    except RestoreError as exc:  # a bug is not a failed file: it keeps its traceback
        raise FileFailed(str(exc) if str(src) in str(exc) else f"{src}: {exc}") from None
    if "exif" in im.info:
        out.info["exif"] = im.info["exif"]
    save_output(upright(out), dst, fmt)
    return out.info["jpeg_restore"]["tables"]


def restore_one(src: Path, dst: Path, fmt: str, options: RestoreOptions, gray_options: RestoreOptions) -> tuple[str, str]:
    """:func:`restore_file` as a task: ("restored", where the tables came from) or ("failed", the
    one-line reason); a bad file is an outcome, not an exception (a bug still raises)."""
    try:
        return "restored", restore_file(src, dst, fmt, options, gray_options)
    except FileFailed as exc:
        return "failed", str(exc)


def connect(address: str):
    """A dask.distributed client of the scheduler at ``address``, or a usage error naming it."""
    try:
        from distributed import Client
    except ImportError:
        raise click.UsageError("--scheduler needs dask.distributed: pip install 'napari-jpeg-restore[cluster]'") from None
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise click.UsageError(f"--scheduler {address}: no scheduler answers there ({exc})") from None


#: glibc's mallopt parameter: the size from which an allocation is mapped from the system alone.
M_MMAP_THRESHOLD = -3


def allocate_for_tensors() -> bool:
    """Let glibc keep tensors' memory in its heap (32 MiB mapping threshold). dask's nanny starts
    workers with MALLOC_TRIM_THRESHOLD_ set, which also freezes that threshold at 128 KiB, so each
    large tensor is mapped and unmapped anew and a restore takes twice as long. False where the C
    library is not glibc."""
    import ctypes
    import ctypes.util

    try:
        return bool(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(M_MMAP_THRESHOLD, 32 * 2**20))
    except (OSError, AttributeError):
        return False


#: The name the allocator setting goes by among a cluster's worker plugins.
ALLOCATOR_PLUGIN = "napari-jpeg-restore-allocator"


def _allocator_plugin():
    """A dask worker plugin that runs :func:`allocate_for_tensors` on each worker as it joins
    (made here: distributed is an optional extra, and the class travels to workers by value)."""
    from distributed import WorkerPlugin

    class AllocateForTensors(WorkerPlugin):
        name = ALLOCATOR_PLUGIN

        def setup(self, worker):
            allocate_for_tensors()

    return AllocateForTensors()


def restore_files(pairs: list[tuple[Path, Path]], fmt: str = "png", options: RestoreOptions = RestoreOptions(),
                  gray_options: RestoreOptions | None = None, *, client=None):
    """Restore each (input, output) pair; yields each one's :func:`restore_one` outcome, in order.
    With a dask.distributed ``client``, one task per file runs on its workers (they must see the
    same paths); a task whose worker dies is run again elsewhere, and since every output is written
    atomically no half file is left — only its hidden temporary, removed here at the end."""
    gray_options = gray_options or options
    if client is None:
        for src, dst in pairs:
            yield restore_one(src, dst, fmt, options, gray_options)
        return
    client.register_plugin(_allocator_plugin())  # workers of now and later alike; one entry however many runs
    futures = client.map(restore_one, *zip(*pairs), fmt=fmt, options=options, gray_options=gray_options,
                         pure=False) if pairs else []
    try:
        for future in futures:
            yield future.result()
    finally:
        for _, dst in pairs:  # what a killed worker left of a write it did not finish
            for orphan in dst.parent.glob(f".{dst.name}.*.partial"):
                orphan.unlink(missing_ok=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", "outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (made if missing).")
@click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders of folder inputs.")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="png", show_default=True,
              help="Lossless output format.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (never an input).")
@click.option("--skip-existing", is_flag=True, help="Leave existing outputs alone (continue a stopped run).")
@click.option("--gray-model", help="Model for grayscale images (default: the shipped gray one).")
@click.option("--shard", metavar="K/N", callback=_parse_shard,
              help="Restore only shard K of N (1-based) of the inputs, e.g. one task of a cluster array job.")
@click.option("--scheduler", metavar="ADDRESS",
              help="Send one task per file to this dask.distributed scheduler (e.g. tcp://host:8786); "
                   "needs the cluster extra: pip install 'napari-jpeg-restore[cluster]'.")
@click_options()
def main(inputs, outdir, recursive, fmt, overwrite, skip_existing, gray_model, shard, scheduler, **restore_options):
    """Remove JPEG artifacts from INPUTS (files or folders) into OUTDIR."""
    from tqdm import tqdm

    if overwrite and skip_existing:
        raise click.UsageError("--overwrite and --skip-existing exclude each other")
    try:  # a bad option is one usage error before any work, not one failure per file
        options = RestoreOptions(**restore_options).checked()
        gray_options = options.replace(model=gray_model).checked()
    except RestoreError as exc:
        raise click.UsageError(str(exc)) from None
    jobs = find_inputs(inputs, recursive)
    collision = first_collision(jobs)
    if collision:  # before any work: one of them would silently replace the other's output
        a, b = collision
        raise click.UsageError(f"{a[0]} and {b[0]} would both be written to {outdir / a[1].with_suffix(FORMATS[fmt][0])}; "
                               "restore them into different folders")
    sources = {src.resolve() for src, _ in jobs if src.exists()}  # all inputs, not only this shard's
    if shard:
        jobs = shard_of(jobs, *shard)
    failures, done, unchanged, skipped, origins = [], 0, 0, 0, Counter()
    # on a terminal a progress bar; piped to a log, one line per file as it ends
    log = None if sys.stderr.isatty() else (lambda k, src, what: click.echo(f"[{k}/{len(jobs)}] {src}: {what}", err=True))
    todo = []
    for k, (src, rel) in enumerate(jobs, 1):  # what needs no restoring is decided here, before any work
        dst = outdir / rel.with_suffix(FORMATS[fmt][0])
        if dst.resolve() in sources:
            failures.append(f"{src}: its output {dst} would overwrite an input")
        elif dst.exists() and not overwrite and skip_existing:
            skipped += 1
            log and log(k, src, "skipped, its output exists")
        elif dst.exists() and not overwrite:
            failures.append(f"{src}: {dst} exists (use --overwrite or --skip-existing)")
        else:
            todo.append((k, src, dst))
    client = connect(scheduler) if scheduler else None  # an unreachable address fails before any work
    try:
        bar = tqdm(total=len(todo), desc="jpeg-restore", unit="file", disable=None)
        outcomes = restore_files([(src, dst) for _, src, dst in todo], fmt, options, gray_options, client=client)
        for (k, src, dst), (status, detail) in zip(todo, outcomes):
            bar.update(1)
            if status == "failed":
                failures.append(detail)
                log and log(k, src, "not restored (see the end)")
            elif detail == NEVER_JPEG:
                unchanged += 1
                log and log(k, src, f"unchanged (never JPEG) -> {dst}")
            else:
                origins[detail] += 1
                done += 1
                log and log(k, src, f"restored with {detail} -> {dst}")
        bar.close()
    finally:
        if client is not None:
            client.close()
    never = f", {unchanged} unchanged (never JPEG)" if unchanged else ""
    click.echo(f"{done} restored{never}, {skipped} skipped, {len(failures)} failed (of {len(jobs)})", err=True)
    if origins:  # which tables each restored file was restored with
        click.echo("tables: " + "; ".join(f"{n} {origin}" for origin, n in sorted(origins.items())), err=True)
    for line in failures:
        click.echo(f"failed: {line}", err=True)
    raise SystemExit(1 if failures else 0)
