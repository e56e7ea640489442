"""The HolisticBias likelihood-bias task (Smith et al. 2022) on any sentence scorer.

Every sentence of the paper's official subset (:func:`biasprobe.holistic.official_subset`, or a
seeded stratified sample of it, :func:`stratified_sample`) is scored once per model through
:meth:`~biasprobe.backends.base.SentenceScorer.sentence_logprobs` — a causal LM by the chain
rule (:class:`~biasprobe.backends.causal.HFCausalLM`), a masked LM by pseudo-log-likelihood
(:class:`~biasprobe.backends.pll.PseudoLogLikelihood`) — in fixed chunks of :data:`CHUNK`
distinct sentences, so that a result cache around the scorer stores and resumes per chunk.

The score compared is the paper's: its code (``holistic_bias/src/bias_measurements.py``) reads
each sentence's ParlAI ``ppl`` metric, the *per-token* perplexity ``exp(−mean log p)``. biasprobe
stores ``score`` = the mean log-probability per scored token (``log_likelihood / n_tokens``;
pseudo-log-likelihood per token for a masked LM), i.e. ``−log(perplexity)``: a monotone,
decreasing function of the perplexity, so every Mann–Whitney p-value is the paper's (the test
is rank-based and two-sided), while per-descriptor means stay on a readable log scale (higher =
likelier). The total log-likelihood ranks sentences differently (longer descriptors have more
tokens) and is stored beside it, not tested.

:meth:`HolisticTask.summarise` builds the Likelihood Bias tables (by axis, axis × template,
template and overall: share of significant pairs, n, Wilson CI, Holm / BH shares), the
per-descriptor mean scores with t intervals, the "I love / I hate" view, and with several models
the comparison of each with the base (the first): per axis the change of the share with a
template-bootstrap interval and the Spearman correlation of the descriptors' mean scores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from biasprobe import engine as engine_loop  # "engine" is a keyword of run functions
from biasprobe.backends.cached_sentences import CachedSentenceScorer
from biasprobe.engine import ModelEntry, ProgressFn
from biasprobe.errors import UsageError
from biasprobe.holistic import likelihood as lb
from biasprobe.holistic.dataset import VERSIONS, sentences
from biasprobe.runfolders.holistic import (
    LEVELS,
    LOVE_HATE,
    SCORE,
    SENTENCE_COLUMNS,
    HolisticResult,
    short_template,
)
from biasprobe.runfolders.schema import (
    COMPARISON_COLUMNS,
    SUMMARY_COLUMNS,
    head,
    leading,
    model_block,
)

__all__ = [
    "CHUNK",
    "PLL_METRICS",
    "HolisticTask",
    "comparison_table",
    "run_holistic",
    "select_rows",
    "stratified_sample",
]

#: Distinct sentences handed to the scorer per call (progress and cache chunks).
CHUNK = 256
#: Pseudo-log-likelihood variants of a masked LM (``original``: Salazar et al. 2020;
#: ``word_l2r``: Kauf & Ivanova 2023). Causal LMs ignore the choice.
PLL_METRICS = ("original", "word_l2r")
#: The scorer's ``scoring`` → what the per-sentence score is.
SCORING = {
    "causal": "log-likelihood by the chain rule, per scored token (−log perplexity)",
    "pll": "pseudo-log-likelihood, per scored token (−log pseudo-perplexity)",
    "pll-word-l2r": "PLL-word-l2r pseudo-log-likelihood, per scored token",
}
#: The scorer's ``scoring`` of each masked-LM pseudo-log-likelihood metric.
PLL_SCORING = {"original": "pll", "word_l2r": "pll-word-l2r"}


def select_rows(
    rows: pd.DataFrame,
    *,
    axes: Sequence[str] | None = None,
    templates: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The official subset of ``rows``, keeping only ``axes`` and ``templates`` when given.

    Raises:
        UsageError: an axis or template that is not in the data (the message lists those that
            are), or nothing left.
    """
    subset = lb.official_subset(rows)
    options = (("axis", "axes", axes, "--axis"), ("template", "templates", templates, "--template"))
    for column, plural, wanted, option in options:
        if not wanted:
            continue
        known = list(dict.fromkeys(sorted(subset[column].unique())))
        unknown = [w for w in wanted if w not in known]
        if unknown:
            listing = ", ".join(repr(k) for k in known)
            raise UsageError(
                f"{option} {unknown[0]!r} is not a HolisticBias {column} of the likelihood-bias "
                f"subset; the {plural} are: {listing}"
            )
        subset = subset[subset[column].isin(list(wanted))]
    return subset


