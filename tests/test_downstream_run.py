"""Downstream runs on classifiers built in the test: HF checkpoints, sentiment run folders,
classifiers blind to (or wired to react to) the group word; the run folder and the printer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from biasprobe.backends.classifiers import ClassifierBackend as Classifier
from biasprobe.backends.classifiers import load_classifier, positive_index
from biasprobe.downstream.run import (
    is_downstream_run,
    load_downstream_run,
    run_downstream,
)
from biasprobe.errors import ModelLoadError, OutputError, UsageError
from biasprobe.fsio import NotOwnedError
from biasprobe.probes import ProbeItem
from biasprobe.views.terminal import print_downstream

NAMES = [("john", "mary"), ("james", "linda"), ("robert", "susan"), ("paul", "karen")]
TEMPLATES = {
    "feels": "{} feels delighted about the new job.",
    "review": "{} wrote this review: the blender is awful.",
    "said": "According to {}, the film was fine.",
}


def _items() -> list[ProbeItem]:
    items = []
    for tid, tpl in TEMPLATES.items():
        for man, woman in NAMES:
            items.append(
                ProbeItem(
                    pair_id=f"{tid}/{man}-{woman}",
                    template_id=tid,
                    groups=("men", "women"),
                    sentences=(tpl.format(man.title()), tpl.format(woman.title())),
                    minoritized=1,
                    targets=(),
                    fills=(("name", f"{man}|{woman}"),),
                    source=f"test.yaml:{len(items) + 1}",
                )
            )
    return items


class WordClassifier(Classifier):
    """P(pos) from a fixed per-text rule; optionally shifted when a women's name appears."""

    kind = "test"
    labels = ("negative", "positive")
    positive = 1

    def __init__(self, name: str, shift: float = 0.0) -> None:
        self.name, self.shift, self.info = name, shift, {"source": "test"}

    def _probs(self, texts):
        out = []
        for t in texts:
            low = t.lower()
            p = 0.8 if "delighted" in low else 0.2 if "awful" in low else 0.55
            if any(w in low.split() or f"{w}," in low for _, w in NAMES):
                p = p + self.shift
            out.append([1 - p, p])
        return np.array(out)


def test_blind_classifier_exact_zero_and_p_one():
    res = run_downstream(_items(), [WordClassifier("blind")], set_name="t", n_boot=200)
    assert (res.scores["delta"] == 0).all()
    assert (res.scores["flip"] == 0).all()
    s = res.summary[(res.summary.level == "set")]
    d = s[s.score == "delta"].iloc[0]
    # three templates: too few for a set-level interval or test (the note says so)
    assert d["mean"] == 0 and d["n"] == 12 and d["templates"] == 3
    assert np.isnan(d["ci_low"]) and np.isnan(d["p_value"]) and "too few" in d["note"]
    t = res.summary[(res.summary.level == "template") & (res.summary.score == "delta")]
    assert (t["ci_low"] == 0).all() and (t["ci_high"] == 0).all()
    assert (t["p_wilcoxon"] == 1.0).all() and (t["p_sign"] == 1.0).all()
    assert s[s.score == "flip"].iloc[0]["mean"] == 0


def test_reactive_classifier_sign_and_size():
    # women (minoritized, side B) get +0.15: Δ = +0.15 everywhere; 0.55 -> 0.70 no flip
    res = run_downstream(_items(), [WordClassifier("react", 0.15)], set_name="t", n_boot=300)
    np.testing.assert_allclose(res.scores["delta"], 0.15)
    s = res.summary[res.summary.level == "set"].set_index("score")
    assert s.loc["delta", "mean"] == pytest.approx(0.15)
    assert s.loc["abs_delta", "mean"] == pytest.approx(0.15)
    assert s.loc["flip", "mean"] == 0
    assert s.loc["invariance_failure", "mean"] == 1  # |Δ| = 0.15 > tolerance 0.1
    loose = run_downstream(_items(), [WordClassifier("r", 0.15)], tolerance=0.2, n_boot=50)
    assert (loose.scores["invariance_failure"] == 0).all()
    # per template (4 pairs each) the sign test of the pairs; no set-level test at 3 templates
    t = res.summary[(res.summary.level == "template") & (res.summary.score == "delta")]
    assert t["p_sign"].tolist() == pytest.approx([stats.binomtest(4, 4).pvalue] * 3)
    assert np.isnan(s.loc["delta", "p_sign"])
    # a shift that crosses 0.5 flips the neutral template's labels (0.55 -> 0.45)
    res2 = run_downstream(_items(), [WordClassifier("r2", -0.1)], set_name="t", n_boot=100)
    t = res2.summary[(res2.summary.level == "template") & (res2.summary.score == "flip")]
    assert dict(zip(t["key"], t["mean"], strict=True)) == {"feels": 0, "review": 0, "said": 1}


