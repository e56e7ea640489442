"""Every comparison with the base model, for every kind of audit, computed at summarise time.

A run of several models compares each later model with the first one (the base) on the same
items; the engine computes these tables once, stores them as ``comparison.csv``, and views only
render them. Pure functions over pandas tables (no I/O, no models); every interval and test
comes from :mod:`biasprobe.stats`, seeded as the summary is, so the same inputs always give the
same numbers.

Every table is long: one row per (model, level, key, score) with the shared columns
:data:`COMPARISON_COLUMNS` first, then the kind's own columns:

* :func:`fill_mask_comparison` — fill-mask probe sets: per template and per set, the paired
  change of each skew score (:func:`biasprobe.scores.compare_to_base`: paired bootstrap /
  template-level sign flips); per pair, the change of each skew score and the Spearman ρ of the
  two models' log-probs over a token set fixed by the base (its top 300; the whole vocabulary);
* :func:`counterfactual_comparison` — counterfactual sets on classifiers: the change of mean Δ,
  |Δ|, flip and invariance-failure rates and of the Wasserstein-1 distance;
* :func:`crows_comparison` — CrowS-Pairs: the change of the stereotype percentage over the
  pairs both models scored, with a paired bootstrap over pairs and an exact McNemar test of
  the discordant pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from biasprobe.measures import active_in, summary_scores
from biasprobe.scores import compare_to_base, spearman_fixed
from biasprobe.stats import (
    bootstrap_ci,
    cluster_means,
    clustered_sign_flip,
    mcnemar_exact,
    min_units,
    two_stage_bootstrap,
    unit_inference,
    w1_statistic,
)

__all__ = [
    "COMPARISON_COLUMNS",
    "COUNTERFACTUAL_COLUMNS",
    "COUNTERFACTUAL_MEAN_SCORES",
    "CROWS_COLUMNS",
    "FILL_MASK_COLUMNS",
    "PAIR_SCORES",
    "RHO_SCORES",
    "SPEARMAN_TOP",
    "TokenSource",
    "counterfactual_comparison",
    "crows_comparison",
    "fill_mask_comparison",
    "pair_comparison",
]

#: Leading columns of every ``comparison.csv``: the base's and the model's value, the change
#: (model − base) with its interval, the units behind it, a p-value of "no change" and a note.
COMPARISON_COLUMNS = [
    "model",
    "base",
    "level",
    "key",
    "score",
    "base_mean",
    "model_mean",
    "change",
    "ci_low",
    "ci_high",
    "n",
    "p_value",
    "templates",
    "note",
]
#: Fill-mask comparison: the shared columns, then Holm across a set's templates, the change of
#: |score| (negative = closer to 0) with its interval, whether a signed mean changed sign, and
#: Spearman's ρ (``rho_*`` rows only).
FILL_MASK_COLUMNS = [
    *COMPARISON_COLUMNS,
    "p_holm",
    "abs_change",
    "abs_ci_low",
    "abs_ci_high",
    "sign_flipped",
    "rho",
]
#: Counterfactual comparison: the shared columns, then |mean| of base and model and whether the
#: signed mean Δ changed sign.
COUNTERFACTUAL_COLUMNS = [*COMPARISON_COLUMNS, "abs_base", "abs_model", "sign_flipped"]
#: CrowS-Pairs comparison: the shared columns, then the discordant pairs (stereotype preferred
#: under the base only / under the model only) behind the McNemar test.
CROWS_COLUMNS = [*COMPARISON_COLUMNS, "n_only_base", "n_only_model"]

#: Per-pair skew scores whose change the fill-mask comparison lists per pair.
PAIR_SCORES = (
    "jaccard_distance",
    "rbo_distance",
    "js_divergence",
    "target_gap",
    "target_gap_mean",
    "kurita_bias",
)
#: Tokens fixed by the base model for the top-N Spearman ρ.
SPEARMAN_TOP = 300
#: The four ρ rows of a pair: side A and B over the base's top :data:`SPEARMAN_TOP` tokens, and
#: over the whole vocabulary.
RHO_SCORES = ("rho_top_a", "rho_top_b", "rho_vocab_a", "rho_vocab_b")
#: Per-pair counterfactual scores whose mean change is compared.
COUNTERFACTUAL_MEAN_SCORES = ("delta", "abs_delta", "flip", "invariance_failure")


class TokenSource(Protocol):
    """Where the fill-mask comparison reads stored log-probs (a ``RunResult`` is one)."""

    def vocab(self, model: str) -> Sequence[str]: ...

    def stored_top_n(self, model: str) -> int | None: ...

    def pair_tokens(self, model: str, pair_id: str) -> pd.DataFrame: ...

    def pair_logprobs(self, model: str, pair_id: str) -> tuple[np.ndarray, np.ndarray]: ...


# --------------------------------------------------------------------------- fill-mask


def _num(x: Any) -> float:
    """A float, NaN for a missing or non-numeric value."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return v


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman ρ of paired values (NaN below two), as :func:`spearman_fixed` on a fixed set."""
    from scipy.stats import spearmanr

    if x.size < 2:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def _sorted_tokens(
    source: TokenSource, model: str, pair_id: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``ids, logprob_a, logprob_b, rank_a, rank_b`` of the stored tokens, by token id."""
    frame = source.pair_tokens(model, pair_id)
    ids = frame["token_id"].to_numpy(np.int64)
    cols = [frame[c].to_numpy(np.float64) for c in ("logprob_a", "logprob_b")]
    ranks = [frame[c].to_numpy(np.int64) for c in ("rank_a", "rank_b")]
    order = np.argsort(ids, kind="stable")
    return ids[order], cols[0][order], cols[1][order], ranks[0][order], ranks[1][order]


