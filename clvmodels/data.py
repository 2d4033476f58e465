"""From transactions to RFM summaries: validation, aggregation, time units.

Two engines give identical results (bit for bit: they share the reduction kernel, the CSV
reader and the parsers of text dates and amounts):

* ``engine="pandas"``: the input frame is validated with pandas and reduced by a numba kernel
  (rows scattered into buckets of customers, each bucket grouped by customer and period in
  cache; its sums equal ``np.add.reduceat``'s bit for bit);
* ``engine="duckdb"``: an embedded DuckDB reads the input (CSV and Parquet files directly,
  never as a pandas frame), parses dates, validates every row in SQL and streams three compact
  columns (customer, period number, amount) into the same numpy reduction, one hash partition
  of customers at a time (at most :data:`DUCKDB_PARTITION_ROWS` rows each), so memory stays
  bounded for files of any size;
* ``engine="auto"`` (default): DuckDB for file paths and for frames of at least
  :data:`AUTO_DUCKDB_MIN_ROWS` rows, pandas otherwise.

Both engines accept and reject the same inputs: the pandas engine uses pandas only where
pandas and DuckDB cannot differ (datetime and numeric columns) and the shared SQL otherwise.

Conventions (Fader & Hardie; the published CDNOW summaries)
-----------------------------------------------------------
* A *purchase period* is the calendar day (units D, W, M, Q, Y) or the clock hour (unit H);
  override with ``purchase_period="D"`` or ``"H"``. Several transactions of one customer in one
  period are one purchase; their amounts are summed.
* ``frequency``: number of purchase periods after the first (repeat purchases).
* ``recency``: time from the first to the last purchase period (0 without repeats).
* ``T``: time from the first purchase period to the period of ``observation_end``.
* ``monetary_value``: mean spend of the repeat purchases only, 0 without repeats.
* ``litt``: sum over the repeat purchases of the log of the time since the previous purchase
  period (BTYDplus' ``elog2cbs``; the regularity statistic of the CNBD-k models), 0 without
  repeats.
* Durations are differences of period starts, divided by the unit's length in days
  (:mod:`clvmodels.units`; a month is 365.25/12 days). ``df.attrs["time_unit"]`` records the unit.
* ``observation_end`` and ``calibration_end`` name periods: "1997-09-30" includes the whole of
  that day. Transactions after ``observation_end`` are an error, never silently dropped.

Inputs
------
A pandas DataFrame, a polars DataFrame/LazyFrame, a pyarrow Table, or a path to a ``.csv``
(``.csv.gz``, ``.txt``: comma-separated; ``.tsv``: tab-separated) or ``.parquet`` file.

Dates are never guessed. Accepted:

* date and datetime columns (pandas, polars, Arrow, Parquet; ``datetime.date`` objects);
* ISO 8601 text: ``YYYY-MM-DD``, optionally followed by a time ``HH:MM``, ``HH:MM:SS`` or
  ``HH:MM:SS.ffffff`` (separated by ``T`` or a space) and an offset ``Z``, ``+HH:MM``,
  ``+HHMM`` or ``+HH``;
* with ``datetime_format`` (strftime codes, e.g. ``"%m/%d/%Y"`` or ``"%Y%m%d"``): text or
  integers in that layout (parsed by DuckDB's ``strptime`` in both engines; ``%z``/``%Z`` are
  not accepted, see below).

Anything else (``01/02/2020``, ``20200102``, ``2 Jan 2020``) is an :class:`InputError` that
names the column, shows the rows and the ``datetime_format`` to pass.

Time zones: every date is taken at its *local wall-clock time*, the calendar day the customer
saw. A time-zone-aware column (any source) is read in its own zone; an ISO offset
(``2020-01-01T23:30:00-05:00``) is read as written, so rows with different offsets (e.g. a
column that crosses a daylight-saving change, or customers in several zones) each keep their own
wall time, and a frame and the CSV it was written to give the same summary. To count days in
UTC or another zone, convert the column before summarising (e.g.
``pd.to_datetime(col, utc=True).dt.tz_convert(None)``).
"""

from __future__ import annotations

import csv
import datetime as _dt
import functools
import gzip
import numbers
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from clvmodels import units
from clvmodels.errors import InputError

__all__ = ["rfm_summary", "calibration_holdout_summary", "AUTO_DUCKDB_MIN_ROWS"]

AUTO_DUCKDB_MIN_ROWS = 20_000_000
#: the DuckDB engine streams at most about this many rows at a time (hash partitions of
#: customers), which bounds its memory whatever the size of the input
DUCKDB_PARTITION_ROWS = 10_000_000
_NO_END = np.iinfo(np.int64).max // 4  # "no observation end given": keep every row
_US_PER_DAY = 86_400_000_000
_US_PER_HOUR = 3_600_000_000
_MAX_EXAMPLES = 5
_EPOCH = _dt.datetime(1970, 1, 1)

#: ISO 8601 dates as accepted in columns and for observation_end / calibration_end: the same
#: pattern runs in Python (``re``) and DuckDB (RE2), so it uses no class that they read
#: differently (``[0-9]``, never ``\d``)
_YEAR = r"([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"  # 0001-9999
_DATE = _YEAR + r"-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_ISO_PATTERN = (
    r"^[ \t]*" + _DATE + r"(?:[T ]([01][0-9]|2[0-3]):([0-5][0-9])"
    r"(?::([0-5][0-9])(?:[.,]([0-9]+))?)?"
    r"(?:[ \t]*(Z|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?))?)?[ \t]*$"
)
#: the common layouts (no spaces around, no offset, at most 6 decimals), which DuckDB's own
#: cast to TIMESTAMP reads exactly as the parts of the full pattern do (a test checks it)
_ISO_FAST_PATTERN = (
    "^" + _DATE + r"(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?)?$"
)
_ISO = re.compile(_ISO_PATTERN)
_ISO_PARTS = ("y", "mo", "d", "h", "mi", "s", "f", "z")
#: amounts given as text: plain decimal numbers (no thousands separators, no currency)
_NUMBER_PATTERN = r"^ *[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *$"
_PLAIN_INT_18 = r"^(?:0|-?[1-9][0-9]{0,17})$"  # fits in int64 whatever its digits
_PARTS_COLUMN = "__clv_date_parts"


# --------------------------------------------------------------------------------------------
# settings shared by both engines
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Spec:
    customer_id: str
    datetime: str
    monetary: str | None
    datetime_format: str | None
    time_unit: str
    period: str  # "D" or "H"

    @property
    def period_us(self) -> int:
        return _US_PER_DAY if self.period == "D" else _US_PER_HOUR

    @property
    def periods_per_unit(self) -> float:
        """Number of purchase periods in one time unit (the divisor of period differences)."""
        return units.days_per(self.time_unit) / units.days_per(self.period)

    @property
    def columns(self) -> list[str]:
        cols = [self.customer_id, self.datetime]
        if self.monetary is not None and self.monetary not in cols:
            cols.append(self.monetary)
        return cols


def _make_spec(customer_id, datetime, monetary, datetime_format, time_unit, purchase_period):
    unit = units.normalize_unit(time_unit)
    if purchase_period is None:
        period = "H" if unit == "H" else "D"
    else:
        period = units.normalize_unit(purchase_period)
        if period not in ("D", "H"):
            raise ValueError(f"purchase_period must be 'D' or 'H', got {purchase_period!r}")
    for name, value in (("customer_id", customer_id), ("datetime", datetime)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a column name (str), got {value!r}")
    if monetary is not None and not isinstance(monetary, str):
        raise TypeError(f"monetary must be a column name (str) or None, got {monetary!r}")
    _check_datetime_format(datetime_format)
    return _Spec(customer_id, datetime, monetary, datetime_format, unit, period)


def _check_datetime_format(fmt) -> None:
    if fmt is None:
        return
    if not isinstance(fmt, str) or "%" not in fmt:
        raise InputError(
            f"datetime_format must be a strftime format such as '%m/%d/%Y' or '%Y%m%d', got {fmt!r}"
        )
    if re.search(r"%[-#]?[zZ]", fmt):
        raise InputError(
            f"datetime_format {fmt!r} reads a time zone (%z/%Z); dates are taken at their local "
            "wall time, which such a format cannot give. Fix: leave the zone out of the format "
            "(and of the text), or write the dates in ISO 8601 with their offset "
            "('2020-01-02T10:00:00-05:00', read at the wall time written)."
        )
    con = _duck_connect()
    try:
        con.sql(f"SELECT try_strptime('', {_sql_literal(fmt)})").fetchall()
    except _duck_error_types() as exc:
        raise InputError(
            f"datetime_format {fmt!r} is not a valid strftime format ({_library_detail(exc)}). "
            "Fix: use codes such as %Y %m %d %H %M %S, e.g. datetime_format='%m/%d/%Y'."
        ) from exc
    finally:
        con.close()


# --------------------------------------------------------------------------------------------
# dates given as scalars: observation_end, calibration_end
# --------------------------------------------------------------------------------------------
def _iso_us(text: str) -> int | None:
    """Microseconds since 1970 (wall time) of an ISO 8601 string, None if it is not one."""
    match = _ISO.fullmatch(text)  # as RE2: "$" is the end of the text, not a newline before it
    if match is None:
        return None
    y, mo, d, h, mi, s, f, _ = match.groups()
    try:
        moment = _dt.datetime(
            int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0),
            int((f or "0")[:6].ljust(6, "0")),
        )  # fmt: skip
    except ValueError:  # 2021-02-29, year 0000
        return None
    return (moment - _EPOCH) // _dt.timedelta(microseconds=1)


def _format_us(text: str, fmt: str) -> int | None:
    """Microseconds since 1970 of ``text`` read with DuckDB's strptime (as the columns are)."""
    con = _duck_connect()
    try:
        row = con.execute(
            f"SELECT epoch_us(try_strptime(?, {_sql_literal(fmt)}))", [text]
        ).fetchall()
    finally:
        con.close()
    return None if row[0][0] is None else int(row[0][0])


