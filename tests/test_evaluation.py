"""Tests of clvmodels.evaluation: metrics on arrays, holdout scoring, model comparison."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import clvmodels as clv
from clvmodels import evaluation as ev
from clvmodels.errors import InputError


# --------------------------------------------------------------------------------------------
# metrics on arrays
# --------------------------------------------------------------------------------------------
def test_point_errors_match_hand_computation():
    actual = np.array([0.0, 1.0, 3.0, 0.0])
    predicted = np.array([0.5, 1.0, 1.0, 0.5])
    assert ev.mae(actual, predicted) == pytest.approx((0.5 + 0 + 2 + 0.5) / 4)
    assert ev.rmse(actual, predicted) == pytest.approx(np.sqrt((0.25 + 0 + 4 + 0.25) / 4))
    assert ev.bias(actual, predicted) == pytest.approx((0.5 + 0 - 2 + 0.5) / 4)
    assert ev.total_error(actual, predicted) == pytest.approx(3.0 / 4.0 - 1.0)
    assert np.isnan(ev.total_error([0, 0], [1, 2]))


def test_metrics_reject_misaligned_or_missing_values():
    with pytest.raises(InputError, match="differ in length"):
        ev.mae([1, 2], [1, 2, 3])
    with pytest.raises(InputError, match="non-finite"):
        ev.rmse([1, np.nan], [1, 2])
    with pytest.raises(InputError, match="empty"):
        ev.bias([], [])


def test_spearman_matches_scipy_and_is_nan_for_constant_input():
    rng = np.random.default_rng(0)
    a = rng.poisson(2, 200)
    p = a + rng.normal(0, 1, 200)
    assert ev.spearman(a, p) == pytest.approx(stats.spearmanr(a, p).statistic)
    assert np.isnan(ev.spearman(a, np.ones(200)))


def test_gini_and_top_decile_perfect_random_and_reversed():
    rng = np.random.default_rng(1)
    actual = rng.gamma(0.5, 10, 5000)
    assert ev.gini(actual, actual) == pytest.approx(1.0)
    assert ev.gini(actual, -actual) < -0.9
    assert abs(ev.gini(actual, rng.random(5000))) < 0.05
    # top decile: perfect ranking captures the largest 10 % of values exactly
    top = np.sort(actual)[::-1][:500].sum() / actual.sum()
    assert ev.top_share_capture(actual, actual, 0.1) == pytest.approx(top)
    assert ev.top_share_capture(actual, rng.random(5000), 0.1) == pytest.approx(0.1, abs=0.03)


def test_gain_curve_treats_ties_as_random_order():
    actual = np.array([10.0, 0.0, 0.0, 0.0])
    tied = np.zeros(4)  # every prediction equal: the expected curve is the diagonal
    x, y = ev.gain_curve(actual, tied)
    np.testing.assert_allclose(x, [0, 1])
    np.testing.assert_allclose(y, [0, 1])
    assert ev.top_share_capture(actual, tied, 0.25) == pytest.approx(0.25)
    assert ev.gini(actual, tied) == pytest.approx(0.0)
    # the order of the input rows does not matter
    assert ev.gini(actual[::-1], tied) == pytest.approx(0.0)
    # two customers tied at the top share their value pro rata
    assert ev.top_share_capture([4, 0, 1, 1], [2, 2, 1, 0], 0.25) == pytest.approx(2 / 6)


def test_pit_coverage_is_exact_for_a_calibrated_poisson_forecast():
    rng = np.random.default_rng(2)
    mu = rng.gamma(1.0, 2.0, 20000)
    y = rng.poisson(mu)
    below = stats.poisson.cdf(y - 1, mu)
    at = stats.poisson.cdf(y, mu)
    for level in (0.5, 0.8, 0.9):
        coverage = ev.pit_interval_coverage(below, at, level).mean()
        assert coverage == pytest.approx(level, abs=0.012)
    # an over-dispersed truth against the same Poisson forecast: intervals too narrow
    y_wide = rng.negative_binomial(0.5, 0.5 / (0.5 + mu))
    narrow = ev.pit_interval_coverage(
        stats.poisson.cdf(y_wide - 1, mu), stats.poisson.cdf(y_wide, mu), 0.8
    ).mean()
    assert narrow < 0.7


def test_pit_coverage_single_cases():
    # all mass at one point y: the PIT is uniform on [0, 1], coverage = level
    assert ev.pit_interval_coverage([0.0], [1.0], 0.8)[0] == pytest.approx(0.8)
    # continuous CDF at the median: covered; in the far tail: not
    assert ev.pit_interval_coverage([0.5], [0.5], 0.5)[0] == 1.0
    assert ev.pit_interval_coverage([0.99], [0.99], 0.9)[0] == 0.0
    with pytest.raises(ValueError, match="level"):
        ev.pit_interval_coverage([0.1], [0.2], 1.0)
    assert ev.interval_hit_rate([0, 1, 5], [0, 0, 0], [1, 1, 4]) == pytest.approx(2 / 3)


# --------------------------------------------------------------------------------------------
# scoring fitted models on simulated holdouts with known truth
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def simulated():
    from clvmodels import simulate

    rng = np.random.default_rng(3)
    n = 4000
    s = simulate.simulate_beta_geo(
        n, r=0.25, alpha=4.0, a=0.8, b=2.5, T=rng.uniform(26, 39, n), holdout=39, seed=4
    )
    s = simulate.simulate_gamma_gamma_spend(s, p=6.0, q=4.0, v=15.0, seed=5)
    return s


def test_evaluate_bg_on_its_own_simulation_is_calibrated(simulated):
    bg = clv.BetaGeo().fit(simulated)
    result = ev.evaluate(bg, simulated, n_samples=1000, n_draws=200, seed=0)
    assert result["n_customers"] == len(simulated)
    assert abs(result["purchases_total_error"]) < 0.08
    assert abs(result["purchases_bias"]) < 0.05
    for level in (50, 80, 90):
        assert result[f"coverage_{level}"] == pytest.approx(level / 100, abs=0.03)
        # raw hit rates of discrete intervals over-cover: the reason for the PIT version
        assert result[f"hit_rate_{level}"] >= result[f"coverage_{level}"] - 0.01
    assert result["width_50"] < result["width_80"] < result["width_90"]
    assert result["purchases_gini"] > 0.4
    assert np.isfinite(result["log_score"]) and result["log_score"] < 0
    # the log score equals the mean log of purchase_probability at the observed counts
    sub = simulated.iloc[:50]
    manual = np.mean(
        [
            np.log(bg.purchase_probability(sub.iloc[[i]], 39, int(k)).iloc[0])
            for i, k in enumerate(sub["frequency_holdout"])
        ]
    )
    assert ev.evaluate(bg, sub, intervals=False)["log_score"] == pytest.approx(manual)


def test_wrong_model_scores_worse(simulated):
    """A BG/NBD with the dropout process switched off over-predicts and mis-covers."""
    bg = clv.BetaGeo().fit(simulated)
    good = ev.evaluate(bg, simulated, n_samples=400, n_draws=100)
    bad_model = clv.BetaGeo().fit(simulated)
    bad_model.params_ = bad_model.params_.copy()
    bad_model.params_["a"] = 1e-6  # nobody drops out
    bad = ev.evaluate(bad_model, simulated, n_samples=400, n_draws=100)
    assert bad["purchases_total_error"] > good["purchases_total_error"] + 0.2
    assert bad["purchases_rmse"] > good["purchases_rmse"]
    assert bad["log_score"] < good["log_score"]
    assert abs(bad["coverage_80"] - 0.8) > abs(good["coverage_80"] - 0.8)


def test_compare_models_table_and_baselines(simulated):
    data = simulated.drop(columns=[c for c in simulated.columns if c.startswith("true_")])
    bg = clv.BetaGeo().fit(data)
    gg = clv.GammaGamma().fit(data[data["frequency"] > 0])

    def naive(ch):  # the calibration purchase rate carried forward
        rate = ch["frequency"] / ch["T"]
        return pd.DataFrame(
            {
                "purchases": rate * ch["duration_holdout"],
                "spend": rate * ch["duration_holdout"] * ch["monetary_value"],
            },
            index=ch.index,
        )

    table = ev.compare_models(
        {"bg+gg": (bg, gg), "bg": bg, "naive": naive}, data, n_samples=300, n_draws=100
    )
    assert list(table.index) == ["bg+gg", "bg", "naive"]
    assert table.index.name == "model"
    # the purchase metrics of bg do not depend on the spend model
    assert table.loc["bg+gg", "purchases_mae"] == pytest.approx(table.loc["bg", "purchases_mae"])
    assert np.isnan(table.loc["bg", "spend_mae"])
    assert np.isfinite(table.loc["bg+gg", "spend_mae"])
    assert np.isnan(table.loc["naive", "coverage_90"])  # no predictive distribution
    # the rate-carried-forward baseline ignores dropout and over-predicts
    assert table.loc["naive", "purchases_total_error"] > table.loc["bg", "purchases_total_error"]
    # spend predictions are purchases x expected spend
    spend = bg.expected_purchases(data, 39) * gg.expected_spend(data)
    assert table.loc["bg+gg", "spend_predicted_total"] == pytest.approx(spend.sum())


def test_compare_models_scores_lifetimes_fitter_like_our_engine(simulated):
    from lifetimes import BetaGeoFitter

    data = simulated.drop(columns=[c for c in simulated.columns if c.startswith("true_")])
    fitter = BetaGeoFitter().fit(data["frequency"], data["recency"], data["T"])
    ours = clv.from_lifetimes(fitter, time_unit="W")
    table = ev.compare_models({"lifetimes": fitter, "ours": ours}, data, intervals=False)
    assert table.loc["lifetimes", "purchases_mae"] == pytest.approx(
        table.loc["ours", "purchases_mae"], rel=1e-6
    )


def test_errors_name_the_problem(simulated):
    bg = clv.BetaGeo().fit(simulated)
    with pytest.raises(InputError, match="duration_holdout"):
        ev.evaluate(bg, simulated.drop(columns=["duration_holdout"]))
    with pytest.raises(TypeError, match="purchase model"):
        ev.evaluate(object(), simulated)
    with pytest.raises(InputError, match="non-empty dict"):
        ev.compare_models({}, simulated)
    with pytest.raises(TypeError, match="cannot evaluate"):
        ev.compare_models({"x": 3}, simulated)
    with pytest.raises(InputError, match="monetary_value_holdout"):
        ev.evaluate_predictions(
            simulated.drop(columns=["monetary_value_holdout"]),
            np.zeros(len(simulated)),
            np.zeros(len(simulated)),
        )


def test_ml_baseline_trains_only_on_calibration_period():
    cd = clv.datasets.load_cdnow_transactions("sample")
    ch = clv.datasets.load_cdnow_calibration_holdout("sample")
    baseline = ev.RFMGradientBoosting(cd, calibration_end="1997-09-30", time_unit="W", max_iter=50)
    # a spy: the transactions after calibration_end must not influence the fit
    later = cd.copy()
    later.loc[later["date"] > "1997-09-30", "amount"] *= 100
    baseline_later = ev.RFMGradientBoosting(
        later, calibration_end="1997-09-30", time_unit="W", max_iter=50
    )
    p1 = baseline.predict_holdout(ch)
    p2 = baseline_later.predict_holdout(ch)
    pd.testing.assert_frame_equal(p1, p2)
    assert baseline.target_length_ == pytest.approx(ch["duration_holdout"].iloc[0] / 2, rel=0.05)
    result = ev.evaluate_predictions(ch, p1["purchases"], p1["spend"])
    assert abs(result["purchases_total_error"]) < 0.5
    assert result["purchases_spearman"] > 0.3


def test_pit_coverage_agrees_with_valuation_randomised_pit(simulated):
    """Our non-randomised PIT coverage is the expectation of valuation's randomised one."""
    from clvmodels import valuation

    bg = clv.BetaGeo().fit(simulated)
    samples, _ = ev.predictive_samples(bg, simulated, n_samples=500, n_draws=100, seed=1)
    y = simulated["frequency_holdout"].to_numpy()
    below, at = ev.empirical_cdf_bounds(samples, y)
    ours = ev.pit_interval_coverage(below, at, 0.8).mean()
    theirs = valuation.interval_coverage(samples, y, 0.8, method="randomized", random_seed=0)
    assert ours == pytest.approx(theirs, abs=0.02)


