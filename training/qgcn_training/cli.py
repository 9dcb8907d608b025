"""``qgcn-train``: train, evaluate and export QGCN-family models."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import click
import numpy as np
from PIL import Image

from napari_jpeg_restore.options import DEFAULTS, RestoreOptions, click_options

from .data import DATA_ROOT, JpegVariety
from .train import TrainSettings


@click.group()
def main():
    """Train, evaluate and export JPEG artifact removal models (QGCN paper, section IV)."""


_TYPES = {"folder": click.Path(exists=True, file_okay=False), "new-folder": click.Path(file_okay=False),
          "alpha": click.FloatRange(0, 1, min_open=True)}


def settings_options(command):
    """One ``--name`` option per :class:`~qgcn_training.train.TrainSettings` field, from the field's
    metadata (help, type, choices, default): the training settings are written once, there."""
    for f in reversed(fields(TrainSettings)):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        name = "--" + f.name.replace("_", "-")
        if meta["flag"]:
            command = click.option(name, is_flag=True, default=f.default, help=meta["help"])(command)
            continue
        choices = meta["choices"]
        kind = click.Choice(choices() if callable(choices) else choices) if choices else \
            _TYPES.get(meta["kind"], meta["kind"] or str)
        default = None if meta["repeat"] or meta["required"] else f.default
        command = click.option(name, f.name, type=kind, default=default, multiple=meta["repeat"],
                               required=meta["required"], show_default=default is not None,
                               help=meta["help"])(command)
    return command


#: The JpegVariety shares ``qgcn-train train`` offers, those whose field has help.
VARIETY_OPTIONS = tuple(f for f in fields(JpegVariety) if "help" in f.metadata)


def variety_options(command):
    """One ``--name`` option per :data:`VARIETY_OPTIONS` field, from its metadata: each changes the
    variety the run starts from (the default, --paper's, or a continued lineage's)."""
    for f in reversed(VARIETY_OPTIONS):
        command = click.option("--" + f.name.replace("_", "-"), f.name, type=click.FloatRange(0, 1),
                               help=f"{f.metadata['help']} [default: {f.default}]")(command)
    return command


@main.command()
@settings_options
@click.option("--paper", is_flag=True, help="The paper's JPEG setting: IJG tables, QF 1..60, 4:2:0 only.")
@variety_options
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where it stopped.")
@click.option("--continue", "continue_from", type=click.Path(exists=True, file_okay=False),
              help="Go on with a lineage parked by `qgcn-train export` (e.g. training/continue/NAME): its weights, "
                   "settings and place in the plan; options given here override its settings.")
@click.pass_context
def train(ctx, resume, continue_from, paper, **opts):
    """Train a model; Ctrl-C or SIGTERM ends after a checkpoint."""
    from .train import TrainingStopped
    from .train import train as run

    changes = {f.name: v for f in VARIETY_OPTIONS if (v := opts.pop(f.name)) is not None}
    if continue_from:
        opts = _continued(ctx, continue_from, opts)
    if not opts["data"]:
        raise click.UsageError("give at least one --data folder (or --continue a parked lineage)")
    continued_variety = opts.pop("variety", None)  # a continued lineage's JPEG variety, which --paper replaces
    base = JpegVariety.from_dict(continued_variety) if continued_variety and not paper else \
        JpegVariety.paper() if paper else JpegVariety()
    variety = {**asdict(base), **changes}
    opts["data"] = list(opts["data"])
    try:
        settings = TrainSettings(**opts, variety=variety)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        click.echo(run(settings, resume=resume))
    except TrainingStopped as exc:
        raise click.ClickException(str(exc)) from None
    except FileNotFoundError as exc:  # a --data folder without images
        raise click.BadParameter(str(exc), param_hint="--data") from None


def _continued(ctx, folder: str, opts: dict) -> dict:
    """``opts`` for a run that goes on with the lineage parked in ``folder``: the record's settings,
    warm-started from its weights at its place in the plan, with the options given on the command
    line taking precedence."""
    from napari_jpeg_restore.weights import WeightsError, read_config

    try:
        record = read_config(Path(folder))["record"]
    except WeightsError as exc:
        raise click.UsageError(f"--continue {folder}: {exc}") from None
    if "settings" not in record:
        raise click.UsageError(f"--continue {folder}: its record holds no training settings (exported before "
                               "runs could be continued); use --init-from instead")
    given = {k: v for k, v in opts.items() if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
    merged = {k: record["settings"].get(k, v) for k, v in opts.items()}
    merged.update(given, init_from=folder, steps_before=record["lineage_steps"], variety=record["settings"]["variety"])
    merged["data"] = list(given.get("data") or record["settings"]["data"])
    return merged


def _qualities(ctx, param, text: str) -> list[int]:
    """A comma-separated list of JPEG qualities 1..100, or a usage error naming the option."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of qualities, e.g. 10,30,50") from None
    bad = [v for v in values if not 1 <= v <= 100]
    if bad or not values:
        raise click.BadParameter(f"qualities are 1..100, got {text!r}")
    return values


