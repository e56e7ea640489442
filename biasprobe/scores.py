"""Skew scores between the two sides of a probe pair, and their aggregation.

Pure functions over numpy arrays and pandas frames: no I/O, no models. Every formula is written
out in the README ("What the scores mean"); the docstrings here repeat it.

Conventions: side A and side B are the two sentences of a pair in the order the template writes
them (A is the x axis of a scatter). Signed scores are oriented by the pair's declared
orientation: ``signed = value(minoritized side) − value(normative side)``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd

from biasprobe.stats import (
    bootstrap_ci,
    cluster_bootstrap_ci,  # noqa: F401  (re-exported: defined here before)
    cluster_means,
    clustered_sign_flip,
    holm,
    min_units,
    percentile_interval,
    resampled_cluster_means,
    sign_flip_test,
    unit_inference,
)

#: Scores aggregated in ``summary.csv``, in display order.
SUMMARY_SCORES = (
    "jaccard_distance",
    "rbo_distance",
    "js_divergence",
    "target_gap_mean",
    "kurita_bias",
)
#: Signed scores (minoritized − normative, 0 = no skew): their means get a sign-flip p-value.
SIGNED_SCORES = ("target_gap_mean", "kurita_bias")
#: Scores of a pair that compare its two sentences; meaningless (NaN) for attribute pairs,
#: whose two sides share one sentence and differ in the target word only.
SKEW_SCORES = (
    "overlap",
    "jaccard_distance",
    "rbo",
    "rbo_distance",
    "js_divergence",
    "top1_same",
    "target_gap",
    "target_gap_mean",
)
#: Persistence of rank-biased overlap used by every run (recorded in results.json).
RBO_P = 0.9


def rank_order(logprobs: np.ndarray) -> np.ndarray:
    """Token ids from most to least probable; ties go to the lower token id, NaN last.

    The one tie-breaking rule of biasprobe: :func:`topk`, :func:`full_ranks`, the report's
    figures and ``RunResult.token_table`` all follow it.
    """
    v = np.asarray(logprobs, dtype=np.float64)
    v = np.where(np.isnan(v), -np.inf, v)
    return np.lexsort((np.arange(v.size), -v))  # lexsort's last key is the primary one


def full_ranks(logprobs: np.ndarray) -> np.ndarray:
    """1-based rank of every token over the whole vocabulary (:func:`rank_order`'s rule).

    Args:
        logprobs: (V,) log-probabilities.

    Returns:
        (V,) int64 ranks, 1 = most probable.
    """
    order = rank_order(logprobs)
    ranks = np.empty(order.size, dtype=np.int64)
    ranks[order] = np.arange(1, order.size + 1)
    return ranks


def topk(logprobs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most probable token ids and their log-probs, most probable first.

    Ties are broken by the lower token id (:func:`rank_order`), so results are deterministic.

    Args:
        logprobs: (V,) log-probabilities over the vocabulary.
        k: how many tokens.

    Returns:
        ``(ids, values)``, each of shape (min(k, V),).
    """
    k = min(int(k), logprobs.shape[-1])
    neg = -logprobs
    # Every token at least as probable as the k-th one (ties included), then an exact sort:
    # by -logprob, then by id (lexsort's last key is the primary one).
    kth = np.partition(neg, k - 1)[k - 1]
    cand = np.flatnonzero(neg <= kth)
    ids = cand[np.lexsort((cand, neg[cand]))][:k]
    return ids, logprobs[ids]


def jaccard_distance(a: Sequence[int], b: Sequence[int]) -> float:
    """``1 − |A ∩ B| / |A ∪ B|`` of two top-k sets: 0 = same tokens, 1 = no token shared."""
    sa, sb = set(a), set(b)
    union = sa | sb
    if not union:
        return 0.0
    return 1.0 - len(sa & sb) / len(union)


def rank_biased_overlap(a: Sequence[int], b: Sequence[int], p: float = 0.9) -> float:
    """Extrapolated rank-biased overlap (Webber, Moffat & Zobel 2010, eq. 32) of two rankings.

    For two lists of the same depth ``k`` with ``X_d = |A[:d] ∩ B[:d]|``::

        RBO = (X_k / k) · p^k + ((1 − p) / p) · Σ_{d=1..k} (X_d / d) · p^d

    1 = identical rankings, 0 = disjoint. ``p`` sets how top-heavy it is: with p = 0.9 the
    first 10 ranks carry about 86% of the weight.

    Args:
        a: ranked token ids of side A (best first).
        b: ranked token ids of side B, same length as ``a``.
        p: persistence, 0 < p < 1.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"rank-biased overlap needs 0 < p < 1, got {p}")
    k = min(len(a), len(b))
    if k == 0:
        return 1.0
    seen_a: set[int] = set()
    seen_b: set[int] = set()
    overlap = 0
    total = 0.0
    for d in range(1, k + 1):
        x, y = a[d - 1], b[d - 1]
        if x == y:
            overlap += 1
        else:
            overlap += (x in seen_b) + (y in seen_a)
        seen_a.add(x)
        seen_b.add(y)
        total += (overlap / d) * p**d
    return float((overlap / k) * p**k + (1.0 - p) / p * total)


def js_divergence(logp_a: np.ndarray, logp_b: np.ndarray) -> float:
    """Jensen–Shannon divergence in bits between the two full-vocabulary distributions.

    ``JS = ½ KL(P_A ‖ M) + ½ KL(P_B ‖ M)``, ``M = ½ (P_A + P_B)``; 0 = identical, 1 = disjoint.
    """
    la = logp_a.astype(np.float64)
    lb = logp_b.astype(np.float64)
    lm = np.logaddexp(la, lb) - np.log(2.0)
    pa, pb = np.exp(la), np.exp(lb)
    with np.errstate(invalid="ignore"):
        # 0 · log 0 = 0: tokens with probability exactly 0 contribute nothing.
        kl_a = np.sum(np.where(pa > 0, pa * (la - lm), 0.0))
        kl_b = np.sum(np.where(pb > 0, pb * (lb - lm), 0.0))
    return float(max(0.0, 0.5 * (kl_a + kl_b) / np.log(2.0)))


def spearman_fixed(base: np.ndarray, other: np.ndarray, n: int | None = 300) -> float:
    """Spearman rank correlation of two models' log-prob vectors for the same sentence, over a
    token set fixed by the base model alone.

    ``n`` = 300: the base model's top-300 tokens (:func:`topk`); ``n`` = None: the whole
    vocabulary. The set never depends on the second model: ranking over the union of both
    models' top tokens (as PAIR's notebook does) selects tokens *because* one model ranks them
    high, which builds in a negative correlation (two independent random models then show
    ρ ≈ −0.7). 1 = the same ranking, 0 = unrelated.
    """
    from scipy.stats import spearmanr

    ids = np.arange(base.size) if n is None else topk(base, n)[0]
    if ids.size < 2:
        return float("nan")
    return float(spearmanr(base[ids], other[ids]).statistic)


def pair_scores(
    logp_a: np.ndarray,
    logp_b: np.ndarray,
    *,
    k: int,
    minoritized: int,
    target_logprobs: np.ndarray | None = None,
    rbo_p: float = RBO_P,
) -> dict[str, object]:
    """Every skew score of one pair under one model.

    Args:
        logp_a: (V,) full-vocabulary log-probs at the mask, side A.
        logp_b: (V,) same for side B.
        k: depth of the top-k lists.
        minoritized: 0 if side A is the minoritized group, 1 if side B is.
        target_logprobs: optional (2, T) log p(target) for side A (row 0) and side B (row 1).
        rbo_p: persistence of rank-biased overlap.

    Returns:
        A flat dict (one row of ``scores.csv``; see the README for each field).
    """
    ids_a, _ = topk(logp_a, k)
    ids_b, _ = topk(logp_b, k)
    set_a, set_b = set(ids_a.tolist()), set(ids_b.tolist())
    rbo = rank_biased_overlap(ids_a.tolist(), ids_b.tolist(), rbo_p)
    row: dict[str, object] = {
        "k": int(len(ids_a)),
        "overlap": len(set_a & set_b),
        "jaccard_distance": jaccard_distance(ids_a, ids_b),
        "rbo": rbo,
        "rbo_distance": 1.0 - rbo,
        "js_divergence": js_divergence(logp_a, logp_b),
        "top1_same": bool(ids_a[0] == ids_b[0]),
        "exclusive_a_ids": [i for i in ids_a.tolist() if i not in set_b],
        "exclusive_b_ids": [i for i in ids_b.tolist() if i not in set_a],
    }
    if target_logprobs is not None and target_logprobs.shape[-1] > 0:
        sign = 1.0 if minoritized == 0 else -1.0
        gaps = sign * (target_logprobs[0] - target_logprobs[1])  # (T,) minoritized − normative
        row["n_targets"] = int(gaps.size)
        row["target_gap"] = float(gaps.sum())
        row["target_gap_mean"] = float(gaps.mean())
    else:
        row["n_targets"] = 0
        row["target_gap"] = float("nan")
        row["target_gap_mean"] = float("nan")
    return row


def kurita_bias(
    target_logprobs: Sequence[float], prior_logprobs: Sequence[float], minoritized: int
) -> float:
    """Prior-normalised log-probability bias (Kurita et al. 2019) of one attribute pair.

    Side i scores ``log p(t_i | s) − log p(t_i | prior)``: how much the attribute raises its
    target word over the same sentence with the attribute masked too. The score is the
    minoritized side's value minus the normative side's (> 0: the attribute raises the
    minoritized group's word more)::

        kurita_bias = [log p(t_min | s) − log p(t_min | prior)]
                    − [log p(t_norm | s) − log p(t_norm | prior)]

    Args:
        target_logprobs: ``log p(t_A | s_A), log p(t_B | s_B)``.
        prior_logprobs: ``log p(t_A | prior_A), log p(t_B | prior_B)``.
        minoritized: 0 if side A is the minoritized group, 1 if side B is.
    """
    if minoritized not in (0, 1):
        raise ValueError(f"minoritized must be 0 or 1, got {minoritized}")
    side = [float(target_logprobs[s]) - float(prior_logprobs[s]) for s in (0, 1)]
    return side[minoritized] - side[1 - minoritized]


def blank_skew_scores(row: dict[str, object]) -> dict[str, object]:
    """Set the sentence-comparing scores (:data:`SKEW_SCORES` and the ``valence_*`` columns) of
    a :func:`pair_scores` row to NaN, in place: an attribute pair's two sides are one sentence, so they would be 0 (or
    "identical") by construction and say nothing."""
    for key in list(row):
        if key in SKEW_SCORES or key.startswith("valence_"):
            row[key] = float("nan")
    return row


def paired_delta(
    base: np.ndarray | Sequence[float],
    other: np.ndarray | Sequence[float],
    clusters: Sequence[str],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    n_perm: int = 10_000,
) -> dict[str, Any]:
    """Change of a score from the base model to another, over the same pairs.

    Args:
        base: the score of each pair under the base model.
        other: the same pairs under the other model (same order).
        clusters: template id of each pair.

    Returns:
        ``base, other`` (means of template means over the pairs both have), ``delta`` (other
        − base) with ``delta_low, delta_high``, the same for ``abs_delta`` = |other| − |base|
        (for signed scores: negative = closer to zero = less skew), ``sign_flipped`` (1.0 when
        the two means have opposite signs), ``p_value`` (two-sided test of "no change"),
        ``n`` (pairs used), ``templates`` and ``note``.

        One template: the pairs are the units (paired bootstrap interval, sign-flip test of
        the per-pair differences). Several templates: the template means of the differences
        are the units, for the interval and the test alike
        (:func:`biasprobe.stats.unit_inference`: they always agree); the ``abs_delta``
        interval is the paired two-stage bootstrap (templates, then pairs within them). With
        fewer than :data:`biasprobe.stats.MIN_SET_UNITS` templates the set-level intervals and
        p are NaN and ``note`` says why. NaN intervals with fewer than two pairs.
    """
    b = np.asarray(base, dtype=np.float64)
    o = np.asarray(other, dtype=np.float64)
    c = np.asarray(list(clusters))
    keep = ~(np.isnan(b) | np.isnan(o))
    b, o, c = b[keep], o[keep], c[keep]
    nan = float("nan")
    out: dict[str, Any] = {"n": float(b.size), "base": nan, "other": nan, "delta": nan}
    out.update(abs_delta=nan, delta_low=nan, delta_high=nan, abs_delta_low=nan)
    out.update(abs_delta_high=nan, sign_flipped=nan, p_value=nan, templates=0, note="")
    if b.size == 0:
        return out
    point, reps = resampled_cluster_means(np.column_stack([b, o]), c, n_resamples, seed)
    out.update(base=float(point[0]), other=float(point[1]), delta=float(point[1] - point[0]))
    out["abs_delta"] = float(abs(point[1]) - abs(point[0]))
    out["sign_flipped"] = float(np.sign(point[0]) * np.sign(point[1]) < 0)
    names = list(dict.fromkeys(c.tolist()))
    out["templates"] = len(names)
    if len(names) < 2:
        out["p_value"] = clustered_sign_flip(o - b, c, n_perm=n_perm, seed=seed)
        if b.size >= 2:
            out["delta_low"], out["delta_high"] = percentile_interval(
                reps[:, 1] - reps[:, 0], confidence
            )
            abs_reps = np.abs(reps[:, 1]) - np.abs(reps[:, 0])
            out["abs_delta_low"], out["abs_delta_high"] = percentile_interval(abs_reps, confidence)
        else:
            out["note"] = "1 pair: no interval or test"
        return out
    means, _ = cluster_means(o - b, c.tolist())
    inf = unit_inference(means, confidence=confidence, n_perm=n_perm, seed=seed)
    out.update(delta_low=inf.ci_low, delta_high=inf.ci_high, p_value=inf.p_value, note=inf.note)
    if len(names) >= min_units(confidence):
        abs_reps = np.abs(reps[:, 1]) - np.abs(reps[:, 0])
        out["abs_delta_low"], out["abs_delta_high"] = percentile_interval(abs_reps, confidence)
    return out


def compare_to_base(
    scores: pd.DataFrame,
    other_scores: pd.DataFrame,
    *,
    base_model: str,
    other_model: str,
    score_names: Sequence[str] = SUMMARY_SCORES,
    set_name: str = "set",
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    n_perm: int = 10_000,
) -> pd.DataFrame:
    """Paired changes from the base model, per template and for the whole set.

    Pairs are matched on ``pair_id``; only pairs both models ran count. Returns one row per
    (level, key, score) with the columns of :func:`paired_delta` and ``p_holm`` (Holm across
    the templates of the set, per score; NaN on the set row).
    """
    nan = float("nan")
    b = scores[scores["model"] == base_model]
    o = other_scores[other_scores["model"] == other_model]
    both = b.merge(o, on=["pair_id", "template_id"], suffixes=("_base", "_other"))
    rows = []
    kw = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed, "n_perm": n_perm}
    for score in score_names:
        if f"{score}_base" not in both or f"{score}_other" not in both:
            continue
        per_template = []
        for template, sub in both.groupby("template_id", sort=False):
            d = paired_delta(
                sub[f"{score}_base"], sub[f"{score}_other"], [template] * len(sub), **kw
            )
            if d["n"]:
                per_template.append({"level": "template", "key": template, "score": score, **d})
        adjusted = holm([r["p_value"] for r in per_template])
        for r, adj in zip(per_template, adjusted):
            r["p_holm"] = float(adj)
        rows += per_template
        d = paired_delta(both[f"{score}_base"], both[f"{score}_other"], both["template_id"], **kw)
        if d["n"]:
            rows.append({"level": "set", "key": set_name, "score": score, **d, "p_holm": nan})
    return pd.DataFrame(rows)


def summarize(
    scores: pd.DataFrame,
    *,
    set_name: str,
    score_names: Sequence[str] = SUMMARY_SCORES,
    signed: Sequence[str] = SIGNED_SCORES,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    n_perm: int = 10_000,
    arbitrary: Collection[str] = (),
) -> pd.DataFrame:
    """Aggregate per-pair scores per template (over lexicon expansions) and per probe set.

    Args:
        scores: one row per (model, pair_id) with ``template_id`` and the score columns.
        set_name: key used for the set-level rows.
        signed: the scores whose mean gets a p-value (signed, null "mean 0" meaningful).
        n_perm: sign flips of the random mode of the tests (exact for up to 16 values).
        arbitrary: template ids whose orientation is arbitrary (a sign convention, not a
            social contrast): their pairs keep their template rows but are left out of the
            set rows of signed scores (``note`` says how many), since averaging a sign
            convention with oriented pairs means nothing. Distances keep every pair.

    Returns:
        Columns :data:`SUMMARY_COLUMNS`: ``model, level, key, score, mean, ci_low, ci_high, n,
        p_value, p_holm, templates, note``. ``level`` is ``"template"`` (key = template id;
        plain bootstrap over its pairs; p: sign-flip test of its pairs; a one-pair template has
        neither) or ``"set"`` (key = set name; the mean of the template means, with the
        interval and p-value of :func:`biasprobe.stats.unit_inference` over the template
        means — one unit, one set of sign flips, so p and interval always agree; NaN with a
        ``note`` when the set has fewer than :data:`biasprobe.stats.MIN_SET_UNITS`
        templates). ``p_holm``: Holm across the templates of the set, per model and score
        (template rows only). p is NaN for unsigned distances, which have no "0 = no bias"
        null to test. ``templates``: templates behind the row (1 on template rows).
    """
    nan = float("nan")
    rows = []
    for model, per_model in scores.groupby("model", sort=False):
        for score in score_names:
            if score not in per_model:
                continue
            test = score in signed
            template_rows = []
            for template, sub in per_model.groupby("template_id", sort=False):
                vals = sub[score].to_numpy(dtype=np.float64)
                mean, lo, hi = bootstrap_ci(
                    vals, n_resamples=n_resamples, confidence=confidence, seed=seed
                )
                n = int(np.count_nonzero(~np.isnan(vals)))
                if n:
                    # one pair: its two sign patterns always tie, so no test (not p = 1)
                    p = sign_flip_test(vals, n_perm=n_perm, seed=seed) if test and n > 1 else nan
                    note = "1 pair: no interval or test" if n == 1 else ""
                    row = [model, "template", template, score, mean, lo, hi, n, p, 1, note]
                    template_rows.append(row)
            adjusted = holm([r[8] for r in template_rows])
            rows += [(*r[:9], float(adj), *r[9:]) for r, adj in zip(template_rows, adjusted)]
            pairs = per_model
            left_out = ""
            if test and arbitrary:
                drop = per_model["template_id"].astype(str).isin(set(arbitrary))
                drop &= per_model[score].notna()
                if drop.any():
                    pairs = per_model[~drop]
                    count = int(drop.sum())
                    left_out = (
                        f"{count} pair{'s' if count != 1 else ''} of arbitrary orientation "
                        f"left out (the sign of such a pair is a convention)"
                    )
            vals = pairs[score].to_numpy(dtype=np.float64)
            n = int(np.count_nonzero(~np.isnan(vals)))
            if n:
                means, _ = cluster_means(vals, pairs["template_id"].astype(str).tolist())
                inf = unit_inference(
                    means, test=test, confidence=confidence, n_perm=n_perm, seed=seed
                )
                note = "; ".join(x for x in (inf.note, left_out) if x)
                rows.append(
                    (model, "set", set_name, score, inf.estimate, inf.ci_low, inf.ci_high, n)
                    + (inf.p_value, nan, inf.units, note)
                )
            elif left_out:
                rows.append(
                    (model, "set", set_name, score, nan, nan, nan, 0, nan, nan, 0)
                    + (f"every pair has an arbitrary orientation: {left_out}",)
                )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


#: Columns of ``summary.csv``.
SUMMARY_COLUMNS = [
    "model",
    "level",
    "key",
    "score",
    "mean",
    "ci_low",
    "ci_high",
    "n",
    "p_value",
    "p_holm",
    "templates",
    "note",
]
