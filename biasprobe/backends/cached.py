"""A backend that serves a live model's outputs from the result cache (:mod:`biasprobe.cache`).

:class:`CachedMaskedLM` wraps a loaded backend. The numbers it returns are those the wrapped
backend would return for the same call, bit for bit, whatever is in the cache:

* **mask requests** (the full-vocabulary log-probs at the mask) are split into the very batches
  the wrapped backend forms itself (distinct sentences sorted by token length, ``batch_size``
  at a time): a batch whose every sentence is stored is read back; any other batch is computed
  whole, as it would have been without a cache (the padding width and the batch's other rows
  change the last bits of a float32 result), and committed at once. A run killed at any point
  and started again recomputes only the batches that were not committed.
* **chain-rule and prior requests** (one scalar each) are served when every request of the call
  is stored; otherwise the call is computed whole, as without a cache (the wrapped backend
  batches its expanded inputs across requests), and stored when it ends. The runner makes
  these calls in fixed chunks of requests, so a chunk is one unit of resume.
* **finished pairs**: :func:`biasprobe.runner.score_model` keeps each scored pair as a reduced
  record (:meth:`put_pair_records`) and serves a later run's identical pair from it without
  any vector (:meth:`pair_records`).

An entry that fails its integrity check (:mod:`biasprobe.cache`) is treated as not stored: its
batch, call or pair is computed as above and the entry replaced. How many were found is in the
provenance (``damaged``, per kind) and on the run's cache line.

* **token requests** (:meth:`CachedMaskedLM.token_logprobs`: CrowS-Pairs and
  pseudo-log-likelihood scoring) are cached like mask requests, batch by batch as the wrapped
  backend forms them, one float64 per request: a killed CrowS-Pairs run started again computes
  only the batches it had not committed, with the same numbers bit for bit.

:class:`CachedClassifier` does the same for a classifier's label probabilities (float64 per
text, kind ``label``), batch by batch as the classifier forms them.

:class:`CachedSentenceScorer` does it for any :class:`~biasprobe.backends.base.SentenceScorer`
(a causal LM's chain-rule log-likelihood, a masked LM's pseudo-log-likelihood): one record per
sentence (kind ``sentence``, keyed by the scorer's ``scoring`` and the sentence), holding the
total, the scored token ids, their display strings and their float64 log-probs. For a
:class:`~biasprobe.backends.causal.HFCausalLM` a call is split into the very forward batches
the model forms (distinct inputs sorted by length, ``batch_size`` at a time), each read back
when every sentence of it is stored, else computed whole and committed; for any other scorer
(whose batches are its own business) the call is the unit: served when every sentence of it is
stored, else computed whole, as without the cache, and stored.

How the engine uses them::

    store = open_cache(cache, live)               # a ResultCache, or why there is none
    lm = wrap(masked_lm, store)                   # CachedMaskedLM (any MaskedLMBackend)
    clf = wrap_classifier(classifier, store)      # CachedClassifier (any ClassifierBackend)
    clf.predict(texts)                            # as the classifier itself, cached
    sc = wrap_scorer(sentence_scorer, store)      # CachedSentenceScorer (any SentenceScorer)
    sc.sentence_logprobs(sentences)               # as the scorer itself, cached
    sc.stored(sentences)                          # which are in the cache (nothing counted)
    score_pairs(lm, pairs, scoring)               # CrowS-Pairs through the token cache
    pairs_stored(lm, pairs, scoring)              # (from the cache, to compute): the
                                                  # "resuming" line (biasprobe.crows.scoring)
    lm.hits, lm.computed, clf.hits, clf.computed  # requests served / computed so far
    lm.info["cache"], clf.info["cache"]           # the provenance block for results.json

Recorded outputs are never wrapped with a store (nothing is computed), and neither are models
with no files to identify them (:func:`biasprobe.cache.model_identity`): they pass through with
the reason in their provenance.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biasprobe.backends.base import (
    MaskedLMBackend,
    SentenceLogprobs,
    SentenceScorer,
    UnitScorer,
)
from biasprobe.backends.classifiers import ClassifierBackend, expand
from biasprobe.cache import ModelStore, ResultCache, encode_record, model_identity, request_key

__all__ = [
    "CachedClassifier",
    "CachedMaskedLM",
    "CachedSentenceScorer",
    "open_cache",
    "wrap",
    "wrap_classifier",
    "wrap_scorer",
]

#: Why a backend object handed to :func:`biasprobe.run` is never cached: it may have been
#: changed in memory after it was loaded, so its files do not identify it.
OBJECT_REASON = "model object passed in (its weights may differ from any files)"
RECORDED_REASON = "recorded outputs (nothing is computed)"


class CachedMaskedLM(MaskedLMBackend):
    """``inner`` with its outputs read from and written to ``store`` (or passed through when
    ``store`` is None, ``reason`` saying why)."""

    def __init__(
        self,
        inner: MaskedLMBackend,
        store: ModelStore | None,
        *,
        folder: Path | None = None,
        reason: str = "",
    ) -> None:
        self.inner = inner
        self.store = store
        self.folder = folder
        self.reason = reason
        self.name = inner.name
        self.mask_token = inner.mask_token
        self.vocab = inner.vocab
        self.batch_size = int(inner.batch_size)
        self.stats = {
            kind: {"hits": 0, "misses": 0} for kind in ("mask", "chain", "prior", "token", "pair")
        }
        self.batches = {"cached": 0, "computed": 0}

    @property
    def on_batch(self) -> Any:
        """Progress callback ``(done, total)`` after every batch, cached or computed (set on
        the wrapped backend too, which reports the chain and prior phases itself)."""
        return self.__dict__.get("_on_batch")

    @on_batch.setter
    def on_batch(self, report: Any) -> None:
        self.__dict__["_on_batch"] = report
        self.inner.on_batch = report

    def __getattr__(self, name: str) -> Any:
        # What a particular backend has beyond the MaskedLM protocol (mask_id, model, ...).
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- the wrapped backend's declared members ---------------------------------------------------
    #: It reports the batches of mask requests itself and hands :attr:`on_batch` on to the
    #: wrapped backend for the others.
    reports_batches = True

    @property
    def scores_priors(self) -> bool:  # type: ignore[override]
        return self.inner.scores_priors

    @property
    def unk_id(self) -> int | None:  # type: ignore[override]
        return self.inner.unk_id

    @property
    def unk_token(self) -> str | None:  # type: ignore[override]
        return self.inner.unk_token

    @property
    def max_length(self) -> int | None:  # type: ignore[override]
        return self.inner.max_length

    @property
    def special_tokens(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.inner.special_tokens

    @property
    def special_ids(self) -> frozenset[int]:  # type: ignore[override]
        return self.inner.special_ids

    @property
    def tokenizer(self) -> Any:  # type: ignore[override]
        return self.inner.tokenizer

    def prior_request(
        self, prior_sentence: str, attribute: str, mask_index: int, word: str
    ) -> tuple[list[int], int, list[int]] | None:
        return self.inner.prior_request(prior_sentence, attribute, mask_index, word)

    def prior_text(self, prior_sentence: str, attribute: str, mask_index: int, word: str) -> str:
        return self.inner.prior_text(prior_sentence, attribute, mask_index, word)

    def missing(
        self, sentence: str, words: Sequence[str], prior: Sequence[Any] | None = None
    ) -> str | None:
        return self.inner.missing(sentence, words, prior)

    @property
    def info(self) -> dict[str, Any]:  # type: ignore[override]
        return {**self.inner.info, "cache": self.cache_provenance()}

    @property
    def identity(self) -> str | None:
        """The model's identity in the cache (sha256 hex), or None when it is not cached."""
        return None if self.store is None else self.store.identity

    def cache_provenance(self) -> dict[str, Any]:
        """What the cache did for this model (``results.json`` ``models[i].info.cache``)."""
        if self.store is None:
            return {"enabled": False, "reason": self.reason}
        # hits / misses: requests to the model (sentences, chain-rule, prior and token
        # requests); finished pairs served from or added to the cache are by_kind["pair"]
        return {
            "enabled": True,
            "dir": str(self.folder),
            "model_identity": self.store.identity,
            "hits": self.hits,
            "misses": self.computed,
            "batches_cached": self.batches["cached"],
            "batches_computed": self.batches["computed"],
            "by_kind": {k: dict(v) for k, v in self.stats.items()},
            "damaged": self.store.damaged(),
        }

    # -- requests -------------------------------------------------------------------------------
    def mask_logprobs(self, sentences: Sequence[str]) -> np.ndarray:
        """See :meth:`MaskedLMBackend.mask_logprobs`; batches as the wrapped backend forms
        them, each read from the cache or computed whole and committed."""
        if self.store is None:
            return self.inner.mask_logprobs(sentences)
        unique = list(dict.fromkeys(sentences))
        ids = self.inner.token_ids(unique)
        lengths = [len(x) for x in ids] if ids is not None else [0] * len(unique)
        order = sorted(range(len(unique)), key=lambda i: lengths[i])
        keys = [request_key("mask", s) for s in unique]
        out = np.empty((len(unique), len(self.vocab)), dtype=np.float32)
        stats = self.stats["mask"]
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            found = self.store.get("mask", [keys[i] for i in idx])
            rows = [found.get(keys[i]) for i in idx]
            if all(r is not None and r.shape == (len(self.vocab),) for r in rows):
                out[idx] = np.stack(rows)
                stats["hits"] += len(idx)
                self.batches["cached"] += 1
                if self.on_batch is not None:
                    self.on_batch(start + len(idx), len(order))
                continue
            computed = np.asarray(self._inner_masks([unique[i] for i in idx]))
            out[idx] = computed
            self.store.put_vectors("mask", [(keys[i], computed[j]) for j, i in enumerate(idx)])
            stats["misses"] += len(idx)
            self.batches["computed"] += 1
            if self.on_batch is not None:
                self.on_batch(start + len(idx), len(order))
        if len(unique) == len(sentences):
            return out
        where = {s: i for i, s in enumerate(unique)}
        return out[[where[s] for s in sentences]]

    def stored_masks(self, sentences: Sequence[str]) -> np.ndarray | None:
        """The stored vectors of ``sentences`` when every one is in the cache and intact
        (counted as hits), else None and nothing counted. A resumed run uses it for the
        sentences a chunk still needs (shared by unfinished pairs): they are served as they
        were computed, so the chunk's finished sentences need not be computed again."""
        if self.store is None or not sentences:
            return None
        keys = [request_key("mask", s) for s in sentences]
        found = self.store.get("mask", keys)
        rows = [found.get(k) for k in keys]
        if not all(r is not None and r.shape == (len(self.vocab),) for r in rows):
            return None
        self.stats["mask"]["hits"] += len(rows)
        return np.stack(rows)

    def _inner_masks(self, sentences: list[str]) -> np.ndarray:
        """One batch from the wrapped backend, its own per-batch report silenced (this
        wrapper reports against the whole call)."""
        report, self.inner.on_batch = self.inner.on_batch, None
        try:
            return self.inner.mask_logprobs(sentences)
        finally:
            self.inner.on_batch = report

    def _scalars(self, kind: str, requests: Sequence[Any], payload: list[Any]) -> np.ndarray:
        keys = [request_key(kind, p) for p in payload]
        found = self.store.get(kind, keys) if self.store is not None else {}
        if self.store is not None and all(k in found for k in keys):
            self.stats[kind]["hits"] += len(keys)
            return np.asarray([found[k] for k in keys], dtype=np.float64)
        compute = self.inner.chain_logprobs if kind == "chain" else self.inner.prior_logprobs
        values = np.asarray(compute(requests), dtype=np.float64)
        if self.store is not None:
            self.store.put_scalars(kind, zip(keys, (float(v) for v in values)))
            self.stats[kind]["misses"] += len(keys)
            self.batches["computed"] += 1
        return values

    # -- finished pairs (see biasprobe.runner.score_model) ---------------------------------------
    def pairs_present(self, keys: Sequence[bytes]) -> set[bytes]:
        """Which of these pair keys have an intact record in the cache (a damaged one is
        left out: the pair is computed again)."""
        if self.store is None:
            return set()
        return self.store.present("pair", keys)

    def pair_records(self, keys: Sequence[bytes]) -> dict[bytes, Any]:
        """The records of those pair keys that are stored (each a ``(header, arrays)`` of
        :func:`biasprobe.cache.decode_record`), counted as hits."""
        found = self.store.get("pair", keys) if self.store is not None and keys else {}
        if len(found) != len(set(keys)):
            from biasprobe.cache import CacheError

            raise CacheError(
                f"pair records in the cache {self.folder} changed or were damaged while this "
                "run read them; run the command again (they are then computed anew)"
            )
        self.stats["pair"]["hits"] += len(found)
        return found

    def put_pair_records(self, records: Sequence[tuple[bytes, bytes]], sentences: Sequence[str]):
        """Commit finished pairs' encoded records and, in the same transaction, drop the full
        vectors of ``sentences`` (every pair of the run that uses them is finished)."""
        if self.store is None:
            return
        drop = ("mask", [request_key("mask", s) for s in sentences])
        self.store.put_records("pair", records, drop=drop)
        self.stats["pair"]["misses"] += len(records)

    def chain_logprobs(self, requests: Sequence[tuple[str, Sequence[int]]]) -> np.ndarray:
        """See :meth:`MaskedLMBackend.chain_logprobs`; one call is one unit of the cache."""
        payload = [[s, [int(p) for p in pieces]] for s, pieces in requests]
        return self._scalars("chain", requests, payload)

    def prior_logprobs(self, requests: Sequence[tuple[str, str, int, str]]) -> np.ndarray:
        """See :meth:`MaskedLMBackend.prior_logprobs`; one call is one unit of the cache."""
        payload = [[s, a, int(m), w] for s, a, m, w in requests]
        return self._scalars("prior", requests, payload)

    def target_pieces(self, sentence: str, word: str) -> list[int]:
        return self.inner.target_pieces(sentence, word)

    def token_ids(self, sentences: Sequence[str]) -> list[list[int]] | None:
        return self.inner.token_ids(sentences)

    def unknown_words(self, sentence: str) -> list[str]:
        return self.inner.unknown_words(sentence)

    def token_logprobs(self, requests: Sequence[tuple[Sequence[int], int]]) -> np.ndarray:
        """See :meth:`MaskedLMBackend.token_logprobs`; batches as the wrapped backend forms
        them (requests sorted by input length, ``batch_size`` at a time), each read from the
        cache when every request of it is stored, else computed whole and committed: a killed
        CrowS-Pairs or pseudo-log-likelihood run computes again only the uncommitted batches,
        and the numbers are those of a run without the cache, bit for bit."""
        if self.store is None:
            return self.inner.token_logprobs(requests)
        keys = self._token_keys(requests)
        order = sorted(range(len(requests)), key=lambda i: len(requests[i][0]))
        out = np.empty(len(requests), dtype=np.float64)
        stats = self.stats["token"]
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            found = self.store.get("token", [keys[i] for i in idx])
            if all(keys[i] in found for i in idx):
                out[idx] = [found[keys[i]] for i in idx]
                stats["hits"] += len(idx)
                self.batches["cached"] += 1
            else:
                report, self.inner.on_batch = self.inner.on_batch, None
                try:
                    computed = self.inner.token_logprobs([requests[i] for i in idx])
                finally:
                    self.inner.on_batch = report
                out[idx] = computed
                self.store.put_scalars(
                    "token", [(keys[i], float(computed[j])) for j, i in enumerate(idx)]
                )
                stats["misses"] += len(idx)
                self.batches["computed"] += 1
            if self.on_batch is not None:
                self.on_batch(start + len(idx), len(order))
        return out

    def tokens_stored(self, requests: Sequence[tuple[Sequence[int], int]]) -> np.ndarray:
        """Which token requests are in the cache (bool per request; nothing counted): how
        much of a CrowS-Pairs run is served when it resumes."""
        if self.store is None or not requests:
            return np.zeros(len(requests), dtype=bool)
        keys = self._token_keys(requests)
        present = self.store.present("token", keys)
        return np.array([k in present for k in keys], dtype=bool)

    @staticmethod
    def _token_keys(requests: Sequence[tuple[Sequence[int], int]]) -> list[bytes]:
        return [request_key("token", [[int(i) for i in ids], int(p)]) for ids, p in requests]

    @property
    def hits(self) -> int:
        """Requests to the model served from the cache (every kind but finished pairs)."""
        return sum(s["hits"] for kind, s in self.stats.items() if kind != "pair")

    @property
    def computed(self) -> int:
        """Requests to the model computed (every kind but finished pairs)."""
        return sum(s["misses"] for kind, s in self.stats.items() if kind != "pair")

    def close(self) -> None:
        self.inner.close()


