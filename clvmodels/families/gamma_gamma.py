"""Gamma-Gamma model of spend per transaction.

Colombo, R. and Jiang, W. (1999), "A stochastic RFM model", *Journal of Interactive
Marketing* 13(3), 2-12; Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "RFM and CLV:
Using Iso-Value Curves for Customer Base Analysis", *Journal of Marketing Research* 42(4),
415-430 ("FHL 2005b"); and Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value"
(note 025, "FH 2013").

Story. The value of each transaction ``z ~ Gamma(p, nu)`` (shape, rate) around a
customer-specific rate ``nu ~ Gamma(q, v)`` (``v`` is the paper's gamma). A customer's mean
spend ``m`` over ``x`` repeat transactions is then, given nu, ``Gamma(p x, nu x)``, and
integrating nu out (Colombo & Jiang 1999; FH 2013, the marginal density of the mean)::

    f(m | p, q, v, x) = G(p x + q) / (G(p x) G(q)) v^q m^(p x - 1) x^(p x) / (v + x m)^(p x + q)

The posterior of the latent rate is ``nu | x, m ~ Gamma(q + p x, v + x m)`` and the
conditional expected spend per transaction (FHL 2005b; FH 2013)::

    E[Z | x, m] = p (v + x m) / (p x + q - 1)
                = (q - 1)/(p x + q - 1) * p v/(q - 1) + p x/(p x + q - 1) * m

a weighted mean of the population mean ``p v/(q - 1)`` (the answer for x = 0) and the
customer's own mean. The model assumes spend is independent of purchase frequency; the fit
reports their correlation among repeat customers and warns when it is strong.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.special import digamma, gammaln

from clvmodels.errors import InputError, ModelAssumptionWarning, describe_rows
from clvmodels.families.base import FitRows, SpendFamily
from clvmodels.families.sampling import gamma_period_totals, unique_inverse
from clvmodels.optimize import compress_rows, weighted_sum
from clvmodels.validation import as_float, check_weights

PARAM_NAMES = ("p", "q", "v")

#: |corr(frequency, monetary_value)| among repeat customers above which fit() warns
CORRELATION_WARNING = 0.3


def log_likelihood(p, q, v, x, m):
    """Per-customer log-density of the mean spend ``m`` of ``x >= 1`` transactions
    (the likelihood of Colombo & Jiang 1999, as written in FH 2013)."""
    p, q, v, x, m = as_float(p, q, v, x, m)
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1.0) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(v + x * m)
    )


def negative_log_likelihood(log_params, x, m, counts):
    """Total negative log-likelihood of compressed (x, m) rows and its analytic gradient with
    respect to ``log(p, q, v)``::

        d/dp = x [psi(p x + q) - psi(p x) + log m + log x - log(v + x m)]
        d/dq = psi(p x + q) - psi(q) + log v - log(v + x m)
        d/dv = q / v - (p x + q) / (v + x m)

    The gamma-function terms depend on x alone and are evaluated once per distinct frequency;
    per row only ``log(v + x m)`` and ``1 / (v + x m)`` remain.
    """
    p, q, v = np.exp(np.asarray(log_params, dtype=float))
    x, m, counts = as_float(x, m, counts)
    xu, x_index = unique_inverse(x)
    cu = np.bincount(x_index, weights=counts, minlength=len(xu))
    pxu = p * xu
    log_xu = np.log(xu)
    psi_pxq_u = digamma(pxu + q)
    # per row
    xm = x * m
    log_vxm = np.log(v + xm)
    inv_vxm = 1.0 / (v + xm)
    log_m = np.log(m)
    cx = counts * x
    s_cx_log_m, s_c_log_m = weighted_sum(cx, log_m), weighted_sum(counts, log_m)
    s_cx_lv, s_c_lv = weighted_sum(cx, log_vxm), weighted_sum(counts, log_vxm)
    s_cx_inv, s_c_inv = weighted_sum(cx, inv_vxm), weighted_sum(counts, inv_vxm)
    n = float(cu.sum())
    value = (
        weighted_sum(cu, gammaln(pxu + q) - gammaln(pxu) + pxu * log_xu)
        + n * (q * np.log(v) - gammaln(q))
        + p * s_cx_log_m
        - s_c_log_m
        - p * s_cx_lv
        - q * s_c_lv
    )
    g_p = weighted_sum(cu * xu, psi_pxq_u - digamma(pxu) + log_xu) + s_cx_log_m - s_cx_lv
    g_q = weighted_sum(cu, psi_pxq_u) + n * (np.log(v) - digamma(q)) - s_c_lv
    g_v = n * q / v - p * s_cx_inv - q * s_c_inv
    grad = np.array([g_p * p, g_q * q, g_v * v])
    return -float(value), -grad


def log_likelihood_gradient(p, q, v, x, m):
    """Per-row log-likelihood at per-row parameters (1-d arrays, or scalars) and its
    derivatives with respect to ``log(p, q, v)``, shape ``(n_rows, 3)``: the formulas of
    :func:`negative_log_likelihood` row by row, for spend covariates (every row its own v)."""
    p, q, v, x, m = (np.ravel(a) for a in np.broadcast_arrays(*as_float(p, q, v, x, m)))
    ll = log_likelihood(p, q, v, x, m)
    px = p * x
    log_vxm = np.log(v + x * m)
    psi_pxq = digamma(px + q)
    g_p = x * (psi_pxq - digamma(px) + np.log(m) + np.log(x) - log_vxm)
    g_q = psi_pxq - digamma(q) + np.log(v) - log_vxm
    g_v = q / v - (px + q) / (v + x * m)
    return ll, np.column_stack([g_p * p, g_q * q, g_v * v])


def conditional_expected_spend(p, q, v, x, m):
    """E[spend per transaction | x, m] = p (v + x m) / (p x + q - 1) (FHL 2005b; FH 2013).

    For x = 0 this is the population mean ``p v / (q - 1)`` (``m`` is ignored). Where the mean
    does not exist (``p x + q <= 1``, e.g. x = 0 with q <= 1) the result is ``inf``.
    """
    p, q, v, x, m = as_float(p, q, v, x, m)
    denominator = p * x + q - 1.0
    numerator = p * (v + np.where(x > 0, x * m, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.inf)


def sample_spend_rate(p, q, v, x, m, rng: np.random.Generator):
    """Draws of the latent rate ``nu | x, m ~ Gamma(q + p x, v + x m)`` (shape, rate): the
    conjugate posterior, prior ``Gamma(q, v)`` for x = 0."""
    p, q, v, x, m = np.broadcast_arrays(*as_float(p, q, v, x, m))
    return rng.gamma(q + p * x) / (v + np.where(x > 0, x * m, 0.0))


def sample_future_spend(p, q, v, x, m, counts, rng: np.random.Generator):
    """Total spend per period given purchase ``counts`` (shape ``(..., n_periods)``).

    nu is drawn once per (draw, customer) from its posterior ``Gamma(q + p x, v + x m)``
    (:func:`sample_spend_rate`); the total of ``n`` transactions given nu is ``Gamma(p n, nu)``
    (0 when n = 0). Only pairs with purchases draw nu and only periods with purchases draw a
    total (the others spend 0 whatever nu is), so the work follows the number of purchasing
    periods; exact in distribution
    (:func:`~clvmodels.families.sampling.gamma_period_totals`).
    """
    p, q, v, x, m = as_float(p, q, v, x, m)
    rate = v + np.where(x > 0, x * m, 0.0)
    return gamma_period_totals(counts, p, q + p * x, rate, rng)


class GammaGammaFamily(SpendFamily):
    """Gamma-Gamma spend (Fader, Hardie & Lee 2005b; Colombo & Jiang 1999): this module on the
    family interface. Fitted on the customers with repeat purchases."""

    name = "gamma-gamma"
    label = "Gamma-Gamma"
    param_names = PARAM_NAMES
    #: spend covariates scale v, the scale of the spend level's prior (CLVTools' gamma):
    #: v_i = v exp(spend' z_i), so a positive coefficient raises the expected spend
    #: p v_i / (q - 1) proportionally
    covariate_links: ClassVar[dict] = {"spend": (("v", 1),)}

    def fit_rows(self, summary: pd.DataFrame, weights=None) -> FitRows:
        """The distinct (frequency, monetary_value) rows of the repeat customers; InputError
        when there are none or when one has a non-positive mean spend."""
        x = summary["frequency"].to_numpy(dtype=float)
        m = summary["monetary_value"].to_numpy(dtype=float)
        w = check_weights(weights, len(summary))
        repeat = x > 0 if w is None else (x > 0) & (w > 0)
        if not repeat.any():
            raise InputError(
                "GammaGamma needs customers with repeat purchases (frequency > 0) to learn spend; "
                "this summary has none"
            )
        bad = repeat & ~(m > 0)
        if bad.any():
            rows = describe_rows(summary[["frequency", "monetary_value"]], bad)
            raise InputError(
                "GammaGamma: monetary_value must be positive for customers with repeat "
                f"purchases; it is zero or negative in {rows}\nFix: check the amount column "
                "(returns netted to zero?) or drop these customers from the spend fit."
            )
        x_u, m_u, counts = compress_rows(
            x[repeat], m[repeat], weights=None if w is None else w[repeat]
        )
        return self.make_rows({"frequency": x_u, "monetary_value": m_u}, counts)

    def negative_log_likelihood(self, log_params, rows: FitRows):
        return negative_log_likelihood(
            log_params, rows["frequency"], rows["monetary_value"], rows.counts
        )

    def initial_log_params(self, rows: FitRows) -> np.ndarray:
        # method of moments on the per-customer mean spends: p = 1 per transaction, a prior
        # mean of 1/nu near the observed mean spend, q = 3
        mean_m = weighted_sum(rows.counts, rows["monetary_value"]) / float(rows.counts.sum())
        p, q = 1.0, 3.0
        return np.log([p, q, mean_m * (q - 1.0) / p])

    def log_likelihood(self, params, data):
        return log_likelihood(*self.unpack(params), data["frequency"], data["monetary_value"])

    def log_likelihood_gradient(self, params, data):
        return log_likelihood_gradient(
            *self.unpack(params), data["frequency"], data["monetary_value"]
        )

    def fit_statistics(self, rows: FitRows) -> dict[str, float]:
        """``frequency_spend_correlation``: the (weighted) Pearson correlation of frequency and
        mean spend among the repeat customers, which the model assumes to be zero."""
        corr = _weighted_corr(rows["frequency"], rows["monetary_value"], rows.counts)
        return {"frequency_spend_correlation": corr}

    def fit_warnings(self, params: pd.Series, rows: FitRows) -> list[Warning]:
        out = []
        corr = self.fit_statistics(rows)["frequency_spend_correlation"]
        if abs(corr) > CORRELATION_WARNING:
            out.append(
                ModelAssumptionWarning(
                    "GammaGamma assumes spend per transaction is independent of purchase "
                    f"frequency, but their correlation among repeat customers is {corr:.2f} "
                    f"(|corr| > {CORRELATION_WARNING}); expected spend and CLV may be biased."
                )
            )
        if params["q"] <= 1.0:
            out.append(
                ModelAssumptionWarning(
                    f"q = {params['q']:.3g} <= 1, so the population mean spend p v / (q - 1) "
                    "does not exist; expected_spend is inf for customers without repeat "
                    "purchases."
                )
            )
        return out

    def expected_spend(self, params, x, m):
        return conditional_expected_spend(*self.unpack(params), x, m)

    def sample_spend_rate(self, params, x, m, rng):
        return sample_spend_rate(*self.unpack(params), x, m, rng)

    def sample_future_spend(self, params, x, m, counts, rng):
        return sample_future_spend(*self.unpack(params), x, m, counts, rng)

    def simulate(self, params, frequency, rng, frequency_holdout=None):
        """Mean spend per customer drawn from the model's story (Colombo & Jiang 1999).

        ``nu ~ Gamma(q, v)`` (shape, rate) per customer; each transaction's value is
        ``Gamma(p, nu)``, so the mean of ``x`` transactions is ``Gamma(p x, x nu)`` (0 when
        x = 0). Returns ``monetary_value`` for the counts ``frequency``, with
        ``monetary_value_holdout`` for ``frequency_holdout`` (the same customers, the same nu)
        when given, and the latent mean spend per transaction ``true_mean_spend = p / nu``.
        Parameters broadcast against ``frequency``.
        """
        p, q, v = (np.asarray(a, dtype=float) for a in self.unpack(params))
        x = np.asarray(frequency, dtype=float)
        shape = np.broadcast_shapes(p.shape, q.shape, v.shape, x.shape)
        nu = rng.gamma(q, 1.0 / v, size=shape)
        p = np.broadcast_to(p, shape)

        def mean_spend(counts):
            counts = np.broadcast_to(np.asarray(counts, dtype=float), shape)
            m = np.zeros(shape)
            pos = counts > 0
            m[pos] = rng.gamma(p[pos] * counts[pos], 1.0 / (counts[pos] * nu[pos]))
            return m

        columns = {"monetary_value": mean_spend(x)}
        if frequency_holdout is not None:
            columns["monetary_value_holdout"] = mean_spend(frequency_holdout)
        columns["true_mean_spend"] = p / nu
        return columns


def _weighted_corr(x: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> float:
    """Pearson correlation (weighted when ``w`` is given); 0 when either side is constant."""
    w = np.ones(len(x)) if w is None else w
    w = w / w.sum()
    dx, dy = x - weighted_sum(w, x), y - weighted_sum(w, y)
    sx, sy = np.sqrt(weighted_sum(w, dx**2)), np.sqrt(weighted_sum(w, dy**2))
    if sx == 0 or sy == 0:
        return 0.0
    return weighted_sum(w, dx * dy) / (sx * sy)
