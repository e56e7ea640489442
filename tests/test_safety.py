"""Data safety (issue 8): never delete or overwrite what biasprobe did not write, never report a
false zero, survive kills, read only inside a run folder; option checks and terminal safety."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import biasprobe
from biasprobe import fsio
from biasprobe.cli import app, safe_text
from biasprobe.errors import ModelLoadError, RunFolderError, VocabularyError
from biasprobe.probes import load_probe_set
from biasprobe.results import load_run

REPO = Path(__file__).resolve().parent.parent
PAIR_NAMES = REPO / "probes" / "pair-names.yaml"
RACE = REPO / "probes" / "race.yaml"
RECORDED = "recorded:bert-large-uncased-whole-word-masking"
runner = CliRunner()

PROBE = """name: t
version: 1
description: test
source: test
orientation: {{minoritized: women, normative: men}}
pairs:
  - id: works
    template: "{template}"
    groups: [women, men]
"""


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def recorded_run(out: Path, *extra: object):
    return invoke("run", PAIR_NAMES, "-m", RECORDED, "-x", "cpr-*", "-q", "-o", out, *extra)


# ------------------------------------------------------------------ --overwrite and ownership


def test_overwrite_never_deletes_a_users_folder_with_results_json(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "results.json").write_text('{"accuracy": 0.93}')
    (home / "thesis.tex").write_text("thesis")
    res = recorded_run(home, "--overwrite")
    assert res.exit_code == 2, res.output
    assert "refusing to overwrite" in res.output and str(home) in res.output
    assert "results.json, thesis.tex" in res.output
    assert (home / "thesis.tex").read_text() == "thesis"
    assert json.loads((home / "results.json").read_text()) == {"accuracy": 0.93}


def test_overwrite_cwd_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    res = recorded_run(Path("."), "--overwrite")
    assert res.exit_code == 2 and "refusing to overwrite ." in res.output
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_run_folder_with_report_stays_owned_and_foreign_files_block_overwrite(tmp_path):
    out = tmp_path / "run"
    assert recorded_run(out, "--html").exit_code == 0
    manifest = fsio.read_manifest(out)
    assert manifest is not None and manifest["kind"] == "run"
    assert "report.html" in manifest["files"] and "results.json" in manifest["files"]
    assert sorted(manifest["files"]) == fsio.list_files(out)
    assert fsio.is_biasprobe_report(out / "report.html")
    # biasprobe's own folder (with its report) is replaced
    res = recorded_run(out, "--html", "--overwrite")
    assert res.exit_code == 0, res.output
    # ... but not once a user put a file in it: the message names the folder and the file
    (out / "my-notes.md").write_text("mine")
    res = recorded_run(out, "--overwrite")
    assert res.exit_code == 2
    assert str(out) in res.output and "my-notes.md" in res.output
    assert (out / "my-notes.md").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging left behind


def test_recording_folders_carry_a_manifest(tmp_path):
    out = tmp_path / "run"
    assert recorded_run(out, "--store", "full").exit_code == 0
    rec = tmp_path / "rec"
    res = invoke("record", out, "-o", rec)
    assert res.exit_code == 0, res.output
    manifest = fsio.read_manifest(rec)
    assert manifest["kind"] == "recording"
    assert sorted(manifest["files"]) == fsio.list_files(rec)


def test_report_overwrites_only_biasprobes_reports(tmp_path):
    out = tmp_path / "run"
    assert recorded_run(out).exit_code == 0
    # never a run's results.json
    before = (out / "results.json").read_bytes()
    res = invoke("report", out, "-o", out / "results.json")
    assert res.exit_code == 2 and "refusing to overwrite" in res.output
    assert (out / "results.json").read_bytes() == before
    # never a user's own page
    page = tmp_path / "index.html"
    page.write_text("<html>my page</html>")
    res = invoke("report", out, "-o", page)
    assert res.exit_code == 2 and "is not an HTML report that biasprobe wrote" in res.output
    assert page.read_text() == "<html>my page</html>"
    # a biasprobe report is replaced
    target = tmp_path / "r.html"
    assert invoke("report", out, "-o", target).exit_code == 0
    assert fsio.REPORT_MARKER in target.read_text(encoding="utf-8")
    assert invoke("report", out, "-o", target).exit_code == 0
    # a report written into the run folder keeps it owned
    assert invoke("report", out, "-o", out / "extra.html").exit_code == 0
    assert fsio.foreign_files(out, ["run"]) == []


# ------------------------------------------------------------------------ tokenizer checks


def _copy_without_tokenizer(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (dst / name).unlink(missing_ok=True)
    return dst


def test_checkpoint_without_tokenizer_files_is_refused(tiny_bert, tmp_path):
    ckpt = _copy_without_tokenizer(tiny_bert, tmp_path / "ckpt")
    res = invoke("run", RACE, "-m", ckpt, "-q", "-o", tmp_path / "o")
    assert res.exit_code == 1
    assert "has no tokenizer files" in res.output and str(ckpt) in res.output
    assert not (tmp_path / "o").exists()


def test_tokenizer_of_another_size_is_refused(tiny_bert, tmp_path):
    ckpt = _copy_without_tokenizer(tiny_bert, tmp_path / "ckpt")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "most", "men", "are", "not", "."]
    (ckpt / "vocab.txt").write_text("\n".join(words) + "\n")
    with pytest.raises(ModelLoadError) as info:
        biasprobe.load_backend(str(ckpt), device="cpu")
    msg = str(info.value)
    assert "10 tokens" in msg and "30522 rows" in msg and str(ckpt) in msg
    assert "tokenizer.json" in msg  # the missing files are named


def test_group_word_that_becomes_unk_is_an_error(tiny_bert, tmp_path):
    probe = tmp_path / "p.yaml"
    probe.write_text(PROBE.format(template="The [🦜|man] works as a [MASK]."))
    res = invoke("run", probe, "-m", tiny_bert, "-q", "-o", tmp_path / "o")
    assert res.exit_code == 2, res.output
    assert "'🦜'" in res.output and "unknown token" in res.output and "works" in res.output


def test_pair_with_identical_token_ids_is_an_error(tiny_bert, tmp_path):
    # the uncased tokenizer lower-cases: both sides are the same input
    probe = tmp_path / "p.yaml"
    probe.write_text(PROBE.format(template="The [MAN|man] works as a [MASK]."))
    with pytest.raises(VocabularyError, match="'works'.*identical token ids"):
        biasprobe.run(load_probe_set(probe), [str(tiny_bert)], device="cpu")


# --------------------------------------------------------------------------- kill safety

_SLOW = textwrap.dedent(
    """
    import sys, time
    import biasprobe.runfolders.fillmask as r
    orig = r.save_store
    def slow(*args):
        entry = orig(*args)
        print("WRITING", flush=True)
        time.sleep(60)
        return entry
    r.save_store = slow
    from biasprobe.cli import main
    sys.argv = ["biasprobe", *sys.argv[1:]]
    main()
    """
)


def _start_slow_run(out: Path) -> subprocess.Popen:
    args = ["run", str(PAIR_NAMES), "-m", RECORDED, "-x", "cpr-*", "-q", "-o", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.strip() == "WRITING", proc.stderr.read()
    return proc


def _staging(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(".") and ".tmp-" in p.name]


@pytest.mark.parametrize(
    ("signals", "code", "word"),
    [([signal.SIGTERM], 143, "terminated"), ([signal.SIGINT, signal.SIGINT], 130, "interrupted")],
)
def test_sigterm_and_double_ctrl_c_clean_up(tmp_path, signals, code, word):
    proc = _start_slow_run(tmp_path / "run")
    assert len(_staging(tmp_path)) == 1
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(0.05)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.startswith(f"error: {word}") and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_stale_staging_of_a_killed_run_is_removed_by_the_next_run(tmp_path):
    proc = _start_slow_run(tmp_path / "run")
    proc.kill()  # SIGKILL: no cleanup possible
    proc.wait(timeout=30)
    stale = _staging(tmp_path)
    assert len(stale) == 1 and (stale[0] / fsio.STAGING_MARKER).is_file()
    assert recorded_run(tmp_path / "next").exit_code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["next"]


# ------------------------------------------------------------- report reads only its folder


def test_report_refuses_files_outside_the_run_folder(tmp_path):
    out = tmp_path / "run"
    assert recorded_run(out).exit_code == 0
    secret = tmp_path / "secret.csv"
    shutil.copy(out / "topk.csv", secret)
    meta = json.loads((out / "results.json").read_text())
    meta["files"]["topk"] = str(secret)
    (out / "results.json").write_text(json.dumps(meta))
    with pytest.raises(RunFolderError, match="outside the run folder"):
        load_run(out)
    res = invoke("report", out, "-o", tmp_path / "r.html")
    assert res.exit_code == 2 and "outside the run folder" in res.output
    # the same through a symlink inside the folder, and through ../
    (out / "link.csv").symlink_to(secret)
    for rel in ("link.csv", "../secret.csv"):
        meta["files"]["topk"] = rel
        (out / "results.json").write_text(json.dumps(meta))
        with pytest.raises(RunFolderError, match="outside the run folder"):
            load_run(out)
    # results.json itself may not be a link to a file elsewhere
    elsewhere = tmp_path / "elsewhere.json"
    (out / "results.json").rename(elsewhere)
    (out / "results.json").symlink_to(elsewhere)
    with pytest.raises(RunFolderError, match="outside the run folder"):
        load_run(out)


# ----------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--seed", "-1", "--seed must be from 0 to 4,294,967,295, got -1"),
        ("--seed", str(2**64), "--seed must be from 0"),
        ("--bootstrap", "100000000", "--bootstrap must be from 100 to 100,000"),
        ("-k", "0", "--top-k must be at least 1, got 0"),
        ("--batch-size", "0", "--batch-size must be at least 1, got 0"),
    ],
)
def test_bad_option_values_give_the_error_line(tmp_path, option, value, expected):
    res = recorded_run(tmp_path / "o", option, value)
    assert res.exit_code == 2, res.output
    assert res.output.startswith(f"error: {expected}"), res.output
    assert "╭" not in res.output  # no click box


def test_top_k_larger_than_the_vocabulary_is_an_error(tmp_path):
    res = recorded_run(tmp_path / "o", "-k", "999999")
    assert res.exit_code == 2
    assert "top-k 999999 (--top-k" in res.output and "30522 tokens" in res.output
    assert not (tmp_path / "o").exists()


def test_same_folder_twice_is_a_duplicate(tiny_bert, tmp_path):
    res = invoke("run", RACE, "-m", tiny_bert, "-m", f"{tiny_bert}/", "-q", "-o", tmp_path / "o")
    assert res.exit_code == 2 and "model given twice" in res.output


def test_every_model_is_checked_before_the_first_is_scored(tiny_bert, tmp_path, monkeypatch):
    import biasprobe.tasks.fillmask as runner_mod

    calls = []
    monkeypatch.setattr(runner_mod, "score_model", lambda *a, **k: calls.append(a))
    res = invoke("run", RACE, "-m", tiny_bert, "-m", tmp_path / "typo", "-q")
    assert res.exit_code == 1 and "typo does not exist" in res.output
    assert calls == []


def test_default_output_folder_is_checked_up_front(tmp_path, monkeypatch):
    import biasprobe.runner as runner_mod

    monkeypatch.chdir(tmp_path)
    Path("reports").write_text("not a folder")
    monkeypatch.setattr(runner_mod, "run", lambda *a, **k: pytest.fail("ran the models"))
    res = invoke("run", PAIR_NAMES, "-m", RECORDED, "-q")
    assert res.exit_code == 1
    assert "cannot write the default run folder reports/pair-names" in res.output
    assert "reports is not a writable folder" in res.output


def test_validate_checks_every_file_even_after_an_unexpected_failure(tmp_path, monkeypatch):
    import biasprobe.probes as probes_mod

    real = probes_mod.load_probe_set

    def flaky(path):
        if Path(path).name == "a.yaml":
            raise RecursionError("boom")
        return real(path)

    monkeypatch.setattr(probes_mod, "load_probe_set", flaky)
    a = tmp_path / "a.yaml"
    a.write_text("x: 1\n")
    res = invoke("validate", a, RACE)
    assert res.exit_code == 2
    assert "a.yaml: internal error (RecursionError: boom)" in res.output
    assert f"{RACE}: ok" in res.output


# --------------------------------------------------------------------- terminal safety


def test_control_characters_are_neutralised():
    assert safe_text("a\x1b]2;TITLE\x07b\x9bc") == "a\\x1b]2;TITLE\\x07b\\x9bc"
    assert safe_text("x\ny", keep_newlines=True) == "x\ny"
    assert safe_text("x\ny") == "x\\x0ay"


def test_tables_and_errors_print_no_control_characters(tmp_path):
    import pandas as pd

    from biasprobe.views.terminal import print_topk_tables

    class Fake:
        topk = pd.DataFrame(
            [
                {
                    "model": "m\x1b[31m",
                    "pair_id": "p\x07",
                    "side": side,
                    "group": "g\x1b]2;T\x07",
                    "role": "normative",
                    "sentence": "s\x9d",
                    "rank": 1,
                    "token": "tok\x1b[2J",
                    "logprob": -1.0,
                }
                for side in "AB"
            ]
        )

    from rich.console import Console

    console = Console(record=True, width=200, file=open(os.devnull, "w"))  # noqa: SIM115
    import biasprobe.cli as cli_mod

    orig = cli_mod.__dict__.get("Console")
    try:
        import rich.console

        real = rich.console.Console
        rich.console.Console = lambda *a, **k: console
        print_topk_tables(Fake())
    finally:
        rich.console.Console = real
        assert orig is None
    text = console.export_text()
    assert "\\x1b[2J" in text and "\\x07" in text
    assert not any(ch in text for ch in "\x1b\x07\x9d")
    probe = tmp_path / "p.yaml"
    probe.write_text("name: t\x1b]2;X\x07\n")
    res = invoke("validate", probe)
    assert "\x1b" not in res.output and "\x07" not in res.output


# ------------------------------------------------------------------------------ one home


def test_recorded_path_never_imports_torch(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        import biasprobe
        from biasprobe.cli import main
        probes = biasprobe.load_probe_set({str(PAIR_NAMES)!r})
        r = biasprobe.run(probes, [{RECORDED!r}], exclude=["cpr-*"], device="cpu")
        r.save({str(tmp_path / "run")!r})
        biasprobe.load_run({str(tmp_path / "run")!r})
        assert "torch" not in sys.modules, "torch imported"
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_one_rank_rule():
    from biasprobe import scores
    from biasprobe.report import figures

    assert figures.full_ranks is scores.full_ranks


def test_figure_export_never_replaces_a_users_file(tmp_path, monkeypatch):
    import report_fixtures as rf

    from biasprobe.report import export_figures

    run = rf.make_tiny_run([("p", ("a", "b"), ("a [MASK].", "b [MASK]."))], ["w"] * 30)
    figs = tmp_path / "figs"
    figs.mkdir()
    mine = figs / f"p__{run.models[0]}.png"
    mine.write_bytes(b"my figure")
    with pytest.raises(fsio.NotOwnedError, match="biasprobe did not write them"):
        export_figures([run], figs, "png")
    assert mine.read_bytes() == b"my figure"
    # a run folder is not a figure folder
    out = tmp_path / "run"
    assert recorded_run(out).exit_code == 0
    with pytest.raises(fsio.NotOwnedError, match="it is a biasprobe run folder"):
        export_figures([run], out, "png")
    # figures biasprobe wrote are listed in the manifest and replaced next time
    import biasprobe.report.export as export_mod

    written = []
    monkeypatch.setattr(export_mod, "_check_exporter", lambda: None)
    monkeypatch.setattr(
        export_mod,
        "_write_images",
        lambda figs_, paths, fmt, scale: [
            p.write_bytes(b"png") or written.append(p) for p in paths
        ],
    )
    new = tmp_path / "new"
    paths = export_figures([run], new, "png")
    assert fsio.read_manifest(new)["files"] == sorted(p.name for p in paths)
    assert export_figures([run], new, "png") == paths
