"""The interface every model family implements (see ``docs/architecture.md``).

A *family* is a model's math: pure, vectorised functions of (parameters, customer rows), written
once in the family's own file with the paper's equations cited, and bound to this interface by a
small immutable class. A family holds no data and no caches; its only state is a fixed setting
(e.g. the Erlang order ``k`` of the CNBD-k models). Estimators hold a family and own the fitting;
valuation, evaluation, plots, the CLI and Dask scoring talk to this interface alone.

Conventions
-----------
* ``params``: a mapping ``{name: array}`` for the names in ``param_names``, each of shape
  ``(n_draws, 1)`` (shared by all customers) or ``(n_draws, n_customers)``; scalars broadcast.
* customers: 1-d float arrays of the summary's ``customer_columns``, passed positionally after
  ``params``: ``x`` (frequency), ``t_x`` (recency), ``T`` (age) for the RFM purchase families;
  ``x``, ``m`` (monetary value) for Gamma-Gamma. A family whose customers are described by
  other columns (a subscription's tenure and churn flag, BG/BB's number of opportunities)
  declares them in ``customer_columns`` and checks them in ``validate_summary``; callers use
  ``customer_arrays(summary)`` and never read the columns themselves.
* results broadcast to ``(n_draws, n_customers)``; sampled purchase counts add a last axis of
  length ``len(t_grid)``.
* ``p_alive``: an optional precomputed :meth:`PurchaseFamily.probability_alive` of the same
  params and customers. P(alive) does not depend on the horizon, so a caller that evaluates
  several horizons computes it once and passes it on; the family never remembers it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import special

from clvmodels.errors import InputError, NumericalError
from clvmodels.optimize import compress_rows
from clvmodels.validation import SUMMARY_COLUMNS, check_weights, validate_summary


@dataclass(frozen=True)
class FitRows:
    """The distinct rows of a family's ``fit_columns`` with their multiplicities.

    ``columns`` maps each fitting column to its distinct-row values, ``counts`` holds how many
    customers (or how much weight) each row stands for. ``aux`` holds what the family
    precomputed for its likelihood from these rows alone (integer codes, quadrature plans): it is
    owned by the caller that holds the rows, never by the family.
    """

    columns: dict[str, np.ndarray]
    counts: np.ndarray
    aux: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return len(self.counts)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]


class Family:
    """What purchase and spend families share: settings, parameters and compressed fitting rows."""

    name: ClassVar[str]
    label: ClassVar[str]
    param_names: ClassVar[tuple[str, ...]]
    fit_columns: ClassVar[tuple[str, ...]]
    #: the summary columns passed (as float arrays, in this order) to the prediction methods
    customer_columns: ClassVar[tuple[str, ...]]
    #: settings searched by the estimator when given as None: name -> candidate values
    settings_grid: ClassVar[dict[str, tuple]] = {}

    @classmethod
    def customer_arrays(cls, summary: pd.DataFrame) -> tuple[np.ndarray, ...]:
        """The ``customer_columns`` of ``summary`` as float arrays, in order."""
        return tuple(summary[c].to_numpy(dtype=float) for c in cls.customer_columns)

    @classmethod
    def validate_summary(
        cls, summary: pd.DataFrame, what: str = "summary", fitting: bool = False
    ) -> pd.DataFrame:
        """Check ``summary`` for this family (``fitting``: also the columns only the
        likelihood reads) and return it; raise InputError naming the problem and the fix."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The family's fixed settings (``{}`` for most, ``{"k": 3}`` for CNBD-k)."""
        return dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}

    def unpack(self, params: Mapping[str, Any]) -> tuple:
        """The parameter arrays in ``param_names`` order."""
        return tuple(params[name] for name in self.param_names)

    # ---- fitting rows --------------------------------------------------------------------
    def fit_rows(self, summary: pd.DataFrame, weights=None) -> FitRows:
        """The distinct rows of ``fit_columns`` in ``summary`` with their counts (weighted)."""
        w = check_weights(weights, len(summary))
        arrays = [summary[c].to_numpy(dtype=float) for c in self.fit_columns]
        *unique, counts = compress_rows(*arrays, weights=w)
        keep = counts > 0
        if not keep.any():
            raise InputError(
                f"{self.label} cannot be fitted: the customers' weights sum to 0. Fix: give "
                "positive weights to the customers to fit on."
            )
        columns = {c: u[keep] for c, u in zip(self.fit_columns, unique, strict=True)}
        return self.make_rows(columns, counts[keep])

    def make_rows(self, columns: dict[str, np.ndarray], counts: np.ndarray) -> FitRows:
        """FitRows from distinct rows; families that precompute lookup tables override this."""
        return FitRows(columns, np.asarray(counts, dtype=float))

    def reweighted_rows(self, rows: FitRows, counts: np.ndarray) -> FitRows:
        """The same distinct rows with new counts (a bootstrap resample); empty rows dropped."""
        keep = np.asarray(counts) > 0
        return self.make_rows({c: v[keep] for c, v in rows.columns.items()}, counts[keep])

    def subset_rows(self, rows: FitRows, max_rows: int, seed: int) -> FitRows:
        """A random subset of ``max_rows`` distinct rows with their counts (for warm starts)."""
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(rows.n_rows, max_rows, replace=False))
        return self.make_rows({c: v[pick] for c, v in rows.columns.items()}, rows.counts[pick])

    # ---- likelihood ----------------------------------------------------------------------
    def negative_log_likelihood(self, log_params: np.ndarray, rows: FitRows):
        """``(value, gradient)``: the total negative log-likelihood of ``rows`` and its gradient
        with respect to the log-parameters."""
        raise NotImplementedError

    def initial_log_params(self, rows: FitRows) -> np.ndarray:
        raise NotImplementedError

    def preconditioner(self, rows: FitRows, x0: np.ndarray):
        """Optional k x k matrix M for the search ``log_params = x0 + M z``; None by default."""
        return None

    def log_likelihood(self, params: Mapping[str, Any], data: Mapping[str, np.ndarray]):
        """Per-customer log-likelihood; ``data`` maps ``fit_columns`` to arrays."""
        raise NotImplementedError

    def log_likelihood_gradient(self, params: Mapping[str, Any], data: Mapping[str, np.ndarray]):
        """``(ll, grad)``: the per-row log-likelihood at per-row parameters and its derivatives
        with respect to each log-parameter, shape ``(n_rows, len(param_names))``.

        ``params`` maps each name to a 1-d array of one value per row (or a scalar), ``data``
        maps ``fit_columns`` to the rows. Covariate models (:mod:`clvmodels.estimators.covariates`)
        give every row its own parameters and get the coefficients' gradient from this by the
        chain rule. This default takes central differences of :meth:`log_likelihood` with a step
        of 1e-5 on the log scale (truncation and rounding errors about 1e-10 relative); families
        with an analytic gradient override it.
        """
        step = 1e-5
        n_rows = len(next(iter(data.values())))
        values = {k: np.broadcast_to(np.asarray(params[k], float), (n_rows,)) for k in params}
        ll = np.asarray(self.log_likelihood(values, data), dtype=float)
        grad = np.empty((n_rows, len(self.param_names)))
        for j, name in enumerate(self.param_names):
            up = {**values, name: values[name] * np.exp(step)}
            down = {**values, name: values[name] * np.exp(-step)}
            grad[:, j] = (
                np.asarray(self.log_likelihood(up, data))
                - np.asarray(self.log_likelihood(down, data))
            ) / (2.0 * step)
        return ll, grad

    def identification_problems(self, rows: FitRows) -> list[str]:
        """Why these rows cannot identify the family's parameters (empty when they can)."""
        total = float(rows.counts.sum())
        if not total > 0:
            return ["the customers' weights sum to 0"]
        if rows.n_rows < 2:
            return ["all customers have the same history, so there is no variation to learn from"]
        return []

    def boundary_hint(self, params: pd.Series, names: list[str]) -> str:
        """What an estimate on the boundary of the named parameters means for this family."""
        return ""

    def fit_statistics(self, rows: FitRows) -> dict[str, float]:
        """Descriptive statistics of the fitting data that the estimator keeps as fitted
        attributes (``name_``); none by default."""
        return {}

    def certify_log_likelihood(self, params: Mapping[str, Any], data: Mapping[str, np.ndarray]):
        """Evaluate :meth:`log_likelihood` at a fit's estimate, as every fit ends: the public
        likelihood makes every check the family has, also those the search skips for speed
        (GGompertz/NBD's second quadrature rule raises :class:`~clvmodels.errors.NumericalError`
        where it cannot certify a value), and a row whose value is not finite raises here."""
        ll = np.asarray(self.log_likelihood(params, data), dtype=float)
        bad = int(np.count_nonzero(~np.isfinite(ll)))
        if bad:
            raise NumericalError(
                f"{self.label}: the fit ended where the log-likelihood of {bad} distinct "
                "customer row(s) is not finite; check the data for extreme values (covariates: "
                "standardise them or add a penalty)"
            )

    def fit_warnings(self, params: pd.Series, rows: FitRows) -> list[Warning]:
        """Warnings about a fit at ``params`` (a model assumption the data contradict, a
        parameter region where a prediction does not exist); none by default."""
        return []

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({inner})"


