"""Probe sets: the YAML schema, its validation and its expansion into paired fill-mask items.

A probe set is a YAML file of paired templates such as ``"The [man|woman] worked as a [MASK]."``.
:func:`load_probe_set` reads one with safe YAML semantics, checks it against the schema described
in ``docs/probe-format.md`` and expands every entry into :class:`ProbeItem` pairs: two sentences
that differ only in the group they mention, each with exactly one :data:`MASK`.

Every problem found is collected, with its ``file:line``, and raised together as one
:class:`~biasprobe.errors.ProbeSetError`. This module imports neither torch nor any model code,
so validating a file is fast.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from biasprobe.errors import ProbeSetError, Problem

__all__ = [
    "MASK",
    "MAX_ITEMS_PER_PAIR",
    "PairSpec",
    "ProbeItem",
    "ProbeSet",
    "load_probe_set",
]

MASK = "[MASK]"
"""The mask placeholder written in YAML and kept in :attr:`ProbeItem.sentences`."""

MAX_ITEMS_PER_PAIR = 100_000
"""Upper bound on the number of items one pair entry may expand into."""

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_SLOT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PAIRINGS = ("zip", "product")
_SPECIAL_CHARS = "[]{}"

_TOP_KEYS = (
    "name",
    "version",
    "description",
    "source",
    "orientation",
    "top_k",
    "models",
    "targets",
    "lexicons",
    "pairs",
)
_TOP_REQUIRED = ("name", "version", "description", "source", "pairs")
_PAIR_KEYS = ("id", "template", "groups", "minoritized", "targets", "contrast", "pairing", "note")
_PAIR_REQUIRED = ("id", "template", "groups")
_ORIENTATION_KEYS = ("minoritized", "normative")

_YAML = "tag:yaml.org,2002:"
_ALLOWED_TAGS = frozenset(
    _YAML + t for t in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map")
)


# --------------------------------------------------------------------------------------------
# Public data types


@dataclass(frozen=True)
class ProbeItem:
    """One expanded pair: two sentences that differ only in the group they mention.

    Attributes:
        pair_id: unique in the set, e.g. ``"jim-jane"`` or ``"name-works/mary-james"``.
        template_id: id of the YAML pair entry this item was expanded from (aggregation key).
        groups: labels of side A and side B, in the order written.
        sentences: side A and side B text, each with exactly one :data:`MASK`.
        minoritized: 0 or 1, the index of the minoritized side (skew = minoritized - normative).
        targets: words to score at the mask (may be empty).
        fills: ``(slot, "wordA|wordB")`` for every choice made in this expansion, in template
            order; a non-contrast alternation is named ``"[n]"`` (1-based alternation index).
        source: ``"probes/gender.yaml:12"``, where the pair entry is written.
    """

    pair_id: str
    template_id: str
    groups: tuple[str, str]
    sentences: tuple[str, str]
    minoritized: int
    targets: tuple[str, ...]
    fills: tuple[tuple[str, str], ...]
    source: str

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


# --------------------------------------------------------------------------------------------
# Loading


def load_probe_set(path: str | Path) -> ProbeSet:
    """Load, validate and expand a probe-set YAML file.

    Args:
        path: the YAML file. The path is kept as given (``str(path)``) in error messages,
            :attr:`ProbeSet.path` and every :attr:`ProbeItem.source`.

    Returns:
        The validated probe set with its pairs expanded into :attr:`ProbeSet.items`.

    Raises:
        ProbeSetError: the file is missing, unreadable, not valid YAML or does not follow the
            schema. It lists every problem found, each with ``file:line``.
    """
    file = str(path)
    p = Path(path)
    if not p.exists():
        raise ProbeSetError([Problem(file, None, "file does not exist")])
    if p.is_dir():
        raise ProbeSetError([Problem(file, None, "is a directory, expected a YAML file")])
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ProbeSetError([Problem(file, None, f"cannot read the file: {exc}")]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProbeSetError(
            [
                Problem(
                    file, None, f"expected UTF-8 text, found an invalid byte at offset {exc.start}"
                )
            ]
        ) from exc
    return _Loader(file, text, hashlib.sha256(data).hexdigest()).load()


class _Loader:
    """Validates one file; collects problems instead of stopping at the first."""

    def __init__(self, file: str, text: str, sha256: str) -> None:
        self.file = file
        self.text = text
        self.sha256 = sha256
        self.problems: list[Problem] = []
        self.lexicons: dict[str, _Lexicon] = {}
        self._checked_target_lexicons: dict[str, tuple[str, ...] | None] = {}

    # -- problem reporting ---------------------------------------------------------------------

    def error(self, at: yaml.Node | int | None, message: str) -> None:
        line = at if isinstance(at, int) or at is None else _line(at)
        self.problems.append(Problem(self.file, line, message))

    def _failure(self) -> ProbeSetError:
        """All problems, in file order (stable for problems on the same line)."""
        return ProbeSetError(sorted(self.problems, key=lambda p: p.line or 0))

    # -- top level -------------------------------------------------------------------------------

    def load(self) -> ProbeSet:
        root = self._compose()
        if root is None:
            raise self._failure()
        self._check_tags(root)
        top = self._mapping(root, _TOP_KEYS, _TOP_REQUIRED, "the probe file")
        if top is None:
            raise self._failure()

        name = self._text_at(top, "name")
        if name is not None and not _NAME_RE.fullmatch(name):
            self.error(
                top["name"][1],
                f"name: expected lower-case letters, digits, '-' or '_', found {name!r}",
            )
        version = self._version(top.get("version"))
        description = self._text_at(top, "description")
        source = self._text_at(top, "source")
        orientation = self._orientation(top.get("orientation"))
        top_k = self._top_k(top.get("top_k"))
        models = self._models(top.get("models"))
        self._lexicons(top.get("lexicons"))
        default_targets: tuple[str, ...] = ()
        if "targets" in top:
            default_targets = self._targets(top["targets"][1], "targets") or ()

        specs, items = self._pairs(top.get("pairs"), orientation, default_targets)

        if self.problems:
            raise self._failure()
        assert name is not None and description is not None and source is not None
        assert version is not None
        return ProbeSet(
            name=name,
            description=description,
            version=version,
            source=source,
            path=self.file,
            sha256=self.sha256,
            top_k=top_k,
            models=models,
            pairs=tuple(specs),
            items=tuple(items),
            orientation=orientation,
        )

    def _compose(self) -> yaml.Node | None:
        try:
            root = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            what = " ".join(s for s in (exc.context, exc.problem) if s) or "invalid YAML"
            if mark is None:
                self.error(None, f"invalid YAML: {what}")
            else:
                self.error(mark.line + 1, f"invalid YAML at column {mark.column + 1}: {what}")
            return None
        except yaml.YAMLError as exc:
            self.error(None, f"invalid YAML: {exc}")
            return None
        if root is None:
            self.error(
                None,
                "the file is empty: expected a mapping with keys " + ", ".join(_TOP_REQUIRED),
            )
        return root

    def _check_tags(self, root: yaml.Node) -> None:
        for node in _walk(root):
            if node.tag not in _ALLOWED_TAGS:
                tag = node.tag.replace(_YAML, "!!")
                self.error(
                    node,
                    f"YAML tag {tag!r} is not allowed: probe files hold only plain strings, "
                    "numbers, lists and mappings",
                )

    # -- generic node helpers ----------------------------------------------------------------------

    def _mapping(
        self,
        node: yaml.Node,
        known: Iterable[str],
        required: Iterable[str],
        where: str,
        owner: yaml.Node | None = None,
    ) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """Checks a mapping's keys; returns key -> (key node, value node), or None if no mapping.

        Missing keys are reported at ``owner`` (the key holding the mapping) when given.
        """
        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"{where}: expected a mapping, found {_describe(node)}")
            return None
        known = tuple(known)
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(key_node, f"{where}: expected a plain key, found {_describe(key_node)}")
                continue
            key = key_node.value
            if key in out:
                first = _line(out[key][0])
                self.error(
                    key_node, f"{where}: duplicate key {key!r} (first written at line {first})"
                )
                continue
            if key not in known:
                self.error(key_node, f"{where}: unknown key {key!r}{_suggest(key, known)}")
                continue
            out[key] = (key_node, value_node)
        missing = [k for k in required if k not in out]
        for key in missing:
            self.error(owner or node, f"{where}: missing required key {key!r}")
        return out

    def _text(self, node: yaml.Node, what: str, *, allow_empty: bool = False) -> str | None:
        """A scalar's text as written (so ``1908``, ``no`` and ``on`` stay the words they are)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == _YAML + "null":
            self.error(node, f"{what}: expected a string, found {_describe(node)}")
            return None
        value = node.value.strip()
        if not value and not allow_empty:
            self.error(node, f"{what}: expected a non-empty string, found an empty one")
            return None
        return value

    def _text_at(self, mapping: dict[str, tuple[yaml.Node, yaml.Node]], key: str) -> str | None:
        if key not in mapping:
            return None
        return self._text(mapping[key][1], key)

    def _text_list(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node]] | None:
        """A non-empty list of distinct non-empty strings, each with its node."""
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, f"{what}: expected a list, found {_describe(node)}")
            return None
        if not node.value:
            self.error(node, f"{what}: expected a non-empty list, found an empty one")
            return None
        out: list[tuple[str, yaml.Node]] = []
        seen: dict[str, int] = {}
        ok = True
        for child in node.value:
            word = self._text(child, what)
            if word is None:
                ok = False
                continue
            if word in seen:
                self.error(child, f"{what}: {word!r} is listed twice (first at line {seen[word]})")
                ok = False
                continue
            seen[word] = _line(child)
            out.append((word, child))
        return out if ok else None

    # -- top-level fields --------------------------------------------------------------------------

    def _version(self, entry: tuple[yaml.Node, yaml.Node] | None) -> int | str | None:
        if entry is None:
            return None
        node = entry[1]
        if isinstance(node, yaml.ScalarNode) and node.tag == _YAML + "int":
            return int(yaml.safe_load(node.value))
        if isinstance(node, yaml.ScalarNode) and node.tag == _YAML + "bool":
            self.error(node, f"version: expected an integer or a string, found {_describe(node)}")
            return None
        text = self._text(node, "version")
        return text

    def _top_k(self, entry: tuple[yaml.Node, yaml.Node] | None) -> int | None:
        if entry is None:
            return None
        node = entry[1]
        if isinstance(node, yaml.ScalarNode) and node.tag == _YAML + "int":
            value = int(yaml.safe_load(node.value))
            if value >= 1:
                return value
        self.error(node, f"top_k: expected a positive integer, found {_describe(node)}")
        return None

    def _models(self, entry: tuple[yaml.Node, yaml.Node] | None) -> tuple[str, ...]:
        if entry is None:
            return ()
        words = self._text_list(entry[1], "models")
        return tuple(w for w, _ in words) if words else ()

    def _orientation(self, entry: tuple[yaml.Node, yaml.Node] | None) -> tuple[str, str] | None:
        if entry is None:
            return None
        node = entry[1]
        m = self._mapping(node, _ORIENTATION_KEYS, _ORIENTATION_KEYS, "orientation", entry[0])
        if m is None:
            return None
        minoritized = self._text_at(m, "minoritized")
        normative = self._text_at(m, "normative")
        if minoritized is None or normative is None:
            return None
        if minoritized == normative:
            self.error(
                node,
                f"orientation: minoritized and normative must be different labels, "
                f"found {minoritized!r} for both",
            )
            return None
        return minoritized, normative

    def _lexicons(self, entry: tuple[yaml.Node, yaml.Node] | None) -> None:
        if entry is None:
            return
        node = entry[1]
        if not isinstance(node, yaml.MappingNode):
            self.error(
                node, f"lexicons: expected a mapping of name -> word list, found {_describe(node)}"
            )
            return
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            name = self._text(key_node, "lexicons: name")
            if name is None:
                continue
            where = f"lexicon {name!r}"
            if name in seen:
                self.error(
                    key_node,
                    f"lexicons: duplicate key {name!r} (first written at line {seen[name]})",
                )
                continue
            seen[name] = _line(key_node)
            if not _SLOT_RE.fullmatch(name):
                self.error(
                    key_node,
                    f"{where}: a lexicon name must start with a letter or '_' and hold only "
                    "letters, digits, '-' or '_'",
                )
                continue
            if isinstance(value_node, yaml.SequenceNode):
                words = self._words(value_node, where)
                if words is not None:
                    self.lexicons[name] = _Lexicon(name, _line(key_node), words, None)
            elif isinstance(value_node, yaml.MappingNode):
                groups: dict[str, tuple[str, ...]] = {}
                ok = True
                for group_key, group_list in value_node.value:
                    label = self._text(group_key, f"{where}: group label")
                    if label is None:
                        ok = False
                        continue
                    if label in groups:
                        self.error(group_key, f"{where}: duplicate group {label!r}")
                        ok = False
                        continue
                    words = self._words(group_list, f"{where}, group {label!r}")
                    if words is None:
                        ok = False
                        continue
                    groups[label] = words
                if not value_node.value:
                    self.error(
                        value_node, f"{where}: expected at least one group, found an empty mapping"
                    )
                elif ok:
                    self.lexicons[name] = _Lexicon(name, _line(key_node), None, groups)
            else:
                self.error(
                    value_node,
                    f"{where}: expected a list of words, or a mapping of group label -> list of "
                    f"words, found {_describe(value_node)}",
                )

    def _words(self, node: yaml.Node, where: str) -> tuple[str, ...] | None:
        """A lexicon's word list: non-empty, distinct, free of the template's special characters."""
        items = self._text_list(node, where)
        if items is None:
            return None
        ok = True
        for word, child in items:
            if any(c in word for c in _SPECIAL_CHARS):
                self.error(
                    child, f"{where}: {word!r} contains one of [ ] {{ }}, which templates reserve"
                )
                ok = False
        return tuple(" ".join(w.split()) for w, _ in items) if ok else None

    def _targets(self, node: yaml.Node, where: str) -> tuple[str, ...] | None:
        """Targets: a list of single words, or the name of a plain lexicon."""
        if isinstance(node, yaml.ScalarNode) and node.tag != _YAML + "null":
            name = node.value.strip()
            lex = self.lexicons.get(name)
            if lex is None:
                self.error(
                    node, f"{where}: no lexicon named {name!r}{_suggest(name, self.lexicons)}"
                )
                return None
            if lex.words is None:
                self.error(
                    node,
                    f"{where}: lexicon {name!r} is grouped (one list per group); targets need a "
                    "plain list of words",
                )
                return None
            if name not in self._checked_target_lexicons:
                bad = [w for w in lex.words if len(w.split()) != 1]
                for word in bad:
                    self.error(
                        node,
                        f"{where}: target {word!r} from lexicon {name!r} (line {lex.line}) must be "
                        "a single word with no spaces",
                    )
                self._checked_target_lexicons[name] = None if bad else lex.words
            return self._checked_target_lexicons[name]
        items = self._text_list(node, where)
        if items is None:
            return None
        ok = True
        for word, child in items:
            if len(word.split()) != 1 or any(c in word for c in _SPECIAL_CHARS):
                self.error(child, f"{where}: expected a single word, found {word!r}")
                ok = False
        return tuple(w for w, _ in items) if ok else None

    # -- pairs -------------------------------------------------------------------------------------

    def _pairs(
        self,
        entry: tuple[yaml.Node, yaml.Node] | None,
        orientation: tuple[str, str] | None,
        default_targets: tuple[str, ...],
    ) -> tuple[list[PairSpec], list[ProbeItem]]:
        specs: list[PairSpec] = []
        items: list[ProbeItem] = []
        if entry is None:
            return specs, items
        node = entry[1]
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, f"pairs: expected a list of pair entries, found {_describe(node)}")
            return specs, items
        if not node.value:
            self.error(node, "pairs: expected at least one pair entry, found an empty list")
            return specs, items
        ids: dict[str, int] = {}
        expanded_ids: dict[str, int] = {}
        for index, pair_node in enumerate(node.value, start=1):
            spec_and_tokens = self._pair(pair_node, index, orientation, default_targets, ids)
            if spec_and_tokens is None:
                continue
            spec, tokens, template_node = spec_and_tokens
            specs.append(spec)
            for item in self._expand(spec, tokens, template_node):
                first = expanded_ids.get(item.pair_id)
                if first is not None:
                    self.error(
                        pair_node,
                        f"pair {spec.id!r}: expanded pair id {item.pair_id!r} is not unique "
                        f"(also produced by the entry at line {first})",
                    )
                    continue
                expanded_ids[item.pair_id] = _line(pair_node)
                items.append(item)
        return specs, items

    def _pair(
        self,
        node: yaml.Node,
        index: int,
        orientation: tuple[str, str] | None,
        default_targets: tuple[str, ...],
        ids: dict[str, int],
    ) -> tuple[PairSpec, list[_Token], yaml.Node] | None:
        m = self._mapping(node, _PAIR_KEYS, _PAIR_REQUIRED, f"pairs[{index}]")
        if m is None:
            return None
        where = f"pairs[{index}]"
        ok = True

        pair_id = self._text_at(m, "id")
        if pair_id is not None:
            id_node = m["id"][1]
            if not _NAME_RE.fullmatch(pair_id):
                self.error(
                    id_node,
                    f"{where}.id: expected lower-case letters, digits, '-' or '_', found {pair_id!r}",
                )
                ok = False
            elif pair_id in ids:
                self.error(
                    id_node,
                    f"{where}.id: duplicate pair id {pair_id!r} (first at line {ids[pair_id]})",
                )
                ok = False
            else:
                ids[pair_id] = _line(id_node)
            where = f"pair {pair_id!r}"
        else:
            ok = False

        groups = self._groups(m.get("groups"), where)
        ok = ok and groups is not None

        template = self._text(m["template"][1], f"{where}: template") if "template" in m else None
        tokens: list[_Token] | None = None
        if template is not None:
            tokens = self._parse_template(template, m["template"][1], where)
        ok = ok and tokens is not None

        minoritized = self._minoritized(m, groups, orientation, node, where)
        ok = ok and minoritized is not None

        targets: tuple[str, ...] | None = default_targets
        if "targets" in m:
            targets = self._targets(m["targets"][1], f"{where}: targets")
        ok = ok and targets is not None

        note = ""
        if "note" in m:
            note = self._text(m["note"][1], f"{where}: note", allow_empty=True) or ""

        pairing = "zip"
        if "pairing" in m:
            value = self._text(m["pairing"][1], f"{where}: pairing")
            if value is not None and value not in _PAIRINGS:
                self.error(
                    m["pairing"][1],
                    f"{where}: pairing: expected 'zip' or 'product', found {value!r}{_suggest(value, _PAIRINGS)}",
                )
                value = None
            ok = ok and value is not None
            pairing = value or pairing

        contrast: tuple[int, ...] | None = None
        if tokens is not None and groups is not None:
            contrast = self._contrast(m, tokens, groups, where)
            ok = ok and contrast is not None
            ok = self._check_slots(m, tokens, groups, pairing, where) and ok
            if contrast is not None and ok:
                ok = self._check_contrast_exists(m, tokens, contrast, groups, where)

        if not ok:
            return None
        assert pair_id is not None and template is not None and groups is not None
        assert minoritized is not None and targets is not None and contrast is not None
        assert tokens is not None
        spec = PairSpec(
            id=pair_id,
            template=template,
            groups=groups,
            minoritized=minoritized,
            targets=targets,
            contrast=contrast,
            pairing=pairing,
            note=note,
            source=f"{self.file}:{_line(node)}",
        )
        return spec, tokens, m["template"][1]

    def _groups(
        self, entry: tuple[yaml.Node, yaml.Node] | None, where: str
    ) -> tuple[str, str] | None:
        if entry is None:
            return None
        node = entry[1]
        labels = self._text_list(node, f"{where}: groups")
        if labels is None:
            return None
        if len(labels) != 2:
            self.error(
                node,
                f"{where}: groups: expected exactly 2 labels (side A, side B), found {len(labels)}",
            )
            return None
        return labels[0][0], labels[1][0]

    def _minoritized(
        self,
        m: dict[str, tuple[yaml.Node, yaml.Node]],
        groups: tuple[str, str] | None,
        orientation: tuple[str, str] | None,
        pair_node: yaml.Node,
        where: str,
    ) -> str | None:
        if "minoritized" in m:
            node = m["minoritized"][1]
            label = self._text(node, f"{where}: minoritized")
            if label is None or groups is None:
                return None
            if label not in groups:
                self.error(
                    node,
                    f"{where}: minoritized: expected one of the pair's groups "
                    f"{_fmt_list(groups)}, found {label!r}",
                )
                return None
            return label
        if groups is None:
            return None
        if orientation is None:
            self.error(
                pair_node,
                f"{where}: no orientation: add 'minoritized: {groups[0]}' (or {groups[1]}) to the "
                "pair, or a top-level 'orientation:' naming its minoritized and normative groups",
            )
            return None
        if set(orientation) != set(groups):
            self.error(
                pair_node,
                f"{where}: the top-level orientation (minoritized: {orientation[0]}, normative: "
                f"{orientation[1]}) does not name this pair's groups {_fmt_list(groups)}: add "
                f"'minoritized: {groups[0]}' (or {groups[1]}) to the pair",
            )
            return None
        return orientation[0]

    def _contrast(
        self,
        m: dict[str, tuple[yaml.Node, yaml.Node]],
        tokens: list[_Token],
        groups: tuple[str, str],
        where: str,
    ) -> tuple[int, ...] | None:
        alternations = [t for t in tokens if t.kind == "alt"]
        n = len(alternations)
        if "contrast" not in m:
            contrast = tuple(range(1, n + 1))
        else:
            node = m["contrast"][1]
            if not isinstance(node, yaml.SequenceNode):
                self.error(
                    node,
                    f"{where}: contrast: expected a list of alternation numbers, found {_describe(node)}",
                )
                return None
            values: list[int] = []
            ok = True
            for child in node.value:
                if not (isinstance(child, yaml.ScalarNode) and child.tag == _YAML + "int"):
                    self.error(
                        child,
                        f"{where}: contrast: expected an alternation number, found {_describe(child)}",
                    )
                    ok = False
                    continue
                k = int(yaml.safe_load(child.value))
                if not 1 <= k <= n:
                    self.error(
                        child,
                        f"{where}: contrast: alternation {k} is out of range: the template has "
                        f"{n} alternation{'' if n == 1 else 's'} (numbered from 1)",
                    )
                    ok = False
                elif k in values:
                    self.error(child, f"{where}: contrast: alternation {k} is listed twice")
                    ok = False
                else:
                    values.append(k)
            if not ok:
                return None
            contrast = tuple(sorted(values))
        ok = True
        template_node = m["template"][1]
        for k, alt in enumerate(alternations, start=1):
            if k in contrast and len(alt.options) != len(groups):
                self.error(
                    template_node,
                    f"{where}: alternation {k} {alt.written} has {len(alt.options)} options but "
                    f"groups has {len(groups)} labels {_fmt_list(groups)}: a contrast alternation "
                    "needs one option per group",
                )
                ok = False
            if all(not o for o in alt.options):
                self.error(
                    template_node, f"{where}: alternation {k} {alt.written} has only empty options"
                )
                ok = False
        return contrast if ok else None

    def _check_slots(
        self,
        m: dict[str, tuple[yaml.Node, yaml.Node]],
        tokens: list[_Token],
        groups: tuple[str, str],
        pairing: str,
        where: str,
    ) -> bool:
        template_node = m["template"][1]
        ok = True
        grouped = False
        seen: set[str] = set()
        for tok in tokens:
            if tok.kind != "slot" or tok.text in seen:
                continue
            seen.add(tok.text)
            lex = self.lexicons.get(tok.text)
            if lex is None:
                self.error(
                    template_node,
                    f"{where}: slot {{{tok.text}}} has no lexicon: expected a key "
                    f"{tok.text!r} under 'lexicons'{_suggest(tok.text, self.lexicons)}",
                )
                ok = False
                continue
            if lex.groups is None:
                continue
            grouped = True
            missing = [g for g in groups if g not in lex.groups]
            for g in missing:
                self.error(
                    template_node,
                    f"{where}: slot {{{tok.text}}}: grouped lexicon {tok.text!r} (line {lex.line}) "
                    f"has no word list for group {g!r}; it has {_fmt_list(lex.groups)}",
                )
                ok = False
            if not missing and pairing == "zip":
                a, b = (lex.groups[g] for g in groups)
                if len(a) != len(b):
                    self.error(
                        template_node,
                        f"{where}: slot {{{tok.text}}}: pairing 'zip' needs word lists of equal "
                        f"length, but lexicon {tok.text!r} (line {lex.line}) has {len(a)} words for "
                        f"{groups[0]!r} and {len(b)} for {groups[1]!r} (use 'pairing: product' for "
                        "every combination)",
                    )
                    ok = False
        if "pairing" in m and not grouped and ok:
            self.error(
                m["pairing"][1],
                f"{where}: pairing has no effect: the template has no grouped-lexicon slot",
            )
            ok = False
        return ok

    def _check_contrast_exists(
        self,
        m: dict[str, tuple[yaml.Node, yaml.Node]],
        tokens: list[_Token],
        contrast: tuple[int, ...],
        groups: tuple[str, str],
        where: str,
    ) -> bool:
        alternations = [t for t in tokens if t.kind == "alt"]
        if any(alternations[k - 1].options[0] != alternations[k - 1].options[1] for k in contrast):
            return True
        if any(t.kind == "slot" and self.lexicons[t.text].groups is not None for t in tokens):
            return True
        self.error(
            m["template"][1],
            f"{where}: nothing differs between the groups {_fmt_list(groups)}: the template needs "
            "an [a|b] alternation that carries the contrast or a {slot} filled from a grouped "
            "lexicon (a plain-list slot puts the same word on both sides)",
        )
        return False

    # -- templates ---------------------------------------------------------------------------------

    def _parse_template(self, text: str, node: yaml.Node, where: str) -> list[_Token] | None:
        tokens, errors = _parse_template(text)
        masks = sum(1 for t in tokens if t.kind == "mask")
        if not errors and masks != 1:
            if masks == 0:
                hint = ""
                if "<mask>" in text.lower() or "[mask]" in text.lower():
                    hint = " (write it in upper case, as [MASK]; each model's own mask token is substituted when it runs)"
                errors.append(f"expected exactly one {MASK}, found none{hint}")
            else:
                errors.append(f"expected exactly one {MASK}, found {masks}")
        for message in errors:
            self.error(node, f"{where}: template: {message}")
        return None if errors else tokens

    # -- expansion ---------------------------------------------------------------------------------

    def _expand(
        self, spec: PairSpec, tokens: list[_Token], template_node: yaml.Node
    ) -> list[ProbeItem]:
        lexicons = {name: (lex.words, lex.groups) for name, lex in self.lexicons.items()}
        try:
            return list(_expand_pair(spec, tokens, lexicons))
        except _ExpansionError as exc:
            self.error(template_node, f"pair {spec.id!r}: {exc}")
            return []


