"""Shared machinery for validating user-written YAML files with ``file:line`` problems.

Probe sets (:mod:`biasprobe.probes`) and sentiment training configs
(:mod:`biasprobe.sentiment.config`) are both checked on the composed YAML node tree, so every
problem can name the line it is on. This module holds what both need:

- :func:`compose`: safe YAML composition that never raises anything but a reported problem (deep
  nesting is refused before the recursive composer sees it);
- :func:`check_nodes`: only the standard YAML tags, and no control characters or lone surrogates
  in any scalar (they would reach a terminal or a tokenizer later);
- :class:`Problems`: the problem collector; the error it builds lists at most
  :data:`MAX_PROBLEMS` problems and says how many more there are;
- :func:`mapping`: keys checked (unknown keys get a "did you mean" suggestion, duplicates and
  missing keys are reported);
- :func:`int_value` / :func:`plain_value`: integers in plain decimal only (no YAML 1.1 octal,
  hexadecimal, base-60 or ``_`` forms, no tag tricks, bounded length);
- :func:`describe` / :func:`shown`: short descriptions of a value for messages, truncated.

It imports only PyYAML.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import yaml

from biasprobe.errors import MAX_PROBLEMS, BiasprobeError, Problem

__all__ = [
    "ALLOWED_TAGS",
    "INVALID",
    "MAX_DEPTH",
    "MAX_PROBLEMS",
    "Problems",
    "YAML_TAG",
    "bad_characters",
    "check_nodes",
    "compose",
    "cut",
    "describe",
    "int_value",
    "line",
    "mapping",
    "paused_gc",
    "plain_value",
    "shown",
    "suggest",
    "walk",
]

YAML_TAG = "tag:yaml.org,2002:"
"""Prefix of the standard YAML tags (``!!int`` is ``tag:yaml.org,2002:int``)."""

ALLOWED_TAGS = frozenset(
    YAML_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map")
)
MAX_DEPTH = 64
"""Deepest nesting of lists and mappings accepted (far beyond any real file)."""
MAX_SHOWN = 60
"""Characters of a user's value echoed in a message before it is cut with ``…``."""
MAX_INT_DIGITS = 18
MAX_SUGGEST_CANDIDATES = 1000
"""Most known words a "did you mean" suggestion is looked for among."""
MAX_SUGGESTIONS = 200
"""Suggestions made for one file; later problems go without (only the first problems are shown)."""

_DECIMAL = re.compile(r"[-+]?(0|[1-9][0-9]*)")
# Every C0/C1 control but tab and newline, and every surrogate (unicodedata categories Cc, Cs).
_BAD_IN_SCALAR = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# What YAML itself refuses in a document (YAML 1.1 "printable" set, as PyYAML's reader checks).
_NOT_YAML = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MAX_YAML_MESSAGE = 300
"""Characters of a YAML parser's own message kept in a problem (it quotes no user text)."""

E = TypeVar("E", bound=BiasprobeError)


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()
"""Returned by :func:`plain_value` when the node was reported as a problem."""


def line(node: yaml.Node) -> int:
    """1-based line a node starts on."""
    return node.start_mark.line + 1


def cut(text: str) -> str:
    """``text`` cut to :data:`MAX_SHOWN` characters with ``…`` (for unquoted echoes)."""
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def shown(value: object) -> str:
    """``repr`` of a value, cut to :data:`MAX_SHOWN` characters with ``…``."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def describe(node: yaml.Node) -> str:
    """What a node holds, in words: ``"a list"``, ``"the number 3"``, ``"the string 'x'"``."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = node.tag.replace(YAML_TAG, "")
    value = node.value
    if tag == "null":
        return "nothing (null)"
    if tag == "bool":
        return f"true/false ({value[:MAX_SHOWN]})"
    if tag in ("int", "float"):
        text = value if len(value) <= MAX_SHOWN else value[: MAX_SHOWN - 1] + "…"
        return f"the number {text}"
    if len(value) > 40:
        value = value[:37] + "..."
    return f"the string {value!r}"


