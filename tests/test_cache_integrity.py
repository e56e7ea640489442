"""A damaged result cache (issue 17): every entry carries a digest checked on read, a damaged
entry is computed again with a warning (never served), damage SQLite finds is reported as damage
with the fix, and ``cache clear`` removes a damaged biasprobe cache but nothing else."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import biasprobe
import biasprobe.cache as cache_mod
from biasprobe.cache import (
    DB_NAME,
    SCHEMA_VERSION,
    CacheDamagedError,
    CacheError,
    ResultCache,
    check_cache_folder,
    entry_digest,
)
from biasprobe.cli import app
from biasprobe.probes import load_probe_set

runner = CliRunner()

PROBE = """name: cache-integrity
version: 1
description: test
source: test
orientation: {minoritized: women, normative: men}
lexicons:
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
TABLES = ("scores.csv", "topk.csv", "targets.csv", "summary.csv", "items.csv")


def probe_file(tmp_path: Path) -> Path:
    p = tmp_path / "probe.yaml"
    p.write_text(PROBE, encoding="utf-8")
    return p


def run(tmp_path: Path, model: Path, out: Path, *extra: str):
    args = [
        "run",
        str(probe_file(tmp_path)),
        "-m",
        str(model),
        "--device",
        "cpu",
        "-o",
        str(out),
        "--show",
        "none",
        "--bootstrap",
        "100",
        *extra,
    ]
    return runner.invoke(app, args)


def cache_of(run_folder: Path) -> dict:
    meta = json.loads((run_folder / "results.json").read_text(encoding="utf-8"))
    return meta["models"][0]["info"]["cache"]


def rows(cache: Path, kind: str) -> list[tuple[bytes, str, bytes]]:
    with sqlite3.connect(cache / DB_NAME) as conn:
        found = conn.execute(
            "SELECT key, format, value FROM entries WHERE kind = ? ORDER BY key", (kind,)
        ).fetchall()
    return [(bytes(k), f, bytes(v)) for k, f, v in found]


def set_value(cache: Path, kind: str, key: bytes, value: bytes, fmt: str | None = None) -> None:
    """Change a stored value behind biasprobe's back (its digest is left as it was)."""
    with sqlite3.connect(cache / DB_NAME) as conn:
        conn.execute(
            "UPDATE entries SET value = ?, format = coalesce(?, format) WHERE kind = ? AND key = ?",
            (value, fmt, kind, key),
        )


def header_digit(blob: bytes) -> int:
    """The offset of a digit inside a pair record's JSON header, in a number of its scores."""
    size = int.from_bytes(blob[:4], "little")
    head = blob[4 : 4 + size]
    at = head.index(b'"target_gap": ') + len(b'"target_gap": ')
    while not head[at : at + 1].isdigit() or head[at : at + 1] in (b"0", b"9"):
        at += 1
    return 4 + at


def assert_same_tables(a: Path, b: Path) -> None:
    for name in TABLES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


# ----------------------------------------------------------------- item 3: the digest


def test_a_changed_byte_in_a_pair_record_is_recomputed_with_a_warning(tiny_bert, tmp_path):
    """One digit of a score inside a cached pair record is changed: the next run does not
    serve it, warns, computes the pair again, and writes the tables of a --no-cache run."""
    cache = tmp_path / "cache"
    assert run(tmp_path, tiny_bert, tmp_path / "first", "--cache", str(cache)).exit_code == 0
    records = rows(cache, "pair")
    assert len(records) == 20
    key, _, blob = records[3]
    at = header_digit(blob)
    changed = blob[:at] + bytes([blob[at] + 1]) + blob[at + 1 :]
    assert changed != blob and json.loads(changed[4 : 4 + int.from_bytes(blob[:4], "little")])
    set_value(cache, "pair", key, changed)

    res = run(tmp_path, tiny_bert, tmp_path / "second", "--cache", str(cache))
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("cache "))
    assert "warning: 1 damaged entry" in line and "19/20 pairs cached" in line, line
    assert cache_of(tmp_path / "second")["damaged"] == {"pair": 1}
    plain = run(tmp_path, tiny_bert, tmp_path / "plain", "--no-cache")
    assert plain.exit_code == 0, plain.output
    assert_same_tables(tmp_path / "second", tmp_path / "plain")
    # the damaged record was replaced by the recomputed one: the next run is served whole
    assert dict((k, v) for k, _, v in rows(cache, "pair"))[key] == blob
    res = run(tmp_path, tiny_bert, tmp_path / "third", "--cache", str(cache))
    assert res.exit_code == 0 and "20/20 pairs cached" in res.output and "damaged" not in res.output
    assert cache_of(tmp_path / "third")["damaged"] == {}
    assert_same_tables(tmp_path / "third", tmp_path / "plain")


