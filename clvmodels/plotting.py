"""Diagnostic plots (matplotlib). Every function takes ``ax=None`` and returns the Axes it drew on.

* :func:`plot_tracking` — cumulative or per-period repeat purchases, actual vs expected, over
  calibration and holdout;
* :func:`plot_calibration_vs_holdout` — mean holdout purchases by calibration frequency, actual
  vs predicted;
* :func:`plot_frequency_recency_matrix` — expected purchases in the next period by frequency and
  recency;
* :func:`plot_probability_alive_matrix` — P(alive) by frequency and recency;
* :func:`plot_clv_distribution` — customers ranked by CLV with their intervals;
* :func:`plot_hierarchical_shrinkage` — group estimates of a hierarchical model against
  separate (no pooling) and pooled fits;
* :func:`plot_posterior_predictive` — observed vs model-simulated distribution of calibration
  frequency;
* :func:`plot_model_comparison` — one metric of a :func:`clvmodels.compare_models` table.

matplotlib is imported only when a function is called; in scripts and tests use the ``Agg``
backend (``MPLBACKEND=Agg``) to render without a display.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from clvmodels.errors import InputError, check_columns
from clvmodels.estimators.time_varying import TimeVaryingParetoNBD
from clvmodels.evaluation import (
    calibration_part,
    check_calibration_holdout,
    expected_holdout_purchases,
    holdout_actuals,
    tracking_data,
)
from clvmodels.simulate import frequency_predictive_check
from clvmodels.validation import validate_summary

__all__ = [
    "plot_tracking",
    "plot_calibration_vs_holdout",
    "plot_frequency_recency_matrix",
    "plot_probability_alive_matrix",
    "plot_clv_distribution",
    "plot_hierarchical_shrinkage",
    "plot_posterior_predictive",
    "plot_model_comparison",
]


def _axes(ax, figsize=(7, 4.5)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _interval_points(ax, at, mean, lower, upper, label: str, horizontal: bool = False) -> None:
    """Points at ``mean`` with whiskers from ``lower`` to ``upper``, placed at ``at`` on the x
    axis (on the y axis with ``horizontal``)."""
    err = [mean - lower, upper - mean]
    xy, key = ((mean, at), "xerr") if horizontal else ((at, mean), "yerr")
    ax.errorbar(*xy, **{key: err}, fmt="o", color="tab:blue", capsize=3, label=label)


def _unit_label(model) -> str:
    names = {"H": "hours", "D": "days", "W": "weeks", "M": "months", "Q": "quarters", "Y": "years"}
    return names.get(getattr(model, "time_unit_", None) or "", "periods")


# --------------------------------------------------------------------------------------------
def plot_tracking(
    model, transactions: pd.DataFrame, *, kind: str = "cumulative", ax=None, **kwargs
):
    """Actual vs expected repeat purchases of the whole customer base over calendar time.

    ``kind="cumulative"`` (default) plots running totals, ``kind="incremental"`` the count per
    period (one model unit unless ``period`` such as "1W" is given). The other keyword arguments
    (``customer_id, datetime, calibration_end, observation_end, period``) are those of
    :func:`clvmodels.evaluation.tracking_data`, which gives the expected curve: the model's
    forecast from acquisition dates alone. A dashed line marks ``calibration_end``.

    A :class:`~clvmodels.TimeVaryingParetoNBD` forecasts each customer from the acquisition
    along the covariate path of its table, which must then reach ``observation_end`` (attach
    the future periods with ``with_future_covariates``); ``covariates`` is not taken.
    """
    if kind not in ("cumulative", "incremental"):
        raise ValueError(f"kind must be 'cumulative' or 'incremental', got {kind!r}")
    data = tracking_data(model, transactions, **kwargs)
    calibration_end = kwargs.get("calibration_end")
    ax = _axes(ax)
    suffix = "_cumulative" if kind == "cumulative" else ""
    ax.plot(data.index, data["actual" + suffix], color="black", label="actual")
    ax.plot(
        data.index,
        data["expected" + suffix],
        color="tab:blue",
        linestyle="--",
        label=f"{type(model).__name__} expected",
    )
    if calibration_end is not None:
        ax.axvline(
            pd.Timestamp(calibration_end), color="grey", linestyle=":", label="end of calibration"
        )
    ax.set_xlabel("date")
    what = "cumulative repeat purchases" if kind == "cumulative" else "repeat purchases per period"
    ax.set_ylabel(what)
    ax.set_title(f"Tracking: {what}")
    ax.legend()
    return ax


# --------------------------------------------------------------------------------------------
def plot_calibration_vs_holdout(
    model, calibration_holdout: pd.DataFrame, *, max_frequency: int = 7, ax=None
):
    """Mean holdout purchases of the customers with each calibration frequency (the last bin
    collects ``max_frequency`` and more), actual vs predicted (Fader, Hardie & Lee 2005,
    Figure 4)."""
    ch = check_calibration_holdout(calibration_holdout, [model])
    actual = holdout_actuals(ch)
    predicted = expected_holdout_purchases(model, calibration_part(ch), actual["duration"])
    bins = np.minimum(ch["frequency"].to_numpy(dtype=int), max_frequency)
    frame = pd.DataFrame(
        {"bin": bins, "actual": actual["purchases"].to_numpy(), "predicted": predicted}
    )
    grouped = frame.groupby("bin").agg(
        actual=("actual", "mean"), predicted=("predicted", "mean"), n=("actual", "size")
    )
    ax = _axes(ax)
    ax.plot(grouped.index, grouped["actual"], marker="o", color="black", label="actual")
    ax.plot(
        grouped.index,
        grouped["predicted"],
        marker="s",
        linestyle="--",
        color="tab:blue",
        label=f"{type(model).__name__} predicted",
    )
    labels = [str(i) if i < max_frequency else f"{max_frequency}+" for i in grouped.index]
    ax.set_xticks(list(grouped.index), labels)
    ax.set_xlabel("purchases in calibration period (frequency)")
    ax.set_ylabel("mean purchases in holdout period")
    ax.set_title("Conditional expectations: calibration vs holdout")
    ax.legend()
    return ax


# --------------------------------------------------------------------------------------------
def _grid_defaults(model, summary, T, max_frequency, max_recency):
    if summary is not None:
        T = float(summary["T"].max()) if T is None else T
        if max_frequency is None:
            max_frequency = int(summary["frequency"].max())
    elif getattr(model, "rows_", None) is not None:  # the distinct rows the model was fit on
        rows = model.rows_
        T = float(np.max(rows["T"])) if T is None else T
        if max_frequency is None:
            max_frequency = int(np.max(rows["frequency"]))
    if T is None or max_frequency is None:
        raise InputError("give T and max_frequency (or the summary the model was fit on)")
    max_recency = T if max_recency is None else max_recency
    return float(T), int(max_frequency), float(max_recency)


def _matrix(
    model, T, max_frequency, max_recency, n_recency: int, function, covariates=None
) -> tuple:
    """``function(params, x, t_x, T)`` of the model's family on a frequency x recency grid of
    customers of age ``T``, at the point estimate (a covariate model's customers all with the
    ``covariates`` values; a time-varying model's customers at its fit's observation end on one
    covariate path, ``function(params, x, t_x, T, row)``: :func:`time_varying_grid`)."""
    model.check_fitted()
    frequency = np.arange(max_frequency + 1, dtype=float)
    recency = np.linspace(0.0, max_recency, n_recency)
    xx, rr = np.meshgrid(frequency, recency, indexing="ij")
    # customers without repeat purchases have recency 0 by definition: their row repeats the
    # value at recency 0
    x = xx.ravel()
    t_x = np.where(xx == 0, 0.0, rr).ravel()
    ages = np.full(xx.size, T)
    grid = pd.DataFrame({"frequency": x, "recency": t_x, "T": ages})
    grid.attrs["time_unit"] = model.time_unit_
    customer = (x, t_x, ages)
    if isinstance(model, TimeVaryingParetoNBD):
        grid = time_varying_grid(model, grid, covariates)
        customer = model.family_.customer_arrays(grid)
    else:
        for column, value in dict({} if covariates is None else covariates).items():
            grid[column] = value
    values = np.asarray(function(model.customer_params(grid), *customer), dtype=float)
    values = np.broadcast_to(values, (1, xx.size))[0].reshape(xx.shape)
    return frequency, recency, values


def time_varying_grid(model, grid: pd.DataFrame, covariates) -> pd.DataFrame:
    """The matrix plots' grid of customers for a :class:`~clvmodels.TimeVaryingParetoNBD`: all
    of age ``T`` at the fit's observation end, on the path of a table shared by every customer
    or, for a table with a path per customer, on that of ``covariates={"customer_id": id}``."""
    profile = dict(covariates or {})
    customer = profile.pop("customer_id", None)
    if profile:
        raise InputError(
            f"a TimeVaryingParetoNBD takes its covariates {list(model.covariate_columns)} from "
            f"its table, not as values ({sorted(profile)}): draw the map on one customer's path "
            "with covariates={'customer_id': id}"
        )
    per_customer = model.covariate_table().ids is not None
    if per_customer and customer is None:
        raise InputError(
            "the model's covariate table has a path per customer: give the customer whose path "
            "the map follows, covariates={'customer_id': id}"
        )
    if not per_customer and customer is not None:
        raise InputError(
            "the model's covariate table is shared by every customer (no customer_id): leave "
            "covariates out"
        )
    grid = grid.set_axis(pd.Index([0 if customer is None else customer] * len(grid)))
    grid.attrs = {"time_unit": model.time_unit_, "observation_end": str(model.observation_end_)}
    return grid


def _draw_matrix(ax, frequency, recency, values, title, colorbar_label, unit_label):
    import matplotlib.pyplot as plt

    image = ax.imshow(
        values,
        origin="lower",
        aspect="auto",
        extent=(recency[0], recency[-1], frequency[0] - 0.5, frequency[-1] + 0.5),
        cmap="viridis",
    )
    plt.colorbar(image, ax=ax, label=colorbar_label)
    ax.set_xlabel(f"recency ({unit_label} from first to last purchase)")
    ax.set_ylabel("frequency (repeat purchases)")
    ax.set_title(title)
    return ax


def plot_frequency_recency_matrix(
    model,
    summary: pd.DataFrame | None = None,
    *,
    T: float | None = None,
    t: float | str = 1,
    max_frequency: int | None = None,
    max_recency: float | None = None,
    n_recency: int = 60,
    covariates=None,
    ax=None,
):
    """Heat map of expected purchases in the next ``t`` for a customer of age ``T``, by
    frequency (rows) and recency (columns). Defaults come from ``summary`` (largest T and
    frequency) or the data the model was fit on. A covariate model draws the map for one
    covariate profile: ``covariates`` maps each of its ``covariate_columns`` to a value; a
    :class:`~clvmodels.TimeVaryingParetoNBD` draws it for customers at its fit's observation
    end, on its shared covariate path or on one customer's (``covariates={"customer_id": id}``),
    and needs the future periods up to ``t`` (``with_future_covariates``)."""
    T, max_frequency, max_recency = _grid_defaults(model, summary, T, max_frequency, max_recency)
    family, horizon = model.family_, model.to_model_time(t)

    def expected(params, *customer):
        p_alive = family.probability_alive(params, *customer)
        return family.expected_purchases(params, *customer, horizon, p_alive=p_alive)

    frequency, recency, values = _matrix(
        model, T, max_frequency, max_recency, n_recency, expected, covariates
    )
    ax = _axes(ax)
    return _draw_matrix(
        ax,
        frequency,
        recency,
        values,
        f"Expected purchases in the next {t} (customer age T={T:g})",
        "expected purchases",
        _unit_label(model),
    )


def plot_probability_alive_matrix(
    model,
    summary: pd.DataFrame | None = None,
    *,
    T: float | None = None,
    max_frequency: int | None = None,
    max_recency: float | None = None,
    n_recency: int = 60,
    covariates=None,
    ax=None,
):
    """Heat map of P(alive) for a customer of age ``T`` by frequency and recency (for one
    covariate profile of a covariate model, or one covariate path of a time-varying model:
    ``covariates``, as in :func:`plot_frequency_recency_matrix`)."""
    T, max_frequency, max_recency = _grid_defaults(model, summary, T, max_frequency, max_recency)
    frequency, recency, values = _matrix(
        model,
        T,
        max_frequency,
        max_recency,
        n_recency,
        model.family_.probability_alive,
        covariates,
    )
    ax = _axes(ax)
    ax = _draw_matrix(
        ax,
        frequency,
        recency,
        values,
        f"Probability alive (customer age T={T:g})",
        "P(alive)",
        _unit_label(model),
    )
    ax.images[0].set_clim(0, 1)
    return ax


# --------------------------------------------------------------------------------------------
def plot_clv_distribution(
    values: pd.DataFrame,
    *,
    n_customers: int = 200,
    log_scale: bool = False,
    ax=None,
):
    """Customers ranked by CLV, each with its interval (a caterpillar plot).

    ``values`` is the output of :func:`clvmodels.lifetime_value` (columns ``clv_mean``,
    ``clv_lower``, ``clv_upper``). Up to ``n_customers`` customers, evenly spaced in rank, are
    drawn; the title gives the total and the share of value in the top decile.
    """
    check_columns(
        values,
        ["clv_mean", "clv_lower", "clv_upper"],
        "values",
        hint="pass the DataFrame returned by clvmodels.lifetime_value(..., interval=0.9)",
    )
    ordered = values.sort_values("clv_mean", ascending=False)
    n = len(ordered)
    if n == 0:
        raise InputError("values is empty: there is no customer to plot")
    pick = np.unique(np.linspace(0, n - 1, min(n_customers, n)).round().astype(int))
    shown = ordered.iloc[pick]
    rank_share = (pick + 1) / n * 100
    mean = shown["clv_mean"].to_numpy(dtype=float)
    lower = shown["clv_lower"].to_numpy(dtype=float)
    upper = shown["clv_upper"].to_numpy(dtype=float)
    ax = _axes(ax)
    ax.vlines(rank_share, lower, upper, color="tab:blue", alpha=0.35, label="interval")
    ax.plot(rank_share, mean, "o", color="tab:blue", markersize=2.5, label="mean CLV")
    if log_scale:
        ax.set_yscale("symlog", linthresh=1.0)
    total = float(values["clv_mean"].sum())
    top = float(ordered["clv_mean"].iloc[: max(1, n // 10)].sum())
    share = top / total if total > 0 else float("nan")
    ax.set_xlabel("customer rank by CLV (percent of customers)")
    ax.set_ylabel("CLV")
    ax.set_title(f"CLV of {n:,} customers: total {total:,.0f}, top 10% hold {share:.0%}")
    ax.legend()
    return ax


# --------------------------------------------------------------------------------------------
def _group_draws(model, parameter: str, n_draws: int, seed) -> pd.DataFrame:
    draws = model.param_draws(n_draws, seed=seed)
    if not isinstance(draws.columns, pd.MultiIndex):
        raise InputError(
            f"{type(model).__name__} has no group-level parameters: plot_hierarchical_shrinkage "
            "needs a grouped model such as HierarchicalBetaGeo"
        )
    level0 = draws.columns.get_level_values(0)
    if parameter not in set(level0):
        raise InputError(
            f"parameter {parameter!r} not among the model's parameters {sorted(set(level0))}"
        )
    return draws[parameter]


def _separate_estimator(model):
    """The maximum-likelihood estimator of the hierarchical model's family (the no-pooling and
    complete-pooling fits), from :mod:`clvmodels.registry`."""
    from clvmodels import registry

    family = getattr(model, "family_", None) or model.family_class()
    for entry in registry.MAXIMUM_LIKELIHOOD:
        if entry.family is type(family):
            cls = registry.class_by_name(entry.name)
            return lambda: cls(**family.settings())
    raise InputError(
        f"no maximum-likelihood estimator of {family.label} is registered for the separate fits"
    )


def plot_hierarchical_shrinkage(
    model,
    summary: pd.DataFrame | None = None,
    *,
    parameter: str | None = None,
    interval: float = 0.9,
    n_draws: int = 500,
    seed=0,
    ax=None,
):
    """Group estimates of a hierarchical model with their intervals, against no pooling.

    For each group the posterior mean and central ``interval`` of ``parameter`` (default: the
    first of the model's family parameters, ``model.family_class.param_names``: ``r`` for
    :class:`HierarchicalBetaGeo`, ``p`` for :class:`HierarchicalGammaGamma`); with ``summary``
    (which carries the model's group column) the separate maximum-likelihood fit of each group
    with the estimator of the model's family from :mod:`clvmodels.registry` (BG/NBD or
    Gamma-Gamma; no pooling, hollow marker, linked by a line to the hierarchical estimate) and the fit on all customers (complete pooling, dashed line) are
    added. Groups are labelled with their number of customers. Shrinkage shows as hierarchical
    estimates pulled from the separate fits towards the pooled one, most for small groups.
    """
    family_class = getattr(model, "family_class", None)
    names = list(getattr(family_class, "param_names", ()) or getattr(model, "param_names", ()))
    parameter = parameter or (names[0] if names else None)
    if parameter is None:
        raise InputError("give the parameter to plot")
    draws = _group_draws(model, parameter, n_draws, seed)
    new_group = next((c for c in draws.columns if str(c).startswith("__")), None)
    population = draws[new_group] if new_group is not None else None
    groups = [c for c in draws.columns if c != new_group]
    draws = draws[groups]
    mean = draws.mean().to_numpy()
    lower = draws.quantile((1 - interval) / 2).to_numpy()
    upper = draws.quantile((1 + interval) / 2).to_numpy()
    y = np.arange(len(groups))
    created = ax is None
    ax = _axes(ax, figsize=(7, 0.5 * len(groups) + 2))
    _interval_points(
        ax, y, mean, lower, upper, f"hierarchical (mean, {interval:.0%} interval)", horizontal=True
    )
    labels = [str(g) for g in groups]
    if population is not None:
        ax.axvline(
            float(population.median()),
            color="tab:blue",
            linestyle=":",
            label="population median (a new group)",
        )
    if summary is not None:
        group_col = getattr(model, "group", None)
        check_columns(summary, [group_col], "summary", hint="pass the summary the model was fit on")
        base_cls = _separate_estimator(model)
        separate = []
        counts = []
        for g in groups:
            part = summary[summary[group_col].astype(str) == str(g)]
            counts.append(len(part))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    separate.append(float(base_cls().fit(part).params_[parameter]))
            except Exception:  # noqa: BLE001 - a tiny group may not be fittable alone
                separate.append(np.nan)
        separate = np.asarray(separate)
        ax.plot(
            separate,
            y,
            "o",
            markerfacecolor="none",
            color="tab:red",
            label="separate fit (no pooling)",
        )
        for yi, s, m in zip(y, separate, mean, strict=True):
            if np.isfinite(s):
                ax.plot([s, m], [yi, yi], color="tab:red", alpha=0.4, linewidth=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pooled = float(base_cls().fit(summary.drop(columns=[group_col])).params_[parameter])
        ax.axvline(pooled, color="grey", linestyle="--", label="pooled fit (all customers)")
        labels = [f"{g} (n={n:,})" for g, n in zip(groups, counts, strict=True)]
    ax.set_yticks(y, labels)
    ax.set_xlabel(parameter)
    ax.set_title(f"Shrinkage of {parameter} by group")
    ax.legend(fontsize="small")
    if created:
        ax.figure.tight_layout()
    return ax


# --------------------------------------------------------------------------------------------
def plot_posterior_predictive(
    model,
    summary: pd.DataFrame,
    *,
    max_frequency: int = 7,
    n_draws: int = 200,
    interval: float = 0.9,
    seed=0,
    ax=None,
):
    """Posterior (or sampling-distribution) predictive check of calibration frequency.

    For each parameter draw (posterior draws, or the sampling distribution of a
    maximum-likelihood fit; the point estimate when the model has no draws) every customer's
    repeat purchases in (0, T] are simulated from the family's generative process, through
    :func:`clvmodels.simulate.frequency_predictive_check`; the number of customers with 0, 1,
    ..., ``max_frequency``+ repeat purchases is then compared with the observed counts. Bars:
    observed; points and whiskers: the simulated mean and central ``interval``.
    """
    validate_summary(summary)
    rng = np.random.default_rng(seed)
    try:
        draws = model.param_draws(n_draws, seed=seed)
    except ValueError:
        draws = model.point_draws()
    params = model.customer_params(summary, draws)
    table = frequency_predictive_check(
        model.family_, params, summary, max_frequency=max_frequency, interval=interval, seed=rng
    ).loc["(all)"]
    bins = table.index.to_numpy()
    ax = _axes(ax)
    ax.bar(bins, table["observed"], color="lightgrey", edgecolor="black", label="observed")
    mean, lower, upper = (table[f"simulated_{c}"].to_numpy() for c in ("mean", "lower", "upper"))
    label = f"{type(model).__name__} simulated ({interval:.0%} interval)"
    _interval_points(ax, bins, mean, lower, upper, label)
    ax.set_xticks(bins, [str(b) if b < max_frequency else f"{max_frequency}+" for b in bins])
    ax.set_xlabel("repeat purchases in calibration period")
    ax.set_ylabel("customers")
    ax.set_title("Predictive check: distribution of calibration frequency")
    ax.legend()
    return ax


# --------------------------------------------------------------------------------------------
def plot_model_comparison(
    table: pd.DataFrame,
    metric: str = "purchases_mae",
    *,
    metrics: Sequence[str] | None = None,
    ax=None,
):
    """Horizontal bars of one metric per model from a :func:`clvmodels.compare_models` table;
    the best model (lowest error, highest rank metric, coverage nearest its level) is dark."""
    if metrics is not None:
        metric = metrics[0]
    if metric not in table.columns:
        raise InputError(
            f"metric {metric!r} is not a column of the comparison table; available: "
            f"{', '.join(map(str, table.columns))}"
        )
    values = table[metric].astype(float)
    if metric.startswith(("coverage_", "spend_coverage_")):
        level = float(metric.rsplit("_", 1)[1]) / 100
        score = -(values - level).abs()
    elif metric.endswith(("_spearman", "_gini", "_top_decile", "log_score")) or metric.startswith(
        "elpd"
    ):
        score = values
    else:
        score = -values.abs()
    best = score.idxmax() if score.notna().any() else None
    colors = ["tab:blue" if name == best else "lightsteelblue" for name in table.index]
    ax = _axes(ax, figsize=(7, 0.45 * len(table) + 1.5))
    y = np.arange(len(table))
    ax.barh(y, values.fillna(0).to_numpy(), color=colors)
    for yi, v in zip(y, values, strict=True):
        ax.text(
            0 if not np.isfinite(v) else v,
            yi,
            " n/a" if not np.isfinite(v) else f" {v:.3g}",
            va="center",
            fontsize="small",
        )
    ax.set_yticks(y, [str(i) for i in table.index])
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    ax.set_title(f"Model comparison: {metric}")
    if metric.startswith(("coverage_", "spend_coverage_")):
        ax.axvline(float(metric.rsplit("_", 1)[1]) / 100, color="grey", linestyle="--")
    return ax
