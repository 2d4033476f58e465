"""Maximum-likelihood estimators: any family, fitted on its compressed rows.

An estimator holds a family (:mod:`clvmodels.families`) and owns the fitting: L-BFGS-B on the
log-parameters with the family's analytic gradient, the observed-information covariance, and
parameter draws (asymptotic normal on the log scale, or bootstrap refits). Predictions are the
family's functions at the fitted parameters. The public classes (``clv.BetaGeo``,
``clv.ParetoNBD``, ...) are these estimators bound to a family by :mod:`clvmodels.registry`.

Every fitted model, maximum-likelihood or Bayesian, offers what downstream code relies on:
``family_`` (the fitted family), ``params_``, ``time_unit_``, ``point_draws()``,
``param_draws(n, seed=...)`` and ``customer_params(summary, draws)``, which turns a summary and
a draws table into the family's ``params`` mapping (arrays of shape ``(n_draws, 1)`` here;
grouped models return ``(n_draws, n_customers)``).
"""

from __future__ import annotations

import itertools
import json
import warnings
from numbers import Real
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from clvmodels import units
from clvmodels.errors import ConvergenceWarning, InputError, NotFittedError, TimeUnitError
from clvmodels.estimators import covariates as covariate_models
from clvmodels.families.base import Family, FitRows
from clvmodels.optimize import (
    minimize_negative_log_likelihood,
    numerical_hessian,
    single_threaded_blas,
    small_gradient,
)
from clvmodels.validation import check_same_unit, summary_time_unit

ENGINES = ("native", "lifetimes")
#: covariate models: a family parameter with a larger log-scale standard error is undetermined
UNDETERMINED_LOG_SE = 5.0


def draws_as_params(draws: pd.DataFrame, names) -> dict[str, np.ndarray]:
    """A draws table (a row per draw) as the family's ``params`` mapping of ``(n_draws, 1)``."""
    return {name: draws[name].to_numpy(dtype=float)[:, None] for name in names}


class FittedModel:
    """Estimator habits shared by every model: settings in ``__init__``, fitted state ending in
    ``_``, and the draws protocol used by valuation and evaluation."""

    family_class: ClassVar[type[Family]]

    @property
    def kind(self) -> str:
        """``"purchase"`` or ``"spend"``."""
        return self.family_class.kind

    @property
    def param_names(self) -> tuple[str, ...]:
        """The family's parameters (positive numbers)."""
        return self.family_class.param_names

    @property
    def reported_names(self) -> tuple[str, ...]:
        """Every estimated parameter, as in ``params_``: the family's, then a covariate
        model's coefficients (``purchase.<column>``, ...; any real number)."""
        design = getattr(self, "covariate_design_", None)
        if design is not None:
            return tuple(design.names)
        return self.param_names

    @property
    def covariate_columns(self) -> tuple[str, ...]:
        """The summary columns a fitted covariate model reads besides the family's (the raw
        covariate columns, before categorical expansion); empty without covariates."""
        design = getattr(self, "covariate_design_", None)
        return tuple(design.encoding.columns) if design is not None else ()

    def check_fitted(self) -> None:
        """Raise NotFittedError unless the model is fitted."""
        if getattr(self, "params_", None) is None:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call .fit(summary) first"
            )

    def check_unit(self, summary: pd.DataFrame, what: str = "summary") -> None:
        """Raise TimeUnitError unless ``summary`` is in the unit the model was fitted in."""
        check_same_unit(self, summary, what)

    def to_model_time(self, t) -> float:
        """A horizon in the model's unit: numbers are taken as model units, strings converted."""
        return units.to_unit(t, self.time_unit_)

    def point_draws(self) -> pd.DataFrame:
        """The point estimate as a one-row draws table (MLE; posterior mean for Bayesian models)."""
        self.check_fitted()
        return self.params_.to_frame().T.reset_index(drop=True)

    def customer_params(
        self, summary: pd.DataFrame, draws: pd.DataFrame | None = None
    ) -> dict[str, np.ndarray]:
        """The family's ``params`` for the customers of ``summary``: arrays of shape
        ``(n_draws, 1)`` (every customer shares them); grouped models override this."""
        self.check_fitted()
        draws = self.point_draws() if draws is None else draws
        design = getattr(self, "covariate_design_", None)
        if design is not None:
            return design.customer_params(draws, design.features(summary))
        return draws_as_params(draws, self.param_names)

    def __repr__(self) -> str:
        if getattr(self, "params_", None) is None:
            return f"{type(self).__name__}(unfitted)"
        inner = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        return f"{type(self).__name__}({inner})"


