"""Summarise downstream run folders into one Markdown table (as in the README).

One row per (probe set, classifier): the classifier's held-out accuracy (when its run folder
records it), mean Δ P(pos) with its 95% CI, Wilcoxon p, mean |Δ|, the flip rate averaged over
templates (as every set-level rate) and the pooled count of flipped pairs, and n pairs — read
from each run folder's summary.csv, scores.csv and results.json.

Usage: python scripts/downstream_table.py RUN_DIR... [--label PATH=NAME]...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _p(x: float) -> str:
    return "—" if x != x else ("< 0.001" if x < 0.001 else f"{x:.3f}")


def rows(run: Path, labels: dict[str, str]) -> list[str]:
    import pandas as pd

    meta = json.loads((run / "results.json").read_text(encoding="utf-8"))
    summary = pd.read_csv(run / "summary.csv")
    scores = pd.read_csv(run / "scores.csv")
    s = summary[(summary.level == "set") & summary.group.isna()]
    out = []
    for m in meta["models"]:
        name, info = m["name"], m.get("info", {})
        acc = info.get("accuracy")
        acc_s = "—" if acc is None else f"{100 * acc:.1f}%"
        r = {
            k: s[(s.model == name) & (s.score == k)].iloc[0] for k in ("delta", "abs_delta", "flip")
        }
        d = r["delta"]
        flips = scores[scores.model == name]["flip"].astype(bool)
        out.append(
            f"| {meta['probe_set']['name']} | {labels.get(name, Path(name).name)} | {acc_s} | "
            f"{d['mean']:+.3f} [{d.ci_low:+.3f}, {d.ci_high:+.3f}] | {_p(d.p_wilcoxon)} | "
            f"{r['abs_delta']['mean']:.3f} | {100 * r['flip']['mean']:.1f}% | "
            f"{int(flips.sum())} ({100 * flips.mean():.1f}%) | {int(d.n)} |"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--label", action="append", default=[], help="PATH=NAME (repeatable)")
    args = ap.parse_args()
    labels = dict(item.split("=", 1) for item in args.label)
    print(
        "| probe set | classifier | held-out acc. | mean Δ P(pos) [95% CI] | Wilcoxon p "
        "| mean \\|Δ\\| | flip rate (template mean) | flipped pairs | n pairs |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|---:|")
    for run in args.runs:
        print("\n".join(rows(run, labels)))


if __name__ == "__main__":
    main()
