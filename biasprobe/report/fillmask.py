"""The interactive HTML report: one self-contained file, plotly.js inlined, opens offline.

Layout of the page, reader first: the title and one line of facts; the findings (per probe set
and model, the headline numbers of ``summary.csv`` with their CI and n, the most skewed pairs,
the fills most shifted toward each side); one section per pair, shown one at a time, with a
PAIR-style scatter and a differences view per model (labels placed without overlap), the
target words' log-probs, the pair's scores, a comparison table and the top-k lists (pairs
outside the chosen few: the figures and the top-k lists only, with a note on what is left out
and the command that brings it back); sortable tables (set and template summaries with confidence intervals, per-pair scores, and, with
several models, the change of every score from the base model and the Spearman correlation of
token rankings); a note on how to read the figures; the provenance of every run, collapsed.

What the page embeds, so that it stays small at thousands of pairs and N can change in the
browser:

* every distinct vocabulary once (JSON list of strings), not once per pair;
* per model and pair, the union of each side's top-200 tokens (top-``top_n_default`` if larger)
  with exact float32 log-probs and exact full-vocabulary ranks — the default view;
* for a few pairs only (those chosen with ``pairs=``/``--pairs``, else the first pair and the
  most skewed ones by Jaccard distance): the union of each side's top-1000 tokens, and, when the
  run stored full vectors, each sentence's full-vocabulary log-probs quantized to 16 bits (a
  uniform grid of about 0.0005 nats) for the "all" view.

The arrays are stored column by column (token ids as gaps from the previous id), each column
byte-shuffled, the whole deflated once (zlib) and base64-encoded; the page inflates it with the
browser's ``DecompressionStream``. Log-probs are read only through the
:class:`~biasprobe.results.RunResult` storage methods (``pair_tokens``, ``pair_logprobs``,
``vocab``, ``stored_top_n``), so a run that stored only each pair's top-N tokens is reported
too (without the views it did not store). All text from probe files and model metadata is
HTML-escaped here or set with ``textContent`` in the page script.
"""

from __future__ import annotations

import datetime as _dt
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from biasprobe import fsio
from biasprobe.backends.causal_fill import FAMILY_NAMES, FILLS
from biasprobe.comparisons import SPEARMAN_TOP
from biasprobe.errors import UsageError
from biasprobe.report.basecompare import base_comparisons
from biasprobe.report.figures import (
    CHAR_WIDTH,
    COLOR_A,
    COLOR_B,
    COLORSCALE,
    EXACT_DEPTH,
    LABEL_FONT,
    LABELS_PER_SIDE,
    LINE_HEIGHT,
    POINT_RADIUS,
    TOP_FILLS_LABELLED,
)
from biasprobe.report.findings import findings_html
from biasprobe.report.htmlkit import Markup, escape, html, join
from biasprobe.report.page import (
    ci_level,
    ci_td,
    isna,
    kv_html,
    note_of,
    num,
    p_td,
    package_version,
    page_shell,
    sortable,
    td,
    tdt,
)
from biasprobe.report.pairdata import (
    SCORE_LABELS,
    Columns,
    Entry,
    Pair,
    big_pairs,
    collect_entries,
    collect_pairs,
    is_signed,
    pair_pass,
    score_row,
    url_id,
)
from biasprobe.report.pairviews import CMP_HEADS, cmp_cells, left_out_notes, pairs_html
from biasprobe.results import RunResult
from biasprobe.scores import SIGNED_SCORES

#: The N choices offered in the page ("all" = the whole vocabulary).
TOP_N_OPTIONS: tuple[int, ...] = (30, 200, 1000)


_SCHEMA = 1


