#!/usr/bin/env python3
"""Open a biasprobe HTML report in headless Chromium and check that it renders.

    .venv/bin/python scripts/check_report.py report.html --out check/

Waits for the page to draw its first pair, then (unless --quick) shows every pair (the first
--max-pairs of a large report), and every top-N choice the first pair embeds. Fails (exit 1)
when the page does not become ready, when a plot is empty or missing, when a pair shows no
top-k list or no note on its embedded views, when point labels overlap or leave the plot area
(boxes measured in the page), or on any console error or uncaught exception. Writes screenshots to
--out: ``report-full.png`` (the whole page as opened), ``pair-<i>-n<N>.png`` (the pair
section at the default N and at "all"). Prints a JSON summary, including the open time.

Exit codes: 0 = fine, 1 = check failed, 2 = no Chromium found or bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report_browser import BrowserError, HeadlessChromium, find_chromium  # noqa: E402

PLOT_STATE = """(() => {
  const sec = document.querySelector('section.pair:not([hidden])');
  return Array.from(sec.querySelectorAll('div.plot')).map(d => ({
    kind: d.dataset.kind, entry: +d.dataset.entry,
    svg: !!d.querySelector('.main-svg'),
    type: d.data && d.data[0] ? d.data[0].type : null,
    points: d.data && d.data[0] ? d.data[0].x.length : 0,
    labels: ((d.layout && d.layout.annotations) || []).filter(a => a.name === 'label').length,
    labelBoxes: ((d.layout && d.layout.annotations) || []).map((a, i) => [a, i])
      .filter(([a]) => a.name === 'label').map(([a, i]) => {
        const t = d.querySelector(`g.annotation[data-index="${i}"] text`);
        if (!t) return null;
        const r = t.getBoundingClientRect();
        return [r.left, r.top, r.right, r.bottom];
      }),
    area: (() => {
      const r = d.querySelector('.nsewdrag').getBoundingClientRect();
      return [r.left, r.top, r.right, r.bottom];
    })(),
    drawnMarkers: d.querySelectorAll('.scatterlayer .point').length,
    glCanvas: !!d.querySelector('canvas.gl-canvas'),
  }));
})()"""


TOPK_SHOWN = """(() => {
  const sec = document.querySelector('section.pair:not([hidden])');
  return sec.querySelectorAll('.topks tbody tr').length > 0;
})()"""


def label_problems(boxes: list, area: list, tol: float = 1.0) -> list[str]:
    """Labels drawn over each other or outside the plot area (boxes as measured in the page:
    left, top, right, bottom in pixels; ``tol`` pixels of slack)."""
    out = []
    if any(b is None for b in boxes):
        out.append("a label annotation was not drawn")
        boxes = [b for b in boxes if b is not None]
    for i, a in enumerate(boxes):
        if (
            a[0] < area[0] - tol
            or a[1] < area[1] - tol
            or a[2] > area[2] + tol
            or (a[3] > area[3] + tol)
        ):
            out.append(f"label {i} {a} is outside the plot area {area}")
        for j in range(i):
            b = boxes[j]
            if min(a[2], b[2]) - max(a[0], b[0]) > tol and min(a[3], b[3]) - max(a[1], b[1]) > tol:
                out.append(f"labels {j} and {i} overlap: {b} and {a}")
    return out


def check(
    report: Path,
    out_dir: Path | None,
    *,
    quick: bool = False,
    timeout: float = 60.0,
    max_pairs: int | None = None,
    width: int = 1400,
) -> dict:
    """Run the browser check; return a summary dict with ``ok`` and ``problems``."""
    problems: list[str] = []
    summary: dict = {"report": str(report), "size_bytes": report.stat().st_size}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    with HeadlessChromium(width=width, height=1000, timeout=timeout) as browser:
        t0 = time.perf_counter()
        browser.navigate(report.resolve().as_uri())
        try:
            browser.wait_for(
                "window.biasprobeReport && (window.biasprobeReport.ready ||"
                " window.biasprobeReport.errors.length > 0)",
                timeout=timeout,
            )
        except BrowserError as e:
            problems.append(str(e))
            summary.update(ok=False, problems=problems, console=browser.errors())
            return summary
        summary["open_wall_s"] = round(time.perf_counter() - t0, 3)
        state = browser.evaluate(
            "({ready: biasprobeReport.ready, renderMs: biasprobeReport.renderMs,"
            " webgl: biasprobeReport.webgl, errors: biasprobeReport.errors,"
            " pairs: document.querySelectorAll('section.pair').length,"
            " n: biasprobeReport.n})"
        )
        summary["open_ms_in_page"] = state["renderMs"]
        summary["webgl"] = state["webgl"]
        summary["pairs"] = state["pairs"]
        summary["default_n"] = state["n"]
        if not state["ready"]:
            problems.append("page did not become ready")

        def check_plots(where: str) -> list[dict]:
            plots = browser.evaluate(PLOT_STATE)
            if not plots:
                problems.append(f"{where}: no plots in the visible pair")
            for p in plots:
                if not p["svg"] or p["points"] < 1:
                    problems.append(f"{where}: {p['kind']} plot of entry {p['entry']} is empty")
                if p["labels"] < 1:
                    problems.append(
                        f"{where}: {p['kind']} plot of entry {p['entry']} has no labels"
                    )
                problems.extend(
                    f"{where}: {p['kind']} plot of entry {p['entry']}: {issue}"
                    for issue in label_problems(p["labelBoxes"], p["area"])
                )
            return plots

        summary["first_view"] = check_plots("first view")
        if out_dir is not None:
            browser.screenshot(out_dir / "report-full.png", full_page=True)
            browser.screenshot(
                out_dir / "pair-0-default.png", selector="section.pair:not([hidden])"
            )
        if not quick:
            n_options = browser.evaluate(
                "Array.from(document.querySelectorAll('button.topn'))"
                ".filter(b => !b.disabled).map(b => b.dataset.n)"
            )
            summary["views_not_embedded_first_pair"] = browser.evaluate(
                "Array.from(document.querySelectorAll('button.topn'))"
                ".filter(b => b.disabled).map(b => b.dataset.n)"
            )
            timings = {}
            for n in n_options:
                value = "'all'" if n == "all" else n
                t = time.perf_counter()
                browser.evaluate(f"biasprobeReport.setTopN({value})", await_promise=True)
                timings[n] = round((time.perf_counter() - t) * 1000, 1)
                plots = check_plots(f"pair 0, N={n}")
                summary.setdefault("points_by_n", {})[n] = [p["points"] for p in plots]
                if n == "all":
                    summary["all_view_trace_types"] = sorted({p["type"] for p in plots})
                    if out_dir is not None:
                        # scroll the section into view so that WebGL canvases are painted
                        browser.evaluate(
                            "document.querySelector('section.pair:not([hidden])').scrollIntoView()"
                        )
                        time.sleep(0.3)
                        browser.screenshot(
                            out_dir / "pair-0-all.png", selector="section.pair:not([hidden])"
                        )
            summary["set_n_ms"] = timings
            default = summary["default_n"]
            browser.evaluate(f"biasprobeReport.setTopN({json.dumps(default)})", await_promise=True)
            pair_ms = []
            shown = (
                range(state["pairs"])
                if max_pairs is None
                else range(min(state["pairs"], max_pairs))
            )
            for i in shown:
                t = time.perf_counter()
                browser.evaluate(f"biasprobeReport.showPair({i})", await_promise=True)
                pair_ms.append(round((time.perf_counter() - t) * 1000, 1))
                check_plots(f"pair {i}")
                if not browser.evaluate(TOPK_SHOWN):
                    problems.append(f"pair {i}: no top-k list drawn")
                if not browser.evaluate("document.getElementById('views-note').textContent"):
                    problems.append(f"pair {i}: the note on the embedded views is empty")
            summary["show_pair_ms"] = pair_ms
            if out_dir is not None and state["pairs"] > 1:
                browser.screenshot(
                    out_dir / f"pair-{state['pairs'] - 1}-default.png",
                    selector="section.pair:not([hidden])",
                )
            # sorting a table must not throw
            browser.evaluate("document.querySelector('table.pair-scores th:nth-child(9)').click()")
        page_errors = browser.evaluate("biasprobeReport.errors")
        problems += [f"page error: {e}" for e in page_errors]
        problems += [f"console {e}" for e in browser.errors()]
        summary["console"] = browser.console[-20:]
    summary["problems"] = problems
    summary["ok"] = not problems
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="the .html report to check")
    ap.add_argument("--out", type=Path, default=None, help="folder for screenshots")
    ap.add_argument("--quick", action="store_true", help="only check the first view")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the page")
    ap.add_argument("--width", type=int, default=1400, help="viewport width in pixels")
    ap.add_argument(
        "--max-pairs", type=int, default=None, help="show only the first N pairs (large reports)"
    )
    args = ap.parse_args(argv)
    if not args.report.is_file():
        print(f"error: {args.report} does not exist", file=sys.stderr)
        return 2
    if find_chromium() is None:
        print(
            "error: no Chrome or Chromium found; install chromium or set BROWSER_PATH",
            file=sys.stderr,
        )
        return 2
    try:
        summary = check(
            args.report,
            args.out,
            quick=args.quick,
            timeout=args.timeout,
            width=args.width,
            max_pairs=args.max_pairs,
        )
    except BrowserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2, default=str))
    if not summary["ok"]:
        print("report check FAILED:\n  " + "\n  ".join(summary["problems"]), file=sys.stderr)
        return 1
    print("report check passed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
