"""The report renders stored tables and computes nothing: the comparison with the base model
comes from the run's comparison table (``comparison.csv``), and "too few templates for a
set-level interval" from the ``templates`` column of ``summary.csv``, not from note text."""

from __future__ import annotations

import ast
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import report_fixtures as rf

from biasprobe.comparisons import fill_mask_comparison
from biasprobe.report import render_report, report_html

REPO = Path(__file__).resolve().parents[1]
VOCAB = ["[PAD]", "[UNK]", "[MASK]", *(f"w{i}" for i in range(40))]
#: Computations a renderer must not run while rendering.
FORBIDDEN = {
    "spearmanr",
    "spearman_fixed",
    "compare_to_base",
    "paired_delta",
    "bootstrap_ci",
    "two_stage_bootstrap",
    "cluster_bootstrap",
    "clustered_sign_flip",
    "unit_inference",
    "wilcoxon",
    "binomtest",
    "summarize",
    "summarize_downstream",
    "compare_models",
}


def _now_free(page: str) -> str:
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "NOW", page)


def _two_model_run():
    pairs = [
        (f"p{i}", ("she", "he"), (f"she {i} was a [MASK].", f"he {i} was a [MASK]."))
        for i in range(8)
    ]
    run = rf.make_tiny_run(pairs, VOCAB, models=("base-m", "other-m"), top_k=5)
    run.items["template_id"] = [f"t{i % 4}" for i in range(len(run.items) // 2) for _ in (0, 1)]
    for name in ("scores", "topk"):
        t = getattr(run, name)
        t["template_id"] = t["pair_id"].map(lambda p: f"t{int(p[1:]) % 4}")
    return run


def _stored(run) -> pd.DataFrame:
    """The comparison table as the engine stores it and a loader reads it back (CSV)."""
    settings = run.meta["settings"]
    table = fill_mask_comparison(
        run.scores,
        set_name=run.meta["probe_set"]["name"],
        tokens=run,
        n_resamples=int(settings.get("bootstrap_resamples", 2000)),
        confidence=float(settings.get("confidence", 0.95)),
        seed=int(settings.get("seed", 0)),
    )
    return pd.read_csv(io.StringIO(table.to_csv(index=False)), keep_default_na=True)


def test_the_page_shows_the_stored_comparison_and_computes_none(monkeypatch):
    run = _two_model_run()
    computed = render_report([run])  # a run without a stored table: made by comparisons
    run.comparison = _stored(run)

    def refuse(*args, **kwargs):
        raise AssertionError("the report computed a comparison while rendering")

    import scipy.stats

    import biasprobe.comparisons
    import biasprobe.report.basecompare
    import biasprobe.scores

    monkeypatch.setattr(biasprobe.report.basecompare, "fill_mask_comparison", refuse)
    monkeypatch.setattr(biasprobe.comparisons, "fill_mask_comparison", refuse)
    monkeypatch.setattr(biasprobe.scores, "compare_to_base", refuse)
    monkeypatch.setattr(biasprobe.scores, "spearman_fixed", refuse)
    monkeypatch.setattr(scipy.stats, "spearmanr", refuse)
    stored = render_report([run])
    assert _now_free(stored) == _now_free(computed)
    assert 'id="comparison"' in stored

    # the numbers are the table's: change one and the page changes with it
    c = run.comparison
    row = (c["level"] == "set") & (c["score"] == "jaccard_distance")
    assert row.sum() == 1
    c.loc[row, ["change", "ci_low", "ci_high"]] = [0.4321, 0.1234, 0.5678]
    edited = render_report([run])
    assert "+0.432" in edited and "[+0.123, +0.568]" in edited
    pair = (c["level"] == "pair") & (c["key"] == "p3") & (c["score"] == "rho_vocab_b")
    c.loc[pair, ["rho", "note"]] = [np.nan, "stored without vectors"]
    assert "n/a (stored without vectors)" in render_report([run])


def test_no_renderer_calls_a_statistic():
    """No report module names a bootstrap, test or correlation (the fallback for run folders
    without a stored comparison calls biasprobe.comparisons, the engine's own function)."""
    found = []
    for path in sorted((REPO / "biasprobe" / "report").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
            if isinstance(node, ast.alias):
                name = node.name
            if name in FORBIDDEN:
                found.append(f"{path.name}:{node.lineno}: {name}")
    assert found == []


def _one_model_run(templates: int):
    pairs = [
        (f"p{i}", ("she", "he"), (f"she {i} is [MASK].", f"he {i} is [MASK]."))
        for i in range(2 * templates)
    ]
    run = rf.make_tiny_run(pairs, VOCAB, models=("m",), top_k=5)
    return run


def test_too_few_templates_is_read_from_the_templates_column():
    """The set row says why it has no interval from its ``templates`` count, whatever its
    note says; a note that mentions "too few" does not make a row with an interval look so."""
    run = _one_model_run(2)
    s = run.summary
    row = (s["level"] == "set") & (s["score"] == "jaccard_distance")
    assert row.sum() == 1 and np.isnan(s.loc[row, "ci_low"].iloc[0])
    s.loc[row, "templates"] = 3
    s.loc[row, "note"] = "no interval"  # not the wording of the statistics module
    page = render_report([run])
    assert "Too few templates (3; needs 6) for a set-level interval or test" in page

    # an interval with a note that happens to say "too few": no such sentence
    s.loc[row, ["ci_low", "ci_high", "templates"]] = [0.1, 0.9, 12]
    s.loc[row, "note"] = "too few pairs in one template (needs 2)"
    assert "Too few templates" not in render_report([run])


def test_counterfactual_too_few_templates_from_the_templates_column():
    from test_report_dispatch import _counterfactual_run

    run = _counterfactual_run()
    s = run.summary
    sets = s["level"] == "set"
    assert (s.loc[sets, "templates"] == 3).all()
    s.loc[sets, "note"] = ""
    page = report_html([run])
    assert "Too few templates (3; needs 6) for a set-level interval or test" in page
    assert re.search(r"<details open><summary>Per template", page)
