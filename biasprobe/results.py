"""Run results: the in-memory :class:`RunResult` and the run-folder format on disk.

A run folder holds everything needed to redraw every table and figure without the model (see
``docs/design.md`` for the file list). Writing goes through :mod:`biasprobe.fsio`: files go to a
hidden staging sibling folder that is renamed into place only when complete, so a failure or
Ctrl-C never leaves a half-written run behind, and the folder carries biasprobe's manifest so
that ``--overwrite`` never replaces anything biasprobe did not write. Reading checks that every
file named in ``results.json`` lies inside the folder. This module does not import torch.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biasprobe.errors import NotStoredError, RunFolderError
from biasprobe.runfolder import RESULTS_JSON, read_meta, read_table, save_run_folder
from biasprobe.scores import full_ranks

TABLES = ("items", "topk", "scores", "summary", "targets")
LOGPROBS_DIR = "logprobs"
REPORT_HTML = "report.html"
# Read back as text whatever they hold: tokens such as "null", "nan" or "1908" and group labels
# such as "2018" are words, not missing values or numbers.
_TEXT_COLUMNS = frozenset(
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
    )
)


def model_slug(name: str) -> str:
    """A file-name-safe, readable slug for a model id (``"org/bert-x"`` → ``"org--bert-x"``)."""
    slug = name.strip().replace("\\", "/").rstrip("/")
    slug = slug.replace("/", "--").replace(":", "-")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", slug).strip("._-")
    return slug or "model"


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
        with np.load(path, allow_pickle=False) as z:
            return cls(
                sentences=tuple(str(s) for s in z["sentences"]),
                logprobs=np.asarray(z["logprobs"], dtype=np.float32),
                vocab=tuple(str(s) for s in z["vocab"]),
            )


@dataclass
class RunResult:
    """Everything one run produced, as tidy pandas tables plus the full-vocabulary log-probs.

    Attributes:
        meta: provenance and settings (the content of ``results.json``).
        items: one row per (pair_id, side): the probe pairs as expanded.
        topk: one row per (model, pair_id, side, rank).
        scores: one row per (model, pair_id) with every skew score.
        summary: means and bootstrap confidence intervals per (model, level, key, score).
        targets: one row per (model, pair_id, side, target).
        logprobs: model name → :class:`VocabLogProbs`.
    """

    meta: dict[str, Any]
    items: pd.DataFrame
    topk: pd.DataFrame
    scores: pd.DataFrame
    summary: pd.DataFrame
    targets: pd.DataFrame
    logprobs: dict[str, VocabLogProbs]

    @property
    def models(self) -> list[str]:
        """Model names in run order (the first is the base for comparisons)."""
        return [m["name"] for m in self.meta.get("models", [])]

    def sentence(self, model: str, pair_id: str, side: str) -> str:
        """The exact text the model saw for one side ("A" or "B") of a pair."""
        rows = self.topk[
            (self.topk["model"] == model)
            & (self.topk["pair_id"] == pair_id)
            & (self.topk["side"] == side)
        ]
        if rows.empty:
            raise KeyError(f"no rows for model {model!r}, pair {pair_id!r}, side {side!r}")
        return str(rows["sentence"].iloc[0])

    def vocab(self, model: str) -> tuple[str, ...]:
        """Display string of every token id of a model's vocabulary."""
        return tuple(self.logprobs[model].vocab)

    def stored_top_n(self, model: str) -> int | None:
        """How many tokens per sentence the run stored for a model: ``None`` = the whole
        vocabulary (every view and score can be redrawn), else N (each pair keeps the union of
        both sides' top-N tokens)."""
        self.logprobs[model]  # KeyError for an unknown model
        return None

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
        return (
            table.row(self.sentence(model, pair_id, "A")),
            table.row(self.sentence(model, pair_id, "B")),
        )

    def pair_tokens(self, model: str, pair_id: str) -> pd.DataFrame:
        """Every token stored for one pair under one model (the whole vocabulary when
        :meth:`stored_top_n` is ``None``): columns ``token_id, logprob_a, logprob_b`` (float64)
        and ``rank_a, rank_b`` (full-vocabulary ranks, 1 = most probable), by token id."""
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
        from biasprobe.notebook import run_result_repr

        return run_result_repr(self)

    def _repr_html_(self) -> str:
        from biasprobe.notebook import run_result_html

        return run_result_html(self)

    def scatter(
        self, pair_id: str, model: str | None = None, *, top_n: int = 200, view: str = "scatter"
    ) -> Any:
        """One pair under one model (default: the first) as a plotly figure: the report's
        scatter, or with ``view="differences"`` its differences view, of the union of each
        side's top-``top_n`` tokens. See :func:`biasprobe.notebook.scatter`."""
        from biasprobe.notebook import scatter

        return scatter(self, pair_id, model, top_n=top_n, view=view)

    def compare(
        self,
        pair_id: str,
        *others: RunResult,
        models: list[str] | None = None,
        top_n: int = 200,
        view: str = "scatter",
    ) -> Any:
        """One pair under several models (of this run and of ``others``) side by side, on
        shared axes and one colour scale, as a plotly figure. See
        :func:`biasprobe.notebook.compare`."""
        from biasprobe.notebook import compare

        return compare(self, pair_id, *others, models=models, top_n=top_n, view=view)

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
        meta["files"] = {name: f"{name}.csv" for name in TABLES}
        meta["files"]["logprobs"] = {}

        def write(tmp: Path) -> None:
            self._write_files(tmp, meta["files"]["logprobs"])
            if report is not None:
                report(self, tmp / REPORT_HTML)

        return save_run_folder(
            out_dir, meta, write, kind="run", what="run folder", overwrite=overwrite
        )

    def _write_files(self, folder: Path, logprob_files: dict[str, str]) -> None:
        """The tables and the log-prob files; ``logprob_files`` gets each model's file name."""
        (folder / LOGPROBS_DIR).mkdir()
        used: set[str] = set()
        for name, table in self.logprobs.items():
            slug, n = model_slug(name), 1
            while slug.lower() in used:  # distinct names, same slug: keep both files
                n += 1
                slug = f"{model_slug(name)}-{n}"
            used.add(slug.lower())
            rel = f"{LOGPROBS_DIR}/{slug}.npz"
            table.save(folder / rel)
            logprob_files[name] = rel
        for name in TABLES:
            getattr(self, name).to_csv(folder / f"{name}.csv", index=False)


