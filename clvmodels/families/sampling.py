"""Numerical building blocks shared by several families.

* evaluation once per distinct value (``unique_inverse``, ``per_frequency``, ``distinct_pairs``):
  functions of the frequency alone, or of (frequency, T), evaluated once per distinct value and
  gathered back, which at daily resolution turns millions of evaluations into thousands;
* exact samplers of future purchases in periods (``allocate_to_periods``,
  ``gamma_poisson_periods``, ``truncated_poisson_periods``) and the sparse/dense conversions
  (``take_flat``, ``cumulative_counts``) that keep the valuation engine from building
  draws x customers x periods arrays.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


# --------------------------------------------------------------------------------------------
# helpers shared by BG/NBD and MBG/NBD
# --------------------------------------------------------------------------------------------
def unique_inverse(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique values, inverse index) of a 1-d array; O(n) when ``x`` is already sorted.

    Fitting data compressed by :func:`clvmodels.models.base.compress_rows` is sorted by
    frequency, so functions of ``x`` alone (``gammaln(r + x)`` ...) are evaluated once per
    distinct frequency instead of once per row.
    """
    x = np.asarray(x, dtype=float)
    if x.size and np.all(x[1:] >= x[:-1]):
        starts = np.empty(x.size, dtype=bool)
        starts[0] = True
        np.not_equal(x[1:], x[:-1], out=starts[1:])
        return x[starts], np.cumsum(starts) - 1
    values, inverse = np.unique(x, return_inverse=True)
    return values, inverse.ravel()


