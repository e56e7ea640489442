"""Pseudo-log-likelihood sentence scoring (Salazar et al. 2020) on a masked LM, checked against
a plain transformers loop: mask each token in turn, sum log P(token)."""

from __future__ import annotations

import numpy as np
import pytest

from biasprobe.backends.base import SentenceScorer
from biasprobe.backends.pll import PseudoLogLikelihood
from biasprobe.errors import UsageError

SENTENCES = [
    "the nurse was tired after the long shift .",
    "he worked as a carpenter .",
    "she",
    "the nurse was tired after the long shift .",  # a repeat: scored once, same answer
    "",
]


def _reference(folder, sentences):
    """Per sentence: (token ids, log P(token | sentence with it masked)) without biasprobe."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForMaskedLM.from_pretrained(str(folder)).eval()
    out = []
    for s in sentences:
        ids = tok(s)["input_ids"]
        scored, lps = [], []
        for t in range(len(ids)):
            if ids[t] in tok.all_special_ids:
                continue
            masked = torch.tensor([ids])
            masked[0, t] = tok.mask_token_id
            with torch.no_grad():
                logits = model(input_ids=masked).logits[0, t].double()
            scored.append(ids[t])
            lps.append(float(torch.log_softmax(logits, -1)[ids[t]]))
        out.append((tuple(scored), np.array(lps)))
    return out


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_pll_equals_a_direct_transformers_loop(tiny_bert, batch_size):
    from biasprobe.backends.hf import load_hf_masked_lm

    scorer = PseudoLogLikelihood(
        load_hf_masked_lm(str(tiny_bert), device="cpu", batch_size=batch_size)
    )
    assert isinstance(scorer, SentenceScorer)
    got = scorer.sentence_logprobs(SENTENCES)
    want = _reference(tiny_bert, SENTENCES)
    assert len(got) == len(SENTENCES)
    for g, (ids, lps) in zip(got, want):
        assert g.token_ids == ids
        np.testing.assert_allclose(g.logprobs, lps, rtol=0, atol=1e-5)
        assert g.total == pytest.approx(lps.sum(), abs=1e-5)
        assert g.total == float(np.sum(g.logprobs))
    assert got[0].tokens[:3] == ("the", "nurse", "was")
    assert got[4].token_ids == () and got[4].total == 0.0
    np.testing.assert_array_equal(got[0].logprobs, got[3].logprobs)
    scorer.close()


def test_pll_on_a_byte_level_model(tiny_roberta):
    """<s> ... </s> are left out; every other token is scored."""
    from biasprobe.backends.hf import load_hf_masked_lm

    scorer = PseudoLogLikelihood(load_hf_masked_lm(str(tiny_roberta), device="cpu"))
    (got,) = scorer.sentence_logprobs(["The man worked as a carpenter."])
    ((ids, lps),) = _reference(tiny_roberta, ["The man worked as a carpenter."])
    assert got.token_ids == ids and len(ids) > 3
    np.testing.assert_allclose(got.logprobs, lps, rtol=0, atol=1e-5)


def test_pll_needs_a_tokenizer():
    from biasprobe.backends.recorded import RecordedMaskedLM

    scorer = PseudoLogLikelihood(RecordedMaskedLM("recorded:zari-bert-cda"))
    with pytest.raises(UsageError, match="has no tokenizer"):
        scorer.sentence_logprobs(["a sentence"])


# -- PLL-word-l2r (Kauf & Ivanova 2023) ----------------------------------------------------------

#: Sentences whose words split into several WordPiece pieces in the uncased vocab
#: ("glaciologist" → g ##la ##cio ##logist, "phlebotomist" → ph ##le ##bot ##omi ##st).
MULTI_PIECE = [
    "the glaciologist grumbled unbelievably .",
    "she was a phlebotomist, not a nurse!",
    "he worked as a carpenter .",
    "the glaciologist grumbled unbelievably .",  # a repeat
    "",
]


def _reference_word_l2r(folder, sentences):
    """Per sentence: (token ids, log P(token | token and the later pieces of its word masked))
    without biasprobe. A word's later pieces are found by the WordPiece convention (a piece
    that continues a word starts with ``##``), not by the tokenizer's ``word_ids()``."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForMaskedLM.from_pretrained(str(folder)).eval()
    out = []
    for s in sentences:
        ids = tok(s)["input_ids"]
        pieces = tok.convert_ids_to_tokens(ids)
        scored, lps = [], []
        for t in range(len(ids)):
            if ids[t] in tok.all_special_ids:
                continue
            masked = torch.tensor([ids])
            masked[0, t] = tok.mask_token_id
            j = t + 1
            while j < len(ids) and pieces[j].startswith("##"):
                masked[0, j] = tok.mask_token_id
                j += 1
            with torch.no_grad():
                logits = model(input_ids=masked).logits[0, t].double()
            scored.append(ids[t])
            lps.append(float(torch.log_softmax(logits, -1)[ids[t]]))
        out.append((tuple(scored), np.array(lps)))
    return out