def suggest(word: str, known: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest known word, or ``""``.

    Bounded work: no suggestion for a word longer than 100 characters or among more than
    :data:`MAX_SUGGEST_CANDIDATES` known words (a file's own names, such as its lexicons, can
    number hundreds of thousands; comparing against each would make every message slow).
    """
    if len(word) > 100:
        return ""
    candidates = known if isinstance(known, list | tuple | dict | set | frozenset) else list(known)
    if len(candidates) > MAX_SUGGEST_CANDIDATES:
        return ""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def bad_characters(text: str) -> str | None:
    """Describes the first control character or lone surrogate in ``text``, or None.

    Tabs and newlines are allowed; every other C0/C1 control, DEL and any surrogate is not: they
    could rewrite a terminal (``ESC ] 2 ; …``) or break a tokenizer. One regular-expression
    search, so a long scalar costs no Python loop.
    """
    found = _BAD_IN_SCALAR.search(text)
    if found is None:
        return None
    c, i = found.group(), found.start()
    if unicodedata.category(c) == "Cs":
        return f"a lone surrogate U+{ord(c):04X} at character {i + 1}"
    return f"the control character U+{ord(c):04X} at character {i + 1}"


class Problems:
    """Collects problems of one file; builds the project error listing them."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[Problem] = []
        self.suggestions = 0
        #: Parts of the file already reported as wrong (e.g. ``"orientation"``): checks that
        #: depend on them stay silent rather than report the same mistake again.
        self.broken: set[str] = set()
        #: (id of a mapping node, known key) for every unknown key reported as a likely
        #: misspelling of that known key in that mapping.
        self.misspelt: set[tuple[int, str]] = set()

    def suggest(self, word: str, known: Iterable[str]) -> str:
        """:func:`suggest`, for the first :data:`MAX_SUGGESTIONS` calls on this file only: a
        file of 300,000 unknown keys costs no 300,000 string comparisons."""
        if self.suggestions >= MAX_SUGGESTIONS:
            return ""
        self.suggestions += 1
        return suggest(word, known)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, at: yaml.Node | int | None, message: str) -> None:
        """Records ``message`` at a node's line, a line number, or the whole file (None)."""
        where = at if isinstance(at, int) or at is None else line(at)
        self.items.append(Problem(self.file, where, message))

    def error(self, cls: type[E], title: str) -> E:
        """``cls(problems)`` in file order, its message listing the first MAX_PROBLEMS."""
        ordered = sorted(self.items, key=lambda p: p.line or 0)
        return capped_error(cls, ordered, title)


def capped_error(cls: type[E], problems: list[Problem], title: str) -> E:
    """``cls(problems[:MAX_PROBLEMS])`` whose message counts and mentions all of them."""
    return cls(problems, title)  # type: ignore[call-arg]


# --------------------------------------------------------------------------------------------
# Composing and checking the node tree


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a large tree of objects is built.

    Each collection walks every object alive, so collections triggered while a big node tree
    (or a big list of items) grows make building it super-linear; nothing built here is
    garbage until the build is done. The collector's previous state is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def compose(text: str, problems: Problems) -> yaml.Node | None:
    """The document's node tree, or None with the reason added to ``problems``.

    Characters YAML refuses (raw control characters) are found first and reported with their
    line and column. The tree is composed by libyaml when PyYAML has it (linear and fast; it
    refuses nesting deeper than 1,000 levels itself), else by PyYAML's recursive composer
    after the (iterative) parser has checked the depth. Either way nesting deeper than
    :data:`MAX_DEPTH` is refused, so nothing recursive ever sees it.
    """
    unreadable = _unreadable(text)
    if unreadable is not None:
        problems.add(*unreadable)
        return None
    try:
        with paused_gc():
            if _C_LOADER is not None:
                root = yaml.compose(text, Loader=_C_LOADER)
            else:
                too_deep = _too_deep(text)
                if too_deep is not None:
                    problems.add(too_deep, _DEPTH_MESSAGE)
                    return None
                root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            too_deep = _deepest(root)
            if too_deep is not None:
                problems.add(too_deep, _DEPTH_MESSAGE)
                return None
        return root
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(s for s in (exc.context, exc.problem) if s) or "invalid YAML"
        if "maximum nesting depth" in what:
            problems.add(None if mark is None else mark.line + 1, _DEPTH_MESSAGE)
        elif mark is None:
            problems.add(None, f"invalid YAML: {_yaml_message(what)}")
        else:
            what = _escape_problem(text, mark, what) or _yaml_message(what)
            problems.add(mark.line + 1, f"invalid YAML at column {mark.column + 1}: {what}")
    except yaml.reader.ReaderError as exc:
        where = text.count("\n", 0, max(0, exc.position)) + 1
        problems.add(where, f"invalid YAML: {_yaml_message(exc.reason)}")
    except RecursionError:
        problems.add(None, _DEPTH_MESSAGE)
    except (yaml.YAMLError, ValueError) as exc:
        problems.add(None, f"invalid YAML: {_yaml_message(str(exc))}")
    return None


_DEPTH_MESSAGE = f"lists and mappings are nested more than {MAX_DEPTH} levels deep"
_C_LOADER = getattr(yaml, "CSafeLoader", None)


