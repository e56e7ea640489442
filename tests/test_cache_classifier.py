"""CachedClassifier: label probabilities from the result cache, bit for bit the classifier's
own, batch by batch as the classifier forms them (a killed run resumes)."""

from __future__ import annotations

import numpy as np
import pytest

from biasprobe.backends.cached import CachedClassifier, wrap_classifier
from biasprobe.cache import ResultCache, model_identity

TEXTS = [
    "a good day",
    "the service was awful and slow",
    "fine",
    "we were delighted with the food",
    "it rained all week",
    "the staff ignored us",
    "lovely",
    "the room was clean and quiet but the breakfast was cold",
    "ok",
    "terrible",
    "Maria said the film was wonderful",
    "John said the film was wonderful",
    "fine",  # a repeat: scored once, every copy gets the same numbers
]
N = len(set(TEXTS))  # 12 distinct texts


class Counting:
    """Counts the classifier's p_label calls (one per batch through the cache); raises
    after ``fail_after`` calls, like a run killed mid-way."""

    def __init__(self, clf, fail_after: int | None = None) -> None:
        self.calls = 0
        self.texts = 0
        self.fail_after = fail_after
        self.real = clf.p_label

    def __call__(self, texts):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        self.texts += len(texts)
        return self.real(texts)


@pytest.fixture()
def clf(tiny_hf_classifier):
    from biasprobe.backends.classifiers import load_classifier

    model = load_classifier(str(tiny_hf_classifier), device="cpu", batch_size=3)
    yield model
    model.close()


def test_numbers_equal_the_classifier_and_transformers(clf, tiny_hf_classifier, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    plain = clf.p_label(TEXTS)
    with ResultCache(tmp_path / "cache") as cache:
        cached = wrap_classifier(clf, cache)
        assert cached.store is not None
        first = cached.p_label(TEXTS)
        np.testing.assert_array_equal(first, plain)  # bit for bit
        np.testing.assert_array_equal(first[2], first[12])
        assert (cached.hits, cached.computed) == (0, N)
        assert cached.batches == {"cached": 0, "computed": 4}  # 12 distinct texts, 3 per batch
        p_pos, labels = cached.predict(TEXTS)
        np.testing.assert_array_equal(p_pos, plain[:, 1])
        assert labels == [clf.labels[j] for j in plain.argmax(axis=1)]
        assert cached.info["cache"]["hits"] == N  # predict was served
    tok = AutoTokenizer.from_pretrained(str(tiny_hf_classifier))
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_hf_classifier)).eval()
    with torch.no_grad():
        for text, row in zip(TEXTS, first):
            logits = model(**tok(text, return_tensors="pt")).logits[0].double()
            np.testing.assert_allclose(row, torch.softmax(logits, -1).numpy(), atol=1e-6)


def test_a_second_run_makes_no_model_call(clf, tmp_path, monkeypatch):
    with ResultCache(tmp_path / "cache") as cache:
        first = wrap_classifier(clf, cache).p_label(TEXTS)
        counter = Counting(clf)
        monkeypatch.setattr(clf, "p_label", counter)
        again = wrap_classifier(clf, cache)
        np.testing.assert_array_equal(again.p_label(TEXTS), first)
        assert counter.calls == 0
        assert (again.hits, again.computed) == (N, 0)
        assert again.batches == {"cached": 4, "computed": 0}


def test_a_killed_run_computes_only_the_remainder(clf, tmp_path, monkeypatch):
    plain = clf.p_label(TEXTS)
    with ResultCache(tmp_path / "cache") as cache:
        monkeypatch.setattr(clf, "p_label", Counting(clf, fail_after=2))
        with pytest.raises(KeyboardInterrupt):
            wrap_classifier(clf, cache).p_label(TEXTS)
        monkeypatch.undo()
        counter = Counting(clf)
        monkeypatch.setattr(clf, "p_label", counter)
        resumed = wrap_classifier(clf, cache)
        np.testing.assert_array_equal(resumed.p_label(TEXTS), plain)
        assert (resumed.hits, resumed.computed) == (6, N - 6)  # 2 batches of 3 kept
        assert counter.calls == 2 and counter.texts == N - 6


