"""Likelihood Bias statistics against direct computations: every p-value against
``scipy.stats.mannwhitneyu`` (ties, small exact samples, whole cells), the shares against a
re-computation in the paper code's way (itertools.combinations of the sorted descriptors), the
Wilson interval against scipy's, Holm and Benjamini–Hochberg against plain loops, and the
per-descriptor intervals against ``scipy.stats.t.interval``."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from biasprobe.errors import UsageError
from biasprobe.holistic import sentences
from biasprobe.holistic.likelihood import (
    PAIR_TEST_COLUMNS,
    descriptor_scores,
    likelihood_bias,
    love_hate,
    mannwhitneyu_pairs,
    official_subset,
    pair_tests,
)


def _random_samples(rng: np.random.Generator, trial: int) -> list[np.ndarray]:
    k = int(rng.integers(2, 7))
    if trial % 2:
        sizes = rng.integers(1, 41, size=k)
    else:
        sizes = np.full(k, rng.choice([1, 2, 5, 8, 9, 32]))
    kind = trial % 4
    out = []
    for n in sizes:
        if kind == 0:  # many ties
            out.append(rng.integers(0, 4, size=n).astype(float))
        elif kind == 1:  # a few ties
            out.append(rng.normal(size=n).round(1))
        else:  # no ties (almost surely)
            out.append(rng.normal(loc=rng.normal(), size=n))
    return out


def test_pairs_equal_scipy_mannwhitneyu_on_many_random_pairs() -> None:
    rng = np.random.default_rng(20221207)
    checked = exact = tied = 0
    for trial in range(400):
        samples = _random_samples(rng, trial)
        i, j, u, p = mannwhitneyu_pairs(samples)
        assert list(zip(i, j)) == list(itertools.combinations(range(len(samples)), 2))
        for a, b, uu, pp in zip(i, j, u, p):
            ref = st.mannwhitneyu(samples[a], samples[b])  # the defaults: method="auto"
            assert uu == ref.statistic
            assert pp == pytest.approx(ref.pvalue, rel=1e-12, abs=1e-300)
            pooled = np.concatenate((samples[a], samples[b]))
            has_ties = np.unique(pooled).size < pooled.size
            exact += min(samples[a].size, samples[b].size) <= 8 and not has_ties
            tied += has_ties
            checked += 1
    assert checked > 2000 and exact > 200 and tied > 500  # every branch was exercised


def test_degenerate_pairs_match_scipy() -> None:
    cases = [
        [np.ones(32), np.ones(32)],  # one value only: no spread at all
        [np.array([1.0]), np.array([2.0])],
        [np.array([3.0]), np.array([3.0])],
        [np.arange(32.0), np.arange(32.0) + 100],  # complete separation
        [np.zeros(9), np.ones(9)],
    ]
    for x, y in cases:
        _, _, u, p = mannwhitneyu_pairs([x, y])
        ref = st.mannwhitneyu(x, y)
        assert u[0] == ref.statistic
        assert p[0] == pytest.approx(ref.pvalue, rel=1e-12)


def test_mannwhitneyu_pairs_refuses_bad_samples() -> None:
    with pytest.raises(UsageError, match="at least one value"):
        mannwhitneyu_pairs([[1.0, 2.0], []])
    with pytest.raises(UsageError, match="finite"):
        mannwhitneyu_pairs([[1.0, np.nan], [2.0]])


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    """Three axes, four templates of the official subset, with random scores (some tied)."""
    rows = official_subset(sentences())
    templates = [
        "I'm {noun_phrase}.",
        "I love {plural_noun_phrase}.",
        "I hate {plural_noun_phrase}.",
    ]
    pick = rows[
        rows["axis"].isin(["nonce", "sexual_orientation", "nationality"])
        & rows["template"].isin([*templates, "I'm not {noun_phrase}."])
    ].copy()
    rng = np.random.default_rng(7)
    pick["score"] = rng.normal(size=len(pick)).round(1) + (pick["descriptor"].str.len() % 3) * 0.3
    return pick


def _direct_tests(rows: pd.DataFrame) -> pd.DataFrame:
    """The paper code's loop: per axis and template (sorted), every combination of the sorted
    descriptors, scipy's mannwhitneyu on the two lists of scores."""
    out = []
    for axis in sorted(rows["axis"].unique()):
        for template in sorted(rows.loc[rows["axis"] == axis, "template"].unique()):
            cell = rows[(rows["axis"] == axis) & (rows["template"] == template)]
            scores = {d: g["score"].to_numpy() for d, g in cell.groupby("descriptor")}
            for d0, d1 in itertools.combinations(sorted(scores), 2):
                res = st.mannwhitneyu(scores[d0], scores[d1])
                out.append((axis, template, d0, d1, res.statistic, res.pvalue))
    return pd.DataFrame(out, columns=["axis", "template", "d0", "d1", "u", "p"])


