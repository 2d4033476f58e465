"""The time-varying Pareto/NBD estimator (Bachmann, Meierer & Naef 2021), fitted by maximum
likelihood on the family :mod:`clvmodels.families.pareto_nbd_dyncov`.

Covariates come as a long table, one row per customer and period: ``customer_id, date,
<columns>`` with ``date`` the start of each period on a regular grid (weekly, say). A table
without ``customer_id`` applies to every customer (calendar covariates such as
:func:`clvmodels.calendar.calendar_covariates` builds). The table must cover each customer from
the period of their first purchase to the end of calibration for the fit, and to the end of the
horizon for forecasts: :meth:`TimeVaryingParetoNBD.with_future_covariates` adds the future
periods; a period that is not given is an :class:`~clvmodels.errors.InputError`, never carried
forward.

The purchase term of the likelihood needs the covariates at each repeat purchase, so the fit
takes the transactions too (not needed when every purchase covariate is constant over each
customer's calibration period).
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from clvmodels import units
from clvmodels.errors import ConvergenceWarning, InputError, TimeUnitError
from clvmodels.estimators.mle import FittedModel, PurchaseModel, PurchasePredictions
from clvmodels.families.base import FitRows
from clvmodels.families.pareto_nbd import ParetoNBDFamily
from clvmodels.families.pareto_nbd_dyncov import (
    PARAM_NAMES,
    ParetoNBDDynamicCovariatesFamily,
    expected_purchases_at,
    rows_log_likelihood,
    simulate_purchases,
)
from clvmodels.optimize import (
    compress_rows,
    minimize_negative_log_likelihood,
    numerical_hessian,
    single_threaded_blas,
)
from clvmodels.validation import summary_time_unit

ID_COLUMN = "customer_id"
DATE_COLUMN = "date"


class CovariateTable:
    """A covariate table on its regular calendar grid: ``values`` of shape ``(n_paths,
    n_periods, n_columns)`` (NaN where not given), the grid's ``origin`` and ``spacing``, and
    ``ids`` (the customer of each path; None for one path shared by all customers)."""

    def __init__(self, table: pd.DataFrame, columns: list[str]):
        if not isinstance(table, pd.DataFrame):
            raise InputError(
                f"covariates must be a pandas DataFrame with columns {DATE_COLUMN!r}, "
                f"[{ID_COLUMN!r},] {columns}; got {type(table).__name__}"
            )
        missing = [c for c in (DATE_COLUMN, *columns) if c not in table.columns]
        if missing:
            raise InputError(
                f"the covariate table has no column(s) {missing}; it needs {DATE_COLUMN!r} (the "
                f"start of each period), optionally {ID_COLUMN!r}, and the covariates {columns}"
            )
        self.columns = list(columns)
        self.table = table[[c for c in (ID_COLUMN, DATE_COLUMN) if c in table.columns] + columns]
        dates = pd.to_datetime(table[DATE_COLUMN], errors="coerce")
        if dates.isna().any():
            rows = table.index[dates.isna()][:5].tolist()
            raise InputError(
                f"the covariate table's {DATE_COLUMN!r} has missing or unreadable dates in rows "
                f"{rows}. Fix: give every row a date (the start of its period)."
            )
        data = table[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(data)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise InputError(
                f"the covariate table has {int(bad.any(axis=1).sum())} rows with missing or "
                f"non-numeric values, e.g. row {table.index[row]!r}, column {columns[col]!r}. Fix: "
                "fill them (categorical columns as 0/1 indicator columns); missing values are "
                "never imputed."
            )
        distinct = np.unique(dates.to_numpy())
        steps = np.diff(distinct)
        if len(distinct) < 2:
            raise InputError("the covariate table needs at least two periods (dates)")
        spacing = steps.min()
        offsets = (distinct - distinct[0]) / spacing
        if not np.allclose(offsets, np.round(offsets)):
            odd = distinct[~np.isclose(offsets, np.round(offsets))][:3]
            raise InputError(
                f"the covariate dates are not on a regular grid of {pd.Timedelta(spacing)} (e.g. "
                f"{[str(pd.Timestamp(d).date()) for d in odd]}). Fix: one row per period, dated "
                "at the start of the period, with equal periods (e.g. weekly)."
            )
        self.origin = pd.Timestamp(distinct[0])
        self.spacing = pd.Timedelta(spacing)
        period = np.round((dates.to_numpy() - distinct[0]) / spacing).astype(np.int64)
        n_periods = int(period.max()) + 1
        if ID_COLUMN in table.columns:
            ids, codes = np.unique(table[ID_COLUMN].to_numpy(), return_inverse=True)
            self.ids = pd.Index(ids)
        else:
            codes = np.zeros(len(table), dtype=np.int64)
            self.ids = None
        n_paths = 1 if self.ids is None else len(self.ids)
        key = codes.astype(np.int64) * n_periods + period
        if len(np.unique(key)) < len(key):
            dup = pd.Series(key).duplicated(keep=False).to_numpy()
            raise InputError(
                f"the covariate table has {int(dup.sum())} rows for a customer and period given "
                f"twice, e.g. rows {table.index[dup][:4].tolist()}. Fix: one row per customer "
                "and period."
            )
        self.values = np.full((n_paths, n_periods, len(columns)), np.nan)
        self.values[codes, period] = data

    def period_of(self, dates) -> np.ndarray:
        """The (fractional) grid position of ``dates``: 0 at the origin, 1 a period later."""
        return (pd.to_datetime(dates).to_numpy() - self.origin.to_datetime64()) / self.spacing


def combine_tables(first: pd.DataFrame, second: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The rows of both covariate tables; a customer and period in both must agree."""
    keys = [c for c in (ID_COLUMN, DATE_COLUMN) if c in first.columns]
    if keys != [c for c in (ID_COLUMN, DATE_COLUMN) if c in second.columns]:
        raise InputError(
            f"the future covariate table must have the same key columns as the fitted one ({keys})"
        )
    a = first[keys + columns].assign(**{DATE_COLUMN: pd.to_datetime(first[DATE_COLUMN])})
    b = second[keys + columns].assign(**{DATE_COLUMN: pd.to_datetime(second[DATE_COLUMN])})
    both = a.merge(b, on=keys, suffixes=("", "_new"))
    for c in columns:
        if not np.allclose(both[c].to_numpy(float), both[f"{c}_new"].to_numpy(float)):
            raise InputError(
                f"the future covariate table gives other values of {c!r} for periods already in "
                "the fitted table; give only new periods (or the same values)"
            )
    return pd.concat([a, b], ignore_index=True).drop_duplicates(keys, keep="first")


