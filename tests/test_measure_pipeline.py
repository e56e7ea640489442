"""A new optional measure is one registration: the fill-mask task loads what it needs before
any model, prepares it once per model, computes it per pair and summarises it with the other
scores — numbers checked against numpy on the model's own stored vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import biasprobe
from biasprobe.errors import UsageError
from biasprobe.measures import Measure, register, unregister
from biasprobe.probes import load_probe_set

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def toy_measure():
    calls = {"load": 0, "prepare": 0}

    def load():
        calls["load"] += 1
        return {"offset": 0.5}

    def prepare(vocab, loaded):
        calls["prepare"] += 1
        return np.array([len(t) for t in vocab], dtype=np.float64) + loaded["offset"]

    def compute(logp_a, logp_b, *, context, minoritized, **_):
        mean_len = [float(np.exp(lp) @ context) for lp in (logp_a, logp_b)]
        return {"toy_len_gap": mean_len[minoritized] - mean_len[1 - minoritized]}

    register(
        Measure(
            name="toy",
            columns=("toy_len_gap",),
            signed=("toy_len_gap",),
            formula="E_p[len(token)] minoritized − normative",
            source="a test",
            optional=True,
            load=load,
            prepare=prepare,
            compute=compute,
            settings=lambda **kw: {"offset": 0.5},
        )
    )
    yield calls
    unregister("toy")


def test_a_registered_measure_runs_through_the_fill_mask_task(toy_measure, tiny_bert):
    ps = load_probe_set(REPO / "probes" / "race.yaml")
    plain = biasprobe.run(ps, [str(tiny_bert)], cache=False, n_bootstrap=100, store="full")
    res = biasprobe.run(
        ps, [str(tiny_bert)], cache=False, n_bootstrap=100, store="full", measures=["toy"]
    )
    assert toy_measure == {"load": 1, "prepare": 1}
    # every other number is the same with the measure as without it
    pd.testing.assert_frame_equal(res.scores.drop(columns="toy_len_gap"), plain.scores)
    model = res.models[0]
    vocab = res.vocab(model)
    lengths = np.array([len(t) for t in vocab], dtype=np.float64) + 0.5
    items = {it.pair_id: it for it in ps.items}
    topk = res.topk
    for row in res.scores.itertuples(index=False):
        sides = topk[topk["pair_id"] == row.pair_id].drop_duplicates("side")
        sentence = dict(zip(sides["side"], sides["sentence"]))
        table = res.logprobs[model]
        table = table.to_table() if hasattr(table, "to_table") else table
        e = [float(np.exp(table.row(sentence[s]).astype(np.float64)) @ lengths) for s in "AB"]
        m = items[row.pair_id].minoritized
        assert row.toy_len_gap == pytest.approx(e[m] - e[1 - m], rel=1e-5)
    rows = res.summary[res.summary["score"] == "toy_len_gap"]
    assert set(rows["level"]) == {"template", "set"}
    for r in rows[rows["level"] == "template"].itertuples(index=False):
        mine = res.scores.loc[res.scores["template_id"] == r.key, "toy_len_gap"]
        assert r.mean == pytest.approx(mine.mean()) and r.n == len(mine)
    assert res.meta["settings"]["toy"] == {"offset": 0.5}


def test_an_unknown_or_built_in_measure_is_refused_before_any_model(tmp_path):
    ps = load_probe_set(REPO / "probes" / "race.yaml")
    with pytest.raises(UsageError, match="nope"):
        biasprobe.run(ps, [str(tmp_path / "missing")], measures=["nope"])
    with pytest.raises(UsageError, match="not an optional measure"):
        biasprobe.run(ps, [str(tmp_path / "missing")], measures=["rbo"])
