"""The findings block of the fill-mask report: per probe set and model, the headline numbers
of ``summary.csv`` as sentences, the most skewed pairs and the fills shifted toward each side."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from biasprobe.report.htmlkit import Markup, escape, html
from biasprobe.report.page import (
    ci_level,
    ci_text,
    confidence_of,
    fmt,
    isna,
    note_of,
    num,
    p_text,
    plural,
    short_note,
    sig_digits,
    too_few_templates,
)
from biasprobe.report.pairdata import Entry, Pair, is_arbitrary, is_signed, rank_shifts, url_id

#: Pairs listed as the most skewed in the findings.
FINDING_PAIRS = 3


#: Template rows listed in the findings for a set with too few templates for an interval.
FINDING_TEMPLATES = 8


def _side_names(entry: Entry, pairs: list[Pair]) -> dict[str, str]:
    """role → the group's name when every pair of the entry names it alike, else a phrase."""
    names: dict[str, set[str]] = {"minoritized": set(), "normative": set()}
    for pair in pairs:
        if entry.index not in pair.cells:
            continue
        for it in pair.items:
            if str(it.get("role")) in names:
                names[str(it["role"])].add(str(it["group"]))
    return {
        role: next(iter(found)) if len(found) == 1 else f"the {role} side"
        for role, found in names.items()
    }


def _set_row(entry: Entry, score: str) -> dict[str, Any] | None:
    s = entry.run.summary
    rows = s[(s["model"] == entry.model) & (s["level"] == "set") & (s["score"] == score)]
    return None if rows.empty else rows.iloc[0].to_dict()


def _too_few(
    entry: Entry, row: Mapping[str, Any], digits: int, skip: Collection[str] = ()
) -> Markup:
    """For a set row without an interval because it has too few templates: why, and each
    template's mean with its own interval (in brackets where the template has 2+ pairs) and p
    (signed scores) from the template rows of summary.csv; else ""."""
    need = too_few_templates(row, confidence_of(entry.run))
    if not need:
        return Markup("")
    s = entry.run.summary
    t = s[
        (s["model"] == entry.model)
        & (s["level"] == "template")
        & (s["score"] == row["score"])
        & ~s["key"].astype(str).isin(set(skip))
    ]
    signed = is_signed(str(row["score"]))
    parts = []
    for r in t.head(FINDING_TEMPLATES).to_dict("records"):
        extra = []
        if not isna(num(r["ci_low"])):
            a, b = fmt(r["ci_low"], digits, signed), fmt(r["ci_high"], digits, signed)
            extra.append(f"{a} to {b}" if signed else f"{a}–{b}")
        p = num(r.get("p_value"))
        if signed and not math.isnan(p):
            extra.append(f"p = {p_text(p)}")
        more = f" ({', '.join(extra)})" if extra else ""
        parts.append(f"{r['key']} {fmt(r['mean'], digits, signed)}{more}")
    if len(t) > FINDING_TEMPLATES:
        parts.append(f"{len(t) - FINDING_TEMPLATES} more in the table")
    return html(
        "Too few templates ({}{}) for a set-level interval or test; "
        "<a href='#per-template'>per template</a>: {}.",
        int(row.get("templates") or 0),
        f"; needs {need}",
        ", ".join(parts),
    )


def _signed_finding(
    entry: Entry,
    score: str,
    what: str,
    unit: str,
    more: str,
    mino: str,
    norm: str,
    level: str,
    arb_templates: Collection[str],
) -> Markup:
    """One signed set-level score (target gap, Kurita bias) as a sentence: mean, interval, n
    and p from summary.csv, or why there is no interval with the template rows instead."""
    row = _set_row(entry, score)
    if row is None or isna(num(row.get("mean"))) or int(row["n"]) <= 0:
        return Markup("")
    n = int(row["n"])
    dg = sig_digits(row["mean"], row["ci_low"], row["ci_high"])
    few = _too_few(entry, row, dg, arb_templates) if n > 1 else Markup("")
    note = note_of(row)
    left_out = next((x.strip() for x in note.split(";") if "arbitrary" in x), "")
    if few:
        stats = f"n = {plural(n, 'pair')} in {plural(int(row['templates']), 'template')}"
    elif n > 1:
        p = num(row.get("p_value"))
        stats = ci_text(row["ci_low"], row["ci_high"], level, dg, True)
        stats += f", n = {n} pairs" + ("" if math.isnan(p) else f", p = {p_text(p)}")
    else:
        stats = "one pair, so no interval"
    if left_out:
        stats += f"; {left_out}"
    return html(
        "{}: <b class='num'>{}</b>{} ({}; &gt; 0 = {}). {}",
        what.format(m=mino, o=norm),
        fmt(row["mean"], dg, True),
        unit,
        stats,
        more.format(m=mino),
        few,
    )


