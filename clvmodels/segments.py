"""Customer segments: value tiers by predicted CLV, classic RFM scores and segments, and the
CLV : CAC ratio with the payback period.

All functions return pandas objects indexed by ``customer_id`` and never drop customers.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

import numpy as np
import pandas as pd

from clvmodels.errors import InputError, check_columns

__all__ = ["value_tiers", "rfm_scores", "rfm_segments", "clv_to_cac", "RFM_SEGMENT_MAP"]


def _values(clv, column: str, what: str) -> pd.Series:
    if isinstance(clv, pd.DataFrame):
        check_columns(clv, [column], what, hint="pass lifetime_value(...) output or a Series")
        values = clv[column]
    elif isinstance(clv, pd.Series):
        values = clv
    else:
        raise InputError(f"{what} must be a pandas Series or DataFrame, got {type(clv).__name__}")
    values = pd.to_numeric(values, errors="coerce").astype(float)
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        raise InputError(
            f"{what} has {int(bad.sum())} missing or non-finite values, e.g. for customers "
            f"{list(values.index[bad][:5])}"
        )
    if len(values) == 0:
        raise InputError(f"{what} is empty")
    return values


def value_tiers(
    clv,
    quantiles: Sequence[float] = (0.2, 0.8),
    labels: Sequence[str] | None = None,
    column: str = "clv_mean",
) -> pd.Series:
    """Value tiers by predicted CLV: e.g. bottom 20% / middle / top 20%.

    Parameters
    ----------
    clv : Series of values by customer_id, or a :func:`clvmodels.lifetime_value` frame (the
        ``column`` is used, ``clv_mean`` by default).
    quantiles : increasing cut points in (0, 1) on the customers' percentile rank; ``(0.2,
        0.8)`` gives three tiers, the bottom 20%, the middle 60% and the top 20%.
    labels : one label per tier, lowest first; default ``("bottom", "middle", "top")`` for two
        cut points, ``("tier_1", ..., "tier_k")`` (tier_k the most valuable) otherwise.

    Returns
    -------
    pandas.Series
        An ordered Categorical Series named ``value_tier``, by customer.

    Notes
    -----
    Ranks are percentile ranks with ties averaged, so equal values always share a tier (with
    many ties -- e.g. lapsed customers all worth 0 -- tier shares differ from the nominal
    ones).
    """
    values = _values(clv, column, "clv")
    cuts = np.asarray(quantiles, dtype=float)
    if cuts.ndim != 1 or len(cuts) == 0 or np.any(cuts <= 0) or np.any(cuts >= 1):
        raise InputError(f"quantiles must be cut points strictly between 0 and 1, got {quantiles}")
    if np.any(np.diff(cuts) <= 0):
        raise InputError(f"quantiles must be increasing, got {quantiles}")
    n_tiers = len(cuts) + 1
    if labels is None:
        labels = (
            ("bottom", "middle", "top")
            if n_tiers == 3
            else tuple(f"tier_{k}" for k in range(1, n_tiers + 1))
        )
    labels = list(labels)
    if len(labels) != n_tiers or len(set(labels)) != n_tiers:
        raise InputError(f"give {n_tiers} distinct labels for {len(cuts)} cut points, got {labels}")
    # percentile rank in (0, 1]: the share of customers worth at most this much (ties averaged)
    pct = values.rank(method="average", pct=True).to_numpy()
    codes = np.searchsorted(cuts, pct, side="left")
    # a customer exactly at a cut belongs to the lower tier ("bottom 20%" includes the 20% mark)
    tiers = pd.Categorical.from_codes(codes, categories=labels, ordered=True)
    return pd.Series(tiers, index=values.index, name="value_tier")


# classic R-F segment map (scores 1-5; first digit recency, second frequency), as used in
# marketing practice: each of the 25 (R, F) combinations maps to exactly one segment
RFM_SEGMENT_MAP: dict[str, tuple[str, ...]] = {
    "champions": ("54", "55"),
    "loyal customers": ("34", "35", "44", "45"),
    "potential loyalists": ("42", "43", "52", "53"),
    "new customers": ("51",),
    "promising": ("41",),
    "need attention": ("33",),
    "about to sleep": ("31", "32"),
    "at risk": ("13", "14", "23", "24"),
    "can't lose them": ("15", "25"),
    "hibernating": ("11", "12", "21", "22"),
}
_RF_TO_SEGMENT = {code: name for name, codes in RFM_SEGMENT_MAP.items() for code in codes}


def _score(values: pd.Series, n_bins: int, higher_is_better: bool = True) -> pd.Series:
    """Scores 1..n_bins by percentile rank (ties averaged): n_bins for the best customers."""
    pct = values.rank(method="average", pct=True, ascending=higher_is_better)
    return np.ceil(pct * n_bins - 1e-12).clip(1, n_bins).astype(np.int64)


def rfm_scores(summary: pd.DataFrame, n_bins: int = 5) -> pd.DataFrame:
    """R, F and M scores from 1 to ``n_bins`` (quintiles by default), as in classic RFM.

    From an RFM summary (frequency, recency, T[, monetary_value]):

    * R: time since the last purchase, ``T - recency`` (a *shorter* time scores higher);
    * F: ``frequency`` (repeat purchases);
    * M: ``monetary_value`` (mean spend of repeat purchases), if present.

    Scores are the customer's percentile rank (ties averaged, so equal values get equal
    scores) cut into ``n_bins`` equal bins. Returns a DataFrame with ``r_score, f_score,
    m_score`` (if monetary), ``rfm_score`` (the digits as a string, e.g. "545") and
    ``rfm_total`` (sum of the scores).
    """
    check_columns(summary, ["frequency", "recency", "T"], "summary")
    if not isinstance(n_bins, int | np.integer) or not 2 <= n_bins <= 9:
        raise InputError(f"n_bins must be an integer from 2 to 9, got {n_bins!r}")
    if len(summary) == 0:
        raise InputError("summary is empty")
    since_last = summary["T"].astype(float) - summary["recency"].astype(float)
    out = pd.DataFrame(index=summary.index)
    out["r_score"] = _score(since_last, n_bins, higher_is_better=False)
    out["f_score"] = _score(summary["frequency"].astype(float), n_bins)
    parts = ["r_score", "f_score"]
    if "monetary_value" in summary.columns:
        out["m_score"] = _score(summary["monetary_value"].astype(float), n_bins)
        parts.append("m_score")
    out["rfm_score"] = out[parts].astype(str).agg("".join, axis=1)
    out["rfm_total"] = out[parts].sum(axis=1)
    return out


def rfm_segments(summary: pd.DataFrame, n_bins: int = 5) -> pd.DataFrame:
    """RFM scores (:func:`rfm_scores`) plus the classic named segment of each customer.

    The segment comes from the recency and frequency scores on the 1-5 scale
    (:data:`RFM_SEGMENT_MAP`: champions, loyal customers, potential loyalists, new customers,
    promising, need attention, about to sleep, at risk, can't lose them, hibernating); with
    another ``n_bins`` the scores are first rescaled to 1-5. Column ``segment`` is a
    Categorical.
    """
    scores = rfm_scores(summary, n_bins)

    def to5(s: pd.Series) -> pd.Series:
        if n_bins == 5:
            return s
        return np.ceil(s / n_bins * 5 - 1e-12).clip(1, 5).astype(np.int64)

    rf = to5(scores["r_score"]).astype(str) + to5(scores["f_score"]).astype(str)
    scores["segment"] = pd.Categorical(rf.map(_RF_TO_SEGMENT), categories=list(RFM_SEGMENT_MAP))
    return scores


def _cash_flow_table(cash_flows, index: pd.Index) -> np.ndarray:
    if not isinstance(cash_flows, pd.DataFrame):
        raise InputError(
            "cash_flows must be a DataFrame of discounted cash flows per period (customers x "
            "periods), e.g. clvmodels.valuation.expected_cash_flows(...)"
        )
    missing = index.difference(cash_flows.index)
    if len(missing):
        raise InputError(
            f"cash_flows has no row for {len(missing)} customers, e.g. {list(missing[:5])}"
        )
    flows = cash_flows.loc[index].to_numpy(dtype=float)
    if not np.all(np.isfinite(flows)):
        raise InputError("cash_flows contains missing or non-finite values")
    return flows


def clv_to_cac(
    clv,
    acquisition_cost,
    cash_flows: pd.DataFrame | None = None,
    column: str = "clv_mean",
) -> pd.DataFrame:
    """CLV : CAC ratio and payback period.

    Parameters
    ----------
    clv : Series of values by customer_id or a :func:`clvmodels.lifetime_value` frame.
    acquisition_cost : customer acquisition cost (CAC), a positive number or a Series by
        customer_id (e.g. by acquisition channel).
    cash_flows : optional discounted cash flows per period (customers x periods, columns in
        time order), such as :func:`clvmodels.valuation.expected_cash_flows`; needed for the
        payback period.

    Returns
    -------
    DataFrame by customer_id with ``clv``, ``cac``, ``clv_to_cac`` (the ratio; 3 or more is
    the usual rule of thumb for healthy acquisition), ``net_value`` (clv - cac) and, with
    ``cash_flows``, ``payback_period``: the number of periods until the cumulative discounted
    cash flow first reaches the CAC (1 = recovered within the first period), ``inf`` when it is
    not recovered within the horizon of ``cash_flows``.
    """
    values = _values(clv, column, "clv")
    if isinstance(acquisition_cost, pd.Series):
        missing = values.index.difference(acquisition_cost.index)
        if len(missing):
            raise InputError(
                f"acquisition_cost has no value for {len(missing)} customers, e.g. "
                f"{list(missing[:5])}"
            )
        cac = acquisition_cost.loc[values.index].to_numpy(dtype=float)
    elif isinstance(acquisition_cost, Real) and not isinstance(acquisition_cost, bool):
        cac = np.full(len(values), float(acquisition_cost))
    else:
        raise InputError(
            f"acquisition_cost must be a number or a Series by customer_id, got "
            f"{type(acquisition_cost).__name__}"
        )
    if not np.all(np.isfinite(cac)) or np.any(cac <= 0):
        raise InputError("acquisition_cost must be positive and finite (the ratio divides by it)")
    out = pd.DataFrame(
        {
            "clv": values.to_numpy(),
            "cac": cac,
            "clv_to_cac": values.to_numpy() / cac,
            "net_value": values.to_numpy() - cac,
        },
        index=values.index,
    )
    if cash_flows is not None:
        flows = _cash_flow_table(cash_flows, values.index)
        cumulative = np.cumsum(flows, axis=1)
        reached = cumulative >= cac[:, None]
        first = np.argmax(reached, axis=1).astype(float) + 1.0
        out["payback_period"] = np.where(reached.any(axis=1), first, np.inf)
    return out
