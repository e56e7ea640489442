"""Sentence scorers on Ray: the driver keeps the cache and the run folder, actors hold models.

The engine's loop is unchanged (:func:`biasprobe.engine.run`); :class:`RayEngine` is its
``distribute`` hook. For a causal LM served as a sentence scorer (HolisticBias, causal
CrowS-Pairs) it returns a :class:`RayScorer`: the driver tokenizes, forms the very forward
batches :class:`~biasprobe.backends.causal.HFCausalLM` forms (distinct inputs sorted by length
then ids, ``batch_size`` at a time) and sends the batches the cache misses to Ray as one
Ray Data dataset, one row per batch; ``map_batches`` runs them on a pool of actors
(``ray.data.ActorPoolStrategy``), each loading the model once (``fn_constructor_kwargs``) and
computing a batch exactly as the local model does, so the numbers are bit-identical on the
same hardware and library versions. Results stream back; the cache commits each unit as it
arrives. Every other model passes through unchanged (computed on the driver).

Ray is optional (``pip install ray[data]``); nothing here imports it before a run needs it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from biasprobe.backends.base import SentenceLogprobs
from biasprobe.backends.causal import HFCausalLM
from biasprobe.engine import ModelEntry
from biasprobe.errors import ModelLoadError, UsageError

__all__ = ["RayEngine", "RayOptions", "RayScorer", "ensure_ray"]


@dataclass(frozen=True)
class RayOptions:
    """Where and how models run on Ray.

    Attributes:
        actors: model replicas (actors in the pool; each loads the model once).
        num_cpus: CPUs reserved per actor (fractional allowed: one core shared in tests).
        num_gpus: GPUs per actor (1 on a GPU cluster; 0 on CPUs).
        address: a running cluster to join (``ray://…`` or ``auto``); None: ``RAY_ADDRESS``
            if set, else a local instance started by :func:`ensure_ray`.
        object_store_memory: bytes of a local instance's object store (None: Ray's default,
            30% of RAM).
        device: the actors' device (``cpu``, ``cuda``; None: what the run was given).
        rows_per_call: engine batches handed to an actor per call (Ray Data's integer
            ``batch_size``); each is still one forward pass of its own, so the numbers do not
            depend on it — it only spreads Ray's per-call cost.
    """

    actors: int = 1
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    address: str | None = None
    object_store_memory: int | None = None
    device: str | None = None
    rows_per_call: int = 8

    def check(self) -> None:
        """Raises UsageError naming a bad option."""
        if not isinstance(self.rows_per_call, int) or self.rows_per_call < 1:
            raise UsageError(f"ray rows per call must be ≥ 1, got {self.rows_per_call!r}")
        if not isinstance(self.actors, int) or self.actors < 1:
            raise UsageError(f"ray actors must be a whole number ≥ 1, got {self.actors!r}")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise UsageError(
                f"ray CPUs/GPUs per actor must be ≥ 0, got {self.num_cpus}, {self.num_gpus}"
            )


def ensure_ray(options: RayOptions) -> Any:
    """The ``ray`` module, initialised once: joins ``options.address`` (or ``RAY_ADDRESS``)
    or starts a local instance.

    Raises:
        UsageError: Ray is not installed.
    """
    try:
        import ray
    except ImportError as exc:
        raise UsageError(
            f"the Ray engine needs Ray: pip install 'ray[data]>=2.51' (not installed: {exc})"
        ) from None
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if options.address is not None:
            kwargs["address"] = options.address
        if options.object_store_memory is not None:
            kwargs["object_store_memory"] = options.object_store_memory
        ray.init(**kwargs)
    return ray


class _BatchScorer:
    """A Ray Data callable class: one model per actor, loaded once; each row is one forward
    batch of model input ids (JSON), answered with its float64 log-probs (bytes) and the
    length of each input's array."""

    def __init__(self, spec: Any, load: dict[str, Any], threads: int = 1) -> None:
        import torch

        from biasprobe.backends.registry import load as load_model

        # A Ray worker's torch runs one thread whatever the actor's CPUs (measured with Ray
        # 2.60): use the CPUs the actor reserved.
        torch.set_num_threads(threads)

        try:
            self.scorer = load_model(spec, **load)
        except Exception as exc:  # noqa: BLE001 - re-raised naming the model
            raise ModelLoadError(
                f"model {spec.spec!r} could not be loaded on a Ray worker: {exc}"
            ) from exc
        if not isinstance(self.scorer, HFCausalLM):
            raise ModelLoadError(
                f"model {spec.spec!r} loaded on a Ray worker as {type(self.scorer).__name__}, "
                "not a causal LM"
            )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keys, blobs, lengths = [], [], []
        for key, text in zip(batch["key"], batch["inputs"]):
            inputs = [tuple(s) for s in json.loads(str(text))]
            arrays = self.scorer.sequence_logprobs(inputs)
            keys.append(str(key))
            blobs.append(np.concatenate([*arrays, np.zeros(0)]).astype("<f8").tobytes())
            lengths.append(json.dumps([len(a) for a in arrays]))
        return {
            "key": np.array(keys, dtype=object),
            "logprobs": np.array(blobs, dtype=object),
            "lengths": np.array(lengths, dtype=object),
        }


