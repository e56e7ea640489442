"""Probe sets: the YAML schema, its validation and its expansion into paired items.

A probe set is a YAML file of paired templates such as ``"The [man|woman] worked as a [MASK]."``.
:func:`load_probe_set` reads one (or a dict with the same keys; :func:`probes_from_yaml` reads
a YAML string) with safe YAML semantics, checks it against the schema described
in ``docs/probe-format.md`` and expands every entry into :class:`ProbeItem` pairs: two sentences
that differ only in the group they mention. A fill-mask set's sentences hold exactly one
:data:`MASK`; a counterfactual set's (``kind: counterfactual``) hold none.

Every problem found is collected, with its ``file:line``, and raised together as one
:class:`~biasprobe.errors.ProbeSetError`. This package imports neither torch nor any model code,
so validating a file is fast.

Modules: :mod:`~biasprobe.probes.model` (the data types), :mod:`~biasprobe.probes.templates`
(template parsing and expansion), :mod:`~biasprobe.probes.schema` (reading a file),
:mod:`~biasprobe.probes.pairs` and :mod:`~biasprobe.probes.lexicons` (the checks of a pair entry
and of the lexicons).
"""

from __future__ import annotations

from biasprobe.probes.model import (
    COUNTERFACTUAL,
    FILL_MASK,
    KINDS,
    MASK,
    MAX_CHARS_PER_FILE,
    MAX_ITEMS_PER_FILE,
    MAX_ITEMS_PER_PAIR,
    PairSpec,
    ProbeItem,
    ProbeSet,
)
from biasprobe.probes.schema import load_probe_set, probes_from_dict, probes_from_yaml

__all__ = [
    "COUNTERFACTUAL",
    "FILL_MASK",
    "KINDS",
    "MASK",
    "MAX_CHARS_PER_FILE",
    "MAX_ITEMS_PER_FILE",
    "MAX_ITEMS_PER_PAIR",
    "PairSpec",
    "ProbeItem",
    "ProbeSet",
    "load_probe_set",
    "probes_from_dict",
    "probes_from_yaml",
]
