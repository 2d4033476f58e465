"""Subscription (contractual) data: tables for the sBG and beta-discrete-Weibull models.

A subscription table is indexed by ``customer_id`` with

* ``tenure``: whole billing periods completed (a churned customer paid ``tenure`` periods and
  left at the end of the last one, ``tenure >= 1``; an active customer has completed ``tenure``
  periods and is in period ``tenure + 1``, which they have paid for);
* ``churned``: True when the departure was observed before the end of observation;
* optionally ``cohort`` (by default the billing period in which the subscription started) and
  any covariate or ``price`` columns;

and ``attrs["time_unit"]``, the billing period ("M", "Y", ...; see :mod:`clvmodels.units`).

Build one from a subscriptions file with :func:`subscription_table` (one row per customer with
start and end dates) or from a cohort's survivor counts with :func:`table_from_survivors`.
Fitting compresses the table to its distinct ``(tenure, churned)`` rows, so a million
subscribers fit as fast as a few hundred rows. :func:`fit_by_cohort` fits one model per cohort;
:func:`survival_curve`, :func:`retention_curve` and :func:`project_survivors` give the curves
and projections with intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from clvmodels import units
from clvmodels.errors import InputError, check_columns, describe_rows
from clvmodels.estimators.mle import FittedModel
from clvmodels.families.constant_price import SubscriptionPriceFamily

__all__ = [
    "SUBSCRIPTION_COLUMNS",
    "SubscriptionPrice",
    "validate_subscription_table",
    "subscription_table",
    "table_from_survivors",
    "fit_by_cohort",
    "equity_by_cohort",
    "survival_curve",
    "retention_curve",
    "expected_survivors",
    "project_survivors",
    "compare_retention_models",
    "holdout_payments",
    "evaluate_payments",
    "observed_survivors",
]

SUBSCRIPTION_COLUMNS = ("tenure", "churned")
#: billing periods a subscriptions file may be cut into (calendar months, quarters and years
#: are counted on the calendar; days and weeks by their length)
BILLING_PERIODS = ("D", "W", "M", "Q", "Y")
_MONTHS_PER = {"M": 1, "Q": 3, "Y": 12}


def validate_subscription_table(table: pd.DataFrame, what: str = "table") -> pd.DataFrame:
    """Check a subscription table and return it; raise InputError naming the column, the rows
    and the fix.

    Checks: a DataFrame with columns ``tenure`` and ``churned``, not empty, unique customer ids
    in the index; ``tenure`` a finite whole number >= 0; ``churned`` True/False (or 1/0, no
    missing values); a churned customer has ``tenure >= 1`` (they paid at least one period).
    """
    hint = (
        "build it with clvmodels.subscriptions.subscription_table(...) or table_from_survivors(...)"
    )
    if not isinstance(table, pd.DataFrame):
        raise InputError(
            f"{what} must be a pandas DataFrame with columns tenure, churned; got "
            f"{type(table).__name__}. Fix: {hint}."
        )
    check_columns(table, list(SUBSCRIPTION_COLUMNS), what, hint=hint)
    if len(table) == 0:
        raise InputError(f"{what} is empty: there are no subscribers to fit or score")
    if table.index.has_duplicates:
        dup = table.index.duplicated(keep=False)
        raise InputError(
            f"{what} has duplicated customer ids in its index: "
            f"{describe_rows(table[list(SUBSCRIPTION_COLUMNS)], dup)}\nFix: one row per "
            "customer (aggregate repeated subscriptions first)."
        )
    tenure = pd.to_numeric(table["tenure"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(tenure) | (tenure < 0) | (tenure != np.floor(tenure))
    if bad.any():
        raise InputError(
            f"{what}: column 'tenure' must hold whole numbers of periods >= 0; it does not in "
            f"{describe_rows(table[list(SUBSCRIPTION_COLUMNS)], bad)}\nFix: count whole "
            "billing periods completed (subscription_table does this)."
        )
    churned = table["churned"]
    values = pd.to_numeric(churned, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        raise InputError(
            f"{what}: column 'churned' must be True/False (or 1/0) with no missing values; it "
            f"is not in {describe_rows(table[list(SUBSCRIPTION_COLUMNS)], bad)}\nFix: True "
            "when the customer's departure was observed, False when still active."
        )
    bad = (values == 1.0) & (tenure < 1)
    if bad.any():
        raise InputError(
            f"{what}: a churned customer paid at least one period, so tenure must be >= 1 "
            f"where churned is True; it is 0 in "
            f"{describe_rows(table[list(SUBSCRIPTION_COLUMNS)], bad)}\nFix: count the period "
            "they paid for (subscription_table rounds a partial period up for churned customers)."
        )
    return table


# --------------------------------------------------------------------------------------------
# the spend side: a price per payment
# --------------------------------------------------------------------------------------------
class SubscriptionPrice(FittedModel):
    """The spend model of subscribers: each renewal payment is worth the customer's price.

    ``SubscriptionPrice()`` reads each customer's ``price`` column (price per billing period);
    ``SubscriptionPrice(price=9.99)`` uses one price for everybody. There is nothing to
    estimate: :meth:`fit` checks the table and records its time unit, the parameter draws are
    empty rows (all the uncertainty of a subscriber's value comes from the retention model).
    Value subscribers with the usual valuation engine::

        sbg = clv.ShiftedBetaGeo().fit(table)
        price = clv.SubscriptionPrice().fit(table)
        clv.lifetime_value(sbg, price, table, horizon="5Y", annual_discount_rate=0.1,
                           margin=0.8, kind="predictive")

    ``margin`` and the discounting are the engine's (payment ``k`` periods ahead discounted by
    ``(1 + i_p)^-k``; see :mod:`clvmodels.valuation`).
    """

    family_class = SubscriptionPriceFamily

    def __init__(self, price: float | None = None):
        self.price = price

    def get_params(self) -> dict:
        """The constructor arguments (scikit-learn convention)."""
        return {"price": self.price}

    def fit(self, table: pd.DataFrame, weights=None):
        """Check the prices of ``table`` (nothing is estimated); ``weights`` are not used."""
        family = SubscriptionPriceFamily(self.price)
        family.validate_summary(table)
        self.family_ = family
        self.params_ = pd.Series(dtype=float)
        self.time_unit_ = table.attrs.get("time_unit")
        return self

    def param_draws(self, n: int = 200, method: str = "asymptotic", seed=None) -> pd.DataFrame:
        """``n`` empty rows: the price has no parameters and no uncertainty."""
        if int(n) < 1:
            raise ValueError(f"n must be a positive number of draws, got {n!r}")
        return pd.DataFrame(index=pd.RangeIndex(int(n)))

    def expected_spend(self, table: pd.DataFrame) -> pd.Series:
        """The spend of one payment per customer: their price."""
        self.check_fitted()
        self.family_.validate_summary(table)
        (price,) = self.family_.customer_arrays(table)
        return pd.Series(price, index=table.index, name="expected_spend")

    def __repr__(self) -> str:
        return f"SubscriptionPrice(price={self.price!r})"


# --------------------------------------------------------------------------------------------
# building tables
# --------------------------------------------------------------------------------------------
def _dates(frame: pd.DataFrame, column: str, allow_missing: bool) -> pd.Series:
    values = frame[column]
    parsed = pd.to_datetime(values, errors="coerce")
    bad = parsed.isna() & (values.notna() if allow_missing else True)
    if np.any(bad):
        raise InputError(
            f"column {column!r} has values that are not dates"
            + ("" if allow_missing else " or are missing")
            + f": {describe_rows(frame[[column]], np.asarray(bad))}\nFix: give dates such as "
            "2024-01-31"
            + (" (leave the end empty for active subscriptions)." if allow_missing else ".")
        )
    return parsed


def periods_between(
    start: pd.Series, date: pd.Series, period: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(whole, exact)``: per row, the number of whole billing periods from ``start`` to
    ``date`` (the largest ``k`` with ``start + k periods <= date``) and whether ``date`` falls
    exactly on a period boundary. Months, quarters and years are calendar periods (a period
    starting on the 31st ends on the last day of a shorter month, as ``pandas.DateOffset``);
    days and weeks are fixed lengths."""
    unit = units.normalize_unit(period)
    if unit in _MONTHS_PER:
        months = (date.dt.year - start.dt.year) * 12 + (date.dt.month - start.dt.month)
        anchor_day = np.minimum(start.dt.day, date.dt.days_in_month)
        start_clock = start - start.dt.normalize()
        date_clock = date - date.dt.normalize()
        day_diff = date.dt.day - anchor_day
        before = (day_diff < 0) | ((day_diff == 0) & (date_clock < start_clock))
        on_anchor = (day_diff == 0) & (date_clock == start_clock)
        months = (months - before.astype(int)).to_numpy(dtype=np.int64)
        step = _MONTHS_PER[unit]
        whole = np.floor_divide(months, step)
        exact = on_anchor.to_numpy() & (months % step == 0)
        return whole, exact
    length = pd.Timedelta(days=units.days_per(unit))
    ratio = ((date - start) / length).to_numpy(dtype=float)
    whole = np.floor(ratio).astype(np.int64)
    return whole, ratio == whole


