"""Former home of the CrowS-Pairs page: see :mod:`biasprobe.report.crows`."""

from biasprobe.report.crows import render_html

__all__ = ["render_html"]
