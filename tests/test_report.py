"""Tests of the HTML report and static figures (biasprobe.report).

Numbers on the page are checked against computations made here from the raw recorded logits
(``../shared/data/pair-fill-in-the-blank``), not against the report's own helpers.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import re
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import report_fixtures as rf
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from report_browser import find_chromium  # noqa: E402  (a test tool, not in the wheel)

from biasprobe.errors import BiasprobeError, OutputError, UsageError
from biasprobe.report import StaticExportError, export_figures, write_report
from biasprobe.report import pairdata as report_html
from biasprobe.report.figures import (
    dequantize16,
    full_ranks,
    pair_figure,
    pair_points,
    quantize16,
    skewed_labels,
)
from biasprobe.results import model_slug

ROOT = Path(__file__).resolve().parents[1]
needs_data = pytest.mark.skipif(
    not rf.data_available(), reason=f"recorded PAIR logits not found in {rf.DATA_DIR}"
)
needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="headless Chromium not installed (apt-get install chromium)"
)


# --------------------------------------------------------------------------- helpers


def raw_logprobs(stem: str) -> list[float]:
    """log p = logits − logsumexp(logits), in plain Python floats (independent of numpy)."""
    with gzip.open(rf.DATA_DIR / f"{stem}.json.gz", "rt", encoding="utf-8") as f:
        logits = json.load(f)
    m = max(logits)
    lse = m + math.log(math.fsum(math.exp(x - m) for x in logits))
    return [x - lse for x in logits]


def fmt(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.3f}"


def payload(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="biasprobe-data">(.*?)</script>', page, re.S)
    assert m, "no data element"
    return json.loads(m.group(1))


def columns(data: dict) -> dict[str, np.ndarray]:
    """The embedded columns, decoded here independently of the report module: base64, zlib,
    then each column's byte planes put back together."""
    raw = zlib.decompress(base64.b64decode(data["blob"]["zlib"]))
    out, pos = {}, 0
    for col in data["blob"]["columns"]:
        size = {"f4": 4, "u2": 2, "u4": 4}[col["type"]]
        planes = np.frombuffer(raw, np.uint8, col["n"] * size, pos).reshape(size, col["n"])
        interleaved = np.ascontiguousarray(planes.T).reshape(-1)
        out[col["name"]] = interleaved.view("<" + col["type"])
        pos += col["n"] * size
    assert pos == len(raw)
    return out


def cell_of(data: dict, cell: dict) -> dict[str, np.ndarray]:
    """ids, ra, rb, la, lb of one embedded (pair, model) cell (ids stored as gaps)."""
    cols = columns(data)
    o, n = cell["o"], cell["n"]
    out = {k: cols[k][o : o + n] for k in ("ra", "rb", "la", "lb")}
    out["ids"] = np.cumsum(cols["id"][o : o + n].astype(np.int64))
    return out


def vector_of(data: dict, entry: int, index: int) -> tuple[np.ndarray, float, float]:
    """The 16-bit codes of one embedded full vector, with its ``lo`` and ``step``."""
    v = data["entries"][entry]["vectors"][index]
    size = len(data["vocabs"][data["entries"][entry]["vocab"]])
    return columns(data)["q"][v["o"] : v["o"] + size], v["lo"], v["step"]


