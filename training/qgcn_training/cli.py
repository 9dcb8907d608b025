"""``qgcn-train``: train, evaluate and export QGCN-family models."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from .data import JpegVariety


@click.group()
def main():
    """Train, evaluate and export JPEG artifact removal models (QGCN paper, section IV)."""


@main.command()
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="Training image folder (repeatable). The first one's last --holdout images validate.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder: checkpoint.pt, log.csv.")
@click.option("--preset", default="small", show_default=True)
@click.option("--variant", default="qgcn", type=click.Choice(["qgcn", "qcn", "edsr", "arcnn"]), show_default=True)
@click.option("--gray", is_flag=True, help="Grayscale model (Y + 1 map).")
@click.option("--steps", type=int, help="Stop after this many steps in all.")
@click.option("--minutes", type=float, help="Stop after this much training time in all.")
@click.option("--batch", default=16, show_default=True)
@click.option("--patch", default=64, show_default=True, help="Patch side: 64, then 256 to fine-tune.")
@click.option("--lr", default=5e-4, show_default=True)
@click.option("--lr-step", default=20000, show_default=True, help="Multiply lr by --lr-gamma every N steps.")
@click.option("--lr-gamma", default=0.1, show_default=True)
@click.option("--init", default="default", type=click.Choice(["default", "gaussian"]), show_default=True)
@click.option("--skip-global", is_flag=True, help="QGCN: leave the global branch out (the 64x64 stage).")
@click.option("--paper", is_flag=True, help="The paper's JPEG setting: IJG tables, QF 1..60, 4:2:0 only.")
@click.option("--double-share", type=float, help="Share of double-compressed patches.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", help="cpu, cuda, cuda:1, mps (default: the best available).")
@click.option("--threads", type=int, help="Torch CPU threads.")
@click.option("--holdout", default=3, show_default=True)
@click.option("--val-every", default=250, show_default=True)
@click.option("--checkpoint-minutes", default=5.0, show_default=True)
@click.option("--init-from", help="Warm start from shipped weights (a name or an exported folder).")
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where it stopped.")
def train(resume, paper, double_share, **opts):
    """Train a model; Ctrl-C or SIGTERM ends after a checkpoint."""
    from .train import TrainSettings, train as run

    variety = asdict(JpegVariety.paper() if paper else JpegVariety())
    if double_share is not None:
        variety["double_share"] = double_share
    opts["data"] = list(opts["data"])
    click.echo(run(TrainSettings(**opts, variety=variety), resume=resume))


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--evaluation", type=click.Path(exists=True, dir_okay=False), help="evaluate's JSON to store in the record.")
def export(checkpoint, out, evaluation):
    """Write CHECKPOINT as shipped weights: fp16 safetensors + config.json with its record."""
    from .train import export as run

    click.echo(run(checkpoint, out, evaluation=json.loads(open(evaluation).read()) if evaluation else None))


if __name__ == "__main__":
    main()
