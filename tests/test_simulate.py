"""Simulators: moments against closed forms, exactness against an event-by-event reference."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clvmodels import simulate as sim
from clvmodels.validation import validate_summary

BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # CDNOW BG/NBD (FHL 2005)
PNBD = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}  # CDNOW Pareto/NBD
GG = {"p": 6.25, "q": 3.74, "v": 15.44}  # CDNOW Gamma-Gamma (FHL 2005b)


def reference_beta_geo(n, r, alpha, a, b, T, seed, modified=False):
    """Event-by-event BG/NBD (or MBG/NBD) simulation, one customer at a time."""
    rng = np.random.default_rng(seed)
    x = np.zeros(n, dtype=int)
    rec = np.zeros(n)
    alive = np.zeros(n, dtype=bool)
    for i in range(n):
        lam, p = rng.gamma(r, 1 / alpha), rng.beta(a, b)
        t, k, is_alive = 0.0, 0, True
        if modified and rng.uniform() < p:
            is_alive = False
        while is_alive:
            t += rng.exponential(1 / lam)
            if t > T:
                break
            k, rec[i] = k + 1, t
            if rng.uniform() < p:
                is_alive = False
        x[i], alive[i] = k, is_alive
    return x, rec, alive


def reference_pareto_nbd(n, r, alpha, s, beta, T, seed):
    rng = np.random.default_rng(seed)
    x = np.zeros(n, dtype=int)
    rec = np.zeros(n)
    for i in range(n):
        lam, mu = rng.gamma(r, 1 / alpha), rng.gamma(s, 1 / beta)
        tau = rng.exponential(1 / mu)
        t = 0.0
        while True:
            t += rng.exponential(1 / lam)
            if t > min(T, tau):
                break
            x[i], rec[i] = x[i] + 1, t
    return x, rec


@pytest.mark.parametrize("modified", [False, True])
def test_beta_geo_matches_event_by_event_reference(modified):
    n, T = 20_000, 39.0
    fn = sim.simulate_modified_beta_geo if modified else sim.simulate_beta_geo
    fast = fn(n, **BG, T=T, seed=1)
    x, rec, alive = reference_beta_geo(n, **BG, T=T, seed=2, modified=modified)
    # same distribution: counts, recency of repeaters, share alive
    assert stats.ks_2samp(fast["frequency"], x).pvalue > 1e-3
    assert stats.ks_2samp(fast.loc[fast.frequency > 0, "recency"], rec[x > 0]).pvalue > 1e-3
    assert abs(fast["true_alive"].mean() - alive.mean()) < 0.02
    # recency of repeaters given x: the x-th event lies in (0, T]
    rep = fast[fast.frequency > 0]
    assert (rep.recency > 0).all() and (rep.recency <= T).all()
    assert (fast.loc[fast.frequency == 0, "recency"] == 0).all()


def test_pareto_nbd_matches_event_by_event_reference():
    n, T = 20_000, 39.0
    fast = sim.simulate_pareto_nbd(n, **PNBD, T=T, seed=3)
    x, rec = reference_pareto_nbd(n, **PNBD, T=T, seed=4)
    assert stats.ks_2samp(fast["frequency"], x).pvalue > 1e-3
    assert stats.ks_2samp(fast.loc[fast.frequency > 0, "recency"], rec[x > 0]).pvalue > 1e-3
    assert ((fast.true_lifetime > fast["T"]) == fast.true_alive).all()
    # dead customers bought nothing after they died
    dead = fast[~fast.true_alive & (fast.frequency > 0)]
    assert (dead.recency <= dead.true_lifetime).all()


@pytest.mark.parametrize(
    ("fn", "params", "closed_form"),
    [
        (sim.simulate_beta_geo, BG, sim.expected_frequency_beta_geo),
        (sim.simulate_modified_beta_geo, BG, sim.expected_frequency_modified_beta_geo),
        (sim.simulate_pareto_nbd, PNBD, sim.expected_frequency_pareto_nbd),
    ],
)
def test_mean_frequency_matches_closed_form_including_holdout(fn, params, closed_form):
    n = 400_000
    df = fn(n, **params, T=39.0, holdout="39W", seed=5)
    for total, t in ((df.frequency, 39.0), (df.frequency + df.frequency_holdout, 78.0)):
        expected = closed_form(t, **params)
        se = total.std() / np.sqrt(n)
        assert abs(total.mean() - expected) < 4 * se, (t, total.mean(), expected)
    assert (df.duration_holdout == 39.0).all()
    # nobody buys in the holdout after being inactive at T
    assert (df.loc[~df.true_alive, "frequency_holdout"] == 0).all()
    assert (df.true_alive | ~df.true_alive_holdout_end).all()


def test_summary_contract_and_latent_columns():
    df = sim.simulate_beta_geo(1000, **BG, T=np.linspace(1, 52, 1000), seed=0, time_unit="W")
    assert df.index.name == "customer_id"
    assert df.attrs["time_unit"] == "W"
    assert df.attrs["simulation"]["model"] == "beta_geo"
    assert df.attrs["simulation"]["alpha"] == pytest.approx(BG["alpha"])
    assert {"true_lambda", "true_p", "true_alive"} <= set(df.columns)
    validate_summary(df)  # a valid summary that models accept as is
    assert np.allclose(df["T"], np.linspace(1, 52, 1000))
    assert (df.recency <= df["T"]).all()


def test_seed_reproducible_and_T_string_converted():
    a = sim.simulate_pareto_nbd(500, **PNBD, T="1Y", seed=11, time_unit="W")
    b = sim.simulate_pareto_nbd(500, **PNBD, T=365.25 / 7, seed=11, time_unit="W")
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(sim.simulate_pareto_nbd(500, **PNBD, T="1Y", seed=12))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="parameter alpha"):
        sim.simulate_beta_geo(10, 0.2, -1.0, 1, 1)
    with pytest.raises(ValueError, match="one value per customer"):
        sim.simulate_beta_geo(10, **BG, T=np.ones(3))
    with pytest.raises(ValueError, match="n_customers"):
        sim.simulate_beta_geo(-1, **BG)


def test_gamma_gamma_spend_moments():
    df = sim.simulate_beta_geo(300_000, **BG, T=39.0, holdout=39, seed=6)
    out = sim.simulate_gamma_gamma_spend(df, **GG, seed=7)
    assert out.attrs["time_unit"] == "W" and out.index.equals(df.index)
    rep = out[out.frequency > 0]
    pop_mean = GG["p"] * GG["v"] / (GG["q"] - 1)
    assert rep.monetary_value.mean() == pytest.approx(pop_mean, rel=0.02)
    assert out.true_mean_spend.mean() == pytest.approx(pop_mean, rel=0.02)
    assert (out.loc[out.frequency == 0, "monetary_value"] == 0).all()
    assert (out.loc[out.frequency_holdout == 0, "monetary_value_holdout"] == 0).all()
    # given nu, E[zbar] = p / nu: regress monetary value on the truth for customers with many buys
    many = out[out.frequency >= 10]
    ratio = many.monetary_value / many.true_mean_spend
    assert ratio.mean() == pytest.approx(1.0, abs=0.02)
    # from a plain array
    arr = sim.simulate_gamma_gamma_spend(np.array([0, 1, 5]), **GG, seed=1)
    assert list(arr.columns) == ["frequency", "monetary_value", "true_mean_spend"]


def test_grouped_population_has_group_specific_behaviour():
    gp = pd.DataFrame(
        {"r": [0.2, 2.0], "alpha": [4.0, 4.0], "a": [0.8, 0.8], "b": [2.4, 2.4]},
        index=["low", "high"],
    )
    spend = {"low": {"p": 6, "q": 4, "v": 15}, "high": {"p": 6, "q": 4, "v": 60}}
    df = sim.simulate_grouped_beta_geo(
        {"low": 50_000, "high": 30_000}, gp, T=39, spend_params=spend, holdout=39, seed=8
    )
    assert list(df.group.unique()) == ["low", "high"]
    assert (df.group == "low").sum() == 50_000
    for g, params in gp.iterrows():
        sub = df[df.group == g]
        expected = sim.expected_frequency_beta_geo(39.0, **params)
        assert sub.frequency.mean() == pytest.approx(expected, rel=0.05)
        assert sub.true_lambda.mean() == pytest.approx(params.r / params.alpha, rel=0.03)
    high = df[(df.group == "high") & (df.frequency > 0)].monetary_value.mean()
    low = df[(df.group == "low") & (df.frequency > 0)].monetary_value.mean()
    assert high / low == pytest.approx(4.0, rel=0.1)
    assert df.attrs["group_params"]["high"]["r"] == 2.0
    assert "monetary_value_holdout" in df.columns


def test_draw_group_params_and_missing_group():
    pop = {"r": 0.24, "alpha": 4.4, "a": 0.8, "b": 2.4}
    table = sim.draw_group_params(["x", "y", "z"], pop, sigma=0.2, seed=1)
    assert list(table.index) == ["x", "y", "z"] and list(table.columns) == list(pop)
    assert (table > 0).all().all()
    with pytest.raises(ValueError, match="group 'w'"):
        sim.simulate_grouped_beta_geo({"w": 10}, table, seed=1)
    with pytest.raises(ValueError, match="missing parameter"):
        sim.simulate_grouped_beta_geo({"x": 10}, table.drop(columns="b"), seed=1)


def test_transactions_have_dates_and_match_truth():
    tx, truth = sim.simulate_transactions(20_000, seed=9, extra_lines_mean=0.5)
    assert list(tx.columns) == ["customer_id", "date", "amount"]
    assert tx.date.dtype.kind == "M" and tx.amount.dtype == np.float64
    assert (tx.date == tx.date.dt.floor("D")).all()
    assert tx.date.max() <= pd.Timestamp("2021-12-31")
    assert tx.date.min() >= pd.Timestamp("2020-01-01")
    # every customer appears, with at least (1 + true repeats) distinct days unless some
    # repeats fall on one calendar day
    lines = tx.groupby("customer_id").size()
    assert lines.index.equals(pd.RangeIndex(20_000))
    assert (lines >= 1).all()
    assert lines.sum() > (truth.frequency + 1).sum()  # extra same-day lines exist
    days = tx.groupby("customer_id").date.nunique()
    assert (days <= truth.frequency + 1).all()
    assert (days == truth.frequency + 1).mean() > 0.95
    first = tx.groupby("customer_id").date.min()
    assert (first == truth.first_purchase.dt.floor("D")).all()


def test_transactions_summarise_back_to_the_truth():
    from clvmodels.data import rfm_summary

    tx, truth = sim.simulate_transactions(5_000, seed=10, resolution="h", time_unit="W")
    s = rfm_summary(tx, observation_end=truth.attrs["observation_end"], time_unit="W",
                    purchase_period="H")  # fmt: skip
    assert s.index.equals(truth.index)
    same = s.frequency == truth.frequency  # differs only if two purchases share an hour
    assert same.mean() > 0.995
    hour = 1 / (24 * 7)
    assert (np.abs(s.recency - truth.recency)[same] <= hour + 1e-9).all()
    assert (np.abs(s["T"] - truth["T"]) <= hour + 1e-9).all()


# --------------------------------------------------------------------------------------------
# one generative process: the family's
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fn", "cli_name", "params"),
    [
        (sim.simulate_beta_geo, "bgnbd", BG),
        (sim.simulate_modified_beta_geo, "mbgnbd", BG),
        (sim.simulate_pareto_nbd, "pareto", PNBD),
    ],
)
def test_simulators_draw_from_the_family(fn, cli_name, params):
    """The simulators are thin wrappers around the family's ``simulate``: the same seed gives
    the same customers, and parameter draws (rows) broadcast against the customers."""
    from clvmodels import registry

    family = registry.estimator_class("purchase", cli_name).family_class()
    T = np.linspace(1.0, 80.0, 500)
    df = fn(500, **params, T=T, holdout=26.0, seed=4)
    drawn = family.simulate(params, T, 26.0, np.random.default_rng(4))
    assert list(df.columns) == list(drawn)
    for name, values in drawn.items():
        np.testing.assert_array_equal(df[name].to_numpy(), values, err_msg=name)
    # two parameter draws x 500 customers
    rows = {k: np.array([[v], [2 * v]]) for k, v in params.items()}
    two = family.simulate(rows, T, None, np.random.default_rng(5))
    assert two["frequency"].shape == two["recency"].shape == (2, 500)
    assert (two["recency"] <= two["T"]).all() and (two["frequency"] >= 0).all()


def test_gamma_gamma_spend_draws_from_the_family():
    from clvmodels import registry

    family = registry.estimator_class("spend", "gamma-gamma").family_class()
    base = sim.simulate_beta_geo(400, **BG, T=52.0, holdout=26.0, seed=6)
    df = sim.simulate_gamma_gamma_spend(base, **GG, seed=7)
    drawn = family.simulate(
        GG, base["frequency"], np.random.default_rng(7), frequency_holdout=base["frequency_holdout"]
    )
    for name, values in drawn.items():
        np.testing.assert_array_equal(df[name].to_numpy(), values, err_msg=name)


def test_expected_frequency_is_the_familys_new_customer_expectation():
    """The closed forms used to check the simulators are the families' E[X(t)] (FHL 2005
    eq. (9); BDF 2007; SMC 1987 eq. (17)), here against their printed formulas."""
    from scipy.special import hyp2f1

    t = np.array([0.5, 10.0, 52.0, 300.0])
    r, alpha, a, b = BG.values()
    z = t / (alpha + t)
    bg = (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, z))
    mbg = b / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b + 1, a + b, z))
    r, alpha, s, beta = PNBD.values()
    pnbd = r * beta / (alpha * (s - 1)) * (1 - (beta / (beta + t)) ** (s - 1))
    np.testing.assert_allclose(sim.expected_frequency_beta_geo(t, **BG), bg, rtol=1e-10)
    np.testing.assert_allclose(sim.expected_frequency_modified_beta_geo(t, **BG), mbg, rtol=1e-10)
    np.testing.assert_allclose(sim.expected_frequency_pareto_nbd(t, **PNBD), pnbd, rtol=1e-10)


def test_frequency_predictive_check_of_a_fitted_model():
    """The predictive check of any purchase model: the family's generative process at parameter
    draws (here the asymptotic draws of an MLE), per group, against the observed histogram."""
    import clvmodels as clv

    df = sim.simulate_beta_geo(3000, **BG, T=np.linspace(20.0, 60.0, 3000), seed=8)
    summary = df[["frequency", "recency", "T"]].copy()
    summary.attrs["time_unit"] = "W"
    model = clv.BetaGeo().fit(summary)
    params = model.customer_params(summary, model.param_draws(60, seed=0))
    groups = np.where(summary.index % 2 == 0, "even", "odd")
    table = sim.frequency_predictive_check(
        model.family_, params, summary, groups=groups, max_frequency=5, seed=1
    )
    assert list(table.index.get_level_values(0).unique()) == ["even", "odd"]
    assert table.loc["even", "observed"].sum() == 1500 == table.loc["odd", "observed"].sum()
    assert (table["simulated_lower"] <= table["simulated_mean"]).all()
    assert (table["simulated_mean"] <= table["simulated_upper"]).all()
    # the fitted model reproduces the histogram it was fitted on (within its 90% range, a
    # little slack for the 12 bins checked at once)
    inside = (table["simulated_lower"] * 0.9 - 3 <= table["observed"]) & (
        table["observed"] <= table["simulated_upper"] * 1.1 + 3
    )
    assert inside.all(), table
    again = sim.frequency_predictive_check(
        model.family_, params, summary, groups=groups, max_frequency=5, seed=1
    )
    pd.testing.assert_frame_equal(table, again)
    whole = sim.frequency_predictive_check(model.family_, model.customer_params(summary), summary)
    assert list(whole.index.get_level_values(0).unique()) == ["(all)"]
