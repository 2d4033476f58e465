"""Tests of clvmodels.segments: value tiers, RFM scores and segments, CLV:CAC and payback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import clvmodels as clv
from clvmodels import segments
from clvmodels.errors import InputError


def test_value_tiers_shares_and_ties():
    values = pd.Series(np.arange(1, 101, dtype=float), index=pd.Index(range(100), name="cid"))
    tiers = clv.value_tiers(values)
    assert list(tiers.cat.categories) == ["bottom", "middle", "top"]
    counts = tiers.value_counts()
    assert (counts["bottom"], counts["middle"], counts["top"]) == (20, 60, 20)
    assert (tiers[values > 80] == "top").all() and (tiers[values <= 20] == "bottom").all()
    # equal values share a tier
    tied = pd.Series([0.0] * 50 + list(range(1, 51)), dtype=float)
    t = clv.value_tiers(tied)
    assert t[:50].nunique() == 1
    # a lifetime_value frame works; custom cuts and labels
    frame = pd.DataFrame({"clv_mean": values, "clv_upper": values[::-1].to_numpy()})
    t4 = clv.value_tiers(frame, quantiles=(0.5, 0.9, 0.99), labels=["d", "c", "b", "a"])
    assert t4.value_counts().to_dict() == {"d": 50, "c": 40, "b": 9, "a": 1}
    assert clv.value_tiers(frame, column="clv_upper").iloc[0] == "top"
    with pytest.raises(InputError, match="increasing"):
        clv.value_tiers(values, quantiles=(0.8, 0.2))
    with pytest.raises(InputError, match="distinct labels"):
        clv.value_tiers(values, labels=["a", "b"])
    with pytest.raises(InputError, match="non-finite"):
        clv.value_tiers(pd.Series([1.0, np.nan]))


def test_rfm_scores_and_segments_by_hand():
    s = pd.DataFrame(
        {
            # time since last purchase T - recency: 0, 10, 20, 30, 40
            "frequency": [10.0, 4.0, 3.0, 1.0, 0.0],
            "recency": [50.0, 40.0, 30.0, 20.0, 0.0],
            "T": [50.0, 50.0, 50.0, 50.0, 40.0],
            "monetary_value": [5.0, 50.0, 20.0, 10.0, 0.0],
        },
        index=pd.Index(list("abcde"), name="customer_id"),
    )
    scores = clv.rfm_segments(s)
    assert scores["r_score"].tolist() == [5, 4, 3, 2, 1]
    assert scores["f_score"].tolist() == [5, 4, 3, 2, 1]
    assert scores["m_score"].tolist() == [2, 5, 4, 3, 1]
    assert scores.loc["b", "rfm_score"] == "445"
    assert scores["rfm_total"].tolist() == [12, 13, 10, 7, 3]
    assert scores["segment"].tolist() == [
        "champions", "loyal customers", "need attention", "hibernating", "hibernating",
    ]  # fmt: skip
    # every one of the 25 R-F cells has exactly one segment
    cells = [c for codes in segments.RFM_SEGMENT_MAP.values() for c in codes]
    assert sorted(cells) == sorted(f"{r}{f}" for r in range(1, 6) for f in range(1, 6))
    # without monetary_value: R and F only; other bin counts are rescaled for the segment
    tri = clv.rfm_segments(s.drop(columns="monetary_value"), n_bins=3)
    assert "m_score" not in tri and tri["r_score"].max() == 3
    assert tri["segment"].notna().all()


def test_rfm_on_cdnow_has_no_missing_segments():
    s = clv.datasets.load_cdnow_summary()
    seg = clv.rfm_segments(s)
    assert seg.index.equals(s.index)
    assert seg["segment"].notna().all()
    # ties are averaged: all customers without repeat purchases share one F score
    assert seg.loc[s["frequency"] == 0, "f_score"].nunique() == 1


def test_clv_to_cac_ratio_and_payback():
    idx = pd.Index([1, 2, 3], name="customer_id")
    value = pd.Series([300.0, 50.0, 100.0], index=idx)
    flows = pd.DataFrame([[100.0, 100.0, 100.0], [10.0, 10.0, 30.0], [0.0, 0.0, 100.0]],
                         index=idx, columns=[1, 2, 3])  # fmt: skip
    out = clv.clv_to_cac(value, 100.0, cash_flows=flows)
    np.testing.assert_allclose(out["clv_to_cac"], [3.0, 0.5, 1.0])
    np.testing.assert_allclose(out["net_value"], [200.0, -50.0, 0.0])
    assert out["payback_period"].tolist() == [1.0, np.inf, 3.0]
    cac = pd.Series([50.0, 25.0, 400.0], index=idx)
    out2 = clv.clv_to_cac(pd.DataFrame({"clv_mean": value}), cac, cash_flows=flows)
    assert out2["payback_period"].tolist() == [1.0, 3.0, np.inf]
    assert not out2.isna().any().any()
    with pytest.raises(InputError, match="positive"):
        clv.clv_to_cac(value, 0.0)
    with pytest.raises(InputError, match="no value for 1"):
        clv.clv_to_cac(value, cac.iloc[:2])


def test_payback_with_model_cash_flows():
    s = clv.datasets.load_cdnow_summary().iloc[:200]
    bg = clv.BetaGeo().fit(clv.datasets.load_cdnow_summary())
    gg = clv.GammaGamma().fit(clv.datasets.load_cdnow_summary().query("frequency > 0"))
    flows = clv.valuation.expected_cash_flows(bg, gg, s, horizon="3Y", period="1M", margin=0.3)
    value = flows.sum(axis=1)
    out = clv.clv_to_cac(value, 5.0, cash_flows=flows)
    recovered = out["clv"] >= 5.0
    assert np.isfinite(out.loc[recovered, "payback_period"]).all()
    assert np.isinf(out.loc[~recovered, "payback_period"]).all()
    assert out["payback_period"].min() >= 1
