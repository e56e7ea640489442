"""biasprobe.views.terminal: the terminal tables of every kind of run, printed into a recording
console; the values are read back and checked against the result's own tables; hostile text is
escaped; every table fits 80 columns. biasprobe.display: the repr registry."""

from __future__ import annotations

import io
import math
import re

import pandas as pd
import pytest
import report_fixtures as rf
from rich.console import Console
from test_report_dispatch import _counterfactual_run

from biasprobe import display
from biasprobe.views import terminal
from biasprobe.views.text import display_names, markup, safe_text

VOCAB = ["[PAD]", "[UNK]", "[MASK]", *(f"w{i}" for i in range(40))]
EVIL = "\x1b]2;pwned\x07[bold]x[/bold]"


def _printed(fn, *args, **kwargs) -> str:
    buf = io.StringIO()
    fn(*args, console=Console(width=80, file=buf, highlight=False), **kwargs)
    return buf.getvalue()


def _fill_mask(models=("base-m", "other-m")):
    pairs = [
        (f"p{i}", ("she", "he"), (f"she {i} is [MASK].", f"he {i} is [MASK].")) for i in range(6)
    ]
    return rf.make_tiny_run(pairs, VOCAB, models=models, top_k=5)


def _fits(text: str) -> None:
    assert max(len(line) for line in text.splitlines()) <= 80


def test_text_helpers_escape_terminal_controls_and_markup():
    assert safe_text("a\x1b[31mb\u202ec") == "a\\x1b[31mb\\u202ec"
    assert markup("[bold]x") == "\\[bold]x"
    assert display_names(["/tmp/a/model", "/tmp/b/model", "recorded:bert"]) == {
        "/tmp/a/model": "a/model",
        "/tmp/b/model": "b/model",
        "recorded:bert": "recorded:bert",
    }


def test_print_summary_shows_each_set_row_of_the_summary():
    run = _fill_mask()
    text = _printed(terminal.print_summary, run)
    _fits(text)
    sets = run.summary[run.summary["level"] == "set"]
    base = sets[sets["model"] == "base-m"].set_index("score")["mean"]
    for r in sets.to_dict("records"):
        block = text.split("model other-m")[r["model"] == "other-m"]
        line = next(x for x in block.splitlines() if f" {r['score']} " in x and "│" in x)
        shown = f"{r['mean']:.3f}" if abs(r["mean"]) >= 0.01 or r["mean"] == 0 else None
        if shown:
            assert shown in line
        if r["model"] == "other-m" and not math.isnan(r["mean"]):
            assert f"{r['mean'] - base[r['score']]:+.3f}" in line
        assert re.search(rf"│\s+{int(r['n'])}\s+│", line)
    assert "model base-m" in text and "model other-m" in text


def test_print_topk_tables_lists_the_stored_ranks_and_escapes_tokens():
    run = _fill_mask(models=("m",))
    run.topk.loc[run.topk["rank"] == 1, "token"] = EVIL
    text = _printed(terminal.print_topk_tables, run, limit=1)
    _fits(text)
    assert "\x1b" not in text and "\\x1b" in text and "pwned" in text
    assert "[bold]" in text  # rich markup shown as text, not applied
    first = run.topk[(run.topk["pair_id"] == "p0") & (run.topk["side"] == "A")].sort_values("rank")
    for lp in first["logprob"].head(5):
        assert f"{lp:.2f}" in text
    assert "more pair tables in topk.csv" in text


def test_print_models_names_the_shortened_paths():
    run = _fill_mask(models=("/tmp/x/one", "/tmp/y/two"))
    assert (
        _printed(terminal.print_models, run).strip() == "models: one = /tmp/x/one; two = /tmp/y/two"
    )


def _crows_summary(model_col: bool):
    rows = []
    for model, shift in (("m-a", 0.0), ("m-b", 10.0)):
        for key, n, metric in (("all", 20, 55.0), ("gender", 8, 62.5)):
            rows.append(
                {
                    "model": model,
                    "level": "overall" if key == "all" else "bias_type",
                    "key": key,
                    "n": n,
                    "n_tie": 1,
                    "n_skipped": 0,
                    "metric": metric + shift,
                    "ci_low": metric + shift - 20,
                    "ci_high": metric + shift + 15,
                    "p_value": 0.5,
                    "p_holm": 0.0004,
                    "stereo_n": n - 3,
                    "stereo_pct": 50.0,
                    "antistereo_n": 3,
                    "antistereo_pct": float("nan"),
                }
            )
    s = pd.DataFrame(rows)
    return s if model_col else s[s["model"] == "m-a"].drop(columns="model")


