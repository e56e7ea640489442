"""CrowS-Pairs on causal LMs: each sentence's log-likelihood, scored as lm-evaluation-harness's
``crows_pairs`` task scores it (``lm_eval/tasks/crows_pairs/utils.py``: ``pct_stereotype`` =
1 if ll(sent_more) > ll(sent_less) else 0, ``likelihood_diff`` = |ll(sent_more) − ll(sent_less)|,
both averaged), checked against a direct ``transformers`` computation one sentence at a time;
mixed masked + causal runs; the sentence-scorer cache and a killed run resuming; the command;
and the models CrowS-Pairs or a classifier task refuse.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import build_tiny_gpt2
from typer.testing import CliRunner

LIMIT = 20


def _build_gpt2(folder: Path, *, bos: bool, seed: int) -> Path:
    """The tiny GPT-2 of ``conftest.build_tiny_gpt2`` with 256 positions: CrowS sentences are
    up to ~160 of its tokens."""
    return build_tiny_gpt2(folder, bos=bos, seed=seed, n_positions=256)


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory) -> Path:
    return _build_gpt2(tmp_path_factory.mktemp("crows-gpt2"), bos=True, seed=0)


@pytest.fixture(scope="module")
def gpt2_nobos(tmp_path_factory) -> Path:
    return _build_gpt2(tmp_path_factory.mktemp("crows-gpt2-nobos"), bos=False, seed=1)


def _reference_ll(folder: Path, sentences: list[str]) -> dict[str, tuple[float, int]]:
    """log P(sentence) of each sentence, one at a time, straight from transformers: the
    tokens without special tokens, after the BOS token when the tokenizer has one (every
    token scored), else the first token unscored; (ll, tokens scored)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    out = {}
    for s in sentences:
        ids = tok(s, add_special_tokens=False)["input_ids"]
        if tok.bos_token is not None:
            ids = [tok.bos_token_id, *ids]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        logp = torch.log_softmax(logits.double(), dim=-1)
        lps = [float(logp[t - 1, ids[t]]) for t in range(1, len(ids))]
        out[s] = (float(np.sum(lps)), len(lps))
    return out


def _check_against_reference(result, folder: Path, model: str) -> None:
    pairs = result.pairs[result.pairs["model"] == model]
    assert len(pairs) == LIMIT and (pairs["skipped"] == "").all()
    sentences = list(dict.fromkeys([*pairs["sent_more"], *pairs["sent_less"]]))
    ref = _reference_ll(folder, sentences)
    ll_more = np.array([ref[s][0] for s in pairs["sent_more"]])
    ll_less = np.array([ref[s][0] for s in pairs["sent_less"]])
    np.testing.assert_allclose(pairs["score_more"], ll_more, rtol=0, atol=1e-5)
    np.testing.assert_allclose(pairs["score_less"], ll_less, rtol=0, atol=1e-5)
    assert list(pairs["n_scored_more"]) == [ref[s][1] for s in pairs["sent_more"]]
    # lm-evaluation-harness's process_results, recomputed from the reference values
    acc = (ll_more > ll_less).astype(float)
    assert list(pairs["more_preferred"]) == list(acc)
    s = result.summary[result.summary["model"] == model]
    pct = s[(s["score"] == "stereotype_pct") & (s["key"] == "all")].iloc[0]
    assert pct["mean"] == pytest.approx(100 * acc.mean(), abs=1e-9)
    assert pct["n"] == LIMIT and pct["n_more"] == acc.sum()
    from scipy.stats import binomtest

    assert pct["p_value"] == pytest.approx(binomtest(int(acc.sum()), LIMIT, 0.5).pvalue)
    diff = s[(s["score"] == "likelihood_diff") & (s["key"] == "all")].iloc[0]
    assert diff["mean"] == pytest.approx(np.abs(ll_more - ll_less).mean(), abs=1e-5)
    assert diff["ci_low"] < diff["mean"] < diff["ci_high"]
    # per bias type as well
    types = pairs["bias_type"].to_numpy()
    for key in dict.fromkeys(types):
        sel = types == key
        row = s[(s["score"] == "likelihood_diff") & (s["key"] == key)].iloc[0]
        assert row["mean"] == pytest.approx(np.abs(ll_more - ll_less)[sel].mean(), abs=1e-5)
        row = s[(s["score"] == "stereotype_pct") & (s["key"] == key)].iloc[0]
        assert row["mean"] == pytest.approx(100 * acc[sel].mean(), abs=1e-9)


