"""One ``pairs:`` entry: its keys, template, groups, orientation, contrast and slots."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import yaml

from biasprobe.probes.fields import Context, Entry, targets, text, text_at, text_list
from biasprobe.probes.model import COUNTERFACTUAL, MASK, PairSpec
from biasprobe.probes.templates import Token, parse_template
from biasprobe.yamlschema import YAML_TAG, cut, describe, int_value, line, mapping, shown

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
PAIRINGS = ("zip", "product")
PAIR_KEYS = (
    "id",
    "template",
    "groups",
    "minoritized",
    "targets",
    "contrast",
    "pairing",
    "note",
    "attribute",
    "arbitrary_orientation",
)
PAIR_REQUIRED = ("id", "template", "groups")


@dataclass(frozen=True)
class _Parsed:
    """An entry whose template and groups are valid: what the later checks look at."""

    ctx: Context
    m: dict[str, Entry]
    tokens: list[Token]
    groups: tuple[str, str]
    where: str

    @property
    def template_node(self) -> yaml.Node:
        return self.m["template"][1]


def fmt_list(words: Iterable[str]) -> str:
    """``[a, b]``, each word cut to a readable length."""
    return "[" + ", ".join(cut(w) for w in words) + "]"


def load_pair(
    ctx: Context,
    node: yaml.Node,
    index: int,
    orientation: tuple[str, str] | None,
    default_targets: tuple[str, ...],
    ids: dict[str, int],
) -> tuple[PairSpec, list[Token]] | None:
    """Validates one entry; returns its spec and parsed template, or None (problems reported)."""
    m = mapping(node, ctx.problems, PAIR_KEYS, PAIR_REQUIRED, f"pairs[{index}]")
    if m is None:
        return None
    pair_id, where = _pair_id(ctx, m, index, ids)
    ok = pair_id is not None
    groups = _groups(ctx, m.get("groups"), where)
    template = text(ctx, m["template"][1], f"{where}: template") if "template" in m else None
    tokens = None if template is None else _template(ctx, template, m["template"][1], where)
    minoritized = _minoritized(ctx, m, groups, orientation, node, where)
    chosen_targets = _pair_targets(ctx, m, default_targets, where)
    note = ""
    if "note" in m:
        note = text(ctx, m["note"][1], f"{where}: note", allow_empty=True) or ""
    pairing = _pairing(ctx, m, where)
    arbitrary = _flag(ctx, m, "arbitrary_orientation", where)
    ok = ok and None not in (groups, tokens, minoritized, chosen_targets, pairing, arbitrary)
    contrast: tuple[int, ...] | None = None
    attribute: str | None = None
    if tokens is not None and groups is not None:
        parsed = _Parsed(ctx, m, tokens, groups, where)
        contrast = _contrast(parsed)
        ok = ok and contrast is not None
        ok = _check_slots(parsed, pairing or "zip") and ok
        attribute = _attribute(parsed)
        ok = ok and (attribute is not None or "attribute" not in m)
        if attribute is not None and chosen_targets is not None:
            ok = _check_attribute_targets(parsed, chosen_targets) and ok
        elif contrast is not None and ok and "attribute" not in m:
            ok = _check_contrast_exists(parsed, contrast)
    if not ok:
        return None
    assert pair_id is not None and template is not None and groups is not None
    assert minoritized is not None and chosen_targets is not None and contrast is not None
    assert tokens is not None and pairing is not None
    spec = PairSpec(
        id=pair_id,
        template=template,
        groups=groups,
        minoritized=minoritized,
        targets=chosen_targets,
        contrast=contrast,
        pairing=pairing,
        note=note,
        source=f"{ctx.problems.file}:{line(node)}",
        attribute=attribute,
        arbitrary_orientation=bool(arbitrary),
    )
    return spec, tokens


def _flag(ctx: Context, m: dict[str, Entry], key: str, where: str) -> bool | None:
    """An optional ``true``/``false`` key (False when absent; None when invalid, reported)."""
    if key not in m:
        return False
    node = m[key][1]
    if isinstance(node, yaml.ScalarNode) and node.tag == YAML_TAG + "bool":
        return node.value.lower() in ("true", "yes", "on")
    ctx.error(node, f"{where}: {key}: expected true or false, found {describe(node)}")
    return None


def _pair_id(
    ctx: Context, m: dict[str, Entry], index: int, ids: dict[str, int]
) -> tuple[str | None, str]:
    """The entry's id (None when invalid) and the name messages use for the entry."""
    where = f"pairs[{index}]"
    pair_id = text_at(ctx, m, "id")
    if pair_id is None:
        return None, where
    id_node = m["id"][1]
    if not NAME_RE.fullmatch(pair_id):
        ctx.error(
            id_node,
            f"{where}.id: expected lower-case letters, digits, '-' or '_', found {shown(pair_id)}",
        )
        return None, f"pair {shown(pair_id)}"
    if pair_id in ids:
        ctx.error(
            id_node,
            f"{where}.id: duplicate pair id {shown(pair_id)} (first at line {ids[pair_id]})",
        )
        return None, f"pair {shown(pair_id)}"
    ids[pair_id] = line(id_node)
    return pair_id, f"pair {shown(pair_id)}"


