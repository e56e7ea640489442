"""The interactive HTML report: one self-contained file, plotly.js inlined, opens offline.

Layout of the page, reader first: the title and one line of facts; the findings (per probe set
and model, the headline numbers of ``summary.csv`` with their CI and n, the most skewed pairs,
the fills most shifted toward each side); one section per pair, shown one at a time, with a
PAIR-style scatter and a differences view per model (labels placed without overlap), the
target words' log-probs, the pair's scores, a comparison table and the top-k lists (pairs
outside the chosen few: the figures and the top-k lists only, with a note on what is left out
and the command that brings it back); sortable tables (set and template summaries with confidence intervals, per-pair scores, and, with
several models, the change of every score from the base model and the Spearman correlation of
token rankings); a note on how to read the figures; the provenance of every run, collapsed.

What the page embeds, so that it stays small at thousands of pairs and N can change in the
browser:

* every distinct vocabulary once (JSON list of strings), not once per pair;
* per model and pair, the union of each side's top-200 tokens (top-``top_n_default`` if larger)
  with exact float32 log-probs and exact full-vocabulary ranks — the default view;
* for a few pairs only (those chosen with ``pairs=``/``--pairs``, else the first pair and the
  most skewed ones by Jaccard distance): the union of each side's top-1000 tokens, and, when the
  run stored full vectors, each sentence's full-vocabulary log-probs quantized to 16 bits (a
  uniform grid of about 0.0005 nats) for the "all" view.

The arrays are stored column by column (token ids as gaps from the previous id), each column
byte-shuffled, the whole deflated once (zlib) and base64-encoded; the page inflates it with the
browser's ``DecompressionStream``. Log-probs are read only through the
:class:`~biasprobe.results.RunResult` storage methods (``pair_tokens``, ``pair_logprobs``,
``vocab``, ``stored_top_n``), so a run that stored only each pair's top-N tokens is reported
too (without the views it did not store). All text from probe files and model metadata is
HTML-escaped here or set with ``textContent`` in the page script.
"""

from __future__ import annotations

import base64
import datetime as _dt
import fnmatch
import math
import re
import shlex
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from biasprobe import fsio
from biasprobe.errors import UsageError
from biasprobe.report.figures import (
    CHAR_WIDTH,
    COLOR_A,
    COLOR_B,
    COLORSCALE,
    EXACT_DEPTH,
    LABEL_FONT,
    LABELS_PER_SIDE,
    LINE_HEIGHT,
    POINT_RADIUS,
    TOP_FILLS_LABELLED,
    quantize16,
)
from biasprobe.report.htmlkit import Markup, escape, html, join, script_json
from biasprobe.results import RunResult
from biasprobe.scores import SIGNED_SCORES, spearman_fixed

#: The N choices offered in the page ("all" = the whole vocabulary).
TOP_N_OPTIONS: tuple[int, ...] = (30, 200, 1000)
#: Depth of the Spearman rank correlation between two models (as PAIR's notebook).
SPEARMAN_TOP = 300
#: Skew scores shown in the tables, with their headings.
SCORE_LABELS = {
    "jaccard_distance": "Jaccard dist.",
    "rbo_distance": "RBO dist.",
    "js_divergence": "JS div. (bits)",
    "target_gap": "target gap",
    "target_gap_mean": "target gap / word",
    "kurita_bias": "Kurita bias (prior-norm.)",
}
_SCHEMA = 1


@dataclass
class _Entry:
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
class _Pair:
    """One probe pair (identified by its id and its two template sentences)."""

    index: int
    pair_id: str
    label: str
    run_index: int
    items: list[dict[str, Any]]
    cells: dict[int, dict[str, Any]] = field(default_factory=dict)
    sentences: dict[int, tuple[str, str]] = field(default_factory=dict)


def write_report(
    runs: Sequence[RunResult],
    out_path: Path,
    *,
    title: str | None = None,
    top_n_default: int = 200,
    pairs: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
) -> Path:
    """Write the interactive HTML report of one or more runs as one self-contained file.

    The first model of the first run is the base: every other model is compared with it (skew
    score changes, Spearman correlation of the token rankings over the top 300).

    Args:
        runs: run results (e.g. from :func:`biasprobe.results.load_run`).
        out_path: the ``.html`` file to write. An existing file is replaced (atomically) only
            if it is a report biasprobe wrote (its generator marker); anything else, such as a
            run's ``results.json`` or a user's page, is refused.
        title: page title (default: "biasprobe report: <probe set names>").
        top_n_default: N shown first in the scatter plots (30, 200, 1000 are offered; another
            positive value is added to the choices).
        pairs: glob patterns (``fnmatch``, on the pair id or its label) of the pairs that get
            the large views (top 1000 and, when the run stored full vectors, "all") and their
            full detail tables. Default: the first pair and the :data:`SKEWED_PAIRS` most
            skewed pairs by Jaccard distance. Every pair gets the default view.
        sources: how the runs are named in the page's "how to get it" commands (the CLI passes
            the run folders); default ``RUN``.

    Returns:
        ``out_path``.

    Raises:
        UsageError: no runs, no models, a bad ``top_n_default``, or a pattern of ``pairs``
            that matches no pair.
        OutputError: the file cannot be written.
        NotOwnedError: the file exists and biasprobe did not write it (exit code 2).
    """
    if not runs:
        raise UsageError("a report needs at least one run")
    if isinstance(top_n_default, bool) or not isinstance(top_n_default, int) or top_n_default < 1:
        raise UsageError(f"top_n_default must be a positive integer, got {top_n_default!r}")
    out = fsio.check_output_file(out_path, what="report")
    page = render_report(
        runs, title=title, top_n_default=top_n_default, pairs=pairs, sources=sources
    )
    return fsio.write_report(out, page, what="report")


#: Pairs given the large views by default, besides the first: the most skewed by Jaccard distance.
SKEWED_PAIRS = 5
#: Depth of the default view embedded for every pair (or ``top_n_default`` when larger).
DEFAULT_DEPTH = 200


def render_report(
    runs: Sequence[RunResult],
    *,
    title: str | None = None,
    top_n_default: int = 200,
    pairs: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
) -> str:
    """The report page as a string (see :func:`write_report`)."""
    entries, vocabs = _entries(runs)
    if not entries:
        raise UsageError("the runs hold no models to report on")
    all_pairs = _pairs(runs, entries)
    base_depth = max(DEFAULT_DEPTH, top_n_default)
    big_depth = max(EXACT_DEPTH, top_n_default)
    big = _big_pairs(runs, entries, all_pairs, pairs)
    vmax = max(len(v) for v in vocabs)
    cols = _Columns("u2" if vmax <= 65535 else "u4")
    comparisons: dict[tuple[int, int], dict] = {}
    shifts: dict[int, dict[str, dict[int, list[float]]]] = {}
    for pair in all_pairs:
        _pair_pass(
            entries, pair, pair.index in big, base_depth, big_depth, cols, comparisons, shifts
        )
    set_names = list(
        dict.fromkeys(str(r.meta.get("probe_set", {}).get("name", "probe set")) for r in runs)
    )
    page_title = title or f"biasprobe report: {', '.join(set_names)}"
    options: list[int | str] = sorted(set(TOP_N_OPTIONS) | {top_n_default})
    options.append("all")
    command = "biasprobe report " + " ".join(shlex.quote(str(s)) for s in (sources or ["RUN"]))
    left_out = _left_out(entries, all_pairs, big, pairs, base_depth, big_depth, command)
    payload = {
        "schema": _SCHEMA,
        "topn": {
            "options": options,
            "default": top_n_default,
            "exact": base_depth,
            "big": big_depth,
        },
        "labels_per_side": LABELS_PER_SIDE,
        "top_fills_labelled": TOP_FILLS_LABELLED,
        "label_font": {
            **LABEL_FONT,
            "charWidth": CHAR_WIDTH,
            "lineHeight": LINE_HEIGHT,
            "radius": POINT_RADIUS,
        },
        "colorscale": COLORSCALE,
        "command": command,
        "vocabs": [list(v) for v in vocabs],
        "blob": cols.payload(),
        "entries": [
            {"label": e.label, "vocab": e.vocab_index, "vectors": e.vectors} for e in entries
        ],
        "pairs": [
            {
                "id": p.pair_id,
                "label": p.label,
                "groups": [p.items[0]["group"], p.items[1]["group"]],
                "big": p.index in big,
                "cells": [p.cells.get(e.index) for e in entries],
            }
            for p in all_pairs
        ],
    }
    deltas = _paired_deltas(entries)
    body = "\n".join(
        [
            _header_html(runs, entries, page_title),
            _findings_html(entries, all_pairs, deltas, shifts),
            _pairs_html(entries, all_pairs, comparisons, options, top_n_default, big, left_out),
            _summary_html(entries, all_pairs, comparisons, deltas),
            _notes_html(big_depth, left_out),
            _provenance_html(runs),
        ]
    )
    return _page(page_title, body, payload)


