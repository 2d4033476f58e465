"""Gamma-Gamma: published CDNOW estimates, math against lifetimes, errors, warnings, sampler."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import clvmodels as clv
from clvmodels.errors import InputError, ModelAssumptionWarning
from clvmodels.families import gamma_gamma as ggm
from clvmodels.registry import GammaGamma


@pytest.fixture(scope="module")
def fitted(cdnow):
    return GammaGamma().fit(cdnow)


def test_published_estimates(fitted):
    # Fader, Hardie & Lee (2005b) / FH 2013 note: p = 6.25, q = 3.74, gamma = 15.44 on 946 repeaters
    assert fitted.params_["p"] == pytest.approx(6.25, abs=5e-3)
    assert fitted.params_["q"] == pytest.approx(3.74, abs=5e-3)
    assert fitted.params_["v"] == pytest.approx(15.44, abs=1e-2)
    assert fitted.n_customers_ == 946
    assert fitted.converged_
    assert fitted.frequency_spend_correlation_ == pytest.approx(0.11, abs=0.01)
    # a time unit is remembered when there is one, but not required
    assert fitted.time_unit_ == "W"
    no_unit = clv.datasets.load_cdnow_summary()
    no_unit.attrs = {}
    assert GammaGamma().fit(no_unit).params_["p"] == pytest.approx(fitted.params_["p"], rel=1e-9)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 3000, 200).astype(float)
    m = rng.gamma(2.0, 20.0, 200)
    c = rng.integers(1, 4, 200).astype(float)
    lp = np.log([3.0, 4.0, 20.0])
    value, grad = ggm.negative_log_likelihood(lp, x, m, c)
    assert value == pytest.approx(-(c @ ggm.log_likelihood(*np.exp(lp), x, m)), rel=1e-12)
    h = 1e-6
    for j in range(3):
        e = np.eye(3)[j] * h
        fd = (
            ggm.negative_log_likelihood(lp + e, x, m, c)[0]
            - ggm.negative_log_likelihood(lp - e, x, m, c)[0]
        ) / (2 * h)
        assert grad[j] == pytest.approx(fd, rel=1e-5, abs=1e-4)


def test_expected_spend_matches_lifetimes(fitted, cdnow):
    from lifetimes import GammaGammaFitter

    lf = GammaGammaFitter()
    lf.params_ = fitted.params_.copy()
    ours = fitted.expected_spend(cdnow)
    theirs = lf.conditional_expected_average_profit(cdnow["frequency"], cdnow["monetary_value"])
    np.testing.assert_allclose(ours.to_numpy(), np.asarray(theirs), rtol=1e-10)
    # customers without repeat purchases get the population mean p v / (q - 1)
    p, q, v = fitted.params_
    assert ours[cdnow["frequency"] == 0].unique() == pytest.approx(p * v / (q - 1))
    assert ours.name == "expected_spend" and ours.index.equals(cdnow.index)


def test_non_positive_spend_among_repeaters_is_an_error(cdnow):
    bad = cdnow.copy()
    first_repeater = bad.index[bad["frequency"] > 0][0]
    bad.loc[first_repeater, "monetary_value"] = 0.0
    with pytest.raises(InputError, match="monetary_value must be positive"):
        GammaGamma().fit(bad)
    missing = cdnow.drop(columns="monetary_value")
    with pytest.raises(InputError, match="monetary_value"):
        GammaGamma().fit(missing)
    nobody = cdnow[cdnow["frequency"] == 0]
    with pytest.raises(InputError, match="repeat"):
        GammaGamma().fit(nobody)


@pytest.mark.filterwarnings("ignore::clvmodels.errors.ConvergenceWarning")
def test_correlation_warning():
    # spend that grows with frequency is not Gamma-Gamma data (the fit may be degenerate);
    # the point here is the assumption warning
    rng = np.random.default_rng(5)
    n = 2000
    x = rng.integers(1, 20, n).astype(float)
    m = 10 * x + rng.gamma(2.0, 5.0, n)  # spend rises with frequency
    s = pd.DataFrame({"frequency": x, "recency": 10.0, "T": 20.0, "monetary_value": m})
    with pytest.warns(ModelAssumptionWarning, match="correlation"):
        model = GammaGamma().fit(s)
    assert model.frequency_spend_correlation_ > 0.3
    # independent spend: no warning
    s2 = s.assign(monetary_value=rng.gamma(2.0, 5.0, n))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelAssumptionWarning)
        GammaGamma().fit(s2)


def test_weights_equal_duplicated_rows(cdnow):
    sub = cdnow.iloc[:600]
    w = np.tile([1, 3], 300)
    dup = sub.loc[sub.index.repeat(w)].reset_index(drop=True)
    a = GammaGamma().fit(sub, weights=w.astype(float))
    b = GammaGamma().fit(dup)
    np.testing.assert_allclose(a.params_, b.params_, rtol=1e-5)


def test_lifetimes_engine_agrees(fitted, cdnow):
    lt = GammaGamma(engine="lifetimes").fit(cdnow)
    np.testing.assert_allclose(lt.params_, fitted.params_, rtol=1e-4)
    assert lt.log_likelihood_ == pytest.approx(fitted.log_likelihood_, rel=1e-8)
    np.testing.assert_allclose(lt.expected_spend(cdnow), fitted.expected_spend(cdnow), rtol=1e-4)
    assert type(lt.lifetimes_fitter_).__name__ == "GammaGammaFitter"


def test_spend_sampler_mean(fitted):
    rng = np.random.default_rng(0)
    n = 40000
    params = {k: np.full((n, 1), v) for k, v in fitted.params_.items()}
    x = np.array([0.0, 2.0, 10.0])
    m = np.array([0.0, 22.35, 40.0])
    counts = np.broadcast_to(np.array([0, 1, 3]), (n, 3, 3))
    spend = fitted.family_.sample_future_spend(params, x, m, counts, rng)
    assert spend.shape == (n, 3, 3)
    assert (spend[..., 0] == 0).all()
    expected = fitted.family_.expected_spend({k: v[:1] for k, v in params.items()}, x, m)[0]
    for j, k in ((1, 1), (2, 3)):
        mc = spend[..., j].mean(axis=0)
        se = spend[..., j].std(axis=0) / np.sqrt(n)
        assert np.all(np.abs(mc - k * expected) < 4.5 * se), (mc, k * expected)


def test_latent_draws_and_persistence(fitted, cdnow):
    sub = cdnow.iloc[:2]
    draws = fitted.conditional_latent_draws(sub, n=20000, seed=0)
    assert list(draws.columns) == ["customer_id", "draw", "nu", "mean_spend"]
    p, q, v = fitted.params_
    nu1 = draws[draws.customer_id == 1]["nu"]
    assert nu1.mean() == pytest.approx((q + p * 2) / (v + 2 * 22.35), rel=0.02)
    again = GammaGamma.from_dict(json.loads(fitted.to_json()))
    pd.testing.assert_series_equal(again.expected_spend(cdnow), fitted.expected_spend(cdnow))
    d = fitted.param_draws(100, seed=1)
    assert list(d.columns) == ["p", "q", "v"] and (d > 0).all().all()


def test_parameter_recovery():
    truth = {"p": 5.0, "q": 4.0, "v": 20.0}
    covered = np.zeros(3)
    n_sets = 16
    for seed in range(n_sets):
        freq = np.random.default_rng(seed).integers(1, 15, 3000)
        sim = clv.simulate.simulate_gamma_gamma_spend(freq, **truth, seed=seed)
        s = pd.DataFrame(
            {
                "frequency": freq,
                "recency": 1.0,
                "T": 2.0,
                "monetary_value": sim["monetary_value"].to_numpy(),
            }
        )
        table = GammaGamma().fit(s).summary()
        covered += [
            table.loc[k, "lower_95%"] <= val <= table.loc[k, "upper_95%"]
            for k, val in truth.items()
        ]
    # a coverage count with binomial probability < 1e-3 fails
    assert stats.binom.cdf(covered.min(), n_sets, 0.95) > 1e-3, covered
