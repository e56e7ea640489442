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
* :func:`unit_inference` — the set-level interval and test of a mean of template means, both
  from the same units (the template means) and the same sign flips: the interval is the set of
  centres the equal-tailed sign-flip test does not reject (Hartigan's subset-mean interval), so
  "p ≤ 1 − confidence" and "0 outside the interval" always agree; with fewer than
  :func:`min_units` templates neither is given;
* :func:`bootstrap_ci` — percentile bootstrap interval of a mean (pairs as units);
* :func:`cluster_bootstrap_ci` / :func:`resampled_cluster_means` — the two-stage cluster
  bootstrap (templates with replacement, then pairs within each picked template) of a mean of
  template means, for one column or several resampled together (paired);
* :func:`two_stage_bootstrap` — the same resampling scheme for any statistic of the pooled rows
  (e.g. a Wasserstein distance);
* :func:`paired_cluster_bootstrap` — percentile interval of the mean per-pair difference
  between two models scored on the same pairs (seeded, 2,000 resamples, 95%);
* :func:`clustered_sign_flip` — the sign-flip test with templates as units;
* :func:`paired_tests` — Wilcoxon signed-rank and exact sign tests of paired differences;
* :func:`mcnemar_exact` — exact McNemar test of two paired binary outcomes (discordant pairs).

This is the only module with resampling or tests: scores, measures and comparisons call it.
Every bootstrap is seeded with ``numpy.random.default_rng(seed)`` and draws in a fixed order,
so the same inputs always give the same numbers.

The formulas are written out in ``docs/statistics.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Largest n for which :func:`sign_flip_test` enumerates all 2^n sign patterns (65,536).
EXACT_MAX_N = 16
_CHUNK = 1000


def min_units(confidence: float = 0.95) -> int:
    """Fewest units (templates) for which :func:`unit_inference` gives an interval and a p-value.

    With T units there are 2^T sign patterns, so the smallest two-sided p of an exact sign-flip
    test is 2/2^T: an interval at ``confidence`` exists only when ``(1 − confidence)/2 · 2^T ≥ 1``
    (6 templates at 95%: 2/2^6 = 0.031; at T = 5 the smallest p is 0.0625 and no set-level claim
    at 5% is possible whatever the data).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    t = 1
    while np.floor((1.0 - confidence) / 2.0 * 2**t) < 1:
        t += 1
    return t


#: Fewest templates for a set-level interval and test at 95% (:func:`min_units`).
MIN_SET_UNITS = min_units(0.95)


@dataclass(frozen=True)
class UnitInference:
    """A mean of unit means (e.g. template means) with its interval and test from those units.

    ``p_value`` is NaN when not asked for (unsigned scores) or when there are too few units;
    ``note`` says why an interval or p-value is missing ("" when both are given).
    """

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    units: int
    note: str


def _subset_means(
    x: np.ndarray, *, exact_max_n: int, n_perm: int, seed: int
) -> tuple[np.ndarray, int, int]:
    """Sorted means of the sign-flip subsets of ``x`` (a pattern flips the subset A; its
    sum is ``S − 2·sum(A)``, so "flipped sum ≥ observed sum" is "mean(A) ≤ 0").

    Returns ``(sorted means of the non-empty subsets, total, empty)``: ``total`` is 2^T when
    every pattern is enumerated (T ≤ ``exact_max_n``), else ``n_perm + 1`` (seeded random
    patterns plus the observed one); ``empty`` counts random patterns that flip nothing (the
    identity: it ties the observed sum at every centre, so it counts in both tails).
    """
    n = x.size
    if n <= exact_max_n:
        bits = ((np.arange(1, 2**n, dtype=np.int64)[:, None] >> np.arange(n)) & 1).astype(
            np.float64
        )
        means = (bits @ x) / bits.sum(axis=1)
        return np.sort(means), 2**n, 0
    rng = np.random.default_rng(seed)
    parts, empty, done = [], 0, 0
    while done < n_perm:
        size = min(_CHUNK, n_perm - done)
        bits = rng.integers(0, 2, size=(size, n), dtype=np.int8).astype(np.float64)
        counts = bits.sum(axis=1)
        keep = counts > 0
        empty += int(size - keep.sum())
        parts.append((bits[keep] @ x) / counts[keep])
        done += size
    return np.sort(np.concatenate(parts)), n_perm + 1, empty


def unit_inference(
    unit_means: np.ndarray | Sequence[float],
    *,
    test: bool = True,
    confidence: float = 0.95,
    n_perm: int = 10_000,
    seed: int = 0,
    exact_max_n: int = EXACT_MAX_N,
    what: str = "templates",
) -> UnitInference:
    """Mean of T unit means with an interval and a p-value that use the same units and flips.

    H0 for a centre μ: the unit means are symmetric about μ. Flipping the signs of the
    deviations of a subset A of the units changes their sum by ``−2·Σ_A(x − μ)``, so the
    equal-tailed sign-flip p-value at μ is ``2·min(P_up, P_low)`` with
    ``P_up = (1 + #{A: mean(A) ≤ μ}) / N`` and ``P_low = (1 + #{A: mean(A) ≥ μ}) / N`` over the
    non-empty subsets (N = 2^T; or N − 1 seeded random patterns when T > ``exact_max_n``).
    Inverting it gives the interval ``[M_(k), M_(N−k)]`` of the sorted subset means M with
    ``k = ⌊(1 − confidence)/2 · N⌋`` (Hartigan 1969: each gap between successive subset means
    holds μ with probability 1/N under symmetry). ``p_value`` is this test at μ = 0, so
    ``p ≤ 1 − confidence`` exactly when 0 lies outside the interval.

    Args:
        unit_means: one value per unit (NaN dropped).
        test: compute the p-value (signed scores); unsigned scores get NaN.
        what: the units' name, used in ``note``.

    Returns:
        :class:`UnitInference`; with fewer than :func:`min_units` units the interval and
        p-value are NaN and ``note`` says why.
    """
    x = _finite(unit_means)
    t = int(x.size)
    nan = float("nan")
    if t == 0:
        return UnitInference(nan, nan, nan, nan, 0, f"no {what} with a value")
    estimate = float(x.mean())
    need = min_units(confidence)
    if t < need:
        named = what if t != 1 else what.removesuffix("s")
        note = (
            f"{t} {named}: too few for a set-level interval or test at {confidence:.0%} "
            f"(needs {need}; with T {what} the smallest two-sided p is 2/2^T); "
            f"see the {what.rstrip('s')} rows"
        )
        return UnitInference(estimate, nan, nan, nan, t, note)
    means, total, empty = _subset_means(x, exact_max_n=exact_max_n, n_perm=n_perm, seed=seed)
    k = int(np.floor((1.0 - confidence) / 2.0 * total)) - empty
    if k < 1:
        return UnitInference(estimate, nan, nan, nan, t, "too few random sign patterns")
    lo, hi = float(means[k - 1]), float(means[means.size - k])
    p = nan
    if test:
        below = int(np.searchsorted(means, 0.0, side="right"))  # subset means ≤ 0
        above = int(means.size - np.searchsorted(means, 0.0, side="left"))  # ≥ 0
        p_up = (1 + empty + below) / total
        p_low = (1 + empty + above) / total
        p = float(min(1.0, 2.0 * min(p_up, p_low)))
    return UnitInference(estimate, lo, hi, p, t, "")


def cluster_means(
    values: np.ndarray | Sequence[float], clusters: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """Mean of the non-NaN values of each cluster (in first-seen order), and the clusters'
    names; clusters with no value are left out."""
    v = np.asarray(values, dtype=np.float64).ravel()
    c = np.asarray(list(clusters))
    if c.size != v.size:
        raise ValueError(f"{c.size} cluster labels for {v.size} values")
    keep = ~np.isnan(v)
    v, c = v[keep], c[keep]
    names = list(dict.fromkeys(c.tolist()))
    return np.array([v[c == name].mean() for name in names], dtype=np.float64), names


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
    d = np.asarray(diffs, dtype=np.float64).ravel()
    t = list(templates)
    if len(t) != d.size:
        raise ValueError(f"{len(t)} templates for {d.size} differences; expected one per pair")
    n = int(np.count_nonzero(~np.isnan(d)))
    mean, lo, hi = cluster_bootstrap_ci(d, t, n_resamples=n_boot, confidence=confidence, seed=seed)
    return Interval(mean, lo, hi, n)


def bootstrap_ci(
    values: np.ndarray | Sequence[float],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap confidence interval of the mean.

    Returns ``(mean, low, high)``; the interval is NaN with fewer than two values.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = resample_means(rng, v, n_resamples)
    return (mean, *percentile_interval(means, confidence))


#: Resampled values drawn at once by :func:`resample_means` (memory: 16 bytes each): the numbers
#: are those of one draw of every resample, as the generator's stream continues across draws.
RESAMPLE_BLOCK = 2_000_000


def resample_means(rng: np.random.Generator, g: np.ndarray, count: int) -> np.ndarray:
    """Means of ``count`` resamples (with replacement, ``len(g)`` each) of the rows of ``g``:
    ``g[rng.integers(0, n, size=(count, n))].mean(axis=1)``, drawn a block of resamples at a
    time so that memory stays bounded whatever the number of pairs."""
    n = g.shape[0]
    step = max(1, RESAMPLE_BLOCK // max(1, n))
    parts = []
    for start in range(0, count, step):
        rows = min(step, count - start)
        parts.append(g[rng.integers(0, n, size=(rows, n))].mean(axis=1))
    if not parts:
        return np.empty((0, *g.shape[1:]))
    return np.concatenate(parts)


def resampled_cluster_means(
    values: np.ndarray, clusters: np.ndarray, n_resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Point estimate and bootstrap replicates of the mean of cluster means, per column.

    ``values`` is (n, m): m quantities measured on the same n pairs, resampled together (the
    same templates, then the same pairs within each, for every column), so differences between
    columns get a *paired* interval. One cluster: a plain bootstrap of the pairs.

    Returns:
        ``(point (m,), replicates (n_resamples, m))``.
    """
    rng = np.random.default_rng(seed)
    names = list(dict.fromkeys(clusters.tolist()))
    groups = [values[clusters == name] for name in names]
    point = np.mean([g.mean(axis=0) for g in groups], axis=0)
    if len(groups) < 2:
        return point, resample_means(rng, groups[0], n_resamples)
    picks = rng.integers(0, len(groups), size=(n_resamples, len(groups)))
    slot_means = np.empty((*picks.shape, values.shape[1]))
    for gi, g in enumerate(groups):
        chosen = picks == gi
        count = int(chosen.sum())
        if count:
            # A fresh resample of the template's pairs for every time it is picked.
            slot_means[chosen] = resample_means(rng, g, count)
    return point, slot_means.mean(axis=1)


def percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    """Equal-tailed percentile interval of bootstrap replicates (``numpy.quantile``)."""
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(replicates, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def cluster_bootstrap_ci(
    values: np.ndarray | Sequence[float],
    clusters: Sequence[str],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of cluster means, with a two-stage (cluster, then member) bootstrap interval.

    Used for a whole probe set, where the pairs expanded from one lexicon template are not
    independent: each template counts once, and resampling picks templates, then pairs
    within each picked template.
    """
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(list(clusters))
    keep = ~np.isnan(v)
    v, c = v[keep], c[keep]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    if len(set(c.tolist())) < 2:
        return bootstrap_ci(v, n_resamples=n_resamples, confidence=confidence, seed=seed)
    point, reps = resampled_cluster_means(v[:, None], c, n_resamples, seed)
    return (float(point[0]), *percentile_interval(reps[:, 0], confidence))


def clustered_sign_flip(
    values: np.ndarray | Sequence[float],
    clusters: Sequence[str],
    *,
    n_perm: int = 10_000,
    seed: int = 0,
) -> float:
    """Two-sided sign-flip p-value of "mean 0" that respects the template clustering.

    With several templates the test flips the signs of the **template means** (each template
    one unit, as the set estimate counts each template once; pairs of one template are not
    independent); with one template, the signs of the per-pair values. Exact enumeration for
    up to 16 units, else ``n_perm`` seeded flips (:func:`sign_flip_test`).
    NaN values are dropped; none left → NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(list(clusters))
    keep = ~np.isnan(v)
    v, c = v[keep], c[keep]
    if v.size == 0:
        return float("nan")
    names = list(dict.fromkeys(c.tolist()))
    if len(names) < 2:
        return sign_flip_test(v, n_perm=n_perm, seed=seed)
    means = np.array([v[c == name].mean() for name in names])
    return sign_flip_test(means, n_perm=n_perm, seed=seed)


def two_stage_bootstrap(
    statistic: Callable[[np.ndarray], Any],
    clusters: Sequence[str],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    batched: bool = False,
) -> tuple[float, float, float]:
    """A statistic of a set of rows, with the two-stage (cluster, then member) bootstrap CI.

    The same resampling scheme as :func:`cluster_bootstrap_ci` (pick clusters with
    replacement, then rows within each picked cluster), for statistics that are not a mean of
    cluster means (e.g. a Wasserstein distance of the pooled rows). With a single cluster it is
    a plain bootstrap over rows. (Its random stream differs from :func:`cluster_bootstrap_ci`'s:
    one uniform draw per resample, scaled to each picked cluster's size.)

    Args:
        statistic: maps an index array into the rows (0..N-1, repeats allowed) to a number.
        clusters: cluster label of each of the N rows.
        batched: ``statistic`` also accepts an (R, N) index matrix and returns R values (used
            for the plain bootstrap of a single cluster, where every resample has N rows).

    Returns:
        ``(value on all rows, low, high)``; the interval is NaN with fewer than two rows.
    """
    c = np.asarray(list(clusters))
    n = c.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    value = float(statistic(np.arange(n)))
    if n < 2:
        return value, float("nan"), float("nan")
    members = [np.flatnonzero(c == name) for name in dict.fromkeys(c.tolist())]
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    if len(members) == 1:
        draws = rng.integers(0, n, size=(n_resamples, n))
        if batched:
            stats[:] = statistic(draws)
        else:
            for r in range(n_resamples):
                stats[r] = statistic(draws[r])
    else:
        for r in range(n_resamples):
            picked = rng.integers(0, len(members), size=len(members))
            # uniform draws scaled to each picked cluster's size: one RNG call per resample
            u = rng.random(sum(members[g].size for g in picked))
            parts, start = [], 0
            for g in picked:
                m = members[g]
                parts.append(m[(u[start : start + m.size] * m.size).astype(np.int64)])
                start += m.size
            stats[r] = statistic(np.concatenate(parts))
    return (value, *percentile_interval(stats, confidence))


def paired_tests(deltas: np.ndarray | Sequence[float]) -> tuple[float, float]:
    """Wilcoxon signed-rank and exact sign test p-values (two-sided) of paired differences.

    Zero differences are dropped (they have no sign); with no non-zero difference both
    p-values are exactly 1.
    """
    from scipy.stats import wilcoxon

    d = np.asarray(deltas, dtype=np.float64)
    d = d[~np.isnan(d)]
    nz = d[d != 0]
    if nz.size == 0:
        return 1.0, 1.0
    n_pos = int((nz > 0).sum())
    p_sign = binomial_test(n_pos, int(nz.size))
    p_wil = float(wilcoxon(nz, zero_method="wilcox").pvalue)
    return p_wil, p_sign


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Exact (binomial) two-sided McNemar test of two paired binary outcomes.

    ``only_first`` counts the pairs where the outcome holds under the first condition only,
    ``only_second`` those where it holds under the second only (the discordant pairs; the
    concordant ones carry no information about a change). Under H0 "no change" a discordant
    pair is as likely to go either way, so the p-value is the exact binomial test of
    ``only_first`` out of ``only_first + only_second`` against 50% — the same as the sign test
    of the paired differences. No discordant pair → 1.0.
    """
    if only_first < 0 or only_second < 0:
        raise ValueError(f"discordant counts must be ≥ 0, got {only_first} and {only_second}")
    n = int(only_first) + int(only_second)
    if n == 0:
        return 1.0
    return binomial_test(int(only_first), n)


def w1_statistic(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], Any]:
    """The Wasserstein-1 distance of ``x[idx]`` and ``y[idx]`` as a statistic of row indices
    ``idx`` (a vector, or an (R, N) matrix of R resamples: R values), for
    :func:`two_stage_bootstrap`.

    Both samples always have the same size (one value per pair and side), and for two
    equal-size samples W1 is the mean absolute difference of their sorted values — the same
    number ``scipy.stats.wasserstein_distance`` returns, without its overhead inside the
    bootstrap loop.
    """

    def w1(idx: np.ndarray) -> Any:
        d = np.abs(np.sort(x[idx], axis=-1) - np.sort(y[idx], axis=-1)).mean(axis=-1)
        return float(d) if np.ndim(d) == 0 else d

    return w1
