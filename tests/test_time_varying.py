"""The time-varying Pareto/NBD (Bachmann, Meierer & Naef 2021) against CLVTools on the apparel
data (REFERENCE values copied below), the plain Pareto/NBD as its zero-coefficient case, the
analytic gradient, the samplers, parameter recovery and the input checks."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clvmodels as clv
from clvmodels.errors import InputError
from clvmodels.estimators.time_varying import simulate_transactions
from clvmodels.families import pareto_nbd_dyncov as dyncov

DATA = Path(__file__).parent / "data"
COLUMNS = ["high_season", "gender", "channel"]
# CLVTools 0.12.1, pnbd() with apparelDynCov, high_season + gender + channel on both processes,
# 104-week calibration to 2006-12-31 (values copied from the R packages' reference runs)
CLVTOOLS = {
    "r": 1.977741,
    "alpha": 115.1779,
    "s": 2.012733,
    "beta": 158.1818,
    "purchase.high_season": 0.7182713,
    "purchase.gender": 0.2649019,
    "purchase.channel": 0.6137395,
    "dropout.high_season": -2.482672,
    "dropout.gender": -0.5124722,
    "dropout.channel": 0.5057316,
}
CLVTOOLS_LOG_LIKELIHOOD = -5752.9367
# CLVTools' own Nelder-Mead restarted three times from its estimate with reltol 1e-12
# (benchmarks/r/clvtools_dyncov_restarts.R, run with R 4.2.2 and CLVTools 0.12.1): its
# log-likelihood still rising, printed to 4 decimals
CLVTOOLS_RESTARTED = {
    "r": 2.0282,
    "alpha": 117.35,
    "s": 1.5464,
    "beta": 114.54,
    "purchase.high_season": 0.71988,
    "purchase.gender": 0.25879,
    "purchase.channel": 0.62216,
    "dropout.high_season": -2.9064,
    "dropout.gender": -0.53691,
    "dropout.channel": 0.53607,
}
CLVTOOLS_RESTARTED_LOG_LIKELIHOOD = -5752.7335
CLVTOOLS_HOLDOUT_SUM = 1074.36
CLVTOOLS_MAE = 1.8578
HOLDOUT_END = "2010-12-20"


@pytest.fixture(scope="module")
def transactions():
    return pd.read_csv(DATA / "apparel_transactions.csv")


@pytest.fixture(scope="module")
def summary(transactions):
    return clv.rfm_summary(
        transactions,
        "customer_id",
        "date",
        observation_end="2006-12-31",
        time_unit="W",
        after_observation_end="exclude",
    )


@pytest.fixture(scope="module")
def covariates():
    return pd.read_csv(DATA / "apparel_dyncov.csv.gz")


@pytest.fixture(scope="module")
def future():
    return pd.read_csv(DATA / "apparel_dyncov_future.csv.gz")


@pytest.fixture(scope="module")
def fitted(summary, covariates, transactions):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", clv.errors.ConvergenceWarning)
        return clv.TimeVaryingParetoNBD(COLUMNS, COLUMNS).fit(summary, covariates, transactions)


@pytest.fixture(scope="module")
def holdout(transactions, summary):
    days = pd.to_datetime(transactions["date"]).dt.normalize()
    distinct = transactions.assign(day=days).drop_duplicates(["customer_id", "day"])
    inside = distinct[(distinct["day"] > "2006-12-31") & (distinct["day"] <= HOLDOUT_END)]
    counts = inside.groupby("customer_id").size().reindex(summary.index, fill_value=0)
    horizon = (pd.Timestamp(HOLDOUT_END) - pd.Timestamp("2006-12-31")).days / 7
    return counts.to_numpy(dtype=float), horizon


def clvtools_draws(model) -> pd.DataFrame:
    return pd.DataFrame([[CLVTOOLS[n] for n in model.estimate_names]], columns=model.estimate_names)


def theta_of(model, values: dict) -> np.ndarray:
    natural = np.array([values[n] for n in model.estimate_names])
    return np.r_[np.log(natural[:4]), natural[4:]]


def test_likelihood_equals_clvtools_at_its_estimate(fitted):
    """Same model, same conventions: our log-likelihood at CLVTools' estimate is CLVTools'."""
    value, gradient = fitted.family_.negative_log_likelihood(
        theta_of(fitted, CLVTOOLS), fitted.rows_
    )
    assert -value == pytest.approx(CLVTOOLS_LOG_LIKELIHOOD, abs=1e-3)
    # CLVTools' estimate is not a stationary point: it stopped short of the optimum
    assert np.max(np.abs(gradient)) > 1.0


def test_apparel_fit_reaches_a_higher_optimum(fitted):
    assert fitted.log_likelihood_ >= CLVTOOLS_LOG_LIKELIHOOD
    print("\nlog-likelihood", fitted.log_likelihood_, "CLVTools", CLVTOOLS_LOG_LIKELIHOOD)
    print(fitted.summary().round(4).to_string())
    # the higher optimum lies on a boundary: no dropout at all in the high season
    assert fitted.boundary_parameters_ == ["dropout.high_season"]
    assert fitted.params_["dropout.high_season"] < -10
    # the seasonal purchase effect and the channel's agree with CLVTools within 2%
    for name in ("purchase.high_season", "purchase.channel"):
        assert fitted.params_[name] == pytest.approx(CLVTOOLS[name], rel=0.02)
    # the others within 10% (CLVTools stopped short of the optimum, see above)
    for name in ("r", "alpha", "purchase.gender", "dropout.gender", "dropout.channel"):
        assert fitted.params_[name] == pytest.approx(CLVTOOLS[name], rel=0.10)
    se = fitted.standard_errors_.drop("dropout.high_season")
    assert np.all(np.isfinite(se)) and np.all(se > 0)
    assert np.isnan(fitted.standard_errors_["dropout.high_season"])


def test_clvtools_stopped_short_whatever_the_boundary_coefficient(fitted):
    """The gap to CLVTools is not the boundary coefficient's doing: with dropout.high_season
    held at CLVTools' own -2.48, the other nine parameters still climb 0.29 above CLVTools'
    log-likelihood, to a stationary point where r and alpha are 9% and 7.6% above its values
    (s and beta 40% and 48% below: the dropout scale is weakly identified)."""
    from scipy.optimize import minimize

    fixed = fitted.estimate_names.index("dropout.high_season")
    free = [i for i in range(len(fitted.estimate_names)) if i != fixed]
    start = theta_of(fitted, CLVTOOLS)

    def objective(x):
        theta = start.copy()
        theta[free] = x
        value, gradient = fitted.family_.negative_log_likelihood(theta, fitted.rows_)
        return value, gradient[free]

    result = minimize(objective, start[free], jac=True, method="L-BFGS-B",
                      options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-7})  # fmt: skip
    assert np.max(np.abs(result.jac)) < 1e-3  # a stationary point of the nine
    assert -result.fun > CLVTOOLS_LOG_LIKELIHOOD + 0.25
    r, alpha = np.exp(result.x[:2])  # log r and log alpha lead theta
    assert r == pytest.approx(CLVTOOLS["r"] * 1.09, rel=0.01)
    assert alpha == pytest.approx(CLVTOOLS["alpha"] * 1.076, rel=0.01)
    # and the same r and alpha as the unrestricted maximum
    assert r == pytest.approx(fitted.params_["r"], rel=0.005)
    assert alpha == pytest.approx(fitted.params_["alpha"], rel=0.005)


def test_clvtools_continued_climbs_towards_our_maximum_and_its_mae_rises(
    fitted, summary, future, holdout
):
    """Restarted, CLVTools' own optimiser keeps climbing (-5752.94 -> -5752.73, still below
    our -5752.62) and its holdout MAE rises with the likelihood (1.858 -> 1.867; ours 1.877):
    the published 1.858 belongs to an estimate short of the maximum."""
    value, _ = fitted.family_.negative_log_likelihood(
        theta_of(fitted, CLVTOOLS_RESTARTED), fitted.rows_
    )
    assert -value == pytest.approx(CLVTOOLS_RESTARTED_LOG_LIKELIHOOD, abs=1e-3)
    assert CLVTOOLS_LOG_LIKELIHOOD < -value < fitted.log_likelihood_
    actual, horizon = holdout
    model = fitted.with_future_covariates(future)
    draws = pd.DataFrame(
        [[CLVTOOLS_RESTARTED[n] for n in model.estimate_names]], columns=model.estimate_names
    )
    params = model.customer_params(summary, draws)
    expected = model.family_.expected_purchases(
        params, *model.family_.customer_arrays(summary), horizon
    )[0]
    restarted_mae = np.mean(np.abs(actual - expected))
    ours = np.mean(np.abs(actual - model.expected_purchases(summary, horizon).to_numpy()))
    assert CLVTOOLS_MAE + 0.005 < restarted_mae < ours


def test_apparel_holdout_predictions(fitted, summary, future, holdout):
    actual, horizon = holdout
    assert actual.sum() == 1317
    model = fitted.with_future_covariates(future)
    family = model.family_
    customers = family.customer_arrays(summary)
    at_clvtools = model.customer_params(summary, clvtools_draws(model))
    expected = family.expected_purchases(at_clvtools, *customers, horizon)[0]
    assert expected.sum() == pytest.approx(CLVTOOLS_HOLDOUT_SUM, abs=0.01)
    assert np.mean(np.abs(actual - expected)) == pytest.approx(CLVTOOLS_MAE, abs=1e-3)
    at_mle = model.expected_purchases(summary, horizon).to_numpy()
    plain = clv.ParetoNBD().fit(summary).expected_purchases(summary, horizon).to_numpy()
    mae, plain_mae = np.mean(np.abs(actual - at_mle)), np.mean(np.abs(actual - plain))
    print(f"\nholdout sum {at_mle.sum():.2f}, MAE {mae:.4f} (plain Pareto/NBD {plain_mae:.4f})")
    assert mae < plain_mae - 0.1


def test_forecast_past_the_covariates_is_an_error(fitted, summary, future):
    with pytest.raises(InputError, match="never carried forward"):
        fitted.expected_purchases(summary, 300)
    model = fitted.with_future_covariates(future)
    with pytest.raises(InputError, match="never carried forward"):
        model.expected_purchases(summary, 400)
    assert np.all(np.isfinite(model.expected_purchases(summary, 52)))


def test_covariate_table_checks(summary, covariates, transactions):
    model = clv.TimeVaryingParetoNBD(["high_season"], [])
    with pytest.raises(InputError, match="no rows in the covariate table"):
        model.fit(summary, covariates[covariates["customer_id"] != 5], transactions)
    gap = covariates[~((covariates["customer_id"] == 7) & (covariates["date"] == "2006-03-05"))]
    with pytest.raises(InputError, match="does not cover"):
        model.fit(summary, gap, transactions)
    with pytest.raises(InputError, match="no column"):
        model.fit(summary, covariates.drop(columns="high_season"), transactions)
    with pytest.raises(InputError, match="transactions"):
        model.fit(summary, covariates)
    twice = pd.concat([covariates, covariates.iloc[:1]])
    with pytest.raises(InputError, match="given twice"):
        model.fit(summary, twice, transactions)


def test_zero_coefficients_are_the_plain_pareto_nbd(fitted, summary):
    plain = clv.ParetoNBD().fit(summary)
    values = {**plain.params_.to_dict(), **{n: 0.0 for n in fitted.estimate_names[4:]}}
    value, _ = fitted.family_.negative_log_likelihood(theta_of(fitted, values), fitted.rows_)
    assert -value == pytest.approx(plain.log_likelihood_, rel=1e-11)
    draws = pd.DataFrame([values])[list(fitted.estimate_names)]
    params = fitted.customer_params(summary, draws)
    customers = fitted.family_.customer_arrays(summary)
    np.testing.assert_allclose(
        fitted.family_.probability_alive(params, *customers)[0],
        plain.probability_alive(summary).to_numpy(),
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        fitted.family_.expected_purchases(params, *customers, 20.0)[0],
        plain.expected_purchases(summary, 20.0).to_numpy(),
        rtol=1e-9,
    )


def test_gradient_against_finite_differences(fitted):
    theta = fitted.theta_.copy()
    theta[7] = -1.0  # away from the boundary
    _, gradient = fitted.family_.negative_log_likelihood(theta, fitted.rows_)
    for j in range(len(theta)):
        h = 1e-5
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        numeric = (
            fitted.family_.negative_log_likelihood(up, fitted.rows_)[0]
            - fitted.family_.negative_log_likelihood(down, fitted.rows_)[0]
        ) / (2 * h)
        assert gradient[j] == pytest.approx(numeric, rel=1e-5, abs=1e-4)


def test_sampled_purchases_match_the_expectation(fitted, summary, future):
    model = fitted.with_future_covariates(future)
    subset = summary.iloc[:40]
    params = model.customer_params(subset)
    customers = model.family_.customer_arrays(subset)
    repeated = {
        k: np.repeat(v, 4000, axis=0)
        if k in dyncov.PARAM_NAMES or k.endswith("coefficients")
        else v
        for k, v in params.items()
    }
    counts = model.family_.sample_future_purchases(
        repeated, *customers, np.array([26.0, 52.0]), np.random.default_rng(1)
    )
    expected = model.family_.expected_purchases(params, *customers, 52.0)[0]
    mean = counts[..., -1].mean(axis=0)
    se = counts[..., -1].std(axis=0) / np.sqrt(counts.shape[0])
    assert np.all(np.abs(mean - expected) <= 4.5 * se + 1e-3)
    assert np.all(counts[..., 0] <= counts[..., 1])


def test_lifetime_value_runs_through_the_engine(fitted, summary, future, transactions):
    model = fitted.with_future_covariates(future)
    spend_summary = clv.rfm_summary(
        transactions,
        "customer_id",
        "date",
        "amount",
        observation_end="2006-12-31",
        time_unit="W",
        after_observation_end="exclude",
    )
    spend = clv.GammaGamma().fit(spend_summary[spend_summary["monetary_value"] > 0])
    subset = spend_summary.iloc[:50]
    value = clv.lifetime_value(model, spend, subset, horizon="52W")
    assert len(value) == 50 and np.all(np.isfinite(np.asarray(value.select_dtypes("number"))))
    # the expected value sums the covariate-path expectations over the period ends: without
    # discounting it is spend x E[X(T, T+52)]; discounting lowers it, by at most a year's rate
    per_purchase = spend.expected_spend(subset).to_numpy()
    undiscounted = model.expected_purchases(subset, 52).to_numpy() * per_purchase
    flat = clv.lifetime_value(
        model, spend, subset, horizon="52W", kind="point", margin=1.0, annual_discount_rate=0.0
    )
    np.testing.assert_allclose(flat["clv_mean"], undiscounted, rtol=1e-9)
    discounted = clv.lifetime_value(
        model, spend, subset, horizon="52W", kind="point", margin=1.0, annual_discount_rate=0.2
    )["clv_mean"].to_numpy()
    assert np.all(discounted <= undiscounted * (1 + 1e-12))
    assert np.all(discounted >= undiscounted / 1.2 * (1 - 1e-12))


def test_parameter_recovery():
    """Customers acquired on random days of the first half year of a weekly grid, a shared
    seasonal flag (November-December) and a static 0/1 gender, observed for two years."""
    truth = {
        "r": 0.8,
        "alpha": 6.0,
        "s": 0.7,
        "beta": 15.0,
        "purchase.holiday_season": 0.7,
        "purchase.gender": 0.4,
        "dropout.holiday_season": 0.8,
        "dropout.gender": -0.5,
    }
    n = 4000
    rng = np.random.default_rng(7)
    origin = pd.Timestamp("2005-01-02")
    end = origin + pd.Timedelta(weeks=104)
    table = clv.calendar_covariates(
        np.arange(n),
        start=origin,
        end=end,
        month_of_year=False,
        static=pd.DataFrame({"gender": rng.integers(0, 2, n).astype(float)}),
    )
    births = pd.Series(origin + pd.to_timedelta(rng.integers(0, 182, n), unit="D"))
    tx = simulate_transactions(truth, table, births, end, seed=8)
    # one purchase per hour: frequent buyers' purchases on one day stay apart
    summary = clv.rfm_summary(
        tx, "customer_id", "date", observation_end=end, time_unit="W", purchase_period="H"
    )
    columns = ["holiday_season", "gender"]
    model = clv.TimeVaryingParetoNBD(columns, columns).fit(summary, table, tx)
    print("\n", model.summary().round(3).to_string())
    z = (model.params_ - pd.Series(truth)[list(model.estimate_names)]) / model.standard_errors_
    assert np.all(np.abs(z) < 4), z
    assert model.boundary_parameters_ == []


def test_shared_calendar_table_equals_per_customer_table(summary, covariates, transactions):
    """A table without customer_id applies to every customer."""
    season = covariates[covariates["customer_id"] == 1][["date", "high_season"]]
    per_customer = covariates[["customer_id", "date", "high_season"]]
    a = clv.TimeVaryingParetoNBD(["high_season"], ["high_season"])
    b = clv.TimeVaryingParetoNBD(["high_season"], ["high_season"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", clv.errors.ConvergenceWarning)
        a.fit(summary, per_customer, transactions)
        b.fit(summary, season, transactions)
    assert a.log_likelihood_ == pytest.approx(b.log_likelihood_, rel=1e-10)
    assert len(b.rows_.counts) < len(a.rows_.counts)


def test_purchase_probabilities(fitted, summary, future):
    model = fitted.with_future_covariates(future)
    subset = summary.iloc[:30]
    params = model.customer_params(subset)
    customers = model.family_.customer_arrays(subset)
    probabilities = np.stack(
        [model.family_.purchase_probability(params, *customers, 52.0, k)[0] for k in range(60)]
    )
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-6)
    mean = (np.arange(60)[:, None] * probabilities).sum(axis=0)
    expected = model.family_.expected_purchases(params, *customers, 52.0)[0]
    np.testing.assert_allclose(mean, expected, rtol=1e-5, atol=1e-6)
    p0 = model.purchase_probability(subset, 52.0, 0).to_numpy()
    np.testing.assert_allclose(p0, probabilities[0])


def test_json_round_trip_needs_the_covariates_again(fitted, summary, future, covariates):
    import json

    loaded = clv.TimeVaryingParetoNBD.from_dict(json.loads(fitted.to_json()))
    pd.testing.assert_series_equal(loaded.params_, fitted.params_)
    with pytest.raises(InputError, match="no covariate table"):
        loaded.probability_alive(summary)
    attached = loaded.with_future_covariates(pd.concat([covariates, future]))
    np.testing.assert_allclose(
        attached.expected_purchases(summary, 52).to_numpy(),
        fitted.with_future_covariates(future).expected_purchases(summary, 52).to_numpy(),
    )


def test_evaluate_on_a_calibration_holdout_summary(fitted, future, transactions, holdout):
    """evaluation places customers from the calibration end (the summary's observation end is
    the holdout's) and gives the same holdout expectations, intervals and log score."""
    from clvmodels.evaluation import evaluate

    ch = clv.calibration_holdout_summary(
        transactions,
        "customer_id",
        "date",
        calibration_end="2006-12-31",
        observation_end=HOLDOUT_END,
        time_unit="W",
    )
    model = fitted.with_future_covariates(future)
    scores = evaluate(model, ch, n_samples=100, n_draws=20)
    actual, horizon = holdout
    expected = model.expected_purchases(ch, horizon).to_numpy()
    assert scores["purchases_actual_total"] == actual.sum()
    assert scores["purchases_mae"] == pytest.approx(np.mean(np.abs(actual - expected)))
    assert 0.6 < scores["coverage_80"] < 0.95
    assert np.isfinite(scores["log_score"])


def test_discounted_expected_transactions(fitted, summary, future):
    model = fitted.with_future_covariates(future)
    plain = model.expected_purchases(summary, 52).to_numpy()
    nearly = model.discounted_expected_transactions(summary, 52, 1e-9).to_numpy()
    np.testing.assert_allclose(nearly, plain, rtol=1e-8)
    discounted = model.discounted_expected_transactions(summary, 52, 0.5).to_numpy()
    assert np.all(discounted < plain) and np.all(discounted > plain * (1.5**-1.0))
    with pytest.raises(InputError, match="infinite horizon"):
        clv.valuation.dert.discounted_expected_residual_transactions(model, summary)
