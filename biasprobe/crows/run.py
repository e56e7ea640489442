"""Run CrowS-Pairs on masked LMs (:func:`run_crows`, the CrowS task of
:mod:`biasprobe.tasks.crows` through :func:`biasprobe.engine.run`). The result and its run
folder (:class:`CrowsResult`) live in :mod:`biasprobe.runfolders.crows`; :func:`load_crows_run`
reads one back.
"""

from __future__ import annotations

from pathlib import Path

from biasprobe.runfolders.crows import WHAT, CrowsResult
from biasprobe.runfolders.schema import MANIFEST_KINDS
from biasprobe.tasks.crows import crows_summary, run_crows

__all__ = ["KIND", "KINDS", "WHAT", "CrowsResult", "crows_summary", "load_crows_run", "run_crows"]

KIND = "crows-pairs"
#: Manifest kinds a CrowS run may replace with ``--overwrite``.
KINDS = MANIFEST_KINDS


def load_crows_run(run_dir: str | Path) -> CrowsResult:
    """Read a CrowS run folder back (:func:`biasprobe.results.load_run` of that kind).

    Raises:
        RunFolderError: not a CrowS run folder, or a file is missing or unreadable.
    """
    from biasprobe.results import load_run

    return load_run(run_dir, KIND)  # type: ignore[return-value]
