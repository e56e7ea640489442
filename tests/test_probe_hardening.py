"""Regression tests: probe files that crashed, hung or misled the loader (issue 8)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_probes import HEADER  # the same demo header as the main probe tests

from biasprobe.errors import ProbeSetError
from biasprobe.probes import MAX_ITEMS_PER_FILE, MAX_ITEMS_PER_PAIR, load_probe_set
from biasprobe.yamlschema import MAX_PROBLEMS

PAIR = """\
pairs:
  - id: a
    template: "[She|He] is a [MASK]."
    groups: [women, men]
"""


def _messages(tmp_path: Path, text: str, name: str = "p.yaml") -> list[str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProbeSetError) as info:
        load_probe_set(path)
    for problem in info.value.problems:
        assert problem.file == str(path)
    return [str(p) for p in info.value.problems]


def _header(**fields: str) -> str:
    lines = HEADER.splitlines()
    for key, value in fields.items():
        lines = [f"{key}: {value}" if line.startswith(f"{key}:") else line for line in lines]
        if not any(line.startswith(f"{key}:") for line in lines):
            lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_header(version="!!int x") + PAIR, "p.yaml:2: version: expected a plain decimal integer"),
        (_header(top_k="!!int .inf") + PAIR, "p.yaml:8: top_k: expected a plain decimal integer"),
        (_header(top_k="!!int -.inf") + PAIR, "p.yaml:8: top_k: expected a plain decimal"),
        (
            HEADER + PAIR + '    contrast: [!!int "[1]"]\n',
            "p.yaml:12: pair 'a': contrast: expected a plain decimal integer, found '[1]'",
        ),
        (
            HEADER + PAIR + '    contrast: [!!int "*a"]\n',
            "p.yaml:12: pair 'a': contrast: expected a plain decimal integer, found '*a'",
        ),
        (
            _header(top_k="!!python/object/apply:int ['3']") + PAIR,
            "p.yaml:8: YAML tag '!!python/object/apply:int' is not allowed",
        ),
        (_header(version="9" * 5000) + PAIR, "p.yaml:2: version: the integer '999"),
        (_header(top_k="9" * 5000) + PAIR, "more than 18 digits"),
        (_header(version="010") + PAIR, "found '010' (YAML 1.1 reads it as an octal number"),
        (_header(version="1:30") + PAIR, "found '1:30' (YAML 1.1 reads it as a base-60"),
        (_header(top_k="0x1F") + PAIR, "found '0x1F' (YAML 1.1 reads it as a hexadecimal"),
        (HEADER + PAIR + "    contrast: [0o1]\n", "pair 'a': contrast: expected an alternation"),
        (HEADER + PAIR + "    contrast: [01]\n", "octal"),
    ],
)
def test_integer_fields_never_crash(tmp_path: Path, text: str, expected: str) -> None:
    messages = _messages(tmp_path, text)
    assert any(expected in m for m in messages), messages
    assert all(len(m) < 400 for m in messages)


def test_deep_nesting_is_a_problem_not_a_recursion_error(tmp_path: Path) -> None:
    messages = _messages(tmp_path, "x: " + "[" * 500 + "]" * 500 + "\n")
    assert messages == [
        f"{tmp_path / 'p.yaml'}:1: lists and mappings are nested more than 64 levels deep"
    ]


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        (_header(version='"1\\ud800"') + PAIR, 2, "lone surrogate U+D800"),
        (_header(description='"\\e]2;TITLE\\a"') + PAIR, 3, "control character U+001B"),
        (HEADER + PAIR.replace("is a", "is \\a a").replace("'", '"'), 10, "U+0007"),
        (HEADER + 'lexicons:\n  x: ["ok", "b\\x9bad"]\n' + PAIR, 9, "U+009B"),
        (HEADER + PAIR.replace("[women, men]", '["wo\\x00men", men]'), 11, "U+0000"),
    ],
)
def test_control_characters_are_rejected_at_load(
    tmp_path: Path, text: str, line: int, what: str
) -> None:
    messages = _messages(tmp_path, text)
    assert any(f"p.yaml:{line}:" in m and what in m for m in messages), messages
    for m in messages:  # the message itself never carries the raw character
        assert "\x1b" not in m and "\x07" not in m and "\ud800" not in m and "\x9b" not in m


def test_product_size_is_computed_before_building(tmp_path: Path) -> None:
    women = ", ".join(f"w{i}" for i in range(3000))
    men = ", ".join(f"m{i}" for i in range(3000))
    text = (
        HEADER
        + f"lexicons:\n  g:\n    women: [{women}]\n    men: [{men}]\n"
        + 'pairs:\n  - id: a\n    template: "{g} is a [MASK]."\n    groups: [women, men]\n'
        + "    pairing: product\n"
    )
    start = time.perf_counter()
    messages = _messages(tmp_path, text)
    assert time.perf_counter() - start < 30  # was minutes and gigabytes; bound is generous
    assert messages == [
        f"{tmp_path / 'p.yaml'}:13: pair 'a': expands into 9000000 pairs, more than the limit "
        f"of {MAX_ITEMS_PER_PAIR} per entry"
    ]


def test_the_whole_file_is_capped_not_each_entry(tmp_path: Path) -> None:
    xs = ", ".join(f"x{i}" for i in range(300))
    ys = ", ".join(f"y{i}" for i in range(300))
    entries = "".join(
        f'  - id: a{j}\n    template: "[She|He] {{x}} {{y}} [MASK]."\n    groups: [women, men]\n'
        for j in range(60)
    )
    text = HEADER + f"lexicons:\n  x: [{xs}]\n  y: [{ys}]\npairs:\n" + entries
    messages = _messages(tmp_path, text)
    assert messages == [
        f"{tmp_path / 'p.yaml'}:11: pairs: the file expands into 5400000 pairs, more than the "
        f"limit of {MAX_ITEMS_PER_FILE} per file"
    ]


def test_problem_list_is_capped_and_values_are_truncated(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        HEADER + PAIR.replace("[She|He] is a [MASK].", "]" * 100_000 + "[She|He] [MASK]"),
        encoding="utf-8",
    )
    with pytest.raises(ProbeSetError) as info:
        load_probe_set(path)
    lines = info.value.message.splitlines()
    assert lines[0] == "invalid probe set (11 problems):"
    assert lines[-1].endswith("template: … and 99990 more problems in this template")
    messages = _messages(
        tmp_path, HEADER + PAIR.replace("[women, men]", "[women, " + "m" * 900_000 + "]")
    )
    assert messages and all(len(m) < 400 for m in messages)
    messages = _messages(tmp_path, _header(name="Q" * 900_000) + PAIR)
    assert messages == [
        f"{path}:1: name: expected lower-case letters, digits, '-' or '_', found "
        + repr("Q" * 900_000)[:59]
        + "…"
    ]


def test_many_problems_are_counted_not_listed(tmp_path: Path) -> None:
    entries = "".join(
        f"  - id: a{j}\n    template: x\n    groups: [women, men]\n" for j in range(80)
    )
    path = tmp_path / "p.yaml"
    path.write_text(HEADER + "pairs:\n" + entries, encoding="utf-8")
    with pytest.raises(ProbeSetError) as info:
        load_probe_set(path)
    lines = info.value.message.splitlines()
    assert lines[0] == "invalid probe set (80 problems):"
    assert len(lines) == 1 + MAX_PROBLEMS + 1
    assert lines[-1] == "  … and 30 more problems"


def test_one_bad_file_does_not_stop_the_next(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("x: " + "[" * 600 + "]" * 600 + "\n", encoding="utf-8")
    good = tmp_path / "good.yaml"
    good.write_text(HEADER + PAIR, encoding="utf-8")
    results = []
    for path in (bad, good, bad):
        try:
            results.append(len(load_probe_set(path).items))
        except ProbeSetError:
            results.append("error")
    assert results == ["error", 1, "error"]


def test_endless_or_huge_input_is_cut_off(tmp_path: Path) -> None:
    # /dev/zero never ends: the loader reads regular files only, so it reads nothing of it.
    with pytest.raises(ProbeSetError) as info:
        load_probe_set("/dev/zero")
    assert info.value.problems[0].message.startswith("is not a regular file (a device")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 1_000_001)
    with pytest.raises(ProbeSetError) as info:
        load_probe_set(big)
    assert info.value.problems[0].message == (
        "the file is larger than 1 MB, the limit for a probe file"
    )
