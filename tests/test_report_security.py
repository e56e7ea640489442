"""No script from the data runs in any report page.

Every report kind (fill-mask: one model stored top-N, and a base-vs-other comparison; downstream;
CrowS-Pairs; the notebook HTML) is rendered with hostile text in every field a user, a probe
file, a model folder or a tampered run folder controls, and opened in headless Chromium: none of
the payloads may run, and the text must show as text. The renderers' sources are also checked
for HTML assembled from unescaped values (see :mod:`biasprobe.report.htmlkit`).
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import report_fixtures as rf  # noqa: E402
from report_browser import find_chromium  # noqa: E402  (a test tool, not in the wheel)

from biasprobe.report.htmlkit import Markup, escape, html, join, script_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

#: Each payload sets ``window.XSS`` (or the title) if it ever runs as script.
PAYLOADS = (
    "<img src=x onerror=window.XSS=1>",
    "</script><script>window.XSS=2</script>",
    '"><svg onload=window.XSS=3>',
    "'><img src=x onerror=window.XSS=4>",
    "<!--<script>window.XSS=5</script>",
    "<img src=x onerror=document.title='XSS'>",
)
EVIL = "".join(PAYLOADS) + " & \u2028<unk>"

needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="Chromium is needed to run the pages (not installed)"
)


# --------------------------------------------------------------------------- the kit


def test_kit_escapes_values_but_not_markup():
    assert escape("<b>&'\"") == "&lt;b&gt;&amp;&#x27;&quot;"
    assert escape(Markup("<b>")) == "<b>"
    page = html("<p title='{}'>{} {x:.2f} {m}</p>", "'><x", "<i>", x=1.005, m=Markup("<br>"))
    assert page == "<p title='&#x27;&gt;&lt;x'>&lt;i&gt; 1.00 <br></p>"
    assert isinstance(page, Markup)
    assert html("{!r}", "<a>") == "&#x27;&lt;a&gt;&#x27;"
    assert join(["<a>", Markup("<b>")], ", ") == "&lt;a&gt;, <b>"


def test_script_json_cannot_leave_its_element():
    text = script_json({"s": "</script><!--<script>\u2028\u2029&", "n": float("nan")})
    assert not re.search(r"[<>&\u2028\u2029]", text)
    assert json.loads(text) == {"s": "</script><!--<script>\u2028\u2029&", "n": None}


# --------------------------------------------------------------------------- the sources

#: Calls whose result is markup built by the kit, or a number/fixed text.
SAFE_CALLS = {
    *("escape", "html", "join", "script_json", "kv_html", "sortable", "_e", "_num"),
    *("fmt", "td", "tdt", "na_td", "p_td", "ci_td", "_ci", "_p", "_p_eq", "num"),
    *(
        "int",
        "len",
        "min",
        "max",
        "asset",
        "_more",
        "package_version",
        "x",
        "_figure_div",
        "_svg",
        "_pair_heading",
    ),
}
#: Names (per module) that hold markup made from escaped parts, or numbers; reviewed.
SAFE_NAMES = {
    "page.py": {"ths", "body", "plotly_js", "css", "head", "tail", "cls", "key", "v", "shown"},
    "fillmask.py": {"COLOR_A", "COLOR_B", "TOP_FILLS_LABELLED", "LABELS_PER_SIDE", "depth"}
    | {"SPEARMAN_TOP", "left_out"},
    "pairviews.py": {"left_out", "select", "buttons", "figs", "scores_html", "cmp_html"}
    | {"topk", "sent_rows", "saw", "_ARBITRARY_NOTE", "cols", "pair", "i", "p"},
    "findings.py": {"listed", "body", "s"},
    "counterfactual.py": {
        *("scatters", "models", "sub"),
        *("acc", "r", "m", "a", "b", "k"),
    },
    "notebook.py": {"head", "table", "hint", "note", "mark", "more", "cell"}
    | {"entries", "top_k", "n_pairs", "counts"},
    "crows.py": {"width", "height", "tick", "y", "_NOTE"},
}
#: Attributes of safe names that are numbers (``pair.index``, ``e.index``, ``r.p_a``).
SAFE_ATTRS = {"index", "p_a", "p_b", "delta"}
RENDERERS = [
    "biasprobe/report/page.py",
    "biasprobe/report/pairdata.py",
    "biasprobe/report/pairviews.py",
    "biasprobe/report/findings.py",
    "biasprobe/report/fillmask.py",
    "biasprobe/report/counterfactual.py",
    "biasprobe/report/crows.py",
    "biasprobe/notebook.py",
]
_TAG = re.compile(r"<[a-zA-Z/!]")


def _safe(node: ast.AST, names: set[str]) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Call):
        f = node.func
        name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", "")
        if isinstance(f, ast.Attribute) and name in ("replace", "get"):
            return _safe(f.value, names)  # a reviewed name's own text, or a count
        if name == "plotly_text":
            return True  # plotly's own text escaping, inside figure JSON plotly escapes again
        return name in SAFE_CALLS or name.endswith(("_html", "_table", "_section", "_cells"))
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, ast.Attribute):
        return node.attr in SAFE_ATTRS and _safe(node.value, names)
    if isinstance(node, ast.Subscript):
        return _safe(node.value, names)
    if isinstance(node, ast.IfExp | ast.BoolOp):
        parts = [node.body, node.orelse] if isinstance(node, ast.IfExp) else node.values
        return all(_safe(p, names) for p in parts)
    if isinstance(node, ast.BinOp):
        return _safe(node.left, names) and _safe(node.right, names)
    if isinstance(node, ast.JoinedStr):
        return all(_safe(v.value, names) for v in node.values if isinstance(v, ast.FormattedValue))
    return False


def _html_problems(path: Path, names: set[str]) -> list[str]:
    problems = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            if _TAG.search(text):
                for v in node.values:
                    if isinstance(v, ast.FormattedValue) and not _safe(v.value, names):
                        problems.append(f"{path.name}:{v.lineno}: {{{ast.unparse(v.value)}}}")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            for a, b in ((node.left, node.right), (node.right, node.left)):
                if (
                    isinstance(a, ast.Constant)
                    and isinstance(a.value, str)
                    and _TAG.search(a.value)
                ):
                    if not _safe(b, names) and not isinstance(b, ast.BinOp):
                        problems.append(f"{path.name}:{b.lineno}: + {ast.unparse(b)}")
    return problems


def test_renderers_build_html_only_from_escaped_values():
    """Every value put into markup by an f-string or ``+`` is escaped by the kit, a number, or
    a reviewed name holding markup; a raw value (``{model}``) is a finding."""
    problems, stale = [], []
    for rel in RENDERERS:
        path = REPO / rel
        names = SAFE_NAMES.get(path.name, set())
        problems += _html_problems(path, names)
        stale += [
            f"{path.name}: {n}" for n in sorted(names) if not _html_problems(path, names - {n})
        ]
    assert problems == [], "\n".join(problems)
    assert stale == [], f"names no longer needed in SAFE_NAMES: {stale}"


def test_the_source_check_finds_the_old_left_out_note(tmp_path):
    """The check flags an f-string that puts a raw name into markup, as ``_left_out`` did."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(names):\n"
        "    return f' The runs of {names} stored only <code>--store full</code>'\n"
        "def g(e):\n"
        "    return '<td>' + e.label + '</td>'\n"
    )
    assert len(_html_problems(bad, set())) == 2


