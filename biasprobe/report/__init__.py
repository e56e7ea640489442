"""HTML report and static figures from run results (no torch, no transformers).

Public API:

* :func:`write_report` — one self-contained interactive HTML file for one or more runs.
* :func:`export_figures` — a static PNG or SVG scatter per pair and model, for papers.
"""

from __future__ import annotations

from biasprobe.report.export import StaticExportError, export_figures
from biasprobe.report.fillmask import render_report, write_report

__all__ = ["StaticExportError", "export_figures", "render_report", "write_report"]
