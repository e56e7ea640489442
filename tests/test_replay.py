"""Record → replay reproduces every run: every shipped fill-mask probe set, run on a tiny random
BERT with the real vocab, recorded from the probe file and from the run folder, replays to the
same scores.csv, targets.csv and summary.csv (every cell, as text: bit-identical floats)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import biasprobe
from biasprobe.backends.recorded import REQUESTS_JSON, RecordedMaskedLM
from biasprobe.cli import app
from biasprobe.errors import ModelLoadError, UsageError
from biasprobe.probes import load_probe_set
from biasprobe.results import RunResult

REPO = Path(__file__).resolve().parent.parent
PROBES = sorted((REPO / "probes").glob("*.yaml"))
KINDS = {p: load_probe_set(p).kind for p in PROBES}
FILL_MASK = [p for p in PROBES if KINDS[p] == "fill-mask"]
COUNTERFACTUAL = [p for p in PROBES if KINDS[p] == "counterfactual"]
COMPARED = ("scores", "targets", "summary")
runner = CliRunner()


def cells(text: str) -> pd.DataFrame:
    """A CSV table as text cells: equal frames mean equal files, cell for cell."""
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def assert_same_tables(run_dir: Path, live: RunResult, replay: RunResult, rec: Path) -> None:
    """The run folder's CSVs and the replay's are identical apart from the model column."""
    for name in COMPARED:
        stored = cells((run_dir / f"{name}.csv").read_text(encoding="utf-8"))
        replayed = cells(getattr(replay, name).to_csv(index=False))
        assert len(stored) == len(getattr(live, name))
        assert len(stored) > 0 or name == "targets"  # sets without targets: empty targets.csv
        assert set(stored["model"]) <= {str(live.models[0])}
        assert set(replayed["model"]) <= {f"recorded:{rec}"}
        pd.testing.assert_frame_equal(
            stored.drop(columns="model"), replayed.drop(columns="model"), check_exact=True
        )
        # and in memory, float for float (NaN where NaN)
        pd.testing.assert_frame_equal(
            getattr(live, name).drop(columns="model"),
            getattr(replay, name).drop(columns="model"),
            check_exact=True,
        )


@pytest.fixture(scope="module")
def live_runs(tiny_bert, tmp_path_factory):
    """Each probe set's run on the tiny BERT and its run folder, made once."""
    cache: dict[Path, tuple[RunResult, Path]] = {}

    def get(probe: Path) -> tuple[RunResult, Path]:
        if probe not in cache:
            # recording a run folder needs its full-vocabulary vectors
            result = biasprobe.run(load_probe_set(probe), [str(tiny_bert)], store="full")
            cache[probe] = (result, result.save(tmp_path_factory.mktemp("run") / probe.stem))
        return cache[probe]

    return get


def test_every_shipped_fill_mask_set_is_replayed():
    names = {p.stem for p in FILL_MASK}
    assert {"gender", "race", "sexuality", "switched", "pair-names", "kurita-gender"} <= names
    assert {p.stem for p in COUNTERFACTUAL} >= {"sentiment-gender", "sentiment-race"}
    assert len(FILL_MASK) + len(COUNTERFACTUAL) == len(PROBES)


@pytest.mark.parametrize("probe", FILL_MASK, ids=lambda p: p.stem)
def test_record_then_replay_reproduces_the_run(probe, tiny_bert, live_runs, tmp_path):
    live, run_dir = live_runs(probe)
    multi = live.targets[live.targets["n_pieces"] > 1]
    n_multi = len(multi.drop_duplicates(["pair_id", "side", "target"]))
    n_priors = int(live.targets["prior_logprob"].notna().sum())
    sources = {"probe": [str(probe), "-m", str(tiny_bert)], "run": [str(run_dir)]}
    for how, args in sources.items():
        rec = tmp_path / f"rec-{how}"
        res = runner.invoke(app, ["record", *args, "-o", str(rec)])
        assert res.exit_code == 0, res.output
        n_sentences = len(live.logprobs[str(tiny_bert)].to_table().sentences)
        assert f"({n_sentences} sentences," in res.output
        assert f"({n_multi} of several pieces), {n_priors} prior log-probs" in res.output
        card = json.loads((rec / "model.json").read_text())
        assert card["format"] == "biasprobe-recorded/2" and card["model"] == str(tiny_bert)
        requests = json.loads((rec / REQUESTS_JSON).read_text())
        assert len(requests["priors"]) == n_priors
        assert sum(len(t["pieces"]) > 1 for t in requests["targets"]) == n_multi
        replay = biasprobe.run(load_probe_set(probe), [f"recorded:{rec}"])
        assert_same_tables(run_dir, live, replay, rec)
        assert replay.meta["models"][0]["info"]["model"] == str(tiny_bert)