def test_pll_word_l2r_equals_a_direct_transformers_loop(tiny_bert):
    """Per token and per sentence to 1e-5 at batch sizes 1 and 64; the tokens with later
    pieces of their word to the right differ from PLL, the others equal it."""
    from biasprobe.backends.hf import load_hf_masked_lm

    want = _reference_word_l2r(tiny_bert, MULTI_PIECE)
    pll = _reference(tiny_bert, MULTI_PIECE)
    # The test sentences do split words into pieces, and there the two metrics differ.
    assert len(want[0][0]) > 5 and len(want[1][0]) > 9
    assert np.max(np.abs(want[0][1] - pll[0][1])) > 1e-3
    results = []
    for batch_size in (1, 64):
        scorer = PseudoLogLikelihood(
            load_hf_masked_lm(str(tiny_bert), device="cpu", batch_size=batch_size),
            metric="word_l2r",
        )
        assert isinstance(scorer, SentenceScorer)
        assert scorer.scoring == "pll-word-l2r"
        assert "Kauf & Ivanova 2023" in scorer.info["sentence_scoring"]
        got = scorer.sentence_logprobs(MULTI_PIECE)
        assert len(got) == len(MULTI_PIECE)
        for g, (ids, lps) in zip(got, want):
            assert g.token_ids == ids
            np.testing.assert_allclose(g.logprobs, lps, rtol=0, atol=1e-5)
            assert g.total == pytest.approx(lps.sum(), abs=1e-5)
        assert got[0].tokens[:4] == ("the", "g", "##la", "##cio")
        assert got[4].token_ids == () and got[4].total == 0.0
        np.testing.assert_array_equal(got[0].logprobs, got[3].logprobs)
        results.append(got)
        scorer.close()
    for a, b in zip(*results):
        np.testing.assert_allclose(a.logprobs, b.logprobs, rtol=0, atol=1e-5)
    # Tokens with no later piece of their word (a one-piece word, or a word's last piece) are
    # scored as by PLL; the first three pieces of "glaciologist" are not.
    pieces = results[0][0].tokens
    for k, piece in enumerate(pieces):
        later = k + 1 < len(pieces) and pieces[k + 1].startswith("##")
        close = abs(results[0][0].logprobs[k] - pll[0][1][k]) <= 1e-5
        assert close != later, (k, piece)


def test_pll_word_l2r_of_one_piece_words_is_pll(tiny_bert):
    from biasprobe.backends.hf import load_hf_masked_lm

    masked = load_hf_masked_lm(str(tiny_bert), device="cpu")
    sentence = ["the nurse was tired after the long shift ."]
    (l2r,) = PseudoLogLikelihood(masked, metric="word_l2r").sentence_logprobs(sentence)
    (pll,) = PseudoLogLikelihood(masked).sentence_logprobs(sentence)
    assert l2r.token_ids == pll.token_ids and len(l2r.token_ids) == 9
    np.testing.assert_array_equal(l2r.logprobs, pll.logprobs)
    assert l2r.total == pll.total


