"""The batches a cache wrapper misses, computed here or by a :class:`CallRunner` elsewhere.

Every cache wrapper (:mod:`biasprobe.backends.cached`, :mod:`biasprobe.backends.cached_sentences`)
splits a request into the very batches its model forms, reads back the stored ones and hands
the missed ones to :func:`compute_calls` as a list of calls (one call per batch, each the
model's own method on that batch). Without a runner they are computed here, one after the
other, exactly as before; with one (e.g. :class:`biasprobe.distributed.ray_engine.RayCalls`)
they all go to it at once and come back in any order, each committed to the cache as it
arrives. Each call is the same batch either way, so the numbers do not depend on where it ran.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from biasprobe.backends.base import CallRunner

__all__ = ["compute_calls", "engine_info"]


def compute_calls(
    inner: Any,
    runner: CallRunner | None,
    method: str,
    calls: Sequence[tuple[Any, ...]],
    *,
    silence: bool = True,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(index into calls, getattr(inner, method)(*args))`` for every call.

    Args:
        inner: the model on this machine (computes the calls when there is no runner).
        runner: where the calls run instead (all handed over at once; results in any order).
        method: the model's method each call invokes (``mask_logprobs``, ``token_logprobs``,
            ``p_label``, ``chain_logprobs``, ``prior_logprobs``, ``sentence_logprobs``).
        calls: the positional arguments of each call.
        silence: mute ``inner``'s own per-batch report while it computes (the wrapper reports
            against the whole request).
    """
    if not calls:
        return
    if runner is not None:
        yield from runner.run_calls(method, calls)
        return
    compute = getattr(inner, method)
    report = inner.on_batch if silence else None
    if report is not None:
        inner.on_batch = None
    try:
        for k, args in enumerate(calls):
            yield k, compute(*args)
    finally:
        if report is not None:
            inner.on_batch = report


def engine_info(runner: CallRunner | None) -> dict[str, Any]:
    """``{"engine": …}`` for a model's provenance block when its batches ran elsewhere (what
    the runner says about itself: e.g. Ray, its actors and resources), else nothing."""
    return {} if runner is None else {"engine": runner.provenance()}