def place_customers(
    table: CovariateTable, ids: pd.Index, birth, T: np.ndarray, time_unit: str, horizon: float
):
    """Each customer on the covariate grid: ``(path, start_period, first_period_length,
    period_length)`` (the family's path arrays; lengths in ``time_unit``) for customers ``ids``
    first buying at ``birth`` (datetime64) and observed for ``T``. Raises InputError unless the
    table covers every customer from the first purchase to ``T + horizon``."""
    unit_days = units.days_per(time_unit)
    position = table.period_of(birth)
    start = np.floor(position + 1e-9).astype(np.int64)
    if np.any(start < 0):
        bad = ids[start < 0][:5].tolist()
        raise InputError(
            f"the covariate table starts on {table.origin.date()}, after the first purchase of "
            f"{int((start < 0).sum())} customers (e.g. {bad}). Fix: give covariates from "
            "each customer's first purchase on."
        )
    period_length = table.spacing / pd.Timedelta(days=unit_days)
    first_length = (start + 1 - position) * period_length
    end = np.asarray(T, dtype=float) + horizon
    needed = 1 + np.maximum(np.ceil((end - first_length) / period_length - 1e-9), 0).astype(
        np.int64
    )
    if table.ids is None:
        path = np.zeros(len(ids), dtype=np.int64)
    else:
        path = table.ids.get_indexer(ids)
        if np.any(path < 0):
            bad = ids[path < 0][:5].tolist()
            raise InputError(
                f"{int((path < 0).sum())} customers of the summary have no rows in the "
                f"covariate table (e.g. {bad}). Fix: give every customer's covariates "
                "(a table without customer_id applies to all customers)."
            )
    finite = np.isfinite(table.values).all(axis=2)
    gaps = np.concatenate([np.zeros((finite.shape[0], 1)), np.cumsum(~finite, axis=1)], axis=1)
    stop = start + needed
    too_long = stop > finite.shape[1]
    clipped = np.minimum(stop, finite.shape[1])
    holes = gaps[path, clipped] - gaps[path, np.minimum(start, finite.shape[1])] > 0
    bad = too_long | holes
    if bad.any():
        first_bad = np.flatnonzero(bad)[:5]
        last = table.origin + table.spacing * int(stop[first_bad[0]] - 1)
        until = "the end of calibration" if horizon == 0 else "the end of the horizon"
        raise InputError(
            f"the covariate table does not cover {int(bad.sum())} customers from their first "
            f"purchase to {until} (e.g. customers {ids[first_bad].tolist()}, whose periods run "
            f"to {last.date()}). Fix: give every period (future ones with "
            "with_future_covariates); a missing period is never carried forward."
        )
    return path, start, first_length, float(period_length)


