"""The dock widget in a real napari viewer (needs a virtual X server: pytest-xvfb starts one)."""

import numpy as np
import pytest
from PIL import Image

from imaging import data_image

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_jpeg_restore import _widget, restore  # noqa: E402  (only once napari is known to import)
from napari_jpeg_restore._widget import FROM_QUALITY, RestoreWidget  # noqa: E402


@pytest.fixture
def jpg(tmp_path):
    path = tmp_path / "parrots.jpg"
    data_image("LIVE1/parrots.png").crop((0, 0, 320, 240)).save(path, quality=20)
    return path


@pytest.fixture
def errors(monkeypatch):
    seen = []
    monkeypatch.setattr(_widget, "show_error", seen.append)
    return seen


def _widget_for(viewer, layer, model, qtbot):
    w = RestoreWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.reset_choices()
    w._image.value = layer
    w.controls["model"].value = str(model)
    return w


def _run(w, qtbot):
    w.run()
    qtbot.waitUntil(lambda: w.worker is None, timeout=120_000)


def test_menu_and_widget_contribution():
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-jpeg-restore")
    assert [m.command for m in manifest.contributions.menus["napari/layers/filter"]] == [
        "napari-jpeg-restore.restore_widget"]
    assert manifest.contributions.widgets[0].display_name == "Remove JPEG artifacts"


def test_our_reader_then_widget_equals_restore(make_napari_viewer, qtbot, jpg, random_weights, errors):
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(jpg), plugin="napari-jpeg-restore")
    assert layer.metadata["jpeg"]["table_ids"] == [0, 1, 1]
    layer.scale, layer.translate = (2.0, 3.0), (5.0, 7.0)
    w = _widget_for(viewer, layer, random_weights["colour"], qtbot)
    w.controls["tile"].value = 128  # several tiles: progress to show
    bar, status = [], []
    w._progress.changed.connect(bar.append)
    shown = w._on_progress

    def progress_then_status(value):
        shown(value)
        status.append(w._status.value)

    w._on_progress = progress_then_status
    _run(w, qtbot)
    assert not errors
    # the widget itself showed tiles done of all and the time left, then hid its bar
    assert bar and bar[-1] == w._progress.max > 1 and not w._progress.visible
    assert any(f"of {w._progress.max} tiles, about" in s and "s left" in s for s in status), status
    viewer.layers.remove("parrots restored")
    w.controls["tile"].value = 512
    _run(w, qtbot)  # the comparison below is with the default tile
    result = viewer.layers["parrots restored"]
    expected = np.asarray(restore(Image.open(jpg), model=random_weights["colour"]))
    assert np.array_equal(result.data, expected)
    assert tuple(result.scale) == (2.0, 3.0) and tuple(result.translate) == (5.0, 7.0)
    assert np.array_equal(layer.data, np.asarray(Image.open(jpg)))  # the source layer is untouched
    # the widget says which tables were used, and so does the result's metadata
    assert w._status.value == "tables: the file's tables (layer metadata)" == f"tables: {result.metadata['tables']}"


def test_builtin_reader_still_uses_the_file_tables(make_napari_viewer, qtbot, jpg, random_weights, errors):
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(jpg), plugin="napari")
    assert "jpeg" not in layer.metadata and layer.source.path
    _run(_widget_for(viewer, layer, random_weights["colour"], qtbot), qtbot)
    expected = np.asarray(restore(Image.open(jpg), model=random_weights["colour"]))
    assert np.array_equal(viewer.layers["parrots restored"].data, expected)


def test_non_jpeg_layer_uses_estimated_tables(make_napari_viewer, qtbot, jpg, random_weights, errors):
    viewer = make_napari_viewer()
    pixels = np.asarray(Image.open(jpg))
    layer = viewer.add_image(pixels.copy(), name="pixels", rgb=True)
    w = _widget_for(viewer, layer, random_weights["colour"], qtbot)
    _run(w, qtbot)
    assert w._status.value == "tables: tables estimated from the pixels (IJG quality 20)"  # the jpg's quality
    with pytest.warns(UserWarning):
        expected = np.asarray(restore(Image.fromarray(pixels), model=random_weights["colour"]))
    assert np.array_equal(viewer.layers["pixels restored"].data, expected)


