"""Static covariates for every maximum-likelihood family, written once.

A family declares which of its parameters each process's covariates scale and with which sign
(``covariate_links``): for Pareto/NBD (Fader & Hardie 2007, "Incorporating time-invariant
covariates into the Pareto/NBD and BG/NBD models", note 019; Bachmann, Meierer & Naef 2021)::

    alpha_i = alpha * exp(-purchase' z_i)      beta_i = beta * exp(-dropout' z_i)

so that ``lambda_i ~ Gamma(r, alpha_i)`` and ``mu_i ~ Gamma(s, beta_i)``: a positive coefficient
raises the customer's purchase or dropout rate (CLVTools' ``trans.x`` is our ``purchase.x``, its
``life.x`` our ``dropout.x``). BG/NBD, MBG/NBD and the CNBD-k models scale ``alpha`` as above
and ``a_i = a exp(dropout' z_i)``, ``b_i = b exp(dropout' z_i)`` (CLVTools' ``bgnbd_staticcov``);
Gamma-Gamma scales its ``v`` (``v_i = v exp(spend' z_i)``, expected spend proportional to it).

The likelihood of customer ``i`` is the family's own likelihood at the customer's parameters
``theta_i`` (``log theta_ij = log theta_j + sum_k L_jk z_ik gamma_k``, ``L`` the links), so
zero coefficients give the covariate-free likelihood exactly. Its gradient comes from the
family's per-row :meth:`~clvmodels.families.base.Family.log_likelihood_gradient` ``g_ij = d ll_i
/ d log theta_ij`` by the chain rule: ``d/d gamma_k = sum_i n_i z_ik sum_j L_jk g_ij``. Fitting
runs on the distinct rows of (fitting columns, covariates) with their counts.

Options: ``penalty`` adds ``penalty * sum_k gamma_k^2`` to the negative log-likelihood (L2, as
CLVTools' ``reg.lambdas``, on every coefficient); ``same_coefficients`` makes the purchase and
dropout coefficients of the named columns (``True``: every column in both lists) one parameter
(CLVTools' ``names.cov.constr``); both coefficients are reported, with equal values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from clvmodels.covariates import CovariateEncoding
from clvmodels.errors import InputError
from clvmodels.families.base import Family, FitRows
from clvmodels.optimize import (
    compress_rows,
    minimize_negative_log_likelihood,
    numerical_hessian,
    small_gradient,
    stationary_to_rounding,
)

#: the covariate keywords of the estimators, by process
PROCESS_KEYWORDS = {
    "purchase": "purchase_covariates",
    "dropout": "dropout_covariates",
    "spend": "spend_covariates",
}


def links_of(family_class: type[Family]) -> dict[str, tuple[tuple[str, int], ...]]:
    """The family's ``covariate_links`` (process -> ((parameter, sign), ...)); {} if none."""
    return dict(getattr(family_class, "covariate_links", {}) or {})


def check_settings(
    family_class: type[Family],
    estimator: str,
    covariates: dict[str, Sequence[str] | None],
    penalty: float,
    same_coefficients,
) -> dict[str, tuple[str, ...]]:
    """The covariate columns per process, checked against the family (TypeError/ValueError
    for settings the family does not support, as for any bad constructor argument)."""
    links = links_of(family_class)
    out: dict[str, tuple[str, ...]] = {}
    for process, columns in covariates.items():
        if columns is None:
            continue
        if isinstance(columns, str):
            columns = [columns]
        columns = tuple(columns)
        if process not in links:
            raise TypeError(
                f"{estimator} takes no {PROCESS_KEYWORDS[process]}: its covariates are "
                + (", ".join(PROCESS_KEYWORDS[p] for p in links) or "not supported")
            )
        if not all(isinstance(c, str) and c for c in columns):
            raise TypeError(f"{PROCESS_KEYWORDS[process]} must be column names, got {columns!r}")
        if len(set(columns)) != len(columns):
            raise ValueError(f"{PROCESS_KEYWORDS[process]} names a column twice: {columns!r}")
        if columns:
            out[process] = columns
    penalty = float(penalty)
    if not (np.isfinite(penalty) and penalty >= 0):
        raise ValueError(f"penalty must be a finite number >= 0, got {penalty!r}")
    if same_coefficients not in (False, None) and not out:
        raise ValueError("same_coefficients needs covariates")
    if same_coefficients not in (False, None, True):
        both = set(out.get("purchase", ())) & set(out.get("dropout", ()))
        wrong = [c for c in same_coefficients if c not in both]
        if isinstance(same_coefficients, str) or wrong:
            raise ValueError(
                "same_coefficients must be True or a list of columns that are both purchase and "
                f"dropout covariates ({sorted(both)}); got {same_coefficients!r}"
            )
    return out


