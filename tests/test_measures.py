"""biasprobe.measures: the registry gives exactly the column lists, signs, labels and
directions the code names today, valence computed through its registry entry equals the
module's functions, and a new measure is one registration away from the summary."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import biasprobe.measures as M
from biasprobe.errors import UsageError
from biasprobe.measures import Measure
from biasprobe.measures import valence as V
from biasprobe.scores import SIGNED_SCORES, SKEW_SCORES, SUMMARY_SCORES, pair_scores, summarize


def test_registry_reproduces_the_fill_mask_constants():
    assert M.summary_scores() == SUMMARY_SCORES
    assert M.signed_columns() == SIGNED_SCORES
    assert M.summary_scores(["valence"]) == (*SUMMARY_SCORES, *V.RUN_COLUMNS)
    assert M.signed_columns(["valence"]) == (*SIGNED_SCORES, *V.RUN_COLUMNS)
    assert set(M.sentence_columns()) == set(SKEW_SCORES) | set(V.RUN_COLUMNS)
    assert M.optional_names() == ("valence",)
    assert M.optional_columns() == V.RUN_COLUMNS
    assert M.active_in(["pair_id", *SUMMARY_SCORES]) == ()
    assert M.active_in(["pair_id", "valence_mass_neg_vocab"]) == ("valence",)
    for col in (*SIGNED_SCORES, *V.RUN_COLUMNS):
        assert M.is_signed(col) and M.less_biased(col) == "closer to 0"
    for col in ("jaccard_distance", "rbo_distance", "js_divergence"):
        assert not M.is_signed(col) and M.less_biased(col) == "lower"
    assert M.label("kurita_bias") == "Kurita bias (prior-norm.)"
    assert M.label("no_such_column") == "no_such_column" and not M.is_signed("no_such_column")
    for m in M.all_measures():
        assert m.formula and m.source and m.less_biased and m.needs


def test_registry_reproduces_the_counterfactual_labels():
    from biasprobe.downstream.scores import LESS_BIASED, SCORE_LABELS

    assert list(SCORE_LABELS.items()) == [
        ("delta", "mean Δ P(pos)"),
        ("abs_delta", "mean |Δ| (CTF gap)"),
        ("flip", "flip rate"),
        ("invariance_failure", "invariance failure rate"),
        ("wasserstein", "Wasserstein-1"),
        ("mean_p_positive", "mean P(pos)"),
    ]
    assert LESS_BIASED == {
        "delta": "closer to 0",
        "abs_delta": "lower (0 = the group word never matters)",
        "flip": "lower",
        "invariance_failure": "lower",
        "wasserstein": "lower",
        "mean_p_positive": "equal across groups",
    }


def test_builtin_entries_compute_what_pair_scores_computes():
    rng = np.random.default_rng(2)
    la, lb = (np.log(rng.dirichlet(np.ones(50))) for _ in range(2))
    tlp = np.log(rng.uniform(0.01, 0.5, size=(2, 3)))
    row = pair_scores(la, lb, k=10, minoritized=1, target_logprobs=tlp)
    for name in ("topk_overlap", "rbo", "js_divergence", "target_gap"):
        got = M.get(name).compute(la, lb, k=10, minoritized=1, target_logprobs=tlp)
        assert got == {c: row[c] for c in M.get(name).columns}
    kur = M.get("kurita").compute(
        target_logprobs=[-1.0, -2.0], prior_logprobs=[-3.0, -1.5], minoritized=0
    )
    assert kur == {"kurita_bias": pytest.approx((-1.0 + 3.0) - (-2.0 + 1.5))}


def test_valence_through_the_registry_equals_the_module():
    vocab = ["[PAD]", "good", "bad", "nurse", "awful", "kind", "ok", "happy"]
    lexicon = {"good": 1.9, "bad": -2.5, "awful": -2.0, "kind": 2.4, "happy": 2.7}
    m = M.get("valence")
    assert m.optional and m.compares_sentences and m.columns == V.RUN_COLUMNS
    ctx = m.prepare(vocab, lexicon)
    np.testing.assert_array_equal(ctx, V.vocab_polarity(vocab, lexicon))
    rng = np.random.default_rng(0)
    la, lb = (np.log(rng.dirichlet(np.ones(len(vocab)))) for _ in range(2))
    got = m.compute(la, lb, context=ctx, k=3, minoritized=1)
    assert got == V.run_columns(V.pair_valence(la, lb, ctx, 3, 1))
    # direct check of one column: probability mass of negative words, minoritized (B) − A
    neg = np.array([t in ("bad", "awful") for t in vocab])
    assert got["valence_mass_neg_vocab"] == pytest.approx(
        np.exp(lb)[neg].sum() - np.exp(la)[neg].sum()
    )
    assert m.summarise is V.summarize_valence and m.load is V.load_vader_lexicon
    assert m.label("valence_share_neg_topk").startswith("valence:")


def test_blank_sentence_scores_matches_blank_skew_scores():
    from biasprobe.scores import blank_skew_scores

    row = {c: 1.0 for c in (*SKEW_SCORES, *V.RUN_COLUMNS, "kurita_bias", "k")}
    a, b = M.blank_sentence_scores(dict(row)), blank_skew_scores(dict(row))
    assert a.keys() == b.keys()
    assert all((np.isnan(a[c]) and np.isnan(b[c])) or a[c] == b[c] for c in a)
    assert a["kurita_bias"] == 1.0 and np.isnan(a["valence_mass_neg_vocab"])


def test_a_new_measure_is_one_registration():
    toy = Measure(
        name="toy_gap",
        columns=("toy_gap",),
        signed=("toy_gap",),
        formula="minoritized − normative of something",
        source="a test",
        needs=("nothing",),
        optional=True,
    )
    M.register(toy)
    try:
        assert "toy_gap" in M.names("fill-mask") and M.get("toy_gap") is toy
        assert M.summary_scores(["toy_gap"])[-1] == "toy_gap"
        assert M.signed_columns(["toy_gap"])[-1] == "toy_gap"
        scores = pd.DataFrame(
            {
                "model": "m",
                "pair_id": [f"p{i}" for i in range(8)],
                "template_id": [f"t{i % 2}" for i in range(8)],
                "toy_gap": np.linspace(-1, 2, 8),
            }
        )
        s = summarize(
            scores,
            set_name="x",
            score_names=M.summary_scores(["toy_gap"]),
            signed=M.signed_columns(["toy_gap"]),
            n_resamples=50,
        )
        t = s[(s.score == "toy_gap") & (s.level == "template")]
        assert len(t) == 2 and t["p_value"].notna().all()  # signed: tested against 0
        with pytest.raises(ValueError, match="already registered"):
            M.register(toy)
    finally:
        M.unregister("toy_gap")
    with pytest.raises(UsageError, match="unknown measure 'toy_gap'"):
        M.get("toy_gap")


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"columns": ()}, "no column"),
        ({"signed": ("other",)}, "signed column"),
        ({"labels": (("other", "x"),)}, "labels for unknown"),
        ({"kind": "vision"}, "kind must be"),
        ({"source": ""}, "required"),
        ({"name": "a b"}, "name must be"),
    ],
)
def test_a_measure_declares_itself_fully(bad, match):
    kw = {"name": "x", "columns": ("a",), "formula": "f", "source": "s"} | bad
    with pytest.raises(ValueError, match=match):
        Measure(**kw)


def test_a_column_belongs_to_one_measure():
    with pytest.raises(ValueError, match="already belong to measure 'kurita'"):
        M.register(Measure(name="again", columns=("kurita_bias",), formula="f", source="s"))
    assert "again" not in M.names()


def test_the_optional_measure_pipeline_equals_what_the_runner_does_for_valence():
    """load → prepare per model → compute per pair → settings: the generic calls give the
    runner's valence numbers (vocab_polarity, then run_columns(pair_valence(...)))."""
    vocab = ["[PAD]", "good", "bad", "nurse", "awful", "kind", "ok", "happy"]
    lexicon = {"good": 1.9, "bad": -2.5, "awful": -2.0, "kind": 2.4, "happy": 2.7}
    original = M.get("valence")
    M.register(dataclasses.replace(original, load=lambda: lexicon), replace=True)
    try:
        loaded = M.load_resources(["valence"])
    finally:
        M.register(original, replace=True)
    assert loaded == {"valence": lexicon}
    ctx = M.prepare_contexts(loaded, vocab)
    np.testing.assert_array_equal(ctx["valence"], V.vocab_polarity(vocab, lexicon))
    rng = np.random.default_rng(1)
    la, lb = (np.log(rng.dirichlet(np.ones(len(vocab)))) for _ in range(2))
    got = M.compute_pair(ctx, la, lb, k=4, minoritized=0)
    pol = V.vocab_polarity(vocab, lexicon)
    assert got == V.run_columns(V.pair_valence(la, lb, pol, 4, 0))
    assert M.compute_pair({}, la, lb, k=4, minoritized=0) == {}
    with pytest.raises(UsageError, match="unknown measure"):
        M.load_resources(["nope"])


