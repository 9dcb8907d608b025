"""What each module pulls in, checked in a fresh interpreter: faces stay thin, the core Qt-free."""

import json
import subprocess
import sys

import pytest

CORE = ["jpeg", "maps", "color", "blind", "table_sources", "options", "model", "network_io", "weights", "engine",
        "sample_image", "image_restore", "filter", "layer_data", "cli"]


def loaded_after(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out))


def _ours(mods):
    return {m.rsplit(".", 1)[-1] for m in mods if m.startswith("napari_jpeg_restore.")}


def test_the_reader_needs_only_jpeg_facts():
    mods = loaded_after("napari_jpeg_restore._reader")
    assert "torch" not in mods and "napari_jpeg_restore.engine" not in mods
    assert _ours(mods) == {"_reader", "jpeg"}


def test_blind_estimation_needs_numpy_alone():
    mods = loaded_after("napari_jpeg_restore.blind")
    assert "torch" not in mods and "kornia" not in mods


def test_the_package_imports_light():
    mods = loaded_after("napari_jpeg_restore")
    assert "torch" not in mods and _ours(mods) == set()


@pytest.mark.parametrize("module", CORE)
def test_the_core_never_imports_qt_or_napari(module):
    mods = loaded_after(f"napari_jpeg_restore.{module}")
    assert not {m for m in mods if m.split(".")[0] in ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6",
                                                          "magicgui", "superqt")}


@pytest.mark.parametrize("face", ["filter", "cli", "_reader", "_sample_data", "layer_data"])
def test_faces_import_the_core_only(face):
    faces = {"filter", "cli", "_widget", "_reader", "_sample_data"} - {face}
    if face == "_sample_data":  # the sample layer is the reader's layer: one napari face
        faces.discard("_reader")
    assert not _ours(loaded_after(f"napari_jpeg_restore.{face}")) & faces
