"""From transactions to the discrete-time summary of BG/BB: frequency, recency, n_periods.

In a discrete-time setting (Fader, Hardie & Shang 2010, "Customer-Base Analysis in a
Discrete-Time Noncontractual Setting", *Marketing Science* 29(6)) a customer can transact only
at equally spaced *opportunities*: here the calendar periods of a grid (years by default). For
each customer, with periods numbered from the period of their first transaction (period 0):

* ``n_periods``: the number of opportunities after the first, up to and including the period of
  ``observation_end``;
* ``frequency``: the number of those opportunities with at least one transaction (several
  transactions in one period are one);
* ``recency``: the last of them (0 when there is none).

The result is indexed by the customer id, with ``attrs["time_unit"]`` the period (so one unit
of the model's time is one opportunity, and valuation discounts per period) and
``attrs["observation_end"]``. Dates are never guessed: datetime columns, ``datetime.date``
objects, ISO 8601 text, or text in an explicit ``datetime_format``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clvmodels import units
from clvmodels.errors import InputError, check_columns, describe_rows

__all__ = ["discrete_summary", "PERIODS"]

#: the period grids: the time unit -> the pandas period frequency
PERIODS = {"D": "D", "W": "W-SUN", "M": "M", "Q": "Q", "Y": "Y"}
#: a time followed by a UTC offset at the end of an ISO 8601 date-time
_ISO_OFFSET = r"([T ])([0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?)\s*(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)\s*$"


def _parse_dates(values: pd.Series, datetime_format: str | None, what: str) -> pd.Series:
    """Dates as naive datetimes at their wall time; InputError naming the rows that are not
    dates (ISO 8601 text, datetime values, or text in ``datetime_format``)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values
    if pd.api.types.is_numeric_dtype(values.dtype) and datetime_format is None:
        raise InputError(
            f"{what} holds numbers, which are not dates (20200101 or 1577836800 would be a "
            "guess). Fix: pass datetime_format (e.g. '%Y%m%d') or a datetime column."
        )
    is_text = values.map(lambda v: isinstance(v, str)).to_numpy()
    if datetime_format is None:
        # an ISO 8601 offset is dropped: every date is taken at its own wall time, so rows with
        # different offsets (a daylight-saving change) keep the calendar day they were written in
        text = values.where(
            ~is_text, values.astype("string").str.replace(_ISO_OFFSET, r"\1\2", regex=True)
        )
        fmt = "ISO8601"
    else:
        text, fmt = values.astype("string"), datetime_format
    try:
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    except (TypeError, ValueError):
        parsed = pd.Series(pd.NaT, index=values.index)
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)
    bad = parsed.isna().to_numpy() & values.notna().to_numpy()
    if datetime_format is None:
        bad |= ~is_text & values.notna().to_numpy() & ~values.map(_is_date_like).to_numpy()
    if bad.any():
        fix = (
            f"the values do not match datetime_format={datetime_format!r}; correct them or "
            "the format"
            if datetime_format is not None
            else "write dates as ISO 8601 (YYYY-MM-DD, optionally with a time) or pass "
            "datetime_format (e.g. '%m/%d/%Y')"
        )
        raise InputError(
            f"{what} has values that are not dates in {describe_rows(values.to_frame(), bad)}"
            f"\nFix: {fix}."
        )
    return parsed


def _is_date_like(value) -> bool:
    import datetime as dt

    return isinstance(value, dt.date | np.datetime64 | pd.Timestamp | str)