@dataclass(frozen=True)
class CovariateDesign:
    """The fitted layout of a covariate model: encoding, coefficients, links and constraints.

    ``coefficient_names`` (``purchase.<feature>``, ``dropout.<feature>``, ``spend.<feature>``)
    follow the family's parameters in ``params_``. The optimiser works on ``free`` values:
    the log of each family parameter, then one value per free coefficient; ``expansion`` maps
    them to the reported coefficients (a shared coefficient appears under both names).
    """

    param_names: tuple[str, ...]
    processes: dict[str, tuple[str, ...]]
    links: dict[str, tuple[tuple[str, int], ...]]
    encoding: CovariateEncoding
    shared_columns: tuple[str, ...] = ()
    penalty: float = 0.0
    coefficient_names: tuple[str, ...] = field(init=False)
    coefficient_features: tuple[int, ...] = field(init=False)
    free_coefficient_names: tuple[str, ...] = field(init=False)
    expansion: np.ndarray = field(init=False, repr=False)
    link_matrix: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        features = self.encoding.features
        names, feature_index, process_of, column_of = [], [], [], []
        for process, columns in self.processes.items():
            for column in columns:
                for feature in self.encoding.features_of(column):
                    names.append(f"{process}.{feature}")
                    feature_index.append(features.index(feature))
                    process_of.append(process)
                    column_of.append(column)
        free_of, free_names = [], []
        for k, name in enumerate(names):
            if process_of[k] == "dropout" and column_of[k] in self.shared_columns:
                twin = names.index("purchase." + name.split(".", 1)[1])
                free_of.append(free_of[twin])
                continue
            free_of.append(len(free_names))
            shared = process_of[k] == "purchase" and column_of[k] in self.shared_columns
            free_names.append("shared." + name.split(".", 1)[1] if shared else name)
        expansion = np.zeros((len(names), len(free_names)))
        expansion[np.arange(len(names)), free_of] = 1.0
        link = np.zeros((len(self.param_names), len(names)))
        for k, process in enumerate(process_of):
            for param, sign in self.links[process]:
                link[self.param_names.index(param), k] = float(sign)
        object.__setattr__(self, "coefficient_names", tuple(names))
        object.__setattr__(self, "coefficient_features", tuple(feature_index))
        object.__setattr__(self, "free_coefficient_names", tuple(free_names))
        object.__setattr__(self, "expansion", expansion)
        object.__setattr__(self, "link_matrix", link)

    @classmethod
    def build(cls, family_class, processes, summary, same_coefficients, penalty):
        """The design of ``processes`` learnt from the fitting ``summary``."""
        columns = list(dict.fromkeys(c for cols in processes.values() for c in cols))
        encoding = CovariateEncoding.from_frame(summary, columns)
        both = [c for c in processes.get("purchase", ()) if c in processes.get("dropout", ())]
        shared = both if same_coefficients is True else list(same_coefficients or ())
        return cls(
            tuple(family_class.param_names),
            dict(processes),
            links_of(family_class),
            encoding,
            tuple(shared),
            float(penalty),
        )

    # ---- layout ------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Every reported parameter: the family's, then the coefficients."""
        return [*self.param_names, *self.coefficient_names]

    @property
    def free_names(self) -> list[str]:
        return [*self.param_names, *self.free_coefficient_names]

    @property
    def full_expansion(self) -> np.ndarray:
        """Free values -> reported values on the fitting scale (logs, then coefficients)."""
        n = len(self.param_names)
        out = np.zeros((len(self.names), len(self.free_names)))
        out[:n, :n] = np.eye(n)
        out[n:, n:] = self.expansion
        return out

    def reported(self, free: np.ndarray) -> np.ndarray:
        """The reported parameters (family parameters, coefficients) of a free vector."""
        n = len(self.param_names)
        free = np.asarray(free, dtype=float)
        return np.concatenate([np.exp(free[:n]), self.expansion @ free[n:]])

    def free_of(self, values: pd.Series | dict) -> np.ndarray:
        """The free vector of reported parameters (logs of the family's parameters)."""
        logs = [np.log(float(values[n])) for n in self.param_names]
        coefficients = np.array([float(values[n]) for n in self.coefficient_names])
        free = (
            np.linalg.lstsq(self.expansion, coefficients, rcond=None)[0]
            if len(coefficients)
            else np.zeros(0)
        )
        return np.concatenate([logs, free])

    # ---- data --------------------------------------------------------------------------------
    def features(self, summary: pd.DataFrame, what: str = "summary") -> np.ndarray:
        """The covariate value of each coefficient per customer, ``(n, n_coefficients)``."""
        matrix = self.encoding.matrix(summary, what)
        return matrix[:, list(self.coefficient_features)]

    def params_at(self, free: np.ndarray, z: np.ndarray):
        """Per-row family parameters at the free values ``free`` (log-parameters, then the
        free coefficients) for rows with covariates ``z``."""
        n = len(self.param_names)
        return self.row_params(free[:n], self.expansion @ free[n:], z)

    def row_params(self, log_params: np.ndarray, coefficients: np.ndarray, z: np.ndarray):
        """Per-row family parameters (1-d arrays) at one parameter vector."""
        offsets = (z * coefficients) @ self.link_matrix.T  # (n_rows, n_params)
        return {
            name: np.exp(log_params[j] + offsets[:, j]) for j, name in enumerate(self.param_names)
        }

    def customer_params(self, draws: pd.DataFrame, z: np.ndarray) -> dict[str, np.ndarray]:
        """The family's ``params`` for customers with covariates ``z``: ``(n_draws,
        n_customers)`` for the parameters the covariates scale, ``(n_draws, 1)`` otherwise."""
        missing = [n for n in self.names if n not in draws.columns]
        if missing:
            raise InputError(
                f"the parameter draws lack the covariate model's column(s) {missing}; use the "
                "model's own param_draws() or point_draws()"
            )
        coefficients = draws[list(self.coefficient_names)].to_numpy(dtype=float)
        out = {}
        for j, name in enumerate(self.param_names):
            base = np.log(draws[name].to_numpy(dtype=float))[:, None]
            loading = self.link_matrix[j]
            if not loading.any():
                out[name] = np.exp(base)
                continue
            out[name] = np.exp(base + (coefficients * loading) @ z.T)
        return out

    # ---- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "processes": {p: list(c) for p, c in self.processes.items()},
            "encoding": self.encoding.to_dict(),
            "shared_columns": list(self.shared_columns),
            "penalty": self.penalty,
        }

    @classmethod
    def from_dict(cls, family_class, payload: dict[str, Any]) -> CovariateDesign:
        return cls(
            tuple(family_class.param_names),
            {p: tuple(c) for p, c in payload["processes"].items()},
            links_of(family_class),
            CovariateEncoding.from_dict(payload["encoding"]),
            tuple(payload.get("shared_columns", ())),
            float(payload.get("penalty", 0.0)),
        )


