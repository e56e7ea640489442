"""The per-pair sections of the fill-mask report: figures, target words, scores, the
comparison with the base model, top-k lists, sentences, and what the page leaves out."""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from typing import Any

from biasprobe.comparisons import SPEARMAN_TOP
from biasprobe.report.htmlkit import Markup, escape, html, join
from biasprobe.report.page import fmt, isna, na_td, sortable, td, tdt
from biasprobe.report.pairdata import (
    SCORE_LABELS,
    SKEWED_PAIRS,
    Entry,
    Pair,
    is_arbitrary,
    score_row,
)


def _targets_table(entries: list[Entry], present: list[Entry], pair: Pair) -> str:
    """The target words' log p on both sides, per model (from targets.csv)."""
    ga, gb = (str(pair.items[k]["group"]) for k in (0, 1))
    rows = []
    for e in present:
        t = e.run.targets
        if t is None or t.empty:
            continue
        sub = t[(t["model"] == e.model) & (t["pair_id"] == pair.pair_id)]
        for word in dict.fromkeys(str(w) for w in sub["target"]):
            a = sub[(sub["target"] == word) & (sub["side"] == "A")]
            b = sub[(sub["target"] == word) & (sub["side"] == "B")]
            la = float(a["logprob"].iloc[0]) if not a.empty else math.nan
            lb = float(b["logprob"].iloc[0]) if not b.empty else math.nan
            pieces = sub[sub["target"] == word]["n_pieces"].iloc[0]
            rows.append(
                "<tr>"
                + (tdt(e.label) if len(entries) > 1 else "")
                + tdt(word, "tok")
                + td(pieces, 0)
                + td(la)
                + td(lb)
                + td(lb - la, signed=True)
                + "</tr>"
            )
    if not rows:
        return ""
    heads = ["model"] if len(entries) > 1 else []
    heads += ["target word", "pieces", f"log p (A: {ga})", f"log p (B: {gb})", "B − A"]
    return "<h4>Target words</h4>" + sortable(heads, rows, "targets")


#: Column headings of the per-pair comparison tables (after "pair"/"model").
CMP_HEADS = [
    *(f"Δ {v}" for v in SCORE_LABELS.values()),
    f"ρ A (base top {SPEARMAN_TOP})",
    f"ρ B (base top {SPEARMAN_TOP})",
    "ρ A (all tokens)",
    "ρ B (all tokens)",
]


def cmp_cells(c: dict[str, Any]) -> str:
    return "".join(td(c["delta"][s], signed=True) for s in SCORE_LABELS) + "".join(
        td(r) if r is None or not isinstance(r, str) else na_td(r) for r in c["rho"]
    )


def _topk_table(entry: Entry, pair: Pair) -> str:
    t = entry.run.topk
    rows = t[(t["model"] == entry.model) & (t["pair_id"] == pair.pair_id)]
    a = rows[rows["side"] == "A"].sort_values("rank")
    b = rows[rows["side"] == "B"].sort_values("rank")
    ta, tb = list(a["token"].astype(str)), list(b["token"].astype(str))
    la, lb = list(a["logprob"]), list(b["logprob"])
    sa, sb = set(ta), set(tb)
    body = []
    for i in range(max(len(ta), len(tb))):
        cells = [f"<td class='num'>{i + 1}</td>"]
        for toks, lps, other in ((ta, la, sb), (tb, lb, sa)):
            if i < len(toks):
                cls = "tok" if toks[i] in other else "tok excl"
                cells.append(tdt(toks[i], cls) + f"<td class='num'>{fmt(lps[i])}</td>")
            else:
                cells.append("<td></td><td></td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return html(
        "<figure class='topk'><figcaption>{}</figcaption><table><thead><tr><th>rank</th>"
        "<th>A: {}</th><th>log p</th><th>B: {}</th><th>log p</th></tr></thead>"
        "<tbody>{}</tbody></table></figure>",
        entry.label,
        str(pair.items[0]["group"]),
        str(pair.items[1]["group"]),
        Markup("".join(body)),
    )


