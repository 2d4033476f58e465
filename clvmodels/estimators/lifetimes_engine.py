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

import warnings

import numpy as np
import pandas as pd

from clvmodels import units
from clvmodels.errors import ClvError, TimeUnitError


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


def fit_with_lifetimes(fitter_name: str, family, summary: pd.DataFrame, weights, rows):
    """Fit ``lifetimes.<fitter_name>`` on the data of ``summary`` and return the fitted fitter.

    Purchase fitters get the frequency / recency / T columns with lifetimes' own defaults (so
    users reproduce the numbers they already have) and the weights unchanged; Pareto/NBD gets the
    distinct rows ``rows`` with their counts and a fixed start and tolerance (lifetimes starts
    its Nelder-Mead from random values otherwise, on its internal scale where max T = 1);
    Gamma-Gamma gets the repeat customers.
    """
    lifetimes = _import_lifetimes()
    fitter = getattr(lifetimes, fitter_name)()
    if family.kind == "spend":
        x = summary["frequency"].to_numpy(dtype=float)
        m = summary["monetary_value"].to_numpy(dtype=float)
        keep = x > 0 if weights is None else (x > 0) & (np.asarray(weights, float) > 0)
        kwargs = {} if weights is None else {"weights": np.asarray(weights, float)[keep]}
        return _run(fitter, x[keep], m[keep], **kwargs)
    if fitter_name == "BetaGeoBetaBinomFitter":  # the compressed (x, t_x, n) table with counts
        columns = tuple(rows[c] for c in family.fit_columns)
        return _run(fitter, *columns, weights=rows.counts)
    if fitter_name == "ParetoNBDFitter":
        columns = (rows["frequency"], rows["recency"], rows["T"])
        options = {"initial_params": np.ones(4), "tol": 1e-10, "maxiter": 20000}
        return _run(fitter, *columns, weights=rows.counts, **options)
    columns = tuple(summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    kwargs = {} if weights is None else {"weights": np.asarray(weights, dtype=float)}
    return _run(fitter, *columns, index=summary.index, **kwargs)


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
    from clvmodels import registry

    name = type(fitted_fitter).__name__
    entry = registry.entry_for_lifetimes_fitter(name)
    if entry is None:
        known = [e.lifetimes_fitter for e in registry.MAXIMUM_LIKELIHOOD if e.lifetimes_fitter]
        raise TypeError(f"from_lifetimes does not know {name}; supported: {', '.join(known)}")
    params = getattr(fitted_fitter, "params_", None)
    if params is None:
        raise ValueError(f"this lifetimes {name} is not fitted yet; call its .fit(...) first")
    cls = registry.class_by_name(entry.name)
    if time_unit is None and entry.kind == "purchase":
        raise TimeUnitError(
            f"from_lifetimes({name}) needs time_unit=, the unit of the frequency/recency/T data "
            "the fitter was fit on (lifetimes does not record it), e.g. time_unit='W'"
        )
    model = cls(engine="lifetimes")
    model.family_ = cls.family_class()
    names = list(cls.family_class.param_names)
    model.time_unit_ = units.normalize_unit(time_unit) if time_unit is not None else None
    model.params_ = pd.Series([float(params[k]) for k in names], index=names, dtype=float)
    model.lifetimes_fitter_ = fitted_fitter
    model.converged_ = bool(np.all(np.isfinite(model.params_.to_numpy())))
    model.optimizer_message_ = f"fitted by lifetimes.{name} (adapted with from_lifetimes)"
    data = getattr(fitted_fitter, "data", None)
    if isinstance(data, pd.DataFrame) and len(data):
        summary = data.copy()
        weights = summary.pop("weights").to_numpy(dtype=float) if "weights" in summary else None
        rows = model.family_.fit_rows(summary, weights)
        model.rows_ = rows
        model.n_customers_ = float(rows.counts.sum())
        log_params = np.log(model.params_.to_numpy())

        def objective(lp):
            return model.family_.negative_log_likelihood(lp, rows)

        model.log_likelihood_ = -float(objective(log_params)[0])
        model.set_covariance(lambda lp: objective(lp)[1], log_params)
    else:
        model.rows_ = None
        model.n_customers_ = float("nan")
        model.log_likelihood_ = float("nan")
        model.set_log_covariance(np.full((len(names), len(names)), np.nan))
    return model
