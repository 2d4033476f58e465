"""Vectorised simulators from the models' own generative processes.

Every simulator draws each customer's latent values from the model's mixing distributions and
then the customer's observable history, with no Python loop over customers: a million
customers take about a second.

Conventions
-----------
Each summary simulator returns **one** DataFrame indexed by ``customer_id`` (0..n-1) with

* the observable summary: ``frequency`` (repeat purchases in (0, T]), ``recency`` (time of
  the last repeat purchase, 0 without repeats) and ``T`` (age at the end of calibration), all in
  ``attrs["time_unit"]``;
* when ``holdout`` is given: ``frequency_holdout`` (purchases in (T, T + holdout]) and
  ``duration_holdout``, continuing the *same* customers with the *same* latent values;
* the true latent values in columns whose names start with ``true_`` (for example
  ``true_lambda``, ``true_p``, ``true_alive``). Models ignore these columns, so the frame can
  be fit directly; drop them with ``df.filter(regex="^(?!true_)")`` to see only observables.

``attrs["time_unit"]`` holds the unit and ``attrs["simulation"]`` the model name and the
parameters used. Time 0 of every customer is the first purchase (which is not counted in
``frequency``), so ``T`` may be a scalar or one value per customer (cohorts of different ages).

The generative process of each model is its family's ``simulate`` (for example
:meth:`clvmodels.families.bg_nbd.BetaGeoNBDFamily.simulate`), looked up through
:mod:`clvmodels.registry`; the functions here check the arguments and build the frame. The same
process drives :func:`frequency_predictive_check`, the prior and posterior predictive check of
the calibration frequency. Histories are drawn exactly without loops: with ``N`` the events of
the *unstopped* purchase process in (0, T] and ``J`` the purchase after which the customer drops
out, ``x = min(N, J)`` and, given N, the x-th event time is ``T * Beta(x, N - x + 1)`` (uniform
order statistics).
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral

import numpy as np
import pandas as pd

from clvmodels import registry, units
from clvmodels.errors import InputError

__all__ = [
    "simulate_beta_geo",
    "simulate_modified_beta_geo",
    "simulate_pareto_nbd",
    "simulate_gamma_gamma_spend",
    "simulate_grouped_beta_geo",
    "draw_group_params",
    "simulate_transactions",
    "expected_frequency_beta_geo",
    "expected_frequency_modified_beta_geo",
    "expected_frequency_pareto_nbd",
    "frequency_predictive_check",
]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _positive(name: str, value) -> float:
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"parameter {name} must be a finite positive number, got {value!r}")
    return value


def _n(n_customers) -> int:
    if not isinstance(n_customers, Integral) or n_customers < 0:
        raise ValueError(f"n_customers must be a non-negative integer, got {n_customers!r}")
    return int(n_customers)


def _ages(T, n: int, time_unit: str) -> np.ndarray:
    """T as a float array of length n; strings like "52W" are converted to ``time_unit``."""
    if isinstance(T, str):
        T = units.to_unit(T, time_unit)
    arr = np.asarray(T, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"T must be a number or an array with one value per customer ({n})")
    if not np.all(np.isfinite(arr)) or (arr < 0).any():
        raise ValueError("T must be finite and non-negative")
    return arr


def _holdout(holdout, time_unit: str) -> float | None:
    if holdout is None:
        return None
    return float(units.to_unit(holdout, time_unit))


def _counts(column) -> np.ndarray:
    """Purchase counts as floats; ValueError unless finite and non-negative."""
    counts = np.asarray(column, dtype=float)
    if (counts < 0).any() or not np.all(np.isfinite(counts)):
        raise ValueError("frequency must be finite and non-negative")
    return counts


def _frame(columns: dict, time_unit: str, model: str, params: dict) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    df = pd.DataFrame(columns, index=pd.RangeIndex(n, name="customer_id"))
    df.attrs["time_unit"] = units.normalize_unit(time_unit)
    df.attrs["simulation"] = {"model": model, **{k: float(v) for k, v in params.items()}}
    return df


def _family(kind: str, cli_name: str):
    """The family of the registry's ``kind`` model ``cli_name`` (e.g. "purchase", "bgnbd")."""
    return registry.estimator_class(kind, cli_name).family_class()


