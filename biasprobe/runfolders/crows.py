"""The CrowS-Pairs run: its result and run folder.

A CrowS run folder holds (written atomically: a hidden temporary sibling folder renamed into
place, never half-written):

| file | content |
|---|---|
| ``pairs.csv`` | one row per (model, pair): model, (scoring: only in a run with a causal LM), pair_id, bias_type, direction, sent_more, sent_less, n_scored_more, n_scored_less, score_more, score_less, diff, outcome, more_preferred, skipped. For a causal LM (scoring ``loglikelihood``) score_more/score_less are the sentences' log-likelihoods ll, diff = ll(sent_more) − ll(sent_less), n_scored_* the tokens scored |
| ``summary.csv`` | per model, overall and per bias type: the shared columns (``score`` is ``stereotype_pct``, ``mean`` the % of pairs where the model prefers the more-stereotypical sentence, ``ci_low``/``ci_high`` its 95% Wilson interval, ``p_value`` the exact binomial test vs 50%, ``p_holm`` Holm across bias types), then n_more, n_tie, n_skipped, metric (= mean, its old name), the stereo/antistereo split; for a causal LM also rows of ``score`` ``likelihood_diff`` (``mean`` = the mean absolute diff, ``ci_low``/``ci_high`` its bootstrap interval, the percentage columns empty) |
| ``comparison.csv`` | with several models: every model's change from the base model (the first); ``note`` says when the two were scored differently |
| ``results.json`` | the shared keys (kind ``crows-pairs``; each model block with its ``scoring``), then scoring (the scorings used, in run order), metric, interval, p_value, data (file, sha256, bias types, limit); with a causal LM ``scorings`` (model → scoring) and ``loglikelihood`` (definitions and their lm-evaluation-harness source) |
| ``report.html`` | a self-contained page with the table and the 50% line |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from biasprobe.errors import RunFolderError
from biasprobe.runfolder import RESULTS_JSON, check_meta, inside, read_table, save_tables
from biasprobe.runfolders.schema import (
    COMPARISON_COLUMNS,
    MANIFEST_KIND,
    MANIFEST_KINDS,
    SUMMARY_COLUMNS,
    leading,
    upgrade_meta,
)

__all__ = ["FILES", "TABLE_RULES", "TEXT_COLUMNS", "CrowsResult", "SCORE", "load_crows"]

KIND = "crows-pairs"
WHAT = "CrowS-Pairs run folder"
FILES = {"pairs": "pairs.csv", "summary": "summary.csv", "report": "report.html"}
#: The ``score`` of CrowS summary rows: % of pairs where the more-stereotypical sentence wins.
SCORE = "stereotype_pct"
TEXT_COLUMNS = frozenset(
    (
        *("model", "base", "pair_id", "bias_type", "direction", "sent_more", "sent_less"),
        *("outcome", "skipped", "level", "key", "score", "note", "scoring"),
    )
)


@dataclass
class CrowsResult:
    """Per-pair scores, the summary (and with several models the comparison with the base
    model) and provenance of one CrowS-Pairs run."""

    pairs: pd.DataFrame
    summary: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    comparison: pd.DataFrame | None = None

    kind = KIND

    @property
    def models(self) -> list[str]:
        """Model names in run order (the first is the base for comparisons)."""
        return [m["name"] for m in self.meta.get("models", [])]

    def save(
        self,
        out_dir: str | Path,
        overwrite: bool = False,
        *,
        report: Callable[[CrowsResult, Path], Any] | None = None,
    ) -> Path:
        """Write the run folder atomically (see the module docstring) and return its path;
        ``report(result, path)``, when given, writes ``report.html`` into it first.

        Raises:
            OutputError: the folder exists (without ``overwrite``), is not a biasprobe run
                folder, or cannot be written.
        """
        files = {"pairs": FILES["pairs"], "summary": FILES["summary"]}
        if self.comparison is not None:
            files["comparison"] = "comparison.csv"
        if report is not None:
            files["report"] = FILES["report"]

        return save_tables(
            out_dir,
            dict(self.meta, files=files),
            {name: getattr(self, name) for name in files if name != "report"},
            report=None if report is None else (lambda path: report(self, path)),
            kind=MANIFEST_KIND,
            what=WHAT,
            overwrite=overwrite,
            replaces=MANIFEST_KINDS,
        )


#: What the tables of a CrowS run folder must hold for its report (see
#: :func:`biasprobe.runfolder.read_table`).
TABLE_RULES: dict[str, dict[str, tuple[str, ...]]] = {
    "pairs": {
        "required": ("pair_id", "skipped"),
        "numbers": ("score_more", "score_less"),
    },
    "summary": {
        "required": (
            *("key", "metric", "ci_low", "ci_high", "n", "n_tie", "p_value", "p_holm"),
            *("stereo_pct", "stereo_n", "antistereo_pct", "antistereo_n", "n_skipped"),
        ),
        "numbers": (
            *("metric", "mean", "ci_low", "ci_high", "p_value", "p_holm", "stereo_pct"),
            "antistereo_pct",
        ),
        "counts": ("n", "n_tie", "stereo_n", "antistereo_n", "n_skipped"),
        "filled": ("n", "n_tie", "stereo_n", "antistereo_n", "n_skipped"),
    },
    "comparison": {
        "required": ("model", "base", "level", "key", "score", "change", "n"),
        "numbers": ("base_mean", "model_mean", "change", "ci_low", "ci_high", "p_value"),
        "counts": ("n",),
    },
}


def load_crows(d: Path, meta: dict[str, Any]) -> CrowsResult:
    """Read the CrowS run folder ``d`` (its ``results.json`` already read as ``meta``, of the
    old format or today's; no model needed). A folder of the old format (one ``model``, tables
    without a model column) comes back in today's: ``models``, and the model's name in a
    ``model`` column of both tables, the summary with the shared columns first.

    Raises:
        RunFolderError: a file is missing, unreadable or does not fit.
    """
    where = d / RESULTS_JSON
    check_meta(meta, where, models="models" in meta)
    if not isinstance(meta.get("model", {}), dict) or not isinstance(meta.get("scoring", ""), str):
        raise RunFolderError(f"{where}: model must be an object and scoring text")
    meta = upgrade_meta(meta, where)
    files = meta.get("files") if isinstance(meta.get("files"), dict) else {}
    tables: dict[str, pd.DataFrame] = {}
    for name in ("pairs", "summary", "comparison"):
        rel = files.get(name, FILES.get(name))
        if rel is None:
            continue
        tables[name] = read_table(inside(d, rel), TEXT_COLUMNS, **TABLE_RULES[name])
    pairs, summary = tables["pairs"], tables["summary"]
    pairs["skipped"] = pairs["skipped"].fillna("")
    names = [m["name"] for m in meta["models"]]
    for name, table in (("pairs", pairs), ("summary", summary)):
        if "model" not in table.columns:  # the old format: one model
            table.insert(0, "model", names[0])
        others = set(table["model"]) - set(names)
        if others:
            raise RunFolderError(
                f"{d / files.get(name, FILES[name])}: model {sorted(others)[0]!r} is not one of "
                f"the run's models in {RESULTS_JSON}"
            )
    if "mean" not in summary.columns:
        summary["mean"] = summary["metric"]
    if "score" not in summary.columns:
        summary["score"] = SCORE
    summary = leading(summary, SUMMARY_COLUMNS)
    comparison = tables.get("comparison")
    if comparison is not None:
        comparison = leading(comparison, COMPARISON_COLUMNS)
    return CrowsResult(pairs, summary, meta, comparison)
