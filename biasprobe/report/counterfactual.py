"""The HTML report of downstream (classifier) runs: one self-contained page, plotly inlined.

Order of the page: the title and one line of facts; the finding first (one sentence per
classifier and probe set: mean Δ P(pos) with its 95% CI, n and p-values, and the flip rate);
then the figures: a paired scatter of P(pos) on the two sides of every pair, flips
highlighted, and a forest plot of per-template mean Δ with CIs per classifier; the classifiers'
held-out accuracies when their sentiment run folders record them; the change of every score
from the base classifier with its paired CI; when fill-mask runs are given too, their set-level
skew beside the downstream gaps; the full tables; provenance last, collapsed.

Every piece of user text (probe and group names, sentences, model names) is HTML-escaped, and
escaped again for plotly's HTML-subset labels. The page carries biasprobe's generator marker
(:data:`biasprobe.fsio.REPORT_MARKER`) so that biasprobe may later replace it, and nothing else.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biasprobe.downstream.scores import LESS_BIASED, SCORE_LABELS
from biasprobe.errors import UsageError
from biasprobe.report.figures import plotly_text
from biasprobe.report.htmlkit import Markup, escape, html
from biasprobe.report.page import (
    confidence_of,
    fmt,
    kind_of,
    kv_html,
    note_of,
    package_version,
    page_shell,
    short_note,
    td,
    tdt,
    too_few_templates,
)

__all__ = ["render_downstream_report", "write_downstream_report"]

_FLIP_COLOR = "#111111"
_PALETTE = ("#2166ac", "#b2182b", "#1b7837", "#762a83", "#e08214", "#35978f", "#8c510a")
_FILL_MASK_SCORES = {
    "jaccard_distance": "Jaccard dist.",
    "rbo_distance": "RBO dist.",
    "js_divergence": "JS div. (bits)",
    "target_gap_mean": "target gap / word",
}


def _p(x: Any) -> str:
    v = _num(x)
    if math.isnan(v):
        return "—"
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def _p_eq(x: Any) -> str:
    """``p = 0.234`` or ``p < 0.001``."""
    text = _p(x)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _ci(lo: Any, hi: Any, digits: int = 3, signed: bool = True) -> str:
    if math.isnan(_num(lo)) or math.isnan(_num(hi)):
        return "—"
    return f"{fmt(lo, digits, signed)} … {fmt(hi, digits, signed)}"


def _ci_cell(lo: Any, hi: Any, note: str = "", digits: int = 3, signed: bool = True) -> str:
    """An interval's text for a table cell: "a … b", or "n/a (why)" when a note says why
    there is none (a set of too few templates), else "—"."""
    if math.isnan(_num(lo)) or math.isnan(_num(hi)):
        return f"n/a ({short_note(note)})" if note else "—"
    return _ci(lo, hi, digits, signed)


def _p_cell(p: Any, note: str = "") -> str:
    """A p-value's text for a table cell: as :func:`_p`, or "n/a (why)" when a note says why."""
    if math.isnan(_num(p)) and note:
        return f"n/a ({short_note(note)})"
    return _p(p)


def _few_text(run: Any, model: str, row: Any, digits: int = 3) -> Markup:
    """A set or contrast row without an interval because its set has too few templates: why,
    and each template's mean Δ with its interval and Wilcoxon p (the template rows)."""
    need = too_few_templates(row, confidence_of(run))
    if not need:
        return Markup("")
    templates = int(_num(row.get("templates"))) if not math.isnan(_num(row.get("templates"))) else 0
    why = html(
        " Too few templates ({}{}) for a set-level interval or test; ",
        templates,
        f"; needs {need}",
    )
    if row.get("level") != "set":  # a contrast: its templates are in the per-template table
        return html("{}see <a href='#tables'>the template rows</a>.", why)
    s = run.summary
    t = s[(s["model"] == model) & (s["level"] == "template") & (s["score"] == row["score"])]
    parts = [
        f"{r['key']} {fmt(r['mean'], digits, True)} ("
        + (
            ""
            if math.isnan(_num(r["ci_low"]))
            else f"95% CI {_ci(r['ci_low'], r['ci_high'], digits)}, "
        )
        + f"n = {int(r['n'])}, Wilcoxon {_p_eq(r.get('p_wilcoxon'))})"
        for _, r in t.head(8).iterrows()
    ]
    if len(t) > 8:
        parts.append(f"{len(t) - 8} more in the per-template table")
    return html("{}<a href='#tables'>per template</a>: {}.", why, "; ".join(parts))


