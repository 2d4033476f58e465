"""Pareto/NBD: published CDNOW numbers, lifetimes agreement, mpmath over extreme inputs,
analytic gradient, posterior sampler, parameter recovery."""

from __future__ import annotations

import warnings

import mpmath as mp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import clvmodels as clv
from clvmodels.errors import NotFittedError, TimeUnitError
from clvmodels.families import pareto_nbd as pn
from clvmodels.registry import ParetoNBD

FAMILY = pn.ParetoNBDFamily()

# Fader, Hardie & Lee (2005), "A Note on Implementing the Pareto/NBD Model in MATLAB": CDNOW,
# 39-week calibration, weeks
PUBLISHED = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}


@pytest.fixture(scope="module")
def fitted(cdnow):
    return ParetoNBD().fit(cdnow)


@pytest.fixture(scope="module")
def lifetimes_at_mle(fitted):
    from lifetimes import ParetoNBDFitter

    f = ParetoNBDFitter()
    f.params_ = fitted.params_.copy()
    return f


def _arrays(summary):
    return (summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))


# ------------------------------------------------------------------------------------------
# published values and lifetimes
# ------------------------------------------------------------------------------------------
def test_published_cdnow_estimates(fitted):
    for name, value in PUBLISHED.items():
        assert fitted.params_[name] == pytest.approx(value, rel=5e-4), name
    assert fitted.log_likelihood_ == pytest.approx(-9595.0, abs=0.1)
    assert fitted.converged_
    assert fitted.time_unit_ == "W"
    table = fitted.summary()
    assert list(table.index) == ["r", "alpha", "s", "beta"]
    assert np.all(table["se"] > 0)
    assert np.all(table["lower_95%"] < table["estimate"])
    assert np.all(table["estimate"] < table["upper_95%"])
    np.testing.assert_allclose(np.sqrt(np.diag(fitted.covariance_)), table["se"])


def test_lifetimes_engine_agrees(cdnow, fitted):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = ParetoNBD(engine="lifetimes").fit(cdnow)
    assert type(other.lifetimes_fitter_).__name__ == "ParetoNBDFitter"
    np.testing.assert_allclose(other.params_, fitted.params_, rtol=1e-4)
    assert other.log_likelihood_ == pytest.approx(fitted.log_likelihood_, abs=1e-4)
    for predict in (
        lambda m: m.probability_alive(cdnow),
        lambda m: m.expected_purchases(cdnow, 39),
        lambda m: m.purchase_probability(cdnow, 39, 0),
        lambda m: m.purchase_probability(cdnow, 39, 3),
        lambda m: m.expected_purchases_new_customer(np.array([1.0, 39.0, 78.0])),
    ):
        np.testing.assert_allclose(predict(other), predict(fitted), rtol=1e-4)


def test_math_matches_lifetimes_at_identical_params(cdnow, fitted, lifetimes_at_mle):
    # lifetimes' closed forms are accurate for CDNOW-sized inputs: agree to 1e-9
    f = lifetimes_at_mle
    x, t_x, T = _arrays(cdnow)
    p = fitted.params_.to_numpy()
    np.testing.assert_allclose(
        pn.log_likelihood(*p, x, t_x, T),
        f._conditional_log_likelihood(p, x, t_x, T),
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        fitted.probability_alive(cdnow), f.conditional_probability_alive(x, t_x, T), rtol=1e-9
    )
    for t in (1.0, 39.0, 520.0):
        np.testing.assert_allclose(
            fitted.expected_purchases(cdnow, t),
            f.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, T),
            rtol=1e-9,
        )
        assert fitted.expected_purchases_new_customer(t) == pytest.approx(
            f.expected_number_of_purchases_up_to_time(t), rel=1e-12
        )
    for k in range(5):
        np.testing.assert_allclose(
            fitted.purchase_probability(cdnow, 39, k),
            f.conditional_probability_of_n_purchases_up_to_time(k, 39, x, t_x, T),
            rtol=1e-8,
            atol=1e-14,
        )


