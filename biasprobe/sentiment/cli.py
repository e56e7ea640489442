"""``biasprobe sentiment``: train the study's sentiment classifiers and compare the runs.

Heavy imports (torch, pandas, plotly) happen inside the commands so that ``--help`` is instant.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
from pathlib import Path

import typer

from biasprobe.errors import BiasprobeError

app = typer.Typer(
    name="sentiment",
    help="Train the from-scratch sentiment classifiers of the study and compare the runs.",
    no_args_is_help=True,
    add_completion=False,
)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _fail(e: BiasprobeError) -> typer.Exit:
    typer.echo(f"error: {e.message}", err=True)
    return typer.Exit(e.exit_code)


@app.command()
def train(
    config: Path = typer.Argument(
        ..., help="Training config (YAML), e.g. configs/sentiment/1-gru-encoder.yaml."
    ),
    data: str | None = typer.Option(
        None,
        "--data",
        help="Data source replacing data.source: rotten_tomatoes, amazon_polarity, a folder "
        "with train.csv/test.csv (amazon_review_polarity_csv), or a .csv/.tsv/.jsonl file with "
        "text and label.",
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", min=1, help="Stop after this many optimiser steps."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Run folder (default: runs/sentiment/NAME, NAME from the config)."
    ),
    device: str | None = typer.Option(
        None, "--device", help="auto, cpu, cuda, cuda:N or mps (replaces train.device)."
    ),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="Override a config value, SECTION.KEY=VALUE (repeatable), e.g. --set train.batch_size=32.",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace a previous run in the folder instead of resuming it (only a folder "
        "biasprobe wrote, holding nothing else).",
    ),
    patience: int | None = typer.Option(
        None,
        "--patience",
        min=1,
        help="Early stopping: stop after this many evaluations without a better validation "
        "accuracy (validation is carved from the training data).",
    ),
    augment: str | None = typer.Option(
        None,
        "--augment",
        help="cda or cda:AXIS (e.g. cda:gender): two-sided counterfactual data augmentation of "
        "the training texts.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train one classifier; an interrupted run in the same --out resumes where it stopped.

    Example: biasprobe sentiment train configs/sentiment/1-gru-encoder.yaml --data rotten_tomatoes
    --max-steps 300 --set train.batch_size=32 --out runs/sentiment/1
    """
    from biasprobe.sentiment.cda import parse_augment
    from biasprobe.sentiment.config import apply_overrides, load_config
    from biasprobe.sentiment.train import train as run_training

    previous = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM: checkpoint, as Ctrl-C does
    try:
        if augment is not None:
            parse_augment(augment)
        cfg = load_config(config)
        overrides = list(set_)
        if data is not None:
            overrides.append(f"data.source={data}")
        if max_steps is not None:
            overrides.append(f"train.max_steps={max_steps}")
        if device is not None:
            overrides.append(f"train.device={device}")
        if patience is not None:
            overrides.append(f"train.patience={patience}")
        if augment is not None:
            overrides.append(f"data.augment={augment}")
        if overrides:
            cfg = apply_overrides(cfg, overrides)
            cfg = dataclasses.replace(cfg, path=str(config))
        folder = out if out is not None else Path("runs") / "sentiment" / cfg.name
        summary = run_training(
            cfg,
            folder,
            progress=progress and sys.stderr.isatty(),
            overwrite=overwrite,
        )
    except BiasprobeError as e:
        raise _fail(e) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    acc = summary["best_val_accuracy"]
    typer.echo(
        f"{cfg.name}: {summary['steps']} steps, best validation accuracy {acc:.4f} at step "
        f"{summary['best_step']} ({summary['validation_examples']} validation examples); "
        f"held-out test accuracy {summary['test_accuracy']:.4f} (95% CI "
        f"{summary['test_accuracy_ci_low']:.4f}-{summary['test_accuracy_ci_high']:.4f}, "
        f"n = {summary['test_examples']}), "
        f"train {summary['train_time_s']:.1f} s, eval {summary['eval_time_s']:.1f} s, "
        f"{summary['train_examples_per_s']:.1f} examples/s -> {folder}"
    )


@app.command()
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="Run folders written by 'sentiment train'."),
    out: Path = typer.Option(
        Path("reports/sentiment-study"), "--out", help="Folder for the figures and tables."
    ),
    png: bool = typer.Option(True, "--png/--no-png", help="Also draw the PNG (needs matplotlib)."),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace a previous 'compare' output folder (only one biasprobe wrote).",
    ),
) -> None:
    """Learning curves (HTML, PNG) and the results table (Markdown, CSV, LaTeX) of several runs.

    Example: biasprobe sentiment compare runs/sentiment/* --out reports/sentiment-study
    """
    from biasprobe.sentiment.study import compare as run_compare

    try:
        files = run_compare(list(run_dirs), out, png=png, overwrite=overwrite)
    except BiasprobeError as e:
        raise _fail(e) from None
    for kind, path in files.items():
        typer.echo(f"{kind}: {path}")