def test_fill_mask_items_are_refused():
    bad = ProbeItem(
        "p", "t", ("a", "b"), ("He is a [MASK].", "She is a [MASK]."), 1, (), (), "g.yaml:4"
    )
    with pytest.raises(UsageError, match=r"g\.yaml:4.*\[MASK\]"):
        run_downstream([bad], [WordClassifier("x")])
    with pytest.raises(UsageError, match="no classifier"):
        run_downstream(_items(), [])
    with pytest.raises(UsageError, match="twice"):
        run_downstream(_items(), [WordClassifier("x"), WordClassifier("x")])


def test_positive_label_rules():
    assert positive_index({0: "NEGATIVE", 1: "POSITIVE"}) == 1
    assert positive_index({0: "positive", 1: "negative"}) == 0
    assert positive_index({0: "LABEL_0", 1: "LABEL_1"}) == 1
    assert positive_index({0: "neg", 1: "other"}) == 1
    assert positive_index({0: "negative", 1: "neutral", 2: "positive"}) == 2
    assert positive_index({0: "bad", 1: "good"}, "good") == 1
    with pytest.raises(UsageError, match="--positive-label"):
        positive_index({0: "bad", 1: "good"})
    with pytest.raises(UsageError, match="not one of"):
        positive_index({0: "bad", 1: "good"}, "great")
    # a label the model does not have: classifiers that decide by their label names keep
    # theirs, so one run can mix classifiers with different label names
    assert positive_index({0: "NEGATIVE", 1: "POSITIVE"}, "good") == 1
    with pytest.raises(UsageError, match="labels of model m1"):
        positive_index({0: "bad", 1: "good"}, model="m1")


def test_hf_classifier_matches_transformers(tiny_hf_classifier):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    items = _items()
    res = run_downstream(items, [str(tiny_hf_classifier)], set_name="t", n_boot=100, batch_size=5)
    tok = AutoTokenizer.from_pretrained(str(tiny_hf_classifier))
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_hf_classifier)).eval()
    ds = res.downstream
    with torch.no_grad():
        for _, row in ds.sample(10, random_state=0).iterrows():
            logits = model(**tok(row["sentence"], return_tensors="pt")).logits[0].double()
            p = torch.softmax(logits, -1).numpy()
            assert row["p_positive"] == pytest.approx(p[1], abs=1e-5)
            assert row["label"] == ("POSITIVE" if p[1] > p[0] else "NEGATIVE")
    # scores are Δ of those probabilities (side B = minoritized here)
    sc = res.scores
    np.testing.assert_allclose(sc["delta"], sc["p_b"] - sc["p_a"])
    info = res.meta["models"][0]["info"]
    assert info["source"] == "local" and "model.safetensors" in info["files_sha256"]
    assert res.meta["models"][0]["positive_label"] == "POSITIVE"


def test_hf_classifier_ambiguous_labels(tiny_hf_classifier, tmp_path):
    folder = tmp_path / "ambig"
    shutil.copytree(tiny_hf_classifier, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["id2label"] = {"0": "bad", "1": "good"}
    cfg["label2id"] = {"bad": 0, "good": 1}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UsageError, match="--positive-label"):
        load_classifier(str(folder))
    clf = load_classifier(str(folder), positive_label="good")
    assert clf.labels[clf.positive] == "good"
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_classifier(str(tmp_path / "nope"))


def test_masked_lm_or_headless_checkpoint_is_refused(tiny_bert, tiny_hf_classifier, tmp_path):
    with pytest.raises(ModelLoadError, match="not a sequence classifier"):
        load_classifier(str(tiny_bert))
    # same architecture name but no head weights: a random head must not be scored
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "headless"
    shutil.copytree(tiny_hf_classifier, folder)
    weights = load_file(folder / "model.safetensors")
    save_file(
        {k: v for k, v in weights.items() if not k.startswith("classifier.")},
        folder / "model.safetensors",
        metadata={"format": "pt"},
    )
    with pytest.raises(ModelLoadError, match="classification head would be random"):
        load_classifier(str(folder))


