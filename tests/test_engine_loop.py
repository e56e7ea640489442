"""The one engine (:mod:`biasprobe.engine`): every model resolved before the first is loaded,
one model loaded at a time and closed, aliases and several models for every kind (CrowS-Pairs
included), and the comparison with the base model computed and stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from biasprobe import engine
from biasprobe.cli import app
from biasprobe.errors import ModelLoadError, UsageError
from biasprobe.tasks.crows import run_crows

REPO = Path(__file__).resolve().parent.parent


class _Spy:
    """Counts loads and closes of the engine's loader."""

    def __init__(self, monkeypatch):
        self.loaded: list[str] = []
        self.closed: list[str] = []
        real = engine._load

        def load(model, load):
            backend = real(model, load)
            self.loaded.append(model.name)
            close = backend.close

            def closing():
                self.closed.append(model.name)
                close()

            backend.close = closing
            return backend

        monkeypatch.setattr(engine, "_load", load)


def test_every_model_is_resolved_before_the_first_is_loaded(
    tiny_bert, tiny_bert_b, tmp_path, monkeypatch
):
    spy = _Spy(monkeypatch)
    with pytest.raises(ModelLoadError):
        run_crows([str(tiny_bert), str(tmp_path / "missing")], limit=2)
    assert spy.loaded == []  # the missing second model failed before the first was loaded
    with pytest.raises(UsageError, match="model given twice: a"):
        run_crows([f"a={tiny_bert}", f"a={tiny_bert}"], limit=2)
    with pytest.raises(UsageError, match="two models are named 'a'"):
        run_crows([f"a={tiny_bert}", f"a={tiny_bert_b}"], limit=2)
    assert spy.loaded == []


def test_every_classifier_is_resolved_before_the_first_is_loaded(
    tiny_hf_classifier, tiny_bert, tmp_path, monkeypatch
):
    """Classifiers go through the backend registry too: a missing folder, or a masked LM
    where a classifier is needed, fails before the first classifier is loaded."""
    from pathlib import Path

    from biasprobe.downstream.run import run_downstream
    from biasprobe.probes import load_probe_set

    ps = load_probe_set(Path(__file__).resolve().parents[1] / "probes" / "sentiment-age.yaml")
    spy = _Spy(monkeypatch)
    with pytest.raises(ModelLoadError):
        run_downstream(ps, [str(tiny_hf_classifier), str(tmp_path / "missing")], cache=False)
    with pytest.raises(ModelLoadError, match="not a sequence classifier"):
        run_downstream(ps, [str(tiny_hf_classifier), str(tiny_bert)], cache=False)
    assert spy.loaded == []


def test_crows_runs_several_models_with_aliases_and_compares_them(
    tiny_bert, tiny_bert_b, monkeypatch
):
    spy = _Spy(monkeypatch)
    both = run_crows([f"base={tiny_bert}", f"other={tiny_bert_b}"], limit=12, n_boot=200)
    assert spy.loaded == ["base", "other"] and spy.closed == ["base", "other"]
    assert both.models == ["base", "other"]
    assert [m["alias_of"] for m in both.meta["models"]] == [str(tiny_bert), str(tiny_bert_b)]
    # each model's numbers are those of a run of that model alone
    alone = run_crows(str(tiny_bert_b), limit=12)
    mine = both.pairs[both.pairs["model"] == "other"].drop(columns="model").reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, alone.pairs.drop(columns="model"))
    # the comparison, recomputed from the pair outcomes directly
    c = both.comparison
    assert c is not None and set(c["model"]) == {"other"} and set(c["base"]) == {"base"}
    overall = c[c["level"] == "overall"].iloc[0]
    wide = both.pairs.pivot(index="pair_id", columns="model", values="outcome")
    wide = wide[(wide != "skipped").all(axis=1)]
    x0 = (wide["base"] == "more").to_numpy(float)
    x1 = (wide["other"] == "more").to_numpy(float)
    assert overall["n"] == len(wide)
    assert overall["base_mean"] == pytest.approx(100 * x0.mean())
    assert overall["change"] == pytest.approx(100 * (x1.mean() - x0.mean()))
    only_b, only_m = int(((x0 == 1) & (x1 == 0)).sum()), int(((x0 == 0) & (x1 == 1)).sum())
    expected = 1.0 if only_b + only_m == 0 else stats.binomtest(only_b, only_b + only_m, 0.5).pvalue
    assert overall["p_value"] == pytest.approx(expected)
    assert overall["score"] == "stereotype_pct" == both.summary["score"].iloc[0]


def test_crows_command_takes_several_models(tiny_bert, tiny_bert_b, tmp_path):
    out = tmp_path / "run"
    args = ["crows", "-m", f"base={tiny_bert}", "-m", f"other={tiny_bert_b}", "--limit", "5"]
    res = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "Change from the base model" in res.output
    summary = pd.read_csv(out / "summary.csv")
    assert list(dict.fromkeys(summary["model"])) == ["base", "other"]
    assert (out / "comparison.csv").is_file() and (out / "report.html").is_file()
    assert np.isfinite(pd.read_csv(out / "comparison.csv")["change"]).all()


def test_a_model_object_lacking_its_protocol_is_refused_naming_what_it_lacks(tiny_bert):
    """Tasks use every member the protocols declare directly (no getattr fallbacks), so a model
    object handed in is checked against its family's protocol before anything runs."""
    import biasprobe
    from biasprobe.backends import MaskedLMBackend, load_backend
    from biasprobe.probes import load_probe_set

    class Half:  # a duck-typed masked LM with only the fill-mask basics
        name = "half-model"
        mask_token = "[MASK]"
        vocab = ["a", "b"]
        info: dict = {}

        def mask_logprobs(self, sentences):
            return np.zeros((len(sentences), 2), dtype=np.float32)

    with pytest.raises(UsageError) as err:
        engine.resolve([Half()], "masked-lm")
    text = str(err.value)
    assert "half-model" in text and "chain_logprobs" in text and "unk_id" in text
    assert "MaskedLMBackend" in text
    with pytest.raises(UsageError, match="half-model"):
        biasprobe.run(load_probe_set(REPO / "probes" / "gender.yaml"), [Half()], n_bootstrap=100)
    with pytest.raises(UsageError, match="not a classifier"):
        engine.resolve([Half()], "classifier")
    # a real backend (a MaskedLMBackend, defaults for the optional members) passes
    backend = load_backend(str(tiny_bert), device="cpu")
    try:
        assert isinstance(backend, MaskedLMBackend)
        assert [m.name for m in engine.resolve([backend], "masked-lm")] == [backend.name]
    finally:
        backend.close()