@dataclass(frozen=True)
class CovariateRows:
    """Distinct rows of (fitting columns, covariates): the family's rows and each row's
    covariate values ``z`` (one column per coefficient)."""

    rows: FitRows
    z: np.ndarray

    def reweighted(self, family: Family, counts: np.ndarray) -> CovariateRows:
        """The same rows with new counts (a bootstrap resample); empty rows dropped."""
        keep = np.asarray(counts) > 0
        columns = {c: v[keep] for c, v in self.rows.columns.items()}
        return CovariateRows(family.make_rows(columns, counts[keep]), self.z[keep])


def covariate_rows(family: Family, summary: pd.DataFrame, z: np.ndarray, weights) -> CovariateRows:
    """The distinct (fitting columns, covariates) rows of ``summary`` with their counts.

    Families that compress with the base :meth:`Family.fit_rows` are compressed on the fitting
    columns and the covariates together; families with their own ``fit_rows`` (Gamma-Gamma
    keeps only repeat customers, CNBD-k averages ``litt``) get it once per distinct covariate
    vector, so their rules hold unchanged.
    """
    cells, cell = np.unique(z, axis=0, return_inverse=True)
    cell = cell.ravel()
    w = None if weights is None else np.asarray(weights, dtype=float)
    if type(family).fit_rows is Family.fit_rows:
        arrays = [summary[c].to_numpy(dtype=float) for c in family.fit_columns]
        *unique, counts = compress_rows(*arrays, cell.astype(float), weights=w)
        keep = counts > 0
        columns = {c: u[keep] for c, u in zip(family.fit_columns, unique[:-1], strict=True)}
        rows = family.make_rows(columns, counts[keep])
        return CovariateRows(rows, cells[unique[-1][keep].astype(np.intp)])
    pieces, z_rows = [], []
    order = np.argsort(cell, kind="stable")
    bounds = np.searchsorted(cell[order], np.arange(len(cells) + 1))
    for k in range(len(cells)):
        index = order[bounds[k] : bounds[k + 1]]
        try:
            piece = family.fit_rows(summary.iloc[index], None if w is None else w[index])
        except InputError:
            continue  # nothing to fit in this cell (the whole summary was checked before)
        pieces.append(piece)
        z_rows.append(np.repeat(cells[k][None, :], piece.n_rows, axis=0))
    columns = {c: np.concatenate([p.columns[c] for p in pieces]) for c in pieces[0].columns}
    counts = np.concatenate([p.counts for p in pieces])
    return CovariateRows(family.make_rows(columns, counts), np.vstack(z_rows))


