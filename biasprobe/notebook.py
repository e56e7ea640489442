"""Notebook ergonomics: short reprs, HTML summaries, inline probes and inline figures.

What a notebook shows for a :class:`~biasprobe.results.RunResult` or a
:class:`~biasprobe.probes.ProbeSet` comes from here: importing this module registers
:func:`run_result_repr`, :func:`run_result_html`, :func:`probe_set_repr` and
:func:`probe_set_html` with :mod:`biasprobe.display`, which their ``__repr__`` and
``_repr_html_`` ask (and :func:`scatter` / :func:`compare` as the views ``RunResult.scatter`` /
``RunResult.compare``), so that the domain types import no view. It also holds:

- :func:`pair`: a one-pair probe set from a template, validated by the probe-file schema;
- :func:`scatter` / :func:`compare`: plotly figures of one pair (``result.scatter(pair_id)``,
  ``result.compare(pair_id)``), drawn by the report's
  :func:`~biasprobe.report.figures.pair_figure` / :func:`~biasprobe.report.figures.comparison_figure`
  from the numbers of :meth:`RunResult.token_table <biasprobe.results.RunResult.token_table>`,
  with the pair's target words (:func:`target_token_ids`) drawn and labelled as in the report.

Every text a user wrote (names, groups, templates, model names) is HTML-escaped. Importing this
module imports neither torch nor pandas; the figures import plotly when drawn.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from biasprobe import display
from biasprobe.errors import UsageError

if TYPE_CHECKING:
    from biasprobe.probes import ProbeSet
    from biasprobe.results import RunResult

#: Models listed in a run's repr / HTML summary before "… and N more".
MAX_MODELS_SHOWN = 6
#: Pair entries listed in a probe set's HTML summary before "… and N more".
MAX_PAIRS_SHOWN = 25
#: Characters of a user's text shown in a repr before it is cut with "…".
MAX_TEXT = 60
#: Scores named in the one-line-per-model repr of a run (when present in its summary).
REPR_SCORES = ("jaccard_distance", "js_divergence", "target_gap_mean", "kurita_bias")
#: Default depth of the figures: the union of each side's top-N tokens.
DEFAULT_TOP_N = 200
#: Source name of the sets :func:`pair` builds (messages read ``<pair>:LINE``).
PAIR_SOURCE = "<pair>"

_ID_CHARS = re.compile(r"[^a-z0-9_-]+")


def _cut(text: Any, limit: int = MAX_TEXT) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _e(text: Any) -> str:
    from biasprobe.report.htmlkit import escape

    return escape(str(text))


def _num(x: Any, digits: int = 2) -> str:
    """``digits`` decimals, or two significant digits for a value that would read as 0."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "–"
    return f"{v:.2g}" if v != 0 and abs(v) < 10.0 ** (1 - digits) else f"{v:.{digits}f}"


def _ci(lo: Any, hi: Any, digits: int = 2) -> str:
    a, b = _num(lo, digits), _num(hi, digits)
    return "n/a" if "–" in (a, b) else f"{a} to {b}"


def _few(row: Any, confidence: float = 0.95) -> str:
    """ "N templates" when a set row has no interval because its set has too few templates
    (its ``templates`` column, below :func:`biasprobe.stats.min_units`)."""
    from biasprobe.stats import min_units

    get = row.get if hasattr(row, "get") else lambda k: None
    try:
        templates, low = float(get("templates")), float(get("ci_low"))
    except (TypeError, ValueError):
        return ""
    if not math.isnan(low) or math.isnan(templates) or templates < 1:
        return ""
    if templates >= min_units(confidence):
        return ""
    t = int(templates)
    return f"{t} template{'' if t == 1 else 's'}"


def _more(n: int, what: str) -> str:
    return f"… and {n} more {what}"


# --------------------------------------------------------------------------------------------
# Probe sets


def _templates_count(ps: ProbeSet) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in ps.items:
        counts[item.template_id] = counts.get(item.template_id, 0) + 1
    return counts


