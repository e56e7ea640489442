"""Output paths under concurrent change (issue 17): what appears at ``--out`` while a run writes
is never deleted, a second writer to the same ``--out`` fails clearly, a page quoting the
report marker is not a report, temporary files of killed writes are swept, and a refusal does
not walk a whole file system."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biasprobe import fsio
from biasprobe.cli import app
from biasprobe.errors import OutputError
from biasprobe.runfolder import save_run_folder

REPO = Path(__file__).resolve().parent.parent
PAIR_NAMES = REPO / "probes" / "pair-names.yaml"
RECORDED = "recorded:bert-large-uncased-whole-word-masking"
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def recorded_run(out: Path, *extra: object):
    return invoke("run", PAIR_NAMES, "-m", RECORDED, "-x", "cpr-*", "-q", "-o", out, *extra)


def save(out: Path, write, *, overwrite: bool = False, run_id: str = "new") -> Path:
    """A run folder written by biasprobe's one folder writer (``write(tmp)`` fills it)."""
    return save_run_folder(
        out, {"run_id": run_id}, write, kind="run", what="run folder", overwrite=overwrite
    )


def scores(text: str):
    return lambda tmp: (tmp / "scores.csv").write_text(text, encoding="utf-8")


@pytest.fixture(params=["renameat2", "portable"])
def mover(request, monkeypatch):
    """Each test runs with renameat2 (Linux) and with the portable fallback."""
    if request.param == "portable":
        monkeypatch.setattr(fsio, "_RENAMEAT2", [None])
    elif fsio._renameat2_fn() is None:
        pytest.skip("renameat2 is not available here")
    return request.param


def hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# ----------------------------------------------------------------- item 2: the final rename


def test_a_folder_appearing_at_out_during_the_write_is_never_deleted(tmp_path, mover):
    out = tmp_path / "out"

    def write(tmp: Path) -> None:  # the user creates out/thesis.txt while the run writes
        (tmp / "scores.csv").write_text("new", encoding="utf-8")
        out.mkdir()
        (out / "thesis.txt").write_text("my thesis", encoding="utf-8")

    with pytest.raises(fsio.OutputChangedError, match="appeared while this run was writing"):
        save(out, write)
    assert sorted(p.name for p in out.iterdir()) == ["thesis.txt"]
    assert (out / "thesis.txt").read_text(encoding="utf-8") == "my thesis"
    assert hidden(tmp_path) == []  # the staging folder is gone, nothing else touched


def test_a_foreign_file_put_into_a_biasprobe_folder_during_an_overwrite_stays(tmp_path, mover):
    out = tmp_path / "out"
    save(out, scores("first"), run_id="first")

    def write(tmp: Path) -> None:
        (tmp / "scores.csv").write_text("second", encoding="utf-8")
        (out / "thesis.txt").write_text("my thesis", encoding="utf-8")

    with pytest.raises(fsio.NotOwnedError, match="thesis.txt"):
        save(out, write, overwrite=True)
    assert (out / "thesis.txt").read_text(encoding="utf-8") == "my thesis"
    assert (out / "scores.csv").read_text(encoding="utf-8") == "first"
    assert fsio.read_manifest(out)["id"] == "first"
    assert hidden(tmp_path) == []


def test_a_second_writer_without_overwrite_fails_and_the_first_stays(tmp_path, mover):
    out = tmp_path / "out"

    def write(tmp: Path) -> None:  # another run finishes first, while this one writes
        (tmp / "scores.csv").write_text("second", encoding="utf-8")
        save(out, scores("first"), run_id="first")

    with pytest.raises(fsio.OutputChangedError) as err:
        save(out, write)
    assert str(out) in str(err.value) and "nothing was saved" in str(err.value)
    assert (out / "scores.csv").read_text(encoding="utf-8") == "first"
    assert fsio.read_manifest(out)["id"] == "first"
    assert hidden(tmp_path) == []


def test_overwrite_replaces_biasprobes_folder_and_an_empty_one(tmp_path, mover):
    out = tmp_path / "out"
    save(out, scores("first"), run_id="first")
    save(out, scores("second"), overwrite=True, run_id="second")
    assert (out / "scores.csv").read_text(encoding="utf-8") == "second"
    assert fsio.read_manifest(out)["id"] == "second"
    empty = tmp_path / "empty"
    empty.mkdir()
    save(empty, scores("x"))
    assert (empty / "scores.csv").read_text(encoding="utf-8") == "x"
    assert hidden(tmp_path) == []