def test_time_units_and_horizon_strings(cdnow, fitted):
    np.testing.assert_allclose(
        fitted.expected_purchases(cdnow, "39W"), fitted.expected_purchases(cdnow, 39)
    )
    daily = cdnow.copy()
    daily.attrs = dict(cdnow.attrs, time_unit="D")
    with pytest.raises(TimeUnitError):
        fitted.probability_alive(daily)
    with pytest.raises(NotFittedError):
        ParetoNBD().probability_alive(cdnow)


def test_rescaled_time_gives_the_same_predictions(cdnow, fitted):
    daily = cdnow.copy()
    daily[["recency", "T"]] = daily[["recency", "T"]] * 7.0
    daily.attrs = dict(cdnow.attrs, time_unit="D")
    model = ParetoNBD().fit(daily)
    np.testing.assert_allclose(model.params_[["r", "s"]], fitted.params_[["r", "s"]], rtol=1e-4)
    np.testing.assert_allclose(
        model.params_[["alpha", "beta"]] / 7.0, fitted.params_[["alpha", "beta"]], rtol=1e-4
    )
    np.testing.assert_allclose(
        model.expected_purchases(daily, "39W"), fitted.expected_purchases(cdnow, 39), rtol=1e-4
    )


# ------------------------------------------------------------------------------------------
# mpmath references over extreme inputs
# ------------------------------------------------------------------------------------------
def _mp_log_likelihood_and_alive(r, alpha, s, beta, x, t_x, T):
    """FH 2005 eqs. (18)-(20) with mpmath's arbitrary-precision 2F1 (an independent route:
    the closed form, not the integral)."""
    with mp.workdps(50):
        r, alpha, s, beta, x, t_x, T = map(mp.mpf, (r, alpha, s, beta, x, t_x, T))
        c = r + s + x
        if alpha >= beta:
            top, p2 = alpha, s + 1
        else:
            top, p2 = beta, r + x
        z1, z2 = abs(alpha - beta) / (top + t_x), abs(alpha - beta) / (top + T)
        a0 = (
            mp.hyp2f1(c, p2, c + 1, z1) / (top + t_x) ** c
            - mp.hyp2f1(c, p2, c + 1, z2) / (top + T) ** c
        )
        alive_term = 1 / ((alpha + T) ** (r + x) * (beta + T) ** s)
        lik = mp.gamma(r + x) / mp.gamma(r) * alpha**r * beta**s * (alive_term + s / c * a0)
        return float(mp.log(lik)), float(alive_term / (alive_term + s / c * a0))


def _extreme_grid(n_rows: int, seed: int):
    values = [1e-3, 1.0, 1e3]
    rows = []
    for r in values:
        for alpha in values:
            for s in values:
                for beta in values:
                    for x in (0, 1, 10, 5000):
                        for T in (0.5, 39.0, 1e4):
                            shares = [0.0] if x == 0 else [0.0, 1e-3, 0.5, 0.999, 1.0]
                            rows += [(r, alpha, s, beta, x, f * T, T) for f in shares]
    rows = np.array(rows)
    pick = np.random.default_rng(seed).choice(len(rows), n_rows, replace=False)
    return rows[pick]


# where lifetimes' hyp2f1 route returns nan/inf or loses all digits
LIFETIMES_FAILS = np.array(
    [
        (1e-3, 1e3, 1e3, 1e-3, 5000, 0.0, 1e4),
        (1.0, 1e-3, 1e3, 1e3, 5000, 19.5, 39.0),
        (1e3, 1.0, 1e-3, 1e3, 10, 0.5, 0.5),
        (1e-3, 1e3, 1.0, 1e-3, 0, 0.0, 39.0),
        (1e3, 1e-3, 1e-3, 1e3, 5000, 5000.0, 1e4),
        (1e-3, 1e3, 1e3, 1.0, 1, 5e-4, 0.5),
    ]
)