def _template(ctx: Context, template: str, node: yaml.Node, where: str) -> list[Token] | None:
    tokens, errors = parse_template(template)
    masks = sum(1 for t in tokens if t.kind == "mask")
    if not errors and ctx.kind == COUNTERFACTUAL and masks:
        errors.append(
            f"a counterfactual set's templates hold no {MASK}, found {masks} (a set is either "
            "fill-mask or counterfactual; put fill-mask templates in a separate file)"
        )
    elif not errors and ctx.kind != COUNTERFACTUAL and masks != 1:
        if masks == 0:
            hint = ""
            lower = template.lower()
            if "<mask>" in lower or "[mask]" in lower:
                hint = (
                    " (write it in upper case, as [MASK]; each model's own mask token is "
                    "substituted when it runs)"
                )
            errors.append(f"expected exactly one {MASK}, found none{hint}")
        else:
            errors.append(f"expected exactly one {MASK}, found {masks}")
    for message in errors:
        ctx.error(node, f"{where}: template: {message}")
    return None if errors else tokens


def _groups(ctx: Context, entry: Entry | None, where: str) -> tuple[str, str] | None:
    if entry is None:
        return None
    node = entry[1]
    labels = text_list(ctx, node, f"{where}: groups")
    if labels is None:
        return None
    if len(labels) != 2:
        ctx.error(
            node,
            f"{where}: groups: expected exactly 2 labels (side A, side B), found {len(labels)}",
        )
        return None
    return labels[0][0], labels[1][0]


def _pair_targets(
    ctx: Context, m: dict[str, Entry], default_targets: tuple[str, ...], where: str
) -> tuple[str, ...] | None:
    if "targets" not in m:
        return default_targets
    if ctx.kind == COUNTERFACTUAL:
        ctx.error(
            m["targets"][0],
            f"{where}: targets: a counterfactual set has no mask, so there is nothing to score "
            "targets at; remove 'targets'",
        )
        return None
    return targets(ctx, m["targets"][1], f"{where}: targets")


def _pairing(ctx: Context, m: dict[str, Entry], where: str) -> str | None:
    if "pairing" not in m:
        return "zip"
    value = text(ctx, m["pairing"][1], f"{where}: pairing")
    if value is not None and value not in PAIRINGS:
        ctx.error(
            m["pairing"][1],
            f"{where}: pairing: expected 'zip' or 'product', found {shown(value)}"
            f"{ctx.problems.suggest(value, PAIRINGS)}",
        )
        return None
    return value


