"""A report that stays a report at scale (issue 12): every pair embeds its top-200 union, the
large views only the chosen pairs; bytes per (pair, model) bounded; the embedded numbers are the
run's own (``token_table``); the page says what it left out and how to get it; runs that stored
only each pair's top-N tokens are reported without the views they lack."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report import Tables, cell_of, payload, vector_of

import biasprobe
from biasprobe.errors import NotStoredError
from biasprobe.probes import load_probe_set
from biasprobe.report import render_report, write_report
from biasprobe.results import RunResult
from biasprobe.scores import full_ranks, spearman_fixed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from report_browser import find_chromium  # noqa: E402  (a test tool, not in the wheel)

needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="headless Chromium not installed (apt-get install chromium)"
)
#: Issue 12's target: 2,000 pairs × 2 models in at most 25 MB.
TARGET_PAIRS, TARGET_BYTES = 2000, 25_000_000


def _probe_set(folder: Path, words: list[str]):
    path = folder / f"scale-{len(words)}.yaml"
    path.write_text(
        "name: scale\nversion: 1\ndescription: many pairs\nsource: tests\n"
        "orientation: {minoritized: women, normative: men}\ntop_k: 10\n"
        "targets: [nurse, doctor, teacher, engineer, cook]\n"
        f"lexicons:\n  word: [{', '.join(words)}]\n"
        "pairs:\n  - id: said\n"
        '    template: "The [man|woman] said {word} and then [MASK]."\n'
        "    groups: [men, women]\n",
        encoding="utf-8",
    )
    return load_probe_set(path)


WORDS = (
    "house river green table music paper window garden silver market summer letter "
    "forest island engine valley doctor corner bridge castle animal winter planet "
    "circle yellow kitchen pocket basket dinner ticket cotton rubber button pencil "
    "hammer ladder mirror carpet bottle candle blanket pillow wallet helmet jacket "
    "sweater rocket tunnel harbor temple"
).split()


@pytest.fixture(scope="module")
def scale_runs(tiny_bert, tiny_bert_b, tmp_path_factory):
    """The same template over 10 and over 50 words, on two random BERTs (real vocabulary)."""
    folder = tmp_path_factory.mktemp("scale")
    models = [str(tiny_bert), str(tiny_bert_b)]
    return {
        # full vectors: the largest page (the chosen pairs' "all" view); _TopNRun below
        # simulates a top-N run from them
        n: biasprobe.run(
            _probe_set(folder, WORDS[:n]), models, device="cpu", n_bootstrap=100, store="full"
        )
        for n in (10, 50)
    }


def _size(run: RunResult) -> int:
    return len(render_report([run]).encode("utf-8"))


def test_bytes_per_pair_and_model_scale_to_the_target(scale_runs):
    small, large = scale_runs[10], scale_runs[50]
    assert small.items["pair_id"].nunique() == 10 and large.items["pair_id"].nunique() == 50
    s10, s50 = _size(small), _size(large)
    # both embed the large views for six pairs (the first and the five most skewed): the
    # difference is forty pairs with the default view only
    per_cell = (s50 - s10) / (40 * 2)
    assert per_cell < 6_000, per_cell
    projected = s50 + (TARGET_PAIRS - 50) * 2 * per_cell
    assert projected <= TARGET_BYTES, projected
    # without the chosen pairs' large views the page would be far bigger: 61 KB per sentence
    data = payload(render_report([large]))
    assert sum(p["big"] for p in data["pairs"]) == 6


def test_embedded_numbers_equal_token_table(scale_runs):
    run = scale_runs[50]
    data = payload(render_report([run]))
    assert data["topn"]["exact"] == 200 and data["topn"]["big"] == 1000
    assert len(data["vocabs"]) == 1 and len(data["vocabs"][0]) == 30522  # once, not per pair
    for p in data["pairs"]:
        for e, model in enumerate(run.models):
            cell = p["cells"][e]
            c = cell_of(data, cell)
            depth = 1000 if p["big"] else 200
            assert cell["d"] == depth
            table = run.token_table(model, p["id"], depth).sort_values("token_id")
            ids = c["ids"]
            assert np.all(np.diff(ids) > 0)
            inside = np.isin(ids, table["token_id"].to_numpy())
            # the union itself, plus the pinned target words outside it
            np.testing.assert_array_equal(ids[inside], table["token_id"].to_numpy())
            vocab = data["vocabs"][0]
            targets = {"nurse", "doctor", "teacher", "engineer", "cook"}
            assert {vocab[i] for i in ids[~inside]} <= targets
            for col, key in (("logprob_a", "la"), ("logprob_b", "lb")):
                assert c[key].dtype == np.float32
                np.testing.assert_array_equal(
                    c[key][inside].astype(np.float64), table[col].to_numpy()
                )
            np.testing.assert_array_equal(c["ra"][inside], table["rank_a"].to_numpy())
            np.testing.assert_array_equal(c["rb"][inside], table["rank_b"].to_numpy())
            # the whole vocabulary (16-bit) only for the pairs with the large views
            assert ("v" in cell) == p["big"]
            if p["big"]:
                la, _ = run.pair_logprobs(model, p["id"])
                codes, lo, step = vector_of(data, e, cell["v"][0])
                back = lo + codes.astype(np.float64) * step
                assert np.max(np.abs(back - la)) <= step / 2 + 1e-6


def test_page_says_what_it_left_out_and_how_to_get_it(scale_runs, tmp_path):
    run = scale_runs[50]
    folder = tmp_path / "my run"
    page = render_report([run], sources=[str(folder)])
    data = payload(page)
    light = [p for p in data["pairs"] if not p["big"]]
    command = f"biasprobe report {shlex.quote(str(folder))}"
    assert data["command"] == command
    note = re.search(r'<p id="views-note"[^>]*>(.*?)</p>', page, re.S).group(1)
    assert "6 of 50 pairs" in note and "--pairs" in note
    assert f"<code>{command.replace(chr(39), '&#x27;')} --pairs " in note
    left = re.search(r'<li id="left-out">(.*?)</li>', page, re.S).group(1)
    assert "top 200" in left and "top 1000" in left and "--pairs" in left
    # light pairs: figures and top-k lists (drawn in the page), no static detail tables
    sec = re.search(
        rf'<section class="pair light" id="pair-{data["pairs"].index(light[0])}".*?</section>',
        page,
        re.S,
    ).group(0)
    assert sec.count('class="plot"') == 4 and 'data-topk="' in sec
    assert "<h4>Target words" not in sec and "<table" not in sec
    # pairs with the large views keep their full sections
    assert page.count('<section class="pair" ') == 6
    # the per-pair and comparison tables still list every pair
    t = Tables()
    t.feed(page)
    assert len(t.tables["pair-scores"]) - 1 == 50 * 2
    assert len(t.tables["comparison"]) - 1 == 50
    # their rows wait in a <template> while the page opens (moved in by the page script)
    for cls in ("pair-scores", "comparison"):
        table = re.search(rf'<table class="sortable {cls}">.*?</table>', page, re.S).group(0)
        assert '<tbody><template class="deferred-rows"><tr>' in table


def test_pairs_option_selects_the_large_views(scale_runs, tmp_path):
    from typer.testing import CliRunner

    from biasprobe.cli import app

    run = scale_runs[10]
    run.save(tmp_path / "run")
    ids = list(dict.fromkeys(run.items["pair_id"]))
    out = tmp_path / "r.html"
    res = CliRunner().invoke(
        app, ["report", str(tmp_path / "run"), "-o", str(out), "--pairs", ids[3], "--pairs", "*/g*"]
    )
    assert res.exit_code == 0, res.output
    data = payload(out.read_text("utf-8"))
    want = {ids[3]} | {i for i in ids if i.split("/")[1].startswith("g")}
    assert len(want) >= 2
    assert {p["id"] for p in data["pairs"] if p["big"]} == want
    for p in data["pairs"]:
        assert [("v" in c) for c in p["cells"]] == [p["id"] in want] * 2
        assert {c["d"] for c in p["cells"]} == {1000 if p["id"] in want else 200}
    # a pattern that matches nothing: a clear message, exit code 2, nothing written
    bad = tmp_path / "bad.html"
    res = CliRunner().invoke(
        app, ["report", str(tmp_path / "run"), "-o", str(bad), "--pairs", "nope*"]
    )
    assert res.exit_code == 2 and "'nope*' matches none of the 10 pairs" in res.output
    assert not bad.exists()


class _TopNRun(RunResult):
    """A run as the default storage keeps it: per pair, the union of both sides' top-N and,
    for models after the first, the base model's top-300 ids (``extra``)."""

    top_n: int = 1000
    extra: bool = True

    def stored_top_n(self, model: str) -> int | None:
        self.logprobs[model]
        return self.top_n

    def pair_logprobs(self, model: str, pair_id: str):
        raise NotStoredError(f"model {model!r}: top {self.top_n} stored")

    def _full(self, model: str, pair_id: str) -> pd.DataFrame:
        table = self.logprobs[model]
        a = table.row(self.sentence(model, pair_id, "A"))
        b = table.row(self.sentence(model, pair_id, "B"))
        return pd.DataFrame(
            {
                "token_id": np.arange(a.size),
                "logprob_a": a.astype(np.float64),
                "logprob_b": b.astype(np.float64),
                "rank_a": full_ranks(a),
                "rank_b": full_ranks(b),
            }
        )

    def pair_tokens(self, model: str, pair_id: str) -> pd.DataFrame:
        full = self._full(model, pair_id)
        keep = (full["rank_a"] <= self.top_n) | (full["rank_b"] <= self.top_n)
        base = self.models[0]
        if self.extra and model != base:
            b = self._full(base, pair_id)
            keep |= full["token_id"].isin(
                b["token_id"][(b["rank_a"] <= 300) | (b["rank_b"] <= 300)]
            )
        return full[keep].reset_index(drop=True)


