"""Two-sided counterfactual data augmentation (CDA) of training texts.

Every training sentence that contains a listed group term is kept **and** added again with the
terms swapped (he↔she, man↔woman, John↔Mary, …), so the classifier sees both versions with the
same label. The word pairs of an axis live in ``biasprobe/data/cda/AXIS.tsv`` (a header says where
the words come from); ``--augment cda`` means ``cda:gender``.

Rules (all tested):

* whole words only, case-insensitive: "shelf", "mankind", "Hermann", "Johnson" are untouched;
* the case of the original is kept: ``he``→``she``, ``He``→``She``, ``HE``→``SHE``;
* possessive ``'s`` stays attached: ``man's``→``woman's``;
* the ambiguous **"her"** becomes ``his`` when the next word is a content word (possessive
  determiner: "her new film" → "his new film") and ``him`` otherwise — before punctuation, at the
  end, or before a function word ("told her that", "gave her the prize"); **"his"** becomes
  ``her`` before a content word and ``hers`` otherwise ("the role is his." → "… hers."); **"hers"**
  becomes ``his`` and **"him"** ``her``. These four gender pronouns are handled in code, whatever
  the axis file lists. The function-word list is :data:`FUNCTION_WORDS`.

Nothing here imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from biasprobe.errors import UsageError

__all__ = ["CDA_AXES", "FUNCTION_WORDS", "Swapper", "augment", "load_swapper", "parse_augment"]

FUNCTION_WORDS = frozenset(
    """a an the this that these those some any no every each all both either neither my your
    his her its our their to of in on at by for with from about into onto over under after before
    since until than as like through during without against among between and or but nor so yet
    if when while because although though that which who whom whose what where why how is was
    are were be been being am do does did have has had will would shall should can could may
    might must not up down out off away back again too very just only also even still here there
    now then i me you he him she it we us they them myself yourself himself herself itself""".split()
)
"""Words after which "her"/"his" are read as object/independent forms, not determiners."""

_SPECIAL = ("her", "his", "hers", "him")
_FIXED = {"hers": "his", "him": "her"}
_WORD = re.compile(r"[A-Za-z]+")
_NEXT_WORD = re.compile(r"\s*([A-Za-z]+)")


def cda_dir() -> Path:
    return Path(str(resources.files("biasprobe") / "data" / "cda"))


def _available_axes() -> list[str]:
    return sorted(p.stem for p in cda_dir().glob("*.tsv"))


CDA_AXES = tuple(_available_axes())


def parse_augment(spec: str | None) -> str | None:
    """``None``/``"none"`` → None; ``"cda"`` → ``"gender"``; ``"cda:AXIS"`` → AXIS (checked).

    Raises:
        UsageError: not of the form ``cda[:AXIS]`` or the axis has no word-pair file.
    """
    if spec is None or spec == "none":
        return None
    kind, _, axis = spec.partition(":")
    if kind != "cda":
        raise UsageError(f"--augment {spec!r}: expected cda or cda:AXIS (e.g. cda:gender)")
    axis = axis or "gender"
    if axis not in _available_axes():
        raise UsageError(
            f"--augment {spec!r}: no word-pair list for axis {axis!r}; available: "
            f"{', '.join(_available_axes())}"
        )
    return axis


@dataclass(frozen=True)
class Swapper:
    """Swaps the group terms of one axis in a text."""

    axis: str
    pairs: dict[str, str]  # lower-case word -> its counterpart (both directions)

    def _replacement(self, word: str, following: str) -> str | None:
        low = word.lower()
        if low in ("her", "his"):
            m = _NEXT_WORD.match(following)
            content_next = m is not None and m.group(1).lower() not in FUNCTION_WORDS
            if low == "her":
                return "his" if content_next else "him"
            return "her" if content_next else "hers"
        if low in _FIXED:
            return _FIXED[low]
        return self.pairs.get(low)

    def swap(self, text: str) -> str:
        """The text with every listed term replaced by its counterpart (case kept)."""
        out, last = [], 0
        for m in _WORD.finditer(text):
            word = m.group(0)
            new = self._replacement(word, text[m.end() :])
            if new is None:
                continue
            out.append(text[last : m.start()])
            out.append(_match_case(word, new))
            last = m.end()
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)

    def contains_term(self, text: str) -> bool:
        return any(w.lower() in self.pairs or w.lower() in _SPECIAL for w in _WORD.findall(text))


def _match_case(original: str, new: str) -> str:
    if original.isupper() and len(original) > 1:
        return new.upper()
    if original[0].isupper():
        return new[0].upper() + new[1:]
    return new


def load_swapper(axis: str = "gender", path: str | Path | None = None) -> Swapper:
    """Read the word pairs of ``axis`` (or of the TSV file ``path``).

    Raises:
        UsageError: the file is missing, malformed, or lists a word twice (``file:line``).
    """
    file = Path(path) if path is not None else cda_dir() / f"{axis}.tsv"
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UsageError(f"{file}: cannot read the CDA word-pair list: {e}") from None
    pairs: dict[str, str] = {}
    header_seen = False
    for lineno, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 2 or not all(_WORD.fullmatch(c.strip()) for c in cols):
            raise UsageError(f"{file}:{lineno}: expected two words separated by a tab")
        a, b = (c.strip().lower() for c in cols)
        if not header_seen:
            header_seen = True
            if (a, b) == ("a", "b"):
                continue
        for w in (a, b):
            if w in pairs or w in _SPECIAL:
                raise UsageError(f"{file}:{lineno}: the word {w!r} is listed twice")
        pairs[a], pairs[b] = b, a
    if not pairs:
        raise UsageError(f"{file}: no word pairs")
    return Swapper(axis, pairs)


def augment(examples: Iterable, swapper: Swapper) -> Iterator:
    """Yield every example, and after each one that contains a term, its swapped twin."""
    for ex in examples:
        yield ex
        swapped = swapper.swap(ex.text)
        if swapped != ex.text:
            yield type(ex)(swapped, ex.label)
