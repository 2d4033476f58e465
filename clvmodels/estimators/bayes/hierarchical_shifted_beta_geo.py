"""Bayesian hierarchical sBG in PyMC: partial pooling of (alpha, beta) across cohorts or plans.

Model
-----
Within group ``g`` (an acquisition cohort, a plan, a region) the shifted-beta-geometric model of
Fader & Hardie (2007), "How to project customer retention", *Journal of Interactive Marketing*
21(1) ("FH 2007"), holds with the group's own ``(alpha_g, beta_g)``: a subscriber's churn
probability per period is ``theta ~ Beta(alpha_g, beta_g)``, integrated out analytically, so a
customer with ``tenure`` whole periods completed contributes (FH 2007, eqs. 5-8)::

    log L = log B(alpha_g + churned, beta_g + tenure - churned) - log B(alpha_g, beta_g)

(``P(T = tenure)`` for a churned customer, ``S(tenure)`` for an active one). That formula is
:func:`clvmodels.families.shifted_beta_geo.log_likelihood`, written once: this module passes it
PyTensor's log-beta function, so the PyMC model evaluates exactly the family's likelihood (the
tests check the two against each other).

The group values are drawn on the log scale from a population distribution,
``log alpha_g ~ N(mu_alpha, sigma_alpha)``, ``log beta_g ~ N(mu_beta, sigma_beta)``, written
non-centred by default, with the conventions, priors-as-configuration, samplers, diagnostics,
draws and model files of every Bayesian model here (:mod:`clvmodels.estimators.bayes.bayesian`).
A cohort with few subscribers is pulled toward the population (``exp(mu)``); a cohort of
thousands keeps its own estimate. With no group column (``group=None``) or a single group the
model is a plain Bayesian sBG.

Compression: the likelihood depends on a customer only through ``(group, tenure, churned)``,
so it is evaluated on those distinct rows, weighted by their counts (one ``pm.Potential``): a
cohort observed for ``n`` periods has at most ``2 n + 1`` distinct rows however many subscribers
it has, and a million subscribers sample as fast as a thousand.

Priors (weakly informative, on the log scale; override with ``priors={"alpha": {"mu": ..,
"sigma": .., "group_sigma": ..}, "beta": {...}}``):

=========  ==================================  ==========  ===============
parameter  population mean ``mu = E[log theta]``  prior sd    ``group_sigma``
=========  ==================================  ==========  ===============
alpha      0                                     2           *
beta       0                                     2           *
=========  ==================================  ==========  ===============

A prior sd of 2 on ``log alpha`` and ``log beta`` covers the published sBG estimates (alpha and
beta between about 0.1 and 10; FH 2007, Fader et al. 2018) and keeps the direction where both
grow together (a homogeneous cohort, which a short history cannot tell from a heterogeneous
one) from drifting to infinity. (*) ``group_sigma``, the scale of the half-normal prior of the
between-group sd: 0.5 with fewer than 10 groups, 1 with more (see "Few groups" in
:mod:`clvmodels.estimators.bayes.bayesian`, which also sets the default ``target_accept``).

Duration dependence (``duration_dependence=True``): the beta-discrete-Weibull model of Fader,
Hardie, Liu, Davin & Steenburgh (2018), "'How to project customer retention' revisited",
*Journal of Interactive Marketing* 43 ("FHLDS 2018"), with ``S(t) = B(alpha, beta + t^c) /
B(alpha, beta)``: each group also has its exponent ``c_g``, pooled like ``alpha`` and ``beta``
(prior ``log c: mu = 0, sigma = 1``). Its likelihood is the family's
(:func:`~clvmodels.families.beta_discrete_weibull.log_churn_probability` on churned rows,
:func:`~clvmodels.families.shifted_beta_geo.log_survival` on active ones, FHLDS 2018 eqs. 4-5)
with PyTensor's functions, and the predictions are those of
:class:`~clvmodels.families.beta_discrete_weibull.BetaDiscreteWeibullFamily`.

Predictions (expected renewal payments, survival and retention curves, DERT, the samplers
behind predictive intervals and valuation) are those of the sBG family
(:class:`clvmodels.families.shifted_beta_geo.ShiftedBetaGeoFamily`) at each customer's group
parameters, per posterior draw.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from clvmodels.errors import InputError
from clvmodels.estimators.bayes.bayesian import (
    NEW_GROUP,
    BayesianModel,
    log_normal_hierarchy,
    log_normal_pair,
)
from clvmodels.estimators.mle import PurchasePredictions
from clvmodels.families.beta_discrete_weibull import (
    BetaDiscreteWeibullFamily,
    log_churn_probability,
)
from clvmodels.families.shifted_beta_geo import (
    ShiftedBetaGeoFamily,
    log_likelihood,
    log_survival,
)
from clvmodels.optimize import compress_rows
from clvmodels.validation import check_weights

__all__ = [
    "HierarchicalShiftedBetaGeo",
    "bdw_log_likelihood_pt",
    "compress_subscriptions",
    "sbg_log_likelihood_pt",
]


def compress_subscriptions(codes, tenure, churned, weights=None) -> dict[str, Any]:
    """The distinct ``(group, tenure, churned)`` rows with their counts (summed ``weights``
    when given; rows of weight 0 dropped): ``group`` (int codes), ``tenure``, ``churned``,
    ``counts``, ``n_rows`` and ``n_customers``."""
    group, tenure_u, churned_u, counts = compress_rows(
        np.asarray(codes, dtype=float), tenure, churned, weights=weights
    )
    keep = counts > 0
    group, tenure_u, churned_u, counts = (v[keep] for v in (group, tenure_u, churned_u, counts))
    return {
        "group": group.astype(np.int64),
        "tenure": tenure_u,
        "churned": churned_u,
        "counts": counts,
        "n_rows": len(counts),
        "n_customers": float(counts.sum()),
    }


def sbg_log_likelihood_pt(alpha, beta, data: dict[str, Any]):
    """Total sBG log-likelihood of compressed rows (from :func:`compress_subscriptions`) as a
    PyTensor scalar: the family's :func:`~clvmodels.families.shifted_beta_geo.log_likelihood`
    with PyTensor's log-beta function, at each row's group parameters (``alpha``, ``beta`` are
    vectors over groups), weighted by the rows' counts."""
    import pytensor.tensor as pt
    from pytensor.tensor.special import betaln

    g = data["group"]
    per_row = log_likelihood(alpha[g], beta[g], data["tenure"], data["churned"], betaln=betaln)
    return pt.dot(data["counts"], per_row)


