"""The fast paths of issue #17 give the values of the straightforward computations.

* the hypergeometric walk (:mod:`clvmodels.families.hypergeometric_walk`) against
  ``scipy.special.hyp2f1`` and against mpmath;
* BG/NBD and MBG/NBD expectations along many customers (the walk, with its fallbacks) against
  the closed form evaluated customer by customer;
* the discounted sum over period ends (one family call) against the per-end expectations;
* the valuation engine's expected values (distinct rows sorted, discounting summed by parts)
  against the closed form per draw x customer x period end, whatever the order of customers.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pandas as pd
import pytest
from scipy.special import hyp2f1

import clvmodels as clv
from clvmodels.families import bg_nbd, mbg_nbd
from clvmodels.families import hypergeometric_walk as walk
from clvmodels.families.sampling import distinct_pairs


def customers(n: int, seed: int = 0):
    """Frequencies, recencies and ages at day resolution in weeks (ages of 1 to 400 days)."""
    rng = np.random.default_rng(seed)
    T = rng.integers(1, 400, n) / 7.0
    x = np.minimum(rng.poisson(rng.gamma(0.5, 4.0, n)), 60).astype(float)
    t_x = np.where(x > 0, np.floor(rng.random(n) * T * 7.0) / 7.0, 0.0)
    return x, t_x, T


def param_draws(n_draws: int, seed: int = 1):
    """(n_draws, 1) BG/NBD parameters around CDNOW's, including a near 1 and large b."""
    rng = np.random.default_rng(seed)
    r = 0.24 * np.exp(0.3 * rng.standard_normal(n_draws))
    alpha = 4.4 * np.exp(0.3 * rng.standard_normal(n_draws))
    a = 0.79 * np.exp(0.4 * rng.standard_normal(n_draws))
    b = 2.4 * np.exp(0.5 * rng.standard_normal(n_draws))
    a[:3] = [1.0 + 3e-6, 1.0 - 2e-4, 1.05]  # the removable singularity and its neighbours
    b[3] = 95.0  # concentrated dropout posterior for the larger frequencies
    return tuple(v[:, None] for v in (r, alpha, a, b))


def test_hypergeometric_function_and_derivative_match_scipy():
    rng = np.random.default_rng(3)
    reciprocals = walk.series_reciprocals()
    for _ in range(300):
        alpha_, beta_ = rng.uniform(-1.5, 4.0, 2)
        gamma_ = rng.uniform(0.2, 30.0)
        z = rng.uniform(1e-4, 0.97)
        u, slope, ok = walk.hyp2f1_with_derivative(alpha_, beta_, gamma_, z, reciprocals)
        if not ok:  # refused (series that cancel): the caller computes these elsewhere
            continue
        np.testing.assert_allclose(1.0 + u, hyp2f1(alpha_, beta_, gamma_, z), rtol=1e-11)
        derivative = alpha_ * beta_ / gamma_ * hyp2f1(alpha_ + 1, beta_ + 1, gamma_ + 1, z)
        np.testing.assert_allclose(slope, derivative, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_walk_equals_the_closed_form_customer_by_customer(shift):
    x, _, T = customers(3000)
    r, alpha, a, b = param_draws(40)
    xd, Td, _ = distinct_pairs(x, T)
    for t in (1e-9, 4.345, 30.0, 52.14, 400.0):
        fast = bg_nbd.active_expected_of_pairs(r, alpha, a, b, xd, Td, t, shift)
        slow = bg_nbd.active_expected_purchases(r + xd, alpha + Td, a, b + xd + shift, t)
        np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-300)
    # scalar parameters give one row per pair
    one = bg_nbd.active_expected_of_pairs(0.3, 5.0, 0.8, 2.4, xd, Td, 30.0, shift)
    assert one.shape == xd.shape


def test_walk_is_accurate_where_scipy_loses_digits():
    # a close to 1: the closed form cancels; the walk carries 2F1 - 1 and stays exact
    r, alpha, a, b = 0.24, 4.4, 0.9944, 2.4
    xd = np.zeros(300)
    Td = np.arange(300) / 7.0
    t = 4.345
    fast = bg_nbd.active_expected_of_pairs(r, alpha, a, b, xd, Td, t)
    mpmath.mp.dps = 40
    for j in (0, 150, 299):
        s, beta = mpmath.mpf(r), mpmath.mpf(alpha) + mpmath.mpf(Td[j])
        c = mpmath.mpf(a) + b - 1
        z = t / (beta + t)
        exact = c / (a - 1) * (1 - (1 - z) ** (a - 1) * mpmath.hyp2f1(c - s, a - 1, c, z))
        assert abs(fast[j] - float(exact)) <= 1e-13 * float(exact)


@pytest.mark.parametrize("module", [bg_nbd, mbg_nbd])
def test_conditional_expectation_uses_the_walk_and_keeps_its_value(module):
    x, t_x, T = customers(2000, seed=5)
    r, alpha, a, b = param_draws(30, seed=6)
    got = module.conditional_expected_purchases(r, alpha, a, b, x, t_x, T, 26.0)
    p_alive = module.probability_alive(r, alpha, a, b, x, t_x, T)
    shift = 1.0 if module is mbg_nbd else 0.0
    active = bg_nbd.active_expected_purchases(r + x, alpha + T, a, b + x + shift, 26.0)
    np.testing.assert_allclose(got, p_alive * active, rtol=1e-9)


