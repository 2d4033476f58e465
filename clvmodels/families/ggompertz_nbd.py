"""GGompertz/NBD: the gamma-Gompertz / negative binomial distribution purchase model.

Bemmaor, A. C. and Glady, N. (2012), "Modeling Purchasing Behavior with Sudden 'Death': A
Flexible Customer Lifetime Model", *Management Science* 58(5), 1012-1021 ("BG 2012"); Adler, J.
(2022), "Comment on ...", *Management Science* (errata to the conditional expectation, as in
CLVTools' ``ggomnbd_CET``).

Story. While alive, a customer buys according to a Poisson process with rate
``lambda ~ Gamma(r, alpha)`` (shape, rate). The lifetime ``tau`` is Gompertz with shape ``b``
and an individual scale ``eta ~ Gamma(s, beta)``::

    P(tau > t | eta) = exp(-eta (e^{bt} - 1))          hazard eta b e^{bt}
    P(tau > t)       = (beta / (beta + e^{bt} - 1))^s  (BG 2012 eq. (2), the gamma-Gompertz)

As ``b -> 0`` with ``beta / b`` fixed this is Pareto/NBD's exponential-gamma lifetime with
``beta_pareto = beta / b``. A customer with ``x`` repeat purchases, the last at ``t_x``,
observed for ``T`` has likelihood (BG 2012 eq. (6); CLVTools ``ggomnbd_LL_ind``), with
``B(y) = beta - 1 + e^{by}``::

    L = G(r+x) alpha^r beta^s / G(r) * [ (alpha+T)^-(r+x) B(T)^-s  +  b s I ]
    I = int_{t_x}^T (alpha+y)^-(r+x) B(y)^-(s+1) e^{by} dy

("alive at T" + "died at some y in (t_x, T]"). ``I`` has no closed form.

Numerics: the dropout integral, in one of two variables
-------------------------------------------------------
Write ``c(t) = B(t) e^{-bt} = 1 + (beta - 1) e^{-bt}`` (in logs, :func:`log_c`), so that
``B(t_x + u) = e^{b t_x} (c + expm1(bu))`` with ``c = c(t_x)``, and ``A = alpha + t_x``.

* ``beta < 1`` (``c < 1``): in ``u = y - t_x`` the integrand
  ``(A+u)^-(r+x) (c + expm1(bu))^-(s+1) e^{bu}`` is log-convex (each factor is) and decreasing;
  its singularities lie left of 0, the nearest at ``-A`` and ``log(1-c)/b``.
* ``beta >= 1`` (``c >= 1``): in ``v = log B(y) - log B(t_x)`` (``dv = b e^{by} / B(y) dy``)
  ``b I = B(t_x)^-s int_0^V e^{-sv} (A + dy(v))^-(r+x) dv`` with
  ``dy(v) = log1p(c expm1(v)) / b``, which is concave for ``c >= 1``, so the integrand is again
  log-convex and decreasing, with its singularities left of 0.

In either variable the integral is taken by composite 8-point Gauss-Legendre on doubling panels
``[0, h], [h, 3h], [3h, 7h], ...`` with ``h`` no larger than the distance to the nearest
singularity nor the inverse of the initial log-slope: each panel is no longer than its
distance to a singularity, and by log-convexity a panel across which the integrand falls a lot
carries exponentially little weight (the argument of :mod:`clvmodels.families.pareto_nbd`).
Every integral is checked against a second rule (7-point Gauss-Legendre on the same panels);
rows where the two disagree by more than 1e-9 (relative) are redone on 32 times finer panels,
and a disagreement left after that raises :class:`~clvmodels.errors.NumericalError`. All sums
run in log space.

Shared work (:class:`GapPlan`, :func:`_log_dead_grouped`): the integrand depends on the
customer only through ``x``, so when a fit's rows share time points (daily or weekly data) the
integral is taken once over each gap between consecutive distinct time points of each
frequency and a row's integral is a difference of tail sums (in log space); rows where that
difference would cancel are integrated directly.

The same two variables serve the predictions. Given alive at ``T`` the customer's
``lambda ~ Gamma(r+x, alpha+T)`` and ``eta ~ Gamma(s, B(T))``, and the remaining lifetime
``w`` is again gamma-Gompertz with ``beta`` replaced by ``c(T)``:
``P(w > t) = (c / (c + expm1(bt)))^s``. Hence (BG 2012 eq. (10), Adler 2022)::

    E[X(T, T+t] | history] = P(alive) (r+x)/(alpha+T) int_0^t (1 + expm1(bw)/c(T))^-s dw
    E[X(t)] (new customer) = r/alpha int_0^t (1 + expm1(bw)/beta)^-s dw
    DERT                   = P(alive) (r+x)/(alpha+T) int_0^inf e^{-delta w} (1 + expm1(bw)/c(T))^-s dw
    P(alive)               = (alpha+T)^-(r+x) B(T)^-s / [(alpha+T)^-(r+x) B(T)^-s + b s I]

The gradient of the log-likelihood is taken under the integral sign with the same nodes (the
mean of each log-integrand derivative under the normalised integrand, which does not depend on
the variable of integration), so it is analytic up to the quadrature's ~1e-12.

All functions are pure and vectorised: parameters broadcast against the customer arrays
(``x`` = frequency, ``t_x`` = recency, ``T`` = age).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import ClassVar

import numba
import numpy as np
import pandas as pd
from scipy.special import digamma, expit, gammaln

from clvmodels.errors import NumericalError
from clvmodels.families.base import FitRows, PurchaseFamily
from clvmodels.families.pareto_nbd import simulate_purchases_while_alive
from clvmodels.families.sampling import (
    check_grid,
    cumulative_counts,
    gamma_poisson_periods,
    take_flat,
)
from clvmodels.optimize import (
    minimize_negative_log_likelihood,
    subset_preconditioner,
    weighted_sum,
)
from clvmodels.validation import as_float

PARAM_NAMES = ("r", "alpha", "b", "s", "beta")

# main rule (8 nodes) and check rule (7 nodes) on each panel, evaluated together
_MAIN_NODES, _MAIN_WEIGHTS = np.polynomial.legendre.leggauss(8)
_CHECK_NODES, _CHECK_WEIGHTS = np.polynomial.legendre.leggauss(7)
_NODES = np.concatenate([_MAIN_NODES, _CHECK_NODES])
_N_MAIN = len(_MAIN_NODES)
_MAX_PANELS = 120
_CHUNK_ELEMENTS = 1 << 20
_CHECK_TOLERANCE = 1e-9
_REFINE = 32.0
# drops of the log-integrand below its peak at which the purchase-count integral is cut into
# panels (each panel spans a bounded fall; beyond a fall of 80 the integrand is negligible)
_PMF_DROPS = np.array(
    [0.5, 1.5, 3.0, 5.0, 7.5, 10.5, 14.0, 18.0, 23.0, 29.0, 36.0, 45.0, 60.0, 80.0]
)


# --------------------------------------------------------------------------------------------
# elementary functions in log space
# --------------------------------------------------------------------------------------------
def log_expm1(z):
    """``log(expm1(z))`` for ``z >= 0`` (``-inf`` at 0), without overflow for large ``z``."""
    z = np.asarray(z, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return z + np.log(-np.expm1(-z))


def log_c(b, beta, t):
    """``log c(t)``, ``c(t) = 1 + (beta - 1) e^{-bt} = (beta - 1 + e^{bt}) e^{-bt}``, as the
    log-sum of its two non-negative parts ``beta e^{-bt}`` and ``1 - e^{-bt}``."""
    b, beta, t = as_float(b, beta, t)
    with np.errstate(divide="ignore"):
        return np.logaddexp(np.log(beta) - b * t, np.log(-np.expm1(-b * t)))


def _log_one_plus(log_z):
    """``log(1 + e^{log_z})`` (softplus), exact for very negative ``log_z``."""
    return np.logaddexp(0.0, log_z)


# --------------------------------------------------------------------------------------------
# composite Gauss-Legendre on doubling panels, in log space, with a second-rule check
# --------------------------------------------------------------------------------------------
IntegrandFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, list[np.ndarray]]]


def _panel_count(length, h0):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        n = np.ceil(np.log2(length / h0 + 1.0))
    n = np.where(np.isfinite(n), n, _MAX_PANELS)
    return np.clip(n, 1, _MAX_PANELS).astype(np.int64)


def _quadrature_pass(integrand: IntegrandFn, length, h0, rows_in, n_moments, check: bool):
    """One pass of the composite rule over ``rows_in``: log of the main and (with ``check``)
    the check rule's integrals, and the moments under the main rule."""
    nodes = _NODES if check else _MAIN_NODES
    n = len(rows_in)
    main = np.full(n, -np.inf)
    second = np.full(n, -np.inf)
    moments = [np.zeros(n) for _ in range(n_moments)]
    counts = _panel_count(length[rows_in], h0[rows_in])
    for n_panels in np.unique(counts):
        where = np.flatnonzero(counts == n_panels)
        step = max(1, _CHUNK_ELEMENTS // (int(n_panels) * len(nodes)))
        for c0 in range(0, len(where), step):
            local = where[c0 : c0 + step]
            rows = rows_in[local]
            k = np.arange(int(n_panels), dtype=float)
            L, h = length[rows, None], h0[rows, None]
            lo = np.minimum(h * (2.0**k - 1.0), L)
            hi = np.minimum(h * (2.0 ** (k + 1.0) - 1.0), L)
            hi[:, -1] = L[:, 0]
            width = hi - lo
            z = lo[:, :, None] + width[:, :, None] * (0.5 * (nodes + 1.0))
            g, extras = integrand(rows, z.reshape(len(rows), -1))
            g = g.reshape(z.shape)
            if np.any(np.isnan(g)):
                raise NumericalError(
                    "GGompertz/NBD: the integrand of a quadrature is not a number for some "
                    "customers; the parameters are outside the range where the model can be "
                    "evaluated"
                )
            with np.errstate(divide="ignore"):
                log_half = np.log(0.5 * width)[:, :, None]
            t_main = (g[:, :, :_N_MAIN] + np.log(_MAIN_WEIGHTS) + log_half).reshape(len(rows), -1)
            if check:
                t_check = g[:, :, _N_MAIN:] + np.log(_CHECK_WEIGHTS) + log_half
                t_check = t_check.reshape(len(rows), -1)
            top = np.max(t_main, axis=1, keepdims=True)
            top = np.where(np.isfinite(top), top, 0.0)
            weights = np.exp(t_main - top)
            total = weights.sum(axis=1)
            with np.errstate(divide="ignore"):
                main[local] = top[:, 0] + np.log(total)
                if check:
                    second[local] = top[:, 0] + np.log(np.exp(t_check - top).sum(axis=1))
            for j, extra in enumerate(extras):
                e = extra.reshape(z.shape)[:, :, :_N_MAIN].reshape(len(rows), -1)
                with np.errstate(invalid="ignore"):
                    moments[j][local] = np.where(
                        total > 0, np.einsum("ij,ij->i", weights, e) / total, 0.0
                    )
    return main, second, moments


def log_quadrature(integrand: IntegrandFn, length, h0, n_moments: int = 0, check: bool = True):
    """``log int_0^length exp(g(z)) dz`` per row for a log-convex, decreasing integrand whose
    singularities lie left of 0, and the means of ``n_moments`` functions under the
    normalised integrand.

    ``integrand(rows, z)`` gets the row indices and the nodes (shape ``(len(rows), m)``) and
    returns ``(g, [f_1, ..., f_k])`` there. ``h0``: the first panel's width (see the module
    docstring). With ``check`` the 8-point rule is compared with the 7-point rule on the same
    panels; rows that disagree by more than 1e-9 are redone on 32 times finer panels and a
    remaining disagreement raises :class:`~clvmodels.errors.NumericalError`.
    """
    length = np.asarray(length, dtype=float)

    def one_pass(rows, h):
        return _quadrature_pass(integrand, length, h, rows, n_moments, check)

    return _checked_quadrature(one_pass, length, h0, n_moments, check)


def _checked_quadrature(one_pass, length, h0, n_moments: int, check: bool):
    """The rows of ``length > 0`` through ``one_pass(rows, h0) -> (main, second, moments)``
    (see :func:`log_quadrature`), those whose two rules disagree once more on panels 32 times
    finer."""
    length = np.asarray(length, dtype=float)
    h0 = np.minimum(np.asarray(h0, dtype=float), length)
    out = np.full(len(length), -np.inf)
    moments = [np.zeros(len(length)) for _ in range(n_moments)]
    rows = np.flatnonzero(length > 0)
    for attempt in range(2):
        if rows.size == 0:
            break
        main, second, mom = one_pass(rows, h0)
        out[rows] = main
        for m, v in zip(moments, mom, strict=True):
            m[rows] = v
        if not check:
            break
        with np.errstate(invalid="ignore"):
            bad = ~(np.abs(main - second) <= _CHECK_TOLERANCE) & ~(
                np.isneginf(main) & np.isneginf(second)
            )
        rows = rows[bad]
        if rows.size and attempt == 0:
            h0 = h0.copy()
            h0[rows] /= _REFINE
        elif rows.size:
            raise NumericalError(
                f"GGompertz/NBD: the quadrature of {rows.size} customers' integrals did not "
                "converge (two rules disagree by more than 1e-9 even on refined panels); the "
                "parameters or histories are too extreme to evaluate reliably"
            )
    return out, moments


# the two forms of the dropout integrand compiled in _dead_quadrature_kernel
_IN_U, _IN_V = 0, 1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _dead_integrand(form, z, p, moments, out):
    """The log-integrand of :func:`_log_dead_in_u` (``form`` 0, ``z = u``) or
    :func:`_log_dead_in_v` (``form`` 1, ``z = v``) at one node, ``p = (a, A, b, s, lc, btx,
    log_beta, c, beta_btx)`` of the row; with ``moments`` its five derivative terms in
    ``out``."""
    a, A, b, s, lc, btx, log_beta, c, beta_btx = p
    if form == 0:
        bu = b * z
        au = A + z
        la = np.log(au)
        direct = bu < 700.0
        if direct:  # c + expm1(bu): two non-negative terms
            em = np.expm1(bu)
            cb = em + c
            log_cb = np.log(cb)
        else:
            log_cb = np.logaddexp(lc, bu + np.log(-np.expm1(-bu)))
        g = -a * la - (s + 1.0) * log_cb + bu
        if moments:
            if direct:
                ratio = (em + 1.0) / cb
                beta_over_b = beta_btx / cb
            else:
                ratio = np.exp(bu - log_cb)
                beta_over_b = np.exp(np.log(beta_btx) - log_cb)
            out[0] = la
            out[1] = 1.0 / au
            out[2] = btx + log_cb
            out[3] = beta_over_b
            out[4] = (btx + bu) * (1.0 - (s + 1.0) * ratio)
        return g
    bdy = np.logaddexp(0.0, lc + (z + np.log(-np.expm1(-z))))
    ay = A + bdy / b
    la = np.log(ay)
    g = -s * z - a * la
    if moments:
        log_by = btx + lc + z
        out[0] = la
        out[1] = 1.0 / ay
        out[2] = log_by
        out[3] = np.exp(log_beta - log_by)
        out[4] = (btx + bdy) * (1.0 - (s + 1.0) * np.exp(bdy - lc - z))
    return g


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _dead_quadrature_kernel(
    form, params, length, h0, rows, main_nodes, log_main_weights, check_nodes,
    log_check_weights, max_panels, moments, check, main, second, means,
):  # fmt: skip
    """:func:`_quadrature_pass` for the dropout integrand of ``form`` (one row of ``params``
    per customer), row by row: the same doubling panels, the 8-point terms (and with
    ``check`` the 7-point ones) in log space, their log-sum-exp and the five means. Returns
    False when an integrand value is not a number."""
    n_main = main_nodes.size
    n_check = check_nodes.size
    terms = np.empty(max_panels * n_main)
    extra = np.empty((5, max_panels * n_main))
    check_terms = np.empty(max_panels * n_check)
    node_terms = np.empty(5)
    sums = np.empty(5)
    finite = True
    for ii in range(rows.size):
        i = rows[ii]
        p = params[i]
        L = length[i]
        h = h0[i]
        count = np.ceil(np.log2(L / h + 1.0))
        panels = int(min(max(count, 1.0), max_panels)) if np.isfinite(count) else max_panels
        m = 0
        mc = 0
        for k in range(panels):
            lo = min(h * (2.0**k - 1.0), L)
            hi = L if k == panels - 1 else min(h * (2.0 ** (k + 1.0) - 1.0), L)
            width = hi - lo
            log_half = np.log(0.5 * width)
            for j in range(n_main):
                z = lo + width * (0.5 * (main_nodes[j] + 1.0))
                g = _dead_integrand(form, z, p, moments, node_terms)
                if np.isnan(g):
                    finite = False
                terms[m] = g + log_main_weights[j] + log_half
                if moments:
                    for q in range(5):
                        extra[q, m] = node_terms[q]
                m += 1
            if check:  # its own loop: a branch per node in one loop cost ~5% of a fit
                for j in range(n_check):
                    z = lo + width * (0.5 * (check_nodes[j] + 1.0))
                    g = _dead_integrand(form, z, p, False, node_terms)
                    if np.isnan(g):
                        finite = False
                    check_terms[mc] = g + log_check_weights[j] + log_half
                    mc += 1
        top = -np.inf
        for q in range(m):
            top = max(top, terms[q])
        if not np.isfinite(top):
            top = 0.0
        total = 0.0
        sums[:] = 0.0
        for q in range(m):
            weight = np.exp(terms[q] - top)
            total += weight
            if moments:
                for t in range(5):
                    sums[t] += weight * extra[t, q]
        main[ii] = top + np.log(total)
        if check:
            total_check = 0.0
            for q in range(mc):
                total_check += np.exp(check_terms[q] - top)
            second[ii] = top + np.log(total_check)
        if moments:
            for t in range(5):
                means[t, ii] = sums[t] / total if total > 0.0 else 0.0
    return finite


def _dead_pass(form, params, length, h0, rows, moments: bool, check: bool):
    """One pass of :func:`_dead_quadrature_kernel` over ``rows``: ``(main, second, means)``
    as :func:`_quadrature_pass` returns them."""
    n = len(rows)
    main = np.empty(n)
    second = np.full(n, -np.inf)
    means = np.empty((5 if moments else 0, n))
    finite = _dead_quadrature_kernel(
        form, params, length, np.ascontiguousarray(h0, dtype=float),
        np.ascontiguousarray(rows, dtype=np.int64), _MAIN_NODES, np.log(_MAIN_WEIGHTS),
        _CHECK_NODES, np.log(_CHECK_WEIGHTS), _MAX_PANELS, moments, check, main, second,
        means if moments else np.empty((5, n)),
    )  # fmt: skip
    if not finite:
        raise NumericalError(
            "GGompertz/NBD: the integrand of a quadrature is not a number for some "
            "customers; the parameters are outside the range where the model can be "
            "evaluated"
        )
    return main, second, list(means)


def _log_dead_quadrature(form, arrays, length, h0, moments: bool, check: bool):
    """``log int_0^length`` of the dropout integrand of ``form`` and its five means (compiled;
    the rule and the check of :func:`log_quadrature`)."""
    params = np.ascontiguousarray(np.column_stack(arrays), dtype=float)
    length = np.ascontiguousarray(length, dtype=float)

    def one_pass(rows, h):
        return _dead_pass(form, params, length, h, rows, moments, check)

    return _checked_quadrature(one_pass, length, h0, 5 if moments else 0, check)


def _panel_rules(log_f, rows, lo, hi):
    """Log-integrals over the panels ``[lo, hi]`` (shape ``(len(rows), n_panels)``) by the
    main and the check rule."""
    width = hi - lo
    z = lo[:, :, None] + width[:, :, None] * (0.5 * (_NODES + 1.0))
    g = log_f(rows, z.reshape(len(rows), -1)).reshape(z.shape)
    if np.any(np.isnan(g)):
        raise NumericalError("GGompertz/NBD: a purchase-count integrand is not a number")
    with np.errstate(divide="ignore"):
        log_half = np.log(0.5 * width)[:, :, None]
    results = []
    for part, weights in ((g[:, :, :_N_MAIN], _MAIN_WEIGHTS), (g[:, :, _N_MAIN:], _CHECK_WEIGHTS)):
        terms = (part + np.log(weights) + log_half).reshape(len(rows), -1)
        peak = np.max(terms, axis=1, keepdims=True)
        peak = np.where(np.isfinite(peak), peak, 0.0)
        with np.errstate(divide="ignore"):
            results.append(peak[:, 0] + np.log(np.exp(terms - peak).sum(axis=1)))
    return results


def log_quadrature_on_panels(log_f, lo, hi):
    """``log sum_j int_{lo_j}^{hi_j} exp(log_f(rows, z)) dz`` per row for given panels
    (arrays of shape ``(rows, n_panels)``; ``log_f`` gets the row indices and the nodes), by
    the 8-point rule checked against the 7-point rule; rows that disagree by more than 1e-9 are
    redone with every panel cut in 8, and a remaining disagreement raises
    :class:`~clvmodels.errors.NumericalError`."""
    rows = np.arange(lo.shape[0])
    out, second = _panel_rules(log_f, rows, lo, hi)
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~(np.abs(out - second) <= _CHECK_TOLERANCE) & ~np.isneginf(out))
    if bad.size:
        cuts = np.linspace(0.0, 1.0, 9)
        width = (hi - lo)[bad, :, None]
        fine_lo = (lo[bad, :, None] + width * cuts[:-1]).reshape(bad.size, -1)
        fine_hi = (lo[bad, :, None] + width * cuts[1:]).reshape(bad.size, -1)
        redo, second = _panel_rules(log_f, bad, fine_lo, fine_hi)
        with np.errstate(invalid="ignore"):
            still = ~(np.abs(redo - second) <= _CHECK_TOLERANCE) & ~np.isneginf(redo)
        if still.any():
            raise NumericalError(
                f"GGompertz/NBD: {int(still.sum())} purchase-count integrals did not converge "
                "(two rules disagree by more than 1e-9 even on refined panels); the inputs are "
                "too extreme to evaluate reliably"
            )
        out[bad] = redo
    return out