def pairs_html(
    entries: list[Entry],
    pairs: list[Pair],
    comparisons: dict[tuple[int, int], dict],
    options: list[int | str],
    default: int,
    big: set[int],
    left_out: dict[str, Any],
) -> str:
    buttons = "".join(
        f'<button type="button" class="topn{" on" if o == default else ""}" '
        f'data-n="{escape(str(o))}" aria-pressed="{"true" if o == default else "false"}">'
        f"{escape(str(o))}</button>"
        for o in options
    )
    select = "".join(f'<option value="{p.index}">{escape(p.label)}</option>' for p in pairs)
    sections = [
        _pair_section(entries, pair, comparisons)
        if pair.index in big
        else _light_pair_section(entries, pair)
        for pair in pairs
    ]
    return f"""<section id="pairs">
<h2>Pairs</h2>
<div class="controls" role="toolbar">
<label>Pair <select id="pair-select">{select}</select></label>
<button type="button" id="prev-pair" aria-label="previous pair">◀</button>
<button type="button" id="next-pair" aria-label="next pair">▶</button>
<span class="topn-group" role="group" aria-label="top N">Top N per side: {buttons}</span>
<span id="status" class="muted" aria-live="polite"></span>
</div>
<p id="views-note" class="muted views-note">{left_out["short"]}</p>
{"".join(sections)}
</section>"""


def _pair_comparison(
    entries: list[Entry], present: list[Entry], pair: Pair, comparisons: dict
) -> str:
    rows = []
    for e in present:
        c = comparisons.get((pair.index, e.index))
        if c is not None:
            rows.append("<tr>" + tdt(e.label) + cmp_cells(c) + "</tr>")
    if rows:
        return f"<h4>Compared with the base model ({escape(entries[0].label)})</h4>" + sortable(
            ["model", *CMP_HEADS], rows, "pair-comparison"
        )
    if 0 not in pair.cells:
        return "<p class='muted'>The base model has no result for this pair.</p>"
    return ""


_ARBITRARY_NOTE = (
    "<p class='muted'>* The orientation of this pair is arbitrary: its two sides are not a "
    "minoritized and a normative social group (e.g. two names or two years), and the probe "
    "file declares which side counts as which only to fix the sign of the signed scores.</p>"
)


def _pair_section(
    entries: list[Entry], pair: Pair, comparisons: dict[tuple[int, int], dict]
) -> str:
    present = [e for e in entries if e.index in pair.cells]
    arbitrary = is_arbitrary(present, pair)
    mark = "*" if arbitrary else ""
    sent_rows = "".join(
        "<tr>"
        + tdt(it["side"])
        + tdt(it["group"])
        + tdt(f"{it['role']}{mark}")
        + tdt(it["template_sentence"], "sent")
        + tdt("" if isna(it.get("fills")) else it.get("fills"))
        + "</tr>"
        for it in pair.items
    )
    saw = "".join(
        f"<li>{escape(e.label)}: <q>{escape(pair.sentences[e.index][0])}</q> / "
        f"<q>{escape(pair.sentences[e.index][1])}</q></li>"
        for e in present
    )
    cols = max(1, len(present))
    cmp_html = ""
    if len(entries) > 1:
        cmp_html = _pair_comparison(entries, present, pair, comparisons)
    score_rows = "".join(
        "<tr>"
        + tdt(e.label)
        + "".join(td((score_row(e.run, e.model, pair.pair_id) or {}).get(s)) for s in SCORE_LABELS)
        + "</tr>"
        for e in present
    )
    scores_html = sortable(["model", *SCORE_LABELS.values()], [score_rows], "pair-own")
    topk = "".join(_topk_table(e, pair) for e in present)
    src = pair.items[0].get("source", "")
    figs = _figures_html(present, pair)
    return f"""<section class="pair" id="pair-{pair.index}" data-pair="{pair.index}" hidden>
{_pair_heading(pair)}
<div class="figs">{figs}</div>
{_targets_table(entries, present, pair)}
<h4>Scores of this pair</h4>
{scores_html}
{cmp_html}
<h4>Top-k lists</h4><p class="muted">Tokens in bold are in one side's list only.</p>
<div class="figs topks" style="--cols:{cols}">{topk}</div>
<h4>Sentences</h4>
<table class="sentences"><thead><tr><th>side</th><th>group</th><th>role</th>
<th>template sentence</th><th>fills</th></tr></thead><tbody>{sent_rows}</tbody></table>
{_ARBITRARY_NOTE if arbitrary else ""}
<p class="muted">Template {escape(str(pair.items[0]["template_id"]))} ·
{escape("" if isna(src) else str(src))}</p>
<details><summary>Exact text each model saw</summary><ul>{saw}</ul></details>
</section>"""


