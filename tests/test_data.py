"""RFM summaries: CDNOW reproduction, engine equality, units, and every validation error."""

import re
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

import clvmodels as clv
from clvmodels.data import calibration_holdout_summary, rfm_summary
from clvmodels.errors import InputError, TimeUnitError

ENGINES = ["pandas", "duckdb"]


@pytest.fixture(scope="module")
def cdnow():
    return clv.datasets.load_cdnow_transactions("sample")


@pytest.fixture(scope="module")
def published():
    return clv.datasets.load_cdnow_summary()


def half_up(values, decimals=2):
    """Round half away from zero, as the published file does (22.345 -> 22.35)."""
    scale = 10.0**decimals
    return np.floor(np.asarray(values, dtype=float) * scale + 0.5 + 1e-9) / scale


# --------------------------------------------------------------------------------------------
# CDNOW reproduction
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_cdnow_summary_reproduces_published_file(cdnow, published, engine):
    calibration = cdnow[cdnow.date <= "1997-09-30"]
    s = rfm_summary(
        calibration,
        customer_id="customer_id",
        datetime="date",
        monetary="amount",
        observation_end="1997-09-30",
        time_unit="W",
        engine=engine,
    )
    assert s.attrs["time_unit"] == "W"
    assert s.attrs["engine"] == engine
    assert len(s) == 2357
    assert int(s.frequency.sum()) == 2457
    assert int((s.frequency > 0).sum()) == 946
    assert s.index.equals(published.index)
    assert (s.frequency.to_numpy() == published.frequency.to_numpy()).all()
    for col in ("recency", "T", "monetary_value"):
        np.testing.assert_array_equal(half_up(s[col]), published[col].to_numpy(), err_msg=col)
        assert np.abs(s[col] - published[col]).max() <= 0.005 + 1e-9
    # and equal to the shipped frequency/recency/T-only file
    plain = pd.read_csv(clv.datasets.cdnow_path("summary"), index_col="ID")
    np.testing.assert_array_equal(s.frequency.to_numpy(), plain.frequency.to_numpy())
    np.testing.assert_array_equal(half_up(s.recency), plain.recency.to_numpy())
    np.testing.assert_array_equal(half_up(s["T"]), plain["T"].to_numpy())