def write_report(
    runs: Sequence[RunResult],
    out_path: Path,
    *,
    title: str | None = None,
    top_n_default: int = 200,
    pairs: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
) -> Path:
    """Write the interactive HTML report of one or more runs as one self-contained file.

    The first model of the first run is the base: every other model is compared with it (skew
    score changes, Spearman correlation of the token rankings over the top 300).

    Args:
        runs: run results (e.g. from :func:`biasprobe.results.load_run`).
        out_path: the ``.html`` file to write. An existing file is replaced (atomically) only
            if it is a report biasprobe wrote (its generator marker); anything else, such as a
            run's ``results.json`` or a user's page, is refused.
        title: page title (default: "biasprobe report: <probe set names>").
        top_n_default: N shown first in the scatter plots (30, 200, 1000 are offered; another
            positive value is added to the choices).
        pairs: glob patterns (``fnmatch``, on the pair id or its label) of the pairs that get
            the large views (top 1000 and, when the run stored full vectors, "all") and their
            full detail tables. Default: the first pair and the :data:`SKEWED_PAIRS` most
            skewed pairs by Jaccard distance. Every pair gets the default view.
        sources: how the runs are named in the page's "how to get it" commands (the CLI passes
            the run folders); default ``RUN``.

    Returns:
        ``out_path``.

    Raises:
        UsageError: no runs, no models, a bad ``top_n_default``, or a pattern of ``pairs``
            that matches no pair.
        OutputError: the file cannot be written.
        NotOwnedError: the file exists and biasprobe did not write it (exit code 2).
    """
    if not runs:
        raise UsageError("a report needs at least one run")
    if isinstance(top_n_default, bool) or not isinstance(top_n_default, int) or top_n_default < 1:
        raise UsageError(f"top_n_default must be a positive integer, got {top_n_default!r}")
    out = fsio.check_output_file(out_path, what="report")
    page = render_report(
        runs, title=title, top_n_default=top_n_default, pairs=pairs, sources=sources
    )
    return fsio.write_report(out, page, what="report")


#: Depth of the default view embedded for every pair (or ``top_n_default`` when larger).
DEFAULT_DEPTH = 200


def render_report(
    runs: Sequence[RunResult],
    *,
    title: str | None = None,
    top_n_default: int = 200,
    pairs: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
) -> str:
    """The report page as a string (see :func:`write_report`)."""
    entries, vocabs = collect_entries(runs)
    if not entries:
        raise UsageError("the runs hold no models to report on")
    all_pairs = collect_pairs(runs, entries)
    base_depth = max(DEFAULT_DEPTH, top_n_default)
    big_depth = max(EXACT_DEPTH, top_n_default)
    big = big_pairs(runs, entries, all_pairs, pairs)
    vmax = max(len(v) for v in vocabs)
    cols = Columns("u2" if vmax <= 65535 else "u4")
    shifts: dict[int, dict[str, dict[int, list[float]]]] = {}
    for pair in all_pairs:
        pair_pass(entries, pair, pair.index in big, base_depth, big_depth, cols, shifts)
    set_names = list(
        dict.fromkeys(str(r.meta.get("probe_set", {}).get("name", "probe set")) for r in runs)
    )
    page_title = title or f"biasprobe report: {', '.join(set_names)}"
    options: list[int | str] = sorted(set(TOP_N_OPTIONS) | {top_n_default})
    options.append("all")
    command = "biasprobe report " + " ".join(shlex.quote(str(s)) for s in (sources or ["RUN"]))
    left_out = left_out_notes(entries, all_pairs, big, pairs, base_depth, big_depth, command)
    payload = {
        "schema": _SCHEMA,
        "topn": {
            "options": options,
            "default": top_n_default,
            "exact": base_depth,
            "big": big_depth,
        },
        "labels_per_side": LABELS_PER_SIDE,
        "top_fills_labelled": TOP_FILLS_LABELLED,
        "label_font": {
            **LABEL_FONT,
            "charWidth": CHAR_WIDTH,
            "lineHeight": LINE_HEIGHT,
            "radius": POINT_RADIUS,
        },
        "colorscale": COLORSCALE,
        "command": command,
        "vocabs": [list(v) for v in vocabs],
        "blob": cols.payload(),
        "entries": [
            {"label": e.label, "vocab": e.vocab_index, "vectors": e.vectors} for e in entries
        ],
        "pairs": [
            {
                "id": p.pair_id,
                "label": p.label,
                "groups": [p.items[0]["group"], p.items[1]["group"]],
                "big": p.index in big,
                "cells": [p.cells.get(e.index) for e in entries],
            }
            for p in all_pairs
        ],
    }
    deltas, comparisons = base_comparisons(entries, all_pairs)
    body = "\n".join(
        [
            _header_html(runs, entries, page_title),
            findings_html(entries, all_pairs, deltas, shifts),
            pairs_html(entries, all_pairs, comparisons, options, top_n_default, big, left_out),
            _summary_html(entries, all_pairs, comparisons, deltas),
            _notes_html(big_depth, left_out),
            _provenance_html(runs),
        ]
    )
    return page_shell(page_title, body, payload)