def test_a_counterfactual_run_gives_the_same_tables_through_the_cache(clf, tmp_path):
    from pathlib import Path

    from biasprobe.downstream.run import run_downstream
    from biasprobe.probes import load_probe_set

    ps = load_probe_set(Path(__file__).resolve().parent.parent / "probes/sentiment-gender.yaml")
    plain = run_downstream(ps, [clf], n_boot=50)
    with ResultCache(tmp_path / "cache") as cache:
        cached = wrap_classifier(clf, cache)
        first = run_downstream(ps, [cached], n_boot=50)
        second_model = wrap_classifier(clf, cache)
        second = run_downstream(ps, [second_model], n_boot=50)
    for res in (first, second):
        for table in ("downstream", "scores", "summary"):
            a, b = getattr(plain, table), getattr(res, table)
            assert a.equals(b), table
    assert second_model.computed == 0 and second_model.hits == cached.computed > 0


def test_classifier_identity(tiny_hf_classifier, tmp_path, clf):
    import shutil

    from biasprobe.backends.classifiers import load_classifier

    identity, why = model_identity(clf)
    assert why == "" and identity["kind"] == "hf-sequence-classification"
    assert identity["architecture"] == "BertForSequenceClassification"
    assert identity["labels"] == ["NEGATIVE", "POSITIVE"] and identity["device_kind"] == "cpu"
    assert set(identity["weights_sha256"]) == {"model.safetensors"}
    # other weights, other identity; same files elsewhere, same identity
    copy = tmp_path / "copy"
    shutil.copytree(tiny_hf_classifier, copy)
    assert model_identity(load_classifier(str(copy), device="cpu"))[0] == identity
    from conftest import build_tiny_classifier

    other = build_tiny_classifier(tmp_path / "other", copy / "vocab.txt", seed=3)
    assert model_identity(load_classifier(str(other), device="cpu"))[0] != identity


def test_a_classifier_without_files_is_not_cached(tmp_path):
    from biasprobe.backends.classifiers import ClassifierBackend

    class InMemory(ClassifierBackend):
        name, kind, labels, positive, info = "mem", "test", ("neg", "pos"), 1, {}

        def _probs(self, texts):
            return np.tile([0.25, 0.75], (len(texts), 1))

    with ResultCache(tmp_path / "cache") as cache:
        wrapped = wrap_classifier(InMemory(), cache)
    assert isinstance(wrapped, CachedClassifier) and wrapped.store is None
    assert wrapped.info["cache"] == {
        "enabled": False,
        "reason": "in-memory model (no checkpoint files to identify it)",
    }
    assert wrapped.predict(["a", "b"])[0].tolist() == [0.75, 0.75]
    assert wrap_classifier(InMemory(), "--no-cache").info["cache"]["reason"] == "--no-cache"


def _sentiment_run(folder):
    """A biasprobe sentiment run folder with random GRU weights (no training)."""
    import torch
    from safetensors.torch import save_model

    from biasprobe.sentiment.classifiers import build_classifier

    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(
        "experiment: 1\nname: tiny-gru\ndescription: tiny\nmodel:\n  kind: gru_encoder\n"
        "  embedding_size: 8\n  hidden_size: 8\ndata:\n  source: rotten_tomatoes\n"
        "  max_length: 32\ntrain:\n  batch_size: 4\n",
        encoding="utf-8",
    )
    torch.manual_seed(0)
    save_model(
        build_classifier("gru_encoder", embedding_size=8, hidden_size=8).eval(),
        str(folder / "best.safetensors"),
    )
    return folder


def test_a_sentiment_run_folder_is_cached_by_its_files(tmp_path, monkeypatch):
    from biasprobe.backends import registry
    from biasprobe.sentiment.trained import load_trained

    run = _sentiment_run(tmp_path / "run")
    clf = registry.load(registry.resolve(str(run), "classifier"), device="cpu", batch_size=4)
    identity, why = model_identity(clf)
    assert why == "" and identity["kind"] == "sentiment-run"
    assert set(identity["weights_sha256"]) == {"best.safetensors"}
    assert set(identity["config_sha256"]) == {"config.yaml"}
    assert len(identity["tokenizer_vocab_sha256"]) == 64
    expected = load_trained(run).predict_proba(list(dict.fromkeys(TEXTS)))  # independent
    with ResultCache(tmp_path / "cache") as cache:
        first = wrap_classifier(clf, cache).p_label(TEXTS)
        np.testing.assert_allclose(
            first[[TEXTS.index(t) for t in dict.fromkeys(TEXTS)], 1], expected, atol=1e-6
        )
        counter = Counting(clf)
        monkeypatch.setattr(clf, "p_label", counter)
        again = wrap_classifier(clf, cache)
        np.testing.assert_array_equal(again.p_label(TEXTS), first)
        assert counter.calls == 0 and again.hits == N
    # a changed config.yaml is another model
    (run / "config.yaml").write_text((run / "config.yaml").read_text() + "seed: 3\n")
    assert model_identity(clf)[0] != identity
