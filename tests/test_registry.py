"""biasprobe.backends.registry: one place that tells which backend a model name needs, with a
clear refusal for a model of the wrong family (tiny models built in the test)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from biasprobe.backends import registry
from biasprobe.backends.base import Classifier, MaskedLM, SentenceScorer
from biasprobe.errors import ModelLoadError, UsageError

REPO = Path(__file__).resolve().parent.parent


def test_a_masked_lm_folder_resolves_and_loads_for_masked_lm_and_sentence_scorer(tiny_bert):
    spec = registry.resolve(str(tiny_bert), "masked-lm")
    assert (spec.kind, spec.family, spec.architectures) == (
        "hf-masked-lm",
        "masked-lm",
        ("BertForMaskedLM",),
    )
    backend = registry.load(spec, device="cpu", batch_size=4)
    assert isinstance(backend, MaskedLM) and backend.batch_size == 4
    backend.close()
    scorer = registry.load(registry.resolve(str(tiny_bert), "sentence-scorer"), device="cpu")
    assert isinstance(scorer, SentenceScorer) and scorer.scoring == "pll"
    scorer.close()


def test_a_classifier_folder_resolves_for_classifier_only(tiny_hf_classifier):
    spec = registry.resolve(str(tiny_hf_classifier), "classifier")
    assert spec.kind == "hf-sequence-classification"
    clf = registry.load(spec, device="cpu", batch_size=2)
    assert isinstance(clf, Classifier) and clf.positive_label == "POSITIVE"
    p = clf.p_label(["a good day", "bad"])
    assert p.shape == (2, 2) and np.allclose(p.sum(axis=1), 1)
    for family in ("masked-lm", "sentence-scorer"):
        with pytest.raises(ModelLoadError) as e:
            registry.resolve(str(tiny_hf_classifier), family)
        msg = str(e.value)
        assert "is a sequence classifier (BertForSequenceClassification)" in msg
        assert "not a complete masked language model" in msg and str(tiny_hf_classifier) in msg
        assert "this task needs a masked language model" in msg or "scores sentences" in msg


def test_a_masked_lm_is_refused_where_a_classifier_is_needed(tiny_bert):
    with pytest.raises(ModelLoadError) as e:
        registry.resolve(str(tiny_bert), "classifier")
    msg = str(e.value)
    assert "is a masked language model (BertForMaskedLM), not a sequence classifier" in msg
    assert "this task needs a sequence classifier" in msg
    # a spec resolved for one family is checked again when loaded as another
    spec = registry.resolve(str(tiny_bert), "masked-lm")
    with pytest.raises(ModelLoadError, match="not a sequence classifier"):
        registry.load(spec, "classifier", device="cpu")


def test_neither_a_masked_lm_nor_a_classifier(tiny_bert, tmp_path):
    """A bare encoder (BertModel) is refused for every family, naming its architecture."""
    folder = tmp_path / "encoder"
    shutil.copytree(tiny_bert, folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["BertModel"]
    (folder / "config.json").write_text(json.dumps(config))
    for family in registry.FAMILIES:
        with pytest.raises(ModelLoadError) as e:
            registry.resolve(str(folder), family)
        assert (
            "is neither a masked nor a causal language model nor a sequence classifier (BertModel)"
            in str(e.value)
        )


def test_a_config_without_architectures_is_left_to_the_loader(tiny_bert, tmp_path):
    folder = tmp_path / "noarch"
    shutil.copytree(tiny_bert, folder)
    config = json.loads((folder / "config.json").read_text())
    del config["architectures"]
    (folder / "config.json").write_text(json.dumps(config))
    spec = registry.resolve(str(folder), "classifier")
    assert spec.kind == "hf"
    with pytest.raises(ModelLoadError, match="no trained weights|could not be loaded"):
        registry.load(spec, device="cpu")  # the loader finds no classification head


def test_recorded_outputs_serve_masked_lm_only():
    spec = registry.resolve("recorded:zari-bert-cda", "masked-lm")
    assert spec.kind == "recorded" and spec.key.startswith("recorded:/")
    backend = registry.load(spec, device="cpu")
    assert isinstance(backend, MaskedLM) and backend.tokenizer is None
    for family, need in (("classifier", "a sequence classifier"), ("sentence-scorer", "scores")):
        with pytest.raises(ModelLoadError) as e:
            registry.resolve("recorded:zari-bert-cda", family)
        assert "is recorded outputs of a masked language model" in str(e.value)
        assert need in str(e.value)


def test_is_recorded_and_crows_refusal():
    assert registry.is_recorded("recorded:zari-bert-cda")
    assert not registry.is_recorded("bert-base-uncased")
    # CrowS-Pairs scores sentences token by token: recorded outputs cannot
    with pytest.raises(ModelLoadError, match="model that scores sentences"):
        registry.resolve("recorded:zari-bert-cda", "sentence-scorer")


def test_sentiment_run_folders(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model:\n  kind: bow\n")
    with pytest.raises(ModelLoadError, match="sentiment run without weights"):
        registry.resolve(str(run), "classifier")
    (run / "best.safetensors").write_bytes(b"")
    spec = registry.resolve(str(run), "classifier")
    assert spec.kind == "sentiment-run" and spec.source is None
    with pytest.raises(ModelLoadError) as e:
        registry.resolve(str(run), "masked-lm")
    assert "is a biasprobe sentiment classifier (a sentiment run folder)" in str(e.value)
    assert "this task needs a masked language model" in str(e.value)


def test_bad_family_option_and_missing_folder(tiny_bert, tmp_path):
    with pytest.raises(UsageError, match="unknown model family 'decoder'"):
        registry.resolve(str(tiny_bert), "decoder")
    with pytest.raises(
        ModelLoadError,
        match=r"is a masked language model \(BertForMaskedLM\): this task needs a causal language model",
    ):
        registry.resolve(str(tiny_bert), "causal-lm")
    with pytest.raises(UsageError, match="positive_label applies to classifiers only"):
        registry.load(str(tiny_bert), "masked-lm", positive_label="pos")
    with pytest.raises(UsageError, match="unknown model option"):
        registry.load(str(tiny_bert), "masked-lm", device="cpu", colour="red")
    with pytest.raises(ModelLoadError, match="does not exist"):
        registry.resolve(str(tmp_path / "nope"), "classifier")


def test_load_backend_refuses_a_classifier_before_loading_it(tiny_hf_classifier):
    """The masked-LM entry point goes through the registry: a classifier is named as such
    (it was "could not be loaded ... or it is not a masked language model" only when its
    weights were read)."""
    from biasprobe.backends import load_backend, resolve_spec

    with pytest.raises(ModelLoadError, match="is a sequence classifier"):
        resolve_spec(str(tiny_hf_classifier))
    with pytest.raises(ModelLoadError, match="is a sequence classifier"):
        load_backend(str(tiny_hf_classifier), device="cpu")


def test_no_startswith_chain_left_in_the_backend_entry_points():
    """Models are chosen by the registry: the package entry points hold no prefix tests."""
    text = (REPO / "biasprobe" / "backends" / "__init__.py").read_text()
    assert "startswith" not in text


def test_a_task_accepting_several_families_serves_each_model_as_the_first_its_kind_serves(
    tiny_bert, tiny_gpt2, tiny_hf_classifier
):
    """A fill-mask probe set accepts masked and causal LMs: each model is served as the first
    family of the task's preference its kind serves, and the engine's entries say which."""
    from biasprobe import engine

    both = ("masked-lm", "causal-lm")
    assert registry.resolve(str(tiny_bert), both).family == "masked-lm"
    assert registry.resolve(str(tiny_gpt2), both).family == "causal-lm"
    crows = ("masked-lm", "sentence-scorer")
    assert registry.resolve(str(tiny_gpt2), crows).family == "sentence-scorer"
    with pytest.raises(ModelLoadError) as e:
        registry.resolve(str(tiny_hf_classifier), both)
    assert "this task needs a masked language model or a causal language model" in str(e.value)
    entries = engine.resolve([str(tiny_bert), f"gpt={tiny_gpt2}"], both)
    assert [(m.name, m.family) for m in entries] == [
        (str(tiny_bert), "masked-lm"),
        ("gpt", "causal-lm"),
    ]


def test_a_hub_id_not_inspected_when_resolved_is_decided_from_its_config_when_loaded(
    tiny_gpt2, tiny_bert
):
    """Kind ``hf`` (a hub id not in the local cache: nothing to read at resolve time) is
    decided at load from the config AutoConfig fetches; the spec then says what it is and the
    family it is served as, and a model of no accepted family is refused naming what it is."""
    import dataclasses

    from biasprobe.backends.causal import HFCausalLM

    spec = registry.resolve(str(tiny_gpt2), ("masked-lm", "sentence-scorer"))
    unseen = dataclasses.replace(spec, kind="hf", family="masked-lm", architectures=())
    scorer = registry.load(unseen, device="cpu")
    assert isinstance(scorer, HFCausalLM)
    assert (unseen.kind, unseen.family) == ("hf-causal-lm", "sentence-scorer")
    assert unseen.architectures == ("GPT2LMHeadModel",)
    scorer.close()
    bert = registry.resolve(str(tiny_bert), "masked-lm")
    unseen = dataclasses.replace(bert, kind="hf", families=("classifier",), family="classifier")
    with pytest.raises(ModelLoadError, match=r"is a masked language model \(BertForMaskedLM\)"):
        registry.load(unseen, device="cpu")


def test_the_pll_metric_option_reaches_a_masked_lm_and_is_ignored_by_a_causal_lm(
    tiny_bert, tiny_gpt2
):
    from biasprobe.backends.causal import HFCausalLM
    from biasprobe.backends.pll import PseudoLogLikelihood

    scorer = registry.load(str(tiny_bert), "sentence-scorer", device="cpu", pll_metric="word_l2r")
    assert isinstance(scorer, PseudoLogLikelihood) and scorer.scoring == "pll-word-l2r"
    assert registry.load(str(tiny_bert), "sentence-scorer", device="cpu").scoring == "pll"
    causal = registry.load(str(tiny_gpt2), "sentence-scorer", device="cpu", pll_metric="word_l2r")
    assert isinstance(causal, HFCausalLM) and causal.scoring == "causal"
    with pytest.raises(UsageError, match="pll_metric applies to models that score sentences"):
        registry.load(str(tiny_bert), "masked-lm", device="cpu", pll_metric="word_l2r")
    with pytest.raises(UsageError, match="unknown pseudo-log-likelihood metric"):
        registry.load(str(tiny_bert), "sentence-scorer", device="cpu", pll_metric="l2r")
