"""What the fill-mask report reads from the run results, pair by pair.

The report's model entries and pairs (:class:`Entry`, :class:`Pair`), the pairs chosen for the
large views, the embedded arrays (:class:`Columns`, read back by :func:`decode_blob` and
:func:`cell_arrays`), the per-run lookups (:func:`score_row`, :func:`target_token_ids`,
:func:`k_of`) and the fills shifted toward each side (:func:`shifted_tokens`).
"""

from __future__ import annotations

import base64
import fnmatch
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from biasprobe.errors import UsageError
from biasprobe.report.figures import (
    quantize16,
)
from biasprobe.report.page import isna
from biasprobe.results import RunResult
from biasprobe.scores import SIGNED_SCORES

#: Skew scores shown in the tables, with their headings.
SCORE_LABELS = {
    "jaccard_distance": "Jaccard dist.",
    "rbo_distance": "RBO dist.",
    "js_divergence": "JS div. (bits)",
    "target_gap": "target gap",
    "target_gap_mean": "target gap / word",
    "kurita_bias": "Kurita bias (prior-norm.)",
}


@dataclass
class Entry:
    """One (run, model) shown in the report; entry 0 is the base model."""

    index: int
    run_index: int
    run: RunResult
    model: str
    label: str
    vocab_index: int
    stored: int | None = None
    sentence_index: dict[str, int] = field(default_factory=dict)
    vectors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Pair:
    """One probe pair (identified by its id and its two template sentences)."""

    index: int
    pair_id: str
    label: str
    run_index: int
    items: list[dict[str, Any]]
    cells: dict[int, dict[str, Any]] = field(default_factory=dict)
    sentences: dict[int, tuple[str, str]] = field(default_factory=dict)


#: Pairs given the large views by default, besides the first: the most skewed by Jaccard distance.
SKEWED_PAIRS = 5


def collect_entries(runs: Sequence[RunResult]) -> tuple[list[Entry], list[tuple[str, ...]]]:
    names = [m for run in runs for m in run.models]
    entries: list[Entry] = []
    vocabs: list[tuple[str, ...]] = []
    for r_i, run in enumerate(runs):
        for model in run.models:
            try:
                vocab = tuple(run.vocab(model))
            except KeyError:  # listed in results.json, but nothing stored for it
                continue
            try:
                v_i = vocabs.index(vocab)
            except ValueError:
                vocabs.append(vocab)
                v_i = len(vocabs) - 1
            label = model
            if names.count(model) > 1:
                label = f"{model} [{run.meta.get('run_id', f'run {r_i + 1}')}]"
            entry = Entry(len(entries), r_i, run, model, label, v_i)
            entry.stored = run.stored_top_n(model)
            entries.append(entry)
    return entries, vocabs


def collect_pairs(runs: Sequence[RunResult], entries: list[Entry]) -> list[Pair]:
    pairs: dict[tuple[str, str, str], Pair] = {}
    for r_i, run in enumerate(runs):
        items = run.items
        for pid, rows in items.groupby("pair_id", sort=False):
            rows = rows.sort_values("side")
            recs = rows.to_dict("records")
            if len(recs) != 2:
                continue
            key = (str(pid), str(recs[0]["template_sentence"]), str(recs[1]["template_sentence"]))
            if key not in pairs:
                pairs[key] = Pair(len(pairs), str(pid), str(pid), r_i, recs)
    ids = [p.pair_id for p in pairs.values()]
    for p in pairs.values():
        if ids.count(p.pair_id) > 1:
            run_id = runs[p.run_index].meta.get("run_id", f"run {p.run_index + 1}")
            p.label = f"{p.pair_id} [{run_id}]"
    return list(pairs.values())