class PurchasePredictions:
    """The predictions of a fitted purchase model, written once for every estimator: the
    family's functions at each customer's parameters from ``customer_params`` (the point
    estimate; for Bayesian models the posterior means, per group for grouped ones).

    A mixin for estimators with :class:`FittedModel`'s ``family_``, ``check_fitted``,
    ``check_unit``, ``to_model_time`` and ``customer_params``.
    """

    def _prepare(self, summary: pd.DataFrame, draws: pd.DataFrame | None = None):
        """``(params, customer)`` of the customers of ``summary`` (checked against the fit):
        the family's params and its ``customer_arrays`` (frequency, recency, T for the
        RFM families)."""
        self.check_fitted()
        self.family_.validate_summary(summary)
        self.check_unit(summary)
        return self.customer_params(summary, draws), self.family_.customer_arrays(summary)

    def expected_purchases(self, summary: pd.DataFrame, t) -> pd.Series:
        """E[X(T, T+t] | frequency, recency, T]: expected purchases in the next ``t``.

        ``t`` is a number in the model's unit or a calendar string such as "39W".
        """
        params, customer = self._prepare(summary)
        values = self.family_.expected_purchases(params, *customer, self.to_model_time(t))
        return pd.Series(np.asarray(values)[0], index=summary.index, name="expected_purchases")

    def probability_alive(self, summary: pd.DataFrame) -> pd.Series:
        """P(the customer is still active at T | frequency, recency, T)."""
        params, customer = self._prepare(summary)
        values = self.family_.probability_alive(params, *customer)
        return pd.Series(np.asarray(values)[0], index=summary.index, name="probability_alive")

    def purchase_probability(self, summary: pd.DataFrame, t, k: int) -> pd.Series:
        """P(exactly ``k`` purchases in (T, T+t] | history); ``k`` a whole number >= 0."""
        if isinstance(k, bool) or not isinstance(k, Real) or not float(k).is_integer() or k < 0:
            raise InputError(
                f"k must be a non-negative whole number of purchases (0, 1, 2, ...), got {k!r}"
            )
        k = int(k)
        params, customer = self._prepare(summary)
        values = self.family_.purchase_probability(params, *customer, self.to_model_time(t), k)
        return pd.Series(np.asarray(values)[0], index=summary.index, name=f"p_{k}_purchases")

    def _new_customer_purchases(self, params: dict[str, np.ndarray], t) -> float | np.ndarray:
        """E[X(t)] of a newly acquired customer at ``params`` (one draw): a float for one
        horizon ``t``, an array for a sequence of horizons."""
        t_model = (
            np.asarray([self.to_model_time(v) for v in t], dtype=float)
            if np.ndim(t)
            else self.to_model_time(t)
        )
        values = np.asarray(self.family_.expected_purchases_new_customer(params, t_model))[0]
        return values if np.ndim(t) else float(np.ravel(values)[0])


class SpendPredictions:
    """The predictions of a fitted spend model, written once for every estimator (see
    :class:`PurchasePredictions`)."""

    def _prepare(self, summary: pd.DataFrame, draws: pd.DataFrame | None = None):
        """``(params, customer)`` of the customers of ``summary``: the family's params and its
        ``customer_arrays`` (``frequency``, ``monetary_value`` for Gamma-Gamma)."""
        self.check_fitted()
        self.family_.validate_summary(summary)
        return self.customer_params(summary, draws), self.family_.customer_arrays(summary)

    def expected_spend(self, summary: pd.DataFrame) -> pd.Series:
        """Conditional expected spend per transaction; population mean for non-repeaters."""
        params, customer = self._prepare(summary)
        values = self.family_.expected_spend(params, *customer)
        return pd.Series(np.asarray(values)[0], index=summary.index, name="expected_spend")


