"""One options object: every face offers every option with the same default, validated once."""

import inspect
from dataclasses import fields

import pytest
from click.testing import CliRunner

from napari_jpeg_restore import QGCNRestore, RestoreOptions, restore
from napari_jpeg_restore.cli import main as jpeg_restore
from napari_jpeg_restore.options import DEFAULTS, OptionError

OPTIONS = {f.name: f.default for f in fields(RestoreOptions)}


@pytest.mark.parametrize("face", [restore, QGCNRestore.__init__], ids=["restore", "QGCNRestore"])
def test_python_faces_take_every_option_with_its_default(face):
    params = inspect.signature(face).parameters
    assert {name: params[name].default for name in OPTIONS if name in params} == OPTIONS
    assert all(params[name].kind is inspect.Parameter.KEYWORD_ONLY for name in OPTIONS)


def _click_defaults(command) -> dict:
    return {p.name: p.default for p in command.params}


def test_command_lines_take_every_option_with_its_default():
    from qgcn_training.cli import evaluate

    assert {k: v for k, v in _click_defaults(jpeg_restore).items() if k in OPTIONS} == OPTIONS
    expected = {k: v for k, v in OPTIONS.items() if k != "model"}  # evaluate's --model also takes checkpoints
    assert {k: v for k, v in _click_defaults(evaluate).items() if k in expected} == expected
    help_text = CliRunner().invoke(jpeg_restore, ["--help"]).output
    assert all(f"--{name}" in help_text for name in OPTIONS)


def test_help_of_the_filter_shows_the_options():
    import pydoc

    text = pydoc.render_doc(QGCNRestore, renderer=pydoc.plaintext)
    for name, default in OPTIONS.items():
        assert f"{name}: " in text and f"= {default!r}" in text, name


@pytest.mark.parametrize("bad, message", [
    ({"device": "cuda:7"}, "'cuda:7' is not available"),
    ({"device": "gpu"}, "unknown device 'gpu'"),
    ({"strength": -1.0}, "strength must be positive"),
    ({"tile": 64, "overlap": 32}, "twice the overlap"),
    ({"tile": 7}, "tile must be 0 or a multiple of 16 pixels, got 7 \\(try 0 or 16\\)"),
    ({"tile": 100}, "tile must be 0 or a multiple of 16 pixels, got 100 \\(try 96 or 112\\)"),
    ({"overlap": 10}, "overlap must be 0 or a multiple of 16 pixels"),
    ({"tile": -16}, "tile must be 0 or a multiple of 16"),
    ({"precision": "int8"}, "precision must be one of"),
    ({"threads": -1}, "threads must be at least 1"),
    ({"model": "no-such-model"}, "no-such-model: not a shipped model"),
])
def test_bad_options_fail_when_made(bad, message):
    with pytest.raises(ValueError, match=message):
        RestoreOptions(**bad).checked()  # the fields at once; the machine and the disk when checked


def test_text_spellings_of_the_defaults():
    assert RestoreOptions(model="default", device="auto") == RestoreOptions(model="", device="") == DEFAULTS
    assert RestoreOptions(overlap=0, threads=0) == DEFAULTS  # how the widget's spin boxes spell auto
    assert issubclass(OptionError, ValueError)


def test_a_bad_option_is_one_usage_error_before_any_file(tmp_path):
    from imaging import data_image

    for i in range(3):
        data_image("LIVE1/parrots.png").crop((0, 0, 32, 32)).save(tmp_path / f"{i}.jpg", quality=30)
    for args, message in ((["--device", "cuda:7"], "'cuda:7' is not available"),
                          (["--strength", "-1"], "strength must be positive")):
        result = CliRunner().invoke(jpeg_restore, [str(tmp_path), "-o", str(tmp_path / "out"), *args])
        assert result.exit_code == 2 and result.output.count(message) == 1, result.output
        assert not (tmp_path / "out").exists()


def test_the_tile_overlap_follows_the_model_unless_given(random_weights, tmp_path):
    import shutil

    from napari_jpeg_restore.engine import Engine
    from napari_jpeg_restore.options import FALLBACK_OVERLAP
    from napari_jpeg_restore.weights import WeightsError, load_model, update_record

    folder = shutil.copytree(random_weights["colour"], tmp_path / "model")
    assert Engine.for_model(load_model(folder), DEFAULTS).overlap == FALLBACK_OVERLAP  # its record names none
    update_record(folder, tiling={"overlap": 64})
    model = load_model(folder)
    assert Engine.for_model(model, DEFAULTS).overlap == 64
    assert Engine.for_model(model, RestoreOptions(overlap=16)).overlap == 16  # one given wins
    with pytest.raises(OptionError, match=r"tile \(128\) must be 0 or larger than twice the overlap \(64, the model's own\)"):
        RestoreOptions(model=str(folder), tile=128).checked()  # before any work
    assert RestoreOptions(model=str(folder), tile=144).checked().tile == 144
    update_record(folder, tiling={"overlap": 20})
    with pytest.raises(WeightsError, match="model: the record's tile overlap 20 is not a multiple of 16 pixels"):
        load_model(folder).tile_overlap
