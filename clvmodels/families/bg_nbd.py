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
:mod:`clvmodels.families.mbg_nbd`.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import ClassVar

import numpy as np
from scipy.special import betainc, betaln, digamma, gammaln, hyp2f1

from clvmodels.errors import NumericalError
from clvmodels.families.base import FitRows, PurchaseFamily
from clvmodels.families.sampling import (
    allocate_to_periods,
    check_grid,
    cumulative_counts,
    distinct_pairs,
    geometric_at_most,
    per_frequency,
    poisson_periods,
    unique_inverse,
    whole_numbers,
)
from clvmodels.optimize import subset_preconditioner, warm_start, weighted_sum
from clvmodels.validation import as_float

PARAM_NAMES = ("r", "alpha", "a", "b")


_SINGULAR = 1e-5  # distance from a_ = 1 or a_ + b_ = 1 below which the value is interpolated
# a_ + b_ from which the dropout probability's posterior Beta(a_, b_) is concentrated enough that
# eq. (10)'s 2F1 loses accuracy in double precision (scipy's hyp2f1 returned 0 or 1e33 for
# a_ + b_ of 500 to 1300 with long horizons, inside or outside the bounds) while Gauss-Hermite
# quadrature on the logit scale is exact to double precision
_CONCENTRATED = 100.0
_HERMITE_NODES = 64


def _active_expected_hypergeometric(s, beta, a_, b_, t):
    """The closed form of :func:`active_expected_purchases` through Euler's transformation:
    ``(1-z)^s 2F1(s, b_; c; z) = (1-z)^(a_-1) 2F1(c-s, a_-1; c; z)``, ``c = a_+b_-1``,
    ``z = t/(beta+t)``; the right-hand side keeps the first two arguments free of x, so it stays
    accurate for customers with many purchases and long horizons."""
    c = a_ + b_ - 1.0
    z = t / (beta + t)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        tail = np.exp((a_ - 1.0) * np.log1p(-z)) * hyp2f1(c - s, a_ - 1.0, c, z)
        return c / (a_ - 1.0) * (1.0 - tail)


def active_expected_quadrature(s, beta, a_, b_, t, n_nodes: int = _HERMITE_NODES):
    """:func:`active_expected_purchases` as an integral over the dropout probability.

    An active customer with rate lambda and dropout probability p buys
    ``E[min(N(t), K)] = (1 - E[(1-p)^N(t)]) / p = (1 - exp(-lambda p t)) / p`` (N Poisson,
    K geometric); over ``lambda ~ Gamma(s, beta)`` this is ``(1 - (1 + p t/beta)^-s) / p``, a
    smooth function of p bounded by ``s t / beta``, so

        E = int_0^1 (1 - (1 + p t/beta)^-s) / p  Beta(p; a_, b_) dp.

    Evaluated by Gauss-Hermite quadrature in ``u = logit(p)``, centred at the mode
    ``log(a_/b_)`` of the density of u (proportional to ``p^a_ (1-p)^b_``) and scaled by its
    curvature ``a_ b_ / (a_ + b_)``: exact to double precision when that density is nearly
    normal, i.e. for a concentrated Beta (large ``a_`` and ``b_``), where the 2F1 of the closed
    form cancels. 1-d arrays in, 1-d array out.
    """
    nodes, weights = np.polynomial.hermite.hermgauss(n_nodes)
    s, beta, a_, b_, t = (np.asarray(v, dtype=float)[:, None] for v in (s, beta, a_, b_, t))
    scale = np.sqrt(2.0 * (a_ + b_) / (a_ * b_))
    u = np.log(a_) - np.log(b_) + scale * nodes
    log_p = -np.logaddexp(0.0, -u)
    log_q = -np.logaddexp(0.0, u)
    log_density = a_ * log_p + b_ * log_q - betaln(a_, b_) + np.log(scale) + nodes**2
    p = np.exp(log_p)
    f = -np.expm1(-s * np.log1p(p * t / beta)) / p
    return np.sum(weights * np.exp(log_density) * f, axis=-1)


def gauss_jacobi_rule(a_, b_, n_nodes: int):
    """Nodes and weights of the ``n_nodes``-point Gauss rule of the Beta(a_, b_) measure on
    [0, 1], for each pair of the 1-d arrays ``a_``, ``b_``: ``(nodes, weights)`` of shape
    ``(len(a_), n_nodes)``, weights summing to one. Golub-Welsch: the nodes are the eigenvalues
    of the Jacobi matrix of the (shifted) Jacobi polynomials' recurrence, the weights the squared
    first components of its eigenvectors (a symmetric tridiagonal eigenproblem, O(n^2) each)."""
    from scipy.linalg import eigh_tridiagonal

    k = np.arange(n_nodes, dtype=float)
    nodes = np.empty((len(a_), n_nodes))
    weights = np.empty((len(a_), n_nodes))
    for i, (shape_a, shape_b) in enumerate(zip(np.ravel(a_), np.ravel(b_), strict=True)):
        jac_a, jac_b = shape_b - 1.0, shape_a - 1.0  # weight (1-x)^jac_a (1+x)^jac_b on [-1, 1]
        total = 2.0 * k + jac_a + jac_b
        with np.errstate(divide="ignore", invalid="ignore"):
            diag = (jac_b**2 - jac_a**2) / (total * (total + 2.0))
        diag[0] = (jac_b - jac_a) / (jac_a + jac_b + 2.0)
        k1, total1 = k[1:], total[1:]
        product = k1 * (k1 + jac_a) * (k1 + jac_b) * (k1 + jac_a + jac_b)
        off = np.sqrt(4.0 * product / (total1**2 * (total1 + 1.0) * (total1 - 1.0)))
        values, vectors = eigh_tridiagonal((1.0 + diag) / 2.0, off / 2.0)  # p = (1 + x) / 2
        nodes[i], weights[i] = values, vectors[0] ** 2
    return np.clip(nodes, np.finfo(float).tiny, 1.0), weights


