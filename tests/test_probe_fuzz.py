"""Property-based test: no probe file makes the loader crash, hang or raise a foreign error.

Two generators, about 2,000 files in all: schema-shaped files assembled from valid and hostile
pieces (tag tricks, YAML 1.1 integers, aliases, control characters, unbalanced templates, huge
expansions) and files of random text and bytes. Loading must either succeed or raise
:class:`~biasprobe.errors.ProbeSetError`, within a second per file.

Then large files, to catch validation that is not linear in the size of the file: long chains
of ``[a|b]`` alternations, big lexicons (many words, many lexicons, repeated words) and large
valid files of thousands of entries. Each must load within a generous time budget that grows
with its size (:data:`BUDGET_S` plus :data:`BUDGET_S_PER_MB`): linear code takes a fraction of
it, while quadratic code (as the alternation checks once were: 11 s for 20,000 alternations on
a quiet machine) goes far over.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biasprobe.errors import BiasprobeError, ProbeSetError
from biasprobe.probes import ProbeSet, load_probe_set

SCALARS = [
    "1",
    "0",
    "-3",
    "010",
    "0x1F",
    "0o7",
    "1:30",
    "1_000",
    ".inf",
    "-.inf",
    ".nan",
    "1e3",
    "2.5",
    "true",
    "no",
    "null",
    "~",
    "''",
    '""',
    "demo",
    "Demo Set",
    "!!int x",
    "!!int .inf",
    '!!int "[1]"',
    '!!int "*a"',
    "!!float x",
    "!!bool maybe",
    "!!str 3",
    "!!python/object/apply:os.getcwd []",
    "!!python/name:os.system",
    "!custom x",
    "!!binary aGVsbG8=",
    "!!timestamp 2001-12-14",
    "!!set {a, b}",
    "*a",
    "&a women",
    "&b [women, men]",
    '"\\e]2;TITLE\\a"',
    '"1\\ud800"',
    '"x\\x85y"',
    '"\\u202e"',
    "9" * 4400,
    "[" * 80 + "]" * 80,
    "{a: 1}",
    "[]",
    "{}",
    "[women, men]",
    "[men, women]",
    "[women, men, x]",
    "<<: {a: 1}",
]
TEMPLATE_PIECES = [
    "The ",
    "[MASK]",
    "[She|He]",
    "[woman|man]",
    "[a|]",
    "[|]",
    "[x|y|z]",
    "{job}",
    "{pair}",
    "{nope}",
    "{ bad slot }",
    "[mask]",
    "<mask>",
    "[",
    "]",
    "{",
    "}",
    " is a ",
    ".",
    ", ",
    "\\e",
    "\\ud800",
    "]" * 30,
]
KEYS = [
    "name",
    "version",
    "description",
    "source",
    "kind",
    "top_k",
    "models",
    "targets",
    "orientation",
    "colour",
]
PAIR_KEYS = ["id", "groups", "minoritized", "targets", "contrast", "pairing", "note", "attribute"]


@st.composite
def templates(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(st.sampled_from(TEMPLATE_PIECES), min_size=0, max_size=8))
    return '"' + "".join(pieces).replace('"', "'") + '"'


@st.composite
def words(draw: st.DrawFn) -> str:
    n = draw(st.integers(0, 5))
    plain = st.sampled_from(["nurse", "doctor", "x", "a b", "[x]", "nurse", "police officer"])
    listed = [draw(plain) for _ in range(n)]
    if draw(st.booleans()):
        listed.append(draw(st.sampled_from(SCALARS)))
    return "[" + ", ".join(listed) + "]"


VALID_TOP = {
    "name": "demo",
    "version": "1",
    "description": "a set",
    "source": "tests",
    "kind": "fill-mask",
    "top_k": "5",
    "models": "[m]",
    "targets": "[nurse, doctor]",
    "orientation": "{minoritized: women, normative: men}",
}
VALID_TEMPLATES = [
    '"[She|He] is a [MASK]."',
    '"The [woman|man] worked as a {job} and a [MASK]."',
    '"{pair} is a [MASK]."',
    '"[She|He] said [MASK] is a {job}."',
]


def _maybe(draw: st.DrawFn, valid: str, hostile: st.SearchStrategy[str]) -> str:
    """Mostly the valid value, sometimes a hostile one (so both paths are exercised)."""
    return draw(hostile) if draw(st.integers(0, 19)) == 19 else valid


@st.composite
def schema_shaped(draw: st.DrawFn) -> str:
    hostile = st.sampled_from(SCALARS)
    lines = []
    for key in KEYS:
        if key in VALID_TOP and draw(st.integers(0, 29)) != 29:
            lines.append(f"{key}: {_maybe(draw, VALID_TOP[key], hostile)}")
        elif key not in VALID_TOP and draw(st.integers(0, 9)) == 9:
            lines.append(f"{key}: {draw(hostile)}")
    if draw(st.integers(0, 19)) != 19:
        lines.append(f"lexicons:\n  job: {_maybe(draw, '[nurse, doctor]', words())}")
        lines.append(f"  pair:\n    women: {_maybe(draw, '[Mary, Ann]', words())}")
        lines.append(f"    men: {_maybe(draw, '[James, Bob]', words())}")
    lines.append("pairs:")
    for i in range(draw(st.integers(1, 4)) % 5):
        lines.append(f"  - id: {_maybe(draw, f'p{i}', st.sampled_from(['a', 'Bad Id', '*a']))}")
        lines.append(
            f"    template: {_maybe(draw, draw(st.sampled_from(VALID_TEMPLATES)), templates())}"
        )
        lines.append(f"    groups: {_maybe(draw, '[women, men]', hostile)}")
        for key in draw(st.lists(st.sampled_from(PAIR_KEYS[2:]), max_size=2, unique=True)):
            if key == "contrast":
                value = draw(st.sampled_from(["[1]", "[2]", "[1, 1]", "[!!int x]", "[0x1]", "3"]))
            elif key == "pairing":
                value = draw(st.sampled_from(["zip", "product", "zipp", "1"]))
            elif key == "attribute":
                value = draw(st.sampled_from(["job", "pair", "nope"]))
            else:
                valid = {"minoritized": "women", "targets": "[nurse]", "note": "a note"}[key]
                value = _maybe(draw, valid, hostile)
            lines.append(f"    {key}: {value}")
    return "\n".join(lines) + "\n"


def _load_bounded(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    try:
        result = load_probe_set(path)
    except ProbeSetError as exc:
        assert isinstance(exc, BiasprobeError)
        assert exc.problems, "a ProbeSetError lists its problems"
        assert len(exc.message) < 20_000
        for p in exc.problems:
            assert p.file == str(path)
    else:
        assert isinstance(result, ProbeSet)


def fuzz(examples: int) -> settings:
    """Bounded, reproducible settings: 1 s deadline per file, no example database."""
    return settings(
        max_examples=examples,
        deadline=1000,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "probe.yaml"


@fuzz(1000)
@given(text=schema_shaped())
def test_schema_shaped_files_load_or_raise_project_errors(fuzz_file: Path, text: str) -> None:
    _load_bounded(fuzz_file, text.encode("utf-8", "surrogatepass"))


@fuzz(600)
@given(
    text=st.text(
        alphabet=st.characters(codec="utf-8") | st.sampled_from(list(":-[]{}|!&*#'\"\n ")),
        max_size=300,
    )
)
def test_random_text_loads_or_raises_project_errors(fuzz_file: Path, text: str) -> None:
    _load_bounded(fuzz_file, text.encode("utf-8"))


@fuzz(400)
@given(data=st.binary(max_size=300))
def test_random_bytes_load_or_raise_project_errors(fuzz_file: Path, data: bytes) -> None:
    _load_bounded(fuzz_file, data)


# --------------------------------------------------------------------------------------------
# Large files: a time budget per file that super-linear validation cannot meet

BUDGET_S = 5.0
"""Seconds every large file may take, whatever its size (start-up, a loaded machine)."""
BUDGET_S_PER_MB = 20.0
"""Seconds more per megabyte of file (linear validation takes well under 2 s per MB)."""
LARGE_HEADER = (
    "name: large\nversion: 1\ndescription: a large file\nsource: tests\n"
    "orientation: {minoritized: women, normative: men}\n"
)
ALTERNATIONS = ["[a|b]", "[she|he]", "[x|]", "[|y]", "[a b|c]", "[Mary|James] ", " [u|v],"]


def _load_within_budget(path: Path, content: str, *, valid: bool) -> None:
    data = content.encode("utf-8")
    start = time.perf_counter()
    _load_bounded(path, data)
    took = time.perf_counter() - start
    budget = BUDGET_S + BUDGET_S_PER_MB * len(data) / 1e6
    assert took < budget, (
        f"a {len(data):,}-byte file took {took:.1f} s to validate, over its budget of "
        f"{budget:.1f} s: validation is not linear in the size of the file"
    )
    if valid:
        assert isinstance(load_probe_set(path), ProbeSet)


def large(examples: int) -> settings:
    """Few, reproducible examples; the time is checked against the budget, not a deadline."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@st.composite
