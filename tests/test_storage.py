"""Bounded storage: scores identical whichever store is chosen (and equal to an independent
computation from transformers), the top-N store's tokens equal the full store's, what a top-N
run cannot give says so, bytes per pair, old run folders, streaming memory helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import biasprobe
from biasprobe import runner as runner_mod
from biasprobe.cli import app
from biasprobe.errors import NotStoredError, UsageError
from biasprobe.probes import load_probe_set
from biasprobe.results import (
    PairStore,
    RunResult,
    VocabLogProbs,
    load_run,
    ranks_of,
)
from biasprobe.scores import full_ranks

cli = CliRunner()
TABLES = ("scores", "topk", "targets", "summary", "items")

PROBE = """name: store-test
version: 1
description: test
source: test
orientation: {minoritized: women, normative: men}
lexicons:
  name:
    women: [Mary, Patricia, Jennifer, Linda]
    men: [James, Robert, John, Michael]
  occupation: [nurse, teacher, lawyer, baker, pilot]
pairs:
  - id: worked
    template: "{name} worked as a {occupation} and was very [MASK]."
    groups: [women, men]
    targets: [happy, firefighter]
  - id: said
    template: "The {occupation} said that {name} was [MASK] today."
    groups: [women, men]
    targets: [late]
  - id: is-a
    template: "[MASK] is a {occupation}."
    groups: [men, women]
    targets: [he, she]
    attribute: occupation
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe") / "store.yaml"
    path.write_text(PROBE, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(probe, tiny_bert, tiny_bert_b, tmp_path_factory):
    """The same two-model run with the default store (N = 50 and N = 1000) and --store full,
    through the command line, read back from their folders."""
    out = {}
    for name, opts in {
        "top50": ["--store-top-n", "50"],
        "top1000": [],
        "full": ["--store", "full"],
    }.items():
        folder = tmp_path_factory.mktemp("runs") / name
        args = ["run", str(probe), "-m", str(tiny_bert), "-m", str(tiny_bert_b), "-o", str(folder)]
        res = cli.invoke(app, [*args, "--no-cache", "--quiet", "--bootstrap", "200", *opts])
        assert res.exit_code == 0, res.output
        out[name] = (folder, load_run(folder))
    return out


def test_every_table_identical_whatever_the_store(runs):
    full = runs["full"][0]
    for name in ("top50", "top1000"):
        folder = runs[name][0]
        for table in TABLES:
            assert (folder / f"{table}.csv").read_bytes() == (full / f"{table}.csv").read_bytes()
    scores = runs["full"][1].scores
    assert len(scores) == 2 * (4 * 5 * 2 + 5)  # 2 models × (name pairs × occupations × 2 + 5)
    assert scores["js_divergence"].notna().sum() == 2 * 40  # NaN on attribute pairs


def _reference(model_dir, sentences):
    """Full-vocabulary log-softmax at the mask, one sentence at a time, with transformers."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForMaskedLM.from_pretrained(str(model_dir)).eval()
    out = []
    with torch.no_grad():
        for s in sentences:
            enc = tok(s, return_tensors="pt")
            logits = model(**enc).logits[0]
            pos = int((enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0])
            out.append(torch.log_softmax(logits[pos].double(), dim=-1).numpy())
    return out, tok


def test_scores_equal_an_independent_computation(runs, tiny_bert):
    """Top-k lists, Jaccard distance, Jensen–Shannon divergence (scipy) and one-piece target
    gaps recomputed from transformers' own log-softmax for a few pairs of the top-50 run."""
    from scipy.spatial.distance import jensenshannon

    result = runs["top50"][1]
    model = str(tiny_bert)
    scores = result.scores[result.scores["model"] == model].set_index("pair_id")
    topk = result.topk[result.topk["model"] == model]
    for pid in ("worked/mary-james/nurse", "said/pilot/linda-michael"):
        sa, sb = (result.sentence(model, pid, side) for side in "AB")
        (la, lb), tok = _reference(tiny_bert, [sa, sb])
        k = int(scores.loc[pid, "k"])
        ta, tb = (np.argsort(-v, kind="stable")[:k] for v in (la, lb))
        for side, ids in (("A", ta), ("B", tb)):
            stored = topk[(topk["pair_id"] == pid) & (topk["side"] == side)]
            assert stored["token_id"].tolist() == ids.tolist()
        jac = 1 - len(set(ta) & set(tb)) / len(set(ta) | set(tb))
        assert scores.loc[pid, "jaccard_distance"] == pytest.approx(jac)
        js = jensenshannon(np.exp(la), np.exp(lb), base=2) ** 2
        assert scores.loc[pid, "js_divergence"] == pytest.approx(js, rel=1e-4, abs=1e-9)
        if pid.startswith("said"):
            late = tok.convert_tokens_to_ids("late")
            # women = side A is minoritized: gap = log p(late | A) − log p(late | B)
            assert scores.loc[pid, "target_gap"] == pytest.approx(la[late] - lb[late], abs=1e-5)
        # the stored log-probs are the model's, at float32 precision
        stored = result.pair_tokens(model, pid)
        assert np.allclose(stored["logprob_a"], la[stored["token_id"]], atol=1e-5)
        assert np.allclose(stored["logprob_b"], lb[stored["token_id"]], atol=1e-5)


def test_top_n_tokens_equal_the_full_store(runs):
    full = runs["full"][1]
    for name, n in (("top50", 50), ("top1000", 1000)):
        result = runs[name][1]
        base, other = result.models
        pairs = result.scores["pair_id"].unique()
        for model in result.models:
            assert result.stored_top_n(model) == (max(n, 300) if model == base else n)
            assert result.vocab(model) == full.vocab(model)
            for pid in pairs[:: 7 if n == 1000 else 1]:
                mine = result.pair_tokens(model, pid)
                every = full.pair_tokens(model, pid)
                assert mine["token_id"].is_monotonic_increasing
                ref = every[every["token_id"].isin(mine["token_id"])].reset_index(drop=True)
                pd.testing.assert_frame_equal(mine, ref, check_exact=True)
                depth = result.stored_top_n(model)
                own = (every["rank_a"] <= depth) | (every["rank_b"] <= depth)
                assert set(every["token_id"][own]) <= set(mine["token_id"])
                if model == other:  # the base's top 300 of each side, for Spearman
                    b = full.pair_tokens(base, pid)
                    top = b["token_id"][(b["rank_a"] <= 300) | (b["rank_b"] <= 300)]
                    assert set(top) <= set(mine["token_id"])
                for top_n in (1, 10, 50, n):
                    pd.testing.assert_frame_equal(
                        result.token_table(model, pid, top_n),
                        full.token_table(model, pid, top_n),
                        check_exact=True,
                    )


def test_what_a_top_n_store_cannot_give_says_so(runs):
    result = runs["top50"][1]
    base, other = result.models
    pid = result.scores["pair_id"].iloc[0]
    with pytest.raises(NotStoredError, match=r"top 50 tokens per sentence.*--store full"):
        result.pair_logprobs(other, pid)
    with pytest.raises(NotStoredError, match=r"the whole vocabulary asked.*top 50"):
        result.token_table(other, pid, None)
    with pytest.raises(NotStoredError, match=r"the top 51 tokens asked.*top 50.*--store-top-n"):
        result.token_table(other, pid, 51)
    assert result.token_table(base, pid, 300).shape[0] >= 300  # the base keeps its top 300
    full = runs["full"][1]
    assert full.stored_top_n(base) is None
    a, b = full.pair_logprobs(base, pid)
    assert a.shape == b.shape == (len(full.vocab(base)),)
    meta = result.meta["settings"]
    assert meta["store"] == "topn" and meta["store_top_n"] == 50
    assert full.meta["settings"]["store"] == "full" and "store_top_n" not in full.meta["settings"]


def test_bytes_per_pair_under_25_kb_by_default(runs):
    folder, result = runs["top1000"]
    stored = sum(f.stat().st_size for f in (folder / "logprobs").rglob("*.npz"))
    per_pair_model = stored / len(result.scores)
    assert per_pair_model < 25_000, per_pair_model
    full_folder, full = runs["full"]
    full_bytes = sum(f.stat().st_size for f in (full_folder / "logprobs").rglob("*.npz"))
    assert full_bytes > 4 * stored  # what the default saves


def test_load_run_reads_shards_lazily(runs):
    result = load_run(runs["top50"][0])
    store = result.logprobs[result.models[0]]
    assert isinstance(store, PairStore) and not store._loaded
    for pid in result.scores["pair_id"].unique():
        result.pair_tokens(result.models[0], pid)
        assert len(store._loaded) <= 2


def test_shards_and_resaving(runs, probe, tiny_bert, tmp_path, monkeypatch):
    """Several shards per model (small shards forced), saved again from memory."""
    monkeypatch.setattr(runner_mod, "PairStoreWriter", _small_shards)
    ps = load_probe_set(probe)
    kw = {"cache": False, "n_bootstrap": 200, "store_top_n": 50}
    result = biasprobe.run(ps, [str(tiny_bert)], **kw)
    store = result.logprobs[str(tiny_bert)]
    assert len(store.shards) == -(-45 // 7)
    saved = result.save(tmp_path / "again")
    back = load_run(saved)
    ref = runs["top50"][1]
    for pid in ("worked/mary-james/nurse", "is-a/lawyer"):
        pd.testing.assert_frame_equal(
            back.pair_tokens(str(tiny_bert), pid), result.pair_tokens(str(tiny_bert), pid)
        )
        # a one-model run keeps only its own top 50 (no base top 300): a subset of the above
        mine = back.pair_tokens(str(tiny_bert), pid)
        two = ref.pair_tokens(str(tiny_bert), pid)
        assert set(mine["token_id"]) <= set(two["token_id"])


def _small_shards(*args, **kw):
    from biasprobe.results import PairStoreWriter

    return PairStoreWriter(*args, **{**kw, "shard_pairs": 7})


def test_vectors_shared_by_distant_pairs_wait_on_disk(probe, tiny_bert, monkeypatch):
    """Sentences that later pairs share are held; beyond the limit they go to a temporary
    file and come back bit for bit (the attribute pairs share one sentence per pair)."""
    ps = load_probe_set(probe)
    kw = {"cache": False, "n_bootstrap": 200, "store": "full"}
    # chunks of 5 sentences in both runs (the same forward batches, so the same bits)
    monkeypatch.setattr(runner_mod, "SENTENCE_CHUNK", 5)
    ref = biasprobe.run(ps, [str(tiny_bert)], **kw)
    monkeypatch.setattr(runner_mod, "HELD_LIMIT", 0)
    small = biasprobe.run(ps, [str(tiny_bert)], **kw)
    for table in ("scores", "topk", "targets"):
        pd.testing.assert_frame_equal(getattr(small, table), getattr(ref, table), check_exact=True)


def test_ranks_of_follows_full_ranks():
    rng = np.random.default_rng(0)
    v = rng.standard_normal(500).astype(np.float32)
    v[[3, 70, 200]] = v[10]  # ties: lower id first
    v[[5, 400]] = np.nan  # NaN last
    v[[6, 7]] = -np.inf
    ids = np.array([0, 3, 5, 6, 7, 10, 70, 200, 400, 499])
    assert ranks_of(v, ids).tolist() == full_ranks(v)[ids].tolist()
    assert ranks_of(v, np.arange(500)).tolist() == full_ranks(v).tolist()


def test_an_old_run_folder_loads_as_full_vectors(runs, tmp_path):
    """A folder written before stores existed (one logprobs/<model>.npz of every sentence)."""
    full = runs["full"][1]
    model = full.models[0]
    table = full.logprobs[model].to_table()
    old = RunResult(
        meta={k: v for k, v in full.meta.items() if k != "files"},
        items=full.items,
        topk=full.topk,
        scores=full.scores,
        summary=full.summary,
        targets=full.targets,
        logprobs={model: table},
    )
    saved = old.save(tmp_path / "old")
    assert isinstance(load_run(saved).logprobs[model], VocabLogProbs)
    entry = load_run(saved).meta["files"]["logprobs"][model]
    assert isinstance(entry, str) and entry.endswith(".npz")
    back = load_run(saved)
    assert back.stored_top_n(model) is None
    pid = "worked/mary-james/nurse"
    pd.testing.assert_frame_equal(back.pair_tokens(model, pid), full.pair_tokens(model, pid))
    assert all(
        np.array_equal(x, y)
        for x, y in zip(back.pair_logprobs(model, pid), full.pair_logprobs(model, pid))
    )


def test_record_from_a_top_n_folder_is_refused(runs, tmp_path, tiny_bert):
    folder = runs["top50"][0]
    out = tmp_path / "rec"
    res = cli.invoke(app, ["record", str(folder), "-m", str(tiny_bert), "-o", str(out)])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "stored the top 300 tokens per sentence" in text
    assert "record from the probe file instead" in text and "--store full" in text
    assert not out.exists()
    res = cli.invoke(app, ["record", str(runs["full"][0]), "-m", str(tiny_bert), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "model.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "some"], "--store must be one of topn, full, got 'some'"),
        (["--store-top-n", "0"], "--store-top-n must be an integer of at least 1, got 0"),
    ],
)
def test_bad_store_options(probe, tiny_bert, tmp_path, args, message):
    out = tmp_path / "run"
    res = cli.invoke(app, ["run", str(probe), "-m", str(tiny_bert), "-o", str(out), *args])
    assert res.exit_code == 2 and message in " ".join(res.output.split())
    assert not out.exists()
    with pytest.raises(UsageError, match="--store must be one of"):
        biasprobe.run(load_probe_set(probe), [str(tiny_bert)], store="parquet")


def test_resampling_in_blocks_gives_the_numbers_of_one_draw(monkeypatch):
    """Bootstrap resamples drawn a block at a time (bounded memory for large templates) give
    exactly the numbers of drawing every resample at once, as earlier versions did."""
    from biasprobe import scores, stats

    rng = np.random.default_rng(1)
    v = rng.standard_normal(1500)
    clusters = np.repeat(["a", "b", "c"], 500)

    def one_draw(values, seed, n=2000):
        r = np.random.default_rng(seed)
        means = values[r.integers(0, values.size, size=(n, values.size))].mean(axis=1)
        alpha = (1.0 - 0.95) / 2.0
        return float(values.mean()), *(float(q) for q in np.quantile(means, [alpha, 1 - alpha]))

    monkeypatch.setattr(stats, "RESAMPLE_BLOCK", 10**9)
    assert scores.bootstrap_ci(v, seed=3) == one_draw(v, 3)
    ref = (scores.cluster_bootstrap_ci(v, clusters, seed=3), scores.paired_delta(v, -v, clusters))
    for block in (1, 777, 20_000):
        monkeypatch.setattr(stats, "RESAMPLE_BLOCK", block)
        assert scores.bootstrap_ci(v, seed=3) == one_draw(v, 3)
        assert scores.cluster_bootstrap_ci(v, clusters, seed=3) == ref[0]
        got = scores.paired_delta(v, -v, clusters)
        assert got.keys() == ref[1].keys()
        assert all(got[k] == ref[1][k] or np.isnan(got[k]) and np.isnan(ref[1][k]) for k in got)


def test_temporary_shard_folders_of_killed_runs_are_removed(tmp_path, monkeypatch):
    """A run keeps its shards in a temporary folder until it is saved; a process killed with
    SIGKILL leaves it behind, and the next run removes it (never a folder it cannot tell is
    biasprobe's, nor one of a live process)."""
    import json
    import os
    import socket
    import subprocess
    import sys
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    host = socket.gethostname()
    folders = {}
    for name, pid in (("dead", int(dead)), ("alive", os.getpid())):
        folders[name] = tmp_path / f"{runner_mod.STORE_TMP_PREFIX}{pid}-x"
        folders[name].mkdir()
        (folders[name] / "owner.json").write_text(json.dumps({"pid": pid, "host": host}))
    folders["foreign"] = tmp_path / f"{runner_mod.STORE_TMP_PREFIX}mine"
    folders["foreign"].mkdir()
    new = runner_mod._store_tempdir()
    assert new.parent == tmp_path and (new / "owner.json").is_file()
    assert not folders["dead"].exists()
    assert folders["alive"].is_dir() and folders["foreign"].is_dir()
