"""Checks shared by every model and by everything that scores: summaries, weights, time units.

One home for input validation: a bad summary gets one clear error naming the column, the rows
and the fix, whatever entry point (fit, prediction, valuation, CLI) it came through.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clvmodels import units
from clvmodels.errors import InputError, check_columns, describe_rows

SUMMARY_COLUMNS = ("frequency", "recency", "T")


def as_float(*arrays) -> tuple[np.ndarray, ...]:
    """Each argument as a float ndarray (parameters and customer columns of the math)."""
    return tuple(np.asarray(a, dtype=float) for a in arrays)


def summary_time_unit(summary: pd.DataFrame) -> str | None:
    """The time unit recorded on a summary, or None."""
    unit = summary.attrs.get("time_unit")
    return units.normalize_unit(unit) if unit is not None else None


def validate_summary(
    summary: pd.DataFrame,
    *,
    monetary: bool = False,
    extra_columns: tuple[str, ...] = (),
    what: str = "summary",
    rfm: bool = True,
) -> pd.DataFrame:
    """Check an RFM summary and return it; raise InputError naming the problem and the fix.

    Checks: a DataFrame; columns frequency, recency, T (and monetary_value when ``monetary``,
    and ``extra_columns``, e.g. the ``litt`` a CNBD-k likelihood reads); no missing or
    non-finite values; frequency a non-negative whole number; 0 <= recency <= T;
    recency == 0 when frequency == 0; unique customer ids in the index. ``rfm=False`` checks
    only frequency (and monetary_value, extra_columns): what a spend model reads.
    """
    base = SUMMARY_COLUMNS if rfm else ("frequency",)
    required = list(base) + (["monetary_value"] if monetary else []) + list(extra_columns)
    check_customer_table(
        summary,
        required,
        what,
        "build the summary with clvmodels.rfm_summary(...)"
        + (" passing monetary=<amount column>" if monetary else ""),
    )
    x = summary["frequency"].to_numpy(dtype=float)
    whole_dtype = pd.api.types.is_integer_dtype(summary["frequency"].dtype)
    # (row mask, cheap test that the mask may have a True) per check: the masks cost a few passes
    # over millions of rows each, so they are only built when the reduction flags a problem
    checks = [
        (lambda: x < 0, lambda: x.min() < 0, "frequency is negative",
         "frequency counts repeat purchases and must be >= 0"),
        (lambda: x != np.round(x), lambda: not whole_dtype and not np.array_equal(x, np.floor(x)),
         "frequency is not a whole number", "frequency must count purchases"),
    ]  # fmt: skip
    if rfm:
        t_x = summary["recency"].to_numpy(dtype=float)
        T = summary["T"].to_numpy(dtype=float)
        checks += [
            (lambda: t_x < 0, lambda: t_x.min() < 0, "recency is negative",
             "recency is the time from first to last purchase"),
            (lambda: T < 0, lambda: T.min() < 0, "T is negative",
             "T is the time from first purchase to the observation end"),
            (lambda: t_x > T * (1 + 1e-9) + 1e-9, lambda: np.max(t_x - T) > 0,
             "recency is larger than T",
             "the last purchase cannot come after the observation end"),
            (lambda: (x == 0) & (t_x != 0), lambda: True,
             "recency is non-zero for customers with frequency 0",
             "customers without repeat purchases have recency 0"),
        ]  # fmt: skip
    for mask_of, may_fail, problem, fix in checks:
        if not may_fail():
            continue
        mask = mask_of()
        if mask.any():
            raise InputError(
                f"{what}: {problem} in {describe_rows(summary[required], mask)}\nFix: {fix}."
            )
    if monetary:
        m = summary["monetary_value"].to_numpy(dtype=float)
        if (m < 0).any():
            raise InputError(
                f"{what}: monetary_value is negative in "
                f"{describe_rows(summary[required], m < 0)}\nFix: refunds must be netted out "
                "before summarising; monetary_value is the mean spend of repeat purchases."
            )
    return summary


def check_customer_table(
    summary: pd.DataFrame, required: list[str], what: str, hint: str
) -> pd.DataFrame:
    """The checks every per-customer table shares: a DataFrame with the ``required`` columns,
    not empty, unique customer ids in the index, no missing or non-finite values in the
    required columns. ``hint`` says how to build the table."""
    if not isinstance(summary, pd.DataFrame):
        raise InputError(
            f"{what} must be a pandas DataFrame with columns {', '.join(required)}; got "
            f"{type(summary).__name__}. Fix: {hint}."
        )
    check_columns(summary, required, what, hint=hint)
    if len(summary) == 0:
        raise InputError(f"{what} is empty: there are no customers to fit or score")
    if summary.index.has_duplicates:
        dup = summary.index.duplicated(keep=False)
        raise InputError(
            f"{what} has duplicate customer ids in its index: "
            f"{describe_rows(summary[required], dup)}\nFix: one row per customer ({hint})."
        )
    for col in required:
        column = summary[col]
        if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(
            column.dtype
        ):
            values = column.to_numpy(dtype=float, na_value=np.nan)
        else:
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
        # one cheap reduction first (nan and inf propagate through a sum); the row mask is only
        # built when it might find something (a finite sum can overflow to inf)
        if not np.isfinite(values.sum()):
            bad = ~np.isfinite(values)
            if bad.any():
                raise InputError(
                    f"column {col!r} of {what} has missing or non-finite values in "
                    f"{describe_rows(summary[required], bad)}\nFix: remove or correct these "
                    "customers."
                )
    return summary


def summary_arrays(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequency, recency, T) as float arrays."""
    return (
        summary["frequency"].to_numpy(dtype=float),
        summary["recency"].to_numpy(dtype=float),
        summary["T"].to_numpy(dtype=float),
    )


def check_weights(weights, n: int) -> np.ndarray | None:
    """Validate optional per-customer weights (non-negative, finite, length n)."""
    if weights is None:
        return None
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise InputError(f"weights must have one value per customer ({n}), got shape {w.shape}")
    if not np.all(np.isfinite(w)) or (w < 0).any():
        raise InputError("weights must be finite and non-negative")
    return w


def check_same_unit(model, summary: pd.DataFrame, what: str = "summary") -> None:
    """Raise TimeUnitError unless ``summary`` is in the unit ``model`` was fitted in."""
    units.require_same_unit(model.time_unit_, summary_time_unit(summary), what)
