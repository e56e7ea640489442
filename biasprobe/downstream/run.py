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

:meth:`DownstreamResult.save` writes them as CSV files with ``results.json`` (provenance) into a
run folder, atomically and with a biasprobe manifest of kind ``downstream-run``;
:func:`load_downstream_run` reads one back without any model.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from biasprobe import __version__
from biasprobe.downstream.scores import (
    DEFAULT_TOLERANCE,
    SCORE_LABELS,
    compare_models,
    pair_scores,
    summarize_downstream,
)
from biasprobe.errors import RunFolderError, UsageError
from biasprobe.probes import MASK, ProbeItem, ProbeSet

__all__ = [
    "DownstreamResult",
    "RUN_KIND",
    "is_downstream_run",
    "load_downstream_run",
    "print_downstream",
    "run_command",
    "run_downstream",
]

RUN_KIND = "downstream-run"
RESULTS_JSON = "results.json"
TABLES = ("items", "downstream", "scores", "summary", "comparison")
SIDES = ("A", "B")
#: progress(model, stage, done, total); stage is "load" or "score".
ProgressFn = Callable[[str, str, int, int], None]
_TEXT_COLUMNS = frozenset(
    (
        "model",
        "base",
        "pair_id",
        "template_id",
        "side",
        "group",
        "role",
        "sentence",
        "label",
        "label_a",
        "label_b",
        "group_a",
        "group_b",
        "minoritized_group",
        "normative_group",
        "sentence_a",
        "sentence_b",
        "fills",
        "source",
        "level",
        "key",
        "score",
    )
)


@dataclass
class DownstreamResult:
    """Everything a downstream run produced (see the module docstring for each table)."""

    meta: dict[str, Any]
    items: pd.DataFrame
    downstream: pd.DataFrame
    scores: pd.DataFrame
    summary: pd.DataFrame
    comparison: pd.DataFrame

    @property
    def models(self) -> list[str]:
        """Model names in run order (the first is the base for comparisons)."""
        return [m["name"] for m in self.meta.get("models", [])]

    @property
    def set_name(self) -> str:
        return str((self.meta.get("probe_set") or {}).get("name", "probes"))

    def save(self, out_dir: str | Path, overwrite: bool = False, *, html: bool = False) -> Path:
        """Write the run folder atomically (with ``report.html`` inside when ``html``).

        Raises:
            OutputError: the folder exists without ``overwrite`` or cannot be written.
            NotOwnedError: ``overwrite`` was asked for a folder biasprobe did not write.
        """
        from biasprobe import fsio

        out = Path(out_dir)
        fsio.check_output_folder(out, overwrite, kinds=(RUN_KIND,), what="downstream run folder")
        with fsio.staging_dir(out) as tmp:
            meta = dict(self.meta)
            meta["files"] = {name: f"{name}.csv" for name in TABLES}
            for name in TABLES:
                getattr(self, name).to_csv(tmp / f"{name}.csv", index=False)
            (tmp / RESULTS_JSON).write_text(
                json.dumps(meta, indent=2, ensure_ascii=False, default=str) + "\n",
                encoding="utf-8",
            )
            files = [RESULTS_JSON] + [f"{name}.csv" for name in TABLES]
            if html:
                from biasprobe.report.downstream import render_downstream_report

                (tmp / "report.html").write_text(render_downstream_report([self]), encoding="utf-8")
                files.append("report.html")
            fsio.write_manifest(tmp, RUN_KIND, str(meta.get("run_id", "")), files)
            fsio.replace_dir(tmp, out)
        return out


def _read_table(path: Path) -> pd.DataFrame:
    columns = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(
        path,
        keep_default_na=False,
        na_values={c: [""] for c in columns if c not in _TEXT_COLUMNS},
        dtype={c: str for c in columns if c in _TEXT_COLUMNS},
    )