def subscription_table(
    frame: pd.DataFrame,
    *,
    customer_id: str = "customer_id",
    start: str = "start",
    end: str = "end",
    observation_end=None,
    period: str = "M",
    cohort: str | None = None,
    keep: Sequence[str] = (),
) -> pd.DataFrame:
    """A subscription table from one row per subscription.

    Parameters
    ----------
    frame : DataFrame with a customer id, a start date and an end date (empty while active).
    customer_id, start, end : the column names.
    observation_end : the date the data were extracted; subscriptions ending after it count as
        active. Default: the latest start or end date in the data.
    period : the billing period ("M" months, "Y" years, "Q", "W", "D"); stored as
        ``attrs["time_unit"]``.
    cohort : a column to copy as ``cohort``; by default the billing period of the start
        (e.g. ``"2024-01"`` for monthly billing).
    keep : more columns to copy (covariates, ``price``).

    Returns
    -------
    DataFrame indexed by ``customer_id`` with ``tenure``, ``churned``, ``cohort`` (and
    ``keep``). A churned customer's tenure is the number of periods they paid, the periods from
    start to end rounded up (at least 1); an active customer's is the whole periods from start
    to ``observation_end``.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    unit = units.normalize_unit(period)
    if unit not in BILLING_PERIODS:
        raise InputError(f"period must be one of {', '.join(BILLING_PERIODS)}, got {period!r}")
    wanted = [customer_id, start, *([end] if end in frame.columns else [])]
    check_columns(
        frame,
        [customer_id, start, *([cohort] if cohort else []), *keep],
        "subscriptions",
        hint=f"name the columns with customer_id=, start=, end= (end {end!r} may be absent when "
        "every subscription is active)",
    )
    ids = frame[customer_id]
    if ids.isna().any():
        raise InputError(
            f"column {customer_id!r} has missing customer ids: "
            f"{describe_rows(frame[wanted], ids.isna().to_numpy())}\nFix: drop or fill them."
        )
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        raise InputError(
            f"column {customer_id!r} has customers with more than one subscription: "
            f"{describe_rows(frame[wanted], dup)}\nFix: one row per customer (e.g. keep each "
            "customer's latest subscription, or use a subscription id as customer_id)."
        )
    begin = _dates(frame, start, allow_missing=False)
    if end in frame.columns:
        finish = _dates(frame, end, allow_missing=True)
    else:
        finish = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    if observation_end is None:
        observation_end = max(begin.max(), finish.max() if finish.notna().any() else begin.max())
    obs = pd.Timestamp(observation_end)
    if pd.isna(obs):
        raise InputError(f"observation_end must be a date, got {observation_end!r}")
    late = (begin > obs).to_numpy()
    if late.any():
        raise InputError(
            f"subscriptions start after observation_end {obs.date()}: "
            f"{describe_rows(frame[wanted], late)}\nFix: pass a later observation_end or drop "
            "subscriptions not yet started."
        )
    backwards = (finish < begin).to_numpy()
    if backwards.any():
        raise InputError(
            f"subscriptions end before they start ({end!r} < {start!r}): "
            f"{describe_rows(frame[wanted], backwards)}\nFix: check the date columns (swapped? "
            "another date format?)."
        )
    churned = (finish.notna() & (finish <= obs)).to_numpy()
    obs_series = pd.Series(obs, index=frame.index)
    active_whole, _ = periods_between(begin, obs_series, unit)
    end_whole, end_exact = periods_between(begin, finish.where(churned, obs_series), unit)
    paid = np.maximum(1, end_whole + (~end_exact).astype(np.int64))
    tenure = np.where(churned, paid, active_whole)
    table = pd.DataFrame(
        {"tenure": tenure.astype(np.int64), "churned": churned},
        index=pd.Index(ids.to_numpy(), name=customer_id),
    )
    if cohort:
        table["cohort"] = frame[cohort].to_numpy()
    else:
        freq = {"D": "D", "W": "W", "M": "M", "Q": "Q", "Y": "Y"}[unit]
        table["cohort"] = begin.dt.to_period(freq).astype(str).to_numpy()
    for column in keep:
        table[column] = frame[column].to_numpy()
    table.attrs["time_unit"] = unit
    table.attrs["observation_end"] = str(obs)
    return table


def _survivor_rows(counts, name) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values = np.asarray(counts, dtype=float)
    label = "" if name is None else f" of cohort {name!r}"
    if (
        values.ndim != 1
        or len(values) < 2
        or np.any(~np.isfinite(values))
        or np.any(values < 0)
        or np.any(values != np.floor(values))
    ):
        raise InputError(
            f"survivor counts{label} must be whole numbers >= 0, the cohort size first and "
            f"then the customers still subscribed after each period; got {counts!r}"
        )
    if values[0] <= 0 or np.any(np.diff(values) > 0):
        raise InputError(
            f"survivor counts{label} must start with a positive cohort size and never increase "
            f"(customers who left do not come back); got {list(values)}"
        )
    periods = len(values) - 1
    tenure = np.append(np.arange(1, periods + 1), periods)
    churned = np.append(np.ones(periods, dtype=bool), False)
    customers = np.append(-np.diff(values), values[-1])
    return tenure, churned, customers


def table_from_survivors(
    counts: Sequence[float] | Mapping[str, Sequence[float]],
    *,
    period: str,
    expand: bool = True,
) -> pd.DataFrame:
    """A subscription table from survivor counts (FH 2007's data layout).

    ``counts`` is one cohort's counts at periods ``0, 1, ..., n`` (the cohort size, then the
    customers still subscribed after each period), or a mapping ``{cohort: counts}``. The
    customers lost between ``t - 1`` and ``t`` have ``tenure = t, churned = True``; the last
    count is active with ``tenure = n``.

    With ``expand=True`` (default) the table has one row per customer (ids ``0, 1, ...``), as a
    subscriptions file would give. With ``expand=False`` it has one row per distinct
    ``(cohort, tenure, churned)`` with the number of customers in ``customers``: fit with
    ``model.fit(table, weights=table["customers"])``. ``period`` ("Y", "M", ...) becomes
    ``attrs["time_unit"]``.
    """
    unit = units.normalize_unit(period)
    cohorts = counts if isinstance(counts, Mapping) else {None: counts}
    parts = []
    for name, values in cohorts.items():
        tenure, churned, customers = _survivor_rows(values, name)
        keep = customers > 0
        part = pd.DataFrame(
            {"tenure": tenure[keep], "churned": churned[keep], "customers": customers[keep]}
        )
        if name is not None:
            part.insert(0, "cohort", name)
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    if expand:
        table = table.loc[table.index.repeat(table["customers"].astype(np.int64))]
        table = table.drop(columns="customers").reset_index(drop=True)
        table.index.name = "customer_id"
    table["tenure"] = table["tenure"].astype(np.int64)
    table.attrs["time_unit"] = unit
    return table


def observed_survivors(table: pd.DataFrame, periods) -> pd.Series:
    """The customers of ``table`` known to be subscribed after each of ``periods`` (alive at
    ``t``: churned with tenure > t, or active with tenure >= t); NaN for periods beyond the
    shortest active tenure, where some customers' status is not observed."""
    validate_subscription_table(table)
    tenure = table["tenure"].to_numpy(dtype=float)
    churned = table["churned"].to_numpy(dtype=bool)
    weights = table["customers"].to_numpy(float) if "customers" in table else np.ones(len(table))
    censored_from = tenure[~churned].min() if (~churned).any() else np.inf
    out = {}
    for t in periods:
        alive = np.where(churned, tenure > t, tenure >= t)
        out[t] = float(weights[alive].sum()) if t <= censored_from else np.nan
    return pd.Series(out, name="survivors", dtype=float).rename_axis("period")


