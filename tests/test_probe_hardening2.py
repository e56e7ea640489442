"""Regression tests: small hostile probe files that hung or blew up the loader (issue 17).

Alternation chains (quadratic checks), files that expand to gigabytes of sentences, FIFOs given
as probe files, raw control characters and deep flow nesting in the YAML, and terminal escapes
of format characters. The time budgets of large files live in ``test_probe_fuzz.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_probes import HEADER  # the same demo header as the main probe tests

from biasprobe.errors import ProbeSetError
from biasprobe.probes import load_probe_set, probes_from_yaml
from biasprobe.probes import schema as schema_module

REPO = Path(__file__).resolve().parent.parent
NO_ORIENTATION = HEADER.split("orientation:")[0]


def _problems(path: Path) -> list[str]:
    with pytest.raises(ProbeSetError) as info:
        load_probe_set(path)
    return [str(p) for p in info.value.problems]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``biasprobe ARGS`` in a fresh interpreter, as a user runs it (a hang fails the test)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "biasprobe", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )


# --------------------------------------------------------------------------------------------
# 4a: long alternation chains


def test_long_alternation_chains_expand_correctly(tmp_path: Path) -> None:
    # every alternation carries the contrast (the default): one pair, side A all 'a'
    path = tmp_path / "alt.yaml"
    n = 20_000
    path.write_text(
        HEADER + f'pairs:\n  - id: a\n    template: "{"[a|b] " * n}[MASK]."\n'
        "    groups: [women, men]\n",
        encoding="utf-8",
    )
    (item,) = load_probe_set(path).items
    assert item.sentences == (" ".join(["a"] * n) + " [MASK].", " ".join(["b"] * n) + " [MASK].")
    # with 'contrast' naming a few of them, the others are expansion dimensions
    path.write_text(
        HEADER + 'pairs:\n  - id: a\n    template: "[x|y] [She|He] [c|d] [MASK]."\n'
        "    groups: [women, men]\n    contrast: [2]\n",
        encoding="utf-8",
    )
    items = load_probe_set(path).items
    assert [it.sentences for it in items] == [
        (f"{u} She {v} [MASK].", f"{u} He {v} [MASK].") for u in "xy" for v in "cd"
    ]


def _old_join(pieces: list[tuple[str, bool]]) -> str:
    """The joining of the previous release, quadratic in empty fills: the reference."""
    out = ""
    gap = False
    for piece, is_fill in pieces:
        if is_fill and not piece:
            gap = True
            continue
        if gap:
            if not out.strip():
                piece = piece.lstrip()
            elif out[-1:].isspace() and (piece[:1].isspace() or piece[:1] in ",.;:!?"):
                out = out.rstrip()
            gap = False
        out += piece
    return " ".join(out.split())


@settings(max_examples=400, derandomize=True, database=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["", " ", "  ", "a", " b ", ", c", ".", "?x", " ,", "\t"]),
            st.booleans(),
        ),
        max_size=12,
    )
)
def test_linear_join_gives_the_same_sentences(pieces: list[tuple[str, bool]]) -> None:
    from biasprobe.probes.templates import join

    pieces = [(p, fill) for p, fill in pieces if p or fill]  # literal text is never empty
    assert join(pieces) == _old_join(pieces)


# --------------------------------------------------------------------------------------------
# 4b: the expanded text is bounded before anything is built


def _bomb() -> str:
    """112 KB: a 100 KB word used 200 times, times a 2,000-word lexicon (~80 GB of sentences)."""
    many = ", ".join(f"m{i}" for i in range(2000))
    return (
        HEADER
        + f"lexicons:\n  big: [{'x' * 100_000}]\n  many: [{many}]\n"
        + "pairs:\n  - id: a\n"
        + f'    template: "[She|He] {{many}} {"{big} " * 200}[MASK]."\n'
        + "    groups: [women, men]\n"
    )


def test_an_expansion_into_gigabytes_is_refused_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(), encoding="utf-8")
    assert path.stat().st_size < 120_000

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("an item was built")

    from biasprobe.probes import MAX_CHARS_PER_FILE

    monkeypatch.setattr(schema_module, "expand_pair", never)
    (message,) = _problems(path)
    # both sides of 2,000 items: 2,000 x 2 x (200 x 100,001 + the rest) characters
    assert message.startswith(f"{path}:12: pair 'a': its 2,000 pairs' sentences would hold ")
    chars = int(message.split("would hold ")[1].split(" ")[0].replace(",", ""))
    assert chars > 2000 * 2 * 200 * 100_000
    assert f"more than the limit of {MAX_CHARS_PER_FILE:,} per file" in message


def test_the_character_bound_is_the_built_text(tmp_path: Path) -> None:
    """The arithmetic count equals the characters of the sentences actually built."""
    from biasprobe.probes.templates import expansion_chars, parse_template

    text = (
        NO_ORIENTATION
        + "lexicons:\n  job: [nurse, police officer, cook]\n"
        + "  pair:\n    women: [Mary, Ann Lee]\n    men: [James, Bob]\n"
        + "  adj: [very kind, calm]\n"
        + "pairs:\n"
        + '  - id: a\n    template: "[She|He] is a {job} and {job}, [x|yz] [MASK]."\n'
        + "    groups: [women, men]\n    minoritized: women\n    contrast: [1]\n"
        + '  - id: b\n    template: "{pair} met {pair} and a [MASK]."\n'
        + "    groups: [women, men]\n    minoritized: women\n    pairing: product\n"
        + '  - id: c\n    template: "The {adj} person is a [MASK]."\n'
        + "    groups: [women, men]\n    minoritized: women\n    attribute: adj\n"
        + "    targets: [she, he]\n"
    )
    ps = probes_from_yaml(text)
    lexicons = {}
    from biasprobe.probes.fields import Context
    from biasprobe.probes.lexicons import load_lexicons
    from biasprobe.yamlschema import Problems, compose, mapping

    ctx = Context(Problems("x"))
    root = compose(text, ctx.problems)
    top = mapping(root, ctx.problems, None)
    load_lexicons(ctx, top["lexicons"])
    lexicons = ctx.lexicons
    for spec in ps.pairs:
        tokens, errors = parse_template(spec.template)
        assert not errors
        built = [it for it in ps.items if it.template_id == spec.id]
        actual = sum(len(s) for it in built for s in it.sentences)
        actual += sum(len(s) for it in built for s in it.prior_sentences or ())
        assert expansion_chars(spec, tokens, lexicons) == actual, spec.id


def test_the_whole_file_is_bounded_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema_module, "MAX_CHARS_PER_FILE", 1000)
    pair = '  - id: {}\n    template: "[She|He] is a {{job}} [MASK]."\n    groups: [women, men]\n'
    body = HEADER + "lexicons:\n  job: [" + ", ".join(f"w{i}" for i in range(20)) + "]\npairs:\n"
    path = tmp_path / "p.yaml"
    path.write_text(body + pair.format("a") + pair.format("b"), encoding="utf-8")
    (message,) = _problems(path)  # each entry is 20 x 2 x ~20 characters, the two more than 1000
    assert message.startswith(f"{path}:10: pairs: the sentences the file expands into would hold")
    assert "more than the limit of 1,000 per file" in message


def test_cli_refuses_the_expansion_bomb_quickly(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(), encoding="utf-8")
    for args in (("validate", str(path)), ("run", str(path), "-m", str(tmp_path / "no-model"))):
        res = _cli(*args)
        assert res.returncode == 2, res.stderr
        assert f"{path}:12: pair 'a': its 2,000 pairs' sentences would hold" in res.stderr
        assert "MemoryError" not in res.stderr and "internal error" not in res.stderr


# --------------------------------------------------------------------------------------------
# 4c: a FIFO is never read


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_as_probe_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "probe.yaml"
    os.mkfifo(fifo)
    for args in (("validate", str(fifo)), ("run", str(fifo), "-m", str(tmp_path / "no-model"))):
        res = _cli(*args, timeout=60)  # the old loader blocked here forever, waiting for a writer
        assert res.returncode == 2, res.stderr
        assert f"{fifo}: is a FIFO (named pipe)" in res.stderr
    assert _problems(fifo) == [
        f"{fifo}: is a FIFO (named pipe), expected a YAML file: it is not read, so nothing "
        "waits on it"
    ]


def test_the_file_size_limit_is_one_megabyte(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(HEADER + "#" * 1_000_000 + "\n", encoding="utf-8")
    assert _problems(path) == [f"{path}: the file is larger than 1 MB, the limit for a probe file"]
    res = _cli("validate", str(path))
    assert res.returncode == 2 and "larger than 1 MB" in res.stderr


# --------------------------------------------------------------------------------------------
# 13: YAML the parser refuses is located, and its message is whole


def test_a_raw_control_character_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "ctl.yaml"
    path.write_text(HEADER.replace("A test set.", "A test\x01 set\x02.") + "pairs: []\n")
    (message,) = _problems(path)
    assert message == (
        f"{path}:3: the control character U+0001 at column 20 is not allowed in a YAML file "
        "(and 1 more such character); remove it"
    )
    res = _cli("validate", str(path))
    assert res.returncode == 2
    assert f"{path}:3: the control character U+0001 at column 20" in res.stderr
    assert "\x01" not in res.stderr


def test_deep_flow_nesting_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(HEADER + "pairs:\n  - " + "[" * 1000 + "]" * 1000 + "\n")
    assert _problems(path) == [f"{path}:9: lists and mappings are nested more than 64 levels deep"]
    path.write_text(HEADER + "pairs:\n  - " + "{a: " * 1000 + "1" + "}" * 1000 + "\n")
    assert _problems(path) == [f"{path}:9: lists and mappings are nested more than 64 levels deep"]
    res = _cli("validate", str(path))
    assert res.returncode == 2 and f"{path}:9: lists and mappings are nested" in res.stderr


def test_yaml_parser_messages_are_not_cut(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(HEADER + 'pairs:\n  - id: a\n    template: "x\n  groups: [a, b\n')
    (message,) = _problems(path)
    assert message.startswith(f"{path}:")
    assert "…" not in message and len(message.split(": ", 1)[1]) > 60


# --------------------------------------------------------------------------------------------
# 17: bidi and other format characters are shown escaped on the terminal


def test_safe_text_escapes_format_and_separator_characters() -> None:
    from biasprobe.cliutil import markup, safe_text

    hostile = "a\u202eb\u2066c\u200bd\ufeffe\U000e0041f\u2028g\u2029h\u061ci\x1bj"
    assert safe_text(hostile) == (
        "a\\u202eb\\u2066c\\u200bd\\ufeffe\\U000e0041f\\u2028g\\u2029h\\u061ci\\x1bj"
    )
    assert markup("[b]\u202e") == "\\[b]\\u202e"
    # letters, accents, CJK, emoji and no-break spaces are text, kept as they are
    for text in ("é ü ß", "日本語", "👩‍🔬"[0], "a\u00a0b", "ﻻ", "x\ty"):
        assert safe_text(text, keep_newlines=True) == text
    assert safe_text("x\ny\tz", keep_newlines=True) == "x\ny\tz"
    assert safe_text("x\ny") == "x\\x0ay"


def test_validate_list_prints_a_bidi_override_escaped(tmp_path: Path) -> None:
    path = tmp_path / "bidi.yaml"
    path.write_text(
        HEADER + "pairs:\n  - id: a\n"
        '    template: "[She|He] is a \u202edoctor\u202c [MASK]."\n'
        "    groups: [women, men]\n",
        encoding="utf-8",
    )
    res = _cli("validate", "--list", str(path))
    assert res.returncode == 0, res.stderr
    assert "She is a \\u202edoctor\\u202c [MASK]." in res.stdout
    assert "\u202e" not in res.stdout and "\u202c" not in res.stdout


def test_an_astronomical_expansion_is_said_by_its_size(tmp_path: Path) -> None:
    # 15,000 non-contrast alternations: 2**15000 pairs, a number Python will not print whole
    path = tmp_path / "astro.yaml"
    path.write_text(
        HEADER + f'pairs:\n  - id: a\n    template: "[She|He] {"[a|b]" * 15_000} [MASK]."\n'
        "    groups: [women, men]\n    contrast: [1]\n",
        encoding="utf-8",
    )
    (message,) = _problems(path)
    assert message == (
        f"{path}:9: pair 'a': expands into about 10^4515 pairs, more than the limit of 100000 "
        "per entry"
    )
