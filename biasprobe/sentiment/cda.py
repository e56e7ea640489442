"""Two-sided counterfactual data augmentation (CDA) of training texts.

Every training sentence that contains a listed group term is kept **and** added again with the
terms swapped (he↔she, man↔woman, John↔Mary, …), so the classifier sees both versions with the
same label. The word lists of an axis live in ``biasprobe/data/cda/AXIS.tsv`` (a header says
where the words come from); ``--augment cda`` means ``cda:gender``. A list has one column per
group: two for gender, three for race (Black, White, Asian) and religion (Jewish, Christian,
Muslim). With k groups a text gets k − 1 twins, one per other group: twin ``s`` moves each
listed word of group ``g`` to the word of group ``(g + s) mod k`` on its line
(:meth:`Swapper.counterfactuals`).

Rules (all tested):

* whole words only, case-insensitive: "shelf", "mankind", "Hermann", "Johnson" are untouched;
* the case of the original is kept: ``he``→``she``, ``He``→``She``, ``HE``→``SHE``;
* possessive ``'s`` stays attached: ``man's``→``woman's``;
* a hyphenated compound is looked up whole, else word by word: ``Asian-American`` →
  ``African-American``, ``grandfather-clock`` → ``grandmother-clock``;
* an article "a"/"an" right before a swapped word follows the new word ("an imam" → "a rabbi");
* the ambiguous **"her"** becomes ``his`` when the next word is a content word (possessive
  determiner: "her new film" → "his new film") and ``him`` otherwise — before punctuation, at the
  end, or before a function word ("told her that", "gave her the prize"); **"his"** becomes
  ``her`` before a content word and ``hers`` otherwise ("the role is his." → "… hers."); **"hers"**
  becomes ``his`` and **"him"** ``her``. These four gender pronouns are handled in code, whatever
  the gender file lists, and on the gender axis only. The function-word list is
  :data:`FUNCTION_WORDS`.

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
#: A token: a word, or a hyphenated compound ("Asian-American"), looked up whole first.
_TOKEN = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")
_NEXT_WORD = re.compile(r"\s*([A-Za-z]+)")
_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


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
    """Swaps the group terms of one axis in a text.

    A list has ``k`` groups (columns): two for gender (he/she), three for the shipped race and
    religion lists. Each row holds one word per group; ``index`` maps a word to the row it is
    read from and its group. The counterfactual number ``shift`` (1 … k−1) moves every listed
    word of group ``g`` to the word of group ``(g + shift) mod k`` in its row: for two groups
    ``shift`` 1 is the plain pair swap.
    """

    axis: str
    rows: tuple[tuple[str, ...], ...]
    index: dict[str, tuple[int, int]]  # lower-case word -> (row, group)
    pronouns: bool = True  # the he/she pronoun rules for her/his/hers/him (gender lists)

    @property
    def k(self) -> int:
        """The number of groups."""
        return len(self.rows[0])

    @property
    def pairs(self) -> dict[str, str]:
        """Each word → its replacement in the first counterfactual (for two groups: the pair)."""
        return {w: self.rows[r][(g + 1) % self.k] for w, (r, g) in self.index.items()}

    def _replacement(self, word: str, following: str, shift: int) -> str | None:
        low = word.lower()
        if self.pronouns and low in _SPECIAL:
            if low in ("her", "his"):
                m = _NEXT_WORD.match(following)
                content_next = m is not None and m.group(1).lower() not in FUNCTION_WORDS
                if low == "her":
                    return "his" if content_next else "him"
                return "her" if content_next else "hers"
            return _FIXED[low]
        entry = self.index.get(low)
        if entry is None:
            return None
        row, group = entry
        return self.rows[row][(group + shift) % self.k]

    def swap(self, text: str, shift: int = 1) -> str:
        """The text with every listed term replaced by the word of the group ``shift`` places
        on (case kept). A hyphenated compound is looked up whole ("asian-american"), else word
        by word ("grandfather-clock")."""
        if not 1 <= shift < self.k:
            raise ValueError(f"shift must be in 1..{self.k - 1}, not {shift}")
        out, last = [], 0
        for tok in _TOKEN.finditer(text):
            whole = tok.group(0)
            rep = self._replacement(whole, text[tok.end() :], shift)
            if rep is not None or "-" not in whole:
                spans = [(tok, rep)]
            else:  # an unlisted compound: word by word
                spans = [
                    (m, self._replacement(m.group(0), text[m.end() :], shift))
                    for m in _WORD.finditer(text, tok.start(), tok.end())
                ]
            for m, new in spans:
                if new is None:
                    continue
                before = text[last : m.start()]
                if _vowel_sound(m.group(0)) != _vowel_sound(new):
                    before = _ARTICLE.sub(lambda a, w=new: _article(a, w), before)
                out.append(before)
                out.append(_match_case(m.group(0), new))
                last = m.end()
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)

    def counterfactuals(self, text: str) -> list[str]:
        """The ``k − 1`` counterfactual twins of ``text`` (one per other group: shift 1 … k−1),
        or ``[]`` when it holds no listed term."""
        twins = [self.swap(text, shift) for shift in range(1, self.k)]
        return [] if all(t == text for t in twins) else twins

    def contains_term(self, text: str) -> bool:
        for tok in _TOKEN.findall(text):
            words = [tok, *tok.split("-")] if "-" in tok else [tok]
            for w in words:
                low = w.lower()
                if low in self.index or (self.pronouns and low in _SPECIAL):
                    return True
        return False


_ARTICLE = re.compile(r"\b([Aa][Nn]?)(\s+)$")


def _vowel_sound(word: str) -> bool:
    """Does the word take "an"? By its first letter, except eu-/uni-/use- ("a European")."""
    w = word.lower()
    return w[:1] in "aeiou" and not w.startswith(("eu", "uni", "use"))


def _article(m: re.Match, new: str) -> str:
    """The article "a"/"an" before ``new``, in the case of the original article."""
    art = "an" if _vowel_sound(new) else "a"
    old = m.group(1)
    if old.isupper() and len(old) > 1 or old == "A" and art == "a":
        art = art.upper() if old.isupper() and len(old) > 1 else "A"
    elif old[0].isupper():
        art = art.capitalize()
    return art + m.group(2)


def _match_case(original: str, new: str) -> str:
    if original.isupper() and len(original) > 1:
        return new.upper()
    o_parts, n_parts = original.split("-"), new.split("-")
    if len(o_parts) > 1 and len(o_parts) == len(n_parts):
        return "-".join(_match_case(o, n) for o, n in zip(o_parts, n_parts, strict=True))
    if original[0].isupper():
        return new[0].upper() + new[1:]
    return new


def load_swapper(axis: str = "gender", path: str | Path | None = None) -> Swapper:
    """Read the word list of ``axis`` (or of the TSV file ``path``).

    Each line holds one word per group, tab-separated (two groups for gender, three for race
    and religion); an optional header ``a<TAB>b[<TAB>c…]`` is skipped. A word may be
    repeated in the **same** column of a later line: there it is only a replacement, and it is
    read as the word of the line where it first appears. The pronoun rules of ``her``/``his``/
    ``hers``/``him`` apply to the gender axis only (its lists must not list those four).

    Raises:
        UsageError: the file is missing, malformed (a line with another number of words, a
            word in two columns or twice on a line, a pronoun in a gender list; ``file:line``).
    """
    file = Path(path) if path is not None else cda_dir() / f"{axis}.tsv"
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UsageError(f"{file}: cannot read the CDA word-pair list: {e}") from None
    pronouns = axis == "gender"
    rows: list[tuple[str, ...]] = []
    index: dict[str, tuple[int, int]] = {}
    k = None
    header_seen = False
    for lineno, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = [c.strip() for c in line.split("\t")]
        n = k or max(2, len(cols))
        if len(cols) != n or not all(_TOKEN.fullmatch(c) for c in cols):
            want = _NUMBERS.get(n, str(n))
            raise UsageError(
                f"{file}:{lineno}: expected {want} words separated by "
                + ("a tab" if n == 2 else "tabs")
            )
        k = n
        words = tuple(c.lower() for c in cols)
        if not header_seen:
            header_seen = True
            if words == tuple("abcdefghij"[:k]):
                continue
        if len(set(words)) != k:
            raise UsageError(f"{file}:{lineno}: a word is listed twice on the line")
        for g, w in enumerate(words):
            if pronouns and w in _SPECIAL:
                raise UsageError(
                    f"{file}:{lineno}: the word {w!r} is listed twice (her/his/hers/him are "
                    "handled by the gender pronoun rules)"
                )
            if w in index and index[w][1] != g:
                raise UsageError(f"{file}:{lineno}: the word {w!r} is listed twice")
        for g, w in enumerate(words):
            index.setdefault(w, (len(rows), g))
        rows.append(words)
    if not rows:
        raise UsageError(f"{file}: no word pairs")
    return Swapper(axis, tuple(rows), index, pronouns and k == 2)


def augment(examples: Iterable, swapper: Swapper) -> Iterator:
    """Yield every example, and after each one that contains a term, its counterfactual twins
    (one for two groups; one per other group for more)."""
    for ex in examples:
        yield ex
        for swapped in swapper.counterfactuals(ex.text):
            yield type(ex)(swapped, ex.label)
