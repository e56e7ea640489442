"""Run results of every kind, and :func:`load_run`, which reads any run folder back.

The result types and their folders live in :mod:`biasprobe.runfolders`: the fill-mask
:class:`RunResult` (with its log-prob store), the counterfactual
:class:`~biasprobe.runfolders.counterfactual.DownstreamResult` and the CrowS-Pairs
:class:`~biasprobe.runfolders.crows.CrowsResult`. Every one has ``kind``, ``meta`` (the content
of ``results.json``), ``models`` (names in run order, the first the base), ``summary`` and
``comparison`` (None or empty for one model), then the kind's own tables. The format is
described in :mod:`biasprobe.runfolders.schema`. This module does not import torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biasprobe.errors import RunFolderError
from biasprobe.runfolder import RESULTS_JSON, read_meta
from biasprobe.runfolders.counterfactual import DownstreamResult, load_counterfactual
from biasprobe.runfolders.crows import CrowsResult, load_crows
from biasprobe.runfolders.fillmask import (
    LOGPROBS_DIR,
    REPORT_HTML,
    TABLE_RULES,
    TABLES,
    TEXT_COLUMNS,
    RunResult,
    load_fill_mask,
    model_slug,
)
from biasprobe.runfolders.holistic import HolisticResult, load_holistic
from biasprobe.runfolders.schema import FORMAT, KINDS, kind_of
from biasprobe.runfolders.store import (
    BASE_EXTRA,
    DEFAULT_STORE_TOP_N,
    STORE_MODES,
    PairStore,
    PairStoreWriter,
    VocabLogProbs,
    ranks_of,
)

__all__ = [
    "BASE_EXTRA",
    "DEFAULT_STORE_TOP_N",
    "FORMAT",
    "KINDS",
    "LOGPROBS_DIR",
    "REPORT_HTML",
    "STORE_MODES",
    "TABLES",
    "TABLE_RULES",
    "TEXT_COLUMNS",
    "AnyResult",
    "CrowsResult",
    "DownstreamResult",
    "HolisticResult",
    "PairStore",
    "PairStoreWriter",
    "RunResult",
    "VocabLogProbs",
    "folder_kind",
    "load_run",
    "model_slug",
    "ranks_of",
]

AnyResult = RunResult | DownstreamResult | CrowsResult | HolisticResult
_LOADERS: dict[str, Any] = {
    "fill-mask": load_fill_mask,
    "counterfactual": load_counterfactual,
    "crows-pairs": load_crows,
    "holistic-bias": load_holistic,
}


def folder_kind(run_dir: str | Path) -> str:
    """The kind of a run folder (``fill-mask``, ``counterfactual`` or ``crows-pairs``) from its
    ``results.json`` alone, old format or today's.

    Raises:
        RunFolderError: not a run folder, or of a kind biasprobe never wrote.
    """
    d = Path(run_dir)
    return kind_of(read_meta(d, None, "run folder"), d / RESULTS_JSON)


def load_run(run_dir: str | Path, kind: str | None = None) -> AnyResult:
    """Read any run folder biasprobe wrote (every kind, the old format or today's), without
    any model.

    Args:
        run_dir: the run folder.
        kind: when given, the kind the folder must be (else :class:`RunFolderError`).

    Returns:
        A :class:`RunResult` (fill-mask), :class:`DownstreamResult` (counterfactual) or
        :class:`CrowsResult` (CrowS-Pairs); ``result.kind`` tells which.

    Raises:
        RunFolderError: the folder or one of its files is missing, unreadable or does not fit
            the rest (the message names the file), or it is not of ``kind``.
    """
    d = Path(run_dir)
    meta = read_meta(d, None, "run folder")
    found = kind_of(meta, d / RESULTS_JSON)
    if kind is not None and found != kind:
        raise RunFolderError(
            f"{d} is a {found} run folder, not a {kind} run folder "
            f"({d / RESULTS_JSON} has kind {found!r})"
        )
    try:
        return _LOADERS[found](d, meta)
    except RunFolderError as e:
        raise RunFolderError(f"cannot read run folder {d}: {e}") from None
