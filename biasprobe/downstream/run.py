"""Run counterfactual probe pairs on classifiers: tables, run folder, terminal output, CLI glue.

:func:`run_downstream` scores both sentences of every pair with every classifier and returns a
:class:`DownstreamResult` of tidy tables:

* ``items`` — one row per (pair, side): the pairs as expanded;
* ``downstream`` — one row per (model, pair, side): ``p_positive`` and the predicted ``label``;
* ``scores`` — one row per (model, pair): Δ, |Δ|, flip, invariance failure (see
  :mod:`biasprobe.downstream.scores`);
* ``summary`` — per model, template and set: mean, 95% CI, n and p-values of every score;
* ``comparison`` — with several models, the change of every score from the first (base) model
  with a paired bootstrap CI over the same pairs.

:class:`DownstreamResult` and its run folder live in :mod:`biasprobe.runfolders.counterfactual`
(manifest kind ``run``, the one run-folder format); :func:`load_downstream_run` reads one back
without any model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from biasprobe.cliutil import markup
from biasprobe.downstream.scores import (
    DEFAULT_TOLERANCE,
    SCORE_LABELS,
    compare_models,
    pair_scores,
    summarize_downstream,
)
from biasprobe.errors import RunFolderError, UsageError
from biasprobe.probes import MASK, ProbeItem, ProbeSet
from biasprobe.runfolders.counterfactual import DownstreamResult
from biasprobe.runfolders.schema import (
    COMPARISON_COLUMNS,
    MANIFEST_KIND,
    MANIFEST_KINDS,
    SUMMARY_COLUMNS,
    head,
    leading,
    model_block,
)

__all__ = [
    "DownstreamResult",
    "RUN_KIND",
    "is_downstream_run",
    "load_downstream_run",
    "print_downstream",
    "run_command",
    "run_downstream",
]

RUN_KIND = MANIFEST_KIND
WHAT = "counterfactual run folder"
#: progress(model, stage, done, total); stage is "load" or "score".
ProgressFn = Callable[[str, str, int, int], None]


def is_downstream_run(path: str | Path) -> bool:
    """Whether ``path`` is a counterfactual run folder (old format or today's).

    For ``biasprobe report``: tells a counterfactual run from a fill-mask run without loading
    it.
    """
    from biasprobe.results import folder_kind

    try:
        return folder_kind(path) == "counterfactual"
    except RunFolderError:
        return False


def load_downstream_run(run_dir: str | Path) -> DownstreamResult:
    """Read a counterfactual run folder (:func:`biasprobe.results.load_run` of that kind).

    Raises:
        RunFolderError: the folder is missing, not a counterfactual run, or a file is
            unreadable or does not fit; the message names the file.
    """
    from biasprobe.results import load_run

    return load_run(run_dir, "counterfactual")  # type: ignore[return-value]


# --------------------------------------------------------------------------- running


def _check_counterfactual(probe_set: ProbeSet | None, items: Sequence[ProbeItem]) -> None:
    kind = getattr(probe_set, "kind", None) if probe_set is not None else None
    where = probe_set.path if probe_set is not None else "the probe items"
    if kind is not None and kind != "counterfactual":
        raise UsageError(
            f"{where}: a {kind} probe set cannot run on a classifier; downstream runs need a "
            "counterfactual probe set (pairs of sentences without [MASK])"
        )
    for it in items:
        if any(MASK in s for s in it.sentences):
            raise UsageError(
                f"{it.source}: pair {it.pair_id!r} contains {MASK}: this is a fill-mask probe, "
                "not a counterfactual one; classifiers score whole sentences (write the pair "
                "without [MASK], or run this set on a masked language model)"
            )
    if not items:
        raise UsageError(f"{where}: no pair to run")


def _as_items(
    probe_set: ProbeSet | Sequence[ProbeItem], set_name: str | None
) -> tuple[ProbeSet | None, list[ProbeItem], str]:
    """``(probe set or None, its items, the set's name)`` of what :func:`run_downstream` got."""
    if isinstance(probe_set, ProbeSet) or (
        hasattr(probe_set, "items") and hasattr(probe_set, "name") and hasattr(probe_set, "path")
    ):
        ps: ProbeSet = probe_set  # type: ignore[assignment]
        return ps, list(ps.items), set_name or ps.name
    return None, list(probe_set), set_name or "probes"


def _check_settings(names: Sequence[str], tolerance: Any, n_boot: int) -> None:
    if not names:
        raise UsageError("no classifier to run: pass --model (a sentiment run folder or a model)")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"model given twice: {', '.join(dupes)}")
    if not (isinstance(tolerance, int | float) and tolerance >= 0):
        raise UsageError(f"tolerance must be a number >= 0, got {tolerance!r}")
    if n_boot < 1:
        raise UsageError(f"bootstrap resamples must be at least 1, got {n_boot}")


def _side_rows(
    model: str, sides: pd.DataFrame, by_sentence: dict[str, tuple[float, str]]
) -> pd.DataFrame:
    """The ``downstream`` table of one model: ``sides`` (one row per pair and side, from
    :func:`_sides`) with the model's P(positive) and label of each sentence."""
    out = sides.copy()
    out.insert(0, "model", model)
    scored = [by_sentence[s] for s in out["sentence"]]
    out["p_positive"] = [x[0] for x in scored]
    out["label"] = [x[1] for x in scored]
    return out


def _sides(items_frame: pd.DataFrame) -> pd.DataFrame:
    """pair_id, template_id, side, group, role, sentence of every pair side."""
    keep = ["pair_id", "template_id", "side", "group", "role", "template_sentence"]
    return items_frame[keep].rename(columns={"template_sentence": "sentence"})


def _pair_rows(
    model: str,
    items: Sequence[ProbeItem],
    by_sentence: dict[str, tuple[float, str]],
    tolerance: float,
) -> pd.DataFrame:
    """The ``scores`` table of one model: one row per pair with both sides and its scores."""
    pa = [by_sentence[it.sentences[0]] for it in items]
    pb = [by_sentence[it.sentences[1]] for it in items]
    head = pd.DataFrame(
        {
            "model": model,
            "pair_id": [it.pair_id for it in items],
            "template_id": [it.template_id for it in items],
            "group_a": [it.groups[0] for it in items],
            "group_b": [it.groups[1] for it in items],
            "minoritized_group": [it.minoritized_group for it in items],
            "normative_group": [it.normative_group for it in items],
            "sentence_a": [it.sentences[0] for it in items],
            "sentence_b": [it.sentences[1] for it in items],
            "p_a": [x[0] for x in pa],
            "p_b": [x[0] for x in pb],
            "label_a": [x[1] for x in pa],
            "label_b": [x[1] for x in pb],
        }
    )
    sc = pair_scores(
        head["p_a"].tolist(),
        head["p_b"].tolist(),
        head["label_a"].tolist(),
        head["label_b"].tolist(),
        [it.minoritized for it in items],
        tolerance=tolerance,
    )
    return pd.concat([head, sc], axis=1)


def _model_name(spec: Any) -> str:
    from biasprobe.downstream.models import Classifier

    return spec.name if isinstance(spec, Classifier) else str(spec)


#: Sentences per progress step of a classifier (each slice is scored in length-sorted batches).
PREDICT_SLICE = 128


def _predict(
    spec: Any,
    items: Sequence[ProbeItem],
    sentences: list[str],
    progress: ProgressFn | None,
    load: dict[str, Any],
) -> tuple[Any, dict[str, tuple[float, str]]]:
    """Load one classifier (unless given loaded), check that it tells every pair's sides apart
    (:func:`~biasprobe.downstream.models.check_tokenization`) and score every distinct sentence
    once.

    Returns ``(classifier, sentence → (P(positive), label))``; a classifier loaded here is
    closed again.
    """
    from biasprobe.downstream.models import Classifier, check_tokenization, load_classifier

    given, name = isinstance(spec, Classifier), _model_name(spec)
    if progress:
        progress(name, "load", 0, 1)
    clf = spec if given else load_classifier(str(spec), **load)
    if progress:
        progress(name, "load", 1, 1)
        progress(name, "score", 0, len(sentences))
    out: dict[str, tuple[float, str]] = {}
    # Shortest first, in slices, so the progress moves per slice while each slice still
    # batches sentences of similar length (the classifiers sort within what they are given).
    ordered = sorted(sentences, key=len)
    try:
        check_tokenization(clf, items)
        for start in range(0, len(ordered), PREDICT_SLICE):
            part = ordered[start : start + PREDICT_SLICE]
            p_pos, labels = clf.predict(part)
            out.update((s, (float(p), lab)) for s, p, lab in zip(part, p_pos, labels, strict=True))
            if progress:
                progress(name, "score", start + len(part), len(sentences))
    finally:
        if not given:
            clf.close()
    return clf, out


def _probe_meta(ps: ProbeSet | None, name: str, n_pairs: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "n_pairs": n_pairs}
    if ps is not None:
        meta.update(
            version=ps.version,
            description=ps.description,
            source=ps.source,
            path=ps.path,
            sha256=ps.sha256,
            orientation=list(ps.orientation) if ps.orientation else None,
        )
    return meta


def run_downstream(
    probe_set: ProbeSet | Sequence[ProbeItem],
    models: Sequence[Any],
    *,
    set_name: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    n_boot: int = 2000,
    confidence: float = 0.95,
    positive_label: str | None = None,
    device: str | None = None,
    batch_size: int = 64,
    revision: str | None = None,
    trust_remote_code: bool = False,
    progress: ProgressFn | None = None,
) -> DownstreamResult:
    """Score every pair with every classifier and aggregate.

    Args:
        probe_set: a counterfactual :class:`~biasprobe.probes.ProbeSet`, or a list of
            :class:`~biasprobe.probes.ProbeItem` (then ``set_name`` names them).
        models: classifier names (sentiment run folder, HF folder or hub id) or loaded
            :class:`~biasprobe.downstream.models.Classifier` objects. The first is the base.
        tolerance: |Δ| above which a pair fails the invariance test.
        seed: seed of the bootstrap (and of torch).
        n_boot: bootstrap resamples.
        positive_label: name of the positive class for HF models whose labels are ambiguous.
        device, batch_size, revision, trust_remote_code: how HF/sentiment models are loaded.
        progress: optional callback ``(model, stage, done, total)``.

    Raises:
        UsageError: a fill-mask set or item, no model, a model given twice, a bad tolerance.
        ModelLoadError: a model cannot be loaded.
    """
    from biasprobe.downstream.models import Classifier
    from biasprobe.runner import items_table

    ps, items, name = _as_items(probe_set, set_name)
    _check_counterfactual(ps, items)
    _check_settings([_model_name(m) for m in models], tolerance, n_boot)
    load = {"device": device, "revision": revision, "positive_label": positive_label}
    load.update(batch_size=batch_size, trust_remote_code=trust_remote_code)
    sentences = list(dict.fromkeys(s for it in items for s in it.sentences))
    items_frame = items_table(items)
    sides, pairs, model_meta = [], [], []
    for spec in models:
        clf, by_sentence = _predict(spec, items, sentences, progress, load)
        mname = _model_name(spec)
        sides.append(_side_rows(mname, _sides(items_frame), by_sentence))
        pairs.append(_pair_rows(mname, items, by_sentence, float(tolerance)))
        labels = list(clf.labels)
        model_meta.append(
            model_block(
                mname,
                "classifier",
                clf.info,
                requested=None if isinstance(spec, Classifier) else str(spec),
                kind=clf.kind,
                labels=labels,
                positive_label=labels[clf.positive],
            )
        )
    downstream = pd.concat(sides, ignore_index=True)
    scores = pd.concat(pairs, ignore_index=True)
    kw = {"n_resamples": n_boot, "confidence": confidence, "seed": seed}
    summary = leading(
        summarize_downstream(scores, downstream, set_name=name, **kw), SUMMARY_COLUMNS
    )
    comparison = compare_models(scores, set_name=name, **kw)
    if len(comparison.columns):
        comparison = leading(comparison, COMPARISON_COLUMNS)
    settings = {"tolerance": float(tolerance), "seed": seed, "n_bootstrap": n_boot}
    settings.update(confidence=confidence, **load, n_sentences=len(sentences))
    meta = head("counterfactual")
    meta.update(models=model_meta, settings=settings, probe_set=_probe_meta(ps, name, len(items)))
    return DownstreamResult(meta, items_frame, downstream, scores, summary, comparison)


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
