"""The result cache: identical numbers with and without it, resume after SIGKILL, a changed
checkpoint never hits an old entry, two runs sharing one cache, ``biasprobe cache info|clear``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import biasprobe
from biasprobe.backends import load_backend
from biasprobe.backends.cached import OBJECT_REASON, RECORDED_REASON
from biasprobe.cache import (
    DB_NAME,
    ENV_VAR,
    CacheError,
    ResultCache,
    default_cache_dir,
    model_identity,
)
from biasprobe.cli import app
from biasprobe.probes import MASK, load_probe_set
from biasprobe.runner import record

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()

HEADER = (
    "name: cache-test\nversion: 1\ndescription: test\nsource: test\n"
    "orientation: {minoritized: women, normative: men}\n"
)
#: Every kind of request: plain masks, a multi-piece target (chain rule), an attribute (prior).
SMALL = (
    HEADER
    + """lexicons:
  name:
    women: [Mary, Patricia, Jennifer]
    men: [James, Robert, John]
  occupation: [nurse, teacher, lawyer, baker, pilot]
pairs:
  - id: worked
    template: "{name} worked as a {occupation} and was very [MASK]."
    groups: [women, men]
    targets: [happy, firefighter]
  - id: is-a
    template: "[MASK] is a {occupation}."
    groups: [men, women]
    targets: [he, she]
    attribute: occupation