def _moment_us(moment, spec: _Spec, what: str) -> int:
    """Microseconds since 1970 (local wall time) of a user-given date, validated."""
    if isinstance(moment, str):
        iso = _iso_us(moment)
        fmt = spec.datetime_format
        formatted = _format_us(moment, fmt) if fmt is not None else None
        if iso is None and formatted is None:
            also = f", or in your datetime_format {fmt!r}" if fmt is not None else ""
            raise InputError(
                f"{what} {moment!r} is not a date; write it in ISO 8601, e.g. '1997-09-30' or "
                f"'1997-09-30 18:00'{also}"
            )
        if iso is not None and formatted is not None and iso != formatted:
            raise InputError(
                f"{what} {moment!r} reads as {_us_text(iso)} in ISO 8601 but as "
                f"{_us_text(formatted)} with datetime_format {fmt!r}; it is never guessed. "
                "Fix: pass a pandas Timestamp or datetime.date instead of text."
            )
        return iso if iso is not None else formatted
    if moment is None or moment is pd.NaT:
        raise InputError(f"{what} is missing; give a date such as '1997-09-30'")
    if isinstance(moment, (bool, np.bool_)):
        raise InputError(
            f"{what} {moment!r} is a boolean, not a date. Fix: give a date such as '2020-01-01'."
        )
    if isinstance(moment, numbers.Number):
        raise InputError(
            f"{what} {moment!r} is a number ({type(moment).__name__}), not a date: numbers are "
            f"never read as dates (as a timestamp {moment!r} would count nanoseconds since "
            "1970). Fix: give a date such as '2020-01-01', a datetime.date, a pandas Timestamp "
            "or a numpy datetime64."
        )
    if not isinstance(moment, (_dt.date, np.datetime64)):
        raise InputError(
            f"{what} must be a date (ISO 8601 text such as '1997-09-30', datetime.date, "
            f"datetime.datetime, pandas Timestamp or numpy datetime64), got "
            f"{type(moment).__name__} {moment!r}"
        )
    try:
        ts = pd.Timestamp(moment)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"{what} {moment!r} is out of range: {exc}") from exc
    if ts is pd.NaT:
        raise InputError(f"{what} is missing (NaT); give a date such as '1997-09-30'")
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)  # its wall time, as for the columns
    return int(np.datetime64(ts.to_datetime64(), "us").astype(np.int64))


def _us_text(us: int) -> str:
    return str(pd.Timestamp(us, unit="us"))


def _period_of(moment, spec: _Spec, what: str) -> int:
    """Period number (days or hours since 1970-01-01) of a user-given date."""
    return _moment_us(moment, spec, what) // spec.period_us


def _period_to_timestamp(period: int, spec: _Spec) -> str:
    return str(pd.Timestamp(period * spec.period_us, unit="us"))


# --------------------------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------------------------
def _rows_error(
    column: str, problem: str, n_bad: int, examples: pd.DataFrame, fix: str
) -> InputError:
    noun = "row" if n_bad == 1 else "rows"
    return InputError(
        f"column {column!r}: {n_bad} {noun} {problem}; first examples (by row position):\n"
        f"{examples.to_string()}\nFix: {fix}"
    )


# the row checks both engines make, with the same messages
def _missing_ids_error(spec: _Spec, n_bad: int, examples: pd.DataFrame) -> InputError:
    return _rows_error(spec.customer_id, "have a missing customer id", n_bad, examples, _FIX_IDS)


def _missing_dates_error(spec: _Spec, n_bad: int, examples: pd.DataFrame) -> InputError:
    return _rows_error(spec.datetime, "have a missing date", n_bad, examples, _FIX_MISSING_DATES)


def _bad_dates_error(spec: _Spec, n_bad: int, examples: pd.DataFrame) -> InputError:
    fmt = f" with datetime_format={spec.datetime_format!r}" if spec.datetime_format else ""
    return _rows_error(
        spec.datetime,
        f"cannot be read as dates{fmt}",
        n_bad,
        examples,
        _date_fix(spec, examples[spec.datetime].tolist()),
    )


def _bad_amounts_error(
    spec: _Spec, n_bad: int, all_not_numbers: bool, examples: pd.DataFrame
) -> InputError:
    problem = "are not numbers" if all_not_numbers else "are missing, not numbers or infinite"
    return _rows_error(spec.monetary, problem, n_bad, examples, _FIX_AMOUNT)


def _negative_amounts_error(spec: _Spec, n_bad: int, examples: pd.DataFrame) -> InputError:
    return _rows_error(spec.monetary, "are negative", n_bad, examples, _FIX_AMOUNT)


def _after_end_error(
    spec: _Spec, what: str, end_period: int, n_bad: int, examples: pd.DataFrame
) -> InputError:
    return _rows_error(
        spec.datetime,
        f"are after the {what} {_period_to_timestamp(end_period, spec)[:19]} ({spec.period} "
        "periods)",
        n_bad,
        examples,
        _after_end_fix(spec, what),
    )


def _missing_columns_error(spec: _Spec, available: list[str]) -> None:
    missing = [c for c in spec.columns if c not in available]
    if missing:
        roles = {spec.customer_id: "customer_id", spec.datetime: "datetime"}
        if spec.monetary is not None:
            roles[spec.monetary] = "monetary"
        described = ", ".join(f"{c!r} (the {roles[c]} argument)" for c in missing)
        padded = [str(a) for a in available if str(a).strip() in missing and str(a) not in missing]
        hint = (
            f" (the file's names have spaces around them: {', '.join(map(repr, padded))})"
            if padded
            else ""
        )
        raise InputError(
            f"the transactions have no column {described}; available columns: "
            f"{', '.join(map(str, available)) or '(none)'}{hint}. Fix: pass the names of your "
            f"columns, e.g. customer_id='user', datetime='order_date'"
            + (", monetary='revenue'" if spec.monetary is not None else "")
            + "."
        )


_ACCEPTED_DATES = (
    "without datetime_format, dates must be date/datetime columns or ISO 8601 text "
    "('2024-03-01', '2024-03-01 14:05:00', '2024-03-01T14:05:00+01:00')"
)
_FIX_MISSING_DATES = (
    "every transaction needs a date: fill in or remove these rows before summarising"
)
_FIX_IDS = "every transaction needs a customer id: fill in or remove these rows before summarising"
_FIX_AMOUNT = (
    "amounts must be finite numbers >= 0 (zero is allowed; text must be a plain number such as "
    "'12.50', without thousands separators or currency); net refunds into their purchase or "
    "remove these rows before summarising"
)
_FIX_CSV = (
    "give a UTF-8 text file whose first line is the header, with fields separated by commas "
    "(tabs for .tsv), quoted with double quotes where needed, and the same number of fields on "
    "every line; or read it yourself and pass a DataFrame"
)
_FIX_PARQUET = (
    "check that the file is a complete Parquet file (export it again), or read it yourself and "
    "pass a DataFrame"
)


def _date_fix(spec: _Spec, raw_values) -> str:
    """How to fix unreadable dates, with the datetime_format their layout suggests."""
    if spec.datetime_format is not None:
        return (
            f"check datetime_format={spec.datetime_format!r} against these rows (strftime codes: "
            f"%Y year, %m month, %d day, %H:%M:%S time), or clean the rows; {_ACCEPTED_DATES}"
        )
    texts = [str(v).strip() for v in raw_values if v is not None and not pd.isna(v)]
    for text in texts:
        match = re.match(r"^([0-9]{1,2})([/.-])([0-9]{1,2})\2([0-9]{2,4})", text)
        if match:
            sep, year = match.group(2), "%Y" if len(match.group(4)) == 4 else "%y"
            clock = " %H:%M" if re.search(r"[0-9]:[0-9]{2}", text) else ""
            clock += ":%S" if re.search(r"[0-9]:[0-9]{2}:[0-9]{2}", text) else ""
            us = f"%m{sep}%d{sep}{year}{clock}"
            eu = f"%d{sep}%m{sep}{year}{clock}"
            pairs = [
                (int(m.group(1)), int(m.group(2)))
                for m in (re.match(r"^([0-9]{1,2})[/.-]([0-9]{1,2})", t) for t in texts)
                if m
            ]
            if any(first > 12 for first, _ in pairs):
                return (
                    f"a date such as {text!r} is not ISO 8601; it looks day first: pass "
                    f"datetime_format={eu!r} (or {us!r} if it is month first); {_ACCEPTED_DATES}"
                )
            if any(second > 12 for _, second in pairs):
                return (
                    f"a date such as {text!r} is not ISO 8601; it looks month first (US): pass "
                    f"datetime_format={us!r} (or {eu!r} if it is day first); {_ACCEPTED_DATES}"
                )
            return (
                f"a date such as {text!r} could be month/day or day/month and is never guessed: "
                f"pass datetime_format={us!r} (month first, as in the US) or "
                f"datetime_format={eu!r} (day first); {_ACCEPTED_DATES}"
            )
        if re.fullmatch(r"[0-9]{8}", text):
            return (
                f"{text!r} has no separators: pass datetime_format='%Y%m%d' if it is year, month, "
                f"day; {_ACCEPTED_DATES}"
            )
    return (
        f"{_ACCEPTED_DATES}; for other layouts pass datetime_format (strftime codes, e.g. "
        "datetime_format='%m/%d/%Y' for US dates, '%d/%m/%Y' or '%Y%m%d')"
    )


def _after_end_fix(spec: _Spec, what: str) -> str:
    return (
        f"pass a later {what}, filter the transactions to dates up to it, or pass "
        f"after_observation_end='exclude' to leave the later rows out explicitly "
        f"(the {what} period is included: '1997-09-30' includes the whole day)"
    )


