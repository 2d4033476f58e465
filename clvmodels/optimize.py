"""Numerics of maximum-likelihood fitting, shared by every family and estimator.

* :func:`compress_rows`: the distinct rows of the fitting columns with their multiplicities;
* :func:`minimize_negative_log_likelihood`: L-BFGS-B on log-parameters (optionally
  preconditioned), with honest convergence reporting;
* :func:`numerical_hessian`: the observed information from an analytic gradient;
* :func:`warm_start` and :func:`subset_preconditioner`: for large data, a fit on a random subset
  of distinct rows gives the full fit its start and its preconditioner.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize


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


@dataclass
class OptimResult:
    log_params: np.ndarray
    neg_log_likelihood: float
    converged: bool
    message: str
    n_iterations: int
    gradient: np.ndarray | None = None  # of the objective at log_params, when known


_LBFGSB_OPTIONS = {"ftol": 1e-14, "gtol": 1e-8, "maxcor": 20}


def negligible_gradient(value, gradient, relative: float) -> bool:
    """Whether ``gradient`` is finite and at most ``relative`` x max(1, |value|) in every
    component (``value``: the objective, a total over customers)."""
    if gradient is None:
        return False
    gradient = np.asarray(gradient, dtype=float)
    return bool(np.all(np.isfinite(gradient))) and float(
        np.max(np.abs(gradient), initial=0.0)
    ) <= relative * max(1.0, abs(float(value)))


def _stationary(gradient, value) -> bool:
    """Gradient of the total <= 1e-6 x |total| (per customer ~1e-6): a stationary point."""
    return negligible_gradient(value, gradient, 1e-6)


def small_gradient(value, gradient) -> bool:
    """Whether an optimum's gradient is negligible: at most 1e-7 x max(1, |objective|) (per
    customer about 1e-10 on apparel), far below what moves an estimate by a fraction of its
    SE."""
    return negligible_gradient(value, gradient, 1e-7)


def stationary_to_rounding(value, gradient) -> bool:
    """A ``stop`` for :func:`minimize_negative_log_likelihood`: a gradient of at most 1e-9 x
    max(1, |objective|), within a few times the rounding error of the sum over customers (on
    apparel the gradient cannot get below ~3e-6 of a total of 5821), where L-BFGS-B's own
    tolerances would run another dozen line searches that only fight that error."""
    return negligible_gradient(value, gradient, 1e-9)


class _StationaryPoint(Exception):
    """Raised inside the search to end it at an evaluated point that ``stop`` accepts."""

    def __init__(self, x, value, gradient, evaluations):
        super().__init__()
        self.x, self.value, self.gradient, self.evaluations = x, value, gradient, evaluations


def minimize_negative_log_likelihood(
    objective, x0: np.ndarray, max_iter: int = 2000, preconditioner=None, stop=None
):
    """Minimise ``objective(log_params) -> (value, gradient)`` with L-BFGS-B on log-parameters.

    Bounds on the log scale (-30, 30) keep the search away from overflow; an optimum on a bound
    is reported as not converged.

    ``stop``: optional ``stop(value, gradient) -> bool``. The search ends, converged, at the
    first evaluated point it accepts whose value is the lowest so far (e.g. a gradient far
    below statistical precision), instead of running on until L-BFGS-B's own tolerances
    (which on a sum over many customers often means a dozen line searches that only fight
    rounding error).

    ``preconditioner``: optional k x k matrix M. The search then runs over z with
    ``log_params = x0 + M z``; with M close to (Hessian)^(-1/2) at the optimum (e.g. from a
    fit on a subsample) the problem is well conditioned and L-BFGS-B needs a few iterations
    instead of dozens. If that search fails or leaves the bounds, the plain bounded search from
    ``x0`` runs instead.
    """
    x0 = np.asarray(x0, dtype=float)
    if stop is not None:
        try:
            return minimize_negative_log_likelihood(
                _stopping(objective, stop), x0, max_iter, preconditioner
            )
        except _StationaryPoint as point:
            message = "stopped at a point where the gradient is negligible"
            at_bound = bool(np.any(np.isclose(np.abs(point.x), 30.0)))
            if at_bound:
                message += "; a parameter reached its bound (exp(+-30)): the optimum is degenerate"
            return OptimResult(
                point.x, point.value, not at_bound, message, point.evaluations, point.gradient
            )
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


def weighted_sum(weights, values) -> float:
    """``sum(weights * values)`` as a float."""
    # einsum, not BLAS ddot: on a busy machine OpenBLAS threads make dot products 20x slower
    return float(np.einsum("i,i->", weights, values))


def warm_start(family, rows, guess: np.ndarray, max_rows: int = 20_000, seed: int = 0):
    """Starting log-parameters for the full fit: ``guess``, refined, for large data, by a fit on
    a random subset of ``max_rows`` distinct rows (with their counts, so the subset's likelihood
    estimates the full one), which leaves the full-data optimiser only a few iterations."""
    if rows.n_rows <= 2 * max_rows:
        return guess
    sub = family.subset_rows(rows, max_rows, seed)
    result = minimize_negative_log_likelihood(
        lambda lp: family.negative_log_likelihood(lp, sub), guess
    )
    return result.log_params if np.all(np.isfinite(result.log_params)) else guess


def _stopping(objective, stop):
    """``objective`` that raises :class:`_StationaryPoint` at the first evaluated point with
    the lowest value so far that ``stop(value, gradient)`` accepts."""
    lowest, evaluations = np.inf, 0

    def watched(x):
        nonlocal lowest, evaluations
        value, gradient = objective(x)
        evaluations += 1
        if np.isfinite(value) and value <= lowest:
            lowest = value
            gradient = np.asarray(gradient, dtype=float)
            if stop(value, gradient):
                raise _StationaryPoint(
                    np.array(x, dtype=float), float(value), gradient, evaluations
                )
        return value, gradient

    return watched


def subset_preconditioner(family, rows, x0, max_rows: int = 20_000, seed: int = 0):
    """``M = L^-T`` with ``L L^T`` the observed information at ``x0`` estimated on a random
    subset of distinct rows (scaled to the full count), for the preconditioned search of
    :func:`minimize_negative_log_likelihood`; None for small data (which fits quickly anyway) or
    when the estimate is not positive definite."""
    if rows.n_rows <= 2 * max_rows or not np.all(np.isfinite(x0)):
        return None
    sub = family.subset_rows(rows, max_rows, seed)

    def gradient(lp):
        return family.negative_log_likelihood(lp, sub)[1]

    hessian = numerical_hessian(gradient, x0) * (rows.counts.sum() / sub.counts.sum())
    try:
        lower = np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError:
        return None
    return np.linalg.inv(lower).T


@functools.cache
def blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, built once (inspecting the loaded
    libraries costs ~2 ms, too much to repeat around a 20 ms fit)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def single_threaded_blas():
    """A context in which BLAS runs on one thread. The fits' matrix products are small and
    interleaved with single-threaded work; OpenBLAS's own threads only spin-wait beside them,
    doubling the CPU time of a fit and slowing it down (apparel Pareto/NBD with covariates:
    28 ms wall / 54 ms CPU with two BLAS threads, 22 ms / 22 ms with one)."""
    return blas_controller().limit(limits=1, user_api="blas")