# --------------------------------------------------------------------------------------------
# the dropout integral of the likelihood
# --------------------------------------------------------------------------------------------
def _log_dead_in_u(a, A, b, s, lc, btx, log_beta, L, moments: bool, check: bool):
    """``log(b s I)`` and the moments for ``beta < 1``: the integral in ``u = y - t_x`` of
    ``(A+u)^-a (c + expm1(bu))^-(s+1) e^{bu}`` (:func:`_dead_integrand`, form 0)."""
    c = np.exp(lc)
    with np.errstate(divide="ignore"):
        d_sing = -np.log1p(-c) / b
        k0 = a / A + b * ((s + 1.0) / c - 1.0)
    h0 = np.minimum(np.minimum(A, d_sing), 1.0 / k0)
    beta_btx = np.exp(log_beta - btx)  # beta e^{-b t_x}
    arrays = (a, A, b, s, lc, btx, log_beta, c, beta_btx)
    log_j, mom = _log_dead_quadrature(_IN_U, arrays, L, h0, moments, check)
    return np.log(b) + np.log(s) - s * btx + log_j, mom


def _log_dead_in_v(a, A, b, s, lc, btx, log_beta, L, moments: bool, check: bool):
    """``log(b s I)`` and the moments for ``beta >= 1``: the integral in
    ``v = log B(y) - log B(t_x)`` (:func:`_dead_integrand`, form 1)."""
    c = np.exp(lc)
    with np.errstate(divide="ignore", over="ignore"):
        q = -np.expm1(-A * b) / c
        d_sing = -np.log1p(-q)
        k0 = s + a * c / (b * A)
    length = _log_one_plus(log_expm1(b * L) - lc)
    h0 = np.minimum(d_sing, 1.0 / k0)
    arrays = (a, A, b, s, lc, btx, log_beta, c, np.zeros_like(c))
    log_j, mom = _log_dead_quadrature(_IN_V, arrays, length, h0, moments, check)
    return np.log(s) - s * (btx + lc) + log_j, mom