def test_likelihood_and_alive_match_mpmath_on_extreme_grid():
    rows = np.vstack([_extreme_grid(24, seed=0), LIFETIMES_FAILS])
    reference = np.array([_mp_log_likelihood_and_alive(*row) for row in rows])
    # per-row evaluation (customer-specific parameters) ...
    ll = pn.log_likelihood(*rows.T)
    alive = pn.probability_alive(*rows.T)
    np.testing.assert_allclose(ll, reference[:, 0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(alive, reference[:, 1], rtol=0, atol=1e-10)
    # ... and the grouped evaluation (one parameter set, customers sharing time points)
    for row, ref in zip(rows, reference, strict=True):
        customers = np.array([row[4:], row[4:], [0.0, 0.0, row[6]], [1.0, 0.0, row[6]]]).T
        customers[1, 3] = 0.25 * row[6]
        customers = np.tile(customers, 80)  # many customers on few time points
        assert pn._GroupPlan(*customers).worthwhile
        got = pn.log_likelihood(*row[:4], *customers)
        assert got[0] == pytest.approx(ref[0], rel=1e-10, abs=1e-10)
        assert pn.probability_alive(*row[:4], *customers)[0] == pytest.approx(ref[1], abs=1e-10)
        per_row = pn.log_likelihood(*(np.full(customers.shape[1], v) for v in row[:4]), *customers)
        np.testing.assert_allclose(got, per_row, rtol=1e-10, atol=1e-10)


def test_lifetimes_is_not_finite_where_we_are(fitted):
    # documents why the quadrature exists: lifetimes' 2F1 route overflows on these rows
    from lifetimes import ParetoNBDFitter

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = np.array(
            [
                ParetoNBDFitter._conditional_log_likelihood(row[:4], *row[4:])
                for row in LIFETIMES_FAILS
            ]
        )
    ours = pn.log_likelihood(*LIFETIMES_FAILS.T)
    assert np.all(np.isfinite(ours))
    assert not np.all(np.isfinite(theirs) & (np.abs(theirs - ours) < 1e-6 * np.abs(ours)))


def _mp_purchase_probability(r, alpha, s, beta, x, t_x, T, t, n):
    """Fader & Hardie (2014, note 028) eq. (16) -- the closed form with 2F1 and an alternating
    sum -- evaluated with 60 digits."""
    with mp.workdps(60):
        r, alpha, s, beta, x, t_x, T, t = map(mp.mpf, (r, alpha, s, beta, x, t_x, T, t))
        ll, _ = _mp_log_likelihood_and_alive(*(float(v) for v in (r, alpha, s, beta, x, t_x, T)))
        # recompute the likelihood at full precision
        c = r + s + x
        top, p2 = (alpha, s + 1) if alpha >= beta else (beta, r + x)
        a0 = mp.hyp2f1(c, p2, c + 1, abs(alpha - beta) / (top + t_x)) / (top + t_x) ** c
        a0 -= mp.hyp2f1(c, p2, c + 1, abs(alpha - beta) / (top + T)) / (top + T) ** c
        alive_term = 1 / ((alpha + T) ** (r + x) * (beta + T) ** s)
        pre = mp.gamma(r + x) / mp.gamma(r) * alpha**r * beta**s
        lik = pre * (alive_term + s / c * a0)
        p = r + x + n if alpha < beta else s + 1
        d = abs(alpha - beta)
        b_one = (
            mp.gamma(r + x + n)
            * alpha**r
            * beta**s
            / (mp.gamma(r) * (alpha + T + t) ** (r + x + n) * (beta + T + t) ** s)
        )
        common = alpha**r * beta**s * mp.beta(r + x + n, s + 1) / (mp.gamma(r) * mp.gamma(s))
        b_two = common * mp.gamma(c) * mp.hyp2f1(c, p, c + n + 1, d / (top + T)) / (top + T) ** c
        b_three = mp.fsum(
            t**i
            / mp.factorial(i)
            * common
            * mp.gamma(c + i)
            * mp.hyp2f1(c + i, p, c + n + 1, d / (top + T + t))
            / (top + T + t) ** (c + i)
            for i in range(n + 1)
        )
        zeroth = (1 - pre * alive_term / lik) if n == 0 else 0
        return float(zeroth + (t**n / mp.factorial(n) * b_one + b_two - b_three) / lik)


@pytest.mark.parametrize(
    "row",
    [
        (0.55, 10.6, 0.61, 11.7, 2, 30.4, 38.9, 39.0),
        (1e-3, 1e3, 1e3, 1e-3, 0, 0.0, 39.0, 52.0),
        (5.0, 0.01, 0.02, 300.0, 50, 100.0, 365.0, 30.0),
        (1e3, 1.0, 1e-3, 1e3, 10, 0.5, 0.5, 1e3),
        (0.5, 50.0, 3.0, 0.5, 400, 360.0, 365.0, 365.0),
    ],
)
def test_purchase_probability_matches_mpmath(row):
    *customer, t = row
    ks = np.arange(6)
    ours = pn.conditional_purchase_probability(*customer, t, ks)
    reference = np.array([_mp_purchase_probability(*customer, t, int(k)) for k in ks])
    np.testing.assert_allclose(ours, reference, rtol=1e-8, atol=1e-13)


def test_purchase_probability_is_a_distribution_with_the_right_mean(fitted, cdnow):
    sample = cdnow.iloc[::50]
    x, t_x, T = _arrays(sample)
    ks = np.arange(300)[:, None]
    probs = pn.conditional_purchase_probability(*fitted.params_.to_numpy(), x, t_x, T, 39.0, ks)
    assert probs.shape == (300, len(sample))
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-9)
    np.testing.assert_allclose(ks[:, 0] @ probs, fitted.expected_purchases(sample, 39), rtol=1e-6)
    np.testing.assert_allclose(fitted.purchase_probability(sample, 39, 2), probs[2])


# ------------------------------------------------------------------------------------------
# likelihood internals
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values", [(0.55, 10.6, 0.61, 11.7), (1e-3, 1e3, 1e3, 1e-3), (50.0, 0.01, 0.02, 300.0)]
)
def test_gradient_matches_finite_differences(cdnow, values):
    rng = np.random.default_rng(1)
    x, t_x, T = _arrays(cdnow.iloc[:400])
    x = np.r_[x, 2000.0, 0.0, 3.0]
    t_x = np.r_[t_x, 30.0, 0.0, 38.99]
    T = np.r_[T, 39.0, 1e3, 39.0]
    counts = rng.integers(1, 4, len(x)).astype(float)
    log_params = np.log(values)
    value, grad = pn.negative_log_likelihood(log_params, x, t_x, T, counts)
    assert np.isfinite(value)
    h = 1e-5
    for j in range(4):
        step = np.zeros(4)
        step[j] = h
        up = pn.negative_log_likelihood(log_params + step, x, t_x, T, counts)[0]
        down = pn.negative_log_likelihood(log_params - step, x, t_x, T, counts)[0]
        assert grad[j] == pytest.approx(
            (up - down) / (2 * h), rel=1e-5, abs=1e-4 * max(1, abs(value)) * h
        )


