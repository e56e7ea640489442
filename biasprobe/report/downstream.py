"""Former home of the counterfactual (downstream) report: see :mod:`biasprobe.report.counterfactual`."""

from biasprobe.report.counterfactual import render_downstream_report, write_downstream_report

__all__ = ["render_downstream_report", "write_downstream_report"]
