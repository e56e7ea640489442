"""Skew scores between the two sides of a probe pair, and their aggregation.

Pure functions over numpy arrays and pandas frames: no I/O, no models. Every formula is written
out in the README ("What the scores mean"); the docstrings here repeat it.

Conventions: side A and side B are the two sentences of a pair in the order the template writes
them (A is the x axis of a scatter). Signed scores are oriented by the pair's declared
orientation: ``signed = value(minoritized side) − value(normative side)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Scores aggregated in ``summary.csv``, in display order.
SUMMARY_SCORES = ("jaccard_distance", "rbo_distance", "js_divergence", "target_gap_mean")
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


def spearman_topn(x: np.ndarray, y: np.ndarray, n: int = 300) -> float:
    """Spearman rank correlation of two log-prob vectors over the union of their top-``n`` tokens.

    Used to compare two models' token rankings for the same sentence, as PAIR's notebook does
    with the top 300 tokens.
    """
    from scipy.stats import spearmanr

    ids = np.union1d(topk(x, n)[0], topk(y, n)[0])
    if ids.size < 2:
        return float("nan")
    return float(spearmanr(x[ids], y[ids]).statistic)


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


def bootstrap_ci(
    values: np.ndarray | Sequence[float],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap confidence interval of the mean.

    Returns ``(mean, low, high)``; the interval is NaN with fewer than two values.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_resamples, v.size))
    means = v[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return mean, float(lo), float(hi)


def cluster_bootstrap_ci(
    values: np.ndarray | Sequence[float],
    clusters: Sequence[str],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of cluster means, with a two-stage (cluster, then member) bootstrap interval.

    Used for a whole probe set, where the pairs expanded from one lexicon template are not
    independent: each template counts once, and resampling picks templates, then pairs
    within each picked template.
    """
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(list(clusters))
    keep = ~np.isnan(v)
    v, c = v[keep], c[keep]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    groups = [v[c == name] for name in dict.fromkeys(c.tolist())]
    mean = float(np.mean([g.mean() for g in groups]))
    if len(groups) < 2:
        return bootstrap_ci(groups[0], n_resamples=n_resamples, confidence=confidence, seed=seed)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(groups), size=(n_resamples, len(groups)))
    slot_means = np.empty(picks.shape)
    for gi, g in enumerate(groups):
        chosen = picks == gi
        count = int(chosen.sum())
        if count:
            # A fresh resample of the template's pairs for every time it is picked.
            slot_means[chosen] = g[rng.integers(0, g.size, size=(count, g.size))].mean(axis=1)
    means = slot_means.mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return mean, float(lo), float(hi)


def summarize(
    scores: pd.DataFrame,
    *,
    set_name: str,
    score_names: Sequence[str] = SUMMARY_SCORES,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Aggregate per-pair scores per template (over lexicon expansions) and per probe set.

    Args:
        scores: one row per (model, pair_id) with ``template_id`` and the score columns.
        set_name: key used for the set-level rows.

    Returns:
        Columns ``model, level, key, score, mean, ci_low, ci_high, n`` where level is
        ``"template"`` (key = template id; plain bootstrap over its pairs) or ``"set"``
        (key = set name; cluster bootstrap over templates).
    """
    rows = []
    for model, per_model in scores.groupby("model", sort=False):
        for score in score_names:
            if score not in per_model:
                continue
            for template, sub in per_model.groupby("template_id", sort=False):
                vals = sub[score].to_numpy(dtype=np.float64)
                mean, lo, hi = bootstrap_ci(
                    vals, n_resamples=n_resamples, confidence=confidence, seed=seed
                )
                n = int(np.count_nonzero(~np.isnan(vals)))
                if n:
                    rows.append((model, "template", template, score, mean, lo, hi, n))
            vals = per_model[score].to_numpy(dtype=np.float64)
            mean, lo, hi = cluster_bootstrap_ci(
                vals,
                per_model["template_id"].tolist(),
                n_resamples=n_resamples,
                confidence=confidence,
                seed=seed,
            )
            n = int(np.count_nonzero(~np.isnan(vals)))
            if n:
                rows.append((model, "set", set_name, score, mean, lo, hi, n))
    return pd.DataFrame(
        rows, columns=["model", "level", "key", "score", "mean", "ci_low", "ci_high", "n"]
    )
