"""Run a probe set on one or more models and collect tidy results.

Glue only: expansion comes from :mod:`biasprobe.probes`, numbers from the backends, scores from
:mod:`biasprobe.scores`. The CLI and the Python API both call :func:`run`.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import platform
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from biasprobe import __version__
from biasprobe.backends import MaskedLMBackend, load_backend
from biasprobe.errors import BiasprobeError, UsageError
from biasprobe.probes import MASK, ProbeItem, ProbeSet
from biasprobe.results import RunResult, VocabLogProbs, model_slug
from biasprobe.scores import pair_scores, summarize, topk

#: progress(model, stage, done, total); stage is "load" or "score".
ProgressFn = Callable[[str, str, int, int], None]

DEFAULT_TOP_K = 10
SIDES = ("A", "B")


def select_items(
    items: Sequence[ProbeItem],
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> list[ProbeItem]:
    """Keep the items whose pair id or template id matches any ``include`` glob and no
    ``exclude`` glob (``fnmatch`` patterns, e.g. ``cpr-*``).

    Raises:
        UsageError: a pattern matches nothing, or nothing is left.
    """

    def hit(item: ProbeItem, pattern: str) -> bool:
        return fnmatch.fnmatchcase(item.pair_id, pattern) or fnmatch.fnmatchcase(
            item.template_id, pattern
        )

    for pattern in [*(include or []), *(exclude or [])]:
        if not any(hit(it, pattern) for it in items):
            known = ", ".join(dict.fromkeys(it.template_id for it in items))
            raise UsageError(f"pair pattern {pattern!r} matches no pair (pairs: {known})")
    kept = [
        it
        for it in items
        if (not include or any(hit(it, p) for p in include))
        and not any(hit(it, p) for p in exclude or [])
    ]
    if not kept:
        raise UsageError("the --pairs/--exclude patterns leave no pair to run")
    return kept


def _versions() -> dict[str, str]:
    out = {"biasprobe": __version__, "python": platform.python_version()}
    for mod in ("torch", "transformers", "numpy", "pandas"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - optional
            out[mod] = "not installed"
    return out


def items_table(items: Sequence[ProbeItem]) -> pd.DataFrame:
    """One row per (pair, side) describing the expanded probe pairs."""
    rows = []
    for it in items:
        fills = "; ".join(f"{slot}={words}" for slot, words in it.fills)
        for s, side in enumerate(SIDES):
            rows.append(
                {
                    "pair_id": it.pair_id,
                    "template_id": it.template_id,
                    "side": side,
                    "group": it.groups[s],
                    "role": "minoritized" if s == it.minoritized else "normative",
                    "template_sentence": it.sentences[s],
                    "fills": fills,
                    "source": it.source,
                }
            )
    return pd.DataFrame(rows)


def _with_source(err: BiasprobeError, item: ProbeItem) -> BiasprobeError:
    err.message = f"{item.source}: {err.message}"
    err.args = (err.message,)
    return err


def score_model(
    backend: MaskedLMBackend,
    items: Sequence[ProbeItem],
    *,
    top_k: int,
    progress: ProgressFn | None = None,
    chunk: int = 128,
) -> tuple[VocabLogProbs, list[dict], list[dict], list[dict]]:
    """Score every item with one backend.

    Returns:
        ``(logprobs, topk_rows, score_rows, target_rows)``.
    """
    texts = [[it.sentences[s].replace(MASK, backend.mask_token) for s in (0, 1)] for it in items]

    # Resolve every target word first: a word the vocabulary lacks fails before any compute.
    pieces: dict[tuple[int, int, str], list[int]] = {}
    for i, it in enumerate(items):
        for s in (0, 1):
            for word in it.targets:
                try:
                    pieces[(i, s, word)] = backend.target_pieces(texts[i][s], word)
                except BiasprobeError as e:
                    raise _with_source(e, it) from None

    unique = list(dict.fromkeys(t for pair in texts for t in pair))
    parts = []
    for start in range(0, len(unique), chunk):
        parts.append(backend.mask_logprobs(unique[start : start + chunk]))
        if progress:
            progress(backend.name, "score", min(start + chunk, len(unique)), len(unique))
    matrix = (
        np.concatenate(parts, axis=0) if parts else np.empty((0, len(backend.vocab)), np.float32)
    )
    table = VocabLogProbs(tuple(unique), matrix, tuple(backend.vocab))

    multi = [(key, p) for key, p in pieces.items() if len(p) > 1]
    chained = backend.chain_logprobs([(texts[i][s], p) for (i, s, _), p in multi]) if multi else []
    target_lp = {key: float(v) for (key, _), v in zip(multi, chained)}
    for key, p in pieces.items():
        if len(p) == 1:
            i, s, _ = key
            target_lp[key] = float(table.row(texts[i][s])[p[0]])

    vocab = backend.vocab
    topk_rows: list[dict] = []
    score_rows: list[dict] = []
    target_rows: list[dict] = []
    for i, it in enumerate(items):
        lp = [table.row(texts[i][0]), table.row(texts[i][1])]
        tlp = None
        if it.targets:
            tlp = np.array([[target_lp[(i, s, w)] for w in it.targets] for s in (0, 1)])
        row = pair_scores(lp[0], lp[1], k=top_k, minoritized=it.minoritized, target_logprobs=tlp)
        ex_a = row.pop("exclusive_a_ids")
        ex_b = row.pop("exclusive_b_ids")
        tops = []
        for s, side in enumerate(SIDES):
            order = topk(lp[s], top_k)[0]
            tops.append(order)
            for rank, tid in enumerate(order, start=1):
                topk_rows.append(
                    {
                        "model": backend.name,
                        "pair_id": it.pair_id,
                        "template_id": it.template_id,
                        "side": side,
                        "group": it.groups[s],
                        "role": "minoritized" if s == it.minoritized else "normative",
                        "sentence": texts[i][s],
                        "rank": rank,
                        "token": vocab[tid],
                        "token_id": int(tid),
                        "logprob": float(lp[s][tid]),
                    }
                )
            for w in it.targets:
                target_rows.append(
                    {
                        "model": backend.name,
                        "pair_id": it.pair_id,
                        "template_id": it.template_id,
                        "side": side,
                        "group": it.groups[s],
                        "target": w,
                        "n_pieces": len(pieces[(i, s, w)]),
                        "logprob": target_lp[(i, s, w)],
                    }
                )
        score_rows.append(
            {
                "model": backend.name,
                "pair_id": it.pair_id,
                "template_id": it.template_id,
                "group_a": it.groups[0],
                "group_b": it.groups[1],
                "minoritized_group": it.groups[it.minoritized],
                **row,
                "top_a": " ".join(vocab[t] for t in tops[0]),
                "top_b": " ".join(vocab[t] for t in tops[1]),
                "exclusive_a": " ".join(vocab[t] for t in ex_a),
                "exclusive_b": " ".join(vocab[t] for t in ex_b),
            }
        )
    return table, topk_rows, score_rows, target_rows


def run(
    probe_set: ProbeSet,
    models: Sequence[str | MaskedLMBackend] | None = None,
    *,
    top_k: int | None = None,
    device: str | None = None,
    batch_size: int = 32,
    revision: str | None = None,
    seed: int = 0,
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    pairs: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    trust_remote_code: bool = False,
    progress: ProgressFn | None = None,
) -> RunResult:
    """Run a probe set on models and return every table.

    Args:
        probe_set: from :func:`biasprobe.load_probe_set`.
        models: hub ids, local folders, ``recorded:DIR`` specs or loaded backends; defaults
            to the probe set's ``models``. The first is the base for comparisons.
        top_k: depth of the top-k lists (default: the probe set's ``top_k``, else 10).
        device: ``auto``/``cpu``/``cuda``/``cuda:N``/``mps``.
        batch_size: sentences per forward pass.
        revision: hub revision for every hub model (``name@rev`` sets one per model).
        seed: seeds torch and the bootstrap.
        n_bootstrap: bootstrap resamples for confidence intervals.
        confidence: confidence level of the intervals.
        pairs: keep only pairs matching these globs (pair or template id).
        exclude: drop pairs matching these globs.
        trust_remote_code: allow custom model code from model repositories.
        progress: optional callback ``(model, stage, done, total)``.

    Raises:
        BiasprobeError: any user-facing problem (model, device, vocabulary, ...).
    """
    import torch

    specs = list(models) if models else list(probe_set.models)
    if not specs:
        raise UsageError(f"no model to run: pass --model, or list models: in {probe_set.path}")
    names = [m if isinstance(m, str) else m.name for m in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"model given twice: {', '.join(dupes)}")
    k = int(top_k if top_k is not None else (probe_set.top_k or DEFAULT_TOP_K))
    if k < 1:
        raise UsageError(f"top-k must be at least 1, got {k}")
    items = select_items(probe_set.items, pairs, exclude)
    torch.manual_seed(seed)

    all_topk: list[dict] = []
    all_scores: list[dict] = []
    all_targets: list[dict] = []
    logprobs: dict[str, VocabLogProbs] = {}
    model_meta: list[dict[str, Any]] = []
    for spec in specs:
        name = spec if isinstance(spec, str) else spec.name
        if progress:
            progress(name, "load", 0, 1)
        backend = (
            load_backend(
                spec,
                device=device,
                revision=revision,
                batch_size=batch_size,
                trust_remote_code=trust_remote_code,
            )
            if isinstance(spec, str)
            else spec
        )
        if progress:
            progress(name, "load", 1, 1)
        try:
            table, t_rows, s_rows, g_rows = score_model(backend, items, top_k=k, progress=progress)
        finally:
            if isinstance(spec, str):
                backend.close()
        logprobs[backend.name] = table
        all_topk += t_rows
        all_scores += s_rows
        all_targets += g_rows
        model_meta.append(
            {
                "name": backend.name,
                "slug": model_slug(backend.name),
                "mask_token": backend.mask_token,
                "vocab_size": len(backend.vocab),
                "info": backend.info,
            }
        )

    scores = pd.DataFrame(all_scores)
    summary = summarize(
        scores, set_name=probe_set.name, n_resamples=n_bootstrap, confidence=confidence, seed=seed
    )
    target_cols = [
        "model",
        "pair_id",
        "template_id",
        "side",
        "group",
        "target",
        "n_pieces",
        "logprob",
    ]
    now = _dt.datetime.now(_dt.timezone.utc)
    meta = {
        "run_id": f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
        "created": now.isoformat(timespec="seconds"),
        "probe_set": {
            "name": probe_set.name,
            "version": probe_set.version,
            "description": probe_set.description,
            "source": probe_set.source,
            "path": probe_set.path,
            "sha256": probe_set.sha256,
            "n_pairs": len(items),
            "pairs_selected": {"include": list(pairs or []), "exclude": list(exclude or [])},
        },
        "models": model_meta,
        "settings": {
            "top_k": k,
            "device": device or "auto",
            "batch_size": batch_size,
            "seed": seed,
            "bootstrap_resamples": n_bootstrap,
            "confidence": confidence,
            "rbo_p": 0.9,
            "multi_piece_targets": "chain rule over consecutive masks, left to right",
        },
        "versions": _versions(),
    }
    return RunResult(
        meta=meta,
        items=items_table(items),
        topk=pd.DataFrame(all_topk),
        scores=scores,
        summary=summary,
        targets=pd.DataFrame(all_targets, columns=target_cols),
        logprobs=logprobs,
    )


__all__ = ["run", "score_model", "select_items", "items_table"]
