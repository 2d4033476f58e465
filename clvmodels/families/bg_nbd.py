"""BG/NBD: the beta-geometric / negative binomial distribution purchase model.

Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "Counting Your Customers the Easy Way:
An Alternative to the Pareto/NBD Model", *Marketing Science* 24(2), 275-284 (below "FHL 2005");
and the companion notes by Fader & Hardie: "Implementing the BG/NBD Model for Customer Base
Analysis in Excel" (2005, note 004) and "Computing P(alive) Using the BG/NBD Model" (2008,
note 021, "FHL 2008").

Story. While active, a customer buys according to a Poisson process with rate
``lambda ~ Gamma(r, alpha)``; after each purchase they become inactive with probability
``p ~ Beta(a, b)``. A customer with ``x`` repeat purchases, the last at ``t_x``, observed for
``T`` after the first purchase, contributes (FHL 2005 eq. (6))::

    L = B(a, b+x)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
        + [x > 0] B(a+1, b+x-1)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x))

The first term is "still alive at T", the second "became inactive right after the last
purchase". Their ratio gives P(alive) (FHL 2008; it is the denominator of FHL 2005 eq. (10)),
and the two terms, normalised, are the weights of the customer's posterior of the latent state:

* alive at T:        lambda ~ Gamma(r+x, alpha+T),   p ~ Beta(a, b+x)
* inactive at t_x:   lambda ~ Gamma(r+x, alpha+t_x), p ~ Beta(a+1, b+x-1)

All functions below are pure and vectorised: parameters broadcast against the customer arrays
(``x`` = frequency, ``t_x`` = recency, ``T`` = age), e.g. parameter arrays of shape
``(n_draws, 1)`` against customer arrays of shape ``(n_customers,)``. Computations are in log
space (``gammaln``, ``betaln``, ``logaddexp``), so thousands of purchases or long tenures do not
overflow. The functions shared with MBG/NBD (the expectation and the purchase-count
distribution of an *active* customer with Gamma x Beta latent rates, and the future-purchase
sampler) are written in terms of those posterior parameters and reused by
:mod:`clvmodels.models.modified_beta_geo`.
"""

from __future__ import annotations

import sys
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.special import betainc, betaln, digamma, gammaln, hyp2f1

from clvmodels.models.base import (
    LastResultMemo,
    PurchaseModel,
    check_weights,
    compress_rows,
    minimize_negative_log_likelihood,
    numerical_hessian,
    summary_arrays,
    validate_summary,
)

PARAM_NAMES = ("r", "alpha", "a", "b")


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


_SINGULAR = 1e-5  # distance from a_ = 1 or a_ + b_ = 1 below which the value is interpolated


def _active_expected_raw(s, beta, a_, b_, t):
    c = a_ + b_ - 1.0
    z = t / (beta + t)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # (1-z)^s 2F1(s, b_; c; z) = (1-z)^(a_-1) 2F1(c-s, a_-1; c; z)  (Euler's transformation):
        # the right-hand side keeps the first two arguments free of x, so it stays accurate for
        # customers with many purchases and long horizons.
        tail = np.exp((a_ - 1.0) * np.log1p(-z)) * hyp2f1(c - s, a_ - 1.0, c, z)
        out = c / (a_ - 1.0) * (1.0 - tail)
        # scipy's hyp2f1 can fail (nan/inf) for extreme arguments (e.g. a_ in the hundreds with
        # z near 1); the answer must lie in [0, s t / beta] (at most the purchases of a customer
        # who never drops out), so anything else is recomputed in arbitrary precision
        bad = ~np.isfinite(out) | (out < -1e-9) | (out > (s * t / beta) * (1 + 1e-8) + 1e-12)
    # (the removable singularities a_ = 1 and c = 0 are handled by the caller)
    bad &= (t > 0) & (np.abs(a_ - 1.0) >= _SINGULAR) & (np.abs(c) >= _SINGULAR)
    if np.any(bad):
        out = np.array(out, dtype=float, copy=True)
        idx = np.flatnonzero(bad)
        args = [np.ravel(v)[idx] for v in (s, beta, a_, b_, t)]
        out.flat[idx] = [_active_expected_mpmath(*row) for row in zip(*args, strict=True)]
    return out


def _active_expected_mpmath(s, beta, a_, b_, t) -> float:
    """The closed form of :func:`active_expected_purchases` in 40-digit arithmetic (mpmath);
    the fallback where scipy's double-precision hyp2f1 fails. Slow (milliseconds per value), and
    only reached for extreme parameters (none among 2 million realistic cases in our tests)."""
    import mpmath

    with mpmath.workdps(40):
        s, beta, a_, b_, t = (mpmath.mpf(float(v)) for v in (s, beta, a_, b_, t))
        c = a_ + b_ - 1
        z = t / (beta + t)
        hyp = mpmath.hyp2f1(c - s, a_ - 1, c, z, maxterms=10**7)
        return float(c / (a_ - 1) * (1 - (1 - z) ** (a_ - 1) * hyp))