def bdw_log_likelihood_pt(alpha, beta, c, data: dict[str, Any]):
    """Total beta-discrete-Weibull log-likelihood of compressed rows as a PyTensor scalar: the
    family's :func:`~clvmodels.families.beta_discrete_weibull.log_churn_probability` on the
    churned rows and :func:`~clvmodels.families.shifted_beta_geo.log_survival` on the active
    ones (Fader et al. 2018, eqs. 4-5), with PyTensor's log-beta and ``log1mexp``, at each row's
    group parameters (vectors over groups), weighted by the rows' counts."""
    import pytensor.tensor as pt
    from pytensor.tensor.special import betaln

    gone = data["churned"] > 0
    total = 0.0
    for rows, churned in ((gone, True), (~gone, False)):
        if not rows.any():
            continue
        g, tenure = data["group"][rows], data["tenure"][rows]
        if churned:
            per_row = log_churn_probability(
                alpha[g], beta[g], c[g], tenure, betaln=betaln, log1mexp=pt.log1mexp
            )
        else:
            per_row = log_survival(alpha[g], beta[g], tenure, c[g], betaln=betaln)
        total = total + pt.dot(data["counts"][rows], per_row)
    return total


class HierarchicalShiftedBetaGeo(PurchasePredictions, BayesianModel):
    """Bayesian sBG (or beta-discrete-Weibull) with partial pooling across cohorts or plans.

    The fitted model has the surface of every Bayesian model here (``idata_``, ``params_`` (the
    typical group's parameters ``exp(mu)``), ``summary()``, ``param_draws`` with ``(parameter,
    group)`` columns and a ``NEW_GROUP`` column for unseen groups, ``customer_params``,
    ``save``/``load``, convergence warnings) and the family's predictions at each subscriber's
    group parameters, so ``clv.lifetime_value(model, clv.SubscriptionPrice(...).fit(table),
    table, ...)`` values subscribers with intervals over posterior draws and
    :func:`clvmodels.subscriptions.project_survivors` projects survivors per cohort.

    Parameters
    ----------
    group : str or None
        Column of the subscription table naming each subscriber's group; default ``"cohort"``
        (the acquisition cohort that :func:`~clvmodels.subscriptions.subscription_table` and
        :func:`~clvmodels.subscriptions.table_from_survivors` write), e.g. ``"plan"``. ``None``
        (or a single group): a plain Bayesian sBG.
    priors : dict, optional
        Overrides of the log-scale priors (see the module docstring), e.g.
        ``{"beta": {"group_sigma": 1.0}}`` when the groups are known to differ by more than a
        factor of about e.
    centered : bool or "auto"
        As in :class:`~clvmodels.estimators.bayes.hierarchical_beta_geo.HierarchicalBetaGeo`:
        "auto" (default) is centred only with at least 10 groups of at least 2,000 subscribers.
    duration_dependence : bool
        ``True``: the beta-discrete-Weibull model
        (:class:`~clvmodels.families.beta_discrete_weibull.BetaDiscreteWeibullFamily`, Fader et
        al. 2018) with its duration exponent ``c`` per group, pooled like ``alpha`` and ``beta``
        (prior ``log c ~ N(0, 1)``; a tight ``priors={"c": {"group_sigma": 0.05}}`` makes it
        nearly shared). Default ``False``: sBG (``c = 1``).

    Examples
    --------
    The two cohorts of Fader & Hardie (2007), in a short run:

    >>> import clvmodels as clv
    >>> table = clv.subscriptions.table_from_survivors(
    ...     {"regular": [1000, 631, 468, 382, 326, 289, 262, 241],
    ...      "highend": [1000, 869, 743, 653, 593, 551, 517, 491]}, period="Y")
    >>> import warnings
    >>> with warnings.catch_warnings():  # so short a run may warn about convergence
    ...     warnings.simplefilter("ignore")
    ...     model = HierarchicalShiftedBetaGeo(group="cohort").fit(
    ...         table, draws=200, tune=200, chains=2, random_seed=1, progressbar=False)
    >>> curves = model.survival_curves(range(13), draws=100, seed=0)  # per cohort
    >>> sorted(curves.index.get_level_values("group").unique())
    ['__new__', 'highend', 'regular']
    """

    family_class: ClassVar[type[ShiftedBetaGeoFamily]] = ShiftedBetaGeoFamily
    _default_priors: ClassVar[dict[str, dict[str, float | None]]] = {
        "alpha": {"mu": 0.0, "sigma": 2.0, "group_sigma": None},
        "beta": {"mu": 0.0, "sigma": 2.0, "group_sigma": None},
    }

    def __init__(
        self,
        group: str | None = "cohort",
        priors: dict[str, dict[str, float]] | None = None,
        centered: bool | str = "auto",
        duration_dependence: bool = False,
    ):
        super().__init__(group=group, priors=priors, centered=centered)
        self._fit_weights = None
        if not isinstance(duration_dependence, bool):
            raise ValueError(
                f"duration_dependence must be True or False, got {duration_dependence!r}"
            )
        self.duration_dependence = duration_dependence
        if duration_dependence:
            # the beta-discrete-Weibull family and the prior of its exponent, for this instance
            self.family_class = BetaDiscreteWeibullFamily
            self._default_priors = type(self)._default_priors | {
                "c": {"mu": 0.0, "sigma": 1.0, "group_sigma": None}
            }

    def _settings(self) -> dict[str, Any]:
        return super()._settings() | {"duration_dependence": self.duration_dependence}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.family_ = self.family_class()

    # ---- fitting -------------------------------------------------------------------------------
    def fit(self, table: pd.DataFrame, weights=None, **settings):
        """Sample the posterior; return ``self``. ``settings`` (``draws``, ``tune``, ``chains``,
        ``sampler``, ``random_seed``, ``target_accept``, ...) are those of
        :meth:`clvmodels.estimators.bayes.bayesian.BayesianModel.fit`.

        ``weights`` (optional, one per row): each row counts as that many subscribers, e.g.
        ``weights=table["customers"]`` for a compressed table from
        ``table_from_survivors(..., expand=False)``; ``n_customers_`` and the group sizes of
        :meth:`summary` are then the summed weights.
        """
        self._fit_weights = check_weights(weights, len(table))
        try:
            super().fit(table, **settings)
        finally:
            weights, self._fit_weights = self._fit_weights, None
        if weights is not None:
            codes = self._group_codes(table, fitting=False)
            sizes = np.bincount(codes, weights=weights, minlength=len(self.groups_ or [0]))
            self.n_customers_ = float(weights.sum())
            if self.groups_ is not None:
                self._group_sizes_ = dict(zip(self.groups_, sizes.tolist(), strict=True))
        return self

    def _validate(self, table: pd.DataFrame) -> pd.DataFrame:
        family = self.family_class()
        family.validate_summary(table)
        problems = family.identification_problems(family.fit_rows(table, self._fit_weights))
        if problems:
            raise InputError(
                f"{type(self).__name__} cannot be fitted on this table: "
                + "; ".join(problems)
                + ". Fix: fit on subscribers observed over at least two periods, some of whom "
                "churned."
            )
        return table

    def _prepare_data(self, table: pd.DataFrame, group_codes: np.ndarray) -> dict[str, Any]:
        tenure, churned = self.family_class.customer_arrays(table)
        return compress_subscriptions(group_codes, tenure, churned, self._fit_weights)

    def _build_model(self, data: dict[str, Any], coords: dict[str, list]):
        import pymc as pm
        import pytensor.tensor as pt

        with pm.Model(coords=coords) as model:
            log_alpha, log_beta = log_normal_pair(
                pm, "alpha", "beta", self.priors_, self.hierarchical_, self.centered_
            )
            alpha, beta = pt.atleast_1d(pt.exp(log_alpha)), pt.atleast_1d(pt.exp(log_beta))
            if not self.duration_dependence:
                pm.Potential("sbg_loglik", sbg_log_likelihood_pt(alpha, beta, data))
            else:
                log_c = log_normal_hierarchy(
                    pm, "c", self.priors_["c"], self.hierarchical_, self.centered_
                )
                c = pt.atleast_1d(pt.exp(log_c))
                pm.Potential("bdw_loglik", bdw_log_likelihood_pt(alpha, beta, c, data))
        return model

    # ---- per-group curves and new customers ---------------------------------------------------
    def _group_labels(self) -> list:
        return [None] if self.groups_ is None else [*self.groups_, NEW_GROUP]

    def _group_params(self, draws: pd.DataFrame, label) -> dict[str, np.ndarray]:
        """``{name: (n_draws, 1)}`` of one group (``label``; None when ungrouped)."""
        return {
            name: draws[name if label is None else (name, label)].to_numpy(dtype=float)[:, None]
            for name in self.param_names
        }

    def _curves(self, t, draws, interval, seed, fn, name) -> pd.DataFrame:
        self.check_fitted()
        periods = np.atleast_1d(np.asarray(t, dtype=float))
        point = self.point_draws()
        sampled = self.param_draws(int(draws), seed=seed) if draws else None
        frames = []
        for label in self._group_labels():
            values = np.broadcast_to(
                fn(self._group_params(point, label), periods), (1, len(periods))
            )
            frame = pd.DataFrame({name: values[0]}, index=pd.Index(periods, name="period"))
            if sampled is not None:
                values = np.broadcast_to(
                    fn(self._group_params(sampled, label), periods), (len(sampled), len(periods))
                )
                frame["lower"], frame["upper"] = np.quantile(
                    values, [(1 - interval) / 2, (1 + interval) / 2], axis=0
                )
            frames.append(frame)
        labels = ["(all)" if label is None else label for label in self._group_labels()]
        out = pd.concat(frames, keys=labels, names=["group", "period"])
        out.attrs.update({"interval": interval, "time_unit": self.time_unit_})
        return out

    def survival_curves(
        self, t, draws: int = 200, interval: float = 0.9, seed=None
    ) -> pd.DataFrame:
        """``S(t)``, the share of a new subscriber cohort still subscribed after each of ``t``
        whole periods, per group: at the posterior-mean parameters (``survival``) with the
        equal-tailed ``interval`` over ``draws`` posterior draws (``lower``, ``upper``; none with
        ``draws=0``). Indexed by ``(group, period)``; the ``NEW_GROUP`` rows are a new group
        drawn from the population (e.g. next year's cohort)."""
        return self._curves(t, draws, interval, seed, self.family_.survival, "survival")

    def retention_curves(
        self, t, draws: int = 200, interval: float = 0.9, seed=None
    ) -> pd.DataFrame:
        """The retention rate ``r_t = S(t) / S(t-1)`` for each period ``t >= 1``, per group, with
        intervals as :meth:`survival_curves`."""
        return self._curves(t, draws, interval, seed, self.family_.retention, "retention")

    def expected_purchases_new_customer(self, t, group=None) -> float | np.ndarray:
        """Expected renewal payments in the first ``t`` periods of a subscriber who has just
        paid for their first period, at the posterior means of ``group`` (default, or a group
        unseen in fitting: the typical group, ``params_``)."""
        self.check_fitted()
        point = self.point_draws()
        if self.groups_ is None:
            label = None
        else:
            label = group if group in self.groups_ else NEW_GROUP
        return self._new_customer_purchases(self._group_params(point, label), t)

    def predict_draws(self, table: pd.DataFrame, t, n: int = 200, seed=None) -> pd.DataFrame:
        """Expected renewal payments in the next ``t`` periods per posterior draw: a DataFrame
        indexed like ``table``, a column per draw; each subscriber with their group's
        parameters."""
        params, customer = self._prepare(table, self.param_draws(n, seed=seed))
        values = self.family_.expected_purchases(params, *customer, self.to_model_time(t))
        values = np.broadcast_to(np.asarray(values), (n, len(table)))
        return pd.DataFrame(values.T, index=table.index)
