"""Opening a folder of JPEG frames as one stack layer (not a test).

    python benchmarks/open_stack.py [--frames 1000] [--size 640x480]

Writes that many frames (crops of a LIVE1 photo at qualities 10-95) into a temporary folder, then,
in a fresh process that has imported dask (as napari has), times the plugin's reader on the folder and reports the reader's Python
allocations (tracemalloc peak) and the process's resident memory before and after; then decodes
one frame (what napari does to show it) and times that.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

PHOTO = Path(__file__).resolve().parents[2] / "shared" / "data" / "LIVE1" / "bikes.png"

CHILD = """
import json, resource, sys, time, tracemalloc
import dask.array  # napari has imported it by the time a reader runs
import numpy as np
from napari_jpeg_restore._reader import napari_get_reader
folder = sys.argv[1]
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
before = rss()
tracemalloc.start()
t = time.perf_counter()
((data, kwargs, _),) = napari_get_reader(folder)(folder)
opened = time.perf_counter() - t
peak = tracemalloc.get_traced_memory()[1] / 2**20
tracemalloc.stop()
after = rss()
t = time.perf_counter()
frame = np.asarray(data[len(data) // 2])
shown = time.perf_counter() - t
print(json.dumps({"frames": len(kwargs["metadata"]["frames"]), "shape": list(data.shape), "open_s": opened,
                  "python_peak_mib": peak, "rss_before_mib": before, "rss_after_open_mib": after,
                  "one_frame_s": shown, "decoded_stack_would_be_mib": data.nbytes / 2**20}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--size", default="640x480")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    photo = Image.open(PHOTO).convert("RGB")
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.frames):
            x, y = (7 * i) % (photo.width - w + 1), (3 * i) % (photo.height - h + 1) if photo.height > h else 0
            photo.crop((x, y, x + w, y + h)).save(Path(tmp) / f"frame{i:05d}.jpg", quality=10 + (i * 7) % 86)
        out = subprocess.run([sys.executable, "-c", CHILD, tmp], capture_output=True, text=True, check=True).stdout
    print(json.dumps(json.loads(out), indent=1))


if __name__ == "__main__":
    main()