def discrete_summary(
    transactions: pd.DataFrame,
    customer_id: str = "customer_id",
    datetime: str = "date",
    period: str = "Y",
    observation_end=None,
    *,
    calibration_end=None,
    datetime_format: str | None = None,
) -> pd.DataFrame:
    """Summarise transactions into the BG/BB table: one row per customer with ``frequency``,
    ``recency`` and ``n_periods`` counted in whole periods (see the module docstring).

    Parameters
    ----------
    transactions : pandas DataFrame, one row per transaction.
    customer_id, datetime : column names.
    period : the opportunity grid: "Y" (calendar years, default), "Q", "M", "W" (weeks ending
        on Sunday) or "D". Recorded as ``attrs["time_unit"]``.
    observation_end : the last date observed (its whole period is an opportunity). Default: the
        latest transaction. Transactions after it are an error, never dropped silently.
    calibration_end : optional date splitting the history for a holdout test: the summary
        columns count the periods up to the period of ``calibration_end`` (customers whose first
        transaction is later are left out), and ``frequency_holdout`` (periods with a
        transaction after it, up to ``observation_end``) and ``duration_holdout`` (the number of
        those periods) are added, ready for :func:`clvmodels.evaluation.evaluate`.
    datetime_format : strftime format of text dates (e.g. "%d/%m/%Y"); default ISO 8601 text or
        datetime values only.

    Returns
    -------
    DataFrame indexed by the customer id (sorted), int64 columns ``frequency``, ``recency``,
    ``n_periods`` (with ``calibration_end``: also ``frequency_holdout``, ``duration_holdout``);
    ``attrs``: ``time_unit`` (the period), ``observation_end`` (ISO date) and
    ``calibration_end``.

    Examples
    --------
    >>> import pandas as pd
    >>> tx = pd.DataFrame({"customer_id": [1, 1, 1, 2],
    ...                    "date": ["2019-03-01", "2019-11-30", "2021-06-01", "2020-05-05"]})
    >>> discrete_summary(tx, observation_end="2022-12-31")
                 frequency  recency  n_periods
    customer_id
    1                    1        2          3
    2                    0        0          2
    """
    if not isinstance(transactions, pd.DataFrame):
        raise InputError(
            f"transactions must be a pandas DataFrame, got {type(transactions).__name__}. Fix: "
            "read the file with pandas first (pd.read_csv(path, dtype=str))."
        )
    unit = units.normalize_unit(period)
    if unit not in PERIODS:
        raise InputError(
            f"period must be one of {sorted(PERIODS)} (the opportunity grid), got {period!r}"
        )
    check_columns(
        transactions,
        [customer_id, datetime],
        "transactions",
        hint="pass the names of the customer id and date columns (customer_id=, datetime=)",
    )
    if len(transactions) == 0:
        raise InputError("transactions is empty: there are no customers to summarise")
    ids = transactions[customer_id]
    missing = ids.isna().to_numpy()
    if missing.any():
        raise InputError(
            f"column {customer_id!r} has missing customer ids in "
            f"{describe_rows(transactions[[customer_id, datetime]], missing)}\nFix: remove "
            "these rows or fill in their ids."
        )
    dates = transactions[datetime]
    missing = dates.isna().to_numpy()
    if missing.any():
        raise InputError(
            f"column {datetime!r} has missing dates in "
            f"{describe_rows(transactions[[customer_id, datetime]], missing)}\nFix: remove "
            "these rows or fill in their dates."
        )
    parsed = _parse_dates(dates, datetime_format, f"column {datetime!r}")
    freq = PERIODS[unit]
    ordinal = parsed.dt.to_period(freq).array.asi8
    if observation_end is None:
        end = int(ordinal.max())
        end_text = str(parsed.max().date())
    else:
        end_value = pd.Series([observation_end])
        end_date = _parse_dates(end_value, datetime_format, "observation_end").iloc[0]
        end = int(pd.Period(end_date, freq=freq).ordinal)
        end_text = str(end_date.date())
        after = ordinal > end
        if after.any():
            raise InputError(
                f"transactions after observation_end={observation_end!r} (in a later period) in "
                f"{describe_rows(transactions[[customer_id, datetime]], after)}\nFix: pass a "
                "later observation_end, or filter the transactions explicitly first."
            )
    frame = pd.DataFrame({"id": ids.to_numpy(), "period": ordinal}).drop_duplicates()
    split = end
    if calibration_end is not None:
        cal_date = _parse_dates(pd.Series([calibration_end]), datetime_format, "calibration_end")
        split = int(pd.Period(cal_date.iloc[0], freq=freq).ordinal)
        if split > end:
            raise InputError(
                f"calibration_end={calibration_end!r} is after observation_end ({end_text}). "
                "Fix: pass a calibration_end before the observation end."
            )
    calibration = frame[frame["period"] <= split]
    grouped = calibration.groupby("id", sort=True)["period"]
    first = grouped.min()
    out = pd.DataFrame(
        {
            "frequency": (grouped.size() - 1).astype(np.int64),
            "recency": (grouped.max() - first).astype(np.int64),
            "n_periods": (split - first).astype(np.int64),
        }
    )
    if calibration_end is not None:
        later = frame[(frame["period"] > split) & frame["id"].isin(out.index)]
        holdout = later.groupby("id")["period"].size()
        out["frequency_holdout"] = holdout.reindex(out.index, fill_value=0).astype(np.int64)
        out["duration_holdout"] = np.int64(end - split)
        out.attrs["calibration_end"] = str(cal_date.iloc[0].date())
    out.index.name = customer_id
    out.attrs["time_unit"] = unit
    out.attrs["observation_end"] = end_text
    return out