@pytest.fixture(scope="module")
def tiny_sentiment_run(tmp_path_factory) -> Path:
    import torch
    from safetensors.torch import save_model

    from biasprobe.sentiment.classifiers import build_classifier

    folder = tmp_path_factory.mktemp("sentiment-run")
    (folder / "config.yaml").write_text(
        "experiment: 1\nname: tiny-gru\ndescription: tiny\nmodel:\n  kind: gru_encoder\n"
        "  embedding_size: 8\n  hidden_size: 8\ndata:\n  source: rotten_tomatoes\n"
        "  max_length: 32\ntrain:\n  batch_size: 4\n",
        encoding="utf-8",
    )
    torch.manual_seed(0)
    model = build_classifier("gru_encoder", embedding_size=8, hidden_size=8).eval()
    save_model(model, str(folder / "best.safetensors"))
    summary = {"best_val_accuracy": 0.71, "validation_examples": 1066, "experiment": 1}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_sentiment_run_folder_matches_load_trained(tiny_sentiment_run):
    from biasprobe.sentiment.train import load_trained

    items = _items()
    res = run_downstream(items, [str(tiny_sentiment_run)], set_name="t", n_boot=100)
    texts = res.downstream["sentence"].tolist()
    expected = load_trained(tiny_sentiment_run).predict_proba(texts)
    np.testing.assert_allclose(res.downstream["p_positive"], expected, atol=1e-6)
    m = res.meta["models"][0]
    assert m["kind"] == "sentiment-run" and m["info"]["accuracy"] == 0.71
    assert m["info"]["accuracy_split"] == "validation (best)"
    # labels are the argmax class
    labels = np.where(expected > 0.5, "positive", "negative")
    assert res.downstream["label"].tolist() == labels.tolist()


