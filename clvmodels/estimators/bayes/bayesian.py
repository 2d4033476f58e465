"""What the Bayesian (PyMC) models share: the group hierarchy, sampler dispatch, convergence
diagnostics, posterior draws in the common "draws" currency, population draws for unseen groups,
a summary table per group, and persistence as NetCDF (posterior) + JSON (settings), no pickle.

Hierarchy (partial pooling)
---------------------------
Every model parameter ``theta`` (e.g. ``r, alpha, a, b`` of the BG/NBD) gets, for each group
``g``, its own value; on the log scale the group values are drawn from a population
distribution with a learned mean and scale, written non-centred (Betancourt & Girolami 2015):

.. math::

    \\mu_\\theta \\sim \\mathcal N(m_\\theta, s_\\theta), \\quad
    \\sigma_\\theta \\sim \\mathcal N^+(0, \\tau_\\theta), \\quad
    z_{\\theta g} \\sim \\mathcal N(0, 1), \\quad
    \\log\\theta_g = \\mu_\\theta + \\sigma_\\theta z_{\\theta g}.

So a group with few customers is shrunk toward ``exp(mu)`` and a group with many is not.
``centered=True`` samples ``log theta_g ~ N(mu, sigma)`` directly, which mixes better when every
group is large (the likelihood then pins each group down and the non-centred form becomes a
funnel in ``z``). The default ``centered="auto"`` uses the non-centred form unless there are at
least ``FEW_GROUPS`` (10) groups and every one has at least ``AUTO_CENTERED_MIN_GROUP`` (2,000)
customers. With no group column, or a single group, there is no hierarchy: ``log theta ~
N(m, s)``, a plain Bayesian model.

Few groups
----------
With few groups the population scale ``sigma_theta`` is weakly identified: two or three group
values say little about their spread, so its posterior is close to its prior, and with a wide
prior NUTS meets both ends of it, large ``sigma`` with groups that the data pins down (a curved,
inverted funnel in the non-centred coordinates) and ``sigma`` near 0 (the funnel of the centred
ones). On the apparel data by acquisition channel (2 groups of 372 and 228 customers) the
former defaults (``tau_theta = 1``, ``target_accept=0.8``) gave 53 to 78 divergent transitions
per fit of 4 x 1,000 draws (three seeds), the centred form 575 to 770; 10,000 simulated
customers in 3 groups of 2,000 to 5,000 (then centred by default) gave 226 to 671. As the
hierarchical-models literature recommends for few groups (Gelman 2006, "Prior distributions for
variance parameters in hierarchical models", *Bayesian Analysis* 1(3); the Stan prior-choice
recommendations), the defaults are therefore

* the non-centred form with fewer than ``FEW_GROUPS`` groups, however large (the 3 groups above:
  0 divergences, but about 200 gradient evaluations per draw instead of 12: ``centered=True``
  is faster when its diagnostics are clean);
* ``group_sigma=None`` resolves to ``tau_theta = 0.5`` with fewer than ``FEW_GROUPS`` (10)
  groups (a between-group sd of ``log theta`` mostly below 1: groups within a factor of about
  e of each other), ``1`` with more, where the groups themselves identify the scale;
* ``fit(target_accept=None)`` resolves to 0.99 for the non-centred hierarchy (smaller steps
  through its curved regions; about twice the gradient evaluations per draw) and to 0.8
  otherwise (ungrouped, or centred: large groups).

Apparel by channel with these defaults: 0 divergences for three seeds, r_hat <= 1.005 on the
104-week calibration and <= 1.010 on all six years (9 to 14 s per fit on 2 cores, about 125
gradient evaluations per draw instead of 64). Give ``priors={"r": {"group_sigma": 1.0}, ...}``
when groups are known to differ by more, and ``target_accept`` explicitly to trade robustness
for speed. Ungrouped fits (CDNOW, the benchmarks against pymc-marketing) and many large groups
(centred) keep their former settings.

Conventions
-----------
* ``params_`` is a pandas Series indexed by the parameter names: the posterior mean of
  ``exp(mu_theta)`` -- the parameter of the *typical* (median) group -- for grouped models,
  and the posterior mean of ``theta`` for ungrouped ones. Per-group posterior means are in
  :meth:`summary` and in :meth:`point_draws`.
* ``param_draws(n, seed)`` gives a row per posterior draw. Ungrouped: a column per parameter.
  Grouped: ``(parameter, group)`` MultiIndex columns, one per fitted group, plus
  ``(parameter, NEW_GROUP)``: for each posterior draw, a draw of a *new* group's parameter from
  the population distribution, ``exp(mu + sigma * eps)``. Customers of groups not seen in fitting
  take that column (all unseen groups share it draw by draw).
* ``point_draws()``: the same columns, one row: per-group posterior means, and ``params_`` for
  the ``NEW_GROUP`` column.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from clvmodels.errors import (
    ConvergenceWarning,
    InputError,
    ModelFileError,
    TimeUnitError,
    check_columns,
    describe_rows,
    import_optional,
)
from clvmodels.estimators.mle import FittedModel, draws_as_params
from clvmodels.validation import summary_time_unit

NEW_GROUP = "__new__"
"""Group label of the population-predictive ("new group") columns of :meth:`param_draws`."""

SAMPLERS = ("auto", "nutpie", "pymc", "numpyro")
METHODS = ("nuts", "advi", "fullrank_advi", "pathfinder")
SCHEMA_VERSION = 1

# diagnostic thresholds (Vehtari et al. 2021, "Rank-normalization, folding, and localization")
RHAT_MAX = 1.01
AUTO_CENTERED_MIN_GROUP = 2000
ESS_PER_CHAIN_MIN = 100

# default scale of the half-normal prior of the between-group sd of a log-parameter
# (``group_sigma=None``): 0.5 with fewer than FEW_GROUPS groups, 1 otherwise (see the module
# docstring, "Few groups")
FEW_GROUPS = 10
GROUP_SIGMA_FEW = 0.5
GROUP_SIGMA_MANY = 1.0
# default NUTS target acceptance (``target_accept=None``): the non-centred hierarchy's posterior
# has strongly curved regions (large between-group sd with groups the data pins down), where
# the step size of the default 0.8 diverges
TARGET_ACCEPT = 0.8
TARGET_ACCEPT_NON_CENTERED = 0.99
# in whitened coordinates (see whitening.py) the posterior is close to a standard normal, for
# which the optimal acceptance rate of HMC tends to 0.651 as the dimension grows (Beskos,
# Pillai, Roberts, Sanz-Serna & Stuart 2013, "Optimal tuning of the hybrid Monte Carlo
# algorithm", Bernoulli 19(5A)): longer steps, half the leapfrog steps per draw of 0.8
TARGET_ACCEPT_WHITENED = 0.65


def have_module(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    return importlib.util.find_spec(module) is not None


def available_samplers() -> list[str]:
    """The NUTS back-ends importable here, fastest first on this machine."""
    out = []
    if jax_gpu():
        out.append("numpyro")
    if have_module("nutpie"):
        out.append("nutpie")
    out.append("pymc")
    if "numpyro" not in out and have_module("jax") and have_module("numpyro"):
        out.append("numpyro")
    return out


def _jax_accelerator_plugin() -> bool:
    """Whether a GPU plugin of JAX is installed (``jax[cuda12]`` / ``jax[rocm]`` install
    ``jax_cuda*_plugin`` / ``jax_rocm*_plugin`` and the ``jax_plugins`` namespace): without
    one (jax >= 0.4.30) JAX runs on the CPU only, which is known without importing jax."""
    import pkgutil

    if have_module("jax_plugins"):
        return True
    return any(m.name.startswith(("jax_cuda", "jax_rocm")) for m in pkgutil.iter_modules())


def jax_gpu() -> bool:
    """Whether JAX (with numpyro) is installed and runs on a GPU here."""
    if not (have_module("jax") and have_module("numpyro")):
        return False
    if "jax" not in sys.modules and not _jax_accelerator_plugin():
        return False  # importing jax only to learn this takes ~1 s
    try:
        import jax

        return jax.default_backend() in ("gpu", "cuda", "rocm")
    except Exception:  # pragma: no cover - broken jax install
        return False


def _jax_chain_method(chains: int) -> str:
    """How numpyro runs ``chains`` chains: one per device when there are enough devices, all
    in one vectorised program on a single GPU, one after the other on a CPU (where
    vectorising makes every chain wait for the longest trajectory of the step)."""
    import jax

    if jax.local_device_count() >= chains:
        return "parallel"
    return "vectorized" if jax_gpu() else "sequential"


def resolve_sampler(sampler: str) -> str:
    """Map ``"auto"`` to the fastest available NUTS back-end; check an explicit choice.

    ``"auto"``: numpyro (JAX) when JAX sees a GPU, else nutpie (numba-compiled, Rust NUTS), else
    PyMC's own NUTS.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if sampler == "auto":
        return available_samplers()[0]
    if sampler == "nutpie" and not have_module("nutpie"):
        raise ImportError("sampler='nutpie' needs nutpie: pip install 'clvmodels[bayes]'")
    if sampler == "numpyro" and not (have_module("jax") and have_module("numpyro")):
        raise ImportError(
            "sampler='numpyro' needs jax and numpyro: pip install 'clvmodels[gpu]' "
            "(and a CUDA build of jax for a GPU)"
        )
    return sampler