# --------------------------------------------------------------------------------------------
# Templates and expansion (pure functions)


@dataclass(frozen=True)
class _Lexicon:
    name: str
    line: int
    words: tuple[str, ...] | None  # plain list
    groups: dict[str, tuple[str, ...]] | None  # grouped: label -> words


@dataclass(frozen=True)
class _Token:
    kind: str  # "text" | "mask" | "alt" | "slot"
    text: str = ""  # literal text, or slot name
    options: tuple[str, ...] = ()  # alternation options
    written: str = ""  # the alternation as written, for messages


class _ExpansionError(ValueError):
    pass


def _parse_template(text: str) -> tuple[list[_Token], list[str]]:
    """Splits a template into text, ``[MASK]``, ``[a|b]`` and ``{slot}`` tokens."""
    tokens: list[_Token] = []
    errors: list[str] = []
    buf: list[str] = []
    i = 0
    n = len(text)

    def flush() -> None:
        if buf:
            tokens.append(_Token("text", "".join(buf)))
            buf.clear()

    while i < n:
        c = text[i]
        if c in "[{":
            close = "]" if c == "[" else "}"
            j = i + 1
            while j < n and text[j] not in "[]{}":
                j += 1
            if j >= n or text[j] != close:
                if j < n and text[j] in "[{":
                    errors.append(
                        f"{c!r} at column {i + 1} is not closed before {text[j]!r} at column {j + 1} (brackets and braces do not nest)"
                    )
                else:
                    errors.append(
                        f"unbalanced {c!r} at column {i + 1}: expected a closing {close!r}"
                    )
                i = j if j < n and text[j] in "[{" else n
                continue
            inner = text[i + 1 : j]
            flush()
            if c == "[":
                if inner == "MASK":
                    tokens.append(_Token("mask"))
                elif "|" not in inner:
                    if inner.strip().lower() in ("mask", "<mask>"):
                        errors.append(f"write the mask as {MASK} (upper case), found '[{inner}]'")
                    else:
                        errors.append(
                            f"'[{inner}]' at column {i + 1} is neither {MASK} nor an alternation "
                            "[a|b] with '|' between the options"
                        )
                else:
                    options = tuple(" ".join(o.split()) for o in inner.split("|"))
                    tokens.append(_Token("alt", options=options, written=f"[{inner}]"))
            else:
                name = inner.strip()
                if not _SLOT_RE.fullmatch(name):
                    errors.append(
                        f"'{{{inner}}}' at column {i + 1} is not a valid slot: expected a lexicon "
                        "name (letters, digits, '-' or '_')"
                    )
                else:
                    tokens.append(_Token("slot", name))
            i = j + 1
        elif c in "]}":
            opener = "[" if c == "]" else "{"
            errors.append(f"unbalanced {c!r} at column {i + 1}: no opening {opener!r} before it")
            i += 1
        else:
            buf.append(c)
            i += 1
    flush()
    return tokens, errors


