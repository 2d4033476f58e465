"""The textbook heuristic CLV, as a baseline for the probabilistic models.

    CLV = margin x average order value x purchase frequency x expected lifespan - acquisition cost
    expected lifespan = 1 / churn rate

(e.g. Gupta & Lehmann 2003, "Customers as assets", J. Interactive Marketing 17(1): with a
constant retention rate ``q = 1 - c`` per period and no discounting the expected number of
active periods is ``sum_k q^(k-1) = 1 / c``). This is what many dashboards compute; benchmarks
compare it with BG/NBD + Gamma-Gamma to show what the probabilistic models add (individual
churn probabilities from recency, heterogeneity, shrinkage of spend).

Estimated from an RFM summary (:func:`clvmodels.rfm_summary`):

* ``aov_`` (average order value): total repeat spend / total repeat purchases,
  ``sum(x m) / sum(x)``;
* ``purchase_frequency_``: repeat purchases per period, ``sum(x) / sum(T)`` x period length;
* ``churn_rate_``: per-period churn probability. A customer counts as churned when their last
  purchase is more than ``inactive_after`` before the end of observation (``T - recency >
  inactive_after``); the churn hazard is churned customers / customer time at risk, where a
  churned customer was at risk until their last purchase (``recency``) and the others for their
  whole age ``T`` (censored); ``churn_rate_ = 1 - exp(-hazard x period)``.
* ``lifespan_``: ``1 / churn_rate_`` periods.

With a finite horizon of ``H`` periods and a per-period discount rate ``i`` the lifespan term
becomes the discounted expected number of active periods
``sum_{k=1..H} q^(k-1) / (1 + i)^k = v (1 - (q v)^H) / (1 - q v)``, ``v = 1 / (1 + i)``, which
is ``1 / c`` for ``H = inf`` and ``i = 0`` (the textbook formula, the default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from clvmodels import units
from clvmodels.errors import InputError, NotFittedError
from clvmodels.validation import summary_arrays, summary_time_unit, validate_summary
from clvmodels.valuation.spec import with_amount

__all__ = ["HeuristicCLV"]


@dataclass(eq=False, repr=False)
class HeuristicCLV:
    """Average order value x purchase frequency x lifespan (= 1 / churn rate) - CAC.

    Parameters
    ----------
    period : period of the frequency and churn rate ("1M" default; any calendar duration).
    margin : share of spend kept as profit.
    inactive_after : a customer with no purchase for longer than this is counted as churned
        (calendar duration, default "180D").
    acquisition_cost : subtracted from every customer's value (default 0).
    annual_discount_rate : optional discounting of the per-period cash flows (default 0, the
        textbook formula).
    level : "population" (default; the same value for every customer, as in the textbook) or
        "customer" (each customer's own order value ``monetary_value`` and own frequency
        ``frequency / T``; population values for customers without repeat purchases or with
        ``T == 0``; the lifespan stays the population one).

    Examples
    --------
    >>> import clvmodels as clv
    >>> s = clv.datasets.load_cdnow_summary()
    >>> h = clv.HeuristicCLV(period="1M").fit(s)
    >>> value = h.predict(s)  # doctest: +SKIP
    """

    period: Any = "1M"
    margin: float = 1.0
    inactive_after: Any = "180D"
    acquisition_cost: float = 0.0
    annual_discount_rate: float = 0.0
    level: str = "population"

    # ---- fitting ---------------------------------------------------------------------------
    def fit(self, summary: pd.DataFrame) -> HeuristicCLV:
        """Estimate order value, frequency and churn rate from an RFM summary."""
        validate_summary(summary, monetary=True)
        if self.level not in ("population", "customer"):
            raise InputError(f"level must be 'population' or 'customer', got {self.level!r}")
        unit = summary_time_unit(summary)
        if unit is None:
            raise InputError(
                "the summary has no time unit; build it with clvmodels.rfm_summary(..., "
                "time_unit='W') or set summary.attrs['time_unit']"
            )
        self.time_unit_ = unit
        self.period_length_ = units.to_unit(with_amount(self.period), unit)
        if not self.period_length_ > 0:
            raise InputError(f"period must be a positive duration, got {self.period!r}")
        x, t_x, T = summary_arrays(summary)
        m = summary["monetary_value"].to_numpy(dtype=float)
        if x.sum() == 0:
            raise InputError(
                "no customer has a repeat purchase: average order value and purchase "
                "frequency cannot be estimated"
            )
        if T.sum() == 0:
            raise InputError("every customer has T == 0: there is no observed time")
        self.aov_ = float((x * m).sum() / x.sum())
        self.purchase_frequency_ = float(x.sum() / T.sum() * self.period_length_)
        window = units.to_unit(with_amount(self.inactive_after), unit)
        churned = (T - t_x) > window
        at_risk = np.where(churned, t_x, T).sum()
        self.n_churned_ = int(churned.sum())
        if self.n_churned_ == 0:
            raise InputError(
                f"no customer has been inactive for more than inactive_after={self.inactive_after!r}"
                ": the churn rate is 0 and the lifespan infinite; use a shorter inactive_after"
            )
        hazard = self.n_churned_ / max(at_risk, np.finfo(float).tiny)
        self.churn_rate_ = float(-math.expm1(-hazard * self.period_length_))
        self.lifespan_ = 1.0 / self.churn_rate_
        self.params_ = pd.Series(
            {
                "aov": self.aov_,
                "purchase_frequency": self.purchase_frequency_,
                "churn_rate": self.churn_rate_,
                "lifespan": self.lifespan_,
            }
        )
        return self

    def check_fitted(self) -> None:
        """Raise NotFittedError unless the model is fitted."""
        if getattr(self, "params_", None) is None:
            raise NotFittedError("this HeuristicCLV is not fitted yet; call .fit(summary) first")

    # ---- predictions ---------------------------------------------------------------------------
    def expected_lifespan(self, horizon=None, discounted: bool = True) -> float:
        """(Discounted) expected number of active periods within ``horizon`` (None: infinite)."""
        self.check_fitted()
        q = 1.0 - self.churn_rate_
        rate = 0.0
        if discounted and self.annual_discount_rate:
            rate = units.per_period_rate(
                float(self.annual_discount_rate), self.period_length_, self.time_unit_
            )
        v = 1.0 / (1.0 + rate)
        if horizon is None:
            return v / (1.0 - q * v)
        H = units.to_unit(with_amount(horizon), self.time_unit_) / self.period_length_
        return v * (1.0 - (q * v) ** H) / (1.0 - q * v)

    def customer_terms(self, summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(order value, purchase frequency per period)`` of each customer: the population
        values, or with ``level="customer"`` each customer's own where they are defined."""
        validate_summary(summary, monetary=True)
        unit = summary_time_unit(summary)
        if unit is not None:
            units.require_same_unit(self.time_unit_, unit, "summary")
        n = len(summary)
        if self.level == "population":
            return np.full(n, self.aov_), np.full(n, self.purchase_frequency_)
        x = summary["frequency"].to_numpy(dtype=float)
        T = summary["T"].to_numpy(dtype=float)
        m = summary["monetary_value"].to_numpy(dtype=float)
        aov = np.where(x > 0, m, self.aov_)
        with np.errstate(divide="ignore", invalid="ignore"):
            freq = np.where(T > 0, x / T * self.period_length_, self.purchase_frequency_)
        return aov, freq

    def expected_purchases(self, summary: pd.DataFrame, t) -> pd.Series:
        """Heuristic purchases in the next ``t``: frequency x expected active periods in ``t``."""
        self.check_fitted()
        _, freq = self.customer_terms(summary)
        periods = self.expected_lifespan(t, discounted=False)
        return pd.Series(freq * periods, index=summary.index, name="expected_purchases")

    def predict(self, summary: pd.DataFrame, horizon=None) -> pd.Series:
        """Heuristic CLV of each customer: ``margin x AOV x frequency x lifespan - CAC``.

        ``horizon`` (calendar duration) caps the lifespan; None (default) is the textbook
        infinite-horizon ``1 / churn rate``.
        """
        self.check_fitted()
        if isinstance(self.margin, bool) or not isinstance(self.margin, Real):
            raise InputError(f"margin must be a number, got {self.margin!r}")
        aov, freq = self.customer_terms(summary)
        value = self.margin * aov * freq * self.expected_lifespan(horizon) - float(
            self.acquisition_cost
        )
        return pd.Series(value, index=summary.index, name="clv")

    def __repr__(self) -> str:
        if getattr(self, "params_", None) is None:
            return "HeuristicCLV(unfitted)"
        inner = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        return f"HeuristicCLV({inner})"
