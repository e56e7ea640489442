"""The shared YAML validation helper and the sentiment training config built on it."""

from __future__ import annotations

import pytest
import yaml

from biasprobe.errors import BiasprobeError, ProbeSetError, Problem
from biasprobe.sentiment.config import ConfigError, apply_overrides, parse_config
from biasprobe.yamlschema import (
    INVALID,
    MAX_PROBLEMS,
    Problems,
    capped_error,
    check_nodes,
    compose,
    int_value,
    plain_value,
    shown,
)

MODEL = "model:\n  kind: gru_encoder\n"


def _problems(text: str) -> list[str]:
    problems = Problems("f.yaml")
    root = compose(text, problems)
    if root is not None and check_nodes(root, problems, "plain data only"):
        plain_value(root, problems, "value")
    return [str(p) for p in problems.items]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 12", 12),
        ("a: -3", -3),
        ("a: +0", 0),
    ],
)
def test_int_value_reads_plain_decimal(text: str, expected: int) -> None:
    problems = Problems("f.yaml")
    root = compose(text, problems)
    assert root is not None
    assert int_value(root.value[0][1], problems, "a") == expected
    assert not problems


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a: 010", "octal"),
        ("a: 0x1F", "hexadecimal"),
        ("a: 1:30", "base-60"),
        ("a: 0b101", "binary"),
        ("a: 1_000", "'_' separators"),
        ("a: !!int x", "found 'x'"),
        ("a: !!int .inf", "found '.inf'"),
        ('a: !!int "[1]"', "found '[1]'"),
        ('a: !!int "*a"', "found '*a'"),
        ("a: " + "9" * 5000, "more than 18 digits"),
    ],
)
def test_int_value_refuses_yaml11_forms_and_tag_tricks(text: str, words: str) -> None:
    problems = Problems("f.yaml")
    root = compose(text, problems)
    assert root is not None
    assert int_value(root.value[0][1], problems, "a") is None
    [problem] = problems.items
    assert problem.line == 1 and words in problem.message
    assert len(problem.message) < 300


def test_deep_nesting_is_refused_before_composing() -> None:
    [message] = _problems("x: " + "[" * 500 + "]" * 500)
    assert message == "f.yaml:1: lists and mappings are nested more than 64 levels deep"


def test_control_characters_and_lone_surrogates_are_refused() -> None:
    assert _problems('a: "\\e]2;TITLE\\a"') == [
        "f.yaml:1: '\\x1b]2;TITLE\\x07' holds the control character U+001B at character 1; "
        "remove it (control characters and lone surrogates are not allowed)"
    ]
    [message] = _problems('a: "1\\ud800"')
    # libyaml refuses the escape itself, at its column (PyYAML read it and was refused later)
    assert message.startswith("f.yaml:1: invalid YAML at column 8: the escape holds a lone")
    assert "lone surrogate U+D800" in message
    [message] = _problems('a: "x\\x85"')  # C1 control (NEL)
    assert "U+0085" in message
    assert _problems('a: "tab\\tand\\nnewline"') == []


def test_alias_loops_and_alias_bombs_are_bounded() -> None:
    assert _problems("a: &x [*x]") == [
        "f.yaml:1: value: a value may not contain itself (alias loop)"
    ]
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    problems = Problems("f.yaml")
    root = compose("\n".join(lines), problems)
    assert root is not None
    value = plain_value(root, problems, "v")  # 10**9 leaves if expanded; shared here
    assert value["a8"][0] is value["a7"]


def test_problem_list_is_capped_and_values_truncated() -> None:
    problems = [Problem("f.yaml", i, "bad") for i in range(1, 1001)]
    err = capped_error(ProbeSetError, problems, "invalid probe set")
    lines = err.message.splitlines()
    assert lines[0] == "invalid probe set (1000 problems):"
    assert len(lines) == MAX_PROBLEMS + 2
    assert lines[-1] == f"  … and {1000 - MAX_PROBLEMS} more problems"
    assert isinstance(err, ProbeSetError) and len(err.problems) == MAX_PROBLEMS
    assert shown("x" * 10_000) == repr("x" * 10_000)[:59] + "…"


def test_plain_value_builds_plain_data() -> None:
    problems = Problems("f.yaml")
    root = compose("a: [1, 2.5, true, null, x]\nb: {c: d}", problems)
    assert root is not None
    assert plain_value(root, problems, "v") == {"a": [1, 2.5, True, None, "x"], "b": {"c": "d"}}
    root = compose("a: !!float x", problems)
    assert root is not None
    assert plain_value(root, problems, "v") is INVALID


# --------------------------------------------------------------------------------------------
# The sentiment training config on the shared helper


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("experiment: !!int x\nname: a\n" + MODEL, "c.yaml:1: experiment: expected a plain"),
        ("experiment: 010\nname: a\n" + MODEL, "octal"),
        ("experiment: 1\nname: a\n" + MODEL + "train:\n  batch_size: 0x10\n", "hexadecimal"),
        ("experiment: 1\nname: a\n" + MODEL + "train:\n  lr: !!float x\n", "c.yaml:6: train.lr"),
        ('experiment: 1\nname: "\\e]0;x\\a"\n' + MODEL, "control character U+001B"),
        ("x: " + "[" * 600 + "]" * 600, "nested more than 64 levels"),
        ("experiment: 1\nname: a\nmodel: {kind: gru_encoder, dropout: &a [*a]}\n", "alias loop"),
        ("experiment: 1\nname: a\nname: b\n" + MODEL, "c.yaml:3: duplicate key 'name'"),
        ("experiment: 1\nname: !!python/name:os.system\n" + MODEL, "YAML tag"),
    ],
)
def test_config_bad_input_is_a_config_error(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml")
    assert needle in info.value.message


def test_config_unknown_key_suggests_and_overrides_never_crash() -> None:
    with pytest.raises(ConfigError, match=r"c\.yaml:6: train: unknown key 'batch_sise' \(did"):
        parse_config("experiment: 1\nname: a\n" + MODEL + "train:\n  batch_sise: 3\n", "c.yaml")
    cfg = parse_config("experiment: 1\nname: a\n" + MODEL, "c.yaml")
    for bad in ("train.batch_size=!!int x", "train.lr=!!float x", "train.seed=!!int .inf"):
        with pytest.raises(BiasprobeError):
            apply_overrides(cfg, [bad])


def test_yaml_module_is_untouched() -> None:
    # The helper builds values with its own loader instances: global PyYAML state is unchanged.
    assert yaml.safe_load("a: 010") == {"a": 8}
