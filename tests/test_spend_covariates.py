"""Gamma-Gamma with spend covariates: the scale v_i = v exp(spend' z_i), recovered from
simulated data, zero coefficients = the plain model, and valued by the common engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import clvmodels as clv
from clvmodels.errors import InputError
from clvmodels.estimators import covariates as covariate_models
from clvmodels.families.bg_nbd import BetaGeoNBDFamily
from clvmodels.families.gamma_gamma import GammaGammaFamily

TRUTH = {"p": 4.0, "q": 6.0, "v": 30.0, "spend.premium": 0.7, "spend.age": -0.2}


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    """6,000 simulated customers: BG/NBD purchases, Gamma-Gamma spend whose scale depends on
    a binary and a numeric covariate."""
    rng = np.random.default_rng(11)
    n = 6000
    premium = rng.integers(0, 2, n).astype(float)
    age = rng.integers(-2, 3, n).astype(float)
    purchases = BetaGeoNBDFamily().simulate(
        {"r": 1.5, "alpha": 5.0, "a": 0.5, "b": 3.0}, np.full(n, 52.0), None, rng
    )
    v = TRUTH["v"] * np.exp(TRUTH["spend.premium"] * premium + TRUTH["spend.age"] * age)
    spend = GammaGammaFamily().simulate(
        {"p": TRUTH["p"], "q": TRUTH["q"], "v": v}, purchases["frequency"], rng
    )
    frame = pd.DataFrame(
        {
            "frequency": purchases["frequency"].astype(float),
            "recency": purchases["recency"],
            "T": purchases["T"],
            "monetary_value": spend["monetary_value"],
            "premium": premium,
            "age": age,
        },
        index=pd.RangeIndex(n, name="customer_id"),
    )
    frame.attrs["time_unit"] = "W"
    return frame


@pytest.fixture(scope="module")
def spend_model(customers):
    return clv.GammaGamma(spend_covariates=["premium", "age"]).fit(customers)


def test_spend_coefficients_are_recovered(spend_model):
    assert list(spend_model.params_.index) == list(TRUTH)
    z = (spend_model.params_ - pd.Series(TRUTH)) / spend_model.standard_errors_
    assert np.all(np.abs(z) < 4), z
    assert spend_model.summary().loc["spend.premium", "p_value"] < 1e-6


def test_zero_spend_coefficients_give_the_plain_likelihood(customers, spend_model):
    plain = clv.GammaGamma().fit(customers)
    objective = covariate_models.objective_function(
        spend_model.family_, spend_model.covariate_design_, spend_model.covariate_rows_
    )
    log_params = np.log(plain.params_.to_numpy())
    value, _ = objective(np.concatenate([log_params, np.zeros(2)]))
    plain_value, _ = plain.family_.negative_log_likelihood(log_params, plain.rows_)
    assert value == pytest.approx(plain_value, rel=1e-12)
    assert spend_model.n_customers_ == plain.n_customers_
    test = covariate_models.likelihood_ratio_test(plain, spend_model)
    assert test["df"] == 2 and test["p_value"] < 1e-9


def test_expected_spend_scales_with_the_covariates(customers, spend_model):
    new = customers.iloc[:2].copy()
    new[["frequency", "recency", "monetary_value"]] = 0.0
    new["premium"] = [0.0, 1.0]
    new["age"] = [0.0, 0.0]
    spend = spend_model.expected_spend(new)
    assert spend.iloc[1] / spend.iloc[0] == pytest.approx(
        np.exp(spend_model.params_["spend.premium"]), rel=1e-12
    )
    with pytest.raises(InputError, match="premium"):
        spend_model.expected_spend(customers.drop(columns="premium"))


def test_lifetime_value_uses_the_spend_covariates(customers, spend_model, tmp_path):
    purchase = clv.BetaGeo().fit(customers)
    value = clv.lifetime_value(
        purchase, spend_model, customers, horizon="52W", kind="predictive", draws=30,
        random_seed=3,
    )  # fmt: skip
    point = clv.lifetime_value(purchase, spend_model, customers, horizon="52W", kind="point")
    assert np.all(np.isfinite(value.to_numpy()))
    by_group = point.iloc[:, 0].groupby(customers["premium"]).mean()
    assert by_group[1.0] > 1.5 * by_group[0.0]
    clv.save_model(spend_model, tmp_path / "spend")
    loaded = clv.load_model(tmp_path / "spend")
    pd.testing.assert_series_equal(
        loaded.expected_spend(customers), spend_model.expected_spend(customers)
    )
