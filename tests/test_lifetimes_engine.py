"""engine="lifetimes" and from_lifetimes: same optimum, same predictions as lifetimes itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifetimes import (
    BetaGeoBetaBinomFitter,
    BetaGeoFitter,
    GammaGammaFitter,
    ModifiedBetaGeoFitter,
    ParetoNBDFitter,
)

import clvmodels as clv
from clvmodels.errors import TimeUnitError
from clvmodels.estimators.lifetimes_engine import from_lifetimes
from clvmodels.registry import BetaGeo, GammaGamma, ModifiedBetaGeo, ParetoNBD

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def daily():
    # daily-resolution simulated customers, T spread over 1-730 days
    rng = np.random.default_rng(11)
    T = rng.integers(1, 731, 4000).astype(float)
    s = clv.simulate.simulate_beta_geo(4000, 0.3, 20.0, 0.9, 3.0, T=T, seed=3, time_unit="D")
    s = s[["frequency", "recency", "T"]].assign(recency=np.floor(s["recency"]))
    s.attrs["time_unit"] = "D"
    return s


def _arrays(s):
    return (s[c].to_numpy(float) for c in ("frequency", "recency", "T"))


def assert_predictions_match_lifetimes(model, fitter, summary):
    """The model's expected purchases in 39 periods and P(alive) equal those of the lifetimes
    fitter on the same summary."""
    x, t_x, T = _arrays(summary)
    np.testing.assert_allclose(
        model.expected_purchases(summary, 39).to_numpy(),
        fitter.conditional_expected_number_of_purchases_up_to_time(39, x, t_x, T),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        model.probability_alive(summary).to_numpy(),
        fitter.conditional_probability_alive(x, t_x, T),
        rtol=1e-6,
    )


@pytest.mark.parametrize("model_cls", [BetaGeo, ModifiedBetaGeo])
@pytest.mark.parametrize("data", ["cdnow", "daily"])
def test_bg_family_engines_agree(model_cls, data, request):
    s = request.getfixturevalue(data)
    native = model_cls().fit(s)
    wrapped = model_cls(engine="lifetimes").fit(s)
    assert type(wrapped.lifetimes_fitter_).__name__ in ("BetaGeoFitter", "ModifiedBetaGeoFitter")
    assert wrapped.optimizer_message_ == "fitted by lifetimes"
    # lifetimes stops at tol=1e-7 on its mean log-likelihood, close to but not exactly at the
    # optimum; the parameters still agree to 1e-4 relative and the likelihood to ~1e-9
    np.testing.assert_allclose(wrapped.params_, native.params_, rtol=1e-4)
    assert wrapped.log_likelihood_ <= native.log_likelihood_ + 1e-6
    assert wrapped.log_likelihood_ == pytest.approx(native.log_likelihood_, rel=1e-8)
    for t in (7.0, 39.0, 365.0):
        np.testing.assert_allclose(
            wrapped.expected_purchases(s, t), native.expected_purchases(s, t), rtol=1e-4
        )
    np.testing.assert_allclose(wrapped.probability_alive(s), native.probability_alive(s), rtol=1e-4)
    np.testing.assert_allclose(
        wrapped.purchase_probability(s, 30, 1), native.purchase_probability(s, 30, 1), rtol=1e-4
    )
    # the lifetimes fitter's own predictions equal ours at its parameters
    assert_predictions_match_lifetimes(wrapped, wrapped.lifetimes_fitter_, s)
    # standard errors from the observed information at (almost) the same point
    np.testing.assert_allclose(wrapped.standard_errors_, native.standard_errors_, rtol=1e-2)


def test_engines_agree_with_weights(cdnow):
    w = np.tile([1.0, 2.0, 1.0], len(cdnow) // 3 + 1)[: len(cdnow)]
    native = BetaGeo().fit(cdnow, weights=w)
    wrapped = BetaGeo(engine="lifetimes").fit(cdnow, weights=w)
    np.testing.assert_allclose(wrapped.params_, native.params_, rtol=1e-4)


def test_gamma_gamma_engines_agree(cdnow):
    native = GammaGamma().fit(cdnow)
    wrapped = GammaGamma(engine="lifetimes").fit(cdnow)
    np.testing.assert_allclose(wrapped.params_, native.params_, rtol=1e-4)
    np.testing.assert_allclose(
        wrapped.expected_spend(cdnow), native.expected_spend(cdnow), rtol=1e-4
    )
    rep = cdnow[cdnow["frequency"] > 0]
    np.testing.assert_allclose(
        wrapped.expected_spend(rep).to_numpy(),
        wrapped.lifetimes_fitter_.conditional_expected_average_profit(
            rep["frequency"], rep["monetary_value"]
        ).to_numpy(),
        rtol=1e-10,
    )


@pytest.mark.parametrize(
    ("fitter_cls", "model_cls"),
    [
        (BetaGeoFitter, BetaGeo),
        (ModifiedBetaGeoFitter, ModifiedBetaGeo),
        (ParetoNBDFitter, ParetoNBD),
    ],
)
def test_from_lifetimes_purchase_models(fitter_cls, model_cls, cdnow):
    x, t_x, T = _arrays(cdnow)
    fitter = fitter_cls().fit(x, t_x, T)
    model = from_lifetimes(fitter, time_unit="W")
    assert isinstance(model, model_cls)
    assert model.time_unit_ == "W"
    assert model.lifetimes_fitter_ is fitter
    np.testing.assert_array_equal(
        model.params_.to_numpy(),
        fitter.params_[list(model_cls.family_class.param_names)].to_numpy(),
    )
    assert_predictions_match_lifetimes(model, fitter, cdnow)
    # log-likelihood and covariance recomputed by clvmodels' math, so draws work
    native = model_cls().fit(cdnow)
    assert model.log_likelihood_ == pytest.approx(native.log_likelihood_, rel=1e-6)
    assert model.n_customers_ == len(cdnow)
    draws = model.param_draws(50, seed=0)
    assert draws.shape == (50, 4) and np.isfinite(draws.to_numpy()).all()
    # usable by the valuation module
    gg = from_lifetimes(GammaGammaFitter().fit(*_repeaters(cdnow)))
    value = clv.lifetime_value(model, gg, cdnow.iloc[:50], horizon="52W", annual_discount_rate=0.1)
    assert np.isfinite(value["clv_mean"]).all() and (value["clv_mean"] >= 0).all()


def _repeaters(s):
    rep = s[s["frequency"] > 0]
    return rep["frequency"], rep["monetary_value"]


def test_from_lifetimes_gamma_gamma(cdnow):
    fitter = GammaGammaFitter().fit(*_repeaters(cdnow))
    model = from_lifetimes(fitter)
    assert isinstance(model, GammaGamma) and model.time_unit_ is None
    np.testing.assert_allclose(
        model.expected_spend(cdnow).to_numpy(),
        fitter.conditional_expected_average_profit(
            cdnow["frequency"], cdnow["monetary_value"]
        ).to_numpy(),
        rtol=1e-10,
    )
    assert model.log_likelihood_ == pytest.approx(GammaGamma().fit(cdnow).log_likelihood_, rel=1e-7)
    assert model.n_customers_ == 946


def test_from_lifetimes_without_data_gives_point_predictions(cdnow):
    fitter = BetaGeoFitter().fit(*_arrays(cdnow))
    fitter.data = None
    model = from_lifetimes(fitter, time_unit="W")
    assert np.isnan(model.log_likelihood_)
    assert np.isfinite(model.expected_purchases(cdnow, 10)).all()
    with pytest.raises(ValueError, match="finite covariance"):
        model.param_draws(10)


def test_from_lifetimes_errors(cdnow):
    fitter = BetaGeoFitter().fit(*_arrays(cdnow))
    with pytest.raises(TimeUnitError, match="time_unit"):
        from_lifetimes(fitter)
    with pytest.raises(TimeUnitError):
        from_lifetimes(fitter, time_unit="fortnight")
    with pytest.raises(ValueError, match="not fitted"):
        from_lifetimes(BetaGeoFitter(), time_unit="W")
    with pytest.raises(ValueError, match="not fitted"):
        from_lifetimes(BetaGeoBetaBinomFitter(), time_unit="Y")
    with pytest.raises(TypeError):
        from_lifetimes(object(), time_unit="W")
    # a model in days is refused on a weekly summary (units are never rescaled silently)
    model = from_lifetimes(fitter, time_unit="D")
    with pytest.raises(TimeUnitError):
        model.expected_purchases(cdnow, 10)


def test_engine_round_trip_via_dict(cdnow):
    wrapped = BetaGeo(engine="lifetimes").fit(cdnow)
    again = BetaGeo.from_dict(wrapped.to_dict())
    assert again.engine == "lifetimes"
    pd.testing.assert_series_equal(again.probability_alive(cdnow), wrapped.probability_alive(cdnow))


def test_from_lifetimes_wraps_a_fitted_bg_bb():
    """lifetimes' BG/BB fitter becomes clv.BetaGeoBetaBinom with the same estimates and
    predictions (the donations data, counts as weights)."""
    from lifetimes.datasets import load_donations

    donations = load_donations()
    fitter = BetaGeoBetaBinomFitter().fit(
        donations["frequency"], donations["recency"], donations["periods"], donations["weights"]
    )
    model = from_lifetimes(fitter, time_unit="Y")
    assert type(model).__name__ == "BetaGeoBetaBinom"
    np.testing.assert_allclose(
        model.params_.to_numpy(),
        fitter.params_[["alpha", "beta", "gamma", "delta"]].to_numpy(),
        rtol=1e-12,
    )
    summary = donations.rename(columns={"periods": "n_periods"}).drop(columns="weights")
    summary.attrs["time_unit"] = "Y"
    expected = fitter.conditional_expected_number_of_purchases_up_to_time(
        5, donations["frequency"], donations["recency"], donations["periods"]
    )
    np.testing.assert_allclose(model.expected_purchases(summary, 5), expected, rtol=1e-8)
