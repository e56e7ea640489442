"""CrowS-Pairs: both scorings per pair against a straightforward re-computation, aggregate
logic on hand-made outcomes, data loading errors, run folder and CLI."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biasprobe.crows import (
    CrowsDataError,
    CrowsPair,
    aligned_positions,
    load_crows_run,
    load_pairs,
    run_crows,
    score_pairs,
    summarize,
)
from biasprobe.crows.data import shipped_path
from biasprobe.errors import OutputError, UsageError
from biasprobe.fsio import NotOwnedError

REPO = Path(__file__).resolve().parent.parent
SHARED_CSV = REPO.parent / "shared" / "data" / "crows-pairs" / "crows_pairs_anonymized.csv"


# -- an independent, straightforward re-computation (one masked forward per token) ------------
def _reference_pair(model, tok, pair: CrowsPair, scoring: str) -> tuple[float, float] | None:
    """Score one pair as the reference scripts do: per sentence, one forward per masked token.

    Returns (score of sent_more, score of sent_less), or None when bias-bench skips the pair.
    """
    import torch

    if pair.direction == "stereo":
        sent1, sent2 = pair.sent_more, pair.sent_less
    else:
        sent1, sent2 = pair.sent_less, pair.sent_more
    ids1 = tok.encode(sent1, return_tensors="pt")
    ids2 = tok.encode(sent2, return_tensors="pt")
    s1 = [str(x) for x in ids1[0].tolist()]
    s2 = [str(x) for x in ids2[0].tolist()]
    t1, t2 = [], []
    for op in difflib.SequenceMatcher(None, s1, s2).get_opcodes():
        keep = op[0] == "equal" if scoring == "nangia" else op[0] != "equal"
        if keep:
            t1 += list(range(op[1], op[2]))
            t2 += list(range(op[3], op[4]))

    def logp(ids, position):
        masked = ids.clone()
        masked[0, position] = tok.mask_token_id
        with torch.no_grad():
            logits = model(masked).logits[0, position]
        return torch.log_softmax(logits, dim=0)[ids[0, position]].item()

    if scoring == "nangia":
        score1 = sum(logp(ids1, t1[i]) for i in range(1, len(t1) - 1))
        score2 = sum(logp(ids2, t2[i]) for i in range(1, len(t2) - 1))
    else:
        if not t1 or not t2:
            return None
        score1 = float(np.mean([logp(ids1, p) for p in t1]))
        score2 = float(np.mean([logp(ids2, p) for p in t2]))
    return (score1, score2) if pair.direction == "stereo" else (score2, score1)


# Tolerance: 1e-6 relative (or absolute, whichever is larger). The batched and the one-by-one
# forward passes run the same float32 maths in a different order (padding, matrix blocking), so
# a Nangia score, a sum of ~20 float32 log-probs of size ~5, differs by up to ~2e-6 absolute
# (~4e-8 relative); a per-token disagreement of the logic would be orders of magnitude larger.


def _reference_outcome(more: float, less: float) -> str:
    a, b = round(more, 3), round(less, 3)
    return "tie" if a == b else ("more" if a > b else "less")


def _mixed_pairs(n_per_type: int = 3) -> list[CrowsPair]:
    """A few pairs of every bias type and both directions from the shipped file."""
    out: list[CrowsPair] = []
    by_key: dict[tuple[str, str], int] = {}
    for p in load_pairs():
        key = (p.bias_type, p.direction)
        if by_key.get(key, 0) < n_per_type:
            by_key[key] = by_key.get(key, 0) + 1
            out.append(p)
    return out


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One intra-op thread: many times faster for these tiny models on a shared 2-core VM."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bert_backend(tiny_bert):
    from biasprobe.backends.hf import load_hf_masked_lm

    backend = load_hf_masked_lm(str(tiny_bert), device="cpu", batch_size=16)
    yield backend
    backend.close()


@pytest.mark.parametrize("scoring", ["nangia", "meade"])
def test_scores_match_straightforward_recomputation_bert(bert_backend, tiny_bert, scoring):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model = AutoModelForMaskedLM.from_pretrained(str(tiny_bert)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    pairs = _mixed_pairs(2)
    assert {p.direction for p in pairs} == {"stereo", "antistereo"}
    rows = score_pairs(bert_backend, pairs, scoring)
    assert len(rows) == len(pairs)
    checked = 0
    for pair, row in zip(pairs, rows):
        ref = _reference_pair(model, tok, pair, scoring)
        assert row["pair_id"] == pair.pair_id
        if ref is None:
            assert row["outcome"] == "skipped"
            continue
        assert row["score_more"] == pytest.approx(ref[0], rel=1e-6, abs=1e-6)
        assert row["score_less"] == pytest.approx(ref[1], rel=1e-6, abs=1e-6)
        near_boundary = (
            abs(round(ref[0], 3) - ref[0]) > 0.0005 - 1e-6
            or abs(round(ref[1], 3) - ref[1]) > 0.0005 - 1e-6
        )
        if not near_boundary:
            assert row["outcome"] == _reference_outcome(*ref)
        checked += 1
    assert checked >= len(pairs) - 2


def test_scores_match_recomputation_roberta(tiny_roberta):
    """Another tokenizer family (byte-level BPE, <s> ... </s>, <mask>)."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from biasprobe.backends.hf import load_hf_masked_lm

    tok = AutoTokenizer.from_pretrained(str(tiny_roberta))
    model = AutoModelForMaskedLM.from_pretrained(str(tiny_roberta)).eval()
    pairs = [
        p
        for p in _mixed_pairs(2)
        if max(len(tok.encode(p.sent_more)), len(tok.encode(p.sent_less))) <= 100
    ][:12]
    backend = load_hf_masked_lm(str(tiny_roberta), device="cpu", batch_size=7)
    try:
        for scoring in ("nangia", "meade"):
            rows = score_pairs(backend, pairs, scoring)
            for pair, row in zip(pairs, rows):
                ref = _reference_pair(model, tok, pair, scoring)
                if ref is None:
                    assert row["outcome"] == "skipped"
                    continue
                assert row["score_more"] == pytest.approx(ref[0], rel=1e-6, abs=1e-6)
                assert row["score_less"] == pytest.approx(ref[1], rel=1e-6, abs=1e-6)
    finally:
        backend.close()