def _is_downstream(run: Any) -> bool:
    return kind_of(run) == "counterfactual"


def _groups(run: Any) -> tuple[str, str]:
    """(minoritized, normative) labels of a run, for sentences."""
    orient = (run.meta.get("probe_set") or {}).get("orientation")
    if isinstance(orient, list | tuple) and len(orient) == 2:
        return str(orient[0]), str(orient[1])
    sc = run.scores
    mino = [str(x) for x in dict.fromkeys(sc["minoritized_group"])]
    norm = [str(x) for x in dict.fromkeys(sc["normative_group"])]

    def names(groups: list[str]) -> str:
        return " / ".join(groups[:5]) + (f" / {len(groups) - 5} more" if len(groups) > 5 else "")

    return names(mino), names(norm)


def _set_row(run: Any, model: str, score: str) -> pd.Series | None:
    s = run.summary
    r = s[(s["model"] == model) & (s["level"] == "set") & (s["score"] == score)]
    return None if r.empty else r.iloc[0]


def _accuracy(info: dict[str, Any]) -> tuple[float, float, float, int] | None:
    """``(accuracy, CI low, CI high, n)`` recorded by the classifier: its interval as recorded
    (``accuracy_ci_low``/``accuracy_ci_high``), else, for classifiers whose provenance records
    only the accuracy and n, their Wilson interval."""
    acc, n = _num(info.get("accuracy")), info.get("accuracy_n")
    if math.isnan(acc):
        return None
    try:
        n = int(n)
    except (TypeError, ValueError):
        return acc, math.nan, math.nan, 0
    low, high = _num(info.get("accuracy_ci_low")), _num(info.get("accuracy_ci_high"))
    if not (math.isnan(low) or math.isnan(high)):
        return acc, low, high, n
    from biasprobe.stats import wilson_ci

    low, high = wilson_ci(int(round(acc * n)), n)
    return acc, low, high, n


# --------------------------------------------------------------------------- sections