def pair_comparison(
    base_source: TokenSource,
    base: str,
    source: TokenSource,
    model: str,
    pair_id: str,
) -> list[tuple[float, str]]:
    """Spearman ρ of one pair under ``model`` against ``base``: ``(ρ, note)`` for each of
    :data:`RHO_SCORES` (ρ NaN with a note saying why when it cannot be computed).

    Side A and side B, over a token set fixed by the base model alone: its top
    :data:`SPEARMAN_TOP` tokens (needs them stored for both models), and the whole vocabulary
    (needs full vectors, ``--store full``, for both). Over the union of both models' top tokens
    two independent models would show ρ ≈ −0.7 (:func:`biasprobe.scores.spearman_fixed`).
    """
    nan = float("nan")
    if tuple(base_source.vocab(base)) != tuple(source.vocab(model)):
        return [(nan, "the vocabularies differ")] * 4
    b_ids, b_la, b_lb, b_ra, b_rb = _sorted_tokens(base_source, base, pair_id)
    ids, la, lb, _, _ = _sorted_tokens(source, model, pair_id)
    top_n = min(SPEARMAN_TOP, len(base_source.vocab(base)))
    out: list[tuple[float, str]] = []
    for r, v, o_vals in ((b_ra, b_la, la), (b_rb, b_lb, lb)):
        top_ids, top_vals = b_ids[r <= SPEARMAN_TOP], v[r <= SPEARMAN_TOP]
        at = np.searchsorted(ids, top_ids)
        found = (at < ids.size) & (ids[np.minimum(at, ids.size - 1)] == top_ids)
        if top_ids.size < top_n:
            out.append((nan, f"the base stored only {top_ids.size} of its top {SPEARMAN_TOP}"))
        elif found.all():
            out.append((_spearman(top_vals, o_vals[at]), ""))
        else:
            missing = int((~found).sum())
            out.append((nan, f"{missing} of the base's top {SPEARMAN_TOP} not stored"))
    if base_source.stored_top_n(base) is None and source.stored_top_n(model) is None:
        b_vecs = base_source.pair_logprobs(base, pair_id)
        o_vecs = source.pair_logprobs(model, pair_id)
        out += [(spearman_fixed(b, o, None), "") for b, o in zip(b_vecs, o_vecs, strict=True)]
    else:
        out += [(nan, "needs --store full")] * 2
    return out


