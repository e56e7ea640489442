"""Downstream bias scores: how a classifier's P(positive) changes when only the group word does.

Pure functions over numpy arrays and pandas frames: no I/O, no models, no torch.

Per pair (signed by the pair's declared orientation, as the fill-mask scores are)::

    Δ          = P(pos | minoritized side) − P(pos | normative side)
    |Δ|        = the counterfactual token fairness gap of one pair (Garg et al. 2019)
    flip       = 1 if the two predicted labels differ, else 0
    invariance failure (CheckList INV, Ribeiro et al. 2020)
               = 1 if the labels differ or |Δ| > tolerance (default 0.1), else 0

Per template and per probe set, each with a seeded 95% bootstrap CI and n (pairs): mean Δ, mean
|Δ|, flip rate, invariance failure rate (template level: bootstrap over the template's pairs;
set level: the two-stage cluster bootstrap of :mod:`biasprobe.stats` — templates, then pairs —
and the mean of template means); the Wasserstein-1 distance between the two sides' P(pos)
distributions (Huang et al. 2020), minoritized side vs normative side, with a CI from the same
two-stage resampling; the mean P(pos) per group label. Mean Δ also gets two p-values over its
pairs: the Wilcoxon signed-rank test and the exact sign test (H0: Δ is symmetric about 0 /
positive and negative Δ are equally likely). Pairs with Δ = 0 carry no sign and are dropped by
both tests (Wilcoxon's ``zero_method="wilcox"``); when every Δ is 0 both p-values are 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

# The model comparison lives with every other comparison; re-exported for existing callers.
from biasprobe.comparisons import COUNTERFACTUAL_COLUMNS as COMPARISON_COLUMNS
from biasprobe.comparisons import COUNTERFACTUAL_MEAN_SCORES
from biasprobe.comparisons import counterfactual_comparison as compare_models
from biasprobe.measures import all_measures, less_biased
from biasprobe.stats import (
    bootstrap_ci,
    cluster_means,
    min_units,
    paired_tests,
    two_stage_bootstrap,
    unit_inference,
    w1_statistic,
)

__all__ = [
    "COMPARISON_COLUMNS",
    "DEFAULT_TOLERANCE",
    "MEAN_SCORES",
    "SCORE_LABELS",
    "compare_models",
    "paired_tests",
    "pair_scores",
    "summarize_downstream",
    "two_stage_bootstrap",
]

DEFAULT_TOLERANCE = 0.1
#: Summary level of one minoritized-vs-normative group contrast within a set (key "A vs B").
CONTRAST = "contrast"
#: Per-pair scores whose mean is aggregated, in display order.
MEAN_SCORES = COUNTERFACTUAL_MEAN_SCORES
#: Human-readable names of every summary score (declared by the registered measures,
#: :mod:`biasprobe.measures.counterfactual`).
SCORE_LABELS = {c: m.label(c) for m in all_measures("counterfactual") for c in m.columns}
#: Which direction is "less biased", per score (shown on pages and in docs).
LESS_BIASED = {c: less_biased(c, "counterfactual") for c in SCORE_LABELS}

SUMMARY_COLUMNS = [
    "model",
    "level",
    "key",
    "score",
    "group",
    "mean",
    "ci_low",
    "ci_high",
    "n",
    "p_wilcoxon",
    "p_sign",
    "p_value",
    "templates",
    "note",
]


def pair_scores(
    p_a: np.ndarray | Sequence[float],
    p_b: np.ndarray | Sequence[float],
    label_a: Sequence[str],
    label_b: Sequence[str],
    minoritized: np.ndarray | Sequence[int],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> pd.DataFrame:
    """Every per-pair score for arrays of pairs.

    Args:
        p_a: P(positive) of side A of each pair.
        p_b: P(positive) of side B.
        label_a: predicted label of side A.
        label_b: predicted label of side B.
        minoritized: 0 if side A is the minoritized side, 1 if side B is.
        tolerance: |Δ| above which a pair fails the invariance test.

    Returns:
        Columns ``p_minoritized, p_normative, delta, abs_delta, flip, invariance_failure``.
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance}")
    a = np.asarray(p_a, dtype=np.float64)
    b = np.asarray(p_b, dtype=np.float64)
    m = np.asarray(minoritized, dtype=np.int64)
    if not (a.shape == b.shape == m.shape == (len(label_a),) == (len(label_b),)):
        raise ValueError("p_a, p_b, label_a, label_b and minoritized must have the same length")
    if np.any((m != 0) & (m != 1)):
        raise ValueError("minoritized must be 0 (side A) or 1 (side B)")
    p_min = np.where(m == 0, a, b)
    p_norm = np.where(m == 0, b, a)
    delta = p_min - p_norm
    flip = np.array([x != y for x, y in zip(label_a, label_b, strict=True)], dtype=np.int64)
    inv = ((flip == 1) | (np.abs(delta) > tolerance)).astype(np.int64)
    return pd.DataFrame(
        {
            "p_minoritized": p_min,
            "p_normative": p_norm,
            "delta": delta,
            "abs_delta": np.abs(delta),
            "flip": flip,
            "invariance_failure": inv,
        }
    )