# --------------------------------------------------------------------------------------------
# fitting by cohort, curves and projections
# --------------------------------------------------------------------------------------------
def fit_by_cohort(model, table: pd.DataFrame, cohort: str = "cohort", weights=None) -> dict:
    """One fit per cohort: ``{cohort: fitted copy of model}``.

    ``model`` is an unfitted estimator (e.g. ``clv.ShiftedBetaGeo()``), copied for each cohort
    with its settings; ``weights`` (optional, one per row of ``table``) are split with it. Each
    cohort's customers are then valued with that cohort's model (e.g.
    ``clv.lifetime_value(fits[c], price, table[table.cohort == c], ...)``).
    """
    check_columns(table, [cohort], "table", hint=f"add the {cohort!r} column or name another")
    weights = None if weights is None else np.asarray(weights, dtype=float)
    if weights is not None and len(weights) != len(table):
        raise InputError(f"weights has {len(weights)} values for {len(table)} rows of the table")
    fits = {}
    for name, rows in table.groupby(cohort, sort=True).indices.items():
        part = table.iloc[rows]
        part.attrs = dict(table.attrs)
        fresh = type(model)(**model.get_params())
        fits[name] = fresh.fit(part, weights=None if weights is None else weights[rows])
    return fits


def equity_by_cohort(
    fits: Mapping,
    spend_model,
    table: pd.DataFrame,
    cohort: str = "cohort",
    interval: float = 0.9,
    draws: int = 200,
    random_seed=None,
    **valuation,
) -> pd.DataFrame:
    """Customer equity of each cohort valued with its own model (``fits`` from
    :func:`fit_by_cohort`) and of all cohorts together, with intervals from the joint draws.

    Each cohort is :func:`clvmodels.customer_equity` of its customers with its model
    (``valuation``: ``horizon``, ``annual_discount_rate``, ``margin``, ``kind``, ... as there).
    The cohorts' models are fitted on disjoint customers, so their parameter draws are
    independent: the total of draw ``d`` is the sum of the cohorts' totals of draw ``d``, and
    the ``"all"`` row's interval comes from these sums (never from adding intervals).

    Returns
    -------
    DataFrame indexed by cohort, then ``"all"``, with ``equity_mean, equity_median,
    equity_lower, equity_upper, n_customers``.
    """
    from clvmodels.valuation import customer_equity
    from clvmodels.valuation.summaries import equity_columns

    check_columns(table, [cohort], "table", hint=f"add the {cohort!r} column or name another")
    names = list(pd.unique(table[cohort]))
    missing = [name for name in names if name not in fits]
    if missing:
        raise InputError(
            f"no fitted model for cohort(s) {missing[:5]}; fits has {list(fits)[:10]}. Fix: fit "
            "with fit_by_cohort on a table with these cohorts."
        )
    seeds = np.random.SeedSequence(random_seed).spawn(len(names))
    frames, totals = [], 0.0
    for name, seed in zip(names, seeds, strict=True):
        part = table[table[cohort] == name]
        part.attrs = dict(table.attrs)
        frame, per_draw = customer_equity(
            fits[name],
            spend_model,
            part,
            interval=interval,
            draws=draws,
            random_seed=int(seed.generate_state(1)[0]),
            return_draws=True,
            **valuation,
        )
        frames.append(frame.rename(index={frame.index[0]: name}))
        totals = totals + np.asarray(per_draw)[:, :1]
    overall = pd.DataFrame(
        {**equity_columns(np.asarray(totals), interval), "n_customers": [len(table)]},
        index=["all"],
    )
    out = pd.concat([*frames, overall])
    out.index.name = cohort
    out.attrs.update(frames[0].attrs)
    return out


