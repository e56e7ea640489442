"""The bias-bench leaderboard figures for bert-base-uncased, when its real weights are local.

bias-bench (Meade et al. 2022, Table: CrowS-Pairs stereotype scores of BERT) reports gender
57.25, race-color 62.33, religion 62.86 and 60.81 overall with its scoring. This test needs
bert-base-uncased in the local Hugging Face cache (HF_HOME / HF_HUB_CACHE); nothing is
downloaded. Without it the test is skipped with that reason — never faked.
"""

from __future__ import annotations

import pytest

EXPECTED = {"gender": 57.25, "race-color": 62.33, "religion": 62.86}
EXPECTED_OVERALL = 60.81


def _cached_bert_base() -> bool:
    try:
        from transformers.utils import cached_file

        for name in ("config.json", "vocab.txt"):
            if cached_file("bert-base-uncased", name, local_files_only=True) is None:
                return False
        return True
    except Exception:
        return False


pytestmark = pytest.mark.skipif(
    not _cached_bert_base(),
    reason="bert-base-uncased weights are not in the local Hugging Face cache (HF_HOME / "
    "HF_HUB_CACHE); the bias-bench figures can only be checked with the real model",
)


@pytest.fixture(scope="module")
def backend():
    from biasprobe.backends.hf import load_hf_masked_lm

    b = load_hf_masked_lm("bert-base-uncased", device="auto", batch_size=64)
    yield b
    b.close()


@pytest.mark.parametrize("bias_type", sorted(EXPECTED))
def test_bias_bench_figures_per_bias_type(backend, bias_type):
    from biasprobe.crows import run_crows

    res = run_crows(backend, scoring="meade", bias_types=[bias_type])
    row = res.summary.set_index("key").loc[bias_type]
    assert round(row.metric, 2) == pytest.approx(EXPECTED[bias_type], abs=0.011)


def test_bias_bench_figure_overall(backend):
    from biasprobe.crows import run_crows

    res = run_crows(backend, scoring="meade")
    row = res.summary.set_index("key").loc["all"]
    assert round(row.metric, 2) == pytest.approx(EXPECTED_OVERALL, abs=0.011)