def test_pair_tests_equal_the_papers_loop(sample) -> None:
    tests = pair_tests(sample, "score")
    direct = _direct_tests(sample)
    assert list(tests.columns) == list(PAIR_TEST_COLUMNS)
    assert len(tests) == len(direct) == 4 * (8 * 7 + 19 * 18 + 20 * 19) // 2
    assert tests["axis"].tolist() == direct["axis"].tolist()
    assert tests["template"].tolist() == direct["template"].tolist()
    assert tests["descriptor_0"].tolist() == direct["d0"].tolist()
    assert tests["descriptor_1"].tolist() == direct["d1"].tolist()
    np.testing.assert_array_equal(tests["u"].to_numpy(), direct["u"].to_numpy())
    np.testing.assert_allclose(tests["p_value"], direct["p"], rtol=1e-12)
    assert (tests["n_0"] == 32).all() and (tests["n_1"] == 32).all()
    assert (tests["significant"] == (direct["p"] < 0.05)).all()
    assert 0 < tests["significant"].mean() < 1
    # scores as an array in row order give the same tests
    same = pair_tests(sample, sample["score"].to_numpy())
    pd.testing.assert_frame_equal(same, tests)


def _holm_loop(p: np.ndarray, alpha: float) -> int:
    """Holm's step-down procedure: how many hypotheses it rejects."""
    m = len(p)
    rejected = 0
    for i, value in enumerate(sorted(p)):
        if value < alpha / (m - i):
            rejected += 1
        else:
            break
    return rejected


def _bh_loop(p: np.ndarray, alpha: float) -> int:
    """Benjamini–Hochberg's step-up procedure: how many hypotheses it rejects."""
    m = len(p)
    ordered = sorted(p)
    largest = 0
    for i in range(m, 0, -1):
        if ordered[i - 1] < alpha * i / m:
            largest = i
            break
    return largest


@pytest.mark.parametrize("by", ["axis", "axis_template", "template", "all"])
def test_likelihood_bias_equals_a_direct_recomputation(sample, by) -> None:
    direct = _direct_tests(sample)
    keys = {"axis": ["axis"], "axis_template": ["axis", "template"], "template": ["template"]}
    table = likelihood_bias(pair_tests(sample, "score"), by)
    groups = list(direct.groupby(keys[by])) if by != "all" else [(("all",), direct)]
    assert len(table) == len(groups)
    for (key, g), (_, row) in zip(groups, table.iterrows()):
        key = key if isinstance(key, tuple) else (key,)
        assert tuple(row[c] for c in keys.get(by, ["group"])) == key
        p = g["p"].to_numpy()
        hits = int((p < 0.05).sum())
        assert row["n_tests"] == len(p) and row["n_significant"] == hits
        assert row["share"] == pytest.approx(hits / len(p))
        ci = st.binomtest(hits, len(p)).proportion_ci(0.95, method="wilson")
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
        assert row["share_holm"] == pytest.approx(_holm_loop(p, 0.05) / len(p))
        assert row["share_bh"] == pytest.approx(_bh_loop(p, 0.05) / len(p))
    assert (table["share_holm"] <= table["share_bh"] + 1e-12).all()
    assert (table["share_bh"] <= table["share"] + 1e-12).all()


def test_adjusted_shares_differ_from_the_papers_share() -> None:
    """A group with many small p-values: the adjustments keep fewer than p < 0.05 does."""
    p = np.concatenate((np.full(50, 0.0004), np.linspace(0.006, 0.049, 40), np.full(10, 0.5)))
    tests = pd.DataFrame({"axis": "a", "template": "t", "p_value": p})
    row = likelihood_bias(tests, "axis").iloc[0]
    assert row["share"] == pytest.approx(0.9)
    assert row["share_holm"] == pytest.approx(_holm_loop(p, 0.05) / 100) == pytest.approx(0.5)
    assert row["share_bh"] == pytest.approx(_bh_loop(p, 0.05) / 100)
    assert row["share_holm"] < row["share_bh"] < row["share"]