def open_cache(cache: Any, live: bool) -> ResultCache | str:
    """The cache a run uses, or why it uses none.

    Args:
        cache: ``None`` (the default folder, :func:`biasprobe.cache.default_cache_dir`), a
            folder, an open :class:`ResultCache`, or ``False`` (no cache).
        live: whether the run has a model that computes anything (else the folder is not
            touched).
    """
    if cache is False:
        return "--no-cache"
    if not live:
        return "no live model in the run"
    if isinstance(cache, ResultCache):
        return cache
    from biasprobe.cache import resolve_cache_dir

    return ResultCache(resolve_cache_dir(cache))


def wrap(backend: MaskedLMBackend, cache: ResultCache | str) -> CachedMaskedLM:
    """``backend`` behind the cache ``cache`` (an open cache, or the reason there is none)."""
    from biasprobe.backends.recorded import RecordedMaskedLM

    if isinstance(backend, CachedMaskedLM):
        return backend
    if isinstance(backend, RecordedMaskedLM):
        return CachedMaskedLM(backend, None, reason=RECORDED_REASON)
    if isinstance(cache, str):
        return CachedMaskedLM(backend, None, reason=cache)
    identity, why = model_identity(backend)
    if identity is None:
        return CachedMaskedLM(backend, None, reason=why)
    return CachedMaskedLM(backend, cache.model(identity, backend.name), folder=cache.folder)