def _log_dead(r, alpha, b, s, beta, x, t_x, T, moments: bool = False, check: bool = True):
    """``log(b s I)`` (the "died in (t_x, T]" term without ``G(r+x) alpha^r beta^s / G(r)``)
    for 1-d arrays, and with ``moments`` the means under the normalised integrand (over the
    death time ``y``) of ``log(alpha+y)``, ``1/(alpha+y)``, ``log B(y)``, ``beta / B(y)`` and
    ``b y (1 - (s+1) e^{by} / B(y))``: the derivatives of the log-integrand (for the gradient).
    """
    n = len(x)
    arrays = (
        r + x,
        alpha + t_x,
        b,
        s,
        log_c(b, beta, t_x),
        b * t_x,
        np.log(beta),
        np.maximum(T - t_x, 0.0),
    )
    out = np.full(n, -np.inf)
    means = [np.zeros(n) for _ in range(5 if moments else 0)]
    in_u = beta < 1.0
    for method, sel in ((_log_dead_in_u, in_u), (_log_dead_in_v, ~in_u)):
        sel = np.flatnonzero(sel)
        if sel.size == 0:
            continue
        out[sel], mom = method(*(v[sel] for v in arrays), moments, check)
        for m, v in zip(means, mom, strict=True):
            m[sel] = v
    return out, means