def _finding_html(runs: Sequence[Any]) -> str:
    items = []
    for run in runs:
        mino, norm = _groups(run)
        set_name = (run.meta.get("probe_set") or {}).get("name", "?")
        for model in run.models:
            d = _set_row(run, model, "delta")
            f = _set_row(run, model, "flip")
            a = _set_row(run, model, "abs_delta")
            if d is None:
                continue
            lo, hi = _num(d["ci_low"]), _num(d["ci_high"])
            few = _few_text(run, model, d)
            if few:
                verdict = "no set-level interval (see the templates below)."
            elif not math.isnan(lo) and (lo > 0 or hi < 0):
                more = "more" if d["mean"] > 0 else "less"
                verdict = (
                    f"the interval excludes 0: sentences about {mino} get a {more} positive "
                    f"score than the same sentences about {norm}."
                )
            else:
                verdict = "the interval includes 0: no gap is detectable at this sample size."
            pairs = run.scores[run.scores["model"] == model]
            k, n_pairs = int(pairs["flip"].astype(bool).sum()), len(pairs)
            flip = (
                ""
                if f is None
                else f" Labels flip in {k} of {n_pairs} pairs "
                f"({fmt(100 * k / max(n_pairs, 1), 1, False)}%); averaged over templates, as "
                f"every set-level rate here, {fmt(f['mean'] * 100, 1, False)}%"
                + (
                    ""
                    if math.isnan(_num(f["ci_low"]))
                    else f" (95% CI {_ci(f['ci_low'] * 100, f['ci_high'] * 100, 1, False)})"
                )
                + f"; mean |Δ| = {fmt(a['mean'])}."
            )
            s = run.summary
            contrasts = s[(s["model"] == model) & (s["level"] == "contrast")]
            contrasts = contrasts[contrasts["score"] == "delta"]
            sub = "".join(
                html(
                    "<li>{}: {} ({}n = {}{}){}</li>",
                    str(r["key"]),
                    fmt(r["mean"], 3, True),
                    ""
                    if math.isnan(_num(r["ci_low"]))
                    else f"95% CI {_ci(r['ci_low'], r['ci_high'])}, ",
                    int(r["n"]),
                    ""
                    if math.isnan(_num(r["p_wilcoxon"]))
                    else f", Wilcoxon {_p_eq(r['p_wilcoxon'])}",
                    _few_text(run, model, r),
                )
                for _, r in contrasts.iterrows()
            )
            sub = f"<ul>{sub}</ul>" if sub else ""
            if few:
                stats = f"n = {int(d['n'])} pairs in {int(_num(d['templates']))} templates"
            else:
                p_unit = _num(d.get("p_value"))
                stats = (
                    f"95% CI {_ci(d['ci_low'], d['ci_high'])}, n = {int(d['n'])} pairs"
                    + ("" if math.isnan(p_unit) else f", sign-flip {_p_eq(p_unit)}")
                    + f", Wilcoxon {_p_eq(d['p_wilcoxon'])}, sign test {_p_eq(d['p_sign'])}"
                )
            items.append(
                html(
                    "<li><b>{}</b> on <b>{}</b>: mean Δ P(pos) for {} vs {} = <b>{}</b> ({}); "
                    "{}{}{}{}</li>",
                    model,
                    str(set_name),
                    mino,
                    norm,
                    fmt(d["mean"], 3, True),
                    stats,
                    verdict,
                    few,
                    flip,
                    Markup(sub),
                )
            )
    return f"""<section id="finding">
<h2>Finding</h2>
<ul class="finding">{"".join(items)}</ul>
<p class="muted">Δ = P(pos | minoritized side) − P(pos | normative side) of the same sentence,
the group word alone changed: 0 = the classifier ignores the group word; negative = the
minoritized side is rated less positive. Set level: the mean of the template means, with the
interval and sign-flip p of those template means (they agree; none with fewer than 6
templates, where the template rows are given instead); Wilcoxon and sign tests over the template
means too. Template level: over the template's pairs.</p>
</section>"""


def _accuracy_html(runs: Sequence[Any]) -> str:
    rows = []
    seen: set[str] = set()
    for run in runs:
        for m in run.meta.get("models", []):
            if m["name"] in seen:
                continue
            seen.add(m["name"])
            info = m.get("info") or {}
            acc = _accuracy(info)
            if acc is None:
                rows.append(
                    "<tr>"
                    + tdt(m["name"])
                    + tdt(m.get("kind", ""))
                    + '<td colspan="5" class="muted">not recorded</td></tr>'
                )
                continue
            rows.append(
                "<tr>"
                + tdt(m["name"])
                + tdt(m.get("kind", ""))
                + td(acc[0])
                + f'<td class="num">{_ci(acc[1], acc[2], 3, False)}</td>'
                + f'<td class="num">{acc[3] or "—"}</td>'
                + td(info.get("majority_accuracy"))
                + tdt(info.get("accuracy_split", ""), "muted")
                + "</tr>"
            )
    return f"""<section id="accuracy">
<h2>Classifier accuracy</h2>
<p class="muted">Held-out accuracy where the classifier records it (a sentiment run folder's
summary.json), with a Wilson 95% CI. A gap measured on a classifier that barely beats the majority class means
little.</p>
<table><thead><tr><th>classifier</th><th>kind</th><th>accuracy</th><th>95% CI</th><th>n</th>
<th>majority class</th><th>split</th></tr></thead><tbody>{"".join(rows)}</tbody></table>
</section>"""


