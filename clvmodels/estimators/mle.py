"""What every model shares: summary validation, compression, the MLE fitting machinery,
parameter draws, and the protocol that valuation and evaluation rely on.

The protocol ("draws are the common currency")
-----------------------------------------------
A fitted model turns a summary plus a table of parameter draws into per-customer parameter
arrays with :meth:`customer_params`: a dict ``{name: ndarray}`` whose arrays have shape
``(n_draws, n_customers)`` or ``(n_draws, 1)`` (the same for every customer, e.g. MLE). The
model's pure math functions take such dicts and broadcast over draws and customers:

Purchase models (subclasses of :class:`PurchaseModel`) implement, as static methods,

* ``_math_expected_purchases(params, x, t_x, T, t)`` -> E[X(T, T+t] | x, t_x, T]
* ``_math_probability_alive(params, x, t_x, T)``
* ``_math_expected_purchases_new_customer(params, t)`` -> E[X(t)] for a new customer
* ``_math_purchase_probability(params, x, t_x, T, t, k)`` -> P(X(T, T+t] = k | history)
* ``_math_sample_future_purchases(params, x, t_x, T, t_grid, rng)`` -> integer array of shape
  ``broadcast(params, x) + (len(t_grid),)``: *cumulative* purchase counts at each time of the
  increasing grid ``t_grid`` (model units after T), drawn from the customer's conditional
  posterior of the latent state (alive or not, individual rates) and the purchase process.

Spend models (subclasses of :class:`SpendModel`) implement

* ``_math_expected_spend(params, x, m)`` -> E[spend per transaction | x repeat purchases of mean
  m]; the population mean for x == 0
* ``_math_sample_future_spend(params, x, m, counts, rng)`` -> float array shaped like ``counts``
  (``(..., n_periods)``): total spend in each period given the purchase counts, drawing each
  customer's latent spend level once per draw.

Here ``x`` = frequency, ``t_x`` = recency, ``T`` = age, ``m`` = monetary_value, all 1-d arrays
over customers (broadcast against the ``(n_draws, n_customers)`` parameter arrays).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import optimize, stats

from clvmodels import units
from clvmodels.errors import (
    ConvergenceWarning,
    InputError,
    NotFittedError,
    TimeUnitError,
    check_columns,
    describe_rows,
)

SUMMARY_COLUMNS = ("frequency", "recency", "T")


# --------------------------------------------------------------------------------------------
# summary validation and compression
# --------------------------------------------------------------------------------------------
def summary_time_unit(summary: pd.DataFrame) -> str | None:
    """The time unit recorded on a summary, or None."""
    unit = summary.attrs.get("time_unit")
    return units.normalize_unit(unit) if unit is not None else None


def validate_summary(
    summary: pd.DataFrame,
    *,
    monetary: bool = False,
    what: str = "summary",
) -> pd.DataFrame:
    """Check an RFM summary and return it; raise InputError naming the problem and the fix.

    Checks: a DataFrame; columns frequency, recency, T (and monetary_value when ``monetary``);
    no missing or non-finite values; frequency a non-negative whole number; 0 <= recency <= T;
    recency == 0 when frequency == 0; unique customer ids in the index.
    """
    if not isinstance(summary, pd.DataFrame):
        raise InputError(
            f"{what} must be a pandas DataFrame with columns frequency, recency, T; got "
            f"{type(summary).__name__}. Build one with clvmodels.rfm_summary(transactions, ...)."
        )
    required = list(SUMMARY_COLUMNS) + (["monetary_value"] if monetary else [])
    check_columns(
        summary,
        required,
        what,
        hint="build the summary with clvmodels.rfm_summary(...)"
        + (" passing monetary=<amount column>" if monetary else ""),
    )
    if len(summary) == 0:
        raise InputError(f"{what} is empty: there are no customers to fit or score")
    if summary.index.has_duplicates:
        dup = summary.index.duplicated(keep=False)
        raise InputError(
            f"{what} has duplicate customer ids in its index: "
            f"{describe_rows(summary[required], dup)}\nFix: one row per customer "
            "(aggregate transactions with clvmodels.rfm_summary)."
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
    x = summary["frequency"].to_numpy(dtype=float)
    t_x = summary["recency"].to_numpy(dtype=float)
    T = summary["T"].to_numpy(dtype=float)
    whole_dtype = pd.api.types.is_integer_dtype(summary["frequency"].dtype)
    # (row mask, cheap test that the mask may have a True) per check: the masks cost a few passes
    # over millions of rows each, so they are only built when the reduction flags a problem
    checks = [
        (lambda: x < 0, lambda: x.min() < 0, "frequency is negative",
         "frequency counts repeat purchases and must be >= 0"),
        (lambda: x != np.round(x), lambda: not whole_dtype and not np.array_equal(x, np.floor(x)),
         "frequency is not a whole number", "frequency must count purchases"),
        (lambda: t_x < 0, lambda: t_x.min() < 0, "recency is negative",
         "recency is the time from first to last purchase"),
        (lambda: T < 0, lambda: T.min() < 0, "T is negative",
         "T is the time from first purchase to the observation end"),
        (lambda: t_x > T * (1 + 1e-9) + 1e-9, lambda: np.max(t_x - T) > 0,
         "recency is larger than T", "the last purchase cannot come after the observation end"),
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


def summary_arrays(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequency, recency, T) as float arrays."""
    return (
        summary["frequency"].to_numpy(dtype=float),
        summary["recency"].to_numpy(dtype=float),
        summary["T"].to_numpy(dtype=float),
    )