# -- alignment --------------------------------------------------------------------------------
def test_aligned_positions_by_hand():
    #        [CLS] the poor are ignorant [SEP]  vs  [CLS] the rich are ignorant [SEP]
    a = [101, 1996, 3532, 2024, 21990, 102]
    b = [101, 1996, 4138, 2024, 21990, 102]
    assert aligned_positions(a, b, "nangia") == ([1, 3, 4], [1, 3, 4])  # CLS/SEP dropped
    assert aligned_positions(a, b, "meade") == ([2], [2])
    # An insertion: sentence b has two tokens where a has one.
    c = [101, 1996, 7, 8, 2024, 21990, 102]
    assert aligned_positions(a, c, "meade") == ([2], [2, 3])
    assert aligned_positions(a, c, "nangia") == ([1, 3, 4], [1, 4, 5])
    # Pure insertion: nothing differs on one side -> bias-bench skips such a pair.
    d = [101, 1996, 3532, 9, 2024, 21990, 102]
    assert aligned_positions(a, d, "meade") == ([], [3])
    with pytest.raises(UsageError):
        aligned_positions(a, b, "kurita")


def test_meade_skips_pairs_with_nothing_differing_on_one_side(bert_backend):
    pair = CrowsPair("x", "The old man was there.", "The man was there.", "stereo", "age", 2)
    (row,) = score_pairs(bert_backend, [pair], "meade")
    assert row["outcome"] == "skipped" and row["skipped"]
    assert np.isnan(row["score_more"]) and np.isnan(row["more_preferred"])
    (row,) = score_pairs(bert_backend, [pair], "nangia")
    assert row["outcome"] in {"more", "less", "tie"}


def test_duplicate_variants_are_scored_once(bert_backend):
    pairs = _mixed_pairs(1)[:4]
    twice = pairs + [
        CrowsPair(p.pair_id + "-again", p.sent_more, p.sent_less, p.direction, p.bias_type, p.line)
        for p in pairs
    ]
    rows = score_pairs(bert_backend, twice, "nangia")
    for a, b in zip(rows[:4], rows[4:]):
        assert a["score_more"] == b["score_more"] and a["score_less"] == b["score_less"]