def _minoritized(
    ctx: Context,
    m: dict[str, Entry],
    groups: tuple[str, str] | None,
    orientation: tuple[str, str] | None,
    pair_node: yaml.Node,
    where: str,
) -> str | None:
    if "minoritized" in m:
        node = m["minoritized"][1]
        label = text(ctx, node, f"{where}: minoritized")
        if label is None or groups is None:
            return None
        if label not in groups:
            ctx.error(
                node,
                f"{where}: minoritized: expected one of the pair's groups "
                f"{fmt_list(groups)}, found {shown(label)}",
            )
            return None
        return label
    if groups is None:
        return None
    a, b = cut(groups[0]), cut(groups[1])
    if orientation is None:
        if "orientation" in ctx.problems.broken:  # the top-level orientation is reported
            return None
        if (id(pair_node), "minoritized") in ctx.problems.misspelt:  # reported as misspelt
            return None
        ctx.error(
            pair_node,
            f"{where}: no orientation: add 'minoritized: {a}' (or {b}) to the "
            "pair, or a top-level 'orientation:' naming its minoritized and normative groups",
        )
        return None
    if set(orientation) != set(groups):
        ctx.error(
            pair_node,
            f"{where}: the top-level orientation (minoritized: {cut(orientation[0])}, normative: "
            f"{cut(orientation[1])}) does not name this pair's groups {fmt_list(groups)}: add "
            f"'minoritized: {a}' (or {b}) to the pair",
        )
        return None
    return orientation[0]


def _contrast_numbers(ctx: Context, node: yaml.Node, n: int, where: str) -> tuple[int, ...] | None:
    if not isinstance(node, yaml.SequenceNode):
        ctx.error(
            node,
            f"{where}: contrast: expected a list of alternation numbers, found {describe(node)}",
        )
        return None
    values: set[int] = set()
    ok = True
    for child in node.value:
        if not (isinstance(child, yaml.ScalarNode) and child.tag == YAML_TAG + "int"):
            ctx.error(
                child,
                f"{where}: contrast: expected an alternation number, found {describe(child)}",
            )
            ok = False
            continue
        k = int_value(child, ctx.problems, f"{where}: contrast")
        if k is None:
            ok = False
        elif not 1 <= k <= n:
            ctx.error(
                child,
                f"{where}: contrast: alternation {k} is out of range: the template has "
                f"{n} alternation{'' if n == 1 else 's'} (numbered from 1)",
            )
            ok = False
        elif k in values:
            ctx.error(child, f"{where}: contrast: alternation {k} is listed twice")
            ok = False
        else:
            values.add(k)
    return tuple(sorted(values)) if ok else None


def _contrast(e: _Parsed) -> tuple[int, ...] | None:
    ctx, m, groups, where = e.ctx, e.m, e.groups, e.where
    alternations = [t for t in e.tokens if t.kind == "alt"]
    if "contrast" in m:
        contrast = _contrast_numbers(ctx, m["contrast"][1], len(alternations), where)
        if contrast is None:
            return None
    else:
        contrast = tuple(range(1, len(alternations) + 1))
    ok = True
    template_node = m["template"][1]
    carries = set(contrast)  # a set: a template may hold tens of thousands of alternations
    for k, alt in enumerate(alternations, start=1):
        if k in carries and len(alt.options) != len(groups):
            ctx.error(
                template_node,
                f"{where}: alternation {k} {shown(alt.written)[1:-1]} has {len(alt.options)} "
                f"options but groups has {len(groups)} labels {fmt_list(groups)}: a contrast "
                "alternation needs one option per group",
            )
            ok = False
        if all(not o for o in alt.options):
            ctx.error(
                template_node, f"{where}: alternation {k} {alt.written} has only empty options"
            )
            ok = False
    return contrast if ok else None