def _comparison_html(runs: Sequence[Any]) -> str:
    rows = []
    for run in runs:
        c = run.comparison
        if c is None or c.empty:
            continue
        c = c[c["level"] == "set"]
        for _, r in c.iterrows():
            direction = ""
            if r["score"] == "delta":
                closer = _num(r["abs_model"]) < _num(r["abs_base"])
                direction = "closer to 0" if closer else "further from 0"
                if bool(r["sign_flipped"]) or str(r["sign_flipped"]) == "True":
                    direction += ", sign flipped"
            rows.append(
                "<tr>"
                + tdt(r["key"])
                + tdt(r["model"])
                + tdt(r["base"])
                + tdt(SCORE_LABELS.get(r["score"], r["score"]))
                + td(r["base_mean"], 3, r["score"] == "delta")
                + td(r["model_mean"], 3, r["score"] == "delta")
                + td(r["change"], 3, True)
                + tdt(_ci_cell(r["ci_low"], r["ci_high"], note_of(r)), "num")
                + f'<td class="num">{int(r["n"])}</td>'
                + tdt(_p_cell(r.get("p_value", float("nan")), note_of(r)), "num")
                + tdt(direction)
                + "</tr>"
            )
    if not rows:
        return ""
    return f"""<section id="comparison">
<h2>Change from the base classifier</h2>
<p class="muted">change = score(classifier) − score(base) on the same pairs, with a paired
two-stage bootstrap 95% CI (templates, then pairs) and n pairs. For every score lower is less
biased, except mean Δ, where closer to 0 is less biased (its |Δ| before and after decide
"closer to 0"). p: sign-flip test of "no change" over the template means of the paired changes
(none for Wasserstein-1).</p>
<table><thead><tr><th>probe set</th><th>classifier</th><th>base</th><th>score</th>
<th>base</th><th>classifier</th><th>change</th><th>95% CI</th><th>n</th><th>p</th>
<th>mean Δ</th></tr>
</thead><tbody>{"".join(rows)}</tbody></table>
</section>"""


def _figure_div(fig: Any) -> str:
    import plotly.io as pio

    # responsive: a figure follows its box's width (a phone's screen included)
    return pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=False,
        config={"displaylogo": False, "responsive": True},
    )


def _forest_html(run: Any) -> str:
    import plotly.graph_objects as go

    s = run.summary
    d = s[s["score"] == "delta"]
    templates = list(dict.fromkeys(d[d["level"] == "template"]["key"]))
    set_name = str((run.meta.get("probe_set") or {}).get("name", "set"))
    labels = [*templates, f"whole set: {set_name}"]
    fig = go.Figure()
    models = run.models
    for i, model in enumerate(models):
        sub = d[d["model"] == model]
        rows = [sub[(sub["level"] == "template") & (sub["key"] == t)] for t in templates]
        rows.append(sub[sub["level"] == "set"])
        mean = [float(r["mean"].iloc[0]) if len(r) else np.nan for r in rows]
        lo = [float(r["ci_low"].iloc[0]) if len(r) else np.nan for r in rows]
        hi = [float(r["ci_high"].iloc[0]) if len(r) else np.nan for r in rows]
        n = [int(r["n"].iloc[0]) if len(r) else 0 for r in rows]
        offset = (i - (len(models) - 1) / 2) * 0.8 / max(len(models), 1)
        y = [j + offset for j in range(len(labels))]
        fig.add_trace(
            go.Scatter(
                x=mean,
                y=y,
                mode="markers",
                name=plotly_text(model),
                marker={"color": _PALETTE[i % len(_PALETTE)], "size": 8},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [h - m for h, m in zip(hi, mean, strict=True)],
                    "arrayminus": [m - lo_ for m, lo_ in zip(mean, lo, strict=True)],
                },
                text=[
                    f"{plotly_text(model)}<br>{plotly_text(lab)}<br>mean Δ = {m:+.3f} "
                    f"[{a:+.3f}, {b:+.3f}], n = {k}"
                    for lab, m, a, b, k in zip(labels, mean, lo, hi, n, strict=True)
                ],
                hoverinfo="text",
            )
        )
    fig.add_vline(x=0, line_dash="dash", line_color="#888")
    fig.update_layout(
        title=f"Mean Δ P(pos) per template (95% CI) — {plotly_text(set_name)}",
        xaxis_title="Δ P(pos) = minoritized − normative",
        yaxis={
            "tickmode": "array",
            "tickvals": list(range(len(labels))),
            "ticktext": [plotly_text(x) for x in labels],
            "autorange": "reversed",
        },
        height=max(320, 60 + 34 * len(labels)),
        margin={"l": 220, "r": 20, "t": 50, "b": 50},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.15},
    )
    return _figure_div(fig)


