"""Bootstrap intervals against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from ebtk.metrics.stats import bootstrap_interval, paired_bootstrap_interval, unpaired_bootstrap_interval


@pytest.mark.parametrize("n,k", [(40, 10), (100, 50), (25, 3)])
def test_bootstrap_of_a_binary_sample_is_the_binomial_quantile(n: int, k: int):
    """For k ones and n − k zeros the bootstrap mean is exactly Binomial(n, k/n)/n, so the percentile interval
    is its 2.5 % and 97.5 % quantiles; with 20 000 resamples they land exactly on them (observed: 0 error)."""
    iv = bootstrap_interval([1.0] * k + [0.0] * (n - k), n_boot=20_000, seed=3)
    lo, hi = binom.ppf(0.025, n, k / n) / n, binom.ppf(0.975, n, k / n) / n
    assert iv.n == n and iv.mean == pytest.approx(k / n)
    assert abs(iv.lo - lo) < 1e-9 and abs(iv.hi - hi) < 1e-9, (iv, lo, hi)


def test_bootstrap_of_normal_data_approaches_the_normal_interval():
    """Large n: the percentile interval → mean ± 1.96·s/√n (observed within 0.35 % of the half-width)."""
    x = np.random.default_rng(0).normal(2.0, 3.0, size=2000)
    iv = bootstrap_interval(x, n_boot=20_000, seed=1)
    half = 1.959964 * x.std(ddof=0) / math.sqrt(len(x))
    assert iv.lo == pytest.approx(x.mean() - half, abs=0.012 * half)
    assert iv.hi == pytest.approx(x.mean() + half, abs=0.012 * half)


def test_paired_bootstrap_cancels_what_the_pairs_share():
    rng = np.random.default_rng(5)
    shared = rng.normal(0, 10, size=100)  # utterance difficulty, common to both systems
    a = shared + 1.0 + rng.normal(0, 0.1, size=100)
    b = shared + rng.normal(0, 0.1, size=100)
    iv = paired_bootstrap_interval(a, b)
    assert iv.excludes_zero() and iv.lo > 0.9 and iv.hi < 1.1
    unpaired = bootstrap_interval(a)
    assert unpaired.hi - unpaired.lo > 20 * (iv.hi - iv.lo)
    with pytest.raises(ValueError):
        paired_bootstrap_interval([1.0], [1.0, 2.0])


def test_unpaired_bootstrap_approaches_the_welch_normal_interval():
    """Two independent large samples of unequal size and spread: the percentile interval of mean(a) − mean(b)
    → the difference ± 1.96·√(s_a²/n_a + s_b²/n_b) (observed within 0.9 % of the half-width)."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 2.0, size=1500), rng.normal(0.0, 1.0, size=3000)
    iv = unpaired_bootstrap_interval(a, b, n_boot=20_000, seed=1)
    d, half = a.mean() - b.mean(), 1.959964 * math.sqrt(a.var() / len(a) + b.var() / len(b))
    assert iv.n == 4500
    assert iv.lo == pytest.approx(d - half, abs=0.02 * half)
    assert iv.hi == pytest.approx(d + half, abs=0.02 * half)
    short = unpaired_bootstrap_interval([1.0], [0.0, 2.0])  # one value: a mean but no interval
    assert short.mean == 0.0 and math.isnan(short.lo) and math.isnan(short.hi)


def test_degenerate_sizes():
    assert math.isnan(bootstrap_interval([]).mean)
    one = bootstrap_interval([4.0])
    assert one.mean == 4.0 and math.isnan(one.lo)
    same = bootstrap_interval([2.0] * 10)
    assert same.lo == same.hi == 2.0


def test_choose_setting_takes_the_lowest_val_mcd_and_breaks_ties_by_dnsmos():
    from ebtk.tts.evaluate import choose_setting

    def rows(system, k, eta, mcds, dns):
        return [{"id": f"u{i}", "system": system, "steps": k, "step_size": eta, "mcd": m, "dnsmos": d}
                for i, (m, d) in enumerate(zip(mcds, dns))]

    base = rows("vocoded reference", None, None, [1.0, 1.0], [4.0, 4.0]) + rows("hypothesis", 0, None, [5.0, 5.2],
                                                                               [2.0, 2.0])
    better = base + rows("refined", 1, 1.0, [4.9, 5.0], [2.1, 2.1]) + rows("refined", 2, 0.5, [4.9, 5.005], [2.5, 2.5])
    assert choose_setting(better) == (2, 0.5)  # 4.9525 is within 0.01 dB of 4.95 and has the higher DNSMOS
    assert choose_setting(better, tie_db=0.001) == (1, 1.0)
    worse = base + rows("refined", 1, 1.0, [5.5, 5.6], [3.0, 3.0])
    assert choose_setting(worse) == (0, 1.0)  # no refinement beats the hypothesis: steps 0
    fm = base + rows("flow matching", 1, None, [4.0, 4.1], [1.0, 1.0]) + rows("flow matching", 4, None, [4.5, 4.5],
                                                                             [3.0, 3.0])
    assert choose_setting(fm, systems=("flow matching",)) == (1, 1.0)  # only FM's own settings compete
    assert choose_setting(fm) == (0, 1.0)  # the default candidates ignore FM rows


def test_t_prediction_interval_by_hand_and_by_coverage():
    """{1, 2, 3}: mean 2, s 1, t_{0.975, 2} = 4.3027 (tables), half-width 4.3027·√(4/3) = 4.9683. And by
    simulation: with n = 3 normal draws the interval holds a 4th independent draw 95 % of the time (40 000
    trials, binomial sd 0.0011; observed 0.9495, bound 0.005 = 4.5 sd)."""
    from ebtk.metrics.stats import t_prediction_interval

    iv = t_prediction_interval([1.0, 2.0, 3.0])
    assert iv.n == 3 and iv.mean == 2.0
    assert iv.lo == pytest.approx(2 - 4.9683, abs=1e-4) and iv.hi == pytest.approx(2 + 4.9683, abs=1e-4)
    assert math.isnan(t_prediction_interval([1.0]).lo)
    rng = np.random.default_rng(5)
    draws = rng.normal(1.0, 2.0, size=(40_000, 4))
    hits = 0
    for row in draws:
        p = t_prediction_interval(row[:3])
        hits += p.lo <= row[3] <= p.hi
    assert abs(hits / len(draws) - 0.95) < 0.005, hits / len(draws)