def _check_slots(e: _Parsed, pairing: str) -> bool:
    ctx, m, tokens, groups, where = e.ctx, e.m, e.tokens, e.groups, e.where
    template_node = e.template_node
    ok = True
    grouped = False
    for name in dict.fromkeys(t.text for t in tokens if t.kind == "slot"):
        lex = ctx.lexicons.get(name)
        if lex is None:
            ctx.error(
                template_node,
                f"{where}: slot {{{name}}} has no lexicon: expected a key "
                f"{shown(name)} under 'lexicons'{ctx.problems.suggest(name, ctx.lexicons)}",
            )
            ok = False
            continue
        if lex.groups is None:
            continue
        grouped = True
        missing = [g for g in groups if g not in lex.groups]
        for g in missing:
            ctx.error(
                template_node,
                f"{where}: slot {{{name}}}: grouped lexicon {shown(name)} (line {lex.line}) "
                f"has no word list for group {shown(g)}; it has {fmt_list(lex.groups)}",
            )
            ok = False
        if not missing and pairing == "zip":
            a, b = (lex.groups[g] for g in groups)
            if len(a) != len(b):
                ctx.error(
                    template_node,
                    f"{where}: slot {{{name}}}: pairing 'zip' needs word lists of equal "
                    f"length, but lexicon {shown(name)} (line {lex.line}) has {len(a)} words for "
                    f"{shown(groups[0])} and {len(b)} for {shown(groups[1])} (use 'pairing: product' for "
                    "every combination)",
                )
                ok = False
    if "pairing" in m and not grouped and ok:
        ctx.error(
            m["pairing"][1],
            f"{where}: pairing has no effect: the template has no grouped-lexicon slot",
        )
        ok = False
    return ok


def _check_contrast_exists(e: _Parsed, contrast: tuple[int, ...]) -> bool:
    ctx, m, tokens, groups, where = e.ctx, e.m, e.tokens, e.groups, e.where
    alternations = [t for t in tokens if t.kind == "alt"]
    if any(alternations[k - 1].options[0] != alternations[k - 1].options[1] for k in contrast):
        return True
    if any(t.kind == "slot" and ctx.lexicons[t.text].groups is not None for t in tokens):
        return True
    ctx.error(
        m["template"][1],
        f"{where}: nothing differs between the groups {fmt_list(groups)}: the template needs "
        "an [a|b] alternation that carries the contrast or a {slot} filled from a grouped "
        "lexicon (a plain-list slot puts the same word on both sides)",
    )
    return False


def _attribute(e: _Parsed) -> str | None:
    """The ``attribute:`` slot name (prior-normalised scoring), checked; None if absent/invalid."""
    ctx, m, tokens, where = e.ctx, e.m, e.tokens, e.where
    if "attribute" not in m:
        return None
    node = m["attribute"][1]
    name = text(ctx, node, f"{where}: attribute")
    if name is None:
        return None
    if ctx.kind == COUNTERFACTUAL:
        ctx.error(
            node,
            f"{where}: attribute: a counterfactual set has no mask, so there is no prior to "
            "normalise by; remove 'attribute'",
        )
        return None
    slots = [t.text for t in tokens if t.kind == "slot"]
    if name not in slots:
        ctx.error(
            node,
            f"{where}: attribute: the template has no slot {{{shown(name)[1:-1]}}}; the "
            f"attribute names one of its slots {fmt_list(dict.fromkeys(slots))}"
            f"{ctx.problems.suggest(name, slots)}",
        )
        return None
    lex = ctx.lexicons.get(name)
    if lex is not None and lex.words is None:
        ctx.error(
            node,
            f"{where}: attribute: lexicon {shown(name)} is grouped; an attribute is the same word on "
            "both sides, so it needs a plain list of words",
        )
        return None
    return name


def _check_attribute_targets(e: _Parsed, chosen: tuple[str, ...]) -> bool:
    """An attribute entry scores one target word per side: exactly two, in group order."""
    ctx, m, groups, where = e.ctx, e.m, e.groups, e.where
    if len(chosen) == 2:
        return True
    at = m["targets"][1] if "targets" in m else m["attribute"][1]
    ctx.error(
        at,
        f"{where}: attribute: prior-normalised scoring needs exactly 2 targets, the word of "
        f"side {shown(groups[0])} then the word of side {shown(groups[1])}; found {len(chosen)}",
    )
    return False
