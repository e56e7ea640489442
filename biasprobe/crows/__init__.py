"""CrowS-Pairs (Nangia et al. 2020) for masked LMs (both published scorings, batched) and
causal LMs (each sentence's log-likelihood, as lm-evaluation-harness's ``crows_pairs`` task).

``biasprobe crows -m MODEL`` on the command line (:mod:`biasprobe.crows.cli`), or::

    from biasprobe.crows import run_crows
    result = run_crows("bert-base-uncased", scoring="meade", bias_types=["gender"])
    result.summary          # overall and per bias type: metric %, 95% CI, n, p vs 50%
    result.save("reports/crows-bert")

The metric is the % of pairs where the model prefers the more-stereotypical sentence:
50% = no preference (the ideal). A causal LM prefers the sentence it gives the higher
log-likelihood; its summary also holds ``likelihood_diff`` (the mean absolute difference of the
two log-likelihoods). Formulas and sources: docs/crows-pairs.md.
"""

from __future__ import annotations

from typing import Any

# Lazy exports: ``biasprobe crows --help`` imports this package, and must not import pandas
# or torch.
_EXPORTS = {
    "BIAS_TYPES": "biasprobe.crows.data",
    "CrowsDataError": "biasprobe.crows.data",
    "CrowsPair": "biasprobe.crows.data",
    "load_pairs": "biasprobe.crows.data",
    "MEANING": "biasprobe.crows.aggregate",
    "summarize": "biasprobe.crows.aggregate",
    "CrowsResult": "biasprobe.crows.run",
    "load_crows_run": "biasprobe.crows.run",
    "run_crows": "biasprobe.crows.run",
    "SCORINGS": "biasprobe.crows.scoring",
    "aligned_positions": "biasprobe.crows.scoring",
    "score_pairs": "biasprobe.crows.scoring",
    "score_pairs_loglikelihood": "biasprobe.crows.scoring",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'biasprobe.crows' has no attribute {name!r}")
