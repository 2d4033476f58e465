"""What a valuation computes: the period grid, discounting, margin, costs, interval and kind.

The settings of :func:`clvmodels.lifetime_value` and its siblings are checked here once and
held in a frozen :class:`ValuationSpec`; the engine (:mod:`clvmodels.valuation.engine`) only
reads them.

Cash flows are discounted at the end of their period: the horizon ``H`` is cut into periods of
length ``p`` with ends ``t_k = k p`` (``k = 1..K``, ``K = floor(H / p)``) plus ``t_{K+1} = H``
when ``H`` is not a whole number of periods, and the cash flow of period ``k`` is multiplied by
``(1 + i_p) ** -(t_k / p)`` with ``i_p`` the per-period rate.

Valid settings (anything else is refused with an :class:`~clvmodels.errors.InputError` that
states the valid range; a value out of range is never used silently):

* ``margin`` in [0, 1]: the share of spend kept as profit, 0.3 for 30% (0 values the costs
  alone);
* ``annual_discount_rate`` and ``period_discount_rate`` in [0, 1): 0.1 for 10% (a rate of 10
  would be 1000% a year);
* ``interval`` strictly between 0 and 1: 0.9 for a 90% interval;
* ``horizon`` and ``period``: finite, non-negative durations (the period positive).

The models are checked too (:func:`check_model`): fitted, of the right kind, with finite,
positive parameters, and for spend models a population mean spend that exists (Gamma-Gamma
``q > 1``; :func:`check_spend_mean`).
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
    "check_spend_mean",
    "check_spend_draws",
    "check_margin",
    "check_discount_rate",
    "check_interval",
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
    units.period_count(with_amount(horizon), with_amount(period), unit)  # bounded, or raises
    H = units.to_unit(with_amount(horizon), unit)
    p = units.to_unit(with_amount(period), unit)
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


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def check_margin(margin, name: str = "margin") -> float:
    """``margin`` as a float in [0, 1] (the share of spend kept); InputError otherwise."""
    if not _is_number(margin) or not np.isfinite(margin) or not 0 <= margin <= 1:
        raise InputError(
            f"{name} must be between 0 and 1 (margin is a share of spend, 0.3 for 30%), "
            f"got {margin!r}"
        )
    return float(margin)


def check_discount_rate(rate, name: str = "annual_discount_rate", per: str = "year") -> float:
    """A discount rate as a float in [0, 1) per ``per`` (0.1 for 10%); InputError otherwise."""
    if not _is_number(rate) or not np.isfinite(rate) or not 0 <= rate < 1:
        hint = ""
        if _is_number(rate) and np.isfinite(rate) and rate >= 1:
            hint = f" ({rate:g} would mean {rate:.0%} a {per})"
        raise InputError(
            f"{name} must be at least 0 and below 1 (a rate per {per}, 0.1 for 10%), "
            f"got {rate!r}{hint}"
        )
    return float(rate)


def check_interval(interval, name: str = "interval") -> float:
    """``interval`` as a float strictly between 0 and 1 (0.9 for 90%); InputError otherwise."""
    if not _is_number(interval) or not 0 < interval < 1:  # NaN fails the comparison
        raise InputError(
            f"{name} must be strictly between 0 and 1 (the probability of the interval: 0.9 for "
            f"90%), got {interval!r}"
        )
    return float(interval)


def quantile_levels(interval: float) -> tuple[float, float]:
    """The quantile levels ``((1 - interval) / 2, (1 + interval) / 2)`` of a central interval."""
    interval = check_interval(interval)
    return (1 - interval) / 2, (1 + interval) / 2


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
    params = getattr(model, "params_", None)
    for name in getattr(model, "param_names", ()):
        value = params.get(name) if isinstance(params, pd.Series) else None
        if value is not None and not (np.isfinite(value) and value > 0):
            raise InputError(
                f"{role} {type(model).__name__} has parameter {name} = {float(value)!r}; its "
                "parameters "
                "must be positive, finite numbers. Fix: refit the model"
            )
    if expected == "spend":
        check_spend_mean(model, model.point_draws(), "fitted")


#: Spend families whose population mean spend per transaction exists only when ``q > 1``
#: (Gamma-Gamma: ``p v / (q - 1)``), by the name of that parameter.
_MEAN_EXISTS_ABOVE_ONE = "q"


def _spend_mean_columns(model, draws: pd.DataFrame) -> list:
    """The columns of a draws table holding the Gamma-Gamma ``q`` (``"q"``, or ``("q", group)``
    for grouped models)."""
    if _MEAN_EXISTS_ABOVE_ONE not in getattr(model, "param_names", ()):
        return []
    return [
        c
        for c in draws.columns
        if c == _MEAN_EXISTS_ABOVE_ONE or (isinstance(c, tuple) and c[0] == _MEAN_EXISTS_ABOVE_ONE)
    ]


def _heavy_tail_message(what: str) -> str:
    return (
        f"{what}: with q <= 1 the Gamma-Gamma population mean spend per transaction p v / (q - 1) "
        "does not exist (spend is too heavy-tailed), so customers without repeat purchases have "
        "infinite expected spend and their CLV is not a number. Fix: fit the spend model on more "
        "data or with outlying spend excluded, or use a hierarchical or fixed-parameter spend "
        "model"
    )


def check_spend_mean(model, draws: pd.DataFrame, which: str = "fitted") -> None:
    """Raise InputError when a spend model's population mean spend does not exist at the
    ``which`` parameters (``draws``: a draws table, e.g. ``point_draws()``): Gamma-Gamma
    with ``q <= 1`` (in any group, for grouped models)."""
    columns = _spend_mean_columns(model, draws)
    if not columns:
        return
    q = draws.loc[:, columns].to_numpy(dtype=float)
    bad = ~(q > 1)  # NaN too
    if not bad.any():
        return
    where = ""
    if isinstance(columns[0], tuple):
        groups = [str(c[1]) for c, b in zip(columns, bad.any(axis=0), strict=True) if b]
        where = f" in group(s) {', '.join(groups[:5])}"
    raise InputError(
        _heavy_tail_message(
            f"the {which} spend model {type(model).__name__} has q = {np.nanmin(q):.4g}{where}"
        )
    )


def check_spend_draws(model, draws: pd.DataFrame | None) -> None:
    """Raise InputError when any parameter draw of a spend model has no population mean spend
    (Gamma-Gamma ``q <= 1``): such a draw makes the expected value of a customer without repeat
    purchases infinite, and every interval built on the draws meaningless."""
    if draws is None:
        return
    columns = _spend_mean_columns(model, draws)
    if not columns:
        return
    q = draws.loc[:, columns].to_numpy(dtype=float)
    bad = ~(q > 1).all(axis=1)
    if bad.any():
        raise InputError(
            _heavy_tail_message(
                f"{int(bad.sum())} of {len(draws)} parameter draws of the spend model "
                f"{type(model).__name__} have q <= 1 (smallest {np.nanmin(q):.4g}; the spend "
                "parameters are too uncertain for the mean spend to be sure to exist)"
            )
            + ", or value at the point estimate (kind='point')"
        )


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
        check_margin(self.margin)
        check_interval(self.interval)
        if self.period_discount_rate is not None and self.annual_discount_rate is not None:
            raise InputError(
                "give either annual_discount_rate or period_discount_rate, not both "
                "(period_discount_rate is the rate per period, as in lifetimes' discount_rate)"
            )
        if self.annual_discount_rate is not None:
            check_discount_rate(self.annual_discount_rate, "annual_discount_rate", "year")
        if self.period_discount_rate is not None:
            check_discount_rate(self.period_discount_rate, "period_discount_rate", "period")
        for name in ("horizon", "period"):
            value = getattr(self, name)
            if _is_number(value) and not (np.isfinite(value) and value >= 0):
                raise InputError(
                    f"{name} must be a finite, non-negative duration ('52W', '12M' or a number "
                    f"in the model's unit), got {value!r}"
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
