"""Validation state shared by the probe-schema modules, and the checks of plain fields."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import yaml

from biasprobe.probes.model import FILL_MASK
from biasprobe.probes.templates import SPECIAL_CHARS, Lexicon
from biasprobe.yamlschema import YAML_TAG, Problems, describe, line, shown

Entry = tuple[yaml.Node, yaml.Node]
"""A mapping entry: (key node, value node)."""


@dataclass
class Context:
    """What the checks of one file share: its problems, its kind and its lexicons."""

    problems: Problems
    kind: str = FILL_MASK
    lexicons: dict[str, Lexicon] = field(default_factory=dict)
    target_lexicons: dict[str, tuple[str, ...] | None] = field(default_factory=dict)

    def error(self, at: yaml.Node | int | None, message: str) -> None:
        self.problems.add(at, message)


def text(ctx: Context, node: yaml.Node, what: str, *, allow_empty: bool = False) -> str | None:
    """A scalar's text as written (so ``1908``, ``no`` and ``on`` stay the words they are)."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == YAML_TAG + "null":
        ctx.error(node, f"{what}: expected a string, found {describe(node)}")
        return None
    value = node.value.strip()
    if not value and not allow_empty:
        ctx.error(node, f"{what}: expected a non-empty string, found an empty one")
        return None
    return value


def text_at(ctx: Context, mapping: dict[str, Entry], key: str) -> str | None:
    """The text of ``mapping[key]``, or None when absent or invalid."""
    if key not in mapping:
        return None
    return text(ctx, mapping[key][1], key)


def text_list(ctx: Context, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node]] | None:
    """A non-empty list of distinct non-empty strings, each with its node."""
    if not isinstance(node, yaml.SequenceNode):
        ctx.error(node, f"{what}: expected a list, found {describe(node)}")
        return None
    if not node.value:
        ctx.error(node, f"{what}: expected a non-empty list, found an empty one")
        return None
    items, ok = distinct(
        ctx,
        node.value,
        what,
        lambda word, first: f"{what}: {shown(word)} is listed twice (first at line {first})",
    )
    return [(word, node.value[i]) for word, i in items] if ok else None


def distinct(
    ctx: Context, nodes: list[yaml.Node], what: str, twice: Callable[[str, int], str]
) -> tuple[list[tuple[str, int]], bool]:
    """The texts of ``nodes``, each once, with their index; and whether all were valid.

    A repeated text is reported with ``twice(text, line of its first occurrence)``.
    """
    out: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    ok = True
    for i, child in enumerate(nodes):
        word = text(ctx, child, what)
        if word is None:
            ok = False
        elif word in seen:
            ctx.error(child, twice(word, seen[word]))
            ok = False
        else:
            seen[word] = line(child)
            out.append((word, i))
    return out, ok


def words(ctx: Context, node: yaml.Node, where: str) -> tuple[str, ...] | None:
    """A lexicon's word list: non-empty, distinct, free of the template's special characters."""
    items = text_list(ctx, node, where)
    if items is None:
        return None
    ok = True
    for word, child in items:
        if any(c in word for c in SPECIAL_CHARS):
            ctx.error(
                child, f"{where}: {shown(word)} contains one of [ ] {{ }}, which templates reserve"
            )
            ok = False
    return tuple(" ".join(w.split()) for w, _ in items) if ok else None


def targets(ctx: Context, node: yaml.Node, where: str) -> tuple[str, ...] | None:
    """Targets: a list of single words, or the name of a plain lexicon."""
    if isinstance(node, yaml.ScalarNode) and node.tag != YAML_TAG + "null":
        return _target_lexicon(ctx, node, where)
    items = text_list(ctx, node, where)
    if items is None:
        return None
    ok = True
    for word, child in items:
        if len(word.split()) != 1 or any(c in word for c in SPECIAL_CHARS):
            ctx.error(child, f"{where}: expected a single word, found {shown(word)}")
            ok = False
    return tuple(w for w, _ in items) if ok else None


def _target_lexicon(ctx: Context, node: yaml.ScalarNode, where: str) -> tuple[str, ...] | None:
    name = node.value.strip()
    lex = ctx.lexicons.get(name)
    if lex is None:
        ctx.error(
            node,
            f"{where}: no lexicon named {shown(name)}{ctx.problems.suggest(name, ctx.lexicons)}",
        )
        return None
    if lex.words is None:
        ctx.error(
            node,
            f"{where}: lexicon {shown(name)} is grouped (one list per group); targets need a "
            "plain list of words",
        )
        return None
    if name not in ctx.target_lexicons:
        bad = [w for w in lex.words if len(w.split()) != 1]
        for word in bad:
            ctx.error(
                node,
                f"{where}: target {shown(word)} from lexicon {shown(name)} (line {lex.line}) must be "
                "a single word with no spaces",
            )
        ctx.target_lexicons[name] = None if bad else lex.words
    return ctx.target_lexicons[name]
