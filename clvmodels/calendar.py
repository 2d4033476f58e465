"""Calendar covariates for the time-varying Pareto/NBD, so seasonality needs no hand-built table.

:func:`calendar_covariates` builds the long covariate table that
:class:`clvmodels.TimeVaryingParetoNBD` takes: one row per period of a regular grid, with
month-of-year indicators and a holiday-season flag taken at the start of each period, for every
customer (with their static columns joined) or, without customers, one shared table that applies
to all of them.
"""

from __future__ import annotations

import re

import pandas as pd

from clvmodels.errors import InputError

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def period_starts(start, end, period: str = "W") -> pd.DatetimeIndex:
    """Starts of the periods of a regular grid from ``start`` (the first period's start) to
    ``end`` (inclusive): ``period`` is ``"D"``, ``"W"`` or a multiple such as ``"2W"``/``"14D"``."""
    match = re.fullmatch(r"\s*(\d*)\s*([DW])\s*", str(period).upper())
    if not match:
        raise InputError(
            f"period must be 'D', 'W' or a multiple such as '2W' (a regular grid in days), got "
            f"{period!r}; calendar months are not equally long, use 'W' with month_of_year=True"
        )
    days = int(match.group(1) or 1) * (7 if match.group(2) == "W" else 1)
    if days < 1:
        raise InputError(f"period must be at least one day, got {period!r}")
    start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    if end < start:
        raise InputError(f"end ({end.date()}) is before start ({start.date()})")
    return pd.date_range(start, end, freq=f"{days}D")


def calendar_covariates(
    customers=None,
    *,
    start,
    end,
    period: str = "W",
    month_of_year: bool = True,
    holiday_season: tuple[int, ...] | None = (11, 12),
    static: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The long covariate table ``[customer_id,] date, <columns>`` of calendar covariates.

    Parameters
    ----------
    customers : summary DataFrame (its index is the customer ids), sequence of ids, or None
        None gives one table without ``customer_id``, shared by every customer (the cheapest
        form for a million customers).
    start, end : the first period's start and the last period's start (inclusive). Cover each
        customer from their first purchase to the end of the forecast horizon.
    period : ``"W"`` (default), ``"D"`` or a multiple (``"2W"``); periods start every ``period``
        from ``start``.
    month_of_year : add indicator columns ``month_feb`` ... ``month_dec`` (1 when the period
        starts in that month). January is the baseline (no column), so the coefficients are
        each month's effect relative to January.
    holiday_season : months flagged in the column ``holiday_season`` (default November and
        December); None for no flag.
    static : optional DataFrame indexed by customer id with static covariates (e.g. gender),
        joined onto every period of the customer (needs ``customers``); a customer without a
        row is an InputError.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id`` (when customers are given), ``date`` and the covariates.

    Examples
    --------
    >>> table = calendar_covariates(start="2005-01-02", end="2005-12-25", month_of_year=False)
    >>> table.columns.tolist(), len(table), int(table["holiday_season"].sum())
    (['date', 'holiday_season'], 52, 8)
    """
    dates = period_starts(start, end, period)
    grid = pd.DataFrame({"date": dates})
    month = dates.month
    if month_of_year:
        for number, name in enumerate(MONTH_NAMES[1:], start=2):
            grid[f"month_{name}"] = (month == number).astype(float)
    if holiday_season is not None:
        months = tuple(int(m) for m in holiday_season)
        if not months or any(not 1 <= m <= 12 for m in months):
            raise InputError(f"holiday_season must be months 1..12, got {holiday_season!r}")
        grid["holiday_season"] = month.isin(months).astype(float)
    if customers is None:
        if static is not None:
            raise InputError("static covariates are per customer: pass customers as well")
        return grid
    ids = customers.index if isinstance(customers, pd.DataFrame) else pd.Index(list(customers))
    if ids.has_duplicates:
        raise InputError("customers has duplicate ids")
    table = pd.DataFrame({"customer_id": ids.repeat(len(grid))})
    for column in grid.columns:
        table[column] = list(grid[column]) * len(ids)
    if static is not None:
        missing = ids.difference(static.index)
        if len(missing):
            raise InputError(
                f"{len(missing)} customers have no row in static (e.g. {missing[:5].tolist()}); "
                "give every customer's static covariates"
            )
        values = static.loc[ids.repeat(len(grid))].reset_index(drop=True)
        clash = set(values.columns) & set(table.columns)
        if clash:
            raise InputError(f"static columns {sorted(clash)} clash with calendar columns")
        table = pd.concat([table, values], axis=1)
    return table
