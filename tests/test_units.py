"""Time units: parsing, conversion, discount rates, mismatch errors."""

import numpy as np
import pytest

from clvmodels import units
from clvmodels.errors import TimeUnitError


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
