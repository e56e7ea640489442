"""Sentence scorers on Ray (``biasprobe.distributed``): a HolisticBias sample and a causal
CrowS-Pairs run give the local engine's numbers exactly, the result cache written by a Ray run
serves a local run, and the Ray numbers match a direct ``transformers`` computation. One local
Ray instance for the test session (one actor with half a CPU, a small object store); skipped
when Ray is not installed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import build_tiny_gpt2

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'ray[data]'")

from biasprobe.distributed import RayEngine, RayOptions, RayScorer  # noqa: E402

AXIS = "nonce"
TEMPLATES = ["I love {plural_noun_phrase}.", "I hate {plural_noun_phrase}."]
HOLISTIC = {"axes": [AXIS], "templates": TEMPLATES, "device": "cpu", "sample": 128, "seed": 3}


@pytest.fixture(scope="session")
def ray_instance():
    """One local Ray instance for every Ray test (starting one takes seconds)."""
    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            object_store_memory=80 * 1024**2,
            include_dashboard=False,
            log_to_driver=False,
        )
    yield ray
    ray.shutdown()


def _engine() -> RayEngine:
    return RayEngine(RayOptions(actors=1, num_cpus=0.5))


@pytest.fixture(scope="module")
def gpt2_256(tmp_path_factory):
    """The tiny GPT-2 with 256 positions: CrowS sentences are up to ~160 of its tokens."""
    return build_tiny_gpt2(tmp_path_factory.mktemp("ray-gpt2"), bos=True, n_positions=256)


def _reference(folder, sentences):
    """log P(sentence) one sentence at a time, straight from transformers (BOS prepended)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    out = []
    for s in sentences:
        ids = [tok.bos_token_id, *tok(s, add_special_tokens=False)["input_ids"]]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
        out.append(sum(float(logp[t - 1, ids[t]]) for t in range(1, len(ids))))
    return np.array(out)


def test_holistic_on_ray_equals_the_local_engine(ray_instance, tiny_gpt2):
    from biasprobe.tasks.holistic import run_holistic

    local = run_holistic([str(tiny_gpt2)], cache=False, **HOLISTIC)
    engine = _engine()
    remote = run_holistic([str(tiny_gpt2)], cache=False, distribute=engine, **HOLISTIC)
    (scorer,) = engine.scorers
    assert isinstance(scorer, RayScorer) and scorer.ray_batches > 0
    pd.testing.assert_frame_equal(remote.sentences, local.sentences, check_exact=True)
    pd.testing.assert_frame_equal(remote.summary, local.summary, check_exact=True)
    pd.testing.assert_frame_equal(remote.descriptors, local.descriptors, check_exact=True)
    for a, b in zip(remote.meta["models"], local.meta["models"], strict=True):
        a, b = dict(a), dict(b)
        assert a.pop("throughput")["seconds"] > 0 and b.pop("throughput")["seconds"] > 0
        assert a == b  # the same provenance: the same cache identity


def test_a_ray_run_fills_the_cache_a_local_run_reads(ray_instance, tiny_gpt2, tmp_path):
    """The driver writes the cache: every batch computed on Ray is served to a local run of
    the same sample, bit for bit, with nothing computed."""
    from biasprobe.tasks.holistic import run_holistic

    opts = {**HOLISTIC, "cache": tmp_path / "cache"}
    remote = run_holistic([str(tiny_gpt2)], distribute=_engine(), **opts)
    local = run_holistic([str(tiny_gpt2)], **opts)
    info = local.meta["models"][0]["info"]["cache"]
    assert info["misses"] == 0 and info["hits"] > 0
    assert remote.meta["models"][0]["info"]["cache"]["misses"] == info["hits"]
    pd.testing.assert_frame_equal(remote.sentences, local.sentences, check_exact=True)
    s = local.sentences
    ref = _reference(tiny_gpt2, list(s["text"][:12]))
    np.testing.assert_allclose(s["log_likelihood"][:12], ref, rtol=0, atol=1e-5)


def test_causal_crows_on_ray_equals_the_local_engine(ray_instance, gpt2_256):
    from biasprobe.crows.run import run_crows

    kw = {"limit": 20, "device": "cpu", "cache": False, "batch_size": 8}
    local = run_crows([str(gpt2_256)], **kw)
    engine = _engine()
    remote = run_crows([str(gpt2_256)], distribute=engine, **kw)
    assert engine.scorers[0].ray_batches > 1  # several batches of 8 sentences
    pd.testing.assert_frame_equal(remote.pairs, local.pairs, check_exact=True)
    pd.testing.assert_frame_equal(remote.summary, local.summary, check_exact=True)
    ref = _reference(gpt2_256, list(remote.pairs["sent_more"][:5]))
    np.testing.assert_allclose(remote.pairs["score_more"][:5], ref, rtol=0, atol=1e-5)
