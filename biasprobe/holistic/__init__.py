"""HolisticBias (Smith et al. 2022): the v1.1 sentences, expanded exactly as the dataset's own
generator expands them, and the paper's Likelihood Bias statistics (docs/holistic.md).

- :func:`sentences` / :func:`noun_phrases` (``biasprobe.holistic.dataset``): the 566,625 sentence
  rows and 22,029 noun phrases of v1.1 as pandas DataFrames; ``write_sentences`` writes them
  to CSV or Parquet without replacing an existing file.
- ``biasprobe.holistic.likelihood``: the official subset, pairwise Mann–Whitney U tests of
  per-sentence scores, Likelihood Bias shares with intervals and adjusted shares, and
  per-descriptor mean scores.

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
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        module = importlib.import_module(f"biasprobe.holistic.{_WHERE[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'biasprobe.holistic' has no attribute {name!r}")