def big_pairs(
    runs: Sequence[RunResult],
    entries: list[Entry],
    pairs: list[Pair],
    patterns: Sequence[str] | None,
) -> set[int]:
    """Indices of the pairs that get the large views: those matching ``patterns``, else the
    first pair and the :data:`SKEWED_PAIRS` with the largest Jaccard distance (under any model).

    Raises:
        UsageError: a pattern matches no pair.
    """
    if patterns:
        chosen: set[int] = set()
        for pattern in patterns:
            hit = {
                p.index
                for p in pairs
                if fnmatch.fnmatchcase(p.pair_id, pattern) or fnmatch.fnmatchcase(p.label, pattern)
            }
            if not hit:
                shown = ", ".join(p.label for p in pairs[:5]) + (", …" if len(pairs) > 5 else "")
                raise UsageError(
                    f"--pairs {pattern!r} matches none of the {len(pairs)} pairs of the runs "
                    f"(for example: {shown})"
                )
            chosen |= hit
        return chosen
    chosen = {pairs[0].index} if pairs else set()
    worst: dict[int, float] = {}
    by_key = {(p.run_index, p.pair_id): p.index for p in pairs}
    for entry in entries:
        sc = entry.run.scores
        if "jaccard_distance" not in sc:
            continue
        sc = sc[sc["model"] == entry.model]
        for pid, jd in zip(sc["pair_id"], sc["jaccard_distance"], strict=True):
            i = by_key.get((entry.run_index, str(pid)))
            if i is not None and not isna(jd) and math.isfinite(float(jd)):
                worst[i] = max(worst.get(i, -1.0), float(jd))
    ranked = sorted(worst, key=lambda i: (-worst[i], i))
    return chosen | set(ranked[:SKEWED_PAIRS])


class Columns:
    """The embedded arrays, column by column; each cell or vector is a slice of its columns."""

    def __init__(self, itype: str) -> None:
        self.itype = itype
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in ("id", "ra", "rb", "la", "lb")}
        self.parts["q"] = []
        self.n = {k: 0 for k in self.parts}

    def add_cell(self, ids: np.ndarray, ra, rb, la, lb) -> int:
        it = "<" + self.itype
        gaps = np.diff(np.asarray(ids, dtype=np.int64), prepend=0)
        offset = self.n["id"]
        for name, arr, dtype in (
            ("id", gaps, it),
            ("ra", ra, it),
            ("rb", rb, it),
            ("la", la, "<f4"),
            ("lb", lb, "<f4"),
        ):
            self.parts[name].append(np.ascontiguousarray(arr, dtype=dtype))
            self.n[name] += len(arr)
        return offset

    def add_vector(self, codes: np.ndarray) -> int:
        offset = self.n["q"]
        self.parts["q"].append(np.ascontiguousarray(codes, dtype="<u2"))
        self.n["q"] += len(codes)
        return offset

    def payload(self) -> dict[str, Any]:
        types = {"id": self.itype, "ra": self.itype, "rb": self.itype, "la": "f4", "lb": "f4"}
        types["q"] = "u2"
        chunks, columns = [], []
        for name, parts in self.parts.items():
            dtype = "<" + types[name]
            arr = np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)
            # byte planes: every value's first byte, then every second byte, … (deflates better)
            chunks.append(arr.view(np.uint8).reshape(-1, arr.itemsize).T.tobytes())
            columns.append({"name": name, "type": types[name], "n": int(arr.size)})
        packed = zlib.compress(b"".join(chunks), 6)
        return {"columns": columns, "zlib": base64.b64encode(packed).decode("ascii")}


