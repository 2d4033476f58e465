"""Discounted-cash-flow customer lifetime value with uncertainty intervals.

Everything here goes through the model protocol of :mod:`clvmodels.models.base`
(``customer_params``, ``param_draws``, ``point_draws`` and the ``_math_*`` functions), so a
maximum-likelihood model, a hierarchical Bayesian one and a lifetimes-wrapped one are valued
by the same code.

Cash flows
----------
The horizon ``H`` is cut into periods of length ``p`` (both calendar strings such as
``"52W"``/``"1M"``, or numbers in the model's time unit; converted once with
:func:`clvmodels.units.to_unit`). The period ends are ``t_k = k p`` for ``k = 1..K`` with
``K = floor(H / p)``, plus ``t_{K+1} = H`` when ``H`` is not a whole number of periods (a last,
partial period). A zero horizon has no period and every value is 0.

For customer ``i`` the cash flow of period ``k`` is ``margin * S_ik - c_ik`` where ``S_ik`` is the
customer's spend in ``(T + t_{k-1}, T + t_k]`` and ``c_ik`` the optional cost. It is discounted
at the end of its period (the convention of lifetimes' ``customer_lifetime_value``):

    CLV_i = sum_k (margin * S_ik - c_ik) / (1 + i_p) ** (t_k / p)

with ``i_p`` the per-period rate implied by the annual rate,
``i_p = (1 + annual_discount_rate) ** (p_days / 365.25) - 1`` (:func:`units.per_period_rate`),
or given directly as ``period_discount_rate``. The exponent ``t_k / p`` equals ``k`` for full
periods and is fractional for a last partial period.

Three kinds of answer
---------------------
Write ``theta`` for the model parameters (purchase and spend), ``X_ik`` for the purchases in
period ``k``, ``Z_i`` for the customer's latent mean spend.

* ``kind="point"``: ``E[CLV_i | history, theta_hat]`` at the fitted point (MLE, or posterior mean
  for Bayesian models): ``sum_k d_k (margin E[Z_i | x, m, theta] E[X_ik | x, t_x, T, theta] - c_ik)``
  with ``E[X_ik] = E[X(T, T+t_k)] - E[X(T, T+t_{k-1})]``. No interval: lower = median = upper =
  mean.
* ``kind="expected"``: the same conditional expectation evaluated at each parameter draw
  ``theta_d`` (posterior draws; MLE asymptotic or bootstrap draws). The interval is the
  equal-tailed quantile interval of ``{E[CLV_i | theta_d]}_d``: *parameter* uncertainty about
  the customer's expected value, which shrinks as the customer base grows.
* ``kind="predictive"``: draws from the posterior predictive distribution of the value the
  customer will actually produce. For each draw ``d``: take ``theta_d``; draw the customer's
  latent state (alive or not, own purchase rate, own dropout, own spend level) from its
  conditional distribution given the history and ``theta_d``; draw the purchase counts of each
  period (``_math_sample_future_purchases``, cumulative counts differenced) and the spend of those
  purchases (``_math_sample_future_spend``); discount and sum. Quantiles over ``d`` give the
  interval; ``clv_mean`` is the Monte-Carlo mean of the draws. This interval includes parameter
  uncertainty, survival, individual heterogeneity and purchase/spend noise -- it is what one
  should plan with, and what is checked against holdout data.

Intervals are equal-tailed: ``[q_{(1-interval)/2}, q_{(1+interval)/2}]`` of the draws (linear
interpolation between order statistics for values; the ``inverted_cdf`` rule -- always an
attainable integer -- for purchase counts in :func:`predict_purchases`).

The columns ``expected_purchases`` (``E[X(T, T+H)]``), ``expected_spend`` (``E[Z_i]``) and
``probability_alive`` are always evaluated at the point estimate, whatever ``kind``.

Draws
-----
``draws`` is an int ``n`` (the function calls ``model.param_draws(n, seed=...)`` on each model),
or given explicitly: a pair ``(purchase_draws, spend_draws)`` (or a dict with keys
``"purchase"`` and ``"spend"``) of DataFrames in the layout of ``param_draws``, used as they are;
for :func:`predict_purchases` a single DataFrame. Draw ``d`` of the purchase model is paired with
draw ``d`` of the spend model; a one-row table is broadcast against the other.

Scale and reproducibility
-------------------------
For ``kind="expected"`` and ``"point"`` with models whose parameters are shared by all
customers (not grouped), each distinct row (frequency, recency, T, monetary_value, costs,
group) is valued once and the result copied to its customers (exact; totals weight each row
by its multiplicity) -- real summaries at day resolution have far fewer distinct rows than
customers. ``n_jobs`` threads value chunks in parallel.

Customers are processed in chunks (``chunk_size``; by default chosen so that one chunk holds at
most about 4 million draw x customer x period values, i.e. a few tens of MB per array; for
predictive values without per-period draws, which never hold a dense draw x customer x period
array, about 1 million draw x customer paths), so
memory stays bounded by the chunk plus the per-customer outputs; nothing of shape customers x
draws x periods is ever held unless ``return_draws`` asks for it. Per-customer quantiles are
computed inside each chunk (they are per customer, so chunking is exact). Totals (customer
equity) accumulate the *per-draw* sums over customers across chunks, so their interval comes
from the joint draws, not from adding up intervals.

Randomness: ``random_seed`` seeds a ``numpy.random.SeedSequence``; the parameter draws use its
first two children, chunk ``b`` uses child ``b + 2`` (``spawn``). Results are therefore
reproducible for a given seed, customer order, number of draws and ``chunk_size``; the default
chunk size depends only on the kind, the number of draws and periods, so two default calls agree.

Continuous discounting (DERT)
-----------------------------
:func:`discounted_expected_residual_transactions` gives the discounted expected residual
transactions ``DERT = int_0^inf e^{-delta t} dE[X(T, T+t)]`` (Fader, Hardie & Lee 2005, "RFM and
CLV", Journal of Marketing Research 42(4), eq. 2): a closed form for Pareto/NBD and a
Gauss-Laguerre quadrature of the model's own ``_math_expected_purchases`` for every other
purchase model (BG/NBD, MBG/NBD, hierarchical models). Dispatch is by model class name in the
table ``_DERT_CLOSED_FORMS`` of this module (no hook in the model files); a new closed form is
one function added there.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from numbers import Real

import numpy as np
import pandas as pd
from scipy import special

from clvmodels import units
from clvmodels.errors import InputError, NotFittedError
from clvmodels.models.base import summary_arrays, summary_time_unit, validate_summary

__all__ = [
    "lifetime_value",
    "predict_purchases",
    "customer_equity",
    "expected_cash_flows",
    "discounted_expected_residual_transactions",
    "interval_coverage",
    "pit_values",
    "period_grid",
    "discount_factors",
]

KINDS = ("predictive", "expected", "point")
DEFAULT_ANNUAL_DISCOUNT_RATE = 0.10
# one chunk holds at most this many draw x customer x period values (~32 MB per float array)
CHUNK_ELEMENTS = 1 << 22
# predictive chunks hold only draw x customer arrays (and the sparse buying paths): at most this
# many draw x customer paths (~8 MB per float array); larger chunks cut the per-chunk overhead
PREDICTIVE_CHUNK_PATHS = 1 << 20
MAX_CHUNK_CUSTOMERS = 50_000


# --------------------------------------------------------------------------------------------
# time grid and discounting
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PeriodGrid:
    """Period ends in model units and their discount factors.

    ``ends[k]`` is ``t_{k+1}``; ``fractions[k]`` the length of period ``k+1`` in periods (1 for
    full periods, < 1 for a last partial one); ``discount[k] = (1 + rate) ** -(ends[k] / period)``.
    """

    ends: np.ndarray
    fractions: np.ndarray
    discount: np.ndarray
    period: float
    horizon: float
    rate: float
    unit: str

    @property
    def n_periods(self) -> int:
        return len(self.ends)


def _with_amount(duration):
    """Accept a bare unit ("M", "week") as one of that unit ("1M"), like pandas frequencies."""
    if isinstance(duration, str) and not re.search(r"[0-9]", duration):
        units.normalize_unit(duration)  # raises a clear TimeUnitError for unknown units
        return "1" + duration.strip()
    return duration


def period_grid(horizon, period, unit: str) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Period ends ``t_k`` (model units) of a horizon cut into periods.

    Returns ``(ends, fractions, period_length, horizon_length)`` with lengths in ``unit``.
    ``ends = [p, 2p, ..., Kp]`` plus ``H`` when ``H`` is not a whole number of periods (within a
    relative tolerance of 1e-9, so ``"52.14W"`` in ``"4.345W"`` periods is exactly 12 periods).
    A zero horizon gives empty arrays.

    >>> period_grid("10W", "4W", "W")[0]
    array([ 4.,  8., 10.])
    """
    H = units.to_unit(_with_amount(horizon), unit)
    p = units.to_unit(_with_amount(period), unit)
    if not p > 0:
        raise InputError(f"period must be a positive duration such as '1M' or '4W', got {period!r}")
    if H == 0:
        return np.empty(0), np.empty(0), p, H
    ratio = H / p
    n_full = int(math.floor(ratio + 1e-9))
    ends = p * np.arange(1, n_full + 1, dtype=float)
    fractions = np.ones(n_full)
    if ratio - n_full > 1e-9:
        ends = np.append(ends, H)
        fractions = np.append(fractions, ratio - n_full)
    elif n_full:
        ends[-1] = H  # exact end despite rounding
    return ends, fractions, p, H


