"""Time units: parsing, conversion, discount rates, mismatch errors."""

import numpy as np
import pytest

from clvmodels import units
from clvmodels.errors import InputError, TimeUnitError


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("W", "W"), ("w", "W"), ("week", "W"), ("Weeks", "W"), (" D ", "D"), ("days", "D"),
        ("h", "H"), ("hours", "H"), ("month", "M"), ("ME", "M"), ("MS", "M"), ("q", "Q"),
        ("year", "Y"), ("A", "Y"),
    ],
)  # fmt: skip
def test_normalize_unit(alias, canonical):
    assert units.normalize_unit(alias) == canonical


@pytest.mark.parametrize("bad", ["fortnight", "", "WW", 7, None])
def test_normalize_unit_rejects(bad):
    with pytest.raises(TimeUnitError):
        units.normalize_unit(bad)


def test_days_per_unit():
    assert units.days_per("H") == 1 / 24
    assert units.days_per("D") == 1.0
    assert units.days_per("W") == 7.0
    assert units.days_per("M") == 365.25 / 12
    assert units.days_per("Q") == 365.25 / 4
    assert units.days_per("Y") == 365.25
    assert units.days_per("M") * 12 == units.days_per("Y")


@pytest.mark.parametrize(
    ("value", "src", "dst", "expected"),
    [
        (1, "W", "D", 7.0),
        (14, "D", "W", 2.0),
        (24, "H", "D", 1.0),
        (1, "D", "H", 24.0),
        (12, "M", "Y", 1.0),
        (1, "Y", "W", 365.25 / 7),
        (3, "M", "Q", 1.0),
        (52, "W", "M", 52 * 7 / (365.25 / 12)),
    ],
)
def test_convert(value, src, dst, expected):
    assert units.convert(value, src, dst) == pytest.approx(expected, rel=1e-15)


def test_convert_round_trip_is_exact_enough():
    x = np.linspace(0, 1000, 101)
    for a in "HDWMQY":
        for b in "HDWMQY":
            np.testing.assert_allclose(units.convert(units.convert(x, a, b), b, a), x, rtol=1e-14)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("52W", (52.0, "W")),
        ("1.5Y", (1.5, "Y")),
        ("365D", (365.0, "D")),
        (" 12 months ", (12.0, "M")),
        (".5W", (0.5, "W")),
        ("1e2D", (100.0, "D")),
        (39, (39.0, None)),
        (np.float64(2.5), (2.5, None)),
        (0, (0.0, None)),
    ],
)
def test_parse_duration(text, expected):
    assert units.parse_duration(text) == expected


@pytest.mark.parametrize(
    "bad", ["-1W", "W", "52", "1.2.3W", "inf", True, [1], float("nan"), float("inf"), -1]
)
def test_parse_duration_rejects(bad):
    with pytest.raises(TimeUnitError):
        units.parse_duration(bad)


def test_to_unit():
    assert units.to_unit("39W", "W") == 39.0
    assert units.to_unit("1Y", "W") == pytest.approx(365.25 / 7)
    assert units.to_unit("2W", "D") == 14.0
    assert units.to_unit(10, "M") == 10.0  # a bare number is already in the unit
    assert units.to_unit("48H", "D") == 2.0


def test_per_period_rate():
    assert units.per_period_rate(0.10, "1Y") == pytest.approx(0.10)
    monthly = units.per_period_rate(0.10, "1M")
    assert (1 + monthly) ** 12 == pytest.approx(1.10)
    weekly = units.per_period_rate(0.10, 1, unit="W")
    assert (1 + weekly) ** (365.25 / 7) == pytest.approx(1.10)
    assert units.per_period_rate(0.0, "1W") == 0.0
    with pytest.raises(TimeUnitError, match="has no unit"):
        units.per_period_rate(0.1, 1)
    with pytest.raises(ValueError, match="greater than -1"):
        units.per_period_rate(-1.0, "1M")


