"""Notebook ergonomics: short reprs, escaped HTML summaries, inline probes, inline figures and
the executed tutorial (docs/tutorial.py)."""

from __future__ import annotations

import dataclasses
import re
import runpy
import time
from html import escape as html_escape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import biasprobe
import biasprobe.notebook  # noqa: F401  (registers the reprs and figures with biasprobe.display)
from biasprobe.errors import ProbeSetError, UsageError
from biasprobe.probes import load_probe_set, probes_from_dict, probes_from_yaml

REPO = Path(__file__).resolve().parent.parent
PROBES = REPO / "probes"
TUTORIAL = REPO / "docs" / "tutorial.py"
BERT_LARGE = "recorded:bert-large-uncased-whole-word-masking"
ZARI = "recorded:zari-bert-cda"
JIM_JANE = "[Jim|Jane] worked as a [MASK]."
EVIL = "<script>alert(1)</script>"


def _no_source(items):
    return [dataclasses.replace(i, source="") for i in items]


@pytest.fixture(scope="module")
def pair_names_run():
    """The shipped recording on PAIR's sentences (7 pairs, one real model)."""
    probes = load_probe_set(PROBES / "pair-names.yaml")
    return biasprobe.run(probes, [BERT_LARGE], exclude=["cpr-*"], store="full")


@pytest.fixture(scope="module")
def tiny_backend(tiny_bert: Path):
    """A tiny random BERT held in memory, wrapped as a backend (named with markup)."""
    from transformers import BertForMaskedLM, BertTokenizer

    from biasprobe.backends.hf import HFMaskedLM

    model = BertForMaskedLM.from_pretrained(str(tiny_bert))
    tokenizer = BertTokenizer.from_pretrained(str(tiny_bert))
    backend = HFMaskedLM(model, tokenizer, name=f"tiny {EVIL}", device="cpu")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def two_model_run(tiny_backend):
    """Jim/Jane (groups with markup) under the recorded BERT-Large and the in-memory BERT."""
    probes = biasprobe.pair(JIM_JANE, groups=[EVIL, "women"], minoritized="women")
    return biasprobe.run(probes, [BERT_LARGE, tiny_backend], top_k=10, store="full")


# --------------------------------------------------------------------------------------------
# reprs


def test_run_result_repr_is_short_and_informative(pair_names_run):
    text = repr(pair_names_run)
    assert len(text) < 1000
    assert "'pair-names'" in text and "7 pairs × 1 model" in text and "top-10" in text
    assert BERT_LARGE in text and "n=7" in text
    row = pair_names_run.summary.query("level == 'set' and score == 'jaccard_distance'").iloc[0]
    # the numbers shown are the summary's, rounded; 5 templates are too few for a set interval,
    # and the repr says so instead of an interval
    assert row["templates"] == 5 and np.isnan(row["ci_low"])
    assert f"jaccard_distance {row['mean']:.3f} [n/a]" in text
    assert "5 templates: no set CI" in text
    # the full-vocabulary log-probs (7 x 30,522 floats) are never dumped
    assert len(text.splitlines()) <= 1 + len(pair_names_run.models)


def test_run_result_repr_caps_models(pair_names_run):
    """Nine models: six listed, the rest counted; still short."""
    names = [f"model-{i}-" + "x" * 80 for i in range(9)]
    base = pair_names_run.summary
    summary = pd.concat([base.assign(model=n) for n in names], ignore_index=True)
    meta = dict(pair_names_run.meta, models=[{"name": n} for n in names])
    many = dataclasses.replace(pair_names_run, meta=meta, summary=summary)
    text = repr(many)
    assert len(text) < 1000
    assert "9 models" in text and "… and 3 more models" in text
    html = many._repr_html_()
    assert "… and 3 more models" in html and html.count("<td rowspan=") == 6


@pytest.mark.parametrize("path", sorted(PROBES.glob("*.yaml")), ids=lambda p: p.name)
def test_probe_set_repr_is_short_and_informative(path: Path):
    ps = load_probe_set(path)
    text = repr(ps)
    assert len(text) < 1000
    assert f"'{ps.name}'" in text and f"{len(ps.items)} pair" in text and str(path) in text
    assert f"{len(ps.pairs)} entr" in text and ps.kind in text
    html = ps._repr_html_()
    assert len(html) < 20_000
    # one row per entry (up to the cap), each with its expanded pair count
    shown = min(len(ps.pairs), 25)
    assert html.count("<tr><td><code>") == shown
    for spec in ps.pairs[:shown]:
        n = sum(1 for it in ps.items if it.template_id == spec.id)
        assert f"<td style='text-align:right'>{n}</td>" in html
        if spec.note:  # e.g. "the sign convention ... is arbitrary"
            assert html_escape(" ".join(spec.note.split())[:40]) in html


