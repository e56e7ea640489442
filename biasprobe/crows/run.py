"""Run CrowS-Pairs on masked LMs. The result and its run folder (:class:`CrowsResult`) live in
:mod:`biasprobe.runfolders.crows`; :func:`load_crows_run` reads one back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from biasprobe.crows.aggregate import MEANING, summarize
from biasprobe.crows.data import load_pairs, normalize_bias_types, shipped_path
from biasprobe.crows.scoring import SCORINGS, score_pairs
from biasprobe.errors import UsageError
from biasprobe.hub import sha256_file
from biasprobe.runfolders.crows import SCORE, WHAT, CrowsResult
from biasprobe.runfolders.schema import (
    MANIFEST_KINDS,
    SUMMARY_COLUMNS,
    head,
    leading,
    model_block,
)

__all__ = ["KIND", "KINDS", "WHAT", "CrowsResult", "load_crows_run", "run_crows"]

KIND = "crows-pairs"
#: Manifest kinds a CrowS run may replace with ``--overwrite``.
KINDS = MANIFEST_KINDS


def load_crows_run(run_dir: str | Path) -> CrowsResult:
    """Read a CrowS run folder back (:func:`biasprobe.results.load_run` of that kind).

    Raises:
        RunFolderError: not a CrowS run folder, or a file is missing or unreadable.
    """
    from biasprobe.results import load_run

    return load_run(run_dir, KIND)  # type: ignore[return-value]


def crows_summary(table: pd.DataFrame, model: str) -> pd.DataFrame:
    """The summary rows of one model's pairs (:func:`biasprobe.crows.aggregate.summarize`)
    in the shared summary layout: ``model``, ``score`` = :data:`SCORE`, ``mean`` = the metric,
    then the CrowS columns."""
    summary = summarize(table)
    summary.insert(0, "model", model)
    summary["score"] = SCORE
    summary["mean"] = summary["metric"]
    return leading(summary, SUMMARY_COLUMNS)


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
    name = str(info.get("name") or model)
    summary = crows_summary(table, name)
    table.insert(0, "model", name)
    requested = model if isinstance(model, str) else None
    meta = head(KIND)
    meta.update(
        models=[model_block(name, "masked-lm", info, requested=requested)],
        settings={"device": device or "auto", "batch_size": batch_size},
        scoring=scoring,
        metric=MEANING,
        interval="95% Wilson score interval",
        p_value="exact two-sided binomial test against 50% (scipy.stats.binomtest)",
        data={
            "path": str(data_path.resolve()),
            "shipped": data is None,
            "sha256": sha256_file(data_path),
            "bias_types": list(wanted) if wanted else "all",
            "limit": limit,
            "n_pairs": len(pairs),
        },
    )
    return CrowsResult(table, summary, meta)
