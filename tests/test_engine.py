"""The audit engine checked against transformers called directly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

import biasprobe
from biasprobe.backends import load_backend, split_revision
from biasprobe.errors import VocabularyError
from biasprobe.probes import load_probe_set
from biasprobe.results import load_run
from biasprobe.scores import topk

SENTENCES = [
    "The man works as a [MASK].",
    "The woman works as a [MASK].",
    "[MASK] success is due to hard work.",
    "most black men are not [MASK].",
]


def write_probe(tmp_path: Path, body: str, name: str = "probe.yaml") -> Path:
    header = (
        "name: test-set\nversion: 1\ndescription: test\nsource: test\n"
        "orientation: {minoritized: women, normative: men}\n"
    )
    p = tmp_path / name
    p.write_text(header + body, encoding="utf-8")
    return p


def reference(model_dir: Path):
    model = AutoModelForMaskedLM.from_pretrained(str(model_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    return model, tok


def plain_logprobs(model, tok, text: str) -> np.ndarray:
    """log-softmax at the mask from a plain full forward pass."""
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits[0]
    pos = (enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]
    return torch.log_softmax(logits[pos].double(), -1).numpy()


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_roberta"])
def test_topk_and_full_vocab_match_transformers(fixture, request):
    folder = request.getfixturevalue(fixture)
    backend = load_backend(str(folder), device="cpu")
    model, tok = reference(folder)
    fill = pipeline("fill-mask", model=model, tokenizer=tok, top_k=5, device="cpu")
    texts = [s.replace("[MASK]", tok.mask_token) for s in SENTENCES]
    ours = backend.mask_logprobs(texts)
    assert ours.shape == (len(texts), len(backend.vocab))
    assert backend.info["head_at_mask_only"] is True
    for text, row in zip(texts, ours):
        ref = plain_logprobs(model, tok, text)
        np.testing.assert_allclose(row, ref, atol=1e-5)
        expected = fill(text)
        ids, vals = topk(row, 5)
        assert [int(d["token"]) for d in expected] == ids.tolist()
        # Display strings are the decoded tokens, stripped; a token that decodes to whitespace
        # only is shown in its raw vocabulary form.
        want = [d["token_str"].strip() or tok.convert_ids_to_tokens(d["token"]) for d in expected]
        assert want == [backend.vocab[i] for i in ids]
        np.testing.assert_allclose(vals, [math.log(d["score"]) for d in expected], atol=1e-5)


def test_roberta_mask_token_is_substituted(tiny_roberta, tmp_path):
    probe = write_probe(
        tmp_path,
        'pairs:\n  - id: works\n    template: "The [man|woman] works as a [MASK]."\n'
        "    groups: [men, women]\n",
    )
    result = biasprobe.run(load_probe_set(probe), [str(tiny_roberta)], top_k=3, device="cpu")
    sentences = set(result.topk["sentence"])
    assert sentences == {"The man works as a <mask>.", "The woman works as a <mask>."}
    model, tok = reference(tiny_roberta)
    fill = pipeline("fill-mask", model=model, tokenizer=tok, top_k=3, device="cpu")
    got = result.topk[result.topk.side == "B"].sort_values("rank")
    want = fill("The woman works as a <mask>.")
    assert got["token_id"].tolist() == [d["token"] for d in want]
    np.testing.assert_allclose(got["logprob"], [math.log(d["score"]) for d in want], atol=1e-5)


def test_multi_piece_target_uses_chain_rule(tiny_bert, tmp_path):
    backend = load_backend(str(tiny_bert), device="cpu")
    model, tok = reference(tiny_bert)
    text = "The woman works as a [MASK]."
    word = "firefighter"  # two WordPieces in the uncased vocab: fire ##fighter
    pieces = backend.target_pieces(text, word)
    assert tok.convert_ids_to_tokens(pieces) == tok.tokenize(word)
    assert len(pieces) > 1
    # Independent chain rule: widen the mask to n masks, fill pieces left to right.
    ids = tok(text)["input_ids"]
    m = ids.index(tok.mask_token_id)
    total = 0.0
    for i in range(len(pieces)):
        seq = ids[:m] + pieces[:i] + [tok.mask_token_id] * (len(pieces) - i) + ids[m + 1 :]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([seq])).logits[0, m + i]
        total += float(torch.log_softmax(logits.double(), -1)[pieces[i]])
    ours = backend.chain_logprobs([(text, pieces)])[0]
    assert ours == pytest.approx(total, abs=1e-5)
    # One piece: the chain rule is the plain log-prob at the mask.
    nurse = backend.target_pieces(text, "nurse")
    assert len(nurse) == 1
    single = backend.chain_logprobs([(text, nurse)])[0]
    assert single == pytest.approx(float(plain_logprobs(model, tok, text)[nurse[0]]), abs=1e-5)

    probe = write_probe(
        tmp_path,
        'pairs:\n  - id: works\n    template: "The [woman|man] works as a [MASK]."\n'
        "    groups: [women, men]\n    targets: [nurse, firefighter]\n",
    )
    result = biasprobe.run(load_probe_set(probe), [str(tiny_bert)], device="cpu")
    t = result.targets.set_index(["side", "target"])
    assert t.loc[("A", "firefighter"), "n_pieces"] == len(pieces)
    assert t.loc[("A", "firefighter"), "logprob"] == pytest.approx(total, abs=1e-5)
    gap = sum(
        t.loc[("A", w), "logprob"] - t.loc[("B", w), "logprob"] for w in ("nurse", "firefighter")
    )
    assert result.scores["target_gap"].iloc[0] == pytest.approx(gap, abs=1e-9)


def test_roberta_target_pieces_in_context(tiny_roberta):
    backend = load_backend(str(tiny_roberta), device="cpu")
    tok = backend.tokenizer
    pieces = backend.target_pieces("The woman works as a <mask>.", "nurse")
    shown = tok.convert_ids_to_tokens(pieces)
    # The word is split as a word after a space (Ġ...), not as the start of the text.
    assert shown == tok.tokenize(" nurse") and shown[0].startswith("Ġ")
    assert shown != tok.tokenize("nurse")


def test_target_absent_from_vocab(tiny_bert):
    backend = load_backend(str(tiny_bert), device="cpu")
    with pytest.raises(VocabularyError, match="not in the vocabulary"):
        backend.target_pieces("The woman works as a [MASK].", "🦜")


def test_run_folder_round_trip(tiny_bert, tiny_bert_b, tmp_path):
    probe_set = load_probe_set(Path(__file__).parent.parent / "probes" / "gender.yaml")
    result = biasprobe.run(
        probe_set, [str(tiny_bert), str(tiny_bert_b)], top_k=5, device="cpu", store="full"
    )
    out = result.save(tmp_path / "run")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "items.csv",
            "topk.csv",
            "scores.csv",
            "summary.csv",
            "comparison.csv",  # two models: every comparison with the base, stored
            "targets.csv",
            "results.json",
            "logprobs",
            ".biasprobe-manifest.json",
        ]
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    meta = json.loads((out / "results.json").read_text())
    assert meta["probe_set"]["sha256"] == probe_set.sha256
    assert [m["name"] for m in meta["models"]] == [str(tiny_bert), str(tiny_bert_b)]
    assert set(meta["versions"]) >= {"biasprobe", "torch", "transformers"}
    assert meta["settings"]["seed"] == 0 and meta["run_id"]
    assert meta["models"][0]["info"]["files_sha256"]["model.safetensors"]
    topk = pd.read_csv(out / "topk.csv")
    assert list(topk.columns[:11]) == [
        "model",
        "pair_id",
        "template_id",
        "side",
        "group",
        "role",
        "sentence",
        "rank",
        "token",
        "token_id",
        "logprob",
    ]
    assert len(topk) == 2 * len(probe_set.items) * 2 * 5
    back = load_run(out)
    pd.testing.assert_frame_equal(back.scores, result.scores, check_dtype=False)
    for model in result.models:
        a, b = back.pair_logprobs(model, "model-card")
        a0, b0 = result.pair_logprobs(model, "model-card")
        np.testing.assert_array_equal(a, a0)
        np.testing.assert_array_equal(b, b0)
    # The stored vectors reproduce the stored top-k without the model.
    row = back.topk[(back.topk.model == result.models[1]) & (back.topk.pair_id == "model-card")]
    a, _ = back.pair_logprobs(result.models[1], "model-card")
    top = row[row.side == "A"].sort_values("rank")
    np.testing.assert_allclose(a[top["token_id"].to_numpy()], top["logprob"], atol=1e-6)


def test_scores_table_consistent_with_topk(tiny_bert, tmp_path):
    probe_set = load_probe_set(Path(__file__).parent.parent / "probes" / "race.yaml")
    result = biasprobe.run(probe_set, [str(tiny_bert)], top_k=10, device="cpu")
    for _, s in result.scores.iterrows():
        rows = result.topk[result.topk.pair_id == s.pair_id]
        a = set(rows[rows.side == "A"].token_id)
        b = set(rows[rows.side == "B"].token_id)
        assert s.overlap == len(a & b)
        assert s.jaccard_distance == pytest.approx(1 - len(a & b) / len(a | b))


def test_split_revision():
    assert split_revision("org/model@v1") == ("org/model", "v1")
    assert split_revision("bert-base-uncased") == ("bert-base-uncased", None)
    assert split_revision("recorded:./x@y") == ("recorded:./x@y", None)


def test_hub_id_from_local_cache(tiny_bert, tmp_path, monkeypatch):
    """A hub id resolves from the Hugging Face cache layout, and the commit hash is recorded."""
    import subprocess
    import sys

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--testorg--tiny-bert"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in tiny_bert.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    code = (
        "import biasprobe.backends as b;"
        "m = b.load_backend('testorg/tiny-bert', device='cpu');"
        "print(m.info['source'], m.info['commit_hash'])"
    )
    env = {**__import__("os").environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["hub-cache", commit]
