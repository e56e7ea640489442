"""`biasprobe run --valence`: the signed valence of completions per pair and its aggregates,
checked against a direct computation (transformers for the log-probs, the VADER lexicon file
read here, numpy for the measures, itertools for the p-values)."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from biasprobe.cli import app
from biasprobe.probes import load_probe_set

PROBE = """\
name: valence-test
version: 1
description: A test set.
source: Written for the tests.
orientation:
  minoritized: women
  normative: men
lexicons:
  verb: [was, seemed]
pairs:
  - id: felt
    template: "The [woman|man] {verb} [MASK]."
    groups: [women, men]
  - id: is-a
    template: "[She|He] is a [MASK] person."
    groups: [women, men]
  - id: said
    template: "The [man|woman] said it was [MASK]."
    groups: [men, women]
"""
MEASURES = ("share_neg_topk", "share_pos_topk", "mass_neg_topk", "mass_pos_topk")
MEASURES += ("mass_neg_vocab", "mass_pos_vocab")


def _vader_file() -> dict[str, float]:
    vader = pytest.importorskip("vaderSentiment", reason="the optional vaderSentiment is absent")
    path = Path(vader.__file__).parent / "vader_lexicon.txt"
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cols = line.split("\t")
        try:
            out[cols[0]] = float(cols[1])
        except (IndexError, ValueError):
            continue
    return out


def _direct_logprobs(model, tok, text: str) -> np.ndarray:
    import torch

    enc = tok(text.replace("[MASK]", tok.mask_token), return_tensors="pt")
    pos = int((enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0])
    with torch.no_grad():
        logits = model(**enc).logits[0, pos]
    return torch.log_softmax(logits.double(), -1).numpy()


def _direct_side(lp: np.ndarray, vocab: list[str], lex: dict[str, float], k: int) -> dict:
    pol = np.zeros(len(vocab))
    for i, tok in enumerate(vocab):
        if tok.startswith("##") or tok not in lex and tok.lower() not in lex:
            continue
        v = lex.get(tok, lex.get(tok.lower()))
        pol[i] = -1 if v < 0 else (1 if v > 0 else 0)
    order = sorted(range(lp.size), key=lambda t: (-lp[t], t))[:k]
    p = np.exp(lp)
    top = pol[order]
    return {
        "share_neg_topk": np.mean(top < 0),
        "share_pos_topk": np.mean(top > 0),
        "mass_neg_topk": p[order][top < 0].sum(),
        "mass_pos_topk": p[order][top > 0].sum(),
        "mass_neg_vocab": p[pol < 0].sum(),
        "mass_pos_vocab": p[pol > 0].sum(),
    }


def _exact_sign_flip(values) -> float:
    v = [float(x) for x in values]
    obs = abs(sum(v))
    hits = sum(
        abs(sum(s * x for s, x in zip(signs, v))) >= obs - 1e-9
        for signs in itertools.product((1, -1), repeat=len(v))
    )
    return hits / 2 ** len(v)


def test_run_valence_matches_direct_computation(tiny_bert: Path, tmp_path: Path) -> None:
    from transformers import BertForMaskedLM, BertTokenizer

    from biasprobe.runner import run

    lex = _vader_file()
    path = tmp_path / "v.yaml"
    path.write_text(PROBE, encoding="utf-8")
    probe_set = load_probe_set(path)
    k = 50
    result = run(probe_set, [str(tiny_bert)], device="cpu", top_k=k, n_bootstrap=200, valence=True)
    model = BertForMaskedLM.from_pretrained(str(tiny_bert)).eval()
    tok = BertTokenizer.from_pretrained(str(tiny_bert))
    vocab = tok.convert_ids_to_tokens(list(range(len(tok))))
    scores = result.scores.set_index("pair_id")
    nonzero = 0
    for it in probe_set.items:
        sides = [_direct_side(_direct_logprobs(model, tok, s), vocab, lex, k) for s in it.sentences]
        mino, norm = sides[it.minoritized], sides[1 - it.minoritized]
        for m in MEASURES:
            got = scores.loc[it.pair_id, f"valence_{m}"]
            assert got == pytest.approx(mino[m] - norm[m], abs=1e-5), (it.pair_id, m)
            nonzero += got != 0
    assert nonzero > 0  # the measures are not all 0 on this model
    s = result.summary
    for m in MEASURES:
        col = f"valence_{m}"
        sub = s[s.score == col]
        tmpl = sub[sub.level == "template"].set_index("key")
        for t, vals in result.scores.groupby("template_id")[col]:
            assert tmpl.loc[t, "mean"] == pytest.approx(vals.mean())
            assert tmpl.loc[t, "n"] == len(vals)
            if len(vals) > 1:
                assert tmpl.loc[t, "p_value"] == pytest.approx(_exact_sign_flip(vals))
            else:  # one pair: no test (its two sign patterns always tie), not p = 1
                assert math.isnan(tmpl.loc[t, "p_value"])
        row = sub[sub.level == "set"].iloc[0]
        means = result.scores.groupby("template_id")[col].mean()
        assert row["mean"] == pytest.approx(means.mean())
        assert row["n"] == len(probe_set.items)
        assert row["templates"] == len(means)
        if len(means) < 6:  # too few templates for a set-level interval or test
            assert math.isnan(row["p_value"]) and math.isnan(row["ci_low"])
            assert "too few" in row["note"]
        else:
            assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert "VADER" in result.meta["settings"]["valence"]["lexicon"]


def test_without_valence_no_columns(tiny_bert: Path, tmp_path: Path) -> None:
    from biasprobe.runner import run

    path = tmp_path / "v.yaml"
    path.write_text(PROBE, encoding="utf-8")
    result = run(load_probe_set(path), [str(tiny_bert)], device="cpu", n_bootstrap=200)
    assert not [c for c in result.scores.columns if c.startswith("valence_")]
    assert not result.summary.score.str.startswith("valence_").any()


def test_missing_package_is_a_clear_error(tiny_bert: Path, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(PROBE, encoding="utf-8")
    monkeypatch.setitem(sys.modules, "vaderSentiment", None)  # import now fails
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app, ["run", str(path), "-m", str(tiny_bert), "-o", str(out), "--valence"]
    )
    assert res.exit_code == 2, res.output
    assert "pip install 'biasprobe[valence]'" in " ".join(res.output.split())
    assert not out.exists()


def test_cli_valence_writes_columns(tiny_bert: Path, tmp_path: Path) -> None:
    pytest.importorskip("vaderSentiment", reason="the optional vaderSentiment is absent")
    import pandas as pd

    path = tmp_path / "v.yaml"
    path.write_text(PROBE, encoding="utf-8")
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app, ["run", str(path), "-m", str(tiny_bert), "-o", str(out), "--valence", "-q"]
    )
    assert res.exit_code == 0, res.output
    scores = pd.read_csv(out / "scores.csv")
    summary = pd.read_csv(out / "summary.csv")
    assert "valence_mass_neg_vocab" in scores
    row = summary[(summary.score == "valence_mass_neg_vocab") & (summary.level == "set")]
    assert len(row) == 1
    tmpl = summary[(summary.score == "valence_mass_neg_vocab") & (summary.level == "template")]
    if len(tmpl) >= 6:
        assert not math.isnan(row.iloc[0]["p_value"])
    else:  # too few templates for a set-level claim: said in summary.csv
        assert math.isnan(row.iloc[0]["p_value"]) and "too few" in row.iloc[0]["note"]
        assert tmpl["p_value"].notna().any()
