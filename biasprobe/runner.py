"""Run a probe set on one or more models and collect tidy results.

Glue only: expansion comes from :mod:`biasprobe.probes`, numbers from the backends, scores from
:mod:`biasprobe.scores`. The CLI and the Python API both call :func:`run`.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import platform
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biasprobe import __version__
from biasprobe.backends import MaskedLMBackend, ModelSpec, load_backend, resolve_spec
from biasprobe.errors import BiasprobeError, UsageError, VocabularyError
from biasprobe.probes import MASK, ProbeItem, ProbeSet
from biasprobe.results import RunResult, VocabLogProbs, model_slug
from biasprobe.scores import (
    RBO_P,
    SIGNED_SCORES,
    SUMMARY_SCORES,
    blank_skew_scores,
    kurita_bias,
    pair_scores,
    summarize,
    topk,
)

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
    """Installed versions, read from package metadata (importing torch just to ask is slow
    and the ``recorded:`` path must not import it)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"biasprobe": __version__, "python": platform.python_version()}
    for mod in ("torch", "transformers", "numpy", "pandas"):
        try:
            out[mod] = version(mod)
        except PackageNotFoundError:  # pragma: no cover - optional
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
    rbo_p: float = RBO_P,
    lexicon: Mapping[str, float] | None = None,
) -> tuple[VocabLogProbs, list[dict], list[dict], list[dict]]:
    """Score every item with one backend.

    With a valence ``lexicon`` ({word: valence}), each pair also gets the signed valence
    measures of :mod:`biasprobe.valence` (``valence_*`` columns, top-k depth ``top_k``).

    Returns:
        ``(logprobs, topk_rows, score_rows, target_rows)``.
    """
    texts = [[it.sentences[s].replace(MASK, backend.mask_token) for s in (0, 1)] for it in items]
    check_items(backend, items, texts)
    _check_priors(backend, items)
    pieces = _target_pieces(backend, items, texts)  # fails before any compute
    priors = _prior_requests(backend, items)
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
    target_lp = _target_logprobs(backend, table, texts, pieces)
    prior_lp = _prior_logprobs(backend, items, priors)
    rows: tuple[list[dict], list[dict], list[dict]] = ([], [], [])
    polarity = None
    if lexicon is not None:
        from biasprobe.valence import vocab_polarity

        polarity = vocab_polarity(backend.vocab, lexicon)
    for i, it in enumerate(items):
        lp = (table.row(texts[i][0]), table.row(texts[i][1]))
        tlp = None
        if it.targets:
            tlp = np.array([[target_lp[(i, s, w)] for w in it.targets] for s in (0, 1)])
        scores = pair_scores(
            lp[0], lp[1], k=top_k, minoritized=it.minoritized, target_logprobs=tlp, rbo_p=rbo_p
        )
        if polarity is not None:
            from biasprobe.valence import pair_valence, run_columns

            scores.update(run_columns(pair_valence(lp[0], lp[1], polarity, top_k, it.minoritized)))
        if it.attribute is not None:
            side = [target_lp[(i, s, it.targets[s])] for s in (0, 1)]
            blank_skew_scores(scores)
            scores["kurita_bias"] = kurita_bias(side, prior_lp[i], it.minoritized)
        else:
            scores["kurita_bias"] = float("nan")
        _pair_rows(backend, it, texts[i], lp, scores, top_k, pieces, target_lp, i, rows, prior_lp)
    return (table, *rows)


def _target_pieces(
    backend: MaskedLMBackend, items: Sequence[ProbeItem], texts: list[list[str]]
) -> dict[tuple[int, int, str], list[int]]:
    pieces: dict[tuple[int, int, str], list[int]] = {}
    for i, it in enumerate(items):
        for s in (0, 1):
            for word in it.targets:
                try:
                    pieces[(i, s, word)] = backend.target_pieces(texts[i][s], word)
                except BiasprobeError as e:
                    raise _with_source(e, it) from None
    return pieces


