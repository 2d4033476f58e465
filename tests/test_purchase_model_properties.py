"""Property tests over extreme inputs for every registered maximum-likelihood purchase model
whose likelihood reads frequency, recency and T alone (the CNBD-k models, which also read
``litt``, have theirs in tests/test_cnbd.py; BG/BB and the subscription models, with other
customer columns, in tests/test_bg_bb.py and tests/test_sbg.py).

For any parameters in [1e-3, 1e3] and any customer history (up to 20,000 purchases, tenures up
to 1e5 periods): the log-likelihood is finite, P(alive) lies in [0, 1], expected purchases are
finite, non-negative and non-decreasing in the horizon, and P(k purchases) lies in [0, 1].
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clvmodels import registry
from clvmodels.validation import SUMMARY_COLUMNS

FAMILIES = [
    entry.family()
    for entry in registry.MAXIMUM_LIKELIHOOD
    if entry.kind == "purchase"
    and entry.family.fit_columns == SUMMARY_COLUMNS
    and entry.family.customer_columns == SUMMARY_COLUMNS
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


def _params(family, values):
    names = family.param_names
    return {name: np.array([[v]]) for name, v in zip(names, values[: len(names)], strict=True)}


PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
@PROPERTY_SETTINGS
@given(values=st.lists(positive, min_size=5, max_size=5), data=customers(), ts=horizons)
def test_predictions_are_well_behaved(family, values, data, ts):
    x, t_x, T = data
    params = _params(family, values)
    with np.errstate(all="ignore"):
        ll = family.log_likelihood(params, {"frequency": x, "recency": t_x, "T": T})
    assert np.all(np.isfinite(ll)), ll

    alive = np.asarray(family.probability_alive(params, x, t_x, T))
    assert np.all(np.isfinite(alive)) and np.all((alive >= 0) & (alive <= 1)), alive

    previous = np.zeros_like(x)
    for t in sorted(ts):
        e = np.asarray(family.expected_purchases(params, x, t_x, T, t))[0]
        assert np.all(np.isfinite(e)) and np.all(e >= 0), (t, e)
        assert np.all(e >= previous * (1 - 1e-7) - 1e-10), (t, e, previous)
        previous = e

    new = np.asarray(family.expected_purchases_new_customer(params, np.array(sorted(ts))))[0]
    assert np.all(np.isfinite(new)) and np.all(new >= 0)
    assert np.all(np.diff(new) >= -1e-7 * np.abs(new[1:]) - 1e-10), new


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
@PROPERTY_SETTINGS
@given(
    values=st.lists(positive, min_size=5, max_size=5),
    data=customers(),
    t=st.floats(0.0, 1e3),
    k=st.integers(0, 50),
)
def test_purchase_probability_in_unit_interval(family, values, data, t, k):
    x, t_x, T = data
    prob = np.asarray(family.purchase_probability(_params(family, values), x, t_x, T, t, k))
    assert np.all(np.isfinite(prob)) and np.all((prob >= 0) & (prob <= 1)), prob


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
@PROPERTY_SETTINGS
@given(values=st.lists(positive, min_size=5, max_size=5), data=customers())
def test_gradient_is_finite(family, values, data):
    x, t_x, T = data
    rows = family.make_rows({"frequency": x, "recency": t_x, "T": T}, np.ones_like(x))
    with np.errstate(all="ignore"):
        value, grad = family.negative_log_likelihood(
            np.log(values[: len(family.param_names)]), rows
        )
    assert np.isfinite(value) and np.all(np.isfinite(grad)), (value, grad)