def test_flipped_bits_in_stored_arrays_are_never_served(tiny_bert, tmp_path):
    """Bits flipped in a stored log-prob vector, in a chain-rule value and in a pair record's
    arrays: each is computed again, and the log-probs equal a run without the cache."""
    ps = load_probe_set(probe_file(tmp_path))
    kw = {"device": "cpu", "batch_size": 3, "n_bootstrap": 100}
    cache = tmp_path / "cache"
    biasprobe.run(ps, [str(tiny_bert)], cache=cache, **kw)  # pair records (vectors dropped)
    biasprobe.run(ps, [str(tiny_bert)], cache=cache, store="full", **kw)  # vectors kept
    key_m, _, vec = rows(cache, "mask")[5]
    flipped = bytearray(vec)
    flipped[4 * 100 + 3] ^= 0x40  # the exponent of the 101st log-prob
    set_value(cache, "mask", key_m, bytes(flipped))
    key_c, _, value = rows(cache, "chain")[0]
    set_value(cache, "chain", key_c, bytes([value[0] ^ 1]) + value[1:])
    key_p, _, record = rows(cache, "pair")[0]
    set_value(cache, "pair", key_p, record[:-1] + bytes([record[-1] ^ 0x40]))

    full = biasprobe.run(ps, [str(tiny_bert)], cache=cache, store="full", **kw)
    # the damaged vector was computed again and replaced by the model's own bytes
    assert dict((k, v) for k, _, v in rows(cache, "mask"))[key_m] == vec
    topn = biasprobe.run(ps, [str(tiny_bert)], cache=cache, **kw)
    assert full.meta["models"][0]["info"]["cache"]["damaged"] == {"mask": 1, "chain": 1}
    assert topn.meta["models"][0]["info"]["cache"]["damaged"] == {"pair": 1}
    name = str(tiny_bert)
    for store, got in (("full", full), ("topn", topn)):
        plain = biasprobe.run(ps, [name], cache=False, store=store, **kw)
        for table in ("scores", "topk", "targets", "summary"):
            pd.testing.assert_frame_equal(getattr(got, table), getattr(plain, table))
        mine, theirs = got.logprobs[name], plain.logprobs[name]
        assert mine.pair_ids == theirs.pair_ids
        for pair_id in theirs.pair_ids:  # what the report draws, array for array
            x, y = mine.records(pair_id), theirs.records(pair_id)
            assert x.keys() == y.keys()
            for column in y:
                assert np.array_equal(x[column], y[column]), (store, pair_id, column)


def test_digest_covers_the_row(tmp_path):
    rc = ResultCache(tmp_path)
    store = rc.model({"weights_sha256": {"model.safetensors": "0" * 64}}, "m")
    a, b = np.arange(4, dtype=np.float32), np.arange(4, dtype=np.float32) + 10
    store.put_vectors("mask", [(b"ka", a), (b"kb", b)])
    assert set(store.get("mask", [b"ka", b"kb"])) == {b"ka", b"kb"}
    # an intact value copied (with its digest) under another key is not served either
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        value, digest = conn.execute(
            "SELECT value, digest FROM entries WHERE key = ?", (b"ka",)
        ).fetchone()
        conn.execute(
            "UPDATE entries SET value = ?, digest = ? WHERE key = ?", (value, digest, b"kb")
        )
    got = store.get("mask", [b"ka", b"kb"])
    assert list(got) == [b"ka"] and np.array_equal(got[b"ka"], a)
    assert store.damaged() == {"mask": 1}
    assert store.present("mask", [b"ka", b"kb"]) == {b"ka"}
    assert entry_digest(store.model_id, "mask", b"ka", "f32", a.tobytes()) == bytes(digest)
    rc.close()


