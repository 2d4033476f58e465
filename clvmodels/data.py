"""From transactions to RFM summaries: validation, aggregation, time units.

Two engines give identical results (bit for bit: they share the reduction kernel):

* ``engine="pandas"``: the input frame is validated with pandas and reduced in numpy (one
  vectorised sort of a packed (customer, period, row) key, then ``np.add.reduceat``);
* ``engine="duckdb"``: an embedded DuckDB reads the input (CSV and Parquet files directly,
  never as a pandas frame), parses dates, validates every row in SQL and streams three compact
  columns (customer, period number, amount) into the same numpy reduction, one hash partition
  of customers at a time (at most :data:`DUCKDB_PARTITION_ROWS` rows each), so memory stays
  bounded for files of any size;
* ``engine="auto"`` (default): DuckDB for file paths and for frames of at least
  :data:`AUTO_DUCKDB_MIN_ROWS` rows, pandas otherwise.

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

Inputs: a pandas DataFrame, a polars DataFrame/LazyFrame, or a path to a ``.csv`` or
``.parquet`` file. Dates may be datetime columns, ISO-8601 strings, or strings/integers in the
strftime format ``datetime_format`` (for example ``"%Y%m%d"``). Time-zone-aware datetimes in a
frame are taken in their local wall time (the calendar day the customer saw); a file read by
DuckDB stores instants only, so its tz-aware timestamps are taken in UTC -- convert them to
local time first if the day boundary matters.
"""

from __future__ import annotations

import os
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
    return _Spec(customer_id, datetime, monetary, datetime_format, unit, period)


def _period_of(moment, spec: _Spec, what: str) -> int:
    """Period number (days or hours since 1970-01-01) of a user-given date."""
    try:
        ts = pd.Timestamp(moment)
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"{what} {moment!r} is not a date; give e.g. '1997-09-30' or a pandas Timestamp"
        ) from exc
    if ts is pd.NaT:
        raise InputError(f"{what} is missing (NaT); give a date such as '1997-09-30'")
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    us = int(np.datetime64(ts.to_datetime64(), "us").astype(np.int64))
    return us // spec.period_us


def _period_to_timestamp(period: int, spec: _Spec) -> str:
    return str(pd.Timestamp(period * spec.period_us, unit="us"))


def _rows_error(
    column: str, problem: str, n_bad: int, examples: pd.DataFrame, fix: str
) -> InputError:
    noun = "row" if n_bad == 1 else "rows"
    return InputError(
        f"column {column!r}: {n_bad} {noun} {problem}; first examples (by row position):\n"
        f"{examples.to_string()}\nFix: {fix}"
    )


def _missing_columns_error(spec: _Spec, available: list[str]) -> None:
    missing = [c for c in spec.columns if c not in available]
    if missing:
        roles = {spec.customer_id: "customer_id", spec.datetime: "datetime"}
        if spec.monetary is not None:
            roles[spec.monetary] = "monetary"
        described = ", ".join(f"{c!r} (the {roles[c]} argument)" for c in missing)
        raise InputError(
            f"the transactions have no column {described}; available columns: "
            f"{', '.join(map(str, available)) or '(none)'}. Fix: pass the names of your columns, "
            f"e.g. customer_id='user', datetime='order_date'"
            + (", monetary='revenue'" if spec.monetary is not None else "")
            + "."
        )


_FIX_DATES = (
    "dates must be datetimes or ISO-8601 strings ('2024-03-01', '2024-03-01 14:05:00'); for other "
    "layouts pass datetime_format (strftime codes, e.g. datetime_format='%d/%m/%Y' or '%Y%m%d')"
)
_FIX_MISSING_DATES = (
    "every transaction needs a date: fill in or remove these rows before summarising"
)
_FIX_IDS = "every transaction needs a customer id: fill in or remove these rows before summarising"
_FIX_AMOUNT = (
    "amounts must be finite numbers >= 0 (zero is allowed); net refunds into their purchase or "
    "remove these rows before summarising"
)