class MaximumLikelihoodModel(FittedModel):
    """Fitting by maximum likelihood on log-parameters, with observed-information uncertainty.

    Parameters
    ----------
    engine : {"native", "lifetimes"}
        ``"native"`` (default): the family's analytic gradient, L-BFGS-B on log-parameters, fit
        on the distinct rows. ``"lifetimes"``: the matching ``lifetimes`` fitter finds the optimum
        (kept as ``lifetimes_fitter_``); likelihood, standard errors and predictions still come
        from the family.
    purchase_covariates, dropout_covariates : list of str, optional
        Static covariates of the purchase and the dropout process (purchase models), columns
        of the summary given to ``fit`` and to every prediction; see
        :mod:`clvmodels.estimators.covariates` (coefficients ``purchase.<column>``,
        ``dropout.<column>`` in ``params_``; a positive one raises the rate, as in CLVTools).
    spend_covariates : list of str, optional
        Static covariates of a spend model's scale (``spend.<column>``).
    penalty : float
        L2 penalty on the covariate coefficients (``penalty * sum(coef^2)`` added to the
        negative log-likelihood); 0 by default.
    same_coefficients : bool or list of str
        One coefficient for both processes of every column in both lists (``True``) or of the
        named columns.
    **settings
        The family's settings (e.g. ``k`` for the CNBD-k models); ``None`` searches the family's
        candidate values and keeps the one with the highest likelihood.
    """

    #: the ``lifetimes`` fitter of this family, for engine="lifetimes" (None: not available)
    lifetimes_fitter: ClassVar[str | None] = None

    def __init__(
        self,
        engine: str = "native",
        *,
        purchase_covariates=None,
        dropout_covariates=None,
        spend_covariates=None,
        penalty: float = 0.0,
        same_coefficients=False,
        **settings,
    ):
        self.engine = engine
        self.covariates = covariate_models.check_settings(
            self.family_class,
            type(self).__name__,
            {
                "purchase": purchase_covariates,
                "dropout": dropout_covariates,
                "spend": spend_covariates,
            },
            penalty,
            same_coefficients,
        )
        self.penalty = float(penalty)
        self.same_coefficients = (
            same_coefficients if isinstance(same_coefficients, bool) else list(same_coefficients)
        )
        known = set(self.family_class.settings_grid)
        unknown = set(settings) - known
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected settings {sorted(unknown)}; "
                f"its settings are {sorted(known) or 'none'}"
            )
        self.settings = {name: settings.get(name) for name in self.family_class.settings_grid}

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (scikit-learn convention); the covariate ones only when
        covariates are used."""
        out = {"engine": self.engine, **self.settings}
        if self.covariates:
            for process, columns in self.covariates.items():
                out[covariate_models.PROCESS_KEYWORDS[process]] = list(columns)
            out["penalty"] = self.penalty
            out["same_coefficients"] = self.same_coefficients
        return out

    # ---- fitting ---------------------------------------------------------------------------
    def _candidate_families(self) -> list[Family]:
        grid = self.family_class.settings_grid
        choices = [
            grid[name] if self.settings[name] is None else (self.settings[name],) for name in grid
        ]
        return [
            self.family_class(**dict(zip(grid, combo, strict=True)))
            for combo in itertools.product(*choices)
        ]

    def _fit(self, summary: pd.DataFrame, weights=None):
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        self.time_unit_ = summary_time_unit(summary)
        if self.time_unit_ is None and self.kind == "purchase":
            raise TimeUnitError(
                "the summary has no time unit; build it with clvmodels.rfm_summary(..., "
                "time_unit='W') or set summary.attrs['time_unit'] (e.g. 'D', 'W', 'M')"
            )
        candidates = self._candidate_families()
        with single_threaded_blas():
            fits = [self._fit_family(family, summary, weights) for family in candidates]
            if len(fits) > 1:
                self.settings_search_ = pd.DataFrame(
                    [{**f["family"].settings(), "log_likelihood": -f["value"]} for f in fits]
                )
            best = min(fits, key=lambda f: f["value"] if np.isfinite(f["value"]) else np.inf)
            self._set_fit(best)
        return self

    def _fit_family(self, family: Family, summary: pd.DataFrame, weights) -> dict[str, Any]:
        if self.covariates and self.engine != "native":
            raise ValueError("covariate models are fitted by the native engine only")
        fit = self._fit_plain_family(family, summary, weights)
        if self.covariates:
            fit = self._fit_covariates(fit, summary, weights)
        return fit

    def _fit_covariates(self, plain: dict[str, Any], summary, weights) -> dict[str, Any]:
        """The covariate model, started from the covariate-free fit ``plain`` with every
        coefficient at 0 (see :mod:`clvmodels.estimators.covariates`)."""
        family = plain["family"]
        design = covariate_models.CovariateDesign.build(
            self.family_class, self.covariates, summary, self.same_coefficients, self.penalty
        )
        data = covariate_models.covariate_rows(
            family, summary, design.features(summary, "fitting summary"), weights
        )
        result, objective = covariate_models.fit(family, design, data, plain["log_params"])
        coefficients = design.expansion @ result.log_params[len(design.param_names) :]
        penalty = design.penalty * float(coefficients @ coefficients)
        return {
            **plain,
            "log_params": result.log_params,
            "converged": result.converged,
            "message": result.message,
            "value": float(result.neg_log_likelihood) - penalty,
            "gradient": result.gradient,
            "objective": objective,
            "design": design,
            "covariate_rows": data,
        }

    def _fit_plain_family(self, family: Family, summary: pd.DataFrame, weights) -> dict[str, Any]:
        rows = family.fit_rows(summary, weights)
        problems = family.identification_problems(rows)
        if problems:
            raise InputError(
                f"{type(self).__name__} cannot be fitted on these data: "
                + "; ".join(problems)
                + ". Fix: fit on a summary with more customers and a longer observation period."
            )

        def objective(log_params):
            return family.negative_log_likelihood(log_params, rows)

        fitter = None
        if self.engine == "native":
            x0 = family.initial_log_params(rows)
            result = minimize_negative_log_likelihood(
                objective, x0, preconditioner=family.preconditioner(rows, x0)
            )
            # a second start from the first optimum polishes flat valleys (skipped when the
            # first run converged to a point where the gradient is negligible)
            if not (
                result.converged and small_gradient(result.neg_log_likelihood, result.gradient)
            ):
                polish = minimize_negative_log_likelihood(objective, result.log_params)
                if polish.neg_log_likelihood <= result.neg_log_likelihood:
                    result = polish
            log_params, converged, message = result.log_params, result.converged, result.message
            value, gradient = result.neg_log_likelihood, result.gradient
        else:
            from clvmodels.estimators.lifetimes_engine import fit_with_lifetimes

            if self.lifetimes_fitter is None:
                raise ValueError(f"{type(self).__name__} has no lifetimes engine")
            fitter = fit_with_lifetimes(self.lifetimes_fitter, family, summary, weights, rows)
            natural = fitter.params_[list(family.param_names)].to_numpy(dtype=float)
            log_params = np.log(natural)
            converged = bool(np.all(np.isfinite(log_params)))
            message = "fitted by lifetimes"
            value, gradient = objective(log_params)[0], None
        return {
            "family": family,
            "rows": rows,
            "log_params": log_params,
            "converged": converged,
            "message": message,
            "value": float(value),
            "gradient": gradient,
            "objective": objective,
            "lifetimes_fitter": fitter,
        }

    def _set_fit(self, fit: dict[str, Any]) -> None:
        family = fit["family"]
        self.family_ = family
        for name, value in family.settings().items():
            setattr(self, f"{name}_", value)
        self.rows_ = fit["rows"]
        self.n_customers_ = float(fit["rows"].counts.sum())
        self.converged_ = fit["converged"]
        self.optimizer_message_ = fit["message"]
        if fit["lifetimes_fitter"] is not None:
            self.lifetimes_fitter_ = fit["lifetimes_fitter"]
        log_params = fit["log_params"]
        self.log_likelihood_ = -fit["value"]
        design = self.covariate_design_ = fit.get("design")
        self.covariate_rows_ = fit.get("covariate_rows")
        natural = np.exp(log_params) if design is None else design.reported(log_params)
        self.params_ = pd.Series(natural, index=list(self.reported_names), dtype=float)
        if design is None:
            values = dict(zip(family.param_names, np.exp(log_params), strict=True))
            family.certify_log_likelihood(values, fit["rows"].columns)
        else:
            data = self.covariate_rows_
            family.certify_log_likelihood(design.params_at(log_params, data.z), data.rows.columns)
        objective = fit["objective"]
        self.set_covariance(lambda lp: objective(lp)[1], log_params, fit["gradient"])
        for name, value in family.fit_statistics(fit["rows"]).items():
            setattr(self, f"{name}_", value)
        for warning in family.fit_warnings(self.params_, fit["rows"]):
            warnings.warn(type(warning)(f"{type(self).__name__}: {warning}"), stacklevel=4)
        if not self.converged_ and not self.boundary_parameters_:
            warnings.warn(
                f"{type(self).__name__} fit did not converge: {self.optimizer_message_}. "
                "Check the data (enough repeat customers? right time unit?) and the estimates.",
                ConvergenceWarning,
                stacklevel=4,
            )

    def set_covariance(self, gradient, log_params: np.ndarray, gradient_at_x=None) -> None:
        """Observed-information covariance of the log-parameters at ``log_params``.

        A fit whose information matrix is singular, not positive definite, or nearly singular
        (a direction with less than 1e-9 of the largest curvature) sits on a boundary of the
        parameter space or is not identified by the data: the parameters that load on the flat
        directions are recorded in ``boundary_parameters_``, the fit is marked not converged,
        a warning says so in plain words, and the covariance is NaN, so no interval is ever
        built on it (asymptotic draws are refused).
        """
        hessian = numerical_hessian(gradient, log_params, gradient_at_x=gradient_at_x)
        design = getattr(self, "covariate_design_", None)
        # covariate models: the Hessian is over the free values (a shared coefficient once)
        names = list(self.reported_names) if design is None else design.free_names
        self.boundary_parameters_ = []
        if np.all(np.isfinite(hessian)):
            eigenvalues, vectors = np.linalg.eigh(hessian)
            flat = eigenvalues <= 1e-9 * max(float(eigenvalues.max()), 0.0)
        else:
            flat, vectors = np.ones(len(names), dtype=bool), np.eye(len(names))
        at_bound = np.abs(np.asarray(log_params)) >= 29.0
        loading = np.max(np.abs(vectors[:, flat]), axis=1) if flat.any() else np.zeros(len(names))
        weak = (loading >= 0.3) | at_bound
        if design is not None and not flat.any():
            # a covariate model whose family parameter is not determined even within a factor
            # of e^5 (log-scale standard error > 5; e.g. BG/NBD's a and b drifting to infinity
            # together along a ridge whose curvature never quite vanishes) is on a boundary too
            n_family = len(design.param_names)
            log_se = np.sqrt(np.abs(np.diag(np.linalg.inv(hessian))))
            weak[:n_family] |= log_se[:n_family] > UNDETERMINED_LOG_SE
        if weak.any():
            reported = names if design is None else list(self.reported_names)
            if design is not None:
                weak = design.full_expansion @ weak.astype(float) > 0
            self.boundary_parameters_ = [n for n, w in zip(reported, weak, strict=True) if w]
            self.converged_ = False
            self.optimizer_message_ += "; boundary or unidentified: " + ", ".join(
                self.boundary_parameters_
            )
            warnings.warn(ConvergenceWarning(self._boundary_message()), stacklevel=5)
            log_cov = np.full((len(names), len(names)), np.nan)
        else:
            log_cov = np.linalg.inv(hessian)
        if design is not None:
            expansion = design.full_expansion
            log_cov = expansion @ log_cov @ expansion.T
        self.set_log_covariance(log_cov)

    def _positive(self) -> np.ndarray:
        """Which reported parameters are positive (fitted on the log scale): the family's;
        covariate coefficients are fitted as they are."""
        return np.isin(list(self.reported_names), list(self.family_class.param_names))

    def _fitting_scale(self, values: np.ndarray) -> np.ndarray:
        """Reported parameters on the fitting scale: logs of the positive ones."""
        values = np.asarray(values, dtype=float)
        positive = self._positive()
        return np.where(positive, np.log(np.where(positive, values, 1.0)), values)

    @property
    def n_parameters_(self) -> int:
        """The number of estimated parameters (a shared coefficient counted once)."""
        return covariate_models.n_free_parameters(self)

    @property
    def aic_(self) -> float:
        """Akaike's information criterion, ``2 k - 2 log-likelihood``."""
        self.check_fitted()
        return 2.0 * self.n_parameters_ - 2.0 * self.log_likelihood_

    @property
    def bic_(self) -> float:
        """The Bayesian information criterion, ``k log(n customers) - 2 log-likelihood``."""
        self.check_fitted()
        return self.n_parameters_ * np.log(self.n_customers_) - 2.0 * self.log_likelihood_

    def _boundary_message(self) -> str:
        estimates = ", ".join(f"{n} = {self.params_[n]:.4g}" for n in self.boundary_parameters_)
        hint = self.family_.boundary_hint(self.params_, self.boundary_parameters_)
        return (
            f"{type(self).__name__}: the data do not determine {estimates}: the likelihood is "
            "flat in their direction, so the estimate sits on a boundary of the parameter space "
            "(or drifted towards one) and its value is arbitrary. "
            + (hint + " " if hint else "")
            + "No standard errors or intervals are given for this fit (param_draws(method="
            "'bootstrap') shows how unstable it is). What to do: try another model, more data "
            "(longer observation, more customers), or fix the parameter."
        )

    def set_log_covariance(self, log_cov: np.ndarray) -> None:
        """Set the covariance of the log-parameters and, by the delta method, of the
        parameters and their standard errors."""
        names = list(self.reported_names)
        self.log_covariance_ = pd.DataFrame(log_cov, index=names, columns=names)
        # delta method: d theta / d log theta (coefficients: fitted as they are)
        jac = np.diag(np.where(self._positive(), self.params_.to_numpy(), 1.0))
        self.covariance_ = pd.DataFrame(jac @ log_cov @ jac, index=names, columns=names)
        self.standard_errors_ = pd.Series(np.sqrt(np.diag(self.covariance_)), index=names)

    # ---- reporting ---------------------------------------------------------------------------
    def summary(self, interval: float = 0.95) -> pd.DataFrame:
        """Estimates, standard errors and a log-normal (positive) confidence interval.

        Covariate models add their coefficients (``purchase.<column>``, ...) with a normal
        interval, and columns ``z`` and ``p_value`` (Wald test of a zero coefficient; NaN for
        the family's parameters)."""
        self.check_fitted()
        z = stats.norm.ppf(0.5 + interval / 2)
        log_se = np.sqrt(np.diag(self.log_covariance_.to_numpy()))
        est = self.params_.to_numpy()
        se = self.standard_errors_.to_numpy()
        positive = self._positive()
        lo, hi = f"lower_{interval:.0%}", f"upper_{interval:.0%}"
        table = pd.DataFrame(
            {
                "estimate": est,
                "se": se,
                lo: np.where(positive, est * np.exp(-z * log_se), est - z * se),
                hi: np.where(positive, est * np.exp(z * log_se), est + z * se),
            },
            index=pd.Index(self.reported_names, name="parameter"),
        )
        if getattr(self, "covariate_design_", None) is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                wald = np.where(positive, np.nan, est / se)
            table["z"] = wald
            table["p_value"] = 2.0 * stats.norm.sf(np.abs(wald))
        return table

    # ---- draws -------------------------------------------------------------------------------
    def param_draws(self, n: int = 200, method: str = "asymptotic", seed=None) -> pd.DataFrame:
        """Parameter draws, a row per draw and a column per parameter.

        ``"asymptotic"``: log-parameters ~ Normal(MLE, inverse observed information), i.e. the
        asymptotic normal on the log scale (keeps every draw positive). ``"bootstrap"``:
        resample customers with replacement and refit (on compressed data a resample is a
        multinomial draw of the row counts, so each refit costs one fit on the distinct rows;
        the family's settings, e.g. ``k``, stay fixed).
        """
        self.check_fitted()
        if int(n) < 1:
            raise ValueError(f"n must be a positive number of draws, got {n!r}")
        rng = np.random.default_rng(seed)
        names = list(self.reported_names)
        log_mle = self._fitting_scale(self.params_.to_numpy())
        positive = self._positive()
        if method == "asymptotic":
            cov = self.log_covariance_.to_numpy()
            if getattr(self, "boundary_parameters_", None):
                raise ValueError(
                    "asymptotic draws need a fit inside the parameter space, and this one is on "
                    f"a boundary ({', '.join(self.boundary_parameters_)}): "
                    + self._boundary_message()
                )
            if not np.all(np.isfinite(cov)):
                raise ValueError(
                    "asymptotic draws need a finite covariance, and this fit has none; "
                    "use param_draws(method='bootstrap')"
                )
            samples = rng.multivariate_normal(log_mle, cov, size=int(n), method="eigh")
            return pd.DataFrame(np.where(positive, np.exp(samples), samples), columns=names)
        if method == "bootstrap":
            rows: FitRows | None = getattr(self, "rows_", None)
            if rows is None:
                raise ValueError(
                    "bootstrap draws refit the data, and this model was loaded without it; "
                    "refit it or use param_draws(method='asymptotic')"
                )
            family = self.family_
            design = getattr(self, "covariate_design_", None)
            if design is not None:
                return self._covariate_bootstrap(design, int(n), rng)
            total = int(round(rows.counts.sum()))
            probabilities = rows.counts / rows.counts.sum()
            out = []
            for _ in range(int(n)):
                resampled = family.reweighted_rows(
                    rows, rng.multinomial(total, probabilities).astype(float)
                )
                fit = minimize_negative_log_likelihood(
                    lambda lp, r=resampled: family.negative_log_likelihood(lp, r), log_mle
                )
                out.append(np.exp(fit.log_params))
            return pd.DataFrame(np.array(out), columns=names)
        raise ValueError(f"method must be 'asymptotic' or 'bootstrap', got {method!r}")

    def _covariate_bootstrap(self, design, n: int, rng) -> pd.DataFrame:
        """Bootstrap refits of a covariate model on multinomial resamples of its rows."""
        data = self.covariate_rows_
        counts = data.rows.counts
        total = int(round(counts.sum()))
        start = design.free_of(self.params_)
        out = []
        for _ in range(n):
            resampled = data.reweighted(
                self.family_, rng.multinomial(total, counts / counts.sum()).astype(float)
            )
            objective = covariate_models.objective_function(self.family_, design, resampled)
            fit = minimize_negative_log_likelihood(objective, start)
            out.append(design.reported(fit.log_params))
        return pd.DataFrame(np.array(out), columns=list(self.reported_names))

    # ---- persistence (JSON, no pickle) ---------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Settings and fitted state as plain JSON-able values."""
        self.check_fitted()
        return {
            "class": type(self).__name__,
            "settings": self.get_params(),
            "family": self.family_.settings(),
            "time_unit": self.time_unit_,
            "params": {k: float(v) for k, v in self.params_.items()},
            "log_covariance": self.log_covariance_.to_numpy().tolist(),
            "log_likelihood": self.log_likelihood_,
            "converged": bool(self.converged_),
            "boundary_parameters": list(getattr(self, "boundary_parameters_", [])),
            "optimizer_message": self.optimizer_message_,
            "n_customers": self.n_customers_,
            **(
                {"covariates": self.covariate_design_.to_dict()}
                if getattr(self, "covariate_design_", None) is not None
                else {}
            ),
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]):
        """Rebuild a fitted model from :meth:`to_dict` output (bootstrap needs a refit)."""
        if payload.get("class") != cls.__name__:
            raise ValueError(f"payload is a {payload.get('class')!r}, not a {cls.__name__}")
        model = cls(**payload.get("settings", {}))
        model.family_ = cls.family_class(**payload.get("family", {}))
        for name, value in model.family_.settings().items():
            setattr(model, f"{name}_", value)
        model.covariate_design_ = None
        if payload.get("covariates") is not None:
            model.covariate_design_ = covariate_models.CovariateDesign.from_dict(
                cls.family_class, payload["covariates"]
            )
        model.covariate_rows_ = None
        names = list(model.reported_names)
        model.time_unit_ = payload["time_unit"]
        model.params_ = pd.Series([payload["params"][k] for k in names], index=names, dtype=float)
        model.set_log_covariance(np.array(payload["log_covariance"], dtype=float))
        model.log_likelihood_ = payload["log_likelihood"]
        model.converged_ = payload["converged"]
        model.boundary_parameters_ = list(payload.get("boundary_parameters", []))
        model.optimizer_message_ = payload["optimizer_message"]
        model.n_customers_ = payload["n_customers"]
        model.rows_ = None
        return model

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