def stratified_sample(rows: pd.DataFrame, n: int, *, seed: int = 0) -> pd.DataFrame:
    """At most ``n`` rows of ``rows``, seeded, spread evenly over the axis × template ×
    descriptor cells so that every descriptor keeps sentences.

    Each cell gets ``n // cells`` sentences (at most all of its own); the remaining ones go one
    per cell, in rounds over the descriptors (every descriptor of an axis gets one more cell
    before any gets two), cells and sentences picked with ``numpy.random.default_rng(seed)``.
    Rows keep their order and index. ``n`` at least the number of rows returns them all.

    Raises:
        UsageError: ``n`` smaller than the number of (axis, descriptor) pairs, which would leave
            a descriptor without a sentence.
    """
    if n >= len(rows):
        return rows
    keys = ["axis", "template", "descriptor"]
    cell = rows.groupby(keys, sort=True).ngroup().to_numpy()
    n_cells = int(cell.max()) + 1 if cell.size else 0
    desc = rows.groupby(["axis", "descriptor"], sort=True).ngroup().to_numpy()
    n_desc = int(desc.max()) + 1 if desc.size else 0
    if n < n_desc:
        raise UsageError(
            f"--sample {n} is too small: the axes and templates chosen have {n_desc} descriptors "
            f"and each must keep a sentence (give at least {n_desc})"
        )
    rng = np.random.default_rng(seed)
    size = np.bincount(cell, minlength=n_cells)
    cell_desc = np.zeros(n_cells, dtype=np.int64)
    cell_desc[cell] = desc
    quota_each, extra = divmod(n, n_cells)
    quota = np.minimum(size, quota_each)
    if extra:
        key = rng.random(n_cells)
        by_desc = np.lexsort((key, cell_desc))  # cells grouped by descriptor, random order
        first = np.r_[0, np.flatnonzero(np.diff(cell_desc[by_desc])) + 1]
        starts = np.repeat(first, np.diff(np.r_[first, n_cells]))
        rounds = np.empty(n_cells, dtype=np.int64)
        rounds[by_desc] = np.arange(n_cells) - starts
        order = np.lexsort((rng.random(n_cells), rounds))
        open_cells = order[quota[order] < size[order]]
        quota[open_cells[:extra]] += 1
    row_key = rng.random(len(rows))
    order = np.lexsort((row_key, cell))
    cell_start = np.r_[0, np.cumsum(size)[:-1]]
    position = np.empty(len(rows), dtype=np.int64)
    position[order] = np.arange(len(rows)) - cell_start[cell[order]]
    return rows[position < quota[cell]]


def _scored_tokens(result: Any) -> int:
    return len(result.logprobs)


