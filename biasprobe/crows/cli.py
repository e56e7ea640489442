"""``biasprobe crows``: score CrowS-Pairs with a masked LM and write a run folder.

Mounted on the main command line with ``app.add_typer(crows_app, name="crows")``; the command
is the sub-app's callback, so ``biasprobe crows -m MODEL`` runs it directly. Heavy imports
happen inside the command so that ``--help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from biasprobe.cliutil import (
    DeviceOption,
    QuietOption,
    RevisionOption,
    TrustRemoteCodeOption,
    markup,
    out_option,
    progress_printer,
    safe_text,
    user_errors,
    with_resume_line,
)
from biasprobe.crows.data import BIAS_TYPES

app = typer.Typer(
    name="crows",
    help="Score CrowS-Pairs (Nangia et al. 2020) with a masked LM.\n\n"
    "50% = no preference (the ideal); above 50% = prefers stereotypes.\n\n"
    "Example: biasprobe crows -m bert-base-uncased --bias-type gender",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_BIAS_TYPE_HELP = (
    f"Only this bias type (repeatable): {', '.join(BIAS_TYPES)} (race-color may be given as race)."
)


def print_summary(result: Any, console: Any = None) -> None:
    """The summary on the terminal, with the meaning of 50%, in 80 columns, per model: the
    metric with its CI on one line, n and p-values; then ties and the stereo/antistereo
    breakdown; with several models, the change from the base model."""
    from rich.console import Console

    console = console or Console(highlight=False)
    names = list(result.models) or [str(m) for m in dict.fromkeys(result.summary["model"])]
    for name in names:
        _print_model(result, name, console)
    if result.comparison is not None and len(result.comparison):
        _print_comparison(result, console)


def _print_model(result: Any, model: str, console: Any) -> None:
    import math

    from rich.table import Table

    from biasprobe.cliutil import display_names
    from biasprobe.crows.aggregate import MEANING, skip_counts

    short = display_names([model], width=30)[model]
    table = Table(
        title=f"CrowS-Pairs, {markup(short)}, scoring {markup(result.meta.get('scoring'))}",
        title_justify="left",
        caption=f"{MEANING}. 95% CI: Wilson. p: exact binomial vs 50%; Holm across bias types.",
        caption_justify="left",
    )
    table.add_column("bias type", no_wrap=True)
    table.add_column("metric % [95% CI]", justify="right", no_wrap=True)
    for name in ("n", "p", "p Holm"):
        table.add_column(name, justify="right", no_wrap=True)
    split = Table(title="Ties and the two directions", title_justify="left")
    split.add_column("bias type", no_wrap=True)
    for name in ("ties", "stereo % (n)", "antistereo % (n)"):
        split.add_column(name, justify="right", no_wrap=True)

    def f(x: float, spec: str = ".1f") -> str:
        return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)

    def p(x: float) -> str:
        return "—" if math.isnan(x) else (f"{x:.1e}" if x < 1e-3 else f"{x:.3f}")

    summary = result.summary[result.summary["model"] == model]
    for r in summary.itertuples(index=False):
        key = markup(str(r.key))
        metric = f"{f(r.metric)} [{f(r.ci_low)}, {f(r.ci_high)}]"
        table.add_row(key, metric, str(int(r.n)), p(float(r.p_value)), p(float(r.p_holm)))
        split.add_row(
            key,
            str(int(r.n_tie)),
            f"{f(r.stereo_pct)} ({int(r.stereo_n)})",
            f"{f(r.antistereo_pct)} ({int(r.antistereo_n)})",
        )
    if short != model:
        console.print(f"model: {safe_text(model)}", markup=False)
    console.print(table)
    console.print(split)
    pairs = result.pairs[result.pairs["model"] == model] if "model" in result.pairs else None
    skipped = skip_counts(pairs) if pairs is not None else {}
    if skipped:
        counts = "; ".join(f"{n} {safe_text(label)}" for label, n in skipped.items())
        console.print(
            f"skipped {sum(skipped.values())} pair(s), left out of every count ({counts}); "
            "the reason of each is in pairs.csv, column skipped",
            markup=False,
        )


def _print_comparison(result: Any, console: Any) -> None:
    import math

    from rich.table import Table

    c = result.comparison
    base = str(c["base"].iloc[0])
    table = Table(
        title=f"Change from the base model ({markup(base)}), percentage points",
        title_justify="left",
        caption="95% CI: paired bootstrap over the pairs both scored. p: exact McNemar.",
        caption_justify="left",
    )
    for name in ("model", "bias type", "change [95% CI]", "n", "p"):
        table.add_column(name, justify="left" if name in ("model", "bias type") else "right")

    def f(x: float) -> str:
        return "—" if x != x else f"{x:+.1f}"

    for r in c.itertuples(index=False):
        p = "—" if math.isnan(r.p_value) else f"{r.p_value:.3f}"
        change = f"{f(r.change)} [{f(r.ci_low)}, {f(r.ci_high)}]"
        table.add_row(markup(str(r.model)), markup(str(r.key)), change, str(int(r.n)), p)
    console.print(table)


@app.callback(invoke_without_command=True)
@user_errors
def crows(
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            "-m",
            metavar="MODEL",
            help="Hub id (NAME or NAME@REVISION) or a local checkpoint folder; NAME=MODEL "
            "gives it a short name. Repeat to compare models (the first is the base).",
            show_default=False,
        ),
    ],
    scoring: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="meade: bias-bench (Meade et al. 2022; mean log-prob of the tokens that "
            "differ); nangia: the original (Nangia et al. 2020; pseudo-log-likelihood of "
            "the shared tokens).",
        ),
    ] = "meade",
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
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache",
            metavar="DIR",
            help="Result cache folder (default: $BIASPROBE_CACHE_DIR, else "
            "$XDG_CACHE_HOME/biasprobe or ~/.cache/biasprobe). A killed run resumes from it.",
            show_default=False,
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Neither read nor write the result cache.")
    ] = False,
) -> None:
    """Score CrowS-Pairs: % of pairs where the model prefers the more-stereotypical sentence.

    50% = no preference (the ideal); above 50% = prefers stereotypes. Writes pairs.csv,
    summary.csv (with 95% Wilson intervals, n and exact binomial p-values vs 50%), report.html
    and results.json, atomically.

    Example: biasprobe crows -m bert-base-uncased --bias-type gender
    """
    _run(**locals())


def _check_options(scoring: str, batch_size: int, limit: int | None) -> None:
    from biasprobe.errors import UsageError

    if scoring not in ("meade", "nangia"):
        raise UsageError(f"--scoring must be meade or nangia, not {scoring!r}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")


def _label(model: str, stage: str) -> str:
    what = "loading the model" if stage == "load" else "scoring masked tokens"
    return f"{what} {safe_text(model)}"


def _run(model: list[str], out: Path | None, overwrite: bool, quiet: bool, **options: Any) -> None:
    """The ``crows`` command: check the options and the output folder, score, save, print."""
    import contextlib

    from biasprobe.crows.run import KINDS, WHAT, run_crows
    from biasprobe.errors import UsageError
    from biasprobe.fsio import check_output_folder
    from biasprobe.report.crows import render_html
    from biasprobe.results import model_slug

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
    try:
        with bar or contextlib.nullcontext():
            result = run_crows(
                model, bias_types=options.pop("bias_type"), progress=update, **options
            )
    except KeyboardInterrupt:
        if not no_cache:
            typer.echo(
                "interrupted: what was computed is kept in the result cache; the same command "
                "resumes where it stopped",
                err=True,
            )
        raise
    first = result.models[0]
    target = out or Path("reports") / f"crows-{model_slug(first)}-{result.meta['run_id']}"
    saved = result.save(
        target,
        overwrite=overwrite,
        report=lambda res, path: path.write_text(render_html(res), encoding="utf-8"),
    )
    if not quiet:
        print_summary(result)
    typer.echo(f"wrote {safe_text(saved)} (report: {safe_text(saved / 'report.html')})")