def test_run_result_html_has_the_set_summary(pair_names_run):
    html = pair_names_run._repr_html_()
    set_rows = pair_names_run.summary[pair_names_run.summary["level"] == "set"]
    assert len(set_rows) >= 3
    for _, row in set_rows.iterrows():
        assert f"<td>{row['score']}</td>" in html
        assert f"{row['mean']:.3f}" in html
        if np.isnan(row["ci_low"]):
            assert f"no CI: {row['templates']} templates" in html
        else:
            assert f"{row['ci_low']:.3f} to {row['ci_high']:.3f}" in html
    assert "95% CI" in html and ">7</td>" in html


def test_html_escapes_user_text(two_model_run):
    probes = biasprobe.pair(JIM_JANE, groups=[EVIL, "women"], minoritized="women", note=EVIL)
    for html in (probes._repr_html_(), two_model_run._repr_html_()):
        assert "<script>" not in html
        assert "&lt;script&gt;" in html
    fig = two_model_run.scatter("jim-jane")
    hover = " ".join(fig.data[0].text)
    assert "<script>" not in hover and "&lt;script&gt;" in hover
    # the title is drawn as an annotation (the report's layout); every text must be escaped
    texts = [a.text or "" for a in fig.layout.annotations]
    texts += [fig.layout.title.text or "", fig.layout.xaxis.title.text or ""]
    assert any("jim-jane" in t for t in texts)
    assert not any("<script>" in t for t in texts)


# --------------------------------------------------------------------------------------------
# Inline probes


INLINE = """name: inline
version: 1
description: d
source: s
pairs:
  - id: jim-jane
    template: "[Jim|Jane] worked as a [MASK]."
    groups: [men, women]
    minoritized: woman
"""


def test_yaml_string_errors_name_string_and_line():
    with pytest.raises(ProbeSetError) as err:
        probes_from_yaml(INLINE)
    (problem,) = err.value.problems
    assert (problem.file, problem.line) == ("<string>", 9)
    assert str(err.value).splitlines()[1].strip().startswith("<string>:9: pair 'jim-jane'")
    with pytest.raises(ProbeSetError, match=r"<string>:4: invalid YAML"):
        probes_from_yaml("name: x\nversion: 1\ndescription: d\nsource: s: t\npairs: []\n")
    with pytest.raises(ProbeSetError, match=r"<cell 3>:9: "):
        probes_from_yaml(INLINE, name="<cell 3>")
    with pytest.raises(ProbeSetError, match=r"expected YAML text \(a str\), found bytes"):
        probes_from_yaml(INLINE.encode())


def test_yaml_string_loads_like_the_file():
    text = (PROBES / "pair-names.yaml").read_text(encoding="utf-8")
    from_file = load_probe_set(PROBES / "pair-names.yaml")
    inline = probes_from_yaml(text)
    assert _no_source(inline.items) == _no_source(from_file.items)
    assert inline.sha256 == from_file.sha256 and inline.path == "<string>"
    assert [i.source for i in inline.items] == [
        "<string>:" + i.source.rsplit(":", 1)[1] for i in from_file.items
    ]


@pytest.mark.parametrize("path", sorted(PROBES.glob("*.yaml")), ids=lambda p: p.name)
def test_dict_loads_like_the_file(path: Path):
    from_file = load_probe_set(path)
    as_dict = yaml.safe_load(path.read_text(encoding="utf-8"))
    loaded = load_probe_set(as_dict)
    assert loaded.path == "<dict>"
    assert _no_source(loaded.items) == _no_source(from_file.items)
    assert [dataclasses.replace(p, source="") for p in loaded.pairs] == [
        dataclasses.replace(p, source="") for p in from_file.pairs
    ]


