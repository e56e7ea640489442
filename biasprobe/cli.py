"""The ``biasprobe`` command line.

Thin layer over the Python API: parses options, shows progress and tables, and turns
:class:`~biasprobe.errors.BiasprobeError` into one ``error: ...`` line and an exit code. Heavy
libraries are imported inside the commands so that ``biasprobe --help`` stays instant.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from biasprobe.cliutil import (
    CacheOption,
    DeviceOption,
    EngineOption,
    NoCacheOption,
    QuietOption,
    RayActorsOption,
    RayAddressOption,
    RayCpusOption,
    RayGpusOption,
    RayObjectStoreOption,
    RevisionOption,
    Terminated,
    TrustRemoteCodeOption,
    engine_keywords,
    out_option,
    resume_hint,
    safe_text,
    user_errors,
)
from biasprobe.version import __version__

__all__ = ["Terminated", "app", "main", "safe_text", "user_errors"]

app = typer.Typer(
    name="biasprobe",
    help="Audit social bias in masked language models with paired fill-mask probes.\n\n"
    "The shipped probe sets run by name (biasprobe list shows them); every command has --help "
    "with an example.\n\n"
    "Example: biasprobe run pair-names -m recorded:bert-large-uncased-whole-word-masking --html",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


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

    The shipped probe sets run by name (biasprobe list shows them); every command has
    --help with an example.

    Example: biasprobe run pair-names -m recorded:bert-large-uncased-whole-word-masking --html
    """


# ---------------------------------------------------------------------------------------------
# validate


@app.command()
@user_errors
def validate(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Probe-set YAML files, or names of shipped sets (biasprobe list).",
            show_default=False,
            metavar="FILE...",
        ),
    ],
    list_pairs: Annotated[
        bool,
        typer.Option(
            "--list",
            "-l",
            metavar="",
            help="Also print every pair: its groups and its two sentences.",
        ),
    ] = False,
) -> None:
    """Check probe-set files without loading any model.

    Prints one line per file (its name, version, templates and pairs) or every problem found
    (file:line: message); with --list, also every expanded pair with its groups (the
    minoritized side marked *) and its two sentences.

    Example: biasprobe validate my-set.yaml gender --list
    """
    failed = sum(not _validate_one(f, list_pairs) for f in files)
    if failed:
        raise typer.Exit(2)


def _validate_one(path: Path, list_pairs: bool = False) -> bool:
    """Check one probe file and print the outcome; any failure is reported, never raised, so
    that every file given is checked."""
    from biasprobe.catalog import resolve_probe_file
    from biasprobe.errors import BiasprobeError
    from biasprobe.probes import load_probe_set

    try:
        ps = load_probe_set(resolve_probe_file(path))
    except BiasprobeError as e:
        typer.echo(f"error: {safe_text(e.message, keep_newlines=True)}", err=True)
        return False
    except Exception as e:  # a bug in loading: report it and go on with the next file
        if os.environ.get("BIASPROBE_DEBUG"):
            raise
        typer.echo(
            f"error: {safe_text(path)}: internal error ({type(e).__name__}: "
            f"{safe_text(str(e)[:300])}); please report it",
            err=True,
        )
        return False
    templates = len({it.template_id for it in ps.items})
    typer.echo(
        f"{safe_text(path)}: ok — {safe_text(ps.name)} v{safe_text(ps.version)}, "
        f"{_plural(templates, 'template')}, {_plural(len(ps.items), 'pair')}"
    )
    if list_pairs:
        from biasprobe.views.terminal import print_pairs

        print_pairs(ps)
    return True


# ---------------------------------------------------------------------------------------------
# list


@app.command("list")
@user_errors
def list_sets() -> None:
    """List the probe sets shipped with biasprobe, one line each.

    Each line: name, kind, pairs, what it shows and where its words come from. Run one by its
    name (a file of that name in the current folder wins; builtin:NAME always
    means the shipped set).

    Example: biasprobe list
    """
    from biasprobe.catalog import shipped_dir, shipped_sets
    from biasprobe.views.terminal import print_probe_sets

    print_probe_sets(shipped_sets(), shipped_dir())


