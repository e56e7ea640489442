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

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from biasprobe.stats import (
    bootstrap_ci,
    cluster_means,
    clustered_sign_flip,
    min_units,
    paired_tests,
    two_stage_bootstrap,
    unit_inference,
)

__all__ = [
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
MEAN_SCORES = ("delta", "abs_delta", "flip", "invariance_failure")
#: Human-readable names of every summary score.
SCORE_LABELS = {
    "delta": "mean Δ P(pos)",
    "abs_delta": "mean |Δ| (CTF gap)",
    "flip": "flip rate",
    "invariance_failure": "invariance failure rate",
    "wasserstein": "Wasserstein-1",
    "mean_p_positive": "mean P(pos)",
}
#: Which direction is "less biased", per score (shown on pages and in docs).
LESS_BIASED = {
    "delta": "closer to 0",
    "abs_delta": "lower (0 = the group word never matters)",
    "flip": "lower",
    "invariance_failure": "lower",
    "wasserstein": "lower",
    "mean_p_positive": "equal across groups",
}

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
COMPARISON_COLUMNS = [
    "model",
    "base",
    "level",
    "key",
    "score",
    "base_mean",
    "model_mean",
    "change",
    "ci_low",
    "ci_high",
    "n",
    "abs_base",
    "abs_model",
    "sign_flipped",
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


def _wasserstein(p_min: np.ndarray, p_norm: np.ndarray) -> Callable[[np.ndarray], float]:
    """W1 of the two sides over rows ``idx``.

    Both samples always have the same size (one value per pair and side), and for two
    equal-size samples W1 is the mean absolute difference of their sorted values — the same
    number ``scipy.stats.wasserstein_distance`` returns (tested), without its overhead inside
    the bootstrap loop.
    """

    def w1(idx: np.ndarray) -> Any:
        d = np.abs(np.sort(p_min[idx], axis=-1) - np.sort(p_norm[idx], axis=-1)).mean(axis=-1)
        return float(d) if np.ndim(d) == 0 else d

    return w1


def _mean_of_means(values: np.ndarray, clusters: Sequence[str]) -> float:
    return float(pd.Series(values).groupby(list(clusters), sort=False).mean().mean())


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
    stat = _wasserstein(
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


def compare_models(
    scores: pd.DataFrame,
    *,
    set_name: str,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Change of every score from the first (base) model, with a paired bootstrap CI.

    For the mean scores the per-pair change ``score(model) − score(base)`` on the same pairs is
    aggregated like a score: per template (bootstrap over pairs) and per set (two-stage cluster
    bootstrap, templates then pairs). For the Wasserstein distance the same pair indices are
    resampled for both models. Only pairs present for both models count (n).

    Returns:
        Columns :data:`COMPARISON_COLUMNS`; ``abs_base``/``abs_model`` are |mean| before and
        after and ``sign_flipped`` says whether a signed mean changed sign (``delta`` only).
        Empty with fewer than two models.
    """
    models = list(dict.fromkeys(scores["model"]))
    if len(models) < 2:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    base = models[0]
    kw = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    b = scores[scores["model"] == base].set_index("pair_id")
    rows: list[tuple] = []
    for model in models[1:]:
        m = scores[scores["model"] == model].set_index("pair_id")
        common = [p for p in b.index if p in m.index]
        bb, mm = b.loc[common], m.loc[common]
        templates = bb["template_id"].astype(str)
        units = [
            ("template", t, np.flatnonzero(templates.to_numpy() == t)) for t in templates.unique()
        ]
        units.append(("set", set_name, np.arange(len(common))))
        for level, key, sel in units:
            clusters = templates.to_numpy()[sel].tolist()
            for score in MEAN_SCORES:
                x0 = bb[score].to_numpy(np.float64)[sel]
                x1 = mm[score].to_numpy(np.float64)[sel]
                diff = x1 - x0
                if level == "set":
                    # the template means of the changes are the units of interval and test
                    inf = _set_inference(cluster_means(diff, clusters)[0], test=True, kw=kw)
                    change, lo, hi, p = inf.estimate, inf.ci_low, inf.ci_high, inf.p_value
                    m0, m1 = _mean_of_means(x0, clusters), _mean_of_means(x1, clusters)
                    units, note = inf.units, inf.note
                else:
                    change, lo, hi = bootstrap_ci(diff, **kw)
                    m0, m1 = float(x0.mean()), float(x1.mean())
                    # H0: the paired change is symmetric about 0 (sign flips of pair changes)
                    p = clustered_sign_flip(diff, ["_"] * len(sel))
                    units, note = 1, ""
                flipped = bool(np.sign(m0) * np.sign(m1) < 0) if score == "delta" else False
                rows.append(
                    (model, base, level, key, score, m0, m1, change, lo, hi, len(sel))
                    + (abs(m0), abs(m1), flipped, p, units, note)
                )
            a0 = bb["p_minoritized"].to_numpy(np.float64)[sel]
            n0 = bb["p_normative"].to_numpy(np.float64)[sel]
            a1 = mm["p_minoritized"].to_numpy(np.float64)[sel]
            n1 = mm["p_normative"].to_numpy(np.float64)[sel]
            w0, w1 = _wasserstein(a0, n0), _wasserstein(a1, n1)
            w_base, w_model = w0(np.arange(len(sel))), w1(np.arange(len(sel)))
            change, lo, hi = two_stage_bootstrap(
                lambda i, w0=w0, w1=w1: w1(i) - w0(i),
                clusters if level == "set" else ["_"] * len(sel),
                batched=True,
                **kw,
            )
            units = len(dict.fromkeys(clusters)) if level == "set" else 1
            if level == "set" and units < min_units(kw["confidence"]):
                lo = hi = float("nan")
            rows.append(
                (model, base, level, key, "wasserstein", w_base, w_model, change, lo, hi)
                + (len(sel), w_base, w_model, False, float("nan"))  # no paired null for W1
                + (units, "")
            )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
