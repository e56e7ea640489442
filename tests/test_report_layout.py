"""Reader-first layout of the reports and the placement of the scatter labels.

* The page opens on its findings: the first heading after the title is the findings block and
  the provenance comes last, collapsed (fill-mask report and downstream report).
* The findings quote summary.csv (same numbers, same CI) and name the most skewed pairs.
* The labels of the README's Jim/Jane figure (the shipped recording of
  bert-large-uncased-whole-word-masking) do not overlap and stay inside the plot area; the
  boxes are rebuilt here from the figure's annotations and axes, not taken from the placer.
* In Chromium at 1400 × 900 the findings headline and a scatter are on the first screen.
"""

from __future__ import annotations

import html as html_mod
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import report_fixtures as rf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from report_browser import find_chromium  # noqa: E402  (a test tool, not in the wheel)

from biasprobe.probes import load_probe_set
from biasprobe.report.figures import (
    LABEL_FONT,
    PairPoints,
    label_order,
    pair_points,
    place_labels,
    text_box_size,
)
from biasprobe.report.fillmask import render_report, write_report
from biasprobe.report.pairdata import shifted_tokens
from biasprobe.runner import run as run_probes

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "biasprobe" / "data" / "recorded"
needs_data = pytest.mark.skipif(
    not rf.data_available(), reason=f"recorded PAIR logits not found in {rf.DATA_DIR}"
)
needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="headless Chromium not installed (apt-get install chromium)"
)


