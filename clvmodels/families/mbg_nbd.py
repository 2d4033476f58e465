"""MBG/NBD: the modified beta-geometric / negative binomial purchase model.

Batislam, E. P., Denizel, M. and Filiztekin, A. (2007), "Empirical validation and comparison
of models for customer base analysis", *International Journal of Research in Marketing* 24(3),
201-209 ("BDF 2007"); Wagner, U. and Hoppe, D. (2008), "Erratum on the MBG/NBD model",
*IJRM* 25(3), 225-226 (corrected conditional expectation). Equation references "FHL 2005"
are to the BG/NBD paper (:mod:`clvmodels.families.bg_nbd`), whose derivations MBG/NBD follows.

Story. As BG/NBD (purchase rate ``lambda ~ Gamma(r, alpha)``, dropout probability
``p ~ Beta(a, b)``), except that a customer may also become inactive at time 0, right after
the first purchase, so customers without repeat purchases can be inactive too. A customer with
``x`` repeat purchases, the last at ``t_x``, observed for ``T`` contributes (BDF 2007, the
analogue of FHL 2005 eq. (6))::

    L = B(a, b+x+1)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
        + B(a+1, b+x)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x))

("active at T" + "inactive right after the last purchase, including the first"), hence the
posterior of the latent state is the mixture

* active at T:       lambda ~ Gamma(r+x, alpha+T),   p ~ Beta(a, b+x+1)
* inactive at t_x:   lambda ~ Gamma(r+x, alpha+t_x), p ~ Beta(a+1, b+x)

with weights ``P(alive) = 1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x))``. The predictions of
an active customer are those of BG/NBD with the posterior above
(:func:`clvmodels.families.bg_nbd.active_expected_purchases`, ...).
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import ClassVar

import numpy as np
from scipy.special import betaln, gammaln

from clvmodels.families.bg_nbd import (
    BetaGeoNBDFamily,
    active_discounted_by_history,
    active_expected_by_history,
    active_expected_purchases,
    active_purchase_probability,
    bg_family_log_likelihood_gradient,
    bg_family_negative_log_likelihood,
    inverse_one_plus_exp,
    log_tenure_ratio,
    probability_alive_by_table,
    sample_bg_family_periods,
    walk_supported,
)
from clvmodels.families.sampling import cumulative_counts, per_frequency
from clvmodels.validation import as_float


def _log_odds_dropped(r, alpha, a, b, x, t_x, T):
    """log P(inactive since t_x) / P(active at T) = log(a/(b+x)) + (r+x) log((alpha+T)/(alpha+t_x))."""
    with np.errstate(divide="ignore"):  # b + x = 0 (b underflowed, x = 0): surely inactive
        log_ab = per_frequency(lambda k: np.log(a) - np.log(b + k), a, b, x)
    return log_ab + (r + x) * log_tenure_ratio(alpha, t_x, T)


def log_likelihood(r, alpha, a, b, x, t_x, T):
    """Per-customer log-likelihood (BDF 2007; see the module docstring), in log space::

    log G(r+x) - log G(r) + r log alpha + log B(a, b+x+1) - log B(a, b)
    - (r+x) log(alpha+T) + log(1 + exp(d)),  d = log(a/(b+x)) + (r+x) log((alpha+T)/(alpha+t_x))
    """
    r, alpha, a, b, x, t_x, T = as_float(r, alpha, a, b, x, t_x, T)
    d = _log_odds_dropped(r, alpha, a, b, x, t_x, T)
    return (
        gammaln(r + x)
        - gammaln(r)
        + r * np.log(alpha)
        + betaln(a, b + x + 1.0)
        - betaln(a, b)
        - (r + x) * np.log(alpha + T)
        + np.logaddexp(0.0, d)
    )


def negative_log_likelihood(log_params, x, t_x, T, counts, t_x_code=None, T_code=None):
    """Total negative log-likelihood of compressed rows and its analytic gradient with respect
    to ``log(r, alpha, a, b)``. With ``w = expit(d)`` = P(inactive since t_x)::

        d/dr     = psi(r+x) - psi(r) + log alpha - (1-w) log(alpha+T) - w log(alpha+t_x)
        d/dalpha = r/alpha - (r+x) [(1-w)/(alpha+T) + w/(alpha+t_x)]
        d/da     = psi(a+b) - psi(a+b+x+1) + w/a
        d/db     = psi(b+x+1) - psi(b) + psi(a+b) - psi(a+b+x+1) - w/(b+x)

    Shares its vectorised kernel with BG/NBD
    (:func:`clvmodels.families.bg_nbd.bg_family_negative_log_likelihood`, ``shift=1``).
    """
    return bg_family_negative_log_likelihood(
        log_params, x, t_x, T, counts, t_x_code, T_code, shift=1.0
    )


def log_likelihood_gradient(r, alpha, a, b, x, t_x, T):
    """MBG/NBD per-row log-likelihood and log-parameter gradient
    (:func:`~clvmodels.families.bg_nbd.bg_family_log_likelihood_gradient` with ``shift=1``)."""
    return bg_family_log_likelihood_gradient(r, alpha, a, b, x, t_x, T, shift=1.0)


def probability_alive(r, alpha, a, b, x, t_x, T):
    """P(active at T | x, t_x, T) = 1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x)) (BDF 2007),
    as ``1 / (1 + exp(d))``; below one even for x = 0 (dropout right after the first purchase)."""
    r, alpha, a, b, x, t_x, T = as_float(r, alpha, a, b, x, t_x, T)
    if (
        np.ndim(x) == np.ndim(t_x) == np.ndim(T) == 1
        and len(x) >= 1024
        and walk_supported(r, alpha, a, b, 1.0)
    ):
        return probability_alive_by_table(r, alpha, a, b, x, t_x, T, shift=1.0)
    return inverse_one_plus_exp(_log_odds_dropped(r, alpha, a, b, x, t_x, T))


def conditional_expected_purchases(r, alpha, a, b, x, t_x, T, t, p_alive=None):
    """E[X(T, T+t] | x, t_x, T] (BDF 2007 with the correction of Wagner & Hoppe 2008)::

        (a+b+x)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x+1; a+b+x; t/(alpha+T+t))]
        / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x))

    = P(alive) x :func:`~clvmodels.families.bg_nbd.active_expected_purchases` at the active
    posterior ``Gamma(r+x, alpha+T) x Beta(a, b+x+1)``.
    """
    r, alpha, a, b, x, t_x, T, t = as_float(r, alpha, a, b, x, t_x, T, t)
    if p_alive is None:
        p_alive = probability_alive(r, alpha, a, b, x, t_x, T)
    return p_alive * active_expected_by_history(r, alpha, a, b, x, T, t, shift=1.0)


def conditional_discounted_purchases(r, alpha, a, b, x, t_x, T, ends, weights, p_alive=None):
    """``sum_k weights[k] E[X(T, T + ends[k]] | x, t_x, T]``: P(alive) times the weighted sum
    of the active customer's expectations at ``Gamma(r+x, alpha+T) x Beta(a, b+x+1)``
    (:func:`~clvmodels.families.bg_nbd.active_discounted_by_history`)."""
    r, alpha, a, b, x, t_x, T = as_float(r, alpha, a, b, x, t_x, T)
    if p_alive is None:
        p_alive = probability_alive(r, alpha, a, b, x, t_x, T)
    return p_alive * active_discounted_by_history(r, alpha, a, b, x, T, ends, weights, shift=1.0)


def expected_purchases_new_customer(r, alpha, a, b, t):
    """E[X(t)] for a new customer (BDF 2007)::

        b/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b+1; a+b; t/(alpha+t))]

    i.e. P(still active after the first purchase) = b/(a+b) times the expectation of an active
    customer with ``p ~ Beta(a, b+1)``.
    """
    r, alpha, a, b, t = as_float(r, alpha, a, b, t)
    return b / (a + b) * active_expected_purchases(r, alpha, a, b + 1.0, t)


def conditional_purchase_probability(r, alpha, a, b, x, t_x, T, t, k, p_alive=None):
    """P(X(T, T+t] = k | x, t_x, T): the posterior mixture of "active" (with
    :func:`~clvmodels.families.bg_nbd.active_purchase_probability` at
    ``Gamma(r+x, alpha+T) x Beta(a, b+x+1)``) and "inactive" (no purchase). With x = t_x = T = 0
    it is the unconditional P(X(t) = k) of a new customer.
    """
    r, alpha, a, b, x, t_x, T, t, k = as_float(r, alpha, a, b, x, t_x, T, t, k)
    if p_alive is None:
        p_alive = probability_alive(r, alpha, a, b, x, t_x, T)
    active = active_purchase_probability(r + x, alpha + T, a, b + x + 1.0, t, k)
    return p_alive * active + (1.0 - p_alive) * (k == 0)


def sample_latent(r, alpha, a, b, x, t_x, T, rng: np.random.Generator):
    """One draw per element of the posterior of (alive, lambda, p): with probability P(alive)
    ``Gamma(r+x, alpha+T) x Beta(a, b+x+1)``, else ``Gamma(r+x, alpha+t_x) x Beta(a+1, b+x)``."""
    r, alpha, a, b, x, t_x, T = np.broadcast_arrays(*as_float(r, alpha, a, b, x, t_x, T))
    alive = rng.random(r.shape) < probability_alive(r, alpha, a, b, x, t_x, T)
    lam = rng.gamma(r + x) / np.where(alive, alpha + T, alpha + t_x)
    # Beta(a', b') with b' -> 0+ is the point mass at 1 (numpy's answer for any tiny positive
    # b'); b + x underflows to 0 only for x = 0 and b = 0, put back at the smallest double
    b_dead = np.maximum(b + x, np.finfo(float).smallest_subnormal)
    p = rng.beta(np.where(alive, a, a + 1.0), np.where(alive, b + x + 1.0, b_dead))
    return alive, lam, p


def sample_future_purchases(r, alpha, a, b, x, t_x, T, t_grid, rng, p_alive=None):
    """Cumulative purchase counts at ``t_grid`` (after T) from the customer's posterior: latent
    state from :func:`sample_latent`, then for active customers a Poisson(lambda) process
    stopped after a Geometric(p) number of purchases (dropout after each purchase)."""
    return cumulative_counts(
        *sample_future_purchase_periods(r, alpha, a, b, x, t_x, T, t_grid, rng, p_alive)
    )


def sample_future_purchase_periods(r, alpha, a, b, x, t_x, T, t_grid, rng, p_alive=None):
    """:func:`sample_future_purchases` in sparse form ``(shape, pairs, per_period)``: the
    broadcast shape, flat indices of the (draw, customer) paths with purchases and their
    per-period (not cumulative) counts; every other path buys nothing (see
    :func:`~clvmodels.families.bg_nbd.sample_bg_family_periods`)."""
    r, alpha, a, b, x, t_x, T = as_float(r, alpha, a, b, x, t_x, T)
    if p_alive is None:
        p_alive = probability_alive(r, alpha, a, b, x, t_x, T)
    return sample_bg_family_periods(p_alive, r + x, alpha + T, a, b + x + 1.0, t_grid, rng)


class ModifiedBetaGeoNBDFamily(BetaGeoNBDFamily):
    """MBG/NBD (Batislam, Denizel & Filiztekin 2007): BG/NBD's fitting machinery with the math
    of this module."""

    name = "mbgnbd"
    label = "MBG/NBD"
    functions: ClassVar[ModuleType] = sys.modules[__name__]

    def simulate_dropout(self, p, rng):
        """The number of repeat purchases after which each customer drops out: Geometric(p) on
        {0, 1, ...} (BDF 2007: also right after the first purchase). A ``p`` below 1e-15 never
        drops out."""
        tiny = p < 1e-15
        drawn = rng.geometric(np.where(tiny, 0.5, p))
        return np.where(tiny, np.iinfo(np.int64).max // 4, drawn - 1).astype(np.int64)
