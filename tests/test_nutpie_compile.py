"""The nutpie entry points of clvmodels.estimators.bayes.nutpie_compile: same log density, gradient and
return codes as the model, cached on disk when pytensor caches the model function, and the
fallbacks (uncacheable graphs, shared variables) still correct."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

pm = pytest.importorskip("pymc")
nutpie = pytest.importorskip("nutpie")
pt = pytest.importorskip("pytensor.tensor")

from clvmodels.estimators.bayes import nutpie_compile  # noqa: E402

POINT = np.array([0.3, -1.2, 2.0])


def _model(kind: str):
    with pm.Model() as model:
        theta = pm.Normal("theta", 0.5, 2.0, shape=3)
        if kind == "cacheable":
            pm.Potential("extra", -pt.sum(pt.log1p(theta**2)))
        elif kind == "asserting":  # an assertion that can fail: the guarded entry point
            from pytensor.raise_op import Assert

            checked = Assert("theta[0] < 10")(theta, theta[0] < 10.0)
            pm.Potential("extra", -pt.sum(pt.log1p(checked**2)))
        elif kind == "uncacheable":  # the gradient needs digamma, which pytensor cannot cache
            pm.Potential("extra", -pt.sum(pt.gammaln(theta**2 + 1.0)))
        else:  # shared data: nutpie unpacks it from its user data
            scale = pm.Data("scale", np.array([1.0, 2.0, 3.0]))
            pm.Potential("extra", -pt.sum(pt.log1p((scale * theta) ** 2)))
        pm.Deterministic("exp_theta", pt.exp(theta))
    return model


def _call_logp(compiled, x):
    dbl = ctypes.POINTER(ctypes.c_double)
    grad, logp = np.zeros(len(x)), np.zeros(1)
    user_data = compiled.user_data.ctypes.data  # where nutpie's entry finds shared data
    code = compiled.compiled_logp_func.ctypes(
        len(x), x.ctypes.data_as(dbl), grad.ctypes.data_as(dbl), logp.ctypes.data_as(dbl), user_data
    )
    return code, logp[0], grad


@pytest.mark.parametrize("kind", ["cacheable", "asserting", "uncacheable", "shared"])
def test_entry_points_give_the_models_log_density(kind):
    model = _model(kind)
    compiled = nutpie_compile.compile_for_nutpie(model)
    code, logp, grad = _call_logp(compiled, POINT)
    assert code == 0
    point = {"theta": POINT}
    assert logp == pytest.approx(float(model.compile_logp()(point)), rel=1e-12)
    # (numba and C evaluate digamma slightly differently: 2e-10)
    np.testing.assert_allclose(grad, model.compile_dlogp()(point), rtol=1e-8)
    # nuts-rs' error codes: wrong dimension, non-finite log density
    dbl = ctypes.POINTER(ctypes.c_double)
    buf = np.zeros(4)
    bad_dim = compiled.compiled_logp_func.ctypes(
        4, *(buf.ctypes.data_as(dbl),) * 3, compiled.user_data.ctypes.data
    )
    assert bad_dim == -1
    code, _, _ = _call_logp(compiled, np.array([np.inf, 0.0, 0.0]))
    # the assertion fails on inf (1: exception); otherwise a non-finite gradient / value
    assert code == 1 if kind == "asserting" else code in (3, 4)
    assert nutpie_compile.may_raise(model) == (kind == "asserting")
    # PyMC's parameter checks do not count: its compilation turns them into -inf switches
    with pm.Model() as checked:
        pm.Normal("y", 0.0, pm.HalfNormal("s"))
    assert not nutpie_compile.may_raise(checked)


def test_entry_points_are_cached_on_disk():
    """A second compilation of the same model loads both entry points from the cache."""
    nutpie_compile.compile_for_nutpie(_model("cacheable"))
    again = nutpie_compile.compile_for_nutpie(_model("cacheable"))
    assert again.compiled_logp_func.cache_hits == 1
    assert again.compiled_expand_func.cache_hits == 1
    uncached = nutpie_compile.compile_for_nutpie(_model("uncacheable"))
    assert uncached.compiled_logp_func.cache_hits == 0


def test_nutpie_hooks_are_restored_and_sampling_works():
    from nutpie import compile_pymc

    before = compile_pymc._make_c_logp_func, compile_pymc._make_c_expand_func
    compiled = nutpie_compile.compile_for_nutpie(_model("cacheable"))
    assert (compile_pymc._make_c_logp_func, compile_pymc._make_c_expand_func) == before
    idata = nutpie.sample(compiled, draws=300, tune=300, chains=2, seed=1, progress_bar=False)
    theta = idata.posterior["theta"].to_numpy()
    # the expand entry point stores the deterministic of each draw
    np.testing.assert_allclose(idata.posterior["exp_theta"].to_numpy(), np.exp(theta))
    assert np.all(np.abs(theta.mean(axis=(0, 1)) - 0.2) < 0.5)  # symmetric-ish posterior


def test_falls_back_to_nutpie_without_its_hooks(monkeypatch):
    """A nutpie release without the hooks (simulated by asking for one it lacks) compiles
    with nutpie's own entry points."""
    monkeypatch.setattr(nutpie_compile, "_HOOKS", (*nutpie_compile._HOOKS, "_renamed_hook"))
    compiled = nutpie_compile.compile_for_nutpie(_model("cacheable"))
    code, logp, _ = _call_logp(compiled, POINT)
    assert code == 0
    assert logp == pytest.approx(float(_model("cacheable").compile_logp()({"theta": POINT})))


def test_custom_ops_count_as_raising_unless_declared():
    """Ops from outside pytensor / PyMC may raise (guarded entry point), unless they declare
    ``never_raises`` like the fused BG/NBD likelihood."""
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    from clvmodels.estimators.bayes.hierarchical_beta_geo import (
        bgnbd_log_likelihood_pt,
        compress_bgnbd,
    )

    class Doubling(Op):
        __props__ = ()

        def make_node(self, x):
            x = pt.as_tensor_variable(x)
            return Apply(self, [x], [x.type()])

        def perform(self, node, inputs, output_storage):
            output_storage[0][0] = 2.0 * inputs[0]

    with pm.Model() as custom:
        theta = pm.Normal("theta", shape=2)
        pm.Potential("extra", -pt.sum(Doubling()(theta) ** 2))
    assert nutpie_compile.may_raise(custom)
    x = np.array([0.0, 1.0, 3.0])
    data = compress_bgnbd(np.zeros(3, int), x, x, x + 2.0)
    with pm.Model() as bgnbd:
        log_params = pm.Normal("log_params", shape=4)
        r, alpha, a, b = (pt.exp(log_params[k : k + 1]) for k in range(4))
        pm.Potential("loglik", bgnbd_log_likelihood_pt(r, alpha, a, b, data))
    assert not nutpie_compile.may_raise(bgnbd)