def _library_detail(exc: BaseException) -> str:
    """The informative part of a library's error message, on one line."""
    lines = []
    for line in str(exc).splitlines():
        line = line.strip()
        if not line:
            continue
        if line.lower().startswith(("possible", "* ", "file =", "delimiter =", "quote =")):
            break
        line = re.sub(r"^[A-Za-z ]*Error: ", "", line)
        lines.append(line)
        if len(lines) == 3:
            break
    return "; ".join(lines).rstrip(".") or type(exc).__name__


# --------------------------------------------------------------------------------------------
# input resolution, files and the errors of the libraries that read them
# --------------------------------------------------------------------------------------------
class _MissingFileError(InputError, FileNotFoundError):
    """A transactions path that does not exist (an InputError and a FileNotFoundError)."""


def _file_kind(path: Path) -> str:
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith((".parquet", ".pq")):
        return "parquet"
    if suffixes.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
        return "csv"
    raise InputError(
        f"cannot tell the format of {str(path)!r} from its name; give a .csv or .parquet file "
        "(or read it yourself and pass a DataFrame)"
    )


def _resolve(transactions):
    """Return ("pandas", DataFrame) | ("arrow", pyarrow.Table) | ("csv"|"parquet", Path)."""
    if isinstance(transactions, pd.DataFrame):
        return "pandas", transactions
    if isinstance(transactions, (str, os.PathLike)):
        path = Path(transactions)
        if not path.exists():
            raise _MissingFileError(
                f"transactions file {str(path)!r} does not exist. Fix: check the path (relative "
                f"paths start in {os.getcwd()!r})."
            )
        if path.is_dir():
            raise InputError(
                f"transactions path {str(path)!r} is a directory; give one .csv or .parquet file "
                "(or read the directory yourself and pass a DataFrame)"
            )
        return _file_kind(path), path
    module = type(transactions).__module__
    if module.startswith("polars"):
        import polars as pl

        if isinstance(transactions, pl.LazyFrame):
            transactions = transactions.collect()
        if isinstance(transactions, pl.DataFrame):
            return "arrow", transactions.to_arrow()
    if module.startswith("pyarrow") and hasattr(transactions, "schema"):
        if not hasattr(transactions, "select"):  # a RecordBatch
            import pyarrow as pa

            transactions = pa.Table.from_batches([transactions])
        return "arrow", transactions
    raise InputError(
        f"transactions must be a pandas or polars DataFrame or a path to a CSV/Parquet file, "
        f"got {type(transactions).__name__}"
    )


def _choose_engine(engine: str, kind: str, source) -> str:
    if engine not in ("auto", "pandas", "duckdb"):
        raise ValueError(f"engine must be 'auto', 'pandas' or 'duckdb', got {engine!r}")
    if engine != "auto":
        return engine
    if kind in ("csv", "parquet"):
        return "duckdb"
    n_rows = len(source) if kind == "pandas" else source.num_rows
    return "duckdb" if n_rows >= AUTO_DUCKDB_MIN_ROWS else "pandas"


def _duck_error_types() -> tuple[type[BaseException], ...]:
    import duckdb

    return (duckdb.Error,)


def _library_error_types() -> tuple[type[BaseException], ...]:
    """Errors of the readers that mean "this input cannot be read" (not a bug of ours)."""
    import duckdb
    import pyarrow as pa

    return (
        duckdb.Error,
        pa.ArrowException,
        UnicodeDecodeError,
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        OSError,
        EOFError,
        csv.Error,
    )


def _is_our_sql_bug(exc: BaseException) -> bool:
    """DuckDB errors that are not about the input: a bug in our SQL, memory, an interrupt."""
    import duckdb

    return isinstance(
        exc,
        (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException,
         duckdb.InternalException, duckdb.OutOfMemoryException, duckdb.InterruptException),
    )  # fmt: skip


def _read_failure(kind: str, source, exc: BaseException) -> InputError:
    """An InputError that says what could not be read, why, and how to fix it."""
    detail = _library_detail(exc)
    if kind in ("csv", "parquet"):
        what, label = repr(str(source)), kind.upper() if kind == "csv" else "Parquet"
    else:
        what, label = "the transactions", "a table"
    if isinstance(exc, PermissionError):
        return InputError(f"cannot read {what}: permission denied. Fix: check its permissions.")
    if isinstance(exc, UnicodeDecodeError) or re.search(r"unicode|utf-?8", detail, re.I):
        return InputError(
            f"cannot read {what}: it is not UTF-8 text ({detail}). Fix: save it as UTF-8 (e.g. "
            "'CSV UTF-8' in a spreadsheet), or read it yourself with its encoding and pass a "
            "DataFrame."
        )
    fix = {"csv": _FIX_CSV, "parquet": _FIX_PARQUET}.get(
        kind, "check the column types (ids: numbers or text; dates: dates or text; amounts: "
        "numbers or text), or convert the columns before summarising"
    )  # fmt: skip
    return InputError(f"cannot read {what} as {label}: {detail}. Fix: {fix}.")


def _csv_delimiter(path: Path) -> str:
    return "\t" if path.name.lower().endswith(".tsv") else ","


