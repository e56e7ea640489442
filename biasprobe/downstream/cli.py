"""The counterfactual run on the command line: the terminal tables and what
``biasprobe run SET -m CLASSIFIER`` does (:func:`run_command`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from biasprobe.cliutil import markup
from biasprobe.downstream.scores import SCORE_LABELS
from biasprobe.probes import ProbeItem, ProbeSet
from biasprobe.runfolders.counterfactual import DownstreamResult
from biasprobe.runfolders.schema import MANIFEST_KINDS

__all__ = ["print_downstream", "run_command"]

WHAT = "counterfactual run folder"


# --------------------------------------------------------------------------- terminal


def _ci(row: Any, digits: int = 3, signed: bool = True) -> str:
    lo, hi = row["ci_low"], row["ci_high"]
    if lo != lo or hi != hi:
        return "—"
    f = f"+.{digits}f" if signed else f".{digits}f"
    return f"{lo:{f}} … {hi:{f}}"


def _p(x: Any) -> str:
    if x != x:
        return ""
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _table(console: Any, title: str, columns: Sequence[str]) -> Any:
    """An ≤ 80-column rich table: the first columns fold, the rest (numbers) align right."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", width=min(80, console.width))
    for name in columns:
        if name in ("score", "model"):
            table.add_column(name, overflow="fold")
        else:
            table.add_column(name, justify="right", no_wrap=name == "95% CI")
    return table


def _model_table(result: DownstreamResult, model: str, console: Any) -> Any:
    """Set-level scores of one classifier, then its per-contrast Δ rows."""
    info = next((m.get("info") for m in result.meta.get("models", []) if m["name"] == model), None)
    a = (info or {}).get("accuracy")
    extra = f"  [dim]held-out acc. {a:.3f}[/dim]" if isinstance(a, int | float) else ""
    columns = ("score", "mean", "95% CI", "n", "p")
    table = _table(console, f"{markup(model)}{extra}", columns)
    s = result.summary[result.summary["model"] == model]
    for _, r in s[s["level"] == "set"].iterrows():
        label = SCORE_LABELS.get(r["score"], r["score"])
        if r["score"] == "mean_p_positive":
            label = f"{label} ({r['group']})"
        signed = r["score"] == "delta"
        # the sign-flip p of the template means: the test the interval is made from
        p = _p(r.get("p_value", float("nan"))) if signed else ""
        mean = f"{r['mean']:+.3f}" if signed else f"{r['mean']:.3f}"
        table.add_row(markup(label), mean, _ci(r, signed=signed), str(int(r["n"])), p)
    for _, r in s[(s["level"] == "contrast") & (s["score"] == "delta")].iterrows():
        p = _p(r.get("p_value", float("nan")))
        table.add_row(markup(f"Δ {r['key']}"), f"{r['mean']:+.3f}", _ci(r), str(int(r["n"])), p)
    notes = [n for n in s[s["level"] != "template"].get("note", []) if isinstance(n, str) and n]
    if notes:
        table.caption = markup(f"No interval or p where {notes[0]}.")
    return table


def print_downstream(result: DownstreamResult, console: Any = None) -> None:
    """Print the set-level scores per classifier (and the change vs the base), ≤ 80 columns;
    classifiers by short distinct names (which model each stands for is printed first)."""
    from rich.console import Console

    from biasprobe.cliutil import display_names

    console = console or Console(highlight=False)
    models = list(dict.fromkeys(result.summary[result.summary["level"] == "set"]["model"]))
    short = display_names(models)
    legend = [f"{short[m]} = {m}" for m in models if short[m] != m]
    if legend:
        console.print("models: " + "; ".join(legend), markup=False)
    for model in models:
        table = _model_table(result, model, console)
        title = str(table.title)
        table.title = markup(short[model]) + title[len(markup(model)) :]
        console.print(table)
    c = result.comparison
    if c is None or c.empty:
        return
    c = c[c["level"] == "set"]
    base = str(c["base"].iloc[0])
    title = f"Change from the base model ({markup(short.get(base, base))})"
    table = _table(console, title, ("model", "score", "change", "95% CI", "n", "p"))
    for _, r in c.iterrows():
        score = SCORE_LABELS.get(r["score"], r["score"])
        n, p = str(int(r["n"])), _p(r.get("p_value", float("nan")))
        name = markup(short.get(r["model"], r["model"]))
        table.add_row(name, markup(score), f"{r['change']:+.3f}", _ci(r), n, p)
    console.print(table)


def run_command(
    probe_set: ProbeSet | Sequence[ProbeItem],
    models: Sequence[Any],
    out: str | Path | None,
    overwrite: bool = False,
    html: bool = False,
    quiet: bool = False,
    *,
    console: Any = None,
    before_print: Any = None,
    **options: Any,
) -> Path:
    """What ``biasprobe run SET -m CLASSIFIER`` does for a counterfactual set.

    Checks the output folder first (so nothing is scored for a folder that cannot be written),
    runs :func:`run_downstream` with ``options`` (its keyword arguments: ``tolerance``,
    ``seed``, ``n_boot``, ``positive_label``, ``device``, ``batch_size``, ``revision``,
    ``trust_remote_code``, ``progress``), writes the run folder (with ``report.html`` when
    ``html``), prints the tables unless ``quiet`` and returns the folder. Default folder:
    ``reports/<set>-<run id>``. ``before_print`` (no arguments) is called once the work is
    done, before anything is printed: the CLI stops its live progress display there, so that
    the display's last redraw cannot erase the tables.
    """
    from biasprobe import fsio
    from biasprobe.tasks.counterfactual import run_downstream

    if out is not None:
        fsio.check_output_folder(out, overwrite, kinds=MANIFEST_KINDS, what=WHAT)
    result = run_downstream(probe_set, models, **options)
    target = Path("reports") / f"{result.set_name}-{result.meta['run_id']}"
    report = None
    if html:
        from biasprobe.report.downstream import render_downstream_report

        def report(res: DownstreamResult, path: Path) -> None:
            path.write_text(render_downstream_report([res]), encoding="utf-8")

    saved = result.save(target if out is None else out, overwrite=overwrite, report=report)
    if before_print is not None:
        before_print()
    if not quiet:
        print_downstream(result, console)
    return saved
