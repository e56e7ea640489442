"""Significance tests and intervals for aggregates (pure numpy/scipy; no I/O, no models).

Every aggregate biasprobe reports carries an interval, its ``n`` and, where a null hypothesis
is meaningful, a p-value:

* :func:`sign_flip_test` — two-sided sign-flip permutation test of "the mean of a signed
  per-pair score is 0" (exact enumeration of all 2^n sign patterns when n is small, else
  seeded random sign flips with the +1 correction);
* :func:`binomial_test` — exact two-sided binomial test of a proportion against 50%
  (``scipy.stats.binomtest``), used for the CrowS-Pairs percentage;
* :func:`wilson_ci` — Wilson score interval of a proportion;
* :func:`holm` — Holm's step-down adjustment of a family of p-values (e.g. the templates of
  one probe set);
* :func:`paired_cluster_bootstrap` — percentile interval of the mean per-pair difference
  between two models scored on the same pairs, resampling templates, then pairs within each
  picked template (the conventions of ``biasprobe.scores.cluster_bootstrap_ci``: seeded,
  2,000 resamples, 95%).

The formulas are written out in ``docs/statistics.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Largest n for which :func:`sign_flip_test` enumerates all 2^n sign patterns (65,536).
EXACT_MAX_N = 16
_CHUNK = 1000


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval and the number of values behind it."""

    estimate: float
    ci_low: float
    ci_high: float
    n: int


def _finite(values: np.ndarray | Sequence[float]) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return v[~np.isnan(v)]


def sign_flip_test(
    values: np.ndarray | Sequence[float],
    *,
    n_perm: int = 10_000,
    seed: int = 0,
    exact_max_n: int = EXACT_MAX_N,
) -> float:
    """Two-sided p-value of H0 "the values are symmetric around 0" (mean 0), by sign flips.

    Under H0 each value's sign is as likely to be + as −, so the observed ``|mean|`` is compared
    with ``|mean|`` of the values with random signs.

    * n ≤ ``exact_max_n``: all 2^n sign patterns are enumerated; p = #{|mean*| ≥ |mean|} / 2^n
      (the identity pattern is one of them, so p ≥ 2^-n).
    * otherwise: ``n_perm`` seeded random patterns; p = (1 + #{|mean*| ≥ |mean|}) / (1 + n_perm)
      (the +1 correction makes the test valid: p is never 0).

    NaN values are dropped. All values zero → p = 1 (no evidence of any direction). No values
    → NaN.
    """
    if n_perm < 1:
        raise ValueError(f"n_perm must be at least 1, got {n_perm}")
    v = _finite(values)
    n = v.size
    if n == 0:
        return float("nan")
    if not np.any(v):
        return 1.0
    observed = abs(v.sum())
    # Sums instead of means (same order); a relative tolerance keeps ties that floating-point
    # rounding would otherwise split.
    tol = 1e-9 * float(np.abs(v).sum())
    if n <= exact_max_n:
        bits = (np.arange(2**n, dtype=np.int64)[:, None] >> np.arange(n)) & 1
        sums = (1 - 2 * bits) @ v
        return float(np.count_nonzero(np.abs(sums) >= observed - tol) / 2**n)
    rng = np.random.default_rng(seed)
    hits = 0
    done = 0
    while done < n_perm:
        size = min(_CHUNK, n_perm - done)
        signs = 1 - 2 * rng.integers(0, 2, size=(size, n), dtype=np.int8)
        hits += int(np.count_nonzero(np.abs(signs @ v) >= observed - tol))
        done += size
    return (1 + hits) / (1 + n_perm)


def binomial_test(successes: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided binomial test of H0 "the success probability is ``p``" (scipy).

    Returns NaN when ``n`` is 0.
    """
    from scipy.stats import binomtest

    if n == 0:
        return float("nan")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..{n}, got {successes}")
    return float(binomtest(int(successes), int(n), p, alternative="two-sided").pvalue)


def wilson_ci(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n`` (as fractions, not %).

    ``centre ± half`` with ``centre = (p̂ + z²/2n) / (1 + z²/n)`` and
    ``half = z / (1 + z²/n) · sqrt(p̂(1 − p̂)/n + z²/4n²)``, z the normal quantile. It keeps
    close to nominal coverage near 0% and 100% and for small n, unlike p̂ ± z·se. NaN for n = 0.
    """
    from scipy.stats import norm

    if n == 0:
        return float("nan"), float("nan")
    z = float(norm.ppf(0.5 + confidence / 2.0))
    phat = successes / n
    denom = 1.0 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z / denom * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def holm(pvalues: np.ndarray | Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order (NaN entries stay NaN).

    With the m non-NaN p-values sorted ascending, p_(1) ≤ … ≤ p_(m):
    ``adj_(i) = min(1, max_{j ≤ i} (m − j + 1) · p_(j))``. Rejecting where ``adj ≤ α`` controls
    the family-wise error rate at α under any dependence.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def paired_cluster_bootstrap(
    templates: Sequence[str],
    diffs: np.ndarray | Sequence[float],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval:
    """Mean difference between two models over the same pairs, with a paired cluster bootstrap.

    ``diffs[i]`` is ``score(model, pair i) − score(base, pair i)`` and ``templates[i]`` the
    template pair i was expanded from. Pairing is kept by resampling the differences, never the
    two models separately. The estimate is the mean of the template means (each template counts
    once, as in the set summary); the percentile interval comes from a two-stage bootstrap:
    templates with replacement, then pairs with replacement within each picked template (a plain
    bootstrap over pairs when there is one template). Seeded; NaN differences are dropped; ``n``
    is the number of pairs used.
    """
    from biasprobe.scores import cluster_bootstrap_ci

    d = np.asarray(diffs, dtype=np.float64).ravel()
    t = list(templates)
    if len(t) != d.size:
        raise ValueError(f"{len(t)} templates for {d.size} differences; expected one per pair")
    n = int(np.count_nonzero(~np.isnan(d)))
    mean, lo, hi = cluster_bootstrap_ci(d, t, n_resamples=n_boot, confidence=confidence, seed=seed)
    return Interval(mean, lo, hi, n)