def _after_end_fix(spec: _Spec, what: str) -> str:
    return (
        f"pass a later {what}, filter the transactions to dates up to it, or pass "
        f"after_observation_end='exclude' to leave the later rows out explicitly "
        f"(the {what} period is included: '1997-09-30' includes the whole day)"
    )


# --------------------------------------------------------------------------------------------
# input resolution
# --------------------------------------------------------------------------------------------
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
            raise InputError(f"transactions file {str(path)!r} does not exist")
        return _file_kind(path), path
    module = type(transactions).__module__
    if module.startswith("polars"):
        import polars as pl

        if isinstance(transactions, pl.LazyFrame):
            transactions = transactions.collect()
        if isinstance(transactions, pl.DataFrame):
            return "arrow", transactions.to_arrow()
    if module.startswith("pyarrow") and hasattr(transactions, "schema"):
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
    header = pd.read_csv(source, nrows=0)
    _missing_columns_error(spec, list(header.columns))
    return pd.read_csv(source, usecols=spec.columns)


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
        raise _rows_error(
            spec.datetime,
            "have a missing date",
            int(missing.sum()),
            _examples(frame, spec, missing),
            _FIX_MISSING_DATES,
        )
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        col = col.dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(col.dtype):
        parsed = col
    elif spec.datetime_format is not None:
        text = col.astype("str") if pd.api.types.is_numeric_dtype(col.dtype) else col
        parsed = pd.to_datetime(text, format=spec.datetime_format, errors="coerce")
    elif pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
        raise InputError(
            f"column {spec.datetime!r} holds numbers ({col.dtype}), not dates (e.g. "
            f"{col.iloc[0]!r}). Fix: convert it to datetimes, or pass datetime_format (for "
            "CDNOW-style integers such as 19970101 use datetime_format='%Y%m%d')."
        )
    else:
        parsed = pd.to_datetime(col, format="ISO8601", errors="coerce")
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)
    bad = parsed.isna().to_numpy()
    if bad.any():
        fmt = f" with datetime_format={spec.datetime_format!r}" if spec.datetime_format else ""
        raise _rows_error(
            spec.datetime,
            f"cannot be read as dates{fmt}",
            int(bad.sum()),
            _examples(frame, spec, bad),
            _FIX_DATES,
        )
    return parsed.to_numpy(dtype="datetime64[us]").view(np.int64)


def _pandas_amounts(frame: pd.DataFrame, spec: _Spec) -> np.ndarray:
    col = frame[spec.monetary]
    if pd.api.types.is_bool_dtype(col.dtype):
        raise InputError(
            f"column {spec.monetary!r} holds booleans, not amounts. Fix: pass the spend column."
        )
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        not_number = bad & col.notna().to_numpy() & ~np.isinf(values)
        problem = "are not numbers" if not_number.all() else "are missing, not numbers or infinite"
        raise _rows_error(
            spec.monetary, problem, int(bad.sum()), _examples(frame, spec, bad), _FIX_AMOUNT
        )
    negative = values < 0
    if negative.any():
        raise _rows_error(
            spec.monetary,
            "are negative",
            int(negative.sum()),
            _examples(frame, spec, negative),
            _FIX_AMOUNT,
        )
    return values


def _pandas_validated(kind, source, spec):
    """(frame, customer codes, unique ids, period numbers, amounts or None), all validated."""
    frame = _pandas_frame(kind, source, spec)
    if len(frame) == 0:
        raise InputError("the transactions are empty: there is nothing to summarise")
    ids = frame[spec.customer_id]
    missing = ids.isna().to_numpy()
    if missing.any():
        raise _rows_error(
            spec.customer_id,
            "have a missing customer id",
            int(missing.sum()),
            _examples(frame, spec, missing),
            _FIX_IDS,
        )
    stamps = _pandas_dates_us(frame, spec)
    amounts = _pandas_amounts(frame, spec) if spec.monetary is not None else None
    codes, uniques = _factorize_ids(ids)
    periods = stamps // spec.period_us
    return frame, codes, uniques, periods, amounts


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
    except TypeError:  # ids of mixed, unorderable types: keep first-appearance order
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