def test_sentiment_run_prefers_held_out_test_accuracy(tiny_sentiment_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(tiny_sentiment_run, folder)
    summary = json.loads((folder / "summary.json").read_text())
    summary.update(test_accuracy=0.74, test_examples=1066, test_majority_accuracy=0.5)
    (folder / "summary.json").write_text(json.dumps(summary))
    info = load_classifier(str(folder)).info
    assert (info["accuracy"], info["accuracy_n"], info["accuracy_split"]) == (
        0.74,
        1066,
        "held-out test",
    )


def test_run_folder_roundtrip_and_safety(tmp_path, tiny_sentiment_run):
    res = run_downstream(
        _items(), [WordClassifier("base", 0.1), WordClassifier("twin", 0.02)], set_name="t"
    )
    out = res.save(tmp_path / "run")
    assert (out / ".biasprobe-manifest.json").is_file()
    back = load_downstream_run(out)
    assert is_downstream_run(out) and not is_downstream_run(tmp_path)
    assert back.models == ["base", "twin"]
    for name in ("downstream", "scores", "summary", "comparison", "items"):
        a, b = getattr(res, name), getattr(back, name)
        assert list(a.columns) == list(b.columns) and len(a) == len(b), name
    np.testing.assert_allclose(back.scores["delta"], res.scores["delta"])
    c = back.comparison[(back.comparison.level == "set") & (back.comparison.score == "delta")]
    assert c.iloc[0]["change"] == pytest.approx(-0.08)
    with pytest.raises(OutputError, match="already exists"):
        res.save(out)
    res.save(out, overwrite=True)
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    with pytest.raises(NotOwnedError):
        res.save(user, overwrite=True)
    assert (user / "notes.txt").read_text() == "keep me"
    from rich.console import Console

    console = Console(width=80, record=True)
    print_downstream(res, console)
    text = console.export_text()
    assert "mean Δ P(pos)" in text and "Change from the base model" in text
    assert "mean P(pos) (men)" in text and "mean P(pos) (women)" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_run_command_checks_output_first_and_writes(tmp_path):
    from rich.console import Console

    from biasprobe.downstream.cli import run_command
    from biasprobe.errors import RunFolderError

    class Exploding(WordClassifier):
        def _probs(self, texts):
            raise AssertionError("must not score when the output folder is refused")

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x.txt").write_text("x")
    with pytest.raises(OutputError):
        run_command(_items(), [Exploding("e")], taken, quiet=True)
    console = Console(width=80, record=True)
    out = run_command(
        _items(), [WordClassifier("m", 0.15)], tmp_path / "r", html=True, console=console
    )
    assert (out / "report.html").is_file() and (out / "scores.csv").is_file()
    assert "mean Δ P(pos)" in console.export_text()
    with pytest.raises(RunFolderError, match="not a counterfactual run folder"):
        (tmp_path / "fm").mkdir()
        (tmp_path / "fm" / "results.json").write_text('{"run_id": "x"}')
        load_downstream_run(tmp_path / "fm")


def test_run_folder_shares_fill_mask_columns_and_reads_only_inside(tmp_path):
    from importlib.metadata import version

    from biasprobe.errors import RunFolderError
    from biasprobe.runner import items_table

    items = _items()
    res = run_downstream(items, [WordClassifier("m", 0.1)], set_name="t")
    # items.csv has exactly the columns of a fill-mask run's items.csv
    assert list(res.items.columns) == list(items_table(items).columns)
    assert res.items["template_sentence"].tolist() == [s for it in items for s in it.sentences]
    assert res.meta["versions"]["pandas"] == version("pandas")
    assert res.meta["run_id"].startswith(res.meta["created"][:10].replace("-", ""))
    out = res.save(tmp_path / "run")
    manifest = json.loads((out / ".biasprobe-manifest.json").read_text())
    assert manifest["kind"] == "run" and manifest["id"] == res.meta["run_id"]
    assert sorted(manifest["files"]) == sorted(p.name for p in out.iterdir() if p.name[0] != ".")
    secret = tmp_path / "secret.csv"
    secret.write_text("pair_id\nleaked\n")
    meta = json.loads((out / "results.json").read_text())
    meta["files"]["items"] = str(secret)
    (out / "results.json").write_text(json.dumps(meta))
    with pytest.raises(RunFolderError, match="outside the run folder"):
        load_downstream_run(out)


def test_run_tables_keep_text_columns_as_text(tmp_path):
    import pandas as pd

    from biasprobe.runfolder import read_table
    from biasprobe.runfolders.counterfactual import TEXT_COLUMNS as _TEXT_COLUMNS

    path = tmp_path / "t.csv"
    path.write_text("label_a,normative_group,base,p_a\n007,2018,null,\nnull,,1,0.5\n")
    back = read_table(path, _TEXT_COLUMNS)
    assert back["label_a"].tolist() == ["007", "null"]
    assert back["normative_group"].tolist() == ["2018", ""]
    assert back["base"].tolist() == ["null", "1"]
    assert back["p_a"].isna().tolist() == [True, False] and back["p_a"].iloc[1] == 0.5
    direct = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert back[["label_a", "normative_group", "base"]].equals(
        direct[["label_a", "normative_group", "base"]]
    )


def test_read_meta_kinds(tmp_path):
    from biasprobe.errors import RunFolderError
    from biasprobe.runfolder import read_meta

    (tmp_path / "results.json").write_text('{"run_id": "r1"}')
    assert read_meta(tmp_path, None, "run folder") == {"run_id": "r1"}
    with pytest.raises(RunFolderError, match="not a downstream run folder"):
        read_meta(tmp_path, "downstream", "downstream run folder")
    (tmp_path / "results.json").write_text("[1, 2]")
    with pytest.raises(RunFolderError, match="not a JSON object"):
        read_meta(tmp_path, None, "run folder")
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(RunFolderError, match="cannot read"):
        read_meta(tmp_path, None, "run folder")


def test_progress_moves_per_slice(monkeypatch):
    """Scoring reports progress after every slice of sentences, not only at the start and end,
    and slicing does not change a number."""
    import biasprobe.tasks.counterfactual as dr

    calls: list[tuple[str, int, int]] = []
    whole = run_downstream(_items(), [WordClassifier("w", 0.1)], set_name="t", n_boot=100)
    monkeypatch.setattr(dr, "PREDICT_SLICE", 5)
    sliced = run_downstream(
        _items(),
        [WordClassifier("w", 0.1)],
        set_name="t",
        n_boot=100,
        progress=lambda model, stage, done, total: calls.append((stage, done, total)),
    )
    scored = [(done, total) for stage, done, total in calls if stage == "score"]
    total = len({s for it in _items() for s in it.sentences})
    assert scored[0] == (0, total) and scored[-1] == (total, total)
    assert [d for d, _ in scored[1:]] == list(range(5, total, 5)) + [total]
    assert whole.scores.equals(sliced.scores)