class GapPlan:
    """The time points of fitting rows, per frequency, for :func:`_log_dead_grouped`.

    The dropout integrand ``(alpha+y)^-(r+x) B(y)^-(s+1) e^{by}`` depends on the customer only
    through ``x``, so for each distinct ``x`` the distinct time points ``tau`` (its rows'
    recencies and ages) are sorted and the integral is taken once over each gap between
    consecutive points; a row's integral over ``(t_x, T]`` is a difference of tail sums. This
    bookkeeping depends on the rows alone (a fit computes it once). With daily or weekly data
    there are far fewer gaps than rows; ``worthwhile`` says whether sharing pays.
    """

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray):
        n = len(x)
        xs = np.concatenate([x, x])
        taus = np.concatenate([t_x, T])
        order = np.lexsort((taus, xs))
        xs_sorted, taus_sorted = xs[order], taus[order]
        new = np.ones(2 * n, dtype=bool)
        new[1:] = (xs_sorted[1:] != xs_sorted[:-1]) | (taus_sorted[1:] != taus_sorted[:-1])
        point_of = np.empty(2 * n, dtype=np.int64)
        point_of[order] = np.cumsum(new) - 1
        point_x, self.point_tau = xs_sorted[new], taus_sorted[new]
        self.n_points = len(point_x)
        has_next = np.zeros(self.n_points, dtype=bool)
        has_next[:-1] = point_x[1:] == point_x[:-1]
        self.gap = np.flatnonzero(has_next)
        self.gap_x = point_x[self.gap]
        self.gap_lo = self.point_tau[self.gap]
        self.gap_hi = self.point_tau[self.gap + 1]
        self.group_start = np.flatnonzero(np.r_[True, point_x[1:] != point_x[:-1]])
        self.group_end = np.r_[self.group_start[1:], self.n_points]
        self.p_tx, self.p_T = point_of[:n], point_of[n:]
        self.rows = (x, t_x, T)
        self.worthwhile = len(self.gap) + 50 * len(self.group_start) < 0.5 * n

    def tails(self, values: np.ndarray) -> np.ndarray:
        """Log of the sums of ``exp(values)`` (one per gap) from each point to the end of its
        frequency's points (reverse cumulative log-sum-exp)."""
        dense = np.full(self.n_points, -np.inf)
        dense[self.gap] = values
        out = np.empty(self.n_points)
        for g0, g1 in zip(self.group_start, self.group_end, strict=True):
            out[g0:g1] = np.logaddexp.accumulate(dense[g0:g1][::-1])[::-1]
        return out


# direct integration where the difference of tail sums would lose more than ~3 digits
_CANCELLATION_LIMIT = np.log1p(-1e-3)


def _log_dead_grouped(r, alpha, b, s, beta, plan: GapPlan, moments: bool, check: bool):
    """:func:`_log_dead` for scalar parameters on the rows of ``plan``, from the integrals over
    the gaps between their time points: ``I = G_x(t_x) - G_x(T)`` with ``G_x`` the tail sums.
    The moments are assembled the same way from the gap integrals times their means (positive
    and negative parts summed separately). Rows where the difference would cancel
    (``I < 1e-3 G_x(t_x)``) are integrated directly."""
    n_gap = len(plan.gap)
    x, t_x, T = plan.rows
    log_gap, gap_means = _log_dead(
        *(np.full(n_gap, v) for v in (r, alpha, b, s, beta)),
        plan.gap_x,
        plan.gap_lo,
        plan.gap_hi,
        moments=moments,
        check=check,
    )
    tail = plan.tails(log_gap)
    top, bottom = tail[plan.p_tx], tail[plan.p_T]
    nonempty = plan.p_T > plan.p_tx
    with np.errstate(invalid="ignore", divide="ignore"):
        drop = np.where(nonempty, bottom - top, 0.0)
        log_dead = np.where(nonempty, top + np.log(-np.expm1(np.minimum(drop, 0.0))), -np.inf)
    means = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for gap_mean in gap_means:
            total = np.zeros(len(x))
            for sign in (1.0, -1.0):
                part = plan.tails(log_gap + np.log(np.maximum(sign * gap_mean, 0.0)))
                hi, lo = part[plan.p_tx], part[plan.p_T]
                share = np.exp(hi - log_dead) * -np.expm1(np.minimum(lo - hi, 0.0))
                total += sign * np.nan_to_num(share, nan=0.0, posinf=0.0)
            means.append(np.where(nonempty, total, 0.0))
    redo = np.flatnonzero(nonempty & (drop > _CANCELLATION_LIMIT))
    if redo.size:
        values, moms = _log_dead(
            *(np.full(redo.size, v) for v in (r, alpha, b, s, beta)),
            x[redo],
            t_x[redo],
            T[redo],
            moments=moments,
            check=check,
        )
        log_dead[redo] = values
        for mean, m in zip(means, moms, strict=True):
            mean[redo] = m
    return log_dead, means


def _log_alive(r, alpha, b, s, beta, x, T):
    """``log[(alpha+T)^-(r+x) B(T)^-s]`` and ``log B(T)``."""
    log_bT = b * T + log_c(b, beta, T)
    return -(r + x) * np.log(alpha + T) - s * log_bT, log_bT


def _flat(*arrays):
    """The broadcast shape and each argument as a 1-d float array of that many values (a
    scalar by ``np.full``, several times faster than raveling a broadcast view)."""
    arrays = as_float(*arrays)
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    flat = []
    for a in arrays:
        if a.shape == shape:
            flat.append(a.reshape(-1))
        elif a.size == 1:
            flat.append(np.full(math.prod(shape), a.item()))
        else:
            flat.append(np.broadcast_to(a, shape).reshape(-1))
    return shape, flat


def log_likelihood_gradient(
    r, alpha, b, s, beta, x, t_x, T, gradient: bool = True, check=True, plan=None
):
    """Per-row log-likelihood (BG 2012 eq. (6), in log space) and, with ``gradient``, its
    derivatives with respect to ``log(r, alpha, b, s, beta)``, shape ``(n_rows, 5)``; 1-d
    arrays (or scalars) of one value per row.

    With ``w`` = 1 - P(alive) the weight of the "died" term and ``E[.]`` the mean over the
    normalised dropout integrand (death time ``y`` in (t_x, T])::

        d/dr     = psi(r+x) - psi(r) + log alpha - (1-w) log(alpha+T) - w E[log(alpha+y)]
        d/dalpha = r/alpha - (1-w) (r+x)/(alpha+T) - w (r+x) E[1/(alpha+y)]
        d/db     = -(1-w) s T e^{bT}/B(T) + w (1/b + E[y - (s+1) y e^{by}/B(y)])
        d/ds     = log beta - (1-w) log B(T) + w (1/s - E[log B(y)])
        d/dbeta  = s/beta - (1-w) s/B(T) - w (s+1) E[1/B(y)]

    ``plan``: a :class:`GapPlan` of these rows; with scalar parameters the dropout integrals
    are then assembled from the integrals over the gaps between the rows' time points
    (:func:`_log_dead_grouped`).
    """
    scalar = all(np.size(v) == 1 for v in (r, alpha, b, s, beta))
    _, (r, alpha, b, s, beta, x, t_x, T) = _flat(r, alpha, b, s, beta, x, t_x, T)
    a = r + x
    log_alive, log_bT = _log_alive(r, alpha, b, s, beta, x, T)
    if plan is not None and plan.worthwhile and scalar:
        log_dead, means = _log_dead_grouped(
            r[0], alpha[0], b[0], s[0], beta[0], plan, moments=gradient, check=check
        )
    else:
        log_dead, means = _log_dead(r, alpha, b, s, beta, x, t_x, T, moments=gradient, check=check)
    lse = np.logaddexp(log_alive, log_dead)
    ll = gammaln(a) - gammaln(r) + r * np.log(alpha) + s * np.log(beta) + lse
    if not gradient:
        return ll, None
    m_la, m_ia, m_lb, m_ib, m_b = means
    w = np.exp(log_dead - lse)
    v = 1.0 - w
    g_r = digamma(a) - digamma(r) + np.log(alpha) - v * np.log(alpha + T) - w * m_la
    g_alpha = r / alpha - v * a / (alpha + T) - w * a * m_ia
    with np.errstate(over="ignore", invalid="ignore"):
        e_bT = np.exp(b * T - log_bT)  # e^{bT} / B(T)
        alive_b = np.where(v > 0, v * s * b * T * e_bT, 0.0)
    g_b = -alive_b + w * (1.0 + m_b)
    g_s = np.log(beta) - v * log_bT + w * (1.0 / s - m_lb)
    g_beta = s - v * s * np.exp(np.log(beta) - log_bT) - w * (s + 1.0) * m_ib
    grad = np.column_stack([g_r * r, g_alpha * alpha, g_b, g_s * s, g_beta])
    return ll, grad