def _simulate_purchases(
    cli_name: str, label: str, n_customers, params: dict, T, holdout, seed, time_unit: str
) -> pd.DataFrame:
    """Check the arguments, draw from the family's ``simulate`` and build the frame."""
    n = _n(n_customers)
    params = {name: _positive(name, value) for name, value in params.items()}
    ages = _ages(T, n, time_unit)
    t_hold = _holdout(holdout, time_unit)
    columns = _family("purchase", cli_name).simulate(params, ages, t_hold, _rng(seed))
    return _frame(columns, time_unit, label, params)


# --------------------------------------------------------------------------------------------
# purchase models
# --------------------------------------------------------------------------------------------
def simulate_beta_geo(
    n_customers: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T=52.0,
    *,
    holdout=None,
    seed=None,
    time_unit: str = "W",
) -> pd.DataFrame:
    """Simulate BG/NBD customers (Fader, Hardie & Lee 2005, "Counting your customers the easy
    way", Marketing Science 24(2), section 3).

    lambda_i ~ Gamma(r, rate alpha); p_i ~ Beta(a, b); while active, purchases are Poisson with
    rate lambda_i; after each *repeat* purchase the customer drops out with probability p_i, so
    the number of repeat purchases before dropout is geometric on {1, 2, ...}.

    Parameters
    ----------
    n_customers : number of customers.
    r, alpha, a, b : population parameters (alpha in ``time_unit``).
    T : age at the end of calibration, a number, one number per customer, or a string such as
        "39W" (converted to ``time_unit``). Default 52.
    holdout : optional length of a holdout period after T (number in ``time_unit`` or string);
        adds ``frequency_holdout``, ``duration_holdout`` and ``true_alive_holdout_end``.
    seed : int, None or numpy Generator.
    time_unit : unit of T, recency and alpha (default "W").

    Returns
    -------
    DataFrame indexed by ``customer_id``: ``frequency, recency, T`` [holdout columns] and the
    latent ``true_lambda``, ``true_p``, ``true_alive`` (active at T). See the module docstring.
    """
    params = {"r": r, "alpha": alpha, "a": a, "b": b}
    return _simulate_purchases(
        "bgnbd", "beta_geo", n_customers, params, T, holdout, seed, time_unit
    )


def simulate_modified_beta_geo(
    n_customers: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T=52.0,
    *,
    holdout=None,
    seed=None,
    time_unit: str = "W",
) -> pd.DataFrame:
    """Simulate MBG/NBD customers (Batislam, Denizel & Filiztekin 2007, IJRM 24(3)).

    As :func:`simulate_beta_geo`, except that the customer may also drop out right after the
    first purchase (with probability p_i), so the number of repeat purchases before dropout is
    geometric on {0, 1, ...}; customers with no repeat purchase may therefore be inactive.
    """
    params = {"r": r, "alpha": alpha, "a": a, "b": b}
    return _simulate_purchases(
        "mbgnbd", "modified_beta_geo", n_customers, params, T, holdout, seed, time_unit
    )


def simulate_pareto_nbd(
    n_customers: int,
    r: float,
    alpha: float,
    s: float,
    beta: float,
    T=52.0,
    *,
    holdout=None,
    seed=None,
    time_unit: str = "W",
) -> pd.DataFrame:
    """Simulate Pareto/NBD customers (Schmittlein, Morrison & Colombo 1987, Management Science
    33(1); Fader, Hardie & Lee 2005, "A note on implementing the Pareto/NBD model").

    lambda_i ~ Gamma(r, rate alpha); mu_i ~ Gamma(s, rate beta); the unobserved lifetime is
    tau_i ~ Exponential(mu_i); purchases are Poisson(lambda_i) on (0, tau_i).

    Given N purchases in (0, min(tau, T)], the last one is at ``min(tau, T) * Beta(N, 1)``.
    Latent columns: ``true_lambda``, ``true_mu``, ``true_lifetime`` (tau), ``true_alive``
    (tau > T). Other arguments as in :func:`simulate_beta_geo`.
    """
    params = {"r": r, "alpha": alpha, "s": s, "beta": beta}
    return _simulate_purchases(
        "pareto", "pareto_nbd", n_customers, params, T, holdout, seed, time_unit
    )