def compress_rows(
    *columns: np.ndarray, weights: np.ndarray | None = None, return_codes: bool = False
):
    """Collapse identical rows of the given columns; return (unique columns..., counts).

    Fitting only needs the distinct rows with their multiplicities: the likelihood of n
    identical customers is n times the likelihood of one. Rows come out in lexicographic order
    (first column slowest), as from ``np.unique(axis=0)``. With ``return_codes=True`` a list is
    appended with, per column, the integer code of each unique row's value among that column's
    sorted distinct values (lookup-table indices for the likelihoods).
    """
    cols = [np.asarray(c, dtype=float).ravel() for c in columns]
    # fast path: code each column by its sorted distinct values (hashing, O(n)) and combine the
    # codes into one integer key (mixed radix, first column most significant); ~30x faster
    # than np.unique(axis=0) on millions of rows
    values, codes = [], []
    for col in cols:
        top = float(col.max()) if col.size else 0.0
        if col.size and col.min() >= 0 and top <= 4 * col.size and np.all(col == np.floor(col)):
            # whole numbers (frequency; recency and T at daily resolution): the value is its
            # own code, no hashing needed
            values.append(np.arange(int(top) + 1, dtype=float))
            codes.append(col.astype(np.int64))
            continue
        code, v = pd.factorize(col, sort=True)
        values.append(np.asarray(v, dtype=float))
        codes.append(code.astype(np.int64))
    sizes = [len(v) for v in values]
    if float(np.prod(np.asarray(sizes, dtype=float))) < 2.0**62:
        key = codes[0]
        for code, size in zip(codes[1:], sizes[1:], strict=True):
            key = key * size + code
        inverse, unique_key = pd.factorize(key, sort=True)
        unique_codes = []
        rest = np.asarray(unique_key, dtype=np.int64)
        for size in sizes[::-1]:
            unique_codes.append(rest % size)
            rest = rest // size
        unique_codes = unique_codes[::-1]
        unique_cols = [v[c] for v, c in zip(values, unique_codes, strict=True)]
    else:
        stacked = np.column_stack(cols)
        unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        unique_cols = [unique[:, j] for j in range(unique.shape[1])]
        unique_codes = [np.searchsorted(v, u) for v, u in zip(values, unique_cols, strict=True)]
    n_unique = len(unique_cols[0])
    if weights is None:
        counts = np.bincount(inverse, minlength=n_unique).astype(float)
    else:
        counts = np.bincount(inverse, weights=np.asarray(weights, float), minlength=n_unique)
    if return_codes:
        return (*unique_cols, counts, unique_codes)
    return (*unique_cols, counts)