def _csv_header(path: Path) -> list[str]:
    """The column names on the first line of a CSV file, read without guessing anything."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=_csv_delimiter(path), quotechar='"', strict=True)
            header = next(reader, None)
    except (UnicodeDecodeError, OSError, EOFError, csv.Error) as exc:
        raise _read_failure("csv", path, exc) from exc
    if header is None:
        raise InputError(
            f"transactions file {str(path)!r} is empty (no header, no rows). Fix: {_FIX_CSV}."
        )
    if not any(name.strip() for name in header):
        raise InputError(
            f"the first line of {str(path)!r} is blank; it must be the header (the column "
            f"names). Fix: {_FIX_CSV}."
        )
    names, seen = [], set()
    for i, name in enumerate(header):
        name = name or f"column{i}"
        candidate, k = name, 0
        while candidate in seen:
            k += 1
            candidate = f"{name}_{k}"
        seen.add(candidate)
        names.append(candidate)
    return names


def _csv_relation(path: Path) -> tuple[str, list[str]]:
    """DuckDB's reader of a CSV file with a fixed dialect (no sniffing: the header row, commas
    or tabs for .tsv, double quotes, every column as text) and the names of its columns.

    Both engines read CSV files with it, so they see the same text."""
    names = _csv_header(path)  # a repeated name is renamed name_1, ... (as DuckDB does)
    columns = "{" + ", ".join(f"{_sql_literal(n)}: 'VARCHAR'" for n in names) + "}"
    relation = (
        f"read_csv({_sql_literal(str(path))}, auto_detect=false, header=true, "
        f"columns={columns}, delim={_sql_literal(_csv_delimiter(path))}, quote='\"', "
        "escape='\"', null_padding=false)"
    )
    return relation, names


def _duck_connect():
    import duckdb

    con = duckdb.connect()
    try:  # wall times never depend on the machine's zone
        con.execute("SET TimeZone='UTC'")
    except duckdb.Error:  # pragma: no cover - DuckDB without ICU has no session zone
        pass
    return con


# --------------------------------------------------------------------------------------------
# typing the columns: one SQL text for both engines
# --------------------------------------------------------------------------------------------
def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _is_duck_numeric(dtype: str) -> bool:
    return dtype.startswith(
        ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
         "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL")
    )  # fmt: skip


def _is_duck_text(dtype: str) -> bool:
    return dtype.startswith(("VARCHAR", "ENUM")) or dtype == "STRING"


def _zone_wall_sql(column: str, zone: str | None) -> str:
    """SQL of the wall time in ``zone`` of a TIMESTAMP WITH TIME ZONE column."""
    utc = f"CAST(timezone('UTC', {column}) AS TIMESTAMP)"
    if zone is None or zone in ("UTC", "Z", "Etc/UTC", "utc", "+00:00", "GMT"):
        return utc
    offset = re.fullmatch(r"([+-])([0-9]{2}):?([0-9]{2})", zone)
    if offset:
        minutes = int(offset.group(2)) * 60 + int(offset.group(3))
        return f"({utc} {offset.group(1)} INTERVAL {minutes} MINUTE)"
    return f"CAST(timezone({_sql_literal(zone)}, {column}) AS TIMESTAMP)"


def _date_sql(con, spec: _Spec, dtype: str, zone: str | None = None) -> tuple[str | None, str]:
    """(SQL of the ISO parts column or None, SQL of the wall-clock TIMESTAMP of the date
    column, NULL where the text is not a date) for a relation ``src`` read by ``con``."""
    dt = _quote(spec.datetime)
    shown, dtype = dtype, dtype.upper()
    if dtype.startswith("TIMESTAMP") and "TIME ZONE" in dtype:
        return None, _zone_wall_sql(dt, zone)
    if dtype.startswith(("TIMESTAMP", "DATE")):
        return None, f"CAST({dt} AS TIMESTAMP)"
    text = dt if dtype.startswith("VARCHAR") else f"CAST({dt} AS VARCHAR)"
    if spec.datetime_format is not None and (_is_duck_text(dtype) or _is_duck_numeric(dtype)):
        if dtype.startswith(("FLOAT", "DOUBLE", "DECIMAL")):
            raise InputError(
                f"column {spec.datetime!r} holds fractional numbers ({dtype}), which cannot be "
                f"read with datetime_format {spec.datetime_format!r}. Fix: store the dates as "
                "text or integers (e.g. 19970101 with datetime_format='%Y%m%d')."
            )
        return None, f"try_strptime({text}, {_sql_literal(spec.datetime_format)})"
    if _is_duck_numeric(dtype) or dtype == "BOOLEAN":
        example = con.sql(f"SELECT {dt} FROM src WHERE {dt} IS NOT NULL LIMIT 1").fetchall()
        if not example:  # every date is missing: that is the error to report
            return None, "NULL::TIMESTAMP"
        raise InputError(
            f"column {spec.datetime!r} holds numbers ({dtype}), not dates (e.g. "
            f"{example[0][0] if example else None!r}); numbers are never read as dates. Fix: "
            "convert it to datetimes, or pass datetime_format (for CDNOW-style integers such as "
            "19970101 use datetime_format='%Y%m%d')."
        )
    if not _is_duck_text(dtype):
        raise InputError(
            f"column {spec.datetime!r} holds {shown} values, not dates. Fix: give a date, "
            "datetime or ISO 8601 text column."
        )
    names = ", ".join(_sql_literal(n) for n in _ISO_PARTS)
    # the parts are extracted only where the cheap cast of the common layouts does not apply
    parts = (
        f"CASE WHEN regexp_full_match({text}, {_sql_literal(_ISO_FAST_PATTERN)}) THEN NULL "
        f"ELSE regexp_extract({text}, {_sql_literal(_ISO_PATTERN)}, [{names}]) END"
    )
    p = _PARTS_COLUMN
    ts = (
        f"CASE WHEN {p} IS NULL THEN TRY_CAST({text} AS TIMESTAMP) ELSE "
        f"TRY_CAST({p}.y || '-' || {p}.mo || '-' || {p}.d || ' ' || "
        f"(CASE WHEN {p}.h = '' THEN '00:00' ELSE {p}.h || ':' || {p}.mi END) || ':' || "
        f"(CASE WHEN {p}.s = '' THEN '00' ELSE {p}.s END) || '.' || "
        f"(CASE WHEN {p}.f = '' THEN '0' ELSE left({p}.f, 6) END) AS TIMESTAMP) END"
    )
    return parts, ts


def _amount_sql(spec: _Spec, dtype: str) -> str:
    """SQL of the amount as a DOUBLE (NULL where it is not a number)."""
    amt = _quote(spec.monetary)
    shown, dtype = dtype, dtype.upper()
    if dtype == "BOOLEAN":
        raise InputError(
            f"column {spec.monetary!r} holds booleans, not amounts. Fix: pass the spend column."
        )
    if _is_duck_numeric(dtype):
        return f"CAST({amt} AS DOUBLE)"
    if _is_duck_text(dtype):
        text = amt if dtype.startswith("VARCHAR") else f"CAST({amt} AS VARCHAR)"
        return (
            f"CASE WHEN regexp_full_match({text}, {_sql_literal(_NUMBER_PATTERN)}) "
            f"THEN TRY_CAST(trim({text}) AS DOUBLE) END"
        )
    raise InputError(
        f"column {spec.monetary!r} holds {shown} values, not amounts. Fix: pass the spend column "
        "(numbers, or text such as '12.50')."
    )


def _prepared_view(con, spec: _Spec, zone: str | None = None):
    """Create view ``prep`` over ``src`` (with the ISO parts where needed). Returns the column
    types of ``src``, the SQL of the wall-clock timestamp and the InputError a date column of
    the wrong type raises (None if its type is fine; the timestamp is then NULL), which the
    validation raises in its turn, after the missing ids and dates, as the pandas engine does."""
    types = dict(con.sql("SELECT column_name, column_type FROM (DESCRIBE src)").fetchall())
    _missing_columns_error(spec, list(types))
    error = None
    try:
        parts, ts = _date_sql(con, spec, types[spec.datetime], zone)
    except InputError as exc:
        error, parts, ts = exc, None, "NULL::TIMESTAMP"
    extra = f", {parts} AS {_PARTS_COLUMN}" if parts is not None else ""
    con.execute(f"CREATE OR REPLACE TEMP VIEW prep AS SELECT *{extra} FROM src")
    return types, ts, error


def _duck_eval(frame: pd.DataFrame, spec: _Spec, what: str) -> np.ndarray:
    """Evaluate the shared SQL of the date or the amount on one column of a pandas frame.

    ``what="date"``: a masked int64 array of microseconds since 1970 (wall time), masked where
    the value is not a date; ``"amount"``: float64, NaN where the value is not a number."""
    import pyarrow as pa

    column = spec.datetime if what == "date" else spec.monetary
    con = _duck_connect()
    try:
        con.register("src_input", frame[[column]])
        con.execute("CREATE TEMP VIEW src AS SELECT * FROM src_input")
        types = dict(con.sql("SELECT column_name, column_type FROM (DESCRIBE src)").fetchall())
        if what == "date":
            parts, ts = _date_sql(con, spec, types[column])
            extra = f", {parts} AS {_PARTS_COLUMN}" if parts is not None else ""
            con.execute(f"CREATE TEMP VIEW prep AS SELECT *{extra} FROM src")
            table = con.sql(f"SELECT epoch_us({ts}) AS v FROM prep").to_arrow_table()
            values = table.column("v")
            ok = ~np.asarray(values.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            return np.ma.MaskedArray(
                values.fill_null(0).to_numpy().astype(np.int64, copy=False), mask=~ok
            )
        sql = _amount_sql(spec, types[column])
        table = con.sql(f"SELECT {sql} AS v FROM src").to_arrow_table()
        return table.column("v").cast(pa.float64()).to_numpy(zero_copy_only=False)
    finally:
        con.close()


# --------------------------------------------------------------------------------------------
# frames: the conversions both engines apply before reading a pandas frame
# --------------------------------------------------------------------------------------------
def _prepare_frame(frame: pd.DataFrame, spec: _Spec) -> pd.DataFrame:
    """The needed columns of a pandas frame, made unambiguous for both engines:

    * tz-aware dates -> their wall time; object columns of date/datetime objects -> datetime64
      (each at its own wall time);
    * object columns of ids that mix types (``1`` and ``'1'``) -> InputError;
    * object columns of amounts: numbers -> float64, a mix of numbers and text -> text.
    """
    out = frame[spec.columns]
    changes = {}
    ids = out[spec.customer_id]
    if ids.dtype == object:
        inferred = pd.api.types.infer_dtype(ids, skipna=True)
        if inferred in ("mixed", "mixed-integer", "mixed-integer-float"):
            kinds = ids.dropna().map(lambda v: type(v).__name__)
            first = kinds.drop_duplicates().index[:_MAX_EXAMPLES]
            examples = pd.DataFrame({spec.customer_id: ids.loc[first], "type": kinds.loc[first]})
            raise InputError(
                f"column {spec.customer_id!r} mixes id types ({', '.join(sorted(set(kinds)))}): "
                f"1 and '1' would be different customers in one engine and the same in "
                f"another; examples:\n{examples.to_string()}\nFix: make the ids one type, e.g. "
                f"df[{spec.customer_id!r}] = df[{spec.customer_id!r}].astype(str)."
            )
    dt = out[spec.datetime]
    if isinstance(dt.dtype, pd.DatetimeTZDtype):  # local wall time
        changes[spec.datetime] = dt.dt.tz_localize(None)
    elif dt.dtype == object:
        inferred = pd.api.types.infer_dtype(dt, skipna=True)
        if inferred in ("datetime", "date", "datetime64"):
            values = [
                v.replace(tzinfo=None) if getattr(v, "tzinfo", None) is not None else v
                for v in dt.to_numpy()
            ]
            changes[spec.datetime] = pd.Series(
                pd.to_datetime(values), index=dt.index, name=spec.datetime
            ).astype("datetime64[us]")
    if spec.monetary is not None:
        amt = out[spec.monetary]
        if amt.dtype == object:
            inferred = pd.api.types.infer_dtype(amt, skipna=True)
            if inferred in ("integer", "floating", "decimal", "mixed-integer-float"):
                changes[spec.monetary] = pd.to_numeric(amt, errors="coerce").astype("float64")
            elif inferred not in ("string", "empty"):
                changes[spec.monetary] = amt.map(_amount_text, na_action="ignore").astype(object)
    return out.assign(**changes) if changes else out


def _amount_text(value):
    """One amount of a mixed object column as text (numbers exactly, other objects as
    themselves, so they are reported as not numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return repr(float(value))
    return f"<{type(value).__name__}> {value!r}"


def _arrow_wall_time(table, spec: _Spec):
    """A pyarrow table whose tz-aware date column is replaced by its wall time."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = table.select(spec.columns)
    column = table.column(spec.datetime)
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        index = table.column_names.index(spec.datetime)
        table = table.set_column(index, spec.datetime, pc.local_timestamp(column))
    return table


# --------------------------------------------------------------------------------------------
# pandas engine
# --------------------------------------------------------------------------------------------
def _pandas_frame(kind: str, source, spec: _Spec) -> pd.DataFrame:
    if kind == "pandas":
        _missing_columns_error(spec, list(source.columns))
        return source
    if kind == "arrow":
        _missing_columns_error(spec, list(source.column_names))
        return source.select(spec.columns).to_pandas()
    if kind == "parquet":
        import pyarrow.parquet as pq

        names = pq.read_schema(source).names
        _missing_columns_error(spec, names)
        return pd.read_parquet(source, columns=spec.columns)
    relation, names = _csv_relation(source)
    _missing_columns_error(spec, names)
    con = _duck_connect()
    try:
        cols = ", ".join(_quote(c) for c in spec.columns)
        return con.sql(f"SELECT {cols} FROM {relation}").to_arrow_table().to_pandas()
    finally:
        con.close()


def _examples(frame: pd.DataFrame, spec: _Spec, mask: np.ndarray) -> pd.DataFrame:
    pos = np.flatnonzero(mask)[:_MAX_EXAMPLES]
    out = frame[spec.columns].iloc[pos]
    out.index = pd.Index(pos, name="row")
    return out


def _pandas_dates_us(frame: pd.DataFrame, spec: _Spec) -> np.ndarray:
    """The datetime column as int64 microseconds since 1970 (local wall time), validated."""
    col = frame[spec.datetime]
    missing = col.isna().to_numpy()
    if missing.any():
        raise _missing_dates_error(spec, int(missing.sum()), _examples(frame, spec, missing))
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        col = col.dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(col.dtype):
        return col.to_numpy(dtype="datetime64[us]").view(np.int64)
    parsed = _duck_eval(frame, spec, "date")
    bad = np.ma.getmaskarray(parsed)
    if bad.any():
        raise _bad_dates_error(spec, int(bad.sum()), _examples(frame, spec, bad))
    return np.asarray(parsed.data, dtype=np.int64)


def _pandas_amounts(frame: pd.DataFrame, spec: _Spec) -> np.ndarray:
    col = frame[spec.monetary]
    if pd.api.types.is_bool_dtype(col.dtype):
        raise InputError(
            f"column {spec.monetary!r} holds booleans, not amounts. Fix: pass the spend column."
        )
    if pd.api.types.is_numeric_dtype(col.dtype) and not isinstance(col.dtype, pd.CategoricalDtype):
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    else:
        values = _duck_eval(frame, spec, "amount")
    bad = ~np.isfinite(values)
    if bad.any():
        not_number = bad & col.notna().to_numpy() & ~np.isinf(values)
        raise _bad_amounts_error(
            spec, int(bad.sum()), bool(not_number[bad].all()), _examples(frame, spec, bad)
        )
    negative = values < 0
    if negative.any():
        raise _negative_amounts_error(spec, int(negative.sum()), _examples(frame, spec, negative))
    return values


def _pandas_validated(kind, source, spec):
    """(frame, customer codes, unique ids, period numbers, amounts or None), all validated."""
    frame = _pandas_frame(kind, source, spec)
    if len(frame) == 0:
        raise InputError("the transactions are empty: there is nothing to summarise")
    frame = _prepare_frame(frame, spec)
    ids = frame[spec.customer_id]
    missing = ids.isna().to_numpy()
    if missing.any():
        raise _missing_ids_error(spec, int(missing.sum()), _examples(frame, spec, missing))
    stamps = _pandas_dates_us(frame, spec)
    amounts = _pandas_amounts(frame, spec) if spec.monetary is not None else None
    codes, uniques = _factorize_ids(ids)
    periods = stamps // spec.period_us
    return frame, codes, uniques, periods, amounts


# --------------------------------------------------------------------------------------------
# customer ids
# --------------------------------------------------------------------------------------------
def _factorize_ids(ids: pd.Series):
    """(codes, sorted unique ids). Dense integer ids take an O(n) bucket path, others a hash."""
    if pd.api.types.is_integer_dtype(ids.dtype) and not isinstance(ids.dtype, pd.CategoricalDtype):
        values = ids.to_numpy(dtype=np.int64)
        low, high = int(values.min()), int(values.max())
        if high - low < 4 * len(values) + 1024:
            shifted = values - low
            present = np.zeros(high - low + 1, dtype=bool)
            present[shifted] = True
            rank = np.cumsum(present, dtype=np.int64) - 1
            uniques = pd.Index(np.flatnonzero(present) + low).astype(ids.dtype)
            return rank[shifted], uniques
    try:
        codes, uniques = pd.factorize(ids, sort=True)
    except TypeError:  # pragma: no cover - unorderable ids (mixed types are rejected before)
        codes, uniques = pd.factorize(ids, sort=False)
    return codes.astype(np.int64), uniques


def _factorize_arrow(column):
    """(codes, sorted unique ids as a pandas Index) of a pyarrow ChunkedArray of ids."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_integer(column.type):
        return _factorize_ids(pd.Series(column.to_numpy()))
    encoded = pc.dictionary_encode(column).combine_chunks()
    dictionary = encoded.dictionary
    order = pc.sort_indices(dictionary).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    codes = rank[encoded.indices.to_numpy(zero_copy_only=False)]
    return codes, pd.Index(dictionary.take(pa.array(order)).to_pandas())


def _csv_ids(ids: pd.Index) -> pd.Index:
    """The ids of a CSV file (read as text): int64 when every id is written as a plain integer
    (``str(int(id)) == id``: no leading zeros, sign or spaces), the text as written otherwise."""
    text = pd.Index(ids).astype(object)
    if len(text) == 0 or not all(isinstance(v, str) for v in text):
        return pd.Index(ids)
    values = np.asarray(text, dtype=object)
    if not pd.Series(values).str.fullmatch(r"0|-?[1-9][0-9]{0,18}").all():
        return pd.Index(ids)
    as_int = np.array([int(v) for v in values], dtype=object)
    if (as_int > np.iinfo(np.int64).max).any() or (as_int < np.iinfo(np.int64).min).any():
        return pd.Index(ids)
    return pd.Index(as_int.astype(np.int64))


def _id_dtype(kind: str, source, spec: _Spec):
    """The pandas dtype the ids have in the input (None for CSV files: :func:`_csv_ids`)."""
    if kind == "pandas":
        return source[spec.customer_id].dtype
    if kind == "csv":
        return None
    import pyarrow as pa

    if kind == "arrow":
        column = source.column(spec.customer_id)
        if pa.types.is_dictionary(column.type):
            return column.to_pandas().dtype
        # as the pandas engine reads it (with the table's pandas metadata: Int64, string...)
        return source.select(spec.columns).slice(0, 0).to_pandas()[spec.customer_id].dtype
    import pyarrow.parquet as pq

    schema = pq.read_schema(source)
    field = schema.field(spec.customer_id)
    if pa.types.is_dictionary(field.type):
        table = pq.read_table(source, columns=[spec.customer_id])
        return table.column(spec.customer_id).to_pandas().dtype
    return schema.empty_table().to_pandas()[spec.customer_id].dtype


def _as_index_values(ids, dtype):
    values = ids.to_numpy() if isinstance(ids, (pd.Series, pd.Index)) else np.asarray(ids)
    if dtype is not None:
        try:
            return pd.Index(values).astype(dtype)
        except (TypeError, ValueError):  # pragma: no cover - exotic id types
            return pd.Index(values)
    return pd.Index(ids)


def _pandas_after(frame, spec, periods, end_period, what):
    late = periods > end_period
    if late.any():
        raise _after_end_error(
            spec, what, end_period, int(late.sum()), _examples(frame, spec, late)
        )


def _aggregate(codes, periods, amounts, n_customers):
    """Per customer: first period, last period, number of periods, spend of all periods and of
    the first period (NaN-free), and the sum of the logs of the gaps (in periods) between
    consecutive purchase periods. Customers without rows get n_periods == 0.

    The rows are grouped by customer and period by the numba kernel :func:`_summarise_rows`
    (one bucket pass, then each bucket in cache); its sums are those of ``np.add.reduceat``
    over the rows of each (customer, period) in row order, then over the periods of each
    customer, and its log-gap sums those of ``np.bincount`` over ``np.log`` of the gaps, to
    the last bit (tests/test_rfm_fast_paths.py checks both against numpy).
    """
    first = np.zeros(n_customers, dtype=np.int64)
    last = np.zeros(n_customers, dtype=np.int64)
    count = np.zeros(n_customers, dtype=np.int64)
    total = np.zeros(n_customers)
    first_amount = np.zeros(n_customers)
    log_gaps = np.zeros(n_customers)
    n_rows = len(codes)
    if n_rows == 0:
        return first, last, count, total, first_amount, log_gaps
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    periods = np.ascontiguousarray(periods, dtype=np.int64)
    pmin = int(periods.min())
    span = int(periods.max()) - pmin + 1
    period_bits = max(int(span - 1).bit_length(), 1)
    # buckets of 2**bucket_bits customers holding ~8,192 rows each: one pass scatters the rows
    # into buckets, then each bucket is grouped in cache
    wanted = 8192 * n_customers / n_rows
    bucket_bits = int(min(16, max(4, round(np.log2(max(wanted, 1.0))))))
    bucket_bits = min(bucket_bits, 62 - period_bits)
    if bucket_bits < 1:  # pragma: no cover - periods spanning more than 2**61
        raise InputError("the dates span too many purchase periods to summarise")
    # log(gap) for every possible gap, computed by numpy as np.log(np.diff(...)) would; a
    # span too long for a table sends the gaps back to be logged here
    with_table = span - 1 <= 4 * n_rows + 65_536
    log_table = np.log(np.arange(1, span, dtype=np.float64)) if with_table else np.empty(0)
    gap_out = np.empty(0) if with_table else np.zeros(n_rows)
    owner_out = np.empty(0, dtype=np.int64) if with_table else np.zeros(n_rows, dtype=np.int64)
    with_amounts = amounts is not None
    amounts = np.ascontiguousarray(amounts, dtype=np.float64) if with_amounts else np.empty(0)
    _compiled_summarise_rows()(
        codes, periods, amounts, n_customers, pmin, period_bits, bucket_bits, log_table,
        first, last, count, total, first_amount, log_gaps, gap_out, owner_out,
        np.empty(n_rows, dtype=np.int64), np.empty(n_rows if with_amounts else 0),
    )  # fmt: skip
    if not with_table:
        is_gap = gap_out > 0
        log_gaps = np.bincount(
            owner_out[is_gap], weights=np.log(gap_out[is_gap]), minlength=n_customers
        )
    return first, last, count, total, first_amount, log_gaps


@functools.cache
def _compiled_summarise_rows():
    """:func:`_summarise_rows` compiled by numba (imported and compiled at the first summary;
    cached on disk)."""
    import numba

    return numba.njit(cache=True, error_model="numpy", boundscheck=False)(_summarise_rows)


def _summarise_rows(
    codes, periods, amounts, n_customers, pmin, period_bits, bucket_bits, log_table,
    first, last, count, total, first_amount, log_gaps, gap_out, owner_out, key_buf, amt_buf,
):  # fmt: skip
    """Fill the per-customer outputs of :func:`_aggregate` (numba kernel; plain Python runs it
    too, slowly).

    1. Scatter the rows into buckets of ``2**bucket_bits`` consecutive customer codes (stable:
       each keeps its rows in row order), packing (customer within bucket, period - pmin).
    2. In each bucket: a counting sort by customer, then the periods of each customer in order
       (stable: insertion sort, merge sort for long histories; a date-ordered input is already
       in order), then one walk over the periods.

    Sums are numpy's: ``np.add.reduceat`` of a segment ``x[s:e]`` is
    ``x[s] + pairwise(x[s+1:e])`` with numpy's pairwise summation (loops_utils.h.src: plain
    from -0.0 below 8 terms, 8 accumulators up to 128, halves above), first over the rows of
    each period, then over the periods of the customer. Log gaps add up from 0.0 in order, as
    ``np.bincount`` does; with an empty ``log_table`` the gaps go to ``gap_out`` (by sorted
    row, 0 elsewhere) and their customer to ``owner_out``.
    """
    n = len(codes)
    with_amounts = len(amounts) == n
    with_table = len(log_table) > 0
    n_buckets = (n_customers >> bucket_bits) + 1
    bucket_size = 1 << bucket_bits
    local_mask = bucket_size - 1
    period_mask = (1 << period_bits) - 1
    bucket_start = np.zeros(n_buckets + 1, np.int64)
    for i in range(n):
        bucket_start[(codes[i] >> bucket_bits) + 1] += 1
    biggest = 0
    for b in range(n_buckets):
        biggest = max(biggest, bucket_start[b + 1])
        bucket_start[b + 1] += bucket_start[b]
    fill = bucket_start[:-1].copy()
    for i in range(n):
        c = codes[i]
        j = fill[c >> bucket_bits]
        fill[c >> bucket_bits] = j + 1
        key_buf[j] = ((c & local_mask) << period_bits) | (periods[i] - pmin)
        if with_amounts:
            amt_buf[j] = amounts[i]
    key = np.empty(biggest, np.int64)
    amt = np.empty(biggest if with_amounts else 0, np.float64)
    group_start = np.empty(biggest + 1, np.int64)
    period_sum = np.empty(biggest, np.float64)
    customer_end = np.empty(bucket_size + 1, np.int64)
    stack_start = np.empty(256, np.int64)
    stack_len = np.empty(256, np.int64)
    partial = np.empty(256, np.float64)
    for b in range(n_buckets):
        b0 = bucket_start[b]
        b1 = bucket_start[b + 1]
        if b0 == b1:
            continue
        # counting sort of the bucket by customer
        customer_end[:] = 0
        for j in range(b0, b1):
            customer_end[(key_buf[j] >> period_bits) + 1] += 1
        for k in range(bucket_size):
            customer_end[k + 1] += customer_end[k]
        for j in range(b0, b1):
            packed = key_buf[j]
            k = packed >> period_bits
            t = customer_end[k]
            customer_end[k] = t + 1
            key[t] = packed & period_mask
            if with_amounts:
                amt[t] = amt_buf[j]
        s = 0
        for k in range(bucket_size):
            e = customer_end[k]
            if s == e:
                continue
            c = (b << bucket_bits) + k
            ordered = True
            for j in range(s + 1, e):
                if key[j - 1] > key[j]:
                    ordered = False
                    break
            if not ordered and e - s > 32:
                order = np.argsort(key[s:e], kind="mergesort")
                key[s:e] = key[s:e][order]
                if with_amounts:
                    amt[s:e] = amt[s:e][order]
            elif not ordered:
                for j in range(s + 1, e):
                    p = key[j]
                    a = amt[j] if with_amounts else 0.0
                    t = j
                    while t > s and key[t - 1] > p:
                        key[t] = key[t - 1]
                        if with_amounts:
                            amt[t] = amt[t - 1]
                        t -= 1
                    key[t] = p
                    if with_amounts:
                        amt[t] = a
            # one walk over the periods
            prev = key[s]
            group_start[0] = s
            n_groups = 1
            log_sum = 0.0
            for j in range(s + 1, e):
                p = key[j]
                if p != prev:
                    if with_table:
                        log_sum += log_table[p - prev - 1]
                    else:
                        gap_out[b0 + j] = p - prev
                        owner_out[b0 + j] = c
                    group_start[n_groups] = j
                    n_groups += 1
                    prev = p
            group_start[n_groups] = e
            first[c] = key[s] + pmin
            last[c] = prev + pmin
            count[c] = n_groups
            log_gaps[c] = log_sum
            if with_amounts:
                # level 0: the rows of each period -> period_sum; level 1: the periods -> total
                for level in range(2):
                    src = amt if level == 0 else period_sum
                    for g in range(n_groups if level == 0 else 1):
                        lo = group_start[g] if level == 0 else 0
                        hi = group_start[g + 1] if level == 0 else n_groups
                        acc = src[lo]
                        m = hi - lo - 1
                        if 0 < m < 8:
                            rest = -0.0
                            for i in range(lo + 1, hi):
                                rest += src[i]
                            acc += rest
                        elif m >= 8:  # numpy's pairwise recursion, with explicit stacks
                            top = 0
                            stack_start[0] = lo + 1
                            stack_len[0] = m
                            n_partial = 0
                            while top >= 0:
                                at = stack_start[top]
                                size = stack_len[top]
                                top -= 1
                                if size < 0:  # both halves done: left + right
                                    n_partial -= 1
                                    partial[n_partial - 1] += partial[n_partial]
                                elif size < 8:
                                    r = -0.0
                                    for i in range(at, at + size):
                                        r += src[i]
                                    partial[n_partial] = r
                                    n_partial += 1
                                elif size <= 128:
                                    r0, r1, r2, r3 = src[at], src[at + 1], src[at + 2], src[at + 3]
                                    r4, r5, r6, r7 = (
                                        src[at + 4],
                                        src[at + 5],
                                        src[at + 6],
                                        src[at + 7],
                                    )
                                    i = at + 8
                                    stop = at + size - size % 8
                                    while i < stop:
                                        r0 += src[i]
                                        r1 += src[i + 1]
                                        r2 += src[i + 2]
                                        r3 += src[i + 3]
                                        r4 += src[i + 4]
                                        r5 += src[i + 5]
                                        r6 += src[i + 6]
                                        r7 += src[i + 7]
                                        i += 8
                                    r = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
                                    while i < at + size:
                                        r += src[i]
                                        i += 1
                                    partial[n_partial] = r
                                    n_partial += 1
                                else:
                                    half = size // 2
                                    half -= half % 8
                                    stack_len[top + 1] = -1  # then add the two halves
                                    stack_start[top + 2] = at + half
                                    stack_len[top + 2] = size - half
                                    stack_start[top + 3] = at
                                    stack_len[top + 3] = half
                                    top += 3
                            acc += partial[0]
                        if level == 0:
                            period_sum[g] = acc
                        else:
                            total[c] = acc
                first_amount[c] = period_sum[0]
            s = e


# --------------------------------------------------------------------------------------------
# DuckDB engine
# --------------------------------------------------------------------------------------------
def _parquet_zone(path: Path, column: str) -> str | None:
    """The time zone of a tz-aware timestamp column of a Parquet file (as pyarrow reads it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    if column not in schema.names:
        return None
    kind = schema.field(column).type
    return kind.tz if pa.types.is_timestamp(kind) else None


class _DuckSource:
    """A DuckDB connection with the raw input as view ``src`` and typed rows as view ``tx``."""

    def __init__(self, kind, source, spec: _Spec):
        self.spec = spec
        self.con = _duck_connect()
        zone = None
        if kind == "pandas":
            _missing_columns_error(spec, list(source.columns))
            self.con.register("src_input", _prepare_frame(source, spec))
            relation = "src_input"
        elif kind == "arrow":
            _missing_columns_error(spec, list(source.column_names))
            self.con.register("src_input", _arrow_wall_time(source, spec))
            relation = "src_input"
        elif kind == "parquet":
            relation = f"read_parquet({_sql_literal(str(source))})"
            zone = _parquet_zone(source, spec.datetime)
        else:
            relation, names = _csv_relation(source)
            _missing_columns_error(spec, names)
        self.con.execute(f"CREATE TEMP VIEW src AS SELECT * FROM {relation}")
        types, ts, self._date_error = _prepared_view(self.con, spec, zone)
        self._amount_error = None
        cid, dt = _quote(spec.customer_id), _quote(spec.datetime)
        if spec.period == "D":
            period = f"(CAST({ts} AS DATE) - DATE '1970-01-01')"
        else:
            period = f"(epoch_us(date_trunc('hour', {ts})) // {_US_PER_HOUR})"
        if spec.monetary is not None:
            try:
                amt = _amount_sql(spec, types[spec.monetary])
            except InputError as exc:  # raised by the validation, in its turn
                amt, self._amount_error = "NULL::DOUBLE", exc
            raw_amt = _quote(spec.monetary)
        else:
            amt, raw_amt = "0.0::DOUBLE", "0.0::DOUBLE"
        # typed expressions, shared by the fast view and the (error-path only) numbered view
        self._typed = (
            f"{cid} AS cid, {dt} AS raw_dt, {ts} AS ts, {period} AS period, {amt} AS amt, "
            f"{raw_amt} AS raw_amt"
        )
        self.con.execute(f"CREATE TEMP VIEW typed AS SELECT {self._typed} FROM prep")
        # a CSV file's ids are text; streamed as integers while every one is a plain integer
        # (the usual case, and the fast path of the reduction), as text once one is not
        self._int_ids = kind == "csv"
        cid_int = (
            f"CASE WHEN regexp_full_match(cid, {_sql_literal(_PLAIN_INT_18)}) "
            "THEN CAST(cid AS BIGINT) END"
            if self._int_ids
            else "NULL::BIGINT"
        )
        self.con.execute(
            f"CREATE TEMP VIEW tx AS SELECT cid, {cid_int} AS cid_int, period, amt FROM typed"
        )

    def examples(self, condition: str) -> pd.DataFrame:
        """The first rows (by position in the input) that satisfy ``condition``."""
        originals = ", ".join(f"{_quote(c)} AS __c{i}" for i, c in enumerate(self.spec.columns))
        frame = self.con.sql(
            f"WITH numbered AS (SELECT row_number() OVER () - 1 AS __row, {self._typed}, "
            f"{originals} FROM prep) SELECT __row, "
            + ", ".join(f"__c{i}" for i in range(len(self.spec.columns)))
            + f" FROM numbered WHERE {condition} ORDER BY __row LIMIT {_MAX_EXAMPLES}"
        ).df()
        frame.columns = ["row", *self.spec.columns]
        return frame.set_index("row")

    def validate(self) -> None:
        spec = self.spec
        checks = [
            ("n_rows", "count(*)"),
            ("no_id", "count_if(cid IS NULL)"),
            ("no_date", "count_if(raw_dt IS NULL)"),
            ("bad_date", "count_if(raw_dt IS NOT NULL AND ts IS NULL)"),
        ]
        if spec.monetary is not None:
            checks += [
                ("bad_amt", "count_if(amt IS NULL OR NOT isfinite(amt))"),
                ("not_number", "count_if(raw_amt IS NOT NULL AND amt IS NULL)"),
                ("neg_amt", "count_if(amt < 0)"),
            ]
        row = self.con.sql(
            "SELECT " + ", ".join(f"{expr} AS {name}" for name, expr in checks) + " FROM typed"
        ).fetchall()[0]
        found = dict(zip([name for name, _ in checks], row, strict=True))
        if found["n_rows"] == 0:
            raise InputError("the transactions are empty: there is nothing to summarise")
        if found["no_id"]:
            raise _missing_ids_error(spec, found["no_id"], self.examples("cid IS NULL"))
        if found["no_date"]:
            raise _missing_dates_error(spec, found["no_date"], self.examples("raw_dt IS NULL"))
        if self._date_error is not None:
            raise self._date_error
        if found["bad_date"]:
            raise _bad_dates_error(
                spec, found["bad_date"], self.examples("raw_dt IS NOT NULL AND ts IS NULL")
            )
        if spec.monetary is not None:
            if self._amount_error is not None:
                raise self._amount_error
            if found["bad_amt"]:
                raise _bad_amounts_error(
                    spec,
                    found["bad_amt"],
                    found["not_number"] == found["bad_amt"],
                    self.examples("amt IS NULL OR NOT isfinite(amt)"),
                )
            if found["neg_amt"]:
                raise _negative_amounts_error(spec, found["neg_amt"], self.examples("amt < 0"))

    def check_after(self, end_period: int, what: str) -> None:
        n_late = self.con.sql(f"SELECT count(*) FROM tx WHERE period > {end_period}").fetchall()[0][
            0
        ]
        if n_late:
            raise _after_end_error(
                self.spec, what, end_period, n_late, self.examples(f"period > {end_period}")
            )

    def reduce(self, end_period, cal_period, with_holdout: bool, after_end: str):
        """Stream (customer, period, amount) out of DuckDB, one hash partition of customers at
        a time, check it, and reduce it with the numpy kernel.

        Partitions hold disjoint customers, so their results are concatenated and sorted by
        customer id. The rows are checked cheaply on the way (nulls, non-finite or negative
        amounts, rows after ``end_period``); only when something is wrong does the full SQL
        validation run, to name the column, count the rows and show examples.

        Returns (ids, arrays, n_new, n_after, max_period).
        """
        n_rows = int(self.con.sql("SELECT count(*) FROM src").fetchall()[0][0])
        if n_rows == 0:
            raise InputError("the transactions are empty: there is nothing to summarise")
        n_parts = max(1, -(-n_rows // DUCKDB_PARTITION_ROWS))
        end = _NO_END if end_period is None else end_period
        cal = cal_period if with_holdout else end
        monetary = self.spec.monetary is not None
        parts, n_new, n_after, max_period = [], 0, 0, None
        for k in range(n_parts):
            where = f" WHERE hash(cid) % {n_parts} = {k}" if n_parts > 1 else ""
            ids_sql = "cid_int" if self._int_ids else "cid"
            table = self.con.sql(
                f"SELECT {ids_sql} AS cid, CAST(period AS BIGINT) AS period, amt FROM tx{where}"
            ).to_arrow_table()
            if table.num_rows == 0:
                continue
            nulls = table.column("cid").null_count + table.column("period").null_count
            if monetary:
                nulls += table.column("amt").null_count
            if nulls:
                if self._int_ids and self._has_text_ids():
                    self._int_ids = False  # start again with the ids as text
                    return self.reduce(end_period, cal_period, with_holdout, after_end)
                self._fail()
            periods = table.column("period").to_numpy()
            amounts = table.column("amt").to_numpy() if monetary else None
            if monetary and not (np.isfinite(amounts).all() and (amounts >= 0).all()):
                self._fail()
            top = int(periods.max())
            max_period = top if max_period is None else max(max_period, top)
            if end_period is not None and top > end_period:
                if after_end == "raise":
                    self.check_after(end_period, "observation_end")
                n_after += int((periods > end_period).sum())
            codes, uniques = _factorize_arrow(table.column("cid"))
            del table
            ids, arrays, new = _reduce(codes, uniques, periods, amounts, cal, end, with_holdout)
            parts.append((ids, arrays))
            n_new += new
        if len(parts) == 1:
            return (*parts[0], n_new, n_after, max_period)
        ids = parts[0][0].append([p[0] for p in parts[1:]])
        order = np.asarray(ids.argsort())
        arrays = {key: np.concatenate([p[1][key] for p in parts])[order] for key in parts[0][1]}
        return ids[order], arrays, n_new, n_after, max_period

    def _has_text_ids(self) -> bool:
        """Whether some id is not a plain integer of at most 18 digits."""
        found = self.con.sql(
            "SELECT 1 FROM tx WHERE cid IS NOT NULL AND cid_int IS NULL LIMIT 1"
        ).fetchall()
        return bool(found)

    def _fail(self):
        """Run the full validation, which raises the precise error."""
        self.validate()
        raise InputError("the transactions contain invalid rows")  # pragma: no cover

    def close(self):
        self.con.close()


# --------------------------------------------------------------------------------------------
# assembling the summary (shared by both engines so the float arithmetic is identical)
# --------------------------------------------------------------------------------------------
def _build_summary(
    ids, first, last, count, total, first_amount, end_period, spec, index_name, log_gaps
):
    per_unit = spec.periods_per_unit
    frequency = (count - 1).astype(np.int64)
    out = pd.DataFrame(
        {
            "frequency": frequency,
            "recency": (last - first).astype(np.float64) / per_unit,
            "T": (end_period - first).astype(np.float64) / per_unit,
            # sum over repeat purchases of log(inter-purchase time in the unit), as BTYDplus'
            # elog2cbs: the regularity statistic of the CNBD-k models (0 without repeats)
            "litt": log_gaps - frequency * np.log(per_unit),
        },
        index=pd.Index(ids, name=index_name),
    )
    if spec.monetary is not None:
        repeat = total - first_amount
        with np.errstate(invalid="ignore", divide="ignore"):
            out["monetary_value"] = np.where(frequency > 0, repeat / np.maximum(frequency, 1), 0.0)
    out.attrs["time_unit"] = spec.time_unit
    out.attrs["purchase_period"] = spec.period
    out.attrs["observation_end"] = _period_to_timestamp(end_period, spec)
    return out


def _reduce(codes, uniques, periods, amounts, cal_period, end_period, with_holdout):
    """The per-customer reduction shared by both engines (so they agree to the last bit).

    Returns (ids, per-customer arrays, n customers whose first purchase is in the holdout);
    only customers with a purchase up to ``cal_period`` are kept, rows after ``end_period``
    are ignored.
    """
    n = len(uniques)
    in_cal = periods <= cal_period
    if in_cal.all():
        cal = _aggregate(codes, periods, amounts, n)
    else:
        cal = _aggregate(codes[in_cal], periods[in_cal], _take(amounts, in_cal), n)
    keep = cal[2] > 0
    names = ("first", "last", "count", "total", "first_amount", "log_gaps")
    out = {name: values[keep] for name, values in zip(names, cal, strict=True)}
    n_new = 0
    if with_holdout:
        in_hold = ~in_cal & (periods <= end_period)
        hold = _aggregate(codes[in_hold], periods[in_hold], _take(amounts, in_hold), n)
        n_new = int(((hold[2] > 0) & ~keep).sum())
        out["n_h"], out["total_h"] = hold[2][keep], hold[3][keep]
    return uniques[keep], out, n_new


def _summaries(transactions, spec, observation_end, calibration_end, engine, after_end):
    """Shared driver: returns (summary, n_customers_only_in_holdout)."""
    if after_end not in ("raise", "exclude"):
        raise ValueError(f"after_observation_end must be 'raise' or 'exclude', got {after_end!r}")
    # the user's dates first: a wrong one fails before any data is read
    given_end = (
        None if observation_end is None else _period_of(observation_end, spec, "observation_end")
    )
    with_holdout = calibration_end is not None
    cal_given = _period_of(calibration_end, spec, "calibration_end") if with_holdout else None
    if given_end is not None and with_holdout:
        _calibration_period(calibration_end, given_end, spec)
    kind, source = _resolve(transactions)
    engine = _choose_engine(engine, kind, source)
    try:
        result = _engine_reduce(kind, source, spec, engine, given_end, cal_given, with_holdout,
                                after_end)  # fmt: skip
    except InputError:
        raise
    except _library_error_types() as exc:
        if _is_our_sql_bug(exc):
            raise
        raise _read_failure(kind, source, exc) from exc
    ids, arrays, n_new, n_after, end_period = result
    cal_period = (
        end_period if not with_holdout else _calibration_period(calibration_end, end_period, spec)
    )
    if len(ids) == 0:
        raise InputError(
            f"no customer made a purchase up to the calibration_end "
            f"{_period_to_timestamp(cal_period, spec)[:10]}; choose a later calibration_end"
        )
    if not ids.is_monotonic_increasing:  # e.g. CSV ids that turned out to be integers
        order = np.asarray(ids.argsort(), dtype=np.int64)
        ids = ids[order]
        arrays = {key: np.asarray(values)[order] for key, values in arrays.items()}
    summary = _build_summary(
        ids,
        np.asarray(arrays["first"], dtype=np.int64),
        np.asarray(arrays["last"], dtype=np.int64),
        np.asarray(arrays["count"], dtype=np.int64),
        np.asarray(arrays["total"], dtype=np.float64),
        np.asarray(arrays["first_amount"], dtype=np.float64),
        cal_period,
        spec,
        spec.customer_id,
        np.asarray(arrays["log_gaps"], dtype=np.float64),
    )
    if with_holdout:
        n_h = np.asarray(arrays["n_h"], dtype=np.int64)
        summary["frequency_holdout"] = n_h
        if spec.monetary is not None:
            total_h = np.asarray(arrays["total_h"], dtype=np.float64)
            summary["monetary_value_holdout"] = np.where(n_h > 0, total_h / np.maximum(n_h, 1), 0.0)
        summary["duration_holdout"] = float(end_period - cal_period) / spec.periods_per_unit
        summary.attrs["calibration_end"] = _period_to_timestamp(cal_period, spec)
        summary.attrs["observation_end"] = _period_to_timestamp(end_period, spec)
        summary.attrs["n_customers_first_purchase_in_holdout"] = n_new
    if after_end == "exclude":
        summary.attrs["n_transactions_after_observation_end"] = n_after
    summary.attrs["engine"] = engine
    return summary, n_new


def _engine_reduce(kind, source, spec, engine, given_end, cal_given, with_holdout, after_end):
    """Read, validate and reduce with one engine: (ids as the summary's index, per-customer
    arrays, n customers first seen in the holdout, n rows after the end, end period)."""
    if engine == "pandas":
        frame, codes, uniques, periods, amounts = _pandas_validated(kind, source, spec)
        end_period = int(periods.max()) if given_end is None else given_end
        if given_end is not None and after_end == "raise":
            _pandas_after(frame, spec, periods, end_period, "observation_end")
        cal_period = cal_given if with_holdout else end_period
        n_after = int((periods > end_period).sum()) if after_end == "exclude" else 0
        ids, arrays, n_new = _reduce(
            codes, uniques, periods, amounts, cal_period, end_period, with_holdout
        )
        dtype = None if kind == "csv" else frame[spec.customer_id].dtype
    else:
        duck = _DuckSource(kind, source, spec)
        try:
            ids, arrays, n_new, n_after, max_period = duck.reduce(
                given_end, cal_given, with_holdout, after_end
            )
        finally:
            duck.close()
        end_period = max_period if given_end is None else given_end
        dtype = _id_dtype(kind, source, spec)
    ids = _csv_ids(pd.Index(ids)) if kind == "csv" else _as_index_values(ids, dtype)
    return ids, arrays, n_new, n_after, end_period


def _take(amounts, mask):
    return None if amounts is None else amounts[mask]


def _calibration_period(calibration_end, end_period, spec) -> int:
    cal = _period_of(calibration_end, spec, "calibration_end")
    if cal >= end_period:
        raise InputError(
            f"calibration_end {_period_to_timestamp(cal, spec)[:19]} is not before observation_end "
            f"{_period_to_timestamp(end_period, spec)[:19]}; the holdout period would be empty. "
            "Fix: choose a calibration_end earlier than observation_end."
        )
    return cal


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def rfm_summary(
    transactions,
    customer_id: str = "customer_id",
    datetime: str = "date",
    monetary: str | None = None,
    observation_end=None,
    time_unit: str = "D",
    *,
    datetime_format: str | None = None,
    purchase_period: str | None = None,
    engine: str = "auto",
    after_observation_end: str = "raise",
) -> pd.DataFrame:
    """Summarise transactions into one row per customer: frequency, recency, T [monetary_value].

    Parameters
    ----------
    transactions : pandas or polars DataFrame, pyarrow Table, or path to a .csv / .parquet file
        One row per transaction (several rows per customer and day are fine). CSV files are
        read with a fixed dialect, never sniffed: UTF-8, the first line is the header, commas
        (tabs for ``.tsv``), double quotes; every column is read as text.
    customer_id, datetime, monetary : column names. ``monetary`` is optional; without it there
        is no ``monetary_value`` column.
    observation_end : date, optional
        End of observation (its whole day, or hour for unit H, is included). Default: the period
        of the latest transaction. Transactions after it raise an error. ISO 8601 text
        ("1997-09-30"; or text in ``datetime_format``), ``datetime.date``/``datetime``, pandas
        Timestamp or numpy datetime64 (tz-aware ones at their wall time). Numbers are refused:
        ``20200101`` or ``1577836800`` is not a date.
    time_unit : "H", "D", "W", "M" (365.25/12 days), "Q" or "Y"; recorded in
        ``attrs["time_unit"]``.
    datetime_format : strftime format of text or integer dates (e.g. "%m/%d/%Y", "%Y%m%d"),
        read by DuckDB's ``strptime`` in both engines. Default: date/datetime columns and ISO
        8601 text only; dates are never guessed, so "01/02/2020" without it is an error that
        says which format to pass (see the module docstring for the accepted ISO layouts and
        time zones: every date is taken at its local wall time).
    purchase_period : "D" or "H"; the granularity that makes one purchase (default: the hour for
        unit H, the calendar day otherwise).
    engine : "auto", "pandas" or "duckdb" (see the module docstring); both accept and reject
        the same inputs and give the same result, ids included.
    after_observation_end : "raise" (default) or "exclude"
        What to do with transactions after ``observation_end``: an error, or leave them out
        explicitly (their number is kept in ``attrs["n_transactions_after_observation_end"]``).
        Use "exclude" to summarise a calibration period from a longer history, e.g. CDNOW up to
        1997-09-30.

    Customer ids
    ------------
    The index holds the ids exactly as the input has them, whichever the engine:

    * typed inputs (pandas, polars, Arrow, Parquet) keep their values and dtype (int64 ids
      give an int64 index, text gives text, categories a categorical index). An object column
      that mixes types (``1`` and ``"1"``, or ``1`` and ``1.0``) is an InputError: whether
      they are one customer would be a guess;
    * a CSV file has no types, so its ids are text, exactly as written: ``007`` and ``7`` are
      two customers, ``1`` and ``x`` two text ids. Only when *every* id of the file is a plain
      integer (``str(int(id)) == id``: no leading zeros, ``+`` or spaces, within int64) does
      the index become int64, the same index as the frame the file was written from.

    The index is sorted (numbers by value, text by code point, categories in their order).

    Returns
    -------
    DataFrame indexed by the customer id (sorted), columns ``frequency`` (int64, repeat purchase
    periods), ``recency``, ``T``, ``litt`` (sum of the logs of the inter-purchase times, for the
    CNBD-k models) and, with ``monetary``, ``monetary_value`` (mean spend of the repeat
    purchases; 0 without repeats). ``attrs``: ``time_unit``, ``purchase_period``,
    ``observation_end``, ``engine``.

    Raises
    ------
    InputError
        missing columns, empty input, missing customer ids, ids of mixed types, missing or
        unreadable dates, transactions after ``observation_end``, negative / missing /
        non-finite amounts. The message names the column, counts the rows, shows the first few
        and says how to fix it. Files that cannot be read (not UTF-8, ragged or unterminated
        CSV lines, corrupt Parquet, empty files) are InputErrors too, never a raw DuckDB,
        Arrow or pandas exception; a path that does not exist raises an InputError that is
        also a FileNotFoundError.

    Examples
    --------
    >>> import clvmodels as clv
    >>> tx = clv.datasets.load_cdnow_transactions()
    >>> s = clv.rfm_summary(tx, "customer_id", "date", "amount",
    ...                     observation_end="1997-09-30", time_unit="W")  # doctest: +SKIP
    """
    spec = _make_spec(customer_id, datetime, monetary, datetime_format, time_unit, purchase_period)
    summary, _ = _summaries(
        transactions, spec, observation_end, None, engine, after_observation_end
    )
    return summary


def calibration_holdout_summary(
    transactions,
    customer_id: str = "customer_id",
    datetime: str = "date",
    monetary: str | None = None,
    calibration_end=None,
    observation_end=None,
    time_unit: str = "D",
    *,
    datetime_format: str | None = None,
    purchase_period: str | None = None,
    engine: str = "auto",
    after_observation_end: str = "raise",
) -> pd.DataFrame:
    """Split transactions at ``calibration_end``: an RFM summary of the calibration period plus
    what each customer did in the holdout (``calibration_end``, ``observation_end``].

    Calibration columns are those of :func:`rfm_summary` with ``observation_end`` =
    ``calibration_end``. Holdout columns:

    * ``frequency_holdout``: number of purchase periods in the holdout (all of them count: the
      customer's first purchase was in calibration);
    * ``monetary_value_holdout`` (with ``monetary``): mean spend per holdout purchase, 0 without;
    * ``duration_holdout``: length of the holdout in ``time_unit`` (same for every customer).

    Only customers with a purchase up to ``calibration_end`` are summarised: a customer whose
    first purchase falls in the holdout has no calibration history. Their number is kept in
    ``attrs["n_customers_first_purchase_in_holdout"]`` and a warning says so when it is not 0.

    ``calibration_end`` is required; ``observation_end`` defaults to the latest transaction.
    Other parameters, errors and ``attrs`` as in :func:`rfm_summary`, plus
    ``attrs["calibration_end"]``.
    """
    if calibration_end is None:
        raise InputError(
            "calibration_end is required: the date that ends the calibration period, e.g. "
            "calibration_end='1997-09-30'"
        )
    spec = _make_spec(customer_id, datetime, monetary, datetime_format, time_unit, purchase_period)
    summary, n_new = _summaries(
        transactions, spec, observation_end, calibration_end, engine, after_observation_end
    )
    if n_new:
        warnings.warn(
            f"{n_new} customers made their first purchase after calibration_end "
            f"{summary.attrs['calibration_end'][:10]}; they have no calibration history and are "
            "not in the calibration/holdout summary (their count is in "
            "attrs['n_customers_first_purchase_in_holdout'])",
            UserWarning,
            stacklevel=2,
        )
    return summary
