"""Every command and command group answers --help with an example (``Example: biasprobe …``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from biasprobe.cli import app

REPO = Path(__file__).resolve().parents[1]


def _commands(group: click.Command, path: tuple[str, ...] = ()):
    yield path
    for name, sub in getattr(group, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(c) for c in COMMANDS}
    assert {"", "run", "list", "validate", "crows", "cache", "cache info", "cache clear"} <= names
    assert {"sentiment", "sentiment train", "sentiment compare", "report", "record"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "biasprobe")
def test_help_has_an_example(command: tuple[str, ...]) -> None:
    res = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.output
    assert "Example: biasprobe " + (command[0] if command else "") in " ".join(res.output.split())


def test_make_random_bert_help_answers_without_torch() -> None:
    code = (
        "import runpy, sys; sys.argv = ['make_random_bert.py', '--help']\n"
        "try:\n    runpy.run_path({!r}, run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    ).format(str(REPO / "scripts" / "make_random_bert.py"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "usage: make_random_bert.py" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "False False", out.stdout + out.stderr
