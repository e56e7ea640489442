"""biasprobe.comparisons: the comparison tables computed at summarise time give exactly the
numbers the fill-mask report computed while rendering, the counterfactual comparison lives with
them, and the CrowS-Pairs comparison is checked against scipy and a direct bootstrap."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, spearmanr

import biasprobe
from biasprobe.comparisons import (
    COMPARISON_COLUMNS,
    CROWS_COLUMNS,
    FILL_MASK_COLUMNS,
    PAIR_SCORES,
    counterfactual_comparison,
    crows_comparison,
    fill_mask_comparison,
)
from biasprobe.probes import load_probe_set
from biasprobe.scores import SUMMARY_SCORES, compare_to_base, topk

REPO = Path(__file__).resolve().parent.parent


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN (exact: no tolerance)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


@pytest.fixture(scope="module", params=["full", "top"])
def run_two(request, tiny_bert, tiny_bert_b):
    probe_set = load_probe_set(REPO / "probes" / "gender.yaml")
    kw = {"store": "full"} if request.param == "full" else {"store_top_n": 40}
    models = [str(tiny_bert), str(tiny_bert_b)]
    return biasprobe.run(probe_set, models, device="cpu", n_bootstrap=300, seed=3, **kw)


def _table(run):
    settings = run.meta["settings"]
    return fill_mask_comparison(
        run.scores,
        set_name=run.meta["probe_set"]["name"],
        tokens=run,
        n_resamples=int(settings["bootstrap_resamples"]),
        confidence=float(settings["confidence"]),
        seed=int(settings["seed"]),
    )


def test_fill_mask_comparison_against_direct_computations(run_two):
    """Independently of the report: the set rows are compare_to_base's, and each ρ over the
    base's top 300 / the whole vocabulary is scipy's spearmanr on the stored log-probs."""
    run = run_two
    table = _table(run)
    base, other = run.models
    ref = compare_to_base(
        run.scores,
        run.scores,
        base_model=base,
        other_model=other,
        score_names=SUMMARY_SCORES,
        set_name=run.meta["probe_set"]["name"],
        n_resamples=300,
        seed=3,
    )
    got = table[(table["level"] == "set")].set_index("score")
    for r in ref[ref["level"] == "set"].to_dict("records"):
        assert _same(got.loc[r["score"], "change"], r["delta"])
        assert _same(got.loc[r["score"], "ci_low"], r["delta_low"])
    pairs = table[table["level"] == "pair"].set_index(["key", "score"])
    full = run.stored_top_n(base) is None
    for pid in list(dict.fromkeys(run.scores["pair_id"]))[:10]:
        if not full:
            assert pairs.loc[(pid, "rho_vocab_a"), "note"] == "needs --store full"
            continue
        xa, xb = run.pair_logprobs(base, pid)
        ya, yb = run.pair_logprobs(other, pid)
        for name, x, y in (("rho_top_a", xa, ya), ("rho_top_b", xb, yb)):
            ids = np.sort(topk(x, 300)[0])
            want = spearmanr(x[ids], y[ids]).statistic
            assert pairs.loc[(pid, name), "rho"] == pytest.approx(want, abs=1e-12)
        assert pairs.loc[(pid, "rho_vocab_b"), "rho"] == pytest.approx(
            spearmanr(xb, yb).statistic, abs=1e-12
        )
        sc = run.scores.set_index(["model", "pair_id"])
        for s in PAIR_SCORES:
            want = float(sc.loc[(other, pid), s]) - float(sc.loc[(base, pid), s])
            assert _same(pairs.loc[(pid, s), "change"], want)


def test_fill_mask_comparison_of_one_model_is_empty(run_two):
    run = run_two
    one = run.scores[run.scores["model"] == run.models[0]]
    table = fill_mask_comparison(one, set_name="x", tokens=run)
    assert table.empty and list(table.columns) == FILL_MASK_COLUMNS


def test_counterfactual_comparison_is_the_downstream_one():
    from biasprobe.downstream import scores as ds

    assert ds.compare_models is counterfactual_comparison
    rng = np.random.default_rng(0)
    frames = []
    for m, shift in (("a", 0.0), ("b", 0.05)):
        p_min = np.clip(rng.uniform(0, 1, 24) + shift, 0, 1)
        p_norm = rng.uniform(0, 1, 24)
        sc = ds.pair_scores(p_min, p_norm, ["x"] * 24, ["y"] * 24, np.zeros(24, int))
        sc.insert(0, "model", m)
        sc.insert(1, "pair_id", [f"p{i}" for i in range(24)])
        sc.insert(2, "template_id", [f"t{i % 3}" for i in range(24)])
        frames.append(sc)
    comp = counterfactual_comparison(pd.concat(frames), set_name="s", n_resamples=200)
    assert list(comp.columns[: len(COMPARISON_COLUMNS)]) == COMPARISON_COLUMNS
    # the template change of mean Δ is the difference of the two models' means
    r = comp[(comp.level == "template") & (comp.key == "t0") & (comp.score == "delta")].iloc[0]
    d = [f[f.template_id == "t0"]["delta"].to_numpy() for f in frames]
    assert r["change"] == pytest.approx(d[1].mean() - d[0].mean(), abs=1e-12)


def _crows(outcomes: dict[str, list[str]], types: list[str]) -> pd.DataFrame:
    rows = []
    for m, outs in outcomes.items():
        for i, (o, t) in enumerate(zip(outs, types, strict=True)):
            rows.append({"model": m, "pair_id": i, "bias_type": t, "outcome": o})
    return pd.DataFrame(rows)


def test_crows_comparison_against_scipy_and_a_direct_bootstrap():
    rng = np.random.default_rng(5)
    n = 80
    types = [("race-color", "gender", "religion")[i % 3] for i in range(n)]
    base = rng.choice(["more", "less", "tie"], size=n, p=[0.5, 0.45, 0.05]).tolist()
    other = [o if rng.random() < 0.6 else rng.choice(["more", "less"]) for o in base]
    base[3], other[7] = "skipped", "skipped"  # left out: not scored by both
    table = crows_comparison(_crows({"base": base, "m2": other}, types), seed=4, n_resamples=500)
    assert list(table.columns) == CROWS_COLUMNS
    assert table["level"].tolist() == ["overall", "bias_type", "bias_type", "bias_type"]
    keep = np.array([i not in (3, 7) for i in range(n)])
    x0 = (np.array(base) == "more").astype(float)[keep]
    x1 = (np.array(other) == "more").astype(float)[keep]
    row = table.iloc[0]
    assert row["n"] == keep.sum() == 78
    assert row["base_mean"] == pytest.approx(100 * x0.mean())
    assert row["change"] == pytest.approx(100 * (x1.mean() - x0.mean()))
    b, c = int(((x0 == 1) & (x1 == 0)).sum()), int(((x0 == 0) & (x1 == 1)).sum())
    assert (row["n_only_base"], row["n_only_model"]) == (b, c)
    assert row["p_value"] == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-12)
    d = 100 * (x1 - x0)
    draws = np.random.default_rng(4).integers(0, d.size, size=(500, d.size))
    lo, hi = np.quantile(d[draws].mean(axis=1), [0.025, 0.975])
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi), abs=1e-9)
    # per bias type: only that type's pairs
    sub = table.set_index("key").loc["gender"]
    t = (np.array(types) == "gender")[keep]
    assert sub["n"] == t.sum()
    assert sub["change"] == pytest.approx(100 * (x1[t].mean() - x0[t].mean()))
    # no other model: empty
    assert crows_comparison(_crows({"base": base}, types)).empty
    with pytest.raises(ValueError, match="outcome"):
        crows_comparison(pd.DataFrame({"model": ["a"], "pair_id": [0], "bias_type": ["x"]}))
