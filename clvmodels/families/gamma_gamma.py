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

import warnings
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.special import digamma, gammaln

from clvmodels.errors import InputError, ModelAssumptionWarning, describe_rows
from clvmodels.models.base import SpendModel, check_weights, compress_rows, validate_summary
from clvmodels.models.beta_geo import _sum, take_flat, unique_inverse

PARAM_NAMES = ("p", "q", "v")

#: |corr(frequency, monetary_value)| among repeat customers above which fit() warns
CORRELATION_WARNING = 0.3


def _as_float(*arrays):
    return tuple(np.asarray(a, dtype=float) for a in arrays)


def log_likelihood(p, q, v, x, m):
    """Per-customer log-density of the mean spend ``m`` of ``x >= 1`` transactions
    (the likelihood of Colombo & Jiang 1999, as written in FH 2013)."""
    p, q, v, x, m = _as_float(p, q, v, x, m)
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
    x, m, counts = _as_float(x, m, counts)
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
    s_cx_log_m, s_c_log_m = _sum(cx, log_m), _sum(counts, log_m)
    s_cx_lv, s_c_lv = _sum(cx, log_vxm), _sum(counts, log_vxm)
    s_cx_inv, s_c_inv = _sum(cx, inv_vxm), _sum(counts, inv_vxm)
    n = float(cu.sum())
    value = (
        _sum(cu, gammaln(pxu + q) - gammaln(pxu) + pxu * log_xu)
        + n * (q * np.log(v) - gammaln(q))
        + p * s_cx_log_m
        - s_c_log_m
        - p * s_cx_lv
        - q * s_c_lv
    )
    g_p = _sum(cu * xu, psi_pxq_u - digamma(pxu) + log_xu) + s_cx_log_m - s_cx_lv
    g_q = _sum(cu, psi_pxq_u) + n * (np.log(v) - digamma(q)) - s_c_lv
    g_v = n * q / v - p * s_cx_inv - q * s_c_inv
    grad = np.array([g_p * p, g_q * q, g_v * v])
    return -float(value), -grad