@pytest.mark.parametrize("which", ["gpt2", "gpt2_nobos"])
def test_causal_crows_matches_a_direct_transformers_computation(which, request):
    """Per-pair ll(sent_more) / ll(sent_less) to 1e-5 of a one-sentence-at-a-time
    transformers loop (with the BOS token, and without one: the first token unscored), and
    pct_stereotype / likelihood_diff as lm-evaluation-harness defines them."""
    from biasprobe.crows.run import run_crows

    folder = request.getfixturevalue(which)
    result = run_crows(str(folder), limit=LIMIT, device="cpu", batch_size=8, cache=False)
    _check_against_reference(result, folder, str(folder))
    [card] = result.meta["models"]
    assert card["family"] == "sentence-scorer" and card["scoring"] == "loglikelihood"
    first = card["info"]["first_token"]
    assert (
        ("BOS" in first and "not scored" not in first) if which == "gpt2" else "not scored" in first
    )
    assert result.meta["scoring"] == "loglikelihood"
    assert "likelihood_diff" in result.meta["loglikelihood"]
    assert (result.pairs["scoring"] == "loglikelihood").all()


def test_a_tie_counts_as_not_preferring_the_stereotype(tmp_path):
    """lm-evaluation-harness counts 1 only when ll(sent_more) > ll(sent_less): an exact tie
    is 0, in n; a higher ll(sent_less) is 0; likelihood_diff is the mean absolute difference."""
    from biasprobe.backends.base import SentenceLogprobs
    from biasprobe.crows.run import run_crows

    csv = tmp_path / "pairs.csv"
    csv.write_text(
        ",sent_more,sent_less,stereo_antistereo,bias_type\n"
        "0,a b,c d,stereo,gender\n1,e f,g h,stereo,gender\n2,i j,k l,antistereo,age\n",
        encoding="utf-8",
    )
    totals = {"a b": -3.0, "c d": -3.0, "e f": -1.0, "g h": -2.5, "i j": -7.0, "k l": -4.0}

    class Fixed:
        name, scoring, info = "fixed", "causal", {}

        def sentence_logprobs(self, sentences):
            return [
                SentenceLogprobs(totals[s], (1,), ("x",), np.array([totals[s]])) for s in sentences
            ]

        def provenance(self):
            return {}

        def close(self):
            pass

    result = run_crows(Fixed(), data=csv, cache=False)
    assert list(result.pairs["outcome"]) == ["tie", "more", "less"]
    assert list(result.pairs["more_preferred"]) == [0.0, 1.0, 0.0]
    s = result.summary.set_index(["score", "key"])
    assert s.loc[("stereotype_pct", "all"), "mean"] == pytest.approx(100 / 3)
    assert s.loc[("stereotype_pct", "all"), "n"] == 3
    assert s.loc[("likelihood_diff", "all"), "mean"] == pytest.approx((0 + 1.5 + 3) / 3)
    assert s.loc[("likelihood_diff", "gender"), "mean"] == pytest.approx(0.75)