def summarize_downstream(
    scores: pd.DataFrame,
    downstream: pd.DataFrame,
    *,
    set_name: str,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Aggregate per-pair scores per template and per probe set, per model.

    Args:
        scores: one row per (model, pair_id) with ``template_id``, ``p_minoritized``,
            ``p_normative`` and the :data:`MEAN_SCORES` columns (from :func:`pair_scores`).
        downstream: one row per (model, pair_id, side) with ``template_id``, ``group`` and
            ``p_positive`` (for the per-group means).
        set_name: key of the set-level rows.

    Returns:
        Columns :data:`SUMMARY_COLUMNS`. ``level`` is ``"template"`` (key = template id),
        ``"set"`` (key = set name) or, when a set mixes several group contrasts (e.g. Black vs
        white and Asian vs white), ``"contrast"`` (key = ``"Black vs white"``; the pairs of that
        contrast, with the set's two-stage bootstrap); ``group`` is set for ``mean_p_positive`` rows only;
        ``p_wilcoxon``/``p_sign`` are given for ``delta`` rows only.
    """
    kw = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    rows: list[tuple] = []
    for model, per_model in scores.groupby("model", sort=False):
        for level, key, sub in _units(per_model, set_name):
            rows += [(model, level, key, *r) for r in _score_rows(level, sub, kw)]
        sides = downstream[downstream["model"] == model]
        rows += [(model, *r) for r in _group_rows(sides, set_name, kw)]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _units(per_model: pd.DataFrame, set_name: str) -> list[tuple[str, str, pd.DataFrame]]:
    """``(level, key, pairs)``: each template, the set, and each contrast when there are
    several."""
    units = [("template", str(t), sub) for t, sub in per_model.groupby("template_id", sort=False)]
    units.append(("set", set_name, per_model))
    if {"minoritized_group", "normative_group"} <= set(per_model.columns):
        combos = per_model.groupby(["minoritized_group", "normative_group"], sort=False)
        if combos.ngroups > 1:
            units += [(CONTRAST, f"{m} vs {n}", sub) for (m, n), sub in combos]
    return units


def _set_inference(means: np.ndarray, *, test: bool, kw: dict[str, Any]) -> Any:
    """Set-level mean, interval and p of the template means (:func:`unit_inference`)."""
    return unit_inference(means, test=test, confidence=kw["confidence"], seed=kw["seed"])


def _score_rows(level: str, sub: pd.DataFrame, kw: dict[str, Any]) -> list[tuple]:
    """``(score, group, mean, lo, hi, n, p_wilcoxon, p_sign, p_value, templates, note)`` of
    every score of one unit. A template: its pairs are the units (bootstrap interval; Wilcoxon
    and sign tests of the pairs' Δ). A set or contrast: the template means are the units, for
    the interval and every test (:func:`biasprobe.stats.unit_inference`; Wilcoxon and sign
    tests of the template means of Δ), with none below
    :data:`biasprobe.stats.MIN_SET_UNITS` templates (``note`` says why)."""
    nan = float("nan")
    clusters = sub["template_id"].astype(str).tolist()
    n, rows = len(sub), []
    few = ""
    for score in MEAN_SCORES:
        vals = sub[score].to_numpy(dtype=np.float64)
        signed = score == "delta"
        if level != "template":
            means = cluster_means(vals, clusters)[0]
            inf = _set_inference(means, test=signed, kw=kw)
            mean, lo, hi, p, units, note = (
                inf.estimate,
                inf.ci_low,
                inf.ci_high,
                inf.p_value,
                inf.units,
                inf.note,
            )
            few = note
            p_w = p_s = nan
            if signed and not note:
                p_w, p_s = paired_tests(means)
        else:
            mean, lo, hi = bootstrap_ci(vals, **kw)
            p_w, p_s = paired_tests(vals) if signed else (nan, nan)
            p, units, note = nan, 1, "1 pair: no interval or test" if n == 1 else ""
        rows.append((score, "", mean, lo, hi, n, p_w, p_s, p, units, note))
    stat = w1_statistic(
        sub["p_minoritized"].to_numpy(np.float64), sub["p_normative"].to_numpy(np.float64)
    )
    single = ["_"] * n
    w, lo, hi = two_stage_bootstrap(
        stat, single if level == "template" else clusters, batched=True, **kw
    )
    units = 1 if level == "template" else len(dict.fromkeys(clusters))
    if level != "template" and units < min_units(kw["confidence"]):
        lo = hi = nan
    rows.append(("wasserstein", "", w, lo, hi, n, nan, nan, nan, units, few))
    return rows


def _group_rows(sides: pd.DataFrame, set_name: str, kw: dict[str, Any]) -> list[tuple]:
    """``(level, key, "mean_p_positive", group, mean, lo, hi, n, nan, nan, nan, templates,
    note)`` per group label, per template (bootstrap over sides) and for the set (the template
    means, :func:`biasprobe.stats.unit_inference`)."""
    nan, rows = float("nan"), []
    for group, gsub in sides.groupby("group", sort=False):
        units = [("template", str(t), tsub) for t, tsub in gsub.groupby("template_id", sort=False)]
        for level, key, sub in [*units, ("set", set_name, gsub)]:
            vals = sub["p_positive"].to_numpy(np.float64)
            if level == "set":
                clusters = sub["template_id"].astype(str).tolist()
                inf = _set_inference(cluster_means(vals, clusters)[0], test=False, kw=kw)
                mean, lo, hi, t, note = inf.estimate, inf.ci_low, inf.ci_high, inf.units, inf.note
            else:
                mean, lo, hi = bootstrap_ci(vals, **kw)
                t, note = 1, ""
            rows.append(
                (level, key, "mean_p_positive", group, mean, lo, hi, len(vals), nan, nan, nan)
                + (t, note)
            )
    return rows
