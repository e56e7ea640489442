"""Prior-normalised log-probability bias (Kurita et al. 2019), checked against a direct
step-by-step computation with transformers on a tiny BERT built in the test session."""

from __future__ import annotations

import html as html_mod
import math
import re
from pathlib import Path

import numpy as np
import pytest

from biasprobe.errors import BiasprobeError
from biasprobe.probes import load_probe_set
from biasprobe.scores import SKEW_SCORES, kurita_bias

PROBE = """\
name: kurita-test
version: 1
description: A test set.
source: Written for the tests.
orientation:
  minoritized: women
  normative: men
lexicons:
  occupation: [nurse, police officer, stewardess]
pairs:
  - id: is-a
    template: "[MASK] is a {occupation}."
    groups: [men, women]
    targets: [he, she]
    attribute: occupation
  - id: the-said
    template: "The {occupation} said that [MASK] was late."
    groups: [men, women]
    targets: [he, businesswoman]
    attribute: occupation
  - id: plain
    template: "[He|She] worked as a [MASK]."
    groups: [men, women]
    targets: [nurse, pilot]
"""


def _probe(tmp_path: Path):
    path = tmp_path / "k.yaml"
    path.write_text(PROBE, encoding="utf-8")
    return load_probe_set(path)


def _direct(model, tok, ids: list[int], pos: int, pieces: list[int]) -> float:
    """Chain rule by hand: one full forward pass per piece, no biasprobe code."""
    import torch

    m = tok.mask_token_id
    total = 0.0
    for i in range(len(pieces)):
        seq = ids[:pos] + pieces[:i] + [m] * (len(pieces) - i) + ids[pos + 1 :]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([seq])).logits[0, pos + i]
        total += float(torch.log_softmax(logits.double(), -1)[pieces[i]])
    return total


def _direct_kurita(model, tok, sentence_words: str, attribute: str, targets, minoritized: int):
    """Kurita's score built from the filled sentence: the target's mask is the first mask;
    the prior hides every WordPiece of the attribute (found in the tokenized sentence)."""
    m = tok.mask_token_id
    text = sentence_words.replace("[MASK]", tok.mask_token)
    ids = tok(text)["input_ids"]
    pos = ids.index(m)
    attr = tok(attribute, add_special_tokens=False)["input_ids"]
    start = next(j for j in range(len(ids)) if ids[j : j + len(attr)] == attr)
    prior = ids[:start] + [m] * len(attr) + ids[start + len(attr) :]
    side = []
    for t in targets:
        pieces = tok(t, add_special_tokens=False)["input_ids"]
        side.append(_direct(model, tok, ids, pos, pieces) - _direct(model, tok, prior, pos, pieces))
    return side[minoritized] - side[1 - minoritized], side


@pytest.fixture(scope="module")
def hf(tiny_bert: Path):
    from transformers import BertForMaskedLM, BertTokenizer

    return BertForMaskedLM.from_pretrained(str(tiny_bert)).eval(), BertTokenizer.from_pretrained(
        str(tiny_bert)
    )


def test_test_words_are_what_the_test_needs(hf) -> None:
    _, tok = hf
    assert len(tok.tokenize("stewardess")) > 1  # a multi-piece attribute word
    assert len(tok.tokenize("police officer")) == 2  # a multi-word attribute
    assert len(tok.tokenize("businesswoman")) > 1  # a multi-piece target (chain rule)


def test_kurita_bias_formula_by_hand() -> None:
    # side A: -1 - (-3) = 2, side B: -2 - (-2.5) = 0.5; B minoritized: 0.5 - 2 = -1.5
    assert kurita_bias([-1.0, -2.0], [-3.0, -2.5], 1) == pytest.approx(-1.5)
    assert kurita_bias([-1.0, -2.0], [-3.0, -2.5], 0) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        kurita_bias([0, 0], [0, 0], 2)


