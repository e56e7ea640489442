"""Memory-compact tables of a run: the topk table's categorical columns, the joins that let go
of their pieces, and the slotted probe items (the outputs stay what they were)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

import biasprobe
from biasprobe.probes import MASK, load_probe_set
from biasprobe.tasks.fillmask_tables import Frames as _Frames
from biasprobe.tasks.fillmask_tables import TopkColumns as _TopkColumns
from biasprobe.tasks.fillmask_tables import code_dtype as _code_dtype
from biasprobe.tasks.fillmask_tables import concat_frames as _concat

PROBE = """\
name: mem
version: 1
description: memory test
source: test
orientation: {minoritized: women, normative: men}
targets: [he, she]
top_k: 4
lexicons:
  name:
    women: [mary, linda, susan]
    men: [james, robert, john]
  occupation: [nurse, doctor, teacher, lawyer]
pairs:
  - id: works
    template: "{name} works as a {occupation} and [MASK] is here."
    groups: [women, men]
  - id: sees
    template: "[MASK] saw {name}, the {occupation}."
    groups: [women, men]
"""


@pytest.fixture(scope="module")
def run(tiny_bert, tmp_path_factory):
    path = tmp_path_factory.mktemp("mem") / "mem.yaml"
    path.write_text(PROBE, encoding="utf-8")
    ps = load_probe_set(path)
    result = biasprobe.run(ps, [str(tiny_bert)], cache=False, device="cpu", n_bootstrap=100)
    return ps, result


def test_topk_text_columns_are_small_categoricals_holding_the_same_text(run, tiny_bert):
    ps, result = run
    topk = result.topk
    assert len(topk) == len(ps.items) * 2 * 4
    for name in (*_TopkColumns.TEXT, "token"):
        col = topk[name]
        assert isinstance(col.dtype, pd.CategoricalDtype), name
        assert col.cat.codes.dtype.itemsize <= 2, name  # not an 8-byte pointer per row
        cats = list(col.cat.categories)
        assert cats == sorted(set(cats)), name  # sorted: sorting the column sorts the text
        assert not col.isna().any(), name
    # independent: every row against the probe items and the model's vocabulary
    from transformers import BertTokenizer

    tok = BertTokenizer.from_pretrained(str(tiny_bert))
    ids = sorted(set(topk["token_id"]))
    shown = dict(zip(ids, tok.batch_decode([[i] for i in ids]), strict=True))
    raw = dict(zip(ids, tok.convert_ids_to_tokens(ids), strict=True))
    by_id = {it.pair_id: it for it in ps.items}
    for row in topk.itertuples(index=False):
        it = by_id[row.pair_id]
        s = "AB".index(row.side)
        assert row.sentence == it.sentences[s].replace(MASK, "[MASK]")
        assert row.group == it.groups[s] and row.template_id == it.template_id
        assert row.role == ("minoritized" if s == it.minoritized else "normative")
        assert row.token == (shown[row.token_id].strip() or raw[row.token_id])
    # a text sort is unchanged by the categories
    as_text = topk.astype({c: str for c in (*_TopkColumns.TEXT, "token")})
    for key in ("pair_id", "sentence", "token"):
        np.testing.assert_array_equal(
            topk.sort_values([key, "logprob"], kind="stable").index,
            as_text.sort_values([key, "logprob"], kind="stable").index,
        )


def test_saved_topk_is_the_text_table(run, tmp_path):
    _, result = run
    out = result.save(tmp_path / "run")
    as_text = result.topk.astype({c: str for c in (*_TopkColumns.TEXT, "token")})
    assert (out / "topk.csv").read_text(encoding="utf-8") == as_text.to_csv(index=False)
    back = biasprobe.load_run(out).topk
    pd.testing.assert_frame_equal(back, as_text)


def test_code_widths_follow_pandas():
    for n in (1, 126, 127, 200, 32766, 32767, 40000):
        cat = pd.Categorical.from_codes(np.zeros(1, dtype=np.int64), categories=range(n))
        assert _code_dtype(n) == cat.codes.dtype, n


def test_topk_codes_widen_past_127_values():
    k, n = 2, 300
    top = _TopkColumns(n, k)
    vocab = [f"t{i}" for i in range(10)]
    for i in range(n):
        for s in (0, 1):
            values = {"model": "m", "pair_id": f"p{i:03d}", "template_id": "t", "side": "AB"[s]}
            values.update(group="g", role="r", sentence=f"s{i} {s}")
            top.put(i, s, values, np.array([i % 10, (i + 1) % 10]), [-1.0, -2.0], vocab)
    frame = top.frame(n)
    again = top.frame(n)  # asked again (or for fewer pairs): the same rows
    pd.testing.assert_frame_equal(again, frame)
    pd.testing.assert_frame_equal(top.frame(3), frame[: 3 * 2 * k], check_categorical=False)
    assert frame["pair_id"].cat.codes.dtype == np.int16
    assert frame["side"].cat.codes.dtype == np.int8
    assert list(frame["pair_id"][:: 2 * k]) == [f"p{i:03d}" for i in range(n)]
    assert list(frame["sentence"][1 :: 2 * k]) == [f"s{i} 0" for i in range(n)]
    assert list(frame["token"][:4]) == ["t0", "t1", "t0", "t1"]
    assert list(frame["rank"][:4]) == [1, 2, 1, 2]


def test_joining_model_tables_keeps_one_categorical():
    a = pd.DataFrame({"m": pd.Categorical(["x", "y"]), "v": [1.0, 2.0]})
    b = pd.DataFrame({"m": pd.Categorical(["b", "x"]), "v": [3.0, 4.0]})
    joined = _concat([a, b])
    assert isinstance(joined["m"].dtype, pd.CategoricalDtype)
    assert list(joined["m"].cat.categories) == ["b", "x", "y"]
    assert list(joined["m"]) == ["x", "y", "b", "x"]
    assert list(joined["v"]) == [1.0, 2.0, 3.0, 4.0]


def _pieces():
    """Per-request frames as score rows make them: str, float, int that becomes float where
    a piece has NaN, an object column of None and text."""
    rows = [
        [{"id": "a", "x": 1.5, "n": 1, "o": None, "b": True}],
        [{"id": "b", "x": float("nan"), "n": float("nan"), "o": "t", "b": False}],
        [{"id": "c", "x": 2.0, "n": 3, "o": None, "b": True}] * 70,
    ]
    return [pd.DataFrame(r) for r in rows]


def test_frames_join_column_by_column_as_a_whole_join_would():
    ref = pd.concat(_pieces(), ignore_index=True)
    frames = _Frames()
    for frame in _pieces():
        frames.append(frame)
    got = frames.frame()
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    assert got.to_csv(index=False) == ref.to_csv(index=False)
    assert len(frames.joined) == 1 and frames.pending == []  # the pieces are let go
    assert frames.frame() is got  # asked again: the same table
    # 64 pieces joined once, then the rest
    frames = _Frames()
    many = [pd.DataFrame([{"id": str(i), "x": i / 3}]) for i in range(150)]
    for frame in many:
        frames.append(frame)
    pd.testing.assert_frame_equal(frames.frame(), pd.concat(many, ignore_index=True))


def test_frames_of_different_columns_join_whole():
    parts = [pd.DataFrame([{"a": 1, "b": "x"}]), pd.DataFrame([{"a": 2, "c": 0.5}])]
    frames = _Frames()
    for p in parts:
        frames.append(p.copy())
    pd.testing.assert_frame_equal(frames.frame(), pd.concat(parts, ignore_index=True))


def test_probe_items_are_slotted_and_share_their_fills(run):
    ps, _ = run
    it = ps.items[0]
    assert not hasattr(it, "__dict__")
    with pytest.raises(AttributeError):
        it.pair_id = "x"  # still frozen
    assert pickle.loads(pickle.dumps(it)) == it
    same_name = [
        x for x in ps.items if x.template_id == it.template_id and x.fills[0] == it.fills[0]
    ]
    assert len(same_name) == 4  # one per occupation
    assert all(x.fills[0] is it.fills[0] for x in same_name)
    assert it.fills[0] == ("name", "mary|james")