def test_cdnow_exclude_later_rows_explicitly(cdnow):
    filtered = rfm_summary(
        cdnow[cdnow.date <= "1997-09-30"], "customer_id", "date", "amount", "1997-09-30", "W"
    )
    excluded = rfm_summary(
        cdnow,
        "customer_id",
        "date",
        "amount",
        "1997-09-30",
        "W",
        after_observation_end="exclude",
    )
    assert excluded.attrs["n_transactions_after_observation_end"] == int(
        (cdnow.date > "1997-09-30").sum()
    )
    pd.testing.assert_frame_equal(filtered, excluded, check_exact=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_cdnow_calibration_holdout(cdnow, engine):
    ch = calibration_holdout_summary(
        cdnow,
        customer_id="customer_id",
        datetime="date",
        monetary="amount",
        calibration_end="1997-09-30",
        observation_end="1998-06-30",
        time_unit="W",
        engine=engine,
    )
    assert list(ch.columns) == [
        "frequency",
        "recency",
        "T",
        "litt",
        "monetary_value",
        "frequency_holdout",
        "monetary_value_holdout",
        "duration_holdout",
    ]
    assert ch.attrs["time_unit"] == "W"
    assert ch.attrs["calibration_end"].startswith("1997-09-30")
    assert ch.attrs["observation_end"].startswith("1998-06-30")
    assert (ch.duration_holdout == 39.0).all()
    assert int(ch.frequency.sum()) == 2457
    # the holdout counts distinct purchase days in (1997-09-30, 1998-06-30]
    hold = cdnow[(cdnow.date > "1997-09-30") & (cdnow.date <= "1998-06-30")]
    days = hold.groupby("customer_id").date.nunique()
    np.testing.assert_array_equal(
        ch.frequency_holdout.to_numpy(), days.reindex(ch.index, fill_value=0).to_numpy()
    )
    spend = hold.groupby("customer_id").amount.sum() / days
    np.testing.assert_allclose(
        ch.monetary_value_holdout.to_numpy(),
        spend.reindex(ch.index, fill_value=0.0).to_numpy(),
        rtol=1e-12,
    )
    assert (ch.loc[ch.frequency_holdout == 0, "monetary_value_holdout"] == 0).all()
    # the calibration columns are the calibration summary
    cal = rfm_summary(
        cdnow[cdnow.date <= "1997-09-30"],
        "customer_id",
        "date",
        "amount",
        "1997-09-30",
        "W",
        engine=engine,
    )
    pd.testing.assert_frame_equal(ch[cal.columns], cal, check_exact=True)


def test_cdnow_holdout_matches_lifetimes_daily(cdnow):
    from lifetimes.utils import calibration_and_holdout_data

    theirs = calibration_and_holdout_data(
        cdnow,
        "customer_id",
        "date",
        calibration_period_end="1997-09-30",
        observation_period_end="1998-06-30",
        freq="D",
        monetary_value_col="amount",
    )
    ours = calibration_holdout_summary(
        cdnow, "customer_id", "date", "amount", "1997-09-30", "1998-06-30", "D"
    )
    for theirs_col, ours_col in [
        ("frequency_cal", "frequency"),
        ("recency_cal", "recency"),
        ("T_cal", "T"),
        ("frequency_holdout", "frequency_holdout"),
        ("duration_holdout", "duration_holdout"),
    ]:
        np.testing.assert_array_equal(theirs[theirs_col].to_numpy(), ours[ours_col].to_numpy())
    np.testing.assert_allclose(theirs.monetary_value_cal, ours.monetary_value, rtol=1e-12)
    # lifetimes averages holdout *lines*; we average holdout purchase days (the calibration
    # convention). They agree for customers with at most one line per holdout day.
    hold = cdnow[cdnow.date > "1997-09-30"]
    multi = hold.groupby(["customer_id", "date"]).size().gt(1).groupby("customer_id").any()
    single = ~ours.index.isin(multi[multi].index)
    np.testing.assert_allclose(
        theirs.monetary_value_holdout.to_numpy()[single],
        ours.monetary_value_holdout.to_numpy()[single],
        rtol=1e-12,
    )


def test_cdnow_loader_convenience_matches(cdnow):
    ch = clv.datasets.load_cdnow_calibration_holdout("sample")
    direct = calibration_holdout_summary(
        cdnow, "customer_id", "date", "amount", "1997-09-30", "1998-06-30", "W"
    )
    pd.testing.assert_frame_equal(ch, direct)


def test_integer_dates_with_format(cdnow):
    raw = cdnow.assign(date=cdnow.date.dt.strftime("%Y%m%d").astype("int64"))
    for engine in ENGINES:
        s = rfm_summary(
            raw[raw.date <= 19970930],
            "customer_id",
            "date",
            "amount",
            "1997-09-30",
            "W",
            datetime_format="%Y%m%d",
            engine=engine,
        )
        assert int(s.frequency.sum()) == 2457


# --------------------------------------------------------------------------------------------
# engines agree: pandas = DuckDB = polars = CSV = Parquet
# --------------------------------------------------------------------------------------------
def random_transactions(n_rows=10_000, n_customers=1_500, seed=0):
    rng = np.random.default_rng(seed)
    cust = rng.integers(0, n_customers, n_rows)
    day = rng.integers(0, 400, n_rows)
    seconds = rng.integers(0, 86_400, n_rows)
    stamp = pd.Timestamp("2021-01-01") + pd.to_timedelta(day * 86_400 + seconds, unit="s")
    tx = pd.DataFrame(
        {
            "user": pd.Series([f"u{c:05d}" for c in cust], dtype="str"),
            "when": stamp,
            "spend": np.round(rng.gamma(2.0, 20.0, n_rows), 2),
        }
    )
    # same-day duplicates and zero amounts on purpose
    dup = tx.sample(1_500, random_state=seed).assign(spend=0.0)
    return pd.concat([tx, dup], ignore_index=True).sample(frac=1.0, random_state=seed)


@pytest.fixture(scope="module")
def random_tx():
    return random_transactions()


@pytest.mark.parametrize("unit", ["D", "W", "M", "H"])
def test_engines_and_inputs_agree(random_tx, tmp_path, unit):
    kwargs = dict(
        customer_id="user",
        datetime="when",
        monetary="spend",
        observation_end="2022-03-01",
        time_unit=unit,
    )
    reference = rfm_summary(random_tx, engine="pandas", **kwargs)
    assert reference.attrs["purchase_period"] == ("H" if unit == "H" else "D")
    csv, parquet = tmp_path / "tx.csv", tmp_path / "tx.parquet"
    random_tx.to_csv(csv, index=False)
    random_tx.to_parquet(parquet, index=False)
    variants = {
        "duckdb": (random_tx, "duckdb"),
        "polars-pandas": (pl.from_pandas(random_tx), "pandas"),
        "polars-duckdb": (pl.from_pandas(random_tx), "duckdb"),
        "polars-lazy": (pl.from_pandas(random_tx).lazy(), "auto"),
        "parquet-duckdb": (parquet, "duckdb"),
        "parquet-pandas": (str(parquet), "pandas"),
        "csv-duckdb": (csv, "duckdb"),
        "csv-pandas": (csv, "pandas"),
    }
    if unit in ("M", "H"):  # units only change the arithmetic: check the engines, not all inputs
        variants = {k: variants[k] for k in ("duckdb", "polars-pandas", "parquet-duckdb")}
    for name, (source, engine) in variants.items():
        got = rfm_summary(source, engine=engine, **kwargs)
        assert got.attrs["time_unit"] == unit, name
        # identical: both engines share the reduction kernel and see rows in the same order
        pd.testing.assert_index_equal(got.index, reference.index, exact=False, obj=name)
        for col in ("frequency", "recency", "T", "litt", "monetary_value"):
            np.testing.assert_array_equal(got[col], reference[col], err_msg=f"{name} {col}")
    # the same-day duplicates were merged, not counted
    per_day = random_tx.assign(
        p=random_tx.when.dt.floor("h" if unit == "H" else "D")
    ).drop_duplicates(["user", "p"])
    assert int(reference.frequency.sum()) == len(per_day) - random_tx.user.nunique()


def test_engines_agree_on_calibration_holdout(random_tx):
    kwargs = dict(
        customer_id="user",
        datetime="when",
        monetary="spend",
        calibration_end="2021-10-01",
        observation_end="2022-02-04",
        time_unit="W",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = calibration_holdout_summary(random_tx, engine="pandas", **kwargs)
        b = calibration_holdout_summary(random_tx, engine="duckdb", **kwargs)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
    assert (
        a.attrs["n_customers_first_purchase_in_holdout"]
        == b.attrs["n_customers_first_purchase_in_holdout"]
    )
    assert (a.duration_holdout == 18.0).all()
    assert all(issubclass(w.category, UserWarning) for w in caught)


def test_parquet_path_is_not_loaded_into_pandas(random_tx, tmp_path, monkeypatch):
    path = tmp_path / "tx.parquet"
    random_tx.to_parquet(path, index=False)
    expected = rfm_summary(random_tx, "user", "when", "spend", time_unit="D", engine="pandas")

    def forbidden(*args, **kwargs):
        raise AssertionError("the DuckDB path must not read the file with pandas")

    monkeypatch.setattr(pd, "read_parquet", forbidden)
    monkeypatch.setattr(pd, "read_csv", forbidden)
    got = rfm_summary(path, "user", "when", "spend", time_unit="D")  # engine="auto"
    assert got.attrs["engine"] == "duckdb"
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


@pytest.mark.parametrize("with_holdout", [False, True])
def test_duckdb_partitions_bound_memory_and_agree(random_tx, monkeypatch, with_holdout):
    import clvmodels.data as data

    kwargs = dict(customer_id="user", datetime="when", monetary="spend", time_unit="W")
    if with_holdout:
        kwargs.update(calibration_end="2021-10-01", observation_end="2022-02-04")
        func = calibration_holdout_summary
    else:
        func = rfm_summary
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected = func(random_tx, engine="pandas", **kwargs)
        monkeypatch.setattr(data, "DUCKDB_PARTITION_ROWS", 1_000)  # ~12 partitions
        got = func(random_tx, engine="duckdb", **kwargs)
        got_int = func(
            random_tx.assign(user=random_tx.user.str[1:].astype("int64")), engine="duckdb", **kwargs
        )
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got.index.is_monotonic_increasing
    assert got_int.index.is_monotonic_increasing
    np.testing.assert_array_equal(got_int.to_numpy(), expected.to_numpy())


# --------------------------------------------------------------------------------------------
# litt: the regularity statistic of the CNBD-k models
# --------------------------------------------------------------------------------------------
def _direct_litt(tx, customer, when, period, unit_days, end=None):
    """BTYDplus' elog2cbs: merge the purchases of one period, then sum the logs of the times
    between consecutive purchases (in the unit) per customer; 0 without repeat purchases."""
    tx = tx if end is None else tx[tx[when] <= end]
    periods = tx.assign(p=tx[when].dt.floor(period)).drop_duplicates([customer, "p"])
    periods = periods.sort_values([customer, "p"])
    gaps = periods.groupby(customer)["p"].diff().dt.total_seconds() / 86_400 / unit_days
    return np.log(gaps).groupby(periods[customer]).sum()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "unit, period, unit_days",
    [("D", "D", 1.0), ("W", "D", 7.0), ("M", "D", 365.25 / 12), ("H", "h", 1 / 24)],
)
def test_litt_is_elog2cbs(random_tx, engine, unit, period, unit_days):
    s = rfm_summary(random_tx, "user", "when", "spend", time_unit=unit, engine=engine)
    expected = _direct_litt(random_tx, "user", "when", period, unit_days)
    np.testing.assert_allclose(s["litt"], expected.reindex(s.index), rtol=1e-12, atol=1e-9)
    assert (s.loc[s.frequency == 0, "litt"] == 0).all()
    assert s["litt"].dtype == np.float64
    assert list(s.columns[:4]) == ["frequency", "recency", "T", "litt"]


@pytest.mark.parametrize("engine", ENGINES)
def test_litt_of_calibration_holdout_uses_calibration_purchases_only(random_tx, engine):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ch = calibration_holdout_summary(
            random_tx,
            "user",
            "when",
            "spend",
            calibration_end="2021-10-01",
            observation_end="2022-02-04",
            time_unit="W",
            engine=engine,
        )
    expected = _direct_litt(random_tx, "user", "when", "D", 7.0, end=pd.Timestamp("2021-10-02"))
    np.testing.assert_allclose(ch["litt"], expected.reindex(ch.index), rtol=1e-12, atol=1e-9)


def test_litt_on_cdnow(cdnow):
    s = rfm_summary(
        cdnow, "customer_id", "date", "amount", "1997-09-30", "W", after_observation_end="exclude"
    )
    expected = _direct_litt(cdnow, "customer_id", "date", "D", 7.0, end=pd.Timestamp("1997-09-30"))
    np.testing.assert_allclose(s["litt"], expected.reindex(s.index), rtol=1e-12, atol=1e-9)
    # a repeat purchase a day after the previous one: log(1/7) in weeks
    assert s["litt"].min() < np.log(1 / 7) * 0.99


def test_auto_engine_picks_duckdb_for_large_frames(monkeypatch, random_tx):
    import clvmodels.data as data

    monkeypatch.setattr(data, "AUTO_DUCKDB_MIN_ROWS", 1000)
    assert rfm_summary(random_tx, "user", "when").attrs["engine"] == "duckdb"
    monkeypatch.setattr(data, "AUTO_DUCKDB_MIN_ROWS", 10**9)
    assert rfm_summary(random_tx, "user", "when").attrs["engine"] == "pandas"


def test_input_is_not_modified(random_tx):
    before = random_tx.copy()
    rfm_summary(random_tx, "user", "when", "spend", time_unit="W")
    pd.testing.assert_frame_equal(random_tx, before)


# --------------------------------------------------------------------------------------------
# units and conventions
# --------------------------------------------------------------------------------------------
@pytest.fixture
def small_tx():
    return pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b", "c", "c"],
            "date": pd.to_datetime(
                [
                    "2020-01-01 10:15",
                    "2020-01-01 10:45",  # same hour and day as the first: one purchase
                    "2020-01-01 12:30",  # same day, later hour
                    "2020-01-15 08:00",
                    "2020-02-01 23:59",
                    "2020-01-10 09:00",
                    "2020-03-01 18:00",  # on the observation_end day: included
                ]
            ),
            "amount": [10.0, 5.0, 3.0, 20.0, 7.0, 0.0, 0.0],
        }
    )


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("unit", "days"),
    [("D", 1.0), ("W", 7.0), ("M", 365.25 / 12), ("Q", 365.25 / 4), ("Y", 365.25)],
)
def test_day_period_units(small_tx, engine, unit, days):
    s = rfm_summary(small_tx, monetary="amount", observation_end="2020-03-01", time_unit=unit,
                    engine=engine)  # fmt: skip
    assert s.attrs["time_unit"] == unit and s.attrs["purchase_period"] == "D"
    assert s.index.tolist() == ["a", "b", "c"]
    assert s.frequency.tolist() == [1, 0, 1]
    np.testing.assert_allclose(s.recency, np.array([14, 0, 51]) / days, rtol=1e-15)
    np.testing.assert_allclose(s["T"], np.array([60, 29, 51]) / days, rtol=1e-15)
    # a's first day sums 10+5+3; repeat purchase 20; zero amounts are legal
    assert s.monetary_value.tolist() == [20.0, 0.0, 0.0]


