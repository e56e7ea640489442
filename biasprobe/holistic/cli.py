"""``biasprobe holistic sentences`` writes the expanded HolisticBias sentences to a file;
``biasprobe holistic run`` measures Likelihood Bias with one or more models and writes a run
folder.

Mounted on the main command line with ``app.add_typer(holistic_app, name="holistic")``. pandas,
torch and the models are imported inside the commands, so that ``--help`` stays instant.
"""

from __future__ import annotations

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
    TrustRemoteCodeOption,
    engine_keywords,
    out_option,
    progress_printer,
    resume_hint,
    safe_text,
    user_errors,
    with_resume_line,
)

app = typer.Typer(
    name="holistic",
    help="HolisticBias (Smith et al. 2022): the v1.1 sentences, expanded as the dataset's own "
    "generator expands them, and the paper's Likelihood Bias of any causal or masked LM "
    "(docs/holistic.md).\n\n"
    "Example: biasprobe holistic sentences --out holistic-v1.1.csv\n\n"
    "Example: biasprobe holistic run -m gpt2 --sample 5280 -t 'I love {plural_noun_phrase}.'",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command("sentences")
@user_errors
def sentences_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="File to write: FILE.csv, or FILE.parquet (needs the parquet extra: "
            "pip install 'biasprobe[parquet]'). An existing file is never replaced.",
            show_default=False,
        ),
    ],
    version: Annotated[
        str, typer.Option("--version", metavar="VERSION", help="Dataset version.")
    ] = "v1.1",
) -> None:
    """Write every HolisticBias sentence with its metadata (566,625 rows for v1.1; columns text,
    axis, bucket, descriptor, descriptor_gender, descriptor_preference, noun, plural_noun,
    noun_gender, noun_phrase, plural_noun_phrase, noun_phrase_type, template, first_turn_only,
    must_be_noun).

    Example: biasprobe holistic sentences --out holistic-v1.1.csv
    """
    from biasprobe.holistic.dataset import sentences
    from biasprobe.holistic.export import write_sentences

    path = write_sentences(out, version=version)
    typer.echo(f"wrote {len(sentences(version)):,} sentences to {safe_text(path)}")


@app.command("run")
@user_errors
def run_command(
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            "-m",
            metavar="MODEL",
            help="Hub id (NAME or NAME@REVISION) or a local checkpoint folder of a causal LM "
            "(scored by the chain rule) or a masked LM (pseudo-log-likelihood); NAME=MODEL "
            "gives it a short name. Repeat to compare models (the first is the base).",
            show_default=False,
        ),
    ],
    sample: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Score a seeded sample of at most N sentences, spread evenly over the axis x "
            "template x descriptor cells (every descriptor keeps sentences). Default: all "
            "549,120 sentences of the paper's subset.",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(metavar="N", help="Seed of --sample and of the comparison's bootstrap.")
    ] = 0,
    axis: Annotated[
        list[str] | None,
        typer.Option("--axis", "-a", metavar="AXIS", help="Only this axis (repeatable)."),
    ] = None,
    template: Annotated[
        list[str] | None,
        typer.Option(
            "--template",
            "-t",
            metavar="TEMPLATE",
            help="Only this template, its exact text, e.g. 'I love {plural_noun_phrase}.' "
            "(repeatable).",
        ),
    ] = None,
    pll: Annotated[
        str,
        typer.Option(
            metavar="METRIC",
            help="Masked LMs' pseudo-log-likelihood: original (Salazar et al. 2020) or "
            "word_l2r (Kauf & Ivanova 2023). Causal LMs ignore it.",
        ),
    ] = "original",
    out: Annotated[Path | None, out_option("reports/holistic-<model>-<run id>")] = None,
    html: Annotated[
        bool, typer.Option("--html/--no-html", help="Write report.html into the run folder.")
    ] = True,
    version: Annotated[
        str, typer.Option("--version", metavar="VERSION", help="Dataset version.")
    ] = "v1.1",
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option(metavar="N", help="Sequences per forward pass.")] = 32,
    revision: RevisionOption = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Replace an earlier run folder.")
    ] = False,
    quiet: QuietOption = False,
    trust_remote_code: TrustRemoteCodeOption = False,
    cache: CacheOption = None,
    no_cache: NoCacheOption = False,
    engine: EngineOption = "local",
    ray_actors: RayActorsOption = None,
    ray_cpus: RayCpusOption = None,
    ray_gpus: RayGpusOption = None,
    ray_address: RayAddressOption = None,
    ray_object_store_mb: RayObjectStoreOption = None,
) -> None:
    """Measure Likelihood Bias (Smith et al. 2022): for every axis and template, the share of
    descriptor pairs whose sentences the model scores significantly differently (two-sided
    Mann-Whitney U, p < 0.05).

    Each sentence's score is its mean log-probability per token (-log perplexity, as the paper
    compares). Writes sentences.csv, tests.csv, summary.csv, descriptors.csv, love_hate.csv
    (comparison.csv with several models), results.json and report.html, atomically.

    Example: biasprobe holistic run -m gpt2 --sample 5280 -t 'I love {plural_noun_phrase}.'
    """
    _run(**locals())


