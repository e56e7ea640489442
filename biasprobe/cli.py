"""The ``biasprobe`` command line.

Thin layer over the Python API: parses options, shows progress and tables, and turns
:class:`~biasprobe.errors.BiasprobeError` into one ``error: ...`` line and an exit code. Heavy
libraries are imported inside the commands so that ``biasprobe --help`` stays instant.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from biasprobe import __version__

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="biasprobe",
    help="Audit social bias in masked language models with paired fill-mask probes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def user_errors(fn: F) -> F:
    """Report :class:`BiasprobeError` (and Ctrl-C) as one message and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from biasprobe.errors import BiasprobeError

        try:
            return fn(*args, **kwargs)
        except BiasprobeError as e:
            _fail(e.message, e.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted (files are written atomically: nothing is left half-written)", 130)
        except typer.Exit:
            raise
        except Exception as e:  # a bug: say so in one line; BIASPROBE_DEBUG=1 shows it all
            import os

            if os.environ.get("BIASPROBE_DEBUG"):
                raise
            _fail(
                f"internal error ({type(e).__name__}: {e}); please report it. Set "
                "BIASPROBE_DEBUG=1 to see the traceback",
                1,
            )

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"biasprobe {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Audit social bias in masked language models with paired fill-mask probes.

    Example: biasprobe run probes/gender.yaml --model bert-base-uncased
    """


# ---------------------------------------------------------------------------------------------
# validate


@app.command()
@user_errors
def validate(
    files: Annotated[list[Path], typer.Argument(help="Probe-set YAML files.", show_default=False)],
) -> None:
    """Check probe-set files without loading any model.

    Prints each file's pairs and expansions, or every problem found (file:line: message).

    Example: biasprobe validate probes/*.yaml
    """
    from biasprobe.errors import ProbeSetError
    from biasprobe.probes import load_probe_set

    failed = 0
    for f in files:
        try:
            ps = load_probe_set(f)
        except ProbeSetError as e:
            failed += 1
            typer.echo(f"error: {e.message}", err=True)
            continue
        templates = len({it.template_id for it in ps.items})
        pairs = len(ps.items)
        typer.echo(
            f"{f}: ok — {ps.name} v{ps.version}, {_plural(templates, 'template')}, "
            f"{_plural(pairs, 'pair')}"
        )
    if failed:
        raise typer.Exit(2)


# ---------------------------------------------------------------------------------------------
# run


def _progress_printer(quiet: bool) -> tuple[Any, Callable[..., None] | None]:
    if quiet:
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        return None, None
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def update(model: str, stage: str, done: int, total: int) -> None:
        key = f"{model}:{stage}"
        label = f"loading {model}" if stage == "load" else f"scoring {model}"
        if key not in tasks:
            tasks[key] = progress.add_task(label, total=total)
        progress.update(tasks[key], completed=done, total=total)

    return progress, update


def print_topk_tables(result: Any, limit: int | None = None, rows: int = 5) -> None:
    """Print, per pair and model, both sides' top tokens side by side (like fill-mask output)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    topk = result.topk
    shown = 0
    for (model, pair_id), sub in topk.groupby(["model", "pair_id"], sort=False):
        if limit is not None and shown >= limit:
            remaining = topk.groupby(["model", "pair_id"]).ngroups - shown
            console.print(f"… {remaining} more pairs in topk.csv")
            break
        shown += 1
        a = sub[sub.side == "A"].sort_values("rank").head(rows)
        b = sub[sub.side == "B"].sort_values("rank").head(rows)
        table = Table(
            title=f"{escape(str(pair_id))}  [dim]({escape(str(model))})[/dim]",
            title_justify="left",
        )
        table.add_column("#", justify="right", style="dim")
        for part, label in ((a, "A"), (b, "B")):
            group = part["group"].iloc[0]
            role = part["role"].iloc[0]
            table.add_column(
                f"{escape(str(part['sentence'].iloc[0]))}\n"
                f"[dim]{label}: {escape(str(group))} ({role})[/dim]",
                overflow="fold",
            )
        for r in range(max(len(a), len(b))):
            cells = [str(r + 1)]
            for part in (a, b):
                if r < len(part):
                    row = part.iloc[r]
                    cells.append(f"{escape(str(row['token']))}  [dim]{row['logprob']:.2f}[/dim]")
                else:
                    cells.append("")
            table.add_row(*cells)
        console.print(table)


def print_summary(result: Any) -> None:
    """Print the set-level skew scores per model with their confidence intervals."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    s = result.summary
    s = s[s.level == "set"]
    if s.empty:
        return
    table = Table(title="Skew over the probe set (mean [95% CI])", title_justify="left")
    table.add_column("model")
    scores = list(dict.fromkeys(s["score"]))
    for name in scores:
        table.add_column(name, justify="right")
    for model, sub in s.groupby("model", sort=False):
        cells = [escape(str(model))]
        for name in scores:
            r = sub[sub.score == name]
            if r.empty:
                cells.append("—")
                continue
            r = r.iloc[0]
            ci = "" if r.ci_low != r.ci_low else f" [{r.ci_low:.3f}, {r.ci_high:.3f}]"
            cells.append(f"{r['mean']:.3f}{ci}")
        table.add_row(*cells)
    Console().print(table)


def _default_out(name: str, run_id: str) -> Path:
    return Path("reports") / f"{name}-{run_id}"


@app.command()
@user_errors
def run(
    probe_file: Annotated[Path, typer.Argument(help="Probe-set YAML file.", show_default=False)],
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Model: hub id (NAME or NAME@REVISION), local checkpoint folder, or "
            "recorded:DIR. Repeat for several (the first is the base). Default: the probe "
            "file's models.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Run folder to write. Default: reports/<set>-<run id>."),
    ] = None,
    top_k: Annotated[
        int | None,
        typer.Option("--top-k", "-k", min=1, help="Top-k depth (default: file, else 10)."),
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto (CUDA if present), cpu, cuda, cuda:N or mps.")
    ] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Sentences per forward pass.")] = 32,
    revision: Annotated[
        str | None, typer.Option(help="Hub revision (branch, tag, commit) for hub models.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for torch and the bootstrap.")] = 0,
    bootstrap: Annotated[
        int, typer.Option(min=100, help="Bootstrap resamples for confidence intervals.")
    ] = 2000,
    pairs: Annotated[
        list[str] | None,
        typer.Option("--pairs", "-p", help="Only pairs whose id matches this glob (repeatable)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", "-x", help="Skip pairs whose id matches this glob (repeatable)."),
    ] = None,
    html: Annotated[
        bool,
        typer.Option("--html", help="Also write the interactive report.html in the run folder."),
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run folder.")] = False,
    show: Annotated[
        int, typer.Option(help="How many pairs to print as tables (0: none).", min=0)
    ] = 20,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or tables.")
    ] = False,
    trust_remote_code: Annotated[
        bool,
        typer.Option(help="Allow custom model code from model repositories (off by default)."),
    ] = False,
) -> None:
    """Run a probe set on masked language models and write a run folder.

    Writes topk.csv, scores.csv, summary.csv, targets.csv, items.csv, the full-vocabulary
    log-probs (logprobs/*.npz) and results.json (provenance) — atomically.

    Example: biasprobe run probes/gender.yaml -m bert-base-uncased -m ./zari-bert-cda --html
    """
    from biasprobe.probes import load_probe_set
    from biasprobe.runner import run as run_probes

    probe_set = load_probe_set(probe_file)
    if out is not None:
        from biasprobe.results import check_output_folder

        check_output_folder(out, overwrite)
    progress, update = _progress_printer(quiet)
    if progress is not None:
        progress.start()
    try:
        result = run_probes(
            probe_set,
            model or None,
            top_k=top_k,
            device=device,
            batch_size=batch_size,
            revision=revision,
            seed=seed,
            n_bootstrap=bootstrap,
            pairs=pairs,
            exclude=exclude,
            trust_remote_code=trust_remote_code,
            progress=update,
        )
    finally:
        if progress is not None:
            progress.stop()
    target = out if out is not None else _default_out(probe_set.name, result.meta["run_id"])
    if html:
        from biasprobe.report import write_report

        saved = _save_with_report(result, target, overwrite, write_report)
    else:
        saved = result.save(target, overwrite=overwrite)
    if not quiet and show:
        print_topk_tables(result, limit=show)
        print_summary(result)
    typer.echo(f"wrote {saved}" + (f" (report: {saved / 'report.html'})" if html else ""))


def _save_with_report(result: Any, target: Path, overwrite: bool, write_report: Any) -> Path:
    """Save the run folder with its report.html inside: both appear together or neither."""
    from biasprobe.results import check_output_folder, replace_dir, staging_dir

    check_output_folder(target, overwrite)
    with staging_dir(target) as tmp:
        inner = result.save(tmp / "run")
        write_report([result], inner / "report.html")
        replace_dir(inner, target)
    return target


# ---------------------------------------------------------------------------------------------
# record


@app.command()
@user_errors
def record(
    source: Annotated[
        Path, typer.Argument(help="A probe file (runs the model) or a run folder (reuses it).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Recorded-model folder to create.")],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="The model (needed when there are several)."),
    ] = None,
    pairs: Annotated[
        list[str] | None, typer.Option("--pairs", "-p", help="Only pairs matching this glob.")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", "-x", help="Skip pairs matching this glob.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Sentences per forward pass.")] = 32,
    revision: Annotated[str | None, typer.Option(help="Hub revision for a hub model.")] = None,
    trust_remote_code: Annotated[
        bool, typer.Option(help="Allow custom model code from the model repository.")
    ] = False,
) -> None:
    """Record a model's outputs at the mask so runs can be replayed without it.

    From a probe file, the model scores every sentence of the set (e.g. once on a GPU box);
    from a run folder, its stored full-vocabulary log-probs are reused. Replay with
    --model recorded:DIR.

    Example: biasprobe record probes/gender.yaml -m bert-base-uncased -o recordings/bert-base
    """
    from biasprobe.backends.recorded import write_recorded
    from biasprobe.errors import UsageError

    if (source / "results.json").is_file():
        from biasprobe.results import load_run

        result = load_run(source)
        names = result.models
        if model is None and len(names) != 1:
            raise UsageError(
                f"{source} holds {len(names)} models; choose one with --model: {names}"
            )
        name = model or names[0]
        if name not in result.logprobs:
            raise UsageError(f"{source} has no model {name!r}; it has {names}")
        table = result.logprobs[name]
        card = next(m for m in result.meta["models"] if m["name"] == name)
        written = write_recorded(
            out,
            model=name,
            sentences=table.sentences,
            logprobs=table.logprobs,
            vocab=table.vocab,
            mask_token=card["mask_token"],
            source=f"biasprobe run {result.meta.get('run_id')} ({source})",
        )
        typer.echo(f"wrote {written} ({len(table.sentences)} sentences of {name})")
        return

    from biasprobe.backends import load_backend
    from biasprobe.probes import MASK, load_probe_set
    from biasprobe.runner import select_items

    probe_set = load_probe_set(source)
    models = [model] if model else list(probe_set.models)
    if len(models) != 1:
        raise UsageError(
            f"record needs exactly one model; pass --model (the probe file lists {models})"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} already exists; choose a new folder for the recording")
    items = select_items(probe_set.items, pairs, exclude)
    backend = load_backend(
        models[0],
        device=device,
        revision=revision,
        batch_size=batch_size,
        trust_remote_code=trust_remote_code,
    )
    sentences = list(
        dict.fromkeys(s.replace(MASK, backend.mask_token) for it in items for s in it.sentences)
    )
    logprobs = backend.mask_logprobs(sentences)
    info = backend.info
    written = write_recorded(
        out,
        model=models[0],
        sentences=sentences,
        logprobs=logprobs,
        vocab=backend.vocab,
        mask_token=backend.mask_token,
        source=(
            f"biasprobe record of {models[0]} (commit {info.get('commit_hash') or 'n/a'}, "
            f"path {info.get('path')}) on {probe_set.path}"
        ),
        hf_tokenizer=getattr(backend, "tokenizer", None),
    )
    typer.echo(f"wrote {written} ({len(sentences)} sentences of {models[0]})")


# ---------------------------------------------------------------------------------------------
# report


@app.command()
@user_errors
def report(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Run folders (the first model of the first is the base).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="HTML file to write. Default: reports/<set>-<run id>.html."
        ),
    ] = None,
    title: Annotated[str | None, typer.Option(help="Title of the report.")] = None,
    top_n: Annotated[
        int, typer.Option(help="Tokens per side shown in the scatters at first (30, 200, 1000).")
    ] = 200,
    figures: Annotated[
        str | None,
        typer.Option(help="Also export every figure as static png or svg, beside the HTML."),
    ] = None,
) -> None:
    """Write the interactive HTML report of one or more run folders.

    Self-contained (opens offline): scatter of log p under side A against side B per pair and
    model, differences view, top-k lists, skew scores with confidence intervals, and model
    comparison.

    Example: biasprobe report reports/pair-names-20261126-101500-ab12cd
    """
    from biasprobe.errors import UsageError
    from biasprobe.report import export_figures, write_report
    from biasprobe.results import load_run

    if figures not in (None, "png", "svg"):
        raise UsageError(f"--figures must be png or svg, got {figures!r}")
    runs = [load_run(d) for d in run_dirs]
    first = runs[0].meta
    target = out or Path("reports") / f"{first['probe_set']['name']}-{first['run_id']}.html"
    path = write_report(runs, target, title=title, top_n_default=top_n)
    typer.echo(f"wrote {path}")
    if figures:
        written = export_figures(runs, target.with_name(target.stem + "-figures"), fmt=figures)
        typer.echo(f"wrote {len(written)} {figures} figures to {target.stem}-figures/")


def _mount_sentiment() -> None:
    from biasprobe.sentiment.cli import app as sentiment_app

    app.add_typer(sentiment_app, name="sentiment")


_mount_sentiment()


def main() -> None:
    """Entry point of the ``biasprobe`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
