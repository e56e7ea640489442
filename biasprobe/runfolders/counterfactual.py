"""The counterfactual run (classifiers on counterfactual sentence pairs): its result and folder.

:class:`DownstreamResult` holds tidy tables:

* ``items`` — one row per (pair, side): the pairs as expanded;
* ``downstream`` — one row per (model, pair, side): ``p_positive`` and the predicted ``label``;
* ``scores`` — one row per (model, pair): Δ, |Δ|, flip, invariance failure (see
  :mod:`biasprobe.downstream.scores`);
* ``summary`` — per model, template and set: mean, 95% CI, n and p-values of every score
  (:data:`~biasprobe.runfolders.schema.SUMMARY_COLUMNS` first);
* ``comparison`` — with several models only, the change of every score from the first (base)
  model with a paired bootstrap CI over the same pairs (None for one model: no file).

:meth:`DownstreamResult.save` writes them as CSV files with ``results.json`` into a run folder,
atomically and with a biasprobe manifest of kind ``run``; :func:`load_counterfactual` reads one
back without any model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from biasprobe import runfolder
from biasprobe.errors import RunFolderError
from biasprobe.runfolders import fillmask
from biasprobe.runfolders.schema import (
    COMPARISON_COLUMNS,
    MANIFEST_KIND,
    MANIFEST_KINDS,
    SUMMARY_COLUMNS,
    leading,
    upgrade_meta,
)

__all__ = ["TABLES", "TABLE_RULES", "TEXT_COLUMNS", "DownstreamResult", "load_counterfactual"]

WHAT = "counterfactual run folder"
TABLES = ("items", "downstream", "scores", "summary", "comparison")
# Read back as text whatever they hold (a label "1", a group "2018" or a model "bert" stay words):
# the columns a fill-mask run keeps as text and the counterfactual ones.
TEXT_COLUMNS = fillmask.TEXT_COLUMNS | {
    "base",
    "label",
    "label_a",
    "label_b",
    "normative_group",
    "sentence_a",
    "sentence_b",
}


@dataclass
class DownstreamResult:
    """Everything a counterfactual run produced (see the module docstring for each table)."""

    meta: dict[str, Any]
    items: pd.DataFrame
    downstream: pd.DataFrame
    scores: pd.DataFrame
    summary: pd.DataFrame
    comparison: pd.DataFrame | None

    kind = "counterfactual"

    @property
    def models(self) -> list[str]:
        """Model names in run order (the first is the base for comparisons)."""
        return [m["name"] for m in self.meta.get("models", [])]

    @property
    def set_name(self) -> str:
        return str((self.meta.get("probe_set") or {}).get("name", "probes"))

    def save(
        self,
        out_dir: str | Path,
        overwrite: bool = False,
        *,
        report: Callable[[DownstreamResult, Path], Any] | None = None,
    ) -> Path:
        """Write the run folder atomically; ``report(result, path)``, when given, writes
        ``report.html`` into it before it is moved into place.

        Raises:
            OutputError: the folder exists without ``overwrite`` or cannot be written.
            NotOwnedError: ``overwrite`` was asked for a folder biasprobe did not write.
        """

        # comparison.csv: only for a run of several models (comparison None for one model)
        names = [n for n in TABLES if getattr(self, n) is not None]
        meta = dict(self.meta, files={name: f"{name}.csv" for name in names})
        return runfolder.save_tables(
            out_dir,
            meta,
            {name: getattr(self, name) for name in names},
            report=None if report is None else (lambda path: report(self, path)),
            kind=MANIFEST_KIND,
            what=WHAT,
            overwrite=overwrite,
            replaces=MANIFEST_KINDS,
        )


#: What each table of a counterfactual run folder must hold for the report (see
#: :func:`biasprobe.runfolder.read_table`).
TABLE_RULES: dict[str, dict[str, tuple[str, ...]]] = {
    "items": {"required": ("pair_id", "template_id", "side", "group", "role")},
    "downstream": {
        "required": ("model", "pair_id", "side", "p_positive"),
        "numbers": ("p_positive",),
    },
    "scores": {
        "required": ("model", "pair_id", "template_id", "p_a", "p_b", "delta", "flip"),
        "numbers": (
            *("p_a", "p_b", "p_minoritized", "p_normative", "delta", "abs_delta", "flip"),
            "invariance_failure",
        ),
    },
    "summary": {
        "required": ("model", "level", "key", "score", "mean", "ci_low", "ci_high", "n"),
        "numbers": ("mean", "ci_low", "ci_high", "p_value", "p_holm", "p_wilcoxon", "p_sign"),
        "counts": ("n",),
        "filled": ("n",),
    },
    "comparison": {
        "required": ("model", "base", "level", "key", "score"),
        "numbers": (
            *("base_mean", "model_mean", "change", "ci_low", "ci_high", "abs_base"),
            *("abs_model", "sign_flipped", "p_value"),
        ),
        "counts": ("n",),
    },
}


def load_counterfactual(d: Path, meta: dict[str, Any]) -> DownstreamResult:
    """Read the counterfactual run folder ``d`` (its ``results.json`` already read as
    ``meta``, of the old format or today's; no model needed). Its summary and comparison come
    back with the shared columns first (an old folder's summary gets an empty ``p_holm``).

    Only regular files inside the folder are read, whatever its ``results.json`` names; the
    ``results.json`` and every table are checked as they are read (:data:`TABLE_RULES`).

    Raises:
        RunFolderError: a file is unreadable or does not fit; the message names the file.
    """
    where = d / runfolder.RESULTS_JSON
    runfolder.check_meta(meta, where)
    meta = upgrade_meta(meta, where)
    files = meta.get("files")
    required = [n for n in TABLES if n != "comparison"]
    if not isinstance(files, dict) or not all(isinstance(files.get(n), str) for n in required):
        raise RunFolderError(f"{where}: files must name the tables {', '.join(required)}")
    if "comparison" in files and not isinstance(files["comparison"], str):
        raise RunFolderError(f"{where}: files.comparison must be a file name")
    present = [n for n in TABLES if n in files]
    tables: dict[str, Any] = {
        name: runfolder.read_table(
            runfolder.inside(d, files[name]), TEXT_COLUMNS, **TABLE_RULES[name]
        )
        for name in present
    }
    models = {m["name"] for m in meta["models"]}
    for name in present[1:]:  # every table but items.csv names its models
        others = set(tables[name]["model"]) - models
        if others:
            raise RunFolderError(
                f"{d / files[name]}: model {sorted(others)[0]!r} is not one of the run's models "
                f"in {runfolder.RESULTS_JSON}"
            )
    tables["summary"] = leading(tables["summary"], SUMMARY_COLUMNS)
    comparison = tables.pop("comparison", None)
    if len(models) < 2:
        comparison = None  # one model: nothing to compare (old folders wrote an empty table)
    elif comparison is not None and len(comparison.columns):
        comparison = leading(comparison, COMPARISON_COLUMNS)
    return DownstreamResult(meta=meta, comparison=comparison, **tables)