def test_a_version_1_cache_is_upgraded_and_its_entries_never_served(tiny_bert, tmp_path):
    """A cache written before digests existed: opened, upgraded, its entries (unverifiable)
    computed again; no warning, since nothing was found damaged."""
    cache = tmp_path / "cache"
    assert run(tmp_path, tiny_bert, tmp_path / "first", "--cache", str(cache)).exit_code == 0
    key, _, blob = rows(cache, "pair")[0]
    with sqlite3.connect(cache / DB_NAME) as conn:  # as version 1 wrote it, one record changed
        conn.execute("ALTER TABLE entries DROP COLUMN digest")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
        at = header_digit(blob)
        conn.execute(
            "UPDATE entries SET value = ? WHERE key = ?",
            (blob[:at] + bytes([blob[at] + 1]) + blob[at + 1 :], key),
        )
    res = run(tmp_path, tiny_bert, tmp_path / "second", "--cache", str(cache))
    assert res.exit_code == 0, res.output
    assert "0/20 pairs cached" in res.output and "damaged" not in res.output
    assert run(tmp_path, tiny_bert, tmp_path / "plain", "--no-cache").exit_code == 0
    assert_same_tables(tmp_path / "second", tmp_path / "plain")
    with sqlite3.connect(cache / DB_NAME) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == str(
            SCHEMA_VERSION
        )
        assert conn.execute("SELECT count(*) FROM entries WHERE digest IS NULL").fetchone()[0] == 0


# ------------------------------------------------------- item 11: damage is called damage


