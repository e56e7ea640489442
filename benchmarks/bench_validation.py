"""Validation time of large and hostile probe files (``biasprobe validate`` without a model).

Builds each file in a temporary folder, then loads it with :func:`biasprobe.load_probe_set` in a
fresh interpreter (so one slow case cannot slow the next, and a hang is cut off at
``--timeout`` seconds) and prints the seconds each took and what the loader said:

    PYTHONPATH=$PWD python benchmarks/bench_validation.py [--timeout 120] [--smoke] [CASE ...]

The cases are the ones of the hardening issue: long chains of ``[a|b]`` alternations, many
one-word lexicons, many targets, many unknown keys, many duplicate entries, one big flow
mapping, and a small file whose sentences would expand to ~80 GB; plus a large valid file for
scale. Timings depend on the machine and its load: compare figures from one run only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HEADER = """\
name: bench
version: 1
description: validation benchmark
source: benchmarks/bench_validation.py
"""
PAIR = """\
pairs:
  - id: a
    template: "[She|He] is a [MASK]."
    groups: [women, men]
    minoritized: women
"""


def alternations(n: int) -> str:
    """One template of ``n`` contrast alternations (5 bytes each)."""
    template = "[a|b]" * n + " [MASK]."
    return (
        HEADER
        + f'pairs:\n  - id: a\n    template: "{template}"\n    groups: [x, y]\n    minoritized: x\n'
    )


def lexicons(n: int) -> str:
    """``n`` one-word lexicons, one of them used."""
    body = "".join(f"  l{i}: [w{i}]\n" for i in range(n))
    pair = PAIR.replace("is a [MASK].", "is a {l0} [MASK].")
    return HEADER + "lexicons:\n" + body + pair


def targets(n: int) -> str:
    """A set-level list of ``n`` distinct targets."""
    return HEADER + "targets:\n" + "".join(f"  - t{i}\n" for i in range(n)) + PAIR


def unknown_keys(n: int) -> str:
    """``n`` unknown top-level keys (each a problem)."""
    return HEADER + "".join(f"colour{i}: 1\n" for i in range(n)) + PAIR


def duplicates(n: int) -> str:
    """``n`` pair entries with the same id (each a problem)."""
    entry = PAIR.split("\n", 1)[1]
    return HEADER + "pairs:\n" + entry * n


def flow_mapping(size: int) -> str:
    """One flow mapping of lexicons of about ``size`` bytes, on one line."""
    entries = []
    total = 0
    i = 0
    while total < size:
        entry = f"l{i}: [w{i}]"
        entries.append(entry)
        total += len(entry) + 2
        i += 1
    pair = PAIR.replace("is a [MASK].", "is a {l0} [MASK].")
    return HEADER + "lexicons: {" + ", ".join(entries) + "}\n" + pair


def expansion_bomb() -> str:
    """112 KB: a 100 KB lexicon word used 200 times, times a 2,000-word lexicon (~80 GB)."""
    template = "[She|He] {many} " + "{big} " * 200 + "[MASK]."
    many = ", ".join(f"m{i}" for i in range(2000))
    return (
        HEADER
        + f"lexicons:\n  big: [{'x' * 100_000}]\n  many: [{many}]\n"
        + f'pairs:\n  - id: a\n    template: "{template}"\n    groups: [women, men]\n'
        + "    minoritized: women\n"
    )


def valid_pairs(n: int) -> str:
    """``n`` valid pair entries, each expanded over a 5-word lexicon (5n pairs)."""
    lex = "lexicons:\n  job: [nurse, doctor, pilot, cook, clerk]\n"
    entries = "".join(
        f'  - id: p{i}\n    template: "[She|He] ({i}) is a {{job}} and a [MASK]."\n'
        "    groups: [women, men]\n    minoritized: women\n"
        for i in range(n)
    )
    return HEADER + lex + "pairs:\n" + entries


def dense_list(n: int) -> str:
    """A flow list of ``n`` copies of one word (2 bytes a node; each copy is a problem)."""
    return HEADER + "models: [" + "a," * n + "]\n" + PAIR


CASES: dict[str, Callable[[], str]] = {
    # the cases
    "alternations-20k": lambda: alternations(20_000),
    "alternations-40k": lambda: alternations(40_000),
    "lexicons-200k": lambda: lexicons(200_000),
    "targets-500k": lambda: targets(500_000),
    "unknown-keys-300k": lambda: unknown_keys(300_000),
    "duplicate-ids-100k": lambda: duplicates(100_000),
    "flow-mapping-7.8MB": lambda: flow_mapping(7_800_000),
    "expansion-80GB": expansion_bomb,
    # the same shapes just under the 1 MB limit, and the densest file (most nodes a byte)
    "alternations-190k": lambda: alternations(190_000),
    "lexicons-50k": lambda: lexicons(50_000),
    "targets-85k": lambda: targets(85_000),
    "unknown-keys-64k": lambda: unknown_keys(64_000),
    "duplicate-ids-10k": lambda: duplicates(10_000),
    "flow-mapping-1MB": lambda: flow_mapping(990_000),
    "dense-list-1MB": lambda: dense_list(490_000),
    "valid-8k-entries": lambda: valid_pairs(8_000),
}

_CHILD = """
import resource, sys, time
# a case that would expand without bound must not take the machine's memory with it
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
from biasprobe.errors import ProbeSetError
from biasprobe.probes import load_probe_set
t = time.perf_counter()
try:
    ps = load_probe_set(sys.argv[1])
    what = f"valid, {len(ps.items)} pairs"
except ProbeSetError as e:
    first = e.problems[0]
    what = f"refused: {str(first)[len(sys.argv[1]):][:110]}"
except MemoryError:
    what = "MemoryError"
print(f"{time.perf_counter() - t:.2f}\\t{what}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", help=f"cases to run (default all): {', '.join(CASES)}")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    parser.add_argument(
        "--smoke", action="store_true", help="three small cases, seconds in all (CI's check)"
    )
    args = parser.parse_args()
    if args.smoke:
        CASES["alternations-2k"] = lambda: alternations(2_000)
        CASES["lexicons-2k"] = lambda: lexicons(2_000)
    names = args.cases or (
        ["alternations-2k", "lexicons-2k", "expansion-80GB"] if args.smoke else list(CASES)
    )
    print(f"{'case':<22}{'size':>10}{'seconds':>10}  result")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(CASES[name](), encoding="utf-8")
            size = f"{path.stat().st_size / 1000:,.0f} KB"
            start = time.perf_counter()
            try:
                out = subprocess.run(  # cwd: biasprobe comes from PYTHONPATH, not from here
                    [sys.executable, "-c", _CHILD, str(path)],
                    capture_output=True,
                    text=True,
                    timeout=args.timeout,
                    cwd=tmp,
                )
                if out.returncode != 0:
                    tail = (out.stderr.strip().splitlines() or ["?"])[-1][:80]
                    took = time.perf_counter() - start
                    print(f"{name:<22}{size:>10}{took:>10.2f}  crashed: {tail}", flush=True)
                    continue
                seconds, what = out.stdout.strip().split("\t", 1)
                print(f"{name:<22}{size:>10}{float(seconds):>10.2f}  {what}", flush=True)
            except subprocess.TimeoutExpired:
                print(
                    f"{name:<22}{size:>10}{'>' + str(int(args.timeout)):>10}  cut off", flush=True
                )


if __name__ == "__main__":
    main()
