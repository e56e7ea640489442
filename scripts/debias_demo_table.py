"""Print the demo's figures (docs/debias.md) from its run folders: fill-mask quality, the
set-level scores of the fill-mask sets with their CIs, and CrowS-Pairs.

    python scripts/debias_demo_table.py runs/debias-demo
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def main(work: Path) -> None:
    ev = json.loads((work / "eval.json").read_text())
    print("| model | held-out MLM accuracy | perplexity | masked tokens |\n|---|---|---|---|")
    for m, r in ev.items():
        print(f"| {Path(m).name} | {r['accuracy']:.3f} | {r['perplexity']:.1f} | {r['tokens']} |")
    print()
    for m, r in ev.items():
        for s, fills in list(r["fills"].items())[:5]:
            print(f"{Path(m).name}: {s} → {', '.join(fills)}")
    for run in ("gender", "kurita"):
        path = work / run / "summary.csv"
        if not path.is_file():
            continue
        rows = list(csv.DictReader(path.open()))
        models = sorted({r["model"] for r in rows}, key=[r["model"] for r in rows].index)
        for level in ("set", "template"):
            sel = [r for r in rows if r["level"] == level]
            print(f"\n{run}: {level}-level mean [95% CI] (pairs)")
            keys = sorted(
                {(r["key"], r["score"]) for r in sel},
                key=[(r["key"], r["score"]) for r in sel].index,
            )
            print("| key | score | " + " | ".join(models) + " |\n|---|---|" + "---|" * len(models))
            for key, score in keys:
                cells = []
                for m in models:
                    r = next(
                        x
                        for x in sel
                        if x["model"] == m and x["key"] == key and x["score"] == score
                    )
                    ci = (
                        f" [{float(r['ci_low']):.3f}, {float(r['ci_high']):.3f}]"
                        if r["ci_low"] not in ("", "nan")
                        else " (no CI)"
                    )
                    cells.append(f"{float(r['mean']):.3f}{ci} ({r['n']})")
                print(f"| {key} | {score} | " + " | ".join(cells) + " |")
            notes = {r["note"] for r in sel if r.get("note")}
            for n in sorted(notes):
                print(f"  note: {n}")
    print("\nCrowS-Pairs (gender): % pairs where the stereotyping sentence is more likely [95% CI]")
    for m in ("base", "cda", "dropout"):
        path = work / f"crows-{m}" / "summary.csv"
        if path.is_file():
            r = next(csv.DictReader(path.open()))
            print(
                f"| {m} | {float(r['metric']):.1f} [{float(r['ci_low']):.1f}, {float(r['ci_high']):.1f}] | n {r['n']} |"
            )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/debias-demo"))