def conditional_expected_spend(p, q, v, x, m):
    """E[spend per transaction | x, m] = p (v + x m) / (p x + q - 1) (FHL 2005b; FH 2013).

    For x = 0 this is the population mean ``p v / (q - 1)`` (``m`` is ignored). Where the mean
    does not exist (``p x + q <= 1``, e.g. x = 0 with q <= 1) the result is ``inf``.
    """
    p, q, v, x, m = _as_float(p, q, v, x, m)
    denominator = p * x + q - 1.0
    numerator = p * (v + np.where(x > 0, x * m, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.inf)


def sample_spend_rate(p, q, v, x, m, rng: np.random.Generator):
    """Draws of the latent rate ``nu | x, m ~ Gamma(q + p x, v + x m)`` (shape, rate): the
    conjugate posterior, prior ``Gamma(q, v)`` for x = 0."""
    p, q, v, x, m = np.broadcast_arrays(*_as_float(p, q, v, x, m))
    return rng.gamma(q + p * x) / (v + np.where(x > 0, x * m, 0.0))


def sample_future_spend(p, q, v, x, m, counts, rng: np.random.Generator):
    """Total spend per period given purchase ``counts`` (shape ``(..., n_periods)``).

    nu is drawn once per (draw, customer) from its posterior (:func:`sample_spend_rate`); the
    total of ``n`` transactions given nu is ``Gamma(p n, nu)`` (0 when n = 0). Only pairs with
    purchases draw nu and only periods with purchases draw a total (the others spend 0 whatever
    nu is), so the work follows the number of purchasing periods; exact in distribution.
    """
    counts = np.asarray(counts)
    p, q, v, x, m = _as_float(p, q, v, x, m)
    lead = np.broadcast_shapes(*(np.shape(a) for a in (p, q, v, x, m)), counts.shape[:-1])
    n_periods = counts.shape[-1]
    out = np.zeros(lead + (n_periods,))
    if out.size == 0:
        return out
    n = np.broadcast_to(counts, lead + (n_periods,)).reshape(-1)
    cells = np.flatnonzero(n)  # (path, period) cells with purchases, in path order
    if cells.size == 0:
        return out
    if np.any(n[cells] < 0):
        raise ValueError("purchase counts must be non-negative")
    path = cells // n_periods
    first = np.empty(cells.size, dtype=bool)
    first[0] = True
    np.not_equal(path[1:], path[:-1], out=first[1:])
    buyers = path[first]  # flat indices of the paths with purchases
    owner = np.cumsum(first) - 1  # cell -> its path's position in buyers
    xs, p_b = take_flat(x, lead, buyers), take_flat(p, lead, buyers)
    nu = rng.gamma(take_flat(q, lead, buyers) + p_b * xs)
    nu /= take_flat(v, lead, buyers) + np.where(xs > 0, xs * take_flat(m, lead, buyers), 0.0)
    spend = rng.standard_gamma(p_b[owner] * n[cells])
    spend /= nu[owner]
    out.reshape(-1)[cells] = spend
    return out


def _p(params):
    return params["p"], params["q"], params["v"]


class GammaGamma(SpendModel):
    """Gamma-Gamma spend model, fit by maximum likelihood on customers with repeat purchases.

    Parameters
    ----------
    engine : {"native", "lifetimes"}
        ``"native"`` (default) or ``"lifetimes"`` (``lifetimes.GammaGammaFitter`` finds the
        optimum, kept as ``lifetimes_fitter_``; everything else uses this module's math).

    Fitted attributes: ``params_`` (p, q, v), ``log_likelihood_``, ``standard_errors_``,
    ``covariance_``, ``converged_``, ``n_customers_`` (repeat customers used), and
    ``frequency_spend_correlation_`` (Pearson correlation of frequency and monetary value among
    repeat customers; the model assumes it is zero).

    Examples
    --------
    >>> import clvmodels as clv
    >>> s = clv.datasets.load_cdnow_summary()
    >>> gg = clv.GammaGamma().fit(s)
    >>> gg.params_.round(2).tolist()
    [6.25, 3.74, 15.45]
    """

    param_names: ClassVar[tuple[str, ...]] = PARAM_NAMES

    def fit(self, summary: pd.DataFrame, weights=None) -> GammaGamma:
        """Fit on the repeat customers (frequency > 0) of ``summary`` (needs ``monetary_value``).

        Customers without repeat purchases carry no information about spend and are left out
        of the fit (they still get the population mean from :meth:`expected_spend`). A time
        unit is not needed.
        """
        validate_summary(summary, monetary=True)
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
            raise InputError(
                "GammaGamma: monetary_value must be positive for customers with repeat purchases; "
                f"it is zero or negative in {describe_rows(summary[['frequency', 'monetary_value']], bad)}"
                "\nFix: check the amount column (returns netted to zero?) or drop these customers "
                "from the spend fit."
            )
        self.frequency_spend_correlation_ = _weighted_corr(
            x[repeat], m[repeat], None if w is None else w[repeat]
        )
        if abs(self.frequency_spend_correlation_) > CORRELATION_WARNING:
            warnings.warn(
                f"GammaGamma assumes spend per transaction is independent of purchase frequency, "
                f"but their correlation among repeat customers is "
                f"{self.frequency_spend_correlation_:.2f} (|corr| > {CORRELATION_WARNING}); "
                "expected spend and CLV may be biased.",
                ModelAssumptionWarning,
                stacklevel=2,
            )
        self._fit_mle(summary, weights, require_unit=False)
        if self.params_["q"] <= 1.0:
            warnings.warn(
                f"GammaGamma: q = {self.params_['q']:.3g} <= 1, so the population mean spend "
                "p v / (q - 1) does not exist; expected_spend is inf for customers without "
                "repeat purchases.",
                ModelAssumptionWarning,
                stacklevel=2,
            )
        return self

    def _fit_data(self, summary: pd.DataFrame, weights):
        x = summary["frequency"].to_numpy(dtype=float)
        m = summary["monetary_value"].to_numpy(dtype=float)
        w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=float)
        keep = (x > 0) & (w > 0)
        x_u, m_u, counts = compress_rows(x[keep], m[keep], weights=w[keep])
        return (x_u, m_u), counts

    def _negative_log_likelihood(self, log_params, data, counts):
        return negative_log_likelihood(log_params, *data, counts)

    def _initial_log_params(self, data, counts) -> np.ndarray:
        # method of moments on the per-customer mean spends: p = 1 per transaction, a prior
        # mean of 1/nu near the observed mean spend, q = 3
        x, m = data
        mean_m = _sum(counts, m) / float(counts.sum())
        p, q = 1.0, 3.0
        return np.log([p, q, mean_m * (q - 1.0) / p])

    def _fit_lifetimes(self, summary: pd.DataFrame, weights) -> np.ndarray:
        from clvmodels.models.lifetimes_engine import fit_lifetimes_gamma_gamma

        x = summary["frequency"].to_numpy(dtype=float)
        m = summary["monetary_value"].to_numpy(dtype=float)
        keep = x > 0 if weights is None else (x > 0) & (np.asarray(weights, float) > 0)
        w = None if weights is None else np.asarray(weights, float)[keep]
        self.lifetimes_fitter_ = fit_lifetimes_gamma_gamma(x[keep], m[keep], weights=w)
        return self.lifetimes_fitter_.params_[list(PARAM_NAMES)].to_numpy(dtype=float)

    # ---- the math protocol ------------------------------------------------------------------
    @staticmethod
    def _math_expected_spend(params, x, m):
        return conditional_expected_spend(*_p(params), x, m)

    @staticmethod
    def _math_sample_spend_rate(params, x, m, rng):
        return sample_spend_rate(*_p(params), x, m, rng)

    @staticmethod
    def _math_sample_future_spend(params, x, m, counts, rng):
        return sample_future_spend(*_p(params), x, m, counts, rng)

    def conditional_latent_draws(
        self, summary: pd.DataFrame, n: int = 100, seed=None, draws: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Draws of each customer's latent spend rate ``nu`` and mean spend per transaction
        ``p / nu`` given their history: tidy DataFrame ``customer_id, draw, nu, mean_spend``.

        With ``draws`` (e.g. ``param_draws(200)``) each latent draw uses one parameter draw.
        """
        params, x, m = self._prepare(summary)
        rng = np.random.default_rng(seed)
        if draws is None:
            n = int(n)
            if n < 1:
                raise ValueError(f"n must be a positive number of draws, got {n!r}")
            params = {k: np.repeat(v, n, axis=0) for k, v in params.items()}
        else:
            params = self.customer_params(summary, draws)
            n = len(draws)
        nu = np.broadcast_to(sample_spend_rate(*_p(params), x, m, rng), (n, len(summary)))
        p = np.broadcast_to(params["p"], (n, len(summary)))
        index_name = summary.index.name or "customer_id"
        return pd.DataFrame(
            {
                index_name: np.tile(summary.index.to_numpy(), n),
                "draw": np.repeat(np.arange(n), len(summary)),
                "nu": nu.ravel(),
                "mean_spend": (p / nu).ravel(),
            }
        )


def _weighted_corr(x: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> float:
    """Pearson correlation (weighted when ``w`` is given); 0 when either side is constant."""
    w = np.ones(len(x)) if w is None else w
    w = w / w.sum()
    dx, dy = x - _sum(w, x), y - _sum(w, y)
    sx, sy = np.sqrt(_sum(w, dx**2)), np.sqrt(_sum(w, dy**2))
    if sx == 0 or sy == 0:
        return 0.0
    return _sum(w, dx * dy) / (sx * sy)
