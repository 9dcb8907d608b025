import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from napari_jpeg_restore.jpeg import encode_jpeg
from napari_jpeg_restore.options import RestoreOptions
from qgcn_training.cli import main
from qgcn_training.metrics import psnr

BASE = ["--preset", "tiny", "--variant", "qcn", "--batch", "4", "--patch", "32", "--threads", "1",
        "--holdout", "1", "--val-every", "1000"]


def _train(args):
    result = CliRunner().invoke(main, ["train", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _weights(folder):
    return torch.load(folder / "checkpoint.pt", weights_only=True)


def test_short_run_beats_the_jpeg_input(pool_dir, tmp_path, real_pair):
    from napari_jpeg_restore.engine import Engine
    from napari_jpeg_restore.jpeg import facts_from_image
    from qgcn_training.evaluate import load_any

    _train(["--data", str(pool_dir), "--out", str(tmp_path), *BASE, "--batch", "8", "--patch", "48",
            "--steps", "400", "--lr", "2e-3", "--paper"])
    engine = Engine.for_model(load_any(str(tmp_path / "checkpoint.pt"), colour=True), RestoreOptions(tile=0))
    crop = np.ascontiguousarray(real_pair[:192, :256])
    for q in (10, 20):
        im = encode_jpeg(crop, quality=q)
        restored = engine.run(np.asarray(im), facts_from_image(im))
        assert psnr(restored, crop) > psnr(np.asarray(im), crop) + 0.05


# each plan changes the rate within the 12 steps: a resume that lost its place in the plan would differ
SCHEDULES = {"step": ["--lr-step", "5", "--lr-gamma", "0.5"],
             "cosine+ema": ["--schedule", "cosine", "--lr-final", "1e-5", "--ema", "0.9"]}


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_killed_and_resumed_run_is_bitwise_identical(pool_dir, tmp_path, schedule):
    from qgcn_training.train import TrainSettings

    steps = ["--steps", "12", "--checkpoint-minutes", "0", *SCHEDULES[schedule]]
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    _train(["--data", str(pool_dir), "--out", str(straight), *BASE, *steps])
    cmd = [sys.executable, "-m", "qgcn_training.cli", "train", "--data", str(pool_dir), "--out", str(broken),
           *BASE, *steps]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (broken / "checkpoint.pt").exists() and _weights(broken)["step"] >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _weights(broken)["step"]
    assert 4 <= killed_at < 12
    _train(["--data", str(pool_dir), "--out", str(broken), *BASE, *steps, "--resume"])
    a, b = _weights(straight), _weights(broken)
    assert b["step"] == 12 and b["resumed_at"] == [killed_at] and a["resumed_at"] == []  # it did resume
    settings = TrainSettings(**a["settings"])
    last_lr = b["optimizer"]["param_groups"][0]["lr"]
    assert last_lr == a["optimizer"]["param_groups"][0]["lr"] == settings.learning_rate(11, 0.0)
    assert last_lr < settings.lr / 2  # the plan did lower the rate
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    if a["ema"] is not None:
        assert a["ema"].keys() == b["ema"].keys()
        for k in a["ema"]:
            assert torch.equal(a["ema"][k], b["ema"][k]), k
        assert any(not torch.equal(a["ema"]["module." + k], v) for k, v in a["model"].items())  # it averaged


def test_a_diverging_run_rolls_back_to_its_last_good_state_at_a_lower_rate(pool_dir, tmp_path):
    import csv

    # the rate jumps ×1000 at step 4 (to 0.1, no clipping): the weights blow up by step 6
    _train(["--data", str(pool_dir), "--out", str(tmp_path), *BASE, "--val-every", "2", "--steps", "8",
            "--schedule", "step", "--lr", "1e-4", "--lr-step", "4", "--lr-gamma", "1000", "--clip-grad", "0"])
    ck = _weights(tmp_path)
    assert ck["rollbacks"][0] == (6, 4) and ck["lr_scale"] <= 0.5 and ck["step"] == 8
    assert all(torch.isfinite(v).all() for v in ck["model"].values())
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert float(rows[2]["val_psnr"]) < float(rows[1]["val_psnr"]) - 1  # it did diverge at step 6 ...
    assert float(rows[-1]["val_psnr"]) >= ck["best_val"] - 1  # ... and ends near its best, not diverged


def test_the_divergence_rule_and_its_roll_back_against_their_formulas(tmp_path):
    from qgcn_training.bookkeeping import DIVERGED_DB, Bookkeeping
    from qgcn_training.checkpoint import load_checkpoint

    book = Bookkeeping(tmp_path)
    assert not book.diverged(None) and not book.diverged(20.0)  # nothing measured yet: no best to fall from
    book.keep(30.0, {"step": 4})
    assert book.diverged(float("nan")) and book.diverged(30.0 - DIVERGED_DB - 0.01)
    assert not book.diverged(30.0 - DIVERGED_DB + 0.01)
    book.rolled_back(6, 4)
    book.rolled_back(9, 8)
    assert book.lr_scale == 0.25 and book.rollbacks == [(6, 4), (9, 8)]
    book.save({"step": 10})
    saved = load_checkpoint(book.checkpoint_path)
    assert saved["best_val"] == 30.0 and saved["lr_scale"] == 0.25 and saved["rollbacks"] == [(6, 4), (9, 8)]
    assert load_checkpoint(book.good_path)["step"] == 4
    again = Bookkeeping(tmp_path)
    again.resume(saved)
    assert again.counters() == {**book.counters(), "resumed_at": [10]}


def test_cosine_plan_runs_from_lr_to_lr_final_over_whichever_budget_ends_first():
    from qgcn_training.train import TrainSettings

    by_steps = TrainSettings(data=[], out="x", schedule="cosine", lr=1e-3, lr_final=1e-5, steps=100)
    rates = [by_steps.learning_rate(k, 0.0) for k in range(101)]
    assert rates[0] == 1e-3 and rates[100] == pytest.approx(1e-5) and rates[50] == pytest.approx((1e-3 + 1e-5) / 2)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    by_time = TrainSettings(data=[], out="x", schedule="cosine", lr=1e-3, lr_final=1e-5, steps=10**6, minutes=10)
    assert by_time.learning_rate(10, 300.0) == pytest.approx(rates[50])  # half the minutes, few steps
    assert by_time.learning_rate(10, 3600.0) == pytest.approx(1e-5)  # past the budget: stays at the floor
    step = TrainSettings(data=[], out="x", lr=1e-3, lr_step=10, lr_gamma=0.5)
    assert [step.learning_rate(k, 0.0) for k in (0, 9, 10, 25)] == [1e-3, 1e-3, 5e-4, 2.5e-4]


def test_checkpoints_carry_their_format_and_old_ones_read_with_one_set_of_defaults(pool_dir, tmp_path):
    import math

    from qgcn_training.checkpoint import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint

    _train(["--data", str(pool_dir), "--out", str(tmp_path), *BASE, "--steps", "2"])
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["format"] == CHECKPOINT_FORMAT and ck["ran"]["device"] == "cpu"
    old = {k: v for k, v in torch.load(tmp_path / "checkpoint.pt", weights_only=True).items()
           if k not in ("format", "cpu_seconds", "best_val", "rollbacks", "ran")}
    torch.save(old, tmp_path / "old.pt")  # as format 1 wrote them
    read = load_checkpoint(tmp_path / "old.pt")
    assert read["format"] == 1 and read["cpu_seconds"] == 0.0 and read["best_val"] == -math.inf
    assert read["rollbacks"] == [] and read["ran"] is None
    torch.save({**old, "format": CHECKPOINT_FORMAT + 1}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="new.pt: checkpoint format .* is newer than this version reads"):
        load_checkpoint(tmp_path / "new.pt")


def test_train_offers_every_setting_with_its_default():
    """qgcn-train train's options are made from TrainSettings: one per field, same name and default."""
    from dataclasses import MISSING, fields

    from qgcn_training.train import TrainSettings

    train = main.commands["train"]
    params = {p.name: p for p in train.params}
    settings = [f for f in fields(TrainSettings) if f.metadata.get("cli", True)]
    for f in settings:
        p = params[f.name]
        if not (p.required or p.multiple):  # --out is required, --data repeats
            assert p.default == f.default and f.default is not MISSING, f.name
        assert p.help == f.metadata["help"], f.name
    assert {"variety", "steps_before"}.isdisjoint(params) and len(settings) >= 30


def test_ema_follows_its_configured_decay(pool_dir, tmp_path):
    """After the first step the average holds the weights; after each later one it is decay × the
    average + (1 - decay) × the new weights. A wrong decay (or 1 - decay) fails here."""
    from qgcn_training.train import Trainer, TrainSettings

    trainer = Trainer(TrainSettings(data=[str(pool_dir)], out=str(tmp_path), preset="tiny", variant="qcn", batch=2,
                                    patch=32, holdout=1, ema=0.75, lr=1e-3, threads=1))
    trainer.build()
    trainer.prepare_data(resumed=False)
    trainer.autocast = torch.autocast("cpu", enabled=False)
    expected = None
    for _ in range(3):
        trainer.train_step(trainer.next_batch())
        weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        expected = weights if expected is None else {k: 0.75 * expected[k] + 0.25 * weights[k] for k in weights}
    averaged = {k.removeprefix("module."): v for k, v in trainer.ema.state_dict().items() if k.startswith("module.")}
    for k, v in expected.items():
        torch.testing.assert_close(averaged[k], v, rtol=1e-5, atol=1e-7)
    assert any(not torch.equal(averaged[k], weights[k]) for k in weights)  # it is not just the last weights


def test_balanced_loss_weights_each_patch_by_the_inverse_of_its_jpeg_error():
    from qgcn_training.train import BALANCE_FLOOR, restoration_loss

    target = torch.full((3, 1, 4, 4), 0.5)
    decoded = target + torch.tensor([0.2, 0.02, 0.0]).view(3, 1, 1, 1)  # coarse, fine, lossless JPEGs
    restored = target + torch.tensor([0.1, 0.01, 0.001]).view(3, 1, 1, 1)
    errors = torch.tensor([0.1, 0.01, 0.001])
    assert restoration_loss(restored, target, decoded, "l1") == pytest.approx(float(errors.mean()))
    jpeg = torch.tensor([0.2, 0.02, BALANCE_FLOOR])  # the lossless patch's error is floored
    expected = float((jpeg.mean() / jpeg * errors).mean())
    assert restoration_loss(restored, target, decoded, "balanced") == pytest.approx(expected, rel=1e-5)


def test_a_parked_lineage_continues_in_its_plan(pool_dir, tmp_path):
    """Exported weights carry what a run needs to go on elsewhere: `train --continue` takes their
    settings and place in the planned schedule, so the rate goes on down the same cosine."""
    from qgcn_training.train import TrainSettings

    plan = ["--schedule", "cosine", "--lr", "1e-3", "--lr-final", "1e-5", "--plan-steps", "12", "--ema", "0.9"]
    _train(["--data", str(pool_dir), "--out", str(tmp_path / "a"), *BASE, *plan, "--steps", "5", "--val-every", "5"])
    result = CliRunner().invoke(main, ["export", str(tmp_path / "a" / "checkpoint.pt"), "--ema",
                                       "--out", str(tmp_path / "parked"), "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    _train(["--continue", str(tmp_path / "parked"), "--out", str(tmp_path / "b"), "--steps", "4",
            "--val-every", "2", "--synthetic-share", "0.3"])
    settings = _weights(tmp_path / "b")["settings"]
    first = _weights(tmp_path / "a")["settings"]
    assert settings["steps_before"] == 5 and settings["init_from"] == str(tmp_path / "parked")
    as_json = lambda d: json.loads(json.dumps(d))  # noqa: E731  (the record holds lists, not tuples)
    assert as_json(settings["variety"]) == as_json({**first["variety"], "synthetic_share": 0.3})  # given options win
    assert {k: settings[k] for k in ("preset", "lr", "plan_steps", "batch", "data")} == \
        {k: first[k] for k in ("preset", "lr", "plan_steps", "batch", "data")}
    uninterrupted = TrainSettings(data=[], out="x", schedule="cosine", lr=1e-3, lr_final=1e-5, plan_steps=12)
    rows = list(csv.DictReader(open(tmp_path / "b" / "log.csv")))
    # the log's rate is the one the last step used: steps 5+1 and 5+3 of the plan
    assert [float(r["lr"]) for r in rows] == pytest.approx([uninterrupted.learning_rate(k, 0) for k in (6, 8)],
                                                           rel=1e-2)
    bad = CliRunner().invoke(main, ["train", "--continue", str(tmp_path), "--out", str(tmp_path / "c")])
    assert bad.exit_code == 2 and "config.json" in bad.output and "Traceback" not in bad.output


def test_gpu_lease_dry_run_brings_back_loadable_weights(pool_dir, tmp_path):
    """training/gpu/lease.sh's train path, run on the CPU: what a lent GPU would bring back is
    loadable fp16 weights (last and EMA) and the log, within the device tool's limits on returns."""
    import subprocess
    import sys
    from pathlib import Path

    from napari_jpeg_restore.weights import load_model

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "DATA": str(pool_dir), "PYTHON": sys.executable}
    done = subprocess.run(["bash", "training/gpu/lease.sh", "dry-run", "7", "--preset", "tiny", "--variant", "qcn",
                           "--batch", "4", "--patch", "32", "--threads", "1", "--ema", "0.9"],
                          cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["log.csv", "weights-ema/config.json", "weights-ema/model.safetensors", "weights/config.json",
                     "weights/model.safetensors"]
    assert all((out / f).stat().st_size <= 16 * 2**20 for f in files)  # the tool's limits on what comes back
    assert load_model(out / "weights-ema", colour=True).record["steps"] == 3


def test_the_gpu_carry_fits(tmp_path):
    """What a lent GPU machine gets: the tracked tree plus the device data, 64 MiB in all."""
    import subprocess
    from pathlib import Path

    from shared_data import DATA, need

    root = Path(__file__).resolve().parents[2]
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    size = sum((root / f).stat().st_size for f in tracked.decode().split("\0") if f and (root / f).is_file())
    size += sum(f.stat().st_size for f in need(DATA / "device-pack").iterdir())
    # the wheels it lacks travel too (training/gpu/lease.sh): kornia 1.9 MB, kornia_rs 5.3 MB, simplejpeg
    # 0.4 MB, jpeglib cut to the two libraries it loads 1.25 MB: 8.5 MiB
    assert size <= 55 * 2**20, f"{size / 2**20:.1f} MiB leaves under 9 MiB for the wheels"


@pytest.mark.parametrize("args, message", [
    (["--schedule", "cosine"], "needs a budget"),
    (["--ema", "1.5", "--steps", "1"], "ema must be a decay"),
])
def test_train_rejects_impossible_settings_before_any_work(tmp_path, args, message):
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "run").exists()


def test_export_ema_writes_the_moving_average(pool_dir, tmp_path):
    from napari_jpeg_restore.weights import load_model

    _train(["--data", str(pool_dir), "--out", str(tmp_path / "run"), *BASE, "--steps", "3", "--ema", "0.5"])
    ck = tmp_path / "run" / "checkpoint.pt"
    for flag, folder in (([], "last"), (["--ema"], "ema")):
        result = CliRunner().invoke(main, ["export", str(ck), "--out", str(tmp_path / folder), *flag])
        assert result.exit_code == 0, result.output
    saved = _weights(tmp_path / "run")
    last, ema = (load_model(tmp_path / f, colour=True) for f in ("last", "ema"))
    assert ema.record["weights"] == "moving average, decay 0.5" and last.record["weights"] == "last step"
    for k, v in ema.network.state_dict().items():
        torch.testing.assert_close(v, saved["ema"]["module." + k].half().float(), atol=0, rtol=0)
    assert any(not torch.equal(v, last.network.state_dict()[k]) for k, v in ema.network.state_dict().items())
    _train(["--data", str(pool_dir), "--out", str(tmp_path / "plain"), *BASE, "--steps", "1"])
    result = CliRunner().invoke(main, ["export", str(tmp_path / "plain" / "checkpoint.pt"), "--out",
                                       str(tmp_path / "x"), "--ema"])
    assert result.exit_code == 1 and "checkpoint.pt: this checkpoint has no moving average" in result.output


def _train_two_ranks(args):
    """``qgcn-train train ARGS`` as two DDP ranks of one thread each (a hung run fails after 240 s)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                    "qgcn_training.cli", "train", *args], check=True, env=env, capture_output=True, timeout=240)


@pytest.mark.parametrize("stage", [[], ["--variant", "qgcn", "--skip-global"]], ids=["qcn", "qgcn-skip-global"])
def test_two_process_ddp_matches_one_process(pool_dir, tmp_path, stage):
    # with --skip-global the global branch's weights get no gradient, which DDP refuses unless frozen
    args = ["--data", str(pool_dir), *BASE, *stage, "--batch", "8", "--steps", "3", "--precision", "float32"]
    _train([*args, "--out", str(tmp_path / "one")])
    _train_two_ranks([*args, "--out", str(tmp_path / "two")])
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert two["world_size"] == 2 and two["ranks_identical"] is True
    for k in one["model"]:
        torch.testing.assert_close(two["model"][k], one["model"][k], atol=1e-5, rtol=1e-4)


def test_two_process_ddp_stops_together_on_a_time_budget(pool_dir, tmp_path):
    # each rank reads its own clock: without agreeing, one stops a step before the other, which then
    # waits for it forever
    _train_two_ranks(["--data", str(pool_dir), *BASE, "--minutes", "0.1", "--out", str(tmp_path / "two")])
    ck = _weights(tmp_path / "two")
    assert ck["world_size"] == 2 and ck["ranks_identical"] is True and ck["step"] > 0


def test_export_writes_fp16_weights_with_record(pool_dir, tmp_path):
    from napari_jpeg_restore.weights import load_model

    _train(["--data", str(pool_dir), "--out", str(tmp_path / "run"), *BASE, "--steps", "2"])
    result = CliRunner().invoke(main, ["export", str(tmp_path / "run" / "checkpoint.pt"), "--out",
                                       str(tmp_path / "w")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    model = load_model(tmp_path / "w", colour=True)
    assert model.record["steps"] == 2 and model.record["preset"] == "tiny" and model.record["git_commit"]
    assert model.record["hardware"]["torch"] == torch.__version__
    assert not (tmp_path / "w" / "checkpoint.pt").exists()
    assert all(t.dtype == torch.float16 for t in __import__("safetensors.torch").torch.load_file(
        tmp_path / "w" / "model.safetensors").values())


def test_choose_overlap_records_the_narrowest_seamless_overlap_and_the_engine_tiles_with_it(pool_dir, tmp_path):
    """A U-Net's lower levels see far: at a 16-pixel overlap its tiles show (random weights, float32),
    at the chosen one tiled output equals the whole image's within a level, and the engine uses it."""
    from dataclasses import replace

    from napari_jpeg_restore.engine import Engine
    from napari_jpeg_restore.model import build_model, preset
    from napari_jpeg_restore.weights import load_model, save_weights
    from qgcn_training.evaluate import OVERLAP_LEVELS, coded

    (tmp_path / "data" / "WikiPhotos49").mkdir(parents=True)  # the set pool-val: the pool's last images
    for f in sorted(pool_dir.glob("*.png"))[:3]:
        (tmp_path / "data" / "WikiPhotos49" / f.name).write_bytes(f.read_bytes())
    torch.manual_seed(0)
    folder = save_weights(build_model(replace(preset("tiny"), body="unet", unet_channels=(8, 16, 32),
                                              unet_blocks=(1, 1, 2))), tmp_path / "w", record={})
    result = CliRunner().invoke(main, ["choose-overlap", str(folder), "--data-root", str(tmp_path / "data"),
                                       "--tile", "128", "--threads", "1"])
    assert result.exit_code == 0, result.output
    chosen = json.loads(result.output[result.output.index("{"):])
    table = {int(k): v for k, v in chosen["difference_levels"].items()}
    overlap = chosen["overlap"]
    assert overlap > min(table) and table[overlap] <= OVERLAP_LEVELS  # the narrowest candidate failed
    assert all(levels > OVERLAP_LEVELS for o, levels in table.items() if o < overlap)
    model = load_model(folder, colour=True)
    assert model.record["tiling"]["overlap"] == overlap == model.tile_overlap
    options = RestoreOptions(tile=128, precision="float32", consistency="off")
    engine = Engine.for_model(model, options)
    assert engine.overlap == overlap
    with Image.open(pool_dir / "4.png") as im:  # not one it was chosen on
        pixels, facts = coded(np.asarray(im), 10)[:2]
    whole = Engine.for_model(model, options.replace(tile=0)).run(pixels, facts)
    assert np.abs(engine.run(pixels, facts).astype(int) - whole).max() <= OVERLAP_LEVELS


def test_evaluate_cli_writes_table_json_and_plot(tmp_path):
    import json

    from napari_jpeg_restore.model import build_model, preset
    from napari_jpeg_restore.weights import save_weights
    from shared_data import DATA, need

    torch.manual_seed(0)
    save_weights(build_model(preset("tiny", colour=False)), tmp_path / "gray")
    out = CliRunner().invoke(main, [
        "evaluate", "--model", str(tmp_path / "gray"), "--sets", "classic5,live1", "--qf", "10,40",
        "--data-root", str(need(DATA)), "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md"),
        "--plot", str(tmp_path / "gain.png"), "--plot-qf", "50", "--crops", str(tmp_path / "crops")],
        catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "live1: skipped, no colour model" in out.output
    result = json.loads((tmp_path / "r.json").read_text())
    rows = result["rows"]
    assert result["options"]["precision"] == "auto" and result["precision_run"] in ("float32", "bfloat16")
    assert [(r["set"], r["qf"], r["images"]) for r in rows] == [("classic5", 10, 5), ("classic5", 40, 5)]
    assert rows[0]["jpeg"][0] < rows[1]["jpeg"][0]  # QF 10 codes worse than QF 40
    table = (tmp_path / "r.md").read_text()
    assert "| classic5 | 10 | 5 | PSNR |" in table and "classic5 " in table.splitlines()[-1]
    assert (tmp_path / "gain.png").stat().st_size > 1000
    crops = sorted(p.name for p in (tmp_path / "crops").iterdir())
    assert crops == ["bikes-qf10.png", "parrots-qf10.png", "sailing1-qf10.png", "womanhat-qf10.png"]
    assert Image.open(tmp_path / "crops" / "bikes-qf10.png").size == (3 * 192, 192)


def test_evaluate_finds_the_data_from_any_folder(tmp_path, monkeypatch):
    """The default --data-root is ../shared/data beside the repository, found from the package, not
    from the working directory; $QGCN_DATA moves it."""
    from qgcn_training.data import DATA_ROOT
    from shared_data import DATA, need

    assert DATA_ROOT.resolve() == need(DATA).resolve()
    from napari_jpeg_restore.model import build_model, preset
    from napari_jpeg_restore.weights import save_weights

    torch.manual_seed(0)
    save_weights(build_model(preset("tiny", colour=False)), tmp_path / "gray")
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(main, ["evaluate", "--model", "gray", "--sets", "classic5", "--qf", "30"])
    assert out.exit_code == 0, out.output
    assert "| classic5 | 30 | 5 | PSNR |" in out.output


def test_export_merges_evaluations_of_one_model_and_refuses_a_repeated_one(pool_dir, tmp_path):
    import json

    from napari_jpeg_restore.weights import load_model
    from shared_data import DATA, need

    _train(["--data", str(pool_dir), "--out", str(tmp_path / "run"), *BASE, "--gray", "--steps", "2"])
    ck = str(tmp_path / "run" / "checkpoint.pt")
    for qf in ("10", "40"):
        out = CliRunner().invoke(main, ["evaluate", "--model", ck, "--sets", "classic5", "--qf", qf, "--data-root",
                                        str(need(DATA)), "--json", str(tmp_path / f"qf{qf}.json")])
        assert out.exit_code == 0, out.output
    both = ["--evaluation", str(tmp_path / "qf10.json"), "--evaluation", str(tmp_path / "qf40.json")]
    out = CliRunner().invoke(main, ["export", ck, "--out", str(tmp_path / "w"), *both])
    assert out.exit_code == 0, out.output
    evaluation = load_model(tmp_path / "w", colour=False).record["evaluation"]
    separate = [json.loads((tmp_path / f"qf{qf}.json").read_text())["rows"][0] for qf in ("10", "40")]
    assert evaluation["rows"] == separate and list(evaluation["hashes"]) == ["classic5"]
    twice = ["--evaluation", str(tmp_path / "qf10.json")] * 2
    out = CliRunner().invoke(main, ["export", ck, "--out", str(tmp_path / "w2"), *twice])
    assert out.exit_code != 0 and "classic5 at QF 10 is measured twice" in out.output
    assert not (tmp_path / "w2").exists()


def test_evaluate_skips_a_named_model_of_the_other_kind_but_not_a_broken_one(tmp_path):
    import shutil

    from napari_jpeg_restore.weights import SHIPPED, WeightsError
    from qgcn_training.evaluate import load_any

    assert load_any("qgcn-colour", colour=False) is None and load_any("qgcn-gray", colour=True) is None
    assert load_any("qgcn-colour", colour=True).config.colour
    broken = tmp_path / "broken"
    shutil.copytree(SHIPPED / "qgcn-colour", broken)
    with open(broken / "model.safetensors", "r+b") as f:
        f.seek(-1, 2)
        f.write(b"\x01" if f.read(1) != b"\x01" else b"\x02")
    with pytest.raises(WeightsError, match="checksum mismatch"):
        load_any(str(broken), colour=True)
    out = CliRunner().invoke(main, ["evaluate", "--model", "qgcn-colour", "--sets", "synthetic-gray", "--qf", "10"])
    assert out.exit_code == 0 and "synthetic-gray: skipped, no gray model given" in out.output


def test_init_from_exported_weights(pool_dir, tmp_path):
    from napari_jpeg_restore.weights import load_model

    _train(["--data", str(pool_dir), "--out", str(tmp_path / "a"), *BASE, "--steps", "3"])
    CliRunner().invoke(main, ["export", str(tmp_path / "a" / "checkpoint.pt"), "--out", str(tmp_path / "w")],
                       catch_exceptions=False)
    _train(["--data", str(pool_dir), "--out", str(tmp_path / "b"), *BASE, "--steps", "0",
            "--init-from", str(tmp_path / "w")])
    exported = load_model(tmp_path / "w", colour=True).network.state_dict()
    warm = _weights(tmp_path / "b")
    assert warm["step"] == 0
    for k, v in exported.items():
        assert torch.equal(warm["model"][k], v), k


def test_a_gray_run_starts_from_a_colour_model(pool_dir, tmp_path):
    """--gray --init-from a colour model: the gray network restores a gray image (away from its edge)
    as the colour one restores it in colour (neutral chroma, the file's table for both maps) and gives
    its Y; a colour run cannot start from a gray model."""
    from napari_jpeg_restore.model import ModelConfig, build_model
    from napari_jpeg_restore.weights import load_model

    _train(["--data", str(pool_dir), "--out", str(tmp_path / "a"), *BASE, "--preset", "unet", "--steps", "1"])
    CliRunner().invoke(main, ["export", str(tmp_path / "a" / "checkpoint.pt"), "--out", str(tmp_path / "w")],
                       catch_exceptions=False)
    _train(["--data", str(pool_dir), "--out", str(tmp_path / "b"), *BASE, "--preset", "unet", "--gray",
            "--steps", "0", "--init-from", str(tmp_path / "w")])
    warm = _weights(tmp_path / "b")
    gray = build_model(ModelConfig.from_dict(warm["config"]))
    gray.load_state_dict(warm["model"])
    colour = load_model(tmp_path / "w", colour=True).network
    torch.manual_seed(0)
    y, table_map = torch.rand(1, 1, 128, 128), torch.rand(1, 1, 128, 128)
    neutral = torch.full_like(y, 0.5)
    with torch.no_grad():
        want = colour.restore(torch.cat([y, neutral, neutral, table_map, table_map], 1))[:, :1]
        got = gray.restore(torch.cat([y, table_map], 1))
    assert not gray.config.colour and got.shape == want.shape
    assert (got - y).abs().max() > 1e-3  # the networks change the image: the comparison means something
    torch.testing.assert_close(got[..., 48:80, 48:80], want[..., 48:80, 48:80], atol=1e-5, rtol=0)
    CliRunner().invoke(main, ["export", str(tmp_path / "b" / "checkpoint.pt"), "--out", str(tmp_path / "g")],
                       catch_exceptions=False)
    bad = CliRunner().invoke(main, ["train", "--data", str(pool_dir), "--out", str(tmp_path / "c"), *BASE,
                                    "--preset", "unet", "--steps", "0", "--init-from", str(tmp_path / "g")])
    assert bad.exit_code == 1 and "the warm start's network differs: colour False (run: True)" in bad.output


def test_init_from_grows_a_unet_a_full_resolution_path_and_refuses_other_networks(pool_dir, tmp_path):
    unet = [*BASE, "--preset", "unet"]
    _train(["--data", str(pool_dir), "--out", str(tmp_path / "a"), *unet, "--steps", "1"])
    CliRunner().invoke(main, ["export", str(tmp_path / "a" / "checkpoint.pt"), "--out", str(tmp_path / "w")],
                       catch_exceptions=False)
    _train(["--data", str(pool_dir), "--out", str(tmp_path / "b"), *BASE, "--preset", "unet-fine", "--steps", "0",
            "--init-from", str(tmp_path / "w")])
    warm = _weights(tmp_path / "b")
    assert warm["config"]["fine_channels"] == 16 and not warm["model"]["fine.3.weight"].any()
    bad = CliRunner().invoke(main, ["train", "--data", str(pool_dir), "--out", str(tmp_path / "c"), *BASE,
                                    "--steps", "0", "--init-from", str(tmp_path / "w")])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert f"--init-from {tmp_path / 'w'}: the warm start's network differs" in bad.output and "body 'unet'" in bad.output


def test_high_share_sets_the_share_of_high_quality_patches(pool_dir, tmp_path):
    _train(["--data", str(pool_dir), "--out", str(tmp_path), *BASE, "--steps", "0", "--high-share", "0.6"])
    variety = _weights(tmp_path)["settings"]["variety"]
    assert variety["high_share"] == 0.6 and tuple(variety["high_qf"]) == (61, 100)
    assert variety["synthetic_share"] == 0.15
    assert variety["smooth_chroma_share"] == 0.0
    _train(["--data", str(pool_dir), "--out", str(tmp_path / "b"), *BASE, "--steps", "0", "--synthetic-share", "0.4",
            "--smooth-chroma-share", "0.5"])
    variety = _weights(tmp_path / "b")["settings"]["variety"]
    assert variety["synthetic_share"] == 0.4 and variety["smooth_chroma_share"] == 0.5


def test_training_through_the_consistency_projection(pool_dir, tmp_path):
    """--consistency puts the projection in the forward pass: each patch's coefficients come from its
    own file, the gradient flows through it, the validator restores as the engine does, and the record
    says so."""
    from napari_jpeg_restore.consistency import project
    from napari_jpeg_restore.model import preset
    from napari_jpeg_restore.network_io import NetworkIO
    from qgcn_training.data import JpegVariety, PatchSampler, load_pool
    from qgcn_training.train import consistent

    sampler = PatchSampler(load_pool([pool_dir]), NetworkIO(preset("tiny"), global_on=False), patch=32,
                           variety=JpegVariety(), with_coefficients=True)
    x, _, t, constraints = sampler.batch(3, 4)
    assert len(constraints) == 4 and all(k.blocks[0].shape == (4, 4, 8, 8) for _, k in constraints)
    y = (x[:, :3] + 0.05 * torch.randn_like(x[:, :3])).requires_grad_()
    out = consistent(y, constraints, 0.3)
    facts, k = constraints[0]
    assert torch.equal(out[0], project(y[0], facts, 0.3, coefficients=k, rounds=1))
    out.sum().backward()
    assert y.grad.abs().sum() > 0
    assert consistent(y, constraints, None) is y
    _train(["--data", str(pool_dir), "--out", str(tmp_path), *BASE, "--steps", "4", "--val-every", "2",
            "--consistency", "0.3", "--loss", "balanced"])
    settings = _weights(tmp_path)["settings"]
    assert settings["consistency"] == 0.3 and settings["loss"] == "balanced"
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert all(np.isfinite(float(r["loss"])) and float(r["val_psnr"]) > 0 for r in rows)


def test_log_and_record_carry_process_cpu_time(pool_dir, tmp_path):
    import csv

    result = CliRunner().invoke(main, ["train", "--data", str(pool_dir), "--out", str(tmp_path), *BASE, "--steps", "4",
                                       "--val-every", "2"], catch_exceptions=False)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["step"] for r in rows] == ["2", "4"]
    # each validation is shown as it is measured, not only logged
    assert f"step 4: validation {float(rows[1]['val_psnr']):.3f} dB (JPEG" in result.output
    assert 0 <= float(rows[0]["cpu_s"]) < float(rows[1]["cpu_s"])  # the second includes a validation
    assert _weights(tmp_path)["cpu_seconds"] > 0


