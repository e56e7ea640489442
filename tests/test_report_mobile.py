"""Reports fit a phone's screen: at 390 × 844 px the page itself never scrolls sideways
(plots fit the viewport; a wide table scrolls inside its own box), for the fill-mask report,
the comparison report (two models) and the downstream report. Checked in headless Chromium."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import report_fixtures as rf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from report_browser import find_chromium  # noqa: E402  (a test tool, not in the wheel)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium() is None, reason="headless Chromium not installed"),
    pytest.mark.skipif(not rf.data_available(), reason="recorded PAIR data not found"),
]

#: Per page: the page's own width, the viewport's, and every plot and table box that sticks
#: out of the viewport without being inside a box that scrolls it.
MEASURE = """(() => {
  const W = window.innerWidth;
  const scrolls = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      if (p === document.body || p === document.documentElement) return false;
      if (/(auto|scroll)/.test(getComputedStyle(p).overflowX) && p.clientWidth <= W) return true;
    }
    return false;
  };
  const out = [];
  for (const el of document.querySelectorAll('div.plot, .js-plotly-plot, table, tbody, svg')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > W + 0.5 && !scrolls(el))
      out.push(el.tagName + '.' + (el.className.baseVal ?? el.className) + ' → ' + r.right);
  }
  return {page: document.documentElement.scrollWidth, viewport: W, outside: out,
          plots: Array.from(document.querySelectorAll('div.plot .main-svg')).length};
})()"""


def _downstream_page(tmp_path: Path) -> Path:
    from biasprobe.backends.classifiers import ClassifierBackend as Classifier
    from biasprobe.downstream.run import run_downstream
    from biasprobe.probes import ProbeItem
    from biasprobe.report.counterfactual import write_downstream_report

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
            f"template-with-a-long-name-{t}",
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
    models = [Shifted("a-classifier-with-a-long-name", -0.2), Shifted("other", 0.1)]
    result = run_downstream(items, models, set_name="s", n_boot=200)
    return write_downstream_report([result], tmp_path / "downstream.html")


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    from biasprobe.probes import load_probe_set
    from biasprobe.report.fillmask import write_report
    from biasprobe.runner import run as run_probes

    tmp = tmp_path_factory.mktemp("mobile")
    probes = load_probe_set(ROOT / "probes" / "pair-names.yaml")
    recorded = ROOT / "biasprobe" / "data" / "recorded" / "bert-large-uncased-whole-word-masking"
    quick = run_probes(probes, [f"recorded:{recorded}"], exclude=["cpr-*"], n_bootstrap=200)
    two = rf.make_run(rf.PAIRS, (rf.BERT, rf.SYNTHETIC))
    return {
        "fill-mask": (write_report([quick], tmp / "fill-mask.html"), True),
        "comparison": (write_report([two], tmp / "comparison.html"), True),
        "downstream": (_downstream_page(tmp), False),
    }


def _measure(path: Path, interactive: bool, size: tuple[int, int], plots: int = 3) -> dict:
    from report_browser import HeadlessChromium

    with HeadlessChromium(width=size[0], height=size[1]) as browser:
        browser.navigate(path.resolve().as_uri())
        if interactive:
            browser.wait_for("window.biasprobeReport && window.biasprobeReport.ready", timeout=60)
            assert browser.evaluate("biasprobeReport.errors") == []
        else:
            browser.wait_for(
                "document.readyState === 'complete' && "
                f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {plots}",
                timeout=60,
            )
        got = browser.evaluate(MEASURE)
        assert browser.errors() == []
    return got


@pytest.mark.parametrize("kind", ["fill-mask", "comparison", "downstream"])
@pytest.mark.parametrize("size", [(390, 844), (1400, 900)])
def test_the_page_never_scrolls_sideways(pages, kind, size):
    path, interactive = pages[kind]
    got = _measure(path, interactive, size)
    assert got["viewport"] == size[0]
    assert got["page"] <= got["viewport"], got
    assert got["outside"] == [], got
    if interactive:
        assert got["plots"] >= 2  # the first pair's scatter and differences view were drawn


@pytest.mark.parametrize("size", [(390, 844), (1400, 900)])
def test_the_crows_page_fits_a_phone(tiny_bert, tmp_path, size):
    from biasprobe.backends.hf import load_hf_masked_lm
    from biasprobe.crows.run import run_crows
    from biasprobe.report.crows import render_html

    backend = load_hf_masked_lm(str(tiny_bert), device="cpu", batch_size=8)
    try:
        crows = run_crows(backend, scoring="meade", limit=6)
    finally:
        backend.close()
    page = tmp_path / "crows.html"
    page.write_text(render_html(crows), encoding="utf-8")
    got = _measure(page, False, size, plots=0)
    assert got["page"] <= got["viewport"] == size[0], got
    assert got["outside"] == [], got
