"""BG/NBD: published CDNOW numbers, math against lifetimes and mpmath, gradients, sampler."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import clvmodels as clv
from clvmodels.errors import InputError, NotFittedError, TimeUnitError
from clvmodels.families import bg_nbd as bgm
from clvmodels.registry import BetaGeo

FAMILY = bgm.BetaGeoNBDFamily()

PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


@pytest.fixture(scope="module")
def fitted(cdnow):
    return BetaGeo().fit(cdnow)


def _params(r, alpha, a, b):
    return {
        k: np.array([[v]]) for k, v in zip(("r", "alpha", "a", "b"), (r, alpha, a, b), strict=True)
    }


def test_published_cdnow_estimates(fitted):
    # Fader, Hardie & Lee (2005), section 5: r=0.243, alpha=4.414, a=0.793, b=2.426, LL=-9582.4
    for name, value in PUBLISHED.items():
        assert fitted.params_[name] == pytest.approx(value, abs=6e-4)
    assert fitted.log_likelihood_ == pytest.approx(-9582.4, abs=0.05)
    assert fitted.converged_
    assert "CONVERGENCE" in fitted.optimizer_message_
    assert fitted.time_unit_ == "W"
    assert fitted.n_customers_ == 2357


def test_published_conditional_expectation(fitted):
    # FHL 2005 section 5: x=2, t_x=30.43, T=38.86 -> 1.226 purchases expected in the next 39 weeks
    one = pd.DataFrame({"frequency": [2], "recency": [30.43], "T": [38.86]})
    one.attrs["time_unit"] = "W"
    assert fitted.expected_purchases(one, 39).iloc[0] == pytest.approx(1.226, abs=5e-4)
    # calendar horizons are converted once: 39 weeks = 273 days
    assert fitted.expected_purchases(one, "273D").iloc[0] == pytest.approx(
        fitted.expected_purchases(one, 39).iloc[0], rel=1e-12
    )


def test_hardie_excel_unconditional_expectation(fitted):
    # lifetimes' test against Hardie's BG/NBD spreadsheet (note 004): E[X(t)] at the CDNOW fit
    times = np.array([0.1429, 1.0, 3.00, 31.8571, 32.00, 78.00])
    expected = np.array([0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576])
    np.testing.assert_allclose(fitted.expected_purchases_new_customer(times), expected, atol=6e-4)
    assert fitted.expected_purchases_new_customer("39W") == pytest.approx(
        fitted.expected_purchases_new_customer(39.0)
    )


def test_rescaled_time_gives_the_same_predictions(cdnow, fitted):
    # recency and T in days instead of weeks: alpha scales by 7, predictions are unchanged
    daily = cdnow.assign(recency=cdnow["recency"] * 7, T=cdnow["T"] * 7)
    daily.attrs["time_unit"] = "D"
    d = BetaGeo().fit(daily)
    assert d.params_["alpha"] == pytest.approx(7 * fitted.params_["alpha"], rel=1e-5)
    for k in ("r", "a", "b"):
        assert d.params_[k] == pytest.approx(fitted.params_[k], rel=1e-5)
    # the density of purchase times picks up a Jacobian 1/7 per repeat purchase (2,457 in all)
    assert d.log_likelihood_ == pytest.approx(fitted.log_likelihood_ - 2457 * np.log(7), rel=1e-8)
    np.testing.assert_allclose(
        d.probability_alive(daily), fitted.probability_alive(cdnow), rtol=1e-5
    )
    np.testing.assert_allclose(
        d.expected_purchases(daily, "39W"), fitted.expected_purchases(cdnow, 39), rtol=1e-5
    )


def test_summary_table_and_standard_errors(fitted):
    table = fitted.summary()
    assert list(table.columns) == ["estimate", "se", "lower_95%", "upper_95%"]
    assert list(table.index) == ["r", "alpha", "a", "b"]
    assert (table["lower_95%"] < table["estimate"]).all()
    assert (table["estimate"] < table["upper_95%"]).all()
    # the covariance is the inverse of the observed information: check it against a Hessian
    # of the log-likelihood computed from function values only
    rows = fitted.rows_
    lp = np.log(fitted.params_.to_numpy())

    def f(v):
        return fitted.family_.negative_log_likelihood(v, rows)[0]

    h = 1e-4
    hess = np.empty((4, 4))
    for i in range(4):
        for j in range(4):
            ei, ej = np.eye(4)[i] * h, np.eye(4)[j] * h
            hess[i, j] = (f(lp + ei + ej) - f(lp + ei - ej) - f(lp - ei + ej) + f(lp - ei - ej)) / (
                4 * h * h
            )
    np.testing.assert_allclose(
        fitted.log_covariance_.to_numpy(), np.linalg.inv(hess), rtol=1e-3, atol=1e-6
    )


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    n = 300
    x = rng.integers(0, 40, n).astype(float)
    x[:5] = [0, 1, 2500, 4000, 10]
    T = rng.uniform(1, 500, n)
    t_x = np.where(x > 0, rng.uniform(0, 1, n) * T, 0.0)
    counts = rng.integers(1, 5, n).astype(float)
    for log_params in (np.log([0.24, 4.4, 0.79, 2.4]), np.log([3.0, 0.5, 8.0, 0.2])):
        value, grad = bgm.negative_log_likelihood(log_params, x, t_x, T, counts)
        # total equals the per-row function
        rows = bgm.log_likelihood(*np.exp(log_params), x, t_x, T)
        assert value == pytest.approx(-(counts @ rows), rel=1e-12)
        h = 1e-6
        for j in range(4):
            up, down = log_params.copy(), log_params.copy()
            up[j] += h
            down[j] -= h
            fd = (
                bgm.negative_log_likelihood(up, x, t_x, T, counts)[0]
                - bgm.negative_log_likelihood(down, x, t_x, T, counts)[0]
            ) / (2 * h)
            assert grad[j] == pytest.approx(fd, rel=1e-5, abs=1e-4)


def test_unsorted_and_sorted_inputs_agree():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 10, 200).astype(float)
    T = rng.uniform(5, 50, 200)
    t_x = np.where(x > 0, rng.uniform(0, 1, 200) * T, 0.0)
    c = np.ones(200)
    lp = np.log([0.5, 3.0, 1.2, 2.0])
    order = np.argsort(x, kind="stable")
    v1, g1 = bgm.negative_log_likelihood(lp, x, t_x, T, c)
    v2, g2 = bgm.negative_log_likelihood(lp, x[order], t_x[order], T[order], c)
    assert v1 == pytest.approx(v2, rel=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-10)
    # precomputed lookup codes give the same answer
    v3, g3 = bgm.negative_log_likelihood(lp, x, t_x, T, c, bgm.row_codes(t_x), bgm.row_codes(T))
    assert v3 == pytest.approx(v1, rel=1e-12)
    np.testing.assert_allclose(g3, g1, rtol=1e-10)


def test_math_matches_lifetimes_at_identical_params(cdnow):
    from lifetimes import BetaGeoFitter

    lf = BetaGeoFitter()
    lf.params_ = pd.Series({"r": 0.35, "alpha": 3.1, "a": 0.6, "b": 1.9})
    x, t_x, T = (
        cdnow["frequency"].to_numpy(float),
        cdnow["recency"].to_numpy(float),
        cdnow["T"].to_numpy(float),
    )
    p = _params(0.35, 3.1, 0.6, 1.9)
    for t in (1.0, 39.0, 400.0):
        ours = FAMILY.expected_purchases(p, x, t_x, T, t)[0]
        theirs = lf.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, T)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    np.testing.assert_allclose(
        FAMILY.probability_alive(p, x, t_x, T)[0],
        lf.conditional_probability_alive(x, t_x, T),
        rtol=1e-6,
    )
    ts = np.array([0.5, 10.0, 52.0, 520.0])
    np.testing.assert_allclose(
        FAMILY.expected_purchases_new_customer(p, ts)[0],
        lf.expected_number_of_purchases_up_to_time(ts),
        rtol=1e-6,
    )
    # unconditional P(X(t) = k), FHL 2005 eq. (8) = our conditional one at x = t_x = T = 0
    for k in range(6):
        ours = FAMILY.purchase_probability(p, 0.0, 0.0, 0.0, 30.0, k)[0]
        theirs = lf.probability_of_n_purchases_up_to_time(30.0, k)
        assert np.ravel(ours)[0] == pytest.approx(float(theirs), rel=1e-6)


def test_purchase_probability_is_a_distribution_with_the_right_mean(fitted, cdnow):
    sub = cdnow.iloc[:60]
    probs = np.column_stack(
        [fitted.purchase_probability(sub, 39, k).to_numpy() for k in range(200)]
    )
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-8)
    mean = probs @ np.arange(200)
    np.testing.assert_allclose(mean, fitted.expected_purchases(sub, 39).to_numpy(), rtol=1e-6)
    assert fitted.purchase_probability(sub, 39, 0).name == "p_0_purchases"


def test_hyp2f1_path_against_mpmath():
    import mpmath

    mpmath.mp.dps = 40

    def reference(s, beta, a_, b_, t):
        c = a_ + b_ - 1
        z = mpmath.mpf(t) / (beta + t)
        val = c / (a_ - 1) * (1 - (1 - z) ** s * mpmath.hyp2f1(s, b_, c, z))
        return float(val)

    cases = [
        (0.243 + 2, 4.414 + 38.86, 0.793, 2.426 + 2, 39.0),
        (0.243 + 3000, 4.4 + 700, 0.79, 2.43 + 3000, 3650.0),  # thousands of purchases, long t
        (0.5 + 20000, 10 + 5000, 2.5, 1.0 + 20000, 50.0),
        (50.0, 1.0, 0.05, 0.1, 1e5),  # extreme parameters, horizon far beyond tenure
        (0.01, 200.0, 30.0, 400.0, 10.0),
        (12.0, 0.3, 1.3, 0.4, 1000.0),
        (0.3, 5.0, 0.4, 0.5, 25.0),  # a + b - 1 < 0
    ]
    for s, beta, a_, b_, t in cases:
        ours = float(bgm.active_expected_purchases(s, beta, a_, b_, t))
        assert ours == pytest.approx(reference(s, beta, a_, b_, t), rel=1e-7), (s, beta, a_, b_, t)


def test_removable_singularities_are_smooth():
    # a = 1 and a + b = 1 make the closed form 0/0; neighbours agree with the patched value
    for a_, b_ in ((1.0, 2.0), (1.0 + 1e-9, 2.0), (0.4, 0.6), (0.4, 0.6 + 1e-10)):
        at = float(bgm.active_expected_purchases(2.0, 10.0, a_, b_, 20.0))
        near = float(bgm.active_expected_purchases(2.0, 10.0, a_ + 1e-3, b_, 20.0))
        assert np.isfinite(at)
        assert at == pytest.approx(near, rel=1e-2)


def test_extreme_customers_are_finite(fitted):
    s = pd.DataFrame(
        {
            "frequency": [0, 1, 5000, 20000, 3, 300],
            "recency": [0.0, 1e-9, 9999.0, 1e5, 0.0, 5000.0],
            "T": [0.0, 1e5, 10000.0, 1e5, 1e6, 5000.0],
        }
    )
    s.attrs["time_unit"] = "W"
    alive = fitted.probability_alive(s)
    assert np.isfinite(alive).all() and ((alive >= 0) & (alive <= 1)).all()
    for t in (0.0, 1.0, 52.0, 1e4):
        e = fitted.expected_purchases(s, t)
        assert np.isfinite(e).all() and (e >= 0).all()
    assert fitted.expected_purchases(s, 0.0).eq(0).all()
    assert np.isfinite(
        bgm.log_likelihood(0.2, 4.0, 0.8, 2.4, s["frequency"], s["recency"], s["T"])
    ).all()
    # a customer with 5000 purchases up to T is certainly alive, one silent for ages is not
    assert alive.iloc[2] > 0.99 and alive.iloc[0] == 1.0
    assert alive.iloc[1] < 1e-4 and alive.iloc[4] < 1e-6


def test_sampler_mean_matches_expectation():
    rng = np.random.default_rng(42)
    params = _params(0.243, 4.414, 0.793, 2.426)
    x = np.array([0.0, 2.0, 7.0, 1.0])
    t_x = np.array([0.0, 30.43, 35.0, 2.0])
    T = np.array([38.86, 38.86, 38.86, 38.86])
    grid = np.array([13.0, 26.0, 39.0])
    n = 40000
    big = {k: np.repeat(v, n, axis=0) for k, v in params.items()}
    counts = FAMILY.sample_future_purchases(big, x, t_x, T, grid, rng)
    assert counts.shape == (n, 4, 3) and counts.dtype == np.int64
    assert (np.diff(counts, axis=-1) >= 0).all()
    for j, t in enumerate(grid):
        expected = FAMILY.expected_purchases(params, x, t_x, T, t)[0]
        mc = counts[..., j].mean(axis=0)
        se = counts[..., j].std(axis=0) / np.sqrt(n)
        assert np.all(np.abs(mc - expected) < 4.5 * se + 1e-3), (t, mc, expected)
    # the distribution matches purchase_probability too
    p0 = FAMILY.purchase_probability(params, x, t_x, T, 39.0, 0)[0]
    np.testing.assert_allclose((counts[..., 2] == 0).mean(axis=0), p0, atol=0.01)


def test_latent_draws(fitted, cdnow):
    sub = cdnow.iloc[:3]
    draws = fitted.conditional_latent_draws(sub, n=20000, seed=3)
    assert list(draws.columns) == ["customer_id", "draw", "alive", "lambda", "p"]
    assert len(draws) == 60000
    frac = draws.groupby("customer_id")["alive"].mean()
    np.testing.assert_allclose(
        frac.to_numpy(), fitted.probability_alive(sub).to_numpy(), atol=0.015
    )
    # alive component of customer 1: lambda ~ Gamma(r+x, alpha+T)
    r, alpha = fitted.params_["r"], fitted.params_["alpha"]
    lam = draws[(draws.customer_id == 1) & draws.alive]["lambda"]
    assert lam.mean() == pytest.approx((r + 2) / (alpha + 38.86), rel=0.03)
    # with parameter draws: one latent draw per parameter draw
    with_params = fitted.conditional_latent_draws(sub, draws=fitted.param_draws(7, seed=0), seed=1)
    assert len(with_params) == 21


def test_weights_equal_duplicated_rows(cdnow):
    sub = cdnow.iloc[:800]
    w = np.tile([1.0, 2.0, 3.0, 1.0], 200)
    dup = sub.loc[sub.index.repeat(w.astype(int))].reset_index(drop=True)
    dup.attrs["time_unit"] = "W"
    a = BetaGeo().fit(sub, weights=w)
    b = BetaGeo().fit(dup)
    np.testing.assert_allclose(a.params_, b.params_, rtol=1e-5)
    assert a.log_likelihood_ == pytest.approx(b.log_likelihood_, rel=1e-9)


def test_param_draws_and_persistence(fitted, cdnow):
    draws = fitted.param_draws(500, seed=0)
    assert list(draws.columns) == ["r", "alpha", "a", "b"] and len(draws) == 500
    assert (draws > 0).all().all()
    np.testing.assert_allclose(
        np.log(draws).std(), np.sqrt(np.diag(fitted.log_covariance_)), rtol=0.1
    )
    boot = fitted.param_draws(3, method="bootstrap", seed=0)
    assert boot.shape == (3, 4) and np.isfinite(boot.to_numpy()).all()
    again = BetaGeo.from_dict(json.loads(fitted.to_json()))
    pd.testing.assert_series_equal(again.params_, fitted.params_)
    pd.testing.assert_series_equal(
        again.expected_purchases(cdnow, 10), fitted.expected_purchases(cdnow, 10)
    )


def test_errors(cdnow, fitted):
    with pytest.raises(NotFittedError):
        BetaGeo().probability_alive(cdnow)
    daily = cdnow.copy()
    daily.attrs["time_unit"] = "D"
    with pytest.raises(TimeUnitError):
        fitted.expected_purchases(daily, 10)
    no_unit = cdnow.copy()
    no_unit.attrs = {}
    with pytest.raises(TimeUnitError):
        BetaGeo().fit(no_unit)
    bad = cdnow.copy()
    bad.loc[bad.index[0], "recency"] = 100.0
    with pytest.raises(InputError, match="recency"):
        BetaGeo().fit(bad)
    with pytest.raises(ValueError, match="engine"):
        BetaGeo(engine="autograd").fit(cdnow)


def test_parameter_recovery_coverage():
    # 20 simulated data sets: the asymptotic 95% intervals should cover the truth ~95% of the
    # time (per parameter); a coverage count with binomial probability < 1e-3 fails.
    truth = {"r": 0.5, "alpha": 6.0, "a": 0.7, "b": 2.5}
    covered = np.zeros(4)
    n_sets = 20
    for seed in range(n_sets):
        s = clv.simulate.simulate_beta_geo(2500, **truth, T=np.linspace(20, 80, 2500), seed=seed)
        table = BetaGeo().fit(s).summary()
        covered += [
            table.loc[k, "lower_95%"] <= v <= table.loc[k, "upper_95%"] for k, v in truth.items()
        ]
    assert stats.binom.cdf(covered.min(), n_sets, 0.95) > 1e-3, covered


@pytest.mark.parametrize("offset", [0.0, 0.5])
def test_fast_paths_match_the_direct_formulas(offset):
    # >= 1024 customers switch on the lookup tables (whole numbers) and the per-(x, T)
    # evaluation of 2F1; fractional inputs must fall back to the direct formulas
    rng = np.random.default_rng(4)
    n = 3000
    x = rng.integers(0, 25, n).astype(float)
    T = rng.integers(1, 400, n).astype(float) + offset
    t_x = np.where(x > 0, np.floor(rng.random(n) * (T - offset)), 0.0)
    x = x + offset * (x > 0)
    r, alpha, a, b = 0.3, 5.0, 0.8, 2.4
    log_odds = (
        np.log(a)
        - np.log(b + np.maximum(x, 1) - 1)
        + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    )
    alive = np.where(x > 0, 1 / (1 + np.exp(log_odds)), 1.0)
    np.testing.assert_allclose(bgm.probability_alive(r, alpha, a, b, x, t_x, T), alive, rtol=1e-12)
    expected = alive * bgm.active_expected_purchases(r + x, alpha + T, a, b + x, 30.0)
    np.testing.assert_allclose(
        bgm.conditional_expected_purchases(r, alpha, a, b, x, t_x, T, 30.0), expected, rtol=1e-12
    )
    # parameter draws (n_draws, 1) broadcast through the same paths
    names = ("r", "alpha", "a", "b")
    draws = {k: np.array([[v], [v * 1.1]]) for k, v in zip(names, (r, alpha, a, b), strict=True)}
    out = FAMILY.expected_purchases(draws, x, t_x, T, 30.0)
    assert out.shape == (2, n)
    np.testing.assert_allclose(out[0], expected, rtol=1e-12)


def test_precomputed_probability_alive_gives_identical_results():
    """P(alive) is not remembered by the family: a caller that evaluates several horizons
    computes it once and passes it on, and gets exactly what the family computes inside."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 12, 2000).astype(float)
    T = rng.integers(1, 300, 2000).astype(float)
    t_x = np.where(x > 0, np.floor(rng.random(2000) * T), 0.0)
    params = {k: np.array([[v], [1.2 * v]]) for k, v in PUBLISHED.items()}
    p_alive = FAMILY.probability_alive(params, x, t_x, T)
    assert p_alive.shape == (2, 2000)
    for t in (1.0, 39.0):
        np.testing.assert_array_equal(
            FAMILY.expected_purchases(params, x, t_x, T, t, p_alive=p_alive),
            FAMILY.expected_purchases(params, x, t_x, T, t),
        )
        for k in (0, 2):
            np.testing.assert_array_equal(
                FAMILY.purchase_probability(params, x, t_x, T, t, k, p_alive=p_alive),
                FAMILY.purchase_probability(params, x, t_x, T, t, k),
            )
    np.testing.assert_array_equal(
        FAMILY.discounted_expected_residual_transactions(params, x, t_x, T, 0.01, p_alive=p_alive),
        FAMILY.discounted_expected_residual_transactions(params, x, t_x, T, 0.01),
    )
    grid = np.array([13.0, 26.0])
    np.testing.assert_array_equal(
        FAMILY.sample_future_purchases(params, x, t_x, T, grid, np.random.default_rng(1), p_alive),
        FAMILY.sample_future_purchases(params, x, t_x, T, grid, np.random.default_rng(1)),
    )
    # nothing is remembered between calls: an input changed in place gives a fresh answer
    before = FAMILY.probability_alive(params, x, t_x, T)
    t_x[x > 0] = T[x > 0]
    after = FAMILY.probability_alive(params, x, t_x, T)
    assert np.all(after[:, x > 0] >= before[:, x > 0]) and np.any(after > before)
