import subprocess
import sys
import zipfile

from imaging import ROOT


def test_wheel_ships_the_manifest_and_code(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True)
    (wheel,) = tmp_path.glob("napari_jpeg_restore-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert "napari_jpeg_restore/napari.yaml" in names
        assert z.read("napari_jpeg_restore/napari.yaml") == (ROOT / "napari.yaml").read_bytes()
        assert {"napari_jpeg_restore/engine.py", "napari_jpeg_restore/filter.py", "napari_jpeg_restore/_widget.py",
                "napari_jpeg_restore/samples/chelsea.png", "napari_jpeg_restore/samples/LICENSE.txt"} <= names
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "napari.manifest" in entry_points and "napari_jpeg_restore:napari.yaml" in entry_points


def test_core_imports_no_qt_and_torch_lazily():
    code = ("import sys, napari_jpeg_restore; assert 'torch' not in sys.modules; "
            "from napari_jpeg_restore import restore, QGCNRestore; "
            "assert not any(m.split('.')[0] in ('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide6') for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
