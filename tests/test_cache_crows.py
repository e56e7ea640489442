"""CrowS-Pairs and pseudo-log-likelihood through the result cache: the token log-probs are kept
batch by batch, so a second run makes no model call and a killed run computes only the batches
it had not committed — with the numbers of a run without the cache, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biasprobe.backends.cached import wrap
from biasprobe.cache import ResultCache
from biasprobe.crows import load_pairs, score_pairs
from biasprobe.crows.scoring import pairs_stored


class Counting:
    """Counts the masked LM's token_logprobs calls (one per batch through the cache); raises
    after ``fail_after`` calls, like a run killed mid-way."""

    def __init__(self, backend, fail_after: int | None = None) -> None:
        self.calls = 0
        self.requests = 0
        self.fail_after = fail_after
        self.real = backend.token_logprobs

    def __call__(self, requests):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        self.requests += len(requests)
        return self.real(requests)


@pytest.fixture()
def hf(tiny_bert):
    from biasprobe.backends.hf import load_hf_masked_lm

    backend = load_hf_masked_lm(str(tiny_bert), device="cpu", batch_size=16)
    yield backend
    backend.close()


def _same(rows_a, rows_b):
    assert len(rows_a) == len(rows_b)
    for a, b in zip(rows_a, rows_b):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], float) and math.isnan(a[k]):
                assert math.isnan(b[k]), k
            else:
                assert a[k] == b[k], (k, a[k], b[k])  # exact, not approximate


@pytest.mark.parametrize("scoring", ["meade", "nangia"])
def test_second_run_makes_no_model_call(hf, tmp_path, monkeypatch, scoring):
    pairs = load_pairs(limit=25)
    plain = score_pairs(hf, pairs, scoring)
    with ResultCache(tmp_path / "cache") as cache:
        first = wrap(hf, cache)
        assert pairs_stored(first, pairs, scoring) == (0, 25)
        _same(score_pairs(first, pairs, scoring), plain)
        assert first.hits == 0 and first.computed > 0
        assert first.computed == first.stats["token"]["misses"]
        assert pairs_stored(first, pairs, scoring) == (25, 0)
        counter = Counting(hf)
        monkeypatch.setattr(hf, "token_logprobs", counter)
        second = wrap(hf, cache)
        _same(score_pairs(second, pairs, scoring), plain)
        assert counter.calls == 0
        assert (second.hits, second.computed) == (first.computed, 0)
        assert second.identity == first.identity == first.store.identity
        assert wrap(hf, "--no-cache").identity is None
        assert second.info["cache"]["by_kind"]["token"] == {"hits": first.computed, "misses": 0}


def test_a_killed_crows_run_computes_only_the_remainder(hf, tmp_path, monkeypatch):
    pairs = load_pairs(limit=40)
    plain = score_pairs(hf, pairs, "nangia")
    with ResultCache(tmp_path / "cache") as cache:
        monkeypatch.setattr(hf, "token_logprobs", Counting(hf, fail_after=5))
        killed = wrap(hf, cache)
        with pytest.raises(KeyboardInterrupt):
            score_pairs(killed, pairs, "nangia")
        kept = killed.computed
        assert kept == 5 * 16  # five whole batches committed
        monkeypatch.undo()
        done, todo = pairs_stored(wrap(hf, cache), pairs, "nangia")
        assert 0 < done < 40 and done + todo == 40
        counter = Counting(hf)
        monkeypatch.setattr(hf, "token_logprobs", counter)
        resumed = wrap(hf, cache)
        _same(score_pairs(resumed, pairs, "nangia"), plain)
        assert resumed.hits == kept
        assert counter.requests == resumed.computed  # only the remainder
        total = kept + resumed.computed
        # the remainder plus what was kept is every distinct token request of the run
        from biasprobe.crows.scoring import plan_pair, token_requests

        plans = [plan_pair(hf, p, "nangia") for p in pairs]
        assert total == len(token_requests(hf, pairs, plans).requests)


def test_pseudo_log_likelihood_through_the_cache(hf, tmp_path, monkeypatch):
    from biasprobe.backends.pll import PseudoLogLikelihood

    sentences = [p.sent_more for p in load_pairs(limit=10)]
    plain = PseudoLogLikelihood(hf).sentence_logprobs(sentences)
    with ResultCache(tmp_path / "cache") as cache:
        PseudoLogLikelihood(wrap(hf, cache)).sentence_logprobs(sentences)
        counter = Counting(hf)
        monkeypatch.setattr(hf, "token_logprobs", counter)
        again = PseudoLogLikelihood(wrap(hf, cache)).sentence_logprobs(sentences)
    assert counter.calls == 0
    for a, b in zip(plain, again):
        assert a.total == b.total and a.token_ids == b.token_ids
        np.testing.assert_array_equal(a.logprobs, b.logprobs)
