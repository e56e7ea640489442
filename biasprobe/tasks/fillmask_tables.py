"""The tables a fill-mask model's scoring fills as it streams (``topk`` columns preallocated
per chunk, the other tables as frames joined once) and the sentence vectors it holds for pairs
still to come (in memory up to :data:`HELD_LIMIT`, beyond it in a temporary file), plus the
log-prob store writer of one model."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biasprobe.errors import UsageError
from biasprobe.results import (
    STORE_MODES,
    PairStoreWriter,
    model_slug,
)

#: Sentence vectors held in memory for pairs still to come (sentences shared by distant pairs);
#: beyond it they wait in a temporary file, so memory never grows with the suite.
HELD_LIMIT = 512


class TopkColumns:
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
                wide = code_dtype(len(seen))
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


def code_dtype(n: int) -> np.dtype:
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
    lookup = np.zeros(int(used[-1]) + 1 if used.size else 1, dtype=code_dtype(len(categories)))
    lookup[used] = [code_of[text] for text in shown]
    return pd.Categorical.from_codes(lookup[token_id], categories=pd.Index(categories, dtype="str"))


class Frames:
    """Per-request frames of one table, joined 64 at a time (a frame has a fixed cost that
    100,000 pairs would otherwise pay 1,500 times)."""

    def __init__(self) -> None:
        self.joined: list[pd.DataFrame] = []
        self.pending: list[pd.DataFrame] = []

    def append(self, frame: pd.DataFrame) -> None:
        self.pending.append(frame)
        if len(self.pending) >= 64:
            self.joined.append(concat_frames(self.pending))
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
        return concat_frames(frames)
    joined = {
        name: pd.concat([f.pop(name) for f in frames], ignore_index=True)
        for name in list(frames[0].columns)
    }
    return pd.DataFrame(joined, copy=False)


def concat_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
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


class Held:
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


def store_writer(backend, store, top_n, depth, workdir) -> PairStoreWriter | None:
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

    from biasprobe.fsio import pid_alive

    root, host = Path(tempfile.gettempdir()), socket.gethostname()
    for old in root.glob(f"{STORE_TMP_PREFIX}*"):
        try:
            owner = json.loads((old / "owner.json").read_text(encoding="utf-8"))
            pid, where = int(owner["pid"]), str(owner["host"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours, or being created: left alone
        if where == host and not pid_alive(pid) and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{STORE_TMP_PREFIX}{os.getpid()}-"))
    owner = {"pid": os.getpid(), "host": host}
    (folder / "owner.json").write_text(json.dumps(owner), encoding="utf-8")
    return folder


class _Cleanup:
    """Owner of a temporary store folder: removed when the last store using it is gone."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