# ---------------------------------------------------------------------------------------------
# run


def _progress_printer(
    quiet: bool, known: list[str] | None = None
) -> tuple[Any, Callable[..., None] | None]:
    """The progress bar of ``run``: one line per model and stage, the model by its short name
    (``known``: every model name of the run, so that short names stay distinct)."""
    from biasprobe.cliutil import display_names, progress_printer, with_resume_line

    stages = {"load": "load", "score": "masked", "targets": "targets", "priors": "priors"}

    def label(model: str, stage: str) -> str:
        short = display_names([*(known or []), model], width=14)[model]
        return f"{stages.get(stage, stage)} {short}"

    bar, update = progress_printer(quiet, label)
    return bar, with_resume_line(
        bar, update, lambda model: display_names([*(known or []), model], width=48)[model]
    )


#: What ``run --show`` accepts.
SHOW_CHOICES = ("all", "summary", "pairs", "none")


def parse_show(value: str) -> tuple[str, int | None]:
    """``--show``: ``all``, ``summary``, ``pairs`` or ``none``; a number N (the former form)
    means ``all`` with N pair tables (0: the summary only). Returns (what, pair tables or
    None for the default)."""
    text = value.strip().lower()
    if text in SHOW_CHOICES:
        return text, None
    if text.isdigit():
        n = int(text)
        return ("all", n) if n else ("summary", None)
    raise _usage(f"--show must be one of {', '.join(SHOW_CHOICES)} (or a number), got {value!r}")


def _default_out(name: str, run_id: str) -> Path:
    return Path("reports") / f"{name}-{run_id}"


