"""BG/BB: the beta-geometric / beta-Bernoulli model of discrete-time non-contractual purchasing.

Fader, P. S., Hardie, B. G. S. and Shang, J. (2010), "Customer-Base Analysis in a
Discrete-Time Noncontractual Setting", *Marketing Science* 29(6), 1086-1108 (below "FHS 2010").

Story. Transactions can only happen at discrete, equally spaced *opportunities* (a yearly
fund-raising drive, an annual conference, a monthly draw). The opportunity of the first purchase
is time 0 and is not counted; the customer is then observed for ``n`` more opportunities
(``n_periods``). While alive, a customer transacts at each opportunity with probability
``p ~ Beta(alpha, beta)``; at the beginning of each opportunity an alive customer becomes
inactive ("dies") with probability ``theta ~ Beta(gamma, delta)``, for good. A customer's history
is summarised by ``x`` (``frequency``: opportunities with a transaction among 1..n), ``t_x``
(``recency``: the last of them, 0 when x = 0) and ``n``; all three are whole numbers with
``0 <= x <= t_x <= n`` and ``t_x = 0`` exactly when ``x = 0``.

Likelihood (FHS 2010 eq. (5)). Either the customer is still alive at n, or they were last alive
at opportunity ``t_x + i`` (``i = 0..n-t_x-1``) and died at the beginning of the next::

    L = B(alpha+x, beta+n-x)/B(alpha, beta) * B(gamma, delta+n)/B(gamma, delta)
        + sum_{i=0}^{n-t_x-1} B(alpha+x, beta+t_x-x+i)/B(alpha, beta)
                              * B(gamma+1, delta+t_x+i)/B(gamma, delta)

The terms, normalised, are the posterior probabilities of the death time, and given the death
time the posterior of (p, theta) is a product of Betas: ``p ~ Beta(alpha+x, beta+n-x)``,
``theta ~ Beta(gamma, delta+n)`` when alive at n; ``p ~ Beta(alpha+x, beta+t_x-x+i)``,
``theta ~ Beta(gamma+1, delta+t_x+i)`` when last alive at ``t_x+i``. The first term over L is
P(alive at n) (eq. (11)).

Predictions, all as P(alive) times the expectations of an alive customer with the "alive"
posterior (``a' = alpha+x``, ``b' = beta+n-x``, ``d = delta+n``):

* the expected number of transactions in the next ``N`` opportunities n+1..n+N (eq. (13)),
  ``P(alive) a'/(a'+b') sum_{s=1}^N B(gamma, d+s)/B(gamma, d)`` with the closed form of the sum
  ``d/(gamma-1) [1 - G(d+N+1) G(gamma+d) / (G(gamma+d+N) G(d+1))]``;
* with ``x = 0``, ``n = 0`` this is the expected number of transactions of a new customer in
  their first N opportunities (eq. (8));
* the distribution of that count, P(X(n, n+N) = k) (FHS 2010 appendix), by summing over the
  number ``L`` of further opportunities the customer stays alive (beta-binomial given L);
* DERT, the discounted expected residual transactions (eq. (14)), with the discount factor
  ``z = 1/(1+d_rate)`` per opportunity: ``P(alive) a'/(a'+b') z d/(gamma+d)
  2F1(1, d+1; gamma+d+1; z)``.

Horizons. The model lives on whole opportunities: a horizon ``t`` (in the summary's time unit,
one opportunity per unit) counts the opportunities ``n+1 .. n+floor(t)``; a fractional part adds
nothing. The discount rate of DERT is continuous per unit, so ``z = exp(-rate)``.

All functions are pure and vectorised: parameters broadcast against the customer arrays
(parameter arrays of shape ``(n_draws, 1)`` or ``(n_draws, n_customers)`` against customer
arrays of shape ``(n_customers,)``). Sums over the death time run over ``n - t_x`` terms; they
are accumulated relative to their first (largest) term by the ratio of successive terms, so
neither overflow nor underflow can occur, and every returned value is checked against the
model's bounds (:class:`~clvmodels.errors.NumericalError` otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.special import betaln, digamma, gammaln, hyp2f1

from clvmodels.errors import InputError, NumericalError, check_columns, describe_rows
from clvmodels.families.base import FitRows, PurchaseFamily
from clvmodels.families.sampling import check_grid, cumulative_counts, geometric_at_most, take_flat
from clvmodels.validation import as_float

PARAM_NAMES = ("alpha", "beta", "gamma", "delta")
#: the summary columns of a BG/BB customer
BGBB_COLUMNS = ("frequency", "recency", "n_periods")
#: whole opportunities in a horizon: floor(t) with this slack, so that 2.9999999999 is 3
HORIZON_SLACK = 1e-9
#: relative agreement required between two routes to a value
AGREEMENT = 1e-8
#: the longest direct sums (terms) used to confirm or replace a closed form
MAX_DIRECT_TERMS = 1_000_000
#: the most terms of DERT's series summed (one vectorised step per term); beyond, an integral
MAX_SERIES_TERMS = 20_000


def opportunities(t) -> np.ndarray:
    """The whole number of opportunities n+1..n+floor(t) covered by a horizon ``t``."""
    t = np.asarray(t, dtype=float)
    if np.any(~np.isfinite(t)) or np.any(t < 0):
        raise InputError(f"BG/BB horizons and ages must be finite non-negative numbers, got {t!r}")
    return np.floor(t + HORIZON_SLACK)


def per_distinct_customer(fn, params, customers, shared=()):
    """``fn(*params, *customers)``, evaluated once per distinct customer row and gathered back
    when the parameters and the ``shared`` values ``fn`` uses (horizon, k, rate) are the same
    for all customers (scalars or a last axis of length 1) and the customers are 1-d arrays of
    whole numbers: a BG/BB summary of a million customers has a few hundred distinct
    (x, t_x, n) rows. Otherwise evaluated directly."""
    params = as_float(*params)
    customers = as_float(*customers)
    size = customers[0].size
    direct = (
        size < 1024
        or any(c.shape != (size,) for c in customers)
        or any(np.ndim(p) and np.shape(p)[-1] != 1 for p in (*params, *shared))
    )
    if direct:
        return fn(*params, *customers)
    top = max(float(c.max()) for c in customers)
    whole = all(np.array_equal(c, np.floor(c)) and c.min() >= 0 for c in customers)
    if not (whole and top < 2**20):
        return fn(*params, *customers)
    width = int(top) + 1
    key = np.zeros(size, dtype=np.int64)
    for c in customers:
        key = key * width + c.astype(np.int64)
    codes, unique = pd.factorize(key)
    if len(unique) > size // 2:
        return fn(*params, *customers)
    decoded = []
    rest = np.asarray(unique, dtype=np.int64)
    for _ in customers:
        decoded.append((rest % width).astype(float))
        rest = rest // width
    values = fn(*params, *decoded[::-1])
    return np.take(np.asarray(values), codes, axis=-1)


# --------------------------------------------------------------------------------------------
# the likelihood and the posterior of the death time
# --------------------------------------------------------------------------------------------
def log_alive_term(alpha, beta, gamma, delta, x, n):
    """log of the first term of FHS 2010 eq. (5): alive at opportunity n."""
    return (
        betaln(alpha + x, beta + n - x)
        - betaln(alpha, beta)
        + betaln(gamma, delta + n)
        - betaln(gamma, delta)
    )


def _flat(shape, *arrays):
    return [np.ascontiguousarray(np.broadcast_to(v, shape)).ravel() for v in arrays]


def dead_terms(alpha, beta, gamma, delta, x, t_x, n, with_digammas: bool = False):
    """The second part of FHS 2010 eq. (5), ``sum_{i=0}^{n-t_x-1} term_i``, as
    ``(log_first, relative_sum, digamma_means)``: the log of term 0 (the largest: successive
    terms shrink by ``(beta+t_x-x+i)/(alpha+beta+t_x+i) * (delta+t_x+i)/(gamma+delta+1+t_x+i)``),
    the sum relative to it (0 when n = t_x) and, with ``with_digammas``, the term-weighted means
    of ``digamma`` at ``beta+t_x-x+i``, ``alpha+beta+t_x+i``, ``delta+t_x+i`` and
    ``gamma+delta+1+t_x+i`` (the derivatives of the log-terms; digamma advanced by
    ``psi(z+1) = psi(z) + 1/z``). Arrays of the broadcast shape.

    The work is the sum of the customers' ``n - t_x``: elements are sorted by that number and
    each step touches only those that still have terms.
    """
    alpha, beta, gamma, delta, x, t_x, n = as_float(alpha, beta, gamma, delta, x, t_x, n)
    shape = np.broadcast_shapes(*(v.shape for v in (alpha, beta, gamma, delta, x, t_x, n)))
    al, be, ga, de, xs, tx, ns = _flat(shape, alpha, beta, gamma, delta, x, t_x, n)
    gap = np.rint(ns - tx).astype(np.int64)
    order = np.argsort(-gap, kind="stable")
    gap_sorted = gap[order]
    al, be, ga, de, xs, tx = (v[order] for v in (al, be, ga, de, xs, tx))
    b_i = be + tx - xs
    ab_i = al + be + tx
    d_i = de + tx
    gd_i = ga + de + 1.0 + tx
    log_first = betaln(al + xs, b_i) - betaln(al, be) + betaln(ga + 1.0, d_i) - betaln(ga, de)
    total = (gap_sorted > 0).astype(float)
    rel = np.ones_like(total)
    psis = [digamma(v) for v in (b_i, ab_i, d_i, gd_i)] if with_digammas else []
    sums = [total * p for p in psis]
    top = int(gap_sorted[0]) if gap_sorted.size else 0
    # number of elements with more than i terms, for i = 0..top-1 (gap_sorted is decreasing)
    active = np.searchsorted(-gap_sorted, -np.arange(top + 1), side="left")
    for i in range(1, top):
        k = int(active[i])
        if k == 0:
            break
        step = b_i[:k] / ab_i[:k] * (d_i[:k] / gd_i[:k])
        rel[:k] *= step
        total[:k] += rel[:k]
        if with_digammas:
            for psi, acc, z in zip(psis, sums, (b_i, ab_i, d_i, gd_i), strict=True):
                psi[:k] += 1.0 / z[:k]
                acc[:k] += rel[:k] * psi[:k]
        for z in (b_i, ab_i, d_i, gd_i):
            z[:k] += 1.0
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    out_first = log_first[inverse].reshape(shape)
    out_total = total[inverse].reshape(shape)
    if not with_digammas:
        return out_first, out_total, None
    with np.errstate(invalid="ignore", divide="ignore"):
        means = [np.where(total > 0, acc / total, 0.0)[inverse].reshape(shape) for acc in sums]
    return out_first, out_total, means


def _log_likelihood_parts(alpha, beta, gamma, delta, x, t_x, n, with_gradient: bool):
    """``(ll, log_alive, gradient)``: the log of FHS 2010 eq. (5), the log of its "alive"
    term and, with ``with_gradient``, the derivatives of ll with respect to the natural
    parameters (a list of four arrays)."""
    alpha, beta, gamma, delta, x, t_x, n = as_float(alpha, beta, gamma, delta, x, t_x, n)
    log_alive = log_alive_term(alpha, beta, gamma, delta, x, n)
    log_first, relative, psi = dead_terms(
        alpha, beta, gamma, delta, x, t_x, n, with_digammas=with_gradient
    )
    with np.errstate(divide="ignore"):
        log_dead = np.where(relative > 0, log_first + np.log(relative), -np.inf)
    ll = np.logaddexp(log_alive, log_dead)
    if not with_gradient:
        return ll, log_alive, None
    w_alive = np.exp(log_alive - ll)
    w_dead = np.exp(log_dead - ll)
    psi_b, psi_ab, psi_d, psi_gd = psi
    base_a = digamma(alpha + x) - digamma(alpha) + digamma(alpha + beta)
    base_b = -digamma(beta) + digamma(alpha + beta)
    base_gd = digamma(gamma + delta)
    psi_abn = digamma(alpha + beta + n)
    psi_gdn = digamma(gamma + delta + n)
    g_alpha = base_a - w_alive * psi_abn - w_dead * psi_ab
    g_beta = base_b + w_alive * (digamma(beta + n - x) - psi_abn) + w_dead * (psi_b - psi_ab)
    g_gamma = base_gd - w_alive * psi_gdn + w_dead * (1.0 / gamma - psi_gd)
    g_delta = (
        base_gd
        - digamma(delta)
        + w_alive * (digamma(delta + n) - psi_gdn)
        + w_dead * (psi_d - psi_gd)
    )
    return ll, log_alive, [g_alpha, g_beta, g_gamma, g_delta]


def log_likelihood(alpha, beta, gamma, delta, x, t_x, n):
    """Per-customer log-likelihood, the log of FHS 2010 eq. (5)."""
    return _log_likelihood_parts(alpha, beta, gamma, delta, x, t_x, n, with_gradient=False)[0]


def log_likelihood_gradient(alpha, beta, gamma, delta, x, t_x, n):
    """``(ll, grad)``: :func:`log_likelihood` and its derivatives with respect to the
    log-parameters, ``grad`` of shape ``broadcast + (4,)``."""
    ll, _, grad = _log_likelihood_parts(alpha, beta, gamma, delta, x, t_x, n, with_gradient=True)
    params = (alpha, beta, gamma, delta)
    return ll, np.stack([g * np.asarray(p, float) for g, p in zip(grad, params, strict=True)], -1)


def negative_log_likelihood(log_params, x, t_x, n, counts):
    """``(value, gradient)``: the count-weighted negative log-likelihood of the distinct rows
    and its gradient with respect to the log-parameters."""
    params = np.exp(np.asarray(log_params, dtype=float))
    if not np.all(np.isfinite(params)) or np.any(params <= 0):
        return np.inf, np.full(4, np.nan)
    ll, grad = log_likelihood_gradient(*params, x, t_x, n)
    value = -float(np.dot(counts, ll))
    gradient = -(counts @ grad)
    if not np.isfinite(value):
        return np.inf, np.full(4, np.nan)
    return value, gradient


def probability_alive(alpha, beta, gamma, delta, x, t_x, n, future=0.0):
    """P(alive at opportunity n + ``future`` | x, t_x, n): FHS 2010 eq. (11) (``future`` = 0)
    and, for a later opportunity, the "alive" term with ``B(gamma, delta+n+future)`` in place of
    ``B(gamma, delta+n)`` over the likelihood (FHS 2010 appendix, lifetimes' eq. (A10))."""
    future = np.asarray(future, dtype=float)

    def formula(alpha, beta, gamma, delta, x, t_x, n):
        ll, log_alive, _ = _log_likelihood_parts(alpha, beta, gamma, delta, x, t_x, n, False)
        shift = betaln(gamma, delta + n + future) - betaln(gamma, delta + n)
        return np.exp(log_alive + shift - ll)

    value = per_distinct_customer(formula, (alpha, beta, gamma, delta), (x, t_x, n), (future,))
    return _check_range(value, 0.0, 1.0, "P(alive)")


def _check_range(value, low, high, what: str):
    """``value`` clipped to the model's bounds [low, high] after a rounding slack of 1e-12;
    NumericalError for anything further out (or NaN)."""
    value = np.asarray(value, dtype=float)
    tol = 1e-12 * np.maximum(1.0, np.abs(high))
    bad = ~((value >= low - tol) & (value <= high + tol))
    if np.any(bad):
        raise NumericalError(
            f"BG/BB {what} could not be computed within the model's bounds for "
            f"{int(np.count_nonzero(bad))} values (e.g. {np.ravel(value[bad])[:3]})"
        )
    return np.clip(value, low, high)


# --------------------------------------------------------------------------------------------
# expected transactions, their distribution, DERT
# --------------------------------------------------------------------------------------------
def _survival_sum_direct(gamma, d, horizon):
    """``sum_{s=1}^N B(gamma, d+s)/B(gamma, d)`` by summing the terms (ratio
    ``(d+s)/(gamma+d+s)``), for 1-d arrays; the independent route to the closed form."""
    out = np.empty(len(gamma))
    for j, (g, dd, big_n) in enumerate(zip(gamma, d, horizon, strict=True)):
        s = np.arange(int(big_n), dtype=float)
        out[j] = np.sum(np.cumprod((dd + s) / (g + dd + s)))
    return out


def survival_sum(gamma, d, horizon):
    """``sum_{s=1}^N B(gamma, d+s)/B(gamma, d)``: the expected number of the next ``N``
    opportunities at which a customer alive now, with ``theta ~ Beta(gamma, d)``, is still
    alive. Closed form ``d/(gamma-1) (1 - exp(y))``, ``y = lgamma(d+N+1) - lgamma(d+1) -
    lgamma(gamma+d+N) + lgamma(gamma+d)`` (the telescoping sum behind FHS 2010 eqs. (8), (13)),
    kept where its rounding error (that of y over |y|) is below 1e-10; elsewhere (gamma near 1,
    where it is 0/0) the terms are summed directly (at most :data:`MAX_DIRECT_TERMS` of them,
    else NumericalError)."""
    gamma, d, horizon = np.broadcast_arrays(*as_float(gamma, d, horizon))
    c = gamma + d
    terms = (gammaln(d + horizon + 1.0), gammaln(d + 1.0), gammaln(c + horizon), gammaln(c))
    y = terms[0] - terms[1] - terms[2] + terms[3]
    rounding = 4.0 * np.finfo(float).eps * sum(np.abs(v) + 1.0 for v in terms)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        value = d / (gamma - 1.0) * -np.expm1(y)
        reliable = (rounding * np.exp(np.minimum(y, 0.0)) <= 1e-10 * np.abs(np.expm1(y))) & (
            np.isfinite(value)
        )
    reliable |= horizon == 0
    value = np.where(horizon == 0, 0.0, value)
    redo = np.flatnonzero(~reliable.ravel())
    if redo.size:
        flat = [v.ravel()[redo] for v in (gamma, d, horizon)]
        if np.max(flat[2]) > MAX_DIRECT_TERMS:
            raise NumericalError(
                "BG/BB: the expected number of future opportunities alive has no accurate "
                f"closed form at gamma = {flat[0][0]:.17g} (too close to 1) and the horizon "
                f"({flat[2].max():.0f} opportunities) is too long to sum the terms directly"
            )
        table = pd.DataFrame({"g": flat[0], "d": flat[1], "n": flat[2]})
        keys, codes = np.unique(table.to_numpy(), axis=0, return_inverse=True)
        direct = _survival_sum_direct(keys[:, 0], keys[:, 1], keys[:, 2])
        value = value.ravel().copy()
        value[redo] = direct[codes.ravel()]
        value = value.reshape(gamma.shape)
    return _check_range(value, 0.0, np.max(horizon) if horizon.size else 0.0, "survival sum")


def conditional_expected_purchases(alpha, beta, gamma, delta, x, t_x, n, t, p_alive=None):
    """E[X(n, n+N) | x, t_x, n] with N = floor(t) opportunities, FHS 2010 eq. (13)::

        1/L * B(alpha+x+1, beta+n-x)/B(alpha, beta) * delta/(gamma-1) * G(gamma+delta)/G(1+delta)
            * [G(1+delta+n)/G(gamma+delta+n) - G(1+delta+n+N)/G(gamma+delta+n+N)]

    written as ``P(alive) (alpha+x)/(alpha+beta+n) survival_sum(gamma, delta+n, N)``.
    """
    alpha, beta, gamma, delta, x, t_x, n = as_float(alpha, beta, gamma, delta, x, t_x, n)
    if p_alive is None:
        p_alive = probability_alive(alpha, beta, gamma, delta, x, t_x, n)
    horizon = opportunities(t)

    def active(alpha, beta, gamma, delta, x, n):
        return (alpha + x) / (alpha + beta + n) * survival_sum(gamma, delta + n, horizon)

    shared = (horizon,)
    return p_alive * per_distinct_customer(active, (alpha, beta, gamma, delta), (x, n), shared)


def conditional_discounted_purchases(
    alpha, beta, gamma, delta, x, t_x, n, ends, weights, p_alive=None
):
    """``sum_k weights[k] E[X(n, n+floor(ends[k])) | x, t_x, n]`` (eq. (13) at each horizon):
    P(alive) once, the transaction rate and the weighted survival sums once per distinct
    (x, n), one gather to the customers (the valuation engine's discounted sum by parts)."""
    alpha, beta, gamma, delta, x, t_x, n = as_float(alpha, beta, gamma, delta, x, t_x, n)
    if p_alive is None:
        p_alive = probability_alive(alpha, beta, gamma, delta, x, t_x, n)
    horizons = opportunities(np.ravel(ends))
    weights = np.ravel(np.asarray(weights, dtype=float))

    def active(alpha, beta, gamma, delta, x, n):
        total = 0.0
        for horizon, weight in zip(horizons, weights, strict=True):
            total = total + weight * survival_sum(gamma, delta + n, horizon)
        return (alpha + x) / (alpha + beta + n) * total

    return p_alive * per_distinct_customer(active, (alpha, beta, gamma, delta), (x, n))


def expected_purchases_new_customer(alpha, beta, gamma, delta, t):
    """E[X(N)] for a customer just acquired, N = floor(t) opportunities, FHS 2010 eq. (8)::

    alpha/(alpha+beta) * delta/(gamma-1) * [1 - G(gamma+delta) G(1+delta+N)
                                               / (G(gamma+delta+N) G(1+delta))]
    """
    alpha, beta, gamma, delta = as_float(alpha, beta, gamma, delta)
    return alpha / (alpha + beta) * survival_sum(gamma, delta, opportunities(t))


def conditional_purchase_probability(alpha, beta, gamma, delta, x, t_x, n, t, k, p_alive=None):
    """P(X(n, n+N) = k | x, t_x, n), N = floor(t) (FHS 2010 appendix).

    Alive at n (probability P(alive)), the customer stays alive for ``L`` of the next N
    opportunities with ``P(L = l) = B(gamma+1, d+l)/B(gamma, d)`` for l < N and
    ``B(gamma, d+N)/B(gamma, d)`` for l = N (``d = delta+n``), and given L transacts
    beta-binomially: ``C(L, k) B(a'+k, b'+L-k)/B(a', b')``, ``a' = alpha+x``, ``b' = beta+n-x``.
    Dead at n: no transaction. Exact, by summing over L = k..N.
    """
    alpha, beta, gamma, delta, x, t_x, n, k = as_float(alpha, beta, gamma, delta, x, t_x, n, k)
    if p_alive is None:
        p_alive = probability_alive(alpha, beta, gamma, delta, x, t_x, n)
    horizon = opportunities(t)

    def active_probability(alpha, beta, gamma, delta, x, n):
        return _active_count_probability(alpha, beta, gamma, delta, x, n, horizon, k)

    active = per_distinct_customer(
        active_probability, (alpha, beta, gamma, delta), (x, n), (horizon, k)
    )
    value = p_alive * active + (1.0 - p_alive) * (k == 0)
    return _check_range(value, 0.0, 1.0, "P(X = k)")


def _active_count_probability(alpha, beta, gamma, delta, x, n, horizon, k):
    """P(k transactions at the next ``horizon`` opportunities | alive at n), summed over the
    number of further opportunities alive (see :func:`conditional_purchase_probability`)."""
    a_post, b_post, d_post = alpha + x, beta + n - x, delta + n
    shape = np.broadcast_shapes(*(np.shape(v) for v in (gamma, a_post, b_post, d_post, k)))
    active = np.zeros(shape)
    top = int(np.max(horizon)) if horizon.size else 0
    for length in range(int(np.min(k)) if k.size else 0, top + 1):
        ell = float(length)
        stays = np.where(
            ell < horizon,
            betaln(gamma + 1.0, d_post + ell) - betaln(gamma, d_post),
            betaln(gamma, d_post + ell) - betaln(gamma, d_post),
        )
        with np.errstate(invalid="ignore"):
            log_binomial = (
                gammaln(ell + 1.0)
                - gammaln(k + 1.0)
                - gammaln(np.maximum(ell - k, 0.0) + 1.0)
                + betaln(a_post + k, b_post + np.maximum(ell - k, 0.0))
                - betaln(a_post, b_post)
            )
        term = np.where((k <= ell) & (ell <= horizon), np.exp(stays + log_binomial), 0.0)
        active = active + term
    return active


def discounted_survival_quadrature(gamma, d, z) -> tuple[float, float]:
    """``(value, error estimate)`` of :func:`discounted_survival_sum` for one (gamma, d, z) as
    the integral over the dropout probability: ``sum_{s>=1} z^s (1-theta)^s = z(1-theta) /
    (1 - z(1-theta))`` averaged over ``theta ~ Beta(gamma, d)``, by QUADPACK's adaptive rule for
    algebraic end-point weights (the Beta's exponents are put in the weight while below 50, in
    the integrand above, where the weight's moments lose accuracy)."""
    from scipy import integrate

    log_beta = betaln(gamma, d)

    def geometric(theta):
        return z * (1.0 - theta) / ((1.0 - z) + z * theta)

    options = {"limit": 500, "epsabs": 0.0, "epsrel": 1e-11}
    in_weight_a, in_weight_b = gamma < 50.0, d < 50.0

    def integrand(theta):
        log_rest = -log_beta
        if not in_weight_a:
            log_rest += (gamma - 1.0) * np.log(theta)
        if not in_weight_b:
            log_rest += (d - 1.0) * np.log1p(-theta)
        return geometric(theta) * np.exp(log_rest)

    if in_weight_a or in_weight_b:
        exponents = (gamma - 1.0 if in_weight_a else 0.0, d - 1.0 if in_weight_b else 0.0)
        return integrate.quad(integrand, 0.0, 1.0, weight="alg", wvar=exponents, **options)
    return integrate.quad(integrand, 0.0, 1.0, **options)


def discounted_survival_sum(gamma, d, z, max_terms: int = MAX_SERIES_TERMS):
    """``sum_{s>=1} z^s B(gamma, d+s)/B(gamma, d) = z d/(gamma+d) 2F1(1, d+1; gamma+d+1; z)``
    (FHS 2010 eq. (14) without the customer's P(alive) and transaction rate), for discount
    factors ``0 < z < 1``, on the distinct (gamma, d, z).

    scipy's hyp2f1 is not trusted alone; it is checked against an independent route: the
    terms (ratio ``z (d+s)/(gamma+d+s) <= z``) summed directly until the remaining tail, at
    most the last term times ``z/(1-z)``, is below 1e-14 of the sum, or, where that would take
    more than ``max_terms`` terms (z close to 1), the integral
    :func:`discounted_survival_quadrature`. The closed form is returned where the two agree to
    1e-8; elsewhere the independent value where it is certified (the tail bound, or QUADPACK's
    error estimate below 1e-9); NumericalError otherwise.
    """
    gamma, d, z = np.broadcast_arrays(*as_float(gamma, d, z))
    if np.any(~((z > 0) & (z < 1))):
        raise InputError("BG/BB DERT needs a discount factor strictly between 0 and 1")
    keys, codes = np.unique(
        np.column_stack([gamma.ravel(), d.ravel(), z.ravel()]), axis=0, return_inverse=True
    )
    g, dd, zz = keys[:, 0], keys[:, 1], keys[:, 2]
    with np.errstate(invalid="ignore", over="ignore"):
        closed = zz * dd / (g + dd) * hyp2f1(1.0, dd + 1.0, g + dd + 1.0, zz)
    term = zz * dd / (g + dd)
    total = term.copy()
    pending = np.arange(len(g)) if max_terms > 0 else np.arange(0)
    s = 1.0
    while pending.size and s < max_terms:
        term[pending] *= zz[pending] * (dd[pending] + s) / (g[pending] + dd[pending] + s)
        total[pending] += term[pending]
        s += 1.0
        if s % 16 == 0:
            tail = term[pending] * zz[pending] / (1.0 - zz[pending])
            pending = pending[tail > 1e-14 * total[pending]]
    integral = pending if max_terms > 0 else np.arange(len(g))
    certified = np.ones(len(g), dtype=bool)
    for j in integral:
        total[j], error = discounted_survival_quadrature(g[j], dd[j], zz[j])
        certified[j] = error <= 1e-9 * abs(total[j])
    with np.errstate(invalid="ignore"):
        agree = np.abs(closed - total) <= AGREEMENT * np.abs(total)
    value = np.where(agree, closed, total)
    failed = ~agree & ~certified
    if np.any(failed):
        raise NumericalError(
            "BG/BB DERT: scipy's 2F1 could not be confirmed by the integral over the dropout "
            f"probability at gamma = {g[failed][0]:.6g}, delta + n = {dd[failed][0]:.6g}, "
            f"discount factor {zz[failed][0]:.17g} per opportunity; a larger discount rate "
            "(or a coarser opportunity grid) avoids it"
        )
    # at most one transaction opportunity per period, discounted: z / (1 - z)
    value = _check_range(value, 0.0, zz / (1.0 - zz), "discounted survival sum")
    return value[codes.ravel()].reshape(gamma.shape)


def conditional_dert(alpha, beta, gamma, delta, x, t_x, n, rate, p_alive=None):
    """DERT, FHS 2010 eq. (14), with the per-opportunity discount factor ``z = exp(-rate)``
    (``1/(1+d)`` in the paper)::

        B(alpha+x+1, beta+n-x)/B(alpha, beta) * B(gamma, delta+n+1)/(B(gamma, delta)(1+d))
            * 2F1(1, delta+n+1; gamma+delta+n+1; 1/(1+d)) / L

    written as ``P(alive) (alpha+x)/(alpha+beta+n) discounted_survival_sum(gamma, delta+n, z)``.
    """
    alpha, beta, gamma, delta, x, t_x, n, rate = as_float(
        alpha, beta, gamma, delta, x, t_x, n, rate
    )
    if np.any(~(rate > 0)) or np.any(~np.isfinite(rate)):
        raise InputError("DERT needs a positive finite discount rate")
    if p_alive is None:
        p_alive = probability_alive(alpha, beta, gamma, delta, x, t_x, n)

    def active(alpha, beta, gamma, delta, x, n):
        discounted = discounted_survival_sum(gamma, delta + n, np.exp(-rate))
        return (alpha + x) / (alpha + beta + n) * discounted

    shared = (rate,)
    return p_alive * per_distinct_customer(active, (alpha, beta, gamma, delta), (x, n), shared)


def frequency_probability(alpha, beta, gamma, delta, x, n):
    """P(X(n) = x) for a customer just acquired, FHS 2010 eq. (7)::

    C(n, x) B(alpha+x, beta+n-x)/B(alpha, beta) B(gamma, delta+n)/B(gamma, delta)
    + sum_{i=x}^{n-1} C(i, x) B(alpha+x, beta+i-x)/B(alpha, beta)
                              B(gamma+1, delta+i)/B(gamma, delta)
    """
    alpha, beta, gamma, delta, x, n = as_float(alpha, beta, gamma, delta, x, n)

    def log_choose(top, k):
        return gammaln(top + 1.0) - gammaln(k + 1.0) - gammaln(top - k + 1.0)

    value = np.exp(log_choose(n, x) + log_alive_term(alpha, beta, gamma, delta, x, n))
    top = int(np.max(n)) if n.size else 0
    for i in range(int(np.min(x)) if x.size else 0, top):
        ell = float(i)
        with np.errstate(invalid="ignore"):
            log_term = (
                log_choose(ell, np.minimum(x, ell))
                + betaln(alpha + x, beta + np.maximum(ell - x, 0.0))
                - betaln(alpha, beta)
                + betaln(gamma + 1.0, delta + ell)
                - betaln(gamma, delta)
            )
        value = value + np.where((x <= ell) & (ell < n), np.exp(log_term), 0.0)
    return _check_range(value, 0.0, 1.0, "P(X(n) = x)")


# --------------------------------------------------------------------------------------------
# samplers
# --------------------------------------------------------------------------------------------
def sample_latent(alpha, beta, gamma, delta, x, t_x, n, rng: np.random.Generator):
    """One draw per element of the customer's posterior of (alive, p, theta).

    The death time is drawn exactly over its ``n - t_x + 1`` possibilities (alive at n, or last
    alive at ``t_x + i``) with the normalised terms of FHS 2010 eq. (5) as probabilities; then
    ``p`` and ``theta`` from the Betas of that state (see the module docstring).
    """
    p_alive = probability_alive(alpha, beta, gamma, delta, x, t_x, n)
    alpha, beta, gamma, delta, x, t_x, n, p_alive = np.broadcast_arrays(
        *as_float(alpha, beta, gamma, delta, x, t_x, n, p_alive)
    )
    alive = rng.random(alpha.shape) < p_alive
    last_alive = n.copy()
    dead = np.flatnonzero(~alive.ravel())
    if dead.size:
        flat = [v.ravel()[dead] for v in (alpha, beta, gamma, delta, x, t_x, n)]
        last_alive.ravel()[dead] = flat[5] + _draw_death_offset(*flat, rng)
    b_p = np.where(alive, beta + n - x, beta + last_alive - x)
    p = rng.beta(alpha + x, b_p)
    theta = rng.beta(np.where(alive, gamma, gamma + 1.0), delta + last_alive)
    return alive, p, theta


def _draw_death_offset(alpha, beta, gamma, delta, x, t_x, n, rng):
    """For customers known to be dead at n (1-d arrays): the offset i of the last opportunity
    alive ``t_x + i``, drawn with probabilities proportional to the terms of eq. (5)."""
    _, total, _ = dead_terms(alpha, beta, gamma, delta, x, t_x, n)
    target = rng.random(alpha.shape) * total
    gap = np.rint(n - t_x).astype(np.int64)
    chosen = np.zeros(alpha.shape, dtype=np.int64)
    pending = np.flatnonzero(target >= 1.0)  # term 0 has relative weight 1
    cumulative = np.ones(alpha.shape)
    rel = np.ones(alpha.shape)
    b_i, ab_i = beta + t_x - x, alpha + beta + t_x
    d_i, gd_i = delta + t_x, gamma + delta + 1.0 + t_x
    i = 0
    while pending.size:
        i += 1
        j = pending
        rel[j] *= b_i[j] / ab_i[j] * (d_i[j] / gd_i[j])
        cumulative[j] += rel[j]
        for z in (b_i, ab_i, d_i, gd_i):
            z[j] += 1.0
        chosen[j] = i
        # rounding may leave the target a hair above the last cumulative sum: stop at the gap
        pending = j[(cumulative[j] <= target[j]) & (i < gap[j] - 1)]
    return chosen.astype(float)


def sample_future_purchases(alpha, beta, gamma, delta, x, t_x, n, t_grid, rng, p_alive=None):
    """Cumulative transactions at the whole opportunities ``n+1..n+floor(t)`` for each ``t`` of
    ``t_grid``, drawn from the customer's posterior (:func:`sample_future_purchase_periods`).
    int64 of shape ``broadcast(params, x) + (len(t_grid),)``."""
    return cumulative_counts(
        *sample_future_purchase_periods(
            alpha, beta, gamma, delta, x, t_x, n, t_grid, rng, p_alive=p_alive
        )
    )


def sample_future_purchase_periods(alpha, beta, gamma, delta, x, t_x, n, t_grid, rng, p_alive=None):
    """:func:`sample_future_purchases` in sparse form ``(shape, pairs, per_period)``: the
    broadcast shape, the flat indices of the (draw, customer) paths with transactions and their
    per-period counts.

    Alive at n with probability P(alive) (else no transaction); for the alive paths only,
    ``p ~ Beta(alpha+x, beta+n-x)``, ``theta ~ Beta(gamma, delta+n)``, the number of further
    opportunities alive ``L = K - 1`` with ``K ~ Geometric(theta)``, and
    ``Binomial(opportunities alive in the period, p)`` transactions per grid period.
    """
    grid = opportunities(check_grid(t_grid))
    params = as_float(alpha, beta, gamma, delta)
    customers = as_float(x, t_x, n)
    if p_alive is None:
        p_alive = probability_alive(*params, *customers)
    shape = np.broadcast_shapes(*(np.shape(v) for v in (*params, *customers, p_alive)))
    alive = np.flatnonzero(rng.random(shape) < np.broadcast_to(p_alive, shape))
    a, b, g, d, xs, ns = (take_flat(v, shape, alive) for v in (*params, x, n))
    p = rng.beta(a + xs, b + ns - xs)
    theta = rng.beta(g, d + ns)
    cap = float(grid[-1]) + 1.0 if grid.size else 1.0
    stays = geometric_at_most(theta, cap, rng) - 1.0
    alive_by = np.minimum(stays[:, None], grid)
    opportunities_alive = np.diff(alive_by, axis=-1, prepend=0.0).astype(np.int64)
    counts = rng.binomial(opportunities_alive, p[:, None]).astype(np.int64)
    buyers = counts.sum(axis=-1) > 0
    return shape, alive[buyers], counts[buyers]


# --------------------------------------------------------------------------------------------
# the family
# --------------------------------------------------------------------------------------------
class BetaGeoBetaBinomFamily(PurchaseFamily):
    """BG/BB (Fader, Hardie & Shang 2010): the functions of this module on the family interface.

    Customers are the columns ``frequency``, ``recency``, ``n_periods`` (whole numbers of
    opportunities, ``0 <= frequency <= recency <= n_periods``); a horizon ``t`` counts the
    opportunities ``n+1 .. n+floor(t)``. Fit on the compressed (x, t_x, n) table with the number
    of customers of each row as ``weights`` (the form of the published donations data).
    """

    name = "bgbb"
    label = "BG/BB"
    param_names = PARAM_NAMES
    latent_names = ("alive", "p", "theta")
    fit_columns = BGBB_COLUMNS
    customer_columns = BGBB_COLUMNS

    @classmethod
    def validate_summary(
        cls, summary: pd.DataFrame, what: str = "summary", fitting: bool = False
    ) -> pd.DataFrame:
        """BG/BB checks: columns frequency, recency, n_periods; finite whole numbers;
        ``0 <= frequency <= recency <= n_periods``; recency 0 exactly when frequency is 0;
        unique customer ids."""
        return validate_discrete_summary(summary, what)

    def identification_problems(self, rows: FitRows) -> list[str]:
        problems = super().identification_problems(rows)
        used = rows.counts > 0
        if not np.any(rows["n_periods"][used] > 0):
            problems.append("no customer had a transaction opportunity after the first (n = 0)")
        return problems

    def negative_log_likelihood(self, log_params, rows: FitRows):
        return negative_log_likelihood(
            log_params, rows["frequency"], rows["recency"], rows["n_periods"], rows.counts
        )

    def initial_log_params(self, rows: FitRows) -> np.ndarray:
        """p's mean at the observed transaction rate of the customers' opportunities, theta's
        at a tenth; each Beta with a total of 2."""
        w = rows.counts / rows.counts.sum()
        rate = (np.dot(w, rows["frequency"]) + 0.5) / (np.dot(w, rows["n_periods"]) + 1.0)
        rate = float(np.clip(rate, 0.02, 0.98))
        return np.log([2.0 * rate, 2.0 * (1.0 - rate), 0.2, 1.8])

    def boundary_hint(self, params, names) -> str:
        if {"gamma", "delta"} & set(names) and params["gamma"] / (
            params["gamma"] + params["delta"]
        ) < 1e-3:
            return (
                "Here the dropout probability theta ~ Beta(gamma, delta) is pushed towards 0: "
                "the data show (almost) no dropout."
            )
        if {"alpha", "beta"} <= set(names) or {"gamma", "delta"} <= set(names):
            return (
                "Here both shapes of a Beta grow together: the customers' probabilities do "
                "not seem to differ (the Beta is concentrated at its mean)."
            )
        return ""

    def log_likelihood(self, params, data):
        return log_likelihood(
            *self.unpack(params), data["frequency"], data["recency"], data["n_periods"]
        )

    def log_likelihood_gradient(self, params, data):
        n_rows = len(data["frequency"])
        values = [np.broadcast_to(np.asarray(v, float), (n_rows,)) for v in self.unpack(params)]
        return log_likelihood_gradient(
            *values, data["frequency"], data["recency"], data["n_periods"]
        )

    def probability_alive(self, params, x, t_x, n):
        return probability_alive(*self.unpack(params), x, t_x, n)

    def expected_purchases(self, params, x, t_x, n, t, p_alive=None):
        return conditional_expected_purchases(*self.unpack(params), x, t_x, n, t, p_alive)

    def discounted_expected_purchases(self, params, x, t_x, n, ends, weights, p_alive=None):
        """``sum_k weights[k] * expected_purchases(..., ends[k])`` with P(alive) and the
        survival sums once per distinct customer row (used by the valuation engine)."""
        return conditional_discounted_purchases(
            *self.unpack(params), x, t_x, n, ends, weights, p_alive
        )

    def purchase_probability(self, params, x, t_x, n, t, k, p_alive=None):
        return conditional_purchase_probability(*self.unpack(params), x, t_x, n, t, k, p_alive)

    def expected_purchases_new_customer(self, params, t):
        return expected_purchases_new_customer(*self.unpack(params), t)

    def discounted_expected_residual_transactions(
        self, params, x, t_x, n, delta, p_alive=None, n_nodes: int = 200
    ):
        """DERT by FHS 2010 eq. (14) (closed form confirmed by a direct sum); ``delta`` is the
        continuous discount rate per opportunity (``n_nodes`` is not used)."""
        return conditional_dert(*self.unpack(params), x, t_x, n, delta, p_alive)

    def sample_latent(self, params, x, t_x, n, rng):
        drawn = sample_latent(*self.unpack(params), x, t_x, n, rng)
        return dict(zip(self.latent_names, drawn, strict=True))

    def sample_future_purchases(self, params, x, t_x, n, t_grid, rng, p_alive=None):
        return sample_future_purchases(*self.unpack(params), x, t_x, n, t_grid, rng, p_alive)

    def sample_future_purchase_periods(self, params, x, t_x, n, t_grid, rng, p_alive=None):
        return sample_future_purchase_periods(*self.unpack(params), x, t_x, n, t_grid, rng, p_alive)

    def simulate(self, params: Mapping[str, float], T, holdout, rng) -> dict:
        """Customers drawn from the model's story (FHS 2010 section 2), without loops: ``T`` is
        each customer's number of opportunities ``n`` (whole numbers), ``holdout`` an optional
        number of further opportunities.

        Ages are counted in whole opportunities like horizons (an age of 5.5 is 5
        opportunities). ``p ~ Beta(alpha, beta)``, ``theta ~ Beta(gamma, delta)``; the customer dies at the
        beginning of opportunity ``K ~ Geometric(theta)``, so is alive at the first
        ``A = min(K-1, n)`` opportunities and transacts at each with probability p. The last
        transaction is at ``A - G`` where ``G ~ Geometric(p) - 1`` counts the trailing
        opportunities without one (none at all when ``G >= A``), and the others are
        ``Binomial(t_x - 1, p)``. Columns ``frequency``, ``recency``, ``n_periods``, with a
        holdout ``frequency_holdout`` (transactions at n+1..n+holdout) and
        ``duration_holdout``; latent ``true_p``, ``true_theta``, ``true_alive`` (alive at n),
        ``true_alive_holdout_end``.
        """
        alpha, beta, gamma, delta = (np.asarray(v, dtype=float) for v in self.unpack(params))
        n = opportunities(T)
        shape = np.broadcast_shapes(alpha.shape, beta.shape, gamma.shape, delta.shape, n.shape)
        n = np.broadcast_to(n, shape)
        p = rng.beta(alpha, beta, size=shape)
        theta = rng.beta(gamma, delta, size=shape)
        extra = 0.0 if holdout is None else float(np.floor(float(holdout) + HORIZON_SLACK))
        top = float(n.max(initial=0.0)) + extra + 1.0
        stays = geometric_at_most(theta, top, rng) - 1.0  # opportunities alive
        alive_in = np.minimum(stays, n)
        trailing = geometric_at_most(p, top, rng) - 1.0
        buys = trailing < alive_in
        recency = np.where(buys, alive_in - trailing, 0.0)
        earlier = rng.binomial(np.maximum(recency - 1.0, 0.0).astype(np.int64), p)
        frequency = np.where(buys, 1 + earlier, 0).astype(np.int64)
        columns = {"frequency": frequency, "recency": recency, "n_periods": n.astype(float)}
        if holdout is not None:
            alive_holdout = np.minimum(stays, n + extra) - alive_in
            columns["frequency_holdout"] = rng.binomial(alive_holdout.astype(np.int64), p)
            columns["duration_holdout"] = np.full(shape, extra)
            columns["true_alive_holdout_end"] = stays >= n + extra
        columns.update({"true_p": p, "true_theta": theta, "true_alive": stays >= n})
        return columns


def validate_discrete_summary(summary: pd.DataFrame, what: str = "summary") -> pd.DataFrame:
    """Check a BG/BB summary (see :meth:`BetaGeoBetaBinomFamily.validate_summary`) and return
    it; raise InputError naming the column, the rows and the fix."""
    hint = "build it with clvmodels.discrete.discrete_summary(transactions, ..., period='Y')"
    if not isinstance(summary, pd.DataFrame):
        raise InputError(
            f"{what} must be a pandas DataFrame with columns frequency, recency, n_periods; got "
            f"{type(summary).__name__}. Fix: {hint}."
        )
    columns = list(BGBB_COLUMNS)
    check_columns(summary, columns, what, hint=hint)
    if len(summary) == 0:
        raise InputError(f"{what} is empty: there are no customers to fit or score")
    if summary.index.has_duplicates:
        dup = summary.index.duplicated(keep=False)
        raise InputError(
            f"{what} has duplicate customer ids in its index: "
            f"{describe_rows(summary[columns], dup)}\nFix: one row per customer (or one row "
            "per distinct (frequency, recency, n_periods) with the counts as weights)."
        )
    values = {}
    for col in columns:
        values[col] = pd.to_numeric(summary[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values[col])
        if bad.any():
            raise InputError(
                f"column {col!r} of {what} has missing, non-numeric or non-finite values in "
                f"{describe_rows(summary[columns], bad)}\nFix: remove or correct these customers."
            )
        bad = values[col] != np.floor(values[col])
        if bad.any():
            raise InputError(
                f"column {col!r} of {what} is not a whole number in "
                f"{describe_rows(summary[columns], bad)}\nFix: BG/BB counts transaction "
                "opportunities (e.g. years): frequency, recency and n_periods are whole numbers."
            )
    x, t_x, n = (values[c] for c in columns)
    checks = [
        (x < 0, "frequency is negative", "frequency counts opportunities with a transaction"),
        (x > t_x, "frequency is larger than recency",
         "recency is the last opportunity with a transaction, so frequency <= recency"),
        (t_x > n, "recency is larger than n_periods",
         "the last transaction cannot come after the last opportunity observed"),
        ((x == 0) != (t_x == 0), "recency is 0 exactly when frequency is not",
         "customers without repeat transactions have recency 0, others recency >= 1"),
    ]  # fmt: skip
    for mask, problem, fix in checks:
        if mask.any():
            raise InputError(
                f"{what}: {problem} in {describe_rows(summary[columns], mask)}\nFix: {fix}."
            )
    return summary
