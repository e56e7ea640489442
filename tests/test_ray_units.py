"""The cache's side of computing elsewhere, without Ray: with a
:class:`~biasprobe.backends.base.CallRunner`, every cache wrapper hands the runner every batch a
request misses in one list (results may come back in any order), commits each as it returns (a
run interrupted mid-stream keeps every finished batch and resumes computing only the rest), and
the numbers are the plain model's, bit for bit — for every kind of request: a masked LM's mask
and token requests, a classifier's label probabilities, a causal LM's and a pseudo-log-likelihood
scorer's sentence log-likelihoods."""

from __future__ import annotations

import numpy as np
import pytest

from biasprobe.backends.cached import open_cache, wrap, wrap_classifier
from biasprobe.backends.cached_sentences import wrap_scorer
from biasprobe.backends.causal import HFCausalLM, load_hf_causal_lm
from biasprobe.backends.registry import load

SENTENCES = [f"I love {w} people." for w in ("tall", "short", "old", "young", "blind", "deaf")]
SENTENCES += [f"I hate {w}." for w in ("cats", "dogs", "rain", "tea", "mud", "noise", "work")]
MASKED = [f"The {w} man works as a [MASK]." for w in ("tall", "old", "young", "blind", "deaf")]
MASKED += [f"She is [MASK] at {w}." for w in ("home", "work", "night")]


