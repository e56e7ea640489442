"""The report kit: the page shell, number formats and table cells every renderer shares.

Public names only, so that each kind's renderer (:mod:`biasprobe.report.fillmask`,
:mod:`biasprobe.report.counterfactual`, :mod:`biasprobe.report.crows`) builds its page from the
same pieces: :func:`page_shell` (the whole HTML document, with the generator marker),
:func:`fmt` / :func:`p_text` / :func:`ci_text` (numbers as text), :func:`td` / :func:`tdt` /
:func:`p_td` / :func:`ci_td` / :func:`na_td` (table cells), :func:`sortable` (a table sorted by
its headings), :func:`kv_html` (a nested mapping as a definition list), :func:`note_of` /
:func:`short_note` (a summary row's note). Text becomes HTML only through
:mod:`biasprobe.report.htmlkit`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

from biasprobe.report.htmlkit import Markup, escape, html, join, script_json
from biasprobe.results import RunResult
from biasprobe.stats import min_units


def na_td(reason: str) -> str:
    """A value that cannot be computed from what the run stored: "n/a (why)"."""
    return f'<td class="num na" data-v="">{escape(reason)}</td>'


def num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def fmt(x: Any, digits: int = 3, signed: bool = False) -> str:
    """``digits`` decimals, or two significant digits for a value that would read as 0 (a
    Kurita bias of 0.00016 is "0.00016", not "0.000"); "—" for a missing value."""
    v = num(x)
    if math.isnan(v):
        return "—"
    if abs(v) < 1e-12:  # rounding noise of a difference, not a value
        v = 0.0
    digits = fmt_digits(v, digits)
    return format(v, f"+.{digits}f" if signed else f".{digits}f")


def fmt_digits(x: Any, digits: int) -> int:
    """``digits``, or the decimals of two significant digits when ``x`` would read as 0."""
    v = num(x)
    if math.isnan(v) or abs(v) < 1e-12 or round(v, digits) != 0:
        return digits
    return 1 - math.floor(math.log10(abs(v)))


def note_of(row: Any) -> str:
    """A summary row's ``note`` ("" when it has none)."""
    note = row.get("note") if isinstance(row, Mapping) else getattr(row, "note", None)
    return note if isinstance(note, str) else ""


def short_note(note: str) -> str:
    """The reason a row has no interval, in a few words: "5 templates", "1 pair"."""
    short = note.split(":", 1)[0].strip() if note else ""
    return re.sub(r"^1 (templates|pairs)$", lambda m: f"1 {m.group(1)[:-1]}", short)


def td(x: Any, digits: int = 3, signed: bool = False) -> str:
    v = num(x)
    key = "" if math.isnan(v) else f"{v:.9g}"  # for sorting: 9 significant digits
    return f'<td class="num" data-v="{key}">{fmt(v, digits, signed)}</td>'


def tdt(text: Any, cls: str = "") -> Markup:
    if cls:
        return html('<td class="{}">{}</td>', cls, str(text))
    return html("<td>{}</td>", str(text))


def kv_html(d: Any) -> Markup:
    """A nested mapping as an escaped definition list."""
    if isinstance(d, Mapping):
        if not d:
            return Markup("<span class='muted'>—</span>")
        rows = join(html("<dt>{}</dt><dd>{}</dd>", str(k), kv_html(v)) for k, v in d.items())
        return html("<dl>{}</dl>", rows)
    if isinstance(d, list | tuple):
        if not d:
            return Markup("<span class='muted'>—</span>")
        return html("<ul>{}</ul>", join(html("<li>{}</li>", kv_html(v)) for v in d))
    return escape("" if d is None else str(d))


def package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("biasprobe")
    except metadata.PackageNotFoundError:
        return "unknown"


def sortable(headers: list[str], rows: list[str], cls: str = "", deferred: bool = False) -> str:
    """A table sorted by clicking its headings. ``deferred``: the rows sit in a ``<template>``
    inside the body (parsed, but not styled or laid out while the page opens) and the page
    script moves them into the table once the first pair is drawn — for the per-pair tables,
    thousands of rows at scale."""
    ths = "".join(f'<th scope="col" title="sort">{escape(h)}</th>' for h in headers)
    body = "".join(rows)
    if deferred and rows:
        body = f'<template class="deferred-rows">{body}</template>'
    return (
        f'<table class="sortable {cls}"><thead><tr>{ths}</tr></thead><tbody>{body}</tbody></table>'
    )


def ci_level(run: RunResult) -> str:
    """ "95% CI" (the run's confidence level, as a column heading)."""
    conf = (run.meta.get("settings") or {}).get("confidence")
    try:
        return f"{float(conf) * 100:g}% CI"
    except (TypeError, ValueError):
        return "95% CI"


def confidence_of(run: Any) -> float:
    """The run's confidence level (``settings.confidence``; 0.95 when it records none)."""
    conf = num(((getattr(run, "meta", None) or {}).get("settings") or {}).get("confidence"))
    return conf if 0.0 < conf < 1.0 else 0.95