def _scatter_html(run: Any, model: str, color: str) -> str:
    import plotly.graph_objects as go

    sc = run.scores[run.scores["model"] == model]
    mino, norm = _groups(run)
    flip = sc["flip"].astype(int).to_numpy() == 1
    fig = go.Figure()
    for mask, name, col, symbol in (
        (~flip, "same label", color, "circle"),
        (flip, "label flipped", _FLIP_COLOR, "x"),
    ):
        part = sc[mask]
        hover = [
            f"<b>{plotly_text(str(r.pair_id))}</b><br>A: {plotly_text(str(r.sentence_a))}"
            f" → {r.p_a:.3f}<br>B: {plotly_text(str(r.sentence_b))} → {r.p_b:.3f}"
            f"<br>Δ = {r.delta:+.3f}"
            for r in part.itertuples()
        ]
        fig.add_trace(
            go.Scatter(
                x=part["p_normative"],
                y=part["p_minoritized"],
                mode="markers",
                name=f"{name} ({int(mask.sum())})",
                marker={"color": col, "symbol": symbol, "size": 7, "opacity": 0.75},
                text=hover,
                hoverinfo="text",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            line={"dash": "dash", "color": "#888"},
            name="y = x (no gap)",
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        title=plotly_text(model),
        xaxis={"title": f"P(pos | {plotly_text(norm)})", "range": [-0.02, 1.02]},
        yaxis={"title": f"P(pos | {plotly_text(mino)})", "range": [-0.02, 1.02]},
        height=460,
        margin={"l": 60, "r": 10, "t": 40, "b": 50},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.18},
    )
    return f"<figure>{_figure_div(fig)}</figure>"


def _run_figures_html(run: Any) -> str:
    set_name = str((run.meta.get("probe_set") or {}).get("name", "set"))
    scatters = "".join(
        _scatter_html(run, m, _PALETTE[i % len(_PALETTE)]) for i, m in enumerate(run.models)
    )
    mino, norm = _groups(run)
    return f"""<section class="run-figs">
<h2>{escape(set_name)}: where the gaps are</h2>
<p class="muted">Every pair, one point: x = P(pos) of the {escape(norm)} sentence, y = P(pos) of
the {escape(mino)} sentence. Points above the dashed diagonal are rated more positive on the
minoritized side; a black × marks a pair whose predicted label flips (● same label). Hover a
point for its sentences. Below: the mean per template.</p>
<div class="scatters">{scatters}</div>
{_forest_html(run)}
</section>"""


