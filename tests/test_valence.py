"""biasprobe.measures.valence against direct computation (Python loops over the vocabulary)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biasprobe.errors import UsageError
from biasprobe.measures.valence import (
    MEASURES,
    load_vader_lexicon,
    pair_valence,
    side_valence,
    summarize_valence,
    vocab_polarity,
)

VOCAB = ["[PAD]", "good", "bad", "##ful", "Terrible", "nurse", "kind", "Ġawful", "▁happy", "ok"]
LEXICON = {
    "good": 1.9,
    "bad": -2.5,
    "terrible": -2.1,
    "kind": 2.4,
    "awful": -2.0,
    "happy": 2.7,
    "ok": 0.02,
    "ful": -3.0,
}


def test_vocab_polarity_rules():
    pol = vocab_polarity(VOCAB, LEXICON)
    assert pol.tolist() == [0, 1, -1, 0, -1, 0, 1, -1, 1, 1]
    # A threshold makes near-neutral words neutral.
    assert vocab_polarity(VOCAB, LEXICON, threshold=0.05).tolist()[-1] == 0
    with pytest.raises(UsageError):
        vocab_polarity(VOCAB, LEXICON, threshold=-1)


def _direct(lp: np.ndarray, pol: np.ndarray, k: int) -> dict[str, float]:
    order = sorted(range(len(lp)), key=lambda i: (-lp[i], i))[:k]
    p = [math.exp(x) for x in lp]
    return {
        "share_neg_topk": sum(pol[i] < 0 for i in order) / k,
        "share_pos_topk": sum(pol[i] > 0 for i in order) / k,
        "mass_neg_topk": sum(p[i] for i in order if pol[i] < 0),
        "mass_pos_topk": sum(p[i] for i in order if pol[i] > 0),
        "mass_neg_vocab": sum(p[i] for i in range(len(lp)) if pol[i] < 0),
        "mass_pos_vocab": sum(p[i] for i in range(len(lp)) if pol[i] > 0),
    }


def _logsoftmax(x: np.ndarray) -> np.ndarray:
    return x - np.log(np.exp(x - x.max()).sum()) - x.max()


@pytest.mark.parametrize("seed", range(4))
def test_side_and_pair_valence_match_direct_computation(seed):
    rng = np.random.default_rng(seed)
    V, k = 300, 10
    pol = rng.choice([-1, 0, 0, 0, 1], size=V).astype(np.int8)
    lp_a = _logsoftmax(rng.normal(0, 2, V))
    lp_b = _logsoftmax(rng.normal(0, 2, V))
    lp_b[5] = lp_b[6]  # a tie in the ranking: lower id first
    got = side_valence(lp_a, pol, k)
    want = _direct(lp_a, pol, k)
    for m in MEASURES:
        assert got[m] == pytest.approx(want[m], abs=1e-12)
    for minoritized in (0, 1):
        row = pair_valence(lp_a, lp_b, pol, k, minoritized)
        da, db = _direct(lp_a, pol, k), _direct(lp_b, pol, k)
        mino, norm = (da, db) if minoritized == 0 else (db, da)
        for m in MEASURES:
            assert row[f"{m}_a"] == pytest.approx(da[m], abs=1e-12)
            assert row[f"{m}_b"] == pytest.approx(db[m], abs=1e-12)
            assert row[f"{m}_signed"] == pytest.approx(mino[m] - norm[m], abs=1e-12)


def test_bad_arguments():
    pol = np.zeros(3, dtype=np.int8)
    with pytest.raises(UsageError):
        side_valence(np.zeros(4), pol, 2)
    with pytest.raises(UsageError):
        side_valence(np.zeros(3), pol, 0)
    with pytest.raises(UsageError):
        pair_valence(np.zeros(3), np.zeros(3), pol, 2, minoritized=2)


def test_summary_uses_template_means_for_interval_and_p():
    from tests.test_significance import equal_tailed_sign_flip

    rng = np.random.default_rng(0)
    rows = []
    for i in range(35):
        row = {f"{m}_signed": float(rng.normal(0.05, 0.1)) for m in MEASURES}
        row["template_id"] = f"t{i % 7}"
        rows.append(row)
    out = {r["measure"]: r for r in summarize_valence(rows, n_resamples=500, n_perm=2000)}
    for m in MEASURES:
        means = [
            np.mean([r[f"{m}_signed"] for r in rows if r["template_id"] == f"t{t}"])
            for t in range(7)
        ]
        assert out[m]["mean"] == pytest.approx(np.mean(means))
        assert out[m]["n"] == 35 and out[m]["templates"] == 7
        assert out[m]["p_value"] == pytest.approx(equal_tailed_sign_flip(means, 0.0))
        assert (
            equal_tailed_sign_flip(means, out[m]["ci_low"])
            > 0.05
            >= equal_tailed_sign_flip(means, out[m]["ci_low"] - 1e-9)
        )
        assert (
            equal_tailed_sign_flip(means, out[m]["ci_high"])
            > 0.05
            >= equal_tailed_sign_flip(means, out[m]["ci_high"] + 1e-9)
        )
    # three templates: a mean, no set-level interval or p, and why
    few = summarize_valence([dict(r, template_id=f"t{i % 3}") for i, r in enumerate(rows)])
    assert all(np.isnan(r["ci_low"]) and np.isnan(r["p_value"]) for r in few)
    assert all("3 templates: too few" in r["note"] for r in few)


def test_vader_lexicon_on_the_real_vocab(real_vocab):
    pytest.importorskip("vaderSentiment", reason="the optional package vaderSentiment is absent")
    lex = load_vader_lexicon()
    assert len(lex) > 7000 and lex["good"] == pytest.approx(1.9) and lex["terrible"] < 0
    vocab = real_vocab.read_text(encoding="utf-8").splitlines()
    pol = vocab_polarity(vocab, lex)
    idx = {w: i for i, w in enumerate(vocab)}
    assert pol[idx["good"]] == 1 and pol[idx["terrible"]] == -1 and pol[idx["nurse"]] == 0
    assert pol[idx["##ing"]] == 0
    # Direct count of vocabulary words the lexicon rates negative.
    direct = sum(
        1 for w in vocab if not w.startswith("##") and lex.get(w, lex.get(w.lower(), 0)) < 0
    )
    assert int((pol < 0).sum()) == direct