def _set_rows(
    scores: pd.DataFrame, base: str, model: str, set_name: str, kw: dict[str, Any]
) -> list[dict[str, Any]]:
    """Template and set rows of :func:`compare_to_base`, in the shared columns."""
    names = summary_scores(active_in(scores.columns))
    table = compare_to_base(
        scores,
        scores,
        base_model=base,
        other_model=model,
        score_names=names,
        set_name=set_name,
        **kw,
    )
    rows = []
    for r in table.to_dict("records"):
        rows.append(
            {
                "model": model,
                "base": base,
                "level": r["level"],
                "key": str(r["key"]),
                "score": r["score"],
                "base_mean": r["base"],
                "model_mean": r["other"],
                "change": r["delta"],
                "ci_low": r["delta_low"],
                "ci_high": r["delta_high"],
                "n": int(r["n"]),
                "p_value": r["p_value"],
                "templates": int(r["templates"]),
                "note": r["note"],
                "p_holm": r["p_holm"],
                "abs_change": r["abs_delta"],
                "abs_ci_low": r["abs_delta_low"],
                "abs_ci_high": r["abs_delta_high"],
                "sign_flipped": r["sign_flipped"],
            }
        )
    return rows


def _pair_rows(
    scores: pd.DataFrame, base: str, model: str, source: TokenSource | None
) -> list[dict[str, Any]]:
    """Per pair both models ran: the change of each of :data:`PAIR_SCORES` and the four ρ."""
    nan = float("nan")
    first: dict[str, dict[str, dict[str, Any]]] = {base: {}, model: {}}
    for r in scores[scores["model"].isin([base, model])].to_dict("records"):
        first[str(r["model"])].setdefault(str(r["pair_id"]), r)
    b_rows, m_rows = first[base], first[model]
    rows: list[dict[str, Any]] = []
    for pid, b in b_rows.items():
        o = m_rows.get(pid)
        if o is None:
            continue
        common = {"model": model, "base": base, "level": "pair", "key": pid}
        common.update(ci_low=nan, ci_high=nan, n=1, p_value=nan, templates=1)
        for s in PAIR_SCORES:
            x0, x1 = _num(b.get(s)), _num(o.get(s))
            rows.append({**common, "score": s, "base_mean": x0, "model_mean": x1})
            rows[-1].update(change=x1 - x0, note="")
        if source is not None:
            for name, (rho, why) in zip(
                RHO_SCORES, pair_comparison(source, base, source, model, pid), strict=True
            ):
                rows.append({**common, "score": name, "base_mean": nan, "model_mean": nan})
                rows[-1].update(change=nan, rho=rho, note=why)
    return rows


def fill_mask_comparison(
    scores: pd.DataFrame,
    *,
    set_name: str,
    base: str | None = None,
    models: Sequence[str] | None = None,
    tokens: TokenSource | None = None,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    n_perm: int = 10_000,
) -> pd.DataFrame:
    """Every fill-mask comparison of each model with the base, as the report shows it.

    Args:
        scores: ``scores.csv`` of the run (one row per model and pair, every score column).
        set_name: key of the set rows.
        base: the base model (default: the first model of ``scores``).
        models: the models to compare (default: every other model, in run order).
        tokens: the stored log-probs (a ``RunResult``), for the per-pair Spearman ρ; None
            leaves the ρ rows out.
        n_resamples, confidence, seed, n_perm: the run's bootstrap settings.

    Returns:
        Columns :data:`FILL_MASK_COLUMNS`, one row per (model, level, key, score):

        * ``level`` "template" / "set": :func:`biasprobe.scores.compare_to_base` over the pairs
          both models ran, for every summarised score of the registered measures whose columns
          ``scores`` has (:func:`biasprobe.measures.summary_scores`) (``change`` = model − base with its interval; ``abs_change`` =
          |model| − |base|);
        * ``level`` "pair" (key = pair id): the change of each of :data:`PAIR_SCORES`, and the
          rows :data:`RHO_SCORES` with Spearman's ``rho`` (NaN with a ``note`` saying why).

        Empty (with the columns) when there is no other model.
    """
    order = [str(m) for m in dict.fromkeys(scores["model"])] if len(scores) else []
    base = base if base is not None else (order[0] if order else None)
    others = list(models) if models is not None else [m for m in order if m != base]
    kw = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed, "n_perm": n_perm}
    rows: list[dict[str, Any]] = []
    for model in others:
        rows += _set_rows(scores, str(base), model, set_name, kw)
        rows += _pair_rows(scores, str(base), model, tokens)
    return pd.DataFrame(rows, columns=FILL_MASK_COLUMNS)


# --------------------------------------------------------------------------- counterfactual


def _mean_of_means(values: np.ndarray, clusters: Sequence[str]) -> float:
    return float(pd.Series(values).groupby(list(clusters), sort=False).mean().mean())