@pytest.mark.parametrize("engine", ENGINES)
def test_hour_unit_uses_hour_periods(small_tx, engine):
    s = rfm_summary(
        small_tx, monetary="amount", observation_end="2020-03-01 18:00", time_unit="H",
        engine=engine,
    )  # fmt: skip
    assert s.attrs["purchase_period"] == "H"
    # a: hours 10 (two lines: 15.0), 12, and Jan 15 08:00 -> 2 repeat purchases
    assert s.loc["a", "frequency"] == 2
    assert s.loc["a", "recency"] == 14 * 24 - 2  # 10:00 Jan 1 -> 08:00 Jan 15
    assert s.loc["a", "monetary_value"] == (3.0 + 20.0) / 2
    assert s.loc["a", "T"] == 60 * 24 + 8  # 10:00 Jan 1 -> 18:00 Mar 1
    # purchase_period override: days, measured in hours
    d = rfm_summary(small_tx, observation_end="2020-03-01", time_unit="H", purchase_period="D",
                    engine=engine)  # fmt: skip
    assert d.loc["a", "frequency"] == 1 and d.loc["a", "recency"] == 14 * 24


def test_unit_aliases_and_default_observation_end(small_tx):
    s = rfm_summary(small_tx, time_unit="weeks")
    assert s.attrs["time_unit"] == "W"
    assert s.attrs["observation_end"].startswith("2020-03-01")  # the latest transaction's day
    assert "monetary_value" not in s.columns
    assert s.index.name == "customer_id"
    assert s.frequency.dtype == np.int64 and s["T"].dtype == np.float64


