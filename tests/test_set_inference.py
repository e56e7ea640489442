"""Set-level inference by simulation: coverage and calibration at T = 2, 5 and 20 templates.

The set estimate is the mean of T template means; the templates are the units. Simulated sets
draw template effects around a true centre mu and a few pairs per template with pair noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biasprobe.scores import cluster_bootstrap_ci, summarize
from biasprobe.stats import MIN_SET_UNITS, min_units, unit_inference


def _set(rng: np.random.Generator, templates: int, mu: float) -> pd.DataFrame:
    rows = []
    for t in range(templates):
        effect = mu + rng.normal(0.0, 1.0)
        for j in range(4):
            rows.append({"model": "m", "pair_id": f"{t}/{j}", "template_id": f"t{t}"})
            rows[-1]["target_gap_mean"] = effect + rng.normal(0.0, 0.5)
    return pd.DataFrame(rows)


def test_min_units_follows_the_smallest_possible_p() -> None:
    assert MIN_SET_UNITS == 6  # 2/2^6 = 0.031 ≤ 0.05 < 2/2^5 = 0.0625
    assert min_units(0.90) == 5 and min_units(0.99) == 8


@pytest.mark.parametrize("templates", [2, 5])
def test_small_sets_make_no_set_level_claim(templates: int) -> None:
    rng = np.random.default_rng(templates)
    s = summarize(_set(rng, templates, 0.7), set_name="x", score_names=("target_gap_mean",))
    row = s[s.level == "set"].iloc[0]
    assert np.isnan(row.ci_low) and np.isnan(row.ci_high) and np.isnan(row.p_value)
    assert row.note.startswith(f"{templates} templates: too few")
    # what the old two-stage bootstrap did at T = 2: an interval far too narrow
    covered = 0
    for _ in range(300):
        d = _set(rng, 2, 0.0)
        _, lo, hi = cluster_bootstrap_ci(d.target_gap_mean, d.template_id, n_resamples=300)
        covered += lo <= 0.0 <= hi
    if templates == 2:
        assert covered / 300 < 0.85  # nominal 95%: why no set-level interval is given


def test_coverage_and_calibration_at_20_templates() -> None:
    """T = 20 (random sign patterns): the 95% interval covers the true centre about 95% of
    the time, and under mu = 0 the test rejects at about 5% (never far above)."""
    rng = np.random.default_rng(20)
    sims = 400
    covered = rejected = agree = 0
    for _ in range(sims):
        d = _set(rng, 20, 0.0)
        means = d.groupby("template_id").target_gap_mean.mean().to_numpy()
        inf = unit_inference(means, n_perm=2000, seed=int(rng.integers(1 << 30)))
        covered += inf.ci_low <= 0.0 <= inf.ci_high
        rejected += inf.p_value <= 0.05
        agree += (inf.p_value <= 0.05) == (not inf.ci_low <= 0.0 <= inf.ci_high)
    assert agree == sims  # the interval and the test never disagree
    # Monte-Carlo sd of a 95% rate over 400 runs: 0.011
    assert 0.92 <= covered / sims <= 0.985
    assert rejected / sims <= 0.08


def test_power_and_coverage_off_null_at_20_templates() -> None:
    rng = np.random.default_rng(21)
    sims, mu = 200, 1.0
    covered = rejected = 0
    for _ in range(sims):
        d = _set(rng, 20, mu)
        means = d.groupby("template_id").target_gap_mean.mean().to_numpy()
        inf = unit_inference(means, n_perm=2000, seed=int(rng.integers(1 << 30)))
        covered += inf.ci_low <= mu <= inf.ci_high
        rejected += inf.p_value <= 0.05
    assert covered / sims >= 0.9
    assert rejected / sims >= 0.9  # a shift of about 1 sd over 20 templates is found


def test_exact_mode_coverage_at_6_templates() -> None:
    """T = 6 (every sign pattern): coverage is at least 1 − 2·1/64 = 96.9% under symmetry."""
    rng = np.random.default_rng(6)
    sims = 400
    covered = sum(
        (lambda r: r.ci_low <= 0.3 <= r.ci_high)(unit_inference(rng.normal(0.3, 1.0, 6)))
        for _ in range(sims)
    )
    assert covered / sims >= 0.94