def _pandas_after(frame, spec, periods, end_period, what):
    late = periods > end_period
    if late.any():
        raise _rows_error(
            spec.datetime,
            f"are after the {what} {_period_to_timestamp(end_period, spec)[:19]} ({spec.period} "
            "periods)",
            int(late.sum()),
            _examples(frame, spec, late),
            _after_end_fix(spec, what),
        )


def _aggregate(codes, periods, amounts, n_customers):
    """Per customer: first period, last period, number of periods, spend of all periods and of
    the first period (NaN-free), and the sum of the logs of the gaps (in periods) between
    consecutive purchase periods. Customers without rows get n_periods == 0."""
    if len(codes) == 0:
        zeros = np.zeros(n_customers, dtype=np.int64)
        floats = np.zeros(n_customers)
        return zeros, zeros, zeros, floats, floats.copy(), floats.copy()
    pmin = int(periods.min())
    span = int(periods.max()) - pmin + 1
    n_rows = len(codes)
    key_bits = max(int(n_customers * span - 1).bit_length(), 1)
    row_bits = max(int(n_rows - 1).bit_length(), 1)
    if key_bits + row_bits <= 63:
        # sort (customer, period, row) packed in one int64: np.sort is several times faster
        # than np.argsort, and the low bits give back the row order
        # (in-place steps: every temporary of n_rows int64 costs page faults)
        packed = np.multiply(codes, span, dtype=np.int64)
        packed += periods
        packed -= pmin
        packed <<= row_bits
        packed |= np.arange(n_rows, dtype=np.int64)
        packed.sort()
        order = packed & ((1 << row_bits) - 1)
        packed >>= row_bits
        sorted_key = packed
    else:  # pragma: no cover - astronomically many customers x periods
        order = np.lexsort((periods, codes))
        sorted_key = codes[order].astype(object) * span + (periods[order] - pmin)
    new = np.empty(n_rows, dtype=bool)
    new[0] = True
    np.not_equal(sorted_key[1:], sorted_key[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    unique_key = sorted_key[starts]
    p_code, p_period = np.divmod(unique_key, span)
    p_period += pmin
    p_amount = np.add.reduceat(amounts[order], starts) if amounts is not None else None
    new_c = np.empty(len(p_code), dtype=bool)
    new_c[0] = True
    np.not_equal(p_code[1:], p_code[:-1], out=new_c[1:])
    c_start = np.flatnonzero(new_c)
    c_end = np.append(c_start[1:], len(p_code)) - 1
    who = p_code[c_start]
    first = np.zeros(n_customers, dtype=np.int64)
    last = np.zeros(n_customers, dtype=np.int64)
    count = np.zeros(n_customers, dtype=np.int64)
    total = np.zeros(n_customers)
    first_amount = np.zeros(n_customers)
    first[who] = p_period[c_start]
    last[who] = p_period[c_end]
    count[who] = c_end - c_start + 1
    if p_amount is not None:
        total[who] = np.add.reduceat(p_amount, c_start)
        first_amount[who] = p_amount[c_start]
    # inter-purchase gaps of the same customer (distinct purchase periods, so every gap >= 1)
    same = ~new_c[1:]
    log_gaps = np.bincount(
        p_code[1:][same], weights=np.log(np.diff(p_period)[same]), minlength=n_customers
    )
    return first, last, count, total, first_amount, log_gaps


# --------------------------------------------------------------------------------------------
# DuckDB engine
# --------------------------------------------------------------------------------------------
def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _DuckSource:
    """A DuckDB connection with the raw input as view ``src`` and typed rows as view ``tx``."""

    def __init__(self, kind, source, spec: _Spec):
        import duckdb

        self.spec = spec
        self.con = duckdb.connect()
        if kind == "pandas":
            frame = source
            _missing_columns_error(spec, list(frame.columns))
            frame = frame[spec.columns]
            dt = frame[spec.datetime]
            if isinstance(dt.dtype, pd.DatetimeTZDtype):  # local wall time, as the pandas engine
                frame = frame.assign(**{spec.datetime: dt.dt.tz_localize(None)})
            self.con.register("src_input", frame)
            relation = "src_input"
        elif kind == "arrow":
            _missing_columns_error(spec, list(source.column_names))
            self.con.register("src_input", source.select(spec.columns))
            relation = "src_input"
        elif kind == "parquet":
            relation = f"read_parquet({_sql_literal(str(source))})"
        else:
            relation = f"read_csv({_sql_literal(str(source))})"
        self.con.execute(f"CREATE TEMP VIEW src AS SELECT * FROM {relation}")
        types = dict(self.con.sql("SELECT column_name, column_type FROM (DESCRIBE src)").fetchall())
        _missing_columns_error(spec, list(types))
        cid, dt = _quote(spec.customer_id), _quote(spec.datetime)
        dtype = types[spec.datetime].upper()
        if dtype.startswith("TIMESTAMP") and "TIME ZONE" in dtype:
            ts = f"CAST(timezone('UTC', {dt}) AS TIMESTAMP)"
        elif dtype.startswith(("TIMESTAMP", "DATE")):
            ts = f"CAST({dt} AS TIMESTAMP)"
        elif spec.datetime_format is not None:
            ts = f"try_strptime(CAST({dt} AS VARCHAR), {_sql_literal(spec.datetime_format)})"
        elif _is_duck_numeric(dtype) or dtype == "BOOLEAN":
            example = self.con.sql(f"SELECT {dt} FROM src LIMIT 1").fetchall()
            example = example[0] if example else None
            raise InputError(
                f"column {spec.datetime!r} holds numbers ({dtype}), not dates (e.g. "
                f"{example[0] if example else None!r}). Fix: convert it to datetimes, or pass "
                "datetime_format (for CDNOW-style integers such as 19970101 use "
                "datetime_format='%Y%m%d')."
            )
        else:
            ts = f"TRY_CAST({dt} AS TIMESTAMP)"
        if spec.period == "D":
            period = f"(CAST({ts} AS DATE) - DATE '1970-01-01')"
        else:
            period = f"(epoch_us(date_trunc('hour', {ts})) // {_US_PER_HOUR})"
        if spec.monetary is not None:
            if types[spec.monetary].upper() == "BOOLEAN":
                raise InputError(
                    f"column {spec.monetary!r} holds booleans, not amounts. Fix: pass the spend "
                    "column."
                )
            amt = f"TRY_CAST({_quote(spec.monetary)} AS DOUBLE)"
            raw_amt = _quote(spec.monetary)
        else:
            amt, raw_amt = "0.0::DOUBLE", "0.0::DOUBLE"
        # typed expressions, shared by the fast view and the (error-path only) numbered view
        self._typed = (
            f"{cid} AS cid, {dt} AS raw_dt, {ts} AS ts, {period} AS period, {amt} AS amt, "
            f"{raw_amt} AS raw_amt"
        )
        self.con.execute(f"CREATE TEMP VIEW typed AS SELECT {self._typed} FROM src")
        self.con.execute("CREATE TEMP VIEW tx AS SELECT cid, period, amt FROM typed")

    def examples(self, condition: str) -> pd.DataFrame:
        """The first rows (by position in the input) that satisfy ``condition``."""
        originals = ", ".join(f"{_quote(c)} AS __c{i}" for i, c in enumerate(self.spec.columns))
        frame = self.con.sql(
            f"WITH numbered AS (SELECT row_number() OVER () - 1 AS __row, {self._typed}, "
            f"{originals} FROM src) SELECT __row, "
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
            raise _rows_error(
                spec.customer_id,
                "have a missing customer id",
                found["no_id"],
                self.examples("cid IS NULL"),
                _FIX_IDS,
            )
        if found["no_date"]:
            raise _rows_error(
                spec.datetime,
                "have a missing date",
                found["no_date"],
                self.examples("raw_dt IS NULL"),
                _FIX_MISSING_DATES,
            )
        if found["bad_date"]:
            fmt = f" with datetime_format={spec.datetime_format!r}" if spec.datetime_format else ""
            raise _rows_error(
                spec.datetime,
                f"cannot be read as dates{fmt}",
                found["bad_date"],
                self.examples("raw_dt IS NOT NULL AND ts IS NULL"),
                _FIX_DATES,
            )
        if spec.monetary is not None:
            if found["bad_amt"]:
                problem = (
                    "are not numbers"
                    if found["not_number"] == found["bad_amt"]
                    else "are missing, not numbers or infinite"
                )
                raise _rows_error(
                    spec.monetary,
                    problem,
                    found["bad_amt"],
                    self.examples("amt IS NULL OR NOT isfinite(amt)"),
                    _FIX_AMOUNT,
                )
            if found["neg_amt"]:
                raise _rows_error(
                    spec.monetary,
                    "are negative",
                    found["neg_amt"],
                    self.examples("amt < 0"),
                    _FIX_AMOUNT,
                )

    def check_after(self, end_period: int, what: str) -> None:
        n_late = self.con.sql(f"SELECT count(*) FROM tx WHERE period > {end_period}").fetchall()[0][
            0
        ]
        if n_late:
            raise _rows_error(
                self.spec.datetime,
                f"are after the {what} {_period_to_timestamp(end_period, self.spec)[:19]} "
                f"({self.spec.period} periods)",
                n_late,
                self.examples(f"period > {end_period}"),
                _after_end_fix(self.spec, what),
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
            table = self.con.sql(
                f"SELECT cid, CAST(period AS BIGINT) AS period, amt FROM tx{where}"
            ).to_arrow_table()
            if table.num_rows == 0:
                continue
            nulls = table.column("cid").null_count + table.column("period").null_count
            if monetary:
                nulls += table.column("amt").null_count
            if nulls:
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

    def _fail(self):
        """Run the full validation, which raises the precise error."""
        self.validate()
        raise InputError("the transactions contain invalid rows")  # pragma: no cover

    def close(self):
        self.con.close()


def _is_duck_numeric(dtype: str) -> bool:
    return dtype.startswith(
        ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
         "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL")
    )  # fmt: skip


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
    kind, source = _resolve(transactions)
    engine = _choose_engine(engine, kind, source)
    with_holdout = calibration_end is not None
    n_after = 0
    if engine == "pandas":
        frame, codes, uniques, periods, amounts = _pandas_validated(kind, source, spec)
        if observation_end is None:
            end_period = int(periods.max())
        else:
            end_period = _period_of(observation_end, spec, "observation_end")
            if after_end == "raise":
                _pandas_after(frame, spec, periods, end_period, "observation_end")
        cal_period = (
            end_period
            if not with_holdout
            else _calibration_period(calibration_end, end_period, spec)
        )
        n_after = int((periods > end_period).sum()) if after_end == "exclude" else 0
        ids, arrays, n_new = _reduce(
            codes, uniques, periods, amounts, cal_period, end_period, with_holdout
        )
        index_dtype = frame[spec.customer_id].dtype
    else:
        given_end = (
            None
            if observation_end is None
            else _period_of(observation_end, spec, "observation_end")
        )
        cal_given = None
        if with_holdout:
            cal_given = _period_of(calibration_end, spec, "calibration_end")
            if given_end is not None:
                _calibration_period(calibration_end, given_end, spec)
        duck = _DuckSource(kind, source, spec)
        try:
            ids, arrays, n_new, n_after, max_period = duck.reduce(
                given_end, cal_given, with_holdout, after_end
            )
        finally:
            duck.close()
        end_period = max_period if given_end is None else given_end
        cal_period = (
            end_period
            if not with_holdout
            else _calibration_period(calibration_end, end_period, spec)
        )
        index_dtype = source[spec.customer_id].dtype if kind == "pandas" else None
    first, last, count = arrays["first"], arrays["last"], arrays["count"]
    total, first_amount = arrays["total"], arrays["first_amount"]
    if with_holdout:
        n_h, total_h = arrays["n_h"], arrays["total_h"]
    if len(ids) == 0:
        raise InputError(
            f"no customer made a purchase up to the calibration_end "
            f"{_period_to_timestamp(cal_period, spec)[:10]}; choose a later calibration_end"
        )
    ids = _as_index_values(ids, index_dtype)
    summary = _build_summary(
        ids,
        np.asarray(first, dtype=np.int64),
        np.asarray(last, dtype=np.int64),
        np.asarray(count, dtype=np.int64),
        np.asarray(total, dtype=np.float64),
        np.asarray(first_amount, dtype=np.float64),
        cal_period,
        spec,
        spec.customer_id,
        np.asarray(arrays["log_gaps"], dtype=np.float64),
    )
    if with_holdout:
        n_h = np.asarray(n_h, dtype=np.int64)
        summary["frequency_holdout"] = n_h
        if spec.monetary is not None:
            total_h = np.asarray(total_h, dtype=np.float64)
            summary["monetary_value_holdout"] = np.where(n_h > 0, total_h / np.maximum(n_h, 1), 0.0)
        summary["duration_holdout"] = float(end_period - cal_period) / spec.periods_per_unit
        summary.attrs["calibration_end"] = _period_to_timestamp(cal_period, spec)
        summary.attrs["observation_end"] = _period_to_timestamp(end_period, spec)
        summary.attrs["n_customers_first_purchase_in_holdout"] = n_new
    if after_end == "exclude":
        summary.attrs["n_transactions_after_observation_end"] = n_after
    summary.attrs["engine"] = engine
    return summary, n_new


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


def _as_index_values(ids, dtype):
    values = ids.to_numpy() if isinstance(ids, (pd.Series, pd.Index)) else np.asarray(ids)
    if dtype is not None:
        try:
            return pd.Index(values).astype(dtype)
        except (TypeError, ValueError):  # pragma: no cover - exotic id types
            return pd.Index(values)
    return pd.Index(ids)


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
    transactions : pandas or polars DataFrame, or path to a .csv / .parquet file
        One row per transaction (several rows per customer and day are fine).
    customer_id, datetime, monetary : column names. ``monetary`` is optional; without it there
        is no ``monetary_value`` column.
    observation_end : date, optional
        End of observation (its whole day, or hour for unit H, is included). Default: the period
        of the latest transaction. Transactions after it raise an error.
    time_unit : "H", "D", "W", "M" (365.25/12 days), "Q" or "Y"; recorded in
        ``attrs["time_unit"]``.
    datetime_format : strftime format for string or integer dates (e.g. "%Y%m%d"); default
        ISO-8601 strings or datetime columns.
    purchase_period : "D" or "H"; the granularity that makes one purchase (default: the hour for
        unit H, the calendar day otherwise).
    engine : "auto", "pandas" or "duckdb" (see the module docstring); both give the same
        result.
    after_observation_end : "raise" (default) or "exclude"
        What to do with transactions after ``observation_end``: an error, or leave them out
        explicitly (their number is kept in ``attrs["n_transactions_after_observation_end"]``).
        Use "exclude" to summarise a calibration period from a longer history, e.g. CDNOW up to
        1997-09-30.

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
        missing columns, empty input, missing customer ids, missing or unreadable dates,
        transactions after ``observation_end``, negative / missing / non-finite amounts. The
        message names the column, counts the rows, shows the first few and says how to fix it.

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