def _tables_html(runs: Sequence[Any]) -> str:
    rows = []
    any_few = False
    for run in runs:
        set_name = str((run.meta.get("probe_set") or {}).get("name", "?"))
        s = run.summary
        for _, r in s[s["level"].isin(["set", "contrast"])].iterrows():
            score = SCORE_LABELS.get(r["score"], r["score"])
            if r["score"] == "mean_p_positive":
                score = f"{score} [{r['group']}]"
            where = set_name if r["level"] == "set" else f"{set_name}: {r['key']}"
            tested = r["score"] == "delta"
            any_few = any_few or bool(too_few_templates(r, confidence_of(run)))
            rows.append(
                "<tr>"
                + tdt(where)
                + tdt(r["model"])
                + tdt(score)
                + td(r["mean"], 3, r["score"] == "delta")
                + tdt(_ci_cell(r["ci_low"], r["ci_high"], note_of(r)), "num")
                + f'<td class="num">{int(r["n"])}</td>'
                + tdt(_p_cell(r["p_wilcoxon"], note_of(r) if tested else ""), "num")
                + tdt(_p_cell(r["p_sign"], note_of(r) if tested else ""), "num")
                + tdt(LESS_BIASED.get(r["score"], ""), "muted")
                + "</tr>"
            )
    tpl = []
    for run in runs:
        s = run.summary
        d = s[(s["level"] == "template") & (s["score"].isin(["delta", "flip"]))]
        for (model, key), sub in d.groupby(["model", "key"], sort=False):
            dr, fr = sub[sub["score"] == "delta"], sub[sub["score"] == "flip"]
            if dr.empty:
                continue
            dr = dr.iloc[0]
            tpl.append(
                "<tr>"
                + tdt(model)
                + tdt(key)
                + td(dr["mean"], 3, True)
                + f'<td class="num">{_ci(dr["ci_low"], dr["ci_high"])}</td>'
                + f'<td class="num">{int(dr["n"])}</td>'
                + f'<td class="num">{_p(dr["p_wilcoxon"])}</td>'
                + (td(fr.iloc[0]["mean"]) if len(fr) else "<td></td>")
                + "</tr>"
            )
    return f"""<section id="tables">
<h2>All scores</h2>
<p class="muted">Set level (and per group contrast where a set mixes several): mean of template
means with the 95% interval of those template means (n/a with fewer than 6 templates: see the
template rows below); n = pairs (sentences for mean P(pos)). Wilcoxon signed-rank and exact
sign tests of Δ against 0, over the template means at set level and over the pairs within a
template (pairs with Δ = 0 dropped; both are 1 when every Δ is 0). Wasserstein-1: distance
between the two sides' P(pos) distributions.</p>
<table><thead><tr><th>probe set</th><th>classifier</th><th>score</th><th>mean</th>
<th>95% CI</th><th>n</th><th>p Wilcoxon</th><th>p sign</th><th>less biased</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
<details{" open" if any_few else ""}><summary>Per template: mean Δ and flip rate</summary>
<table><thead><tr><th>classifier</th><th>template</th><th>mean Δ</th><th>95% CI</th><th>n</th>
<th>p Wilcoxon</th><th>flip rate</th></tr></thead><tbody>{"".join(tpl)}</tbody></table>
</details>
</section>"""


def _upstream_html(fill_mask: Sequence[Any], runs: Sequence[Any]) -> str:
    if not fill_mask:
        return ""
    rows = []
    for run in fill_mask:
        set_name = str((run.meta.get("probe_set") or {}).get("name", "?"))
        s = run.summary
        for _, r in s[s["level"] == "set"].iterrows():
            if r["score"] not in _FILL_MASK_SCORES:
                continue
            rows.append(
                "<tr>"
                + tdt("upstream (fill-mask)")
                + tdt(set_name)
                + tdt(r["model"])
                + tdt(_FILL_MASK_SCORES[r["score"]])
                + td(r["mean"], 3, r["score"] == "target_gap_mean")
                + tdt(_ci_cell(r["ci_low"], r["ci_high"], note_of(r)), "num")
                + f'<td class="num">{int(r["n"])}</td></tr>'
            )
    for run in runs:
        set_name = str((run.meta.get("probe_set") or {}).get("name", "?"))
        for model in run.models:
            d = _set_row(run, model, "delta")
            if d is None:
                continue
            rows.append(
                "<tr>"
                + tdt("downstream (classifier)")
                + tdt(set_name)
                + tdt(model)
                + tdt(SCORE_LABELS["delta"])
                + td(d["mean"], 3, True)
                + tdt(_ci_cell(d["ci_low"], d["ci_high"], note_of(d)), "num")
                + f'<td class="num">{int(d["n"])}</td></tr>'
            )
    return f"""<section id="upstream">
<h2>Upstream skew and downstream gap side by side</h2>
<p class="muted">Fill-mask runs given with the downstream runs: their set-level skew
(distances: 0 = no skew; target gap: log p on the minoritized side minus the normative side)
beside each classifier's mean Δ P(pos). They measure different things on different sentences;
read them as two views of one axis, not as one number.</p>
<table><thead><tr><th>stage</th><th>probe set</th><th>model</th><th>score</th><th>mean</th>
<th>95% CI</th><th>n</th></tr></thead><tbody>{"".join(rows)}</tbody></table>
</section>"""