def test_grouped_and_per_customer_paths_agree(cdnow):
    # whole weeks: customers share time points, so one parameter set takes the shared-gap route
    x, t_x, T = _arrays(cdnow)
    t_x, T = np.round(t_x), np.round(T)
    t_x = np.where(x > 0, t_x, 0.0)
    assert pn._GroupPlan(x, t_x, T).worthwhile
    p = (0.55, 10.6, 0.61, 11.7)
    grouped = pn.log_likelihood(*p, x, t_x, T)
    per_row = pn.log_likelihood(*(np.full(len(x), v) for v in p), x, t_x, T)  # per customer
    np.testing.assert_allclose(grouped, per_row, rtol=1e-12)
    np.testing.assert_allclose(
        pn.probability_alive(*p, x, t_x, T),
        pn.probability_alive(*(np.full(len(x), v) for v in p), x, t_x, T),
        rtol=1e-12,
    )
    # the negative log-likelihood (grouped, with moments) is the weighted sum of the
    # per-customer values, and its gradient matches the per-row route's
    counts = np.arange(1.0, len(x) + 1.0) % 5 + 1.0
    nll, grad = pn.negative_log_likelihood(np.log(p), x, t_x, T, counts)
    assert -nll == pytest.approx(counts @ per_row, rel=1e-12)
    plan = pn._GroupPlan(x, t_x, T)
    plan.worthwhile = False
    nll_rows, grad_rows = pn.negative_log_likelihood(np.log(p), x, t_x, T, counts, plan=plan)
    assert nll_rows == pytest.approx(nll, rel=1e-12)
    np.testing.assert_allclose(grad, grad_rows, rtol=1e-9)


