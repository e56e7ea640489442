"""Every task kind on Ray (``biasprobe.distributed``) gives the local engine's run folder:
fill-mask, counterfactual, CrowS-Pairs (masked and causal) and HolisticBias (causal and
pseudo-log-likelihood), each run locally and on Ray with 2 actors and saved; every table and
stored array is compared byte for byte, and results.json after dropping what is about the run
rather than the numbers (its id, its time, throughput, cache counters). A Ray run fills the
cache a local run reads. One local Ray instance for the session (``ray_local`` in conftest);
skipped, with the reason, when Ray is not installed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import build_tiny_gpt2

import biasprobe
from biasprobe.distributed import RayEngine, RayOptions
from biasprobe.probes import load_probe_set

PROBES = Path(__file__).parent.parent / "probes"
HOLISTIC = {
    "axes": ["nonce"],
    "templates": ["I love {plural_noun_phrase}.", "I hate {plural_noun_phrase}."],
    "device": "cpu",
    "sample": 128,
    "seed": 3,
}
#: results.json keys about the run, not its numbers.
VOLATILE = {"run_id", "created", "throughput", "cache", "seconds", "elapsed_s", "engine"}


@pytest.fixture(autouse=True)
def one_thread():
    """The local runs with one torch thread, as each actor (half a CPU) has: on a CPU the
    number of threads can change the last bits of a matmul (seen with a BERT at batch size 2:
    2 threads locally against 1 in the actor), so bit-identity is asserted like for like."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def two_actors() -> RayEngine:
    return RayEngine(RayOptions(actors=2, num_cpus=0.5))


def _clean(value):
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def assert_same_folder(a: Path, b: Path) -> int:
    """Every file of two run folders equal (results.json without VOLATILE keys, the manifest
    without its checksum of results.json); returns how many files were compared."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        if rel.name == ".biasprobe-manifest.json":
            continue
        if rel.name == "results.json":
            ja, jb = (json.loads((x / rel).read_text()) for x in (a, b))
            assert _clean(ja) == _clean(jb)
            continue
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    return len(files_a)


def ran_on_ray(engine: RayEngine, result=None) -> None:
    assert engine.runners and all(r.calls > 0 for r in engine.runners)
    if result is not None:  # each model's block says where it ran
        for block, runner in zip(result.meta["models"], engine.runners, strict=True):
            info = block["info"]["engine"]
            assert info["kind"] == "ray" and info["calls"] == runner.calls
            assert info["actors"] == 2


def test_fill_mask_on_ray_equals_the_local_engine(ray_local, tiny_bert, tiny_bert_b, tmp_path):
    probe_set = load_probe_set(PROBES / "gender.yaml")
    kw = {"top_k": 5, "device": "cpu", "store": "full", "cache": False, "batch_size": 4}
    models = [str(tiny_bert), str(tiny_bert_b)]
    local = biasprobe.run(probe_set, models, **kw)
    engine = two_actors()
    remote = biasprobe.run(probe_set, models, distribute=engine, **kw)
    ran_on_ray(engine)
    a, b = local.save(tmp_path / "local"), remote.save(tmp_path / "ray")
    assert (a / "logprobs").is_dir()  # the stored arrays are compared too
    assert assert_same_folder(a, b) > 8


def test_counterfactual_on_ray_equals_the_local_engine(ray_local, tiny_hf_classifier, tmp_path):
    from biasprobe.tasks.counterfactual import run_downstream

    probe_set = load_probe_set(PROBES / "sentiment-gender.yaml")
    kw = {"device": "cpu", "cache": False, "batch_size": 8, "n_boot": 200}
    local = run_downstream(probe_set, [str(tiny_hf_classifier)], **kw)
    engine = two_actors()
    remote = run_downstream(probe_set, [str(tiny_hf_classifier)], distribute=engine, **kw)
    ran_on_ray(engine)
    assert_same_folder(local.save(tmp_path / "local"), remote.save(tmp_path / "ray"))


@pytest.mark.parametrize("scoring", ["nangia", "meade"])
def test_masked_crows_on_ray_equals_the_local_engine(ray_local, tiny_bert, tmp_path, scoring):
    from biasprobe.crows.run import run_crows

    kw = {"limit": 12, "device": "cpu", "cache": False, "batch_size": 16, "scoring": scoring}
    local = run_crows([str(tiny_bert)], **kw)
    engine = two_actors()
    remote = run_crows([str(tiny_bert)], distribute=engine, **kw)
    ran_on_ray(engine, remote)
    assert_same_folder(local.save(tmp_path / "local"), remote.save(tmp_path / "ray"))


@pytest.fixture(scope="module")
def gpt2_256(tmp_path_factory):
    """The tiny GPT-2 with 256 positions: CrowS sentences are up to ~160 of its tokens."""
    return build_tiny_gpt2(tmp_path_factory.mktemp("ray-gpt2"), bos=True, n_positions=256)


def test_causal_crows_on_ray_equals_the_local_engine(ray_local, gpt2_256, tmp_path):
    from biasprobe.crows.run import run_crows

    kw = {"limit": 20, "device": "cpu", "cache": False, "batch_size": 8}
    local = run_crows([str(gpt2_256)], **kw)
    engine = two_actors()
    remote = run_crows([str(gpt2_256)], distribute=engine, **kw)
    ran_on_ray(engine)
    assert engine.runners[0].calls > 1  # several batches of 8 sentences
    assert_same_folder(local.save(tmp_path / "local"), remote.save(tmp_path / "ray"))
    ref = _reference(gpt2_256, list(remote.pairs["sent_more"][:5]))
    np.testing.assert_allclose(remote.pairs["score_more"][:5], ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("model", ["tiny_gpt2", "tiny_bert"])
def test_holistic_on_ray_equals_the_local_engine(ray_local, request, model, tmp_path):
    from biasprobe.tasks.holistic import run_holistic

    folder = str(request.getfixturevalue(model))
    kw = {**HOLISTIC, "batch_size": 2, "sample": 512}  # 256 batches: 16 Ray blocks
    if model == "tiny_bert":
        kw["sample"] = 32  # pseudo-log-likelihood: one forward pass per token
    local = run_holistic([folder], cache=False, **kw)
    engine = two_actors()
    remote = run_holistic([folder], cache=False, distribute=engine, **kw)
    ran_on_ray(engine)
    assert_same_folder(local.save(tmp_path / "local"), remote.save(tmp_path / "ray"))
    if model == "tiny_gpt2":
        assert len(engine.runners[0].pids) == 2  # both actors computed batches


def test_a_ray_run_fills_the_cache_a_local_run_reads(ray_local, tiny_gpt2, tmp_path):
    """The driver writes the cache: every batch computed on Ray is served to a local run of
    the same sample, bit for bit, with nothing computed."""
    from biasprobe.tasks.holistic import run_holistic

    opts = {**HOLISTIC, "cache": tmp_path / "cache"}
    remote = run_holistic([str(tiny_gpt2)], distribute=two_actors(), **opts)
    local = run_holistic([str(tiny_gpt2)], **opts)
    info = local.meta["models"][0]["info"]["cache"]
    assert info["misses"] == 0 and info["hits"] > 0
    assert remote.meta["models"][0]["info"]["cache"]["misses"] == info["hits"]
    pd.testing.assert_frame_equal(remote.sentences, local.sentences, check_exact=True)
    s = local.sentences
    ref = _reference(tiny_gpt2, list(s["text"][:12]))
    np.testing.assert_allclose(s["log_likelihood"][:12], ref, rtol=0, atol=1e-5)


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