def _check_priors(backend: MaskedLMBackend, items: Sequence[ProbeItem]) -> None:
    """Attribute pairs need a backend that scores prior sentences (several masks)."""
    first = next((it for it in items if it.attribute is not None), None)
    if first is not None and not getattr(backend, "scores_priors", False):
        raise UsageError(
            f"{first.source}: pair {first.pair_id!r} declares an attribute (prior-normalised "
            f"score, Kurita et al. 2019), whose prior sentence {first.prior_sentences[0]!r} "
            f"has several masks; model {backend.name} cannot score it (recorded outputs hold "
            "one mask per sentence). Run the live model, or leave these pairs out with "
            "--exclude"
        )


def _prior_requests(
    backend: MaskedLMBackend, items: Sequence[ProbeItem]
) -> dict[int, list[tuple[str, str, int, str]]]:
    """Per attribute item: (prior sentence, attribute, target mask number, side's target)."""
    out: dict[int, list[tuple[str, str, int, str]]] = {}
    for i, it in enumerate(items):
        if it.attribute is None:
            continue
        out[i] = [
            (
                it.prior_sentences[s].replace(MASK, backend.mask_token),
                it.attribute,
                int(it.prior_mask_index),
                it.targets[s],
            )
            for s in (0, 1)
        ]
        prior_request = getattr(backend, "prior_request", None)
        if prior_request is not None:  # tokenize now: a bad word fails before any compute
            for r in out[i]:
                try:
                    prior_request(*r)
                except BiasprobeError as e:
                    raise _with_source(e, it) from None
    return out


def _prior_logprobs(backend, items, priors) -> dict[int, np.ndarray]:
    """log p(side's target | prior sentence), (2,) per attribute item."""
    if not priors:
        return {}
    keys = list(priors)
    flat = [r for i in keys for r in priors[i]]
    values = backend.prior_logprobs(flat)
    return {i: np.asarray(values[2 * n : 2 * n + 2], dtype=np.float64) for n, i in enumerate(keys)}


def _target_logprobs(backend, table, texts, pieces) -> dict[tuple[int, int, str], float]:
    """log p(target) per (item, side, word): read off the table for one piece, else the chain
    rule over consecutive masks."""
    multi = [(key, p) for key, p in pieces.items() if len(p) > 1]
    chained = backend.chain_logprobs([(texts[i][s], p) for (i, s, _), p in multi]) if multi else []
    target_lp = {key: float(v) for (key, _), v in zip(multi, chained)}
    for key, p in pieces.items():
        if len(p) == 1:
            i, s, _ = key
            target_lp[key] = float(table.row(texts[i][s])[p[0]])
    return target_lp


