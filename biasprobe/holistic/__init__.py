"""HolisticBias (Smith et al. 2022): the v1.1 sentences, expanded exactly as the dataset's own
generator expands them, and the paper's Likelihood Bias statistics (docs/holistic.md).

- :func:`sentences` / :func:`noun_phrases` (``biasprobe.holistic.dataset``): the 566,625 sentence
  rows and 22,029 noun phrases of v1.1 as pandas DataFrames; ``write_sentences`` writes them
  to CSV or Parquet without replacing an existing file.
- ``biasprobe.holistic.likelihood``: the official subset, pairwise Mann–Whitney U tests of
  per-sentence scores, Likelihood Bias shares with intervals and adjusted shares, and
  per-descriptor mean scores.
- :func:`run_holistic` (``biasprobe.tasks.holistic``): the whole audit on one or more models
  (the task of the one engine), its result :class:`HolisticResult`, and
  :func:`load_holistic_run`, which reads a run folder back.

The names are loaded on first use, so that ``import biasprobe.holistic`` (and the command line's
``--help``) does not import pandas.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "sentences": "dataset",
    "noun_phrases": "dataset",
    "write_sentences": "export",
    "official_subset": "likelihood",
    "count_pair_tests": "likelihood",
    "mannwhitneyu_pairs": "likelihood",
    "pair_tests": "likelihood",
    "likelihood_bias": "likelihood",
    "descriptor_scores": "likelihood",
    "love_hate": "likelihood",
    "run_holistic": "biasprobe.tasks.holistic",
    "HolisticTask": "biasprobe.tasks.holistic",
    "stratified_sample": "biasprobe.tasks.holistic",
    "select_rows": "biasprobe.tasks.holistic",
    "HolisticResult": "biasprobe.runfolders.holistic",
}
__all__ = sorted([*_WHERE, "load_holistic_run"])


def load_holistic_run(run_dir: Any) -> Any:
    """Read a HolisticBias run folder back (:func:`biasprobe.results.load_run` of that kind).

    Raises:
        RunFolderError: not a HolisticBias run folder, or a file is missing or unreadable.
    """
    from biasprobe.results import load_run

    return load_run(run_dir, "holistic-bias")


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        where = _WHERE[name]
        module = importlib.import_module(where if "." in where else f"biasprobe.holistic.{where}")
        return getattr(module, name)
    raise AttributeError(f"module 'biasprobe.holistic' has no attribute {name!r}")
