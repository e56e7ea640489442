"""Stored log-probs of a fill-mask run: :class:`VocabLogProbs` (full vectors held in memory),
:class:`PairStore` (``.npz`` shards of consecutive pairs, read lazily) and the
:class:`PairStoreWriter` that writes them as pairs are scored (see ``docs/design.md`` for the
top-N format). Only regular files are read, and never with pickles.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zlib import error as zlib_error

import numpy as np

from biasprobe.errors import NotStoredError, RunFolderError
from biasprobe.runfolder import RESULTS_JSON, inside
from biasprobe.scores import full_ranks, topk

__all__ = [
    "BASE_EXTRA",
    "DEFAULT_STORE_TOP_N",
    "STORE_MODES",
    "PairStore",
    "PairStoreWriter",
    "VocabLogProbs",
    "open_store",
    "ranks_of",
    "read_npz",
    "save_store",
]


@dataclass(frozen=True)
class VocabLogProbs:
    """Full-vocabulary log-softmax at the mask for a set of distinct sentences of one model.

    Attributes:
        sentences: the exact texts the model saw (with its own mask token), one per row.
        logprobs: array (N, V) float32 of log p(token | sentence) at the mask.
        vocab: display string of each of the V token ids.
    """

    sentences: tuple[str, ...]
    logprobs: np.ndarray
    vocab: tuple[str, ...]
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.logprobs.ndim != 2 or self.logprobs.shape != (len(self.sentences), len(self.vocab)):
            raise ValueError(
                f"logprobs has shape {self.logprobs.shape}, expected "
                f"({len(self.sentences)}, {len(self.vocab)})"
            )
        self._index.update({s: i for i, s in enumerate(self.sentences)})

    def __repr__(self) -> str:
        return (
            f"VocabLogProbs({len(self.sentences)} sentences × {len(self.vocab)} tokens, "
            f"{self.logprobs.dtype})"
        )

    def __contains__(self, sentence: object) -> bool:
        return sentence in self._index

    def row(self, sentence: str) -> np.ndarray:
        """The (V,) log-prob vector of one sentence."""
        try:
            return self.logprobs[self._index[sentence]]
        except KeyError:
            raise KeyError(f"no log-probs stored for sentence {sentence!r}") from None

    def save(self, path: Path) -> None:
        """Write as an uncompressed-header, compressed-data ``.npz`` (no pickles)."""
        np.savez_compressed(
            path,
            sentences=np.array(self.sentences, dtype=np.str_),
            logprobs=self.logprobs.astype(np.float32, copy=False),
            vocab=np.array(self.vocab, dtype=np.str_),
        )

    @classmethod
    def load(cls, path: Path) -> VocabLogProbs:
        """Read a file written by :meth:`save`."""
        z = read_npz(path, ("sentences", "logprobs", "vocab"))
        if z["sentences"].ndim != 1 or z["vocab"].ndim != 1 or z["logprobs"].dtype.kind != "f":
            raise RunFolderError(f"{path}: sentences, vocab or logprobs of the wrong shape or type")
        try:
            return cls(
                sentences=tuple(str(s) for s in z["sentences"]),
                logprobs=np.asarray(z["logprobs"], dtype=np.float32),
                vocab=tuple(str(s) for s in z["vocab"]),
            )
        except ValueError as e:
            raise RunFolderError(f"{path}: {e}") from None


#: How a model's log-probs are stored (``--store``): the union of both sides' top-N tokens of
#: each pair (the default), or every distinct sentence's full-vocabulary vector.
STORE_MODES = ("topn", "full")
DEFAULT_STORE_TOP_N = 1000
#: The base model's top tokens per side that every later model of a run also stores, so the
#: comparison's Spearman ρ over the base's top 300 stays exact (:func:`spearman_fixed`).
BASE_EXTRA = 300


def _open_regular(path: Path) -> Any:
    """``path`` opened for reading if it is a regular file (a FIFO is refused, never waited on).

    Raises:
        RunFolderError: it is not a regular file, or cannot be opened.
    """
    import os
    import stat

    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise RunFolderError(f"cannot read {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RunFolderError(f"cannot read {path}: not a regular file")
    return os.fdopen(fd, "rb")


def read_npz(path: Path, keys: Any = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (only ``keys`` when given), no pickles.

    Raises:
        RunFolderError: the file is not a regular file, not an ``.npz`` or lacks a key.
    """
    with _open_regular(path) as f:
        try:
            with np.load(f, allow_pickle=False) as z:
                names = z.files if keys is None else keys
                missing = [k for k in names if k not in z.files]
                if missing:
                    raise RunFolderError(f"{path}: no array {', '.join(missing)} in it")
                return {k: z[k] for k in names}
        except RunFolderError:
            raise
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib_error) as e:
            raise RunFolderError(f"cannot read {path}: {e}") from None


