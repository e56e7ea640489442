"""A killed CrowS-Pairs run and a killed counterfactual run resume from the result cache: the
run started again computes only what the killed one had not committed (model calls counted),
says so through the progress callback ("cached": pairs from the cache, of all pairs), and gives
the numbers of an uninterrupted run, exactly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]


class Counting:
    """Wraps a backend method at class level: counts calls and the requests (texts) given to
    the model, and raises KeyboardInterrupt on call ``fail_after + 1`` (a run killed there)."""

    def __init__(self, real, fail_after: int | None = None) -> None:
        self.real, self.fail_after = real, fail_after
        self.calls = self.requests = 0

    def install(self, monkeypatch: pytest.MonkeyPatch, cls: type, name: str) -> Counting:
        counter = self

        def method(model, requests):
            if counter.fail_after is not None and counter.calls >= counter.fail_after:
                raise KeyboardInterrupt("killed")
            counter.calls += 1
            counter.requests += len(requests)
            return counter.real(model, requests)

        monkeypatch.setattr(cls, name, method)
        return self


def _events(log: list) -> list[tuple[str, int, int]]:
    return [(m, d, t) for m, stage, d, t in log if stage == "cached"]


def _same_frames(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_a_killed_crows_run_resumes_computing_only_the_rest(tiny_bert, tmp_path, monkeypatch):
    from biasprobe.backends.hf import HFMaskedLM
    from biasprobe.crows.run import run_crows

    real = HFMaskedLM.token_logprobs
    kw = {"scoring": "nangia", "limit": 40, "device": "cpu", "batch_size": 16}
    # the reference: no cache, every token request counted
    every = Counting(real).install(monkeypatch, HFMaskedLM, "token_logprobs")
    plain = run_crows(str(tiny_bert), cache=False, **kw)
    assert every.requests > 16 * 4  # several batches to kill between

    cache = tmp_path / "cache"
    killed = Counting(real, fail_after=3).install(monkeypatch, HFMaskedLM, "token_logprobs")
    with pytest.raises(KeyboardInterrupt):
        run_crows(str(tiny_bert), cache=cache, **kw)
    kept = killed.requests  # three whole batches, committed
    assert kept == 3 * 16

    again = Counting(real).install(monkeypatch, HFMaskedLM, "token_logprobs")
    log: list = []
    resumed = run_crows(str(tiny_bert), cache=cache, progress=lambda *a: log.append(a), **kw)
    assert again.requests == every.requests - kept  # only what was not committed
    [(name, done, total)] = _events(log)
    assert name == str(tiny_bert) and 0 < done < total == 40
    _same_frames(resumed.pairs, plain.pairs)  # the numbers of an uninterrupted run, exactly
    _same_frames(resumed.summary, plain.summary)
    cache_info = resumed.meta["models"][0]["info"]["cache"]
    assert (cache_info["hits"], cache_info["misses"]) == (kept, again.requests)

    third = Counting(real).install(monkeypatch, HFMaskedLM, "token_logprobs")
    log.clear()
    run_crows(str(tiny_bert), cache=cache, progress=lambda *a: log.append(a), **kw)
    assert third.calls == 0 and _events(log) == [(str(tiny_bert), 40, 40)]


def test_a_killed_counterfactual_run_resumes_computing_only_the_rest(
    tiny_hf_classifier, tmp_path, monkeypatch
):
    from biasprobe.backends.classifiers import HFClassifier
    from biasprobe.downstream.run import run_downstream
    from biasprobe.probes import load_probe_set

    ps = load_probe_set(REPO / "probes" / "sentiment-gender.yaml")
    real = HFClassifier.p_label
    kw = {"n_boot": 200, "device": "cpu", "batch_size": 8}
    every = Counting(real).install(monkeypatch, HFClassifier, "p_label")
    plain = run_downstream(ps, [str(tiny_hf_classifier)], cache=False, **kw)
    n_sentences = len({s for it in ps.items for s in it.sentences})
    assert every.requests == n_sentences > 8 * 4

    cache = tmp_path / "cache"
    killed = Counting(real, fail_after=4).install(monkeypatch, HFClassifier, "p_label")
    with pytest.raises(KeyboardInterrupt):
        run_downstream(ps, [str(tiny_hf_classifier)], cache=cache, **kw)
    kept = killed.requests
    assert kept == 4 * 8  # four batches of 8 sentences, committed

    again = Counting(real).install(monkeypatch, HFClassifier, "p_label")
    log: list = []
    resumed = run_downstream(
        ps, [str(tiny_hf_classifier)], cache=cache, progress=lambda *a: log.append(a), **kw
    )
    assert again.requests == n_sentences - kept  # only what was not committed
    [(name, done, total)] = _events(log)
    assert 0 < done < total == len(ps.items)
    for table in ("downstream", "scores", "summary"):
        _same_frames(getattr(resumed, table), getattr(plain, table))

    third = Counting(real).install(monkeypatch, HFClassifier, "p_label")
    log.clear()
    run_downstream(
        ps, [str(tiny_hf_classifier)], cache=cache, progress=lambda *a: log.append(a), **kw
    )
    assert third.calls == 0 and _events(log) == [(name, len(ps.items), len(ps.items))]


def test_the_crows_command_says_it_resumes(tiny_bert, tmp_path, monkeypatch):
    """``biasprobe crows`` killed, then the same command: one line says how many pairs come
    from the cache and how many remain."""
    from biasprobe.backends.hf import HFMaskedLM
    from biasprobe.cli import app

    monkeypatch.chdir(tmp_path)
    args = ["crows", "-m", str(tiny_bert), "--scoring", "nangia", "--limit", "40"]
    args += ["--batch-size", "16", "--cache", str(tmp_path / "cache")]
    real = HFMaskedLM.token_logprobs
    Counting(real, fail_after=3).install(monkeypatch, HFMaskedLM, "token_logprobs")
    res = CliRunner().invoke(app, [*args, "-o", "a"])
    assert res.exit_code != 0 and "resumes where it stopped" in res.output
    assert not (tmp_path / "a").exists()
    Counting(real).install(monkeypatch, HFMaskedLM, "token_logprobs")
    res = CliRunner().invoke(app, [*args, "-o", "b"])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("resuming "))
    done = int(line.split(": ")[1].split(" of ")[0])
    assert 0 < done < 40
    assert line == (
        f"resuming {tiny_bert}: {done} of 40 pairs from the result cache, {40 - done} to compute"
    )


def test_the_run_command_names_classifiers_by_alias_and_says_it_resumes(
    tiny_hf_classifier, tmp_path, monkeypatch
):
    """``biasprobe run COUNTERFACTUAL_SET -m NAME=CLASSIFIER``: the alias names the model in
    every table; killed and run again, it says how many pairs come from the cache."""
    import json

    from biasprobe.backends.classifiers import HFClassifier
    from biasprobe.cli import app

    monkeypatch.chdir(tmp_path)
    args = ["run", str(REPO / "probes" / "sentiment-age.yaml"), "-m", f"clf={tiny_hf_classifier}"]
    args += ["--batch-size", "8", "--bootstrap", "100", "--show", "none"]
    args += ["--cache", str(tmp_path / "cache")]
    real = HFClassifier.p_label
    Counting(real, fail_after=3).install(monkeypatch, HFClassifier, "p_label")
    res = CliRunner().invoke(app, [*args, "-o", "a"])
    assert res.exit_code != 0 and "resumes where it stopped" in res.output
    Counting(real).install(monkeypatch, HFClassifier, "p_label")
    res = CliRunner().invoke(app, [*args, "-o", "b"])
    assert res.exit_code == 0, res.output
    assert "resuming clf: 0 of" not in res.output
    [line] = [x for x in res.output.splitlines() if x.startswith("resuming ")]
    assert line.startswith("resuming clf: ") and " pairs from the result cache, " in line
    meta = json.loads((tmp_path / "b" / "results.json").read_text())
    [block] = meta["models"]
    assert (block["name"], block["alias_of"]) == ("clf", str(tiny_hf_classifier))
    assert set(pd.read_csv(tmp_path / "b" / "summary.csv")["model"]) == {"clf"}
