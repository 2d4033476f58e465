"""The public valuations: per-customer CLV, customer equity and expected cash flows.

Each is one call of the engine (:func:`clvmodels.valuation.engine.value_customers`) with its
settings grouped into a :class:`~clvmodels.valuation.spec.ValuationSpec`, a
:class:`~clvmodels.valuation.draws.DrawSpec`, a :class:`~clvmodels.valuation.engine.RunSpec`
and an :class:`~clvmodels.valuation.engine.OutputSpec`, then a reshaping of its result.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clvmodels.errors import InputError
from clvmodels.valuation.draws import DrawSpec
from clvmodels.valuation.engine import OutputSpec, RunSpec, ValueResult, value_customers
from clvmodels.valuation.spec import ValuationSpec, quantile_levels

__all__ = ["lifetime_value", "customer_equity", "expected_cash_flows", "group_codes"]


def lifetime_value(
    purchase_model,
    spend_model,
    summary: pd.DataFrame,
    horizon="52W",
    annual_discount_rate: float | None = None,
    margin: float = 1.0,
    interval: float = 0.9,
    kind: str = "predictive",
    draws=200,
    period="M",
    costs=None,
    random_seed=None,
    *,
    period_discount_rate: float | None = None,
    chunk_size: int | None = None,
    return_draws: bool | str = False,
    n_jobs: int = 1,
):
    """Discounted-cash-flow customer lifetime value with an uncertainty interval.

    See :mod:`clvmodels.valuation` for the cash-flow formula and the three kinds.

    Parameters
    ----------
    purchase_model, spend_model : fitted purchase model (BetaGeo, ParetoNBD, ...) and spend
        model (GammaGamma, ...).
    summary : RFM summary indexed by customer_id with frequency, recency, T, monetary_value
        (plus the group column of grouped models); its ``attrs["time_unit"]`` must equal the
        purchase model's ``time_unit_``.
    horizon : calendar duration ("52W", "12M", "365D", "3Y") or a number in the model's unit.
        Zero gives CLV 0.
    annual_discount_rate : compound annual rate (default 0.10 when neither rate is given),
        turned into the per-period rate ``(1 + r) ** (period_days / 365.25) - 1``.
    period_discount_rate : the rate per period, given directly (keyword only; exclusive with
        ``annual_discount_rate``). With ``period="4.345W"``, ``horizon=12 * 4.345`` weeks and
        ``period_discount_rate=0.01`` the point value equals lifetimes'
        ``customer_lifetime_value(..., time=12, discount_rate=0.01, freq="W")``.
    margin : share of spend that is profit (0 gives a value of 0 minus costs).
    interval : central probability of the equal-tailed interval.
    kind : "predictive", "expected" or "point".
    draws : number of parameter draws (int) or explicit draw tables (see
        :mod:`clvmodels.valuation.draws`).
    period : period length of the cash flows ("M" = one month of 365.25/12 days, "1W", ...).
    costs : optional costs per period (number, Series by customer_id, 1-d per-period sequence or
        DataFrame customers x periods); subtracted from the margin in every period of the
        horizon, discounted alike (a fixed servicing cost: it does not depend on whether the
        customer is still alive).
    random_seed : seed of the predictive simulation and of the parameter draws.
    chunk_size : customers per chunk (default: bounded so one chunk holds ~4M values, or ~1M
        draw x customer paths for predictive values without per-period draws).
    n_jobs : threads valuing chunks in parallel (numpy releases the GIL; results do not depend
        on it; memory grows to about ``2 * n_jobs`` chunks).
    return_draws : False; True to also return the per-customer value draws as an
        ``xarray.DataArray`` with dims (draw, customer_id); "period" for dims
        (draw, customer_id, period) of discounted per-period cash flows. Memory: 8 bytes x
        draws x customers (x periods) -- 1.6 GB for 1M customers and 200 draws.

    Returns
    -------
    DataFrame indexed by customer_id with ``clv_mean, clv_median, clv_lower, clv_upper,
    expected_purchases, expected_spend, probability_alive`` (the last three at the point
    estimate; expected_purchases over the whole horizon); ``(frame, DataArray)`` when
    ``return_draws``.
    """
    spec = ValuationSpec(
        horizon, period, annual_discount_rate, period_discount_rate, margin, interval, kind, costs
    )
    draw_spec, run_spec = DrawSpec(draws, random_seed), RunSpec(chunk_size, n_jobs)
    output = OutputSpec(keep_draws=return_draws)
    result = value_customers(
        purchase_model, spend_model, summary, spec, draw_spec, run_spec, output
    )
    if return_draws:
        return result.frame, draws_array(result, summary.index, "clv")
    return result.frame


def draws_array(result: ValueResult, index: pd.Index, name: str):
    """The kept value draws as an ``xarray.DataArray`` (draw, customer_id[, period])."""
    import xarray as xr

    data = result.draws
    dims = ["draw", "customer_id"] + (["period"] if data.ndim == 3 else [])
    coords = {"draw": np.arange(data.shape[0]), "customer_id": index.to_numpy()}
    if data.ndim == 3:
        coords["period"] = np.arange(1, data.shape[2] + 1)
        coords["period_end"] = ("period", result.grid.ends)
    return xr.DataArray(data, dims=dims, coords=coords, name=name)


def group_codes(by, summary: pd.DataFrame) -> tuple[np.ndarray | None, pd.Index]:
    """``(code per customer or None, group labels)`` of the ``by`` argument of
    :func:`customer_equity`: a summary column name or one label per customer."""
    if by is None:
        return None, pd.Index(["all"], name="group")
    if isinstance(by, str):
        if by not in summary.columns:
            raise InputError(
                f"by={by!r} is not a column of the summary; columns: {list(summary.columns)}"
            )
        labels = summary[by]
        name = by
    else:
        labels = pd.Series(by)
        if len(labels) != len(summary):
            raise InputError(
                f"by must be a column name or labels for each of the {len(summary)} customers"
            )
        if isinstance(by, pd.Series):
            missing = summary.index.difference(labels.index)
            if len(missing):
                raise InputError(
                    f"by has no label for {len(missing)} customers, e.g. {list(missing[:5])}"
                )
            labels = labels.loc[summary.index]
        name = getattr(by, "name", None) or "group"
    if labels.isna().any():
        raise InputError(f"{int(labels.isna().sum())} customers have no group label in by")
    codes, uniques = pd.factorize(labels, sort=True)
    return codes.astype(np.intp), pd.Index(uniques, name=name)


def customer_equity(
    purchase_model,
    spend_model,
    summary: pd.DataFrame,
    by=None,
    horizon="52W",
    annual_discount_rate: float | None = None,
    margin: float = 1.0,
    interval: float = 0.9,
    kind: str = "predictive",
    draws=200,
    period="M",
    costs=None,
    random_seed=None,
    *,
    period_discount_rate: float | None = None,
    chunk_size: int | None = None,
    return_draws: bool = False,
    n_jobs: int = 1,
):
    """Customer equity: the sum of CLV over customers, with an interval from the joint draws.

    For each draw ``d`` the customer values of that draw (same parameters ``theta_d`` for every
    customer) are summed over customers (per group with ``by``); the interval is the
    equal-tailed quantile interval of these per-draw totals. This keeps the correlation that
    shared parameters induce between customers -- an interval of a total is not the sum of the
    customers' intervals. Arguments as in :func:`lifetime_value`; ``by`` is a summary column
    name or labels per customer (e.g. :func:`clvmodels.segments.value_tiers` output).

    Returns
    -------
    DataFrame indexed by group ("all" without ``by``) with ``equity_mean, equity_median,
    equity_lower, equity_upper, n_customers``; with ``return_draws`` also an
    ``xarray.DataArray`` of the totals with dims (draw, group).
    """
    codes, groups = group_codes(by, summary)
    spec = ValuationSpec(
        horizon, period, annual_discount_rate, period_discount_rate, margin, interval, kind, costs
    )
    draw_spec, run_spec = DrawSpec(draws, random_seed), RunSpec(chunk_size, n_jobs)
    output = OutputSpec(group_codes=codes, n_groups=len(groups))
    result = value_customers(
        purchase_model, spend_model, summary, spec, draw_spec, run_spec, output
    )
    totals = result.totals
    n_per = np.bincount(codes, minlength=len(groups)) if codes is not None else [len(summary)]
    frame = pd.DataFrame(
        {
            **equity_columns(totals, interval),
            "n_customers": np.asarray(n_per, dtype=np.int64),
        },
        index=groups,
    )
    frame.attrs.update(result.frame.attrs)
    if return_draws:
        import xarray as xr

        arr = xr.DataArray(
            totals,
            dims=["draw", "group"],
            coords={"draw": np.arange(totals.shape[0]), "group": groups.to_numpy()},
            name="customer_equity",
        )
        return frame, arr
    return frame


def equity_columns(totals: np.ndarray, interval: float) -> dict[str, np.ndarray]:
    """Mean, median and central ``interval`` of per-draw totals (draws on the first axis):
    ``equity_mean, equity_median, equity_lower, equity_upper``."""
    lo_q, hi_q = quantile_levels(interval)
    median, lower, upper = np.quantile(totals, [0.5, lo_q, hi_q], axis=0)
    return {
        "equity_mean": totals.mean(axis=0),
        "equity_median": median,
        "equity_lower": lower,
        "equity_upper": upper,
    }


def expected_cash_flows(
    purchase_model,
    spend_model,
    summary: pd.DataFrame,
    horizon="52W",
    annual_discount_rate: float | None = None,
    margin: float = 1.0,
    period="M",
    costs=None,
    *,
    period_discount_rate: float | None = None,
    discounted: bool = True,
) -> pd.DataFrame:
    """Expected cash flow of each customer in each period at the point estimate.

    ``margin * E[Z_i] * E[X_ik] - c_ik``, multiplied by the discount factor of its period when
    ``discounted``; the row sums of the discounted table are ``lifetime_value(kind="point")``.
    Columns are the period numbers 1..K (``attrs["period_end"]`` holds their ends in model
    units). Used for payback periods (:func:`clvmodels.segments.clv_to_cac`).
    """
    spec = ValuationSpec(
        horizon=horizon,
        period=period,
        annual_discount_rate=annual_discount_rate,
        period_discount_rate=period_discount_rate,
        margin=margin,
        kind="point",
        costs=costs,
    )
    result = value_customers(
        purchase_model,
        spend_model,
        summary,
        spec,
        DrawSpec(1, 0),
        RunSpec(),
        OutputSpec(keep_draws="period"),
    )
    flows = result.draws[0]
    if not discounted and result.grid.n_periods:
        flows = flows / result.grid.discount[None, :]
    frame = pd.DataFrame(
        flows,
        index=summary.index,
        columns=pd.Index(np.arange(1, result.grid.n_periods + 1), name="period"),
    )
    frame.attrs.update(result.frame.attrs)
    frame.attrs["period_end"] = result.grid.ends.tolist()
    frame.attrs["discounted"] = bool(discounted)
    return frame
