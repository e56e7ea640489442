"""What a person sees in the terminal: 80 columns, short model names, --show, progress that
moves, and the small CLI items of issue 11 (validate --list, one error per broken lexicon,
help layout, arbitrary orientations, finished sentiment runs, permissions)."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from biasprobe.cli import app

REPO = Path(__file__).resolve().parent.parent
PAIR_NAMES = REPO / "probes" / "pair-names.yaml"

GOOD = """name: t
version: 1
description: test
source: test
orientation: {minoritized: women, normative: men}
pairs:
  - id: works
    template: "The [woman|man] works as a [MASK]."
    groups: [women, men]
  - id: said
    template: "[She|He] said that the job was [MASK]."
    groups: [women, men]
"""

# 46 common words: 46 pairs, 92 distinct masked sentences (the set size of the issue).
WORDS = (
    "house car tree book door river city road hill field window table chair garden school "
    "market bridge church forest island lake mountain ocean park station street tower village "
    "wall water bank farm hotel kitchen office prison hospital library museum theatre factory "
    "airport harbour castle temple valley"
).split()
NINETY_TWO = f"""name: n92
version: 1
description: test
source: test
orientation: {{minoritized: women, normative: men}}
lexicons:
  place: [{", ".join(WORDS)}]
pairs:
  - id: near
    template: "The [woman|man] near the {{place}} worked as a [MASK]."
    groups: [women, men]
