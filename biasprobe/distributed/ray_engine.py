"""biasprobe on Ray: the driver keeps the cache and the run folder, actors hold the models.

The engine's loop is unchanged (:func:`biasprobe.engine.run`); :class:`RayEngine` is its
``distribute`` hook. For every model loaded from files it returns a :class:`RayCalls`, the
:class:`~biasprobe.backends.base.CallRunner` of that model: the result cache wrappers
(:mod:`biasprobe.backends.cached`, :mod:`biasprobe.backends.cached_sentences`) form the very
batches the local model forms, read the stored ones back and hand every missed batch of a
request to it at once. :class:`RayCalls` sends them as one Ray Data dataset, one row per batch
(the model's method and its arguments); ``map_batches`` runs them on a pool of actors
(``ray.data.ActorPoolStrategy(size=…)``), each loading the model once through the same loader
(``fn_constructor_kwargs``) and calling the same method on the same batch, so the numbers are
the local model's (bit-identical on the same hardware and library versions, ``docs/ray.md``).
Results stream back to the driver in any order; the cache commits each batch as it arrives.

Every kind of request goes this way: a masked LM's mask, chain, prior and token requests
(fill-mask, Kurita, CrowS-Pairs), a classifier's label probabilities (counterfactual), a
sentence scorer's units (HolisticBias, causal CrowS-Pairs, pseudo-log-likelihood). Models
handed in as objects, and recorded outputs, are computed on the driver.

Ray is optional (``pip install 'biasprobe[ray]'``); nothing here imports it before a run
needs it. Rows carry pickled calls and results between the driver and the actors it started
(the same trust as Ray's own task arguments, which are pickled too).
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from biasprobe.engine import ModelEntry
from biasprobe.errors import BiasprobeError, ModelLoadError, UsageError

__all__ = ["RayCalls", "RayEngine", "RayError", "RayOptions", "ensure_ray"]

#: Rows (batches) per Ray Data block.
ROWS_PER_BLOCK = 16
#: The phrase an actor's load failure carries back to the driver (found in Ray's error).
_LOAD_FAILED = "could not be loaded on a Ray worker"


class RayError(BiasprobeError):
    """A model's batches could not be computed on Ray (an actor or the cluster failed).
    Every batch that returned before is in the result cache: the same command resumes."""

    exit_code = 1


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
            ``batch_size``); each is still one call of the model on its own batch, so the
            numbers do not depend on it — it only spreads Ray's per-call cost.
    """

    actors: int = 1
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    address: str | None = None
    object_store_memory: int | None = None
    device: str | None = None
    rows_per_call: int = 4

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
            "the Ray engine needs Ray: pip install 'biasprobe[ray]' "
            f"(ray[data]>=2.51; not installed: {exc})"
        ) from None
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.WARNING,
        }
        address = options.address or os.environ.get("RAY_ADDRESS") or None
        if options.address is not None:
            kwargs["address"] = options.address
        if options.object_store_memory is not None and address is None:
            kwargs["object_store_memory"] = options.object_store_memory
        try:
            ray.init(**kwargs)
        except Exception as exc:  # noqa: BLE001 - Ray's many connection errors, as ours
            where = f"join the Ray cluster at {address}" if address else "start a local Ray"
            raise RayError(f"could not {where}: {type(exc).__name__}: {exc}") from None
    # biasprobe reports progress itself: Ray Data's progress bars and per-dataset log lines off
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return ray


class _CallActor:
    """A Ray Data callable class: one model per actor, loaded once through biasprobe's own
    loader; each row is one call of the model's method on one batch (pickled), answered with
    the pickled result and the actor's process id."""

    def __init__(self, spec: Any, load: dict[str, Any], name: str, threads: int = 1) -> None:
        import torch

        from biasprobe.backends.registry import load as load_model

        # A Ray worker's torch runs one thread whatever the actor's CPUs (measured with Ray
        # 2.60): use the CPUs the actor reserved.
        torch.set_num_threads(max(1, threads))
        try:
            self.model = load_model(spec, **load)
        except Exception as exc:  # noqa: BLE001 - re-raised naming the model
            raise ModelLoadError(f"model {name!r} {_LOAD_FAILED}: {exc}") from None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keys, results = [], []
        for key, blob in zip(batch["key"], batch["call"]):
            method, args = pickle.loads(blob)
            keys.append(int(key))
            results.append(pickle.dumps(getattr(self.model, method)(*args), protocol=5))
        return {
            "key": np.asarray(keys, dtype=np.int64),
            "result": np.array(results, dtype=object),
            "pid": np.full(len(keys), os.getpid(), dtype=np.int64),
        }