def test_require_same_unit():
    units.require_same_unit("W", "week", "summary")
    with pytest.raises(TimeUnitError, match="has no time unit"):
        units.require_same_unit("W", None, "summary")
    with pytest.raises(TimeUnitError, match=r"unit 'D' but the model was fit in unit 'W'"):
        units.require_same_unit("W", "D", "summary")


# --------------------------------------------------------------------------------------------
# limits: a typo never allocates unbounded memory
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("duration", "unit"),
    [("1e6Y", "W"), ("1001Y", "D"), ("12013M", "M"), ("366000D", "D"), ("8766001H", "D"),
     (52_200.0, "W"), (1e6, "Y"), (1e300, "H"), ("1e400W", "W")],
)  # fmt: skip
def test_durations_longer_than_1000_years_are_refused(duration, unit):
    with pytest.raises(units.DurationError, match=r"1,?000 years") as exc:
        units.to_unit(duration, unit)
    assert isinstance(exc.value, InputError) and isinstance(exc.value, TimeUnitError)


def test_durations_up_to_1000_years_are_fine():
    assert units.to_unit("1000Y", "D") == 365_250.0
    assert units.to_unit(52_000, "W") == 52_000.0  # a bare number is in the unit given
    assert units.to_unit("1e4W", "W") == 1e4
    assert units.to_unit(0, "Y") == 0.0


@pytest.mark.parametrize("bad", [-1, -1e-300, float("nan"), float("inf"), np.float64("-inf")])
def test_negative_and_non_finite_durations_state_the_valid_range(bad):
    with pytest.raises(units.DurationError, match="finite and non-negative.*0 to 1000 years"):
        units.to_unit(bad, "W")


@pytest.mark.parametrize("bad", ["-2W", "nanW", "infD", "W", "52"])
def test_duration_strings_that_are_not_durations(bad):
    with pytest.raises(TimeUnitError, match="cannot read duration"):
        units.to_unit(bad, "W")


@pytest.mark.parametrize(
    ("horizon", "period", "unit", "n"),
    [("52W", "4W", "W", 13), ("10W", "4W", "W", 3), (0, "1M", "W", 0), ("273Y", "1D", "D", 99_714),
     (f"{12 * 4.345}W", "4.345W", "W", 12), (52, 1, "W", 52), ("1Y", "1M", "D", 12)],
)  # fmt: skip
def test_period_count(horizon, period, unit, n):
    assert units.period_count(horizon, period, unit) == n


@pytest.mark.parametrize(
    ("horizon", "period", "match"),
    [("52W", 1e-9, "52,000,000,000 periods"), ("1000Y", "1D", "365,250 periods"),
     ("52W", 0, "positive"), ("52W", "0D", "positive"), ("1e6Y", "1Y", "1,000 years"),
     ("52W", -1, "non-negative")],
)  # fmt: skip
def test_period_count_refuses_too_many_periods(horizon, period, match):
    with pytest.raises(units.DurationError, match=match) as exc:
        units.period_count(horizon, period, "W")
    assert isinstance(exc.value, InputError)
    if "periods" in match:
        assert "at most 100,000" in str(exc.value)


def test_bare_numbers_are_amounts_of_the_models_unit():
    # the one rule: a number means "in the unit of the model / summary"
    assert units.to_unit(39, "W") == 39.0 and units.to_unit(39, "D") == 39.0
    assert units.per_period_rate(0.1, 1, unit="M") == units.per_period_rate(0.1, "1M")
    # where there is no such unit, a number is an error, as is a string without a unit
    with pytest.raises(TimeUnitError, match="a bare number is an amount of the model's unit"):
        units.per_period_rate(0.1, 1)
    with pytest.raises(TimeUnitError, match="cannot read duration '52'"):
        units.to_unit("52", "W")


def test_per_period_rate_refuses_bad_periods_and_rates():
    with pytest.raises(units.DurationError, match="positive"):
        units.per_period_rate(0.1, "0M")
    with pytest.raises(units.DurationError, match="1,000 years"):
        units.per_period_rate(0.1, "2000Y")
    for rate in (float("inf"), float("nan"), -1.0):
        with pytest.raises(ValueError, match="finite number greater than -1"):
            units.per_period_rate(rate, "1M")
