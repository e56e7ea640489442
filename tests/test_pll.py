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
