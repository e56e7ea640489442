"""biasprobe.stats: exact cases by hand, Holm by hand, coverage and calibration by simulation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from biasprobe.stats import (
    binomial_test,
    holm,
    paired_cluster_bootstrap,
    sign_flip_test,
    wilson_ci,
)


# -- sign-flip test: exact enumeration ---------------------------------------------------------
def _enumerate_p(values: list[float]) -> float:
    """Two-sided sign-flip p-value by listing every sign pattern with itertools."""
    obs = abs(sum(values))
    count = 0
    patterns = list(itertools.product((1, -1), repeat=len(values)))
    for signs in patterns:
        s = sum(sg * v for sg, v in zip(signs, values))
        count += abs(s) >= obs - 1e-12
    return count / len(patterns)


def test_sign_flip_exact_small_case_by_hand():
    # values 1, 2, 3: sums of ±1 ±2 ±3 are 6, 0, 2, -4, 4, -2, 0, -6 -> |sum| >= 6 twice -> 2/8.
    assert sign_flip_test([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)
    # all positive and distinct: only the identity and its mirror reach |sum| -> 2 / 2^n.
    assert sign_flip_test([0.5, 1.5, 2.5, 3.5, 4.5]) == pytest.approx(2 / 32)


@pytest.mark.parametrize("seed", range(5))
def test_sign_flip_exact_matches_itertools_enumeration(seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(0.2, 1.0, size=int(rng.integers(2, 11))).round(1).tolist()
    assert sign_flip_test(values) == pytest.approx(_enumerate_p(values), abs=1e-12)


def test_sign_flip_edge_cases():
    assert sign_flip_test([0.0, 0.0, 0.0]) == 1.0
    assert sign_flip_test(np.zeros(100)) == 1.0
    assert np.isnan(sign_flip_test([]))
    assert np.isnan(sign_flip_test([np.nan]))
    # NaNs are dropped, not counted.
    assert sign_flip_test([1.0, np.nan, 2.0, 3.0]) == pytest.approx(2 / 8)
    with pytest.raises(ValueError):
        sign_flip_test([1.0], n_perm=0)


def test_sign_flip_random_mode_is_seeded_and_corrected():
    rng = np.random.default_rng(3)
    v = rng.normal(0.0, 1.0, size=40)
    p1 = sign_flip_test(v, n_perm=10_000, seed=7)
    assert p1 == sign_flip_test(v, n_perm=10_000, seed=7)
    # A huge effect: no random pattern reaches it, so p is exactly the +1 floor.
    big = np.full(40, 5.0) + rng.normal(0, 0.1, 40)
    assert sign_flip_test(big, n_perm=999, seed=0) == pytest.approx(1 / 1000)
    # Random mode agrees with exact enumeration where both apply (n = 12: 4,096 patterns).
    w = rng.normal(0.3, 1.0, size=12)
    exact = sign_flip_test(w)
    approx = sign_flip_test(w, n_perm=20_000, seed=1, exact_max_n=0)
    assert exact == pytest.approx(_enumerate_p(w.tolist()), abs=1e-12)
    assert abs(approx - exact) < 4 * np.sqrt(exact * (1 - exact) / 20_000) + 1e-4


def test_sign_flip_pvalues_are_uniform_under_the_null():
    """Calibration: symmetric nulls (normal and heavy-tailed) give uniform p-values (KS)."""
    rng = np.random.default_rng(2024)
    normal = [sign_flip_test(rng.normal(0, 1, 40), n_perm=2000, seed=i) for i in range(400)]
    heavy = [sign_flip_test(rng.standard_t(2, 25), n_perm=2000, seed=i) for i in range(400)]
    for ps in (normal, heavy):
        assert sps.kstest(ps, "uniform").pvalue > 0.01
        assert 0.02 < np.mean(np.asarray(ps) <= 0.05) < 0.085
    # ...and the test has power off the null.
    shifted = [sign_flip_test(rng.normal(0.8, 1, 40), n_perm=2000, seed=i) for i in range(50)]
    assert np.mean(np.asarray(shifted) <= 0.05) > 0.9


# -- binomial test and Wilson interval ---------------------------------------------------------
def test_binomial_test_matches_hand_computation():
    # n = 10, k = 8, p = 0.5: P(X >= 8) = (45 + 10 + 1) / 1024; two-sided doubles it.
    assert binomial_test(8, 10) == pytest.approx(2 * 56 / 1024)
    assert binomial_test(5, 10) == pytest.approx(1.0)
    assert binomial_test(600, 1000) == pytest.approx(sps.binomtest(600, 1000).pvalue)
    assert np.isnan(binomial_test(0, 0))
    with pytest.raises(ValueError):
        binomial_test(11, 10)


def test_wilson_matches_scipy_and_covers():
    for k, n in [(0, 10), (3, 10), (57, 100), (917, 1508), (20, 20)]:
        lo, hi = wilson_ci(k, n)
        ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert lo == pytest.approx(ref.low, abs=1e-12)
        assert hi == pytest.approx(ref.high, abs=1e-12)
    assert all(np.isnan(wilson_ci(0, 0)))
    rng = np.random.default_rng(5)
    ks = rng.binomial(262, 0.57, size=2000)
    hits = [lo <= 0.57 <= hi for lo, hi in (wilson_ci(int(k), 262) for k in ks)]
    assert abs(np.mean(hits) - 0.95) < 0.025


# -- Holm ---------------------------------------------------------------------------------------
def test_holm_against_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> max 0.06)
    expected = [0.03, 0.06, 0.06, 0.02]
    np.testing.assert_allclose(holm(p), expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    out = holm([0.02, np.nan, 0.01])
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.02])
    assert holm([]).size == 0


def test_holm_matches_statsmodels_style_reference():
    """Holm against a direct implementation of the step-down rule."""
    rng = np.random.default_rng(11)
    p = rng.uniform(0, 0.2, size=9)
    m = p.size
    order = np.argsort(p)
    ref = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        ref[i] = running
    np.testing.assert_allclose(holm(p), ref)


# -- paired cluster bootstrap -------------------------------------------------------------------
def test_paired_cluster_bootstrap_estimate_and_conventions():
    templates = ["a"] * 3 + ["b"] * 2
    diffs = [1.0, 2.0, 3.0, 10.0, np.nan]
    iv = paired_cluster_bootstrap(templates, diffs, n_boot=500, seed=1)
    assert iv.estimate == pytest.approx((2.0 + 10.0) / 2)  # mean of template means
    assert iv.n == 4
    assert iv.ci_low <= iv.estimate <= iv.ci_high
    assert iv == paired_cluster_bootstrap(templates, diffs, n_boot=500, seed=1)
    with pytest.raises(ValueError):
        paired_cluster_bootstrap(["a"], [1.0, 2.0])


def test_paired_cluster_bootstrap_coverage():
    """Coverage of the 95% interval over 400 simulated two-model comparisons each."""
    rng = np.random.default_rng(1)
    designs = [(20, 8, 0.5, 0.5), (1, 60, 0.0, 1.0)]  # (templates, pairs each, sd between, within)
    for n_tpl, per, sd_b, sd_w in designs:
        hits = 0
        for r in range(400):
            effects = rng.normal(0.0, sd_b, n_tpl)
            base = rng.normal(0.0, 1.0, (n_tpl, per))  # the base model's per-pair scores
            model = base + 0.3 + effects[:, None] + rng.normal(0.0, sd_w, (n_tpl, per))
            tpl = np.repeat([f"t{i}" for i in range(n_tpl)], per)
            iv = paired_cluster_bootstrap(tpl, (model - base).ravel(), seed=r)
            hits += iv.ci_low <= 0.3 <= iv.ci_high
        assert abs(hits / 400 - 0.95) <= 0.025, (n_tpl, per, hits / 400)


# -- one statistics module ---------------------------------------------------------------------
def test_stats_imports_nothing_from_biasprobe_but_errors():
    """stats is the foundation layer: it may import biasprobe.errors and nothing else of
    biasprobe (no cycle with scores.py, which calls it)."""
    import ast
    from pathlib import Path

    import biasprobe.stats as mod

    tree = ast.parse(Path(mod.__file__).read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    inside = {m for m in found if m == "biasprobe" or m.startswith("biasprobe.")}
    assert inside <= {"biasprobe.errors"}, inside


def test_every_bootstrap_lives_in_stats():
    """The bootstraps and tests that scores.py and downstream/scores.py used to define are the
    stats module's functions (re-exported under the old names), not copies."""
    from biasprobe import scores, stats
    from biasprobe.downstream import scores as ds

    assert scores.bootstrap_ci is stats.bootstrap_ci
    assert scores.cluster_bootstrap_ci is stats.cluster_bootstrap_ci
    assert scores.clustered_sign_flip is stats.clustered_sign_flip
    assert ds.two_stage_bootstrap is stats.two_stage_bootstrap
    assert ds.paired_tests is stats.paired_tests
    for name in ("_resample", "_resampled_means", "_interval", "RESAMPLE_BLOCK"):
        assert not hasattr(scores, name), name


def test_bootstrap_ci_against_a_direct_numpy_draw():
    from biasprobe.stats import bootstrap_ci

    v = np.random.default_rng(4).normal(size=37)
    rng = np.random.default_rng(9)
    means = v[rng.integers(0, v.size, size=(500, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    got = bootstrap_ci(v, n_resamples=500, seed=9)
    assert got == pytest.approx((v.mean(), lo, hi), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("b,c", [(0, 0), (3, 0), (7, 2), (12, 25), (40, 41)])
def test_mcnemar_exact_against_scipy(b, c):
    from biasprobe.stats import mcnemar_exact

    want = 1.0 if b + c == 0 else sps.binomtest(b, b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(want, rel=1e-12)
    assert mcnemar_exact(b, c) == mcnemar_exact(c, b)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)
