"""Tests of the shared machinery: fitting rows (clvmodels.optimize), summary checks
(clvmodels.validation), the maximum-likelihood estimator on any family
(clvmodels.estimators.mle), and the families' statelessness."""

import ast
import importlib
import pkgutil
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clvmodels
from clvmodels import optimize, registry, validation
from clvmodels.errors import InputError, NotFittedError, TimeUnitError
from clvmodels.estimators.mle import PurchaseModel
from clvmodels.families.base import PurchaseFamily

PACKAGE = Path(clvmodels.__file__).parent


def _summary(**columns):
    frame = pd.DataFrame(columns, index=pd.Index(range(len(columns["frequency"])), name="id"))
    frame.attrs["time_unit"] = "W"
    return frame


def test_compress_rows_counts_duplicates_and_weights():
    x = np.array([0, 1, 1, 0, 1])
    t_x = np.array([0, 2, 2, 0, 3])
    T = np.array([5, 5, 5, 5, 5])
    x_u, t_u, T_u, counts = optimize.compress_rows(x, t_x, T)
    rows = {(a, b, c): n for a, b, c, n in zip(x_u, t_u, T_u, counts, strict=True)}
    assert rows == {(0, 0, 5): 2, (1, 2, 5): 2, (1, 3, 5): 1}
    *_, weighted = optimize.compress_rows(x, t_x, T, weights=np.array([1, 2, 3, 4, 5.0]))
    assert weighted.sum() == 15
    assert sorted(weighted) == [5, 5, 5]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"frequency": [1, -1], "recency": [1, 0], "T": [2, 2]}, "frequency is negative"),
        ({"frequency": [1.5, 1], "recency": [1, 1], "T": [2, 2]}, "not a whole number"),
        ({"frequency": [1, 1], "recency": [3, 1], "T": [2, 2]}, "recency is larger than T"),
        ({"frequency": [0, 1], "recency": [1, 1], "T": [2, 2]}, "recency is non-zero"),
        ({"frequency": [1, 1], "recency": [1, np.nan], "T": [2, 2]}, "non-finite"),
        ({"frequency": [1, 1], "recency": [1, 1], "T": [2, -2]}, "T is negative"),
    ],
)
def test_validate_summary_names_problem_rows_and_fix(columns, message):
    with pytest.raises(InputError, match=message) as info:
        validation.validate_summary(_summary(**columns))
    text = str(info.value)
    assert "1 row" in text and "Fix" in text


def test_validate_summary_missing_column_and_duplicates():
    with pytest.raises(InputError, match=r"missing column\(s\) \['T'\]"):
        validation.validate_summary(pd.DataFrame({"frequency": [1], "recency": [1]}))
    frame = _summary(frequency=[1, 1], recency=[1, 1], T=[2, 2])
    frame.index = pd.Index(["a", "a"], name="id")
    with pytest.raises(InputError, match="duplicate customer ids"):
        validation.validate_summary(frame)
    with pytest.raises(InputError, match="empty"):
        validation.validate_summary(_summary(frequency=[], recency=[], T=[]))
    with pytest.raises(InputError, match="must be a pandas DataFrame"):
        validation.validate_summary(np.zeros((3, 3)))
    with pytest.raises(InputError, match="monetary_value is negative"):
        validation.validate_summary(
            _summary(frequency=[1], recency=[1], T=[2], monetary_value=[-3.0]), monetary=True
        )


def test_numerical_hessian_of_quadratic_is_exact():
    a = np.array([[3.0, 1.0], [1.0, 2.0]])
    hessian = optimize.numerical_hessian(lambda v: a @ v, np.array([0.3, -0.7]))
    np.testing.assert_allclose(hessian, a, rtol=1e-8)


class ExponentialFamily(PurchaseFamily):
    """A one-parameter family (exponential ages) to exercise the estimator on any family."""

    name = "exponential"
    label = "Exponential"
    param_names = ("rate",)
    fit_columns = ("T",)

    def log_likelihood(self, params, data):
        rate = np.asarray(params["rate"], dtype=float)
        return np.log(rate) - rate * data["T"]

    def negative_log_likelihood(self, log_params, rows):
        T, counts = rows["T"], rows.counts
        rate = np.exp(log_params[0])
        value = -np.sum(counts * self.log_likelihood({"rate": rate}, rows.columns))
        gradient = -np.sum(counts * (1 - rate * T))  # d/d log(rate)
        return value, np.array([gradient])

    def initial_log_params(self, rows):
        return np.zeros(1)


class Exponential(PurchaseModel):
    family_class = ExponentialFamily


