"""The tasks of :mod:`biasprobe.engine`, one per kind of audit: :mod:`~biasprobe.tasks.fillmask`
(fill-mask probe sets on masked LMs), :mod:`~biasprobe.tasks.counterfactual` (counterfactual
sets on classifiers) and :mod:`~biasprobe.tasks.crows` (CrowS-Pairs on masked LMs)."""