#: with at most this many distinct covariate vectors (cells), each holding at least
#: ``MIN_ROWS_PER_CELL`` distinct rows on average, the likelihood runs once per cell on the
#: family's own shared-parameter kernel; otherwise row by row on per-row parameters (faster for
#: small data: one vectorised call instead of a call per cell)
MAX_CELLS = 256
MIN_ROWS_PER_CELL = 2000


def objective_function(family: Family, design: CovariateDesign, data: CovariateRows):
    """``free -> (negative log-likelihood + penalty, gradient)`` of the covariate model.

    Customers with the same covariate values share their parameters, so with few distinct
    covariate vectors (categorical covariates, at most :data:`MAX_CELLS`) and many rows the
    family's own
    :meth:`~clvmodels.families.base.Family.negative_log_likelihood` (its fastest kernel, with
    its lookup tables and grouped quadrature) runs once per vector and the coefficient
    gradient is the chain rule over vectors; otherwise every row gets its own parameters
    through :meth:`~clvmodels.families.base.Family.log_likelihood_gradient`.
    """
    n = len(design.param_names)
    expansion = design.expansion
    link = design.link_matrix
    penalty = design.penalty
    cells, cell_of = np.unique(data.z, axis=0, return_inverse=True)
    cell_of = cell_of.ravel()

    def finish(value, g_log, g_coef, coefficients):
        value = value + penalty * float(coefficients @ coefficients)
        g_coef = g_coef + 2.0 * penalty * coefficients
        return value, np.concatenate([g_log, expansion.T @ g_coef])

    if len(cells) <= MAX_CELLS and data.rows.n_rows >= MIN_ROWS_PER_CELL * len(cells):
        cell_rows = [
            family.make_rows(
                {c: v[cell_of == k] for c, v in data.rows.columns.items()},
                data.rows.counts[cell_of == k],
            )
            for k in range(len(cells))
        ]

        def by_cell(free):
            free = np.asarray(free, dtype=float)
            coefficients = expansion @ free[n:]
            offsets = (cells * coefficients) @ link.T  # (n_cells, n_params)
            value, g_log, g_coef = 0.0, np.zeros(n), np.zeros(len(coefficients))
            for k, rows in enumerate(cell_rows):
                v, g = family.negative_log_likelihood(free[:n] + offsets[k], rows)
                if not np.isfinite(v):
                    return np.inf, np.full(len(free), np.nan)
                g = np.asarray(g, dtype=float)
                value += float(v)
                g_log += g
                g_coef += cells[k] * (link.T @ g)
            return finish(value, g_log, g_coef, coefficients)

        return by_cell

    counts = data.rows.counts
    rows_data = data.rows.columns
    z = data.z

    def by_row(free):
        free = np.asarray(free, dtype=float)
        coefficients = expansion @ free[n:]
        params = design.row_params(free[:n], coefficients, z)
        ll, grad_rows = family.log_likelihood_gradient(params, rows_data)
        if not np.all(np.isfinite(ll)):
            return np.inf, np.full(len(free), np.nan)
        weighted = grad_rows * counts[:, None]
        g_coef = np.einsum("ik,ik->k", z, weighted @ link)
        return finish(-float(counts @ ll), -weighted.sum(axis=0), -g_coef, coefficients)

    return by_row


