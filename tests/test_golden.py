"""Same numbers before and after the one-engine refactor: every CSV of every golden case
(``tests/golden/cases.py``: each shipped probe set, fill-mask and counterfactual, and CrowS-Pairs
with both scorings) equals the file the main branch wrote before the refactor, cell for cell.

The goldens were written on one machine (``tests/golden/environment.json``); there the comparison
is exact (the same text in every cell). Columns are matched by name: the shared run-folder
schema puts the columns every kind has first, so a kind's own columns may move right. On another CPU or torch version float32 kernels may round
differently, so numbers are compared to a relative 1e-5 there and everything else exactly.
"""

from __future__ import annotations

import gzip
import io
import json
import platform
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import build_tiny_classifier
from golden.cases import ADDED_COLUMNS, GOLDEN, cases, neutral
from typer.testing import CliRunner

ENV = json.loads((GOLDEN / "environment.json").read_text())


def _same_machine() -> bool:
    import torch

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    return torch.__version__ == ENV["torch"] and cpu == ENV["processor"]


@pytest.fixture(scope="module")
def golden_models(tmp_path_factory, tiny_bert, tiny_bert_b, tiny_hf_classifier, real_vocab):
    cls_b = build_tiny_classifier(tmp_path_factory.mktemp("golden-cls-b"), real_vocab, seed=1)
    return {"bert": tiny_bert, "bert_b": tiny_bert_b, "cls": tiny_hf_classifier, "cls_b": cls_b}


def _read(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def _compare(name: str, file: str, old: pd.DataFrame, new: pd.DataFrame, exact: bool) -> None:
    missing = [c for c in old.columns if c not in new.columns]
    assert not missing, f"{name}/{file}: columns removed: {missing}"
    extra = [c for c in new.columns if c not in old.columns]
    undocumented = set(extra) - ADDED_COLUMNS.get(file, set())
    assert not undocumented, f"{name}/{file}: undocumented new columns {sorted(undocumented)}"
    assert len(new) == len(old), f"{name}/{file}: {len(new)} rows, golden {len(old)}"
    for col in old.columns:
        a, b = old[col].to_numpy(), new[col].to_numpy()
        if exact:
            bad = np.flatnonzero(a != b)
        else:
            fa = pd.to_numeric(old[col], errors="coerce").to_numpy()
            fb = pd.to_numeric(new[col], errors="coerce").to_numpy()
            num = ~np.isnan(fa) & ~np.isnan(fb)
            close = np.isclose(fa, fb, rtol=1e-5, atol=1e-8)
            bad = np.flatnonzero(np.where(num, ~close, a != b))
        assert bad.size == 0, (
            f"{name}/{file} column {col!r}: {bad.size} cell(s) differ, first at row {bad[0]}: "
            f"golden {a[bad[0]]!r}, now {b[bad[0]]!r}"
        )


@pytest.mark.parametrize(
    "name", list(cases({k: Path(k) for k in ("bert", "bert_b", "cls", "cls_b")}))
)
def test_every_csv_equals_the_golden(name, golden_models, tmp_path):
    from biasprobe.cli import app

    args = cases(golden_models)[name]
    out = tmp_path / name
    result = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    golden_files = sorted(p.name[: -len(".gz")] for p in (GOLDEN / name).glob("*.csv.gz"))
    assert golden_files, f"no golden files for {name}"
    exact = _same_machine()
    for file in golden_files:
        with gzip.open(GOLDEN / name / f"{file}.gz", "rt", encoding="utf-8") as f:
            old = _read(f.read())
        assert (out / file).is_file(), f"{name}: {file} is not written any more"
        new = _read(neutral((out / file).read_text(encoding="utf-8"), golden_models))
        _compare(name, file, old, new, exact)
