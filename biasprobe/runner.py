"""Run a probe set on one or more models and record models' outputs.

:func:`run` is the fill-mask task (:mod:`biasprobe.tasks.fillmask`) through the one engine
(:mod:`biasprobe.engine`); its helpers are re-exported here for the callers that import them
from this module. :func:`record` writes a model's outputs on a probe set (or a run folder's
stored vectors) as a recorded model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biasprobe.backends import load_backend, resolve_spec
from biasprobe.engine import split_alias
from biasprobe.errors import UsageError
from biasprobe.probes import MASK
from biasprobe.results import (
    PairStore,
    VocabLogProbs,
)
from biasprobe.tasks.fillmask import (
    DEFAULT_TOP_K,
    check_options,
    check_store,
    items_table,
    run,
    select_items,
)
from biasprobe.tasks.fillmask_scoring import (
    SIDES,
    TARGET_COLUMNS,
    ProgressFn,
    Scored,
    check_items,
    score_model,
)

__all__ = [
    "DEFAULT_TOP_K",
    "SIDES",
    "TARGET_COLUMNS",
    "ProgressFn",
    "Recording",
    "Scored",
    "check_items",
    "check_options",
    "check_store",
    "items_table",
    "record",
    "run",
    "score_model",
    "select_items",
    "split_alias",
]


@dataclass(frozen=True)
class Recording:
    """What :func:`record` wrote.

    Attributes:
        folder: the recorded-model folder.
        model: the original model's name.
        n_sentences: outputs at the mask (one per distinct sentence).
        n_targets: target words at their sentences (with their pieces).
        n_multi_piece: of which split into several pieces (chain-rule log-probs).
        n_priors: prior log-probs (attribute pairs).
    """

    folder: Path
    model: str
    n_sentences: int
    n_targets: int
    n_multi_piece: int
    n_priors: int


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
) -> Recording:
    """Record everything a probe set asks of a model into a recorded-model folder (format 2):
    the full-vocabulary outputs at the mask, the pieces of every target word with the chain-rule
    log-prob of those of several pieces, and the prior log-probs of attribute pairs.

    ``source`` is a probe file (the model answers every request a run of the selected pairs
    makes, in the same batches) or a fill-mask run folder (what the run stored is reused, no
    model runs). ``--model recorded:DIR`` replays the folder: the run's ``scores.csv``,
    ``targets.csv`` and ``summary.csv`` come out identical, apart from the model column.
    ``cache`` is the result cache of a live model, as for :func:`run`.

    Raises:
        UsageError: no or several models to choose from, a counterfactual probe set, a run
            folder of another kind or one that lacks what a recording needs (the message says
            what, and to record from the probe file instead).
        OutputError: the folder exists.
    """
    from biasprobe import fsio
    from biasprobe.backends.recorded import Recorder
    from biasprobe.probes import load_probe_set
    from biasprobe.results import RESULTS_JSON

    check_options(top_k=None, batch_size=batch_size, seed=0, n_bootstrap=100)
    source = Path(source)
    if (source / RESULTS_JSON).is_file():
        if pairs or exclude:
            raise UsageError(
                f"{source} is a run folder: it is recorded whole (its pairs were chosen when it "
                "ran); --pairs/--exclude select pairs of a probe file"
            )
        return _record_run_folder(source, Path(out), model)
    probe_set = load_probe_set(source)
    kind = getattr(probe_set, "kind", "fill-mask")
    if kind != "fill-mask":
        raise UsageError(
            f"{probe_set.path} is a {kind} probe set: its sentences have no [MASK] and are "
            "scored by sentiment classifiers, while biasprobe record records a masked language "
            f"model's outputs at the mask. Run it on the classifier itself (biasprobe run "
            f"{probe_set.path} -m CLASSIFIER)"
        )
    name = _one_model(list(probe_set.models), model, str(source))
    items = select_items(probe_set.items, pairs, exclude)
    fsio.check_output_folder(Path(out), False, kinds=("recording",), what="recording")
    spec = resolve_spec(name, revision=revision)
    from biasprobe.backends.cached import open_cache, wrap

    store = open_cache(cache, spec.source is not None)
    load = {"device": device, "batch_size": batch_size, "trust_remote_code": trust_remote_code}
    backend = wrap(load_backend(spec, **load), store)
    try:
        recorder = Recorder(backend)
        score_model(recorder, items, top_k=min(DEFAULT_TOP_K, len(backend.vocab)), store=None)
        info = backend.info
        original = _original_name(name, info)
        written = recorder.write(
            out,
            model=original,
            source=(
                f"biasprobe record of {name} (commit {info.get('commit_hash') or 'n/a'}, "
                f"path {info.get('path')}, batch size {batch_size}) on {probe_set.path}"
            ),
            hf_tokenizer=backend.tokenizer,
            model_info=info,
        )
    finally:
        backend.close()
        if store is not cache and not isinstance(store, str):  # opened here
            store.close()
    pieces = recorder.requests.pieces
    return Recording(
        written,
        original,
        len(recorder.masks),
        len(pieces),
        sum(len(p) > 1 for p in pieces.values()),
        len(recorder.requests.priors),
    )


def _original_name(name: str, info: Mapping[str, Any]) -> str:
    """The model's name, or the original model's for a recording recorded again."""
    if info.get("source") == "recorded" and info.get("model"):
        return str(info["model"])
    return name


_FROM_PROBE_FILE = (
    "record from the probe file instead (biasprobe record PROBE_FILE -m MODEL -o DIR)"
)


def _record_run_folder(source: Path, out: Path, model: str | None) -> Recording:
    """:func:`record` from a fill-mask run folder: its stored vectors, targets.csv (pieces,
    chain-rule and prior log-probs) and items.csv (prior sentences)."""
    from biasprobe import fsio
    from biasprobe.backends.recorded import write_recorded
    from biasprobe.results import folder_kind, load_run

    kind = folder_kind(source)
    if kind != "fill-mask":
        raise UsageError(
            f"{source} is a {kind} run folder; biasprobe record takes a fill-mask run folder "
            "(biasprobe run on a masked language model) or a probe file"
        )
    fsio.check_output_folder(out, False, kinds=("recording",), what="recording")
    result = load_run(source)
    name = _one_model(result.models, model, str(source))
    if name not in result.logprobs:
        raise UsageError(f"{source} has no model {name!r}; it has {result.models}")
    if result.stored_top_n(name) is not None:
        raise UsageError(
            f"{source} stored the top {result.stored_top_n(name)} tokens per sentence of "
            f"{name!r} (the default --store topn), and a recording needs every sentence's "
            f"full-vocabulary vector: {_FROM_PROBE_FILE}, or run the set again with "
            "--store full and record that run folder"
        )
    table = result.logprobs[name]
    if isinstance(table, PairStore):
        table = table.to_table()
    card = next((m for m in result.meta.get("models", []) if m.get("name") == name), None)
    if card is None or not isinstance(card.get("mask_token"), str):
        from biasprobe.errors import RunFolderError

        raise RunFolderError(
            f"{source}/results.json: models holds no entry with the mask token of {name!r}"
        )
    topk = result.topk[result.topk["model"] == name]
    sentence_of = {
        (str(p), str(s)): str(t) for p, s, t in zip(topk["pair_id"], topk["side"], topk["sentence"])
    }
    targets = result.targets[result.targets["model"] == name]
    entries = _run_targets(source, targets, table, sentence_of)
    priors = _run_priors(source, targets, result.items, card["mask_token"])
    info = card.get("info") or {}
    original = _original_name(name, info)
    written = write_recorded(
        out,
        model=original,
        sentences=table.sentences,
        logprobs=table.logprobs,
        vocab=table.vocab,
        mask_token=card["mask_token"],
        source=(
            f"biasprobe run {result.meta.get('run_id')} ({source}; commit "
            f"{info.get('commit_hash') or 'n/a'})"
        ),
        targets=entries,
        priors=priors,
        model_info=info,
    )
    n_multi = sum(len(e["pieces"]) > 1 for e in entries)
    return Recording(written, original, len(table.sentences), len(entries), n_multi, len(priors))


def _run_targets(
    source: Path, targets: pd.DataFrame, table: VocabLogProbs, sentence_of: dict
) -> list[dict[str, Any]]:
    """One recording entry per (sentence, target word) of a run's targets.csv.

    Pieces come from the ``piece_ids`` column; a run folder written before it existed still
    gives its single-piece targets (a whole vocabulary entry whose stored value matches).

    Raises:
        UsageError: a multi-piece target without piece ids.
        RunFolderError: targets.csv disagrees with topk.csv or the stored vectors.
    """
    from biasprobe.errors import RunFolderError

    has_ids = "piece_ids" in targets.columns
    out: dict[tuple[str, str], dict[str, Any]] = {}
    known = set(table.sentences)
    for row in targets.itertuples(index=False):
        where = (
            f"{source}/targets.csv, pair {row.pair_id!r}, side {row.side}, target {row.target!r}"
        )
        sentence = sentence_of.get((str(row.pair_id), str(row.side)))
        if sentence is None or sentence not in known:
            raise RunFolderError(
                f"{where}: topk.csv and logprobs/ hold no sentence for this pair and side"
            )
        try:
            word, n, value = str(row.target), int(row.n_pieces), float(row.logprob)
        except (TypeError, ValueError):
            raise RunFolderError(f"{where}: n_pieces or logprob is not a number") from None
        ids = str(row.piece_ids).split() if has_ids and isinstance(row.piece_ids, str) else []
        if ids:
            try:
                pieces = [int(p) for p in ids]
            except ValueError:
                raise RunFolderError(
                    f"{where}: piece_ids {row.piece_ids!r} are not token ids"
                ) from None
        elif n == 1:
            pieces = [i for i, t in enumerate(table.vocab) if t == word][:2]
            if len(pieces) != 1:
                raise UsageError(
                    f"{where}: targets.csv stores no piece ids (the run was written by an older "
                    f"biasprobe) and {word!r} is not one entry of the vocabulary; run the set "
                    f"again, or {_FROM_PROBE_FILE}"
                )
        else:
            raise UsageError(
                f"{where}: targets.csv stores no piece ids for this {n}-piece target (the run "
                "was written by an older biasprobe), and a recording needs them to replay the "
                f"chain rule; run the set again, or {_FROM_PROBE_FILE}"
            )
        if len(pieces) != n or not all(0 <= p < len(table.vocab) for p in pieces):
            raise RunFolderError(
                f"{where}: piece_ids {pieces} do not fit n_pieces {n} and a "
                f"{len(table.vocab)}-token vocabulary"
            )
        if n == 1 and float(table.row(sentence)[pieces[0]]) != value:
            raise RunFolderError(
                f"{where}: logprob {value!r} differs from the stored vector's value "
                f"{float(table.row(sentence)[pieces[0]])!r} for token {table.vocab[pieces[0]]!r}"
            )
        out.setdefault(
            (sentence, word),
            {"sentence": sentence, "word": word, "pieces": pieces, "logprob": value},
        )
    return list(out.values())


def _run_priors(
    source: Path, targets: pd.DataFrame, items: pd.DataFrame, mask_token: str
) -> list[dict[str, Any]]:
    """One recording entry per prior log-prob of a run's targets.csv; the prior sentence,
    attribute and target mask number come from items.csv.

    Raises:
        UsageError: items.csv has no prior sentences (a run written by an older biasprobe).
        RunFolderError: a prior log-prob whose pair has no prior sentence in items.csv.
    """
    from biasprobe.errors import RunFolderError

    rows = targets[targets["prior_logprob"].notna()]
    if rows.empty:
        return []
    if "prior_sentence" not in items.columns:
        first = rows.iloc[0]
        raise UsageError(
            f"{source} holds prior log-probs of attribute pairs (first: pair "
            f"{first['pair_id']!r}) but not their prior sentences (items.csv has no "
            "prior_sentence column: the run was written by an older biasprobe); run the set "
            f"again, or {_FROM_PROBE_FILE}"
        )
    by_side = {(str(r.pair_id), str(r.side)): r for r in items.itertuples(index=False)}
    out = []
    for row in rows.itertuples(index=False):
        item = by_side.get((str(row.pair_id), str(row.side)))
        index = getattr(item, "prior_mask_index", None)
        if not (
            item is not None
            and item.prior_sentence
            and item.attribute
            and isinstance(index, (int, float, np.number))
            and float(index).is_integer()
            and index >= 0
        ):
            raise RunFolderError(
                f"{source}/targets.csv, pair {row.pair_id!r}, side {row.side}: a prior log-prob "
                "whose pair has no prior sentence, attribute and target mask number in items.csv"
            )
        mask_index = int(index)
        out.append(
            {
                "prior_sentence": str(item.prior_sentence).replace(MASK, mask_token),
                "attribute": str(item.attribute),
                "mask_index": mask_index,
                "word": str(row.target),
                "logprob": float(row.prior_logprob),
                # the prior as scored (targets.csv of runs that keep it)
                "scored_sentence": (
                    row.prior_sentence
                    if isinstance(getattr(row, "prior_sentence", None), str)
                    else ""
                ),
            }
        )
    return out


def _one_model(names: Sequence[str], chosen: str | None, where: str) -> str:
    if chosen is not None:
        return chosen
    if len(names) != 1:
        raise UsageError(
            f"{where} holds {len(names)} models {list(names)}; record needs exactly one: "
            "choose it with --model"
        )
    return names[0]