def _top_n_run(run: RunResult, extra: bool) -> RunResult:
    out = _TopNRun(
        meta=run.meta,
        items=run.items,
        topk=run.topk,
        scores=run.scores,
        summary=run.summary,
        targets=run.targets,
        logprobs=run.logprobs,
    )
    out.extra = extra
    return out


def test_top_n_storage_has_no_all_view_and_says_why(scale_runs):
    full = scale_runs[10]
    base, other = full.models
    t = Tables()
    page_full = render_report([full])
    t.feed(page_full)
    rows_full = {r[0]: r for r in t.tables["comparison"][1:]}
    for extra in (True, False):
        page = render_report([_top_n_run(full, extra)])
        data = payload(page)
        assert all("v" not in c for p in data["pairs"] for c in p["cells"])
        assert data["topn"]["big"] == 1000
        assert "--store full" in page
        t = Tables()
        t.feed(page)
        rows = t.tables["comparison"][1:]
        assert len(rows) == 10
        for row in rows:
            assert row[-2:] == ["n/a (needs --store full)"] * 2
            if extra:  # the base's top 300 are stored for the other model: exact ρ
                assert row[-4:-2] == rows_full[row[0]][-4:-2]
                la_b, lb_b = full.pair_logprobs(base, row[0])
                la_o, lb_o = full.pair_logprobs(other, row[0])
                assert row[-4] == f"{spearman_fixed(la_b, la_o, 300):.3f}"
                assert row[-3] == f"{spearman_fixed(lb_b, lb_o, 300):.3f}"
            else:
                assert all(c.startswith("n/a (") and "not stored" in c for c in row[-4:-2])
        # the scores and their deltas do not depend on the storage
        assert [r[:-4] for r in rows] == [rows_full[r[0]][:-4] for r in rows]


