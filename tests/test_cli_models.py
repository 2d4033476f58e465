"""The command line with the subscription models (sbg, bdw, hierarchical-sbg), BG/BB (bgbb) and
the model files of their spend side (SubscriptionPrice) and of the time-varying Pareto/NBD.

End to end on small data: ``clvmodels fit`` reads a subscriptions file, a ready table or
transactions, and the estimates are the published ones (Fader & Hardie 2007's regular cohort,
Fader, Hardie & Shang 2010's donations); ``clvmodels score`` values the customers with the same
engine as :func:`clvmodels.lifetime_value`, to the last digit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import clvmodels as clv
from clvmodels import cli
from clvmodels.datasets import load_donations_summary
from clvmodels.errors import ModelFileError
from clvmodels.io import load_model, load_pipeline, save_model

runner = CliRunner()
SURVIVORS = Path(__file__).parent / "data" / "fader_hardie_2007_survivors.csv"
#: Fader & Hardie (2007), the regular cohort fitted on years 0-7
FH2007_REGULAR = {"alpha": 0.704, "beta": 1.182}
#: Fader, Hardie & Shang (2010), section 4: the donations data
FHS2010 = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}


def invoke(*args):
    return runner.invoke(cli.app, [str(a) for a in args])


def assert_ok(result):
    assert result.exit_code == 0, (result.stdout, result.stderr)


def assert_error(result, *fragments: str):
    """Exit code 2 (bad input), one ``Error:`` line, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# ---- data ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def regular_table() -> pd.DataFrame:
    """The regular cohort of FH 2007 (years 0-7), one row per customer."""
    counts = pd.read_csv(SURVIVORS)["regular"].to_numpy()[:8]
    table = clv.table_from_survivors(counts, period="Y")
    table.index = table.index.map(lambda i: f"s{i}")
    table.index.name = "customer_id"
    return table


@pytest.fixture(scope="module")
def subscriptions_file(tmp_path_factory, regular_table) -> Path:
    """The regular cohort as a subscriptions file: everybody started on 2010-01-01, a customer
    who paid ``t`` years ended on the ``t``-th anniversary, the others are active (empty end)
    when the data were extracted on 2017-01-01; prices 10 or 20 a year."""
    start = pd.Timestamp("2010-01-01")
    ends = [
        (start + pd.DateOffset(years=int(t))).date().isoformat() if churned else ""
        for t, churned in zip(regular_table["tenure"], regular_table["churned"], strict=True)
    ]
    frame = pd.DataFrame(
        {
            "customer_id": regular_table.index,
            "start": start.date().isoformat(),
            "end": ends,
            "price": np.where(np.arange(len(regular_table)) % 2 == 0, 10.0, 20.0),
        }
    )
    path = tmp_path_factory.mktemp("subscriptions") / "subscriptions.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def donors() -> pd.DataFrame:
    """The 11,104 donors of FHS 2010, one row each (frequency, recency, n_periods)."""
    table = load_donations_summary()
    rows = table.loc[table.index.repeat(table["count"])].drop(columns="count")
    rows.index = pd.Index([f"d{i}" for i in range(len(rows))], name="customer_id")
    rows.attrs["time_unit"] = "Y"
    return rows


@pytest.fixture(scope="module")
def donations_file(tmp_path_factory, donors) -> Path:
    """Transactions that give the donors' summary on yearly opportunities: a first gift in
    1995, then gifts in years 1..x-1 and in year t_x after it; observed to the end of 2001."""
    ids, dates = [], []
    for customer, x, t_x in zip(donors.index, donors["frequency"], donors["recency"], strict=True):
        years = [0, *range(1, int(x)), *([int(t_x)] if x else [])]
        ids += [customer] * len(years)
        dates += [f"{1995 + y}-06-15" for y in years]
    path = tmp_path_factory.mktemp("donations") / "gifts.csv"
    pd.DataFrame({"customer_id": ids, "date": dates}).to_csv(path, index=False)
    return path


