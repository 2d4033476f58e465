"""Calibration of predictive distributions of discrete (or atom-carrying) outcomes: the PIT.

The one home of the probability integral transform used by valuation checks and by holdout
evaluation (:mod:`clvmodels.evaluation` re-exports :func:`pit_interval_coverage` and
:func:`empirical_cdf_bounds`).

A central interval of a discrete predictive distribution covers more than its nominal level,
so naive "is y inside [lower, upper]" rates are biased upwards. With ``F`` the predictive CDF
and ``y`` the observation, the randomised PIT (Czado, Gneiting & Held 2009, "Predictive model
assessment for count data", Biometrics 65(4), eq. 2) is uniform on ``[F(y-), F(y)]``; the
probability that it falls in ``[(1 - L) / 2, (1 + L) / 2]`` is the customer's contribution to
the coverage of the level-``L`` central interval, and the mean over customers of a calibrated
model equals ``L`` exactly.
"""

from __future__ import annotations

import numpy as np

from clvmodels.errors import InputError
from clvmodels.valuation.spec import quantile_levels

__all__ = [
    "pit_interval_coverage",
    "empirical_cdf_bounds",
    "pit_values",
    "interval_coverage",
]


def pit_interval_coverage(cdf_below, cdf_at, level: float) -> np.ndarray:
    """Per-customer probability that the central ``level`` interval covers the observation.

    ``cdf_below`` = ``F(y-)`` = P(Y < y) and ``cdf_at`` = ``F(y)`` = P(Y <= y) under the
    predictive distribution. The randomised PIT is uniform on ``[F(y-), F(y)]`` (a point when
    ``F`` is continuous at ``y``); the returned value is the probability that it lies in
    ``[(1 - level) / 2, (1 + level) / 2]`` (Czado, Gneiting & Held 2009, Biometrics 65, eq. 2).
    The mean over customers of a calibrated model equals ``level``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    lo_f = np.asarray(cdf_below, dtype=float)
    hi_f = np.asarray(cdf_at, dtype=float)
    if lo_f.shape != hi_f.shape:
        raise InputError("cdf_below and cdf_at must have the same shape")
    if (hi_f < lo_f - 1e-12).any():
        raise InputError("cdf_at must be >= cdf_below for every customer")
    lo, hi = (1 - level) / 2, (1 + level) / 2
    width = hi_f - lo_f
    overlap = np.clip(np.minimum(hi_f, hi) - np.maximum(lo_f, lo), 0.0, None)
    point = width <= 1e-12
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(point, ((hi_f >= lo) & (hi_f <= hi)).astype(float), overlap / width)
    return out


def empirical_cdf_bounds(samples: np.ndarray, actual) -> tuple[np.ndarray, np.ndarray]:
    """``(P(Y < y), P(Y <= y))`` per customer from predictive samples of shape
    ``(n_samples, n_customers)``."""
    s = np.asarray(samples, dtype=float)
    y = np.asarray(actual, dtype=float)[None, :]
    return (s < y).mean(axis=0), (s <= y).mean(axis=0)


def _draws_matrix(draws) -> np.ndarray:
    """(n_draws, n_customers) float array of an array or a DataArray with a ``draw`` dim."""
    if hasattr(draws, "dims") and "draw" in draws.dims:
        draws = draws.transpose("draw", ...)
    return np.asarray(getattr(draws, "values", draws), dtype=float)


def rank_counts(draws, observed) -> tuple[np.ndarray, np.ndarray, int]:
    """(number of draws below, number equal, number of draws S) per customer."""
    arr = _draws_matrix(draws)
    y = np.asarray(observed, dtype=float)
    if arr.ndim != 2 or y.ndim != 1 or arr.shape[1] != y.shape[0]:
        raise InputError(
            f"draws must have shape (n_draws, n_customers) matching observed ({y.shape}), "
            f"got {arr.shape}"
        )
    if not np.all(np.isfinite(y)):
        raise InputError("observed values must be finite")
    below = (arr < y[None, :]).sum(axis=0)
    equal = (arr == y[None, :]).sum(axis=0)
    return below, equal, arr.shape[0]


def pit_values(draws, observed, method: str = "randomized", random_seed=None) -> np.ndarray:
    """Probability integral transform of observed values under per-customer predictive draws.

    ``draws``: array (n_draws, n_customers) (or an xarray DataArray with dims draw,
    customer_id); ``observed``: (n_customers,). With ``S`` draws, ``L_i`` of them below the
    observed ``y_i`` and ``E_i`` equal to it, treat ``y_i`` as one more exchangeable draw:

    * ``"randomized"``: ``u_i = (L_i + V_i (E_i + 1)) / (S + 1)``, ``V_i ~ U(0, 1)`` -- the
      randomised PIT for discrete distributions (Czado, Gneiting & Held 2009, Biometrics 65,
      eq. 2, with the empirical predictive CDF). Under a calibrated model it is exactly uniform
      on (0, 1), even with ties such as the atom at 0 purchases;
    * ``"mid-p"``: the same with ``V_i = 1/2`` (deterministic; uniform only approximately).
    """
    below, equal, S = rank_counts(draws, observed)
    n = below.shape[0]
    if method == "randomized":
        v = np.random.default_rng(random_seed).uniform(size=n)
    elif method == "mid-p":
        v = np.full(n, 0.5)
    else:
        raise InputError(f"method must be 'randomized' or 'mid-p', got {method!r}")
    return (below + v * (equal + 1)) / (S + 1)


def interval_coverage(
    draws, observed, interval: float = 0.9, method: str = "randomized", random_seed=None
) -> float:
    """Share of customers whose observed value falls in the central ``interval`` of their
    predictive distribution.

    ``draws``: (n_draws, n_customers) array or DataArray (dims draw, customer_id), e.g. from
    ``predict_purchases(..., return_draws=True)``; ``observed``: (n_customers,).

    * ``"randomized"`` (default): the share of randomised PIT values (:func:`pit_values`) in
      ``[(1 - interval)/2, (1 + interval)/2]``, averaged exactly over the randomisation: the
      PIT of customer i is uniform on ``[L_i, L_i + E_i + 1] / (S + 1)``, so its probability of
      falling in the central band is :func:`pit_interval_coverage` of these bounds. Same
      expectation as one randomised draw, no extra noise, and equal to ``interval`` for a
      calibrated model even for discrete counts with an atom at 0;
    * ``"randomized-draw"``: one randomised PIT per customer (seeded by ``random_seed``);
    * ``"mid-p"``: share of mid-p PIT values (``V = 1/2``) in the band;
    * ``"naive"``: share of observed values inside the ``inverted_cdf`` quantile interval of the
      draws (what :func:`clvmodels.predict_purchases` reports) -- biased upwards for discrete
      outcomes (an interval [0, 2] "contains" nearly every zero when P(0) is large).
    """
    lo_q, hi_q = quantile_levels(interval)
    if method == "naive":
        rank_counts(draws, observed)  # validates shapes
        y = np.asarray(observed, dtype=float)
        lo, hi = np.quantile(_draws_matrix(draws), [lo_q, hi_q], axis=0, method="inverted_cdf")
        return float(np.mean((y >= lo) & (y <= hi)))
    if method == "randomized":
        below, equal, S = rank_counts(draws, observed)
        left, right = below / (S + 1), (below + equal + 1) / (S + 1)
        return float(np.mean(pit_interval_coverage(left, right, float(interval))))
    pit_method = "randomized" if method == "randomized-draw" else method
    u = pit_values(draws, observed, method=pit_method, random_seed=random_seed)
    return float(np.mean((u >= lo_q) & (u <= hi_q)))
