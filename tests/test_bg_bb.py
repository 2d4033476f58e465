"""BG/BB (Fader, Hardie & Shang 2010): published estimates, lifetimes' predictions, gradient,
Monte Carlo checks of every prediction against the model's own story, parameter recovery,
extreme inputs, valuation, model files, bad input and the discrete-time summary."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lifetimes import BetaGeoBetaBinomFitter
from lifetimes.datasets import load_donations

import clvmodels as clv
from clvmodels.discrete import discrete_summary
from clvmodels.errors import InputError, NumericalError
from clvmodels.families import bg_bb
from clvmodels.families.bg_bb import BetaGeoBetaBinomFamily

#: FHS 2010 (section 4, the donations data) and lifetimes' documentation
PUBLISHED = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}
PUBLISHED_LOG_LIKELIHOOD = -33225.6
FAMILY = BetaGeoBetaBinomFamily()


@pytest.fixture(scope="module")
def donations() -> pd.DataFrame:
    """The 22 distinct (x, t_x, n) rows of the donations data with their counts (11,104
    donors of the 1995 cohort, 6 yearly opportunities), as the BG/BB summary."""
    table = load_donations().rename(columns={"periods": "n_periods"})
    table.attrs["time_unit"] = "Y"
    return table


@pytest.fixture(scope="module")
def fitted(donations):
    return clv.BetaGeoBetaBinom().fit(donations, weights=donations["weights"])


@pytest.fixture(scope="module")
def donors(donations) -> pd.DataFrame:
    """One row per donor."""
    rows = donations.loc[donations.index.repeat(donations["weights"])]
    out = rows.drop(columns="weights").reset_index(drop=True)
    out.index.name = "customer_id"
    out.attrs["time_unit"] = "Y"
    return out


def arrays(frame):
    return tuple(frame[c].to_numpy(dtype=float) for c in ("frequency", "recency", "n_periods"))


def lifetimes_at(params) -> BetaGeoBetaBinomFitter:
    fitter = BetaGeoBetaBinomFitter()
    fitter.params_ = pd.Series(params, index=list(bg_bb.PARAM_NAMES))
    return fitter


# ---- published values and lifetimes ---------------------------------------------------------
def test_donations_reproduce_the_published_estimates(fitted):
    for name, value in PUBLISHED.items():
        assert fitted.params_[name] == pytest.approx(value, abs=6e-4), name
    assert fitted.log_likelihood_ == pytest.approx(PUBLISHED_LOG_LIKELIHOOD, abs=0.05)
    assert fitted.converged_
    assert fitted.summary()["se"].gt(0).all()


def test_lifetimes_engine_finds_the_same_optimum(donations, fitted):
    other = clv.BetaGeoBetaBinom(engine="lifetimes").fit(donations, weights=donations["weights"])
    np.testing.assert_allclose(other.params_, fitted.params_, rtol=5e-4)
    assert other.log_likelihood_ == pytest.approx(fitted.log_likelihood_, abs=1e-3)
    adapted = clv.from_lifetimes(other.lifetimes_fitter_, time_unit="Y")
    assert type(adapted).__name__ == "BetaGeoBetaBinom"
    assert adapted.log_likelihood_ == pytest.approx(other.log_likelihood_, rel=1e-12)


@pytest.mark.parametrize(
    "params", [tuple(PUBLISHED.values()), (0.3, 4.0, 2.5, 0.8), (25.0, 0.2, 0.05, 40.0)]
)
def test_predictions_equal_lifetimes(donations, params):
    x, t_x, n = arrays(donations)
    peer = lifetimes_at(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for horizon in (1, 5, 10):
            np.testing.assert_allclose(
                bg_bb.conditional_expected_purchases(*params, x, t_x, n, horizon),
                peer.conditional_expected_number_of_purchases_up_to_time(horizon, x, t_x, n),
                rtol=1e-8,
            )
        for future in (0, 1, 4):
            np.testing.assert_allclose(
                bg_bb.probability_alive(*params, x, t_x, n, future),
                peer.conditional_probability_alive(future, x, t_x, n),
                rtol=1e-8,
            )
        peer.data = pd.DataFrame({"frequency": x, "weights": donations["weights"]})
        expected = peer.expected_number_of_transactions_in_first_n_periods(6)["model"]
    frequencies = expected.index.to_numpy(dtype=float)
    ours = bg_bb.frequency_probability(*params, frequencies, 6.0) * donations["weights"].sum()
    np.testing.assert_allclose(ours, expected.to_numpy(), rtol=1e-8)


def test_log_likelihood_equals_lifetimes(donations):
    x, t_x, n = arrays(donations)
    params = tuple(PUBLISHED.values())
    ours = bg_bb.log_likelihood(*params, x, t_x, n)
    peer = BetaGeoBetaBinomFitter._loglikelihood(np.array(params), x, t_x, n)
    np.testing.assert_allclose(ours, peer, rtol=1e-10)


# ---- gradient -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params", [(1.2, 0.75, 0.66, 2.8), (1e-2, 5.0, 30.0, 0.05), (300.0, 40.0, 1.0, 900.0)]
)
def test_gradient_matches_finite_differences(params):
    x = np.array([0, 1, 3, 7, 2, 40, 0, 12], dtype=float)
    t_x = np.array([0, 1, 5, 7, 9, 80, 0, 300], dtype=float)
    n = np.array([6, 6, 6, 11, 30, 100, 0, 1000], dtype=float)
    counts = np.array([3.0, 1.0, 2.0, 1.0, 1.0, 4.0, 2.0, 1.0])
    log_params = np.log(params)
    value, gradient = bg_bb.negative_log_likelihood(log_params, x, t_x, n, counts)
    step = 1e-6
    for j in range(4):
        e = np.zeros(4)
        e[j] = step
        up = bg_bb.negative_log_likelihood(log_params + e, x, t_x, n, counts)[0]
        down = bg_bb.negative_log_likelihood(log_params - e, x, t_x, n, counts)[0]
        numeric = (up - down) / (2 * step)
        assert gradient[j] == pytest.approx(numeric, rel=1e-6, abs=1e-6 * abs(value)), j
    ll, per_row = FAMILY.log_likelihood_gradient(
        dict(zip(bg_bb.PARAM_NAMES, params, strict=True)),
        {"frequency": x, "recency": t_x, "n_periods": n},
    )
    np.testing.assert_allclose(-(counts @ per_row), gradient, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(-(counts @ ll), value, rtol=1e-12)


# ---- closed forms against independent routes -------------------------------------------------
@pytest.mark.parametrize("gamma", [1.0, 1.0 + 1e-13, 1.0 - 1e-9, 0.999, 0.4, 3.0])
def test_survival_sum_near_gamma_one_matches_the_direct_sum(gamma):
    d = np.array([2.5, 80.0, 1e-3])
    for horizon in (1.0, 7.0, 400.0):
        direct = [
            np.sum(np.cumprod((dd + np.arange(horizon)) / (gamma + dd + np.arange(horizon))))
            for dd in d
        ]
        np.testing.assert_allclose(bg_bb.survival_sum(gamma, d, horizon), direct, rtol=1e-10)


def test_dert_closed_form_equals_the_discounted_increments(donations, fitted):
    x, t_x, n = arrays(donations)
    params = tuple(fitted.params_)
    rate = np.log(1.1)
    dert = bg_bb.conditional_dert(*params, x, t_x, n, rate)
    cumulative = [bg_bb.conditional_expected_purchases(*params, x, t_x, n, s) for s in range(800)]
    increments = np.diff(np.array(cumulative), axis=0)
    direct = np.sum(np.exp(-rate * np.arange(1, 800))[:, None] * increments, axis=0)
    np.testing.assert_allclose(dert, direct, rtol=1e-10)
    # FHS 2010 eq. (14) with scipy's 2F1, written out
    from scipy.special import betaln, hyp2f1

    a, b, g, d = params
    ll = bg_bb.log_likelihood(*params, x, t_x, n)
    paper = (
        np.exp(betaln(a + x + 1, b + n - x) - betaln(a, b))
        * np.exp(betaln(g, d + n + 1) - betaln(g, d))
        / 1.1
        * hyp2f1(1.0, d + n + 1.0, g + d + n + 1.0, 1 / 1.1)
        / np.exp(ll)
    )
    np.testing.assert_allclose(dert, paper, rtol=1e-10)
    valued = clv.discounted_expected_residual_transactions(
        fitted, donations, annual_discount_rate=0.1
    )
    # the valuation's continuous rate per year is log(1.1): the same discounting
    np.testing.assert_allclose(np.asarray(valued, dtype=float).ravel(), dert, rtol=1e-10)


@pytest.mark.parametrize(
    "gamma, d, z",
    [(0.657, 8.78, 1 / 1.1), (0.2, 5.0, np.exp(-1e-9)), (3.0, 1000.0, np.exp(-1e-5)),
     (1e-3, 1e3, 0.9), (1e3, 1e-3, 0.9), (60.0, 3.0, 0.99999)],
)  # fmt: skip
def test_dert_series_and_integral_agree(gamma, d, z):
    by_series_or_integral = bg_bb.discounted_survival_sum(gamma, d, z)
    by_integral = bg_bb.discounted_survival_sum(gamma, d, z, max_terms=0)
    np.testing.assert_allclose(by_series_or_integral, by_integral, rtol=1e-9)


def test_dert_never_returns_an_unconfirmed_2f1(monkeypatch):
    """A wrong 2F1 is replaced by the certified independent value; where that is not
    certified either, a NumericalError."""
    series = bg_bb.discounted_survival_sum(0.657, 8.78, 1 / 1.1)
    integral = bg_bb.discounted_survival_sum(0.2, 5.0, np.exp(-1e-4), max_terms=0)
    from scipy.special import hyp2f1

    monkeypatch.setattr(bg_bb, "hyp2f1", lambda *args: 1.5 * hyp2f1(*args))
    assert bg_bb.discounted_survival_sum(0.657, 8.78, 1 / 1.1) == pytest.approx(series, rel=1e-12)
    assert bg_bb.discounted_survival_sum(0.2, 5.0, np.exp(-1e-4), max_terms=0) == pytest.approx(
        integral, rel=1e-12
    )
    monkeypatch.setattr(bg_bb, "discounted_survival_quadrature", lambda *args: (2.0, 1.0))
    with pytest.raises(NumericalError, match="could not be confirmed"):
        bg_bb.discounted_survival_sum(0.2, 5.0, np.exp(-1e-4), max_terms=0)


def test_purchase_distribution_sums_to_one_with_eq_13_as_mean(donations, fitted):
    x, t_x, n = arrays(donations)
    params = tuple(fitted.params_)
    k = np.arange(0, 13, dtype=float)[:, None]
    probabilities = bg_bb.conditional_purchase_probability(*params, x, t_x, n, 12, k)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, rtol=1e-12)
    mean = (k * probabilities).sum(axis=0)
    expected = bg_bb.conditional_expected_purchases(*params, x, t_x, n, 12)
    np.testing.assert_allclose(mean, expected, rtol=1e-12)


def test_new_customer_expectation_is_eq_8_and_the_x0_n0_conditional(fitted):
    params = tuple(fitted.params_)
    a, b, g, d = params
    from scipy.special import gammaln

    for horizon in (1, 5, 50):
        eq8 = (
            a
            / (a + b)
            * d
            / (g - 1)
            * (
                1
                - np.exp(
                    gammaln(g + d) + gammaln(1 + d + horizon) - gammaln(g + d + horizon)
                    - gammaln(1 + d)
                )
            )
        )  # fmt: skip
        assert bg_bb.expected_purchases_new_customer(*params, horizon) == pytest.approx(
            eq8, rel=1e-12
        )
        assert bg_bb.conditional_expected_purchases(*params, 0.0, 0.0, 0.0, horizon) == (
            pytest.approx(eq8, rel=1e-12)
        )
    # a horizon counts whole opportunities: 2.5 years are 2 opportunities
    assert bg_bb.expected_purchases_new_customer(*params, 2.5) == pytest.approx(
        bg_bb.expected_purchases_new_customer(*params, 2.0), rel=0
    )


# ---- Monte Carlo against the model's story ---------------------------------------------------
@pytest.fixture(scope="module")
def population():
    """200,000 customers simulated with the published parameters: 6 opportunities, 5 more as
    a holdout."""
    rng = np.random.default_rng(11)
    drawn = FAMILY.simulate(PUBLISHED, np.full(200_000, 6.0), 5, rng)
    frame = pd.DataFrame(drawn)
    frame.attrs["time_unit"] = "Y"
    return frame


def test_simulated_frequencies_follow_eq_7(population):
    observed = population["frequency"].value_counts(normalize=True).sort_index()
    expected = bg_bb.frequency_probability(*PUBLISHED.values(), observed.index.to_numpy(float), 6.0)
    se = np.sqrt(expected * (1 - expected) / len(population))
    assert np.all(np.abs(observed.to_numpy() - expected) < 5 * se + 1e-4)
    FAMILY.validate_summary(population)


def test_predictions_match_the_simulated_holdout_by_history(population):
    groups = population.groupby(["frequency", "recency"])
    stats = groups.agg(
        count=("true_alive", "size"),
        alive=("true_alive", "mean"),
        holdout=("frequency_holdout", "mean"),
        holdout_var=("frequency_holdout", "var"),
        p=("true_p", "mean"),
        theta=("true_theta", "mean"),
    ).reset_index()
    stats = stats[stats["count"] >= 500]
    x, t_x = stats["frequency"].to_numpy(float), stats["recency"].to_numpy(float)
    n = np.full(len(stats), 6.0)
    params = tuple(PUBLISHED.values())
    alive = bg_bb.probability_alive(*params, x, t_x, n)
    expected = bg_bb.conditional_expected_purchases(*params, x, t_x, n, 5)
    count = stats["count"].to_numpy()
    se_alive = np.sqrt(alive * (1 - alive) / count)
    assert np.all(np.abs(stats["alive"] - alive) < 5 * se_alive + 1e-3)
    se_holdout = np.sqrt(stats["holdout_var"].to_numpy() / count)
    assert np.all(np.abs(stats["holdout"] - expected) < 5 * se_holdout + 1e-3)
    # the posterior sampler: (p, theta) drawn given the history match the simulated truth
    rng = np.random.default_rng(3)
    draws = {k: np.full((20_000, 1), v) for k, v in PUBLISHED.items()}
    latent = FAMILY.sample_latent(draws, x, t_x, n, rng)
    np.testing.assert_allclose(latent["alive"].mean(axis=0), alive, atol=0.015)
    np.testing.assert_allclose(latent["p"].mean(axis=0), stats["p"], atol=0.02)
    np.testing.assert_allclose(latent["theta"].mean(axis=0), stats["theta"], atol=0.02)
    # the future sampler: mean counts at the grid equal eq. (13); t = 2.5 counts 2 opportunities
    grid = np.array([1.0, 2.5, 5.0])
    counts = FAMILY.sample_future_purchases(draws, x, t_x, n, grid, rng)
    assert counts.shape == (20_000, len(x), 3) and counts.dtype == np.int64
    for j, t in enumerate(grid):
        mean = bg_bb.conditional_expected_purchases(*params, x, t_x, n, t)
        sd = counts[..., j].std(axis=0) / np.sqrt(20_000)
        assert np.all(np.abs(counts[..., j].mean(axis=0) - mean) < 5 * sd + 1e-3)
    # and its distribution is P(X = k)
    for k in (0, 1, 3):
        p_k = bg_bb.conditional_purchase_probability(*params, x, t_x, n, 5, k)
        share = (counts[..., 2] == k).mean(axis=0)
        assert np.all(np.abs(share - p_k) < 5 * np.sqrt(p_k * (1 - p_k) / 20_000) + 1e-3)


def test_death_time_sampler_is_exact_for_long_histories():
    """With n - t_x = 40 possible death times, the drawn p follows the posterior mean
    computed from the terms of eq. (5) directly."""
    params = (2.0, 3.0, 0.8, 5.0)
    x, t_x, n = 3.0, 5.0, 45.0
    a, b, g, d = params
    from scipy.special import betaln

    i = np.arange(n - t_x)
    log_terms = np.concatenate(
        [
            [betaln(a + x, b + n - x) + betaln(g, d + n)],
            betaln(a + x, b + t_x - x + i) + betaln(g + 1, d + t_x + i),
        ]
    )
    weights = np.exp(log_terms - log_terms.max())
    weights /= weights.sum()
    p_means = np.concatenate([[(a + x) / (a + b + n)], (a + x) / (a + b + t_x + i)])
    rng = np.random.default_rng(8)
    draws = {k: np.full((200_000, 1), v) for k, v in zip(bg_bb.PARAM_NAMES, params, strict=True)}
    latent = FAMILY.sample_latent(draws, np.array([x]), np.array([t_x]), np.array([n]), rng)
    assert latent["alive"].mean() == pytest.approx(weights[0], abs=0.005)
    assert latent["p"].mean() == pytest.approx(np.dot(weights, p_means), abs=0.003)


def test_parameters_are_recovered_from_simulated_customers():
    truth = {"alpha": 0.8, "beta": 2.5, "gamma": 0.4, "delta": 3.0}
    rng = np.random.default_rng(5)
    n = rng.integers(3, 12, size=60_000).astype(float)
    frame = pd.DataFrame(FAMILY.simulate(truth, n, None, rng))
    frame.attrs["time_unit"] = "Y"
    model = clv.BetaGeoBetaBinom().fit(frame[["frequency", "recency", "n_periods"]])
    summary = model.summary()
    for name, value in truth.items():
        low, high = summary.loc[name, "lower_95%"], summary.loc[name, "upper_95%"]
        width = high - low
        assert low - width / 2 < value < high + width / 2, name


# ---- extreme but valid inputs ---------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        (1e-3, 1e-3, 1e-3, 1e-3),
        (1e3, 1e3, 1e3, 1e3),
        (1e-3, 1e3, 1e3, 1e-3),
        (1e3, 1e-3, 1e-3, 1e3),
        (1.0, 1.0, 1.0, 1.0),
        (1e3, 1.0, 1e3, 1e-3),
    ],
)
def test_predictions_are_well_behaved_for_extreme_inputs(params):
    x = np.array([0, 1, 500, 999, 1000, 0, 30], dtype=float)
    t_x = np.array([0, 1, 900, 1000, 1000, 0, 31], dtype=float)
    n = np.array([1000, 1000, 1000, 1000, 1000, 0, 31], dtype=float)
    ll = bg_bb.log_likelihood(*params, x, t_x, n)
    assert np.all(np.isfinite(ll)) and np.all(ll <= 1e-12)
    alive = bg_bb.probability_alive(*params, x, t_x, n)
    assert np.all((alive >= 0) & (alive <= 1))
    previous = np.zeros_like(x)
    for horizon in (0.0, 1.0, 10.0, 1000.0):
        expected = bg_bb.conditional_expected_purchases(*params, x, t_x, n, horizon)
        assert np.all(np.isfinite(expected))
        assert np.all(expected >= previous - 1e-9 * np.maximum(previous, 1))
        assert np.all(expected <= np.floor(horizon) + 1e-9)
        previous = expected
    k = np.arange(0, 11, dtype=float)[:, None]
    probabilities = bg_bb.conditional_purchase_probability(*params, x, t_x, n, 10, k)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-9)
    for rate in (0.1, 1e-4):
        dert = bg_bb.conditional_dert(*params, x, t_x, n, rate)
        assert np.all(np.isfinite(dert)) and np.all(dert >= 0)
        assert np.all(dert <= np.exp(-rate) / (1 - np.exp(-rate)) * (1 + 1e-9))


positive = st.floats(min_value=-3.0, max_value=3.0).map(lambda v: float(10.0**v))


@st.composite
def histories(draw):
    """Whole-number BG/BB histories: 0 <= x <= t_x <= n <= 1000, t_x = 0 iff x = 0."""
    size = draw(st.integers(min_value=1, max_value=6))
    n = np.array(draw(st.lists(st.integers(0, 1000), min_size=size, max_size=size)), float)
    share = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=size, max_size=size)))
    t_x = np.floor(share * n)
    ratio = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=size, max_size=size)))
    x = np.where(t_x > 0, np.maximum(1.0, np.floor(ratio * t_x)), 0.0)
    return x, t_x, n


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    params=st.tuples(positive, positive, positive, positive),
    history=histories(),
    horizon=st.integers(0, 60),
)
def test_properties_over_random_extreme_inputs(params, history, horizon):
    x, t_x, n = history
    ll = bg_bb.log_likelihood(*params, x, t_x, n)
    assert np.all(np.isfinite(ll)) and np.all(ll <= 1e-12)
    alive = bg_bb.probability_alive(*params, x, t_x, n)
    assert np.all((alive >= 0) & (alive <= 1))
    expected = bg_bb.conditional_expected_purchases(*params, x, t_x, n, horizon)
    later = bg_bb.conditional_expected_purchases(*params, x, t_x, n, horizon + 1)
    assert np.all((expected >= 0) & (expected <= horizon * (1 + 1e-12)))
    assert np.all(later >= expected * (1 - 1e-12))
    k = np.arange(horizon + 1, dtype=float)[:, None]
    probabilities = bg_bb.conditional_purchase_probability(*params, x, t_x, n, horizon, k)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-9)
    np.testing.assert_allclose((k * probabilities).sum(axis=0), expected, rtol=1e-8, atol=1e-12)
    dert = bg_bb.conditional_dert(*params, x, t_x, n, 0.05)
    assert np.all(np.isfinite(dert) & (dert >= 0))
    assert np.all(dert <= np.exp(-0.05) / -np.expm1(-0.05) * (1 + 1e-9))


# ---- valuation, evaluation, model files ----------------------------------------------------
@pytest.fixture(scope="module")
def spend_summary(donors):
    """The donors with Gamma-Gamma spend simulated on their frequency (the donations data
    have no amounts)."""
    summary = clv.simulate.simulate_gamma_gamma_spend(donors, p=6.0, q=4.0, v=15.0, seed=1)
    summary.attrs["time_unit"] = "Y"
    assert "T" not in summary.columns  # the spend family reads frequency and monetary_value
    return summary


def test_lifetime_value_with_intervals(fitted, spend_summary):
    sample = spend_summary.iloc[::50]
    spend = clv.GammaGamma().fit(spend_summary)
    point = clv.lifetime_value(
        fitted, spend, sample, horizon="10Y", kind="point", period="Y", margin=0.3,
        annual_discount_rate=0.1,
    )  # fmt: skip
    x, t_x, n = arrays(sample)
    params = tuple(fitted.params_)
    cumulative = np.array(
        [bg_bb.conditional_expected_purchases(*params, x, t_x, n, s) for s in range(11)]
    )
    discounts = 1.1 ** -np.arange(1, 11)
    per_transaction = spend.expected_spend(sample).to_numpy()
    expected_value = 0.3 * per_transaction * (discounts[:, None] * np.diff(cumulative, axis=0))
    np.testing.assert_allclose(point["clv_mean"], expected_value.sum(axis=0), rtol=1e-6)
    predictive = clv.lifetime_value(
        fitted, spend, sample, horizon="10Y", period="Y", margin=0.3, draws=50, random_seed=2,
        interval=0.8,
    )  # fmt: skip
    assert (predictive["clv_lower"] <= predictive["clv_upper"]).all()
    ratio = predictive["clv_mean"].sum() / point["clv_mean"].sum()
    assert 0.8 < ratio < 1.25


def test_holdout_evaluation_is_calibrated(population):
    """The evaluation engine on a simulated holdout of 5 opportunities: totals and predictive
    intervals (BG/BB's future sampler) match what happened."""
    calibration = population.iloc[:4000].drop(columns=[c for c in population if "true" in c])
    calibration.attrs["time_unit"] = "Y"
    model = clv.BetaGeoBetaBinom().fit(calibration)
    result = clv.evaluation.evaluate(model, calibration, n_samples=200, n_draws=20, seed=1)
    assert abs(result["purchases_total_error"]) < 0.06
    assert 0.85 < result["coverage_90"] < 0.95
    assert np.isfinite(result["log_score"])


def test_predictions_per_donor_equal_those_of_their_row(fitted, donations, donors):
    """11,104 donors are evaluated once per distinct row: the same values as the table's."""
    repeat = np.repeat(np.arange(len(donations)), donations["weights"].to_numpy())
    per_row = fitted.predict(donations, 5)
    per_donor = fitted.predict(donors, 5)
    np.testing.assert_allclose(per_donor.to_numpy(), per_row.to_numpy()[repeat], rtol=1e-14)
    np.testing.assert_allclose(
        fitted.purchase_probability(donors, 5, 2).to_numpy(),
        fitted.purchase_probability(donations, 5, 2).to_numpy()[repeat],
        rtol=1e-14,
    )
    params = tuple(fitted.params_)
    np.testing.assert_allclose(
        bg_bb.conditional_dert(*params, *arrays(donors), 0.2),
        bg_bb.conditional_dert(*params, *arrays(donations), 0.2)[repeat],
        rtol=1e-14,
    )


def test_per_customer_horizons_and_rates(donors, fitted):
    """Horizons, k and discount rates may differ by customer (one value each)."""
    params = tuple(fitted.params_)
    x, t_x, n = arrays(donors)
    rng = np.random.default_rng(4)
    horizon = rng.integers(0, 8, len(x)).astype(float)
    k = rng.integers(0, 3, len(x)).astype(float)
    rate = rng.uniform(0.05, 1.0, len(x))
    pick = rng.choice(len(x), 20, replace=False)
    cases = [
        (bg_bb.conditional_expected_purchases, (horizon,)),
        (bg_bb.conditional_purchase_probability, (horizon, k)),
        (bg_bb.conditional_dert, (rate,)),
        (bg_bb.probability_alive, (k,)),
    ]
    for function, extra in cases:
        together = function(*params, x, t_x, n, *extra)
        one_by_one = [
            function(*params, x[[i]], t_x[[i]], n[[i]], *(e[i] for e in extra))[0] for i in pick
        ]
        np.testing.assert_allclose(together[pick], one_by_one, rtol=1e-14)


def test_discounted_purchases_are_the_weighted_expectations(donors, fitted):
    params = tuple(fitted.params_)
    x, t_x, n = arrays(donors)
    ends = np.array([0.5, 1.0, 2.0, 3.5, 7.0])
    weights = np.array([0.3, 0.2, 0.25, 0.1, 0.15])
    together = FAMILY.discounted_expected_purchases(
        dict(zip(bg_bb.PARAM_NAMES, params, strict=True)), x, t_x, n, ends, weights
    )
    one_by_one = sum(
        w * bg_bb.conditional_expected_purchases(*params, x, t_x, n, t)
        for t, w in zip(ends, weights, strict=True)
    )
    np.testing.assert_allclose(together, one_by_one, rtol=1e-13)


def test_model_file_round_trip(fitted, donations, tmp_path):
    path = tmp_path / "bgbb.json"
    clv.save_model(fitted, path)
    loaded = clv.load_model(path)
    assert type(loaded).__name__ == "BetaGeoBetaBinom"
    pd.testing.assert_series_equal(loaded.params_, fitted.params_)
    pd.testing.assert_series_equal(
        loaded.expected_purchases(donations, 3), fitted.expected_purchases(donations, 3)
    )
    draws = loaded.param_draws(20, seed=1)
    assert list(draws.columns) == list(bg_bb.PARAM_NAMES)


def test_conditional_latent_draws_and_new_customers(fitted, donations):
    latent = fitted.conditional_latent_draws(donations.head(4), n=10, seed=0)
    assert set(latent.columns) >= {"alive", "p", "theta"} and len(latent) == 40
    assert fitted.expected_purchases_new_customer(5) == pytest.approx(
        float(bg_bb.expected_purchases_new_customer(*fitted.params_, 5.0)), rel=1e-12
    )


# ---- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change, message",
    [
        ({"frequency": [2.0, 1.0]}, "frequency is larger than recency"),
        ({"recency": [3.0, 9.0]}, "recency is larger than n_periods"),
        ({"frequency": [0.0, 1.0], "recency": [2.0, 1.0]}, "recency is 0 exactly when"),
        ({"frequency": [1.5, 1.0]}, "not a whole number"),
        ({"n_periods": [np.nan, 6.0]}, "missing, non-numeric or non-finite"),
        ({"frequency": [-1.0, 1.0]}, "frequency is negative"),
    ],
)
def test_bad_summaries_are_named(change, message):
    frame = pd.DataFrame({"frequency": [1.0, 1.0], "recency": [1.0, 2.0], "n_periods": [6.0, 6.0]})
    frame = frame.assign(**change)
    frame.attrs["time_unit"] = "Y"
    with pytest.raises(InputError, match=message) as info:
        clv.BetaGeoBetaBinom().fit(frame)
    assert "Fix:" in str(info.value)