@app.command()
@user_errors
def run(
    probe_file: Annotated[
        Path,
        typer.Argument(
            metavar="PROBE_SET",
            help="Probe-set YAML file, or the name of a shipped set (gender, builtin:gender; "
            "biasprobe list shows them). A file here wins over a shipped name.",
            show_default=False,
        ),
    ],
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            metavar="MODEL",
            help="Model: hub id (NAME or NAME@REVISION), local checkpoint folder, or "
            "recorded:DIR; ALIAS=MODEL names it ALIAS in tables and files. Repeat for several "
            "(the first is the base). Default: the probe file's models.",
        ),
    ] = None,
    out: Annotated[Path | None, out_option("reports/<set>-<run id>")] = None,
    top_k: Annotated[
        int | None,
        typer.Option(
            "--top-k",
            "-k",
            metavar="K",
            help="Top-k depth, at most the vocabulary (default: file, else 10).",
        ),
    ] = None,
    device: DeviceOption = "auto",
    batch_size: Annotated[
        int, typer.Option(metavar="N", help="Sentences per forward pass (≥ 1).")
    ] = 32,
    revision: RevisionOption = None,
    seed: Annotated[
        int, typer.Option(metavar="N", help="Seed for torch and the bootstrap (0…2³²−1).")
    ] = 0,
    bootstrap: Annotated[
        int,
        typer.Option(
            metavar="N", help="Bootstrap resamples for confidence intervals (100…100,000)."
        ),
    ] = 2000,
    pairs: Annotated[
        list[str] | None,
        typer.Option(
            "--pairs",
            "-p",
            metavar="GLOB",
            help="Only pairs whose id matches this glob (repeatable).",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            "-x",
            metavar="GLOB",
            help="Skip pairs whose id matches this glob (repeatable).",
        ),
    ] = None,
    html: Annotated[
        bool,
        typer.Option(
            "--html", metavar="", help="Also write the interactive report.html in the run folder."
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            metavar="",
            help="Replace an existing run folder that biasprobe wrote and that holds nothing "
            "else (never any other folder).",
        ),
    ] = False,
    show: Annotated[
        str,
        typer.Option(
            metavar="WHAT",
            help="What to print: all (pair tables and summary), summary, pairs or none.",
        ),
    ] = "all",
    pair_tables: Annotated[
        int,
        typer.Option(metavar="N", help="At most N per-pair top-k tables (--show all or pairs)."),
    ] = 20,
    quiet: QuietOption = False,
    trust_remote_code: TrustRemoteCodeOption = False,
    tolerance: Annotated[
        float | None,
        typer.Option(
            metavar="T",
            help="Counterfactual sets: |Δ P(pos)| above this is an invariance failure (0…1; "
            "default 0.1).",
        ),
    ] = None,
    positive_label: Annotated[
        str | None,
        typer.Option(
            metavar="LABEL",
            help="Counterfactual sets: the classifier label that means positive, when its "
            "config's id2label does not say.",
        ),
    ] = None,
    valence: Annotated[
        bool,
        typer.Option(
            "--valence",
            metavar="",
            help="Fill-mask sets: also score the valence of the completions (VADER lexicon; "
            "needs pip install 'biasprobe\\[valence]').",
        ),
    ] = False,
    cache: CacheOption = None,
    no_cache: NoCacheOption = False,
    store: Annotated[
        str,
        typer.Option(
            "--store",
            metavar="topn|full",
            help="Fill-mask sets: what the run folder keeps of each sentence's log-probs: "
            "topn (per pair, the union of both sides' top --store-top-n tokens, a few KB) or "
            "full (every full-vocabulary vector, 122 KB per sentence at BERT's vocabulary). "
            "Scores are the same either way.",
        ),
    ] = "topn",
    store_top_n: Annotated[
        int | None,
        typer.Option(
            "--store-top-n",
            metavar="N",
            help="N of --store topn (default 1000).",
            show_default=False,
        ),
    ] = None,
    engine: EngineOption = "local",
    ray_actors: RayActorsOption = None,
    ray_cpus: RayCpusOption = None,
    ray_gpus: RayGpusOption = None,
    ray_address: RayAddressOption = None,
    ray_object_store_mb: RayObjectStoreOption = None,
) -> None:
    """Run a probe set and write a run folder.

    A fill-mask set runs on masked language models (the fill: the distribution
    at [MASK]) and causal ones (the next token after the text before [MASK]),
    and writes topk.csv, scores.csv, summary.csv, targets.csv, items.csv, the full-vocabulary
    log-probs (logprobs/, see --store) and results.json (provenance). A counterfactual
    set (kind: counterfactual) runs on sentiment classifiers (biasprobe
    sentiment run folders or Hugging Face sequence classifiers) and writes
    downstream.csv, scores.csv, summary.csv, items.csv and results.json.
    Atomically.

    Example: biasprobe run gender -m base=bert-large-uncased
    -m cda=./zari-bert-cda --html
    """
    from biasprobe.catalog import resolve_probe_file
    from biasprobe.probes import load_probe_set
    from biasprobe.runner import check_options

    engine_kw = engine_keywords(dict(locals()))  # --engine and --ray-*, checked
    check_options(top_k=top_k, batch_size=batch_size, seed=seed, n_bootstrap=bootstrap)
    what, tables = parse_show(show)
    if pair_tables < 0:
        raise _usage(f"--pair-tables must be 0 or more, got {pair_tables}")
    shown = (what, pair_tables if tables is None else tables)
    if cache is not None and no_cache:
        raise _usage("--cache and --no-cache exclude each other: give one")
    from biasprobe.results import DEFAULT_STORE_TOP_N
    from biasprobe.runner import check_store

    if store_top_n is not None and store == "full":
        raise _usage("--store-top-n applies to --store topn; --store full keeps every token")
    given_top_n = store_top_n
    store_top_n = DEFAULT_STORE_TOP_N if store_top_n is None else store_top_n
    check_store(store, store_top_n)
    probe_set = load_probe_set(resolve_probe_file(probe_file))
    if probe_set.kind == "counterfactual":
        if valence:
            raise _usage("--valence applies to fill-mask sets; this is a counterfactual set")
        if store != "topn" or given_top_n is not None:
            raise _usage(
                "--store and --store-top-n apply to fill-mask sets; this is a counterfactual set"
            )
        opts = {"out": out, "overwrite": overwrite, "html": html, "quiet": quiet}
        opts.update(device=device, batch_size=batch_size, revision=revision, seed=seed)
        opts.update(n_boot=bootstrap, trust_remote_code=trust_remote_code, pairs=pairs)
        opts.update(exclude=exclude, top_k=top_k, tolerance=0.1 if tolerance is None else tolerance)
        opts["cache"] = False if no_cache else cache
        opts.update(engine_kw)
        with resume_hint(_resumable(model or list(probe_set.models), no_cache)):
            saved = _run_counterfactual(probe_set, model, positive_label=positive_label, **opts)
        shown = f" (report: {saved / 'report.html'})" if html else ""
        typer.echo(f"wrote {safe_text(saved)}{safe_text(shown)}")
        return
    for flag, value in (("--tolerance", tolerance), ("--positive-label", positive_label)):
        if value is not None:
            raise _usage(f"{flag} applies to counterfactual sets; this is a fill-mask set")
    settings = {"top_k": top_k, "device": device, "batch_size": batch_size, "seed": seed}
    settings.update(revision=revision, n_bootstrap=bootstrap, pairs=pairs, exclude=exclude)
    settings.update(trust_remote_code=trust_remote_code, valence=valence)
    settings["cache"] = False if no_cache else cache
    settings.update(store=store, store_top_n=store_top_n, **engine_kw)
    with resume_hint(_resumable(model or list(probe_set.models), no_cache)):
        _run_fill_mask(
            probe_set, model, out, settings, overwrite=overwrite, html=html, quiet=quiet, show=shown
        )