# --------------------------------------------------------------------------- data


def _entries(runs: Sequence[RunResult]) -> tuple[list[_Entry], list[tuple[str, ...]]]:
    names = [m for run in runs for m in run.models]
    entries: list[_Entry] = []
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
            entry = _Entry(len(entries), r_i, run, model, label, v_i)
            entry.stored = run.stored_top_n(model)
            entries.append(entry)
    return entries, vocabs


def _pairs(runs: Sequence[RunResult], entries: list[_Entry]) -> list[_Pair]:
    pairs: dict[tuple[str, str, str], _Pair] = {}
    for r_i, run in enumerate(runs):
        items = run.items
        for pid, rows in items.groupby("pair_id", sort=False):
            rows = rows.sort_values("side")
            recs = rows.to_dict("records")
            if len(recs) != 2:
                continue
            key = (str(pid), str(recs[0]["template_sentence"]), str(recs[1]["template_sentence"]))
            if key not in pairs:
                pairs[key] = _Pair(len(pairs), str(pid), str(pid), r_i, recs)
    ids = [p.pair_id for p in pairs.values()]
    for p in pairs.values():
        if ids.count(p.pair_id) > 1:
            run_id = runs[p.run_index].meta.get("run_id", f"run {p.run_index + 1}")
            p.label = f"{p.pair_id} [{run_id}]"
    return list(pairs.values())


