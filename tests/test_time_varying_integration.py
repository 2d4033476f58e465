"""The time-varying Pareto/NBD (issue #15) in Dask scoring, in the diagnostic plots and with
summaries whose observation end differs from the fit's, on the apparel data (tests/data)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import integrate

import clvmodels as clv
from clvmodels import plotting
from clvmodels.errors import InputError
from clvmodels.estimators.time_varying import AcquisitionForecast
from clvmodels.evaluation import tracking_data
from clvmodels.families import pareto_nbd
from clvmodels.families import pareto_nbd_dyncov as dyncov
from clvmodels.scoring import equity_summary, prepare_draws, score_chunk

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DATA = Path(__file__).parent / "data"
END = "2006-12-31"
HOLDOUT_END = "2010-12-20"
VALUATION = dict(horizon="52W", annual_discount_rate=0.1, margin=0.3, interval=0.9)


@pytest.fixture(scope="module")
def transactions():
    return pd.read_csv(DATA / "apparel_transactions.csv")


def summary_to(transactions, end):
    return clv.rfm_summary(
        transactions,
        "customer_id",
        "date",
        "amount",
        observation_end=end,
        time_unit="W",
        after_observation_end="exclude",
    )


@pytest.fixture(scope="module")
def summary(transactions):
    return summary_to(transactions, END)


@pytest.fixture(scope="module")
def models(summary, transactions):
    """The fit (to 2006-12-31), the same model with the future covariates, and Gamma-Gamma."""
    covariates = pd.read_csv(DATA / "apparel_dyncov.csv.gz")
    future = pd.read_csv(DATA / "apparel_dyncov_future.csv.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", clv.errors.ConvergenceWarning)
        fitted = clv.TimeVaryingParetoNBD(["high_season"], ["high_season"]).fit(
            summary, covariates, transactions
        )
        spend = clv.GammaGamma().fit(summary[summary["monetary_value"] > 0])
    return fitted, fitted.with_future_covariates(future), spend


def without_end(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.attrs = {"time_unit": "W"}
    return out


# --------------------------------------------------------------------------------------------
# the scoring date
# --------------------------------------------------------------------------------------------
def test_a_later_summary_is_placed_from_its_own_observation_end(models, transactions, summary):
    _, model, _ = models
    later = summary_to(transactions, "2007-06-30")
    common = summary.index.intersection(later.index)
    at_fit = model.customer_params(summary.loc[common])
    at_later = model.customer_params(later.loc[common])
    # the same first purchases on the grid, although T is 26 weeks longer
    assert np.all(later.loc[common, "T"].to_numpy() > summary.loc[common, "T"].to_numpy() + 25)
    for key in ("path", "start_period", "first_period_length"):
        np.testing.assert_allclose(at_later[key], at_fit[key], rtol=0, atol=1e-9)
    # placed at the fit's end instead, the later summary's customers would have been acquired
    # 26 weeks earlier, before the table's first period (the apparel cohort is acquired in its
    # first quarter)
    misplaced = later.loc[common].copy()
    misplaced.attrs = dict(later.attrs, observation_end=END)
    with pytest.raises(InputError, match="covariate table starts on"):
        model.expected_purchases(misplaced, 10)


def test_a_summary_without_its_end_is_an_error_unless_it_is_the_fits(models, transactions, summary):
    _, model, _ = models
    later = without_end(summary_to(transactions, "2007-06-30"))
    with pytest.raises(InputError, match=r"records no observation end.*observation_end"):
        model.expected_purchases(later, 10)
    # the fit's own summary (or part of it) is placed at the fit's end, bit for bit
    plain = model.expected_purchases(summary, 10).to_numpy()
    np.testing.assert_array_equal(model.expected_purchases(without_end(summary), 10), plain)
    part = without_end(summary.iloc[100:140])
    np.testing.assert_array_equal(model.expected_purchases(part, 10), plain[100:140])
    shifted = without_end(summary.iloc[:5])
    shifted["T"] += 1.0
    with pytest.raises(InputError, match="records no observation end"):
        model.probability_alive(shifted)
    # a model file does not record the fit's customers: the end must be given
    loaded = clv.TimeVaryingParetoNBD.from_dict(json.loads(model.to_json()))
    attached = loaded.with_future_covariates(model.covariates_)
    with pytest.raises(InputError, match="records no observation end"):
        attached.expected_purchases(without_end(summary), 10)
    np.testing.assert_array_equal(attached.expected_purchases(summary, 10), plain)


# --------------------------------------------------------------------------------------------
# Dask
# --------------------------------------------------------------------------------------------
def test_score_dask_is_identical_to_local_scoring(client, models, summary):
    dd = pytest.importorskip("dask.dataframe")
    from clvmodels.distributed import customer_equity_dask, score_dask

    _, model, spend = models
    settings = dict(time_unit="W", n_draws=30, random_seed=3, chunk_size=250, **VALUATION)
    # partitions that do not line up with the blocks of 250 customers
    ddf = dd.from_pandas(summary, npartitions=4)
    remote = score_dask(ddf, model, spend, client=client, observation_end=END, **settings)
    got = remote.compute()
    draws = prepare_draws(model, spend, 30, "predictive", 3)
    blocks = [
        score_chunk(
            summary.iloc[k * 250 : (k + 1) * 250],
            model,
            spend,
            draws=draws,
            block=k,
            random_seed=3,
            **VALUATION,
        )
        for k in range(3)
    ]
    local = pd.concat([frame for frame, _ in blocks])
    pd.testing.assert_frame_equal(got, local, check_exact=True)
    # the point columns are the model's own predictions over the horizon
    np.testing.assert_allclose(
        got["expected_purchases"], model.expected_purchases(summary, 52), rtol=1e-12
    )
    np.testing.assert_allclose(
        got["probability_alive"], model.probability_alive(summary), rtol=1e-12
    )
    equity = customer_equity_dask(ddf, model, spend, observation_end=END, **settings)
    totals = np.sum([t for _, t in blocks], axis=0)
    expected = equity_summary(totals, VALUATION["interval"])
    for key in ("equity_mean", "equity_lower", "equity_upper"):
        assert equity[key].iloc[0] == pytest.approx(expected[key], rel=1e-12)


def test_score_dask_refuses_what_it_cannot_place(client, models, summary):
    dd = pytest.importorskip("dask.dataframe")
    from clvmodels.distributed import score_dask

    fitted, model, spend = models
    ddf = dd.from_pandas(summary, npartitions=2)
    with pytest.raises(InputError, match="pass observation_end="):
        score_dask(ddf, model, spend, time_unit="W", n_draws=5, **VALUATION)
    with pytest.raises(InputError, match="observation_end must be a date"):
        score_dask(ddf, model, spend, time_unit="W", observation_end="soon", **VALUATION)
    # the fit's table ends on 2010-12-26: a horizon past it is an error, not a carry-forward
    # of the last period's covariates
    past = dict(VALUATION, horizon="250W")
    scored = score_dask(
        ddf, fitted, spend, time_unit="W", n_draws=5, observation_end=END, client=client, **past
    )
    with pytest.raises(InputError, match="covariate"):
        scored.compute()


def test_score_dask_calls_on_one_client_use_their_own_models(client, models, summary):
    """Each call ships its own payload under fresh keys: a later call on the same client with
    another spend model or margin is not served the earlier call's models (a scattered dict
    was stored under its own keys, "purchase", "spend"..., which a later scatter kept)."""
    dd = pytest.importorskip("dask.dataframe")
    from clvmodels.distributed import score_dask

    _, model, spend = models
    buyers = summary[summary["monetary_value"] > 0]
    other_spend = clv.GammaGamma().fit(buyers.assign(monetary_value=buyers["monetary_value"] * 2))
    ddf = dd.from_pandas(summary, npartitions=2)
    settings = dict(time_unit="W", n_draws=5, random_seed=1, observation_end=END, client=client)
    first = score_dask(ddf, model, spend, **settings, **VALUATION).compute()
    second = score_dask(ddf, model, other_spend, **settings, **VALUATION).compute()
    local, _ = score_chunk(
        summary,
        model,
        other_spend,
        draws=prepare_draws(model, other_spend, 5, "predictive", 1),
        block=0,
        random_seed=1,
        **VALUATION,
    )
    pd.testing.assert_frame_equal(second, local, check_exact=True)
    assert not np.allclose(second["clv_mean"], first["clv_mean"])
    doubled = score_dask(ddf, model, spend, **settings, **dict(VALUATION, margin=0.6)).compute()
    np.testing.assert_allclose(doubled["clv_mean"], 2 * first["clv_mean"], rtol=1e-12)


# --------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------
def new_customer_expectation(model, acquired: pd.Timestamp, customer: int, age: float) -> float:
    """r/alpha int_0^age a(u) (beta/(beta+B(u)))^s du by adaptive quadrature on the table: the
    expected repeat purchases of a customer acquired at ``acquired`` (no purchase after it)."""
    table = model.covariate_table()
    values = table.values[table.ids.get_loc(customer), :, 0]
    r, alpha, s, beta, b_purchase, b_dropout = model.params_.to_numpy()
    origin = float(table.period_of(acquired))  # grid position at age 0
    weeks = table.spacing / pd.Timedelta(weeks=1)

    def z(u):
        return values[int(np.floor(origin + u / weeks + 1e-12))]

    edges = [0.0] + [
        (p - origin) * weeks for p in range(int(origin) + 1, int(origin + age / weeks) + 1)
    ]
    edges = sorted({e for e in edges if 0 <= e < age} | {age})

    def dropout_clock(u):
        return sum(
            integrate.quad(lambda v: np.exp(b_dropout * z(v)), lo, min(hi, u))[0]
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
            if lo < u
        )

    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        total += integrate.quad(
            lambda u: np.exp(b_purchase * z(u)) * (beta / (beta + dropout_clock(u))) ** s,
            lo,
            hi,
            epsabs=1e-12,
        )[0]
    return r / alpha * total


def test_new_customer_expectation_against_quadrature(models):
    _, model, _ = models
    acquired = pd.Timestamp("2006-10-10 00:00")
    got = model.expected_purchases_after_acquisition(acquired, [3.5, 20.0], customer_id=7)
    for value, age in zip(got, [3.5, 20.0], strict=True):
        assert value == pytest.approx(new_customer_expectation(model, acquired, 7, age), rel=1e-7)


def test_plot_tracking_sums_each_customers_expectation(models, transactions):
    _, model, _ = models
    few = transactions[transactions["customer_id"].isin(range(1, 41))]
    ax = plotting.plot_tracking(
        model, few, calibration_end=END, observation_end="2008-06-30", ax=None
    )
    actual_line, expected_line = ax.lines[0], ax.lines[1]
    data = tracking_data(model, few, observation_end="2008-06-30")
    explicit = tracking_data(
        AcquisitionForecast(model),
        few,
        observation_end="2008-06-30",
        covariates=AcquisitionForecast(model).acquisitions(few),
    )
    pd.testing.assert_frame_equal(data, explicit)
    np.testing.assert_array_equal(expected_line.get_ydata(), data["expected_cumulative"])
    np.testing.assert_array_equal(actual_line.get_ydata(), data["actual_cumulative"])
    # independently: at each period end, the sum over customers of E[X] of a customer with
    # frequency 0, recency 0 and T 0 at the end of their first purchase day (tracking's clock)
    first = pd.to_datetime(few["date"]).dt.normalize().groupby(few["customer_id"]).min()
    for period_end in data.index[[10, 60, -1]]:
        tau = period_end + pd.Timedelta(days=1)
        total = 0.0
        for customer, day in first.items():
            born = day + pd.Timedelta(days=1)
            age = (tau - born) / pd.Timedelta(weeks=1)
            if age > 0:
                row = pd.DataFrame({"frequency": [0], "recency": [0.0], "T": [0.0]}, [customer])
                row.attrs = {"time_unit": "W", "observation_end": str(born)}
                total += float(model.expected_purchases(row, age).iloc[0])
        assert data.loc[period_end, "expected_cumulative"] == pytest.approx(total, rel=1e-10)
    assert data["actual_cumulative"].iloc[-1] > 0
    plt.close("all")


def test_plot_tracking_needs_the_covariates_to_the_end(models, transactions):
    fitted, model, _ = models
    few = transactions[transactions["customer_id"].isin(range(1, 11))]
    # the fit's table ends on 2010-12-26
    with pytest.raises(InputError, match="covariate"):
        plotting.plot_tracking(fitted, few, observation_end="2011-06-30")
    with pytest.raises(InputError, match="leave covariates= out"):
        plotting.plot_tracking(model, few, covariates=pd.DataFrame())
    with pytest.raises(InputError, match="leave covariates= out"):
        tracking_data(model, few, covariates=pd.DataFrame())
    plt.close("all")


def test_plot_calibration_vs_holdout(models, transactions):
    _, model, _ = models
    ch = clv.calibration_holdout_summary(
        transactions,
        "customer_id",
        "date",
        calibration_end=END,
        observation_end=HOLDOUT_END,
        time_unit="W",
    )
    ax = plotting.plot_calibration_vs_holdout(model, ch, max_frequency=5)
    horizon = (pd.Timestamp(HOLDOUT_END) - pd.Timestamp(END)).days / 7
    predicted = model.expected_purchases(ch, horizon).to_numpy()
    bins = np.minimum(ch["frequency"].to_numpy(dtype=int), 5)
    means = [predicted[bins == b].mean() for b in np.unique(bins)]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), means, rtol=1e-12)
    plt.close("all")


def grid_value(model, function, frequency, recency, T, customer) -> float:
    row = pd.DataFrame({"frequency": [frequency], "recency": [recency], "T": [T]}, [customer])
    row.attrs = {"time_unit": "W", "observation_end": END}
    return float(function(row).iloc[0])


def test_matrix_plots_follow_one_customers_path(models, summary):
    _, model, _ = models
    ax = plotting.plot_probability_alive_matrix(
        model, summary, max_frequency=6, n_recency=5, covariates={"customer_id": 12}
    )
    values = ax.images[0].get_array()
    T = float(summary["T"].max())
    recency = np.linspace(0, T, 5)
    for f, k in [(0, 0), (3, 2), (6, 4)]:
        expected = grid_value(model, model.probability_alive, f, recency[k] if f else 0.0, T, 12)
        assert values[f, k] == pytest.approx(expected, rel=1e-12)
    ax = plotting.plot_frequency_recency_matrix(
        model, summary, t=20, max_frequency=4, n_recency=4, covariates={"customer_id": 12}
    )
    values = ax.images[0].get_array()
    recency = np.linspace(0, T, 4)

    def in_twenty(row):
        return model.expected_purchases(row, 20)

    for f, k in [(0, 0), (2, 3), (4, 1)]:
        expected = grid_value(model, in_twenty, f, recency[k] if f else 0.0, T, 12)
        assert values[f, k] == pytest.approx(expected, rel=1e-12)
    # customer 12's path on a table shared by every customer: the same map
    table = model.covariates_
    shared = table[table["customer_id"] == 12].drop(columns="customer_id")
    loaded = clv.TimeVaryingParetoNBD.from_dict(json.loads(model.to_json()))
    calendar = loaded.with_future_covariates(shared)
    again = plotting.plot_frequency_recency_matrix(
        calendar, summary, t=20, max_frequency=4, n_recency=4
    )
    np.testing.assert_array_equal(again.images[0].get_array(), values)
    with pytest.raises(InputError, match="shared by every customer"):
        plotting.plot_probability_alive_matrix(calendar, summary, covariates={"customer_id": 12})
    with pytest.raises(InputError, match="path per customer"):
        plotting.plot_probability_alive_matrix(model, summary)
    with pytest.raises(InputError, match="from its table"):
        plotting.plot_probability_alive_matrix(model, summary, covariates={"high_season": 1})
    plt.close("all")


def test_posterior_predictive_simulates_on_each_path(models, summary):
    _, model, _ = models
    ax = plotting.plot_posterior_predictive(model, summary, max_frequency=7, n_draws=20)
    observed = np.bincount(np.minimum(summary["frequency"].to_numpy(dtype=int), 7), minlength=8)
    np.testing.assert_array_equal([bar.get_height() for bar in ax.patches], observed)
    plt.close("all")
    # the simulated calibration counts average to each customer's expected count from the
    # acquisition on: E[X(0, T)] along the path
    subset = summary.iloc[:30]
    params = model.customer_params(subset, pd.concat([model.point_draws()] * 3000))
    simulated = model.family_.simulate(
        params, subset["T"].to_numpy(), None, np.random.default_rng(4)
    )
    assert simulated["frequency"].shape == (3000, 30)
    births = pd.Timestamp(END) - pd.to_timedelta(subset["T"].to_numpy() * 7, unit="D")
    expected = np.array(
        [
            model.expected_purchases_after_acquisition(birth, [T], customer_id=customer)[0]
            for birth, T, customer in zip(births, subset["T"], subset.index, strict=True)
        ]
    )
    mean = simulated["frequency"].mean(axis=0)
    se = simulated["frequency"].std(axis=0) / np.sqrt(3000)
    assert np.all(np.abs(mean - expected) <= 4.5 * se + 1e-9)
    assert np.all(simulated["recency"] <= subset["T"].to_numpy() + 1e-9)
    assert np.all((simulated["recency"] > 0) == (simulated["frequency"] > 0))
    with pytest.raises(InputError, match="calibration histories only"):
        model.family_.simulate(params, subset["T"].to_numpy(), 10.0, np.random.default_rng(4))


def test_simulated_histories_with_zero_coefficients_are_the_plain_pareto_nbds(models, summary):
    """All coefficients 0: the mean simulated frequency is the plain Pareto/NBD's E[X(T)]."""
    _, model, _ = models
    subset = summary.iloc[:20]
    draws = pd.concat([model.point_draws()] * 4000, ignore_index=True)
    draws[list(model.coefficient_names)] = 0.0
    params = model.customer_params(subset, draws)
    T = subset["T"].to_numpy()
    simulated = dyncov.simulate_histories(params, T, np.random.default_rng(5))["frequency"]
    r, alpha, s, beta = model.params_[["r", "alpha", "s", "beta"]]
    expected = np.asarray(pareto_nbd.expected_purchases_new_customer(r, alpha, s, beta, T))
    se = simulated.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(simulated.mean(axis=0) - expected) <= 4.5 * se + 1e-9)