def minimize(objective, x0: np.ndarray):
    """L-BFGS-B from ``x0`` (ending where the gradient is :func:`stationary_to_rounding`), a
    second start from its optimum, then Newton steps on the numerical Hessian while they lower
    the objective (the optimum to ~1e-10 in the gradient, so the estimates are reproducible to
    far below their standard errors)."""
    result = minimize_negative_log_likelihood(objective, x0, stop=stationary_to_rounding)
    if not (result.converged and small_gradient(result.neg_log_likelihood, result.gradient)):
        polish = minimize_negative_log_likelihood(
            objective, result.log_params, stop=stationary_to_rounding
        )
        if polish.neg_log_likelihood <= result.neg_log_likelihood:
            result = polish
    x, value, gradient = result.log_params, result.neg_log_likelihood, result.gradient
    for _ in range(8):
        if small_gradient(value, gradient):
            break
        hessian = numerical_hessian(lambda v: objective(v)[1], x, gradient_at_x=gradient)
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)) or np.any(np.abs(x - step) >= 30.0):
            break
        new_value, new_gradient = objective(x - step)
        if not new_value <= value:
            break
        x, value, gradient = x - step, new_value, new_gradient
    result.log_params, result.neg_log_likelihood, result.gradient = x, float(value), gradient
    return result


def fit(family: Family, design: CovariateDesign, data: CovariateRows, start: np.ndarray):
    """Fit the covariate model from the covariate-free estimate ``start`` (log-parameters)
    with every coefficient at 0; returns the optimiser's result and the objective."""
    objective = objective_function(family, design, data)
    x0 = np.concatenate([start, np.zeros(len(design.free_coefficient_names))])
    return minimize(objective, x0), objective


def likelihood_ratio_test(restricted_model, full_model) -> pd.Series:
    """Likelihood-ratio test of nested maximum-likelihood models fitted on the same customers:
    ``statistic = 2 (ll_full - ll_restricted)``, chi-squared with as many degrees of freedom
    as the full model has more free parameters (e.g. a model without covariates against one
    with them). Returns ``statistic``, ``df`` and ``p_value``."""
    for model in (restricted_model, full_model):
        model.check_fitted()
    df = n_free_parameters(full_model) - n_free_parameters(restricted_model)
    if df <= 0:
        raise ValueError(
            "the full model must have more free parameters than the restricted one "
            f"({n_free_parameters(full_model)} vs {n_free_parameters(restricted_model)})"
        )
    if not np.isclose(full_model.n_customers_, restricted_model.n_customers_):
        raise InputError(
            "the two models were fitted on different customers "
            f"({restricted_model.n_customers_:g} vs {full_model.n_customers_:g}); fit both on "
            "the same summary"
        )
    statistic = 2.0 * (full_model.log_likelihood_ - restricted_model.log_likelihood_)
    return pd.Series(
        {
            "statistic": statistic,
            "df": float(df),
            "p_value": float(stats.chi2.sf(max(statistic, 0.0), df)),
        }
    )


def n_free_parameters(model) -> int:
    """The number of estimated parameters (shared coefficients counted once)."""
    design = getattr(model, "covariate_design_", None)
    return len(design.free_names) if design is not None else len(model.param_names)
