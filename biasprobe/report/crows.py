"""A self-contained HTML page for a CrowS-Pairs run: the table and a dot plot with the 50% line.

Plain HTML and inline SVG (no scripts, works offline); every piece of text from the data or
the model id is escaped.
"""

from __future__ import annotations

import math
from typing import Any

from biasprobe import __version__
from biasprobe.crows.aggregate import MEANING
from biasprobe.fsio import REPORT_MARKER
from biasprobe.report.htmlkit import Markup, html

_CSS = """
body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{padding:.25em .6em;border-bottom:1px solid #ddd;
text-align:right}td:first-child,th:first-child{text-align:left}.note{color:#555;font-size:.92em}
h1,p{overflow-wrap:anywhere}svg{max-width:100%;height:auto}
@media (max-width:760px){table{display:block;max-width:100%;overflow-x:auto}}
"""


def _num(x: Any, fmt: str = "{:.2f}") -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(v) else fmt.format(v)


def _p(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "—"
    if math.isnan(v):
        return "—"
    return f"{v:.2e}" if v < 1e-3 else f"{v:.3f}"


def _svg(summary: Any) -> Markup:
    rows = list(summary.itertuples(index=False))
    width, left, right, step = 720, 170, 20, 26
    height = 30 + step * len(rows)

    def x(pct: float) -> float:
        return left + (width - left - right) * pct / 100.0

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" '
        'role="img" aria-label="CrowS-Pairs metric per bias type with 95% intervals">'
    ]
    for tick in range(0, 101, 25):
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="10" y2="{height - 18}" '
            f'stroke="{"#c00" if tick == 50 else "#eee"}" stroke-width="{2 if tick == 50 else 1}"/>'
            f'<text x="{x(tick):.1f}" y="{height - 4}" font-size="11" text-anchor="middle">'
            f"{tick}%</text>"
        )
    for i, r in enumerate(rows):
        y = 24 + step * i
        parts.append(
            html(
                '<text x="{}" y="{}" font-size="12" text-anchor="end">{} (n={})</text>',
                left - 8,
                y + 4,
                r.key,
                r.n,
            )
        )
        if not math.isnan(float(r.metric)):
            parts.append(
                f'<line x1="{x(float(r.ci_low)):.1f}" x2="{x(float(r.ci_high)):.1f}" y1="{y}" '
                f'y2="{y}" stroke="#357" stroke-width="2"/><circle cx="{x(float(r.metric)):.1f}" '
                f'cy="{y}" r="4" fill="#357"/>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def render_html(result: Any) -> str:
    """The report page of a :class:`~biasprobe.crows.run.CrowsResult`."""
    meta = result.meta
    s = result.summary
    model = str(meta.get("model", {}).get("name", "?"))
    head = Markup(
        "<tr><th>bias type</th><th>metric %</th><th>95% CI</th><th>n</th><th>ties</th>"
        "<th>p (vs 50%)</th><th>p Holm</th><th>stereo % (n)</th><th>antistereo % (n)</th></tr>"
    )
    body = []
    for r in s.itertuples(index=False):
        body.append(
            html(
                "<tr><td>{}</td><td>{}</td><td>[{}, {}]</td><td>{}</td><td>{}</td><td>{}</td>"
                "<td>{}</td><td>{} ({})</td><td>{} ({})</td></tr>",
                r.key,
                _num(r.metric),
                _num(r.ci_low),
                _num(r.ci_high),
                int(r.n),
                int(r.n_tie),
                _p(r.p_value),
                _p(r.p_holm),
                _num(r.stereo_pct),
                int(r.stereo_n),
                _num(r.antistereo_pct),
                int(r.antistereo_n),
            )
        )
    skipped = int(s.iloc[0].n_skipped) if len(s) else 0
    return html(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        '{marker} {version}">'
        "<title>CrowS-Pairs — {model}</title><style>{css}</style></head><body>"
        "<h1>CrowS-Pairs — {model}</h1>"
        "<p><b>Metric:</b> {meaning}. Scoring: <b>{scoring}</b> "
        "(see docs/crows-pairs.md). The red line is 50%.</p>"
        "{svg}"
        "<table><thead>{head}</thead><tbody>{body}</tbody></table>"
        "<p class='note'>95% CI: Wilson score interval. p: exact two-sided binomial test against "
        "50% (ties count as not preferring the stereotype, as in the published metric); p Holm: "
        "adjusted across the bias types shown. Stereo/antistereo: the same percentage over the "
        "pairs of that direction, ties left out. Pairs skipped by the scoring: {skipped}. "
        "CrowS-Pairs (Nangia et al. 2020, CC BY-SA 4.0) has known quality problems "
        "(Blodgett et al. 2021): read small differences with care.</p>"
        "<p class='note'>run {run_id}, {created}</p>"
        "</body></html>\n",
        marker=Markup(REPORT_MARKER),
        version=__version__,
        model=model,
        css=Markup(_CSS),
        meaning=MEANING,
        scoring=str(meta.get("scoring", "?")),
        svg=_svg(s),
        head=head,
        body=Markup("".join(body)),
        skipped=skipped,
        run_id=str(meta.get("run_id", "")),
        created=str(meta.get("created", "")),
    )