class LastResultMemo:
    """One-entry memo of an array function: its last result, with copies of the inputs that
    produced it, compared by value (never by identity, so mutating an input in place cannot
    return a stale result).

    For P(alive): it does not depend on the horizon, and callers ask for it repeatedly with the
    same customers and parameters (``expected_purchases`` then ``probability_alive`` when
    scoring; E[X(T, T+t)] at every period end when valuing). Results larger than ``limit``
    elements are not kept. The stored result is read-only; entries are replaced whole, so
    concurrent callers at worst recompute.
    """

    def __init__(self, limit: int = 4_000_000):
        self.limit = limit
        self._entry: tuple | None = None

    def get(self, inputs: tuple[np.ndarray, ...]):
        entry = self._entry
        if entry is None or len(entry[0]) != len(inputs):
            return None
        for kept, given in zip(entry[0], inputs, strict=True):
            if kept.shape != np.shape(given) or not np.array_equal(kept, given):
                return None
        return entry[1]

    def clear(self) -> None:
        self._entry = None

    def put(self, inputs: tuple[np.ndarray, ...], result, size: int):
        if size <= self.limit:
            self._entry = (tuple(np.array(v, copy=True) for v in inputs), result)
        return result


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


# --------------------------------------------------------------------------------------------
# maximum likelihood machinery
# --------------------------------------------------------------------------------------------
@dataclass
class OptimResult:
    log_params: np.ndarray
    neg_log_likelihood: float
    converged: bool
    message: str
    n_iterations: int
    gradient: np.ndarray | None = None  # of the objective at log_params, when known


_LBFGSB_OPTIONS = {"ftol": 1e-14, "gtol": 1e-8, "maxcor": 20}


def _stationary(gradient, value) -> bool:
    """Gradient of the total <= 1e-6 x |total| (per customer ~1e-6): a stationary point."""
    gradient = np.asarray(gradient, dtype=float)
    return bool(np.all(np.isfinite(gradient))) and bool(
        np.max(np.abs(gradient)) <= 1e-6 * max(1.0, abs(float(value)))
    )


