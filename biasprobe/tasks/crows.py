"""The CrowS-Pairs task: every pair scored by each model, summarised per model (overall and per
bias type) in the shared summary layout, and with several models each later model compared
with the base (:func:`biasprobe.comparisons.crows_comparison`) at summarise time.
:func:`run_crows` runs it through :func:`biasprobe.engine.run`.

A masked LM is scored by one of the two published pseudo-log-likelihood scorings (``meade``,
``nangia``: :func:`biasprobe.crows.scoring.score_pairs`); a causal LM is served as a sentence
scorer and scored by each sentence's log-likelihood exactly as lm-evaluation-harness's
``crows_pairs`` task does (``loglikelihood``:
:func:`biasprobe.crows.scoring.score_pairs_loglikelihood`), its summary also holding
``likelihood_diff`` rows. Each model's scoring is in its model block (``results.json``) and,
when a run has a sentence scorer, in a ``scoring`` column of the pair table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from biasprobe import engine as engine_loop  # "engine" is a keyword of run functions
from biasprobe.backends.cached import CachedMaskedLM
from biasprobe.backends.cached_sentences import CachedSentenceScorer
from biasprobe.crows.aggregate import (
    LIKELIHOOD_DIFF,
    LIKELIHOOD_MEANING,
    MEANING,
    summarize,
    summarize_likelihood,
)
from biasprobe.crows.data import load_pairs, normalize_bias_types, shipped_path
from biasprobe.crows.scoring import (
    LOGLIKELIHOOD,
    SCORINGS,
    pairs_stored,
    score_pairs,
    score_pairs_loglikelihood,
    sentences_stored,
)
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


#: Where the definitions of the ``loglikelihood`` scoring come from.
LM_EVAL_SOURCE = (
    "lm-evaluation-harness lm_eval/tasks/crows_pairs (crows_pairs_english.yaml: context '', "
    "choices [sent_more, sent_less]; utils.py process_results: likelihood_diff = |ll1 - ll2|, "
    "pct_stereotype = 1 if ll1 > ll2 else 0, both averaged)"
)


def crows_summary(
    table: pd.DataFrame,
    model: str,
    *,
    likelihood: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """The summary rows of one model's pairs (:func:`biasprobe.crows.aggregate.summarize`)
    in the shared summary layout: ``model``, ``score`` = :data:`SCORE`, ``mean`` = the metric,
    then the CrowS columns. With ``likelihood`` (a model scored by sentence log-likelihood)
    the :data:`~biasprobe.crows.aggregate.LIKELIHOOD_DIFF` rows follow
    (:func:`biasprobe.crows.aggregate.summarize_likelihood`, ``n_boot`` resamples, ``seed``)."""
    summary = summarize(table)
    summary.insert(0, "model", model)
    summary["score"] = SCORE
    summary["mean"] = summary["metric"]
    if likelihood:
        diff = summarize_likelihood(table, n_resamples=n_boot, seed=seed)
        diff.insert(0, "model", model)
        diff["score"] = LIKELIHOOD_DIFF
        summary = pd.concat([summary, diff], ignore_index=True)
    return leading(summary, SUMMARY_COLUMNS)


class CrowsTask:
    """CrowS-Pairs on masked LMs and, as sentence scorers, causal LMs (options as
    :func:`run_crows` takes them)."""

    kind = "crows-pairs"
    family = ("masked-lm", "sentence-scorer")
    cached = True  # token / sentence log-probs by model identity + request: a killed run resumes

    def __init__(
        self,
        *,
        scoring: str | None = None,
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

    @property
    def masked_scoring(self) -> str:
        """The scoring of the masked LMs of the run (``meade`` unless given)."""
        return self.scoring or "meade"

    def check(self) -> None:
        """The scoring, the bias types and the data file (read here, before any model)."""
        if self.scoring is not None and self.scoring not in SCORINGS:
            raise UsageError(
                f"unknown CrowS-Pairs scoring {self.scoring!r}; expected nangia or meade"
            )
        self.wanted = normalize_bias_types(self.bias_types)
        self.pairs = load_pairs(self.data, bias_types=self.wanted, limit=self.limit)

    def start(self, models: Sequence[ModelEntry]) -> None:
        """Refuse a masked-LM scoring given when every model is a sentence scorer (a causal
        LM): it would apply to none of them."""
        if self.scoring is None or not models:
            return
        if all(m.family == "sentence-scorer" for m in models):
            names = ", ".join(m.name for m in models)
            raise UsageError(
                f"--scoring {self.scoring} applies to masked language models only, and no "
                f"model of this run is one ({names}: scored by each sentence's "
                "log-likelihood, as lm-evaluation-harness's crows_pairs task does); leave "
                "--scoring out"
            )

    def score(self, backend: Any, model: ModelEntry, progress: ProgressFn | None) -> dict:
        sentences = model.family == "sentence-scorer"
        stage = "sentences" if sentences else "score"

        def report(done: int, total: int) -> None:
            if progress is not None:
                progress(model.name, stage, done, total)

        if sentences:
            if progress is not None and isinstance(backend, CachedSentenceScorer):
                if backend.identity:
                    done, todo = sentences_stored(backend, self.pairs)
                    progress(model.name, "cached", done, done + todo)
            rows = score_pairs_loglikelihood(backend, self.pairs, progress=report)
            scoring = LOGLIKELIHOOD
        else:
            if progress is not None and isinstance(backend, CachedMaskedLM) and backend.identity:
                done, todo = pairs_stored(backend, self.pairs, self.masked_scoring)
                progress(model.name, "cached", done, done + todo)
            rows = score_pairs(backend, self.pairs, self.masked_scoring, progress=report)
            scoring = self.masked_scoring
        info = dict(backend.info)
        card = model_block(
            model.name,
            model.family,
            info,
            requested=model.requested,
            alias_of=model.alias_of,
            scoring=scoring,
        )
        return {"rows": pd.DataFrame(rows), "card": card, "scoring": scoring}

    def summarise(self, parts: Sequence[dict], models: Sequence[ModelEntry]) -> CrowsResult:
        from biasprobe.comparisons import crows_comparison

        names = [p["card"]["name"] for p in parts]
        scorings = {n: p["scoring"] for p, n in zip(parts, names, strict=True)}
        likelihood = LOGLIKELIHOOD in scorings.values()
        summary = pd.concat(
            [
                crows_summary(
                    p["rows"],
                    n,
                    likelihood=scorings[n] == LOGLIKELIHOOD,
                    n_boot=self.n_boot,
                    seed=self.seed,
                )
                for p, n in zip(parts, names, strict=True)
            ],
            ignore_index=True,
        )
        table = pd.concat(
            [p["rows"].assign(model=n) for p, n in zip(parts, names, strict=True)],
            ignore_index=True,
        )
        first = ["model", "scoring"] if likelihood else ["model"]
        if likelihood:  # a run of masked LMs only keeps the table it always had
            table["scoring"] = table["model"].map(scorings)
        table = table[[*first, *[c for c in table.columns if c not in first]]]
        comparison = None
        if len(names) > 1:
            comparison = crows_comparison(
                table, base=names[0], n_resamples=self.n_boot, seed=self.seed
            )
            comparison["score"] = SCORE  # the summary's name of the percentage
            comparison = _note_scorings(comparison, scorings)
            comparison = leading(comparison, COMPARISON_COLUMNS)
        data_path = Path(self.data) if self.data is not None else shipped_path()
        meta = head(self.kind)
        settings = dict(self.settings)
        if len(names) > 1 or likelihood:
            settings.update(seed=self.seed, n_bootstrap=self.n_boot)
        meta.update(
            models=[p["card"] for p in parts],
            settings=settings,
            scoring=", ".join(dict.fromkeys(scorings.values())),
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
        if likelihood:
            meta.update(
                scorings=scorings,
                loglikelihood={
                    "pct_stereotype": "100 × mean over the pairs of [ll(sent_more) > "
                    "ll(sent_less)] (the summary's stereotype_pct rows: ties count as 0)",
                    "likelihood_diff": LIKELIHOOD_MEANING,
                    "likelihood_diff_interval": "95% percentile bootstrap over the pairs",
                    "source": LM_EVAL_SOURCE,
                },
            )
        return CrowsResult(table, summary, meta, comparison)


def _note_scorings(comparison: pd.DataFrame, scorings: dict[str, str]) -> pd.DataFrame:
    """Say on each comparison row whose model was scored otherwise than the base that the
    change compares two scorings."""
    if not len(comparison):
        return comparison
    base = str(comparison["base"].iloc[0])
    out = comparison.copy()
    notes = []
    for model, note in zip(out["model"], out["note"].fillna("")):
        if scorings.get(str(model)) != scorings.get(base):
            differ = (
                f"different scorings: base {scorings.get(base)}, model {scorings.get(str(model))}"
            )
            note = f"{note}; {differ}" if note else differ
        notes.append(note)
    out["note"] = notes
    return out


def run_crows(
    model: str | Any | Sequence[str | Any],
    *,
    scoring: str | None = None,
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
    distribute: Any = None,
    engine: str = "local",
    ray: Any = None,
) -> CrowsResult:
    """Score CrowS-Pairs with one or more masked or causal LMs (the first is the base of the
    comparison).

    Args:
        model: one model or a list: hub id (``NAME`` or ``NAME@REVISION``), a local checkpoint
            folder, ``NAME=MODEL`` (a short name), or an already loaded ``HFMaskedLM`` or
            ``HFCausalLM``. A causal LM is scored by each sentence's log-likelihood, as
            lm-evaluation-harness's ``crows_pairs`` task does (scoring ``loglikelihood``).
            Recorded models (``recorded:``) cannot run CrowS-Pairs: they only hold the
            sentences they were recorded on.
        scoring: the masked LMs' scoring: ``meade`` (bias-bench; the default, the
            leaderboard's figures) or ``nangia``. It does not apply to causal LMs: given when
            every model is a causal LM, it is refused.
        bias_types: keep only these bias types (default: all nine).
        data: a CrowS-Pairs CSV (default: the copy shipped with biasprobe).
        limit: score only the first N pairs (after the bias-type filter).
        seed, n_boot: the paired bootstrap of the comparison (several models).
        progress: called as ``progress(model, stage, done, total)``, stage ``load``,
            ``score`` (a masked LM's token requests) or ``sentences`` (a causal LM's
            sentences); with the result cache, ``cached`` once before scoring (``done`` =
            pairs whose every token log-prob, or both sentences, are stored, ``total`` = the
            model's pairs).
        cache: the result cache (:mod:`biasprobe.cache`; token log-probs and sentence
            log-likelihoods by model identity and request, so a killed run resumes): None for
            the default folder, a folder, or False for none.
        distribute: where models score (:func:`biasprobe.engine.run`): None for here, or
            e.g. a :class:`biasprobe.distributed.RayEngine` (``engine=`` builds one).
        engine: where models compute: ``"local"`` (this process) or ``"ray"`` (Ray actors,
            ``pip install 'biasprobe[ray]'``; see ``docs/ray.md``).
        ray: with ``engine="ray"``: a :class:`biasprobe.distributed.RayOptions` or a dict of
            its fields (``actors``, ``num_cpus``, ``num_gpus``, ``address``, ...).

    Raises:
        UsageError: bad scoring (or one given with causal LMs only), bias type, limit or model
        kind; CrowsDataError: bad data file;
        ModelLoadError / DeviceError: a model cannot be found or loaded.
    """
    models = list(model) if isinstance(model, list | tuple) else [model]
    for m in models:
        if isinstance(m, str) and engine_loop.split_alias(m)[1].startswith(RECORDED):
            raise UsageError(
                f"model {m}: recorded outputs only hold the sentences they were recorded "
                "on; CrowS-Pairs needs a Hugging Face masked or causal LM (hub id or checkpoint "
                "folder)"
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
    if engine != "local" or ray is not None:  # biasprobe.distributed imports torch
        from biasprobe.distributed.options import distribute_for

        distribute = distribute_for(engine, ray, distribute)
    return engine_loop.run(
        task,
        models,
        load=load,
        revision=revision,
        cache=cache,
        progress=progress,
        distribute=distribute,
    )
