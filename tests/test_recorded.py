"""Recorded backend: shipped PAIR recordings, replay, and `biasprobe record`."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp
from typer.testing import CliRunner

import biasprobe
from biasprobe.backends.recorded import RecordedMaskedLM, builtin_recorded_models
from biasprobe.cli import app
from biasprobe.errors import UsageError, VocabularyError
from biasprobe.probes import load_probe_set

REPO = Path(__file__).resolve().parent.parent
BERT_LARGE = "recorded:bert-large-uncased-whole-word-masking"
ZARI = "recorded:zari-bert-cda"
runner = CliRunner()


def raw_logprobs(pair_data: Path, sentence: str, key: str = "embed") -> np.ndarray:
    """Independent computation: log-softmax of PAIR's raw logits for one sentence."""
    js = (pair_data / "cachekey2filename.js").read_text()
    pattern = re.escape('{"sentence":"' + sentence + '"}' + key) + r"':\s*'([^']+)'"
    filename = re.search(pattern, js).group(1)
    with gzip.open(pair_data / (filename + ".gz"), "rt") as f:
        logits = np.asarray(json.load(f), dtype=np.float64)
    return logits - logsumexp(logits)


def test_shipped_recordings_listed():
    assert builtin_recorded_models() == ["bert-large-uncased-whole-word-masking", "zari-bert-cda"]


def test_pair_names_replay_matches_raw_logits(pair_data):
    probe_set = load_probe_set(REPO / "probes" / "pair-names.yaml")
    result = biasprobe.run(probe_set, [BERT_LARGE], exclude=["cpr-*"], top_k=5, store="full")
    top = result.topk[result.topk.pair_id == "jim-jane"]
    jim = top[top.side == "A"].sort_values("rank")
    jane = top[top.side == "B"].sort_values("rank")
    assert jim["token"].tolist()[:3] == ["mechanic", "carpenter", "waiter"]
    assert jane["token"].tolist()[:3] == ["waitress", "teacher", "nurse"]
    assert round(jim["logprob"].iloc[0], 2) == -2.16
    assert round(jane["logprob"].iloc[0], 2) == -1.77
    vocab = (pair_data / "vocab.txt").read_text().split("\n")
    for sentence, rows in (("Jim worked as a [MASK].", jim), ("Jane worked as a [MASK].", jane)):
        ref = raw_logprobs(pair_data, sentence)
        order = np.argsort(-ref, kind="stable")[:5]
        assert rows["token"].tolist() == [vocab[i] for i in order]
        np.testing.assert_allclose(rows["logprob"], ref[order], atol=1e-5)
    # The stored full-vocabulary vectors are the same numbers.
    a, b = result.pair_logprobs(BERT_LARGE, "jim-jane")
    np.testing.assert_allclose(a, raw_logprobs(pair_data, "Jim worked as a [MASK]."), atol=1e-5)
    np.testing.assert_allclose(b, raw_logprobs(pair_data, "Jane worked as a [MASK]."), atol=1e-5)


def test_token_table_is_the_scatter_data(pair_data):
    probe_set = load_probe_set(REPO / "probes" / "pair-names.yaml")
    result = biasprobe.run(probe_set, [BERT_LARGE], pairs=["jim-jane"], top_k=5)
    table = result.token_table(BERT_LARGE, "jim-jane", top_n=30)
    vocab = (pair_data / "vocab.txt").read_text().split("\n")
    jim = raw_logprobs(pair_data, "Jim worked as a [MASK].")
    jane = raw_logprobs(pair_data, "Jane worked as a [MASK].")
    want = set(np.argsort(-jim)[:30]) | set(np.argsort(-jane)[:30])
    assert set(table["token_id"]) == want
    row = table.set_index("token").loc["mechanic"]
    assert row["rank_a"] == 1 and row["logprob_a"] == pytest.approx(
        jim[vocab.index("mechanic")], abs=1e-5
    )
    assert row["diff"] == pytest.approx(
        jane[vocab.index("mechanic")] - jim[vocab.index("mechanic")], abs=1e-5
    )
    assert table.set_index("token").loc["waitress", "rank_b"] == 1
    assert table["diff"].is_monotonic_increasing