def minimize_negative_log_likelihood(
    objective, x0: np.ndarray, max_iter: int = 2000, preconditioner=None
):
    """Minimise ``objective(log_params) -> (value, gradient)`` with L-BFGS-B on log-parameters.

    Bounds on the log scale (-30, 30) keep the search away from overflow; an optimum on a bound
    is reported as not converged.

    ``preconditioner``: optional k x k matrix M. The search then runs over z with
    ``log_params = x0 + M z``; with M close to (Hessian)^(-1/2) at the optimum (e.g. from a
    fit on a subsample) the problem is well conditioned and L-BFGS-B needs a few iterations
    instead of dozens. If that search fails or leaves the bounds, the plain bounded search from
    ``x0`` runs instead.
    """
    x0 = np.asarray(x0, dtype=float)
    if preconditioner is not None:
        M = np.asarray(preconditioner, dtype=float)

        def z_objective(z):
            value, grad = objective(x0 + M @ z)
            return value, M.T @ np.asarray(grad, dtype=float)

        with np.errstate(all="ignore"):
            # in the whitened coordinates z the gradient measures the distance to the optimum
            # in standard errors, so |grad z| <= 1e-4 is far below statistical precision (and
            # spares the line searches that fight rounding noise once the optimum is reached)
            res = optimize.minimize(
                z_objective,
                np.zeros(len(x0)),
                jac=True,
                method="L-BFGS-B",
                options={"maxiter": max_iter, **_LBFGSB_OPTIONS, "gtol": 1e-4},
            )
        theta = x0 + M @ res.x
        if np.all(np.isfinite(theta)) and np.all(np.abs(theta) < 30.0) and np.isfinite(res.fun):
            gradient = np.linalg.solve(M.T, np.asarray(res.jac, dtype=float))
            if res.success or _stationary(gradient, res.fun):
                message = str(res.message) + " (preconditioned search)"
                return OptimResult(theta, float(res.fun), True, message, int(res.nit), gradient)
    bounds = [(-30.0, 30.0)] * len(x0)
    result = optimize.minimize(
        objective,
        np.asarray(x0, dtype=float),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": max_iter, **_LBFGSB_OPTIONS},
    )
    message = str(result.message)
    converged = bool(result.success) and bool(np.all(np.isfinite(result.x)))
    gradient = np.asarray(getattr(result, "jac", np.full(len(x0), np.inf)), dtype=float)
    if not result.success and np.all(np.isfinite(result.x)) and np.isfinite(result.fun):
        # L-BFGS-B reports "ABNORMAL" when the line search cannot improve a function that is
        # already flat to rounding error (common for sums over many customers); accept a
        # stationary point: gradient of the total <= 1e-6 x |total| (per customer ~1e-6)
        if _stationary(gradient, result.fun):
            converged = True
            message += "; accepted: the gradient vanishes to rounding error (a stationary point)"
    at_bound = np.isclose(np.abs(result.x), 30.0)
    if at_bound.any():
        converged = False
        message += "; a parameter reached its bound (exp(+-30)): the optimum is degenerate"
    return OptimResult(result.x, float(result.fun), converged, message, int(result.nit), gradient)


def numerical_hessian(
    gradient, x: np.ndarray, rel_step: float = 1e-5, gradient_at_x=None
) -> np.ndarray:
    """Central-difference Hessian of an analytic ``gradient`` function, symmetrised.

    With ``gradient_at_x`` (the gradient at ``x``, e.g. known from the optimiser) forward
    differences are used instead: k gradient evaluations instead of 2k, with a relative error
    of order ``rel_step`` (1e-5), immaterial for standard errors.
    """
    x = np.asarray(x, dtype=float)
    k = len(x)
    hessian = np.empty((k, k))
    g0 = None if gradient_at_x is None else np.asarray(gradient_at_x, dtype=float)
    if g0 is not None and not np.all(np.isfinite(g0)):
        g0 = None
    for j in range(k):
        h = rel_step * max(1.0, abs(x[j]))
        up, down = x.copy(), x.copy()
        up[j] += h
        if g0 is not None:
            hessian[:, j] = (gradient(up) - g0) / h
            continue
        down[j] -= h
        hessian[:, j] = (gradient(up) - gradient(down)) / (2 * h)
    return 0.5 * (hessian + hessian.T)


def _as_params_dict(draws: pd.DataFrame, names) -> dict[str, np.ndarray]:
    return {name: draws[name].to_numpy(dtype=float)[:, None] for name in names}


class BaseModel:
    """Estimator habits shared by all models: settings in ``__init__``, state ending in ``_``."""

    param_names: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[str] = "base"  # "purchase" or "spend"

    def _check_fitted(self) -> None:
        if getattr(self, "params_", None) is None:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call .fit(summary) first"
            )

    def _check_unit(self, summary: pd.DataFrame, what: str = "summary") -> None:
        units.require_same_unit(self.time_unit_, summary_time_unit(summary), what)

    def _to_model_time(self, t) -> float:
        """A horizon in the model's unit: numbers are taken as model units, strings converted."""
        return units.to_unit(t, self.time_unit_)

    # ---- draws -----------------------------------------------------------------------------
    def point_draws(self) -> pd.DataFrame:
        """The point estimate as a one-row draws table (MLE; posterior mean for Bayesian models)."""
        self._check_fitted()
        return self.params_.to_frame().T.reset_index(drop=True)

    def customer_params(
        self, summary: pd.DataFrame, draws: pd.DataFrame | None = None
    ) -> dict[str, np.ndarray]:
        """Parameter arrays of shape (n_draws, 1) or (n_draws, n_customers) for ``summary``.

        Models whose customers have different parameters (grouped models) override this.
        """
        self._check_fitted()
        draws = self.point_draws() if draws is None else draws
        return _as_params_dict(draws, self.param_names)

    def __repr__(self) -> str:
        if getattr(self, "params_", None) is None:
            return f"{type(self).__name__}(unfitted)"
        inner = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        return f"{type(self).__name__}({inner})"


