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


class MissingExtraError(ClvError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it,
    e.g. ``pip install "clvmodels[bayes]"``.

    Also an :class:`ImportError` (``name`` is the missing module), so code that guards optional
    imports with ``except ImportError`` keeps working.
    """

    def __init__(self, message: str, *, name: str | None = None, extra: str | None = None):
        super().__init__(message)
        self.name = name
        self.extra = extra

    def __reduce__(self):  # picklable across processes (Dask workers, multiprocessing)
        return (_missing_extra_error, (str(self), self.name, self.extra))


def _missing_extra_error(message: str, name: str | None, extra: str | None):
    return MissingExtraError(message, name=name, extra=extra)


OPTIONAL_MODULES: dict[str, tuple[str | None, str]] = {
    # top-level module -> (extra of clvmodels that installs it, pip requirement otherwise)
    "pymc": ("bayes", "pymc"),
    "pytensor": ("bayes", "pymc"),
    "arviz": ("bayes", "arviz"),
    "nutpie": ("bayes", "nutpie"),
    "h5netcdf": ("bayes", "h5netcdf"),
    "dask": ("dask", "dask[dataframe,distributed]"),
    "distributed": ("dask", "dask[dataframe,distributed]"),
    "polars": ("polars", "polars"),
    "numpyro": ("gpu", "numpyro"),
    "jax": ("gpu", "jax"),
    "jaxlib": ("gpu", "jax"),
    "pymc_extras": (None, "pymc-extras"),
    "pymc_marketing": ("bench", "pymc-marketing"),
    "sklearn": ("bench", "scikit-learn"),
    "jupyterlab": ("notebooks", "jupyterlab"),
    "notebook": ("notebooks", "notebook"),
    "ipykernel": ("notebooks", "ipykernel"),
}
"""The optional dependencies, by top-level module name, with the extra that installs each."""

EXTRA_FEATURES = {
    "bayes": "the Bayesian (hierarchical) models",
    "dask": "Dask scoring",
    "polars": "polars input",
    "gpu": "the numpyro/JAX sampler",
    "bench": "the benchmark suite",
    "notebooks": "the notebooks",
}


def install_hint(module: str) -> str:
    """``pip install "clvmodels[bayes]"`` (or the plain requirement) for an optional module."""
    extra, requirement = OPTIONAL_MODULES.get(module.split(".")[0], (None, module.split(".")[0]))
    return f'pip install "clvmodels[{extra}]"' if extra else f'pip install "{requirement}"'


def missing_extra(exc: ImportError, feature: str | None = None) -> MissingExtraError | None:
    """The :class:`MissingExtraError` for an ImportError about an optional dependency (None
    when ``exc`` is about something else, e.g. a module of a core dependency)."""
    if isinstance(exc, MissingExtraError):
        return exc
    name = getattr(exc, "name", None)
    if not isinstance(exc, ModuleNotFoundError) or not name:
        return None
    top = name.split(".")[0]
    if top not in OPTIONAL_MODULES:
        return None
    extra = OPTIONAL_MODULES[top][0]
    needs = feature or EXTRA_FEATURES.get(extra or "", "this feature")
    return MissingExtraError(
        f"{top} is not installed: it is an optional dependency, for {needs}. "
        f"Fix: {install_hint(top)}",
        name=top,
        extra=extra,
    )


def import_optional(module: str, feature: str | None = None):
    """Import an optional dependency; :class:`MissingExtraError` naming the extra to install
    when it (or one of its own dependencies) is missing.

    >>> pm = import_optional("pymc", "HierarchicalBetaGeo")  # doctest: +SKIP
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        converted = missing_extra(exc, feature)
        if converted is None and exc.name and exc.name.split(".")[0] != top:
            # a dependency of the optional package is missing: the extra installs it as well
            converted = missing_extra(ModuleNotFoundError(str(exc), name=top), feature)
        if converted is None:
            raise
        raise converted from exc


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
