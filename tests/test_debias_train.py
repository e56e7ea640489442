"""``biasprobe debias``: output folder, model card, dropout config, resume after SIGKILL, errors."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from biasprobe.cli import app
from biasprobe.debias.cli import plain_progress
from biasprobe.debias.train import DebiasConfig, debias
from biasprobe.sentiment.cda import cda_dir
from tests.debias_helpers import biased_corpus, build_small_bert
from tests.test_debias_effect import PROBES

REPO = Path(__file__).resolve().parent.parent
FAST = {"steps": 6, "lr": 1e-3, "batch_size": 8, "seed": 3, "max_length": 16}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("debias")
    return build_small_bert(root / "base"), biased_corpus(root / "corpus.txt", n=80)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_dropout_values_are_written_into_the_output_config(setup, tmp_path):
    base, corpus = setup
    out = debias(
        DebiasConfig(
            method="dropout", model=str(base), corpus=str(corpus), out=str(tmp_path / "d"), **FAST
        )
    ).out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["attention_probs_dropout_prob"] == 0.15
    assert cfg["hidden_dropout_prob"] == 0.20
    base_cfg = json.loads((base / "config.json").read_text())
    assert base_cfg["attention_probs_dropout_prob"] == base_cfg["hidden_dropout_prob"] == 0.0
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(str(out))
    assert model.bert.encoder.layer[0].attention.self.dropout.p == 0.15  # what training used
    assert model.bert.embeddings.dropout.p == 0.20
    card = (out / "README.md").read_text()
    assert "attention_probs_dropout_prob: 0.15" in card and "hidden_dropout_prob: 0.2" in card
    # CDA leaves the base's dropout alone
    cda = debias(
        DebiasConfig(
            method="cda", model=str(base), corpus=str(corpus), out=str(tmp_path / "c"), **FAST
        )
    ).out
    assert json.loads((cda / "config.json").read_text())["hidden_dropout_prob"] == 0.0


def test_output_is_a_checkpoint_with_a_model_card(setup, tmp_path):
    base, corpus = setup
    res = debias(
        DebiasConfig(
            method="cda", model=str(base), corpus=str(corpus), out=str(tmp_path / "cda"), **FAST
        )
    )
    out = res.out
    names = {p.name for p in out.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "README.md",
        "debias.json",
        "cda-word-pairs.tsv",
    } <= names
    assert "tokenizer.json" in names or "vocab.txt" in names
    assert not any(n.endswith(".bin") for n in names)
    from biasprobe.fsio import shared_mode

    assert all((out / n).stat().st_mode & 0o777 == shared_mode() for n in names)
    assert not (tmp_path / "cda.resume").exists()  # removed once the output is in place
    info = json.loads((out / "debias.json").read_text())
    assert info["base"]["files_sha256"]["model.safetensors"] == _sha(base / "model.safetensors")
    assert info["corpus"]["sha256"] == _sha(corpus)
    assert (
        info["training"] | {"steps": 6, "lr": 1e-3, "seed": 3, "batch_size": 8} == info["training"]
    )
    losses = info["losses"]
    assert len(losses) == 6 and info["final_mlm_loss"] == pytest.approx(sum(losses) / 6, abs=1e-6)
    assert (out / "cda-word-pairs.tsv").read_bytes() == (cda_dir() / "gender.tsv").read_bytes()
    card = (out / "README.md").read_text()
    for needle in (
        _sha(base / "model.safetensors"),
        _sha(corpus),
        "Two-sided counterfactual data augmentation",
        _sha(cda_dir() / "gender.tsv"),
        "steps: 6, learning rate: 0.001",
        "seed: 3",
        f"{info['final_mlm_loss']:.4f}",
    ):
        assert needle in card, needle
    # the training texts: each sentence with he/she followed by its twin
    assert info["cda"]["twins_added"] == info["cda"]["sentences_with_terms"] == 80
    assert info["corpus"]["training_texts"] == 160


def test_output_folders_run_through_the_audit_with_html(setup, tmp_path):
    base, corpus = setup
    cda = debias(
        DebiasConfig(
            method="cda", model=str(base), corpus=str(corpus), out=str(tmp_path / "cda"), **FAST
        )
    ).out
    drop = debias(
        DebiasConfig(
            method="dropout", model=str(base), corpus=str(corpus), out=str(tmp_path / "dr"), **FAST
        )
    ).out
    probes = tmp_path / "p.yaml"
    probes.write_text(PROBES, encoding="utf-8")
    run = tmp_path / "run"
    r = CliRunner().invoke(
        app,
        [
            "run",
            str(probes),
            "-m",
            f"base={base}",
            "-m",
            f"cda={cda}",
            "-m",
            f"dropout={drop}",
            "--out",
            str(run),
            "--html",
            "--bootstrap",
            "200",
            "-q",
            "--no-cache",
        ],
    )
    assert r.exit_code == 0, r.output
    summary = (run / "summary.csv").read_text()
    assert all(m in summary for m in ("base", "cda", "dropout"))
    html = next(run.glob("*.html")).read_text()
    assert "cda" in html and "dropout" in html


def _cmd(base, corpus, out, steps=300):
    return [
        sys.executable,
        "-m",
        "biasprobe",
        "debias",
        "--method",
        "cda",
        "--model",
        str(base),
        "--corpus",
        str(corpus),
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--lr",
        "1e-3",
        "--batch-size",
        "8",
        "--seed",
        "5",
        "--max-length",
        "16",
        "--checkpoint-every",
        "10",
        "-q",
    ]


def test_resume_after_sigkill_gives_the_same_weights(setup, tmp_path):
    from safetensors.torch import load_file

    base, corpus = setup
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    state = tmp_path / "killed.resume" / "state.pt"
    proc = subprocess.Popen(_cmd(base, corpus, killed), env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 300
        while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert state.exists(), "no checkpoint was written"
        proc.send_signal(signal.SIGKILL)
    finally:
        rc = proc.wait()
    assert rc == -signal.SIGKILL
    assert not killed.exists()  # nothing half-written
    saved = torch.load(state, weights_only=True)
    assert 10 <= saved["step"] < 300
    done = subprocess.run(
        _cmd(base, corpus, killed), env=env, cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    info = json.loads((killed / "debias.json").read_text())
    assert info["training"]["resumed_from_step"] >= saved["step"]
    assert not state.parent.exists()
    straight = tmp_path / "straight"
    once = subprocess.run(
        _cmd(base, corpus, straight), env=env, cwd=REPO, capture_output=True, text=True
    )
    assert once.returncode == 0, once.stderr
    assert json.loads((straight / "debias.json").read_text())["training"]["resumed_from_step"] == 0
    a, b = (
        load_file(str(killed / "model.safetensors")),
        load_file(str(straight / "model.safetensors")),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (
        json.loads((killed / "debias.json").read_text())["losses"]
        == json.loads((straight / "debias.json").read_text())["losses"]
    )


def test_bad_input_is_refused_and_nothing_is_touched(setup, tmp_path):
    base, corpus = setup
    runner = CliRunner()
    common = ["--model", str(base), "--corpus", str(corpus), "--steps", "2"]
    r = runner.invoke(app, ["debias", "--method", "scrub", *common, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--method 'scrub'" in r.output
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    r = runner.invoke(
        app, ["debias", "--method", "cda", *common, "--out", str(mine), "--overwrite"]
    )
    assert r.exit_code == 2 and "refusing to overwrite" in r.output
    assert (mine / "notes.txt").read_text() == "keep me"
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"he is a nurse .\n\xff\n")
    r = runner.invoke(
        app,
        [
            "debias",
            "--method",
            "cda",
            "--model",
            str(base),
            "--corpus",
            str(bad),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert r.exit_code == 2 and "bad.txt:2: not UTF-8" in r.output
    r = runner.invoke(
        app, ["debias", "--method", "cda", *common, "--out", str(tmp_path / "o"), "--axis", "age"]
    )
    assert r.exit_code == 2 and "no word-pair list for axis 'age'" in r.output
    r = runner.invoke(
        app,
        [
            "debias",
            "--method",
            "cda",
            "--model",
            str(tmp_path / "nope"),
            "--corpus",
            str(corpus),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert r.exit_code == 1 and "does not exist" in r.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.resume").exists()


def test_a_resume_folder_of_another_job_is_not_used(setup, tmp_path):
    base, corpus = setup
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    resume = tmp_path / "o.resume"
    resume.mkdir()
    (resume / "state.pt").write_text("not mine")
    r = CliRunner().invoke(
        app,
        [
            "debias",
            "--method",
            "cda",
            "--model",
            str(base),
            "--corpus",
            str(corpus),
            "--out",
            str(out),
            "--steps",
            "2",
            "--restart",
        ],
    )
    assert r.exit_code == 2 and "did not write" in r.output
    assert (resume / "state.pt").read_text() == "not mine"
    del env


def test_plain_progress_lines_have_an_eta(capsys):
    now = [0.0]
    update = plain_progress(every=30, clock=lambda: now[0])
    for step in range(1, 101):
        now[0] = step * 2.0
        update(step, 100, 1.5)
    lines = capsys.readouterr().err.strip().splitlines()
    assert 3 <= len(lines) <= 8  # every 30 s of 200 s, and the last step
    assert lines[0].startswith("debias: step 15/100 (15%) loss 1.5000 · 2.00 s/step · ETA 2m50s")
    assert lines[-1].startswith("debias: step 100/100 (100%)")


def test_debias_is_a_biasprobe_command_with_help():
    r = CliRunner().invoke(app, ["debias", "--help"])
    assert r.exit_code == 0 and "Usage" in r.output and "Example" in r.output
    assert "--method" in r.output and "--corpus" in r.output


def test_cda_on_a_three_group_axis_adds_two_twins_and_says_so(setup, tmp_path):
    base, _ = setup
    corpus = tmp_path / "religion.txt"
    corpus.write_text(
        "The rabbi spoke at the synagogue. A man worked there.\n"
        "Muslims and Christians met today.\nNothing religious here.\n",
        encoding="utf-8",
    )
    r = CliRunner().invoke(
        app,
        [
            "debias", "--method", "cda", "--axis", "religion", "--model", str(base),
            "--corpus", str(corpus), "--out", str(tmp_path / "rel"), "--steps", "3",
            "--batch-size", "4", "--max-length", "16", "--seed", "1", "-q",
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    out = tmp_path / "rel"
    info = json.loads((out / "debias.json").read_text())
    # 2 of 4 sentences hold a religion word ("he"/"man" are not words of this axis)
    assert info["cda"]["sentences_with_terms"] == 2 and info["cda"]["twins_added"] == 4
    assert info["corpus"]["training_texts"] == 4 + 4
    assert info["word_list"]["groups"] == 3 and info["word_list"]["axis"] == "religion"
    assert (out / "cda-word-pairs.tsv").read_bytes() == (cda_dir() / "religion.tsv").read_bytes()
    card = (out / "README.md").read_text()
    assert "of 3 words (one per group) from biasprobe/data/cda/religion.tsv" in card
