"""Downstream bias: counterfactual probe pairs scored on sentiment classifiers.

* :mod:`biasprobe.downstream.scores` — per-pair and aggregate scores (pure functions).
* :mod:`biasprobe.downstream.models` — classifiers behind one interface (biasprobe sentiment
  run folders, Hugging Face sequence-classification checkpoints).
* :mod:`biasprobe.downstream.run` — :func:`run_downstream`, the run folder and its printer.

Importing this package imports neither torch nor transformers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DownstreamResult", "load_downstream_run", "run_downstream"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from biasprobe.downstream import run

        return getattr(run, name)
    raise AttributeError(name)
