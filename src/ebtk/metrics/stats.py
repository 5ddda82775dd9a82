"""Confidence intervals for results tables: Student-t intervals of a mean and of a paired difference.

    t_interval([x1, …, xn])            -> Interval(n, mean, lo, hi): mean ± t_{0.975, n−1} · s/√n
    paired_t_interval(a, b)            -> the same for the per-pair differences a_i − b_i
    t_prediction_interval([x1, …, xn]) -> where one new draw falls: mean ± t_{0.975, n−1} · s·√(1 + 1/n)

Both assume the values (or differences) are roughly normal; with n = 5 seeds the t quantile is 2.776, so
the half-width is 1.24 standard deviations. n = 1 has no interval (lo = hi = nan); n = 0 has no mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    """n values, their mean and a two-sided `level` t-interval [lo, hi] for the mean."""

    n: int
    mean: float
    lo: float
    hi: float
    level: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2

    def excludes_zero(self) -> bool:
        """True when the interval lies strictly on one side of 0 (a paired difference is then 'significant')."""
        return self.n >= 2 and (self.lo > 0 or self.hi < 0)


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of `values` and its two-sided Student-t confidence interval at `level`."""
    from scipy.stats import t

    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        return Interval(0, math.nan, math.nan, math.nan, level)
    mean = sum(xs) / n
    if n == 1:
        return Interval(1, mean, math.nan, math.nan, level)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(n, mean, mean - half, mean + half, level)


def t_prediction_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of `values` and the Student-t interval that holds one *new* draw with probability `level`:
    mean ± t_{n−1} · s · √(1 + 1/n). Why: one run of a variant (e.g. one seed of a training remedy) is
    compared with the spread of n seeds of the baseline, not with the baseline's mean."""
    iv = t_interval(values, level)  # its half-width is t·s/√n; a new draw's is √(n + 1) times that
    half = iv.half_width * math.sqrt(iv.n + 1)
    return Interval(iv.n, iv.mean, iv.mean - half, iv.mean + half, level)


def paired_t_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of the differences a_i − b_i (pairs, e.g. the same seed) and its t-interval."""
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    return t_interval([float(x) - float(y) for x, y in zip(a, b)], level)


def bootstrap_interval(values: Sequence[float], level: float = 0.95, n_boot: int = 10_000,
                       seed: int = 0) -> Interval:
    """Mean of `values` and its percentile-bootstrap interval at `level` (resampling the values with
    replacement `n_boot` times, fixed `seed` so tables regenerate identically). Makes no normality
    assumption: per-utterance speech metrics are skewed by a few hard utterances."""
    import numpy as np

    xs = np.asarray([float(v) for v in values], dtype=np.float64)
    n = len(xs)
    if n == 0:
        return Interval(0, math.nan, math.nan, math.nan, level)
    if n == 1:
        return Interval(1, float(xs[0]), math.nan, math.nan, level)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 1000):  # chunks keep memory at 1000 × n
        idx = rng.integers(0, n, size=(min(1000, n_boot - start), n))
        means[start:start + len(idx)] = xs[idx].mean(1)
    lo, hi = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    return Interval(n, float(xs.mean()), float(lo), float(hi), level)


def paired_bootstrap_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95, n_boot: int = 10_000,
                              seed: int = 0) -> Interval:
    """Mean of the paired differences a_i − b_i (e.g. the same utterance under two systems) and its
    percentile-bootstrap interval: pairs are resampled together, so what both systems share cancels."""
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    return bootstrap_interval([float(x) - float(y) for x, y in zip(a, b)], level, n_boot, seed)


def unpaired_bootstrap_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95, n_boot: int = 10_000,
                                seed: int = 0) -> Interval:
    """mean(a) − mean(b) of two independent samples (different utterances) and its percentile-bootstrap
    interval: each sample is resampled on its own, `n_boot` times with a fixed `seed`. `.n` is len(a) + len(b)."""
    import numpy as np

    xa, xb = (np.asarray([float(v) for v in x], dtype=np.float64) for x in (a, b))
    if len(xa) < 2 or len(xb) < 2:
        mean = float(xa.mean() - xb.mean()) if len(xa) and len(xb) else math.nan
        return Interval(len(xa) + len(xb), mean, math.nan, math.nan, level)
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for start in range(0, n_boot, 1000):  # chunks keep memory at 1000 × n
        k = min(1000, n_boot - start)
        diffs[start:start + k] = (xa[rng.integers(0, len(xa), (k, len(xa)))].mean(1)
                                  - xb[rng.integers(0, len(xb), (k, len(xb)))].mean(1))
    lo, hi = np.quantile(diffs, [0.5 - level / 2, 0.5 + level / 2])
    return Interval(len(xa) + len(xb), float(xa.mean() - xb.mean()), float(lo), float(hi), level)
