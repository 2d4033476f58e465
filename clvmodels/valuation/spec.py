"""What a valuation computes: the period grid, discounting, margin, costs, interval and kind.

The settings of :func:`clvmodels.lifetime_value` and its siblings are checked here once and
held in a frozen :class:`ValuationSpec`; the engine (:mod:`clvmodels.valuation.engine`) only
reads them.

Cash flows are discounted at the end of their period: the horizon ``H`` is cut into periods of
length ``p`` with ends ``t_k = k p`` (``k = 1..K``, ``K = floor(H / p)``) plus ``t_{K+1} = H``
when ``H`` is not a whole number of periods, and the cash flow of period ``k`` is multiplied by
``(1 + i_p) ** -(t_k / p)`` with ``i_p`` the per-period rate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from clvmodels import units
from clvmodels.errors import InputError

__all__ = [
    "KINDS",
    "DEFAULT_ANNUAL_DISCOUNT_RATE",
    "PeriodGrid",
    "ValuationSpec",
    "with_amount",
    "period_grid",
    "discount_factors",
    "quantile_levels",
    "check_kind",
    "check_model",
    "costs_matrix",
]

KINDS = ("predictive", "expected", "point")
DEFAULT_ANNUAL_DISCOUNT_RATE = 0.10


def with_amount(duration):
    """Accept a bare unit ("M", "week") as one of that unit ("1M"), like pandas frequencies."""
    if isinstance(duration, str) and not re.search(r"[0-9]", duration):
        units.normalize_unit(duration)  # raises a clear TimeUnitError for unknown units
        return "1" + duration.strip()
    return duration


def period_grid(horizon, period, unit: str) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Period ends ``t_k`` (model units) of a horizon cut into periods.

    Returns ``(ends, fractions, period_length, horizon_length)`` with lengths in ``unit``.
    ``ends = [p, 2p, ..., Kp]`` plus ``H`` when ``H`` is not a whole number of periods (within a
    relative tolerance of 1e-9, so ``"52.14W"`` in ``"4.345W"`` periods is exactly 12 periods).
    A zero horizon gives empty arrays.

    >>> period_grid("10W", "4W", "W")[0]
    array([ 4.,  8., 10.])
    """
    H = units.to_unit(with_amount(horizon), unit)
    p = units.to_unit(with_amount(period), unit)
    if not p > 0:
        raise InputError(f"period must be a positive duration such as '1M' or '4W', got {period!r}")
    if H == 0:
        return np.empty(0), np.empty(0), p, H
    ratio = H / p
    n_full = int(math.floor(ratio + 1e-9))
    ends = p * np.arange(1, n_full + 1, dtype=float)
    fractions = np.ones(n_full)
    if ratio - n_full > 1e-9:
        ends = np.append(ends, H)
        fractions = np.append(fractions, ratio - n_full)
    elif n_full:
        ends[-1] = H  # exact end despite rounding
    return ends, fractions, p, H


def discount_factors(ends: np.ndarray, period: float, rate: float) -> np.ndarray:
    """End-of-period discount factors ``(1 + rate) ** -(t_k / period)``.

    >>> discount_factors(np.array([1.0, 2.0]), 1.0, 0.1)
    array([0.90909091, 0.82644628])
    """
    if not rate > -1:
        raise InputError(f"the per-period discount rate must be greater than -1, got {rate!r}")
    return np.exp(-np.log1p(rate) * (np.asarray(ends, dtype=float) / period))


def quantile_levels(interval: float) -> tuple[float, float]:
    """The quantile levels ``((1 - interval) / 2, (1 + interval) / 2)`` of a central interval."""
    if not 0 < float(interval) < 1:
        raise InputError(f"interval must be strictly between 0 and 1, got {interval!r}")
    return (1 - float(interval)) / 2, (1 + float(interval)) / 2


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InputError(f"kind must be one of {KINDS}, got {kind!r}")
    return kind


def check_model(model, role: str) -> None:
    """Raise unless ``model`` is a fitted model of the kind ``role`` asks for
    (``"purchase_model"`` or ``"spend_model"``)."""
    expected = "purchase" if role == "purchase_model" else "spend"
    kind = getattr(model, "kind", None)
    if kind != expected:
        example = "clv.BetaGeo()" if expected == "purchase" else "clv.GammaGamma()"
        raise InputError(
            f"{role} must be a fitted {expected} model (e.g. {example}), got "
            f"{type(model).__name__} of kind {kind!r}"
        )
    model.check_fitted()