def distinct_pairs(x: np.ndarray, T: np.ndarray):
    """Distinct (x, T) pairs and each customer's pair code: ``(xd, Td, codes)`` with
    ``xd[codes] == x`` and ``Td[codes] == T``. Whole-number data (frequency always, T at daily
    resolution) use an O(n) presence table; otherwise hashing (pandas.factorize)."""
    n = len(x)
    x_top = float(x.max()) if n else 0.0
    T_top = float(T.max()) if n else 0.0
    small = (x_top + 1) * (T_top + 1) <= 8 * n + 4096
    Ti = whole_numbers(T, T_top, n) if small else None
    xi = whole_numbers(x, x_top, n) if Ti is not None else None
    if xi is not None:
        width = int(T_top) + 1
        key = xi * width + Ti
        present = np.zeros((int(x_top) + 1) * width, dtype=bool)
        present[key] = True
        keys = np.flatnonzero(present)
        lookup = np.cumsum(present) - 1
        return (keys // width).astype(float), (keys % width).astype(float), lookup[key]
    x_codes, x_values = pd.factorize(x)
    T_codes, T_values = pd.factorize(T)
    pair_codes, pairs = pd.factorize(x_codes.astype(np.int64) * len(T_values) + T_codes)
    return x_values[pairs // len(T_values)], T_values[pairs % len(T_values)], pair_codes


def check_grid(t_grid) -> np.ndarray:
    """``t_grid`` as a 1-d float array; ValueError unless non-negative and increasing."""
    grid = np.asarray(t_grid, dtype=float).ravel()
    if grid.size and (np.any(np.diff(grid) < 0) or grid[0] < 0):
        raise ValueError("t_grid must be non-negative and increasing")
    return grid


# purchases per pair up to which they are placed one by one (uniform times), above which the
# per-period counts are drawn as one multinomial (cost independent of the count)
ONE_BY_ONE = 48


def allocate_to_periods(n, span, t_grid, rng: np.random.Generator, start=0.0) -> np.ndarray:
    """Per-period counts of ``n`` purchases at independent uniform times on ``[start, span]``.

    Given its count ``N = n`` on ``[start, span]``, the event times of a Poisson process are
    independent and uniform there, so the counts in the periods ``(t_{k-1}, t_k]`` of
    ``t_grid`` (``t_0 = 0``) are ``Multinomial(n, |(t_{k-1}, t_k] ∩ [start, span]| /
    (span - start))``. Small counts are placed one uniform time at a time (for equal periods
    covering ``[0, span]``, a uniform period index), large ones drawn as one multinomial; both
    are exact. ``n``: 1-d integer array; ``span``, ``start``: scalars or 1-d arrays with
    ``0 <= start < span <= t_grid[-1]`` wherever ``n > 0``. Returns int64 of shape
    ``(len(n), len(t_grid))``.
    """
    n = np.asarray(n, dtype=np.int64).ravel()
    grid = np.asarray(t_grid, dtype=float).ravel()
    m, K = n.size, grid.size
    if m == 0 or K == 0:
        return np.zeros((m, K), dtype=np.int64)
    t_max = float(grid[-1])
    whole = np.ndim(span) == 0 and float(span) == t_max and np.ndim(start) == 0 and start == 0
    span = np.broadcast_to(np.asarray(span, dtype=float), (m,))
    start = np.broadcast_to(np.asarray(start, dtype=float), (m,))
    steps = np.diff(grid, prepend=0.0)
    equal = bool(np.all(np.abs(steps - t_max / K) <= 1e-12 * t_max))
    few = np.flatnonzero((n > 0) & (n <= ONE_BY_ONE))
    if few.size:
        owner = np.repeat(few * K, n[few])
        if whole and equal:
            period = rng.integers(0, K, owner.size)
        else:
            times = rng.random(owner.size)
            path = owner // K
            times *= (span - start)[path]
            times += start[path]
            if equal:
                times *= K / t_max
                period = times.astype(np.int64)
            else:
                period = np.searchsorted(grid, times, side="right")
            # rounding can put a time at exactly t_max: it belongs to the last period of
            # positive length (the first one ending at t_max), never to an empty one
            np.minimum(period, int(np.searchsorted(grid, t_max, side="left")), out=period)
        owner += period
        out = np.bincount(owner, minlength=m * K).reshape(m, K)
    else:
        out = np.zeros((m, K), dtype=np.int64)
    many = np.flatnonzero(n > ONE_BY_ONE)
    if many.size:
        if whole:
            out[many] = rng.multinomial(n[many], steps / t_max)
        else:
            reach = np.clip(grid[None, :], start[many, None], span[many, None])
            share = np.diff(reach, axis=1, prepend=start[many, None])
            share /= share.sum(axis=1, keepdims=True)
            out[many] = rng.multinomial(n[many], share)
    return out


def geometric_at_most(p, cap, rng: np.random.Generator) -> np.ndarray:
    """``min(K, cap)`` for ``K ~ Geometric(p)`` on {1, 2, ...} (inverse CDF in floats, so tiny
    ``p`` cannot overflow); float array."""
    u = rng.random(np.shape(p))
    # p -> 0 (or subnormal p) gives K -> inf, i.e. the cap: the overflow is the right limit
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        k = np.floor(np.log1p(-u) / np.log1p(-np.clip(p, 0.0, 1.0))) + 1.0
    return np.minimum(np.where(np.isnan(k), cap, k), cap)


def take_flat(value, shape, flat) -> np.ndarray:
    """``broadcast_to(value, shape).ravel()[flat]`` without materialising the broadcast (the
    parameters of the ``(n_draws, n_customers)`` protocol are often ``(n_draws, 1)``)."""
    v = np.asarray(value, dtype=float)
    shape = tuple(shape)
    if v.ndim == 0:
        return np.full(len(flat), float(v))
    if v.shape == shape:
        return v.reshape(-1)[flat]
    v = v.reshape((1,) * (len(shape) - v.ndim) + v.shape)
    if len(shape) == 2 and v.shape == (shape[0], 1):
        return v[:, 0][flat // shape[1]]
    if len(shape) == 2 and v.shape == (1, shape[1]):
        return v[0][flat % shape[1]]
    return np.broadcast_to(v, shape)[np.unravel_index(flat, shape)]


def gamma_poisson_periods(shape_, rate, span, t_grid, rng: np.random.Generator):
    """Per-period counts over ``t_grid`` of a Poisson process on ``[0, span]`` whose rate is
    ``lambda ~ Gamma(shape_, rate)`` (1-d arrays over paths; ``span`` scalar or array).

    Exact construction in work proportional to the paths that buy: marginally over lambda the
    first purchase time is Lomax, ``P(E1 > e) = (rate / (rate + e))^shape_``, so
    ``E1 = rate expm1(-log(U) / shape_)`` and a path buys nothing when ``E1 > span``. Given the
    first purchase at ``E1 = e`` (and none before), ``lambda ~ Gamma(shape_ + 1, rate + e)``
    and the later purchases are ``Poisson(lambda (span - e))``, at independent uniform times
    on ``[e, span]`` (:func:`allocate_to_periods`). Returns ``(buyers, per_period, totals)``:
    the indices of the paths with a purchase, their int64 counts ``(len(buyers), len(t_grid))``
    and their totals.
    """
    shape_ = np.asarray(shape_, dtype=float)
    rate = np.asarray(rate, dtype=float)
    grid = np.asarray(t_grid, dtype=float)
    u = rng.random(shape_.shape)
    with np.errstate(divide="ignore", over="ignore"):
        first = np.log(u)
        first /= -shape_
        np.expm1(first, out=first)
        first *= rate
    buyers = np.flatnonzero(first < span)
    first = first[buyers]
    span_b = np.broadcast_to(np.asarray(span, dtype=float), shape_.shape)[buyers]
    lam = rng.gamma(shape_[buyers] + 1.0)
    lam /= rate[buyers] + first
    more = rng.poisson(lam * (span_b - first))
    per = allocate_to_periods(more, span_b, grid, rng, start=first)
    # the first purchase itself: in the period (t_{k-1}, t_k] that contains it
    period = np.minimum(np.searchsorted(grid, first, side="left"), grid.size - 1)
    per[np.arange(buyers.size), period] += 1
    return buyers, per, more + 1


def truncated_poisson_periods(lam_shape, lam_rate, p_shape, t_grid, rng: np.random.Generator):
    """Per-period purchase counts over ``t_grid`` of active customers (1-d arrays over paths):
    a Poisson(``lambda``) process, ``lambda ~ Gamma(lam_shape, lam_rate)``, stopped after
    ``K ~ Geometric(p)`` purchases, with ``p ~ Beta(*p_shape)`` drawn only where it matters.

    Exact construction: the purchases of the untruncated process over the whole grid from
    :func:`gamma_poisson_periods`; the cumulative count at ``t_k`` is ``min(N(t_k), K)`` (the
    first ``K`` purchases in time order). ``p`` and ``K`` are drawn only for paths with
    ``N >= 2`` (with ``N <= 1`` the truncation cannot bind since ``K >= 1``). Returns
    ``(buyers, per_period)``: the indices with ``N > 0`` and their int64 per-period counts,
    shape ``(len(buyers), len(t_grid))``.
    """
    t_max = float(t_grid[-1])
    buyers, per, n = gamma_poisson_periods(lam_shape, lam_rate, t_max, t_grid, rng)
    several = np.flatnonzero(n >= 2)
    if several.size:
        a_, b_ = (np.asarray(v, dtype=float)[buyers[several]] for v in p_shape)
        # Beta(a_, b_) with b_ -> 0+ is the point mass at 1, which numpy returns for any tiny
        # positive b_; a b_ that underflowed to 0 is put back at the smallest positive double
        tiny = np.finfo(float).smallest_subnormal
        p = rng.beta(np.maximum(a_, tiny), np.maximum(b_, tiny))
        k = geometric_at_most(p, n[several].astype(float), rng).astype(np.int64)
        cut = k < n[several]  # only these are truncated
        rows = several[cut]
        if rows.size:
            cum = np.minimum(np.cumsum(per[rows], axis=1), k[cut][:, None])
            per[rows] = np.diff(cum, axis=1, prepend=0)
    return buyers, per


def cumulative_counts(shape, pairs, per_period) -> np.ndarray:
    """Dense cumulative counts (``shape + (n_periods,)``, int64) from the sparse form
    ``(shape, pairs, per_period)`` of the ``*_periods`` samplers: ``pairs`` flat indices into
    ``shape`` of the paths with purchases; all other paths buy nothing."""
    per_period = np.asarray(per_period)
    shape = tuple(shape)
    out = np.zeros((int(np.prod(shape)), per_period.shape[-1]), dtype=np.int64)
    out[pairs] = np.cumsum(per_period, axis=-1)
    return out.reshape(shape + per_period.shape[-1:])


def per_frequency(fn, a, b, x):
    """``fn(x)`` for a function of the frequency and the shared parameters ``a``, ``b``: when those
    are shared by all customers, evaluated once per value 0..max(x) and looked up."""
    shared = all(np.ndim(v) == 0 or np.shape(v)[-1] == 1 for v in (a, b))
    if shared and np.ndim(x) == 1 and len(x) >= 1024:
        top = float(x.max())
        index = whole_numbers(x, top, len(x))
        if index is not None:
            table = fn(np.arange(int(top) + 1, dtype=float))
            return np.take(table, index, axis=-1)
    return fn(x)


def whole_numbers(values: np.ndarray, top: float, n: int):
    """``values`` as integer indices when they are all whole numbers in [0, 4n], else None."""
    if not (0 <= top <= 4 * n + 1024):
        return None
    index = values.astype(np.intp)
    if index.min(initial=0) < 0 or not np.array_equal(index, values):
        return None
    return index
