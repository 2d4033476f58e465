"""Holdout evaluation and model comparison.

Given a calibration/holdout summary (:func:`clvmodels.calibration_holdout_summary`) and fitted
models, measure how well each model predicted what happened in the holdout period:

* per-customer errors of holdout purchases and spend: MAE, RMSE, bias (mean of predicted minus
  actual), and the relative error of the total (``sum(predicted) / sum(actual) - 1``);
* rank quality: Spearman correlation, normalised Gini and top-decile capture of the holdout
  purchases and spend (which share of the holdout value the top 10 % of customers by prediction
  brought);
* calibration of the predictive distribution: coverage of central predictive intervals at
  several levels, measured with the non-randomised probability integral transform (PIT) for
  counts, and the mean interval width;
* the log predictive score ``mean log P(X_holdout = y | history)`` where the model has a
  closed-form purchase-count distribution;
* ArviZ PSIS-LOO and WAIC for Bayesian models whose ``idata_`` carries a ``log_likelihood``.

:func:`evaluate` scores one model (a purchase model, optionally with a spend model);
:func:`compare_models` scores several and returns a tidy table, one row per model.

Besides clvmodels models, :func:`compare_models` accepts ``lifetimes`` fitters, pymc-marketing
``BetaGeoModel``-style models, any object with a ``predict_holdout(calibration_holdout)`` method
and any callable ``f(calibration_holdout) -> DataFrame`` returning per-customer columns
``purchases`` (and optionally ``spend``), e.g. :class:`RFMGradientBoosting`, the supervised
machine-learning baseline.

Interval coverage for counts
----------------------------
A central interval of a discrete predictive distribution covers more than its nominal level, so
naive "is y inside [lower, upper]" rates are biased upwards and cannot tell a calibrated model
from an over-dispersed one. We use the non-randomised PIT of Czado, Gneiting & Held (2009,
"Predictive model assessment for count data", Biometrics 65(4), eq. 2): with ``F`` the
predictive CDF and ``y`` the observed count, the randomised PIT is uniform on
``[F(y - 1), F(y)]``; a customer's contribution to the coverage of the level-``L`` central
interval is the probability that this PIT falls in ``[(1 - L) / 2, (1 + L) / 2]``. For a
calibrated model the mean over customers equals ``L`` exactly; above ``L`` means too wide,
below too narrow. The raw hit rate of the interval's end points is reported alongside. The PIT
functions live in :mod:`clvmodels.valuation.calibration` (re-exported here).

Plots of these results are in :mod:`clvmodels.plotting`, which builds on this module (this
module never imports it): e.g. ``plot_model_comparison(compare_models(...), "purchases_mae")``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from clvmodels import units
from clvmodels.errors import InputError, check_columns, describe_rows
from clvmodels.heuristic import HeuristicCLV
from clvmodels.validation import validate_summary
from clvmodels.valuation.calibration import empirical_cdf_bounds, pit_interval_coverage

__all__ = [
    "mae",
    "rmse",
    "bias",
    "total_error",
    "spearman",
    "gain_curve",
    "gini",
    "top_share_capture",
    "pit_interval_coverage",
    "interval_hit_rate",
    "empirical_cdf_bounds",
    "holdout_actuals",
    "predictive_samples",
    "check_calibration_holdout",
    "calibration_part",
    "duration_groups",
    "model_kind",
    "customer_columns",
    "expected_holdout_purchases",
    "expected_spend_per_purchase",
    "pointwise_log_likelihood",
    "evaluate",
    "evaluate_predictions",
    "compare_models",
    "tracking_data",
    "RFMGradientBoosting",
    "DEFAULT_LEVELS",
]

DEFAULT_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.9)
HOLDOUT_COLUMNS = ("frequency_holdout", "duration_holdout")


# --------------------------------------------------------------------------------------------
# metrics on plain arrays
# --------------------------------------------------------------------------------------------
def _pair(actual, predicted) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=float).ravel()
    p = np.asarray(predicted, dtype=float).ravel()
    if a.shape != p.shape:
        raise InputError(f"actual and predicted differ in length: {a.shape[0]} vs {p.shape[0]}")
    if a.size == 0:
        raise InputError("actual and predicted are empty: there is nothing to score")
    bad = ~(np.isfinite(a) & np.isfinite(p))
    if bad.any():
        raise InputError(
            f"{int(bad.sum())} of {a.size} actual/predicted pairs are missing or non-finite "
            f"(first at position {int(np.flatnonzero(bad)[0])}); fix the predictions or drop "
            "those customers explicitly before scoring"
        )
    return a, p


def mae(actual, predicted) -> float:
    """Mean absolute error ``mean(|predicted - actual|)``."""
    a, p = _pair(actual, predicted)
    return float(np.mean(np.abs(p - a)))


def rmse(actual, predicted) -> float:
    """Root mean squared error ``sqrt(mean((predicted - actual)^2))``."""
    a, p = _pair(actual, predicted)
    return float(np.sqrt(np.mean((p - a) ** 2)))


def bias(actual, predicted) -> float:
    """Mean error ``mean(predicted - actual)``: positive means the model over-predicts."""
    a, p = _pair(actual, predicted)
    return float(np.mean(p - a))


def total_error(actual, predicted) -> float:
    """Relative error of the aggregate: ``sum(predicted) / sum(actual) - 1`` (NaN if the actual
    total is 0)."""
    a, p = _pair(actual, predicted)
    total = a.sum()
    return float(p.sum() / total - 1.0) if total != 0 else float("nan")


def spearman(actual, predicted) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    a, p = _pair(actual, predicted)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(p) == 0:
        return float("nan")
    return float(stats.spearmanr(a, p).statistic)


def gain_curve(actual, predicted) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gain curve of ``actual`` value when customers are ranked by ``predicted``.

    Returns ``(share_of_customers, share_of_value)``, both starting at 0 and ending at 1, at the
    boundaries of groups of tied predictions. Inside a tie group the curve is a straight line:
    the expected curve when ties are broken at random, so the result does not depend on the
    order of the input. Ranking is by decreasing prediction.
    """
    a, p = _pair(actual, predicted)
    if (a < 0).any():
        raise InputError("gain curves need non-negative actual values (purchases, spend)")
    total = a.sum()
    # group tied predictions, in decreasing order of prediction
    keys, inverse = np.unique(-p, return_inverse=True)
    group_value = np.bincount(inverse.ravel(), weights=a, minlength=len(keys))
    group_size = np.bincount(inverse.ravel(), minlength=len(keys)).astype(float)
    x = np.concatenate([[0.0], np.cumsum(group_size) / a.size])
    if total > 0:
        y = np.concatenate([[0.0], np.cumsum(group_value) / total])
    else:
        y = x.copy()
    return x, y