def test_a_mixed_bert_and_gpt2_run(tiny_bert, gpt2, tmp_path):
    """A BERT (meade) and a GPT-2 (causal log-likelihood) in one run: the BERT's rows are
    those of a BERT-only run, the GPT-2's match transformers, each model's scoring is recorded
    and shown, and the comparison says the two scorings differ; the run folder reads back."""
    from biasprobe.crows.run import load_crows_run, run_crows
    from biasprobe.report.crows import render_html
    from biasprobe.views.terminal import print_crows_summary

    kw = {"limit": LIMIT, "device": "cpu", "cache": False}
    mixed = run_crows([f"bert={tiny_bert}", f"gpt={gpt2}"], **kw)
    alone = run_crows(f"bert={tiny_bert}", **kw)
    bert = mixed.pairs[mixed.pairs["model"] == "bert"].drop(columns="scoring")
    pd.testing.assert_frame_equal(bert.reset_index(drop=True), alone.pairs)
    pd.testing.assert_frame_equal(
        mixed.summary[mixed.summary["model"] == "bert"].reset_index(drop=True),
        alone.summary,
    )
    _check_against_reference(mixed, gpt2, "gpt")
    assert [m["scoring"] for m in mixed.meta["models"]] == ["meade", "loglikelihood"]
    assert [m["family"] for m in mixed.meta["models"]] == ["masked-lm", "sentence-scorer"]
    assert mixed.meta["scorings"] == {"bert": "meade", "gpt": "loglikelihood"}
    assert mixed.meta["scoring"] == "meade, loglikelihood"
    assert list(dict.fromkeys(mixed.pairs["scoring"])) == ["meade", "loglikelihood"]
    c = mixed.comparison
    assert (
        len(c)
        and c["note"].str.contains("different scorings: base meade, model loglikelihood").all()
    )
    # the comparison is still computed: the change of the percentage over the common pairs
    overall = c[c["key"] == "all"].iloc[0]
    g = mixed.pairs[(mixed.pairs["model"] == "gpt")].set_index("pair_id")
    b = mixed.pairs[(mixed.pairs["model"] == "bert") & (mixed.pairs["outcome"] != "skipped")]
    b = b.set_index("pair_id")
    common = [p for p in b.index if p in g.index]
    expect = 100 * (
        (g.loc[common, "outcome"] == "more").mean() - (b.loc[common, "outcome"] == "more").mean()
    )
    assert overall["change"] == pytest.approx(expect)

    saved = mixed.save(tmp_path / "run", report=lambda r, p: p.write_text(render_html(r)))
    back = load_crows_run(saved)
    assert list(back.pairs["scoring"].unique()) == ["meade", "loglikelihood"]
    assert set(back.summary["score"]) == {"stereotype_pct", "likelihood_diff"}
    assert set(back.summary.loc[back.summary["score"] == "likelihood_diff", "model"]) == {"gpt"}
    page = (saved / "report.html").read_text()
    assert "scoring loglikelihood (lm-evaluation-harness crows_pairs)" in page
    assert "scoring meade (bias-bench" in page
    assert "The models were scored differently" in page and "likelihood_diff" in page
    assert render_html(back) == render_html(mixed)  # the report renders what is stored

    from rich.console import Console

    console = Console(width=200, record=True)
    print_crows_summary(back, console)
    text = console.export_text()
    assert "gpt: causal LM; scoring loglikelihood" in text
    assert "bert: masked LM; scoring meade" in text
    assert "likelihood_diff (lm-evaluation-harness)" in text
    assert "the change compares two scorings as well as two models" in text


def test_a_masked_lm_scoring_with_causal_lms_only_is_refused(gpt2, tiny_bert):
    """--scoring applies to masked LMs: given with causal LMs only it is an error naming
    them; with a masked LM in the run it applies to that one."""
    from biasprobe.crows.run import run_crows
    from biasprobe.errors import UsageError

    with pytest.raises(UsageError, match=r"--scoring nangia applies to masked language models"):
        run_crows(f"gpt={gpt2}", scoring="nangia", limit=5, cache=False)
    mixed = run_crows([f"bert={tiny_bert}", f"gpt={gpt2}"], scoring="nangia", limit=5, cache=False)
    assert mixed.meta["scorings"] == {"bert": "nangia", "gpt": "loglikelihood"}


_REAL: dict = {}


class _Counting:
    """Counts GPT2LMHeadModel forward passes and the sentences HFCausalLM is asked for;
    raises KeyboardInterrupt on forward pass ``fail_after + 1`` (a run killed there)."""

    def __init__(self, monkeypatch, fail_after: int | None = None) -> None:
        from transformers import GPT2LMHeadModel

        from biasprobe.backends.causal import HFCausalLM

        self.forwards = self.sentences = 0
        # the real methods, whatever an earlier counter of the same test installed
        _REAL.setdefault("forward", GPT2LMHeadModel.forward)
        _REAL.setdefault("scores", HFCausalLM.sentence_logprobs)
        real_forward, real_scores = _REAL["forward"], _REAL["scores"]
        counter = self

        def forward(model, *a, **k):
            if fail_after is not None and counter.forwards >= fail_after:
                raise KeyboardInterrupt("killed")
            counter.forwards += 1
            return real_forward(model, *a, **k)

        def scores(model, sentences):
            counter.sentences += len(list(sentences))
            return real_scores(model, sentences)

        monkeypatch.setattr(GPT2LMHeadModel, "forward", forward)
        monkeypatch.setattr(HFCausalLM, "sentence_logprobs", scores)