def _curve_customer(model, group) -> pd.DataFrame:
    """The one customer a curve is drawn for: for a grouped (hierarchical) model a member of
    ``group``, by default of a new group (the population distribution); else any customer."""
    column = getattr(model, "group", None)
    if not isinstance(column, str) or getattr(model, "groups_", None) is None:
        return pd.DataFrame(index=[0])
    if group is None:
        from clvmodels.estimators.bayes.bayesian import NEW_GROUP

        group = NEW_GROUP
    return pd.DataFrame({column: [group]}, index=[0])


def _curve(model, t, draws, interval, seed, fn, name, group=None) -> pd.DataFrame:
    model.check_fitted()
    periods = np.atleast_1d(np.asarray(t, dtype=float))
    family = model.family_
    customer = _curve_customer(model, group)
    point = np.asarray(fn(family, model.customer_params(customer), periods))
    frame = pd.DataFrame({name: np.broadcast_to(point, (1, len(periods)))[0]}, index=periods)
    frame.index.name = "period"
    if draws:
        table = model.param_draws(int(draws), seed=seed)
        params = model.customer_params(customer, table)
        values = np.broadcast_to(fn(family, params, periods), (len(table), len(periods)))
        lower, upper = np.quantile(values, [(1 - interval) / 2, (1 + interval) / 2], axis=0)
        frame["lower"], frame["upper"] = lower, upper
    frame.attrs.update({"interval": interval, "time_unit": model.time_unit_})
    return frame


