"""Tests of clvmodels.plotting_contractual: the plots render without a display and show the
curves, intervals and data they are given."""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import clvmodels as clv  # noqa: E402
from clvmodels import plotting_contractual as plots  # noqa: E402
from clvmodels.errors import InputError  # noqa: E402

REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241, 223, 207, 194, 183, 173]


def _render(ax) -> None:
    buffer = io.BytesIO()
    ax.figure.savefig(buffer, format="png", dpi=50)
    plt.close(ax.figure)
    data = buffer.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


@pytest.fixture(scope="module")
def fitted():
    table = clv.table_from_survivors(REGULAR[:8], period="Y")
    return table, clv.ShiftedBetaGeo().fit(table)


def test_survival_and_retention_curves(fitted):
    table, model = fitted
    share = np.array(REGULAR) / 1000
    ax = plots.plot_survival(model, 12, actual=share, draws=50, seed=1)
    line = ax.get_lines()[0]
    np.testing.assert_allclose(
        line.get_ydata(),
        clv.subscriptions.survival_curve(model, np.arange(13), draws=0)["survival"],
    )
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), share)
    assert len(ax.collections) == 1  # the interval band
    _render(ax)
    ax = plots.plot_retention(model, 12, actual=share, draws=50, seed=1)
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), share[1:] / share[:-1])
    _render(ax)
    with pytest.raises(InputError, match="Series"):
        plots.plot_survival(model, 12, actual="0.5")


def test_survivor_projection_against_the_holdout(fitted):
    table, model = fitted
    ax = plots.plot_survivor_projection(model, table, 5, actual=REGULAR[8:], draws=100, seed=2)
    observed, projected, actual = (ax.get_lines()[i] for i in range(3))
    np.testing.assert_allclose(observed.get_ydata(), REGULAR[:8])
    np.testing.assert_allclose(projected.get_xdata(), np.arange(8, 13))
    np.testing.assert_allclose(actual.get_ydata(), REGULAR[8:])
    _render(ax)
    with pytest.raises(InputError, match="5 projected periods"):
        plots.plot_survivor_projection(model, table, 5, actual=REGULAR[8:10], draws=10)
