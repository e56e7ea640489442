"""One report call for every kind of run: ``biasprobe.report.write_report`` picks the renderer
of the runs' kind (fill-mask, counterfactual, CrowS-Pairs); runs of kinds no page shows together
are refused with a message naming each run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import report_fixtures as rf

from biasprobe.backends.classifiers import ClassifierBackend as Classifier
from biasprobe.downstream.run import run_downstream
from biasprobe.errors import UsageError
from biasprobe.fsio import is_biasprobe_report
from biasprobe.probes import ProbeItem
from biasprobe.report import RENDERERS, kind_of, render_report, report_html, write_report
from biasprobe.report.counterfactual import render_downstream_report
from biasprobe.report.crows import render_html


def _now_free(page: str) -> str:
    """The page without the minute it was written and plotly's random div ids."""
    page = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "NOW", page)
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", page)


class _Tilted(Classifier):
    kind = "test"
    labels = ("negative", "positive")
    positive = 1

    def __init__(self, name: str, shift: float):
        self.name, self.shift, self.info = name, shift, {}

    def _probs(self, texts):
        p = np.array([0.4 + 0.04 * (len(t) % 7) + (self.shift if "she" in t else 0) for t in texts])
        return np.stack([1 - p, p], axis=1)


def _counterfactual_run():
    items = [
        ProbeItem(
            f"t{t}/{j}",
            f"tpl{t}",
            ("women", "men"),
            (f"she works {'x' * j}", f"he works {'x' * j}"),
            0,
            (),
            (),
            f"x.yaml:{t}",
        )
        for t in range(3)
        for j in range(4)
    ]
    return run_downstream(items, [_Tilted("tilted", -0.1)], set_name="cf", n_boot=100)


def _fill_mask_run():
    vocab = ["[PAD]", "[UNK]", "[MASK]", *(f"w{i}" for i in range(30))]
    pairs = [(f"p{i}", ("she", "he"), (f"she {i} [MASK].", f"he {i} [MASK].")) for i in range(3)]
    return rf.make_tiny_run(pairs, vocab, run_id="fm-run")


@pytest.fixture(scope="module")
def crows_folder(tiny_bert, tmp_path_factory) -> Path:
    from biasprobe.backends.hf import load_hf_masked_lm
    from biasprobe.crows.run import run_crows

    backend = load_hf_masked_lm(str(tiny_bert), device="cpu", batch_size=8)
    try:
        result = run_crows(backend, scoring="meade", limit=8)
    finally:
        backend.close()
    # report.html is written by the view layer's renderer, passed in (as the crows command does)
    return result.save(
        tmp_path_factory.mktemp("crows") / "run",
        report=lambda res, path: path.write_text(render_html(res), encoding="utf-8"),
    )


def _load_crows(folder: Path):
    from biasprobe.crows.run import load_crows_run

    return load_crows_run(folder)


def test_every_kind_has_a_renderer():
    assert set(RENDERERS) == {"fill-mask", "counterfactual", "crows-pairs", "holistic-bias"}
    assert all(r.kind == k for k, r in RENDERERS.items())


def test_kind_of_old_and_new_results():
    assert kind_of(_fill_mask_run()) == "fill-mask"
    assert kind_of(_counterfactual_run()) == "counterfactual"  # results.json said "downstream"

    class New:
        kind = "crows-pairs"
        meta = {"kind": "downstream"}

    assert kind_of(New()) == "crows-pairs"


def test_fill_mask_runs_get_the_fill_mask_page():
    run = _fill_mask_run()
    page = report_html([run], sources=["reports/x"], top_n_default=30)
    assert _now_free(page) == _now_free(
        render_report([run], sources=["reports/x"], top_n_default=30)
    )


def test_counterfactual_runs_get_their_page_with_fill_mask_runs_beside():
    cf, fm = _counterfactual_run(), _fill_mask_run()
    page = report_html([cf, fm])
    assert _now_free(page) == _now_free(render_downstream_report([cf, fm]))
    assert 'id="upstream"' in page and "tiny-set" in page


def test_crows_run_folder_reported_from_its_loaded_result(crows_folder, tmp_path):
    """The page of a loaded CrowS run is the page the run wrote into its folder."""
    result = _load_crows(crows_folder)
    assert kind_of(result) == "crows-pairs"
    written = (crows_folder / "report.html").read_text(encoding="utf-8")
    assert report_html([result]) == written == render_html(result)
    out = write_report([result], tmp_path / "crows.html", title="<b>mine</b>")
    page = out.read_text(encoding="utf-8")
    assert is_biasprobe_report(out)
    assert "<title>&lt;b&gt;mine&lt;/b&gt;</title>" in page
    assert page.replace("<title>&lt;b&gt;mine&lt;/b&gt;</title>", "") == re.sub(
        r"<title>[^<]*</title>", "", written
    )


def test_crows_page_of_several_models_shows_each_and_the_stored_comparison(crows_folder):
    """A CrowS result of two models (the shape of a multi-model run: a ``model`` column, a
    comparison table) gets one section per model and the stored comparison, unchanged."""
    import pandas as pd

    one = _load_crows(crows_folder)
    s = one.summary
    two = pd.concat([s.assign(model="base"), s.assign(model="other", metric=s["metric"] + 5)])
    comparison = pd.DataFrame(
        {
            "model": ["other"],
            "base": ["base"],
            "level": ["overall"],
            "key": ["all"],
            "score": ["stereotype_pct"],
            "base_mean": [50.0],
            "model_mean": [55.0],
            "change": [5.0],
            "ci_low": [-1.25],
            "ci_high": [11.5],
            "n": [8],
            "p_value": [0.3125],
        }
    )

    class Two:
        kind = "crows-pairs"
        models = ["base", "other"]
        meta = one.meta
        summary = two
        pairs = one.pairs

    Two.comparison = comparison
    page = report_html([Two()])
    assert page.count("<svg") == 2 and "<h2>base</h2>" in page and "<h2>other</h2>" in page
    assert "Change from the base model (base)" in page
    assert "<td>+5.00</td><td>[-1.25, +11.50]</td><td>8</td><td>0.312</td>" in page


def test_mixed_kinds_are_refused_naming_the_folders(crows_folder, tmp_path):
    crows, fm = _load_crows(crows_folder), _fill_mask_run()
    out = tmp_path / "r.html"
    with pytest.raises(UsageError) as e:
        write_report([fm, crows], out, sources=["reports/fm-dir", "reports/crows-dir"])
    msg = str(e.value)
    assert "reports/fm-dir is a fill-mask run" in msg
    assert "reports/crows-dir is a crows-pairs run" in msg
    assert not out.exists()
    with pytest.raises(UsageError, match="crows-pairs run"):
        report_html([_counterfactual_run(), crows])


def test_options_of_another_kind_are_refused(crows_folder):
    with pytest.raises(UsageError, match="--pairs is not available for counterfactual runs"):
        report_html([_counterfactual_run()], pairs=["p*"])
    with pytest.raises(UsageError, match="--pairs is not available for crows-pairs runs"):
        report_html([_load_crows(crows_folder)], pairs=["p*"])
    with pytest.raises(UsageError, match="one run folder"):
        report_html([_load_crows(crows_folder)] * 2)
    with pytest.raises(UsageError, match="at least one run"):
        report_html([])