# ---- subscriptions ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sbg_directory(tmp_path_factory, subscriptions_file) -> Path:
    out = tmp_path_factory.mktemp("models") / "sbg"
    result = invoke(
        "fit", subscriptions_file, "--model", "sbg", "--period", "Y",
        "--observation-end", "2017-01-01", "--out", out, "--quiet",
    )  # fmt: skip
    assert_ok(result)
    return out


def test_fit_sbg_on_a_subscriptions_file_reproduces_fader_hardie_2007(sbg_directory, regular_table):
    models = load_pipeline(sbg_directory)
    assert isinstance(models.purchase, clv.ShiftedBetaGeo)
    assert isinstance(models.spend, clv.SubscriptionPrice) and models.spend.price is None
    assert models.time_unit == "Y"
    for name, value in FH2007_REGULAR.items():
        assert models.purchase.params_[name] == pytest.approx(value, abs=5e-4)
    direct = clv.ShiftedBetaGeo().fit(regular_table)
    np.testing.assert_allclose(models.purchase.params_, direct.params_, rtol=1e-9)
    table = models.metadata["table"]
    assert table["layout"] == "subscriptions" and table["period"] == "Y"
    assert table["observation_end"].startswith("2017-01-01")
    manifest = json.loads((sbg_directory / "manifest.json").read_text())
    assert manifest["command"] == "fit" and manifest["table"]["kind"] == "subscriptions"


def test_score_sbg_is_the_valuation_engine(tmp_path, sbg_directory, subscriptions_file):
    """Point values from the file equal clv.lifetime_value on the table, and the predictive
    run writes every customer with intervals and a manifest with the equity."""
    out = tmp_path / "clv.parquet"
    args = ("--horizon", "5Y", "--period", "Y", "--margin", "0.8", "--discount-rate", "0.1")
    result = invoke(
        "score", subscriptions_file, "--model", sbg_directory, "--observation-end", "2017-01-01",
        "--kind", "point", "--out", out, "--quiet", "--chunk-size", "300", *args,
    )  # fmt: skip
    assert_ok(result)
    scored = pd.read_parquet(out).set_index("customer_id")
    models = load_pipeline(sbg_directory)
    frame = pd.read_csv(subscriptions_file, dtype={"customer_id": str})
    table = clv.subscription_table(frame, observation_end="2017-01-01", period="Y", keep=["price"])
    expected = clv.lifetime_value(
        models.purchase, models.spend, table, horizon="5Y", period="Y", margin=0.8,
        annual_discount_rate=0.1, kind="point",
    )  # fmt: skip
    assert list(scored.index) == list(table.index)
    np.testing.assert_allclose(scored["clv_mean"], expected["clv_mean"], rtol=1e-12)
    active = ~table["churned"].to_numpy()
    assert (scored["clv_mean"].to_numpy()[~active] == 0).all()
    assert (scored["clv_mean"].to_numpy()[active] > 0).all()
    price = table["price"].to_numpy()[active]  # the 20-a-year customers are worth twice as much
    values = scored["clv_mean"].to_numpy()[active]
    np.testing.assert_allclose(values[price == 20].max(), 2 * values[price == 10].max())

    predictive = tmp_path / "clv.csv"
    result = invoke(
        "score", subscriptions_file, "--model", sbg_directory, "--observation-end", "2017-01-01",
        "--draws", "50", "--out", predictive, "--quiet", *args,
    )  # fmt: skip
    assert_ok(result)
    values = pd.read_csv(predictive)
    assert len(values) == len(table)
    assert (values["clv_lower"] <= values["clv_upper"]).all()
    manifest = json.loads(Path(f"{predictive}.manifest.json").read_text())
    assert manifest["customer_equity"]["n_customers"] == len(table)
    assert manifest["customer_equity"]["equity_lower"] <= manifest["customer_equity"]["equity_mean"]


