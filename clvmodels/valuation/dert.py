"""Discounted expected residual transactions (continuous discounting, infinite horizon).

``DERT = int_0^inf e^{-delta t} dE[X(T, T+t)]`` (Fader, Hardie & Lee 2005, "RFM and CLV",
Journal of Marketing Research 42(4), eq. 2) is a method of every purchase family
(:meth:`clvmodels.families.base.PurchaseFamily.discounted_expected_residual_transactions`): the
base class integrates the family's ``expected_purchases`` by Gauss-Laguerre quadrature,
families with a closed form (Pareto/NBD) override it. This module converts the discount rate,
picks the method and checks the result.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from clvmodels import units
from clvmodels.errors import InputError, NumericalError
from clvmodels.families.base import PurchaseFamily
from clvmodels.validation import SUMMARY_COLUMNS
from clvmodels.valuation.engine import as_2d
from clvmodels.valuation.spec import DEFAULT_ANNUAL_DISCOUNT_RATE, check_discount_rate, check_model

__all__ = [
    "discounted_expected_residual_transactions",
    "has_closed_form_dert",
    "continuous_discount_rate",
]

METHODS = ("auto", "closed_form", "quadrature")


def has_closed_form_dert(family: PurchaseFamily) -> bool:
    """True when the family overrides the base class's quadrature with a closed form."""
    return (
        type(family).discounted_expected_residual_transactions
        is not PurchaseFamily.discounted_expected_residual_transactions
    )


def continuous_discount_rate(time_unit: str, annual_discount_rate=None, rate=None) -> float:
    """The continuous discount rate per model time unit: ``rate`` if given, else
    ``log(1 + annual_discount_rate) * unit_days / 365.25`` (annual default 0.10)."""
    if rate is not None and annual_discount_rate is not None:
        raise InputError("give either annual_discount_rate or continuous_rate, not both")
    if rate is not None:
        delta = float(rate)
        if not delta > 0:
            raise InputError("continuous_rate must be positive (infinite horizon)")
        return delta
    annual = DEFAULT_ANNUAL_DISCOUNT_RATE if annual_discount_rate is None else annual_discount_rate
    annual = check_discount_rate(annual)
    if not annual > 0:
        raise InputError("DERT needs a positive discount rate (infinite horizon)")
    return math.log1p(annual) * units.days_per(time_unit) / 365.25


def discounted_expected_residual_transactions(
    purchase_model,
    summary: pd.DataFrame,
    annual_discount_rate: float | None = None,
    *,
    continuous_rate: float | None = None,
    method: str = "auto",
    n_nodes: int = 200,
) -> pd.Series:
    """DERT: expected purchases from T on, continuously discounted, over an infinite horizon.

    ``DERT_i = int_0^inf e^{-delta t} dE[X(T, T+t) | history]`` at the point estimate, with
    ``delta`` the continuous rate per model time unit: ``continuous_rate`` if given, else
    ``log(1 + annual_discount_rate) * unit_days / 365.25`` (annual default 0.10). Fader, Hardie
    & Lee (2005) use 15% a year, delta = log(1.15)/52 ~ 0.0027 per week. Multiply by the
    expected margin per purchase to get the customer's residual lifetime value.

    ``method``: "closed_form" (the family's own formula, e.g. Pareto/NBD FHL 2005 eq. 2; an
    error for families without one), "quadrature" (Gauss-Laguerre with ``n_nodes`` nodes over
    the family's ``expected_purchases``, the base family's rule; any purchase model) or "auto"
    (the family's method: its closed form when it has one, quadrature otherwise). Values that
    are not finite raise NumericalError.
    """
    check_model(purchase_model, "purchase_model")
    purchase_model.family_.validate_summary(summary)
    purchase_model.check_unit(summary)
    if method not in METHODS:
        raise InputError(f"method must be 'auto', 'closed_form' or 'quadrature', got {method!r}")
    if isinstance(n_nodes, bool) or not isinstance(n_nodes, int) or not 10 <= n_nodes <= 1000:
        raise InputError(f"n_nodes must be a whole number from 10 to 1000, got {n_nodes!r}")
    delta = continuous_discount_rate(
        purchase_model.time_unit_, annual_discount_rate, continuous_rate
    )
    family = purchase_model.family_
    if method == "closed_form" and not has_closed_form_dert(family):
        raise InputError(
            f"no closed-form DERT for {family.label} ({type(family).__name__} integrates "
            "expected_purchases numerically); use method='quadrature' or 'auto'"
        )
    quadrature = method == "quadrature" or not has_closed_form_dert(family)
    if quadrature and family.customer_columns != SUMMARY_COLUMNS:
        raise InputError(
            f"no quadrature DERT for {family.label}: the Gauss-Laguerre rule integrates "
            "expected purchases over continuous time after T, and this family's customers are "
            f"described by {', '.join(family.customer_columns)}; use method='auto' (the "
            "family's own sum or closed form)"
        )
    customer = family.customer_arrays(summary)
    params = purchase_model.customer_params(summary)
    p_alive = family.probability_alive(params, *customer)
    if quadrature:
        # the base class's rule, even where the family overrides it
        dert = PurchaseFamily.discounted_expected_residual_transactions
        values = dert(family, params, *customer, delta, p_alive=p_alive, n_nodes=n_nodes)
    else:
        values = family.discounted_expected_residual_transactions(
            params, *customer, delta, p_alive=p_alive
        )
    values = as_2d(values, 1, len(summary))[0]
    if not np.all(np.isfinite(values)):
        raise NumericalError(
            f"DERT is not finite for {int((~np.isfinite(values)).sum())} customers, e.g.\n"
            f"{summary[~np.isfinite(values)].head().to_string()}\nCheck the fit (summary(), "
            "converged_) and the discount rate."
        )
    out = pd.Series(values, index=summary.index, name="dert")
    out.attrs["delta"] = delta
    return out
