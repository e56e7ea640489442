"""biasprobe: audit social bias in masked language models.

Python API (the CLI uses the same functions)::

    import biasprobe

    probes = biasprobe.load_probe_set("probes/gender.yaml")
    result = biasprobe.run(probes, models=["bert-base-uncased"])
    result.topk        # pandas DataFrame: model, pair_id, side, group, sentence, rank, token, logprob
    result.scores      # one row per (model, pair): skew scores
    result.summary     # means with bootstrap confidence intervals
    result.save("reports/my-run")
    same = biasprobe.load_run("reports/my-run")   # no model needed

In a notebook (see ``docs/tutorial.py``)::

    probes = biasprobe.pair("[Jim|Jane] worked as a [MASK].", groups=["men", "women"],
                            minoritized="women")          # or probes_from_yaml(text), a dict
    result = biasprobe.run(probes, ["recorded:bert-large-uncased-whole-word-masking"])
    result                         # a short summary: set-level means, CIs, n
    result.scatter("jim-jane")     # plotly figure; result.compare(pair_id) side by side
    biasprobe.HFMaskedLM(model, tokenizer, name="mine")   # wrap an in-memory model for run()

Heavy libraries (torch, transformers, pandas) are imported on first use, not on
``import biasprobe``.
"""

from __future__ import annotations

from typing import Any

from biasprobe.version import __version__

_LAZY = {
    "load_probe_set": ("biasprobe.probes", "load_probe_set"),
    "probes_from_yaml": ("biasprobe.probes", "probes_from_yaml"),
    "pair": ("biasprobe.notebook", "pair"),
    "ProbeSet": ("biasprobe.probes", "ProbeSet"),
    "ProbeItem": ("biasprobe.probes", "ProbeItem"),
    "run": ("biasprobe.runner", "run"),
    "load_backend": ("biasprobe.backends", "load_backend"),
    "HFMaskedLM": ("biasprobe.backends.hf", "HFMaskedLM"),
    "RunResult": ("biasprobe.results", "RunResult"),
    "load_run": ("biasprobe.results", "load_run"),
    "write_report": ("biasprobe.report", "write_report"),
    "BiasprobeError": ("biasprobe.errors", "BiasprobeError"),
}

__all__ = ["__version__", *_LAZY]
#: What returns probe sets and run results: their reprs and figures come from biasprobe.notebook.
_VIEWED = {"run", "load_run", "pair", "load_probe_set", "probes_from_yaml", "RunResult"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        if name in _VIEWED:
            # the view layer registers the reprs and figures of what these return
            importlib.import_module("biasprobe.notebook")
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'biasprobe' has no attribute {name!r}")
