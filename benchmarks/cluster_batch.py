"""`jpeg-restore` on a dask.distributed cluster: files per second (not a test).

    python benchmarks/cluster_batch.py [--files 24] [--size 512x384]

Writes that many JPEG files (crops of a LIVE1 photo at qualities 10-95) into a temporary folder,
then restores them with the shipped model, each way into a fresh output folder: in this process
(what `jpeg-restore` does without --scheduler), and on a `distributed.LocalCluster` of 1 and of 2
worker processes on the loopback interface (one thread each; what `--scheduler` does with a
cluster of that size). The cluster's start-up is timed apart from the restoration. Checks that
every run's outputs are the same bytes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from PIL import Image

from napari_jpeg_restore.cli import restore_files
from napari_jpeg_restore.options import RestoreOptions

PHOTO = Path(__file__).resolve().parents[2] / "shared" / "data" / "LIVE1" / "bikes.png"


def _run(pairs, options, client=None) -> float:
    t = time.perf_counter()
    outcomes = list(restore_files(pairs, options=options, client=client))
    assert len(outcomes) == len(pairs)
    return time.perf_counter() - t


def main() -> None:
    import distributed

    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=24)
    ap.add_argument("--size", default="512x384")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    photo = Image.open(PHOTO).convert("RGB")
    options = RestoreOptions(threads=1)
    results = {"files": args.files, "size": args.size}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for i in range(args.files):
            x, y = (13 * i) % (photo.width - w + 1), (5 * i) % (photo.height - h + 1)
            photo.crop((x, y, x + w, y + h)).save(src / f"f{i:03d}.jpg", quality=10 + (i * 7) % 86)
        inputs = sorted(src.iterdir())

        def pairs(name):
            return [(p, Path(tmp) / name / f"{p.stem}.png") for p in inputs]

        _run(pairs("warm")[:1], options)  # the model loaded once, as in a long run
        seconds = _run(pairs("local"), options)
        results["local"] = {"seconds": seconds, "files_per_s": args.files / seconds}
        for workers in (1, 2):
            name = f"workers{workers}"
            t = time.perf_counter()
            with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                          dashboard_address=None) as cluster, distributed.Client(cluster) as client:
                started = time.perf_counter() - t
                seconds = _run(pairs(name), options, client)
            results[name] = {"start_s": started, "seconds": seconds, "files_per_s": args.files / seconds}
        for name in ("workers1", "workers2"):
            same = all((Path(tmp) / name / f"{p.stem}.png").read_bytes() == (Path(tmp) / "local" / f"{p.stem}.png").read_bytes()
                       for p in inputs)
            results[f"{name} same bytes as local"] = same
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
