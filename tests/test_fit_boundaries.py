"""Fits on a boundary or on data that cannot identify the model are reported in plain words,
and no interval is ever built on a singular covariance."""

import warnings

import numpy as np
import pandas as pd
import pytest

import clvmodels as clv
from clvmodels.errors import ConvergenceWarning, InputError


@pytest.fixture(scope="module")
def no_dropout():
    """Poisson buyers who never drop out: BG/NBD's dropout probability runs to 0."""
    rng = np.random.default_rng(1)
    n = 3000
    lam = rng.gamma(0.5, 1 / 5, n)
    T = rng.uniform(20, 52, n)
    x = rng.poisson(lam * T)
    recency = np.where(x > 0, T * rng.beta(np.maximum(x, 1), 1), 0.0)
    s = pd.DataFrame({"frequency": x, "recency": recency, "T": T})
    s["monetary_value"] = np.where(x > 0, 10.0 + rng.gamma(2.0, 5.0, n), 0.0)
    s.attrs["time_unit"] = "W"
    return s


def test_boundary_fit_is_reported_not_converged(no_dropout):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bg = clv.BetaGeo().fit(no_dropout)
    assert bg.converged_ is False
    # a -> 0 (dropout probability p ~ Beta(a, b) runs to 0); whether b also runs off depends
    # on the optimiser's path, which changed with the installed scipy/numpy versions
    assert "a" in set(bg.boundary_parameters_)
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(messages) == 1
    assert "do not determine a =" in messages[0] and "no dropout" in messages[0]
    assert bg.log_covariance_.isna().all().all()
    assert bg.summary()["se"].isna().all()


def test_boundary_fit_gives_no_intervals(no_dropout):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bg = clv.BetaGeo().fit(no_dropout)
        gg = clv.GammaGamma().fit(no_dropout)
    with pytest.raises(ValueError, match="on a boundary"):
        bg.param_draws(10)
    for kind in ("expected", "predictive"):
        with pytest.raises(ValueError, match="on a boundary"):
            clv.lifetime_value(bg, gg, no_dropout, horizon="52W", kind=kind, draws=20)
    point = clv.lifetime_value(bg, gg, no_dropout, horizon="52W", kind="point")
    assert np.all(np.isfinite(point["clv_mean"]))


def test_boundary_survives_save_and_load(no_dropout, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bg = clv.BetaGeo().fit(no_dropout)
    clv.save_model(bg, tmp_path / "m")
    loaded = clv.load_model(tmp_path / "m")
    assert loaded.boundary_parameters_ == bg.boundary_parameters_
    with pytest.raises(ValueError, match="on a boundary"):
        loaded.param_draws(5)


def test_well_identified_fits_are_not_flagged():
    s = clv.datasets.load_cdnow_summary()
    for cls in (clv.BetaGeo, clv.ParetoNBD, clv.ModifiedBetaGeo, clv.GammaGamma):
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            model = cls().fit(s)
        assert model.converged_ and model.boundary_parameters_ == []


def summary(frequency, recency, T):
    s = pd.DataFrame({"frequency": frequency, "recency": recency, "T": T}, dtype=float)
    s.attrs["time_unit"] = "W"
    return s


@pytest.mark.parametrize(
    ("data", "weights", "message"),
    [
        (summary([0, 0, 0], [0, 0, 0], [5, 10, 20]), None, "no customer made a repeat purchase"),
        (summary([0, 0, 0], [0, 0, 0], [0, 0, 0]), None, "zero time"),
        (summary([2], [3.0], [10.0]), None, "same history"),
        (summary([2, 1, 0], [3.0, 1.0, 0], [10.0, 8, 5]), [0.0, 0.0, 0.0], "weights sum to 0"),
    ],
    ids=["no-repeat-purchases", "all-T-zero", "one-customer", "zero-weights"],
)
@pytest.mark.parametrize("cls", ["BetaGeo", "ParetoNBD", "ModifiedBetaGeo"])
def test_unidentifiable_data_raise(cls, data, weights, message):
    with pytest.raises(InputError, match=message):
        getattr(clv, cls)().fit(data, weights=weights)