def test_pair_outcome_rounds_to_three_decimals_before_comparing():
    from biasprobe.crows.scoring import pair_outcome

    for scoring in ("nangia", "meade"):
        assert pair_outcome(-1.00049, -1.0001, scoring) == "tie"  # both -1.000
        assert pair_outcome(-1.0004, -1.0006, scoring) == "more"  # -1.000 > -1.001
        assert pair_outcome(-2.5, -2.4, scoring) == "less"
        assert pair_outcome(-3.0, -3.0, scoring) == "tie"


# -- aggregate on hand-made outcomes ------------------------------------------------------------
def _table(spec: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(spec, columns=["bias_type", "direction", "outcome"])


def test_summary_counts_ties_and_skips_as_published():
    t = _table(
        [("gender", "stereo", "more")] * 6
        + [("gender", "stereo", "less")] * 2
        + [("gender", "stereo", "tie")] * 1
        + [("gender", "antistereo", "more")] * 1
        + [("gender", "antistereo", "less")] * 2
        + [("gender", "antistereo", "skipped")] * 3
        + [("religion", "stereo", "more")] * 3
        + [("religion", "antistereo", "tie")] * 1
    )
    s = summarize(t).set_index("key")
    g = s.loc["gender"]
    assert (g.n, g.n_more, g.n_tie, g.n_skipped) == (12, 7, 1, 3)
    assert g.metric == pytest.approx(100 * 7 / 12)  # the tie is in n, not in the count
    assert (g.stereo_n, g.antistereo_n) == (8, 3)  # ties left out of the split
    assert g.stereo_pct == pytest.approx(100 * 6 / 8)
    assert g.antistereo_pct == pytest.approx(100 * 1 / 3)
    from scipy.stats import binomtest

    assert g.p_value == pytest.approx(binomtest(7, 12).pvalue)
    ci = binomtest(7, 12).proportion_ci(method="wilson")
    assert (g.ci_low, g.ci_high) == pytest.approx((100 * ci.low, 100 * ci.high))
    r = s.loc["religion"]
    assert (r.n, r.n_more, r.metric) == (4, 3, 75.0)
    assert r.antistereo_n == 0 and np.isnan(r.antistereo_pct)
    a = s.loc["all"]
    assert (a.n, a.n_more, a.n_tie, a.n_skipped) == (16, 10, 2, 3)
    assert np.isnan(a.p_holm)
    # Holm over the two bias types, by hand.
    p = sorted([(g.p_value, "gender"), (r.p_value, "religion")])
    expect = {p[0][1]: min(1, 2 * p[0][0])}
    expect[p[1][1]] = max(expect[p[0][1]], min(1, p[1][0]))
    assert s.loc["gender"].p_holm == pytest.approx(expect["gender"])
    assert s.loc["religion"].p_holm == pytest.approx(expect["religion"])


def test_summary_orders_bias_types_and_needs_columns():
    t = _table([("religion", "stereo", "more"), ("race-color", "stereo", "less")])
    assert summarize(t).key.tolist() == ["all", "race-color", "religion"]
    with pytest.raises(ValueError):
        summarize(pd.DataFrame({"bias_type": ["gender"]}))


# -- data ----------------------------------------------------------------------------------------
def test_shipped_data_is_complete_and_identical_to_the_source():
    pairs = load_pairs()
    assert len(pairs) == 1508
    counts = pd.Series([p.bias_type for p in pairs]).value_counts()
    assert counts["race-color"] == 516 and counts["gender"] == 262 and counts["religion"] == 105
    assert sum(p.direction == "antistereo" for p in pairs) == 218
    folder = shipped_path().parent
    assert (
        (folder / "LICENSE")
        .read_text(encoding="utf-8")
        .startswith("Attribution-ShareAlike 4.0 International")
    )
    assert "Nangia" in (folder / "NOTICE").read_text(encoding="utf-8")
    if not SHARED_CSV.is_file():
        pytest.skip("../shared/data/crows-pairs is not available to compare with")
    assert shipped_path().read_bytes() == SHARED_CSV.read_bytes()


def test_bias_type_filter_aliases_and_limit():
    gender = load_pairs(bias_types=["gender"])
    assert len(gender) == 262 and {p.bias_type for p in gender} == {"gender"}
    assert len(load_pairs(bias_types=["race"])) == 516
    assert len(load_pairs(bias_types=["gender", "religion"])) == 367
    assert [p.pair_id for p in load_pairs(limit=3)] == ["0", "1", "2"]
    with pytest.raises(UsageError, match="unknown CrowS-Pairs bias type 'genre'"):
        load_pairs(bias_types=["genre"])
    with pytest.raises(UsageError):
        load_pairs(limit=0)


def test_bad_data_files_name_file_and_line(tmp_path):
    header = ",sent_more,sent_less,stereo_antistereo,bias_type\n"
    bad = tmp_path / "bad.csv"
    bad.write_text(
        header + "0,A b.,A c.,stereo,gender\n1,A b.,A d.,sideways,gender\n2,,A e.,stereo,age\n",
        encoding="utf-8",
    )
    with pytest.raises(CrowsDataError) as e:
        load_pairs(bad)
    assert f"{bad}:3: stereo_antistereo is 'sideways'" in e.value.message
    assert f"{bad}:4: sent_more is empty" in e.value.message
    assert e.value.exit_code == 2
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(CrowsDataError, match=r"nocol.csv:1: missing column"):
        load_pairs(nocol)
    with pytest.raises(CrowsDataError, match="does not exist"):
        load_pairs(tmp_path / "nope.csv")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CrowsDataError, match="not UTF-8"):
        load_pairs(binary)
    ok = tmp_path / "ok.csv"
    ok.write_text(header + "7,A b.,A c.,stereo,Gender\n", encoding="utf-8")
    (p,) = load_pairs(ok)
    assert (p.pair_id, p.bias_type, p.line) == ("7", "gender", 2)
    with pytest.raises(CrowsDataError, match="no pairs of bias type religion"):
        load_pairs(ok, bias_types=["religion"])
    no_index = tmp_path / "no-index.csv"
    no_index.write_text(
        "annotations,sent_more,sent_less,stereo_antistereo,bias_type\n"
        "x,A b.,A c.,stereo,age\ny,A d.,A e.,antistereo,age\n",
        encoding="utf-8",
    )
    assert [p.pair_id for p in load_pairs(no_index)] == ["0", "1"]