def _resumable(models: list[str], no_cache: bool) -> bool:
    """Whether a run of ``models`` keeps its work in the result cache (a live model, no
    --no-cache): then running the same command again resumes it."""
    from biasprobe.runner import split_alias

    return not no_cache and any(not split_alias(m)[1].startswith("recorded:") for m in models)


def _run_fill_mask(
    probe_set: Any,
    models: list[str] | None,
    out: Path | None,
    settings: dict[str, Any],
    *,
    overwrite: bool,
    html: bool,
    quiet: bool,
    show: tuple[str, int],
) -> None:
    """A fill-mask set on masked LMs: run, save the run folder, print the tables."""
    from biasprobe import fsio
    from biasprobe.runner import run as run_probes

    # Writability (and ownership with --overwrite) is checked before any model runs; the
    # default folder's name is known only after the run, so where it will go is checked.
    if out is not None:
        from biasprobe.runfolders.schema import MANIFEST_KINDS

        fsio.check_output_folder(out, overwrite, kinds=MANIFEST_KINDS)
    else:
        fsio.check_can_create(Path("reports") / probe_set.name, what="the default run folder")
    if settings["valence"]:  # a missing optional package fails before any model is loaded
        from biasprobe.measures import load_resources

        load_resources(["valence"])
    from biasprobe.runner import split_alias

    known = [(a or m) for a, m in map(split_alias, models or probe_set.models)]
    result = _with_progress(
        quiet,
        lambda update: run_probes(probe_set, models or None, progress=update, **settings),
        known,
    )
    target = out if out is not None else _default_out(probe_set.name, result.meta["run_id"])
    saved = result.save(target, overwrite=overwrite, report=_report_writer() if html else None)
    what, tables = show
    from biasprobe.views.terminal import (
        arbitrary_templates,
        model_labels,
        print_models,
        print_summary,
        print_topk_tables,
    )

    if not quiet and what != "none":
        print_models(result)
    if not quiet and what in ("all", "pairs") and tables:
        print_topk_tables(result, limit=tables, arbitrary=arbitrary_templates(probe_set))
    if not quiet and what in ("all", "summary"):
        print_summary(result)
    from biasprobe.cache import cache_dirs, cache_line

    labels = model_labels(result)
    cards = result.meta["models"]
    for card in [] if quiet else cards:  # -q: results.json still says what the cache did
        line = cache_line(card, labels.get(card["name"], card["name"]))
        if line:
            typer.echo(safe_text(line), err=True)
    for folder in [] if quiet else cache_dirs(cards):
        typer.echo(f"cache folder: {safe_text(folder)}", err=True)
    shown = f" (report: {saved / 'report.html'})" if html else ""
    typer.echo(f"wrote {safe_text(saved)}{safe_text(shown)}")