class PurchaseFamily(Family):
    """A purchase model: likelihood, predictions and samplers (see the module docstring)."""

    kind: ClassVar[str] = "purchase"
    fit_columns: ClassVar[tuple[str, ...]] = SUMMARY_COLUMNS
    customer_columns: ClassVar[tuple[str, ...]] = SUMMARY_COLUMNS
    #: names of the latent values returned by :meth:`sample_latent`
    latent_names: ClassVar[tuple[str, ...]] = ("alive", "lambda")

    @classmethod
    def validate_summary(
        cls, summary: pd.DataFrame, what: str = "summary", fitting: bool = False
    ) -> pd.DataFrame:
        """The RFM summary checks of :func:`clvmodels.validation.validate_summary`, with the
        family's extra fitting columns (CNBD-k's ``litt``) when ``fitting``."""
        extra = tuple(c for c in cls.fit_columns if c not in SUMMARY_COLUMNS) if fitting else ()
        return validate_summary(summary, extra_columns=extra, what=what)

    def identification_problems(self, rows: FitRows) -> list[str]:
        problems = super().identification_problems(rows)
        used = rows.counts > 0
        columns = rows.columns
        if "frequency" in columns and not np.any(columns["frequency"][used] > 0):
            problems.append("no customer made a repeat purchase, so the purchase rate is unknown")
        if "T" in columns and not np.any(columns["T"][used] > 0):
            problems.append("every customer was observed for zero time (T = 0)")
        return problems

    def probability_alive(self, params, x, t_x, T):
        """P(active at T | x, t_x, T)."""
        raise NotImplementedError

    def expected_purchases(self, params, x, t_x, T, t, p_alive=None):
        """E[X(T, T+t] | x, t_x, T]: expected purchases in the next ``t``."""
        raise NotImplementedError

    def purchase_probability(self, params, x, t_x, T, t, k, p_alive=None):
        """P(X(T, T+t] = k | x, t_x, T)."""
        raise NotImplementedError

    def expected_purchases_new_customer(self, params, t):
        """E[X(t)] for a customer just acquired (first purchase at time 0)."""
        raise NotImplementedError

    def sample_latent(self, params, x, t_x, T, rng: np.random.Generator) -> dict:
        """One draw of each customer's latent state given the history, as ``{name: array}``
        with the names in ``latent_names``."""
        raise NotImplementedError

    def sample_future_purchases(self, params, x, t_x, T, t_grid, rng, p_alive=None):
        """Cumulative purchase counts at the increasing times ``t_grid`` after T, drawn from the
        customer's posterior: int64 of shape ``broadcast(params, x) + (len(t_grid),)``."""
        raise NotImplementedError

    def sample_future_purchase_periods(self, params, x, t_x, T, t_grid, rng, p_alive=None):
        """:meth:`sample_future_purchases` in sparse form ``(shape, pairs, per_period)``: the
        broadcast shape, flat indices of the paths with at least one purchase and their
        per-period counts. Families with a sampler that never builds the dense array override
        this; the default extracts the buying paths from the dense sample."""
        cumulative = np.asarray(
            self.sample_future_purchases(params, x, t_x, T, t_grid, rng, p_alive=p_alive)
        )
        n_periods = cumulative.shape[-1]
        pairs = np.flatnonzero(cumulative[..., -1]) if n_periods else np.zeros(0, np.intp)
        flat = cumulative.reshape(-1, n_periods)[pairs]
        per_period = np.diff(flat, axis=-1, prepend=np.zeros_like(flat[:, :1]))
        return cumulative.shape[:-1], pairs, per_period

    def discounted_expected_purchases(self, params, *customer_ends_weights, p_alive=None):
        """``sum_k w_k E[X(T, T + e_k] | history]``: the customer arrays, then the period ends
        ``e_k`` and the weights ``w_k`` (the valuation engine passes ``w_k = d_k - d_{k+1}``,
        so that the sum is ``sum_k d_k`` times the purchases of period ``k``, summed by parts).

        One period end at a time, accumulated in place: no draws x customers x periods array.
        Families that share work between period ends override this (BG/NBD and MBG/NBD: one
        walk along the ends per distinct history; BG/BB: once per distinct row).
        """
        *customer, ends, weights = customer_ends_weights
        discounted = scratch = None
        for t, weight in zip(ends, weights, strict=True):
            cumulative = np.asarray(
                self.expected_purchases(params, *customer, float(t), p_alive=p_alive), dtype=float
            )
            if discounted is None:
                discounted = weight * cumulative
            elif discounted.shape == cumulative.shape:
                if scratch is None:
                    scratch = np.empty_like(discounted)
                discounted += np.multiply(cumulative, weight, out=scratch)
            else:
                discounted = discounted + weight * cumulative
        return discounted

    def discounted_expected_residual_transactions(
        self, params, x, t_x, T, delta, p_alive=None, n_nodes: int = 200
    ):
        """DERT = int_0^inf e^{-delta t} dE[X(T, T+t)] (Fader, Hardie & Lee 2005, "RFM and CLV",
        JMR 42(4), eq. 2), continuous rate ``delta`` per model time unit.

        Integrating by parts, ``DERT = int_0^inf e^{-u} E[X(T, T + u/delta)] du``, evaluated by
        ``n_nodes``-point Gauss-Laguerre quadrature of :meth:`expected_purchases` (valid for any
        family; with 200 nodes it agrees with adaptive quadrature to better than 1e-8 relative
        for BG/NBD and MBG/NBD on CDNOW, 80 nodes only to 1e-6). Families with a closed form
        override this.
        """
        if p_alive is None:
            p_alive = self.probability_alive(params, x, t_x, T)
        nodes, weights = special.roots_laguerre(n_nodes)
        total = 0.0
        for u, w in zip(nodes, weights, strict=True):
            total = total + w * np.asarray(
                self.expected_purchases(params, x, t_x, T, u / delta, p_alive=p_alive)
            )
        return total

    def simulate(self, params: Mapping[str, float], T: np.ndarray, holdout, rng) -> dict:
        """Draw customers from the model: ``T`` the ages (one per customer), ``holdout`` an
        optional holdout length. Returns columns ``frequency, recency, T`` (plus the family's
        own, e.g. ``litt``), with ``frequency_holdout``, ``duration_holdout`` when ``holdout`` is
        given, and the latent values as ``true_*`` columns."""
        raise NotImplementedError