"""


def invoke(*args: object, columns: int = 80):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": str(columns)})


def widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def console80() -> Console:
    return Console(width=80, record=True, file=io.StringIO(), highlight=False)


@pytest.fixture(scope="module")
def two_model_run(tiny_bert, tiny_bert_b, tmp_path_factory):
    """`run` of a two-pair set on two models that share a parent folder name pattern."""
    tmp = tmp_path_factory.mktemp("two")
    probe = tmp / "p.yaml"
    probe.write_text(GOOD)
    out = tmp / "run"
    res = invoke("run", probe, "-m", tiny_bert, "-m", tiny_bert_b, "-o", out, "-k", "5")
    assert res.exit_code == 0, res.output
    return res.output, out


# --------------------------------------------------------------------------- 80 columns


def test_display_names_are_short_and_distinct():
    from biasprobe.cliutil import display_names

    assert display_names(["/tmp/random-a", "/tmp/random-b"]) == {
        "/tmp/random-a": "random-a",
        "/tmp/random-b": "random-b",
    }
    # same last part: one more part each; a hub id stays as it is
    names = display_names(["/x/a/model", "/y/a/model", "bert-base-uncased"])
    assert names == {
        "/x/a/model": "x/a/model",
        "/y/a/model": "y/a/model",
        "bert-base-uncased": "bert-base-uncased",
    }
    assert display_names(["recorded:/data/rec/bert"]) == {
        "recorded:/data/rec/bert": "recorded:bert"
    }
    long = "/p/" + "a" * 30 + "b" * 30
    short = display_names([long], width=24)[long]
    assert short == "a" * 11 + "…" + "b" * 12  # cut in the middle: both ends stay readable
    name = "recorded:bert-large-uncased-whole-word-masking"
    assert display_names([name]) == {name: name}  # fits: kept whole


def test_run_with_two_models_fits_80_columns(two_model_run, tiny_bert, tiny_bert_b):
    output, out = two_model_run
    assert widest(output) <= 80, output
    short_a, short_b = Path(tiny_bert).name, Path(tiny_bert_b).name
    # the two models are told apart by their short names, and the legend names the folders
    assert f"model {short_a}" in output and f"model {short_b}" in output
    assert f"{short_a} = {tiny_bert}" in output.replace("\n", "")
    assert "jaccard_dist…" not in output and "jaccard_distance" in output
    summary = pd.read_csv(out / "summary.csv")
    s = summary[summary.level == "set"]
    block_b = output.split(f"model {short_b}")[1]
    for score in ("jaccard_distance", "rbo_distance"):
        a = s[(s.model == str(tiny_bert)) & (s.score == score)].iloc[0]
        b = s[(s.model == str(tiny_bert_b)) & (s.score == score)].iloc[0]
        line = next(x for x in block_b.splitlines() if f" {score} " in x)
        # the mean and its CI on one line (none for a set of too few templates, whose
        # template rows follow), then the change from the base model
        if np.isnan(b["ci_low"]):
            assert f"{b['mean']:.3f} │" in line and "too few" in b["note"], line
        else:
            assert f"{b['mean']:.3f} [{b['ci_low']:.3f}, {b['ci_high']:.3f}]" in line, line
        assert f"{b['mean'] - a['mean']:+.3f}" in line, line
    header = [x for x in output.splitlines() if "┃ score" in x]
    assert len(header) == 2 and "Δ base" not in header[0] and "Δ base" in header[1]


def test_pair_tables_label_log_p_and_show_every_rank(two_model_run):
    output, out = two_model_run
    topk = pd.read_csv(out / "topk.csv")
    first = topk[(topk.pair_id == "works") & (topk.side == "A")].sort_values("rank")
    assert "log p" in output
    for r in first.itertuples():  # every rank of top-k (5), with its log p to 2 decimals
        assert f"{r.token}" in output and f"{r.logprob:.2f}" in output
    assert "The woman works as a [MASK]." in output


def test_ranks_beyond_the_table_are_counted(tiny_bert, tmp_path):
    from biasprobe.probes import load_probe_set
    from biasprobe.runner import run
    from biasprobe.views.terminal import MAX_RANKS, print_topk_tables

    probe = tmp_path / "p.yaml"
    probe.write_text(GOOD)
    result = run(load_probe_set(probe), [str(tiny_bert)], top_k=MAX_RANKS + 5, n_bootstrap=100)
    console = console80()
    print_topk_tables(result, limit=1, console=console)
    text = console.export_text()
    assert "5 more ranks per side in topk.csv" in text
    rows = [x for x in text.splitlines() if x.startswith("│")]
    assert len(rows) == MAX_RANKS and rows[-1].split("│")[1].strip() == str(MAX_RANKS)
    assert "more pair tables in topk.csv" in text  # 2 pairs, 1 shown
    assert widest(text) <= 80


def test_crows_summary_fits_80_columns():
    from types import SimpleNamespace

    from biasprobe.views.terminal import print_crows_summary as print_summary

    rows = []
    for key, n in (("all", 1508), ("physical-appearance", 63), ("sexual-orientation", 84)):
        rows.append(
            dict(key=key, metric=61.234, ci_low=58.7, ci_high=63.71, n=n, n_tie=2,
                 p_value=1e-5, p_holm=0.0123, stereo_pct=62.5, stereo_n=n - 10,
                 antistereo_pct=55.0, antistereo_n=10)
        )  # fmt: skip
    name = "/very/long/checkpoints/folder/zari-bert-cda"
    result = SimpleNamespace(  # the shape of a one-model CrowS result (biasprobe-run/2)
        meta={"models": [{"name": name}], "scoring": "meade"},
        models=[name],
        summary=pd.DataFrame(rows).assign(model=name),
        pairs=pd.DataFrame({"model": [name], "outcome": ["stereo"], "skipped": [""]}),
        comparison=None,
    )
    console = console80()
    print_summary(result, console=console)
    text = console.export_text()
    assert widest(text) <= 80, text
    assert "physical-appearance" in text and "sexual-orientation" in text  # not cut
    assert "61.2 [58.7, 63.7]" in text  # the metric and its CI on one line
    assert "zari-bert-cda" in text and "1.0e-05" in text and "0.012" in text


@pytest.fixture(scope="module")
def two_classifiers(tiny_hf_classifier, real_vocab, tmp_path_factory):
    from conftest import build_tiny_classifier

    other = build_tiny_classifier(tmp_path_factory.mktemp("clf") / "clf-b", real_vocab, seed=1)
    return tiny_hf_classifier, other


def test_downstream_tables_fit_80_columns(two_classifiers, tmp_path):
    a, b = two_classifiers
    probe = tmp_path / "cf.yaml"
    probe.write_text(
        "name: cf\nversion: 1\ndescription: d\nsource: s\nkind: counterfactual\n"
        "orientation: {minoritized: women, normative: men}\npairs:\n"
        '  - id: good\n    template: "The [woman|man] was a great help."\n'
        "    groups: [women, men]\n"
        '  - id: bad\n    template: "[She|He] ruined the evening."\n    groups: [women, men]\n'
    )
    res = invoke("run", probe, "-m", a, "-m", b, "-o", tmp_path / "o", "--bootstrap", "100")
    assert res.exit_code == 0, res.output
    assert widest(res.output) <= 80, res.output
    short_b = Path(b).name
    assert "Change from the base model" in res.output
    assert f"│ {short_b} " in res.output  # short names in the comparison rows
    assert str(b) not in res.output.split("Change from the base model")[1]


def test_sentiment_compare_prints_its_table_in_80_columns(tmp_path):
    from test_sentiment_safety import _train

    for name in ("r1", "r2"):
        assert _train(tmp_path, tmp_path / name).exit_code == 0
    from biasprobe.sentiment.cli import app as sentiment_app

    res = CliRunner().invoke(
        sentiment_app,
        ["compare", str(tmp_path / "r1"), str(tmp_path / "r2"), "--out", str(tmp_path / "s"),
         "--no-png"],
        env={"COLUMNS": "80"},
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert widest(res.stdout) <= 80, res.stdout
    assert "results.md" in res.stdout and "learning_curves.html" in res.stdout
    frame = pd.read_csv(tmp_path / "s" / "results.csv")
    for r in frame.itertuples():
        shown = (
            f"{r.test_accuracy:.3f} [{r.test_accuracy_ci_low:.3f}, {r.test_accuracy_ci_high:.3f}]"
        )
        assert shown in res.stdout
    # two runs of one config: told apart by their folders
    assert "bow (r1)" in res.stdout and "bow (r2)" in res.stdout


# --------------------------------------------------------------------------- aliases


def test_model_aliases_name_the_models_everywhere(tiny_bert, tiny_bert_b, tmp_path):
    probe = tmp_path / "p.yaml"
    probe.write_text(GOOD)
    out = tmp_path / "o"
    res = invoke("run", probe, "-m", f"base={tiny_bert}", "-m", f"cda={tiny_bert_b}", "-o", out)
    assert res.exit_code == 0, res.output
    assert "model base" in res.output and "model cda" in res.output
    assert f"base = {tiny_bert}" in res.output.replace("\n", "")
    assert set(pd.read_csv(out / "scores.csv").model) == {"base", "cda"}
    cards = json.loads((out / "results.json").read_text())["models"]
    assert [(c["name"], c["alias_of"]) for c in cards] == [
        ("base", str(tiny_bert)),
        ("cda", str(tiny_bert_b)),
    ]
    assert (out / "logprobs" / "base").is_dir() and (out / "logprobs" / "cda").is_dir()


@pytest.mark.parametrize(
    "value, message",
    [
        ("a b={m}", "is not a usable alias"),
        ("base=", "names no model"),
        ("9lives={m}", "is not a usable alias"),
    ],
)
def test_bad_aliases_are_refused(value, message, tiny_bert, tmp_path):
    probe = tmp_path / "p.yaml"
    probe.write_text(GOOD)
    res = invoke("run", probe, "-m", value.format(m=tiny_bert), "-o", tmp_path / "o", "-q")
    assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "o").exists()


def test_duplicate_alias_is_refused(tiny_bert, tiny_bert_b, tmp_path):
    probe = tmp_path / "p.yaml"
    probe.write_text(GOOD)
    res = invoke("run", probe, "-m", f"m={tiny_bert}", "-m", f"m={tiny_bert_b}", "-q")
    assert res.exit_code == 2 and "two models are named 'm'" in res.output, res.output
    # the same folder under two aliases is still the same model
    res = invoke("run", probe, "-m", f"a={tiny_bert}", "-m", f"b={tiny_bert}", "-q")
    assert res.exit_code == 2 and "model given twice" in res.output, res.output


def test_a_folder_whose_name_holds_equals_is_a_path(tiny_bert, tmp_path, monkeypatch):
    folder = tmp_path / "lr=0.1"
    shutil.copytree(tiny_bert, folder)
    monkeypatch.chdir(tmp_path)
    probe = tmp_path / "p.yaml"
    probe.write_text(GOOD)
    res = invoke("run", probe, "-m", "lr=0.1", "-o", tmp_path / "o", "-q")
    assert res.exit_code == 0, res.output
    assert set(pd.read_csv(tmp_path / "o" / "scores.csv").model) == {"lr=0.1"}
    res = invoke("run", probe, "-m", str(folder), "-o", tmp_path / "o2", "-q")
    assert res.exit_code == 0, res.output


def test_aliases_name_classifiers_too(tiny_hf_classifier, tmp_path):
    out = tmp_path / "o"
    res = invoke(
        "run", REPO / "probes" / "sentiment-gender.yaml", "-m", f"c={tiny_hf_classifier}",
        "-o", out, "-q", "--bootstrap", "100",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert set(pd.read_csv(out / "scores.csv").model) == {"c"}


# --------------------------------------------------------------------------- --show


@pytest.mark.parametrize(
    "show, pairs, summary",
    [("all", True, True), ("summary", False, True), ("pairs", True, False), ("none", False, False),
     ("0", False, True), ("1", True, True)],
)  # fmt: skip
def test_show_controls_pair_tables_and_summary(show, pairs, summary, tiny_bert, tmp_path):
    probe = tmp_path / "p.yaml"
    probe.write_text(GOOD)
    out = tmp_path / "o"
    res = invoke("run", probe, "-m", tiny_bert, "-o", out, "-k", "3", "--show", show)
    assert res.exit_code == 0, res.output
    assert ("log p" in res.output) is pairs
    assert ("Scores over the probe set" in res.output) is summary
    assert f"wrote {out}" in res.output
    if show == "1":  # a number: that many pair tables, the rest counted
        assert "1 more pair tables in topk.csv" in res.output


def test_pair_tables_option_and_bad_show(tiny_bert, tmp_path):
    probe = tmp_path / "p.yaml"
    probe.write_text(GOOD)
    res = invoke("run", probe, "-m", tiny_bert, "-o", tmp_path / "a", "--pair-tables", "1")
    assert res.exit_code == 0 and "1 more pair tables in topk.csv" in res.output
    res = invoke("run", probe, "-m", tiny_bert, "-o", tmp_path / "b", "--show", "everything")
    assert res.exit_code == 2 and "--show must be one of all, summary, pairs, none" in res.output
    assert not (tmp_path / "b").exists()
    res = invoke("run", probe, "-m", tiny_bert, "-o", tmp_path / "c", "--pair-tables", "-1")
    assert res.exit_code == 2 and "--pair-tables must be 0 or more" in res.output


# --------------------------------------------------------------------------- progress


def _calls(probe_text: str, tmp_path: Path, model: str, **kw) -> list[tuple[str, str, int, int]]:
    from biasprobe.probes import load_probe_set
    from biasprobe.runner import run

    probe = tmp_path / "p.yaml"
    probe.write_text(probe_text)
    calls: list[tuple[str, str, int, int]] = []
    run(load_probe_set(probe), [model], n_bootstrap=100, progress=lambda *a: calls.append(a), **kw)
    return calls


def test_progress_moves_per_batch_on_a_92_sentence_set(tiny_bert, tmp_path):
    calls = _calls(NINETY_TWO, tmp_path, str(tiny_bert), batch_size=8)
    score = [(done, total) for _, stage, done, total in calls if stage == "score"]
    assert {total for _, total in score} == {92}
    done = [d for d, _ in score]
    assert done[0] == 0 and done[-1] == 92 and done == sorted(done)
    # one update per batch of 8: 8, 16, ..., 88, 92 (the old chunked bar showed only 92)
    assert [d for d in done if 0 < d < 92] == list(range(8, 92, 8))
    load = [(d, t) for _, stage, d, t in calls if stage == "load"]
    assert load == [(0, 1), (1, 1)]


def test_progress_of_multi_piece_targets_and_priors(tiny_bert, tmp_path):
    multi = GOOD.replace("    groups: [women, men]\n", "    groups: [women, men]\n", 1).replace(
        "pairs:\n", "targets: [electrician, nurse]\npairs:\n"
    )
    calls = _calls(multi, tmp_path, str(tiny_bert), batch_size=1)
    targets = [(d, t) for _, stage, d, t in calls if stage == "targets"]
    # "electrician" is 2 pieces: 2 pairs x 2 sides x 2 chained inputs = 8, one per batch of 1
    assert targets == [(i, 8) for i in range(1, 9)]
    from biasprobe.probes import load_probe_set
    from biasprobe.runner import run

    calls = []
    kurita = load_probe_set(REPO / "probes" / "kurita-gender.yaml")
    # no cache: priors computed here, whatever an earlier test stored
    run(kurita, [str(tiny_bert)], pairs=["*/nurse", "*/pilot"], batch_size=2, n_bootstrap=100,
        progress=lambda *a: calls.append(a), cache=False)  # fmt: skip
    priors = [(d, t) for _, stage, d, t in calls if stage == "priors"]
    assert len(priors) > 2 and priors[-1][0] == priors[-1][1]
    assert any(0 < d < t for d, t in priors)  # intermediate counts, not just the end


def test_progress_bar_shows_counts_rate_and_eta_in_80_columns():
    from biasprobe.cliutil import progress_bar

    console = Console(width=80, record=True, file=io.StringIO(), force_terminal=True)
    bar, update = progress_bar(console, lambda model, stage: f"{stage} {model}")
    update("/tmp/a-very-long-model-path-name", "load", 0, 1)
    assert bar.tasks[0].total is None  # loading pulses: no count to show
    update("/tmp/a-very-long-model-path-name", "load", 1, 1)
    assert bar.tasks[0].total == 1 and bar.tasks[0].finished
    update("m", "score", 32, 92)
    time.sleep(0.05)  # a rate needs two samples apart in time
    update("m", "score", 64, 92)
    task = bar.tasks[1]
    assert (task.completed, task.total) == (64, 92)
    text = "".join(seg.text for seg in console.render(bar.get_renderable()))
    assert "64/92" in text and "ETA" in text
    assert widest(text) <= 80
    assert len(bar.tasks[0].description) <= 24


def test_sentiment_training_shows_progress_during_the_first_evaluation(tmp_path, monkeypatch):
    from test_sentiment_safety import _config, _data

    import biasprobe.sentiment.train as train_mod

    seen: list[tuple[int, list[tuple[int, int]]]] = []
    real = train_mod.evaluate

    def spy(model, held_out, device, on_batch=None):
        calls: list[tuple[int, int]] = []

        def record(done, total):
            calls.append((done, total))
            on_batch(done, total)

        out = real(model, held_out, device, record if on_batch else None)
        seen.append((len(held_out), calls))
        return out

    monkeypatch.setattr(train_mod, "evaluate", spy)
    from biasprobe.sentiment.config import apply_overrides, load_config

    cfg = apply_overrides(
        load_config(_config(tmp_path)),
        [f"data.source={_data(tmp_path)}", "train.max_steps=2", "train.eval_batch_size=2"],
    )
    train_mod.train(cfg, tmp_path / "run", progress=True)
    n_batches, first = seen[0]  # the evaluation of the untrained model, before any step
    assert n_batches > 1 and first == [(i, n_batches) for i in range(1, n_batches + 1)]


# --------------------------------------------------------------------------- small items


def test_validate_list_prints_pairs_and_expansions(tmp_path):
    res = invoke("validate", PAIR_NAMES, "--list")
    assert res.exit_code == 0, res.output
    from biasprobe.probes import load_probe_set

    ps = load_probe_set(PAIR_NAMES)
    for it in ps.items:
        assert f"{it.pair_id}: " in res.output
        for sentence in it.sentences:
            assert sentence in res.output
    assert "elsie-lauren: Elsie* | Lauren  (orientation arbitrary)" in res.output
    assert "jim-jane: men | women*" in res.output
    plain = invoke("validate", PAIR_NAMES)
    assert "Jim worked as a [MASK]." not in plain.output  # without --list: one line
    help_text = invoke("validate", "--help").output
    assert "--list" in help_text and "with --list" in help_text


def test_a_duplicate_lexicon_word_is_reported_once(tmp_path):
    probe = tmp_path / "dup.yaml"
    probe.write_text(
        GOOD.replace('"The [woman|man] works as a [MASK]."', '"The [woman|man] saw the {faith}'
                     ' and became a [MASK]."')
        + "lexicons:\n  faith: [church, mosque, church]\ntargets: faith\n"
    )  # fmt: skip
    res = invoke("validate", probe)
    assert res.exit_code == 2
    assert "(1 problem)" in res.output, res.output
    assert res.output.count("'church' is listed twice") == 1
    assert "has no lexicon" not in res.output and "no lexicon named" not in res.output
    # a slot without any lexicon is still reported
    res = invoke("validate", tmp_path / "dup.yaml")
    probe.write_text(GOOD.replace("works as a [MASK]", "saw the {creed} and became a [MASK]"))
    res = invoke("validate", probe)
    assert res.exit_code == 2 and "slot {creed} has no lexicon" in res.output


def test_help_gives_descriptions_room_at_80_columns():
    res = invoke("run", "--help")
    assert res.exit_code == 0
    assert "<list[str]>" not in res.output and "--no-trust-remote" not in res.output
    assert widest(res.output) <= 80
    line = next(x for x in res.output.splitlines() if "--model" in x)
    # the description starts on the option's own line, left of the middle
    assert "Model: hub id" in line and line.index("Model: hub id") < 45, line
    for cmd in (["validate"], ["report"], ["crows"]):
        out = invoke(*cmd, "--help").output
        assert "<list[str]>" not in out, cmd


def test_arbitrary_orientation_is_marked(tmp_path):
    from biasprobe.probes import load_probe_set
    from biasprobe.views.terminal import arbitrary_templates, print_topk_tables

    ps = load_probe_set(PAIR_NAMES)
    assert arbitrary_templates(ps) == {"elsie-lauren", "employed-1908-2018"}
    topk = pd.DataFrame(
        [
            {"model": "m", "pair_id": pid, "template_id": tid, "side": side, "group": g,
             "role": role, "sentence": f"{g} [MASK].", "rank": 1, "token": "x", "logprob": -1.0}
            for pid, tid in (("elsie-lauren", "elsie-lauren"), ("jim-jane", "jim-jane"))
            for side, g, role in (("A", "Elsie", "minoritized"), ("B", "Lauren", "normative"))
        ]
    )  # fmt: skip

    class Result:
        pass

    result = Result()
    result.topk = topk
    console = console80()
    print_topk_tables(result, console=console, arbitrary=arbitrary_templates(ps))
    text = console.export_text()
    first, second = text.split("jim-jane")
    assert "(minoritized*)" in first and "orientation of this pair is arbitrary" in first
    assert "(minoritized)" in second and "arbitrary" not in second
    bad = tmp_path / "b.yaml"
    bad.write_text(GOOD.replace("    groups: [women, men]\n", "    groups: [women, men]\n"
                                "    arbitrary_orientation: maybe\n", 1))  # fmt: skip
    res = invoke("validate", bad)
    assert res.exit_code == 2 and "arbitrary_orientation: expected true or false" in res.output


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_sentiment_train_on_a_missing_gpu_leaves_no_folder(tmp_path, monkeypatch):
    from test_sentiment_safety import _config, _data

    from biasprobe.sentiment.cli import app as sentiment_app

    monkeypatch.chdir(tmp_path)
    cfg, data = _config(tmp_path), _data(tmp_path)
    for extra in (["--out", str(tmp_path / "out")], []):
        res = CliRunner().invoke(
            sentiment_app, ["train", str(cfg), "--data", str(data), "--device", "cuda", *extra]
        )
        assert res.exit_code == 2, res.output
        assert "CUDA is not available" in res.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_rerunning_a_finished_sentiment_run_says_so(tmp_path):
    from test_sentiment_safety import _train

    out = tmp_path / "run"
    first = _train(tmp_path, out)
    assert first.exit_code == 0 and "held-out test accuracy" in first.stdout
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    again = _train(tmp_path, out)
    assert again.exit_code == 0, again.output
    assert f"already finished in {out}" in again.stdout and "nothing was trained" in again.stdout
    assert str(out / "summary.json") in again.stdout
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # a larger --max-steps continues it
    more = CliRunner().invoke(
        __import__("biasprobe.sentiment.cli", fromlist=["app"]).app,
        ["train", str(tmp_path / "c.yaml"), "--data", str(tmp_path / "d.csv"), "--out",
         str(out), "--max-steps", "6", "--no-progress"],
    )  # fmt: skip
    assert more.exit_code == 0 and "already finished" not in more.stdout
    assert json.loads((out / "summary.json").read_text())["steps"] == 6


@pytest.mark.parametrize("umask, folder, file", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_run_folders_and_reports_follow_the_umask(umask, folder, file, tiny_bert, tmp_path):
    probe = tmp_path / "p.yaml"
    probe.write_text(GOOD)
    out = tmp_path / "o"
    old = os.umask(umask)
    try:
        res = invoke("run", probe, "-m", tiny_bert, "-o", out, "--html", "-q")
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE(out.stat().st_mode) == folder
    assert stat.S_IMODE((out / "logprobs").stat().st_mode) == folder
    for name in ("report.html", "scores.csv", "results.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == file, name
    for npz in (out / "logprobs").rglob("*"):
        assert stat.S_IMODE(npz.stat().st_mode) == (folder if npz.is_dir() else file), npz
