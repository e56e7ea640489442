"""The golden cases of the one-engine refactor: every shipped probe set (fill-mask and
counterfactual) and CrowS-Pairs (both scorings, a fixed subset), run from the command line on the
tiny random models the tests build. ``make_golden.py`` wrote their CSVs from the main branch
before the refactor (commit e24f328); ``tests/test_golden.py`` runs the same commands on the
current code and compares every CSV exactly (documented column additions allowed).
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent

FILL_MASK = ["gender", "kurita-gender", "pair-names", "race", "sexuality", "switched"]
COUNTERFACTUAL = [
    "sentiment-age",
    "sentiment-gender",
    "sentiment-race",
    "sentiment-religion",
    "sentiment-sexuality",
]
#: Columns added on purpose after the goldens were written, per CSV file name; nothing may be
#: removed or changed.
ADDED_COLUMNS: dict[str, set[str]] = {}


def cases(models: dict[str, Path]) -> dict[str, list[str]]:
    """Case name -> the ``biasprobe`` arguments (without ``-o``). ``models`` holds the folders
    ``bert``, ``bert_b`` (masked LMs) and ``cls``, ``cls_b`` (sequence classifiers)."""
    out: dict[str, list[str]] = {}
    common = ["--no-cache", "--bootstrap", "300", "--seed", "3", "--show", "none", "--quiet"]
    for name in FILL_MASK:
        out[name] = [
            "run", str(REPO / "probes" / f"{name}.yaml"),
            "-m", f"base={models['bert']}", "-m", f"other={models['bert_b']}", *common,
        ]  # fmt: skip
    out["gender-valence"] = [
        "run", str(REPO / "probes" / "gender.yaml"), "-m", str(models["bert"]), "--valence",
        "-k", "20", *common,
    ]  # fmt: skip
    for name in COUNTERFACTUAL:
        out[name] = [
            "run", str(REPO / "probes" / f"{name}.yaml"),
            "-m", str(models["cls"]), "-m", str(models["cls_b"]), *common,
        ]  # fmt: skip
    for scoring in ("meade", "nangia"):
        out[f"crows-{scoring}"] = [
            "crows", "-m", str(models["bert"]), "--scoring", scoring, "--limit", "40",
            "--batch-size", "16", "--quiet",
        ]  # fmt: skip
    return out


def neutral(text: str, models: dict[str, Path]) -> str:
    """``text`` with each model folder's path replaced by ``<name>`` (the folders are temporary)
    and the repository's path by ``<repo>`` (probe-file sources), so any checkout compares."""
    for key in sorted(models, key=lambda k: -len(str(models[k]))):
        text = text.replace(str(models[key]), f"<{key}>")
    return text.replace(f"{REPO}/", "<repo>/")