def test_fit_on_a_ready_table_with_a_constant_price(tmp_path, regular_table):
    path = tmp_path / "table.parquet"
    regular_table.reset_index().to_parquet(path)
    out = tmp_path / "bdw"
    result = invoke(
        "fit", path, "--model", "bdw", "--period", "Y", "--price", "9.5", "--out", out, "-q"
    )
    assert_ok(result)
    models = load_pipeline(out)
    direct = clv.BetaDiscreteWeibull().fit(regular_table)
    np.testing.assert_allclose(models.purchase.params_, direct.params_, rtol=1e-6)
    assert models.spend.price == 9.5
    assert models.metadata["table"]["layout"] == "table"


def test_hierarchical_sbg_pools_the_cohorts(tmp_path):
    """hierarchical-sbg on a subscriptions file with a cohort column (short sampling)."""
    pytest.importorskip("pymc")
    rng = np.random.default_rng(3)
    rows = []
    for cohort, churn in (("2020", 0.3), ("2021", 0.15)):
        for i in range(60):
            start = pd.Timestamp(f"{cohort}-01-01")
            years = rng.geometric(churn)
            end = start + pd.DateOffset(years=int(years))
            ended = end <= pd.Timestamp("2024-01-01")
            rows.append((f"{cohort}-{i}", start.date(), end.date() if ended else None, cohort))
    path = tmp_path / "subs.csv"
    pd.DataFrame(rows, columns=["customer_id", "start", "end", "cohort"]).to_csv(path, index=False)
    out = tmp_path / "h"
    result = invoke(
        "fit", path, "--model", "hierarchical-sbg", "--period", "Y", "--price", "100",
        "--observation-end", "2024-01-01", "--draws", "100", "--tune", "100", "--chains", "1",
        "--out", out, "--quiet",
    )  # fmt: skip
    assert_ok(result)
    models = load_pipeline(out)
    assert type(models.purchase).__name__ == "HierarchicalShiftedBetaGeo"
    assert models.purchase.group == "cohort"
    scored = tmp_path / "clv.csv"
    result = invoke(
        "score", path, "--model", out, "--observation-end", "2024-01-01", "--horizon", "3Y",
        "--period", "Y", "--kind", "expected", "--draws", "20", "--out", scored, "--quiet",
    )  # fmt: skip
    assert_ok(result)
    values = pd.read_csv(scored, dtype={"customer_id": str}).set_index("customer_id")
    assert len(values) == 120 and np.isfinite(values["clv_mean"]).all()
    # the curves of a grouped model: a cohort's, or a new cohort's (the population's)
    from clvmodels.subscriptions import survival_curve

    periods = [1, 2, 3]
    assert models.purchase.groups_ == [2020, 2021]  # the file's cohort column, read as numbers
    curves = {
        g: survival_curve(models.purchase, periods, draws=20, seed=1, group=g)["survival"]
        for g in (2020, 2021, None)
    }
    assert (curves[2021] > curves[2020]).all()  # the cohort that churns less
    assert np.all(np.diff(curves[None]) < 0) and ((curves[None] > 0) & (curves[None] < 1)).all()


# ---- BG/BB -----------------------------------------------------------------------------------
def test_fit_bgbb_on_transactions_reproduces_the_donations_estimates(
    tmp_path, donations_file, donors
):
    out = tmp_path / "bgbb"
    result = invoke(
        "fit", donations_file, "--model", "bgbb", "--period", "Y", "--price", "25",
        "--observation-end", "2001-12-31", "--out", out, "-q",
    )  # fmt: skip
    assert_ok(result)
    models = load_pipeline(out)
    for name, value in FHS2010.items():
        assert models.purchase.params_[name] == pytest.approx(value, rel=2e-3)
    assert models.purchase.log_likelihood_ == pytest.approx(-33225.6, abs=0.1)
    assert models.metadata["table"]["layout"] == "transactions"

    scored = tmp_path / "clv.parquet"
    result = invoke(
        "score", donations_file, "--model", out, "--observation-end", "2001-12-31",
        "--horizon", "5Y", "--period", "Y", "--kind", "point", "--out", scored, "-q",
    )  # fmt: skip
    assert_ok(result)
    values = pd.read_parquet(scored).set_index("customer_id")
    expected = clv.lifetime_value(
        models.purchase, models.spend, donors, horizon="5Y", period="Y", kind="point"
    )
    joined = values["clv_mean"].reindex(expected.index)
    np.testing.assert_allclose(joined, expected["clv_mean"], rtol=1e-12)