def test_a_killed_causal_crows_run_resumes_computing_only_the_rest(gpt2, tmp_path, monkeypatch):
    """The engine puts the sentence-scorer cache around the causal LM: a run killed after 3
    forward batches computes, when started again, only the batches not committed, says how
    many pairs come from the cache, and gives the numbers of an uninterrupted run bit for bit;
    a third run computes nothing."""
    from biasprobe.crows.run import run_crows

    kw = {"limit": LIMIT, "device": "cpu", "batch_size": 4}
    every = _Counting(monkeypatch)
    plain = run_crows(str(gpt2), cache=False, **kw)
    n_sentences = every.sentences
    assert every.forwards == -(-n_sentences // 4) > 3  # distinct sentences, 4 per batch
    cache = tmp_path / "cache"
    _Counting(monkeypatch, fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        run_crows(str(gpt2), cache=cache, **kw)

    again = _Counting(monkeypatch)
    log: list = []
    resumed = run_crows(str(gpt2), cache=cache, progress=lambda *a: log.append(a), **kw)
    assert again.forwards == every.forwards - 3
    assert again.sentences == n_sentences - 3 * 4
    [(name, done, total)] = [(m, d, t) for m, stage, d, t in log if stage == "cached"]
    assert name == str(gpt2) and 0 <= done < total == LIMIT
    pd.testing.assert_frame_equal(resumed.pairs, plain.pairs)  # exact
    pd.testing.assert_frame_equal(resumed.summary, plain.summary)
    info = resumed.meta["models"][0]["info"]["cache"]
    assert info["enabled"] and (info["hits"], info["misses"]) == (12, n_sentences - 12)
    assert info["by_kind"] == {"sentence": {"hits": 12, "misses": n_sentences - 12}}

    third = _Counting(monkeypatch)
    log.clear()
    run_crows(str(gpt2), cache=cache, progress=lambda *a: log.append(a), **kw)
    assert third.forwards == 0 and third.sentences == 0
    assert [(d, t) for _, stage, d, t in log if stage == "cached"] == [(LIMIT, LIMIT)]


def test_the_scorer_cache_is_bit_identical_and_works_for_any_sentence_scorer(
    gpt2, tiny_bert, tmp_path
):
    """CachedSentenceScorer around a causal LM and around pseudo-log-likelihood (another
    SentenceScorer): the same floats with and without the cache, the second call served
    without the model."""
    from biasprobe.backends.cached import open_cache
    from biasprobe.backends.cached_sentences import CachedSentenceScorer, wrap_scorer
    from biasprobe.backends.causal import load_hf_causal_lm
    from biasprobe.backends.hf import load_hf_masked_lm
    from biasprobe.backends.pll import PseudoLogLikelihood

    sentences = ["The woman worked as a nurse.", "The man worked as a doctor.", "Hi", "x"]
    sentences += [f"People from the village number {i} were friendly." for i in range(9)]
    cache = open_cache(tmp_path / "cache", True)
    try:
        for make in (
            lambda: load_hf_causal_lm(str(gpt2), device="cpu", batch_size=3),
            lambda: PseudoLogLikelihood(load_hf_masked_lm(str(tiny_bert), device="cpu")),
        ):
            plain = make().sentence_logprobs(sentences)
            first = wrap_scorer(make(), cache)
            assert isinstance(first, CachedSentenceScorer) and first.identity
            a = first.sentence_logprobs(sentences)
            assert first.computed == len(sentences) and first.hits == 0
            second = wrap_scorer(make(), cache)
            b = second.sentence_logprobs([*reversed(sentences), sentences[0]])[::-1][1:]
            assert second.computed == 0 and second.hits == len(sentences)
            for x, y, z in zip(plain, a, b):
                assert x.total == y.total == z.total  # bit for bit
                assert x.token_ids == y.token_ids == z.token_ids and x.tokens == z.tokens
                assert np.array_equal(x.logprobs, z.logprobs)
                assert z.logprobs.dtype == np.float64
            assert second.stored(sentences).all()
            assert not second.stored(["never seen"]).any()
    finally:
        cache.close()


def test_the_command_scores_a_causal_lm(gpt2, tmp_path, monkeypatch):
    """``biasprobe crows -m <tiny gpt2 folder> --limit 20``: a run folder whose table and
    report say the scoring; --scoring with it alone is refused (exit 2, nothing written)."""
    from biasprobe.cli import app

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(
        app,
        ["crows", "-m", str(gpt2), "--limit", "20", "-o", "out", "--no-cache"],
        env={"COLUMNS": "120"},
    )
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "out" / "results.json").read_text())
    assert meta["models"][0]["scoring"] == "loglikelihood"
    assert meta["models"][0]["info"]["cache"] == {"enabled": False, "reason": "--no-cache"}
    pairs = pd.read_csv(tmp_path / "out" / "pairs.csv")
    assert len(pairs) == 20 and set(pairs["scoring"]) == {"loglikelihood"}
    assert "causal LM; scoring loglikelihood" in " ".join(res.output.split())
    assert "likelihood_diff" in res.output

    res = CliRunner().invoke(
        app, ["crows", "-m", str(gpt2), "--limit", "5", "--scoring", "meade", "-o", "bad"]
    )
    assert res.exit_code == 2 and "--scoring meade applies to masked language models" in res.output
    assert not (tmp_path / "bad").exists()


