"""Tests of clvmodels.plotting: every plot renders to PNG without a display and shows the data."""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import clvmodels as clv  # noqa: E402
from clvmodels import plotting  # noqa: E402
from clvmodels.errors import InputError  # noqa: E402


def _render(ax) -> bytes:
    buffer = io.BytesIO()
    ax.figure.savefig(buffer, format="png", dpi=50)
    plt.close(ax.figure)
    data = buffer.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    return data


@pytest.fixture(scope="module")
def cdnow():
    tx = clv.datasets.load_cdnow_transactions("sample")
    ch = clv.datasets.load_cdnow_calibration_holdout("sample")
    bg = clv.BetaGeo().fit(ch)
    return tx, ch, bg


def test_tracking_cumulative_and_incremental(cdnow):
    tx, ch, bg = cdnow
    ax = plotting.plot_tracking(
        bg, tx, calibration_end="1997-09-30", observation_end="1998-06-30", period="1W"
    )
    actual, expected = ax.lines[0], ax.lines[1]
    total_repeat = ch["frequency"].sum() + ch["frequency_holdout"].sum()
    assert actual.get_ydata()[-1] == pytest.approx(total_repeat)
    # the forecast from acquisition dates tracks the calibration total within a few percent
    data = clv.evaluation.tracking_data(
        bg, tx, calibration_end="1997-09-30", observation_end="1998-06-30"
    )
    calibration = data[~data["holdout"]]
    assert calibration["expected_cumulative"].iloc[-1] == pytest.approx(
        ch["frequency"].sum(), rel=0.05
    )
    assert len(data) == 78  # 1997-01-01 .. 1998-06-30 in weeks
    np.testing.assert_allclose(expected.get_ydata(), data["expected_cumulative"])
    assert any(line.get_linestyle() == ":" for line in ax.lines)  # calibration end marker
    _render(ax)
    ax = plotting.plot_tracking(bg, tx, calibration_end="1997-09-30", kind="incremental")
    assert ax.lines[0].get_ydata().sum() == pytest.approx(total_repeat)
    _render(ax)
    with pytest.raises(ValueError, match="kind"):
        plotting.plot_tracking(bg, tx, kind="weekly")


def test_calibration_vs_holdout(cdnow):
    _, ch, bg = cdnow
    fig, ax0 = plt.subplots()
    ax = plotting.plot_calibration_vs_holdout(bg, ch, max_frequency=5, ax=ax0)
    assert ax is ax0
    actual, predicted = ax.lines[0], ax.lines[1]
    bins = np.minimum(ch["frequency"], 5)
    expected_actual = ch.groupby(bins)["frequency_holdout"].mean()
    np.testing.assert_allclose(actual.get_ydata(), expected_actual.to_numpy())
    expected_pred = bg.expected_purchases(ch, 39).groupby(bins.to_numpy()).mean()
    np.testing.assert_allclose(predicted.get_ydata(), expected_pred.to_numpy())
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "5+"
    _render(ax)


def test_frequency_recency_and_alive_matrices(cdnow):
    _, ch, bg = cdnow
    ax = plotting.plot_frequency_recency_matrix(bg, ch, t=1, n_recency=20)
    values = ax.images[0].get_array()
    assert values.shape == (int(ch["frequency"].max()) + 1, 20)
    # more purchases and a more recent last purchase mean more expected purchases
    assert values[10, -1] > values[10, 0]
    assert values[10, -1] > values[1, -1]
    _render(ax)
    ax = plotting.plot_probability_alive_matrix(bg, T=39, max_frequency=10, n_recency=15)
    alive = np.asarray(ax.images[0].get_array())
    assert alive.shape == (11, 15)
    assert np.nanmin(alive) >= 0 and np.nanmax(alive) <= 1
    assert alive[0, 0] == pytest.approx(1.0)  # BG/NBD: no repeat purchase, no chance to drop
    assert alive[5, -1] > alive[5, 1]
    _render(ax)
    with pytest.raises(InputError, match="give T"):
        model = clv.BetaGeo().fit(ch)
        model.rows_ = None
        plotting.plot_probability_alive_matrix(model)


def test_clv_distribution(cdnow):
    _, ch, bg = cdnow
    repeaters = ch[ch["frequency"] > 0]
    gg = clv.GammaGamma().fit(repeaters)
    values = clv.lifetime_value(
        bg, gg, ch, horizon="52W", annual_discount_rate=0.1, draws=50, random_seed=0
    )
    ax = plotting.plot_clv_distribution(values, n_customers=100)
    points = ax.lines[0]
    assert len(points.get_ydata()) == 100
    assert np.all(np.diff(points.get_ydata()) <= 1e-9)  # ranked by CLV
    assert points.get_ydata()[0] == pytest.approx(values["clv_mean"].max())
    assert "top 10%" in ax.get_title()
    _render(ax)
    with pytest.raises(InputError, match="clv_lower"):
        plotting.plot_clv_distribution(values.drop(columns=["clv_lower"]))


def test_posterior_predictive_check(cdnow):
    _, ch, bg = cdnow
    ax = plotting.plot_posterior_predictive(bg, ch, max_frequency=6, n_draws=50)
    heights = [p.get_height() for p in ax.patches]
    observed = np.bincount(np.minimum(ch["frequency"], 6), minlength=7)
    np.testing.assert_allclose(heights, observed)
    simulated = ax.lines[0].get_ydata()
    # the fitted BG/NBD reproduces the frequency histogram (Fader, Hardie & Lee 2005, Figure 3)
    np.testing.assert_allclose(simulated, observed, rtol=0.15, atol=25)
    _render(ax)


def test_model_comparison_plot(cdnow):
    _, ch, bg = cdnow
    table = pd.DataFrame(
        {"purchases_mae": [0.7, 0.9], "coverage_90": [0.88, 0.6]}, index=["a", "b"]
    )
    ax = plotting.plot_model_comparison(table, "purchases_mae")
    widths = [p.get_width() for p in ax.patches]
    assert widths == [0.7, 0.9]
    colors = [p.get_facecolor() for p in ax.patches]
    assert colors[0] != colors[1]  # the best (lowest error) is highlighted
    _render(ax)
    ax = plotting.plot_model_comparison(table, "coverage_90")
    assert ax.patches[0].get_facecolor() == matplotlib.colors.to_rgba("tab:blue")
    _render(ax)
    with pytest.raises(InputError, match="not a column"):
        plotting.plot_model_comparison(table, "nope")
    result = clv.compare_models({"bg": bg}, ch, intervals=False)
    ax = plotting.plot_model_comparison(result)
    assert list(result.index) == ["bg"] and ax.patches[0].get_width() == pytest.approx(
        result.loc["bg", "purchases_mae"]
    )
    _render(ax)
