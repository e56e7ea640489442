"""targets.csv records each prior sentence exactly as it was scored: an attribute word of
several WordPieces is masked with as many masks (items.csv keeps one mask per word)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

PROBE = """\
name: prior-provenance
version: 1
description: Kurita-style pairs whose attribute is several WordPieces.
source: written for this test
orientation: {minoritized: women, normative: men}
lexicons:
  occupation: [firefighter, nurse, police officer]
pairs:
  - id: is-a
    template: "[MASK] is a {occupation}."
    groups: [men, women]
    targets: [he, she]
    attribute: occupation
"""


def test_prior_sentence_as_scored(tiny_bert: Path, tmp_path: Path) -> None:
    from transformers import BertForMaskedLM, BertTokenizer

    from biasprobe.probes import load_probe_set
    from biasprobe.runner import run

    path = tmp_path / "p.yaml"
    path.write_text(PROBE, encoding="utf-8")
    probe_set = load_probe_set(path)
    result = run(probe_set, [str(tiny_bert)], device="cpu", n_bootstrap=100, cache=None)
    tok = BertTokenizer.from_pretrained(str(tiny_bert))
    model = BertForMaskedLM.from_pretrained(str(tiny_bert)).eval()
    targets = result.targets
    rows = targets[targets.prior_logprob.notna()]
    assert len(rows) == 2 * len(probe_set.items)
    want = {
        "firefighter": "[MASK] is a [MASK] [MASK].",  # fire ##fighter
        "nurse": "[MASK] is a [MASK].",
        "police officer": "[MASK] is a [MASK] [MASK].",  # two words, one piece each
    }
    items = result.items.set_index(["pair_id", "side"])
    for r in rows.itertuples():
        word = next(w for w in want if w.replace(" ", "-") in r.pair_id or w in r.pair_id)
        assert r.prior_sentence == want[word], (r.pair_id, r.prior_sentence)
        # items.csv keeps the set-level form: one mask per attribute word
        assert items.loc[(r.pair_id, r.side), "prior_sentence"].count("[MASK]") == 1 + len(
            word.split()
        )
        # the logged text is what was scored: log p(target | that sentence), computed here
        enc = tok(r.prior_sentence, return_tensors="pt")
        first_mask = int((enc["input_ids"][0] == tok.mask_token_id).nonzero()[0])
        with torch.no_grad():
            logits = model(**enc).logits[0, first_mask]
        lp = torch.log_softmax(logits.double(), -1)[tok.convert_tokens_to_ids(r.target)]
        assert float(lp) == pytest.approx(r.prior_logprob, abs=1e-5)
    # non-own-target rows carry no prior sentence
    assert (targets[targets.prior_logprob.isna()].prior_sentence == "").all()