# --------------------------------------------------------------------------------------------
# spend
# --------------------------------------------------------------------------------------------
def simulate_gamma_gamma_spend(
    frequency,
    p: float,
    q: float,
    v: float,
    *,
    seed=None,
) -> pd.DataFrame:
    """Add Gamma-Gamma spend to purchase counts (Fader, Hardie & Lee 2005, "RFM and CLV: using
    iso-value curves for customer base analysis", JMR 42(4); Colombo & Jiang 1999).

    nu_i ~ Gamma(q, rate v); each transaction's spend z ~ Gamma(p, rate nu_i), so the mean of
    x transactions is ``Gamma(p x, rate x nu_i)`` and the customer's true mean spend per
    transaction is ``p / nu_i`` (population mean ``p v / (q - 1)``).

    Parameters
    ----------
    frequency : a summary DataFrame with a ``frequency`` column (returned as a copy with columns
        added, keeping its index and attrs) or an array of repeat-purchase counts.
    p, q, v : Gamma-Gamma parameters.
    seed : int, None or numpy Generator.

    Returns
    -------
    DataFrame with ``monetary_value`` (mean spend of the repeat purchases, 0 when frequency is
    0) and ``true_mean_spend`` (p / nu_i); when the input has ``frequency_holdout``, also
    ``monetary_value_holdout`` for the same customers (same nu_i). From an array the frame has
    a ``frequency`` column and a fresh ``customer_id`` index.
    """
    params = {"p": _positive("p", p), "q": _positive("q", q), "v": _positive("v", v)}
    if isinstance(frequency, pd.DataFrame):
        if "frequency" not in frequency.columns:
            raise InputError("the summary given to simulate_gamma_gamma_spend has no 'frequency'")
        out = frequency.copy()
    else:
        x = np.asarray(frequency)
        if x.ndim != 1:
            raise ValueError("frequency must be a 1-d array of repeat-purchase counts")
        out = pd.DataFrame({"frequency": x}, index=pd.RangeIndex(len(x), name="customer_id"))
        out.attrs["simulation"] = {}
    counts = {c: _counts(out[c]) for c in ("frequency", "frequency_holdout") if c in out.columns}
    columns = _family("spend", "gamma-gamma").simulate(
        params, counts["frequency"], _rng(seed), frequency_holdout=counts.get("frequency_holdout")
    )
    for name, values in columns.items():
        out[name] = values
    sim = dict(out.attrs.get("simulation", {}))
    sim["spend"] = {"model": "gamma_gamma", **params}
    out.attrs["simulation"] = sim
    return out


# --------------------------------------------------------------------------------------------
# grouped populations
# --------------------------------------------------------------------------------------------
def draw_group_params(
    groups,
    population: Mapping[str, float],
    sigma: float | Mapping[str, float] = 0.3,
    *,
    seed=None,
) -> pd.DataFrame:
    """Draw per-group parameters around population values, log-normally.

    ``log theta_g ~ Normal(log population[theta], sigma[theta])`` independently for each
    parameter and group. Returns a DataFrame indexed by group (name ``group``) with one column per
    parameter, ready for :func:`simulate_grouped_beta_geo`.
    """
    groups = list(groups)
    rng = _rng(seed)
    out = {}
    for name, value in population.items():
        scale = sigma[name] if isinstance(sigma, Mapping) else sigma
        out[name] = np.exp(
            np.log(_positive(name, value)) + scale * rng.standard_normal(len(groups))
        )
    return pd.DataFrame(out, index=pd.Index(groups, name="group"))


def _group_table(group_params, names, what) -> pd.DataFrame:
    table = (
        group_params.copy()
        if isinstance(group_params, pd.DataFrame)
        else pd.DataFrame.from_dict(dict(group_params), orient="index")
    )
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise InputError(
            f"{what} is missing parameter column(s) {missing}; give a DataFrame indexed by group "
            f"with columns {', '.join(names)} (or a dict group -> dict of parameters)"
        )
    return table