def test_kurita_matches_direct_computation(tiny_bert: Path, tmp_path: Path, hf) -> None:
    from biasprobe.runner import run

    model, tok = hf
    probe_set = _probe(tmp_path)
    result = run(probe_set, [str(tiny_bert)], device="cpu", n_bootstrap=200)
    scores = result.scores.set_index("pair_id")
    targets = result.targets
    checked = 0
    for it in probe_set.items:
        row = scores.loc[it.pair_id]
        if it.attribute is None:
            assert math.isnan(row["kurita_bias"])
            assert not math.isnan(row["jaccard_distance"])
            continue
        want, side = _direct_kurita(
            model, tok, it.sentences[0], it.attribute, it.targets, it.minoritized
        )
        assert row["kurita_bias"] == pytest.approx(want, abs=1e-5), it.pair_id
        for key in SKEW_SCORES:  # one sentence on both sides: no skew score, by design
            assert pd_isna(row[key]), (it.pair_id, key)
        # targets.csv: the side's own target carries its prior log-prob
        for s, sd in enumerate(("A", "B")):
            t = targets[
                (targets.pair_id == it.pair_id)
                & (targets.side == sd)
                & (targets.target == it.targets[s])
            ].iloc[0]
            assert t["logprob"] - t["prior_logprob"] == pytest.approx(side[s], abs=1e-5)
        checked += 1
    assert checked == 6
    # the attribute items keep their top-k
    topk = result.topk
    assert set(topk.pair_id) >= {it.pair_id for it in probe_set.items}
    # aggregated: two templates are too few for a set-level interval or p (the set row says
    # so); each template row has its interval, n and p
    s = result.summary
    k = s[(s.score == "kurita_bias") & (s.level == "set")].iloc[0]
    assert k["n"] == 6 and k["templates"] == 2 and "2 templates: too few" in k["note"]
    assert pd_isna(k["ci_low"]) and pd_isna(k["p_value"])
    per_template = s[(s.score == "kurita_bias") & (s.level == "template")]
    assert sorted(per_template.key) == ["is-a", "the-said"]
    assert (per_template.ci_low <= per_template["mean"]).all()
    vals = scores.loc[[i.pair_id for i in probe_set.items if i.template_id == "is-a"]]
    got = per_template[per_template.key == "is-a"].iloc[0]["mean"]
    assert got == pytest.approx(float(np.mean(vals["kurita_bias"])))


def pd_isna(v) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


def test_prior_request_attribute_before_target(tiny_bert: Path, hf) -> None:
    """The target is the last mask of the prior when the attribute comes first; a multi-piece
    attribute word widens its mask, which shifts the target's position."""
    from biasprobe.backends.hf import load_hf_masked_lm

    _, tok = hf
    backend = load_hf_masked_lm(str(tiny_bert), device="cpu")
    m = tok.mask_token
    ids, pos, pieces = backend.prior_request(
        f"The {m} said that {m} was late.", "stewardess", 1, "he"
    )
    direct = tok("The stewardess said that he was late.")["input_ids"]
    attr = tok("stewardess", add_special_tokens=False)["input_ids"]
    want = [tok.mask_token_id if t in attr else t for t in direct]
    he = tok("he", add_special_tokens=False)["input_ids"]
    want_pos = direct.index(he[0])
    want[want_pos] = tok.mask_token_id
    assert (ids, pos, pieces) == (want, want_pos, he)
    ids2, pos2, _ = backend.prior_request(f"{m} is a {m} {m}.", "police officer", 0, "she")
    assert ids2 == [tok.cls_token_id, tok.mask_token_id, *tok("is a")["input_ids"][1:-1]] + [
        tok.mask_token_id
    ] * 2 + [*tok(".")["input_ids"][1:-1], tok.sep_token_id]
    assert pos2 == 1
    with pytest.raises(BiasprobeError, match="does not fit"):
        backend.prior_request(f"{m} is a {m}.", "police officer", 0, "she")
    backend.close()


def test_chain_logprobs_unchanged_by_refactor(tiny_bert: Path, hf) -> None:
    from biasprobe.backends.hf import load_hf_masked_lm

    model, tok = hf
    backend = load_hf_masked_lm(str(tiny_bert), device="cpu")
    sentence = f"She worked as a {tok.mask_token}."
    pieces = tok("businesswoman", add_special_tokens=False)["input_ids"]
    ids = tok(sentence)["input_ids"]
    got = backend.chain_logprobs([(sentence, pieces)])[0]
    assert got == pytest.approx(
        _direct(model, tok, ids, ids.index(tok.mask_token_id), pieces), abs=1e-5
    )
    backend.close()


def test_recorded_backend_refuses_attribute_items(tmp_path: Path) -> None:
    from biasprobe.backends.recorded import builtin_recorded_models
    from biasprobe.runner import run

    names = builtin_recorded_models()
    if not names:
        pytest.skip("no built-in recorded model")
    probe_set = _probe(tmp_path)
    with pytest.raises(BiasprobeError, match="declares an attribute"):
        run(probe_set, [f"recorded:{names[0]}"], n_bootstrap=200)


