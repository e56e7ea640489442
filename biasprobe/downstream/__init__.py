"""Downstream bias: counterfactual probe pairs scored on sentiment classifiers.

* :mod:`biasprobe.downstream.scores` — per-pair and aggregate scores (pure functions).
* :mod:`biasprobe.downstream.run` — :func:`run_downstream` and the run folder (the task itself
  is :mod:`biasprobe.tasks.counterfactual`; the classifiers are
  :mod:`biasprobe.backends.classifiers`; the terminal tables :mod:`biasprobe.views.terminal`).

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
