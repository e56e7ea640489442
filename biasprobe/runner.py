"""Run a probe set on one or more models and collect tidy results.

Glue only: expansion comes from :mod:`biasprobe.probes`, numbers from the backends, scores from
:mod:`biasprobe.scores`. The CLI and the Python API both call :func:`run`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import os
import re
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biasprobe.backends import MaskedLMBackend, ModelSpec, load_backend, resolve_spec
from biasprobe.errors import BiasprobeError, UsageError, VocabularyError
from biasprobe.probes import MASK, ProbeItem, ProbeSet
from biasprobe.results import (
    BASE_EXTRA,
    DEFAULT_STORE_TOP_N,
    STORE_MODES,
    PairStore,
    PairStoreWriter,
    RunResult,
    VocabLogProbs,
    model_slug,
)
from biasprobe.runfolders.schema import COMPARISON_COLUMNS, head, leading, model_block
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

#: progress(model, stage, done, total); stage is "load" (0 of 1, then 1 of 1), "score" (masked
#: sentences), "targets" (forward inputs of multi-piece targets) or "priors" (inputs of the
#: prior sentences); updated after every forward batch where the backend reports batches.
#: With the result cache, "cached" is reported once before scoring: ``done`` = pairs served
#: from the cache (a finished or interrupted earlier run), ``total`` = the model's pairs.
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


def items_table(items: Sequence[ProbeItem]) -> pd.DataFrame:
    """One row per (pair, side) describing the expanded probe pairs (built column by column:
    a suite of 100,000 pairs makes 200,000 rows)."""
    cols: dict[str, list[Any]] = {
        name: []
        for name in (
            "pair_id",
            "template_id",
            "side",
            "group",
            "role",
            "template_sentence",
            "fills",
            "source",
            "attribute",
            "prior_sentence",
            "prior_mask_index",
        )
    }
    for it in items:
        fills = "; ".join(f"{slot}={words}" for slot, words in it.fills)
        for s, side in enumerate(SIDES):
            cols["pair_id"].append(it.pair_id)
            cols["template_id"].append(it.template_id)
            cols["side"].append(side)
            cols["group"].append(it.groups[s])
            cols["role"].append("minoritized" if s == it.minoritized else "normative")
            cols["template_sentence"].append(it.sentences[s])
            cols["fills"].append(fills)
            cols["source"].append(it.source)
            # the prior sentence of prior-normalised scores (empty without an attribute)
            cols["attribute"].append(it.attribute or "")
            cols["prior_sentence"].append(it.prior_sentences[s] if it.prior_sentences else "")
            cols["prior_mask_index"].append(it.prior_mask_index)
    return pd.DataFrame(cols)


def _with_source(err: BiasprobeError, item: ProbeItem) -> BiasprobeError:
    err.message = f"{item.source}: {err.message}"
    err.args = (err.message,)
    return err


#: Distinct sentences per mask request of :func:`score_model` (the batches of a request decide
#: the last bits of a float32 result, so this stays what earlier versions used).
SENTENCE_CHUNK = 128
#: Sentence vectors held in memory for pairs still to come (sentences shared by distant pairs);
#: beyond it they wait in a temporary file, so memory never grows with the suite.
HELD_LIMIT = 512


@dataclass
class Scored:
    """What :func:`score_model` returns for one model.

    Attributes:
        store: the stored log-probs (None when ``store=None`` was asked: nothing kept).
        topk: the model's rows of ``topk.csv``; ``scores``, ``targets``: likewise.
    """

    store: PairStore | None
    topk: pd.DataFrame
    scores: pd.DataFrame
    targets: pd.DataFrame


def score_model(
    backend: MaskedLMBackend,
    items: Sequence[ProbeItem],
    *,
    top_k: int,
    progress: ProgressFn | None = None,
    chunk: int | None = None,
    rbo_p: float = RBO_P,
    lexicon: Mapping[str, float] | None = None,
    store: str | None = "topn",
    store_top_n: int = DEFAULT_STORE_TOP_N,
    base: PairStore | None = None,
    base_identity: str | None = None,
    depth: int | None = None,
    workdir: str | Path | None = None,
) -> Scored:
    """Score every item with one backend, streaming: never more than one request's vectors
    (``chunk`` distinct sentences) and those of sentences that later pairs share are held.

    Each pair is scored from its two full-vocabulary vectors as soon as both are computed (the
    skew scores, Jensen–Shannon, the valence masses, the single-piece targets), then reduced to
    what ``store`` keeps and dropped; its rows go to compact per-request tables.

    With a result cache (a :class:`~biasprobe.backends.cached.CachedMaskedLM` with a store)
    and ``store`` other than ``"full"``, every finished pair is also kept in the cache as a
    reduced record (its scores, top-k lists, target log-probs and what the store keeps of it),
    committed once per chunk together with the removal of the full vectors no later pair
    needs; a pair whose record is there is served from it and needs no vector at all. Chunks
    of sentences (and of chain-rule and prior requests) are fixed by the whole item list, and
    one is computed whole whenever any pair still needs it, so that the numbers are those of
    an uninterrupted run.

    With a valence ``lexicon`` ({word: valence}), each pair also gets the signed valence
    measures of :mod:`biasprobe.valence` (``valence_*`` columns, top-k depth ``top_k``).

    Args:
        store: ``"topn"`` (each pair's union of both sides' top ``store_top_n`` tokens),
            ``"full"`` (every distinct sentence's vector) or None (keep nothing).
        base: the first model's store of the same run: its top-300 tokens of each side are
            kept too (``"topn"``), so comparisons over them stay exact.
        base_identity: the cache identity of the model of ``base`` (part of a pair record's
            key, since ``base`` decides which tokens are kept); with a ``base`` and none,
            no pair records are used.
        depth: top-N of this model's own union, when larger than ``store_top_n`` (the base of
            a run of several models keeps its top 300).
        workdir: folder for the store's shards (default: a temporary folder removed when the
            store is no longer used).
    """
    chunk = int(chunk or SENTENCE_CHUNK)
    texts = [[it.sentences[s].replace(MASK, backend.mask_token) for s in (0, 1)] for it in items]
    check_items(backend, items, texts)
    _check_priors(backend, items)
    _check_recorded(backend, items, texts)
    pieces = _target_pieces(backend, items, texts)  # fails before any compute
    priors = _prior_requests(backend, items)
    scored_priors = _prior_texts(backend, priors)
    writer = _writer(backend, store, store_top_n, depth, workdir)
    cached = _PairCache.open(backend, store, base is not None, base_identity)
    keys: list[bytes] = []
    hit = np.zeros(len(items), dtype=bool)
    if cached is not None:
        setting = cached.setting(top_k, rbo_p, lexicon, store, writer, base_identity)
        keys = [cached.key(setting, it, texts[i], pieces, i, priors) for i, it in enumerate(items)]
        present = cached.backend.pairs_present(keys)
        hit = np.array([k in present for k in keys], dtype=bool)
        if progress:
            progress(backend.name, "cached", int(hit.sum()), len(items))
    index: dict[str, int] = {}
    for pair in texts:
        for t in pair:
            index.setdefault(t, len(index))
    unique = list(index)
    where = np.array([[index[t] for t in pair] for pair in texts], dtype=np.int64).reshape(-1, 2)
    todo = np.flatnonzero(~hit)
    chained = _chain_logprobs(backend, texts, pieces, ~hit, progress)
    with _batches(backend, _stage(progress, backend.name, "priors")):
        prior_lp = _prior_logprobs(backend, items, priors, ~hit)
    polarity = None
    if lexicon is not None:
        from biasprobe.valence import vocab_polarity

        polarity = vocab_polarity(backend.vocab, lexicon)
    needed = np.zeros(len(unique), dtype=bool)
    needed[where[todo].reshape(-1)] = True
    last_use = np.full(len(unique), -1, dtype=np.int64)  # last pair still to compute, per sentence
    np.maximum.at(last_use, where[todo].reshape(-1), np.repeat(todo, 2))
    last_any = np.full(len(unique), -1, dtype=np.int64)  # last pair of the run, per sentence
    np.maximum.at(last_any, where.reshape(-1), np.repeat(np.arange(len(items)), 2))
    # pair i can be scored once every sentence up to ready[i] is computed (a cached pair: none)
    need = where.max(axis=1) if len(items) else where[:, 0]
    need[hit] = -1
    ready = np.maximum.accumulate(need) if len(items) else need
    held = _Held(len(backend.vocab))
    # pairs already served from records: a resumed run (its needed sentences may be stored)
    resuming = bool(hit.any()) and hasattr(backend, "stored_masks")
    # topk.csv's rows, 2 × top_k per pair, filled in place; the other tables per request
    top = _TopkColumns(len(items), min(top_k, len(backend.vocab)))
    parts: dict[str, _Frames] = {"scores": _Frames(), "targets": _Frames()}
    done = 0
    if progress:
        progress(backend.name, "score", 0, len(unique))
    try:
        for start in range(0, len(unique), chunk):
            stop = min(start + chunk, len(unique))
            stored = None
            if needed[start:stop].any() and resuming:
                # A resumed run: the sentences this chunk still needs (shared with unfinished
                # pairs) may all be stored as computed; then nothing is computed for it.
                want = [j for j in range(start, stop) if last_use[j] >= 0]
                stored = backend.stored_masks([unique[j] for j in want])
                if stored is not None:
                    for n, j in enumerate(want):
                        held.put(j, stored[n])
                    del stored
                    stored = True
            if needed[start:stop].any() and stored is None:
                # computed whole: the batches of an uninterrupted run
                step = _stage(progress, backend.name, "score", offset=start, total=len(unique))
                with _batches(backend, step):
                    block = backend.mask_logprobs(unique[start:stop])
                for j in range(len(block)):
                    if last_use[start + j] >= 0:
                        held.put(start + j, block[j])
                del block
            upto = int(np.searchsorted(ready, stop, side="left"))
            rows: tuple[_TopkColumns, list[dict], list[dict]] = (top, [], [])
            served = {}
            if cached is not None:
                served = cached.backend.pair_records([keys[i] for i in range(done, upto) if hit[i]])
            finished: list[tuple[bytes, bytes]] = []
            for i in range(done, upto):
                it = items[i]
                if hit[i]:
                    numbers, reduced = _PairCache.decode(served[keys[i]])
                    if writer is not None:
                        writer.add_reduced(it.pair_id, reduced)
                else:
                    lp = (held.get(int(where[i, 0])), held.get(int(where[i, 1])))
                    numbers = _pair_numbers(
                        it, i, lp, top_k, rbo_p, polarity, pieces, chained, prior_lp
                    )
                    reduced = None
                    if writer is not None:
                        extra = _base_extra(base, it.pair_id) if store == "topn" else None
                        reduced = writer.add(
                            it.pair_id, lp[0], lp[1], texts=tuple(texts[i]), extra=extra
                        )
                    if cached is not None:
                        finished.append((keys[i], _PairCache.encode(numbers, reduced)))
                _pair_rows(backend, it, texts[i], numbers, pieces, i, rows, scored_priors.get(i))
            for name, new in zip(("scores", "targets"), rows[1:]):
                if new:
                    parts[name].append(pd.DataFrame(new))
            if cached is not None and upto > done:
                gone = np.flatnonzero((last_any >= done) & (last_any < upto))
                cached.backend.put_pair_records(finished, [unique[j] for j in gone])
            held.drop(np.flatnonzero((last_use >= done) & (last_use < upto)))
            done = upto
            if progress:
                progress(backend.name, "score", stop, len(unique))
    finally:
        held.close()
    tables = {name: frames.frame() for name, frames in parts.items()}
    tables["topk"] = top.frame(done)
    if tables["targets"].empty:
        tables["targets"] = pd.DataFrame(columns=TARGET_COLUMNS)
    return Scored(writer.close() if writer is not None else None, **tables)


@dataclass
class _PairNumbers:
    """Everything one pair's rows hold that a model computed (what a pair record keeps)."""

    row: dict[str, Any]  # the scores row (without the exclusive ids)
    exclusive: tuple[list[int], list[int]]  # each side's top-k ids the other lacks
    tops: tuple[np.ndarray, np.ndarray]  # each side's top-k ids, best first
    top_lp: tuple[np.ndarray, np.ndarray]  # their log-probs (float32)
    target_lp: list[float]  # log p(target), side A's targets then side B's
    prior: list[float] | None  # log p(side's target | prior sentence), attribute pairs