class HolisticTask:
    """HolisticBias Likelihood Bias on sentence scorers (options as :func:`run_holistic`)."""

    kind = "holistic-bias"
    family = "sentence-scorer"
    cached = True  # a sentence-scorer cache keyed by model identity and chunk resumes a run

    def __init__(
        self,
        *,
        version: str = "v1.1",
        sample: int | None = None,
        seed: int = 0,
        axes: Sequence[str] | None = None,
        templates: Sequence[str] | None = None,
        pll_metric: str = "original",
        settings: dict[str, Any] | None = None,
        n_boot: int = 2000,
        chunk: int = CHUNK,
    ) -> None:
        self.version, self.sample, self.seed = version, sample, seed
        self.axes = list(axes) if axes else None
        self.templates = list(templates) if templates else None
        self.pll_metric = pll_metric
        self.settings = dict(settings or {})
        self.n_boot, self.chunk = n_boot, chunk
        self.rows: pd.DataFrame | None = None
        self.texts: list[str] = []

    def check(self) -> None:
        """The options, then the rows to score (expanded, filtered and sampled here)."""
        if self.version not in VERSIONS:
            raise UsageError(
                f"unknown HolisticBias version {self.version!r}; shipped: {', '.join(VERSIONS)}"
            )
        if self.pll_metric not in PLL_METRICS:
            raise UsageError(
                f"--pll must be one of {', '.join(PLL_METRICS)}, not {self.pll_metric!r}"
            )
        if self.sample is not None and (isinstance(self.sample, bool) or self.sample < 1):
            raise UsageError(f"--sample must be at least 1, got {self.sample}")
        if self.chunk < 1 or self.n_boot < 1:
            raise UsageError("chunk and n_boot must be at least 1")
        rows = select_rows(sentences(self.version), axes=self.axes, templates=self.templates)
        if self.sample is not None:
            rows = stratified_sample(rows, self.sample, seed=self.seed)
        self.rows = rows.reset_index(drop=True)
        # Every distinct sentence once, shortest first (fewer padded positions per batch), in
        # fixed chunks: the same sentences in the same chunks on every run of these options.
        self.texts = sorted(set(self.rows["text"]), key=lambda t: (len(t), t))

    def start(self, models: Sequence[ModelEntry]) -> None:
        return None

    def score(self, backend: Any, model: ModelEntry, progress: ProgressFn | None) -> dict:
        """Score every distinct sentence with ``backend.sentence_logprobs``, a chunk at a time.

        Raises:
            UsageError: a sentence with no scored token (nothing to average).
        """
        scoring = str(backend.scoring)
        masked = scoring in PLL_SCORING.values()
        if masked and scoring != PLL_SCORING[self.pll_metric]:
            raise UsageError(
                f"model {model.name} scores sentences by {scoring!r}, not the --pll "
                f"{self.pll_metric} asked for"
            )
        total = len(self.texts)
        logprob = np.empty(total)
        n_tokens = np.empty(total, dtype=np.int64)
        if progress is not None:
            if isinstance(backend, CachedSentenceScorer) and backend.identity:
                # A run killed earlier resumes: say how much of it the cache already holds.
                progress(model.name, "cached", int(backend.stored(self.texts).sum()), total)
            progress(model.name, "score", 0, total)
        began = time.perf_counter()
        starts = range(0, total, self.chunk)
        calls = [self.texts[start : start + self.chunk] for start in starts]
        if isinstance(backend, CachedSentenceScorer):  # every call planned at once
            results = backend.calls_logprobs(calls)
        else:
            results = (backend.sentence_logprobs(part) for part in calls)
        for start, part in zip(starts, results, strict=True):
            for i, res in enumerate(part, start=start):
                logprob[i] = res.total
                n_tokens[i] = _scored_tokens(res)
            if progress is not None:
                progress(model.name, "score", min(start + self.chunk, total), total)
        seconds = time.perf_counter() - began
        if (n_tokens == 0).any():
            bad = self.texts[int(np.flatnonzero(n_tokens == 0)[0])]
            raise UsageError(
                f"model {model.name} scores no token of the sentence {bad!r} (a causal LM "
                "without a BOS token does not score the first token): nothing to compare"
            )
        scores = pd.DataFrame({"text": self.texts, "n_tokens": n_tokens, "log_likelihood": logprob})
        info = dict(backend.info)
        inputs = int(n_tokens.sum()) if masked else total
        throughput = {
            "seconds": round(seconds, 3),
            "sentences": total,
            "sentences_per_s": total / seconds if seconds > 0 else None,
            "model_inputs": inputs,
            "model_inputs_per_s": inputs / seconds if seconds > 0 else None,
            "model_inputs_are": "masked copies (one per scored token)"
            if masked
            else "sentences (one forward sequence each)",
        }
        card = model_block(
            model.name,
            model.family,
            info,
            requested=model.requested,
            alias_of=model.alias_of,
            scoring=scoring,
            score=SCORING.get(scoring, scoring),
            pll_metric=self.pll_metric if masked else None,
            throughput=throughput,
        )
        return {"scores": scores, "card": card}

    # -- summarise ------------------------------------------------------------------------------
    def _model_tables(self, name: str, scores: pd.DataFrame) -> dict[str, pd.DataFrame]:
        assert self.rows is not None
        rows = self.rows.merge(scores, on="text", how="left", validate="many_to_one")
        rows[SCORE] = rows["log_likelihood"] / rows["n_tokens"]
        tests = lb.pair_tests(rows, SCORE)
        parts = []
        for level in LEVELS:
            table = lb.likelihood_bias(tests, level)
            if level == "axis_template":
                table["key"] = table["axis"] + " | " + table["template"].map(short_template)
            elif level == "all":
                table["key"] = "all"
                table = table.drop(columns="group")
            else:
                table["key"] = table[level]
            parts.append(table.assign(level=level))
        summary = pd.concat(parts, ignore_index=True)
        summary = summary.rename(columns={"share": "mean", "n_tests": "n"})
        summary.insert(0, "model", name)
        summary["score"] = "likelihood_bias"
        summary = leading(summary, SUMMARY_COLUMNS)
        descriptors = lb.descriptor_scores(rows, SCORE)
        love = lb.love_hate(rows, SCORE, likelier="higher")
        love = love.rename(columns=LOVE_HATE)
        out_rows = rows[list(SENTENCE_COLUMNS)]
        return {
            "sentences": out_rows.assign(model=name)[["model", *SENTENCE_COLUMNS]],
            "tests": tests.assign(model=name)[["model", *tests.columns]],
            "summary": summary,
            "descriptors": descriptors.assign(model=name)[["model", *descriptors.columns]],
            "love_hate": love.assign(model=name)[["model", *love.columns]],
        }

    def summarise(self, parts: Sequence[dict], models: Sequence[ModelEntry]) -> HolisticResult:
        assert self.rows is not None
        names = [p["card"]["name"] for p in parts]
        per_model = [self._model_tables(n, p["scores"]) for n, p in zip(names, parts, strict=True)]
        tables = {
            key: pd.concat([t[key] for t in per_model], ignore_index=True) for key in per_model[0]
        }
        comparison = None
        if len(names) > 1:
            comparison = comparison_table(
                tables["tests"], tables["descriptors"], names, n_boot=self.n_boot, seed=self.seed
            )
        counts = self.rows.groupby(["axis", "template", "descriptor"]).size()
        reach = _unreachable(tables["tests"][tables["tests"]["model"] == names[0]])
        meta = head(self.kind)
        settings = dict(self.settings, seed=self.seed)
        if len(names) > 1:
            settings["n_bootstrap"] = self.n_boot
        meta.update(
            models=[p["card"] for p in parts],
            settings=settings,
            score=(
                f"{SCORE}: mean log-probability per scored token (−log perplexity; the paper "
                "compares per-token perplexity, which ranks sentences identically)"
            ),
            test=(
                "two-sided Mann–Whitney U test of every unordered pair of descriptors in every "
                f"axis × template (scipy defaults), significant at p < {lb.ALPHA}"
            ),
            interval="95% Wilson score interval of the share (tests treated as independent)",
            adjusted="share_holm / share_bh: share still significant after Holm or "
            "Benjamini–Hochberg adjustment within each group (not in the paper)",
            data={
                "dataset": "HolisticBias",
                "version": self.version,
                "subset": "official (descriptor_noun and noun_descriptor, no gendered descriptor)",
                "axes": self.axes or "all",
                "templates": self.templates or "all",
                "sample": self.sample,
                "n_sentences": int(len(self.rows)),
                "n_distinct_sentences": len(self.texts),
                "n_axes": int(self.rows["axis"].nunique()),
                "n_templates": int(self.rows["template"].nunique()),
                "n_descriptors": int(self.rows.groupby(["axis", "descriptor"]).ngroups),
                "sentences_per_cell": {
                    "min": int(counts.min()),
                    "median": float(counts.median()),
                    "max": int(counts.max()),
                },
                "tests_that_cannot_reach_significance": reach,
            },
        )
        return HolisticResult(
            tables["sentences"],
            tables["tests"],
            tables["summary"],
            tables["descriptors"],
            tables["love_hate"],
            meta,
            comparison,
        )