def simulate_grouped_beta_geo(
    group_sizes: Mapping,
    group_params,
    T=52.0,
    *,
    spend_params=None,
    holdout=None,
    seed=None,
    time_unit: str = "W",
    modified: bool = False,
) -> pd.DataFrame:
    """Simulate a population whose groups (channels, regions, cohorts) have their own BG/NBD
    parameters, as assumed by the hierarchical BG/NBD model.

    Parameters
    ----------
    group_sizes : dict group -> number of customers.
    group_params : DataFrame indexed by group with columns r, alpha, a, b (for example from
        :func:`draw_group_params`), or a dict group -> {"r": ..., "alpha": ..., ...}.
    T : age at calibration end: a number, a string such as "39W", or one value per customer in
        the order of ``group_sizes`` (customers of the first group first).
    spend_params : optional per-group Gamma-Gamma parameters (columns p, q, v, same form as
        ``group_params``); adds ``monetary_value`` and ``true_mean_spend``.
    holdout, seed, time_unit : as in :func:`simulate_beta_geo`.
    modified : simulate MBG/NBD instead of BG/NBD within each group.

    Returns
    -------
    DataFrame indexed by ``customer_id`` (0..n-1) with a ``group`` column, the summary and
    latent columns of :func:`simulate_beta_geo` (and of :func:`simulate_gamma_gamma_spend`).
    ``attrs["group_params"]`` holds the true per-group parameters as a dict of dicts.
    """
    family = _family("purchase", "mbgnbd" if modified else "bgnbd")
    spend_family = _family("spend", "gamma-gamma")
    bg_names, gg_names = family.param_names, spend_family.param_names
    table = _group_table(group_params, bg_names, "group_params")
    spend = None if spend_params is None else _group_table(spend_params, gg_names, "spend_params")
    groups = list(group_sizes)
    for g in groups:
        if g not in table.index:
            raise InputError(f"group {g!r} of group_sizes has no row in group_params")
        if spend is not None and g not in spend.index:
            raise InputError(f"group {g!r} of group_sizes has no row in spend_params")
    sizes = np.array([_n(group_sizes[g]) for g in groups], dtype=np.int64)
    n = int(sizes.sum())
    code = np.repeat(np.arange(len(groups)), sizes)
    ages = _ages(T, n, time_unit)
    t_hold = _holdout(holdout, time_unit)
    rng = _rng(seed)

    def per_customer(tab, name):
        values = np.array([_positive(name, tab.loc[g, name]) for g in groups])
        return values[code]

    params = {k: per_customer(table, k) for k in bg_names}
    group_col = np.asarray(groups, dtype=object)[code]
    try:
        group_col = group_col.astype(np.asarray(groups).dtype)
    except (TypeError, ValueError):  # pragma: no cover - mixed-type group labels
        pass
    df = _frame(family.simulate(params, ages, t_hold, rng), time_unit, "", {})
    df.insert(0, "group", group_col)
    if spend is not None:
        spend_params = {k: per_customer(spend, k) for k in gg_names}
        holdout_counts = df["frequency_holdout"] if "frequency_holdout" in df.columns else None
        columns = spend_family.simulate(
            spend_params, df["frequency"], rng, frequency_holdout=holdout_counts
        )
        for name, values in columns.items():
            df[name] = values
    df.attrs["simulation"] = {
        "model": ("modified_" if modified else "") + "beta_geo",
        "grouped": True,
    }
    df.attrs["group_params"] = {
        str(g): {k: float(table.loc[g, k]) for k in bg_names}
        | ({} if spend is None else {k: float(spend.loc[g, k]) for k in gg_names})
        for g in groups
    }
    return df