#: Version of the pair record's content: a change to how any pair score is computed changes
#: it (with biasprobe's version, part of every pair key).
PAIR_RECORD_VERSION = 1


class _PairCache:
    """Pair records of a :class:`~biasprobe.backends.cached.CachedMaskedLM` (see
    :func:`score_model`)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    @classmethod
    def open(
        cls, backend: MaskedLMBackend, store: str | None, has_base: bool, base_identity: str | None
    ) -> _PairCache | None:
        from biasprobe.backends.cached import CachedMaskedLM

        if not isinstance(backend, CachedMaskedLM) or backend.store is None or store == "full":
            return None  # no cache, or full vectors wanted (a record keeps none)
        if has_base and base_identity is None:
            return None  # the kept tokens depend on a base model the cache cannot name
        return cls(backend)

    def setting(self, top_k, rbo_p, lexicon, store, writer, base_identity) -> list[Any]:
        """What every pair's numbers depend on besides its own requests."""
        from biasprobe.cache import _digest
        from biasprobe.version import __version__

        lex = None if lexicon is None else _digest(sorted(lexicon.items())).hex()
        depth = None if writer is None else writer.depth
        return [PAIR_RECORD_VERSION, __version__, int(top_k), float(rbo_p), lex, store, depth,
                base_identity]  # fmt: skip

    @staticmethod
    def key(setting, it: ProbeItem, texts, pieces, i, priors) -> bytes:
        from biasprobe.cache import request_key

        words = [[w, pieces[(i, 0, w)], pieces[(i, 1, w)]] for w in it.targets]
        request = [setting, list(texts), words, priors.get(i), int(it.minoritized),
                   it.attribute is not None]  # fmt: skip
        return request_key("pair", request)

    @staticmethod
    def encode(numbers: _PairNumbers, reduced: tuple | None) -> bytes:
        from biasprobe.cache import encode_record

        header = {"row": numbers.row, "exclusive": list(numbers.exclusive)}
        header.update(target_lp=numbers.target_lp, prior=numbers.prior)
        arrays = {"top_a": numbers.tops[0].astype("<i4"), "top_b": numbers.tops[1].astype("<i4")}
        arrays.update(top_lp_a=numbers.top_lp[0], top_lp_b=numbers.top_lp[1])
        if reduced is not None:
            keep, lp_a, lp_b, far_a, far_b = reduced
            arrays.update(keep=keep.astype("<i4"), keep_a=lp_a, keep_b=lp_b)
            arrays.update(far_a=far_a.astype("<i4"), far_b=far_b.astype("<i4"))
        return encode_record(header, arrays)

    @staticmethod
    def decode(record: Any) -> tuple[_PairNumbers, tuple | None]:
        header, a = record
        numbers = _PairNumbers(
            row=dict(header["row"]),
            exclusive=tuple(header["exclusive"]),
            tops=(a["top_a"].astype(np.int64), a["top_b"].astype(np.int64)),
            top_lp=(a["top_lp_a"].astype(np.float32), a["top_lp_b"].astype(np.float32)),
            target_lp=[float(v) for v in header["target_lp"]],
            prior=header["prior"],
        )
        reduced = None
        if "keep" in a:
            reduced = (
                a["keep"].astype(np.int64),
                a["keep_a"].astype(np.float32),
                a["keep_b"].astype(np.float32),
                a["far_a"].astype(np.int64),
                a["far_b"].astype(np.int64),
            )
        return numbers, reduced


