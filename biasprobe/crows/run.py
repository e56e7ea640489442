"""Run CrowS-Pairs on one masked LM and read/write its run folder.

A CrowS run folder holds (written atomically: a hidden temporary sibling folder renamed into
place, never half-written):

| file | content |
|---|---|
| ``pairs.csv`` | one row per pair: pair_id, bias_type, direction, sent_more, sent_less, n_scored_more, n_scored_less, score_more, score_less, diff, outcome, more_preferred, skipped |
| ``summary.csv`` | overall and per bias type: n, n_more, n_tie, n_skipped, metric (%), ci_low, ci_high (95% Wilson), p_value (exact binomial vs 50%), p_holm, stereo/antistereo split |
| ``results.json`` | kind ``crows-pairs``, run id, date, scoring, data file + sha256, bias types, limit, model provenance, versions, file index |
| ``report.html`` | a self-contained page with the table and the 50% line |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from biasprobe.crows.aggregate import MEANING, summarize
from biasprobe.crows.data import load_pairs, normalize_bias_types, shipped_path
from biasprobe.crows.scoring import SCORINGS, score_pairs
from biasprobe.errors import RunFolderError, UsageError
from biasprobe.hub import sha256_file
from biasprobe.runfolder import (
    RESULTS_JSON,
    check_meta,
    provenance,
    read_meta,
    read_table,
    save_run_folder,
)

KIND = "crows-pairs"
WHAT = "CrowS-Pairs run folder"
FILES = {"pairs": "pairs.csv", "summary": "summary.csv", "report": "report.html"}
_TEXT = (
    "pair_id",
    "bias_type",
    "direction",
    "sent_more",
    "sent_less",
    "outcome",
    "skipped",
    "level",
    "key",
)


@dataclass
class CrowsResult:
    """Per-pair scores, the summary and provenance of one CrowS-Pairs run."""

    pairs: pd.DataFrame
    summary: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, out_dir: str | Path, overwrite: bool = False) -> Path:
        """Write the run folder atomically (see the module docstring) and return its path.

        Raises:
            OutputError: the folder exists (without ``overwrite``), is not a biasprobe run
                folder, or cannot be written.
        """
        from biasprobe.crows.report import render_html

        def write(tmp: Path) -> None:
            self.pairs.to_csv(tmp / FILES["pairs"], index=False)
            self.summary.to_csv(tmp / FILES["summary"], index=False)
            (tmp / FILES["report"]).write_text(render_html(self), encoding="utf-8")

        meta = dict(self.meta, files=dict(FILES))
        return save_run_folder(out_dir, meta, write, kind=KIND, what=WHAT, overwrite=overwrite)


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
            *("metric", "ci_low", "ci_high", "p_value", "p_holm", "stereo_pct"),
            "antistereo_pct",
        ),
        "counts": ("n", "n_tie", "stereo_n", "antistereo_n", "n_skipped"),
        "filled": ("n", "n_tie", "stereo_n", "antistereo_n", "n_skipped"),
    },
}


def load_crows_run(run_dir: str | Path) -> CrowsResult:
    """Read a CrowS run folder back (no model needed).

    Raises:
        RunFolderError: not a CrowS run folder, or a file is missing or unreadable.
    """
    d = Path(run_dir)
    meta = read_meta(d, KIND, WHAT)
    check_meta(meta, d / RESULTS_JSON, models=False)
    if not isinstance(meta.get("model", {}), dict) or not isinstance(meta.get("scoring", ""), str):
        raise RunFolderError(f"{d / RESULTS_JSON}: model must be an object and scoring text")
    pairs = read_table(d / FILES["pairs"], _TEXT, **TABLE_RULES["pairs"])
    summary = read_table(d / FILES["summary"], _TEXT, **TABLE_RULES["summary"])
    pairs["skipped"] = pairs["skipped"].fillna("")
    return CrowsResult(pairs, summary, meta)


def _load(model: str, progress: Callable[[str, int, int], None] | None, load: dict) -> tuple:
    """``(backend, True)``: the masked LM ``model`` names, loaded (it is closed after the run)."""
    if model.startswith("recorded:"):
        raise UsageError(
            f"model {model}: recorded outputs only hold the sentences they were recorded "
            "on; CrowS-Pairs needs a Hugging Face masked LM (hub id or checkpoint folder)"
        )
    from biasprobe.backends import load_backend

    if progress is not None:
        progress("load", 0, 1)
    backend = load_backend(model, **load)
    if progress is not None:
        progress("load", 1, 1)
    return backend, True


def run_crows(
    model: str | Any,
    *,
    scoring: str = "meade",
    bias_types: list[str] | tuple[str, ...] | None = None,
    data: str | Path | None = None,
    limit: int | None = None,
    device: str | None = "auto",
    batch_size: int = 64,
    revision: str | None = None,
    trust_remote_code: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> CrowsResult:
    """Score CrowS-Pairs with one masked LM.

    Args:
        model: hub id (``NAME`` or ``NAME@REVISION``), a local checkpoint folder, or an already
            loaded ``HFMaskedLM``. Recorded models (``recorded:``) cannot run CrowS-Pairs: they
            only hold the sentences they were recorded on.
        scoring: ``meade`` (bias-bench; default, the leaderboard's figures) or ``nangia``.
        bias_types: keep only these bias types (default: all nine).
        data: a CrowS-Pairs CSV (default: the copy shipped with biasprobe).
        limit: score only the first N pairs (after the bias-type filter).
        progress: called as ``progress(stage, done, total)``, stage ``load`` or ``score``.

    Raises:
        UsageError: bad scoring, bias type, limit or model kind; CrowsDataError: bad data file;
        ModelLoadError / DeviceError: the model cannot be loaded.
    """
    if scoring not in SCORINGS:
        raise UsageError(f"unknown CrowS-Pairs scoring {scoring!r}; expected nangia or meade")
    wanted = normalize_bias_types(bias_types)
    pairs = load_pairs(data, bias_types=wanted, limit=limit)
    data_path = Path(data) if data is not None else shipped_path()
    load = {"device": device, "revision": revision, "batch_size": batch_size}
    load["trust_remote_code"] = trust_remote_code
    backend, owned = _load(model, progress, load) if isinstance(model, str) else (model, False)
    try:
        rows = score_pairs(
            backend,
            pairs,
            scoring,
            progress=(lambda d, t: progress("score", d, t)) if progress is not None else None,
        )
        info = dict(backend.info)
    finally:
        if owned:
            backend.close()
    table = pd.DataFrame(rows)
    summary = summarize(table)
    meta = {
        "kind": KIND,
        **provenance(),
        "model": info,
        "scoring": scoring,
        "metric": MEANING,
        "interval": "95% Wilson score interval",
        "p_value": "exact two-sided binomial test against 50% (scipy.stats.binomtest)",
        "data": {
            "path": str(data_path.resolve()),
            "shipped": data is None,
            "sha256": sha256_file(data_path),
            "bias_types": list(wanted) if wanted else "all",
            "limit": limit,
            "n_pairs": len(pairs),
        },
        "settings": {"device": device or "auto", "batch_size": batch_size},
    }
    return CrowsResult(table, summary, meta)
