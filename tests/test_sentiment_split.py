"""The sentiment training code split by concept: the loop (train), the run-folder bookkeeping
(train_io), and reading a trained run back (trained, which needs no training code, so that the
classifier backends can load sentiment runs from a lower layer)."""

from __future__ import annotations

import ast
from pathlib import Path

import biasprobe.sentiment as pkg

FOLDER = Path(pkg.__file__).parent


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_training_modules_are_under_800_lines():
    for name in ("train.py", "train_io.py", "trained.py"):
        lines = (FOLDER / name).read_text(encoding="utf-8").count("\n")
        assert lines <= 800, (name, lines)


def test_loading_a_trained_run_needs_no_training_code():
    got = {m for m in _imports(FOLDER / "trained.py") if m.startswith("biasprobe")}
    assert not {m for m in got if m.startswith("biasprobe.sentiment.train")}, got
    assert got <= {
        "biasprobe",
        "biasprobe.fsio",
        "biasprobe.device",
        "biasprobe.errors",
        "biasprobe.sentiment.config",
        "biasprobe.sentiment.data",
        "biasprobe.sentiment.classifiers",
    }, got


def test_old_names_still_come_from_train():
    from biasprobe.sentiment import train, train_io, trained

    assert train.load_trained is trained.load_trained
    assert train.TrainedModel is trained.TrainedModel
    assert train.build_model is trained.build_model
    assert train.TrainingDiverged is train_io.TrainingDiverged
    assert train.TrainingInterrupted is train_io.TrainingInterrupted
    assert train.count_parameters is train_io.count_parameters
    assert (train.BEST_WEIGHTS, train.FINAL_WEIGHTS) == ("best.safetensors", "model.safetensors")
    assert train.RUN_KIND == "sentiment-run" and callable(train.evaluate)