class _TopkColumns:
    """The rows of ``topk.csv`` for ``n`` pairs (``2 × k`` each), as preallocated columns: no
    per-row dict, no per-request frame, no copy to join them (the largest table: 20 rows per
    pair at the default top-k).

    Its text columns repeat a few values over many rows (a pair's id and sentence over its
    ``k`` rows, a side or a role over half the table), so each is held as integer codes into
    its distinct values and becomes a categorical column (categories sorted, so that sorting
    the column sorts the text): 1 to 4 bytes a row instead of an 8-byte object pointer, the
    codes widened only when a column's distinct values outgrow them. The CSV written from it
    is the same text."""

    TEXT = ("model", "pair_id", "template_id", "side", "group", "role", "sentence")

    def __init__(self, n: int, k: int) -> None:
        self.k = k
        size = 2 * k * n
        # -1: a row not filled (missing, as an unfilled object cell was)
        self.codes = {name: np.full(size, -1, dtype=np.int8) for name in self.TEXT}
        self.seen: dict[str, dict[str, int]] = {name: {} for name in self.TEXT}
        self.token_id = np.empty(size, dtype=np.int64)
        self.logprob = np.empty(size, dtype=np.float64)
        self.vocab: Sequence[str] = ()

    def put(self, i: int, s: int, values: dict[str, str], order: np.ndarray, lp, vocab) -> None:
        """Pair ``i``'s rows of side ``s``: ``order`` (token ids, best first) and ``lp``, their
        log-probs (``lp[r]`` belongs to ``order[r]``)."""
        at = slice((2 * i + s) * self.k, (2 * i + s) * self.k + len(order))
        for name, value in values.items():
            seen = self.seen[name]
            code = seen.get(value)
            if code is None:
                code = seen[value] = len(seen)
                wide = _code_dtype(len(seen))
                if wide != self.codes[name].dtype:
                    self.codes[name] = self.codes[name].astype(wide)
            self.codes[name][at] = code
        self.vocab = vocab
        self.token_id[at] = order
        self.logprob[at] = np.asarray(lp, dtype=np.float64)

    def frame(self, n: int) -> pd.DataFrame:
        """The table of the first ``n`` pairs, columns in ``topk.csv``'s order (its text
        columns share the codes held here, renumbered in sorted order)."""
        size = 2 * self.k * n
        if size == 0:
            return pd.DataFrame()
        cols: dict[str, Any] = {}
        for name in self.TEXT:
            self.codes[name], values = _sorted_codes(self.codes[name], list(self.seen[name]))
            self.seen[name] = {value: code for code, value in enumerate(values)}
            categories = pd.Index(values, dtype="str")
            cols[name] = pd.Categorical.from_codes(self.codes[name][:size], categories=categories)
        cols["rank"] = np.tile(np.arange(1, self.k + 1, dtype=np.int64), 2 * n)
        cols["token"] = _token_column(self.token_id[:size], self.vocab)
        cols.update(token_id=self.token_id[:size], logprob=self.logprob[:size])
        return pd.DataFrame(cols, copy=False)


