import json

import pytest
import torch

from napari_jpeg_restore import ModelNotAvailable, WeightsError
from napari_jpeg_restore import weights as W
from napari_jpeg_restore.model import build_model, preset


def _saved(tmp_path, name="tiny", colour=True):
    torch.manual_seed(0)
    model = build_model(preset(name, colour=colour))
    return model, W.save_weights(model, tmp_path / "m", record={"steps": 0})


def test_round_trip_in_fp16(tmp_path):
    model, folder = _saved(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    assert config["maps"] == "log2(q)/8" and config["record"] == {"steps": 0}
    loaded = W.load_model(folder, colour=True)
    x, g = torch.rand(1, 5, 32, 32), torch.rand(1, 5, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(loaded.network(x, g), model.eval()(x, g), atol=2e-3, rtol=0)
    assert loaded.record == {"steps": 0} and loaded.folder == folder and not loaded.network.training
    assert W.load_model(folder / "config.json", colour=True) is not None
    assert W.load_model(folder / "model.safetensors", colour=True) is not None


def test_large_models_are_sharded_below_16_mib(tmp_path):
    model, folder = _saved(tmp_path, "paper")
    shards = sorted(folder.glob("*.safetensors"))
    assert len(shards) >= 3 and all(p.stat().st_size < 16 * 2**20 for p in shards)
    assert sum(p.numel() for p in W.load_model(folder).network.parameters()) == sum(p.numel() for p in model.parameters())


def test_corrupt_or_missing_file(tmp_path):
    _, folder = _saved(tmp_path)
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="model.safetensors: checksum mismatch"):
        W.load_model(folder)
    path.unlink()
    with pytest.raises(WeightsError, match="weights file missing"):
        W.load_model(folder)


def test_wrong_kind_and_wrong_maps(tmp_path):
    _, folder = _saved(tmp_path, colour=False)
    with pytest.raises(WeightsError, match="grayscale model cannot restore a colour image"):
        W.load_model(folder, colour=True)
    config = json.loads((folder / "config.json").read_text())
    config["maps"] = "q/255"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="q/255"):
        W.load_model(folder, colour=False)


def test_unknown_spec(tmp_path):
    with pytest.raises(WeightsError, match="nowhere: not a shipped model"):
        W.load_model(str(tmp_path / "nowhere"))


def test_default_refuses_without_trained_weights(monkeypatch):
    monkeypatch.setitem(W.DEFAULTS, "colour", "not-trained-yet")
    with pytest.raises(ModelNotAvailable, match="no trained colour model is shipped"):
        W.load_model(None, colour=True)