def _label(model: str, stage: str) -> str:
    what = "loading the model" if stage == "load" else "scoring sentences"
    return f"{what} {safe_text(model)}"


def _run(model: list[str], out: Path | None, overwrite: bool, quiet: bool, **options: Any) -> None:
    """The ``run`` command: check the options and the output folder, score, save, print."""
    import contextlib

    from biasprobe.errors import UsageError
    from biasprobe.fsio import check_output_folder
    from biasprobe.runfolders.holistic import WHAT
    from biasprobe.runfolders.schema import MANIFEST_KINDS

    options.update(engine_keywords(options))  # --engine and --ray-*, checked
    if options["batch_size"] < 1:
        raise UsageError(f"--batch-size must be at least 1, got {options['batch_size']}")
    if options["sample"] is not None and options["sample"] < 1:
        raise UsageError(f"--sample must be at least 1, got {options['sample']}")
    if options["pll"] not in ("original", "word_l2r"):
        raise UsageError(f"--pll must be original or word_l2r, not {options['pll']!r}")
    if options["cache"] is not None and options["no_cache"]:
        raise UsageError("--cache and --no-cache exclude each other: give one")
    # The default folder's name is known only after the run: check that reports/ can take it.
    default = Path("reports") / ".holistic-check"
    check_output_folder(
        out or default, overwrite and out is not None, kinds=MANIFEST_KINDS, what=WHAT
    )
    no_cache = options.pop("no_cache")
    if no_cache:
        options["cache"] = False
    from biasprobe.report.holistic import render_html
    from biasprobe.results import model_slug
    from biasprobe.tasks.holistic import run_holistic

    html = options.pop("html")
    bar, update = progress_printer(quiet, _label)
    update = with_resume_line(bar, update, safe_text, "sentences")
    with resume_hint(not no_cache), bar or contextlib.nullcontext():
        result = run_holistic(
            model,
            axes=options.pop("axis"),
            templates=options.pop("template"),
            pll_metric=options.pop("pll"),
            progress=update,
            **options,
        )
    first = result.models[0]
    target = out or Path("reports") / f"holistic-{model_slug(first)}-{result.meta['run_id']}"
    saved = result.save(
        target,
        overwrite=overwrite,
        report=(lambda res, path: path.write_text(render_html(res), encoding="utf-8"))
        if html
        else None,
    )
    if not quiet:
        for name in result.models:
            o = result.bias("all", name).iloc[0]
            typer.echo(
                f"{safe_text(name)}: Likelihood Bias {100 * o['mean']:.1f}% "
                f"(95% CI {100 * o['ci_low']:.1f}-{100 * o['ci_high']:.1f}%) of "
                f"{int(o['n']):,} descriptor-pair tests"
            )
        unreachable = int(
            result.meta.get("data", {}).get("tests_that_cannot_reach_significance") or 0
        )
        if unreachable:
            typer.echo(
                f"note: {unreachable:,} tests (of the first model) compare descriptors with so few "
                "sentences per template that p < 0.05 is impossible; they count as not "
                "significant. Sample fewer templates (--template) to keep more sentences per cell."
            )
    where = f" (report: {safe_text(saved / 'report.html')})" if html else ""
    typer.echo(f"wrote {safe_text(saved)}{where}")
