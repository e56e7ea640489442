"""What a measure is, and the registry of every measure biasprobe knows.

A measure is a unit: one module declares the score columns it adds, which of them are signed
(tested against 0), the direction that is "less biased", its formula and source, what it needs
from the model, and the callables that compute it per pair and summarise it per set; then it
calls :func:`register`. The engine, the summary, the report and the command line ask the
registry (:func:`summary_scores`, :func:`signed_columns`, :func:`is_signed`, :func:`label`, …)
instead of naming measures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from biasprobe.errors import UsageError

__all__ = [
    "KINDS",
    "Measure",
    "active_in",
    "all_measures",
    "blank_sentence_scores",
    "compute_pair",
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
]

#: The kinds of audit a measure belongs to.
KINDS = ("fill-mask", "counterfactual", "crows-pairs")


@dataclass(frozen=True)
class Measure:
    """One measure and everything the rest of biasprobe needs to know about it.

    Attributes:
        name: registry key (also the command-line name of an optional measure).
        columns: the score columns it adds to ``scores.csv`` (or the summary scores it adds,
            for measures of a whole set such as the Wasserstein distance).
        signed: the columns that are signed (0 = no bias; their means get a p-value of
            "mean 0" and "closer to 0" is less biased).
        less_biased: which direction is less biased, e.g. ``"closer to 0"``, ``"lower"``.
        formula: the definition, written out.
        source: the paper or page it comes from.
        needs: what it needs from the model or backend (e.g. "full-vocabulary log-probs at
            the mask", "P(label) per sentence").
        kind: the kind of audit it belongs to (:data:`KINDS`).
        summarised: the columns aggregated in ``summary.csv`` (default: all of ``columns``).
        labels: ``(column, human-readable label)`` pairs, for pages and terminal tables.
        directions: ``(column, direction)`` pairs where a column's "less biased" direction
            differs from ``less_biased`` (e.g. a similarity beside its distance).
        compares_sentences: its columns compare the two sentences of a pair, so they are
            meaningless (NaN) for attribute pairs, whose two sides share one sentence.
        optional: computed only when asked for (``--NAME`` on the command line,
            ``measures=[NAME]`` in the API); built-in measures are always computed.
        option_help: help text of the command-line option of an optional measure.
        load: loads what the measure needs before any model is loaded (e.g. a lexicon),
            raising :class:`biasprobe.errors.UsageError` naming the package to install.
        prepare: ``prepare(vocab, loaded) -> context`` once per model (e.g. the polarity of
            every vocabulary token).
        compute: the per-pair computation, ``compute(logp_a, logp_b, *, context, k,
            minoritized, **more) -> {column: value}`` (fill-mask measures: the two sides'
            full-vocabulary log-probs at the mask).
        summarise: set-level rows of its columns (``summarise(rows, **boot) -> list[dict]``).
        settings: ``settings(k=…) -> dict`` recorded under ``settings[NAME]`` in results.json.
    """

    name: str
    columns: tuple[str, ...]
    signed: tuple[str, ...] = ()
    less_biased: str = "closer to 0"
    formula: str = ""
    source: str = ""
    needs: tuple[str, ...] = ()
    kind: str = "fill-mask"
    summarised: tuple[str, ...] | None = None
    labels: tuple[tuple[str, str], ...] = ()
    directions: tuple[tuple[str, str], ...] = ()
    compares_sentences: bool = False
    optional: bool = False
    option_help: str = ""
    load: Callable[[], Any] | None = None
    prepare: Callable[[Sequence[str], Any], Any] | None = None
    compute: Callable[..., Mapping[str, Any]] | None = None
    summarise: Callable[..., Any] | None = None
    settings: Callable[..., Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        where = f"measure {self.name!r}"
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"{where}: the name must be letters, digits, '-' or '_'")
        if not self.columns:
            raise ValueError(f"{where}: declares no column")
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"{where}: a column is declared twice")
        for what, cols in (("signed", self.signed), ("summarised", self.summarised or ())):
            stray = [c for c in cols if c not in self.columns]
            if stray:
                raise ValueError(f"{where}: {what} column(s) {stray} are not among its columns")
        for what, pairs in (("labels", self.labels), ("directions", self.directions)):
            stray = [c for c, _ in pairs if c not in self.columns]
            if stray:
                raise ValueError(f"{where}: {what} for unknown column(s) {stray}")
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not self.less_biased or not self.formula or not self.source:
            raise ValueError(f"{where}: less_biased, formula and source are required")

    @property
    def summary_columns(self) -> tuple[str, ...]:
        """The columns aggregated in ``summary.csv``."""
        return self.columns if self.summarised is None else self.summarised

    def label(self, column: str) -> str:
        """The human-readable label of one of its columns (the column name without one)."""
        return dict(self.labels).get(column, column)


_REGISTRY: dict[str, Measure] = {}


def register(measure: Measure, *, replace: bool = False) -> Measure:
    """Add a measure to the registry (in registration order) and return it.

    Raises:
        ValueError: the name is taken (unless ``replace``), or one of its columns already
            belongs to another measure of the same kind.
    """
    if measure.name in _REGISTRY and not replace:
        raise ValueError(f"a measure named {measure.name!r} is already registered")
    for other in _REGISTRY.values():
        if other.name == measure.name or other.kind != measure.kind:
            continue
        shared = set(other.columns) & set(measure.columns)
        if shared:
            raise ValueError(
                f"measure {measure.name!r}: column(s) {sorted(shared)} already belong to "
                f"measure {other.name!r}"
            )
    _REGISTRY[measure.name] = measure
    return measure


def unregister(name: str) -> None:
    """Remove a measure (tests register toy measures and take them out again)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> Measure:
    """The registered measure ``name``.

    Raises:
        UsageError: no such measure (the message lists the known ones).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY) or "none"
        raise UsageError(f"unknown measure {name!r}; known measures: {known}") from None


def all_measures(kind: str | None = None) -> tuple[Measure, ...]:
    """Every registered measure (of one kind), in registration order."""
    return tuple(m for m in _REGISTRY.values() if kind is None or m.kind == kind)


def names(kind: str | None = None) -> tuple[str, ...]:
    """Names of every registered measure (of one kind), in registration order."""
    return tuple(m.name for m in all_measures(kind))


def optional_names(kind: str = "fill-mask") -> tuple[str, ...]:
    """The measures of a kind that are computed only when asked for (e.g. ``valence``)."""
    return tuple(m.name for m in all_measures(kind) if m.optional)


def active_in(columns: Iterable[str], kind: str = "fill-mask") -> tuple[str, ...]:
    """The optional measures of a kind whose columns a table has (e.g. a ``scores.csv``
    written with ``--valence``)."""
    have = {str(c) for c in columns}
    return tuple(
        m.name for m in all_measures(kind) if m.optional and any(c in have for c in m.columns)
    )


def _active(kind: str, active: Iterable[str]) -> list[Measure]:
    chosen = set(active)
    unknown = [n for n in chosen if n not in _REGISTRY]
    if unknown:
        get(sorted(unknown)[0])  # raises, naming the known measures
    return [m for m in all_measures(kind) if not m.optional or m.name in chosen]


def summary_scores(active: Iterable[str] = (), kind: str = "fill-mask") -> tuple[str, ...]:
    """The score columns aggregated in ``summary.csv`` by a run of ``kind`` that computes the
    optional measures ``active``: every built-in measure's, then the active optional ones', in
    registration order."""
    return tuple(c for m in _active(kind, active) for c in m.summary_columns)


def signed_columns(active: Iterable[str] = (), kind: str = "fill-mask") -> tuple[str, ...]:
    """The summarised columns that are signed (their set means get a p-value of "mean 0")."""
    return tuple(c for m in _active(kind, active) for c in m.summary_columns if c in set(m.signed))


def optional_columns(kind: str | None = None) -> tuple[str, ...]:
    """Every column an optional measure may add to ``scores.csv`` (numbers, when read back)."""
    return tuple(c for m in all_measures(kind) if m.optional for c in m.columns)


def sentence_columns(kind: str = "fill-mask") -> tuple[str, ...]:
    """Columns that compare the two sentences of a pair (NaN for attribute pairs)."""
    return tuple(c for m in all_measures(kind) if m.compares_sentences for c in m.columns)


def blank_sentence_scores(row: dict[str, Any], kind: str = "fill-mask") -> dict[str, Any]:
    """Set the :func:`sentence_columns` of one pair's score row to NaN, in place: an attribute
    pair's two sides are one sentence, so they would be 0 (or "identical") by construction."""
    blank = set(sentence_columns(kind))
    for key in list(row):
        if key in blank:
            row[key] = float("nan")
    return row


def load_resources(active: Iterable[str]) -> dict[str, Any]:
    """Load what each asked-for measure needs (``Measure.load``), before any model is loaded:
    ``{name: loaded}`` (None for a measure that loads nothing). A missing optional package
    raises :class:`biasprobe.errors.UsageError` naming it."""
    out: dict[str, Any] = {}
    for name in active:
        m = get(name)
        out[name] = m.load() if m.load is not None else None
    return out


def prepare_contexts(loaded: Mapping[str, Any], vocab: Sequence[str]) -> dict[str, Any]:
    """Once per model: each measure's context for that model's vocabulary (``Measure.prepare``
    of what :func:`load_resources` loaded; the loaded value itself when it has no prepare)."""
    out: dict[str, Any] = {}
    for name, value in loaded.items():
        m = get(name)
        out[name] = m.prepare(vocab, value) if m.prepare is not None else value
    return out


def compute_pair(
    contexts: Mapping[str, Any], logp_a: Any, logp_b: Any, **kw: Any
) -> dict[str, Any]:
    """The columns of every asked-for measure for one pair: ``Measure.compute(logp_a, logp_b,
    context=…, **kw)`` merged in registration order (``kw``: ``k``, ``minoritized``, …)."""
    row: dict[str, Any] = {}
    for name in contexts:
        m = get(name)
        if m.compute is None:
            raise UsageError(f"measure {name!r} has no per-pair computation")
        row.update(m.compute(logp_a, logp_b, context=contexts[name], **kw))
    return row


def run_settings(active: Iterable[str], **kw: Any) -> dict[str, Any]:
    """What a run records about each asked-for measure in ``settings`` of results.json:
    ``{name: Measure.settings(**kw)}`` for the measures that record something."""
    out: dict[str, Any] = {}
    for name in active:
        m = get(name)
        if m.settings is not None:
            out[name] = dict(m.settings(**kw))
    return out


def measure_of(column: str, kind: str | None = None) -> Measure | None:
    """The measure that declares a score column (None for a column no measure declares)."""
    for m in all_measures(kind):
        if column in m.columns:
            return m
    return None


def is_signed(column: str, kind: str | None = None) -> bool:
    """Whether a score column is signed (tested against 0; distances are not)."""
    m = measure_of(column, kind)
    return m is not None and column in m.signed


def label(column: str, kind: str | None = None) -> str:
    """The human-readable label of a score column (the column name when none is declared)."""
    m = measure_of(column, kind)
    return column if m is None else m.label(column)


def less_biased(column: str, kind: str | None = None) -> str:
    """Which direction of a score column is less biased ("" for an unknown column)."""
    m = measure_of(column, kind)
    return "" if m is None else dict(m.directions).get(column, m.less_biased)
