"""The wheel, installed into a fresh virtual environment, runs the README's quick start from an
empty folder: the shipped probe sets, the recorded outputs and the vocabulary are package data.

How it stays fast and offline: the wheel is built from a copy of the source (``pip wheel
--no-deps``, without build isolation when setuptools is importable here, so no index is asked;
with it otherwise, which needs PyPI), installed with ``--no-deps`` into a venv made with
``--without-pip`` (by this interpreter's pip, ``pip --python``), and the venv reaches the
dependencies (torch, transformers, …) through a ``.pth`` file listing this interpreter's
site-packages. A ``.pth`` line only adds a folder to ``sys.path`` (the ``.pth`` files inside it,
such as an editable install's finder, are not run), and the venv's own site-packages comes
first, so ``import biasprobe`` in the venv is the wheel's copy: the test checks that.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.name for p in (REPO / "probes").glob("*.yaml"))
BERT_LARGE = "recorded:bert-large-uncased-whole-word-masking"

pytestmark = pytest.mark.slow


def _copy_source(dest: Path) -> Path:
    """The files a wheel is built from, without build/ or caches left in the checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "*.pyc")
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "biasprobe", dest / "biasprobe", symlinks=True, ignore=ignore)
    shutil.copytree(REPO / "probes", dest / "probes", symlinks=True, ignore=ignore)
    return dest


def quick_start_commands() -> list[list[str]]:
    """The commands of the README's quick-start block (``.venv/bin/biasprobe …``, continuation
    lines joined, comments dropped), split as a shell would."""
    import shlex

    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    block = block.replace("\\\n", " ")
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == ".venv/bin/biasprobe", line
            commands.append(["biasprobe", *words[1:]])
    return commands


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def _run(args: list, cwd: Path, env: dict[str, str], timeout: int = 300):
    res = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, f"{args}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    src = _copy_source(work / "src")
    out = work / "dist"
    args = [sys.executable, "-m", "pip", "wheel", src, "--no-deps", "-w", out, "-q"]
    if importlib.util.find_spec("setuptools") is not None:
        args.append("--no-build-isolation")  # offline: build with this interpreter's setuptools
    _run(args, work, _clean_env())
    (found,) = out.glob("biasprobe-*.whl")
    return found


def test_the_wheel_holds_the_probe_sets_recordings_and_vocab(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for probe in SHIPPED:
        assert f"biasprobe/data/probes/{probe}" in names, probe
    for model in ("bert-large-uncased-whole-word-masking", "zari-bert-cda"):
        for f in ("outputs.npz", "model.json", "vocab.txt"):
            assert f"biasprobe/data/recorded/{model}/{f}" in names
    assert "biasprobe/data/vocab/bert-base-uncased/vocab.txt" in names
    # the packaged copy is the repository's file, byte for byte
    with zipfile.ZipFile(wheel) as z:
        for probe in SHIPPED:
            packaged = z.read(f"biasprobe/data/probes/{probe}")
            assert packaged == (REPO / "probes" / probe).read_bytes(), probe


def test_quick_start_from_an_empty_folder_after_installing_the_wheel(wheel, tmp_path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, _clean_env())
    py = venv / "bin" / "python"
    env = _clean_env(BIASPROBE_CACHE_DIR=str(tmp_path / "cache"), COLUMNS="100")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            py,
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            wheel,
        ],
        tmp_path,
        env,
    )
    purelib = _run(
        [py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path, env
    ).stdout.strip()
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib) / "biasprobe-test-deps.pth").write_text("\n".join(deps) + "\n")

    empty = tmp_path / "empty"
    empty.mkdir()
    where = _run([py, "-c", "import biasprobe; print(biasprobe.__file__)"], empty, env).stdout
    assert Path(where.strip()).is_relative_to(venv), where  # the wheel's copy, not the checkout

    exe = venv / "bin" / "biasprobe"
    listed = _run([exe, "list"], empty, env).stdout
    for probe in SHIPPED:
        assert Path(probe).stem in listed
    assert "pair-names" in listed and "8 pairs" in listed

    # the README's quick start, every command as written there (the venv's biasprobe)
    commands = quick_start_commands()
    assert len(commands) == 3 and commands[1][:3] == ["biasprobe", "run", "pair-names"]
    outputs = [_run([exe, *cmd[1:]], empty, env).stdout for cmd in commands]
    assert "jim-jane" in outputs[1] and "wrote reports/demo" in outputs[1]
    assert "cpr-doctor-nurse" in outputs[2]
    assert (empty / "reports" / "demo" / "report.html").is_file()
    installed = pd.read_csv(empty / "reports" / "demo" / "scores.csv")

    # the same run from the checkout, in this process: the installed package gives the same
    from biasprobe.probes import load_probe_set
    from biasprobe.runner import run

    probe_set = load_probe_set(REPO / "probes" / "pair-names.yaml")
    here = run(probe_set, [BERT_LARGE], exclude=["cpr-*"], n_bootstrap=2000, cache=False)
    assert list(installed["pair_id"]) == list(here.scores["pair_id"])
    for column in ("jaccard_distance", "rbo_distance", "js_divergence"):
        assert installed[column].tolist() == pytest.approx(here.scores[column].tolist(), abs=1e-9)
    # nothing was written into the empty folder but the run folders under reports/
    assert [p.name for p in empty.iterdir()] == ["reports"]
    assert len(list((empty / "reports").iterdir())) == 2
