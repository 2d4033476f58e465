"""Customer covariates: joining them to a summary and turning columns into numbers.

Covariate models (``clv.ParetoNBD(purchase_covariates=[...], dropout_covariates=[...])``,
``clv.GammaGamma(spend_covariates=[...])``) read their covariates as columns of the summary
passed to ``fit`` and to every prediction. :func:`join_covariates` adds them from a table with
one row per customer, with clear errors for missing customers or values.

Encoding (:class:`CovariateEncoding`): a numeric (or boolean) column is used as it is; a
categorical column (object, string or category dtype) becomes 0/1 dummy columns, one per level
except the *baseline*, the first level in sorted order, whose effect is zero. The dummy of level
``L`` of column ``c`` is named ``c[L]``. The levels are kept in the fitted model (and its model
file), so predictions on new data map them the same way; a level unseen at fit time is an
:class:`~clvmodels.errors.InputError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clvmodels.errors import InputError, describe_rows


def join_covariates(
    summary: pd.DataFrame,
    table: pd.DataFrame,
    columns: Sequence[str] | None = None,
    id_column: str = "customer_id",
) -> pd.DataFrame:
    """``summary`` with the covariate ``columns`` of ``table`` joined on the customer id.

    ``table`` has one row per customer, identified by its ``id_column`` (a column, or the
    index when no such column exists); ``columns`` defaults to all its other columns. Every
    customer of ``summary`` must be in ``table`` with a value in each column (InputError
    naming the customers otherwise). The summary's ``attrs`` (time unit) are kept.
    """
    if id_column in table.columns:
        table = table.set_index(id_column)
    if columns is None:
        columns = list(table.columns)
    columns = list(columns)
    missing_columns = [c for c in columns if c not in table.columns]
    if missing_columns:
        raise InputError(
            f"the covariate table has no column {missing_columns}; it has {list(table.columns)}. "
            "Fix: name existing columns in `columns`."
        )
    clashes = [c for c in columns if c in summary.columns]
    if clashes:
        raise InputError(
            f"the summary already has the column(s) {clashes}. Fix: drop them from the summary "
            "or rename them in the covariate table."
        )
    duplicated = table.index.duplicated()
    if duplicated.any():
        ids = list(table.index[duplicated][:5])
        raise InputError(
            f"the covariate table has more than one row for customer(s) {ids}. Fix: keep one "
            "row per customer (static covariates)."
        )
    absent = ~summary.index.isin(table.index)
    if absent.any():
        ids = list(summary.index[absent][:5])
        raise InputError(
            f"{int(absent.sum())} customer(s) of the summary are not in the covariate table, "
            f"e.g. {ids}. Fix: add their covariates (or drop them from the summary)."
        )
    values = table.loc[summary.index, columns]
    for column in columns:
        empty = values[column].isna().to_numpy()
        if empty.any():
            ids = list(summary.index[empty][:5])
            raise InputError(
                f"covariate {column!r} is missing for {int(empty.sum())} customer(s), e.g. "
                f"{ids}. Fix: fill the values (or drop these customers)."
            )
    out = summary.join(values.set_axis(summary.index))
    out.attrs = dict(summary.attrs)
    return out


def is_categorical(series: pd.Series) -> bool:
    """Whether a column is expanded into dummies (object, string or category dtype)."""
    return bool(
        isinstance(series.dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(series.dtype)
        or pd.api.types.is_string_dtype(series.dtype)
    )


@dataclass(frozen=True)
class CovariateEncoding:
    """How the covariate columns become the numeric features of a covariate model.

    ``levels`` maps each categorical column to its sorted levels (the first is the baseline);
    numeric columns are absent from it. ``features`` lists the feature names in order.
    """

    columns: tuple[str, ...]
    levels: dict[str, tuple[str, ...]]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, columns: Sequence[str]) -> CovariateEncoding:
        """The encoding of ``columns`` learnt from ``frame`` (the fitting summary)."""
        check_columns(frame, columns)
        levels = {}
        for column in columns:
            series = frame[column]
            if is_categorical(series):
                check_no_missing(series, frame)
                found = sorted({str(v) for v in series.to_numpy()})
                if len(found) < 2:
                    raise InputError(
                        f"covariate {column!r} has a single level {found} in the fitting data, "
                        "so its effect cannot be estimated. Fix: drop it from the covariates."
                    )
                levels[column] = tuple(found)
        return cls(tuple(columns), levels)

    def features_of(self, column: str) -> list[str]:
        """The feature names of one column: itself, or ``column[level]`` per non-baseline level."""
        if column in self.levels:
            return [f"{column}[{level}]" for level in self.levels[column][1:]]
        return [column]

    @property
    def features(self) -> list[str]:
        return [f for c in self.columns for f in self.features_of(c)]

    def matrix(self, frame: pd.DataFrame, what: str = "summary") -> np.ndarray:
        """The features of ``frame``'s rows, shape ``(len(frame), len(features))``: InputError
        for a missing column, a missing or non-finite number, or an unknown level."""
        check_columns(frame, self.columns, what)
        blocks = []
        for column in self.columns:
            series = frame[column]
            if column in self.levels:
                check_no_missing(series, frame, what)
                text = series.astype(str).to_numpy()
                known = np.isin(text, self.levels[column])
                if not known.all():
                    raise InputError(
                        f"covariate {column!r} in the {what} has level(s) "
                        f"{sorted(set(text[~known]))[:5]} that the model was not fitted on (it "
                        f"knows {list(self.levels[column])}); rows: "
                        f"{describe_rows(frame[[column]], ~known)}. Fix: map them to known levels."
                    )
                blocks.append(
                    np.column_stack([text == level for level in self.levels[column][1:]]).astype(
                        float
                    )
                )
                continue
            if is_categorical(series) or not (
                pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series)
            ):
                raise InputError(
                    f"covariate {column!r} in the {what} is not numeric (dtype {series.dtype}), "
                    "but the model was fitted with it as a number. Fix: pass numbers."
                )
            values = series.to_numpy(dtype=float, na_value=np.nan)
            bad = ~np.isfinite(values)
            if bad.any():
                raise InputError(
                    f"covariate {column!r} in the {what} must be a finite number; it is missing "
                    f"or infinite in {describe_rows(frame[[column]], bad)}. Fix: fill or drop "
                    "these customers."
                )
            blocks.append(values[:, None])
        if not blocks:
            return np.zeros((len(frame), 0))
        return np.hstack(blocks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "levels": {k: list(v) for k, v in self.levels.items()},
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> CovariateEncoding:
        return cls(
            tuple(payload["columns"]),
            {k: tuple(str(x) for x in v) for k, v in payload.get("levels", {}).items()},
        )


def check_columns(frame: pd.DataFrame, columns: Sequence[str], what: str = "summary") -> None:
    """InputError naming the covariate columns that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"the {what} has no covariate column(s) {missing}. Fix: add them, e.g. "
            "clvmodels.covariates.join_covariates(summary, table, columns)."
        )


def check_no_missing(series: pd.Series, frame: pd.DataFrame, what: str = "summary") -> None:
    """InputError naming the rows where a categorical covariate is missing."""
    empty = series.isna().to_numpy()
    if empty.any():
        raise InputError(
            f"covariate {series.name!r} in the {what} is missing in "
            f"{describe_rows(frame[[series.name]], empty)}. Fix: fill or drop these customers."
        )
