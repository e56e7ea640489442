"""``biasprobe crows``: score CrowS-Pairs with masked or causal LMs and write a run folder.

Mounted on the main command line with ``app.add_typer(crows_app, name="crows")``; the command
is the sub-app's callback, so ``biasprobe crows -m MODEL`` runs it directly. Heavy imports
happen inside the command so that ``--help`` stays instant.
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
from biasprobe.crows.data import BIAS_TYPES

app = typer.Typer(
    name="crows",
    help="Score CrowS-Pairs (Nangia et al. 2020) with masked or causal LMs.\n\n"
    "50% = no preference (the ideal); above 50% = prefers stereotypes.\n\n"
    "Example: biasprobe crows -m bert-base-uncased --bias-type gender",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_BIAS_TYPE_HELP = (
    f"Only this bias type (repeatable): {', '.join(BIAS_TYPES)} (race-color may be given as race)."
)


@app.callback(invoke_without_command=True)
@user_errors
def crows(
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            "-m",
            metavar="MODEL",
            help="Hub id (NAME or NAME@REVISION) or a local checkpoint folder of a masked LM "
            "(BERT, RoBERTa …) or a causal LM (GPT-2, Pythia …: scored by each sentence's "
            "log-likelihood, as lm-evaluation-harness does); NAME=MODEL gives it a short "
            "name. Repeat to compare models (the first is the base).",
            show_default=False,
        ),
    ],
    scoring: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="How masked LMs are scored: meade (default): bias-bench (Meade et al. "
            "2022; mean log-prob of the tokens that differ); nangia: the original (Nangia et "
            "al. 2020; pseudo-log-likelihood of the shared tokens). Causal LMs are always "
            "scored by sentence log-likelihood; giving --scoring with causal LMs only is an "
            "error.",
            show_default=False,
        ),
    ] = None,
    bias_type: Annotated[
        list[str] | None,
        typer.Option("--bias-type", "-b", metavar="TYPE", help=_BIAS_TYPE_HELP),
    ] = None,
    out: Annotated[Path | None, out_option("reports/crows-<model>-<run id>")] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            metavar="CSV", help="A CrowS-Pairs CSV instead of the copy shipped with biasprobe."
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(metavar="N", help="Score only the first N pairs (after --bias-type)."),
    ] = None,
    device: DeviceOption = "auto",
    batch_size: Annotated[
        int, typer.Option(metavar="N", help="Masked sentences per forward pass.")
    ] = 64,
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
    """Score CrowS-Pairs: % of pairs where the model prefers the more-stereotypical sentence.

    50% = no preference (the ideal); above 50% = prefers stereotypes. A causal LM prefers the
    sentence it gives the higher log-likelihood (lm-evaluation-harness's pct_stereotype); its
    summary also gives likelihood_diff, the mean |difference| of the two log-likelihoods.
    Writes pairs.csv,
    summary.csv (with 95% Wilson intervals, n and exact binomial p-values vs 50%), report.html
    and results.json, atomically.

    Example: biasprobe crows -m bert-base-uncased -m gpt2 --bias-type gender
    """
    _run(**locals())


def _check_options(scoring: str | None, batch_size: int, limit: int | None) -> None:
    from biasprobe.errors import UsageError

    if scoring is not None and scoring not in ("meade", "nangia"):
        raise UsageError(f"--scoring must be meade or nangia, not {scoring!r}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")


def _label(model: str, stage: str) -> str:
    what = {"load": "loading the model", "sentences": "scoring sentences"}.get(
        stage, "scoring masked tokens"
    )
    return f"{what} {safe_text(model)}"


def _run(model: list[str], out: Path | None, overwrite: bool, quiet: bool, **options: Any) -> None:
    """The ``crows`` command: check the options and the output folder, score, save, print."""
    import contextlib

    from biasprobe.crows.run import KINDS, WHAT, run_crows
    from biasprobe.errors import UsageError
    from biasprobe.fsio import check_output_folder
    from biasprobe.report.crows import render_html
    from biasprobe.results import model_slug

    options.update(engine_keywords(options))  # --engine and --ray-*, checked
    _check_options(options["scoring"], options["batch_size"], options["limit"])
    # The default folder's name is known only after the run: check that reports/ can take it.
    default = Path("reports") / ".crows-check"
    check_output_folder(out or default, overwrite and out is not None, kinds=KINDS, what=WHAT)
    if options["cache"] is not None and options["no_cache"]:
        raise UsageError("--cache and --no-cache exclude each other: give one")
    no_cache = options.pop("no_cache")
    if no_cache:
        options["cache"] = False
    bar, update = progress_printer(quiet, _label)
    update = with_resume_line(bar, update, safe_text)
    with resume_hint(not no_cache), bar or contextlib.nullcontext():
        result = run_crows(model, bias_types=options.pop("bias_type"), progress=update, **options)
    first = result.models[0]
    target = out or Path("reports") / f"crows-{model_slug(first)}-{result.meta['run_id']}"
    saved = result.save(
        target,
        overwrite=overwrite,
        report=lambda res, path: path.write_text(render_html(res), encoding="utf-8"),
    )
    if not quiet:
        from biasprobe.views.terminal import print_crows_summary

        print_crows_summary(result)
    typer.echo(f"wrote {safe_text(saved)} (report: {safe_text(saved / 'report.html')})")