def test_fit_bgbb_on_a_summary_file_with_a_price_column(tmp_path, donors):
    path = tmp_path / "summary.csv"
    donors.assign(price=30.0).reset_index().to_csv(path, index=False)
    out = tmp_path / "bgbb"
    assert_ok(invoke("fit", path, "--model", "bgbb", "--out", out, "-q"))
    models = load_pipeline(out)
    assert models.time_unit == "Y"  # BG/BB's default grid: years
    for name, value in FHS2010.items():
        assert models.purchase.params_[name] == pytest.approx(value, rel=2e-3)


# ---- bad input ---------------------------------------------------------------------------------
def test_bad_input_gets_one_clear_line(tmp_path, subscriptions_file, sbg_directory):
    no_price = tmp_path / "no_price.csv"
    pd.read_csv(subscriptions_file).drop(columns="price").to_csv(no_price, index=False)
    assert_error(
        invoke("fit", no_price, "--model", "sbg", "--out", tmp_path / "m"), "--price AMOUNT"
    )
    assert_error(
        invoke("fit", subscriptions_file, "--model", "sbg", "--time-unit", "W", "--out",
               tmp_path / "m"),
        "--period",
    )  # fmt: skip
    assert_error(
        invoke("fit", subscriptions_file, "--model", "sbg", "--spend", "hierarchical", "--out",
               tmp_path / "m"),
        "fixed price per payment",
    )  # fmt: skip
    assert_error(
        invoke("fit", subscriptions_file, "--model", "bgnbd", "--price", "3", "--out",
               tmp_path / "m"),
        "--price", "not --model bgnbd",
    )  # fmt: skip
    no_start = tmp_path / "no_start.csv"
    pd.read_csv(subscriptions_file).rename(columns={"start": "begin"}).to_csv(no_start, index=False)
    assert_error(invoke("fit", no_start, "--model", "sbg", "--out", tmp_path / "m"), "'start'")
    backwards = tmp_path / "backwards.csv"
    frame = pd.read_csv(subscriptions_file)
    frame.loc[3, "end"] = "2009-01-01"
    frame.to_csv(backwards, index=False)
    assert_error(invoke("fit", backwards, "--model", "sbg", "--out", tmp_path / "m"), "end before")
    assert_error(
        invoke("score", "--model", sbg_directory, "--out", tmp_path / "x.csv"),
        "pass the subscriptions",
    )
    assert_error(
        invoke("score", subscriptions_file, "--model", sbg_directory, "--time-unit", "M"),
        "unit",
    )
    assert not (tmp_path / "m").exists() and not (tmp_path / "x.csv").exists()


def test_evaluate_offers_only_the_models_of_the_rfm_summary():
    help_text = invoke("evaluate", "--help").stdout
    for name in ("sbg", "bdw", "bgbb", "hierarchical-sbg"):
        assert name not in help_text.split("--models")[1].split("--")[0]
    assert_error(invoke("evaluate", "--models", "bgnbd,sbg"), "--models sbg", "evaluate_payments")