def _header_html(runs: Sequence[RunResult], entries: list[Entry], title: str) -> str:
    """The title and one line of facts; the full provenance is at the end of the page."""
    set_line = "; ".join(
        f"{(r.meta.get('probe_set') or {}).get('name', '?')} "
        f"v{(r.meta.get('probe_set') or {}).get('version', '?')}"
        for r in runs
    )
    created = ", ".join(str(r.meta.get("created", "?")) for r in runs)
    model_list = ", ".join(e.label for e in entries)
    base = f" (base: {entries[0].label})" if len(entries) > 1 else ""
    return html(
        """<header>
<h1>{title}</h1>
<p class="facts">Probe set <b>{sets}</b> · models <b>{models}</b>{base} ·
run {created} · <a href="#provenance">provenance</a></p>{fills}
</header>""",
        title=title,
        sets=set_line,
        models=model_list,
        base=base,
        created=created,
        fills=_fills_html(entries),
    )


def _model_card(entry: Entry) -> Mapping[str, Any]:
    """The run's provenance block of an entry's model (empty if the run has none)."""
    cards = entry.run.meta.get("models", []) or []
    return next((m for m in cards if isinstance(m, dict) and m.get("name") == entry.model), {})


def _family_fill(card: Mapping[str, Any]) -> tuple[str, str]:
    """A model's family (short name) and what a fill is for it; run folders written before
    causal LMs hold masked LMs only."""
    family = str(card.get("family") or "masked-lm")
    return FAMILY_NAMES.get(family, family), str(card.get("fill") or FILLS.get(family, ""))


def _fills_html(entries: list[Entry]) -> Markup:
    """What a fill is for each model, as a line under the facts, in a report with a causal LM
    (a report of masked LMs only keeps its first screen: their fill is the distribution at
    [MASK], as it always was; the provenance table names every model's family)."""
    named = [(e.label, *_family_fill(_model_card(e))) for e in entries]
    if all(family == FAMILY_NAMES["masked-lm"] for _, family, _ in named):
        return Markup("")
    if len({(family, fill) for _, family, fill in named}) == 1:
        _, family, fill = named[0]
        who = "The model is" if len(named) == 1 else "Every model is"
        return html('\n<p class="facts fills">{} a <b>{}</b>: a fill is {}.</p>', who, family, fill)
    parts = join(
        (html("<b>{}</b> ({}): {}", label, family, fill) for label, family, fill in named),
        " · ",
    )
    return html('\n<p class="facts fills">What a fill is: {}.</p>', parts)


def _provenance_html(runs: Sequence[RunResult]) -> str:
    """Everything in each run's results.json, collapsed, at the end of the page."""
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    run_blocks = []
    for r_i, run in enumerate(runs):
        meta = run.meta
        ps = meta.get("probe_set", {}) or {}
        versions = meta.get("versions", {}) or {}
        models_rows = join(
            html(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                m.get("name", ""),
                _family_fill(m)[0],
                m.get("slug", ""),
                m.get("mask_token", ""),
                m.get("vocab_size", ""),
                kv_html(m.get("info", {})),
            )
            for m in meta.get("models", [])
        )
        run_blocks.append(
            html(
                """<details class="run">
<summary>Run <code>{run_id}</code> · probe set
<b>{name}</b> · created {created}</summary>
<div class="prov">
<div><h4>Probe set</h4>{ps}</div>
<div><h4>Settings</h4>{settings}</div>
<div><h4>Versions</h4>{versions}</div>
</div>
<h4>Models{base}</h4>
<table class="models"><thead><tr><th>name</th><th>family</th><th>slug</th><th>mask token</th>
<th>vocab size</th><th>info</th></tr></thead><tbody>{models_rows}</tbody></table>
</details>""",
                run_id=str(meta.get("run_id", "?")),
                name=str(ps.get("name", "?")),
                created=str(meta.get("created", "?")),
                ps=kv_html(ps),
                settings=kv_html(meta.get("settings", {})),
                versions=kv_html(versions),
                base=" (the first model is the base)" if r_i == 0 else "",
                models_rows=models_rows,
            )
        )
    run_versions = ", ".join(
        str((r.meta.get("versions") or {}).get("biasprobe", "?")) for r in runs
    )
    return f"""<section id="provenance">
<h2>Provenance</h2>
<p class="muted">Runs made with biasprobe {escape(run_versions)}; report written with
{escape(package_version())} on {escape(now)}. Open a run for its probe set, settings, versions and models.</p>
{"".join(run_blocks)}
</section>"""