def test_stop_during_a_stack_leaves_no_layer(make_napari_viewer, qtbot, jpg, random_weights, errors):
    viewer = make_napari_viewer()
    frame = np.asarray(Image.open(jpg))
    layer = viewer.add_image(np.stack([frame] * 4), name="stack", rgb=True)
    w = _widget_for(viewer, layer, random_weights["colour"], qtbot)
    w._tables.value = FROM_QUALITY
    w._quality.value = 20
    w.controls["tile"].value = 96
    w.run()
    w.worker.yielded.connect(lambda _: w.stop())
    qtbot.waitUntil(lambda: w.worker is None, timeout=120_000)
    assert [lay.name for lay in viewer.layers] == ["stack"]
    assert not errors


def test_not_8_bit_gives_a_message(make_napari_viewer, qtbot, random_weights, errors):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.random.default_rng(0).random((64, 64)).astype(np.float32), name="float")
    _run(_widget_for(viewer, layer, random_weights["gray"], qtbot), qtbot)
    assert len(viewer.layers) == 1
    assert any("only 8-bit" in str(e) for e in errors)


def test_widget_offers_every_option(make_napari_viewer, errors):
    from dataclasses import fields

    from napari_jpeg_restore.options import DEFAULTS, RestoreOptions

    viewer = make_napari_viewer()
    layer = viewer.add_image(np.zeros((16, 16), np.uint8))
    w = RestoreWidget(viewer)
    assert w.restore_options() == DEFAULTS
    changed = RestoreOptions(model="qgcn-gray", device="cpu", tile=256, overlap=48, threads=1, precision="bfloat16",
                             strength=1.5, consistency=0.3)
    assert all(getattr(changed, f.name) != f.default for f in fields(RestoreOptions))
    for name, value in {"model": "qgcn-gray", "device": "cpu", "tile": 256, "overlap": 48, "threads": 1,
                        "precision": "bfloat16", "strength": 1.5, "consistency": "0.3"}.items():
        w.controls[name].value = value
    assert w.restore_options() == changed
    w.controls["tile"].value = 64  # not larger than twice the overlap: refused before any work
    w.reset_choices()
    w._image.value = layer
    w.run()
    assert w.worker is None and "twice the overlap" in errors[-1] and len(viewer.layers) == 1
    assert w._status.value == errors[-1]  # the whole message in the widget too


def test_controls_come_from_the_options_metadata(make_napari_viewer, errors):
    from dataclasses import fields

    from napari_jpeg_restore.device import available_devices
    from napari_jpeg_restore.options import RestoreOptions

    w = RestoreWidget(make_napari_viewer())
    for f in fields(RestoreOptions):
        control = w.controls[f.name]
        assert control.tooltip == f.metadata["help"]
        assert (control in w._advanced) == f.metadata["advanced"], f.name  # tile, overlap, threads, precision
        if f.metadata["span"]:
            assert (control.min, control.max, control.step) == f.metadata["span"]
    assert {c.name for c in w._advanced} == {"tile", "overlap", "threads", "precision"}
    for name in ("overlap", "threads"):  # 0 stands for the model's or torch's own, and says so
        assert w.controls[name].value == 0 and w.controls[name].native.specialValueText() == "auto"
    assert not w.advanced_section.isExpanded()
    assert list(w.controls["device"].choices) == ["auto", *available_devices()]  # only what this machine has


