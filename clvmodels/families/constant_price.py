"""A fixed price per payment: the spend side of subscription value.

A subscriber pays a known price for each period they hold the contract, so spend needs no model:
the value of a payment is the customer's ``price`` (a column of the subscription table, e.g. from
their plan) or one constant for everybody. This family puts that on the spend-family interface
(:class:`~clvmodels.families.base.SpendFamily`), so that subscribers are valued by the same
engine as every other model (:func:`clvmodels.lifetime_value` with an sBG or BdW purchase
model): expected spend per payment ``= price``, the spend of ``n`` payments ``= n x price``.
There are no parameters: parameter draws are empty rows, and the interval of a subscriber's
value comes from the retention model alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from clvmodels.errors import InputError, check_columns, describe_rows
from clvmodels.families.base import SpendFamily


@dataclass(frozen=True)
class SubscriptionPriceFamily(SpendFamily):
    """Spend per payment = ``price``: each customer's ``price`` column, or the constant
    ``price`` given here for every customer (then no column is read)."""

    price: float | None = None

    name: ClassVar[str] = "subscription-price"
    label: ClassVar[str] = "Subscription price"
    param_names: ClassVar[tuple[str, ...]] = ()
    fit_columns: ClassVar[tuple[str, ...]] = ("price",)
    customer_columns: ClassVar[tuple[str, ...]] = ("price",)

    def __post_init__(self):
        if self.price is not None:
            value = self.price
            if isinstance(value, bool) or not np.isfinite(float(value)) or float(value) < 0:
                raise InputError(f"price must be a finite amount >= 0, got {value!r}")
            object.__setattr__(self, "price", float(value))

    def validate_summary(
        self, summary: pd.DataFrame, what: str = "table", fitting: bool = False
    ) -> pd.DataFrame:
        """Check ``summary`` has a finite, non-negative ``price`` per customer (unless a constant
        price is set) and return it."""
        if not isinstance(summary, pd.DataFrame):
            raise InputError(f"{what} must be a pandas DataFrame, got {type(summary).__name__}")
        if self.price is not None:
            return summary
        check_columns(
            summary,
            ["price"],
            what,
            hint="add each customer's price per period as a 'price' column, or give one price "
            "for all: SubscriptionPrice(price=9.99)",
        )
        values = pd.to_numeric(summary["price"], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            raise InputError(
                f"{what}: column 'price' must hold finite amounts >= 0; it does not in "
                f"{describe_rows(summary[['price']], bad)}\nFix: fill missing prices (e.g. the "
                "plan's list price) or drop these customers."
            )
        return summary

    def customer_arrays(self, summary: pd.DataFrame) -> tuple[np.ndarray, ...]:
        """The price of each customer: the ``price`` column, or the constant."""
        if self.price is not None:
            return (np.full(len(summary), self.price),)
        return (summary["price"].to_numpy(dtype=float),)

    def expected_spend(self, params, price):
        """The spend of one payment: the price."""
        return np.asarray(price, dtype=float)

    def sample_spend_rate(self, params, price, rng: np.random.Generator):
        """The price (nothing is random)."""
        return np.asarray(price, dtype=float)

    def sample_future_spend(self, params, price, counts, rng: np.random.Generator):
        """``counts x price`` per period (``counts`` of shape ``(..., n_periods)``)."""
        counts = np.asarray(counts, dtype=float)
        return counts * np.asarray(price, dtype=float)[..., None]

    def simulate(self, params, frequency, rng) -> dict:
        """The constant price for every customer (a column-less family cannot simulate one)."""
        if self.price is None:
            raise InputError("simulating prices needs a constant price: SubscriptionPrice(9.99)")
        return {"price": np.full(np.shape(frequency), self.price)}