@needs_chromium
@pytest.mark.browser
def test_light_pair_in_the_browser(scale_runs, tmp_path):
    from report_browser import HeadlessChromium

    run = scale_runs[50]
    out = write_report([run], tmp_path / "r.html", sources=["runs/x"])
    data = payload(out.read_text("utf-8"))
    light = next(i for i, p in enumerate(data["pairs"]) if not p["big"])
    pid = data["pairs"][light]["id"]
    with HeadlessChromium() as browser:
        browser.navigate(out.resolve().as_uri())
        browser.wait_for("window.biasprobeReport && window.biasprobeReport.ready", timeout=60)
        browser.evaluate(f"biasprobeReport.showPair({light})", await_promise=True)
        state = browser.evaluate(
            "({points: biasprobeReport.lastRender.points, n: biasprobeReport.lastRender.n,"
            " disabled: Array.from(document.querySelectorAll('button.topn'))"
            ".filter(b => b.disabled).map(b => b.dataset.n),"
            " note: document.getElementById('views-note').textContent,"
            " topk: Array.from(document.querySelectorAll("
            "'section.pair:not([hidden]) div.topks tbody tr')).map(r => "
            "Array.from(r.cells).map(c => c.textContent))})"
        )
        # the per-pair tables' rows wait until the tables come near the screen
        assert browser.evaluate("document.querySelectorAll('template.deferred-rows').length") == 2
        for cls in ("pair-scores", "comparison"):
            browser.evaluate(f"document.querySelector('table.{cls}').scrollIntoView()")
            browser.wait_for(
                f"!document.querySelector('table.{cls} template.deferred-rows')", timeout=30
            )
        rows = browser.evaluate(
            "[document.querySelectorAll('table.pair-scores tbody tr').length,"
            " document.querySelectorAll('table.comparison tbody tr').length,"
            " document.querySelectorAll('template.deferred-rows').length]"
        )
        assert rows == [100, 50, 0]
        assert browser.errors() == [] and browser.evaluate("biasprobeReport.errors") == []
    assert state["disabled"] == ["1000", "all"] and state["n"] == 200
    assert f"biasprobe report runs/x --pairs {pid}" in state["note"]
    for e, model in enumerate(run.models):
        table = run.token_table(model, pid, 200)
        assert state["points"][e] == len(table) + sum(  # the union and the targets outside it
            1 for t in ("nurse", "doctor", "teacher", "engineer", "cook") if t in data["vocabs"][0]
        ) - sum(
            1 for w in table["token"] if w in {"nurse", "doctor", "teacher", "engineer", "cook"}
        )
    # the top-k lists drawn in the page are the run's topk.csv
    tk = run.topk[(run.topk["model"] == run.models[0]) & (run.topk["pair_id"] == pid)]
    rows = state["topk"][:10]
    assert [r[1] for r in rows] == list(tk[tk["side"] == "A"].sort_values("rank")["token"])
    assert [r[3] for r in rows] == list(tk[tk["side"] == "B"].sort_values("rank")["token"])
    assert [r[2] for r in rows] == [
        f"{v:.3f}" for v in tk[tk["side"] == "A"].sort_values("rank")["logprob"]
    ]