def test_a_file_slipping_in_between_the_last_check_and_the_swap_is_swapped_back(
    tmp_path, monkeypatch
):
    """The window between the ownership check and the atomic exchange: the swapped-out
    folder is checked again, and put back when it holds a foreign file."""
    if fsio._renameat2_fn() is None:
        pytest.skip("renameat2 is not available here")
    out = tmp_path / "out"
    save(out, scores("first"), run_id="first")
    real = fsio._renameat2

    def racing(src: Path, dst: Path, flags: int) -> bool:
        if flags == fsio.RENAME_EXCHANGE and not (out / "thesis.txt").exists():
            (out / "thesis.txt").write_text("my thesis", encoding="utf-8")
        return real(src, dst, flags)

    monkeypatch.setattr(fsio, "_renameat2", racing)
    with pytest.raises(fsio.NotOwnedError, match="thesis.txt"):
        save(out, scores("second"), overwrite=True)
    assert (out / "thesis.txt").read_text(encoding="utf-8") == "my thesis"
    assert (out / "scores.csv").read_text(encoding="utf-8") == "first"
    assert hidden(tmp_path) == []


def test_a_file_appearing_at_out_is_not_replaced(tmp_path, mover):
    out = tmp_path / "out"

    def write(tmp: Path) -> None:
        (tmp / "scores.csv").write_text("new", encoding="utf-8")
        out.write_text("a file", encoding="utf-8")

    with pytest.raises(OutputError):
        save(out, write, overwrite=True)
    assert out.read_text(encoding="utf-8") == "a file"


_RACER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from biasprobe import fsio
    from biasprobe.cli import app

    barrier = Path(sys.argv[1])
    real = fsio.replace_dir

    def replace_dir(tmp, out, **kw):
        # both runs have passed their checks and written their folders: only now may either
        # move its folder into place
        (barrier / str(os.getpid())).touch()
        give_up = time.monotonic() + 240  # should the other process have failed early
        while len(list(barrier.iterdir())) < 2 and time.monotonic() < give_up:
            time.sleep(0.02)
        return real(tmp, out, **kw)

    fsio.replace_dir = replace_dir
    sys.argv = ["biasprobe", *sys.argv[2:]]
    app()
    """
)


def test_two_concurrent_runs_to_the_same_out_one_fails_clearly(tmp_path):
    """Two ``biasprobe run -o same`` processes, both past their output check before either
    finishes (held at a barrier just before the final rename): exactly one writes the folder,
    the other exits non-zero naming it, and the winner's folder is complete."""
    out = tmp_path / "out-same"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    cmd = [sys.executable, "-c", _RACER, str(barrier), "run", str(PAIR_NAMES), "-m", RECORDED]
    cmd += ["-x", "cpr-*", "-q", "-o", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    try:
        results = [(p.wait(timeout=400), *(s.decode() for s in p.communicate())) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert sorted(p.name for p in barrier.iterdir()) == sorted(str(p.pid) for p in procs)
    codes = sorted(r[0] for r in results)
    assert codes[0] == 0 and codes[1] != 0, results
    winner = next(r for r in results if r[0] == 0)
    loser = next(r for r in results if r[0] != 0)
    assert f"wrote {out}" in winner[1]
    assert "wrote" not in loser[1] and "Traceback" not in loser[2]
    assert loser[2].startswith("error: ") and str(out) in loser[2]
    assert "appeared while this run was writing" in loser[2]
    manifest = fsio.read_manifest(out)
    assert manifest is not None and fsio.foreign_files(out, ["run"]) == []
    assert sorted(manifest["files"]) == fsio.list_files(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["barrier", "out-same"]


def test_two_plain_concurrent_runs_to_the_same_out(tmp_path):
    """The same as a user starts them, with no synchronisation: whichever way they interleave,
    one writes the folder and the other fails with a clear message (at its first check or at
    the final rename), and the folder is one complete run."""
    out = tmp_path / "out-same"
    cmd = [sys.executable, "-m", "biasprobe", "run", str(PAIR_NAMES), "-m", RECORDED]
    cmd += ["-x", "cpr-*", "-q", "-o", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=400), *(s.decode() for s in p.communicate())) for p in procs]
    assert sorted(r[0] for r in results)[0] == 0 and sorted(r[0] for r in results)[1] != 0, results
    loser = next(r for r in results if r[0] != 0)
    assert loser[2].startswith("error: output folder ") and str(out) in loser[2]
    assert "already exists" in loser[2] or "appeared while this run was writing" in loser[2]
    manifest = fsio.read_manifest(out)
    assert manifest is not None and sorted(manifest["files"]) == fsio.list_files(out)
    assert [p.name for p in tmp_path.iterdir()] == ["out-same"]


def test_cli_out_folder_created_by_the_user_during_the_run_is_kept(tmp_path, monkeypatch):
    """``biasprobe run -o out`` while the user creates out/thesis.txt: exit non-zero, kept."""
    from biasprobe import runfolder

    out = tmp_path / "out"
    real = runfolder.fsio.staging_dir

    from contextlib import contextmanager

    @contextmanager
    def staging(target):
        with real(target) as tmp:
            out.mkdir()
            (out / "thesis.txt").write_text("my thesis", encoding="utf-8")
            yield tmp

    monkeypatch.setattr(runfolder.fsio, "staging_dir", staging)
    res = recorded_run(out)
    assert res.exit_code != 0 and f"wrote {out}" not in res.output
    assert "appeared while this run was writing" in res.output
    assert (out / "thesis.txt").read_text(encoding="utf-8") == "my thesis"
    assert sorted(p.name for p in out.iterdir()) == ["thesis.txt"]


# ------------------------------------------------------------- item 5: what is a report


def test_a_page_quoting_the_generator_marker_is_not_replaced(tmp_path):
    out = tmp_path / "run"
    assert recorded_run(out).exit_code == 0
    meta = '<meta name="generator" content="biasprobe 0.1.0">'
    pages = {
        "comment.html": f"<!-- {meta} -->\n<!DOCTYPE html>\n<html><head></head>my notes</html>\n",
        "text.html": f"<!DOCTYPE html>\n<html><head></head><body><pre>{meta}</pre></body></html>\n",
        "late.html": (
            f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<title>mine</title>\n{meta}\n'
            "</head><body>mine</body></html>\n"
        ),
        "cut.html": f'<!DOCTYPE html>\n<html lang="en">\n<head>\n{meta}\n<title>x</title>\n',
    }
    for name, text in pages.items():
        page = tmp_path / name
        page.write_text(text, encoding="utf-8")
        assert not fsio.is_biasprobe_report(page), name
        res = invoke("report", out, "-o", page)
        assert res.exit_code == 2 and "refusing to overwrite" in res.output, name
        assert page.read_text(encoding="utf-8") == text, name
    # biasprobe's own reports are still recognised and replaced
    target = tmp_path / "r.html"
    assert invoke("report", out, "-o", target).exit_code == 0
    assert fsio.is_biasprobe_report(target)
    assert invoke("report", out, "-o", target).exit_code == 0


def test_every_report_writer_is_recognised():
    """The run report's page shell and the CrowS-Pairs report's header, as written today."""
    from biasprobe.report.page import page_shell

    page = page_shell("t", "<p>body</p>", None)
    crows = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f'{fsio.REPORT_MARKER} 0.1">'
        "<title>CrowS-Pairs</title></head><body></body></html>\n"
    )
    from biasprobe.report import crows as crows_report

    assert "<!doctype html><html lang='en'><head><meta charset='utf-8'>" in (
        Path(crows_report.__file__).read_text(encoding="utf-8")
    )
    for text in (page, crows):
        assert fsio._REPORT_HEAD.match(text.encode()) and fsio._REPORT_TAIL.search(text.encode())