class RayCalls:
    """The :class:`~biasprobe.backends.base.CallRunner` of one model on Ray: every list of
    calls becomes one Ray Data dataset run on a pool of ``options.actors`` actors.

    Attributes:
        calls: calls computed on Ray so far (one per batch).
        datasets: Ray Data executions so far (each starts its actor pool and loads the model).
        pids: process ids of the actors that answered.
        startup_s: per dataset, seconds from its start to its first result (actor pool
            start and model load included).
    """

    def __init__(self, model: ModelEntry, load: dict[str, Any], options: RayOptions) -> None:
        self.name = model.name
        self.spec = model.spec
        self.options = options
        self.load = dict(load)
        if options.device is not None:
            self.load["device"] = options.device
        self.calls = 0
        self.datasets = 0
        self.pids: set[int] = set()
        self.startup_s: list[float] = []

    def provenance(self) -> dict[str, Any]:
        """Where this model's batches ran (``results.json``: the model block's ``engine``)."""
        import ray

        return {
            "kind": "ray",
            "ray": ray.__version__,
            "address": self.options.address or os.environ.get("RAY_ADDRESS") or "local",
            "actors": self.options.actors,
            "num_cpus": self.options.num_cpus,
            "num_gpus": self.options.num_gpus,
            "device": self.load.get("device"),
            "batch_size": self.load.get("batch_size"),
            "rows_per_call": self.options.rows_per_call,
            "calls": self.calls,
            "datasets": self.datasets,
            "startup_s": [round(s, 3) for s in self.startup_s],
        }

    def run_calls(self, method: str, calls: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, Any]]:
        """See :class:`~biasprobe.backends.base.CallRunner`.

        Raises:
            ModelLoadError: the model could not be loaded on an actor (named, with the reason).
            RayError: an actor or the cluster failed otherwise.
        """
        if not calls:
            return
        ray = ensure_ray(self.options)
        rows = [
            {"key": k, "call": pickle.dumps((method, tuple(args)), protocol=5)}
            for k, args in enumerate(calls)
        ]
        self.datasets += 1
        # Blocks of ROWS_PER_BLOCK rows: one block per row costs Ray ~4 ms a row (24,000 rows:
        # 98 s against 17 s, measured here); a block's results come back together, so a
        # killed run loses at most one block per actor.
        blocks = max(1, -(-len(rows) // ROWS_PER_BLOCK))
        out = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            _CallActor,
            fn_constructor_kwargs={
                "spec": self.spec,
                "load": self.load,
                "name": self.name,
                "threads": int(self.options.num_cpus),
            },
            batch_size=self.options.rows_per_call,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.options.actors),
            num_cpus=self.options.num_cpus,
            num_gpus=self.options.num_gpus,
        )
        began = time.perf_counter()
        rows_out = iter(out.iter_rows())
        try:
            while True:
                try:
                    row = next(rows_out)
                except StopIteration:
                    return
                except Exception as exc:  # noqa: BLE001 - Ray's errors, re-raised as ours
                    raise _worker_error(self.name, exc) from None
                if len(self.startup_s) < self.datasets:
                    self.startup_s.append(time.perf_counter() - began)
                self.calls += 1
                self.pids.add(int(row["pid"]))
                yield int(row["key"]), pickle.loads(row["result"])
        finally:
            close = getattr(rows_out, "close", None)
            if close is not None:
                close()


def _worker_error(name: str, exc: BaseException) -> BiasprobeError:
    """Ray's exception from a worker as biasprobe's: the load failure an actor raised (its
    message, naming the model), else a :class:`RayError` naming the model and the cause."""
    text = str(exc)
    for line in text.splitlines():
        if _LOAD_FAILED in line:
            return ModelLoadError(line[line.find("model ") :].strip())
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    return RayError(
        f"model {name!r}: Ray could not compute its batches ({type(exc).__name__}: {first}); "
        "every batch that returned is in the result cache — run the same command to resume"
    )


class RayEngine:
    """The ``distribute`` hook of :func:`biasprobe.engine.run` that computes on Ray: a
    :class:`RayCalls` for every model loaded from files; None (computed on the driver) for a
    model object handed in, whose weights may not be those of any files."""

    def __init__(self, options: RayOptions | None = None) -> None:
        self.options = options or RayOptions()
        self.options.check()
        self.runners: list[RayCalls] = []

    def __call__(self, backend: Any, model: ModelEntry, load: dict[str, Any]) -> RayCalls | None:
        if model.loaded:
            return None
        ensure_ray(self.options)
        load = dict(load)
        batch_size = getattr(backend, "batch_size", None)
        if batch_size is not None:  # the actors form the driver's batches
            load["batch_size"] = int(batch_size)
        runner = RayCalls(model, load, self.options)
        self.runners.append(runner)
        return runner