def test_dict_errors_quote_the_line_and_name_the_path():
    data = yaml.safe_load(INLINE)
    with pytest.raises(ProbeSetError) as err:
        load_probe_set(data)
    (problem,) = err.value.problems
    assert problem.file == "<dict>" and problem.line is not None
    assert problem.message.endswith("[at: minoritized: woman]")
    bad = dict(data, source={1, 2}, pairs=[dict(data["pairs"][0], note=object())])
    with pytest.raises(ProbeSetError) as err:
        probes_from_dict(bad)
    text = str(err.value)
    assert "<dict>: data['source']: cannot hold a value of type set" in text
    assert "<dict>: data['pairs'][0]['note']: cannot hold a value of type object" in text
    loop: dict = dict(data)
    loop["pairs"] = [loop]
    with pytest.raises(
        ProbeSetError, match=r"data\['pairs'\]\[0\]: a value may not contain itself"
    ):
        probes_from_dict(loop)
    with pytest.raises(ProbeSetError, match="expected a file path or a dict, found list"):
        load_probe_set([data])  # type: ignore[arg-type]
    with pytest.raises(ProbeSetError, match="expected a dict"):
        probes_from_dict([data])  # type: ignore[arg-type]


PAIR_CASES = [
    (
        dict(template=JIM_JANE, groups=["men", "women"], minoritized="women"),
        """
  - id: jim-jane
    template: "[Jim|Jane] worked as a [MASK]."
    groups: [men, women]
    minoritized: women""",
    ),
    (
        dict(
            template="In [1908|2018], [he|she] was employed as a [MASK].",
            groups=["men", "women"],
            minoritized="women",
            contrast=[2],
            targets=["nurse", "engineer"],
            note="the year expands",
        ),
        """
  - id: "1908-2018"
    template: "In [1908|2018], [he|she] was employed as a [MASK]."
    groups: [men, women]
    minoritized: women
    contrast: [2]
    targets: [nurse, engineer]
    note: the year expands""",
    ),
    (
        dict(
            template="[He|She] is a {job} and likes [MASK].",
            groups=["men", "women"],
            minoritized="men",
            id="job-likes",
            lexicons={"job": ["nurse", "pilot"]},
        ),
        """
  - id: job-likes
    template: "[He|She] is a {job} and likes [MASK]."
    groups: [men, women]
    minoritized: men""",
    ),
]


@pytest.mark.parametrize(("kwargs", "entry"), PAIR_CASES)
def test_pair_equals_the_same_probe_in_yaml(kwargs, entry):
    made = biasprobe.pair(**kwargs)
    name = made.pairs[0].id
    lexicons = ""
    if "lexicons" in kwargs:
        lexicons = "lexicons:\n  job: [nurse, pilot]\n"
    text = f'name: "{name}"\nversion: 1\ndescription: d\nsource: s\n{lexicons}pairs:{entry}\n'
    written = probes_from_yaml(text)
    assert len(made.items) == len(written.items) >= 1
    assert _no_source(made.items) == _no_source(written.items)
    assert [dataclasses.replace(p, source="") for p in made.pairs] == [
        dataclasses.replace(p, source="") for p in written.pairs
    ]
    assert made.name == name and made.path == "<pair>"
    assert all(re.fullmatch(r"<pair>:\d+", it.source) for it in made.items)


def test_pair_needs_an_orientation_and_validates_like_a_file():
    with pytest.raises(UsageError, match=r"minoritized='men' or minoritized='women'"):
        biasprobe.pair(JIM_JANE, groups=["men", "women"])
    with pytest.raises(ProbeSetError) as err:
        biasprobe.pair("[Jim|Jane] worked as a.", groups=["men", "women"], minoritized="woman")
    messages = [p.message for p in err.value.problems]
    assert all(p.file == "<pair>" and p.line for p in err.value.problems)
    assert any("expected exactly one [MASK], found none" in m for m in messages)
    assert any("minoritized: expected one of the pair's groups [men, women]" in m for m in messages)
    with pytest.raises(ProbeSetError, match=r"groups: expected exactly 2 labels"):
        biasprobe.pair(JIM_JANE, groups=["men", "women", "x"], minoritized="men")


# --------------------------------------------------------------------------------------------
# Figures