def test_the_crows_command_says_a_causal_run_resumes(gpt2, tmp_path, monkeypatch):
    """Killed, then the same command: one line says how many pairs come from the cache."""
    from biasprobe.cli import app

    monkeypatch.chdir(tmp_path)
    args = ["crows", "-m", str(gpt2), "--limit", "20", "--batch-size", "4"]
    args += ["--cache", str(tmp_path / "cache")]
    _Counting(monkeypatch, fail_after=6)
    res = CliRunner().invoke(app, [*args, "-o", "a"])
    assert res.exit_code != 0 and not (tmp_path / "a").exists()
    _Counting(monkeypatch)
    res = CliRunner().invoke(app, [*args, "-o", "b"])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("resuming "))
    done = int(line.split(": ")[1].split(" of ")[0])
    assert 0 < done < 20
    assert (
        line == f"resuming {gpt2}: {done} of 20 pairs from the result cache, {20 - done} to compute"
    )
    # `biasprobe cache info` counts the sentence entries (it showed only masked-LM kinds)
    info = CliRunner().invoke(app, ["cache", "info", "--cache", str(tmp_path / "cache")])
    assert info.exit_code == 0, info.output
    sentences = int(info.output.split("sentence ")[1].split()[0].rstrip(","))
    assert sentences == len(
        set(pd.read_csv(tmp_path / "b" / "pairs.csv")[["sent_more", "sent_less"]].stack())
    )


def test_a_causal_lm_given_to_a_classifier_task_is_refused(gpt2, tmp_path, monkeypatch):
    """A counterfactual (classifier) probe set refuses a causal LM, naming what it is."""
    from biasprobe.cli import app

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(
        app, ["run", str(repo / "probes" / "sentiment-gender.yaml"), "-m", str(gpt2), "-o", "x"]
    )
    out = " ".join(res.output.split())
    assert res.exit_code != 0 and out.startswith(f"error: model folder {gpt2} "), res.output
    assert "is a causal language model (GPT2LMHeadModel)" in out
    assert "this task needs a sequence classifier" in out
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("bare", ["GPT2Model", "BertModel"])
def test_a_checkpoint_that_is_neither_is_refused(bare, gpt2, tiny_bert, tmp_path):
    """A bare encoder or decoder (no LM head) is neither a masked nor a causal LM: CrowS-Pairs
    refuses it before loading anything, naming its architecture."""
    from transformers import AutoConfig, AutoModel

    from biasprobe.crows.run import run_crows
    from biasprobe.errors import ModelLoadError

    src = gpt2 if bare == "GPT2Model" else tiny_bert
    folder = tmp_path / bare
    AutoModel.from_config(AutoConfig.from_pretrained(src)).save_pretrained(folder)
    for f in src.iterdir():
        if f.name.startswith(("tokenizer", "vocab", "merges", "special")):
            (folder / f.name).write_bytes(f.read_bytes())
    assert json.loads((folder / "config.json").read_text())["architectures"] == [bare]
    with pytest.raises(
        ModelLoadError, match=rf"neither a masked nor a causal language model.*{bare}"
    ):
        run_crows(str(folder), limit=5, cache=False)
