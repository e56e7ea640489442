"""Honest model comparisons (issue 10): rank correlation over a token set fixed by the base model,
paired intervals for every change from the base, and signed gaps read by their size."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

import biasprobe
from biasprobe.probes import load_probe_set
from biasprobe.report import render_report
from biasprobe.scores import paired_delta, spearman_fixed, topk

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def two_random_models(tiny_bert, tiny_bert_b):
    probe_set = load_probe_set(REPO / "probes" / "gender.yaml")
    return biasprobe.run(probe_set, [str(tiny_bert), str(tiny_bert_b)], device="cpu", store="full")


def _vectors(result):
    base, other = result.models
    for pid in dict.fromkeys(result.scores["pair_id"]):
        yield from zip(result.pair_logprobs(base, pid), result.pair_logprobs(other, pid))


def test_independent_random_models_are_uncorrelated(two_random_models):
    top, full, union = [], [], []
    for x, y in _vectors(two_random_models):
        top.append(spearman_fixed(x, y, 300))
        full.append(spearman_fixed(x, y, None))
        ids = np.union1d(topk(x, 300)[0], topk(y, 300)[0])
        union.append(spearmanr(x[ids], y[ids]).statistic)
    assert len(top) == 92
    assert abs(np.mean(top)) < 0.1  # base model's top 300: one sentence has σ ≈ 0.06
    assert max(abs(r) for r in full) < 0.1  # whole vocabulary: every sentence
    # the old union-of-both-top-300 set builds in a strong negative correlation
    assert np.mean(union) < -0.5


def test_a_model_against_itself_gives_one(two_random_models):
    for x, _ in _vectors(two_random_models):
        assert spearman_fixed(x, x, 300) == pytest.approx(1.0)
        assert spearman_fixed(x, x, None) == pytest.approx(1.0)


def _table(page: str, cls: str) -> list[list[str]]:
    m = re.search(rf'<table class="[^"]*{cls}[^"]*">(.*?)</table>', page, re.S)
    assert m, cls
    rows = re.findall(r"<tr>(.*?)</tr>", m.group(1), re.S)
    return [
        [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r)]
        for r in rows
    ]


def _num3(v: float, sign: str = "") -> str:
    """Three decimals, or two significant digits for a value that would read as 0."""
    digits = 1 - math.floor(math.log10(abs(v))) if v != 0 and round(v, 3) == 0 else 3
    return format(v, f"{sign}.{digits}f")


def test_report_states_directions_and_reads_signed_gaps(two_random_models):
    result = two_random_models
    page = render_report([result])
    assert "lower = less skew" in page and "closer to zero = less skew" in page
    assert "the base model&#x27;s top 300 tokens" in page or "the base model's top 300" in page
    assert "the whole vocabulary" in page
    rows = _table(page, "gap-comparison")
    assert rows[0][:8] == [
        "model",
        "level",
        "key",
        "gap base",
        "gap model",
        "|gap| base",
        "|gap| model",
        "Δ|gap|",
    ]
    templates_with_targets = result.scores.dropna(subset=["target_gap_mean"])["template_id"]
    assert len(rows) == 2 + templates_with_targets.nunique()  # heading, set, each template
    row = rows[1]
    assert row[1:3] == ["set", result.meta["probe_set"]["name"]]
    row = row[:1] + row[3:]
    base, other = result.models
    sc = result.scores.set_index(["model", "pair_id"])
    d = paired_delta(
        sc.loc[base, "target_gap_mean"].to_numpy(),
        sc.loc[other].loc[sc.loc[base].index, "target_gap_mean"].to_numpy(),
        sc.loc[base, "template_id"].tolist(),
        seed=0,
    )
    templates = sc.loc[base, "template_id"]
    gaps = {m: sc.loc[m, "target_gap_mean"] for m in (base, other)}
    means = {m: gaps[m][gaps[m].notna()].groupby(templates).mean().mean() for m in gaps}
    assert row[1] == _num3(means[base], "+") and row[2] == _num3(means[other], "+")
    assert row[3] == _num3(abs(means[base])) and row[4] == _num3(abs(means[other]))
    assert row[5] == _num3(abs(means[other]) - abs(means[base]), "+")
    n_templates = templates[gaps[base].notna() & gaps[other].notna()].nunique()
    if n_templates < 6:  # too few templates for a set-level interval: the cell says why
        assert math.isnan(d["abs_delta_low"])
        assert row[6] == f"n/a ({n_templates} template{'s' if n_templates != 1 else ''})"
    else:
        assert row[6] == f"[{_num3(d['abs_delta_low'], '+')}, {_num3(d['abs_delta_high'], '+')}]"
    words = "closer to zero" if abs(means[other]) < abs(means[base]) else "further from zero"
    assert row[8].startswith(words)
    assert ("sign flipped" in row[8]) == (np.sign(means[base]) != np.sign(means[other]))