@dataclass(frozen=True)
class PeriodGrid:
    """Period ends in model units and their discount factors.

    ``ends[k]`` is ``t_{k+1}``; ``fractions[k]`` the length of period ``k+1`` in periods (1 for
    full periods, < 1 for a last partial one); ``discount[k] = (1 + rate) ** -(ends[k] / period)``.
    """

    ends: np.ndarray
    fractions: np.ndarray
    discount: np.ndarray
    period: float
    horizon: float
    rate: float
    unit: str

    @property
    def n_periods(self) -> int:
        return len(self.ends)


@dataclass(frozen=True)
class ValuationSpec:
    """The settings of a valuation, checked on construction.

    ``horizon`` and ``period`` are calendar durations ("52W", "M") or numbers in the model's
    unit; at most one of ``annual_discount_rate`` (compound, per year; 10% when neither is
    given) and ``period_discount_rate`` (per period); ``margin`` the share of spend kept;
    ``interval`` the central probability of the reported intervals; ``kind`` one of
    :data:`KINDS`; ``costs`` optional per-period costs (see :func:`costs_matrix`).
    """

    horizon: Any = "52W"
    period: Any = "M"
    annual_discount_rate: float | None = None
    period_discount_rate: float | None = None
    margin: float = 1.0
    interval: float = 0.9
    kind: str = "predictive"
    costs: Any = None

    def __post_init__(self):
        check_kind(self.kind)
        margin = self.margin
        if isinstance(margin, bool) or not isinstance(margin, Real) or not np.isfinite(margin):
            raise InputError(
                f"margin must be a finite number (share of spend kept), got {margin!r}"
            )
        quantile_levels(self.interval)
        if self.period_discount_rate is not None and self.annual_discount_rate is not None:
            raise InputError(
                "give either annual_discount_rate or period_discount_rate, not both "
                "(period_discount_rate is the rate per period, as in lifetimes' discount_rate)"
            )

    @property
    def quantiles(self) -> tuple[float, float]:
        """Lower and upper quantile levels of the interval."""
        return quantile_levels(self.interval)

    def grid(self, unit: str) -> PeriodGrid:
        """The period ends and discount factors in the model's ``unit``."""
        ends, fractions, p, H = period_grid(self.horizon, self.period, unit)
        if self.period_discount_rate is not None:
            rate = float(self.period_discount_rate)
        else:
            annual = (
                DEFAULT_ANNUAL_DISCOUNT_RATE
                if self.annual_discount_rate is None
                else self.annual_discount_rate
            )
            rate = units.per_period_rate(float(annual), p, unit)  # p is in model units
        return PeriodGrid(ends, fractions, discount_factors(ends, p, rate), p, H, rate, unit)


def costs_matrix(costs, summary: pd.DataFrame, grid: PeriodGrid) -> np.ndarray | None:
    """Costs as an array broadcastable to (n_customers, n_periods), or None.

    * a number: the same cost for every customer in every period;
    * a pandas Series indexed by customer_id: a cost per customer, in every period;
    * a 1-d list/array of length n_periods: a cost per period, the same for every customer;
    * a DataFrame indexed by customer_id with n_periods columns: per customer and period.

    A number or a per-customer Series is prorated in a last partial period (multiplied by its
    length in periods); per-period values are used as given.
    """
    if costs is None:
        return None
    K = grid.n_periods
    if isinstance(costs, pd.DataFrame):
        _require_rows(costs, summary, "costs has no row for {n} customers, e.g. {ids}; give one "
                      "row per customer_id of the summary")  # fmt: skip
        if costs.shape[1] != K:
            raise InputError(
                f"costs DataFrame has {costs.shape[1]} columns but the horizon has {K} periods"
            )
        out = costs.loc[summary.index].to_numpy(dtype=float)
    elif isinstance(costs, pd.Series):
        _require_rows(costs, summary, "costs Series has no value for {n} customers, e.g. {ids}; "
                      "index it by the customer_id of the summary")  # fmt: skip
        out = costs.loc[summary.index].to_numpy(dtype=float)[:, None] * grid.fractions[None, :]
    elif isinstance(costs, Real) and not isinstance(costs, bool):
        out = float(costs) * grid.fractions[None, :]
    else:
        arr = np.asarray(costs, dtype=float)
        if arr.ndim != 1 or len(arr) != K:
            raise InputError(
                f"costs must be a number, a Series indexed by customer_id, a DataFrame "
                f"(customers x {K} periods) or a 1-d sequence of {K} per-period costs; got "
                f"shape {arr.shape}"
            )
        out = arr[None, :]
    if not np.all(np.isfinite(out)):
        raise InputError("costs contain missing or non-finite values")
    return out


def _require_rows(costs, summary: pd.DataFrame, message: str) -> None:
    missing = summary.index.difference(costs.index)
    if len(missing):
        raise InputError(message.format(n=len(missing), ids=list(missing[:5])))
