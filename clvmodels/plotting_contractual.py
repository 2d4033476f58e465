"""Plots of subscription (contractual) models: survival and retention curves with intervals,
actual vs projected survivors. Every function takes ``ax=None`` and returns the Axes it drew on.

* :func:`plot_survival` — ``S(t)``, the share of a cohort still subscribed, with the interval
  over parameter draws and, optionally, the observed shares;
* :func:`plot_retention` — the retention rate ``r_t = S(t) / S(t-1)`` the same way (it rises
  with ``t`` when churn probabilities differ between customers);
* :func:`plot_survivor_projection` — the observed survivors of a table, then the projection of
  its active customers (expected and predictive interval) against the actual survivors when
  known.

matplotlib is imported only when a function is called (``MPLBACKEND=Agg`` without a display).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from clvmodels.errors import InputError
from clvmodels.subscriptions import (
    observed_survivors,
    project_survivors,
    retention_curve,
    survival_curve,
)

__all__ = ["plot_survival", "plot_retention", "plot_survivor_projection"]


def _axes(ax, figsize=(7, 4.5)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _as_series(actual, what: str) -> pd.Series:
    """Observed values by period: a Series (index = period) or a sequence for periods 0, 1, ..."""
    if isinstance(actual, pd.Series):
        series = actual.astype(float)
    elif isinstance(actual, Sequence | np.ndarray) and not isinstance(actual, str):
        series = pd.Series(np.asarray(actual, dtype=float))
    else:
        raise InputError(
            f"{what} must be a pandas Series indexed by period or a sequence starting at period "
            f"0, got {type(actual).__name__}"
        )
    return series


def _curve_plot(ax, frame: pd.DataFrame, column: str, label: str, model) -> None:
    periods = frame.index.to_numpy(dtype=float)
    ax.plot(periods, frame[column], color="C0", label=f"{label} ({type(model).__name__})")
    if "lower" in frame:
        ax.fill_between(
            periods,
            frame["lower"],
            frame["upper"],
            color="C0",
            alpha=0.25,
            label=f"{frame.attrs['interval']:.0%} interval (parameters)",
        )
    ax.set_xlabel(f"periods since start ({frame.attrs.get('time_unit') or 'model unit'})")


def _model_curve_plot(
    curve, column, label, model, periods, first_period, actual, draws, interval, seed, ax
):
    """Draw ``curve(model, t, ...)`` (``survival_curve`` or ``retention_curve``) for ``t =
    first_period..periods`` (or the given periods) with its interval, and ``actual`` (shares
    still subscribed by period) as points of the same quantity: the shares themselves for the
    survival, ``s_t / s_(t-1)`` for the retention."""
    t = np.arange(first_period, int(periods) + 1) if np.ndim(periods) == 0 else np.asarray(periods)
    frame = curve(model, t, draws=draws, interval=interval, seed=seed)
    ax = _axes(ax)
    _curve_plot(ax, frame, column, label, model)
    if actual is not None:
        observed = _as_series(actual, "actual")
        if column == "retention":
            observed = (observed / observed.shift(1)).dropna()
        ax.plot(observed.index, observed.to_numpy(), "o", color="C1", label="actual")
    return ax


def plot_survival(
    model,
    periods: int | Sequence[float] = 12,
    actual=None,
    draws: int = 200,
    interval: float = 0.9,
    seed=None,
    ax=None,
):
    """``S(t)`` for ``t = 0..periods`` (or the given periods) with the ``interval`` over
    ``draws`` parameter draws; ``actual`` (observed shares still subscribed, a Series indexed
    by period or a sequence from period 0) as points."""
    ax = _model_curve_plot(
        survival_curve, "survival", "S(t)", model, periods, 0, actual, draws, interval, seed, ax
    )
    ax.set_ylabel("share still subscribed")
    ax.set_ylim(0, 1.02)
    ax.set_title("Survival")
    ax.legend()
    return ax


def plot_retention(
    model,
    periods: int | Sequence[float] = 12,
    actual=None,
    draws: int = 200,
    interval: float = 0.9,
    seed=None,
    ax=None,
):
    """The retention rate ``r_t`` for ``t = 1..periods`` with its interval; ``actual``: observed
    shares still subscribed by period (as for :func:`plot_survival`), from which the observed
    retention ``s_t / s_(t-1)`` is drawn."""
    ax = _model_curve_plot(
        retention_curve, "retention", "r(t)", model, periods, 1, actual, draws, interval, seed, ax
    )
    ax.set_ylabel("retention rate")
    ax.set_title("Retention")
    ax.legend()
    return ax


def plot_survivor_projection(
    model,
    table: pd.DataFrame,
    periods: int,
    actual=None,
    draws: int = 500,
    interval: float = 0.9,
    seed=None,
    ax=None,
):
    """Survivors of ``table``: observed up to its shortest active tenure, then the projection of
    its active customers for ``periods`` more periods (expected, and the predictive
    ``interval``; :func:`clvmodels.subscriptions.project_survivors`), against ``actual`` (the
    survivors observed after each projected period, a sequence or a Series indexed like
    ``1..periods``) when given. The table should hold one cohort (all active customers with
    the same tenure), as in Fader & Hardie (2007)."""
    active = ~table["churned"].astype(bool)
    if not active.any():
        raise InputError("the table has no active customers to project")
    start = int(table.loc[active, "tenure"].min())
    observed = observed_survivors(table, range(start + 1)).dropna()
    projection = project_survivors(model, table, periods, draws, interval, seed)
    ahead = start + projection.index.to_numpy()
    ax = _axes(ax)
    ax.plot(observed.index, observed.to_numpy(), "o-", color="C1", label="observed")
    ax.plot(ahead, projection["expected"], color="C0", label=f"projected ({type(model).__name__})")
    ax.fill_between(
        ahead,
        projection["lower"],
        projection["upper"],
        color="C0",
        alpha=0.25,
        label=f"{interval:.0%} predictive interval",
    )
    if actual is not None:
        values = _as_series(actual, "actual").to_numpy()
        if len(values) != len(ahead):
            raise InputError(
                f"actual has {len(values)} values for the {len(ahead)} projected periods"
            )
        ax.plot(ahead, values, "s", color="C3", label="actual (holdout)")
    ax.axvline(start, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(f"period ({projection.attrs.get('time_unit') or 'model unit'})")
    ax.set_ylabel("customers still subscribed")
    ax.set_title("Survivors: observed and projected")
    ax.legend()
    return ax