def test_the_dock_title_is_not_cut_off(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    dock, _ = viewer.window.add_plugin_dock_widget("napari-jpeg-restore", "Remove JPEG artifacts")
    title = dock.titleBarWidget().title
    assert "Remove JPEG artifacts" in title.text()
    qtbot.waitUntil(lambda: title.width() >= title.sizeHint().width(), timeout=10_000)  # fails if it stays cut


def test_preview_restores_the_view_as_run_would_and_run_replaces_it(make_napari_viewer, qtbot, random_weights,
                                                                       errors, tmp_path):
    path = tmp_path / "bikes.jpg"
    data_image("LIVE1/bikes.png").save(path, quality=20)  # 768×512: several tiles of 256
    viewer = make_napari_viewer(show=True)  # a drawn canvas tells each layer what is in view
    (layer,) = viewer.open(str(path), plugin="napari-jpeg-restore")
    layer.scale = (2.0, 2.0)
    w = _widget_for(viewer, layer, random_weights["colour"], qtbot)
    w.controls["tile"].value = 256
    viewer.scene.camera.center = (2 * 300, 2 * 500)
    viewer.scene.camera.zoom = 4 * viewer.scene.camera.zoom  # a close-up: a part of the image in view
    qtbot.waitUntil(lambda: layer.corner_pixels[1, 0] - layer.corner_pixels[0, 0] < 511, timeout=10_000)
    w.preview()
    qtbot.waitUntil(lambda: w.worker is None, timeout=120_000)
    assert not errors
    shown = viewer.layers["bikes preview"]
    y0, y1, x0, x1 = shown.metadata["region"]
    assert y0 % 8 == 0 and x0 % 8 == 0 and (y1 - y0) * (x1 - x0) < 768 * 512 / 4
    assert y0 <= 300 < y1 and x0 <= 500 < x1  # the view's centre is in it
    assert tuple(shown.translate) == (2.0 * y0, 2.0 * x0) and tuple(shown.scale) == (2.0, 2.0)
    whole = np.asarray(restore(Image.open(path), model=random_weights["colour"], tile=256))
    assert np.array_equal(shown.data, whole[y0:y1, x0:x1])
    _run(w, qtbot)
    assert [lay.name for lay in viewer.layers] == ["bikes", "bikes restored"]
    assert np.array_equal(viewer.layers["bikes restored"].data, whole)


def test_the_readme_screenshot_script_runs(tmp_path):
    """docs/screenshot.py renders the README's widget picture (under the virtual X server the tests run in)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "widget.png"
    done = subprocess.run([sys.executable, "docs/screenshot.py", "--out", str(out)], cwd=root, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    with Image.open(out) as im:
        assert im.width > 800 and im.height > 500


def test_a_folder_of_frames_opens_as_one_stack_and_each_frame_keeps_its_tables(make_napari_viewer, qtbot, tmp_path,
                                                                               random_weights, errors):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, q in enumerate((15, 60)):
        data_image("LIVE1/parrots.png").crop((50 * i, 0, 50 * i + 128, 96)).save(folder / f"{i}.jpg", quality=q)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(folder), plugin="napari-jpeg-restore")
    assert layer.data.shape == (2, 96, 128, 3)
    w = _widget_for(viewer, layer, random_weights["colour"], qtbot)
    w.run()  # a lazy stack gives a lazy result at once: no worker, nothing restored yet
    assert w.worker is None and not errors
    assert w._status.value == "frames restored lazily: each frame when it is shown (tables: the file's tables (layer metadata))"
    restored = viewer.layers["frames restored"].data
    assert not isinstance(restored, np.ndarray) and restored.shape == layer.data.shape
    for i in range(2):  # computed as napari shows them, each with its own file's tables
        alone = restore(Image.open(folder / f"{i}.jpg"), model=random_weights["colour"])
        assert np.array_equal(np.asarray(restored[i]), np.asarray(alone))


def test_restore_and_save_writes_each_frame_and_stop_keeps_those_written(make_napari_viewer, qtbot, tmp_path,
                                                                         random_weights, errors):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, q in enumerate((15, 40, 60, 80)):
        data_image("LIVE1/parrots.png").crop((30 * i, 0, 30 * i + 96, 64)).save(folder / f"{i}.jpg", quality=q)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(folder), plugin="napari-jpeg-restore")
    w = _widget_for(viewer, layer, random_weights["colour"], qtbot)
    w._save.clicked()  # no folder chosen: said, nothing runs
    assert w.worker is None and "choose a folder" in errors[-1]
    w._save_to.value = tmp_path / "out"
    w.save()
    qtbot.waitUntil(lambda: w.worker is None, timeout=120_000)
    assert errors == [errors[0]]
    for i in range(4):  # each frame as its file restored alone
        alone = restore(Image.open(folder / f"{i}.jpg"), model=random_weights["colour"])
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"{i}.png")), np.asarray(alone))
    w._save_to.value = tmp_path / "stopped"
    w.save()
    w.worker.yielded.connect(lambda value: value[0] >= 1 and w.stop())
    qtbot.waitUntil(lambda: w.worker is None, timeout=120_000)
    written = sorted(p.name for p in (tmp_path / "stopped").iterdir())
    assert 1 <= len(written) < 4 and all(p.endswith(".png") for p in written)  # whole files only
    w.save()  # the same folder again: refused, its outputs exist
    qtbot.waitUntil(lambda: w.worker is None, timeout=120_000)
    assert "an output exists" in errors[-1]
