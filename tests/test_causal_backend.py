"""biasprobe.backends.causal: a causal LM as a sentence scorer, checked against a plain
transformers computation (one sentence at a time, no padding) on a tiny random GPT-2 built here,
with a byte-level BPE tokenizer trained here (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from biasprobe.backends import registry
from biasprobe.backends.base import SentenceScorer
from biasprobe.backends.causal import HFCausalLM, load_hf_causal_lm
from biasprobe.errors import ModelLoadError, UsageError

SENTENCES = [
    "The woman worked as a nurse.",
    "He is kind.",
    "The young engineer walked home from the village with a friendly teacher.",
    "a",
    "The woman worked as a nurse.",  # a repeat
    "The man worked as a doctor.",
]


@pytest.fixture(scope="module")
def gpt2_bos(tiny_gpt2: Path) -> Path:
    return tiny_gpt2


@pytest.fixture(scope="module")
def gpt2_nobos(tiny_gpt2_nobos: Path) -> Path:
    return tiny_gpt2_nobos


def reference(folder: Path, text: str, *, bos: bool) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Plain transformers, one sentence, no padding: (scored ids, their log-probs, the
    next-token log-softmax after the whole text)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = tok(text, add_special_tokens=False)["input_ids"]
    inp = ([tok.bos_token_id] if bos else []) + ids
    with torch.no_grad():
        logits = model(torch.tensor([inp])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    scored = inp[1:]
    lp = np.array([logp[t, scored[t]].item() for t in range(len(scored))])
    return scored, lp, logp[-1].numpy()


def test_the_tokenizers_built_here_do_and_do_not_have_a_bos_token(gpt2_bos, gpt2_nobos):
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(gpt2_bos).bos_token == "<|endoftext|>"
    assert AutoTokenizer.from_pretrained(gpt2_nobos).bos_token is None


def test_token_logprobs_and_totals_with_bos_match_transformers(gpt2_bos):
    lm = load_hf_causal_lm(str(gpt2_bos), device="cpu", batch_size=4)
    assert isinstance(lm, SentenceScorer) and lm.scoring == "causal"
    assert lm.bos_id is not None and "BOS" in lm.info["first_token"]
    got = lm.sentence_logprobs(SENTENCES)
    assert len(got) == len(SENTENCES)
    for text, r in zip(SENTENCES, got):
        ids, lp, _ = reference(gpt2_bos, text, bos=True)
        # every sentence token is scored, the first one after the BOS
        assert list(r.token_ids) == ids and len(ids) >= 1
        assert r.logprobs.dtype == np.float64
        np.testing.assert_allclose(r.logprobs, lp, atol=1e-5, rtol=0)
        assert abs(r.total - lp.sum()) < 1e-5
        assert r.tokens == tuple(lm.vocab[t] for t in ids)


def test_without_bos_the_first_token_is_left_out(gpt2_nobos):
    lm = load_hf_causal_lm(str(gpt2_nobos), device="cpu", batch_size=4)
    assert lm.bos_id is None and "not scored" in lm.info["first_token"]
    got = lm.sentence_logprobs(SENTENCES)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gpt2_nobos)
    for text, r in zip(SENTENCES, got):
        ids, lp, _ = reference(gpt2_nobos, text, bos=False)
        whole = tok(text, add_special_tokens=False)["input_ids"]
        assert list(r.token_ids) == whole[1:] == ids
        np.testing.assert_allclose(r.logprobs, lp, atol=1e-5, rtol=0)
        assert abs(r.total - lp.sum()) < 1e-5
    # a one-token sentence has nothing scored: log-likelihood 0 over no tokens
    one = lm.sentence_logprobs(["a"])[0]
    assert one.token_ids == () and one.total == 0.0


def test_a_batch_of_different_lengths_equals_one_sentence_at_a_time(gpt2_bos):
    batched = load_hf_causal_lm(str(gpt2_bos), device="cpu", batch_size=3)
    together = batched.sentence_logprobs(SENTENCES)
    for text, r in zip(SENTENCES, together):
        alone = batched.sentence_logprobs([text])[0]
        assert alone.token_ids == r.token_ids
        np.testing.assert_allclose(alone.logprobs, r.logprobs, atol=1e-5, rtol=0)
    # batch size 1 and a batch holding all of them give the same numbers
    ones = load_hf_causal_lm(str(gpt2_bos), device="cpu", batch_size=1)
    big = load_hf_causal_lm(str(gpt2_bos), device="cpu", batch_size=64)
    for a, b in zip(ones.sentence_logprobs(SENTENCES), big.sentence_logprobs(SENTENCES)):
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5, rtol=0)


def test_next_token_full_vocabulary_logprobs_match_transformers(gpt2_bos, gpt2_nobos):
    prefixes = ["The woman worked as a", "He is", "The young engineer walked home from the"]
    for folder, bos in ((gpt2_bos, True), (gpt2_nobos, False)):
        lm = load_hf_causal_lm(str(folder), device="cpu", batch_size=2)
        got = lm.next_token_logprobs(prefixes)
        assert got.shape == (len(prefixes), len(lm.vocab))
        for row, text in zip(got, prefixes):
            _, _, ref = reference(folder, text, bos=bos)
            np.testing.assert_allclose(row, ref, atol=1e-5, rtol=0)
            assert abs(np.logaddexp.reduce(row.astype(np.float64))) < 1e-5
    # with a BOS, the empty prefix is the distribution of the first token
    lm = load_hf_causal_lm(str(gpt2_bos), device="cpu")
    first = lm.next_token_logprobs([""])[0]
    r = lm.sentence_logprobs(["The"])[0]
    assert abs(first[r.token_ids[0]] - r.logprobs[0]) < 1e-5
    # without one there is nothing to condition on
    nobos = load_hf_causal_lm(str(gpt2_nobos), device="cpu")
    with pytest.raises(UsageError, match="no BOS token"):
        nobos.next_token_logprobs([""])


def test_too_long_a_sentence_is_refused_naming_it(gpt2_bos):
    lm = load_hf_causal_lm(str(gpt2_bos), device="cpu")
    long = " ".join(["woman"] * 100)
    with pytest.raises(UsageError, match=r"takes at most 64"):
        lm.sentence_logprobs([long])


def test_provenance_names_the_folder_files_and_first_token_rule(gpt2_bos):
    lm = load_hf_causal_lm(str(gpt2_bos), device="cpu")
    prov = lm.provenance()
    assert prov["source"] == "local" and prov["path"] == str(gpt2_bos.resolve())
    assert "model.safetensors" in prov["files_sha256"]
    assert prov["class"] == "GPT2LMHeadModel" and prov["dtype"] == "float32"
    assert prov["first_token"] == lm.info["first_token"]
    lm.close()


def test_the_registry_resolves_a_causal_lm_for_sentence_scorer(gpt2_bos):
    spec = registry.resolve(str(gpt2_bos), "sentence-scorer")
    assert (spec.kind, spec.architectures) == ("hf-causal-lm", ("GPT2LMHeadModel",))
    scorer = registry.load(spec, device="cpu", batch_size=2)
    assert isinstance(scorer, HFCausalLM) and scorer.batch_size == 2
    direct = load_hf_causal_lm(str(gpt2_bos), device="cpu")
    a = scorer.sentence_logprobs(SENTENCES[:3])
    b = direct.sentence_logprobs(SENTENCES[:3])
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.logprobs, y.logprobs, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("family", "needs"),
    [("masked-lm", "a masked language model"), ("classifier", "a sequence classifier")],
)
def test_the_registry_refuses_a_causal_lm_for_masked_lm_and_classifier(gpt2_bos, family, needs):
    with pytest.raises(ModelLoadError) as e:
        registry.resolve(str(gpt2_bos), family)
    msg = str(e.value)
    assert f"model folder {gpt2_bos} is a causal language model (GPT2LMHeadModel)" in msg
    assert f"this task needs {needs}" in msg
    # a spec resolved as a sentence scorer is checked again when loaded as another family
    spec = registry.resolve(str(gpt2_bos), "sentence-scorer")
    with pytest.raises(ModelLoadError, match="is a causal language model"):
        registry.load(spec, family, device="cpu")