def _yaml_message(what: str) -> str:
    """A YAML parser's message on one line, cut only when very long (it holds no user text
    beyond short excerpts, which the caller escapes when it prints)."""
    # libyaml says "... not allowed in this context" where PyYAML says "... not allowed here"
    text = " ".join(what.split()).replace(" in this context", " here")
    return text if len(text) <= _MAX_YAML_MESSAGE else text[: _MAX_YAML_MESSAGE - 1] + "…"


def _escape_problem(text: str, mark: Any, what: str) -> str | None:
    """libyaml's "invalid Unicode character escape code" in words naming the code point (a
    lone surrogate such as ``"\\ud800"``, or a number beyond Unicode), else None."""
    if "escape code" not in what:
        return None
    lines = text.split("\n", mark.line + 1)
    row = lines[mark.line] if mark.line < len(lines) else ""
    digits = re.match(r"[0-9A-Fa-f]{1,8}", row[mark.column : mark.column + 8])
    if digits is None:
        return None
    code = int(digits.group(), 16)
    if 0xD800 <= code <= 0xDFFF:
        return (
            f"the escape holds a lone surrogate U+{code:04X}, which text cannot hold "
            "(control characters and lone surrogates are not allowed)"
        )
    return f"the escape of {digits.group()} names no character" if code > 0x10FFFF else None


def _unreadable(text: str) -> tuple[int, str] | None:
    """``(line, message)`` for the first character YAML does not accept in a document, or None.

    YAML refuses raw control characters (anything but tab, newline and carriage return), DEL,
    the C1 controls but NEL, lone surrogates, U+FFFE and U+FFFF. Written escaped inside a
    double-quoted string (``"\\x07"``) they are read by YAML, and :func:`check_nodes` refuses
    them there.
    """
    found = _NOT_YAML.search(text)
    if found is None:
        return None
    c, at = found.group(), found.start()
    line_no = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    kind = {"Cs": "a lone surrogate", "Cc": "the control character"}.get(
        unicodedata.category(c), "the character"
    )
    more = len(_NOT_YAML.findall(text, at + 1, at + 1_000_000))
    also = f" (and {more} more such character{'s' if more != 1 else ''})" if more else ""
    return line_no, (
        f"{kind} U+{ord(c):04X} at column {column} is not allowed in a YAML file{also}; remove it"
    )


def _too_deep(text: str) -> int | None:
    """Line of the first collection nested deeper than MAX_DEPTH, or None (PyYAML's own
    iterative parser; only used without libyaml). A syntax error here is left for the
    composer to report in its own words."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return event.start_mark.line + 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return None
    return None


def _deepest(root: yaml.Node) -> int | None:
    """Line of the first collection nested deeper than MAX_DEPTH in a composed tree, or None
    (each node visited once, iteratively: aliases cannot make the walk blow up)."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, yaml.ScalarNode) or id(node) in seen:
            continue
        seen.add(id(node))
        depth += 1
        if depth > MAX_DEPTH:
            return line(node)
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth) for child in node.value)
        else:
            for k, v in node.value:
                stack.append((k, depth))
                stack.append((v, depth))
    return None


def walk(root: yaml.Node) -> Iterator[yaml.Node]:
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


def check_nodes(root: yaml.Node, problems: Problems, holds: str) -> bool:
    """Reports non-standard tags and scalars with control characters; True when none.

    Args:
        root: the composed document.
        problems: where to report.
        holds: what the file may hold, for the tag message (e.g. "probe files hold only ...").
    """
    ok = True
    for node in walk(root):
        if node.tag not in ALLOWED_TAGS:
            tag = node.tag.replace(YAML_TAG, "!!")
            problems.add(node, f"YAML tag {shown(tag)} is not allowed: {holds}")
            ok = False
        if isinstance(node, yaml.ScalarNode):
            bad = bad_characters(node.value)
            if bad is not None:
                problems.add(
                    node,
                    f"{shown(node.value)} holds {bad}; remove it (control characters and lone "
                    "surrogates are not allowed)",
                )
                ok = False
    return ok


# --------------------------------------------------------------------------------------------
# Mappings and values