@pytest.mark.parametrize("gray", [False, True], ids=["colour", "gray"])
@pytest.mark.parametrize("variant", ["qgcn", "qcn", "edsr", "arcnn"])
def test_every_variant_trains_and_restores_a_real_jpeg(pool_dir, tmp_path, real_pair, variant, gray):
    from napari_jpeg_restore import restore

    _train(["--data", str(pool_dir), "--out", str(tmp_path / "run"), *BASE, "--variant", variant, "--steps", "2",
            "--val-every", "1", *(["--gray"] if gray else [])])
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(log) == 3 and float(log[-1].split(",")[3]) > 10  # the validator fed this variant too
    result = CliRunner().invoke(main, ["export", str(tmp_path / "run" / "checkpoint.pt"), "--out",
                                       str(tmp_path / "w"), "--data-root", str(tmp_path / "no-data")])
    assert result.exit_code == 0, result.output
    crop = Image.fromarray(np.ascontiguousarray(real_pair[:72, :88]))
    coded = encode_jpeg(crop.convert("L") if gray else crop, quality=20)
    out = restore(coded, model=str(tmp_path / "w"))
    assert out.size == coded.size and out.mode == coded.mode
    assert not np.array_equal(np.asarray(out), np.asarray(coded))  # the network's correction reached the pixels