# --------------------------------------------------------------------------- hostile pages


def _hostile_fill_mask_runs():
    """Two in-memory runs (full vectors): hostile pair ids, groups, sentences, tokens, model
    names, set name, run id, probe-set fields and settings keys."""
    vocab = [*PAYLOADS, "&", "<unk>", '"quoted"', *[f"w{i}" for i in range(40)]]
    pairs = [
        (f"p{k}{EVIL}", (f"A{EVIL}", f"B{EVIL}"), (f"{EVIL} a{k} [MASK].", f"b{k} {EVIL} [MASK]."))
        for k in range(3)
    ]
    runs = []
    for i, models in enumerate(((f"base{EVIL}", f"other{EVIL}"), (f"third{EVIL}",))):
        run = rf.make_tiny_run(pairs, vocab, models=models, run_id=f"run{i}{EVIL}", seed=i)
        ps = run.meta.setdefault("probe_set", {})
        ps.update(name=f"set{EVIL}", version=EVIL, description=EVIL, source=EVIL)
        run.meta["created"] = EVIL
        run.meta.setdefault("settings", {})[EVIL] = EVIL
        for m in run.meta["models"]:
            m["info"] = {EVIL: EVIL}
            m["slug"] = EVIL
        run.items["template_id"] = f"tpl{EVIL}"
        run.items["source"] = EVIL
        runs.append(run)
    return runs


