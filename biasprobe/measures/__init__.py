"""Measures as units: each measure declares its columns, which are signed, its "less biased"
direction, formula, source and what it needs, and registers itself; the rest of biasprobe asks
the registry. Adding a measure is one module plus its :func:`register` call (the smallest
example: :mod:`biasprobe.measures.valence`).

Registered here: the built-in fill-mask measures (:mod:`biasprobe.measures.fillmask`), the
optional valence measure (:mod:`biasprobe.measures.valence`), the counterfactual measures and
the CrowS-Pairs metric (:mod:`biasprobe.measures.counterfactual`).
"""

from __future__ import annotations

from biasprobe.measures import counterfactual, fillmask, valence
from biasprobe.measures.registry import (
    KINDS,
    Measure,
    active_in,
    all_measures,
    blank_sentence_scores,
    compute_pair,
    get,
    is_signed,
    label,
    less_biased,
    load_resources,
    measure_of,
    names,
    optional_columns,
    optional_names,
    prepare_contexts,
    register,
    run_settings,
    sentence_columns,
    signed_columns,
    summary_scores,
    unregister,
)

__all__ = [
    "KINDS",
    "Measure",
    "active_in",
    "all_measures",
    "blank_sentence_scores",
    "compute_pair",
    "counterfactual",
    "fillmask",
    "get",
    "is_signed",
    "label",
    "less_biased",
    "load_resources",
    "measure_of",
    "names",
    "optional_columns",
    "optional_names",
    "prepare_contexts",
    "register",
    "run_settings",
    "sentence_columns",
    "signed_columns",
    "summary_scores",
    "unregister",
    "valence",
]
