"""Edge cases found in review: overwriting, ties, precision, file names, untrusted recordings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import biasprobe
from biasprobe.backends import load_backend, split_revision
from biasprobe.backends.recorded import RecordedMaskedLM, write_recorded
from biasprobe.cli import app
from biasprobe.errors import ModelLoadError, RunFolderError, UsageError, VocabularyError
from biasprobe.probes import load_probe_set
from biasprobe.results import load_run
from biasprobe.scores import js_divergence, topk

REPO = Path(__file__).resolve().parent.parent
RACE = REPO / "probes" / "race.yaml"
runner = CliRunner()


def test_overwrite_only_replaces_run_folders(tiny_bert, tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    res = runner.invoke(
        app, ["run", str(RACE), "-m", str(tiny_bert), "-o", str(keep), "--overwrite", "-q"]
    )
    assert res.exit_code == 2
    assert "refusing to overwrite" in res.output and "not a run folder written by" in res.output
    assert (keep / "notes.txt").read_text() == "mine"
    run = tmp_path / "run"
    for _ in range(2):  # a run folder can be replaced by a new run
        res = runner.invoke(
            app, ["run", str(RACE), "-m", str(tiny_bert), "-o", str(run), "--overwrite", "-q"]
        )
        assert res.exit_code == 0, res.output
    assert (run / "results.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep", "run"]


def test_out_dot_is_a_clear_error(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.txt").write_text("x")
    res = runner.invoke(app, ["run", str(RACE), "-m", str(tiny_bert), "-o", ".", "--overwrite"])
    assert res.exit_code == 2 and res.output.startswith("error: refusing to overwrite .")


def test_topk_ties_broken_by_lower_id():
    lp = np.full(20, -5.0)
    lp[[3, 17]] = -1.0
    ids, vals = topk(lp, 5)
    assert ids.tolist() == [3, 17, 0, 1, 2]
    np.testing.assert_array_equal(vals, lp[ids])


def test_js_divergence_with_zero_probabilities():
    with np.errstate(divide="ignore"):
        a = np.log(np.array([0.5, 0.5, 0.0]))
        b = np.log(np.array([0.0, 0.5, 0.5]))
    assert js_divergence(a, b) == pytest.approx(0.5)


def test_half_precision_checkpoint_scored_in_float32(tiny_bert, tmp_path):
    import torch
    from transformers import AutoModelForMaskedLM

    half = tmp_path / "half"
    shutil.copytree(tiny_bert, half)
    AutoModelForMaskedLM.from_pretrained(str(tiny_bert)).to(torch.float16).save_pretrained(
        str(half)
    )
    backend = load_backend(str(half), device="cpu")
    assert backend.info["dtype"] == "float32"
    assert backend.info["head_at_mask_only"] is True


def test_colliding_model_slugs_keep_separate_files(tiny_bert, tiny_bert_b, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    shutil.copytree(tiny_bert, tmp_path / "m" / "bert")
    shutil.copytree(tiny_bert_b, tmp_path / "m" / "bert_")
    names = ["m/bert/", "m/bert_"]  # distinct models whose file-name slugs are both "m--bert"
    probe_set = load_probe_set(RACE)
    result = biasprobe.run(probe_set, names, top_k=3, store="full")
    out = result.save(tmp_path / "run")
    files = sorted(p.name for p in (out / "logprobs").iterdir())
    assert len(files) == 2
    back = load_run(out)
    for name in names:
        a, _ = back.pair_logprobs(name, probe_set.items[0].pair_id)
        a0, _ = result.pair_logprobs(name, probe_set.items[0].pair_id)
        np.testing.assert_array_equal(a, a0)


def test_revision_split_skips_existing_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt@step100").mkdir()
    assert split_revision("ckpt@step100") == ("ckpt@step100", None)
    assert split_revision("org/model@v2") == ("org/model", "v2")


def test_roberta_length_limit_counts_position_offset(tiny_roberta):
    backend = load_backend(str(tiny_roberta), device="cpu")
    assert backend.max_length == 130 - 2
    long = " ".join(["the"] * 140) + " <mask>."
    with pytest.raises(UsageError, match="tokens long"):
        backend.mask_logprobs([long])


def test_corrupt_logprobs_file_is_a_clear_error(tiny_bert, tmp_path):
    result = biasprobe.run(load_probe_set(RACE), [str(tiny_bert)], top_k=3)
    out = result.save(tmp_path / "run")
    npz = next((out / "logprobs").rglob("shard-*.npz"))
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.raises(RunFolderError, match="cannot read run folder"):
        load_run(out)
    res = runner.invoke(app, ["report", str(out), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 2 and res.output.startswith("error: cannot read run folder")


def _recording(tmp_path: Path, vocab: list[str]) -> Path:
    rng = np.random.default_rng(0)
    return write_recorded(
        tmp_path / "rec",
        model="test",
        sentences=["a [MASK] b"],
        logprobs=rng.normal(size=(1, len(vocab))),
        vocab=vocab,
        mask_token="[MASK]",
        source="test",
    )


def test_recording_never_runs_tokenizer_code(tmp_path):
    rec = _recording(tmp_path, ["[PAD]", "[UNK]", "[MASK]", "a", "b"])
    tok = rec / "tokenizer"
    tok.mkdir()
    marker = tmp_path / "ran"
    (tok / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    (tok / "tokenizer_config.json").write_text(
        json.dumps({"auto_map": {"AutoTokenizer": ["evil.EvilTokenizer", None]}})
    )
    card = json.loads((rec / "model.json").read_text())
    card["tokenizer"] = {"type": "hf", "path": "tokenizer"}
    (rec / "model.json").write_text(json.dumps(card))
    backend = RecordedMaskedLM(f"recorded:{rec}")
    with pytest.raises(ModelLoadError, match="tokenizer of recorded model"):
        backend.target_pieces("a [MASK] b", "a")
    assert not marker.exists()
    card["tokenizer"] = {"type": "hf", "path": "../../etc"}
    (rec / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="outside the recording"):
        RecordedMaskedLM(f"recorded:{rec}").target_pieces("a [MASK] b", "a")


def test_recording_without_tokenizer_refuses_ambiguous_words(tmp_path):
    rec = _recording(tmp_path, ["[MASK]", "a", "the", "the", "b"])
    backend = RecordedMaskedLM(f"recorded:{rec}")
    assert backend.target_pieces("a [MASK] b", "a") == [1]
    with pytest.raises(VocabularyError, match="matches 2 tokens"):
        backend.target_pieces("a [MASK] b", "the")
