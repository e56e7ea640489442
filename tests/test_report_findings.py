"""The report's Findings: pairs of arbitrary orientation stay out of the signed and
group-labelled findings, and small values keep two significant digits.

Checked against the probe file and scores.csv read here, not against the renderer."""

from __future__ import annotations

import html as html_mod
import re
import sys
from pathlib import Path

import pytest
import report_fixtures as rf
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from biasprobe.probes import load_probe_set  # noqa: E402
from biasprobe.report.fillmask import render_report  # noqa: E402
from biasprobe.report.pairdata import shifted_tokens  # noqa: E402
from biasprobe.runner import run as run_probes  # noqa: E402

RECORDED = ROOT / "biasprobe" / "data" / "recorded"
MODEL = "bert-large-uncased-whole-word-masking"


def _text(fragment: str) -> str:
    return " ".join(html_mod.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


@pytest.fixture(scope="module")
def quick_start():
    """The README's quick start: pair-names on the BERT-Large recording, CPR left out."""
    probes = load_probe_set(ROOT / "probes" / "pair-names.yaml")
    return run_probes(probes, [f"recorded:{RECORDED / MODEL}"], exclude=["cpr-*"], n_bootstrap=200)


def test_arbitrary_pairs_stay_out_of_signed_and_group_labelled_findings(quick_start):
    run = quick_start
    page = render_report([run])
    findings = page[page.index('<section id="findings">') : page.index('<section id="pairs">')]
    text = _text(findings)
    # which templates the probe file marks as a mere sign convention, read from the YAML
    spec = yaml.safe_load((ROOT / "probes" / "pair-names.yaml").read_text(encoding="utf-8"))
    arbitrary = [p["id"] for p in spec["pairs"] if p.get("arbitrary_orientation")]
    assert arbitrary == ["elsie-lauren", "employed-1908-2018"]
    sc = run.scores[run.scores.model == run.models[0]]
    out = sc[sc.template_id.isin(arbitrary)]
    kept = sc[~sc.template_id.isin(arbitrary)]
    assert len(out) == 3  # elsie-lauren, employed-1908-2018/he, /she
    # said how many were left out, and which
    assert (
        f"{len(out)} pairs of arbitrary orientation ({', '.join(arbitrary)}) left out of the "
        "signed and group-labelled findings." in text
    ), text
    # the most skewed pairs: the largest Jaccard distances among the oriented pairs only (the
    # arbitrary elsie-lauren, at 1.00, used to lead)
    # (ties broken by the larger JS divergence, then the pair id)
    top = kept.sort_values(
        ["jaccard_distance", "js_divergence", "pair_id"], ascending=[False, False, True]
    ).head(3)
    shown = ", ".join(f"{r.pair_id} ({r.jaccard_distance:.2f})" for r in top.itertuples())
    assert f"Most skewed pairs (Jaccard distance): {shown}." in text, text
    listed = text[text.index("Most skewed pairs") : text.index("Fills shifted")]
    assert not any(a in listed for a in arbitrary)
    # the Jaccard headline (every pair: a distance has no direction) names no groups
    headline = findings[findings.index("<p class='headline'>") :]
    headline = headline[: headline.index("</p>")]
    assert f"Across {len(sc)} pairs, the top-10 fills of each pair's two sentences" in headline
    assert "minoritized" not in headline and "normative" not in headline
    # the fills shifted toward each side: over the oriented pairs only
    shifts = shifted_tokens(run, run.models[0], kept.pair_id.tolist())
    for role in ("minoritized", "normative"):
        want = ", ".join(
            f"{t} ({c} pair{'s' if c != 1 else ''}, {s:+.2f})" for t, c, s in shifts[role]
        )
        assert f"Fills shifted toward the {role} side: {want}." in text, (role, text)


@pytest.mark.skipif(not rf.data_available(), reason="recorded PAIR data not found")
def test_small_values_keep_two_significant_digits():
    """A Kurita-sized value (0.00016) does not print as 0.000, nor its interval as
    [-0.000, 0.001]."""
    run = rf.make_run(rf.PAIRS[:2], (rf.BERT,))
    s = run.summary.copy()
    row = s.index[(s.level == "set") & (s.score == "js_divergence")][0]
    s.loc[row, ["mean", "ci_low", "ci_high"]] = [0.00016, -0.00004, 0.00071]
    run.summary = s
    page = render_report([run])
    m = re.search(r'<table class="sortable summary-set">(.*?)</table>', page, re.S)
    cells = [_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", m.group(1))]
    i = cells.index("JS div. (bits)")
    assert cells[i + 1 : i + 3] == ["0.00016", "[-0.000040, 0.000710]"]
