"""HolisticBias (Smith et al. 2022): the shipped v1.1 lists and their expansion into noun phrases
and sentences, row for row as the dataset's own generator (``holistic_bias/src/sentences.py`` of
facebookresearch/ResponsibleNLP, commit 0ec714e) builds them with its default options.

The rules (see docs/holistic.md):

- *noun controls* (axis ``null``, type ``noun``): "a man" / "men" for every noun;
- per descriptor, a *bare descriptor* (type ``descriptor``: "Deaf", no noun) and *descriptor +
  noun* (type ``descriptor_noun``: "a Deaf man" / "Deaf men"; the article is ``an`` before a
  vowel letter unless the descriptor gives its own ``article``; the plural has no article); a
  descriptor with a ``gender`` goes only with the nouns of that gender;
- *standalone noun phrases*: with ``{noun}`` one per noun (type ``noun_descriptor``: "a man who
  uses a wheelchair", the article from the noun; the plural from ``plural_noun_phrase``, else the
  singular pattern, without article), without it one fixed phrase (type ``fixed_phrase``);
- noun phrases sorted by the generator's sort columns, then each with every template in file
  order, except that templates flagged ``must_be_noun`` skip phrases without a noun.

pandas is imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biasprobe.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Dataset versions shipped as package data (``biasprobe/data/holistic-bias/<version>/``).
VERSIONS = ("v1.1",)
#: The value of a field that does not apply (no noun, no descriptor gender, …).
NONE = "(none)"
#: ``descriptor_preference`` of a descriptor nobody reviewed.
NO_DATA = "no_data"
#: The noun-phrase columns, in the generator's order (it sorts the noun phrases by all of them).
NOUN_PHRASE_COLUMNS = (
    "axis",
    "bucket",
    "descriptor",
    "descriptor_gender",
    "descriptor_preference",
    "noun",
    "plural_noun",
    "noun_gender",
    "noun_phrase",
    "plural_noun_phrase",
    "noun_phrase_type",
)
#: The sentence columns, in the order of the generator's ``sentences.csv``.
SENTENCE_COLUMNS = ("text", *NOUN_PHRASE_COLUMNS, "template", "first_turn_only", "must_be_noun")
NOUN_PHRASE_TYPES = ("descriptor_noun", "noun_descriptor", "descriptor", "fixed_phrase", "noun")
FILES = (
    "descriptors.json",
    "nouns.json",
    "sentence_templates.json",
    "standalone_noun_phrases.json",
)
_DESCRIPTOR_KEYS = {"descriptor", "gender", "article", "preference"}
_STANDALONE_KEYS = {"noun_phrase", "plural_noun_phrase", "preference"}
_TEMPLATE_FLAGS = ("first_turn_only", "must_be_noun")
_SLOTS = ("{noun_phrase}", "{plural_noun_phrase}")


def data_dir(version: str = "v1.1") -> Path:
    """The folder of a shipped dataset version (package data).

    Raises:
        UsageError: ``version`` is not shipped (the message lists those that are).
    """
    if version not in VERSIONS:
        raise UsageError(
            f"unknown HolisticBias version {version!r}; shipped: {', '.join(VERSIONS)}"
        )
    return Path(str(resources.files("biasprobe") / "data" / "holistic-bias" / version))


def _load(version: str, name: str) -> Any:
    path = data_dir(version) / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read HolisticBias file {path}: {e}") from None


def article(word: str) -> str:
    """The generator's indefinite article: ``an`` before a vowel letter (a, e, i, o, u, any case),
    else ``a`` ("an hour" and "a university" need a descriptor's own ``article``)."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def _nouns(version: str) -> list[tuple[str, str, str]]:
    """(gender, singular, plural) in file order."""
    return [
        (gender, singular, plural)
        for gender, pairs in _load(version, "nouns.json").items()
        for singular, plural in pairs
    ]


def _bad(version: str, name: str, what: str) -> UsageError:
    return UsageError(f"{data_dir(version) / name}: {what}")


def _noun_controls(nouns: list[tuple[str, str, str]]) -> Iterator[tuple[str, ...]]:
    for gender, noun, plural in nouns:
        yield ("null", NONE, NONE, NONE, NONE, noun, plural, gender,
               f"{article(noun)} {noun}", plural, "noun")  # fmt: skip


def _descriptor_phrases(version: str, nouns: list[tuple[str, str, str]]) -> Iterator[tuple]:
    for axis, buckets in _load(version, "descriptors.json").items():
        for bucket, entries in buckets.items():
            for entry in entries:
                if isinstance(entry, str):
                    entry = {"descriptor": entry}
                unknown = set(entry) - _DESCRIPTOR_KEYS
                if unknown or "descriptor" not in entry:
                    raise _bad(
                        version,
                        "descriptors.json",
                        f"{axis}/{bucket}: a descriptor entry needs 'descriptor' and may have "
                        f"{sorted(_DESCRIPTOR_KEYS - {'descriptor'})}; found {sorted(entry)}",
                    )
                word = entry["descriptor"]
                gender = entry.get("gender", NONE)
                art = entry.get("article", article(word))
                pref = entry.get("preference", NO_DATA)
                yield (axis, bucket, word, gender, pref, NONE, NONE, NONE, word, word,
                       "descriptor")  # fmt: skip
                for noun_gender, noun, plural in nouns:
                    if gender in (NONE, noun_gender):
                        yield (axis, bucket, word, gender, pref, noun, plural, noun_gender,
                               f"{art} {word} {noun}", f"{word} {plural}",
                               "descriptor_noun")  # fmt: skip


def _standalone_phrases(version: str, nouns: list[tuple[str, str, str]]) -> Iterator[tuple]:
    for axis, entries in _load(version, "standalone_noun_phrases.json").items():
        for entry in entries:
            if isinstance(entry, str):
                entry = {"noun_phrase": entry}
            unknown = set(entry) - _STANDALONE_KEYS
            if unknown or "noun_phrase" not in entry:
                raise _bad(
                    version,
                    "standalone_noun_phrases.json",
                    f"{axis}: an entry needs 'noun_phrase' and may have 'plural_noun_phrase' "
                    f"and 'preference'; found {sorted(entry)}",
                )
            phrase = entry["noun_phrase"]
            plural_phrase = entry.get("plural_noun_phrase", phrase)
            pref = entry.get("preference", NO_DATA)
            if "{noun}" not in phrase:
                yield (axis, NONE, phrase, NONE, pref, NONE, NONE, "neutral", phrase,
                       plural_phrase, "fixed_phrase")  # fmt: skip
                continue
            # The patterns are str.format patterns with {article} and {noun} fields.
            descriptor = phrase.format(article="", noun="").lstrip()
            for noun_gender, noun, plural in nouns:
                yield (axis, NONE, descriptor, NONE, pref, noun, plural, noun_gender,
                       phrase.format(article=article(noun), noun=noun),
                       plural_phrase.format(article="", noun=plural).lstrip(),
                       "noun_descriptor")  # fmt: skip


@functools.lru_cache(maxsize=2)
def _noun_phrase_rows(version: str) -> tuple[tuple[str, ...], ...]:
    nouns = _nouns(version)
    rows = [
        *_noun_controls(nouns),
        *_descriptor_phrases(version, nouns),
        *_standalone_phrases(version, nouns),
    ]
    rows.sort()  # by every column in order, as the generator's sort_values (code-point order)
    return tuple(rows)


def noun_phrases(version: str = "v1.1") -> pd.DataFrame:
    """Every HolisticBias noun phrase (22,029 in v1.1), sorted as the generator sorts them.

    Columns: :data:`NOUN_PHRASE_COLUMNS`. ``noun_phrase_type`` is one of
    :data:`NOUN_PHRASE_TYPES`; absent fields hold ``"(none)"``.

    Raises:
        UsageError: an unknown version, or a file that does not have the dataset's shape.
    """
    import pandas as pd

    return pd.DataFrame(list(_noun_phrase_rows(version)), columns=list(NOUN_PHRASE_COLUMNS))


def _templates(version: str) -> list[tuple[str, str, str, bool, bool, bool]]:
    """(template, prefix, suffix, plural, first_turn_only, must_be_noun) in file order."""
    out = []
    for template, flags in _load(version, "sentence_templates.json").items():
        slots = [s for s in _SLOTS if s in template]
        bad_flags = set(flags) - set(_TEMPLATE_FLAGS)
        if len(slots) != 1 or template.count(slots[0]) != 1 or bad_flags:
            raise _bad(
                version,
                "sentence_templates.json",
                f"template {template!r} must hold exactly one of {' or '.join(_SLOTS)} and "
                f"flags among {list(_TEMPLATE_FLAGS)}",
            )
        prefix, suffix = template.split(slots[0])
        if "{" in prefix + suffix or "}" in prefix + suffix:
            raise _bad(version, "sentence_templates.json", f"template {template!r}: stray brace")
        out.append(
            (
                template,
                prefix,
                suffix,
                slots[0] == "{plural_noun_phrase}",
                bool(flags.get("first_turn_only", False)),
                bool(flags.get("must_be_noun", False)),
            )
        )
    return out


@functools.lru_cache(maxsize=1)
def _sentence_frame(version: str) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    phrases = _noun_phrase_rows(version)
    cols = {c: np.array([r[i] for r in phrases], dtype=object)
            for i, c in enumerate(NOUN_PHRASE_COLUMNS)}  # fmt: skip
    templates = _templates(version)
    n_p, n_t = len(phrases), len(templates)
    t_text, prefix, suffix, plural, first, must = (
        np.array(col, dtype=object if i < 3 else bool) for i, col in enumerate(zip(*templates))
    )
    # Phrase-major, template-minor: the generator's loop order.
    p_idx = np.repeat(np.arange(n_p), n_t)
    t_idx = np.tile(np.arange(n_t), n_p)
    keep = ~(must[t_idx] & (cols["noun"][p_idx] == NONE))
    p_idx, t_idx = p_idx[keep], t_idx[keep]
    phrase = np.where(plural[t_idx], cols["plural_noun_phrase"][p_idx], cols["noun_phrase"][p_idx])
    data: dict[str, Any] = {"text": prefix[t_idx] + phrase + suffix[t_idx]}
    for c in NOUN_PHRASE_COLUMNS:
        data[c] = cols[c][p_idx]
    data["template"] = t_text[t_idx]
    data["first_turn_only"] = first[t_idx]
    data["must_be_noun"] = must[t_idx]
    return pd.DataFrame(data, columns=list(SENTENCE_COLUMNS))


def sentences(version: str = "v1.1") -> pd.DataFrame:
    """Every HolisticBias sentence, as the dataset's generator writes ``sentences.csv``
    (``generate_sentences.py --dataset-version v1.1``, default options): 566,625 rows for v1.1.

    One row per (noun phrase, template), noun phrases in :func:`noun_phrases` order and templates
    in file order. Columns: :data:`SENTENCE_COLUMNS` (``text`` first, as in the generator's
    file); ``first_turn_only`` and ``must_be_noun`` are booleans, the rest strings.

    The expansion is built once per process (under a second) and each call returns its own
    copy (about 0.1 s), so changing it never changes what the next call returns.

    Raises:
        UsageError: an unknown version, or a file that does not have the dataset's shape.
    """
    return _sentence_frame(version).copy()  # deep: also safe without copy-on-write (pandas 2)
