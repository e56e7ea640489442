"""The probe-set data types: what :func:`biasprobe.probes.load_probe_set` returns."""

from __future__ import annotations

from dataclasses import dataclass

from biasprobe.display import html_of, text_of

MASK = "[MASK]"
"""The mask placeholder written in YAML and kept in :attr:`ProbeItem.sentences`."""

FILL_MASK = "fill-mask"
"""Kind of a set whose sentences each hold one :data:`MASK` (scored on masked LMs)."""
COUNTERFACTUAL = "counterfactual"
"""Kind of a set whose sentences hold no mask (scored on sentence classifiers)."""
KINDS = (FILL_MASK, COUNTERFACTUAL)

MAX_ITEMS_PER_PAIR = 100_000
"""Upper bound on the number of items one pair entry may expand into."""
MAX_ITEMS_PER_FILE = 100_000
"""Upper bound on the number of items a whole file may expand into (checked before expanding)."""
MAX_CHARS_PER_FILE = 100_000_000
"""Upper bound on the characters of all the sentences a file expands into (both sides of every
item, and the prior sentences of attribute entries; checked before expanding): 500 characters a
sentence at :data:`MAX_ITEMS_PER_FILE` items. A small file can otherwise ask for gigabytes, e.g.
a long lexicon word used many times in a template that another lexicon multiplies."""


@dataclass(frozen=True, slots=True)
class ProbeItem:
    """One expanded pair: two sentences that differ only in the group they mention (slotted: a
    suite of 100,000 pairs holds 100,000 of them).

    Attributes:
        pair_id: unique in the set, e.g. ``"jim-jane"`` or ``"name-works/mary-james"``.
        template_id: id of the YAML pair entry this item was expanded from (aggregation key).
        groups: labels of side A and side B, in the order written.
        sentences: side A and side B text; in a fill-mask set each holds exactly one
            :data:`MASK`, in a counterfactual set none.
        minoritized: 0 or 1, the index of the minoritized side (skew = minoritized - normative).
        targets: words to score at the mask (may be empty; always empty in a counterfactual set).
        fills: ``(slot, "wordA|wordB")`` for every choice made in this expansion, in template
            order; a non-contrast alternation is named ``"[n]"`` (1-based alternation index).
        source: ``"probes/gender.yaml:12"``, where the pair entry is written.
        attribute: the attribute word(s) of this expansion when the entry declares an
            ``attribute:`` slot (prior-normalised scoring, Kurita et al. 2019), else ``None``.
        prior_sentences: side A and side B with every word of the attribute replaced by
            :data:`MASK` (one mask per whitespace-separated word), else ``None``.
        prior_mask_index: which :data:`MASK` (0-based, in reading order) of each prior sentence
            is the target's mask; the others are the attribute's. ``None`` without an attribute.
    """

    pair_id: str
    template_id: str
    groups: tuple[str, str]
    sentences: tuple[str, str]
    minoritized: int
    targets: tuple[str, ...]
    fills: tuple[tuple[str, str], ...]
    source: str
    attribute: str | None = None
    prior_sentences: tuple[str, str] | None = None
    prior_mask_index: int | None = None

    @property
    def normative(self) -> int:
        """Index (0 or 1) of the normative side: ``1 - minoritized``."""
        return 1 - self.minoritized

    @property
    def minoritized_group(self) -> str:
        """Label of the minoritized side."""
        return self.groups[self.minoritized]

    @property
    def normative_group(self) -> str:
        """Label of the normative side."""
        return self.groups[self.normative]


@dataclass(frozen=True)
class PairSpec:
    """One ``pairs:`` entry as written, with set-level defaults applied.

    Attributes:
        id: the entry's id (also every expanded item's ``template_id``).
        template: the template text as written.
        groups: labels of side A and side B.
        minoritized: label of the minoritized side (from the entry or the set's orientation).
        targets: words to score at the mask (entry's, else the set's; may be empty).
        contrast: 1-based indices of the alternations that carry the group contrast.
        pairing: how grouped-lexicon slots pair their words: ``"zip"`` or ``"product"``.
        note: free text written with the entry, or ``""``.
        source: ``"file:line"`` of the entry.
        attribute: name of the slot declared as the attribute, or ``None``.
        arbitrary_orientation: the minoritized/normative orientation only fixes the sign
            (a contrast that is not between social groups: an era of names, a year).
    """

    id: str
    template: str
    groups: tuple[str, str]
    minoritized: str
    targets: tuple[str, ...]
    contrast: tuple[int, ...]
    pairing: str
    note: str
    source: str
    attribute: str | None = None
    arbitrary_orientation: bool = False


@dataclass(frozen=True)
class ProbeSet:
    """A validated, expanded probe file.

    Attributes:
        name: short name of the set (``[a-z0-9_-]+``).
        description: what the set is meant to show.
        version: the set's version as written (int or string).
        source: where the set's words and templates come from (citations).
        path: the file path as given to :func:`load_probe_set`.
        sha256: hex SHA-256 of the file's bytes.
        top_k: default number of top predictions to compare, or ``None``.
        models: default model ids (may be empty).
        pairs: the entries as written, in file order.
        items: every expanded pair, in file order.
        orientation: ``(minoritized, normative)`` labels of the set-level default, or ``None``.
        kind: :data:`FILL_MASK` (the default) or :data:`COUNTERFACTUAL`.
    """

    name: str
    description: str
    version: int | str
    source: str
    path: str
    sha256: str
    top_k: int | None
    models: tuple[str, ...]
    pairs: tuple[PairSpec, ...]
    items: tuple[ProbeItem, ...]
    orientation: tuple[str, str] | None = None
    kind: str = FILL_MASK

    def __repr__(self) -> str:
        shown = text_of(self)
        if shown is not None:  # the view registered for notebooks (biasprobe.notebook)
            return shown
        entries, pairs = len(self.pairs), len(self.items)
        return (
            f"ProbeSet({self.name!r} v{self.version}, {self.kind}: {entries} "
            f"{'entry' if entries == 1 else 'entries'} → {pairs} "
            f"pair{'' if pairs == 1 else 's'}, from {self.path})"
        )

    def _repr_html_(self) -> str | None:
        return html_of(self)
