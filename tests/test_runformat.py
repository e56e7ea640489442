"""One run-folder format for every kind (``biasprobe-run/2``): every kind's ``results.json`` and
``summary.csv`` follow the schema of :mod:`biasprobe.runfolders.schema`, the manifest says
``run``, ``load_run`` reads every kind back, and the run folders written before the format
(``tests/golden/runs``, written by commit e24f328) still load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from biasprobe.cli import app
from biasprobe.results import CrowsResult, DownstreamResult, RunResult, folder_kind, load_run
from biasprobe.runfolders.holistic import HolisticResult
from biasprobe.runfolders.schema import (
    COMPARISON_COLUMNS,
    FORMAT,
    MODEL_KEYS,
    SUMMARY_COLUMNS,
)

REPO = Path(__file__).resolve().parents[1]
OLD = Path(__file__).resolve().parent / "golden" / "runs"
TYPES = {
    "fill-mask": RunResult,
    "counterfactual": DownstreamResult,
    "crows-pairs": CrowsResult,
    "holistic-bias": HolisticResult,
}
#: The family every model block of each kind's runs here has (the tiny models are masked LMs,
#: served to HolisticBias as sentence scorers).
FAMILY = {
    "fill-mask": "masked-lm",
    "counterfactual": "classifier",
    "crows-pairs": "masked-lm",
    "holistic-bias": "sentence-scorer",
}
#: A small HolisticBias run: one axis, one template.
HOLISTIC = ["holistic", "run", "--axis", "nonce", "-t", "I love {plural_noun_phrase}.", "--quiet"]


@pytest.fixture(scope="module")
def new_runs(tmp_path_factory, tiny_bert, tiny_bert_b, tiny_hf_classifier) -> dict[str, Path]:
    """One run folder of every kind, written by the command line (two models each)."""
    root = tmp_path_factory.mktemp("format")
    common = ["--no-cache", "--bootstrap", "100", "--show", "none", "--quiet"]
    runs = {
        "fill-mask": ["run", str(REPO / "probes" / "race.yaml"), "-m", f"base={tiny_bert}"]
        + ["-m", f"other={tiny_bert_b}", *common],
        "counterfactual": ["run", str(REPO / "probes" / "sentiment-age.yaml")]
        + ["-m", str(tiny_hf_classifier), *common],
        "crows-pairs": ["crows", "-m", str(tiny_bert), "--limit", "6", "--quiet"],
        "holistic-bias": [*HOLISTIC, "-m", f"base={tiny_bert}", "-m", f"other={tiny_bert_b}"]
        + ["--no-cache"],
    }
    out = {}
    for kind, args in runs.items():
        result = CliRunner().invoke(app, [*args, "-o", str(root / kind)])
        assert result.exit_code == 0, result.output
        out[kind] = root / kind
    return out


def _check_schema(folder: Path, kind: str) -> None:
    meta = json.loads((folder / "results.json").read_text())
    assert meta["format"] == FORMAT
    assert meta["kind"] == kind
    for key in ("run_id", "created", "versions", "settings", "models", "files"):
        assert key in meta, key
    assert isinstance(meta["models"], list) and meta["models"]
    for block in meta["models"]:
        assert list(block)[: len(MODEL_KEYS)] == list(MODEL_KEYS), block.keys()
        assert block["family"] == FAMILY[kind], (kind, block["family"])
        assert isinstance(block["info"], dict) and block["requested"]
    assert "model" not in meta  # CrowS wrote one ``model`` object before the one format
    manifest = json.loads((folder / ".biasprobe-manifest.json").read_text())
    assert manifest["kind"] == "run"
    summary = pd.read_csv(folder / "summary.csv", nrows=0)
    assert tuple(summary.columns[: len(SUMMARY_COLUMNS)]) == SUMMARY_COLUMNS
    if (folder / "comparison.csv").exists():
        comparison = pd.read_csv(folder / "comparison.csv", nrows=0)
        assert tuple(comparison.columns[: len(COMPARISON_COLUMNS)]) == COMPARISON_COLUMNS


@pytest.mark.parametrize("kind", list(TYPES))
def test_every_kind_writes_the_one_format(new_runs, kind):
    folder = new_runs[kind]
    _check_schema(folder, kind)
    assert folder_kind(folder) == kind
    result = load_run(folder)
    assert isinstance(result, TYPES[kind]) and result.kind == kind
    assert result.models and result.models[0] in set(result.summary["model"])
    assert tuple(result.summary.columns[: len(SUMMARY_COLUMNS)]) == SUMMARY_COLUMNS


def test_crows_summary_shared_columns_hold_its_numbers(new_runs):
    result = load_run(new_runs["crows-pairs"])
    s = result.summary
    assert (s["score"] == "stereotype_pct").all()
    pd.testing.assert_series_equal(s["mean"], s["metric"], check_names=False)
    overall = s[s["level"] == "overall"].iloc[0]
    scored = result.pairs[result.pairs["outcome"] != "skipped"]
    assert overall["n"] == len(scored)
    assert overall["mean"] == pytest.approx(100 * (scored["outcome"] == "more").mean())
    assert set(result.pairs["model"]) == {result.models[0]}


@pytest.mark.parametrize(
    ("folder", "kind"),
    [("fill-mask", "fill-mask"), ("counterfactual", "counterfactual"), ("crows", "crows-pairs")],
)
def test_run_folders_of_the_old_format_load(folder, kind):
    old = OLD / folder
    raw = json.loads((old / "results.json").read_text())
    assert "format" not in raw  # written before the one format
    result = load_run(old)
    assert result.kind == kind and isinstance(result, TYPES[kind])
    assert result.meta["format"] == FORMAT and result.meta["kind"] == kind
    for block in result.meta["models"]:
        assert list(block)[: len(MODEL_KEYS)] == list(MODEL_KEYS)
    assert tuple(result.summary.columns[: len(SUMMARY_COLUMNS)]) == SUMMARY_COLUMNS
    assert set(result.summary["model"]) == set(result.models)
    if kind == "crows-pairs":  # one ``model`` object and tables without a model column
        assert result.models == [raw["model"]["name"]]
        assert (result.summary["mean"] == result.summary["metric"]).all()
    if kind == "counterfactual":  # "downstream" with no p_holm column
        assert raw["kind"] == "downstream" and result.summary["p_holm"].isna().all()
        assert not result.comparison.empty


@pytest.mark.parametrize("folder", ["counterfactual", "crows"])
def test_overwrite_accepts_the_old_manifest_kinds(folder, tiny_bert, tmp_path):
    """A folder of the old format (manifest ``downstream-run`` / ``crows-pairs``) is still
    biasprobe's own: ``--overwrite`` replaces it."""
    target = tmp_path / folder
    shutil.copytree(OLD / folder, target)
    args = ["crows", "-m", str(tiny_bert), "--limit", "3", "--quiet", "-o", str(target)]
    result = CliRunner().invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert load_run(target).kind == "crows-pairs"


