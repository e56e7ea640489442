"""Every script in benchmarks/ still runs: each is executed as written (``python
benchmarks/NAME.py``), in its ``--smoke`` mode (tiny sizes), as a subprocess, and must exit 0
and print its comparison. The benchmarks' own figures come from their normal sizes; this only
keeps them from rotting (``bench_engine.py`` once crashed at its equality check)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (REPO / "benchmarks").glob("bench_*.py"))
#: What each script prints when it got to its end (its ratio or its table).
ENDS = {
    "bench_cache.py": "second run vs first",
    "bench_causal.py": "identical to 1e-5: True",
    "bench_crows.py": "identical outcomes: True",
    "bench_downstream.py": "max|Δ P(pos)|",
    "bench_engine.py": "top-5 identical for all 4 sentences: True",
    "bench_holistic.py": "identical to 1e-5: True",
    "bench_pll.py": "PLL and PLL-word-l2r identical to 1e-5: True",
    "bench_ray.py": "identical sentences tables: True",
    "bench_report.py": "write_report",
    "bench_scale.py": "GiB",
    "bench_sentiment_models.py": "attention ratio",
    "bench_sentiment_train.py": "ratio = our time",
    "bench_validation.py": "expansion-80GB",
}

pytestmark = pytest.mark.slow


def test_every_script_has_a_smoke_expectation() -> None:
    assert sorted(ENDS) == SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_in_smoke_mode(script: str, tmp_path: Path) -> None:
    if script == "bench_ray.py":
        pytest.importorskip("ray", reason="Ray is optional: pip install 'biasprobe[ray]'")
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONPATH=path, BIASPROBE_CACHE_DIR=str(tmp_path / "cache"))
    # Ray's sockets live under its temp folder, whose path must stay under 108 bytes.
    env.update(OMP_NUM_THREADS="1", TMPDIR=str(tmp_path), RAY_TMPDIR="/tmp")
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--smoke"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert ENDS[script] in res.stdout, res.stdout[-3000:]