def _natural_prior(spec: dict[str, Any], default: dict[str, Any], name: str) -> dict[str, Any]:
    out = dict(default)
    unknown = set(spec) - set(default)
    if unknown:
        raise ValueError(
            f"unknown prior setting(s) {sorted(unknown)} for {name!r}; allowed: {sorted(default)}"
        )
    out.update(spec)
    for key, value in out.items():
        if value is not None and (not np.isfinite(value) or (key != "mu" and value <= 0)):
            raise ValueError(f"prior setting {name}.{key} must be finite (and > 0 for scales)")
    return out


def log_normal_hierarchy(
    pm, name: str, prior: dict[str, float], hierarchical: bool, centered: bool
):
    """Build ``theta`` (one value, or one per group) with the hierarchy of the module docstring.

    Returns the log-parameter tensor (scalar or shape (n_groups,)).
    """
    mu = pm.Normal(f"mu_{name}", mu=prior["mu"], sigma=prior["sigma"])
    if not hierarchical:
        pm.Deterministic(name, pm.math.exp(mu))
        return mu
    sigma = pm.HalfNormal(f"sigma_{name}", sigma=prior["group_sigma"])
    if centered:
        log_theta = pm.Normal(f"log_{name}", mu=mu, sigma=sigma, dims="group")
    else:
        z = pm.Normal(f"z_{name}", mu=0.0, sigma=1.0, dims="group")
        log_theta = mu + sigma * z
    pm.Deterministic(name, pm.math.exp(log_theta), dims="group")
    return log_theta


