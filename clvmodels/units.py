"""Time units: the one place where durations are parsed and converted.

A summary knows its unit (``df.attrs["time_unit"]``), a fitted model remembers the unit it
was fit in, and every calendar duration a user passes ("52W", "12M", "365D", "3Y", or a plain
number meaning "in the model's unit") is converted here, once. A mismatch that cannot be
resolved is an error, never a silent rescale.

Units and their length in days:

====  ======================  ==========
unit  meaning                 days
====  ======================  ==========
H     hour                    1/24
D     day                     1
W     week                    7
M     month (average)         365.25/12
Q     quarter (average)       365.25/4
Y     year (average)          365.25
====  ======================  ==========

Durations
---------
A duration is a string with an amount and a unit ("52W", "1.5Y", "12 months") or a bare number.
The rule for bare numbers is the same everywhere: **a number is an amount of the model's unit**
(the unit of the summary, or of the model fitted on it), so ``39`` means 39 weeks for a model
fitted in weeks. Where no such unit exists (e.g. :func:`per_period_rate` called without
``unit``), a number is an error that asks for a calendar string such as "1M"; a string without
a unit ("52") is always an error, since it could be read either way.

Limits (checked, so that a typo cannot allocate unbounded memory or run for ever):

* every duration is finite, non-negative and at most :data:`MAX_DURATION_YEARS` (1000) years;
* a horizon cut into periods (:func:`period_count`) needs a positive period and at most
  :data:`MAX_PERIODS` (100,000) periods, e.g. at most about 274 years of daily periods.

Out-of-range durations raise :class:`DurationError`, which is both a
:class:`~clvmodels.errors.TimeUnitError` and an :class:`~clvmodels.errors.InputError`.
"""

from __future__ import annotations

import math
import re
from numbers import Real

from clvmodels.errors import InputError, TimeUnitError

#: the longest duration accepted anywhere (horizons, periods, windows), in years
MAX_DURATION_YEARS = 1000
#: the most periods a horizon may be cut into (:func:`period_count`)
MAX_PERIODS = 100_000


class DurationError(TimeUnitError, InputError):
    """A duration that is not a finite, non-negative amount within the limits of this module."""


DAYS_PER_UNIT: dict[str, float] = {
    "H": 1.0 / 24.0,
    "D": 1.0,
    "W": 7.0,
    "M": 365.25 / 12.0,
    "Q": 365.25 / 4.0,
    "Y": 365.25,
}

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]+)\s*$")
_ALIASES = {
    "h": "H", "hour": "H", "hours": "H",
    "d": "D", "day": "D", "days": "D",
    "w": "W", "week": "W", "weeks": "W",
    "m": "M", "month": "M", "months": "M", "ms": "M", "me": "M",
    "q": "Q", "quarter": "Q", "quarters": "Q",
    "y": "Y", "year": "Y", "years": "Y", "a": "Y",
}  # fmt: skip


def normalize_unit(unit: str) -> str:
    """Return the canonical one-letter code of ``unit`` ("week" -> "W"), or raise TimeUnitError."""
    if not isinstance(unit, str):
        raise TimeUnitError(f"time unit must be a string such as 'D' or 'W', got {unit!r}")
    key = unit.strip()
    if key in DAYS_PER_UNIT:
        return key
    canonical = _ALIASES.get(key.lower())
    if canonical is None:
        raise TimeUnitError(
            f"unknown time unit {unit!r}; use one of {', '.join(DAYS_PER_UNIT)} "
            "(hour, day, week, month = 365.25/12 days, quarter, year = 365.25 days)"
        )
    return canonical