def test_the_sets_exercise_multi_piece_targets_and_priors(live_runs):
    gender, _ = live_runs(REPO / "probes" / "gender.yaml")
    multi = gender.targets[gender.targets["n_pieces"] > 1]
    assert set(multi["target"]) >= {"electrician", "firefighter"}
    assert all(len(p.split()) == n for p, n in zip(multi["piece_ids"], multi["n_pieces"]))
    kurita, _ = live_runs(REPO / "probes" / "kurita-gender.yaml")
    assert kurita.targets["prior_logprob"].notna().sum() == 2 * len(kurita.scores)
    assert kurita.scores["kurita_bias"].notna().all()
    assert (kurita.items["prior_sentence"].str.count(r"\[MASK\]") >= 2).all()


@pytest.mark.parametrize("probe", COUNTERFACTUAL, ids=lambda p: p.stem)
def test_counterfactual_sets_are_refused(probe, tmp_path):
    rec = tmp_path / "rec"
    res = runner.invoke(app, ["record", str(probe), "-m", "some-classifier", "-o", str(rec)])
    assert res.exit_code == 2
    assert "counterfactual probe set" in res.output and "biasprobe record" in res.output
    assert not rec.exists()


def test_replaying_pairs_the_recording_lacks_names_the_first(tiny_bert, tmp_path):
    probe = REPO / "probes" / "gender.yaml"
    rec = tmp_path / "rec"
    res = runner.invoke(
        app, ["record", str(probe), "-m", str(tiny_bert), "-p", "model-card", "-o", str(rec)]
    )
    assert res.exit_code == 0, res.output
    probe_set = load_probe_set(probe)
    first = next(it for it in probe_set.items if it.pair_id != "model-card")
    lacking = sum(it.pair_id != "model-card" for it in probe_set.items)
    with pytest.raises(UsageError) as e:
        biasprobe.run(probe_set, [f"recorded:{rec}"])
    msg = str(e.value)
    assert msg.startswith(f"{first.source}: pair {first.pair_id!r}, side A")
    assert repr(first.sentences[0]) in msg
    assert f"({lacking} of the {len(probe_set.items)} selected pairs lack something)" in msg
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(probe), "-m", f"recorded:{rec}", "-o", str(out), "-q"])
    assert res.exit_code == 2 and first.pair_id in res.output and not out.exists()
    # the pair it holds still replays
    assert len(biasprobe.run(probe_set, [f"recorded:{rec}"], pairs=["model-card"]).scores) == 1


def test_a_target_recorded_nowhere_is_named(tiny_bert, tmp_path):
    def probe(name: str, targets: str) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"name: {name}\nversion: 1\ndescription: d\nsource: s\n"
            "orientation: {minoritized: women, normative: men}\n"
            "pairs:\n"
            '  - id: works\n    template: "The [woman|man] works as a [MASK]."\n'
            f"    groups: [women, men]\n    targets: [{targets}]\n"
        )
        return path

    rec = tmp_path / "rec"
    recorded = probe("a", "nurse, electrician")
    res = runner.invoke(app, ["record", str(recorded), "-m", str(tiny_bert), "-o", str(rec)])
    assert res.exit_code == 0, res.output
    # same sentences, another multi-piece target: the tokenizer splits it, no chain recorded
    other = load_probe_set(probe("b", "nurse, firefighter"))
    with pytest.raises(UsageError, match=r"holds no chain-rule log-prob for the 2-piece target"):
        biasprobe.run(other, [f"recorded:{rec}"])
    # a single-piece word not recorded is read off the stored outputs, as the live model does
    third = load_probe_set(probe("c", "nurse, teacher"))
    live = biasprobe.run(third, [str(tiny_bert)])
    replay = biasprobe.run(third, [f"recorded:{rec}"])
    assert np.array_equal(live.targets["logprob"], replay.targets["logprob"])


def test_format_1_recordings_cannot_score_priors():
    probe_set = load_probe_set(REPO / "probes" / "kurita-gender.yaml")
    with pytest.raises(UsageError, match="format-1 recording holds one mask per sentence"):
        biasprobe.run(probe_set, ["recorded:zari-bert-cda"])


def _strip_column(csv: Path, *columns: str) -> None:
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    table.drop(columns=list(columns)).to_csv(csv, index=False)