def _notes_html(depth: int, left_out: dict[str, Any]) -> str:
    return f"""<section id="reading">
<h2>How to read this report</h2>
<ul>
<li>Every figure plots <b>log-probabilities</b>: the log-softmax over the whole vocabulary at
the mask position, <code>log p(token | sentence)</code>, not raw logits. Values are in nats.</li>
<li>Scatter: x = log p(token | side A), y = log p(token | side B), for the union of each side's
top-N tokens. Points above the dashed line y = x are more likely after side B
(<span style="color:{COLOR_B}">blue</span>), below it more likely after side A
(<span style="color:{COLOR_A}">red</span>); the colour is log p(B) − log p(A). Labelled, in
this order and only where a label fits without covering another: the probe's target words,
each side's top-{TOP_FILLS_LABELLED} fills, then up to {LABELS_PER_SIDE} of the most skewed
tokens on each side of the diagonal. Hover a point for the token, both log-probs and both
ranks (1 = most probable).</li>
<li>Differences view: the same tokens, x = log p(B) − log p(A), y = their mean log-prob.</li>
<li>N = 30, 200 and 1000 use exact float32 values and exact ranks. In the <b>all</b> view,
tokens outside either side's top {depth} are drawn from values stored with 16-bit precision
(a uniform grid of about 0.0005 nats) to keep the file small; their ranks are marked ≈.</li>
<li id="left-out"><b>What this page leaves out.</b> {left_out["long"]}</li>
<li>Scores: Jaccard and RBO distances compare the two top-k lists (0 = same); JS divergence
compares the full distributions (bits, 0 = identical); target gap = log p(targets) on the
minoritized side minus the normative side. Intervals: a bootstrap over the pairs of a
template (template level); at set level the interval of the template means that inverts their
sign-flip test (so it agrees with p), none with fewer than 6 templates ("n/a": the template rows
are given instead); n = pairs.</li>
<li><b>Which direction is less biased.</b> Jaccard distance, RBO distance, JS divergence:
<b>lower = less skew</b> (0 = both sides get the same completions); a negative Δ vs the base =
less skew than the base. Target gap (and per word): <b>closer to zero = less skew</b>; its sign
says which group the targets favour (&gt; 0 minoritized, &lt; 0 normative), so compare |gap|,
not Δ. Spearman ρ between two models is not a bias score: 1 = the same token ranking,
0 = unrelated.</li>
</ul>
</section>"""


