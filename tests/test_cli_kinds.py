"""`biasprobe run` dispatches on the probe set's kind; each kind refuses the other's models."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from biasprobe.cli import app

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_counterfactual_set_runs_on_a_classifier_and_reports(tiny_hf_classifier, tmp_path):
    out = tmp_path / "run"
    res = invoke(
        "run", REPO / "probes/sentiment-gender.yaml", "-m", tiny_hf_classifier, "-o", out,
        "-p", "love-being*", "-p", "hate-being*", "--html", "-q",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert f"(report: {out / 'report.html'})" in " ".join(res.output.split())
    assert (out / "report.html").is_file()
    down = pd.read_csv(out / "downstream.csv")
    assert set(down.template_id) == {"love-being", "hate-being"}
    assert len(down) == 4 and down.p_positive.between(0, 1).all()
    # P(pos) is what the classifier gives for that exact sentence
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_hf_classifier))
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_hf_classifier)).eval()
    with torch.no_grad():
        logits = model(**tok(list(down.sentence), return_tensors="pt", padding=True)).logits
    expected = torch.softmax(logits.double(), -1)[:, 1].numpy()
    assert down.p_positive.to_numpy() == pytest.approx(expected, abs=1e-5)
    meta = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert meta["probe_set"]["name"] == "sentiment-gender"
    page = tmp_path / "page.html"
    res = invoke("report", out, "-o", page)
    assert res.exit_code == 0, res.output
    assert "P(pos)" in page.read_text(encoding="utf-8")


def test_fill_mask_set_refuses_a_classifier_checkpoint(tiny_hf_classifier, tmp_path):
    res = invoke("run", REPO / "probes/gender.yaml", "-m", tiny_hf_classifier, "-o", tmp_path / "x")
    assert res.exit_code == 1
    assert "not a complete masked language model" in res.output
    assert not (tmp_path / "x").exists()


def test_counterfactual_set_refuses_recorded_masked_lm_and_top_k(tmp_path):
    probe = REPO / "probes/sentiment-gender.yaml"
    res = invoke("run", probe, "-m", "recorded:bert-large-uncased-whole-word-masking", "-q")
    assert res.exit_code == 2 and "needs a sentiment classifier" in res.output
    res = invoke("run", probe, "-m", "x", "-k", "5", "-o", tmp_path / "y")
    assert res.exit_code == 2 and "--top-k applies to fill-mask sets" in res.output
    res = invoke("run", probe, "-m", "x", "--tolerance", "2", "-o", tmp_path / "y")
    assert res.exit_code == 2 and "--tolerance" in res.output
    assert not (tmp_path / "y").exists()


def test_counterfactual_set_on_a_masked_lm_is_refused(tiny_bert, tmp_path):
    res = invoke(
        "run", REPO / "probes/sentiment-gender.yaml", "-m", tiny_bert, "-o", tmp_path / "z"
    )
    assert res.exit_code != 0
    assert "error:" in res.output and not (tmp_path / "z").exists()


def test_library_runner_refuses_counterfactual_sets():
    from biasprobe.errors import UsageError
    from biasprobe.probes import load_probe_set
    from biasprobe.runner import run

    with pytest.raises(UsageError, match="counterfactual probe set has no"):
        run(load_probe_set(REPO / "probes/sentiment-age.yaml"), ["unused"])


def test_crows_is_mounted():
    res = invoke("crows", "--help")
    assert res.exit_code == 0 and "CrowS-Pairs" in res.output


CF_HEADER = """\
name: demo
version: 1
kind: counterfactual
description: A test set.
source: Written for the tests.
orientation:
  minoritized: women
  normative: men
pairs:
"""


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('"[SHE|she] is happy."', "both sides are the same tokens"),  # uncased: same ids
        ('"[\U0001f642|she] is happy."', "become the unknown token"),  # a word outside the vocab
    ],
)
def test_counterfactual_pairs_a_classifier_cannot_tell_apart_are_errors(
    tiny_hf_classifier, tmp_path, template, expected
):
    probe = tmp_path / "cf.yaml"
    probe.write_text(
        CF_HEADER + f"  - id: p\n    template: {template}\n    groups: [women, men]\n",
        encoding="utf-8",
    )
    res = invoke("run", probe, "-m", tiny_hf_classifier, "-o", tmp_path / "out")
    assert res.exit_code == 2, res.output
    assert expected in res.output and "cf.yaml:" in res.output and "pair p" in res.output
    assert not (tmp_path / "out").exists()


def test_shipped_counterfactual_sets_pass_the_tokenizer_check():
    """Every pair of the shipped sets is told apart by the uncased WordPiece tokenizer that the
    sentiment models and all-MiniLM-L6-v2 use (no silent Δ = 0, no unknown group words)."""
    from biasprobe.backends.classifiers import ClassifierBackend as Classifier
    from biasprobe.backends.classifiers import check_tokenization
    from biasprobe.probes import load_probe_set
    from biasprobe.sentiment.data import load_tokenizer

    class Tokenized(Classifier):
        name, tokenizer = "uncased", load_tokenizer("bert-base-uncased")

        def _probs(self, texts):  # never called: only the tokenizer is checked
            raise AssertionError("check_tokenization must not score")

    for axis in ("gender", "race", "age", "religion", "sexuality"):
        check_tokenization(
            Tokenized(), load_probe_set(REPO / f"probes/sentiment-{axis}.yaml").items
        )