def test_mle_machinery_matches_closed_form_and_draws():
    rng = np.random.default_rng(1)
    T = rng.exponential(scale=2.0, size=4000)
    summary = _summary(frequency=np.zeros(4000), recency=np.zeros(4000), T=T)
    model = Exponential()
    with pytest.raises(NotFittedError):
        model.param_draws(3)
    model.fit(summary)
    assert model.converged_
    assert model.time_unit_ == "W"
    assert isinstance(model.family_, ExponentialFamily)
    np.testing.assert_allclose(model.params_["rate"], 1 / T.mean(), rtol=1e-6)
    # observed information of the exponential: se(rate) = rate / sqrt(n)
    np.testing.assert_allclose(
        model.standard_errors_["rate"], model.params_["rate"] / 63.245, rtol=1e-3
    )
    table = model.summary()
    assert table.loc["rate", "lower_95%"] < model.params_["rate"] < table.loc["rate", "upper_95%"]

    draws = model.param_draws(4000, seed=0)
    assert list(draws.columns) == ["rate"] and (draws["rate"] > 0).all()
    np.testing.assert_allclose(np.log(draws["rate"]).std(), 1 / np.sqrt(4000), rtol=0.05)
    boot = model.param_draws(200, method="bootstrap", seed=0)
    np.testing.assert_allclose(boot["rate"].std(), model.standard_errors_["rate"], rtol=0.25)
    with pytest.raises(ValueError, match="method"):
        model.param_draws(3, method="magic")

    restored = Exponential.from_dict(model.to_dict())
    pd.testing.assert_series_equal(restored.params_, model.params_)
    np.testing.assert_allclose(restored.log_covariance_, model.log_covariance_)


def test_fit_requires_time_unit():
    summary = _summary(frequency=[0, 0], recency=[0, 0], T=[1.0, 2.0])
    summary.attrs.clear()
    with pytest.raises(TimeUnitError, match="no time unit"):
        Exponential().fit(summary)


# --------------------------------------------------------------------------------------------
# families are stateless values
# --------------------------------------------------------------------------------------------
def _family_instances():
    """One instance of every registered maximum-likelihood family (first candidate settings)."""
    out = []
    for entry in registry.MAXIMUM_LIKELIHOOD:
        grid = entry.family.settings_grid
        out.append(entry.family(**{name: next(iter(values)) for name, values in grid.items()}))
    return out


@pytest.mark.parametrize("family", _family_instances(), ids=lambda f: f.name)
def test_families_hold_no_instance_state(family):
    """A family's only instance state is its fixed settings, before and after use: nothing is
    remembered between calls (no P(alive) memo, no cached rows)."""

    def state():
        return {k: v for k, v in vars(family).items() if k not in family.settings()}

    assert state() == {}
    rng = np.random.default_rng(0)
    if family.kind == "purchase":
        drawn = family.simulate(
            dict.fromkeys(family.param_names, 1.5), np.linspace(5, 50, 300), 5.0, rng
        )
        columns = dict.fromkeys([*family.fit_columns, *family.customer_columns])
        summary = pd.DataFrame({c: drawn[c] for c in columns})
    else:
        summary = clvmodels.datasets.load_cdnow_summary().iloc[:300]
    rows = family.fit_rows(summary)
    value, _ = family.negative_log_likelihood(family.initial_log_params(rows), rows)
    assert np.isfinite(value)
    params = {name: np.array([[1.5]]) for name in family.param_names}
    customer = family.customer_arrays(summary)
    if family.kind == "purchase":
        family.probability_alive(params, *customer)
        family.expected_purchases(params, *customer, 10.0)
    else:
        family.expected_spend(params, *customer)
        family.simulate(params, summary["frequency"].to_numpy(float), rng)
    assert state() == {}
    assert vars(family) == family.settings()


def _modules(package: str):
    root = importlib.import_module(package)
    yield root
    for info in pkgutil.iter_modules(root.__path__):
        yield importlib.import_module(f"{package}.{info.name}")


def test_family_modules_have_no_mutable_globals():
    """Module-level values of the families are constants: containers (lists, dicts, sets,
    arrays) only under UPPER_CASE names, no memoised functions (functools.cache)."""
    for module in _modules("clvmodels.families"):
        for name, value in vars(module).items():
            if name.startswith("__") or isinstance(value, types.ModuleType):
                continue
            constant = name.lstrip("_").isupper()
            container = isinstance(value, (list, dict, set, bytearray, np.ndarray))
            assert constant or not container, f"{module.__name__}.{name} is a mutable global"
            assert not hasattr(value, "cache_info"), f"{module.__name__}.{name} is a memo"


@pytest.mark.parametrize("folder", ["families", "estimators"])
def test_no_module_rebinds_its_globals(folder):
    """No function of the families or the estimators (Bayesian ones included) assigns a
    module global (``global`` statement): no lazily created module-level state."""
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        tree = ast.parse(path.read_text())
        rebinds = [node.names for node in ast.walk(tree) if isinstance(node, ast.Global)]
        assert not rebinds, f"{path.relative_to(PACKAGE)} rebinds globals {rebinds}"
