"""The predictive samplers (future purchases and spend) against the closed forms.

The samplers draw the latent state once per (draw, customer), the purchase total only for the
alive paths and the per-period split only for the paths that buy (see
``clvmodels.families.bg_nbd.sample_bg_family_periods``); these tests check that the result has
the distribution of the model: Monte-Carlo means of the cumulative counts at every grid time
against the family's ``expected_purchases``, P(count = k) against ``purchase_probability``, spend
means against the Gamma-Gamma closed form, for shared ``(n_draws, 1)`` and grouped
``(n_draws, n_customers)`` parameter arrays, and the sparse form used by valuation against the
dense protocol.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clvmodels import registry, valuation
from clvmodels.families import bg_nbd as bgm
from clvmodels.families import gamma_gamma as ggm
from clvmodels.families import sampling
from clvmodels.families.base import PurchaseFamily
from clvmodels.families.bg_nbd import BetaGeoNBDFamily
from clvmodels.families.gamma_gamma import GammaGammaFamily
from clvmodels.families.mbg_nbd import ModifiedBetaGeoNBDFamily
from clvmodels.families.pareto_nbd import ParetoNBDFamily

BetaGeo, GammaGamma = registry.class_by_name("BetaGeo"), registry.class_by_name("GammaGamma")

N_DRAWS = 20_000
X = np.array([0.0, 2.0, 7.0, 1.0])
T_X = np.array([0.0, 30.43, 35.0, 2.0])
T = np.array([38.86, 38.86, 38.86, 20.0])
# monthly-like periods plus an unequal last one, so both placement routes are exercised
GRID = np.array([4.0, 8.0, 12.0, 16.0, 20.0, 26.0])

MODELS = {
    "bg": (BetaGeoNBDFamily(), {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}),
    "mbg": (ModifiedBetaGeoNBDFamily(), {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}),
    "pareto": (ParetoNBDFamily(), {"r": 0.553, "alpha": 10.58, "s": 0.606, "beta": 11.67}),
}


def _model(cls, values: dict):
    """A fitted model with the given parameters (and a small asymptotic covariance)."""
    k = len(values)
    return cls.from_dict(
        {
            "class": cls.__name__,
            "time_unit": "W",
            "params": values,
            "log_covariance": (1e-4 * np.eye(k)).tolist(),
            "log_likelihood": 0.0,
            "converged": True,
            "optimizer_message": "",
            "n_customers": 1000,
        }
    )


def _shared(values: dict, n: int) -> dict:
    return {k: np.full((n, 1), v) for k, v in values.items()}


def _grouped(values: dict, n: int) -> dict:
    # a different parameter set per customer column (as a hierarchical model hands out)
    scale = np.array([1.0, 1.3, 0.8, 1.1])
    return {k: np.broadcast_to(v * scale, (n, len(scale))).copy() for k, v in values.items()}


def _column(params: dict, j: int) -> dict:
    return {k: v[:1, min(j, v.shape[1] - 1)][:, None] for k, v in params.items()}


@pytest.mark.parametrize("layout", ["shared", "grouped"])
@pytest.mark.parametrize("name", list(MODELS))
def test_future_purchases_match_closed_forms(name, layout):
    model, values = MODELS[name]
    params = (_shared if layout == "shared" else _grouped)(values, N_DRAWS)
    rng = np.random.default_rng(7)
    counts = model.sample_future_purchases(params, X, T_X, T, GRID, rng)
    assert counts.shape == (N_DRAWS, len(X), len(GRID)) and counts.dtype == np.int64
    assert (np.diff(counts, axis=-1) >= 0).all() and (counts >= 0).all()
    for i in range(len(X)):
        p_i = _column(params, i)
        xi, txi, Ti = X[i : i + 1], T_X[i : i + 1], T[i : i + 1]
        expected = np.array([model.expected_purchases(p_i, xi, txi, Ti, t)[0, 0] for t in GRID])
        mc = counts[:, i, :].mean(axis=0)
        se = counts[:, i, :].std(axis=0) / np.sqrt(N_DRAWS)
        assert np.all(np.abs(mc - expected) < 4.5 * se + 1e-4), (i, mc, expected)
        # per-period means: differences of the closed form
        per = np.diff(counts[:, i, :], axis=-1, prepend=0)
        per_se = per.std(axis=0) / np.sqrt(N_DRAWS)
        per_expected = np.diff(expected, prepend=0.0)
        assert np.all(np.abs(per.mean(axis=0) - per_expected) < 4.5 * per_se + 1e-4)
        # the distribution of the total, P(X = k) for small k
        for k in range(4):
            prob = model.purchase_probability(p_i, xi, txi, Ti, GRID[-1], k)[0, 0]
            freq = (counts[:, i, -1] == k).mean()
            tol = 4.5 * np.sqrt(prob * (1 - prob) / N_DRAWS) + 1e-4
            assert abs(freq - prob) < tol, (i, k, freq, prob)


@pytest.mark.parametrize("name", list(MODELS))
def test_sparse_form_matches_dense(name):
    model, values = MODELS[name]
    params = _shared(values, 50)
    grid = np.array([1.0, 2.0, 3.0])
    dense = model.sample_future_purchases(params, X, T_X, T, grid, np.random.default_rng(3))
    shape, pairs, per = model.sample_future_purchase_periods(
        params, X, T_X, T, grid, np.random.default_rng(3)
    )
    assert tuple(shape) == (50, len(X)) and per.shape == (len(pairs), len(grid))
    assert (per.sum(axis=1) > 0).all()
    np.testing.assert_array_equal(sampling.cumulative_counts(shape, pairs, per), dense)
    # an empty or zero-length horizon buys nothing
    for empty in (np.zeros(0), np.array([0.0, 0.0])):
        out = model.sample_future_purchases(params, X, T_X, T, empty, np.random.default_rng())
        assert out.shape == (50, len(X), len(empty)) and not out.any()


def test_allocation_to_periods_is_multinomial():
    rng = np.random.default_rng(11)
    grid = np.array([1.0, 1.0, 3.0, 6.0, 6.5])  # includes an empty period
    n = np.repeat([1, 5, 40, 300], 20_000)  # both the one-by-one and the multinomial route
    span = np.repeat([6.5, 4.0, 6.5, 2.0], 20_000)
    start = np.repeat([0.0, 0.5, 2.5, 0.0], 20_000)
    out = sampling.allocate_to_periods(n, span, grid, rng, start=start)
    np.testing.assert_array_equal(out.sum(axis=1), n)
    assert not out[:, 1].any()
    for total, s, a in ((1, 6.5, 0.0), (5, 4.0, 0.5), (40, 6.5, 2.5), (300, 2.0, 0.0)):
        rows = (n == total) & (span == s)
        share = np.diff(np.clip(grid, a, s), prepend=a) / (s - a)
        mean = out[rows].mean(axis=0)
        se = np.sqrt(total * share * (1 - share) / rows.sum())
        assert np.all(np.abs(mean - total * share) < 4.5 * se + 1e-9), (total, mean)


@pytest.mark.parametrize("layout", ["shared", "grouped"])
def test_future_spend_matches_closed_form(layout):
    values = {"p": 6.25, "q": 3.74, "v": 15.44}
    params = (_shared if layout == "shared" else _grouped)(values, N_DRAWS)
    x = np.array([0.0, 1.0, 5.0, 2.0])
    m = np.array([0.0, 30.0, 50.0, 12.0])
    counts = np.zeros((N_DRAWS, 4, 3), dtype=np.int64)
    counts[:, :, 0] = 1
    counts[:, :, 2] = 3
    counts[: N_DRAWS // 2, 3, :] = 0  # half the paths of customer 3 buy nothing
    spend = GammaGammaFamily().sample_future_spend(params, x, m, counts, np.random.default_rng(5))
    assert spend.shape == counts.shape
    assert (spend[counts == 0] == 0).all() and (spend[counts > 0] > 0).all()
    for i in range(4):
        p_i = _column(params, i)
        per_purchase = GammaGammaFamily().expected_spend(p_i, x[i : i + 1], m[i : i + 1])[0, 0]
        for k in (0, 2):
            sample = spend[:, i, k]
            expected = counts[:, i, k].mean() * per_purchase
            se = sample.std() / np.sqrt(N_DRAWS)
            assert abs(sample.mean() - expected) < 4.5 * se, (i, k, sample.mean(), expected)
    # the periods of one path share the latent spend level nu: positively correlated
    both = spend[:, 1, [0, 2]]
    assert np.corrcoef(both.T)[0, 1] > 0.1


def test_spend_sampler_broadcasts_counts_and_skips_non_buyers():
    rng = np.random.default_rng(0)
    counts = np.array([[0, 0], [2, 0]])
    out = ggm.sample_future_spend(6.0, 4.0, 15.0, np.array([0.0, 3.0]), np.array([0.0, 9.0]),
                                  counts, rng)  # fmt: skip
    assert out.shape == (2, 2) and out[0].sum() == 0 and out[1, 0] > 0 and out[1, 1] == 0


def test_bg_latent_sampling_with_vanishing_b():
    # regression: an extreme asymptotic draw (apparel data, 78-week calibration) had b ~ 1e-17;
    # b + x - 1 rounded to 0 for x = 1 and numpy's beta raised "b <= 0"
    rng = np.random.default_rng(1)
    x = np.array([0.0, 1.0, 1.0, 4.0])
    t_x = np.array([0.0, 1.0, 30.0, 20.0])
    T = np.full(4, 78.0)
    for b in (1e-17, 0.0):  # 0.0: the draw underflowed
        params = {"r": np.full((50, 1), 0.3), "alpha": np.full((50, 1), 5.0),
                  "a": np.full((50, 1), 0.8), "b": np.full((50, 1), b)}  # fmt: skip
        alive, lam, p = BetaGeoNBDFamily().sample_latent(params, x, t_x, T, rng).values()
        assert np.isfinite(lam).all() and np.isfinite(p).all()
        assert ((p >= 0) & (p <= 1)).all()
        counts = BetaGeoNBDFamily().sample_future_purchases(params, x, t_x, T, GRID, rng)
        assert (counts >= 0).all()
        p_m = ModifiedBetaGeoNBDFamily().sample_latent(params, x, t_x, T, rng)["p"]
        assert np.isfinite(p_m).all()
    # P(alive) with b -> 0 for x = 1: a / (b + 0) is huge, the customer is (nearly) surely gone
    alive = bgm.probability_alive(0.3, 5.0, 0.8, 1e-17, 1.0, 1.0, 78.0)
    assert 0 <= alive < 1e-15


def test_valuation_sparse_and_dense_routes_agree():
    """Valuation uses the family's sparse ``sample_future_purchase_periods`` and the base
    class's derivation from the dense sampler otherwise; both give the same distribution."""

    class DenseOnly(BetaGeoNBDFamily):
        sample_future_purchase_periods = PurchaseFamily.sample_future_purchase_periods

    values = MODELS["bg"][1]
    rng = np.random.default_rng(0)
    n = 300
    x = rng.integers(0, 6, n).astype(float)
    T = rng.uniform(10, 40, n)
    t_x = np.where(x > 0, T * rng.uniform(0.2, 1.0, n), 0.0)
    summary = pd.DataFrame(
        {"frequency": x, "recency": t_x, "T": T, "monetary_value": np.where(x > 0, 30.0, 0.0)}
    )
    summary.attrs["time_unit"] = "W"
    gg = _model(GammaGamma, {"p": 6.25, "q": 3.74, "v": 15.44})
    totals = {}
    for cls in (BetaGeoNBDFamily, DenseOnly):
        bg = _model(BetaGeo, values)
        bg.family_ = cls()
        out = valuation.lifetime_value(
            bg, gg, summary, horizon="26W", period="4W", kind="predictive", draws=400,
            random_seed=5,
        )  # fmt: skip
        totals[cls] = out["clv_mean"].to_numpy()
    a, b = totals[BetaGeoNBDFamily], totals[DenseOnly]
    assert abs(a.sum() - b.sum()) < 0.05 * a.sum()
    np.testing.assert_allclose(a, b, rtol=0.35, atol=2.0)