def test_compare_models_scores_the_heuristic_baseline(simulated):
    heuristic = clv.HeuristicCLV(period="1W", level="population").fit(simulated)
    table = ev.compare_models({"heuristic": heuristic}, simulated, intervals=False)
    purchases = heuristic.expected_purchases(simulated, 39)
    assert table.loc["heuristic", "purchases_predicted_total"] == pytest.approx(purchases.sum())
    assert table.loc["heuristic", "spend_predicted_total"] == pytest.approx(
        purchases.sum() * heuristic.aov_
    )
    assert np.isnan(table.loc["heuristic", "purchases_spearman"])  # one value for everyone


class PosteriorStandIn:
    """A stand-in for a Bayesian model: MLE asymptotic draws act as the posterior; the
    likelihood comes from the fitted model's family."""

    kind = "purchase"

    def __init__(self, fitted):
        import arviz as az

        self.fitted = fitted
        self.family_ = fitted.family_
        self.idata_ = az.from_dict(posterior={"r": np.ones((1, 10))})

    def param_draws(self, n, seed=None):
        return self.fitted.param_draws(n, seed=seed)

    def customer_params(self, summary, draws=None):
        return self.fitted.customer_params(summary, draws)


def test_loo_and_waic_from_posterior_draws(simulated):
    from clvmodels.families.bg_nbd import log_likelihood

    bg = clv.BetaGeo().fit(simulated)
    model = PosteriorStandIn(bg)
    scores = ev._bayesian_scores(model, simulated, n_draws=400, seed=0)
    # with a flat-ish posterior around the MLE: elpd_loo = lppd - p_loo, p_loo ~ 4 parameters
    assert scores["p_loo"] == pytest.approx(4, abs=2)
    assert scores["elpd_loo"] == pytest.approx(bg.log_likelihood_ - 4, abs=3)
    assert scores["elpd_waic"] == pytest.approx(scores["elpd_loo"], abs=1)
    assert scores["elpd_loo_se"] > 0
    # an idata that carries its own log_likelihood group is used as is
    import arviz as az

    draws = bg.param_draws(200, seed=1)
    x, t_x, T = (simulated[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    values = log_likelihood(*(draws[k].to_numpy()[:, None] for k in bg.param_names), x, t_x, T)
    model.idata_ = az.from_dict(
        posterior={"r": draws["r"].to_numpy()[None]}, log_likelihood={"y": values[None]}
    )
    direct = ev._bayesian_scores(model, simulated)
    assert direct["elpd_loo"] == pytest.approx(float(az.loo(model.idata_).elpd_loo))
    # models without idata_ get no Bayesian scores
    assert ev._bayesian_scores(bg, simulated) == {}


def test_loo_and_waic_warnings_reach_the_user(simulated, monkeypatch):
    """ArviZ's own warnings (unreliable PSIS, WAIC variance) and its failures are passed on as
    warnings naming the model, never silenced."""
    import arviz as az

    bg = clv.BetaGeo().fit(simulated)
    model = PosteriorStandIn(bg)

    def loo_with_warning(idata, *args, **kwargs):
        import warnings

        warnings.warn("Estimated shape parameter of Pareto distribution is greater than 0.7",
                      UserWarning, stacklevel=2)  # fmt: skip
        return real_loo(idata, *args, **kwargs)

    def broken_waic(idata, *args, **kwargs):
        raise ValueError("no log likelihood")

    real_loo = az.loo
    monkeypatch.setattr(az, "loo", loo_with_warning)
    monkeypatch.setattr(az, "waic", broken_waic)
    with pytest.warns(UserWarning, match="PosteriorStandIn: ArviZ LOO: Estimated shape"):
        with pytest.warns(RuntimeWarning, match="ArviZ WAIC failed: no log likelihood"):
            scores = ev._bayesian_scores(model, simulated.iloc[:500], n_draws=50, seed=0)
    assert "elpd_loo" in scores and "elpd_waic" not in scores
