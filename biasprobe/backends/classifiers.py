"""Sequence classifiers behind one interface (the :class:`~biasprobe.backends.base.Classifier`
protocol): class probabilities, P(positive) and a predicted label for each text.

Two kinds of model are accepted, decided from the name given:

* a **biasprobe sentiment run folder** (written by ``biasprobe sentiment train --out DIR``;
  recognised by its ``config.yaml`` and ``best.safetensors``/``model.safetensors`` and the
  absence of a Hugging Face ``config.json``), read with
  :func:`biasprobe.sentiment.trained.load_trained`; its classes are ``negative`` and ``positive``;
* any **Hugging Face sequence-classification checkpoint**, by hub id or local folder, found
  offline-first by :func:`biasprobe.hub.resolve_model_source`. Custom model code is never run
  unless asked (``trust_remote_code``). Which class is "positive" is read from
  ``config.id2label`` (:func:`positive_index`); when it cannot be decided the error asks for
  ``--positive-label NAME``.

Scoring is batched, with texts sorted by length (less padding), under
``torch.inference_mode()`` and in float32. torch and transformers are imported only when a
model is loaded.
"""

from __future__ import annotations

import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biasprobe.errors import ModelLoadError, UsageError, VocabularyError

__all__ = [
    "ClassifierBackend",
    "HFClassifier",
    "SentimentRunClassifier",
    "check_tokenization",
    "is_sentiment_run",
    "load_classifier",
    "positive_index",
]

_POSITIVE_NAMES = ("positive", "pos", "label_pos")
_NEGATIVE_NAMES = ("negative", "neg", "label_neg")


def _norm(label: str) -> str:
    return re.sub(r"[\s_-]+", "_", str(label).strip().lower())


def positive_index(
    id2label: Mapping[Any, str], positive_label: str | None = None, *, model: str = ""
) -> int:
    """The class index that means "positive".

    Rules, in order: an explicit ``positive_label`` that is one of the labels (exact name, then
    case-insensitive, then a class index); a label named ``positive``/``pos`` (any case); with
    exactly two labels, the other one of a ``negative``/``neg`` label, or ``LABEL_1`` when they
    are the default ``LABEL_0``/``LABEL_1``. A ``positive_label`` the model does not have is
    used by the classifiers that have it: the others keep the label these rules find, so one run
    can hold classifiers with different label names (``results.json`` records each one's).

    Raises:
        UsageError: the positive class cannot be decided (naming ``model``).
    """
    labels = {int(k): str(v) for k, v in id2label.items()}
    names = ", ".join(f"{i}: {labels[i]!r}" for i in sorted(labels))
    who = f"model {model}" if model else "the model"
    if positive_label is not None:
        for i, name in labels.items():
            if name == positive_label:
                return i
        hits = [i for i, name in labels.items() if _norm(name) == _norm(positive_label)]
        if len(hits) == 1:
            return hits[0]
        if positive_label.isdigit() and int(positive_label) in labels:
            return int(positive_label)
    found = _positive_by_name(labels)
    if found is not None:
        return found
    if positive_label is not None:
        raise UsageError(
            f"--positive-label {positive_label!r} is not one of the labels of {who} ({names}), "
            "and its positive label cannot be told from their names"
        )
    raise UsageError(
        f"cannot tell which of the labels of {who} means positive ({names}); "
        "pass --positive-label NAME"
    )


def _positive_by_name(labels: dict[int, str]) -> int | None:
    hits = [i for i, name in labels.items() if _norm(name) in _POSITIVE_NAMES]
    if len(hits) == 1:
        return hits[0]
    if len(labels) == 2:
        neg = [i for i, name in labels.items() if _norm(name) in _NEGATIVE_NAMES]
        if len(neg) == 1:
            return next(i for i in labels if i != neg[0])
        if {_norm(n) for n in labels.values()} == {"label_0", "label_1"}:
            return next(i for i, n in labels.items() if _norm(n) == "label_1")
    return None


def expand(texts: Sequence[str], score: Any, width: int) -> np.ndarray:
    """``score(distinct texts)`` (rows in that order) expanded to one row per text of
    ``texts``: a text given twice is scored once, so that every copy gets the same numbers.
    ``width``: the number of columns (labels), for no texts."""
    texts = list(texts)
    unique = list(dict.fromkeys(texts))
    if not unique:
        return np.zeros((0, width))
    rows = np.asarray(score(unique))
    if len(unique) == len(texts):
        return rows
    where = {t: i for i, t in enumerate(unique)}
    return rows[[where[t] for t in texts]]