def active_expected_purchases(s, beta, a_, b_, t):
    """E[purchases in the next ``t`` | active now], latent ``lambda ~ Gamma(s, beta)`` (shape,
    rate) and dropout probability ``p ~ Beta(a_, b_)``.

    ``(a_+b_-1)/(a_-1) * [1 - (beta/(beta+t))^s 2F1(s, b_; a_+b_-1; t/(beta+t))]`` — the
    numerator of FHL 2005 eq. (10) (``s = r+x``, ``beta = alpha+T``, ``a_ = a``, ``b_ = b+x``)
    and, with ``s = r``, ``beta = alpha``, ``b_ = b``, FHL 2005 eq. (9). Evaluated through Euler's
    transformation of 2F1. At the removable singularities ``a_ = 1`` and ``a_ + b_ = 1`` the
    value is interpolated linearly between the neighbours at distance ``2e-5`` (the function is
    smooth there).
    """
    s, beta, a_, b_, t = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (s, beta, a_, b_, t))
    )
    out = _active_expected_raw(s, beta, a_, b_, t)
    h = _SINGULAR
    near_a = np.abs(a_ - 1.0) < h
    if near_a.any():
        # linear interpolation between a_ = 1 - 2h and a_ = 1 + 2h (error O(h^2))
        lo = _active_expected_raw(s, beta, np.where(near_a, 1.0 - 2 * h, a_), b_, t)
        hi = _active_expected_raw(s, beta, np.where(near_a, 1.0 + 2 * h, a_), b_, t)
        out = np.where(near_a, lo + (hi - lo) * (a_ - 1.0 + 2 * h) / (4 * h), out)
    near_c = np.abs(a_ + b_ - 1.0) < h
    if near_c.any():
        # the same in b_ around a_ + b_ = 1
        b0 = 1.0 - a_
        lo = active_expected_purchases(s, beta, a_, np.where(near_c, b0 - 2 * h, b_), t)
        hi = active_expected_purchases(s, beta, a_, np.where(near_c, b0 + 2 * h, b_), t)
        out = np.where(near_c, lo + (hi - lo) * (b_ - b0 + 2 * h) / (4 * h), out)
    return np.where(t > 0, np.maximum(out, 0.0), 0.0)


def active_purchase_probability(s, beta, a_, b_, t, k):
    """P(exactly ``k`` purchases in the next ``t`` | active now), ``lambda ~ Gamma(s, beta)``,
    ``p ~ Beta(a_, b_)``, dropout with probability p right after each purchase.

    With ``N(t) ~ Poisson(lambda t)`` the count is ``min(N(t), K)``, ``K ~ Geometric(p)`` on
    ``{1, 2, ...}``, so for ``k >= 1``
    ``P = E[(1-p)^(k-1)] P_NB(N = k) + E[p (1-p)^(k-1)] P_NB(N > k)`` with
    ``E[(1-p)^(k-1)] = B(a_, b_+k-1)/B(a_, b_)``, ``E[p(1-p)^(k-1)] = B(a_+1, b_+k-1)/B(a_, b_)``,
    the negative binomial ``P_NB(N = k) = G(s+k)/(G(s) k!) (beta/(beta+t))^s (t/(beta+t))^k`` and
    ``P_NB(N > k) = I_{t/(beta+t)}(k+1, s)``; ``P(0) = (beta/(beta+t))^s``. For ``s = r``,
    ``beta = alpha``, ``a_ = a``, ``b_ = b`` this is FHL 2005 eq. (8).
    """
    s, beta, a_, b_, t, k = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (s, beta, a_, b_, t, k))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        log_q = np.log(beta) - np.log(beta + t)  # log(1 - z)
        log_z = np.log(t) - np.log(beta + t)
        kk = np.maximum(k, 1.0)
        log_nb = gammaln(s + kk) - gammaln(s) - gammaln(kk + 1.0) + s * log_q + kk * log_z
        base = betaln(a_, b_)
        first = np.exp(betaln(a_, b_ + kk - 1.0) - base + log_nb)
        second = np.exp(betaln(a_ + 1.0, b_ + kk - 1.0) - base) * betainc(
            kk + 1.0, s, np.exp(log_z)
        )
        positive = first + second
        zero = np.exp(s * log_q)
    out = np.where(k == 0, zero, positive)
    # t == 0: no purchases for sure
    out = np.where(t > 0, out, (k == 0).astype(float))
    return np.clip(out, 0.0, 1.0)


def active_expected_by_history(r, alpha, a, b, x, T, t, shift=0.0):
    """:func:`active_expected_purchases` at the active posterior ``Gamma(r+x, alpha+T) x
    Beta(a, b+x+shift)`` (``shift`` 0 for BG/NBD, 1 for MBG/NBD).

    It depends on the history only through (x, T), so when the parameters are shared by all
    customers (shape ``(n_draws, 1)``) it is evaluated once per distinct (x, T) pair — at daily
    resolution a few thousand pairs for millions of customers — and gathered back.
    """
    shared = all(np.ndim(v) == 0 or np.shape(v)[-1] == 1 for v in (r, alpha, a, b, t))
    if shared and np.ndim(x) == 1 and np.ndim(T) == 1 and len(x) >= 256:
        xd, Td, pair_codes = distinct_pairs(x, T)
        if len(xd) <= len(x) // 2:
            values = active_expected_purchases(r + xd, alpha + Td, a, b + xd + shift, t)
            return np.take(values, pair_codes, axis=-1)
    return active_expected_purchases(r + x, alpha + T, a, b + x + shift, t)


