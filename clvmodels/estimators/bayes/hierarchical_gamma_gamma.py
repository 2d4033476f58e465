"""Bayesian hierarchical Gamma-Gamma spend model in PyMC: partial pooling of (p, q, v).

Within group ``g`` the Gamma-Gamma model of Colombo & Jiang (1999) and Fader, Hardie & Lee
(2005), "RFM and CLV: Using Iso-Value Curves", *JMR* 42(4), holds with the group's own
``(p_g, q_g, v_g)``, drawn on the log scale from a population distribution (non-centred by
default, see :mod:`clvmodels.estimators.bayes.bayesian`). The customer's latent spend rate ``nu ~
Gamma(q, v)`` is integrated out: the mean spend ``m`` of ``x >= 1`` repeat transactions has the
density of Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value", eq. (3)::

    f(m | p, q, v, x) = G(p x + q) / (G(p x) G(q)) v^q m^(p x - 1) x^(p x) / (v + x m)^(p x + q)

written here in pytensor, in log space, as in
:func:`clvmodels.families.gamma_gamma.log_likelihood` (the model's math, written once; PyMC needs
it as a pytensor graph, which the tests check against the family's). Customers without repeat
purchases carry no information about spend and are left out of the fit (they get their group's
population mean ``p v / (q - 1)`` from :meth:`expected_spend`). The likelihood is evaluated on
the distinct (group, x, m) rows with counts as weights; the gamma functions once per distinct
(group, x).

Priors (weakly informative, on the log scale; override with ``priors={"p": {"mu": ..,
"sigma": .., "group_sigma": ..}, ...}``):

=========  ==============================================  ========  ===============
parameter  population mean ``mu = E[log theta]``             prior sd  ``group_sigma``
=========  ==============================================  ========  ===============
p          0                                                 2         *
q          1 (q near e, so the mean spend p v/(q-1) exists)  1.5       *
v          ``log(2 * mean m)`` (the scale of spend)          2         *
=========  ==============================================  ========  ===============

(*) ``group_sigma``, the scale of the half-normal prior of the between-group sd of ``log theta``:
by default 0.5 with fewer than 10 groups and 1 with more (few groups identify that sd weakly,
see "Few groups" in :mod:`clvmodels.estimators.bayes.bayesian`).

Predictions are those of the Gamma-Gamma family
(:class:`clvmodels.families.gamma_gamma.GammaGammaFamily`) at each customer's parameters.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from clvmodels.estimators.bayes.bayesian import BayesianModel, log_normal_hierarchy
from clvmodels.estimators.mle import SpendPredictions
from clvmodels.families.gamma_gamma import GammaGammaFamily
from clvmodels.optimize import compress_rows
from clvmodels.validation import validate_summary

__all__ = ["HierarchicalGammaGamma", "gamma_gamma_log_likelihood_pt", "compress_gamma_gamma"]


def compress_gamma_gamma(codes, x, m) -> dict[str, Any]:
    """Distinct (group, x, m) rows of repeat customers with counts, and (group, x) tables."""
    g_u, x_u, m_u, counts = compress_rows(np.asarray(codes, float), x, m)
    g_u = g_u.astype(np.int64)
    gx, inv = np.unique(np.column_stack([g_u, x_u]), axis=0, return_inverse=True)
    inv = inv.ravel()
    return {
        "n_rows": len(x_u),
        "n_customers": float(counts.sum()),
        "gx_group": gx[:, 0].astype(np.int64),
        "gx_x": gx[:, 1].astype(float),
        "gx_w": np.bincount(inv, weights=counts, minlength=len(gx)),
        "row_gx": inv,
        "row_group": g_u,
        "x": x_u,
        "m": m_u,
        "w": counts,
    }


def gamma_gamma_log_likelihood_pt(p, q, v, data: dict[str, Any]):
    """Total Gamma-Gamma log-likelihood (FH 2013 eq. (3)) of compressed rows (pytensor).

    ``p, q, v`` are pytensor vectors over groups. Per distinct (group, x):
    ``log G(px+q) - log G(px) - log G(q) + q log v + px log x``; per row:
    ``(px - 1) log m - (px + q) log(v + x m)``.
    """
    import pytensor.tensor as pt

    g = data["gx_group"]
    x = pt.as_tensor_variable(data["gx_x"])
    pg, qg, vg = p[g], q[g], v[g]
    px = pg * x
    per_gx = (
        pt.gammaln(px + qg)
        - pt.gammaln(px)
        - pt.gammaln(qg)
        + qg * pt.log(vg)
        + px * np.log(data["gx_x"])
    )
    i = data["row_gx"]
    px_r = px[i]
    q_r = q[data["row_group"]]
    v_r = v[data["row_group"]]
    per_row = (px_r - 1.0) * np.log(data["m"]) - (px_r + q_r) * pt.log(v_r + data["x"] * data["m"])
    return pt.dot(data["gx_w"], per_gx) + pt.dot(data["w"], per_row)


class HierarchicalGammaGamma(SpendPredictions, BayesianModel):
    """Bayesian Gamma-Gamma spend model with partial pooling across groups (PyMC).

    Parameters
    ----------
    group : str, optional
        Summary column with each customer's group; without it (or with one group) a plain
        Bayesian Gamma-Gamma.
    priors : dict, optional
        Overrides of the log-scale priors (see the module docstring).
    centered : bool or "auto"
        As in :class:`~clvmodels.estimators.bayes.hierarchical_beta_geo.HierarchicalBetaGeo`.

    Examples
    --------
    Spend of two simulated channels, in a short run:

    >>> import clvmodels as clv
    >>> purchases = {g: dict(r=0.8, alpha=5.0, a=0.8, b=2.5) for g in ("web", "store")}
    >>> spend = {"web": dict(p=6.0, q=4.0, v=15.0), "store": dict(p=6.0, q=4.0, v=30.0)}
    >>> summary = clv.simulate.simulate_grouped_beta_geo(
    ...     {"web": 400, "store": 400}, purchases, spend_params=spend, seed=2
    ... ).rename(columns={"group": "channel"})
    >>> import warnings
    >>> with warnings.catch_warnings():  # so short a run may warn about convergence
    ...     warnings.simplefilter("ignore")
    ...     hg = HierarchicalGammaGamma(group="channel").fit(
    ...         summary, draws=200, tune=200, chains=2, random_seed=1, progressbar=False)
    >>> spend_by_customer = hg.expected_spend(summary)  # each with its group's parameters
    >>> bool((spend_by_customer > 0).all())
    True
    """

    family_class: ClassVar[type[GammaGammaFamily]] = GammaGammaFamily
    _default_priors: ClassVar[dict[str, dict[str, float | None]]] = {
        "p": {"mu": 0.0, "sigma": 2.0, "group_sigma": None},
        "q": {"mu": 1.0, "sigma": 1.5, "group_sigma": None},
        "v": {"mu": None, "sigma": 2.0, "group_sigma": None},
    }

    def _validate(self, summary):
        validate_summary(summary, monetary=True)
        # the family's own checks of its fitting rows: repeat customers with positive spend
        self.family_class().fit_rows(summary)
        return summary

    def _resolve_data_priors(self, priors, summary):
        if priors["v"]["mu"] is None:
            x = summary["frequency"].to_numpy(dtype=float)
            m = summary["monetary_value"].to_numpy(dtype=float)
            priors["v"]["mu"] = float(np.log(2.0 * m[x > 0].mean()))
        return priors

    def _prepare_data(self, summary, group_codes):
        x = summary["frequency"].to_numpy(dtype=float)
        m = summary["monetary_value"].to_numpy(dtype=float)
        repeat = x > 0
        if self.groups_ is not None:
            sizes = np.bincount(group_codes[repeat], minlength=len(self.groups_))
            empty = [g for g, n in zip(self.groups_, sizes, strict=True) if n == 0]
            if empty and len(self.groups_) > 1:
                # such a group is still fitted: its parameters come from the population
                self.groups_without_repeat_customers_ = empty
        return compress_gamma_gamma(group_codes[repeat], x[repeat], m[repeat])

    def _build_model(self, data, coords):
        import pymc as pm
        import pytensor.tensor as pt

        with pm.Model(coords=coords) as model:
            logs = {
                name: log_normal_hierarchy(
                    pm, name, self.priors_[name], self.hierarchical_, self.centered_
                )
                for name in self.param_names
            }
            p, q, v = (pt.atleast_1d(pt.exp(logs[n])) for n in self.param_names)
            pm.Potential("gamma_gamma_loglik", gamma_gamma_log_likelihood_pt(p, q, v, data))
        return model

    # ---- predictions (the family's math): expected_spend from SpendPredictions, at each
    # customer's posterior-mean parameters (its group's) ---------------------------------------
    def predict_draws(self, summary: pd.DataFrame, n: int = 200, seed=None) -> pd.DataFrame:
        """Expected spend per transaction per posterior draw: DataFrame indexed by customer_id,
        a column per draw; each customer with its own group's parameters."""
        params, customer = self._prepare(summary, self.param_draws(n, seed=seed))
        values = np.broadcast_to(
            np.asarray(self.family_.expected_spend(params, *customer)), (n, len(summary))
        )
        return pd.DataFrame(values.T, index=summary.index)
