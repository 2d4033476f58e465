"""MBG/NBD: BTYDplus CDNOW estimates, math against lifetimes, gradients, sampler, recovery."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import clvmodels as clv
from clvmodels.families import mbg_nbd as mbm
from clvmodels.registry import ModifiedBetaGeo

FAMILY = mbm.ModifiedBetaGeoNBDFamily()


@pytest.fixture(scope="module")
def fitted(cdnow):
    return ModifiedBetaGeo().fit(cdnow)


def _params(r, alpha, a, b):
    return {
        k: np.array([[v]]) for k, v in zip(("r", "alpha", "a", "b"), (r, alpha, a, b), strict=True)
    }


def test_btydplus_cdnow_estimates(fitted):
    # BTYDplus (mbgcnbd with k = 1) and lifetimes' test: r=0.525, alpha=6.183, a=0.891, b=1.614
    expected = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}
    for name, value in expected.items():
        assert fitted.params_[name] == pytest.approx(value, abs=6e-4)
    assert fitted.converged_
    assert fitted.log_likelihood_ == pytest.approx(-9582.13, abs=0.01)
    # x=0 customers may be inactive under MBG/NBD
    one = pd.DataFrame({"frequency": [0], "recency": [0.0], "T": [1.0]})
    one.attrs["time_unit"] = "W"
    assert fitted.probability_alive(one).iloc[0] < 1.0


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    n = 300
    x = rng.integers(0, 40, n).astype(float)
    x[:4] = [0, 1, 3000, 10]
    T = rng.uniform(1, 500, n)
    t_x = np.where(x > 0, rng.uniform(0, 1, n) * T, 0.0)
    counts = rng.integers(1, 5, n).astype(float)
    for log_params in (np.log([0.5, 6.0, 0.9, 1.6]), np.log([3.0, 0.5, 8.0, 0.2])):
        value, grad = mbm.negative_log_likelihood(log_params, x, t_x, T, counts)
        rows = mbm.log_likelihood(*np.exp(log_params), x, t_x, T)
        assert value == pytest.approx(-(counts @ rows), rel=1e-12)
        h = 1e-6
        for j in range(4):
            e = np.eye(4)[j] * h
            fd = (
                mbm.negative_log_likelihood(log_params + e, x, t_x, T, counts)[0]
                - mbm.negative_log_likelihood(log_params - e, x, t_x, T, counts)[0]
            ) / (2 * h)
            assert grad[j] == pytest.approx(fd, rel=1e-5, abs=1e-4)


def test_math_matches_lifetimes_at_identical_params(cdnow):
    from lifetimes import ModifiedBetaGeoFitter

    lf = ModifiedBetaGeoFitter()
    values = {"r": 0.45, "alpha": 5.0, "a": 1.4, "b": 2.2}
    lf.params_ = pd.Series(values)
    p = _params(**values)
    x, t_x, T = (cdnow[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    for t in (1.0, 39.0, 300.0):
        np.testing.assert_allclose(
            FAMILY.expected_purchases(p, x, t_x, T, t)[0],
            lf.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, T),
            rtol=1e-6,
        )
    np.testing.assert_allclose(
        FAMILY.probability_alive(p, x, t_x, T)[0],
        lf.conditional_probability_alive(x, t_x, T),
        rtol=1e-6,
    )
    ts = np.array([0.1429, 1.0, 3.0, 31.8571, 78.0, 500.0])
    np.testing.assert_allclose(
        FAMILY.expected_purchases_new_customer(p, ts)[0],
        lf.expected_number_of_purchases_up_to_time(ts),
        rtol=1e-6,
    )
    for k in range(6):
        ours = np.ravel(FAMILY.purchase_probability(p, 0.0, 0.0, 0.0, 30.0, k))[0]
        assert ours == pytest.approx(
            float(lf.probability_of_n_purchases_up_to_time(30.0, k)), rel=1e-6
        )


def test_purchase_probability_distribution(fitted, cdnow):
    sub = cdnow.iloc[:40]
    probs = np.column_stack(
        [fitted.purchase_probability(sub, 52, k).to_numpy() for k in range(200)]
    )
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-8)
    np.testing.assert_allclose(
        probs @ np.arange(200), fitted.expected_purchases(sub, 52), rtol=1e-6
    )


def test_sampler_mean_matches_expectation(fitted):
    rng = np.random.default_rng(7)
    n = 40000
    params = {k: np.full((n, 1), v) for k, v in fitted.params_.items()}
    x = np.array([0.0, 2.0, 12.0])
    t_x = np.array([0.0, 30.43, 20.0])
    T = np.array([38.86, 38.86, 38.86])
    grid = np.array([10.0, 39.0, 104.0])
    counts = FAMILY.sample_future_purchases(params, x, t_x, T, grid, rng)
    assert counts.shape == (n, 3, 3)
    one = {k: v[:1] for k, v in params.items()}
    for j, t in enumerate(grid):
        expected = FAMILY.expected_purchases(one, x, t_x, T, t)[0]
        se = counts[..., j].std(axis=0) / np.sqrt(n)
        assert np.all(np.abs(counts[..., j].mean(axis=0) - expected) < 4.5 * se + 1e-3)
    summary = pd.DataFrame(
        {"frequency": x, "recency": t_x, "T": T}, index=pd.Index([7, 8, 9], name="customer_id")
    )
    summary.attrs["time_unit"] = "W"
    draws = fitted.conditional_latent_draws(summary, n=20000, seed=1)
    frac = draws.groupby("customer_id")["alive"].mean().to_numpy()
    np.testing.assert_allclose(frac, FAMILY.probability_alive(one, x, t_x, T)[0], atol=0.015)


def test_lifetimes_engine(fitted, cdnow):
    lt = ModifiedBetaGeo(engine="lifetimes").fit(cdnow)
    np.testing.assert_allclose(lt.params_, fitted.params_, rtol=1e-4)
    np.testing.assert_allclose(
        lt.expected_purchases(cdnow, 39), fitted.expected_purchases(cdnow, 39), rtol=1e-4
    )


def test_extreme_customers_are_finite(fitted):
    s = pd.DataFrame(
        {
            "frequency": [0, 1, 5000, 20000, 3],
            "recency": [0.0, 0.0, 9999.0, 1e5, 0.0],
            "T": [0.0, 1e5, 1e4, 1e5, 1e6],
        }
    )
    s.attrs["time_unit"] = "W"
    alive = fitted.probability_alive(s)
    assert ((alive >= 0) & (alive <= 1)).all()
    for t in (0.0, 52.0, 1e4):
        e = fitted.expected_purchases(s, t)
        assert np.isfinite(e).all() and (e >= 0).all()


def test_parameter_recovery_coverage():
    truth = {"r": 0.5, "alpha": 6.0, "a": 0.7, "b": 2.5}
    covered = np.zeros(4)
    n_sets = 16
    for seed in range(n_sets):
        s = clv.simulate.simulate_modified_beta_geo(
            2500, **truth, T=np.linspace(20, 80, 2500), seed=100 + seed
        )
        table = ModifiedBetaGeo().fit(s).summary()
        covered += [
            table.loc[k, "lower_95%"] <= v <= table.loc[k, "upper_95%"] for k, v in truth.items()
        ]
    assert stats.binom.cdf(covered.min(), n_sets, 0.95) > 1e-3, covered