"""
)

WOMEN = "Mary Patricia Jennifer Linda"
MEN = "James Robert John Michael"
OCCUPATIONS = "nurse teacher lawyer baker pilot farmer"


def large_probe(tmp_path: Path) -> Path:
    """4 name pairs × 6 occupations × 2 templates = 48 pairs, 96 distinct sentences."""
    body = HEADER + (
        "lexicons:\n  name:\n"
        f"    women: [{', '.join(WOMEN.split())}]\n"
        f"    men: [{', '.join(MEN.split())}]\n"
        f"  occupation: [{', '.join(OCCUPATIONS.split())}]\n"
        "pairs:\n"
        '  - id: worked\n    template: "{name} worked as a {occupation} and was [MASK]."\n'
        "    groups: [women, men]\n"
        '  - id: said\n    template: "The {occupation} said that {name} was [MASK] today."\n'
        "    groups: [women, men]\n"
    )
    p = tmp_path / "large.yaml"
    p.write_text(body, encoding="utf-8")
    return p


def small_probe(tmp_path: Path) -> Path:
    p = tmp_path / "small.yaml"
    p.write_text(SMALL, encoding="utf-8")
    return p


def distinct_sentences(probe: Path) -> list[str]:
    items = load_probe_set(probe).items
    return list(dict.fromkeys(s for it in items for s in it.sentences))


def cache_stats(run_folder: Path, i: int = 0) -> dict:
    meta = json.loads((run_folder / "results.json").read_text(encoding="utf-8"))
    return meta["models"][i]["info"]["cache"]


def assert_same_run(a: Path, b: Path) -> None:
    """Two run folders hold the same tables and bit-identical log-probs."""
    for name in ("scores.csv", "topk.csv", "targets.csv", "summary.csv", "items.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    npz_a = sorted((a / "logprobs").glob("*.npz"))
    assert [p.name for p in npz_a] == [p.name for p in sorted((b / "logprobs").glob("*.npz"))]
    for p in npz_a:
        x, y = np.load(p), np.load(b / "logprobs" / p.name)
        for key in x.files:
            assert np.array_equal(x[key], y[key]), (p.name, key)


def cli_env(cache: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if cache is not None:
        env[ENV_VAR] = str(cache)
    return env


def run_cmd(probe: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "biasprobe",
        "run",
        str(probe),
        "-m",
        str(model),
        "--device",
        "cpu",
        "-o",
        str(out),
        "--show",
        "0",
        "--bootstrap",
        "100",
        *extra,
    ]


def mask_entries(cache: Path) -> int:
    return entries(cache, "mask")


def entries(cache: Path, kind: str) -> int:
    with sqlite3.connect(cache / DB_NAME) as conn:
        return conn.execute("SELECT count(*) FROM entries WHERE kind = ?", (kind,)).fetchone()[0]


# -- numbers --------------------------------------------------------------------------------


def test_scores_identical_with_and_without_cache(tiny_bert, tmp_path):
    probe = small_probe(tmp_path)
    ps = load_probe_set(probe)
    kw = {"device": "cpu", "batch_size": 3, "n_bootstrap": 100, "store": "full"}
    cache = tmp_path / "cache"
    first = biasprobe.run(ps, [str(tiny_bert)], cache=cache, **kw)
    second = biasprobe.run(ps, [str(tiny_bert)], cache=cache, **kw)
    plain = biasprobe.run(ps, [str(tiny_bert)], cache=False, **kw)
    for table in ("scores", "topk", "targets", "summary"):
        ref = getattr(plain, table)
        for other in (first, second):
            pd.testing.assert_frame_equal(getattr(other, table), ref, check_exact=True)
    name = str(tiny_bert)
    for other in (first, second):
        assert np.array_equal(
            other.logprobs[name].to_table().logprobs, plain.logprobs[name].to_table().logprobs
        )
    # Independent: the backend called directly on every distinct sentence, no cache involved.
    sentences = [s.replace(MASK, "[MASK]") for s in distinct_sentences(probe)]
    direct = load_backend(str(tiny_bert), device="cpu", batch_size=3)
    assert len(sentences) < 128  # one chunk of score_model: the same batches as below
    rows = np.stack([plain.logprobs[name].row(s) for s in sentences])
    assert np.array_equal(direct.mask_logprobs(sentences), rows)

    n = len(sentences)
    n_chain = int((first.targets["n_pieces"] > 1).sum())
    n_prior = 2 * sum(it.attribute is not None for it in ps.items)
    assert n_chain > 0 and n_prior > 0
    s1, s2 = first.meta["models"][0]["info"]["cache"], second.meta["models"][0]["info"]["cache"]
    assert s1["enabled"] and s1["dir"] == str(cache)
    assert s1["by_kind"]["mask"] == {"hits": 0, "misses": n}
    assert s1["by_kind"]["chain"] == {"hits": 0, "misses": n_chain}
    assert s1["by_kind"]["prior"] == {"hits": 0, "misses": n_prior}
    assert s1["batches_cached"] == 0
    assert s2["by_kind"]["mask"] == {"hits": n, "misses": 0}
    assert s2["hits"] == n + n_chain + n_prior and s2["misses"] == 0
    assert s2["batches_computed"] == 0 and s2["batches_cached"] == -(-n // 3)
    assert plain.meta["models"][0]["info"]["cache"] == {"enabled": False, "reason": "--no-cache"}


# -- resume ---------------------------------------------------------------------------------


def test_sigkill_mid_run_then_resume(tiny_bert, tmp_path):
    """kill -9 while the run is writing its batches; the same command then computes only the
    batches that were not committed, and writes the same outputs as an uninterrupted run."""
    probe = large_probe(tmp_path)
    n = len(distinct_sentences(probe))
    batch = 2
    ref = tmp_path / "ref"
    done = subprocess.run(
        run_cmd(probe, tiny_bert, ref, "--batch-size", str(batch), "--no-cache"),
        env=cli_env(tmp_path / "unused"),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "unused").exists()  # --no-cache touches no cache folder

    cache = tmp_path / "cache"
    out = tmp_path / "out"
    cmd = run_cmd(probe, tiny_bert, out, "--batch-size", str(batch), "--cache", str(cache))
    child = subprocess.Popen(cmd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    lock = None
    try:
        # Wait for the first committed batches, then take the database's write lock: the run
        # blocks at its next commit, mid-way, and is killed there.
        while time.monotonic() < deadline and child.poll() is None:
            if (cache / DB_NAME).is_file():
                try:
                    if mask_entries(cache) >= 4 * batch:
                        lock = sqlite3.connect(cache / DB_NAME, timeout=60, isolation_level=None)
                        lock.execute("BEGIN IMMEDIATE")
                        break
                except sqlite3.OperationalError:
                    pass  # the schema is being created
            time.sleep(0.002)
        assert lock is not None, child.communicate()
        committed = lock.execute("SELECT count(*) FROM entries WHERE kind = 'mask'").fetchone()[0]
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        if lock is not None:
            lock.execute("ROLLBACK")
            lock.close()
    assert child.returncode == -signal.SIGKILL
    assert 0 < committed < n and committed % batch == 0
    assert not out.exists()  # nothing half-written

    again = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    stats = cache_stats(out)
    # Finished batches are read back, never recomputed: the forward passes are the rest only.
    assert stats["by_kind"]["mask"] == {"hits": committed, "misses": n - committed}
    assert stats["batches_cached"] == committed // batch
    assert stats["batches_computed"] == -(-(n - committed) // batch)
    assert f"0/48 pairs cached; {committed} hit(s), {n - committed} computed" in again.stderr
    assert_same_run(out, ref)
    # Every pair is now a reduced record; no full vector is left (no pair needs one).
    assert mask_entries(cache) == 0 and entries(cache, "pair") == 48


def test_changed_checkpoint_misses(tiny_bert, tiny_bert_b, tmp_path):
    """New weights (or tokenizer files, or config) in the same folder: a new model identity,
    every request computed again, and the numbers of the new weights."""
    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)
    ps = load_probe_set(small_probe(tmp_path))
    kw = {"device": "cpu", "batch_size": 4, "n_bootstrap": 100, "cache": tmp_path / "cache"}
    kw["store"] = "full"
    old = biasprobe.run(ps, [str(model)], **kw)
    n = old.meta["models"][0]["info"]["cache"]["misses"]
    id_old = old.meta["models"][0]["info"]["cache"]["model_identity"]
    shutil.copy(tiny_bert_b / "model.safetensors", model / "model.safetensors")
    new = biasprobe.run(ps, [str(model)], **kw)
    stats = new.meta["models"][0]["info"]["cache"]
    assert stats["hits"] == 0 and stats["misses"] == n
    assert stats["model_identity"] != id_old
    fresh = biasprobe.run(ps, [str(tiny_bert_b)], **{**kw, "cache": False})
    vectors = {
        name: run.logprobs[str(m)].to_table().logprobs
        for name, run, m in [
            ("new", new, model),
            ("fresh", fresh, tiny_bert_b),
            ("old", old, model),
        ]
    }
    assert np.array_equal(vectors["new"], vectors["fresh"])
    assert not np.array_equal(vectors["new"], vectors["old"])
    with ResultCache(tmp_path / "cache") as rc:
        assert len(rc.summary()) == 2

    # Tokenizer files and config.json are part of the identity too.
    backend = load_backend(str(model), device="cpu")
    before, _ = model_identity(backend)
    cfg = model / "tokenizer_config.json"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("{", '{"x_note": 1, ', 1))
    backend = load_backend(str(model), device="cpu")
    after, _ = model_identity(backend)
    assert after["weights_sha256"] == before["weights_sha256"]
    assert after["tokenizer_sha256"] != before["tokenizer_sha256"]
    assert after["model_class"] == "BertForMaskedLM" and after["device_kind"] == "cpu"


def test_two_concurrent_runs_share_one_cache(tiny_bert, tmp_path):
    probe = large_probe(tmp_path)
    n = len(distinct_sentences(probe))
    cache = tmp_path / "cache"
    outs = [tmp_path / "a", tmp_path / "b"]
    procs = [
        subprocess.Popen(
            run_cmd(probe, tiny_bert, out, "--batch-size", "4", "--cache", str(cache)),
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outs
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    ref = tmp_path / "ref"
    done = subprocess.run(
        run_cmd(probe, tiny_bert, ref, "--batch-size", "4", "--no-cache"),
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    for out in outs:
        assert_same_run(out, ref)
        s = cache_stats(out)["by_kind"]
        # each run computed or read every sentence, or was served pairs the other finished
        assert s["mask"]["hits"] + s["mask"]["misses"] in (0, n)
        assert s["pair"]["hits"] + s["pair"]["misses"] == 48
    assert mask_entries(cache) == 0 and entries(cache, "pair") == 48
    with sqlite3.connect(cache / DB_NAME) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- what is cached, where ----------------------------------------------------------------


def test_recorded_and_in_memory_models_are_not_cached(tiny_bert, tmp_path):
    ps = load_probe_set(small_probe(tmp_path))
    cache = tmp_path / "cache"
    backend = load_backend(str(tiny_bert), device="cpu")
    result = biasprobe.run(ps, [backend], device="cpu", n_bootstrap=100, cache=cache)
    assert result.meta["models"][0]["info"]["cache"] == {"enabled": False, "reason": OBJECT_REASON}
    assert not cache.exists()  # no live model loaded by the run: the folder is not created

    simple = tmp_path / "s.yaml"
    simple.write_text(
        HEADER + 'pairs:\n  - id: works\n    template: "The [woman|man] works as a [MASK]."\n'
        "    groups: [women, men]\n",
        encoding="utf-8",
    )
    rec = tmp_path / "rec"
    record(simple, rec, model=str(tiny_bert), device="cpu", cache=cache)
    assert cache.is_dir()  # recording a live model fills the cache
    with ResultCache(cache) as rc:
        assert [m["entries"] for m in rc.summary()] == [{"mask": 2}]
    shutil.rmtree(cache)
    result = biasprobe.run(
        load_probe_set(simple), [f"recorded:{rec}"], n_bootstrap=100, cache=cache
    )
    card = result.meta["models"][0]["info"]["cache"]
    assert card == {"enabled": False, "reason": RECORDED_REASON}
    assert not cache.exists()


def test_default_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "biasprobe"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "biasprobe"


def test_cli_cache_info_clear_and_options(tiny_bert, tmp_path):
    probe = small_probe(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "notes.txt").write_text("mine", encoding="utf-8")
    res = runner.invoke(
        app,
        [*run_cmd(probe, tiny_bert, tmp_path / "r", "--cache", str(cache))[3:], "--show", "none"],
    )
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("cache ") and "hit(s)" in x)
    assert ": 0/20 pairs cached; 0 hit(s), " in line and " computed in " in line, line
    assert Path(tiny_bert).name in line and len(line) <= 80
    assert f"cache folder: {cache}" in res.output
    quiet = runner.invoke(
        app,
        [*run_cmd(probe, tiny_bert, tmp_path / "q", "--cache", str(cache))[3:], "--quiet"],
    )
    assert quiet.exit_code == 0, quiet.output
    assert not [x for x in quiet.output.splitlines() if x.startswith("cache")], quiet.output
    info = runner.invoke(app, ["cache", "info", "--cache", str(cache), "--json"])
    assert info.exit_code == 0, info.output
    data = json.loads(info.output)
    assert data["dir"] == str(cache) and data["bytes"] > 0
    [model] = data["models"]
    # the run's 20 finished pairs are kept as records, the vectors are gone
    assert "mask" not in model["entries"] and model["entries"]["pair"] == 20
    assert model["model"]["name"] == str(tiny_bert)
    text = runner.invoke(app, ["cache", "info", "--cache", str(cache)])
    assert "pair 20" in text.output and str(tiny_bert) in text.output

    both = runner.invoke(app, ["run", str(probe), "--cache", str(cache), "--no-cache"])
    assert both.exit_code == 2 and "exclude each other" in both.output

    cleared = runner.invoke(app, ["cache", "clear", "--cache", str(cache)])
    assert cleared.exit_code == 0 and DB_NAME in cleared.output
    assert sorted(p.name for p in cache.iterdir()) == ["notes.txt"]
    again = runner.invoke(app, ["cache", "clear", "--cache", str(cache)])
    assert again.exit_code == 0 and "nothing removed" in again.output


def test_foreign_database_file_is_left_alone(tiny_bert, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    foreign = cache / DB_NAME
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    before = foreign.read_bytes()
    with pytest.raises(CacheError, match="not a biasprobe cache|did not create"):
        ResultCache(cache)
    res = runner.invoke(
        app, run_cmd(small_probe(tmp_path), tiny_bert, tmp_path / "r", "--cache", str(cache))[3:]
    )
    assert res.exit_code == 2 and str(foreign) in res.output
    assert not (tmp_path / "r").exists()
    cleared = runner.invoke(app, ["cache", "clear", "--cache", str(cache)])
    assert cleared.exit_code == 2 and "neither reads nor removes it" in cleared.output
    shown = runner.invoke(app, ["cache", "info", "--cache", str(cache)])
    assert shown.exit_code == 2 and "is not a biasprobe cache database" in shown.output
    assert foreign.read_bytes() == before
    afile = tmp_path / "afile"
    afile.write_text("x")
    for cmd in ("info", "clear"):
        res = runner.invoke(app, ["cache", cmd, "--cache", str(afile)])
        assert res.exit_code == 2 and "is a file, not a folder" in res.output
    assert afile.read_text() == "x"
    (cache / "plain.txt").write_text("x")
    text = cache / DB_NAME
    text.unlink()
    text.write_text("not sqlite at all, but long enough " * 10)
    with pytest.raises(CacheError, match="not a biasprobe cache"):
        ResultCache(cache)


def test_write_waits_then_fails_with_a_clear_message(monkeypatch, tmp_path):
    """A writer waits for another process's transaction; past the timeout it stops with an
    error naming the database, and what was committed stays readable."""
    import biasprobe.cache as cache_mod

    monkeypatch.setattr(cache_mod, "BUSY_TIMEOUT_S", 0.3)
    rc = ResultCache(tmp_path)
    store = rc.model({"weights_sha256": {"model.safetensors": "0" * 64}}, "m")
    vec = np.arange(5, dtype=np.float32) - 7.25
    store.put_vectors("mask", [(b"k1", vec)])
    other = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(CacheError, match=f"cannot write to the cache database .*{DB_NAME}"):
            store.put_scalars("chain", [(b"k2", -1.5)])
    finally:
        other.execute("ROLLBACK")
        other.close()
    got = store.get("mask", [b"k1", b"missing"])
    assert list(got) == [b"k1"] and np.array_equal(got[b"k1"], vec)
    assert got[b"k1"].dtype == np.float32
    store.put_scalars("chain", [(b"k2", -1.5)])
    assert store.get("chain", [b"k2"]) == {b"k2": -1.5}
    rc.close()


def test_an_open_cache_passed_in_stays_open(tiny_bert, tmp_path):
    ps = load_probe_set(small_probe(tmp_path))
    with ResultCache(tmp_path / "c") as rc:
        result = biasprobe.run(ps, [str(tiny_bert)], device="cpu", n_bootstrap=100, cache=rc)
        kinds = result.meta["models"][0]["info"]["cache"]["by_kind"]
        [model] = rc.summary()  # still usable after the run
        assert model["entries"]["pair"] == kinds["pair"]["misses"] == len(ps.items)
        assert model["entries"]["chain"] == kinds["chain"]["misses"] > 0


def test_hub_model_identity_is_its_resolved_commit(tiny_bert, tmp_path):
    """A hub id from the Hugging Face cache is identified by the snapshot's commit: a new
    commit behind the same name is another model."""
    repo = tmp_path / "hub" / "models--testorg--tiny-bert"
    (repo / "refs").mkdir(parents=True)
    code = (
        "import json, biasprobe.backends as b; from biasprobe.cache import model_identity;"
        "m = b.load_backend('testorg/tiny-bert', device='cpu');"
        "print(json.dumps(model_identity(m)[0]))"
    )
    env = {**cli_env(), "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    seen = []
    for commit in ("0123456789abcdef0123456789abcdef01234567", "f" * 40):
        snap = repo / "snapshots" / commit
        shutil.copytree(tiny_bert, snap)
        (repo / "refs" / "main").write_text(commit)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
        )
        assert out.returncode == 0, out.stderr
        identity = json.loads(out.stdout.strip().splitlines()[-1])
        assert identity["commit"] == commit and identity["hub_id"] == "testorg/tiny-bert"
        assert "weights_sha256" not in identity and identity["tokenizer_sha256"]
        seen.append(identity)
    assert seen[0] != seen[1]


# -- finished pairs as reduced records --------------------------------------------------------


def assert_same_result(a, b) -> None:
    """Two in-process results: every table and every stored pair's arrays identical."""
    for table in ("scores", "topk", "targets", "summary"):
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table), check_exact=True)
    assert list(a.logprobs) == list(b.logprobs)
    for name, store in a.logprobs.items():
        other = b.logprobs[name]
        assert store.pair_ids == other.pair_ids
        for pair_id in store.pair_ids:
            x, y = store.records(pair_id), other.records(pair_id)
            assert list(x) == list(y)
            for key in x:
                assert np.array_equal(x[key], y[key], equal_nan=True), (name, pair_id, key)