def _pair_heading(pair: Pair) -> Markup:
    """The heading of a pair's section: its label, both template sentences and groups."""
    ia, ib = pair.items[0], pair.items[1]
    return html(
        "<h3>{} <small>A: <q>{}</q>\n({}) · B: <q>{}</q>\n({})</small></h3>",
        pair.label,
        str(ia["template_sentence"]),
        str(ia["group"]),
        str(ib["template_sentence"]),
        str(ib["group"]),
    )


def _figures_html(present: list[Entry], pair: Pair) -> Markup:
    """The plot boxes of a pair: scatters first (one per model), then the differences views."""
    return join(
        html(
            '<figure><figcaption>{} · {}</figcaption><div class="plot" data-kind="{}" '
            'data-pair="{}" data-entry="{}"></div></figure>',
            e.label,
            kind_text,
            kind,
            pair.index,
            e.index,
        )
        for kind, kind_text in (
            ("scatter", "scatter"),
            ("diff", "differences"),
        )
        for e in present
    )


def _light_pair_section(entries: list[Entry], pair: Pair) -> str:
    """A pair outside the chosen few: its figures (default view) and top-k lists, both drawn
    from the embedded tokens by the page script; its scores are in the per-pair tables."""
    present = [e for e in entries if e.index in pair.cells]
    cols = max(1, len(present))
    return f"""<section class="pair light" id="pair-{pair.index}" data-pair="{pair.index}" hidden>
{_pair_heading(pair)}
<div class="figs">{_figures_html(present, pair)}</div>
<h4>Top-k lists</h4><p class="muted">Tokens in bold are in one side's list only. This pair's
scores: <a href="#summary">per-pair table</a>. Target words, the exact text each model saw and
the larger views: see the note above the figures.</p>
<div class="figs topks" data-topk="{pair.index}" style="--cols:{cols}"></div>
{_ARBITRARY_NOTE.replace("* ", "", 1) if is_arbitrary(present, pair) else ""}
</section>"""


def left_out_notes(
    entries: list[Entry],
    pairs: list[Pair],
    big: set[int],
    patterns: Sequence[str] | None,
    base_depth: int,
    big_depth: int,
    command: str,
) -> dict[str, Markup]:
    """What the page leaves out, in words (HTML), with the command that brings it back."""
    n_big = len(big)
    chosen = (
        "the pairs chosen with --pairs"
        if patterns
        else f"the first pair and the {SKEWED_PAIRS} most skewed (Jaccard distance)"
    )
    example = shlex.quote(pairs[-1].pair_id) if pairs else "'ID'"
    partial = [e for e in entries if e.stored is not None]
    store = Markup("")
    if partial:
        store = html(
            " The runs of {} stored only each pair's top {} tokens: the &quot;all&quot; view "
            "and the Spearman ρ over all tokens need a run with <code>--store full</code>.",
            ", ".join(e.label for e in partial),
            ", ".join(sorted({str(e.stored) for e in partial})),
        )
    if n_big >= len(pairs):
        short = html(
            "Every pair has all the views embedded (top {} and, where stored, all).", big_depth
        )
        long = join([short, store])
    else:
        fields = dict(
            base=base_depth,
            big=big_depth,
            n_big=n_big,
            n=len(pairs),
            chosen=chosen,
            command=command,
            example=example,
        )
        short = html(
            "Every pair has the top-{base} view embedded; the top-{big} and &quot;all&quot; "
            "views, the target words and the exact texts only {n_big} of {n} pairs ({chosen}). "
            "To embed them for another pair: <code>{command} --pairs {example}</code> (a glob; "
            "repeat it for several).",
            **fields,
        )
        long = html(
            "To keep the page small, every pair embeds the union of each side's top {base} "
            "tokens (exact float32 log-probs and ranks); {n_big} of {n} pairs ({chosen}) also "
            "embed the union of each side's top {big}, the full vocabulary (16-bit) for the "
            "&quot;all&quot; view when the run stored it, the target words' table and the exact "
            "text each model saw. For any other pair, these are in the run folder "
            "(<code>targets.csv</code>, <code>topk.csv</code>, the log-probs); to draw them "
            "here, write the report again with <code>{command} --pairs {example}</code> (a glob "
            "on the pair id, e.g. <code>--pairs 'names-*'</code>; repeat it for several; it "
            "replaces the default choice).{store}",
            store=store,
            **fields,
        )
    return {"short": join([short, store]) if n_big < len(pairs) else short, "long": long}