def _big_pairs(
    runs: Sequence[RunResult],
    entries: list[_Entry],
    pairs: list[_Pair],
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
            if i is not None and not _isna(jd) and math.isfinite(float(jd)):
                worst[i] = max(worst.get(i, -1.0), float(jd))
    ranked = sorted(worst, key=lambda i: (-worst[i], i))
    return chosen | set(ranked[:SKEWED_PAIRS])


class _Columns:
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


def _sentence_vector(entry: _Entry, sentence: str, vector: np.ndarray, cols: _Columns) -> int:
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


def _same_pair(run: RunResult, pair: _Pair) -> bool:
    return _run_index(run)["templates"].get(pair.pair_id) == [
        str(pair.items[0]["template_sentence"]),
        str(pair.items[1]["template_sentence"]),
    ]


def _k_of(run: RunResult, model: str, pair_id: str) -> int | None:
    row = _score_row(run, model, pair_id)
    if row is None or _isna(row.get("k")):
        return None
    return int(row["k"])


def _pair_pass(
    entries: list[_Entry],
    pair: _Pair,
    big: bool,
    base_depth: int,
    big_depth: int,
    cols: _Columns,
    comparisons: dict[tuple[int, int], dict],
    shifts: dict[int, dict[str, dict[int, list[float]]]],
) -> None:
    """Everything the report needs from one pair's stored log-probs, each model's tokens read
    once: the embedded cell, the comparison with the base, the fills shifted toward each side."""
    base_top: list[tuple[np.ndarray, np.ndarray]] | None = None
    base_full: tuple[np.ndarray, np.ndarray] | None = None
    base_top_n = SPEARMAN_TOP
    base_scores: dict[str, Any] = {}
    for entry in entries:
        run = entry.run
        if not _same_pair(run, pair):
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
        k = _k_of(run, entry.model, pair.pair_id)
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
        if pair.run_index == entry.run_index and k is not None and not _arbitrary([entry], pair):
            roles = [str(it.get("role")) for it in pair.items]
            _add_shifts(shifts.setdefault(entry.index, {}), ra, rb, la, lb, ids, k, roles)
        # comparison with the base model
        if entry.index == 0:
            base_scores = _score_row(run, entry.model, pair.pair_id) or {}
            base_top = [
                (ids[r <= SPEARMAN_TOP], v[r <= SPEARMAN_TOP]) for r, v in ((ra, la), (rb, lb))
            ]
            base_full = (la, lb) if whole else None
            base_top_n = min(SPEARMAN_TOP, len(run.vocab(entry.model)))
            continue
        if base_top is None:
            continue
        o_scores = _score_row(run, entry.model, pair.pair_id) or {}
        deltas = {s: _num(o_scores.get(s)) - _num(base_scores.get(s)) for s in SCORE_LABELS}
        same_vocab = entry.vocab_index == entries[0].vocab_index
        rho: list[float | str | None] = [None] * 4
        if same_vocab:
            for side, ((b_ids, b_vals), o_vals) in enumerate(zip(base_top, (la, lb), strict=True)):
                at = np.searchsorted(ids, b_ids)
                found = (at < ids.size) & (ids[np.minimum(at, ids.size - 1)] == b_ids)
                if b_ids.size < base_top_n:
                    rho[side] = f"n/a (the base stored only {b_ids.size} of its top {SPEARMAN_TOP})"
                elif found.all():
                    rho[side] = _spearman(b_vals, o_vals[at])
                else:
                    rho[side] = (
                        f"n/a ({int((~found).sum())} of the base's top {SPEARMAN_TOP} not stored)"
                    )
            if entries[0].stored is None and entry.stored is None:
                b_vecs = base_full or entries[0].run.pair_logprobs(entries[0].model, pair.pair_id)
                o_vecs = (la, lb) if whole else run.pair_logprobs(entry.model, pair.pair_id)
                rho[2:] = [spearman_fixed(b, o, None) for b, o in zip(b_vecs, o_vecs, strict=True)]
            else:
                rho[2:] = ["n/a (needs --store full)"] * 2
        comparisons[(pair.index, entry.index)] = {
            "delta": deltas,
            "rho": rho,
            "same_vocab": same_vocab,
        }


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman ρ of paired values, as :func:`biasprobe.scores.spearman_fixed` computes it on the
    base's token set (NaN below two tokens)."""
    from scipy.stats import spearmanr

    if x.size < 2:
        return float("nan")
    return float(spearmanr(x, y).statistic)


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


def _targets_table(entries: list[_Entry], present: list[_Entry], pair: _Pair) -> str:
    """The target words' log p on both sides, per model (from targets.csv)."""
    ga, gb = (str(pair.items[k]["group"]) for k in (0, 1))
    rows = []
    for e in present:
        t = e.run.targets
        if t is None or t.empty:
            continue
        sub = t[(t["model"] == e.model) & (t["pair_id"] == pair.pair_id)]
        for word in dict.fromkeys(str(w) for w in sub["target"]):
            a = sub[(sub["target"] == word) & (sub["side"] == "A")]
            b = sub[(sub["target"] == word) & (sub["side"] == "B")]
            la = float(a["logprob"].iloc[0]) if not a.empty else math.nan
            lb = float(b["logprob"].iloc[0]) if not b.empty else math.nan
            pieces = sub[sub["target"] == word]["n_pieces"].iloc[0]
            rows.append(
                "<tr>"
                + (_tdt(e.label) if len(entries) > 1 else "")
                + _tdt(word, "tok")
                + _td(pieces, 0)
                + _td(la)
                + _td(lb)
                + _td(lb - la, signed=True)
                + "</tr>"
            )
    if not rows:
        return ""
    heads = ["model"] if len(entries) > 1 else []
    heads += ["target word", "pieces", f"log p (A: {ga})", f"log p (B: {gb})", "B − A"]
    return "<h4>Target words</h4>" + _sortable(heads, rows, "targets")


_SCORE_ROWS: dict[tuple[int, str], tuple[Any, dict[str, dict[str, Any]]]] = {}


def _score_row(run: RunResult, model: str, pair_id: str) -> dict[str, Any] | None:
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


#: Column headings of the per-pair comparison tables (after "pair"/"model").
CMP_HEADS = [
    *(f"Δ {v}" for v in SCORE_LABELS.values()),
    f"ρ A (base top {SPEARMAN_TOP})",
    f"ρ B (base top {SPEARMAN_TOP})",
    "ρ A (all tokens)",
    "ρ B (all tokens)",
]


def _cmp_cells(c: dict[str, Any]) -> str:
    return "".join(_td(c["delta"][s], signed=True) for s in SCORE_LABELS) + "".join(
        _td(r) if r is None or not isinstance(r, str) else _na_td(r) for r in c["rho"]
    )


def _na_td(reason: str) -> str:
    """A value that cannot be computed from what the run stored: "n/a (why)"."""
    return f'<td class="num na" data-v="">{_e(reason)}</td>'


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


# --------------------------------------------------------------------------- HTML pieces

_e = escape


def _fmt(x: Any, digits: int = 3, signed: bool = False) -> str:
    """``digits`` decimals, or two significant digits for a value that would read as 0 (a
    Kurita bias of 0.00016 is "0.00016", not "0.000"); "—" for a missing value."""
    v = _num(x)
    if math.isnan(v):
        return "—"
    if abs(v) < 1e-12:  # rounding noise of a difference, not a value
        v = 0.0
    digits = _fmt_digits(v, digits)
    return format(v, f"+.{digits}f" if signed else f".{digits}f")


def _fmt_digits(x: Any, digits: int) -> int:
    """``digits``, or the decimals of two significant digits when ``x`` would read as 0."""
    v = _num(x)
    if math.isnan(v) or abs(v) < 1e-12 or round(v, digits) != 0:
        return digits
    return 1 - math.floor(math.log10(abs(v)))


def _note_of(row: Any) -> str:
    """A summary row's ``note`` ("" when it has none)."""
    note = row.get("note") if isinstance(row, Mapping) else getattr(row, "note", None)
    return note if isinstance(note, str) else ""


def _short_note(note: str) -> str:
    """The reason a row has no interval, in a few words: "5 templates", "1 pair"."""
    short = note.split(":", 1)[0].strip() if note else ""
    return re.sub(r"^1 (templates|pairs)$", lambda m: f"1 {m.group(1)[:-1]}", short)


def _td(x: Any, digits: int = 3, signed: bool = False) -> str:
    v = _num(x)
    key = "" if math.isnan(v) else f"{v:.9g}"  # for sorting: 9 significant digits
    return f'<td class="num" data-v="{key}">{_fmt(v, digits, signed)}</td>'


def _tdt(text: Any, cls: str = "") -> Markup:
    if cls:
        return html('<td class="{}">{}</td>', cls, str(text))
    return html("<td>{}</td>", str(text))


def _kv_html(d: Any) -> Markup:
    """A nested mapping as an escaped definition list."""
    if isinstance(d, Mapping):
        if not d:
            return Markup("<span class='muted'>—</span>")
        rows = join(html("<dt>{}</dt><dd>{}</dd>", str(k), _kv_html(v)) for k, v in d.items())
        return html("<dl>{}</dl>", rows)
    if isinstance(d, list | tuple):
        if not d:
            return Markup("<span class='muted'>—</span>")
        return html("<ul>{}</ul>", join(html("<li>{}</li>", _kv_html(v)) for v in d))
    return _e("" if d is None else str(d))


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("biasprobe")
    except metadata.PackageNotFoundError:
        return "unknown"


def _header_html(runs: Sequence[RunResult], entries: list[_Entry], title: str) -> str:
    """The title and one line of facts; the full provenance is at the end of the page."""
    set_line = "; ".join(
        f"{(r.meta.get('probe_set') or {}).get('name', '?')} "
        f"v{(r.meta.get('probe_set') or {}).get('version', '?')}"
        for r in runs
    )
    created = ", ".join(str(r.meta.get("created", "?")) for r in runs)
    model_list = ", ".join(e.label for e in entries)
    base = f" (base: {entries[0].label})" if len(entries) > 1 else ""
    return html(
        """<header>
<h1>{title}</h1>
<p class="facts">Probe set <b>{sets}</b> · models <b>{models}</b>{base} ·
run {created} · <a href="#provenance">provenance</a></p>
</header>""",
        title=title,
        sets=set_line,
        models=model_list,
        base=base,
        created=created,
    )


def _provenance_html(runs: Sequence[RunResult]) -> str:
    """Everything in each run's results.json, collapsed, at the end of the page."""
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    run_blocks = []
    for r_i, run in enumerate(runs):
        meta = run.meta
        ps = meta.get("probe_set", {}) or {}
        versions = meta.get("versions", {}) or {}
        models_rows = join(
            html(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                m.get("name", ""),
                m.get("slug", ""),
                m.get("mask_token", ""),
                m.get("vocab_size", ""),
                _kv_html(m.get("info", {})),
            )
            for m in meta.get("models", [])
        )
        run_blocks.append(
            html(
                """<details class="run">
<summary>Run <code>{run_id}</code> · probe set
<b>{name}</b> · created {created}</summary>
<div class="prov">
<div><h4>Probe set</h4>{ps}</div>
<div><h4>Settings</h4>{settings}</div>
<div><h4>Versions</h4>{versions}</div>
</div>
<h4>Models{base}</h4>
<table class="models"><thead><tr><th>name</th><th>slug</th><th>mask token</th>
<th>vocab size</th><th>info</th></tr></thead><tbody>{models_rows}</tbody></table>
</details>""",
                run_id=str(meta.get("run_id", "?")),
                name=str(ps.get("name", "?")),
                created=str(meta.get("created", "?")),
                ps=_kv_html(ps),
                settings=_kv_html(meta.get("settings", {})),
                versions=_kv_html(versions),
                base=" (the first model is the base)" if r_i == 0 else "",
                models_rows=models_rows,
            )
        )
    run_versions = ", ".join(
        str((r.meta.get("versions") or {}).get("biasprobe", "?")) for r in runs
    )
    return f"""<section id="provenance">
<h2>Provenance</h2>
<p class="muted">Runs made with biasprobe {_e(run_versions)}; report written with
{_e(_version())} on {_e(now)}. Open a run for its probe set, settings, versions and models.</p>
{"".join(run_blocks)}
</section>"""


def _notes_html(depth: int, left_out: dict[str, Any]) -> str:
    return f"""<section id="reading">
<h2>How to read this report</h2>
<ul>
<li>Every figure plots <b>log-probabilities</b>: the log-softmax over the whole vocabulary at
the mask position, <code>log p(token | sentence)</code>, not raw logits. Values are in nats.</li>
<li>Scatter: x = log p(token | side A), y = log p(token | side B), for the union of each side's
top-N tokens. Points above the dashed line y = x are more likely after side B
(<span style="color:{COLOR_B}">blue</span>), below it more likely after side A
(<span style="color:{COLOR_A}">red</span>); the colour is log p(B) − log p(A). Labelled, in
this order and only where a label fits without covering another: the probe's target words,
each side's top-{TOP_FILLS_LABELLED} fills, then up to {LABELS_PER_SIDE} of the most skewed
tokens on each side of the diagonal. Hover a point for the token, both log-probs and both
ranks (1 = most probable).</li>
<li>Differences view: the same tokens, x = log p(B) − log p(A), y = their mean log-prob.</li>
<li>N = 30, 200 and 1000 use exact float32 values and exact ranks. In the <b>all</b> view,
tokens outside either side's top {depth} are drawn from values stored with 16-bit precision
(a uniform grid of about 0.0005 nats) to keep the file small; their ranks are marked ≈.</li>
<li id="left-out"><b>What this page leaves out.</b> {left_out["long"]}</li>
<li>Scores: Jaccard and RBO distances compare the two top-k lists (0 = same); JS divergence
compares the full distributions (bits, 0 = identical); target gap = log p(targets) on the
minoritized side minus the normative side. Intervals: a bootstrap over the pairs of a
template (template level); at set level the interval of the template means that inverts their
sign-flip test (so it agrees with p), none with fewer than 6 templates ("n/a": the template rows
are given instead); n = pairs.</li>
<li><b>Which direction is less biased.</b> Jaccard distance, RBO distance, JS divergence:
<b>lower = less skew</b> (0 = both sides get the same completions); a negative Δ vs the base =
less skew than the base. Target gap (and per word): <b>closer to zero = less skew</b>; its sign
says which group the targets favour (&gt; 0 minoritized, &lt; 0 normative), so compare |gap|,
not Δ. Spearman ρ between two models is not a bias score: 1 = the same token ranking,
0 = unrelated.</li>
</ul>
</section>"""


def _sortable(headers: list[str], rows: list[str], cls: str = "", deferred: bool = False) -> str:
    """A table sorted by clicking its headings. ``deferred``: the rows sit in a ``<template>``
    inside the body (parsed, but not styled or laid out while the page opens) and the page
    script moves them into the table once the first pair is drawn — for the per-pair tables,
    thousands of rows at scale."""
    ths = "".join(f'<th scope="col" title="sort">{_e(h)}</th>' for h in headers)
    body = "".join(rows)
    if deferred and rows:
        body = f'<template class="deferred-rows">{body}</template>'
    return (
        f'<table class="sortable {cls}"><thead><tr>{ths}</tr></thead><tbody>{body}</tbody></table>'
    )


def _ci_level(run: RunResult) -> str:
    conf = (run.meta.get("settings") or {}).get("confidence")
    try:
        return f"{float(conf) * 100:g}% CI"
    except (TypeError, ValueError):
        return "95% CI"


def _summary_html(
    entries: list[_Entry],
    pairs: list[_Pair],
    comparisons: dict[tuple[int, int], dict],
    deltas: dict[tuple[int, str, str, str], dict],
) -> str:
    base = entries[0]
    ci = _ci_level(base.run)

    def summary_rows(level: str) -> list[str]:
        rows = []
        for entry in entries:
            s = entry.run.summary
            s = s[(s["model"] == entry.model) & (s["level"] == level)]
            for r in s.itertuples():
                d = deltas.get((entry.index, level, str(r.key), str(r.score)), {})
                note, d_note = _note_of(r), _note_of(d)
                if note and _isna(_num(r.ci_low)):
                    notes.setdefault(note, None)
                tested = _signed(str(r.score))
                rows.append(
                    "<tr>"
                    + _tdt(entry.label)
                    + _tdt(r.key)
                    + _tdt(SCORE_LABELS.get(str(r.score), str(r.score)))
                    + _td(r.mean)
                    + _ci_td(r.ci_low, r.ci_high, note=note)
                    + _td(r.n, 0)
                    + _td(d.get("delta"), signed=True)
                    + _ci_td(d.get("delta_low"), d.get("delta_high"), signed=True, note=d_note)
                    + _td(d.get("n"), 0)
                    + _p_td(getattr(r, "p_value", None), *((note, r.n) if tested else ()))
                    + _p_td(getattr(r, "p_holm", None), *((note, r.n) if tested else ()))
                    + _p_td(d.get("p_value"), d_note, d.get("n") if d else None)
                    + "</tr>"
                )
        return rows

    notes: dict[str, None] = {}

    heads = ["mean", ci, "n", "Δ vs base", f"Δ {ci} (paired)", "n paired"]
    heads += ["p", "p (Holm)", "Δ p"]
    set_rows = summary_rows("set")
    few = _few_templates_html(notes)
    set_table = _sortable(["model", "key", "score", *heads], set_rows, "summary-set")
    tmpl_table = _sortable(
        ["model", "template", "score", *heads], summary_rows("template"), "summary-template"
    )

    out = [
        '<section id="summary"><h2>Skew scores</h2>',
        f"<h3>Probe set ({_e(ci)})</h3>",
        "<p class='muted'>Δ vs base = this model's mean − the base model's mean over the pairs "
        "both ran (n paired), with the interval of the template means of the paired "
        "differences (as for the set means; n/a with fewer than 6 templates). Distances: a "
        "negative Δ = less skew than "
        "the base. Signed target gaps: see the table below (closer to zero = less skew).</p>"
        "<p class='muted'>p = two-sided sign-flip permutation test (seeded; exact up to 16 "
        "values, else 10,000 flips) of mean 0, for the signed scores (target gap, Kurita "
        "bias): over the pairs of a template, over the template means for the probe set. "
        "p (Holm) adjusts the template p-values of one model and score for testing every "
        "template. Distances (Jaccard, RBO, JS) are never below 0, so “mean 0” is no "
        "null to test: no p. Δ p tests “no change from the base” the same way, on the "
        "paired differences.</p>",
        set_table,
        few,
        _gap_html(entries, deltas, ci),
        html(
            '<details id="per-template"{}><summary>Per template ({})</summary>{}</details>',
            Markup(" open") if few else "",
            ci,
            Markup(tmpl_table),
        ),
        "<h3>Per pair</h3><p class='muted'>Click a column heading to sort; click a pair to "
        "open its figures (above).</p>",
        _pair_scores_table(entries, pairs),
        "</section>",
    ]
    if len(entries) > 1:
        out.append(_comparison_html(entries, pairs, comparisons))
    return "\n".join(out)


def _signed(score: str) -> bool:
    """Whether a score is signed (tested against 0; distances are not)."""
    return score in SIGNED_SCORES or score.startswith("valence_")


def _few_templates_html(notes: Mapping[str, Any]) -> Markup:
    """Why some set rows have no interval or p ("n/a"), pointing to the template rows."""
    if not notes:
        return Markup("")
    return html(
        "<p class='note'>Set rows marked n/a have no set-level interval or p: {}. "
        "<a href='#per-template'>The template rows</a> (opened below) give each template's "
        "mean with its own interval.</p>",
        " · ".join(notes),
    )


def _pair_scores_table(entries: list[_Entry], pairs: list[_Pair]) -> str:
    pair_rows = []
    for pair in pairs:
        for entry in entries:
            if entry.index not in pair.cells:
                continue
            sc = _score_row(entry.run, entry.model, pair.pair_id) or {}
            top_a = str(sc.get("top_a") or "").split(" ")[0]
            top_b = str(sc.get("top_b") or "").split(" ")[0]
            pair_rows.append(
                "<tr>"
                + f'<td><a href="#pair={_e(_url_id(pair))}">{_e(pair.label)}</a></td>'
                + _tdt(entry.label)
                + _tdt(pair.items[0]["group"])
                + _tdt(pair.items[1]["group"])
                + _tdt(top_a, "tok")
                + _tdt(top_b, "tok")
                + "".join(_td(sc.get(s)) for s in SCORE_LABELS)
                + "</tr>"
            )
    return _sortable(
        ["pair", "model", "A", "B", "top-1 A", "top-1 B", *SCORE_LABELS.values()],
        pair_rows,
        "pair-scores",
        deferred=True,
    )


def _comparison_html(
    entries: list[_Entry], pairs: list[_Pair], comparisons: dict[tuple[int, int], dict]
) -> str:
    base = entries[0]
    cmp_rows = []
    for pair in pairs:
        for entry in entries[1:]:
            c = comparisons.get((pair.index, entry.index))
            if c is None:
                continue
            cmp_rows.append(
                "<tr>"
                + f'<td><a href="#pair={_e(_url_id(pair))}">{_e(pair.label)}</a></td>'
                + _tdt(entry.label)
                + _cmp_cells(c)
                + "</tr>"
            )
    table = (
        _sortable(
            ["pair", "model", *CMP_HEADS],
            cmp_rows,
            "comparison",
            deferred=True,
        )
        if cmp_rows
        else "<p class='muted'>No pair was run on both the base model and another model.</p>"
    )
    return "\n".join(
        [
            '<section id="comparison"><h2>Model comparison</h2>',
            f"<p>Per pair: change of each skew score from the base model <b>{_e(base.label)}</b> "
            "(other − base; for the distances a negative Δ means less skew than the base), and "
            "the Spearman rank correlation ρ of the two models' log-probs for side A and side "
            f"B over a token set fixed by the base model alone: <b>the base model's top "
            f"{SPEARMAN_TOP} tokens</b>, and separately <b>the whole vocabulary</b> (— when the "
            "vocabularies differ). ρ is not a bias score: 1 = the same ranking, 0 = unrelated. "
            "(Ranking over the union of both models' top tokens, as PAIR's notebook does, "
            "builds in a negative correlation: two independent random models would show "
            "ρ ≈ −0.7.)</p>",
            table,
            "</section>",
        ]
    )


def _p_td(p: Any, note: str = "", n: Any = None) -> str:
    """A p-value cell: 3 significant digits, "< 0.001" below that, — when there is none;
    "n/a (why)" when ``note`` says why there is none, or when ``n`` is a single pair (its two
    sign patterns always tie: no test, not p = 1)."""
    v = _num(p)
    if not math.isnan(_num(n)) and _num(n) < 2:
        return _na_td("n/a (1 pair)")
    if math.isnan(v):
        return _na_td(f"n/a ({_short_note(note)})") if note else '<td class="num" data-v="">—</td>'
    shown = "&lt; 0.001" if v < 0.001 else f"{v:.3f}"
    return f'<td class="num" data-v="{v!r}">{shown}</td>'


def _ci_td(low: Any, high: Any, signed: bool = False, note: str = "") -> str:
    """An interval cell: "[low, high]", or "n/a (why)" when ``note`` says why there is none."""
    if _isna(low) or _isna(high):
        if note:
            return _na_td(f"n/a ({_short_note(note)})")
        return '<td class="num" data-v="">—</td>'
    # both ends with the same decimals: enough for two significant digits of an end that
    # would read as 0 at three ("[-0.000040, 0.000710]", not "[-0.000, 0.001]")
    d = max(_fmt_digits(low, 3), _fmt_digits(high, 3))
    return (
        f'<td class="num" data-v="{_num(low)!r}">'
        f"[{_fmt(low, d, signed=signed)}, {_fmt(high, d, signed=signed)}]</td>"
    )


def _paired_deltas(entries: list[_Entry]) -> dict[tuple[int, str, str, str], dict[str, float]]:
    """(entry index, level, key, score) → :func:`biasprobe.scores.paired_delta` of the entry
    against the base model, over the pairs both ran (same probe file only)."""
    from biasprobe.scores import SUMMARY_SCORES, compare_to_base

    base = entries[0]
    settings = base.run.meta.get("settings") or {}
    kw = {
        "n_resamples": int(settings.get("bootstrap_resamples", 2000)),
        "confidence": float(settings.get("confidence", 0.95)),
        "seed": int(settings.get("seed", 0)),
    }
    base_set = base.run.meta.get("probe_set") or {}
    out: dict[tuple[int, str, str, str], dict[str, float]] = {}
    for entry in entries[1:]:
        other_set = entry.run.meta.get("probe_set") or {}
        if other_set.get("sha256") != base_set.get("sha256"):
            continue  # other sentences under the same pair ids: no paired comparison
        table = compare_to_base(
            base.run.scores,
            entry.run.scores,
            base_model=base.model,
            other_model=entry.model,
            score_names=[
                *SUMMARY_SCORES,
                *(c for c in base.run.scores.columns if str(c).startswith("valence_")),
            ],
            set_name=str(other_set.get("name", "set")),
            **kw,
        )
        for r in table.to_dict("records"):
            out[(entry.index, r["level"], str(r["key"]), r["score"])] = r
    return out


def _gap_words(d: dict[str, float], score: str = "target_gap_mean") -> str:
    if _isna(d.get("abs_delta")):
        return "—"
    flipped = d.get("sign_flipped") == 1.0
    if d["abs_delta"] < 0:
        words = "closer to zero: less skew"
    elif d["abs_delta"] > 0:
        words = "further from zero: more skew"
    else:
        words = "unchanged"
    if flipped:
        favoured = "minoritized" if d["other"] > 0 else "normative"
        if "_neg_" in score:  # more negative completions for a group do not favour it
            favoured = "normative" if d["other"] > 0 else "minoritized"
        words += f"; the sign flipped (now favours the {favoured} group)"
    return words


def _gap_html(entries: list[_Entry], deltas: dict, ci: str) -> str:
    """Signed target gaps against the base: |gap| before and after, and whether it flipped
    (probe set first, then each template)."""
    rows = []
    ordered = sorted(deltas.items(), key=lambda kv: (kv[0][0], kv[0][1] != "set"))
    for (index, level, key, score), d in ordered:
        if score not in SIGNED_SCORES and not score.startswith("valence_"):
            continue
        rows.append(
            "<tr>"
            + _tdt(entries[index].label)
            + _tdt(level)
            + _tdt(key)
            + _td(d["base"], signed=True)
            + _td(d["other"], signed=True)
            + _td(abs(d["base"]))
            + _td(abs(d["other"]))
            + _td(d["abs_delta"], signed=True)
            + _ci_td(d["abs_delta_low"], d["abs_delta_high"], signed=True, note=_note_of(d))
            + _td(d["n"], 0)
            + _tdt(_gap_words(d, score))
            + _tdt(SCORE_LABELS.get(score, score))
            + _p_td(d.get("p_value"), _note_of(d), d.get("n"))
            + "</tr>"
        )
    if not rows:
        return ""
    heads = ["model", "level", "key", "gap base", "gap model", "|gap| base", "|gap| model"]
    return (
        "<h4>Signed scores against the base (closer to zero = less skew)</h4>"
        "<p class='muted'>The target gap per word, the Kurita bias and the valence scores are "
        "signed (&gt; 0: in favour of the minoritized group's targets / more negative "
        "completions for it), so their Δ alone can mean the skew shrank, grew or flipped "
        "sign. Δ|gap| = |model| − |base| over the same pairs, with a paired bootstrap "
        "interval: negative = closer to zero = less skew. Δ p: sign-flip test of “no "
        "change” on the paired differences.</p>"
        + _sortable([*heads, "Δ|gap|", ci, "n", "reads as", "score", "Δ p"], rows, "gap-comparison")
    )


def _url_id(pair: _Pair) -> str:
    from urllib.parse import quote

    return quote(pair.label, safe="")


def _topk_table(entry: _Entry, pair: _Pair) -> str:
    t = entry.run.topk
    rows = t[(t["model"] == entry.model) & (t["pair_id"] == pair.pair_id)]
    a = rows[rows["side"] == "A"].sort_values("rank")
    b = rows[rows["side"] == "B"].sort_values("rank")
    ta, tb = list(a["token"].astype(str)), list(b["token"].astype(str))
    la, lb = list(a["logprob"]), list(b["logprob"])
    sa, sb = set(ta), set(tb)
    body = []
    for i in range(max(len(ta), len(tb))):
        cells = [f"<td class='num'>{i + 1}</td>"]
        for toks, lps, other in ((ta, la, sb), (tb, lb, sa)):
            if i < len(toks):
                cls = "tok" if toks[i] in other else "tok excl"
                cells.append(_tdt(toks[i], cls) + f"<td class='num'>{_fmt(lps[i])}</td>")
            else:
                cells.append("<td></td><td></td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return html(
        "<figure class='topk'><figcaption>{}</figcaption><table><thead><tr><th>rank</th>"
        "<th>A: {}</th><th>log p</th><th>B: {}</th><th>log p</th></tr></thead>"
        "<tbody>{}</tbody></table></figure>",
        entry.label,
        str(pair.items[0]["group"]),
        str(pair.items[1]["group"]),
        Markup("".join(body)),
    )


def _pairs_html(
    entries: list[_Entry],
    pairs: list[_Pair],
    comparisons: dict[tuple[int, int], dict],
    options: list[int | str],
    default: int,
    big: set[int],
    left_out: dict[str, Any],
) -> str:
    buttons = "".join(
        f'<button type="button" class="topn{" on" if o == default else ""}" '
        f'data-n="{_e(str(o))}" aria-pressed="{"true" if o == default else "false"}">'
        f"{_e(str(o))}</button>"
        for o in options
    )
    select = "".join(f'<option value="{p.index}">{_e(p.label)}</option>' for p in pairs)
    sections = [
        _pair_section(entries, pair, comparisons)
        if pair.index in big
        else _light_pair_section(entries, pair)
        for pair in pairs
    ]
    return f"""<section id="pairs">
<h2>Pairs</h2>
<div class="controls" role="toolbar">
<label>Pair <select id="pair-select">{select}</select></label>
<button type="button" id="prev-pair" aria-label="previous pair">◀</button>
<button type="button" id="next-pair" aria-label="next pair">▶</button>
<span class="topn-group" role="group" aria-label="top N">Top N per side: {buttons}</span>
<span id="status" class="muted" aria-live="polite"></span>
</div>
<p id="views-note" class="muted views-note">{left_out["short"]}</p>
{"".join(sections)}
</section>"""


def _pair_comparison(
    entries: list[_Entry], present: list[_Entry], pair: _Pair, comparisons: dict
) -> str:
    rows = []
    for e in present:
        c = comparisons.get((pair.index, e.index))
        if c is not None:
            rows.append("<tr>" + _tdt(e.label) + _cmp_cells(c) + "</tr>")
    if rows:
        return f"<h4>Compared with the base model ({_e(entries[0].label)})</h4>" + _sortable(
            ["model", *CMP_HEADS], rows, "pair-comparison"
        )
    if 0 not in pair.cells:
        return "<p class='muted'>The base model has no result for this pair.</p>"
    return ""


_ARBITRARY_NOTE = (
    "<p class='muted'>* The orientation of this pair is arbitrary: its two sides are not a "
    "minoritized and a normative social group (e.g. two names or two years), and the probe "
    "file declares which side counts as which only to fix the sign of the signed scores.</p>"
)


def _arbitrary(present: list[_Entry], pair: _Pair) -> bool:
    """Whether a run declared this pair's orientation a mere sign convention."""
    template = str(pair.items[0]["template_id"])
    return any(
        template in ((e.run.meta.get("probe_set") or {}).get("arbitrary_orientation") or [])
        for e in present
    )


def _pair_section(
    entries: list[_Entry], pair: _Pair, comparisons: dict[tuple[int, int], dict]
) -> str:
    present = [e for e in entries if e.index in pair.cells]
    arbitrary = _arbitrary(present, pair)
    mark = "*" if arbitrary else ""
    sent_rows = "".join(
        "<tr>"
        + _tdt(it["side"])
        + _tdt(it["group"])
        + _tdt(f"{it['role']}{mark}")
        + _tdt(it["template_sentence"], "sent")
        + _tdt("" if _isna(it.get("fills")) else it.get("fills"))
        + "</tr>"
        for it in pair.items
    )
    saw = "".join(
        f"<li>{_e(e.label)}: <q>{_e(pair.sentences[e.index][0])}</q> / "
        f"<q>{_e(pair.sentences[e.index][1])}</q></li>"
        for e in present
    )
    cols = max(1, len(present))
    cmp_html = ""
    if len(entries) > 1:
        cmp_html = _pair_comparison(entries, present, pair, comparisons)
    score_rows = "".join(
        "<tr>"
        + _tdt(e.label)
        + "".join(
            _td((_score_row(e.run, e.model, pair.pair_id) or {}).get(s)) for s in SCORE_LABELS
        )
        + "</tr>"
        for e in present
    )
    scores_html = _sortable(["model", *SCORE_LABELS.values()], [score_rows], "pair-own")
    topk = "".join(_topk_table(e, pair) for e in present)
    src = pair.items[0].get("source", "")
    figs = _figures_html(present, pair)
    return f"""<section class="pair" id="pair-{pair.index}" data-pair="{pair.index}" hidden>
{_pair_heading(pair)}
<div class="figs">{figs}</div>
{_targets_table(entries, present, pair)}
<h4>Scores of this pair</h4>
{scores_html}
{cmp_html}
<h4>Top-k lists</h4><p class="muted">Tokens in bold are in one side's list only.</p>
<div class="figs topks" style="--cols:{cols}">{topk}</div>
<h4>Sentences</h4>
<table class="sentences"><thead><tr><th>side</th><th>group</th><th>role</th>
<th>template sentence</th><th>fills</th></tr></thead><tbody>{sent_rows}</tbody></table>
{_ARBITRARY_NOTE if arbitrary else ""}
<p class="muted">Template {_e(str(pair.items[0]["template_id"]))} ·
{_e("" if _isna(src) else str(src))}</p>
<details><summary>Exact text each model saw</summary><ul>{saw}</ul></details>
</section>"""


def _pair_heading(pair: _Pair) -> Markup:
    """The heading of a pair's section: its label, both template sentences and groups."""
    ia, ib = pair.items[0], pair.items[1]
    return html(
        "<h3>{} <small>A: <q>{}</q>\n({}) · B: <q>{}</q>\n({})</small></h3>",
        pair.label,
        str(ia["template_sentence"]),
        str(ia["group"]),
        str(ib["template_sentence"]),
        str(ib["group"]),
    )


def _figures_html(present: list[_Entry], pair: _Pair) -> Markup:
    """The plot boxes of a pair: scatters first (one per model), then the differences views."""
    return join(
        html(
            '<figure><figcaption>{} · {}</figcaption><div class="plot" data-kind="{}" '
            'data-pair="{}" data-entry="{}"></div></figure>',
            e.label,
            kind_text,
            kind,
            pair.index,
            e.index,
        )
        for kind, kind_text in (
            ("scatter", "scatter"),
            ("diff", "differences"),
        )
        for e in present
    )


def _light_pair_section(entries: list[_Entry], pair: _Pair) -> str:
    """A pair outside the chosen few: its figures (default view) and top-k lists, both drawn
    from the embedded tokens by the page script; its scores are in the per-pair tables."""
    present = [e for e in entries if e.index in pair.cells]
    cols = max(1, len(present))
    return f"""<section class="pair light" id="pair-{pair.index}" data-pair="{pair.index}" hidden>
{_pair_heading(pair)}
<div class="figs">{_figures_html(present, pair)}</div>
<h4>Top-k lists</h4><p class="muted">Tokens in bold are in one side's list only. This pair's
scores: <a href="#summary">per-pair table</a>. Target words, the exact text each model saw and
the larger views: see the note above the figures.</p>
<div class="figs topks" data-topk="{pair.index}" style="--cols:{cols}"></div>
{_ARBITRARY_NOTE.replace("* ", "", 1) if _arbitrary(present, pair) else ""}
</section>"""


def _left_out(
    entries: list[_Entry],
    pairs: list[_Pair],
    big: set[int],
    patterns: Sequence[str] | None,
    base_depth: int,
    big_depth: int,
    command: str,
) -> dict[str, Markup]:
    """What the page leaves out, in words (HTML), with the command that brings it back."""
    n_big = len(big)
    chosen = (
        "the pairs chosen with --pairs"
        if patterns
        else f"the first pair and the {SKEWED_PAIRS} most skewed (Jaccard distance)"
    )
    example = shlex.quote(pairs[-1].pair_id) if pairs else "'ID'"
    partial = [e for e in entries if e.stored is not None]
    store = Markup("")
    if partial:
        store = html(
            " The runs of {} stored only each pair's top {} tokens: the &quot;all&quot; view "
            "and the Spearman ρ over all tokens need a run with <code>--store full</code>.",
            ", ".join(e.label for e in partial),
            ", ".join(sorted({str(e.stored) for e in partial})),
        )
    if n_big >= len(pairs):
        short = html(
            "Every pair has all the views embedded (top {} and, where stored, all).", big_depth
        )
        long = join([short, store])
    else:
        short = html(
            "Every pair has the top-{base} view embedded; the top-{big} and &quot;all&quot; "
            "views, the target words and the exact texts only {n_big} of {n} pairs ({chosen}). "
            "To embed them for another pair: <code>{command} --pairs {example}</code> (a glob; "
            "repeat it for several).",
            base=base_depth,
            big=big_depth,
            n_big=n_big,
            n=len(pairs),
            chosen=chosen,
            command=command,
            example=example,
        )
        long = html(
            "To keep the page small, every pair embeds the union of each side's top {base} "
            "tokens (exact float32 log-probs and ranks); {n_big} of {n} pairs ({chosen}) also "
            "embed the union of each side's top {big}, the full vocabulary (16-bit) for the "
            "&quot;all&quot; view when the run stored it, the target words' table and the exact "
            "text each model saw. For any other pair, these are in the run folder "
            "(<code>targets.csv</code>, <code>topk.csv</code>, the log-probs); to draw them "
            "here, write the report again with <code>{command} --pairs {example}</code> (a glob "
            "on the pair id, e.g. <code>--pairs 'names-*'</code>; repeat it for several; it "
            "replaces the default choice).{store}",
            base=base_depth,
            big=big_depth,
            n_big=n_big,
            n=len(pairs),
            chosen=chosen,
            command=command,
            example=example,
            store=store,
        )
    return {"short": join([short, store]) if n_big < len(pairs) else short, "long": long}


def _isna(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


# --------------------------------------------------------------------------- findings

#: Tokens listed per side in the findings.
FINDING_TOKENS = 5
#: Pairs listed as the most skewed in the findings.
FINDING_PAIRS = 3
#: Template rows listed in the findings for a set with too few templates for an interval.
FINDING_TEMPLATES = 8


def _digits(*values: Any) -> int:
    """Decimals that show the largest of ``values`` with two significant digits (at least 2,
    at most 6): 0.85 → 2, 0.00016 → 5."""
    finite = [abs(_num(v)) for v in values if not math.isnan(_num(v)) and _num(v) != 0]
    if not finite:
        return 2
    return int(min(6, max(2, -math.floor(math.log10(max(finite))) + 1)))


def _ci_text(low: Any, high: Any, level: str, digits: int = 2, signed: bool = False) -> str:
    """'95% CI 0.55–0.69' (signed values: '−0.10 to +0.31')."""
    if _isna(low) or _isna(high):
        return f"no {level}"
    a, b = _fmt(low, digits, signed), _fmt(high, digits, signed)
    return f"{level} {a} to {b}" if signed else f"{level} {a}–{b}"


def _side_names(entry: _Entry, pairs: list[_Pair]) -> dict[str, str]:
    """role → the group's name when every pair of the entry names it alike, else a phrase."""
    names: dict[str, set[str]] = {"minoritized": set(), "normative": set()}
    for pair in pairs:
        if entry.index not in pair.cells:
            continue
        for it in pair.items:
            if str(it.get("role")) in names:
                names[str(it["role"])].add(str(it["group"]))
    return {
        role: next(iter(found)) if len(found) == 1 else f"the {role} side"
        for role, found in names.items()
    }


def _set_row(entry: _Entry, score: str) -> dict[str, Any] | None:
    s = entry.run.summary
    rows = s[(s["model"] == entry.model) & (s["level"] == "set") & (s["score"] == score)]
    return None if rows.empty else rows.iloc[0].to_dict()


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
        k = _k_of(entry_run, model, pid)
        if k is None:
            continue
        f = entry_run.pair_tokens(model, pid)
        _add_shifts(
            counts,
            f["rank_a"].to_numpy(),
            f["rank_b"].to_numpy(),
            f["logprob_a"].to_numpy(np.float64),
            f["logprob_b"].to_numpy(np.float64),
            f["token_id"].to_numpy(),
            k,
            roles,
        )
    return _rank_shifts(counts, entry_run.vocab(model), top)


def _add_shifts(
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


def _rank_shifts(
    counts: dict[str, dict[int, list[float]]], vocab: Sequence[str], top: int = FINDING_TOKENS
) -> dict[str, list[tuple[str, int, float]]]:
    out: dict[str, list[tuple[str, int, float]]] = {}
    for role in ("minoritized", "normative"):
        per = counts.get(role, {})
        ranked = sorted(per.items(), key=lambda kv: (-len(kv[1]), -float(np.mean(kv[1])), kv[0]))
        out[role] = [(vocab[t], len(v), float(np.mean(v))) for t, v in ranked[:top]]
    return out


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _too_few(
    entry: _Entry, row: Mapping[str, Any], digits: int, skip: Collection[str] = ()
) -> Markup:
    """For a set row without an interval because it has too few templates: why, and each
    template's mean with its own interval (in brackets where the template has 2+ pairs) and p
    (signed scores) from the template rows of summary.csv; else ""."""
    note = _note_of(row)
    if "too few" not in note or not _isna(_num(row.get("ci_low"))):
        return Markup("")
    need = re.search(r"needs (\d+)", note)
    s = entry.run.summary
    t = s[
        (s["model"] == entry.model)
        & (s["level"] == "template")
        & (s["score"] == row["score"])
        & ~s["key"].astype(str).isin(set(skip))
    ]
    signed = _signed(str(row["score"]))
    parts = []
    for r in t.head(FINDING_TEMPLATES).to_dict("records"):
        extra = []
        if not _isna(_num(r["ci_low"])):
            a, b = _fmt(r["ci_low"], digits, signed), _fmt(r["ci_high"], digits, signed)
            extra.append(f"{a} to {b}" if signed else f"{a}–{b}")
        p = _num(r.get("p_value"))
        if signed and not math.isnan(p):
            extra.append(f"p = {_p_text(p)}")
        more = f" ({', '.join(extra)})" if extra else ""
        parts.append(f"{r['key']} {_fmt(r['mean'], digits, signed)}{more}")
    if len(t) > FINDING_TEMPLATES:
        parts.append(f"{len(t) - FINDING_TEMPLATES} more in the table")
    return html(
        "Too few templates ({}{}) for a set-level interval or test; "
        "<a href='#per-template'>per template</a>: {}.",
        int(row.get("templates") or 0),
        f"; needs {need.group(1)}" if need else "",
        ", ".join(parts),
    )


def _p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else _fmt(p, 3)


def _signed_finding(
    entry: _Entry,
    score: str,
    what: str,
    unit: str,
    more: str,
    mino: str,
    norm: str,
    level: str,
    arb_templates: Collection[str],
) -> Markup:
    """One signed set-level score (target gap, Kurita bias) as a sentence: mean, interval, n
    and p from summary.csv, or why there is no interval with the template rows instead."""
    row = _set_row(entry, score)
    if row is None or _isna(_num(row.get("mean"))) or int(row["n"]) <= 0:
        return Markup("")
    n = int(row["n"])
    dg = _digits(row["mean"], row["ci_low"], row["ci_high"])
    few = _too_few(entry, row, dg, arb_templates) if n > 1 else Markup("")
    note = _note_of(row)
    left_out = next((x.strip() for x in note.split(";") if "arbitrary" in x), "")
    if few:
        stats = f"n = {_count(n, 'pair')} in {_count(int(row['templates']), 'template')}"
    elif n > 1:
        p = _num(row.get("p_value"))
        stats = _ci_text(row["ci_low"], row["ci_high"], level, dg, True)
        stats += f", n = {n} pairs" + ("" if math.isnan(p) else f", p = {_p_text(p)}")
    else:
        stats = "one pair, so no interval"
    if left_out:
        stats += f"; {left_out}"
    return html(
        "{}: <b class='num'>{}</b>{} ({}; &gt; 0 = {}). {}",
        what.format(m=mino, o=norm),
        _fmt(row["mean"], dg, True),
        unit,
        stats,
        more.format(m=mino),
        few,
    )


def _findings_html(
    entries: list[_Entry],
    pairs: list[_Pair],
    deltas: dict[tuple[int, str, str, str], dict],
    shifts: dict[int, dict[str, dict[int, list[float]]]],
) -> str:
    """Per probe set and model: the headline numbers (from summary.csv), the most skewed pairs
    and the fills most shifted toward each side."""
    blocks = []
    for entry in entries:
        run = entry.run
        level = _ci_level(run)
        set_name = str((run.meta.get("probe_set") or {}).get("name", "probe set"))
        own = [p for p in pairs if entry.index in p.cells and p.run_index == entry.run_index]
        arbitrary = {p.pair_id for p in own if _arbitrary([entry], p)}
        oriented = [p for p in own if p.pair_id not in arbitrary]
        arb_templates = {str(p.items[0]["template_id"]) for p in own if p.pair_id in arbitrary}
        names = _side_names(entry, oriented)
        mino, norm = names["minoritized"], names["normative"]
        sentences = []
        jd = _set_row(entry, "jaccard_distance")
        sc = run.scores[run.scores["model"] == entry.model]
        ks = sorted({int(k) for k in sc["k"].dropna()}) if "k" in sc else []
        k_text = f"top-{ks[0]}" if len(ks) == 1 else "top-k"
        if jd is not None and not _isna(jd.get("mean")):
            n = int(jd["n"])
            dg = _digits(jd["mean"], jd["ci_low"], jd["ci_high"])
            few = _too_few(entry, jd, dg) if n > 1 else Markup("")
            ci = (
                _ci_text(jd["ci_low"], jd["ci_high"], level, dg)
                if n > 1
                else "one pair, so no interval"
            )
            across = f"Across {n} pairs" if n > 1 else "In its one pair"
            d = deltas.get((entry.index, "set", set_name, "jaccard_distance"))
            vs = ""
            if d is not None and not _isna(d.get("delta")) and not _isna(d.get("delta_low")):
                dd = _digits(d["delta"], d["delta_low"], d["delta_high"])
                vs = (
                    f" Against the base model: Δ = {_fmt(d['delta'], dd, True)} "
                    f"({_ci_text(d['delta_low'], d['delta_high'], level, dd, True)}, "
                    f"n = {int(d['n'])} pairs; negative = less skew)."
                )
            elif d is not None and not _isna(d.get("delta")):
                vs = (
                    f" Against the base model: Δ = {_fmt(d['delta'], dg, True)} over "
                    f"{int(d['n'])} pairs (negative = less skew; {_short_note(_note_of(d))}: "
                    "no interval)."
                )
            if arbitrary:
                # a distance has no direction, so it keeps every pair; but the sides of the
                # arbitrary pairs are no social groups, so they are not named here
                sides = html("the {} fills of each pair's two sentences", k_text)
            else:
                sides = html("the {} fills after <b>{}</b> and after <b>{}</b>", k_text, mino, norm)
            claim = (
                html("0 = the same fills, 1 = none in common). {}", few)
                if few
                else html("{}; 0 = the same fills, 1 = none in common).", ci)
            )
            sentences.append(
                html(
                    "{}, {} have a mean Jaccard distance of <b class='num'>{}</b> ({}{}",
                    across,
                    sides,
                    _fmt(jd["mean"], dg),
                    claim,
                    vs,
                )
            )
        for score, what, unit, more in (
            (
                "target_gap_mean",
                "Target words: log p after {m} − after {o}",
                " nats per word on average",
                "more likely for {m}",
            ),
            (
                "kurita_bias",
                "Kurita bias (log p of the {m} word − the {o} word, each over its prior)",
                " nats on average",
                "the attribute raises the {m} word more",
            ),
        ):
            sentence = _signed_finding(
                entry, score, what, unit, more, mino, norm, level, arb_templates
            )
            if sentence:
                sentences.append(sentence)
        details = []
        if len(own) > 1 and "jaccard_distance" in sc:
            top = sc.assign(_js=sc.get("js_divergence", 0.0)).sort_values(
                ["jaccard_distance", "_js", "pair_id"],
                ascending=[False, False, True],
                kind="stable",
            )
            links = {p.pair_id: p for p in oriented}
            shown = []
            top = top[top["pair_id"].astype(str).isin(set(links))]
            for r in top.head(FINDING_PAIRS).to_dict("records"):
                pair = links.get(str(r["pair_id"]))
                if pair is None:
                    continue
                shown.append(
                    f'<a href="#pair={_e(_url_id(pair))}">{_e(pair.label)}</a> '
                    f"({_fmt(r['jaccard_distance'], 2)})"
                )
            if shown:
                details.append("Most skewed pairs (Jaccard distance): " + ", ".join(shown) + ".")
        shifted = _rank_shifts(shifts.get(entry.index, {}), run.vocab(entry.model))
        for role in ("minoritized", "normative"):
            toks = shifted.get(role) or []
            if not toks:
                continue
            many = len(own) > 1
            listed = ", ".join(
                f"<span class='tok'>{_e(t)}</span> ("
                + (f"{c} pair{'s' if c != 1 else ''}, " if many else "")
                + f"{_fmt(s, 2, True)})"
                for t, c, s in toks
            )
            details.append(f"Fills shifted toward <b>{_e(names[role])}</b>: {listed}.")
        if arbitrary:
            details.append(
                html(
                    "{} of arbitrary orientation ({}) left out of the signed and "
                    "group-labelled findings.",
                    _count(len(arbitrary), "pair"),
                    ", ".join(sorted(arb_templates)),
                )
            )
        if details:
            details.append(
                "<span class='muted'>(tokens in one side's top-k only: "
                + ("pairs, " if len(own) > 1 else "")
                + "mean log p shift toward that side in nats)</span>"
            )
        if not sentences and not details:
            continue
        blocks.append(
            f"<div class='finding'><h3>{_e(entry.label)} <small>on {_e(set_name)}</small></h3>"
            + "".join(f"<p class='headline'>{s}</p>" for s in sentences)
            + (f"<p class='more'>{' '.join(details)}</p>" if details else "")
            + "</div>"
        )
    body = "".join(blocks) or "<p class='muted'>The runs hold no set-level scores.</p>"
    return f"""<section id="findings">
<h2>Findings</h2>
<div class="findings" style="--cols:{min(2, max(1, len(blocks)))}">{body}</div>
</section>"""


# --------------------------------------------------------------------------- page


def _asset(name: str) -> str:
    return resources.files("biasprobe.report").joinpath("assets", name).read_text("utf-8")


def _script_json(payload: Any) -> Markup:
    """JSON safe inside a ``<script>`` element (see :func:`biasprobe.report.htmlkit.script_json`)."""
    return script_json(payload)


def _page(
    title: str,
    body: str,
    payload: dict[str, Any] | None = None,
    *,
    css: str = "",
    plotly_first: bool = False,
) -> str:
    """The whole HTML page around ``body``.

    With a ``payload`` (the interactive run report) the data, plotly and ``report.js`` follow
    the body; with ``plotly_first`` (pages whose figures are drawn inline) plotly is loaded in
    the head and no ``report.js`` is added. ``css`` is appended to the report stylesheet.
    """
    from plotly.offline import get_plotlyjs

    plotly_js = get_plotlyjs().replace("</script", "<\\/script")
    plotly = f"<script>{plotly_js}</script>\n"
    head = plotly if plotly_first else ""
    tail = ""
    if payload is not None:
        tail += f'<script type="application/json" id="biasprobe-data">{_script_json(payload)}</script>\n'
    if not plotly_first:
        tail += plotly
    if payload is not None:
        tail += f"<script>{_asset('report.js')}</script>\n"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="biasprobe {_e(_version())}">
<title>{_e(title)}</title>
<style>{_asset("report.css")}{css}</style>
{head}</head>
<body>
{body}
{tail}</body>
</html>
"""