# --------------------------------------------------------------------------------------------
# transactions with dates
# --------------------------------------------------------------------------------------------
def simulate_transactions(
    n_customers: int,
    r: float = 0.25,
    alpha: float = 4.0,
    a: float = 0.8,
    b: float = 2.4,
    *,
    spend: tuple[float, float, float] | None = (6.0, 4.0, 15.0),
    start: str = "2020-01-01",
    acquisition_days: float = 365.0,
    observation_end: str = "2021-12-31",
    extra_lines_mean: float = 0.0,
    time_unit: str = "W",
    resolution: str = "D",
    seed=None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Transactions with real dates from the BG/NBD process with Gamma-Gamma spend.

    Customers make their first purchase uniformly in ``[start, start + acquisition_days)`` and
    are observed until ``observation_end`` (its midnight). Repeat purchases follow BG/NBD with parameters in
    ``time_unit`` (the default weekly values resemble CDNOW). Given x repeat purchases with the
    last at recency t_x, the first x-1 are uniform on (0, t_x) (order statistics of a Poisson
    process), so every purchase time is exact. Each purchase has ``1 + Poisson(extra_lines_mean)``
    lines on the same timestamp (like several order lines on one day); each line's amount is
    ``Gamma(p, rate nu_i)`` with ``spend = (p, q, v)`` (rounded to cents), or 1.0 when ``spend``
    is None. Timestamps are floored to ``resolution`` ("D": calendar days; "h", "s", ...).

    Returns
    -------
    (transactions, truth): ``transactions`` has columns ``customer_id`` (int64), ``date``
    (datetime64[ns]) and ``amount`` (float64), sorted by customer and date; ``truth`` is the
    customer-level frame of :func:`simulate_beta_geo` in continuous time (before flooring),
    with ``first_purchase`` dates added.
    """
    n = _n(n_customers)
    rng = _rng(seed)
    day = units.days_per(time_unit)
    start_ts = pd.Timestamp(start)
    end_ts = pd.Timestamp(observation_end)
    first_days = rng.uniform(0.0, float(acquisition_days), size=n)
    horizon_days = (end_ts - start_ts) / pd.Timedelta(days=1)
    if horizon_days <= acquisition_days:
        raise ValueError("observation_end must come after the acquisition window")
    ages = (horizon_days - first_days) / day
    truth = simulate_beta_geo(n, r, alpha, a, b, ages, seed=rng, time_unit=time_unit)
    x = truth["frequency"].to_numpy()
    t_x = truth["recency"].to_numpy()
    # purchase times (in time_unit after the first purchase): 0, the x-1 uniforms, and t_x
    n_purchases = x + 1
    owner = np.repeat(np.arange(n), n_purchases)
    times = rng.uniform(0.0, 1.0, size=owner.size) * t_x[owner]
    starts = np.concatenate([[0], np.cumsum(n_purchases)[:-1]])
    times[starts] = 0.0  # the first purchase
    last = starts + x
    has_repeat = x > 0
    times[last[has_repeat]] = t_x[has_repeat]
    if extra_lines_mean > 0:
        lines = 1 + rng.poisson(extra_lines_mean, size=owner.size)
        owner, times = np.repeat(owner, lines), np.repeat(times, lines)
    if spend is not None:
        sp, sq, sv = (_positive(k, val) for k, val in zip(("p", "q", "v"), spend, strict=True))
        nu = rng.gamma(sq, 1.0 / sv, size=n)
        amount = np.round(rng.gamma(sp, 1.0 / nu[owner]), 2)
        truth["true_mean_spend"] = sp / nu
    else:
        amount = np.ones(owner.size)
    # integer time since the start, in steps of ``resolution``, floored
    step_ns = (
        pd.Timedelta(1, unit="ns").value
        if not resolution
        else pd.Timedelta(pd.tseries.frequencies.to_offset(resolution)).value
    )
    # floor on the calendar (steps counted from 1970), not relative to ``start``
    base, rest = divmod(start_ts.value, step_ns)
    offset_ns = rest + (first_days[owner] + times * day) * 86_400e9
    steps = np.floor(offset_ns / step_ns).astype(np.int64)
    # order each customer's lines by time: owner is already sorted, so sort a packed key
    # (amounts are exchangeable within a customer and need not follow)
    step_bits = max(int(steps.max()).bit_length(), 1)
    if int(n).bit_length() + step_bits <= 62:
        packed = (owner.astype(np.int64) << step_bits) | steps
        packed.sort()
        owner, steps = packed >> step_bits, packed & ((1 << step_bits) - 1)
    else:  # pragma: no cover - nanosecond resolution over decades
        order = np.lexsort((steps, owner))
        owner, steps = owner[order], steps[order]
    date = ((base + steps) * step_ns).view("datetime64[ns]")
    tx = pd.DataFrame({"customer_id": owner.astype(np.int64), "date": date, "amount": amount})
    truth["first_purchase"] = (
        start_ts.value + np.round(first_days * 86_400e9).astype(np.int64)
    ).view("datetime64[ns]")
    truth.attrs["observation_end"] = str(end_ts.date())
    return tx, truth


# --------------------------------------------------------------------------------------------
# closed forms used to check the simulators: the families' E[X(t)] of a new customer
# --------------------------------------------------------------------------------------------
def _new_customer_expectation(cli_name: str, t, params: dict) -> np.ndarray:
    family = _family("purchase", cli_name)
    return family.expected_purchases_new_customer(params, np.asarray(t, dtype=float))


def expected_frequency_beta_geo(t, r, alpha, a, b):
    """E[X(t)] of BG/NBD (Fader, Hardie & Lee 2005, eq. 9):
    (a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))]; the BG/NBD family's
    :meth:`~clvmodels.families.base.PurchaseFamily.expected_purchases_new_customer`."""
    return _new_customer_expectation("bgnbd", t, {"r": r, "alpha": alpha, "a": a, "b": b})


def expected_frequency_modified_beta_geo(t, r, alpha, a, b):
    """E[X(t)] of MBG/NBD (Batislam, Denizel & Filiztekin 2007, the expected number of
    transactions in (0, t]): b/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b+1; a+b; t/(alpha+t))];
    the MBG/NBD family's ``expected_purchases_new_customer``."""
    return _new_customer_expectation("mbgnbd", t, {"r": r, "alpha": alpha, "a": a, "b": b})