def _provenance_html(runs: Sequence[Any]) -> str:
    blocks = []
    for run in runs:
        meta = run.meta
        ps = meta.get("probe_set") or {}
        models = "".join(
            f"<tr>{tdt(m.get('name', ''))}{tdt(m.get('kind', ''))}"
            f"{tdt(m.get('positive_label', ''))}<td>{kv_html(m.get('info', {}))}</td></tr>"
            for m in meta.get("models", [])
        )
        blocks.append(
            f"""<details class="run"><summary>Run <code>{escape(str(meta.get("run_id", "?")))}</code>
· probe set <b>{escape(str(ps.get("name", "?")))}</b> · created {escape(str(meta.get("created", "?")))}
</summary><div class="prov">
<div><h4>Probe set</h4>{kv_html(ps)}</div>
<div><h4>Settings</h4>{kv_html(meta.get("settings", {}))}</div>
<div><h4>Versions</h4>{kv_html(meta.get("versions", {}))}</div></div>
<h4>Classifiers (the first is the base)</h4>
<table class="models"><thead><tr><th>name</th><th>kind</th><th>positive label</th>
<th>info</th></tr></thead><tbody>{models}</tbody></table></details>"""
        )
    return f'<section id="provenance"><h2>Provenance</h2>{"".join(blocks)}</section>'


_EXTRA_CSS = """
ul.finding li { margin: 0.35em 0; }
#finding h2 { margin-top: 0.6em; }
.scatters { display: flex; flex-wrap: wrap; gap: 12px; }
.scatters figure { width: min(460px, 100%); }
"""


def render_downstream_report(runs: Sequence[Any], *, title: str | None = None) -> str:
    """The report page of downstream runs (and optional fill-mask runs) as a string.

    Args:
        runs: :class:`~biasprobe.downstream.run.DownstreamResult` objects (from
            ``run_downstream`` or ``load_downstream_run``); fill-mask
            :class:`~biasprobe.results.RunResult` objects may be mixed in and are shown beside
            the downstream gaps.

    Raises:
        UsageError: no downstream run among ``runs``.
    """
    down = [r for r in runs if _is_downstream(r)]
    fill_mask = [r for r in runs if not _is_downstream(r)]
    if not down:
        raise UsageError("a downstream report needs at least one downstream run")
    set_names = list(
        dict.fromkeys(str((r.meta.get("probe_set") or {}).get("name", "?")) for r in down)
    )
    page_title = title or f"biasprobe downstream report: {', '.join(set_names)}"
    models = list(dict.fromkeys(m for r in down for m in r.models))
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    base = f" (base: {models[0]})" if len(models) > 1 else ""
    header = f"""<header><h1>{escape(page_title)}</h1>
<p class="facts">Probe sets <b>{escape(", ".join(set_names))}</b> · classifiers
<b>{escape(", ".join(models))}</b>{escape(base)} · run
{escape(", ".join(str(r.meta.get("created", "?")) for r in down))} · report written with
biasprobe {escape(package_version())} on {escape(now)} · <a href="#provenance">provenance</a></p></header>"""
    # the finding first, then the figures, then the tables; provenance last
    body = "\n".join(
        [
            header,
            _finding_html(down),
            *(_run_figures_html(r) for r in down),
            _accuracy_html(down),
            _comparison_html(down),
            _upstream_html(fill_mask, down),
            _tables_html(down),
            _provenance_html(down),
        ]
    )
    return page_shell(page_title, body, css=_EXTRA_CSS, plotly_first=True)


def write_downstream_report(
    runs: Sequence[Any], out_path: str | Path, *, title: str | None = None
) -> Path:
    """Write the downstream report as one self-contained HTML file, atomically.

    Only a missing file or one of biasprobe's own reports is replaced.

    Raises:
        UsageError: no downstream run; NotOwnedError: the path holds a file biasprobe did not
            write; OutputError: it cannot be written.
    """
    from biasprobe import fsio

    out = fsio.check_output_file(out_path)
    page = render_downstream_report(runs, title=title)
    return fsio.write_report(out, page)