# -- run folder and CLI --------------------------------------------------------------------------
def test_run_folder_round_trip_and_refuses_foreign_folders(bert_backend, tmp_path):
    res = run_crows(bert_backend, scoring="nangia", bias_types=["religion"], limit=6)
    assert len(res.pairs) == 6 and res.meta["data"]["n_pairs"] == 6
    assert res.meta["scoring"] == "nangia" and "50%" in res.meta["metric"]
    from biasprobe.crows.report import render_html

    def report(result, path):
        path.write_text(render_html(result), encoding="utf-8")

    out = res.save(tmp_path / "run", report=report)
    assert sorted(f.name for f in out.iterdir()) == [
        ".biasprobe-manifest.json",
        "pairs.csv",
        "report.html",
        "results.json",
        "summary.csv",
    ]
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temp folder left
    back = load_crows_run(out)
    np.testing.assert_allclose(back.pairs.score_more, res.pairs.score_more, rtol=0, atol=1e-12)
    assert back.pairs.pair_id.tolist() == res.pairs.pair_id.tolist()
    assert back.summary.metric.tolist() == pytest.approx(res.summary.metric.tolist())
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "50% = no preference" in page and "<script" not in page
    with pytest.raises(OutputError):
        res.save(out)  # exists, no --overwrite
    res.save(out, overwrite=True)
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me", encoding="utf-8")
    (foreign / "results.json").write_text('{"accuracy": 0.93}', encoding="utf-8")
    with pytest.raises(NotOwnedError):
        res.save(foreign, overwrite=True)
    assert (foreign / "thesis.tex").read_text(encoding="utf-8") == "keep me"
    (out / "notes.txt").write_text("mine", encoding="utf-8")  # a user's file inside a run folder
    with pytest.raises(NotOwnedError):
        res.save(out, overwrite=True)
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_report_escapes_text(bert_backend, tmp_path):
    res = run_crows(bert_backend, scoring="meade", limit=2)
    res.meta["models"][0]["name"] = "<img src=x onerror=alert(1)>"
    from biasprobe.report.crows import render_html

    page = render_html(res)
    assert "<img" not in page and "&lt;img" in page