class _Outline(HTMLParser):
    """Headings in document order, each with the id of the section holding it, and whether
    each <details> of the provenance section is open."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[tuple[str, str, str | None]] = []
        self.sections: list[str | None] = []
        self.top_sections: list[str | None] = []
        self.prov_details_open: list[bool] = []
        self._stack: list[str | None] = []
        self._heading: list[str] | None = None
        self._tag = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            if not self._stack:
                self.top_sections.append(a.get("id"))
            self._stack.append(a.get("id"))
            self.sections.append(a.get("id"))
        if tag == "details" and "provenance" in self._stack:
            self.prov_details_open.append("open" in a)
        if tag in ("h1", "h2", "h3"):
            self._heading, self._tag = [], tag

    def handle_endtag(self, tag):
        if tag == "section" and self._stack:
            self._stack.pop()
        if tag == self._tag and self._heading is not None:
            where = next((s for s in reversed(self._stack) if s), None)
            self.headings.append((tag, "".join(self._heading).strip(), where))
            self._heading = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)


def outline(page: str) -> _Outline:
    o = _Outline()
    o.feed(page)
    return o


def _recorded_run(pattern: str, model: str, exclude: str | None = None):
    probes = load_probe_set(ROOT / "probes" / "pair-names.yaml")
    return run_probes(
        probes,
        [f"recorded:{RECORDED / model}"],
        pairs=None if exclude else [pattern],
        exclude=[exclude] if exclude else None,
        n_bootstrap=200,
    )


@pytest.fixture(scope="module")
def jim_jane():
    return _recorded_run("jim-jane", "bert-large-uncased-whole-word-masking")


# --------------------------------------------------------------------------- page order


@needs_data
def test_fill_mask_report_opens_on_findings_and_ends_with_provenance():
    run = rf.make_run(rf.PAIRS, (rf.BERT, rf.SYNTHETIC))
    page = render_report([run])
    o = outline(page)
    assert o.headings[0][0] == "h1"
    tag, text, section = o.headings[1]
    assert (tag, text, section) == ("h2", "Findings", "findings")
    # then the figures, the tables, and provenance last, collapsed
    assert o.top_sections.index("findings") < o.top_sections.index("pairs")
    assert o.top_sections.index("pairs") < o.top_sections.index("summary")
    assert o.top_sections[-1] == "provenance"
    assert [h for h in o.headings if h[0] == "h2"][-1][1] == "Provenance"
    assert o.prov_details_open and not any(o.prov_details_open)
    # the findings state the set-level Jaccard distance (the mean of the template means,
    # computed here from scores.csv) and n; with 5 templates there is no set-level interval,
    # so they say why and give each template's mean and interval instead
    findings = page[page.index('<section id="findings">') : page.index('<section id="pairs">')]
    text = " ".join(html_mod.unescape(re.sub(r"<[^>]+>", "", findings)).split())
    s = run.summary
    for model in (rf.BERT, rf.SYNTHETIC):
        sc = run.scores[run.scores.model == model]
        t_means = sc.groupby("template_id", sort=False)["jaccard_distance"].mean()
        assert len(t_means) == 5
        sentence = (
            f"Across {len(sc)} pairs, the top-10 fills after <b>the minoritized side</b> and "
            f"after <b>the normative side</b> have a mean Jaccard distance of "
            f"<b class='num'>{t_means.mean():.2f}</b> (0 = the same fills, 1 = none in common)."
        )
        assert sentence in findings, model
        listed = []
        tmpl = s[(s.model == model) & (s.level == "template") & (s.score == "jaccard_distance")]
        for key, mean in t_means.items():
            r = tmpl[tmpl.key == key].iloc[0]
            ci = "" if r.n < 2 else f" ({r.ci_low:.2f}–{r.ci_high:.2f})"
            listed.append(f"{key} {mean:.2f}{ci}")
        want = (
            "Too few templates (5; needs 6) for a set-level interval or test; per template: "
            + ", ".join(listed)
            + "."
        )
        assert want in text, (want, text)
    assert not re.search(r"\bnan\b", text)
    # the most skewed pairs: the three largest Jaccard distances of the base model
    sc = run.scores[run.scores.model == rf.BERT]
    worst = sc.sort_values("jaccard_distance", ascending=False, kind="stable")
    first = worst.iloc[0]
    assert f">{first.pair_id}</a> ({first.jaccard_distance:.2f})" in findings


@needs_data
def test_first_pair_figures_come_before_the_tables():
    run = rf.make_run(rf.PAIRS[:2], (rf.BERT,))
    page = render_report([run])
    first_plot = page.index('data-kind="scatter"')
    assert page.index('id="findings"') < first_plot < page.index('id="summary"')
    assert first_plot < page.index("<table")  # no table above the first scatter


def test_downstream_report_opens_on_findings_and_ends_with_provenance():
    from biasprobe.backends.classifiers import ClassifierBackend as Classifier
    from biasprobe.downstream.run import run_downstream
    from biasprobe.probes import ProbeItem
    from biasprobe.report.counterfactual import render_downstream_report

    class Shifted(Classifier):
        kind = "test"
        labels = ("negative", "positive")
        positive = 1

        def __init__(self, name, shift):
            self.name, self.shift, self.info = name, shift, {}

        def _probs(self, texts):
            p = np.array(
                [0.3 + 0.05 * (len(t) % 9) + (self.shift if "she" in t else 0) for t in texts]
            )
            return np.stack([1 - p, p], axis=1)

    items = [
        ProbeItem(
            f"t{t}/{j}",
            f"tpl{t}",
            ("women", "men"),
            (f"she {'x' * j}", f"he {'x' * j}"),
            0,
            (),
            (),
            f"x.yaml:{t}",
        )
        for t in range(3)
        for j in range(5)
    ]
    result = run_downstream(items, [Shifted("base", -0.2)], set_name="s", n_boot=200)
    page = render_downstream_report([result])
    o = outline(page)
    assert o.headings[0][0] == "h1"
    assert o.headings[1][0] == "h2" and o.headings[1][2] == "finding"
    assert o.top_sections[0] == "finding" and o.top_sections[-1] == "provenance"
    assert [h for h in o.headings if h[0] == "h2"][-1][1] == "Provenance"
    assert o.prov_details_open and not any(o.prov_details_open)
    d = result.summary[(result.summary.level == "set") & (result.summary.score == "delta")].iloc[0]
    finding = page[page.index('id="finding"') : page.index("</section>")]
    text = " ".join(html_mod.unescape(re.sub(r"<[^>]+>", "", finding)).split())
    # the set mean: the mean of the template means of P(pos | she) − P(pos | he), here
    deltas = {t: [] for t in range(3)}
    for t in range(3):
        for j in range(5):
            p_she = 0.3 + 0.05 * (len(f"she {'x' * j}") % 9) - 0.2
            p_he = 0.3 + 0.05 * (len(f"he {'x' * j}") % 9)
            deltas[t].append(p_she - p_he)
    mean = float(np.mean([np.mean(v) for v in deltas.values()]))
    assert f"<b>{mean:+.3f}</b>" in finding and f"<b>{d['mean']:+.3f}</b>" in finding
    # 3 templates: no set-level interval or test; the finding says why, and gives the
    # template rows (each with its own interval over its pairs)
    assert f"(n = {int(d['n'])} pairs in 3 templates)" in text
    assert "Too few templates (3; needs 6) for a set-level interval or test" in text
    tmpl = result.summary[(result.summary.level == "template") & (result.summary.score == "delta")]
    for r in tmpl.itertuples():
        assert f"{r.key} {np.mean(deltas[int(r.key[3:])]):+.3f} (95% CI {r.ci_low:+.3f} … " in text
    assert not re.search(r"\bnan\b|95% CI —", text)


# --------------------------------------------------------------------------- findings


@needs_data
def test_shifted_tokens_against_an_independent_count():
    run = rf.make_run(rf.PAIRS, (rf.BERT,))
    got = shifted_tokens(run, rf.BERT, [p[0] for p in rf.PAIRS], top=50)
    vocab = rf.vocab()
    expect: dict[str, dict[str, list[float]]] = {"minoritized": {}, "normative": {}}
    for pid, *_ in rf.PAIRS:
        items = run.items[run.items.pair_id == pid].sort_values("side")
        roles = list(items.role)
        la, lb = run.pair_logprobs(rf.BERT, pid)
        a, b = set(np.argsort(-la, kind="stable")[:10]), set(np.argsort(-lb, kind="stable")[:10])
        for t in a - b:
            expect[roles[0]].setdefault(vocab[t], []).append(la[t] - lb[t])
        for t in b - a:
            expect[roles[1]].setdefault(vocab[t], []).append(lb[t] - la[t])
    for role, toks in got.items():
        for tok, count, shift in toks:
            assert count == len(expect[role][tok])
            assert shift == pytest.approx(np.mean(expect[role][tok]))
        counts = [c for _, c, _ in toks]
        assert counts == sorted(counts, reverse=True)


# --------------------------------------------------------------------------- labels


def _label_boxes(fig) -> tuple[list[tuple[float, ...]], list[str], list[tuple[float, ...]]]:
    """Label boxes rebuilt from the figure: each annotation's point mapped through its axes'
    domain and range to pixels, shifted by (xshift, −yshift), sized from its text in the
    monospace label font (advance 0.6 em, line 1.3 em). Also the plot area of each axis."""
    lay = fig.layout
    width, height = lay.width, lay.height
    boxes, texts, areas = [], [], {}
    for ann in lay.annotations:
        if ann.name != "label":
            continue
        suffix = ann.xref[1:]
        xa, ya = lay[f"xaxis{suffix}"], lay[f"yaxis{suffix}"]
        x0, x1 = xa.domain[0] * width, xa.domain[1] * width
        y0, y1 = (1 - ya.domain[1]) * height, (1 - ya.domain[0]) * height
        areas[suffix] = (x0, y0, x1, y1)
        px = x0 + (ann.x - xa.range[0]) / (xa.range[1] - xa.range[0]) * (x1 - x0)
        py = y0 + (ya.range[1] - ann.y) / (ya.range[1] - ya.range[0]) * (y1 - y0)
        if ann.showarrow:  # a leader line: the text is centred on the line's tail
            cx, cy = px + ann.ax, py + ann.ay
        else:
            cx, cy = px + ann.xshift, py - ann.yshift
        size = ann.font.size
        assert "monospace" in ann.font.family
        w, h = len(ann.text) * 0.6 * size, 1.3 * size
        boxes.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, suffix))
        texts.append(ann.text)
    return boxes, texts, areas


def _assert_no_overlap_inside(fig) -> list[str]:
    boxes, texts, areas = _label_boxes(fig)
    assert boxes, "no labels"
    for i, a in enumerate(boxes):
        area = areas[a[4]]
        assert area[0] <= a[0] and area[1] <= a[1] and a[2] <= area[2] and a[3] <= area[3], (
            f"label {texts[i]!r} {a[:4]} outside the plot area {area}"
        )
        for j in range(i):
            b = boxes[j]
            if a[4] != b[4]:
                continue
            apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
            assert apart, f"labels {texts[j]!r} and {texts[i]!r} overlap"
    return texts


def _readme_figures(run):
    """The figures `biasprobe report RUN --figures png` writes for this run."""
    from biasprobe.report.export import _pair_figures

    figs, names = _pair_figures([run], ("scatter", "differences"), 200)
    return dict(zip(names, figs, strict=True))


def test_readme_jim_jane_figure_labels_do_not_overlap(jim_jane):
    figs = _readme_figures(jim_jane)
    model = jim_jane.models[0]
    from biasprobe.results import model_slug

    for view in ("", "__differences"):
        fig = figs[f"jim-jane__{model_slug(model)}{view}"]
        texts = _assert_no_overlap_inside(fig)
        # each side's top-3 fills are labelled (computed here from the log-probs)
        tokens = jim_jane.pair_tokens(model, "jim-jane")  # full-vocabulary ranks
        vocab = jim_jane.vocab(model)
        for rank in ("rank_a", "rank_b"):
            top3 = tokens.sort_values(rank)["token_id"][:3]
            assert (tokens.sort_values(rank)[rank][:3] == [1, 2, 3]).all()
            for i in top3:
                assert vocab[i] in texts, (view, vocab[i])
        # the pairs that collided before are now both labelled, apart
        assert {"miner", "fisherman", "lineman", "boy", "nanny", "maid"} <= set(texts)
        assert len(texts) >= 14


def test_cpr_target_words_are_labelled():
    run = _recorded_run("cpr-*", "zari-bert-cda")
    figs = _readme_figures(run)
    (name,) = [n for n in figs if n.startswith("cpr-doctor-nurse__") and "differences" not in n]
    texts = _assert_no_overlap_inside(figs[name])
    assert {"he", "she", "they"} <= set(texts)
    page = render_report([run])
    # the target words' log-probs are shown in the page, beside the scatter
    t = run.targets
    block = page[page.index("<h4>Target words</h4>") :]
    for word in ("he", "she", "they"):
        a = t[(t.target == word) & (t.side == "A")].logprob.iloc[0]
        b = t[(t.target == word) & (t.side == "B")].logprob.iloc[0]
        assert re.search(
            rf">{word}</td><td class=\"num\" data-v=\"[^\"]*\">1</td>"
            rf"<td class=\"num\" data-v=\"[^\"]*\">{a:.3f}</td>"
            rf"<td class=\"num\" data-v=\"[^\"]*\">{b:.3f}</td>"
            rf"<td class=\"num\" data-v=\"[^\"]*\">{re.escape(f'{b - a:+.3f}')}</td>",
            block,
        ), word


def test_placer_drops_a_label_rather_than_overlap():
    # five points on top of each other in a small area: only what fits is placed, apart
    px = np.array([50.0, 50.5, 51.0, 50.0, 49.5])
    py = np.array([50.0, 50.0, 50.5, 49.5, 50.0])
    texts = ["alpha", "beta", "gamma", "delta", "epsilon"]
    placed = place_labels(px, py, texts, [0, 1, 2, 3, 4], (0.0, 0.0, 120.0, 100.0))
    assert 0 < len(placed) < 5
    assert placed[0].index == 0  # priority order
    for i, a in enumerate(placed):
        w, h = text_box_size(a.text, LABEL_FONT["size"])
        assert a.box[2] - a.box[0] == pytest.approx(w) and a.box[3] - a.box[1] == pytest.approx(h)
        assert 0 <= a.box[0] and a.box[2] <= 120 and 0 <= a.box[1] and a.box[3] <= 100
        for b in placed[:i]:
            assert (
                a.box[2] <= b.box[0]
                or b.box[2] <= a.box[0]
                or a.box[3] <= b.box[1]
                or (b.box[3] <= a.box[1])
            )
    # deterministic
    again = place_labels(px, py, texts, [0, 1, 2, 3, 4], (0.0, 0.0, 120.0, 100.0))
    assert again == placed


def test_label_order_targets_then_top_fills_then_skewed():
    a = np.log(np.array([0.5, 0.2, 0.1, 0.05, 0.05, 0.04, 0.03, 0.02, 0.01]))
    b = np.log(np.array([0.05, 0.05, 0.1, 0.5, 0.2, 0.04, 0.01, 0.03, 0.02]))
    pts: PairPoints = pair_points(a, b, 9, pinned=[8])
    order = [int(pts.ids[k]) for k in label_order(pts, target_ids=[8], per_side=2)]
    # target word 8; top-3 of A (0, 1, 2) and of B (3, 4, 2) interleaved; then most skewed
    assert order[:6] == [8, 0, 3, 1, 4, 2]
    assert len(order) == len(set(order))


# --------------------------------------------------------------------------- in the browser


@needs_chromium
@pytest.mark.browser
def test_first_screen_shows_a_headline_and_a_scatter(tmp_path):
    from report_browser import HeadlessChromium

    # the README's offline demo (every pair but CPR on the BERT-Large recording), and CPR
    demo = _recorded_run("", "bert-large-uncased-whole-word-masking", exclude="cpr-*")
    cpr = _recorded_run("cpr-*", "zari-bert-cda")
    out = write_report([demo, cpr], tmp_path / "r.html")
    with HeadlessChromium(width=1400, height=900) as browser:
        browser.navigate(out.resolve().as_uri())
        browser.wait_for("window.biasprobeReport && window.biasprobeReport.ready", timeout=60)
        assert browser.errors() == [] and browser.evaluate("biasprobeReport.errors") == []
        headline = browser.evaluate(
            "(() => { const r = document.querySelector('#findings p.headline')"
            ".getBoundingClientRect(); return [r.top, r.bottom]; })()"
        )
        plot = browser.evaluate(
            "(() => { const r = document.querySelector('section.pair:not([hidden]) "
            "div.plot[data-kind=scatter] .nsewdrag').getBoundingClientRect();"
            " return [r.top, r.bottom, r.width]; })()"
        )
        assert headline[1] < 900 and plot[0] < 900 - 200, (headline, plot)
        assert plot[2] > 420  # the drawing area itself, wider than the old ~400 px
        text = browser.evaluate("document.querySelector('#findings p.headline').textContent")
        # 5 templates: the mean, why there is no set-level interval, the template rows
        assert re.search(r"distance of \d\.\d\d \(0 = the same fills", text), text
        s = demo.summary
        r = s[(s.level == "template") & (s.score == "jaccard_distance")]
        r = r[r.key == "employed-he-she"].iloc[0]
        assert "Too few templates (5; needs 6)" in text
        assert f"employed-he-she {r['mean']:.2f} ({r.ci_low:.2f}–{r.ci_high:.2f})" in text
        # the CPR pair: the he / she / they dots carry labels in the page
        last = browser.evaluate("document.querySelectorAll('section.pair').length - 1")
        browser.evaluate(f"biasprobeReport.showPair({last})", await_promise=True)
        labels = browser.evaluate(
            "Array.from(document.querySelector('section.pair:not([hidden]) div.plot')"
            ".layout.annotations).filter(a => a.name === 'label').map(a => a.text)"
        )
        assert {"he", "she", "they"} <= set(labels), labels


# --------------------------------------------------------------------------- command line


def _kaleido() -> bool:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return find_chromium() is not None


@pytest.mark.slow
@pytest.mark.skipif(not _kaleido(), reason="kaleido or Chromium not installed")
def test_report_figures_pdf_names_the_full_path(jim_jane, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from biasprobe.cli import app

    jim_jane.save(tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["report", "run", "-o", "out/r.html", "--figures", "pdf"])
    assert res.exit_code == 0, res.output
    folder = (tmp_path / "out" / "r-figures").resolve()
    assert f"wrote 2 pdf figures to {folder}/" in res.output
    names = sorted(p.name for p in folder.glob("*.pdf"))
    from biasprobe.results import model_slug

    slug = model_slug(jim_jane.models[0])
    assert names == [f"jim-jane__{slug}.pdf", f"jim-jane__{slug}__differences.pdf"]
    assert all((folder / n).read_bytes()[:5] == b"%PDF-" for n in names)
    bad = CliRunner().invoke(app, ["report", "run", "-o", "out/r.html", "--figures", "jpg"])
    assert bad.exit_code == 2 and "png, svg or pdf" in bad.output