# ---- scoring covariate models ------------------------------------------------------------------
def test_score_a_covariate_model_with_the_covariates_file(tmp_path):
    """A Pareto/NBD with static covariates (CLVTools' apparel customers): `score --covariates`
    joins the covariates to each chunk and gives clv.lifetime_value's values; a summary that
    holds the columns itself is scored without the option; neither is a clear error."""
    data = Path(__file__).parent / "data"
    summary_path = tmp_path / "summary.parquet"
    assert_ok(
        invoke(
            "rfm",
            data / "apparel_transactions.csv",
            "--out",
            summary_path,
            "--observation-end",
            "2005-12-31",
            "--after-observation-end",
            "exclude",
            "-q",
        )  # fmt: skip
    )
    models = tmp_path / "m"
    assert_ok(
        invoke(
            "fit",
            summary_path,
            "--model",
            "pareto",
            "--covariates",
            data / "apparel_customers.csv",
            "--purchase-covariates",
            "gender,channel",
            "--dropout-covariates",
            "gender",
            "--out",
            models,
            "-q",
        )  # fmt: skip
    )
    loaded = load_pipeline(models)
    assert set(loaded.purchase.covariate_columns) == {"gender", "channel"}
    out = tmp_path / "clv.parquet"
    result = invoke(
        "score", summary_path, "--model", models, "--covariates", data / "apparel_customers.csv",
        "--kind", "point", "--chunk-size", "100", "--out", out, "-q",
    )  # fmt: skip
    assert_ok(result)
    scored = pd.read_parquet(out).set_index("customer_id")
    summary = pd.read_parquet(summary_path)
    summary = summary.set_index("customer_id") if "customer_id" in summary else summary
    summary.attrs["time_unit"] = loaded.time_unit
    customers = pd.read_csv(data / "apparel_customers.csv").set_index("customer_id")
    joined = clv.join_covariates(summary, customers, ["gender", "channel"])
    expected = clv.lifetime_value(
        loaded.purchase, loaded.spend, joined, horizon="12M", annual_discount_rate=0.1,
        kind="point",
    )  # fmt: skip
    np.testing.assert_allclose(
        scored["clv_mean"].to_numpy(), expected["clv_mean"].to_numpy(), rtol=1e-10
    )
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    assert manifest["covariates"] == ["gender", "channel"]

    with_columns = tmp_path / "with_columns.parquet"
    joined.reset_index().to_parquet(with_columns)
    out2 = tmp_path / "clv2.parquet"
    assert_ok(
        invoke(
            "score",
            with_columns,
            "--model",
            models,
            "--time-unit",
            loaded.time_unit,
            "--kind",
            "point",
            "--out",
            out2,
            "-q",
        )  # fmt: skip
    )
    np.testing.assert_allclose(
        pd.read_parquet(out2)["clv_mean"].to_numpy(), scored["clv_mean"].to_numpy(), rtol=1e-12
    )
    assert_error(
        invoke("score", summary_path, "--model", models, "--kind", "point"),
        "['gender', 'channel']",
        "--covariates FILE",
    )


# ---- model files -------------------------------------------------------------------------------
@pytest.mark.parametrize("price", [None, 12.5])
def test_subscription_price_model_file_round_trip(tmp_path, regular_table, price):
    table = regular_table.assign(price=7.0)
    model = clv.SubscriptionPrice(price=price).fit(table)
    loaded = load_model(save_model(model, tmp_path / "price"))
    assert isinstance(loaded, clv.SubscriptionPrice)
    assert loaded.price == price and loaded.time_unit_ == "Y"
    np.testing.assert_array_equal(loaded.expected_spend(table), model.expected_spend(table))


def test_subscription_price_model_file_fields_are_checked(tmp_path, regular_table):
    directory = save_model(clv.SubscriptionPrice(price=3.0).fit(regular_table), tmp_path / "p")
    path = directory / "model.json"
    document = json.loads(path.read_text())
    document["model"]["price"] = -1.0
    path.write_text(json.dumps(document))
    with pytest.raises(ModelFileError, match="model.price"):
        load_model(directory)


@pytest.fixture(scope="module")
def time_varying_data():
    """200 simulated customers of the time-varying Pareto/NBD (holiday-season covariate), the
    covariates running 12 weeks past the observation end."""
    from clvmodels.estimators.time_varying import simulate_transactions

    truth = {"r": 0.8, "alpha": 6.0, "s": 0.7, "beta": 20.0, "purchase.holiday_season": 0.8,
             "dropout.holiday_season": 0.5}  # fmt: skip
    n = 200
    rng = np.random.default_rng(4)
    origin = pd.Timestamp("2005-01-02")
    end = origin + pd.Timedelta(weeks=78)
    covariates = clv.calendar_covariates(  # to the end of the 10-week forecast
        np.arange(n), start=origin, end=end + pd.Timedelta(weeks=12), month_of_year=False
    )
    births = pd.Series(origin + pd.to_timedelta(rng.integers(0, 120, n), unit="D"))
    transactions = simulate_transactions(truth, covariates, births, end, seed=5)
    summary = clv.rfm_summary(
        transactions, "customer_id", "date", observation_end=end, time_unit="W",
        purchase_period="H",
    )  # fmt: skip
    return covariates, transactions, summary, end