class Tables(HTMLParser):
    """Collects the text of every table cell, per table class."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._stack: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            cls = (a.get("class") or "").replace("sortable", "").strip() or "plain"
            self._stack.append(cls)
            self.tables.setdefault(cls, [])
        elif tag == "tr" and self._stack:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table" and self._stack:
            self._stack.pop()
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._stack:
            self.tables[self._stack[-1]].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables(page: str) -> dict[str, list[list[str]]]:
    p = Tables()
    p.feed(page)
    return p.tables


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def run():
    if not rf.data_available():
        pytest.skip(f"recorded PAIR logits not found in {rf.DATA_DIR}")
    return rf.make_run()


@pytest.fixture(scope="module")
def report(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    write_report([run], out)
    return out, out.read_text(encoding="utf-8")


def jim_jane_cell(data: dict, entry: int = 0) -> dict:
    pair = next(p for p in data["pairs"] if p["id"] == "jim-jane")
    return pair["cells"][entry]


# --------------------------------------------------------------------------- embedded numbers


@needs_data
def test_embedded_jim_jane_top1_matches_raw_logits(report):
    _, page = report
    data = payload(page)
    vocab = data["vocabs"][0]
    c = cell_of(data, jim_jane_cell(data))
    ids, la, lb, ra, rb = c["ids"], c["la"], c["lb"], c["ra"], c["rb"]
    jim = raw_logprobs("sentence-jim-worked-as-a-mask-embed")
    jane = raw_logprobs("sentence-jane-worked-as-a-mask-embed")

    top_a = int(ids[ra == 1][0])
    top_b = int(ids[rb == 1][0])
    assert vocab[top_a] == "mechanic"
    assert vocab[top_b] == "waitress"
    assert top_a == max(range(len(jim)), key=jim.__getitem__)
    assert top_b == max(range(len(jane)), key=jane.__getitem__)
    assert la[ra == 1][0] == pytest.approx(jim[top_a], abs=1e-5)
    assert lb[rb == 1][0] == pytest.approx(jane[top_b], abs=1e-5)
    assert round(jim[top_a], 2) == -2.16
    assert round(jane[top_b], 2) == -1.77
    # every embedded value is the exact log-softmax
    np.testing.assert_allclose(la, np.asarray(jim)[ids], atol=2e-6)
    np.testing.assert_allclose(lb, np.asarray(jane)[ids], atol=2e-6)
    # and the top-k list on the page shows them
    rows = [r for r in tables(page)["plain"] if r and r[0] == "1" and "mechanic" in r]
    assert rows and rows[0][1:5] == [
        "mechanic",
        f"{jim[top_a]:.3f}",
        "waitress",
        f"{jane[top_b]:.3f}",
    ]


@needs_data
def test_embedded_union_and_ranks_are_exact(report):
    _, page = report
    data = payload(page)
    c = cell_of(data, jim_jane_cell(data))
    ids, ra, rb = c["ids"], c["ra"], c["rb"]
    # the run stores float32 log-probs: rank those (ties in float32 go to the lower id)
    jim = np.asarray(raw_logprobs("sentence-jim-worked-as-a-mask-embed"), dtype=np.float32)
    jane = np.asarray(raw_logprobs("sentence-jane-worked-as-a-mask-embed"), dtype=np.float32)
    # ranks by a stable sort of −logp: ties keep the lower id first
    rank_a = np.empty(jim.size, int)
    rank_a[np.argsort(-jim, kind="stable")] = np.arange(1, jim.size + 1)
    rank_b = np.empty(jane.size, int)
    rank_b[np.argsort(-jane, kind="stable")] = np.arange(1, jane.size + 1)
    np.testing.assert_array_equal(ra, rank_a[ids])
    np.testing.assert_array_equal(rb, rank_b[ids])
    for n in (30, 200, 1000):
        expect = set(np.argsort(-jim, kind="stable")[:n]) | set(
            np.argsort(-jane, kind="stable")[:n]
        )
        got = set(ids[(ra <= n) | (rb <= n)].tolist())
        assert got == {int(i) for i in expect}, n


@needs_data
def test_quantized_full_vector_is_within_half_a_step(report):
    _, page = report
    data = payload(page)
    cell = jim_jane_cell(data)
    codes, lo, step = vector_of(data, 0, cell["v"][0])
    values = lo + codes.astype(np.float64) * step
    jim = np.asarray(raw_logprobs("sentence-jim-worked-as-a-mask-embed"))
    assert codes.size == jim.size == 30522
    assert step < 0.001
    assert np.max(np.abs(values - jim)) <= step / 2 + 1e-6


@needs_data
def test_vectors_are_embedded_once_per_sentence(report, run):
    _, page = report
    data = payload(page)
    big = [p["id"] for p in data["pairs"] if p["big"]]
    assert 1 < len(big) < len(data["pairs"])  # full vectors for the chosen pairs only
    for e, model in enumerate(run.models):
        t = run.topk[(run.topk["model"] == model) & run.topk["pair_id"].isin(big)]
        assert len(data["entries"][e]["vectors"]) == t["sentence"].nunique()
        for p in data["pairs"]:
            assert ("v" in p["cells"][e]) == p["big"]
    assert len(data["vocabs"]) == 1


# --------------------------------------------------------------------------- page content


@needs_data
def test_header_shows_provenance(report, run):
    _, page = report
    meta = run.meta
    for text in (
        meta["run_id"],
        meta["created"],
        meta["probe_set"]["name"],
        meta["probe_set"]["sha256"],
        meta["probe_set"]["path"],
        meta["versions"]["python"],
        rf.BERT,
        rf.SYNTHETIC,
        "recorded-2021",
    ):
        assert text in page, text
    facts = re.search(r'<p class="facts">(.*?)</p>', page, re.S).group(1)
    assert "pair-explorable v1" in facts
    assert rf.BERT in facts and "(base: " + rf.BERT + ")" in facts
    # the provenance is collapsed and comes last
    prov = page[page.index('<section id="provenance">') :]
    assert meta["probe_set"]["sha256"] in prov and '<details class="run">' in prov
    assert "log-softmax" in page and "not raw logits" in page
    assert "16-bit" in page  # the precision of the "all" view is stated


@needs_data
def _hartigan(means: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """The sign-flip interval and p of mean 0 over unit means, written out here: every
    non-empty subset's mean, sorted; [M_(k), M_(N-k)] with k = floor((1-conf)/2 * 2^T)."""
    import itertools

    t = len(means)
    subset = sorted(
        float(np.mean(c)) for r in range(1, t + 1) for c in itertools.combinations(means, r)
    )
    n = 2**t
    k = math.floor((1 - confidence) / 2 * n)
    if k < 1:
        return math.nan, math.nan, math.nan
    up = (1 + sum(m <= 0 for m in subset)) / n
    low = (1 + sum(m >= 0 for m in subset)) / n
    return subset[k - 1], subset[n - k - 1], min(1.0, 2 * min(up, low))