def alternation_chains(draw: st.DrawFn) -> tuple[str, bool]:
    """A template of 20,000 to 40,000 alternations; sometimes 'contrast' names only a few,
    which makes the others expansion dimensions (a file refused for its size)."""
    n = draw(st.integers(20_000, 40_000))
    pattern = draw(st.lists(st.sampled_from(ALTERNATIONS), min_size=1, max_size=6))
    chain = "".join(pattern[i % len(pattern)] for i in range(n))
    few = draw(st.booleans())
    entry = f'  - id: chain\n    template: "The {chain} [MASK]."\n    groups: [women, men]\n'
    if few:
        entry += "    contrast: [1, 2]\n"
    return LARGE_HEADER + "pairs:\n" + entry, not few


@st.composite
def big_lexicons(draw: st.DrawFn) -> tuple[str, bool]:
    """One lexicon of up to 80,000 words, or up to 40,000 one-word lexicons; sometimes with
    every k-th word repeated (a problem each) or a slot naming no lexicon."""
    many_lexicons = draw(st.booleans())
    repeat = draw(st.sampled_from([0, 0, 2, 7]))
    missing = draw(st.booleans())
    if many_lexicons:
        n = draw(st.integers(20_000, 40_000))
        body = "".join(f"  l{i}: [w{i if not repeat or i % repeat else 0}]\n" for i in range(n))
        slot = "l0"
    else:
        n = draw(st.integers(30_000, 80_000))
        words = [f"w{i if not repeat or i % repeat else 0}" for i in range(n)]
        body = "  big: [" + ", ".join(words) + "]\n"
        slot = "big"
    slot = "nope" if missing else slot
    pair = (
        f'  - id: lex\n    template: "[She|He] is a {{{slot}}} [MASK]."\n    groups: [women, men]\n'
    )
    valid = not missing and (many_lexicons or not repeat)
    return LARGE_HEADER + "lexicons:\n" + body + "pairs:\n" + pair, valid