def test_weights_equal_duplicated_rows(cdnow):
    half = cdnow.iloc[:600]
    doubled = pd.concat([half, half.set_axis(half.index.astype(str) + "_copy")])
    doubled.attrs = dict(cdnow.attrs)
    a = ParetoNBD().fit(half, weights=np.full(len(half), 2.0))
    b = ParetoNBD().fit(doubled)
    np.testing.assert_allclose(a.params_, b.params_, rtol=1e-6)


def test_new_customer_expectation_is_continuous_at_s_equal_one():
    t = np.array([0.0, 1.0, 39.0, 1e4])
    at_one = pn.expected_purchases_new_customer(0.5, 10.0, 1.0, 12.0, t)
    near = pn.expected_purchases_new_customer(0.5, 10.0, 1.0 + 1e-7, 12.0, t)
    np.testing.assert_allclose(at_one, 0.5 / 10.0 * 12.0 * np.log1p(t / 12.0))
    np.testing.assert_allclose(near, at_one, rtol=1e-6)


# ------------------------------------------------------------------------------------------
# posterior of the latent state and simulation of the future
# ------------------------------------------------------------------------------------------
def _params(r, alpha, s, beta, n_draws=1):
    return {
        k: np.full((n_draws, 1), v)
        for k, v in zip(pn.PARAM_NAMES, (r, alpha, s, beta), strict=True)
    }


def test_sampler_mean_matches_expectation():
    rng = np.random.default_rng(7)
    x = np.array([0.0, 2.0, 7.0, 30.0])
    t_x = np.array([0.0, 30.0, 10.0, 38.0])
    T = np.array([39.0, 39.0, 39.0, 39.0])
    p = (0.55, 10.6, 0.61, 11.7)
    grid = np.array([5.0, 20.0, 39.0])
    draws = FAMILY.sample_future_purchases(_params(*p, 20000), x, t_x, T, grid, rng)
    assert draws.shape == (20000, 4, 3)
    assert np.issubdtype(draws.dtype, np.integer)
    assert np.all(np.diff(draws, axis=-1) >= 0)
    expected = np.array([pn.conditional_expected_purchases(*p, x, t_x, T, t) for t in grid]).T
    mean = draws.mean(axis=0)
    se = draws.std(axis=0) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(mean - expected) < 5 * se + 1e-9), (mean, expected)


