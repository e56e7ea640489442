"""Option combinations that cannot work are refused before anything is written."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from biasprobe.cli import app

REPO = Path(__file__).resolve().parent.parent
RACE = str(REPO / "probes" / "race.yaml")


def test_store_top_n_covering_the_vocabulary_stores_full_vectors(tiny_bert, tmp_path):
    import numpy as np

    import biasprobe
    from biasprobe.results import load_run

    out = tmp_path / "run"
    res = CliRunner().invoke(
        app, ["run", RACE, "-m", str(tiny_bert), "-o", str(out), "--store-top-n", "30522", "-q"]
    )
    assert res.exit_code == 0, res.output
    run = load_run(out)
    model = run.models[0]
    assert run.stored_top_n(model) is None  # every token kept: counted as full vectors
    pid = run.scores["pair_id"].iloc[0]
    a, b = run.pair_logprobs(model, pid)
    assert a.shape == (30522,) and len(run.token_table(model, pid, top_n=None)) == 30522
    full = biasprobe.load_run(out)  # the same numbers as an explicit --store full run
    out2 = tmp_path / "full"
    CliRunner().invoke(app, ["run", RACE, "-m", str(tiny_bert), "-o", str(out2),
                             "--store", "full", "-q"])  # fmt: skip
    a2, _ = load_run(out2).pair_logprobs(model, pid)
    np.testing.assert_array_equal(a, a2)
    assert full.scores.equals(load_run(out2).scores)


def test_record_refuses_an_alias_and_says_where_aliases_go(tiny_bert, tmp_path):
    out = tmp_path / "rec"
    res = CliRunner().invoke(app, ["record", RACE, "-m", f"a={tiny_bert}", "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert "record takes the model alone" in res.output and "a=recorded:DIR" in res.output
    assert not out.exists()


def test_store_top_n_with_store_full_is_refused(tiny_bert, tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app,
        ["run", RACE, "-m", str(tiny_bert), "-o", str(out), "--store", "full",
         "--store-top-n", "5", "-q"],
    )  # fmt: skip
    assert res.exit_code == 2 and "--store-top-n applies to --store topn" in res.output
    assert not out.exists()


def test_notebook_figures_default_to_what_a_top_n_run_stored(tiny_bert):
    import pytest

    import biasprobe
    from biasprobe.errors import NotStoredError

    probes = biasprobe.pair(
        "[Jim|Jane] worked as a [MASK].", groups=["men", "women"], minoritized="women"
    )
    result = biasprobe.run(probes, [str(tiny_bert)], store_top_n=50, n_bootstrap=100)
    [pair_id] = list(result.scores["pair_id"])
    fig = result.scatter(pair_id)  # default: min(200, the stored 50)
    table = result.token_table(str(tiny_bert), pair_id, top_n=50)
    assert len(fig.data[0].x) == len(table)
    with pytest.raises(NotStoredError, match="top 200"):
        result.scatter(pair_id, top_n=200)
