"""Template parsing and expansion (pure functions, no YAML).

A template is text with ``[MASK]``, alternations ``[a|b]`` and slots ``{name}``. An entry expands
into the cartesian product of its *dimensions*: every non-contrast alternation, every distinct
plain-lexicon slot and every distinct grouped-lexicon slot. :func:`expansion_size` counts the
product arithmetically, and :func:`expansion_chars` the characters of the sentences it makes,
so the loader refuses an oversized file before building anything. Every step is linear in the
length of the template (a template may hold tens of thousands of alternations).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from biasprobe.probes.model import MASK, PairSpec, ProbeItem
from biasprobe.yamlschema import shown

SLOT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
SPECIAL_CHARS = "[]{}"
MAX_TEMPLATE_ERRORS = 10
"""Problems listed for one template; the rest are counted."""


@dataclass(frozen=True)
class Lexicon:
    """A ``lexicons:`` entry: a plain word list or one list per group label."""

    name: str
    line: int
    words: tuple[str, ...] | None  # plain list
    groups: dict[str, tuple[str, ...]] | None  # grouped: label -> words


@dataclass(frozen=True)
class Token:
    """A piece of a parsed template."""

    kind: str  # "text" | "mask" | "alt" | "slot"
    text: str = ""  # literal text, or slot name
    options: tuple[str, ...] = ()  # alternation options
    written: str = ""  # the alternation as written, for messages


class ExpansionError(ValueError):
    """An entry expands into a sentence pair that is not a contrast."""


# --------------------------------------------------------------------------------------------
# Parsing


def parse_template(text: str) -> tuple[list[Token], list[str]]:
    """Splits a template into text, ``[MASK]``, ``[a|b]`` and ``{slot}`` tokens.

    Returns the tokens and the problems found (at most MAX_TEMPLATE_ERRORS + 1: the last one then
    says how many more there are).
    """
    tokens: list[Token] = []
    errors: list[str] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "[{":
            if buf:
                tokens.append(Token("text", "".join(buf)))
                buf.clear()
            i = _bracket(text, i, tokens, errors)
        elif c in "]}":
            opener = "[" if c == "]" else "{"
            errors.append(
                f"unbalanced {shown(c)} at column {i + 1}: no opening {shown(opener)} before it"
            )
            i += 1
        else:
            buf.append(c)
            i += 1
    if buf:
        tokens.append(Token("text", "".join(buf)))
    if len(errors) > MAX_TEMPLATE_ERRORS:
        more = len(errors) - MAX_TEMPLATE_ERRORS
        errors = [*errors[:MAX_TEMPLATE_ERRORS], f"… and {more} more problems in this template"]
    return tokens, errors


def _bracket(text: str, i: int, tokens: list[Token], errors: list[str]) -> int:
    """Parses the ``[...]`` or ``{...}`` opening at ``i``; returns where to go on."""
    n = len(text)
    c = text[i]
    close = "]" if c == "[" else "}"
    j = i + 1
    while j < n and text[j] not in "[]{}":
        j += 1
    if j >= n or text[j] != close:
        if j < n and text[j] in "[{":
            errors.append(
                f"{shown(c)} at column {i + 1} is not closed before {text[j]!r} at column {j + 1} "
                "(brackets and braces do not nest)"
            )
            return j
        errors.append(f"unbalanced {shown(c)} at column {i + 1}: expected a closing {shown(close)}")
        return n
    inner = text[i + 1 : j]
    if c == "{":
        name = inner.strip()
        if SLOT_RE.fullmatch(name):
            tokens.append(Token("slot", name))
        else:
            errors.append(
                f"{shown('{' + inner + '}')} at column {i + 1} is not a valid slot: expected a "
                "lexicon name (letters, digits, '-' or '_')"
            )
    elif inner == "MASK":
        tokens.append(Token("mask"))
    elif "|" in inner:
        options = tuple(" ".join(o.split()) for o in inner.split("|"))
        tokens.append(Token("alt", options=options, written=f"[{inner}]"))
    elif inner.strip().lower() in ("mask", "<mask>"):
        errors.append(f"write the mask as {MASK} (upper case), found '[{inner}]'")
    else:
        errors.append(
            f"{shown('[' + inner + ']')} at column {i + 1} is neither {MASK} nor an alternation "
            "[a|b] with '|' between the options"
        )
    return j + 1


# --------------------------------------------------------------------------------------------
# Expansion


@dataclass(frozen=True)
class _Dimension:
    name: str  # fill name: "[n]" or the slot name
    size: int
    a: tuple[str, ...]  # side A words (alternation options, or lexicon words)
    b: tuple[str, ...] | None  # side B words for a grouped slot, else None
    product: bool  # grouped slot paired by product (else zip)

    def choices(self) -> Iterator[tuple[str, str]]:
        if self.b is None:
            return ((w, w) for w in self.a)
        if self.product:
            return itertools.product(self.a, self.b)
        return zip(self.a, self.b, strict=True)


def _dimensions(
    spec: PairSpec, tokens: list[Token], lexicons: dict[str, Lexicon]
) -> tuple[list[_Dimension], dict[int, int]]:
    """The entry's expansion dimensions and, per token index, the dimension it takes words from."""
    dims: list[_Dimension] = []
    dim_of: dict[int, int] = {}
    slot_dim: dict[str, int] = {}
    carries = set(spec.contrast)  # a set: a template may hold tens of thousands of alternations
    alt_no = 0
    for t_index, tok in enumerate(tokens):
        if tok.kind == "alt":
            alt_no += 1
            if alt_no not in carries:
                dim_of[t_index] = len(dims)
                dims.append(_Dimension(f"[{alt_no}]", len(tok.options), tok.options, None, False))
        elif tok.kind == "slot" and tok.text in slot_dim:
            dim_of[t_index] = slot_dim[tok.text]
        elif tok.kind == "slot":
            lex = lexicons[tok.text]
            if lex.groups is not None:
                a, b = lex.groups[spec.groups[0]], lex.groups[spec.groups[1]]
                product = spec.pairing == "product"
                size = len(a) * len(b) if product else len(a)
                dim = _Dimension(tok.text, size, a, b, product)
            else:
                assert lex.words is not None
                dim = _Dimension(tok.text, len(lex.words), lex.words, None, False)
            slot_dim[tok.text] = dim_of[t_index] = len(dims)
            dims.append(dim)
    return dims, dim_of