class Reversed:
    """A runner computing the calls on a second copy of the model, last call first (results
    in any order), recording each list it is given; interrupted after ``fail_after`` calls."""

    def __init__(self, model, fail_after: int | None = None) -> None:
        self.model = model
        self.lists: list[tuple[str, int]] = []
        self.fail_after = fail_after

    def provenance(self):
        return {"kind": "reversed"}

    def run_calls(self, method, calls):
        self.lists.append((method, len(calls)))
        for n, k in enumerate(reversed(range(len(calls)))):
            if self.fail_after is not None and n == self.fail_after:
                raise KeyboardInterrupt  # the driver interrupted mid-stream
            yield k, getattr(self.model, method)(*calls[k])


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2):
    return load_hf_causal_lm(str(tiny_gpt2), device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def bert(tiny_bert):
    return load(str(tiny_bert), "masked-lm", device="cpu", batch_size=3)


@pytest.fixture(params=["cache", "no cache"])
def store(request, tmp_path):
    if request.param == "no cache":
        yield "--no-cache"
        return
    cache = open_cache(tmp_path / "c", True)
    yield cache
    cache.close()


def test_mask_requests_go_to_the_runner_in_one_list(bert, store):
    runner = Reversed(bert)
    got = wrap(bert, store, runner).mask_logprobs(MASKED + MASKED[:2])
    assert runner.lists == [("mask_logprobs", 3)]  # 8 distinct sentences, batches of 3
    want = bert.mask_logprobs(MASKED + MASKED[:2])
    np.testing.assert_array_equal(got, want)
    # independent: each row is a log-distribution over the vocabulary
    np.testing.assert_allclose(np.exp(got.astype(np.float64)).sum(axis=1), 1.0, atol=1e-4)


def test_token_requests_go_to_the_runner_in_one_list(bert, store):
    ids = bert.token_ids(MASKED)
    requests = [(seq, p) for seq in ids for p in range(1, len(seq) - 1)]
    runner = Reversed(bert)
    got = wrap(bert, store, runner).token_logprobs(requests)
    assert runner.lists == [("token_logprobs", -(-len(requests) // 3))]
    np.testing.assert_array_equal(got, bert.token_logprobs(requests))


def test_label_requests_go_to_the_runner_in_one_list(tiny_hf_classifier, store):
    clf = load(str(tiny_hf_classifier), "classifier", device="cpu", batch_size=4)
    runner = Reversed(clf)
    got = wrap_classifier(clf, store, runner).p_label(SENTENCES + SENTENCES[:3])
    assert runner.lists == [("p_label", 4)]  # 13 distinct texts, batches of 4
    np.testing.assert_array_equal(got, clf.p_label(SENTENCES + SENTENCES[:3]))
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)


def test_causal_sentence_units_go_to_the_runner_in_one_list(gpt2, store):
    runner = Reversed(gpt2)
    got = wrap_scorer(gpt2, store, runner).sentence_logprobs(SENTENCES)
    assert runner.lists == [("sentence_logprobs", 4)]  # 13 distinct inputs, batches of 4
    plain = HFCausalLM(gpt2.model, gpt2.tokenizer, name=gpt2.name, batch_size=4)
    for g, w in zip(got, plain.sentence_logprobs(SENTENCES), strict=True):
        assert g.total == w.total and g.token_ids == w.token_ids
        np.testing.assert_array_equal(g.logprobs, w.logprobs)
    assert got[0].total == pytest.approx(float(np.sum(got[0].logprobs)), abs=1e-12)


def test_pseudo_log_likelihood_calls_go_to_the_runner(tiny_bert, store):
    pll = load(str(tiny_bert), "sentence-scorer", device="cpu", batch_size=8)
    runner = Reversed(pll)
    scorer = wrap_scorer(pll, store, runner)
    calls = [SENTENCES[:5], SENTENCES[5:]]
    got = list(scorer.calls_logprobs(calls))
    assert runner.lists == [("sentence_logprobs", 2)]  # one unit per call, both in one list
    for call, part in zip(calls, got, strict=True):
        want = pll.sentence_logprobs(call)
        assert [g.total for g in part] == [w.total for w in want]


def test_a_run_interrupted_mid_stream_keeps_every_finished_batch(gpt2, tmp_path):
    cache = open_cache(tmp_path / "c", True)
    try:
        with pytest.raises(KeyboardInterrupt):
            wrap_scorer(gpt2, cache, Reversed(gpt2, fail_after=2)).sentence_logprobs(SENTENCES)
        runner = Reversed(gpt2)
        resumed = wrap_scorer(gpt2, cache, runner)
        # 13 inputs in units of 4, 4, 4, 1; the last two came back first (4 + 1) and stay
        assert int(resumed.stored(SENTENCES).sum()) == 5
        got = resumed.sentence_logprobs(SENTENCES)
        assert resumed.hits == 5 and resumed.computed == 8
        assert runner.lists == [("sentence_logprobs", 2)]  # only the two missing units
        for g, w in zip(got, gpt2.sentence_logprobs(SENTENCES), strict=True):
            np.testing.assert_array_equal(g.logprobs, w.logprobs)
    finally:
        cache.close()


def test_an_interrupted_mask_request_resumes_from_its_committed_batches(bert, tmp_path):
    cache = open_cache(tmp_path / "c", True)
    try:
        with pytest.raises(KeyboardInterrupt):
            wrap(bert, cache, Reversed(bert, fail_after=1)).mask_logprobs(MASKED)
        runner = Reversed(bert)
        resumed = wrap(bert, cache, runner)
        got = resumed.mask_logprobs(MASKED)
        assert runner.lists == [("mask_logprobs", 2)]  # the batch that returned is stored
        assert resumed.stats["mask"] == {"hits": 2, "misses": 6}
        np.testing.assert_array_equal(got, bert.mask_logprobs(MASKED))
    finally:
        cache.close()


def test_several_calls_are_planned_as_one_list(gpt2, tmp_path):
    """``calls_logprobs``: the units every call misses go to the runner in one list (one Ray
    dataset per model, not one per call); each call's results are those of
    ``sentence_logprobs(call)`` on the plain scorer, in order."""
    calls = [SENTENCES[:5], SENTENCES[5:11], SENTENCES[11:]]
    cache = open_cache(tmp_path / "c", True)
    try:
        wrap_scorer(gpt2, cache).sentence_logprobs(calls[1])  # call 2 stored
        runner = Reversed(gpt2)
        got = list(wrap_scorer(gpt2, cache, runner).calls_logprobs(calls))
        assert runner.lists == [("sentence_logprobs", 3)]  # call 1: 2 units, call 3: 1
        for call, part in zip(calls, got, strict=True):
            want = gpt2.sentence_logprobs(call)
            assert [g.total for g in part] == [w.total for w in want]
            for g, w in zip(part, want, strict=True):
                np.testing.assert_array_equal(g.logprobs, w.logprobs)
    finally:
        cache.close()


def test_the_holistic_report_says_where_a_model_ran_escaping_it(tiny_gpt2):
    """A model block with ``info.engine`` (a Ray run) is shown as such in the report, its
    address escaped like every other user text; a local run says nothing of the kind."""
    from biasprobe.report.holistic import render_html
    from biasprobe.tasks.holistic import run_holistic

    result = run_holistic(
        [str(tiny_gpt2)], axes=["nonce"], sample=48, seed=1, device="cpu", cache=False
    )
    assert "on Ray" not in render_html(result)
    result.meta["models"][0]["info"]["engine"] = {
        "kind": "ray",
        "actors": 2,
        "address": "<script>alert(1)</script>",
        "num_cpus": 0.5,
        "num_gpus": 1.0,
    }
    page = render_html(result)
    assert (
        "on Ray: 2 actor(s) at &lt;script&gt;alert(1)&lt;/script&gt;, 0.5 CPU and 1.0 GPU" in page
    )
    assert "<script>alert(1)" not in page