def test_a_summary_without_n_periods_says_how_to_build_one():
    frame = pd.DataFrame({"frequency": [1], "recency": [1], "T": [6]})
    frame.attrs["time_unit"] = "Y"
    with pytest.raises(InputError, match=r"n_periods.*discrete_summary"):
        clv.BetaGeoBetaBinom().fit(frame)


# ---- the discrete-time summary --------------------------------------------------------------
def test_discrete_summary_counts_whole_periods():
    tx = pd.DataFrame(
        {
            "donor": ["a", "a", "a", "a", "b", "c", "c"],
            "when": [
                "2015-03-01", "2015-12-31", "2017-01-01T09:30:00+01:00", "2019-06-30",
                "2018-05-05", "2020-12-31", "2020-01-01",
            ],
        }
    )  # fmt: skip
    summary = discrete_summary(tx, "donor", "when", period="Y", observation_end="2020-12-31")
    assert summary.attrs["time_unit"] == "Y"
    expected = pd.DataFrame(
        {"frequency": [2, 0, 0], "recency": [4, 0, 0], "n_periods": [5, 2, 0]},
        index=pd.Index(["a", "b", "c"], name="donor"),
    )
    pd.testing.assert_frame_equal(summary, expected)
    FAMILY.validate_summary(summary)
    quarters = discrete_summary(tx, "donor", "when", period="Q", observation_end="2020-12-31")
    assert quarters.loc["a"].tolist() == [3, 17, 23]