def test_load_run_of_a_given_kind_names_the_kind_found():
    from biasprobe.errors import RunFolderError

    with pytest.raises(RunFolderError, match="is a crows-pairs run folder, not a fill-mask"):
        load_run(OLD / "crows", "fill-mask")


def test_a_fill_mask_run_of_several_models_stores_its_comparison(new_runs):
    """comparison.csv holds what :func:`biasprobe.comparisons.fill_mask_comparison` computes
    from the stored tables and log-probs (what the report drew while rendering before)."""
    from biasprobe.comparisons import fill_mask_comparison

    result = load_run(new_runs["fill-mask"])
    assert (new_runs["fill-mask"] / "comparison.csv").is_file()
    assert set(result.comparison["model"]) == {"other"} and set(result.comparison["base"]) == {
        "base"
    }
    settings = result.meta["settings"]
    again = fill_mask_comparison(
        result.scores,
        set_name=result.meta["probe_set"]["name"],
        tokens=result,
        n_resamples=settings["bootstrap_resamples"],
        confidence=settings["confidence"],
        seed=settings["seed"],
    )
    stored = result.comparison[list(again.columns)]
    assert len(stored) == len(again) and {"set", "template", "pair"} <= set(stored["level"])
    for col in ("change", "ci_low", "ci_high", "p_value", "rho"):
        a = pd.to_numeric(stored[col]).to_numpy(float)
        b = pd.to_numeric(again[col]).to_numpy(float)
        assert ((a == b) | (pd.isna(a) & pd.isna(b))).all(), col