def _hostile_downstream():
    from biasprobe.backends.classifiers import ClassifierBackend as Classifier
    from biasprobe.downstream.run import run_downstream
    from biasprobe.probes import ProbeItem

    class Shifted(Classifier):
        kind = "test"
        labels = ("negative", "positive")
        positive = 1

        def __init__(self, name, shift):
            self.name, self.shift = name, shift
            self.info = {"accuracy": 0.8, "accuracy_n": 500, EVIL: EVIL}

        def _probs(self, texts):
            p = np.array(
                [0.3 + 0.05 * (len(t) % 9) + (self.shift if "she" in t else 0) for t in texts]
            )
            return np.stack([1 - p, p], axis=1)

    items = [
        ProbeItem(
            f"t{t}/{j}{EVIL}",
            f"tpl{t}{EVIL}",
            (f"w{EVIL}", f"m{EVIL}"),
            (f"she {EVIL} {'x' * j}", f"he {EVIL} {'x' * j}"),
            0,
            (),
            (),
            f"x{EVIL}.yaml:{t}",
        )
        for t in range(2)
        for j in range(4)
    ]
    return run_downstream(
        items,
        [Shifted(f"base{EVIL}", -0.2), Shifted(f"twin{EVIL}", -0.05)],
        set_name=f"s{EVIL}",
        n_boot=50,
    )


def _open(browser, path: Path, fill_mask: bool) -> None:
    browser.navigate(path.resolve().as_uri())
    browser.wait_for("document.readyState === 'complete'", timeout=60)
    if fill_mask:
        browser.wait_for("window.biasprobeReport && window.biasprobeReport.ready", timeout=60)
        n = browser.evaluate("document.querySelectorAll('section.pair').length")
        for k in range(n):
            browser.evaluate(f"biasprobeReport.showPair({k})", await_promise=True)
    # let queued error/load events of anything inserted run before looking
    browser.evaluate("new Promise(r => setTimeout(r, 300))", await_promise=True)


def _no_script_ran(browser, title: str) -> None:
    assert browser.evaluate("window.XSS === undefined"), browser.evaluate("window.XSS")
    assert browser.evaluate("document.title") == title
    assert browser.evaluate("document.querySelectorAll('[onerror], [onload]').length") == 0


@needs_chromium
@pytest.mark.browser
def test_no_report_kind_runs_script_from_the_data(tmp_path, tiny_bert, tiny_bert_b):
    from report_browser import HeadlessChromium

    from biasprobe.backends.hf import load_hf_masked_lm
    from biasprobe.crows.run import run_crows
    from biasprobe.notebook import probe_set_html, run_result_html
    from biasprobe.probes import probes_from_yaml
    from biasprobe.report import write_report
    from biasprobe.report.counterfactual import write_downstream_report
    from biasprobe.report.crows import render_html
    from biasprobe.runner import run as run_probes

    pages: list[tuple[Path, str, bool]] = []
    runs = _hostile_fill_mask_runs()
    title = f"title{EVIL}"
    single = write_report(runs[:1], tmp_path / "single.html")
    pages.append((single, f"biasprobe report: set{EVIL}", True))
    both = write_report(runs, tmp_path / "compare.html", title=title, pairs=["p0*"])
    pages.append((both, title, True))
    # a real run on two tiny BERTs, stored top-N (the default): its note names the models
    hostile_dir = tmp_path / EVIL_DIR
    shutil.copytree(tiny_bert, hostile_dir)
    probe = probes_from_yaml(
        "name: t\nversion: 1\ndescription: "
        + json.dumps(EVIL)
        + "\nsource: "
        + json.dumps(EVIL)
        + "\norientation: {minoritized: "
        + json.dumps(f"w{EVIL}")
        + ", normative: "
        + json.dumps(f"m{EVIL}")
        + "}\npairs:\n"
        + "".join(
            f"  - id: p{k}\n    template: "
            + json.dumps(f"The [{k}{EVIL}|man] works as a [MASK] & <b>.")
            + "\n    groups: ["
            + json.dumps(f"w{EVIL}")
            + ", "
            + json.dumps(f"m{EVIL}")
            + "]\n"
            for k in range(2)
        )
    )
    stored = run_probes(probe, [str(hostile_dir), str(tiny_bert_b)], n_bootstrap=100, top_k=5)
    assert stored.stored_top_n(stored.models[0]) is not None
    topn = write_report([stored], tmp_path / "topn.html")
    pages.append((topn, "biasprobe report: t", True))
    down = write_downstream_report([_hostile_downstream()], tmp_path / "down.html")
    pages.append((down, f"biasprobe downstream report: s{EVIL}", False))
    backend = load_hf_masked_lm(str(tiny_bert), device="cpu", batch_size=8)
    try:
        crows = run_crows(backend, scoring="meade", limit=3)
    finally:
        backend.close()
    crows.meta["models"][0]["name"] = EVIL
    crows.meta.update(run_id=EVIL, created=EVIL, scoring=EVIL)
    crows.summary["key"] = [f"k{i}{EVIL}" for i in range(len(crows.summary))]
    (tmp_path / "crows.html").write_text(render_html(crows), encoding="utf-8")
    pages.append((tmp_path / "crows.html", f"CrowS-Pairs — {EVIL}", False))
    ps = probes_from_yaml(
        "name: t\nversion: 1\ndescription: " + json.dumps(EVIL) + "\nsource: x\n"
        "orientation: {minoritized: w, normative: m}\npairs:\n  - id: a\n    template: "
        + json.dumps(f"The [woman|man] {EVIL} works as a [MASK].")
        + "\n    groups: [w, m]\n    note: "
        + json.dumps(EVIL)
        + "\n    targets: ["
        + json.dumps("<b>&")
        + "]\n"
    )
    nb = f"<!doctype html><title>nb</title>{probe_set_html(ps)}{run_result_html(runs[0])}"
    (tmp_path / "nb.html").write_text(nb, encoding="utf-8")
    pages.append((tmp_path / "nb.html", "nb", False))

    with HeadlessChromium() as browser:
        for path, expected_title, fill_mask in pages:
            _open(browser, path, fill_mask)
            _no_script_ran(browser, expected_title)
            body = browser.evaluate("document.body.textContent")
            assert PAYLOADS[0] in body and PAYLOADS[1] in body, path.name  # shown as text
        # the comparison page shows every hostile field as text, where it belongs
        _open(browser, both, True)
        header = browser.evaluate("document.querySelector('header').textContent")
        assert f"base{EVIL}" in header and f"set{EVIL}" in header
        first = browser.evaluate("document.querySelector('section.pair td.sent').textContent")
        assert first == f"{EVIL} a0 [MASK]."
        assert browser.errors() == [] and browser.evaluate("biasprobeReport.errors") == []


