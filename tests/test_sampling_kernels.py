"""The compiled samplers of ``clvmodels.families.sampling`` against closed forms.

``poisson_periods`` draws a path's count by inverting the negative binomial when its expected
count is at most ``INVERSION_MEAN_MAX`` and from the first purchase time (Lomax), a gamma rate
and a Poisson count above; both routes, the placement in periods (one by one and by
conditional binomials) and the beta-geometric dropout (p integrated out) are checked against
the distributions they must have. ``gamma_period_totals`` is checked in
``tests/test_samplers.py`` (Gamma-Gamma spend); here its input checks and layouts.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from clvmodels.families import sampling

N_PATHS = 40_000


def _nbinom_probability(k, shape, rate, span):
    """P(N(span) = k) for a Poisson process with rate ~ Gamma(shape, rate)."""
    return stats.nbinom.pmf(k, shape, rate / (rate + span))


@pytest.mark.parametrize(
    "shape_, rate, span",
    [
        (0.8, 10.0, 6.0),  # expected count 0.48: inversion
        (2.5, 1.0, 6.0),  # 15: inversion, several purchases
        (60.0, 1.5, 4.0),  # 160: the Lomax route and the multinomial placement
    ],
)
def test_counts_and_periods_are_negative_binomial(shape_, rate, span):
    grid = np.array([1.0, 2.5, 4.0, 6.0])  # unequal periods; span may end inside the grid
    rng = np.random.default_rng(21)
    shape, pairs, per, totals = sampling.poisson_periods(
        np.full(N_PATHS, shape_), np.full(N_PATHS, rate), grid, rng, span=np.full(N_PATHS, span)
    )
    assert shape == (N_PATHS,) and per.shape == (len(pairs), len(grid))
    np.testing.assert_array_equal(per.sum(axis=1), totals)
    assert (totals > 0).all() and (np.diff(pairs) > 0).all()
    counts = np.zeros(N_PATHS, dtype=np.int64)
    counts[pairs] = totals
    mean = shape_ * span / rate
    for k in np.unique(np.round(mean + np.array([-1.0, 0.0, 1.0]) * np.sqrt(mean + 1))):
        k = max(int(k), 0)
        prob = _nbinom_probability(k, shape_, rate, span)
        tol = 4.5 * np.sqrt(prob * (1 - prob) / N_PATHS) + 1e-4
        assert abs((counts == k).mean() - prob) < tol, (k, (counts == k).mean(), prob)
    # per-period means: the expected rate times the part of the period before span
    dense = np.zeros((N_PATHS, len(grid)))
    dense[pairs] = per
    length = np.diff(np.clip(grid, 0.0, span), prepend=0.0)
    expected = shape_ / rate * length
    se = dense.std(axis=0) / np.sqrt(N_PATHS)
    assert np.all(np.abs(dense.mean(axis=0) - expected) < 4.5 * se + 1e-9), dense.mean(axis=0)
    assert not dense[:, length == 0].any()


def test_both_routes_agree_at_the_switch():
    # the same customer just below and just above the inversion threshold: the routes differ,
    # the distributions must not (beyond the small change of the mean)
    grid = np.arange(1.0, 13.0)
    means = []
    for shape_ in (
        sampling.INVERSION_MEAN_MAX / 12.0 * 0.999,
        sampling.INVERSION_MEAN_MAX / 12.0 * 1.001,
    ):
        _, pairs, per, totals = sampling.poisson_periods(
            np.full(N_PATHS, shape_), 1.0, grid, np.random.default_rng(5)
        )
        counts = np.zeros(N_PATHS)
        counts[pairs] = totals
        var = shape_ * 12.0 * (1 + 12.0)  # negative binomial: mean (1 + span / rate)
        assert abs(counts.mean() - shape_ * 12.0) < 4.5 * np.sqrt(var / N_PATHS)
        assert abs(counts.var() / var - 1.0) < 0.06
        means.append(per.sum(axis=0) / N_PATHS)
    np.testing.assert_allclose(means[0], means[1], rtol=0.05)


def test_dropout_is_beta_geometric():
    # the truncated count min(N, K), K ~ Geometric(p), p ~ Beta(a, b), against numpy drawing
    # N, p and K explicitly
    shape_, rate, a, b = 3.0, 2.0, 0.7, 2.5
    grid = np.array([2.0, 4.0, 6.0])
    _, pairs, per, totals = sampling.poisson_periods(
        np.full(N_PATHS, shape_), rate, grid, np.random.default_rng(8), dropout=(a, b)
    )
    ours = np.zeros(N_PATHS, dtype=np.int64)
    ours[pairs] = totals
    rng = np.random.default_rng(9)
    n = rng.poisson(rng.gamma(shape_, 1.0 / rate, N_PATHS) * grid[-1])
    k = rng.geometric(rng.beta(a, b, N_PATHS))
    theirs = np.minimum(n, k)
    for value in range(6):
        p1, p2 = (ours == value).mean(), (theirs == value).mean()
        pooled = (p1 + p2) / 2
        assert abs(p1 - p2) < 4.5 * np.sqrt(2 * pooled * (1 - pooled) / N_PATHS) + 1e-4
    # the first K purchases in time order are kept: per-period counts are a prefix
    cumulative = np.cumsum(per, axis=1)
    assert (cumulative[:, -1] == totals).all() and (np.diff(cumulative, axis=1) >= 0).all()


def test_dropout_with_vanishing_b_stops_after_the_first_purchase():
    # Beta(a, b -> 0) is the point mass at p = 1: K = 1
    for b in (1e-300, 0.0):
        _, _, per, totals = sampling.poisson_periods(
            np.full(2000, 5.0), 1.0, np.array([3.0, 6.0]), np.random.default_rng(1),
            dropout=(0.8, b),
        )  # fmt: skip
        assert (totals == 1).all() and (per.sum(axis=1) == 1).all()


def test_alive_probability_and_shared_layouts():
    # (draws, 1) parameters against (draws, customers) probabilities: the dead buy nothing and
    # the alive share matches; a materialised copy of the same inputs gives the same paths
    draws, customers = 400, 30
    p_alive = np.linspace(0.0, 1.0, customers)[None, :].repeat(draws, 0)
    shape_ = np.full((draws, 1), 40.0)  # every alive path buys (P(N = 0) ~ 1e-26)
    rate = np.full((draws, 1), 2.0)
    grid = np.array([1.0, 2.0, 3.0])
    out = sampling.poisson_periods(shape_, rate, grid, np.random.default_rng(3), p_alive=p_alive)
    dense = sampling.poisson_periods(
        np.broadcast_to(shape_, p_alive.shape).copy(), np.broadcast_to(rate, p_alive.shape),
        grid, np.random.default_rng(3), p_alive=p_alive,
    )  # fmt: skip
    assert out[0] == (draws, customers)
    for mine, other in zip(out[1:], dense[1:], strict=True):
        np.testing.assert_array_equal(mine, other)
    bought = np.zeros((draws, customers), dtype=bool)
    bought.reshape(-1)[out[1]] = True
    assert not bought[:, 0].any() and bought[:, -1].all()
    share = bought.mean(axis=0)
    assert np.all(np.abs(share - p_alive[0]) < 4.5 * np.sqrt(0.25 / draws))


def test_same_generator_state_same_paths_and_path_strides():
    args = (np.array([0.5, 2.0, 9.0]), np.array([3.0, 1.0, 0.5]), np.array([1.0, 4.0]))
    first = sampling.poisson_periods(*args, np.random.default_rng(42), p_alive=0.7)
    again = sampling.poisson_periods(*args, np.random.default_rng(42), p_alive=0.7)
    for a, b in zip(first[1:], again[1:], strict=True):
        np.testing.assert_array_equal(a, b)
    flat, row, col = sampling.path_strides(np.arange(4.0)[:, None], (4, 3))
    assert (row, col) == (1, 0) and flat.tolist() == [0.0, 1.0, 2.0, 3.0]
    flat, row, col = sampling.path_strides(np.arange(3.0), (4, 3))
    assert (row, col) == (0, 1)
    flat, row, col = sampling.path_strides(2.0, (4, 3))
    assert (row, col) == (0, 0) and flat.tolist() == [2.0]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="lam value too large"):
        sampling.poisson_periods(np.array([1e30]), np.array([1e-30]), np.array([1.0]),
                                 np.random.default_rng(0))  # fmt: skip
    with pytest.raises(ValueError, match="non-negative"):
        sampling.gamma_period_totals(np.array([[1, -1]]), 6.0, 4.0, 15.0,
                                     np.random.default_rng(0))  # fmt: skip
    empty = sampling.poisson_periods(1.0, 1.0, np.zeros(0), np.random.default_rng(0))
    assert empty[1].size == 0 and empty[2].shape == (0, 0)
