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

Recorded outputs are never wrapped with a store (nothing is computed), and neither are models
with no files to identify them (:func:`biasprobe.cache.model_identity`): they pass through with
the reason in their provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biasprobe.backends.base import MaskedLMBackend
from biasprobe.cache import ModelStore, ResultCache, model_identity, request_key

__all__ = ["CachedMaskedLM", "open_cache", "wrap"]

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
        self.batch_size = int(getattr(inner, "batch_size", 32))
        self.stats = {kind: {"hits": 0, "misses": 0} for kind in ("mask", "chain", "prior", "pair")}
        self.batches = {"cached": 0, "computed": 0}

    @property
    def on_batch(self) -> Any:
        """Progress callback ``(done, total)`` after every batch, cached or computed (set on
        the wrapped backend too, which reports the chain and prior phases itself)."""
        return self.__dict__.get("_on_batch")

    @on_batch.setter
    def on_batch(self, report: Any) -> None:
        self.__dict__["_on_batch"] = report
        if hasattr(self.inner, "on_batch"):
            self.inner.on_batch = report

    def __getattr__(self, name: str) -> Any:
        # Anything else (tokenizer, unk_id, prior_request, ...) is the wrapped backend's.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def info(self) -> dict[str, Any]:  # type: ignore[override]
        return {**self.inner.info, "cache": self.provenance()}

    def provenance(self) -> dict[str, Any]:
        """What the cache did for this model (``results.json`` ``models[i].info.cache``)."""
        if self.store is None:
            return {"enabled": False, "reason": self.reason}
        # hits / misses: requests to the model (sentences, chain-rule and prior requests);
        # finished pairs served from or added to the cache are by_kind["pair"]
        asked = [s for kind, s in self.stats.items() if kind != "pair"]
        return {
            "enabled": True,
            "dir": str(self.folder),
            "model_identity": self.store.identity,
            "hits": sum(s["hits"] for s in asked),
            "misses": sum(s["misses"] for s in asked),
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
        if not hasattr(self.inner, "on_batch"):
            return self.inner.mask_logprobs(sentences)
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

    @property
    def scores_priors(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.inner, "scores_priors", False))

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