@needs_chromium
@pytest.mark.browser
def test_run_storing_fewer_tokens_than_the_default_view(scale_runs, tmp_path):
    from report_browser import HeadlessChromium

    run = _top_n_run(scale_runs[10], extra=True)
    run.top_n = 100
    out = write_report([run], tmp_path / "r.html")
    data = payload(out.read_text("utf-8"))
    assert {c["d"] for p in data["pairs"] for c in p["cells"]} == {100}
    with HeadlessChromium() as browser:
        browser.navigate(out.resolve().as_uri())
        browser.wait_for("window.biasprobeReport && window.biasprobeReport.ready", timeout=60)
        state = browser.evaluate(
            "({n: biasprobeReport.lastRender.n, points: biasprobeReport.lastRender.points,"
            " disabled: Array.from(document.querySelectorAll('button.topn'))"
            ".filter(b => b.disabled).map(b => b.dataset.n),"
            " note: document.getElementById('views-note').textContent})"
        )
        assert browser.errors() == [] and browser.evaluate("biasprobeReport.errors") == []
    # the largest view the run stored for every model is drawn; the others say why not
    assert state["n"] == 30 and state["disabled"] == ["200", "1000", "all"]
    assert "more than the run stored" in state["note"] and "--store full" in state["note"]
    pid = data["pairs"][0]["id"]
    for e, model in enumerate(run.models):
        t = run.token_table(model, pid, 30)
        c = cell_of(data, data["pairs"][0]["cells"][e])
        pinned = [
            i for i in c["ids"][data["pairs"][0]["cells"][e]["t"]] if i not in set(t["token_id"])
        ]
        assert state["points"][e] == len(t) + len(pinned)
