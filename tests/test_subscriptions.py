"""Subscription tables, the price per payment and subscriber value through the valuation
engine (the same code path as every other model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import betaln

import clvmodels as clv
from clvmodels.errors import InputError
from clvmodels.subscriptions import (
    fit_by_cohort,
    observed_survivors,
    subscription_table,
    table_from_survivors,
    validate_subscription_table,
)

REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241]
HIGHEND = [1000, 869, 743, 653, 593, 551, 517, 491]


# --------------------------------------------------------------------------------------------
# tables from subscriptions files
# --------------------------------------------------------------------------------------------
def _file(rows):
    return pd.DataFrame(rows, columns=["customer_id", "start", "end"])


def test_monthly_tenure_counts_calendar_months():
    frame = _file(
        [
            ("a", "2024-01-15", None),  # active: 15 Jan -> 30 Jun = 5 whole months
            ("b", "2024-01-31", "2024-02-29"),  # one month to the clipped anchor: paid 1
            ("c", "2024-01-10", "2024-03-10"),  # exactly two months: paid 2
            ("d", "2024-01-10", "2024-03-11"),  # into a third month: paid 3
            ("e", "2024-06-20", "2024-06-20"),  # cancelled the day it started: paid 1
            ("f", "2024-03-01", "2024-09-01"),  # ends after observation: active, 3 months
            ("g", "2024-06-30", None),  # started at the end of observation: tenure 0
        ]
    )
    table = subscription_table(frame, observation_end="2024-06-30", period="M")
    assert table.index.name == "customer_id"
    assert table["tenure"].to_dict() == {"a": 5, "b": 1, "c": 2, "d": 3, "e": 1, "f": 3, "g": 0}
    assert table["churned"].to_dict() == {
        "a": False, "b": True, "c": True, "d": True, "e": True, "f": False, "g": False,
    }  # fmt: skip
    assert table.loc["a", "cohort"] == "2024-01"
    assert table.attrs["time_unit"] == "M"
    validate_subscription_table(table)


def test_yearly_weekly_tables_and_kept_columns():
    frame = _file([(1, "2020-03-01", "2023-02-28"), (2, "2020-03-01", None)])
    frame["price"] = [10.0, 12.0]
    frame["plan"] = ["basic", "pro"]
    table = subscription_table(
        frame, observation_end="2024-03-01", period="Y", cohort="plan", keep=["price"]
    )
    assert table["tenure"].tolist() == [3, 4]
    assert table["churned"].tolist() == [True, False]
    assert table["cohort"].tolist() == ["basic", "pro"]
    assert table["price"].tolist() == [10.0, 12.0]
    weekly = subscription_table(frame, observation_end="2020-03-16", period="W")
    assert weekly["tenure"].tolist() == [2, 2]
    assert weekly.attrs["time_unit"] == "W"


@pytest.mark.parametrize(
    ("rows", "kwargs", "match"),
    [
        ([("a", "2024-02-01", "2024-01-01")], {}, "end before they start"),
        ([("a", "2024-08-01", None)], {"observation_end": "2024-06-30"}, "start after"),
        ([("a", "2024-01-01", None), ("a", "2024-02-01", None)], {}, "more than one"),
        ([("a", "not a date", None)], {}, "not dates"),
        ([("a", None, None)], {}, "not dates or are missing"),
        ([(None, "2024-01-01", None)], {}, "missing customer ids"),
        ([("a", "2024-01-01", None)], {"period": "H"}, "period must be one of"),
    ],
)
def test_bad_subscriptions_are_input_errors(rows, kwargs, match):
    with pytest.raises(InputError, match=match):
        subscription_table(_file(rows), **kwargs)


def test_missing_columns_name_the_fix():
    with pytest.raises(InputError, match=r"missing column\(s\) \['begin'\]"):
        subscription_table(_file([("a", "2024-01-01", None)]), start="begin")


@pytest.mark.parametrize(
    ("tenure", "churned", "match"),
    [
        ([1.5, 2], [True, False], "whole numbers"),
        ([-1, 2], [True, False], "whole numbers"),
        ([1, 2], ["yes", False], "True/False"),
        ([1, 2], [None, False], "True/False"),
        ([0, 2], [True, False], "tenure must be >= 1"),
    ],
)
def test_invalid_tables_are_input_errors(tenure, churned, match):
    table = pd.DataFrame({"tenure": tenure, "churned": churned})
    table.attrs["time_unit"] = "M"
    with pytest.raises(InputError, match=match):
        clv.ShiftedBetaGeo().fit(table)


def test_table_checks_columns_and_ids():
    with pytest.raises(InputError, match="tenure"):
        validate_subscription_table(pd.DataFrame({"churned": [True]}))
    table = pd.DataFrame({"tenure": [1, 2], "churned": [True, False]}, index=["a", "a"])
    with pytest.raises(InputError, match="duplicated customer ids"):
        validate_subscription_table(table)
    with pytest.raises(InputError, match="DataFrame"):
        validate_subscription_table([1, 2])


# --------------------------------------------------------------------------------------------
# tables from survivor counts
# --------------------------------------------------------------------------------------------
def test_survivor_counts_make_customers():
    table = table_from_survivors({"regular": REGULAR, "highend": HIGHEND}, period="Y")
    assert len(table) == 2000
    regular = table[table["cohort"] == "regular"]
    assert (regular["churned"] & (regular["tenure"] == 1)).sum() == 369
    assert (~regular["churned"]).sum() == 241
    assert set(regular.loc[~regular["churned"], "tenure"]) == {7}
    np.testing.assert_array_equal(observed_survivors(regular, range(8)).to_numpy(), REGULAR)
    assert np.isnan(observed_survivors(regular, [8]).iloc[0])
    compressed = table_from_survivors(REGULAR, period="Y", expand=False)
    assert compressed["customers"].sum() == 1000
    np.testing.assert_array_equal(observed_survivors(compressed, range(8)).to_numpy(), REGULAR)


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        ([1000, 1100, 900], "never increase"),
        ([0, 0], "positive cohort size"),
        ([1000, 10.5], "whole numbers"),
        ([1000], "whole numbers"),
    ],
)
def test_bad_survivor_counts(counts, match):
    with pytest.raises(InputError, match=match):
        table_from_survivors(counts, period="Y")


def test_fit_by_cohort_is_one_fit_per_cohort():
    table = table_from_survivors({"regular": REGULAR, "highend": HIGHEND}, period="Y")
    fits = fit_by_cohort(clv.ShiftedBetaGeo(), table)
    assert list(fits) == ["highend", "regular"]
    assert fits["regular"].params_["alpha"] == pytest.approx(0.704, abs=5e-4)
    assert fits["highend"].params_["beta"] == pytest.approx(3.806, abs=5e-4)
    compressed = table_from_survivors({"regular": REGULAR}, period="Y", expand=False)
    weighted = fit_by_cohort(clv.ShiftedBetaGeo(), compressed, weights=compressed["customers"])
    np.testing.assert_allclose(weighted["regular"].params_, fits["regular"].params_, rtol=1e-6)
    with pytest.raises(InputError, match="segment"):
        fit_by_cohort(clv.ShiftedBetaGeo(), table, cohort="segment")


# --------------------------------------------------------------------------------------------
# subscriber value: the valuation engine with a price per payment
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def regular():
    table = table_from_survivors(REGULAR, period="Y")
    return table, clv.ShiftedBetaGeo().fit(table)


def _hand_value(model, tenure, years, price, rate):
    alpha, beta = model.params_
    k = np.arange(1, years + 1)
    survive = np.exp(betaln(alpha, beta + tenure + k) - betaln(alpha, beta + tenure))
    return price * np.sum(survive / (1 + rate) ** k)


def test_point_value_discounts_each_renewal_payment(regular):
    table, model = regular
    price = clv.SubscriptionPrice(price=100.0).fit(table)
    value = clv.lifetime_value(
        model, price, table, horizon="5Y", annual_discount_rate=0.1, margin=0.5, kind="point"
    )
    active = ~table["churned"]
    expected = 0.5 * _hand_value(model, 7, 5, 100.0, 0.1)
    np.testing.assert_allclose(value.loc[active, "clv_mean"], expected, rtol=1e-10)
    assert np.all(value.loc[~active, "clv_mean"] == 0)
    assert np.all(value.loc[active, "probability_alive"] == 1)
    np.testing.assert_allclose(
        value.loc[active, "expected_purchases"],
        model.expected_purchases(table[active], 5),
        rtol=1e-12,
    )


def test_predictive_and_parameter_intervals(regular):
    table, model = regular
    price = clv.SubscriptionPrice(price=100.0).fit(table)
    settings = {"horizon": "5Y", "annual_discount_rate": 0.1, "margin": 1.0}
    point = _hand_value(model, 7, 5, 100.0, 0.1)
    expected = clv.lifetime_value(
        model, price, table, kind="expected", draws=300, random_seed=3, **settings
    )
    predictive = clv.lifetime_value(
        model, price, table, kind="predictive", draws=4000, random_seed=3, **settings
    )
    active = ~table["churned"]
    row = expected.loc[active].iloc[0]
    assert row["clv_lower"] < point < row["clv_upper"]
    assert row["clv_mean"] == pytest.approx(point, rel=0.01)
    row = predictive.loc[active].iloc[0]
    # a subscriber's value is 0 (leaves at once) up to five discounted payments
    assert row["clv_lower"] == 0
    assert row["clv_upper"] <= 100 * np.sum(1.1 ** -np.arange(1, 6)) + 1e-9
    assert row["clv_mean"] == pytest.approx(point, rel=0.03)
    assert np.all(predictive.loc[~active, "clv_upper"] == 0)
    equity = clv.customer_equity(
        model, price, table, kind="predictive", draws=300, random_seed=4, **settings
    )
    total = equity.iloc[0]
    assert total["equity_lower"] < 241 * point < total["equity_upper"]


def test_price_column_and_price_errors(regular):
    table, model = regular
    priced = table.assign(price=np.where(table.index % 2 == 0, 10.0, 20.0))
    price = clv.SubscriptionPrice().fit(priced)
    value = clv.lifetime_value(
        model, price, priced, horizon="3Y", annual_discount_rate=0.0, margin=1.0, kind="point"
    )
    active = ~priced["churned"]
    unit = _hand_value(model, 7, 3, 1.0, 0.0)
    np.testing.assert_allclose(
        value.loc[active, "clv_mean"], priced.loc[active, "price"] * unit, rtol=1e-10
    )
    np.testing.assert_array_equal(price.expected_spend(priced), priced["price"])
    with pytest.raises(InputError, match="price"):
        clv.SubscriptionPrice().fit(table)
    with pytest.raises(InputError, match="price"):
        clv.SubscriptionPrice().fit(priced.assign(price=np.nan))
    with pytest.raises(InputError, match="price must be"):
        clv.SubscriptionPrice(price=-1.0).fit(table)
    assert len(price.param_draws(5)) == 5


def test_dert_of_subscribers(regular):
    table, model = regular
    dert = clv.discounted_expected_residual_transactions(
        model, table.iloc[[0, -1]], annual_discount_rate=0.1
    )
    assert dert.iloc[0] == 0
    assert dert.iloc[1] == pytest.approx(_hand_value(model, 7, 3000, 1.0, 0.1), rel=1e-12)
    bdw = clv.BetaDiscreteWeibull().fit(table)
    series = clv.discounted_expected_residual_transactions(
        bdw, table.iloc[[-1]], annual_discount_rate=0.1
    )
    alpha, beta, c = bdw.params_
    k = np.arange(1, 3000)
    direct = np.sum(
        np.exp(betaln(alpha, beta + (7 + k) ** c) - betaln(alpha, beta + 7**c)) / 1.1**k
    )
    assert series.iloc[0] == pytest.approx(direct, rel=1e-10)
    # payments fall on whole periods: the continuous-time quadrature does not apply
    with pytest.raises(InputError, match="no quadrature DERT"):
        clv.discounted_expected_residual_transactions(
            model, table.iloc[[-1]], annual_discount_rate=0.1, method="quadrature"
        )


def test_model_files_round_trip(regular, tmp_path):
    table, model = regular
    for fitted in (model, clv.BetaDiscreteWeibull().fit(table)):
        clv.save_model(fitted, tmp_path / type(fitted).__name__)
        loaded = clv.load_model(tmp_path / type(fitted).__name__)
        np.testing.assert_allclose(loaded.params_, fitted.params_)
        np.testing.assert_allclose(
            loaded.expected_purchases(table.iloc[-3:], 4),
            fitted.expected_purchases(table.iloc[-3:], 4),
        )


def test_a_million_subscribers_fit_on_their_distinct_rows():
    rng = np.random.default_rng(0)
    family = clv.ShiftedBetaGeo.family_class()
    drawn = family.simulate({"alpha": 0.8, "beta": 2.0}, rng.integers(1, 37, 1_000_000), None, rng)
    table = pd.DataFrame({"tenure": drawn["tenure"], "churned": drawn["churned"]})
    table.attrs["time_unit"] = "M"
    model = clv.ShiftedBetaGeo().fit(table)
    assert model.rows_.n_rows <= 72
    assert model.n_customers_ == 1_000_000
    assert model.params_["alpha"] == pytest.approx(0.8, rel=0.05)
    assert model.params_["beta"] == pytest.approx(2.0, rel=0.05)


# --------------------------------------------------------------------------------------------
# holdout evaluation per customer
# --------------------------------------------------------------------------------------------
def test_holdout_payments_from_two_observation_ends():
    frame = _file(
        [
            ("a", "2024-01-15", None),  # active at both: 4 -> 10 whole months, 6 payments
            ("b", "2024-01-15", "2024-08-20"),  # active, then left having paid 8 months: 3
            ("c", "2024-01-15", "2024-03-20"),  # churned before the calibration end: not counted
        ]
    )
    calibration = subscription_table(frame, observation_end="2024-05-31", period="M")
    later = subscription_table(frame, observation_end="2024-11-30", period="M")
    paid = clv.subscriptions.holdout_payments(calibration, later)
    assert paid.to_dict() == {"a": 6.0, "b": 3.0}
    with pytest.raises(InputError, match="in order"):
        clv.subscriptions.holdout_payments(later, calibration.assign(churned=False))


def test_evaluate_payments_on_simulated_holdout():
    family = clv.BetaDiscreteWeibull.family_class()
    rng = np.random.default_rng(8)
    params = {"alpha": 0.9, "beta": 2.0, "c": 0.8}
    drawn = family.simulate(params, rng.integers(2, 25, 20_000).astype(float), 12, rng)
    table = pd.DataFrame({"tenure": drawn["tenure"], "churned": drawn["churned"]})
    table.attrs["time_unit"] = "M"
    model = clv.BetaDiscreteWeibull().fit(table)
    active = ~table["churned"]
    actual = pd.Series(drawn["payments_holdout"][active], index=table.index[active])
    report = clv.subscriptions.evaluate_payments(model, table, actual, 12, draws=100, seed=1)
    assert report["customers"] == active.sum()
    assert abs(report["total_error"]) < 0.05
    assert 0.85 <= report["interval_coverage"] <= 1.0
    assert report["mae"] > 0


def test_equity_by_cohort_sums_the_joint_draws():
    table = table_from_survivors({"regular": REGULAR, "highend": HIGHEND}, period="Y")
    fits = fit_by_cohort(clv.ShiftedBetaGeo(), table)
    price = clv.SubscriptionPrice(price=100.0).fit(table)
    settings = {"horizon": "5Y", "annual_discount_rate": 0.1, "margin": 1.0, "kind": "point"}
    equity = clv.subscriptions.equity_by_cohort(fits, price, table, **settings)
    assert list(equity.index) == ["regular", "highend", "all"]
    for cohort, survivors in (("regular", 241), ("highend", 491)):
        point = _hand_value(fits[cohort], 7, 5, 100.0, 0.1) * survivors
        assert equity.loc[cohort, "equity_mean"] == pytest.approx(point, rel=1e-10)
    assert equity.loc["all", "equity_mean"] == pytest.approx(
        equity.loc[["regular", "highend"], "equity_mean"].sum(), rel=1e-12
    )
    assert equity.loc["all", "n_customers"] == 2000
    drawn = clv.subscriptions.equity_by_cohort(
        fits, price, table, **{**settings, "kind": "expected"}, draws=200, random_seed=3
    )
    # independent cohorts: the total's interval is narrower than the sum of the intervals
    widths = drawn["equity_upper"] - drawn["equity_lower"]
    assert widths["all"] < widths["regular"] + widths["highend"]
    assert drawn.loc["all", "equity_lower"] < equity.loc["all", "equity_mean"]
    assert equity.loc["all", "equity_mean"] < drawn.loc["all", "equity_upper"]
    with pytest.raises(InputError, match="no fitted model"):
        clv.subscriptions.equity_by_cohort({"regular": fits["regular"]}, price, table, **settings)


def test_clv_to_cac_and_payback_of_new_subscribers(regular):
    """A subscriber just acquired (tenure 0, first period paid): the engine values the renewals
    from now on (the first payment, made at acquisition, is not part of it); the payback period
    counts the periods until the discounted renewals reach the acquisition cost."""
    table, model = regular
    new = pd.DataFrame({"tenure": [0], "churned": [False]}, index=pd.Index(["new"], name="id"))
    new.attrs["time_unit"] = "Y"
    price = clv.SubscriptionPrice(price=100.0).fit(new)
    settings = {"horizon": "10Y", "annual_discount_rate": 0.1, "margin": 1.0}
    value = clv.lifetime_value(model, price, new, kind="point", period="1Y", **settings)
    flows = clv.valuation.expected_cash_flows(model, price, new, period="1Y", **settings)
    np.testing.assert_allclose(flows.sum(axis=1), value["clv_mean"], rtol=1e-12)
    alpha, beta = model.params_
    k = np.arange(1, 11)
    survive = np.exp(betaln(alpha, beta + k) - betaln(alpha, beta))
    np.testing.assert_allclose(flows.loc["new"].to_numpy(), 100 * survive / 1.1**k, rtol=1e-12)
    ratio = clv.clv_to_cac(value, 150.0, cash_flows=flows)
    assert ratio.loc["new", "clv_to_cac"] == pytest.approx(value.loc["new", "clv_mean"] / 150)
    cumulative = np.cumsum(100 * survive / 1.1**k)
    assert ratio.loc["new", "payback_period"] == np.argmax(cumulative >= 150) + 1