def log_likelihood(r, alpha, b, s, beta, x, t_x, T):
    """Per-customer log-likelihood (BG 2012 eq. (6)), shape of the broadcast::

    log G(r+x) - log G(r) + r log alpha + s log beta
      + log[(alpha+T)^-(r+x) B(T)^-s + b s I]
    """
    shape, _ = _flat(r, alpha, b, s, beta, x, t_x, T)
    ll, _ = log_likelihood_gradient(r, alpha, b, s, beta, x, t_x, T, gradient=False)
    return ll.reshape(shape)


def negative_log_likelihood(
    log_params, x, t_x, T, counts, check: bool = False, plan=None, gradient: bool = True
):
    """Total negative log-likelihood of compressed rows (``counts`` customers each) and its
    analytic gradient with respect to ``log(r, alpha, b, s, beta)`` (None without
    ``gradient``, a quarter cheaper: for comparing starting values).

    Within the fit the second-rule check is off by default (the rule is accurate by
    construction, see the module docstring); :func:`log_likelihood` and the predictions check.
    ``plan``: the rows' :class:`GapPlan` (parameter-free, computed once per fit).
    """
    r, alpha, b, s, beta = np.exp(np.asarray(log_params, dtype=float))
    with np.errstate(all="ignore"):
        ll, grad = log_likelihood_gradient(
            r, alpha, b, s, beta, x, t_x, T, gradient=gradient, check=check, plan=plan
        )
    counts = np.asarray(counts, dtype=float)
    value = weighted_sum(counts, ll)
    if not gradient:
        return (-float(value) if np.isfinite(value) else np.inf), None
    g = np.einsum("i,ij->j", counts, grad)
    if not np.isfinite(value) or not np.all(np.isfinite(g)):
        return np.inf, np.zeros(5)
    return -float(value), -g


# --------------------------------------------------------------------------------------------
# predictions
# --------------------------------------------------------------------------------------------
def _distinct_customers(params, x, t_x, T, *per_customer):
    """For shared parameters (each of size 1) and 1-d customer arrays with repeated histories
    (whole-number data): ``(first, inverse)``, the index of each distinct (x, t_x, T) row's
    first customer and each customer's row, so that a prediction is computed once per distinct
    history, and the distinct histories; None when that would not pay. ``per_customer``: further arguments that must be
    scalars for the shortcut (horizons, rates)."""
    if not all(np.size(v) == 1 for v in (*params, *per_customer)):
        return None
    x, t_x, T = as_float(x, t_x, T)
    if x.ndim != 1 or x.shape != t_x.shape or x.shape != T.shape or x.size < 2000:
        return None
    codes, sizes = [], []
    for column in (x, t_x, T):
        code, values = pd.factorize(column)
        codes.append(code.astype(np.int64))
        sizes.append(len(values))
    if float(np.prod(np.asarray(sizes, dtype=float))) >= 2.0**62:
        return None
    key = (codes[0] * sizes[1] + codes[1]) * sizes[2] + codes[2]
    inverse, uniques = pd.factorize(key)
    if len(uniques) > 0.5 * x.size:
        return None
    first = np.empty(len(uniques), dtype=np.int64)
    first[inverse[::-1]] = np.arange(x.size - 1, -1, -1)
    return first, inverse, (x[first], t_x[first], T[first])


def _per_customer(values, first):
    """A per-customer argument (such as ``p_alive``) at the first customer of each distinct
    history (None stays None)."""
    if values is None:
        return None
    return np.take(np.asarray(values, dtype=float), first, axis=-1)


def _once_per_history(prediction, params, histories, scalars=(), per_customer=()):
    """``prediction(*params, *histories, *scalars, *per_customer)``, with ``histories`` the
    customers' ``(x, t_x, T)``, computed once per distinct history and gathered back to the
    customers (:func:`_distinct_customers`); None when that shortcut does not apply.
    ``per_customer``: arguments with a value per customer (or None), such as ``p_alive``."""
    distinct = _distinct_customers(params, *histories, *scalars)
    if distinct is None:
        return None
    first, inverse, rows = distinct
    at_first = (_per_customer(values, first) for values in per_customer)
    return np.take(prediction(*params, *rows, *scalars, *at_first), inverse, axis=-1)


def probability_alive(r, alpha, b, s, beta, x, t_x, T):
    """P(alive at T | x, t_x, T) = alive term / (alive term + b s I) (BG 2012 eq. (8)),
    computed as ``expit(log_alive - log_dead)``, so it lies in [0, 1] for any input."""
    gathered = _once_per_history(probability_alive, (r, alpha, b, s, beta), (x, t_x, T))
    if gathered is not None:
        return gathered
    shape, (r, alpha, b, s, beta, x, t_x, T) = _flat(r, alpha, b, s, beta, x, t_x, T)
    log_alive, _ = _log_alive(r, alpha, b, s, beta, x, T)
    log_dead, _ = _log_dead(r, alpha, b, s, beta, x, t_x, T)
    with np.errstate(invalid="ignore"):
        return expit(log_alive - log_dead).reshape(shape)


def log_residual_lifetime_integral(b, s, lc, t, delta=0.0):
    """``log int_0^t e^{-delta w} (1 + expm1(bw)/c)^-s dw`` for 1-d arrays, ``c = e^lc``: the
    expected (discounted) time alive within ``t`` of a gamma-Gompertz lifetime with scale
    parameter ``c`` (``t = inf`` needs ``delta > 0``).

    ``c < 1``: integrated in ``w`` (log-convex integrand, singularities at ``Re w < 0``);
    ``c >= 1``: in ``v = log1p(expm1(bw)/c)``, ``dw = c e^v / (b (1 + c expm1(v))) dv``, where
    the integrand is log-convex. An infinite ``t`` is cut where ``e^{-delta w}`` has fallen
    below 1e-16 of the integral.
    """
    _, (b, s, lc, t, delta) = _flat(b, s, lc, t, delta)
    c = np.exp(lc)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        k_w = delta + s * b / c
        cut = (36.0 + np.maximum(0.0, np.log(k_w / delta))) / delta
    t_eff = np.where(np.isinf(t), cut, t)
    out = np.full(len(b), -np.inf)
    in_w = c < 1.0
    sel = np.flatnonzero(in_w)
    if sel.size:
        b_, s_, lc_, d_, c_ = (v[sel] for v in (b, s, lc, delta, c))
        with np.errstate(divide="ignore"):
            h0 = np.minimum(-np.log1p(-c_) / b_, 1.0 / k_w[sel])

        def integrand(rows, w):
            log_1p = np.logaddexp(lc_[rows, None], log_expm1(b_[rows, None] * w)) - lc_[rows, None]
            return -d_[rows, None] * w - s_[rows, None] * log_1p, []

        out[sel], _ = log_quadrature(integrand, t_eff[sel], h0)
    sel = np.flatnonzero(~in_w)
    if sel.size:
        b_, s_, lc_, d_, c_ = (v[sel] for v in (b, s, lc, delta, c))
        with np.errstate(divide="ignore", over="ignore"):
            h0 = np.minimum(-np.log1p(-1.0 / c_), 1.0 / (d_ * c_ / b_ + s_ - 1.0 + c_))
        length = _log_one_plus(log_expm1(b_ * t_eff[sel]) - lc_)

        def integrand(rows, v):
            log_bdy = _log_one_plus(lc_[rows, None] + log_expm1(v))  # log1p(c expm1(v))
            g = (
                -d_[rows, None] * log_bdy / b_[rows, None]
                + (1.0 - s_[rows, None]) * v
                + lc_[rows, None]
                - log_bdy
            )
            return g, []

        log_j, _ = log_quadrature(integrand, length, h0)
        out[sel] = log_j - np.log(b_)
    return out


def conditional_expected_purchases(r, alpha, b, s, beta, x, t_x, T, t, p_alive=None):
    """E[X(T, T+t] | x, t_x, T] = P(alive) (r+x)/(alpha+T) int_0^t (1 + expm1(bw)/c(T))^-s dw
    (BG 2012 eq. (10) with Adler's 2022 correction; see the module docstring). Non-negative and
    non-decreasing in ``t``."""
    gathered = _once_per_history(
        conditional_expected_purchases, (r, alpha, b, s, beta), (x, t_x, T), (t,), (p_alive,)
    )
    if gathered is not None:
        return gathered
    shape, (r, alpha, b, s, beta, x, t_x, T, t) = _flat(r, alpha, b, s, beta, x, t_x, T, t)
    if p_alive is None:
        alive = probability_alive(r, alpha, b, s, beta, x, t_x, T)
    else:
        alive = np.broadcast_to(np.asarray(p_alive, dtype=float), shape).ravel()
    out = np.zeros(len(r))
    pos = np.flatnonzero(t > 0)
    if pos.size:
        lc_T = log_c(b[pos], beta[pos], T[pos])
        log_m = log_residual_lifetime_integral(b[pos], s[pos], lc_T, t[pos])
        out[pos] = alive[pos] * (r + x)[pos] / (alpha + T)[pos] * np.exp(log_m)
    return out.reshape(shape)


