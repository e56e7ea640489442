"""``biasprobe sentiment train`` on hostile configs and diverging runs (issue 17, items 8 and 4c):
every bad value is a ``file:line`` error before anything is written, a FIFO config never
blocks, and a NaN/inf loss stops training with the last good checkpoint left as it was."""

from __future__ import annotations

import csv
import os
import random
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from biasprobe.sentiment.classifiers import HashedNgramClassifier
from biasprobe.sentiment.cli import app
from biasprobe.sentiment.config import ConfigError, load_config

POSITIVE = ["great", "wonderful", "moving", "brilliant"]
NEGATIVE = ["dull", "awful", "boring", "clumsy"]

CONFIG = """experiment: 0
name: bow
model:
  kind: bow
  num_buckets: {num_buckets}
{extra_model}data:
  max_length: 16
  validation_size: 32
train:
  batch_size: 16
  lr: {lr}
  weight_decay: {weight_decay}
  eval_every: 2
  eval_batch_size: 64
  checkpoint_every: {checkpoint_every}
  device: cpu
"""


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


def _config(tmp_path: Path, **values) -> Path:
    fields = {
        "num_buckets": 512,
        "extra_model": "",
        "lr": 0.05,
        "weight_decay": 0.0,
        "checkpoint_every": 500,
    }
    fields.update(values)
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(**fields))
    return path


def _train(config: Path, data: Path, out: Path, steps: int = 1):
    args = ["train", str(config), "--data", str(data), "--out", str(out), "--no-progress"]
    return CliRunner().invoke(app, [*args, "--max-steps", str(steps)])


# ------------------------------------------------------------------ values validation accepted


@pytest.mark.parametrize(
    ("values", "where", "expected"),
    [
        ({"num_buckets": "1000000000000"}, "c.yaml:5", "model.num_buckets: expected an integer"),
        ({"num_buckets": "1.0e12"}, "c.yaml:5", "model.num_buckets: expected an integer"),
        (
            {"extra_model": "  vocabulary_size: 1000000000000\n"},
            "c.yaml:6",
            "model.vocabulary_size: expected an integer <= 2,147,483,647",
        ),
        ({"num_buckets": "2000000000"}, "c.yaml:4", "parameters, more than the 1,000,000,000"),
        ({"weight_decay": ".nan"}, "c.yaml:12", "train.weight_decay: expected a finite number"),
        ({"lr": ".inf"}, "c.yaml:11", "train.lr: expected a finite number"),
        ({"lr": "1.0e+38"}, "c.yaml:11", "train.lr: expected a number > 0 and at most"),
        ({"extra_model": "  num_labels: 1\n"}, "c.yaml:6", "model.num_labels: expected 2"),
    ],
)
def test_bad_values_are_file_line_errors_and_nothing_is_written(tmp_path, values, where, expected):
    res = _train(_config(tmp_path, **values), _data(tmp_path), tmp_path / "out")
    assert res.exit_code == 2, res.output
    assert f"{where}: " in res.output and expected in res.output, res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    assert not (tmp_path / "out").exists()


def test_counts_beyond_32_bits_are_refused(tmp_path):
    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text().replace("max_length: 16", "max_length: 100000000000"))
    with pytest.raises(ConfigError, match=r"c\.yaml:7: data\.max_length: expected an integer <="):
        load_config(cfg)


def test_shipped_configs_still_validate():
    root = Path(__file__).resolve().parent.parent / "configs" / "sentiment"
    for path in sorted(root.rglob("*.yaml")):
        load_config(path)


# ------------------------------------------------------------------ 4c: a FIFO config


def test_fifo_config_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    done = threading.Event()

    def unblock() -> None:  # the old behaviour: a reader stuck on the FIFO; let it go
        if not done.wait(20):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass

    threading.Thread(target=unblock, daemon=True).start()
    try:
        res = _train(fifo, _data(tmp_path), tmp_path / "out")
    finally:
        done.set()
    assert res.exit_code == 2, res.output
    assert "FIFO" in res.output and str(fifo) in res.output
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ NaN at any step


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def _nan_at(monkeypatch, step: int, *, gradient_only: bool) -> None:
    """Make the training forward of ``step`` (counted in this process) give a NaN loss, or a
    finite loss whose gradient is NaN (the update then makes every weight NaN)."""
    forward = HashedNgramClassifier.forward
    seen = {"n": 0}

    def poisoned(self, input_ids, mask, labels=None):
        loss, logits = forward(self, input_ids, mask, labels)
        if labels is None:
            return loss, logits
        seen["n"] += 1
        if seen["n"] != step:
            return loss, logits
        if gradient_only:  # sqrt'(0) = inf, times 0: a NaN gradient under a finite loss
            return loss + torch.sqrt(logits.sum() * 0), logits
        return loss * float("nan"), logits

    monkeypatch.setattr(HashedNgramClassifier, "forward", poisoned)