def _inside(folder: Path, rel: Any) -> Path:
    """``folder / rel``, refusing any path that leads outside ``folder`` (symlinks resolved).

    A run folder's ``results.json`` names its files; a shared or edited folder must not be able
    to pull another file's contents into a report.
    """
    if not isinstance(rel, str) or not rel:
        raise RunFolderError(f"{folder / RESULTS_JSON}: bad file entry {rel!r}")
    root = folder.resolve()
    path = (folder / rel).resolve()
    if not path.is_relative_to(root):
        raise RunFolderError(
            f"{folder / RESULTS_JSON} names {rel!r}, which lies outside the run folder "
            f"({path}); only files inside {folder} are read"
        )
    return path


def load_run(run_dir: str | Path) -> RunResult:
    """Read a run folder written by :meth:`RunResult.save`, without any model.

    Raises:
        RunFolderError: the folder or one of its files is missing or unreadable.
    """
    d = Path(run_dir)
    meta = read_meta(d, None, "run folder")
    try:
        _inside(d, RESULTS_JSON)
        files = meta["files"]
        tables = {name: read_table(_inside(d, files[name]), _TEXT_COLUMNS) for name in TABLES}
        logprobs = {
            name: VocabLogProbs.load(_inside(d, rel)) for name, rel in files["logprobs"].items()
        }
    except (OSError, KeyError, TypeError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise RunFolderError(f"cannot read run folder {d}: {e}") from None
    return RunResult(meta=meta, logprobs=logprobs, **tables)
