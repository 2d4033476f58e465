"""The ``lifetimes`` engine: fit with the ``lifetimes`` package, predict with clvmodels' math.

Two entry points:

* ``engine="lifetimes"`` on :class:`~clvmodels.BetaGeo`, :class:`~clvmodels.ModifiedBetaGeo`,
  :class:`~clvmodels.ParetoNBD` and :class:`~clvmodels.GammaGamma`: the model calls the helpers
  below to run the matching ``lifetimes`` fitter on the summary (with lifetimes' own defaults,
  so users reproduce the numbers they already have). The fitter is kept as
  ``lifetimes_fitter_``; the log-likelihood, the covariance and every prediction are computed
  by clvmodels' math at lifetimes' optimum.
* :func:`from_lifetimes` adapts a ``lifetimes`` fitter that was already fitted elsewhere, so
  that it can be valued by :func:`clvmodels.lifetime_value` and friends. ``lifetimes`` does not
  know time units, so the unit must be given (``time_unit="W"``).
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pandas as pd

from clvmodels import units
from clvmodels.errors import ClvError, TimeUnitError

# lifetimes fitter class -> (clvmodels module, class, is a purchase model)
_FITTER_TO_MODEL: dict[str, tuple[str, str, bool]] = {
    "BetaGeoFitter": ("clvmodels.models.beta_geo", "BetaGeo", True),
    "ModifiedBetaGeoFitter": ("clvmodels.models.modified_beta_geo", "ModifiedBetaGeo", True),
    "ParetoNBDFitter": ("clvmodels.models.pareto_nbd", "ParetoNBD", True),
    "GammaGammaFitter": ("clvmodels.models.gamma_gamma", "GammaGamma", False),
}


class LifetimesEngineError(ClvError, RuntimeError):
    """The lifetimes fitter failed (did not converge or rejected the data)."""


def _import_lifetimes():
    try:
        import lifetimes
    except ImportError as exc:  # pragma: no cover - lifetimes is a hard dependency
        raise ImportError(
            "engine='lifetimes' needs the lifetimes package: pip install 'lifetimes>=0.11.3'"
        ) from exc
    return lifetimes


def _run(fitter, *args, **kwargs):
    name = type(fitter).__name__
    with warnings.catch_warnings():
        # lifetimes triggers pandas/numpy deprecation noise that is not the user's concern
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return fitter.fit(*args, **kwargs)
        except Exception as exc:  # lifetimes raises its own ConvergenceError, ValueError, ...
            raise LifetimesEngineError(
                f"lifetimes.{name} failed: {exc}. The native engine (engine='native') may "
                "succeed; it reports non-convergence as a warning instead of an error."
            ) from exc


def fit_lifetimes_purchase(fitter_name: str, summary: pd.DataFrame, weights=None, **fit_kwargs):
    """Fit ``lifetimes.<fitter_name>`` (BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter)
    on the frequency / recency / T columns of ``summary``; return the fitted fitter.

    ``weights`` (one per customer) are passed to lifetimes unchanged; extra keyword arguments
    go to the fitter's ``fit`` (e.g. ``tol``).
    """
    lifetimes = _import_lifetimes()
    fitter = getattr(lifetimes, fitter_name)()
    args = (
        summary["frequency"].to_numpy(dtype=float),
        summary["recency"].to_numpy(dtype=float),
        summary["T"].to_numpy(dtype=float),
    )
    if weights is not None:
        fit_kwargs["weights"] = np.asarray(weights, dtype=float)
    return _run(fitter, *args, index=summary.index, **fit_kwargs)


def fit_lifetimes_gamma_gamma(frequency, monetary_value, weights=None, **fit_kwargs):
    """Fit ``lifetimes.GammaGammaFitter`` on repeat customers (frequency > 0, monetary > 0)."""
    lifetimes = _import_lifetimes()
    fitter = lifetimes.GammaGammaFitter()
    if weights is not None:
        fit_kwargs["weights"] = np.asarray(weights, dtype=float)
    return _run(
        fitter, np.asarray(frequency, float), np.asarray(monetary_value, float), **fit_kwargs
    )


def from_lifetimes(fitted_fitter, time_unit: str | None = None):
    """Adapt a fitted ``lifetimes`` fitter into the matching clvmodels model.

    Parameters
    ----------
    fitted_fitter : lifetimes.BetaGeoFitter | ModifiedBetaGeoFitter | ParetoNBDFitter | GammaGammaFitter
        A fitter on which ``.fit(...)`` has been called.
    time_unit : str
        The unit of the frequency/recency/T data the fitter was fit on ("D", "W", "M", ...).
        Required for purchase models (lifetimes does not record it); optional for Gamma-Gamma.

    Returns
    -------
    The clvmodels model (``BetaGeo``, ``ModifiedBetaGeo``, ``ParetoNBD`` or ``GammaGamma``)
    with ``params_``, ``time_unit_`` and ``lifetimes_fitter_`` set. When the fitter still holds
    its data (``fitter.data``, lifetimes' default) the log-likelihood and the observed-information
    covariance are recomputed with clvmodels' math, so ``param_draws`` works; otherwise they are
    NaN and only point predictions are available.

    Examples
    --------
    >>> from lifetimes import BetaGeoFitter
    >>> f = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])  # doctest: +SKIP
    >>> bg = clv.from_lifetimes(f, time_unit="W")  # doctest: +SKIP
    """
    name = type(fitted_fitter).__name__
    if name not in _FITTER_TO_MODEL:
        raise TypeError(
            f"from_lifetimes does not know {name}; supported: {', '.join(_FITTER_TO_MODEL)}"
        )
    params = getattr(fitted_fitter, "params_", None)
    if params is None:
        raise ValueError(f"this lifetimes {name} is not fitted yet; call its .fit(...) first")
    module, class_name, purchase = _FITTER_TO_MODEL[name]
    cls = getattr(importlib.import_module(module), class_name)
    if time_unit is None and purchase:
        raise TimeUnitError(
            f"from_lifetimes({name}) needs time_unit=, the unit of the frequency/recency/T data "
            "the fitter was fit on (lifetimes does not record it), e.g. time_unit='W'"
        )
    model = cls(engine="lifetimes")
    names = list(cls.param_names)
    model.time_unit_ = units.normalize_unit(time_unit) if time_unit is not None else None
    model.params_ = pd.Series([float(params[k]) for k in names], index=names, dtype=float)
    model.lifetimes_fitter_ = fitted_fitter
    model.converged_ = bool(np.all(np.isfinite(model.params_.to_numpy())))
    model.optimizer_message_ = f"fitted by lifetimes.{name} (adapted with from_lifetimes)"
    data = getattr(fitted_fitter, "data", None)
    k = len(names)
    if isinstance(data, pd.DataFrame) and len(data):
        summary = data.copy()
        weights = summary.pop("weights").to_numpy(dtype=float) if "weights" in summary else None
        fit_data, counts = model._fit_data(summary, weights)
        model._data_, model._counts_ = fit_data, counts
        model.n_customers_ = float(counts.sum())
        log_params = np.log(model.params_.to_numpy())

        def objective(lp):
            return model._negative_log_likelihood(lp, fit_data, counts)

        model.log_likelihood_ = -float(objective(log_params)[0])
        model._set_covariance(lambda lp: objective(lp)[1], log_params)
    else:
        model._data_, model._counts_ = None, None
        model.n_customers_ = float("nan")
        model.log_likelihood_ = float("nan")
        nan = np.full((k, k), np.nan)
        model.log_covariance_ = pd.DataFrame(nan, index=names, columns=names)
        model.covariance_ = pd.DataFrame(nan.copy(), index=names, columns=names)
        model.standard_errors_ = pd.Series(np.full(k, np.nan), index=names)
    return model
