#!/usr/bin/env python3
"""Size and open time of the HTML report at scale: 2,000 pairs × 2 models, in headless Chromium.

    .venv/bin/python benchmarks/bench_report.py [--pairs 2000] [--repeat 3] [--keep DIR]

Builds two tiny random BERTs with the real 30,522-token uncased vocabulary (the tiny encoder
makes the forward cheap while every log-prob vector has the real vocabulary size), a probe set
of ``--pairs`` pairs (one template, "The [man|woman] said {word} and then [MASK].", the word
from a plain lexicon of vocabulary words; five target words), runs it on both models, saves the
run folder and writes the report. Printed figures:

* run folder size; report size and what it is made of (plotly.js, vocabulary, the deflated
  arrays, the rest of the page); bytes per (pair, model) beyond plotly.js and the vocabulary;
* time to write the report;
* open time = navigation start → first pair drawn (the page's own ``performance.now()``) in a
  fresh headless Chromium, median of ``--repeat``, and the wall time until the page says it is
  ready; the time to show and lay out the per-pair table's rows when it is scrolled to (they
  wait in a ``<template>`` until then); then the time to show another pair and to switch N.

The previous report (every sentence's full vector embedded, 16-bit) is not rebuilt here: its
figures are the ones recorded in issue 12 on the same 2,000-pair shape (364 MB, 110 s to
open), quoted as such. The open time depends on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))

from report_browser import HeadlessChromium, find_chromium  # noqa: E402

READY = "window.biasprobeReport && (window.biasprobeReport.ready || biasprobeReport.errors.length)"
#: Recorded in issue 12 for the previous report (full vectors embedded), 2,000 pairs × 2 models.
BASELINE = {"size_mb": 364, "open_s": 110}
TARGET = {"size_mb": 25, "open_s": 3}


def vocab_path() -> Path:
    from conftest import REAL_VOCAB, _packaged_vocab

    if REAL_VOCAB.is_file():
        return REAL_VOCAB
    packaged = _packaged_vocab()
    if packaged is None:
        raise SystemExit("the uncased BERT vocab is not available")
    return packaged


def probe_yaml(path: Path, n_pairs: int, vocab: list[str]) -> Path:
    words = [w for w in vocab if w.isalpha() and w.isascii() and len(w) >= 4][:n_pairs]
    if len(words) < n_pairs:
        raise SystemExit(f"only {len(words)} plain words in the vocabulary")
    path.write_text(
        "name: bench-report\nversion: 1\ndescription: report benchmark, synthetic pairs\n"
        "source: benchmarks/bench_report.py\n"
        "orientation: {minoritized: women, normative: men}\ntop_k: 10\n"
        "targets: [nurse, doctor, teacher, engineer, cook]\n"
        f"lexicons:\n  word: [{', '.join(words)}]\n"
        "pairs:\n  - id: said\n"
        '    template: "The [man|woman] said {word} and then [MASK]."\n'
        "    groups: [men, women]\n",
        encoding="utf-8",
    )
    return path


def cold_open(path: Path) -> tuple[float, float, float, list]:
    """(first pair drawn, in ms from navigation start; wall seconds until ready; ms to show
    and lay out the per-pair table's rows once scrolled to; errors)."""
    with HeadlessChromium() as browser:
        t = time.perf_counter()
        browser.navigate(path.resolve().as_uri())
        browser.wait_for(READY, timeout=300)
        wall = time.perf_counter() - t
        ms = browser.evaluate("biasprobeReport.renderMs")
        t = time.perf_counter()
        browser.evaluate("document.querySelector('table.pair-scores').scrollIntoView()")
        browser.wait_for("!document.querySelector('table.pair-scores template')", timeout=300)
        browser.evaluate("document.body.offsetHeight")  # lay the rows out
        tables = (time.perf_counter() - t) * 1000
        errors = browser.errors() + browser.evaluate("biasprobeReport.errors")
        return float(ms or "nan"), wall, float(tables), errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None, help="keep models, run and report here")
    ap.add_argument(
        "--smoke", action="store_true", help="6 pairs, no browser: checks that the script runs"
    )
    args = ap.parse_args()
    if args.smoke:
        args.pairs, args.repeat = 6, 1

    from conftest import build_tiny_bert

    import biasprobe
    from biasprobe.probes import load_probe_set
    from biasprobe.report import write_report
    from biasprobe.results import load_run

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    work.mkdir(parents=True, exist_ok=True)
    vocab = vocab_path()
    models = [str(build_tiny_bert(work / f"bert-{s}", vocab, seed=s)) for s in (0, 1)]
    words = vocab.read_text(encoding="utf-8").splitlines()
    probes = load_probe_set(probe_yaml(work / "bench.yaml", args.pairs, words))
    t = time.perf_counter()
    result = biasprobe.run(probes, models, device="cpu", n_bootstrap=200)
    run_s = time.perf_counter() - t
    run_dir = result.save(work / "run", overwrite=True)
    folder_mb = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file()) / 1e6
    del result
    run = load_run(run_dir)
    n_pairs = run.items["pair_id"].nunique()
    n_models = len(run.models)
    t = time.perf_counter()
    report = write_report([run], work / "report.html", sources=[str(run_dir)])
    write_s = time.perf_counter() - t
    text = report.read_text(encoding="utf-8")
    size = len(text.encode("utf-8"))
    data = json.loads(re.search(r'id="biasprobe-data">(.*?)</script>', text, re.S).group(1))
    from plotly.offline import get_plotlyjs

    plotly_b = len(get_plotlyjs())
    vocab_b = len(json.dumps(data["vocabs"], ensure_ascii=False).encode("utf-8"))
    blob_b = len(data["blob"]["zlib"])
    big = sum(p["big"] for p in data["pairs"])
    per_cell = (size - plotly_b - vocab_b) / (n_pairs * n_models)
    print(f"report: {n_models} models × {n_pairs} pairs, vocabulary {len(data['vocabs'][0])}")
    print(f"  run: {run_s:.0f} s, run folder {folder_mb:.0f} MB")
    print(
        f"  file size            {size / 1e6:7.2f} MB  (target ≤ {TARGET['size_mb']} MB; "
        f"previous report {BASELINE['size_mb']} MB as recorded in issue 12)"
    )
    print(f"    plotly.js          {plotly_b / 1e6:7.2f} MB")
    print(f"    vocabulary         {vocab_b / 1e6:7.2f} MB")
    print(f"    arrays (deflated)  {blob_b / 1e6:7.2f} MB  ({big} pairs with the large views)")
    print(f"    rest of the page   {(size - plotly_b - vocab_b - blob_b) / 1e6:7.2f} MB")
    print(f"  per (pair, model)    {per_cell / 1e3:7.2f} KB  beyond plotly.js and the vocabulary")
    print(f"  write_report         {write_s:7.1f} s")
    if args.smoke or find_chromium() is None:
        why = "--smoke" if args.smoke else "no Chromium found"
        print(f"{why}: open times not measured", file=sys.stderr)
        return 0
    opens = [cold_open(report) for _ in range(args.repeat)]
    ms = [o[0] for o in opens]
    wall = [o[1] for o in opens]
    tables = [o[2] for o in opens]
    errors = [e for o in opens for e in o[3]]
    print(
        f"open time, navigation start → first pair drawn, fresh Chromium, median of "
        f"{args.repeat}: {statistics.median(ms) / 1000:.2f} s (min {min(ms) / 1000:.2f}, max "
        f"{max(ms) / 1000:.2f}); wall until ready {statistics.median(wall):.2f} s "
        f"(target < {TARGET['open_s']} s; previous report {BASELINE['open_s']} s as recorded)"
    )
    print(
        "  scroll to the per-pair table (its rows shown and laid out then): "
        f"{statistics.median(tables) / 1000:.2f} s"
    )
    with HeadlessChromium() as browser:
        browser.navigate(report.resolve().as_uri())
        browser.wait_for(READY, timeout=300)
        steps = {}
        for label, js in (
            ("show pair 2 (default view only)", "biasprobeReport.showPair(2)"),
            ("show pair 0 (first)", "biasprobeReport.showPair(0)"),
            ("N = 1000", "biasprobeReport.setTopN(1000)"),
            ("N = all", "biasprobeReport.setTopN('all')"),
            ("N = 200", "biasprobeReport.setTopN(200)"),
        ):
            t = time.perf_counter()
            browser.evaluate(js, await_promise=True)
            steps[label] = (time.perf_counter() - t) * 1000
        errors += browser.errors() + browser.evaluate("biasprobeReport.errors")
    print("then (ms): " + ", ".join(f"{k}: {v:.0f}" for k, v in steps.items()))
    print(f"console errors: {len(errors)}" + (f" {errors[:3]}" if errors else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