def days_per(unit: str) -> float:
    """Length of one ``unit`` in days."""
    return DAYS_PER_UNIT[normalize_unit(unit)]


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert a duration ``value`` expressed in ``from_unit`` into ``to_unit``."""
    return value * days_per(from_unit) / days_per(to_unit)


def parse_duration(duration: str | Real) -> tuple[float, str | None]:
    """Split a duration into (amount, unit). A bare number has unit ``None`` ("the model's unit").

    Raises :class:`TimeUnitError` for what is not a duration, :class:`DurationError` for a
    negative or non-finite amount or one longer than :data:`MAX_DURATION_YEARS` years.

    >>> parse_duration("52W")
    (52.0, 'W')
    >>> parse_duration(39)
    (39.0, None)
    """
    if isinstance(duration, bool):
        raise TimeUnitError(f"duration must be a number or a string like '52W', got {duration!r}")
    if isinstance(duration, Real):
        amount = float(duration)
        unit = None
    elif isinstance(duration, str):
        match = _DURATION.match(duration)
        if match is None:
            raise TimeUnitError(
                f"cannot read duration {duration!r}; write an amount and a unit such as "
                "'52W', '12M', '365D', '3Y' or '1.5Y'"
            )
        amount = float(match.group(1))
        unit = normalize_unit(match.group(2))
    else:
        raise TimeUnitError(f"duration must be a number or a string like '52W', got {duration!r}")
    if not math.isfinite(amount) or amount < 0:
        raise DurationError(
            f"duration must be finite and non-negative, got {duration!r}; valid durations are "
            f"0 to {MAX_DURATION_YEARS} years, e.g. '52W' or '3Y'"
        )
    if unit is not None:
        _check_length(amount * DAYS_PER_UNIT[unit], duration)
    return amount, unit


def _check_length(days: float, duration) -> None:
    limit = MAX_DURATION_YEARS * DAYS_PER_UNIT["Y"]
    if days > limit:
        raise DurationError(
            f"duration {duration!r} is {days / DAYS_PER_UNIT['Y']:.6g} years; at most "
            f"{MAX_DURATION_YEARS} years are allowed (valid durations: 0 to "
            f"{MAX_DURATION_YEARS:,} years). Fix: check the amount and the unit (e.g. '52W', "
            "'3Y'; a bare number is in the model's unit)."
        )


def to_unit(duration: str | Real, unit: str) -> float:
    """Express ``duration`` (a number already in ``unit``, or a string such as "52W") in ``unit``."""
    amount, given = parse_duration(duration)
    if given is None:
        _check_length(amount * days_per(unit), duration)
        return amount
    return convert(amount, given, unit)


def period_count(horizon: str | Real, period: str | Real, unit: str) -> int:
    """Number of periods (the last one possibly partial) that cut ``horizon`` into periods of
    length ``period``, both as for :func:`to_unit`. Raises :class:`DurationError` unless the
    period is positive and there are at most :data:`MAX_PERIODS` of them.

    >>> period_count("52W", "4W", "W")
    13
    """
    H = to_unit(horizon, unit)
    p = to_unit(period, unit)
    if not p > 0:
        raise DurationError(
            f"period must be a positive duration such as '1M' or '4W', got {period!r}"
        )
    ratio = H / p
    n = int(math.ceil(ratio - 1e-9)) if ratio < 10 * MAX_PERIODS else int(ratio)
    if n > MAX_PERIODS:
        raise DurationError(
            f"a horizon of {horizon!r} in periods of {period!r} makes {n:,} periods; at most "
            f"{MAX_PERIODS:,} are allowed (valid: 0 < period, horizon / period <= "
            f"{MAX_PERIODS:,}, horizon <= {MAX_DURATION_YEARS} years). Fix: use a longer period "
            "or a shorter horizon."
        )
    return max(n, 0)


def per_period_rate(annual_rate: float, period: str | Real, unit: str | None = None) -> float:
    """Per-period discount rate equivalent to a compound ``annual_rate``.

    ``(1 + annual_rate) ** (period_days / 365.25) - 1``. ``period`` is a calendar string
    ("1M") or a number in ``unit``.
    """
    if not annual_rate > -1 or not math.isfinite(annual_rate):
        raise ValueError(
            f"annual_discount_rate must be a finite number greater than -1, got {annual_rate!r}"
        )
    amount, given = parse_duration(period)
    period_unit = given or unit
    if period_unit is None:
        raise TimeUnitError(
            f"period {period!r} has no unit; write it like '1M' or '4W' (a bare number is an "
            "amount of the model's unit, and here there is none)"
        )
    period_days = amount * days_per(period_unit)
    _check_length(period_days, period)
    if not period_days > 0:
        raise DurationError(f"period must be a positive duration such as '1M', got {period!r}")
    return (1.0 + annual_rate) ** (period_days / DAYS_PER_UNIT["Y"]) - 1.0


def require_same_unit(expected: str, got: str | None, what: str) -> None:
    """Raise TimeUnitError when ``got`` differs from ``expected``."""
    if got is None:
        raise TimeUnitError(
            f"{what} has no time unit; build it with clvmodels.rfm_summary(..., time_unit=...) "
            f"or set df.attrs['time_unit'] = {expected!r}"
        )
    if normalize_unit(got) != normalize_unit(expected):
        raise TimeUnitError(
            f"{what} is in unit {got!r} but the model was fit in unit {expected!r}; "
            f"rebuild the summary with time_unit={expected!r} (durations are never rescaled silently)"
        )