def test_pll_word_l2r_on_a_byte_level_model(tiny_roberta):
    """RoBERTa's words (a leading space and what follows) split into several BPE pieces in the
    400-token vocabulary; the later pieces of a word carry no leading ``Ġ``."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from biasprobe.backends.hf import load_hf_masked_lm

    sentence = "The receptionist worked as a programmer"
    tok = AutoTokenizer.from_pretrained(str(tiny_roberta))
    model = AutoModelForMaskedLM.from_pretrained(str(tiny_roberta)).eval()
    ids = tok(sentence)["input_ids"]
    pieces = tok.convert_ids_to_tokens(ids)
    starts = [k for k in range(1, len(ids) - 1) if k == 1 or pieces[k].startswith("Ġ")]
    assert len(starts) == 6 and len(ids) - 2 > 6  # some word has several pieces
    want = []
    for t in range(1, len(ids) - 1):
        masked = torch.tensor([ids])
        j = t
        while j == t or (j < len(ids) - 1 and j not in starts):
            masked[0, j] = tok.mask_token_id
            j += 1
        with torch.no_grad():
            want.append(float(torch.log_softmax(model(input_ids=masked).logits[0, t], -1)[ids[t]]))
    scorer = PseudoLogLikelihood(
        load_hf_masked_lm(str(tiny_roberta), device="cpu"), metric="word_l2r"
    )
    (got,) = scorer.sentence_logprobs([sentence])
    assert got.token_ids == tuple(ids[1:-1])
    np.testing.assert_allclose(got.logprobs, want, rtol=0, atol=1e-5)


def test_pll_word_l2r_through_the_cache_gives_the_same_numbers(tiny_bert, tmp_path):
    """The word-l2r requests (ids with later pieces masked) are cache keys like any other:
    a second scorer over the same cache computes nothing and returns the same numbers."""
    from biasprobe.backends.cached import wrap
    from biasprobe.backends.hf import load_hf_masked_lm
    from biasprobe.cache import ResultCache

    plain = PseudoLogLikelihood(load_hf_masked_lm(str(tiny_bert), device="cpu"), metric="word_l2r")
    want = plain.sentence_logprobs(MULTI_PIECE)
    got, stats = [], []
    for _ in range(2):
        with ResultCache(tmp_path / "c") as cache:
            cached = wrap(load_hf_masked_lm(str(tiny_bert), device="cpu"), cache)
            scorer = PseudoLogLikelihood(cached, metric="word_l2r")
            got.append(scorer.sentence_logprobs(MULTI_PIECE))
            stats.append(dict(cached.stats["token"]))
            scorer.close()
    assert stats[0]["misses"] > 0 and stats[0]["hits"] == 0
    assert stats[1] == {**stats[0], "misses": 0, "hits": stats[0]["misses"]}
    for w, a, b in zip(want, *got):
        np.testing.assert_array_equal(w.logprobs, a.logprobs)
        np.testing.assert_array_equal(w.logprobs, b.logprobs)


def test_pll_word_l2r_errors(tiny_bert):
    from biasprobe.backends.hf import load_hf_masked_lm
    from biasprobe.backends.recorded import RecordedMaskedLM

    masked = load_hf_masked_lm(str(tiny_bert), device="cpu")
    with pytest.raises(UsageError, match="unknown pseudo-log-likelihood metric 'l2r'"):
        PseudoLogLikelihood(masked, metric="l2r")
    with pytest.raises(UsageError, match="has no tokenizer"):
        PseudoLogLikelihood(
            RecordedMaskedLM("recorded:zari-bert-cda"), metric="word_l2r"
        ).sentence_logprobs(["a sentence"])

    class SlowTokenizer:  # a tokenizer without word_ids(), as a Python-only one
        is_fast = False

        def __call__(self, texts):
            return fast(texts)

    fast, masked.tokenizer = masked.tokenizer, SlowTokenizer()
    with pytest.raises(UsageError, match="slow tokenizer .*word_ids"):
        PseudoLogLikelihood(masked, metric="word_l2r").sentence_logprobs(["a sentence"])