def test_print_crows_summary_of_an_old_and_a_two_model_run():
    class Old:  # a run folder of one model, written before every kind listed its models
        meta = {"model": {"name": "/models/m-a"}, "scoring": "meade"}
        summary = _crows_summary(False)
        pairs = pd.DataFrame(
            {"pair_id": ["1", "2"], "outcome": ["more", "skipped"], "skipped": ["", "too long"]}
        )

    text = _printed(terminal.print_crows_summary, Old())
    _fits(text)
    assert "CrowS-Pairs, m-a, scoring meade" in text and "model: /models/m-a" in text
    assert "55.0 [35.0, 70.0]" in text and "62.5 [42.5, 77.5]" in text and "4.0e-04" in text
    assert "50.0 (17)" in text and "— (3)" in text
    assert "skipped 1 pair(s), left out of every count" in text

    class New:
        kind = "crows-pairs"
        models = ["m-a", "m-b"]
        meta = {"models": [{"name": "m-a"}, {"name": "m-b"}], "scoring": "nangia"}
        summary = _crows_summary(True)
        pairs = pd.DataFrame(
            {
                "model": ["m-a", "m-b"],
                "pair_id": ["1", "1"],
                "outcome": ["more", "skipped"],
                "skipped": ["", "too long"],
            }
        )

    text = _printed(terminal.print_crows_summary, New())
    assert text.count("CrowS-Pairs, ") == 2
    a, b = text.split("CrowS-Pairs, m-b")
    assert "55.0 [35.0, 70.0]" in a and "65.0 [45.0, 80.0]" not in a
    assert "65.0 [45.0, 80.0]" in b and "72.5 [52.5, 87.5]" in b
    assert "skipped" not in a.split("Ties")[1] and "skipped 1 pair(s)" in b


def test_print_downstream_shows_the_set_rows_and_the_stored_comparison():
    run = _counterfactual_run()
    text = _printed(terminal.print_downstream, run)
    _fits(text)
    d = run.summary[(run.summary["level"] == "set") & (run.summary["score"] == "delta")].iloc[0]
    assert f"{d['mean']:+.3f}" in text
    run.comparison = pd.DataFrame(
        {
            "model": ["other"],
            "base": ["tilted"],
            "level": ["set"],
            "key": ["cf"],
            "score": ["delta"],
            "change": [0.0123],
            "ci_low": [-0.5],
            "ci_high": [0.25],
            "n": [12],
            "p_value": [0.0004],
        }
    )
    text = _printed(terminal.print_downstream, run)
    assert "Change from the base model (tilted)" in text
    assert re.search(
        r"other\s+│.*│\s+\+0\.012\s+│\s+-0\.500 … \+0\.250\s+│\s+12\s+│\s+<0\.001", text
    )


def _one_pair():
    from biasprobe.notebook import pair

    return pair("[he|she] is a [MASK].", groups=["men", "women"], minoritized="women")


def test_print_pairs_marks_the_minoritized_side():
    ps = _one_pair()
    text = _printed(terminal.print_pairs, ps)
    pid = ps.items[0].pair_id
    assert f"{pid}: men | women*" in text and "A  he is a [MASK]." in text
    assert "B  she is a [MASK]." in text and "(* minoritized side)" in text


def test_display_registry():
    class Thing:
        pass

    class Sub(Thing):
        pass

    assert display.html_of(Thing()) is None and display.text_of(Thing()) is None
    display.register_html("Thing", lambda o: "<b>thing</b>")
    display.register_text("Thing", lambda o: "thing")
    try:
        assert display.html_of(Sub()) == "<b>thing</b>" and display.text_of(Sub()) == "thing"
        with pytest.raises(LookupError, match="import biasprobe.notebook"):
            display.view("Thing.nothing")
    finally:
        display._HTML.pop("Thing")
        display._TEXT.pop("Thing")


def test_probe_set_reprs_come_from_the_registry_and_fall_back_to_a_plain_one():
    ps = _one_pair()
    import biasprobe.notebook  # registers the notebook views

    assert "ProbeSet" in display.registered()["html"]
    assert ps._repr_html_() == biasprobe.notebook.probe_set_html(ps)
    assert repr(ps) == biasprobe.notebook.probe_set_repr(ps)
    saved = display._TEXT.pop("ProbeSet"), display._HTML.pop("ProbeSet")
    try:
        assert repr(ps).startswith(f"ProbeSet({ps.name!r} v") and "1 entry → 1 pair" in repr(ps)
        assert ps._repr_html_() is None
    finally:
        display._TEXT["ProbeSet"], display._HTML["ProbeSet"] = saved


