"""The HolisticBias likelihood-bias task end to end: per-sentence scores against plain
transformers on tiny causal and masked models, the stratified sample, the Likelihood Bias share
against scipy.stats.mannwhitneyu, the run folder, the report, the command line and the
comparison of two models."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

import biasprobe.holistic as hb
from biasprobe.errors import UsageError
from biasprobe.tasks.holistic import run_holistic, select_rows, stratified_sample

AXIS = "nonce"  # 8 descriptors: small and quick
T_LOVE = "I love {plural_noun_phrase}."
T_HATE = "I hate {plural_noun_phrase}."
OPTIONS = {"axes": [AXIS], "templates": [T_LOVE, T_HATE], "cache": False, "device": "cpu"}


@pytest.fixture(scope="module")
def causal_run(tiny_gpt2):
    """8 sentences per descriptor and template: 128 sentences."""
    return run_holistic([str(tiny_gpt2)], sample=128, seed=3, **OPTIONS)


@pytest.fixture(scope="module")
def two_models(tiny_gpt2, tiny_bert):
    return run_holistic([f"g={tiny_gpt2}", f"b={tiny_bert}"], sample=48, n_boot=200, **OPTIONS)


# ----------------------------------------------------------------------------- the sample


@pytest.fixture(scope="module")
def subset():
    return select_rows(hb.sentences())


def test_the_stratified_sample_keeps_every_descriptor_and_is_seeded(subset) -> None:
    a = stratified_sample(subset, 5000, seed=1)
    assert len(a) == 5000
    wanted = set(map(tuple, subset[["axis", "descriptor"]].drop_duplicates().to_numpy()))
    assert set(map(tuple, a[["axis", "descriptor"]].drop_duplicates().to_numpy())) == wanted
    # Spread evenly: 5000 over 17,160 cells gives 0 or 1 per cell, and each descriptor's
    # count differs from every other's by at most one (rounds over the descriptors).
    per_desc = a.groupby(["axis", "descriptor"]).size()
    assert per_desc.max() - per_desc.min() <= 1
    assert a.groupby(["axis", "template", "descriptor"]).size().max() == 1
    assert a.index.equals(stratified_sample(subset, 5000, seed=1).index)
    assert not a.index.equals(stratified_sample(subset, 5000, seed=2).index)
    assert a.index.is_monotonic_increasing  # the rows keep their order


def test_a_larger_sample_fills_cells_evenly(subset) -> None:
    rows = select_rows(hb.sentences(), templates=[T_LOVE, T_HATE])
    a = stratified_sample(rows, 5280, seed=0)  # 660 descriptors x 2 templates x 4
    cells = a.groupby(["axis", "template", "descriptor"]).size()
    assert len(cells) == 1320 and set(cells) == {4}


def test_a_sample_too_small_for_every_descriptor_is_refused(subset) -> None:
    with pytest.raises(UsageError, match="660 descriptors"):
        stratified_sample(subset, 659)
    assert stratified_sample(subset, 10**7) is subset


def test_filters_name_what_is_known() -> None:
    rows = hb.sentences()
    with pytest.raises(UsageError, match="'religion'") as e:
        select_rows(rows, axes=["relgion"])
    assert "--axis 'relgion'" in str(e.value)
    with pytest.raises(UsageError, match="--template"):
        select_rows(rows, templates=["I love {noun_phrase}."])
    got = select_rows(rows, axes=[AXIS], templates=[T_LOVE])
    assert len(got) == 8 * 32 and set(got["axis"]) == {AXIS}


# ----------------------------------------------------------------------------- the scores


def test_causal_scores_equal_transformers(causal_run, tiny_gpt2) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_gpt2)
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2).eval()
    s = causal_run.sentences
    assert len(s) == 128 and s["text"].is_unique
    for row in s.head(40).itertuples():
        ids = [tok.bos_token_id, *tok(row.text, add_special_tokens=False)["input_ids"]]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
        direct = sum(float(logp[t - 1, ids[t]]) for t in range(1, len(ids)))
        assert row.n_tokens == len(ids) - 1
        assert row.log_likelihood == pytest.approx(direct, abs=1e-5)
        assert row.score == pytest.approx(direct / (len(ids) - 1), abs=1e-6)


def test_masked_scores_equal_transformers(two_models, tiny_bert) -> None:
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    model = AutoModelForMaskedLM.from_pretrained(tiny_bert).eval()
    s = two_models.sentences[two_models.sentences["model"] == "b"]
    assert len(s) == 48
    for row in s.head(12).itertuples():
        ids = tok(row.text)["input_ids"]  # [CLS] ... [SEP]
        total = 0.0
        for p in range(1, len(ids) - 1):
            masked = list(ids)
            masked[p] = tok.mask_token_id
            with torch.no_grad():
                logits = model(torch.tensor([masked])).logits[0, p].double()
            total += float(torch.log_softmax(logits, -1)[ids[p]])
        assert row.n_tokens == len(ids) - 2
        assert row.log_likelihood == pytest.approx(total, abs=1e-5)


# ----------------------------------------------------------------------------- the statistics


def test_likelihood_bias_equals_scipy_on_the_papers_perplexity(causal_run) -> None:
    from scipy.stats import mannwhitneyu

    s = causal_run.sentences
    significant = n = 0
    for _, cell in s.groupby(["axis", "template"]):
        # The paper compares per-token perplexities: exp(-mean log-prob per token).
        ppl = {d: np.exp(-g["score"].to_numpy()) for d, g in cell.groupby("descriptor")}
        for d0, d1 in itertools.combinations(sorted(ppl), 2):
            significant += mannwhitneyu(ppl[d0], ppl[d1]).pvalue < 0.05
            n += 1
    overall = causal_run.bias("all").iloc[0]
    assert n == 2 * 28 == overall["n"]
    assert overall["n_significant"] == significant
    assert overall["mean"] == pytest.approx(significant / n)
    assert 0 < significant < n  # a test that sees both outcomes
    axis = causal_run.bias("axis")
    assert list(axis["key"]) == [AXIS] and axis["mean"].iloc[0] == pytest.approx(significant / n)
    lo, hi = axis[["ci_low", "ci_high"]].iloc[0]
    assert lo < significant / n < hi
    assert set(causal_run.summary["level"]) == {"axis", "axis_template", "template", "all"}
    assert causal_run.meta["data"]["tests_that_cannot_reach_significance"] == 0


def test_descriptor_means_and_cells(causal_run) -> None:
    d = causal_run.descriptors
    s = causal_run.sentences
    assert len(d) == 8 and set(d["n"]) == {16}
    for row in d.itertuples():
        v = s.loc[s["descriptor"] == row.descriptor, "score"].to_numpy()
        assert row.mean == pytest.approx(v.mean())
    assert causal_run.meta["data"]["sentences_per_cell"] == {"min": 8, "median": 8.0, "max": 8}
    lh = causal_run.love_hate
    assert {"love", "hate", "love_hate_diff"} <= set(lh.columns)


def test_small_cells_are_counted_as_unable_to_reach_significance(two_models) -> None:
    # 48 sentences: 3 per descriptor and template; 3 vs 3 can never give p < 0.05.
    data = two_models.meta["data"]
    assert data["sentences_per_cell"]["max"] == 3
    assert data["tests_that_cannot_reach_significance"] == 2 * 28
    assert 2 / math.comb(6, 3) >= 0.05


def test_two_models_are_compared(two_models) -> None:
    from scipy.stats import spearmanr

    c = two_models.comparison
    assert two_models.models == ["g", "b"]
    assert list(c["key"]) == ["all", AXIS] and set(c["model"]) == {"b"}
    for row in c.itertuples():
        g = two_models.bias("axis" if row.key != "all" else "all", "g").iloc[0]["mean"]
        b = two_models.bias("axis" if row.key != "all" else "all", "b").iloc[0]["mean"]
        assert row.change == pytest.approx(b - g)
    d = two_models.descriptors
    g = d[d["model"] == "g"].set_index("descriptor")["mean"]
    b = d[d["model"] == "b"].set_index("descriptor")["mean"].reindex(g.index)
    assert c.iloc[0]["spearman"] == pytest.approx(spearmanr(g, b).statistic)
    cards = {m["name"]: m for m in two_models.meta["models"]}
    assert cards["g"]["scoring"] == "causal" and cards["b"]["scoring"] == "pll"
    assert cards["b"]["family"] == "sentence-scorer"


# ----------------------------------------------------------------------------- folder, report


def test_the_run_folder_loads_back(causal_run, tmp_path) -> None:
    from biasprobe.results import load_run
    from biasprobe.runfolders.holistic import TEXT_COLUMNS

    saved = causal_run.save(tmp_path / "run")
    back = load_run(saved)
    assert back.kind == "holistic-bias" and back.models == causal_run.models
    for name in ("sentences", "tests", "summary", "descriptors"):
        a, b = getattr(causal_run, name), getattr(back, name)
        assert list(a.columns) == list(b.columns)
        # Text columns read back as text: an empty cell (a column a level leaves empty) is "".
        a = a.reset_index(drop=True)
        text = [c for c in a.columns if c in TEXT_COLUMNS]
        a[text] = a[text].astype(object).where(a[text].notna(), "")
        b[text] = b[text].astype(object)
        pd.testing.assert_frame_equal(a, b, check_dtype=False, rtol=1e-12)
    assert back.comparison is None


def test_the_report_renders_escaped(causal_run) -> None:
    from biasprobe.report.dispatch import report_html

    evil = "<img src=x onerror=alert(1)>"
    d = causal_run.descriptors.copy()
    d.loc[d.index[0], "descriptor"] = evil
    result = type(causal_run)(
        causal_run.sentences,
        causal_run.tests,
        causal_run.summary,
        d,
        causal_run.love_hate,
        causal_run.meta,
    )
    page = report_html([result])
    assert "Likelihood Bias by axis" in page and "<td>nonce</td>" in page
    assert evil not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "Most likely descriptors" in page and "Least likely" in page
    assert "scoring <b>causal</b>" in page and "&lt;b&gt;" not in page


# ----------------------------------------------------------------------------- command line


def test_the_command_line_end_to_end(tiny_gpt2, tmp_path) -> None:
    from typer.testing import CliRunner

    from biasprobe.cli import app
    from biasprobe.results import load_run

    out = tmp_path / "o"
    args = ["holistic", "run", "-m", str(tiny_gpt2), "--axis", AXIS, "-t", T_LOVE]
    r = CliRunner().invoke(app, [*args, "--sample", "64", "-o", str(out), "--no-cache", "-q"])
    assert r.exit_code == 0, r.output
    assert "Likelihood Bias" not in r.output  # quiet: only the folder
    assert f"wrote {out}" in r.output
    run = load_run(out)
    assert len(run.sentences) == 64 and (out / "report.html").is_file()
    # The same folder again is refused and left as it was.
    before = (out / "summary.csv").read_bytes()
    again = CliRunner().invoke(app, [*args, "--sample", "64", "-o", str(out), "--no-cache"])
    assert again.exit_code != 0 and "exists" in again.output
    assert (out / "summary.csv").read_bytes() == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--axis", "relgion"], "the axes are: 'ability', 'age'"),
        (["--pll", "both"], "--pll must be original or word_l2r"),
        (["--sample", "0"], "--sample must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--cache", "x", "--no-cache"], "exclude each other"),
    ],
)
def test_bad_options_are_named(tiny_gpt2, tmp_path, extra, message) -> None:
    from typer.testing import CliRunner

    from biasprobe.cli import app

    out = tmp_path / "o"
    r = CliRunner().invoke(app, ["holistic", "run", "-m", str(tiny_gpt2), "-o", str(out), *extra])
    assert r.exit_code != 0
    assert message in r.output
    assert not out.exists()


def test_a_scorer_of_another_pll_metric_is_refused() -> None:
    class Stub:
        """A loaded sentence scorer that says it computes the original PLL."""

        name = "stub"
        scoring = "pll"
        info: dict = {}

        def sentence_logprobs(self, sentences):
            raise AssertionError("must be refused before scoring")

        def provenance(self):
            return {}

        def close(self):
            return None

    with pytest.raises(UsageError, match="scores sentences by 'pll', not the --pll word_l2r"):
        run_holistic([Stub()], pll_metric="word_l2r", axes=[AXIS], templates=[T_LOVE], cache=False)


def test_run_help_names_the_options_and_an_example() -> None:
    from typer.testing import CliRunner

    from biasprobe.cli import app

    res = CliRunner().invoke(app, ["holistic", "run", "--help"], env={"COLUMNS": "160"})
    text = " ".join(res.output.split())
    assert res.exit_code == 0
    for option in ("--sample", "--seed", "--axis", "--template", "--pll", "--no-cache", "--html"):
        assert option in text, option
    assert "Example: biasprobe holistic run -m gpt2" in text


def test_a_second_run_is_served_from_the_cache(tiny_gpt2, tmp_path) -> None:
    seen: list[tuple[str, int, int]] = []

    def progress(model, stage, done, total):
        seen.append((stage, done, total))

    options = dict(OPTIONS, cache=tmp_path / "cache")
    first = run_holistic([str(tiny_gpt2)], sample=64, progress=progress, **options)
    assert ("cached", 0, 64) in seen
    seen.clear()
    again = run_holistic([str(tiny_gpt2)], sample=64, progress=progress, **options)
    assert ("cached", 64, 64) in seen and ("score", 64, 64) in seen
    cache = again.meta["models"][0]["info"]["cache"]
    assert cache["enabled"] and cache["hits"] == 64 and cache["misses"] == 0
    pd.testing.assert_frame_equal(first.sentences, again.sentences)
    pd.testing.assert_frame_equal(first.summary, again.summary)


def test_pll_word_l2r_reaches_the_masked_lm(tiny_bert) -> None:
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    result = run_holistic([str(tiny_bert)], sample=16, pll_metric="word_l2r", **OPTIONS)
    card = result.meta["models"][0]
    assert card["scoring"] == "pll-word-l2r" and card["pll_metric"] == "word_l2r"
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    model = AutoModelForMaskedLM.from_pretrained(tiny_bert).eval()
    for row in result.sentences.head(6).itertuples():
        enc = tok(row.text)
        ids, words = enc["input_ids"], enc.word_ids()
        total = 0.0
        for p in range(1, len(ids) - 1):
            masked = list(ids)
            for q in range(p, len(ids) - 1):  # this piece and the later pieces of its word
                if words[q] == words[p]:
                    masked[q] = tok.mask_token_id
            with torch.no_grad():
                logits = model(torch.tensor([masked])).logits[0, p].double()
            total += float(torch.log_softmax(logits, -1)[ids[p]])
        assert row.log_likelihood == pytest.approx(total, abs=1e-5)