def test_run_folders_of_older_versions(live_runs, tmp_path):
    """Without piece ids, single-piece targets still record; multi-piece ones and prior
    sentences get a message saying what is missing and to record the probe file instead."""
    pair_names = REPO / "probes" / "pair-names.yaml"
    live, run_dir = live_runs(pair_names)
    old = shutil.copytree(run_dir, tmp_path / "pair-names")
    _strip_column(old / "targets.csv", "piece_ids")
    rec = tmp_path / "rec-pair-names"
    res = runner.invoke(app, ["record", str(old), "-o", str(rec)])
    assert res.exit_code == 0, res.output
    replay = biasprobe.run(load_probe_set(pair_names), [f"recorded:{rec}"])
    pd.testing.assert_frame_equal(
        live.scores.drop(columns="model"), replay.scores.drop(columns="model"), check_exact=True
    )

    _, run_dir = live_runs(REPO / "probes" / "gender.yaml")
    old = shutil.copytree(run_dir, tmp_path / "gender")
    _strip_column(old / "targets.csv", "piece_ids")
    res = runner.invoke(app, ["record", str(old), "-o", str(tmp_path / "rec-gender")])
    assert res.exit_code == 2
    assert "stores no piece ids for this 2-piece target" in res.output
    assert "biasprobe record PROBE_FILE -m MODEL" in res.output
    assert not (tmp_path / "rec-gender").exists()

    _, run_dir = live_runs(REPO / "probes" / "kurita-gender.yaml")
    old = shutil.copytree(run_dir, tmp_path / "kurita")
    _strip_column(old / "items.csv", "attribute", "prior_sentence", "prior_mask_index")
    res = runner.invoke(app, ["record", str(old), "-o", str(tmp_path / "rec-kurita")])
    assert res.exit_code == 2
    assert "not their prior sentences" in res.output and "PROBE_FILE" in res.output


def test_record_refuses_other_run_folders_and_pair_selection(live_runs, tmp_path):
    other = tmp_path / "downstream"
    other.mkdir()
    (other / "results.json").write_text(json.dumps({"kind": "downstream"}))
    res = runner.invoke(app, ["record", str(other), "-o", str(tmp_path / "rec")])
    assert res.exit_code == 2 and "is a counterfactual run folder" in res.output
    _, run_dir = live_runs(REPO / "probes" / "race.yaml")
    res = runner.invoke(app, ["record", str(run_dir), "-p", "x", "-o", str(tmp_path / "rec")])
    assert res.exit_code == 2 and "recorded whole" in res.output
    assert not (tmp_path / "rec").exists()


def test_a_tampered_recording_is_refused(live_runs, tmp_path):
    _, run_dir = live_runs(REPO / "probes" / "gender.yaml")
    rec = tmp_path / "rec"
    assert runner.invoke(app, ["record", str(run_dir), "-o", str(rec)]).exit_code == 0
    path = rec / REQUESTS_JSON
    good = json.loads(path.read_text())
    single = next(n for n, t in enumerate(good["targets"]) if len(t["pieces"]) == 1)
    cases = [
        (["targets", single, "logprob"], -1.5, "differs from the value at the mask"),
        (["targets", 0, "pieces"], [-1], r"targets\[0\]: pieces must be a non-empty list"),
        (["targets", 0, "sentence"], "Nobody [MASK].", "is not one of the recorded sentences"),
    ]
    for (key, n, field), value, message in cases:
        data = json.loads(json.dumps(good))
        data[key][n][field] = value
        path.write_text(json.dumps(data))
        with pytest.raises(ModelLoadError, match=message):
            RecordedMaskedLM(f"recorded:{rec}")
    path.unlink()
    with pytest.raises(ModelLoadError, match="requests.json .* is missing"):
        RecordedMaskedLM(f"recorded:{rec}")


def test_a_replayed_run_records_under_the_original_name(tiny_bert, live_runs, tmp_path):
    probe = REPO / "probes" / "pair-names.yaml"
    live, run_dir = live_runs(probe)
    first = tmp_path / "rec1"
    assert runner.invoke(app, ["record", str(run_dir), "-o", str(first)]).exit_code == 0
    replay = biasprobe.run(load_probe_set(probe), [f"recorded:{first}"], store="full")
    replay_dir = replay.save(tmp_path / "replay")
    second = tmp_path / "rec2"
    res = runner.invoke(app, ["record", str(replay_dir), "-o", str(second)])
    assert res.exit_code == 0 and f"model {tiny_bert})" in res.output
    assert json.loads((second / "model.json").read_text())["model"] == str(tiny_bert)
    again = biasprobe.run(load_probe_set(probe), [f"recorded:{second}"])
    assert_same_tables(run_dir, live, again, second)