def test_datetime_strings_and_timezones(small_tx):
    as_text = small_tx.assign(date=small_tx.date.dt.strftime("%Y-%m-%d %H:%M:%S"))
    tz = small_tx.assign(date=small_tx.date.dt.tz_localize("America/New_York"))
    expected = rfm_summary(small_tx, time_unit="D")
    for engine in ENGINES:
        pd.testing.assert_frame_equal(
            rfm_summary(as_text, time_unit="D", engine=engine), expected, check_exact=True,
            check_like=True,
        )  # fmt: skip
        # tz-aware stamps are taken in their local wall time (same calendar days)
        got = rfm_summary(tz, time_unit="D", engine=engine)
        np.testing.assert_array_equal(got.frequency, expected.frequency)
        np.testing.assert_array_equal(got["T"], expected["T"])
    dmy = small_tx.assign(date=small_tx.date.dt.strftime("%d/%m/%Y"))
    for engine in ENGINES:
        got = rfm_summary(dmy, time_unit="D", datetime_format="%d/%m/%Y", engine=engine)
        np.testing.assert_array_equal(got.frequency, expected.frequency)


def test_holdout_only_customers_are_reported(small_tx):
    with pytest.warns(UserWarning, match=r"1 customers made their first purchase after"):
        ch = calibration_holdout_summary(
            small_tx, calibration_end="2020-01-20", observation_end="2020-03-01", time_unit="D"
        )
    assert ch.index.tolist() == ["a", "c"]
    assert ch.attrs["n_customers_first_purchase_in_holdout"] == 1
    assert ch.frequency_holdout.tolist() == [0, 1]
    assert (ch.duration_holdout == 41.0).all()


