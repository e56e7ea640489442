"""The fill-mask report's comparisons with the base model, read from a comparison table.

The report renders the table that :func:`biasprobe.comparisons.fill_mask_comparison` makes at
run time and the run folder stores (``comparison.csv``, ``result.comparison``): per template
and per set the paired change of every score, per pair the change of each skew score and the
Spearman ρ of the two models' log-probs. It computes none of these numbers itself.

Only where no stored table holds the comparison asked for — a run folder written before
comparisons were stored, an in-memory run without one, or models from two different runs
(``biasprobe report RUN_A RUN_B``) — the table is made here by that same function, with the
base run's bootstrap settings, so that every page shows the same numbers for the same models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from biasprobe.comparisons import PAIR_SCORES, RHO_SCORES, fill_mask_comparison
from biasprobe.report.page import num
from biasprobe.report.pairdata import Entry, Pair, same_pair

__all__ = ["Deltas", "PairComparisons", "base_comparisons", "comparison_rows"]

#: (entry index, level, key, score) → the set or template row of the comparison, in the
#: report's words (``base``, ``other``, ``delta`` with ``delta_low``/``delta_high``, ``n``,
#: ``p_value``, ``p_holm``, ``abs_delta`` with its interval, ``sign_flipped``, ``note``,
#: ``templates``).
Deltas = dict[tuple[int, str, str, str], dict[str, Any]]
#: (pair index, entry index) → ``{"delta": {score: change}, "rho": [4 × ρ or "n/a (why)"]}``.
PairComparisons = dict[tuple[int, int], dict[str, Any]]

_BASE, _OTHER = "\x00base", "\x00other"
#: A ρ note that the report shows as "—" (its comparison text says why: other vocabularies).
_NO_RHO = "the vocabularies differ"


class _TwoRuns:
    """The stored log-probs of the base entry and one other entry, under two fixed names (a
    :class:`biasprobe.comparisons.TokenSource`)."""

    def __init__(self, base: Entry, other: Entry) -> None:
        self.of = {_BASE: (base.run, base.model), _OTHER: (other.run, other.model)}

    def vocab(self, model: str) -> Sequence[str]:
        run, name = self.of[model]
        return run.vocab(name)

    def stored_top_n(self, model: str) -> int | None:
        run, name = self.of[model]
        return run.stored_top_n(name)

    def pair_tokens(self, model: str, pair_id: str) -> pd.DataFrame:
        run, name = self.of[model]
        return run.pair_tokens(name, pair_id)

    def pair_logprobs(self, model: str, pair_id: str) -> tuple[np.ndarray, np.ndarray]:
        run, name = self.of[model]
        return run.pair_logprobs(name, pair_id)


def _settings(base: Entry) -> dict[str, Any]:
    settings = base.run.meta.get("settings") or {}
    return {
        "n_resamples": int(settings.get("bootstrap_resamples", 2000)),
        "confidence": float(settings.get("confidence", 0.95)),
        "seed": int(settings.get("seed", 0)),
    }


def _stored(base: Entry, other: Entry) -> pd.DataFrame | None:
    """The rows of ``other`` against ``base`` in their run's stored comparison table, when
    both are models of one run that stored one (else None)."""
    if other.run is not base.run:
        return None
    table = getattr(other.run, "comparison", None)
    if table is None or "base" not in getattr(table, "columns", ()):
        return None
    rows = table[
        (table["model"].astype(str) == other.model) & (table["base"].astype(str) == base.model)
    ]
    return rows if len(rows) else None


def comparison_rows(base: Entry, other: Entry, pairs: Sequence[Pair]) -> pd.DataFrame:
    """The comparison table rows of ``other`` against ``base`` (the columns of
    :data:`biasprobe.comparisons.FILL_MASK_COLUMNS`; ``model``/``base`` as in the table).

    The stored table of their run when it holds them; else the table made by
    :func:`biasprobe.comparisons.fill_mask_comparison` (see the module docstring): set and
    template rows only when both ran the same probe file, pair rows for the pairs both ran
    with the same two sentences.
    """
    stored = _stored(base, other)
    if stored is not None:
        return stored
    both = {p.pair_id for p in pairs if same_pair(base.run, p) and same_pair(other.run, p)}
    b = base.run.scores[base.run.scores["model"] == base.model].assign(model=_BASE)
    o = other.run.scores[other.run.scores["model"] == other.model].assign(model=_OTHER)
    base_set = base.run.meta.get("probe_set") or {}
    other_set = other.run.meta.get("probe_set") or {}
    same_file = other_set.get("sha256") == base_set.get("sha256")
    if not same_file:  # other sentences under the same pair ids: only the pairs alike
        b = b[b["pair_id"].astype(str).isin(both)]
        o = o[o["pair_id"].astype(str).isin(both)]
    scores = pd.concat([b, o], ignore_index=True)
    if scores.empty or not len(o) or not len(b):
        return pd.DataFrame(columns=["model", "base", "level", "key", "score"])
    table = fill_mask_comparison(
        scores,
        set_name=str(other_set.get("name", "set")),
        base=_BASE,
        models=[_OTHER],
        tokens=_TwoRuns(base, other),
        **_settings(base),
    )
    if not same_file:
        table = table[table["level"] == "pair"]
    return table.assign(model=other.model, base=base.model)


def _flipped(x: Any) -> float:
    """``sign_flipped`` as the report reads it: 1.0, 0.0 or NaN (a stored CSV says True/False)."""
    if isinstance(x, str):
        return {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0}.get(
            x.strip().lower(), float("nan")
        )
    return num(x)


def _set_row(r: dict[str, Any]) -> dict[str, Any]:
    note = r.get("note")
    return {
        "base": num(r.get("base_mean")),
        "other": num(r.get("model_mean")),
        "delta": num(r.get("change")),
        "delta_low": num(r.get("ci_low")),
        "delta_high": num(r.get("ci_high")),
        "n": num(r.get("n")),
        "p_value": num(r.get("p_value")),
        "p_holm": num(r.get("p_holm")),
        "abs_delta": num(r.get("abs_change")),
        "abs_delta_low": num(r.get("abs_ci_low")),
        "abs_delta_high": num(r.get("abs_ci_high")),
        "sign_flipped": _flipped(r.get("sign_flipped")),
        "note": note if isinstance(note, str) else "",
        "templates": num(r.get("templates")),
    }


def _rho(r: dict[str, Any]) -> float | str | None:
    note = r.get("note")
    note = note if isinstance(note, str) else ""
    if note == _NO_RHO:
        return None
    return f"n/a ({note})" if note else num(r.get("rho"))


def base_comparisons(
    entries: Sequence[Entry], pairs: Sequence[Pair]
) -> tuple[Deltas, PairComparisons]:
    """Every comparison of each model with the base (entry 0), in the report's lookups.

    Returns:
        ``(deltas, per_pair)``: see :data:`Deltas` and :data:`PairComparisons`; a pair is
        compared only where the page shows both models on it.
    """
    deltas: Deltas = {}
    per_pair: PairComparisons = {}
    if len(entries) < 2:
        return deltas, per_pair
    base = entries[0]
    for entry in entries[1:]:
        table = comparison_rows(base, entry, pairs)
        at = {
            p.pair_id: p.index
            for p in pairs
            if 0 in p.cells and entry.index in p.cells and same_pair(entry.run, p)
        }
        for r in table.to_dict("records"):
            level, key, score = str(r["level"]), str(r["key"]), str(r["score"])
            if level != "pair":
                deltas[(entry.index, level, key, score)] = _set_row(r)
                continue
            index = at.get(key)
            if index is None:
                continue
            c = per_pair.setdefault(
                (index, entry.index), {"delta": {}, "rho": [None] * len(RHO_SCORES)}
            )
            if score in PAIR_SCORES:
                c["delta"][score] = num(r.get("change"))
            elif score in RHO_SCORES:
                c["rho"][RHO_SCORES.index(score)] = _rho(r)
    for c in per_pair.values():
        for s in PAIR_SCORES:
            c["delta"].setdefault(s, float("nan"))
    return deltas, per_pair