def distinct_pairs(x: np.ndarray, T: np.ndarray):
    """Distinct (x, T) pairs and each customer's pair code: ``(xd, Td, codes)`` with
    ``xd[codes] == x`` and ``Td[codes] == T``. Whole-number data (frequency always, T at daily
    resolution) use an O(n) presence table; otherwise hashing (pandas.factorize)."""
    n = len(x)
    x_top = float(x.max()) if n else 0.0
    T_top = float(T.max()) if n else 0.0
    small = (x_top + 1) * (T_top + 1) <= 8 * n + 4096
    Ti = _whole_numbers(T, T_top, n) if small else None
    xi = _whole_numbers(x, x_top, n) if Ti is not None else None
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
_ONE_BY_ONE = 48


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
    few = np.flatnonzero((n > 0) & (n <= _ONE_BY_ONE))
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
    many = np.flatnonzero(n > _ONE_BY_ONE)
    if many.size:
        if whole:
            out[many] = rng.multinomial(n[many], steps / t_max)
        else:
            reach = np.clip(grid[None, :], start[many, None], span[many, None])
            share = np.diff(reach, axis=1, prepend=start[many, None])
            share /= share.sum(axis=1, keepdims=True)
            out[many] = rng.multinomial(n[many], share)
    return out


def _geometric_at_most(p, cap, rng: np.random.Generator) -> np.ndarray:
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
        k = _geometric_at_most(p, n[several].astype(float), rng).astype(np.int64)
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


def sample_bg_family_periods(p_alive, lam_shape, lam_rate, a_, b_, t_grid, rng):
    """Future purchases of the BG/NBD family (BG/NBD, MBG/NBD) from the customer's posterior,
    in sparse form: ``(shape, pairs, per_period)`` — the broadcast shape of the inputs, the flat
    indices (into ``shape``, C order) of the paths with at least one purchase, and their int64
    per-period counts ``(len(pairs), len(t_grid))``.

    ``alive ~ Bernoulli(p_alive)``; the dead buy nothing, so only alive pairs draw further:
    :func:`truncated_poisson_periods` with ``lambda ~ Gamma(lam_shape, lam_rate)`` and
    ``p ~ Beta(a_, b_)`` (the posterior of an active customer). The work is proportional to the
    number of alive pairs and their purchases, not to draws x customers x periods.
    """
    grid = check_grid(t_grid)
    shape = np.broadcast_shapes(*(np.shape(v) for v in (p_alive, lam_shape, lam_rate, a_, b_)))
    if grid.size == 0 or grid[-1] <= 0:
        return shape, np.zeros(0, dtype=np.intp), np.zeros((0, grid.size), dtype=np.int64)
    u = rng.random(shape)
    alive = np.flatnonzero(np.less(u, p_alive, out=np.empty(shape, dtype=bool)))
    lam_shape, lam_rate = take_flat(lam_shape, shape, alive), take_flat(lam_rate, shape, alive)
    p_shape = (take_flat(a_, shape, alive), take_flat(b_, shape, alive))
    buyers, per = truncated_poisson_periods(lam_shape, lam_rate, p_shape, grid, rng)
    return shape, alive[buyers], per


def sample_bg_family_future(p_alive, lam_shape, lam_rate, a_, b_, t_grid, rng):
    """Cumulative future purchase counts of the BG/NBD family, shape
    ``broadcast + (len(t_grid),)``, int64: :func:`sample_bg_family_periods` made dense."""
    return cumulative_counts(
        *sample_bg_family_periods(p_alive, lam_shape, lam_rate, a_, b_, t_grid, rng)
    )


def sample_active_future_purchases(lam, p, t_grid, rng: np.random.Generator) -> np.ndarray:
    """Cumulative purchase counts at the times ``t_grid`` (after now) of active customers with
    purchase rate ``lam`` and dropout probability ``p`` after each purchase.

    A Poisson(``lam``) process ``N`` and ``K ~ Geometric(p)`` on {1, 2, ...}: the count at ``t``
    is ``min(N(t), K)``. Returns int64 of shape ``broadcast(lam, p).shape + (len(t_grid),)``:
    the total ``N(t_max) ~ Poisson(lam t_max)``, placed in the periods by
    :func:`allocate_to_periods`, truncated at ``K`` (drawn only for paths that buy).
    """
    lam, p = np.broadcast_arrays(np.asarray(lam, dtype=float), np.asarray(p, dtype=float))
    grid = check_grid(t_grid)
    if grid.size == 0 or grid[-1] <= 0:
        return np.zeros(lam.shape + (grid.size,), dtype=np.int64)
    t_max = float(grid[-1])
    n = rng.poisson(lam * t_max)
    buyers = np.nonzero(n > 0)
    n = n[buyers]
    cum = np.cumsum(allocate_to_periods(n, t_max, grid, rng), axis=1)
    k = _geometric_at_most(p[buyers], n.astype(float), rng).astype(np.int64)
    out = np.zeros(lam.shape + (grid.size,), dtype=np.int64)
    out[buyers] = np.minimum(cum, k[:, None])
    return out