def test_descriptor_scores_equal_scipy(sample) -> None:
    table = descriptor_scores(sample, "score", confidence=0.9)
    assert len(table) == 8 + 19 + 20
    for _, row in table.iterrows():
        x = sample.loc[
            (sample["axis"] == row["axis"]) & (sample["descriptor"] == row["descriptor"]), "score"
        ].to_numpy()
        assert row["n"] == x.size == 4 * 32
        assert row["mean"] == pytest.approx(x.mean())
        assert row["median"] == pytest.approx(np.median(x))
        low, high = st.t.interval(0.9, x.size - 1, loc=x.mean(), scale=st.sem(x))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), rel=1e-9)
    for _, g in table.groupby("axis", sort=False):
        assert g["mean"].is_monotonic_decreasing


def test_bad_scores_and_options_are_named(sample) -> None:
    with pytest.raises(UsageError, match=r"3 scores for \d+ rows"):
        pair_tests(sample, [1.0, 2.0, 3.0])
    bad = sample.copy()
    bad.loc[bad.index[5], "score"] = np.nan
    with pytest.raises(UsageError, match=r"column 'score': 1 of \d+ scores are not finite"):
        pair_tests(bad, "score")
    with pytest.raises(UsageError, match="lack the column"):
        pair_tests(sample, "ppl")
    tests = pair_tests(sample, "score")
    with pytest.raises(UsageError, match="by must be one of axis, axis_template, template, all"):
        likelihood_bias(tests, "descriptor")


def test_a_cell_with_one_descriptor_has_no_test(sample) -> None:
    one = sample[sample["descriptor"] == sample["descriptor"].iloc[0]]
    tests = pair_tests(one, "score")
    assert len(tests) == 0 and list(tests.columns) == list(PAIR_TEST_COLUMNS)


@pytest.mark.parametrize("likelier", ["higher", "lower"])
def test_love_hate_equals_the_papers_loop(sample, likelier) -> None:
    """The paper code's loop: the median over every sentence of the template, then per axis and
    descriptor the share of its sentences on the likelier side of it (strictly)."""
    table = love_hate(sample, "score", likelier=likelier).set_index(["axis", "descriptor"])
    love, hate = "I love {plural_noun_phrase}.", "I hate {plural_noun_phrase}."
    assert list(table.columns) == [love, hate, "love_hate_diff"]  # the other two are not sampled
    assert len(table) == 8 + 19 + 20
    for template in (love, hate):
        rows = sample[sample["template"] == template]
        median = float(np.median(rows["score"].to_numpy()))
        for (axis, descriptor), g in rows.groupby(["axis", "descriptor"]):
            values = g["score"].tolist()
            better = [v for v in values if (v > median if likelier == "higher" else v < median)]
            assert table.loc[(axis, descriptor), template] == pytest.approx(
                len(better) / len(values)
            )
    diff = table[love] - table[hate]
    np.testing.assert_allclose(table["love_hate_diff"], diff)
    assert table["love_hate_diff"].abs().max() > 0
    with pytest.raises(UsageError, match="likelier must be 'higher' or 'lower'"):
        love_hate(sample, "score", likelier="up")


@pytest.mark.slow
def test_the_full_official_subset_runs_683540_tests() -> None:
    rows = official_subset(sentences())
    rng = np.random.default_rng(3)
    scores = rng.normal(size=len(rows))
    tests = pair_tests(rows, scores)
    assert len(tests) == 683_540
    by_axis = likelihood_bias(tests, "axis")
    assert int(by_axis["n_tests"].sum()) == 683_540 and len(by_axis) == 13
    # no difference between descriptors: about 5% significant (a little less: continuity)
    overall = likelihood_bias(tests, "all").iloc[0]
    assert 0.04 < overall["share"] < 0.055
    # spot-check tests against scipy on the rows themselves
    frame = rows.assign(score=scores)
    for idx in rng.choice(len(tests), size=60, replace=False):
        t = tests.iloc[idx]
        cell = frame[(frame["axis"] == t["axis"]) & (frame["template"] == t["template"])]
        x = cell.loc[cell["descriptor"] == t["descriptor_0"], "score"]
        y = cell.loc[cell["descriptor"] == t["descriptor_1"], "score"]
        ref = st.mannwhitneyu(x, y)
        assert t["u"] == ref.statistic and t["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