def findings_html(
    entries: list[Entry],
    pairs: list[Pair],
    deltas: dict[tuple[int, str, str, str], dict],
    shifts: dict[int, dict[str, dict[int, list[float]]]],
) -> str:
    """Per probe set and model: the headline numbers (from summary.csv), the most skewed pairs
    and the fills most shifted toward each side."""
    blocks = []
    for entry in entries:
        run = entry.run
        level = ci_level(run)
        set_name = str((run.meta.get("probe_set") or {}).get("name", "probe set"))
        own = [p for p in pairs if entry.index in p.cells and p.run_index == entry.run_index]
        arbitrary = {p.pair_id for p in own if is_arbitrary([entry], p)}
        oriented = [p for p in own if p.pair_id not in arbitrary]
        arb_templates = {str(p.items[0]["template_id"]) for p in own if p.pair_id in arbitrary}
        names = _side_names(entry, oriented)
        mino, norm = names["minoritized"], names["normative"]
        sentences = []
        jd = _set_row(entry, "jaccard_distance")
        sc = run.scores[run.scores["model"] == entry.model]
        ks = sorted({int(k) for k in sc["k"].dropna()}) if "k" in sc else []
        k_text = f"top-{ks[0]}" if len(ks) == 1 else "top-k"
        if jd is not None and not isna(jd.get("mean")):
            n = int(jd["n"])
            dg = sig_digits(jd["mean"], jd["ci_low"], jd["ci_high"])
            few = _too_few(entry, jd, dg) if n > 1 else Markup("")
            ci = (
                ci_text(jd["ci_low"], jd["ci_high"], level, dg)
                if n > 1
                else "one pair, so no interval"
            )
            across = f"Across {n} pairs" if n > 1 else "In its one pair"
            d = deltas.get((entry.index, "set", set_name, "jaccard_distance"))
            vs = ""
            if d is not None and not isna(d.get("delta")) and not isna(d.get("delta_low")):
                dd = sig_digits(d["delta"], d["delta_low"], d["delta_high"])
                vs = (
                    f" Against the base model: Δ = {fmt(d['delta'], dd, True)} "
                    f"({ci_text(d['delta_low'], d['delta_high'], level, dd, True)}, "
                    f"n = {int(d['n'])} pairs; negative = less skew)."
                )
            elif d is not None and not isna(d.get("delta")):
                vs = (
                    f" Against the base model: Δ = {fmt(d['delta'], dg, True)} over "
                    f"{int(d['n'])} pairs (negative = less skew; {short_note(note_of(d))}: "
                    "no interval)."
                )
            if arbitrary:
                # a distance has no direction, so it keeps every pair; but the sides of the
                # arbitrary pairs are no social groups, so they are not named here
                sides = html("the {} fills of each pair's two sentences", k_text)
            else:
                sides = html("the {} fills after <b>{}</b> and after <b>{}</b>", k_text, mino, norm)
            claim = (
                html("0 = the same fills, 1 = none in common). {}", few)
                if few
                else html("{}; 0 = the same fills, 1 = none in common).", ci)
            )
            sentences.append(
                html(
                    "{}, {} have a mean Jaccard distance of <b class='num'>{}</b> ({}{}",
                    across,
                    sides,
                    fmt(jd["mean"], dg),
                    claim,
                    vs,
                )
            )
        for score, what, unit, more in (
            (
                "target_gap_mean",
                "Target words: log p after {m} − after {o}",
                " nats per word on average",
                "more likely for {m}",
            ),
            (
                "kurita_bias",
                "Kurita bias (log p of the {m} word − the {o} word, each over its prior)",
                " nats on average",
                "the attribute raises the {m} word more",
            ),
        ):
            sentence = _signed_finding(
                entry, score, what, unit, more, mino, norm, level, arb_templates
            )
            if sentence:
                sentences.append(sentence)
        details = []
        if len(own) > 1 and "jaccard_distance" in sc:
            top = sc.assign(_js=sc.get("js_divergence", 0.0)).sort_values(
                ["jaccard_distance", "_js", "pair_id"],
                ascending=[False, False, True],
                kind="stable",
            )
            links = {p.pair_id: p for p in oriented}
            shown = []
            top = top[top["pair_id"].astype(str).isin(set(links))]
            for r in top.head(FINDING_PAIRS).to_dict("records"):
                pair = links.get(str(r["pair_id"]))
                if pair is None:
                    continue
                shown.append(
                    f'<a href="#pair={escape(url_id(pair))}">{escape(pair.label)}</a> '
                    f"({fmt(r['jaccard_distance'], 2)})"
                )
            if shown:
                details.append("Most skewed pairs (Jaccard distance): " + ", ".join(shown) + ".")
        shifted = rank_shifts(shifts.get(entry.index, {}), run.vocab(entry.model))
        for role in ("minoritized", "normative"):
            toks = shifted.get(role) or []
            if not toks:
                continue
            many = len(own) > 1
            listed = ", ".join(
                f"<span class='tok'>{escape(t)}</span> ("
                + (f"{c} pair{'s' if c != 1 else ''}, " if many else "")
                + f"{fmt(s, 2, True)})"
                for t, c, s in toks
            )
            details.append(f"Fills shifted toward <b>{escape(names[role])}</b>: {listed}.")
        if arbitrary:
            details.append(
                html(
                    "{} of arbitrary orientation ({}) left out of the signed and "
                    "group-labelled findings.",
                    plural(len(arbitrary), "pair"),
                    ", ".join(sorted(arb_templates)),
                )
            )
        if details:
            details.append(
                "<span class='muted'>(tokens in one side's top-k only: "
                + ("pairs, " if len(own) > 1 else "")
                + "mean log p shift toward that side in nats)</span>"
            )
        if not sentences and not details:
            continue
        blocks.append(
            f"<div class='finding'><h3>{escape(entry.label)} <small>on {escape(set_name)}</small></h3>"
            + "".join(f"<p class='headline'>{s}</p>" for s in sentences)
            + (f"<p class='more'>{' '.join(details)}</p>" if details else "")
            + "</div>"
        )
    body = "".join(blocks) or "<p class='muted'>The runs hold no set-level scores.</p>"
    return f"""<section id="findings">
<h2>Findings</h2>
<div class="findings" style="--cols:{min(2, max(1, len(blocks)))}">{body}</div>
</section>"""