def simulate_transactions(
    params: dict,
    covariates: pd.DataFrame,
    first_purchase: pd.Series,
    observation_end,
    time_unit: str = "W",
    seed=None,
) -> pd.DataFrame:
    """Transactions ``customer_id, date`` drawn from the time-varying Pareto/NBD (for
    simulation studies and parameter recovery).

    ``params``: ``r, alpha, s, beta`` (rates per ``time_unit``) and coefficients named
    ``purchase.<column>`` / ``dropout.<column>`` (columns of ``covariates``, a table as
    :meth:`TimeVaryingParetoNBD.fit` takes); ``first_purchase``: each customer's first purchase
    date, indexed by customer id. Purchases are recorded at their exact time (``rfm_summary``
    counts one purchase per day, or per hour with ``purchase_period="H"``, which keeps a
    frequent buyer's purchases on one day apart).
    """
    purchase = [c.split(".", 1)[1] for c in params if c.startswith("purchase.")]
    dropout = [c.split(".", 1)[1] for c in params if c.startswith("dropout.")]
    columns = list(dict.fromkeys(purchase + dropout))
    table = CovariateTable(covariates, columns)
    end = pd.Timestamp(observation_end)
    birth = pd.to_datetime(first_purchase).to_numpy()
    unit_days = units.days_per(time_unit)
    T = (end.to_datetime64() - birth) / np.timedelta64(1, "D") / unit_days
    if np.any(T < 0):
        raise InputError("first purchases after the observation end")
    path, start, first, period_length = place_customers(
        table, first_purchase.index, birth, T, time_unit, 0.0
    )

    def multiplier(names, prefix):
        index = [columns.index(c) for c in names]
        coefficients = np.array([params[f"{prefix}.{c}"] for c in names], dtype=float)
        return np.exp(table.values[:, :, index] @ coefficients)

    times, owner, _ = simulate_purchases(
        *(float(params[k]) for k in PARAM_NAMES),
        multiplier(purchase, "purchase"),
        multiplier(dropout, "dropout"),
        path,
        start,
        first,
        period_length,
        T,
        np.random.default_rng(seed),
    )
    offsets = pd.to_timedelta(times * unit_days, unit="D")
    dates = pd.DatetimeIndex(birth[owner]) + offsets
    ids = first_purchase.index.to_numpy()
    return pd.DataFrame(
        {
            ID_COLUMN: np.concatenate([ids, ids[owner]]),
            DATE_COLUMN: np.concatenate([birth, dates.to_numpy()]),
        }
    )


class AcquisitionForecast:
    """A fitted :class:`TimeVaryingParetoNBD` seen from its customers' acquisitions, in the form
    in which :func:`clvmodels.evaluation.tracking_data` forecasts a customer base: each cohort
    is keyed by ``covariate_columns`` -- the acquisition day and, for a table with a path per
    customer, the customer whose path applies -- and
    ``expected_purchases_new_customer(ages, covariates=cohort)`` gives the repeat purchases
    over the first ``ages`` (model units) after the end of the acquisition day, tracking's clock.
    """

    def __init__(self, model: TimeVaryingParetoNBD):
        model.check_fitted()
        self.model = model
        self.table = model.covariate_table()
        self.time_unit_ = model.time_unit_
        per_customer = self.table.ids is not None
        self.covariate_columns = ("acquisition_day",) + (("path_of",) if per_customer else ())

    def acquisitions(
        self, transactions: pd.DataFrame, customer_id: str = ID_COLUMN, datetime: str = DATE_COLUMN
    ) -> pd.DataFrame:
        """Per customer of ``transactions``: the day of the first purchase (and the customer's
        own covariate path), the ``covariates`` frame ``tracking_data`` takes."""
        days = pd.to_datetime(transactions[datetime]).dt.normalize()
        first = days.groupby(transactions[customer_id].to_numpy()).min()
        frame = pd.DataFrame({"acquisition_day": first.to_numpy()}, index=first.index)
        if "path_of" in self.covariate_columns:
            frame["path_of"] = first.index.to_numpy()
        return frame

    def expected_purchases_new_customer(self, t, covariates: dict) -> np.ndarray:
        """Expected repeat purchases over the first ``t`` (increasing ages) of a customer
        acquired on ``covariates["acquisition_day"]``, their clock starting at the end of that
        day (as :func:`~clvmodels.evaluation.tracking_data` counts ages)."""
        start = pd.Timestamp(covariates["acquisition_day"]) + pd.Timedelta(days=1)
        return self.model.expected_purchases_after_acquisition(
            start, t, covariates.get("path_of"), self.table
        )