def discount_factors(ends: np.ndarray, period: float, rate: float) -> np.ndarray:
    """End-of-period discount factors ``(1 + rate) ** -(t_k / period)``.

    >>> discount_factors(np.array([1.0, 2.0]), 1.0, 0.1)
    array([0.90909091, 0.82644628])
    """
    if not rate > -1:
        raise InputError(f"the per-period discount rate must be greater than -1, got {rate!r}")
    return np.exp(-np.log1p(rate) * (np.asarray(ends, dtype=float) / period))


def _make_grid(
    purchase_model, horizon, period, annual_discount_rate, period_discount_rate
) -> PeriodGrid:
    unit = purchase_model.time_unit_
    ends, fractions, p, H = period_grid(horizon, period, unit)
    if period_discount_rate is not None and annual_discount_rate is not None:
        raise InputError(
            "give either annual_discount_rate or period_discount_rate, not both "
            "(period_discount_rate is the rate per period, as in lifetimes' discount_rate)"
        )
    if period_discount_rate is not None:
        rate = float(period_discount_rate)
    else:
        annual = (
            DEFAULT_ANNUAL_DISCOUNT_RATE if annual_discount_rate is None else annual_discount_rate
        )
        rate = units.per_period_rate(float(annual), p, unit)  # p is in model units
    return PeriodGrid(ends, fractions, discount_factors(ends, p, rate), p, H, rate, unit)


# --------------------------------------------------------------------------------------------
# checks and draws
# --------------------------------------------------------------------------------------------
def _check_model(model, role: str) -> None:
    expected_kind = "purchase" if role == "purchase_model" else "spend"
    kind = getattr(model, "kind", None)
    if kind != expected_kind:
        raise InputError(
            f"{role} must be a fitted {expected_kind} model (e.g. "
            f"{'clv.BetaGeo()' if expected_kind == 'purchase' else 'clv.GammaGamma()'}), got "
            f"{type(model).__name__} of kind {kind!r}"
        )
    if getattr(model, "params_", None) is None:
        raise NotFittedError(f"{role} {type(model).__name__} is not fitted; call .fit(summary)")


def _check_unit(purchase_model, summary: pd.DataFrame) -> None:
    units.require_same_unit(purchase_model.time_unit_, summary_time_unit(summary), "summary")


def _draw_table(model, draws, seed_seq, what: str) -> pd.DataFrame:
    if isinstance(draws, pd.DataFrame):
        if len(draws) == 0:
            raise InputError(f"the {what} draws table is empty")
        return draws
    if isinstance(draws, bool) or not isinstance(draws, Real) or int(draws) != draws or draws < 1:
        raise InputError(
            f"draws must be a positive int or explicit draw tables, got {draws!r} for the {what}"
        )
    seed = int(seed_seq.generate_state(1)[0])
    return model.param_draws(int(draws), seed=seed)


def _resolve_draws(purchase_model, spend_model, kind, draws, seed_children):
    """Return (purchase_draws, spend_draws) tables for ``kind``."""
    if kind == "point":
        return purchase_model.point_draws(), (
            spend_model.point_draws() if spend_model is not None else None
        )
    if isinstance(draws, dict):
        unknown = set(draws) - {"purchase", "spend"}
        if unknown:
            raise InputError(f"draws dict keys must be 'purchase' and 'spend', got {sorted(draws)}")
        p_in, s_in = draws.get("purchase"), draws.get("spend")
    elif isinstance(draws, tuple | list):
        if len(draws) != 2:
            raise InputError("draws as a sequence must be (purchase_draws, spend_draws)")
        p_in, s_in = draws
    else:
        p_in = s_in = draws
    if p_in is None:
        raise InputError("draws for the purchase model are missing")
    p_draws = _draw_table(purchase_model, p_in, seed_children[0], "purchase model")
    s_draws = None
    if spend_model is not None:
        if s_in is None:
            raise InputError("draws for the spend model are missing")
        if isinstance(s_in, Real) and isinstance(p_in, pd.DataFrame) and not isinstance(s_in, bool):
            s_in = int(s_in)
        s_draws = _draw_table(spend_model, s_in, seed_children[1], "spend model")
        n_p, n_s = len(p_draws), len(s_draws)
        if n_p != n_s and 1 not in (n_p, n_s):
            raise InputError(
                f"the purchase model has {n_p} draws and the spend model {n_s}; draw d of one "
                "is paired with draw d of the other, so give the same number (or a single row)"
            )
    return p_draws, s_draws


def _as_2d(value, n_draws: int, n_customers: int) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim < 2:
        arr = arr.reshape((1,) * (2 - arr.ndim) + arr.shape)
    return np.broadcast_to(arr, (max(n_draws, arr.shape[0]), n_customers))


