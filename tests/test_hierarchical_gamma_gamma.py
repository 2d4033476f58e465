"""Hierarchical Bayesian Gamma-Gamma: CDNOW against the MLE, group recovery on simulated
spend, unseen groups, save/load. Short chains, one compile + sampling per model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clvmodels import simulate
from clvmodels.errors import InputError
from clvmodels.estimators.bayes import bayesian
from clvmodels.estimators.bayes.hierarchical_gamma_gamma import (
    HierarchicalGammaGamma,
    compress_gamma_gamma,
    gamma_gamma_log_likelihood_pt,
)
from clvmodels.families.gamma_gamma import log_likelihood
from clvmodels.registry import GammaGamma

NAMES = ("p", "q", "v")
MLE_CDNOW = {"p": 6.25, "q": 3.74, "v": 15.45}  # GammaGamma on the CDNOW sample (FH 2013)


@pytest.fixture(scope="module")
def cdnow_fit(cdnow):
    return HierarchicalGammaGamma().fit(cdnow, draws=300, tune=300, chains=2, random_seed=3)


@pytest.fixture(scope="module")
def grouped_data():
    groups = ["a", "b", "c", "d", "e", "f"]
    sizes = dict(zip(groups, [80, 300, 500, 800, 1200, 1600], strict=True))
    purchase = pd.DataFrame(
        {"r": 1.0, "alpha": 2.0, "a": 0.5, "b": 3.0}, index=pd.Index(groups, name="group")
    )
    spend = simulate.draw_group_params(groups, {"p": 4.0, "q": 4.0, "v": 20.0}, 0.25, seed=2)
    df = simulate.simulate_grouped_beta_geo(sizes, purchase, T=52.0, spend_params=spend, seed=4)
    df = df[["group", "frequency", "recency", "T", "monetary_value"]].copy()
    df.attrs["time_unit"] = "W"
    return df, spend


@pytest.fixture(scope="module")
def grouped_fit(grouped_data):
    df, _ = grouped_data
    return HierarchicalGammaGamma(group="group").fit(
        df, draws=300, tune=300, chains=2, random_seed=5, target_accept=0.9
    )


def test_pytensor_likelihood_matches_numpy(grouped_data):
    import pytensor
    import pytensor.tensor as pt

    df, _ = grouped_data
    rep = df[df["frequency"] > 0]
    codes = pd.Index(sorted(df["group"].unique())).get_indexer(rep["group"])
    x, m = rep["frequency"].to_numpy(float), rep["monetary_value"].to_numpy(float)
    data = compress_gamma_gamma(codes, x, m)
    theta = {"p": np.linspace(2, 5, 6), "q": np.linspace(3, 6, 6), "v": np.linspace(10, 30, 6)}
    inputs = [pt.dvector(k) for k in NAMES]
    ll = gamma_gamma_log_likelihood_pt(*inputs, data)
    f = pytensor.function(inputs, [ll, *pt.grad(ll, inputs)], mode="FAST_COMPILE")
    value, *_ = f(*(theta[k] for k in NAMES))
    expected = log_likelihood(*(theta[k][codes] for k in NAMES), x, m).sum()
    assert value == pytest.approx(expected, rel=1e-10)


def test_cdnow_posterior_agrees_with_mle(cdnow_fit, cdnow):
    mle = GammaGamma().fit(cdnow).params_
    post = cdnow_fit.idata_.posterior
    for name in NAMES:
        draws = post[name].to_numpy().ravel()
        assert abs(draws.mean() - mle[name]) < draws.std(), name
        assert mle[name] == pytest.approx(MLE_CDNOW[name], rel=0.01)
    assert cdnow_fit.divergences_ == 0
    assert cdnow_fit.kind == "spend"
    spend = cdnow_fit.expected_spend(cdnow)
    mle_spend = GammaGamma().fit(cdnow).expected_spend(cdnow)
    assert np.abs(spend / mle_spend - 1).max() < 0.1
    assert list(cdnow_fit.param_draws(10, seed=0).columns) == list(NAMES)


def test_group_recovery_and_unseen_group(grouped_fit, grouped_data):
    df, truth = grouped_data
    post = grouped_fit.idata_.posterior
    inside = []
    for name in NAMES:
        lo = post[name].quantile(0.05, dim=("chain", "draw")).to_numpy()
        hi = post[name].quantile(0.95, dim=("chain", "draw")).to_numpy()
        inside.extend((lo <= truth[name].to_numpy()) & (truth[name].to_numpy() <= hi))
    assert np.mean(inside) >= 0.7, f"coverage {np.mean(inside):.0%} of 18"
    # the group mean spend p v / (q - 1) is well identified even where p, v trade off
    mean_spend = (post["p"] * post["v"] / (post["q"] - 1)).mean(dim=("chain", "draw"))
    true_mean = truth["p"] * truth["v"] / (truth["q"] - 1)
    np.testing.assert_allclose(mean_spend.to_numpy()[1:], true_mean.to_numpy()[1:], rtol=0.1)

    draws = grouped_fit.param_draws(30, seed=1)
    new = df.head(6).copy()
    new["group"] = ["zz", "a", "b", "zz", "c", "d"]
    params = grouped_fit.customer_params(new, draws)
    np.testing.assert_array_equal(params["q"][:, 0], draws[("q", bayesian.NEW_GROUP)])
    np.testing.assert_array_equal(params["q"][:, 1], draws[("q", "a")])
    spend = grouped_fit.expected_spend(new)
    assert np.isfinite(spend).all() and (spend > 0).all()
    per_draw = grouped_fit.predict_draws(new, n=20, seed=0)
    assert per_draw.shape == (6, 20)
    with pytest.raises(InputError, match="group"):
        grouped_fit.expected_spend(new.drop(columns="group"))


def test_save_load_round_trip(grouped_fit, grouped_data, tmp_path):
    df, _ = grouped_data
    loaded = HierarchicalGammaGamma.load(grouped_fit.save(tmp_path / "hgg"))
    pd.testing.assert_series_equal(loaded.expected_spend(df), grouped_fit.expected_spend(df))
    pd.testing.assert_frame_equal(loaded.param_draws(9, seed=2), grouped_fit.param_draws(9, seed=2))
    assert loaded.summary().shape == grouped_fit.summary().shape


def test_spend_input_errors(cdnow):
    bad = cdnow.copy()
    bad.loc[bad["frequency"] > 0, "monetary_value"] = 0.0
    with pytest.raises(InputError, match="monetary_value must be positive"):
        HierarchicalGammaGamma().fit(bad, draws=10, tune=10)
    with pytest.raises(InputError, match="repeat purchases"):
        HierarchicalGammaGamma().fit(cdnow[cdnow["frequency"] == 0], draws=10, tune=10)


def test_shrinkage_plot_uses_the_spend_family(grouped_fit, grouped_data):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from clvmodels.plotting import plot_hierarchical_shrinkage

    df, _ = grouped_data
    ax = plot_hierarchical_shrinkage(grouped_fit, df)  # default parameter: the family's first
    assert ax.get_xlabel() == "p" == HierarchicalGammaGamma.family_class.param_names[0]
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == [f"{g} (n={n:,})" for g, n in df.groupby("group").size().items()]
    # the hollow markers are the separate Gamma-Gamma maximum-likelihood fits per group
    separate = next(li for li in ax.get_lines() if li.get_label() == "separate fit (no pooling)")
    for g, value in zip(grouped_fit.groups_, separate.get_xdata(), strict=True):
        expected = GammaGamma().fit(df[df["group"] == g]).params_["p"]
        assert value == pytest.approx(expected, rel=1e-6)
    for name in ("q", "v"):
        ax = plot_hierarchical_shrinkage(grouped_fit, parameter=name)
        assert ax.get_xlabel() == name
    plt.close("all")