@pytest.mark.parametrize("gradient_only", [False, True], ids=["nan-loss", "nan-gradient"])
def test_divergence_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, gradient_only):
    data, out = _data(tmp_path), tmp_path / "out"
    cfg = _config(tmp_path, checkpoint_every=2)
    first = _train(cfg, data, out, steps=4)
    assert first.exit_code == 0, first.output
    before = _files(out)
    assert {"checkpoint.pt", "model.safetensors", "best.safetensors"} <= set(before)

    _nan_at(monkeypatch, 2, gradient_only=gradient_only)  # resumed at 4: the 2nd step is 6
    res = _train(cfg, data, out, steps=8)
    assert res.exit_code == 1, res.output
    assert "training diverged" in res.output and "step 6" in res.output, res.output
    assert "last checkpoint, at step 4, is kept" in res.output, res.output
    after = _files(out)
    # every file but the rewritten log (records up to the checkpoint, then steps 5-6) is as it was
    for name in ("checkpoint.pt", "model.safetensors", "best.safetensors", "summary.json"):
        assert after[name] == before[name], name
    assert not [p for p in out.iterdir() if p.name.startswith(".") and "tmp" in p.name]
    for name in ("model.safetensors", "best.safetensors"):
        assert all(torch.isfinite(t).all() for t in load_file(out / name).values())

    monkeypatch.undo()  # the same command again resumes from the kept checkpoint
    again = _train(cfg, data, out, steps=8)
    assert again.exit_code == 0, again.output
    straight = _train(cfg, data, tmp_path / "straight", steps=8)  # never interrupted
    assert straight.exit_code == 0, straight.output
    assert (
        load_file(out / "model.safetensors").keys()
        == load_file(tmp_path / "straight" / "model.safetensors").keys()
    )
    for name, t in load_file(out / "model.safetensors").items():
        assert torch.equal(t, load_file(tmp_path / "straight" / "model.safetensors")[name])


def test_divergence_before_any_checkpoint_says_so(tmp_path, monkeypatch):
    _nan_at(monkeypatch, 1, gradient_only=False)
    out = tmp_path / "out"
    res = _train(_config(tmp_path), _data(tmp_path), out, steps=3)
    assert res.exit_code == 1, res.output
    assert "the training loss became nan at step 1" in res.output
    assert "no checkpoint had been saved" in res.output
    assert not (out / "checkpoint.pt").exists() and not (out / "model.safetensors").exists()


def test_sentiment_run_with_nan_weights_is_refused_as_a_classifier(tmp_path):
    from biasprobe.backends.classifiers import load_classifier
    from biasprobe.errors import RunFolderError

    out = tmp_path / "run"
    assert _train(_config(tmp_path), _data(tmp_path), out, steps=2).exit_code == 0
    weights = load_file(out / "best.safetensors")
    save_file(
        {k: torch.full_like(v, float("nan")) for k, v in weights.items()}, out / "best.safetensors"
    )
    with pytest.raises(RunFolderError, match="NaN or infinite") as info:
        load_classifier(str(out), device="cpu")
    assert str(out) in str(info.value)


def test_an_unexpected_failure_is_one_error_line(tmp_path, monkeypatch):
    def broken(self, input_ids, mask, labels=None):
        raise RuntimeError("something unforeseen")

    monkeypatch.setattr(HashedNgramClassifier, "forward", broken)
    monkeypatch.delenv("BIASPROBE_DEBUG", raising=False)
    res = _train(_config(tmp_path), _data(tmp_path), tmp_path / "out")
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.exception
    assert "error: internal error (RuntimeError: something unforeseen)" in res.output


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_tampered_checkpoint_is_refused_without_running_it(tmp_path):
    import pickle

    data, out, cfg = _data(tmp_path), tmp_path / "out", _config(tmp_path)
    assert _train(cfg, data, out, steps=2).exit_code == 0
    marker = tmp_path / "PAYLOAD-RAN"
    with open(out / "checkpoint.pt", "wb") as f:
        pickle.dump({"state": _Payload(marker)}, f, protocol=4)
    res = _train(cfg, data, out, steps=4)
    assert res.exit_code != 0 and isinstance(res.exception, SystemExit), res.exception
    assert "cannot resume from this checkpoint" in res.output and "refuses to load" in res.output
    assert "weights_only" not in res.output and "Traceback" not in res.output
    assert not marker.exists()


@pytest.mark.parametrize("where", ["data-file", "amazon-train", "tokenizer-vocab"])
def test_fifo_data_and_tokenizer_files_are_named_not_read(tmp_path, where):
    """A FIFO as the data file, as an Amazon folder's train.csv or as a tokenizer folder's
    vocab.txt is named as a FIFO (it was called missing, or blocked a reader)."""
    from biasprobe.sentiment.data import DataUnavailableError, load_tokenizer, open_source

    if where == "data-file":
        fifo = tmp_path / "d.csv"
        os.mkfifo(fifo)
        call = lambda: open_source(str(fifo))  # noqa: E731
    elif where == "amazon-train":
        folder = tmp_path / "amazon"
        folder.mkdir()
        fifo = folder / "train.csv"
        os.mkfifo(fifo)
        (folder / "test.csv").write_text("1,t,c\n", encoding="utf-8")
        call = lambda: open_source(str(folder))  # noqa: E731
    else:
        folder = tmp_path / "tok"
        folder.mkdir()
        fifo = folder / "vocab.txt"
        os.mkfifo(fifo)
        call = lambda: load_tokenizer(str(folder))  # noqa: E731
    with pytest.raises(DataUnavailableError, match="FIFO") as e:
        call()
    assert str(fifo) in str(e.value)
