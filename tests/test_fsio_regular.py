"""fsio.read_regular_*: never blocks on a FIFO, refuses folders and oversize files."""

import os

import pytest

from biasprobe import fsio


def test_reads_a_regular_file(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("name: x\n", encoding="utf-8")
    assert fsio.read_regular_text(p) == "name: x\n"
    assert fsio.read_regular_bytes(p, limit=8) == b"name: x\n"


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "probe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(fsio.NotRegularFileError, match="FIFO"):
        fsio.read_regular_bytes(fifo, what="probe file")


def test_folder_and_limit_are_refused(tmp_path):
    with pytest.raises(fsio.NotRegularFileError, match="folder"):
        fsio.read_regular_bytes(tmp_path)
    p = tmp_path / "big"
    p.write_bytes(b"x" * 100)
    with pytest.raises(fsio.NotRegularFileError, match="over the limit"):
        fsio.read_regular_bytes(p, limit=99)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        fsio.read_regular_bytes(tmp_path / "nope")
