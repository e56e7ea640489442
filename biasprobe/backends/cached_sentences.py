"""The result cache of a sentence scorer (:class:`CachedSentenceScorer`), see
:mod:`biasprobe.backends.cached` for the cache of masked LMs and classifiers.

One record per sentence (kind ``sentence``, keyed by the scorer's ``scoring`` and the
sentence), holding the total, the scored token ids, their display strings and their float64
log-probs. For a :class:`~biasprobe.backends.causal.HFCausalLM` a call is split into the very
forward batches the model forms (distinct inputs sorted by length, ``batch_size`` at a time),
each read back when every sentence of it is stored, else computed whole and committed; for any
other scorer (whose batches are its own business) the call is the unit: served when every
sentence of it is stored, else computed whole, as without the cache, and stored.

With a :class:`~biasprobe.backends.base.CallRunner` (models on Ray), :meth:`calls_logprobs`
plans every call of a model at once and hands every missed unit to the runner in one list,
committing each unit as it returns; the numbers are the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biasprobe.backends.base import CallRunner, SentenceLogprobs, SentenceScorer
from biasprobe.backends.cached import RECORDED_REASON
from biasprobe.backends.calls import compute_calls, engine_info
from biasprobe.cache import ModelStore, ResultCache, encode_record, model_identity, request_key

__all__ = ["CachedSentenceScorer", "wrap_scorer"]


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
        runner: CallRunner | None = None,
    ) -> None:
        self.inner = inner
        self.runner = runner
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
        return {**self.inner.info, "cache": self.cache_provenance(), **engine_info(self.runner)}

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
        :class:`~biasprobe.backends.base.CallRunner` gets the missed units in one list)."""
        if self.runner is not None:
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
        units and numbers; a :class:`~biasprobe.backends.base.CallRunner` gets the units every
        call misses in one list (one dataset per model on Ray, not one per call), each unit
        committed as it returns."""
        if self.runner is None:
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
        units = [(group,) for group in groups]
        for k, computed in compute_calls(
            self.inner, self.runner, "sentence_logprobs", units, silence=False
        ):
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


def wrap_scorer(
    scorer: SentenceScorer, cache: ResultCache | str, runner: CallRunner | None = None
) -> CachedSentenceScorer:
    """``scorer`` behind the cache ``cache`` (an open cache, or the reason there is none); a
    scorer without files to identify it (:func:`biasprobe.cache.model_identity`: a model
    object, recorded outputs under pseudo-log-likelihood) passes through with the reason in
    its provenance. ``runner``: where missed units are computed (None: here)."""
    from biasprobe.backends.pll import PseudoLogLikelihood
    from biasprobe.backends.recorded import RecordedMaskedLM

    if isinstance(scorer, CachedSentenceScorer):
        return scorer
    if isinstance(scorer, PseudoLogLikelihood) and isinstance(scorer.masked, RecordedMaskedLM):
        return CachedSentenceScorer(scorer, None, reason=RECORDED_REASON)
    if isinstance(cache, str):
        return CachedSentenceScorer(scorer, None, reason=cache, runner=runner)
    identity, why = model_identity(scorer)
    if identity is None:
        return CachedSentenceScorer(scorer, None, reason=why, runner=runner)
    store = cache.model(identity, scorer.name)
    return CachedSentenceScorer(scorer, store, folder=cache.folder, runner=runner)
