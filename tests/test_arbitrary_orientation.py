"""Pairs whose orientation is only a sign convention (two names, two years) say so in the run
folder and on the report page, not only on the terminal."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from biasprobe.cli import app

REPO = Path(__file__).resolve().parent.parent
BERT_LARGE = "recorded:bert-large-uncased-whole-word-masking"


def test_arbitrary_orientation_is_recorded_and_noted_on_the_page(tmp_path: Path):
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app,
        ["run", str(REPO / "probes" / "pair-names.yaml"), "-m", BERT_LARGE, "-x", "cpr-*",
         "-o", str(out), "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "results.json").read_text(encoding="utf-8"))
    arbitrary = meta["probe_set"]["arbitrary_orientation"]
    assert "elsie-lauren" in arbitrary and "jim-jane" not in arbitrary

    page = tmp_path / "page.html"
    res = CliRunner().invoke(
        app,
        ["report", str(out), "-o", str(page), "--pairs", "elsie-lauren", "--pairs", "jim-jane"],
    )
    assert res.exit_code == 0, res.output
    html = page.read_text(encoding="utf-8")
    note = "The orientation of this pair is arbitrary"
    sections = {}
    for chunk in html.split('<section class="pair')[1:]:
        body = chunk[: chunk.index("</section>")]
        sections[body[body.index("<h3>") + 4 : body.index("<small>")].strip()] = body
    labels = {label.split(" ")[0]: body for label, body in sections.items()}
    assert set(labels) >= {"jim-jane", "elsie-lauren", "employed-1908-2018/he"}, list(labels)
    for label, body in labels.items():  # chosen (full) and other (light) sections alike
        template = label.split("/")[0]
        assert (note in body) == (template in arbitrary), label
    assert "minoritized*" in labels["elsie-lauren"] and "minoritized*" not in labels["jim-jane"]