def counterfactual_comparison(
    scores: pd.DataFrame,
    *,
    set_name: str,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Change of every counterfactual score from the first (base) model, with paired intervals.

    For the mean scores (:data:`COUNTERFACTUAL_MEAN_SCORES`) the per-pair change
    ``score(model) − score(base)`` on the same pairs is aggregated like a score: per template
    (bootstrap over its pairs; sign-flip test of the pair changes) and per set (the template
    means of the changes are the units of interval and test,
    :func:`biasprobe.stats.unit_inference`). For the Wasserstein-1 distance the same pair
    indices are resampled for both models (:func:`biasprobe.stats.two_stage_bootstrap`). Only
    pairs present for both models count (``n``).

    Args:
        scores: one row per (model, pair_id) with ``template_id``, ``p_minoritized``,
            ``p_normative`` and the mean-score columns (``downstream`` pair scores).
        set_name: key of the set rows.

    Returns:
        Columns :data:`COUNTERFACTUAL_COLUMNS`; ``abs_base``/``abs_model`` are |mean| before
        and after and ``sign_flipped`` says whether a signed mean changed sign (``delta``
        only). Empty with fewer than two models.
    """
    models = list(dict.fromkeys(scores["model"]))
    if len(models) < 2:
        return pd.DataFrame(columns=COUNTERFACTUAL_COLUMNS)
    base = models[0]
    kw = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    b = scores[scores["model"] == base].set_index("pair_id")
    rows: list[tuple] = []
    for model in models[1:]:
        m = scores[scores["model"] == model].set_index("pair_id")
        common = [p for p in b.index if p in m.index]
        bb, mm = b.loc[common], m.loc[common]
        templates = bb["template_id"].astype(str)
        units = [
            ("template", t, np.flatnonzero(templates.to_numpy() == t)) for t in templates.unique()
        ]
        units.append(("set", set_name, np.arange(len(common))))
        for level, key, sel in units:
            clusters = templates.to_numpy()[sel].tolist()
            for score in COUNTERFACTUAL_MEAN_SCORES:
                x0 = bb[score].to_numpy(np.float64)[sel]
                x1 = mm[score].to_numpy(np.float64)[sel]
                diff = x1 - x0
                if level == "set":
                    # the template means of the changes are the units of interval and test
                    inf = unit_inference(
                        cluster_means(diff, clusters)[0], confidence=confidence, seed=seed
                    )
                    change, lo, hi, p = inf.estimate, inf.ci_low, inf.ci_high, inf.p_value
                    m0, m1 = _mean_of_means(x0, clusters), _mean_of_means(x1, clusters)
                    n_units, note = inf.units, inf.note
                else:
                    change, lo, hi = bootstrap_ci(diff, **kw)
                    m0, m1 = float(x0.mean()), float(x1.mean())
                    # H0: the paired change is symmetric about 0 (sign flips of pair changes)
                    p = clustered_sign_flip(diff, ["_"] * len(sel))
                    n_units, note = 1, ""
                flipped = bool(np.sign(m0) * np.sign(m1) < 0) if score == "delta" else False
                rows.append(
                    (model, base, level, key, score, m0, m1, change, lo, hi, len(sel), p)
                    + (n_units, note, abs(m0), abs(m1), flipped)
                )
            a0 = bb["p_minoritized"].to_numpy(np.float64)[sel]
            n0 = bb["p_normative"].to_numpy(np.float64)[sel]
            a1 = mm["p_minoritized"].to_numpy(np.float64)[sel]
            n1 = mm["p_normative"].to_numpy(np.float64)[sel]
            w0, w1 = w1_statistic(a0, n0), w1_statistic(a1, n1)
            w_base, w_model = w0(np.arange(len(sel))), w1(np.arange(len(sel)))
            change, lo, hi = two_stage_bootstrap(
                lambda i, w0=w0, w1=w1: w1(i) - w0(i),
                clusters if level == "set" else ["_"] * len(sel),
                batched=True,
                **kw,
            )
            n_units = len(dict.fromkeys(clusters)) if level == "set" else 1
            if level == "set" and n_units < min_units(confidence):
                lo = hi = float("nan")
            rows.append(
                (model, base, level, key, "wasserstein", w_base, w_model, change, lo, hi)
                + (len(sel), float("nan"), n_units, "")  # no paired null for W1
                + (w_base, w_model, False)
            )
    return pd.DataFrame(rows, columns=COUNTERFACTUAL_COLUMNS)


# --------------------------------------------------------------------------- CrowS-Pairs


def crows_comparison(
    pairs: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    base: str | None = None,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Change of the CrowS-Pairs percentage from the base model, over the pairs both scored.

    Per pair and model, ``more`` = 1 when the model prefers the more-stereotypical sentence
    (``outcome == "more"``), else 0 (a tie counts in n, not in the numerator, as in the
    metric); skipped pairs, and pairs the other model did not score, are left out. Overall
    (key "all") and per bias type:

    * ``base_mean`` / ``model_mean`` = 100 · mean(more) of each model over those pairs;
    * ``change`` = ``model_mean − base_mean`` = 100 · mean(more_model − more_base), with a
      percentile interval from a bootstrap of the pairs (the per-pair differences resampled,
      so the pairing is kept; :func:`biasprobe.stats.bootstrap_ci`, seeded);
    * ``p_value``: exact McNemar test (:func:`biasprobe.stats.mcnemar_exact`) of the discordant
      pairs, ``n_only_base`` (stereotype preferred under the base only) against
      ``n_only_model`` — H0: the two models prefer the stereotype equally often.

    Args:
        pairs: one row per (model, pair) with ``model``, ``pair_id``, ``bias_type`` and
            ``outcome`` (the ``pairs.csv`` of each model, stacked), or model → its table.
        base: the base model (default: the first).

    Returns:
        Columns :data:`CROWS_COLUMNS`, level "overall" then "bias_type" (the base's order).
        Empty with fewer than two models.
    """
    if isinstance(pairs, Mapping):
        frame = pd.concat([t.assign(model=m) for m, t in pairs.items()], ignore_index=True)
    else:
        frame = pairs
    missing = {"model", "pair_id", "bias_type", "outcome"} - set(frame.columns)
    if missing:
        raise ValueError(f"pair table lacks column(s) {', '.join(sorted(missing))}")
    models = [str(m) for m in dict.fromkeys(frame["model"])]
    base = base if base is not None else (models[0] if models else None)
    if base not in models or len(models) < 2:
        return pd.DataFrame(columns=CROWS_COLUMNS)
    scored = frame[frame["outcome"] != "skipped"]
    b = scored[scored["model"] == base].drop_duplicates("pair_id").set_index("pair_id")
    kw = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    rows: list[dict[str, Any]] = []
    nan = float("nan")
    for model in (m for m in models if m != base):
        o = scored[scored["model"] == model].drop_duplicates("pair_id").set_index("pair_id")
        common = [p for p in b.index if p in o.index]
        types = b.loc[common, "bias_type"].astype(str).to_numpy()
        x0 = (b.loc[common, "outcome"] == "more").to_numpy(np.float64)
        x1 = (o.loc[common, "outcome"] == "more").to_numpy(np.float64)
        units = [("overall", "all", np.ones(len(common), dtype=bool))]
        units += [("bias_type", t, types == t) for t in dict.fromkeys(types.tolist())]
        for level, key, sel in units:
            n = int(sel.sum())
            only_b = int(((x0 == 1) & (x1 == 0))[sel].sum())
            only_m = int(((x0 == 0) & (x1 == 1))[sel].sum())
            row: dict[str, Any] = {"model": model, "base": base, "level": level, "key": key}
            row.update(score="metric", n=n, templates=nan, n_only_base=only_b, n_only_model=only_m)
            if n == 0:
                row.update(base_mean=nan, model_mean=nan, change=nan, ci_low=nan, ci_high=nan)
                row.update(p_value=nan, note="no pair scored by both models")
            else:
                change, lo, hi = bootstrap_ci(100.0 * (x1[sel] - x0[sel]), **kw)
                row.update(base_mean=100.0 * float(x0[sel].mean()))
                row.update(model_mean=100.0 * float(x1[sel].mean()), change=change)
                row.update(ci_low=lo, ci_high=hi, p_value=mcnemar_exact(only_b, only_m))
                row["note"] = "1 pair: no interval" if n == 1 else ""
            rows.append(row)
    return pd.DataFrame(rows, columns=CROWS_COLUMNS)
