"""HTML report and static figures from run results (no torch, no transformers).

Public API:

* :func:`write_report` / :func:`report_html` — one self-contained HTML page for one or more
  runs of one kind (fill-mask, counterfactual, CrowS-Pairs), by the kind's renderer
  (:data:`RENDERERS`, :mod:`biasprobe.report.dispatch`).
* :func:`render_report` — the fill-mask page as a string (:mod:`biasprobe.report.fillmask`).
* :func:`export_figures` — a static PNG or SVG scatter per pair and model, for papers.
"""

from __future__ import annotations

from biasprobe.report.dispatch import RENDERERS, Renderer, kind_of, report_html, write_report
from biasprobe.report.export import StaticExportError, export_figures
from biasprobe.report.fillmask import render_report

__all__ = [
    "RENDERERS",
    "Renderer",
    "StaticExportError",
    "export_figures",
    "kind_of",
    "render_report",
    "report_html",
    "write_report",
]