def test_time_varying_model_file_round_trip(tmp_path, time_varying_data):
    """TimeVaryingParetoNBD: the estimates round-trip; the loaded model predicts only once the
    covariates are attached again (a clear error before)."""
    covariates, transactions, summary, _ = time_varying_data
    columns = ["holiday_season"]
    model = clv.TimeVaryingParetoNBD(columns, columns).fit(summary, covariates, transactions)
    directory = save_model(model, tmp_path / "tv")
    loaded = load_model(directory)
    assert isinstance(loaded, clv.TimeVaryingParetoNBD)
    np.testing.assert_array_equal(loaded.params_, model.params_)
    with pytest.raises(clv.errors.InputError, match="with_future_covariates"):
        loaded.predict(summary, "10W")
    attached = loaded.with_future_covariates(covariates)
    np.testing.assert_allclose(
        attached.predict(summary, "10W"), model.predict(summary, "10W"), rtol=1e-12
    )
    document = json.loads((directory / "model.json").read_text())
    document["model"]["theta"] = document["model"]["theta"][:-1]
    (directory / "model.json").write_text(json.dumps(document))
    with pytest.raises(ModelFileError, match="model.theta"):
        load_model(directory)


def test_time_varying_pareto_nbd_from_the_command_line(tmp_path, time_varying_data):
    """fit --model pareto-tv on transactions with a covariate file, then score with the
    covariates: the library's estimates and values."""
    covariates, transactions, _, end = time_varying_data
    rng = np.random.default_rng(2)
    tx_path, cov_path = tmp_path / "tx.csv", tmp_path / "covariates.csv"
    transactions.assign(amount=rng.gamma(4.0, 10.0, len(transactions))).to_csv(tx_path, index=False)
    covariates.to_csv(cov_path, index=False)
    out = tmp_path / "tv"
    end_date = str(end.date())
    result = invoke(
        "fit", tx_path, "--model", "pareto-tv", "--time-varying-covariates", cov_path,
        "--purchase-covariates", "holiday_season", "--dropout-covariates", "holiday_season",
        "--observation-end", end_date, "--time-unit", "W", "--out", out, "-q",
    )  # fmt: skip
    assert_ok(result)
    models = load_pipeline(out)
    summary = clv.rfm_summary(
        str(tx_path), monetary="amount", observation_end=end_date, time_unit="W"
    )
    table = covariates.assign(customer_id=covariates["customer_id"].astype(summary.index.dtype))
    direct = clv.TimeVaryingParetoNBD(["holiday_season"], ["holiday_season"]).fit(
        summary, table, transactions
    )
    np.testing.assert_allclose(models.purchase.params_, direct.params_, rtol=1e-6)

    scored = tmp_path / "clv.csv"
    result = invoke(
        "score", tx_path, "--model", out, "--time-varying-covariates", cov_path,
        "--observation-end", end_date, "--horizon", "10W", "--kind", "point", "--out", scored,
        "-q",
    )  # fmt: skip
    assert_ok(result)
    values = pd.read_csv(scored, dtype={"customer_id": summary.index.dtype})
    values = values.set_index("customer_id")
    expected = clv.lifetime_value(
        models.purchase.with_future_covariates(table), models.spend, summary, horizon="10W",
        annual_discount_rate=0.1, kind="point",
    )  # fmt: skip
    np.testing.assert_allclose(
        values["clv_mean"].reindex(expected.index), expected["clv_mean"], rtol=1e-9
    )
    assert_error(
        invoke("score", tx_path, "--model", out, "--observation-end", end_date),
        "--time-varying-covariates FILE",
    )
    assert_error(
        invoke("fit", tx_path, "--model", "pareto-tv", "--out", tmp_path / "x"),
        "--time-varying-covariates FILE",
    )
