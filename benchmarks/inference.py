"""Speed and memory of each preset's inference on this machine (not a test).

    python benchmarks/inference.py [--threads 2] [--presets tiny,small,unet,paper] [--models qgcn-colour]
                                   [--precision auto] [--consistency off,0.5] [--repeats 3]
                                   [--memory-mp 24 [--memory-tile 512]]

Prints a markdown table: parameters, fp16 weight size, restoration MACs per pixel, global MACs per
image, and seconds per megapixel through the engine (default tile, global branch included) on a
real photo upscaled to ~1 MP. Presets run with untrained weights, which cost the network what
trained ones do, consistency off. ``--models`` (shipped names or exported folders) run with their
trained weights, one column per ``--consistency`` setting: the projection's later rounds run only
on the MCUs whose pixels clip, and an untrained network's output clips in most of them (70 % here
against 8 % for the shipped model), so only trained weights time the projection as users meet it.
The projection's time includes reading the file's coefficients; the best of ``--repeats`` runs,
settings interleaved, so one machine's drift hits every column alike. ``--memory-mp`` also writes
a JPEG of that many megapixels, then decodes and restores it in a fresh process (the ``small``
preset) and reports that process's peak resident memory.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "LIVE1" / "bikes.png"


def photo(megapixels: float) -> np.ndarray:
    """A real JPEG-coded photo (LIVE1 bikes, QF 20) resized to about ``megapixels``."""
    import io

    with Image.open(PHOTO) as im:
        scale = (megapixels * 1e6 / (im.width * im.height)) ** 0.5
        big = im.convert("RGB").resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=20)  # bytes: the memory child decodes them itself
    return buf.getvalue()


def peak_rss_mib() -> float:
    """This process's peak resident memory. Linux's VmHWM starts afresh at exec, unlike
    ``ru_maxrss``, which a child inherits from the parent that forked it."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def measure_memory(preset: str, path: str, threads: int, precision: str, tile: int, consistency: str) -> None:
    """Run in a fresh child process: decode and restore one JPEG file (its coefficients read from it
    when the projection is on), print peak RSS in MiB."""
    import torch

    from napari_jpeg_restore.consistency import read_coefficients
    from napari_jpeg_restore.engine import Engine
    from napari_jpeg_restore.jpeg import facts_from_image
    from napari_jpeg_restore.model import build_model
    from napari_jpeg_restore.model import preset as make
    from napari_jpeg_restore.options import RestoreOptions

    base = peak_rss_mib()
    im = Image.open(path)
    pixels, facts = np.asarray(im), facts_from_image(im)
    t = time.perf_counter()
    engine = Engine(build_model(make(preset)), RestoreOptions(threads=threads, precision=precision, tile=tile,
                                                              consistency=consistency))
    engine.run(pixels, facts, coefficients=read_coefficients(path, facts) if engine.alpha is not None else None)
    peak = peak_rss_mib()
    print(f"{preset}, {im.width}x{im.height} ({im.width * im.height / 1e6:.1f} MP), tile {tile}, consistency "
          f"{consistency}: peak RSS "
          f"{peak:.0f} MiB (after imports, before decoding: {base:.0f} MiB), {time.perf_counter() - t:.0f} s, {precision}, "
          f"torch {torch.__version__}")


def _cell(times: dict[str, list[float]], setting: str, first: str) -> str:
    """Best s/MP of ``setting``; beside the first setting, also the median of its runs' ratios
    to the first's run just before (this machine's speed drifts by up to 50 % between minutes;
    a run and its neighbour share the drift)."""
    cell = f"{min(times[setting]):.3f}"
    if setting == first:
        return cell
    ratios = sorted(t / before for t, before in zip(times[setting], times[first]))
    return f"{cell} ({ratios[len(ratios) // 2] - 1:+.1%})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--presets", default="tiny,small,unet,paper")
    ap.add_argument("--models", default="qgcn-colour", help="trained models to time in every --consistency setting")
    ap.add_argument("--precision", default="auto", help="auto, float32, bfloat16 (see RestoreOptions)")
    ap.add_argument("--consistency", default="off,0.5", help="settings to time, comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--memory-mp", type=float, default=0)
    ap.add_argument("--memory-preset", default="small")
    ap.add_argument("--memory-tile", type=int, default=512)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return measure_memory(args.memory_preset, args.child, args.threads, args.precision, args.memory_tile,
                              args.consistency)

    import io

    import torch

    from napari_jpeg_restore.consistency import coefficients_from_bytes
    from napari_jpeg_restore.device import run_precision
    from napari_jpeg_restore.engine import Engine
    from napari_jpeg_restore.jpeg import facts_from_image
    from napari_jpeg_restore.model import build_model, model_cost, preset
    from napari_jpeg_restore.options import RestoreOptions
    from napari_jpeg_restore.weights import TrainedModel, load_model

    data = photo(1.0)
    im = Image.open(io.BytesIO(data))
    pixels, facts = np.asarray(im), facts_from_image(im)
    mp = im.width * im.height / 1e6
    settings = args.consistency.split(",")
    runs = run_precision(args.precision, torch.device("cpu"))
    print(f"torch {torch.__version__}, {args.threads} threads, precision {args.precision} (runs {runs}), "
          f"image {im.width}x{im.height}\n")
    print("| network | params | fp16 weights | MACs/pixel (restoration) | MACs/image (global) | "
          + " | ".join(f"s/MP, consistency {c}" for c in settings) + " |")
    print("| --- | --- | --- | --- | --- |" + " --- |" * len(settings))
    # every engine is built as the faces build theirs (Engine.for_model), so a trained model runs with its
    # record's α and tile overlap; a preset is a model without a record
    rows = [(name, TrainedModel(build_model(preset(name)), Path(name)), ["off"])
            for name in args.presets.split(",") if name]
    for name in args.models.split(","):
        if name:
            trained = load_model(name)
            rows.append((f"{name} ({trained.record.get('preset', '?')}, trained)", trained, settings))
    for name, model, timed in rows:
        cost = model_cost(model.config)
        engines = {c: Engine.for_model(model, RestoreOptions(threads=args.threads, precision=args.precision,
                                                             consistency=c)) for c in timed}
        times: dict[str, list[float]] = {c: [] for c in timed}
        for _ in range(args.repeats):
            for c, engine in engines.items():
                engine.run(pixels[:64, :64], facts)  # warm-up
                t = time.perf_counter()
                coefficients = coefficients_from_bytes(data, facts) if engine.alpha is not None else None
                engine.run(pixels, facts, coefficients=coefficients)
                times[c].append((time.perf_counter() - t) / mp)
        print(f"| {name} | {cost['params'] / 1e6:.2f} M | {cost['weights_fp16_bytes'] / 2**20:.1f} MiB | "
              f"{cost['macs_per_pixel'] / 1e3:.0f} k | {cost['global_macs_per_image'] / 1e6:.0f} M | "
              + " | ".join(_cell(times, c, timed[0]) if c in times else "" for c in settings) + " |")
    if args.memory_mp:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "big.jpg"
            path.write_bytes(photo(args.memory_mp))
            for c in settings:  # one fresh process per setting: each peak is its own
                subprocess.run([sys.executable, __file__, "--child", str(path), "--memory-preset", args.memory_preset,
                                "--threads", str(args.threads), "--precision", args.precision,
                                "--memory-tile", str(args.memory_tile), "--consistency", c], check=True)


if __name__ == "__main__":
    main()
