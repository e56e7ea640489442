"""Progress where no terminal is (a batch job's log) and the tables in a real terminal.

* With stderr redirected to a file, ``biasprobe run`` (fill-mask and counterfactual sets),
  ``biasprobe crows`` and ``biasprobe sentiment train`` print plain progress lines: done/total,
  percentage, rate, elapsed time and ETA.
* A run served partly from the result cache says that it resumes, and how many pairs remain.
* In a pseudo-terminal (80 × 40), the downstream run's tables survive the live progress
  display: the screen, rebuilt from the bytes the command wrote by a small terminal emulator,
  holds every line of the tables as they render without a terminal.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(
    r"^progress: (?P<what>.+?): (?P<done>[\d,]+)/(?P<total>[\d,]+) \((?P<pct>\d+)%\), "
    r"[\d,.]+/s, elapsed \d+:\d\d:\d\d(?:, ETA \d+:\d\d:\d\d)?"
)

pytestmark = pytest.mark.slow


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), BIASPROBE_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("BIASPROBE_PROGRESS_INTERVAL", None)
    env.update(extra)
    return env


def _cli(args: list, tmp_path: Path, log: Path, **env: str) -> subprocess.CompletedProcess:
    """Run ``python -m biasprobe ARGS`` with stderr to ``log`` (not a terminal)."""
    with log.open("w") as err:
        res = subprocess.run(
            [sys.executable, "-m", "biasprobe", *map(str, args)],
            cwd=tmp_path,
            env=_env(tmp_path, **env),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            timeout=600,
        )
    assert res.returncode == 0, res.stdout + log.read_text()
    return res


def _progress_lines(log: Path) -> list[re.Match]:
    return [m for m in map(LINE.match, log.read_text().splitlines()) if m]


def _assert_moves(lines: list[re.Match], what: str) -> None:
    """Lines of one step: counts rise to the total, and an ETA is given before the end."""
    mine = [m for m in lines if m["what"].startswith(what)]
    assert mine, what
    done = [int(m["done"].replace(",", "")) for m in mine]
    total = int(mine[-1]["total"].replace(",", ""))
    assert done == sorted(done) and done[-1] == total
    assert any("ETA" in m.group(0) for m in mine), [m.group(0) for m in mine]


def test_fill_mask_run_logs_progress_and_says_it_resumes(tiny_bert, tmp_path):
    log = tmp_path / "first.log"
    # the first run computes the "model-card" pairs only: they go into the result cache
    _cli(["run", "gender", "-m", tiny_bert, "-p", "model-card*", "-o", "a", "-q"], tmp_path, log)
    assert "progress:" not in log.read_text()  # -q: nothing
    log = tmp_path / "second.log"
    res = _cli(["run", "gender", "-m", tiny_bert, "-o", "b", "--batch-size", "8"], tmp_path, log)
    text = log.read_text()
    _assert_moves(_progress_lines(log), "masked")
    assert re.search(r"^progress: load \S+: done in \d+:\d\d:\d\d$", text, re.M)
    import pandas as pd

    first = len(pd.read_csv(tmp_path / "a" / "scores.csv"))
    total = len(pd.read_csv(tmp_path / "b" / "scores.csv"))
    assert 0 < first < total
    assert (
        f"resuming {Path(tiny_bert).name}: {first} of {total} pairs from the result cache, "
        f"{total - first} to compute" in text
    ), text
    assert "Scores over the probe set" in res.stdout  # the tables go to stdout, untouched


def test_counterfactual_run_logs_progress(tiny_hf_classifier, tmp_path):
    log = tmp_path / "run.log"
    _cli(["run", "sentiment-gender", "-m", tiny_hf_classifier, "-o", "d", "-q"], tmp_path, log)
    assert _progress_lines(log) == []
    _cli(["run", "sentiment-gender", "-m", tiny_hf_classifier, "-o", "e"], tmp_path, log)
    _assert_moves(_progress_lines(log), "masked")


def test_crows_logs_progress(tiny_bert, tmp_path):
    log = tmp_path / "crows.log"
    args = ["crows", "-m", tiny_bert, "--scoring", "nangia", "--limit", "120", "-o", "c"]
    _cli(args, tmp_path, log)
    _assert_moves(_progress_lines(log), "scoring")


def test_sentiment_train_logs_progress_with_loss(tmp_path):
    from test_sentiment_safety import _config, _data

    log = tmp_path / "train.log"
    cfg, data = _config(tmp_path), _data(tmp_path)
    args = ["sentiment", "train", cfg, "--data", data, "--out", "run", "--max-steps", "8"]
    _cli(args, tmp_path, log)
    lines = _progress_lines(log)
    _assert_moves(lines, "bow")
    assert any(re.search(r"loss \d\.\d{4}", m.string) for m in lines), log.read_text()


def test_plain_progress_lines_every_fraction_or_interval() -> None:
    from biasprobe.cliutil import PlainProgress

    now = [0.0]
    out = io.StringIO()
    bar = PlainProgress(out, interval=30, fraction=0.1, clock=lambda: now[0])
    task = bar.add_task("masked m", total=1000)
    for done in range(0, 1001, 10):  # 1 item a second: 10% takes 100 s, so 30 s comes first
        now[0] = float(done)
        bar.update(task, completed=done)
    printed = out.getvalue().splitlines()
    assert printed[0] == "progress: masked m: 0/1,000 started"
    clock = [re.search(r"elapsed (\d+):(\d\d):(\d\d)", p).groups() for p in printed[1:]]
    times = [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s in clock]
    assert times == list(range(30, 1000, 30)) + [1000]  # every 30 s, and the end
    assert printed[1] == "progress: masked m: 30/1,000 (3%), 1.0/s, elapsed 0:00:30, ETA 0:16:10"
    assert printed[-1] == "progress: masked m: 1,000/1,000 (100%), 1.0/s, elapsed 0:16:40"
    # fast work: a line every 10%, however little time passed
    out2 = io.StringIO()
    fast = PlainProgress(out2, interval=30, fraction=0.1, clock=lambda: now[0])
    t = fast.add_task("x", total=100)
    for done in range(1, 101):
        now[0] = 1000 + done / 100
        fast.update(t, completed=done)
    dones = [int(re.search(r": (\d+)/100", line)[1]) for line in out2.getvalue().splitlines()]
    assert dones == [1, 11, 21, 31, 41, 51, 61, 71, 81, 91, 100]  # the first, each 10%, the end


# ------------------------------------------------------------------ a real terminal (pty)


class Screen:
    """Just enough of a VT100 to replay what rich writes: text, CR/LF, cursor up/down/column,
    erase in line and below, auto-wrap; colours and modes are ignored. Keeps the scrollback."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.lines: list[list[str]] = [[]]
        self.row = self.col = 0

    def _line(self) -> list[str]:
        while len(self.lines) <= self.row:
            self.lines.append([])
        return self.lines[self.row]

    def _top(self) -> int:
        return max(0, len(self.lines) - self.height)

    def feed(self, data: str) -> None:
        i = 0
        while i < len(data):
            c = data[i]
            if c == "\x1b":
                m = re.compile(r"\x1b\[([?\d;]*)([A-Za-z])|\x1b\][^\x07]*\x07|\x1b.").match(data, i)
                i = m.end()
                if m.group(2):
                    self._csi(m.group(1), m.group(2))
                continue
            i += 1
            if c == "\r":
                self.col = 0
            elif c == "\n":
                self.row += 1
                self._line()
            elif c == "\b":
                self.col = max(0, self.col - 1)
            elif c >= " ":
                if self.col >= self.width:  # deferred auto-wrap
                    self.row, self.col = self.row + 1, 0
                line = self._line()
                line.extend(" " * (self.col + 1 - len(line)))
                line[self.col] = c
                self.col += 1

    def _csi(self, params: str, op: str) -> None:
        if params.startswith("?"):
            return
        n = int(params.split(";")[0]) if params.split(";")[0] else None
        if op == "A":
            self.row = max(self._top(), self.row - (n or 1))
        elif op == "B":
            self.row += n or 1
            self._line()
        elif op == "G":
            self.col = (n or 1) - 1
        elif op == "K":
            line = self._line()
            if n == 2:
                line.clear()
            elif not n:
                del line[self.col :]
        elif op == "J" and not n:
            del self._line()[self.col :]
            del self.lines[self.row + 1 :]

    def text(self) -> list[str]:
        return ["".join(line).rstrip() for line in self.lines]


