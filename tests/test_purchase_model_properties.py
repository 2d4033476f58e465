"""Property tests over extreme inputs for every maximum-likelihood purchase model.

For any parameters in [1e-3, 1e3] and any customer history (up to 20,000 purchases, tenures up
to 1e5 periods): the log-likelihood is finite, P(alive) lies in [0, 1], expected purchases are
finite, non-negative and non-decreasing in the horizon, and P(k purchases) lies in [0, 1].
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clvmodels.models import beta_geo, modified_beta_geo, pareto_nbd
from clvmodels.models.beta_geo import BetaGeo
from clvmodels.models.modified_beta_geo import ModifiedBetaGeo
from clvmodels.models.pareto_nbd import ParetoNBD

MODELS = [
    (BetaGeo, beta_geo.log_likelihood),
    (ModifiedBetaGeo, modified_beta_geo.log_likelihood),
    (ParetoNBD, pareto_nbd.log_likelihood),
]

positive = st.floats(min_value=-3.0, max_value=3.0).map(lambda v: float(10.0**v))
horizons = st.lists(st.floats(min_value=0.0, max_value=1e4), min_size=2, max_size=5)


@st.composite
def customers(draw):
    n = draw(st.integers(min_value=1, max_value=6))
    x = np.array(draw(st.lists(st.integers(0, 20000), min_size=n, max_size=n)), dtype=float)
    # whole-model inputs: no subnormal tenures (5e-324 periods is not customer data)
    T = np.array(draw(st.lists(st.floats(0.0, 1e5, allow_subnormal=False), min_size=n, max_size=n)))
    share = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    t_x = np.where(x > 0, share * T, 0.0)
    return x, t_x, T


def _params(cls, values):
    return {name: np.array([[v]]) for name, v in zip(cls.param_names, values, strict=True)}


PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize(("cls", "log_likelihood"), MODELS, ids=[m[0].__name__ for m in MODELS])
@PROPERTY_SETTINGS
@given(values=st.tuples(positive, positive, positive, positive), data=customers(), ts=horizons)
def test_predictions_are_well_behaved(cls, log_likelihood, values, data, ts):
    x, t_x, T = data
    params = _params(cls, values)
    with np.errstate(all="ignore"):
        ll = log_likelihood(*values, x, t_x, T)
    assert np.all(np.isfinite(ll)), ll

    alive = np.asarray(cls._math_probability_alive(params, x, t_x, T))
    assert np.all(np.isfinite(alive)) and np.all((alive >= 0) & (alive <= 1)), alive

    previous = np.zeros_like(x)
    for t in sorted(ts):
        e = np.asarray(cls._math_expected_purchases(params, x, t_x, T, t))[0]
        assert np.all(np.isfinite(e)) and np.all(e >= 0), (t, e)
        assert np.all(e >= previous * (1 - 1e-7) - 1e-10), (t, e, previous)
        previous = e

    new = np.asarray(cls._math_expected_purchases_new_customer(params, np.array(sorted(ts))))[0]
    assert np.all(np.isfinite(new)) and np.all(new >= 0)
    assert np.all(np.diff(new) >= -1e-7 * np.abs(new[1:]) - 1e-10), new


@pytest.mark.parametrize(("cls", "log_likelihood"), MODELS, ids=[m[0].__name__ for m in MODELS])
@PROPERTY_SETTINGS
@given(
    values=st.tuples(positive, positive, positive, positive),
    data=customers(),
    t=st.floats(0.0, 1e3),
    k=st.integers(0, 50),
)
def test_purchase_probability_in_unit_interval(cls, log_likelihood, values, data, t, k):
    x, t_x, T = data
    prob = np.asarray(cls._math_purchase_probability(_params(cls, values), x, t_x, T, t, k))
    assert np.all(np.isfinite(prob)) and np.all((prob >= 0) & (prob <= 1)), prob


@pytest.mark.parametrize("cls", [BetaGeo, ModifiedBetaGeo], ids=["BetaGeo", "ModifiedBetaGeo"])
@PROPERTY_SETTINGS
@given(values=st.tuples(positive, positive, positive, positive), data=customers())
def test_gradient_is_finite(cls, values, data):
    x, t_x, T = data
    module = beta_geo if cls is BetaGeo else modified_beta_geo
    with np.errstate(all="ignore"):
        value, grad = module.negative_log_likelihood(np.log(values), x, t_x, T, np.ones_like(x))
    assert np.isfinite(value) and np.all(np.isfinite(grad)), (value, grad)
