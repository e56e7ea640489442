"""Done-means test of ``biasprobe debias``: a biased tiny masked LM, its CDA twin and a control.

A tiny BERT (no dropout) is trained from random weights on a synthetic corpus in which "he"
only ever has three "male" jobs and "she" three "female" ones ("she is a nurse ."). The engine (``biasprobe.run`` on a probe set
written here) must find it biased: the mean target gap (log p(job | woman) − log p(job | man),
over the three female jobs, in six templates) is large, with a 95% CI far from 0, and the top-k skew
(Jensen–Shannon divergence) is large. Then, from that model, the same corpus and the same
budget: ``--method cda`` must cut the target gap by at least 80%, while the control
(``--method none``: no augmentation) keeps at least 70% of it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from biasprobe.debias.train import DebiasConfig, debias
from tests.debias_helpers import FEMALE_JOBS, VERBS, biased_corpus, build_small_bert

_PAIRS = "\n".join(
    f'  - {{id: {v}, template: "[she|he] {v} a [MASK] .", groups: [women, men]}}' for v in VERBS
)
PROBES = f"""
name: debias-occupations
version: 1
description: Which jobs a model gives women versus men (synthetic test vocabulary).
source: written for the debias test.
orientation: {{minoritized: women, normative: men}}
top_k: 5
targets: [{", ".join(FEMALE_JOBS)}]
pairs:
{_PAIRS}
"""

TRAIN = {"steps": 400, "lr": 3e-3, "batch_size": 32, "seed": 0, "max_length": 16, "warmup": 0.05}


def _set_row(result, model, score):
    s = result.summary
    row = s[(s.model == model) & (s.level == "set") & (s.score == score)]
    assert len(row) == 1, row
    return row.iloc[0]


def _gap_direct(folder, subject_w, subject_m):
    """Independent computation with transformers: mean over the female jobs of
    log p(job | "<woman> worked as a [MASK] .") − log p(job | "<man> ...")."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForMaskedLM.from_pretrained(str(folder)).eval()
    ids = tok.convert_tokens_to_ids(FEMALE_JOBS)
    out = []
    with torch.no_grad():
        for subj in (subject_w, subject_m):
            b = tok(f"{subj} is a {tok.mask_token} .", return_tensors="pt")
            pos = int((b["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0])
            lp = torch.log_softmax(model(**b).logits[0, pos].double(), -1)
            out.append(lp[ids].numpy())
    return float(np.mean(out[0] - out[1]))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models train many times faster on one thread than on several contended ones."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_cda_removes_a_learned_gender_bias_and_the_control_does_not(tmp_path):
    import biasprobe

    corpus = biased_corpus(tmp_path / "corpus.txt")
    random_lm = build_small_bert(tmp_path / "random")
    biased = debias(
        DebiasConfig(
            method="none",
            model=str(random_lm),
            corpus=str(corpus),
            out=str(tmp_path / "biased"),
            **TRAIN,
        )
    ).out
    cda = debias(
        DebiasConfig(
            method="cda", model=str(biased), corpus=str(corpus), out=str(tmp_path / "cda"), **TRAIN
        )
    ).out
    control = debias(
        DebiasConfig(
            method="none",
            model=str(biased),
            corpus=str(corpus),
            out=str(tmp_path / "control"),
            **TRAIN,
        )
    ).out

    probes = biasprobe.probes_from_yaml(PROBES)
    result = biasprobe.run(
        probes,
        [f"biased={biased}", f"cda={cda}", f"control={control}"],
        n_bootstrap=1000,
        seed=0,
    )
    gap = {m: _set_row(result, m, "target_gap_mean") for m in ("biased", "cda", "control")}
    js = {m: _set_row(result, m, "js_divergence") for m in ("biased", "cda", "control")}

    # The engine's number is the one transformers gives directly (pair worked/she-he).
    scores = result.scores
    row = scores[(scores.model == "biased") & (scores.pair_id == "is")].iloc[0]
    assert math.isclose(row.target_gap_mean, _gap_direct(biased, "she", "he"), abs_tol=1e-4)

    # 1. The trained model is biased, and the CIs say so.
    for m in gap:  # shown with pytest -s
        print(
            m,
            *(
                f"{k} {v[m]['mean']:.3f} [{v[m]['ci_low']:.3f}, {v[m]['ci_high']:.3f}]"
                for k, v in (("gap", gap), ("js", js))
            ),
        )
    assert gap["biased"]["mean"] > 2.0 and gap["biased"]["ci_low"] > 1.0, gap["biased"]
    assert js["biased"]["mean"] > 0.3 and js["biased"]["ci_low"] > 0.2, js["biased"]
    # 2. CDA removes at least 80% of the target gap; its CI excludes the biased model's mean.
    assert abs(gap["cda"]["mean"]) < 0.2 * gap["biased"]["mean"], (gap["cda"], gap["biased"])
    assert gap["cda"]["ci_high"] < gap["biased"]["ci_low"]
    assert js["cda"]["mean"] < 0.5 * js["biased"]["mean"], (js["cda"], js["biased"])
    # 3. The control (same corpus and steps, no augmentation) keeps at least 70% of it.
    assert gap["control"]["mean"] > 0.7 * gap["biased"]["mean"], (gap["control"], gap["biased"])


@pytest.mark.parametrize("method", ["none", "cda"])
def test_the_same_seed_gives_the_same_weights(tmp_path, method):
    from safetensors.torch import load_file

    corpus = biased_corpus(tmp_path / "corpus.txt", n=100)
    base = build_small_bert(tmp_path / "random")
    small = {**TRAIN, "steps": 12}
    a = debias(
        DebiasConfig(
            method=method, model=str(base), corpus=str(corpus), out=str(tmp_path / "a"), **small
        )
    ).out
    b = debias(
        DebiasConfig(
            method=method, model=str(base), corpus=str(corpus), out=str(tmp_path / "b"), **small
        )
    ).out
    c = debias(
        DebiasConfig(
            method=method,
            model=str(base),
            corpus=str(corpus),
            out=str(tmp_path / "c"),
            **{**small, "seed": 1},
        )
    ).out
    wa, wb, wc = (load_file(str(f / "model.safetensors")) for f in (a, b, c))
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)