def too_few_templates(row: Any, confidence: float = 0.95) -> int:
    """The templates a set-level interval and test need (:func:`biasprobe.stats.min_units`)
    when the summary ``row`` has no interval because its set has fewer (its ``templates``
    column), else 0."""
    get = row.get if isinstance(row, Mapping) else lambda k: getattr(row, k, None)
    templates = num(get("templates"))
    if not isna(num(get("ci_low"))) or math.isnan(templates) or templates < 1:
        return 0
    need = min_units(confidence)
    return need if templates < need else 0


def p_td(p: Any, note: str = "", n: Any = None) -> str:
    """A p-value cell: 3 significant digits, "< 0.001" below that, — when there is none;
    "n/a (why)" when ``note`` says why there is none, or when ``n`` is a single pair (its two
    sign patterns always tie: no test, not p = 1)."""
    v = num(p)
    if not math.isnan(num(n)) and num(n) < 2:
        return na_td("n/a (1 pair)")
    if math.isnan(v):
        return na_td(f"n/a ({short_note(note)})") if note else '<td class="num" data-v="">—</td>'
    shown = "&lt; 0.001" if v < 0.001 else f"{v:.3f}"
    return f'<td class="num" data-v="{v!r}">{shown}</td>'


def ci_td(low: Any, high: Any, signed: bool = False, note: str = "") -> str:
    """An interval cell: "[low, high]", or "n/a (why)" when ``note`` says why there is none."""
    if isna(low) or isna(high):
        if note:
            return na_td(f"n/a ({short_note(note)})")
        return '<td class="num" data-v="">—</td>'
    # both ends with the same decimals: enough for two significant digits of an end that
    # would read as 0 at three ("[-0.000040, 0.000710]", not "[-0.000, 0.001]")
    d = max(fmt_digits(low, 3), fmt_digits(high, 3))
    return (
        f'<td class="num" data-v="{num(low)!r}">'
        f"[{fmt(low, d, signed=signed)}, {fmt(high, d, signed=signed)}]</td>"
    )


def isna(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def sig_digits(*values: Any) -> int:
    """Decimals that show the largest of ``values`` with two significant digits (at least 2,
    at most 6): 0.85 → 2, 0.00016 → 5."""
    finite = [abs(num(v)) for v in values if not math.isnan(num(v)) and num(v) != 0]
    if not finite:
        return 2
    return int(min(6, max(2, -math.floor(math.log10(max(finite))) + 1)))


def ci_text(low: Any, high: Any, level: str, digits: int = 2, signed: bool = False) -> str:
    """'95% CI 0.55–0.69' (signed values: '−0.10 to +0.31')."""
    if isna(low) or isna(high):
        return f"no {level}"
    a, b = fmt(low, digits, signed), fmt(high, digits, signed)
    return f"{level} {a} to {b}" if signed else f"{level} {a}–{b}"


def plural(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else fmt(p, 3)


def asset(name: str) -> str:
    return resources.files("biasprobe.report").joinpath("assets", name).read_text("utf-8")


def page_shell(
    title: str,
    body: str,
    payload: dict[str, Any] | None = None,
    *,
    css: str = "",
    plotly_first: bool = False,
) -> str:
    """The whole HTML page around ``body``.

    With a ``payload`` (the interactive run report) the data, plotly and ``report.js`` follow
    the body; with ``plotly_first`` (pages whose figures are drawn inline) plotly is loaded in
    the head and no ``report.js`` is added. ``css`` is appended to the report stylesheet.
    """
    from plotly.offline import get_plotlyjs

    plotly_js = get_plotlyjs().replace("</script", "<\\/script")
    plotly = f"<script>{plotly_js}</script>\n"
    head = plotly if plotly_first else ""
    tail = ""
    if payload is not None:
        tail += (
            f'<script type="application/json" id="biasprobe-data">{script_json(payload)}</script>\n'
        )
    if not plotly_first:
        tail += plotly
    if payload is not None:
        tail += f"<script>{asset('report.js')}</script>\n"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="biasprobe {escape(package_version())}">
<title>{escape(title)}</title>
<style>{asset("report.css")}{css}</style>
{head}</head>
<body>
{body}
{tail}</body>
</html>
"""


#: ``kind`` of ``results.json`` in run folders written before every kind said its kind (fill-mask
#: runs said none, counterfactual runs ``downstream``) → today's kind.
_OLD_KINDS = {None: "fill-mask", "downstream": "counterfactual"}


def kind_of(result: Any) -> str:
    """The kind of a run result (``fill-mask``, ``counterfactual``, ``crows-pairs``): its
    ``kind``, else the ``kind`` of its ``results.json`` (run folders written before every kind
    said its kind: none for fill-mask, ``downstream`` for counterfactual runs)."""
    kind = getattr(result, "kind", None)
    if isinstance(kind, str):
        return kind
    meta = getattr(result, "meta", None)
    found = meta.get("kind") if isinstance(meta, dict) else None
    if found is None or isinstance(found, str):
        return _OLD_KINDS.get(found, found)
    return repr(found)