def _chunk_size(chunk_size, n_draws: int, n_periods: int, n: int, elements=CHUNK_ELEMENTS) -> int:
    if chunk_size is not None:
        if int(chunk_size) < 1:
            raise InputError(f"chunk_size must be a positive number of customers, got {chunk_size}")
        return int(chunk_size)
    per_customer = max(1, n_draws) * max(1, n_periods)
    return int(max(64, min(MAX_CHUNK_CUSTOMERS, elements // per_customer)))


def _costs_matrix(costs, summary: pd.DataFrame, grid: PeriodGrid) -> np.ndarray | None:
    """Costs as an array broadcastable to (n_customers, n_periods), or None.

    * a number: the same cost for every customer in every period;
    * a pandas Series indexed by customer_id: a cost per customer, in every period;
    * a 1-d list/array of length n_periods: a cost per period, the same for every customer;
    * a DataFrame indexed by customer_id with n_periods columns: per customer and period.

    A number or a per-customer Series is prorated in a last partial period (multiplied by its
    length in periods); per-period values are used as given.
    """
    if costs is None:
        return None
    K = grid.n_periods
    if isinstance(costs, pd.DataFrame):
        missing = summary.index.difference(costs.index)
        if len(missing):
            raise InputError(
                f"costs has no row for {len(missing)} customers, e.g. {list(missing[:5])}; "
                "give one row per customer_id of the summary"
            )
        if costs.shape[1] != K:
            raise InputError(
                f"costs DataFrame has {costs.shape[1]} columns but the horizon has {K} periods"
            )
        out = costs.loc[summary.index].to_numpy(dtype=float)
    elif isinstance(costs, pd.Series):
        missing = summary.index.difference(costs.index)
        if len(missing):
            raise InputError(
                f"costs Series has no value for {len(missing)} customers, e.g. "
                f"{list(missing[:5])}; index it by the customer_id of the summary"
            )
        out = costs.loc[summary.index].to_numpy(dtype=float)[:, None] * grid.fractions[None, :]
    elif isinstance(costs, Real) and not isinstance(costs, bool):
        out = float(costs) * grid.fractions[None, :]
    else:
        arr = np.asarray(costs, dtype=float)
        if arr.ndim != 1 or len(arr) != K:
            raise InputError(
                f"costs must be a number, a Series indexed by customer_id, a DataFrame "
                f"(customers x {K} periods) or a 1-d sequence of {K} per-period costs; got "
                f"shape {arr.shape}"
            )
        out = arr[None, :]
    if not np.all(np.isfinite(out)):
        raise InputError("costs contain missing or non-finite values")
    return out


def _quantile_levels(interval: float) -> tuple[float, float]:
    if not 0 < float(interval) < 1:
        raise InputError(f"interval must be strictly between 0 and 1, got {interval!r}")
    return (1 - float(interval)) / 2, (1 + float(interval)) / 2


# --------------------------------------------------------------------------------------------
# per-chunk math
# --------------------------------------------------------------------------------------------
def _expected_cumulative(purchase_model, params, x, t_x, T, ends) -> np.ndarray:
    """E[X(T, T+t_k)] for every period end: shape (n_draws, n_customers, n_periods)."""
    cols = [
        _as_2d(purchase_model._math_expected_purchases(params, x, t_x, T, float(t)), 1, len(x))
        for t in ends
    ]
    return np.stack(cols, axis=-1)


def _per_period(cumulative: np.ndarray) -> np.ndarray:
    """Per-period values from cumulative ones along the last axis."""
    return np.diff(cumulative, axis=-1, prepend=np.zeros_like(cumulative[..., :1]))


def _sample_counts(purchase_model, params, x, t_x, T, ends, rng) -> np.ndarray:
    cum = np.asarray(purchase_model._math_sample_future_purchases(params, x, t_x, T, ends, rng))
    if cum.ndim != 3 or cum.shape[1:] != (len(x), len(ends)):
        raise RuntimeError(
            f"{type(purchase_model).__name__}._math_sample_future_purchases returned shape "
            f"{cum.shape}; the protocol asks for (n_draws, {len(x)}, {len(ends)})"
        )
    return cum


def _sample_purchase_periods(purchase_model, params, x, t_x, T, ends, rng):
    """Sampled future purchases in sparse form ``(n_rows, pairs, per_period)``: ``n_rows`` the
    draw axis of the sample (n_draws or 1), ``pairs`` the flat indices into
    ``(n_rows, n_customers)`` of the paths with at least one purchase and ``per_period`` their
    per-period counts.

    Models may offer ``_math_sample_future_purchase_periods`` (same arguments, returning
    ``(shape, flat pairs, per_period)``), which never builds the dense draws x customers x
    periods array; otherwise the protocol's cumulative ``_math_sample_future_purchases`` is used
    and its non-zero paths extracted. Both give the same distribution.
    """
    name = type(purchase_model).__name__
    sparse = getattr(purchase_model, "_math_sample_future_purchase_periods", None)
    if sparse is not None:
        shape, pairs, per = sparse(params, x, t_x, T, ends, rng)
        shape = (1,) * (2 - len(shape)) + tuple(shape)
        per = np.asarray(per)
        if len(shape) != 2 or shape[1] != len(x) or per.shape != (len(pairs), len(ends)):
            raise RuntimeError(
                f"{name}._math_sample_future_purchase_periods returned shape {shape} and counts "
                f"{per.shape}; expected (n_draws, {len(x)}) and (n_pairs, {len(ends)})"
            )
        return shape[0], np.asarray(pairs), per
    cum = _sample_counts(purchase_model, params, x, t_x, T, ends, rng)
    pairs = np.flatnonzero(cum[..., -1])
    return cum.shape[0], pairs, _per_period(cum.reshape(-1, len(ends))[pairs])


def _take_flat(value, D: int, c: int, flat: np.ndarray) -> np.ndarray:
    """``broadcast_to(value, (D, c)).ravel()[flat]`` without materialising the broadcast."""
    v = np.asarray(value, dtype=float)
    v = v.reshape((1,) * (2 - v.ndim) + v.shape) if v.ndim < 2 else v
    if v.shape == (D, c):
        return v.reshape(-1)[flat]
    if v.shape[-1] == 1:
        return np.broadcast_to(v[:, 0], (D,))[flat // c]
    return np.broadcast_to(v[0] if v.shape[0] == 1 else v, (c,))[flat % c]


def _discounted_spend_of_buyers(spend_model, params, x, m, sample, c, disc, D, keep_periods, rng):
    """Discounted spend of sampled purchase paths.

    ``sample``: ``(n_rows, pairs, per_period)`` from :func:`_sample_purchase_periods`. Only
    the (draw, customer) pairs with at least one future purchase are passed to
    ``_math_sample_future_spend`` (flattened to 1-d arrays of parameters and customers, which
    the protocol broadcasts like any other shape); the others spend 0 whatever their latent
    spend level, so this is exact in distribution and saves most of the work when many
    customers have lapsed. Returns ``(values (D, c), per-period (D, c, K) or None)``.
    """
    n_rows, buyers, sub_counts = sample
    K = sub_counts.shape[-1]
    if n_rows < D:  # one purchase sample shared by all D spend draws
        buyers = (np.arange(D)[:, None] * c + buyers[None, :]).ravel()
        sub_counts = np.tile(sub_counts, (D, 1))
    values = np.zeros((D, c))
    per_period = np.zeros((D, c, K)) if keep_periods else None
    if len(buyers) == 0:
        return values, per_period
    flat = {name: _take_flat(value, D, c, buyers) for name, value in params.items()}
    customers = buyers % c
    drawn = np.asarray(
        spend_model._math_sample_future_spend(flat, x[customers], m[customers], sub_counts, rng)
    )
    if drawn.shape != sub_counts.shape:
        raise RuntimeError(
            f"{type(spend_model).__name__}._math_sample_future_spend returned shape "
            f"{drawn.shape} for counts of shape {sub_counts.shape}"
        )
    values.reshape(-1)[buyers] = drawn @ disc
    if keep_periods:
        per_period.reshape(-1, K)[buyers] = drawn * disc
    return values, per_period


def _params_are_shared(purchase_model, spend_model, summary, p_draws, s_draws) -> bool:
    """True when both models give every customer the same parameters (no grouping): their
    ``customer_params`` arrays have a customer axis of length 1."""
    probe = summary.iloc[:2]
    for model, table in ((purchase_model, p_draws), (spend_model, s_draws)):
        params = model.customer_params(probe, table.iloc[:1])
        if any(np.ndim(v) >= 2 and np.shape(v)[-1] != 1 for v in params.values()):
            return False
    return True


def _distinct_rows(columns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first row of each distinct row, map row -> distinct row, multiplicities)."""
    frame = pd.DataFrame({i: np.asarray(c) for i, c in enumerate(columns)})
    inverse = frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy()
    _, first, counts = np.unique(inverse, return_index=True, return_counts=True)
    return first, inverse, counts.astype(float)


def _map_chunks(fn, n_chunks: int, n_jobs: int):
    """Run ``fn(b)`` for every chunk, in order; in ``n_jobs`` threads when > 1.

    numpy's random generators and array loops release the GIL, so threads run chunks in
    parallel; each chunk has its own random stream, so results do not depend on ``n_jobs``.
    """
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise InputError(f"n_jobs must be a positive int, got {n_jobs!r}")
    if n_jobs == 1 or n_chunks == 1:
        for b in range(n_chunks):
            yield fn(b)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        # a bounded window of chunks in flight keeps memory at about n_jobs chunks
        pending = []
        for b in range(n_chunks):
            pending.append(pool.submit(fn, b))
            if len(pending) >= 2 * n_jobs:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


# --------------------------------------------------------------------------------------------
# the engine
# --------------------------------------------------------------------------------------------
@dataclass
class _Result:
    frame: pd.DataFrame
    totals: np.ndarray  # (n_draws, n_groups)
    draws: np.ndarray | None  # (n_draws, n_customers[, n_periods])
    grid: PeriodGrid


def _value_engine(
    purchase_model,
    spend_model,
    summary,
    *,
    horizon,
    annual_discount_rate,
    period_discount_rate,
    margin,
    interval,
    kind,
    draws,
    period,
    costs,
    random_seed,
    chunk_size,
    keep_draws,  # False, True or "period"
    group_codes=None,
    n_groups=1,
    n_jobs=1,
) -> _Result:
    _check_model(purchase_model, "purchase_model")
    _check_model(spend_model, "spend_model")
    if kind not in KINDS:
        raise InputError(f"kind must be one of {KINDS}, got {kind!r}")
    validate_summary(summary, monetary=True)
    _check_unit(purchase_model, summary)
    if isinstance(margin, bool) or not isinstance(margin, Real) or not np.isfinite(margin):
        raise InputError(f"margin must be a finite number (share of spend kept), got {margin!r}")
    lo_q, hi_q = _quantile_levels(interval)
    grid = _make_grid(purchase_model, horizon, period, annual_discount_rate, period_discount_rate)
    cost = _costs_matrix(costs, summary, grid)
    seq = np.random.SeedSequence(random_seed)
    children = seq.spawn(2)
    p_draws, s_draws = _resolve_draws(purchase_model, spend_model, kind, draws, children)
    D = max(len(p_draws), len(s_draws))
    summary_full = summary
    x, t_x, T = summary_arrays(summary)
    m = summary["monetary_value"].to_numpy(dtype=float)
    n_all, K = len(summary), grid.n_periods
    codes = np.zeros(n_all, dtype=np.intp) if group_codes is None else group_codes
    cost_rows = None if cost is None else np.broadcast_to(cost, (n_all, K))
    # expected/point values depend on a customer only through (x, t_x, T, m[, costs, group])
    # when the parameters are shared: compute each distinct row once (exact)
    expand = None
    weights = None
    if (
        kind != "predictive"
        and n_all > 1
        and _params_are_shared(purchase_model, spend_model, summary, p_draws, s_draws)
    ):
        keys = [x, t_x, T, m, codes]
        if cost is not None and cost.shape[0] > 1:
            keys.extend(cost_rows.T)
        first, expand, weights = _distinct_rows(keys)
        if len(first) < n_all:
            summary = summary.iloc[first]
            x, t_x, T, m, codes = x[first], t_x[first], T[first], m[first], codes[first]
            if cost_rows is not None:
                cost_rows = cost_rows[first]
        else:
            expand = weights = None
    n = len(summary)
    sparse = getattr(purchase_model, "_math_sample_future_purchase_periods", None) is not None
    if kind == "predictive" and keep_draws != "period" and sparse:
        # no dense draws x customers x periods array is built (sparse purchase paths)
        chunk = _chunk_size(chunk_size, D, 1, n, elements=PREDICTIVE_CHUNK_PATHS)
    else:
        chunk = _chunk_size(chunk_size, D, K, n)
    out = {
        name: np.empty(n)
        for name in (
            "clv_mean",
            "clv_median",
            "clv_lower",
            "clv_upper",
            "expected_purchases",
            "expected_spend",
            "probability_alive",
        )
    }
    totals = np.zeros((D, n_groups))
    if keep_draws:
        shape = (D, n, K) if keep_draws == "period" else (D, n)
        kept = np.empty(shape)
    point_p, point_s = purchase_model.point_draws(), spend_model.point_draws()
    disc = grid.discount
    n_chunks = -(-n // chunk)
    chunk_seqs = seq.spawn(n_chunks) if kind == "predictive" and K else [None] * n_chunks

    def run_chunk(b: int) -> np.ndarray:
        """Value chunk b, write its per-customer outputs; return its per-draw totals."""
        sl = slice(b * chunk, min(n, (b + 1) * chunk))
        sub = summary.iloc[sl]
        xb, txb, Tb, mb = x[sl], t_x[sl], T[sl], m[sl]
        c = len(xb)
        # point-estimate columns
        pp0 = purchase_model.customer_params(sub, point_p)
        sp0 = spend_model.customer_params(sub, point_s)
        out["probability_alive"][sl] = _as_2d(
            purchase_model._math_probability_alive(pp0, xb, txb, Tb), 1, c
        )[0]
        out["expected_spend"][sl] = _as_2d(spend_model._math_expected_spend(sp0, xb, mb), 1, c)[0]
        out["expected_purchases"][sl] = (
            _as_2d(purchase_model._math_expected_purchases(pp0, xb, txb, Tb, grid.horizon), 1, c)[0]
            if K
            else 0.0
        )
        cost_pv = None if cost_rows is None else cost_rows[sl] @ disc
        if K == 0:
            values = np.zeros((D, c))
            by_period = np.zeros((D, c, 0))
        elif kind == "predictive":
            rng = np.random.default_rng(chunk_seqs[b])
            pp = purchase_model.customer_params(sub, p_draws)
            sp = spend_model.customer_params(sub, s_draws)
            sample = _sample_purchase_periods(purchase_model, pp, xb, txb, Tb, grid.ends, rng)
            values, by_period = _discounted_spend_of_buyers(
                spend_model, sp, xb, mb, sample, c, disc, D, keep_draws == "period", rng
            )
            del sample
            values *= margin
            if by_period is not None:
                by_period *= margin
        else:  # expected or point
            pp = purchase_model.customer_params(sub, p_draws)
            sp = spend_model.customer_params(sub, s_draws)
            per = _per_period(_expected_cumulative(purchase_model, pp, xb, txb, Tb, grid.ends))
            es = _as_2d(spend_model._math_expected_spend(sp, xb, mb), 1, c)
            disc_purchases = per @ disc  # (D_p, c)
            values = margin * np.broadcast_to(es, (D, c)) * np.broadcast_to(disc_purchases, (D, c))
            by_period = margin * es[..., None] * per * disc if keep_draws == "period" else None
        if cost_pv is not None:
            values = values - cost_pv[None, :]
            if by_period is not None:
                by_period = by_period - (cost_rows[sl] * disc)[None]
        values = np.broadcast_to(values, (D, c))
        if kind == "point":
            mean = values[0]
            out["clv_mean"][sl] = out["clv_median"][sl] = mean
            out["clv_lower"][sl] = out["clv_upper"][sl] = mean
        else:
            q = np.quantile(values, [0.5, lo_q, hi_q], axis=0)
            out["clv_mean"][sl] = values.mean(axis=0)
            out["clv_median"][sl], out["clv_lower"][sl], out["clv_upper"][sl] = q
        if keep_draws == "period":
            kept[:, sl, :] = np.broadcast_to(by_period, (D, c, K))
        elif keep_draws:
            kept[:, sl] = values
        w = np.ones(c) if weights is None else weights[sl]
        onehot = np.zeros((c, n_groups))
        onehot[np.arange(c), codes[sl]] = w
        return values @ onehot

    for chunk_totals in _map_chunks(run_chunk, n_chunks, n_jobs):
        totals += chunk_totals
    if expand is not None:
        out = {name: column[expand] for name, column in out.items()}
        if keep_draws:
            kept = kept[:, expand]
        summary = summary_full
    frame = pd.DataFrame(out, index=summary.index)
    frame = frame[
        [
            "clv_mean",
            "clv_median",
            "clv_lower",
            "clv_upper",
            "expected_purchases",
            "expected_spend",
            "probability_alive",
        ]
    ]
    bad = ~np.isfinite(frame.to_numpy())
    if bad.any():
        rows = bad.any(axis=1)
        raise RuntimeError(
            f"valuation produced non-finite values for {int(rows.sum())} customers, e.g.\n"
            f"{summary[rows].head().to_string()}\nthis is a bug in the model's math; please report"
        )
    frame.attrs.update(
        {
            "kind": kind,
            "interval": float(interval),
            "horizon": grid.horizon,
            "period": grid.period,
            "period_discount_rate": grid.rate,
            "time_unit": grid.unit,
            "n_draws": D,
        }
    )
    return _Result(frame, totals, kept if keep_draws else None, grid)


def _draws_array(result: _Result, index: pd.Index, name: str):
    import xarray as xr

    data = result.draws
    dims = ["draw", "customer_id"] + (["period"] if data.ndim == 3 else [])
    coords = {"draw": np.arange(data.shape[0]), "customer_id": index.to_numpy()}
    if data.ndim == 3:
        coords["period"] = np.arange(1, data.shape[2] + 1)
        coords["period_end"] = ("period", result.grid.ends)
    return xr.DataArray(data, dims=dims, coords=coords, name=name)


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def lifetime_value(
    purchase_model,
    spend_model,
    summary: pd.DataFrame,
    horizon="52W",
    annual_discount_rate: float | None = None,
    margin: float = 1.0,
    interval: float = 0.9,
    kind: str = "predictive",
    draws=200,
    period="M",
    costs=None,
    random_seed=None,
    *,
    period_discount_rate: float | None = None,
    chunk_size: int | None = None,
    return_draws: bool | str = False,
    n_jobs: int = 1,
):
    """Discounted-cash-flow customer lifetime value with an uncertainty interval.

    See the module docstring for the cash-flow formula and the three kinds.

    Parameters
    ----------
    purchase_model, spend_model : fitted purchase model (BetaGeo, ParetoNBD, ...) and spend
        model (GammaGamma, ...).
    summary : RFM summary indexed by customer_id with frequency, recency, T, monetary_value
        (plus the group column of grouped models); its ``attrs["time_unit"]`` must equal the
        purchase model's ``time_unit_``.
    horizon : calendar duration ("52W", "12M", "365D", "3Y") or a number in the model's unit.
        Zero gives CLV 0.
    annual_discount_rate : compound annual rate (default 0.10 when neither rate is given),
        turned into the per-period rate ``(1 + r) ** (period_days / 365.25) - 1``.
    period_discount_rate : the rate per period, given directly (keyword only; exclusive with
        ``annual_discount_rate``). With ``period="4.345W"``, ``horizon=12 * 4.345`` weeks and
        ``period_discount_rate=0.01`` the point value equals lifetimes'
        ``customer_lifetime_value(..., time=12, discount_rate=0.01, freq="W")``.
    margin : share of spend that is profit (0 gives a value of 0 minus costs).
    interval : central probability of the equal-tailed interval.
    kind : "predictive", "expected" or "point".
    draws : number of parameter draws (int) or explicit draw tables (see module docstring).
    period : period length of the cash flows ("M" = one month of 365.25/12 days, "1W", ...).
    costs : optional costs per period (number, Series by customer_id, 1-d per-period sequence or
        DataFrame customers x periods); subtracted from the margin in every period of the
        horizon, discounted alike (a fixed servicing cost: it does not depend on whether the
        customer is still alive, which the protocol does not expose).
    random_seed : seed of the predictive simulation and of the parameter draws.
    chunk_size : customers per chunk (default: bounded so one chunk holds ~4M values, or ~1M
        draw x customer paths for predictive values without per-period draws).
    n_jobs : threads valuing chunks in parallel (numpy releases the GIL; results do not depend
        on it; memory grows to about ``2 * n_jobs`` chunks).
    return_draws : False; True to also return the per-customer value draws as an
        ``xarray.DataArray`` with dims (draw, customer_id); "period" for dims
        (draw, customer_id, period) of discounted per-period cash flows. Memory: 8 bytes x
        draws x customers (x periods) -- 1.6 GB for 1M customers and 200 draws.

    Returns
    -------
    DataFrame indexed by customer_id with ``clv_mean, clv_median, clv_lower, clv_upper,
    expected_purchases, expected_spend, probability_alive`` (the last three at the point
    estimate; expected_purchases over the whole horizon); ``(frame, DataArray)`` when
    ``return_draws``.
    """
    result = _value_engine(
        purchase_model,
        spend_model,
        summary,
        horizon=horizon,
        annual_discount_rate=annual_discount_rate,
        period_discount_rate=period_discount_rate,
        margin=margin,
        interval=interval,
        kind=kind,
        draws=draws,
        period=period,
        costs=costs,
        random_seed=random_seed,
        chunk_size=chunk_size,
        keep_draws=return_draws,
        n_jobs=n_jobs,
    )
    if return_draws:
        if return_draws not in (True, "period"):
            raise InputError(f"return_draws must be False, True or 'period', got {return_draws!r}")
        return result.frame, _draws_array(result, summary.index, "clv")
    return result.frame


def _group_codes(by, summary: pd.DataFrame):
    if by is None:
        return None, pd.Index(["all"], name="group")
    if isinstance(by, str):
        if by not in summary.columns:
            raise InputError(
                f"by={by!r} is not a column of the summary; columns: {list(summary.columns)}"
            )
        labels = summary[by]
        name = by
    else:
        labels = pd.Series(by)
        if len(labels) != len(summary):
            raise InputError(
                f"by must be a column name or labels for each of the {len(summary)} customers"
            )
        if isinstance(by, pd.Series):
            missing = summary.index.difference(labels.index)
            if len(missing):
                raise InputError(
                    f"by has no label for {len(missing)} customers, e.g. {list(missing[:5])}"
                )
            labels = labels.loc[summary.index]
        name = getattr(by, "name", None) or "group"
    if labels.isna().any():
        raise InputError(f"{int(labels.isna().sum())} customers have no group label in by")
    codes, uniques = pd.factorize(labels, sort=True)
    return codes.astype(np.intp), pd.Index(uniques, name=name)


def customer_equity(
    purchase_model,
    spend_model,
    summary: pd.DataFrame,
    by=None,
    horizon="52W",
    annual_discount_rate: float | None = None,
    margin: float = 1.0,
    interval: float = 0.9,
    kind: str = "predictive",
    draws=200,
    period="M",
    costs=None,
    random_seed=None,
    *,
    period_discount_rate: float | None = None,
    chunk_size: int | None = None,
    return_draws: bool = False,
    n_jobs: int = 1,
):
    """Customer equity: the sum of CLV over customers, with an interval from the joint draws.

    For each draw ``d`` the customer values of that draw (same parameters ``theta_d`` for every
    customer) are summed over customers (per group with ``by``); the interval is the
    equal-tailed quantile interval of these per-draw totals. This keeps the correlation that
    shared parameters induce between customers -- an interval of a total is not the sum of the
    customers' intervals. Arguments as in :func:`lifetime_value`; ``by`` is a summary column
    name or labels per customer (e.g. :func:`clvmodels.segments.value_tiers` output).

    Returns
    -------
    DataFrame indexed by group ("all" without ``by``) with ``equity_mean, equity_median,
    equity_lower, equity_upper, n_customers``; with ``return_draws`` also an
    ``xarray.DataArray`` of the totals with dims (draw, group).
    """
    codes, groups = _group_codes(by, summary)
    result = _value_engine(
        purchase_model,
        spend_model,
        summary,
        horizon=horizon,
        annual_discount_rate=annual_discount_rate,
        period_discount_rate=period_discount_rate,
        margin=margin,
        interval=interval,
        kind=kind,
        draws=draws,
        period=period,
        costs=costs,
        random_seed=random_seed,
        chunk_size=chunk_size,
        keep_draws=False,
        group_codes=codes,
        n_groups=len(groups),
        n_jobs=n_jobs,
    )
    totals = result.totals
    lo_q, hi_q = _quantile_levels(interval)
    q = np.quantile(totals, [0.5, lo_q, hi_q], axis=0)
    n_per = np.bincount(codes, minlength=len(groups)) if codes is not None else [len(summary)]
    frame = pd.DataFrame(
        {
            "equity_mean": totals.mean(axis=0),
            "equity_median": q[0],
            "equity_lower": q[1],
            "equity_upper": q[2],
            "n_customers": np.asarray(n_per, dtype=np.int64),
        },
        index=groups,
    )
    frame.attrs.update(result.frame.attrs)
    if return_draws:
        import xarray as xr

        arr = xr.DataArray(
            totals,
            dims=["draw", "group"],
            coords={"draw": np.arange(totals.shape[0]), "group": groups.to_numpy()},
            name="customer_equity",
        )
        return frame, arr
    return frame


def expected_cash_flows(
    purchase_model,
    spend_model,
    summary: pd.DataFrame,
    horizon="52W",
    annual_discount_rate: float | None = None,
    margin: float = 1.0,
    period="M",
    costs=None,
    *,
    period_discount_rate: float | None = None,
    discounted: bool = True,
) -> pd.DataFrame:
    """Expected cash flow of each customer in each period at the point estimate.

    ``margin * E[Z_i] * E[X_ik] - c_ik``, multiplied by the discount factor of its period when
    ``discounted``; the row sums of the discounted table are ``lifetime_value(kind="point")``.
    Columns are the period numbers 1..K (``attrs["period_end"]`` holds their ends in model
    units). Used for payback periods (:func:`clvmodels.segments.clv_to_cac`).
    """
    result = _value_engine(
        purchase_model,
        spend_model,
        summary,
        horizon=horizon,
        annual_discount_rate=annual_discount_rate,
        period_discount_rate=period_discount_rate,
        margin=margin,
        interval=0.5,
        kind="point",
        draws=1,
        period=period,
        costs=costs,
        random_seed=0,
        chunk_size=None,
        keep_draws="period",
    )
    flows = result.draws[0]
    if not discounted and result.grid.n_periods:
        flows = flows / result.grid.discount[None, :]
    frame = pd.DataFrame(
        flows,
        index=summary.index,
        columns=pd.Index(np.arange(1, result.grid.n_periods + 1), name="period"),
    )
    frame.attrs.update(result.frame.attrs)
    frame.attrs["period_end"] = result.grid.ends.tolist()
    frame.attrs["discounted"] = bool(discounted)
    return frame


def predict_purchases(
    purchase_model,
    summary: pd.DataFrame,
    t="39W",
    interval: float = 0.9,
    kind: str = "predictive",
    draws=200,
    random_seed=None,
    *,
    chunk_size: int | None = None,
    return_draws: bool = False,
    n_jobs: int = 1,
):
    """Number of purchases in the next ``t``: mean, median and an interval per customer.

    The same machinery as :func:`lifetime_value`, for the count alone. ``kind="expected"``: the
    distribution over parameter draws of ``E[X(T, T+t) | history, theta_d]``;
    ``kind="predictive"``: draws of the count itself (parameter uncertainty, latent state and
    Poisson noise), interval bounds by the ``inverted_cdf`` rule so they are attainable counts;
    ``kind="point"``: the expectation at the point estimate. ``mean`` is the mean of the draws
    (Monte Carlo for "predictive").

    ``draws``: an int (``param_draws(n, seed=...)``) or a DataFrame of parameter draws used as
    is. ``return_draws=True`` also returns the draws as an ``xarray.DataArray`` with dims
    (draw, customer_id) -- what :func:`interval_coverage` takes.

    Returns
    -------
    DataFrame indexed by customer_id with ``mean, median, lower, upper``.
    """
    _check_model(purchase_model, "purchase_model")
    if kind not in KINDS:
        raise InputError(f"kind must be one of {KINDS}, got {kind!r}")
    validate_summary(summary)
    _check_unit(purchase_model, summary)
    lo_q, hi_q = _quantile_levels(interval)
    horizon = units.to_unit(_with_amount(t), purchase_model.time_unit_)
    seq = np.random.SeedSequence(random_seed)
    children = seq.spawn(2)
    if kind == "point":
        p_draws = purchase_model.point_draws()
    else:
        if isinstance(draws, tuple | list | dict):
            raise InputError("predict_purchases takes draws as an int or one DataFrame")
        p_draws = _draw_table(purchase_model, draws, children[0], "purchase model")
    D = len(p_draws)
    x, t_x, T = summary_arrays(summary)
    n = len(summary)
    chunk = _chunk_size(chunk_size, D, 1, n)
    out = {k: np.empty(n) for k in ("mean", "median", "lower", "upper")}
    kept = np.empty((D, n)) if return_draws else None
    n_chunks = -(-n // chunk)
    chunk_seqs = seq.spawn(n_chunks)

    def run_chunk(b: int) -> None:
        sl = slice(b * chunk, min(n, (b + 1) * chunk))
        sub = summary.iloc[sl]
        xb, txb, Tb = x[sl], t_x[sl], T[sl]
        c = len(xb)
        pp = purchase_model.customer_params(sub, p_draws)
        if horizon == 0:
            values = np.zeros((D, c))
        elif kind == "predictive":
            rng = np.random.default_rng(chunk_seqs[b])
            cum = _sample_counts(purchase_model, pp, xb, txb, Tb, np.array([horizon]), rng)
            values = np.broadcast_to(cum[..., 0].astype(float), (D, c))
        else:
            values = np.broadcast_to(
                _as_2d(purchase_model._math_expected_purchases(pp, xb, txb, Tb, horizon), 1, c),
                (D, c),
            )
        out["mean"][sl] = values.mean(axis=0)
        if kind == "point":
            out["median"][sl] = out["lower"][sl] = out["upper"][sl] = values[0]
        else:
            method = "inverted_cdf" if kind == "predictive" else "linear"
            q = np.quantile(values, [0.5, lo_q, hi_q], axis=0, method=method)
            out["median"][sl], out["lower"][sl], out["upper"][sl] = q
        if return_draws:
            kept[:, sl] = values

    for _ in _map_chunks(run_chunk, n_chunks, n_jobs):
        pass
    frame = pd.DataFrame(out, index=summary.index)
    if not np.all(np.isfinite(frame.to_numpy())):
        raise RuntimeError("predict_purchases produced non-finite values; please report")
    frame.attrs.update({"kind": kind, "interval": float(interval), "t": horizon, "n_draws": D})
    frame.attrs["time_unit"] = purchase_model.time_unit_
    if return_draws:
        import xarray as xr

        arr = xr.DataArray(
            kept,
            dims=["draw", "customer_id"],
            coords={"draw": np.arange(D), "customer_id": summary.index.to_numpy()},
            name="purchases",
        )
        return frame, arr
    return frame


# --------------------------------------------------------------------------------------------
# calibration of predictive intervals for discrete (or atom-carrying) outcomes
# --------------------------------------------------------------------------------------------
def _rank_counts(draws, observed):
    """(number of draws below, number equal, number of draws S) per customer."""
    if hasattr(draws, "dims") and "draw" in draws.dims:
        draws = draws.transpose("draw", ...)
    arr = np.asarray(getattr(draws, "values", draws), dtype=float)
    y = np.asarray(observed, dtype=float)
    if arr.ndim != 2 or y.ndim != 1 or arr.shape[1] != y.shape[0]:
        raise InputError(
            f"draws must have shape (n_draws, n_customers) matching observed ({y.shape}), "
            f"got {arr.shape}"
        )
    if not np.all(np.isfinite(y)):
        raise InputError("observed values must be finite")
    below = (arr < y[None, :]).sum(axis=0)
    equal = (arr == y[None, :]).sum(axis=0)
    return below, equal, arr.shape[0]


def pit_values(draws, observed, method: str = "randomized", random_seed=None) -> np.ndarray:
    """Probability integral transform of observed values under per-customer predictive draws.

    ``draws``: array (n_draws, n_customers) (or an xarray DataArray with dims draw,
    customer_id); ``observed``: (n_customers,). With ``S`` draws, ``L_i`` of them below the
    observed ``y_i`` and ``E_i`` equal to it, treat ``y_i`` as one more exchangeable draw:

    * ``"randomized"``: ``u_i = (L_i + V_i (E_i + 1)) / (S + 1)``, ``V_i ~ U(0, 1)`` -- the
      randomised PIT for discrete distributions (Czado, Gneiting & Held 2009, Biometrics 65,
      eq. 2, with the empirical predictive CDF). Under a calibrated model it is exactly uniform
      on (0, 1), even with ties such as the atom at 0 purchases;
    * ``"mid-p"``: the same with ``V_i = 1/2`` (deterministic; uniform only approximately);
    """
    below, equal, S = _rank_counts(draws, observed)
    n = below.shape[0]
    if method == "randomized":
        v = np.random.default_rng(random_seed).uniform(size=n)
    elif method == "mid-p":
        v = np.full(n, 0.5)
    else:
        raise InputError(f"method must be 'randomized' or 'mid-p', got {method!r}")
    return (below + v * (equal + 1)) / (S + 1)


def interval_coverage(
    draws, observed, interval: float = 0.9, method: str = "randomized", random_seed=None
) -> float:
    """Share of customers whose observed value falls in the central ``interval`` of their
    predictive distribution.

    ``draws``: (n_draws, n_customers) array or DataArray (dims draw, customer_id), e.g. from
    ``predict_purchases(..., return_draws=True)``; ``observed``: (n_customers,).

    * ``"randomized"`` (default): the share of randomised PIT values (:func:`pit_values`) in
      ``[(1 - interval)/2, (1 + interval)/2]``, averaged exactly over the randomisation: the
      PIT of customer i is uniform on ``[L_i, L_i + E_i + 1] / (S + 1)``, so its probability of
      falling in the central band is the overlap of the two intervals divided by
      ``(E_i + 1) / (S + 1)``. Same expectation as one randomised draw, no extra noise, and
      equal to ``interval`` for a calibrated model even for discrete counts with an atom at 0;
    * ``"randomized-draw"``: one randomised PIT per customer (seeded by ``random_seed``);
    * ``"mid-p"``: share of mid-p PIT values (``V = 1/2``) in the band;
    * ``"naive"``: share of observed values inside the ``inverted_cdf`` quantile interval of the
      draws (what :func:`predict_purchases` reports) -- biased upwards for discrete outcomes (an
      interval [0, 2] "contains" nearly every zero when P(0) is large).
    """
    lo_q, hi_q = _quantile_levels(interval)
    if method == "naive":
        _rank_counts(draws, observed)  # validates shapes
        if hasattr(draws, "dims") and "draw" in draws.dims:
            draws = draws.transpose("draw", ...)
        arr = np.asarray(getattr(draws, "values", draws), dtype=float)
        y = np.asarray(observed, dtype=float)
        lo, hi = np.quantile(arr, [lo_q, hi_q], axis=0, method="inverted_cdf")
        return float(np.mean((y >= lo) & (y <= hi)))
    if method == "randomized":
        below, equal, S = _rank_counts(draws, observed)
        left, right = below / (S + 1), (below + equal + 1) / (S + 1)
        overlap = np.clip(np.minimum(right, hi_q) - np.maximum(left, lo_q), 0.0, None)
        return float(np.mean(overlap / (right - left)))
    pit_method = "randomized" if method == "randomized-draw" else method
    u = pit_values(draws, observed, method=pit_method, random_seed=random_seed)
    return float(np.mean((u >= lo_q) & (u <= hi_q)))


# --------------------------------------------------------------------------------------------
# DERT: discounted expected residual transactions (continuous discounting, infinite horizon)
# --------------------------------------------------------------------------------------------
def _dert_pareto_nbd(params, x, t_x, T, delta, p_alive):
    """Pareto/NBD DERT, Fader, Hardie & Lee (2005) "RFM and CLV", eq. 2.

    Given alive at T, lambda ~ Gamma(r + x, alpha + T) and mu ~ Gamma(s, beta + T)
    independently; an alive customer's DERT is lambda / (mu + delta), so

        DERT = P(alive) (r + x) / (alpha + T) * (beta + T)^s delta^(s-1) U(s, s; delta (beta + T))

    with U Tricomi's confluent hypergeometric function (Psi in the paper); this equals eq. 2 with
    P(alive) written out. Computed as (beta + T) z^(s-1) U(s, s, z), z = delta (beta + T).
    """
    r, alpha, s, beta = (np.asarray(params[k], dtype=float) for k in ("r", "alpha", "s", "beta"))
    z = delta * (beta + T)
    residual = (beta + T) * np.exp((s - 1) * np.log(z)) * special.hyperu(s, s, z)
    return p_alive * (r + x) / (alpha + T) * residual


_DERT_CLOSED_FORMS = {"ParetoNBD": _dert_pareto_nbd}


def _dert_quadrature(purchase_model, params, x, t_x, T, delta, n_nodes: int):
    """DERT by Gauss-Laguerre quadrature of the model's conditional expectation.

    Integrating by parts, ``int_0^inf e^{-delta t} dE[X(T,T+t)] = int_0^inf e^{-u}
    E[X(T, T + u/delta)] du``, approximated by ``sum_j w_j E[X(T, T + u_j/delta)]``. Used for
    BG/NBD and MBG/NBD (whose DERT involves an integral over the dropout probability with no
    elementary closed form) and valid for any purchase model; 80 nodes agree with adaptive
    quadrature to better than 1e-6 relative on CDNOW (tests).
    """
    nodes, weights = special.roots_laguerre(n_nodes)
    total = 0.0
    for u, w in zip(nodes, weights, strict=True):
        ex = np.asarray(purchase_model._math_expected_purchases(params, x, t_x, T, u / delta))
        total = total + w * ex
    return total


def discounted_expected_residual_transactions(
    purchase_model,
    summary: pd.DataFrame,
    annual_discount_rate: float | None = None,
    *,
    continuous_rate: float | None = None,
    method: str = "auto",
    n_nodes: int = 80,
) -> pd.Series:
    """DERT: expected purchases from T on, continuously discounted, over an infinite horizon.

    ``DERT_i = int_0^inf e^{-delta t} dE[X(T, T+t) | history]`` at the point estimate, with
    ``delta`` the continuous rate per model time unit: ``continuous_rate`` if given, else
    ``log(1 + annual_discount_rate) * unit_days / 365.25`` (annual default 0.10). Fader, Hardie
    & Lee (2005) use 15% a year, delta = log(1.15)/52 ~ 0.0027 per week. Multiply by the
    expected margin per purchase to get the customer's residual lifetime value.

    ``method``: "closed_form" (Pareto/NBD, FHL 2005 eq. 2 via ``scipy.special.hyperu``),
    "quadrature" (Gauss-Laguerre with ``n_nodes`` nodes over the model's own
    ``_math_expected_purchases``; any purchase model, used for BG/NBD and MBG/NBD) or "auto"
    (closed form when the model class has one in ``_DERT_CLOSED_FORMS`` -- a table kept in this
    module, keyed by class name, so model files need no DERT hook -- quadrature otherwise).
    """
    _check_model(purchase_model, "purchase_model")
    validate_summary(summary)
    _check_unit(purchase_model, summary)
    if continuous_rate is not None and annual_discount_rate is not None:
        raise InputError("give either annual_discount_rate or continuous_rate, not both")
    if continuous_rate is None:
        annual = (
            DEFAULT_ANNUAL_DISCOUNT_RATE if annual_discount_rate is None else annual_discount_rate
        )
        if not annual > 0:
            raise InputError("DERT needs a positive discount rate (infinite horizon)")
        delta = math.log1p(annual) * units.days_per(purchase_model.time_unit_) / 365.25
    else:
        delta = float(continuous_rate)
        if not delta > 0:
            raise InputError("continuous_rate must be positive (infinite horizon)")
    name = type(purchase_model).__name__
    closed = _DERT_CLOSED_FORMS.get(name)
    if method == "auto":
        method = "closed_form" if closed is not None else "quadrature"
    x, t_x, T = summary_arrays(summary)
    params = purchase_model.customer_params(summary)
    if method == "closed_form":
        if closed is None:
            raise InputError(
                f"no closed-form DERT for {name} (available: {sorted(_DERT_CLOSED_FORMS)}); "
                "use method='quadrature'"
            )
        p_alive = np.asarray(purchase_model._math_probability_alive(params, x, t_x, T))
        values = closed(params, x, t_x, T, delta, p_alive)
    elif method == "quadrature":
        values = _dert_quadrature(purchase_model, params, x, t_x, T, delta, int(n_nodes))
    else:
        raise InputError(f"method must be 'auto', 'closed_form' or 'quadrature', got {method!r}")
    values = _as_2d(values, 1, len(x))[0]
    if not np.all(np.isfinite(values)):
        warnings.warn(
            f"DERT is not finite for {int((~np.isfinite(values)).sum())} customers",
            RuntimeWarning,
            stacklevel=2,
        )
    out = pd.Series(values, index=summary.index, name="dert")
    out.attrs["delta"] = delta
    return out