# --------------------------------------------------------------------------- as a user


EVIL_DIR = "<img src=x onerror=document.title='XSS'>"
GOOD = """name: t
version: 1
description: test
source: test
orientation: {minoritized: women, normative: men}
pairs:
  - id: works
    template: "The [woman|man] works as a [MASK]."
    groups: [women, men]
"""


@needs_chromium
@pytest.mark.browser
def test_cli_run_on_a_hostile_model_folder_and_tampered_run(tiny_bert, tmp_path, monkeypatch):
    """The issue's reproduction: a default (--store topn) run with --html on a local checkpoint
    whose folder name is a script payload, then ``report`` of a run folder whose results.json
    names a hostile model."""
    from report_browser import HeadlessChromium

    from biasprobe.cli import app

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_bert, tmp_path / EVIL_DIR)
    (tmp_path / "p.yaml").write_text(GOOD)
    cli = CliRunner()
    res = cli.invoke(app, ["run", "p.yaml", "-m", f"./{EVIL_DIR}", "-o", "run", "--html", "-q"])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "stored only each pair's top" in page  # the note of issue 17 is on the page
    assert "<img src=x" not in page
    # a tampered results.json: another hostile model name, everywhere it is written
    meta = json.loads((tmp_path / "run" / "results.json").read_text(encoding="utf-8"))
    old = meta["models"][0]["name"]
    new = f"m{EVIL}"
    meta["models"][0]["name"] = new
    meta["files"]["logprobs"] = {new: meta["files"]["logprobs"][old]}
    (tmp_path / "run" / "results.json").write_text(json.dumps(meta), encoding="utf-8")
    for name in ("topk", "scores", "summary", "targets"):
        f = tmp_path / "run" / f"{name}.csv"
        t = pd.read_csv(f, keep_default_na=False, dtype=str)
        t["model"] = t["model"].replace(old, new)
        t.to_csv(f, index=False)
    res = cli.invoke(app, ["report", "run", "-o", "tampered.html"])
    assert res.exit_code == 0, res.output
    tampered = (tmp_path / "tampered.html").read_text(encoding="utf-8")
    assert "<img src=x" not in tampered and "stored only each pair's top" in tampered
    with HeadlessChromium() as browser:
        for path in (tmp_path / "run" / "report.html", tmp_path / "tampered.html"):
            _open(browser, path, True)
            _no_script_ran(browser, "biasprobe report: t")
            note = browser.evaluate("document.getElementById('left-out').textContent")
            assert (EVIL_DIR if path.parent.name == "run" else new) in note