class SpendFamily(Family):
    """A spend model: the likelihood of mean spend per transaction, predictions, samplers."""

    kind: ClassVar[str] = "spend"
    fit_columns: ClassVar[tuple[str, ...]] = ("frequency", "monetary_value")
    customer_columns: ClassVar[tuple[str, ...]] = ("frequency", "monetary_value")

    @classmethod
    def validate_summary(
        cls, summary: pd.DataFrame, what: str = "summary", fitting: bool = False
    ) -> pd.DataFrame:
        """The checks of what a spend model reads: ``frequency`` (a whole number >= 0) and
        ``monetary_value`` (>= 0), finite, one row per customer."""
        return validate_summary(summary, monetary=True, what=what, rfm=False)

    def expected_spend(self, params, x, m):
        """E[spend per transaction | x repeat purchases of mean m]; population mean at x = 0."""
        raise NotImplementedError

    def sample_spend_rate(self, params, x, m, rng: np.random.Generator):
        """One draw of each customer's latent mean spend per transaction given (x, m)."""
        raise NotImplementedError

    def sample_future_spend(self, params, x, m, counts, rng: np.random.Generator):
        """Total spend in each period given purchase ``counts`` of shape ``(..., n_periods)``,
        drawing each customer's latent spend level once."""
        raise NotImplementedError

    def simulate(self, params: Mapping[str, float], frequency: np.ndarray, rng) -> dict:
        """Mean spend of ``frequency`` purchases per customer drawn from the model: columns
        ``monetary_value`` and the latent ``true_mean_spend``."""
        raise NotImplementedError