def expected_purchases_new_customer(r, alpha, b, s, beta, t):
    """E[X(t)] for a customer just acquired: ``r/alpha int_0^t (1 + expm1(bw)/beta)^-s dw``
    (BG 2012 eq. (4): the expected purchases up to the lifetime or ``t``)."""
    shape, (r, alpha, b, s, beta, t) = _flat(r, alpha, b, s, beta, t)
    out = np.zeros(len(r))
    pos = np.flatnonzero(t > 0)
    if pos.size:
        log_m = log_residual_lifetime_integral(b[pos], s[pos], np.log(beta[pos]), t[pos])
        out[pos] = r[pos] / alpha[pos] * np.exp(log_m)
    return out.reshape(shape)


def discounted_expected_residual_transactions(r, alpha, b, s, beta, x, t_x, T, delta, p_alive):
    """DERT = int_0^inf e^{-delta t} dE[X(T, T+t)] = P(alive) (r+x)/(alpha+T)
    int_0^inf e^{-delta w} P(residual lifetime > w) dw (Fader, Hardie & Lee 2005, "RFM and
    CLV", eq. 2, with the GGompertz residual lifetime); one quadrature per customer."""
    gathered = _once_per_history(
        discounted_expected_residual_transactions,
        (r, alpha, b, s, beta),
        (x, t_x, T),
        (delta,),
        (p_alive,),
    )
    if gathered is not None:
        return gathered
    shape, (r, alpha, b, s, beta, x, t_x, T, delta) = _flat(r, alpha, b, s, beta, x, t_x, T, delta)
    alive = np.broadcast_to(np.asarray(p_alive, dtype=float), shape).ravel()
    lc_T = log_c(b, beta, T)
    log_m = log_residual_lifetime_integral(b, s, lc_T, np.full(len(b), np.inf), delta)
    return (alive * (r + x) / (alpha + T) * np.exp(log_m)).reshape(shape)


def _log_nbd_pmf(k, shape_, rate, t):
    """log P(N = k) for N ~ Poisson(lambda t), lambda ~ Gamma(shape_, rate)."""
    with np.errstate(divide="ignore"):
        return (
            gammaln(shape_ + k)
            - gammaln(shape_)
            - gammaln(k + 1.0)
            + shape_ * (np.log(rate) - np.log(rate + t))
            + k * (np.log(t) - np.log(rate + t))
        )


def _log_pmf_death_integral(k, ra, al, b, s, lc, t):
    """``log int_0^t f(w) NBD(k; ra, al, w) dw`` for 1-d arrays, with ``f`` the density of
    the residual gamma-Gompertz lifetime (scale ``c = e^lc``)::

        f(w) = s c^s b e^{bw} (c + expm1(bw))^-(s+1)

    Integrated in ``nu = log w`` around the global mode of the log-integrand ``psi`` (the
    highest of 65 points, refined by bisection on ``psi'``; ``psi`` can have two local maxima),
    on panels whose edges are where ``psi`` has fallen by 0.5, 1.5, 3, ..., 80 below the mode
    on each side (:func:`log_quadrature_on_panels`, checked by a second rule). The left side is
    cut where ``psi`` has fallen by more than 80 (below ``w_lo``, ``psi' >= (k+1)/2``).
    """
    log_al, log_t = np.log(al), np.log(t)
    ka = ra + k
    const = np.log(s * b) + s * lc + gammaln(ra + k) - gammaln(ra) - gammaln(k + 1.0) + ra * log_al

    def psi(nu, rows):
        bw = b[rows, None] * np.exp(nu)
        return (
            (k[rows, None] + 1.0) * nu
            - ka[rows, None] * np.logaddexp(log_al[rows, None], nu)
            + bw
            - (s[rows, None] + 1.0) * np.logaddexp(lc[rows, None], log_expm1(bw))
            + const[rows, None]
        )

    def slope(nu):
        w = np.exp(nu)
        bw = b * w
        with np.errstate(over="ignore", invalid="ignore"):
            ratio = np.exp(bw - np.logaddexp(lc, log_expm1(bw)))  # e^{bw}/(c + expm1(bw))
        return (k + 1.0) - ka * expit(nu - log_al) + bw - (s + 1.0) * bw * ratio

    c = np.exp(lc)
    with np.errstate(divide="ignore"):
        # below w_lo (where b w <= 1), psi' >= (k+1)/2: each negative term is <= (k+1)/4
        w_lo = np.minimum(
            0.25 * (k + 1.0) * np.minimum(al / ka, c / (np.e * (s + 1.0) * b)), 1.0 / b
        )
    lo = np.minimum(np.log(w_lo), log_t)
    hi = log_t.copy()
    rows = np.arange(len(k))
    # the highest of 65 points of [lo, log t] brackets the global mode (psi can have two
    # local maxima: buying k times quickly, or dying late), refined by bisection on psi'
    grid = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, 65)
    best = np.argmax(psi(grid, rows), axis=1)
    left = grid[rows, np.maximum(best - 1, 0)]
    right = grid[rows, np.minimum(best + 1, 64)]
    at_end = (best == 64) & (slope(hi) >= 0.0)
    at_start = (best == 0) & (slope(lo) <= 0.0)
    for _ in range(80):
        mid = 0.5 * (left + right)
        up = slope(mid) > 0.0
        left = np.where(up, mid, left)
        right = np.where(up, right, mid)
    mode = np.where(at_end, hi, np.where(at_start, lo, 0.5 * (left + right)))
    left_end = lo - 160.0 / (k + 1.0)  # psi has fallen by more than 80 below here
    top = psi(mode[:, None], rows)
    # panel edges where psi has fallen by the given amounts below its peak, on each side
    drops = _PMF_DROPS[None, :]
    edges = []
    for end in (left_end, log_t):
        near = np.broadcast_to(mode[:, None], (len(k), drops.size)).copy()
        far = np.broadcast_to(end[:, None], near.shape).copy()
        reached = psi(far, rows) <= top - drops
        for _ in range(60):
            mid = 0.5 * (near + far)
            above = psi(mid, rows) > top - drops
            near = np.where(above, mid, near)
            far = np.where(above, far, mid)
        edges.append(np.where(reached, 0.5 * (near + far), end[:, None]))
    left = np.concatenate([edges[0][:, ::-1], mode[:, None]], axis=1)
    right = np.concatenate([mode[:, None], edges[1]], axis=1)
    points = np.concatenate([left, right[:, 1:]], axis=1)
    return log_quadrature_on_panels(lambda r_, z: psi(z, r_), points[:, :-1], points[:, 1:])


def conditional_purchase_probability(r, alpha, b, s, beta, x, t_x, T, t, k, p_alive=None):
    """P(X(T, T+t] = k | x, t_x, T).

    Given alive at T: ``lambda ~ Gamma(r+x, alpha+T)`` and the residual lifetime ``w`` is
    gamma-Gompertz with scale ``c(T)``; the customer outlives the window, or dies at
    ``w in (0, t)`` having bought NBD(w) until then::

        P(k | alive) = NBD(k; r+x, alpha+T, t) (c/(c+expm1(bt)))^s + int_0^t f(w) NBD(k; w) dw
        P(X = k)     = P(alive) P(k | alive) + [k = 0] (1 - P(alive))
    """
    gathered = _once_per_history(
        conditional_purchase_probability,
        (r, alpha, b, s, beta),
        (x, t_x, T),
        (t, k),
        (p_alive,),
    )
    if gathered is not None:
        return gathered
    shape, (r, alpha, b, s, beta, x, t_x, T, t, k) = _flat(r, alpha, b, s, beta, x, t_x, T, t, k)
    if np.any(k < 0) or np.any(k != np.round(k)):
        raise ValueError("k must be a non-negative whole number of purchases")
    if p_alive is None:
        alive = probability_alive(r, alpha, b, s, beta, x, t_x, T)
    else:
        alive = np.broadcast_to(np.asarray(p_alive, dtype=float), shape).ravel()
    ra, al = r + x, alpha + T
    out = np.where(k == 0, 1.0 - alive, 0.0)
    pos = np.flatnonzero(t > 0)
    if pos.size:
        ra_, al_, b_, s_, t_, k_ = (v[pos] for v in (ra, al, b, s, t, k))
        lc_ = log_c(b_, beta[pos], T[pos])
        log_survive = _log_nbd_pmf(k_, ra_, al_, t_) - s_ * (
            np.logaddexp(lc_, log_expm1(b_ * t_)) - lc_
        )
        log_die = _log_pmf_death_integral(k_, ra_, al_, b_, s_, lc_, t_)
        active = np.exp(np.minimum(np.logaddexp(log_survive, log_die), 0.0))
        out[pos] += alive[pos] * active
    zero_t = t <= 0
    out[zero_t] = np.where(k[zero_t] == 0, 1.0, 0.0)
    return out.reshape(shape)