class RayScorer(HFCausalLM):
    """A causal LM on the driver (tokenizer, vocabulary, provenance: the same cache identity
    as the local model) whose forward batches run on a Ray actor pool; a
    :class:`~biasprobe.backends.base.UnitScorer`, so the cache sends every unit it misses in
    one dataset and commits each as it returns.

    The driver still holds the loaded model (it is the local backend, kept for
    ``next_token_logprobs`` and provenance); a driver holding only the tokenizer is the next
    step (``docs/ray-status.md``).
    """

    def __init__(
        self, local: HFCausalLM, model: ModelEntry, load: dict[str, Any], options: RayOptions
    ) -> None:
        super().__init__(
            local.model,
            local.tokenizer,
            name=local.name,
            device=local.device,
            batch_size=local.batch_size,
            info=local.info,
        )
        self.spec = model.spec
        self.options = options
        self.load = {**load, "batch_size": local.batch_size}
        if options.device is not None:
            self.load["device"] = options.device
        self.ray_batches = 0  # forward batches sent to Ray so far
        self.ray_datasets = 0  # Ray Data executions (one actor pool each) so far

    def _forward_batches(self, inputs: Sequence[tuple[int, ...]]) -> list[list[tuple[int, ...]]]:
        """The batches :meth:`HFCausalLM._batches` forms for ``inputs`` (inputs of two ids or
        more, distinct, sorted by length then ids, :attr:`batch_size` at a time)."""
        distinct = sorted({s for s in inputs if len(s) > 1}, key=lambda s: (len(s), s))
        size = self.batch_size
        return [distinct[i : i + size] for i in range(0, len(distinct), size)]

    def _run(self, batches: list[list[tuple[int, ...]]]) -> Iterator[tuple[int, dict]]:
        """Yield ``(batch index, {input: float64 log-probs})`` as each batch returns."""
        if not batches:
            return
        ray = ensure_ray(self.options)
        rows = [{"key": str(k), "inputs": json.dumps(b)} for k, b in enumerate(batches)]
        ds = ray.data.from_items(rows)
        self.ray_datasets += 1
        out = ds.map_batches(
            _BatchScorer,
            fn_constructor_kwargs={
                "spec": self.spec,
                "load": self.load,
                "threads": max(1, int(self.options.num_cpus)),
            },
            batch_size=self.options.rows_per_call,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.options.actors),
            num_cpus=self.options.num_cpus,
            num_gpus=self.options.num_gpus,
        )
        done = 0
        for row in out.iter_rows():
            k = int(row["key"])
            values = np.frombuffer(row["logprobs"], dtype="<f8")
            scored, start = {}, 0
            for s, n in zip(batches[k], json.loads(row["lengths"])):
                scored[s] = values[start : start + n].astype(np.float64, copy=True)
                start += n
            done += 1
            self.ray_batches += 1
            if self.on_batch is not None:
                self.on_batch(done, len(batches))
            yield k, scored

    def sequence_logprobs(self, inputs: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """As :meth:`HFCausalLM.sequence_logprobs`, each forward batch computed on Ray."""
        keys = [tuple(int(i) for i in s) for s in inputs]
        scored: dict[tuple[int, ...], np.ndarray] = {}
        for _, part in self._run(self._forward_batches(keys)):
            scored.update(part)
        empty = np.zeros(0, dtype=np.float64)
        return [scored.get(s, empty) for s in keys]

    def score_units(
        self, units: Sequence[Sequence[str]]
    ) -> Iterator[tuple[int, list[SentenceLogprobs]]]:
        """Every unit's forward batches in one dataset; each unit yielded when its last batch
        has returned (see :class:`~biasprobe.backends.base.UnitScorer`)."""
        unit_inputs = [[tuple(s) for s in self.input_ids(u, "sentence")] for u in units]
        batches: list[list[tuple[int, ...]]] = []
        owner: list[int] = []
        pending = [0] * len(units)
        for u, inputs in enumerate(unit_inputs):
            for b in self._forward_batches(inputs):
                batches.append(b)
                owner.append(u)
                pending[u] += 1
        scored: list[dict] = [{} for _ in units]
        for u in range(len(units)):
            if pending[u] == 0:  # nothing long enough to need a forward pass
                yield u, self._sentences(unit_inputs[u], scored[u])
        for k, part in self._run(batches):
            u = owner[k]
            scored[u].update(part)
            pending[u] -= 1
            if pending[u] == 0:
                yield u, self._sentences(unit_inputs[u], scored[u])

    def _sentences(
        self, inputs: list[tuple[int, ...]], scored: dict[tuple[int, ...], np.ndarray]
    ) -> list[SentenceLogprobs]:
        """SentenceLogprobs built as :meth:`HFCausalLM.sentence_logprobs` builds them."""
        empty = np.zeros(0, dtype=np.float64)
        out = []
        for s in inputs:
            lp = scored.get(s, empty).copy()
            token_ids = tuple(s[1:])
            out.append(
                SentenceLogprobs(
                    total=float(np.sum(lp)),
                    token_ids=token_ids,
                    tokens=tuple(self.vocab[t] for t in token_ids),
                    logprobs=lp,
                )
            )
        return out


class RayEngine:
    """The ``distribute`` hook of :func:`biasprobe.engine.run` that scores on Ray: a causal LM
    loaded from files (served as a sentence scorer) becomes a :class:`RayScorer`; any other
    model (masked LMs, classifiers, objects passed in) is returned unchanged and computed on
    the driver, for now."""

    def __init__(self, options: RayOptions | None = None) -> None:
        self.options = options or RayOptions()
        self.options.check()
        self.scorers: list[RayScorer] = []

    def __call__(self, backend: Any, model: ModelEntry, load: dict[str, Any]) -> Any:
        if model.loaded or type(backend) is not HFCausalLM:
            return backend
        ensure_ray(self.options)
        scorer = RayScorer(backend, model, load, self.options)
        self.scorers.append(scorer)
        return scorer
