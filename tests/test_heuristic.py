"""Tests of the textbook heuristic CLV baseline (clvmodels.heuristic.HeuristicCLV)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import clvmodels as clv
from clvmodels.errors import InputError, NotFittedError, TimeUnitError


def small_summary():
    s = pd.DataFrame(
        {
            "frequency": [4.0, 0.0, 2.0, 6.0],
            "recency": [20.0, 0.0, 5.0, 28.0],
            "T": [30.0, 30.0, 40.0, 30.0],
            "monetary_value": [10.0, 0.0, 25.0, 5.0],
        },
        index=pd.Index(list("ABCD"), name="customer_id"),
    )
    s.attrs["time_unit"] = "W"
    return s


def test_hand_computed_population_value():
    s = small_summary()
    h = clv.HeuristicCLV(period="1W", inactive_after="26W", margin=0.5, acquisition_cost=3.0)
    assert h.fit(s) is h
    # AOV = (4*10 + 2*25 + 6*5) / 12 = 10; frequency = 12 / 130 per week
    assert h.aov_ == pytest.approx(10.0)
    assert h.purchase_frequency_ == pytest.approx(12 / 130)
    # B (30 weeks silent) and C (35) churned; at risk 30 + 0 + 5 + 30 = 65 weeks
    assert h.n_churned_ == 2
    churn = 1 - math.exp(-2 / 65)
    assert h.churn_rate_ == pytest.approx(churn)
    assert h.lifespan_ == pytest.approx(1 / churn)
    value = h.predict(s)
    np.testing.assert_allclose(value, 0.5 * 10 * 12 / 130 / churn - 3.0)
    assert value.index.equals(s.index) and value.name == "clv"
    # finite horizon of 10 weeks: sum_{k=1..10} q^(k-1)
    q = 1 - churn
    np.testing.assert_allclose(
        h.predict(s, horizon="10W"), 0.5 * 10 * 12 / 130 * sum(q**k for k in range(10)) - 3.0
    )
    np.testing.assert_allclose(
        h.expected_purchases(s, "10W"), 12 / 130 * sum(q**k for k in range(10))
    )


def test_discounting_and_periods():
    s = small_summary()
    h = clv.HeuristicCLV(period="2W", inactive_after="182D", annual_discount_rate=0.1).fit(s)
    i = 1.1 ** (14 / 365.25) - 1
    q = 1 - h.churn_rate_
    np.testing.assert_allclose(h.churn_rate_, 1 - math.exp(-2 / 65 * 2))
    np.testing.assert_allclose(h.purchase_frequency_, 24 / 130)
    lifespan = sum(q ** (k - 1) / (1 + i) ** k for k in range(1, 4000))
    np.testing.assert_allclose(h.expected_lifespan(), lifespan)
    np.testing.assert_allclose(h.predict(s), 10 * 24 / 130 * lifespan)
    # the period does not change the undiscounted infinite-horizon value much (only the
    # discrete-period approximation of the churn hazard)
    weekly = clv.HeuristicCLV(period="1W", inactive_after="26W").fit(s).predict(s)
    biweekly = clv.HeuristicCLV(period="2W", inactive_after="26W").fit(s).predict(s)
    np.testing.assert_allclose(weekly, biweekly, rtol=0.02)


def test_customer_level_uses_own_order_value_and_frequency():
    s = small_summary()
    h = clv.HeuristicCLV(period="1W", inactive_after="26W", level="customer").fit(s)
    value = h.predict(s)
    per = h.lifespan_
    np.testing.assert_allclose(value["A"], 10 * 4 / 30 * per)
    np.testing.assert_allclose(value["B"], 10 * 0 / 30 * per)  # own frequency 0
    np.testing.assert_allclose(value["C"], 25 * 2 / 40 * per)


def test_errors():
    s = small_summary()
    with pytest.raises(NotFittedError):
        clv.HeuristicCLV().predict(s)
    with pytest.raises(InputError, match="churn rate is 0"):
        clv.HeuristicCLV(inactive_after="100W").fit(s)
    with pytest.raises(InputError, match="level must be"):
        clv.HeuristicCLV(level="segment").fit(s)
    h = clv.HeuristicCLV(inactive_after="26W").fit(s)
    other = s.copy()
    other.attrs["time_unit"] = "D"
    with pytest.raises(TimeUnitError):
        h.predict(other)
    none = s.assign(frequency=0.0, recency=0.0)
    with pytest.raises(InputError, match="no customer has a repeat purchase"):
        clv.HeuristicCLV().fit(none)


def test_cdnow_baseline_is_finite_and_comparable():
    s = clv.datasets.load_cdnow_summary()
    h = clv.HeuristicCLV(period="1M", inactive_after="13W").fit(s)
    value = h.predict(s, horizon="52W")
    assert np.isfinite(value).all() and (value > 0).all()
    assert value.nunique() == 1  # population level: one number for everyone
    # its total is of the same order as the probabilistic one over the same horizon
    bg = clv.BetaGeo().fit(s)
    gg = clv.GammaGamma().fit(s[s["frequency"] > 0])
    point = clv.lifetime_value(bg, gg, s, horizon="52W", annual_discount_rate=0.0, kind="point")
    ratio = value.sum() / point["clv_mean"].sum()
    assert 0.3 < ratio < 3, ratio
    assert repr(h).startswith("HeuristicCLV(aov=")
