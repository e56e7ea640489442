"""A misspelt key is reported once, first, with the fix; the errors it causes are not listed."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from biasprobe.cli import app
from biasprobe.errors import ProbeSetError
from biasprobe.probes import load_probe_set

HEAD = """\
name: misspelt
version: 1
description: a misspelt key
source: written for this test
"""
PAIRS = """\
pairs:
  - id: a
    template: "The [muslim|christian] man was a [MASK]."
    groups: [muslim, christian]
  - id: b
    template: "The [muslim|christian] woman was a [MASK]."
    groups: [muslim, christian]
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProbeSetError) as e:
        load_probe_set(path)
    return [f"{p.line}: {p.message}" for p in e.value.problems]


def test_misspelt_top_level_orientation_key_is_the_only_problem(tmp_path: Path) -> None:
    text = HEAD + "orientation:\n  minoritised: muslim\n  normative: christian\n" + PAIRS
    problems = _problems(tmp_path, text)
    assert problems == ["6: orientation: unknown key 'minoritised' (did you mean 'minoritized'?)"]
    res = CliRunner().invoke(app, ["validate", str(tmp_path / "p.yaml")])
    assert res.exit_code == 2
    assert "(1 problem)" in res.output and "add 'minoritized: muslim'" not in res.output


def test_misspelt_pair_key_is_not_followed_by_no_orientation(tmp_path: Path) -> None:
    text = HEAD + PAIRS.replace(
        "groups: [muslim, christian]\n  - id: b",
        "groups: [muslim, christian]\n    minoritised: muslim\n  - id: b",
    )
    text = text.replace("  - id: b\n", "  - id: b\n    minoritized: muslim\n")
    problems = _problems(tmp_path, text)
    assert problems == ["9: pairs[1]: unknown key 'minoritised' (did you mean 'minoritized'?)"], (
        problems
    )


def test_a_missing_orientation_still_says_how_to_add_it(tmp_path: Path) -> None:
    problems = _problems(tmp_path, HEAD + PAIRS)
    assert len(problems) == 2 and all("no orientation: add" in p for p in problems)


def test_an_unrelated_unknown_key_does_not_hide_a_missing_required_key(tmp_path: Path) -> None:
    text = HEAD + "orientation:\n  minoritized: muslim\n  colour: blue\n" + PAIRS
    problems = _problems(tmp_path, text)
    assert any("missing required key 'normative'" in p for p in problems)
    assert any("unknown key 'colour'" in p for p in problems)