def test_cli_runs_and_writes(tiny_bert, tmp_path):
    from typer.testing import CliRunner

    from biasprobe.crows.cli import app

    out = tmp_path / "crows-run"
    r = CliRunner().invoke(
        app,
        [
            "-m",
            str(tiny_bert),
            "--scoring",
            "nangia",
            "-b",
            "gender",
            "--limit",
            "5",
            "-o",
            str(out),
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "50% = no" in r.output and f"wrote {out}" in r.output
    meta = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert meta["kind"] == "crows-pairs" and meta["data"]["bias_types"] == ["gender"]
    s = pd.read_csv(out / "summary.csv")
    assert s.key.tolist() == ["all", "gender"] and s.n.tolist() == [5, 5]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--scoring", "kurita"], 2, "--scoring must be meade or nangia"),
        (["--bias-type", "genre"], 2, "unknown CrowS-Pairs bias type"),
        (["--limit", "0"], 2, "--limit must be at least 1"),
        (["--batch-size", "0"], 2, "--batch-size must be at least 1"),
        (["--data", "/nonexistent/crows.csv"], 2, "CrowS-Pairs file /nonexistent/crows.csv does"),
    ],
)
def test_cli_bad_input(tiny_bert, tmp_path, args, code, message):
    from typer.testing import CliRunner

    from biasprobe.crows.cli import app

    r = CliRunner().invoke(app, ["-m", str(tiny_bert), "-o", str(tmp_path / "o"), *args])
    assert r.exit_code == code, r.output
    assert f"error: {message}" in r.output
    assert not (tmp_path / "o").exists()


def test_cli_refuses_recorded_models_and_missing_models(tmp_path):
    from typer.testing import CliRunner

    from biasprobe.crows.cli import app

    r = CliRunner().invoke(app, ["-m", "recorded:zari-bert-cda", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "recorded outputs only hold" in r.output
    r = CliRunner().invoke(app, ["-m", str(tmp_path / "no-model"), "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "error: model folder" in r.output
    assert not (tmp_path / "o").exists()


def test_cli_help_does_not_import_heavy_modules():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from biasprobe.crows.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0 and '--scoring' in r.output, r.output\n"
        "heavy = [m for m in ('torch', 'transformers', 'pandas', 'plotly') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_run_folder_manifest_and_provenance(bert_backend, tmp_path):
    from importlib.metadata import version

    from biasprobe.errors import RunFolderError
    from biasprobe.hub import sha256_file

    res = run_crows(bert_backend, scoring="meade", bias_types=["age"], limit=3)
    assert res.meta["versions"]["transformers"] == version("transformers")
    assert res.meta["data"]["sha256"] == sha256_file(shipped_path())
    import hashlib

    assert sha256_file(shipped_path()) == hashlib.sha256(shipped_path().read_bytes()).hexdigest()
    out = res.save(tmp_path / "run")  # the library writes no report.html (the CLI does)
    manifest = json.loads((out / ".biasprobe-manifest.json").read_text(encoding="utf-8"))
    assert manifest["kind"] == "run" and manifest["id"] == res.meta["run_id"]
    assert manifest["files"] == ["pairs.csv", "results.json", "summary.csv"]
    assert json.loads((out / "results.json").read_text(encoding="utf-8"))["files"] == {
        "pairs": "pairs.csv",
        "summary": "summary.csv",
    }
    (out / "results.json").write_text('{"kind": "downstream"}', encoding="utf-8")
    with pytest.raises(
        RunFolderError, match="is a counterfactual run folder, not a crows-pairs run folder"
    ):
        load_crows_run(out)
    with pytest.raises(RunFolderError, match="does not exist"):
        load_crows_run(tmp_path / "missing")


def test_progress_printer_one_bar_per_key(monkeypatch):
    from biasprobe.cliutil import progress_printer

    assert progress_printer(True, str) == (None, None)
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats stderr as a terminal
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    bar, update = progress_printer(False, lambda model, stage: f"{stage} [b]{model}\x1b")
    assert bar is not None
    with bar:
        update("m", "load", 0, 1)
        update("m", "load", 1, 1)
        update("m", "score", 2, 5)
    tasks = [(t.description, t.completed, t.total) for t in bar.tasks]
    assert tasks == [("load \\[b]m\\x1b", 1, 1), ("score \\[b]m\\x1b", 2, 5)]
