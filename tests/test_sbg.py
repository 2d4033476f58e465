"""sBG and beta-discrete-Weibull: published values, the math against direct sums and Monte
Carlo, the gradients, BdW with c = 1 against sBG, parameter recovery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy.special import betaln

import clvmodels as clv
from clvmodels.errors import InputError
from clvmodels.families import beta_discrete_weibull as bdw
from clvmodels.families import shifted_beta_geo as sbg
from clvmodels.families.beta_discrete_weibull import BetaDiscreteWeibullFamily
from clvmodels.families.shifted_beta_geo import ShiftedBetaGeoFamily
from clvmodels.subscriptions import (
    compare_retention_models,
    expected_survivors,
    project_survivors,
    retention_curve,
    survival_curve,
    table_from_survivors,
)

DATA = Path(__file__).parent / "data" / "fader_hardie_2007_survivors.csv"
SURVIVORS = pd.read_csv(DATA, index_col="year")
# Fader & Hardie (2007), fitted on years 0-7
PUBLISHED = {
    "regular": {"alpha": 0.704, "beta": 1.182, "log_likelihood": -1680.27},
    "highend": {"alpha": 0.668, "beta": 3.806, "log_likelihood": -1611.16},
}


def calibration(cohort: str, **kwargs) -> pd.DataFrame:
    return table_from_survivors(SURVIVORS.loc[:7, cohort].tolist(), period="Y", **kwargs)


@pytest.fixture(scope="module")
def fits():
    return {cohort: clv.ShiftedBetaGeo().fit(calibration(cohort)) for cohort in PUBLISHED}


# --------------------------------------------------------------------------------------------
# published values
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cohort", list(PUBLISHED))
def test_fader_hardie_2007_estimates(fits, cohort):
    model, published = fits[cohort], PUBLISHED[cohort]
    assert model.converged_
    assert model.params_["alpha"] == pytest.approx(published["alpha"], abs=5e-4)
    assert model.params_["beta"] == pytest.approx(published["beta"], abs=5e-4)
    assert model.log_likelihood_ == pytest.approx(published["log_likelihood"], abs=5e-3)


@pytest.mark.parametrize("cohort", list(PUBLISHED))
def test_projected_survivors_years_8_to_12_contain_the_actuals(fits, cohort):
    """The projection of the 1,000-customer cohort for years 8-12 from years 0-7: FH 2007's
    projections lie a few customers below the actuals (sBG ignores nothing else); the 95%
    predictive interval (parameter uncertainty, each survivor's churn probability and lifetime)
    contains every actual."""
    model = fits[cohort]
    actual = SURVIVORS.loc[8:12, cohort].to_numpy(float)
    projection = project_survivors(model, calibration(cohort), 5, draws=400, interval=0.95, seed=1)
    assert np.all(projection["lower"].to_numpy() <= actual)
    assert np.all(actual <= projection["upper"].to_numpy())
    # the expectation: the survivors at 7 times S(7 + k) / S(7); FH 2007's projection (their
    # Figure 3) is the unconditional 1000 S(7 + k), a little lower since S(7) < survivors / 1000
    alpha, beta = model.params_
    t = np.arange(8, 13)
    survival = np.exp(betaln(alpha, beta + t) - betaln(alpha, beta))
    at_seven = np.exp(betaln(alpha, beta + 7) - betaln(alpha, beta))
    conditional = SURVIVORS.loc[7, cohort] * survival / at_seven
    np.testing.assert_allclose(projection["expected"].to_numpy(), conditional, rtol=1e-10)
    direct = 1000 * survival
    assert np.all(np.abs(projection["mean"] - projection["expected"]) < 4)
    assert np.max(np.abs(direct - actual) / actual) < 0.05


def test_compressed_table_fits_the_same(fits):
    table = calibration("regular", expand=False)
    assert len(table) == 8
    model = clv.ShiftedBetaGeo().fit(table, weights=table["customers"])
    np.testing.assert_allclose(model.params_, fits["regular"].params_, rtol=1e-6)
    assert model.log_likelihood_ == pytest.approx(fits["regular"].log_likelihood_, rel=1e-10)
    a = project_survivors(model, table, 3, draws=50, seed=2)
    b = expected_survivors(fits["regular"], calibration("regular"), 3)
    np.testing.assert_allclose(a["expected"], b, rtol=1e-6)


def test_curves_and_their_intervals(fits):
    model = fits["regular"]
    alpha, beta = model.params_
    t = np.arange(0, 13)
    curve = survival_curve(model, t, draws=200, seed=0)
    np.testing.assert_allclose(
        curve["survival"], np.exp(betaln(alpha, beta + t) - betaln(alpha, beta)), rtol=1e-12
    )
    assert np.all(curve["lower"] <= curve["survival"] + 1e-12)
    assert np.all(curve["survival"] <= curve["upper"] + 1e-12)
    # FH 2007 eq. 6: r_t = (beta + t - 1) / (alpha + beta + t - 1), rising with t
    retention = retention_curve(model, np.arange(1, 13), draws=0)
    expected = (beta + np.arange(1, 13) - 1) / (alpha + beta + np.arange(1, 13) - 1)
    np.testing.assert_allclose(retention["retention"], expected, rtol=1e-12)
    assert np.all(np.diff(retention["retention"]) > 0)
    with pytest.raises(InputError, match="t >= 1"):
        retention_curve(model, [0, 1], draws=0)


# --------------------------------------------------------------------------------------------
# gradients and BdW with c = 1
# --------------------------------------------------------------------------------------------
def _rows(family, cohort="highend"):
    return family.fit_rows(calibration(cohort))


@pytest.mark.parametrize(
    ("family", "log_params"),
    [
        (ShiftedBetaGeoFamily(), np.log([0.7, 1.3])),
        (BetaDiscreteWeibullFamily(), np.log([0.7, 1.3, 0.6])),
        (BetaDiscreteWeibullFamily(), np.log([2.0, 0.4, 1.7])),
    ],
)
def test_gradient_matches_finite_differences(family, log_params):
    rows = _rows(family)
    value, gradient = family.negative_log_likelihood(log_params, rows)
    numeric = optimize.approx_fprime(
        log_params, lambda lp: family.negative_log_likelihood(lp, rows)[0], 1e-7
    )
    assert np.isfinite(value)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-4)


def test_bdw_with_c_one_is_sbg():
    s, b = ShiftedBetaGeoFamily(), BetaDiscreteWeibullFamily()
    rows = _rows(s, "regular")
    for alpha, beta in [(0.704, 1.182), (3.0, 0.2), (0.05, 40.0)]:
        lp = np.log([alpha, beta])
        assert b.negative_log_likelihood(np.append(lp, 0.0), rows)[0] == pytest.approx(
            s.negative_log_likelihood(lp, rows)[0], rel=1e-12
        )
    tenure = np.array([0.0, 1, 2, 7, 30, 200, 5])
    churned = np.array([0.0, 0, 1, 0, 0, 1, 1])
    p2 = {"alpha": np.array([[0.7], [2.0]]), "beta": np.array([[1.2], [0.3]])}
    p3 = {**p2, "c": np.ones((2, 1))}
    data = {"tenure": tenure, "churned": churned}
    # P(T = t) as S(t-1) - S(t) in log space: rounding of about 1e-12 relative at t = 200
    np.testing.assert_allclose(b.log_likelihood(p3, data), s.log_likelihood(p2, data), rtol=1e-11)
    for t in (1.0, 4.5, 12.0):
        np.testing.assert_allclose(
            b.expected_purchases(p3, tenure, churned, t),
            s.expected_purchases(p2, tenure, churned, t),
            rtol=1e-12,
        )
    np.testing.assert_allclose(
        b.discounted_expected_residual_transactions(p3, tenure, churned, 0.1),
        s.discounted_expected_residual_transactions(p2, tenure, churned, 0.1),
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        b.survival(p3, np.arange(20.0)), s.survival(p2, np.arange(20.0)), rtol=1e-12
    )


def test_bdw_fit_on_the_published_cohorts_nests_sbg(fits):
    """BdW's likelihood is at least sBG's; model choice by likelihood ratio and holdout."""
    for cohort in PUBLISHED:
        table = calibration(cohort)
        model = clv.BetaDiscreteWeibull().fit(table)
        assert model.converged_
        assert model.log_likelihood_ >= fits[cohort].log_likelihood_ - 1e-8
        comparison = compare_retention_models(
            {"sBG": fits[cohort], "BdW": model}, table, SURVIVORS.loc[8:12, cohort]
        )
        assert list(comparison.index) == ["sBG", "BdW"]
        assert comparison.loc["sBG", "holdout_mape"] < 0.05
        assert 0 <= comparison.loc["BdW", "lr_pvalue"] <= 1
        assert np.isnan(comparison.loc["sBG", "lr_pvalue"])


# --------------------------------------------------------------------------------------------
# predictions against direct sums and Monte Carlo
# --------------------------------------------------------------------------------------------
PARAMS = {"alpha": np.array([[0.9]]), "beta": np.array([[2.5]])}
TENURE = np.array([0.0, 1.0, 3.0, 7.0, 25.0, 4.0])
CHURNED = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.0])


def _ratio(alpha, beta, n, k, c=1.0):
    return np.exp(betaln(alpha, beta + (n + k) ** c) - betaln(alpha, beta + n**c))


@pytest.mark.parametrize("c", [None, 0.6, 1.4])
def test_expected_payments_and_probabilities_are_direct_sums(c):
    family = ShiftedBetaGeoFamily() if c is None else BetaDiscreteWeibullFamily()
    params = PARAMS if c is None else {**PARAMS, "c": np.array([[c]])}
    exponent = 1.0 if c is None else c
    for t in (0.0, 0.99, 1.0, 2.5, 10.0, 10.0 - 1e-12):
        got = np.asarray(family.expected_purchases(params, TENURE, CHURNED, t))[0]
        whole = int(np.floor(t + 1e-9))
        want = [
            0.0 if gone else sum(_ratio(0.9, 2.5, n, k, exponent) for k in range(1, whole + 1))
            for n, gone in zip(TENURE, CHURNED, strict=True)
        ]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    # P(k payments in the next 6 periods) sums to 1 and has the expected mean
    probabilities = np.stack(
        [
            np.asarray(family.purchase_probability(params, TENURE, CHURNED, 6.0, k))[0]
            for k in range(8)
        ]
    )
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, rtol=1e-12)
    mean = np.arange(8) @ probabilities
    np.testing.assert_allclose(
        mean, np.asarray(family.expected_purchases(params, TENURE, CHURNED, 6.0))[0], rtol=1e-12
    )


@pytest.mark.parametrize("c", [None, 0.6, 1.4])
def test_sampled_payments_match_the_expectation(c):
    family = ShiftedBetaGeoFamily() if c is None else BetaDiscreteWeibullFamily()
    params = PARAMS if c is None else {**PARAMS, "c": np.array([[c]])}
    n = 40_000
    rng = np.random.default_rng(7)
    grid = np.array([1.0, 2.0, 5.0, 12.0])
    cumulative = family.sample_future_purchases(
        {k: np.repeat(v, n, axis=0) for k, v in params.items()}, TENURE, CHURNED, grid, rng
    )
    assert cumulative.shape == (n, len(TENURE), len(grid))
    assert cumulative.dtype == np.int64
    assert np.all(cumulative[:, CHURNED > 0] == 0)
    assert np.all(np.diff(cumulative, axis=-1) >= 0)
    for j, t in enumerate(grid):
        expected = np.asarray(family.expected_purchases(params, TENURE, CHURNED, t))[0]
        sampled = cumulative[..., j].mean(axis=0)
        se = cumulative[..., j].std(axis=0) / np.sqrt(n) + 1e-12
        assert np.all(np.abs(sampled - expected) < 5 * se)
    # the sparse form carries the same paths
    shape, pairs, per_period = family.sample_future_purchase_periods(
        {k: np.repeat(v, 2000, axis=0) for k, v in params.items()},
        TENURE,
        CHURNED,
        grid,
        np.random.default_rng(1),
    )
    assert shape == (2000, len(TENURE))
    assert np.all(per_period.sum(axis=1) > 0)
    assert np.all(per_period <= np.diff(grid, prepend=0.0))


def test_dert_closed_form_series_and_fader_hardie_derl():
    alpha, beta, delta = 0.668, 3.806, np.log(1.1)
    tenure = np.array([0.0, 1.0, 4.0, 50.0, 3.0])
    churned = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    closed = sbg.discounted_expected_residual_payments(alpha, beta, tenure, churned, delta)
    series = sbg.discounted_payments_series(alpha, beta, tenure, churned, delta)
    brute = [
        0.0
        if gone
        else np.sum(_ratio(alpha, beta, n, np.arange(1, 5000)) / 1.1 ** np.arange(1, 5000))
        for n, gone in zip(tenure, churned, strict=True)
    ]
    np.testing.assert_allclose(closed, brute, rtol=1e-12)
    np.testing.assert_allclose(series, brute, rtol=1e-12)
    # a rate per customer is not mistaken for shared parameters (distinct tenures computed once)
    rates = np.array([0.05, 0.1, 0.2, 0.1, 0.3])
    one_by_one = [
        sbg.discounted_expected_residual_payments(
            alpha, beta, tenure[i : i + 1], churned[i : i + 1], r
        )
        for i, r in enumerate(rates)
    ]
    np.testing.assert_allclose(
        sbg.discounted_expected_residual_payments(alpha, beta, tenure, churned, rates),
        np.concatenate(one_by_one),
        rtol=1e-14,
    )
    # FH 2010 eq. 6 counts the upcoming renewal undiscounted: (1 + d) x DERT
    derl = sbg.discounted_expected_residual_lifetime(alpha, beta, tenure[:4], 0.1)
    np.testing.assert_allclose(derl, 1.1 * closed[:4], rtol=1e-12)
    # FH 2010 eq. 6 for n = 1 (no renewal made yet): sum_{t>=1} S(t) / 1.1^(t-1)
    t = np.arange(1, 5000)
    first = np.sum(np.exp(betaln(alpha, beta + t) - betaln(alpha, beta)) / 1.1 ** (t - 1))
    assert derl[0] == pytest.approx(first, rel=1e-12)
    with pytest.raises(InputError, match="positive"):
        sbg.discounted_expected_residual_lifetime(alpha, beta, 1.0, 0.0)


def test_likelihood_formula_serves_other_backends():
    """The likelihood takes the log-beta function (e.g. PyTensor's) as an argument; the
    per-row values equal the direct probabilities."""
    calls = []

    def betaln_spy(a, b):
        calls.append(1)
        return betaln(a, b)

    value = sbg.log_likelihood(0.7, 1.2, np.array([3.0, 3.0]), np.array([1.0, 0.0]), betaln_spy)
    np.testing.assert_allclose(
        value,
        [betaln(1.7, 3.2) - betaln(0.7, 1.2), betaln(0.7, 4.2) - betaln(0.7, 1.2)],
        rtol=1e-14,
    )
    assert calls
    lost = bdw.log_churn_probability(0.7, 1.2, 0.5, np.array([2.0]))
    direct = np.log(
        np.exp(betaln(0.7, 1.2 + 1.0) - betaln(0.7, 1.2))
        - np.exp(betaln(0.7, 1.2 + 2.0**0.5) - betaln(0.7, 1.2))
    )
    np.testing.assert_allclose(lost, direct, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# simulation and parameter recovery
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cls", "true"),
    [
        ("ShiftedBetaGeo", {"alpha": 0.8, "beta": 2.2}),
        ("BetaDiscreteWeibull", {"alpha": 1.2, "beta": 2.5, "c": 0.7}),
        ("BetaDiscreteWeibull", {"alpha": 0.6, "beta": 3.0, "c": 1.5}),
    ],
)
def test_parameter_recovery(cls, true):
    estimator = getattr(clv, cls)
    family = estimator.family_class()
    n = 60_000
    periods = np.random.default_rng(3).integers(1, 25, size=n).astype(float)
    drawn = family.simulate(true, periods, None, np.random.default_rng(11))
    table = pd.DataFrame({"tenure": drawn["tenure"], "churned": drawn["churned"]})
    table.attrs["time_unit"] = "M"
    model = estimator().fit(table)
    assert model.converged_
    assert model.rows_.n_rows <= 2 * 25
    summary = model.summary(interval=0.999)
    for name, value in true.items():
        assert summary.loc[name, "lower_100%"] <= value <= summary.loc[name, "upper_100%"], name
        assert model.params_[name] == pytest.approx(value, rel=0.15)


def test_simulated_cohort_follows_the_survival_function():
    family = BetaDiscreteWeibullFamily()
    params = {"alpha": 0.9, "beta": 1.8, "c": 0.8}
    drawn = family.simulate(params, np.full(100_000, 10.0), 4, np.random.default_rng(5))
    tenure, churned = drawn["tenure"], drawn["churned"]
    for t in (1, 3, 9):
        share = np.mean(~churned | (tenure > t))
        assert share == pytest.approx(float(family.survival(params, t)), abs=0.006)
    active = ~churned
    holdout = drawn["payments_holdout"][active]
    expected = np.asarray(
        family.expected_purchases(params, np.full(1, 10.0), np.zeros(1), 4.0)
    ).ravel()[0]
    assert holdout.mean() == pytest.approx(expected, rel=0.03)
    assert np.all(drawn["churned_holdout"][churned])


def test_identification_problems_are_input_errors():
    table = pd.DataFrame({"tenure": [3, 4, 5], "churned": [False, False, False]})
    table.attrs["time_unit"] = "M"
    with pytest.raises(InputError, match="no customer churned"):
        clv.ShiftedBetaGeo().fit(table)
    table = pd.DataFrame({"tenure": [1, 1, 0], "churned": [True, False, False]})
    table.attrs["time_unit"] = "M"
    with pytest.raises(InputError, match="beyond their first period"):
        clv.ShiftedBetaGeo().fit(table)
    table = pd.DataFrame({"tenure": [1, 2, 2], "churned": [True, True, False]})
    table.attrs["time_unit"] = "M"
    with pytest.raises(InputError, match="second period"):
        clv.BetaDiscreteWeibull().fit(table)


@pytest.mark.parametrize("c", [1.0, 0.6, 1.5])
def test_latent_churn_probability_is_drawn_from_its_posterior(c):
    """Active: Beta(alpha, beta + n^c); churned at n: E[theta | T = n] =
    (B(a+1, b+(n-1)^c) - B(a+1, b+n^c)) / (B(a, b+(n-1)^c) - B(a, b+n^c))."""
    family = BetaDiscreteWeibullFamily()
    a, b = 0.9, 2.5
    params = {"alpha": np.full((20_000, 1), a), "beta": np.full((20_000, 1), b), "c": c}
    tenure = np.array([3.0, 3.0, 1.0])
    churned = np.array([0.0, 1.0, 1.0])
    latent = family.sample_latent(params, tenure, churned, np.random.default_rng(2))
    theta = latent["theta"]
    assert np.all(latent["alive"] == (churned == 0))

    def beta_fn(x, y):
        return np.exp(betaln(x, y))

    active_mean = a / (a + b + 3.0**c)
    for j, n in ((1, 3.0), (2, 1.0)):
        before, after = b + (n - 1.0) ** c, b + n**c
        mean = (beta_fn(a + 1, before) - beta_fn(a + 1, after)) / (
            beta_fn(a, before) - beta_fn(a, after)
        )
        se = theta[:, j].std() / np.sqrt(len(theta))
        assert abs(theta[:, j].mean() - mean) < 5 * se
    assert abs(theta[:, 0].mean() - active_mean) < 5 * theta[:, 0].std() / np.sqrt(len(theta))


def test_static_covariates_scale_alpha_and_beta():
    """``alpha_i = alpha exp(dropout' z_i)``, ``beta_i = beta exp(purchase' z_i)`` through the
    estimators' covariate machinery: recovered on simulated data, and a covariate-free fit
    when the covariate does nothing."""
    rng = np.random.default_rng(0)
    n = 30_000
    z = rng.integers(0, 2, n).astype(float)
    drawn = sbg.simulate_subscribers(
        0.8 * np.exp(0.5 * z), 2.0 * np.exp(-0.4 * z), np.full(n, 24.0), None, rng
    )
    table = pd.DataFrame({"tenure": drawn["tenure"], "churned": drawn["churned"], "z": z})
    table.attrs["time_unit"] = "M"
    model = clv.ShiftedBetaGeo(dropout_covariates=["z"], purchase_covariates=["z"]).fit(table)
    summary = model.summary(interval=0.999)
    for name, value in {"alpha": 0.8, "beta": 2.0, "dropout.z": 0.5, "purchase.z": -0.4}.items():
        assert summary.loc[name, "lower_100%"] <= value <= summary.loc[name, "upper_100%"], name
    # a customer's expected renewals use their own alpha_i, beta_i
    both = table.iloc[[0]].assign(z=[0.0], churned=[False], tenure=[5])
    both = pd.concat([both, both.assign(z=[1.0])])
    both.index = ["z0", "z1"]
    both.attrs["time_unit"] = "M"
    alpha, beta = model.params_["alpha"], model.params_["beta"]
    gamma_a, gamma_b = model.params_["dropout.z"], model.params_["purchase.z"]
    got = model.expected_purchases(both, 12)
    for key, zz in (("z0", 0.0), ("z1", 1.0)):
        a, b = alpha * np.exp(gamma_a * zz), beta * np.exp(gamma_b * zz)
        k = np.arange(1, 13)
        want = np.sum(np.exp(betaln(a, b + 5 + k) - betaln(a, b + 5)))
        assert got[key] == pytest.approx(want, rel=1e-10)


def test_per_row_gradients_match_the_total():
    for family, params in (
        (ShiftedBetaGeoFamily(), {"alpha": 0.7, "beta": 1.3}),
        (BetaDiscreteWeibullFamily(), {"alpha": 0.7, "beta": 1.3, "c": 0.6}),
    ):
        rows = _rows(family)
        data = {"tenure": rows["tenure"], "churned": rows["churned"]}
        ll, per_row = family.log_likelihood_gradient(params, data)
        value, gradient = family.negative_log_likelihood(
            np.log([params[n] for n in family.param_names]), rows
        )
        assert -(rows.counts @ ll) == pytest.approx(value, rel=1e-12)
        np.testing.assert_allclose(-(rows.counts @ per_row), gradient, rtol=1e-12)
        np.testing.assert_allclose(ll, family.log_likelihood(params, data), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# extreme but valid inputs
# --------------------------------------------------------------------------------------------
positive = st.floats(min_value=-3.0, max_value=3.0).map(lambda v: float(10.0**v))


@settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    alpha=positive,
    beta=positive,
    c=st.floats(min_value=0.2, max_value=3.0),
    tenure=st.lists(st.integers(0, 100_000), min_size=1, max_size=5),
    horizon=st.floats(min_value=0.0, max_value=60.0),
    rate=st.floats(min_value=0.005, max_value=2.0),
)
def test_predictions_are_well_behaved(alpha, beta, c, tenure, horizon, rate):
    """For any parameters: log-likelihoods are finite and <= 0, expected payments lie in
    [0, whole periods] and grow with the horizon, DERT lies in [0, x / (1 - x)], or a
    NumericalError says the value cannot be given."""
    family = BetaDiscreteWeibullFamily()
    params = {"alpha": np.array([[alpha]]), "beta": np.array([[beta]]), "c": np.array([[c]])}
    n = np.asarray(tenure, dtype=float)
    active, gone = np.zeros_like(n), (n > 0).astype(float)
    ll = family.log_likelihood(params, {"tenure": n, "churned": gone})
    assert np.all(np.isfinite(ll)) and np.all(ll <= 1e-12)
    try:
        short = np.asarray(family.expected_purchases(params, n, active, horizon))
        longer = np.asarray(family.expected_purchases(params, n, active, horizon + 1.0))
        dert = np.asarray(family.discounted_expected_residual_transactions(params, n, active, rate))
        closed = np.asarray(
            ShiftedBetaGeoFamily().discounted_expected_residual_transactions(
                {"alpha": params["alpha"], "beta": params["beta"]}, n, active, rate
            )
        )
    except clv.errors.NumericalError:
        return
    assert np.all((0 <= short) & (short <= np.floor(horizon + 1e-9) + 1e-9))
    assert np.all(longer >= short - 1e-9)
    bound = np.exp(-rate) / -np.expm1(-rate) * (1 + 1e-9)
    assert np.all((0 <= dert) & (dert <= bound))
    assert np.all((0 <= closed) & (closed <= bound))