def test_unet_preset_trains_with_its_global_branch_and_restores(pool_dir, tmp_path, real_pair):
    from napari_jpeg_restore import restore

    args = ["--data", str(pool_dir), *BASE, "--preset", "unet", "--variant", "qgcn", "--steps", "2"]
    _train([*args, "--out", str(tmp_path / "run")])
    ck = _weights(tmp_path / "run")
    assert ck["config"]["body"] == "unet" and not ck["settings"]["skip_global"]
    assert any(k.startswith("global_branch.") for k in ck["model"])
    result = CliRunner().invoke(main, ["export", str(tmp_path / "run" / "checkpoint.pt"), "--out",
                                       str(tmp_path / "w"), "--data-root", str(tmp_path / "no-data")])
    assert result.exit_code == 0, result.output
    coded = encode_jpeg(Image.fromarray(np.ascontiguousarray(real_pair[:72, :88])), quality=20)
    out = restore(coded, model=str(tmp_path / "w"))
    assert out.size == coded.size and not np.array_equal(np.asarray(out), np.asarray(coded))


def test_a_skip_global_export_leaves_the_untrained_global_branch_out(pool_dir, tmp_path):
    from safetensors import safe_open

    from napari_jpeg_restore.model import ModelConfig, build_model
    from napari_jpeg_restore.network_io import NetworkIO
    from napari_jpeg_restore.weights import load_model
    from qgcn_training.warm_start import zero_global_output

    qgcn = [a if a != "qcn" else "qgcn" for a in BASE]
    _train(["--data", str(pool_dir), "--out", str(tmp_path / "a"), *qgcn, "--steps", "2", "--skip-global"])
    result = CliRunner().invoke(main, ["export", str(tmp_path / "a" / "checkpoint.pt"), "--out", str(tmp_path / "w"),
                                       "--data-root", str(tmp_path / "no-data")])
    assert result.exit_code == 0, result.output
    exported = load_model(tmp_path / "w", colour=True)
    assert exported.config.global_features == 0 and exported.network.global_branch is None
    assert "skip-global" in exported.record["global_branch"]
    with safe_open(str(tmp_path / "w" / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if k.startswith("global_branch.")]
    assert not NetworkIO(exported.config).takes_global  # the engine makes no whole-image input for it
    # the network as trained (its branch held at zero; weights in the export's float16) restores as the export does
    ck = _weights(tmp_path / "a")
    trained = build_model(ModelConfig.from_dict(ck["config"]))
    trained.load_state_dict({k: v.half().float() for k, v in ck["model"].items()})
    zero_global_output(trained)
    x, g = torch.rand(2, 5, 48, 48), torch.rand(2, 5, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(exported.network.eval()(x), trained.eval()(x, g), atol=1e-5, rtol=0)


def test_global_stage_trains_only_the_global_branch_on_a_frozen_restoration_branch(pool_dir, tmp_path):
    qgcn = [a if a != "qcn" else "qgcn" for a in BASE]
    _train(["--data", str(pool_dir), "--out", str(tmp_path / "a"), *qgcn, "--steps", "2", "--skip-global"])
    CliRunner().invoke(main, ["export", str(tmp_path / "a" / "checkpoint.pt"), "--out", str(tmp_path / "w"),
                              "--data-root", str(tmp_path / "no-data")], catch_exceptions=False)
    _train(["--data", str(pool_dir), "--out", str(tmp_path / "b"), *qgcn, "--steps", "3", "--train-only", "global",
            "--init-from", str(tmp_path / "w"), "--precision", "float32"])
    from napari_jpeg_restore.weights import load_model

    start, end = load_model(tmp_path / "w", colour=True).network.state_dict(), _weights(tmp_path / "b")["model"]
    assert not any(k.startswith("global_branch.") for k in start)  # grown back for the global stage
    # the restoration branch stays as exported; the grown branch and the join train
    assert all(torch.equal(start[k], end[k]) for k in start if not k.startswith("merge."))
    channels = start["merge.weight"].shape[1]
    assert not torch.equal(end["merge.weight"][:, :channels], start["merge.weight"])
    assert end["global_branch.fc.3.weight"].abs().sum() > 0  # grown at zero, trained since
    bad = CliRunner().invoke(main, ["train", "--data", str(pool_dir), "--out", str(tmp_path / "c"), *qgcn,
                                    "--steps", "1", "--train-only", "global", "--skip-global"])
    assert bad.exit_code == 2 and "needs the qgcn variant with the global branch on" in bad.output


def test_too_few_images_for_the_holdout_is_a_clear_error(pool_dir, tmp_path):
    result = CliRunner().invoke(main, ["train", "--data", str(pool_dir), "--out", str(tmp_path), *BASE[:-4],
                                       "--holdout", "5", "--steps", "1"])
    assert result.exit_code == 1
    assert f"{pool_dir}: 5 usable images" in result.output and "--holdout 5" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--qf", "abc"], "'abc' is not a comma-separated list of qualities"),
    (["evaluate", "--qf", "0"], "qualities are 1..100, got '0'"),
    (["evaluate", "--qf", "10,101"], "qualities are 1..100, got '10,101'"),
    (["evaluate", "--model", "no-such-model"], "no-such-model: not a shipped model"),
    (["evaluate", "--sets", "live1", "--data-root", "/no/data"], "(--data-root or $QGCN_DATA says where the sets are)"),
    (["train", "--out", "OUT", "--preset", "huge"], "'huge' is not one of"),
])
def test_qgcn_train_bad_inputs_are_one_usage_error(tmp_path, args, message):
    result = CliRunner().invoke(main, [a.replace("OUT", str(tmp_path / "run")) for a in args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output


def test_a_data_folder_without_images_is_a_usage_error_and_leaves_no_run_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "run"),
                                       "--steps", "1", "--holdout", "0"])
    assert result.exit_code == 2 and "no training images found" in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_evaluate_help_names_every_set():
    from qgcn_training.evaluate import SETS

    out = CliRunner().invoke(main, ["evaluate", "--help"], terminal_width=200)
    named = set(re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", out.output.split("--sets", 1)[1].split("--qf", 1)[0]))
    assert out.exit_code == 0 and set(SETS) <= named
