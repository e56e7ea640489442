"""The run folder of every kind of audit, one format (``biasprobe-run/2``, see
:mod:`biasprobe.runfolders.schema`): the fill-mask result and its log-prob store
(:mod:`~biasprobe.runfolders.fillmask`, :mod:`~biasprobe.runfolders.store`), the counterfactual
result (:mod:`~biasprobe.runfolders.counterfactual`) and the CrowS-Pairs result
(:mod:`~biasprobe.runfolders.crows`). :func:`biasprobe.results.load_run` reads any of them.
"""