def is_downstream_run(path: str | Path) -> bool:
    """Whether ``path`` is a downstream run folder (``results.json`` with kind downstream).

    For ``biasprobe report``: tells a downstream run from a fill-mask run without loading it.
    """
    try:
        meta = json.loads((Path(path) / RESULTS_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("kind") == "downstream"


def load_downstream_run(run_dir: str | Path) -> DownstreamResult:
    """Read a downstream run folder written by :meth:`DownstreamResult.save` (no model needed).

    Raises:
        RunFolderError: the folder is missing, not a downstream run, or a file is unreadable.
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise RunFolderError(f"run folder {d} does not exist")
    meta_path = d / RESULTS_JSON
    if not meta_path.is_file():
        raise RunFolderError(f"{d} is not a biasprobe run folder: {RESULTS_JSON} is missing")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RunFolderError(f"cannot read {meta_path}: {e}") from None
    if not isinstance(meta, dict) or meta.get("kind") != "downstream":
        raise RunFolderError(
            f"{d} is not a downstream run folder (results.json has no kind: downstream)"
        )
    try:
        tables = {name: _read_table(d / meta["files"][name]) for name in TABLES}
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise RunFolderError(f"cannot read run folder {d}: {e}") from None
    return DownstreamResult(meta=meta, **tables)


# --------------------------------------------------------------------------- running


def _versions() -> dict[str, str]:
    out = {"biasprobe": __version__, "python": platform.python_version()}
    for mod in ("torch", "transformers", "numpy", "pandas", "scipy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - optional
            out[mod] = "not installed"
    return out


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


def items_table(items: Sequence[ProbeItem]) -> pd.DataFrame:
    """One row per (pair, side) describing the expanded pairs."""
    rows = []
    for it in items:
        fills = "; ".join(f"{slot}={words}" for slot, words in it.fills)
        for s, side in enumerate(SIDES):
            rows.append(
                {
                    "pair_id": it.pair_id,
                    "template_id": it.template_id,
                    "side": side,
                    "group": it.groups[s],
                    "role": "minoritized" if s == it.minoritized else "normative",
                    "sentence": it.sentences[s],
                    "fills": fills,
                    "source": it.source,
                }
            )
    return pd.DataFrame(rows)


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
    from biasprobe.downstream.models import Classifier, load_classifier

    if isinstance(probe_set, ProbeSet) or (
        hasattr(probe_set, "items") and hasattr(probe_set, "name") and hasattr(probe_set, "path")
    ):
        ps: ProbeSet | None = probe_set  # type: ignore[assignment]
        items = list(probe_set.items)
        name = set_name or probe_set.name
    else:
        ps, items, name = None, list(probe_set), set_name or "probes"
    _check_counterfactual(ps, items)
    if not models:
        raise UsageError("no classifier to run: pass --model (a sentiment run folder or a model)")
    names = [m.name if isinstance(m, Classifier) else str(m) for m in models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"model given twice: {', '.join(dupes)}")
    if not (isinstance(tolerance, int | float) and tolerance >= 0):
        raise UsageError(f"tolerance must be a number >= 0, got {tolerance!r}")
    if n_boot < 1:
        raise UsageError(f"bootstrap resamples must be at least 1, got {n_boot}")

    sentences = list(dict.fromkeys(s for it in items for s in it.sentences))
    ds_rows: list[dict[str, Any]] = []
    score_frames: list[pd.DataFrame] = []
    model_meta: list[dict[str, Any]] = []
    for spec in models:
        mname = spec.name if isinstance(spec, Classifier) else str(spec)
        if progress:
            progress(mname, "load", 0, 1)
        clf = (
            spec
            if isinstance(spec, Classifier)
            else load_classifier(
                str(spec),
                device=device,
                revision=revision,
                positive_label=positive_label,
                batch_size=batch_size,
                trust_remote_code=trust_remote_code,
            )
        )
        if progress:
            progress(mname, "load", 1, 1)
            progress(mname, "score", 0, len(sentences))
        try:
            p_pos, labels = clf.predict(sentences)
        finally:
            if not isinstance(spec, Classifier):
                clf.close()
        if progress:
            progress(mname, "score", len(sentences), len(sentences))
        by_sentence = {
            s: (float(p), lab) for s, p, lab in zip(sentences, p_pos, labels, strict=True)
        }
        for it in items:
            for s, side in enumerate(SIDES):
                p, lab = by_sentence[it.sentences[s]]
                ds_rows.append(
                    {
                        "model": mname,
                        "pair_id": it.pair_id,
                        "template_id": it.template_id,
                        "side": side,
                        "group": it.groups[s],
                        "role": "minoritized" if s == it.minoritized else "normative",
                        "sentence": it.sentences[s],
                        "p_positive": p,
                        "label": lab,
                    }
                )
        pa = [by_sentence[it.sentences[0]] for it in items]
        pb = [by_sentence[it.sentences[1]] for it in items]
        sc = pair_scores(
            [x[0] for x in pa],
            [x[0] for x in pb],
            [x[1] for x in pa],
            [x[1] for x in pb],
            [it.minoritized for it in items],
            tolerance=float(tolerance),
        )
        head = pd.DataFrame(
            {
                "model": mname,
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
        score_frames.append(pd.concat([head, sc], axis=1))
        model_meta.append(
            {
                "name": mname,
                "kind": clf.kind,
                "labels": list(clf.labels),
                "positive_label": clf.labels[clf.positive],
                "info": clf.info,
            }
        )
    downstream = pd.DataFrame(ds_rows)
    scores = pd.concat(score_frames, ignore_index=True)
    kw = {"n_resamples": n_boot, "confidence": confidence, "seed": seed}
    summary = summarize_downstream(scores, downstream, set_name=name, **kw)
    comparison = compare_models(scores, set_name=name, **kw)
    now = _dt.datetime.now(_dt.timezone.utc)
    probe_meta: dict[str, Any] = {"name": name, "n_pairs": len(items)}
    if ps is not None:
        probe_meta.update(
            {
                "version": ps.version,
                "description": ps.description,
                "source": ps.source,
                "path": ps.path,
                "sha256": ps.sha256,
                "orientation": list(ps.orientation) if ps.orientation else None,
            }
        )
    meta = {
        "kind": "downstream",
        "run_id": f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
        "created": now.isoformat(timespec="seconds"),
        "probe_set": probe_meta,
        "models": model_meta,
        "settings": {
            "tolerance": float(tolerance),
            "seed": seed,
            "n_bootstrap": n_boot,
            "confidence": confidence,
            "positive_label": positive_label,
            "device": device,
            "batch_size": batch_size,
            "revision": revision,
            "trust_remote_code": trust_remote_code,
            "n_sentences": len(sentences),
        },
        "versions": _versions(),
    }
    return DownstreamResult(meta, items_table(items), downstream, scores, summary, comparison)


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


def print_downstream(result: DownstreamResult, console: Any = None) -> None:
    """Print the set-level scores per classifier (and the change vs the base), ≤ 80 columns."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    s = result.summary
    s = s[s["level"] == "set"]
    acc = {m["name"]: (m.get("info") or {}).get("accuracy") for m in result.meta.get("models", [])}
    for model, sub in s.groupby("model", sort=False):
        a = acc.get(model)
        extra = f"  [dim]held-out acc. {a:.3f}[/dim]" if isinstance(a, int | float) else ""
        table = Table(
            title=f"{escape(str(model))}{extra}",
            title_justify="left",
            width=min(80, console.width),
        )
        table.add_column("score", overflow="fold")
        table.add_column("mean", justify="right")
        table.add_column("95% CI", justify="right", no_wrap=True)
        table.add_column("n", justify="right")
        table.add_column("p (Wilcoxon / sign)", justify="right")
        for _, r in sub.iterrows():
            label = SCORE_LABELS.get(r["score"], r["score"])
            if r["score"] == "mean_p_positive":
                label = f"{label} ({r['group']})"
            signed = r["score"] == "delta"
            p = f"{_p(r['p_wilcoxon'])} / {_p(r['p_sign'])}" if signed else ""
            mean = f"{r['mean']:+.3f}" if signed else f"{r['mean']:.3f}"
            table.add_row(escape(label), mean, _ci(r, signed=signed), str(int(r["n"])), p)
        contrasts = result.summary[
            (result.summary["model"] == model)
            & (result.summary["level"] == "contrast")
            & (result.summary["score"] == "delta")
        ]
        for _, r in contrasts.iterrows():
            p = f"{_p(r['p_wilcoxon'])} / {_p(r['p_sign'])}"
            table.add_row(escape(f"Δ {r['key']}"), f"{r['mean']:+.3f}", _ci(r), str(int(r["n"])), p)
        console.print(table)
    c = result.comparison
    if c is not None and not c.empty:
        c = c[c["level"] == "set"]
        table = Table(
            title=f"Change from the base model ({escape(str(c['base'].iloc[0]))})",
            title_justify="left",
            width=min(80, console.width),
        )
        table.add_column("model", overflow="fold")
        table.add_column("score", overflow="fold")
        table.add_column("change", justify="right")
        table.add_column("95% CI", justify="right", no_wrap=True)
        table.add_column("n", justify="right")
        for _, r in c.iterrows():
            table.add_row(
                escape(str(r["model"])),
                SCORE_LABELS.get(r["score"], r["score"]),
                f"{r['change']:+.3f}",
                _ci(r),
                str(int(r["n"])),
            )
        console.print(table)


def run_command(
    probe_set: ProbeSet | Sequence[ProbeItem],
    models: Sequence[Any],
    out: str | Path | None,
    overwrite: bool = False,
    html: bool = False,
    quiet: bool = False,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    n_boot: int = 2000,
    positive_label: str | None = None,
    device: str | None = None,
    batch_size: int = 64,
    revision: str | None = None,
    trust_remote_code: bool = False,
    progress: ProgressFn | None = None,
    console: Any = None,
) -> Path:
    """What ``biasprobe run SET -m CLASSIFIER`` does for a counterfactual set.

    Checks the output folder first (so nothing is scored for a folder that cannot be written),
    runs, writes the run folder (with ``report.html`` when ``html``), prints the tables unless
    ``quiet`` and returns the folder. Default folder: ``reports/<set>-<run id>``.
    """
    from biasprobe import fsio

    if out is not None:
        fsio.check_output_folder(out, overwrite, kinds=(RUN_KIND,), what="downstream run folder")
    result = run_downstream(
        probe_set,
        models,
        tolerance=tolerance,
        seed=seed,
        n_boot=n_boot,
        positive_label=positive_label,
        device=device,
        batch_size=batch_size,
        revision=revision,
        trust_remote_code=trust_remote_code,
        progress=progress,
    )
    target = (
        Path(out)
        if out is not None
        else Path("reports") / (f"{result.set_name}-{result.meta['run_id']}")
    )
    saved = result.save(target, overwrite=overwrite, html=html)
    if not quiet:
        print_downstream(result, console)
    return saved