def _summary_html(
    entries: list[Entry],
    pairs: list[Pair],
    comparisons: dict[tuple[int, int], dict],
    deltas: dict[tuple[int, str, str, str], dict],
) -> str:
    base = entries[0]
    ci = ci_level(base.run)

    def summary_rows(level: str) -> list[str]:
        rows = []
        for entry in entries:
            s = entry.run.summary
            s = s[(s["model"] == entry.model) & (s["level"] == level)]
            for r in s.itertuples():
                d = deltas.get((entry.index, level, str(r.key), str(r.score)), {})
                note, d_note = note_of(r), note_of(d)
                if note and isna(num(r.ci_low)):
                    notes.setdefault(note, None)
                tested = is_signed(str(r.score))
                rows.append(
                    "<tr>"
                    + tdt(entry.label)
                    + tdt(r.key)
                    + tdt(SCORE_LABELS.get(str(r.score), str(r.score)))
                    + td(r.mean)
                    + ci_td(r.ci_low, r.ci_high, note=note)
                    + td(r.n, 0)
                    + td(d.get("delta"), signed=True)
                    + ci_td(d.get("delta_low"), d.get("delta_high"), signed=True, note=d_note)
                    + td(d.get("n"), 0)
                    + p_td(getattr(r, "p_value", None), *((note, r.n) if tested else ()))
                    + p_td(getattr(r, "p_holm", None), *((note, r.n) if tested else ()))
                    + p_td(d.get("p_value"), d_note, d.get("n") if d else None)
                    + "</tr>"
                )
        return rows

    notes: dict[str, None] = {}

    heads = ["mean", ci, "n", "Δ vs base", f"Δ {ci} (paired)", "n paired"]
    heads += ["p", "p (Holm)", "Δ p"]
    set_rows = summary_rows("set")
    few = _few_templates_html(notes)
    set_table = sortable(["model", "key", "score", *heads], set_rows, "summary-set")
    tmpl_table = sortable(
        ["model", "template", "score", *heads], summary_rows("template"), "summary-template"
    )

    out = [
        '<section id="summary"><h2>Skew scores</h2>',
        f"<h3>Probe set ({escape(ci)})</h3>",
        "<p class='muted'>Δ vs base = this model's mean − the base model's mean over the pairs "
        "both ran (n paired), with the interval of the template means of the paired "
        "differences (as for the set means; n/a with fewer than 6 templates). Distances: a "
        "negative Δ = less skew than "
        "the base. Signed target gaps: see the table below (closer to zero = less skew).</p>"
        "<p class='muted'>p = two-sided sign-flip permutation test (seeded; exact up to 16 "
        "values, else 10,000 flips) of mean 0, for the signed scores (target gap, Kurita "
        "bias): over the pairs of a template, over the template means for the probe set. "
        "p (Holm) adjusts the template p-values of one model and score for testing every "
        "template. Distances (Jaccard, RBO, JS) are never below 0, so “mean 0” is no "
        "null to test: no p. Δ p tests “no change from the base” the same way, on the "
        "paired differences.</p>",
        set_table,
        few,
        _gap_html(entries, deltas, ci),
        html(
            '<details id="per-template"{}><summary>Per template ({})</summary>{}</details>',
            Markup(" open") if few else "",
            ci,
            Markup(tmpl_table),
        ),
        "<h3>Per pair</h3><p class='muted'>Click a column heading to sort; click a pair to "
        "open its figures (above).</p>",
        _pair_scores_table(entries, pairs),
        "</section>",
    ]
    if len(entries) > 1:
        out.append(_comparison_html(entries, pairs, comparisons))
    return "\n".join(out)


def _few_templates_html(notes: Mapping[str, Any]) -> Markup:
    """Why some set rows have no interval or p ("n/a"), pointing to the template rows."""
    if not notes:
        return Markup("")
    return html(
        "<p class='note'>Set rows marked n/a have no set-level interval or p: {}. "
        "<a href='#per-template'>The template rows</a> (opened below) give each template's "
        "mean with its own interval.</p>",
        " · ".join(notes),
    )


def _pair_scores_table(entries: list[Entry], pairs: list[Pair]) -> str:
    pair_rows = []
    for pair in pairs:
        for entry in entries:
            if entry.index not in pair.cells:
                continue
            sc = score_row(entry.run, entry.model, pair.pair_id) or {}
            top_a = str(sc.get("top_a") or "").split(" ")[0]
            top_b = str(sc.get("top_b") or "").split(" ")[0]
            pair_rows.append(
                "<tr>"
                + f'<td><a href="#pair={escape(url_id(pair))}">{escape(pair.label)}</a></td>'
                + tdt(entry.label)
                + tdt(pair.items[0]["group"])
                + tdt(pair.items[1]["group"])
                + tdt(top_a, "tok")
                + tdt(top_b, "tok")
                + "".join(td(sc.get(s)) for s in SCORE_LABELS)
                + "</tr>"
            )
    return sortable(
        ["pair", "model", "A", "B", "top-1 A", "top-1 B", *SCORE_LABELS.values()],
        pair_rows,
        "pair-scores",
        deferred=True,
    )


