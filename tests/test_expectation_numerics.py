"""Expected purchases are right or raise: BG/NBD and MBG/NBD against an independent
high-precision reference over a wide parameter grid (a, b, r, alpha in [1e-3, 1e3]).

The reference integrates the active customer's expectation over the dropout probability,
``E = int_0^1 (1 - (1 + p t/beta)^-s) / p Beta(p; a_, b_) dp``, with mpmath's adaptive
quadrature at 30 digits, split around the Beta's mode: a different route from both the 2F1
closed form and the Gauss-Hermite quadrature of the library.
"""

import mpmath
import numpy as np
import pandas as pd
import pytest

import clvmodels as clv
from clvmodels.errors import NumericalError
from clvmodels.families import bg_nbd, mbg_nbd


def reference_active_expected(s, beta, a_, b_, t) -> float:
    with mpmath.workdps(40):
        s, beta, a_, b_, t = (mpmath.mpf(float(v)) for v in (s, beta, a_, b_, t))
        log_beta = mpmath.log(mpmath.beta(a_, b_))

        def f(p):
            return -mpmath.expm1(-s * mpmath.log1p(p * t / beta)) / p

        def middle(p):
            log_density = (a_ - 1) * mpmath.log(p) + (b_ - 1) * mpmath.log1p(-p) - log_beta
            return f(p) * mpmath.exp(log_density)

        # the end pieces [0, c] and [1 - d, 1] with p = c w^(1/a_), 1 - p = d v^(1/b_): the
        # substitution removes the end-point singularity of the Beta density
        c = mpmath.mpf(10) ** -8 * min(1, beta / t)
        d = mpmath.mpf(10) ** -8

        def left(w):
            p = c * w ** (1 / a_)
            log_weight = a_ * mpmath.log(c) - mpmath.log(a_) + (b_ - 1) * mpmath.log1p(-p)
            return f(p) * mpmath.exp(log_weight - log_beta)

        def right(v):
            q = d * v ** (1 / b_)
            log_weight = b_ * mpmath.log(d) - mpmath.log(b_) + (a_ - 1) * mpmath.log1p(-q)
            return f(1 - q) * mpmath.exp(log_weight - log_beta)

        mean = a_ / (a_ + b_)
        sd = mpmath.sqrt(mean * (1 - mean) / (a_ + b_ + 1))
        points = {c, 1 - d} | {mean + k * sd for k in range(-10, 11)}
        points |= {mpmath.mpf(10) ** -k for k in range(1, 9)}
        points |= {beta / t * mpmath.mpf(10) ** k for k in range(-6, 3)}
        points = sorted(p for p in points if c <= p <= 1 - d)
        total, error = mpmath.mpf(0), mpmath.mpf(0)
        for fn, span in ((left, [0, 1]), (right, [0, 1]), (middle, points)):
            value, err = mpmath.quad(fn, span, error=True, maxdegree=10)
            total += value
            error += err
        assert error < 1e-13 * abs(total), "the reference itself did not converge"
        return float(total)


# the cases the adversarial tester found (E[X(52W)] of 1e15 or 0 where the truth is ~1-2), and
# the failures of a random search over 78,000 points (scipy's 2F1, a_ + b_ of 500 to 1300)
KNOWN_BAD = [
    (22.78, 51.723, 361.9, 857.2, 520.0),
    (4.601, 69.95875, 381.2, 955.5, 520.0),
    (55.002449, 129.84, 578.3, 578.1, 520.0),
    (44.406, 101.0, 537.1, 707.2, 520.0),
    (387.9, 13.02471, 4.4, 694.1, 52.0),
    (243.3, 116.2, 0.00737, 367.6, 13.0),
    (407.2, 348.4, 0.001008, 351.8, 52.0),
]


@pytest.mark.parametrize("case", KNOWN_BAD)
def test_known_failures_are_now_right(case):
    got = bg_nbd.active_expected_purchases(*case)
    assert got == pytest.approx(reference_active_expected(*case), rel=1e-8)


