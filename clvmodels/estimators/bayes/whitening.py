"""Per-group whitened coordinates for centred hierarchies of large groups.

When every group has thousands of customers, each group's log-parameters are pinned down by its
own likelihood: their posterior is close to a normal distribution whose centre and shape differ
from group to group (the BG/NBD's ``log r`` and ``log alpha`` are strongly correlated, with
scales that shrink as a group grows). NUTS with a diagonal mass matrix follows such a posterior
with long trajectories. Writing each group's log-parameter vector as

.. math::

    \\log\\theta_g = m_g + L_g z_g,

with ``m_g`` the mode and ``L_g L_g' = H_g^{-1}`` the inverse Hessian (a Laplace approximation)
of the group's log-likelihood plus a wide normal prior, turns it into approximately independent
standard normals in ``z_g``: a linear change of variables with a constant Jacobian, so the model
and its posterior are exactly unchanged (the hierarchical prior is added on ``log theta_g``), only
the coordinates NUTS moves in are better conditioned. This is the "geometry, mass matrix" route
of the performance issue: on 1M customers in 50 groups it halves the leapfrog steps per draw.

:func:`laplace_basis` finds ``m_g`` and ``L_g`` for all groups at once from a function returning
the total log-likelihood and its gradient with respect to every group's parameters (the groups
are independent, so one L-BFGS run and 2K gradient evaluations for the K x K Hessian blocks
serve them all). It returns ``None`` when the mode is not found or a Hessian block is not
positive definite; callers then keep their plain coordinates.
:meth:`LaplaceBasis.relative_widths` says whether the groups are large enough for the basis to
hold across the posterior: measured on simulated BG/NBD groups (population scale 0.3), 50
groups of 20,000 customers have widths of at most 0.35 and sample with no divergence in half
the leapfrog steps, while 10 groups of 2,000 (widths up to 1.27, the dropout parameters barely
identified per group) diverge more in whitened coordinates than in the plain ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

__all__ = ["AUTO_MAX_RELATIVE_WIDTH", "LaplaceBasis", "laplace_basis", "whitened_log_parameters"]

#: relative step of the central differences of the gradient that give the Hessian blocks
HESSIAN_STEP = 1e-4
#: largest :meth:`LaplaceBasis.relative_widths` at which callers whiten by default
AUTO_MAX_RELATIVE_WIDTH = 0.5


@dataclass(frozen=True)
class LaplaceBasis:
    """Per-group mode ``modes`` (G, K) of the log-parameters and Cholesky factors
    ``cholesky`` (G, K, K) of their approximate posterior covariance."""

    modes: np.ndarray
    cholesky: np.ndarray

    def relative_widths(self) -> np.ndarray:
        """Per parameter: the median over groups of the Laplace standard deviation, divided by
        the spread (standard deviation across groups) of the modes.

        Small values mean each group's own data pin its parameters down far more tightly than
        the groups differ: the hierarchical prior (whose scale is about that spread) adds
        little to a group's posterior precision (a width of 0.5 adds about a quarter), which
        stays close to the Laplace approximation whatever the population scale: the whitened
        coordinates are then close to standard normal throughout the posterior. Large values
        mean the prior shapes the groups' posteriors and their shape changes with the
        population scale (the funnel of centred hierarchies), where whitening with a fixed
        basis helps less and can hurt.
        """
        widths = np.sqrt(np.einsum("gij,gij->gi", self.cholesky, self.cholesky))
        spread = self.modes.std(axis=0, ddof=1)
        return np.median(widths, axis=0) / spread


def laplace_basis(
    value_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]],
    start: np.ndarray,
    prior_centre: np.ndarray,
    prior_scale: np.ndarray,
) -> LaplaceBasis | None:
    """Modes and Laplace covariances of independent groups' log-parameters.

    ``value_and_grad(theta)`` takes natural parameters ``theta`` (G, K) and returns the total
    log-likelihood over all groups and its gradient (G, K) with respect to ``theta``. The
    objective is that log-likelihood plus ``sum log N(log theta_gk | prior_centre_k,
    prior_scale_k)`` over the log-parameters, started from ``start`` (G, K, log scale).
    """
    n_groups, n_params = start.shape
    centre = np.broadcast_to(np.asarray(prior_centre, float), (n_params,))
    precision = 1.0 / np.broadcast_to(np.asarray(prior_scale, float), (n_params,)) ** 2

    def gradient(log_theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.exp(log_theta)
        value, grad = value_and_grad(theta)
        value -= 0.5 * float(((log_theta - centre) ** 2 * precision).sum())
        return value, grad * theta - (log_theta - centre) * precision

    def negative(flat: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = gradient(flat.reshape(n_groups, n_params))
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros_like(flat)
        return -value, -grad.ravel()

    result = minimize(
        negative,
        np.asarray(start, float).ravel(),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 5000, "gtol": 1e-8, "ftol": 1e-15},
    )
    modes = result.x.reshape(n_groups, n_params)
    if not np.all(np.isfinite(modes)):
        return None
    # the groups are independent: shifting parameter k of every group at once gives column k
    # of every group's Hessian block
    hessian = np.empty((n_groups, n_params, n_params))
    for k in range(n_params):
        step = np.zeros_like(modes)
        step[:, k] = HESSIAN_STEP
        upper = gradient(modes + step)[1]
        lower = gradient(modes - step)[1]
        hessian[:, :, k] = -(upper - lower) / (2.0 * HESSIAN_STEP)
    hessian = 0.5 * (hessian + np.swapaxes(hessian, 1, 2))
    if not np.all(np.isfinite(hessian)):
        return None
    try:
        np.linalg.cholesky(hessian)  # positive definite: a maximum
        cholesky = np.linalg.cholesky(np.linalg.inv(hessian))
    except np.linalg.LinAlgError:
        return None
    return LaplaceBasis(modes=modes, cholesky=cholesky)


def whitened_log_parameters(pm, names, priors: dict, basis: LaplaceBasis):
    """The centred hierarchy of :func:`~clvmodels.estimators.bayes.bayesian.log_normal_hierarchy`
    for every parameter in ``names``, sampled in the coordinates ``z_g`` of ``basis``.

    Each parameter gets its population mean ``mu_{name}`` and scale ``sigma_{name}`` with the
    same priors as the plain centred form, the per-group values ``log theta_g = m_g + L_g z_g``
    (``z`` is stored as ``z_whitened``, dims ``(group, whitened_parameter)``) with the prior
    ``log theta_gk ~ N(mu_k, sigma_k)`` added as a potential, and a Deterministic ``{name}``
    per parameter (dims ``group``). Returns the log-parameter tensors in the order of ``names``.
    """
    import pytensor.tensor as pt

    z = pm.Flat("z_whitened", dims=("group", "whitened_parameter"))
    log_theta = pt.as_tensor_variable(basis.modes) + (
        pt.as_tensor_variable(basis.cholesky) * z[:, None, :]
    ).sum(axis=-1)
    logs = []
    for k, name in enumerate(names):
        prior = priors[name]
        mu = pm.Normal(f"mu_{name}", mu=prior["mu"], sigma=prior["sigma"])
        sigma = pm.HalfNormal(f"sigma_{name}", sigma=prior["group_sigma"])
        log_k = log_theta[:, k]
        pm.Potential(
            f"group_prior_{name}", pm.logp(pm.Normal.dist(mu=mu, sigma=sigma), log_k).sum()
        )
        pm.Deterministic(name, pt.exp(log_k), dims="group")
        logs.append(log_k)
    return logs