def log_normal_pair(
    pm,
    first: str,
    second: str,
    priors: dict[str, dict[str, float]],
    hierarchical: bool,
    centered: bool,
):
    """``(log first, log second)`` with exactly the prior of two :func:`log_normal_hierarchy`
    calls, sampled in the coordinates ``(log first, log first - log second)``.

    The BG/NBD likelihood pins down the ratios ``r/alpha`` (mean purchase rate) and ``a/b``
    (odds of the mean dropout probability) much better than the parameters themselves, so
    ``log r`` and ``log alpha`` (and ``log a``, ``log b``) are strongly correlated a posteriori
    (0.80 and 0.93 for a group of 20,000 simulated customers). A diagonal mass matrix cannot
    follow such ridges, so NUTS needs long trajectories; in the rotated coordinates the
    correlations drop to about 0.3 and the trees are half as deep (31 -> 15 leapfrog steps per
    draw on 50 groups x 2,000 customers). The change of variables is linear with unit Jacobian:
    with ``log second_g ~ N(mu_2, sigma_2)`` independent of ``log first_g``, the difference
    ``d_g = log first_g - log second_g`` given ``log first_g`` is ``N(log first_g - mu_2,
    sigma_2)``, which is how it is written, so the model (and its posterior) is unchanged.

    Used for ungrouped models and the centred hierarchy (large groups, where the likelihood
    dominates); the non-centred form (small groups, prior-dominated) keeps its coordinates.
    The difference is stored as ``log_{first}_over_{second}``.
    """
    if hierarchical and not centered:
        return tuple(
            log_normal_hierarchy(pm, name, priors[name], hierarchical, centered)
            for name in (first, second)
        )
    log_first = log_normal_hierarchy(pm, first, priors[first], hierarchical, centered)
    prior = priors[second]
    name = f"log_{first}_over_{second}"
    if hierarchical:
        mu = pm.Normal(f"mu_{second}", mu=prior["mu"], sigma=prior["sigma"])
        sigma = pm.HalfNormal(f"sigma_{second}", sigma=prior["group_sigma"])
        diff = pm.Normal(name, mu=log_first - mu, sigma=sigma, dims="group")
        log_second = log_first - diff
        pm.Deterministic(second, pm.math.exp(log_second), dims="group")
    else:
        diff = pm.Normal(name, mu=log_first - prior["mu"], sigma=prior["sigma"])
        log_second = pm.Deterministic(f"mu_{second}", log_first - diff)
        pm.Deterministic(second, pm.math.exp(log_second))
    return log_first, log_second


def _frame_index_codes(values: pd.Series, groups: list) -> np.ndarray:
    """Positions of ``values`` in ``groups``; -1 for values not among them."""
    return pd.Index(groups).get_indexer(pd.Index(values))