class CachedClassifier(ClassifierBackend):
    """A classifier ``inner`` with its label probabilities read from and written to ``store``
    (or passed through when ``store`` is None, ``reason`` saying why).

    :meth:`p_label` splits a call into the very batches the classifier forms itself (texts
    sorted by length, ``batch_size`` at a time): a batch whose every text is stored is read
    back; any other batch is computed whole, as it would have been without the cache, and
    committed at once (a killed run computes again only the uncommitted batches). Each text's
    probabilities are kept as float64, so a run gives the same numbers with and without the
    cache, bit for bit.

    Attributes:
        hits: texts served from the cache so far.
        computed: texts computed so far.
        batches: ``{"cached": n, "computed": m}``.
    """

    def __init__(
        self,
        inner: ClassifierBackend,
        store: ModelStore | None,
        *,
        folder: Path | None = None,
        reason: str = "",
    ) -> None:
        self.inner = inner
        self.store = store
        self.folder = folder
        self.reason = reason
        self.name = inner.name
        self.kind = inner.kind
        self.labels = tuple(inner.labels)
        self.positive = inner.positive
        self.batch_size = int(inner.batch_size)
        self.hits = 0
        self.computed = 0
        self.batches = {"cached": 0, "computed": 0}

    @property
    def info(self) -> dict[str, Any]:  # type: ignore[override]
        return {**self.inner.info, "cache": self.cache_provenance()}

    @property
    def text_tokenizer(self) -> Any:
        return self.inner.text_tokenizer

    def cache_provenance(self) -> dict[str, Any]:
        """What the cache did for this classifier (``results.json`` ``models[i].info.cache``)."""
        if self.store is None:
            return {"enabled": False, "reason": self.reason}
        return {
            "enabled": True,
            "dir": str(self.folder),
            "model_identity": self.store.identity,
            "hits": self.hits,
            "misses": self.computed,
            "batches_cached": self.batches["cached"],
            "batches_computed": self.batches["computed"],
            "by_kind": {"label": {"hits": self.hits, "misses": self.computed}},
            "damaged": self.store.damaged(),
        }

    def _probs(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.p_label(texts)

    def p_label(self, texts: Sequence[str]) -> np.ndarray:
        """See :meth:`ClassifierBackend.p_label`; batches as the wrapped classifier forms
        them, each read from the cache or computed whole and committed."""
        if self.store is None:
            return self.inner.p_label(texts)
        return expand(texts, self._distinct_probs, len(self.labels))

    def _distinct_probs(self, texts: list[str]) -> np.ndarray:
        n_labels = len(self.labels)
        out = np.empty((len(texts), n_labels))
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        keys = [request_key("label", t) for t in texts]
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            found = self.store.get("label", [keys[i] for i in idx])
            rows = [_label_row(found.get(keys[i]), n_labels) for i in idx]
            if all(r is not None for r in rows):
                out[idx] = np.stack(rows)
                self.hits += len(idx)
                self.batches["cached"] += 1
                continue
            computed = np.asarray(self.inner.p_label([texts[i] for i in idx]), dtype=np.float64)
            out[idx] = computed
            self.store.put_records(
                "label",
                [(keys[i], encode_record({}, {"p": computed[j]})) for j, i in enumerate(idx)],
            )
            self.computed += len(idx)
            self.batches["computed"] += 1
        return out

    def close(self) -> None:
        self.inner.close()


def _label_row(value: Any, n_labels: int) -> np.ndarray | None:
    """The stored probabilities of one text, if the record holds ``n_labels`` float64s."""
    if value is None:
        return None
    _, arrays = value
    row = arrays.get("p")
    if row is None or row.dtype != np.dtype("<f8") or row.shape != (n_labels,):
        return None
    return row


def wrap_classifier(classifier: ClassifierBackend, cache: ResultCache | str) -> CachedClassifier:
    """``classifier`` behind the cache ``cache`` (an open cache, or the reason there is none);
    a classifier without files to identify it (:func:`biasprobe.cache.model_identity`) passes
    through with the reason in its provenance."""
    if isinstance(classifier, CachedClassifier):
        return classifier
    if isinstance(cache, str):
        return CachedClassifier(classifier, None, reason=cache)
    identity, why = model_identity(classifier)
    if identity is None:
        return CachedClassifier(classifier, None, reason=why)
    return CachedClassifier(classifier, cache.model(identity, classifier.name), folder=cache.folder)


class CachedSentenceScorer:
    """A sentence scorer ``inner`` with its sentence log-likelihoods read from and written to
    ``store`` (or passed through when ``store`` is None, ``reason`` saying why); it implements
    :class:`~biasprobe.backends.base.SentenceScorer` (see the module docstring for the units it
    reads and commits). Every number it returns is the one ``inner`` computes for the same
    call, bit for bit: totals and log-probs are stored as float64 and read back unchanged.

    Attributes:
        hits: sentences served from the cache so far.
        computed: sentences computed so far.
        batches: ``{"cached": n, "computed": m}`` (units read back / computed).
    """

    def __init__(
        self,
        inner: SentenceScorer,
        store: ModelStore | None,
        *,
        folder: Path | None = None,
        reason: str = "",
    ) -> None:
        self.inner = inner
        self.store = store
        self.folder = folder
        self.reason = reason
        self.name = inner.name
        self.scoring = inner.scoring
        self.hits = 0
        self.computed = 0
        self.batches = {"cached": 0, "computed": 0}

    def __getattr__(self, name: str) -> Any:
        # What a particular scorer has beyond the protocol (vocab, tokenizer, bos_id, ...).
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def info(self) -> dict[str, Any]:
        return {**self.inner.info, "cache": self.cache_provenance()}

    @property
    def identity(self) -> str | None:
        """The model's identity in the cache (sha256 hex), or None when it is not cached."""
        return None if self.store is None else self.store.identity

    def provenance(self) -> dict[str, Any]:
        return dict(self.info)

    def cache_provenance(self) -> dict[str, Any]:
        """What the cache did for this model (``results.json`` ``models[i].info.cache``)."""
        if self.store is None:
            return {"enabled": False, "reason": self.reason}
        return {
            "enabled": True,
            "dir": str(self.folder),
            "model_identity": self.store.identity,
            "hits": self.hits,
            "misses": self.computed,
            "batches_cached": self.batches["cached"],
            "batches_computed": self.batches["computed"],
            "by_kind": {"sentence": {"hits": self.hits, "misses": self.computed}},
            "damaged": self.store.damaged(),
        }

    def _keys(self, sentences: Sequence[str]) -> list[bytes]:
        return [request_key("sentence", [self.scoring, s]) for s in sentences]

    def _units(self, sentences: list[str]) -> list[list[int]]:
        """The indices of ``sentences`` (distinct) grouped as the scorer computes them: an
        :class:`~biasprobe.backends.causal.HFCausalLM`'s forward batches (its distinct inputs
        of two ids or more, sorted by length then ids, ``batch_size`` at a time; the inputs
        too short to score need no forward pass and form one unit), else the whole call."""
        from biasprobe.backends.causal import HFCausalLM

        if not isinstance(self.inner, HFCausalLM):
            return [list(range(len(sentences)))] if sentences else []
        inputs = [tuple(ids) for ids in self.inner.input_ids(sentences, "sentence")]
        by_input: dict[tuple[int, ...], list[int]] = {}
        for i, ids in enumerate(inputs):
            by_input.setdefault(ids, []).append(i)
        short = [i for ids, idx in by_input.items() if len(ids) < 2 for i in idx]
        distinct = sorted((s for s in by_input if len(s) > 1), key=lambda s: (len(s), s))
        size = int(self.inner.batch_size)
        units = [
            [i for s in distinct[start : start + size] for i in by_input[s]]
            for start in range(0, len(distinct), size)
        ]
        return ([short] if short else []) + units

    def sentence_logprobs(self, sentences: Sequence[str]) -> list[SentenceLogprobs]:
        """See :meth:`~biasprobe.backends.base.SentenceScorer.sentence_logprobs`; each unit
        read from the cache or computed whole and committed (a
        :class:`~biasprobe.backends.base.UnitScorer`'s missed units in one stream)."""
        if isinstance(self.inner, UnitScorer):
            return next(iter(self.calls_logprobs([sentences])))
        if self.store is None:
            return self.inner.sentence_logprobs(sentences)
        sentences = list(sentences)
        unique = list(dict.fromkeys(sentences))
        keys = self._keys(unique)
        out: list[SentenceLogprobs | None] = [None] * len(unique)
        for idx in self._units(unique):
            found = self.store.get("sentence", [keys[i] for i in idx])
            rows = [_sentence_row(found.get(keys[i])) for i in idx]
            if all(r is not None for r in rows):
                for i, r in zip(idx, rows):
                    out[i] = r
                self.hits += len(idx)
                self.batches["cached"] += 1
                continue
            computed = self.inner.sentence_logprobs([unique[i] for i in idx])
            self.store.put_records(
                "sentence", [(keys[i], _sentence_record(r)) for i, r in zip(idx, computed)]
            )
            for i, r in zip(idx, computed):
                out[i] = r
            self.computed += len(idx)
            self.batches["computed"] += 1
        where = {s: i for i, s in enumerate(unique)}
        return [out[where[s]] for s in sentences]  # type: ignore[misc]

    def calls_logprobs(self, calls: Sequence[Sequence[str]]) -> Iterator[list[SentenceLogprobs]]:
        """The results of ``sentence_logprobs(call)`` for each call, in order, with the same
        units and numbers; a :class:`~biasprobe.backends.base.UnitScorer` gets the units every
        call misses in one stream (one dataset per model on Ray, not one per call), each unit
        committed as it returns."""
        if not isinstance(self.inner, UnitScorer):
            for call in calls:
                yield self.sentence_logprobs(call)
            return
        plans = []  # per call: its sentences, distinct sentences, keys, results
        owner: list[tuple[int, list[int]]] = []  # per missing unit: (call, indices)
        groups: list[list[str]] = []
        left = [0] * len(calls)
        for c, call in enumerate(calls):
            sentences = list(call)
            unique = list(dict.fromkeys(sentences))
            keys = self._keys(unique)
            out: list[SentenceLogprobs | None] = [None] * len(unique)
            for idx in self._units(unique):
                rows: list[SentenceLogprobs | None] = [None] * len(idx)
                if self.store is not None:
                    found = self.store.get("sentence", [keys[i] for i in idx])
                    rows = [_sentence_row(found.get(keys[i])) for i in idx]
                if all(r is not None for r in rows):
                    for i, r in zip(idx, rows):
                        out[i] = r
                    self.hits += len(idx)
                    self.batches["cached"] += 1
                else:
                    owner.append((c, idx))
                    groups.append([unique[i] for i in idx])
                    left[c] += 1
            plans.append((sentences, unique, keys, out))
        done = 0

        def ready() -> Iterator[list[SentenceLogprobs]]:
            nonlocal done
            while done < len(calls) and left[done] == 0:
                sentences, unique, _, out = plans[done]
                where = {s: i for i, s in enumerate(unique)}
                done += 1
                yield [out[where[s]] for s in sentences]  # type: ignore[misc]

        yield from ready()
        for k, computed in self.inner.score_units(groups) if groups else ():
            c, idx = owner[k]
            _, _, keys, out = plans[c]
            if self.store is not None:
                self.store.put_records(
                    "sentence", [(keys[i], _sentence_record(r)) for i, r in zip(idx, computed)]
                )
                self.computed += len(idx)
                self.batches["computed"] += 1
            for i, r in zip(idx, computed):
                out[i] = r
            left[c] -= 1
            yield from ready()

    def stored(self, sentences: Sequence[str]) -> np.ndarray:
        """Which sentences are in the cache and intact (bool per sentence; nothing counted):
        how much of a run is served when it resumes."""
        if self.store is None or not sentences:
            return np.zeros(len(sentences), dtype=bool)
        keys = self._keys(sentences)
        found = self.store.get("sentence", keys)
        return np.array([_sentence_row(found.get(k)) is not None for k in keys], dtype=bool)

    def close(self) -> None:
        self.inner.close()


def _sentence_record(value: SentenceLogprobs) -> bytes:
    """One sentence's log-likelihood as a cache record (the total in the header as Python's
    shortest repr, which reads back to the same float64)."""
    header = {"total": float(value.total), "tokens": [str(t) for t in value.tokens]}
    arrays = {
        "ids": np.asarray(value.token_ids, dtype="<i8"),
        "logprobs": np.asarray(value.logprobs, dtype="<f8"),
    }
    return encode_record(header, arrays)


def _sentence_row(value: Any) -> SentenceLogprobs | None:
    """The stored log-likelihood of one sentence, if the record is whole and consistent."""
    if value is None:
        return None
    header, arrays = value
    ids, lp = arrays.get("ids"), arrays.get("logprobs")
    total, tokens = header.get("total"), header.get("tokens")
    if ids is None or lp is None or ids.dtype != np.dtype("<i8") or lp.dtype != np.dtype("<f8"):
        return None
    if not isinstance(total, float) or not isinstance(tokens, list) or ids.shape != lp.shape:
        return None
    if len(tokens) != len(ids) or not all(isinstance(t, str) for t in tokens):
        return None
    return SentenceLogprobs(
        total=total,
        token_ids=tuple(int(i) for i in ids),
        tokens=tuple(tokens),
        logprobs=lp.astype(np.float64, copy=True),
    )


def wrap_scorer(scorer: SentenceScorer, cache: ResultCache | str) -> CachedSentenceScorer:
    """``scorer`` behind the cache ``cache`` (an open cache, or the reason there is none); a
    scorer without files to identify it (:func:`biasprobe.cache.model_identity`: a model
    object, recorded outputs under pseudo-log-likelihood) passes through with the reason in
    its provenance."""
    from biasprobe.backends.pll import PseudoLogLikelihood
    from biasprobe.backends.recorded import RecordedMaskedLM

    if isinstance(scorer, CachedSentenceScorer):
        return scorer
    if isinstance(scorer, PseudoLogLikelihood) and isinstance(scorer.masked, RecordedMaskedLM):
        return CachedSentenceScorer(scorer, None, reason=RECORDED_REASON)
    if isinstance(cache, str):
        return CachedSentenceScorer(scorer, None, reason=cache)
    identity, why = model_identity(scorer)
    if identity is None:
        return CachedSentenceScorer(scorer, None, reason=why)
    return CachedSentenceScorer(scorer, cache.model(identity, scorer.name), folder=cache.folder)
