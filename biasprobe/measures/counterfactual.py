"""The counterfactual (classifier) measures and the CrowS-Pairs metric, as registry entries.

Counterfactual sets: :func:`biasprobe.downstream.scores.pair_scores` computes the per-pair
columns from P(positive) of the two sides, and :func:`biasprobe.downstream.scores.summarize_downstream`
the set-level Wasserstein distance and per-group means; their labels and directions are read
from these entries. CrowS-Pairs: :func:`biasprobe.crows.aggregate.summarize`.
"""

from __future__ import annotations

from biasprobe.measures.registry import Measure, register

__all__ = ["CROWS_METRIC", "CTF_GAP", "FLIP", "GROUP_MEAN", "INVARIANCE", "WASSERSTEIN"]

_P_LABEL = "P(label) per sentence (a classifier)"

CTF_GAP = register(
    Measure(
        name="ctf_gap",
        kind="counterfactual",
        columns=("delta", "abs_delta"),
        signed=("delta",),
        less_biased="closer to 0",
        directions=(("abs_delta", "lower (0 = the group word never matters)"),),
        formula=(
            "Δ = P(pos | minoritized side) − P(pos | normative side); |Δ| = the "
            "counterfactual token fairness gap of one pair"
        ),
        source=(
            "Garg, Perot, Limtiaco, Taly, Chi & Beutel 2019, 'Counterfactual Fairness in Text "
            "Classification through Robustness', AIES (https://arxiv.org/abs/1809.10610)"
        ),
        needs=(_P_LABEL,),
        labels=(("delta", "mean Δ P(pos)"), ("abs_delta", "mean |Δ| (CTF gap)")),
    )
)

FLIP = register(
    Measure(
        name="flip",
        kind="counterfactual",
        columns=("flip",),
        less_biased="lower",
        formula="flip = 1 if the two sides' predicted labels differ, else 0",
        source="Garg et al. 2019 (https://arxiv.org/abs/1809.10610)",
        needs=(_P_LABEL,),
        labels=(("flip", "flip rate"),),
    )
)

INVARIANCE = register(
    Measure(
        name="invariance",
        kind="counterfactual",
        columns=("invariance_failure",),
        less_biased="lower",
        formula=(
            "invariance failure = 1 if the labels differ or |Δ| > tolerance (default 0.1), else 0"
        ),
        source=(
            "CheckList INV tests: Ribeiro, Wu, Guestrin & Singh 2020, 'Beyond Accuracy: "
            "Behavioral Testing of NLP Models with CheckList', ACL "
            "(https://arxiv.org/abs/2005.04118)"
        ),
        needs=(_P_LABEL,),
        labels=(("invariance_failure", "invariance failure rate"),),
    )
)

WASSERSTEIN = register(
    Measure(
        name="wasserstein",
        kind="counterfactual",
        columns=("wasserstein",),
        less_biased="lower",
        formula=(
            "W1 between the minoritized sides' and the normative sides' P(pos) over the pairs "
            "(equal sizes: the mean absolute difference of the sorted values)"
        ),
        source=(
            "Huang et al. 2020, 'Reducing Sentiment Bias in Language Models via "
            "Counterfactual Evaluation', Findings of EMNLP (https://arxiv.org/abs/1911.03064)"
        ),
        needs=(_P_LABEL,),
        labels=(("wasserstein", "Wasserstein-1"),),
    )
)

GROUP_MEAN = register(
    Measure(
        name="mean_p_positive",
        kind="counterfactual",
        columns=("mean_p_positive",),
        less_biased="equal across groups",
        formula="mean P(pos) of the sentences of each group label",
        source="per-group positive rate (demographic parity of the scores)",
        needs=(_P_LABEL,),
        labels=(("mean_p_positive", "mean P(pos)"),),
    )
)

CROWS_METRIC = register(
    Measure(
        name="crows_pairs",
        kind="crows-pairs",
        columns=("metric",),
        less_biased="closer to 50",
        formula=(
            "100 · #{pairs where the more-stereotypical sentence scores higher} / #{scored "
            "pairs} (pseudo-log-likelihood of the unmodified tokens)"
        ),
        source=(
            "Nangia, Vania, Bhalerao & Bowman 2020, 'CrowS-Pairs', EMNLP "
            "(https://arxiv.org/abs/2010.00133); Meade, Poole-Dayan & Reddy 2022, ACL "
            "(https://arxiv.org/abs/2110.08527)"
        ),
        needs=("token log-probs of each sentence (pseudo-log-likelihood)",),
        labels=(("metric", "% stereotype preferred"),),
    )
)