def decode_blob(blob: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The embedded columns of a report's payload (``payload["blob"]``) as numpy arrays; the
    ``id`` column holds the token ids themselves only after a per-cell cumulative sum (see
    :func:`cell_arrays`)."""
    raw = zlib.decompress(base64.b64decode(blob["zlib"]))
    out, pos = {}, 0
    for col in blob["columns"]:
        dtype = np.dtype({"u2": "<u2", "u4": "<u4", "f4": "<f4"}[col["type"]])
        size = col["n"] * dtype.itemsize
        planes = np.frombuffer(raw[pos : pos + size], dtype=np.uint8).reshape(dtype.itemsize, -1)
        out[col["name"]] = planes.T.copy().view(dtype).reshape(-1)
        pos += size
    return out


def cell_arrays(
    columns: Mapping[str, np.ndarray], cell: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """One (pair, model) cell of the payload: ``ids, ra, rb, la, lb`` as embedded."""
    o, n = cell["o"], cell["n"]
    out = {k: columns[k][o : o + n] for k in ("ra", "rb", "la", "lb")}
    out["ids"] = np.cumsum(columns["id"][o : o + n].astype(np.int64))
    return out


def _sentence_vector(entry: Entry, sentence: str, vector: np.ndarray, cols: Columns) -> int:
    """Index of the quantized full vector of one sentence in the entry's list (embedded once)."""
    if sentence not in entry.sentence_index:
        codes, lo, step = quantize16(vector)
        entry.sentence_index[sentence] = len(entry.vectors)
        entry.vectors.append({"o": cols.add_vector(codes), "lo": lo, "step": step})
    return entry.sentence_index[sentence]


_RUN_INDEX: dict[int, tuple[Any, dict[str, Any]]] = {}


def _run_index(run: RunResult) -> dict[str, Any]:
    """Lookups built once per run (a table filter per pair is quadratic in the pairs):
    (model, pair, side) → the text the model saw, pair → its template sentences, (model, pair)
    → its target rows."""
    cached = _RUN_INDEX.get(id(run))
    if cached is not None and cached[0] is run.topk:
        return cached[1]
    t = run.topk
    seen = t.drop_duplicates(["model", "pair_id", "side"])
    sentences = {
        (str(m), str(p), str(sd)): str(x)
        for m, p, sd, x in zip(
            seen["model"], seen["pair_id"], seen["side"], seen["sentence"], strict=True
        )
    }
    items = run.items.sort_values("side", kind="stable")
    templates: dict[str, list[str]] = {}
    for pid, sent in zip(items["pair_id"], items["template_sentence"], strict=True):
        templates.setdefault(str(pid), []).append(str(sent))
    targets: dict[tuple[str, str], Any] = {}
    tt = run.targets
    if tt is not None and not tt.empty:
        for key, rows in tt.groupby(["model", "pair_id"], sort=False):
            targets[(str(key[0]), str(key[1]))] = rows
    index = {"sentences": sentences, "templates": templates, "targets": targets}
    if len(_RUN_INDEX) > 16:
        _RUN_INDEX.clear()
    _RUN_INDEX[id(run)] = (run.topk, index)
    return index


def _pair_rows(run: RunResult, model: str, pair_id: str) -> tuple[str, str] | None:
    sents = _run_index(run)["sentences"]
    a, b = sents.get((model, pair_id, "A")), sents.get((model, pair_id, "B"))
    return None if a is None or b is None else (a, b)


def same_pair(run: RunResult, pair: Pair) -> bool:
    """Whether ``run`` holds ``pair`` (its id with the same two template sentences)."""
    return _run_index(run)["templates"].get(pair.pair_id) == [
        str(pair.items[0]["template_sentence"]),
        str(pair.items[1]["template_sentence"]),
    ]


def k_of(run: RunResult, model: str, pair_id: str) -> int | None:
    row = score_row(run, model, pair_id)
    if row is None or isna(row.get("k")):
        return None
    return int(row["k"])


def pair_pass(
    entries: list[Entry],
    pair: Pair,
    big: bool,
    base_depth: int,
    big_depth: int,
    cols: Columns,
    shifts: dict[int, dict[str, dict[int, list[float]]]],
) -> None:
    """Everything the report needs from one pair's stored log-probs, each model's tokens read
    once: the embedded cell and the fills shifted toward each side."""
    for entry in entries:
        run = entry.run
        if not same_pair(run, pair):
            continue
        sents = _pair_rows(run, entry.model, pair.pair_id)
        if sents is None:
            continue
        frame = run.pair_tokens(entry.model, pair.pair_id)
        ids = frame["token_id"].to_numpy(np.int64)
        la = frame["logprob_a"].to_numpy(np.float64)
        lb = frame["logprob_b"].to_numpy(np.float64)
        ra = frame["rank_a"].to_numpy(np.int64)
        rb = frame["rank_b"].to_numpy(np.int64)
        order = np.argsort(ids, kind="stable")
        ids, la, lb, ra, rb = ids[order], la[order], lb[order], ra[order], rb[order]
        targets = target_token_ids(run, entry.model, pair.pair_id)
        depth = big_depth if big else base_depth
        if entry.stored is not None:
            depth = min(depth, entry.stored)
        pinned = np.isin(ids, targets)
        keep = (ra <= depth) | (rb <= depth) | pinned
        pos = {int(t): k for k, t in enumerate(ids[keep].tolist())}
        cell: dict[str, Any] = {
            "o": cols.add_cell(ids[keep], ra[keep], rb[keep], la[keep], lb[keep]),
            "n": int(keep.sum()),
            "d": int(depth),
            "t": [pos[t] for t in targets if t in pos],
        }
        k = k_of(run, entry.model, pair.pair_id)
        if k is not None:
            cell["k"] = k
        # with full vectors stored, the frame is the whole vocabulary in id order
        whole = entry.stored is None and ids.size == len(run.vocab(entry.model))
        if big and entry.stored is None:
            va, vb = (la, lb) if whole else run.pair_logprobs(entry.model, pair.pair_id)
            cell["v"] = [
                _sentence_vector(entry, sents[0], va, cols),
                _sentence_vector(entry, sents[1], vb, cols),
            ]
        pair.cells[entry.index] = cell
        pair.sentences[entry.index] = sents
        # fills shifted toward each side (findings), over the entry's own pairs
        if pair.run_index == entry.run_index and k is not None and not is_arbitrary([entry], pair):
            roles = [str(it.get("role")) for it in pair.items]
            add_shifts(shifts.setdefault(entry.index, {}), ra, rb, la, lb, ids, k, roles)


def target_token_ids(run: RunResult, model: str, pair_id: str) -> list[int]:
    """Vocabulary ids of a pair's one-piece target words under one model (as ``targets.csv``
    lists them; a word the vocabulary spells only in lower case is found in lower case)."""
    rows = _run_index(run)["targets"].get((model, pair_id))
    if rows is None:
        return []
    if "n_pieces" in rows:
        rows = rows[rows["n_pieces"] == 1]
    if rows.empty:
        return []
    index = _vocab_index(tuple(run.vocab(model)))
    out: list[int] = []
    for word in dict.fromkeys(str(w) for w in rows["target"]):
        i = index.get(word, index.get(word.lower()))
        if i is not None and i not in out:
            out.append(i)
    return out


_VOCAB_INDEX: dict[int, dict[str, int]] = {}


def _vocab_index(vocab: tuple[str, ...]) -> dict[str, int]:
    key = hash(vocab)
    if key not in _VOCAB_INDEX:
        index: dict[str, int] = {}
        for i, tok in enumerate(vocab):
            index.setdefault(tok, i)
        _VOCAB_INDEX.clear()
        _VOCAB_INDEX[key] = index
    return _VOCAB_INDEX[key]


_SCORE_ROWS: dict[tuple[int, str], tuple[Any, dict[str, dict[str, Any]]]] = {}


def score_row(run: RunResult, model: str, pair_id: str) -> dict[str, Any] | None:
    """The scores row of one (model, pair), from an index built once per run and model."""
    key = (id(run), model)
    cached = _SCORE_ROWS.get(key)
    if cached is None or cached[0] is not run.scores:
        s = run.scores[run.scores["model"] == model]
        rows: dict[str, dict[str, Any]] = {}
        for r in s.to_dict("records"):
            rows.setdefault(str(r["pair_id"]), r)
        if len(_SCORE_ROWS) > 64:
            _SCORE_ROWS.clear()
        cached = _SCORE_ROWS[key] = (run.scores, rows)
    row = cached[1].get(pair_id)
    return None if row is None else dict(row)


def is_signed(score: str) -> bool:
    """Whether a score is signed (tested against 0; distances are not)."""
    return score in SIGNED_SCORES or score.startswith("valence_")


def url_id(pair: Pair) -> str:
    from urllib.parse import quote

    return quote(pair.label, safe="")


def is_arbitrary(present: list[Entry], pair: Pair) -> bool:
    """Whether a run declared this pair's orientation a mere sign convention."""
    template = str(pair.items[0]["template_id"])
    return any(
        template in ((e.run.meta.get("probe_set") or {}).get("arbitrary_orientation") or [])
        for e in present
    )


#: Tokens listed per side in the findings.
FINDING_TOKENS = 5


def shifted_tokens(
    entry_run: RunResult, model: str, pair_ids: Sequence[str], top: int = FINDING_TOKENS
) -> dict[str, list[tuple[str, int, float]]]:
    """The fills most shifted toward each side, over the pairs of one model.

    Per pair, a token in one side's top-k only (k of that pair's scores row) counts for that
    side (``"minoritized"`` / ``"normative"``, from the pair's roles), with its shift = log p on
    that side − log p on the other. Ranked by the number of pairs, then the mean shift.

    Returns:
        role → ``[(token, pairs, mean shift in nats), …]`` (at most ``top``).
    """
    counts: dict[str, dict[int, list[float]]] = {}
    for pid in pair_ids:
        rows = entry_run.items[entry_run.items["pair_id"] == pid].sort_values("side")
        roles = [str(r) for r in rows["role"]]
        k = k_of(entry_run, model, pid)
        if k is None:
            continue
        f = entry_run.pair_tokens(model, pid)
        add_shifts(
            counts,
            f["rank_a"].to_numpy(),
            f["rank_b"].to_numpy(),
            f["logprob_a"].to_numpy(np.float64),
            f["logprob_b"].to_numpy(np.float64),
            f["token_id"].to_numpy(),
            k,
            roles,
        )
    return rank_shifts(counts, entry_run.vocab(model), top)


def add_shifts(
    counts: dict[str, dict[int, list[float]]],
    ra: np.ndarray,
    rb: np.ndarray,
    la: np.ndarray,
    lb: np.ndarray,
    ids: np.ndarray,
    k: int,
    roles: list[str],
) -> None:
    """Add one pair's tokens in one side's top-k only to ``counts`` (role → id → shifts)."""
    if len(roles) != 2 or set(roles) != {"minoritized", "normative"}:
        return
    in_a, in_b = ra <= k, rb <= k
    for own, other, mine, theirs, role in (
        (in_a, in_b, la, lb, roles[0]),
        (in_b, in_a, lb, la, roles[1]),
    ):
        per = counts.setdefault(role, {})
        for i in np.flatnonzero(own & ~other):
            per.setdefault(int(ids[i]), []).append(float(mine[i]) - float(theirs[i]))


def rank_shifts(
    counts: dict[str, dict[int, list[float]]], vocab: Sequence[str], top: int = FINDING_TOKENS
) -> dict[str, list[tuple[str, int, float]]]:
    out: dict[str, list[tuple[str, int, float]]] = {}
    for role in ("minoritized", "normative"):
        per = counts.get(role, {})
        ranked = sorted(per.items(), key=lambda kv: (-len(kv[1]), -float(np.mean(kv[1])), kv[0]))
        out[role] = [(vocab[t], len(v), float(np.mean(v))) for t, v in ranked[:top]]
    return out