def test_summary_table_shows_means_cis_and_deltas(report, run):
    _, page = report
    rows = tables(page)["summary-set"][1:]
    s = run.summary[run.summary["level"] == "set"]
    assert len(rows) == len(s)
    label = report_html.SCORE_LABELS
    sc = run.scores.set_index(["model", "pair_id"])
    for r in s.itertuples():
        row = next(x for x in rows if x[0] == r.model and x[2] == label[r.score])
        # the set mean = the mean of the template means, computed here from scores.csv
        own = sc.loc[r.model].dropna(subset=[r.score])
        t_means = own.groupby("template_id", sort=False)[r.score].mean().to_numpy()
        assert row[3] == fmt(float(np.mean(t_means))) == fmt(r.mean)
        assert row[5] == str(r.n) == str(len(own))
        # fewer than 6 templates: no set-level interval or p, and the cell says why
        assert len(t_means) < 6 and math.isnan(r.ci_low)
        assert row[4] == f"n/a ({len(t_means)} template{'s' if len(t_means) != 1 else ''})"
        signed = r.score in ("target_gap", "target_gap_mean", "kurita_bias")
        assert row[9] == (("n/a (1 pair)" if r.n == 1 else row[4]) if signed else "—")
        if r.model == rf.BERT:
            assert row[6:9] == ["—", "—", "—"]
            continue
        # paired Δ over the same pairs: the mean of the template means of the per-pair
        # differences; its interval and p come from those template means (sign flips)
        pairs = sc.loc[rf.BERT].index
        diff = (sc.loc[rf.SYNTHETIC].loc[pairs, r.score] - sc.loc[rf.BERT, r.score]).to_numpy()
        templates = np.array(sc.loc[rf.BERT, "template_id"].tolist())
        keep = ~np.isnan(diff)
        assert row[8] == str(int(keep.sum()))
        groups = [diff[keep][templates[keep] == t] for t in dict.fromkeys(templates[keep])]
        means = np.array([g.mean() for g in groups])
        assert row[6] == f"{means.mean():+.3f}"
        lo, hi, p = _hartigan(means)
        if math.isnan(lo):
            few = f"n/a ({len(means)} template{'s' if len(means) != 1 else ''})"
            if keep.sum() == 1:
                few = "n/a (1 pair)"
            assert row[7] == row[11] == few
        else:
            assert row[7] == f"[{lo:+.3f}, {hi:+.3f}]" and row[11] == f"{p:.3f}"
    visible = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    assert not re.search(r"\bnan\b", visible, re.I)


