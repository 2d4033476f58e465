"""Calendar covariates: the grid, month indicators with January as baseline, the holiday flag,
static columns joined per customer, and the input checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import clvmodels as clv
from clvmodels.calendar import period_starts
from clvmodels.errors import InputError


def test_shared_weekly_table():
    table = clv.calendar_covariates(start="2005-01-02", end="2006-12-31")
    assert "customer_id" not in table.columns
    assert len(table) == 105
    assert (table["date"].diff().dropna() == pd.Timedelta(days=7)).all()
    months = [c for c in table.columns if c.startswith("month_")]
    assert months[0] == "month_feb" and len(months) == 11  # January is the baseline
    january = table["date"].dt.month == 1
    assert (table.loc[january, months].sum(axis=1) == 0).all()
    assert (table.loc[~january, months].sum(axis=1) == 1).all()
    season = table["date"].dt.month.isin([11, 12])
    np.testing.assert_array_equal(table["holiday_season"], season.astype(float))


def test_per_customer_table_with_static_columns():
    static = pd.DataFrame({"gender": [0.0, 1.0, 1.0]}, index=[10, 20, 30])
    table = clv.calendar_covariates(
        [10, 30],
        start="2020-01-01",
        end="2020-03-01",
        period="2W",
        month_of_year=False,
        holiday_season=(1,),
        static=static,
    )
    assert table.columns.tolist() == ["customer_id", "date", "holiday_season", "gender"]
    assert len(table) == 2 * 5
    assert table.groupby("customer_id")["gender"].first().to_dict() == {10: 0.0, 30: 1.0}
    assert table["holiday_season"].sum() == 2 * 3  # Jan 1, 15, 29


def test_summary_as_customers():
    summary = pd.DataFrame({"frequency": [1, 2]}, index=pd.Index(["a", "b"], name="customer_id"))
    table = clv.calendar_covariates(summary, start="2021-01-03", end="2021-01-31")
    assert table["customer_id"].tolist() == ["a"] * 5 + ["b"] * 5


def test_checks():
    with pytest.raises(InputError, match="period"):
        period_starts("2020-01-01", "2020-12-01", "M")
    with pytest.raises(InputError, match="before start"):
        period_starts("2020-02-01", "2020-01-01")
    with pytest.raises(InputError, match="months 1..12"):
        clv.calendar_covariates(start="2020-01-01", end="2020-02-01", holiday_season=(13,))
    with pytest.raises(InputError, match="no row in static"):
        clv.calendar_covariates(
            [1, 2], start="2020-01-01", end="2020-02-01", static=pd.DataFrame({"g": [1]}, index=[1])
        )
    with pytest.raises(InputError, match="pass customers"):
        clv.calendar_covariates(
            start="2020-01-01", end="2020-02-01", static=pd.DataFrame({"g": [1]}, index=[1])
        )
