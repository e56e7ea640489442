"""The built-in fill-mask measures, declared as registry entries.

The fill-mask task computes them together, in one pass over each pair's two full-vocabulary
log-prob vectors (:func:`biasprobe.scores.pair_scores`, and :func:`biasprobe.scores.kurita_bias`
for attribute pairs); each entry's ``compute`` gives the same numbers for its own columns, and
its formula, source and direction are what pages and docs show.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from biasprobe.measures.registry import Measure, register
from biasprobe.scores import RBO_P, kurita_bias, pair_scores

__all__ = ["JS_DIVERGENCE", "KURITA", "RBO", "TARGET_GAP", "TOPK_OVERLAP"]

_LOGPROBS = "full-vocabulary log-probs at the mask"


def _columns_of(columns: tuple[str, ...]) -> Any:
    def compute(
        logp_a: np.ndarray,
        logp_b: np.ndarray,
        *,
        k: int,
        minoritized: int,
        target_logprobs: np.ndarray | None = None,
        rbo_p: float = RBO_P,
        **_: Any,
    ) -> dict[str, Any]:
        row = pair_scores(
            logp_a,
            logp_b,
            k=k,
            minoritized=minoritized,
            target_logprobs=target_logprobs,
            rbo_p=rbo_p,
        )
        return {c: row[c] for c in columns}

    return compute


def _kurita(
    logp_a: np.ndarray | None = None,
    logp_b: np.ndarray | None = None,
    *,
    target_logprobs: Any,
    prior_logprobs: Any,
    minoritized: int,
    **_: Any,
) -> dict[str, float]:
    return {"kurita_bias": kurita_bias(target_logprobs, prior_logprobs, minoritized)}


TOPK_OVERLAP = register(
    Measure(
        name="topk_overlap",
        columns=("overlap", "jaccard_distance", "top1_same"),
        summarised=("jaccard_distance",),
        less_biased="lower",
        directions=(("overlap", "higher"), ("top1_same", "true")),
        formula=(
            "top-k sets A and B of the two sides (ties to the lower token id): overlap = "
            "|A ∩ B|; jaccard_distance = 1 − |A ∩ B| / |A ∪ B| (0 = same tokens, 1 = none "
            "shared); top1_same = whether the most probable fill is the same"
        ),
        source=(
            "top-k comparison of PAIR's 'What Have Language Models Learned?' "
            "(https://pair.withgoogle.com/explorables/fill-in-the-blank/); Jaccard 1901"
        ),
        needs=(_LOGPROBS,),
        labels=(("jaccard_distance", "Jaccard dist."),),
        compares_sentences=True,
        compute=_columns_of(("overlap", "jaccard_distance", "top1_same")),
    )
)

RBO = register(
    Measure(
        name="rbo",
        columns=("rbo", "rbo_distance"),
        summarised=("rbo_distance",),
        less_biased="lower",
        directions=(("rbo", "higher"),),
        formula=(
            "extrapolated rank-biased overlap of the two top-k rankings, X_d = |A[:d] ∩ B[:d]|: "
            "RBO = (X_k/k)·p^k + ((1 − p)/p)·Σ_{d=1..k} (X_d/d)·p^d, p = 0.9; "
            "rbo_distance = 1 − RBO"
        ),
        source=(
            "Webber, Moffat & Zobel 2010, 'A Similarity Measure for Indefinite Rankings', "
            "ACM TOIS 28(4), eq. 32"
        ),
        needs=(_LOGPROBS,),
        labels=(("rbo_distance", "RBO dist."),),
        compares_sentences=True,
        compute=_columns_of(("rbo", "rbo_distance")),
    )
)

JS_DIVERGENCE = register(
    Measure(
        name="js_divergence",
        columns=("js_divergence",),
        less_biased="lower",
        formula=(
            "JS = ½ KL(P_A ‖ M) + ½ KL(P_B ‖ M), M = ½ (P_A + P_B), in bits over the whole "
            "vocabulary (0 = identical, 1 = disjoint)"
        ),
        source="Lin 1991, 'Divergence measures based on the Shannon entropy', IEEE Trans. IT",
        needs=(_LOGPROBS,),
        labels=(("js_divergence", "JS div. (bits)"),),
        compares_sentences=True,
        compute=_columns_of(("js_divergence",)),
    )
)

TARGET_GAP = register(
    Measure(
        name="target_gap",
        columns=("target_gap", "target_gap_mean"),
        summarised=("target_gap_mean",),
        signed=("target_gap", "target_gap_mean"),
        less_biased="closer to 0",
        formula=(
            "per target word t: log p(t | minoritized side) − log p(t | normative side) "
            "(multi-piece words by the chain rule over consecutive masks); target_gap = their "
            "sum, target_gap_mean = their mean"
        ),
        source=(
            "log-probability gap of target words, as in Kurita et al. 2019 without the prior "
            "(https://arxiv.org/abs/1906.07337)"
        ),
        needs=(_LOGPROBS, "log-probs of multi-piece target words (chain rule)"),
        labels=(("target_gap", "target gap"), ("target_gap_mean", "target gap / word")),
        compares_sentences=True,
        compute=_columns_of(("target_gap", "target_gap_mean")),
    )
)

KURITA = register(
    Measure(
        name="kurita",
        columns=("kurita_bias",),
        signed=("kurita_bias",),
        less_biased="closer to 0",
        formula=(
            "[log p(t_min | s) − log p(t_min | prior)] − [log p(t_norm | s) − log p(t_norm | "
            "prior)], the prior being the sentence with the attribute masked too"
        ),
        source=(
            "Kurita, Vyas, Pareek, Black & Tsvetkov 2019, 'Measuring Bias in Contextualized "
            "Word Representations' (https://arxiv.org/abs/1906.07337)"
        ),
        needs=("target log-probs", "prior log-probs (attribute masked too)"),
        labels=(("kurita_bias", "Kurita bias (prior-norm.)"),),
        compute=_kurita,
    )
)
