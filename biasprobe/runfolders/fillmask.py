"""The fill-mask run: the in-memory :class:`RunResult` and its run folder.

A run folder holds everything needed to redraw every table and figure without the model (see
``docs/design.md`` for the file list). Writing goes through :mod:`biasprobe.fsio`: files go to a
hidden staging sibling folder that is renamed into place only when complete, so a failure or
Ctrl-C never leaves a half-written run behind, and the folder carries biasprobe's manifest so
that ``--overwrite`` never replaces anything biasprobe did not write. Reading checks that every
file named in ``results.json`` lies inside the folder. This module does not import torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biasprobe import display
from biasprobe.errors import NotStoredError, RunFolderError
from biasprobe.runfolder import RESULTS_JSON, check_meta, inside, read_table, save_run_folder
from biasprobe.runfolders.schema import MANIFEST_KIND, MANIFEST_KINDS
from biasprobe.runfolders.store import PairStore, VocabLogProbs, open_store, save_store
from biasprobe.scores import full_ranks

__all__ = ["TABLES", "TABLE_RULES", "TEXT_COLUMNS", "RunResult", "load_fill_mask", "model_slug"]

TABLES = ("items", "topk", "scores", "summary", "targets")
LOGPROBS_DIR = "logprobs"
REPORT_HTML = "report.html"
# Read back as text whatever they hold: tokens such as "null", "nan" or "1908" and group labels
# such as "2018" are words, not missing values or numbers.
TEXT_COLUMNS = frozenset(
    (
        "model",
        "pair_id",
        "template_id",
        "side",
        "group",
        "role",
        "sentence",
        "template_sentence",
        "token",
        "target",
        "fills",
        "source",
        "key",
        "level",
        "score",
        "group_a",
        "group_b",
        "minoritized_group",
        "top_a",
        "top_b",
        "exclusive_a",
        "exclusive_b",
        "attribute",
        "prior_sentence",
        "piece_ids",
        "note",
    )
)


def model_slug(name: str) -> str:
    """A file-name-safe, readable slug for a model id (``"org/bert-x"`` → ``"org--bert-x"``)."""
    slug = name.strip().replace("\\", "/").rstrip("/")
    slug = slug.replace("/", "--").replace(":", "-")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", slug).strip("._-")
    return slug or "model"


@dataclass
class RunResult:
    """Everything one run produced, as tidy pandas tables plus the full-vocabulary log-probs.

    Attributes:
        meta: provenance and settings (the content of ``results.json``).
        items: one row per (pair_id, side): the probe pairs as expanded.
        topk: one row per (model, pair_id, side, rank); from :func:`biasprobe.run` its text
            columns (and ``token``) are categoricals, 1 to 4 bytes a row (the same text).
        scores: one row per (model, pair_id) with every skew score.
        summary: means and bootstrap confidence intervals per (model, level, key, score).
        targets: one row per (model, pair_id, side, target).
        logprobs: model name → its stored log-probs: a :class:`PairStore` (a run's default
            top-N store, or ``--store full``), or a :class:`VocabLogProbs` held in memory
            (full vectors; run folders written before stores existed load as one). Read them
            through :meth:`vocab`, :meth:`stored_top_n`, :meth:`pair_tokens`,
            :meth:`token_table` and :meth:`pair_logprobs`, which work the same for both.
        comparison: with several models, every score's change from the base model (the first)
            per template and set (:data:`~biasprobe.runfolders.schema.COMPARISON_COLUMNS`
            first); None for one model.
    """

    meta: dict[str, Any]
    items: pd.DataFrame
    topk: pd.DataFrame
    scores: pd.DataFrame
    summary: pd.DataFrame
    targets: pd.DataFrame
    logprobs: dict[str, VocabLogProbs | PairStore]
    comparison: pd.DataFrame | None = None

    kind = "fill-mask"

    @property
    def models(self) -> list[str]:
        """Model names in run order (the first is the base for comparisons)."""
        return [m["name"] for m in self.meta.get("models", [])]

    def sentence(self, model: str, pair_id: str, side: str) -> str:
        """The exact text the model saw for one side ("A" or "B") of a pair."""
        topk = self.topk
        cached = self.__dict__.get("_sentence_index")
        if cached is None or cached[0] is not topk:  # built once per topk table: O(1) lookups
            first = topk.drop_duplicates(["model", "pair_id", "side"])
            keys = zip(first["model"], first["pair_id"], first["side"], strict=True)
            cached = (topk, dict(zip(keys, first["sentence"], strict=True)))
            self.__dict__["_sentence_index"] = cached
        try:
            return str(cached[1][(model, pair_id, side)])
        except KeyError:
            raise KeyError(
                f"no rows for model {model!r}, pair {pair_id!r}, side {side!r}"
            ) from None

    def vocab(self, model: str) -> tuple[str, ...]:
        """Display string of every token id of a model's vocabulary."""
        return tuple(self.logprobs[model].vocab)

    def stored_top_n(self, model: str) -> int | None:
        """How many tokens per sentence the run stored for a model: ``None`` = the whole
        vocabulary (every view and score can be redrawn), else N (each pair keeps the union of
        both sides' top-N tokens; the base model of a run of several models keeps at least its
        top 300, and later models also the base's top 300 of each side)."""
        return getattr(self.logprobs[model], "top_n", None)

    def pair_logprobs(self, model: str, pair_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Full-vocabulary log-probs (V,) of side A and side B of a pair under one model.

        Raises:
            NotStoredError: the run stored only the top-N tokens of each sentence.
        """
        if self.stored_top_n(model) is not None:
            raise NotStoredError(
                f"model {model!r}: this run stored the top {self.stored_top_n(model)} tokens "
                "per sentence, not full-vocabulary vectors; run with --store full to keep them"
            )
        table = self.logprobs[model]
        if isinstance(table, PairStore):
            return table.pair_logprobs(pair_id)
        return (
            table.row(self.sentence(model, pair_id, "A")),
            table.row(self.sentence(model, pair_id, "B")),
        )

    def pair_tokens(self, model: str, pair_id: str) -> pd.DataFrame:
        """Every token stored for one pair under one model (the whole vocabulary when
        :meth:`stored_top_n` is ``None``): columns ``token_id, logprob_a, logprob_b`` (float64)
        and ``rank_a, rank_b`` (full-vocabulary ranks, 1 = most probable), by token id."""
        table = self.logprobs[model]
        if isinstance(table, PairStore) and table.top_n is not None:
            rec = table.records(pair_id)
            return pd.DataFrame(
                {
                    "token_id": rec["token_id"],
                    "logprob_a": rec["logprob_a"].astype(np.float64),
                    "logprob_b": rec["logprob_b"].astype(np.float64),
                    "rank_a": rec["rank_a"],
                    "rank_b": rec["rank_b"],
                }
            )
        a, b = self.pair_logprobs(model, pair_id)
        return pd.DataFrame(
            {
                "token_id": np.arange(a.size),
                "logprob_a": a.astype(np.float64),
                "logprob_b": b.astype(np.float64),
                "rank_a": full_ranks(a),
                "rank_b": full_ranks(b),
            }
        )

    def token_table(self, model: str, pair_id: str, top_n: int | None = None) -> pd.DataFrame:
        """Per-token log-probs of both sides of a pair, as drawn in the scatter.

        Args:
            model: model name.
            pair_id: pair id.
            top_n: keep the union of each side's ``top_n`` tokens (None: whole vocabulary).

        Returns:
            Columns ``token_id, token, logprob_a, logprob_b, diff`` (= logprob_b − logprob_a),
            ``rank_a, rank_b`` (1 = most probable), sorted by ``diff``.

        Raises:
            NotStoredError: ``top_n`` is None or larger than the stored top-N.
        """
        stored = self.stored_top_n(model)
        if stored is not None and (top_n is None or top_n > stored):
            wanted = "the whole vocabulary" if top_n is None else f"the top {top_n} tokens"
            raise NotStoredError(
                f"model {model!r}, pair {pair_id!r}: {wanted} asked, but this run stored the "
                f"top {stored} per sentence; run with --store full (or a larger --store-top-n)"
            )
        table = self.pair_tokens(model, pair_id)
        if top_n is not None:
            table = table[(table["rank_a"] <= top_n) | (table["rank_b"] <= top_n)]
        vocab = self.vocab(model)
        table = table.reset_index(drop=True)
        table.insert(1, "token", [vocab[i] for i in table["token_id"]])
        table.insert(4, "diff", table["logprob_b"] - table["logprob_a"])
        return table.sort_values("diff", kind="stable").reset_index(drop=True)

    def __repr__(self) -> str:
        # the view layer registers the rich text (biasprobe.notebook); without it, a short line
        text = display.text_of(self)
        if text is not None:
            return text
        name = (self.meta.get("probe_set") or {}).get("name", "?")
        return f"<RunResult {name!r}: {len(self.models)} model(s), {len(self.scores)} score rows>"

    def _repr_html_(self) -> str | None:
        return display.html_of(self)

    def scatter(
        self,
        pair_id: str,
        model: str | None = None,
        *,
        top_n: int | None = None,
        view: str = "scatter",
    ) -> Any:
        """One pair under one model (default: the first) as a plotly figure: the report's
        scatter, or with ``view="differences"`` its differences view, of the union of each
        side's top-``top_n`` tokens. See :func:`biasprobe.notebook.scatter`."""
        return display.view("RunResult.scatter")(self, pair_id, model, top_n=top_n, view=view)

    def compare(
        self,
        pair_id: str,
        *others: RunResult,
        models: list[str] | None = None,
        top_n: int | None = None,
        view: str = "scatter",
    ) -> Any:
        """One pair under several models (of this run and of ``others``) side by side, on
        shared axes and one colour scale, as a plotly figure. See
        :func:`biasprobe.notebook.compare`."""
        return display.view("RunResult.compare")(
            self, pair_id, *others, models=models, top_n=top_n, view=view
        )

    def save(
        self,
        out_dir: str | Path,
        overwrite: bool = False,
        *,
        report: Callable[[RunResult, Path], Any] | None = None,
    ) -> Path:
        """Write the run folder atomically and return its path.

        The folder gets biasprobe's manifest (kind ``"run"``) listing every file written, so a
        later ``overwrite`` can tell it from a user's folder.

        Args:
            out_dir: folder to create. It must not exist (or be empty) unless ``overwrite``.
            overwrite: replace an existing run folder that biasprobe wrote and that holds no
                other file.
            report: optional ``report(result, path)`` writing ``report.html`` into the folder
                before it is moved into place (both appear together or neither).

        Raises:
            OutputError: the folder exists, or cannot be written.
            NotOwnedError: ``overwrite`` was asked for a folder biasprobe did not write.
        """
        meta = dict(self.meta)
        meta["files"] = {name: f"{name}.csv" for name in self._tables()}
        meta["files"]["logprobs"] = {}  # model → file name, or a store's entry

        def write(tmp: Path) -> None:
            self._write_files(tmp, meta["files"]["logprobs"])
            if report is not None:
                report(self, tmp / REPORT_HTML)

        return save_run_folder(
            out_dir, meta, write, kind=MANIFEST_KIND, what="run folder", overwrite=overwrite,
            replaces=MANIFEST_KINDS,
        )  # fmt: skip

    def _tables(self) -> tuple[str, ...]:
        return TABLES if self.comparison is None else (*TABLES, "comparison")

    def _write_files(self, folder: Path, logprob_files: dict[str, Any]) -> None:
        """The tables and the log-prob files; ``logprob_files`` gets each model's file name."""
        (folder / LOGPROBS_DIR).mkdir()
        used: set[str] = set()
        for name, table in self.logprobs.items():
            slug, n = model_slug(name), 1
            while slug.lower() in used:  # distinct names, same slug: keep both files
                n += 1
                slug = f"{model_slug(name)}-{n}"
            used.add(slug.lower())
            if isinstance(table, PairStore):
                logprob_files[name] = save_store(table, folder, f"{LOGPROBS_DIR}/{slug}")
                continue
            rel = f"{LOGPROBS_DIR}/{slug}.npz"
            table.save(folder / rel)
            logprob_files[name] = rel
        for name in self._tables():
            getattr(self, name).to_csv(folder / f"{name}.csv", index=False)


#: What each table of a fill-mask run folder must hold for the reports: required columns,
#: number columns (finite or missing), count columns (whole ≥ 0 or missing), never-missing ones.
TABLE_RULES: dict[str, dict[str, tuple[str, ...]]] = {
    "items": {
        "required": ("pair_id", "template_id", "side", "group", "role", "template_sentence"),
        "counts": ("prior_mask_index",),
    },
    "topk": {
        "required": ("model", "pair_id", "side", "sentence", "rank", "token", "logprob"),
        "numbers": ("logprob",),
        "counts": ("rank", "token_id"),
        "filled": ("rank",),
    },
    "scores": {
        "required": ("model", "pair_id"),
        "numbers": (
            *("overlap", "jaccard_distance", "rbo", "rbo_distance", "js_divergence", "top1_same"),
            *("target_gap", "target_gap_mean", "kurita_bias"),
        ),
        "counts": ("k", "n_targets"),
    },
    "summary": {
        "required": ("model", "level", "key", "score", "mean", "ci_low", "ci_high", "n"),
        "numbers": ("mean", "ci_low", "ci_high", "p_value", "p_holm"),
        "counts": ("n",),
        "filled": ("n",),
    },
    "targets": {
        "required": ("model", "pair_id", "side", "target", "logprob"),
        "numbers": ("logprob", "prior_logprob"),
        "counts": ("n_pieces",),
    },
    "comparison": {
        "required": ("model", "base", "level", "key", "score", "change", "n"),
        "numbers": ("base_mean", "model_mean", "change", "ci_low", "ci_high", "p_value"),
        "counts": ("n",),
    },
}


def _read_run_table(folder: Path, files: dict[str, Any], name: str) -> pd.DataFrame:
    rules = dict(TABLE_RULES[name])
    table = read_table(inside(folder, files[name]), TEXT_COLUMNS, **rules)
    if name == "scores":  # valence and later measures: every other score column is a number
        extra = [c for c in table.columns if str(c).startswith("valence_")]
        if extra:
            table = read_table(
                inside(folder, files[name]),
                TEXT_COLUMNS,
                **{**rules, "numbers": (*rules["numbers"], *extra)},
            )
    return table


def load_fill_mask(d: Path, meta: dict[str, Any]) -> RunResult:
    """Read the fill-mask run folder ``d`` (its ``results.json`` already read as ``meta``, of
    the old format or today's), without any model; :func:`biasprobe.results.load_run` calls it.

    The folder is checked as it is read: ``results.json`` (:func:`biasprobe.runfolder.check_meta`),
    each table's columns (:data:`TABLE_RULES`), that the tables name only the run's models and
    pairs, that every model's log-probs hold the pairs of its top-k rows, and each log-prob shard
    when it is first read; only regular files inside the folder are read.

    Raises:
        RunFolderError: one of its files is missing, unreadable or does not fit the rest; the
            message names the file.
    """
    from biasprobe.runfolders.schema import upgrade_meta

    where = d / RESULTS_JSON
    check_meta(meta, where)
    meta = upgrade_meta(meta, where)
    return _load_checked(d, meta)


def _load_checked(d: Path, meta: dict[str, Any]) -> RunResult:
    """:func:`load_fill_mask` past ``results.json``: every check, then the result."""
    where = d / RESULTS_JSON
    inside(d, RESULTS_JSON)
    files = meta.get("files")
    if not isinstance(files, dict) or not isinstance(files.get("logprobs"), dict):
        raise RunFolderError(f"{where}: files must name the tables and a logprobs object")
    for name in TABLES:
        if not isinstance(files.get(name), str):
            raise RunFolderError(f"{where}: files.{name} must name the {name} table")
    tables = {name: _read_run_table(d, files, name) for name in TABLES}
    comparison = None
    if "comparison" in files:
        comparison = _read_run_table(d, files, "comparison")
    models = [m["name"] for m in meta["models"]]
    logprobs: dict[str, VocabLogProbs | PairStore] = {}
    for name, rel in files["logprobs"].items():
        if name not in models:
            raise RunFolderError(f"{where}: files.logprobs names {name!r}, not one of its models")
        if isinstance(rel, dict):
            logprobs[name] = open_store(d, rel, where)
        else:
            logprobs[name] = VocabLogProbs.load(inside(d, rel))
    for m in meta["models"]:
        size = m.get("vocab_size")
        if (
            m["name"] in logprobs
            and isinstance(size, int)
            and size != len(logprobs[m["name"]].vocab)
        ):
            entry = files["logprobs"][m["name"]]
            rel = entry.get("vocab") if isinstance(entry, dict) else entry
            raise RunFolderError(
                f"{d / str(rel)}: {len(logprobs[m['name']].vocab)} tokens, but {RESULTS_JSON} "
                f"gives {m['name']!r} a vocabulary of {size}; the run folder was edited or damaged"
            )
    _check_tables(d, files, models, tables, logprobs)
    return RunResult(meta=meta, logprobs=logprobs, comparison=comparison, **tables)


def _check_tables(
    folder: Path,
    files: dict[str, Any],
    models: list[str],
    tables: dict[str, pd.DataFrame],
    logprobs: dict[str, VocabLogProbs | PairStore],
) -> None:
    """The tables name only the run's models and pairs; the stored log-probs hold every pair
    (or sentence) of each model's top-k rows.

    Raises:
        RunFolderError: naming the table or store that does not fit.
    """
    items = tables["items"]
    path = {name: folder / files[name] for name in TABLES}
    sides = set(items["side"])
    if not sides <= {"A", "B"}:
        raise RunFolderError(
            f"{path['items']}: side must be A or B, found {sorted(sides - {'A', 'B'})[:3]}"
        )
    pairs = set(items["pair_id"])
    for name in ("topk", "scores", "summary", "targets"):
        t = tables[name]
        others = set(t["model"]) - set(models)
        if others:
            raise RunFolderError(
                f"{path[name]}: model {sorted(others)[0]!r} is not one of the run's models "
                f"in {RESULTS_JSON}"
            )
        if "pair_id" in t:
            stray = set(t["pair_id"]) - pairs
            if stray:
                raise RunFolderError(
                    f"{path[name]}: pair {sorted(stray)[0]!r} is not in {files['items']}"
                )
    topk = tables["topk"]
    for model, stored in logprobs.items():
        rows = topk[topk["model"] == model]
        if isinstance(stored, PairStore):
            lost = [p for p in dict.fromkeys(rows["pair_id"]) if p not in stored]
            where = ", ".join(p.name for p in stored.shards[:3]) or "no shards"
        else:
            lost = [t for t in dict.fromkeys(rows["sentence"]) if t not in stored]
            where = files["logprobs"][model]
        if lost:
            raise RunFolderError(
                f"the log-probs of {model!r} ({where}) hold nothing for {lost[0]!r} of "
                f"{files['topk']}; the run folder was edited or damaged"
            )