def _run_counterfactual(
    probe_set: Any, models: list[str] | None, *, pairs: Any, exclude: Any, top_k: Any, **opts: Any
) -> Path:
    """A counterfactual set on sentiment classifiers (see biasprobe.downstream)."""
    import dataclasses

    from biasprobe.downstream.cli import run_command
    from biasprobe.runner import select_items

    if not 0 <= opts["tolerance"] <= 1:
        raise _usage(f"--tolerance must be from 0 to 1, got {opts['tolerance']}")
    if top_k is not None:
        raise _usage("--top-k applies to fill-mask sets; this is a counterfactual set")
    models = list(models or probe_set.models)
    if not models:
        raise _usage(f"{probe_set.path}: no classifier given; pass -m/--model")
    from biasprobe.engine import split_alias

    for m in models:  # NAME=MODEL names a classifier as it names a masked LM
        if split_alias(m)[1].startswith("recorded:"):
            raise _usage(
                f"{m}: recorded outputs are of masked language models; a counterfactual set "
                "needs a sentiment classifier"
            )
    if pairs or exclude:
        kept = select_items(probe_set.items, pairs, exclude)
        probe_set = dataclasses.replace(probe_set, items=tuple(kept))
    quiet = opts.pop("quiet")
    progress, update = _progress_printer(quiet)
    if progress is None:
        return run_command(probe_set, models, quiet=quiet, **opts)
    # The live display is stopped before the tables are printed: a rich Console writes past
    # the display's stdout redirection, so a display still running would erase (or redraw
    # over) the last lines printed when it stops.
    progress.start()
    try:
        return run_command(
            probe_set, models, quiet=quiet, progress=update, before_print=progress.stop, **opts
        )
    finally:
        progress.stop()


def _usage(message: str) -> Exception:
    from biasprobe.errors import UsageError

    return UsageError(message)


def _with_progress(quiet: bool, work: Callable[[Any], Any], known: list[str] | None = None) -> Any:
    """Run ``work(progress_callback)`` under a progress bar (none when quiet or not a tty)."""
    progress, update = _progress_printer(quiet, known)
    if progress is None:
        return work(None)
    progress.start()
    try:
        return work(update)
    finally:
        progress.stop()


def _report_writer() -> Callable[[Any, Path], Any]:
    from biasprobe.report import write_report

    return lambda result, path: write_report([result], path)


# ---------------------------------------------------------------------------------------------
# record


@app.command()
@user_errors
def record(
    source: Annotated[
        Path,
        typer.Argument(
            help="A probe file or shipped set name (runs the model), or a run folder (reuses it)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Recorded-model folder to create.")],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="The model (needed when there are several)."),
    ] = None,
    pairs: Annotated[
        list[str] | None,
        typer.Option("--pairs", "-p", metavar="GLOB", help="Only pairs matching this glob."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", "-x", metavar="GLOB", help="Skip pairs matching this glob."),
    ] = None,
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option(help="Sentences per forward pass (≥ 1).")] = 32,
    revision: Annotated[str | None, typer.Option(help="Hub revision for a hub model.")] = None,
    trust_remote_code: Annotated[
        bool, typer.Option(help="Allow custom model code from the model repository.")
    ] = False,
) -> None:
    """Record a model's outputs at the mask so runs can be replayed without it.

    A recording holds everything the probe set asks of the model: outputs at
    the mask, target pieces with chain-rule log-probs, prior log-probs of
    attribute pairs. From a probe file, the model answers them (e.g. once on
    a GPU box; use the same pairs and batch size as the run to reproduce it
    bit for bit); from a run folder, what the run stored is reused. Replay
    it with the model recorded:DIR. Counterfactual (sentiment) sets cannot
    be recorded.

    Example: biasprobe record gender -m bert-base-uncased -o recordings/bert-base
    """
    from biasprobe.catalog import resolve_probe_file
    from biasprobe.runner import record as record_outputs
    from biasprobe.runner import split_alias

    if model is not None:
        alias, spec = split_alias(model)
        if alias is not None:
            raise _usage(
                f"--model {model!r}: record takes the model alone, not ALIAS=MODEL (a recording "
                f"keeps the model's own name; give it as -m {spec} and name it when you replay, "
                f"e.g. -m {alias}=recorded:DIR)"
            )
    opts = {"model": model, "pairs": pairs, "exclude": exclude, "device": device}
    opts.update(batch_size=batch_size, revision=revision, trust_remote_code=trust_remote_code)
    rec = record_outputs(resolve_probe_file(source), out, **opts)
    typer.echo(
        f"wrote {safe_text(rec.folder)} ({rec.n_sentences} sentences, {rec.n_targets} target "
        f"words ({rec.n_multi_piece} of several pieces), {rec.n_priors} prior log-probs; "
        f"model {safe_text(rec.model)})"
    )
    typer.echo(f"replay it with --model recorded:{safe_text(rec.folder)}")