def survival_curve(
    model, t, draws: int = 200, interval: float = 0.9, seed=None, group=None
) -> pd.DataFrame:
    """``S(t)``, the share of a new cohort still subscribed after each of ``t`` periods, at the
    point estimate, with the equal-tailed ``interval`` over ``draws`` parameter draws
    (``lower``, ``upper``; none when ``draws=0``). A hierarchical model gives the curve of
    ``group`` (a label of its group column), by default of a new group: the population's."""
    return _curve(
        model, t, draws, interval, seed, lambda f, p, s: f.survival(p, s), "survival", group
    )


def retention_curve(
    model, t, draws: int = 200, interval: float = 0.9, seed=None, group=None
) -> pd.DataFrame:
    """The retention rate ``r_t = S(t) / S(t-1)`` for each period ``t >= 1``, with intervals
    and ``group`` as :func:`survival_curve`."""
    return _curve(
        model, t, draws, interval, seed, lambda f, p, s: f.retention(p, s), "retention", group
    )


def _active_customers(model, table: pd.DataFrame):
    """``(active rows, their customer arrays, their weights)`` of a subscription table (weights
    from a ``customers`` column, else 1)."""
    model.check_fitted()
    family = model.family_
    family.validate_summary(table)
    model.check_unit(table)
    active = table[~table["churned"].astype(bool)]
    weights = active["customers"].to_numpy(float) if "customers" in active else np.ones(len(active))
    return active, family.customer_arrays(active), weights


