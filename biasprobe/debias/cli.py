"""``biasprobe debias``: the command (parse, call :func:`biasprobe.debias.train.debias`, print).

Heavy imports (torch, transformers) happen inside the command so that ``--help`` is instant.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import typer

from biasprobe.cliutil import user_errors

#: Seconds between plain progress lines when stderr is not a terminal.
PLAIN_PROGRESS_EVERY = 30.0


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def plain_progress(
    every: float = PLAIN_PROGRESS_EVERY, clock: Callable[[], float] = time.monotonic
) -> Callable[[int, int, float], None]:
    """A callback printing ``step N/TOTAL (P%) loss L · S s/step · ETA T`` to stderr at most
    every ``every`` seconds (and at the last step)."""
    started = clock()
    state = {"last": started, "first": None}

    def update(step: int, total: int, loss: float) -> None:
        now = clock()
        if state["first"] is None:
            state["first"] = step - 1  # resumed runs start past 0
        if step < total and now - state["last"] < every:
            return
        state["last"] = now
        done = step - state["first"]
        rate = (now - started) / max(done, 1)
        typer.echo(
            f"debias: step {step}/{total} ({100 * step / total:.0f}%) loss {loss:.4f} · "
            f"{rate:.2f} s/step · ETA {_duration(rate * (total - step))}",
            err=True,
        )

    return update


def _tty_progress(total_label: str):
    """A rich bar with ETA on a terminal, else None."""
    from biasprobe.cliutil import progress_printer

    bar, update = progress_printer(False, lambda *k: total_label)
    if bar is None:
        return None, None
    return bar, lambda step, total, loss: update("train", step, total)


@user_errors
def debias_command(
    method: str = typer.Option(
        ..., "--method", metavar="METHOD", help="cda, dropout, or none (the control)."
    ),
    model: str = typer.Option(
        ..., "--model", "-m", metavar="BASE", help="Base masked LM: hub id or local folder."
    ),
    corpus: str = typer.Option(
        ..., "--corpus", metavar="FILE_OR_DIR", help="A UTF-8 text file or a folder of .txt files."
    ),
    out: str = typer.Option(..., "--out", metavar="DIR", help="Output checkpoint folder."),
    axis: str = typer.Option(
        "gender",
        "--axis",
        metavar="AXIS",
        help="CDA word list biasprobe/data/cda/AXIS.tsv (shipped: gender, race, religion).",
    ),
    word_list: str | None = typer.Option(
        None, "--word-list", metavar="TSV", help="A word-pair file replacing the axis's list."
    ),
    neutral: str = typer.Option(
        "keep",
        "--neutral",
        metavar="keep|drop",
        help="CDA: keep sentences without attribute words (default) or drop them (bias-bench).",
    ),
    steps: int = typer.Option(1000, "--steps", metavar="N", help="Optimizer steps."),
    lr: float = typer.Option(5e-5, "--lr", metavar="LR", help="Peak learning rate."),
    batch_size: int = typer.Option(16, "--batch-size", metavar="N", help="Sentences per step."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Seeds batch order, masks, dropout."),
    max_length: int = typer.Option(128, "--max-length", metavar="N", help="Tokens per sentence."),
    warmup: float = typer.Option(0.1, "--warmup", metavar="F", help="Warm-up fraction of steps."),
    attention_dropout: float = typer.Option(
        0.15, "--attention-dropout", metavar="P", help="Dropout recipe: attention dropout."
    ),
    hidden_dropout: float = typer.Option(
        0.20, "--hidden-dropout", metavar="P", help="Dropout recipe: hidden dropout."
    ),
    checkpoint_every: int = typer.Option(
        200, "--checkpoint-every", metavar="N", help="Steps between resume checkpoints."
    ),
    revision: str | None = typer.Option(None, "--revision", metavar="REV", help="Hub revision."),
    device: str | None = typer.Option(
        None, "--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:N or mps."
    ),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow custom model code from the model repository."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an output folder biasprobe debias wrote."
    ),
    restart: bool = typer.Option(
        False, "--restart", help="Discard an unfinished run of another job in DIR.resume."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Make a debiased twin of a masked LM by continued masked-LM training (CDA or dropout).

    An interrupted run (Ctrl-C, kill -9) resumes from its last checkpoint (DIR.resume) when the
    same command is run again, and ends with the same weights.

    Example: biasprobe debias --method cda --model bert-base-uncased --corpus wiki.txt
    --out models/bert-cda --steps 2000
    """
    from biasprobe.debias.train import DebiasConfig, debias

    cfg = DebiasConfig(
        method=method,
        model=model,
        corpus=corpus,
        out=out,
        axis=axis,
        word_list=word_list,
        neutral=neutral,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        max_length=max_length,
        warmup=warmup,
        attention_dropout=attention_dropout,
        hidden_dropout=hidden_dropout,
        revision=revision,
        trust_remote_code=trust_remote_code,
        checkpoint_every=checkpoint_every,
        overwrite=overwrite,
        device=device,
    )
    cfg.check()
    bar, progress = (None, None) if quiet else _tty_progress(f"debias {method}")
    if not quiet and progress is None:
        progress = plain_progress()
    if bar is not None:
        with bar:
            result = debias(cfg, progress=progress, restart=restart)
    else:
        result = debias(cfg, progress=progress, restart=restart)
    resumed = f" (resumed at step {result.resumed_from})" if result.resumed_from else ""
    typer.echo(
        f"wrote {result.out}: {method}, {result.steps} steps{resumed}, "
        f"final MLM loss {result.final_loss:.4f}"
    )
    sys.stdout.flush()
