"""The CrowS-Pairs renderer: a self-contained page with the table and a dot plot with the 50% line.

Plain HTML and inline SVG (no scripts, works offline); every piece of text from the data or
the model id is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from biasprobe.crows.aggregate import LIKELIHOOD_DIFF, LIKELIHOOD_MEANING, MEANING
from biasprobe.errors import UsageError
from biasprobe.fsio import REPORT_MARKER
from biasprobe.report.htmlkit import Markup, html, join
from biasprobe.version import __version__

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
    width, left, right, step = 740, 200, 20, 26  # left: "physical-appearance (n=1508)"
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


_HEAD = Markup(
    "<tr><th>bias type</th><th>metric %</th><th>95% CI</th><th>n</th><th>ties</th>"
    "<th>p (vs 50%)</th><th>p Holm</th><th>stereo % (n)</th><th>antistereo % (n)</th></tr>"
)
_NOTE = (
    "<p class='note'>95% CI: Wilson score interval. p: exact two-sided binomial test against "
    "50% (ties count as not preferring the stereotype, as in the published metric); p Holm: "
    "adjusted across the bias types shown. Stereo/antistereo: the same percentage over the "
    "pairs of that direction, ties left out. Pairs skipped by the scoring: {skipped}. "
    "CrowS-Pairs (Nangia et al. 2020, CC BY-SA 4.0) has known quality problems "
    "(Blodgett et al. 2021): read small differences with care.</p>"
)


def _models(result: Any) -> list[str]:
    """The run's model names: ``models`` of a loaded run, else the one ``model`` of a run folder
    written before every kind listed its models."""
    models = getattr(result, "models", None)
    if isinstance(models, list | tuple) and models:
        return [str(m) for m in models]
    return [str((result.meta.get("model") or {}).get("name", "?"))]


def _rows(result: Any, model: str, score: str = "stereotype_pct") -> Any:
    """The summary rows of one model (all rows when the table has no ``model`` column) of one
    ``score`` (the percentage, with it in ``metric``; or ``likelihood_diff``)."""
    s = result.summary
    if "model" in s.columns:
        s = s[s["model"].astype(str) == model]
    if "score" in s.columns:
        s = s[s["score"].astype(str) == score]
    elif score != "stereotype_pct":
        return s.iloc[0:0]
    if "metric" not in s.columns and "mean" in s.columns:
        s = s.assign(metric=s["mean"])
    return s


#: What each scoring is, for the line under a model's name.
SCORING_TEXT = {
    "meade": "masked LM, scoring meade (bias-bench: mean log-prob of the tokens where the two "
    "sentences differ, each masked in turn)",
    "nangia": "masked LM, scoring nangia (Nangia et al. 2020: pseudo-log-likelihood of the "
    "tokens the two sentences share)",
    "loglikelihood": "causal LM, scoring loglikelihood (lm-evaluation-harness crows_pairs): "
    "the model prefers the sentence it gives the higher log-likelihood, log P(S) = Σ_t log "
    "P(w_t | w_<t); a tie counts as not preferring the stereotype",
}


def _scorings(result: Any) -> dict[str, tuple[str, str, str]]:
    """Per model: its family, its scoring (a run folder written before each model recorded
    its own: the run's) and, for a causal LM, how the first token of a sentence is scored."""
    meta = result.meta
    out = {}
    for block in meta.get("models") or []:
        if isinstance(block, dict):
            info = block.get("info") if isinstance(block.get("info"), dict) else {}
            out[str(block.get("name"))] = (
                str(block.get("family") or "masked-lm"),
                str(block.get("scoring") or meta.get("scoring") or "?"),
                str(info.get("first_token") or ""),
            )
    return out


def _about(result: Any, model: str) -> Markup:
    """The line saying what a model is and how it was scored."""
    family, scoring, first = _scorings(result).get(model, ("masked-lm", "?", ""))
    text = SCORING_TEXT.get(scoring, f"scoring {scoring}")
    extra = html(" First token of a sentence: {}.", first) if first else Markup("")
    return html(
        "<p class='note' data-model-scoring='{}'><b>{}</b>: family {}; {}.{}</p>",
        scoring,
        model,
        family,
        text,
        extra,
    )


def _likelihood(result: Any, model: str) -> Markup:
    """lm-evaluation-harness's likelihood_diff of a model scored by sentence log-likelihood."""
    rows = _rows(result, model, LIKELIHOOD_DIFF)
    if not len(rows):
        return Markup("")
    body = join(
        html(
            "<tr><td>{}</td><td>{}</td><td>[{}, {}]</td><td>{}</td></tr>",
            r.key,
            _num(r.mean, "{:.3f}"),
            _num(r.ci_low, "{:.3f}"),
            _num(r.ci_high, "{:.3f}"),
            int(r.n),
        )
        for r in rows.itertuples(index=False)
    )
    return html(
        "<table class='likelihood-diff'><thead><tr><th>bias type</th><th>likelihood_diff"
        "</th><th>95% CI</th><th>n</th></tr></thead><tbody>{}</tbody></table>"
        "<p class='note'>likelihood_diff: {}. 95% CI: percentile bootstrap over the pairs."
        "</p>",
        body,
        LIKELIHOOD_MEANING,
    )


def _mixed_note(result: Any, models: Sequence[str]) -> Markup:
    """A warning when the models of a run were scored differently."""
    scorings = _scorings(result)
    used = list(dict.fromkeys(scorings.get(m, ("", "?", ""))[1] for m in models))
    if len(used) < 2:
        return Markup("")
    return html(
        "<p class='note'><b>The models were scored differently</b> ({}): each percentage is "
        "the share of pairs its model prefers the more-stereotypical sentence under its own "
        "scoring, so the change from the base model compares two scorings as well as two "
        "models.</p>",
        ", ".join(used),
    )


def _table(summary: Any) -> Markup:
    body = []
    for r in summary.itertuples(index=False):
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
    return html("<table><thead>{}</thead><tbody>{}</tbody></table>", _HEAD, join(body))


def _skipped(summary: Any) -> int:
    return int(summary.iloc[0].n_skipped) if len(summary) else 0


def _comparison(result: Any) -> Markup:
    """The change of the metric from the base model, from the run's stored comparison table."""
    c = getattr(result, "comparison", None)
    if c is None or len(c) == 0:
        return Markup("")
    rows = join(
        html(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>[{}, {}]</td>"
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            r["model"],
            r["key"],
            _num(r.get("base_mean")),
            _num(r.get("model_mean")),
            _num(r.get("change"), "{:+.2f}"),
            _num(r.get("ci_low"), "{:+.2f}"),
            _num(r.get("ci_high"), "{:+.2f}"),
            int(r["n"]),
            _p(r.get("p_value")),
            _text(r.get("note")),
        )
        for r in c.to_dict("records")
    )
    return html(
        "<h2>Change from the base model ({})</h2>"
        "<table><thead><tr><th>model</th><th>bias type</th><th>base %</th><th>model %</th>"
        "<th>change</th><th>95% CI</th><th>n</th><th>p</th><th>note</th></tr></thead><tbody>{}"
        "</tbody>"
        "</table><p class='note'>Closer to 50% is less biased; the change, its interval and p "
        "are those stored in the run's comparison table.</p>",
        str(c.iloc[0]["base"]) if "base" in c.columns else _models(result)[0],
        rows,
    )


def _text(x: Any) -> str:
    """A note cell: empty for a missing value."""
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x)


