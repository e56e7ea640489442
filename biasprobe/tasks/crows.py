"""The CrowS-Pairs task: every pair scored by each masked LM (pseudo-log-likelihood,
:mod:`biasprobe.crows.scoring`), summarised per model (overall and per bias type) in the
shared summary layout, and with several models each later model compared with the base
(:func:`biasprobe.comparisons.crows_comparison`) at summarise time. :func:`run_crows` runs it
through :func:`biasprobe.engine.run`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from biasprobe import engine
from biasprobe.backends.cached import CachedMaskedLM
from biasprobe.crows.aggregate import MEANING, summarize
from biasprobe.crows.data import load_pairs, normalize_bias_types, shipped_path
from biasprobe.crows.scoring import SCORINGS, pairs_stored, score_pairs
from biasprobe.engine import ModelEntry, ProgressFn
from biasprobe.errors import UsageError
from biasprobe.hub import sha256_file
from biasprobe.runfolders.crows import SCORE, CrowsResult
from biasprobe.runfolders.schema import (
    COMPARISON_COLUMNS,
    SUMMARY_COLUMNS,
    head,
    leading,
    model_block,
)

__all__ = ["CrowsTask", "crows_summary", "run_crows"]

RECORDED = "recorded:"


def crows_summary(table: pd.DataFrame, model: str) -> pd.DataFrame:
    """The summary rows of one model's pairs (:func:`biasprobe.crows.aggregate.summarize`)
    in the shared summary layout: ``model``, ``score`` = :data:`SCORE`, ``mean`` = the metric,
    then the CrowS columns."""
    summary = summarize(table)
    summary.insert(0, "model", model)
    summary["score"] = SCORE
    summary["mean"] = summary["metric"]
    return leading(summary, SUMMARY_COLUMNS)


class CrowsTask:
    """CrowS-Pairs on masked LMs (options as :func:`run_crows` takes them)."""

    kind = "crows-pairs"
    family = "masked-lm"
    cached = True  # token log-probs by model identity + request: a killed run resumes

    def __init__(
        self,
        *,
        scoring: str = "meade",
        bias_types: Sequence[str] | None = None,
        data: str | Path | None = None,
        limit: int | None = None,
        settings: dict[str, Any] | None = None,
        seed: int = 0,
        n_boot: int = 2000,
    ) -> None:
        self.scoring, self.bias_types, self.data, self.limit = scoring, bias_types, data, limit
        self.settings = dict(settings or {})
        self.seed, self.n_boot = seed, n_boot
        self.pairs: list[Any] = []
        self.wanted: Any = None

    def check(self) -> None:
        """The scoring, the bias types and the data file (read here, before any model)."""
        if self.scoring not in SCORINGS:
            raise UsageError(
                f"unknown CrowS-Pairs scoring {self.scoring!r}; expected nangia or meade"
            )
        self.wanted = normalize_bias_types(self.bias_types)
        self.pairs = load_pairs(self.data, bias_types=self.wanted, limit=self.limit)

    def start(self, models: Sequence[ModelEntry]) -> None:
        return None

    def score(self, backend: Any, model: ModelEntry, progress: ProgressFn | None) -> dict:
        def report(done: int, total: int) -> None:
            if progress is not None:
                progress(model.name, "score", done, total)

        if progress is not None and isinstance(backend, CachedMaskedLM) and backend.identity:
            done, todo = pairs_stored(backend, self.pairs, self.scoring)
            progress(model.name, "cached", done, done + todo)
        rows = score_pairs(backend, self.pairs, self.scoring, progress=report)
        info = dict(backend.info)
        card = model_block(
            model.name, model.family, info, requested=model.requested, alias_of=model.alias_of
        )
        return {"rows": pd.DataFrame(rows), "card": card}

    def summarise(self, parts: Sequence[dict], models: Sequence[ModelEntry]) -> CrowsResult:
        from biasprobe.comparisons import crows_comparison

        names = [p["card"]["name"] for p in parts]
        summary = pd.concat(
            [crows_summary(p["rows"], n) for p, n in zip(parts, names, strict=True)],
            ignore_index=True,
        )
        table = pd.concat(
            [p["rows"].assign(model=n) for p, n in zip(parts, names, strict=True)],
            ignore_index=True,
        )
        table = table[["model", *[c for c in table.columns if c != "model"]]]
        comparison = None
        if len(names) > 1:
            comparison = crows_comparison(
                table, base=names[0], n_resamples=self.n_boot, seed=self.seed
            )
            comparison["score"] = SCORE  # the summary's name of the percentage
            comparison = leading(comparison, COMPARISON_COLUMNS)
        data_path = Path(self.data) if self.data is not None else shipped_path()
        meta = head(self.kind)
        settings = dict(self.settings)
        if len(names) > 1:
            settings.update(seed=self.seed, n_bootstrap=self.n_boot)
        meta.update(
            models=[p["card"] for p in parts],
            settings=settings,
            scoring=self.scoring,
            metric=MEANING,
            interval="95% Wilson score interval",
            p_value="exact two-sided binomial test against 50% (scipy.stats.binomtest)",
            data={
                "path": str(data_path.resolve()),
                "shipped": self.data is None,
                "sha256": sha256_file(data_path),
                "bias_types": list(self.wanted) if self.wanted else "all",
                "limit": self.limit,
                "n_pairs": len(self.pairs),
            },
        )
        return CrowsResult(table, summary, meta, comparison)


def run_crows(
    model: str | Any | Sequence[str | Any],
    *,
    scoring: str = "meade",
    bias_types: list[str] | tuple[str, ...] | None = None,
    data: str | Path | None = None,
    limit: int | None = None,
    device: str | None = "auto",
    batch_size: int = 64,
    revision: str | None = None,
    trust_remote_code: bool = False,
    seed: int = 0,
    n_boot: int = 2000,
    progress: ProgressFn | None = None,
    cache: Any = None,
) -> CrowsResult:
    """Score CrowS-Pairs with one or more masked LMs (the first is the base of the comparison).

    Args:
        model: one model or a list: hub id (``NAME`` or ``NAME@REVISION``), a local checkpoint
            folder, ``NAME=MODEL`` (a short name), or an already loaded ``HFMaskedLM``.
            Recorded models (``recorded:``) cannot run CrowS-Pairs: they only hold the
            sentences they were recorded on.
        scoring: ``meade`` (bias-bench; default, the leaderboard's figures) or ``nangia``.
        bias_types: keep only these bias types (default: all nine).
        data: a CrowS-Pairs CSV (default: the copy shipped with biasprobe).
        limit: score only the first N pairs (after the bias-type filter).
        seed, n_boot: the paired bootstrap of the comparison (several models).
        progress: called as ``progress(model, stage, done, total)``, stage ``load`` or
            ``score``; with the result cache, ``cached`` once before scoring (``done`` =
            pairs whose every token log-prob is stored, ``total`` = the model's pairs).
        cache: the result cache (:mod:`biasprobe.cache`; token log-probs by model identity
            and request, so a killed run resumes): None for the default folder, a folder, or
            False for none.

    Raises:
        UsageError: bad scoring, bias type, limit or model kind; CrowsDataError: bad data file;
        ModelLoadError / DeviceError: a model cannot be found or loaded.
    """
    models = list(model) if isinstance(model, list | tuple) else [model]
    for m in models:
        if isinstance(m, str) and engine.split_alias(m)[1].startswith(RECORDED):
            raise UsageError(
                f"model {m}: recorded outputs only hold the sentences they were recorded "
                "on; CrowS-Pairs needs a Hugging Face masked LM (hub id or checkpoint folder)"
            )
    load = {"device": device, "batch_size": batch_size, "trust_remote_code": trust_remote_code}
    task = CrowsTask(
        scoring=scoring,
        bias_types=bias_types,
        data=data,
        limit=limit,
        settings={"device": device or "auto", "batch_size": batch_size},
        seed=seed,
        n_boot=n_boot,
    )
    return engine.run(task, models, load=load, revision=revision, cache=cache, progress=progress)