@pytest.fixture(scope="module")
def more_runs(tmp_path_factory, tiny_bert, tiny_bert_b, tiny_hf_classifier, real_vocab):
    """The other shapes: a counterfactual and a CrowS run of two models, a fill-mask run of
    one model (through the result cache of the test session)."""
    from conftest import build_tiny_classifier

    cls_b = build_tiny_classifier(tmp_path_factory.mktemp("format-cls-b"), real_vocab, seed=1)
    root = tmp_path_factory.mktemp("format-more")
    quiet = ["--bootstrap", "100", "--show", "none", "--quiet"]
    runs = {
        "counterfactual": ["run", str(REPO / "probes" / "sentiment-age.yaml")]
        + ["-m", str(tiny_hf_classifier), "-m", str(cls_b), *quiet],
        "crows-pairs": ["crows", "-m", f"base={tiny_bert}", "-m", f"other={tiny_bert_b}"]
        + ["--limit", "6", "--quiet"],
        "fill-mask": ["run", str(REPO / "probes" / "race.yaml"), "-m", str(tiny_bert), *quiet],
        "holistic-bias": [*HOLISTIC, "-m", str(tiny_bert)],
    }
    out = {}
    for kind, args in runs.items():
        result = CliRunner().invoke(app, [*args, "-o", str(root / kind)])
        assert result.exit_code == 0, result.output
        out[kind] = root / kind
    return out


def test_one_schema_for_every_kind_and_shape(new_runs, more_runs):
    """Every kind, one model or several: results.json has the shared keys and a models list
    of provenance blocks that start with the same keys (the cache's provenance included, run
    with or without the cache); summary.csv starts with the shared columns; comparison.csv is
    there exactly for the runs of several models, with the shared columns first."""
    blocks = {}
    for runs in (new_runs, more_runs):
        for kind, folder in runs.items():
            _check_schema(folder, kind)
            meta = json.loads((folder / "results.json").read_text())
            assert list(meta)[:5] == ["format", "kind", "run_id", "created", "versions"]
            several = len(meta["models"]) > 1
            assert (folder / "comparison.csv").is_file() == several, (kind, several)
            assert ("comparison" in meta["files"]) == several, meta["files"]
            if several:
                comparison = pd.read_csv(folder / "comparison.csv")
                names = [m["name"] for m in meta["models"]]
                assert set(comparison["base"]) == {names[0]}
                assert set(comparison["model"]) == set(names[1:])
            for block in meta["models"]:
                assert "cache" in block["info"], (kind, block["info"].keys())
                blocks.setdefault(kind, []).append(tuple(block)[: len(MODEL_KEYS)])
    assert set(blocks) == set(TYPES)
    assert {b for kind in blocks.values() for b in kind} == {tuple(MODEL_KEYS)}
    crows = json.loads((more_runs["crows-pairs"] / "results.json").read_text())
    assert [(m["name"], m["alias_of"]) for m in crows["models"]] == [
        ("base", crows["models"][0]["requested"]),
        ("other", crows["models"][1]["requested"]),
    ]
    assert crows["models"][0]["info"]["cache"]["enabled"] is True  # CrowS uses the cache now
