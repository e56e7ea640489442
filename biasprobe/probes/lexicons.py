"""The ``lexicons:`` section: named word lists, plain or one list per group."""

from __future__ import annotations

import yaml

from biasprobe.probes.fields import Context, Entry, distinct, text, words
from biasprobe.probes.templates import SLOT_RE, Lexicon
from biasprobe.yamlschema import describe, line, shown


def load_lexicons(ctx: Context, entry: Entry | None) -> None:
    """Checks the section and stores every valid lexicon in ``ctx.lexicons``."""
    if entry is None:
        return
    node = entry[1]
    if not isinstance(node, yaml.MappingNode):
        ctx.error(
            node, f"lexicons: expected a mapping of name -> word list, found {describe(node)}"
        )
        return
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
