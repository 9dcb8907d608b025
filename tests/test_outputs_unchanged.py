"""Trained models restore as they did before the core was reorganised (issue 10).

The reference is the code of :data:`REFERENCE` itself, taken out of git and run in a separate
interpreter on the flat-body weights shipped at :data:`WEIGHTS` (the reference predates the U-Net
body, and the question is whether the code changed, not the weights), so the comparison holds on
any CPU (hashes made on one machine would not). It was bit for bit until the engine ran
channels-last (convolutions sum in another order: at most one grey level) and chose bfloat16 on
CPUs with native bfloat16 (PSNR against the originals within 0.01 dB of the reference's on
average, 0.02 dB on any image).
"""

import json
import shutil
import subprocess
import sys
import tarfile
from io import BytesIO

import numpy as np
from PIL import Image

from imaging import ROOT, data_image, psnr
from napari_jpeg_restore import restore

REFERENCE = "8eaaf0af3ee81fdfed615c7fae8984d1c6e08037"  # the last commit before issue 10
WEIGHTS = "2211ef708948ad8d2e3935d27b8aac3f58938fb6"  # both shipped models still the flat `small` body
SAMPLE = ROOT / "src" / "napari_jpeg_restore" / "samples" / "chelsea.png"

CHILD = """
import sys, numpy as np, napari_jpeg_restore
from PIL import Image
from napari_jpeg_restore import restore
assert napari_jpeg_restore.__file__.startswith(sys.argv[1]), napari_jpeg_restore.__file__
out = {}
for path, model in zip(sys.argv[3::2], sys.argv[4::2]):
    with Image.open(path) as im:
        out[path] = np.asarray(restore(im, model=model))
np.savez(sys.argv[2], **{str(i): out[p] for i, p in enumerate(sys.argv[3::2])})
"""


# ModelConfig fields added after the reference; a flat body with them is what the reference builds
LATER_FIELDS = ("body", "unet_channels", "unet_blocks", "fine_channels", "fine_blocks")


def _git_tree(commit, path, into):
    archive = subprocess.run(["git", "archive", commit, path], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / path


def _as_reference_reads_it(folder, tmp_path):
    """A copy of weights whose config.json leaves out the fields the reference predates."""
    copy = tmp_path / "reference-weights" / folder.name
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    assert config["model"].get("body", "flat") == "flat"
    config["model"] = {k: v for k, v in config["model"].items() if k not in LATER_FIELDS}
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_trained_models_restore_as_before(tmp_path):
    cases = [(Image.open(SAMPLE).convert("RGB"), 10)]  # (original, quality)
    cases += [(data_image(f"LIVE1/{n}.png", mode), q) for n in ("bikes", "parrots") for mode in ("RGB", "L")
              for q in (10, 90)]
    weights = _git_tree(WEIGHTS, "src/napari_jpeg_restore/weights", tmp_path / "pinned")
    readable = {name: _as_reference_reads_it(weights / name, tmp_path) for name in ("qgcn-colour", "qgcn-gray")}
    args, old_args = [], []
    for i, (img, quality) in enumerate(cases):
        path = tmp_path / f"{i}.jpg"
        img.save(path, quality=quality)
        name = "qgcn-colour" if img.mode == "RGB" else "qgcn-gray"
        args += [str(path), str(weights / name)]
        old_args += [str(path), str(readable[name])]
    src = str(_git_tree(REFERENCE, "src", tmp_path / "reference"))
    subprocess.run([sys.executable, "-c", CHILD, src, str(tmp_path / "old.npz"), *old_args], check=True,
                   env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"})
    before, deltas = np.load(tmp_path / "old.npz"), []
    for i, (path, model) in enumerate(zip(args[::2], args[1::2])):
        original, reference = np.asarray(cases[i][0]), before[str(i)]
        with Image.open(path) as im:
            # the reference code has no consistency projection: compare the network's own output
            exact = np.asarray(restore(im, model=model, precision="float32", consistency="off"))
            default = np.asarray(restore(im, model=model, consistency="off"))
        assert exact.dtype == np.uint8 and np.abs(exact.astype(int) - reference).max() <= 1, (path, model)
        deltas.append(abs(psnr(default, original) - psnr(reference, original)))
    assert max(deltas) <= 0.02 and np.mean(deltas) <= 0.01, deltas
    assert not np.array_equal(before["0"], np.asarray(Image.open(args[0])))  # the model did change the image