@main.command()
@click.option("--model", default="default", show_default=True,
              help="default, a shipped name, an exported folder or a checkpoint.pt (its kind's sets).")
@click.option("--gray-model", help="Model for the gray sets when --model is a colour one.")
@click.option("--sets", default="live1,live1-gray,bsds500,bsds500-gray", show_default=True,
              help="Any of live1, live1-gray, bsds500, bsds500-gray, classic5, synthetic, synthetic-gray, pool-val, "
                   "pool-val-gray (whole held-out training-pool images: the race's validator).")
@click.option("--qf", default="10,20,30,40,50", show_default=True, callback=_qualities,
              help="JPEG qualities to code each image at, comma-separated.")
@click.option("--data-root", default=str(DATA_ROOT), show_default=True, type=click.Path(file_okay=False))
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Write every row, the options and the inputs' hashes as JSON (for `export --evaluation`).")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), help="Write the printed tables to this file.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="PNG: PSNR gain vs QF on LIVE1.")
@click.option("--plot-qf", default="5,10,20,30,40,50,60,70,80,90,95", show_default=True, callback=_qualities,
              help="Qualities of the --plot curve.")
@click.option("--crops", "crops_dir", type=click.Path(file_okay=False), help="Side-by-side crops at QF 10.")
@click_options(skip=("model",))
def evaluate(model, gray_model, sets, qf, data_root, json_path, md_path, plot_path, plot_qf, crops_dir,
             **restore_options):
    """Score a model on the paper's test sets; print a markdown table like Tables II/III."""
    from tqdm import tqdm

    from napari_jpeg_restore.engine import Engine

    from . import evaluate as ev

    try:
        options = RestoreOptions(**restore_options).checked()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    root, qualities, rows, hashes, engines = Path(data_root), qf, [], {}, {}
    for colour in (True, False):
        spec = gray_model if (not colour and gray_model) else model
        try:
            net = ev.load_any(spec, colour)
        except (ValueError, OSError) as exc:  # WeightsError, a checkpoint torch cannot read
            raise click.BadParameter(str(exc), param_hint="--gray-model" if spec is gray_model else "--model") from None
        if net is not None:
            engines[colour] = Engine.for_model(net, options)
    names = [n for n in sets.split(",") if n]
    unknown = set(names) - set(ev.SETS)
    if unknown:
        raise click.BadParameter(f"unknown sets: {', '.join(sorted(unknown))}", param_hint="--sets")
    for name in names:
        colour = not ev.SETS[name][2]
        if colour not in engines:
            click.echo(f"{name}: skipped, no {'colour' if colour else 'gray'} model given", err=True)
            continue
        try:
            images = ev.set_images(root, name)
        except FileNotFoundError as exc:
            raise click.BadParameter(f"{exc} (--data-root or $QGCN_DATA says where the sets are)",
                                     param_hint="--data-root") from None
        hashes[name] = ev.inputs_hash(images)
        with tqdm(total=len(images) * len(qualities), desc=name, leave=False) as bar:
            rows += ev.evaluate_set(engines[colour], images, qualities, name, bar.update)
    table = ev.markdown(rows, hashes)
    click.echo(table)
    if md_path:
        Path(md_path).write_text(table)
    curves = {}
    if plot_path:
        images = ev.set_images(root, "live1")
        for label, colour in (("LIVE1 colour", True), ("LIVE1 gray", False)):
            if colour in engines:
                gray = [(n, np.asarray(Image.fromarray(p).convert("L"))) for n, p in images] if not colour else images
                got = ev.evaluate_set(engines[colour], gray, plot_qf, label)
                curves[label] = [(r.qf, r.ours[0] - r.jpeg[0]) for r in got]
        ev.plot(curves, Path(plot_path))
    if crops_dir:
        colour = True in engines
        ev.crops(engines[colour], ev.set_images(root, "live1" if colour else "live1-gray"), 10, Path(crops_dir))
    if json_path:
        from napari_jpeg_restore.device import pick_device, run_precision

        Path(json_path).write_text(json.dumps({
            "model": model, "gray_model": gray_model, "hashes": hashes, "options": asdict(options),
            "precision_run": run_precision(options.precision, pick_device(options.device)),
            "rows": [dict(vars(r), gain_psnr=r.ours[0] - r.jpeg[0]) for r in rows],
            "gain_curves": curves}, indent=1) + "\n")


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--ema", is_flag=True, help="Export the moving average of the weights (a run trained with --ema).")
@click.option("--evaluation", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="evaluate's JSON to store in the record (repeatable: the results are merged).")
@click.option("--data-root", default=str(DATA_ROOT), show_default=True, type=click.Path(file_okay=False),
              help="Where LIVE1 is, for the guard gains CI checks shipped models against.")