class MaximumLikelihoodModel(BaseModel):
    """Fitting by maximum likelihood on log-parameters, with observed-information uncertainty.

    Subclasses provide ``_fit_data(summary, weights) -> (data_tuple, counts)`` (compressed) and
    ``_negative_log_likelihood(log_params, data, counts) -> (value, gradient)`` and
    ``_initial_log_params(data, counts)``.
    """

    def __init__(self, engine: str = "native"):
        self.engine = engine

    # ---- subclass hooks ----------------------------------------------------------------------
    def _fit_data(self, summary: pd.DataFrame, weights):
        raise NotImplementedError

    def _negative_log_likelihood(self, log_params, data, counts):
        raise NotImplementedError

    def _initial_log_params(self, data, counts) -> np.ndarray:
        raise NotImplementedError

    def _preconditioner(self, data, counts, x0):
        """Optional k x k matrix M for a preconditioned search ``log_params = x0 + M z``
        (see :func:`minimize_negative_log_likelihood`); None (default) for a plain search."""
        return None

    def _fit_lifetimes(self, summary: pd.DataFrame, weights) -> np.ndarray:
        """Fit with the ``lifetimes`` engine; return the parameters on the natural scale."""
        raise NotImplementedError(f"{type(self).__name__} has no lifetimes engine")

    # ---- fitting ---------------------------------------------------------------------------
    def _fit_mle(
        self, summary: pd.DataFrame, weights=None, require_unit: bool = True
    ) -> MaximumLikelihoodModel:
        if self.engine not in ("native", "lifetimes"):
            raise ValueError(f"engine must be 'native' or 'lifetimes', got {self.engine!r}")
        self.time_unit_ = summary_time_unit(summary)
        if self.time_unit_ is None and require_unit:
            raise TimeUnitError(
                "the summary has no time unit; build it with clvmodels.rfm_summary(..., "
                "time_unit='W') or set summary.attrs['time_unit'] (e.g. 'D', 'W', 'M')"
            )
        data, counts = self._fit_data(summary, weights)
        self._data_, self._counts_ = data, counts
        self.n_customers_ = float(counts.sum())

        def objective(log_params):
            return self._negative_log_likelihood(log_params, data, counts)

        if self.engine == "native":
            x0 = self._initial_log_params(data, counts)
            result = minimize_negative_log_likelihood(
                objective, x0, preconditioner=self._preconditioner(data, counts, x0)
            )
            # a second start from the first optimum polishes flat valleys (skipped when the
            # first run converged to a point where the gradient is negligible)
            small = (
                result.gradient is not None
                and np.all(np.isfinite(result.gradient))
                and (
                    np.max(np.abs(result.gradient))
                    <= 1e-7 * max(1.0, abs(result.neg_log_likelihood))
                )
            )
            if not (result.converged and small):
                polish = minimize_negative_log_likelihood(objective, result.log_params)
                if polish.neg_log_likelihood <= result.neg_log_likelihood:
                    result = polish
            log_params = result.log_params
            self.converged_ = result.converged
            self.optimizer_message_ = result.message
            value = result.neg_log_likelihood  # the objective at log_params, already known
            gradient_at_optimum = result.gradient
        else:
            natural = np.asarray(self._fit_lifetimes(summary, weights), dtype=float)
            log_params = np.log(natural)
            self.converged_ = bool(np.all(np.isfinite(log_params)))
            self.optimizer_message_ = "fitted by lifetimes"
            value, _ = objective(log_params)
            gradient_at_optimum = None
        self.log_likelihood_ = -float(value)
        self.params_ = pd.Series(np.exp(log_params), index=list(self.param_names), dtype=float)
        self._set_covariance(lambda lp: objective(lp)[1], log_params, gradient_at_optimum)
        if not self.converged_:
            warnings.warn(
                f"{type(self).__name__} fit did not converge: {self.optimizer_message_}. "
                "Check the data (enough repeat customers? right time unit?) and the estimates.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def _set_covariance(self, gradient, log_params: np.ndarray, gradient_at_x=None) -> None:
        hessian = numerical_hessian(gradient, log_params, gradient_at_x=gradient_at_x)
        names = list(self.param_names)
        try:
            eigenvalues = np.linalg.eigvalsh(hessian)
            if not np.all(eigenvalues > 0):
                raise np.linalg.LinAlgError("observed information is not positive definite")
            log_cov = np.linalg.inv(hessian)
        except np.linalg.LinAlgError as exc:
            warnings.warn(
                f"{type(self).__name__}: standard errors unavailable ({exc}); the likelihood is "
                "flat or the optimum is on a boundary. Asymptotic draws will be refused; use "
                "param_draws(method='bootstrap').",
                ConvergenceWarning,
                stacklevel=4,
            )
            log_cov = np.full((len(names), len(names)), np.nan)
        self.log_covariance_ = pd.DataFrame(log_cov, index=names, columns=names)
        jac = np.diag(np.exp(log_params))  # delta method: d theta / d log theta
        self.covariance_ = pd.DataFrame(jac @ log_cov @ jac, index=names, columns=names)
        self.standard_errors_ = pd.Series(np.sqrt(np.diag(self.covariance_)), index=names)

    # ---- reporting ---------------------------------------------------------------------------
    def summary(self, interval: float = 0.95) -> pd.DataFrame:
        """Estimates, standard errors and a log-normal (positive) confidence interval."""
        self._check_fitted()
        z = stats.norm.ppf(0.5 + interval / 2)
        log_se = np.sqrt(np.diag(self.log_covariance_.to_numpy()))
        est = self.params_.to_numpy()
        lo, hi = f"lower_{interval:.0%}", f"upper_{interval:.0%}"
        return pd.DataFrame(
            {
                "estimate": est,
                "se": self.standard_errors_.to_numpy(),
                lo: est * np.exp(-z * log_se),
                hi: est * np.exp(z * log_se),
            },
            index=pd.Index(self.param_names, name="parameter"),
        )

    # ---- draws -------------------------------------------------------------------------------
    def param_draws(self, n: int = 200, method: str = "asymptotic", seed=None) -> pd.DataFrame:
        """Parameter draws, a row per draw and a column per parameter.

        ``"asymptotic"``: log-parameters ~ Normal(MLE, inverse observed information), i.e. the
        asymptotic normal on the log scale (keeps every draw positive). ``"bootstrap"``:
        resample customers with replacement and refit (on compressed data a resample is a
        multinomial draw of the row counts, so each refit costs one fit on the distinct rows).
        """
        self._check_fitted()
        if int(n) < 1:
            raise ValueError(f"n must be a positive number of draws, got {n!r}")
        rng = np.random.default_rng(seed)
        names = list(self.param_names)
        log_mle = np.log(self.params_.to_numpy())
        if method == "asymptotic":
            cov = self.log_covariance_.to_numpy()
            if not np.all(np.isfinite(cov)):
                raise ValueError(
                    "asymptotic draws need a finite covariance, and this fit has none; "
                    "use param_draws(method='bootstrap')"
                )
            samples = rng.multivariate_normal(log_mle, cov, size=int(n), method="eigh")
            return pd.DataFrame(np.exp(samples), columns=names)
        if method == "bootstrap":
            data, counts = self._data_, self._counts_
            total = int(round(counts.sum()))
            probabilities = counts / counts.sum()
            rows = []
            for _ in range(int(n)):
                resampled = rng.multinomial(total, probabilities).astype(float)
                keep = resampled > 0
                sub_data = tuple(np.asarray(col)[keep] for col in data)

                def objective(lp, d=sub_data, c=resampled[keep]):
                    return self._negative_log_likelihood(lp, d, c)

                fit = minimize_negative_log_likelihood(objective, log_mle)
                rows.append(np.exp(fit.log_params))
            return pd.DataFrame(np.array(rows), columns=names)
        raise ValueError(f"method must be 'asymptotic' or 'bootstrap', got {method!r}")

    # ---- persistence (JSON, no pickle) ---------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Settings and fitted state as plain JSON-able values."""
        self._check_fitted()
        return {
            "class": type(self).__name__,
            "settings": {"engine": self.engine},
            "time_unit": self.time_unit_,
            "params": {k: float(v) for k, v in self.params_.items()},
            "log_covariance": self.log_covariance_.to_numpy().tolist(),
            "log_likelihood": self.log_likelihood_,
            "converged": bool(self.converged_),
            "optimizer_message": self.optimizer_message_,
            "n_customers": self.n_customers_,
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]):
        """Rebuild a fitted model from :meth:`to_dict` output (bootstrap needs a refit)."""
        if payload.get("class") != cls.__name__:
            raise ValueError(f"payload is a {payload.get('class')!r}, not a {cls.__name__}")
        model = cls(**payload.get("settings", {}))
        names = list(cls.param_names)
        model.time_unit_ = payload["time_unit"]
        model.params_ = pd.Series([payload["params"][k] for k in names], index=names, dtype=float)
        log_cov = np.array(payload["log_covariance"], dtype=float)
        model.log_covariance_ = pd.DataFrame(log_cov, index=names, columns=names)
        jac = np.diag(model.params_.to_numpy())
        model.covariance_ = pd.DataFrame(jac @ log_cov @ jac, index=names, columns=names)
        model.standard_errors_ = pd.Series(np.sqrt(np.diag(model.covariance_)), index=names)
        model.log_likelihood_ = payload["log_likelihood"]
        model.converged_ = payload["converged"]
        model.optimizer_message_ = payload["optimizer_message"]
        model.n_customers_ = payload["n_customers"]
        model._data_, model._counts_ = None, None
        return model

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


