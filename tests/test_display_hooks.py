"""RunResult's reprs and figures come from the view layer through biasprobe.display: the run
folder module imports no view, a plain repr stands in until the views are loaded, and the
package's lazy API loads them before handing out run / load_run / pair."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOLDEN_RUN = REPO / "tests" / "golden" / "runs" / "fill-mask"


def _python(code: str) -> str:
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_run_result_without_views_has_a_plain_repr_and_no_view_module():
    out = _python(
        "import sys\n"
        "from biasprobe.results import load_run\n"
        f"r = load_run({str(GOLDEN_RUN)!r})\n"
        "print(repr(r)); print(r._repr_html_()); print('biasprobe.notebook' in sys.modules)\n"
        "try:\n    r.scatter(r.scores['pair_id'].iloc[0])\n"
        "except LookupError as e:\n    print('LookupError', e)\n"
    )
    lines = out.splitlines()
    assert lines[0].startswith("<RunResult ") and "model(s)" in lines[0]
    assert lines[1:3] == ["None", "False"]
    assert lines[3].startswith("LookupError RunResult.scatter is drawn by biasprobe's notebook")


def test_the_lazy_api_loads_the_views_first():
    out = _python(
        "import biasprobe\n"
        f"r = biasprobe.load_run({str(GOLDEN_RUN)!r})\n"
        "import biasprobe.notebook as nb\n"
        "print(repr(r) == nb.run_result_repr(r)); print(r._repr_html_() == nb.run_result_html(r))\n"
    )
    assert out.split() == ["True", "True"]
