#!/usr/bin/env python3
"""Size and open time of the HTML report for 2 models × 10 pairs, in headless Chromium.

    .venv/bin/python benchmarks/bench_report.py [--repeat 5] [--keep DIR]

The report is built from the recorded BERT logits in ``../shared/data/pair-fill-in-the-blank``
(6 recorded pairs plus 4 synthetic variants, and a synthetic second model; see
``tests/report_fixtures.py``). Printed figures:

* file size, and how much of it is plotly.js, the vocabulary and the log-prob arrays;
* time to write the report;
* open time = navigation start → first pair drawn (the page's own ``performance.now()``), in a
  fresh Chromium each time ("cold") and on reload in the same Chromium ("warm"), median of
  ``--repeat`` runs, next to the same figure for a page holding only plotly.js and one empty
  plot — the share of the open time the report itself adds;
* time to switch N (30, 200, 1000, all) and to switch pairs.

The open time depends on the machine's load; compare the ratio to the plotly-only page.
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

from biasprobe.report import write_report  # noqa: E402

READY = "window.biasprobeReport && window.biasprobeReport.ready"


def plotly_only_page(path: Path) -> Path:
    """A page with plotly.js inlined and one small plot: the floor for any offline report."""
    from plotly.offline import get_plotlyjs

    path.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><div id='p'></div>"
        f"<script>{get_plotlyjs()}</script><script>"
        "window.biasprobeReport = {ready: false};"
        "Plotly.newPlot('p', [{x: [1, 2], y: [2, 1], type: 'scatter'}]).then(() => {"
        "biasprobeReport.renderMs = performance.now(); biasprobeReport.ready = true; });"
        "</script></body></html>",
        encoding="utf-8",
    )
    return path


def open_ms(browser: HeadlessChromium, path: Path) -> float:
    browser.navigate("about:blank")
    browser.wait_for("document.readyState === 'complete'")
    browser.navigate(path.resolve().as_uri())
    browser.wait_for(READY, timeout=60)
    return float(browser.evaluate("biasprobeReport.renderMs"))


def cold_open_ms(path: Path) -> float:
    with HeadlessChromium() as browser:
        browser.navigate(path.resolve().as_uri())
        browser.wait_for(READY, timeout=60)
        return float(browser.evaluate("biasprobeReport.renderMs"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", type=Path, default=None, help="keep the report in this folder")
    args = ap.parse_args()

    import report_fixtures as rf

    if not rf.data_available():
        print(f"recorded data not found in {rf.DATA_DIR}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-report-"))
    out_dir = args.keep or tmp
    out_dir.mkdir(parents=True, exist_ok=True)
    run = rf.make_run(extra_pairs=4)
    n_pairs = run.items["pair_id"].nunique()
    t = time.perf_counter()
    report = write_report([run], out_dir / "report-2x10.html")
    write_s = time.perf_counter() - t
    text = report.read_text(encoding="utf-8")
    size = len(text.encode("utf-8"))
    payload = re.search(r'id="biasprobe-data">(.*?)</script>', text, re.S).group(1)
    data = json.loads(payload)
    from plotly.offline import get_plotlyjs

    vec = sum(len(v["q"]) for e in data["entries"] for v in e["vectors"])
    cells = sum(
        len(c[k])
        for p in data["pairs"]
        for c in p["cells"]
        if c
        for k in ("ids", "ra", "rb", "la", "lb")
    )
    print(
        f"report: {len(run.models)} models × {n_pairs} pairs, vocabulary {len(data['vocabs'][0])}"
    )
    print(f"  file size            {size / 1e6:7.2f} MB  (limit 10 MB)")
    print(f"    plotly.js          {len(get_plotlyjs()) / 1e6:7.2f} MB")
    print(f"    vocabulary         {len(json.dumps(data['vocabs'])) / 1e6:7.2f} MB")
    print(
        f"    16-bit vectors     {vec / 1e6:7.2f} MB  ({sum(len(e['vectors']) for e in data['entries'])} sentences)"
    )
    print(f"    exact top-1000     {cells / 1e6:7.2f} MB")
    print(f"  write_report         {write_s:7.2f} s")

    if find_chromium() is None:
        print("no Chromium found: open times not measured", file=sys.stderr)
        return 0
    floor = plotly_only_page(out_dir / "plotly-only.html")
    cold = [cold_open_ms(report) for _ in range(args.repeat)]
    cold_floor = [cold_open_ms(floor) for _ in range(args.repeat)]
    with HeadlessChromium() as browser:
        open_ms(browser, report)  # first load in this browser, not counted
        warm = [open_ms(browser, report) for _ in range(args.repeat)]
        open_ms(browser, floor)
        warm_floor = [open_ms(browser, floor) for _ in range(args.repeat)]
        open_ms(browser, report)
        switch = {}
        for n in ("30", "200", "1000", "'all'", "200"):
            t = time.perf_counter()
            browser.evaluate(f"biasprobeReport.setTopN({n})", await_promise=True)
            switch[n.strip("'")] = (time.perf_counter() - t) * 1000
        pair_ms = []
        for i in range(1, n_pairs):
            t = time.perf_counter()
            browser.evaluate(f"biasprobeReport.showPair({i})", await_promise=True)
            pair_ms.append((time.perf_counter() - t) * 1000)
        errors = browser.errors() + browser.evaluate("biasprobeReport.errors")

    def med(v: list[float]) -> str:
        return f"{statistics.median(v) / 1000:6.2f} s (min {min(v) / 1000:.2f}, max {max(v) / 1000:.2f})"

    print(f"open time, navigation start → first pair drawn, median of {args.repeat}:")
    print(f"  cold (fresh Chromium)    report {med(cold)}")
    print(f"                      plotly only {med(cold_floor)}")
    print(f"  warm (reload)            report {med(warm)}")
    print(f"                      plotly only {med(warm_floor)}")
    print(
        "  report / plotly-only    cold "
        f"{statistics.median(cold) / statistics.median(cold_floor):.2f}×, warm "
        f"{statistics.median(warm) / statistics.median(warm_floor):.2f}×"
    )
    print("switch N (ms): " + ", ".join(f"{k}: {v:.0f}" for k, v in switch.items()))
    print(f"switch pair (ms): median {statistics.median(pair_ms):.0f}, max {max(pair_ms):.0f}")
    print(f"console errors: {len(errors)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