class TimeVaryingParetoNBD(PurchasePredictions, FittedModel):
    """Pareto/NBD with time-varying covariates on the purchase and the dropout process
    (Bachmann, Meierer & Naef 2021; the math in :mod:`clvmodels.families.pareto_nbd_dyncov`).

    Parameters
    ----------
    purchase_covariates, dropout_covariates : list of str
        Columns of the covariate table that move the purchase / dropout rate; a positive
        coefficient raises the rate (CLVTools' ``trans.x`` is ``purchase.x``, ``life.x`` is
        ``dropout.x``). A static covariate (gender) is a column constant over a customer's rows.

    Attributes
    ----------
    params_ : pandas.Series
        ``r, alpha, s, beta`` (``param_names``) then ``purchase.<col>...``,
        ``dropout.<col>...`` (``coefficient_names``).
    log_likelihood_ : float
        The maximised log-likelihood.
    standard_errors_ : pandas.Series
        From the observed information (NaN for ``boundary_parameters_``).
    boundary_parameters_ : list of str
        Estimates on a flat direction of the likelihood (drifting to +-infinity).

    Examples
    --------
    >>> import clvmodels as clv
    >>> model = clv.TimeVaryingParetoNBD(["high_season"], ["high_season"])  # doctest: +SKIP
    >>> model.fit(summary, covariates=table, transactions=transactions)  # doctest: +SKIP
    >>> future = model.with_future_covariates(future_table)  # doctest: +SKIP
    >>> future.expected_purchases(summary, t=52)  # doctest: +SKIP
    """

    family_class = ParetoNBDDynamicCovariatesFamily

    def __init__(self, purchase_covariates=(), dropout_covariates=()):
        self.purchase_covariates = list(purchase_covariates)
        self.dropout_covariates = list(dropout_covariates)
        for name, cols in (
            ("purchase", self.purchase_covariates),
            ("dropout", self.dropout_covariates),
        ):
            if len(set(cols)) < len(cols) or not all(isinstance(c, str) for c in cols):
                raise InputError(f"{name}_covariates must be distinct column names, got {cols!r}")

    def get_params(self) -> dict[str, Any]:
        return {
            "purchase_covariates": list(self.purchase_covariates),
            "dropout_covariates": list(self.dropout_covariates),
        }

    @property
    def coefficient_names(self) -> tuple[str, ...]:
        """``purchase.<column>...``, ``dropout.<column>...``: the coefficients, which follow
        the model's own parameters (``param_names``: r, alpha, s, beta) in ``params_``."""
        return (
            *(f"purchase.{c}" for c in self.purchase_covariates),
            *(f"dropout.{c}" for c in self.dropout_covariates),
        )

    @property
    def estimate_names(self) -> tuple[str, ...]:
        """Every estimate: ``param_names`` then ``coefficient_names``."""
        return (*self.param_names, *self.coefficient_names)

    @property
    def covariate_columns(self) -> list[str]:
        return list(dict.fromkeys(self.purchase_covariates + self.dropout_covariates))

    # ---- paths ------------------------------------------------------------------------------
    def _observation_end(self, summary: pd.DataFrame, observation_end=None) -> pd.Timestamp:
        value = (
            observation_end if observation_end is not None else summary.attrs.get("observation_end")
        )
        if value is None:
            raise InputError(
                "the time-varying Pareto/NBD places each customer on the calendar from the "
                "observation end and T; the summary has no attrs['observation_end']. Fix: build it "
                "with clvmodels.rfm_summary(..., observation_end=...) or pass observation_end=."
            )
        return pd.Timestamp(value)

    def _paths(self, summary: pd.DataFrame, table: CovariateTable, observation_end, horizon: float):
        """Per-customer ``path``, ``start_period``, ``first_period_length`` and the grid's
        ``period_length`` (model units), each customer's first purchase placed ``T`` before
        the observation end; checks that the table covers (0, T + horizon)."""
        unit_days = units.days_per(self.time_unit_)
        T = summary["T"].to_numpy(dtype=float)
        birth = observation_end.to_datetime64() - (T * unit_days * 86400e9).astype(
            "timedelta64[ns]"
        )
        return place_customers(table, summary.index, birth, T, self.time_unit_, horizon)

    def _purchase_sums(
        self,
        summary,
        table: CovariateTable,
        path,
        start,
        first_length,
        period_length,
        transactions,
        observation_end,
    ):
        """sum over each customer's repeat purchases of the purchase covariates."""
        k1 = len(self.purchase_covariates)
        x = summary["frequency"].to_numpy(dtype=float)
        index = [table.columns.index(c) for c in self.purchase_covariates]
        if k1 == 0:
            return np.zeros((len(summary), 0))
        if transactions is None:
            T = summary["T"].to_numpy(dtype=float)
            needed = 1 + np.maximum(np.ceil((T - first_length) / period_length - 1e-9), 0).astype(
                int
            )
            values = table.values[:, :, index]
            constant = all(
                np.all(
                    values[path[i], start[i] : start[i] + needed[i]] == values[path[i], start[i]]
                )
                for i in range(len(summary))
            )
            if not constant:
                raise InputError(
                    "the purchase covariates vary over time, so the likelihood needs each repeat "
                    "purchase's date. Fix: pass transactions= (customer_id, date) to fit."
                )
            return x[:, None] * values[path, start]
        missing = [c for c in (ID_COLUMN, DATE_COLUMN) if c not in transactions.columns]
        if missing:
            raise InputError(f"transactions need the columns {ID_COLUMN!r} and {DATE_COLUMN!r}")
        # one purchase per purchase period (the day, or the hour), as rfm_summary counts them;
        # the observation end's whole period is included
        step = "h" if summary.attrs.get("purchase_period", "D") == "H" else "D"
        days = pd.to_datetime(transactions[DATE_COLUMN]).dt.floor(step)
        tx = pd.DataFrame({"id": transactions[ID_COLUMN].to_numpy(), "day": days.to_numpy()})
        tx = tx[tx["day"] <= observation_end.floor(step)].drop_duplicates()
        tx = tx.sort_values(["id", "day"])
        tx = tx[tx.duplicated("id")]  # repeat purchases: every period after the first
        owner = summary.index.get_indexer(tx["id"].to_numpy())
        tx, owner = tx[owner >= 0], owner[owner >= 0]
        counts = np.bincount(owner, minlength=len(summary))
        if not np.array_equal(counts, x.astype(np.int64)):
            bad = summary.index[counts != x][:5].tolist()
            raise InputError(
                "the transactions do not match the summary's frequency (repeat purchase days up "
                f"to the observation end) for {int((counts != x).sum())} customers, e.g. {bad}. "
                "Fix: pass the transactions the summary was built from (rfm_summary with "
                "purchase_period='D')."
            )
        period = np.floor(table.period_of(tx["day"].to_numpy()) + 1e-9).astype(np.int64)
        if np.any(period >= table.values.shape[1]):
            raise InputError("the covariate table ends before some repeat purchases")
        at_purchase = table.values[path[owner], period][:, index]
        if not np.all(np.isfinite(at_purchase)):
            raise InputError("the covariate table misses the periods of some repeat purchases")
        sums = np.zeros((len(summary), k1))
        np.add.at(sums, owner, at_purchase)
        return sums

    # ---- fitting ----------------------------------------------------------------------------
    def fit(
        self,
        summary: pd.DataFrame,
        covariates: pd.DataFrame,
        transactions: pd.DataFrame | None = None,
        *,
        observation_end=None,
    ):
        """Fit by maximum likelihood.

        Parameters
        ----------
        summary : the RFM summary (``rfm_summary``), with ``attrs['observation_end']``.
        covariates : long table ``customer_id, date, <columns>`` (or ``date, <columns>`` for
            covariates shared by all customers) on a regular grid of period starts, covering
            each customer from the period of the first purchase to the observation end.
        transactions : ``customer_id, date`` of the purchases (needed when a purchase
            covariate varies within a customer's calibration period).
        observation_end : defaults to ``summary.attrs['observation_end']``.
        """
        ParetoNBDDynamicCovariatesFamily.validate_summary(summary, fitting=True)
        self.time_unit_ = summary_time_unit(summary)
        if self.time_unit_ is None:
            raise TimeUnitError(
                "the summary has no time unit; build it with rfm_summary(..., time_unit='W')"
            )
        end = self._observation_end(summary, observation_end)
        table = CovariateTable(covariates, self.covariate_columns)
        path, start, first, period_length = self._paths(summary, table, end, 0.0)
        sums = self._purchase_sums(
            summary, table, path, start, first, period_length, transactions, end
        )
        family = ParetoNBDDynamicCovariatesFamily(len(self.purchase_covariates))
        rows = self._rows(summary, table, path, start, first, period_length, sums)
        start_point = self._initial(summary)

        def objective(theta):
            return family.negative_log_likelihood(theta, rows)

        with single_threaded_blas():
            result = minimize_negative_log_likelihood(objective, start_point)
            if not result.converged:
                polish = minimize_negative_log_likelihood(objective, result.log_params)
                if polish.neg_log_likelihood <= result.neg_log_likelihood:
                    result = polish
            hessian = numerical_hessian(
                lambda th: objective(th)[1], result.log_params, gradient_at_x=result.gradient
            )
        self.family_ = family
        self.covariates_ = table.table
        self.observation_end_ = end
        self.fit_summary_T_ = pd.Series(summary["T"].to_numpy(dtype=float), index=summary.index)
        self.rows_ = rows
        self.theta_ = np.asarray(result.log_params, dtype=float)
        self.log_likelihood_ = -float(result.neg_log_likelihood)
        self.converged_ = bool(result.converged)
        self.optimizer_message_ = result.message
        self.n_customers_ = float(len(summary))
        self.params_ = pd.Series(self._natural(self.theta_), index=list(self.estimate_names))
        self._set_covariance(hessian)
        return self

    def _rows(self, summary, table, path, start, first, period_length, sums) -> FitRows:
        purchase = [table.columns.index(c) for c in self.purchase_covariates]
        dropout = [table.columns.index(c) for c in self.dropout_covariates]
        columns = {
            "frequency": summary["frequency"].to_numpy(dtype=float),
            "recency": summary["recency"].to_numpy(dtype=float),
            "T": summary["T"].to_numpy(dtype=float),
            "path": path.astype(float),
            "start_period": start.astype(float),
            "first_period_length": first,
        }
        names = list(columns)
        arrays = list(columns.values()) + [sums[:, j] for j in range(sums.shape[1])]
        *unique, counts = compress_rows(*arrays)
        distinct = dict(zip(names, unique[: len(names)], strict=True))
        distinct_sums = (
            np.column_stack(unique[len(names) :]) if sums.shape[1] else np.zeros((len(counts), 0))
        )
        aux = {
            "period_length": period_length,
            "purchase_covariates": np.ascontiguousarray(table.values[:, :, purchase]),
            "dropout_covariates": np.ascontiguousarray(table.values[:, :, dropout]),
            "purchase_sums": np.ascontiguousarray(distinct_sums),
        }
        return FitRows(distinct, np.asarray(counts, dtype=float), aux)

    def _initial(self, summary) -> np.ndarray:
        """The plain Pareto/NBD optimum with all coefficients 0."""
        family = ParetoNBDFamily()
        rows = family.fit_rows(summary)
        plain = minimize_negative_log_likelihood(
            lambda lp: family.negative_log_likelihood(lp, rows), family.initial_log_params(rows)
        )
        k = len(self.purchase_covariates) + len(self.dropout_covariates)
        return np.concatenate([plain.log_params, np.zeros(k)])

    def _natural(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=float)
        out = theta.copy()
        out[..., :4] = np.exp(theta[..., :4])
        return out

    def _set_covariance(self, hessian: np.ndarray) -> None:
        """Observed-information covariance of ``theta`` (log r, log alpha, log s, log beta,
        coefficients). Parameters on a flat direction of the information (a coefficient
        drifting to +-infinity, e.g. no dropout at all in some season) are listed in
        ``boundary_parameters_`` with a warning; the others get the covariance conditional on
        them (the sub-matrix of the information), the boundary ones NaN."""
        names = list(self.estimate_names)
        k = len(names)
        self.boundary_parameters_ = []
        cov = np.full((k, k), np.nan)
        if np.all(np.isfinite(hessian)):
            eigenvalues, vectors = np.linalg.eigh(hessian)
            flat = eigenvalues <= 1e-7 * max(float(eigenvalues.max()), 0.0)
            weak = np.zeros(k, dtype=bool)
            if flat.any():
                weak = np.max(np.abs(vectors[:, flat]), axis=1) >= 0.3
            weak |= np.abs(self.theta_) >= 29.0
            keep = ~weak
            if keep.any():
                sub = hessian[np.ix_(keep, keep)]
                if np.linalg.eigvalsh(sub).min() > 0:
                    cov[np.ix_(keep, keep)] = np.linalg.inv(sub)
                else:
                    weak[:] = True
            self.boundary_parameters_ = [n for n, w in zip(names, weak, strict=True) if w]
        else:
            self.boundary_parameters_ = names
        if self.boundary_parameters_:
            estimates = ", ".join(f"{n} = {self.params_[n]:.4g}" for n in self.boundary_parameters_)
            warnings.warn(
                ConvergenceWarning(
                    f"TimeVaryingParetoNBD: the likelihood is flat in the direction of {estimates}"
                    " (it keeps rising towards a boundary, e.g. a dropout coefficient towards "
                    "-infinity means no dropout at all while that covariate is on); those "
                    "estimates are arbitrary and get no standard error, the others' standard "
                    "errors hold them fixed"
                ),
                stacklevel=3,
            )
        self.theta_covariance_ = pd.DataFrame(cov, index=names, columns=names)
        scale = np.where(np.arange(k) < 4, self.params_.to_numpy(), 1.0)  # delta method
        self.covariance_ = pd.DataFrame(cov * np.outer(scale, scale), index=names, columns=names)
        self.standard_errors_ = pd.Series(np.sqrt(np.diag(self.covariance_)), index=names)

    # ---- reporting --------------------------------------------------------------------------
    def summary(self, interval: float = 0.95) -> pd.DataFrame:
        """Estimates, standard errors, z-values (coefficients) and confidence intervals
        (log-normal for r, alpha, s, beta; normal for the coefficients)."""
        self.check_fitted()
        z = stats.norm.ppf(0.5 + interval / 2)
        se_theta = np.sqrt(np.diag(self.theta_covariance_.to_numpy()))
        theta = self.theta_
        lo = self._natural(theta - z * se_theta)
        hi = self._natural(theta + z * se_theta)
        est = self.params_.to_numpy()
        coefficient = np.arange(len(est)) >= 4
        z_value = np.where(coefficient, est / self.standard_errors_.to_numpy(), np.nan)
        return pd.DataFrame(
            {
                "estimate": est,
                "se": self.standard_errors_.to_numpy(),
                f"lower_{interval:.0%}": lo,
                f"upper_{interval:.0%}": hi,
                "z": z_value,
                "p_value": np.where(coefficient, 2 * stats.norm.sf(np.abs(z_value)), np.nan),
            },
            index=pd.Index(self.estimate_names, name="parameter"),
        )

    def param_draws(self, n: int = 200, method: str = "asymptotic", seed=None) -> pd.DataFrame:
        """Asymptotic draws: (log r, log alpha, log s, log beta, coefficients) ~ Normal(MLE,
        inverse observed information); parameters on a boundary (``boundary_parameters_``)
        stay at their estimate."""
        self.check_fitted()
        if method != "asymptotic":
            raise InputError(
                "TimeVaryingParetoNBD gives asymptotic draws only (method='asymptotic')"
            )
        cov = self.theta_covariance_.to_numpy()
        free = np.isfinite(np.diag(cov))
        if not free.any():
            raise InputError("this fit has no covariance (see the fit's warning), so no draws")
        rng = np.random.default_rng(seed)
        samples = np.tile(self.theta_, (int(n), 1))
        samples[:, free] = rng.multivariate_normal(
            self.theta_[free], cov[np.ix_(free, free)], size=int(n), method="eigh"
        )
        return pd.DataFrame(self._natural(samples), columns=list(self.estimate_names))

    # ---- predictions --------------------------------------------------------------------------
    def with_future_covariates(self, table: pd.DataFrame) -> TimeVaryingParetoNBD:
        """A copy of the fitted model whose covariates add the (future) periods of ``table``
        (same columns as the fit's); predictions over a horizon need every period up to it."""
        self.check_fitted()
        if self.covariates_ is None:  # a model loaded from a file holds no table
            combined = table
        else:
            combined = combine_tables(self.covariates_, table, self.covariate_columns)
        CovariateTable(combined, self.covariate_columns)  # checks the grid
        model = object.__new__(type(self))
        model.__dict__.update(self.__dict__)
        model.covariates_ = combined
        return model

    def acquisition_forecast(self) -> AcquisitionForecast:
        """The model seen from its customers' acquisitions (:class:`AcquisitionForecast`): how
        :func:`clvmodels.evaluation.tracking_data` forecasts each customer along their own
        covariate path from the first purchase."""
        return AcquisitionForecast(self)

    def covariate_table(self) -> CovariateTable:
        """The model's covariate table on its grid (the fit's periods and any added by
        :meth:`with_future_covariates`)."""
        self.check_fitted()
        if self.covariates_ is None:
            raise InputError(
                "this model holds no covariate table (model files keep the estimates, not the "
                "data); attach the covariates with model.with_future_covariates(table), the "
                "periods from the customers' first purchases to the end of the horizon"
            )
        return CovariateTable(self.covariates_, self.covariate_columns)

    def customer_params(self, summary: pd.DataFrame, draws: pd.DataFrame | None = None) -> dict:
        """The family's ``params`` for the customers of ``summary``: r, alpha, s, beta of shape
        ``(n_draws, 1)``, the coefficients ``(n_draws, k)`` and the covariate paths.

        Each customer's first purchase is placed ``T`` before the summary's own end
        (:meth:`placement_end`)."""
        return self.params_on_table(self.covariate_table(), summary, draws)

    def params_on_table(
        self, table: CovariateTable, summary: pd.DataFrame, draws: pd.DataFrame | None = None
    ) -> dict:
        """:meth:`customer_params` on a covariate table already built (:meth:`covariate_table`),
        for callers that place many small summaries on the same table."""
        self.check_fitted()
        draws = self.point_draws() if draws is None else draws
        end = self.placement_end(summary)
        path, start, first, period_length = self._paths(summary, table, end, 0.0)
        purchase = [table.columns.index(c) for c in self.purchase_covariates]
        dropout = [table.columns.index(c) for c in self.dropout_covariates]
        params = {k: draws[k].to_numpy(dtype=float)[:, None] for k in PARAM_NAMES}
        params["purchase_coefficients"] = (
            draws[[f"purchase.{c}" for c in self.purchase_covariates]]
            .to_numpy(dtype=float)
            .reshape(len(draws), -1)
        )
        params["dropout_coefficients"] = (
            draws[[f"dropout.{c}" for c in self.dropout_covariates]]
            .to_numpy(dtype=float)
            .reshape(len(draws), -1)
        )
        used = np.unique(path)
        remap = np.searchsorted(used, path)
        params["purchase_covariates"] = np.ascontiguousarray(table.values[used][:, :, purchase])
        params["dropout_covariates"] = np.ascontiguousarray(table.values[used][:, :, dropout])
        params["path"] = remap[None, :]
        params["start_period"] = start[None, :]
        params["first_period_length"] = first[None, :]
        params["period_length"] = np.array([[period_length]])
        return params

    def placement_end(self, summary: pd.DataFrame) -> pd.Timestamp:
        """The date ``T`` runs to in ``summary``: each customer's first purchase is ``T`` before
        it on the covariate grid.

        It is the summary's own ``attrs["calibration_end"]`` (a calibration/holdout summary,
        whose ``T`` runs to the calibration end) or ``attrs["observation_end"]``; a summary
        without either is placed at the fit's observation end only when it is (part of) the
        fit's own summary -- every customer in it with the ``T`` it had in the fit. Otherwise an
        InputError: the end is never assumed."""
        attrs = summary.attrs
        recorded = attrs.get("calibration_end", attrs.get("observation_end"))
        if recorded is not None:
            return self._observation_end(summary, recorded)
        if self._is_fit_summary(summary):
            return self.observation_end_
        raise InputError(
            f"the summary ({len(summary)} customers) records no observation end "
            "(attrs['observation_end'] or attrs['calibration_end']), and it is not the summary "
            "this TimeVaryingParetoNBD was fit on, so its customers cannot be placed on the "
            "covariate calendar (each first purchase lies T before the end). Fix: build it with "
            "clvmodels.rfm_summary(..., observation_end=...) or set summary.attrs"
            "['observation_end'] to the date its T runs to (score_dask: observation_end=)."
        )

    def _is_fit_summary(self, summary: pd.DataFrame) -> bool:
        """Every customer of ``summary`` is in the fit's summary with the same ``T``."""
        fitted_T = getattr(self, "fit_summary_T_", None)
        if fitted_T is None or len(summary) == 0 or not fitted_T.index.is_unique:
            return False
        position = fitted_T.index.get_indexer(summary.index)
        if np.any(position < 0):
            return False
        return bool(
            np.array_equal(fitted_T.to_numpy()[position], summary["T"].to_numpy(dtype=float))
        )

    def expected_purchases_after_acquisition(
        self, acquired, t, customer_id=None, table: CovariateTable | None = None
    ) -> np.ndarray:
        """E[X(0, t]] for a customer acquired (first purchase) at time ``acquired``: repeat
        purchases over the first ``t`` (model units; increasing horizons > 0) of their life
        along their covariate path (the path of ``customer_id``; a table without customer_id
        needs none). The forecast of a customer with frequency 0, recency 0 and T 0 at
        ``acquired`` (alive with certainty), so the model's conditional expectation
        (module docstring of the family) with the prior rates. ``table``: the model's
        :meth:`covariate_table` when already built."""
        table = self.covariate_table() if table is None else table
        if table.ids is not None and customer_id is None:
            raise InputError(
                "the covariate table has a path per customer: give customer_id (whose path the "
                "new customer follows)"
            )
        index = pd.Index([0 if customer_id is None else customer_id])
        newcomer = pd.DataFrame({"frequency": [0.0], "recency": [0.0], "T": [0.0]}, index=index)
        newcomer.attrs = {"time_unit": self.time_unit_, "observation_end": str(acquired)}
        params = self.params_on_table(table, newcomer)
        ends = np.atleast_1d(np.asarray(t, dtype=float))
        values = expected_purchases_at(params, 0.0, 0.0, 0.0, ends)
        return values[0, 0]

    def discounted_expected_transactions(
        self, summary: pd.DataFrame, t, annual_discount_rate: float
    ) -> pd.Series:
        """Expected purchases in (T, T+t] discounted continuously at ``annual_discount_rate``
        (DECT over the covariate path)."""
        params, customer = self._prepare(summary)
        delta = (
            np.log1p(annual_discount_rate) * units.days_per(self.time_unit_) / units.days_per("Y")
        )
        values = self.family_.continuously_discounted_purchases(
            params, *customer, self.to_model_time(t), delta
        )
        return pd.Series(
            np.asarray(values)[0], index=summary.index, name="discounted_expected_purchases"
        )

    predict = PurchaseModel.predict  # the family's predictions, written once in mle.py

    def log_likelihood_per_customer(self) -> np.ndarray:
        """Per distinct fitting row, the log-likelihood at the estimate (with ``rows_.counts``)."""
        values, _ = rows_log_likelihood(
            self.theta_, self.rows_, len(self.purchase_covariates), want_gradient=False
        )
        return values

    # ---- persistence (JSON, no pickle) ---------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Settings and estimates as plain JSON-able values; the covariate table is data and is
        not kept (attach it again with :meth:`with_future_covariates`)."""
        self.check_fitted()
        return {
            "class": type(self).__name__,
            "settings": self.get_params(),
            "time_unit": self.time_unit_,
            "observation_end": str(self.observation_end_),
            "theta": [float(v) for v in self.theta_],
            "theta_covariance": self.theta_covariance_.to_numpy().tolist(),
            "log_likelihood": self.log_likelihood_,
            "converged": bool(self.converged_),
            "boundary_parameters": list(self.boundary_parameters_),
            "optimizer_message": self.optimizer_message_,
            "n_customers": self.n_customers_,
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> TimeVaryingParetoNBD:
        """Rebuild a fitted model from :meth:`to_dict` output (without covariates)."""
        if payload.get("class") != cls.__name__:
            raise InputError(f"payload is a {payload.get('class')!r}, not a {cls.__name__}")
        model = cls(**payload["settings"])
        names = list(model.estimate_names)
        theta = np.asarray(payload["theta"], dtype=float)
        cov = np.asarray(payload["theta_covariance"], dtype=float)
        if theta.shape != (len(names),) or cov.shape != (len(names), len(names)):
            raise InputError(f"payload's estimates do not match the parameters {names}")
        model.family_ = ParetoNBDDynamicCovariatesFamily(len(model.purchase_covariates))
        model.time_unit_ = payload["time_unit"]
        model.observation_end_ = pd.Timestamp(payload["observation_end"])
        model.theta_ = theta
        model.params_ = pd.Series(model._natural(theta), index=names)
        model.theta_covariance_ = pd.DataFrame(cov, index=names, columns=names)
        scale = np.where(np.arange(len(names)) < 4, model.params_.to_numpy(), 1.0)
        model.covariance_ = pd.DataFrame(cov * np.outer(scale, scale), index=names, columns=names)
        model.standard_errors_ = pd.Series(np.sqrt(np.diag(model.covariance_)), index=names)
        model.log_likelihood_ = float(payload["log_likelihood"])
        model.converged_ = bool(payload["converged"])
        model.boundary_parameters_ = list(payload["boundary_parameters"])
        model.optimizer_message_ = payload["optimizer_message"]
        model.n_customers_ = payload["n_customers"]
        model.covariates_ = None
        model.fit_summary_T_ = None
        model.rows_ = None
        return model

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