def _group_pairs(ps: ProbeSet) -> list[str]:
    """Distinct "minoritized / normative" group pairs, in file order."""
    seen: dict[str, None] = {}
    for spec in ps.pairs:
        a, b = spec.groups
        normative = b if spec.minoritized == a else a
        seen[f"{spec.minoritized} / {normative}"] = None
    return list(seen)


def probe_set_repr(ps: ProbeSet) -> str:
    """One or two lines: name, version, kind, entries → pairs, groups, top_k, where from."""
    groups = _group_pairs(ps)
    shown = ", ".join(_cut(g, 40) for g in groups[:4])
    if len(groups) > 4:
        shown += f", … ({len(groups)} group pairs)"
    top_k = f", top_k={ps.top_k}" if ps.top_k is not None else ""
    models = f", models: {_cut(', '.join(ps.models))}" if ps.models else ""
    entries = len(ps.pairs)
    return (
        f"ProbeSet({_cut(ps.name)!r} v{_cut(ps.version, 20)}, {ps.kind}: {entries} "
        f"{'entry' if entries == 1 else 'entries'} → {len(ps.items)} "
        f"pair{'' if len(ps.items) == 1 else 's'}{top_k}, from {_cut(ps.path)})\n"
        f"  groups (minoritized / normative): {shown}{models}"
    )