@needs_data
def test_per_pair_table_has_every_pair_and_model(report, run):
    _, page = report
    rows = tables(page)["pair-scores"][1:]
    assert len(rows) == len(run.scores)
    for r in run.scores.itertuples():
        row = next(x for x in rows if x[0] == r.pair_id and x[1] == r.model)
        assert row[4] == r.top_a.split()[0] and row[5] == r.top_b.split()[0]
        assert row[6] == f"{r.jaccard_distance:.3f}"
        assert row[8] == f"{r.js_divergence:.3f}"


@needs_data
def test_comparison_deltas_and_spearman_against_independent_computation(report, run):
    _, page = report
    rows = tables(page)["comparison"][1:]
    assert len(rows) == len(rf.PAIRS)
    sc = run.scores.set_index(["model", "pair_id"])
    for pid, *_ in rf.PAIRS:
        row = next(x for x in rows if x[0] == pid)
        assert row[1] == rf.SYNTHETIC
        n_scores = len(report_html.SCORE_LABELS)
        for col, score in zip(range(2, 2 + n_scores), report_html.SCORE_LABELS, strict=True):
            if score not in sc:  # kurita_bias: absent from runs made before it existed
                assert row[col] == "—"
                continue
            d = sc.loc[(rf.SYNTHETIC, pid), score] - sc.loc[(rf.BERT, pid), score]
            assert row[col] == ("—" if math.isnan(d) else f"{d:+.3f}")
        base = run.pair_logprobs(rf.BERT, pid)
        other = run.pair_logprobs(rf.SYNTHETIC, pid)
        for side in (0, 1):
            x, y = base[side].astype(np.float64), other[side].astype(np.float64)
            # over the base model's top 300 only, then over the whole vocabulary
            ids = np.argsort(-x, kind="stable")[:300]
            rho = np.corrcoef(rankdata(x[ids]), rankdata(y[ids]))[0, 1]
            assert row[2 + n_scores + side] == f"{rho:.3f}"
            rho_all = np.corrcoef(rankdata(x), rankdata(y))[0, 1]
            assert row[4 + n_scores + side] == f"{rho_all:.3f}"


@needs_data
def test_pair_sections_hold_one_plot_per_model_and_view(report, run):
    _, page = report
    n_pairs = len(rf.PAIRS)
    assert page.count('<section class="pair') == n_pairs
    assert len(re.findall(r'data-kind="scatter"', page)) == n_pairs * 2
    assert len(re.findall(r'data-kind="diff"', page)) == n_pairs * 2
    for n in ("30", "200", "1000", "all"):
        assert f'data-n="{n}"' in page