# --------------------------------------------------------------------------------------------
# the customer's posterior and simulation
# --------------------------------------------------------------------------------------------
def _sample_death_times(r, alpha, b, s, beta, x, t_x, T, rng: np.random.Generator):
    """Draw the death time ``y in (t_x, T]`` of customers known to have died in that interval,
    density proportional to the dropout integrand ``(alpha+y)^-(r+x) B(y)^-(s+1) e^{by}``
    (1-d arrays).

    Exact rejection sampling in the variable where the integrand is log-convex (``u = y - t_x``
    when ``beta < 1``, ``v = log B(y) - log B(t_x)`` otherwise; see the module docstring): a
    doubling panel is chosen with probability proportional to the mass of the exponential
    through the log-integrand at its two ends (the chord of a convex function lies above it),
    a point is drawn from that exponential and accepted with probability integrand/envelope.
    """
    n = len(x)
    out = np.empty(n)
    a, A, L = r + x, alpha + t_x, T - t_x
    lc = log_c(b, beta, t_x)
    c = np.exp(lc)
    in_y = beta < 1.0
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        h_y = np.minimum(np.minimum(A, -np.log1p(-c) / b), 1.0 / (a / A + b * ((s + 1.0) / c - 1)))
        q = -np.expm1(-A * b) / c
        h_v = np.minimum(-np.log1p(-q), 1.0 / (s + a * c / (b * A)))
        length = np.where(in_y, L, _log_one_plus(log_expm1(b * L) - lc))
    h0 = np.minimum(np.where(in_y, h_y, h_v), length)

    def logf(idx, z):
        """Log-integrand at ``z`` (same shape as ``idx``) and the death time ``y`` there."""
        a_, A_, b_, s_, lc_ = a[idx], A[idx], b[idx], s[idx], lc[idx]
        y_mode = in_y[idx]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            bu = b_ * z
            log_cb = np.logaddexp(lc_, log_expm1(bu))
            g_y = -a_ * np.log(A_ + z) - (s_ + 1.0) * log_cb + bu
            dy_v = _log_one_plus(lc_ + log_expm1(z)) / b_
            g_v = -s_ * z - a_ * np.log(A_ + dy_v)
        return np.where(y_mode, g_y, g_v), np.where(y_mode, z, dy_v)

    counts = _panel_count(length, h0)
    for n_panels in np.unique(counts):
        rows = np.flatnonzero(counts == n_panels)
        k = np.arange(int(n_panels), dtype=float)
        Lr, hr = length[rows, None], h0[rows, None]
        lo_all = np.minimum(hr * (2.0**k - 1.0), Lr)
        hi_all = np.minimum(hr * (2.0 ** (k + 1.0) - 1.0), Lr)
        hi_all[:, -1] = Lr[:, 0]
        idx = np.broadcast_to(rows[:, None], lo_all.shape)
        f_lo, _ = logf(idx, lo_all)
        f_hi, _ = logf(idx, hi_all)
        width = hi_all - lo_all
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            slope = np.where(width > 0, (f_hi - f_lo) / width, 0.0)
            drop = slope * width
            # log mass of exp(f_lo + slope d) on [0, width]
            log_mass = f_lo + np.where(
                np.abs(drop) > 1e-12,
                np.log(np.abs(np.expm1(drop))) - np.log(np.abs(slope)),
                np.log(width),
            )
        log_mass = np.where(width > 0, log_mass, -np.inf)
        top = np.max(log_mass, axis=1, keepdims=True)
        cdf = np.cumsum(np.exp(log_mass - top), axis=1)
        cdf /= cdf[:, -1:]
        todo = np.arange(len(rows))
        for _ in range(10_000):
            if todo.size == 0:
                break
            pick = np.minimum((rng.random(todo.size)[:, None] > cdf[todo]).sum(axis=1), k.size - 1)
            lo, wd = lo_all[todo, pick], width[todo, pick]
            sl, fl = slope[todo, pick], f_lo[todo, pick]
            v = rng.random(todo.size)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                dr = sl * wd
                d = np.where(np.abs(dr) > 1e-12, np.log1p(v * np.expm1(dr)) / sl, v * wd)
            d = np.clip(np.nan_to_num(d, nan=0.0), 0.0, wd)
            z = lo + d
            g, y_off = logf(rows[todo], z)
            ok = np.log(rng.random(todo.size)) <= g - (fl + sl * d)
            out[rows[todo[ok]]] = t_x[rows[todo[ok]]] + y_off[ok]
            todo = todo[~ok]
        else:  # pragma: no cover - acceptance is high by construction
            raise NumericalError("GGompertz/NBD: the death-time sampler did not finish")
    return np.minimum(out, T)


def sample_latent(r, alpha, b, s, beta, x, t_x, T, rng: np.random.Generator):
    """One draw per element of the customer's posterior of (alive, lambda, eta).

    * alive at T (probability :func:`probability_alive`): the likelihood is
      ``lambda^x e^{-lambda T} e^{-eta (e^{bT}-1)}``, so ``lambda ~ Gamma(r+x, alpha+T)`` and
      ``eta ~ Gamma(s, B(T))``, independent;
    * died at ``y in (t_x, T]``: the likelihood is ``lambda^x e^{-lambda y} eta b e^{by}
      e^{-eta (e^{by}-1)}``, so ``y`` has density proportional to the dropout integrand
      (:func:`_sample_death_times`) and, given ``y``, ``lambda ~ Gamma(r+x, alpha+y)``,
      ``eta ~ Gamma(s+1, B(y))``.

    Returns ``(alive (bool), lam, eta)`` shaped like the broadcast of the inputs.
    """
    shape, flat = _flat(r, alpha, b, s, beta, x, t_x, T)
    r, alpha, b, s, beta, x, t_x, T = flat
    p_alive = probability_alive(r, alpha, b, s, beta, x, t_x, T)
    alive = rng.random(len(r)) < p_alive
    tau = T.copy()
    dead = np.flatnonzero(~alive)
    if dead.size:
        tau[dead] = _sample_death_times(*(v[dead] for v in flat), rng)
    log_b_tau = b * tau + log_c(b, beta, tau)
    lam = rng.gamma(r + x) / (alpha + tau)
    eta = np.exp(np.log(rng.gamma(np.where(alive, s, s + 1.0))) - log_b_tau)
    return alive.reshape(shape), lam.reshape(shape), eta.reshape(shape)


def residual_lifetimes(b, s, lc, rng: np.random.Generator):
    """Draws of a gamma-Gompertz lifetime with shape ``b``, ``eta ~ Gamma(s, c)``
    (``c = e^lc``), marginally over ``eta``, by inversion of ``P(w > t) = (c/(c+expm1(bt)))^s``:
    ``v = E/s`` with ``E ~ Exp(1)``, ``w = log1p(c expm1(v)) / b`` (``inf`` when it overflows)."""
    b, s, lc = as_float(b, s, lc)
    v = rng.standard_exponential(np.shape(b)) / s
    with np.errstate(over="ignore", divide="ignore"):
        return _log_one_plus(lc + log_expm1(v)) / b


def sample_future_purchase_periods(r, alpha, b, s, beta, x, t_x, T, t_grid, rng, p_alive=None):
    """Per-period purchase counts at the times ``t_grid`` after T drawn from the posterior, in
    sparse form ``(shape, pairs, per_period)``.

    ``alive ~ Bernoulli(P(alive))``; given alive, the remaining lifetime is gamma-Gompertz with
    scale ``c(T)`` (:func:`residual_lifetimes`, marginal over eta) and purchases are a
    Poisson(lambda) process with ``lambda ~ Gamma(r+x, alpha+T)`` until then
    (:func:`~clvmodels.families.sampling.gamma_poisson_periods`). Dead customers buy nothing.
    """
    grid = check_grid(t_grid)
    r, alpha, b, s, beta, x, t_x, T = as_float(r, alpha, b, s, beta, x, t_x, T)
    shape = np.broadcast_shapes(*(np.shape(v) for v in (r, alpha, b, s, beta, x, t_x, T)))
    if grid.size == 0 or grid[-1] <= 0:
        return shape, np.zeros(0, dtype=np.intp), np.zeros((0, grid.size), dtype=np.int64)
    if p_alive is None:
        p_alive = probability_alive(r, alpha, b, s, beta, x, t_x, T)
    alive = np.flatnonzero(rng.random(shape) < p_alive)
    T_a = take_flat(T, shape, alive)
    b_a = take_flat(b, shape, alive)
    lc_T = log_c(b_a, take_flat(beta, shape, alive), T_a)
    lifetime = residual_lifetimes(b_a, take_flat(s, shape, alive), lc_T, rng)
    span = np.minimum(lifetime, float(grid[-1]))
    buyers, per, _ = gamma_poisson_periods(
        take_flat(r, shape, alive) + take_flat(x, shape, alive),
        take_flat(alpha, shape, alive) + T_a,
        span,
        grid,
        rng,
    )
    return shape, alive[buyers], per


