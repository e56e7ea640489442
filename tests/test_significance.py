"""p-values on every fill-mask aggregate (summary.csv and the Δ-vs-base rows), checked against
exact enumeration of sign patterns and a direct Holm step-down written here."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from biasprobe.scores import SUMMARY_COLUMNS, clustered_sign_flip, compare_to_base, summarize


def exact_sign_flip(values) -> float:
    """All 2^n sign patterns, by itertools (independent of biasprobe.stats)."""
    v = [float(x) for x in values if not math.isnan(x)]
    observed = abs(sum(v))
    hits = 0
    total = 0
    for signs in itertools.product((1.0, -1.0), repeat=len(v)):
        total += 1
        hits += abs(sum(s * x for s, x in zip(signs, v))) >= observed - 1e-9
    return hits / total


def equal_tailed_sign_flip(values, centre: float = 0.0) -> float:
    """Equal-tailed two-sided sign-flip p of "symmetric about ``centre``": twice the smaller of
    the two one-sided tail shares of the flipped sums, by itertools (independent of biasprobe)."""
    v = [float(x) - centre for x in values if not math.isnan(x)]
    observed = sum(v)
    up = low = total = 0
    for signs in itertools.product((1.0, -1.0), repeat=len(v)):
        flipped = sum(s * x for s, x in zip(signs, v))
        total += 1
        up += flipped >= observed - 1e-12
        low += flipped <= observed + 1e-12
    return min(1.0, 2 * min(up, low) / total)


def direct_holm(p: list[float]) -> list[float]:
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        out[i] = min(1.0, running)
    return out


def _scores(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    shifts = {"t1": 0.8, "t2": 0.0, "t3": -0.3, "t4": 0.5, "t5": 0.2, "t6": 0.6, "t7": -0.1}
    sizes = {"t1": 6, "t2": 9, "t3": 4, "t4": 12, "t5": 7, "t6": 3, "t7": 5}
    for model in ("m1", "m2"):
        for t, shift in shifts.items():
            for j in range(sizes[t]):
                rows.append(
                    {
                        "model": model,
                        "pair_id": f"{t}/{j}",
                        "template_id": t,
                        "target_gap_mean": shift + rng.normal() + (0.4 if model == "m2" else 0),
                        "kurita_bias": rng.normal(0.3, 1.0),
                        "jaccard_distance": rng.uniform(),
                    }
                )
    df = pd.DataFrame(rows)
    df.loc[3, "target_gap_mean"] = float("nan")  # a pair without targets
    return df


def test_summary_p_values_match_exact_enumeration() -> None:
    scores = _scores()
    s = summarize(scores, set_name="demo", n_resamples=200, seed=3)
    assert list(s.columns) == SUMMARY_COLUMNS
    for score in ("target_gap_mean", "kurita_bias"):
        for model in ("m1", "m2"):
            per = scores[scores.model == model]
            sub = s[(s.model == model) & (s.score == score)]
            tmpl = sub[sub.level == "template"].set_index("key")
            for t, vals in per.groupby("template_id")[score]:
                assert tmpl.loc[t, "p_value"] == pytest.approx(exact_sign_flip(vals), abs=1e-12)
            # Holm across the templates of the set, per model and score
            want = direct_holm(tmpl["p_value"].tolist())
            assert tmpl["p_holm"].tolist() == pytest.approx(want, abs=1e-12)
            # set level: equal-tailed sign flips of the template means (7 templates: exact),
            # and the interval is the set of centres that test does not reject
            means = per.groupby("template_id", sort=False)[score].mean()
            row = sub[sub.level == "set"].iloc[0]
            assert row["p_value"] == pytest.approx(equal_tailed_sign_flip(means), abs=1e-12)
            assert math.isnan(row["p_holm"]) and row["templates"] == 7 and row["note"] == ""
            assert row["mean"] == pytest.approx(means.mean())
            for end, outward in ((row["ci_low"], -1e-9), (row["ci_high"], 1e-9)):
                assert equal_tailed_sign_flip(means, end) > 0.05
                assert equal_tailed_sign_flip(means, end + outward) <= 0.05
    # unsigned distances: no p-value
    d = s[s.score == "jaccard_distance"]
    assert d["p_value"].isna().all() and d["p_holm"].isna().all()


@pytest.mark.parametrize("templates", [1, 2, 5])
def test_too_few_templates_give_no_set_level_claim(templates) -> None:
    """Below 6 templates no two-sided sign-flip test can reach p < 0.05 (2/2^5 = 0.0625): the
    set row keeps its mean but has no interval or p, and says why; the template rows stay."""
    scores = _scores()
    keep = [f"t{i + 1}" for i in range(templates)]
    scores = scores[scores.template_id.isin(keep)]
    s = summarize(scores, set_name="demo", n_resamples=200)
    for row in s[s.level == "set"].itertuples():
        assert math.isnan(row.ci_low) and math.isnan(row.ci_high) and math.isnan(row.p_value)
        assert row.templates == templates
        named = "template" if templates == 1 else "templates"
        assert f"{templates} {named}: too few" in row.note and "template rows" in row.note
        per = scores[scores.model == row.model]
        want = per.groupby("template_id")[row.score].mean().mean()
        assert row.mean == pytest.approx(want)
    tmpl = s[(s.level == "template") & (s.score == "target_gap_mean")]
    assert tmpl["p_value"].notna().all() and tmpl["ci_low"].notna().all()


def test_one_pair_template_has_no_p() -> None:
    scores = pd.DataFrame(
        {"model": "m", "pair_id": ["a", "b", "c"], "template_id": ["one", "two", "two"]}
    )
    scores["target_gap_mean"] = [0.4, 0.1, 0.3]
    s = summarize(scores, set_name="x", score_names=("target_gap_mean",), n_resamples=100)
    one = s[(s.level == "template") & (s.key == "one")].iloc[0]
    assert math.isnan(one.p_value) and "1 pair" in one.note  # not p = 1.0
    two = s[(s.level == "template") & (s.key == "two")].iloc[0]
    assert two.p_value == pytest.approx(exact_sign_flip([0.1, 0.3]))


def test_random_mode_for_many_pairs_is_close_to_exact() -> None:
    rng = np.random.default_rng(7)
    n = 18  # above the exact limit of 16: 10,000 seeded flips
    scores = pd.DataFrame(
        {
            "model": "m",
            "pair_id": [f"p{i}" for i in range(n)],
            "template_id": "only",
            "target_gap_mean": rng.normal(0.35, 1.0, n),
        }
    )
    s = summarize(scores, set_name="x", score_names=("target_gap_mean",), n_resamples=200)
    exact = exact_sign_flip(scores["target_gap_mean"])
    # Monte-Carlo error of 10,000 flips: sd ≤ 0.005
    got = s[s.level == "template"].iloc[0]["p_value"]
    assert got == pytest.approx(exact, abs=0.02)
    # one template is too few for a set-level claim
    assert math.isnan(s[s.level == "set"].iloc[0]["p_value"])
    # seeded: the same again
    again = summarize(scores, set_name="x", score_names=("target_gap_mean",), n_resamples=200)
    assert again["p_value"].iloc[0] == s["p_value"].iloc[0]


def test_clustered_sign_flip_uses_template_means() -> None:
    v = [1.0, 2.0, -0.5, 3.0, 0.1, 0.2]
    c = ["a", "a", "b", "b", "c", "c"]
    means = [1.5, 1.25, 0.15]
    assert clustered_sign_flip(v, c) == pytest.approx(exact_sign_flip(means))
    assert clustered_sign_flip(v, ["a"] * 6) == pytest.approx(exact_sign_flip(v))
    assert math.isnan(clustered_sign_flip([float("nan")], ["a"]))


def test_delta_vs_base_p_values() -> None:
    scores = _scores()
    table = compare_to_base(
        scores,
        scores,
        base_model="m1",
        other_model="m2",
        score_names=("target_gap_mean", "jaccard_distance"),
        set_name="demo",
        n_resamples=200,
    )
    assert "p_value" in table and "p_holm" in table
    b = scores[scores.model == "m1"].set_index("pair_id")
    o = scores[scores.model == "m2"].set_index("pair_id")
    for score in ("target_gap_mean", "jaccard_distance"):
        diff = (o[score] - b.loc[o.index, score]).to_frame("d")
        diff["t"] = b.loc[o.index, "template_id"]
        diff = diff.dropna()
        sub = table[table.score == score]
        tmpl = sub[sub.level == "template"].set_index("key")
        for t, vals in diff.groupby("t")["d"]:
            assert tmpl.loc[t, "p_value"] == pytest.approx(exact_sign_flip(vals), abs=1e-12)
        assert tmpl["p_holm"].tolist() == pytest.approx(direct_holm(tmpl["p_value"].tolist()))
        means = diff.groupby("t", sort=False)["d"].mean()
        row = sub[sub.level == "set"].iloc[0]
        assert row["p_value"] == pytest.approx(equal_tailed_sign_flip(means), abs=1e-12)
        assert row["delta"] == pytest.approx(means.mean())
        for end, outward in ((row["delta_low"], -1e-9), (row["delta_high"], 1e-9)):
            assert equal_tailed_sign_flip(means, end) > 0.05
            assert equal_tailed_sign_flip(means, end + outward) <= 0.05


def test_null_p_values_are_roughly_uniform() -> None:
    """Under a symmetric null the set-level p (template means) rejects at about 5%."""
    rng = np.random.default_rng(11)
    ps = []
    for _ in range(200):
        t = np.repeat([f"t{i}" for i in range(8)], 5)
        shift = np.repeat(rng.normal(0, 1, 8), 5)  # template effects, symmetric around 0
        vals = shift + rng.normal(0, 1, t.size)
        ps.append(clustered_sign_flip(vals, t))
    rate = float(np.mean(np.asarray(ps) <= 0.05))
    assert 0.01 <= rate <= 0.10


def test_terminal_summary_shows_p_within_80_columns(capsys, monkeypatch) -> None:
    from types import SimpleNamespace

    from biasprobe.views.terminal import print_summary

    monkeypatch.setenv("COLUMNS", "80")
    scores = _scores()
    s = summarize(scores, set_name="demo", n_resamples=200)
    print_summary(SimpleNamespace(summary=s, meta={"settings": {"confidence": 0.95}}))
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    blocks = dict(zip(("m1", "m2"), out.split("model m1")[1].split("model m2")))
    for r in s[s.level == "set"].itertuples():
        line = next(x for x in blocks[r.model].splitlines() if f" {r.score} " in x)
        if r.score == "jaccard_distance":
            assert line.rstrip(" │").endswith("—")  # no p for a distance
        else:
            assert f"{r.p_value:.3f}" in line and f"{r.mean:.3f}" in line
    assert "model m1" in out and "model m2" in out


def test_terminal_says_why_a_small_set_has_no_interval(capsys, monkeypatch) -> None:
    from types import SimpleNamespace

    from biasprobe.views.terminal import print_summary

    monkeypatch.setenv("COLUMNS", "80")
    scores = _scores()
    scores = scores[scores.template_id.isin(["t1", "t2"])]
    s = summarize(scores, set_name="demo", n_resamples=200)
    print_summary(SimpleNamespace(summary=s, meta={"settings": {"confidence": 0.95}}))
    out = capsys.readouterr().out
    assert "2 templates: too few" in out
    # the template rows are shown instead of a set-level interval
    assert "t1" in out and "t2" in out
    assert max(len(line) for line in out.splitlines()) <= 80