def mapping(
    node: yaml.Node,
    problems: Problems,
    known: Iterable[str] | None,
    required: Iterable[str] = (),
    where: str = "",
    owner: yaml.Node | None = None,
) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
    """Checks a mapping's keys; returns key -> (key node, value node), or None if no mapping.

    Unknown keys (with a suggestion; ``known=None`` accepts any key), duplicate keys and missing required keys are reported;
    missing keys at ``owner`` (the key holding the mapping) when given. ``where`` prefixes every
    message (``"pairs[1]: unknown key ..."``); empty for none.
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, f"{prefix}expected a mapping, found {describe(node)}")
        return None
    known = None if known is None else tuple(known)
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    meant: set[str] = set()  # known keys an unknown key looks like a misspelling of
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            problems.add(key_node, f"{prefix}expected a plain key, found {describe(key_node)}")
            continue
        key = key_node.value
        if key in out:
            first = line(out[key][0])
            problems.add(
                key_node, f"{prefix}duplicate key {shown(key)} (first written at line {first})"
            )
            continue
        if known is not None and key not in known:
            hint = problems.suggest(key, known)
            problems.add(key_node, f"{prefix}unknown key {shown(key)}{hint}")
            meant.update(k for k in known if hint == f" (did you mean {k!r}?)")
            continue
        out[key] = (key_node, value_node)
    problems.misspelt.update((id(node), k) for k in meant)
    for key in required:
        # a misspelt key already says what is missing ("did you mean 'minoritized'?")
        if key not in out and key not in meant:
            problems.add(owner or node, f"{prefix}missing required key {key!r}")
    return out


def _int_form(text: str) -> str | None:
    """Names the YAML 1.1 integer form a non-decimal integer scalar is written in."""
    body = text.lstrip("+-")
    if ":" in body:
        return "a base-60 (hh:mm) number"
    if body.startswith(("0x", "0X")):
        return "a hexadecimal number"
    if body.startswith(("0b", "0B")):
        return "a binary number"
    if "_" in body:
        return "a number with '_' separators"
    if len(body) > 1 and body.startswith("0"):
        return "an octal number (leading zero)"
    return None


def int_value(node: yaml.Node, problems: Problems, what: str) -> int | None:
    """A plain decimal integer scalar's value; anything else is reported and gives None.

    YAML 1.1 reads ``010`` as 8, ``0x1F`` as 31 and ``1:30`` as 90; these forms (and explicit
    ``!!int`` tags on other text) are refused with a message rather than silently converted.
    """
    if not isinstance(node, yaml.ScalarNode) or node.tag != YAML_TAG + "int":
        problems.add(node, f"{what}: expected an integer, found {describe(node)}")
        return None
    text = node.value.strip()
    if not _DECIMAL.fullmatch(text):
        form = _int_form(text)
        hint = (
            ""
            if form is None
            else f" (YAML 1.1 reads it as {form}; write the number in decimal digits, or quote "
            "it to make it text)"
        )
        problems.add(node, f"{what}: expected a plain decimal integer, found {shown(text)}{hint}")
        return None
    if len(text.lstrip("+-")) > MAX_INT_DIGITS:
        problems.add(
            node, f"{what}: the integer {shown(text)} has more than {MAX_INT_DIGITS} digits"
        )
        return None
    return int(text)


def plain_value(node: yaml.Node, problems: Problems, what: str) -> Any:
    """The plain Python value of a node (str, int, float, bool, None, list, dict).

    Integers go through :func:`int_value`; other scalars through PyYAML's safe constructor.
    A node reached twice through aliases is built once and shared (as PyYAML does), so alias
    bombs cost no more than the file; a node containing itself is refused. Any value that
    cannot be built is reported and gives :data:`INVALID`.
    """
    return _Builder(problems, what).build(node)


class _Builder:
    def __init__(self, problems: Problems, what: str) -> None:
        self.problems = problems
        self.what = what
        self.done: dict[int, Any] = {}
        self.open: set[int] = set()

    def build(self, node: yaml.Node) -> Any:
        key = id(node)
        if key in self.done:
            return self.done[key]
        if key in self.open:
            self.problems.add(node, f"{self.what}: a value may not contain itself (alias loop)")
            return INVALID
        self.open.add(key)
        value = self._build(node)
        self.open.discard(key)
        self.done[key] = value
        return value

    def _build(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.SequenceNode):
            items = [self.build(child) for child in node.value]
            return INVALID if any(v is INVALID for v in items) else items
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node)
        if node.tag == YAML_TAG + "int":
            value = int_value(node, self.problems, self.what)
            return INVALID if value is None else value
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            self.problems.add(
                node, f"{self.what}: cannot read {shown(node.value)} ({shown(str(exc))})"
            )
            return INVALID
        finally:
            loader.dispose()

    def _mapping(self, node: yaml.MappingNode) -> Any:
        out = {}
        for k, v in node.value:
            key, value = self.build(k), self.build(v)
            if key is INVALID or value is INVALID:
                return INVALID
            try:
                out[key] = value
            except TypeError:
                self.problems.add(
                    k, f"{self.what}: a key must be a plain value, found {describe(k)}"
                )
                return INVALID
        return out
