"""MBG/CNBD-k and BG/CNBD-k: the (modified) beta-geometric / condensed negative binomial models.

Platzer, M. and Reutterer, T. (2016), "Ticking Away the Moments: Timing Regularity Helps to
Better Predict Customer Activity", *Marketing Science* 35(5) ("PR 2016"). The models
extend BG/NBD (Fader, Hardie & Lee 2005, :mod:`clvmodels.families.bg_nbd`) and MBG/NBD
(Batislam, Denizel & Filiztekin 2007, :mod:`clvmodels.families.mbg_nbd`) with regular
inter-purchase times. This module holds the math of both, written once with ``shift`` = 0
(BG/CNBD-k: dropout possible after each repeat purchase) or 1 (MBG/CNBD-k: also right after
the first purchase, at time 0); :mod:`clvmodels.families.bg_cnbd` binds the BG variant.

Story. A customer's purchase rate is ``lambda ~ Gamma(r, alpha)``; while active, the times
between purchases are Erlang-k with rate ``lambda``, i.e. the purchases are every k-th event of
a Poisson process of rate ``lambda`` (the "sub-events"); ``k = 1`` is BG/NBD / MBG/NBD. After
each purchase the customer drops out with probability ``p ~ Beta(a, b)``. A customer with
``x`` repeat purchases, the last at ``t_x``, observed for ``T`` after the first purchase, with
``litt`` = sum of the logs of the x inter-purchase times, contributes (PR 2016; BTYDplus'
``xbgcnbd.LL``; ``delta`` = shift, ``s = r + k x``)::

    L = exp((k-1) litt - x log((k-1)!))
        * [ B(a, b+x+delta)/B(a, b) * A_alive
            + [x > 0 or delta] B(a+1, b+x-1+delta)/B(a, b) * A_dropped ]
    A_alive   = G(s) alpha^r / (G(r) (alpha+T)^s) * sum_{j=0}^{k-1} (s)_j u^j / j!,
                u = (T - t_x) / (alpha + T)
    A_dropped = G(s) alpha^r / (G(r) (alpha+t_x)^s)

Derivation: the x Erlang gaps have density ``lambda^(kx) e^(-lambda t_x) prod tau_i^(k-1) /
((k-1)!)^x``; "alive at T" multiplies by the Erlang survival of the running gap,
``sum_{j<k} e^(-lambda (T-t_x)) (lambda (T-t_x))^j / j!`` (fewer than k sub-events since the
last purchase), and by ``(1-p)^(x+delta)``; "dropped after the last purchase" by
``p (1-p)^(x-1+delta)``. Integrating lambda over its gamma and p over its beta gives the terms
above; term j of the sum is "alive with j sub-events since the last purchase".

Posterior of the latent state (the normalised terms), used by every prediction:

* alive at T with phase j (j sub-events since the last purchase), weight proportional to
  ``B(a, b+x+delta) (s)_j u^j / j!``: ``lambda ~ Gamma(s + j, alpha + T)``,
  ``p ~ Beta(a, b + x + delta)``;
* dropped right after the last purchase: ``lambda ~ Gamma(s, alpha + t_x)``,
  ``p ~ Beta(a + 1, b + x - 1 + delta)``.

Predictions are exact (no BG/NBD approximation as in BTYDplus'
``xbgcnbd.ConditionalExpectedTransactions``). Given alive in phase j, the future purchases in
``(T, T+t]`` are ``min(G, floor((j + N(t)) / k))`` with ``N(t)`` the future sub-events (negative
binomial with shape ``s + j`` and ``z = t / (alpha + T + t)``) and ``G ~ Geometric(p)`` the
purchases up to and including the dropout, so ``P(X >= m) = B(a, b'+m-1)/B(a, b') P(N >= mk-j)``
(``b' = b + x + delta``) and ``E[X] = sum_{m>=1} P(X >= m)``, summed until a rigorous bound on
the remainder is negligible (at most ``SERIES_MAX_TERMS`` terms: a horizon thousands of times
``alpha + T`` is truncated with a warning). The DERT (discounted expected residual
transactions) needs no long horizon: given lambda the discounted sum over purchases is a
Beta-Stieltjes transform (a continued fraction), integrated over lambda by the trapezoidal rule.

All functions are pure and vectorised: parameters broadcast against the customer arrays
(``x`` frequency, ``t_x`` recency, ``T`` age, ``litt``), e.g. parameters of shape
``(n_draws, 1)`` against customers of shape ``(n_customers,)``; ``k`` (the Erlang order) and
``shift`` are plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.special import betainc, betaincc, betaln, digamma, gammaln, logsumexp

from clvmodels.errors import NumericalError
from clvmodels.families.base import FitRows, PurchaseFamily
from clvmodels.families.sampling import (
    allocate_to_periods,
    check_grid,
    cumulative_counts,
    distinct_pairs,
    geometric_at_most,
    take_flat,
)
from clvmodels.optimize import compress_rows, subset_preconditioner, warm_start, weighted_sum
from clvmodels.validation import as_float, check_weights

PARAM_NAMES = ("r", "alpha", "a", "b")
#: the relative size of the remainder of the expectation series at which summation stops
SERIES_RTOL = 1e-13
#: the most terms (purchases) the expectation series may take per element (about 0.2 s of
#: work): reached only when the horizon is thousands of times ``alpha + T`` or the customer is
#: expected to make hundreds of thousands of purchases in it; NumericalError then (a truncated
#: sum would be a silently wrong lower bound)
SERIES_MAX_TERMS = 200_000
#: the most negative binomial masses evaluated at once by the series (bounds its memory)
_SERIES_CELLS = 2**21


# --------------------------------------------------------------------------------------------
# the phase of the running inter-purchase time
# --------------------------------------------------------------------------------------------
def phase_log_terms(s, u, k: int) -> np.ndarray:
    """``log((s)_j u^j / j!)`` for j = 0..k-1, stacked on a new first axis: the terms of the
    Erlang survival sum of ``A_alive`` (``s = r + k x``, ``u = (T - t_x)/(alpha + T)``).
    Accumulated as logs (no overflow for large s); ``u = 0`` gives ``-inf`` for j >= 1."""
    s, u = np.broadcast_arrays(*as_float(s, u))
    out = np.empty((k, *s.shape))
    out[0] = 0.0
    with np.errstate(divide="ignore"):
        log_u = np.log(u)
    for j in range(1, k):
        out[j] = out[j - 1] + np.log(s + (j - 1)) + log_u - np.log(j)
    return out


def _log_dropped_vs_alive_base(r, alpha, a, b, x, t_x, T, k, shift):
    """``log`` of the ratio of the "dropped" term to the alive term without its phase sum:
    ``log(a/(b+x-1+shift)) + (r+kx) log((alpha+T)/(alpha+t_x))`` (-inf for BG with x = 0)."""
    has_second = (x > 0) | (shift > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ab = np.where(
            has_second, np.log(a) - np.log(b + np.maximum(x - 1.0 + shift, 0.0)), -np.inf
        )
        ratio = np.log1p((T - t_x) / (alpha + t_x))
    return log_ab + (r + k * x) * ratio


def _phase_and_odds(r, alpha, a, b, x, t_x, T, k, shift):
    """``(log_terms, log_sum, log_odds)``: the phase terms, their log-sum and the log-odds of
    "dropped" against "alive"."""
    s = r + k * x
    u = np.clip((T - t_x) / (alpha + T), 0.0, 1.0)
    terms = phase_log_terms(s, u, k)
    log_sum = logsumexp(terms, axis=0) if k > 1 else terms[0]
    odds = _log_dropped_vs_alive_base(r, alpha, a, b, x, t_x, T, k, shift) - log_sum
    return terms, log_sum, odds


def _expit_neg(d):
    """``1 / (1 + exp(d))`` without overflow warnings."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(d))


