"""The BG/NBD family's expectation of an active customer along many customers at once (numba).

:func:`clvmodels.families.bg_nbd.active_expected_purchases` is, through Euler's transformation,

    E = c / (a_ - 1) * [1 - (1 - z)^(a_ - 1) 2F1(c - s, a_ - 1; c; z)],
    s = r + x,  beta = alpha + T,  a_ = a,  b_ = b + x (+1 for MBG/NBD),  c = a_ + b_ - 1,
    z = t / (beta + t),

so for one parameter draw and one frequency ``x`` every customer's value is the *same*
function ``y(z) = 2F1(c - s, a_ - 1; c; z)`` at a different point ``z`` (``c - s`` and
``a_ - 1`` do not depend on ``x``; ``c`` depends on ``x`` alone, ``z`` on ``T`` and the horizon).
``y`` solves the hypergeometric equation

    z (1 - z) y'' + [c - (c - s + a_) z] y' - (c - s)(a_ - 1) y = 0,

whose only finite singular points are 0 and 1. :func:`active_expected_walk` therefore visits
the customers of one frequency in order of increasing ``z`` (decreasing ``T``) and carries
``(y - 1, y')`` from one to the next by the Taylor series of the equation around the previous point
(a three-term recurrence for the coefficients, DLMF 15.10.1 written around a regular point);
the steps are short next to the radius of convergence ``min(z, 1 - z)``, so a handful of terms
reach double precision. The first point of a walk starts from the Maclaurin series (DLMF
15.2.1) at ``min(z, 1/2)``. Every value passes the model's bounds ``0 <= E <= s t / beta``;
anything the walk cannot vouch for (series that do not converge or cancel, the parameter
regions where :func:`~clvmodels.families.bg_nbd.active_expected_purchases` uses quadrature or
interpolation) is returned as NaN for the caller to compute the slow way.

:func:`probability_alive_table` evaluates the family's P(alive) over draws x customers in one
pass from per-draw tables of the logarithms of the distinct values (the other hot loop of a
valuation over parameter draws).

This module imports numba; it is imported only when that is installed.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "hyp2f1_with_derivative",
    "series_reciprocals",
    "active_expected_walk",
    "probability_alive_table",
]

# relative size of the last series terms at which a sum is taken as converged
_TERM_TOLERANCE = 1e-17
# largest term / sum beyond which a series is refused (cancellation would cost > 4 digits)
_CANCELLATION = 1e4
_MAX_TERMS = 400
# steps after which a walk starts afresh from the Maclaurin series (bounds the rounding errors
# carried along a walk)
_RESEED = 32

# the regions handled elsewhere (see bg_nbd.active_expected_purchases): near the removable
# singularities a_ = 1 and c = 0, concentrated dropout posteriors, horizons too short for the
# closed form
_SINGULAR = 1e-5
_CONCENTRATED = 100.0
_SHORT = 1e-8


@numba.njit(cache=True, nogil=True)
def _maclaurin(alpha, beta, gamma, z):
    """``(y - 1, y', ok)`` for ``y = 2F1(alpha, beta; gamma; z)`` by its power series
    (0 < z <= 1/2). ``y - 1`` is summed without the leading 1, so it keeps its relative accuracy
    when ``y`` is close to 1 (``alpha beta`` small: the BG/NBD expectation with ``a`` near 1)."""
    term = 1.0
    total = 0.0
    slope = 0.0  # z y'
    largest = 1.0
    n = 0
    while True:
        term *= (alpha + n) * (beta + n) / ((gamma + n) * (n + 1.0)) * z
        n += 1
        total += term
        slope += n * term
        largest = max(largest, abs(term))
        if abs(term) * (n + 1.0) <= _TERM_TOLERANCE * (abs(total) + abs(slope)):
            break
        if n > _MAX_TERMS:
            return 0.0, 0.0, False
    if not largest <= _CANCELLATION * abs(1.0 + total):
        return 0.0, 0.0, False
    return total, slope / z, True


@numba.njit(cache=True, nogil=True)
def _taylor_step(alpha, beta, gamma, z0, u0, dy0, h, reciprocals):
    """``(y - 1, y', ok)`` at ``z0 + h`` from ``(y - 1, y')`` at ``z0``
    (``|h| <= min(z0, 1 - z0) / 2``; ``reciprocals[n] = 1 / ((n + 1)(n + 2))``).

    With ``y = sum_n c_n (z - z0)^n`` the equation gives, for ``w_n = c_n h^n``,
    ``p0 (n+2)(n+1) w_{n+2} = -(n+1)(p1 n + q0) h w_{n+1} - (q1 n - n(n-1) - alpha beta) h^2 w_n``
    with ``z (1 - z) = p0 + p1 (z - z0) - (z - z0)^2`` and
    ``gamma - (alpha + beta + 1) z = q0 + q1 (z - z0)``; ``w_0 = y(z0)`` enters only the first
    step of the recurrence, the sum carries ``y - 1``.
    """
    if h == 0.0:
        return u0, dy0, True
    p0 = z0 * (1.0 - z0)
    p1 = 1.0 - 2.0 * z0
    q1 = -(alpha + beta + 1.0)
    q0 = gamma + q1 * z0
    ab = alpha * beta
    h1 = -h / p0
    h2 = h * h1
    w_prev = 1.0 + u0
    w_cur = dy0 * h
    total = u0 + w_cur
    slope = w_cur  # h y'
    largest = max(abs(w_prev), abs(w_cur))
    for n in range(_MAX_TERMS):
        nf = float(n)
        w_next = (
            (nf + 1.0) * (p1 * nf + q0) * h1 * w_cur
            + (q1 * nf - nf * (nf - 1.0) - ab) * h2 * w_prev
        ) * reciprocals[n]
        total += w_next
        slope += (nf + 2.0) * w_next
        largest = max(largest, abs(w_next))
        if abs(w_next) * (nf + 2.0) + abs(w_cur) * (nf + 1.0) <= _TERM_TOLERANCE * (
            abs(total) + abs(slope)
        ):
            if not largest <= _CANCELLATION * abs(1.0 + total):
                return 0.0, 0.0, False
            return total, slope / h, True
        w_prev, w_cur = w_cur, w_next
    return 0.0, 0.0, False


@numba.njit(cache=True, nogil=True)
def _advance(alpha, beta, gamma, z0, u0, dy0, z1, reciprocals):
    """``(y - 1, y', ok)`` at ``z1`` from ``z0``, in steps of at most half the radius of
    convergence ``min(z, 1 - z)``."""
    z, u, dy = z0, u0, dy0
    while True:
        radius = 0.5 * min(z, 1.0 - z)
        h = z1 - z
        last = abs(h) <= radius
        if not last:
            h = radius if h > 0 else -radius
        u, dy, ok = _taylor_step(alpha, beta, gamma, z, u, dy, h, reciprocals)
        if not ok or not last and not (0.0 < z + h < 1.0):
            return 0.0, 0.0, False
        if last:
            return u, dy, True
        z += h


@numba.njit(cache=True, nogil=True)
def hyp2f1_with_derivative(alpha, beta, gamma, z, reciprocals):
    """``(2F1(alpha, beta; gamma; z) - 1, its derivative in z, ok)`` for ``0 < z < 1``: the
    Maclaurin series up to ``z = 1/2``, Taylor steps of the hypergeometric equation beyond
    (``reciprocals``: :func:`series_reciprocals`)."""
    if z <= 0.5:
        return _maclaurin(alpha, beta, gamma, z)
    u, dy, ok = _maclaurin(alpha, beta, gamma, 0.5)
    if not ok:
        return 0.0, 0.0, False
    return _advance(alpha, beta, gamma, 0.5, u, dy, z, reciprocals)


@numba.njit(cache=True, nogil=True)
def series_reciprocals():
    """``1 / ((n + 1)(n + 2))`` for the terms of a Taylor step."""
    n = np.arange(_MAX_TERMS + 2, dtype=np.float64)
    return 1.0 / ((n + 1.0) * (n + 2.0))


@numba.njit(cache=True, nogil=True)
def active_expected_walk(
    r, alpha, a, b, group_x, group_start, pair_T, ages, t, shift, position, out
):
    """``out[d, j]``: the expected purchases in the next ``t`` of an active customer with
    posterior ``Gamma(r_d + x_j, alpha_d + T_j) x Beta(a_d, b_d + x_j + shift)``, for every draw
    ``d`` and (frequency, T) pair ``j``; NaN where the walk cannot vouch for the value.

    The pairs are sorted by frequency, then T; frequency ``group_x[g]`` holds the pairs
    ``group_start[g]:group_start[g + 1]``; ``T_j = ages[pair_T[j]]`` (``ages``: the distinct
    T, so ``log(1 - z) = log(alpha + T) - log(alpha + T + t)`` is computed once per T and draw).
    Pair ``j``'s value goes to column ``position[j]`` of ``out``, clipped to the model's bounds
    ``[0, s t / beta]``. 1-d float parameter arrays of one length, ``t > 0``. Returns the
    number of NaN written.
    """
    missing = 0
    reciprocals = series_reciprocals()
    log_tail = np.empty(ages.shape[0])
    for d in range(r.shape[0]):
        r_d, alpha_d, a_d, b_d = r[d], alpha[d], a[d], b[d]
        second = a_d - 1.0  # a_ - 1: the second argument after Euler's transformation
        for i in range(ages.shape[0]):
            log_tail[i] = np.log(alpha_d + ages[i]) - np.log(alpha_d + ages[i] + t)
        for g in range(group_x.shape[0]):
            x = group_x[g]
            s = r_d + x
            c = a_d + b_d + x + shift - 1.0
            first = c - s
            regular = abs(second) >= _SINGULAR and abs(c) >= _SINGULAR and c + 1.0 < _CONCENTRATED
            have = False
            steps = 0
            z0 = u0 = dy0 = 0.0
            for j in range(group_start[g + 1] - 1, group_start[g] - 1, -1):  # z ascending
                column = position[j]
                out[d, column] = np.nan
                missing += 1
                if not regular:
                    continue
                beta_ = alpha_d + ages[pair_T[j]]
                ratio = t / beta_
                if (s + 1.0) * ratio < _SHORT:
                    have = False
                    continue
                z = t / (beta_ + t)
                if have and steps < _RESEED:
                    u, dy, ok = _advance(first, second, c, z0, u0, dy0, z, reciprocals)
                    steps += 1
                else:
                    u, dy, ok = hyp2f1_with_derivative(first, second, c, z, reciprocals)
                    steps = 0
                have = ok
                if not ok:
                    continue
                z0, u0, dy0 = z, u, dy
                # c / (a_ - 1) [1 - (1 - z)^(a_ - 1) (1 + u)], u = y - 1, without cancellation
                shrink = np.expm1(second * log_tail[pair_T[j]])  # (1 - z)^(a_ - 1) - 1
                value = -c / second * (shrink + (1.0 + shrink) * u)
                upper = s * t / beta_
                if value >= -1e-9 * upper - 1e-300 and value <= upper * (1.0 + 1e-8) + 1e-300:
                    out[d, column] = min(max(value, 0.0), upper)
                    missing -= 1
    return missing


@numba.njit(cache=True, nogil=True)
def probability_alive_table(r, log_rate, log_odds_x, x, x_code, T_code, t_x_code, shift, out):
    """``out[d, i] = 1 / (1 + exp(d))``, the BG/NBD family's P(alive) from the log-odds of
    having dropped out ``(r_d + x_i) (log(alpha_d + T_i) - log(alpha_d + t_x_i)) +
    log_odds_x[d, x_i]``, in one pass over draws x customers. The logarithms come from
    per-draw tables of the distinct values (``log_rate[d, code]``: ``log(alpha_d + value)``;
    ``log_odds_x[d, code]``: ``log(a_d / (b_d + x - 1 + shift))``); for ``shift == 0`` a
    customer without repeat purchases is alive for sure (P = 1)."""
    for d in range(out.shape[0]):
        r_d = r[d]
        for i in range(out.shape[1]):
            if shift == 0.0 and x[i] == 0.0:
                out[d, i] = 1.0
                continue
            odds = (r_d + x[i]) * (log_rate[d, T_code[i]] - log_rate[d, t_x_code[i]])
            odds += log_odds_x[d, x_code[i]]
            out[d, i] = 1.0 / (1.0 + np.exp(odds))
