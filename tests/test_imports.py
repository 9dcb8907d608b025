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
    assert _ours(mods) == {"_reader", "jpeg", "errors"}


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


# The core's layers, bottom first: a module may import only modules of lower layers (at the top of
# the file or inside a function alike). Faces sit above and are imported by nothing in the core.
LAYERS = [
    {"errors"},
    {"device", "jpeg", "atomic", "color"},
    {"maps", "blind", "model", "consistency", "saving"},
    {"weights", "network_io"},
    {"options"},
    {"engine", "table_sources"},
    {"image_restore", "layer_data", "sample_image", "_reader"},  # the reader's layer is the sample's too
    {"filter", "cli", "_sample_data", "_widget", "__init__"},
]


def _imports_of(path) -> set[str]:
    """The package modules a source file imports anywhere (not under ``if TYPE_CHECKING``)."""
    import ast

    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("napari_jpeg_restore."):
            found.add(node.module.split(".")[1])
    return {m.split(".")[0] for m in found}


def test_the_core_has_no_circle_and_nothing_imports_upward():
    from pathlib import Path

    import napari_jpeg_restore

    package = Path(napari_jpeg_restore.__file__).parent
    layer_of = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    modules = {p.stem for p in package.glob("*.py")}
    assert modules == set(layer_of), f"modules without a layer: {modules - set(layer_of)}"
    upward = [(m, dep) for m in modules for dep in _imports_of(package / f"{m}.py")
              if dep in layer_of and layer_of[dep] >= layer_of[m] and m != "__init__"]
    assert not upward, upward


def test_dir_of_the_package_lists_the_public_names_it_imports_on_use():
    import napari_jpeg_restore

    assert {"restore", "QGCNRestore", "RestoreOptions", "sample_jpeg"} <= set(dir(napari_jpeg_restore))