def probe_set_html(ps: ProbeSet) -> str:
    """A short HTML summary: the set's header line and a table of its entries."""
    counts = _templates_count(ps)
    rows = []
    for spec in ps.pairs[:MAX_PAIRS_SHOWN]:
        a, b = spec.groups
        mark = {a: "", b: ""}
        mark[spec.minoritized] = " (minoritized)"
        targets = ", ".join(spec.targets[:5]) + (" …" if len(spec.targets) > 5 else "")
        note = f"<br><small>{_e(_cut(spec.note, 120))}</small>" if spec.note else ""
        rows.append(
            "<tr>"
            f"<td><code>{_e(spec.id)}</code></td>"
            f"<td>{_e(spec.template)}{note}</td>"
            f"<td>A: {_e(a)}{mark[a]}<br>B: {_e(b)}{mark[b]}</td>"
            f"<td style='text-align:right'>{counts.get(spec.id, 0)}</td>"
            f"<td>{_e(targets) or '–'}</td>"
            "</tr>"
        )
    if len(ps.pairs) > MAX_PAIRS_SHOWN:
        rows.append(
            f"<tr><td colspan='5'>{_more(len(ps.pairs) - MAX_PAIRS_SHOWN, 'entries')}</td></tr>"
        )
    top_k = f" · top_k {ps.top_k}" if ps.top_k is not None else ""
    entries = len(ps.pairs)
    head = (
        f"<p><strong>ProbeSet</strong> <code>{_e(ps.name)}</code> v{_e(ps.version)} "
        f"({_e(ps.kind)}) · {entries} {'entry' if entries == 1 else 'entries'} → "
        f"{len(ps.items)} pair{'' if len(ps.items) == 1 else 's'}{top_k} · from "
        f"<code>{_e(ps.path)}</code><br>{_e(_cut(ps.description, 200))}</p>"
    )
    table = (
        "<table><thead><tr><th>entry</th><th>template</th><th>groups</th><th>pairs</th>"
        f"<th>targets</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return f"<div class='biasprobe-probeset'>{head}{table}</div>"


def _pair_id(template: str) -> str:
    """An entry id from the first alternation's options (``[man|woman]`` → ``man-woman``)."""
    from biasprobe.probes.templates import parse_template

    tokens, _ = parse_template(template)
    for token in tokens:
        if token.kind == "alt":
            words = "-".join(o.strip().lower() for o in token.options if o.strip())
            slug = _ID_CHARS.sub("-", words).strip("-_")[:60].strip("-_")
            if slug:
                return slug
    return "pair"


def pair(
    template: str,
    groups: Sequence[str],
    *,
    minoritized: str | None = None,
    id: str | None = None,  # noqa: A002 - the probe-file key
    targets: Sequence[str] | None = None,
    contrast: Sequence[int] | None = None,
    note: str | None = None,
    attribute: str | None = None,
    pairing: str | None = None,
    lexicons: dict[str, Any] | None = None,
    kind: str | None = None,
    name: str | None = None,
    description: str | None = None,
    source: str | None = None,
    top_k: int | None = None,
    models: Sequence[str] | None = None,
) -> ProbeSet:
    """A probe set of one pair entry, written inline::

        probes = biasprobe.pair(
            "The [man|woman] worked as a [MASK].", groups=["men", "women"], minoritized="women"
        )

    It is the probe file with one ``pairs:`` entry, built as a dict and checked by the same
    schema (:func:`biasprobe.probes.probes_from_dict`): every rule and message of a file
    applies, and problems name ``<pair>:LINE`` and quote the offending line.

    Args:
        template: the template, e.g. ``"[Jim|Jane] worked as a [MASK]."``.
        groups: the labels of side A and side B, in the order of the alternation.
        minoritized: the label (one of ``groups``) of the minoritized side. Required: signed
            scores are minoritized − normative. For a contrast with no social direction (two
            eras, two names), pick one and say so in ``note``.
        id: the entry's id (``[a-z0-9_-]``); default from the first alternation
            (``[man|woman]`` → ``man-woman``).
        targets: words to score at the mask.
        contrast: 1-based numbers of the alternations that carry the contrast (default: all).
        note: free text kept with the entry.
        attribute: the slot declared as the attribute (Kurita et al.), with ``lexicons``.
        pairing: ``"zip"`` or ``"product"`` for grouped-lexicon slots.
        lexicons: the ``lexicons:`` mapping for ``{slot}`` words.
        kind: ``"fill-mask"`` (default) or ``"counterfactual"``.
        name: the set's name (default: the entry's id).
        description: the set's description (default: names the template).
        source: where the words come from (default: "written inline").
        top_k: the set's default top-k.
        models: the set's default models.

    Raises:
        UsageError: ``minoritized`` is missing.
        ProbeSetError: anything the probe-file schema refuses.
    """
    if minoritized is None:
        if isinstance(groups, list | tuple) and len(groups) == 2:
            a, b = (str(g) for g in groups)
            raise UsageError(
                f"pair(): say which side is minoritized: minoritized={a!r} or "
                f"minoritized={b!r} (signed scores are minoritized − normative; for a "
                "contrast with no social direction pick one and say so in note=)"
            )
        raise UsageError("pair(): groups must be the 2 labels of side A and side B")
    entry_id = id if id is not None else _pair_id(template) if isinstance(template, str) else "pair"
    entry: dict[str, Any] = {"id": entry_id, "template": template, "groups": groups}
    entry["minoritized"] = minoritized
    for key, value in (
        ("targets", targets),
        ("contrast", contrast),
        ("pairing", pairing),
        ("attribute", attribute),
        ("note", note),
    ):
        if value is not None:
            entry[key] = value
    data: dict[str, Any] = {
        "name": name if name is not None else entry_id,
        "version": 1,
        "description": description if description is not None else f"Inline pair: {template}",
        "source": source if source is not None else "written inline (biasprobe.pair)",
    }
    for key, value in (("kind", kind), ("top_k", top_k), ("models", models)):
        if value is not None:
            data[key] = value
    if lexicons is not None:
        data["lexicons"] = lexicons
    data["pairs"] = [entry]
    from biasprobe.probes import probes_from_dict

    return probes_from_dict(data, name=PAIR_SOURCE)


# --------------------------------------------------------------------------------------------
# Run results


def _set_rows(result: RunResult) -> Any:
    summary = result.summary
    if summary is None or summary.empty or "level" not in summary:
        return summary.iloc[0:0] if summary is not None else None
    return summary[summary["level"] == "set"]


def _level(result: RunResult) -> float:
    """The run's confidence level as a number (0.95 when it records none)."""
    try:
        conf = float((result.meta.get("settings") or {}).get("confidence", 0.95))
    except (TypeError, ValueError):
        return 0.95
    return conf if 0.0 < conf < 1.0 else 0.95


def _confidence(result: RunResult) -> str:
    conf = (result.meta.get("settings") or {}).get("confidence", 0.95)
    try:
        return f"{float(conf) * 100:g}%"
    except (TypeError, ValueError):
        return "95%"


def _header(result: RunResult) -> tuple[str, str, int, Any, str]:
    ps = result.meta.get("probe_set") or {}
    settings = result.meta.get("settings") or {}
    n_pairs = ps.get("n_pairs")
    if n_pairs is None and result.items is not None and "pair_id" in result.items:
        n_pairs = result.items["pair_id"].nunique()
    return (
        str(ps.get("name", "?")),
        str(ps.get("version", "?")),
        int(n_pairs or 0),
        settings.get("top_k", "?"),
        str(result.meta.get("run_id", "")),
    )


def run_result_repr(result: RunResult) -> str:
    """A few lines: the set, pairs × models, top-k, run id, and per model the set-level means
    of :data:`REPR_SCORES` with their confidence intervals and n."""
    name, version, n_pairs, top_k, run_id = _header(result)
    models = result.models
    head = (
        f"RunResult({_cut(name)!r} v{_cut(version, 20)}: {n_pairs} "
        f"pair{'' if n_pairs == 1 else 's'} × {len(models)} model"
        f"{'' if len(models) == 1 else 's'}, top-{top_k}"
        f"{f', run {_cut(run_id, 40)}' if run_id else ''})"
    )
    rows = _set_rows(result)
    conf = _confidence(result)
    lines = [head]
    for model in models[:MAX_MODELS_SHOWN]:
        parts = []
        n = None
        few = ""
        if rows is not None and not rows.empty:
            mine = rows[rows["model"] == model]
            for score in REPR_SCORES:
                hit = mine[mine["score"] == score]
                if hit.empty:
                    continue
                r = hit.iloc[0]
                n = int(r["n"])
                mean, ci = _num(r["mean"], 3), _ci(r["ci_low"], r["ci_high"], 3)
                few = few or (_few(r, _level(result)) if ci == "n/a" else "")
                parts.append(f"{score} {mean} [{ci}]")
        body = ", ".join(parts) if parts else "no set-level summary"
        count = f" (n={n}, {conf} CI)" if n is not None else ""
        if few and n is not None:
            count = f" (n={n}; {few}: no set CI)"
        lines.append(f"  {_cut(model, 50)}: {body}{count}")
    if len(models) > MAX_MODELS_SHOWN:
        lines.append("  " + _more(len(models) - MAX_MODELS_SHOWN, "models"))
    return "\n".join(lines)


def run_result_html(result: RunResult) -> str:
    """A short HTML summary: header line and the set-level summary table (mean, CI, n, p)."""
    name, version, n_pairs, top_k, run_id = _header(result)
    models = result.models
    conf = _confidence(result)
    level = _level(result)
    rows = _set_rows(result)
    body = []
    for model in models[:MAX_MODELS_SHOWN]:
        mine = rows[rows["model"] == model] if rows is not None and not rows.empty else []
        first = True
        for _, r in mine.iterrows() if len(mine) else []:
            cell = f"<td rowspan='{len(mine)}'>{_e(model)}</td>" if first else ""
            first = False
            few = _few(r, level)
            body.append(
                "<tr>"
                f"{cell}<td>{_e(r['score'])}</td>"
                f"<td style='text-align:right'>{_num(r['mean'], 3)}</td>"
                f"<td style='text-align:right'>"
                f"{_e(few and 'no CI: ' + few) or _ci(r['ci_low'], r['ci_high'], 3)}"
                "</td>"
                f"<td style='text-align:right'>{int(r['n'])}</td>"
                f"<td style='text-align:right'>{_num(r.get('p_value'), 3)}</td>"
                "</tr>"
            )
        if first:
            body.append(f"<tr><td>{_e(model)}</td><td colspan='5'>no set-level summary</td></tr>")
    if len(models) > MAX_MODELS_SHOWN:
        more = _more(len(models) - MAX_MODELS_SHOWN, "models (see result.summary)")
        body.append(f"<tr><td colspan='6'>{more}</td></tr>")
    head = (
        f"<p><strong>RunResult</strong> · probe set <code>{_e(name)}</code> v{_e(version)} · "
        f"{n_pairs} pair{'' if n_pairs == 1 else 's'} × {len(models)} model"
        f"{'' if len(models) == 1 else 's'} · top-{_e(top_k)}"
        f"{f' · run <code>{_e(run_id)}</code>' if run_id else ''}</p>"
    )
    table = (
        "<table><thead><tr><th>model</th><th>score (set level)</th><th>mean</th>"
        f"<th>{_e(conf)} CI</th><th>n</th><th>p</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    hint = (
        "<p style='font-size:smaller'>Tables: <code>.summary</code>, <code>.scores</code>, "
        "<code>.topk</code>, <code>.targets</code>; figures: <code>.scatter(pair_id)</code>, "
        "<code>.compare(pair_id)</code>; n = pairs; CI and p of a set come from its template "
        "means (none below 6 templates: see <code>.summary</code>'s template rows).</p>"
    )
    return f"<div class='biasprobe-run'>{head}{table}{hint}</div>"


# --------------------------------------------------------------------------------------------
# Figures


def _default_top_n(top_n: Any, shown: list[tuple[RunResult, str]]) -> Any:
    """``top_n`` as given; by default 200, or the smallest top-N a shown model stored."""
    if top_n is not None:
        return top_n
    stored = [n for run, model in shown if (n := run.stored_top_n(model)) is not None]
    return min([DEFAULT_TOP_N, *stored])


def _check_top_n(top_n: Any) -> int:
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise UsageError(f"top_n must be a positive integer, got {top_n!r}")
    return top_n


def _pair_ids(result: RunResult) -> list[str]:
    return [str(p) for p in dict.fromkeys(result.items["pair_id"])]


def _groups(result: RunResult, pair_id: str) -> tuple[str, str]:
    """Labels of side A and side B of a pair (UsageError naming the known pairs if absent)."""
    items = result.items
    rows = items[items["pair_id"] == pair_id]
    by_side = {str(s): str(g) for s, g in zip(rows["side"], rows["group"], strict=True)}
    if set(by_side) != {"A", "B"}:
        known = _pair_ids(result)
        listed = ", ".join(_cut(p, 40) for p in known[:10])
        if len(known) > 10:
            listed += f", … ({len(known)} pairs)"
        raise UsageError(f"pair {pair_id!r} is not in this run (pairs: {listed})")
    return by_side["A"], by_side["B"]


def _check_model(result: RunResult, model: str | None) -> str:
    models = result.models
    if not models:
        raise UsageError("this run holds no model")
    if model is None:
        return models[0]
    if model not in models:
        raise UsageError(
            f"model {model!r} is not in this run (models: {', '.join(_cut(m) for m in models)})"
        )
    return model


def target_token_ids(result: RunResult, model: str, pair_id: str) -> list[int]:
    """Vocabulary ids of a pair's one-piece target words under one model, in the order
    ``result.targets`` lists them, as the report labels them: a word is looked up in
    :meth:`RunResult.vocab <biasprobe.results.RunResult.vocab>` as written, else in lower case
    (an uncased vocabulary); a word spelled by several pieces is not a point of the figure."""
    t = result.targets
    if t is None or t.empty or "target" not in t:
        return []
    rows = t[(t["model"] == model) & (t["pair_id"] == pair_id)]
    if "n_pieces" in rows:
        rows = rows[rows["n_pieces"] == 1]
    words = list(dict.fromkeys(str(w) for w in rows["target"]))
    if not words:
        return []
    index: dict[str, int] = {}
    for i, tok in enumerate(result.vocab(model)):
        index.setdefault(tok, i)
    out: list[int] = []
    for word in words:
        i = index.get(word, index.get(word.lower()))
        if i is not None and i not in out:
            out.append(i)
    return out


def pair_points_from_table(table: Any, top_n: int, pinned: Sequence[int] = ()) -> Any:
    """The :class:`~biasprobe.report.figures.PairPoints` of token rows (columns ``token_id,
    logprob_a, logprob_b, rank_a, rank_b``, e.g. a :meth:`RunResult.token_table
    <biasprobe.results.RunResult.token_table>`), ids ascending, values float32: the points
    :func:`~biasprobe.report.figures.pair_points` computes from the two log-prob vectors, so
    figures match the report's. ``pinned``: the target ids, marked as kept whatever ``top_n``.
    """
    import numpy as np

    from biasprobe.report.figures import PairPoints

    t = table.sort_values("token_id", kind="stable")
    ids = t["token_id"].to_numpy(dtype=np.int64)
    pin = np.isin(ids, np.asarray(list(pinned), dtype=np.int64))
    return PairPoints(
        ids=ids,
        la=t["logprob_a"].to_numpy(dtype=np.float32),
        lb=t["logprob_b"].to_numpy(dtype=np.float32),
        ra=t["rank_a"].to_numpy(),
        rb=t["rank_b"].to_numpy(),
        depth=top_n,
        pinned=pin if pin.any() else None,
    )


def _check_view(view: Any) -> str:
    from biasprobe.report.figures import VIEWS

    if view not in VIEWS:
        raise UsageError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    return view


def _panel(
    result: RunResult, pair_id: str, model: str, top_n: int, label: str = ""
) -> tuple[Any, tuple[str, ...], str, list[int]]:
    """``(points, vocab, label, target ids)`` of one (pair, model), as
    :func:`~biasprobe.report.figures.comparison_figure` takes them: the rows of
    ``result.token_table(model, pair_id, top_n)`` plus the pair's target words (drawn and
    labelled whatever their rank, as in the report)."""
    import pandas as pd

    try:
        table = result.token_table(model, pair_id, top_n=top_n)
    except KeyError:
        raise UsageError(f"pair {pair_id!r} was not run on model {model!r}") from None
    targets = target_token_ids(result, model, pair_id)
    missing = sorted(set(targets) - set(table["token_id"].tolist()))
    if missing:
        stored = result.pair_tokens(model, pair_id)
        extra = stored[stored["token_id"].isin(missing)]
        table = pd.concat([table, extra], ignore_index=True)
        targets = [t for t in targets if t in set(table["token_id"].tolist())]
    pts = pair_points_from_table(table, top_n, targets)
    return pts, result.vocab(model), label, targets


def scatter(
    result: RunResult,
    pair_id: str,
    model: str | None = None,
    *,
    top_n: int | None = None,
    view: str = "scatter",
) -> Any:
    """One pair under one model as a plotly figure (the report's scatter, drawn by
    :func:`biasprobe.report.figures.pair_figure`).

    Args:
        result: the run.
        pair_id: the pair (see ``result.items``).
        model: the model (default: the run's first).
        top_n: draw the union of each side's top-``top_n`` tokens, and the pair's target
            words whatever their rank.
        view: ``"scatter"`` (log p(token | A) against log p(token | B), y = x dashed) or
            ``"differences"`` (log p(B) − log p(A) against the mean log-prob).

    Returns:
        A ``plotly.graph_objects.Figure``; its only trace holds one point per row of
        ``result.token_table(model, pair_id, top_n)`` (plus the target words outside it), by
        token id. The labels are annotations, placed as in the report (target words, each
        side's top fills, the most skewed tokens; none overlapping): their pixel boxes are in
        ``fig.layout.meta["biasprobe_labels"]``.

    Raises:
        UsageError: unknown pair, model or view, or a bad ``top_n``.
        NotStoredError: the run stored fewer tokens per sentence than ``top_n``.
    """
    from biasprobe.report.figures import pair_figure

    model = _check_model(result, model)
    top_n = _check_top_n(_default_top_n(top_n, [(result, model)]))
    view = _check_view(view)
    group_a, group_b = _groups(result, pair_id)
    pts, vocab, _, targets = _panel(result, pair_id, model, top_n)
    return pair_figure(
        pts,
        vocab,
        view=view,
        group_a=group_a,
        group_b=group_b,
        title=f"{pair_id} · {model} · top {top_n} per side",
        target_ids=targets,
    )


def _panels(
    runs: Sequence[RunResult], pair_id: str, models: Sequence[str] | None
) -> list[tuple[RunResult, str, str]]:
    """(run, model, label) of every model (of ``models`` if given) that ran the pair."""
    names = [m for run in runs for m in run.models]
    wanted = list(models) if models is not None else None
    if wanted is not None:
        unknown = [m for m in wanted if m not in names]
        if unknown:
            known = ", ".join(_cut(m) for m in dict.fromkeys(names))
            raise UsageError(f"model {unknown[0]!r} is not in the runs compared (models: {known})")
    panels = []
    for i, run in enumerate(runs):
        if pair_id not in set(run.items["pair_id"].astype(str)):
            continue
        for model in run.models:
            if (wanted is not None and model not in wanted) or not _ran(run, model, pair_id):
                continue
            label = model
            if names.count(model) > 1:
                label = f"{model} [{run.meta.get('run_id', f'run {i + 1}')}]"
            panels.append((run, model, label))
    return panels


def _ran(run: RunResult, model: str, pair_id: str) -> bool:
    """Whether ``model`` scored ``pair_id`` in ``run``."""
    try:
        run.sentence(model, pair_id, "A")
    except KeyError:
        return False
    return True


def _sentences(run: RunResult, pair_id: str) -> tuple[str, ...]:
    rows = run.items[run.items["pair_id"] == pair_id].sort_values("side")
    return tuple(str(s) for s in rows["template_sentence"])


def compare(
    result: RunResult,
    pair_id: str,
    *others: RunResult,
    models: Sequence[str] | None = None,
    top_n: int | None = None,
    view: str = "scatter",
) -> Any:
    """One pair under several models, side by side on one colour scale, drawn by
    :func:`biasprobe.report.figures.comparison_figure` (the report's comparison figure).

    Args:
        result: the run (its first model is the leftmost panel).
        pair_id: the pair.
        others: more runs (e.g. a debiased model run separately) whose models ran the same
            pair on the same sentences.
        models: the models to draw (default: every model of every run that ran the pair).
        top_n: draw the union of each side's top-``top_n`` tokens (per model), and the
            target words.
        view: ``"scatter"`` or ``"differences"``, as in :func:`scatter`.

    Returns:
        A ``plotly.graph_objects.Figure`` with one panel per model: panel i's points are
        trace ``i`` on axes ``x{i+1}``/``y{i+1}``, titled by an annotation (the model name);
        ``fig.layout.meta["biasprobe_labels"][i]`` holds the pixel boxes of its labels.

    Raises:
        UsageError: fewer than two models ran the pair, the runs hold different sentences
            under this pair id, or an unknown pair, model or view.
        NotStoredError: a run stored fewer tokens per sentence than ``top_n``.
    """
    from biasprobe.report.figures import comparison_figure

    view = _check_view(view)
    runs = [result, *others]
    group_a, group_b = _groups(result, pair_id)  # unknown pair: the message lists the pairs
    panels = _panels(runs, pair_id, models)
    top_n = _check_top_n(_default_top_n(top_n, [(run, model) for run, model, _ in panels]))
    if len(panels) < 2:
        ran = ", ".join(label for _, _, label in panels) or "no model"
        raise UsageError(
            f"compare needs pair {pair_id!r} under at least two models; it ran on {ran} "
            "(pass another run: result.compare(pair_id, other_result))"
        )
    first = _sentences(result, pair_id)
    for run, _, label in panels:
        if _sentences(run, pair_id) != first:
            raise UsageError(
                f"pair {pair_id!r} holds other sentences in the run of {label} "
                f"({' / '.join(_sentences(run, pair_id))} vs {' / '.join(first)}): "
                "no side-by-side comparison"
            )
    return comparison_figure(
        [_panel(run, pair_id, model, top_n, label) for run, model, label in panels],
        view=view,
        group_a=group_a,
        group_b=group_b,
        title=f"{pair_id} · top {top_n} per side",
    )


def _register() -> None:
    """The reprs, HTML and figures of the domain types, through :mod:`biasprobe.display`."""
    display.register_text("ProbeSet", probe_set_repr)
    display.register_html("ProbeSet", probe_set_html)
    display.register_text("RunResult", run_result_repr)
    display.register_html("RunResult", run_result_html)
    display.register_view("RunResult.scatter", scatter)
    display.register_view("RunResult.compare", compare)


_register()
