"""Scale: time, peak memory and storage of ``biasprobe run`` on lexicon-generated suites.

Each size runs in a fresh Python process (``biasprobe.run`` then ``RunResult.save``, the
result cache off so that every sentence is computed and nothing is written to the user's
cache), which reports its wall time and its peak resident memory (``ru_maxrss``, model weights
and everything else included). The run folder's log-prob store is measured in bytes per pair
and model.

The suite: ``T`` templates ("{name} <context> [MASK]." with a different context each), names
zipped in pairs (women's × men's: every name is a word of the uncased BERT vocabulary) and an
``{occupation}`` lexicon, so that ``pairs = T × name pairs × occupations``; two target words
per pair. Models: ``--model tiny`` (a random 2-layer BERT with the real 30,522-token
vocabulary, built here: every per-sentence vector has BERT-base's size, the forward pass is
cheap), ``--model base`` (random weights of BERT-base's shape, ``scripts/make_random_bert.py
--size base``) or a checkpoint folder.

Usage: python benchmarks/bench_scale.py [--model tiny|base|DIR] [--sizes 1000 10000 100000]
[--store topn|full] [--store-top-n N] [--batch-size 32] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VOCAB = REPO / "biasprobe" / "data" / "vocab" / "bert-base-uncased" / "vocab.txt"
from suites import CONTEXTS  # noqa: E402 (benchmarks/suites.py, run as a script)

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import biasprobe
from biasprobe.probes import load_probe_set
probe, model, out, store, top_n, batch = sys.argv[1:7]
ps = load_probe_set(probe)
t1 = time.perf_counter()
result = biasprobe.run(ps, [model], cache=False, store=store, store_top_n=int(top_n),
                       batch_size=int(batch), device="cpu", n_bootstrap=2000)
t2 = time.perf_counter()
result.save(out)
t3 = time.perf_counter()
print(json.dumps({"pairs": len(ps.items), "load_s": t1 - t0, "run_s": t2 - t1,
                  "save_s": t3 - t2, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def vocab_words(n: int, skip: set[str]) -> list[str]:
    """``n`` distinct lower-case whole words of the BERT vocabulary (no ## pieces)."""
    out = []
    for line in VOCAB.read_text(encoding="utf-8").splitlines()[2000:]:
        if line.isalpha() and line.isascii() and len(line) > 3 and line not in skip:
            out.append(line)
            if len(out) == n:
                return out
    raise SystemExit(f"the vocabulary has fewer than {n} usable words")


def write_probes(path: Path, n_pairs: int) -> int:
    """A templates × name pairs × occupations suite of exactly ``n_pairs`` pairs when it
    factors (else the nearest below); returns the number of pairs."""
    templates = min(len(CONTEXTS), max(1, n_pairs // 1000))
    per = n_pairs // templates
    n_names = 20 if per >= 20 else 1
    n_occ = max(1, per // n_names)
    words = vocab_words(2 * n_names + n_occ, {"he", "she"})
    women, men, occ = words[:n_names], words[n_names : 2 * n_names], words[2 * n_names :]
    lines = [
        "name: bench-scale",
        "version: 1",
        "description: scale benchmark suite (random words of the vocabulary)",
        "source: synthetic",
        "orientation: {minoritized: women, normative: men}",
        "targets: [he, she]",
        "lexicons:",
        "  name:",
        f"    women: [{', '.join(women)}]",
        f"    men: [{', '.join(men)}]",
        f"  occupation: [{', '.join(occ)}]",
        "pairs:",
    ]
    for t in range(templates):
        lines += [
            f"  - id: t{t}",
            f'    template: "{{name}} {CONTEXTS[t]} {{occupation}} and [MASK]."',
            "    groups: [women, men]",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return templates * n_names * n_occ


def make_model(kind: str, work: Path) -> Path:
    if kind not in ("tiny", "base"):
        return Path(kind)
    folder = work / f"random-bert-{kind}"
    if not folder.exists():
        subprocess.run(
            [sys.executable, str(REPO / "scripts" / "make_random_bert.py"), str(folder)]
            + ["--size", kind],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--store", default="topn", choices=["topn", "full"])
    ap.add_argument("--store-top-n", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--keep", type=Path, help="keep the suites and run folders here")
    ap.add_argument("--smoke", action="store_true", help="20 pairs on the tiny model: seconds")
    args = ap.parse_args()
    if args.smoke:
        args.model, args.sizes = "tiny", [20]
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        model = make_model(args.model, work)
        print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, model {model}")
        print(
            f"store {args.store}" + (f" (N = {args.store_top_n})" if args.store == "topn" else "")
        )
        print(f"{'pairs':>8} {'time':>8} {'s/1k':>6} {'peak RSS':>9} {'store/pair':>10}")
        for size in args.sizes:
            probe = work / f"suite-{size}.yaml"
            n = write_probes(probe, size)
            out = work / f"run-{size}"
            shutil.rmtree(out, ignore_errors=True)
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            t0 = time.perf_counter()
            child = subprocess.run(
                [sys.executable, "-c", CHILD, str(probe), str(model), str(out), args.store]
                + [str(args.store_top_n), str(args.batch_size)],
                capture_output=True,
                text=True,
                env=env,
            )
            wall = time.perf_counter() - t0
            if child.returncode:
                raise SystemExit(child.stderr[-3000:])
            stats = json.loads(child.stdout.strip().splitlines()[-1])
            stored = sum(f.stat().st_size for f in (out / "logprobs").rglob("*") if f.is_file())
            folder = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
            print(
                f"{n:>8,} {wall:>7.0f}s {wall / n * 1000:>6.1f} "
                f"{stats['peak_rss_kb'] / 1024**2:>7.2f} GiB {stored / n / 1024:>7.1f} KiB"
                f"   (run {stats['run_s']:.0f} s, save {stats['save_s']:.1f} s, "
                f"folder {folder / 1024**2:.0f} MB)",
                flush=True,
            )
            if args.keep is None:
                shutil.rmtree(out, ignore_errors=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