def _code_dtype(n: int) -> np.dtype:
    """The integer type of the codes of ``n`` categories, as pandas chooses it (so that a
    categorical built from them keeps them as they are)."""
    for dtype in (np.int8, np.int16, np.int32):
        if n < np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def _sorted_codes(codes: np.ndarray, values: list[str]) -> tuple[np.ndarray, list[str]]:
    """``codes`` into ``values`` (-1: missing) renumbered into the sorted ``values`` (a
    categorical column of sorted categories sorts as its text would), and those values."""
    order = sorted(range(len(values)), key=values.__getitem__)
    recode = np.empty(len(values) + 1, dtype=codes.dtype)
    recode[np.asarray(order, dtype=np.int64)] = np.arange(len(values))
    recode[-1] = -1  # codes[...] == -1 reads the last slot
    return recode[codes], [values[j] for j in order]


def _token_column(token_id: np.ndarray, vocab: Sequence[str]) -> pd.Categorical:
    """The display string of every token id, as a categorical column over the tokens used
    (two ids may display alike: they share a category)."""
    used = np.unique(token_id)
    shown = [vocab[int(t)] for t in used]
    categories = sorted(set(shown))
    code_of = {text: c for c, text in enumerate(categories)}
    lookup = np.zeros(int(used[-1]) + 1 if used.size else 1, dtype=_code_dtype(len(categories)))
    lookup[used] = [code_of[text] for text in shown]
    return pd.Categorical.from_codes(lookup[token_id], categories=pd.Index(categories, dtype="str"))


class _Frames:
    """Per-request frames of one table, joined 64 at a time (a frame has a fixed cost that
    100,000 pairs would otherwise pay 1,500 times)."""

    def __init__(self) -> None:
        self.joined: list[pd.DataFrame] = []
        self.pending: list[pd.DataFrame] = []

    def append(self, frame: pd.DataFrame) -> None:
        self.pending.append(frame)
        if len(self.pending) >= 64:
            self.joined.append(_concat(self.pending))
            self.pending = []

    def frame(self) -> pd.DataFrame:
        """The whole table (the pieces are let go as it is joined)."""
        if self.pending or len(self.joined) != 1:
            # shallow copies: a frame appended here keeps its columns
            frames = [f.copy(deep=False) for f in (*self.joined, *self.pending)]
            self.joined, self.pending = [], []
            self.joined = [_join_columns(frames)]
        return self.joined[0]