def _comparison_html(
    entries: list[Entry], pairs: list[Pair], comparisons: dict[tuple[int, int], dict]
) -> str:
    base = entries[0]
    cmp_rows = []
    for pair in pairs:
        for entry in entries[1:]:
            c = comparisons.get((pair.index, entry.index))
            if c is None:
                continue
            cmp_rows.append(
                "<tr>"
                + f'<td><a href="#pair={escape(url_id(pair))}">{escape(pair.label)}</a></td>'
                + tdt(entry.label)
                + cmp_cells(c)
                + "</tr>"
            )
    table = (
        sortable(
            ["pair", "model", *CMP_HEADS],
            cmp_rows,
            "comparison",
            deferred=True,
        )
        if cmp_rows
        else "<p class='muted'>No pair was run on both the base model and another model.</p>"
    )
    return "\n".join(
        [
            '<section id="comparison"><h2>Model comparison</h2>',
            f"<p>Per pair: change of each skew score from the base model <b>{escape(base.label)}</b> "
            "(other − base; for the distances a negative Δ means less skew than the base), and "
            "the Spearman rank correlation ρ of the two models' log-probs for side A and side "
            f"B over a token set fixed by the base model alone: <b>the base model's top "
            f"{SPEARMAN_TOP} tokens</b>, and separately <b>the whole vocabulary</b> (— when the "
            "vocabularies differ). ρ is not a bias score: 1 = the same ranking, 0 = unrelated. "
            "(Ranking over the union of both models' top tokens, as PAIR's notebook does, "
            "builds in a negative correlation: two independent random models would show "
            "ρ ≈ −0.7.)</p>",
            table,
            "</section>",
        ]
    )


def _gap_words(d: dict[str, float], score: str = "target_gap_mean") -> str:
    if isna(d.get("abs_delta")):
        return "—"
    flipped = d.get("sign_flipped") == 1.0
    if d["abs_delta"] < 0:
        words = "closer to zero: less skew"
    elif d["abs_delta"] > 0:
        words = "further from zero: more skew"
    else:
        words = "unchanged"
    if flipped:
        favoured = "minoritized" if d["other"] > 0 else "normative"
        if "_neg_" in score:  # more negative completions for a group do not favour it
            favoured = "normative" if d["other"] > 0 else "minoritized"
        words += f"; the sign flipped (now favours the {favoured} group)"
    return words


def _gap_html(entries: list[Entry], deltas: dict, ci: str) -> str:
    """Signed target gaps against the base: |gap| before and after, and whether it flipped
    (probe set first, then each template)."""
    rows = []
    ordered = sorted(deltas.items(), key=lambda kv: (kv[0][0], kv[0][1] != "set"))
    for (index, level, key, score), d in ordered:
        if score not in SIGNED_SCORES and not score.startswith("valence_"):
            continue
        rows.append(
            "<tr>"
            + tdt(entries[index].label)
            + tdt(level)
            + tdt(key)
            + td(d["base"], signed=True)
            + td(d["other"], signed=True)
            + td(abs(d["base"]))
            + td(abs(d["other"]))
            + td(d["abs_delta"], signed=True)
            + ci_td(d["abs_delta_low"], d["abs_delta_high"], signed=True, note=note_of(d))
            + td(d["n"], 0)
            + tdt(_gap_words(d, score))
            + tdt(SCORE_LABELS.get(score, score))
            + p_td(d.get("p_value"), note_of(d), d.get("n"))
            + "</tr>"
        )
    if not rows:
        return ""
    heads = ["model", "level", "key", "gap base", "gap model", "|gap| base", "|gap| model"]
    return (
        "<h4>Signed scores against the base (closer to zero = less skew)</h4>"
        "<p class='muted'>The target gap per word, the Kurita bias and the valence scores are "
        "signed (&gt; 0: in favour of the minoritized group's targets / more negative "
        "completions for it), so their Δ alone can mean the skew shrank, grew or flipped "
        "sign. Δ|gap| = |model| − |base| over the same pairs, with a paired bootstrap "
        "interval: negative = closer to zero = less skew. Δ p: sign-flip test of “no "
        "change” on the paired differences.</p>"
        + sortable([*heads, "Δ|gap|", ci, "n", "reads as", "score", "Δ p"], rows, "gap-comparison")
    )
