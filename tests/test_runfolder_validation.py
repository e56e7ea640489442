"""Tampered run folders: every problem is a RunFolderError naming the file, never an internal error.

Real small runs of each kind (fill-mask stored top-N and full, downstream, CrowS-Pairs) are made
once; each case copies one, damages it the way a careless edit, a bad copy or a hostile share
would (issue 17, item 9), and loads and renders it as ``biasprobe report`` and the library do.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from biasprobe.errors import RunFolderError

GOOD = """name: t
version: 1
description: test
source: test
orientation: {minoritized: women, normative: men}
pairs:
  - id: works
    template: "The [woman|man] works as a [MASK]."
    groups: [women, men]
    targets: [nurse]
  - id: likes
    template: "The [woman|man] likes [MASK]."
    groups: [women, men]
  - id: sees
    template: "[She|He] sees a [MASK]."
    groups: [women, men]
"""


# --------------------------------------------------------------------------- the runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bert, tiny_bert_b):
    """kind → a pristine run folder of that kind."""
    from biasprobe.cli import app
    from biasprobe.crows.run import run_crows
    from biasprobe.downstream.run import run_downstream

    root = tmp_path_factory.mktemp("runs")
    (root / "p.yaml").write_text(GOOD)
    out: dict[str, Path] = {}
    cli = CliRunner()
    for kind, extra in (("topn", []), ("full", ["--store", "full"])):
        res = cli.invoke(
            app,
            ["run", str(root / "p.yaml"), "-m", str(tiny_bert), "-m", str(tiny_bert_b)]
            + ["-o", str(root / kind), "-q", "--bootstrap", "100", *extra],
        )
        assert res.exit_code == 0, res.output
        out[kind] = root / kind
    out["downstream"] = run_downstream(
        _downstream_items(),
        [_Shifted("base", -0.2), _Shifted("twin", -0.05)],
        set_name="s",
        n_boot=100,
    ).save(root / "downstream")
    out["crows"] = run_crows(str(tiny_bert), scoring="meade", limit=4, device="cpu").save(
        root / "crows"
    )
    return out


def _downstream_items():
    from biasprobe.probes import ProbeItem

    return [
        ProbeItem(
            f"t{t}/{j}",
            f"tpl{t}",
            ("women", "men"),
            (f"she {'x' * j}", f"he {'x' * j}"),
            0,
            (),
            (),
            f"x.yaml:{t}",
        )
        for t in range(2)
        for j in range(4)
    ]


def _shifted_class():
    from biasprobe.backends.classifiers import ClassifierBackend as Classifier

    class Shifted(Classifier):
        kind = "test"
        labels = ("negative", "positive")
        positive = 1

        def __init__(self, name, shift):
            self.name, self.shift, self.info = name, shift, {"accuracy": 0.8, "accuracy_n": 500}

        def _probs(self, texts):
            p = np.array(
                [0.3 + 0.05 * (len(t) % 9) + (self.shift if "she" in t else 0) for t in texts]
            )
            return np.stack([1 - p, p], axis=1)

    return Shifted


def _Shifted(name, shift):  # noqa: N802 (a class made on first use: the import is heavy)
    return _shifted_class()(name, shift)


# --------------------------------------------------------------------------- tampering


def _meta(d: Path) -> dict:
    return json.loads((d / "results.json").read_text(encoding="utf-8"))


def _set_meta(d: Path, meta: dict) -> None:
    (d / "results.json").write_text(json.dumps(meta), encoding="utf-8")


def _edit_meta(fn: Callable[[dict], None]) -> Callable[[Path], str]:
    def tamper(d: Path) -> str:
        meta = _meta(d)
        fn(meta)
        _set_meta(d, meta)
        return "results.json"

    return tamper


def _table_name(d: Path, table: str) -> str:
    files = _meta(d).get("files", {})
    return files.get(table, f"{table}.csv")


def _edit_table(table: str, fn: Callable[[pd.DataFrame], pd.DataFrame]):
    def tamper(d: Path) -> str:
        name = _table_name(d, table)
        frame = pd.read_csv(d / name, keep_default_na=False, dtype=str)
        frame = fn(frame)
        frame.to_csv(d / name, index=False)
        return name

    return tamper


def _set_col(col, value):
    def fn(t):
        if col in t:
            t[col] = value
        return t

    return fn


def _drop_col(col):
    return lambda t: t.drop(columns=[col]) if col in t else t


def _raw_table(table: str, data: bytes):
    def tamper(d: Path) -> str:
        name = _table_name(d, table)
        (d / name).write_bytes(data)
        return name

    return tamper


def _fifo_file(rel: Callable[[Path], str]):
    def tamper(d: Path) -> str:
        name = rel(d)
        (d / name).unlink()
        os.mkfifo(d / name)
        return name

    return tamper


def _deep(n: int) -> str:
    return "[" * n + "]" * n


def _deep_settings(n: int):
    def tamper(d: Path) -> str:
        text = (d / "results.json").read_text(encoding="utf-8")
        meta = json.loads(text)
        meta["settings"] = {"x": "DEEP"}
        text = json.dumps(meta).replace('"DEEP"', _deep(n))
        (d / "results.json").write_text(text, encoding="utf-8")
        return "results.json"

    return tamper


def _nan_setting(key: str, token: str):
    def tamper(d: Path) -> str:
        meta = _meta(d)
        meta.setdefault("settings", {})[key] = "TOKEN"
        (d / "results.json").write_text(
            json.dumps(meta).replace('"TOKEN"', token), encoding="utf-8"
        )
        return "results.json"

    return tamper


# --- stores of fill-mask runs


def _store(d: Path, k: int = 0) -> dict:
    return list(_meta(d)["files"]["logprobs"].values())[k]


def _edit_store(fn: Callable[[dict], None], k: int = 0):
    def tamper(d: Path) -> str:
        meta = _meta(d)
        entry = list(meta["files"]["logprobs"].values())[k]
        fn(entry)
        _set_meta(d, meta)
        return "results.json"

    return tamper


def _edit_shard(fn: Callable[[dict], None], k: int = 0):
    def tamper(d: Path) -> str:
        rel = _store(d, k)["shards"][0]
        with np.load(d / rel, allow_pickle=False) as z:
            arrays = {key: z[key] for key in z.files}
        fn(arrays)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        (d / rel).write_bytes(buf.getvalue())
        return Path(rel).name

    return tamper


def _short_vocab(d: Path) -> str:
    rel = _store(d)["vocab"]
    np.savez_compressed(d / rel, vocab=np.array(["a", "b", "c"]))
    return Path(rel).name


def _common_meta_cases():
    return {
        "models-a-string": _edit_meta(lambda m: m.update(models="bert")),
        "models-entry-a-number": _edit_meta(lambda m: m.update(models=[1])),
        "model-name-a-number": _edit_meta(lambda m: m["models"][0].update(name=5)),
        "model-without-name": _edit_meta(lambda m: m["models"][0].pop("name")),
        "models-missing": _edit_meta(lambda m: m.pop("models")),
        "settings-a-list": _edit_meta(lambda m: m.update(settings=[1, 2])),
        "probe-set-a-list": _edit_meta(lambda m: m.update(probe_set=[1])),
        "files-a-string": _edit_meta(lambda m: m.update(files="x")),
        "results-json-a-list": lambda d: (d / "results.json").write_text("[1]") and "results.json",
        "results-json-garbage": lambda d: (
            (d / "results.json").write_bytes(b"\xff\xfe{") and "results.json"
        ),
        "results-json-deep": _deep_settings(100_000),
        "results-json-nested-500": _deep_settings(500),
        "results-json-fifo": _fifo_file(lambda d: "results.json"),
        "run-id-a-dict": _edit_meta(lambda m: m.update(run_id={"a": 1})),
    }


def _fill_mask_cases():
    cases = _common_meta_cases()
    cases |= {
        "confidence-nan": _nan_setting("confidence", "NaN"),
        "confidence-inf": _nan_setting("confidence", "Infinity"),
        "bootstrap-inf": _nan_setting("bootstrap_resamples", "Infinity"),
        "bootstrap-nan": _nan_setting("bootstrap_resamples", "NaN"),
        "seed-text": _nan_setting("seed", '"abc"'),
        "arbitrary-orientation-a-number": _edit_meta(
            lambda m: m["probe_set"].update(arbitrary_orientation=5)
        ),
        "logprobs-a-list": _edit_meta(lambda m: m["files"].update(logprobs=[])),
        "table-entry-missing": _edit_meta(lambda m: m["files"].pop("scores")),
        "table-entry-a-number": _edit_meta(lambda m: m["files"].update(scores=3)),
        "scores-non-numeric": _edit_table("scores", _set_col("jaccard_distance", "abc")),
        "scores-infinite": _edit_table("scores", _set_col("jaccard_distance", "inf")),
        "scores-k-fraction": _edit_table("scores", _set_col("k", "2.5")),
        "scores-pair-renamed": _edit_table("scores", _set_col("pair_id", "nope")),
        "scores-no-pair-id": _edit_table("scores", _drop_col("pair_id")),
        "scores-no-model": _edit_table("scores", _drop_col("model")),
        "summary-no-n": _edit_table("summary", _drop_col("n")),
        "summary-n-text": _edit_table("summary", _set_col("n", "many")),
        "summary-n-nan": _edit_table("summary", _set_col("n", "")),
        "summary-mean-text": _edit_table("summary", _set_col("mean", "high")),
        "summary-mean-inf": _edit_table("summary", _set_col("mean", "-inf")),
        "summary-no-level": _edit_table("summary", _drop_col("level")),
        "items-no-side": _edit_table("items", _drop_col("side")),
        "items-side-c": _edit_table("items", _set_col("side", "C")),
        "items-no-template-sentence": _edit_table("items", _drop_col("template_sentence")),
        "topk-no-logprob": _edit_table("topk", _drop_col("logprob")),
        "topk-rank-text": _edit_table("topk", _set_col("rank", "first")),
        "topk-pair-renamed": _edit_table("topk", _set_col("pair_id", "nope")),
        "topk-model-renamed": _edit_table("topk", _set_col("model", "nobody")),
        "targets-logprob-text": _edit_table("targets", _set_col("logprob", "x")),
        "targets-no-target": _edit_table("targets", _drop_col("target")),
        "targets-pieces-text": _edit_table("targets", _set_col("n_pieces", "two")),
        "table-empty-file": _raw_table("scores", b""),
        "table-garbage": _raw_table("summary", b"\x00\xff\xfe" * 100),
        "table-bad-quotes": _raw_table("items", b'pair_id,side\n"a,A\n'),
        "table-fifo": _fifo_file(lambda d: _table_name(d, "topk")),
        "store-empty-shard-list": _edit_store(lambda e: e.update(shards=[])),
        "store-shards-a-string": _edit_store(lambda e: e.update(shards="x")),
        "store-unknown-mode": _edit_store(lambda e: e.update(store="weird")),
        "store-top-n-text": _edit_store(lambda e: e.update(top_n="x")),
        "store-vocab-missing": _edit_store(lambda e: e.pop("vocab")),
        "store-shard-is-vocab": _edit_store(lambda e: e.update(shards=[e["vocab"]])),
        "store-vocab-short": _short_vocab,
        "store-shard-fifo": _fifo_file(lambda d: _store(d)["shards"][0]),
        "store-shard-garbage": lambda d: (
            (d / _store(d)["shards"][0]).write_bytes(b"PK\x03\x04xx") and "shard-00000.npz"
        ),
        "shard-pair-ids-2d": _edit_shard(lambda a: a.update(pair_ids=a["pair_ids"].reshape(1, -1))),
        "shard-pair-ids-renamed": _edit_shard(
            lambda a: a.update(pair_ids=np.array([f"x{i}" for i in range(a["pair_ids"].size)]))
        ),
        "shard-pair-ids-short": _edit_shard(lambda a: a.update(pair_ids=a["pair_ids"][:1])),
        "shard-missing-array": _edit_shard(
            lambda a: a.pop("offsets", None) if "offsets" in a else a.pop("rows")
        ),
    }
    return cases


def _topn_cases():
    return {
        "shard-offsets-short": _edit_shard(lambda a: a.update(offsets=a["offsets"][:1])),
        "shard-offsets-backwards": _edit_shard(lambda a: a.update(offsets=a["offsets"][::-1])),
        "shard-offsets-past-end": _edit_shard(lambda a: a.update(offsets=a["offsets"] * 100)),
        "shard-logprob-wrong-shape": _edit_shard(lambda a: a.update(logprob_a=a["logprob_a"][:3])),
        "shard-logprob-short": _edit_shard(lambda a: a.update(logprob_b=a["logprob_b"][:, :5])),
        "shard-ids-past-vocab": _edit_shard(
            lambda a: a.update(id_steps=(a["id_steps"].astype(np.uint32) + 40_000))
        ),
        "shard-far-offsets-short": _edit_shard(
            lambda a: a.update(far_offsets_a=a["far_offsets_a"][:1])
        ),
        "shard-far-rank-short": _edit_shard(lambda a: a.update(far_rank_b=a["far_rank_b"][:2])),
        "shard-depth-text": _edit_shard(lambda a: a.update(depth=np.array("x"))),
        "shard-depth-array": _edit_shard(lambda a: a.update(depth=np.arange(3))),
    }


def _full_cases():
    return {
        "shard-rows-out-of-range": _edit_shard(lambda a: a.update(rows=a["rows"] + 1000)),
        "shard-rows-wrong-shape": _edit_shard(lambda a: a.update(rows=a["rows"][:, :1])),
        "shard-logprobs-narrow": _edit_shard(lambda a: a.update(logprobs=a["logprobs"][:, :10])),
        "shard-logprobs-1d": _edit_shard(lambda a: a.update(logprobs=a["logprobs"][0])),
        "shard-rows-text": _edit_shard(lambda a: a.update(rows=np.array([["a", "b"]] * 3))),
    }


def _downstream_cases():
    cases = _common_meta_cases()
    cases |= {
        "bootstrap-inf": _nan_setting("n_boot", "Infinity"),
        "table-entry-missing": _edit_meta(lambda m: m["files"].pop("summary")),
        "scores-no-delta": _edit_table("scores", _drop_col("delta")),
        "scores-delta-text": _edit_table("scores", _set_col("delta", "big")),
        "summary-no-mean": _edit_table("summary", _drop_col("mean")),
        "summary-mean-text": _edit_table("summary", _set_col("mean", "x")),
        "summary-n-text": _edit_table("summary", _set_col("n", "x")),
        "summary-ci-inf": _edit_table("summary", _set_col("ci_low", "inf")),
        "downstream-p-text": _edit_table("downstream", _set_col("p_positive", "x")),
        "downstream-no-model": _edit_table("downstream", _drop_col("model")),
        "comparison-change-text": _edit_table("comparison", _set_col("change", "x")),
        "comparison-no-score": _edit_table("comparison", _drop_col("score")),
        "items-no-pair-id": _edit_table("items", _drop_col("pair_id")),
        "scores-model-renamed": _edit_table("scores", _set_col("model", "nobody")),
        "table-empty-file": _raw_table("scores", b""),
        "table-garbage": _raw_table("summary", b"\x00\xff\xfe" * 100),
        "table-fifo": _fifo_file(lambda d: _table_name(d, "downstream")),
    }
    return cases


def _crows_cases():
    skip = ("models", "model-", "settings", "probe-set", "files")
    cases = {k: v for k, v in _common_meta_cases().items() if not k.startswith(skip)}
    cases |= {
        "model-a-string": _edit_meta(lambda m: m.update(model="bert")),
        "summary-no-metric": _edit_table("summary", _drop_col("metric")),
        "summary-metric-text": _edit_table("summary", _set_col("metric", "x")),
        "summary-n-text": _edit_table("summary", _set_col("n", "x")),
        "summary-n-nan": _edit_table("summary", _set_col("n", "")),
        "summary-n-skipped-inf": _edit_table("summary", _set_col("n_skipped", "inf")),
        "pairs-no-skipped": _edit_table("pairs", _drop_col("skipped")),
        "pairs-score-text": _edit_table("pairs", _set_col("score_more", "x")),
        "table-empty-file": _raw_table("summary", b""),
        "table-garbage": _raw_table("pairs", b"\x00\xff\xfe" * 100),
        "table-fifo": _fifo_file(lambda d: "summary.csv"),
    }
    return cases


CASES = {
    "topn": _fill_mask_cases() | _topn_cases(),
    "full": _fill_mask_cases() | _full_cases(),
    "downstream": _downstream_cases(),
    "crows": _crows_cases(),
}
PARAMS = [(kind, name) for kind, cases in CASES.items() for name in cases]


@contextlib.contextmanager
def _no_wait_on_fifos(d: Path, after: float = 60.0):
    """Yields a list that gets an entry if, ``after`` seconds on, a reader still waits on a
    FIFO under ``d``; the FIFO is then opened for writing and closed, so that the reader sees an
    empty file and the test ends instead of hanging."""
    fifos = [p for p in d.rglob("*") if stat.S_ISFIFO(p.lstat().st_mode)]
    waited: list[Path] = []

    def release() -> None:
        for p in fifos:
            try:
                fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK)  # fails at once without a reader
            except OSError:
                continue
            waited.append(p)
            os.close(fd)

    timer = threading.Timer(after, release)
    timer.daemon = True
    timer.start()
    try:
        yield waited
    finally:
        timer.cancel()


def _load_and_render(kind: str, d: Path) -> None:
    """What ``biasprobe report`` (and a notebook user) does with the folder."""
    if kind == "crows":
        from biasprobe.crows.run import load_crows_run
        from biasprobe.report.crows import render_html

        render_html(load_crows_run(d))
    elif kind == "downstream":
        from biasprobe.downstream.run import load_downstream_run
        from biasprobe.report.counterfactual import render_downstream_report

        render_downstream_report([load_downstream_run(d)])
    else:
        from biasprobe.report import render_report
        from biasprobe.results import load_run

        run = load_run(d)
        render_report([run])
        repr(run)
        run._repr_html_()


@pytest.mark.parametrize(("kind", "case"), PARAMS, ids=[f"{k}-{c}" for k, c in PARAMS])
def test_tampered_run_folder_is_a_run_folder_error(runs, kind, case, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(runs[kind], d)
    named = Path(CASES[kind][case](d)).name
    with _no_wait_on_fifos(d) as waited, pytest.raises(RunFolderError) as info:
        _load_and_render(kind, d)
    assert not waited, "a FIFO in the run folder was opened and waited on"
    assert named in str(info.value), str(info.value)


@pytest.mark.parametrize("kind", ["topn", "full", "downstream", "crows"])
def test_pristine_run_folders_load_and_render(runs, kind):
    _load_and_render(kind, runs[kind])


@pytest.mark.parametrize(
    ("kind", "case"),
    [
        ("topn", "models-a-string"),
        ("topn", "scores-non-numeric"),
        ("topn", "results-json-deep"),
        ("topn", "shard-offsets-short"),
        ("topn", "table-fifo"),
        ("full", "shard-rows-out-of-range"),
        ("downstream", "summary-mean-text"),
        ("downstream", "bootstrap-inf"),
    ],
)
def test_cli_report_names_the_file(runs, kind, case, tmp_path):
    from biasprobe.cli import app

    d = tmp_path / "run"
    shutil.copytree(runs[kind], d)
    named = Path(CASES[kind][case](d)).name
    with _no_wait_on_fifos(d) as waited:
        res = CliRunner().invoke(app, ["report", str(d), "-o", str(tmp_path / "r.html")])
    assert not waited, "a FIFO in the run folder was opened and waited on"
    assert res.exit_code == 2, res.output
    assert "internal error" not in res.output and named in res.output, res.output
    assert not (tmp_path / "r.html").exists()


# --------------------------------------------------------------------------- default report path


@pytest.mark.parametrize(
    ("set_name", "run_id"),
    [
        ("/tmp/evil/abs", "20260101-000000-abcdef"),
        ("../../outside", "../../../x"),
        ("t", "a/b/c"),
        ("..", ".."),
        (".hidden", "/"),
        ("x" * 500, "y" * 500),
        ("t", {"not": "text"}),
    ],
)
@pytest.mark.parametrize("kind", ["topn", "downstream"])
def test_default_report_path_stays_inside_reports(
    runs, kind, set_name, run_id, tmp_path, monkeypatch
):
    """``report RUN`` without -o: the file lands directly in ./reports/, whatever the
    (tampered) results.json says of the set name and the run id."""
    from biasprobe.cli import app

    d = tmp_path / "work" / "run"
    shutil.copytree(runs[kind], d)
    meta = _meta(d)
    meta["probe_set"]["name"] = set_name
    meta["run_id"] = run_id
    _set_meta(d, meta)
    monkeypatch.chdir(tmp_path / "work")
    before = {p for p in tmp_path.rglob("*")}
    res = CliRunner().invoke(app, ["report", "run"])
    created = {p for p in tmp_path.rglob("*")} - before
    if not isinstance(run_id, str):  # not text: refused, nothing written
        assert res.exit_code == 2 and "run_id must be text" in res.output, res.output
        assert created == set()
        return
    assert res.exit_code == 0, res.output
    reports = tmp_path / "work" / "reports"
    assert len(created) == 2 and reports in created, created  # the folder and one file in it
    (page,) = created - {reports}
    assert page.parent == reports and page.suffix == ".html"
    assert not page.name.startswith(".") and len(page.name) <= 130
    assert "/" not in page.name and ".." not in page.name.removesuffix(".html")


def test_name_part():
    from biasprobe.runfolder import default_report_path, name_part

    assert name_part("pair-names", "x") == "pair-names"
    assert name_part("../../etc/passwd", "x") == "etc_passwd"
    assert name_part("/abs/path", "x") == "abs_path"
    assert name_part("..", "x") == "x" and name_part("", "x") == "x" and name_part(None, "x") == "x"
    assert default_report_path("a/b", "../c") == Path("reports") / "a_b-c.html"


def test_report_renders_a_crows_run_folder(runs, tmp_path):
    """``biasprobe report`` renders every kind: a CrowS run folder gets its page (it was
    refused before the one run-folder format)."""
    from biasprobe.cli import app

    res = CliRunner().invoke(app, ["report", str(runs["crows"]), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "CrowS-Pairs" in page and "50% = no preference" in page