def expected_survivors(model, table: pd.DataFrame, periods: int) -> pd.Series:
    """The expected number of the customers active in ``table`` still subscribed after each of
    the next ``periods`` periods, at the point estimate: ``sum_i S(n_i + k) / S(n_i)``."""
    active, customer, weights = _active_customers(model, table)
    params = model.customer_params(active)
    family = model.family_
    values = [
        np.asarray(family.purchase_probability(params, *customer, k, k))[0] @ weights
        for k in range(1, int(periods) + 1)
    ]
    index = pd.Index(np.arange(1, int(periods) + 1), name="periods_ahead")
    return pd.Series(values, index=index, name="expected", dtype=float)


def project_survivors(
    model,
    table: pd.DataFrame,
    periods: int,
    draws: int = 500,
    interval: float = 0.9,
    seed=None,
) -> pd.DataFrame:
    """How many of the customers active in ``table`` are still subscribed after each of the next
    ``periods`` periods: ``expected`` at the point estimate (:func:`expected_survivors`) and the
    equal-tailed predictive ``interval`` over ``draws`` simulations (``mean``, ``lower``,
    ``upper``): each takes a parameter draw, each customer's churn probability from its
    posterior given their tenure, then their remaining lifetime. Rows are the whole periods
    ``1..periods`` after the end of observation; a ``customers`` column (a compressed table)
    counts each row that many times."""
    active, customer, weights = _active_customers(model, table)
    frame = expected_survivors(model, table, periods).to_frame()
    grid = np.arange(1, int(periods) + 1, dtype=float)
    rng = np.random.default_rng(seed)
    params = model.customer_params(active, model.param_draws(int(draws), seed=rng.integers(2**31)))
    repeated = np.repeat(np.arange(len(active)), weights.astype(np.int64))
    paths = model.family_.sample_future_purchases(
        params, *(a[repeated] for a in customer), grid, rng
    )
    alive = (paths == grid.astype(np.int64)).sum(axis=1)
    lower, upper = np.quantile(alive, [(1 - interval) / 2, (1 + interval) / 2], axis=0)
    frame["mean"], frame["lower"], frame["upper"] = alive.mean(axis=0), lower, upper
    frame.attrs.update({"interval": interval, "time_unit": model.time_unit_})
    return frame


