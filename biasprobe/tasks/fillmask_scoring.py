"""Scoring one masked LM on fill-mask probe pairs (:func:`score_model`): streamed in chunks of
distinct sentences, served from the result cache where it can be, with multi-piece targets by
the chain rule and prior sentences; the vocabulary and recording checks that run before any
forward pass (:func:`check_items`, :func:`check_recorded`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biasprobe.backends import MaskedLMBackend
from biasprobe.errors import BiasprobeError, UsageError, VocabularyError
from biasprobe.probes import MASK, ProbeItem
from biasprobe.results import (
    BASE_EXTRA,
    DEFAULT_STORE_TOP_N,
    PairStore,
)
from biasprobe.scores import (
    RBO_P,
    blank_skew_scores,
    kurita_bias,
    pair_scores,
    topk,
)
from biasprobe.tasks.fillmask_tables import Frames, Held, TopkColumns, store_writer

#: progress(model, stage, done, total); stage is "load" (0 of 1, then 1 of 1), "score" (masked
#: sentences), "targets" (forward inputs of multi-piece targets) or "priors" (inputs of the
#: prior sentences); updated after every forward batch where the backend reports batches.
#: With the result cache, "cached" is reported once before scoring: ``done`` = pairs served
#: from the cache (a finished or interrupted earlier run), ``total`` = the model's pairs.
ProgressFn = Callable[[str, str, int, int], None]

SIDES = ("A", "B")
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


def _with_source(err: BiasprobeError, item: ProbeItem) -> BiasprobeError:
    err.message = f"{item.source}: {err.message}"
    err.args = (err.message,)
    return err


#: Distinct sentences per mask request of :func:`score_model` (the batches of a request decide
#: the last bits of a float32 result, so this stays what earlier versions used).
SENTENCE_CHUNK = 128


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
    measures: Mapping[str, Any] | None = None,
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

    ``measures`` holds the optional measures asked for, ``{name: what it loaded}``
    (:func:`biasprobe.measures.load_resources`, e.g. ``{"valence": lexicon}``): each is prepared
    once for this model's vocabulary and adds its columns to every pair
    (:func:`biasprobe.measures.compute_pair`, top-k depth ``top_k``).

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
    check_recorded(backend, items, texts)
    pieces = _target_pieces(backend, items, texts)  # fails before any compute
    priors = _prior_requests(backend, items)
    scored_priors = _prior_texts(backend, priors)
    writer = store_writer(backend, store, store_top_n, depth, workdir)
    cached = _PairCache.open(backend, store, base is not None, base_identity)
    keys: list[bytes] = []
    hit = np.zeros(len(items), dtype=bool)
    if cached is not None:
        setting = cached.setting(top_k, rbo_p, measures, store, writer, base_identity)
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
    contexts: dict[str, Any] = {}
    if measures:
        from biasprobe.measures import prepare_contexts

        contexts = prepare_contexts(measures, backend.vocab)  # once per model
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
    held = Held(len(backend.vocab))
    # pairs already served from records: a resumed run (its needed sentences may be stored)
    resuming = bool(hit.any())
    # topk.csv's rows, 2 × top_k per pair, filled in place; the other tables per request
    top = TopkColumns(len(items), min(top_k, len(backend.vocab)))
    parts: dict[str, Frames] = {"scores": Frames(), "targets": Frames()}
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
            rows: tuple[TopkColumns, list[dict], list[dict]] = (top, [], [])
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
                        it, i, lp, top_k, rbo_p, contexts, pieces, chained, prior_lp
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

    def setting(self, top_k, rbo_p, measures, store, writer, base_identity) -> list[Any]:
        """What every pair's numbers depend on besides its own requests (an optional
        measure by its name and a digest of what it loaded, e.g. valence's lexicon)."""
        from biasprobe.cache import digest
        from biasprobe.version import __version__

        lex = None
        if measures:
            lex = [[name, _resource_digest(digest, value)] for name, value in measures.items()]
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


def _resource_digest(digest: Any, value: Any) -> str | None:
    """A digest of what an optional measure loaded (a mapping by its sorted items, e.g. a
    lexicon), for the pair records' key; None when it loaded nothing."""
    if value is None:
        return None
    items = sorted(value.items()) if isinstance(value, Mapping) else repr(value)
    return digest(items).hex()


def _base_extra(base: PairStore | None, pair_id: str) -> np.ndarray | None:
    """The base model's top-300 token ids of either side of a pair (from its store)."""
    if base is None or base.top_n is None or pair_id not in base:
        return None
    rec = base.records(pair_id)
    near = (rec["rank_a"] <= BASE_EXTRA) | (rec["rank_b"] <= BASE_EXTRA)
    return rec["token_id"][near]


def _pair_numbers(it, i, lp, top_k, rbo_p, contexts, pieces, chained, prior_lp) -> _PairNumbers:
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
    if contexts:
        from biasprobe.measures import compute_pair

        scores.update(compute_pair(contexts, lp[0], lp[1], k=top_k, minoritized=it.minoritized))
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
    """Have ``backend`` call ``report`` after every forward batch (its declared
    :attr:`~biasprobe.backends.base.MaskedLM.on_batch`; a backend that reports no batches
    ignores it)."""
    if report is None:
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
    if first is not None and not backend.scores_priors:
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
        for r in out[i]:  # tokenize now: a bad word fails before any compute
            try:
                backend.prior_request(*r)
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
        if progress is not None and not asked:  # a skipped chunk
            progress(backend.name, "targets", offset, total)
    return out


def _prior_texts(backend: Any, priors: dict[int, list[tuple[str, str, int, str]]]) -> dict:
    """Per attribute item, each side's prior sentence as the model scores it (attribute masks
    widened to the word's pieces), for ``targets.csv``; ``""`` where the backend cannot tell."""
    return {i: [backend.prior_text(*r) for r in reqs] for i, reqs in priors.items()}


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


def check_items(backend: MaskedLMBackend, items: Sequence[ProbeItem], texts: list[list[str]]):
    """Refuse pairs a model cannot tell apart, before any forward pass.

    Raises:
        VocabularyError: a word of a sentence becomes the unknown token, or the two sides of a
            pair tokenize to identical ids (their skew would be 0 by construction).
    """
    unk = backend.unk_id
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
            if not ids[2 * n + s]:  # a causal LM without a BOS token, [MASK] first
                raise UsageError(
                    f"{it.source}: pair {it.pair_id!r}, side {side} ({texts[i][s]!r}): nothing "
                    f"comes before the mask and model {backend.name} has no BOS token, so "
                    "there is nothing to predict the fill from; put words before [MASK]"
                )
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


def check_recorded(
    backend: MaskedLMBackend, items: Sequence[ProbeItem], texts: list[list[str]]
) -> None:
    """Replaying a recording: refuse the pairs it cannot score before anything is scored,
    naming the first one (file:line, pair, side, and the sentence, target or prior sentence
    missing). A backend alone cannot tell which pair a sentence belongs to.

    Raises:
        UsageError: a selected pair needs something the recording does not hold.
    """
    missing = backend.missing
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
