"""The model protocols of biasprobe.backends.base: every member a caller uses is declared, the
base class gives the optional ones defaults, wrappers pass them on, and CrowS-Pairs scoring
uses only declared members (token_logprobs instead of a private method)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from biasprobe.backends.base import MaskedLM, MaskedLMBackend
from biasprobe.errors import UsageError

REPO = Path(__file__).resolve().parent.parent


class Minimal(MaskedLMBackend):
    """Only the abstract methods: everything else comes from the base class."""

    name = "minimal"
    mask_token = "[MASK]"
    vocab = ["a", "b"]
    info = {"source": "test"}

    def mask_logprobs(self, sentences):
        return np.log(np.full((len(sentences), 2), 0.5, dtype=np.float32))

    def target_pieces(self, sentence, word):
        return [0]

    def chain_logprobs(self, requests):
        return np.zeros(len(requests))


def test_the_base_class_declares_every_member_of_the_protocol():
    m = Minimal()
    assert isinstance(m, MaskedLM)
    members = {n for n in dir(MaskedLM) if not n.startswith("_")} | set(MaskedLM.__annotations__)
    for name in members:
        assert hasattr(m, name), name
    # the optional members answer as a backend that cannot do what they ask
    assert (m.unk_id, m.unk_token, m.max_length, m.tokenizer) == (None, None, None, None)
    assert m.special_tokens == () and m.scores_priors is False and m.reports_batches is False
    assert m.prior_request("[MASK] [MASK]", "x", 1, "w") is None
    assert m.prior_text("[MASK] [MASK]", "x", 1, "w") == ""
    assert m.missing("a [MASK]", ["w"]) is None and m.stored_masks(["a [MASK]"]) is None
    assert m.token_ids(["a"]) is None and m.provenance() == {"source": "test"}
    with pytest.raises(UsageError, match="cannot score the tokens"):
        m.token_logprobs([([1, 2, 3], 1)])
    with pytest.raises(UsageError, match="cannot score prior sentences"):
        m.prior_logprobs([("[MASK] [MASK]", "x", 1, "w")])


@pytest.fixture(scope="module")
def hf(tiny_bert):
    from biasprobe.backends.hf import load_hf_masked_lm

    backend = load_hf_masked_lm(str(tiny_bert), device="cpu", batch_size=3)
    yield backend
    backend.close()


def test_hf_and_its_wrappers_implement_the_protocol(hf, tmp_path):
    from biasprobe.backends.cached import CachedMaskedLM, wrap
    from biasprobe.backends.recorded import Recorder
    from biasprobe.cache import ResultCache

    assert isinstance(hf, MaskedLM)
    assert hf.reports_batches and hf.unk_token == "[UNK]" and hf.max_length == 128
    assert {"[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]"} <= set(hf.special_tokens)
    with ResultCache(tmp_path / "c") as cache:
        for wrapped in (CachedMaskedLM(hf, None, reason="test"), wrap(hf, cache), Recorder(hf)):
            assert isinstance(wrapped, MaskedLM)
            # declared members are the wrapped backend's, not the base class defaults
            assert wrapped.unk_id == hf.unk_id is not None
            assert wrapped.unk_token == "[UNK]" and wrapped.max_length == hf.max_length
            assert wrapped.special_tokens == hf.special_tokens
            assert wrapped.tokenizer is hf.tokenizer and wrapped.scores_priors
            assert wrapped.reports_batches
            request = ("[MASK] is a [MASK] [MASK].", "fire fighter", 0, "she")
            assert wrapped.prior_request(*request) == hf.prior_request(*request)
            assert wrapped.prior_text(*request) == hf.prior_text(*request)
            assert wrapped.missing("a [MASK].", ["he"]) is None
            ids = hf.token_ids(["the nurse was tired ."])[0]
            np.testing.assert_array_equal(
                wrapped.token_logprobs([(ids, 2)]), hf.token_logprobs([(ids, 2)])
            )


def test_token_logprobs_equals_a_direct_transformers_computation(hf, tiny_bert):
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    model = AutoModelForMaskedLM.from_pretrained(str(tiny_bert)).eval()
    sentences = ["the nurse was tired .", "a man worked as a carpenter today .", "she ran"]
    requests, expected = [], []
    for s in sentences:
        ids = tok(s)["input_ids"]
        for p in range(1, len(ids) - 1):
            masked = list(ids)
            masked[p] = tok.mask_token_id
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([masked])).logits[0, p]
            expected.append(float(torch.log_softmax(logits.double(), -1)[ids[p]]))
            requests.append((ids, p))
    got = hf.token_logprobs(requests)
    assert got.dtype == np.float64 and got.shape == (len(requests),)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    with pytest.raises(UsageError, match="outside its"):
        hf.token_logprobs([(requests[0][0], 99)])
    with pytest.raises(UsageError, match="longer than model"):
        hf.token_logprobs([([101] + [1996] * 200 + [102], 3)])


def test_crows_scoring_uses_only_declared_backend_members():
    """No private member of a backend, no getattr/hasattr probing (it read
    ``backend._logprobs_at``, ``backend.tokenizer``, ``backend.mask_id`` before)."""
    tree = ast.parse((REPO / "biasprobe" / "crows" / "scoring.py").read_text())
    declared = {n for n in dir(MaskedLM) if not n.startswith("_")} | set(MaskedLM.__annotations__)
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "backend":
                used.add(node.attr)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in ("getattr", "hasattr"), ast.unparse(node)
    assert used, "scoring.py no longer reads its backend?"
    assert used <= declared, sorted(used - declared)


def test_crows_refuses_a_backend_without_a_tokenizer():
    from biasprobe.crows import CrowsPair, score_pairs

    pair = CrowsPair("0", "He was tired.", "She was tired.", "stereo", "gender", 2)
    with pytest.raises(UsageError, match="has no tokenizer"):
        score_pairs(Minimal(), [pair], "meade")
