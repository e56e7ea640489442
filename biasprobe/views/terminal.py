"""The terminal tables of every kind of run (each function takes an optional rich ``console``).

Fill-mask runs: :func:`print_models` (which model a short name stands for),
:func:`print_topk_tables` (both sides' top tokens per pair), :func:`print_summary` (set-level
scores with intervals, n, p and the change from the base model); probe sets:
:func:`print_pairs` (the pairs of one set) and :func:`print_probe_sets` (the shipped sets);
CrowS-Pairs: :func:`print_crows_summary`; counterfactual runs: :func:`print_downstream`.
Every untrusted text goes through :mod:`biasprobe.views.text`; the tables fit 80 columns.
Library code prints nothing: the CLI calls these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from biasprobe.views.text import display_names, markup, safe_text

__all__ = [
    "MAX_RANKS",
    "arbitrary_templates",
    "ensure_console",
    "model_labels",
    "print_crows_summary",
    "print_downstream",
    "print_models",
    "print_pairs",
    "print_probe_sets",
    "print_summary",
    "print_topk_tables",
]

#: Ranks per side shown in a pair's top-k table by default.
MAX_RANKS = 20


def print_pairs(probe_set: Any, console: Any = None) -> None:
    """Every expanded pair of a probe set: id, groups (minoritized marked ``*``), where it is
    written, and its two sentences (or the sides' target words when they share a sentence)."""
    console = ensure_console(console)
    arbitrary = arbitrary_templates(probe_set)
    for it in probe_set.items:
        groups = [g + ("*" if s == it.minoritized else "") for s, g in enumerate(it.groups)]
        note = "  (orientation arbitrary)" if it.template_id in arbitrary else ""
        line = f"  {it.pair_id}: {groups[0]} | {groups[1]}{note}"
        console.print(safe_text(line), markup=False)
        for side, sentence in zip("AB", it.sentences):
            console.print(f"      {side}  {safe_text(sentence)}", markup=False)
        if it.targets:
            console.print(safe_text(f"      targets: {', '.join(it.targets)}"), markup=False)
    if probe_set.items:
        console.print("  (* minoritized side)", markup=False)


def print_probe_sets(sets: Sequence[Any], folder: Any, console: Any = None) -> None:
    """One line per shipped probe set (name, kind, pairs, what it shows, where its words come
    from; the ``shipped_sets()`` entries of :mod:`biasprobe.catalog`), then how many there are
    in ``folder``. Lines are not wrapped (a pipe gets them whole)."""
    console = ensure_console(console)
    width = max((len(s.name) for s in sets), default=0)
    for s in sets:
        pairs = f"{s.pairs} pair{'' if s.pairs == 1 else 's'}"
        line = f"{s.name:<{width}}  {s.kind:<14}  {pairs:>9}  {s.what}. Source: {s.source}"
        console.print(safe_text(line), markup=False, soft_wrap=True)
    console.print(
        f"({len(sets)} sets in {safe_text(folder)}; run one: biasprobe run NAME)",
        markup=False,
        soft_wrap=True,
    )


def ensure_console(console: Any = None) -> Any:
    """``console``, or a new rich console (no highlighting) writing to the terminal."""
    from rich.console import Console

    return console if console is not None else Console(highlight=False)


def model_labels(result: Any) -> dict[str, str]:
    """Short, distinct terminal names of the run's models (see
    :func:`~biasprobe.views.text.display_names`)."""

    models = getattr(result, "models", None)
    if models is None:  # a bare table holder: the models its tables name
        frame = getattr(result, "summary", None)
        frame = frame if frame is not None else result.topk
        models = list(dict.fromkeys(frame["model"]))
    return display_names(list(models))


def print_models(result: Any, console: Any = None) -> None:
    """Say which model each short terminal name stands for, where it is not the full name
    (an alias, or a path shortened); in a run with a causal LM, also each model's family and
    what a fill is for it (masked LM: the distribution at [MASK]; causal LM: the next-token
    distribution after the text before [MASK])."""
    from biasprobe.backends.causal_fill import FAMILY_NAMES, FILLS

    console = ensure_console(console)
    short = model_labels(result)
    cards = {m.get("name"): m for m in getattr(result, "meta", {}).get("models", [])}
    legend = []
    for name in short:
        full = cards.get(name, {}).get("alias_of") or name
        if short[name] != full:
            legend.append(f"{short[name]} = {full}")
    if legend:
        console.print(safe_text("models: " + "; ".join(legend)), markup=False)
    families = {name: str(cards.get(name, {}).get("family", "masked-lm")) for name in short}
    if all(f == "masked-lm" for f in families.values()):
        return  # every fill is the distribution at [MASK], as always
    for name, family in families.items():
        fill = cards.get(name, {}).get("fill") or FILLS.get(family, "")
        line = f"{short[name]}: {FAMILY_NAMES.get(family, family)} (fill: {fill})"
        console.print(safe_text(line), markup=False)


def arbitrary_templates(probe_set: Any) -> set[str]:
    """Ids of the pair entries whose orientation is only a sign convention
    (``orientation: arbitrary`` in the probe file)."""
    return {p.id for p in probe_set.pairs if getattr(p, "arbitrary_orientation", False)}


def print_topk_tables(
    result: Any,
    limit: int | None = None,
    rows: int | None = None,
    console: Any = None,
    arbitrary: set[str] | None = None,
) -> None:
    """Print, per pair and model, both sides' top tokens and their log p side by side (like
    fill-mask output): ``rows`` ranks (default: the run's top-k, at most :data:`MAX_RANKS`;
    the number hidden is said), at most ``limit`` pairs. ``arbitrary``: template ids whose
    orientation is only a sign convention (their role labels say so)."""
    from rich.table import Table

    console = ensure_console(console)
    short = model_labels(result)
    topk = result.topk
    depth = int(topk["rank"].max()) if len(topk) else 0
    rows = min(depth, MAX_RANKS) if rows is None else rows
    arbitrary = arbitrary or set()
    groups = topk.groupby(["model", "pair_id"], sort=False)
    shown = 0
    for (model, pair_id), sub in groups:
        if limit is not None and shown >= limit:
            console.print(
                f"… {groups.ngroups - shown} more pair tables in topk.csv (--pair-tables N "
                "shows more)",
                markup=False,
            )
            break
        shown += 1
        sides = [sub[sub.side == side].sort_values("rank") for side in ("A", "B")]
        template = sub["template_id"].iloc[0] if "template_id" in sub else pair_id
        table = Table(
            title=f"{markup(pair_id)}  [dim]({markup(short.get(model, model))})[/dim]",
            title_justify="left",
            caption_justify="left",
        )
        notes = []
        table.add_column("#", justify="right", style="dim", no_wrap=True)
        for part, label in zip(sides, ("A", "B")):
            group, role = part["group"].iloc[0], part["role"].iloc[0]
            mark = "*" if template in arbitrary else ""
            table.add_column(
                f"{label}: {markup(group)}\n[dim]({role}{mark})[/dim]", overflow="fold"
            )
            table.add_column("log p", justify="right", no_wrap=True)
            notes.append(f"{label}: {markup(part['sentence'].iloc[0])}")
        hidden = depth - rows
        if hidden > 0:
            notes.append(f"[dim]{hidden} more ranks per side in topk.csv[/dim]")
        if template in arbitrary:
            notes.append(
                "[dim]* the orientation of this pair is arbitrary (a sign convention, not a "
                "social group)[/dim]"
            )
        table.caption = "\n".join(notes)
        for r in range(rows):
            cells = [str(r + 1)]
            for part in sides:
                if r < len(part):
                    row = part.iloc[r]
                    cells += [markup(row["token"]), f"{row['logprob']:.2f}"]
                else:
                    cells += ["", ""]
            table.add_row(*cells)
        console.print(table)


def _num(x: float) -> str:
    """A score for the terminal (small valence masses would all read 0.000)."""
    return f"{x:.3f}" if x == 0 or abs(x) >= 0.01 else f"{x:.2g}"


def _p_cell(p: float) -> str:
    return "—" if p != p else ("<0.001" if p < 0.001 else f"{p:.3f}")


def print_summary(result: Any, console: Any = None) -> None:
    """Print the set-level scores of each model: mean with its confidence interval on one
    line, n, p-value and, for every model after the first, the change from the first (base)
    model; one table per model (its short name in the title) so that it fits 80 columns.

    A set with too few templates for a set-level interval or test has its template rows shown
    under each score instead, and the reason is printed."""
    from rich.table import Table

    full = result.summary
    s = full[full.level == "set"]
    if s.empty:
        return
    conf = float((result.meta.get("settings") or {}).get("confidence", 0.95))
    console = ensure_console(console)
    short = model_labels(result)
    console.print(
        "Scores over the probe set. Distances: lower = less skew. Signed scores (target gap, "
        "Kurita, valence): closer to 0 = less skew; p = sign-flip test of mean 0 over the "
        "template means, and the set's interval is the one that test gives (distances have no "
        "p). Δ base: mean minus the first model's mean.",
        markup=False,
    )
    models = list(dict.fromkeys(s["model"]))
    base = s[s.model == models[0]].set_index("score")["mean"]
    notes: list[str] = []
    for model in models:
        sub = s[s.model == model]
        # the model's name on its own line: a table title wraps at the (narrow) table width
        console.print(f"model {short.get(model, model)}", markup=False, highlight=False)
        table = Table()
        table.add_column("score", no_wrap=True)
        table.add_column(f"mean [{conf * 100:g}% CI]", justify="right", no_wrap=True)
        if model != models[0]:
            table.add_column("Δ base", justify="right", no_wrap=True)
        table.add_column("n", justify="right", no_wrap=True)
        table.add_column("p", justify="right", no_wrap=True)
        for r in sub.itertuples():
            ci = "" if math.isnan(r.ci_low) else f" [{_num(r.ci_low)}, {_num(r.ci_high)}]"
            cells = [markup(str(r.score)), f"{_num(r.mean)}{ci}"]
            if model != models[0]:
                b = base.get(r.score, float("nan"))
                cells.append("—" if math.isnan(b) or math.isnan(r.mean) else f"{r.mean - b:+.3f}")
            table.add_row(*cells, str(r.n), _p_cell(getattr(r, "p_value", float("nan"))))
            note = getattr(r, "note", "")
            if not isinstance(note, str) or not note:
                continue
            if note not in notes:
                notes.append(note)
            rows = full[
                (full.model == model) & (full.level == "template") & (full.score == r.score)
            ]
            for t in rows.itertuples():
                tci = "" if math.isnan(t.ci_low) else f" [{_num(t.ci_low)}, {_num(t.ci_high)}]"
                cells = [f"  {markup(str(t.key))}", f"{_num(t.mean)}{tci}"]
                if model != models[0]:
                    cells.append("")
                table.add_row(*cells, str(t.n), _p_cell(t.p_value), style="dim")
        console.print(table)
    for note in notes:
        console.print(f"Set rows without an interval or p: {note}.", markup=False)


def _crows_models(result: Any) -> list[str]:
    """The models of a CrowS run: ``models`` of a loaded run, else its one ``model``."""
    models = getattr(result, "models", None)
    if isinstance(models, list | tuple) and models:
        return [str(m) for m in models]
    if "model" in result.summary.columns:
        return [str(m) for m in dict.fromkeys(result.summary["model"])]
    return [str((result.meta.get("model") or {}).get("name", "?"))]


def _of_model(table: Any, model: str) -> Any:
    """The rows of ``model`` (all rows of a table of one model without a ``model`` column)."""
    if table is None or "model" not in table.columns:
        return table
    return table[table["model"].astype(str) == model]


def _pct(x: Any, spec: str = ".1f") -> str:
    """A percentage for the CrowS tables (``—`` when missing)."""
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _crows_p(x: float) -> str:
    return "—" if math.isnan(x) else (f"{x:.1e}" if x < 1e-3 else f"{x:.3f}")


def print_crows_summary(result: Any, console: Any = None) -> None:
    """The CrowS-Pairs summary with the meaning of 50%, in 80 columns. Per model: the metric
    with its CI on one line, n and p-values, then ties and the stereo/antistereo breakdown and
    the pairs skipped; with several models, the change from the base model (the stored
    ``result.comparison``: percentage points, paired-bootstrap CI, exact McNemar p)."""
    console = ensure_console(console)
    models = _crows_models(result)
    shorts = display_names(models, width=30)
    for model in models:
        _print_crows_model(result, model, shorts[model], console)
    comparison = getattr(result, "comparison", None)
    if comparison is not None and len(comparison):
        _print_crows_comparison(comparison, shorts, console)


#: What each CrowS scoring is, on the line under a model's table.
CROWS_SCORINGS = {
    "meade": "masked LM; scoring meade (bias-bench: mean log-prob of the differing tokens)",
    "nangia": "masked LM; scoring nangia (Nangia et al.: pseudo-log-likelihood of the shared "
    "tokens)",
    "loglikelihood": "causal LM; scoring loglikelihood (lm-evaluation-harness crows_pairs): "
    "it prefers the sentence with the higher log P(S) = sum of log P(token | tokens before); "
    "a tie counts as not preferring the stereotype",
}


def _crows_scoring(result: Any, model: str) -> tuple[str, str]:
    """A model's scoring (its model block's, else the run's) and the line saying what it is."""
    block = next(
        (
            m
            for m in result.meta.get("models") or []
            if isinstance(m, dict) and str(m.get("name")) == model
        ),
        {},
    )
    scoring = str(block.get("scoring") or result.meta.get("scoring") or "?")
    line = f"{model}: " + CROWS_SCORINGS.get(scoring, f"scoring {scoring}")
    info = block.get("info") if isinstance(block.get("info"), dict) else {}
    if info.get("first_token"):
        line += f"; first token {info['first_token']}"
    return scoring, line


def _print_crows_model(result: Any, model: str, short: str, console: Any) -> None:
    from rich.table import Table

    from biasprobe.crows.aggregate import LIKELIHOOD_DIFF, LIKELIHOOD_MEANING, MEANING, skip_counts

    scoring, about = _crows_scoring(result, model)
    rows = _of_model(result.summary, model)
    if "score" in rows.columns:
        diffs = rows[rows["score"].astype(str) == LIKELIHOOD_DIFF]
        rows = rows[rows["score"].astype(str) != LIKELIHOOD_DIFF]
    else:
        diffs = rows.iloc[0:0]
    table = Table(
        title=f"CrowS-Pairs, {markup(short)}, scoring {markup(scoring)}",
        title_justify="left",
        caption=f"{MEANING}. 95% CI: Wilson. p: exact binomial vs 50%; Holm across bias types.",
        caption_justify="left",
    )
    table.add_column("bias type", no_wrap=True)
    table.add_column("metric % [95% CI]", justify="right", no_wrap=True)
    for name in ("n", "p", "p Holm"):
        table.add_column(name, justify="right", no_wrap=True)
    split = Table(title="Ties and the two directions", title_justify="left")
    split.add_column("bias type", no_wrap=True)
    for name in ("ties", "stereo % (n)", "antistereo % (n)"):
        split.add_column(name, justify="right", no_wrap=True)
    for r in rows.to_dict("records"):
        key = markup(str(r["key"]))
        value = r["metric"] if "metric" in r else r.get("mean")
        metric = f"{_pct(value)} [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]"
        p, holm = _crows_p(float(r["p_value"])), _crows_p(float(r["p_holm"]))
        table.add_row(key, metric, str(int(r["n"])), p, holm)
        split.add_row(
            key,
            str(int(r["n_tie"])),
            f"{_pct(r['stereo_pct'])} ({int(r['stereo_n'])})",
            f"{_pct(r['antistereo_pct'])} ({int(r['antistereo_n'])})",
        )
    if short != model:
        console.print(f"model: {safe_text(model)}", markup=False)
    console.print(safe_text(about), markup=False)
    console.print(table)
    console.print(split)
    if len(diffs):
        ll = Table(
            title="likelihood_diff (lm-evaluation-harness), nats",
            title_justify="left",
            caption=f"{LIKELIHOOD_MEANING}. 95% CI: bootstrap over the pairs.",
            caption_justify="left",
        )
        for name in ("bias type", "mean [95% CI]", "n"):
            ll.add_column(name, justify="left" if name == "bias type" else "right", no_wrap=True)
        for r in diffs.to_dict("records"):
            span = f"{_pct(r['mean'], '.3f')} [{_pct(r['ci_low'], '.3f')}, "
            span += f"{_pct(r['ci_high'], '.3f')}]"
            ll.add_row(markup(str(r["key"])), span, str(int(r["n"])))
        console.print(ll)
    pairs = _of_model(getattr(result, "pairs", None), model)
    skipped = skip_counts(pairs) if pairs is not None else {}
    if skipped:
        counts = "; ".join(f"{n} {safe_text(label)}" for label, n in skipped.items())
        console.print(
            f"skipped {sum(skipped.values())} pair(s), left out of every count ({counts}); "
            "the reason of each is in pairs.csv, column skipped",
            markup=False,
        )


def _print_crows_comparison(c: Any, shorts: dict[str, str], console: Any) -> None:
    """The change of the CrowS-Pairs percentage from the base model, per model and bias type."""
    from rich.table import Table

    base = str(c["base"].iloc[0])
    table = Table(
        title=f"Change from the base model ({markup(shorts.get(base, base))}), percentage points",
        title_justify="left",
        caption="95% CI: paired bootstrap over the pairs both scored. p: exact McNemar.",
        caption_justify="left",
    )
    for name in ("model", "bias type", "change [95% CI]", "n", "p"):
        table.add_column(name, justify="left" if name in ("model", "bias type") else "right")

    def f(x: float) -> str:
        return "—" if x != x else f"{x:+.1f}"

    notes = []
    for r in c.to_dict("records"):
        p = float(r["p_value"])
        p_cell = "—" if math.isnan(p) else f"{p:.3f}"
        change = f"{f(r['change'])} [{f(r['ci_low'])}, {f(r['ci_high'])}]"
        model = str(r["model"])
        name = markup(shorts.get(model, model))
        table.add_row(name, markup(str(r["key"])), change, str(int(r["n"])), p_cell)
        note = r.get("note")
        if isinstance(note, str) and "different scorings" in note:
            notes.append(f"{shorts.get(model, model)}: {note[note.index('different scorings') :]}")
    console.print(table)
    for note in dict.fromkeys(notes):
        console.print(
            f"{safe_text(note)}: the change compares two scorings as well as two models",
            markup=False,
        )


def _cf_ci(row: Any, digits: int = 3, signed: bool = True) -> str:
    lo, hi = row["ci_low"], row["ci_high"]
    if lo != lo or hi != hi:
        return "—"
    f = f"+.{digits}f" if signed else f".{digits}f"
    return f"{lo:{f}} … {hi:{f}}"


def _cf_p(x: Any) -> str:
    if x != x:
        return ""
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _cf_table(console: Any, title: str, columns: Sequence[str]) -> Any:
    """An ≤ 80-column rich table: the first columns fold, the rest (numbers) align right."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", width=min(80, console.width))
    for name in columns:
        if name in ("score", "model"):
            table.add_column(name, overflow="fold")
        else:
            table.add_column(name, justify="right", no_wrap=name == "95% CI")
    return table


def _model_table(result: Any, model: str, label: str, console: Any) -> Any:
    """Set-level scores of one classifier (titled ``label``), then its per-contrast Δ rows."""
    from biasprobe.downstream.scores import SCORE_LABELS

    info = next((m.get("info") for m in result.meta.get("models", []) if m["name"] == model), None)
    a = (info or {}).get("accuracy")
    extra = f"  [dim]held-out acc. {a:.3f}[/dim]" if isinstance(a, int | float) else ""
    columns = ("score", "mean", "95% CI", "n", "p")
    table = _cf_table(console, f"{markup(label)}{extra}", columns)
    s = result.summary[result.summary["model"] == model]
    for _, r in s[s["level"] == "set"].iterrows():
        score = SCORE_LABELS.get(r["score"], r["score"])
        if r["score"] == "mean_p_positive":
            score = f"{score} ({r['group']})"
        signed = r["score"] == "delta"
        # the sign-flip p of the template means: the test the interval is made from
        p = _cf_p(r.get("p_value", float("nan"))) if signed else ""
        mean = f"{r['mean']:+.3f}" if signed else f"{r['mean']:.3f}"
        table.add_row(markup(score), mean, _cf_ci(r, signed=signed), str(int(r["n"])), p)
    for _, r in s[(s["level"] == "contrast") & (s["score"] == "delta")].iterrows():
        p = _cf_p(r.get("p_value", float("nan")))
        table.add_row(markup(f"Δ {r['key']}"), f"{r['mean']:+.3f}", _cf_ci(r), str(int(r["n"])), p)
    notes = [n for n in s[s["level"] != "template"].get("note", []) if isinstance(n, str) and n]
    if notes:
        table.caption = markup(f"No interval or p where {notes[0]}.")
    return table


def print_downstream(result: Any, console: Any = None) -> None:
    """Print the set-level scores per classifier (and the change vs the base), ≤ 80 columns;
    classifiers by short distinct names (which model each stands for is printed first)."""
    from biasprobe.downstream.scores import SCORE_LABELS

    console = ensure_console(console)
    models = list(dict.fromkeys(result.summary[result.summary["level"] == "set"]["model"]))
    short = display_names(models)
    legend = [f"{short[m]} = {m}" for m in models if short[m] != m]
    if legend:
        console.print("models: " + "; ".join(legend), markup=False)
    for model in models:
        console.print(_model_table(result, model, short[model], console))
    c = result.comparison
    if c is None or c.empty:
        return
    c = c[c["level"] == "set"]
    if c.empty:
        return
    base = str(c["base"].iloc[0])
    title = f"Change from the base model ({markup(short.get(base, base))})"
    table = _cf_table(console, title, ("model", "score", "change", "95% CI", "n", "p"))
    for _, r in c.iterrows():
        score = SCORE_LABELS.get(r["score"], r["score"])
        n, p = str(int(r["n"])), _cf_p(r.get("p_value", float("nan")))
        name = markup(short.get(r["model"], r["model"]))
        table.add_row(name, markup(score), f"{r['change']:+.3f}", _cf_ci(r), n, p)
    console.print(table)