def _unreachable(tests: pd.DataFrame) -> int:
    """Tests whose sample sizes cannot give p < 0.05 at all (the smallest exact two-sided p of
    sizes n0, n1 is 2 / C(n0 + n1, n0)): small samples leave such pairs never significant."""
    sizes = tests[["n_0", "n_1"]].drop_duplicates()
    bad = {
        (int(a), int(b))
        for a, b in sizes.itertuples(index=False)
        if 2.0 / math.comb(int(a) + int(b), int(a)) >= lb.ALPHA
    }
    if not bad:
        return 0
    pairs = zip(tests["n_0"].astype(int), tests["n_1"].astype(int), strict=True)
    return int(sum((a, b) in bad for a, b in pairs))


def _change_ci(
    sig: np.ndarray, cells: np.ndarray, n_boot: int, seed: int
) -> tuple[float, float, float]:
    """Change of the share of significant tests, ``sig`` (n, 2) = (base, model) per test, with a
    percentile interval from a bootstrap of the axis × template cells (each cell's tests kept
    together: tests sharing a descriptor are not independent)."""
    names, inverse = np.unique(cells, return_inverse=True)
    k = names.size
    per_cell = np.zeros((k, 2))
    np.add.at(per_cell, inverse, sig)
    size = np.bincount(inverse, minlength=k).astype(np.float64)
    change = float((per_cell[:, 1].sum() - per_cell[:, 0].sum()) / size.sum())
    if k < 2:
        return change, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, k, size=(n_boot, k))
    diff = (per_cell[:, 1] - per_cell[:, 0])[picks].sum(axis=1) / size[picks].sum(axis=1)
    low, high = np.quantile(diff, [0.025, 0.975])
    return change, float(low), float(high)


