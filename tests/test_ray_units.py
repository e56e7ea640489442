"""The cache's side of a distributed scorer, without Ray: a
:class:`~biasprobe.backends.base.UnitScorer` gets every unit the cache misses in one call, each
unit returned is committed at once (a run killed mid-stream keeps every finished unit and
resumes computing only the rest), and the numbers are the plain scorer's, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from biasprobe.backends.cached import open_cache, wrap_scorer
from biasprobe.backends.causal import HFCausalLM, load_hf_causal_lm

SENTENCES = [f"I love {w} people." for w in ("tall", "short", "old", "young", "blind", "deaf")]
SENTENCES += [f"I hate {w}." for w in ("cats", "dogs", "rain", "tea", "mud", "noise", "work")]


class Streaming(HFCausalLM):
    """A causal LM answering units one at a time (as a Ray scorer would), recording the
    calls, and optionally killed after ``fail_after`` units."""

    def __init__(self, local: HFCausalLM, fail_after: int | None = None) -> None:
        super().__init__(
            local.model, local.tokenizer, name=local.name, batch_size=4, info=local.info
        )
        self.calls: list[int] = []
        self.fail_after = fail_after

    def score_units(self, units):
        self.calls.append(len(units))
        for k, unit in enumerate(units):
            if self.fail_after is not None and k == self.fail_after:
                raise KeyboardInterrupt  # the driver interrupted mid-stream
            yield k, self.sentence_logprobs(unit)


@pytest.fixture(scope="module")
def local(tiny_gpt2):
    return load_hf_causal_lm(str(tiny_gpt2), device="cpu", batch_size=4)


def test_every_missed_unit_goes_in_one_call_and_numbers_are_the_scorers(local, tmp_path):
    cache = open_cache(tmp_path / "c", True)
    try:
        streaming = Streaming(local)
        got = wrap_scorer(streaming, cache).sentence_logprobs(SENTENCES)
        assert streaming.calls == [4]  # 13 distinct inputs, batches of 4: one call of 4 units
        plain = HFCausalLM(local.model, local.tokenizer, name=local.name, batch_size=4)
        want = plain.sentence_logprobs(SENTENCES)
        for g, w in zip(got, want, strict=True):
            assert g.total == w.total and g.token_ids == w.token_ids
            np.testing.assert_array_equal(g.logprobs, w.logprobs)
        # an independent check of one total: the sum of its token log-probs
        assert got[0].total == pytest.approx(float(np.sum(got[0].logprobs)), abs=1e-12)
    finally:
        cache.close()


def test_a_run_interrupted_mid_stream_keeps_every_finished_unit(local, tmp_path):
    cache = open_cache(tmp_path / "c", True)
    try:
        with pytest.raises(KeyboardInterrupt):
            wrap_scorer(Streaming(local, fail_after=2), cache).sentence_logprobs(SENTENCES)
        resumed = wrap_scorer(Streaming(local), cache)
        assert int(resumed.stored(SENTENCES).sum()) == 8  # two units of 4 committed
        got = resumed.sentence_logprobs(SENTENCES)
        assert resumed.hits == 8 and resumed.computed == 5
        assert resumed.inner.calls == [2]  # only the two missing units were asked for
        want = HFCausalLM(
            local.model, local.tokenizer, name=local.name, batch_size=4
        ).sentence_logprobs(SENTENCES)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g.logprobs, w.logprobs)
            assert g.total == w.total
    finally:
        cache.close()


def test_several_calls_are_planned_as_one_stream(local, tmp_path):
    """``calls_logprobs``: the units every call misses go in one ``score_units`` call (one
    dataset per model on Ray, not one per call), and each call's results are those of
    ``sentence_logprobs(call)`` on the plain scorer, in order."""
    calls = [SENTENCES[:5], SENTENCES[5:11], SENTENCES[11:]]
    cache = open_cache(tmp_path / "c", True)
    try:
        wrap_scorer(Streaming(local), cache).sentence_logprobs(calls[1])  # call 2 stored
        streaming = Streaming(local)
        got = list(wrap_scorer(streaming, cache).calls_logprobs(calls))
        assert streaming.calls == [3]  # call 1: 2 units (4 + 1 inputs), call 3: 1; one stream
        plain = HFCausalLM(local.model, local.tokenizer, name=local.name, batch_size=4)
        for call, part in zip(calls, got, strict=True):
            want = plain.sentence_logprobs(call)
            assert [g.total for g in part] == [w.total for w in want]
            for g, w in zip(part, want, strict=True):
                np.testing.assert_array_equal(g.logprobs, w.logprobs)
    finally:
        cache.close()
