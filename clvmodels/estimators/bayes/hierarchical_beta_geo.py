"""Bayesian hierarchical BG/NBD in PyMC: partial pooling of (r, alpha, a, b) across groups.

Model
-----
Within group ``g`` the BG/NBD of Fader, Hardie & Lee (2005), "Counting Your Customers the Easy
Way", *Marketing Science* 24(2) ("FHL 2005"), holds with the group's own ``(r_g, alpha_g, a_g,
b_g)``; the group values come from a log-normal population distribution (non-centred by default,
see :mod:`clvmodels.estimators.bayes.bayesian`). Each customer's purchase rate
``lambda ~ Gamma(r, alpha)`` and dropout probability ``p ~ Beta(a, b)`` are integrated out
analytically: a customer with ``x`` repeat purchases, the last at ``t_x``, observed for ``T``,
contributes the marginal likelihood of FHL 2005 eq. (6)::

    L = B(a, b+x)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
        + [x > 0] B(a+1, b+x-1)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x))

so no per-customer latent variable is sampled and the cost is linear in the number of *distinct*
rows. In log space, as in :func:`clvmodels.families.bg_nbd.log_likelihood` (the model's math,
written once; this module adds the hierarchy and the compressed evaluation for PyMC)::

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
fast numba kernel (:mod:`clvmodels.estimators.bayes.fused_bgnbd`; frequencies are whole numbers,
so the gamma-function ratios are rising factorials and no special function is needed), checked
in the tests against the family's log-likelihood and gradient. The same likelihood written as
plain pytensor operations (``fused=False``) is what JAX (numpyro) compiles.

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
r          0                                                        2           *
alpha      ``log(mean T / (mean frequency + 1))`` (time scale)      2           *
a          0                                                        2           *
b          0                                                        2           *
=========  =====================================================  ==========  ===============

``group_sigma`` is the scale of the half-normal prior of the between-group sd of ``log theta``;
(*) by default 0.5 with fewer than 10 groups and 1 with more: with few groups that sd is weakly
identified and a wide prior makes NUTS diverge (apparel by channel, 2 groups: 53-78 divergent
transitions per fit before, 0 now), see "Few groups" in
:mod:`clvmodels.estimators.bayes.bayesian`, which also explains the default
``target_accept`` (0.99 for the non-centred hierarchy).
Predictions are those of the BG/NBD family (:class:`clvmodels.families.bg_nbd.BetaGeoNBDFamily`)
at each customer's parameters.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from clvmodels.errors import InputError, check_columns, describe_rows
from clvmodels.estimators.bayes.bayesian import (
    AUTO_CENTERED_MIN_GROUP,
    NEW_GROUP,
    BayesianModel,
    have_module,
    log_normal_pair,
)
from clvmodels.estimators.bayes.whitening import (
    AUTO_MAX_RELATIVE_WIDTH,
    LaplaceBasis,
    laplace_basis,
    whitened_log_parameters,
)
from clvmodels.estimators.mle import PurchasePredictions
from clvmodels.families.bg_nbd import BetaGeoNBDFamily
from clvmodels.optimize import compress_rows
from clvmodels.simulate import frequency_predictive_check
from clvmodels.validation import summary_arrays, validate_summary

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


def bgnbd_log_likelihood_pt(r, alpha, a, b, data: dict[str, Any], fused: bool = True):
    """Total BG/NBD log-likelihood (FHL 2005 eq. (6)) of compressed rows, as a pytensor scalar.

    ``r, alpha, a, b`` are pytensor vectors over groups (length 1 when ungrouped) and ``data``
    comes from :func:`compress_bgnbd` without covariates. The functions of (group, x) are
    evaluated once per distinct pair, ``log(alpha_g + tau)`` once per distinct (group, time);
    customers without repeat purchases reduce to ``-r log(alpha + T)`` summed per (group, T);
    each repeat-buyer row costs a softplus. ``fused=True`` evaluates the whole likelihood
    and its gradient in one compiled pass (a new
    :class:`~clvmodels.estimators.bayes.fused_bgnbd.BGNBDLogLikelihood` Op running the fast
    numba kernel), so the model graph stays a handful of nodes (fast to compile, cached on
    disk); ``fused=False`` writes it as plain pytensor operations (any back-end, e.g. JAX for
    numpyro).
    """
    import pytensor.tensor as pt
    from pytensor.tensor.special import betaln

    if fused:
        from clvmodels.estimators.bayes.fused_bgnbd import (
            KERNEL_DATA,
            KERNEL_INDEX,
            BGNBDLogLikelihood,
        )

        arrays = [
            np.asarray(data[name], np.int64 if name in KERNEL_INDEX else np.float64)
            for name in KERNEL_DATA
        ]
        value, *_ = BGNBDLogLikelihood()(r, alpha, a, b, *arrays)
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
class HierarchicalBetaGeo(PurchasePredictions, BayesianModel):
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
        (default): centred only with at least 10 groups of at least 2,000 customers each
        (with fewer groups the centred form diverges, see "Few groups" in
        :mod:`clvmodels.estimators.bayes.bayesian`).
    whiten : bool or "auto"
        Sample the centred hierarchy in per-group whitened coordinates
        (:mod:`clvmodels.estimators.bayes.whitening`: each group's log-parameters as its
        Laplace mode plus the Cholesky factor of its Laplace covariance times standard
        coordinates; the model is unchanged, NUTS needs about half the leapfrog steps).
        "auto" (default): when the hierarchy is centred, there are no covariates and every
        group's own data pin its parameters down well within how much the groups differ
        (:meth:`~clvmodels.estimators.bayes.whitening.LaplaceBasis.relative_widths` at most
        0.5: typically tens of thousands of customers per group); it then samples with
        ``target_accept`` 0.65 (near-Gaussian coordinates). ``True`` whitens any centred
        hierarchy without covariates (``ValueError`` otherwise), also where the groups are too
        small for the basis to hold, which can sample worse than the plain form. ``whitened_``
        says whether a fit used it (it falls back to the plain centred form when a group's
        Laplace approximation cannot be formed).

    Examples
    --------
    Two channels of simulated customers (a short run; the defaults are 4 chains x 1000 draws):

    >>> import clvmodels as clv
    >>> truth = {"web": dict(r=0.3, alpha=5.0, a=0.8, b=2.5),
    ...          "store": dict(r=0.6, alpha=5.0, a=0.8, b=2.5)}
    >>> summary = clv.simulate.simulate_grouped_beta_geo({"web": 400, "store": 400}, truth,
    ...                                                 seed=1).rename(columns={"group": "channel"})
    >>> import warnings
    >>> with warnings.catch_warnings():  # so short a run may warn about convergence
    ...     warnings.simplefilter("ignore")
    ...     hb = HierarchicalBetaGeo(group="channel").fit(
    ...         summary, draws=200, tune=200, chains=2, random_seed=1, progressbar=False)
    >>> table = hb.summary()                      # per-group posterior table
    >>> expected = hb.expected_purchases(summary, t="39W")
    >>> bool((expected > 0).all())
    True
    >>> draws = hb.param_draws(100, seed=0)       # (parameter, group) columns, for valuation
    >>> sorted({group for _, group in draws.columns})  # with a new, unseen group
    ['__new__', 'store', 'web']
    """

    family_class: ClassVar[type[BetaGeoNBDFamily]] = BetaGeoNBDFamily
    _default_priors: ClassVar[dict[str, dict[str, float | None]]] = {
        "r": {"mu": 0.0, "sigma": 2.0, "group_sigma": None},
        "alpha": {"mu": None, "sigma": 2.0, "group_sigma": None},
        "a": {"mu": 0.0, "sigma": 2.0, "group_sigma": None},
        "b": {"mu": 0.0, "sigma": 2.0, "group_sigma": None},
        "coefficients": {"mu": 0.0, "sigma": 1.0},
    }

    def __init__(
        self,
        group: str | None = None,
        purchase_covariates: list[str] | None = None,
        dropout_covariates: list[str] | None = None,
        priors: dict[str, dict[str, float]] | None = None,
        centered: bool | str = "auto",
        whiten: bool | str = "auto",
    ):
        super().__init__(group=group, priors=priors, centered=centered)
        self.purchase_covariates = purchase_covariates
        self.dropout_covariates = dropout_covariates
        self.whiten = whiten

    # ---- configuration ------------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        return super()._settings() | {
            "purchase_covariates": self.purchase_covariates,
            "dropout_covariates": self.dropout_covariates,
            "whiten": self.whiten,
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
        basis = self._whitening_basis(data)
        if basis is not None:
            coords = coords | {"whitened_parameter": list(self.param_names)}
        with pm.Model(coords=coords) as model:
            logs = {}
            if basis is not None:
                logs = dict(
                    zip(
                        self.param_names,
                        whitened_log_parameters(pm, self.param_names, pri, basis),
                        strict=True,
                    )
                )
                self.whitened_ = True
            else:
                for first, second in (("r", "alpha"), ("a", "b")):
                    logs[first], logs[second] = log_normal_pair(
                        pm, first, second, pri, self.hierarchical_, self.centered_
                    )
            r, alpha, a, b = (pt.atleast_1d(pt.exp(logs[n])) for n in self.param_names)
            # the JAX back-end (numpyro) needs the plain pytensor likelihood, and the fused one
            # runs a numba kernel
            fused = getattr(self, "sampler_", "nutpie") != "numpyro" and have_module("numba")
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

    def _whitening_basis(self, data: dict[str, Any]) -> LaplaceBasis | None:
        """The per-group Laplace basis of the whitened coordinates, or None (plain form)."""
        if self.whiten not in (True, False, "auto"):
            raise ValueError(f"whiten must be True, False or 'auto', got {self.whiten!r}")
        applicable = self.hierarchical_ and self.centered_ and "cell_group" not in data
        large = min(self._group_sizes_.values(), default=0) >= AUTO_CENTERED_MIN_GROUP
        if self.whiten == "auto" and not large:
            return None  # small groups: the prior matters, no need to look further
        if self.whiten is True and not applicable:
            raise ValueError(
                "whiten=True needs a centred hierarchy (several groups, centered=True or "
                "'auto' with many large groups) and no covariates; use whiten='auto'"
            )
        if not self.whiten or not applicable:
            return None
        from clvmodels.estimators.bayes.fused_bgnbd import KERNEL_DATA, KERNEL_INDEX, fast_kernel

        arrays = [
            np.asarray(data[name], np.int64 if name in KERNEL_INDEX else np.float64)
            for name in KERNEL_DATA
        ]

        def value_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            total, *grads = fast_kernel(*(np.ascontiguousarray(c) for c in theta.T), *arrays)
            return float(total), np.column_stack(grads)

        prior = self.priors_
        centre = np.array([prior[name]["mu"] for name in self.param_names])
        scale = np.array([prior[name]["sigma"] for name in self.param_names])
        start = np.tile(centre, (len(self.groups_), 1))
        basis = laplace_basis(value_and_grad, start, centre, scale)
        if (
            self.whiten == "auto"
            and basis is not None
            and basis.relative_widths().max() > AUTO_MAX_RELATIVE_WIDTH
        ):
            return None
        return basis

    # ---- per-customer parameters (groups and covariates), behind the predictions at the
    # posterior means that PurchasePredictions provides (the family's math) --------------------
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
        self.check_fitted()
        point = self.point_draws()
        if self.groups_ is None:
            params = {n: point[n].to_numpy(float)[:, None] for n in self.param_names}
        else:
            label = group if group in self.groups_ else NEW_GROUP
            params = {n: point[(n, label)].to_numpy(float)[:, None] for n in self.param_names}
        return self._new_customer_purchases(params, t)

    def predict_draws(
        self, summary, quantity: str = "expected_purchases", t=None, n: int = 200, seed=None
    ) -> pd.DataFrame:
        """Per-draw predictions: DataFrame indexed by customer_id, a column per posterior draw.

        ``quantity``: "expected_purchases" (needs ``t``) or "probability_alive". Each customer
        uses its own group's parameters in every draw.
        """
        params, customer = self._prepare(summary, self.param_draws(n, seed=seed))
        if quantity == "expected_purchases":
            if t is None:
                raise ValueError("quantity='expected_purchases' needs a horizon t")
            values = self.family_.expected_purchases(params, *customer, self.to_model_time(t))
        elif quantity == "probability_alive":
            values = self.family_.probability_alive(params, *customer)
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
        customer's repeat purchases in (0, T] are simulated from the BG/NBD story (the family's
        ``simulate``, through :func:`clvmodels.simulate.frequency_predictive_check`). Returns a
        DataFrame indexed by (group, frequency bin ``0..max_frequency``, the last bin meaning
        "or more") with the observed count and the simulated mean and ``interval`` range.
        Covariates are ignored (taken at 0) in the prior check.
        """
        self.check_fitted()
        validate_summary(summary)
        self.check_unit(summary)
        if kind not in ("posterior", "prior"):
            raise ValueError(f"kind must be 'posterior' or 'prior', got {kind!r}")
        rng = np.random.default_rng(seed)
        codes = self._group_codes(summary, fitting=False)
        if kind == "posterior":
            params = self.customer_params(summary, self.param_draws(n_draws, seed=rng))
        else:
            prior = self._prior_group_params(n_draws, rng)
            idx = np.where(codes < 0, 0, codes)
            params = {k: v[:, idx] for k, v in prior.items()}
        groups = None if self.groups_ is None else summary[self.group].to_numpy()
        return frequency_predictive_check(
            self.family_,
            params,
            summary,
            groups=groups,
            max_frequency=max_frequency,
            interval=interval,
            seed=rng,
        )

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
