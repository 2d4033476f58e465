"""Dataset loaders read the files shipped in the lifetimes wheel, with documented conventions."""

import numpy as np
import pandas as pd
import pytest

import clvmodels as clv
from clvmodels import datasets


def test_cdnow_sample_transactions():
    tx = datasets.load_cdnow_transactions()
    assert list(tx.columns) == ["customer_id", "date", "quantity", "amount", "master_customer_id"]
    assert len(tx) == 6919
    assert tx.customer_id.nunique() == 2357
    assert tx.customer_id.min() == 1 and tx.customer_id.max() == 2357
    assert tx.date.dtype == "datetime64[ns]"
    assert tx.date.min() == pd.Timestamp("1997-01-01")
    assert tx.date.max() <= pd.Timestamp("1998-06-30")
    assert tx.quantity.dtype == np.int64 and tx.amount.dtype == np.float64
    first = tx.iloc[0]
    assert (first.customer_id, first.master_customer_id, first.quantity, first.amount) == (
        1, 4, 2, 29.33
    )  # fmt: skip
    # every customer's first purchase is in the first quarter of 1997
    assert tx.groupby("customer_id").date.min().max() < pd.Timestamp("1997-04-01")


def test_cdnow_master_transactions():
    tx = datasets.load_cdnow_transactions("master")
    assert list(tx.columns) == ["customer_id", "date", "quantity", "amount"]
    assert len(tx) == 69659
    assert tx.customer_id.nunique() == 23570
    assert tx.date.dtype == "datetime64[ns]"


def test_cdnow_bad_which():
    with pytest.raises(ValueError, match="'sample' or 'master'"):
        datasets.load_cdnow_transactions("full")


def test_cdnow_published_summary():
    cd = clv.datasets.load_cdnow_summary()
    assert cd.attrs["time_unit"] == "W"
    assert cd.index.name == "customer_id"
    assert list(cd.columns) == ["frequency", "recency", "T", "monetary_value"]
    assert len(cd) == 2357
    assert int(cd.frequency.sum()) == 2457
    assert int((cd.frequency > 0).sum()) == 946
    assert cd.frequency.dtype == np.int64
    assert cd.loc[1].tolist() == [2, 30.43, 38.86, 22.35]
    assert (cd.loc[cd.frequency == 0, ["recency", "monetary_value"]] == 0).all().all()
    # the frequency/recency/T-only file agrees
    plain = pd.read_csv(datasets.cdnow_path("summary"), index_col="ID")
    np.testing.assert_array_equal(plain.to_numpy(), cd[["frequency", "recency", "T"]].to_numpy())


def test_cdnow_calibration_holdout_loader():
    ch = datasets.load_cdnow_calibration_holdout()
    assert ch.attrs["time_unit"] == "W"
    assert len(ch) == 2357
    assert (ch.duration_holdout == 39.0).all()
    assert int(ch.frequency.sum()) == 2457
    cd = datasets.load_cdnow_summary()
    np.testing.assert_array_equal(ch.frequency, cd.frequency)
    assert (
        np.abs(ch[["recency", "T", "monetary_value"]] - cd[["recency", "T", "monetary_value"]])
        .max()
        .max()
        <= 0.005 + 1e-9
    )
    # holdout: distinct purchase days in weeks 40-78
    assert int(ch.frequency_holdout.sum()) == 1882
    master = datasets.load_cdnow_calibration_holdout("master")
    assert len(master) == 23570


def test_donations_summary():
    d = datasets.load_donations_summary()
    assert list(d.columns) == ["frequency", "recency", "n_periods", "count"]
    assert d.attrs["time_unit"] == "Y"
    assert int(d["count"].sum()) == 11104
    assert (d.n_periods == 6).all()
    assert (d.recency >= d.frequency.clip(upper=1)).all()
    assert (d.frequency <= d.recency).all()


def test_cdnow_path_unknown():
    with pytest.raises(ValueError, match="unknown data file"):
        datasets.cdnow_path("apparel")
