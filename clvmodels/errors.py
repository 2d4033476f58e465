"""Exceptions and warnings, and the helper that formats "which rows are wrong" messages.

Every error about user input names the column, counts the offending rows, shows a few
examples and says how to fix it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class ClvError(Exception):
    """Base class of every clvmodels error."""


class InputError(ClvError, ValueError):
    """The input data is malformed (missing column, bad values, ...)."""


class TimeUnitError(ClvError, ValueError):
    """A time unit is unknown, missing, or does not match the model's unit."""


class NotFittedError(ClvError, RuntimeError):
    """A prediction was asked of a model that has not been fit."""


class ModelFileError(ClvError, ValueError):
    """A saved model cannot be read (wrong schema version, missing or corrupt file)."""


class NumericalError(ClvError, ArithmeticError):
    """A quantity could not be computed to within the model's bounds (never returned silently)."""


class ConvergenceWarning(UserWarning):
    """An optimiser or sampler did not converge; results may be unreliable."""


class ModelAssumptionWarning(UserWarning):
    """The data contradicts a model assumption (e.g. spend correlated with frequency)."""


def describe_rows(frame: pd.DataFrame | pd.Series, mask, max_examples: int = 5) -> str:
    """Count the rows selected by ``mask`` and render the first few as text.

    Returns e.g. ``"3 rows, e.g.\\n   customer_id  amount\\n7  a  -1.0 ..."``.
    """
    mask = np.asarray(mask, dtype=bool)
    n_bad = int(mask.sum())
    examples = frame[mask].head(max_examples)
    noun = "row" if n_bad == 1 else "rows"
    return f"{n_bad} {noun}, e.g.\n{examples.to_string()}"


def check_columns(frame: pd.DataFrame, required: list[str], what: str, hint: str = "") -> None:
    """Raise InputError when any of ``required`` is missing from ``frame``."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        available = ", ".join(map(str, frame.columns)) or "(none)"
        fix = hint or "rename your columns or pass the right column names as arguments"
        raise InputError(
            f"{what} is missing column(s) {missing}; available columns: {available}. Fix: {fix}."
        )
