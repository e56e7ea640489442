"""``biasprobe sentiment``: train the study's sentiment classifiers and compare the runs.

Heavy imports (torch, pandas, plotly) happen inside the commands so that ``--help`` is instant.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path
from typing import Any

import typer

from biasprobe.cliutil import safe_text
from biasprobe.errors import BiasprobeError

app = typer.Typer(
    name="sentiment",
    help="Train the from-scratch sentiment classifiers of the study and compare the runs.\n\n"
    "Example: biasprobe sentiment train configs/sentiment/rotten-tomatoes/0-bow.yaml "
    "--out runs/rt/0-bow",
    no_args_is_help=True,
    add_completion=False,
)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _fail(e: BiasprobeError) -> typer.Exit:
    typer.echo(f"error: {e.message}", err=True)
    return typer.Exit(e.exit_code)


def _internal(e: Exception) -> typer.Exit:
    """An unexpected failure in one line, as every biasprobe command reports it
    (``BIASPROBE_DEBUG=1`` re-raises it with its traceback)."""
    if os.environ.get("BIASPROBE_DEBUG"):
        raise e
    if isinstance(e, MemoryError) or "can't allocate memory" in str(e):
        typer.echo(
            f"error: out of memory ({type(e).__name__}); use a smaller model or batch size",
            err=True,
        )
    else:
        typer.echo(
            f"error: internal error ({type(e).__name__}: {safe_text(str(e)[:300])}); please "
            "report it. Set BIASPROBE_DEBUG=1 to see the traceback",
            err=True,
        )
    return typer.Exit(1)


@app.command()
def train(
    config: Path = typer.Argument(
        ...,
        metavar="CONFIG",
        help="Training config (YAML), e.g. configs/sentiment/1-gru-encoder.yaml.",
    ),
    data: str | None = typer.Option(
        None,
        "--data",
        metavar="SOURCE",
        help="Data source replacing data.source: rotten_tomatoes, amazon_polarity, a folder "
        "with train.csv/test.csv (amazon_review_polarity_csv), or a .csv/.tsv/.jsonl file with "
        "text and label.",
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", min=1, metavar="N", help="Stop after this many optimiser steps."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        metavar="DIR",
        help="Run folder (default: runs/sentiment/NAME, NAME from the config).",
    ),
    device: str | None = typer.Option(
        None,
        "--device",
        metavar="DEVICE",
        help="auto, cpu, cuda, cuda:N or mps (replaces train.device).",
    ),
    set_: list[str] = typer.Option(
        [],
        "--set",
        metavar="KEY=VAL",
        help="Override a config value, SECTION.KEY=VALUE (repeatable), e.g. --set train.batch_size=32.",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        metavar="",
        help="Replace a previous run in the folder instead of resuming it (only a folder "
        "biasprobe wrote, holding nothing else).",
    ),
    patience: int | None = typer.Option(
        None,
        "--patience",
        min=1,
        metavar="N",
        help="Early stopping: stop after this many evaluations without a better validation "
        "accuracy (validation is carved from the training data).",
    ),
    augment: str | None = typer.Option(
        None,
        "--augment",
        metavar="CDA",
        help="cda or cda:AXIS (e.g. cda:gender): two-sided counterfactual data augmentation of "
        "the training texts.",
    ),
    progress: bool = typer.Option(
        True, "--progress/--no-progress", metavar="", help="Show a progress bar."
    ),
) -> None:
    """Train one classifier; an interrupted run in the same --out resumes where it stopped.

    Example: biasprobe sentiment train configs/sentiment/1-gru-encoder.yaml --data rotten_tomatoes
    --max-steps 300 --set train.batch_size=32 --out runs/sentiment/1
    """
    from biasprobe.sentiment.cda import parse_augment
    from biasprobe.sentiment.train import train as run_training

    previous = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM: checkpoint, as Ctrl-C does
    try:
        if augment is not None:
            parse_augment(augment)
        options = {"data.source": data, "train.max_steps": max_steps, "train.device": device}
        options.update({"train.patience": patience, "data.augment": augment})
        cfg = _load_config(config, set_, options)
        folder = out if out is not None else Path("runs") / "sentiment" / cfg.name
        shown: Any = progress and sys.stderr.isatty()  # the live bar on a terminal
        if progress and not shown:  # a log file or a batch job: plain lines with rate and ETA
            from biasprobe.cliutil import PlainProgress

            shown = PlainProgress()
        summary = run_training(cfg, folder, progress=shown, overwrite=overwrite)
    except BiasprobeError as e:
        raise _fail(e) from None
    except Exception as e:
        raise _internal(e) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if summary.get("already_finished"):
        typer.echo(_finished_line(cfg.name, summary, folder))
        return
    typer.echo(_summary_line(cfg.name, summary, folder))


def _finished_line(name: str, summary: dict[str, Any], folder: Path) -> str:
    """What a re-run of a finished run says: nothing was trained, where the results are."""
    acc = summary.get("test_accuracy")
    shown = "" if acc is None else f", held-out test accuracy {acc:.4f}"
    return (
        f"{name}: already finished in {folder} ({summary.get('steps')} steps{shown}); nothing "
        f"was trained. Its summary: {folder / 'summary.json'}. A larger --max-steps continues "
        "it; --overwrite trains it again"
    )


def _load_config(config: Path, set_: list[str], options: dict[str, Any]) -> Any:
    """The config file with the ``--set`` overrides, then the options given (not None)."""
    from biasprobe.sentiment.config import apply_overrides, load_config

    cfg = load_config(config)
    overrides = [*set_, *(f"{key}={value}" for key, value in options.items() if value is not None)]
    if overrides:
        cfg = apply_overrides(cfg, overrides)
        cfg = dataclasses.replace(cfg, path=str(config))
    return cfg


def _summary_line(name: str, summary: dict[str, Any], folder: Path) -> str:
    acc = summary["best_val_accuracy"]
    return (
        f"{name}: {summary['steps']} steps, best validation accuracy {acc:.4f} at step "
        f"{summary['best_step']} ({summary['validation_examples']} validation examples); "
        f"held-out test accuracy {summary['test_accuracy']:.4f} (95% CI "
        f"{summary['test_accuracy_ci_low']:.4f}-{summary['test_accuracy_ci_high']:.4f}, "
        f"n = {summary['test_examples']}), "
        f"train {summary['train_time_s']:.1f} s, eval {summary['eval_time_s']:.1f} s, "
        f"{summary['train_examples_per_s']:.1f} examples/s -> {folder}"
    )


@app.command()
def compare(
    run_dirs: list[Path] = typer.Argument(
        ..., metavar="RUN_DIR...", help="Run folders written by 'sentiment train'."
    ),
    out: Path = typer.Option(
        Path("reports/sentiment-study"),
        "--out",
        metavar="DIR",
        help="Folder for the figures and tables.",
    ),
    png: bool = typer.Option(
        True, "--png/--no-png", metavar="", help="Also draw the PNG (needs matplotlib)."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        metavar="",
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
    import pandas as pd
    from rich.console import Console

    console = Console(highlight=False)
    print_results(pd.read_csv(files["csv"]), console)
    names = ", ".join(f"{path.name} ({kind})" for kind, path in files.items())
    console.print(f"wrote {safe_text(out)}: {safe_text(names)}", markup=False, overflow="fold")


def print_results(frame: Any, console: Any = None) -> None:
    """The results table of ``compare`` on the terminal, in 80 columns: the main columns of
    results.csv (results.md has them all, with the legend)."""
    import math

    from rich.console import Console
    from rich.table import Table

    from biasprobe.cliutil import markup

    console = console or Console(highlight=False)

    def f(x: Any, spec: str = ".3f") -> str:
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)

    table = Table(
        title="Sentiment runs (* best validation accuracy; † stopped at max_steps)",
        title_justify="left",
        caption="All columns and the legend: results.md; every value: results.csv.",
        caption_justify="left",
    )
    table.add_column("exp", justify="right", no_wrap=True)
    table.add_column("model", overflow="fold")
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column("best val (step)", justify="right", no_wrap=True)
    table.add_column("test acc [95% CI]", justify="right", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    twice = {n for n in frame["name"] if list(frame["name"]).count(n) > 1}
    for r in frame.itertuples(index=False):
        name = markup(r.name) + (f" ({markup(Path(r.run_dir).name)})" if r.name in twice else "")
        name += " †" if bool(r.stopped_early) else ""
        best = f"{f(r.best_val_accuracy)} ({int(r.best_step)})" + (" *" if r.is_best else "")
        test = f"{f(r.test_accuracy)} [{f(r.test_accuracy_ci_low)}, {f(r.test_accuracy_ci_high)}]"
        n = "–" if r.test_examples != r.test_examples else f"{int(r.test_examples):,}"
        table.add_row(str(r.experiment), name, f"{int(r.steps):,}", best, test, n)
    console.print(table)
