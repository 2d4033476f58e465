"""Beta-discrete-Weibull (BdW): sBG with duration dependence.

Fader, P. S., Hardie, B. G. S., Liu, Y., Davin, J. and Steenburgh, T. (2018), "'How to project
customer retention' revisited: the role of duration dependence", *Journal of Interactive
Marketing* 43, 1-16 ("FHLDS 2018").

Story. As sBG (:mod:`clvmodels.families.shifted_beta_geo`), but a subscriber's own churn
probability may change with tenure: their lifetime is discrete Weibull,
``P(T > t | theta) = (1 - theta)^(t^c)`` (FHLDS 2018 eq. 3), so the individual hazard falls with
tenure when ``c < 1`` (habit, switching costs) and rises when ``c > 1``; ``c = 1`` is the
geometric lifetime of sBG. With ``theta ~ Beta(alpha, beta)``, since
``E[(1 - theta)^s] = B(alpha, beta + s) / B(alpha, beta)`` for any ``s >= 0`` (FHLDS 2018 eq. 4)::

    S(t)     = B(alpha, beta + t^c) / B(alpha, beta)
    P(T = t) = S(t - 1) - S(t)                                    t = 1, 2, ...
    r_t      = S(t) / S(t - 1)

The likelihood of a churned subscriber with tenure ``t`` is ``P(T = t)``, of an active one
``S(t)``; ``P(T = t)`` is computed as ``S(t-1) (1 - exp(log S(t) - log S(t-1)))`` in log space
(``log1p(-exp(.))``), which for ``c = 1`` equals sBG's ``B(alpha+1, beta+t-1)/B(alpha, beta)`` to
rounding (about 1e-13 relative).

Posterior and predictions. Surviving ``n`` periods multiplies the density of ``theta`` by
``(1-theta)^(n^c)``, so an active subscriber's ``theta`` is ``Beta(alpha, beta + n^c)`` and
``P(T > n + k | T > n) = S(n + k) / S(n)``; the predictions, the payment-timing convention, the
samplers and the DERT series are sBG's functions evaluated with this ``c``
(:func:`~clvmodels.families.shifted_beta_geo.expected_payments`, ...). DERT has no
hypergeometric closed form when ``c != 1`` and is summed directly
(:func:`~clvmodels.families.shifted_beta_geo.discounted_payments_series`).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy import special

from clvmodels.families.base import FitRows
from clvmodels.families.shifted_beta_geo import (
    ShiftedBetaGeoFamily,
    discounted_payments_series,
    log_survival,
    moment_start,
)
from clvmodels.families.shifted_beta_geo import (
    negative_log_likelihood as sbg_negative_log_likelihood,
)
from clvmodels.optimize import minimize_negative_log_likelihood, numerical_hessian, weighted_sum
from clvmodels.validation import as_float

PARAM_NAMES = ("alpha", "beta", "c")


def log_churn_probability(alpha, beta, c, tenure, betaln=special.betaln, log1mexp=None):
    """``log P(T = tenure) = log(S(tenure - 1) - S(tenure))`` for ``tenure >= 1`` (FHLDS 2018
    eq. 5). ``betaln`` and ``log1mexp`` (``log(1 - exp(x))`` for ``x <= 0``) are numpy/scipy
    by default; pass PyTensor's (``pytensor.tensor.special.betaln``, ``pytensor.tensor.log1mexp``)
    for a PyMC model."""
    if log1mexp is None:

        def log1mexp(x):
            return np.log(-np.expm1(x))

    before = log_survival(alpha, beta, tenure - 1.0, c, betaln)
    after = log_survival(alpha, beta, tenure, c, betaln)
    return before + log1mexp(after - before)


def log_likelihood(alpha, beta, c, tenure, churned):
    """Per-customer log-likelihood: :func:`log_churn_probability` for churned subscribers,
    ``log S(tenure)`` for active ones (a PyMC model calls the two on its churned and active
    rows, which avoids evaluating either where it does not apply)."""
    alpha, beta, c, tenure, churned = as_float(alpha, beta, c, tenure, churned)
    gone = churned > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        lost = log_churn_probability(alpha, beta, c, np.where(gone, tenure, 1.0))
    return np.where(gone, lost, log_survival(alpha, beta, tenure, c))


def _survival_gradient(alpha, beta, c, t):
    """Gradient of ``log S(t)`` with respect to ``(alpha, beta, c)``, ``s = t^c``::

    d/d alpha = psi(alpha+beta) - psi(alpha+beta+s)
    d/d beta  = psi(beta+s) - psi(alpha+beta+s) - psi(beta) + psi(alpha+beta)
    d/d c     = (psi(beta+s) - psi(alpha+beta+s)) s log t            (0 at t = 0)
    """
    s = t**c
    psi_all = special.digamma(alpha + beta + s)
    psi_ab = special.digamma(alpha + beta)
    psi_bs = special.digamma(beta + s)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_t = np.where(t > 0, np.log(np.where(t > 0, t, 1.0)), 0.0)
    return (
        psi_ab - psi_all,
        psi_bs - psi_all - special.digamma(beta) + psi_ab,
        (psi_bs - psi_all) * s * log_t,
    )


def log_likelihood_gradient(alpha, beta, c, tenure, churned):
    """Per-row log-likelihood and its derivatives with respect to ``log(alpha, beta, c)``, shape
    ``(n_rows, 3)`` (parameters scalars or one per row). For a churned row, with
    ``q = S(t)/S(t-1)`` and ``g(t)`` the gradient of ``log S(t)``
    (:func:`_survival_gradient`): ``d log P(T = t) = (g(t-1) - q g(t)) / (1 - q)``; for an
    active row ``g(t)``."""
    alpha, beta, c, tenure, churned = (
        np.ravel(v) for v in np.broadcast_arrays(*as_float(alpha, beta, c, tenure, churned))
    )
    gone = churned > 0
    previous = np.where(gone, tenure - 1.0, tenure)
    with np.errstate(over="ignore", invalid="ignore"):  # t^c = inf: S(t) = 0
        after = log_survival(alpha, beta, tenure, c)
        before = log_survival(alpha, beta, previous, c)
    # S(t) = S(t-1) to rounding (c far below 1, t^c flat) would give log 0: the difference is
    # kept at least one part in 1e300, a finite penalty the line search backs away from
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.minimum(np.where(gone, after - before, -1.0), -1e-300)
        ll = np.where(gone, before + np.log(-np.expm1(diff)), after)
    g_after = _survival_gradient(alpha, beta, c, tenure)
    g_before = _survival_gradient(alpha, beta, c, previous)
    q = np.exp(diff)
    columns = []
    for value, ga, gb in zip((alpha, beta, c), g_after, g_before, strict=True):
        with np.errstate(invalid="ignore"):
            churn_part = (gb - q * ga) / -np.expm1(diff)
        columns.append(value * np.where(gone, churn_part, ga))
    return ll, np.column_stack(columns)


def negative_log_likelihood(log_params, tenure, churned, counts):
    """Total negative log-likelihood of compressed rows and its gradient with respect to
    ``log(alpha, beta, c)`` (the rows of :func:`log_likelihood_gradient`, weighted by
    ``counts``)."""
    alpha, beta, c = np.exp(np.asarray(log_params, dtype=float))
    if not all(np.isfinite(v) and v > 0 for v in (alpha, beta, c)):
        return np.inf, np.full(3, np.nan)
    ll, per_row = log_likelihood_gradient(alpha, beta, c, tenure, churned)
    total = weighted_sum(counts, ll)
    if not np.isfinite(total):
        return np.inf, np.full(3, np.nan)
    return -total, -np.array([weighted_sum(counts, per_row[:, j]) for j in range(3)])


class BetaDiscreteWeibullFamily(ShiftedBetaGeoFamily):
    """Beta-discrete-Weibull (Fader, Hardie, Liu, Davin & Steenburgh 2018) for subscriptions:
    sBG with the duration exponent ``c`` (``c = 1`` is sBG). The customers, the payment-timing
    convention and the predictions are those of
    :class:`~clvmodels.families.shifted_beta_geo.ShiftedBetaGeoFamily`."""

    name = "bdw"
    label = "BdW"
    param_names: ClassVar[tuple[str, ...]] = PARAM_NAMES

    def duration_exponent(self, params):
        return np.asarray(params["c"], dtype=float)

    def identification_problems(self, rows: FitRows) -> list[str]:
        problems = super().identification_problems(rows)
        used = rows.counts > 0
        if not problems and not np.any(rows["tenure"][used] >= 3):
            problems.append(
                "no customer was observed beyond their second period, so duration dependence "
                "(c) cannot be told from heterogeneity"
            )
        return problems

    def boundary_hint(self, params, names) -> str:
        return (
            super().boundary_hint(params, names)
            + " A very small or very large c with such alpha and beta means the data cannot tell "
            "duration dependence from heterogeneity; the sBG model (c = 1) may fit as well."
        )

    def negative_log_likelihood(self, log_params, rows: FitRows):
        return negative_log_likelihood(log_params, rows["tenure"], rows["churned"], rows.counts)

    def initial_log_params(self, rows: FitRows) -> np.ndarray:
        """The sBG fit (``c = 1``) of the same rows, a few milliseconds on compressed rows."""
        tenure, churned, counts = rows["tenure"], rows["churned"], rows.counts
        start = minimize_negative_log_likelihood(
            lambda lp: sbg_negative_log_likelihood(lp, tenure, churned, counts),
            moment_start(tenure, churned, counts),
        )
        log_ab = start.log_params if np.all(np.abs(start.log_params) < 20) else np.zeros(2)
        return np.append(log_ab, 0.0)

    def preconditioner(self, rows: FitRows, x0: np.ndarray):
        """``L^-T`` with ``L L^T`` the observed information at the start: the search then moves
        in steps of about one standard error (a unit step in log c from the sBG start can
        otherwise reach c = e^30, where every survival beyond the first period is 0); None when
        the information is not positive definite there."""
        with np.errstate(all="ignore"):
            hessian = numerical_hessian(lambda lp: self.negative_log_likelihood(lp, rows)[1], x0)
        try:
            return np.linalg.inv(np.linalg.cholesky(hessian)).T
        except np.linalg.LinAlgError:
            return None

    def log_likelihood(self, params, data):
        return log_likelihood(
            *self.churn_params(params), params["c"], data["tenure"], data["churned"]
        )

    def log_likelihood_gradient(self, params, data):
        return log_likelihood_gradient(
            *self.churn_params(params), params["c"], data["tenure"], data["churned"]
        )

    def discounted_expected_residual_transactions(
        self, params, tenure, churned, delta, p_alive=None, n_nodes: int = 200
    ):
        """``sum_{k>=1} e^{-delta k} S(n+k)/S(n)`` summed directly
        (:func:`~clvmodels.families.shifted_beta_geo.discounted_payments_series`); ``n_nodes``
        is not used."""
        alpha, beta = self.churn_params(params)
        return discounted_payments_series(
            alpha, beta, tenure, churned, delta, self.duration_exponent(params)
        )
