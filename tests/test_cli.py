"""The command line: help, a full run, and every bad input with its message and exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from biasprobe.cli import app

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()

GOOD = """name: t
version: 1
description: test
source: test
orientation: {minoritized: women, normative: men}
pairs:
  - id: works
    template: "The [woman|man] works as a [MASK]."
    groups: [women, men]
"""


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def no_output_left(folder: Path) -> bool:
    return not folder.exists() and not [p for p in folder.parent.glob(f".{folder.name}*")]


def test_every_command_has_help():
    for cmd in ([], ["run"], ["validate"], ["report"], ["record"]):
        res = invoke(*cmd, "--help")
        assert res.exit_code == 0, (cmd, res.output)
        assert "Usage" in res.output
        if cmd:
            assert "Example" in res.output


def test_help_does_not_import_torch():
    code = "import sys; from biasprobe.cli import app; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    res = subprocess.run(
        [sys.executable, "-m", "biasprobe", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert res.returncode == 0 and "run" in res.stdout


def test_run_end_to_end(tiny_bert, tmp_path):
    probe = tmp_path / "p.yaml"
    probe.write_text(GOOD)
    out = tmp_path / "run"
    res = invoke("run", probe, "--model", tiny_bert, "--out", out, "-k", "5")
    assert res.exit_code == 0, res.output
    assert "The woman works as a [MASK]." in res.output
    assert f"wrote {out}" in res.output
    assert (out / "topk.csv").is_file() and (out / "results.json").is_file()


def test_run_default_out_is_under_reports(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(GOOD)
    res = invoke("run", "p.yaml", "-m", tiny_bert, "-q")
    assert res.exit_code == 0, res.output
    runs = list((tmp_path / "reports").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("t-")
    assert (runs[0] / "scores.csv").is_file()


def test_validate_ok_and_bad(tmp_path):
    res = invoke("validate", *sorted((REPO / "probes").glob("*.yaml")))
    assert res.exit_code == 0, res.output
    assert res.output.count(": ok") == len(list((REPO / "probes").glob("*.yaml")))
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("works as a [MASK].", "works as a job."))
    res = invoke("validate", bad)
    assert res.exit_code == 2
    assert f"{bad}:8" in res.output and "mask" in res.output.lower()


# Each bad probe file: (text, expected line, words expected in the message).
BAD_FILES = {
    "malformed": ("name: t\npairs: [\n", None, ["YAML"]),
    "not-a-mapping": ("- just\n- a list\n", 1, ["mapping"]),
    "unknown-key": (GOOD + "colour: blue\n", 10, ["unknown key", "colour"]),
    "no-mask": (GOOD.replace("[MASK]", "job"), 8, ["mask"]),
    "two-masks": (GOOD.replace("a [MASK].", "a [MASK] [MASK]."), 8, ["mask"]),
    "alternation-sides": (GOOD.replace("[woman|man]", "[woman|man|person]"), 8, ["3", "2"]),
    "lexicon-missing-group": (
        GOOD.replace('"The [woman|man] works as a [MASK]."', '"{name} works as a [MASK]."')
        + "lexicons:\n  name:\n    women: [Mary]\n",
        None,
        ["men", "name"],
    ),
    "lexicon-empty": (
        GOOD.replace('"The [woman|man] works as a [MASK]."', '"{name} works as a [MASK]."')
        + "lexicons:\n  name:\n    women: []\n    men: [John]\n",
        None,
        ["empty"],
    ),
    "duplicate-ids": (
        GOOD
        + '  - id: works\n    template: "[women|men] work as [MASK]."\n    groups: [women, men]\n',
        10,
        ["duplicate", "works"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_probe_files(case, tmp_path, tiny_bert):
    text, line, words = BAD_FILES[case]
    probe = tmp_path / f"{case}.yaml"
    probe.write_text(text)
    out = tmp_path / "out"
    res = invoke("run", probe, "-m", tiny_bert, "-o", out)
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: "), res.output
    assert "Traceback" not in res.output
    where = f"{probe}:{line}" if line else str(probe)
    assert where in res.output
    for w in words:
        assert w.lower() in res.output.lower(), (w, res.output)
    assert no_output_left(out)


def test_missing_probe_file(tmp_path):
    res = invoke("run", tmp_path / "nope.yaml", "-m", "x")
    assert res.exit_code == 2
    assert "nope.yaml" in res.output and "does not exist" in res.output


def test_target_absent_from_vocab(tiny_bert, tmp_path):
    probe = tmp_path / "p.yaml"
    probe.write_text(GOOD + "    targets: [nurse, 🦜]\n")
    out = tmp_path / "out"
    res = invoke("run", probe, "-m", tiny_bert, "-o", out)
    assert res.exit_code == 2, res.output
    assert f"{probe}:7" in res.output and "'🦜' is not in the vocabulary" in res.output
    assert no_output_left(out)


@pytest.mark.parametrize(
    "setup,words",
    [
        ("unknown-id", ["not in the local Hugging Face cache", "--model /path/to"]),
        ("missing-folder", ["does not exist"]),
        ("no-config", ["config.json is missing"]),
        ("no-weights", ["has no weights"]),
        ("corrupt-weights", ["could not be loaded", "corrupt"]),
        ("a-file", ["is a file"]),
    ],
)
def test_models_that_cannot_load(setup, words, tmp_path, tiny_bert, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    probe = tmp_path / "p.yaml"
    probe.write_text(GOOD)
    model = tmp_path / "ckpt"
    if setup == "unknown-id":
        model = "no-such-org/no-such-model"
    elif setup == "missing-folder":
        model = tmp_path / "nowhere" / "ckpt"
    elif setup == "no-config":
        model.mkdir()
        (model / "model.safetensors").write_bytes(b"x")
    elif setup == "no-weights":
        model.mkdir()
        (model / "config.json").write_text((tiny_bert / "config.json").read_text())
    elif setup == "corrupt-weights":
        model.mkdir()
        for f in tiny_bert.iterdir():
            (model / f.name).write_bytes(f.read_bytes())
        (model / "model.safetensors").write_bytes(b"\x00garbage" * 100)
    elif setup == "a-file":
        model.write_text("not a folder")
    out = tmp_path / "out"
    res = invoke("run", probe, "-m", model, "-o", out)
    assert res.exit_code == 1, res.output
    assert res.output.startswith("error: ") and "Traceback" not in res.output
    assert str(model) in res.output
    for w in words:
        assert w in res.output, (w, res.output)
    assert no_output_left(out)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_without_gpu(tiny_bert, tmp_path):
    probe = tmp_path / "p.yaml"
    probe.write_text(GOOD)
    res = invoke("run", probe, "-m", tiny_bert, "--device", "cuda", "-o", tmp_path / "o")
    assert res.exit_code == 2
    assert "error: --device cuda was requested but CUDA is not available" in res.output


def test_unwritable_output(tiny_bert, tmp_path):
    probe = tmp_path / "p.yaml"
    probe.write_text(GOOD)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = invoke("run", probe, "-m", tiny_bert, "-o", blocker / "run")
    assert res.exit_code == 1, res.output
    assert "cannot write output folder" in res.output and str(blocker) in res.output
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    res = invoke("run", probe, "-m", tiny_bert, "-o", existing)
    assert res.exit_code == 1 and "already exists" in res.output
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_interrupt_leaves_nothing(tiny_bert, tmp_path, monkeypatch):
    """Ctrl-C while the run folder is being written leaves no partial folder."""
    import biasprobe.runfolders.fillmask as results

    probe = tmp_path / "p.yaml"
    probe.write_text(GOOD)
    out = tmp_path / "run"

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(results, "save_store", boom)
    res = invoke("run", probe, "-m", tiny_bert, "-o", out)
    assert res.exit_code == 130
    assert "interrupted" in res.output
    assert no_output_left(out)
    assert os.listdir(tmp_path) == ["p.yaml"]
