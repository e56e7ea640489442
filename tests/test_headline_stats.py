"""What a reader sees of the set-level numbers: arbitrary-orientation pairs out of signed set
rows, Kurita in the plain repr, small values with significant digits."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from biasprobe.scores import summarize

REPO = Path(__file__).resolve().parents[1]


def test_arbitrary_orientation_pairs_stay_out_of_signed_set_rows() -> None:
    rows = []
    for t in range(7):
        for j in range(3):
            rows.append(
                {
                    "model": "m",
                    "pair_id": f"t{t}/{j}",
                    "template_id": f"t{t}",
                    "target_gap_mean": 1.0 + t + j if t < 6 else -50.0,
                    "jaccard_distance": 0.5,
                }
            )
    scores = pd.DataFrame(rows)
    s = summarize(
        scores, set_name="x", score_names=("target_gap_mean", "jaccard_distance"), arbitrary={"t6"}
    )
    gap = s[(s.level == "set") & (s.score == "target_gap_mean")].iloc[0]
    oriented = scores[scores.template_id != "t6"]
    assert gap["mean"] == pytest.approx(
        oriented.groupby("template_id").target_gap_mean.mean().mean()
    )
    assert gap["n"] == 18 and gap["templates"] == 6
    assert "3 pairs of arbitrary orientation left out" in gap["note"]
    # distances do not depend on orientation: every pair counts
    dist = s[(s.level == "set") & (s.score == "jaccard_distance")].iloc[0]
    assert dist["n"] == 21 and "arbitrary" not in dist["note"]
    # the template row of the arbitrary pair is still there
    assert ((s.level == "template") & (s.key == "t6") & (s.score == "target_gap_mean")).any()


def test_repr_shows_kurita_and_small_values_with_significant_digits(tiny_bert: Path) -> None:
    from biasprobe.notebook import _num, run_result_repr
    from biasprobe.probes import load_probe_set
    from biasprobe.runner import run

    assert _num(0.00042, 3) == "0.00042" and _num(-0.00031, 3) == "-0.00031"
    assert _num(0.0, 3) == "0.000" and _num(0.25, 3) == "0.250"
    result = run(
        load_probe_set(REPO / "probes" / "kurita-gender.yaml"),
        [str(tiny_bert)],
        device="cpu",
        n_bootstrap=100,
        cache=None,
    )
    text = repr(result)
    assert "kurita_bias" in text
    k = result.summary
    k = k[(k.level == "set") & (k.score == "kurita_bias")].iloc[0]
    assert _num(k["mean"], 3) in text
    assert math.isnan(k["ci_low"]) and "n/a" in run_result_repr(result)