def make_cache(tiny_bert: Path, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    assert run(tmp_path, tiny_bert, tmp_path / "fill", "--cache", str(cache)).exit_code == 0
    (cache / "notes.txt").write_text("mine", encoding="utf-8")
    return cache


def test_damaged_rows_are_recomputed_not_internal_errors(tiny_bert, tmp_path):
    cache = make_cache(tiny_bert, tmp_path)
    records = rows(cache, "pair")
    set_value(cache, "pair", records[0][0], records[0][2], fmt="zz9")  # an unknown format
    set_value(cache, "pair", records[1][0], b"\x00garbage\xff" * 3)  # a garbage blob
    with sqlite3.connect(cache / DB_NAME) as conn:
        conn.execute("UPDATE models SET description = 'not json'")
    res = run(tmp_path, tiny_bert, tmp_path / "r", "--cache", str(cache))
    assert res.exit_code == 0 and "internal error" not in res.output, res.output
    assert "warning: 2 damaged entries" in res.output
    assert run(tmp_path, tiny_bert, tmp_path / "plain", "--no-cache").exit_code == 0
    assert_same_tables(tmp_path / "r", tmp_path / "plain")
    info = runner.invoke(app, ["cache", "info", "--cache", str(cache)])
    assert info.exit_code == 0 and "internal error" not in info.output, info.output


def test_a_non_integer_schema_version_is_damage_with_the_fix(tiny_bert, tmp_path):
    cache = make_cache(tiny_bert, tmp_path)
    with sqlite3.connect(cache / DB_NAME) as conn:
        conn.execute("UPDATE meta SET value = 'two' WHERE key = 'schema'")
    for args in (["cache", "info", "--cache", str(cache)], None):
        res = (
            runner.invoke(app, args)
            if args
            else run(tmp_path, tiny_bert, tmp_path / "r", "--cache", str(cache))
        )
        assert res.exit_code == 2 and "internal error" not in res.output, res.output
        assert "is damaged" in res.output and f"biasprobe cache clear --cache {cache}" in (
            " ".join(res.output.split())
        )
    assert not (tmp_path / "r").exists()
    cleared = runner.invoke(app, ["cache", "clear", "--cache", str(cache)])
    assert cleared.exit_code == 0 and DB_NAME in cleared.output
    assert sorted(p.name for p in cache.iterdir()) == ["notes.txt"]
    assert run(tmp_path, tiny_bert, tmp_path / "r", "--cache", str(cache)).exit_code == 0


def test_a_truncated_cache_is_damage_and_cache_clear_removes_it(tiny_bert, tmp_path):
    cache = make_cache(tiny_bert, tmp_path)
    with ResultCache(cache):
        pass  # closing the last connection checkpoints the WAL into the main file
    for name in (f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
        assert not (cache / name).exists()
    main = cache / DB_NAME
    size = main.stat().st_size
    with open(main, "r+b") as f:
        f.truncate(size // 3)
    res = run(tmp_path, tiny_bert, tmp_path / "r", "--cache", str(cache))
    assert res.exit_code == 2 and "is damaged" in res.output, res.output
    assert "not a biasprobe cache" not in res.output and "cache clear" in res.output
    assert not (tmp_path / "r").exists()
    info = runner.invoke(app, ["cache", "info", "--cache", str(cache)])
    assert info.exit_code == 2 and "is damaged" in info.output, info.output
    cleared = runner.invoke(app, ["cache", "clear", "--cache", str(cache)])
    assert cleared.exit_code == 0, cleared.output
    assert sorted(p.name for p in cache.iterdir()) == ["notes.txt"]


def test_a_file_biasprobe_cannot_prove_its_own_is_never_removed(tmp_path):
    """An SQLite-looking file whose header does not say biasprobe: never read, never removed."""
    cache = tmp_path / "cache"
    cache.mkdir()
    main = cache / DB_NAME
    main.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    before = main.read_bytes()
    for cmd in ("info", "clear"):
        res = runner.invoke(app, ["cache", cmd, "--cache", str(cache)])
        assert res.exit_code == 2 and "not a biasprobe cache database" in res.output, res.output
    assert main.read_bytes() == before


def test_a_valid_cache_sqlite_cannot_open_is_still_recognised(tiny_bert, tmp_path, monkeypatch):
    """What a read-only folder does to SQLite (it cannot open the WAL index): the cache is
    still known as biasprobe's by its header, never called "not a biasprobe cache"."""
    cache = make_cache(tiny_bert, tmp_path)

    def refuse(*a, **k):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(cache_mod.sqlite3, "connect", refuse)
    assert cache_mod._is_ours(cache / DB_NAME) is True
    assert check_cache_folder(cache) == cache


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root ignores folder permissions"
)
def test_a_read_only_cache_folder(tiny_bert, tmp_path):
    cache = make_cache(tiny_bert, tmp_path)
    with ResultCache(cache):
        pass
    cache.chmod(0o555)
    try:
        res = run(tmp_path, tiny_bert, tmp_path / "r", "--cache", str(cache))
        assert res.exit_code == 2 and "is read-only" in res.output, res.output
        info = runner.invoke(app, ["cache", "info", "--cache", str(cache)])
        assert info.exit_code == 0 and "pair 20" in info.output, info.output
    finally:
        cache.chmod(0o755)


def test_damage_found_by_sqlite_while_reading_names_the_fix(tmp_path, monkeypatch):
    rc = ResultCache(tmp_path)
    store = rc.model({"weights_sha256": {"model.safetensors": "0" * 64}}, "m")

    class Broken:
        def execute(self, *a, **k):
            raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(rc, "_conn", Broken())
    with pytest.raises(CacheDamagedError, match="is damaged .*biasprobe cache clear --cache"):
        store.get("mask", [b"k"])
    assert issubclass(CacheDamagedError, CacheError)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_in_place_of_the_database_is_refused_not_waited_on(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    os.mkfifo(cache / DB_NAME)
    for cmd in ("info", "clear"):
        res = runner.invoke(app, ["cache", cmd, "--cache", str(cache)])
        assert res.exit_code == 2 and "is not a regular file" in res.output, res.output
    assert (cache / DB_NAME).exists()