def comparison_table(
    tests: pd.DataFrame,
    descriptors: pd.DataFrame,
    models: Sequence[str],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Each later model against the base (the first), per axis and overall.

    ``base_mean`` / ``model_mean``: the Likelihood Bias shares; ``change`` = model − base over
    the same tests, ``ci_low`` / ``ci_high`` a 95% percentile interval from a bootstrap of the
    axis × template cells (seeded); ``spearman`` the rank correlation of the descriptors' mean
    scores under the two models (per axis; overall: over every axis × descriptor), with
    ``n_descriptors``.
    """
    from scipy.stats import spearmanr

    base = models[0]
    key = ["axis", "template", "descriptor_0", "descriptor_1"]
    b = tests[tests["model"] == base].set_index(key)["significant"]
    bd = descriptors[descriptors["model"] == base].set_index(["axis", "descriptor"])["mean"]
    records = []
    for model in models[1:]:
        o = tests[tests["model"] == model].set_index(key)["significant"]
        both = pd.concat([b.rename("b"), o.rename("o")], axis=1, join="inner").reset_index()
        od = descriptors[descriptors["model"] == model].set_index(["axis", "descriptor"])["mean"]
        dm = pd.concat([bd.rename("b"), od.rename("o")], axis=1, join="inner").reset_index()
        groups = [("all", "all", both, dm)] + [
            ("axis", a, both[both["axis"] == a], dm[dm["axis"] == a])
            for a in sorted(both["axis"].unique())
        ]
        for level, name, t, d in groups:
            sig = t[["b", "o"]].to_numpy(dtype=np.float64)
            cells = (t["axis"] + "\x1f" + t["template"]).to_numpy()
            change, low, high = _change_ci(sig, cells, n_boot, seed)
            rho = float(spearmanr(d["b"], d["o"]).statistic) if len(d) > 2 else float("nan")
            records.append(
                {
                    "model": model,
                    "base": base,
                    "level": level,
                    "key": name,
                    "score": "likelihood_bias",
                    "base_mean": float(sig[:, 0].mean()),
                    "model_mean": float(sig[:, 1].mean()),
                    "change": change,
                    "ci_low": low,
                    "ci_high": high,
                    "n": int(len(t)),
                    "spearman": rho,
                    "n_descriptors": int(len(d)),
                }
            )
    return leading(pd.DataFrame(records), COMPARISON_COLUMNS)


def run_holistic(
    model: str | Any | Sequence[str | Any],
    *,
    version: str = "v1.1",
    sample: int | None = None,
    seed: int = 0,
    axes: Sequence[str] | None = None,
    templates: Sequence[str] | None = None,
    pll_metric: str = "original",
    device: str | None = "auto",
    batch_size: int = 32,
    revision: str | None = None,
    trust_remote_code: bool = False,
    n_boot: int = 2000,
    progress: ProgressFn | None = None,
    cache: Any = None,
    distribute: Any = None,
    engine: str = "local",
    ray: Any = None,
) -> HolisticResult:
    """HolisticBias Likelihood Bias of one or more models (the first is the base).

    Args:
        model: one model or a list: hub id (``NAME@REV``), a local checkpoint folder,
            ``NAME=MODEL``, or a loaded sentence scorer. A causal LM is scored by the chain
            rule, a masked LM by pseudo-log-likelihood.
        version: dataset version (``v1.1``).
        sample: score a seeded stratified sample of at most this many sentences
            (:func:`stratified_sample`); default: the whole official subset (549,120).
        seed: of the sample and of the comparison's bootstrap.
        axes, templates: keep only these axes / templates (exact template text).
        pll_metric: masked LMs' pseudo-log-likelihood, ``original`` (default) or ``word_l2r``.
        device, batch_size, revision, trust_remote_code: how models are loaded.
        progress: ``progress(model, stage, done, total)``: ``load``, then ``score`` over the
            distinct sentences, after every chunk of :data:`CHUNK`.
        cache: the result cache: None for the default folder, a folder, or False for none.
        distribute: where models score (:func:`biasprobe.engine.run`): None for here, or
            e.g. a :class:`biasprobe.distributed.RayEngine` (``engine=`` builds one).
        engine: where models compute: ``"local"`` (this process) or ``"ray"`` (Ray actors,
            ``pip install 'biasprobe[ray]'``; see ``docs/ray.md``).
        ray: with ``engine="ray"``: a :class:`biasprobe.distributed.RayOptions` or a dict of
            its fields (``actors``, ``num_cpus``, ``num_gpus``, ``address``, ...).

    Raises:
        UsageError: a bad option; ModelLoadError / DeviceError: a model cannot be loaded.
    """
    models = list(model) if isinstance(model, list | tuple) else [model]
    if pll_metric not in PLL_METRICS:
        raise UsageError(f"--pll must be one of {', '.join(PLL_METRICS)}, not {pll_metric!r}")
    load: dict[str, Any] = {
        "device": device,
        "batch_size": batch_size,
        "trust_remote_code": trust_remote_code,
    }
    if pll_metric != "original":
        load["pll_metric"] = pll_metric  # the registry passes it to masked LMs' PLL
    task = HolisticTask(
        version=version,
        sample=sample,
        seed=seed,
        axes=axes,
        templates=templates,
        pll_metric=pll_metric,
        settings={"device": device or "auto", "batch_size": batch_size, "pll": pll_metric},
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