class PurchaseModel(MaximumLikelihoodModel):
    """Common surface of BG/NBD, MBG/NBD and Pareto/NBD (see the module docstring)."""

    kind: ClassVar[str] = "purchase"

    #: the model's module of pure functions; the ``_math_*`` protocol below calls its
    #: ``conditional_expected_purchases``, ``probability_alive``,
    #: ``expected_purchases_new_customer``, ``conditional_purchase_probability``,
    #: ``sample_latent`` and ``sample_future_purchases`` with the parameters in
    #: ``param_names`` order followed by the customer arrays. Models may add the optional
    #: sparse sampler ``_math_sample_future_purchase_periods`` (see clvmodels.valuation).
    _math: ClassVar[ModuleType]

    @classmethod
    def _unpack(cls, params) -> tuple:
        return tuple(params[name] for name in cls.param_names)

    @classmethod
    def _math_expected_purchases(cls, params, x, t_x, T, t):
        return cls._math.conditional_expected_purchases(*cls._unpack(params), x, t_x, T, t)

    @classmethod
    def _math_probability_alive(cls, params, x, t_x, T):
        return cls._math.probability_alive(*cls._unpack(params), x, t_x, T)

    @classmethod
    def _math_expected_purchases_new_customer(cls, params, t):
        return cls._math.expected_purchases_new_customer(*cls._unpack(params), t)

    @classmethod
    def _math_purchase_probability(cls, params, x, t_x, T, t, k):
        return cls._math.conditional_purchase_probability(*cls._unpack(params), x, t_x, T, t, k)

    @classmethod
    def _math_sample_latent(cls, params, x, t_x, T, rng):
        return cls._math.sample_latent(*cls._unpack(params), x, t_x, T, rng)

    @classmethod
    def _math_sample_future_purchases(cls, params, x, t_x, T, t_grid, rng):
        return cls._math.sample_future_purchases(*cls._unpack(params), x, t_x, T, t_grid, rng)

    def fit(self, summary: pd.DataFrame, weights=None):
        """Fit by maximum likelihood on the distinct (frequency, recency, T) rows."""
        validate_summary(summary)
        return self._fit_mle(summary, weights)

    def _fit_data(self, summary, weights):
        x, t_x, T = summary_arrays(summary)
        w = check_weights(weights, len(summary))
        x_u, t_x_u, T_u, counts = compress_rows(x, t_x, T, weights=w)
        keep = counts > 0
        return (x_u[keep], t_x_u[keep], T_u[keep]), counts[keep]

    # ---- predictions at the point estimate --------------------------------------------------
    def _prepare(self, summary: pd.DataFrame):
        self._check_fitted()
        validate_summary(summary)
        self._check_unit(summary)
        return self.customer_params(summary), *summary_arrays(summary)

    def expected_purchases(self, summary: pd.DataFrame, t) -> pd.Series:
        """E[X(T, T+t] | frequency, recency, T]: expected purchases in the next ``t``.

        ``t`` is a number in the model's unit or a calendar string such as "39W".
        """
        params, x, t_x, T = self._prepare(summary)
        values = self._math_expected_purchases(params, x, t_x, T, self._to_model_time(t))
        return pd.Series(np.asarray(values)[0], index=summary.index, name="expected_purchases")

    def probability_alive(self, summary: pd.DataFrame) -> pd.Series:
        """P(the customer is still active at T | frequency, recency, T)."""
        params, x, t_x, T = self._prepare(summary)
        values = self._math_probability_alive(params, x, t_x, T)
        return pd.Series(np.asarray(values)[0], index=summary.index, name="probability_alive")

    def purchase_probability(self, summary: pd.DataFrame, t, k: int) -> pd.Series:
        """P(exactly ``k`` purchases in (T, T+t] | history)."""
        params, x, t_x, T = self._prepare(summary)
        values = self._math_purchase_probability(params, x, t_x, T, self._to_model_time(t), k)
        return pd.Series(np.asarray(values)[0], index=summary.index, name=f"p_{k}_purchases")

    def expected_purchases_new_customer(self, t) -> float | np.ndarray:
        """E[X(t)]: expected purchases of a newly acquired customer in their first ``t``."""
        self._check_fitted()
        params = self.customer_params(pd.DataFrame(index=[0]))
        t_model = (
            np.asarray([self._to_model_time(v) for v in t], dtype=float)
            if np.ndim(t)
            else self._to_model_time(t)
        )
        values = np.asarray(self._math_expected_purchases_new_customer(params, t_model))[0]
        return values if np.ndim(t) else float(np.ravel(values)[0])


class SpendModel(MaximumLikelihoodModel):
    """Common surface of spend models (Gamma-Gamma)."""

    kind: ClassVar[str] = "spend"

    def _prepare(self, summary: pd.DataFrame):
        self._check_fitted()
        validate_summary(summary, monetary=True)
        x = summary["frequency"].to_numpy(dtype=float)
        m = summary["monetary_value"].to_numpy(dtype=float)
        return self.customer_params(summary), x, m

    def expected_spend(self, summary: pd.DataFrame) -> pd.Series:
        """Conditional expected spend per transaction; population mean for non-repeaters."""
        params, x, m = self._prepare(summary)
        values = self._math_expected_spend(params, x, m)
        return pd.Series(np.asarray(values)[0], index=summary.index, name="expected_spend")
