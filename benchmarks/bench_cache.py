"""The result cache on the BERT-base-shaped model: a second run, and a run killed half-way.

The model is BERT-base-shaped (``scripts/make_random_bert.py --size base``: 12 layers, hidden
768, the real 30,522-token uncased vocab) with random weights. The suite is lexicon-generated:
women's × men's names zipped, times contexts (``--pairs`` pairs, 2 sentences each).

Measured, one after the other:

1. (with ``--no-cache-run``) a ``--no-cache`` run in process, the cost without any cache;
2. first run in process with an empty cache (computes everything and writes it);
3. second run of the same suite in process (served from the cache) — target: ≥ 20× faster
   than 2;
4. resume, measured the way a user meets it, every run a ``biasprobe run`` subprocess (Python
   start-up, imports and model load included in each): (a) the uninterrupted command with an
   empty cache; (b) the same command SIGKILLed once half of the pairs are in the cache as
   finished records (wall time from its start to the kill); (c) the same command again, which
   resumes — target: b + c ≤ 1.1 × a.

A short untimed warm-up run comes first (imports, first kernel calls), so that run 2 is not
charged for them. Every run's scores and top-k lists are compared with run 2's (and run 1's),
which must be identical, bit for bit. Prints the times and the ratios.

Usage: python benchmarks/bench_cache.py [--pairs 1000] [--batch-size 32] [--no-cache-run]
[--keep DIR] [--smoke] (--smoke: a tiny model and 16 pairs, to check that the script runs; the
kill may then come after the run has finished, which it says)
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
from suites import CONTEXTS, NAMES_W, names_suite_yaml  # noqa: E402 (benchmarks/suites.py, run as a script)

TEMPLATES = [
    "{name} {context} [MASK].",
    "Yesterday {name} {context} [MASK].",
    "Everyone says that {name} {context} [MASK].",
    "In the end, {name} {context} [MASK].",
    "After college, {name} {context} [MASK].",
    "Last year {name} {context} [MASK].",
    "As a child, {name} {context} [MASK].",
    "Her neighbour said {name} {context} [MASK].",
]


def write_probes(path: Path, n_pairs: int) -> int:
    """A templates × names × contexts suite of about ``n_pairs`` pairs (returns the count)."""
    per_template = len(NAMES_W) * len(CONTEXTS)
    n_templates = min(len(TEMPLATES), max(1, -(-n_pairs // per_template)))
    per = -(-n_pairs // n_templates)
    n_contexts = min(len(CONTEXTS), max(1, -(-per // len(NAMES_W))))
    n_names = min(len(NAMES_W), -(-per // n_contexts))
    chosen = [(f"names-{t}", tpl) for t, tpl in enumerate(TEMPLATES[:n_templates])]
    text = names_suite_yaml("bench-cache", "cache benchmark suite", n_names, n_contexts, chosen)
    path.write_text(text, encoding="utf-8")
    return n_templates * n_names * n_contexts


def entries(db: Path, kind: str) -> int:
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            sql = "SELECT count(*) FROM entries WHERE kind = ?"
            return conn.execute(sql, (kind,)).fetchone()[0]
    except sqlite3.Error:
        return 0  # not created yet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=1000, help="suite size (default 1000, max 2000)")
    ap.add_argument("--no-cache-run", action="store_true", help="also time a --no-cache run")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: temp)")
    ap.add_argument("--smoke", action="store_true", help="tiny model and suite: runs in seconds")
    args = ap.parse_args()
    if args.smoke:
        args.pairs, args.bootstrap = 16, 100

    import pandas as pd
    import torch

    import biasprobe
    from biasprobe.cache import DB_NAME, clear

    tmp = args.keep or Path(tempfile.mkdtemp(prefix="bench-cache-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        model = tmp / "bert-base-shaped"
        if not (model / "config.json").is_file():
            subprocess.run(
                [sys.executable, str(REPO / "scripts" / "make_random_bert.py"), str(model)]
                + ["--size", "tiny" if args.smoke else "base"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        probe = tmp / "bench.yaml"
        n_pairs = write_probes(probe, args.pairs)
        probe_set = biasprobe.load_probe_set(probe)
        n_sent = len({s for it in probe_set.items for s in it.sentences})
        cache = tmp / "cache"
        clear(cache)
        print(
            f"suite: {n_pairs} pairs = {n_sent} distinct sentences; BERT-base-shaped random "
            f"model; batch size {args.batch_size}; torch threads {torch.get_num_threads()}; "
            f"{os.cpu_count()} CPUs"
        )
        kw = {"device": "cpu", "batch_size": args.batch_size, "n_bootstrap": args.bootstrap}
        # Warm-up, not timed: imports transformers and runs the kernels once, as any earlier
        # run of the same process would have.
        biasprobe.run(
            probe_set, [str(model)], **{**kw, "pairs": ["names-0/mary-james*"]}, cache=False
        )

        def timed(label: str, **extra):
            t0 = time.perf_counter()
            result = biasprobe.run(probe_set, [str(model)], **kw, **extra)
            dt = time.perf_counter() - t0
            stats = result.meta["models"][0]["info"]["cache"]
            shown = (
                f"{stats['hits']} hits, {stats['misses']} computed"
                if stats["enabled"]
                else "no cache"
            )
            print(f"{label:<44} {dt:8.2f} s  ({shown})")
            return result, dt

        plain = t_plain = None
        if args.no_cache_run:
            plain, t_plain = timed("1. --no-cache", cache=False)
        first, t_first = timed("2. first run, empty cache", cache=cache)
        second, t_second = timed("3. second run, same suite", cache=cache)

        cmd = [sys.executable, "-m", "biasprobe", "run", str(probe), "-m", str(model)]
        cmd += ["--device", "cpu", "--batch-size", str(args.batch_size), "--cache", str(cache)]
        cmd += ["--quiet", "--bootstrap", str(args.bootstrap)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}

        def cli(label: str, out: str) -> float:
            t0 = time.perf_counter()
            subprocess.run([*cmd, "-o", str(tmp / out)], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            dt = time.perf_counter() - t0
            print(f"{label:<44} {dt:8.2f} s")
            return dt

        clear(cache)
        t_cli = cli("4a. CLI run, empty cache (uninterrupted)", "cli-run")
        clear(cache)
        t0 = time.perf_counter()
        child = subprocess.Popen(
            [*cmd, "-o", str(tmp / "killed-run")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        while child.poll() is None and entries(cache / DB_NAME, "pair") < n_pairs / 2:
            time.sleep(0.05)
        if child.poll() is not None and not args.smoke:
            raise SystemExit(f"the run ended before it could be killed: {child.stderr.read()}")
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        else:
            print("(--smoke: the run finished before it could be killed)")
        child.wait()
        t_killed = time.perf_counter() - t0
        done = entries(cache / DB_NAME, "pair")
        print(f"{'4b. CLI run SIGKILLed at ' + f'{done}/{n_pairs} pairs':<44} {t_killed:8.2f} s")
        t_resumed = cli("4c. the same CLI run again (resumes)", "resumed-run")
        import json

        card = json.loads((tmp / "resumed-run" / "results.json").read_text())["models"][0]
        stats = card["info"]["cache"]
        computed, served = stats["by_kind"]["mask"]["misses"], stats["by_kind"]["pair"]["hits"]
        again = {t: pd.read_csv(tmp / "resumed-run" / f"{t}.csv") for t in ("scores", "topk")}
        whole = {t: pd.read_csv(tmp / "cli-run" / f"{t}.csv") for t in ("scores", "topk")}

        for label, r in (("no-cache", plain), ("second", second)):
            for table in ("scores", "topk"):
                if r is not None:
                    pd.testing.assert_frame_equal(
                        getattr(r, table), getattr(first, table), check_exact=True, obj=label
                    )
        for table in ("scores", "topk"):
            pd.testing.assert_frame_equal(again[table], whole[table], check_exact=True)
        print("scores and top-k identical (bit for bit) in every run: yes")
        size = sum(p.stat().st_size for p in cache.iterdir() if p.name.startswith(DB_NAME))
        with sqlite3.connect(cache / DB_NAME) as conn:
            held = conn.execute(
                "SELECT kind, count(*), sum(length(value)) FROM entries GROUP BY kind"
            )
            kinds = {k: (n, b) for k, n, b in held.fetchall()}
        print(
            f"cache files: {size / 1e6:.1f} MB (pages freed by dropped vectors are reused, not "
            f"returned); entries: "
            + ", ".join(f"{k} {n} ({b / 1e6:.1f} MB)" for k, (n, b) in sorted(kinds.items()))
        )
        records = kinds.get("pair", (0, 0))
        if records[0]:
            print(f"  pair records: {records[1] / records[0] / 1e3:.1f} KB per pair")
        print()
        if t_plain is not None:
            print(f"first run (writes the cache) vs --no-cache: {t_first / t_plain:5.2f}×")
        speed = t_first / t_second
        print(f"second run vs first:   {speed:6.1f}× faster (target ≥ 20×)")
        total = (t_killed + t_resumed) / t_cli
        print(f"killed + resumed vs uninterrupted (CLI): {total:5.2f}× (target ≤ 1.1×)")
        print(
            f"  on resume: {served} pairs served from records committed before the kill, "
            f"{computed} of {n_sent} sentences computed"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