def test_registry_pipeline_reproduces_a_real_valence_run(tiny_bert):
    """A run with valence=True, recomputed pair by pair through the registry calls from its
    stored full-vocabulary log-probs: the same valence_* numbers, exactly."""
    pytest.importorskip("vaderSentiment")
    from pathlib import Path

    import biasprobe
    from biasprobe.probes import load_probe_set

    repo = Path(__file__).resolve().parent.parent
    probe_set = load_probe_set(repo / "probes" / "gender.yaml")
    run = biasprobe.run(
        probe_set, [str(tiny_bert)], device="cpu", store="full", valence=True, n_bootstrap=100
    )
    model = run.models[0]
    ctx = M.prepare_contexts(M.load_resources(["valence"]), run.vocab(model))
    roles = run.items.pivot(index="pair_id", columns="side", values="role")
    k = int(run.meta["settings"]["top_k"])
    checked = 0
    for row in run.scores.to_dict("records"):
        if row["pair_id"] not in roles.index or np.isnan(row["valence_mass_neg_vocab"]):
            continue
        minoritized = 0 if roles.loc[row["pair_id"], "A"] == "minoritized" else 1
        la, lb = run.pair_logprobs(model, row["pair_id"])
        got = M.compute_pair(ctx, la, lb, k=k, minoritized=minoritized)
        assert got == {c: row[c] for c in V.RUN_COLUMNS}, row["pair_id"]
        checked += 1
    assert checked >= 20
    assert M.run_settings(["valence"], k=k) == {"valence": run.meta["settings"]["valence"]}
