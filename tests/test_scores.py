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
    paired_delta,
    rank_biased_overlap,
    spearman_fixed,
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


def test_spearman_fixed_uses_the_base_models_tokens_only():
    rng = np.random.default_rng(1)
    x = rng.normal(size=1000)
    y = x + rng.normal(size=1000) * 0.5
    ids = np.argsort(-x, kind="stable")[:300]
    assert spearman_fixed(x, y, 300) == pytest.approx(spearmanr(x[ids], y[ids]).statistic)
    assert spearman_fixed(x, y, None) == pytest.approx(spearmanr(x, y).statistic)
    assert spearman_fixed(x, x, 300) == pytest.approx(1.0)
    # independent vectors: near 0 over a fixed set, while the union of both top-300 lists
    # (the old way) is strongly negative by construction
    z = rng.normal(size=1000)
    union = np.union1d(np.argsort(-x)[:300], np.argsort(-z)[:300])
    assert spearmanr(x[union], z[union]).statistic < -0.3
    assert abs(spearman_fixed(x, z, 300)) < 0.15 and abs(spearman_fixed(x, z, None)) < 0.1


def test_paired_delta_matches_direct_computation():
    rng = np.random.default_rng(4)
    clusters = [f"t{i % 6}" for i in range(30)] + ["t6"] * 5
    base = rng.normal(0.2, 1, size=35)
    other = base - 0.5 + rng.normal(0, 0.3, size=35)
    base[2] = np.nan  # a pair one model lacks is left out of both
    d = paired_delta(base, other, clusters, seed=7, n_resamples=1000)
    keep = ~np.isnan(base)
    b, o, c = base[keep], other[keep], np.array(clusters)[keep]
    means = {m: [v[c == t].mean() for t in dict.fromkeys(c)] for m, v in (("b", b), ("o", o))}
    assert d["n"] == 34
    assert d["base"] == pytest.approx(np.mean(means["b"]))
    assert d["other"] == pytest.approx(np.mean(means["o"]))
    assert d["delta"] == pytest.approx(np.mean(means["o"]) - np.mean(means["b"]))
    assert d["abs_delta"] == pytest.approx(abs(np.mean(means["o"])) - abs(np.mean(means["b"])))
    assert d["sign_flipped"] == float(np.mean(means["o"]) * np.mean(means["b"]) < 0)
    # several templates: the interval of the template means of the differences, by the
    # sign-flip subset means of those 7 means (each of the 127 non-empty subsets' mean,
    # enumerated here; the interval drops the 3 lowest and 3 highest: floor(0.025 · 2^7) = 3)
    import itertools

    dm = [(o - b)[c == t].mean() for t in dict.fromkeys(c)]
    subs = sorted(np.mean(s) for r in range(1, 8) for s in itertools.combinations(dm, r))
    assert (d["delta_low"], d["delta_high"]) == pytest.approx((subs[2], subs[-3]))
    assert d["delta_low"] < d["delta"] < d["delta_high"] < 0 and d["templates"] == 7
    assert d["p_value"] == pytest.approx(2 / 2**7)  # every template mean below 0
    # the |·| change keeps the paired two-stage bootstrap (same resampling as the set CI)
    assert d["abs_delta_low"] < d["abs_delta"] < d["abs_delta_high"]
    # one template: the plain bootstrap of the differences
    one = paired_delta(b, o, ["x"] * b.size, seed=3)
    assert (one["delta"], one["delta_low"], one["delta_high"]) == pytest.approx(
        bootstrap_ci(o - b, seed=3)
    )


def test_paired_delta_sign_flip_and_abs_gap():
    base = np.array([0.30, 0.20, 0.25, 0.35])
    other = np.array([-0.10, -0.05, -0.12, -0.08])
    d = paired_delta(base, other, ["t"] * 4, seed=0)
    assert d["sign_flipped"] == 1.0
    assert d["abs_delta"] == pytest.approx(0.0875 - 0.275)  # closer to zero: less skew
    assert d["delta"] == pytest.approx(-0.0875 - 0.275)
    lone = paired_delta([1.0], [2.0], ["t"])
    assert lone["delta"] == 1.0 and np.isnan(lone["delta_low"]) and lone["n"] == 1


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