def test_latent_draws_follow_the_posterior(fitted, cdnow):
    sample = cdnow.iloc[[0, 1, 2, 10, 20, 100]]
    n = 4000
    frame = fitted.conditional_latent_draws(sample, n=n, seed=3)
    assert list(frame.columns) == [
        sample.index.name or "customer_id",
        "draw",
        "alive",
        "lambda",
        "mu",
    ]
    assert len(frame) == n * len(sample)
    assert np.all(frame[["lambda", "mu"]].to_numpy() > 0)
    r, alpha, s, beta = fitted.params_.to_numpy()
    alive_p = fitted.probability_alive(sample)
    x, t_x, T = _arrays(sample)
    for i, cid in enumerate(sample.index):
        rows = frame[frame.iloc[:, 0] == cid]
        share = rows["alive"].mean()
        assert (
            abs(share - alive_p.iloc[i])
            < 5 * np.sqrt(alive_p.iloc[i] * (1 - alive_p.iloc[i]) / n) + 1e-9
        )
        alive_rows = rows[rows["alive"]]
        # alive at T: lambda ~ Gamma(r+x, alpha+T), mu ~ Gamma(s, beta+T)
        lam_mean = (r + x[i]) / (alpha + T[i])
        assert alive_rows["lambda"].mean() == pytest.approx(lam_mean, rel=0.1)
        dead_rows = rows[~rows["alive"]]
        if len(dead_rows) > 300:
            # died at tau in (t_x, T]: E[mu] = E[(s+1)/(beta+tau)] over the dropout density
            tau = np.linspace(t_x[i], T[i], 20001)
            dens = (alpha + tau) ** -(r + x[i]) * (beta + tau) ** -(s + 1.0)
            mu_mean = np.trapezoid(dens * (s + 1.0) / (beta + tau), tau) / np.trapezoid(dens, tau)
            se = dead_rows["mu"].std() / np.sqrt(len(dead_rows))
            assert abs(dead_rows["mu"].mean() - mu_mean) < 5 * se


def test_death_time_sampler_matches_its_density():
    rng = np.random.default_rng(11)
    a, A, b, B, L = 40.0, 2.0, 1.5, 30.0, 50.0  # sharp early peak, then a long tail
    n = 40000
    u = pn._sample_death_offsets(
        np.full(n, a), np.full(n, A), np.full(n, b), np.full(n, B), np.full(n, L), rng
    )
    assert np.all((u >= 0) & (u <= L))
    grid = np.linspace(0, L, 400001)
    dens = (1 + grid / A) ** -a * (1 + grid / B) ** -b
    cdf = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(grid))])
    cdf /= cdf[-1]
    statistic = stats.kstest(u, lambda q: np.interp(q, grid, cdf)).pvalue
    assert statistic > 1e-3


# ------------------------------------------------------------------------------------------
# draws and recovery
# ------------------------------------------------------------------------------------------
def test_param_draws(fitted):
    draws = fitted.param_draws(500, seed=0)
    assert list(draws.columns) == ["r", "alpha", "s", "beta"]
    assert np.all(draws.to_numpy() > 0)
    np.testing.assert_allclose(np.log(draws).mean(), np.log(fitted.params_), atol=0.05)
    boot = fitted.param_draws(3, method="bootstrap", seed=1)
    assert boot.shape == (3, 4) and np.all(np.isfinite(boot.to_numpy()))


def test_parameter_recovery_coverage():
    # 12 simulated data sets: the asymptotic 95% intervals should cover the truth ~95% of the
    # time per parameter; fewer covers than the binomial 1e-3 quantile fails.
    truth = {"r": 0.6, "alpha": 8.0, "s": 0.8, "beta": 12.0}
    n_sets = 12
    covered = np.zeros(4)
    for seed in range(n_sets):
        s = clv.simulate.simulate_pareto_nbd(2000, **truth, T=np.linspace(20, 80, 2000), seed=seed)
        table = ParetoNBD().fit(s).summary()
        covered += [
            table.loc[k, "lower_95%"] <= v <= table.loc[k, "upper_95%"] for k, v in truth.items()
        ]
    assert stats.binom.cdf(covered.min(), n_sets, 0.95) > 1e-3, covered


def test_cached_grouping_is_not_reused_for_other_customers(cdnow, fitted):
    # the last grouping plan is reused only for identical (x, t_x, T) arrays
    weeks = cdnow.copy()
    weeks[["recency", "T"]] = np.round(weeks[["recency", "T"]])
    first = fitted.probability_alive(weeks)
    shifted = weeks.copy()
    shifted["T"] = shifted["T"] + 1.0
    x, t_x, T = _arrays(shifted)
    p = fitted.params_.to_numpy()
    fresh = pn.probability_alive(*(np.full(len(x), v) for v in p), x, t_x, T)  # per-row route
    np.testing.assert_allclose(fitted.probability_alive(shifted), fresh, rtol=1e-12)
    np.testing.assert_allclose(fitted.probability_alive(weeks), first, rtol=0)
