"""The downstream report page: structure, escaping of user text, safe writing."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest

from biasprobe.backends.classifiers import ClassifierBackend as Classifier
from biasprobe.downstream.run import load_downstream_run, run_downstream
from biasprobe.fsio import REPORT_MARKER, NotOwnedError
from biasprobe.probes import ProbeItem
from biasprobe.report.counterfactual import render_downstream_report, write_downstream_report

EVIL = "<script>alert(1)</script>"


class Shifted(Classifier):
    kind = "test"
    labels = ("negative", "positive")
    positive = 1

    def __init__(self, name, shift):
        self.name, self.shift, self.info = name, shift, {"accuracy": 0.8, "accuracy_n": 500}

    def _probs(self, texts):
        p = np.array([0.3 + 0.05 * (len(t) % 9) + (self.shift if "she" in t else 0) for t in texts])
        return np.stack([1 - p, p], axis=1)


def _items():
    out = []
    for t in range(3):
        for j in range(5):
            tail = "x" * j
            out.append(
                ProbeItem(
                    f"t{t}/{j}",
                    f"tpl{t}" if t else EVIL,
                    (EVIL, "men"),
                    (f"she {EVIL} {tail}", f"he {EVIL} {tail}"),
                    0,
                    (),
                    (),
                    f"x.yaml:{t}",
                )
            )
    return out


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.scripts, self.ids = [], 0, set()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.scripts += tag == "script"
        self.ids.update(v for k, v in attrs if k == "id")


@pytest.fixture(scope="module")
def result():
    return run_downstream(
        _items(), [Shifted(f"base {EVIL}", -0.2), Shifted("twin", -0.05)], set_name="s", n_boot=200
    )


def test_page_structure_and_finding_first(result):
    page = render_downstream_report([result])
    assert REPORT_MARKER in page
    p = _Collect()
    p.feed(page)
    assert {"finding", "accuracy", "comparison", "tables", "provenance"} <= p.ids
    assert (
        page.index('id="finding"') < page.index('class="run-figs"') < page.index('id="comparison"')
    )
    d = result.summary[(result.summary.level == "set") & (result.summary.score == "delta")].iloc[0]
    assert f"<b>{d['mean']:+.3f}</b>" in page  # the finding sentence carries the set mean
    assert f"n = {int(d['n'])} pairs" in page
    assert "plotly" in page.lower() and 'class="plotly-graph-div"' in page
    assert "0.800" in page  # recorded accuracy is shown


def test_user_text_is_escaped(result):
    page = render_downstream_report([result])
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # inside plotly's JSON the text is escaped for its HTML-subset labels as well
    assert "alert(1)<\\/script>" not in page
    assert len(re.findall(r"<script", page)) == page.count("</script>")


def test_write_report_and_run_folder_with_html(result, tmp_path):
    out = write_downstream_report([result], tmp_path / "r.html")
    assert REPORT_MARKER in out.read_text()
    write_downstream_report([result], out)  # its own report may be replaced
    foreign = tmp_path / "mine.html"
    foreign.write_text("<html>mine</html>")
    with pytest.raises(NotOwnedError):
        write_downstream_report([result], foreign)
    assert foreign.read_text() == "<html>mine</html>"
    # the run folder's report is written by the view layer's writer, passed in
    run = result.save(
        tmp_path / "run", report=lambda res, path: write_downstream_report([res], path)
    )
    assert (run / "report.html").is_file()
    back = load_downstream_run(run)
    assert render_downstream_report([back]).count('id="finding"') == 1
