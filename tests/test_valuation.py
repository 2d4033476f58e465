"""Tests of clvmodels.valuation: discounting arithmetic, units, the three kinds, totals, DERT.

Hand-computed cases use two tiny protocol models defined here (a customer who buys at a
constant Poisson rate forever, and a constant spend per purchase), so every number can be
worked out on paper; the real models (BG/NBD, Gamma-Gamma, Pareto/NBD) are checked against
lifetimes and against numerical integration.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import clvmodels as clv
from clvmodels import valuation as V
from clvmodels.errors import InputError, NotFittedError, TimeUnitError
from clvmodels.estimators.mle import FittedModel
from clvmodels.families.base import PurchaseFamily, SpendFamily
from clvmodels.valuation import ValuationSpec


# --------------------------------------------------------------------------------------------
# toy families and fitted-model doubles
# --------------------------------------------------------------------------------------------
class PoissonFamily(PurchaseFamily):
    """Everyone is alive forever and buys at rate ``lam`` per unit: E[X(T, T+t)] = lam t."""

    name = "poisson"
    label = "Poisson"
    param_names: ClassVar[tuple[str, ...]] = ("lam",)

    def probability_alive(self, params, x, t_x, T):
        return np.ones_like(params["lam"] * np.asarray(x, dtype=float))

    def expected_purchases(self, params, x, t_x, T, t, p_alive=None):
        return params["lam"] * t * np.ones_like(np.asarray(x, dtype=float))

    def sample_future_purchases(self, params, x, t_x, T, t_grid, rng, p_alive=None):
        lam = np.broadcast_to(params["lam"], np.broadcast_shapes(np.shape(params["lam"]), x.shape))
        steps = np.diff(np.concatenate([[0.0], t_grid]))
        return np.cumsum(rng.poisson(lam[..., None] * steps), axis=-1)


class ConstantSpendFamily(SpendFamily):
    """Every purchase spends exactly ``z``."""

    name = "constant"
    label = "constant spend"
    param_names: ClassVar[tuple[str, ...]] = ("z",)

    def expected_spend(self, params, x, m):
        return params["z"] * np.ones_like(np.asarray(x, dtype=float))

    def sample_future_spend(self, params, x, m, counts, rng):
        z = np.asarray(params["z"], dtype=float)
        return counts * z.reshape(z.shape + (1,) * (np.ndim(counts) - z.ndim))


class PoissonForever(FittedModel):
    """A fitted Poisson purchase model: the fitted-model surface valuation relies on."""

    family_class = PoissonFamily

    def __init__(self, lam: float, unit: str = "W", draws=None):
        self.family_ = PoissonFamily()
        self.params_ = pd.Series({"lam": float(lam)})
        self.time_unit_ = unit
        self.fixed_draws = draws

    def param_draws(self, n=200, seed=None):
        if self.fixed_draws is None:
            rng = np.random.default_rng(seed)
            return pd.DataFrame({"lam": self.params_["lam"] * rng.lognormal(0, 0.1, int(n))})
        return pd.DataFrame({"lam": np.resize(self.fixed_draws, int(n))})


class ConstantSpend(FittedModel):
    family_class = ConstantSpendFamily

    def __init__(self, z: float):
        self.family_ = ConstantSpendFamily()
        self.params_ = pd.Series({"z": float(z)})
        self.time_unit_ = None

    def param_draws(self, n=200, seed=None):
        return pd.DataFrame({"z": np.full(int(n), self.params_["z"])})


def toy_summary(n=3, unit="W"):
    s = pd.DataFrame(
        {
            "frequency": np.arange(n, dtype=float) % 5,
            "recency": np.arange(n, dtype=float) % 5,
            "T": np.full(n, 10.0),
            "monetary_value": np.full(n, 5.0),
        },
        index=pd.Index([f"c{i}" for i in range(n)], name="customer_id"),
    )
    s.attrs["time_unit"] = unit
    return s


# --------------------------------------------------------------------------------------------
# discounting and units
# --------------------------------------------------------------------------------------------
def test_period_grid_whole_and_partial_periods():
    ends, fractions, p, H = V.period_grid("10W", "4W", "W")
    np.testing.assert_allclose(ends, [4, 8, 10])
    np.testing.assert_allclose(fractions, [1, 1, 0.5])
    assert (p, H) == (4.0, 10.0)
    ends, fractions, _, _ = V.period_grid(f"{12 * 4.345}W", "4.345W", "W")
    assert len(ends) == 12 and np.all(fractions == 1)
    np.testing.assert_allclose(ends[-1], 12 * 4.345)
    # bare unit means one of it; calendar conversions go through clvmodels.units
    ends, _, p, _ = V.period_grid("1Y", "M", "D")
    assert len(ends) == 12
    np.testing.assert_allclose(p, 365.25 / 12)
    ends, _, _, _ = V.period_grid("2W", "14D", "W")
    np.testing.assert_allclose(ends, [2.0])
    assert V.period_grid(0, "M", "W")[0].size == 0


def test_discount_factors_hand_computed():
    np.testing.assert_allclose(
        V.discount_factors(np.array([1.0, 2.0, 2.5]), 1.0, 0.1), [1 / 1.1, 1 / 1.21, 1.1**-2.5]
    )
    # annual 10% in monthly periods: i = 1.1 ** (1/12) - 1, 12 months discount exactly 1/1.1
    grid = ValuationSpec(horizon="1Y", period="1M", annual_discount_rate=0.10).grid("D")
    np.testing.assert_allclose(grid.rate, 1.1 ** (1 / 12) - 1)
    np.testing.assert_allclose(grid.discount[-1], 1 / 1.1)
    with pytest.raises(InputError, match="not both"):
        ValuationSpec(horizon="1Y", period="1M", annual_discount_rate=0.10,
                      period_discount_rate=0.01)  # fmt: skip


def test_point_value_hand_computed_with_partial_period_and_costs():
    # rate 2 purchases/week, spend 5, margin 0.5: 5 per week of margin; 10 weeks in 4-week
    # periods at 1% per period -> cash flows 20, 20, 10 at exponents 1, 2, 2.5
    s = toy_summary()
    pm, sm = PoissonForever(2.0), ConstantSpend(5.0)
    v = clv.lifetime_value(
        pm, sm, s, horizon="10W", period="4W", period_discount_rate=0.01, margin=0.5, kind="point"
    )
    expected = 20 / 1.01 + 20 / 1.01**2 + 10 / 1.01**2.5
    np.testing.assert_allclose(v["clv_mean"], expected, rtol=1e-12)
    np.testing.assert_allclose(v["expected_purchases"], 20.0)
    np.testing.assert_allclose(v["expected_spend"], 5.0)
    assert (v["clv_lower"] == v["clv_mean"]).all() and (v["clv_upper"] == v["clv_mean"]).all()
    # a scalar cost of 3 per period, prorated in the half period
    vc = clv.lifetime_value(
        pm,
        sm,
        s,
        horizon="10W",
        period="4W",
        period_discount_rate=0.01,
        margin=0.5,
        kind="point",
        costs=3.0,
    )
    cost_pv = 3 / 1.01 + 3 / 1.01**2 + 1.5 / 1.01**2.5
    np.testing.assert_allclose(vc["clv_mean"], expected - cost_pv, rtol=1e-12)
    # per-customer Series, per-period list and per customer-period DataFrame
    per_customer = pd.Series([0.0, 1.0, 2.0], index=s.index)
    v2 = clv.lifetime_value(
        pm, sm, s, "10W", None, 0.5, kind="point", period="4W", period_discount_rate=0.01,
        costs=per_customer,
    )  # fmt: skip
    np.testing.assert_allclose(v2["clv_mean"], expected - per_customer * cost_pv / 3)
    v3 = clv.lifetime_value(
        pm, sm, s, "10W", kind="point", period="4W", period_discount_rate=0.01, margin=0.5,
        costs=[1.0, 0.0, 4.0],
    )  # fmt: skip
    np.testing.assert_allclose(v3["clv_mean"], expected - 1 / 1.01 - 4 / 1.01**2.5)
    frame = pd.DataFrame(np.ones((3, 3)), index=s.index[::-1])
    v4 = clv.lifetime_value(
        pm, sm, s, "10W", kind="point", period="4W", period_discount_rate=0.01, margin=0.5,
        costs=frame,
    )  # fmt: skip
    np.testing.assert_allclose(v4["clv_mean"], expected - (1 / 1.01 + 1 / 1.01**2 + 1.01**-2.5))
    with pytest.raises(InputError, match="3 per-period costs"):
        clv.lifetime_value(pm, sm, s, "10W", period="4W", kind="point", costs=[1.0, 2.0])
    with pytest.raises(InputError, match="no value for 1 customers"):
        clv.lifetime_value(pm, sm, s, "10W", period="4W", kind="point", costs=per_customer[:2])


def test_annual_rate_conversion_and_monthly_periods():
    s = toy_summary()
    pm, sm = PoissonForever(1.0, unit="D"), ConstantSpend(1.0)
    s.attrs["time_unit"] = "D"
    v = clv.lifetime_value(pm, sm, s, horizon="12M", period="M", annual_discount_rate=0.10,
                           kind="point")  # fmt: skip
    month = 365.25 / 12
    i = 1.1 ** (1 / 12) - 1
    np.testing.assert_allclose(v["clv_mean"], sum(month / (1 + i) ** k for k in range(1, 13)))
    # default annual rate is 10%
    v_default = clv.lifetime_value(pm, sm, s, horizon="12M", period="M", kind="point")
    np.testing.assert_allclose(v_default["clv_mean"], v["clv_mean"])
    # zero rate: plain sum
    v0 = clv.lifetime_value(pm, sm, s, horizon="3Y", period="1Y", annual_discount_rate=0.0,
                            kind="point")  # fmt: skip
    np.testing.assert_allclose(v0["clv_mean"], 3 * 365.25)


def test_unit_mismatch_and_bad_durations_are_rejected():
    s = toy_summary(unit="D")
    pm, sm = PoissonForever(1.0, unit="W"), ConstantSpend(1.0)
    with pytest.raises(TimeUnitError, match="unit 'D' but the model was fit in unit 'W'"):
        clv.lifetime_value(pm, sm, s, kind="point")
    with pytest.raises(TimeUnitError, match="unit 'D' but the model"):
        clv.predict_purchases(pm, s)
    s.attrs.pop("time_unit")
    with pytest.raises(TimeUnitError, match="has no time unit"):
        clv.lifetime_value(pm, sm, s, kind="point")
    s = toy_summary()
    with pytest.raises(TimeUnitError, match="unknown time unit"):
        clv.lifetime_value(pm, sm, s, horizon="52X", kind="point")
    with pytest.raises(InputError, match="period must be a positive"):
        clv.lifetime_value(pm, sm, s, period=0, kind="point")
    with pytest.raises(InputError, match="kind must be one of"):
        clv.lifetime_value(pm, sm, s, kind="mean")
    with pytest.raises(InputError, match="interval must be strictly between"):
        clv.lifetime_value(pm, sm, s, interval=1.5)
    with pytest.raises(InputError, match="spend_model must be a fitted spend model"):
        clv.lifetime_value(pm, pm, s)
    unfitted = PoissonForever(1.0)
    unfitted.params_ = None
    with pytest.raises(NotFittedError):
        clv.lifetime_value(unfitted, sm, s)


def test_zero_margin_and_zero_horizon_give_zero():
    s = toy_summary()
    pm, sm = PoissonForever(2.0), ConstantSpend(5.0)
    for kind in V.KINDS:
        v = clv.lifetime_value(pm, sm, s, margin=0.0, kind=kind, draws=20, random_seed=1)
        assert (v[["clv_mean", "clv_median", "clv_lower", "clv_upper"]] == 0).all().all()
        v = clv.lifetime_value(pm, sm, s, horizon=0, kind=kind, draws=20, random_seed=1)
        assert (v[["clv_mean", "clv_lower", "clv_upper", "expected_purchases"]] == 0).all().all()
        assert not v.isna().any().any()
        n = clv.predict_purchases(pm, s, t="0W", kind=kind, draws=20, random_seed=1)
        assert (n == 0).all().all()
    eq = clv.customer_equity(pm, sm, s, horizon="0D", draws=10, random_seed=0)
    assert (eq.filter(like="equity") == 0).all().all()


def test_predictive_toy_distribution_and_seeds():
    # constant rate, fixed parameters: the discounted value is z * sum_k d_k N_k, N_k Poisson
    s = toy_summary(n=2000)
    pm, sm = PoissonForever(0.5, draws=[0.5]), ConstantSpend(2.0)
    kw = dict(horizon="8W", period="4W", period_discount_rate=0.05, draws=50, random_seed=3)
    v, arr = clv.lifetime_value(pm, sm, s, kind="predictive", return_draws=True, **kw)
    d = np.array([1 / 1.05, 1 / 1.05**2])
    exact_mean = 2.0 * 2.0 * d.sum()
    np.testing.assert_allclose(v["clv_mean"].mean(), exact_mean, rtol=0.02)
    # the pooled draws follow the exact distribution (simulated here independently)
    rng = np.random.default_rng(0)
    sims = 2.0 * (rng.poisson(2.0, (200_000, 2)) @ d)
    levels = [0.05, 0.25, 0.5, 0.75, 0.95]
    np.testing.assert_allclose(
        np.quantile(arr.values.ravel(), levels, method="inverted_cdf"),
        np.quantile(sims, levels, method="inverted_cdf"),
        atol=0.1,  # the values are discrete: at most one atom apart
    )
    np.testing.assert_allclose(arr.values.var(), sims.var(), rtol=0.03)
    np.testing.assert_allclose(v["clv_mean"], arr.values.mean(axis=0))
    np.testing.assert_allclose(v["clv_upper"], np.quantile(arr.values, 0.95, axis=0))
    again = clv.lifetime_value(pm, sm, s, kind="predictive", **kw)
    pd.testing.assert_frame_equal(v, again)
    other = clv.lifetime_value(pm, sm, s, kind="predictive", **{**kw, "random_seed": 4})
    assert not np.allclose(v["clv_mean"], other["clv_mean"])
    # chunk size changes the random stream but not the distribution
    chunked = clv.lifetime_value(pm, sm, s, kind="predictive", chunk_size=128, **kw)
    np.testing.assert_allclose(chunked["clv_mean"].mean(), exact_mean, rtol=0.02)


# --------------------------------------------------------------------------------------------
# real models
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cdnow():
    s = clv.datasets.load_cdnow_summary()
    bg = clv.BetaGeo().fit(s)
    gg = clv.GammaGamma().fit(s[s["frequency"] > 0])
    return s, bg, gg


def test_reproduces_lifetimes_customer_lifetime_value(cdnow):
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    s, bg, gg = cdnow
    bgf, ggf = BetaGeoFitter(), GammaGammaFitter()
    bgf.params_ = bg.params_.copy()
    ggf.params_ = gg.params_.copy()
    bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time  # as fit() sets it
    expected = ggf.customer_lifetime_value(
        bgf,
        s["frequency"],
        s["recency"],
        s["T"],
        s["monetary_value"],
        time=12,
        discount_rate=0.01,
        freq="W",
    )
    ours = clv.lifetime_value(
        bg,
        gg,
        s,
        horizon=f"{12 * 4.345}W",
        period="4.345W",
        period_discount_rate=0.01,
        kind="point",
    )
    np.testing.assert_allclose(ours["clv_mean"].to_numpy(), expected.to_numpy(), rtol=1e-6)
    # a 6-month version with a non-trivial rate too
    expected6 = ggf.customer_lifetime_value(
        bgf, s["frequency"], s["recency"], s["T"], s["monetary_value"], time=6,
        discount_rate=0.03, freq="W",
    )  # fmt: skip
    ours6 = clv.lifetime_value(
        bg, gg, s, horizon=f"{6 * 4.345}W", period="4.345W", period_discount_rate=0.03,
        kind="point",
    )  # fmt: skip
    np.testing.assert_allclose(ours6["clv_mean"].to_numpy(), expected6.to_numpy(), rtol=1e-6)


def test_no_nan_and_interval_ordering_for_all_kinds(cdnow):
    s, bg, gg = cdnow
    results = {}
    for kind in V.KINDS:
        v = clv.lifetime_value(bg, gg, s, margin=0.3, kind=kind, draws=100, random_seed=2)
        results[kind] = v
        assert list(v.columns) == [
            "clv_mean", "clv_median", "clv_lower", "clv_upper",
            "expected_purchases", "expected_spend", "probability_alive",
        ]  # fmt: skip
        assert v.index.equals(s.index)
        assert np.isfinite(v.to_numpy()).all()
        assert (v["clv_lower"] <= v["clv_median"] + 1e-9).all()
        assert (v["clv_median"] <= v["clv_upper"] + 1e-9).all()
        assert (v["clv_lower"] >= 0).all()
        assert v.attrs["kind"] == kind
    point, expected, predictive = results["point"], results["expected"], results["predictive"]
    # parameter uncertainty is small relative to the individual randomness
    width_e = (expected["clv_upper"] - expected["clv_lower"]).mean()
    width_p = (predictive["clv_upper"] - predictive["clv_lower"]).mean()
    assert 0 < width_e < width_p
    # means agree: the expected kind averages E[CLV | theta]; predictive is its Monte Carlo
    np.testing.assert_allclose(expected["clv_mean"].sum(), point["clv_mean"].sum(), rtol=0.02)
    np.testing.assert_allclose(predictive["clv_mean"].sum(), point["clv_mean"].sum(), rtol=0.05)
    # the point-estimate columns are the model's own predictions
    np.testing.assert_allclose(point["probability_alive"], bg.probability_alive(s))
    np.testing.assert_allclose(point["expected_spend"], gg.expected_spend(s))
    np.testing.assert_allclose(point["expected_purchases"], bg.expected_purchases(s, "52W"))


def test_customers_almost_surely_dead_are_worth_nothing(cdnow):
    _, bg, gg = cdnow
    s = pd.DataFrame(
        {
            "frequency": [60.0, 200.0, 0.0],
            "recency": [1.0, 2.0, 0.0],
            "T": [300.0, 3000.0, 1e-9],
            "monetary_value": [20.0, 1e5, 0.0],
        },
        index=pd.Index([1, 2, 3], name="customer_id"),
    )
    s.attrs["time_unit"] = "W"
    for kind in V.KINDS:
        v = clv.lifetime_value(bg, gg, s, kind=kind, draws=200, random_seed=0)
        assert np.isfinite(v.to_numpy()).all()
        assert (v["probability_alive"].iloc[:2] < 1e-12).all()
        assert (v[["clv_mean", "clv_upper"]].iloc[:2].abs() < 1e-6).all().all()
        assert v["clv_mean"].iloc[2] > 0


def test_draws_given_explicitly_and_paired(cdnow):
    s, bg, gg = cdnow
    pd_, sd = bg.param_draws(30, seed=1), gg.param_draws(30, seed=2)
    a = clv.lifetime_value(bg, gg, s, kind="expected", draws=(pd_, sd))
    b = clv.lifetime_value(bg, gg, s, kind="expected", draws={"purchase": pd_, "spend": sd})
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs["n_draws"] == 30
    # the expected value of draw d is computed by hand for one customer
    row = s.iloc[[10]]
    _, arr = clv.lifetime_value(bg, gg, row, kind="expected", draws=(pd_, sd), return_draws=True,
                                horizon="8W", period="4W", annual_discount_rate=0.0)  # fmt: skip
    x, t_x, T = row[["frequency", "recency", "T"]].to_numpy()[0]
    d = 7
    pp = {k: np.array([[pd_[k][d]]]) for k in pd_}
    sp = {k: np.array([[sd[k][d]]]) for k in sd}
    by_hand = (
        bg.family_.expected_purchases(pp, x, t_x, T, 8.0)[0, 0]
        * gg.family_.expected_spend(
            sp, row["frequency"].to_numpy(), row["monetary_value"].to_numpy()
        )[0, 0]
    )
    np.testing.assert_allclose(arr.values[d, 0], by_hand, rtol=1e-10)
    # a single spend row broadcasts against many purchase draws
    c = clv.lifetime_value(bg, gg, s, kind="expected", draws=(pd_, gg.point_draws()))
    assert c.attrs["n_draws"] == 30
    with pytest.raises(InputError, match="same number"):
        clv.lifetime_value(bg, gg, s, kind="expected", draws=(pd_, sd.iloc[:5]))
    with pytest.raises(InputError, match="positive int"):
        clv.lifetime_value(bg, gg, s, kind="expected", draws=0)


def test_return_draws_and_cash_flows(cdnow):
    s, bg, gg = cdnow
    sub = s.iloc[:50]
    v, arr = clv.lifetime_value(bg, gg, sub, kind="predictive", draws=40, random_seed=5,
                                return_draws=True)  # fmt: skip
    assert arr.dims == ("draw", "customer_id") and arr.shape == (40, 50)
    np.testing.assert_allclose(arr.mean("draw").values, v["clv_mean"])
    v2, arr2 = clv.lifetime_value(bg, gg, sub, kind="predictive", draws=40, random_seed=5,
                                  return_draws="period")  # fmt: skip
    assert arr2.dims == ("draw", "customer_id", "period") and arr2.shape[2] == 12
    np.testing.assert_allclose(arr2.sum("period").values, arr.values)
    flows = V.expected_cash_flows(bg, gg, sub, margin=0.3)
    point = clv.lifetime_value(bg, gg, sub, margin=0.3, kind="point")
    np.testing.assert_allclose(flows.sum(axis=1), point["clv_mean"], rtol=1e-12)
    undiscounted = V.expected_cash_flows(bg, gg, sub, margin=0.3, discounted=False)
    assert (undiscounted.to_numpy() >= flows.to_numpy()).all()


def test_customer_equity_uses_joint_draws(cdnow):
    s, bg, gg = cdnow
    kw = dict(draws=100, random_seed=11, margin=0.3)
    v, arr = clv.lifetime_value(bg, gg, s, kind="predictive", return_draws=True, **kw)
    eq = clv.customer_equity(bg, gg, s, kind="predictive", **kw)
    totals = arr.sum("customer_id").values
    np.testing.assert_allclose(eq.loc["all", "equity_mean"], totals.mean())
    np.testing.assert_allclose(eq.loc["all", "equity_lower"], np.quantile(totals, 0.05))
    np.testing.assert_allclose(eq.loc["all", "equity_mean"], v["clv_mean"].sum())
    # the interval of a total is far narrower than the sum of individual intervals
    width = eq.loc["all", "equity_upper"] - eq.loc["all", "equity_lower"]
    assert width < 0.2 * (v["clv_upper"] - v["clv_lower"]).sum()
    # per group: the groups add up draw by draw
    tiers = np.where(s["frequency"] > 2, "frequent", "rare")
    eg, garr = clv.customer_equity(bg, gg, s, by=pd.Series(tiers, index=s.index, name="tier"),
                                   return_draws=True, **kw)  # fmt: skip
    assert list(eg.index) == ["frequent", "rare"] and eg.index.name == "tier"
    np.testing.assert_allclose(garr.sum("group").values, totals)
    assert eg["n_customers"].sum() == len(s)
    s2 = s.assign(channel=np.arange(len(s)) % 3)
    ec = clv.customer_equity(bg, gg, s2, by="channel", kind="point")
    point = clv.lifetime_value(bg, gg, s2, kind="point")
    np.testing.assert_allclose(
        ec["equity_mean"].to_numpy(),
        point.groupby(s2["channel"])["clv_mean"].sum().to_numpy(),
    )
    with pytest.raises(InputError, match="not a column"):
        clv.customer_equity(bg, gg, s, by="nope")


def test_predict_purchases_kinds(cdnow):
    s, bg, _ = cdnow
    point = clv.predict_purchases(bg, s, t="39W", kind="point")
    np.testing.assert_allclose(point["mean"], bg.expected_purchases(s, 39))
    assert (point["lower"] == point["mean"]).all()
    pred, arr = clv.predict_purchases(bg, s, t="39W", draws=300, random_seed=1, return_draws=True)
    assert arr.shape == (300, len(s))
    np.testing.assert_allclose(pred["mean"].sum(), point["mean"].sum(), rtol=0.03)
    assert (pred["lower"] == np.round(pred["lower"])).all()
    assert (pred["upper"] == np.round(pred["upper"])).all()
    assert (pred["upper"] >= pred["lower"]).all()
    exp = clv.predict_purchases(bg, s, t=39, kind="expected", draws=100, random_seed=1)
    assert (exp["upper"] - exp["lower"]).mean() < 0.2 * (pred["upper"] - pred["lower"]).mean()
    assert ((exp["lower"] <= exp["mean"]) & (exp["mean"] <= exp["upper"])).all()
    # a DataFrame of draws is used as is
    d = bg.param_draws(25, seed=0)
    exp2 = clv.predict_purchases(bg, s.iloc[:5], t=39, kind="expected", draws=d)
    by_hand = np.mean(
        [bg.family_.expected_purchases({k: np.array([[d[k][j]]]) for k in d},
                                       s["frequency"].to_numpy()[:5], s["recency"].to_numpy()[:5],
                                       s["T"].to_numpy()[:5], 39.0)[0] for j in range(25)],
        axis=0,
    )  # fmt: skip
    np.testing.assert_allclose(exp2["mean"], by_hand)


def test_interval_coverage_randomized_pit_is_calibrated_for_counts():
    rng = np.random.default_rng(0)
    n, S = 10_000, 300
    lam = rng.gamma(0.5, 1.0, n)  # many zero counts, like lapsed customers
    draws = rng.poisson(lam, (S, n)).astype(float)
    observed = rng.poisson(lam)
    for level in (0.5, 0.8, 0.9):
        cov = V.interval_coverage(draws, observed, level, "randomized")
        assert abs(cov - level) < 0.015, (level, cov)
        one_draw = V.interval_coverage(draws, observed, level, "randomized-draw", random_seed=1)
        assert abs(one_draw - level) < 0.015, (level, one_draw)
        # the default averages the randomisation exactly: the mean of many randomised draws
        single = [
            V.interval_coverage(draws[:50, :2000], observed[:2000], level, "randomized-draw",
                                random_seed=k)
            for k in range(40)
        ]  # fmt: skip
        exact = V.interval_coverage(draws[:50, :2000], observed[:2000], level)
        np.testing.assert_allclose(np.mean(single), exact, atol=0.003)
    # the naive check is biased upwards for discrete outcomes with a large atom at 0
    assert V.interval_coverage(draws, observed, 0.5, "naive") > 0.6
    u = V.pit_values(draws, observed, "randomized", random_seed=2)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    mid = V.pit_values(draws, observed, "mid-p")
    assert ((mid > 0) & (mid < 1)).all()
    # a model that is too confident is caught
    narrow = rng.poisson(np.median(lam), (S, n)).astype(float)
    assert V.interval_coverage(narrow, observed, 0.9) < 0.85
    with pytest.raises(InputError, match="shape"):
        V.interval_coverage(draws[:, :10], observed)


def test_equity_interval_contains_the_truth_on_simulated_data():
    # the model is right by construction: the 90% predictive equity interval of holdout
    # purchases should contain the simulated total (fixed seed; the truth is at a central
    # quantile of the predictive distribution of the total)
    sim = clv.simulate.simulate_beta_geo(10_000, 0.25, 4.0, 0.8, 2.5, T=39.0, holdout=39.0,
                                         seed=3)  # fmt: skip
    bg = clv.BetaGeo().fit(sim)
    _, arr = clv.predict_purchases(bg, sim, t=39, draws=200, random_seed=4, return_draws=True)
    totals = arr.sum("customer_id").values
    actual = sim["frequency_holdout"].sum()
    q = (totals < actual).mean()
    assert 0.05 < q < 0.95, (actual, np.quantile(totals, [0.05, 0.5, 0.95]))


# --------------------------------------------------------------------------------------------
# DERT
# --------------------------------------------------------------------------------------------
def _dert_by_quad(model, row, delta):
    x, t_x, T = row
    params = model.customer_params(pd.DataFrame(index=[0]))

    def integrand(u):
        return math.exp(-u) * float(
            np.ravel(model.family_.expected_purchases(params, np.array([x]), np.array([t_x]),
                                                      np.array([T]), u / delta))[0]
        )  # fmt: skip

    return integrate.quad(integrand, 0, np.inf, limit=200)[0]


def test_dert_bg_nbd_quadrature_matches_adaptive_integration(cdnow):
    s, bg, _ = cdnow
    sub = s.iloc[[0, 1, 2, 10, 100]]
    dert = clv.discounted_expected_residual_transactions(bg, sub, continuous_rate=0.0027)
    for (_, row), value in zip(sub[["frequency", "recency", "T"]].iterrows(), dert, strict=True):
        np.testing.assert_allclose(value, _dert_by_quad(bg, row.to_numpy(), 0.0027), rtol=1e-6)
    assert dert.attrs["delta"] == 0.0027
    # annual 10% -> weekly continuous rate log(1.1) * 7 / 365.25
    d10 = clv.discounted_expected_residual_transactions(bg, sub)
    np.testing.assert_allclose(d10.attrs["delta"], math.log(1.1) * 7 / 365.25)
    with pytest.raises(InputError, match="no closed-form DERT"):
        clv.discounted_expected_residual_transactions(bg, sub, method="closed_form")


def test_dert_pareto_nbd_closed_form_matches_quadrature(cdnow):
    s = cdnow[0]
    pnbd = clv.ParetoNBD().fit(s)
    sub = s.iloc[:300]
    closed = clv.discounted_expected_residual_transactions(pnbd, sub, continuous_rate=0.0027)
    quad = clv.discounted_expected_residual_transactions(
        pnbd, sub, continuous_rate=0.0027, method="quadrature"
    )
    np.testing.assert_allclose(closed, quad, rtol=1e-5)
    assert np.isfinite(closed).all() and (closed > 0).all()


def test_identical_customers_are_valued_once_and_counted_each(cdnow):
    s, bg, gg = cdnow
    sub = s.iloc[:300]
    twice = pd.concat([sub, sub.set_axis(sub.index + 10_000)])
    twice.attrs = dict(sub.attrs)
    d = (bg.param_draws(20, seed=3), gg.param_draws(20, seed=4))
    once = clv.lifetime_value(bg, gg, sub, kind="expected", draws=d)
    both, arr = clv.lifetime_value(bg, gg, twice, kind="expected", draws=d, return_draws=True)
    np.testing.assert_allclose(both.iloc[:300].to_numpy(), once.to_numpy())
    np.testing.assert_allclose(both.iloc[300:].to_numpy(), once.to_numpy())
    assert arr.shape == (20, 600) and both.index.equals(twice.index)
    e1 = clv.customer_equity(bg, gg, sub, kind="expected", draws=d)
    e2 = clv.customer_equity(bg, gg, twice, kind="expected", draws=d)
    np.testing.assert_allclose(e2["equity_mean"], 2 * e1["equity_mean"])
    np.testing.assert_allclose(e2["equity_upper"], 2 * e1["equity_upper"])


def test_threads_do_not_change_results(cdnow):
    s, bg, gg = cdnow
    kw = dict(kind="predictive", draws=50, random_seed=8, chunk_size=300)
    one = clv.lifetime_value(bg, gg, s, **kw)
    two = clv.lifetime_value(bg, gg, s, n_jobs=2, **kw)
    pd.testing.assert_frame_equal(one, two)
    e1 = clv.customer_equity(bg, gg, s, **kw)
    e2 = clv.customer_equity(bg, gg, s, n_jobs=3, **kw)
    pd.testing.assert_frame_equal(e1, e2)
    p1 = clv.predict_purchases(bg, s, draws=50, random_seed=8, chunk_size=300)
    p2 = clv.predict_purchases(bg, s, draws=50, random_seed=8, chunk_size=300, n_jobs=2)
    pd.testing.assert_frame_equal(p1, p2)
    with pytest.raises(InputError, match="n_jobs"):
        clv.lifetime_value(bg, gg, s, n_jobs=0)


class GroupedPoisson(PoissonForever):
    """Protocol double of a grouped model: each customer's rate is its group's column of the
    draws table ((parameter, group) columns), arrays of shape (n_draws, n_customers)."""

    def __init__(self, rates: dict):
        super().__init__(1.0)
        self.rates = rates

    def point_draws(self):
        return pd.DataFrame({("lam", g): [v] for g, v in self.rates.items()}).set_axis(
            pd.MultiIndex.from_tuples([("lam", g) for g in self.rates]), axis=1
        )

    def param_draws(self, n=200, seed=None):
        rng = np.random.default_rng(seed)
        cols = {("lam", g): v * rng.lognormal(0, 0.05, int(n)) for g, v in self.rates.items()}
        return pd.DataFrame(cols)

    def customer_params(self, summary, draws=None):
        draws = self.point_draws() if draws is None else draws
        matrix = np.column_stack([draws[("lam", g)].to_numpy() for g in summary["group"]])
        return {"lam": matrix}


def test_grouped_parameters_are_per_customer_and_not_merged():
    s = toy_summary(n=4)
    s["frequency"] = s["recency"] = 1.0  # identical histories ...
    s["group"] = ["a", "b", "a", "b"]  # ... in different groups
    pm, sm = GroupedPoisson({"a": 1.0, "b": 3.0}), ConstantSpend(2.0)
    kw = dict(horizon="2W", period="1W", period_discount_rate=0.0)
    point = clv.lifetime_value(pm, sm, s, kind="point", **kw)
    np.testing.assert_allclose(point["clv_mean"], [4.0, 12.0, 4.0, 12.0])
    expected = clv.lifetime_value(pm, sm, s, kind="expected", draws=50, random_seed=1, **kw)
    np.testing.assert_allclose(expected["clv_mean"], [4.0, 12.0, 4.0, 12.0], rtol=0.05)
    assert expected["clv_mean"].iloc[0] == expected["clv_mean"].iloc[2]
    pred = clv.lifetime_value(pm, sm, s, kind="predictive", draws=400, random_seed=1, **kw)
    assert pred["clv_mean"].iloc[1] > 2 * pred["clv_mean"].iloc[0]
    eq = clv.customer_equity(pm, sm, s, by="group", kind="point", **kw)
    np.testing.assert_allclose(eq["equity_mean"], [8.0, 24.0])


def test_lifetimes_wrapped_models_are_valued_alike(cdnow):
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    s = cdnow[0]
    bgf = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    rep = s[s["frequency"] > 0]
    ggf = GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
    bg, gg = clv.from_lifetimes(bgf, time_unit="W"), clv.from_lifetimes(ggf)
    ours = clv.lifetime_value(bg, gg, s, horizon=f"{12 * 4.345}W", period="4.345W",
                              period_discount_rate=0.01, kind="point")  # fmt: skip
    theirs = ggf.customer_lifetime_value(bgf, s["frequency"], s["recency"], s["T"],
                                         s["monetary_value"], time=12, discount_rate=0.01,
                                         freq="W")  # fmt: skip
    np.testing.assert_allclose(ours["clv_mean"].to_numpy(), theirs.to_numpy(), rtol=1e-6)
    pred = clv.lifetime_value(bg, gg, s, kind="predictive", draws=50, random_seed=0)
    assert np.isfinite(pred.to_numpy()).all()


def test_threads_scoring_different_data_with_one_model_match_sequential_runs(cdnow):
    """Acceptance: the models and families hold no state that scoring changes, so two threads
    valuing different customers with the same models (and n_jobs=2 inside each) give exactly
    the sequential results."""
    from concurrent.futures import ThreadPoolExecutor

    s, bg, gg = cdnow
    parts = [s.iloc[:1200], s.iloc[1200:]]
    kw = dict(draws=40, random_seed=3, chunk_size=250, margin=0.3)
    jobs = [
        lambda part: clv.lifetime_value(bg, gg, part, kind="predictive", **kw),
        lambda part: clv.lifetime_value(bg, gg, part, kind="expected", n_jobs=2, **kw),
        lambda part: clv.predict_purchases(bg, part, draws=40, random_seed=3, chunk_size=250),
    ]
    for job in jobs:
        sequential = [job(part) for part in parts]
        with ThreadPoolExecutor(max_workers=2) as pool:
            threaded = list(pool.map(job, parts))
        for one, other in zip(sequential, threaded, strict=True):
            pd.testing.assert_frame_equal(one, other)
    one = clv.lifetime_value(bg, gg, s, kind="predictive", **kw)
    two = clv.lifetime_value(bg, gg, s, kind="predictive", n_jobs=2, **kw)
    pd.testing.assert_frame_equal(one, two)


def test_probability_alive_is_computed_once_per_chunk(cdnow):
    """P(alive) does not depend on the horizon: the engine computes it once per chunk and
    parameter set and passes it to every expected_purchases call (the families keep no memo)."""
    s, bg, gg = cdnow
    calls = {"alive": 0, "expected": 0, "given": 0}
    base = type(bg.family_)

    class Counting(base):
        def probability_alive(self, params, x, t_x, T):
            calls["alive"] += 1
            return super().probability_alive(params, x, t_x, T)

        def expected_purchases(self, params, x, t_x, T, t, p_alive=None):
            calls["expected"] += 1
            calls["given"] += p_alive is not None
            return super().expected_purchases(params, x, t_x, T, t, p_alive=p_alive)

        def discounted_expected_purchases(self, params, x, t_x, T, ends, weights, p_alive=None):
            calls["expected"] += 1
            calls["given"] += p_alive is not None
            return super().discounted_expected_purchases(
                params, x, t_x, T, ends, weights, p_alive=p_alive
            )

    counted = clv.BetaGeo().fit(s)
    counted.family_ = Counting()
    # expected/point values are computed once per distinct row, 500 rows a chunk
    distinct = s[["frequency", "recency", "T", "monetary_value"]].drop_duplicates()
    n_chunks = -(-len(distinct) // 500)
    # parameter sets per chunk: the point estimate and the draws ("expected"), the point
    # estimate alone ("point"); expected purchases over the whole horizon plus the discounted
    # sum over the 12 month ends (one call: BG/NBD forms it per distinct history)
    for kind, per_chunk in (("expected", 2), ("point", 1)):
        calls.update(alive=0, expected=0, given=0)
        kw = dict(kind=kind, draws=10, random_seed=0, chunk_size=500, horizon="52W", period="M")
        value = clv.lifetime_value(counted, gg, s, **kw)
        pd.testing.assert_frame_equal(value, clv.lifetime_value(bg, gg, s, **kw))
        assert calls["alive"] == per_chunk * n_chunks
        assert calls["expected"] == 2 * n_chunks
        assert calls["given"] == calls["expected"]