def gini(actual, predicted) -> float:
    """Normalised Gini coefficient of ``actual`` value ranked by ``predicted``.

    ``G(pred) / G(actual)`` with ``G = 2 * AUC(gain curve) - 1``: 1 for a perfect ranking, 0 for
    a random one (ties count as random order, see :func:`gain_curve`). NaN when all actual
    values are equal.
    """
    a, p = _pair(actual, predicted)
    x, y = gain_curve(a, p)
    xo, yo = gain_curve(a, a)
    denominator = 2 * np.trapezoid(yo, xo) - 1
    if a.sum() <= 0 or denominator <= 0:
        return float("nan")
    return float((2 * np.trapezoid(y, x) - 1) / denominator)


def top_share_capture(actual, predicted, share: float = 0.1) -> float:
    """Share of the total ``actual`` value brought by the top ``share`` of customers ranked by
    ``predicted`` (ties at the cut-off counted pro rata). A random ranking gives ``share``."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    a, p = _pair(actual, predicted)
    if a.sum() <= 0:
        return float("nan")
    x, y = gain_curve(a, p)
    return float(np.interp(share, x, y))


def interval_hit_rate(actual, lower, upper) -> float:
    """Share of observations with ``lower <= actual <= upper`` (end points included)."""
    a = np.asarray(actual, dtype=float)
    lo = np.asarray(lower, dtype=float)
    hi = np.asarray(upper, dtype=float)
    return float(np.mean((a >= lo) & (a <= hi)))


# --------------------------------------------------------------------------------------------
# calibration/holdout summaries
# --------------------------------------------------------------------------------------------
def check_calibration_holdout(ch: pd.DataFrame, models=()) -> pd.DataFrame:
    """Check a calibration/holdout summary and return it: the calibration columns as each of
    ``models``' families checks its summaries (an RFM summary when no model is given), the
    holdout columns present, non-negative and finite."""
    families = {type(model.family_): model.family_ for model in models}
    if not families:
        validate_summary(ch, what="calibration_holdout")
    for family in families.values():
        family.validate_summary(ch, what="calibration_holdout")
    return check_holdout_columns(ch)


def check_holdout_columns(ch: pd.DataFrame) -> pd.DataFrame:
    """Check the holdout columns of a calibration/holdout summary (present, non-negative and
    finite) and return it."""
    if not isinstance(ch, pd.DataFrame):
        raise InputError(
            f"calibration_holdout must be a pandas DataFrame, got {type(ch).__name__}. Build it "
            "with clvmodels.calibration_holdout_summary(transactions, ...)."
        )
    check_columns(
        ch,
        list(HOLDOUT_COLUMNS),
        "calibration_holdout",
        hint="build it with clvmodels.calibration_holdout_summary(transactions, ...)",
    )
    for col in HOLDOUT_COLUMNS:
        values = pd.to_numeric(ch[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            raise InputError(
                f"column {col!r} of calibration_holdout has missing, negative or non-finite "
                f"values in {describe_rows(ch[[col]], bad)}\nFix: rebuild the summary with "
                "clvmodels.calibration_holdout_summary."
            )
    return ch


def holdout_actuals(calibration_holdout: pd.DataFrame) -> pd.DataFrame:
    """Observed holdout purchases and spend per customer.

    ``purchases`` = ``frequency_holdout``; ``spend`` = ``frequency_holdout *
    monetary_value_holdout`` (total holdout spend; NaN column when the summary has no
    ``monetary_value_holdout``); ``duration`` = ``duration_holdout`` in the summary's unit.
    """
    ch = check_holdout_columns(calibration_holdout)
    purchases = ch["frequency_holdout"].to_numpy(dtype=float)
    if "monetary_value_holdout" in ch.columns:
        spend = purchases * ch["monetary_value_holdout"].to_numpy(dtype=float)
    else:
        spend = np.full(len(ch), np.nan)
    return pd.DataFrame(
        {
            "purchases": purchases,
            "spend": spend,
            "duration": ch["duration_holdout"].to_numpy(dtype=float),
        },
        index=ch.index,
    )


def calibration_part(ch: pd.DataFrame) -> pd.DataFrame:
    """The calibration columns of a calibration/holdout summary, with its attrs."""
    keep = [c for c in ch.columns if not c.endswith("_holdout")]
    out = ch[keep]
    out.attrs = dict(ch.attrs)
    return out


def duration_groups(durations: np.ndarray):
    """Yield (duration, boolean mask) for each distinct holdout duration."""
    for d in np.unique(durations):
        yield float(d), durations == d


# --------------------------------------------------------------------------------------------
# predictions from clvmodels models
# --------------------------------------------------------------------------------------------
def model_kind(obj) -> str | None:
    """``"purchase"`` or ``"spend"`` for a fitted clvmodels model (its ``kind`` and
    ``family_``), None for anything else (other libraries' fitters, baselines)."""
    kind = getattr(obj, "kind", None)
    if kind in ("purchase", "spend") and getattr(obj, "family_", None) is not None:
        return kind
    return None


def customer_columns(params: dict, mask: np.ndarray, n: int) -> dict:
    """The parameters of the customers in ``mask``: arrays with a customer axis of length
    ``n`` (grouped models) are subset, shared ``(n_draws, 1)`` arrays kept."""
    return {
        k: (v[..., mask] if np.ndim(v) == 2 and np.shape(v)[-1] == n else v)
        for k, v in params.items()
    }


def expected_holdout_purchases(model, calibration: pd.DataFrame, durations) -> np.ndarray:
    """E[X(T, T + d_i) | history] at the point estimate for each customer's holdout length
    ``d_i`` (the purchase family's ``expected_purchases``; P(alive) computed once)."""
    model.check_fitted()
    model.check_unit(calibration)
    family = model.family_
    params = model.customer_params(calibration)
    customer = family.customer_arrays(calibration)
    n = len(calibration)
    p_alive = np.atleast_2d(np.asarray(family.probability_alive(params, *customer)))
    out = np.empty(n)
    for duration, mask in duration_groups(np.asarray(durations, dtype=float)):
        values = family.expected_purchases(
            customer_columns(params, mask, n),
            *(a[mask] for a in customer),
            duration,
            p_alive=customer_columns({"p": p_alive}, mask, n)["p"],
        )
        out[mask] = np.broadcast_to(np.asarray(values, dtype=float), (1, int(mask.sum())))[0]
    return out


def expected_spend_per_purchase(model, calibration: pd.DataFrame) -> np.ndarray:
    """The spend family's expected spend per transaction at the point estimate."""
    model.check_fitted()
    customer = model.family_.customer_arrays(calibration)
    values = model.family_.expected_spend(model.customer_params(calibration), *customer)
    return np.broadcast_to(np.asarray(values, dtype=float), (1, len(calibration)))[0]


def _draws(model, n_draws: int, seed) -> pd.DataFrame:
    """Parameter draws of any clvmodels model: posterior draws or asymptotic MLE draws; the
    point estimate when the fit has no usable covariance (with a warning)."""
    try:
        return model.param_draws(n_draws, seed=seed)
    except ValueError as exc:
        warnings.warn(
            f"{type(model).__name__}: no parameter draws ({exc}); predictive intervals use the "
            "point estimate only and will be too narrow",
            stacklevel=3,
        )
        return model.point_draws()


def predictive_samples(
    purchase_model,
    calibration_holdout: pd.DataFrame,
    spend_model=None,
    *,
    n_samples: int = 1000,
    n_draws: int = 200,
    seed=0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Samples of each customer's holdout purchase count (and total spend) under the model.

    Parameter uncertainty enters through ``n_draws`` parameter draws (posterior draws, or the
    asymptotic normal of the MLE), each reused for ``n_samples / n_draws`` simulated futures:
    latent state and purchase process from the family's ``sample_future_purchases`` over each
    customer's ``duration_holdout``, spend from the spend family's ``sample_future_spend``.
    Returns arrays of shape ``(n_samples, n_customers)`` (spend None without a spend model).
    """
    ch = check_calibration_holdout(
        calibration_holdout, [m for m in (purchase_model, spend_model) if m is not None]
    )
    rng = np.random.default_rng(seed)
    calibration = calibration_part(ch)
    customer = purchase_model.family_.customer_arrays(ch)
    spender = spend_model.family_.customer_arrays(ch) if spend_model is not None else None
    durations = ch["duration_holdout"].to_numpy(dtype=float)
    draws = _draws(purchase_model, n_draws, seed)
    reps = max(1, int(np.ceil(n_samples / len(draws))))
    draws = pd.concat([draws] * reps, ignore_index=True).iloc[:n_samples]
    params = purchase_model.customer_params(calibration, draws)
    spend_params = None
    if spend_model is not None:
        spend_draws = _draws(spend_model, n_draws, seed)
        spend_draws = pd.concat([spend_draws] * reps, ignore_index=True)
        spend_draws = spend_draws.iloc[: len(draws)]
        spend_params = spend_model.customer_params(calibration, spend_draws)
    counts = np.zeros((len(draws), len(ch)))
    spend = np.zeros((len(draws), len(ch))) if spend_model is not None else None
    for duration, mask in duration_groups(durations):
        sub = customer_columns(params, mask, len(ch))
        sampled = purchase_model.family_.sample_future_purchases(
            sub, *(a[mask] for a in customer), np.array([duration]), rng
        )
        sampled = np.asarray(sampled)[..., 0]
        counts[:, mask] = np.broadcast_to(sampled, (len(draws), int(mask.sum())))
        if spend is not None:
            sp = customer_columns(spend_params, mask, len(ch))
            amount = spend_model.family_.sample_future_spend(
                sp, *(a[mask] for a in spender), counts[:, mask][..., None], rng
            )
            spend[:, mask] = np.asarray(amount)[..., 0]
    return counts, spend


def _log_predictive_score(model, calibration: pd.DataFrame, actual: pd.DataFrame) -> float:
    """mean log P(X_holdout = y | history) at the point estimate: the purchase family's
    ``purchase_probability`` (P(alive) computed once per holdout length)."""
    family = model.family_
    params = model.customer_params(calibration)
    customer = family.customer_arrays(calibration)
    n = len(calibration)
    y = actual["purchases"].to_numpy()
    logp = np.empty(n)
    for duration, group in duration_groups(actual["duration"].to_numpy()):
        p_group = customer_columns(params, group, n)
        cols = np.flatnonzero(group)
        in_group = tuple(a[cols] for a in customer)
        p_alive = np.atleast_2d(np.asarray(family.probability_alive(p_group, *in_group)))
        for k in np.unique(y[cols]):
            hit = y[cols] == k
            prob = family.purchase_probability(
                customer_columns(p_group, hit, len(cols)),
                *(a[hit] for a in in_group),
                duration,
                int(k),
                p_alive=customer_columns({"p": p_alive}, hit, len(cols))["p"],
            )
            prob = np.broadcast_to(np.asarray(prob, dtype=float), (1, int(hit.sum())))[0]
            logp[cols[hit]] = np.log(np.clip(prob, 1e-300, None))
    return float(np.mean(logp))


def pointwise_log_likelihood(model, calibration: pd.DataFrame, draws: pd.DataFrame):
    """(n_draws, n_customers) log-likelihood of each customer's calibration data at each draw:
    the purchase family's ``log_likelihood`` of its ``fit_columns``, with each customer's
    parameters from :meth:`customer_params` (groups, covariates); None when the summary lacks
    a column the likelihood reads."""
    family = model.family_
    if any(c not in calibration.columns for c in family.fit_columns):
        return None
    data = {c: calibration[c].to_numpy(dtype=float) for c in family.fit_columns}
    values = family.log_likelihood(model.customer_params(calibration, draws), data)
    return np.broadcast_to(values, (len(draws), len(calibration)))


def _arviz_scores(compute, what: str, label: str) -> dict[str, float]:
    """Run one ArviZ criterion; its warnings (e.g. high Pareto k) and a failure reach the user
    as warnings naming the model, after the call (never silenced)."""
    failure = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = compute()
        except Exception as exc:  # noqa: BLE001 - report, do not hide
            out, failure = {}, exc
    seen = set()
    for w in caught:
        message = f"{label}: ArviZ {what}: {w.message}"
        if message not in seen:
            seen.add(message)
            warnings.warn(message, w.category, stacklevel=4)
    if failure is not None:
        warnings.warn(f"{label}: ArviZ {what} failed: {failure}", RuntimeWarning, stacklevel=4)
    return out


def _bayesian_scores(model, calibration: pd.DataFrame, n_draws: int = 500, seed=0) -> dict:
    """ArviZ PSIS-LOO and WAIC of a Bayesian model (Vehtari, Gelman & Gabry 2017).

    Uses the ``log_likelihood`` group of ``model.idata_`` when the model stored one; otherwise
    the per-customer log-likelihood of the calibration data is computed from ``n_draws``
    posterior draws with the purchase family's likelihood (:func:`pointwise_log_likelihood`).
    ArviZ's warnings (unreliable PSIS, WAIC variance) and failures are passed on as warnings.
    """
    idata = getattr(model, "idata_", None)
    if idata is None or not hasattr(idata, "posterior"):
        return {}
    import arviz as az

    if "log_likelihood" not in idata.groups():
        draws = model.param_draws(n_draws, seed=seed)
        values = pointwise_log_likelihood(model, calibration, draws)
        if values is None:
            return {}
        idata = az.from_dict(
            posterior={"draw_index": np.arange(len(draws), dtype=float)[None, :]},
            log_likelihood={"purchases": values[None, :, :]},
        )
    label = type(model).__name__

    def loo():
        result = az.loo(idata)
        return {
            "elpd_loo": float(result.elpd_loo),
            "p_loo": float(result.p_loo),
            "elpd_loo_se": float(result.se),
        }

    def waic():
        return {"elpd_waic": float(az.waic(idata).elpd_waic)}

    return {**_arviz_scores(loo, "LOO", label), **_arviz_scores(waic, "WAIC", label)}


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------
def _point_metrics(prefix: str, actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    return {
        f"{prefix}_mae": mae(actual, predicted),
        f"{prefix}_rmse": rmse(actual, predicted),
        f"{prefix}_bias": bias(actual, predicted),
        f"{prefix}_total_error": total_error(actual, predicted),
        f"{prefix}_spearman": spearman(actual, predicted),
        f"{prefix}_gini": gini(actual, predicted),
        f"{prefix}_top_decile": top_share_capture(actual, predicted, 0.1),
    }


def _level_name(level: float) -> str:
    return f"{round(level * 100):d}"


def _interval_metrics(
    prefix: str, samples: np.ndarray, actual: np.ndarray, levels: Sequence[float]
) -> dict[str, float]:
    below, at = empirical_cdf_bounds(samples, actual)
    out: dict[str, float] = {}
    for level in levels:
        name = _level_name(level)
        lower, upper = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
        out[f"{prefix}coverage_{name}"] = float(pit_interval_coverage(below, at, level).mean())
        out[f"{prefix}hit_rate_{name}"] = interval_hit_rate(actual, lower, upper)
        out[f"{prefix}width_{name}"] = float(np.mean(upper - lower))
    return out


def evaluate_predictions(
    calibration_holdout: pd.DataFrame,
    purchases,
    spend=None,
    *,
    purchase_samples: np.ndarray | None = None,
    spend_samples: np.ndarray | None = None,
    levels: Sequence[float] = DEFAULT_LEVELS,
) -> dict[str, float]:
    """Score per-customer predictions of holdout purchases (and spend) against the summary.

    ``purchases`` / ``spend``: predicted holdout purchase counts / total holdout spend, one per
    row of ``calibration_holdout`` (aligned by index when a Series). Optional predictive samples
    of shape ``(n_samples, n_customers)`` add interval coverage and width at ``levels``.
    """
    actual = holdout_actuals(calibration_holdout)
    idx = actual.index

    def _aligned(values, what):
        if isinstance(values, pd.Series):
            missing = ~idx.isin(values.index)
            if missing.any():
                raise InputError(
                    f"{what} predictions lack {int(missing.sum())} customers of the summary, "
                    f"e.g. {list(idx[missing][:5])}"
                )
            values = values.reindex(idx)
        arr = np.asarray(values, dtype=float).ravel()
        if arr.shape[0] != len(idx):
            raise InputError(
                f"{what} predictions have {arr.shape[0]} values for {len(idx)} customers"
            )
        return arr

    y = actual["purchases"].to_numpy()
    out: dict[str, float] = {"n_customers": float(len(idx))}
    out["purchases_actual_total"] = float(y.sum())
    p = _aligned(purchases, "purchase")
    out["purchases_predicted_total"] = float(p.sum())
    out.update(_point_metrics("purchases", y, p))
    if purchase_samples is not None:
        out.update(_interval_metrics("", purchase_samples, y, levels))
    if spend is not None:
        z = actual["spend"].to_numpy()
        if np.isnan(z).any():
            raise InputError(
                "spend predictions were given but calibration_holdout has no "
                "monetary_value_holdout; build it with calibration_holdout_summary(..., monetary=...)"
            )
        s = _aligned(spend, "spend")
        out["spend_actual_total"] = float(z.sum())
        out["spend_predicted_total"] = float(s.sum())
        out.update(_point_metrics("spend", z, s))
        if spend_samples is not None:
            out.update(_interval_metrics("spend_", spend_samples, z, levels))
    return out


def evaluate(
    purchase_model,
    calibration_holdout: pd.DataFrame,
    spend_model=None,
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    n_samples: int = 1000,
    n_draws: int = 200,
    intervals: bool = True,
    seed=0,
) -> dict[str, float]:
    """Holdout accuracy of a fitted clvmodels purchase model (and optional spend model).

    Predictions: ``expected_purchases`` over each customer's ``duration_holdout`` (in the
    summary's unit, which must be the model's) and, with a spend model, ``expected_purchases *
    expected_spend`` for the holdout spend. With ``intervals``, predictive samples
    (:func:`predictive_samples`) give coverage and width at ``levels``. Adds the log predictive
    score when the family has ``purchase_probability`` and ArviZ LOO/WAIC when the model has
    an ``idata_`` with a posterior.

    Returns a dict of metric name -> value (see the module docstring).
    """
    if model_kind(purchase_model) != "purchase":
        raise TypeError(
            f"evaluate() needs a fitted clvmodels purchase model, got "
            f"{type(purchase_model).__name__}; use compare_models() for baselines and "
            "other libraries"
        )
    if spend_model is not None and model_kind(spend_model) != "spend":
        raise TypeError(f"spend_model must be a clvmodels spend model, got {type(spend_model)}")
    ch = check_calibration_holdout(
        calibration_holdout, [m for m in (purchase_model, spend_model) if m is not None]
    )
    calibration = calibration_part(ch)
    actual = holdout_actuals(ch)
    purchases = pd.Series(
        expected_holdout_purchases(purchase_model, calibration, actual["duration"]),
        index=ch.index,
    )
    spend = None
    if spend_model is not None:
        spend = purchases * expected_spend_per_purchase(spend_model, calibration)
    p_samples = s_samples = None
    if intervals:
        p_samples, s_samples = predictive_samples(
            purchase_model, ch, spend_model, n_samples=n_samples, n_draws=n_draws, seed=seed
        )
    out = evaluate_predictions(
        ch, purchases, spend, purchase_samples=p_samples, spend_samples=s_samples, levels=levels
    )
    try:
        out["log_score"] = _log_predictive_score(purchase_model, calibration, actual)
    except NotImplementedError:  # a family without a closed-form count distribution
        pass
    out.update(_bayesian_scores(purchase_model, calibration, seed=seed))
    return out


# --------------------------------------------------------------------------------------------
# other libraries and baselines
# --------------------------------------------------------------------------------------------
def _lifetimes_predict(fitter, ch: pd.DataFrame) -> pd.DataFrame:
    """Holdout purchases from a fitted lifetimes purchase fitter (same time unit as ``ch``)."""
    actual = holdout_actuals(ch)
    purchases = np.empty(len(ch))
    for duration, mask in duration_groups(actual["duration"].to_numpy()):
        sub = ch[mask]
        purchases[mask] = np.asarray(
            fitter.conditional_expected_number_of_purchases_up_to_time(
                duration, sub["frequency"], sub["recency"], sub["T"]
            ),
            dtype=float,
        )
    return pd.DataFrame({"purchases": purchases}, index=ch.index)


def _pymc_marketing_predict(model, ch: pd.DataFrame) -> pd.DataFrame:
    """Holdout purchases from a fitted pymc-marketing BetaGeoModel-like model (posterior mean)."""
    actual = holdout_actuals(ch)
    data = pd.DataFrame(
        {
            "customer_id": np.arange(len(ch)),
            "frequency": ch["frequency"].to_numpy(dtype=float),
            "recency": ch["recency"].to_numpy(dtype=float),
            "T": ch["T"].to_numpy(dtype=float),
        }
    )
    purchases = np.empty(len(ch))
    for duration, mask in duration_groups(actual["duration"].to_numpy()):
        result = model.expected_purchases(data=data[mask], future_t=duration)
        mean_dims = [d for d in ("chain", "draw") if d in result.dims]
        purchases[mask] = np.asarray(result.mean(mean_dims).values, dtype=float)
    return pd.DataFrame({"purchases": purchases}, index=ch.index)


def _heuristic_predict(model, ch: pd.DataFrame) -> pd.DataFrame:
    """Holdout purchases and spend of a fitted :class:`clvmodels.HeuristicCLV`: its purchase
    frequency over the holdout's expected active periods, times its order value."""
    actual = holdout_actuals(ch)
    calibration = calibration_part(ch)
    purchases = np.empty(len(ch))
    for duration, mask in duration_groups(actual["duration"].to_numpy()):
        purchases[mask] = model.expected_purchases(calibration[mask], duration).to_numpy()
    order_value, _ = model.customer_terms(calibration)
    return pd.DataFrame({"purchases": purchases, "spend": purchases * order_value}, index=ch.index)


def _baseline_predict(obj, ch: pd.DataFrame) -> pd.DataFrame:
    if hasattr(obj, "predict_holdout"):
        out = obj.predict_holdout(ch)
    elif callable(obj):
        out = obj(ch)
    else:  # pragma: no cover - guarded by the caller
        raise TypeError(type(obj))
    if isinstance(out, pd.Series):
        out = out.to_frame("purchases")
    if not isinstance(out, pd.DataFrame) or "purchases" not in out.columns:
        raise InputError(
            "a baseline must return a DataFrame indexed like calibration_holdout with a "
            f"'purchases' column (and optionally 'spend'); got {type(out).__name__}"
        )
    return out


def _describe_entry(entry) -> str:
    return type(entry).__name__


def _score_entry(entry, ch: pd.DataFrame, settings: dict[str, Any]) -> dict[str, float]:
    """Dispatch one compare_models entry to the right predictor and score it."""
    if isinstance(entry, tuple):
        if len(entry) != 2:
            raise InputError("a tuple entry must be (purchase_model, spend_model)")
        purchase_model, spend_model = entry
    else:
        purchase_model, spend_model = entry, None
    if model_kind(purchase_model) == "purchase":
        return evaluate(purchase_model, ch, spend_model, **settings)
    # the other predictors read the RFM columns
    validate_summary(ch, what="calibration_holdout")
    if isinstance(purchase_model, HeuristicCLV):
        pred = _heuristic_predict(purchase_model, ch)
    elif hasattr(purchase_model, "conditional_expected_number_of_purchases_up_to_time"):
        pred = _lifetimes_predict(purchase_model, ch)
    elif hasattr(purchase_model, "expected_purchases") and hasattr(purchase_model, "idata"):
        pred = _pymc_marketing_predict(purchase_model, ch)
    elif hasattr(purchase_model, "predict_holdout") or callable(purchase_model):
        pred = _baseline_predict(purchase_model, ch)
    else:
        raise TypeError(
            f"cannot evaluate a {_describe_entry(purchase_model)}: pass a fitted clvmodels "
            "purchase model, a (purchase_model, spend_model) tuple, a lifetimes fitter, a "
            "pymc-marketing model, an object with predict_holdout(calibration_holdout), or a "
            "callable returning a DataFrame with 'purchases' (and 'spend')"
        )
    spend = pred["spend"] if "spend" in pred.columns else None
    if spend_model is not None:
        calibration = calibration_part(ch)
        if hasattr(spend_model, "conditional_expected_average_profit"):
            # lifetimes GammaGammaFitter: at frequency 0 its formula is the population mean
            per_purchase = np.asarray(
                spend_model.conditional_expected_average_profit(
                    ch["frequency"], ch["monetary_value"]
                ),
                dtype=float,
            )
        else:
            per_purchase = expected_spend_per_purchase(spend_model, calibration)
        spend = pred["purchases"].reindex(ch.index).to_numpy(dtype=float) * per_purchase
    return evaluate_predictions(
        ch, pred["purchases"], spend, levels=settings.get("levels", DEFAULT_LEVELS)
    )


def compare_models(
    models: Mapping[str, Any],
    calibration_holdout: pd.DataFrame,
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    n_samples: int = 1000,
    n_draws: int = 200,
    intervals: bool = True,
    seed=0,
) -> pd.DataFrame:
    """Score several fitted models on the same calibration/holdout summary.

    ``models`` maps a display name to one of

    * a fitted clvmodels purchase model (BetaGeo, ParetoNBD, ModifiedBetaGeo,
      HierarchicalBetaGeo, ...);
    * a tuple ``(purchase_model, spend_model)`` to score holdout spend as well;
    * a fitted ``lifetimes`` purchase fitter (e.g. ``BetaGeoFitter``), optionally in a tuple
      with a ``GammaGammaFitter``;
    * a fitted pymc-marketing ``BetaGeoModel`` (posterior-mean expected purchases);
    * an object with ``predict_holdout(calibration_holdout)`` or a callable
      ``f(calibration_holdout)`` returning a DataFrame indexed like the summary with a
      ``purchases`` column (and optionally ``spend``), e.g. :class:`RFMGradientBoosting` or
      :class:`clvmodels.HeuristicCLV`.

    Interval metrics, the log score and LOO/WAIC are only available for clvmodels models; the
    other cells are NaN. ``seconds`` is the time spent scoring each model (not fitting).

    Returns a DataFrame with one row per model (index ``model``) and one column per metric,
    sorted as given. To plot one metric: ``clvmodels.plotting.plot_model_comparison(table,
    "purchases_mae")``.
    """
    if not isinstance(models, Mapping) or len(models) == 0:
        raise InputError("models must be a non-empty dict of name -> fitted model")
    # each model checks the calibration columns its own way when it is scored
    ch = check_holdout_columns(calibration_holdout)
    settings = {
        "levels": tuple(levels),
        "n_samples": n_samples,
        "n_draws": n_draws,
        "intervals": intervals,
        "seed": seed,
    }
    rows = []
    for name, entry in models.items():
        start = time.perf_counter()
        row = _score_entry(entry, ch, settings)
        row["seconds"] = time.perf_counter() - start
        rows.append(pd.Series(row, name=str(name)))
    table = pd.DataFrame(rows)
    table.index.name = "model"
    return table


# --------------------------------------------------------------------------------------------
# tracking: aggregate repeat purchases over calendar time
# --------------------------------------------------------------------------------------------
def tracking_data(
    model,
    transactions: pd.DataFrame,
    *,
    customer_id: str = "customer_id",
    datetime: str = "date",
    calibration_end=None,
    observation_end=None,
    period: str | None = None,
    covariates: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Actual and expected repeat purchases per period over calendar time.

    Repeat purchases are the distinct purchase days of a customer after the first (the
    convention of :func:`clvmodels.rfm_summary` at daily resolution). The expected cumulative
    count at time ``tau`` is ``sum_i E[X(tau - birth_i)]`` over the customers born before
    ``tau`` (:meth:`expected_purchases_new_customer`), i.e. the model's forecast for the cohort
    given only its acquisition dates (Fader, Hardie & Lee 2005, Figure 2). ``period`` defaults
    to one unit of the model (e.g. one week) and periods run from the first purchase in the
    data to ``observation_end`` (default: the last transaction day). A covariate model needs
    ``covariates``: a frame indexed by customer id with its ``covariate_columns`` for every
    customer in ``transactions`` (e.g. the summary); customers sharing a birth day and
    covariate values are forecast together. A model with time-varying covariates
    (:class:`~clvmodels.TimeVaryingParetoNBD`) forecasts each customer along the covariate
    path of its own table from the first purchase (its ``acquisition_forecast()``); the
    table must reach ``observation_end`` and ``covariates`` is not taken.

    Returns a DataFrame indexed by ``period_end`` (timestamp) with ``t`` (model units since the
    first purchase), ``actual``, ``expected``, ``actual_cumulative``, ``expected_cumulative``
    and ``holdout`` (True after ``calibration_end``).
    """
    check_columns(transactions, [customer_id, datetime], "transactions")
    if hasattr(model, "acquisition_forecast"):
        if covariates is not None:
            raise InputError(
                f"a {type(model).__name__} forecasts each customer along the covariate path of "
                "its own table: leave covariates= out (attach future periods with "
                "model.with_future_covariates(table))"
            )
        model = model.acquisition_forecast()
        covariates = model.acquisitions(transactions, customer_id, datetime)
    unit = model.time_unit_
    step_days = units.to_unit(period, "D") if period is not None else units.days_per(unit)
    dates = pd.to_datetime(transactions[datetime]).dt.normalize()
    frame = pd.DataFrame({"cid": transactions[customer_id].to_numpy(), "day": dates.to_numpy()})
    frame = frame.drop_duplicates()
    birth = frame.groupby("cid")["day"].transform("min")
    repeat_days = frame.loc[frame["day"] > birth, "day"]
    births = frame.groupby("cid")["day"].min()
    start = births.min()
    end = pd.Timestamp(observation_end) if observation_end is not None else frame["day"].max()
    n_periods = units.period_count(f"{(end - start).days + 1}D", f"{step_days}D", "D")
    edges_days = np.arange(1, n_periods + 1) * step_days  # period ends, days since start
    # a purchase on day d (days since start) belongs to period ceil((d + 1) / step) - 1
    offset = (repeat_days - start).dt.days.to_numpy(dtype=float)
    period_index = np.clip(np.ceil((offset + 1) / step_days).astype(int) - 1, 0, n_periods - 1)
    actual = np.bincount(period_index[offset <= (end - start).days], minlength=n_periods)
    # expected: sum over customers of E[X(tau - birth)] with tau at the end of each period
    cohorts = birth_cohorts(model, births, start, covariates)
    expected_cum = np.zeros(n_periods)
    to_unit = 1.0 / units.days_per(unit)
    for key, count in cohorts.items():
        b, *values = key if isinstance(key, tuple) else (key,)
        age_days = edges_days - (b + 1)  # a birth on day b starts the clock at the end of day b
        alive = age_days > 0
        if alive.any():
            ages = list(age_days[alive] * to_unit)
            profile = dict(zip(cohorts.index.names[1:], values, strict=True))
            forecast = (
                model.expected_purchases_new_customer(ages, covariates=profile)
                if profile
                else model.expected_purchases_new_customer(ages)
            )
            expected_cum[alive] += count * np.asarray(forecast, dtype=float)
    expected = np.diff(np.concatenate([[0.0], expected_cum]))
    period_end = start + pd.to_timedelta(edges_days - 1, unit="D")
    out = pd.DataFrame(
        {
            "t": edges_days * to_unit,
            "actual": actual.astype(float),
            "expected": expected,
            "actual_cumulative": np.cumsum(actual).astype(float),
            "expected_cumulative": expected_cum,
        },
        index=pd.DatetimeIndex(period_end, name="period_end"),
    )
    cal = pd.Timestamp(calibration_end) if calibration_end is not None else None
    out["holdout"] = out.index > cal if cal is not None else False
    return out


def birth_cohorts(model, births: pd.Series, start, covariates) -> pd.Series:
    """Customers counted by birth day (days since ``start``) and, for a covariate model, by
    their covariate values (from ``covariates``, indexed by customer id)."""
    columns = list(getattr(model, "covariate_columns", ()))
    frame = pd.DataFrame({"birth_day": (births - start).dt.days.to_numpy(dtype=float)})
    if columns:
        if covariates is None:
            raise InputError(
                f"{type(model).__name__} has covariates {columns}: pass covariates=<a frame "
                "indexed by customer id with these columns> (e.g. the summary) to forecast "
                "each customer with their own values"
            )
        check_columns(covariates, columns, "covariates")
        missing = ~births.index.isin(covariates.index)
        if missing.any():
            raise InputError(
                f"covariates has no row for {int(missing.sum())} customers of the transactions, "
                f"e.g. {list(births.index[missing][:5])}\nFix: give every customer's covariates."
            )
        rows = covariates.loc[births.index, columns]
        for column in columns:
            frame[column] = rows[column].to_numpy()
    return frame.groupby(list(frame.columns), sort=False, dropna=False).size()


# --------------------------------------------------------------------------------------------
# machine-learning baseline
# --------------------------------------------------------------------------------------------
def rfm_features(summary: pd.DataFrame) -> pd.DataFrame:
    """Features of the supervised baseline, computed from an RFM summary."""
    x = summary["frequency"].to_numpy(dtype=float)
    t_x = summary["recency"].to_numpy(dtype=float)
    T = summary["T"].to_numpy(dtype=float)
    safe_T = np.where(T > 0, T, 1.0)
    features = {
        "frequency": x,
        "recency": t_x,
        "T": T,
        "recency_share": t_x / safe_T,
        "frequency_rate": x / safe_T,
        "time_since_last": T - t_x,
    }
    if "monetary_value" in summary.columns:
        features["monetary_value"] = summary["monetary_value"].to_numpy(dtype=float)
    return pd.DataFrame(features, index=summary.index)


@dataclass(eq=False, repr=False)
class RFMGradientBoosting:
    """Supervised baseline: gradient boosting on RFM features predicting holdout purchases and
    spend.

    A supervised model needs a target window it may learn from, and the holdout may not be
    used. The honest protocol: split the *calibration* period in two, build RFM features on the
    earlier part and targets (purchases, spend) on the later part, train there, then apply the
    trained model to the features of the full calibration period to predict the real holdout.

    The target window has the length of the holdout when the calibration period allows it,
    otherwise half the calibration period (``target_fraction``); predictions are scaled by
    ``holdout_length / target_length`` (the purchase rate per unit of time is what transfers).
    Customers first seen in the target window have no features and are not trained on.

    Parameters
    ----------
    transactions : DataFrame of purchases (the calibration part is all that is used).
    customer_id, datetime, monetary : column names.
    calibration_end : last day of the calibration period.
    time_unit : unit of the summaries, as in :func:`clvmodels.calibration_holdout_summary`.
    target_fraction : the most of the calibration span given to the target window.
    max_iter, learning_rate, random_state : passed to
        :class:`sklearn.ensemble.HistGradientBoostingRegressor` (Poisson loss for counts).
    n_threads : OpenMP threads for training and prediction (default 1: the RFM tables are small
        and more threads only contend on a busy machine; None lets OpenMP decide).
    """

    transactions: pd.DataFrame
    _: KW_ONLY
    customer_id: str = "customer_id"
    datetime: str = "date"
    monetary: str | None = "amount"
    calibration_end: Any
    time_unit: str = "W"
    target_fraction: float = 0.5
    max_iter: int = 200
    learning_rate: float = 0.05
    random_state: int = 0
    n_threads: int | None = 1

    def _threads(self):
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=self.n_threads)

    def fit(self, holdout_length) -> RFMGradientBoosting:
        """Train on the calibration period for a holdout of ``holdout_length`` (model units or
        a calendar string such as "39W")."""
        from sklearn.ensemble import HistGradientBoostingRegressor

        from clvmodels.data import calibration_holdout_summary

        tx = self.transactions
        dates = pd.to_datetime(tx[self.datetime])
        cal_end = pd.Timestamp(self.calibration_end)
        tx = tx[dates <= cal_end]
        first = pd.to_datetime(tx[self.datetime]).min()
        span_days = (cal_end - first).days
        holdout_days = units.to_unit(holdout_length, self.time_unit) * units.days_per(
            self.time_unit
        )
        target_days = min(holdout_days, self.target_fraction * span_days)
        if target_days < 1:
            raise InputError("the calibration period is too short to carve out a target window")
        split = cal_end - pd.Timedelta(days=int(round(target_days)))
        train = calibration_holdout_summary(
            tx,
            customer_id=self.customer_id,
            datetime=self.datetime,
            monetary=self.monetary,
            calibration_end=split.strftime("%Y-%m-%d"),
            observation_end=cal_end.strftime("%Y-%m-%d"),
            time_unit=self.time_unit,
        )
        features = rfm_features(train)
        purchases = train["frequency_holdout"].to_numpy(dtype=float)
        self.target_length_ = float(train["duration_holdout"].iloc[0])
        self.holdout_length_ = units.to_unit(holdout_length, self.time_unit)
        self.n_train_ = len(train)
        settings = {
            "max_iter": self.max_iter,
            "learning_rate": self.learning_rate,
            "random_state": self.random_state,
        }
        with self._threads():
            self.purchase_model_ = HistGradientBoostingRegressor(loss="poisson", **settings)
            self.purchase_model_.fit(features, purchases)
            self.spend_model_ = None
            if self.monetary is not None and "monetary_value_holdout" in train.columns:
                spend = purchases * train["monetary_value_holdout"].to_numpy(dtype=float)
                self.spend_model_ = HistGradientBoostingRegressor(loss="poisson", **settings)
                self.spend_model_.fit(features, spend)
        self.feature_names_ = list(features.columns)
        return self

    def predict_holdout(self, calibration_holdout: pd.DataFrame) -> pd.DataFrame:
        """Predicted holdout purchases (and spend) from the calibration columns; fits first
        when needed, for the holdout length of the summary."""
        ch = check_calibration_holdout(calibration_holdout)
        durations = ch["duration_holdout"].to_numpy(dtype=float)
        if not hasattr(self, "purchase_model_"):
            self.fit(float(np.max(durations)))
        features = rfm_features(calibration_part(ch))[self.feature_names_]
        scale = durations / self.target_length_
        with self._threads():
            out = pd.DataFrame(
                {"purchases": self.purchase_model_.predict(features) * scale}, index=ch.index
            )
            if self.spend_model_ is not None:
                out["spend"] = self.spend_model_.predict(features) * scale
        return out

    def __call__(self, calibration_holdout: pd.DataFrame) -> pd.DataFrame:
        return self.predict_holdout(calibration_holdout)