def test_pair_records_resume_and_serve_a_second_run(tiny_bert, tmp_path, monkeypatch):
    """Interrupted after some chunks: the next run serves their pairs from records (reading no
    vector of theirs) and computes the rest; a third run computes nothing at all. Every table
    and stored array is that of an uncached run."""
    from biasprobe.backends.hf import HFMaskedLM
    from biasprobe.tasks import fillmask_scoring as runner_module

    monkeypatch.setattr(runner_module, "SENTENCE_CHUNK", 8)  # several chunks on 35 sentences
    monkeypatch.setattr(runner_module, "REQUEST_CHUNK", 4)
    ps = load_probe_set(small_probe(tmp_path))
    n_pairs, n_sent = len(ps.items), len(distinct_sentences(small_probe(tmp_path)))
    kw = {"device": "cpu", "batch_size": 3, "n_bootstrap": 100}
    ref = biasprobe.run(ps, [str(tiny_bert)], cache=False, **kw)

    calls = {"n": 0, "stop_at": 6}
    real = HFMaskedLM.mask_logprobs

    def counted(self, sentences):
        calls["n"] += 1
        if calls["n"] == calls["stop_at"]:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the run
        return real(self, sentences)

    monkeypatch.setattr(HFMaskedLM, "mask_logprobs", counted)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        biasprobe.run(ps, [str(tiny_bert)], cache=cache, **kw)
    kept = entries(cache, "pair")
    assert 0 < kept < n_pairs

    calls.update(n=0, stop_at=-1)
    again = biasprobe.run(ps, [str(tiny_bert)], cache=cache, **kw)
    assert_same_result(again, ref)
    stats = again.meta["models"][0]["info"]["cache"]
    assert stats["by_kind"]["pair"] == {"hits": kept, "misses": n_pairs - kept}
    mask = stats["by_kind"]["mask"]
    # the finished chunks' sentences are not even read; the rest is read or computed
    assert 0 < mask["hits"] + mask["misses"] < n_sent
    # the sentences computed, and only they, went through forward passes of ≤ 3 sentences
    assert mask["misses"] > 0 and calls["n"] <= mask["misses"] <= 3 * calls["n"]
    assert mask_entries(cache) == 0 and entries(cache, "pair") == n_pairs

    calls.update(n=0)
    third = biasprobe.run(ps, [str(tiny_bert)], cache=cache, **kw)
    assert_same_result(third, ref)
    stats = third.meta["models"][0]["info"]["cache"]
    assert calls["n"] == 0  # no forward pass at all
    assert stats["by_kind"]["pair"] == {"hits": n_pairs, "misses": 0}
    assert stats["hits"] == stats["misses"] == 0  # no sentence, chain or prior request either

    # Another setting (top-k) is another record: computed again, the numbers of that setting.
    calls.update(n=0)
    k5 = biasprobe.run(ps, [str(tiny_bert)], cache=cache, top_k=5, **kw)
    assert_same_result(k5, biasprobe.run(ps, [str(tiny_bert)], cache=False, top_k=5, **kw))
    assert k5.meta["models"][0]["info"]["cache"]["by_kind"]["pair"]["misses"] == n_pairs
    assert calls["n"] > 0


