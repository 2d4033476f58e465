"""Property tests (hypothesis) for the Pareto/NBD math over extreme inputs.

Parameters anywhere in [1e-3, 1e3], up to 5,000 purchases, ages up to 10,000 periods: the
log-likelihood and its gradient are finite, P(alive) lies in [0, 1], expected purchases are
finite, non-negative and non-decreasing in the horizon, P(X = k) is a sub-distribution whose
missing mass is bounded by Markov's inequality, the two evaluation routes of the dropout
integral (per customer; shared gaps between time points) agree, and the future-purchase sampler
returns non-decreasing counts.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clvmodels.families import pareto_nbd as pn

FAMILY = pn.ParetoNBDFamily()

positive = st.floats(min_value=-3.0, max_value=3.0).map(lambda v: float(10.0**v))
params = st.tuples(positive, positive, positive, positive)

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def customers(draw, max_n: int = 6, whole: bool = False):
    """Customers with x in [0, 5000], T in [0, 1e4], 0 <= t_x <= T (t_x = 0 when x = 0);
    ``whole`` rounds times to whole periods so that customers share time points."""
    n = draw(st.integers(min_value=2, max_value=max_n))
    x = np.array(draw(st.lists(st.integers(0, 5000), min_size=n, max_size=n)), dtype=float)
    T = np.array(draw(st.lists(st.floats(0.0, 1e4), min_size=n, max_size=n)))
    share = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    if whole:
        T = np.round(T)
        t_x = np.round(share * T)
    else:
        t_x = share * T
    t_x = np.where(x > 0, t_x, 0.0)
    return x, t_x, T


@SETTINGS
@given(values=params, data=customers())
def test_likelihood_alive_and_gradient_are_finite(values, data):
    x, t_x, T = data
    ll = pn.log_likelihood(*values, x, t_x, T)
    assert np.all(np.isfinite(ll)), ll
    alive = pn.probability_alive(*values, x, t_x, T)
    assert np.all(np.isfinite(alive)) and np.all((alive >= 0) & (alive <= 1)), alive
    # a customer observed up to their last purchase cannot have died: P(alive) = 1
    assert np.all(alive[t_x == T] == 1.0)
    value, grad = pn.negative_log_likelihood(np.log(values), x, t_x, T, np.ones(len(x)))
    assert np.isfinite(value) and np.all(np.isfinite(grad)), (value, grad)


@SETTINGS
@given(
    values=params,
    data=customers(),
    ts=st.lists(st.floats(min_value=0.0, max_value=1e4), min_size=2, max_size=6),
)
def test_expected_purchases_are_non_negative_and_non_decreasing(values, data, ts):
    x, t_x, T = data
    ts = np.sort(np.r_[0.0, ts])
    expected = np.array([pn.conditional_expected_purchases(*values, x, t_x, T, t) for t in ts])
    assert np.all(np.isfinite(expected)), expected
    assert np.all(expected >= 0)
    assert np.all(expected[0] == 0)
    assert np.all(np.diff(expected, axis=0) >= -1e-12 * np.abs(expected[1:])), expected
    new = pn.expected_purchases_new_customer(*values, ts)
    assert np.all(np.isfinite(new)) and new[0] == 0 and np.all(np.diff(new) >= -1e-12 * new[1:])


@settings(
    max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(values=params, data=customers(max_n=3), t=st.floats(min_value=1e-3, max_value=1e3))
def test_purchase_probabilities_form_a_distribution(values, data, t):
    x, t_x, T = data
    K = 60
    ks = np.arange(K + 1)[:, None]
    probs = pn.conditional_purchase_probability(*values, x, t_x, T, t, ks)
    assert np.all(np.isfinite(probs)), probs
    assert np.all((probs >= 0) & (probs <= 1 + 1e-12))
    total = probs.sum(axis=0)
    expected = pn.conditional_expected_purchases(*values, x, t_x, T, t)
    assert np.all(total <= 1 + 1e-8), total
    # Markov: P(X > K) <= E[X] / (K + 1)
    assert np.all(total >= 1 - expected / (K + 1) - 1e-8), (total, expected)


@SETTINGS
@given(values=params, data=customers(max_n=12, whole=True))
def test_grouped_and_per_customer_integrals_agree(values, data):
    x, t_x, T = data
    n = len(x)
    # repeat the customers so that the shared-gap route is used
    xs, txs, Ts = (np.tile(v, 40) for v in (x, t_x, T))
    plan = pn._GroupPlan(xs, txs, Ts)
    grouped, _ = pn._log_dead_grouped(*values, xs, txs, Ts, plan=plan)
    r, alpha, s, beta = values
    direct, _ = pn._log_dropout_integral(
        r + xs, alpha + txs, np.full(len(xs), s + 1.0), beta + txs, Ts - txs
    )
    finite = np.isfinite(direct)
    assert np.array_equal(finite, np.isfinite(grouped))
    np.testing.assert_allclose(grouped[finite], direct[finite], rtol=1e-9, atol=1e-9)
    assert np.all(direct[~finite] == -np.inf) and np.all(Ts[~finite] == txs[~finite])
    assert len(grouped) == 40 * n


@settings(
    max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(values=params, data=customers(max_n=4), seed=st.integers(0, 2**16))
def test_sampler_counts_are_valid(values, data, seed):
    x, t_x, T = data
    rng = np.random.default_rng(seed)
    p = {k: np.full((5, 1), v) for k, v in zip(pn.PARAM_NAMES, values, strict=True)}
    grid = np.array([0.0, 1.0, 10.0, 100.0])
    counts = FAMILY.sample_future_purchases(p, x, t_x, T, grid, rng)
    assert counts.shape == (5, len(x), 4)
    assert np.all(counts >= 0) and np.all(counts[..., 0] == 0)
    assert np.all(np.diff(counts, axis=-1) >= 0)
    alive, lam, mu = pn.sample_latent(*values, x, t_x, T, rng)
    assert alive.shape == lam.shape == mu.shape == x.shape
    assert np.all(lam >= 0) and np.all(mu >= 0)