def _as_float(*arrays):
    return tuple(np.asarray(a, dtype=float) for a in arrays)


# --------------------------------------------------------------------------------------------
# BG/NBD math
# --------------------------------------------------------------------------------------------
def log_likelihood(r, alpha, a, b, x, t_x, T):
    """Per-customer log-likelihood, FHL 2005 eq. (6)-(7), in log space.

    ``ll = log G(r+x) - log G(r) + r log alpha + log B(a, b+x) - log B(a, b) - (r+x) log(alpha+T)
    + [x>0] log(1 + exp(d))`` with ``d = log(a/(b+x-1)) + (r+x) log((alpha+T)/(alpha+t_x))``.
    """
    r, alpha, a, b, x, t_x, T = _as_float(r, alpha, a, b, x, t_x, T)
    d = _log_odds_dropped(r, alpha, a, b, x, t_x, T)
    ll = (
        gammaln(r + x)
        - gammaln(r)
        + r * np.log(alpha)
        + betaln(a, b + x)
        - betaln(a, b)
        - (r + x) * np.log(alpha + T)
    )
    return ll + np.where(x > 0, np.logaddexp(0.0, d), 0.0)


def _log_odds_dropped(r, alpha, a, b, x, t_x, T):
    """log of P(inactive since t_x) / P(alive) (FHL 2008); -inf for x == 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        # log(a / (b+x-1)) for x >= 1; -inf for x == 0 (no second term, P(alive) = 1)
        log_ab = per_frequency(
            lambda k: np.where(k > 0, np.log(a) - np.log(b + (k - 1.0)), -np.inf), a, b, x
        )
    d = np.multiply(r + x, log_tenure_ratio(alpha, t_x, T))
    if d.shape == np.broadcast_shapes(d.shape, np.shape(log_ab)):
        d += log_ab
        return d
    return d + log_ab


def per_frequency(fn, a, b, x):
    """``fn(x)`` for a function of the frequency and the shared parameters ``a``, ``b``: when those
    are shared by all customers, evaluated once per value 0..max(x) and looked up."""
    shared = all(np.ndim(v) == 0 or np.shape(v)[-1] == 1 for v in (a, b))
    if shared and np.ndim(x) == 1 and len(x) >= 1024:
        top = float(x.max())
        index = _whole_numbers(x, top, len(x))
        if index is not None:
            table = fn(np.arange(int(top) + 1, dtype=float))
            return np.take(table, index, axis=-1)
    return fn(x)


def _whole_numbers(values: np.ndarray, top: float, n: int):
    """``values`` as integer indices when they are all whole numbers in [0, 4n], else None."""
    if not (0 <= top <= 4 * n + 1024):
        return None
    index = values.astype(np.intp)
    if index.min(initial=0) < 0 or not np.array_equal(index, values):
        return None
    return index


def log_tenure_ratio(alpha, t_x, T):
    """``log((alpha+T)/(alpha+t_x))`` per customer.

    When alpha is shared by all customers and recency and T are whole numbers (daily data),
    ``log(alpha + k)`` is tabulated once for k = 0..max(T) and looked up, instead of two
    logarithms per customer.
    """
    shared = np.ndim(alpha) == 0 or np.shape(alpha)[-1] == 1
    if shared and np.ndim(T) == 1 and np.ndim(t_x) == 1 and len(T) >= 1024:
        top = float(T.max()) if len(T) else 0.0
        ti = _whole_numbers(T, top, len(T))
        ri = _whole_numbers(t_x, top, len(T)) if ti is not None else None
        if ri is not None:
            table = np.log(np.asarray(alpha)[..., None] + np.arange(int(top) + 1, dtype=float))
            table = table.reshape(np.shape(alpha)[:-1] + (-1,)) if np.ndim(alpha) else table
            return np.take(table, ti, axis=-1) - np.take(table, ri, axis=-1)
    # one logarithm instead of two, and accurate when T - t_x is small next to alpha + t_x
    return np.log1p((T - t_x) / (alpha + t_x))


def negative_log_likelihood(log_params, x, t_x, T, counts, t_x_code=None, T_code=None):
    """Total negative log-likelihood of compressed rows (``counts`` customers each) and its
    analytic gradient with respect to ``log(r, alpha, a, b)``.

    With ``w = P(inactive since t_x)`` (the softmax weight of the second term of eq. (6)), the
    derivatives of the per-customer log-likelihood are::

        d/dr     = psi(r+x) - psi(r) + log alpha - (1-w) log(alpha+T) - w log(alpha+t_x)
        d/dalpha = r/alpha - (r+x) [(1-w)/(alpha+T) + w/(alpha+t_x)]
        d/da     = psi(a+b) - psi(a+b+x) + w/a
        d/db     = psi(b+x) - psi(b) + psi(a+b) - psi(a+b+x) - w/(b+x-1)

    Functions of ``x`` alone are evaluated once per distinct frequency, and ``log(alpha+T)``,
    ``log(alpha+t_x)`` once per distinct ``T`` / ``t_x`` (``T_code`` / ``t_x_code``: optional
    integer codes with equal codes for equal values, as made by :func:`row_codes`).
    """
    return bg_family_negative_log_likelihood(
        log_params, x, t_x, T, counts, t_x_code, T_code, shift=0.0
    )


def row_codes(values: np.ndarray) -> np.ndarray:
    """Integer codes of a column (equal values get equal codes), for the likelihood's lookup
    tables: at daily resolution there are only a few hundred distinct T and recency values."""
    return np.unique(np.asarray(values, dtype=float), return_inverse=True)[1].ravel()


def _lookup(values, code):
    """A table of distinct values and an index with ``table[index] == values``."""
    values = np.asarray(values, dtype=float)
    if code is None:
        table, index = np.unique(values, return_inverse=True)
        return table, index.ravel()
    index = np.asarray(code, dtype=np.intp)
    table = np.zeros(int(index.max()) + 1 if index.size else 0)
    table[index] = values
    return table, index


def _sum(weights, values) -> float:
    # einsum, not BLAS ddot: on a busy machine OpenBLAS threads make dot products 20x slower
    return float(np.einsum("i,i->", weights, values))


def bg_family_negative_log_likelihood(
    log_params, x, t_x, T, counts, t_x_code=None, T_code=None, shift=0.0
):
    """The BG/NBD (``shift=0``) and MBG/NBD (``shift=1``) negative log-likelihood and gradient.

    Both have the form ``A(x) + log B(a, b') - log B(a, b) - (r+x) log(alpha+T) + log(1 + e^d)``
    with ``b' = b + x + shift`` and ``d = log(a/(b'-1)) + (r+x) log((alpha+T)/(alpha+t_x))``
    (for BG/NBD ``d = -inf`` when x = 0). Vectorised over rows; see the model modules for the
    gradient formulas.
    """
    r, alpha, a, b = np.exp(np.asarray(log_params, dtype=float))
    x, t_x, T, counts = _as_float(x, t_x, T, counts)
    # ---- per distinct frequency
    xu, x_index = unique_inverse(x)
    cu = np.bincount(x_index, weights=counts, minlength=len(xu))
    b_post = b + xu + shift  # b' of the "alive" term
    has_second = (xu > 0) | (shift > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ab = np.where(has_second, np.log(a) - np.log(b_post - 1.0), -np.inf)
        inv_b1 = np.where(has_second, 1.0 / (b_post - 1.0), 0.0)
    lg = gammaln(r + xu) - gammaln(r) + r * np.log(alpha) + betaln(a, b_post) - betaln(a, b)
    psi_ab, psi_abx = digamma(a + b), digamma(a + b_post)
    # ---- per distinct T and t_x
    T_tab, T_index = _lookup(T, T_code)
    t_tab, t_index = _lookup(t_x, t_x_code)
    log_aT_tab, log_at_tab = np.log(alpha + T_tab), np.log(alpha + t_tab)
    inv_aT_tab, inv_at_tab = 1.0 / (alpha + T_tab), 1.0 / (alpha + t_tab)
    # ---- per row (in place where possible: these arrays have one entry per distinct row)
    log_aT = log_aT_tab[T_index]
    diff = log_at_tab[t_index]
    np.subtract(log_aT, diff, out=diff)  # log((alpha+T)/(alpha+t_x)) >= 0
    inv_aT = inv_aT_tab[T_index]
    inv_diff = inv_at_tab[t_index]
    np.subtract(inv_aT, inv_diff, out=inv_diff)  # 1/(alpha+T) - 1/(alpha+t_x)
    rx = x + r
    d = rx * diff
    d += log_ab[x_index]
    e = np.abs(d)
    np.negative(e, out=e)
    np.exp(e, out=e)  # exp(-|d|)
    softplus = np.log1p(e)
    softplus += np.maximum(d, 0.0)  # log(1 + e^d)
    w = np.where(d >= 0.0, 1.0, e)
    e += 1.0
    w /= e  # expit(d) = P(inactive since t_x)
    cw = counts * w
    c_rx = counts * rx
    value = _sum(cu, lg) - _sum(c_rx, log_aT) + _sum(counts, softplus)
    w_by_x = np.bincount(x_index, weights=cw, minlength=len(xu))
    g_r = (
        _sum(cu, (digamma(r + xu) - digamma(r) + np.log(alpha)))
        - _sum(counts, log_aT)
        + _sum(cw, diff)
    )
    g_alpha = r / alpha * float(cu.sum()) - _sum(c_rx, inv_aT) + _sum(cw * rx, inv_diff)
    g_a = _sum(cu, (psi_ab - psi_abx)) + float(cw.sum()) / a
    g_b = _sum(cu, (digamma(b_post) - digamma(b) + psi_ab - psi_abx)) - _sum(w_by_x, inv_b1)
    grad = np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b])
    return -value, -grad


def probability_alive(r, alpha, a, b, x, t_x, T):
    """P(active at T | x, t_x, T) = 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)).

    FHL 2008 (note 021); the denominator of FHL 2005 eq. (10). Computed from the log-odds
    ``d`` as ``1 / (1 + exp(d))``, so it lies in [0, 1] for any inputs. A customer with x = 0
    has had no chance to drop out (P = 1 exactly), so for customer arrays the formula is
    evaluated for the repeat buyers only (see :func:`_probability_alive_of_repeaters`). The
    last result is remembered (:class:`clvmodels.models.base.LastResultMemo`) and returned
    read-only.
    """
    inputs = _as_float(r, alpha, a, b, x, t_x, T)
    kept = _ALIVE_MEMO.get(inputs)
    if kept is not None:
        return kept
    alive = _probability_alive_of_repeaters(*inputs)
    alive.flags.writeable = False
    return _ALIVE_MEMO.put(inputs, alive, alive.size)


# P(alive) does not depend on the horizon: scoring asks for it and then for E[X] of the same
# customers, valuation for E[X] at every period end
_ALIVE_MEMO = LastResultMemo()


def _probability_alive_formula(r, alpha, a, b, x, t_x, T):
    return _inverse_one_plus_exp(_log_odds_dropped(r, alpha, a, b, x, t_x, T))


def _inverse_one_plus_exp(d) -> np.ndarray:
    """``1 / (1 + exp(d))`` computed in place (d = +inf -> 0, -inf -> 1): P(alive) from the
    log-odds of having dropped out; always in [0, 1]."""
    d = np.asarray(d, dtype=float)
    if not (d.flags.writeable and d.flags.owndata):
        d = d.copy()
    with np.errstate(over="ignore"):
        np.exp(d, out=d)
    d += 1.0
    return np.reciprocal(d, out=d)


def conditional_expected_purchases(r, alpha, a, b, x, t_x, T, t):
    """E[X(T, T+t] | x, t_x, T], FHL 2005 eq. (10)::

        (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]
        / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))

    = P(alive) x (expected purchases of an active customer with posterior rates).
    """
    r, alpha, a, b, x, t_x, T, t = _as_float(r, alpha, a, b, x, t_x, T, t)
    alive = probability_alive(r, alpha, a, b, x, t_x, T)
    return alive * active_expected_by_history(r, alpha, a, b, x, T, t, shift=0.0)


def expected_purchases_new_customer(r, alpha, a, b, t):
    """E[X(t)] for a customer just acquired, FHL 2005 eq. (9)::

    (a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))]
    """
    r, alpha, a, b, t = _as_float(r, alpha, a, b, t)
    return active_expected_purchases(r, alpha, a, b, t)


def conditional_purchase_probability(r, alpha, a, b, x, t_x, T, t, k):
    """P(X(T, T+t] = k | x, t_x, T): the posterior mixture of "active" (with
    :func:`active_purchase_probability` at ``Gamma(r+x, alpha+T) x Beta(a, b+x)``) and
    "inactive" (no purchase). Sums to one over k; its mean is eq. (10). (For x = 0, T = 0 it is
    the unconditional FHL 2005 eq. (8).)
    """
    r, alpha, a, b, x, t_x, T, t, k = _as_float(r, alpha, a, b, x, t_x, T, t, k)
    alive = probability_alive(r, alpha, a, b, x, t_x, T)
    active = active_purchase_probability(r + x, alpha + T, a, b + x, t, k)
    return alive * active + (1.0 - alive) * (k == 0)


def sample_latent(r, alpha, a, b, x, t_x, T, rng: np.random.Generator):
    """One draw per element of the customer's posterior of (alive, lambda, p).

    Mixture (weights P(alive), 1 - P(alive)) of ``Gamma(r+x, alpha+T) x Beta(a, b+x)`` (active at
    T) and ``Gamma(r+x, alpha+t_x) x Beta(a+1, b+x-1)`` (inactive right after the last purchase),
    the normalised terms of FHL 2005 eq. (6). Returns ``(alive (bool), lam, p)`` arrays shaped
    like the broadcast of the inputs.
    """
    r, alpha, a, b, x, t_x, T = np.broadcast_arrays(*_as_float(r, alpha, a, b, x, t_x, T))
    alive = rng.random(r.shape) < probability_alive(r, alpha, a, b, x, t_x, T)
    rate = np.where(alive, alpha + T, alpha + t_x)
    lam = rng.gamma(r + x) / rate
    # b + (x - 1), not b + x - 1: with a tiny b (an extreme asymptotic draw, e.g. 1e-17) the
    # latter rounds to 0 for x = 1 (the "inactive" state needs x >= 1; x = 0 is always alive).
    # Beta(a', b') with b' -> 0+ is the point mass at 1, numpy's answer for any tiny positive
    # b', so a b that underflowed to exactly 0 is put back at the smallest positive double.
    tiny = np.finfo(float).smallest_subnormal
    b_dead = np.maximum(b + np.maximum(x - 1.0, 0.0), tiny)
    p = rng.beta(np.where(alive, a, a + 1.0), np.where(alive, np.maximum(b + x, tiny), b_dead))
    return alive, lam, p


def sample_future_purchases(r, alpha, a, b, x, t_x, T, t_grid, rng: np.random.Generator):
    """Cumulative purchase counts at ``t_grid`` (after T), drawn from the customer's posterior:
    alive with probability P(alive) (else no purchases), then the active posterior
    ``lambda ~ Gamma(r+x, alpha+T)``, ``p ~ Beta(a, b+x)`` and a Poisson(lambda) process stopped
    after a Geometric(p) number of purchases (:func:`sample_bg_family_future`; the inactive
    state's rates are never needed). Shape ``broadcast(params, x) + (len(t_grid),)``, int64.
    """
    return cumulative_counts(
        *sample_future_purchase_periods(r, alpha, a, b, x, t_x, T, t_grid, rng)
    )


def sample_future_purchase_periods(r, alpha, a, b, x, t_x, T, t_grid, rng: np.random.Generator):
    """:func:`sample_future_purchases` in sparse form ``(shape, pairs, per_period)``: the
    broadcast shape, flat indices of the (draw, customer) paths with purchases and their
    per-period (not cumulative) counts; every other path buys nothing (see
    :func:`~clvmodels.models.beta_geo.sample_bg_family_periods`)."""
    r, alpha, a, b, x, t_x, T = _as_float(r, alpha, a, b, x, t_x, T)
    p_alive = probability_alive(r, alpha, a, b, x, t_x, T)
    return sample_bg_family_periods(p_alive, r + x, alpha + T, a, b + x, t_grid, rng)


def _probability_alive_of_repeaters(r, alpha, a, b, x, t_x, T):
    """P(alive) (:func:`probability_alive`), evaluated only for the customers with repeat purchases: in
    BG/NBD a customer with x = 0 has not had a chance to drop out, P(alive) = 1 exactly (for
    customer arrays of shape ``(n_customers,)`` against ``(..., 1)`` or ``(..., n_customers)``
    parameters; anything else is passed on)."""
    params = (r, alpha, a, b)
    n = np.shape(x)[0] if np.ndim(x) == 1 else -1
    if (
        n < 1
        or np.ndim(t_x) != 1
        or np.ndim(T) != 1
        or any(np.ndim(v) and np.shape(v)[-1] not in (1, n) for v in params)
    ):
        return _probability_alive_formula(r, alpha, a, b, x, t_x, T)
    cols = np.flatnonzero(x > 0)
    if cols.size > 0.8 * n:
        return _probability_alive_formula(r, alpha, a, b, x, t_x, T)
    shape = np.broadcast_shapes(*(np.shape(v) for v in (*params, x)))
    out = np.ones(shape)
    if cols.size:
        sub = [v[..., cols] if np.ndim(v) and np.shape(v)[-1] == n else v for v in params]
        out[..., cols] = _probability_alive_formula(*sub, x[cols], t_x[cols], T[cols])
    return out


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------


class BetaGeoFamily(PurchaseModel):
    """Fitting hooks shared by BG/NBD and MBG/NBD: the same compressed rows (with integer codes
    of recency and T for lookup tables), warm start and preconditioner; each subclass names its
    module of pure functions (``_math``) and its ``lifetimes`` fitter."""

    param_names: ClassVar[tuple[str, ...]] = PARAM_NAMES
    _lifetimes_fitter: ClassVar[str]

    @classmethod
    def _math_sample_future_purchase_periods(cls, params, x, t_x, T, t_grid, rng):
        """Sparse form of ``_math_sample_future_purchases``: only the buying paths."""
        return cls._math.sample_future_purchase_periods(
            *cls._unpack(params), x, t_x, T, t_grid, rng
        )

    def _fit_data(self, summary, weights):
        return fit_rows_with_codes(summary, weights)

    def _negative_log_likelihood(self, log_params, data, counts):
        x, t_x, T, t_x_code, T_code = data
        return self._math.negative_log_likelihood(log_params, x, t_x, T, counts, t_x_code, T_code)

    def _initial_log_params(self, data, counts) -> np.ndarray:
        return warm_start(self._math.negative_log_likelihood, data, counts)

    def _preconditioner(self, data, counts, x0):
        return subset_preconditioner(self._math.negative_log_likelihood, data, counts, x0)

    def _fit_lifetimes(self, summary, weights):
        from clvmodels.models.lifetimes_engine import fit_lifetimes_purchase

        self.lifetimes_fitter_ = fit_lifetimes_purchase(self._lifetimes_fitter, summary, weights)
        return self.lifetimes_fitter_.params_[list(PARAM_NAMES)].to_numpy(dtype=float)

    def conditional_latent_draws(
        self, summary: pd.DataFrame, n: int = 100, seed=None, draws: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Draws of each customer's latent state given their history: a tidy DataFrame with
        columns ``customer_id, draw, alive, lambda, p`` (``n`` rows per customer).

        With ``draws`` (e.g. ``param_draws(200)``) each latent draw uses one parameter draw, so
        parameter uncertainty is included; otherwise all use the point estimate.
        """
        return conditional_latent_frame(self, summary, n, seed, draws, ("lambda", "p"))


class BetaGeo(BetaGeoFamily):
    """BG/NBD model (Fader, Hardie & Lee 2005), fit by maximum likelihood.

    Parameters
    ----------
    engine : {"native", "lifetimes"}
        ``"native"`` (default): analytic gradients, L-BFGS-B on log-parameters, fit on the
        distinct (frequency, recency, T) rows. ``"lifetimes"``: ``lifetimes.BetaGeoFitter`` finds
        the optimum (kept as ``lifetimes_fitter_``); likelihood, standard errors and all
        predictions still come from this module's math.

    Examples
    --------
    >>> import clvmodels as clv
    >>> s = clv.datasets.load_cdnow_summary()
    >>> bg = clv.BetaGeo().fit(s)
    >>> bg.params_.round(3).tolist()
    [0.243, 4.414, 0.793, 2.426]
    """

    _math = sys.modules[__name__]
    _lifetimes_fitter = "BetaGeoFitter"


def fit_rows_with_codes(summary: pd.DataFrame, weights):
    """Distinct (frequency, recency, T) rows with their counts, plus integer codes of recency
    and T (see :func:`row_codes`): ``((x, t_x, T, t_x_code, T_code), counts)``."""
    x, t_x, T = summary_arrays(summary)
    w = check_weights(weights, len(summary))
    x, t_x, T, counts, codes = compress_rows(x, t_x, T, weights=w, return_codes=True)
    keep = counts > 0
    rows = (x[keep], t_x[keep], T[keep], codes[1][keep], codes[2][keep])
    return rows, counts[keep]


def _subset(data, counts, max_rows: int, seed: int):
    pick = np.sort(np.random.default_rng(seed).choice(len(counts), max_rows, replace=False))
    return tuple(np.asarray(col)[pick] for col in data), counts[pick]


def subset_preconditioner(nll, data, counts, x0, max_rows: int = 20_000, seed: int = 0):
    """``M = L^-T`` with ``L L^T`` the observed information at ``x0`` estimated on a random
    subset of distinct rows (scaled to the full count), for the preconditioned search of
    :func:`clvmodels.models.base.minimize_negative_log_likelihood`; None for small data (which
    fits quickly anyway) or when the estimate is not positive definite."""
    if len(counts) <= 2 * max_rows or not np.all(np.isfinite(x0)):
        return None
    (x, t_x, T, t_x_code, T_code), sub_counts = _subset(data, counts, max_rows, seed)

    def gradient(lp):
        return nll(lp, x, t_x, T, sub_counts, t_x_code, T_code)[1]

    hessian = numerical_hessian(gradient, x0) * (counts.sum() / sub_counts.sum())
    try:
        lower = np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError:
        return None
    return np.linalg.inv(lower).T


def warm_start(nll, data, counts, max_rows: int = 20_000, seed: int = 0) -> np.ndarray:
    """Starting log-parameters for the full fit: a rough rate-based guess, refined, for large
    data, by a fit on a random subset of ``max_rows`` distinct rows (with their counts, so the
    subset's likelihood estimates the full one), which leaves the full-data optimiser only a
    few iterations."""
    x, _, T = data[:3]
    w = counts / counts.sum()
    rate = (_sum(w, x) + 0.5) / max(_sum(w, T), 1e-12)
    guess = np.log([1.0, 1.0 / rate, 1.0, 3.0])
    if len(counts) <= 2 * max_rows:
        return guess
    (x, t_x, T, t_x_code, T_code), sub_counts = _subset(data, counts, max_rows, seed)
    result = minimize_negative_log_likelihood(
        lambda lp: nll(lp, x, t_x, T, sub_counts, t_x_code, T_code), guess
    )
    return result.log_params if np.all(np.isfinite(result.log_params)) else guess


def conditional_latent_frame(model, summary, n, seed, draws, names) -> pd.DataFrame:
    """Shared implementation of ``conditional_latent_draws`` for the BG-type purchase models."""
    model._check_fitted()
    validate_summary(summary)
    model._check_unit(summary)
    rng = np.random.default_rng(seed)
    if draws is None:
        n = int(n)
        if n < 1:
            raise ValueError(f"n must be a positive number of draws, got {n!r}")
        params = {k: np.repeat(v, n, axis=0) for k, v in model.customer_params(summary).items()}
    else:
        params = model.customer_params(summary, draws)
        n = len(draws)
    x, t_x, T = summary_arrays(summary)
    alive, lam, p = model._math_sample_latent(params, x, t_x, T, rng)
    shape = (n, len(summary))
    alive, lam, p = (np.broadcast_to(v, shape) for v in (alive, lam, p))
    index_name = summary.index.name or "customer_id"
    return pd.DataFrame(
        {
            index_name: np.tile(summary.index.to_numpy(), n),
            "draw": np.repeat(np.arange(n), len(summary)),
            "alive": alive.ravel(),
            names[0]: lam.ravel(),
            names[1]: p.ravel(),
        }
    )