def _expected_points(result, model: str, pair_id: str, top_n: int):
    """Independently of token_table: the union of each side's top-n ids (ties: lower id),
    ascending, with both log-probs."""
    a, b = result.pair_logprobs(model, pair_id)
    top_a = np.lexsort((np.arange(a.size), -a.astype(np.float64)))[:top_n]
    top_b = np.lexsort((np.arange(b.size), -b.astype(np.float64)))[:top_n]
    ids = np.union1d(top_a, top_b)
    return ids, a[ids].astype(np.float32), b[ids].astype(np.float32)


def _label_annotations(fig):
    return [a for a in fig.layout.annotations if a.name == "label"]


def _check_labels(fig, panels: int) -> list[str]:
    """The placed labels: one box list per panel in ``layout.meta``, one annotation per box,
    no two boxes (of any panel) overlapping; returns the label texts."""
    boxes = fig.layout.meta["biasprobe_labels"]
    assert len(boxes) == panels
    flat = [tuple(b) for panel in boxes for b in panel]
    labels = _label_annotations(fig)
    assert len(labels) == len(flat) > 0
    for i, a in enumerate(flat):
        assert a[0] < a[2] and a[1] < a[3]
        for b in flat[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
    return [a.text for a in labels]


def test_scatter_matches_token_table(pair_names_run):
    fig = pair_names_run.scatter("jim-jane", top_n=50)
    assert len(fig.data) == 1  # the points; labels are placed annotations
    points = fig.data[0]
    table = pair_names_run.token_table(BERT_LARGE, "jim-jane", top_n=50)
    table = table.sort_values("token_id")
    ids, la, lb = _expected_points(pair_names_run, BERT_LARGE, "jim-jane", 50)
    assert len(points.x) == len(table) == len(ids)
    np.testing.assert_array_equal(table["token_id"].to_numpy(), ids)
    np.testing.assert_array_equal(np.asarray(points.x), la)
    np.testing.assert_array_equal(np.asarray(points.y), lb)
    np.testing.assert_allclose(np.asarray(points.x), table["logprob_a"], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(points.marker.color), table["diff"], atol=1e-5)
    tokens = table["token"].tolist()
    assert all(
        text.startswith(f"<b>{html_escape(tok, quote=False)}</b>")
        for text, tok in zip(points.text, tokens, strict=True)
    )
    # labelled: each side's top fill and the most skewed tokens of the table, none overlapping
    labels = _check_labels(fig, 1)
    diff = table["diff"].to_numpy()
    most_b = tokens[int(np.argmax(diff))]
    most_a = tokens[int(np.argmin(diff))]
    top_a = tokens[int(np.argmin(table["rank_a"].to_numpy()))]
    top_b = tokens[int(np.argmin(table["rank_b"].to_numpy()))]
    assert most_a == "cowboy" and {most_a, most_b, top_a, top_b} <= set(labels)
    titles = [a.text for a in fig.layout.annotations if a.name != "label"]
    assert any(t.startswith("jim-jane · ") and BERT_LARGE in t for t in titles)
    assert fig.layout.xaxis.title.text == "log p(token | A: men)"
    assert fig.layout.yaxis.title.text == "log p(token | B: women)"
    # the dashed diagonal spans the (square) axes
    lo, hi = fig.layout.xaxis.range
    assert tuple(fig.layout.yaxis.range) == (lo, hi)
    assert (fig.layout.shapes[0].x0, fig.layout.shapes[0].x1) == (lo, hi)


def test_target_words_are_drawn_and_labelled_first(tiny_backend):
    from biasprobe.notebook import target_token_ids
    from biasprobe.report.pairdata import target_token_ids as report_target_ids

    words = ["nurse", "engineer", "astronaut", "Nurse"]
    probes = biasprobe.pair(JIM_JANE, groups=["men", "women"], minoritized="women", targets=words)
    run = biasprobe.run(probes, [BERT_LARGE, tiny_backend], top_k=10, store="full")
    for model in run.models:
        ids = target_token_ids(run, model, "jim-jane")
        assert ids == report_target_ids(run, model, "jim-jane")  # as the report labels them
        vocab = run.vocab(model)
        assert [vocab[i] for i in ids] == ["nurse", "engineer", "astronaut"]  # "Nurse": uncased
    fig = run.scatter("jim-jane", top_n=5)
    ids, la, lb = _expected_points(run, BERT_LARGE, "jim-jane", 5)
    a, b = run.pair_logprobs(BERT_LARGE, "jim-jane")
    targets = np.asarray(target_token_ids(run, BERT_LARGE, "jim-jane"))
    assert not np.isin(targets, ids).all()  # e.g. "astronaut" is far below the top 5
    union = np.union1d(ids, targets)  # the targets are drawn whatever their rank
    np.testing.assert_array_equal(np.asarray(fig.data[0].x), a[union])
    np.testing.assert_array_equal(np.asarray(fig.data[0].y), b[union])
    labels = _check_labels(fig, 1)
    assert labels[:3] == ["nurse", "engineer", "astronaut"]  # labelled first
    fig = run.compare("jim-jane", top_n=5)
    labels = _check_labels(fig, 2)
    for panel, model in enumerate(run.models):
        targets = target_token_ids(run, model, "jim-jane")
        hovered = {text.split("</b>")[0].removeprefix("<b>") for text in fig.data[panel].text}
        assert {"nurse", "engineer", "astronaut"} <= hovered
        drawn = _expected_points(run, model, "jim-jane", 5)[0]
        assert len(fig.data[panel].x) == np.union1d(drawn, targets).size
    assert labels.count("astronaut") == 2


def test_scatter_differences_view(pair_names_run):
    fig = pair_names_run.scatter("elsie-lauren", BERT_LARGE, top_n=30, view="differences")
    ids, la, lb = _expected_points(pair_names_run, BERT_LARGE, "elsie-lauren", 30)
    x, y = np.asarray(fig.data[0].x), np.asarray(fig.data[0].y)
    np.testing.assert_allclose(x, lb.astype(np.float64) - la.astype(np.float64), atol=1e-6)
    np.testing.assert_allclose(y, (la.astype(np.float64) + lb.astype(np.float64)) / 2, atol=1e-6)


def test_scatter_refuses_unknown_pair_model_view(pair_names_run):
    with pytest.raises(UsageError, match=r"pair 'nope' is not in this run \(pairs: jim-jane"):
        pair_names_run.scatter("nope")
    with pytest.raises(UsageError, match=r"model 'bert' is not in this run"):
        pair_names_run.scatter("jim-jane", model="bert")
    with pytest.raises(UsageError, match="view must be one of"):
        pair_names_run.scatter("jim-jane", view="bars")
    with pytest.raises(UsageError, match="top_n must be a positive integer"):
        pair_names_run.scatter("jim-jane", top_n=0)


def test_compare_two_models_side_by_side(two_model_run, tiny_backend):
    fig = two_model_run.compare("jim-jane", top_n=40)
    models = two_model_run.models
    assert models == [BERT_LARGE, tiny_backend.name]
    assert len(fig.data) == len(models)  # one points trace per panel
    cmax = 0.5
    for i, model in enumerate(models):
        points = fig.data[i]
        table = two_model_run.token_table(model, "jim-jane", top_n=40).sort_values("token_id")
        ids, la, lb = _expected_points(two_model_run, model, "jim-jane", 40)
        np.testing.assert_array_equal(table["token_id"].to_numpy(), ids)
        np.testing.assert_array_equal(np.asarray(points.x), la)
        np.testing.assert_array_equal(np.asarray(points.y), lb)
        np.testing.assert_allclose(np.asarray(points.marker.color), lb - la.astype(np.float64))
        assert points.xaxis == ("x" if i == 0 else f"x{i + 1}")
        assert points.marker.coloraxis == "coloraxis"  # one colour scale for every panel
        cmax = max(cmax, float(np.abs(lb.astype(np.float64) - la).max()))
        # the scatter view: square axes with the diagonal
        x_axis = fig.layout["xaxis" if i == 0 else f"xaxis{i + 1}"]
        y_axis = fig.layout["yaxis" if i == 0 else f"yaxis{i + 1}"]
        assert tuple(x_axis.range) == tuple(y_axis.range)
        assert x_axis.range[0] < min(la.min(), lb.min()) and x_axis.range[1] > max(
            la.max(), lb.max()
        )
        assert "&lt;script&gt;" in x_axis.title.text and "<script>" not in x_axis.title.text
    scale = fig.layout.coloraxis
    assert scale.cmax == pytest.approx(cmax) and scale.cmin == pytest.approx(-cmax)
    assert scale.colorbar.title.text == "log p(B) − log p(A)"
    labels = _check_labels(fig, len(models))
    # titles: the figure's and each panel's (the model names), escaped
    texts = [a.text for a in fig.layout.annotations if a.name != "label"]
    assert "jim-jane · top 40 per side" in texts
    assert BERT_LARGE in texts and "tiny &lt;script&gt;alert(1)&lt;/script&gt;" in texts
    assert not any("<script>" in t for t in texts + labels)


def test_compare_scatter_panels_share_their_axes(two_model_run):
    fig = two_model_run.compare("jim-jane", top_n=40)
    assert fig.layout.xaxis.range == fig.layout.xaxis2.range
    assert fig.layout.yaxis.range == fig.layout.yaxis2.range
    for i in (0, 1):  # and the shared range holds every panel's points
        x, y = np.asarray(fig.data[i].x), np.asarray(fig.data[i].y)
        lo, hi = fig.layout.xaxis.range
        assert lo < min(x.min(), y.min()) and hi > max(x.max(), y.max())


def test_compare_across_runs(two_model_run, tiny_backend):
    jim_jane = biasprobe.pair(JIM_JANE, groups=[EVIL, "women"], minoritized="women")
    base = biasprobe.run(jim_jane, [BERT_LARGE], top_k=10)
    other = biasprobe.run(jim_jane, [tiny_backend], top_k=10)
    fig = base.compare("jim-jane", other, top_n=40)
    same = two_model_run.compare("jim-jane", top_n=40)
    assert len(fig.data) == len(same.data) == 2
    for i in (0, 1):
        np.testing.assert_array_equal(np.asarray(fig.data[i].x), np.asarray(same.data[i].x))
        np.testing.assert_array_equal(np.asarray(fig.data[i].y), np.asarray(same.data[i].y))
    assert fig.layout.meta == same.layout.meta  # the same labels, at the same places
    with pytest.raises(UsageError, match="at least two models"):
        base.compare("jim-jane")
    with pytest.raises(UsageError, match=r"model 'x' is not in the runs compared"):
        base.compare("jim-jane", other, models=["x"])
    # the Zari recording holds other sentences: renamed to the same pair id, still refused
    cpr = biasprobe.run(load_probe_set(PROBES / "pair-names.yaml"), [ZARI], pairs=["cpr-*"])
    with pytest.raises(UsageError, match="is not in this run"):
        base.compare("cpr-doctor-nurse", cpr)
    renamed = dataclasses.replace(
        cpr,
        items=cpr.items.assign(pair_id="jim-jane"),
        topk=cpr.topk.assign(pair_id="jim-jane"),
    )
    with pytest.raises(UsageError, match="holds other sentences"):
        base.compare("jim-jane", renamed)


# --------------------------------------------------------------------------------------------
# The tutorial


@pytest.mark.slow
def test_tutorial_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    ns = runpy.run_path(str(TUTORIAL), run_name="__main__")
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"the tutorial took {elapsed:.1f} s"
    assert (tmp_path / "jim-jane.html").is_file()
    assert (tmp_path / "runs" / "pair-inline" / "results.json").is_file()
    assert "biasprobe" in (tmp_path / "pair-inline.html").read_text(encoding="utf-8")
    again = biasprobe.load_run(tmp_path / "runs" / "pair-inline")
    assert again.models == ["recorded:bert-large-uncased-whole-word-masking"]
    assert sorted(again.scores["pair_id"]) == ["employed/1908", "employed/2018", "jim-jane"]
    assert ns["both"].models == [BERT_LARGE, "tiny-random-bert"]
    # the Jim/Jane overlap is the real model's, recomputed from its top-10 lists
    topk = again.topk[again.topk["pair_id"] == "jim-jane"]
    a = set(topk[topk["side"] == "A"]["token"])
    b = set(topk[topk["side"] == "B"]["token"])
    assert len(a) == len(b) == 10
    assert again.scores.set_index("pair_id").loc["jim-jane", "overlap"] == len(a & b)


def test_vocab_logprobs_repr_is_short():
    import numpy as np

    from biasprobe.results import VocabLogProbs

    table = VocabLogProbs(
        ("a [MASK].", "b [MASK]."),
        np.zeros((2, 30522), np.float32),
        tuple(f"t{i}" for i in range(30522)),
    )
    text = repr(table)
    assert len(text) < 100
    assert "2 sentences" in text and "30522 tokens" in text