def expansion_size(spec: PairSpec, tokens: list[Token], lexicons: dict[str, Lexicon]) -> int:
    """How many items the entry expands into, computed without building any of them."""
    dims, _ = _dimensions(spec, tokens, lexicons)
    return math.prod(d.size for d in dims)


def expansion_chars(spec: PairSpec, tokens: list[Token], lexicons: dict[str, Lexicon]) -> int:
    """How many characters the sentences of the entry's items hold, computed without building
    any: both sides of every item, and the prior sentences of an attribute entry.

    Each piece of the template is counted once per item it appears in: literal text and the
    mask in every item, a contrast alternation's two options in every item, and a dimension's
    words each in the items that choose them (``items / size`` of them). Whitespace that
    joining later collapses is counted, so this is an upper bound of what is built (exact
    when the template's text holds no doubled spaces).
    """
    dims, dim_of = _dimensions(spec, tokens, lexicons)
    items = math.prod(d.size for d in dims)
    if items == 0:
        return 0
    total = _sentence_chars(spec, tokens, dims, dim_of, items, prior=False)
    if spec.attribute is not None:
        total += _sentence_chars(spec, tokens, dims, dim_of, items, prior=True)
    return total


def _sentence_chars(
    spec: PairSpec,
    tokens: list[Token],
    dims: list[_Dimension],
    dim_of: dict[int, int],
    items: int,
    prior: bool,
) -> int:
    """:func:`expansion_chars` of the sentences (``prior``: of the prior sentences)."""
    carries = set(spec.contrast)
    per_dim: dict[int, int] = {}
    total = 0
    alt_no = 0
    for t_index, tok in enumerate(tokens):
        if tok.kind == "text":
            total += 2 * len(tok.text) * items
        elif tok.kind == "mask":
            total += 2 * len(MASK) * items
        elif tok.kind == "alt" and (alt_no := alt_no + 1) in carries:
            total += (len(tok.options[0]) + len(tok.options[1])) * items
        else:
            d = dim_of[t_index]
            if d not in per_dim:
                masked = prior and tok.kind == "slot" and tok.text == spec.attribute
                per_dim[d] = _choice_chars(dims[d], masked)
            total += per_dim[d] * (items // dims[d].size)
    return total


def _choice_chars(dim: _Dimension, masked: bool) -> int:
    """Characters of both sides' words over all of a dimension's choices (``masked``: each
    word written as its prior sentence's masks, one ``[MASK]`` per whitespace-separated word)."""

    def length(word: str) -> int:
        return len(" ".join([MASK] * len(word.split()))) if masked else len(word)

    a = sum(length(w) for w in dim.a)
    if dim.b is None:
        return 2 * a
    b = sum(length(w) for w in dim.b)
    return len(dim.b) * a + len(dim.a) * b if dim.product else a + b


def join(pieces: list[tuple[str, bool]]) -> str:
    """Joins literal text and filled values; an empty fill leaves no doubled or stray space.

    Whitespace runs are collapsed to one space at the end, so the only thing an empty fill
    changes is punctuation after it: ``"a [|x] , b"`` gives ``"a, b"``, not ``"a , b"``.
    Linear in the length of the result (a template may hold tens of thousands of fills).
    """
    parts: list[str] = []
    has_text = False  # whether the parts so far hold anything but whitespace
    gap = False
    for piece, is_fill in pieces:
        if is_fill and not piece:
            gap = True
            continue
        if gap and has_text and parts and parts[-1][-1:].isspace() and piece[:1] in _PUNCT:
            while parts:  # strip the whitespace the empty fill left before the punctuation
                last = parts[-1].rstrip()
                if last:
                    parts[-1] = last
                    break
                parts.pop()
        gap = False
        parts.append(piece)
        has_text = has_text or not piece.isspace()
    return " ".join("".join(parts).split())


_PUNCT = frozenset(",.;:!?")


def slug(word: str) -> str:
    """``word`` lower-cased with runs of other characters turned into ``-``."""
    text = re.sub(r"[^\w]+", "-", word.lower()).strip("-_")
    return text or "empty"


def _side(
    tokens: list[Token],
    spec: PairSpec,
    combo: tuple[tuple[str, str], ...],
    dim_of: dict[int, int],
    side: int,
    carries: frozenset[int],
    prior: bool = False,
) -> str:
    """One side's sentence; ``prior`` replaces each word of the attribute slot by a mask.
    ``carries``: the entry's contrast alternations, as a set."""
    pieces: list[tuple[str, bool]] = []
    alt_no = 0
    for t_index, tok in enumerate(tokens):
        if tok.kind == "text":
            pieces.append((tok.text, False))
        elif tok.kind == "mask":
            pieces.append((MASK, False))
        elif tok.kind == "alt":
            alt_no += 1
            if alt_no in carries:
                pieces.append((tok.options[side], True))
            else:
                pieces.append((combo[dim_of[t_index]][side], True))
        else:
            word = combo[dim_of[t_index]][side]
            if prior and tok.text == spec.attribute:
                word = " ".join([MASK] * len(word.split()))
            pieces.append((word, True))
    return join(pieces)


def expand_pair(
    spec: PairSpec, tokens: list[Token], lexicons: dict[str, Lexicon]
) -> Iterator[ProbeItem]:
    """Expands one validated pair entry into its items (check :func:`expansion_size` first).

    Items are the cartesian product of the dimensions, in template order. A pair with no
    dimension gives one item whose ``pair_id`` is the entry's id; otherwise ids are
    ``<id>/<choice>/<choice>...`` where a choice is the chosen word (``wordA-wordB`` for a
    grouped slot), lower-cased with other characters turned into ``-``.

    Raises:
        ExpansionError: an expansion gives the same sentence on both sides.
    """
    dims, dim_of = _dimensions(spec, tokens, lexicons)
    minoritized = spec.groups.index(spec.minoritized)
    attr_dim = next((d for d, dim in enumerate(dims) if dim.name == spec.attribute), None)
    carries = frozenset(spec.contrast)
    # one (slot, "wordA|wordB") tuple per choice, shared by every item that makes it
    fill_of: dict[tuple[int, str, str], tuple[str, str]] = {}
    for combo in itertools.product(*(d.choices() for d in dims)):
        sentences = (
            _side(tokens, spec, combo, dim_of, 0, carries),
            _side(tokens, spec, combo, dim_of, 1, carries),
        )
        suffix = [
            f"{slug(a)}-{slug(b)}" if dim.b is not None else slug(a)
            for dim, (a, b) in zip(dims, combo, strict=True)
        ]
        pair_id = "/".join([spec.id, *suffix])
        if sentences[0] == sentences[1] and spec.attribute is None:
            raise ExpansionError(
                f"expansion {shown(pair_id)} gives the same sentence on both sides: "
                f"{shown(sentences[0])}"
            )
        attribute = prior = prior_index = None
        if attr_dim is not None:
            attribute = combo[attr_dim][0]
            prior = (
                _side(tokens, spec, combo, dim_of, 0, carries, prior=True),
                _side(tokens, spec, combo, dim_of, 1, carries, prior=True),
            )
            prior_index = _target_mask_index(tokens, spec, combo, dim_of)
        yield ProbeItem(
            pair_id=pair_id,
            template_id=spec.id,
            groups=spec.groups,
            sentences=sentences,
            minoritized=minoritized,
            targets=spec.targets,
            fills=tuple(
                fill_of.setdefault((n, a, b), (d.name, f"{a}|{b}"))
                for n, (d, (a, b)) in enumerate(zip(dims, combo, strict=True))
            ),
            source=spec.source,
            attribute=attribute,
            prior_sentences=prior,
            prior_mask_index=prior_index,
        )


def _target_mask_index(
    tokens: list[Token], spec: PairSpec, combo: tuple[tuple[str, str], ...], dim_of: dict[int, int]
) -> int:
    """0-based index of the target's mask among the masks of a prior sentence."""
    before = 0
    for t_index, tok in enumerate(tokens):
        if tok.kind == "mask":
            return before
        if tok.kind == "slot" and tok.text == spec.attribute:
            before += len(combo[dim_of[t_index]][0].split())
    raise AssertionError("a fill-mask template has a mask")
