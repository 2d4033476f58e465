"""The fused BG/NBD likelihood of the hierarchical model: a fast numba kernel and its pytensor Op.

The BG/NBD math is written once, in :mod:`clvmodels.families.bg_nbd`
(:func:`~clvmodels.families.bg_nbd.log_likelihood`, FHL 2005 eq. (6)). What this module adds is
a *fast kernel* of the same total over compressed (group, x, t_x, T) rows
(:func:`clvmodels.estimators.bayes.hierarchical_beta_geo.compress_bgnbd`), with one set of
parameters per group, that returns the value and its gradient in one compiled pass
(:func:`bgnbd_kernel`), and the pytensor Op that puts it in a PyMC model
(:class:`BGNBDLogLikelihood`). The tests check the kernel, value and gradient, against the
family's log-likelihood and its analytic gradient.

The Op is a plain class: each model builds its own instance (equal instances, since the Op has
no properties, so pytensor merges and caches them alike). Its numba implementation (nutpie's
back-end) is registered with pytensor when this module is imported, with a cache key derived
from the kernel's source: the compiled model function is cached on disk while the data it
embeds stay small (:data:`CACHE_DATA_MAX_BYTES`). On the other back-ends (PyMC's own NUTS,
ADVI, pathfinder) ``perform`` calls the same kernel compiled by numba. This module imports
pytensor and numba; :mod:`~clvmodels.estimators.bayes.hierarchical_beta_geo` imports it only
when a model is built.
"""

from __future__ import annotations

import hashlib
import inspect
from types import MappingProxyType

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type, grad_not_implemented
from pytensor.graph.basic import Apply, Constant
from pytensor.graph.op import Op

__all__ = [
    "BGNBDLogLikelihood",
    "CACHE_DATA_MAX_BYTES",
    "KERNEL_DATA",
    "KERNEL_INDEX",
    "bgnbd_kernel",
    "fast_kernel",
]

#: fields of ``compress_bgnbd`` the kernel reads, in its argument order
KERNEL_DATA = (
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
#: the integer (index) fields among :data:`KERNEL_DATA`
KERNEL_INDEX = frozenset({"gx_group", "tau_group", "pos_gx", "pos_T", "pos_tx"})

CACHE_DATA_MAX_BYTES = 1 << 20
"""Largest compressed data (bytes) whose compiled model function is cached on disk."""

# numpy's error model: a division by zero (r or alpha underflowing to 0 at an extreme proposal)
# gives inf / nan, which the sampler rejects, instead of raising
KERNEL_OPTIONS = MappingProxyType({"cache": True, "error_model": "numpy"})


def bgnbd_kernel(
    r, alpha, a, b, gx_group, gx_x, gx_w, tau_group, tau, zero_tau_w, pos_gx, pos_T, pos_tx, pos_w
):
    """Compressed BG/NBD log-likelihood (FHL 2005 eq. (6)) and its gradient in one pass.

    ``r, alpha, a, b`` hold one value per group (or covariate cell); the other arguments are the
    tables of ``compress_bgnbd``. Returns ``(total, d/dr, d/dalpha, d/da, d/db)``. Plain loops
    for numba (:data:`fast_kernel`); the reference is
    :func:`clvmodels.families.bg_nbd.log_likelihood`. No special function is needed:

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
        # softplus(d) = max(d, 0) + log(1 + e^-|d|) and sigmoid(d), without overflow;
        # log(1 + e) rather than log1p(e) (faster): for e <= 1 the two differ by < 2.3e-16
        e = np.exp(-abs(d))
        one_plus_e = 1.0 + e
        softplus = max(d, 0.0) + np.log(one_plus_e)
        sig = (1.0 if d >= 0.0 else e) / one_plus_e
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


#: :func:`bgnbd_kernel` compiled by numba (lazily, at its first call; cached on disk)
fast_kernel = numba.njit(**KERNEL_OPTIONS)(bgnbd_kernel)

# the kernel's module, source and options enter the cache key: a changed or moved kernel never
# meets a stale entry
KERNEL_VERSION = hashlib.sha256(
    f"{__name__}\n{inspect.getsource(bgnbd_kernel)}{sorted(KERNEL_OPTIONS.items())!r}".encode()
).hexdigest()[:16]


class BGNBDLogLikelihood(Op):
    """The total BG/NBD log-likelihood of compressed rows and its gradient, as one Op.

    Inputs ``(r, alpha, a, b, *tables)`` with the tables of :data:`KERNEL_DATA`; outputs
    ``(value, d/dr, d/dalpha, d/da, d/db)``. Its gradient is the stored outputs, so the
    log-density graph is a handful of nodes and no special function appears in it.
    """

    __props__ = ()
    never_raises = True  # non-finite values instead of exceptions (nutpie_compile.may_raise)

    def make_node(self, r, alpha, a, b, *data):
        params = [pt.as_tensor_variable(v) for v in (r, alpha, a, b)]
        inputs = params + [pt.as_tensor_variable(v) for v in data]
        outputs = [pt.dscalar(), *(pt.dvector() for _ in params)]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        total, *grads = fast_kernel(*inputs)
        output_storage[0][0] = np.asarray(total, dtype=np.float64)
        for storage, grad in zip(output_storage[1:], grads, strict=True):
            storage[0] = grad

    def infer_shape(self, fgraph, node, shapes):
        return [(), *shapes[:4]]

    def L_op(self, inputs, outputs, output_grads):
        gz = output_grads[0]
        if not all(isinstance(og.type, DisconnectedType) for og in output_grads[1:]):
            return [grad_not_implemented(self, k, v) for k, v in enumerate(inputs)]
        return [gz * grad for grad in outputs[1:]] + [disconnected_type()] * len(KERNEL_DATA)

    def connection_pattern(self, node):
        return [[True] * 5] * 4 + [[False] * 5] * len(KERNEL_DATA)


def numba_loglik(op, node=None, **kwargs):
    """The numba implementation of :class:`BGNBDLogLikelihood` for pytensor's numba back-end
    (nutpie), with a disk-cache key while the data embedded in the graph stay small."""

    @numba.njit
    def bgnbd_loglik(r, alpha, a, b, gx_g, gx_x, gx_w, tau_g, tau, zero_w, pg, pT, ptx, pw):
        total, g_r, g_alpha, g_a, g_b = fast_kernel(
            r, alpha, a, b, gx_g, gx_x, gx_w, tau_g, tau, zero_w, pg, pT, ptx, pw
        )
        return np.asarray(total), g_r, g_alpha, g_a, g_b

    # the compiled model function embeds the data (graph constants): cached on disk only while
    # that stays small, so large fits leave no large cache files behind
    data_bytes = sum(
        v.data.nbytes for v in (node.inputs if node else []) if isinstance(v, Constant)
    )
    if data_bytes > CACHE_DATA_MAX_BYTES:
        return bgnbd_loglik, None
    return bgnbd_loglik, default_hash_key_from_props(op, kernel=KERNEL_VERSION)


try:  # pytensor's numba dispatch with cache keys (pytensor >= 2.31)
    from pytensor.link.numba.dispatch.basic import (
        default_hash_key_from_props,
        register_funcify_and_cache_key,
    )
except ImportError:  # pragma: no cover - an older pytensor: perform() on every back-end
    pass
else:
    register_funcify_and_cache_key(BGNBDLogLikelihood)(numba_loglik)
