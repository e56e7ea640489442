"""Shipped probe sets by name: ``biasprobe run gender``, ``builtin:gender``, ``biasprobe list``,
and the rules that keep a local file from being shadowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from biasprobe.catalog import resolve_probe_file, shipped_dir, shipped_sets
from biasprobe.cli import app
from biasprobe.errors import UsageError
from biasprobe.probes import load_probe_set

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "probes").glob("*.yaml"))


def test_the_package_folder_is_the_repository_probes_folder() -> None:
    # one source of truth: biasprobe/data/probes is a link to probes/ in a checkout
    assert sorted(p.name for p in shipped_dir().glob("*.yaml")) == [p.name for p in SHIPPED]
    for p in SHIPPED:
        assert (shipped_dir() / p.name).read_bytes() == p.read_bytes()


def test_names_resolve_to_shipped_files(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_probe_file("gender").read_bytes() == (REPO / "probes/gender.yaml").read_bytes()
    assert resolve_probe_file("builtin:kurita-gender").name == "kurita-gender.yaml"


def test_a_local_file_wins_and_a_bare_name_beside_a_local_yaml_is_ambiguous(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gender").write_text("mine")
    assert resolve_probe_file("gender") == Path("gender")  # an existing path is always the file
    (tmp_path / "gender").unlink()
    (tmp_path / "gender.yaml").write_text("mine")
    assert resolve_probe_file("gender.yaml") == Path("gender.yaml")
    with pytest.raises(UsageError, match=r"ambiguous.*\./gender\.yaml.*builtin:gender"):
        resolve_probe_file("gender")
    assert resolve_probe_file("builtin:gender").parent == shipped_dir()


def test_missing_paths_name_the_shipped_set(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"probes/race\.yaml: file does not exist.*`race`"):
        resolve_probe_file("probes/race.yaml")
    with pytest.raises(UsageError, match="no shipped probe set"):
        resolve_probe_file("nonesuch")
    with pytest.raises(UsageError, match="not a shipped probe set.*gender"):
        resolve_probe_file("builtin:nonesuch")
    with pytest.raises(UsageError, match="not a shipped probe set"):
        resolve_probe_file("builtin:../probes/gender")  # a name, never a path


def test_list_shows_every_set_with_kind_pairs_what_and_source(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["list"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if not line.startswith("(")]
    assert len(lines) == len(SHIPPED)
    for path, line in zip(SHIPPED, lines):
        ps = load_probe_set(path)  # counted independently of the catalog
        n = len(ps.items)
        assert line.split()[0] == path.stem
        assert f"{n} pair" in line and ps.kind in line
        assert "Source: " + " ".join(ps.source.split()) in line
    assert [s.name for s in shipped_sets()] == [p.stem for p in SHIPPED]


def test_run_and_validate_take_a_name_from_any_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["validate", "race", "builtin:gender"])
    assert res.exit_code == 0, res.output
    assert "race: ok" in res.output and "builtin:gender: ok" in res.output
    res = runner.invoke(
        app,
        ["run", "race", "-m", "recorded:bert-large-uncased-whole-word-masking", "-o", "x", "-q"],
    )
    # race's sentence is not in the recording: the set was found and loaded, the replay refuses
    assert res.exit_code != 0 and "does not exist" not in res.output
    res = runner.invoke(app, ["run", "probes/race.yaml", "-m", "x", "-o", "y"])
    assert res.exit_code == 2 and "biasprobe list" in res.output
    assert not (tmp_path / "y").exists() and not (tmp_path / "x").exists()