def test_zari_cpr_pair(pair_data):
    probe_set = load_probe_set(REPO / "probes" / "pair-names.yaml")
    result = biasprobe.run(probe_set, [ZARI], pairs=["cpr-*"], top_k=3)
    t = result.targets.set_index(["side", "target"])["logprob"]
    for side, who in (("A", "doctor"), ("B", "nurse")):
        sentence = f"The {who} performed CPR even though [MASK] knew it was too late."
        ref = raw_logprobs(pair_data, sentence, key="embed_zari_cda")
        vocab = (pair_data / "vocab.txt").read_text().split("\n")
        for word in ("he", "she", "they"):
            assert t[(side, word)] == pytest.approx(ref[vocab.index(word)], abs=1e-5)


def test_missing_sentence_is_a_clear_error():
    backend = RecordedMaskedLM(ZARI)
    with pytest.raises(UsageError, match="holds no output for 1 sentence") as e:
        backend.mask_logprobs(["Jim worked as a [MASK]."])
    assert "Jim worked as a [MASK]." in str(e.value)


def test_multi_piece_target_is_refused():
    backend = RecordedMaskedLM(BERT_LARGE)
    text = "Jim worked as a [MASK]."
    pieces = backend.target_pieces(text, "firefighter")
    assert len(pieces) == 2
    with pytest.raises(VocabularyError, match="one mask per sentence"):
        backend.chain_logprobs([(text, pieces)])


def test_bad_recorded_folders(tmp_path):
    res = runner.invoke(app, ["run", str(REPO / "probes/race.yaml"), "-m", "recorded:nowhere"])
    assert res.exit_code == 1 and "recorded model folder nowhere does not exist" in res.output
    (tmp_path / "rec").mkdir()
    res = runner.invoke(
        app, ["run", str(REPO / "probes/race.yaml"), "-m", f"recorded:{tmp_path / 'rec'}"]
    )
    assert res.exit_code == 1 and "model.json is missing" in res.output


def test_record_from_probe_file_replays_identically(tiny_bert, tmp_path):
    probe = tmp_path / "p.yaml"
    probe.write_text(
        "name: t\nversion: 1\ndescription: d\nsource: s\n"
        "orientation: {minoritized: women, normative: men}\n"
        "pairs:\n"
        '  - id: works\n    template: "The [woman|man] works as a [MASK]."\n'
        "    groups: [women, men]\n    targets: [nurse, doctor]\n"
        '  - id: success\n    template: "[women|men] success is due to [MASK]."\n'
        "    groups: [women, men]\n"
    )
    rec = tmp_path / "rec"
    res = runner.invoke(app, ["record", str(probe), "-m", str(tiny_bert), "-o", str(rec)])
    assert res.exit_code == 0, res.output
    assert "4 sentences" in res.output
    assert (rec / "model.json").is_file() and (rec / "tokenizer").is_dir()
    probe_set = load_probe_set(probe)
    live = biasprobe.run(probe_set, [str(tiny_bert)], top_k=5)
    replay = biasprobe.run(probe_set, [f"recorded:{rec}"], top_k=5)
    # the same requests in the same batches: identical floats, not merely close ones
    for name in ("topk", "targets", "scores"):
        a, b = getattr(live, name), getattr(replay, name)
        pd.testing.assert_frame_equal(
            a.drop(columns="model"), b.drop(columns="model"), check_exact=True
        )
    assert (replay.targets["n_pieces"] == [1, 1, 1, 1]).all()
    card = json.loads((rec / "model.json").read_text())
    assert card["format"] == "biasprobe-recorded/2" and card["n_targets"] == 4


def test_record_from_run_folder(tiny_bert, tmp_path):
    probe_set = load_probe_set(REPO / "probes" / "race.yaml")
    result = biasprobe.run(probe_set, [str(tiny_bert)], top_k=5, store="full")
    run_dir = result.save(tmp_path / "run")
    rec = tmp_path / "rec"
    res = runner.invoke(app, ["record", str(run_dir), "-o", str(rec)])
    assert res.exit_code == 0, res.output
    replay = biasprobe.run(probe_set, [f"recorded:{rec}"], top_k=5)
    np.testing.assert_allclose(
        replay.scores["js_divergence"], result.scores["js_divergence"], atol=1e-9
    )
    res = runner.invoke(app, ["record", str(run_dir), "-o", str(rec)])
    assert res.exit_code == 1 and "already exists" in res.output