def _join_columns(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames one after the other, joined column by column, each column taken out of
    ``frames`` once joined, so that memory nothing else holds is freed as the table grows
    (joining the whole frames at once holds the table twice). Frames of different columns
    are joined whole."""
    if len(frames) < 2 or any(not f.columns.equals(frames[0].columns) for f in frames):
        return _concat(frames)
    joined = {
        name: pd.concat([f.pop(name) for f in frames], ignore_index=True)
        for name in list(frames[0].columns)
    }
    return pd.DataFrame(joined, copy=False)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames one after the other (one frame as it is: no copy). A categorical column
    stays one over the union of the frames' categories (sorted)."""
    if not frames:
        return pd.DataFrame()
    if len(frames) == 1:
        return frames[0]
    shared: dict[str, pd.Index] = {}
    for name in frames[0].columns:
        if all(name in f and isinstance(f[name].dtype, pd.CategoricalDtype) for f in frames):
            values = set().union(*(f[name].cat.categories for f in frames))
            shared[name] = pd.Index(sorted(values), dtype="str")
    if shared:
        frames = [
            f.assign(**{n: f[n].cat.set_categories(c) for n, c in shared.items()}) for f in frames
        ]
    return pd.concat(frames, ignore_index=True)


class _Held:
    """Sentence vectors kept for pairs still to come: in memory up to :data:`HELD_LIMIT`,
    beyond it in a temporary file (one row per vector, reused once dropped)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.memory: dict[int, np.ndarray] = {}
        self.disk: dict[int, int] = {}  # sentence → row of the file
        self.free: list[int] = []
        self.file: Any = None

    def put(self, key: int, vector: np.ndarray) -> None:
        vector = np.asarray(vector, dtype=np.float32)
        if len(self.memory) < HELD_LIMIT:
            self.memory[key] = vector.copy()  # not a view that keeps the whole request alive
            return
        if self.file is None:
            import tempfile

            self.file = tempfile.TemporaryFile(prefix="biasprobe-held-")
        row = self.free.pop() if self.free else len(self.disk) + len(self.free)
        self.file.seek(row * self.width * 4)
        self.file.write(np.ascontiguousarray(vector, dtype="<f4").tobytes())
        self.disk[key] = row

    def get(self, key: int) -> np.ndarray:
        if key in self.memory:
            return self.memory[key]
        self.file.seek(self.disk[key] * self.width * 4)
        return np.frombuffer(self.file.read(self.width * 4), dtype="<f4").copy()

    def drop(self, keys: Iterable[int]) -> None:
        for key in keys:
            key = int(key)
            if self.memory.pop(key, None) is None and key in self.disk:
                self.free.append(self.disk.pop(key))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _writer(backend, store, top_n, depth, workdir) -> PairStoreWriter | None:
    """Where :func:`score_model` puts what it keeps (None: keep nothing)."""
    if store is None:
        return None
    if store not in STORE_MODES:
        raise UsageError(f"--store must be one of {', '.join(STORE_MODES)}, got {store!r}")
    cleanup = None
    if workdir is None:
        import shutil
        import weakref

        folder = _store_tempdir()
        cleanup = _Cleanup(folder)
        weakref.finalize(cleanup, shutil.rmtree, folder, True)
        workdir = folder
    folder = Path(workdir) / f"{model_slug(backend.name)}-{uuid.uuid4().hex[:6]}"
    return PairStoreWriter(
        folder,
        tuple(backend.vocab),
        None if store == "full" else top_n,
        depth=depth,
        cleanup=cleanup,
    )


STORE_TMP_PREFIX = "biasprobe-store-"


def _store_tempdir() -> Path:
    """A new temporary folder for a run's shards (removed with the result, or at exit), marked
    with this process; folders of earlier processes that were killed (SIGKILL leaves them) are
    removed first."""
    import json
    import shutil
    import socket
    import tempfile

    from biasprobe.fsio import _pid_alive

    root, host = Path(tempfile.gettempdir()), socket.gethostname()
    for old in root.glob(f"{STORE_TMP_PREFIX}*"):
        try:
            owner = json.loads((old / "owner.json").read_text(encoding="utf-8"))
            pid, where = int(owner["pid"]), str(owner["host"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours, or being created: left alone
        if where == host and not _pid_alive(pid) and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{STORE_TMP_PREFIX}{os.getpid()}-"))
    owner = {"pid": os.getpid(), "host": host}
    (folder / "owner.json").write_text(json.dumps(owner), encoding="utf-8")
    return folder


class _Cleanup:
    """Owner of a temporary store folder: removed when the last store using it is gone."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder


def _base_extra(base: PairStore | None, pair_id: str) -> np.ndarray | None:
    """The base model's top-300 token ids of either side of a pair (from its store)."""
    if base is None or base.top_n is None or pair_id not in base:
        return None
    rec = base.records(pair_id)
    near = (rec["rank_a"] <= BASE_EXTRA) | (rec["rank_b"] <= BASE_EXTRA)
    return rec["token_id"][near]


def _pair_numbers(it, i, lp, top_k, rbo_p, polarity, pieces, chained, prior_lp) -> _PairNumbers:
    """Every number of pair ``i`` from its two full vectors."""
    target_lp = []
    for s in (0, 1):
        for w in it.targets:
            p = pieces[(i, s, w)]
            target_lp.append(chained[(i, s, w)] if len(p) > 1 else float(lp[s][p[0]]))
    n = len(it.targets)
    tlp = None
    if it.targets:
        tlp = np.array([target_lp[s * n : (s + 1) * n] for s in (0, 1)])
    scores = pair_scores(
        lp[0], lp[1], k=top_k, minoritized=it.minoritized, target_logprobs=tlp, rbo_p=rbo_p
    )
    if polarity is not None:
        from biasprobe.valence import pair_valence, run_columns

        scores.update(run_columns(pair_valence(lp[0], lp[1], polarity, top_k, it.minoritized)))
    prior = None
    if it.attribute is not None:
        side = [target_lp[s * n + s] for s in (0, 1)]  # side s's own target: targets[s]
        blank_skew_scores(scores)
        prior = [float(v) for v in prior_lp[i]]
        scores["kurita_bias"] = kurita_bias(side, prior, it.minoritized)
    else:
        scores["kurita_bias"] = float("nan")
    exclusive = (scores.pop("exclusive_a_ids"), scores.pop("exclusive_b_ids"))
    tops = tuple(topk(lp[s], top_k)[0] for s in (0, 1))
    return _PairNumbers(
        row=scores,
        exclusive=exclusive,
        tops=tops,
        top_lp=tuple(np.asarray(lp[s][tops[s]], dtype=np.float32) for s in (0, 1)),
        target_lp=target_lp,
        prior=prior,
    )


def _stage(
    progress: ProgressFn | None, name: str, stage: str, *, offset: int = 0, total: int | None = None
) -> Callable[[int, int], None] | None:
    """The per-batch callback ``(done, total)`` of one stage, reported as ``progress(name,
    stage, offset + done, total)`` (``total``: the stage's, else the call's)."""
    if progress is None:
        return None
    return lambda done, n: progress(name, stage, offset + done, n if total is None else total)


@contextlib.contextmanager
def _batches(backend: MaskedLMBackend, report: Callable[[int, int], None] | None) -> Iterator[None]:
    """Have ``backend`` call ``report`` after every forward batch, where it can (a backend
    with an ``on_batch`` attribute, e.g. :class:`~biasprobe.backends.hf.HFMaskedLM`)."""
    if report is None or not hasattr(backend, "on_batch"):
        yield
        return
    previous = backend.on_batch
    backend.on_batch = report
    try:
        yield
    finally:
        backend.on_batch = previous


def _target_pieces(
    backend: MaskedLMBackend, items: Sequence[ProbeItem], texts: list[list[str]]
) -> _Pieces:
    pieces = _Pieces(items)
    for i, it in enumerate(items):
        for s in (0, 1):
            for word in it.targets:
                try:
                    pieces.add(i, s, word, backend.target_pieces(texts[i][s], word))
                except BiasprobeError as e:
                    raise _with_source(e, it) from None
    return pieces


class _Pieces:
    """The token pieces of every (item, side, target word), in flat integer arrays (a few
    bytes per target, not a dict entry: suites of 100,000 pairs have 400,000 of them). Read
    as ``pieces[(i, s, word)]``; :meth:`multi` lists the targets of several pieces."""

    def __init__(self, items: Sequence[ProbeItem]) -> None:
        from array import array

        self.items = items
        self.flat = array("q")
        self.bounds = array("q", [0])  # entry e's pieces: flat[bounds[e]:bounds[e + 1]]
        self.first = array("q")  # item i's first entry
        self.several: list[tuple[int, int, str]] = []

    def add(self, i: int, s: int, word: str, ids: Sequence[int]) -> None:
        while len(self.first) <= i:  # items without targets have no entries
            self.first.append(len(self.bounds) - 1)
        self.flat.extend(int(p) for p in ids)
        self.bounds.append(len(self.flat))
        if len(ids) > 1:
            self.several.append((i, s, word))

    def __getitem__(self, key: tuple[int, int, str]) -> list[int]:
        i, s, word = key
        targets = self.items[i].targets
        e = self.first[i] + s * len(targets) + targets.index(word)
        return self.flat[self.bounds[e] : self.bounds[e + 1]].tolist()

    def multi(self) -> list[tuple[tuple[int, int, str], list[int]]]:
        """Every target of several pieces with its pieces, in request order."""
        return [(key, self[key]) for key in self.several]


def _check_priors(backend: MaskedLMBackend, items: Sequence[ProbeItem]) -> None:
    """Attribute pairs need a backend that scores prior sentences (several masks)."""
    first = next((it for it in items if it.attribute is not None), None)
    if first is not None and not getattr(backend, "scores_priors", False):
        raise UsageError(
            f"{first.source}: pair {first.pair_id!r} declares an attribute (prior-normalised "
            f"score, Kurita et al. 2019), whose prior sentence {first.prior_sentences[0]!r} "
            f"has several masks; model {backend.name} cannot score it (a format-1 recording "
            "holds one mask per sentence). Run the live model, record the probe file with it "
            "(biasprobe record PROBE_FILE -m MODEL -o DIR), or leave these pairs out with "
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


#: Chain-rule / prior requests per backend call: one unit of the result cache (and of resume).
REQUEST_CHUNK = 256


def _prior_logprobs(backend, items, priors, wanted=None) -> dict[int, np.ndarray]:
    """log p(side's target | prior sentence), (2,) per attribute item (of the ``wanted``
    items; in fixed chunks of :data:`REQUEST_CHUNK` requests, a chunk asked whole when any of
    its items is wanted)."""
    keys = list(priors)
    out: dict[int, np.ndarray] = {}
    per = max(1, REQUEST_CHUNK // 2)
    for start in range(0, len(keys), per):
        part = keys[start : start + per]
        if wanted is not None and not any(wanted[i] for i in part):
            continue
        values = backend.prior_logprobs([r for i in part for r in priors[i]])
        for n, i in enumerate(part):
            out[i] = np.asarray(values[2 * n : 2 * n + 2], dtype=np.float64)
    return out


def _chain_logprobs(
    backend, texts, pieces, wanted=None, progress: ProgressFn | None = None
) -> dict[tuple[int, int, str], float]:
    """log p(target) per (item, side, word) of the targets of several pieces (the chain rule
    over consecutive masks); one-piece targets are read off the vector at the mask. Asked in
    fixed chunks of :data:`REQUEST_CHUNK` requests, a chunk whole when any of its items is
    ``wanted``; the "targets" stage of ``progress`` counts forward inputs (one per piece)."""
    multi = pieces.multi()
    out: dict[tuple[int, int, str], float] = {}
    total = sum(len(p) for _, p in multi)
    offset = 0
    for start in range(0, len(multi), REQUEST_CHUNK):
        part = multi[start : start + REQUEST_CHUNK]
        size = sum(len(p) for _, p in part)
        asked = wanted is None or any(wanted[i] for (i, _, _), _ in part)
        if asked:
            step = _stage(progress, backend.name, "targets", offset=offset, total=total)
            with _batches(backend, step):
                values = backend.chain_logprobs([(texts[i][s], p) for (i, s, _), p in part])
            out.update({key: float(v) for (key, _), v in zip(part, values)})
        offset += size
        if progress is not None and (not asked or not hasattr(backend, "on_batch")):
            # a skipped chunk, or a backend that reports no batches
            progress(backend.name, "targets", offset, total)
    return out


def _prior_texts(backend: Any, priors: dict[int, list[tuple[str, str, int, str]]]) -> dict:
    """Per attribute item, each side's prior sentence as the model scores it (attribute masks
    widened to the word's pieces), for ``targets.csv``; empty for backends without it."""
    text = getattr(backend, "prior_text", None)
    if text is None:
        return {}
    return {i: [text(*r) for r in reqs] for i, reqs in priors.items()}


def _pair_rows(
    backend, it, texts, numbers: _PairNumbers, pieces, i, rows, prior_texts=None
) -> None:
    """Append one pair's rows to ``rows`` = (topk rows, score rows, target rows);
    ``prior_texts``: each side's prior sentence as scored (attribute items)."""
    topk_rows, score_rows, target_rows = rows
    vocab = backend.vocab
    nan = float("nan")
    n = len(it.targets)
    common = {"model": backend.name, "pair_id": it.pair_id, "template_id": it.template_id}
    for s, side in enumerate(SIDES):
        role = "minoritized" if s == it.minoritized else "normative"
        values = {**common, "side": side, "group": it.groups[s], "role": role}
        sentence = {**values, "sentence": texts[s]}
        topk_rows.put(i, s, sentence, numbers.tops[s], numbers.top_lp[s], vocab)
        for j, w in enumerate(it.targets):
            target_rows.append(
                {
                    **common,
                    "side": side,
                    "group": it.groups[s],
                    "target": w,
                    "n_pieces": len(pieces[(i, s, w)]),
                    "logprob": numbers.target_lp[s * n + j],
                    # log p(side's own target | prior sentence); NaN without an attribute
                    "prior_logprob": (
                        float(numbers.prior[s])
                        if numbers.prior is not None and w == it.targets[s]
                        else nan
                    ),
                    "piece_ids": " ".join(str(p) for p in pieces[(i, s, w)]),
                    # the prior sentence exactly as scored (attribute widened to its pieces)
                    "prior_sentence": (
                        prior_texts[s] if prior_texts and w == it.targets[s] else ""
                    ),
                }
            )
    ex_a, ex_b = numbers.exclusive
    score_rows.append(
        {
            **common,
            "group_a": it.groups[0],
            "group_b": it.groups[1],
            "minoritized_group": it.groups[it.minoritized],
            **numbers.row,
            "top_a": " ".join(vocab[t] for t in numbers.tops[0]),
            "top_b": " ".join(vocab[t] for t in numbers.tops[1]),
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


#: A model alias (``-m NAME=MODEL``): a letter, then letters, digits, ``_``, ``.`` or ``-``.
ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,39}")


@dataclasses.dataclass
class NamedSpec(ModelSpec):
    """A :class:`ModelSpec` given a short name (``-m base=PATH``): the model's name in every
    table, file and report of the run; ``spec`` stays what it names."""

    name: str = ""


def split_alias(text: str) -> tuple[str | None, str]:
    """``"base=./ckpt"`` → ``("base", "./ckpt")``; a value without an alias → ``(None, text)``.

    The part before the first ``=`` is an alias only when it looks like a name (no ``/``,
    ``\\``, ``:`` or ``@``, not starting with ``.`` or ``~``) and the whole value is not an
    existing path, so a folder whose name holds ``=`` still works.

    Raises:
        UsageError: an alias that is empty, names no model, or is not a simple name.
    """
    if "=" not in text or Path(text).expanduser().exists():
        return None, text
    alias, _, spec = text.partition("=")
    if any(c in alias for c in "/\\:@") or alias.startswith((".", "~")):
        return None, text  # a path or hub id holding "=": not an alias
    if not ALIAS_RE.fullmatch(alias):
        raise UsageError(
            f"--model {text!r}: {alias!r} is not a usable alias (NAME=MODEL, NAME: a letter "
            "then up to 39 letters, digits, '_', '.' or '-')"
        )
    if not spec:
        raise UsageError(f"--model {text!r}: the alias {alias!r} names no model (NAME=MODEL)")
    return alias, spec


def model_name(spec: ModelSpec | MaskedLMBackend) -> str:
    """The name a resolved model gets in the run: its alias, else what the user gave."""
    if isinstance(spec, NamedSpec):
        return spec.name
    return spec.spec if isinstance(spec, ModelSpec) else spec.name


def resolve_models(
    probe_set: ProbeSet, models: Sequence[str | MaskedLMBackend] | None, revision: str | None
) -> list[ModelSpec | MaskedLMBackend]:
    """Find every model of a run (without loading weights) and refuse duplicates.

    A value ``NAME=MODEL`` gives the model the short name ``NAME`` (see :func:`split_alias`).

    Raises:
        UsageError: no model, the same model or name twice (models compared on resolved
            folders), or a bad alias.
        ModelLoadError: a model cannot be found or its folder is incomplete.
    """
    specs = list(models) if models else list(probe_set.models)
    if not specs:
        raise UsageError(f"no model to run: pass --model, or list models: in {probe_set.path}")
    resolved: list[ModelSpec | MaskedLMBackend] = []
    for m in specs:
        if not isinstance(m, str):
            resolved.append(m)
            continue
        alias, text = split_alias(m)
        spec = resolve_spec(text, revision=revision)
        if alias is not None:
            fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
            spec = NamedSpec(**fields, name=alias)
        resolved.append(spec)
    keys = [r.key if isinstance(r, ModelSpec) else f"backend:{r.name}" for r in resolved]
    names = [model_name(r) for r in resolved]
    dupes = sorted({n for n, k in zip(names, keys) if keys.count(k) > 1})
    if dupes:
        raise UsageError(f"model given twice: {', '.join(dupes)} (the same model)")
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise UsageError(
            f"two models are named {', '.join(map(repr, clashes))}; give each model its own "
            "alias (-m NAME=MODEL)"
        )
    return resolved


def check_items(backend: MaskedLMBackend, items: Sequence[ProbeItem], texts: list[list[str]]):
    """Refuse pairs a model cannot tell apart, before any forward pass.

    Raises:
        VocabularyError: a word of a sentence becomes the unknown token, or the two sides of a
            pair tokenize to identical ids (their skew would be 0 by construction).
    """
    unk = getattr(backend, "unk_id", None)
    step = 1024  # pairs tokenized at once: the tokenizer's output stays small at any scale
    for start in range(0, len(items), step):
        ids = backend.token_ids([t for pair in texts[start : start + step] for t in pair])
        if ids is None:
            return
        _check_tokenized(backend, items, texts, ids, start, unk)


def _check_tokenized(backend, items, texts, ids, start, unk) -> None:
    """:func:`check_items` for the pairs from ``start`` on whose token ids are ``ids``."""
    for n in range(len(ids) // 2):
        i, it = start + n, items[start + n]
        for s, side in enumerate(SIDES):
            if unk is not None and unk in ids[2 * n + s]:
                unknown = backend.unknown_words(texts[i][s])
                shown = ", ".join(repr(w) for w in unknown) or "a part of the sentence"
                raise VocabularyError(
                    f"{it.source}: pair {it.pair_id!r}, side {side} ({texts[i][s]!r}): {shown} "
                    f"become(s) the unknown token of model {backend.name}; the model cannot "
                    "read the word, so the pair would not measure it. Use another word or model"
                )
        # Attribute pairs share one sentence on purpose: the sides differ in the target word.
        if ids[2 * n] == ids[2 * n + 1] and it.attribute is None:
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
    storage: Mapping[str, Any] | None = None,
) -> tuple[MaskedLMBackend, Scored]:
    from biasprobe.backends.cached import OBJECT_REASON, wrap

    owned = isinstance(spec, ModelSpec)
    name = model_name(spec)
    if progress:
        progress(name, "load", 0, 1)
    backend = load_backend(spec, **load) if owned else spec
    if isinstance(spec, NamedSpec):
        backend.name = spec.name
    backend = wrap(backend, cache) if owned else wrap(backend, OBJECT_REASON)
    if progress:
        progress(name, "load", 1, 1)
    try:
        if k > len(backend.vocab):
            raise UsageError(
                f"top-k {k} (--top-k, else the probe file's top_k) is larger than the "
                f"vocabulary of model {backend.name} ({len(backend.vocab)} tokens)"
            )
        storage = dict(storage or {})
        top_n = storage.get("store_top_n")
        if storage.get("store") == "topn" and top_n and top_n >= len(backend.vocab):
            # a top N that covers the vocabulary keeps every token: store it as what it is, so
            # that every view (the whole vocabulary included) can be redrawn
            storage["store"] = "full"
        return backend, score_model(
            backend,
            items,
            top_k=k,
            progress=progress,
            rbo_p=RBO_P,
            lexicon=lexicon,
            **(storage or {}),
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
    store: str = "topn",
    store_top_n: int = DEFAULT_STORE_TOP_N,
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
        store: what is kept of each sentence's full-vocabulary log-probs once it is scored:
            ``"topn"`` (per pair, the union of both sides' top ``store_top_n`` tokens; every
            score is computed from the full vectors first, so it is the same either way) or
            ``"full"`` (every vector).
        store_top_n: N of ``store="topn"``.

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
    check_store(store, store_top_n)
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
    settings.update(store=store, store_top_n=store_top_n)
    from biasprobe.backends.cached import open_cache

    opened = open_cache(cache, any(isinstance(r, ModelSpec) and r.source for r in resolved))
    try:
        rows, logprobs, model_meta = _score_all(
            resolved,
            items,
            k=k,
            load=load,
            progress=progress,
            lexicon=lexicon,
            cache=opened,
            storage={"store": store, "store_top_n": store_top_n},
        )
    finally:
        if opened is not cache and not isinstance(opened, str):  # opened here
            opened.close()
    scores = rows["scores"]
    boot = {"n_resamples": n_bootstrap, "confidence": confidence, "seed": seed}
    arbitrary = {p.id for p in probe_set.pairs if getattr(p, "arbitrary_orientation", False)}
    summary = _summary(scores, probe_set.name, valence=valence, arbitrary=arbitrary, **boot)
    result = RunResult(
        meta=_meta(probe_set, items, pairs, exclude, model_meta, _settings(**settings)),
        items=items_table(items),
        topk=rows["topk"],
        scores=scores,
        summary=summary,
        targets=rows["targets"],
        logprobs=logprobs,
    )
    result.comparison = comparison(result, probe_set.name, boot)
    return result


def comparison(result: RunResult, set_name: str, boot: Mapping[str, Any]) -> pd.DataFrame | None:
    """Every comparison of each later model with the base (the first), computed once and
    stored (:func:`biasprobe.comparisons.fill_mask_comparison`); None for one model."""
    from biasprobe.comparisons import fill_mask_comparison

    names = result.models
    if len(names) < 2:
        return None
    table = fill_mask_comparison(
        result.scores, set_name=set_name, base=names[0], models=names[1:], tokens=result, **boot
    )
    return leading(table, COMPARISON_COLUMNS)


def _score_all(
    resolved: Sequence[Any], items: Any, *, storage: Mapping[str, Any], **kw: Any
) -> tuple[dict[str, pd.DataFrame], dict[str, PairStore], list[dict[str, Any]]]:
    """Every model in turn (:func:`_score_one`): the topk, scores and targets tables, each
    model's log-prob store and its model card. Models after the first also keep the first
    one's top-300 tokens of each side (which the first keeps too), for exact comparisons."""
    parts: dict[str, list[pd.DataFrame]] = {"topk": [], "scores": [], "targets": []}
    logprobs: dict[str, PairStore] = {}
    model_meta: list[dict[str, Any]] = []
    base: PairStore | None = None
    base_identity: str | None = None  # its model's cache identity (keys of pair records)
    for n, spec in enumerate(resolved):
        extra = {"base": base, "base_identity": base_identity} if n else {}
        if not n:
            extra["depth"] = BASE_EXTRA if len(resolved) > 1 else None
        backend, scored = _score_one(spec, items, storage={**storage, **extra}, **kw)
        logprobs[backend.name] = scored.store
        if n == 0:
            base, base_identity = (
                scored.store,
                getattr(getattr(backend, "store", None), "identity", None),
            )
        for key in parts:
            frame = getattr(scored, key)
            if not frame.empty:
                parts[key].append(frame)
        alias = spec.spec if isinstance(spec, NamedSpec) else None
        model_meta.append(_model_card(backend, alias))
    tables = {k: _concat(v) for k, v in parts.items()}
    tables["targets"] = tables["targets"].reindex(columns=TARGET_COLUMNS)
    return tables, logprobs, model_meta


def check_store(store: str, top_n: int) -> None:
    """Refuse a ``--store`` / ``--store-top-n`` that cannot work, before any model is loaded.

    Raises:
        UsageError: naming the option and what it accepts.
    """
    if store not in STORE_MODES:
        raise UsageError(f"--store must be one of {', '.join(STORE_MODES)}, got {store!r}")
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise UsageError(f"--store-top-n must be an integer of at least 1, got {top_n!r}")


def _summary(
    scores: pd.DataFrame,
    set_name: str,
    *,
    valence: bool,
    arbitrary: Collection[str] = (),
    **boot: Any,
) -> pd.DataFrame:
    """The summary table of every score (and the valence columns when scored); templates of
    arbitrary orientation stay out of the signed set rows."""
    names, signed = SUMMARY_SCORES, SIGNED_SCORES
    if valence:
        from biasprobe.valence import RUN_COLUMNS

        names, signed = (*names, *RUN_COLUMNS), (*signed, *RUN_COLUMNS)
    return summarize(
        scores, set_name=set_name, score_names=names, signed=signed, arbitrary=arbitrary, **boot
    )


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
    "piece_ids",
    "prior_sentence",
]


def _settings(
    *, k, device, batch_size, seed, n_bootstrap, confidence, valence, store, store_top_n
) -> dict[str, Any]:
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
        "store": store,
    }
    if store == "topn":
        out["store_top_n"] = store_top_n
    if valence:
        from importlib.metadata import version

        out["valence"] = {
            "lexicon": f"VADER (vaderSentiment {version('vaderSentiment')}, MIT licence)",
            "threshold": 0.0,
            "top_k": k,
        }
    return out


def _model_card(backend: MaskedLMBackend, alias_of: str | None = None) -> dict[str, Any]:
    """The model's provenance block (:func:`biasprobe.runfolders.schema.model_block`)."""
    return model_block(
        backend.name,
        "masked-lm",
        backend.info,
        alias_of=alias_of,
        slug=model_slug(backend.name),
        mask_token=backend.mask_token,
        vocab_size=len(backend.vocab),
    )


def _meta(probe_set, items, pairs, exclude, model_meta, settings) -> dict[str, Any]:
    # versions read from package metadata: the recorded: path must not import torch to ask
    return {
        **head("fill-mask"),
        "models": model_meta,
        "settings": settings,
        "probe_set": {
            "name": probe_set.name,
            "version": probe_set.version,
            "description": probe_set.description,
            "source": probe_set.source,
            "path": probe_set.path,
            "sha256": probe_set.sha256,
            "n_pairs": len(items),
            # templates whose orientation is only a sign convention (names, years)
            "arbitrary_orientation": sorted(
                p.id for p in probe_set.pairs if getattr(p, "arbitrary_orientation", False)
            ),
            "pairs_selected": {"include": list(pairs or []), "exclude": list(exclude or [])},
        },
    }


def _check_recorded(
    backend: MaskedLMBackend, items: Sequence[ProbeItem], texts: list[list[str]]
) -> None:
    """Replaying a recording: refuse the pairs it cannot score before anything is scored,
    naming the first one (file:line, pair, side, and the sentence, target or prior sentence
    missing). A backend alone cannot tell which pair a sentence belongs to.

    Raises:
        UsageError: a selected pair needs something the recording does not hold.
    """
    missing = getattr(backend, "missing", None)
    if not callable(missing):
        return
    priors = _prior_requests(backend, items)
    gaps: list[tuple[ProbeItem, int, str]] = []
    for i, it in enumerate(items):
        for s in (0, 1):
            gap = missing(texts[i][s], it.targets, priors[i][s] if i in priors else None)
            if gap is not None:
                gaps.append((it, s, gap))
                break
    if gaps:
        it, s, gap = gaps[0]
        count = f" ({len(gaps)} of the {len(items)} selected pairs lack something)"
        raise UsageError(
            f"{it.source}: pair {it.pair_id!r}, side {SIDES[s]} ({it.groups[s]}): "
            f"{gap.rstrip('.')}{count if len(gaps) > 1 else ''}. The recording was made from "
            "other pairs or by an older biasprobe: record this probe file (biasprobe record "
            "PROBE_FILE -m MODEL -o DIR), or leave these pairs out with --exclude"
        )


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
            hf_tokenizer=getattr(backend, "tokenizer", None),
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


__all__ = [
    "Recording",
    "check_options",
    "items_table",
    "record",
    "run",
    "score_model",
    "select_items",
]
