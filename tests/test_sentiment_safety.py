"""Sentiment run folders and study folders: biasprobe replaces only what it wrote (issue 8)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from biasprobe import fsio
from biasprobe.sentiment.cli import app

POSITIVE = ["great", "wonderful", "moving", "brilliant"]
NEGATIVE = ["dull", "awful", "boring", "clumsy"]


def _data(tmp_path: Path, n: int = 120) -> Path:
    rng = random.Random(0)
    path = tmp_path / "d.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(n):
            label = i % 2
            word = rng.choice(POSITIVE if label else NEGATIVE)
            w.writerow([f"the film was {word} number {i}", label])
    return path


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "experiment: 0\nname: bow\nmodel:\n  kind: bow\n  num_buckets: 512\n"
        "data:\n  max_length: 16\n  validation_size: 32\n"
        "train:\n  batch_size: 16\n  lr: 0.05\n  eval_every: 2\n  eval_batch_size: 64\n"
        "  device: cpu\n"
    )
    return cfg


def _train(tmp_path: Path, out: Path, *extra: str):
    args = ["train", str(_config(tmp_path)), "--data", str(_data(tmp_path)), "--out", str(out)]
    return CliRunner().invoke(app, [*args, "--max-steps", "4", "--no-progress", *extra])


def test_overwrite_refuses_a_users_folder_and_keeps_its_files(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "summary.json").write_text('{"accuracy": 0.93}')
    (home / "thesis.tex").write_text("thesis")
    result = _train(tmp_path, home, "--overwrite")
    assert result.exit_code == 2, result.output
    assert "not a sentiment run folder written by biasprobe" in result.stderr
    assert (home / "thesis.tex").read_text() == "thesis"
    assert (home / "summary.json").read_text() == '{"accuracy": 0.93}'
    # without --overwrite a non-empty foreign folder is refused too, untouched
    result = _train(tmp_path, home)
    assert result.exit_code == 1 and "not a sentiment run written by biasprobe" in result.stderr
    assert sorted(p.name for p in home.iterdir()) == ["summary.json", "thesis.tex"]


def test_overwrite_replaces_biasprobes_own_run_but_not_one_with_extra_files(tmp_path):
    out = tmp_path / "run"
    assert _train(tmp_path, out).exit_code == 0
    manifest = fsio.read_manifest(out)
    assert manifest["kind"] == "sentiment-run"
    assert set(fsio.list_files(out)) <= set(manifest["files"])
    first = json.loads((out / "summary.json").read_text())["date"]
    result = _train(tmp_path, out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["date"] >= first
    (out / "notes.txt").write_text("mine")
    result = _train(tmp_path, out, "--overwrite")
    assert result.exit_code == 2 and "notes.txt" in result.stderr
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "best.safetensors").is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_train_on_missing_cuda_leaves_no_output_folder(tmp_path):
    out = tmp_path / "nested" / "run"
    result = _train(tmp_path, out, "--device", "cuda")
    assert result.exit_code != 0 and "CUDA is not available" in result.stderr
    assert not out.exists() and not out.parent.exists()


def test_missing_data_leaves_no_output_folder(tmp_path):
    out = tmp_path / "run"
    args = ["train", str(_config(tmp_path)), "--data", str(tmp_path / "nope.csv")]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2 and "not found" in result.stderr
    assert not out.exists()


def test_compare_out_replaces_only_its_own_folder(tmp_path):
    run = tmp_path / "run"
    assert _train(tmp_path, run).exit_code == 0
    report = tmp_path / "report"
    runner = CliRunner()
    args = ["compare", str(run), "--no-png", "--out", str(report)]
    assert runner.invoke(app, args).exit_code == 0
    assert fsio.read_manifest(report)["kind"] == "sentiment-study"
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "--overwrite" in again.stderr
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    user = tmp_path / "user"
    user.mkdir()
    (user / "results.md").write_text("my table")
    (user / "paper.tex").write_text("paper")
    result = runner.invoke(
        app, ["compare", str(run), "--no-png", "--out", str(user), "--overwrite"]
    )
    assert result.exit_code == 2 and "not a study folder written by biasprobe" in result.stderr
    assert (user / "results.md").read_text() == "my table"
    assert (user / "paper.tex").read_text() == "paper"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".user.")]  # no staging left
