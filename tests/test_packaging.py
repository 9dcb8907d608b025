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


def test_readme_images_resolve_on_the_package_page():
    """The index and the napari hub render the README from the wheel's metadata, away from the
    repository: every image is an absolute URL to a file that exists in the source repository."""
    import re
    import tomllib

    source = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Source Code"]
    raw = source.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)|<img [^>]*src=\"([^\"]+)\"", (ROOT / "README.md").read_text())
    urls = [a or b for a, b in images]
    assert urls
    for url in urls:
        assert url.startswith(raw), url
        assert (ROOT / url.removeprefix(raw)).is_file(), url


def test_the_reader_manifest_takes_every_jpeg_suffix_and_the_version_is_written_once():
    import re
    from importlib.metadata import version
    from pathlib import Path

    import napari_jpeg_restore
    from napari_jpeg_restore.jpeg import JPEG_SUFFIXES

    root = Path(__file__).resolve().parents[1]
    manifest = (root / "napari.yaml").read_text()
    patterns = set(re.findall(r'"(\*\.[A-Za-z]+)"', manifest))
    assert patterns == {f"*{s}" for s in JPEG_SUFFIXES} | {f"*{s.upper()}" for s in JPEG_SUFFIXES}
    assert "version =" not in (root / "pyproject.toml").read_text().split("[project]")[1].split("[")[0]
    assert version("napari-jpeg-restore") == napari_jpeg_restore.__version__