def test_print_crows_summary_shows_the_stored_change_from_the_base_model():
    import numpy as np

    from biasprobe.comparisons import crows_comparison

    rng = np.random.default_rng(3)
    outcomes = {"m-a": rng.random(40) < 0.5, "/x/m-b": rng.random(40) < 0.7}
    types = ["gender" if i % 2 else "race-color" for i in range(40)]
    pairs = pd.DataFrame(
        [
            {
                "model": m,
                "pair_id": str(i),
                "bias_type": types[i],
                "outcome": "more" if more else "less",
                "skipped": "",
            }
            for m, o in outcomes.items()
            for i, more in enumerate(o)
        ]
    )
    summary = _crows_summary(True).replace({"model": {"m-b": "/x/m-b"}})

    class Run:
        kind = "crows-pairs"
        models = ["m-a", "/x/m-b"]
        meta = {"scoring": "meade"}

    Run.summary, Run.pairs = summary, pairs
    Run.comparison = crows_comparison(pairs, n_resamples=200)
    text = _printed(terminal.print_crows_summary, Run())
    _fits(text)
    assert "Change from the base model (m-a), percentage points" in text
    assert "model: /x/m-b" in text  # the short name "m-b" said once
    x0, x1 = outcomes["m-a"].astype(float), outcomes["/x/m-b"].astype(float)
    for r in Run.comparison.to_dict("records"):
        sel = np.ones(40, bool) if r["key"] == "all" else np.array(types) == r["key"]
        change = 100 * (x1[sel].mean() - x0[sel].mean())  # computed here, independently
        assert r["change"] == pytest.approx(change)
        shown = f"{change:+.1f} [{r['ci_low']:+.1f}, {r['ci_high']:+.1f}]"
        line = next(x for x in text.splitlines() if f" {r['key']} " in x and shown in x)
        assert line.split("│")[1].strip() == "m-b" and f" {int(sel.sum())} " in line
        assert f"{r['p_value']:.3f}" in line

    Run.comparison = Run.comparison.iloc[0:0]
    assert "Change from the base" not in _printed(terminal.print_crows_summary, Run())


def test_print_crows_summary_escapes_hostile_model_and_bias_type_names():
    class Run:
        kind = "crows-pairs"
        models = [EVIL]
        meta = {"scoring": EVIL}
        summary = _crows_summary(True).replace({"model": {"m-a": EVIL}, "key": {"gender": EVIL}})
        summary = summary[summary["model"] == EVIL]
        pairs = pd.DataFrame({"model": [EVIL], "pair_id": ["1"], "outcome": ["more"]})

    text = _printed(terminal.print_crows_summary, Run())
    assert "\x1b" not in text and "\x07" not in text and "[bold]" in text


def test_print_probe_sets_lists_every_shipped_set_unwrapped():
    from biasprobe.catalog import shipped_dir, shipped_sets

    sets = shipped_sets()
    buf = io.StringIO()
    terminal.print_probe_sets(sets, shipped_dir(), console=Console(width=40, file=buf))
    lines = buf.getvalue().splitlines()
    assert len(lines) == len(sets) + 1  # long lines are not wrapped at the console width
    for s, line in zip(sets, lines):
        assert line.startswith(s.name) and f"Source: {s.source}" in line
        assert f"{s.pairs} pair" in line and s.kind in line
    assert lines[-1] == f"({len(sets)} sets in {shipped_dir()}; run one: biasprobe run NAME)"


def test_print_downstream_titles_each_classifier_by_its_short_name():
    run = _counterfactual_run()
    long = "/data/models/" + "deep/" * 12 + "tilted"
    run.summary["model"] = run.summary["model"].replace({"tilted": long})
    for card in run.meta["models"]:
        card["name"] = long
        card.setdefault("info", {})["accuracy"] = 0.875
    text = _printed(terminal.print_downstream, run)
    _fits(text)
    assert re.sub(r"\s+", " ", text).startswith(f"models: tilted = {long} ")  # wrapped at 80
    assert re.search(r"^tilted  held-out acc\. 0\.875\s*$", text, re.M)
    assert text.count("/data/models") == 1  # the tables use the short name