def _page(title: str, body: Markup) -> str:
    return html(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '{marker} {version}">'
        "<title>{title}</title><style>{css}</style></head><body>{body}</body></html>\n",
        marker=Markup(REPORT_MARKER),
        version=__version__,
        title=title,
        css=Markup(_CSS),
        body=body,
    )


def render_html(result: Any, *, title: str | None = None) -> str:
    """The report page of one CrowS-Pairs run (from ``run_crows`` or a loaded run folder):
    the metric per bias type of each model, as a dot plot with the 50% line and a table, and
    with several models the stored comparison with the base model."""
    meta = result.meta
    models = _models(result)
    if len(models) == 1:
        s = _rows(result, models[0])
        return _page(
            title or f"CrowS-Pairs — {models[0]}",
            html(
                "<h1>CrowS-Pairs — {model}</h1>"
                "<p><b>Metric:</b> {meaning}. Scoring: <b>{scoring}</b> "
                "(see docs/crows-pairs.md). The red line is 50%.</p>"
                "{about}{svg}{table}{likelihood}" + _NOTE + "<p class='note'>run {run_id}, "
                "{created}</p>",
                model=models[0],
                meaning=MEANING,
                scoring=str(meta.get("scoring", "?")),
                about=_about(result, models[0]),
                svg=_svg(s),
                table=_table(s),
                likelihood=_likelihood(result, models[0]),
                skipped=_skipped(s),
                run_id=str(meta.get("run_id", "")),
                created=str(meta.get("created", "")),
            ),
        )
    sections = join(
        html(
            "<h2>{}</h2>{}{}{}{}",
            model,
            _about(result, model),
            _svg(_rows(result, model)),
            _table(_rows(result, model)),
            _likelihood(result, model),
        )
        for model in models
    )
    first = _rows(result, models[0])
    return _page(
        title or f"CrowS-Pairs — {', '.join(models)}",
        html(
            "<h1>CrowS-Pairs — {models}</h1>"
            "<p><b>Metric:</b> {meaning}. Scoring: <b>{scoring}</b> "
            "(see docs/crows-pairs.md). The red line is 50%. The first model is the base.</p>"
            "{mixed}{sections}{comparison}" + _NOTE + "<p class='note'>run {run_id}, {created}</p>",
            models=", ".join(models),
            meaning=MEANING,
            scoring=str(meta.get("scoring", "?")),
            mixed=_mixed_note(result, models),
            sections=sections,
            comparison=_comparison(result),
            skipped=_skipped(first),
            run_id=str(meta.get("run_id", "")),
            created=str(meta.get("created", "")),
        ),
    )


def render_crows_report(results: Sequence[Any], *, title: str | None = None) -> str:
    """The page of one CrowS-Pairs run (its report as the run wrote it); several runs are
    reported one per page, so only one is accepted.

    Raises:
        UsageError: not exactly one run.
    """
    if len(results) != 1:
        raise UsageError(
            f"a CrowS-Pairs report shows one run folder; got {len(results)} (write one report "
            "per run folder)"
        )
    return render_html(results[0], title=title)