def active_expected_gauss_jacobi(s, beta, a_, b_, t, n_nodes: int = 96):
    """The integral of :func:`active_expected_quadrature` by Gauss-Jacobi quadrature: the
    Gauss rule of the Beta(a_, b_) measure itself (:func:`gauss_jacobi_rule`), so any shape of
    the Beta is integrated exactly for polynomial integrands; for a skewed concentrated Beta
    (one shape below 5) where the logit-normal approximation of
    :func:`active_expected_quadrature` is poor. The rule depends on (a_, b_) alone, so it is
    computed once per distinct pair (with shared parameters, once per distinct frequency).
    1-d arrays, evaluated in blocks of rows (bounded memory)."""
    s, beta, a_, b_, t = (np.asarray(v, dtype=float) for v in (s, beta, a_, b_, t))
    pairs, pair_of = np.unique(np.column_stack([a_, b_]), axis=0, return_inverse=True)
    nodes, weights = gauss_jacobi_rule(pairs[:, 0], pairs[:, 1], n_nodes)
    out = np.empty(len(s))
    block = max(1, (1 << 21) // n_nodes)
    for start in range(0, len(s), block):
        rows = slice(start, start + block)
        p, w = nodes[pair_of.ravel()[rows]], weights[pair_of.ravel()[rows]]
        u = p * (t[rows] / beta[rows])[:, None]
        f = -np.expm1(-s[rows, None] * np.log1p(u)) / p
        out[rows] = np.sum(w * f, axis=-1)
    return out


def active_expected_adaptive(s, beta, a_, b_, t) -> float:
    """The integral of :func:`active_expected_quadrature` for one customer by QUADPACK's
    adaptive rule for algebraic end-point weights (QAWS: ``p^(a_-1) (1-p)^(b_-1)`` integrated
    exactly, so tiny or large shapes are no difficulty); NaN when its error estimate exceeds
    1e-8 relative. Slow (about a millisecond): the last resort."""
    from scipy import integrate

    log_beta = betaln(a_, b_)

    def f(p):
        return -np.expm1(-s * np.log1p(p * t / beta)) / p if p > 0 else s * t / beta

    options = {"weight": "alg", "limit": 200, "epsabs": 0.0, "epsrel": 1e-10}
    if max(a_, b_) < 50.0:
        value, error = integrate.quad(
            lambda p: f(p) * np.exp(-log_beta), 0.0, 1.0, wvar=(a_ - 1.0, b_ - 1.0), **options
        )
    elif a_ <= b_:
        value, error = integrate.quad(
            lambda p: f(p) * np.exp((b_ - 1.0) * np.log1p(-p) - log_beta),
            0.0,
            1.0,
            wvar=(a_ - 1.0, 0.0),
            **options,
        )
    else:
        value, error = integrate.quad(
            lambda q: f(1.0 - q) * np.exp((a_ - 1.0) * np.log1p(-q) - log_beta),
            0.0,
            1.0,
            wvar=(b_ - 1.0, 0.0),
            **options,
        )
    return value if error <= 1e-8 * abs(value) else float("nan")


def _active_expected_raw(s, beta, a_, b_, t):
    """The closed form where it is accurate, quadrature where it is not (see
    :func:`active_expected_purchases`)."""
    shape = np.broadcast_shapes(*(np.shape(v) for v in (s, beta, a_, b_, t)))
    out = np.array(np.broadcast_to(_active_expected_hypergeometric(s, beta, a_, b_, t), shape))
    flat = [np.ravel(np.broadcast_to(v, shape)) for v in (s, beta, a_, b_, t)]
    s_, beta_, a, b, t_ = flat
    upper = s_ * t_ / beta_  # the purchases of a customer who never drops out
    values = out.reshape(-1)
    with np.errstate(invalid="ignore"):
        # relative to the bound (1e-300: slack for subnormal horizons, 0 for all purposes)
        failed = ~((values >= -1e-9 * upper - 1e-300) & (values <= upper * (1 + 1e-8) + 1e-300))
    concentrated = a + b >= _CONCENTRATED
    # the removable singularities a_ = 1 and a_ + b_ = 1 are interpolated by the caller
    regular = (np.abs(a - 1.0) >= _SINGULAR) & (np.abs(a + b - 1.0) >= _SINGULAR)
    # a horizon so short that (s+1) t/beta < 1e-8: the expansion of f(p) in u = t/beta,
    # E = s u (1 - (s+1) u E[p] / 2) + O((s u)^3), is exact to double precision, where the
    # closed form cancels and subnormal horizons defeat relative error checks
    u = t_ / beta_
    short = (t_ > 0) & ((s_ + 1.0) * u < 1e-8)
    values[short] = (s_ * u * (1.0 - 0.5 * (s_ + 1.0) * u * a / (a + b)))[short]
    failed[short] = False
    positive = (t_ > 0) & ~short
    normal_like = np.flatnonzero(positive & concentrated & (np.minimum(a, b) >= 5.0))
    if normal_like.size:
        values[normal_like] = active_expected_quadrature(*(v[normal_like] for v in flat))
        failed[normal_like] = False
    skewed = np.flatnonzero(positive & concentrated & (np.minimum(a, b) < 5.0))
    closed_form = np.where(failed, np.nan, values)
    previous_rule = np.full(values.shape, np.nan)
    for nodes in (48, 96, 192, 256):
        if not skewed.size:
            break
        # a value is settled when two independent routes agree to 1e-8: the closed form (where
        # it passed its bounds) or the previous rule; a sharp integrand (huge s t / beta) needs
        # more nodes, so the unsettled rows escalate
        rule = active_expected_gauss_jacobi(*(v[skewed] for v in flat), n_nodes=nodes)
        tolerance = 1e-8 * np.abs(rule)
        with np.errstate(invalid="ignore"):
            closed, previous = closed_form[skewed], previous_rule[skewed]
            settled = np.abs(rule - closed) <= tolerance
            settled |= np.abs(rule - previous) <= tolerance
            # a sharp integrand makes the rules converge slowly (from below): the closed form
            # is confirmed when it lies within the last refinement step of the rule
            bracketed = np.abs(rule - closed) <= np.abs(rule - previous)
        values[skewed] = previous_rule[skewed] = rule
        values[skewed[bracketed]] = closed[bracketed]
        settled |= bracketed
        failed[skewed] = False
        skewed = skewed[~settled]
    failed[skewed] = True
    for i in np.flatnonzero(positive & failed & (regular | concentrated)):
        values[i] = active_expected_adaptive(s_[i], beta_[i], a[i], b[i], t_[i])
    return out


def active_expected_purchases(s, beta, a_, b_, t):
    """E[purchases in the next ``t`` | active now], latent ``lambda ~ Gamma(s, beta)`` (shape,
    rate) and dropout probability ``p ~ Beta(a_, b_)``.

    ``(a_+b_-1)/(a_-1) * [1 - (beta/(beta+t))^s 2F1(s, b_; a_+b_-1; t/(beta+t))]`` — the
    numerator of FHL 2005 eq. (10) (``s = r+x``, ``beta = alpha+T``, ``a_ = a``, ``b_ = b+x``)
    and, with ``s = r``, ``beta = alpha``, ``b_ = b``, FHL 2005 eq. (9). Evaluated through Euler's
    transformation of 2F1, or, where the dropout posterior is concentrated (``a_ + b_ >= 100``:
    there scipy's 2F1 was measured wrong by up to 1e33 outside the bounds and silently by up to
    6e-4 inside them), by quadrature over p: Gauss-Hermite on the logit scale when both shapes
    are at least 5 (:func:`active_expected_quadrature`, exact to double precision there),
    Gauss-Jacobi otherwise (:func:`active_expected_gauss_jacobi`: 48 nodes, then 96, 192, 256
    until two independent routes, the closed form or the previous rule, agree to 1e-8), and
    QUADPACK's adaptive rule (:func:`active_expected_adaptive`) wherever a route fails. At the
    removable singularities
    ``a_ = 1`` and ``a_ + b_ = 1`` the value is interpolated linearly between the neighbours at
    distance ``2e-5`` (the function is smooth there).

    Every value is checked against the model's bounds ``0 <= E <= s t / beta`` (the purchases of
    a customer who never drops out); a value that cannot be computed within them raises
    :class:`~clvmodels.errors.NumericalError` rather than being returned.
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
    out = np.where(t > 0, out, 0.0)
    upper = np.where(t > 0, s * t / beta, 0.0)
    with np.errstate(invalid="ignore"):
        wrong = ~((out >= -1e-9 * upper - 1e-300) & (out <= upper * (1 + 1e-8) + 1e-300))
    if np.any(wrong):
        first = np.flatnonzero(wrong.ravel())[0]
        values = {
            k: np.ravel(v)[first]
            for k, v in zip(("s", "beta", "a", "b", "t"), (s, beta, a_, b_, t), strict=True)
        }
        raise NumericalError(
            f"the expected purchases of {int(wrong.sum())} active customer(s) could not be "
            f"computed within the model's bounds [0, {np.ravel(upper)[first]:.6g}], e.g. for "
            f"posterior Gamma(shape={values['s']:.6g}, rate={values['beta']:.6g}) x "
            f"Beta({values['a']:.6g}, {values['b']:.6g}) over t={values['t']:.6g}. These "
            "parameters are extreme: check the fit (summary(), converged_) or report this case."
        )
    return np.clip(out, 0.0, upper)


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
    if shared and np.ndim(x) == 1 and np.ndim(T) == 1:
        walked = walk_supported(r, alpha, a, b, t)
        if walked or len(x) >= 256:
            xd, Td, pair_codes = distinct_pairs(x, T)
            if walked or len(xd) <= len(x) // 2:
                if walked:
                    values = active_expected_of_pairs(r, alpha, a, b, xd, Td, t, shift)
                else:
                    values = active_expected_purchases(r + xd, alpha + Td, a, b + xd + shift, t)
                return np.take(values, pair_codes, axis=-1)
    return active_expected_purchases(r + x, alpha + T, a, b + x + shift, t)


def active_discounted_by_history(r, alpha, a, b, x, T, ends, weights, shift=0.0):
    """``sum_k weights[k] * active_expected_by_history(..., ends[k])``: the weighted sum over
    horizons of the active customer's expected purchases, formed per distinct (x, T) pair when
    the parameters are shared (the sum has the shape of one horizon's values; only the pairs'
    values are added up, then gathered to the customers once)."""
    ends = np.asarray(ends, dtype=float).ravel()
    weights = np.asarray(weights, dtype=float).ravel()
    shared = all(np.ndim(v) == 0 or np.shape(v)[-1] == 1 for v in (r, alpha, a, b))
    if shared and np.ndim(x) == 1 and np.ndim(T) == 1 and len(x):
        xd, Td, pair_codes = distinct_pairs(x, T)
        total = 0.0
        for t, weight in zip(ends, weights, strict=True):
            if walk_supported(r, alpha, a, b, t):
                values = active_expected_of_pairs(r, alpha, a, b, xd, Td, t, shift)
            else:
                values = active_expected_purchases(r + xd, alpha + Td, a, b + xd + shift, t)
            total = total + weight * values
        return np.take(np.asarray(total, dtype=float), pair_codes, axis=-1)
    total = 0.0
    for t, weight in zip(ends, weights, strict=True):
        total = total + weight * active_expected_by_history(r, alpha, a, b, x, T, t, shift)
    return np.asarray(total, dtype=float)


def walk_supported(r, alpha, a, b, t) -> bool:
    """True when :func:`active_expected_of_pairs` can walk: numba installed, one positive
    finite horizon, parameters of shape ``(n_draws, 1)`` (or scalars) with finite values."""
    if np.size(t) != 1 or not 0.0 < float(np.ravel(t)[0]) < np.inf:
        return False
    if any(np.ndim(v) > 2 or np.ndim(v) == 2 and np.shape(v)[-1] != 1 for v in (r, alpha, a, b)):
        return False
    return importlib.util.find_spec("numba") is not None


def active_expected_of_pairs(r, alpha, a, b, xd, Td, t, shift=0.0):
    """:func:`active_expected_purchases` at ``Gamma(r+xd, alpha+Td) x Beta(a, b+xd+shift)`` for
    parameters shared by all pairs (shape ``(n_draws, 1)`` or scalars) and one horizon ``t``,
    shape ``(n_draws, n_pairs)``.

    The pairs of one frequency share one hypergeometric function (see
    :mod:`clvmodels.families.hypergeometric_walk`), which is carried from pair to pair by Taylor
    steps of its differential equation instead of being evaluated afresh for each: about five
    times faster than ``scipy.special.hyp2f1`` and within 1e-10 of it. The values the walk cannot
    vouch for (near the removable singularities, concentrated dropout posteriors, very short
    horizons, series that cancel) are computed by :func:`active_expected_purchases`, so the
    result equals it to rounding.
    """
    from clvmodels.families.hypergeometric_walk import active_expected_walk

    params = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (r, alpha, a, b)))
    n_draws = params[0].shape[0] if params[0].ndim else 1
    r_, alpha_, a_, b_ = (np.ascontiguousarray(np.reshape(v, n_draws)) for v in params)
    t = float(np.ravel(t)[0])
    order = np.lexsort((Td, xd))  # by frequency, then T
    x_sorted = xd[order]
    group_x, group_start = np.unique(x_sorted, return_index=True)
    group_start = np.append(group_start, len(x_sorted)).astype(np.int64)
    ages, age_codes = np.unique(Td[order], return_inverse=True)
    out = np.empty((n_draws, len(xd)))
    missing = active_expected_walk(
        r_, alpha_, a_, b_, group_x.astype(float), group_start, age_codes.astype(np.int64),
        ages.astype(float), t, float(shift), order.astype(np.int64), out,
    )  # fmt: skip
    if missing:
        draw, pair = np.nonzero(np.isnan(out))
        out[draw, pair] = active_expected_purchases(
            r_[draw] + xd[pair], alpha_[draw] + Td[pair], a_[draw], b_[draw] + xd[pair] + shift, t
        )
    return out.reshape(np.broadcast_shapes(params[0].shape, xd.shape))


def sample_bg_family_periods(p_alive, lam_shape, lam_rate, a_, b_, t_grid, rng):
    """Future purchases of the BG/NBD family (BG/NBD, MBG/NBD) from the customer's posterior,
    in sparse form: ``(shape, pairs, per_period)`` — the broadcast shape of the inputs, the flat
    indices (into ``shape``, C order) of the paths with at least one purchase, and their int64
    per-period counts ``(len(pairs), len(t_grid))``.

    ``alive ~ Bernoulli(p_alive)``; the dead buy nothing; the alive buy as a Poisson(lambda)
    process with ``lambda ~ Gamma(lam_shape, lam_rate)`` stopped after a Geometric(p) number of
    purchases, ``p ~ Beta(a_, b_)`` (the posterior of an active customer):
    :func:`~clvmodels.families.sampling.poisson_periods`, one compiled pass whose work is
    proportional to the alive paths and their purchases, not to draws x customers x periods.
    """
    shape, pairs, per, _ = poisson_periods(
        lam_shape, lam_rate, t_grid, rng, p_alive=p_alive, dropout=(a_, b_)
    )
    return shape, pairs, per


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
    k = geometric_at_most(p[buyers], n.astype(float), rng).astype(np.int64)
    out = np.zeros(lam.shape + (grid.size,), dtype=np.int64)
    out[buyers] = np.minimum(cum, k[:, None])
    return out


# --------------------------------------------------------------------------------------------
# BG/NBD math
# --------------------------------------------------------------------------------------------
def log_likelihood(r, alpha, a, b, x, t_x, T):
    """Per-customer log-likelihood, FHL 2005 eq. (6)-(7), in log space.

    ``ll = log G(r+x) - log G(r) + r log alpha + log B(a, b+x) - log B(a, b) - (r+x) log(alpha+T)
    + [x>0] log(1 + exp(d))`` with ``d = log(a/(b+x-1)) + (r+x) log((alpha+T)/(alpha+t_x))``.
    """
    r, alpha, a, b, x, t_x, T = as_float(r, alpha, a, b, x, t_x, T)
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


def log_tenure_ratio(alpha, t_x, T):
    """``log((alpha+T)/(alpha+t_x))`` per customer.

    When alpha is shared by all customers and recency and T are whole numbers (daily data),
    ``log(alpha + k)`` is tabulated once for k = 0..max(T) and looked up, instead of two
    logarithms per customer.
    """
    shared = np.ndim(alpha) == 0 or np.shape(alpha)[-1] == 1
    if shared and np.ndim(T) == 1 and np.ndim(t_x) == 1 and len(T) >= 1024:
        top = float(T.max()) if len(T) else 0.0
        ti = whole_numbers(T, top, len(T))
        ri = whole_numbers(t_x, top, len(T)) if ti is not None else None
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
    x, t_x, T, counts = as_float(x, t_x, T, counts)
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
    value = weighted_sum(cu, lg) - weighted_sum(c_rx, log_aT) + weighted_sum(counts, softplus)
    w_by_x = np.bincount(x_index, weights=cw, minlength=len(xu))
    g_r = (
        weighted_sum(cu, (digamma(r + xu) - digamma(r) + np.log(alpha)))
        - weighted_sum(counts, log_aT)
        + weighted_sum(cw, diff)
    )
    g_alpha = (
        r / alpha * float(cu.sum()) - weighted_sum(c_rx, inv_aT) + weighted_sum(cw * rx, inv_diff)
    )
    g_a = weighted_sum(cu, (psi_ab - psi_abx)) + float(cw.sum()) / a
    g_b = weighted_sum(cu, (digamma(b_post) - digamma(b) + psi_ab - psi_abx)) - weighted_sum(
        w_by_x, inv_b1
    )
    grad = np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b])
    return -value, -grad


def bg_family_log_likelihood_gradient(r, alpha, a, b, x, t_x, T, shift=0.0):
    """Per-row log-likelihood at per-row parameters (1-d arrays, or scalars) and its
    derivatives with respect to ``log(r, alpha, a, b)``, shape ``(n_rows, 4)``, for BG/NBD
    (``shift=0``) and MBG/NBD (``shift=1``): the formulas of
    :func:`bg_family_negative_log_likelihood` row by row, for covariate models where every row
    has its own alpha, a and b."""
    r, alpha, a, b, x, t_x, T = (
        np.ravel(v) for v in np.broadcast_arrays(*as_float(r, alpha, a, b, x, t_x, T))
    )
    b_post = b + x + shift
    has_second = (x > 0) | (shift > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ab = np.where(has_second, np.log(a) - np.log(b_post - 1.0), -np.inf)
        inv_b1 = np.where(has_second, 1.0 / (b_post - 1.0), 0.0)
    rx = r + x
    log_aT = np.log(alpha + T)
    diff = np.log1p((T - t_x) / (alpha + t_x))  # log((alpha+T)/(alpha+t_x))
    d = rx * diff + log_ab
    ll = (
        gammaln(rx)
        - gammaln(r)
        + r * np.log(alpha)
        + betaln(a, b_post)
        - betaln(a, b)
        - rx * log_aT
        + np.logaddexp(0.0, d)
    )
    w = inverse_one_plus_exp(-d)  # P(inactive since t_x)
    psi_ab, psi_abx = digamma(a + b), digamma(a + b_post)
    g_r = digamma(rx) - digamma(r) + np.log(alpha) - log_aT + w * diff
    g_alpha = r / alpha - rx / (alpha + T) + w * rx * (1.0 / (alpha + T) - 1.0 / (alpha + t_x))
    g_a = psi_ab - psi_abx + w / a
    g_b = digamma(b_post) - digamma(b) + psi_ab - psi_abx - w * inv_b1
    return ll, np.column_stack([g_r * r, g_alpha * alpha, g_a * a, g_b * b])


def log_likelihood_gradient(r, alpha, a, b, x, t_x, T):
    """BG/NBD per-row log-likelihood and log-parameter gradient
    (:func:`bg_family_log_likelihood_gradient` with ``shift=0``)."""
    return bg_family_log_likelihood_gradient(r, alpha, a, b, x, t_x, T, shift=0.0)


def probability_alive(r, alpha, a, b, x, t_x, T):
    """P(active at T | x, t_x, T) = 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)).

    FHL 2008 (note 021); the denominator of FHL 2005 eq. (10). Computed from the log-odds
    ``d`` as ``1 / (1 + exp(d))``, so it lies in [0, 1] for any inputs. A customer with x = 0
    has had no chance to drop out (P = 1 exactly), so for customer arrays the formula is
    evaluated for the repeat buyers only (see :func:`_probability_alive_of_repeaters`).
    """
    return _probability_alive_of_repeaters(*as_float(r, alpha, a, b, x, t_x, T))


def _probability_alive_formula(r, alpha, a, b, x, t_x, T):
    return inverse_one_plus_exp(_log_odds_dropped(r, alpha, a, b, x, t_x, T))


def inverse_one_plus_exp(d) -> np.ndarray:
    """``1 / (1 + exp(d))`` computed in place (d = +inf -> 0, -inf -> 1): P(alive) from the
    log-odds of having dropped out; always in [0, 1]."""
    d = np.asarray(d, dtype=float)
    if not (d.flags.writeable and d.flags.owndata):
        d = d.copy()
    with np.errstate(over="ignore"):
        np.exp(d, out=d)
    d += 1.0
    return np.reciprocal(d, out=d)


def conditional_expected_purchases(r, alpha, a, b, x, t_x, T, t, p_alive=None):
    """E[X(T, T+t] | x, t_x, T], FHL 2005 eq. (10)::

        (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]
        / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))

    = P(alive) x (expected purchases of an active customer with posterior rates).
    ``p_alive``: :func:`probability_alive` of the same inputs when the caller has it.
    """
    r, alpha, a, b, x, t_x, T, t = as_float(r, alpha, a, b, x, t_x, T, t)
    if p_alive is None:
        p_alive = probability_alive(r, alpha, a, b, x, t_x, T)
    active = active_expected_by_history(r, alpha, a, b, x, T, t, shift=0.0)
    if active.shape == np.broadcast_shapes(active.shape, np.shape(p_alive)):
        active *= p_alive  # a fresh array of the result's shape: multiplied in place
        return active
    return p_alive * active


def conditional_discounted_purchases(r, alpha, a, b, x, t_x, T, ends, weights, p_alive=None):
    """``sum_k weights[k] E[X(T, T + ends[k]] | x, t_x, T]`` (eq. (10) at each horizon): with
    discount weights, the discounted expected purchases of a valuation. P(alive) is common to
    every horizon, so this is ``P(alive) x`` the weighted sum of the active customer's
    expectations, formed per distinct (x, T) (:func:`active_discounted_by_history`)."""
    r, alpha, a, b, x, t_x, T = as_float(r, alpha, a, b, x, t_x, T)
    if p_alive is None:
        p_alive = probability_alive(r, alpha, a, b, x, t_x, T)
    return p_alive * active_discounted_by_history(r, alpha, a, b, x, T, ends, weights, shift=0.0)


def expected_purchases_new_customer(r, alpha, a, b, t):
    """E[X(t)] for a customer just acquired, FHL 2005 eq. (9)::

    (a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))]
    """
    r, alpha, a, b, t = as_float(r, alpha, a, b, t)
    return active_expected_purchases(r, alpha, a, b, t)


def conditional_purchase_probability(r, alpha, a, b, x, t_x, T, t, k, p_alive=None):
    """P(X(T, T+t] = k | x, t_x, T): the posterior mixture of "active" (with
    :func:`active_purchase_probability` at ``Gamma(r+x, alpha+T) x Beta(a, b+x)``) and
    "inactive" (no purchase). Sums to one over k; its mean is eq. (10). (For x = 0, T = 0 it is
    the unconditional FHL 2005 eq. (8).)
    """
    r, alpha, a, b, x, t_x, T, t, k = as_float(r, alpha, a, b, x, t_x, T, t, k)
    if p_alive is None:
        p_alive = probability_alive(r, alpha, a, b, x, t_x, T)
    active = active_purchase_probability(r + x, alpha + T, a, b + x, t, k)
    return p_alive * active + (1.0 - p_alive) * (k == 0)


def sample_latent(r, alpha, a, b, x, t_x, T, rng: np.random.Generator):
    """One draw per element of the customer's posterior of (alive, lambda, p).

    Mixture (weights P(alive), 1 - P(alive)) of ``Gamma(r+x, alpha+T) x Beta(a, b+x)`` (active at
    T) and ``Gamma(r+x, alpha+t_x) x Beta(a+1, b+x-1)`` (inactive right after the last purchase),
    the normalised terms of FHL 2005 eq. (6). Returns ``(alive (bool), lam, p)`` arrays shaped
    like the broadcast of the inputs.
    """
    r, alpha, a, b, x, t_x, T = np.broadcast_arrays(*as_float(r, alpha, a, b, x, t_x, T))
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


def sample_future_purchases(r, alpha, a, b, x, t_x, T, t_grid, rng, p_alive=None):
    """Cumulative purchase counts at ``t_grid`` (after T), drawn from the customer's posterior:
    alive with probability P(alive) (else no purchases), then the active posterior
    ``lambda ~ Gamma(r+x, alpha+T)``, ``p ~ Beta(a, b+x)`` and a Poisson(lambda) process stopped
    after a Geometric(p) number of purchases (:func:`sample_bg_family_future`; the inactive
    state's rates are never needed). Shape ``broadcast(params, x) + (len(t_grid),)``, int64.
    """
    return cumulative_counts(
        *sample_future_purchase_periods(r, alpha, a, b, x, t_x, T, t_grid, rng, p_alive)
    )


def sample_future_purchase_periods(r, alpha, a, b, x, t_x, T, t_grid, rng, p_alive=None):
    """:func:`sample_future_purchases` in sparse form ``(shape, pairs, per_period)``: the
    broadcast shape, flat indices of the (draw, customer) paths with purchases and their
    per-period (not cumulative) counts; every other path buys nothing (see
    :func:`sample_bg_family_periods`)."""
    r, alpha, a, b, x, t_x, T = as_float(r, alpha, a, b, x, t_x, T)
    if p_alive is None:
        p_alive = probability_alive(r, alpha, a, b, x, t_x, T)
    return sample_bg_family_periods(p_alive, r + x, alpha + T, a, b + x, t_grid, rng)


def probability_alive_by_table(r, alpha, a, b, x, t_x, T, shift=0.0):
    """P(alive) of the BG/NBD family (``shift`` 0) or MBG/NBD (``shift`` 1) for parameters
    shared by all customers (shape ``(n_draws, 1)`` or scalars) and 1-d customer arrays, in
    one numba pass over draws x customers
    (:func:`~clvmodels.families.hypergeometric_walk.probability_alive_table`): the logarithms
    of ``alpha + T``, ``alpha + t_x`` and ``a / (b + x - 1 + shift)`` are tabulated per draw
    over the distinct values (a few hundred at daily resolution), so each customer costs one
    exponential. Equal to the formula to ~1e-14 (the log-ratio is a difference of tabulated
    logarithms instead of ``log1p``, as in :func:`log_tenure_ratio`'s daily tables)."""
    from clvmodels.families.hypergeometric_walk import probability_alive_table

    params = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (r, alpha, a, b)))
    n_draws = params[0].shape[0] if params[0].ndim else 1
    r_, alpha_, a_, b_ = (np.reshape(v, (n_draws, 1)) for v in params)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    ages, age_codes = np.unique(np.concatenate([T, t_x]), return_inverse=True)
    frequencies, x_codes = np.unique(x, return_inverse=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_rate = np.log(alpha_ + ages)
        log_odds_x = np.log(a_) - np.log(b_ + (frequencies - 1.0 + shift))
    out = np.empty((n_draws, len(x)))
    probability_alive_table(
        np.ascontiguousarray(r_[:, 0]), log_rate, log_odds_x, x, x_codes.astype(np.int64),
        age_codes[: len(T)].astype(np.int64), age_codes[len(T) :].astype(np.int64),
        float(shift), out,
    )  # fmt: skip
    return out.reshape(np.broadcast_shapes(params[0].shape, x.shape))


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
    if n >= 1024 and walk_supported(r, alpha, a, b, 1.0):
        return probability_alive_by_table(r, alpha, a, b, x, t_x, T, shift=0.0)
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
# the family
# --------------------------------------------------------------------------------------------
class BetaGeoNBDFamily(PurchaseFamily):
    """BG/NBD (Fader, Hardie & Lee 2005): the functions of this module on the family interface.

    ``functions`` is the module holding the family's math: MBG/NBD
    (:mod:`clvmodels.families.mbg_nbd`) has the same signatures and shares the fitting rows,
    warm start and preconditioner, so its family only names its own module.
    """

    name = "bgnbd"
    label = "BG/NBD"
    param_names = PARAM_NAMES
    latent_names = ("alive", "lambda", "p")
    functions: ClassVar[ModuleType] = sys.modules[__name__]
    #: per process, the parameters a covariate scales and the sign of its exponent, as CLVTools
    #: (bgnbd_staticcov): alpha_i = alpha exp(-purchase' z_i), a_i = a exp(dropout' z_i),
    #: b_i = b exp(dropout' z_i); MBG/NBD and the CNBD-k families inherit or repeat this
    covariate_links: ClassVar[dict] = {
        "purchase": (("alpha", -1),),
        "dropout": (("a", 1), ("b", 1)),
    }

    def make_rows(self, columns, counts) -> FitRows:
        """Distinct rows plus integer codes of recency and T for the likelihood's lookup tables
        (at daily resolution only a few hundred distinct values)."""
        aux = {"recency_code": row_codes(columns["recency"]), "T_code": row_codes(columns["T"])}
        return FitRows(columns, np.asarray(counts, dtype=float), aux)

    def negative_log_likelihood(self, log_params, rows: FitRows):
        return self.functions.negative_log_likelihood(
            log_params,
            rows["frequency"],
            rows["recency"],
            rows["T"],
            rows.counts,
            rows.aux["recency_code"],
            rows.aux["T_code"],
        )

    def initial_log_params(self, rows: FitRows) -> np.ndarray:
        """A rate-based guess, refined on a subset of rows for large data."""
        w = rows.counts / rows.counts.sum()
        rate = (weighted_sum(w, rows["frequency"]) + 0.5) / max(weighted_sum(w, rows["T"]), 1e-12)
        return warm_start(self, rows, np.log([1.0, 1.0 / rate, 1.0, 3.0]))

    def preconditioner(self, rows: FitRows, x0):
        return subset_preconditioner(self, rows, x0)

    def boundary_hint(self, params, names) -> str:
        if {"a", "b"} & set(names) and params["a"] / (params["a"] + params["b"]) < 1e-3:
            return (
                "Here the dropout probability p ~ Beta(a, b) is pushed towards 0: the data show "
                "(almost) no dropout, and a model without it (an NBD) or with time-based dropout "
                "(Pareto/NBD) may fit as well."
            )
        if {"a", "b"} <= set(names):
            return (
                "Here a and b grow together: the customers' dropout probabilities do not seem "
                f"to differ (all near a/(a+b) = {params['a'] / (params['a'] + params['b']):.3g})."
            )
        return ""

    def log_likelihood(self, params, data):
        f = self.functions
        return f.log_likelihood(*self.unpack(params), data["frequency"], data["recency"], data["T"])

    def log_likelihood_gradient(self, params, data):
        f = self.functions
        x, t_x, T = data["frequency"], data["recency"], data["T"]
        return f.log_likelihood_gradient(*self.unpack(params), x, t_x, T)

    def probability_alive(self, params, x, t_x, T):
        return self.functions.probability_alive(*self.unpack(params), x, t_x, T)

    def expected_purchases(self, params, x, t_x, T, t, p_alive=None):
        f = self.functions
        return f.conditional_expected_purchases(*self.unpack(params), x, t_x, T, t, p_alive)

    def discounted_expected_purchases(self, params, x, t_x, T, ends, weights, p_alive=None):
        """``sum_k weights[k] * expected_purchases(..., ends[k])`` without evaluating P(alive)
        or gathering to the customers once per horizon (the valuation engine uses it when a
        family has it)."""
        f = self.functions
        return f.conditional_discounted_purchases(
            *self.unpack(params), x, t_x, T, ends, weights, p_alive
        )

    def purchase_probability(self, params, x, t_x, T, t, k, p_alive=None):
        f = self.functions
        return f.conditional_purchase_probability(*self.unpack(params), x, t_x, T, t, k, p_alive)

    def expected_purchases_new_customer(self, params, t):
        return self.functions.expected_purchases_new_customer(*self.unpack(params), t)

    def sample_latent(self, params, x, t_x, T, rng):
        drawn = self.functions.sample_latent(*self.unpack(params), x, t_x, T, rng)
        return dict(zip(self.latent_names, drawn, strict=True))

    def sample_future_purchases(self, params, x, t_x, T, t_grid, rng, p_alive=None):
        f = self.functions
        return f.sample_future_purchases(*self.unpack(params), x, t_x, T, t_grid, rng, p_alive)

    def sample_future_purchase_periods(self, params, x, t_x, T, t_grid, rng, p_alive=None):
        return self.functions.sample_future_purchase_periods(
            *self.unpack(params), x, t_x, T, t_grid, rng, p_alive
        )

    def simulate(self, params, T, holdout, rng):
        """Customers drawn from the model's story (FHL 2005 section 3), without loops.

        ``lambda ~ Gamma(r, alpha)``, ``p ~ Beta(a, b)`` per customer; ``N ~ Poisson(lambda T)``
        events of the unstopped purchase process in (0, T] and ``J`` (:meth:`simulate_dropout`)
        the purchase after which the customer drops out, so ``x = min(N, J)``. Given N events,
        their times are N uniform order statistics on (0, T), so the x-th is at
        ``T Beta(x, N - x + 1)``. Alive at T when ``N < J``; by independent increments a holdout
        of length ``holdout`` adds ``min(Poisson(lambda holdout), J - N)`` purchases. Parameters
        broadcast against ``T`` (e.g. one row per parameter draw). Latent columns
        ``true_lambda``, ``true_p``, ``true_alive`` (and ``true_alive_holdout_end``).
        """
        r, alpha, a, b = (np.asarray(v, dtype=float) for v in self.unpack(params))
        T = np.asarray(T, dtype=float)
        shape = np.broadcast_shapes(r.shape, alpha.shape, a.shape, b.shape, T.shape)
        lam = rng.gamma(r, 1.0 / alpha, size=shape)
        p = rng.beta(a, b, size=shape)
        ages = np.broadcast_to(T, shape)
        n_events = rng.poisson(lam * ages)
        dropout_after = self.simulate_dropout(p, rng)
        x = np.minimum(n_events, dropout_after)
        alive = n_events < dropout_after
        recency = np.zeros(shape)
        pos = x > 0
        recency[pos] = ages[pos] * rng.beta(x[pos], n_events[pos] - x[pos] + 1)
        columns = {"frequency": x, "recency": recency, "T": ages}
        if holdout is not None:
            more = rng.poisson(lam * holdout)
            remaining = np.where(alive, dropout_after - n_events, 0)
            columns["frequency_holdout"] = np.minimum(more, remaining)
            columns["duration_holdout"] = np.full(shape, float(holdout))
            columns["true_alive_holdout_end"] = more < remaining
        columns.update({"true_lambda": lam, "true_p": p, "true_alive": alive})
        return columns

    def simulate_dropout(self, p, rng):
        """The number of repeat purchases after which each customer drops out: Geometric(p) on
        {1, 2, ...} (no dropout right after the first purchase, FHL 2005). A ``p`` below 1e-15
        never drops out (a count too large to be reached)."""
        tiny = p < 1e-15
        drawn = rng.geometric(np.where(tiny, 0.5, p))
        return np.where(tiny, np.iinfo(np.int64).max // 4, drawn).astype(np.int64)
