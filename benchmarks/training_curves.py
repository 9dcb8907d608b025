"""Held-out validation gain vs CPU-hours from training logs (the preset race and shipped runs).

    python benchmarks/training_curves.py runs/race/tiny runs/race/small ... --plot docs/preset_race.png

Each argument is a run folder with ``log.csv`` (written by ``qgcn-train train``); the label is
the folder name. The gain is validation PSNR minus the JPEG inputs' PSNR (same crops, QF 10, 30,
50, 90). CPU-hours: ``--step-seconds NAME=S`` gives steps × S (S = the run's uncontended s/step
from benchmarks/train_speed.sh), else the process CPU time the log records (``cpu_s``), else
wall-clock seconds × ``--threads`` (which counts time lost to other processes as training).
``--start NAME=H`` shifts a warm-started run by the CPU-hours of its lineage, so a continued model
and one trained from scratch share one axis. ``--ema`` plots the moving average of the weights
(``val_ema_psnr``, runs trained with ``--ema``) instead of the raw weights.
"""

from __future__ import annotations

import csv
from pathlib import Path

import click


def curve(
    run: Path, threads: int, step_seconds: float | None, start_hours: float = 0.0, column: str = "val_psnr"
) -> tuple[list[float], list[float], list[int]]:
    """(CPU-hours, validation gains in dB, steps) of one run folder."""
    hours, gains, steps = [], [], []
    with open(run / "log.csv") as f:
        for row in csv.DictReader(f):
            if step_seconds:
                seconds = int(row["step"]) * step_seconds
            elif row.get("cpu_s"):
                seconds = float(row["cpu_s"])
            else:
                seconds = float(row["elapsed_s"]) * threads
            hours.append(start_hours + seconds / 3600)
            gains.append(float(row[column]) - float(row["val_jpeg_psnr"]))
            steps.append(int(row["step"]))
    return hours, gains, steps


def _by_run(items: tuple[str, ...]) -> dict[str, float]:
    """NAME=VALUE options as {NAME: VALUE}."""
    return {name: float(value) for name, value in (item.split("=", 1) for item in items)}


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--threads", default=1, show_default=True, help="Torch threads of runs whose log has no cpu_s.")
@click.option("--step-seconds", multiple=True, help="NAME=S: count run NAME's CPU time as steps × S seconds.")
@click.option("--start", multiple=True, help="NAME=H: run NAME starts at H CPU-hours (its warm-start lineage).")
@click.option("--ema", is_flag=True, help="Plot val_ema_psnr, the moving average of the weights.")
@click.option("--ymin", type=float, help="Lower end of the gain axis (the first EMA values start far below).")
@click.option("--title", default="Held-out validation gain vs CPU time")
def main(runs, plot_path, threads, step_seconds, start, ema, ymin, title):
    click.echo("| run | CPU-hours | steps | gain at end (dB) | best gain (dB) |")
    click.echo("| --- | --- | --- | --- | --- |")
    per_step, start_hours = _by_run(step_seconds), _by_run(start)
    curves = {}
    for run in runs:
        hours, gains, steps = curves.setdefault(
            run.name, curve(run, threads, per_step.get(run.name), start_hours.get(run.name, 0.0),
                            "val_ema_psnr" if ema else "val_psnr")
        )
        if gains:
            click.echo(f"| {run.name} | {hours[-1]:.2f} | {steps[-1]} | {gains[-1]:+.3f} | {max(gains):+.3f} |")
    if plot_path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
        for name, (hours, gains, _) in curves.items():
            ax.plot(hours, gains, marker=".", label=name)
        ax.set_xlabel("CPU-hours")
        ax.set_ylabel("validation gain over JPEG (dB)")
        if ymin is not None:
            ax.set_ylim(bottom=ymin)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(plot_path)


if __name__ == "__main__":
    main()
