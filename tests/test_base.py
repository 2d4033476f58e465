"""Tests of the shared model machinery in clvmodels.models.base."""

import numpy as np
import pandas as pd
import pytest

from clvmodels.errors import InputError, NotFittedError, TimeUnitError
from clvmodels.models import base


def _summary(**columns):
    frame = pd.DataFrame(columns, index=pd.Index(range(len(columns["frequency"])), name="id"))
    frame.attrs["time_unit"] = "W"
    return frame


def test_compress_rows_counts_duplicates_and_weights():
    x = np.array([0, 1, 1, 0, 1])
    t_x = np.array([0, 2, 2, 0, 3])
    T = np.array([5, 5, 5, 5, 5])
    x_u, t_u, T_u, counts = base.compress_rows(x, t_x, T)
    rows = {(a, b, c): n for a, b, c, n in zip(x_u, t_u, T_u, counts, strict=True)}
    assert rows == {(0, 0, 5): 2, (1, 2, 5): 2, (1, 3, 5): 1}
    *_, weighted = base.compress_rows(x, t_x, T, weights=np.array([1, 2, 3, 4, 5.0]))
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
        base.validate_summary(_summary(**columns))
    text = str(info.value)
    assert "1 row" in text and "Fix" in text


def test_validate_summary_missing_column_and_duplicates():
    with pytest.raises(InputError, match=r"missing column\(s\) \['T'\]"):
        base.validate_summary(pd.DataFrame({"frequency": [1], "recency": [1]}))
    frame = _summary(frequency=[1, 1], recency=[1, 1], T=[2, 2])
    frame.index = pd.Index(["a", "a"], name="id")
    with pytest.raises(InputError, match="duplicate customer ids"):
        base.validate_summary(frame)
    with pytest.raises(InputError, match="empty"):
        base.validate_summary(_summary(frequency=[], recency=[], T=[]))
    with pytest.raises(InputError, match="must be a pandas DataFrame"):
        base.validate_summary(np.zeros((3, 3)))
    with pytest.raises(InputError, match="monetary_value is negative"):
        base.validate_summary(
            _summary(frequency=[1], recency=[1], T=[2], monetary_value=[-3.0]), monetary=True
        )


def test_numerical_hessian_of_quadratic_is_exact():
    a = np.array([[3.0, 1.0], [1.0, 2.0]])
    hessian = base.numerical_hessian(lambda v: a @ v, np.array([0.3, -0.7]))
    np.testing.assert_allclose(hessian, a, rtol=1e-8)


class _Exponential(base.MaximumLikelihoodModel):
    """A one-parameter model (exponential inter-event times) to exercise the MLE machinery."""

    param_names = ("rate",)

    def fit(self, summary):
        return self._fit_mle(summary)

    def _fit_data(self, summary, weights):
        (T_u, counts) = base.compress_rows(summary["T"].to_numpy(float))
        return (T_u,), counts

    def _negative_log_likelihood(self, log_params, data, counts):
        (T,) = data
        rate = np.exp(log_params[0])
        value = -np.sum(counts * (np.log(rate) - rate * T))
        gradient = -np.sum(counts * (1 - rate * T))  # d/d log(rate)
        return value, np.array([gradient])

    def _initial_log_params(self, data, counts):
        return np.zeros(1)


def test_mle_machinery_matches_closed_form_and_draws():
    rng = np.random.default_rng(1)
    T = rng.exponential(scale=2.0, size=4000)
    summary = _summary(frequency=np.zeros(4000), recency=np.zeros(4000), T=T)
    model = _Exponential()
    with pytest.raises(NotFittedError):
        model.param_draws(3)
    model.fit(summary)
    assert model.converged_
    assert model.time_unit_ == "W"
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

    restored = _Exponential.from_dict(model.to_dict())
    pd.testing.assert_series_equal(restored.params_, model.params_)
    np.testing.assert_allclose(restored.log_covariance_, model.log_covariance_)


def test_fit_requires_time_unit():
    summary = _summary(frequency=[0, 0], recency=[0, 0], T=[1.0, 2.0])
    summary.attrs.clear()
    with pytest.raises(TimeUnitError, match="no time unit"):
        _Exponential().fit(summary)