@needs_data
def test_report_is_self_contained(report):
    _, page = report
    from plotly.offline import get_plotlyjs

    plotly_js = get_plotlyjs()
    assert plotly_js in page  # inlined whole
    own = page.replace(plotly_js, "")
    assert page.count("<script") == 3  # data, plotly.js, report script
    assert "<script src" not in own.lower() and "<link" not in own.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", own)
    assert "http://" not in own and "https://" not in own


def test_probe_text_is_escaped(tmp_path):
    vocab = [
        "</script><img src=x onerror=alert(1)>",
        "<b>tok</b>",
        "a&b",
        *[f"w{i}" for i in range(40)],
    ]
    run = rf.make_tiny_run(
        [
            (
                "evil<script>",
                ('<script>alert("A")</script>', "B & <i>b</i>"),
                ('<script>alert("A")</script> did [MASK].', "B & <i>b</i> did [MASK]."),
            )
        ],
        vocab,
        models=("model<script>alert(2)</script>",),
    )
    out = write_report([run], tmp_path / "r.html", title="<script>alert(3)</script>")
    page = out.read_text(encoding="utf-8")
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "<i>b</i>" not in page
    assert "&lt;script&gt;alert(&quot;A&quot;)&lt;/script&gt; did [MASK]." in page
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page
    assert page.count("<script") == 3
    data = payload(page)  # the JSON still carries the original strings
    assert data["vocabs"][0][0] == vocab[0]
    assert data["pairs"][0]["groups"][0] == '<script>alert("A")</script>'
    sent = [r for r in tables(page)["sentences"] if r and r[0] == "A"][0]
    assert sent[3] == '<script>alert("A")</script> did [MASK].'


def test_write_is_atomic(tmp_path, monkeypatch):
    vocab = [f"w{i}" for i in range(30)]
    run = rf.make_tiny_run([("p", ("a", "b"), ("a [MASK].", "b [MASK]."))], vocab)
    out = tmp_path / "r.html"
    write_report([run], out)
    old = out.read_text(encoding="utf-8")

    def fail(*a, **k):
        raise OSError(28, "No space left on device")

    from biasprobe import fsio

    monkeypatch.setattr(fsio.os, "replace", fail)
    monkeypatch.setattr(fsio, "_renameat2", fail)  # the atomic exchange onto the old report
    with pytest.raises(OutputError, match="No space left"):
        write_report([run], out, title="new")
    assert out.read_text(encoding="utf-8") == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]
    monkeypatch.undo()
    write_report([run], out)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_bad_arguments(tmp_path):
    vocab = [f"w{i}" for i in range(30)]
    run = rf.make_tiny_run([("p", ("a", "b"), ("a [MASK].", "b [MASK]."))], vocab)
    with pytest.raises(UsageError):
        write_report([], tmp_path / "r.html")
    for bad in (0, -5, True, 2.5):
        with pytest.raises(UsageError):
            write_report([run], tmp_path / "r.html", top_n_default=bad)
    assert not (tmp_path / "r.html").exists()
    assert issubclass(StaticExportError, BiasprobeError)


def test_custom_top_n_default_is_offered_and_exact(tmp_path):
    vocab = [f"w{i}" for i in range(3000)]
    run = rf.make_tiny_run([("p", ("a", "b"), ("a [MASK].", "b [MASK]."))], vocab)
    page = write_report([run], tmp_path / "r.html", top_n_default=1500).read_text("utf-8")
    data = payload(page)
    assert data["topn"] == {
        "options": [30, 200, 1000, 1500, "all"],
        "default": 1500,
        "exact": 1500,
        "big": 1500,
    }
    c = cell_of(data, data["pairs"][0]["cells"][0])
    ra, rb = c["ra"], c["rb"]
    assert ((ra <= 1500) | (rb <= 1500)).all()
    assert (ra <= 1500).sum() == 1500 and (rb <= 1500).sum() == 1500