class BayesianModel(FittedModel):
    """Shared machinery of :class:`HierarchicalBetaGeo` and :class:`HierarchicalGammaGamma`.

    A fitted model offers the surface of every fitted model
    (:class:`~clvmodels.estimators.mle.FittedModel`): ``family_`` (an instance of the
    subclass's ``family_class``, whose math gives every prediction), ``params_``,
    ``time_unit_``, ``point_draws()``, ``param_draws(n, seed)``, ``customer_params(summary,
    draws)``, ``check_fitted()``, ``check_unit()``, ``to_model_time()`` and ``kind``.

    Subclasses define ``family_class``, ``_default_priors`` (log-scale prior per parameter),
    ``_validate(summary)``, ``_prepare_data(summary, group_codes)`` (compressed arrays) and
    ``_build_model(data, coords)`` (a ``pm.Model`` whose posterior has a Deterministic per
    parameter, dims ``("group",)`` when hierarchical), plus ``_extra_draw_columns`` for
    customer-level coefficients.
    """

    _default_priors: ClassVar[dict[str, dict[str, float | None]]] = {}

    def __init__(
        self,
        group: str | None = None,
        priors: dict[str, dict[str, float]] | None = None,
        centered: bool | str = "auto",
    ):
        self.group = group
        self.priors = priors
        self.centered = centered

    # ------------------------------------------------------------------------------------------
    # subclass hooks
    # ------------------------------------------------------------------------------------------
    def _validate(self, summary: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def _prepare_data(self, summary: pd.DataFrame, group_codes: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def _build_model(self, data: dict[str, Any], coords: dict[str, list]):
        raise NotImplementedError

    def _resolve_data_priors(self, priors: dict, summary: pd.DataFrame) -> dict:
        """Fill data-scaled prior centres (``mu=None``); default: nothing to fill."""
        return priors

    def _coefficient_names(self) -> list[str]:
        """Names of shared (not per-group) coefficients in the posterior, e.g. covariates."""
        return []

    # ------------------------------------------------------------------------------------------
    # configuration
    # ------------------------------------------------------------------------------------------
    def _resolved_priors(self, summary: pd.DataFrame) -> dict[str, dict[str, float]]:
        given = dict(self.priors or {})
        unknown = set(given) - set(self._default_priors)
        if unknown:
            raise ValueError(
                f"unknown prior(s) {sorted(unknown)}; {type(self).__name__} has priors for "
                f"{sorted(self._default_priors)}"
            )
        priors = {
            name: _natural_prior(given.get(name, {}), default, name)
            for name, default in self._default_priors.items()
        }
        n_groups = len(self.groups_) if self.groups_ else 1
        scale = GROUP_SIGMA_FEW if n_groups < FEW_GROUPS else GROUP_SIGMA_MANY
        for prior in priors.values():
            if "group_sigma" in prior and prior["group_sigma"] is None:
                prior["group_sigma"] = scale
        return self._resolve_data_priors(priors, summary)

    def _group_codes(self, summary: pd.DataFrame, fitting: bool) -> np.ndarray:
        """Integer group code per customer (0 when ungrouped); sets ``groups_`` when fitting."""
        if self.group is None:
            if fitting:
                self.groups_ = None
            return np.zeros(len(summary), dtype=np.int64)
        check_columns(
            summary,
            [self.group],
            "summary",
            hint=f"add the group column {self.group!r} to the summary (e.g. join customer "
            "attributes on customer_id) or fit without group=",
        )
        labels = summary[self.group]
        missing = labels.isna().to_numpy()
        if missing.any():
            raise InputError(
                f"group column {self.group!r} has missing values in "
                f"{describe_rows(summary[[self.group]], missing)}\nFix: give every customer "
                "a group (e.g. fill with 'unknown')."
            )
        if fitting:
            uniques = pd.unique(labels)
            try:
                uniques = sorted(uniques)
            except TypeError:
                uniques = sorted(uniques, key=str)
            self.groups_ = [_plain(v) for v in uniques]
        return _frame_index_codes(labels, self.groups_)

    @property
    def hierarchical_(self) -> bool:
        return self.groups_ is not None and len(self.groups_) > 1

    # ------------------------------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------------------------------
    def fit(
        self,
        summary: pd.DataFrame,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        sampler: str = "auto",
        random_seed: int | None = None,
        method: str = "nuts",
        target_accept: float | None = None,
        cores: int | None = None,
        progressbar: bool = True,
        check_convergence: bool = True,
        sampler_kwargs: dict[str, Any] | None = None,
    ):
        """Sample the posterior; return ``self`` with ``idata_`` (ArviZ InferenceData).

        Parameters
        ----------
        summary : DataFrame
            RFM summary with a time unit (``summary.attrs["time_unit"]``) and, for grouped
            models, the group column.
        draws, tune, chains : int
            Posterior draws and tuning steps per chain, and the number of chains.
        sampler : "auto", "nutpie", "pymc" or "numpyro"
            NUTS back-end. ``"auto"``: numpyro when JAX sees a GPU, else nutpie (numba-compiled
            model, Rust sampler; the fastest on CPU), else PyMC's NUTS.
        method : "nuts", "advi", "fullrank_advi" or "pathfinder"
            ``"nuts"`` samples the exact posterior; the variational methods (``pm.fit``;
            pathfinder from ``pymc_extras``) are approximate and fast for very large data:
            ``draws * chains`` independent draws are taken from the fitted approximation and
            stored as ``chains`` pseudo-chains (``tune``, ``target_accept`` and convergence
            warnings do not apply; ``sampler_`` and ``fit_settings_["sampler"]`` name the
            method). On CDNOW all three give posterior means within 0.6 MLE standard errors
            of the MLE; mean-field ADVI ignores posterior correlations (r-alpha, a-b).
        random_seed : int, optional
            Seed for the sampler (reproducible draws with the same sampler and versions).
        target_accept : float, optional
            NUTS target acceptance. Default: 0.99 for the non-centred hierarchy (grouped fits
            with ``centered_`` False, see "Few groups" in the module docstring), 0.65 in
            whitened coordinates (``whitened_``: many large groups, see
            :mod:`~clvmodels.estimators.bayes.whitening`), 0.8 otherwise; raise it (0.9-0.99) when divergences are
            reported, lower it (0.9) to trade robustness for speed.
        cores : int, optional
            Chains run in parallel (default: one per CPU, at most ``chains``).
        progressbar : bool
            Show the sampler's progress (chains, draws, divergences so far, time left): a
            live bar in a terminal or a Jupyter notebook (nutpie's, PyMC's or numpyro's own;
            the variational methods show theirs); ``False`` for silence (the CLI's
            ``--quiet``).
        sampler_kwargs : dict, optional
            Passed to the sampler (``nutpie.sample`` or ``pm.sample``), e.g.
            ``{"low_rank_modified_mass_matrix": True}`` for nutpie on strongly correlated
            posteriors, or ``{"maxdepth": 8}``; for numpyro they go to
            ``pm.sample(nuts_sampler_kwargs=...)``, e.g. ``{"chain_method": "vectorized",
            "nuts_kwargs": {"max_tree_depth": 8}}``.
        check_convergence : bool
            Compute r_hat, bulk/tail ESS and divergences and warn (``ConvergenceWarning``)
            naming the offending parameters.
        """
        for module in ("pymc", "arviz"):  # MissingExtraError naming clvmodels[bayes] if absent
            import_optional(module, type(self).__name__)
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        for name, value in (("draws", draws), ("tune", tune), ("chains", chains)):
            if int(value) != value or value < (0 if name == "tune" else 1):
                raise ValueError(
                    f"{name} must be a {'non-negative' if name == 'tune' else 'positive'} integer, got {value!r}"
                )
        summary = self._validate(summary)
        unit = summary_time_unit(summary)
        if unit is None and self.kind == "purchase":
            raise TimeUnitError(
                "the summary has no time unit; build it with clvmodels.rfm_summary(..., "
                "time_unit='W') or set summary.attrs['time_unit'] (e.g. 'D', 'W', 'M')"
            )
        self.family_ = self.family_class()
        self.time_unit_ = unit
        codes = self._group_codes(summary, fitting=True)
        self._group_sizes_ = (
            {}
            if self.groups_ is None
            else dict(
                zip(
                    self.groups_,
                    np.bincount(codes, minlength=len(self.groups_)).tolist(),
                    strict=True,
                )
            )
        )
        if self.centered not in (True, False, "auto"):
            raise ValueError(f"centered must be True, False or 'auto', got {self.centered!r}")
        # centred only for many large groups: with few groups sigma can approach 0, the funnel
        # of the centred form (see "Few groups" in the module docstring)
        self.centered_ = (
            len(self._group_sizes_) >= FEW_GROUPS
            and min(self._group_sizes_.values()) >= AUTO_CENTERED_MIN_GROUP
            if self.centered == "auto"
            else bool(self.centered)
        )
        self.priors_ = self._resolved_priors(summary)
        data = self._prepare_data(summary, codes)
        self.n_customers_ = int(len(summary))
        self.n_rows_ = int(data["n_rows"])
        coords = {"group": list(self.groups_)} if self.hierarchical_ else {}
        # resolved before the model is built: the JAX back-end (numpyro) needs the plain
        # pytensor likelihood, the others take the fused (numba / numpy) one
        self.sampler_ = resolve_sampler(sampler) if method == "nuts" else method
        if target_accept is not None and not 0.0 < float(target_accept) < 1.0:
            raise ValueError(f"target_accept must be in (0, 1), got {target_accept!r}")
        t0 = time.perf_counter()
        self.whitened_ = False  # set by models that sample in whitened coordinates
        model = self._build_model(data, coords)
        if target_accept is None:
            if self.whitened_:
                target_accept = TARGET_ACCEPT_WHITENED
            elif self.hierarchical_ and not self.centered_:
                target_accept = TARGET_ACCEPT_NON_CENTERED
            else:
                target_accept = TARGET_ACCEPT
        self.idata_ = self._sample(
            model,
            method,
            draws,
            tune,
            chains,
            random_seed,
            target_accept,
            cores,
            progressbar,
            dict(sampler_kwargs or {}),
        )
        self.fit_seconds_ = time.perf_counter() - t0
        self.fit_settings_ = {
            "draws": int(draws),
            "tune": int(tune),
            "chains": int(chains),
            "sampler": self.sampler_,
            "method": method,
            "random_seed": random_seed,
            "target_accept": float(target_accept),
            "centered": self.centered_,
            "whitened": self.whitened_,
            "sampler_kwargs": {
                k: v
                for k, v in (sampler_kwargs or {}).items()
                if isinstance(v, (int, float, str, bool))
            },
        }
        self._set_point_estimate()
        self.diagnostics_ = self.diagnose(warn=check_convergence and method == "nuts")
        return self

    def _sample(
        self, model, method, draws, tune, chains, seed, target_accept, cores, progressbar, extra
    ):
        import pymc as pm

        if method != "nuts":
            return _variational(model, method, draws, chains, seed, progressbar, extra)
        cores = cores or min(chains, os.cpu_count() or 1)
        if self.sampler_ == "nutpie":
            import nutpie
            from threadpoolctl import threadpool_limits

            from clvmodels.estimators.bayes.nutpie_compile import compile_for_nutpie

            compiled = compile_for_nutpie(model)
            # the chains already run one per core; a multi-threaded BLAS (OpenBLAS threads the
            # long dot products of the compressed likelihood) would only add a spinning thread
            # per call that takes CPU from the chains (~30% of it on a 1M-customer fit)
            with threadpool_limits(limits=1, user_api="blas"):
                idata = nutpie.sample(
                    compiled,
                    draws=int(draws),
                    tune=int(tune),
                    chains=int(chains),
                    cores=int(cores),
                    seed=seed,
                    save_warmup=False,
                    progress_bar=progressbar,
                    target_accept=target_accept,
                    **extra,
                )
        else:
            # PyMC's own NUTS takes the extra keywords directly; numpyro through
            # nuts_sampler_kwargs, with the way its chains run (no process pool: no cores)
            specific = (
                {"nuts_sampler_kwargs": {"chain_method": _jax_chain_method(int(chains))} | extra}
                if self.sampler_ == "numpyro"
                else {"cores": int(cores), **extra}
            )
            with model:
                idata = pm.sample(
                    draws=int(draws),
                    tune=int(tune),
                    chains=int(chains),
                    random_seed=seed,
                    target_accept=target_accept,
                    nuts_sampler=self.sampler_,
                    progressbar=progressbar,
                    compute_convergence_checks=False,
                    **specific,
                )
        return _strip_idata(idata)

    # ------------------------------------------------------------------------------------------
    # diagnostics
    # ------------------------------------------------------------------------------------------
    def _free_var_names(self) -> list[str]:
        names = []
        for p in self.param_names:
            names.append(f"mu_{p}")
            if self.hierarchical_:
                names.append(f"sigma_{p}")
        return names + self._coefficient_names() + list(self.param_names)

    def diagnose(self, warn: bool = True) -> pd.DataFrame:
        """r_hat, bulk and tail ESS per parameter (per group), divergences; warn on problems.

        A ``ConvergenceWarning`` names each parameter with r_hat > 1.01 or ESS below 100 per
        chain, and the number of divergent transitions, with what to try.
        """
        import arviz as az

        self.check_fitted()
        post = self.idata_.posterior
        names = [n for n in self._free_var_names() if n in post]
        n_chains = post.sizes["chain"]
        table = az.summary(self.idata_, var_names=names, kind="diagnostics", round_to="none")
        table = table.rename(columns={"r_hat": "r_hat"})
        divergences = 0
        if hasattr(self.idata_, "sample_stats") and "diverging" in self.idata_.sample_stats:
            divergences = int(self.idata_.sample_stats["diverging"].sum())
        self.divergences_ = divergences
        if warn:
            problems = []
            if n_chains > 1:
                bad = table.index[table["r_hat"] > RHAT_MAX].tolist()
                if bad:
                    problems.append(f"r_hat > {RHAT_MAX} for {', '.join(bad)}")
            ess_min = ESS_PER_CHAIN_MIN * n_chains
            for col in ("ess_bulk", "ess_tail"):
                bad = table.index[table[col] < ess_min].tolist()
                if bad:
                    problems.append(f"{col.replace('_', ' ')} < {ess_min} for {', '.join(bad)}")
            if divergences:
                problems.append(f"{divergences} divergent transitions after tuning")
            if problems:
                used = (getattr(self, "fit_settings_", None) or {}).get("target_accept")
                higher = (
                    "a higher target_accept (0.9-0.99) against divergences"
                    if used is None or used < TARGET_ACCEPT_NON_CENTERED
                    else "target_accept=0.995 against divergences"
                )
                advice = (
                    "Try: more tune steps and draws (fit(..., tune=2000, draws=2000)), "
                    + higher
                    + (
                        f", centered=True when there are many ({FEW_GROUPS}+) groups and "
                        "every one is large (or centered=False when some are small), or a "
                        "tighter prior on the between-group scales "
                        "(priors={name: {'group_sigma': 0.3}} for each parameter; the default "
                        f"is {GROUP_SIGMA_FEW} with fewer than {FEW_GROUPS} groups, "
                        f"{GROUP_SIGMA_MANY} with more)"
                        if self.hierarchical_
                        else ", or tighter priors"
                    )
                    + "."
                )
                warnings.warn(
                    f"{type(self).__name__}: the sampler may not have converged: "
                    + "; ".join(problems)
                    + ". "
                    + advice,
                    ConvergenceWarning,
                    stacklevel=3,
                )
        return table

    # ------------------------------------------------------------------------------------------
    # posterior access
    # ------------------------------------------------------------------------------------------
    def _stacked(self, name: str) -> np.ndarray:
        """Posterior of ``name`` as (n_samples, ...) with chains stacked."""
        values = self.idata_.posterior[name].to_numpy()
        return values.reshape((-1,) + values.shape[2:])

    def _group_matrix(self, name: str) -> np.ndarray:
        """(n_samples, n_groups) posterior of a per-group parameter (n_groups=1 if ungrouped)."""
        values = self._stacked(name)
        if values.ndim == 1:
            values = values[:, None]
        return values

    def _new_group_draws(self, name: str, eps: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Population-predictive draws ``exp(mu + sigma * eps)`` at posterior draws ``index``."""
        if not self.hierarchical_:
            return self._group_matrix(name)[index, 0]
        mu = self._stacked(f"mu_{name}")[index]
        sigma = self._stacked(f"sigma_{name}")[index]
        return np.exp(mu + sigma * eps)

    def _set_point_estimate(self) -> None:
        values = {}
        for name in self.param_names:
            if self.hierarchical_:
                values[name] = float(np.exp(self._stacked(f"mu_{name}")).mean())
            else:
                values[name] = float(self._group_matrix(name).mean())
        for name in self._coefficient_names():
            coef = self._stacked(name)
            for j, col in enumerate(self._coefficient_labels(name)):
                values[f"{name}[{col}]"] = float(coef[:, j].mean())
        self.params_ = pd.Series(values, dtype=float)

    def _coefficient_labels(self, name: str) -> list[str]:
        return []

    @property
    def n_samples_(self) -> int:
        post = self.idata_.posterior
        return int(post.sizes["chain"] * post.sizes["draw"])

    def _draws_frame(self, index: np.ndarray, eps: dict[str, np.ndarray] | None) -> pd.DataFrame:
        columns: dict[Any, np.ndarray] = {}
        grouped = self.groups_ is not None
        for name in self.param_names:
            matrix = self._group_matrix(name)[index]
            if not grouped:
                columns[name] = matrix[:, 0]
                continue
            for j, g in enumerate(self.groups_):
                columns[(name, g)] = matrix[:, j]
            if eps is None:  # point estimate
                columns[(name, NEW_GROUP)] = np.full(len(index), self.params_[name])
            else:
                columns[(name, NEW_GROUP)] = self._new_group_draws(name, eps[name], index)
        for name in self._coefficient_names():
            coef = self._stacked(name)[index]
            for j, col in enumerate(self._coefficient_labels(name)):
                key = f"{name}[{col}]"
                columns[(key, "") if grouped else key] = coef[:, j]
        frame = pd.DataFrame(columns)
        if grouped:
            frame.columns = pd.MultiIndex.from_tuples(list(columns), names=["parameter", "group"])
        return frame

    def param_draws(self, n: int = 200, seed=None) -> pd.DataFrame:
        """``n`` posterior draws, a row per draw (see the module docstring for the columns).

        Draws are picked at random from the pooled chains, without replacement when ``n`` is at
        most the number of posterior samples.
        """
        self.check_fitted()
        n = int(n)
        if n < 1:
            raise ValueError(f"n must be a positive number of draws, got {n!r}")
        rng = np.random.default_rng(seed)
        total = self.n_samples_
        index = rng.choice(total, size=n, replace=n > total)
        eps = {name: rng.standard_normal(n) for name in self.param_names}
        return self._draws_frame(index, eps)

    def point_draws(self) -> pd.DataFrame:
        """One row with the columns of :meth:`param_draws`: posterior means per group."""
        self.check_fitted()
        total = self.n_samples_
        frame = self._draws_frame(np.arange(total), None)
        return frame.mean(axis=0).to_frame().T

    def customer_params(
        self, summary: pd.DataFrame, draws: pd.DataFrame | None = None
    ) -> dict[str, np.ndarray]:
        """Each customer's parameters, ``{name: (n_draws, n_customers) array}``.

        Grouped: a customer takes its group's column of ``draws``; a group unseen in fitting
        takes the ``NEW_GROUP`` (population) column. Ungrouped: ``(n_draws, 1)`` arrays.
        """
        self.check_fitted()
        draws = self.point_draws() if draws is None else draws
        if self.groups_ is None:
            return draws_as_params(draws, self.param_names)
        codes = self._group_codes(summary, fitting=False)
        codes = np.where(codes < 0, len(self.groups_), codes)
        out = {}
        for name in self.param_names:
            cols = [(name, g) for g in self.groups_] + [(name, NEW_GROUP)]
            missing = [c for c in cols if c not in draws.columns]
            if missing:
                raise InputError(
                    f"draws lack column(s) {missing[:3]}; pass draws from this model's "
                    "param_draws() or point_draws()"
                )
            matrix = draws.loc[:, cols].to_numpy(dtype=float)
            out[name] = matrix[:, codes]
        return out

    # ------------------------------------------------------------------------------------------
    # reporting
    # ------------------------------------------------------------------------------------------
    def summary(self, interval: float = 0.94) -> pd.DataFrame:
        """Posterior table per parameter and group: mean, sd, HDI, r_hat, ESS.

        Rows are indexed by (parameter, group); the population rows have group
        ``"(population: exp(mu))"`` and ``"(population: sigma)"``.
        """
        import arviz as az

        self.check_fitted()
        post = self.idata_.posterior
        rows = []
        for name in list(self.param_names) + self._coefficient_names():
            table = az.summary(self.idata_, var_names=[name], hdi_prob=interval, round_to="none")
            labels = (
                list(self.groups_)
                if (self.hierarchical_ and name in self.param_names)
                else (
                    self._coefficient_labels(name)
                    if name in self._coefficient_names()
                    else [self.groups_[0] if self.groups_ else "(all)"]
                )
            )
            table.index = pd.MultiIndex.from_tuples([(name, g) for g in labels])
            rows.append(table)
            if self.hierarchical_ and name in self.param_names:
                pop = az.summary(
                    np.exp(post[f"mu_{name}"]).to_dataset(name=name),
                    hdi_prob=interval,
                    round_to="none",
                )
                pop.index = pd.MultiIndex.from_tuples([(name, "(population: exp(mu))")])
                sig = az.summary(
                    post[f"sigma_{name}"].to_dataset(), hdi_prob=interval, round_to="none"
                )
                sig.index = pd.MultiIndex.from_tuples([(name, "(population: sigma)")])
                rows.extend([pop, sig])
        out = pd.concat(rows)
        out.index.names = ["parameter", "group"]
        if self.groups_ is not None and self.hierarchical_:
            counts = self._group_sizes_
            out.insert(
                0, "n_customers", [counts.get(g, np.nan) for g in out.index.get_level_values(1)]
            )
        return out

    # ------------------------------------------------------------------------------------------
    # persistence: NetCDF + JSON, no pickle
    # ------------------------------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        return {"group": self.group, "priors": self.priors, "centered": self.centered}

    def _state(self) -> dict[str, Any]:
        return {}

    def _load_state(self, state: dict[str, Any]) -> None:
        pass

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``<path>/settings.json`` and ``<path>/posterior.nc`` (a directory; no pickle)."""
        self.check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        payload = {
            "schema_version": SCHEMA_VERSION,
            "class": type(self).__name__,
            "settings": self._settings(),
            "time_unit": self.time_unit_,
            "groups": self.groups_,
            "group_sizes": None
            if self.groups_ is None
            else [[g, int(self._group_sizes_.get(g, 0))] for g in self.groups_],
            "priors_resolved": self.priors_,
            "n_customers": self.n_customers_,
            "n_rows": self.n_rows_,
            "fit_settings": self.fit_settings_,
            "fit_seconds": self.fit_seconds_,
            "state": self._state(),
        }
        tmp = path / "posterior.nc.tmp"
        self.idata_.to_netcdf(str(tmp))
        os.replace(tmp, path / "posterior.nc")
        tmp_json = path / "settings.json.tmp"
        tmp_json.write_text(json.dumps(payload, indent=2))
        os.replace(tmp_json, path / "settings.json")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Rebuild a fitted model written by :meth:`save`; it predicts identically."""
        import arviz as az

        path = Path(path)
        try:
            payload = json.loads((path / "settings.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"cannot read {path / 'settings.json'}: {exc}") from exc
        if payload.get("schema_version") != SCHEMA_VERSION:
            raise ModelFileError(
                f"{path} has schema version {payload.get('schema_version')!r}; this clvmodels "
                f"reads version {SCHEMA_VERSION}"
            )
        if payload.get("class") != cls.__name__:
            raise ModelFileError(f"{path} holds a {payload.get('class')!r}, not a {cls.__name__}")
        model = cls(**payload["settings"])
        model.family_ = cls.family_class()
        model.time_unit_ = payload["time_unit"]
        model.groups_ = payload["groups"]
        model._group_sizes_ = (
            {} if payload["group_sizes"] is None else {g: n for g, n in payload["group_sizes"]}
        )
        model.priors_ = payload["priors_resolved"]
        model.n_customers_ = payload["n_customers"]
        model.n_rows_ = payload["n_rows"]
        model.fit_settings_ = payload["fit_settings"]
        model.sampler_ = model.fit_settings_["sampler"]
        model.centered_ = model.fit_settings_.get("centered", False)
        model.whitened_ = model.fit_settings_.get("whitened", False)
        model.fit_seconds_ = payload["fit_seconds"]
        model._load_state(payload["state"])
        try:
            idata = az.from_netcdf(str(path / "posterior.nc"))
            idata.load() if hasattr(idata, "load") else None
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"cannot read {path / 'posterior.nc'}: {exc}") from exc
        model.idata_ = idata
        model._set_point_estimate()
        model.diagnostics_ = model.diagnose(warn=False)
        return model


def _plain(value):
    """numpy scalars -> Python scalars (JSON-able group labels)."""
    return value.item() if isinstance(value, np.generic) else value


def _strip_idata(idata):
    """Keep posterior, sample_stats (and observed data); drop warm-up and bulky extras."""
    keep = [g for g in ("posterior", "sample_stats") if hasattr(idata, g)]
    import arviz as az

    out = az.InferenceData(**{g: getattr(idata, g) for g in keep})
    stats = out.sample_stats
    extra = [
        v
        for v in stats.data_vars
        if v
        not in (
            "diverging",
            "tree_depth",
            "n_steps",
            "step_size",
            "lp",
            "energy",
            "mean_tree_accept",
            "acceptance_rate",
            "depth",
            "logp",
        )
    ]
    if extra:
        out.sample_stats = stats.drop_vars(extra)
    return out


def _variational(model, method: str, draws: int, chains: int, seed, progressbar: bool, extra):
    """Fit a variational approximation and take ``draws * chains`` independent draws from it.

    ``"advi"`` / ``"fullrank_advi"``: ``pm.fit`` (Kucukelbir et al. 2017), at most 30,000
    iterations, stopped when the parameters move less than 1e-3; ``"pathfinder"``:
    ``pymc_extras.fit`` (Zhang et al. 2022), multi-path with PSIS resampling. ``extra`` goes to
    ``pm.fit`` / ``pymc_extras.fit`` (e.g. ``{"n": 50_000}``, ``{"num_paths": 8}``). The
    draws are laid out as ``chains`` pseudo-chains of ``draws`` so the posterior has the shape
    a NUTS fit with the same settings would have.
    """
    import arviz as az
    import pymc as pm

    n_draws = int(draws) * int(chains)
    with model:
        if method == "pathfinder":
            if not have_module("pymc_extras"):
                raise ImportError("method='pathfinder' needs pymc-extras: pip install pymc-extras")
            import pymc_extras as pmx

            # paths run one after the other in this process by default: pymc-extras' worker
            # processes fork, which can deadlock once JAX (multithreaded) is imported, and
            # each worker compiles the model again; {"concurrent": "process"} to parallelise
            settings = {
                "display_summary": progressbar,
                "progressbar": progressbar,
                "concurrent": None,
            } | extra
            idata = pmx.fit(method="pathfinder", num_draws=n_draws, random_seed=seed, **settings)
        else:
            settings = {
                "n": 30_000,
                "callbacks": [
                    pm.callbacks.CheckParametersConvergence(diff="absolute", tolerance=1e-3)
                ],
            } | extra
            approx = pm.fit(
                method="advi" if method == "advi" else "fullrank_advi",
                random_seed=seed,
                progressbar=progressbar,
                **settings,
            )
            idata = approx.sample(n_draws, random_seed=seed)
    return az.InferenceData(posterior=_as_chains(idata.posterior, int(chains)))


def _as_chains(posterior, chains: int):
    """Lay independent draws (any chain x draw shape) out as ``chains`` chains."""
    import xarray as xr

    total = posterior.sizes["chain"] * posterior.sizes["draw"]
    per_chain = total // chains
    data = {}
    for name, var in posterior.data_vars.items():
        values = var.to_numpy().reshape((total, *var.shape[2:]))[: per_chain * chains]
        data[name] = (var.dims, values.reshape((chains, per_chain, *var.shape[2:])))
    coords = {k: v for k, v in posterior.coords.items() if k not in ("chain", "draw")}
    coords |= {"chain": np.arange(chains), "draw": np.arange(per_chain)}
    return xr.Dataset(data, coords=coords, attrs=posterior.attrs)