# ------------------------------------------------------- item 10: temporary files of kills


_KILLED_WRITE = textwrap.dedent(
    """
    import os, sys, time
    from biasprobe import fsio
    from biasprobe.cli import app

    def stuck(src, dst):
        print("WRITING", flush=True)
        time.sleep(600)

    # the write hangs after its temporary file is complete, whichever final step it takes
    fsio.os.replace = fsio.os.link = stuck
    sys.argv = ["biasprobe", *sys.argv[1:]]
    app()
    """
)


def test_a_report_write_killed_midway_leaves_nothing_that_blocks_overwrite(tmp_path):
    out = tmp_path / "run"
    assert recorded_run(out).exit_code == 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", _KILLED_WRITE, "report", str(out), "-o", str(out / "x.html")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().decode().strip() == "WRITING", proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    left = [p.name for p in out.iterdir() if p.name.startswith(".x.html.")]
    assert len(left) == 1 and left[0].endswith(".tmp")
    # the process is gone: the next --overwrite sweeps its temporary file and goes ahead
    res = recorded_run(out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert not [p for p in out.iterdir() if p.name.startswith(".x.html.")]
    assert fsio.foreign_files(out, ["run"]) == []


def test_only_dead_writers_temporary_files_of_this_host_are_swept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = fsio._host_tag()
    other = "0" * 8 if host != "0" * 8 else "1" * 8
    names = {
        f".a.html.tmpfile-{dead.pid}-{host}-abc123.tmp": False,  # swept
        f".a.html.tmpfile-{os.getpid()}-{host}-abc123.tmp": True,  # a live writer's
        f".a.html.tmpfile-{dead.pid}-{other}-abc123.tmp": True,  # another host's
        ".a.html.k2j3h4.tmp": True,  # not named by biasprobe
        "a.html.tmpfile-1-x.tmp": True,
    }
    for name in names:
        (tmp_path / name).write_text("x")
    link = tmp_path / f".b.html.tmpfile-{dead.pid}-{host}-abc.tmp"
    link.symlink_to(tmp_path / "a.html.tmpfile-1-x.tmp")
    fsio.atomic_write_text(tmp_path / "a.html", "new")
    for name, kept in names.items():
        assert (tmp_path / name).exists() == kept, name
    assert link.is_symlink()
    assert (tmp_path / "a.html").read_text() == "new"


# ------------------------------------------------------ item 14: refusals stop walking early


def test_refusing_overwrite_does_not_walk_the_whole_folder(tmp_path, monkeypatch):
    big = tmp_path / "home"
    for i in range(300):
        (big / f"d{i:03d}").mkdir(parents=True)
        (big / f"d{i:03d}" / "f.txt").write_text("x")
    (big / "results.json").write_text("{}")
    visited = []
    real_walk = os.walk

    def walk(top, *a, **k):
        for step in real_walk(top, *a, **k):
            visited.append(step[0])
            yield step

    monkeypatch.setattr(fsio.os, "walk", walk)
    with pytest.raises(fsio.NotOwnedError) as err:
        fsio.check_output_folder(big, True)
    assert "and more" in str(err.value) and "results.json" in str(err.value)
    assert len(visited) <= fsio.SHOWN_FILES + 2, len(visited)
    # a folder with biasprobe's manifest and many foreign files: the same
    (big / fsio.MANIFEST).write_text(
        json.dumps({"tool": "biasprobe", "kind": "run", "id": "x", "files": ["results.json"]})
    )
    visited.clear()
    with pytest.raises(fsio.NotOwnedError, match="and more"):
        fsio.check_output_folder(big, True)
    assert len(visited) <= fsio.SHOWN_FILES + 2, len(visited)


def test_a_refused_overwrite_from_the_command_line_names_a_few_files(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    for i in range(20):
        (home / f"f{i:02d}.txt").write_text("x")
    res = recorded_run(home, "--overwrite")
    assert res.exit_code == 2 and "f00.txt, f01.txt" in res.output and "and more" in res.output
    assert len(list(home.iterdir())) == 20


# ------------------------------------------- single files: a report's final step re-checks


PAGE = (
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    '<meta name="generator" content="biasprobe 0.1">\n<title>{}</title>\n</head>\n'
    "<body></body>\n</html>\n"
)


def test_a_file_appearing_at_a_report_path_during_rendering_is_kept(tmp_path):
    """The report writers check the path, render (long), then write: a user's file created
    in between is never replaced by :func:`fsio.write_report` (``atomic_write_text``, which
    the writers call today, replaces it)."""
    out = tmp_path / "notes.html"
    fsio.check_output_file(out)  # the early check passes: nothing there yet
    out.write_text("my notes", encoding="utf-8")  # ... the user saves a file meanwhile
    with pytest.raises(fsio.NotOwnedError, match="refusing to overwrite"):
        fsio.write_report(out, PAGE.format("new"))
    assert out.read_text(encoding="utf-8") == "my notes"
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("portable", [False, True])
def test_write_report_creates_and_replaces_biasprobes_reports(tmp_path, monkeypatch, portable):
    if portable:  # no renameat2, no hard links
        monkeypatch.setattr(fsio, "_RENAMEAT2", [None])

        def no_link(src, dst):
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(fsio.os, "link", no_link)
    out = tmp_path / "r.html"
    fsio.write_report(out, PAGE.format("first"))
    assert "first" in out.read_text(encoding="utf-8") and fsio.is_biasprobe_report(out)
    fsio.write_report(out, PAGE.format("second"))
    assert "second" in out.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_a_users_file_swapped_in_just_before_the_exchange_is_put_back(tmp_path, monkeypatch):
    if fsio._renameat2_fn() is None:
        pytest.skip("renameat2 is not available here")
    out = tmp_path / "r.html"
    fsio.write_report(out, PAGE.format("first"))
    real = fsio._renameat2

    def racing(src: Path, dst: Path, flags: int) -> bool:
        if flags == fsio.RENAME_EXCHANGE and fsio.is_biasprobe_report(out):
            out.unlink()
            out.write_text("my notes", encoding="utf-8")
        return real(src, dst, flags)

    monkeypatch.setattr(fsio, "_renameat2", racing)
    with pytest.raises(fsio.NotOwnedError):
        fsio.write_report(out, PAGE.format("second"))
    assert out.read_text(encoding="utf-8") == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]
