"""Write the golden CSVs (run from the repository root: ``python tests/golden/make_golden.py``).

Builds the tiny models exactly as ``tests/conftest.py`` does, runs every case of ``cases.py``
through the installed ``biasprobe`` command and copies every CSV of each run folder into
``tests/golden/<case>/`` (gzipped). Three whole run folders are also kept under
``tests/golden/runs/`` as examples of the run-folder format of that commit.
"""

from __future__ import annotations

import gzip
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from conftest import REAL_VOCAB, build_tiny_bert, build_tiny_classifier  # noqa: E402
from golden.cases import GOLDEN, cases, neutral  # noqa: E402

KEEP_RUNS = {"gender": "fill-mask", "sentiment-gender": "counterfactual", "crows-meade": "crows"}


def main() -> None:
    import torch

    tmp = Path(tempfile.mkdtemp())
    models = {
        "bert": build_tiny_bert(tmp / "bert", REAL_VOCAB),
        "bert_b": build_tiny_bert(tmp / "bert-b", REAL_VOCAB, seed=1),
        "cls": build_tiny_classifier(tmp / "cls", REAL_VOCAB),
        "cls_b": build_tiny_classifier(tmp / "cls-b", REAL_VOCAB, seed=1),
    }
    exe = Path(sys.executable).with_name("biasprobe")
    for name, args in cases(models).items():
        out = tmp / "runs" / name
        subprocess.run([str(exe), *args, "-o", str(out)], check=True)
        dest = GOLDEN / name
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for csv in sorted(out.glob("*.csv")):
            with gzip.GzipFile(dest / f"{csv.name}.gz", "wb", compresslevel=9, mtime=0) as f:
                f.write(neutral(csv.read_text(encoding="utf-8"), models).encode("utf-8"))
        if name in KEEP_RUNS:
            keep = GOLDEN / "runs" / KEEP_RUNS[name]
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(out, keep)
        print(name, sorted(p.name for p in dest.iterdir()))
    env = {
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": _cpu(),
        "commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip(),
    }
    (GOLDEN / "environment.json").write_text(json.dumps(env, indent=1) + "\n")
    shutil.rmtree(tmp)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
