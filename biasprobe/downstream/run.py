"""Counterfactual probe pairs on classifiers: :func:`run_downstream` (the counterfactual task,
:mod:`biasprobe.tasks.counterfactual`, through :func:`biasprobe.engine.run`) and reading a run
folder back (:func:`load_downstream_run`).

:func:`run_downstream` scores both sentences of every pair with every classifier and returns a
:class:`DownstreamResult` of tidy tables:

* ``items`` — one row per (pair, side): the pairs as expanded;
* ``downstream`` — one row per (model, pair, side): ``p_positive`` and the predicted ``label``;
* ``scores`` — one row per (model, pair): Δ, |Δ|, flip, invariance failure (see
  :mod:`biasprobe.downstream.scores`);
* ``summary`` — per model, template and set: mean, 95% CI, n and p-values of every score;
* ``comparison`` — with several models only (else None), the change of every score from the
  first (base) model with a paired bootstrap CI over the same pairs.

:class:`DownstreamResult` and its run folder live in :mod:`biasprobe.runfolders.counterfactual`
(manifest kind ``run``, the one run-folder format). The terminal tables and the command are in
:mod:`biasprobe.downstream.cli`.
"""

from __future__ import annotations

from pathlib import Path

from biasprobe.errors import RunFolderError
from biasprobe.runfolders.counterfactual import DownstreamResult
from biasprobe.runfolders.schema import MANIFEST_KIND
from biasprobe.tasks.counterfactual import run_downstream

__all__ = [
    "RUN_KIND",
    "DownstreamResult",
    "is_downstream_run",
    "load_downstream_run",
    "run_downstream",
]

RUN_KIND = MANIFEST_KIND
WHAT = "counterfactual run folder"


def is_downstream_run(path: str | Path) -> bool:
    """Whether ``path`` is a counterfactual run folder (old format or today's).

    For ``biasprobe report``: tells a counterfactual run from a fill-mask run without loading
    it.
    """
    from biasprobe.results import folder_kind

    try:
        return folder_kind(path) == "counterfactual"
    except RunFolderError:
        return False


def load_downstream_run(run_dir: str | Path) -> DownstreamResult:
    """Read a counterfactual run folder (:func:`biasprobe.results.load_run` of that kind).

    Raises:
        RunFolderError: the folder is missing, not a counterfactual run, or a file is
            unreadable or does not fit; the message names the file.
    """
    from biasprobe.results import load_run

    return load_run(run_dir, "counterfactual")  # type: ignore[return-value]
