"""Skew scores against independent computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import log_softmax
from scipy.stats import spearmanr

from biasprobe.scores import (
    bootstrap_ci,
    cluster_bootstrap_ci,
    jaccard_distance,
    js_divergence,
    pair_scores,
    rank_biased_overlap,
    spearman_topn,
    summarize,
    topk,
)


def rbo_reference(a, b, p):
    """Webber et al. 2010, eq. 32, written directly from prefix sets."""
    k = len(a)
    x = [len(set(a[:d]) & set(b[:d])) for d in range(1, k + 1)]
    return x[-1] / k * p**k + (1 - p) / p * sum(x[d - 1] / d * p**d for d in range(1, k + 1))


def test_topk_order_and_ties():
    lp = np.log(np.array([0.1, 0.3, 0.3, 0.05, 0.25]))
    ids, vals = topk(lp, 3)
    assert ids.tolist() == [1, 2, 4]  # tie between 1 and 2 broken by lower id
    np.testing.assert_allclose(vals, lp[[1, 2, 4]])
    assert topk(lp, 99)[0].size == 5


def test_jaccard():
    assert jaccard_distance([1, 2, 3], [1, 2, 3]) == 0
    assert jaccard_distance([1, 2], [3, 4]) == 1
    assert jaccard_distance([1, 2, 3], [2, 3, 4]) == pytest.approx(1 - 2 / 4)


@pytest.mark.parametrize("seed", range(5))
def test_rbo_matches_reference(seed):
    rng = np.random.default_rng(seed)
    a = rng.permutation(30)[:10].tolist()
    b = rng.permutation(30)[:10].tolist()
    for p in (0.5, 0.9, 0.98):
        assert rank_biased_overlap(a, b, p) == pytest.approx(rbo_reference(a, b, p), abs=1e-12)
    assert rank_biased_overlap(a, a, 0.9) == pytest.approx(1.0)
    assert rank_biased_overlap([1, 2, 3], [4, 5, 6], 0.9) == 0.0
    with pytest.raises(ValueError):
        rank_biased_overlap(a, b, 1.0)


def test_rbo_weights_top_ranks_more():
    # Same set, one swap at the top vs one swap at the bottom.
    base = list(range(10))
    top_swap = [1, 0, *range(2, 10)]
    bottom_swap = [*range(8), 9, 8]
    assert rank_biased_overlap(base, top_swap) < rank_biased_overlap(base, bottom_swap)


def test_js_divergence_matches_scipy():
    rng = np.random.default_rng(0)
    la = log_softmax(rng.normal(size=500) * 3)
    lb = log_softmax(rng.normal(size=500) * 3)
    ref = jensenshannon(np.exp(la), np.exp(lb), base=2) ** 2
    assert js_divergence(la, lb) == pytest.approx(ref, abs=1e-9)
    assert js_divergence(la, la) == pytest.approx(0, abs=1e-12)


def test_spearman_topn():
    rng = np.random.default_rng(1)
    x = rng.normal(size=1000)
    y = x + rng.normal(size=1000) * 0.5
    ids = np.union1d(np.argsort(-x)[:300], np.argsort(-y)[:300])
    assert spearman_topn(x, y, 300) == pytest.approx(spearmanr(x[ids], y[ids]).statistic)


def test_pair_scores_sign_follows_orientation():
    rng = np.random.default_rng(2)
    la = log_softmax(rng.normal(size=50))
    lb = log_softmax(rng.normal(size=50))
    targets = np.array([[la[3], la[7]], [lb[3], lb[7]]])
    a_min = pair_scores(la, lb, k=5, minoritized=0, target_logprobs=targets)
    b_min = pair_scores(la, lb, k=5, minoritized=1, target_logprobs=targets)
    gap = (la[3] - lb[3]) + (la[7] - lb[7])
    assert a_min["target_gap"] == pytest.approx(gap)
    assert b_min["target_gap"] == pytest.approx(-gap)
    assert a_min["target_gap_mean"] == pytest.approx(gap / 2)
    assert a_min["jaccard_distance"] == b_min["jaccard_distance"]
    ids_a, ids_b = set(topk(la, 5)[0].tolist()), set(topk(lb, 5)[0].tolist())
    assert a_min["overlap"] == len(ids_a & ids_b)
    assert set(a_min["exclusive_a_ids"]) == ids_a - ids_b
    none = pair_scores(la, lb, k=5, minoritized=0)
    assert none["n_targets"] == 0 and np.isnan(none["target_gap"])


def test_bootstrap_ci_brackets_mean_and_is_seeded():
    vals = np.random.default_rng(3).normal(1.0, 1.0, size=200)
    mean, lo, hi = bootstrap_ci(vals, seed=0)
    assert mean == pytest.approx(vals.mean())
    assert lo < mean < hi
    se = vals.std(ddof=1) / np.sqrt(vals.size)
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert bootstrap_ci(vals, seed=0) == (mean, lo, hi)
    m1, l1, h1 = bootstrap_ci([2.0])
    assert m1 == 2.0 and np.isnan(l1) and np.isnan(h1)


def test_cluster_bootstrap_weights_templates_equally():
    vals = [0.0] * 30 + [1.0, 1.0]
    clusters = ["big"] * 30 + ["small", "small"]
    mean, lo, hi = cluster_bootstrap_ci(vals, clusters, seed=0)
    assert mean == pytest.approx(0.5)
    assert lo <= mean <= hi


def test_summarize_levels():
    scores = pd.DataFrame(
        {
            "model": ["m"] * 4,
            "template_id": ["t1", "t1", "t1", "t2"],
            "jaccard_distance": [0.2, 0.4, 0.6, 1.0],
            "target_gap": [np.nan] * 4,
        }
    )
    s = summarize(scores, set_name="set", score_names=("jaccard_distance", "target_gap"))
    t1 = s[(s.level == "template") & (s.key == "t1")].iloc[0]
    assert t1["mean"] == pytest.approx(0.4) and t1["n"] == 3
    whole = s[s.level == "set"].iloc[0]
    assert whole["mean"] == pytest.approx((0.4 + 1.0) / 2) and whole["n"] == 4
    assert "target_gap" not in set(s["score"])  # no values, no row
