"""The ``lexicons:`` section: named word lists, plain or one list per group."""

from __future__ import annotations

import re

import yaml

from biasprobe.probes.fields import Context, Entry, distinct, text, words
from biasprobe.probes.templates import SLOT_RE, Lexicon
from biasprobe.yamlschema import Problems, describe, line, shown


def load_lexicons(ctx: Context, entry: Entry | None) -> set[str]:
    """Checks the section and stores every valid lexicon in ``ctx.lexicons``.

    Returns the names of the lexicons that are written but invalid (their problems already
    reported), so that :func:`drop_echoes` can remove the "no lexicon" problems they cause.
    """
    invalid: set[str] = set()
    if entry is None:
        return invalid
    node = entry[1]
    if not isinstance(node, yaml.MappingNode):
        ctx.error(
            node, f"lexicons: expected a mapping of name -> word list, found {describe(node)}"
        )
        return invalid
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        name = text(ctx, key_node, "lexicons: name")
        if name is None:
            continue
        if name in seen:
            ctx.error(
                key_node,
                f"lexicons: duplicate key {shown(name)} (first written at line {seen[name]})",
            )
            continue
        seen[name] = line(key_node)
        if not SLOT_RE.fullmatch(name):
            ctx.error(
                key_node,
                f"lexicon {shown(name)}: a lexicon name must start with a letter or '_' and hold "
                "only letters, digits, '-' or '_'",
            )
            continue
        lexicon = _lexicon(ctx, name, line(key_node), value_node)
        if lexicon is not None:
            ctx.lexicons[name] = lexicon
        else:
            invalid.add(name)
    return invalid


def drop_echoes(problems: Problems, invalid: set[str]) -> None:
    """Remove from ``problems`` the echoes of problems already reported: "no lexicon" for a
    lexicon that is written but invalid (its own problem says what is wrong), and any problem
    listed twice at the same line.

    Linear in the number of problems: each message is looked up, not compared with every
    invalid lexicon's name.
    """
    slots = {f"{{{name}}}" for name in invalid}
    named = {shown(name) for name in invalid}
    lengths = sorted({len(n) for n in named})
    kept, seen = [], set()
    for p in problems.items:
        key = (p.line, p.message)
        if key in seen or _echoes(p.message, slots, named, lengths):
            continue
        seen.add(key)
        kept.append(p)
    problems.items[:] = kept


def _echoes(message: str, slots: set[str], named: set[str], lengths: list[int]) -> bool:
    """Whether ``message`` says "slot {x} has no lexicon" or "no lexicon named 'x'" for an x
    of the invalid lexicons (``slots``: their ``{x}``; ``named``: their quoted names)."""
    if not slots:
        return False
    for found in _SLOT_ECHO.finditer(message):
        if found.group(1) in slots:
            return True
    start = message.find(_NAMED_ECHO)
    while start >= 0:
        at = start + len(_NAMED_ECHO)
        if any(message[at : at + n] in named for n in lengths):
            return True
        start = message.find(_NAMED_ECHO, at)
    return False


_SLOT_ECHO = re.compile(r"slot (\{[^{}]*\}) has no lexicon")
_NAMED_ECHO = "no lexicon named "


def _lexicon(ctx: Context, name: str, at: int, node: yaml.Node) -> Lexicon | None:
    where = f"lexicon {shown(name)}"
    if isinstance(node, yaml.SequenceNode):
        plain = words(ctx, node, where)
        return None if plain is None else Lexicon(name, at, plain, None)
    if isinstance(node, yaml.MappingNode):
        return _grouped(ctx, name, at, node)
    ctx.error(
        node,
        f"{where}: expected a list of words, or a mapping of group label -> list of "
        f"words, found {describe(node)}",
    )
    return None


def _grouped(ctx: Context, name: str, at: int, node: yaml.MappingNode) -> Lexicon | None:
    where = f"lexicon {shown(name)}"
    labels, ok = distinct(
        ctx,
        [key for key, _ in node.value],
        f"{where}: group label",
        lambda label, _: f"{where}: duplicate group {shown(label)}",
    )
    groups: dict[str, tuple[str, ...]] = {}
    for label, i in labels:
        group_words = words(ctx, node.value[i][1], f"{where}, group {shown(label)}")
        if group_words is None:
            ok = False
        else:
            groups[label] = group_words
    if not node.value:
        ctx.error(node, f"{where}: expected at least one group, found an empty mapping")
        return None
    return Lexicon(name, at, None, groups) if ok else None