@pytest.mark.parametrize("module", [bg_nbd, mbg_nbd])
@pytest.mark.parametrize("grouped", [False, True])
def test_discounted_purchases_equal_the_sum_over_period_ends(module, grouped):
    x, t_x, T = customers(1500, seed=7)
    r, alpha, a, b = param_draws(20, seed=8)
    if grouped:  # parameters per customer (a hierarchical model's draws)
        spread = 1.0 + 0.1 * np.random.default_rng(9).random(len(x))
        r, alpha = r * spread, alpha * spread
    ends = 4.345 * np.arange(1, 13)
    weights = 1.01 ** -np.arange(1, 13) - np.append(1.01 ** -np.arange(2, 13), 0.0)
    got = module.conditional_discounted_purchases(r, alpha, a, b, x, t_x, T, ends, weights)
    expected = sum(
        w * module.conditional_expected_purchases(r, alpha, a, b, x, t_x, T, t)
        for t, w in zip(ends, weights, strict=True)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.fixture(scope="module")
def cdnow_models():
    summary = clv.datasets.load_cdnow_summary()
    bg = clv.BetaGeo().fit(summary)
    gg = clv.GammaGamma().fit(summary[summary["frequency"] > 0])
    return summary, bg, gg


def test_expected_values_equal_the_closed_form_per_draw_customer_and_period(cdnow_models):
    summary, bg, gg = cdnow_models
    draws = bg.param_draws(25, seed=2)
    spend_point = gg.point_draws()
    _, values = clv.lifetime_value(
        bg, gg, summary, horizon=f"{12 * 4.345}W", period="4.345W", period_discount_rate=0.01,
        kind="expected", draws=(draws, spend_point), return_draws=True,
    )  # fmt: skip
    r, alpha, a, b = (draws[k].to_numpy()[:, None] for k in ("r", "alpha", "a", "b"))
    x, t_x, T = (summary[k].to_numpy(dtype=float) for k in ("frequency", "recency", "T"))
    p_alive = bg_nbd.probability_alive(r, alpha, a, b, x, t_x, T)
    expected = np.zeros((len(draws), len(summary)))
    previous = 0.0
    for k in range(1, 13):
        cumulative = p_alive * bg_nbd.active_expected_purchases(
            r + x, alpha + T, a, b + x, k * 4.345
        )
        expected += (cumulative - previous) / 1.01**k
        previous = cumulative
    expected *= gg.expected_spend(summary).to_numpy()
    np.testing.assert_allclose(values.values, expected, rtol=1e-9)


def test_expected_values_do_not_depend_on_the_order_of_customers(cdnow_models):
    summary, bg, gg = cdnow_models
    shuffled = summary.sample(frac=1.0, random_state=4)
    settings = {"horizon": "26W", "period": "4W", "kind": "expected", "draws": 20}
    a = clv.lifetime_value(bg, gg, summary, random_seed=1, **settings)
    b = clv.lifetime_value(bg, gg, shuffled, random_seed=1, **settings)
    assert list(b.index) == list(shuffled.index)
    pd.testing.assert_frame_equal(a.loc[shuffled.index], b, rtol=1e-12)


def test_per_period_values_add_up_to_the_discounted_value(cdnow_models):
    summary, bg, gg = cdnow_models
    sub = summary.iloc[:400]
    settings = {"horizon": "26W", "period": "4W", "kind": "expected", "draws": 10}
    frame, by_period = clv.lifetime_value(
        bg, gg, sub, random_seed=3, return_draws="period", **settings
    )
    _, values = clv.lifetime_value(bg, gg, sub, random_seed=3, return_draws=True, **settings)
    np.testing.assert_allclose(by_period.values.sum(axis=-1), values.values, rtol=1e-10)
    np.testing.assert_allclose(values.values.mean(axis=0), frame["clv_mean"], rtol=1e-12)


def test_without_numba_the_closed_form_gives_the_same_values(monkeypatch):
    x, t_x, T = customers(800, seed=11)
    r, alpha, a, b = param_draws(10, seed=12)
    ends = 4.345 * np.arange(1, 7)
    weights = np.full(6, 0.5)
    fast = bg_nbd.conditional_discounted_purchases(r, alpha, a, b, x, t_x, T, ends, weights)
    monkeypatch.setattr(bg_nbd.importlib.util, "find_spec", lambda name: None)
    assert not bg_nbd.walk_supported(r, alpha, a, b, 4.345)
    slow = bg_nbd.conditional_discounted_purchases(r, alpha, a, b, x, t_x, T, ends, weights)
    np.testing.assert_allclose(fast, slow, rtol=1e-9)


def alive_formula(module, r, alpha, a, b, x, t_x, T):
    """P(alive) written out: FHL 2008 for BG/NBD (1 without repeat purchases), BDF 2007 for
    MBG/NBD."""
    shift = 1.0 if module is mbg_nbd else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        odds = np.log(a) - np.log(b + x - 1.0 + shift)
        odds = odds + (r + x) * np.log1p((T - t_x) / (alpha + t_x))
    p = 1.0 / (1.0 + np.exp(odds))
    return p if shift else np.where(x > 0, p, 1.0)


@pytest.mark.parametrize("module", [bg_nbd, mbg_nbd])
def test_probability_alive_by_table_equals_the_formula(module):
    x, t_x, T = customers(5000, seed=13)
    r, alpha, a, b = param_draws(30, seed=14)
    got = module.probability_alive(r, alpha, a, b, x, t_x, T)  # 5,000 customers: the table
    expected = alive_formula(module, r, alpha, a, b, x, t_x, T)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    if module is bg_nbd:
        assert np.all(got[:, x == 0] == 1.0)
    single = module.probability_alive(0.3, 5.0, 0.8, 2.4, x, t_x, T)
    assert single.shape == x.shape
    expected = alive_formula(module, 0.3, 5.0, 0.8, 2.4, x, t_x, T)
    np.testing.assert_allclose(single, expected, rtol=1e-12)