@st.composite
def large_valid_files(draw: st.DrawFn) -> str:
    """1,000 to 4,000 entries over a shared lexicon (up to 20,000 pairs, ~400 KB)."""
    n = draw(st.integers(1_000, 4_000))
    jobs = draw(st.lists(st.sampled_from(["nurse", "cook", "pilot", "clerk", "judge"]),
                         min_size=1, max_size=5, unique=True))  # fmt: skip
    templates = draw(st.lists(st.sampled_from(VALID_TEMPLATES[:2]), min_size=1, max_size=2))
    entries = "".join(
        f'  - id: p{i}\n    template: {templates[i % len(templates)][:-2]} ({i})."\n'
        "    groups: [women, men]\n"
        for i in range(n)
    )
    lexicons = f"lexicons:\n  job: [{', '.join(jobs)}]\n"
    return LARGE_HEADER + lexicons + "pairs:\n" + entries


@large(6)
@given(case=alternation_chains())
def test_long_alternation_chains_validate_in_linear_time(
    fuzz_file: Path, case: tuple[str, bool]
) -> None:
    text, valid = case
    _load_within_budget(fuzz_file, text, valid=valid)


@large(6)
@given(case=big_lexicons())
def test_big_lexicons_validate_in_linear_time(fuzz_file: Path, case: tuple[str, bool]) -> None:
    text, valid = case
    _load_within_budget(fuzz_file, text, valid=valid)


@large(4)
@given(text=large_valid_files())
def test_large_valid_files_validate_in_linear_time(fuzz_file: Path, text: str) -> None:
    _load_within_budget(fuzz_file, text, valid=True)