@needs_data
def test_several_runs_base_and_labels(tmp_path):
    first = rf.make_run(rf.PAIRS[:2], (rf.BERT, rf.SYNTHETIC), run_id="run-one")
    second = rf.make_run(rf.PAIRS[:1], (rf.BERT,), run_id="run-two")
    zari = rf.make_zari_run()
    page = write_report([first, second, zari], tmp_path / "r.html").read_text("utf-8")
    data = payload(page)
    labels = [e["label"] for e in data["entries"]]
    assert labels == [f"{rf.BERT} [run-one]", rf.SYNTHETIC, f"{rf.BERT} [run-two]", rf.ZARI]
    assert [p["id"] for p in data["pairs"]] == ["jim-jane", "1908-he-she", "cpr-doctor-nurse"]
    cpr = data["pairs"][2]
    assert cpr["cells"][:3] == [None, None, None] and cpr["cells"][3] is not None
    rows = tables(page)["comparison"][1:]
    # same model and same vectors in two runs: no change, perfect rank correlation
    same = next(r for r in rows if r[0] == "jim-jane" and r[1] == f"{rf.BERT} [run-two]")
    n_scores = len(report_html.SCORE_LABELS)
    assert same[2:5] == ["+0.000", "+0.000", "+0.000"]
    assert same[2 + n_scores : 4 + n_scores] == ["1.000", "1.000"]
    assert "The base model has no result for this pair." in page
    # the set-level row of the Zari run has no base to compare with (another probe set)
    zrows = [r for r in tables(page)["summary-set"][1:] if r[0] == rf.ZARI]
    assert zrows and all(r[6] == "—" for r in zrows)


def test_different_vocabularies_have_no_rank_correlation(tmp_path):
    pairs = [("p", ("a", "b"), ("a [MASK].", "b [MASK]."))]
    one = rf.make_tiny_run(pairs, [f"w{i}" for i in range(30)], models=("m1",), run_id="r1")
    two = rf.make_tiny_run(pairs, [f"v{i}" for i in range(30)], models=("m2",), run_id="r2")
    page = write_report([one, two], tmp_path / "r.html").read_text("utf-8")
    row = tables(page)["comparison"][1]
    assert row[:2] == ["p", "m2"] and row[6:8] == ["—", "—"]
    assert len(payload(page)["vocabs"]) == 2


def test_report_module_does_not_import_torch(tmp_path):
    code = (
        "import sys; sys.path.insert(0, 'tests'); import report_fixtures as rf\n"
        "from pathlib import Path\n"
        "from biasprobe.report import write_report\n"
        "run = rf.make_tiny_run([('p', ('a', 'b'), ('a [MASK].', 'b [MASK].'))], ['x', 'y', 'z'])\n"
        f"write_report([run], Path({str(tmp_path / 'r.html')!r}))\n"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# --------------------------------------------------------------------------- pure figure data


def test_quantize16_round_trip_and_nonfinite():
    rng = np.random.default_rng(1)
    v = rng.normal(-12, 4, size=5000)
    v[7] = -np.inf
    codes, lo, step = quantize16(v)
    back = dequantize16(codes, lo, step)
    fin = np.isfinite(v)
    assert np.max(np.abs(back[fin] - v[fin])) <= step / 2 + 1e-12
    assert back[7] == -np.inf and codes[7] == 65535
    assert codes[fin].max() == 65534 and codes[fin].min() == 0


def test_pair_points_and_labels():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=500), rng.normal(size=500)
    pts = pair_points(a, b, 20)
    expect = set(np.argsort(-a)[:20]) | set(np.argsort(-b)[:20])
    assert set(pts.ids.tolist()) == {int(i) for i in expect}
    assert full_ranks(a)[int(np.argmax(a))] == 1
    sub = pts.top(5)
    assert set(sub.ids.tolist()) == {
        int(i) for i in set(np.argsort(-a)[:5]) | set(np.argsort(-b)[:5])
    }
    lab = skewed_labels(pts.diff, 3)
    d = pts.diff
    assert list(d[lab[:3]]) == sorted(d[d > 0], reverse=True)[:3]
    assert list(d[lab[3:]]) == sorted(d[d < 0])[:3]


