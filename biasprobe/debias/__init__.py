"""``biasprobe debias``: make a debiased twin of a masked LM by continued masked-LM training.

Two recipes of Webster et al. (2020), as bias-bench applies them: counterfactual data
augmentation (``cda``: every sentence with an attribute word is kept and its swapped twin is
added) and raised dropout (``dropout``: attention 0.15, hidden 0.20), plus ``none`` (the same
continued training without any change, the control). See docs/debias.md.

:mod:`biasprobe.debias.data` reads and augments the corpus and masks tokens (no model);
:mod:`biasprobe.debias.train` runs the training, its checkpoints and the output folder;
:mod:`biasprobe.debias.cli` is the command.
"""
