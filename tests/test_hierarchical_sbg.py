"""Hierarchical Bayesian sBG: the PyMC likelihood against the family's, Fader & Hardie (2007)'s
two cohorts against their separate maximum-likelihood fits and the published years 8-12,
partial pooling of many small simulated cohorts against per-cohort MLE, valuation through the
engine with posterior draws, per-group curves, unseen cohorts, model files and bad input.

Chains are short (2 x 300-500) and each model is compiled and sampled once per module.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import betaln

import clvmodels as clv
from clvmodels import registry
from clvmodels.errors import ConvergenceWarning, InputError, MissingExtraError, TimeUnitError
from clvmodels.estimators.bayes.bayesian import NEW_GROUP
from clvmodels.estimators.bayes.hierarchical_shifted_beta_geo import (
    HierarchicalShiftedBetaGeo,
    bdw_log_likelihood_pt,
    compress_subscriptions,
    sbg_log_likelihood_pt,
)
from clvmodels.families.beta_discrete_weibull import BetaDiscreteWeibullFamily
from clvmodels.families.shifted_beta_geo import ShiftedBetaGeoFamily, log_survival
from clvmodels.subscriptions import fit_by_cohort, project_survivors, table_from_survivors

# FH 2007, Table 1: survivors of 1,000 customers acquired in year 0, years 0-7 (calibration)
# and 8-12 (the holdout the paper projects), and the separate MLE fits (Table 2 / sec. 4)
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241]
HIGHEND = [1000, 869, 743, 653, 593, 551, 517, 491]
HOLDOUT = {"regular": [223, 207, 194, 183, 173], "highend": [468, 445, 427, 409, 394]}
PUBLISHED = {"regular": (0.704, 1.182), "highend": (0.668, 3.806)}


@pytest.fixture(scope="module")
def fh_table():
    return table_from_survivors({"regular": REGULAR, "highend": HIGHEND}, period="Y")


@pytest.fixture(scope="module")
def fh_fit(fh_table):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        return HierarchicalShiftedBetaGeo(group="cohort").fit(
            fh_table, draws=500, tune=500, chains=2, random_seed=1, progressbar=False
        )


def _cohort(table, name):
    part = table[table["cohort"] == name]
    part.attrs = dict(table.attrs)
    return part


# --------------------------------------------------------------------------------------------
# likelihood and compression
# --------------------------------------------------------------------------------------------
def test_pytensor_likelihood_is_the_familys(fh_table):
    import pytensor
    import pytensor.tensor as pt

    codes = (fh_table["cohort"] == "regular").to_numpy(np.int64)
    tenure, churned = ShiftedBetaGeoFamily.customer_arrays(fh_table)
    data = compress_subscriptions(codes, tenure, churned)
    assert data["n_rows"] == 2 * 8 and data["n_customers"] == 2000
    alpha, beta = pt.dvector("alpha"), pt.dvector("beta")
    total = pytensor.function(
        [alpha, beta], sbg_log_likelihood_pt(alpha, beta, data), mode="FAST_COMPILE"
    )
    family = ShiftedBetaGeoFamily()
    for a, b in ([0.668, 0.704], [3.806, 1.182]), ([5.0, 0.05], [0.2, 40.0]):
        params = {"alpha": np.asarray(a)[codes], "beta": np.asarray(b)[codes]}
        expected = family.log_likelihood(params, {"tenure": tenure, "churned": churned}).sum()
        assert total(np.asarray(a), np.asarray(b)) == pytest.approx(expected, rel=1e-12)


def test_a_million_subscribers_compress_to_their_distinct_rows():
    rng = np.random.default_rng(0)
    family = ShiftedBetaGeoFamily()
    drawn = family.simulate({"alpha": 0.8, "beta": 2.0}, rng.integers(1, 37, 1_000_000), None, rng)
    codes = rng.integers(0, 3, 1_000_000)
    data = compress_subscriptions(codes, drawn["tenure"], drawn["churned"])
    # per group: churned with tenure 1..36 and active with tenure 1..36
    assert data["n_rows"] <= 3 * 72
    assert data["n_customers"] == 1_000_000
    assert data["counts"].sum() == 1_000_000


def test_ungrouped_fit_of_a_million_subscribers():
    """No group column: a plain Bayesian sBG, sampled on the 72 distinct rows of 1,000,000
    simulated subscribers (as fast as 1,000 would be)."""
    rng = np.random.default_rng(0)
    family = ShiftedBetaGeoFamily()
    drawn = family.simulate({"alpha": 0.8, "beta": 2.0}, rng.integers(1, 37, 1_000_000), None, rng)
    table = pd.DataFrame({"tenure": drawn["tenure"].astype(np.int64), "churned": drawn["churned"]})
    table.attrs["time_unit"] = "M"
    model = HierarchicalShiftedBetaGeo(group=None).fit(
        table, draws=500, tune=300, chains=2, random_seed=3, progressbar=False
    )
    assert model.groups_ is None and not model.hierarchical_
    assert model.n_rows_ <= 72 and model.n_customers_ == 1_000_000
    mle = clv.ShiftedBetaGeo().fit(table)
    np.testing.assert_allclose(model.params_, mle.params_, rtol=0.01)
    assert list(model.param_draws(5, seed=0).columns) == ["alpha", "beta"]
    curves = model.survival_curves([0, 12], draws=50, seed=0)
    assert curves.loc[("(all)", 0.0), "survival"] == 1.0


# --------------------------------------------------------------------------------------------
# Fader & Hardie (2007): two cohorts of 1,000
# --------------------------------------------------------------------------------------------
def test_fh_cohorts_agree_with_their_separate_fits(fh_fit, fh_table):
    """With 1,000 subscribers per cohort the likelihood dominates the prior and the pooling
    (2 groups say little about the population, so the between-group scale stays near its
    prior and shrinks little), so each cohort's posterior is centred on its own MLE: the
    posterior mean differs from the mode (the MLE) by the posterior's skewness, a fraction of
    a posterior sd (0.2 sd for the regular cohort's beta, the most skewed), plus Monte Carlo
    error (about 0.04 sd with these draws). Tolerance: 0.4 posterior sd."""
    assert fh_fit.divergences_ == 0
    assert fh_fit.diagnostics_["r_hat"].max() < 1.01
    table = fh_fit.summary()
    mle = fit_by_cohort(clv.ShiftedBetaGeo(), fh_table)
    for cohort, published in PUBLISHED.items():
        np.testing.assert_allclose(mle[cohort].params_, published, atol=5e-4)
        for name, value in zip(("alpha", "beta"), published, strict=True):
            row = table.loc[(name, cohort)]
            assert abs(row["mean"] - value) < 0.4 * row["sd"], (cohort, name, row["mean"])
            assert row["n_customers"] == 1000
    assert fh_fit.n_rows_ == 16 and fh_fit.n_customers_ == 2000


def test_compressed_table_with_weights_is_the_same_fit(fh_fit, fh_table):
    compressed = table_from_survivors(
        {"regular": REGULAR, "highend": HIGHEND}, period="Y", expand=False
    )
    assert len(compressed) == 16
    model = HierarchicalShiftedBetaGeo().fit(
        compressed,
        weights=compressed["customers"],
        draws=500,
        tune=500,
        chains=2,
        random_seed=1,
        progressbar=False,
    )
    # the same distinct rows and counts: the same model and, with the same seed, the same draws
    assert model.n_customers_ == 2000 and model.n_rows_ == 16
    assert model.summary().loc[("alpha", "regular"), "n_customers"] == 1000
    np.testing.assert_allclose(
        model.param_draws(50, seed=1).to_numpy(), fh_fit.param_draws(50, seed=1).to_numpy()
    )
    with pytest.raises(InputError, match="weights"):
        HierarchicalShiftedBetaGeo().fit(compressed, weights=[1.0, 2.0], draws=10, tune=10)


def test_fh_years_8_to_12_inside_the_predictive_intervals(fh_fit, fh_table):
    for cohort, actual in HOLDOUT.items():
        projected = project_survivors(fh_fit, _cohort(fh_table, cohort), 5, draws=500, seed=3)
        assert np.all(projected["lower"].to_numpy() <= actual), (cohort, projected)
        assert np.all(actual <= projected["upper"].to_numpy()), (cohort, projected)
        # the point projection is the family's sum_i S(n_i + k) / S(n_i) at the cohort's
        # posterior means
        alpha, beta = (fh_fit.point_draws()[(name, cohort)].iloc[0] for name in ("alpha", "beta"))
        k = np.arange(1, 6)
        hand = 241 if cohort == "regular" else 491
        hand = hand * np.exp(betaln(alpha, beta + 7 + k) - betaln(alpha, beta + 7))
        np.testing.assert_allclose(projected["expected"], hand, rtol=1e-10)


def test_survival_and_retention_curves_per_cohort(fh_fit):
    periods = np.arange(13)
    curves = fh_fit.survival_curves(periods, draws=300, seed=0)
    assert curves.index.names == ["group", "period"]
    assert list(curves.index.get_level_values("group").unique()) == [
        "highend",
        "regular",
        NEW_GROUP,
    ]
    point = fh_fit.point_draws()
    for cohort in ("highend", "regular"):
        alpha, beta = (point[(name, cohort)].iloc[0] for name in ("alpha", "beta"))
        sub = curves.loc[cohort]
        np.testing.assert_allclose(sub["survival"], np.exp(log_survival(alpha, beta, periods)))
        assert np.all(sub["lower"] <= sub["survival"] + 1e-12)
        assert np.all(sub["survival"] <= sub["upper"] + 1e-12)
    # the observed calibration survivors lie inside the cohort's parameter interval, roughly
    observed = np.asarray(HIGHEND) / 1000
    assert np.abs(curves.loc["highend"]["survival"].to_numpy()[:8] - observed).max() < 0.02
    # a new cohort is less certain than either fitted one
    width = curves["upper"] - curves["lower"]
    assert width.loc[NEW_GROUP].iloc[5] > width.loc["regular"].iloc[5]
    retention = fh_fit.retention_curves(np.arange(1, 13), draws=0)
    assert list(retention.columns) == ["retention"]
    # aggregate retention rises with tenure (FH 2007 sec. 2: the sorting effect)
    assert np.all(np.diff(retention.loc["regular"]["retention"]) > 0)


# --------------------------------------------------------------------------------------------
# duration dependence: the beta-discrete-Weibull variant
# --------------------------------------------------------------------------------------------
def test_pytensor_bdw_likelihood_is_the_familys(fh_table):
    import pytensor
    import pytensor.tensor as pt

    codes = (fh_table["cohort"] == "regular").to_numpy(np.int64)
    tenure, churned = ShiftedBetaGeoFamily.customer_arrays(fh_table)
    data = compress_subscriptions(codes, tenure, churned)
    alpha, beta, c = pt.dvector("alpha"), pt.dvector("beta"), pt.dvector("c")
    loglik = bdw_log_likelihood_pt(alpha, beta, c, data)
    total = pytensor.function(
        [alpha, beta, c], [loglik, *pytensor.grad(loglik, [alpha, beta, c])], mode="FAST_COMPILE"
    )
    family = BetaDiscreteWeibullFamily()
    values = {"alpha": np.array([0.21, 0.46]), "beta": np.array([1.43, 0.78]), "c": [1.7, 1.3]}
    values = {k: np.asarray(v) for k, v in values.items()}
    value, *gradient = total(values["alpha"], values["beta"], values["c"])
    per_customer = {k: v[codes] for k, v in values.items()}
    expected = family.log_likelihood(per_customer, {"tenure": tenure, "churned": churned}).sum()
    assert value == pytest.approx(expected, rel=1e-12)
    # the gradient is finite everywhere, including the tenure-1 churners (0 ** c)
    assert all(np.all(np.isfinite(g)) for g in gradient)


@pytest.fixture(scope="module")
def fh_bdw_fit(fh_table):
    return HierarchicalShiftedBetaGeo(duration_dependence=True).fit(
        fh_table, draws=800, tune=500, chains=2, random_seed=1, progressbar=False
    )


def test_bdw_cohorts_and_their_projection(fh_bdw_fit, fh_fit, fh_table, tmp_path):
    """Each cohort's (alpha, beta, c) is centred near its separate BdW MLE (MLE c = 1.28 and
    1.72 with standard errors 0.30: the two cohorts' c are pooled toward each other, so the
    tolerance is 0.6 posterior sd), and the high-end cohort's years 8-12, which sBG
    underprojects (FH 2007's Figure 4), are projected closer with duration dependence."""
    model = fh_bdw_fit
    assert isinstance(model.family_, BetaDiscreteWeibullFamily)
    assert model.param_names == ("alpha", "beta", "c")
    assert model.divergences_ == 0
    assert model.diagnostics_["r_hat"].max() < 1.02
    table = model.summary()
    mle = fit_by_cohort(clv.BetaDiscreteWeibull(), fh_table)
    for cohort in ("regular", "highend"):
        for name in ("alpha", "beta", "c"):
            row = table.loc[(name, cohort)]
            assert abs(row["mean"] - mle[cohort].params_[name]) < 0.6 * row["sd"], (cohort, name)
    errors = {}
    for label, fitted in (("bdw", model), ("sbg", fh_fit)):
        projected = project_survivors(fitted, _cohort(fh_table, "highend"), 5, draws=300, seed=4)
        actual = np.asarray(HOLDOUT["highend"])
        assert np.all((projected["lower"] <= actual) & (actual <= projected["upper"]))
        errors[label] = np.abs(projected["expected"].to_numpy() - actual).max()
    assert errors["bdw"] < 0.5 * errors["sbg"], errors
    clv.save_model(model, tmp_path / "bdw")
    loaded = clv.load_model(tmp_path / "bdw")
    assert isinstance(loaded.family_, BetaDiscreteWeibullFamily) and loaded.duration_dependence
    sample = fh_table[~fh_table["churned"]].groupby("cohort").head(1)
    pd.testing.assert_series_equal(
        loaded.expected_purchases(sample, 5), model.expected_purchases(sample, 5)
    )
    with pytest.raises(ValueError, match="duration_dependence"):
        HierarchicalShiftedBetaGeo(duration_dependence="shared")


# --------------------------------------------------------------------------------------------
# partial pooling: many small cohorts
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_cohorts():
    """20 cohorts x 50 subscribers observed for 6 periods, each cohort's (alpha, beta) drawn
    around a population (log-sd 0.3)."""
    rng = np.random.default_rng(1)
    n_groups, size, periods = 20, 50, 6
    log_alpha = np.log(0.8) + 0.3 * rng.standard_normal(n_groups)
    log_beta = np.log(2.5) + 0.3 * rng.standard_normal(n_groups)
    family = ShiftedBetaGeoFamily()
    parts = []
    for g in range(n_groups):
        params = {"alpha": np.exp(log_alpha[g]), "beta": np.exp(log_beta[g])}
        drawn = family.simulate(params, np.full(size, periods), None, rng)
        parts.append(
            pd.DataFrame(
                {"cohort": f"c{g:02d}", "tenure": drawn["tenure"], "churned": drawn["churned"]}
            )
        )
    table = pd.concat(parts, ignore_index=True)
    table["tenure"] = table["tenure"].astype(np.int64)
    table.index.name = "customer_id"
    table.attrs["time_unit"] = "M"
    truth = pd.DataFrame(
        {"alpha": np.exp(log_alpha), "beta": np.exp(log_beta)},
        index=[f"c{g:02d}" for g in range(n_groups)],
    )
    return table, truth


def test_partial_pooling_beats_separate_fits_on_small_cohorts(small_cohorts):
    """Per-cohort MLE on 50 subscribers is noisy (several land far out on the alpha = beta
    ridge); the hierarchy pulls each cohort toward the population. Measured with this seed:
    RMS error of (log alpha, log beta) 0.75 (MLE) vs 0.37 (posterior means), of the 24-period
    survival curve 0.090 vs 0.063."""
    table, truth = small_cohorts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-cohort MLE on boundaries; 2 short chains
        separate = fit_by_cohort(clv.ShiftedBetaGeo(), table)
        model = HierarchicalShiftedBetaGeo().fit(
            table, draws=400, tune=400, chains=2, random_seed=2, progressbar=False
        )
    assert model.divergences_ == 0
    assert model.groups_ == list(truth.index)
    mle = pd.DataFrame({c: separate[c].params_ for c in truth.index}).T[["alpha", "beta"]]
    posterior = model.point_draws()
    pooled = pd.DataFrame(
        {name: [posterior[(name, c)].iloc[0] for c in truth.index] for name in ("alpha", "beta")},
        index=truth.index,
    )

    def rms(error):
        return float(np.sqrt(np.mean(np.square(error))))

    mle_error = rms(np.log(mle) - np.log(truth))
    pooled_error = rms(np.log(pooled) - np.log(truth))
    assert pooled_error < 0.6 * mle_error, (pooled_error, mle_error)

    t = np.arange(1, 25)

    def curve(params):
        alpha = params["alpha"].to_numpy()[:, None]
        return np.exp(log_survival(alpha, params["beta"].to_numpy()[:, None], t))

    draws = model.param_draws(400, seed=0)
    pooled_curves = np.stack(
        [
            np.exp(log_survival(draws[("alpha", c)].to_numpy()[:, None], draws[("beta", c)]
                                .to_numpy()[:, None], t)).mean(axis=0)
            for c in truth.index
        ]
    )  # fmt: skip
    true_curves = curve(truth)
    assert rms(pooled_curves - true_curves) < 0.85 * rms(curve(mle) - true_curves)


# --------------------------------------------------------------------------------------------
# valuation through the engine, unseen cohorts, model files
# --------------------------------------------------------------------------------------------
def _hand_value(alpha, beta, tenure, years, price, rate):
    k = np.arange(1, years + 1)
    survive = np.exp(betaln(alpha, beta + tenure + k) - betaln(alpha, beta + tenure))
    return price * np.sum(survive / (1 + rate) ** k)


def test_valuation_with_posterior_draws(fh_fit, fh_table):
    table = fh_table.groupby(["cohort", "churned"]).head(3)  # active and churned, per cohort
    table.attrs = dict(fh_table.attrs)
    price = clv.SubscriptionPrice(price=100.0).fit(table)
    settings = {"horizon": "5Y", "annual_discount_rate": 0.1, "margin": 1.0}
    point = clv.lifetime_value(fh_fit, price, table, kind="point", **settings)
    expected = clv.lifetime_value(
        fh_fit, price, table, kind="expected", draws=300, random_seed=5, **settings
    )
    active = ~table["churned"]
    assert np.all(point.loc[~active, "clv_mean"] == 0)
    draws = fh_fit.point_draws()
    for cohort in ("regular", "highend"):
        rows = active & (table["cohort"] == cohort)
        alpha, beta = (draws[(name, cohort)].iloc[0] for name in ("alpha", "beta"))
        hand = _hand_value(alpha, beta, 7, 5, 100.0, 0.1)
        np.testing.assert_allclose(point.loc[rows, "clv_mean"], hand, rtol=1e-10)
        row = expected.loc[rows].iloc[0]
        assert row["clv_lower"] < hand < row["clv_upper"]
        assert row["clv_mean"] == pytest.approx(hand, rel=0.02)
    # high-end subscribers churn less: worth more
    assert (
        expected.loc[active & (table["cohort"] == "highend"), "clv_mean"].iloc[0]
        > expected.loc[active & (table["cohort"] == "regular"), "clv_mean"].iloc[0]
    )
    dert = clv.discounted_expected_residual_transactions(
        fh_fit, table[active].groupby("cohort").head(1), annual_discount_rate=0.1
    )
    assert np.all(dert > 0)
    # predictive intervals: posterior draws, then each subscriber's remaining lifetime
    predictive = clv.lifetime_value(
        fh_fit, price, table, kind="predictive", draws=2000, random_seed=6, **settings
    )
    assert np.all(predictive.loc[~active, "clv_upper"] == 0)
    row = predictive.loc[active & (table["cohort"] == "regular")].iloc[0]
    assert row["clv_lower"] == 0 and row["clv_upper"] <= 100 * np.sum(1.1 ** -np.arange(1, 6))
    hand = _hand_value(
        *(draws[(name, "regular")].iloc[0] for name in ("alpha", "beta")), 7, 5, 100.0, 0.1
    )
    assert row["clv_mean"] == pytest.approx(hand, rel=0.05)
    equity = clv.customer_equity(
        fh_fit, price, table, kind="expected", draws=200, random_seed=7, **settings
    ).iloc[0]
    assert equity["equity_lower"] < point["clv_mean"].sum() < equity["equity_upper"]


def test_unseen_cohort_takes_the_population_draws(fh_fit, fh_table):
    new = fh_table[~fh_table["churned"]].groupby("cohort").head(1).copy()
    new.loc[new.index[0], "cohort"] = "next-year"
    draws = fh_fit.param_draws(50, seed=1)
    params = fh_fit.customer_params(new, draws)
    assert params["beta"].shape == (50, 2)
    np.testing.assert_array_equal(params["beta"][:, 0], draws[("beta", NEW_GROUP)])
    np.testing.assert_array_equal(params["beta"][:, 1], draws[("beta", new["cohort"].iloc[1])])
    per_draw = fh_fit.predict_draws(new, t=3, n=50, seed=1)
    assert per_draw.shape == (2, 50) and np.all((per_draw >= 0) & (per_draw <= 3))
    assert fh_fit.expected_purchases_new_customer(4, group="highend") > (
        fh_fit.expected_purchases_new_customer(4, group="regular")
    )
    with pytest.raises(InputError, match="cohort"):
        fh_fit.expected_purchases(new.drop(columns="cohort"), 3)


def test_model_files_round_trip(fh_fit, fh_table, tmp_path):
    clv.save_model(fh_fit, tmp_path / "hsbg")
    loaded = clv.load_model(tmp_path / "hsbg")
    assert type(loaded) is HierarchicalShiftedBetaGeo
    assert loaded.groups_ == fh_fit.groups_
    pd.testing.assert_series_equal(loaded.params_, fh_fit.params_)
    pd.testing.assert_frame_equal(loaded.param_draws(20, seed=2), fh_fit.param_draws(20, seed=2))
    sample = fh_table.groupby(["cohort", "churned"]).head(1)
    pd.testing.assert_series_equal(
        loaded.expected_purchases(sample, 4), fh_fit.expected_purchases(sample, 4)
    )


def test_fit_without_pymc_names_the_extra(fh_table, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymc", None)  # import pymc now fails
    with pytest.raises(MissingExtraError, match=r"clvmodels\[bayes\]"):
        HierarchicalShiftedBetaGeo().fit(fh_table)


def test_registry_and_public_name():
    assert clv.HierarchicalShiftedBetaGeo is HierarchicalShiftedBetaGeo
    assert registry.estimator_class("purchase", "hierarchical-sbg") is HierarchicalShiftedBetaGeo
    assert "hierarchical-sbg" in registry.purchase_model_names()


# --------------------------------------------------------------------------------------------
# bad input: the table's checks, before any sampling
# --------------------------------------------------------------------------------------------
def test_bad_tables_are_input_errors(fh_table):
    model = HierarchicalShiftedBetaGeo()
    with pytest.raises(InputError, match="cohort"):
        model.fit(fh_table.drop(columns="cohort"), draws=10, tune=10)
    bad = fh_table.copy()
    bad.loc[bad.index[0], "tenure"] = 0  # churned with tenure 0
    with pytest.raises(InputError, match="tenure must be >= 1"):
        model.fit(bad, draws=10, tune=10)
    nobody_left = fh_table[~fh_table["churned"]].copy()
    nobody_left.attrs = dict(fh_table.attrs)
    with pytest.raises(InputError, match="no customer churned"):
        model.fit(nobody_left, draws=10, tune=10)
    missing = fh_table.copy()
    missing.loc[missing.index[3], "cohort"] = None
    with pytest.raises(InputError, match="missing values"):
        model.fit(missing, draws=10, tune=10)
    no_unit = fh_table.copy()
    no_unit.attrs = {}
    with pytest.raises(TimeUnitError):
        model.fit(no_unit, draws=10, tune=10)
    with pytest.raises(ValueError, match="unknown prior"):
        HierarchicalShiftedBetaGeo(priors={"theta": {"mu": 0.0}}).fit(fh_table, draws=10, tune=10)