# --------------------------------------------------------------------------- static figures


def _kaleido_available() -> bool:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return find_chromium() is not None


@needs_data
@pytest.mark.slow
@pytest.mark.skipif(not _kaleido_available(), reason="kaleido or Chromium not installed")
def test_export_figures_png_and_svg(tmp_path):
    run = rf.make_run(rf.PAIRS[:1], (rf.BERT,))
    pngs = export_figures([run], tmp_path / "png", "png", views=("scatter",))
    assert [p.name for p in pngs] == [f"jim-jane__{rf.BERT}.png"]
    head = pngs[0].read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    fig = pair_figure(
        pair_points(*run.pair_logprobs(rf.BERT, "jim-jane"), 200),
        rf.vocab(),
        group_a="Jim",
        group_b="Jane",
        title="t",
    )
    assert (width, height) == (2 * fig.layout.width, 2 * fig.layout.height)
    svgs = export_figures([run], tmp_path / "svg", "svg", top_n=30, views=("scatter",))
    svg = svgs[0].read_text(encoding="utf-8")
    # the labels are the most skewed tokens of the top-30 union, computed here independently
    jim = np.asarray(raw_logprobs("sentence-jim-worked-as-a-mask-embed"))
    jane = np.asarray(raw_logprobs("sentence-jane-worked-as-a-mask-embed"))
    ids = np.union1d(np.argsort(-jim)[:30], np.argsort(-jane)[:30])
    d = jane[ids] - jim[ids]
    vocab = rf.vocab()
    most_b = vocab[ids[np.argmax(d)]]
    most_a = vocab[ids[np.argmin(d)]]
    assert f">{most_b}<" in svg and f">{most_a}<" in svg
    # the top-3 fills of each side are labelled too
    for side in (jim, jane):
        for i in np.argsort(-side)[:3]:
            assert f">{vocab[i]}<" in svg, vocab[i]
    assert "log p(token | A: Jim)" in svg
    # both views and the side-by-side comparison, as PDF
    two = rf.make_run(rf.PAIRS[:1], (rf.BERT, rf.SYNTHETIC))
    pdfs = export_figures([two], tmp_path / "pdf", "pdf", top_n=30)
    slug = model_slug(rf.SYNTHETIC)
    assert [p.name for p in pdfs] == [
        f"jim-jane__{rf.BERT}.pdf",
        f"jim-jane__{rf.BERT}__differences.pdf",
        f"jim-jane__{slug}.pdf",
        f"jim-jane__{slug}__differences.pdf",
        "jim-jane__comparison.pdf",
        "jim-jane__comparison__differences.pdf",
    ]
    assert all(p.read_bytes()[:5] == b"%PDF-" for p in pdfs)


def test_export_figures_without_kaleido(tmp_path, monkeypatch):
    vocab = [f"w{i}" for i in range(30)]
    run = rf.make_tiny_run([("p", ("a", "b"), ("a [MASK].", "b [MASK]."))], vocab)
    monkeypatch.setitem(sys.modules, "kaleido", None)
    with pytest.raises(StaticExportError, match="pip install 'kaleido>=1.1'"):
        export_figures([run], tmp_path, "png")
    with pytest.raises(UsageError):
        export_figures([run], tmp_path, "jpg")


# --------------------------------------------------------------------------- in the browser


