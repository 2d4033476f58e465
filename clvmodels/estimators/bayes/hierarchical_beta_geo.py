"""Bayesian hierarchical BG/NBD in PyMC: partial pooling of (r, alpha, a, b) across groups.

Model
-----
Within group ``g`` the BG/NBD of Fader, Hardie & Lee (2005), "Counting Your Customers the Easy
Way", *Marketing Science* 24(2) ("FHL 2005"), holds with the group's own ``(r_g, alpha_g, a_g,
b_g)``; the group values come from a log-normal population distribution (non-centred by default,
see :mod:`clvmodels.models.bayesian`). Each customer's purchase rate ``lambda ~ Gamma(r, alpha)``
and dropout probability ``p ~ Beta(a, b)`` are integrated out analytically: a customer with
``x`` repeat purchases, the last at ``t_x``, observed for ``T``, contributes the marginal
likelihood of FHL 2005 eq. (6)::

    L = B(a, b+x)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
        + [x > 0] B(a+1, b+x-1)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x))

so no per-customer latent variable is sampled and the cost is linear in the number of *distinct*
rows. In log space, as in :func:`clvmodels.models.beta_geo.log_likelihood`::

    log L = log G(r+x) - log G(r) + r log alpha + log B(a, b+x) - log B(a, b)
            - (r+x) log(alpha+T) + [x > 0] softplus(d),
    d = log a - log(b+x-1) + (r+x) (log(alpha+T) - log(alpha+t_x)).

Compression: the likelihood is evaluated on the distinct (group, frequency, recency, T) rows,
weighted by their counts; the gamma and beta functions only on the distinct (group, frequency)
pairs and the logarithms ``log(alpha_g + tau)`` only on the distinct (group, time) values. With
covariates the same holds per distinct (group, covariate values) cell (see
:func:`compress_bgnbd`): 0/1 covariates keep the compression, a continuous one makes each
customer a cell.

Evaluation: PyMC sees one Op returning the total and its gradient, computed in one pass by a
numba kernel (:func:`_bgnbd_kernel`; frequencies are whole numbers, so the gamma-function ratios
are rising factorials and no special function is needed) or its numpy twin (:func:`_bgnbd_numpy`,
scipy's gamma and digamma functions) on the other back-ends. The same likelihood written as plain
pytensor operations (``fused=False``) is what JAX (numpyro) compiles.

Covariates (optional): numeric customer columns ``z`` shift the log purchase rate and the log
dropout odds, ``alpha_i = alpha_g exp(-z_i' beta_purchase)`` (so ``E[lambda_i] = r/alpha_g *
exp(z_i' beta_purchase)``) and ``a_i = a_g exp(z_i' beta_dropout)`` (so the odds ``a/b`` of the
mean dropout probability scale by ``exp(z_i' beta_dropout)``). Standardise covariates first: the
coefficient prior is ``Normal(0, 1)`` by default.

Priors (weakly informative, on the log scale; override with ``priors={"r": {"mu": ..,
"sigma": .., "group_sigma": ..}, ...}``):

=========  =====================================================  ==========  ===============
parameter  population mean ``mu = E[log theta]``                    prior sd    ``group_sigma``
=========  =====================================================  ==========  ===============
r          0                                                        2           1
alpha      ``log(mean T / (mean frequency + 1))`` (time scale)      2           1
a          0                                                        2           1
b          0                                                        2           1
=========  =====================================================  ==========  ===============

``group_sigma`` is the scale of the half-normal prior of the between-group sd of ``log theta``.
Predictions reuse the numpy math of :class:`clvmodels.models.beta_geo.BetaGeo`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from clvmodels.errors import InputError, check_columns, describe_rows
from clvmodels.models.base import (
    PurchaseModel,
    compress_rows,
    summary_arrays,
    validate_summary,
)
from clvmodels.models.bayesian import NEW_GROUP, BayesianModel, log_normal_pair
from clvmodels.models.beta_geo import BetaGeo

__all__ = ["HierarchicalBetaGeo", "bgnbd_log_likelihood_pt", "compress_bgnbd"]


# --------------------------------------------------------------------------------------------
# compressed data and the pytensor likelihood
# --------------------------------------------------------------------------------------------
def compress_bgnbd(codes, x, t_x, T, Z=None) -> dict[str, Any]:
    """Distinct (group, x, t_x, T) rows with counts, plus index tables.

    The returned dict holds the distinct rows' counts, the distinct (group, x) pairs
    (``gx_*``) and the distinct (group, time) values (``tau_*``) with each row's index into
    them: the tables :func:`bgnbd_log_likelihood_pt` evaluates.

    With covariates ``Z`` (n_customers, k), customers sharing a group *and* covariate values
    share their parameters: each distinct (group, z) combination is a *cell*, and the rows are
    compressed per cell exactly as per group without covariates (so the likelihood is the same
    compressed, fused one). ``cell_group`` and ``cell_Z`` give each cell's group and
    covariate values. 0/1 or other few-valued covariates keep the compression; a continuous
    covariate makes (almost) every customer a cell of its own.
    """
    if Z is not None and Z.shape[1]:
        key = np.column_stack([np.asarray(codes, float), np.asarray(Z, float)])
        cells, cell_codes = np.unique(key, axis=0, return_inverse=True)
        data = compress_bgnbd(cell_codes.ravel(), x, t_x, T)
        data.update(
            cell_group=cells[:, 0].astype(np.int64), cell_Z=cells[:, 1:], n_cells=len(cells)
        )
        return data
    *unique, counts = compress_rows(np.asarray(codes, float), x, t_x, T)
    g = unique[0].astype(np.int64)
    xu, txu, Tu = unique[1:]
    data: dict[str, Any] = {"n_rows": len(xu), "n_customers": float(counts.sum())}
    # distinct (group, frequency) pairs
    gx, inv_gx = np.unique(np.column_stack([g, xu]), axis=0, return_inverse=True)
    inv_gx = inv_gx.ravel()
    # distinct (group, time) values over T and t_x
    times = np.column_stack([np.concatenate([g, g]), np.concatenate([Tu, txu])])
    tau, inv_tau = np.unique(times, axis=0, return_inverse=True)
    inv_tau = inv_tau.ravel()
    inv_T, inv_tx = inv_tau[: len(xu)], inv_tau[len(xu) :]
    pos = xu > 0
    data.update(
        gx_group=gx[:, 0].astype(np.int64),
        gx_x=gx[:, 1].astype(float),
        gx_w=np.bincount(inv_gx, weights=counts, minlength=len(gx)),
        tau_group=tau[:, 0].astype(np.int64),
        tau=tau[:, 1].astype(float),
        zero_tau_w=np.bincount(inv_T[~pos], weights=counts[~pos], minlength=len(tau)),
        pos_gx=inv_gx[pos],
        pos_T=inv_T[pos],
        pos_tx=inv_tx[pos],
        pos_w=counts[pos],
    )
    return data


# fields of compress_bgnbd the fused likelihood reads, in the kernel's argument order
_KERNEL_DATA = (
    "gx_group",
    "gx_x",
    "gx_w",
    "tau_group",
    "tau",
    "zero_tau_w",
    "pos_gx",
    "pos_T",
    "pos_tx",
    "pos_w",
)
_KERNEL_INDEX = frozenset({"gx_group", "tau_group", "pos_gx", "pos_T", "pos_tx"})


def _bgnbd_kernel(
    r, alpha, a, b, gx_group, gx_x, gx_w, tau_group, tau, zero_tau_w, pos_gx, pos_T, pos_tx, pos_w
):
    """Compressed BG/NBD log-likelihood (FHL 2005 eq. (6)) and its gradient in one pass.

    ``r, alpha, a, b`` hold one value per group (or covariate cell); the other arguments are the
    tables of :func:`compress_bgnbd`. Returns ``(total, d/dr, d/dalpha, d/da, d/db)``. Plain
    loops for numba (the numpy twin is :func:`_bgnbd_numpy`); no special function is needed:

    * frequencies are whole numbers, so the gamma and beta function ratios of eq. (6) are
      rising factorials, ``log G(y+x) - log G(y) = sum_{j<x} log(y+j)`` with derivative
      ``sum_{j<x} 1/(y+j)`` (= digamma(y+x) - digamma(y)). The (group, x) pairs come sorted, so
      one running sum per group serves all its frequencies (cost: the group's largest x).
      Per pair: ``[log G(r+x) - log G(r)] + r log alpha + [log G(b+x) - log G(b)]
      - [log G(a+b+x) - log G(a+b)]`` (``log B(a, b+x) - log B(a, b)`` with ``log G(a)``
      cancelled);
    * non-repeaters add ``-r log(alpha+T)`` once per distinct (group, T);
    * each repeat-buyer row adds ``softplus(d) - (r+x) log(alpha+T)`` with the log-odds
      ``d = log a - log(b+x-1) + (r+x) (log(alpha+T) - log(alpha+t_x))`` of "dropped out after
      the last purchase" against "alive"; with ``s = sigmoid(d)``: ``dd/d(r+x) = log(alpha+T)
      - log(alpha+t_x)``, ``d softplus(d) = s dd``.
    """
    n_gx = gx_x.shape[0]
    n_tau = tau.shape[0]
    g_r = np.zeros(r.shape[0])
    g_alpha = np.zeros(r.shape[0])
    g_a = np.zeros(r.shape[0])
    g_b = np.zeros(r.shape[0])
    rx = np.empty(n_gx)  # r + x per (group, x)
    log_ab = np.empty(n_gx)  # log a - log(b + x - 1)
    g_rx = np.zeros(n_gx)
    g_ab = np.zeros(n_gx)
    total = 0.0
    group = -1
    j = 0
    lf_r = lf_b = lf_ab = df_r = df_b = df_ab = 0.0
    for k in range(n_gx):
        g = gx_group[k]
        x = gx_x[k]
        if g != group or x < j:  # restart the running rising-factorial sums (new group)
            group = g
            j = 0
            lf_r = lf_b = lf_ab = df_r = df_b = df_ab = 0.0
        rg, bg, abg = r[g], b[g], a[g] + b[g]
        while j < x:
            lf_r += np.log(rg + j)
            lf_b += np.log(bg + j)
            lf_ab += np.log(abg + j)
            df_r += 1.0 / (rg + j)
            df_b += 1.0 / (bg + j)
            df_ab += 1.0 / (abg + j)
            j += 1
        w = gx_w[k]
        log_alpha = np.log(alpha[g])
        total += w * (lf_r + rg * log_alpha + lf_b - lf_ab)
        g_r[g] += w * (df_r + log_alpha)
        g_alpha[g] += w * rg / alpha[g]
        g_a[g] -= w * df_ab
        g_b[g] += w * (df_b - df_ab)
        rx[k] = rg + x
        log_ab[k] = np.log(a[g]) - np.log(bg + max(x, 1.0) - 1.0)
    log_at = np.empty(n_tau)  # log(alpha + tau) per (group, time)
    g_at = np.zeros(n_tau)
    for t in range(n_tau):
        g = tau_group[t]
        log_at[t] = np.log(alpha[g] + tau[t])
        w = zero_tau_w[t]
        if w != 0.0:
            total -= w * r[g] * log_at[t]
            g_r[g] -= w * log_at[t]
            g_at[t] -= w * r[g]
    for i in range(pos_gx.shape[0]):
        k = pos_gx[i]
        lt = log_at[pos_T[i]]
        ltx = log_at[pos_tx[i]]
        rxk = rx[k]
        d = log_ab[k] + rxk * (lt - ltx)
        e = np.exp(-abs(d))
        if d >= 0.0:
            softplus = d + np.log1p(e)
            sig = 1.0 / (1.0 + e)
        else:
            softplus = np.log1p(e)
            sig = e / (1.0 + e)
        w = pos_w[i]
        total += w * (softplus - rxk * lt)
        g_rx[k] += w * (sig * (lt - ltx) - lt)
        g_ab[k] += w * sig
        g_at[pos_T[i]] -= w * rxk * (1.0 - sig)
        g_at[pos_tx[i]] -= w * rxk * sig
    for k in range(n_gx):  # chain rule from the tables back to (r, a, b) and alpha
        g = gx_group[k]
        g_r[g] += g_rx[k]
        g_a[g] += g_ab[k] / a[g]
        g_b[g] -= g_ab[k] / (b[g] + max(gx_x[k], 1.0) - 1.0)
    for t in range(n_tau):
        g_alpha[tau_group[t]] += g_at[t] / (alpha[tau_group[t]] + tau[t])
    return total, g_r, g_alpha, g_a, g_b


def _bgnbd_numpy(
    r, alpha, a, b, gx_group, gx_x, gx_w, tau_group, tau, zero_tau_w, pos_gx, pos_T, pos_tx, pos_w
):
    """Vectorised twin of :func:`_bgnbd_kernel` (the Python / C back-ends: PyMC's NUTS,
    ADVI), written with scipy's gamma and digamma functions instead of rising factorials."""
    from scipy.special import digamma, gammaln

    n = r.shape[0]
    g, x = gx_group, gx_x
    rg, ag, bg, alg = r[g], a[g], b[g], alpha[g]
    abg = ag + bg
    per_gx = (
        gammaln(rg + x)
        - gammaln(rg)
        + rg * np.log(alg)
        + gammaln(bg + x)
        - gammaln(bg)
        - gammaln(abg + x)
        + gammaln(abg)
    )
    total = float(gx_w @ per_gx)
    d_ab = digamma(abg + x) - digamma(abg)
    g_r = np.bincount(g, gx_w * (digamma(rg + x) - digamma(rg) + np.log(alg)), minlength=n)
    g_alpha = np.bincount(g, gx_w * rg / alg, minlength=n)
    g_a = -np.bincount(g, gx_w * d_ab, minlength=n)
    g_b = np.bincount(g, gx_w * (digamma(bg + x) - digamma(bg) - d_ab), minlength=n)
    at = alpha[tau_group] + tau
    log_at = np.log(at)
    total -= float(zero_tau_w @ (r[tau_group] * log_at))
    g_r -= np.bincount(tau_group, zero_tau_w * log_at, minlength=n)
    g_at = -zero_tau_w * r[tau_group]
    # repeat-buyer rows
    b_x1 = bg + np.maximum(x, 1.0) - 1.0
    rx, log_ab = rg + x, np.log(ag) - np.log(b_x1)
    lt, ltx, rxk = log_at[pos_T], log_at[pos_tx], rx[pos_gx]
    d = log_ab[pos_gx] + rxk * (lt - ltx)
    sig = np.exp(-np.logaddexp(0.0, -d))
    total += float(pos_w @ (np.logaddexp(0.0, d) - rxk * lt))
    g_rx = np.bincount(pos_gx, pos_w * (sig * (lt - ltx) - lt), minlength=len(x))
    g_ab = np.bincount(pos_gx, pos_w * sig, minlength=len(x))
    g_at = (
        g_at
        - np.bincount(pos_T, pos_w * rxk * (1.0 - sig), minlength=len(tau))
        - np.bincount(pos_tx, pos_w * rxk * sig, minlength=len(tau))
    )
    g_r += np.bincount(g, g_rx, minlength=n)
    g_a += np.bincount(g, g_ab / ag, minlength=n)
    g_b -= np.bincount(g, g_ab / b_x1, minlength=n)
    g_alpha += np.bincount(tau_group, g_at / at, minlength=n)
    return total, g_r, g_alpha, g_a, g_b


_LOGLIK_OP = None
CACHE_DATA_MAX_BYTES = 1 << 20
"""Largest compressed data (bytes) whose compiled model function is cached on disk."""


def _loglik_op():
    """The pytensor Op of the fused likelihood (created once; numba dispatch registered).

    Outputs ``(value, d/dr, d/dalpha, d/da, d/db)``; its gradient is the stored outputs, so
    the log-density graph is a handful of nodes and no special function appears in it. The
    numba kernel is cached on disk (keyed by its source), and so is the compiled model function
    (which embeds the data) while the compressed data take at most ``CACHE_DATA_MAX_BYTES``:
    refitting the same data in a later process skips the compilation.
    """
    global _LOGLIK_OP
    if _LOGLIK_OP is not None:
        return _LOGLIK_OP
    import pytensor.tensor as pt
    from pytensor.gradient import DisconnectedType, disconnected_type, grad_not_implemented
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class BGNBDLogLikelihood(Op):
        __props__ = ()
        never_raises = True  # non-finite values instead of exceptions (nutpie_compile.may_raise)

        def make_node(self, r, alpha, a, b, *data):
            params = [pt.as_tensor_variable(v) for v in (r, alpha, a, b)]
            inputs = params + [pt.as_tensor_variable(v) for v in data]
            outputs = [pt.dscalar(), *(pt.dvector() for _ in params)]
            return Apply(self, inputs, outputs)

        def perform(self, node, inputs, output_storage):
            total, *grads = _bgnbd_numpy(*inputs)
            output_storage[0][0] = np.asarray(total, dtype=np.float64)
            for storage, grad in zip(output_storage[1:], grads, strict=True):
                storage[0] = grad

        def infer_shape(self, fgraph, node, shapes):
            return [(), *shapes[:4]]

        def L_op(self, inputs, outputs, output_grads):
            gz = output_grads[0]
            if not all(isinstance(og.type, DisconnectedType) for og in output_grads[1:]):
                return [grad_not_implemented(self, k, v) for k, v in enumerate(inputs)]
            return [gz * grad for grad in outputs[1:]] + [disconnected_type()] * len(_KERNEL_DATA)

        def connection_pattern(self, node):
            return [[True] * 5] * 4 + [[False] * 5] * len(_KERNEL_DATA)

    try:  # the numba back-end (nutpie)
        import hashlib
        import inspect

        import numba
        from pytensor.graph.basic import Constant
        from pytensor.link.numba.dispatch.basic import (
            default_hash_key_from_props,
            register_funcify_and_cache_key,
        )

        # numpy's error model: a division by zero (r or alpha underflowing to 0 at an extreme
        # proposal) gives inf / nan, which the sampler rejects, instead of raising
        options = {"cache": True, "error_model": "numpy"}
        kernel = numba.njit(**options)(_bgnbd_kernel)
        # source and options enter the cache key: a changed kernel never meets a stale entry
        source = inspect.getsource(_bgnbd_kernel) + repr(sorted(options.items()))
        version = hashlib.sha256(source.encode()).hexdigest()[:16]

        @register_funcify_and_cache_key(BGNBDLogLikelihood)
        def _funcify(op, node=None, **kwargs):
            @numba.njit
            def bgnbd_loglik(r, alpha, a, b, gx_g, gx_x, gx_w, tau_g, tau, zero_w, pg, pT, ptx, pw):
                total, g_r, g_alpha, g_a, g_b = kernel(
                    r, alpha, a, b, gx_g, gx_x, gx_w, tau_g, tau, zero_w, pg, pT, ptx, pw
                )
                return np.asarray(total), g_r, g_alpha, g_a, g_b

            # the compiled model function embeds the data (graph constants): cached on disk
            # only while that stays small, so large fits leave no large cache files behind
            data_bytes = sum(
                v.data.nbytes for v in (node.inputs if node else []) if isinstance(v, Constant)
            )
            if data_bytes > CACHE_DATA_MAX_BYTES:
                return bgnbd_loglik, None
            return bgnbd_loglik, default_hash_key_from_props(op, kernel=version)
    except ImportError:  # pragma: no cover - numba ships with pytensor's numba back-end
        pass
    _LOGLIK_OP = BGNBDLogLikelihood()
    return _LOGLIK_OP


def bgnbd_log_likelihood_pt(r, alpha, a, b, data: dict[str, Any], fused: bool = True):
    """Total BG/NBD log-likelihood (FHL 2005 eq. (6)) of compressed rows, as a pytensor scalar.

    ``r, alpha, a, b`` are pytensor vectors over groups (length 1 when ungrouped) and ``data``
    comes from :func:`compress_bgnbd` without covariates. The functions of (group, x) are
    evaluated once per distinct pair, ``log(alpha_g + tau)`` once per distinct (group, time);
    customers without repeat purchases reduce to ``-r log(alpha + T)`` summed per (group, T);
    each repeat-buyer row costs a softplus. ``fused=True`` evaluates the whole likelihood
    and its gradient in one compiled pass (:func:`_bgnbd_kernel` on the numba back-end,
    :func:`_bgnbd_numpy` elsewhere), so the model graph stays a handful of nodes (fast to
    compile, cached on disk); ``fused=False`` writes it as plain pytensor operations (any
    back-end, e.g. JAX for numpyro).
    """
    import pytensor.tensor as pt
    from pytensor.tensor.special import betaln

    if fused:
        arrays = [
            np.asarray(data[name], np.int64 if name in _KERNEL_INDEX else np.float64)
            for name in _KERNEL_DATA
        ]
        value, *_ = _loglik_op()(r, alpha, a, b, *arrays)
        return value
    g = data["gx_group"]
    x = pt.as_tensor_variable(data["gx_x"])
    rg, ag, bg = r[g], a[g], b[g]
    rx = rg + x
    # per distinct (group, x): log G(r+x) - log G(r) + r log alpha + log B(a, b+x) - log B(a, b)
    per_gx = (
        pt.gammaln(rx)
        - pt.gammaln(rg)
        + rg * pt.log(alpha)[g]
        + betaln(ag, bg + x)
        - betaln(ag, bg)
    )
    log_ab = pt.log(ag) - pt.log(bg + pt.maximum(x, 1.0) - 1.0)
    log_at = pt.log(alpha[data["tau_group"]] + data["tau"])
    total = pt.dot(data["gx_w"], per_gx)
    if data["zero_tau_w"].any():  # non-repeaters: -r log(alpha + T), weights summed per (g, T)
        total = total - pt.dot(data["zero_tau_w"], r[data["tau_group"]] * log_at)
    if len(data["pos_w"]):
        rx_p = rx[data["pos_gx"]]
        log_T = log_at[data["pos_T"]]
        d = log_ab[data["pos_gx"]] + rx_p * (log_T - log_at[data["pos_tx"]])
        total = total + pt.dot(data["pos_w"], pt.softplus(d) - rx_p * log_T)
    return total


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------
class HierarchicalBetaGeo(BayesianModel):
    """Bayesian BG/NBD with partial pooling across groups (PyMC), optional covariates.

    Parameters
    ----------
    group : str, optional
        Column of the summary naming each customer's group (channel, region, cohort). Without
        it (or with one group) the model is a plain Bayesian BG/NBD.
    purchase_covariates, dropout_covariates : list of str, optional
        Numeric summary columns shifting the log purchase rate / the log dropout odds.
    priors : dict, optional
        Overrides of the log-scale priors (see the module docstring), e.g.
        ``{"r": {"mu": -1.0, "sigma": 1.0}, "coefficients": {"sigma": 0.5}}``.
    centered : bool or "auto"
        Centred hierarchy (better when every group has thousands of customers); "auto"
        (default): centred only when every group has at least 2,000 customers.

    Examples
    --------
    >>> hb = HierarchicalBetaGeo(group="channel").fit(summary, draws=1000, chains=4)
    >>> hb.summary()                          # per-group posterior table
    >>> hb.expected_purchases(summary, t="39W")
    >>> draws = hb.param_draws(200, seed=0)   # (parameter, group) columns, for valuation
    """

    kind: ClassVar[str] = "purchase"
    param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    _default_priors: ClassVar[dict[str, dict[str, float | None]]] = {
        "r": {"mu": 0.0, "sigma": 2.0, "group_sigma": 1.0},
        "alpha": {"mu": None, "sigma": 2.0, "group_sigma": 1.0},
        "a": {"mu": 0.0, "sigma": 2.0, "group_sigma": 1.0},
        "b": {"mu": 0.0, "sigma": 2.0, "group_sigma": 1.0},
        "coefficients": {"mu": 0.0, "sigma": 1.0},
    }

    # the numpy prediction math of the MLE model (FHL 2005 eqs. (9), (10); FHL 2008)
    _math_expected_purchases = staticmethod(BetaGeo._math_expected_purchases)
    _math_probability_alive = staticmethod(BetaGeo._math_probability_alive)
    _math_expected_purchases_new_customer = staticmethod(
        BetaGeo._math_expected_purchases_new_customer
    )
    _math_purchase_probability = staticmethod(BetaGeo._math_purchase_probability)
    _math_sample_latent = staticmethod(BetaGeo._math_sample_latent)
    _math_sample_future_purchases = staticmethod(BetaGeo._math_sample_future_purchases)

    # the point-estimate prediction surface of the MLE purchase models
    _prepare = PurchaseModel._prepare
    expected_purchases = PurchaseModel.expected_purchases
    probability_alive = PurchaseModel.probability_alive
    purchase_probability = PurchaseModel.purchase_probability

    def __init__(
        self,
        group: str | None = None,
        purchase_covariates: list[str] | None = None,
        dropout_covariates: list[str] | None = None,
        priors: dict[str, dict[str, float]] | None = None,
        centered: bool | str = "auto",
    ):
        super().__init__(group=group, priors=priors, centered=centered)
        self.purchase_covariates = purchase_covariates
        self.dropout_covariates = dropout_covariates

    # ---- configuration ------------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        return super()._settings() | {
            "purchase_covariates": self.purchase_covariates,
            "dropout_covariates": self.dropout_covariates,
        }

    @property
    def _cov_purchase(self) -> list[str]:
        return list(self.purchase_covariates or [])

    @property
    def _cov_dropout(self) -> list[str]:
        return list(self.dropout_covariates or [])

    def _covariate_columns(self) -> list[str]:
        return list(dict.fromkeys(self._cov_purchase + self._cov_dropout))

    def _coefficient_names(self) -> list[str]:
        return [
            name
            for name, cols in (
                ("beta_purchase", self._cov_purchase),
                ("beta_dropout", self._cov_dropout),
            )
            if cols
        ]

    def _coefficient_labels(self, name: str) -> list[str]:
        return self._cov_purchase if name == "beta_purchase" else self._cov_dropout

    def _resolve_data_priors(self, priors, summary):
        if priors["alpha"]["mu"] is None:
            x, _, T = summary_arrays(summary)
            priors["alpha"]["mu"] = float(np.log(max(T.mean(), 1e-9) / (x.mean() + 1.0)))
        return priors

    def _covariate_matrix(self, summary: pd.DataFrame) -> np.ndarray | None:
        cols = self._covariate_columns()
        if not cols:
            return None
        check_columns(
            summary,
            cols,
            "summary",
            hint="add the covariate columns the model was given (purchase_covariates / "
            "dropout_covariates) to the summary",
        )
        Z = np.column_stack(
            [pd.to_numeric(summary[c], errors="coerce").to_numpy(dtype=float) for c in cols]
        )
        bad = ~np.isfinite(Z)
        if bad.any():
            col = cols[int(np.argmax(bad.any(axis=0)))]
            raise InputError(
                f"covariate column {col!r} has missing, non-numeric or infinite values in "
                f"{describe_rows(summary[cols], bad.any(axis=1))}\nFix: fill or drop these "
                "customers, and encode categories as 0/1 columns."
            )
        return Z

    # ---- fitting hooks ------------------------------------------------------------------------
    def _validate(self, summary):
        return validate_summary(summary)

    def _prepare_data(self, summary, group_codes):
        x, t_x, T = summary_arrays(summary)
        Z = self._covariate_matrix(summary)
        return compress_bgnbd(group_codes, x, t_x, T, Z)

    def _build_model(self, data, coords):
        import pymc as pm
        import pytensor.tensor as pt

        pri = self.priors_
        with pm.Model(coords=coords) as model:
            logs = {}
            for first, second in (("r", "alpha"), ("a", "b")):
                logs[first], logs[second] = log_normal_pair(
                    pm, first, second, pri, self.hierarchical_, self.centered_
                )
            r, alpha, a, b = (pt.atleast_1d(pt.exp(logs[n])) for n in self.param_names)
            # the JAX back-end (numpyro) needs the plain pytensor likelihood
            fused = getattr(self, "sampler_", "nutpie") != "numpyro"
            if "cell_group" not in data:
                loglik = bgnbd_log_likelihood_pt(r, alpha, a, b, data, fused=fused)
            else:
                # per (group, covariate values) cell: alpha_c = alpha_g exp(-z_c' beta_purchase),
                # a_c = a_g exp(z_c' beta_dropout); the compressed likelihood runs over cells
                cols = self._covariate_columns()
                g = data["cell_group"]
                log_alpha_c = pt.log(alpha)[g]
                log_a_c = pt.log(a)[g]
                cp = pri["coefficients"]
                if self._cov_purchase:
                    beta_p = pm.Normal(
                        "beta_purchase", cp["mu"], cp["sigma"], shape=len(self._cov_purchase)
                    )
                    Zp = data["cell_Z"][:, [cols.index(c) for c in self._cov_purchase]]
                    log_alpha_c = log_alpha_c - pt.dot(Zp, beta_p)
                if self._cov_dropout:
                    beta_d = pm.Normal(
                        "beta_dropout", cp["mu"], cp["sigma"], shape=len(self._cov_dropout)
                    )
                    Zd = data["cell_Z"][:, [cols.index(c) for c in self._cov_dropout]]
                    log_a_c = log_a_c + pt.dot(Zd, beta_d)
                loglik = bgnbd_log_likelihood_pt(
                    r[g], pt.exp(log_alpha_c), pt.exp(log_a_c), b[g], data, fused=fused
                )
            pm.Potential("bgnbd_loglik", loglik)
        return model

    # ---- per-customer parameters (groups and covariates) --------------------------------------
    def customer_params(self, summary, draws=None):
        """``{r, alpha, a, b}`` arrays of shape (n_draws, n_customers) (or (n_draws, 1)).

        Each customer gets its group's column of ``draws`` (unseen groups: the ``NEW_GROUP``
        population column); covariates scale ``alpha`` and ``a`` per customer.
        """
        params = super().customer_params(summary, draws)
        if not self._covariate_columns():
            return params
        draws = self.point_draws() if draws is None else draws
        Z = self._covariate_matrix(summary)
        cols = self._covariate_columns()
        grouped = self.groups_ is not None
        for name, target, sign in (("beta_purchase", "alpha", -1.0), ("beta_dropout", "a", 1.0)):
            labels = self._coefficient_labels(name)
            if not labels:
                continue
            keys = [(f"{name}[{c}]", "") if grouped else f"{name}[{c}]" for c in labels]
            coef = draws.loc[:, keys].to_numpy(dtype=float)  # (n_draws, k)
            shift = coef @ Z[:, [cols.index(c) for c in labels]].T  # (n_draws, n_customers)
            params[target] = params[target] * np.exp(sign * shift)
        return params

    def expected_purchases_new_customer(self, t, group=None) -> float | np.ndarray:
        """E[X(t)] for a newly acquired customer (FHL 2005 eq. (9)) at the posterior means.

        ``group``: that group's parameters; default (or a group unseen in fitting) the typical
        group, ``params_``. Covariates are taken at 0.
        """
        self._check_fitted()
        point = self.point_draws()
        if self.groups_ is None:
            params = {n: point[n].to_numpy(float)[:, None] for n in self.param_names}
        else:
            label = group if group in self.groups_ else NEW_GROUP
            params = {n: point[(n, label)].to_numpy(float)[:, None] for n in self.param_names}
        t_model = (
            np.asarray([self._to_model_time(v) for v in t], dtype=float)
            if np.ndim(t)
            else self._to_model_time(t)
        )
        values = np.asarray(self._math_expected_purchases_new_customer(params, t_model))[0]
        return values if np.ndim(t) else float(np.ravel(values)[0])

    def predict_draws(
        self, summary, quantity: str = "expected_purchases", t=None, n: int = 200, seed=None
    ) -> pd.DataFrame:
        """Per-draw predictions: DataFrame indexed by customer_id, a column per posterior draw.

        ``quantity``: "expected_purchases" (needs ``t``) or "probability_alive". Each customer
        uses its own group's parameters in every draw.
        """
        self._check_fitted()
        validate_summary(summary)
        self._check_unit(summary)
        params = self.customer_params(summary, self.param_draws(n, seed=seed))
        x, t_x, T = summary_arrays(summary)
        if quantity == "expected_purchases":
            if t is None:
                raise ValueError("quantity='expected_purchases' needs a horizon t")
            values = self._math_expected_purchases(params, x, t_x, T, self._to_model_time(t))
        elif quantity == "probability_alive":
            values = self._math_probability_alive(params, x, t_x, T)
        else:
            raise ValueError(
                f"quantity must be 'expected_purchases' or 'probability_alive', got {quantity!r}"
            )
        values = np.broadcast_to(np.asarray(values), (n, len(summary)))
        return pd.DataFrame(values.T, index=summary.index)

    # ---- prior and posterior predictive checks -----------------------------------------------
    def _prior_group_params(self, n: int, rng) -> dict[str, np.ndarray]:
        """(n, n_groups) parameter draws from the prior."""
        n_groups = len(self.groups_) if self.groups_ else 1
        out = {}
        for name in self.param_names:
            pri = self.priors_[name]
            mu = rng.normal(pri["mu"], pri["sigma"], size=(n, 1))
            if self.hierarchical_:
                sigma = np.abs(rng.normal(0.0, pri["group_sigma"], size=(n, 1)))
                out[name] = np.exp(mu + sigma * rng.standard_normal((n, n_groups)))
            else:
                out[name] = np.repeat(np.exp(mu), n_groups, axis=1)
        return out

    def predictive_check(
        self,
        summary: pd.DataFrame,
        kind: str = "posterior",
        n_draws: int = 100,
        max_frequency: int = 7,
        interval: float = 0.9,
        seed=None,
    ) -> pd.DataFrame:
        """Simulated vs observed histogram of ``frequency`` per group.

        For each of ``n_draws`` parameter draws (posterior, or prior with ``kind="prior"``) every
        customer's repeat-purchase count in (0, T] is simulated from the BG/NBD story: ``x =
        min(N, J)`` with ``N ~ Poisson(lambda T)`` purchases of the unstopped process and ``J ~
        Geometric(p)`` the purchase after which the customer drops out. Returns a DataFrame
        indexed by (group, frequency bin ``0..max_frequency``, the last bin meaning "or more")
        with the observed count and the simulated mean and ``interval`` range. Covariates are
        ignored (taken at 0) in the prior check.
        """
        self._check_fitted()
        validate_summary(summary)
        self._check_unit(summary)
        if kind not in ("posterior", "prior"):
            raise ValueError(f"kind must be 'posterior' or 'prior', got {kind!r}")
        rng = np.random.default_rng(seed)
        x, _, T = summary_arrays(summary)
        codes = self._group_codes(summary, fitting=False)
        if kind == "posterior":
            params = self.customer_params(summary, self.param_draws(n_draws, seed=rng))
            params = {k: np.broadcast_to(v, (n_draws, len(summary))) for k, v in params.items()}
        else:
            prior = self._prior_group_params(n_draws, rng)
            idx = np.where(codes < 0, 0, codes)
            params = {k: v[:, idx] for k, v in prior.items()}
        lam = rng.gamma(params["r"], 1.0 / params["alpha"])
        p = rng.beta(params["a"], params["b"])
        n_events = rng.poisson(lam * T)
        dropout = rng.geometric(np.clip(p, 1e-300, 1.0))
        sim = np.minimum(n_events, dropout)
        bins = np.minimum(sim, max_frequency)
        obs_bins = np.minimum(x, max_frequency).astype(int)
        labels = (
            np.array(["(all)"], dtype=object)[np.zeros(len(summary), int)]
            if self.groups_ is None
            else summary[self.group].to_numpy()
        )
        rows = []
        lo_q, hi_q = 0.5 - interval / 2, 0.5 + interval / 2
        for label in pd.unique(labels):
            mask = labels == label
            counts = np.stack(
                [np.bincount(bins[d, mask], minlength=max_frequency + 1) for d in range(n_draws)]
            )
            observed = np.bincount(obs_bins[mask], minlength=max_frequency + 1)
            for k in range(max_frequency + 1):
                rows.append(
                    {
                        "group": label,
                        "frequency": k,
                        "observed": int(observed[k]),
                        "simulated_mean": float(counts[:, k].mean()),
                        "simulated_lower": float(np.quantile(counts[:, k], lo_q)),
                        "simulated_upper": float(np.quantile(counts[:, k], hi_q)),
                    }
                )
        return pd.DataFrame(rows).set_index(["group", "frequency"])

    def plot_predictive_check(self, summary, kind: str = "posterior", ax=None, **kwargs):
        """Bar chart of :meth:`predictive_check`: observed bars, simulated mean and range."""
        import matplotlib.pyplot as plt

        table = self.predictive_check(summary, kind=kind, **kwargs)
        groups = table.index.get_level_values(0).unique()
        if ax is None:
            _, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3), squeeze=False)
            axes = axes[0]
        else:
            axes = np.atleast_1d(ax)
        for axis, label in zip(axes, groups, strict=False):
            sub = table.loc[label]
            k = sub.index.to_numpy()
            axis.bar(k, sub["observed"], color="0.8", label="observed")
            axis.errorbar(
                k,
                sub["simulated_mean"],
                yerr=[
                    sub["simulated_mean"] - sub["simulated_lower"],
                    sub["simulated_upper"] - sub["simulated_mean"],
                ],
                fmt="o",
                color="C0",
                label=f"{kind} predictive",
            )
            axis.set_title(f"{self.group or 'all'} = {label}")
            axis.set_xlabel("repeat purchases (last bin: or more)")
        axes[0].set_ylabel("customers")
        axes[0].legend()
        return axes