def _pair_rows(backend, it, texts, lp, row, top_k, pieces, target_lp, i, rows, prior_lp) -> None:
    """Append one pair's rows to ``rows`` = (topk rows, score rows, target rows)."""
    topk_rows, score_rows, target_rows = rows
    vocab = backend.vocab
    nan = float("nan")
    ex_a = row.pop("exclusive_a_ids")
    ex_b = row.pop("exclusive_b_ids")
    common = {"model": backend.name, "pair_id": it.pair_id, "template_id": it.template_id}
    tops = []
    for s, side in enumerate(SIDES):
        order = topk(lp[s], top_k)[0]
        tops.append(order)
        role = "minoritized" if s == it.minoritized else "normative"
        for rank, tid in enumerate(order, start=1):
            topk_rows.append(
                {
                    **common,
                    "side": side,
                    "group": it.groups[s],
                    "role": role,
                    "sentence": texts[s],
                    "rank": rank,
                    "token": vocab[tid],
                    "token_id": int(tid),
                    "logprob": float(lp[s][tid]),
                }
            )
        for w in it.targets:
            target_rows.append(
                {
                    **common,
                    "side": side,
                    "group": it.groups[s],
                    "target": w,
                    "n_pieces": len(pieces[(i, s, w)]),
                    "logprob": target_lp[(i, s, w)],
                    # log p(side's own target | prior sentence); NaN without an attribute
                    "prior_logprob": (
                        float(prior_lp[i][s]) if i in prior_lp and w == it.targets[s] else nan
                    ),
                }
            )
    score_rows.append(
        {
            **common,
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


#: Upper bounds of the options, checked before anything runs.
MAX_BOOTSTRAP = 100_000
MAX_SEED = 2**32 - 1


def check_options(*, top_k: int | None, batch_size: int, seed: int, n_bootstrap: int) -> None:
    """Refuse option values that cannot work, before any model is loaded.

    Raises:
        UsageError: naming the option and the accepted range.
    """
    checks = [
        ("--top-k", top_k, 1, None),
        ("--batch-size", batch_size, 1, None),
        ("--seed", seed, 0, MAX_SEED),
        ("--bootstrap", n_bootstrap, 100, MAX_BOOTSTRAP),
    ]
    for option, value, low, high in checks:
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{option} must be an integer, got {value!r}")
        if value < low or (high is not None and value > high):
            accepted = f"at least {low}" if high is None else f"from {low} to {high:,}"
            raise UsageError(f"{option} must be {accepted}, got {value}")


def resolve_models(
    probe_set: ProbeSet, models: Sequence[str | MaskedLMBackend] | None, revision: str | None
) -> list[ModelSpec | MaskedLMBackend]:
    """Find every model of a run (without loading weights) and refuse duplicates.

    Raises:
        UsageError: no model, or the same model twice (compared on resolved folders).
        ModelLoadError: a model cannot be found or its folder is incomplete.
    """
    specs = list(models) if models else list(probe_set.models)
    if not specs:
        raise UsageError(f"no model to run: pass --model, or list models: in {probe_set.path}")
    resolved = [resolve_spec(m, revision=revision) if isinstance(m, str) else m for m in specs]
    keys = [r.key if isinstance(r, ModelSpec) else f"backend:{r.name}" for r in resolved]
    names = [r.spec if isinstance(r, ModelSpec) else r.name for r in resolved]
    dupes = sorted({n for n, k in zip(names, keys) if keys.count(k) > 1 or names.count(n) > 1})
    if dupes:
        raise UsageError(f"model given twice: {', '.join(dupes)} (the same model)")
    return resolved


def check_items(backend: MaskedLMBackend, items: Sequence[ProbeItem], texts: list[list[str]]):
    """Refuse pairs a model cannot tell apart, before any forward pass.

    Raises:
        VocabularyError: a word of a sentence becomes the unknown token, or the two sides of a
            pair tokenize to identical ids (their skew would be 0 by construction).
    """
    ids = backend.token_ids([t for pair in texts for t in pair])
    if ids is None:
        return
    unk = getattr(backend, "unk_id", None)
    for i, it in enumerate(items):
        for s, side in enumerate(SIDES):
            if unk is not None and unk in ids[2 * i + s]:
                unknown = backend.unknown_words(texts[i][s])
                shown = ", ".join(repr(w) for w in unknown) or "a part of the sentence"
                raise VocabularyError(
                    f"{it.source}: pair {it.pair_id!r}, side {side} ({texts[i][s]!r}): {shown} "
                    f"become(s) the unknown token of model {backend.name}; the model cannot "
                    "read the word, so the pair would not measure it. Use another word or model"
                )
        # Attribute pairs share one sentence on purpose: the sides differ in the target word.
        if ids[2 * i] == ids[2 * i + 1] and it.attribute is None:
            raise VocabularyError(
                f"{it.source}: pair {it.pair_id!r}: both sides ({texts[i][0]!r} and "
                f"{texts[i][1]!r}) are the same input for model {backend.name} (identical "
                "token ids), so every skew score would be 0 by construction"
            )


def _score_one(
    spec: ModelSpec | MaskedLMBackend,
    items: Sequence[ProbeItem],
    *,
    k: int,
    load: dict[str, Any],
    progress: ProgressFn | None,
    lexicon: Mapping[str, float] | None = None,
    cache: Any = "disabled",
) -> tuple[MaskedLMBackend, tuple[VocabLogProbs, list[dict], list[dict], list[dict]]]:
    from biasprobe.backends.cached import OBJECT_REASON, wrap

    owned = isinstance(spec, ModelSpec)
    name = spec.spec if owned else spec.name
    if progress:
        progress(name, "load", 0, 1)
    backend = wrap(load_backend(spec, **load), cache) if owned else wrap(spec, OBJECT_REASON)
    if progress:
        progress(name, "load", 1, 1)
    try:
        if k > len(backend.vocab):
            raise UsageError(
                f"top-k {k} (--top-k, else the probe file's top_k) is larger than the "
                f"vocabulary of model {backend.name} ({len(backend.vocab)} tokens)"
            )
        return backend, score_model(
            backend, items, top_k=k, progress=progress, rbo_p=RBO_P, lexicon=lexicon
        )
    finally:
        if owned:
            backend.close()


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
    valence: bool = False,
    cache: Any = None,
) -> RunResult:
    """Run a probe set on models and return every table.

    Every model is found (and a local folder's config, weights and tokenizer files checked)
    before the first model is loaded, so a typo in the last ``--model`` fails at once.

    Args:
        probe_set: from :func:`biasprobe.load_probe_set`.
        models: hub ids, local folders, ``recorded:DIR`` specs or loaded backends; defaults
            to the probe set's ``models``. The first is the base for comparisons.
        top_k: top-k depth (default: the probe set's ``top_k``, else 10), at most the vocabulary.
        device: ``auto``/``cpu``/``cuda``/``cuda:N``/``mps``.
        batch_size: sentences per forward pass.
        revision: hub revision for every hub model (``name@rev`` sets one per model).
        seed: seeds torch and the bootstrap (0 … 2**32 − 1).
        n_bootstrap: bootstrap resamples for confidence intervals (100 … 100,000).
        confidence: confidence level of the intervals.
        pairs: keep only pairs matching these globs (pair or template id).
        exclude: drop pairs matching these globs.
        trust_remote_code: allow custom model code from model repositories.
        progress: optional callback ``(model, stage, done, total)``.
        valence: also score the valence of completions (:mod:`biasprobe.valence`, VADER
            lexicon; needs the optional ``vaderSentiment``): signed ``valence_*`` columns in
            ``scores`` and their aggregates in ``summary``.
        cache: the result cache of the models this run loads (:mod:`biasprobe.cache`): None
            for the default folder, a folder, or False for none.

    Raises:
        BiasprobeError: any user-facing problem (model, device, vocabulary, ...).
    """
    if getattr(probe_set, "kind", "fill-mask") != "fill-mask":
        raise UsageError(
            f"{probe_set.path}: a {probe_set.kind} probe set has no [MASK] to fill; run it on "
            "sentiment classifiers (biasprobe.downstream.run_downstream, or `biasprobe run` "
            "with classifier models)"
        )
    k = int(top_k if top_k is not None else (probe_set.top_k or DEFAULT_TOP_K))
    check_options(top_k=k, batch_size=batch_size, seed=seed, n_bootstrap=n_bootstrap)
    items = select_items(probe_set.items, pairs, exclude)
    lexicon = None
    if valence:
        from biasprobe.valence import load_vader_lexicon

        lexicon = load_vader_lexicon()  # fails before any model is loaded
    resolved = resolve_models(probe_set, models, revision)
    if any(isinstance(r, ModelSpec) and r.source is not None for r in resolved):
        import torch  # only live models need it; recorded outputs never import torch

        torch.manual_seed(seed)
    load = {"device": device, "batch_size": batch_size, "trust_remote_code": trust_remote_code}
    settings = {"k": k, "device": device, "batch_size": batch_size, "seed": seed}
    settings.update(n_bootstrap=n_bootstrap, confidence=confidence, valence=valence)
    from biasprobe.backends.cached import open_cache

    store = open_cache(cache, any(isinstance(r, ModelSpec) and r.source for r in resolved))
    try:
        rows, logprobs, model_meta = _score_all(
            resolved, items, k=k, load=load, progress=progress, lexicon=lexicon, cache=store
        )
    finally:
        if store is not cache and not isinstance(store, str):  # opened here
            store.close()
    scores = pd.DataFrame(rows["scores"])
    boot = {"n_resamples": n_bootstrap, "confidence": confidence, "seed": seed}
    summary = _summary(scores, probe_set.name, valence=valence, **boot)
    return RunResult(
        meta=_meta(probe_set, items, pairs, exclude, model_meta, _settings(**settings)),
        items=items_table(items),
        topk=pd.DataFrame(rows["topk"]),
        scores=scores,
        summary=summary,
        targets=pd.DataFrame(rows["targets"], columns=TARGET_COLUMNS),
        logprobs=logprobs,
    )


def _score_all(
    resolved: Sequence[Any], items: Any, **kw: Any
) -> tuple[dict[str, list[dict]], dict[str, VocabLogProbs], list[dict[str, Any]]]:
    """Every model in turn (:func:`_score_one`): the rows of the topk, scores and targets
    tables, each model's log-prob table and its model card."""
    rows: dict[str, list[dict]] = {"topk": [], "scores": [], "targets": []}
    logprobs: dict[str, VocabLogProbs] = {}
    model_meta: list[dict[str, Any]] = []
    for spec in resolved:
        backend, (table, t_rows, s_rows, g_rows) = _score_one(spec, items, **kw)
        logprobs[backend.name] = table
        for key, new in zip(("topk", "scores", "targets"), (t_rows, s_rows, g_rows)):
            rows[key] += new
        model_meta.append(_model_card(backend))
    return rows, logprobs, model_meta


def _summary(scores: pd.DataFrame, set_name: str, *, valence: bool, **boot: Any) -> pd.DataFrame:
    """The summary table of every score (and the valence columns when scored)."""
    names, signed = SUMMARY_SCORES, SIGNED_SCORES
    if valence:
        from biasprobe.valence import RUN_COLUMNS

        names, signed = (*names, *RUN_COLUMNS), (*signed, *RUN_COLUMNS)
    return summarize(scores, set_name=set_name, score_names=names, signed=signed, **boot)


TARGET_COLUMNS = [
    "model",
    "pair_id",
    "template_id",
    "side",
    "group",
    "target",
    "n_pieces",
    "logprob",
    "prior_logprob",
]


def _settings(*, k, device, batch_size, seed, n_bootstrap, confidence, valence) -> dict[str, Any]:
    out = {
        "top_k": k,
        "device": device or "auto",
        "batch_size": batch_size,
        "seed": seed,
        "bootstrap_resamples": n_bootstrap,
        "confidence": confidence,
        "rbo_p": RBO_P,  # the value score_model is given (_score_one)
        "multi_piece_targets": "chain rule over consecutive masks, left to right",
        "p_values": "sign-flip test, 10,000 flips (exact up to 16 values); set: template means",
    }
    if valence:
        from importlib.metadata import version

        out["valence"] = {
            "lexicon": f"VADER (vaderSentiment {version('vaderSentiment')}, MIT licence)",
            "threshold": 0.0,
            "top_k": k,
        }
    return out


def _model_card(backend: MaskedLMBackend) -> dict[str, Any]:
    return {
        "name": backend.name,
        "slug": model_slug(backend.name),
        "mask_token": backend.mask_token,
        "vocab_size": len(backend.vocab),
        "info": backend.info,
    }


def _meta(probe_set, items, pairs, exclude, model_meta, settings) -> dict[str, Any]:
    now = _dt.datetime.now(_dt.timezone.utc)
    return {
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
        "settings": settings,
        "versions": _versions(),
    }


def record(
    source: str | Path,
    out: str | Path,
    *,
    model: str | None = None,
    pairs: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    device: str | None = None,
    batch_size: int = 32,
    revision: str | None = None,
    trust_remote_code: bool = False,
    cache: Any = None,
) -> tuple[Path, str, int]:
    """Record a model's full-vocabulary outputs at the mask into a recorded-model folder.

    ``source`` is a run folder (its stored log-probs are reused, no model runs) or a probe file
    (the model scores every distinct sentence of the selected pairs). Replay the folder with
    ``--model recorded:DIR``.

    ``cache`` is the result cache of a live model, as for :func:`run`.

    Returns:
        ``(folder, model name, number of sentences)``.

    Raises:
        UsageError: no or several models to choose from, or the folder exists.
    """
    from biasprobe.backends.recorded import write_recorded
    from biasprobe.probes import load_probe_set
    from biasprobe.results import RESULTS_JSON, load_run

    check_options(top_k=None, batch_size=batch_size, seed=0, n_bootstrap=100)
    source = Path(source)
    if (source / RESULTS_JSON).is_file():
        result = load_run(source)
        name = _one_model(result.models, model, str(source))
        if name not in result.logprobs:
            raise UsageError(f"{source} has no model {name!r}; it has {result.models}")
        table = result.logprobs[name]
        card = next(m for m in result.meta["models"] if m["name"] == name)
        written = write_recorded(
            out,
            model=name,
            sentences=table.sentences,
            logprobs=table.logprobs,
            vocab=table.vocab,
            mask_token=card["mask_token"],
            source=f"biasprobe run {result.meta.get('run_id')} ({source})",
        )
        return written, name, len(table.sentences)
    probe_set = load_probe_set(source)
    name = _one_model(list(probe_set.models), model, str(source))
    items = select_items(probe_set.items, pairs, exclude)
    from biasprobe import fsio

    fsio.check_output_folder(Path(out), False, kinds=("recording",), what="recording")
    spec = resolve_spec(name, revision=revision)
    from biasprobe.backends.cached import open_cache, wrap

    store = open_cache(cache, spec.source is not None)
    load = {"device": device, "batch_size": batch_size, "trust_remote_code": trust_remote_code}
    backend = wrap(load_backend(spec, **load), store)
    try:
        texts = [[s.replace(MASK, backend.mask_token) for s in it.sentences] for it in items]
        check_items(backend, items, texts)
        sentences = list(dict.fromkeys(t for pair in texts for t in pair))
        info = backend.info
        written = write_recorded(
            out,
            model=name,
            sentences=sentences,
            logprobs=backend.mask_logprobs(sentences),
            vocab=backend.vocab,
            mask_token=backend.mask_token,
            source=(
                f"biasprobe record of {name} (commit {info.get('commit_hash') or 'n/a'}, "
                f"path {info.get('path')}) on {probe_set.path}"
            ),
            hf_tokenizer=getattr(backend, "tokenizer", None),
        )
    finally:
        backend.close()
        if store is not cache and not isinstance(store, str):  # opened here
            store.close()
    return written, name, len(sentences)


def _one_model(names: Sequence[str], chosen: str | None, where: str) -> str:
    if chosen is not None:
        return chosen
    if len(names) != 1:
        raise UsageError(
            f"{where} holds {len(names)} models {list(names)}; record needs exactly one: "
            "choose it with --model"
        )
    return names[0]


__all__ = ["check_options", "items_table", "record", "run", "score_model", "select_items"]
