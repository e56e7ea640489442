"""The HolisticBias report: one self-contained page, plotly inlined.

Order of the page: the title and one line of facts; the finding in words per model (overall
Likelihood Bias with its interval, the axes with the highest share, the most and least likely
descriptors); the Likelihood Bias table by axis (share of significant descriptor pairs, its
Wilson interval, n tests, and the Holm / BH adjusted shares, labelled as not in the paper);
each model's family and scoring; with several models the stored comparison with the base; then
per axis a figure of the descriptors ranked by mean score with their intervals; the tables by
template and by axis × template and the "I love / I hate" view, collapsed; provenance last.

The report renders stored tables only. Every piece of text from the data or the model ids is
HTML-escaped, and escaped again for plotly's HTML-subset labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from biasprobe.errors import UsageError
from biasprobe.report.figures import plotly_text
from biasprobe.report.htmlkit import Markup, html, join
from biasprobe.report.page import fmt, kv_html, page_shell

__all__ = ["render_holistic_report", "render_html"]

_PALETTE = ("#2166ac", "#b2182b", "#1b7837", "#762a83", "#e08214", "#35978f", "#8c510a")
_CSS = """
.finding{font-size:1.05em;line-height:1.5}.muted{color:#666}
.warn{background:#fff4e0;border-left:4px solid #d80;padding:.4em .7em}
table.lb td,table.lb th{padding:.2em .6em}details{margin:1em 0}
"""
#: Descriptors called out at each end in the finding.
CALL_OUT = 3


def _pct(x: Any) -> str:
    v = float(x) if x is not None else math.nan
    return "—" if math.isnan(v) else f"{100 * v:.1f}%"


def _ci(lo: Any, hi: Any) -> str:
    return f"[{_pct(lo)}, {_pct(hi)}]"


def _rows(result: Any, level: str, model: str) -> pd.DataFrame:
    s = result.summary
    return s[(s["level"] == level) & (s["model"].astype(str) == model)]


def _finding(result: Any, model: str) -> Markup:
    overall = _rows(result, "all", model)
    axes = _rows(result, "axis", model).sort_values("mean", ascending=False, kind="stable")
    d = result.descriptors
    d = d[d["model"].astype(str) == model].sort_values("mean", ascending=False, kind="stable")
    if overall.empty:
        return html("<p class='finding'><b>{}</b>: no test could be run.</p>", model)
    o = overall.iloc[0]
    top_axes = join((html("{} ({})", r.key, _pct(r.mean)) for r in axes.head(3).itertuples()), ", ")

    def names(frame: pd.DataFrame) -> Markup:
        return join(
            (
                html("“{}” ({}, {})", r.descriptor, r.axis, fmt(r.mean, 2))
                for r in frame.itertuples()
            ),
            "; ",
        )

    return html(
        "<p class='finding'><b>{model}</b>: {share} of descriptor pairs differ significantly "
        "(95% CI {ci}; {sig:,} of {n:,} Mann–Whitney tests at p &lt; 0.05). Highest by axis: "
        "{axes}.<br>Most likely descriptors (mean log-prob per token, higher = likelier): "
        "{top}.<br>Least likely: {bottom}.</p>",
        model=model,
        share=_pct(o["mean"]),
        ci=_ci(o["ci_low"], o["ci_high"]),
        sig=int(o["n_significant"]),
        n=int(o["n"]),
        axes=top_axes,
        top=names(d.head(CALL_OUT)),
        bottom=names(d.tail(CALL_OUT).iloc[::-1]),
    )


def _bias_table(result: Any, level: str, label: str) -> Markup:
    head = html(
        "<tr><th>model</th><th>{}</th><th>Likelihood Bias</th><th>95% CI</th><th>tests</th>"
        "<th>significant</th><th>Holm share*</th><th>BH share*</th></tr>",
        label,
    )
    body = []
    for model in result.models:
        for r in _rows(result, level, model).itertuples():
            body.append(
                html(
                    "<tr><td>{}</td><td>{}</td><td class='num'>{}</td><td class='num'>{}</td>"
                    "<td class='num'>{:,}</td><td class='num'>{:,}</td><td class='num'>{}</td>"
                    "<td class='num'>{}</td></tr>",
                    r.model,
                    r.key,
                    _pct(r.mean),
                    _ci(r.ci_low, r.ci_high),
                    int(r.n),
                    int(r.n_significant),
                    _pct(r.share_holm),
                    _pct(r.share_bh),
                )
            )
    return html("<table class='lb'><thead>{}</thead><tbody>{}</tbody></table>", head, join(body))


def _models_block(result: Any) -> Markup:
    items = []
    for m in result.meta.get("models", []):
        t = m.get("throughput") or {}
        rate = t.get("sentences_per_s")
        line = html(
            "<li><b>{}</b> ({}): family {}, scoring <b>{}</b> — {}{}; {}",
            m.get("name", "?"),
            m.get("requested", "?"),
            m.get("family", "?"),
            m.get("scoring", "?"),
            m.get("score", "?"),
            f" ({m['pll_metric']} PLL)" if m.get("pll_metric") else "",
            (m.get("info") or {}).get("sentence_scoring", ""),
        )
        speed = (
            html(
                " <span class='muted'>({:,} sentences in {:.1f} s, {:.1f}/s)</span>",
                int(t.get("sentences", 0)),
                float(t.get("seconds", 0.0)),
                float(rate),
            )
            if isinstance(rate, int | float)
            else ""
        )
        ran = (m.get("info") or {}).get("engine") or {}
        where = (
            html(
                " <span class='muted'>on Ray: {} actor(s) at {}, {} CPU and {} GPU each</span>",
                ran.get("actors", "?"),
                ran.get("address", "?"),
                ran.get("num_cpus", "?"),
                ran.get("num_gpus", "?"),
            )
            if ran.get("kind") == "ray"
            else ""
        )
        items.append(html("{}{}{}</li>", line, speed, where))
    return html("<ul>{}</ul>", join(items))


def _comparison(result: Any) -> Markup:
    c = getattr(result, "comparison", None)
    if c is None or len(c) == 0:
        return Markup("")
    rows = join(
        html(
            "<tr><td>{}</td><td>{}</td><td class='num'>{}</td><td class='num'>{}</td>"
            "<td class='num'>{}</td><td class='num'>{}</td><td class='num'>{:,}</td>"
            "<td class='num'>{}</td></tr>",
            r["model"],
            r["key"],
            _pct(r["base_mean"]),
            _pct(r["model_mean"]),
            f"{100 * float(r['change']):+.1f} pts",
            _ci(r["ci_low"], r["ci_high"]),
            int(r["n"]),
            fmt(r.get("spearman"), 2),
        )
        for r in c.to_dict("records")
    )
    return html(
        "<section id='comparison'><h2>Change from the base model ({})</h2>"
        "<table class='lb'><thead><tr><th>model</th><th>axis</th><th>base</th><th>model</th>"
        "<th>change</th><th>95% CI</th><th>tests</th><th>Spearman ρ of descriptor means</th>"
        "</tr></thead><tbody>{}</tbody></table><p class='muted'>Change of the Likelihood Bias "
        "share over the same tests; interval: percentile bootstrap of the axis × template "
        "cells. ρ: rank correlation of the descriptors' mean scores under the two models (1 = "
        "same order of descriptors).</p></section>",
        str(c.iloc[0]["base"]),
        rows,
    )


def _axis_figure(result: Any, axis: str) -> str:
    """Descriptors of one axis ranked by the base model's mean score (likeliest on top), one
    panel per model (each model's scores on its own scale), 95% t intervals."""
    import plotly.graph_objects as go
    import plotly.io as pio
    from plotly.subplots import make_subplots

    d = result.descriptors
    d = d[d["axis"].astype(str) == axis]
    models = result.models
    base = d[d["model"].astype(str) == models[0]].sort_values("mean", kind="stable")
    order = list(base["descriptor"].astype(str))
    fig = make_subplots(
        rows=1,
        cols=len(models),
        shared_yaxes=True,
        horizontal_spacing=0.02,
        subplot_titles=[plotly_text(m) for m in models],
    )
    for i, model in enumerate(models):
        sub = d[d["model"].astype(str) == model].set_index("descriptor").reindex(order)
        mean = sub["mean"].astype(float)
        fig.add_trace(
            go.Scatter(
                x=list(mean),
                y=[plotly_text(x) for x in order],
                mode="markers",
                name=plotly_text(model),
                marker={"color": _PALETTE[i % len(_PALETTE)], "size": 7},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": list((sub["ci_high"] - mean).fillna(0.0)),
                    "arrayminus": list((mean - sub["ci_low"]).fillna(0.0)),
                    "thickness": 1,
                },
                hovertext=[
                    f"{plotly_text(model)}<br>{plotly_text(x)}: mean {m:.3f} "
                    f"[{lo:.3f}, {hi:.3f}], n = {n:.0f}"
                    for x, m, lo, hi, n in zip(
                        order, mean, sub["ci_low"], sub["ci_high"], sub["n"], strict=True
                    )
                ],
                hoverinfo="text",
            ),
            row=1,
            col=i + 1,
        )
        fig.update_xaxes(title_text="mean log-prob per token", row=1, col=i + 1)
    fig.update_yaxes(type="category", automargin=True, dtick=1)
    fig.update_layout(
        title=f"{plotly_text(axis)}: descriptors by mean score (95% t interval; higher = likelier)",
        height=max(280, 110 + 16 * len(order)),
        margin={"l": 10, "r": 20, "t": 70, "b": 50},
        showlegend=False,
    )
    return pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=False,
        config={"displaylogo": False, "responsive": True},
    )


def _love_hate(result: Any) -> Markup:
    lh = result.love_hate
    if "love_hate_diff" not in lh.columns or lh["love_hate_diff"].dropna().empty:
        return Markup("")
    parts = []
    for model in result.models:
        sub = lh[lh["model"].astype(str) == model].dropna(subset=["love_hate_diff"])
        sub = sub.sort_values("love_hate_diff", kind="stable")
        rows = pd.concat([sub.head(10), sub.tail(10)]).drop_duplicates()
        body = join(
            html(
                "<tr><td>{}</td><td>{}</td><td class='num'>{}</td><td class='num'>{}</td>"
                "<td class='num'>{}</td></tr>",
                r.axis,
                r.descriptor,
                _pct(r.love),
                _pct(r.hate),
                f"{100 * float(r.love_hate_diff):+.0f} pts",
            )
            for r in rows.itertuples()
        )
        parts.append(
            html(
                "<h3>{}</h3><table class='lb'><thead><tr><th>axis</th><th>descriptor</th>"
                "<th>“I love …” likelier than median</th><th>“I hate …”</th><th>love − hate"
                "</th></tr></thead><tbody>{}</tbody></table>",
                model,
                body,
            )
        )
    return html(
        "<details><summary>“I love / I hate” view (the paper's low-level view; the 10 lowest "
        "and highest love − hate)</summary><p class='muted'>Share of a descriptor's sentences "
        "the model finds likelier than the median sentence of that template.</p>{}</details>",
        join(parts),
    )


def render_html(result: Any, *, title: str | None = None) -> str:
    """The report page of one HolisticBias run (from ``run_holistic`` or a loaded run folder)."""
    meta = result.meta
    models = result.models
    data = meta.get("data") or {}
    names = ", ".join(models)
    facts = html(
        "<p class='muted'>HolisticBias {version}, {n:,} sentences ({distinct:,} distinct) on "
        "{axes} axes, {templates} templates, {desc:,} descriptors{sample}. Run {run_id}, "
        "{created}.</p>",
        version=str(data.get("version", "?")),
        n=int(data.get("n_sentences", 0)),
        distinct=int(data.get("n_distinct_sentences", 0)),
        axes=data.get("n_axes", "?"),
        templates=data.get("n_templates", "?"),
        desc=int(data.get("n_descriptors", 0)),
        sample=f"; a seeded sample of {data['sample']:,}" if data.get("sample") else "",
        run_id=str(meta.get("run_id", "")),
        created=str(meta.get("created", "")),
    )
    unreachable = int(data.get("tests_that_cannot_reach_significance") or 0)
    warn = (
        html(
            "<p class='warn'><b>Small samples:</b> {:,} tests (of the first model) compare "
            "descriptors with so few sentences per template that p &lt; 0.05 is impossible; "
            "they count as not significant, so the shares are lower than on the full suite. "
            "Sample fewer templates (--template) to keep more sentences per cell.</p>",
            unreachable,
        )
        if unreachable
        else Markup("")
    )
    axes = sorted(set(result.descriptors["axis"].astype(str)))
    figures = join(html("<h3>{}</h3>{}", axis, Markup(_axis_figure(result, axis))) for axis in axes)
    body = html(
        "<h1>HolisticBias Likelihood Bias — {names}</h1>{facts}{warn}{findings}"
        "<h2>Likelihood Bias by axis</h2>{table}"
        "<p class='muted'>Likelihood Bias (Smith et al. 2022): the share of descriptor pairs "
        "whose sentences' scores differ (two-sided Mann–Whitney U, p &lt; 0.05, within each "
        "axis × template). 95% CI: Wilson interval, treating the tests as independent (pairs "
        "sharing a descriptor are not). *Holm / BH share: the share still significant after "
        "Holm or Benjamini–Hochberg adjustment within the axis — not in the paper.</p>"
        "<h2>Models and scoring</h2>{models}<p class='muted'>{score}</p>{comparison}"
        "<h2>Descriptors by mean score, per axis</h2>{figures}"
        "<details><summary>Likelihood Bias by template</summary>{by_template}</details>"
        "<details><summary>Likelihood Bias by axis × template</summary>{by_cell}</details>"
        "{love}<details><summary>Provenance</summary>{prov}</details>",
        names=names,
        facts=facts,
        findings=join(_finding(result, m) for m in models),
        table=_bias_table(result, "axis", "axis"),
        warn=warn,
        models=_models_block(result),
        score=str(meta.get("score", "")),
        comparison=_comparison(result),
        figures=figures,
        by_template=_bias_table(result, "template", "template"),
        by_cell=_bias_table(result, "axis_template", "axis | template"),
        love=_love_hate(result),
        prov=kv_html({k: v for k, v in meta.items() if k not in ("models",)}),
    )
    return page_shell(title or f"HolisticBias — {names}", str(body), css=_CSS, plotly_first=True)


def render_holistic_report(results: Sequence[Any], *, title: str | None = None) -> str:
    """The page of one HolisticBias run (several models of one run share a page).

    Raises:
        UsageError: not exactly one run.
    """
    if len(results) != 1:
        raise UsageError(
            f"a HolisticBias report shows one run folder; got {len(results)} (run the models "
            "together, -m A -m B, to compare them on one page)"
        )
    return render_html(results[0], title=title)