# --------------------------------------------------------------------------------------------
# validation: every error names the column, counts the rows, shows examples and says the fix
# --------------------------------------------------------------------------------------------
def check_message(exc, column, count, fix_word):
    msg = str(exc.value)
    assert f"column {column!r}" in msg, msg
    assert re.search(rf"\b{count} rows?\b", msg), msg
    assert "first examples" in msg and "row" in msg, msg
    assert "Fix:" in msg and fix_word in msg, msg
    return msg


@pytest.fixture
def good():
    return pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 3, 3, 4],
            "date": pd.to_datetime(
                ["2020-01-01", "2020-01-05", "2020-01-02", "2020-01-03", "2020-02-01", "2020-01-04"]
            ),
            "amount": [10.0, 0.0, 3.0, 4.0, 5.0, 6.0],
        }
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_error_missing_column(good, engine):
    with pytest.raises(InputError) as exc:
        rfm_summary(good, customer_id="user", monetary="revenue", engine=engine)
    msg = str(exc.value)
    assert "'user' (the customer_id argument)" in msg
    assert "'revenue' (the monetary argument)" in msg
    assert "available columns: customer_id, date, amount" in msg
    assert "Fix: pass the names of your columns" in msg


@pytest.mark.parametrize("engine", ENGINES)
def test_error_empty(good, engine):
    with pytest.raises(InputError, match="empty"):
        rfm_summary(good.iloc[:0], monetary="amount", engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_error_missing_customer_ids(good, engine):
    bad = good.astype({"customer_id": "float64"})
    bad.loc[[1, 4], "customer_id"] = np.nan
    with pytest.raises(InputError) as exc:
        rfm_summary(bad, monetary="amount", engine=engine)
    msg = check_message(exc, "customer_id", 2, "customer id")
    assert "missing customer id" in msg


@pytest.mark.parametrize("engine", ENGINES)
def test_error_missing_dates(good, engine):
    bad = good.copy()
    bad.loc[[0, 2, 3], "date"] = pd.NaT
    with pytest.raises(InputError) as exc:
        rfm_summary(bad, engine=engine)
    msg = check_message(exc, "date", 3, "needs a date")
    assert "missing date" in msg


@pytest.mark.parametrize("engine", ENGINES)
def test_error_unparseable_dates(good, engine):
    bad = good.assign(date=good.date.dt.strftime("%Y-%m-%d").astype(object))
    bad.loc[[1, 5], "date"] = ["2020-13-45", "yesterday"]
    with pytest.raises(InputError) as exc:
        rfm_summary(bad, engine=engine)
    msg = check_message(exc, "date", 2, "datetime_format")
    assert "cannot be read as dates" in msg and "yesterday" in msg
    # a wrong explicit format names the format
    with pytest.raises(InputError, match=r"with datetime_format='%d/%m/%Y'"):
        rfm_summary(good.assign(date=good.date.dt.strftime("%Y-%m-%d")), engine=engine,
                    datetime_format="%d/%m/%Y")  # fmt: skip


@pytest.mark.parametrize("engine", ENGINES)
def test_error_numeric_dates_without_format(good, engine):
    bad = good.assign(date=good.date.dt.strftime("%Y%m%d").astype("int64"))
    with pytest.raises(InputError, match=r"holds numbers .* datetime_format='%Y%m%d'"):
        rfm_summary(bad, engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_error_transactions_after_observation_end(good, engine):
    with pytest.raises(InputError) as exc:
        rfm_summary(good, observation_end="2020-01-03", engine=engine)
    msg = check_message(exc, "date", 3, "later observation_end")
    assert "after the observation_end 2020-01-03" in msg
    assert "after_observation_end='exclude'" in msg
    # the end day itself is included
    s = rfm_summary(good, observation_end="2020-02-01", engine=engine)
    assert s.loc[3, "frequency"] == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_error_negative_amounts(good, engine):
    bad = good.copy()
    bad.loc[2, "amount"] = -3.0
    with pytest.raises(InputError) as exc:
        rfm_summary(bad, monetary="amount", engine=engine)
    msg = check_message(exc, "amount", 1, "refunds")
    assert "negative" in msg and "-3.0" in msg


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_error_non_finite_amounts(good, engine, value):
    bad = good.copy()
    bad.loc[[0, 3], "amount"] = value
    with pytest.raises(InputError) as exc:
        rfm_summary(bad, monetary="amount", engine=engine)
    check_message(exc, "amount", 2, "finite numbers")


@pytest.mark.parametrize("engine", ENGINES)
def test_error_non_numeric_amounts(good, engine):
    bad = good.assign(amount=good.amount.astype(str).astype(object))
    bad.loc[4, "amount"] = "12,50"
    with pytest.raises(InputError) as exc:
        rfm_summary(bad, monetary="amount", engine=engine)
    msg = check_message(exc, "amount", 1, "finite numbers")
    assert "not numbers" in msg and "12,50" in msg


@pytest.mark.parametrize("engine", ENGINES)
def test_zero_amounts_are_legal(good, engine):
    s = rfm_summary(good, monetary="amount", engine=engine)
    assert s.loc[1, "monetary_value"] == 0.0  # the repeat purchase was free


@pytest.mark.parametrize("engine", ENGINES)
def test_error_calibration_end(good, engine):
    with pytest.raises(InputError, match="not before observation_end"):
        calibration_holdout_summary(
            good, calibration_end="2020-03-01", observation_end="2020-02-01", engine=engine
        )
    with pytest.raises(InputError, match="calibration_end is required"):
        calibration_holdout_summary(good, engine=engine)
    with pytest.raises(InputError, match="no customer made a purchase up to"):
        calibration_holdout_summary(
            good, calibration_end="2019-12-01", observation_end="2020-02-01", engine=engine
        )


def test_error_arguments(good, tmp_path):
    with pytest.raises(TimeUnitError, match="unknown time unit"):
        rfm_summary(good, time_unit="fortnight")
    with pytest.raises(ValueError, match="engine must be"):
        rfm_summary(good, engine="spark")
    with pytest.raises(ValueError, match="after_observation_end"):
        rfm_summary(good, after_observation_end="drop")
    with pytest.raises(InputError, match="must be a pandas or polars DataFrame"):
        rfm_summary(good.to_dict())
    with pytest.raises(InputError, match="does not exist"):
        rfm_summary(tmp_path / "nope.parquet")
    odd = tmp_path / "tx.xlsx"
    odd.write_text("x")
    with pytest.raises(InputError, match="cannot tell the format"):
        rfm_summary(odd)
    with pytest.raises(InputError, match="observation_end 'soon' is not a date"):
        rfm_summary(good, observation_end="soon")
    with pytest.raises(ValueError, match="purchase_period"):
        rfm_summary(good, purchase_period="W")


def test_errors_from_files_name_the_rows(good, tmp_path):
    bad = good.copy()
    bad.loc[3, "amount"] = -1.0
    path = tmp_path / "bad.parquet"
    bad.to_parquet(path, index=False)
    with pytest.raises(InputError) as exc:
        rfm_summary(path, monetary="amount")
    msg = check_message(exc, "amount", 1, "refunds")
    assert re.search(r"^3\s+3\s", msg, flags=re.M), msg  # row position 3, customer 3
    with pytest.raises(InputError, match="available columns"):
        rfm_summary(path, customer_id="nobody")