def compare_retention_models(models: Mapping, table: pd.DataFrame, holdout=None) -> pd.DataFrame:
    """Model choice for fitted retention models (e.g. ``{"sBG": sbg, "BdW": bdw}``) fitted on
    ``table``: ``log_likelihood``, ``n_params``, ``aic``, ``bic`` (over the fitted customers)
    and, with ``holdout`` (the observed survivors after each of the periods following the end
    of observation), the projection error over them: ``holdout_mape`` (mean absolute
    percentage error of :func:`expected_survivors`) and ``holdout_max_error`` (the largest
    absolute error, in customers). Nested models (sBG is BdW with ``c = 1``) are also compared
    by a likelihood-ratio test: ``lr_pvalue`` of each model against the one with the fewest
    parameters (chi-squared with the difference in parameters as degrees of freedom)."""
    from scipy import stats

    rows = {}
    for name, model in models.items():
        model.check_fitted()
        k = len(model.params_)
        n = float(model.n_customers_)
        row = {
            "log_likelihood": model.log_likelihood_,
            "n_params": k,
            "aic": 2 * k - 2 * model.log_likelihood_,
            "bic": k * np.log(n) - 2 * model.log_likelihood_,
        }
        if holdout is not None:
            actual = np.asarray(holdout, dtype=float)
            projected = expected_survivors(model, table, len(actual)).to_numpy()
            row["holdout_mape"] = float(np.mean(np.abs(projected - actual) / actual))
            row["holdout_max_error"] = float(np.max(np.abs(projected - actual)))
        rows[name] = row
    frame = pd.DataFrame(rows).T
    base = frame["n_params"].astype(float).idxmin()
    extra = frame["n_params"].astype(float) - frame.loc[base, "n_params"]
    statistic = 2 * (frame["log_likelihood"] - frame.loc[base, "log_likelihood"]).astype(float)
    frame["lr_pvalue"] = np.where(
        extra > 0, stats.chi2.sf(statistic.clip(lower=0), extra.clip(lower=1)), np.nan
    )
    frame.index.name = "model"
    return frame