def _shuffled(values: np.ndarray) -> np.ndarray:
    """float32 values as 4 byte planes (all first bytes, then all second bytes, …): deflate
    compresses the slowly varying sign/exponent bytes far better this way."""
    raw = np.ascontiguousarray(values, dtype="<f4").view(np.uint8)
    return np.ascontiguousarray(raw.reshape(-1, 4).T)


def _unshuffled(planes: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(planes.T).view("<f4").reshape(-1)


def _small_uint(values: np.ndarray) -> np.ndarray:
    """Non-negative integers in the narrowest unsigned type that holds them."""
    top = int(values.max()) if values.size else 0
    for dtype in (np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return values.astype(dtype)
    return values.astype(np.uint64)


def ranks_of(logprobs: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Full-vocabulary ranks (:func:`full_ranks`'s rule: 1 = most probable, ties to the lower
    id, NaN last) of the tokens ``ids`` only, without ranking the whole vocabulary.

    Args:
        logprobs: (V,) log-probabilities.
        ids: token ids.

    Returns:
        int64 ranks, one per id.
    """
    v = np.asarray(logprobs, dtype=np.float32)
    if np.isnan(v).any():
        v = np.where(np.isnan(v), -np.inf, v).astype(np.float32)
    ids = np.asarray(ids, dtype=np.int64)
    ordered = np.sort(v)  # ascending
    x = v[ids]
    right = np.searchsorted(ordered, x, side="right")
    left = np.searchsorted(ordered, x, side="left")
    ranks = (v.size - right + 1).astype(np.int64)  # 1 + how many are strictly more probable
    for j in np.flatnonzero(right - left > 1):  # ties: the lower ids come first
        ranks[j] += int(np.count_nonzero(np.flatnonzero(v == x[j]) < ids[j]))
    return ranks


class PairStore:
    """One model's stored log-probs, in ``.npz`` shards of consecutive pairs, read lazily.

    ``top_n`` None: each shard holds the full-vocabulary float32 vector of every distinct
    sentence of its pairs (``--store full``). Otherwise it holds, per pair, the union of both
    sides' top-``top_n`` tokens (plus, for models after the first of a run, the base model's
    top-300 of each side): token ids, both sides' float32 log-probs there, and the
    full-vocabulary ranks that cannot be told from those values (see ``docs/design.md``).
    Only the pair index (pair ids per shard) is read when the store is opened; a shard is read
    when one of its pairs is asked for (the last two are kept).
    """

    def __init__(
        self,
        vocab: tuple[str, ...],
        top_n: int | None,
        shards: list[Path],
        *,
        cleanup: Any = None,
    ) -> None:
        self.vocab = tuple(vocab)
        self.top_n = top_n
        self.shards = list(shards)
        self._cleanup = cleanup  # keeps a temporary folder alive as long as the store
        self._where: dict[str, tuple[int, int]] = {}
        for n, path in enumerate(self.shards):
            ids = read_npz(path, ("pair_ids",))["pair_ids"]
            if ids.ndim != 1:
                raise RunFolderError(f"{path}: pair_ids has shape {ids.shape}, expected one row")
            for k, pid in enumerate(ids.tolist()):
                self._where.setdefault(str(pid), (n, k))
        self._loaded: dict[int, dict[str, np.ndarray]] = {}

    def __repr__(self) -> str:
        what = "full vectors" if self.top_n is None else f"top {self.top_n} per side"
        return f"PairStore({len(self._where)} pairs, {what}, {len(self.shards)} shards)"

    def __contains__(self, pair_id: object) -> bool:
        return pair_id in self._where

    @property
    def pair_ids(self) -> list[str]:
        return list(self._where)

    def _shard(self, n: int) -> dict[str, np.ndarray]:
        if n not in self._loaded:
            data = read_npz(self.shards[n])
            _check_shard(self.shards[n], data, self.top_n, len(self.vocab))
            if len(self._loaded) >= 2:
                self._loaded.pop(next(iter(self._loaded)))
            self._loaded[n] = data
        return self._loaded[n]

    def _locate(self, pair_id: str) -> tuple[dict[str, np.ndarray], int]:
        try:
            n, k = self._where[pair_id]
        except KeyError:
            raise KeyError(f"no log-probs stored for pair {pair_id!r}") from None
        return self._shard(n), k

    def pair_logprobs(self, pair_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Full vectors of both sides (full stores only)."""
        if self.top_n is not None:
            raise NotStoredError(
                f"pair {pair_id!r}: this run stored the top {self.top_n} tokens per sentence, "
                "not full-vocabulary vectors; run with --store full to keep them"
            )
        shard, k = self._locate(pair_id)
        a, b = shard["rows"][k]
        return shard["logprobs"][a], shard["logprobs"][b]

    def row(self, sentence: str) -> np.ndarray:
        """The full vector of one sentence (full stores only)."""
        if self.top_n is not None:
            raise NotStoredError(
                f"this run stored the top {self.top_n} tokens per sentence, not the "
                f"full-vocabulary vector of {sentence!r}; run with --store full to keep them"
            )
        for n in range(len(self.shards)):
            shard = self._shard(n)
            hits = np.flatnonzero(shard["sentences"] == sentence)
            if hits.size:
                return shard["logprobs"][hits[0]]
        raise KeyError(f"no log-probs stored for sentence {sentence!r}")

    def to_table(self) -> VocabLogProbs:
        """Every stored sentence's full vector in one in-memory table (full stores only; what
        ``biasprobe record`` from a run folder writes out)."""
        if self.top_n is not None:
            raise NotStoredError(
                f"this run stored the top {self.top_n} tokens per sentence, not full vectors"
            )
        sentences: dict[str, np.ndarray] = {}
        for n in range(len(self.shards)):
            shard = self._shard(n)
            for k, text in enumerate(shard["sentences"].tolist()):
                sentences.setdefault(str(text), shard["logprobs"][k])
        matrix = (
            np.stack(list(sentences.values()))
            if sentences
            else np.empty((0, len(self.vocab)), np.float32)
        )
        return VocabLogProbs(tuple(sentences), matrix, self.vocab)

    def records(self, pair_id: str) -> dict[str, np.ndarray]:
        """``token_id`` (ascending), ``logprob_a``, ``logprob_b`` (float32), ``rank_a``,
        ``rank_b`` (int64 full-vocabulary ranks) of every stored token of a pair."""
        if self.top_n is None:
            a, b = self.pair_logprobs(pair_id)
            return {
                "token_id": np.arange(a.size),
                "logprob_a": a,
                "logprob_b": b,
                "rank_a": full_ranks(a),
                "rank_b": full_ranks(b),
            }
        shard, k = self._locate(pair_id)
        start, stop = shard["offsets"][k], shard["offsets"][k + 1]
        ids = np.cumsum(shard["id_steps"][start:stop].astype(np.int64))
        out = {"token_id": ids}
        depth = int(shard["depth"])
        for side in ("a", "b"):
            lp = _unshuffled(shard[f"logprob_{side}"][:, start:stop])
            ranks = np.empty(ids.size, dtype=np.int64)
            key = np.where(np.isnan(lp), -np.inf, lp.astype(np.float64))
            order = np.lexsort((ids, -key))
            near = min(depth, len(self.vocab), ids.size)
            ranks[order[:near]] = np.arange(1, near + 1)
            far = np.sort(order[near:])  # the rest, in id order
            f0, f1 = shard[f"far_offsets_{side}"][k], shard[f"far_offsets_{side}"][k + 1]
            ranks[far] = shard[f"far_rank_{side}"][f0:f1].astype(np.int64)
            out[f"logprob_{side}"] = lp
            out[f"rank_{side}"] = ranks
        return out


_TOPN_KEYS = ("pair_ids", "depth", "offsets", "id_steps")
_SIDE_KEYS = ("logprob_{}", "far_rank_{}", "far_offsets_{}")


def _check_shard(path: Path, z: dict[str, np.ndarray], top_n: int | None, n_vocab: int) -> None:
    """Check that a shard's arrays fit together as :class:`PairStoreWriter` writes them, so that
    no pair reads past an array or outside the vocabulary.

    Raises:
        RunFolderError: the first misfit, naming the shard.
    """

    def bad(what: str) -> RunFolderError:
        return RunFolderError(f"{path}: {what}; the run folder was edited or damaged")

    def ints(key: str, ndim: int = 1) -> np.ndarray:
        arr = z[key]
        if arr.dtype.kind not in "iu" or arr.ndim != ndim:
            raise bad(
                f"{key} must be integers in {ndim} dimension(s), found {arr.dtype} {arr.shape}"
            )
        return arr.astype(np.int64)

    def bounds(key: str, n: int, end: int) -> np.ndarray:
        off = ints(key)
        if off.size != n + 1 or off[0] != 0 or (np.diff(off) < 0).any() or off[-1] > end:
            raise bad(f"{key} does not split {end} values into {n} pairs")
        return off

    keys = ("pair_ids", "rows", "logprobs", "sentences") if top_n is None else _TOPN_KEYS
    keys += () if top_n is None else tuple(k.format(s) for k in _SIDE_KEYS for s in "ab")
    missing = [k for k in keys if k not in z]
    if missing:
        raise bad(f"no array {', '.join(missing)}")
    n = z["pair_ids"].size
    if z["pair_ids"].ndim != 1:
        raise bad(f"pair_ids has shape {z['pair_ids'].shape}")
    if top_n is None:
        rows, lp = ints("rows", 2), z["logprobs"]
        if rows.shape != (n, 2):
            raise bad(f"rows has shape {rows.shape}, expected ({n}, 2)")
        if lp.ndim != 2 or lp.dtype.kind != "f" or lp.shape[1] != n_vocab:
            raise bad(f"logprobs has shape {lp.shape}, expected (sentences, {n_vocab})")
        if z["sentences"].shape != (lp.shape[0],):
            raise bad(f"{z['sentences'].size} sentences for {lp.shape[0]} rows of log-probs")
        if rows.size and (rows.min() < 0 or rows.max() >= lp.shape[0]):
            raise bad("rows point past the stored log-probs")
        return
    depth = z["depth"]
    if depth.shape != () or depth.dtype.kind not in "iu" or int(depth) < 0:
        raise bad(f"depth must be one whole number, found {depth!r}")
    steps = ints("id_steps")
    off = bounds("offsets", n, steps.size)
    if off[-1] != steps.size:
        raise bad("offsets do not cover id_steps")
    if steps.size:
        if steps.min() < 0:
            raise bad("negative token id steps")
        sums = np.add.reduceat(steps, np.minimum(off[:-1], steps.size - 1))
        sums[np.diff(off) == 0] = 0
        if (sums >= n_vocab).any():
            raise bad(f"token ids past the vocabulary of {n_vocab}")
    counts = np.diff(off)
    near = np.minimum(np.minimum(int(depth), n_vocab), counts)
    for side in "ab":
        lp = z[f"logprob_{side}"]
        if lp.shape != (4, steps.size) or lp.dtype != np.uint8:
            raise bad(f"logprob_{side} has shape {lp.shape}, expected (4, {steps.size})")
        far = ints(f"far_rank_{side}")
        f_off = bounds(f"far_offsets_{side}", n, far.size)
        if (np.diff(f_off) != counts - near).any():
            raise bad(f"far_offsets_{side} do not match the tokens stored per pair")


class PairStoreWriter:
    """Writes a :class:`PairStore` shard by shard as pairs are scored (never all in memory).

    Args:
        folder: where the shards go (created).
        vocab: the model's vocabulary.
        top_n: tokens per side to keep (None: full vectors).
        depth: the top-N used for this model's own ranks (≥ ``top_n``; the base model of a run
            of several models keeps its top 300 at least).
        shard_pairs: pairs per shard.
    """

    def __init__(
        self,
        folder: Path,
        vocab: tuple[str, ...],
        top_n: int | None,
        *,
        depth: int | None = None,
        shard_pairs: int | None = None,
        cleanup: Any = None,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.vocab = tuple(vocab)
        self.top_n = top_n
        self.depth = None if top_n is None else max(int(top_n), int(depth or 0))
        self.shard_pairs = shard_pairs or (1000 if top_n is not None else 128)
        self.shards: list[Path] = []
        self.cleanup = cleanup
        self._pending: list[tuple[str, Any]] = []

    def add(
        self,
        pair_id: str,
        a: np.ndarray,
        b: np.ndarray,
        *,
        texts: tuple[str, str] = ("", ""),
        extra: np.ndarray | None = None,
    ) -> tuple | None:
        """Add one pair: the full vectors of side A and B, the sentences they belong to, and
        ``extra`` token ids to keep besides both sides' top-N. Returns what a top-N store keeps
        of the pair (:meth:`add_reduced` takes it back; None for a full store)."""
        reduced = None
        if self.top_n is None:
            self._pending.append((pair_id, (texts, a, b)))
        else:
            reduced = self._reduce(a, b, extra)
            self._pending.append((pair_id, reduced))
        if len(self._pending) >= self.shard_pairs:
            self.flush()
        return reduced

    def add_reduced(self, pair_id: str, reduced: tuple) -> None:
        """Add one pair of a top-N store as :meth:`add` reduced it (kept ids, both sides'
        log-probs of them, each side's ranks of the ids outside its own top-N)."""
        if self.top_n is None:
            raise ValueError("a full store keeps full vectors, not reduced pairs")
        self._pending.append((pair_id, reduced))
        if len(self._pending) >= self.shard_pairs:
            self.flush()

    def _reduce(self, a: np.ndarray, b: np.ndarray, extra: np.ndarray | None) -> tuple:
        depth = min(self.depth, a.size)
        own = [topk(a, depth)[0], topk(b, depth)[0]]
        keep = np.union1d(own[0], own[1])
        if extra is not None and extra.size:
            keep = np.union1d(keep, extra)
        far = []
        for s, lp in enumerate((a, b)):
            outside = np.setdiff1d(keep, own[s], assume_unique=True)
            far.append(ranks_of(lp, outside))
        return keep, a[keep], b[keep], far[0], far[1]

    def flush(self) -> None:
        """Write the pending pairs as one shard."""
        if not self._pending:
            return
        path = self.folder / f"shard-{len(self.shards):05d}.npz"
        ids = np.array([p for p, _ in self._pending], dtype=np.str_)
        if self.top_n is None:
            index: dict[str, int] = {}
            vectors: list[np.ndarray] = []
            rows = np.empty((len(self._pending), 2), dtype=np.int32)
            for k, (_, (texts, *pair)) in enumerate(self._pending):
                for s, vec in enumerate(pair):
                    if texts[s] not in index:
                        index[texts[s]] = len(vectors)
                        vectors.append(vec)
                    rows[k, s] = index[texts[s]]
            np.savez_compressed(
                path,
                pair_ids=ids,
                rows=rows,
                sentences=np.array(list(index), dtype=np.str_),
                logprobs=np.stack(vectors).astype(np.float32, copy=False),
            )
        else:
            keeps = [r[0] for r in (p for _, p in self._pending)]
            steps = [np.diff(k, prepend=0) for k in keeps]
            offsets = np.cumsum([0, *(k.size for k in keeps)])
            arrays: dict[str, np.ndarray] = {
                "pair_ids": ids,
                "depth": np.array(self.depth),
                "offsets": offsets.astype(np.int64),
                "id_steps": _small_uint(np.concatenate(steps)),
            }
            for s, side in enumerate(("a", "b")):
                lp = np.concatenate([p[1 + s] for _, p in self._pending])
                far = [p[3 + s] for _, p in self._pending]
                arrays[f"logprob_{side}"] = _shuffled(lp)
                arrays[f"far_rank_{side}"] = _small_uint(np.concatenate(far))
                arrays[f"far_offsets_{side}"] = np.cumsum([0, *(f.size for f in far)]).astype(
                    np.int64
                )
            np.savez_compressed(path, **arrays)
        self.shards.append(path)
        self._pending = []

    def close(self) -> PairStore:
        """Write what is pending and return the store."""
        self.flush()
        return PairStore(self.vocab, self.depth, self.shards, cleanup=self.cleanup)


def save_store(store: PairStore, folder: Path, rel: str) -> dict[str, Any]:
    """Put a store's shards (hard-linked where possible, else copied) and its vocabulary under
    ``folder/rel``; returns its ``results.json`` entry."""
    import os
    import shutil

    (folder / rel).mkdir(parents=True)
    np.savez_compressed(folder / rel / "vocab.npz", vocab=np.array(store.vocab, dtype=np.str_))
    shards = []
    for path in store.shards:
        target = folder / rel / path.name
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
        shards.append(f"{rel}/{path.name}")
    return {
        "store": "full" if store.top_n is None else "topn",
        "top_n": store.top_n,
        "vocab": f"{rel}/vocab.npz",
        "shards": shards,
    }


def open_store(folder: Path, entry: dict[str, Any], where: Path | None = None) -> PairStore:
    """The :class:`PairStore` of a ``results.json`` entry written by :func:`save_store`.

    Raises:
        RunFolderError: the entry is malformed (naming ``where``, the ``results.json``), or a
            file it names is unreadable (naming that file).
    """
    where = where or folder / RESULTS_JSON

    def bad(what: str) -> RunFolderError:
        return RunFolderError(f"{where}: {what}")

    if entry.get("store") not in STORE_MODES:
        raise bad(f"unknown log-prob store {entry.get('store')!r}")
    top_n = entry.get("top_n")
    if (entry["store"] == "full") != (top_n is None) or not (
        top_n is None or (isinstance(top_n, int) and not isinstance(top_n, bool) and top_n > 0)
    ):
        raise bad(f"log-prob store {entry['store']!r} with top_n {top_n!r}")
    shards = entry.get("shards")
    if not isinstance(shards, list) or not shards:
        raise bad(f"a log-prob store lists no shards ({shards!r:.40})")
    vocab_path = inside(folder, entry.get("vocab"))
    vocab = read_npz(vocab_path, ("vocab",))["vocab"]
    if vocab.ndim != 1 or vocab.dtype.kind != "U" or not vocab.size:
        raise RunFolderError(f"{vocab_path}: vocab must be one row of token strings")
    paths = [inside(folder, r) for r in shards]
    try:
        return PairStore(tuple(str(t) for t in vocab), top_n, paths)
    except RunFolderError as e:
        raise RunFolderError(f"{e} (a log-prob shard listed in {where})") from None
