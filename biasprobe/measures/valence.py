"""Valence of completions: does the model fill the minoritized side's blank with more negative
(or fewer positive) words?

Pure functions over the full-vocabulary log-probabilities at the mask (no model, no torch).
A lexicon maps words to a valence (VADER: mean human rating from −4 to +4); a vocabulary token
is **negative** when its valence < −``threshold`` and **positive** when > ``threshold``
(default 0: any rated word), and neutral when it is not in the lexicon (sub-word pieces such as
``##ing``, numbers, names) or rated in between.

For one side with log-probs ``lp`` (V,) and top-k ids ``K`` (ties broken by the lower id, as
everywhere in biasprobe):

* ``share_neg_topk = |{t ∈ K : negative}| / |K|`` (and ``share_pos_topk``);
* ``mass_neg_topk = Σ_{t ∈ K, negative} exp(lp_t)`` (and ``mass_pos_topk``): the probability of
  drawing a negative word among the top k;
* ``mass_neg_vocab = Σ_{t negative} exp(lp_t)`` over the whole vocabulary (and
  ``mass_pos_vocab``): the total probability the model puts on negative words.

Signed per pair by the probe's orientation: ``signed = value(minoritized) − value(normative)``.
A positive signed ``*_neg_*`` (or a negative signed ``*_pos_*``) means the minoritized side is
completed more negatively; 0 = no difference (the ideal). Aggregates: mean over pairs with a
cluster-bootstrap 95% interval (templates, then pairs), n and a sign-flip p-value
(:func:`summarize_valence`).

The VADER lexicon (Hutto & Gilbert 2014, MIT licence) comes from the optional PyPI package
``vaderSentiment`` (``pip install 'biasprobe[valence]'``); any ``{word: valence}`` mapping works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from biasprobe.errors import UsageError
from biasprobe.measures.registry import Measure, register
from biasprobe.scores import topk

__all__ = [
    "MEASURE",
    "MEASURES",
    "RUN_COLUMNS",
    "load_vader_lexicon",
    "pair_valence",
    "run_columns",
    "run_settings",
    "side_valence",
    "summarize_valence",
    "vocab_polarity",
]

MEASURES = (
    "share_neg_topk",
    "share_pos_topk",
    "mass_neg_topk",
    "mass_pos_topk",
    "mass_neg_vocab",
    "mass_pos_vocab",
)


def load_vader_lexicon() -> dict[str, float]:
    """The VADER lexicon as ``{word: mean valence}`` (−4 … +4), read from ``vaderSentiment``.

    Raises:
        UsageError: the package is not installed (with the command that installs it).
    """
    try:
        from importlib import resources

        text = (resources.files("vaderSentiment") / "vader_lexicon.txt").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        raise UsageError(
            "valence scores need the VADER lexicon from the optional package vaderSentiment "
            "(MIT licence), which is not installed: pip install 'biasprobe[valence]' (or pip "
            "install vaderSentiment)"
        ) from None
    lexicon: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0]:
            try:
                lexicon[parts[0]] = float(parts[1])
            except ValueError:
                continue
    return lexicon


def vocab_polarity(
    vocab: Sequence[str], lexicon: Mapping[str, float], *, threshold: float = 0.0
) -> np.ndarray:
    """Polarity of every vocabulary token: −1 negative, +1 positive, 0 neutral/unrated (int8).

    Tokens are looked up as written, then lower-cased, after stripping surrounding spaces and
    the byte-level-BPE / SentencePiece word-start marks (``Ġ``, ``▁``); WordPiece continuation
    pieces (``##…``) are never words and stay 0.
    """
    if threshold < 0:
        raise UsageError(f"valence threshold must be ≥ 0, got {threshold}")
    out = np.zeros(len(vocab), dtype=np.int8)
    for i, tok in enumerate(vocab):
        word = str(tok).strip().lstrip("Ġ▁")
        if not word or word.startswith("##"):
            continue
        v = lexicon.get(word)
        if v is None:
            v = lexicon.get(word.lower())
        if v is None:
            continue
        if v < -threshold:
            out[i] = -1
        elif v > threshold:
            out[i] = 1
    return out


def side_valence(logprobs: np.ndarray, polarity: np.ndarray, k: int) -> dict[str, float]:
    """The six measures (see the module docstring) for one side's (V,) log-probs."""
    lp = np.asarray(logprobs, dtype=np.float64)
    pol = np.asarray(polarity)
    if lp.shape != pol.shape:
        raise UsageError(f"{lp.shape[0]} log-probs for a polarity vector of {pol.shape[0]} tokens")
    if k < 1:
        raise UsageError(f"k must be at least 1, got {k}")
    ids, _ = topk(lp, k)
    p = np.exp(lp)
    top_pol = pol[ids]
    return {
        "share_neg_topk": float(np.mean(top_pol < 0)),
        "share_pos_topk": float(np.mean(top_pol > 0)),
        "mass_neg_topk": float(p[ids][top_pol < 0].sum()),
        "mass_pos_topk": float(p[ids][top_pol > 0].sum()),
        "mass_neg_vocab": float(p[pol < 0].sum()),
        "mass_pos_vocab": float(p[pol > 0].sum()),
    }


def pair_valence(
    logp_a: np.ndarray, logp_b: np.ndarray, polarity: np.ndarray, k: int, minoritized: int
) -> dict[str, float]:
    """Both sides' measures (``*_a``, ``*_b``) and the signed differences (``*_signed``).

    ``minoritized`` is 0 or 1: which side (A or B) is the minoritized group.
    """
    if minoritized not in (0, 1):
        raise UsageError(f"minoritized must be 0 or 1, got {minoritized}")
    a = side_valence(logp_a, polarity, k)
    b = side_valence(logp_b, polarity, k)
    mino, norm = (a, b) if minoritized == 0 else (b, a)
    row: dict[str, float] = {}
    for m in MEASURES:
        row[f"{m}_a"] = a[m]
        row[f"{m}_b"] = b[m]
        row[f"{m}_signed"] = mino[m] - norm[m]
    return row


#: Columns a run with ``valence=True`` adds to ``scores.csv`` (signed, minoritized −
#: normative) and aggregates in ``summary.csv``: ``valence_`` + each of :data:`MEASURES`.
RUN_COLUMNS = tuple(f"valence_{m}" for m in MEASURES)


def run_columns(row: Mapping[str, float]) -> dict[str, float]:
    """The signed measures of a :func:`pair_valence` row under their ``scores.csv`` names."""
    return {f"valence_{m}": float(row[f"{m}_signed"]) for m in MEASURES}


def summarize_valence(
    rows: Sequence[Mapping[str, Any]],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    n_perm: int = 10_000,
) -> list[dict[str, Any]]:
    """Mean of every signed measure over pairs, with its 95% interval, n and p-value.

    ``rows`` need ``template_id`` and the ``*_signed`` columns (e.g. :func:`pair_valence`
    rows with the pair's template added). As the set rows of ``summary.csv``: the mean of the
    template means, with the interval and the sign-flip p-value of
    :func:`biasprobe.stats.unit_inference` over those template means (NaN, with ``note``
    saying why, below :data:`biasprobe.stats.MIN_SET_UNITS` templates). ``n_resamples`` is
    kept for callers; the interval needs no resampling.
    """
    from biasprobe.stats import cluster_means, unit_inference

    del n_resamples
    templates = [str(r["template_id"]) for r in rows]
    out = []
    for m in MEASURES:
        vals = np.asarray([r[f"{m}_signed"] for r in rows], dtype=np.float64)
        means, _ = cluster_means(vals, templates)
        inf = unit_inference(means, n_perm=n_perm, seed=seed)
        out.append(
            {
                "measure": m,
                "mean": inf.estimate,
                "ci_low": inf.ci_low,
                "ci_high": inf.ci_high,
                "n": int(np.count_nonzero(~np.isnan(vals))),
                "p_value": inf.p_value,
                "templates": inf.units,
                "note": inf.note,
            }
        )
    return out


def compute(
    logp_a: np.ndarray,
    logp_b: np.ndarray,
    *,
    context: np.ndarray,
    k: int,
    minoritized: int,
    **_: Any,
) -> dict[str, float]:
    """The ``valence_*`` columns of one pair (``context``: :func:`vocab_polarity` of the
    model's vocabulary; ``k``: the run's top-k depth)."""
    return run_columns(pair_valence(logp_a, logp_b, context, k, minoritized))


def prepare(vocab: Sequence[str], lexicon: Mapping[str, float]) -> np.ndarray:
    """Once per model: the polarity of every vocabulary token (default threshold 0)."""
    return vocab_polarity(vocab, lexicon)


def run_settings(*, k: int, **_: Any) -> dict[str, Any]:
    """What a run records about valence under ``settings["valence"]`` in results.json."""
    from importlib.metadata import version

    return {
        "lexicon": f"VADER (vaderSentiment {version('vaderSentiment')}, MIT licence)",
        "threshold": 0.0,
        "top_k": k,
    }


_LABELS = {
    "share_neg_topk": "valence: share of negative words in the top k",
    "share_pos_topk": "valence: share of positive words in the top k",
    "mass_neg_topk": "valence: probability of negative words in the top k",
    "mass_pos_topk": "valence: probability of positive words in the top k",
    "mass_neg_vocab": "valence: probability of negative words (whole vocabulary)",
    "mass_pos_vocab": "valence: probability of positive words (whole vocabulary)",
}

#: The registered measure: signed minoritized − normative differences of the six valence
#: measures, opt-in (``--valence``), needing the VADER lexicon.
MEASURE = register(
    Measure(
        name="valence",
        columns=RUN_COLUMNS,
        signed=RUN_COLUMNS,
        less_biased="closer to 0",
        formula=(
            "per side: share_neg_topk = |{t in top-k : valence(t) < 0}| / k, mass_neg_topk = "
            "sum of p(t) over negative t in the top k, mass_neg_vocab = sum of p(t) over every "
            "negative token (and the same for positive); signed = value(minoritized side) - "
            "value(normative side)"
        ),
        source=(
            "VADER lexicon: Hutto & Gilbert 2014, 'VADER: A Parsimonious Rule-based Model for "
            "Sentiment Analysis of Social Media Text', ICWSM (https://github.com/cjhutto/"
            "vaderSentiment, MIT licence)"
        ),
        needs=("full-vocabulary log-probs at the mask", "the vocabulary's token strings"),
        kind="fill-mask",
        labels=tuple((f"valence_{m}", text) for m, text in _LABELS.items()),
        compares_sentences=True,
        optional=True,
        option_help=(
            "Fill-mask sets: also score the valence of the completions (VADER lexicon; "
            "needs pip install 'biasprobe[valence]')."
        ),
        load=load_vader_lexicon,
        prepare=prepare,
        compute=compute,
        summarise=summarize_valence,
        settings=run_settings,
    )
)
