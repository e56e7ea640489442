"""The result cache on the BERT-base-shaped model: a second run, and a run killed half-way.

The model is BERT-base-shaped (``scripts/make_random_bert.py --size base``: 12 layers, hidden
768, the real 30,522-token uncased vocab) with random weights. The suite is lexicon-generated:
women's × men's names zipped, times contexts (``--pairs`` pairs, 2 sentences each).

Measured, one after the other, in one benchmark process (``biasprobe.run`` in process, except
the killed run, which is ``biasprobe run`` in a subprocess so that it can be SIGKILLed):

1. (with ``--no-cache-run``) a ``--no-cache`` run, the cost without any cache;
2. first run with an empty cache (computes everything and writes it);
3. second run of the same suite (served from the cache) — target: ≥ 20× faster than 2;
4. the CLI run killed with SIGKILL once half of the sentences are in the cache (wall time
   from its start to the kill, Python start-up and model load included), then the same run
   resumed in process — target: killed + resumed ≤ 1.1 × the uninterrupted run 2.

A short untimed warm-up run comes first (imports, first kernel calls), so that run 2 is not
charged for them. Every run's scores and top-k lists are compared with run 2's (and run 1's), which must be
identical, bit for bit. Prints the times and the ratios.

Usage: python benchmarks/bench_cache.py [--pairs 1000] [--batch-size 32] [--no-cache-run]
[--keep DIR]
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
NAMES_W = (
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty "
    "Sandra Margaret Ashley Kimberly Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie"
).split()
NAMES_M = (
    "James Robert John Michael David William Richard Joseph Thomas Charles Christopher Daniel "
    "Matthew Anthony Mark Donald Steven Andrew Paul Joshua Kenneth Kevin Brian George Timothy"
).split()
CONTEXTS = [
    "worked as a",
    "was hired as a",
    "wanted to become a",
    "trained to be a",
    "was promoted to",
    "retired as a",
    "is known as a",
    "was employed as a",
    "dreamed of being a",
    "studied to be a",
]
TEMPLATES = [
    "{name} {context} [MASK].",
    "Yesterday {name} {context} [MASK].",
    "Everyone says that {name} {context} [MASK].",
    "In the end, {name} {context} [MASK].",
]


def write_probes(path: Path, n_pairs: int) -> int:
    """A templates × names × contexts suite of about ``n_pairs`` pairs (returns the count)."""
    per_template = len(NAMES_W) * len(CONTEXTS)
    n_templates = min(len(TEMPLATES), max(1, -(-n_pairs // per_template)))
    per = -(-n_pairs // n_templates)
    n_contexts = min(len(CONTEXTS), max(1, -(-per // len(NAMES_W))))
    n_names = min(len(NAMES_W), -(-per // n_contexts))
    lines = [
        "name: bench-cache",
        "version: 1",
        "description: cache benchmark suite",
        "source: synthetic",
        "orientation: {minoritized: women, normative: men}",
        "lexicons:",
        "  name:",
        f"    women: [{', '.join(NAMES_W[:n_names])}]",
        f"    men: [{', '.join(NAMES_M[:n_names])}]",
        f"  context: [{', '.join(repr(c) for c in CONTEXTS[:n_contexts])}]",
        "pairs:",
    ]
    for t, template in enumerate(TEMPLATES[:n_templates]):
        lines += [f"  - id: names-{t}", f'    template: "{template}"', "    groups: [women, men]"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return n_templates * n_names * n_contexts


def mask_entries(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return conn.execute("SELECT count(*) FROM entries WHERE kind = 'mask'").fetchone()[0]
    except sqlite3.Error:
        return 0  # not created yet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=1000, help="suite size (default 1000, max 1000)")
    ap.add_argument("--no-cache-run", action="store_true", help="also time a --no-cache run")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: temp)")
    args = ap.parse_args()

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
                + ["--size", "base"],
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

        clear(cache)
        cmd = [sys.executable, "-m", "biasprobe", "run", str(probe), "-m", str(model)]
        cmd += ["--device", "cpu", "--batch-size", str(args.batch_size), "--cache", str(cache)]
        cmd += ["-o", str(tmp / "killed-run"), "--quiet", "--bootstrap", str(args.bootstrap)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while child.poll() is None and mask_entries(cache / DB_NAME) < n_sent / 2:
            time.sleep(0.05)
        if child.poll() is not None:
            raise SystemExit(f"the run ended before it could be killed: {child.stderr.read()}")
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        t_killed = time.perf_counter() - t0
        done = mask_entries(cache / DB_NAME)
        print(f"{'4a. CLI run SIGKILLed at ' + f'{done}/{n_sent} sentences':<44} {t_killed:8.2f} s")
        resumed, t_resumed = timed("4b. same run resumed", cache=cache)

        for label, r in (("no-cache", plain), ("second", second), ("resumed", resumed)):
            for table in ("scores", "topk"):
                if r is not None:
                    pd.testing.assert_frame_equal(
                        getattr(r, table), getattr(first, table), check_exact=True, obj=label
                    )
        print("scores and top-k identical (bit for bit) in every run: yes")
        size = sum(p.stat().st_size for p in cache.iterdir() if p.name.startswith(DB_NAME))
        print(f"cache size: {size / 1e6:.1f} MB ({size / n_sent / 1e3:.0f} KB per sentence)")
        print()
        if t_plain is not None:
            print(f"first run (writes the cache) vs --no-cache: {t_first / t_plain:5.2f}×")
        speed = t_first / t_second
        print(f"second run vs first:   {speed:6.1f}× faster (target ≥ 20×)")
        total = (t_killed + t_resumed) / t_first
        print(f"killed + resumed vs uninterrupted: {total:5.2f}× (target ≤ 1.1×)")
        computed = resumed.meta["models"][0]["info"]["cache"]["misses"]
        print(
            f"  sentences computed: {done} committed before the kill + {computed} on resume = "
            f"{done + computed} of {n_sent}; restart cost "
            f"{t_killed + t_resumed - t_first:+.1f} s (a new process: imports, model load, "
            "weights' sha256, the batch lost in flight)"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