# ---------------------------------------------------------------------------------------------
# report


@app.command()
@user_errors
def report(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN_DIR...", help="Run folders (the first model of the first is the base)."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="HTML file to write. Default: reports/<set>-<run id>.html.",
        ),
    ] = None,
    title: Annotated[str | None, typer.Option(metavar="TEXT", help="Title of the report.")] = None,
    top_n: Annotated[
        int,
        typer.Option(
            metavar="N", help="Tokens per side shown in the scatters at first (30, 200, 1000)."
        ),
    ] = 200,
    pairs: Annotated[
        list[str] | None,
        typer.Option(
            "--pairs",
            metavar="GLOB",
            help="Pairs (glob on the pair id, repeatable) that get the large views (top 1000, "
            "and 'all' when the run stored full vectors) and their full detail tables. "
            "Default: the first pair and the 5 most skewed. Every pair gets the top-200 view.",
        ),
    ] = None,
    figures: Annotated[
        str | None,
        typer.Option(
            metavar="FORMAT",
            help="Also export every figure (scatter, differences view, side-by-side "
            "comparison) as static png, svg or pdf, beside the HTML.",
        ),
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
    from biasprobe.report.dispatch import renderer_for
    from biasprobe.results import load_run
    from biasprobe.runfolder import default_report_path

    if figures not in (None, "png", "svg", "pdf"):
        raise UsageError(f"--figures must be png, svg or pdf, got {figures!r}")
    if top_n < 1:
        raise UsageError(f"--top-n must be at least 1, got {top_n}")
    seen: dict[Path, Path] = {}
    for d in run_dirs:
        if d.resolve() in seen:
            raise UsageError(f"run folder {d} is given twice (as {seen[d.resolve()]})")
        seen[d.resolve()] = d
    # any kind of run folder: the report of their kind (biasprobe.report.dispatch)
    runs = [load_run(d) for d in run_dirs]
    sources = [str(d) for d in run_dirs]
    kind = renderer_for(runs, sources).kind
    if figures and kind != "fill-mask":
        raise UsageError(f"--figures is not available for {kind} runs yet")
    first = next(r for r in runs if r.kind == kind).meta
    name = (first.get("probe_set") or {}).get("name") or kind.split("-")[0]
    target = out or default_report_path(name, first.get("run_id"))
    options = {"pairs": pairs or None}
    if kind == "fill-mask":
        options["top_n_default"] = top_n
    path = write_report(runs, target, title=title, sources=sources, **options)
    typer.echo(f"wrote {safe_text(path)}")
    if figures:
        folder = target.with_name(target.stem + "-figures")
        written = export_figures(runs, folder, fmt=figures)
        typer.echo(f"wrote {len(written)} {figures} figures to {safe_text(folder.resolve())}/")


def _mount_subcommands() -> None:
    from biasprobe.cache_cli import app as cache_app
    from biasprobe.crows.cli import app as crows_app
    from biasprobe.debias.cli import debias_command
    from biasprobe.holistic.cli import app as holistic_app
    from biasprobe.sentiment.cli import app as sentiment_app

    app.add_typer(sentiment_app, name="sentiment")
    app.add_typer(crows_app, name="crows")
    app.add_typer(cache_app, name="cache")
    app.add_typer(holistic_app, name="holistic")
    app.command("debias")(debias_command)


_mount_subcommands()


def main() -> None:
    """Entry point of the ``biasprobe`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
