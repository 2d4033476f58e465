"""Settings out of range are refused with the valid range, in the API and the command line:
margin (a share), discount rates (fractions per year or period), interval, horizon, the number
of purchases of ``purchase_probability``; and spend models without a population mean
(Gamma-Gamma q <= 1) are refused before valuation with what it means and what to do."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import clvmodels as clv
from clvmodels import cli, scoring, valuation
from clvmodels.errors import InputError
from clvmodels.valuation import spec

runner = CliRunner()


@pytest.fixture(scope="module")
def summary():
    return clv.datasets.load_cdnow_summary()


@pytest.fixture(scope="module")
def models(summary):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clv.BetaGeo().fit(summary), clv.GammaGamma().fit(summary)


@pytest.fixture(scope="module")
def small(summary):
    return summary.iloc[:40]


BAD_SETTINGS = [
    ({"margin": 30}, "margin is a share of spend, 0.3 for 30%"),
    ({"margin": 1.01}, "margin must be between 0 and 1"),
    ({"margin": -0.1}, "margin must be between 0 and 1"),
    ({"margin": float("nan")}, "margin must be between 0 and 1"),
    ({"margin": True}, "margin must be between 0 and 1"),
    ({"annual_discount_rate": 10}, "10 would mean 1000% a year"),
    ({"annual_discount_rate": 1.0}, "a rate per year, 0.1 for 10%"),
    ({"annual_discount_rate": -0.99}, "at least 0 and below 1"),
    ({"annual_discount_rate": float("inf")}, "annual_discount_rate must be at least 0"),
    ({"annual_discount_rate": float("nan")}, "annual_discount_rate must be at least 0"),
    ({"period_discount_rate": 2.0}, "a rate per period, 0.1 for 10%"),
    ({"period_discount_rate": -0.5}, "period_discount_rate must be at least 0"),
    ({"interval": 1.0}, "strictly between 0 and 1"),
    ({"interval": 0.0}, "strictly between 0 and 1"),
    ({"interval": 90}, "0.9 for 90%"),
    ({"interval": float("nan")}, "interval must be strictly between 0 and 1"),
    ({"horizon": -3.0}, "horizon must be a finite, non-negative duration"),
    ({"horizon": float("inf")}, "horizon must be a finite, non-negative duration"),
]


@pytest.mark.parametrize(
    ("function", "settings", "message"),
    [
        (function, settings, message)
        for function in ("lifetime_value", "customer_equity", "expected_cash_flows")
        for settings, message in BAD_SETTINGS
        if function != "expected_cash_flows" or "interval" not in settings  # it has none
    ],
)
def test_valuations_refuse_settings_out_of_range(models, small, function, settings, message):
    bg, gg = models
    kwargs = dict(settings) if function == "expected_cash_flows" else {"kind": "point", **settings}
    call = lambda: getattr(valuation, function)(bg, gg, small, **kwargs)  # noqa: E731
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


@pytest.mark.parametrize(
    "settings",
    [
        {"margin": 0.0},
        {"margin": 1},
        {"annual_discount_rate": 0},
        {"annual_discount_rate": 0.99},
        {"period_discount_rate": 0.0},
        {"interval": 0.5},
        {"horizon": 0},
    ],
)
def test_edges_of_the_valid_ranges_are_accepted(models, small, settings):
    bg, gg = models
    frame = clv.lifetime_value(bg, gg, small, kind="point", **settings)
    assert np.isfinite(frame.to_numpy()).all()


def test_predict_purchases_refuses_a_bad_interval(models, small):
    bg, _ = models
    for interval in (1.5, 0, -0.2, float("nan")):
        with pytest.raises(InputError, match="interval must be strictly between 0 and 1"):
            clv.predict_purchases(bg, small, "10W", interval=interval, kind="point")


def test_valuation_spec_checks_on_construction():
    with pytest.raises(InputError, match="margin is a share"):
        spec.ValuationSpec(margin=30)
    with pytest.raises(InputError, match="0.1 for 10%"):
        spec.ValuationSpec(annual_discount_rate=10)
    assert spec.ValuationSpec(margin=0.3, annual_discount_rate=0.1).margin == 0.3


@pytest.mark.parametrize("k", [-1, 2.5, float("nan"), float("inf"), True, "2", None])
def test_purchase_probability_needs_a_whole_number_of_purchases(models, small, k):
    bg, _ = models
    with pytest.raises(InputError, match="k must be a non-negative whole number"):
        bg.purchase_probability(small, 10, k)


def test_purchase_probability_accepts_whole_numbers_of_any_type(models, small):
    bg, _ = models
    expected = bg.purchase_probability(small, 10, 2)
    pd.testing.assert_series_equal(bg.purchase_probability(small, 10, 2.0), expected)
    pd.testing.assert_series_equal(bg.purchase_probability(small, 10, np.int64(2)), expected)
    assert expected.name == "p_2_purchases"


# --------------------------------------------------------------------------------------------
# the command line: the same ranges, named by their options
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory, summary, models):
    root = tmp_path_factory.mktemp("settings")
    frame = summary.iloc[:200].reset_index()
    frame.to_csv(root / "s.csv", index=False)
    clv.io.save_pipeline(root / "m", *models)
    return root


def invoke(*args):
    return runner.invoke(cli.app, [str(a) for a in args])


def one_line_error(result, code=2) -> str:
    assert result.exit_code == code, (result.exit_code, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    return errors[0]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--margin", "30", "--margin must be between 0 and 1 (margin is a share of spend, 0.3"),
        ("--margin", "-1", "--margin must be between 0 and 1"),
        ("--discount-rate", "10", "--discount-rate must be at least 0 and below 1"),
        ("--discount-rate", "-0.99", "(a rate per year, 0.1 for 10%)"),
        ("--discount-rate", "inf", "--discount-rate must be at least 0"),
        ("--discount-rate", "nan", "--discount-rate must be at least 0"),
        ("--interval", "1.5", "--interval must be strictly between 0 and 1"),
        ("--interval", "0", "0.9 for 90%"),
    ],
)
def test_score_refuses_settings_out_of_range(files, option, value, message):
    out = files / "clv.csv"
    result = invoke("score", files / "s.csv", "--model", files / "m", "--time-unit", "W",
                    option, value, "--out", out)  # fmt: skip
    assert message in one_line_error(result)
    assert not out.exists()


def test_settings_from_a_file_are_checked_alike(files, tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text("[score]\nmargin = 30\n")
    result = invoke("score", files / "s.csv", "--model", files / "m", "--time-unit", "W",
                    "--config", config)  # fmt: skip
    assert "margin is a share" in one_line_error(result)


# --------------------------------------------------------------------------------------------
# heavy-tailed spend: Gamma-Gamma with q <= 1 has no population mean spend
# --------------------------------------------------------------------------------------------
def heavy_tailed(gg, q: float, log_se: float | None = None):
    """A copy of ``gg`` with ``q`` (and, optionally, a standard error of log q)."""
    model = clv.GammaGamma.from_dict(gg.to_dict())
    model.params_ = model.params_.copy()
    model.params_["q"] = q
    cov = np.zeros((3, 3)) if log_se is None else np.diag([1e-6, log_se**2, 1e-6])
    model.set_log_covariance(cov)
    return model


MEANING = ("q <= 1", "population mean spend per transaction", "does not exist",
           "customers without repeat purchases have infinite expected spend",
           "Fix: fit the spend model on more data or with outlying spend excluded",
           "hierarchical or fixed-parameter spend model")  # fmt: skip


@pytest.mark.parametrize("q", [1.0, 0.8, 0.3])
@pytest.mark.parametrize("kind", ["point", "expected", "predictive"])
def test_spend_model_without_a_mean_is_refused_with_its_meaning(models, small, q, kind):
    bg, gg = models
    model = heavy_tailed(gg, q)
    for call in (
        lambda: clv.lifetime_value(bg, model, small, kind=kind, draws=5, random_seed=1),
        lambda: clv.customer_equity(bg, model, small, kind=kind, draws=5, random_seed=1),
        lambda: valuation.expected_cash_flows(bg, model, small),
    ):
        with pytest.raises(InputError) as info:
            call()
        message = str(info.value)
        assert f"q = {q:.4g}" in message
        for fragment in MEANING:
            assert fragment in message, (fragment, message)
        assert "bug" not in message


def test_spend_draws_without_a_mean_are_refused_before_scoring(models):
    bg, gg = models
    uncertain = heavy_tailed(gg, 1.2, log_se=0.5)  # about a third of the draws have q <= 1
    with pytest.raises(InputError, match=r"of 100 parameter draws .* have q <= 1") as info:
        scoring.prepare_draws(bg, uncertain, 100, "expected", 0)
    assert "kind='point'" in str(info.value)
    point = scoring.prepare_draws(bg, uncertain, 100, "point", 0)  # q = 1.2 itself is fine
    assert point["spend"]["q"].iloc[0] == 1.2
    sure = heavy_tailed(gg, 1.2, log_se=0.01)
    assert (scoring.prepare_draws(bg, sure, 100, "expected", 0)["spend"]["q"] > 1).all()


def test_score_refuses_a_heavy_tailed_spend_model_in_one_line(files, models, tmp_path):
    bg, gg = models
    clv.io.save_pipeline(tmp_path / "heavy", bg, heavy_tailed(gg, 0.9))
    out = tmp_path / "clv.csv"
    result = invoke("score", files / "s.csv", "--model", tmp_path / "heavy", "--time-unit", "W",
                    "--kind", "point", "--out", out)  # fmt: skip
    line = one_line_error(result)
    for fragment in MEANING:
        assert fragment in line, (fragment, line)
    assert "report it" not in line and "bug" not in line
    assert not out.exists()


def test_fitted_parameters_must_be_positive_and_finite(models, small):
    bg, gg = models
    broken = clv.BetaGeo.from_dict(bg.to_dict())
    broken.params_ = broken.params_.copy()
    broken.params_["r"] = -1.0
    with pytest.raises(InputError, match=r"parameter r = -1.0; its parameters must be positive"):
        clv.lifetime_value(broken, gg, small, kind="point")
