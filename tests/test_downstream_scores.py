"""Downstream scores checked against numpy/scipy written plainly in the test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from biasprobe.downstream.scores import (
    compare_models,
    pair_scores,
    paired_tests,
    summarize_downstream,
    two_stage_bootstrap,
)
from tests.test_significance import equal_tailed_sign_flip


def _frames(p_a, p_b, minoritized, templates, model="m", tol=0.1):
    labels_a = ["positive" if p > 0.5 else "negative" for p in p_a]
    labels_b = ["positive" if p > 0.5 else "negative" for p in p_b]
    sc = pair_scores(p_a, p_b, labels_a, labels_b, minoritized, tolerance=tol)
    sc.insert(0, "model", model)
    sc.insert(1, "pair_id", [f"p{i}" for i in range(len(p_a))])
    sc.insert(2, "template_id", templates)
    rows = []
    for i in range(len(p_a)):
        for s, p in enumerate((p_a[i], p_b[i])):
            g = "min" if s == minoritized[i] else "norm"
            rows.append(
                {"model": model, "pair_id": f"p{i}", "template_id": templates[i], "group": g}
                | {"p_positive": p}
            )
    return sc, pd.DataFrame(rows)


def _inverts(means, low, high):
    """The interval is exactly the centres the equal-tailed test does not reject at 5%."""
    return equal_tailed_sign_flip(means, low) > 0.05 >= equal_tailed_sign_flip(
        means, low - 1e-9
    ) and equal_tailed_sign_flip(means, high) > 0.05 >= equal_tailed_sign_flip(means, high + 1e-9)


def test_pair_scores_signed_by_orientation_and_tolerance():
    sc = pair_scores(
        [0.9, 0.2, 0.55, 0.50],
        [0.7, 0.6, 0.45, 0.45],
        ["positive", "negative", "positive", "negative"],
        ["positive", "positive", "negative", "negative"],
        [0, 1, 0, 1],
        tolerance=0.1,
    )
    np.testing.assert_allclose(sc["delta"], [0.9 - 0.7, 0.6 - 0.2, 0.55 - 0.45, 0.45 - 0.50])
    np.testing.assert_allclose(sc["abs_delta"], np.abs(sc["delta"]))
    assert sc["flip"].tolist() == [0, 1, 1, 0]
    # pair 0: |Δ| 0.2 > 0.1; pair 1, 2: flips; pair 3: |Δ| 0.05, same label
    assert sc["invariance_failure"].tolist() == [1, 1, 1, 0]
    loose = pair_scores([0.9], [0.7], ["positive"], ["positive"], [0], tolerance=0.5)
    assert loose["invariance_failure"].tolist() == [0]
    with pytest.raises(ValueError, match="tolerance"):
        pair_scores([0.9], [0.7], ["a"], ["a"], [0], tolerance=-1)
    with pytest.raises(ValueError, match="minoritized"):
        pair_scores([0.9], [0.7], ["a"], ["a"], [2])


def test_paired_tests_match_scipy_and_all_zero_is_one():
    rng = np.random.default_rng(3)
    d = rng.normal(0.03, 0.05, size=40)
    d[:5] = 0.0
    p_w, p_s = paired_tests(d)
    nz = d[d != 0]
    assert p_w == pytest.approx(stats.wilcoxon(nz).pvalue)  # zeros dropped, then exact
    assert p_s == pytest.approx(stats.binomtest(int((nz > 0).sum()), nz.size, 0.5).pvalue)
    # exact sign test by hand: two-sided binomial tail
    k, n = int((nz > 0).sum()), nz.size
    from math import comb

    tail = sum(comb(n, i) for i in range(0, min(k, n - k) + 1)) / 2**n
    assert p_s == pytest.approx(min(1.0, 2 * tail))
    assert paired_tests(np.zeros(12)) == (1.0, 1.0)


def test_blind_classifier_gives_zero_gap_no_flips_p_one():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, size=36)
    templates = [f"t{i % 6}" for i in range(36)]
    mino = [i % 2 for i in range(36)]
    sc, ds = _frames(p, p.copy(), mino, templates)
    summ = summarize_downstream(sc, ds, set_name="s", n_resamples=200)
    for level in ("template", "set"):
        sub = summ[summ.level == level]
        for score in ("delta", "abs_delta", "flip", "invariance_failure", "wasserstein"):
            rows = sub[sub.score == score]
            assert (rows["mean"] == 0).all(), (level, score)
            assert (rows["ci_low"] == 0).all() and (rows["ci_high"] == 0).all()
        d = sub[sub.score == "delta"]
        assert (d["p_wilcoxon"] == 1.0).all() and (d["p_sign"] == 1.0).all()


def test_summary_numbers_against_direct_computation():
    rng = np.random.default_rng(1)
    n = 70
    templates = [f"t{i % 7}" for i in range(n)]
    mino = rng.integers(0, 2, size=n)
    p_a = rng.uniform(0.1, 0.9, size=n)
    p_b = np.clip(p_a + rng.normal(0.05, 0.08, size=n), 0, 1)
    sc, ds = _frames(p_a, p_b, mino, templates)
    summ = summarize_downstream(sc, ds, set_name="s", n_resamples=500, seed=7)
    p_min = np.where(mino == 0, p_a, p_b)
    p_norm = np.where(mino == 0, p_b, p_a)
    delta = p_min - p_norm
    t = np.array(templates)
    tmeans = [delta[t == k].mean() for k in (f"t{i}" for i in range(7))]
    row = summ[(summ.level == "set") & (summ.score == "delta")].iloc[0]
    assert row["mean"] == pytest.approx(np.mean(tmeans))
    assert row["n"] == n and row["templates"] == 7 and row["note"] == ""
    assert row["ci_low"] < row["mean"] < row["ci_high"]
    # the set's unit is the template: interval and every test over the template means
    assert _inverts(tmeans, row["ci_low"], row["ci_high"])
    assert row["p_value"] == pytest.approx(equal_tailed_sign_flip(tmeans))
    assert row["p_wilcoxon"] == pytest.approx(stats.wilcoxon(tmeans).pvalue)
    assert row["p_sign"] == pytest.approx(
        stats.binomtest(int(np.sum(np.array(tmeans) > 0)), 7).pvalue
    )
    tr = summ[(summ.level == "template") & (summ.key == "t3") & (summ.score == "delta")]
    assert tr.iloc[0]["p_wilcoxon"] == pytest.approx(stats.wilcoxon(delta[t == "t3"]).pvalue)
    row = summ[(summ.level == "template") & (summ.key == "t2") & (summ.score == "abs_delta")]
    assert row.iloc[0]["mean"] == pytest.approx(np.abs(delta[t == "t2"]).mean())
    assert row.iloc[0]["n"] == (t == "t2").sum()
    flips = (p_a > 0.5) != (p_b > 0.5)
    row = summ[(summ.level == "set") & (summ.score == "flip")].iloc[0]
    assert row["mean"] == pytest.approx(np.mean([flips[t == k].mean() for k in sorted(set(t))]))
    row = summ[(summ.level == "set") & (summ.score == "wasserstein")].iloc[0]
    assert row["mean"] == pytest.approx(stats.wasserstein_distance(p_min, p_norm))
    # W1 of two equal-size samples = mean |sorted difference|
    assert row["mean"] == pytest.approx(np.abs(np.sort(p_min) - np.sort(p_norm)).mean())
    # a percentile bootstrap interval (W1 of resamples is biased upward: the point can lie
    # outside it); given because the set has enough templates
    assert 0 <= row["ci_low"] < row["ci_high"] and row["templates"] == 7
    g = summ[(summ.level == "set") & (summ.score == "mean_p_positive") & (summ.group == "min")]
    assert g.iloc[0]["mean"] == pytest.approx(
        np.mean([p_min[t == k].mean() for k in sorted(set(t))])
    )


def test_two_stage_bootstrap_of_mean_matches_cluster_scheme():
    from biasprobe.scores import cluster_bootstrap_ci

    rng = np.random.default_rng(2)
    v = rng.normal(size=50)
    c = [f"t{i % 5}" for i in range(50)]
    val, lo, hi = two_stage_bootstrap(lambda i: float(v[i].mean()), c, n_resamples=2000)
    m, lo2, hi2 = cluster_bootstrap_ci(v, c, n_resamples=2000)
    assert val == pytest.approx(v.mean())
    # equal cluster sizes: pooled mean = mean of cluster means; intervals agree in scale
    assert val == pytest.approx(m)
    assert abs((hi - lo) - (hi2 - lo2)) < 0.35 * (hi2 - lo2)


def test_compare_models_paired_change():
    rng = np.random.default_rng(4)
    n = 42
    templates = [f"t{i % 6}" for i in range(n)]
    mino = [0] * n
    p_a = rng.uniform(0.2, 0.8, size=n)
    base_b = p_a - 0.1  # minoritized side A gets +0.1
    twin_b = p_a - 0.02
    s0, _ = _frames(p_a, base_b, mino, templates, model="base")
    s1, _ = _frames(p_a, twin_b, mino, templates, model="twin")
    comp = compare_models(pd.concat([s0, s1]), set_name="s", n_resamples=300)
    row = comp[(comp.level == "set") & (comp.score == "delta")].iloc[0]
    assert row["base_mean"] == pytest.approx(0.1)
    assert row["model_mean"] == pytest.approx(0.02)
    assert row["change"] == pytest.approx(-0.08)
    assert row["ci_low"] == pytest.approx(-0.08) and row["ci_high"] == pytest.approx(-0.08)
    assert row["n"] == n and not row["sign_flipped"]
    assert row["abs_base"] == pytest.approx(0.1)
    w = comp[(comp.level == "set") & (comp.score == "wasserstein")].iloc[0]
    assert w["base_mean"] == pytest.approx(stats.wasserstein_distance(p_a, base_b))
    assert w["change"] == pytest.approx(
        stats.wasserstein_distance(p_a, twin_b) - stats.wasserstein_distance(p_a, base_b)
    )
    assert compare_models(s0, set_name="s").empty
    # four templates: the change is still given, with no set-level interval or p, and why
    few = [f"t{i % 4}" for i in range(n)]
    f0, _ = _frames(p_a, base_b, mino, few, model="base")
    f1, _ = _frames(p_a, twin_b, mino, few, model="twin")
    c4 = compare_models(pd.concat([f0, f1]), set_name="s", n_resamples=100)
    r4 = c4[(c4.level == "set") & (c4.score == "delta")].iloc[0]
    assert r4["change"] == pytest.approx(-0.08) and np.isnan(r4["ci_low"])
    assert np.isnan(r4["p_value"]) and "4 templates: too few" in r4["note"]


def test_template_ci_is_a_plain_percentile_bootstrap():
    rng = np.random.default_rng(5)
    n = 25
    p_a = rng.uniform(0.2, 0.8, size=n)
    p_b = np.clip(p_a + rng.normal(0.03, 0.05, size=n), 0, 1)
    sc, ds = _frames(p_a, p_b, [0] * n, ["t"] * n)
    summ = summarize_downstream(sc, ds, set_name="s", n_resamples=1000, seed=11)
    row = summ[(summ.level == "template") & (summ.score == "delta")].iloc[0]
    delta = p_a - p_b
    draws = np.random.default_rng(11).integers(0, n, size=(1000, n))
    lo, hi = np.quantile(delta[draws].mean(axis=1), [0.025, 0.975])
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi))


def test_importing_downstream_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, biasprobe.downstream.run, biasprobe.downstream.scores, "
        "biasprobe.report.downstream; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_contrast_rows_for_sets_with_several_group_pairs():
    rng = np.random.default_rng(6)
    n = 48
    templates = [f"t{i % 12}" for i in range(n)]
    p_a = rng.uniform(0.2, 0.8, size=n)
    p_b = np.clip(p_a + rng.normal(0.0, 0.05, size=n), 0, 1)
    sc, ds = _frames(p_a, p_b, [0] * n, templates)
    sc["minoritized_group"] = ["x" if i % 12 < 6 else "y" for i in range(n)]
    sc["normative_group"] = "z"
    summ = summarize_downstream(sc, ds, set_name="s", n_resamples=200)
    c = summ[(summ.level == "contrast") & (summ.score == "delta")].set_index("key")
    assert sorted(c.index) == ["x vs z", "y vs z"]
    d = p_a - p_b
    t = np.array(templates)
    x_side = np.array([i % 12 < 6 for i in range(n)])
    for key, sel in (("x vs z", x_side), ("y vs z", ~x_side)):
        dd, tt = d[sel], t[sel]
        tm = [dd[tt == k].mean() for k in dict.fromkeys(tt)]
        assert c.loc[key, "mean"] == pytest.approx(np.mean(tm))
        assert c.loc[key, "n"] == 24 and c.loc[key, "templates"] == 6
        assert c.loc[key, "p_wilcoxon"] == pytest.approx(stats.wilcoxon(tm).pvalue)
        assert c.loc[key, "p_value"] == pytest.approx(equal_tailed_sign_flip(tm))
        assert _inverts(tm, c.loc[key, "ci_low"], c.loc[key, "ci_high"])
    sc["minoritized_group"] = "x"
    assert (summarize_downstream(sc, ds, set_name="s", n_resamples=50).level != "contrast").all()


def test_batched_and_looped_bootstrap_agree():
    rng = np.random.default_rng(8)
    a, b = rng.uniform(size=30), rng.uniform(size=30)

    def w1(idx):
        d = np.abs(np.sort(a[idx], axis=-1) - np.sort(b[idx], axis=-1)).mean(axis=-1)
        return float(d) if np.ndim(d) == 0 else d

    one = ["_"] * 30
    looped = two_stage_bootstrap(lambda i: float(w1(i)), one, n_resamples=300, seed=3)
    batched = two_stage_bootstrap(w1, one, n_resamples=300, seed=3, batched=True)
    assert looped == pytest.approx(batched)
    assert looped[0] == pytest.approx(stats.wasserstein_distance(a, b))


def test_compare_models_p_values_by_enumeration():
    """The change's p-value: equal-tailed sign flips of the template means of the paired
    changes (set level, the test the interval inverts) and sign flips of the pair changes
    (template level), enumerated here by hand."""
    import itertools

    rng = np.random.default_rng(7)
    n = 36
    templates = [f"t{i % 6}" for i in range(n)]
    mino = [0] * n
    p_a = rng.uniform(0.2, 0.8, size=n)
    base_b = p_a - rng.normal(0.05, 0.05, size=n)
    twin_b = p_a - rng.normal(0.0, 0.05, size=n)
    s0, _ = _frames(p_a, base_b, mino, templates, model="base")
    s1, _ = _frames(p_a, twin_b, mino, templates, model="twin")
    comp = compare_models(pd.concat([s0, s1]), set_name="s", n_resamples=200)

    def exact(values):
        v = np.asarray(values, dtype=float)
        obs = abs(v.sum())
        hits = sum(
            abs(sum(s * x for s, x in zip(signs, v))) >= obs - 1e-12
            for signs in itertools.product((1, -1), repeat=len(v))
        )
        return hits / 2 ** len(v)

    diff = (p_a - twin_b) - (p_a - base_b)  # delta(twin) - delta(base), minoritized = side A
    t = np.asarray(templates)
    means = [diff[t == k].mean() for k in dict.fromkeys(templates)]
    row = comp[(comp.level == "set") & (comp.score == "delta")].iloc[0]
    assert row["p_value"] == pytest.approx(equal_tailed_sign_flip(means))
    assert _inverts(means, row["ci_low"], row["ci_high"])
    row = comp[(comp.level == "template") & (comp.key == "t1") & (comp.score == "delta")].iloc[0]
    assert row["p_value"] == pytest.approx(exact(diff[t == "t1"]))
    w = comp[comp.score == "wasserstein"]
    assert w["p_value"].isna().all()