class PurchaseModel(PurchasePredictions, MaximumLikelihoodModel):
    """A purchase family fitted by maximum likelihood; predictions at the point estimate."""

    def fit(self, summary: pd.DataFrame, weights=None):
        """Fit by maximum likelihood on the distinct rows of the family's fitting columns."""
        self.family_class.validate_summary(summary, fitting=True)
        return self._fit(summary, weights)

    def predict(self, summary: pd.DataFrame, t) -> pd.DataFrame:
        """``expected_purchases`` in the next ``t`` and ``probability_alive`` in one frame,
        P(alive) computed once for both (scoring asks for the two together)."""
        params, customer = self._prepare(summary)
        alive = self.family_.probability_alive(params, *customer)
        expected = self.family_.expected_purchases(
            params, *customer, self.to_model_time(t), p_alive=alive
        )
        return pd.DataFrame(
            {
                "expected_purchases": np.asarray(expected)[0],
                "probability_alive": np.asarray(alive)[0],
            },
            index=summary.index,
        )

    def expected_purchases_new_customer(self, t, covariates=None) -> float | np.ndarray:
        """E[X(t)]: expected purchases of a newly acquired customer in their first ``t``.

        A covariate model needs the new customer's ``covariates``: a mapping (or Series) of
        each covariate column to its value."""
        self.check_fitted()
        customer = pd.DataFrame(
            {k: [v] for k, v in dict({} if covariates is None else covariates).items()},
            index=pd.RangeIndex(1),
        )
        return self._new_customer_purchases(self.customer_params(customer), t)

    def conditional_latent_draws(
        self, summary: pd.DataFrame, n: int = 100, seed=None, draws: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Draws of each customer's latent state given their history: a tidy DataFrame with
        columns ``customer_id, draw`` and the family's latent names (``alive``, ``lambda``, ...),
        ``n`` rows per customer.

        With ``draws`` (e.g. ``param_draws(200)``) each latent draw uses one parameter draw, so
        parameter uncertainty is included; otherwise all use the point estimate.
        """
        params, customer = self._prepare(summary)
        params, n = repeat_draws(self, summary, params, n, draws)
        latent = self.family_.sample_latent(params, *customer, np.random.default_rng(seed))
        return latent_frame(summary, n, latent)


class SpendModel(SpendPredictions, MaximumLikelihoodModel):
    """A spend family fitted by maximum likelihood (on the customers with repeat purchases)."""

    def fit(self, summary: pd.DataFrame, weights=None):
        """Fit on the repeat customers of ``summary`` (needs ``monetary_value``). Customers
        without repeat purchases carry no information about spend and are left out of the fit
        (they get the population mean from :meth:`expected_spend`). No time unit is needed."""
        self.family_class.validate_summary(summary, fitting=True)
        return self._fit(summary, weights)

    def conditional_latent_draws(
        self, summary: pd.DataFrame, n: int = 100, seed=None, draws: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Draws of each customer's latent spend rate ``nu`` and mean spend per transaction
        ``p / nu`` given their history: tidy DataFrame ``customer_id, draw, nu, mean_spend``.

        With ``draws`` (e.g. ``param_draws(200)``) each latent draw uses one parameter draw.
        """
        params, customer = self._prepare(summary)
        params, n = repeat_draws(self, summary, params, n, draws)
        nu = self.family_.sample_spend_rate(params, *customer, np.random.default_rng(seed))
        mean_spend = np.asarray(params["p"]) / nu
        return latent_frame(summary, n, {"nu": nu, "mean_spend": mean_spend})


def repeat_draws(model, summary, params, n, draws):
    """``(params, n)``: the point estimate repeated ``n`` times, or one row per given draw."""
    if draws is None:
        n = int(n)
        if n < 1:
            raise ValueError(f"n must be a positive number of draws, got {n!r}")
        return {k: np.repeat(v, n, axis=0) for k, v in params.items()}, n
    return model.customer_params(summary, draws), len(draws)


def latent_frame(summary: pd.DataFrame, n: int, latent: dict[str, np.ndarray]) -> pd.DataFrame:
    """Tidy frame ``customer_id, draw, <latent columns>`` from arrays of shape (n, customers)."""
    shape = (n, len(summary))
    index_name = summary.index.name or "customer_id"
    columns = {
        index_name: np.tile(summary.index.to_numpy(), n),
        "draw": np.repeat(np.arange(n), len(summary)),
    }
    columns.update({name: np.broadcast_to(v, shape).ravel() for name, v in latent.items()})
    return pd.DataFrame(columns)