def expected_frequency_pareto_nbd(t, r, alpha, s, beta):
    """E[X(t)] of Pareto/NBD (Schmittlein, Morrison & Colombo 1987, eq. 17):
    r beta / (alpha (s-1)) [1 - (beta/(beta+t))^(s-1)]; the Pareto/NBD family's
    ``expected_purchases_new_customer``."""
    return _new_customer_expectation("pareto", t, {"r": r, "alpha": alpha, "s": s, "beta": beta})


# --------------------------------------------------------------------------------------------
# predictive check of the calibration frequency
# --------------------------------------------------------------------------------------------
def frequency_predictive_check(
    family,
    params,
    summary: pd.DataFrame,
    *,
    groups=None,
    max_frequency: int = 7,
    interval: float = 0.9,
    seed=None,
) -> pd.DataFrame:
    """Simulated against observed histogram of the calibration ``frequency``.

    For each row of ``params`` (the family's parameter mapping, arrays of shape
    ``(n_draws, 1)`` or ``(n_draws, n_customers)``: posterior or prior draws, or the
    sampling distribution of an MLE), every customer of ``summary`` is drawn afresh from the
    family's generative process (``family.simulate``) over their own age ``T``, and the
    customers with 0, 1, ..., ``max_frequency`` (the last bin: "or more") repeat purchases are
    counted. ``groups``: optional labels, one per customer, for one histogram per group
    (``"(all)"`` otherwise).

    Returns a DataFrame indexed by (group, frequency bin), groups in order of appearance, with
    the ``observed`` count and the ``simulated_mean``, ``simulated_lower`` and
    ``simulated_upper`` (central ``interval``) of the simulated counts.
    """
    rng = _rng(seed)
    T = summary["T"].to_numpy(dtype=float)
    simulated = np.asarray(family.simulate(params, T, None, rng)["frequency"])
    simulated = np.broadcast_to(simulated, np.broadcast_shapes(simulated.shape, (1, len(T))))
    n_bins = int(max_frequency) + 1
    bins = np.minimum(simulated, max_frequency).astype(np.int64)
    observed_bins = np.minimum(summary["frequency"].to_numpy(), max_frequency).astype(np.int64)
    labels = np.full(len(summary), "(all)", dtype=object) if groups is None else np.asarray(groups)
    lo_q, hi_q = 0.5 - interval / 2, 0.5 + interval / 2
    rows = []
    for label in pd.unique(labels):
        mask = labels == label
        per_draw = np.stack([np.bincount(row, minlength=n_bins) for row in bins[:, mask]])
        observed = np.bincount(observed_bins[mask], minlength=n_bins)
        for k in range(n_bins):
            rows.append(
                {
                    "group": label,
                    "frequency": k,
                    "observed": int(observed[k]),
                    "simulated_mean": float(per_draw[:, k].mean()),
                    "simulated_lower": float(np.quantile(per_draw[:, k], lo_q)),
                    "simulated_upper": float(np.quantile(per_draw[:, k], hi_q)),
                }
            )
    return pd.DataFrame(rows).set_index(["group", "frequency"])
