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

:class:`~biasprobe.backends.cached_sentences.CachedSentenceScorer` does it for any
:class:`~biasprobe.backends.base.SentenceScorer` (one record per sentence).

With a :class:`~biasprobe.backends.base.CallRunner` (models on Ray: ``runner=``), the wrappers
form and read the same batches, hand every missed batch of a request to the runner at once and
commit each as it returns (:mod:`biasprobe.backends.calls`); without a cache they still split a
request into the model's own batches, so the numbers are those of the local model.

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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biasprobe.backends.base import CallRunner, MaskedLMBackend
from biasprobe.backends.calls import compute_calls, engine_info
from biasprobe.backends.classifiers import ClassifierBackend, expand
from biasprobe.cache import ModelStore, ResultCache, encode_record, model_identity, request_key

__all__ = [
    "CachedClassifier",
    "CachedMaskedLM",
    "open_cache",
    "wrap",
    "wrap_classifier",
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
        runner: CallRunner | None = None,
    ) -> None:
        self.inner = inner
        self.runner = runner
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
        return {**self.inner.info, "cache": self.cache_provenance(), **engine_info(self.runner)}

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
        them, each read from the cache or computed whole and committed (the missed batches
        all handed to the runner at once when there is one)."""
        if self.store is None and self.runner is None:
            return self.inner.mask_logprobs(sentences)
        unique = list(dict.fromkeys(sentences))
        ids = self.inner.token_ids(unique)
        lengths = [len(x) for x in ids] if ids is not None else [0] * len(unique)
        order = sorted(range(len(unique)), key=lambda i: lengths[i])
        keys = [request_key("mask", s) for s in unique]
        out = np.empty((len(unique), len(self.vocab)), dtype=np.float32)
        stats = self.stats["mask"]
        missed, done = [], 0
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            rows = [None] * len(idx)
            if self.store is not None:
                found = self.store.get("mask", [keys[i] for i in idx])
                rows = [found.get(keys[i]) for i in idx]
            if all(r is not None and r.shape == (len(self.vocab),) for r in rows):
                out[idx] = np.stack(rows)
                stats["hits"] += len(idx)
                self.batches["cached"] += 1
                done += len(idx)
                if self.on_batch is not None:
                    self.on_batch(done, len(order))
            else:
                missed.append(idx)
        calls = [([unique[i] for i in idx],) for idx in missed]
        for k, computed in compute_calls(self.inner, self.runner, "mask_logprobs", calls):
            idx = missed[k]
            computed = np.asarray(computed)
            out[idx] = computed
            if self.store is not None:
                self.store.put_vectors("mask", [(keys[i], computed[j]) for j, i in enumerate(idx)])
            stats["misses"] += len(idx)
            self.batches["computed"] += 1
            done += len(idx)
            if self.on_batch is not None:
                self.on_batch(done, len(order))
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

    def _scalars(self, kind: str, requests: Sequence[Any], payload: list[Any]) -> np.ndarray:
        keys = [request_key(kind, p) for p in payload]
        found = self.store.get(kind, keys) if self.store is not None else {}
        if self.store is not None and all(k in found for k in keys):
            self.stats[kind]["hits"] += len(keys)
            return np.asarray([found[k] for k in keys], dtype=np.float64)
        method = "chain_logprobs" if kind == "chain" else "prior_logprobs"
        calls = [(list(requests),)]
        _, values = next(compute_calls(self.inner, self.runner, method, calls, silence=False))
        values = np.asarray(values, dtype=np.float64)
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
        if self.store is None and self.runner is None:
            return self.inner.token_logprobs(requests)
        keys = self._token_keys(requests)
        order = sorted(range(len(requests)), key=lambda i: len(requests[i][0]))
        out = np.empty(len(requests), dtype=np.float64)
        stats = self.stats["token"]
        missed, done = [], 0
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            found = self.store.get("token", [keys[i] for i in idx]) if self.store else {}
            if self.store is not None and all(keys[i] in found for i in idx):
                out[idx] = [found[keys[i]] for i in idx]
                stats["hits"] += len(idx)
                self.batches["cached"] += 1
                done += len(idx)
                if self.on_batch is not None:
                    self.on_batch(done, len(order))
            else:
                missed.append(idx)
        calls = [([requests[i] for i in idx],) for idx in missed]
        for k, computed in compute_calls(self.inner, self.runner, "token_logprobs", calls):
            idx = missed[k]
            out[idx] = computed
            if self.store is not None:
                self.store.put_scalars(
                    "token", [(keys[i], float(computed[j])) for j, i in enumerate(idx)]
                )
            stats["misses"] += len(idx)
            self.batches["computed"] += 1
            done += len(idx)
            if self.on_batch is not None:
                self.on_batch(done, len(order))
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


def wrap(
    backend: MaskedLMBackend, cache: ResultCache | str, runner: CallRunner | None = None
) -> CachedMaskedLM:
    """``backend`` behind the cache ``cache`` (an open cache, or the reason there is none);
    ``runner``: where missed batches are computed (None: here)."""
    from biasprobe.backends.recorded import RecordedMaskedLM

    if isinstance(backend, CachedMaskedLM):
        return backend
    if isinstance(backend, RecordedMaskedLM):
        return CachedMaskedLM(backend, None, reason=RECORDED_REASON)
    if isinstance(cache, str):
        return CachedMaskedLM(backend, None, reason=cache, runner=runner)
    identity, why = model_identity(backend)
    if identity is None:
        return CachedMaskedLM(backend, None, reason=why, runner=runner)
    store = cache.model(identity, backend.name)
    return CachedMaskedLM(backend, store, folder=cache.folder, runner=runner)


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
        runner: CallRunner | None = None,
    ) -> None:
        self.inner = inner
        self.runner = runner
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
        return {**self.inner.info, "cache": self.cache_provenance(), **engine_info(self.runner)}

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
        if self.store is None and self.runner is None:
            return self.inner.p_label(texts)
        return expand(texts, self._distinct_probs, len(self.labels))

    def _distinct_probs(self, texts: list[str]) -> np.ndarray:
        n_labels = len(self.labels)
        out = np.empty((len(texts), n_labels))
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        keys = [request_key("label", t) for t in texts]
        missed = []
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            rows = [None] * len(idx)
            if self.store is not None:
                found = self.store.get("label", [keys[i] for i in idx])
                rows = [_label_row(found.get(keys[i]), n_labels) for i in idx]
            if all(r is not None for r in rows):
                out[idx] = np.stack(rows)
                self.hits += len(idx)
                self.batches["cached"] += 1
            else:
                missed.append(idx)
        calls = [([texts[i] for i in idx],) for idx in missed]
        for k, computed in compute_calls(self.inner, self.runner, "p_label", calls, silence=False):
            idx = missed[k]
            computed = np.asarray(computed, dtype=np.float64)
            out[idx] = computed
            if self.store is not None:
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


def wrap_classifier(
    classifier: ClassifierBackend, cache: ResultCache | str, runner: CallRunner | None = None
) -> CachedClassifier:
    """``classifier`` behind the cache ``cache`` (an open cache, or the reason there is none);
    a classifier without files to identify it (:func:`biasprobe.cache.model_identity`) passes
    through with the reason in its provenance. ``runner``: where missed batches are computed."""
    if isinstance(classifier, CachedClassifier):
        return classifier
    if isinstance(cache, str):
        return CachedClassifier(classifier, None, reason=cache, runner=runner)
    identity, why = model_identity(classifier)
    if identity is None:
        return CachedClassifier(classifier, None, reason=why, runner=runner)
    store = cache.model(identity, classifier.name)
    return CachedClassifier(classifier, store, folder=cache.folder, runner=runner)
