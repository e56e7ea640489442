"""``biasprobe holistic sentences``: the file reads back equal to the expansion; Parquet without
pyarrow names the extra; an existing file is never replaced; nothing is left half-written."""

from __future__ import annotations

import os
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from biasprobe.cli import app
from biasprobe.holistic import sentences, write_sentences

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["holistic", "sentences", *args], env={"COLUMNS": "200"})


def _listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


def test_csv_reads_back_equal(tmp_path) -> None:
    out = tmp_path / "hb.csv"
    res = invoke("--out", str(out))
    assert res.exit_code == 0, res.output
    assert "wrote 566,625 sentences to" in res.output
    back = pd.read_csv(out, keep_default_na=False)
    expected = sentences()
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)
    assert back["first_turn_only"].dtype == bool and set(back["axis"]) >= {"null", "ability"}
    assert _listing(tmp_path) == ["hb.csv"]  # no staging folder left behind


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    res = invoke("-o", str(tmp_path / "hb.parquet"))
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "needs pyarrow" in text and "pip install 'biasprobe[parquet]'" in text
    assert str(tmp_path / "hb.parquet") in text
    assert _listing(tmp_path) == []


def test_parquet_reads_back_equal(tmp_path) -> None:
    pytest.importorskip("pyarrow")
    out = write_sentences(tmp_path / "hb.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(out), sentences(), check_dtype=False)


@pytest.mark.parametrize("what", ["file", "folder", "dangling link"])
def test_refuses_to_overwrite_what_is_there(tmp_path, what) -> None:
    out = tmp_path / "mine.csv"
    if what == "file":
        out.write_text("my own notes\n")
    elif what == "folder":
        out.mkdir()
    else:
        out.symlink_to(tmp_path / "nowhere")
    res = invoke("--out", str(out))
    assert res.exit_code == 2
    assert "refusing to overwrite" in res.output and "mine.csv" in res.output
    assert _listing(tmp_path) == ["mine.csv"]
    if what == "file":
        assert out.read_text() == "my own notes\n"
    elif what == "folder":
        assert out.is_dir() and _listing(out) == []
    else:
        assert out.is_symlink() and not (tmp_path / "nowhere").exists()


def test_a_file_that_appears_while_writing_is_kept(tmp_path, monkeypatch) -> None:
    out = tmp_path / "hb.csv"
    real = pd.DataFrame.to_csv

    def racing(self, path, *args, **kwargs):
        out.write_text("someone else's\n")
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", racing)
    res = invoke("--out", str(out))
    assert res.exit_code == 2 and "refusing to overwrite" in res.output
    assert out.read_text() == "someone else's\n"
    assert _listing(tmp_path) == ["hb.csv"]


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch) -> None:
    def full_disk(self, path, *args, **kwargs):
        with open(path, "w") as f:
            f.write("text,axis\npartial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    res = invoke("--out", str(tmp_path / "sub" / "hb.csv"))
    assert res.exit_code == 1
    assert "cannot write" in res.output and "No space left on device" in res.output
    assert _listing(tmp_path / "sub") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "hb.txt"], "must end in .csv or .parquet (got '.txt')"),
        (["--out", "hb"], "must end in .csv or .parquet (got 'no suffix')"),
        (
            ["--out", "hb.csv", "--version", "v9"],
            "unknown HolisticBias version 'v9'; shipped: v1.1",
        ),
    ],
)
def test_bad_options_are_named(tmp_path, monkeypatch, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    res = invoke(*args)
    assert res.exit_code == 2
    assert message in " ".join(res.output.split())
    assert _listing(tmp_path) == []


def test_help_names_the_command_and_an_example() -> None:
    res = runner.invoke(app, ["holistic", "--help"], env={"COLUMNS": "120"})
    assert res.exit_code == 0 and "sentences" in res.output
    assert "Example: biasprobe holistic sentences" in " ".join(res.output.split())


def test_a_second_run_says_it_resumes_counting_sentences(tiny_gpt2, tmp_path) -> None:
    """The resume line of a HolisticBias run counts sentences (it said "pairs")."""
    args = ["holistic", "run", "-m", f"g={tiny_gpt2}", "-a", "nonce", "--sample", "48"]
    args += ["--device", "cpu", "--no-html", "--cache", str(tmp_path / "cache")]
    first = runner.invoke(app, [*args, "-o", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    assert "resuming" not in first.output
    second = runner.invoke(app, [*args, "-o", str(tmp_path / "b")])
    assert second.exit_code == 0, second.output
    line = "resuming g: 48 of 48 sentences from the result cache, nothing to compute"
    assert line in second.output, second.output