# --------------------------------------------------------------------------------------------
# likelihood
# --------------------------------------------------------------------------------------------
def log_likelihood(r, alpha, a, b, x, t_x, T, litt, k: int = 1, shift: float = 1.0):
    """Per-customer log-likelihood of (M)BG/CNBD-k (PR 2016; see the module docstring)::

        (k-1) litt - x log((k-1)!) + log G(s) - log G(r) + r log alpha + log B(a, b')
        - log B(a, b) - s log(alpha+T) + log(S + [x>0 or shift] a/(b'-1) ((alpha+T)/(alpha+t_x))^s)

    with ``s = r + kx``, ``b' = b + x + shift`` and ``S`` the phase sum. ``k = 1`` is BG/NBD
    (``shift = 0``) or MBG/NBD (``shift = 1``) exactly.
    """
    r, alpha, a, b, x, t_x, T, litt = as_float(r, alpha, a, b, x, t_x, T, litt)
    s = r + k * x
    _, log_sum, odds = _phase_and_odds(r, alpha, a, b, x, t_x, T, k, shift)
    return (
        (k - 1) * litt
        - x * gammaln(k)
        + gammaln(s)
        - gammaln(r)
        + r * np.log(alpha)
        + betaln(a, b + x + shift)
        - betaln(a, b)
        - s * np.log(alpha + T)
        + log_sum
        + np.logaddexp(0.0, odds)
    )