def export(checkpoint, out, ema, evaluation, data_root):
    """Write CHECKPOINT as shipped weights: fp16 safetensors + config.json with its record."""
    from .evaluate import merge_results
    from .export import export as run

    try:
        results = merge_results([json.loads(Path(p).read_text()) for p in evaluation]) if evaluation else None
    except (ValueError, KeyError) as exc:
        raise click.ClickException(f"--evaluation {', '.join(evaluation)}: {exc}") from None
    try:
        click.echo(run(checkpoint, out, ema=ema, evaluation=results, data_root=data_root))
    except ValueError as exc:
        raise click.ClickException(f"{checkpoint}: {exc}") from None


@main.command("choose-consistency")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--data-root", default=str(DATA_ROOT), show_default=True, type=click.Path(file_okay=False))
@click.option("--threads", type=int, help="Torch CPU threads.")
def choose_consistency(folder, data_root, threads):
    """Choose the consistency α of exported weights in FOLDER on training-pool images (centre crops
    of set pool-val: never LIVE1 or BSDS500 test) and store it in the record, with the guard gains
    re-measured (the default output changes with it)."""
    from tqdm import tqdm

    from napari_jpeg_restore.weights import load_model, update_record

    from . import evaluate as ev
    from .export import record_guard

    model = load_model(folder, colour=None)
    name = "pool-val" if model.config.colour else "pool-val-gray"
    images = ev.centre_crops(ev.set_images(Path(data_root), name), ev.ALPHA_CROP)
    settings = 1 + len(ev.ALPHA_CANDIDATES)
    with tqdm(total=len(images) * len(ev.ALPHA_QUALITIES) * settings, desc="choose α", leave=False) as bar:
        alpha, table = ev.choose_alpha(model, images, RestoreOptions(threads=threads), progress=bar.update)
    update_record(folder, consistency={"alpha": alpha, "set": f"{name}, centre {ev.ALPHA_CROP}² crops",
                                       "images": len(images), "inputs": ev.inputs_hash(images),
                                       "gain_db_mean_worst": table})
    record_guard(folder, data_root)
    click.echo(json.dumps({"alpha": alpha, "gain_db_mean_worst": table}, indent=1))


@main.command("choose-overlap")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--data-root", default=str(DATA_ROOT), show_default=True, type=click.Path(file_okay=False))
@click.option("--tile", type=int, default=DEFAULTS.tile, show_default=True, help="The tile side to choose it for.")
@click.option("--threads", type=int, help="Torch CPU threads.")
def choose_overlap(folder, data_root, tile, threads):
    """Choose the tile overlap of exported weights in FOLDER: the smallest at which tiled output
    equals the whole image's within a level on training-pool images (centre crops of set pool-val),
    stored in the record with the guard gains re-measured; the engine tiles with it unless told an
    overlap."""
    from tqdm import tqdm

    from napari_jpeg_restore.weights import load_model, update_record

    from . import evaluate as ev
    from .export import record_guard

    model = load_model(folder, colour=None)
    name = "pool-val" if model.config.colour else "pool-val-gray"
    images = ev.centre_crops(ev.set_images(Path(data_root), name), ev.OVERLAP_CROP)
    try:
        options = RestoreOptions(tile=tile, threads=threads)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    with tqdm(total=len(images) * len(ev.OVERLAP_QUALITIES) * len(ev.OVERLAP_CANDIDATES), desc="choose overlap",
              leave=False) as bar:
        overlap, table = ev.choose_overlap(model, images, options, progress=bar.update)
    if overlap is None:
        raise click.ClickException(f"{folder}: no overlap under half the tile ({tile}) keeps tiled output within "
                                   f"{ev.OVERLAP_LEVELS} level of the whole image's {table}; none recorded")
    update_record(folder, tiling={"overlap": overlap, "tile": tile, "set": f"{name}, centre {ev.OVERLAP_CROP}² crops",
                                  "images": len(images), "qualities": list(ev.OVERLAP_QUALITIES),
                                  "precision": "float32", "difference_levels": table})
    record_guard(folder, data_root)
    click.echo(json.dumps({"overlap": overlap, "difference_levels": table}, indent=1))


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--data-root", default=str(DATA_ROOT), show_default=True, type=click.Path(file_okay=False))
def guard(folder, data_root):
    """Measure and record the guard gains of exported weights (e.g. brought back from a GPU)."""
    from .export import record_guard

    gains = record_guard(folder, data_root)
    if gains is None:
        raise click.ClickException(f"{data_root}: LIVE1 not found, nothing measured")
    click.echo(json.dumps(gains, indent=1))


if __name__ == "__main__":
    main()