# --------------------------------------------------------------------------------------------
# the family
# --------------------------------------------------------------------------------------------
class GGompertzNBDFamily(PurchaseFamily):
    """GGompertz/NBD (Bemmaor & Glady 2012): this module on the family interface."""

    name = "ggomnbd"
    label = "GGompertz/NBD"
    param_names = PARAM_NAMES
    latent_names = ("alive", "lambda", "eta")
    #: CLVTools' static-covariate parameterisation (``ggomnbd_staticcov_alpha_i`` /
    #: ``_beta_i``): alpha_i = alpha exp(-purchase' z_i), beta_i = beta exp(-dropout' z_i)
    covariate_links: ClassVar[dict] = {"purchase": (("alpha", -1),), "dropout": (("beta", -1),)}

    def make_rows(self, columns, counts) -> FitRows:
        """Distinct rows plus their :class:`GapPlan` (parameter-free bookkeeping that every
        likelihood evaluation of these rows reuses)."""
        x, t_x, T = (np.asarray(columns[c], dtype=float) for c in ("frequency", "recency", "T"))
        return FitRows(columns, np.asarray(counts, dtype=float), {"plan": GapPlan(x, t_x, T)})

    def negative_log_likelihood(self, log_params, rows):
        x, t_x, T = rows["frequency"], rows["recency"], rows["T"]
        return negative_log_likelihood(
            log_params, x, t_x, T, rows.counts, plan=rows.aux.get("plan")
        )

    def initial_log_params(self, rows) -> np.ndarray:
        """The best of a small grid of starts (Gompertz shape ``b T`` in {0.1, 1, 3} over the
        mean age ``T``, ``beta`` in {0.05, 0.5, 5}, ``s`` in {0.5, 2}; ``r = 1`` and ``alpha``
        from the mean purchase rate) by the likelihood of at most 500 distinct rows (with their
        counts), refined by a fit of the mean log-likelihood per customer on at most 20,000
        distinct rows. The grid keeps the search away from the ridges ``b -> 0`` and
        ``s, beta -> inf`` that a single start can slide into; the per-customer scale keeps the
        bounded search's first step (to the Cauchy point along the gradient) inside the
        region where the likelihood is informative, whatever the number of customers."""
        w = rows.counts / rows.counts.sum()
        mean_T = max(weighted_sum(w, rows["T"]), 1e-12)
        rate = (weighted_sum(w, rows["frequency"]) + 0.5) / mean_T
        sample = rows if rows.n_rows <= 500 else self.subset_rows(rows, 500, seed=0)
        best, best_value = None, np.inf
        x, t_x, T = sample["frequency"], sample["recency"], sample["T"]
        plan = sample.aux.get("plan")
        for bt, beta, s in itertools.product((0.1, 1.0, 3.0), (0.05, 0.5, 5.0), (0.5, 2.0)):
            guess = np.log([1.0, 1.0 / rate, bt / mean_T, s, beta])
            value, _ = negative_log_likelihood(
                guess, x, t_x, T, sample.counts, plan=plan, gradient=False
            )
            if value < best_value:
                best, best_value = guess, value
        if best is None:
            return np.log([1.0, 1.0 / rate, 1.0 / mean_T, 1.0, 0.5])
        subset = rows if rows.n_rows <= 20_000 else self.subset_rows(rows, 20_000, seed=0)
        total = float(subset.counts.sum())

        def per_customer(log_params):
            value, gradient = self.negative_log_likelihood(log_params, subset)
            return value / total, gradient / total

        refined = minimize_negative_log_likelihood(per_customer, best)
        finite = np.all(np.isfinite(refined.log_params)) and np.isfinite(refined.neg_log_likelihood)
        return refined.log_params if finite else best

    def preconditioner(self, rows, x0):
        return subset_preconditioner(self, rows, x0)

    def log_likelihood(self, params, data):
        x, t_x, T = data["frequency"], data["recency"], data["T"]
        return log_likelihood(*self.unpack(params), x, t_x, T)

    def log_likelihood_gradient(self, params, data):
        """Per-row log-likelihood and gradient for covariate fits, without the quadrature's
        second-rule check (as in the plain fit); every fit then certifies its estimate by
        one checked :meth:`log_likelihood` (``Family.certify_log_likelihood``)."""
        x, t_x, T = data["frequency"], data["recency"], data["T"]
        return log_likelihood_gradient(*self.unpack(params), x, t_x, T, check=False)

    def boundary_hint(self, params, names) -> str:
        if "b" in names:
            return (
                "A Gompertz shape b near 0 means the lifetimes are exponential: the model is "
                f"Pareto/NBD with beta = beta/b = {params['beta'] / params['b']:.4g} (fit "
                "ParetoNBD for standard errors)."
            )
        return ""

    def probability_alive(self, params, x, t_x, T):
        return probability_alive(*self.unpack(params), x, t_x, T)

    def expected_purchases(self, params, x, t_x, T, t, p_alive=None):
        return conditional_expected_purchases(*self.unpack(params), x, t_x, T, t, p_alive)

    def purchase_probability(self, params, x, t_x, T, t, k, p_alive=None):
        return conditional_purchase_probability(*self.unpack(params), x, t_x, T, t, k, p_alive)

    def expected_purchases_new_customer(self, params, t):
        return expected_purchases_new_customer(*self.unpack(params), t)

    def discounted_expected_residual_transactions(self, params, x, t_x, T, delta, p_alive=None):
        if p_alive is None:
            p_alive = probability_alive(*self.unpack(params), x, t_x, T)
        return discounted_expected_residual_transactions(
            *self.unpack(params), x, t_x, T, delta, p_alive
        )

    def sample_latent(self, params, x, t_x, T, rng):
        drawn = sample_latent(*self.unpack(params), x, t_x, T, rng)
        return dict(zip(self.latent_names, drawn, strict=True))

    def sample_future_purchase_periods(self, params, x, t_x, T, t_grid, rng, p_alive=None):
        return sample_future_purchase_periods(*self.unpack(params), x, t_x, T, t_grid, rng, p_alive)

    def sample_future_purchases(self, params, x, t_x, T, t_grid, rng, p_alive=None):
        return cumulative_counts(
            *self.sample_future_purchase_periods(params, x, t_x, T, t_grid, rng, p_alive)
        )

    def simulate(self, params, T, holdout, rng):
        """Customers drawn from the model's story (BG 2012): ``lambda ~ Gamma(r, alpha)``,
        ``eta ~ Gamma(s, beta)``, the lifetime ``tau = log1p(E/eta)/b`` with ``E ~ Exp(1)``
        (inversion of ``P(tau > t | eta) = exp(-eta expm1(bt))``), and
        ``x ~ Poisson(lambda min(tau, T))`` purchases, the last at ``min(tau, T) Beta(x, 1)``.
        A holdout adds ``Poisson(lambda clip(tau - T, 0, holdout))``. Latent columns
        ``true_lambda``, ``true_eta``, ``true_lifetime``, ``true_alive`` (and
        ``true_alive_holdout_end`` with a holdout)."""
        r, alpha, b, s, beta = (np.asarray(v, dtype=float) for v in self.unpack(params))
        T = np.asarray(T, dtype=float)
        shape = np.broadcast_shapes(r.shape, alpha.shape, b.shape, s.shape, beta.shape, T.shape)
        ages = np.broadcast_to(T, shape)
        lam = rng.gamma(r, 1.0 / alpha, size=shape)
        eta = rng.gamma(s, 1.0 / beta, size=shape)
        with np.errstate(divide="ignore", over="ignore"):
            tau = np.log1p(rng.standard_exponential(shape) / eta) / b
        columns = simulate_purchases_while_alive(lam, tau, ages, holdout, rng)
        columns.update(
            {"true_lambda": lam, "true_eta": eta, "true_lifetime": tau, "true_alive": tau > ages}
        )
        return columns