def grid_cases(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        r, alpha, a, b = 10.0 ** rng.uniform(-3, 3, 4)
        x = int(rng.integers(0, 40))
        T = float(rng.uniform(0, 80))
        t = float(rng.choice([1.0, 13.0, 52.0, 520.0]))
        yield r, alpha, a, b, x, T, t


@pytest.mark.parametrize("shift", [0.0, 1.0], ids=["bgnbd", "mbgnbd"])
def test_active_expectation_matches_reference_over_wide_grid(shift):
    errors = []
    for r, alpha, a, b, x, T, t in grid_cases(45, seed=int(shift) + 11):
        s, beta, a_, b_ = r + x, alpha + T, a, b + x + shift
        if abs(a_ - 1) < 1e-3 or abs(a_ + b_ - 1) < 1e-3:
            continue  # the interpolated removable singularities are tested in test_beta_geo
        got = float(bg_nbd.active_expected_purchases(s, beta, a_, b_, t))
        want = reference_active_expected(s, beta, a_, b_, t)
        errors.append(abs(got - want) / max(want, 1e-300))
    assert len(errors) > 40 and max(errors) < 1e-8


def test_quadrature_converged_in_its_region():
    rng = np.random.default_rng(3)
    a = 5.0 * 10.0 ** rng.uniform(0, 2.5, 500)
    b = 100.0 + 10.0 ** rng.uniform(0, 3, 500)
    s, beta = 10.0 ** rng.uniform(-3, 3, 500), 10.0 ** rng.uniform(-3, 3, 500)
    t = np.full(500, 520.0)
    coarse = bg_nbd.active_expected_quadrature(s, beta, a, b, t)
    fine = bg_nbd.active_expected_quadrature(s, beta, a, b, t, n_nodes=160)
    np.testing.assert_allclose(coarse, fine, rtol=1e-7)


def test_conditional_expectations_within_bounds_for_large_a_b():
    """E[X(t)] of a customer lies in [0, E[X(t) | never drops out]] for BG/NBD and MBG/NBD."""
    s = pd.DataFrame(
        {"frequency": [0, 1, 3, 40], "recency": [0, 2.0, 5.0, 30.0], "T": [1.0, 4, 8, 40]}
    )
    for module in (bg_nbd, mbg_nbd):
        for r, alpha, a, b in [
            (3.6, 0.06, 381.2, 954.5),
            (22.8, 4.8, 361.9, 857.2),
            (0.5, 5, 1e3, 1e3),
        ]:
            x, t_x, T = (s[c].to_numpy(float) for c in ("frequency", "recency", "T"))
            got = module.conditional_expected_purchases(r, alpha, a, b, x, t_x, T, 520.0)
            upper = (r + x) / (alpha + T) * 520.0
            assert (
                np.all(np.isfinite(got)) and np.all(got >= 0) and np.all(got <= upper * (1 + 1e-9))
            )


def test_lifetime_value_with_large_a_b_is_finite_and_bounded():
    s = clv.simulate.simulate_beta_geo(500, r=3.0, alpha=10.0, a=400.0, b=900.0, T=20.0, seed=1)
    s = s[["frequency", "recency", "T"]].assign(
        monetary_value=np.where(s["frequency"] > 0, 20.0, 0.0)
    )
    s.attrs["time_unit"] = "W"
    bg = clv.BetaGeo().fit(
        s[["frequency", "recency", "T"]].assign(**{}).pipe(lambda d: d.set_axis(d.index)).assign()
    )
    # the fitted a, b need not be large; value at large ones explicitly
    bg.params_[:] = [3.0, 10.0, 400.0, 900.0]
    ex = bg.expected_purchases(s, "520W")
    assert np.all(np.isfinite(ex)) and ex.max() < (3.0 + s["frequency"].max()) / 10.0 * 520


def test_out_of_bounds_value_raises(monkeypatch):
    """Whatever goes wrong inside, a value outside the bounds is an error, never an answer."""
    monkeypatch.setattr(
        bg_nbd,
        "_active_expected_hypergeometric",
        lambda *args: np.full(np.broadcast(*args).shape, -5.0),
    )
    monkeypatch.setattr(bg_nbd, "active_expected_adaptive", lambda *args: float("nan"))
    with pytest.raises(NumericalError, match="within the model's bounds"):
        bg_nbd.active_expected_purchases(2.0, 10.0, 0.5, 3.0, 52.0)