def test_kurita_on_a_bpe_model_matches_direct_computation(tiny_roberta: Path, tmp_path: Path):
    """Byte-level BPE: words are split after the text before their mask (``Ġword``)."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from biasprobe.runner import run

    path = tmp_path / "k.yaml"
    path.write_text(
        PROBE.replace("[nurse, police officer, stewardess]", "[nurse, police officer]")
        .replace("businesswoman", "she")
        .split("  - id: plain")[0],
        encoding="utf-8",
    )
    probe_set = load_probe_set(path)
    result = run(probe_set, [str(tiny_roberta)], device="cpu", n_bootstrap=200)
    model = AutoModelForMaskedLM.from_pretrained(str(tiny_roberta)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_roberta))
    scores = result.scores.set_index("pair_id")

    def words(text_before: str, word: str) -> list[int]:
        return tok((" " if text_before else "") + word, add_special_tokens=False)["input_ids"]

    for it in probe_set.items:
        sentence = it.sentences[0].replace("[MASK]", tok.mask_token)
        ids = tok(sentence)["input_ids"]
        pos = ids.index(tok.mask_token_id)
        before = sentence[: sentence.index(tok.mask_token)].strip()
        attr = words("x", it.attribute)  # the attribute never starts these sentences
        start = next(j for j in range(len(ids)) if ids[j : j + len(attr)] == attr)
        prior = ids[:start] + [tok.mask_token_id] * len(attr) + ids[start + len(attr) :]
        side = []
        for t in it.targets:
            pieces = words(before, t)
            side.append(
                _direct(model, tok, ids, pos, pieces) - _direct(model, tok, prior, pos, pieces)
            )
        want = side[it.minoritized] - side[1 - it.minoritized]
        assert scores.loc[it.pair_id, "kurita_bias"] == pytest.approx(want, abs=1e-5), it.pair_id


def test_report_shows_kurita_with_ci_n_and_p(tiny_bert: Path, tiny_bert_b: Path, tmp_path: Path):
    from test_report import tables

    from biasprobe.report import pairdata as report_html
    from biasprobe.report import write_report
    from biasprobe.runner import run

    probe_set = _probe(tmp_path)
    result = run(probe_set, [str(tiny_bert), str(tiny_bert_b)], device="cpu", n_bootstrap=200)
    page = write_report([result], tmp_path / "r.html").read_text("utf-8")
    rows = tables(page)["summary-set"]
    heads = rows[0]
    label = report_html.SCORE_LABELS["kurita_bias"]
    s = result.summary
    for model in (str(tiny_bert), str(tiny_bert_b)):
        want = s[(s.model == model) & (s.level == "set") & (s.score == "kurita_bias")].iloc[0]
        row = next(r for r in rows[1:] if r[0] == model and r[2] == label)
        cell = dict(zip(heads, row))
        assert cell["mean"] == f"{want['mean']:.3f}" and cell["n"] == str(want["n"])
        # 2 templates: too few for a set-level interval or p; the cells say why, not "nan"
        assert want["templates"] == 2 and math.isnan(want["p_value"])
        assert cell["p"] == cell["95% CI"] == "n/a (2 templates)"
        assert "nan" not in " ".join(row).lower()
    # the second model's change from the base: no set-level p either, and it says why
    row = next(r for r in rows[1:] if r[0] == str(tiny_bert_b) and r[2] == label)
    assert dict(zip(heads, row))["Δ p"] == "n/a (2 templates)"
    # the findings state Kurita's bias: the mean of the template means (computed here from
    # scores.csv), n, why there is no interval, and each template's mean with its interval
    findings = page[page.index('<section id="findings">') : page.index('<section id="pairs">')]
    text = re.sub(r"\s+", " ", html_mod.unescape(re.sub(r"<[^>]+>", "", findings)))
    for model in (str(tiny_bert), str(tiny_bert_b)):
        sc = result.scores[result.scores.model == model].dropna(subset=["kurita_bias"])
        per_template = sc.groupby("template_id", sort=False)["kurita_bias"].mean()
        assert len(per_template) == 2
        mean = float(np.mean(per_template.to_numpy()))
        dg = max(2, -math.floor(math.log10(abs(mean))) + 1)
        assert (
            f"Kurita bias (log p of the women word − the men word, each over its prior): "
            f"{mean:+.{dg}f} nats on average (n = {len(sc)} pairs in 2 templates" in text
        ), text
        assert "Too few templates (2; needs 6) for a set-level interval or test" in text
        t = s[(s.model == model) & (s.level == "template") & (s.score == "kurita_bias")]
        listed = []
        for r in t.itertuples():
            p = f", p = {r.p_value:.3f}" if r.p_value >= 0.001 else ", p = < 0.001"
            listed.append(
                f"{r.key} {per_template[r.key]:+.{dg}f} "
                f"({r.ci_low:+.{dg}f} to {r.ci_high:+.{dg}f}{p})"
            )
        assert "per template: " + ", ".join(listed) + "." in text, (listed, text)
    assert "nan" not in text.lower()
    # ... and appears among the signed scores compared in words (|Δ|, sign flip, Δ p)
    from biasprobe.scores import compare_to_base

    gap = tables(page)["gap-comparison"]
    kurita_rows = [dict(zip(gap[0], r)) for r in gap[1:] if r[gap[0].index("score")] == label]
    assert {r["level"] for r in kurita_rows} == {"set", "template"}
    d = compare_to_base(
        result.scores,
        result.scores,
        base_model=str(tiny_bert),
        other_model=str(tiny_bert_b),
        score_names=("kurita_bias",),
        set_name=probe_set.name,
        n_resamples=200,
    )
    want = d[d.level == "set"].iloc[0]
    got = next(r for r in kurita_rows if r["level"] == "set")
    assert math.isnan(want["p_value"]) and got["Δ p"] == "n/a (2 templates)"