def negative_log_likelihood(log_params, x, t_x, T, litt, counts, k: int = 1, shift: float = 1.0):
    """Total negative log-likelihood of compressed rows (``counts`` customers each, ``litt``
    their mean litt) and its analytic gradient with respect to ``log(r, alpha, a, b)``.

    With ``Z = S + E`` (phase sum plus "dropped" term), ``q_j = c_j / Z`` (posterior weight of
    "alive in phase j"), ``w = E / Z`` (of "dropped"), ``L = log((alpha+T)/(alpha+t_x))`` and
    ``d_j = psi(s+j) - psi(s) = sum_{i<j} 1/(s+i)``, the per-customer derivatives are::

        d/dr     = psi(s) - psi(r) + log alpha - log(alpha+T) + sum_j q_j d_j + w L
        d/dalpha = r/alpha - (s + sum_j q_j j)/(alpha+T) + w s (1/(alpha+T) - 1/(alpha+t_x))
        d/da     = psi(a+b) - psi(a+b') + w/a
        d/db     = psi(b') - psi(b) + psi(a+b) - psi(a+b') - w/(b'-1)

    ``litt`` enters only the value (linearly, ``(k-1) litt``), never the gradient.
    """
    r, alpha, a, b = np.exp(np.asarray(log_params, dtype=float))
    x, t_x, T, litt, counts = as_float(x, t_x, T, litt, counts)
    s = r + k * x
    b_post = b + x + shift
    terms, log_sum, odds = _phase_and_odds(r, alpha, a, b, x, t_x, T, k, shift)
    log_z = log_sum + np.logaddexp(0.0, odds)
    w = np.exp(odds - np.logaddexp(0.0, odds))  # P(dropped | history)
    log_aT = np.log(alpha + T)
    tenure = np.log1p((T - t_x) / (alpha + t_x))
    has_second = (x > 0) | (shift > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_b1 = np.where(has_second, 1.0 / (b + np.maximum(x - 1.0 + shift, 0.0)), 0.0)
    per_row = (
        (k - 1) * litt
        - x * gammaln(k)
        + gammaln(s)
        - gammaln(r)
        + r * np.log(alpha)
        + betaln(a, b_post)
        - betaln(a, b)
        - s * log_aT
        + log_z
    )
    # phase sums of the gradient: sum_j q_j d_j and sum_j q_j j
    q_d = np.zeros_like(s)
    q_j = np.zeros_like(s)
    d = np.zeros_like(s)
    for j in range(1, k):
        d = d + 1.0 / (s + (j - 1))
        q = np.exp(terms[j] - log_z)
        q_d += q * d
        q_j += q * j
    g_r = digamma(s) - digamma(r) + np.log(alpha) - log_aT + q_d + w * tenure
    g_alpha = (
        r / alpha - (s + q_j) / (alpha + T) + w * s * (1.0 / (alpha + T) - 1.0 / (alpha + t_x))
    )
    psi_ab, psi_abx = digamma(a + b), digamma(a + b_post)
    g_a = psi_ab - psi_abx + w / a
    g_b = digamma(b_post) - digamma(b) + psi_ab - psi_abx - w * inv_b1
    value = weighted_sum(counts, per_row)
    grad = np.array(
        [
            weighted_sum(counts, g_r) * r,
            weighted_sum(counts, g_alpha) * alpha,
            weighted_sum(counts, g_a) * a,
            weighted_sum(counts, g_b) * b,
        ]
    )
    return -value, -grad


# --------------------------------------------------------------------------------------------
# predictions
# --------------------------------------------------------------------------------------------
def probability_alive(r, alpha, a, b, x, t_x, T, k: int = 1, shift: float = 1.0):
    """P(active at T | x, t_x, T) = ``S / (S + E)``: 1 / (1 + [x>0 or shift] a/(b+x-1+shift)
    ((alpha+T)/(alpha+t_x))^(r+kx) / sum_j (r+kx)_j u^j / j!) (BTYDplus' ``xbgcnbd.PAlive``).
    For BG/CNBD-k a customer without repeat purchases is alive for sure."""
    r, alpha, a, b, x, t_x, T = as_float(r, alpha, a, b, x, t_x, T)
    return _expit_neg(_phase_and_odds(r, alpha, a, b, x, t_x, T, k, shift)[2])


def phase_weights(r, alpha, x, t_x, T, k: int = 1) -> np.ndarray:
    """P(phase = j | alive at T, history), j = 0..k-1 on a new first axis: the number of
    sub-events since the last purchase, proportional to ``(r+kx)_j u^j / j!``."""
    r, alpha, x, t_x, T = as_float(r, alpha, x, t_x, T)
    u = np.clip((T - t_x) / (alpha + T), 0.0, 1.0)
    terms = phase_log_terms(r + k * x, u, k)
    return np.exp(terms - logsumexp(terms, axis=0))


def _log_survival(a_, b_, m):
    """``log P(G >= m) = log B(a_, b_+m-1) - log B(a_, b_)`` for G ~ Geometric(p) on {1, ...},
    ``p ~ Beta(a_, b_)`` (betaln differences stay accurate for huge b_)."""
    return betaln(a_, b_ + (m - 1.0)) - betaln(a_, b_)


def active_expected_purchases(s, beta, a_, b_, t, k: int, j):
    """E[purchases in the next ``t`` | alive now, phase j]: sub-event rate
    ``lambda ~ Gamma(s, beta)`` (shape, rate; ``s`` already includes the phase: ``r + kx + j``),
    dropout probability ``p ~ Beta(a_, b_)`` after each purchase::

        sum_{m >= 1} B(a_, b_+m-1)/B(a_, b_) I_z(mk - j, s),   z = t / (beta + t)

    (``I`` the regularised incomplete beta function: ``P(N(t) >= n)`` for the negative
    binomial number of future sub-events). Summed in blocks of growing length until the
    remainder, bounded by ``last term * rho / (1 - rho)`` with ``rho = (z max(1, (n+s)/(n+1)))^k``
    (the ratio of consecutive tail probabilities beyond n), is below ``SERIES_RTOL`` of the sum.
    For k = 1, j = 0 it equals FHL 2005 eq. (10)'s active part
    (:func:`clvmodels.families.bg_nbd.active_expected_purchases`).
    """
    s, beta, a_, b_, t, j = np.broadcast_arrays(*as_float(s, beta, a_, b_, t, j))
    shape = s.shape
    s, beta, a_, b_, t, j = (v.ravel() for v in (s, beta, a_, b_, t, j))
    out = np.zeros(s.size)
    active = np.flatnonzero(t > 0)
    z = np.zeros(s.size)
    log_q = np.zeros(s.size)  # log(1 - z)
    log_z = np.zeros(s.size)
    z[active] = t[active] / (beta[active] + t[active])
    log_q[active] = np.log(beta[active]) - np.log(beta[active] + t[active])
    log_z[active] = np.log(t[active]) - np.log(beta[active] + t[active])
    lg_s = gammaln(s)
    m0, block = 1, 8
    while active.size:
        if m0 > SERIES_MAX_TERMS:
            raise NumericalError(
                f"the CNBD-k expected purchases of {active.size} customer(s) did not converge "
                f"within {SERIES_MAX_TERMS} purchases: they are expected to buy that often in "
                "the horizon, or the horizon is thousands of times alpha + T. Value a shorter "
                "horizon, or check the fit (summary(), converged_)."
            )
        # at most _SERIES_CELLS sub-events per block over all active elements (bounded memory)
        size = int(max(1, min(block, _SERIES_CELLS // (active.size * k))))
        s_a, z_a, j_a = s[active, None], z[active, None], j[active, None]
        m = m0 + np.arange(size, dtype=float)
        first = m0 * k - j_a
        if k <= 6:
            # P(N >= n) at n = mk - j for the block's m: the tail after the block (one
            # incomplete beta function) plus the negative binomial masses in it, summed from the
            # far end (positive terms: accurate even where the tail is tiny); for small k
            # cheaper than an incomplete beta function per term
            n = first + np.arange(size * k, dtype=float)
            log_pmf = gammaln(n + s_a) - gammaln(n + 1.0) - lg_s[active, None]
            log_pmf += s_a * log_q[active, None] + n * log_z[active, None]
            after = betainc(first + size * k, s_a, z_a)
            tail = after + np.cumsum(np.exp(log_pmf)[:, ::-1], axis=1)[:, ::-1][:, ::k]
        else:
            tail = betainc(first + k * (m - m0), s_a, z_a)
        terms = np.exp(_log_survival(a_[active, None], b_[active, None], m)) * tail
        out[active] += terms.sum(axis=1)
        last = terms[:, -1]
        n_last = (m0 + size - 1) * k - j_a[:, 0]
        rho1 = z_a[:, 0] * np.maximum(1.0, (n_last + s_a[:, 0]) / (n_last + 1.0))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rho = rho1**k
            bound = last * rho / (1.0 - rho)
        done = (last == 0.0) | ((rho1 < 1.0) & (bound <= SERIES_RTOL * out[active]))
        active = active[~done]
        m0 += size
        block = min(2 * block, 4096)
    return out.reshape(shape)


def active_purchase_probability(s, beta, a_, b_, t, k: int, j, n):
    """P(exactly ``n`` purchases in the next ``t`` | alive now, phase j), rates as in
    :func:`active_expected_purchases`. ``P(X >= m) = h_m P(N >= mk - j)`` with
    ``h_m = B(a_, b_+m-1)/B(a_, b_)``, so for n >= 1::

        P(X = n) = P(G = n) P(N >= nk - j) + h_{n+1} P(nk - j <= N < (n+1)k - j)

    (``P(G = n) = B(a_+1, b_+n-1)/B(a_, b_)``; the window probability is a sum of k negative
    binomial masses), and ``P(X = 0) = P(N < k - j)``.
    """
    s, beta, a_, b_, t, j, n = np.broadcast_arrays(*as_float(s, beta, a_, b_, t, j, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = t / (beta + t)
        log_q = np.log(beta) - np.log(beta + t)  # log(1 - z)
        log_z = np.log(t) - np.log(beta + t)
        nn = np.maximum(n, 1.0)
        first_sub = nn * k - j  # the sub-event of the n-th purchase
        window = np.zeros(s.shape)
        for i in range(k):
            idx = first_sub + i
            window += np.exp(
                gammaln(s + idx) - gammaln(s) - gammaln(idx + 1.0) + s * log_q + idx * log_z
            )
        base = betaln(a_, b_)
        exactly = np.exp(betaln(a_ + 1.0, b_ + nn - 1.0) - base) * betainc(first_sub, s, z)
        more = np.exp(betaln(a_, b_ + nn) - base) * window
        positive = exactly + more
        zero = betaincc(k - j, s, z)
    out = np.where(n == 0, zero, positive)
    out = np.where(t > 0, out, (n == 0).astype(float))
    return np.clip(out, 0.0, 1.0)


def _shared(*values) -> bool:
    return all(np.ndim(v) == 0 or np.shape(v)[-1] == 1 for v in values)


def _by_phase(fn, r, alpha, a, b, x, T, t, k, shift):
    """``fn(s + j, alpha + T, a, b + x + shift, t, j)`` for j = 0..k-1 (stacked on a new first
    axis), evaluated once per distinct (x, T) pair when the parameters and ``t`` are shared by
    all customers (the active expectation does not depend on recency)."""
    if _shared(r, alpha, a, b, t) and np.ndim(x) == 1 and np.ndim(T) == 1 and len(x) >= 64:
        xd, Td, codes = distinct_pairs(x, T)
        if len(xd) <= len(x) // 2:
            values = _by_phase(fn, r, alpha, a, b, xd, Td, t, k, shift)
            return np.take(values, codes, axis=-1)
    return np.stack(
        [fn(r + k * x + j, alpha + T, a, b + x + shift, t, j) for j in range(k)], axis=0
    )


def _alive_phase_mixture(active, r, alpha, a, b, x, t_x, T, u, k, shift, p_alive):
    """``P(alive) sum_j P(phase j | alive) active(r+kx+j, alpha+T, a, b+x+shift, u, k, j)``: the
    posterior mixture over the phases of a quantity that is 0 once the customer has dropped out
    (:func:`active_expected_purchases` at ``u = t``, :func:`active_discounted_purchases` at
    ``u = delta``)."""
    r, alpha, a, b, x, t_x, T, u = as_float(r, alpha, a, b, x, t_x, T, u)
    if p_alive is None:
        p_alive = probability_alive(r, alpha, a, b, x, t_x, T, k, shift)
    by_phase = _by_phase(
        lambda s_, beta, a_, b_, u_, j: active(s_, beta, a_, b_, u_, k, j),
        r, alpha, a, b, x, T, u, k, shift,
    )  # fmt: skip
    return p_alive * np.sum(phase_weights(r, alpha, x, t_x, T, k) * by_phase, axis=0)


def conditional_expected_purchases(
    r, alpha, a, b, x, t_x, T, t, k: int = 1, shift: float = 1.0, p_alive=None
):
    """E[X(T, T+t] | x, t_x, T] = P(alive) sum_j P(phase j | alive) E_j, with ``E_j`` the
    exact :func:`active_expected_purchases` at ``Gamma(r+kx+j, alpha+T) x Beta(a, b+x+shift)``.
    """
    return _alive_phase_mixture(
        active_expected_purchases, r, alpha, a, b, x, t_x, T, t, k, shift, p_alive
    )


def conditional_purchase_probability(
    r, alpha, a, b, x, t_x, T, t, n, k: int = 1, shift: float = 1.0, p_alive=None
):
    """P(X(T, T+t] = n | x, t_x, T): the posterior mixture of "alive in phase j"
    (:func:`active_purchase_probability`) and "dropped" (no purchase)."""
    r, alpha, a, b, x, t_x, T, t, n = as_float(r, alpha, a, b, x, t_x, T, t, n)
    if p_alive is None:
        p_alive = probability_alive(r, alpha, a, b, x, t_x, T, k, shift)
    weights = phase_weights(r, alpha, x, t_x, T, k)
    active = sum(
        weights[j]
        * active_purchase_probability(r + k * x + j, alpha + T, a, b + x + shift, t, k, j, n)
        for j in range(k)
    )
    return np.clip(p_alive * active + (1.0 - p_alive) * (n == 0), 0.0, 1.0)


#: the decay (in log units) of the DERT integrand at the ends of its trapezoidal grid
_DERT_LOG_RANGE = 46.0


def _dert_window(s, L, k: int, j):
    """``(v_lo, v_hi)``: the range of ``v = log(beta lambda)`` outside which the DERT integrand
    of an alive customer in phase j is below ``e^-46`` of its maximum. Its logarithm is at most
    ``psi(v) = s v - e^v + (k-j) min(0, v - L)`` (``L = log(beta delta)``: below it,
    ``rho^(k-j) <= (lambda/delta)^(k-j)``) plus slowly growing terms on the right, where the
    ``e^-e^v`` of the gamma density ends everything by ``x = s + 12 sqrt(s) + 52``."""
    c = k - j
    peak = np.where(np.log(s + c) < L, np.log(s + c), np.where(np.log(s) > L, np.log(s), L))

    def psi(v):
        return s * v - np.exp(v) + c * np.minimum(0.0, v - L)

    target = psi(peak) - _DERT_LOG_RANGE
    lo, hi = peak - 400.0, peak.copy()
    for _ in range(60):  # bisection on the increasing left flank of the concave psi
        mid = 0.5 * (lo + hi)
        below = psi(mid) < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    v_hi = np.log(s + 12.0 * np.sqrt(s + 1.0) + 52.0)
    return lo, v_hi


def beta_stieltjes(y, a_, b_):
    """``E[1 / (1 + y p)]`` for ``p ~ Beta(a_, b_)`` and ``y >= 0`` (= ``2F1(1, a_; a_+b_; -y)``).

    Gauss's continued fraction of that 2F1, which for ``z = -y`` is a Stieltjes fraction
    ``1/(1 + e_1 y/(1 + e_2 y/(1 + ...)))`` with positive coefficients
    ``e_(2i+1) = (a_+b_-1+i)(a_+i) / ((a_+b_-1+2i)(a_+b_+2i))`` (``e_1 = a_/(a_+b_)``),
    ``e_(2i+2) = (b_+i)(i+1) / ((a_+b_+2i)(a_+b_+2i+1))``: its successive convergents bracket
    the value, so stopping when two agree to 1e-13 bounds the error. It converges for every
    ``y >= 0`` and parameter (about ``20 sqrt(y)`` steps for large y), where scipy's ``hyp2f1``
    returns nan for large ``b_`` near the singular point and mpmath can fail to converge.
    """
    y, a_, b_ = np.broadcast_arrays(*as_float(y, a_, b_))
    shape = y.shape
    y, a_, b_ = (v.ravel() for v in (y, a_, b_))
    out = np.ones(y.size)
    act = np.flatnonzero(y > 0)
    y, a_, b_ = y[act], a_[act], b_[act]
    # convergents P/Q of 1 + d_1/(1 + d_2/(1 + ...)) (Wallis), rescaled to Q_n = 1 each step
    p_prev, p_cur = np.ones(act.size), np.ones(act.size)
    q_prev = np.zeros(act.size)
    value = np.ones(act.size)
    n = 1
    while act.size:
        i = (n - 1) // 2
        ab = a_ + b_
        if n == 1:
            e = a_ / ab
        elif n % 2:
            e = (ab - 1.0 + i) * (a_ + i) / ((ab - 1.0 + 2 * i) * (ab + 2 * i))
        else:
            e = (b_ + i) * (i + 1.0) / ((ab + 2 * i) * (ab + 2 * i + 1.0))
        d = e * y
        p_new = p_cur + d * p_prev
        q_new = 1.0 + d * q_prev
        p_prev, q_prev, p_cur = p_cur / q_new, 1.0 / q_new, p_new / q_new
        new_value = 1.0 / p_cur
        done = (np.abs(new_value - value) <= 1e-13 * new_value) | (n >= 1_000_000)
        out[act[done]] = new_value[done]
        keep = ~done
        act, y, a_, b_ = act[keep], y[keep], a_[keep], b_[keep]
        p_prev, q_prev, p_cur, value = p_prev[keep], q_prev[keep], p_cur[keep], new_value[keep]
        n += 1
    return out.reshape(shape)


def _dert_given_rate(lam, delta, a_, b_, k: int, j):
    """Discounted purchases of an alive customer in phase j with known sub-event rate
    ``lam``: with ``rho = lam / (lam + delta)`` (``rho^n = E[e^(-delta tau_n)]`` for the time
    ``tau_n`` of the n-th sub-event) and ``c = rho^k``::

        sum_m B(a_, b_+m-1)/B(a_, b_) rho^(mk-j) = rho^(k-j) E_p[1 / (1 - (1-p) c)]
            = rho^(k-j) / (1 - c) * E_p[1 / (1 + p c/(1-c))]

    (:func:`beta_stieltjes`; ``1 - c`` from ``expm1``, accurate when lam >> delta)."""
    lam, delta, a_, b_, j = np.broadcast_arrays(*as_float(lam, delta, a_, b_, j))
    log_rho = -np.log1p(delta / lam)
    one_minus_c = -np.expm1(k * log_rho)
    y = np.exp(k * log_rho) / one_minus_c
    return np.exp((k - j) * log_rho) / one_minus_c * beta_stieltjes(y, a_, b_)


def active_discounted_purchases(s, beta, a_, b_, delta, k: int, j):
    """DERT of an alive customer in phase j (``lambda ~ Gamma(s, beta)``, ``p ~ Beta(a_, b_)``):
    ``int_0^inf e^(-delta t) dE[X(t)] = E_lambda[rho^(k-j) 2F1(1, b_; a_+b_; rho^k)]``
    (:func:`_dert_given_rate`), the expectation over lambda computed by the trapezoidal rule
    in ``v = log(beta lambda)`` on the window of :func:`_dert_window`.

    The integrand ``exp(s v - e^v) rho^(k-j) 2F1(...) / G(s)`` is analytic in a strip around the
    real axis, where the trapezoidal rule converges geometrically; the step
    ``2 pi min(1.2, 1/sqrt(s)) / 48`` keeps the discretisation error below about 1e-12 relative
    (checked against adaptive quadrature of the exact expectation). Elements sharing
    ``(s, a_, b_, delta, j)`` and a band of ``log beta`` share one grid in ``log lambda``, so the
    inner sum is evaluated once per node and group, not per customer.
    """
    s, beta, a_, b_, delta, j = np.broadcast_arrays(*as_float(s, beta, a_, b_, delta, j))
    shape = s.shape
    s, beta, a_, b_, delta, j = (v.ravel() for v in (s, beta, a_, b_, delta, j))
    out = np.empty(s.size)
    if s.size == 0:
        return out.reshape(shape)
    # one grid per (s, a_, b_, delta, j) and band of log(beta) a few widths of the integrand
    # wide (the integrand's width in log(lambda) is about 1/sqrt(s))
    log_beta = np.log(beta)
    band = np.floor(log_beta * np.sqrt(s) / 8.0)
    keys = np.column_stack([s, a_, b_, delta, j, band])
    groups, group_of = np.unique(keys, axis=0, return_inverse=True)
    group_of = group_of.ravel()
    gs, ga, gb, gd, gj, _ = groups.T
    v_lo, v_hi = _dert_window(s, np.log(beta * delta), k, j)
    # per group: the union of its elements' windows, in log(lambda) = v - log(beta)
    lo = np.full(len(groups), np.inf)
    hi = np.full(len(groups), -np.inf)
    np.minimum.at(lo, group_of, v_lo - log_beta)
    np.maximum.at(hi, group_of, v_hi - log_beta)
    step = 2.0 * np.pi * np.minimum(1.2, 1.0 / np.sqrt(gs)) / 48.0
    n_nodes = np.ceil((hi - lo) / step).astype(np.int64) + 1
    # every group's nodes at once (one vectorised continued fraction for all of them)
    offsets = np.concatenate([[0], np.cumsum(n_nodes)])
    owner = np.repeat(np.arange(len(groups)), n_nodes)
    nodes = lo[owner] + step[owner] * (np.arange(offsets[-1]) - offsets[owner])
    values = _dert_given_rate(np.exp(nodes), gd[owner], ga[owner], gb[owner], k, gj[owner])
    order = np.argsort(group_of, kind="stable")
    bounds = np.searchsorted(group_of[order], np.arange(len(groups) + 1))
    for g in range(len(groups)):
        members = order[bounds[g] : bounds[g + 1]]
        g_nodes = nodes[offsets[g] : offsets[g + 1]]
        g_values = values[offsets[g] : offsets[g + 1]]
        for chunk in np.array_split(members, max(1, members.size * n_nodes[g] // 2_000_000)):
            v = g_nodes[None, :] + log_beta[chunk, None]
            log_w = gs[g] * v - np.exp(v) - gammaln(gs[g])
            out[chunk] = step[g] * (np.exp(log_w) @ g_values)
    return out.reshape(shape)


def discounted_expected_residual_transactions(
    r, alpha, a, b, x, t_x, T, delta, k: int = 1, shift: float = 1.0, p_alive=None
):
    """DERT = ``int_0^inf e^(-delta t) dE[X(T, T+t) | history]`` (Fader, Hardie & Lee 2005,
    "RFM and CLV", JMR 42(4), eq. 2): ``P(alive) sum_j P(phase j | alive) D_j`` with ``D_j``
    :func:`active_discounted_purchases` at ``Gamma(r+kx+j, alpha+T) x Beta(a, b+x+shift)``
    (exact given lambda; one accurate quadrature over lambda, no long-horizon series)."""
    return _alive_phase_mixture(
        active_discounted_purchases, r, alpha, a, b, x, t_x, T, delta, k, shift, p_alive
    )


def expected_purchases_new_customer(r, alpha, a, b, t, k: int = 1, shift: float = 1.0):
    """E[X(t)] for a customer just acquired: the conditional expectation at x = t_x = T = 0
    (phase 0; for MBG/CNBD-k alive with probability b/(a+b), then ``p ~ Beta(a, b+1)``)."""
    r, alpha, a, b, t = as_float(r, alpha, a, b, t)
    zero = np.zeros(np.shape(t))
    return conditional_expected_purchases(r, alpha, a, b, zero, zero, zero, t, k, shift)


# --------------------------------------------------------------------------------------------
# samplers
# --------------------------------------------------------------------------------------------
def _draw_phase(weights, rng) -> np.ndarray:
    """One draw of j per element from ``weights`` (j on the first axis)."""
    u = rng.random(weights.shape[1:])
    return (u[None] > np.cumsum(weights, axis=0)[:-1]).sum(axis=0).astype(float)


def sample_latent(r, alpha, a, b, x, t_x, T, rng, k: int = 1, shift: float = 1.0):
    """One draw per element of the posterior of (alive, lambda, p, phase): alive with
    P(alive); then phase j ~ P(phase | alive), ``lambda ~ Gamma(r+kx+j, alpha+T)``,
    ``p ~ Beta(a, b+x+shift)``; else ``lambda ~ Gamma(r+kx, alpha+t_x)``,
    ``p ~ Beta(a+1, b+x-1+shift)`` and phase 0 (the customer left right after a purchase)."""
    r, alpha, a, b, x, t_x, T = np.broadcast_arrays(*as_float(r, alpha, a, b, x, t_x, T))
    alive = rng.random(r.shape) < probability_alive(r, alpha, a, b, x, t_x, T, k, shift)
    phase = np.where(alive, _draw_phase(phase_weights(r, alpha, x, t_x, T, k), rng), 0.0)
    lam = rng.gamma(r + k * x + phase) / np.where(alive, alpha + T, alpha + t_x)
    tiny = np.finfo(float).smallest_subnormal
    b_dead = np.maximum(b + np.maximum(x - 1.0 + shift, 0.0), tiny)
    p = rng.beta(
        np.where(alive, a, a + 1.0), np.where(alive, np.maximum(b + x + shift, tiny), b_dead)
    )
    return alive, lam, p, phase.astype(np.int64)


def sample_future_purchase_periods(
    r, alpha, a, b, x, t_x, T, t_grid, rng, k: int = 1, shift: float = 1.0, p_alive=None
):
    """Future purchases per period of ``t_grid`` (after T) from the customer's posterior, in
    sparse form ``(shape, pairs, per_period)``: the broadcast shape, flat indices of the paths
    with purchases and their int64 per-period counts.

    Exact: alive ~ Bernoulli(P(alive)) (the dropped buy nothing, so only alive paths draw
    further); phase j ~ P(phase | alive); ``lambda ~ Gamma(r+kx+j, alpha+T)``; the sub-events
    ``N ~ Poisson(lambda t_max)`` placed in the periods as uniform times
    (:func:`~clvmodels.families.sampling.allocate_to_periods`); cumulative purchases
    ``floor((j + N(t)) / k)`` stopped after ``G ~ Geometric(p)``, ``p ~ Beta(a, b+x+shift)``.
    """
    grid = check_grid(t_grid)
    r, alpha, a, b, x, t_x, T = as_float(r, alpha, a, b, x, t_x, T)
    shape = np.broadcast_shapes(*(np.shape(v) for v in (r, alpha, a, b, x, t_x, T)))
    empty = (shape, np.zeros(0, dtype=np.intp), np.zeros((0, grid.size), dtype=np.int64))
    if grid.size == 0 or grid[-1] <= 0:
        return empty
    if p_alive is None:
        p_alive = probability_alive(r, alpha, a, b, x, t_x, T, k, shift)
    u = rng.random(shape)
    alive = np.flatnonzero(np.less(u, p_alive, out=np.empty(shape, dtype=bool)))
    if alive.size == 0:
        return empty
    r_, al_, a_, b_, x_, tx_, T_ = (take_flat(v, shape, alive) for v in (r, alpha, a, b, x, t_x, T))
    phase = _draw_phase(phase_weights(r_, al_, x_, tx_, T_, k), rng)
    lam = rng.gamma(r_ + k * x_ + phase) / (al_ + T_)
    t_max = float(grid[-1])
    n_sub = rng.poisson(lam * t_max)
    buyers = np.flatnonzero(phase + n_sub >= k)
    if buyers.size == 0:
        return empty
    per_sub = allocate_to_periods(n_sub[buyers], t_max, grid, rng)
    cum = (phase[buyers, None].astype(np.int64) + np.cumsum(per_sub, axis=1)) // k
    tiny = np.finfo(float).smallest_subnormal
    p = rng.beta(a_[buyers], np.maximum(b_[buyers] + x_[buyers] + shift, tiny))
    cap = geometric_at_most(p, cum[:, -1].astype(float), rng).astype(np.int64)
    cum = np.minimum(cum, cap[:, None])
    per_period = np.diff(cum, axis=1, prepend=0)
    return shape, alive[buyers], per_period


def simulate_customers(r, alpha, a, b, T, holdout, rng, k: int = 1, shift: float = 1.0) -> dict:
    """Customers drawn from the model's story, without loops over customers or purchases.

    ``lambda ~ Gamma(r, alpha)``, ``p ~ Beta(a, b)``; ``J`` the purchases after which the
    customer drops out (Geometric(p) on {1, 2, ...}, on {0, 1, ...} for MBG: dropout right after
    the first purchase too); ``N ~ Poisson(lambda T)`` sub-events in (0, T], so
    ``x = min(floor(N/k), J)`` repeat purchases (the purchases are the sub-events k, 2k, ...).
    Given N, the sub-event times are uniform order statistics on (0, T), i.e. ``T`` times the
    normalised cumulative sums of N + 1 unit exponential spacings: the x purchase gaps are
    ``T G_i / (sum_i G_i + R)`` with ``G_i ~ Gamma(k)`` (k spacings each) and
    ``R ~ Gamma(N + 1 - kx)`` (the rest), which gives recency and ``litt`` exactly. Alive at T
    when ``floor(N/k) < J``, then in phase ``N - kx``; a holdout of length ``holdout`` adds
    ``min(floor((phase + Poisson(lambda holdout)) / k), J - x)`` purchases.
    """
    r, alpha, a, b, T = as_float(r, alpha, a, b, T)
    shape = np.broadcast_shapes(r.shape, alpha.shape, a.shape, b.shape, T.shape)
    ages = np.broadcast_to(T, shape)
    lam = rng.gamma(r, 1.0 / alpha, size=shape)
    p = rng.beta(a, b, size=shape)
    tiny = p < 1e-15
    never = np.iinfo(np.int64).max // 4
    dropout_after = np.where(tiny, never, rng.geometric(np.where(tiny, 0.5, p)) - int(shift))
    n_sub = rng.poisson(lam * ages)
    candidates = n_sub // k
    x = np.minimum(candidates, dropout_after)
    alive = candidates < dropout_after
    # purchase gaps from the spacings of the sub-event times
    flat_x = x.ravel()
    owner = np.repeat(np.arange(flat_x.size), flat_x)
    spacing = rng.gamma(float(k), size=owner.size)
    rest = rng.gamma(np.maximum(n_sub.ravel() + 1 - k * flat_x, 1).astype(float))
    used = np.bincount(owner, weights=spacing, minlength=flat_x.size)
    total = used + rest
    log_spacing = np.bincount(owner, weights=np.log(spacing), minlength=flat_x.size)
    flat_T = ages.ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        recency = np.where(flat_x > 0, flat_T * used / total, 0.0)
        litt = np.where(flat_x > 0, log_spacing + flat_x * (np.log(flat_T) - np.log(total)), 0.0)
    columns = {
        "frequency": x,
        "recency": recency.reshape(shape),
        "T": np.array(ages, dtype=float),
        "litt": litt.reshape(shape),
    }
    if holdout is not None:
        phase = np.where(alive, n_sub - k * x, 0)
        more = (phase + rng.poisson(lam * holdout)) // k
        remaining = np.where(alive, dropout_after - x, 0)
        columns["frequency_holdout"] = np.minimum(more, remaining)
        columns["duration_holdout"] = np.full(shape, float(holdout))
        columns["true_alive_holdout_end"] = alive & (more < remaining)
    columns.update({"true_lambda": lam, "true_p": p, "true_alive": alive})
    return columns


# --------------------------------------------------------------------------------------------
# the families
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CNBDFamily(PurchaseFamily):
    """The (M)BG/CNBD-k family on the interface: the functions of this module with the family's
    Erlang order ``k`` and ``shift`` (0: BG/CNBD-k, 1: MBG/CNBD-k).

    ``k`` is a fixed setting (``settings_grid`` lists the candidates 1..12 that the estimator
    searches when it is None, keeping the best likelihood, as BTYDplus does). The likelihood
    reads ``litt`` (sum of the logs of the inter-purchase times), which
    :func:`clvmodels.rfm_summary` computes.
    """

    k: int = 1

    dropout_at_zero: ClassVar[bool]
    #: covariates as for BG/NBD (CLVTools' bgnbd_staticcov): alpha_i = alpha exp(-purchase' z_i),
    #: a_i = a exp(dropout' z_i), b_i = b exp(dropout' z_i)
    covariate_links: ClassVar[dict] = {
        "purchase": (("alpha", -1),),
        "dropout": (("a", 1), ("b", 1)),
    }
    param_names = PARAM_NAMES
    fit_columns = ("frequency", "recency", "T", "litt")
    latent_names = ("alive", "lambda", "p", "phase")
    settings_grid = {"k": tuple(range(1, 13))}  # noqa: RUF012

    def __post_init__(self):
        k = self.k
        if isinstance(k, bool) or not float(k).is_integer() or k < 1:
            raise ValueError(f"k (the Erlang order) must be a whole number >= 1, got {k!r}")
        object.__setattr__(self, "k", int(k))

    @property
    def shift(self) -> float:
        return 1.0 if self.dropout_at_zero else 0.0

    # ---- fitting -----------------------------------------------------------------------------
    def fit_rows(self, summary: pd.DataFrame, weights=None) -> FitRows:
        """Distinct (frequency, recency, T) rows with their counts and mean ``litt``: litt
        enters the log-likelihood linearly, ``(k-1) litt``, so only its total per row
        matters (compressing on it too would keep almost every customer apart)."""
        w = check_weights(weights, len(summary))
        x, t_x, T, litt = (summary[c].to_numpy(dtype=float) for c in self.fit_columns)
        *unique, counts = compress_rows(x, t_x, T, weights=w)
        *_, litt_sum = compress_rows(x, t_x, T, weights=litt if w is None else w * litt)
        keep = counts > 0
        columns = dict(zip(("frequency", "recency", "T"), (u[keep] for u in unique), strict=True))
        columns["litt"] = litt_sum[keep] / counts[keep]
        return self.make_rows(columns, counts[keep])

    def negative_log_likelihood(self, log_params, rows: FitRows):
        return negative_log_likelihood(
            log_params,
            rows["frequency"],
            rows["recency"],
            rows["T"],
            rows["litt"],
            rows.counts,
            self.k,
            self.shift,
        )

    def initial_log_params(self, rows: FitRows) -> np.ndarray:
        """A rate-based guess (the sub-event rate is k times the purchase rate), refined on a
        subset of rows for large data."""
        w = rows.counts / rows.counts.sum()
        rate = (weighted_sum(w, rows["frequency"]) + 0.5) / max(weighted_sum(w, rows["T"]), 1e-12)
        return warm_start(self, rows, np.log([1.0, 1.0 / (self.k * rate), 1.0, 3.0]))

    def preconditioner(self, rows: FitRows, x0):
        return subset_preconditioner(self, rows, x0)

    def log_likelihood(self, params, data):
        return log_likelihood(
            *self.unpack(params),
            data["frequency"],
            data["recency"],
            data["T"],
            data["litt"],
            self.k,
            self.shift,
        )

    # ---- predictions -------------------------------------------------------------------------
    def probability_alive(self, params, x, t_x, T):
        return probability_alive(*self.unpack(params), x, t_x, T, self.k, self.shift)

    def expected_purchases(self, params, x, t_x, T, t, p_alive=None):
        return conditional_expected_purchases(
            *self.unpack(params), x, t_x, T, t, self.k, self.shift, p_alive
        )

    def purchase_probability(self, params, x, t_x, T, t, k, p_alive=None):
        # ``k`` is the interface's number of purchases; the Erlang order is ``self.k``
        return conditional_purchase_probability(
            *self.unpack(params), x, t_x, T, t, k, self.k, self.shift, p_alive
        )

    def expected_purchases_new_customer(self, params, t):
        return expected_purchases_new_customer(*self.unpack(params), t, self.k, self.shift)

    def sample_latent(self, params, x, t_x, T, rng):
        drawn = sample_latent(*self.unpack(params), x, t_x, T, rng, self.k, self.shift)
        return dict(zip(self.latent_names, drawn, strict=True))

    def sample_future_purchase_periods(self, params, x, t_x, T, t_grid, rng, p_alive=None):
        return sample_future_purchase_periods(
            *self.unpack(params), x, t_x, T, t_grid, rng, self.k, self.shift, p_alive
        )

    def sample_future_purchases(self, params, x, t_x, T, t_grid, rng, p_alive=None):
        return cumulative_counts(
            *self.sample_future_purchase_periods(params, x, t_x, T, t_grid, rng, p_alive)
        )

    def discounted_expected_residual_transactions(self, params, x, t_x, T, delta, p_alive=None):
        return discounted_expected_residual_transactions(
            *self.unpack(params), x, t_x, T, delta, self.k, self.shift, p_alive
        )

    def simulate(self, params, T, holdout, rng):
        """Customers drawn from the model (:func:`simulate_customers`); parameters broadcast
        against ``T``. Latent columns ``true_lambda`` (the sub-event rate), ``true_p``,
        ``true_alive`` (and ``true_alive_holdout_end``)."""
        return simulate_customers(*self.unpack(params), T, holdout, rng, self.k, self.shift)


@dataclass(frozen=True)
class ModifiedBetaGeoCNBDFamily(CNBDFamily):
    """MBG/CNBD-k (Platzer & Reutterer 2016): MBG/NBD with Erlang-k inter-purchase times; a
    customer may drop out after every purchase, the first one included."""

    name = "mbgcnbd"
    label = "MBG/CNBD-k"
    dropout_at_zero = True
