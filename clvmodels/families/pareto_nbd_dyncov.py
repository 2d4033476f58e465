"""Pareto/NBD with time-varying covariates (the "extended Pareto/NBD").

Bachmann, P., Meierer, M. and Naef, J. (2021), "The Role of Time-Varying Contextual Factors in
Latent Attrition Models for Customer Base Analysis", *Marketing Science* 40(4), 783-809 ("BMN
2021"); the Pareto/NBD it extends is Schmittlein, Morrison & Colombo (1987) and Fader & Hardie
(2005), see :mod:`clvmodels.families.pareto_nbd`.

Story. While alive, customer ``i`` buys as a Poisson process whose rate moves with covariates
``z_i(t)`` that are constant within each period of a regular calendar grid (weeks, say), and
dies at a rate that moves with them too (BMN 2021 eqs. (1)-(2))::

    lambda_i(t) = lambda_i exp(purchase' z_i(t)),  lambda_i ~ Gamma(r, alpha)
    mu_i(t)     = mu_i     exp(dropout'  z_i(t)),  mu_i     ~ Gamma(s, beta)

(shape, rate), so a positive coefficient raises the rate, as CLVTools' ``trans.*`` / ``life.*``.
Time is measured from the customer's first purchase. The model is a plain Pareto/NBD run on two
*clocks*, one per process (BMN 2021 Section 3.2)::

    A_i(t) = int_0^t exp(purchase' z_i(u)) du,     B_i(t) = int_0^t exp(dropout' z_i(u)) du,

piecewise linear with slope ``a_ip = exp(purchase' z_ip)`` and ``b_ip = exp(dropout' z_ip)`` in
period ``p``. With repeat purchases at ``t_1 < ... < t_x = t_x`` and an observation length ``T``,
given the rates (alive at T, or died at some tau in (t_x, T]; BMN 2021 eq. (5))::

    L(lambda, mu) = prod_j a(t_j) lambda^x [ exp(-lambda A(T) - mu B(T))
                      + int_{t_x}^T exp(-lambda A(tau)) mu b(tau) exp(-mu B(tau)) dtau ]

and mixing over the two gammas (BMN 2021 eq. (7); the Pareto/NBD's FH 2005 eq. (18) on the
clocks)::

    L = exp(purchase' sum_j z(t_j)) G(r+x) alpha^r beta^s / G(r)
        * [ (alpha+A(T))^-(r+x) (beta+B(T))^-s + s I ]
    I = int_{t_x}^T b(tau) (alpha+A(tau))^-(r+x) (beta+B(tau))^-(s+1) dtau

The first factor needs only ``sum_j z(t_j)``, the covariates summed over the repeat purchases
(:func:`purchase_covariate_sums` in the estimator); the rest needs ``x, t_x, T`` and the path.
BMN 2021 (and CLVTools' ``pnbd_dyncov_LL``) write ``I`` as a sum over the periods of
differences of Gauss hypergeometric functions ``2F1(r+s+x, s+1; r+s+x+1; .)``, one pair per
period ("walks"). Here each period's piece of ``I`` is integrated directly: within a period the
integrand is ``b (alpha+A_0+a u)^-(r+x) (beta+B_0+b u)^-(s+1)``, smooth, positive and
decreasing, and it is integrated by 5-point Gauss-Legendre on sub-intervals short enough that
the log of the integrand falls by at most 1 across each (error below 1e-12 relative per
sub-interval). The gradient with respect to ``(log r, log alpha, log s, log beta, purchase,
dropout)`` is the analytic derivative under the integral, with the same nodes; the sums run in
log space (online log-sum-exp). Customers sharing the covariate path, the grid position of
their first purchase and x share the integrand: its full-period pieces are computed once per
such group and summed into tails over the later periods, so each customer costs two partial
periods and a tail difference (a million customers on a shared calendar table fit in about a
minute of CPU). The loops over periods are compiled with numba.

Predictions (given the path of the covariates after T). Given alive at T, ``lambda ~ Gamma(r+x,
alpha+A(T))`` and ``mu ~ Gamma(s, beta+B(T))`` independently, so (BMN 2021 Section 3.3)::

    P(alive at T) = (alpha+A(T))^-(r+x) (beta+B(T))^-s / [ (alpha+A(T))^-(r+x) (beta+B(T))^-s + s I ]
    E[X(T, T+t)]  = P(alive) (r+x) / (alpha+A(T)) int_T^{T+t} a(u) ((beta+B(T)) / (beta+B(u)))^s du

(the conditional expected transactions "CET"/DECT), the last integral in closed form per period
(``int a (c + b u)^-s du``). Discounted expected transactions over a horizon add ``exp(-delta
u)`` inside the integral (Gauss-Legendre per period). An infinite-horizon DERT would need the
covariates forever and is refused. Future purchase counts are sampled exactly: alive ~
Bernoulli(P(alive)), the two rates from their posteriors, the death at clock value ``B(T) +
Exp(1)/mu`` and Poisson counts ``lambda (A(t_k) - A(t_{k-1}))`` up to it.

With all coefficients 0 both clocks are ``t`` and everything reduces to the plain Pareto/NBD.

Per-customer paths enter through ``params`` (the family interface's mapping), built by the
estimator's ``customer_params``: the four model parameters of shape ``(n_draws, 1)`` and

* ``purchase_coefficients``, ``dropout_coefficients``: ``(n_draws, k)``;
* ``purchase_covariates``, ``dropout_covariates``: ``(n_paths, n_periods, k)``, the covariates
  on the global calendar grid (``n_paths`` is 1 when every customer shares the path, as for
  calendar covariates; NaN where a period is not given), so ``a = exp(purchase' z)`` and ``b =
  exp(dropout' z)`` are formed per period inside the kernels;
* ``path``, ``start_period``: ``(1, n_customers)``, each customer's row of the multipliers and
  the grid period holding their first purchase;
* ``first_period_length``: ``(1, n_customers)``, the time from the first purchase to the end of
  that period; ``period_length``: ``(1, 1)``, the grid's period in the model's time unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numba
import numpy as np
import pandas as pd
from scipy import special

from clvmodels.errors import InputError, NumericalError
from clvmodels.families.base import FitRows, PurchaseFamily
from clvmodels.validation import SUMMARY_COLUMNS

PARAM_NAMES = ("r", "alpha", "s", "beta")
PATH_KEYS = (
    "purchase_coefficients",
    "dropout_coefficients",
    "purchase_covariates",
    "dropout_covariates",
    "path",
    "start_period",
    "first_period_length",
    "period_length",
)
#: 5-point Gauss-Legendre rule on [0, 1]
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(5)
GL_NODES = (_GL_NODES + 1.0) / 2.0
GL_WEIGHTS = _GL_WEIGHTS / 2.0
#: sub-intervals per period are capped (the log-drop per sub-interval is <= 1 below this)
MAX_SUBINTERVALS = 512


# --------------------------------------------------------------------------------------------
# compiled kernels: one customer at a time, walking the periods of their path
# --------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def _period_end(p, first_length, period_length):
    """Customer time at which period ``p`` (0 = the period of the first purchase) ends."""
    return first_length + p * period_length


@numba.njit(cache=True)
def _multiplier(coef, Z, row, q):
    """exp(coef' z) of period ``q`` of path ``row`` (NaN when the period is missing)."""
    if q >= Z.shape[1]:
        return np.nan
    v = 0.0
    for j in range(coef.shape[0]):
        v += coef[j] * Z[row, q, j]
    return math.exp(v)


@numba.njit(cache=True)
def _log_add(m, total, value):
    """Online log-sum-exp: (new max, rescale factor of the old sum, weight of ``value``)."""
    if value > m:
        return value, math.exp(m - value), 1.0
    return m, 1.0, math.exp(value - m)


@numba.njit(cache=True)
def _period_start(p, first_length, period_length):
    """Customer time at which period ``p`` starts (0 for the period of the first purchase)."""
    return 0.0 if p == 0 else first_length + (p - 1) * period_length


@numba.njit(cache=True)
def _multipliers(covariates, d, row, q):
    """``(a, b, ok)``: the purchase and dropout multipliers of period ``q`` of path ``row`` at
    draw ``d``; ``covariates`` is (purchase coefficients, purchase covariates, dropout
    coefficients, dropout covariates), ``ok`` is False where the period is missing."""
    coef_a, Z_a, coef_b, Z_b = covariates
    a = _multiplier(coef_a[d], Z_a, row, q)
    b = _multiplier(coef_b[d], Z_b, row, q)
    return a, b, math.isfinite(a) and math.isfinite(b)


@numba.njit(cache=True)
def _log_drop(shape_a, a, base_a, shape_b, b, base_b, length):
    """How far the log of ``(base_a + a u)^-shape_a (base_b + b u)^-shape_b`` falls from
    ``u = 0`` to ``length``."""
    return shape_a * math.log1p(a * length / base_a) + shape_b * math.log1p(b * length / base_b)


@numba.njit(cache=True)
def _subintervals(drop):
    """Gauss-Legendre sub-intervals of a piece over which the log-integrand falls by ``drop``:
    at most 1 each (up to MAX_SUBINTERVALS)."""
    return min(max(1, int(math.ceil(drop))), MAX_SUBINTERVALS)


@numba.njit(cache=True)
def _segment(length, A0, B0, dA0, dB0, a, b, za, zb, shape, want_gradient, grad, quadrature):
    """log int_0^length s b (alpha+A0+a v)^-rx (beta+B0+b v)^-(s+1) dv (one period's piece of
    the dropout integral, the clocks at its start A0, B0 with derivatives dA0, dB0; ``shape``
    is (rx, r, alpha, s, beta)), and in ``grad`` the mean of the log-integrand's gradient
    (w.r.t. log r, log alpha, log s, log beta, purchase, dropout) under the integrand.
    Gauss-Legendre (``quadrature``: nodes, weights) on sub-intervals over which the
    log-integrand falls by at most 1; -inf for an empty piece."""
    rx, r, alpha, s, beta = shape
    nodes, w = quadrature
    k1 = za.shape[0]
    k2 = zb.shape[0]
    grad[:] = 0.0
    if length <= 0.0:
        return -np.inf
    n_sub = _subintervals(_log_drop(rx, a, alpha + A0, s + 1.0, b, beta + B0, length))
    h = length / n_sub
    log_sb = math.log(s * b)
    m = -np.inf
    total = 0.0
    for sub in range(n_sub):
        for g in range(nodes.shape[0]):
            v = h * (sub + nodes[g])
            An = alpha + A0 + a * v
            Bn = beta + B0 + b * v
            log_An = math.log(An)
            log_Bn = math.log(Bn)
            value = log_sb + math.log(h * w[g]) - rx * log_An - (s + 1.0) * log_Bn
            m, rescale, weight = _log_add(m, total, value)
            total = total * rescale + weight
            if want_gradient:
                if rescale != 1.0:
                    for j in range(grad.shape[0]):
                        grad[j] *= rescale
                grad[0] += weight * (-r * log_An)
                grad[1] += weight * (-alpha * rx / An)
                grad[2] += weight * (1.0 - s * log_Bn)
                grad[3] += weight * (-beta * (s + 1.0) / Bn)
                for j in range(k1):
                    grad[4 + j] += weight * (-rx * (dA0[j] + a * za[j] * v) / An)
                for j in range(k2):
                    grad[4 + k1 + j] += weight * (zb[j] - (s + 1.0) * (dB0[j] + b * zb[j] * v) / Bn)
    if want_gradient:
        for j in range(grad.shape[0]):
            grad[j] /= total
    return m + math.log(total)


@numba.njit(cache=True)
def _clocks_at(walk, p, u, za, zb, dA, dB):
    """``(A, B)``: the two clocks ``u`` into period ``p`` of a walk (``walk``: the clocks at the
    start of each period, their slopes, and their derivatives w.r.t. the coefficients), the
    derivatives written to ``dA``, ``dB`` (``za``, ``zb``: the period's covariates)."""
    clock_a, clock_b, slope_a, slope_b, d_clock_a, d_clock_b = walk
    for j in range(dA.shape[0]):
        dA[j] = d_clock_a[p, j] + slope_a[p] * za[j] * u
    for j in range(dB.shape[0]):
        dB[j] = d_clock_b[p, j] + slope_b[p] * zb[j] * u
    return clock_a[p] + slope_a[p] * u, clock_b[p] + slope_b[p] * u


@numba.njit(cache=True)
def _period_piece(walk, p, u, length, za, zb, shape, dA, dB, want_gradient, grad, quadrature):
    """:func:`_segment` over ``length`` from ``u`` into period ``p`` of a walk (as in
    :func:`_clocks_at`; ``dA``, ``dB`` are scratch for the clocks' derivatives)."""
    A0, B0 = _clocks_at(walk, p, u, za, zb, dA, dB)
    slope_a, slope_b = walk[2], walk[3]
    return _segment(
        length, A0, B0, dA, dB, slope_a[p], slope_b[p], za, zb, shape, want_gradient, grad,
        quadrature,
    )  # fmt: skip


@numba.njit(cache=True)
def _log_sum(l1, g1, l2, g2, out):
    """log(e^l1 + e^l2) and, in ``out``, the weighted mean of the gradient means g1, g2."""
    if l2 == -np.inf:
        out[:] = g1
        return l1
    if l1 == -np.inf:
        out[:] = g2
        return l2
    m = max(l1, l2)
    w1 = math.exp(l1 - m)
    w2 = math.exp(l2 - m)
    for j in range(out.shape[0]):
        out[j] = (w1 * g1[j] + w2 * g2[j]) / (w1 + w2)
    return m + math.log(w1 + w2)


@numba.njit(cache=True)
def _log_difference(l1, g1, l2, g2, out):
    """log(e^l1 - e^l2) (l1 > l2) and, in ``out``, the gradient mean of the difference."""
    if l2 == -np.inf:
        out[:] = g1
        return l1
    rho = math.exp(l2 - l1)
    for j in range(out.shape[0]):
        out[j] = (g1[j] - rho * g2[j]) / (1.0 - rho)
    return l1 + math.log1p(-rho)


@numba.njit(cache=True)
def _period_of(t, first_length, period_length, right_closed):
    """The period holding customer time ``t``: [start, end) or, ``right_closed``, (start, end]."""
    if t < first_length or (right_closed and t <= first_length):
        p = 0
    else:
        p = 1 + int(math.floor((t - first_length) / period_length))
    while p > 0 and (
        _period_start(p, first_length, period_length) > t
        or (right_closed and _period_start(p, first_length, period_length) >= t)
    ):
        p -= 1
    while _period_end(p, first_length, period_length) < t or (
        not right_closed and _period_end(p, first_length, period_length) <= t
    ):
        p += 1
    return p


@numba.njit(cache=True)
def _likelihood_kernel(
    r,
    alpha,
    s,
    beta,
    purchase,
    dropout,
    x,
    t_x,
    T,
    log_gamma_rx,
    digamma_rx,
    path,
    start,
    first_length,
    period_length,
    Z_purchase,
    Z_dropout,
    purchase_sums,
    want_gradient,
    nodes,
    node_weights,
    order,
    bounds,
):
    """Per-customer log-likelihood and its gradient w.r.t. (log r, log alpha, log s, log beta,
    purchase, dropout) (module docstring); returns (values, gradients, status) with status 1
    where a needed covariate period is missing or not finite.

    Customers come in groups (``order[bounds[g]:bounds[g+1]]``) sharing the path, the grid
    position of the first purchase and x, hence the integrand of I. Per group the clocks and
    each full period's piece of I are computed once, and summed into tails over the later
    periods; a customer's I is then the piece from t_x to the end of its period, the difference
    of two tails (the full periods in between) and the piece from the start of T's period to T.
    The integrand decreases, so the tail difference loses at most a factor (span of the group) /
    (T - t_x) of precision, a few hundred ulps at worst."""
    n = x.shape[0]
    k1 = purchase.shape[0]
    k2 = dropout.shape[0]
    n_par = 4 + k1 + k2
    values = np.empty(n)
    gradients = np.zeros((n, n_par)) if want_gradient else np.zeros((1, n_par))
    status = np.zeros(n, dtype=np.int64)
    n_periods = Z_purchase.shape[1]
    log_alpha = math.log(alpha)
    log_beta = math.log(beta)
    lgamma_r = math.lgamma(r)
    quadrature = (nodes, node_weights)
    g_a = np.zeros(n_par)
    g_b = np.zeros(n_par)
    g_m = np.zeros(n_par)
    g_i = np.zeros(n_par)
    g_e = np.zeros(n_par)
    dA1 = np.zeros(k1)
    dB1 = np.zeros(k2)
    dA_run = np.zeros(k1)
    dB_run = np.zeros(k2)
    for group in range(bounds.shape[0] - 1):
        c0 = order[bounds[group]]
        row = path[c0]
        first = first_length[c0]
        rx = r + x[c0]
        longest = 0.0
        for idx in range(bounds[group], bounds[group + 1]):
            longest = max(longest, T[order[idx]])
        # full periods are needed only after the period of the earliest t_x
        lowest = _period_of(longest, first, period_length, True)
        for idx in range(bounds[group], bounds[group + 1]):
            lowest = min(lowest, _period_of(t_x[order[idx]], first, period_length, False) + 1)
        P = _period_of(longest, first, period_length, True) + 1
        clock_a = np.empty(P)
        clock_b = np.empty(P)
        slope_a = np.empty(P)
        slope_b = np.empty(P)
        d_clock_a = np.empty((P, k1))
        d_clock_b = np.empty((P, k2))
        walk = (clock_a, clock_b, slope_a, slope_b, d_clock_a, d_clock_b)
        shape = (rx, r, alpha, s, beta)
        tail_log = np.empty(P)
        tail_grad = np.zeros((P, n_par))
        piece_log = np.empty(P)
        piece_grad = np.zeros((P, n_par))
        A = 0.0
        B = 0.0
        dA_run[:] = 0.0
        dB_run[:] = 0.0
        missing = False
        for p in range(P):
            q = start[c0] + p
            if q >= n_periods:
                missing = True
                break
            za = Z_purchase[row, q]
            zb = Z_dropout[row, q]
            la = 0.0
            for j in range(k1):
                la += purchase[j] * za[j]
            lb = 0.0
            for j in range(k2):
                lb += dropout[j] * zb[j]
            if not (math.isfinite(la) and math.isfinite(lb)):
                missing = True
                break
            a = math.exp(la)
            b = math.exp(lb)
            clock_a[p] = A
            clock_b[p] = B
            slope_a[p] = a
            slope_b[p] = b
            for j in range(k1):
                d_clock_a[p, j] = dA_run[j]
            for j in range(k2):
                d_clock_b[p, j] = dB_run[j]
            length = _period_end(p, first, period_length) - _period_start(p, first, period_length)
            piece_log[p] = -np.inf
            if lowest <= p < P - 1:
                piece_log[p] = _period_piece(
                    walk, p, 0.0, length, za, zb, shape, dA1, dB1, want_gradient, piece_grad[p],
                    quadrature,
                )  # fmt: skip
            A += a * length
            B += b * length
            for j in range(k1):
                dA_run[j] += a * za[j] * length
            for j in range(k2):
                dB_run[j] += b * zb[j] * length
        if missing:
            for idx in range(bounds[group], bounds[group + 1]):
                status[order[idx]] = 1
                values[order[idx]] = np.nan
            continue
        tail_log[P - 1] = -np.inf
        for p in range(P - 2, -1, -1):
            tail_log[p] = _log_sum(
                piece_log[p], piece_grad[p], tail_log[p + 1], tail_grad[p + 1], tail_grad[p]
            )
        for idx in range(bounds[group], bounds[group + 1]):
            i = order[idx]
            Ti = T[i]
            txi = t_x[i]
            p2 = _period_of(Ti, first, period_length, True)
            u2 = Ti - _period_start(p2, first, period_length)
            zb2 = Z_dropout[row, start[c0] + p2]
            za2 = Z_purchase[row, start[c0] + p2]
            A_T, B_T = _clocks_at(walk, p2, u2, za2, zb2, dA1, dB1)
            # the alive term (alpha+A(T))^-(r+x) (beta+B(T))^-s
            log_e = -rx * math.log(alpha + A_T) - s * math.log(beta + B_T)
            if want_gradient:
                g_e[0] = -r * math.log(alpha + A_T)
                g_e[1] = -alpha * rx / (alpha + A_T)
                g_e[2] = -s * math.log(beta + B_T)
                g_e[3] = -beta * s / (beta + B_T)
                for j in range(k1):
                    g_e[4 + j] = -rx * dA1[j] / (alpha + A_T)
                for j in range(k2):
                    g_e[4 + k1 + j] = -s * dB1[j] / (beta + B_T)
            log_i = -np.inf
            if txi < Ti:
                p1 = min(_period_of(txi, first, period_length, False), p2)
                u1 = txi - _period_start(p1, first, period_length)
                za1 = Z_purchase[row, start[c0] + p1]
                zb1 = Z_dropout[row, start[c0] + p1]
                if p1 == p2:
                    log_i = _period_piece(
                        walk, p1, u1, Ti - txi, za1, zb1, shape, dA1, dB1, want_gradient, g_i,
                        quadrature,
                    )  # fmt: skip
                else:
                    end1 = _period_end(p1, first, period_length)
                    log_first = _period_piece(
                        walk, p1, u1, end1 - txi, za1, zb1, shape, dA1, dB1, want_gradient, g_a,
                        quadrature,
                    )  # fmt: skip
                    log_last = _period_piece(
                        walk, p2, 0.0, u2, za2, zb2, shape, dA1, dB1, want_gradient, g_b,
                        quadrature,
                    )  # fmt: skip
                    log_i = _log_sum(log_first, g_a, log_last, g_b, g_i)
                    if p2 > p1 + 1:
                        log_middle = _log_difference(
                            tail_log[p1 + 1], tail_grad[p1 + 1], tail_log[p2], tail_grad[p2], g_m
                        )
                        for j in range(n_par):
                            g_a[j] = g_i[j]
                        log_i = _log_sum(log_i, g_a, log_middle, g_m, g_i)
            total = _log_sum(log_e, g_e, log_i, g_i, g_m)
            covariate_term = 0.0
            for j in range(k1):
                covariate_term += purchase[j] * purchase_sums[i, j]
            values[i] = (
                covariate_term + log_gamma_rx[i] - lgamma_r + r * log_alpha + s * log_beta + total
            )
            if want_gradient:
                gi = gradients[i]
                for j in range(n_par):
                    gi[j] = g_m[j]
                gi[0] += r * (digamma_rx[i] + log_alpha)
                gi[1] += r
                gi[2] += s * log_beta
                gi[3] += s
                for j in range(k1):
                    gi[4 + j] += purchase_sums[i, j]
    return values, gradients, status


@numba.njit(cache=True)
def _alive_kernel(model, covariates, x, t_x, T, customer_path, nodes, w):
    """Per (draw, customer): log P(alive at T), A(T), B(T); status 1 where a period is
    missing. ``model``: r, alpha, s, beta with one value per draw; ``covariates``: as in
    :func:`_multipliers` (a coefficient row per draw; covariates (paths, periods, columns));
    ``customer_path``: path, start period, first period's length, period length."""
    r, alpha, s, beta = model
    path, start, first_length, period_length = customer_path
    n_draws = r.shape[0]
    n = x.shape[0]
    log_alive = np.empty((n_draws, n))
    clock_a = np.empty((n_draws, n))
    clock_b = np.empty((n_draws, n))
    status = np.zeros(n, dtype=np.int64)
    for d in range(n_draws):
        rd, ad, sd, bd = r[d], alpha[d], s[d], beta[d]
        for i in range(n):
            rx = rd + x[i]
            A = 0.0
            B = 0.0
            m = -np.inf
            total = 0.0
            p = 0
            lo = 0.0
            while lo < T[i]:
                hi = _period_end(p, first_length[i], period_length)
                hi_c = min(hi, T[i])
                a, b, ok = _multipliers(covariates, d, path[i], start[i] + p)
                if not ok:
                    status[i] = 1
                    break
                u0 = max(lo, t_x[i])
                if hi_c > u0:
                    A0 = A + a * (u0 - lo)
                    B0 = B + b * (u0 - lo)
                    length = hi_c - u0
                    n_sub = _subintervals(_log_drop(rx, a, ad + A0, sd + 1.0, b, bd + B0, length))
                    h = length / n_sub
                    for sub in range(n_sub):
                        for g in range(nodes.shape[0]):
                            v = h * (sub + nodes[g])
                            value = (
                                math.log(sd * h * w[g] * b)
                                - rx * math.log(ad + A0 + a * v)
                                - (sd + 1.0) * math.log(bd + B0 + b * v)
                            )
                            m, rescale, weight = _log_add(m, total, value)
                            total = total * rescale + weight
                A += a * (hi_c - lo)
                B += b * (hi_c - lo)
                lo = hi
                p += 1
            alive = -rx * math.log(ad + A) - sd * math.log(bd + B)
            if total > 0.0:
                big = max(m, alive)
                log_alive[d, i] = alive - (
                    big + math.log(math.exp(alive - big) + total * math.exp(m - big))
                )
            else:
                log_alive[d, i] = 0.0
            clock_a[d, i] = A
            clock_b[d, i] = B
    return log_alive, clock_a, clock_b, status


@numba.njit(cache=True)
def _horizon_outputs(n_draws, n, n_ends):
    """The outputs of a walk towards horizons: values per (draw, customer, horizon) and a status
    per customer (1 where a period is missing)."""
    return np.zeros((n_draws, n, n_ends)), np.zeros(n, dtype=np.int64)


@numba.njit(cache=True)
def _next_piece(covariates, customer_path, T, ends, d, i, k, p, status):
    """``(a, b, ok, stop)`` of a walk from ``T[i]`` over the periods towards the horizon
    ``T[i] + ends[k]``: the multipliers of period ``p`` of customer ``i`` at draw ``d``
    (``ok`` False, and ``status[i]`` 1, where the period is missing; see :func:`_multipliers`)
    and where the walk leaves the period (its end, or the horizon within it)."""
    path, start, first_length, period_length = customer_path
    a, b, ok = _multipliers(covariates, d, path[i], start[i] + p)
    if not ok:
        status[i] = 1
    return a, b, ok, min(_period_end(p, first_length[i], period_length), T[i] + ends[k])


@numba.njit(cache=True)
def _next_horizon_or_period(out, d, i, k, p, at_horizon, value):
    """``(k, p)`` after a piece of a walk over periods towards increasing horizons: at horizon
    ``k`` its ``value`` is recorded and the walk goes on to the next horizon, otherwise to the
    next period."""
    if at_horizon:
        out[d, i, k] = value
        return k + 1, p
    return k, p + 1


@numba.njit(cache=True)
def _future_kernel(s, beta, covariates, T, clock_b, customer_path, ends, delta, nodes, w):
    """Per (draw, customer, horizon): int_T^{T+t} e^{-delta u} a(u) ((beta+B(T))/(beta+B(u)))^s du
    for the increasing horizons ``ends`` (closed form per period when delta = 0, Gauss-Legendre
    otherwise); status 1 where a period of the horizon is missing. Arguments as in
    :func:`_alive_kernel`."""
    path, start, first_length, period_length = customer_path
    out, status = _horizon_outputs(s.shape[0], T.shape[0], ends.shape[0])
    for d in range(out.shape[0]):
        sd, bd = s[d], beta[d]
        for i in range(out.shape[1]):
            base = bd + clock_b[d, i]
            p = _period_of(T[i], first_length[i], period_length, False)  # the period holding T
            lo = T[i]
            Bu = base
            value = 0.0
            k = 0
            while k < ends.shape[0]:
                a, b, ok, stop = _next_piece(covariates, customer_path, T, ends, d, i, k, p, status)
                if not ok:
                    break
                length = stop - lo
                if length > 0.0:
                    if delta == 0.0:
                        # int a (Bu + b v)^-s dv over the period, written with log1p and
                        # expm1 so that a slow dropout clock (b -> 0) loses no digits
                        growth = math.log1p(b * length / Bu)
                        if abs(sd - 1.0) < 1e-12:
                            piece = a / b * growth
                        else:
                            piece = (
                                a
                                / b
                                * math.exp((1.0 - sd) * math.log(Bu))
                                * -math.expm1((1.0 - sd) * growth)
                                / (sd - 1.0)
                            )
                        value += piece * math.exp(sd * math.log(base))
                    else:
                        n_sub = max(
                            1, int(math.ceil(length * delta + sd * math.log1p(b * length / Bu)))
                        )
                        h = length / n_sub
                        for sub in range(n_sub):
                            for g in range(nodes.shape[0]):
                                v = h * (sub + nodes[g])
                                value += (
                                    h
                                    * w[g]
                                    * a
                                    * math.exp(
                                        -delta * (lo + v - T[i])
                                        + sd * (math.log(base) - math.log(Bu + b * v))
                                    )
                                )
                    Bu += b * length
                    lo = stop
                k, p = _next_horizon_or_period(out, d, i, k, p, stop >= T[i] + ends[k], value)
    return out, status


@numba.njit(cache=True)
def _exposure_kernel(covariates, T, death_clock, customer_path, ends):
    """Per (draw, customer, horizon): A(min(T + t_k, death)) - A(T) where the death is the time
    at which B, from B(T), has grown by ``death_clock``; status 1 where a period is missing.
    Arguments as in :func:`_alive_kernel`."""
    path, start, first_length, period_length = customer_path
    out, status = _horizon_outputs(death_clock.shape[0], T.shape[0], ends.shape[0])
    for d in range(out.shape[0]):
        for i in range(out.shape[1]):
            left = death_clock[d, i]
            if left <= 0.0:
                continue
            p = _period_of(T[i], first_length[i], period_length, False)  # the period holding T
            lo = T[i]
            exposure = 0.0
            k = 0
            dead = False
            while k < ends.shape[0]:
                if dead:
                    out[d, i, k] = exposure
                    k += 1
                    continue
                a, b, ok, stop = _next_piece(covariates, customer_path, T, ends, d, i, k, p, status)
                if not ok:
                    break
                length = stop - lo
                if length > 0.0:
                    if b * length >= left:
                        exposure += a * left / b
                        dead = True
                        continue
                    left -= b * length
                    exposure += a * length
                    lo = stop
                k, p = _next_horizon_or_period(out, d, i, k, p, stop >= T[i] + ends[k], exposure)
    return out, status


@numba.njit(cache=True)
def _log_nbd(k, shape, rate, exposure):
    """log P(N = k) for N ~ Poisson(lambda e), lambda ~ Gamma(shape, rate)."""
    if exposure <= 0.0:
        return 0.0 if k == 0 else -np.inf
    log_total = math.log(rate + exposure)
    return (
        math.lgamma(shape + k)
        - math.lgamma(shape)
        - math.lgamma(k + 1.0)
        + shape * (math.log(rate) - log_total)
        + k * (math.log(exposure) - log_total)
    )


@numba.njit(cache=True)
def _count_probability_kernel(
    model, covariates, x, T, clock_a, clock_b, customer_path, horizon, k, nodes, w
):
    """Per (draw, customer): P(X(T, T+t) = k | alive at T), mixing the NBD count of the
    exposure A(T + min(u, t)) - A(T) over the remaining lifetime u (survival ((beta+B(T)) /
    (beta+B(T+u)))^s): the survivors' term plus Gauss-Legendre over each period of the death
    density; status 1 where a period is missing. Arguments as in :func:`_alive_kernel`."""
    r, alpha, s, beta = model
    path, start, first_length, period_length = customer_path
    n_draws = r.shape[0]
    n = x.shape[0]
    out = np.zeros((n_draws, n))
    status = np.zeros(n, dtype=np.int64)
    for d in range(n_draws):
        sd = s[d]
        for i in range(n):
            shape = r[d] + x[i]
            rate = alpha[d] + clock_a[d, i]
            base = beta[d] + clock_b[d, i]
            p = _period_of(T[i], first_length[i], period_length, False)  # the period holding T
            lo = T[i]
            stop_all = T[i] + horizon
            exposure = 0.0
            Bu = base
            total = 0.0
            while lo < stop_all:
                hi = min(_period_end(p, first_length[i], period_length), stop_all)
                a, b, ok = _multipliers(covariates, d, path[i], start[i] + p)
                if not ok:
                    status[i] = 1
                    break
                length = hi - lo
                if length > 0.0:
                    drop = _log_drop(shape + k, a, rate + exposure, sd + 1.0, b, Bu, length)
                    n_sub = _subintervals(drop)
                    if exposure == 0.0 and k > 0:
                        n_sub += 2
                    h = length / n_sub
                    for sub in range(n_sub):
                        for g in range(nodes.shape[0]):
                            v = h * (sub + nodes[g])
                            log_density = (
                                math.log(sd * b)
                                + sd * math.log(base)
                                - (sd + 1.0) * math.log(Bu + b * v)
                            )
                            total += (
                                h
                                * w[g]
                                * math.exp(log_density + _log_nbd(k, shape, rate, exposure + a * v))
                            )
                    exposure += a * length
                    Bu += b * length
                lo = hi
                p += 1
            survivors = math.exp(sd * (math.log(base) - math.log(Bu)))
            out[d, i] = total + survivors * math.exp(_log_nbd(k, shape, rate, exposure))
    return out, status


@numba.njit(cache=True)
def _simulate_kernel(lam, death_clock, a_mult, b_mult, path, start, first_length, period_length, T):
    """For simulated customers alive until B reaches ``death_clock[i]``: the A clock at
    min(death, T) (the repeat purchases are a Poisson process of rate ``lam[i]`` on the A clock
    up to it) and min(death, T)."""
    n = lam.shape[0]
    end_a = np.zeros(n)
    end_t = np.zeros(n)
    for i in range(n):
        left = death_clock[i]
        A = 0.0
        lo = 0.0
        p = 0
        while lo < T[i]:
            hi = min(_period_end(p, first_length[i], period_length), T[i])
            q = start[i] + p
            a = a_mult[path[i], q]
            b = b_mult[path[i], q]
            length = hi - lo
            if b * length >= left:
                A += a * left / b
                lo = lo + left / b
                break
            left -= b * length
            A += a * length
            lo = hi
            p += 1
        end_a[i] = A
        end_t[i] = min(lo, T[i])
    return end_a, end_t


@numba.njit(cache=True)
def _clock_inverse(clock_values, owner, a_mult, path, start, first_length, period_length):
    """Customer times at which the A clock of customer ``owner[j]`` reaches ``clock_values[j]``
    (sorted by owner, then value)."""
    out = np.empty(clock_values.shape[0])
    for j in range(clock_values.shape[0]):
        i = owner[j]
        target = clock_values[j]
        A = 0.0
        lo = 0.0
        p = 0
        while True:
            hi = _period_end(p, first_length[i], period_length)
            a = a_mult[path[i], start[i] + p]
            if A + a * (hi - lo) >= target:
                out[j] = lo + (target - A) / a
                break
            A += a * (hi - lo)
            lo = hi
            p += 1
    return out


# --------------------------------------------------------------------------------------------
# the math on numpy arrays
# --------------------------------------------------------------------------------------------
def _check_status(status: np.ndarray, what: str) -> None:
    if np.any(status):
        missing = np.flatnonzero(status)
        raise InputError(
            f"{what}: the covariate path of {len(missing)} customers (rows {missing[:10].tolist()}"
            f"{' ...' if len(missing) > 10 else ''}) does not cover the periods needed (missing "
            "or non-finite covariate values). Fix: give covariate values for every period from "
            "each customer's first purchase to the end of the horizon (future periods with "
            "model.with_future_covariates(table)); a missing period is never carried forward."
        )


def likelihood_groups(x, path, start, first_length):
    """``(order, bounds)``: the customers sorted into groups of equal (path, grid position of
    the first purchase, x), which share the likelihood's integrand; group g is
    ``order[bounds[g]:bounds[g+1]]``."""
    if len(x) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
    order = np.lexsort((x, first_length, start, path))
    keys = np.column_stack([path[order], start[order], first_length[order], x[order]])
    change = np.any(keys[1:] != keys[:-1], axis=1)
    bounds = np.concatenate([[0], np.flatnonzero(change) + 1, [len(x)]])
    return order.astype(np.int64), bounds.astype(np.int64)


def log_likelihood_terms(
    log_params: np.ndarray,
    n_purchase: int,
    x,
    t_x,
    T,
    path,
    start,
    first_length,
    period_length: float,
    Z_purchase,
    Z_dropout,
    purchase_sums,
    want_gradient: bool = True,
):
    """Per-customer log-likelihood (BMN 2021 eq. (7)) and its gradient with respect to
    ``log_params = (log r, log alpha, log s, log beta, purchase..., dropout...)``: arrays of
    shape ``(n,)`` and ``(n, 4 + k1 + k2)``."""
    log_params = np.asarray(log_params, dtype=float)
    r, alpha, s, beta = np.exp(log_params[:4])
    purchase = np.ascontiguousarray(log_params[4 : 4 + n_purchase])
    dropout = np.ascontiguousarray(log_params[4 + n_purchase :])
    x = np.asarray(x, dtype=float)
    path = np.asarray(path, dtype=np.int64)
    start = np.asarray(start, dtype=np.int64)
    first_length = np.asarray(first_length, dtype=float)
    order, bounds = likelihood_groups(x, path, start, first_length)
    values, gradients, status = _likelihood_kernel(
        r,
        alpha,
        s,
        beta,
        purchase,
        dropout,
        x,
        np.asarray(t_x, dtype=float),
        np.asarray(T, dtype=float),
        special.gammaln(r + x),
        special.digamma(r + x) - special.digamma(r),
        path,
        start,
        first_length,
        float(period_length),
        Z_purchase,
        Z_dropout,
        purchase_sums,
        want_gradient,
        GL_NODES,
        GL_WEIGHTS,
        order,
        bounds,
    )
    _check_status(status, "the time-varying Pareto/NBD likelihood")
    return values, gradients


def rows_log_likelihood(log_params, rows: FitRows, n_purchase: int, want_gradient: bool = True):
    """:func:`log_likelihood_terms` of the distinct fitting ``rows`` (their columns and the
    covariate arrays in ``rows.aux``, as the estimator builds them)."""
    aux = rows.aux
    return log_likelihood_terms(
        log_params,
        n_purchase,
        rows["frequency"],
        rows["recency"],
        rows["T"],
        rows["path"],
        rows["start_period"],
        rows["first_period_length"],
        aux["period_length"],
        aux["purchase_covariates"],
        aux["dropout_covariates"],
        aux["purchase_sums"],
        want_gradient=want_gradient,
    )


def negative_log_likelihood(log_params, rows: FitRows, n_purchase: int):
    """``(value, gradient)``: minus the weighted total log-likelihood of ``rows`` and its
    gradient (:func:`rows_log_likelihood`)."""
    values, gradients = rows_log_likelihood(log_params, rows, n_purchase)
    w = rows.counts
    total = float(w @ values)
    if not np.isfinite(total):
        return np.inf, np.full(len(log_params), np.nan)
    return -total, -(w @ gradients)


def _customers(x, t_x, T):
    return tuple(np.ascontiguousarray(np.asarray(v, dtype=float).reshape(-1)) for v in (x, t_x, T))


def unpack_params(params: Mapping, n_customers: int) -> dict:
    """The arrays of ``params`` as the kernels take them: ``r, alpha, s, beta`` of shape
    ``(n_draws,)``, coefficients ``(n_draws, k)``, covariates ``(n_paths, n_periods, k)`` and
    the per-customer path arrays of length ``n_customers``."""
    missing = [k for k in (*PARAM_NAMES, *PATH_KEYS) if k not in params]
    if missing:
        raise InputError(
            f"the time-varying Pareto/NBD needs the covariate path in params ({missing} missing); "
            "build params with TimeVaryingParetoNBD.customer_params(summary)"
        )
    names = ("purchase_coefficients", "dropout_coefficients")
    coefficients = [np.asarray(params[k], dtype=float) for k in names]
    coefficients = [c.reshape(1, -1) if c.ndim < 2 else c for c in coefficients]
    scalars = [np.asarray(params[k], dtype=float).reshape(-1) for k in PARAM_NAMES]
    n_draws = max(max(len(v) for v in scalars), *(c.shape[0] for c in coefficients))
    out = {
        k: np.ascontiguousarray(np.broadcast_to(v, (n_draws,)))
        for k, v in zip(PARAM_NAMES, scalars, strict=True)
    }
    for k, c in zip(names, coefficients, strict=True):
        out[k] = np.ascontiguousarray(np.broadcast_to(c, (n_draws, c.shape[1])))
    for k in ("purchase_covariates", "dropout_covariates"):
        out[k] = np.ascontiguousarray(params[k], dtype=float)
    for k, dtype in (
        ("path", np.int64),
        ("start_period", np.int64),
        ("first_period_length", float),
    ):
        value = np.asarray(params[k]).reshape(-1)
        out[k] = np.ascontiguousarray(np.broadcast_to(value, (n_customers,)).astype(dtype))
    out["period_length"] = float(np.asarray(params["period_length"]).reshape(-1)[0])
    return out


def _model_args(p: dict) -> tuple:
    return tuple(p[k] for k in PARAM_NAMES)


def _path_args(p: dict) -> tuple:
    return (
        p["purchase_coefficients"],
        p["purchase_covariates"],
        p["dropout_coefficients"],
        p["dropout_covariates"],
    )


def _customer_path(p: dict) -> tuple:
    return p["path"], p["start_period"], p["first_period_length"], p["period_length"]


def alive_terms(params: Mapping, x, t_x, T):
    """``(log P(alive), A(T), B(T))``, each ``(n_draws, n_customers)``."""
    x, t_x, T = _customers(x, t_x, T)
    p = unpack_params(params, len(x))
    log_alive, clock_a, clock_b, status = _alive_kernel(
        _model_args(p), _path_args(p), x, t_x, T, _customer_path(p), GL_NODES, GL_WEIGHTS
    )
    _check_status(status, "P(alive)")
    return log_alive, clock_a, clock_b


def _history(params: Mapping, x, t_x, T, p_alive=None):
    """What every forecast starts from: the customer arrays, the unpacked ``params``,
    ``(log P(alive), A(T), B(T))`` and P(alive) (``p_alive`` when given)."""
    x, t_x, T = _customers(x, t_x, T)
    p = unpack_params(params, len(x))
    log_alive, clock_a, clock_b = alive_terms(params, x, t_x, T)
    alive = np.exp(log_alive) if p_alive is None else np.broadcast_to(p_alive, log_alive.shape)
    return (x, t_x, T), p, (log_alive, clock_a, clock_b), alive


def _one_horizon(t) -> float:
    if np.size(t) != 1:
        raise InputError("the time-varying Pareto/NBD takes one horizon t (a number) per call")
    return float(np.asarray(t).reshape(-1)[0])


def probability_alive(params: Mapping, x, t_x, T) -> np.ndarray:
    """P(alive at T | x, t_x, T, path) (module docstring), ``(n_draws, n_customers)``."""
    return np.exp(alive_terms(params, x, t_x, T)[0])


def expected_purchases_at(params: Mapping, x, t_x, T, ends, p_alive=None, delta: float = 0.0):
    """E[X(T, T+t] | history, path] at each of the increasing horizons ``ends`` (> 0): shape
    ``(n_draws, n_customers, len(ends))`` (module docstring; with ``delta`` > 0 the purchases
    are discounted continuously, DECT)."""
    ends = np.ascontiguousarray(ends, dtype=float).reshape(-1)
    if np.any(ends <= 0) or np.any(np.diff(ends) < 0):
        raise InputError("the horizons must be increasing numbers > 0")
    (x, _, T), p, (_, clock_a, clock_b), alive = _history(params, x, t_x, T, p_alive)
    integral, status = _future_kernel(
        p["s"], p["beta"], _path_args(p), T, clock_b, _customer_path(p), ends, float(delta),
        GL_NODES, GL_WEIGHTS,
    )  # fmt: skip
    _check_status(status, "the forecast")
    rate = (p["r"][:, None] + x) / (p["alpha"][:, None] + clock_a)
    values = (alive * rate)[..., None] * integral
    if not np.all(np.isfinite(values)):
        raise NumericalError("time-varying Pareto/NBD: expected purchases are not finite")
    return values


def expected_purchases(params: Mapping, x, t_x, T, t, p_alive=None, delta: float = 0.0):
    """E[X(T, T+t] | history, path] (module docstring; with ``delta`` > 0 the purchases are
    discounted continuously, DECT), ``(n_draws, n_customers)``. ``t`` a number >= 0."""
    t = _one_horizon(t)
    if not t >= 0:
        raise InputError(f"the horizon t must be >= 0, got {t}")
    if t == 0:
        return np.zeros_like(alive_terms(params, x, t_x, T)[0])
    return expected_purchases_at(params, x, t_x, T, [t], p_alive, delta)[..., 0]


def purchase_probability(params: Mapping, x, t_x, T, t, k, p_alive=None):
    """P(X(T, T+t] = k | history, path), ``(n_draws, n_customers)``: a dead customer buys
    nothing; given alive, the NBD count of the clock exposure mixed over the remaining lifetime
    (module docstring; :func:`_count_probability_kernel`)."""
    t = _one_horizon(t)
    k = int(k)
    if not t >= 0 or k < 0:
        raise InputError(f"t must be >= 0 and k a whole number >= 0, got t={t}, k={k}")
    (x, _, T), p, (_, clock_a, clock_b), alive = _history(params, x, t_x, T, p_alive)
    given_alive, status = _count_probability_kernel(
        _model_args(p), _path_args(p), x, T, clock_a, clock_b, _customer_path(p), t, k,
        GL_NODES, GL_WEIGHTS,
    )  # fmt: skip
    _check_status(status, "the forecast")
    values = alive * given_alive + (1.0 - alive) * (k == 0)
    if not np.all((values >= -1e-12) & (values <= 1 + 1e-9)):
        raise NumericalError("time-varying Pareto/NBD: a purchase probability is outside [0, 1]")
    return np.clip(values, 0.0, 1.0)


def _posterior_rates(p: dict, x, clock_a, clock_b, rng):
    """lambda ~ Gamma(r+x, alpha+A(T)), mu ~ Gamma(s, beta+B(T)): the rates given alive."""
    lam = rng.gamma(p["r"][:, None] + x, 1.0 / (p["alpha"][:, None] + clock_a))
    mu = rng.gamma(
        np.broadcast_to(p["s"][:, None], clock_b.shape), 1.0 / (p["beta"][:, None] + clock_b)
    )
    return lam, mu


def sample_latent(params: Mapping, x, t_x, T, rng: np.random.Generator) -> dict:
    """One draw of (alive at T, lambda, mu) per draw and customer given the history and path:
    alive ~ Bernoulli(P(alive)) and the rates from their posteriors given alive (module
    docstring), the distribution that drives the future."""
    (x, _, _), p, (log_alive, clock_a, clock_b), alive_p = _history(params, x, t_x, T)
    alive = rng.random(log_alive.shape) < alive_p
    lam, mu = _posterior_rates(p, x, clock_a, clock_b, rng)
    return {"alive": alive, "lambda": lam, "mu": mu}


def sample_future_purchases(params: Mapping, x, t_x, T, t_grid, rng, p_alive=None):
    """Cumulative purchases at the increasing times ``t_grid`` after T, drawn exactly (module
    docstring): int64 ``(n_draws, n_customers, len(t_grid))``."""
    t_grid = np.asarray(t_grid, dtype=float).reshape(-1)
    if np.any(np.diff(t_grid) < 0) or np.any(t_grid < 0):
        raise InputError("t_grid must be increasing times >= 0")
    (x, _, T), p, (log_alive, clock_a, clock_b), alive_p = _history(params, x, t_x, T, p_alive)
    alive = rng.random(log_alive.shape) < alive_p
    lam, mu = _posterior_rates(p, x, clock_a, clock_b, rng)
    death_clock = np.where(alive, rng.standard_exponential(log_alive.shape) / mu, 0.0)
    exposure, status = _exposure_kernel(
        _path_args(p),
        T,
        np.ascontiguousarray(death_clock),
        _customer_path(p),
        np.ascontiguousarray(t_grid),
    )
    _check_status(status, "the forecast")
    increments = np.diff(exposure, axis=-1, prepend=0.0)
    counts = rng.poisson(np.maximum(lam[..., None] * increments, 0.0))
    return np.cumsum(counts, axis=-1).astype(np.int64)


def simulate_purchases(
    r: float,
    alpha: float,
    s: float,
    beta: float,
    purchase_multiplier: np.ndarray,
    dropout_multiplier: np.ndarray,
    path: np.ndarray,
    start: np.ndarray,
    first_period_length: np.ndarray,
    period_length: float,
    T: np.ndarray,
    rng: np.random.Generator,
):
    """Draw customers from the model on given covariate paths (multipliers ``(n_paths,
    n_periods)``): returns ``(purchase_times, owner, latent)`` with the repeat-purchase times
    (customer time, sorted per customer), the customer of each, and the latent ``lambda``,
    ``mu``, ``death`` (customer time of death, inf if after T)."""
    T = np.asarray(T, dtype=float)
    n = len(T)
    path = np.asarray(path, dtype=np.int64)
    start = np.asarray(start, dtype=np.int64)
    first = np.asarray(first_period_length, dtype=float)
    a_mult = np.ascontiguousarray(purchase_multiplier, dtype=float)
    b_mult = np.ascontiguousarray(dropout_multiplier, dtype=float)
    lam = rng.gamma(r, 1.0 / alpha, n)
    mu = rng.gamma(s, 1.0 / beta, n)
    death_clock = rng.standard_exponential(n) / mu
    end_a, end_t = _simulate_kernel(
        lam, death_clock, a_mult, b_mult, path, start, first, float(period_length), T
    )
    counts = rng.poisson(lam * end_a)
    owner = np.repeat(np.arange(n), counts)
    clock_values = rng.random(len(owner)) * end_a[owner]
    order = np.lexsort((clock_values, owner))
    owner, clock_values = owner[order], clock_values[order]
    times = _clock_inverse(clock_values, owner, a_mult, path, start, first, float(period_length))
    died = end_t < T
    death = np.where(died, end_t, np.inf)
    return times, owner, {"lambda": lam, "mu": mu, "death": death}


def simulate_histories(params: Mapping, T, rng: np.random.Generator) -> dict:
    """Calibration histories drawn afresh from the model on each customer's covariate path
    (``params`` as :func:`unpack_params` takes them; ``T`` one age per customer): for every
    draw, the customers' rates from the gamma mixing distributions and their purchases and
    death on the two clocks (:func:`simulate_purchases`). Returns ``frequency``, ``recency``
    and ``T``, each ``(n_draws, n_customers)``; purchases are counted at their exact times."""
    T = np.ascontiguousarray(np.asarray(T, dtype=float).reshape(-1))
    n = len(T)
    p = unpack_params(params, n)
    n_draws = len(p["r"])
    frequency = np.zeros((n_draws, n))
    recency = np.zeros((n_draws, n))
    for d in range(n_draws):
        times, owner, _ = simulate_purchases(
            *(float(p[k][d]) for k in PARAM_NAMES),
            np.exp(p["purchase_covariates"] @ p["purchase_coefficients"][d]),
            np.exp(p["dropout_covariates"] @ p["dropout_coefficients"][d]),
            *_customer_path(p),
            T,
            rng,
        )
        frequency[d] = np.bincount(owner, minlength=n)
        np.maximum.at(recency[d], owner, times)
    return {"frequency": frequency, "recency": recency, "T": np.tile(T, (n_draws, 1))}


# --------------------------------------------------------------------------------------------
# the family
# --------------------------------------------------------------------------------------------
class ParetoNBDDynamicCovariatesFamily(PurchaseFamily):
    """The extended Pareto/NBD with time-varying covariates (BMN 2021) on the family interface.

    The purchase and dropout coefficients are not family parameters: they enter the fit through
    the rows (:func:`negative_log_likelihood`) and the predictions through ``params`` (module
    docstring). ``n_purchase`` is the number of purchase coefficients.

    The customer arrays are ``frequency, recency, T`` and the customer's row in the summary
    (:meth:`customer_arrays`): two customers with the same history but different covariate
    paths are different customers, so callers that merge equal rows (the valuation engine)
    keep them apart. The row itself is not read: the path is in ``params``.
    """

    name = "pareto_dyncov"
    label = "Pareto/NBD (time-varying covariates)"
    param_names = PARAM_NAMES
    latent_names = ("alive", "lambda", "mu")

    def __init__(self, n_purchase: int = 0):
        self.n_purchase = int(n_purchase)

    def settings(self) -> dict:
        return {"n_purchase": self.n_purchase}

    @classmethod
    def customer_arrays(cls, summary: pd.DataFrame) -> tuple[np.ndarray, ...]:
        """``frequency, recency, T`` and the row position (see the class docstring)."""
        x, t_x, T = (summary[c].to_numpy(dtype=float) for c in SUMMARY_COLUMNS)
        return x, t_x, T, np.arange(len(summary), dtype=float)

    def negative_log_likelihood(self, log_params, rows: FitRows):
        return negative_log_likelihood(log_params, rows, self.n_purchase)

    def log_likelihood(self, params, data):
        raise InputError(
            "the time-varying Pareto/NBD's per-customer log-likelihood needs the covariate "
            "arrays: use clvmodels.families.pareto_nbd_dyncov.log_likelihood_terms"
        )

    def probability_alive(self, params, x, t_x, T, row=None):
        return probability_alive(params, x, t_x, T)

    def expected_purchases(self, params, x, t_x, T, row, t, p_alive=None):
        return expected_purchases(params, x, t_x, T, t, p_alive=p_alive)

    def continuously_discounted_purchases(self, params, x, t_x, T, row, t, delta, p_alive=None):
        """Expected purchases in (T, T+t] discounted at the continuous rate ``delta``."""
        return expected_purchases(params, x, t_x, T, t, p_alive=p_alive, delta=delta)

    def discounted_expected_residual_transactions(
        self, params, x, t_x, T, row, delta, p_alive=None, n_nodes: int = 200
    ):
        raise InputError(
            "DERT over an infinite horizon needs the covariates forever; the time-varying "
            "Pareto/NBD values a finite horizon: use discounted_expected_transactions(summary, "
            "t, annual_discount_rate) over the future covariates, or lifetime_value(..., "
            "horizon=...)"
        )

    def expected_purchases_new_customer(self, params, t):
        raise InputError(
            "expected purchases of a new customer depend on the covariate path after their "
            "acquisition: give the customer a summary row (frequency 0, recency 0, T 0) and "
            "covariates from the acquisition on, and use expected_purchases"
        )

    def simulate(self, params, T, holdout, rng) -> dict:
        """Calibration histories over the ages ``T`` on each customer's covariate path
        (:func:`simulate_histories`); a holdout would need its own covariates, so none."""
        if holdout is not None:
            raise InputError(
                "the time-varying Pareto/NBD simulates calibration histories only (holdout=None): "
                "a holdout's purchases follow the covariates of its periods"
            )
        return simulate_histories(params, T, rng)

    def purchase_probability(self, params, x, t_x, T, row, t, k, p_alive=None):
        return purchase_probability(params, x, t_x, T, t, k, p_alive=p_alive)

    def sample_latent(self, params, x, t_x, T, row, rng):
        return sample_latent(params, x, t_x, T, rng)

    def sample_future_purchases(self, params, x, t_x, T, row, t_grid, rng, p_alive=None):
        return sample_future_purchases(params, x, t_x, T, t_grid, rng, p_alive=p_alive)

    def sample_future_purchase_periods(self, params, x, t_x, T, row, t_grid, rng, p_alive=None):
        cumulative = sample_future_purchases(params, x, t_x, T, t_grid, rng, p_alive=p_alive)
        n_periods = cumulative.shape[-1]
        pairs = np.flatnonzero(cumulative[..., -1]) if n_periods else np.zeros(0, np.intp)
        flat = cumulative.reshape(-1, n_periods)[pairs]
        per_period = np.diff(flat, axis=-1, prepend=np.zeros_like(flat[:, :1]))
        return cumulative.shape[:-1], pairs, per_period
