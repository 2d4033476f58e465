"""Number of purchases in the next ``t``: mean, median and an interval per customer.

The same machinery as :func:`clvmodels.lifetime_value` (draws, seeds, chunks, threads), for
the count alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clvmodels import units
from clvmodels.errors import InputError
from clvmodels.valuation.draws import DrawSpec, draw_table
from clvmodels.valuation.engine import CHUNK_ELEMENTS, RunSpec, as_2d, chunk_length, map_chunks
from clvmodels.valuation.spec import check_kind, check_model, quantile_levels, with_amount

__all__ = ["predict_purchases"]

COUNT_COLUMNS = ("mean", "median", "lower", "upper")


@dataclass(frozen=True)
class CountPlan:
    """What every chunk of :func:`predict_purchases` reads."""

    model: object
    draws: pd.DataFrame
    horizon: float
    kind: str
    quantiles: tuple[float, float]


def count_draws(plan: CountPlan, block: pd.DataFrame, seed) -> np.ndarray:
    """(n_draws, n_customers) draws of the count (or its expectation) in the next horizon."""
    D, c = len(plan.draws), len(block)
    if plan.horizon == 0:
        return np.zeros((D, c))
    family = plan.model.family_
    params = plan.model.customer_params(block, plan.draws)
    customer = family.customer_arrays(block)
    if plan.kind == "predictive":
        cumulative = family.sample_future_purchases(
            params, *customer, np.array([plan.horizon]), np.random.default_rng(seed)
        )
        return np.broadcast_to(np.asarray(cumulative)[..., 0].astype(float), (D, c))
    expected = family.expected_purchases(params, *customer, plan.horizon)
    return np.broadcast_to(as_2d(expected, 1, c), (D, c))


def count_summary(plan: CountPlan, values: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, median and interval of each customer's count draws (attainable counts by the
    ``inverted_cdf`` rule for predictive draws)."""
    if plan.kind == "point":
        return {name: values[0] for name in COUNT_COLUMNS}
    method = "inverted_cdf" if plan.kind == "predictive" else "linear"
    median, lower, upper = np.quantile(values, [0.5, *plan.quantiles], axis=0, method=method)
    return {"mean": values.mean(axis=0), "median": median, "lower": lower, "upper": upper}


def predict_purchases(
    purchase_model,
    summary: pd.DataFrame,
    t="39W",
    interval: float = 0.9,
    kind: str = "predictive",
    draws=200,
    random_seed=None,
    *,
    chunk_size: int | None = None,
    return_draws: bool = False,
    n_jobs: int = 1,
):
    """Number of purchases in the next ``t``: mean, median and an interval per customer.

    The same machinery as :func:`clvmodels.lifetime_value`, for the count alone.
    ``kind="expected"``: the distribution over parameter draws of ``E[X(T, T+t) | history,
    theta_d]``; ``kind="predictive"``: draws of the count itself (parameter uncertainty, latent
    state and Poisson noise), interval bounds by the ``inverted_cdf`` rule so they are
    attainable counts; ``kind="point"``: the expectation at the point estimate. ``mean`` is the
    mean of the draws (Monte Carlo for "predictive").

    ``draws``: an int (``param_draws(n, seed=...)``) or a DataFrame of parameter draws used as
    is. ``return_draws=True`` also returns the draws as an ``xarray.DataArray`` with dims
    (draw, customer_id) -- what :func:`clvmodels.valuation.interval_coverage` takes.

    Returns
    -------
    DataFrame indexed by customer_id with ``mean, median, lower, upper``.
    """
    check_model(purchase_model, "purchase_model")
    check_kind(kind)
    run = RunSpec(chunk_size, n_jobs)
    purchase_model.family_.validate_summary(summary)
    purchase_model.check_unit(summary)
    quantiles = quantile_levels(interval)
    horizon = units.to_unit(with_amount(t), purchase_model.time_unit_)
    draw_spec = DrawSpec(draws, random_seed)
    if kind == "point":
        table = purchase_model.point_draws()
    else:
        if isinstance(draws, tuple | list | dict):
            raise InputError("predict_purchases takes draws as an int or one DataFrame")
        table = draw_table(purchase_model, draws, draw_spec.parameter_seeds()[0], "purchase model")
    plan = CountPlan(purchase_model, table, horizon, kind, quantiles)
    D, n = len(table), len(summary)
    chunk = chunk_length(run.chunk_size, D, 1, CHUNK_ELEMENTS)
    n_chunks = -(-n // chunk)
    seeds = draw_spec.chunk_seeds(n_chunks)
    out = {name: np.empty(n) for name in COUNT_COLUMNS}
    kept = np.empty((D, n)) if return_draws else None

    def rows(b: int) -> slice:
        return slice(b * chunk, min(n, (b + 1) * chunk))

    def run_chunk(task):
        values = count_draws(plan, *task)
        return values if return_draws else None, count_summary(plan, values)

    tasks = ((summary.iloc[rows(b)], seeds[b]) for b in range(n_chunks))
    for b, (values, columns) in enumerate(map_chunks(run_chunk, tasks, run.n_jobs)):
        for name, column in columns.items():
            out[name][rows(b)] = column
        if kept is not None:
            kept[:, rows(b)] = values
    frame = pd.DataFrame(out, index=summary.index)
    if not np.all(np.isfinite(frame.to_numpy())):
        raise RuntimeError("predict_purchases produced non-finite values; please report")
    frame.attrs.update({"kind": kind, "interval": float(interval), "t": horizon, "n_draws": D})
    frame.attrs["time_unit"] = purchase_model.time_unit_
    if return_draws:
        import xarray as xr

        arr = xr.DataArray(
            kept,
            dims=["draw", "customer_id"],
            coords={"draw": np.arange(D), "customer_id": summary.index.to_numpy()},
            name="purchases",
        )
        return frame, arr
    return frame