class ClassifierBackend(ABC):
    """The base class of every classifier (implements
    :class:`~biasprobe.backends.base.Classifier`); a subclass gives :meth:`_probs`.

    Attributes:
        name: what the user gave (hub id or folder).
        kind: ``"sentiment-run"`` or ``"hf-sequence-classification"``.
        labels: class names, by class index.
        positive: index of the positive class in :attr:`labels`.
        info: provenance (source, path, revision/commit, file checksums, accuracy if known).
        batch_size: texts per forward pass.
    """

    name: str
    kind: str
    labels: tuple[str, ...]
    positive: int
    info: dict[str, Any]
    batch_size: int = 64

    @abstractmethod
    def _probs(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, (N, C) float64, for texts given in length order (the subclass
        batches them ``batch_size`` at a time, in the order given)."""

    @property
    def positive_label(self) -> str:
        """The name of the positive class."""
        return self.labels[self.positive]

    def p_label(self, texts: Sequence[str]) -> np.ndarray:
        """Probability of every label for each text: float64 (N, len(labels)), rows in the
        order of ``texts``. Each distinct text is scored once, shortest first (by characters,
        ties in the order first given), ``batch_size`` at a time."""
        return expand(texts, self._distinct_probs, len(self.labels))

    def _distinct_probs(self, unique: list[str]) -> np.ndarray:
        order = sorted(range(len(unique)), key=lambda i: len(unique[i]))
        probs = np.empty((len(unique), len(self.labels)))
        probs[order] = self._probs([unique[i] for i in order])
        return probs

    def predict(self, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """P(positive) (float64, (N,)) and the predicted label (argmax class name) per text."""
        texts = list(texts)
        if not texts:
            return np.zeros(0), []
        probs = self.p_label(texts)
        labels = [self.labels[int(j)] for j in probs.argmax(axis=1)]
        return probs[:, self.positive].copy(), labels

    def predict_positive(self, texts: Sequence[str]) -> np.ndarray:
        """P(positive) for each text, as a float64 array."""
        return self.predict(texts)[0]

    @property
    def text_tokenizer(self) -> Any:
        """The tokenizer that turns texts into the model's input ids (None when unknown): a
        subclass's ``tokenizer`` attribute, if it has one."""
        return getattr(self, "tokenizer", None)

    def provenance(self) -> dict[str, Any]:
        """The model's provenance block (a copy of :attr:`info`)."""
        return dict(self.info)

    def close(self) -> None:  # an optional hook: nothing to release by default
        """Release the model (frees memory between models of a run)."""
        return None


@dataclass(eq=False)
class SentimentRunClassifier(ClassifierBackend):
    """A classifier trained by ``biasprobe sentiment train`` (its best weights)."""

    name: str
    trained: Any  # biasprobe.sentiment.trained.TrainedModel
    info: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 64
    kind: str = "sentiment-run"
    labels: tuple[str, ...] = ("negative", "positive")
    positive: int = 1

    def _probs(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        # The sentiment package's own inference path (it knows every classifier kind it trains).
        with torch.inference_mode():
            p = np.asarray(
                self.trained.predict_proba(list(texts), batch_size=self.batch_size),
                dtype=np.float64,
            )
        return np.stack([1.0 - p, p], axis=1)

    @property
    def text_tokenizer(self) -> Any:
        return None if self.trained is None else self.trained.tokenizer

    def close(self) -> None:
        self.trained = None


@dataclass(eq=False)
class HFClassifier(ClassifierBackend):
    """A transformers ``AutoModelForSequenceClassification`` and its tokenizer."""

    name: str
    model: Any
    tokenizer: Any
    labels: tuple[str, ...]
    positive: int
    info: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 64
    max_length: int = 512
    kind: str = "hf-sequence-classification"

    def _probs(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        device = next(self.model.parameters()).device
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = list(texts[start : start + self.batch_size])
                enc = self.tokenizer(
                    chunk,
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(device)
                logits = self.model(**enc).logits.float()
                out.append(torch.softmax(logits, dim=-1).double().cpu().numpy())
        return np.concatenate(out)

    def close(self) -> None:
        self.model = None


def is_sentiment_run(path: str | Path) -> bool:
    """Whether ``path`` is a biasprobe sentiment run folder (not a Hugging Face checkpoint)."""
    p = Path(path).expanduser()
    return (
        p.is_dir()
        and (p / "config.yaml").is_file()
        and not (p / "config.json").is_file()
        and ((p / "best.safetensors").is_file() or (p / "model.safetensors").is_file())
    )


def _sentiment_run(name: str, device: Any, batch_size: int, positive_label: str | None):
    from biasprobe.hub import sha256_file
    from biasprobe.sentiment.trained import BEST_WEIGHTS, FINAL_WEIGHTS, load_trained

    folder = Path(name).expanduser()
    which = "best" if (folder / BEST_WEIGHTS).is_file() else "final"
    tm = load_trained(folder, which=which, device=str(device))
    weights = folder / (BEST_WEIGHTS if which == "best" else FINAL_WEIGHTS)
    s = tm.summary or {}
    info = {
        "requested": name,
        "source": "local",
        "kind": "sentiment-run",
        "path": str(folder.resolve()),
        "weights": weights.name,
        "files_sha256": {weights.name: sha256_file(weights)},
        "model_kind": tm.config.model.kind,
        "experiment": s.get("experiment"),
        "data_source": s.get("data_source"),
        "steps": s.get("steps"),
        "augment": s.get("augment"),
        "device": str(device),
        "tokenizer_vocab_sha256": _vocab_sha256(tm.tokenizer),
    }
    if s.get("test_accuracy") is not None:  # the untouched held-out split
        info.update(
            accuracy=s["test_accuracy"],
            accuracy_n=s.get("test_examples"),
            majority_accuracy=s.get("test_majority_accuracy"),
            accuracy_split="held-out test",
        )
    elif s.get("best_val_accuracy") is not None:  # older runs: best validation accuracy
        info.update(
            accuracy=s["best_val_accuracy"],
            accuracy_n=s.get("validation_examples"),
            majority_accuracy=s.get("val_majority_accuracy"),
            accuracy_split="validation (best)",
        )
    return SentimentRunClassifier(name, tm, info, batch_size)


def _vocab_sha256(tokenizer: Any) -> str:
    """sha256 of a tokenizer's vocabulary (token → id), identifying it for the result cache."""
    import hashlib
    import json

    vocab = sorted((str(t), int(i)) for t, i in tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest()


def load_classifier(
    name: str,
    *,
    device: str | None = None,
    revision: str | None = None,
    positive_label: str | None = None,
    batch_size: int = 64,
    trust_remote_code: bool = False,
) -> ClassifierBackend:
    """Load a classifier by name: a sentiment run folder, a local HF folder or a hub id.

    Raises:
        ModelLoadError: the model cannot be found or loaded, or is not a sequence classifier.
        UsageError: the positive label cannot be decided (pass ``positive_label``).
    """
    from biasprobe.device import resolve_device

    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    dev = resolve_device(device)
    if is_sentiment_run(name):
        return _sentiment_run(name, dev, batch_size, positive_label)
    p = Path(name).expanduser()
    if p.is_dir() and (p / "config.yaml").is_file() and not (p / "config.json").is_file():
        raise ModelLoadError(
            f"{name} looks like a biasprobe sentiment run without weights "
            "(no best.safetensors or model.safetensors): did training finish?"
        )
    return _hf_classifier(name, dev, revision, positive_label, batch_size, trust_remote_code)


def _hf_classifier(name, dev, revision, positive_label, batch_size, trust_remote_code):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from biasprobe.hub import (
        check_config_plausible,
        check_finite_weights,
        explain_load_error,
        quiet_transformers,
        record_commit,
        resolve_model_source,
    )

    quiet_transformers()

    src = resolve_model_source(name, revision=revision)
    kw = dict(src.kwargs)
    if src.is_local and (Path(src.load_from) / "model.safetensors").is_file():
        kw["use_safetensors"] = True
    config = _classifier_config(src, revision, trust_remote_code)
    id2label = getattr(config, "id2label", None) or {}
    pos = positive_index(id2label, positive_label, model=name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's source-line warnings: the error says it all
        check_config_plausible(
            src, config, AutoModelForSequenceClassification, trust_remote_code=trust_remote_code
        )
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                src.load_from, revision=revision, trust_remote_code=trust_remote_code, **src.kwargs
            )
            model, loading = AutoModelForSequenceClassification.from_pretrained(
                src.load_from,
                config=config,
                revision=revision,
                trust_remote_code=trust_remote_code,
                output_loading_info=True,
                **kw,
            )
        except Exception as e:
            raise ModelLoadError(
                f"{src.describe()} could not be loaded as a sequence classifier "
                f"({explain_load_error(e)})"
            ) from None
    _check_trained(src, loading)
    check_finite_weights(model, src.describe())
    if tokenizer.pad_token is None:  # e.g. GPT-2 classifiers: pad with the end-of-text token
        if tokenizer.eos_token is None:
            raise ModelLoadError(f"{src.describe()}: its tokenizer has no padding token")
        tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.eos_token_id
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in model.parameters()):
        model = model.float()
    model.to(dev).eval()
    record_commit(src, config)
    labels = tuple(str(id2label[i]) for i in sorted(int(k) for k in id2label))
    if len(labels) != model.config.num_labels:
        labels = tuple(str(model.config.id2label[i]) for i in range(model.config.num_labels))
    info = dict(src.info)
    info.update(
        {
            "kind": "hf-sequence-classification",
            "architecture": (getattr(config, "architectures", None) or [type(model).__name__])[0],
            "labels": list(labels),
            "positive_label": labels[pos],
            "dtype": "float32",
            "device": str(dev),
        }
    )
    max_len = _max_length(tokenizer, config)
    return HFClassifier(name, model, tokenizer, labels, pos, info, batch_size, max_len)


def _classifier_config(src: Any, revision: str | None, trust_remote_code: bool) -> Any:
    """The checkpoint's config, refused unless its architecture is a sequence classifier."""
    from transformers import AutoConfig

    from biasprobe.hub import describe_error

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = AutoConfig.from_pretrained(
                src.load_from, revision=revision, trust_remote_code=trust_remote_code, **src.kwargs
            )
    except Exception as e:
        raise ModelLoadError(
            f"{src.describe()}: cannot read its config.json ({describe_error(e)})"
        ) from None
    archs = list(getattr(config, "architectures", None) or [])
    if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ModelLoadError(
            f"{src.describe()} is not a sequence classifier (architectures: {', '.join(archs)}); "
            "a classifier checkpoint has a ...ForSequenceClassification head (a masked language "
            "model belongs to a fill-mask probe set)"
        )
    return config


def _check_trained(src: Any, loading: dict | None) -> None:
    """Refuse a checkpoint whose weights leave part of the model (the head) untrained."""
    missing = sorted((loading or {}).get("missing_keys") or [])
    if missing:
        shown = ", ".join(missing[:4]) + (
            f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        )
        raise ModelLoadError(
            f"{src.describe()} has no trained weights for {shown}: its classification head would "
            "be random, so its outputs would mean nothing"
        )


def _max_length(tokenizer: Any, config: Any) -> int:
    """Tokens per input: the tokenizer's limit, at most 512 and the position table's size."""
    max_len = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
    max_pos = getattr(config, "max_position_embeddings", None)
    if isinstance(max_pos, int) and max_pos > 2:
        max_len = min(max_len, max_pos - 2 if config.model_type in ("roberta",) else max_pos)
    return max_len


def check_tokenization(clf: ClassifierBackend, items: Sequence[Any]) -> None:
    """Refuse pairs this classifier cannot tell apart, before any of them is scored.

    A pair whose two sentences become the same input ids (e.g. "SHE" / "she" for an uncased
    tokenizer) has Δ = 0 by construction, and a group word that becomes the unknown token is
    not seen by the model at all: either would read as "no bias". Both are errors naming the
    pair, where it is written and the classifier.

    Raises:
        VocabularyError: the first such pair.
    """
    tok = clf.text_tokenizer
    if tok is None:
        return
    sentences = list(dict.fromkeys(s for it in items for s in it.sentences))
    ids = dict(zip(sentences, tok(sentences, add_special_tokens=True)["input_ids"], strict=True))
    unk = getattr(tok, "unk_token_id", None)
    for it in items:
        a, b = it.sentences
        where = f"{it.source}: pair {it.pair_id}"
        if ids[a] == ids[b]:
            raise VocabularyError(
                f"{where}: both sides are the same tokens for classifier {clf.name} "
                f"({a!r} / {b!r}), so its Δ would be 0 by construction; write groups the "
                "tokenizer tells apart"
            )
        if unk is None or (unk not in ids[a] and unk not in ids[b]):
            continue
        wa, wb = a.split(), b.split()
        words = [w for w in dict.fromkeys(wa + wb) if (w in wa) != (w in wb)]
        enc = tok(words, add_special_tokens=False)["input_ids"] if words else []
        bad = [w for w, e in zip(words, enc, strict=True) if unk in e]
        if bad:
            raise VocabularyError(
                f"{where}: the group word(s) {', '.join(map(repr, bad))} become the unknown "
                f"token of classifier {clf.name}, so the model never sees them; use words in "
                "its vocabulary"
            )