@needs_data
@needs_chromium
@pytest.mark.browser
@pytest.mark.slow
def test_report_renders_in_headless_chromium(report, run, tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import check_report
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    path, _ = report
    summary = check_report.check(path, tmp_path, quick=False, timeout=120)
    assert summary["ok"], summary["problems"]
    assert summary["pairs"] == len(rf.PAIRS)
    # point counts per N equal the independent top-N unions of Jim / Jane
    jim = np.asarray(raw_logprobs("sentence-jim-worked-as-a-mask-embed"))
    jane = np.asarray(raw_logprobs("sentence-jane-worked-as-a-mask-embed"))
    for n in (30, 200, 1000):
        union = np.union1d(np.argsort(-jim)[:n], np.argsort(-jane)[:n]).size
        assert summary["points_by_n"][str(n)][0] == union
    assert summary["points_by_n"]["all"][0] == jim.size
    assert (tmp_path / "report-full.png").stat().st_size > 10_000


@needs_chromium
@pytest.mark.browser
def test_escaped_text_shows_as_text_in_browser(tmp_path):
    from report_browser import HeadlessChromium

    vocab = ["<script>alert(1)</script>", *[f"w{i}" for i in range(40)]]
    run = rf.make_tiny_run(
        [("p", ("<b>A</b>", "B"), ("<script>window.pwned = 1</script> [MASK].", "B [MASK]."))],
        vocab,
    )
    out = write_report([run], tmp_path / "r.html")
    with HeadlessChromium() as browser:
        browser.navigate(out.resolve().as_uri())
        browser.wait_for("window.biasprobeReport && window.biasprobeReport.ready", timeout=60)
        assert browser.evaluate("window.pwned === undefined")
        cell = browser.evaluate("document.querySelector('td.sent').textContent")
        assert cell == "<script>window.pwned = 1</script> [MASK]."
        hover = browser.evaluate(
            "Array.from(document.querySelector('div.plot').data[0].text).join('\\n')"
        )
        assert "&lt;b&gt;A&lt;/b&gt;" in hover
        assert browser.errors() == [] and browser.evaluate("biasprobeReport.errors") == []


# --------------------------------------------------------------------------- through the runner


@needs_data
def test_report_of_a_saved_recorded_run(tmp_path):
    from biasprobe.probes import load_probe_set
    from biasprobe.results import load_run
    from biasprobe.runner import run as run_probes

    recorded = ROOT / "biasprobe" / "data" / "recorded"
    probe_set = load_probe_set(ROOT / "probes" / "pair-names.yaml")
    bert = run_probes(
        probe_set,
        [f"recorded:{recorded / 'bert-large-uncased-whole-word-masking'}"],
        pairs=["jim-jane"],
        n_bootstrap=100,
    )
    zari = run_probes(
        probe_set,
        [f"recorded:{recorded / 'zari-bert-cda'}"],
        pairs=["cpr-doctor-nurse"],
        n_bootstrap=100,
    )
    bert.save(tmp_path / "bert")
    zari.save(tmp_path / "zari")
    runs = [load_run(tmp_path / "bert"), load_run(tmp_path / "zari")]
    page = write_report(runs, tmp_path / "r.html").read_text("utf-8")
    data = payload(page)
    assert [p["id"] for p in data["pairs"]] == ["jim-jane", "cpr-doctor-nurse"]
    c = cell_of(data, data["pairs"][0]["cells"][0])
    ids, ra, la = c["ids"], c["ra"], c["la"]
    jim = raw_logprobs("sentence-jim-worked-as-a-mask-embed")
    assert data["vocabs"][0][int(ids[ra == 1][0])] == "mechanic"
    assert float(la[ra == 1][0]) == pytest.approx(jim[int(ids[ra == 1][0])], abs=1e-5)
    cpr = cell_of(data, data["pairs"][1]["cells"][1])
    doctor = raw_logprobs(
        "sentence-the-doctor-performed-cpr-even-though-mask-knew-it-was-too-late-embed-zari-cda"
    )
    cids, cra = cpr["ids"], cpr["ra"]
    top = int(cids[cra == 1][0])
    assert top == max(range(len(doctor)), key=doctor.__getitem__)
    assert float(cpr["la"][cra == 1][0]) == pytest.approx(doctor[top], abs=1e-5)
    assert runs[0].meta["run_id"] in page and runs[1].meta["run_id"] in page