def _join(pieces: list[tuple[str, bool]]) -> str:
    """Joins literal text and filled values; an empty fill leaves no doubled or stray space."""
    out = ""
    gap = False
    for piece, is_fill in pieces:
        if is_fill and not piece:
            gap = True
            continue
        if gap:
            if not out.strip():
                piece = piece.lstrip()
            elif out[-1:].isspace() and (piece[:1].isspace() or piece[:1] in ",.;:!?"):
                out = out.rstrip()
            gap = False
        out += piece
    return " ".join(out.split())


def _slug(word: str) -> str:
    slug = re.sub(r"[^\w]+", "-", word.lower()).strip("-_")
    return slug or "empty"


def _expand_pair(
    spec: PairSpec,
    tokens: list[_Token],
    lexicons: dict[str, tuple[tuple[str, ...] | None, dict[str, tuple[str, ...]] | None]],
) -> Iterator[ProbeItem]:
    """Expands one validated pair entry into its items.

    Each non-contrast alternation, plain-lexicon slot and grouped-lexicon slot is one expansion
    dimension; items are the cartesian product of the dimensions, in template order. A pair
    with no dimension gives one item whose ``pair_id`` is the entry's id; otherwise ids are
    ``<id>/<choice>/<choice>...`` where a choice is the chosen word (``wordA-wordB`` for a
    grouped slot), lower-cased with other characters turned into ``-``.

    Args:
        spec: the validated entry.
        tokens: its parsed template.
        lexicons: name -> (plain words or None, grouped words or None).

    Yields:
        The expanded items.

    Raises:
        _ExpansionError: the entry expands into too many items, or an expansion gives the same
            sentence on both sides.
    """
    dims: list[tuple[str, list[tuple[str, str]]]] = []  # (fill name, [(word A, word B)])
    paired: set[int] = set()  # dimensions filled from a grouped lexicon
    dim_of: dict[int, int] = {}  # token index -> dimension index
    slot_dim: dict[str, int] = {}
    alt_no = 0
    for t_index, tok in enumerate(tokens):
        if tok.kind == "alt":
            alt_no += 1
            if alt_no in spec.contrast:
                continue
            dim_of[t_index] = len(dims)
            dims.append((f"[{alt_no}]", [(o, o) for o in tok.options]))
        elif tok.kind == "slot":
            if tok.text in slot_dim:
                dim_of[t_index] = slot_dim[tok.text]
                continue
            words, groups = lexicons[tok.text]
            if groups is not None:
                a, b = groups[spec.groups[0]], groups[spec.groups[1]]
                choices = (
                    list(zip(a, b, strict=True))
                    if spec.pairing == "zip"
                    else list(itertools.product(a, b))
                )
                paired.add(len(dims))
            else:
                assert words is not None
                choices = [(w, w) for w in words]
            slot_dim[tok.text] = dim_of[t_index] = len(dims)
            dims.append((tok.text, choices))

    total = 1
    for _, choices in dims:
        total *= len(choices)
    if total > MAX_ITEMS_PER_PAIR:
        raise _ExpansionError(
            f"expands into {total} pairs, more than the limit of {MAX_ITEMS_PER_PAIR} per entry"
        )

    minoritized = spec.groups.index(spec.minoritized)
    for combo in itertools.product(*(choices for _, choices in dims)):
        sentences = []
        for side in (0, 1):
            pieces: list[tuple[str, bool]] = []
            alt_no = 0
            for t_index, tok in enumerate(tokens):
                if tok.kind == "text":
                    pieces.append((tok.text, False))
                elif tok.kind == "mask":
                    pieces.append((MASK, False))
                elif tok.kind == "alt":
                    alt_no += 1
                    if alt_no in spec.contrast:
                        pieces.append((tok.options[side], True))
                    else:
                        pieces.append((combo[dim_of[t_index]][side], True))
                else:
                    pieces.append((combo[dim_of[t_index]][side], True))
            sentences.append(_join(pieces))
        suffix = []
        for d, (a, b) in enumerate(combo):
            suffix.append(f"{_slug(a)}-{_slug(b)}" if d in paired else _slug(a))
        pair_id = "/".join([spec.id, *suffix])
        if sentences[0] == sentences[1]:
            raise _ExpansionError(
                f"expansion {pair_id!r} gives the same sentence on both sides: {sentences[0]!r}"
            )
        yield ProbeItem(
            pair_id=pair_id,
            template_id=spec.id,
            groups=spec.groups,
            sentences=(sentences[0], sentences[1]),
            minoritized=minoritized,
            targets=spec.targets,
            fills=tuple((name, f"{a}|{b}") for (name, _), (a, b) in zip(dims, combo, strict=True)),
            source=spec.source,
        )


# --------------------------------------------------------------------------------------------
# Small helpers


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _walk(root: yaml.Node) -> Iterator[yaml.Node]:
    """Every node once (aliases point at shared nodes; visiting each once bounds the walk)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        if isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
        elif isinstance(node, yaml.MappingNode):
            for k, v in reversed(node.value):
                stack.extend((v, k))


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = node.tag.replace(_YAML, "")
    value = node.value
    if tag == "null":
        return "nothing (null)"
    if tag == "bool":
        return f"true/false ({value})"
    if tag in ("int", "float"):
        return f"the number {value}"
    if len(value) > 40:
        value = value[:37] + "..."
    return f"the string {value!r}"


def _suggest(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fmt_list(words: Iterable[str]) -> str:
    return "[" + ", ".join(words) + "]"