def _in_pty(args: list, tmp_path: Path, width: int = 80, height: int = 40) -> str:
    import fcntl
    import pty
    import struct
    import termios

    env = _env(tmp_path, COLUMNS=str(width), LINES=str(height), TERM="xterm-256color")
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "CI"):
        env.pop(name, None)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "biasprobe", *map(str, args)],
        cwd=tmp_path,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=600) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    os.close(master)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _expected_tables(run_dir: Path) -> list[str]:
    from rich.console import Console

    from biasprobe.downstream.run import load_downstream_run
    from biasprobe.views.terminal import print_downstream

    buf = io.StringIO()
    print_downstream(load_downstream_run(run_dir), Console(width=80, file=buf, highlight=False))
    return [line.rstrip() for line in buf.getvalue().splitlines()]


def test_downstream_tables_are_intact_in_a_terminal(tiny_hf_classifier, tmp_path):
    import shutil

    other = tmp_path / "clf-b"
    shutil.copytree(tiny_hf_classifier, other)
    # a second classifier: the same weights, so every table (the change from the base too)
    args = ["run", "sentiment-gender", "-m", tiny_hf_classifier, "-m", other, "-o", "d"]
    raw = _in_pty(args, tmp_path)
    screen = Screen(80, 40)
    screen.feed(raw)
    shown = screen.text()
    expected = _expected_tables(tmp_path / "d")
    assert any(line.startswith("Change from the base model") for line in expected)
    # every line of the tables, in order, and the bottom border of the last one
    pos = 0
    for line in expected:
        assert line in shown[pos:], (line, "\n".join(shown))
        pos = shown.index(line, pos) + 1
    assert expected[-1].startswith("└")
    assert not any("progress" in line or "/s" in line for line in shown[pos:])


def test_ctrl_c_says_the_same_command_resumes(tiny_bert, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import biasprobe.runner
    from biasprobe.cli import app

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(biasprobe.runner, "run", interrupted)
    res = CliRunner().invoke(app, ["run", "race", "-m", str(tiny_bert), "-o", tmp_path / "r"])
    assert res.exit_code == 130
    assert "the same command resumes where it stopped" in res.output
    assert not (tmp_path / "r").exists()
    # nothing to resume without the cache, or from a recording
    res = CliRunner().invoke(
        app, ["run", "race", "-m", str(tiny_bert), "--no-cache", "-o", tmp_path / "r"]
    )
    assert res.exit_code == 130 and "resumes" not in res.output