def test_pair_records_of_a_base_and_a_second_model(tiny_bert, tiny_bert_b, tmp_path):
    """Two models (the second keeps the base's top-300 tokens too): cached twice, identical to
    an uncached run, the second time every pair of both models from records."""
    ps = load_probe_set(small_probe(tmp_path))
    models = [str(tiny_bert), str(tiny_bert_b)]
    kw = {"device": "cpu", "batch_size": 4, "n_bootstrap": 100}
    ref = biasprobe.run(ps, models, cache=False, **kw)
    cache = tmp_path / "cache"
    first = biasprobe.run(ps, models, cache=cache, **kw)
    second = biasprobe.run(ps, models, cache=cache, **kw)
    for result in (first, second):
        assert_same_result(result, ref)
    for card in second.meta["models"]:
        assert card["info"]["cache"]["by_kind"]["pair"] == {"hits": len(ps.items), "misses": 0}


def test_record_encoding_round_trip():
    from biasprobe.cache import decode_record, encode_record

    header = {"row": {"k": 10, "js": 0.1 + 0.2, "nan": float("nan"), "same": True}, "x": None}
    arrays = {"ids": np.array([3, 1, 2], dtype="<i4"), "lp": np.array([-1.5, np.nan], "<f4")}
    back, got = decode_record(encode_record(header, arrays))
    assert back["row"]["js"] == 0.1 + 0.2 and back["row"]["same"] is True
    assert np.isnan(back["row"]["nan"]) and back["x"] is None
    assert got["ids"].tolist() == [3, 1, 2] and got["ids"].dtype == np.dtype("<i4")
    assert np.array_equal(got["lp"], arrays["lp"], equal_nan=True)
    with pytest.raises(ValueError):
        encode_record({}, {"obj": np.array(["a"])})
    blob = encode_record(header, arrays)
    with pytest.raises(ValueError):
        decode_record(blob[:-1])