def test_discrete_summary_with_a_holdout_from_simulated_gifts():
    """Yearly gifts drawn from the model's story, summarised with a calibration/holdout split,
    fitted and evaluated end to end."""
    rng = np.random.default_rng(21)
    n_donors, years = 6000, 10
    p = rng.beta(PUBLISHED["alpha"], PUBLISHED["beta"], n_donors)
    theta = rng.beta(PUBLISHED["gamma"], PUBLISHED["delta"], n_donors)
    alive = np.cumprod(rng.random((n_donors, years)) >= theta[:, None], axis=1).astype(bool)
    gives = alive & (rng.random((n_donors, years)) < p[:, None])
    donor, year = np.nonzero(gives)
    tx = pd.DataFrame(
        {
            "donor": np.concatenate([np.arange(n_donors), donor]),
            "date": [
                f"{2010 + y}-06-15" for y in np.concatenate([np.zeros(n_donors, int), year + 1])
            ],
        }
    )
    split = discrete_summary(
        tx, "donor", "date", observation_end="2020-12-31", calibration_end="2016-12-31"
    )
    assert len(split) == n_donors and (split["n_periods"] == 6).all()
    assert (split["duration_holdout"] == 4).all()
    np.testing.assert_array_equal(split["frequency"], gives[:, :6].sum(axis=1))
    np.testing.assert_array_equal(split["frequency_holdout"], gives[:, 6:].sum(axis=1))
    model = clv.BetaGeoBetaBinom().fit(split)
    result = clv.evaluation.evaluate(model, split, intervals=False)
    assert abs(result["purchases_total_error"]) < 0.06


def test_discrete_summary_refuses_guesses_and_late_rows():
    tx = pd.DataFrame({"customer_id": [1, 2], "date": ["03/01/2015", "2016-01-01"]})
    with pytest.raises(InputError, match="datetime_format"):
        discrete_summary(tx)
    with pytest.raises(InputError, match="not dates"):
        discrete_summary(tx.assign(date=[20150301, 20160101]))
    with pytest.raises(InputError, match="after observation_end"):
        discrete_summary(tx.assign(date=["2015-03-01", "2016-01-01"]), observation_end="2015-12-31")
    parsed = discrete_summary(
        tx.assign(date=["01/03/2015", "01/01/2016"]), datetime_format="%d/%m/%Y"
    )
    assert parsed["n_periods"].tolist() == [1, 0]
    with pytest.raises(InputError, match="period must be one of"):
        discrete_summary(tx, period="H")
