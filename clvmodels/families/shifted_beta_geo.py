"""sBG: the shifted-beta-geometric model of contractual (subscription) retention.

Fader, P. S. and Hardie, B. G. S. (2007), "How to project customer retention", *Journal of
Interactive Marketing* 21(1), 76-90 ("FH 2007"); Fader, P. S. and Hardie, B. G. S. (2010),
"Customer-base valuation in a contractual setting: the perils of ignoring heterogeneity",
*Marketing Science* 29(1), 85-93 ("FH 2010").

Story. A subscriber pays at the start of every period they hold the contract. At the end of each
period they cancel with probability ``theta`` (constant over their life: no duration
dependence), so their lifetime ``T`` (the number of periods paid, ``T >= 1``) is shifted-geometric,
``P(T = t | theta) = theta (1 - theta)^(t-1)``. Across subscribers ``theta ~ Beta(alpha, beta)``.
Integrating (FH 2007, eqs. 5-7)::

    P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta)                 t = 1, 2, ...
    S(t)     = P(T > t) = B(alpha, beta + t) / B(alpha, beta)               t = 0, 1, ...
    r_t      = S(t) / S(t-1) = (beta + t - 1) / (alpha + beta + t - 1)      (retention rate)

Aggregate retention rises with ``t`` although nobody's own ``theta`` changes: the subscribers
with high ``theta`` leave first (FH 2010, sec. 2). That is why ``lifespan = 1 / churn`` from the
first periods' churn undervalues a customer base.

Data. A subscription table (:mod:`clvmodels.subscriptions`) has, per customer, ``tenure``
(whole periods completed) and ``churned``. A churned customer with tenure ``t`` paid ``t``
periods and left at the end of period ``t``: ``P(T = t)``. An active one with tenure ``t`` has
renewed at the end of period ``t`` (or has just started, ``t = 0``): ``S(t)`` (right-censored).
Both cases are one expression (FH 2007, eq. 8)::

    log L_i = log B(alpha + churned_i, beta + tenure_i - churned_i) - log B(alpha, beta)

Posterior. Surviving ``t`` periods multiplies the Beta density by ``(1 - theta)^t``, so an active
subscriber's ``theta`` is ``Beta(alpha, beta + t)``: the same model with ``beta`` shifted, which is
why the conditional predictions below are the unconditional ones evaluated at ``beta + t``.

Payments (the purchase-family view). The *purchases* of this family are the future renewal
payments. Timing convention: a payment is made at the start of each renewed period; an active
customer with tenure ``n`` is observed right after paying for period ``n + 1`` (at time ``n``),
so their next possible payment is at ``n + 1``, one period away, and the ``k``-th at ``n + k``
with probability ``S(n + k) / S(n)``. Hence

* ``expected_purchases(t) = sum_{k=1}^{floor(t)} S(n+k) / S(n)`` (payments at whole periods
  ``<= t``; a non-integer ``t`` counts the payments at the whole periods up to it), 0 for a
  churned customer; ``probability_alive`` is 1 for an active customer and 0 for a churned one
  (departure is observed);
* ``DERT(delta) = sum_{k>=1} e^{-delta k} S(n+k) / S(n) = 2F1(1, beta+n; alpha+beta+n; e^-delta) - 1``
  (the valuation engine's convention: each payment discounted from its own date);
* FH 2010's DERL (eq. 6) values the same stream at the moment of the renewal decision, counting
  the upcoming renewal undiscounted: ``DERL(d | n renewals made) = (1 + d) DERT(log(1 + d))``
  (:func:`discounted_expected_residual_lifetime`).

The functions take the duration-dependence exponent ``c`` of the beta-discrete-Weibull model
(:mod:`clvmodels.families.beta_discrete_weibull`), ``S(t) = B(alpha, beta + t^c) / B(alpha,
beta)``, with ``c = 1`` for sBG, so that model shares this file's math. The likelihood
:func:`log_likelihood` takes the log-beta function as an argument, so the same formula serves
numpy/scipy and PyTensor (a Bayesian hierarchical sBG).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import special

from clvmodels.errors import InputError, NumericalError
from clvmodels.families.base import FitRows, PurchaseFamily
from clvmodels.optimize import weighted_sum
from clvmodels.validation import as_float

PARAM_NAMES = ("alpha", "beta")
#: added to a horizon before taking its whole periods, so 2.9999999999 (a unit conversion's
#: rounding) counts as 3 periods
WHOLE_PERIOD_TOLERANCE = 1e-9
#: relative accuracy of the discounted series (DERT) and largest number of terms summed
SERIES_TOLERANCE = 1e-13
MAX_SERIES_TERMS = 200_000
#: rounds of the rejection sampler of a churned BdW customer's theta (each accepts with the
#: churn hazard of their last period)
MAX_REJECTION_ROUNDS = 100_000


# --------------------------------------------------------------------------------------------
# likelihood (written once for numpy/scipy and PyTensor)
# --------------------------------------------------------------------------------------------
def log_likelihood(alpha, beta, tenure, churned, betaln=special.betaln):
    """Per-customer sBG log-likelihood (FH 2007, eqs. 5-8)::

    log B(alpha + churned, beta + tenure - churned) - log B(alpha, beta)

    ``churned`` is 1 (left at the end of period ``tenure``, ``P(T = tenure)``) or 0 (active,
    ``S(tenure)``). ``betaln`` is the log-beta function: :func:`scipy.special.betaln` by default,
    ``pytensor.tensor.special.betaln`` for a PyMC model (only ``+``, ``-`` and ``betaln`` are
    used; checked to give the same values on PyTensor variables).
    """
    return betaln(alpha + churned, beta + tenure - churned) - betaln(alpha, beta)


def log_survival(alpha, beta, t, c=1.0, betaln=special.betaln):
    """``log S(t) = log B(alpha, beta + t^c) - log B(alpha, beta)``: the log of the share still
    subscribed after ``t`` periods (FH 2007 eq. 7 for ``c = 1``; Fader et al. 2018 eq. 4)."""
    return betaln(alpha, beta + t**c) - betaln(alpha, beta)


def log_likelihood_gradient(alpha, beta, tenure, churned):
    """Per-row log-likelihood and its derivatives with respect to ``log(alpha, beta)``, shape
    ``(n_rows, 2)`` (parameters scalars or one per row). With ``psi`` the digamma function and
    ``s = churned``::

    d/d alpha = psi(alpha+s) - psi(alpha+beta+t) - psi(alpha) + psi(alpha+beta)
    d/d beta  = psi(beta+t-s) - psi(alpha+beta+t) - psi(beta) + psi(alpha+beta)
    """
    alpha, beta, tenure, churned = (
        np.ravel(v) for v in np.broadcast_arrays(*as_float(alpha, beta, tenure, churned))
    )
    ll = log_likelihood(alpha, beta, tenure, churned)
    psi_all = special.digamma(alpha + beta + tenure)
    psi_ab = special.digamma(alpha + beta)
    d_alpha = special.digamma(alpha + churned) - psi_all - special.digamma(alpha) + psi_ab
    d_beta = special.digamma(beta + tenure - churned) - psi_all - special.digamma(beta) + psi_ab
    return ll, np.column_stack([alpha * d_alpha, beta * d_beta])


def negative_log_likelihood(log_params, tenure, churned, counts):
    """Total negative log-likelihood of compressed rows and its gradient with respect to
    ``log(alpha, beta)`` (the rows of :func:`log_likelihood_gradient`, weighted by ``counts``)."""
    alpha, beta = np.exp(np.asarray(log_params, dtype=float))
    if not (np.isfinite(alpha) and np.isfinite(beta) and alpha > 0 and beta > 0):
        return np.inf, np.full(2, np.nan)
    ll, per_row = log_likelihood_gradient(alpha, beta, tenure, churned)
    total = weighted_sum(counts, ll)
    if not np.isfinite(total):
        return np.inf, np.full(2, np.nan)
    gradient = -np.array([weighted_sum(counts, per_row[:, j]) for j in range(2)])
    return -total, gradient


def moment_start(tenure, churned, counts) -> np.ndarray:
    """Starting ``log(alpha, beta)``: the first-period churn ``alpha / (alpha + beta)`` and the
    second-period retention ``(beta + 1) / (alpha + beta + 1)`` matched to the data's hazards
    (FH 2007 sec. 4), clipped to a sensible range."""
    tenure, churned, counts = (np.asarray(a, dtype=float) for a in (tenure, churned, counts))

    def hazard(t):
        at_risk = counts[tenure >= t].sum()
        left = counts[(tenure == t) & (churned > 0)].sum()
        return left / at_risk if at_risk > 0 else np.nan

    h1, h2 = hazard(1), hazard(2)
    if not (np.isfinite(h1) and np.isfinite(h2) and 0 < h2 < h1 < 1):
        return np.log([1.0, 1.0])
    # h1 = a/(a+b), h2 = a/(a+b+1)  =>  a + b = h2 / (h1 - h2)
    total = h2 / (h1 - h2)
    alpha, beta = h1 * total, (1.0 - h1) * total
    return np.log(np.clip([alpha, beta], 1e-3, 1e3))


# --------------------------------------------------------------------------------------------
# predictions for active subscribers (any duration exponent c; sBG: c = 1)
# --------------------------------------------------------------------------------------------
def whole_periods(t) -> np.ndarray:
    """The number of whole periods in ``t`` (>= 0), tolerant of rounding just below an integer."""
    t = np.asarray(t, dtype=float)
    if np.any(~np.isfinite(t)) or np.any(t < 0):
        raise InputError(f"horizons must be finite and non-negative, got {t!r}")
    return np.floor(t + WHOLE_PERIOD_TOLERANCE)


def _compressed(alpha, beta, c, tenure):
    """``(tenure values, inverse)``: the distinct tenures when the parameters are shared by all
    customers (a customer axis of length 1), so the series are computed once per tenure."""
    tenure = np.asarray(tenure, dtype=float)
    shared = all(
        np.size(p) == 1 or (np.ndim(p) >= 2 and np.shape(p)[-1] == 1) for p in (alpha, beta, c)
    )
    if shared and tenure.ndim == 1 and tenure.size > 1:
        values, inverse = np.unique(tenure, return_inverse=True)
        if len(values) < len(tenure):
            return values, inverse
    return tenure, None


def survival_ratio(alpha, beta, tenure, k, c=1.0):
    """``S(tenure + k) / S(tenure)``: the probability that an active subscriber with ``tenure``
    periods makes their next ``k`` payments (``B(alpha, beta + (n+k)^c) / B(alpha, beta + n^c)``)."""
    return np.exp(
        special.betaln(alpha, beta + (tenure + k) ** c) - special.betaln(alpha, beta + tenure**c)
    )


def expected_payments(alpha, beta, tenure, churned, t, c=1.0):
    """Expected payments in the next ``t`` periods: ``sum_{k=1}^{floor(t)} S(n+k)/S(n)`` for
    an active subscriber with tenure ``n``, 0 for a churned one (see the module docstring)."""
    alpha, beta, c, tenure, churned = as_float(alpha, beta, c, tenure, churned)
    periods = whole_periods(t)
    values, inverse = _compressed(alpha, beta, c, tenure)
    if np.ndim(periods) and inverse is not None:
        values, inverse = tenure, None  # a horizon per customer: no compression
    total = np.zeros(np.broadcast_shapes(alpha.shape, beta.shape, c.shape, values.shape))
    for k in range(1, int(np.max(periods, initial=0.0)) + 1):
        step = survival_ratio(alpha, beta, values, float(k), c)
        total = total + (step if np.ndim(periods) == 0 else np.where(k <= periods, step, 0.0))
    if inverse is not None:
        total = total[..., inverse]
    return check_payments(np.where(churned > 0, 0.0, total), periods)


def check_payments(values, periods):
    """Return expected payment counts, or raise NumericalError when one is not in
    ``[0, periods]``."""
    values = np.asarray(values, dtype=float)
    bad = ~np.isfinite(values) | (values < -1e-12) | (values > periods + 1e-9)
    if np.any(bad):
        raise NumericalError(
            "expected renewal payments outside [0, periods]: the parameters are outside the "
            "range where the survival series can be evaluated"
        )
    return values


def payment_probability(alpha, beta, tenure, churned, t, k, c=1.0):
    """P(exactly ``k`` payments in the next ``t`` periods): for an active subscriber
    ``S(n+k)/S(n) - S(n+k+1)/S(n)`` when ``k < floor(t)``, ``S(n+k)/S(n)`` when
    ``k = floor(t)``, 0 beyond; a churned subscriber makes none (1 for ``k = 0``)."""
    alpha, beta, c, tenure, churned = as_float(alpha, beta, c, tenure, churned)
    periods = whole_periods(t)
    reach = survival_ratio(alpha, beta, tenure, float(k), c)
    beyond = survival_ratio(alpha, beta, tenure, float(k + 1), c)
    active = np.where(k < periods, reach - beyond, np.where(k == periods, reach, 0.0))
    return np.where(churned > 0, float(k == 0), np.clip(active, 0.0, 1.0))


def discounted_payments_series(alpha, beta, tenure, churned, delta, c=1.0):
    """``sum_{k>=1} e^{-delta k} S(n+k)/S(n)`` by direct summation, stopped when the tail
    (at most ``e^{-delta K} / (1 - e^{-delta})`` relative to the first term's scale) is below
    :data:`SERIES_TOLERANCE`; 0 for churned subscribers. Any ``c``."""
    alpha, beta, c, tenure, churned, delta = as_float(alpha, beta, c, tenure, churned, delta)
    if np.any(~(delta > 0)):
        raise InputError(f"the continuous discount rate delta must be positive, got {delta!r}")
    values, inverse = _compressed(alpha, beta, c, tenure)
    if np.ndim(delta) and np.size(delta) > 1:
        values, inverse = tenure, None
    x = np.exp(-delta)
    smallest = float(np.min(delta))
    # terms decrease (S is non-increasing) and are at most x^k, the tail after K terms is at
    # most x^(K+1)/(1-x); the first term is at least x S(n+1)/S(n), checked below
    n_terms = int(np.ceil(-np.log(SERIES_TOLERANCE * -np.expm1(-smallest)) / smallest))
    if n_terms > MAX_SERIES_TERMS:
        raise NumericalError(
            f"the discount rate delta = {smallest:.3g} per period is too small to sum the "
            f"residual payments ({n_terms} terms); value over a finite horizon instead"
        )
    total = np.zeros(np.broadcast_shapes(alpha.shape, beta.shape, c.shape, values.shape, x.shape))
    weight = np.ones_like(x)
    for k in range(1, n_terms + 1):
        weight = weight * x
        total = total + weight * survival_ratio(alpha, beta, values, float(k), c)
    if inverse is not None:
        total = total[..., inverse]
    return np.where(churned > 0, 0.0, total)


def discounted_expected_residual_payments(alpha, beta, tenure, churned, delta):
    """sBG ``DERT = sum_{k>=1} e^{-delta k} S(n+k)/S(n) = 2F1(1, beta+n; alpha+beta+n; e^-delta) - 1``
    (FH 2010 eq. 6 up to the timing convention; the hypergeometric series' terms are
    ``x^k (beta+n)_k / (alpha+beta+n)_k``). The closed form is checked against the bounds
    ``x r <= DERT <= x / (1 - x)`` with ``r = S(n+1)/S(n)``; where scipy's ``hyp2f1`` misses
    them the series is summed directly."""
    alpha, beta, tenure, churned, delta = as_float(alpha, beta, tenure, churned, delta)
    if np.any(~(delta > 0)):
        raise InputError(f"the continuous discount rate delta must be positive, got {delta!r}")
    values, inverse = _compressed(alpha, beta, delta, tenure)  # hyp2f1 is slow near x = 1
    x = np.exp(-delta)
    b_n = beta + values
    closed = special.hyp2f1(1.0, b_n, alpha + b_n, x) - 1.0
    lower = x * b_n / (alpha + b_n)
    upper = x / -np.expm1(-delta)
    ok = np.isfinite(closed) & (closed >= lower * (1 - 1e-12)) & (closed <= upper * (1 + 1e-12))
    if not np.all(ok):
        series = discounted_payments_series(alpha, beta, values, np.zeros_like(values), delta)
        closed = np.where(ok, closed, series)
    if inverse is not None:
        closed = closed[..., inverse]
    return np.where(churned > 0, 0.0, closed)


def discounted_expected_residual_lifetime(alpha, beta, renewals, discount_rate, c=1.0):
    """FH 2010's DERL (eq. 6): the discounted expected number of remaining payments of a
    subscriber who has made ``renewals`` renewals (``renewals + 1`` payments) and is about to
    decide on the next one, the upcoming payment undiscounted, at the per-period
    ``discount_rate`` ``d``::

        DERL = sum_{t>=n} S(t)/S(n-1) (1+d)^-(t-n),   n - 1 = renewals

    which equals ``(1 + d)`` times this module's DERT at ``delta = log(1 + d)``.
    """
    d = np.asarray(discount_rate, dtype=float)
    if np.any(~(d > 0)):
        raise InputError(f"discount_rate must be positive, got {discount_rate!r}")
    delta = np.log1p(d)
    zeros = np.zeros_like(np.asarray(renewals, dtype=float))
    if np.all(np.asarray(c) == 1.0):
        dert = discounted_expected_residual_payments(alpha, beta, renewals, zeros, delta)
    else:
        dert = discounted_payments_series(alpha, beta, renewals, zeros, delta, c)
    return (1.0 + d) * dert


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------
def sample_churn_rate(alpha, beta, tenure, rng, c=1.0, size=None, churned=None):
    """Each subscriber's ``theta`` from its posterior given their history.

    Active (survived ``n = tenure`` periods): the density is multiplied by ``(1-theta)^(n^c)``,
    so ``theta ~ Beta(alpha, beta + n^c)``. Churned at the end of period ``n``: multiplied by
    ``(1-theta)^((n-1)^c) - (1-theta)^(n^c)``; for ``c = 1`` that is ``theta (1-theta)^(n-1)``,
    ``Beta(alpha + 1, beta + n - 1)``; otherwise drawn by rejection from the proposal
    ``Beta(alpha, beta + (n-1)^c)``, accepted with probability ``1 - (1-theta)^(n^c - (n-1)^c)``
    (the exact posterior; expected tries ``S(n-1) / P(T = n)``, i.e. 1 / the churn hazard).
    """
    alpha, beta, c, tenure = as_float(alpha, beta, c, tenure)
    gone = np.zeros(()) if churned is None else np.asarray(churned, dtype=float)
    shape = size or np.broadcast_shapes(alpha.shape, beta.shape, c.shape, tenure.shape, gone.shape)
    alpha, beta, c, tenure, gone = (
        np.broadcast_to(v, shape) for v in (alpha, beta, c, tenure, gone)
    )
    gone = gone > 0
    theta = rng.beta(alpha, beta + tenure**c)
    if not gone.any():
        return theta
    if np.all(c[gone] == 1.0):
        theta[gone] = rng.beta(alpha[gone] + 1.0, beta[gone] + tenure[gone] - 1.0)
        return theta
    pending = np.flatnonzero(gone.reshape(-1))
    flat = theta.reshape(-1)
    a, b, cc, n = (v.reshape(-1)[pending] for v in (alpha, beta, c, tenure))
    for _ in range(MAX_REJECTION_ROUNDS):
        if not pending.size:
            return theta
        proposal = rng.beta(a, b + (n - 1.0) ** cc)
        keep = rng.random(pending.size) < -np.expm1(np.log1p(-proposal) * (n**cc - (n - 1.0) ** cc))
        flat[pending[keep]] = proposal[keep]
        pending, a, b, cc, n = (v[~keep] for v in (pending, a, b, cc, n))
    if pending.size:
        raise NumericalError(
            f"could not draw the churn probability of {pending.size} churned customers: their "
            "churn hazard at the period they left is below 1e-4 at these parameters"
        )
    return theta


def sample_further_payments(theta, tenure, rng, c=1.0, cap=None):
    """Payments after ``tenure`` of subscribers with churn parameter ``theta``, given that they
    survived ``tenure`` periods: the discrete-Weibull lifetime ``P(T > t) = (1-theta)^(t^c)``
    is ``T > t`` iff ``t < (E / h)^(1/c)`` with ``h = -log(1 - theta)``, ``E ~ Exp(1)``; given
    ``T > n``, ``E = n^c h + Exp(1)`` (memorylessness), so the lifetime bound is
    ``L = (n^c + Exp(1)/h)^(1/c)`` and the number of further payments ``ceil(L) - 1 - n``
    (``c = 1``: geometric). Capped at ``cap`` (the horizon in whole periods)."""
    theta, tenure, c = as_float(theta, tenure, c)
    shape = np.broadcast_shapes(theta.shape, tenure.shape, c.shape)
    hazard = -np.log1p(-theta)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        bound = (tenure**c + rng.standard_exponential(shape) / hazard) ** (1.0 / c)
        further = np.ceil(bound) - 1.0 - tenure
    further = np.where(np.isnan(further), np.inf, further)  # theta = 0: never leaves
    further = np.maximum(further, 0.0)
    if cap is not None:
        further = np.minimum(further, cap)
    return further


def sample_cumulative_payments(alpha, beta, tenure, churned, t_grid, rng, c=1.0):
    """Cumulative payments at the times ``t_grid`` after now, each active subscriber's ``theta``
    drawn from its posterior (:func:`sample_churn_rate`) and then their remaining lifetime
    (:func:`sample_further_payments`); 0 for churned subscribers. int64 of shape
    ``broadcast + (len(t_grid),)``."""
    grid = whole_periods(np.atleast_1d(np.asarray(t_grid, dtype=float)))
    alpha, beta, c, tenure, churned = as_float(alpha, beta, c, tenure, churned)
    shape = np.broadcast_shapes(alpha.shape, beta.shape, c.shape, tenure.shape, churned.shape)
    theta = sample_churn_rate(alpha, beta, tenure, rng, c, size=shape)
    cap = float(grid.max(initial=0.0))
    further = sample_further_payments(theta, tenure, rng, c, cap=cap)
    further = np.where(churned > 0, 0.0, further)
    return np.minimum(further[..., None], grid).astype(np.int64)


def simulate_subscribers(alpha, beta, periods, holdout, rng, c=1.0) -> dict:
    """Subscribers acquired ``periods`` periods ago (whole periods counted), drawn from the model: ``theta ~
    Beta(alpha, beta)``, lifetime ``T`` from ``P(T > t | theta) = (1-theta)^(t^c)``;
    ``tenure = min(T, periods)``, ``churned = T <= periods``. With ``holdout`` periods: the
    payments made in them (``payments_holdout``, at the whole periods after ``periods``) and
    ``churned_holdout`` (gone by the end of the holdout)."""
    alpha, beta, c = as_float(alpha, beta, c)
    periods = whole_periods(periods)
    shape = np.broadcast_shapes(alpha.shape, beta.shape, c.shape, periods.shape)
    theta = rng.beta(np.broadcast_to(alpha, shape), np.broadcast_to(beta, shape))
    hazard = -np.log1p(-theta)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        lifetime = np.ceil((rng.standard_exponential(shape) / hazard) ** (1.0 / c))
    lifetime = np.maximum(np.where(np.isnan(lifetime), np.inf, lifetime), 1.0)
    periods = np.broadcast_to(periods, shape)
    columns = {
        "tenure": np.minimum(lifetime, periods),
        "churned": lifetime <= periods,
    }
    if holdout is not None:
        h = float(whole_periods(holdout))
        columns["payments_holdout"] = np.clip(lifetime - periods - 1.0, 0.0, h)
        columns["churned_holdout"] = lifetime <= periods + h
    columns["true_theta"] = theta
    return columns


# --------------------------------------------------------------------------------------------
# the family
# --------------------------------------------------------------------------------------------
class ShiftedBetaGeoFamily(PurchaseFamily):
    """sBG (Fader & Hardie 2007) for subscriptions: this module on the family interface.

    The customers are the columns ``tenure`` (whole periods completed) and ``churned`` of a
    subscription table (:func:`clvmodels.subscriptions.subscription_table`); the *purchases*
    are future renewal payments, one at the start of each renewed period (an active customer's
    next one is one period away), counted at whole periods (a non-integer horizon ``t`` counts
    the payments at the whole periods ``<= t``). ``probability_alive`` is 1 for active and 0 for
    churned customers: departure is observed.
    """

    name = "sbg"
    label = "sBG"
    param_names: ClassVar[tuple[str, ...]] = PARAM_NAMES
    fit_columns: ClassVar[tuple[str, ...]] = ("tenure", "churned")
    customer_columns: ClassVar[tuple[str, ...]] = ("tenure", "churned")
    latent_names: ClassVar[tuple[str, ...]] = ("alive", "theta")
    #: static covariates (``purchase_covariates``, ``dropout_covariates`` of the estimator):
    #: ``beta_i = beta exp(purchase' z_i)`` (a positive coefficient makes renewals, the
    #: purchases of this family, more likely) and ``alpha_i = alpha exp(dropout' z_i)`` (a
    #: positive coefficient raises churn); the two Beta parameters have their own coefficients
    covariate_links: ClassVar[dict] = {
        "purchase": (("beta", 1),),
        "dropout": (("alpha", 1),),
    }

    def churn_params(self, params) -> tuple:
        """``(alpha, beta)`` of the Beta distribution of the churn probability."""
        return params["alpha"], params["beta"]

    def duration_exponent(self, params):
        """The exponent ``c`` of the shared functions: 1 (no duration dependence); the BdW
        family returns its parameter ``c``."""
        return 1.0

    # ---- data ----------------------------------------------------------------------------
    @classmethod
    def validate_summary(
        cls, summary: pd.DataFrame, what: str = "table", fitting: bool = False
    ) -> pd.DataFrame:
        """Check a subscription table (see
        :func:`clvmodels.subscriptions.validate_subscription_table`); ``fitting`` adds nothing
        (the likelihood reads the same columns)."""
        from clvmodels.subscriptions import validate_subscription_table

        return validate_subscription_table(summary, what=what)

    def fit_rows(self, summary: pd.DataFrame, weights=None) -> FitRows:
        """The distinct ``(tenure, churned)`` rows with their counts (weighted)."""
        self.validate_summary(summary)
        frame = pd.DataFrame(
            {
                "tenure": summary["tenure"].to_numpy(float),
                "churned": summary["churned"].to_numpy(float),
            }
        )
        return super().fit_rows(frame, weights)

    def identification_problems(self, rows: FitRows) -> list[str]:
        problems = []
        if not float(rows.counts.sum()) > 0:
            return ["the customers' weights sum to 0"]
        used = rows.counts > 0
        tenure, churned = rows["tenure"][used], rows["churned"][used]
        if not np.any(churned > 0):
            problems.append("no customer churned, so the churn rate is unknown")
        if not np.any(tenure >= 2):
            problems.append(
                "no customer was observed beyond their first period, so heterogeneity in churn "
                "(alpha vs beta) is not identified"
            )
        return problems

    def boundary_hint(self, params: pd.Series, names: list[str]) -> str:
        return (
            "Large alpha and beta with a fixed ratio mean every customer has nearly the same "
            "churn probability alpha / (alpha + beta) (no heterogeneity; retention flat over "
            "tenure)."
        )

    # ---- likelihood ----------------------------------------------------------------------
    def negative_log_likelihood(self, log_params, rows: FitRows):
        return negative_log_likelihood(log_params, rows["tenure"], rows["churned"], rows.counts)

    def initial_log_params(self, rows: FitRows) -> np.ndarray:
        return moment_start(rows["tenure"], rows["churned"], rows.counts)

    def log_likelihood(self, params, data):
        alpha, beta = as_float(*self.churn_params(params))
        return log_likelihood(alpha, beta, *as_float(data["tenure"], data["churned"]))

    def log_likelihood_gradient(self, params, data):
        return log_likelihood_gradient(*self.churn_params(params), data["tenure"], data["churned"])

    # ---- curves ----------------------------------------------------------------------------
    def survival(self, params, t):
        """``S(t)``: the share of a new cohort still subscribed after ``t`` whole periods."""
        alpha, beta = as_float(*self.churn_params(params))
        return np.exp(log_survival(alpha, beta, whole_periods(t), self.duration_exponent(params)))

    def retention(self, params, t):
        """``r_t = S(t) / S(t-1)``: the share of those active in period ``t`` who renew at its
        end (``t >= 1``)."""
        t = whole_periods(t)
        if np.any(t < 1):
            raise InputError("retention rates are defined for periods t >= 1")
        alpha, beta = as_float(*self.churn_params(params))
        c = self.duration_exponent(params)
        return np.exp(log_survival(alpha, beta, t, c) - log_survival(alpha, beta, t - 1.0, c))

    # ---- predictions ------------------------------------------------------------------------
    def probability_alive(self, params, tenure, churned):
        """1 for active subscribers, 0 for churned ones (the departure is observed)."""
        alpha, beta = as_float(*self.churn_params(params))
        shape = np.broadcast_shapes(alpha.shape, beta.shape, np.shape(churned))
        return np.broadcast_to(1.0 - np.asarray(churned, dtype=float), shape).copy()

    def expected_purchases(self, params, tenure, churned, t, p_alive=None):
        """Expected renewal payments in the next ``t`` periods (see the class docstring)."""
        alpha, beta = self.churn_params(params)
        return expected_payments(alpha, beta, tenure, churned, t, self.duration_exponent(params))

    def purchase_probability(self, params, tenure, churned, t, k, p_alive=None):
        alpha, beta = self.churn_params(params)
        return payment_probability(
            alpha, beta, tenure, churned, t, int(k), self.duration_exponent(params)
        )

    def expected_purchases_new_customer(self, params, t):
        """Expected renewal payments in the first ``t`` periods of a customer who just paid for
        their first period: ``sum_{k=1}^{floor(t)} S(k)``."""
        alpha, beta = self.churn_params(params)
        t = np.asarray(t, dtype=float)
        zero = np.zeros(t.shape or (1,))
        return expected_payments(alpha, beta, zero, zero, t, self.duration_exponent(params))

    def sample_latent(self, params, tenure, churned, rng):
        alpha, beta = self.churn_params(params)
        theta = sample_churn_rate(
            alpha, beta, tenure, rng, self.duration_exponent(params), churned=churned
        )
        alive = np.broadcast_to(np.asarray(churned, dtype=float) == 0, theta.shape)
        return {"alive": alive.copy(), "theta": theta}

    def sample_future_purchases(self, params, tenure, churned, t_grid, rng, p_alive=None):
        alpha, beta = self.churn_params(params)
        return sample_cumulative_payments(
            alpha, beta, tenure, churned, t_grid, rng, self.duration_exponent(params)
        )

    def sample_future_purchase_periods(self, params, tenure, churned, t_grid, rng, p_alive=None):
        """The sparse form of :meth:`sample_future_purchases` ``(shape, pairs, per_period)``,
        built from each path's number of further payments without the dense array."""
        grid = whole_periods(np.atleast_1d(np.asarray(t_grid, dtype=float)))
        alpha, beta = as_float(*self.churn_params(params))
        c = np.asarray(self.duration_exponent(params), dtype=float)
        tenure, churned = as_float(tenure, churned)
        shape = np.broadcast_shapes(alpha.shape, beta.shape, c.shape, tenure.shape, churned.shape)
        theta = sample_churn_rate(alpha, beta, tenure, rng, c, size=shape)
        further = sample_further_payments(theta, tenure, rng, c, cap=float(grid.max(initial=0.0)))
        further = np.where(churned > 0, 0.0, further).reshape(-1)
        pairs = np.flatnonzero(further > 0)
        cumulative = np.minimum(further[pairs, None], grid).astype(np.int64)
        per_period = np.diff(cumulative, axis=-1, prepend=np.zeros_like(cumulative[:, :1]))
        return shape, pairs, per_period

    def discounted_expected_residual_transactions(
        self, params, tenure, churned, delta, p_alive=None, n_nodes: int = 200
    ):
        """``sum_{k>=1} e^{-delta k} S(n+k)/S(n)``, the discounted expected renewal payments
        (by the hypergeometric closed form, see
        :func:`discounted_expected_residual_payments`); ``n_nodes`` is not used."""
        alpha, beta = self.churn_params(params)
        return discounted_expected_residual_payments(alpha, beta, tenure, churned, delta)

    def simulate(self, params, T, holdout, rng) -> dict:
        """Subscribers acquired ``T`` whole periods ago (see :func:`simulate_subscribers`)."""
        alpha, beta = (float(np.asarray(v).ravel()[0]) for v in self.churn_params(params))
        return simulate_subscribers(
            alpha, beta, T, holdout, rng, float(self.duration_exponent(params))
        )