# --------------------------------------------------------------------------------------------
# holdout evaluation per customer
# --------------------------------------------------------------------------------------------
def holdout_payments(calibration: pd.DataFrame, later: pd.DataFrame) -> pd.Series:
    """The renewal payments each customer active in ``calibration`` made by the time of
    ``later`` (the same subscriptions observed later, e.g. two :func:`subscription_table` calls
    with different ``observation_end``): ``later tenure - tenure - later churned`` (an active
    customer with tenure ``n`` has paid for period ``n + 1``; later active with tenure ``m`` they
    have paid ``m - n`` more, later churned after ``m`` periods ``m - n - 1``)."""
    validate_subscription_table(calibration, "calibration")
    validate_subscription_table(later, "later")
    active = calibration.index[~calibration["churned"].astype(bool)]
    missing = active.difference(later.index)
    if len(missing):
        raise InputError(
            f"{len(missing)} customers active in the calibration table are not in the later "
            f"one, e.g. {list(missing[:5])}. Fix: build both tables from the same subscriptions."
        )
    before = calibration.loc[active, "tenure"].to_numpy(dtype=float)
    after = later.loc[active, "tenure"].to_numpy(dtype=float)
    gone = later.loc[active, "churned"].astype(bool).to_numpy()
    paid = after - before - gone
    bad = paid < 0
    if bad.any():
        raise InputError(
            f"{int(bad.sum())} customers have a shorter tenure in the later table than in the "
            "calibration one, e.g. "
            f"{list(active[bad][:5])}. Fix: pass the tables in order (calibration, later)."
        )
    return pd.Series(paid, index=active, name="payments_holdout")


def evaluate_payments(
    model,
    table: pd.DataFrame,
    actual: pd.Series,
    periods: float,
    draws: int = 200,
    interval: float = 0.9,
    seed=None,
) -> pd.Series:
    """Holdout accuracy of the renewal payments of the customers in ``actual`` (indexed like
    ``table``, e.g. :func:`holdout_payments`) over the next ``periods``: totals expected and
    actual, their relative error, the mean absolute error per customer, and the share of
    customers whose actual count lies in the equal-tailed predictive ``interval``
    (:func:`clvmodels.predict_purchases` with ``kind="predictive"``)."""
    from clvmodels.valuation import predict_purchases

    actual = pd.Series(actual, dtype=float)
    missing = actual.index.difference(table.index)
    if len(missing):
        raise InputError(
            f"{len(missing)} customers of actual are not in the table, e.g. {list(missing[:5])}"
        )
    rows = table.loc[actual.index]
    rows.attrs = dict(table.attrs)
    expected = model.expected_purchases(rows, periods)
    predicted = predict_purchases(model, rows, periods, interval, "predictive", draws, seed)
    hit = (predicted["lower"] <= actual) & (actual <= predicted["upper"])
    return pd.Series(
        {
            "customers": float(len(actual)),
            "actual_payments": float(actual.sum()),
            "expected_payments": float(expected.sum()),
            "total_error": float(expected.sum() / actual.sum() - 1) if actual.sum() else np.nan,
            "mae": float(np.mean(np.abs(expected - actual))),
            "interval_coverage": float(hit.mean()),
            "interval": interval,
        },
        name=type(model).__name__,
    )
