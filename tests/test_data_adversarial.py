"""No silent wrong answer from rfm_summary: dates are never guessed, both engines accept and
reject the same inputs (and give the same ids), and unreadable files are InputErrors."""

import datetime as dt
import gzip
import os
from decimal import Decimal

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import clvmodels.data as data
from clvmodels.data import calibration_holdout_summary, rfm_summary
from clvmodels.errors import InputError

ENGINES = ["pandas", "duckdb"]


def both(source, **kwargs):
    """Summaries of both engines, asserted identical (index dtype included); or the InputError
    both raise (asserted of the same class, with the same first line)."""
    results = {}
    for engine in ENGINES:
        try:
            results[engine] = rfm_summary(source, engine=engine, **kwargs)
        except InputError as exc:
            results[engine] = exc
    a, b = results["pandas"], results["duckdb"]
    if isinstance(a, Exception) or isinstance(b, Exception):
        assert type(a) is type(b), (a, b)
        assert str(a).splitlines()[0] == str(b).splitlines()[0], (str(a), str(b))
        raise a
    pd.testing.assert_frame_equal(a.drop(columns=[], errors="ignore"), b, check_exact=True)
    assert a.index.dtype == b.index.dtype
    return a


def write(path, content):
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(path, mode) as handle:
        handle.write(content)
    return path


# --------------------------------------------------------------------------------------------
# 1. dates are never guessed
# --------------------------------------------------------------------------------------------
US_CSV = "customer_id,date\n1,01/02/2020\n1,01/20/2020\n2,02/03/2020\n"


def test_us_dates_in_a_csv_are_refused_with_the_fix(tmp_path):
    path = write(tmp_path / "us.csv", US_CSV)
    for engine in ENGINES:
        with pytest.raises(InputError) as exc:
            rfm_summary(path, engine=engine)
        msg = str(exc.value)
        assert "column 'date'" in msg and "3 rows cannot be read as dates" in msg, msg
        assert "01/02/2020" in msg and "row" in msg  # the rows themselves
        assert "datetime_format='%m/%d/%Y'" in msg, msg  # the fix


def test_us_dates_with_datetime_format_give_the_right_recency(tmp_path):
    path = write(tmp_path / "us.csv", US_CSV)
    s = both(path, datetime_format="%m/%d/%Y")
    assert s.loc[1, "recency"] == 18.0  # January 2 -> January 20, not February 1 -> ...
    assert s.loc[1, "T"] == 32.0  # January 2 -> February 3 (the latest day)
    # the same in a frame
    frame = pd.read_csv(path, dtype={"date": str})
    pd.testing.assert_frame_equal(
        both(frame, datetime_format="%m/%d/%Y"), s, check_index_type=False
    )


def test_day_first_dates_that_cannot_be_month_first_are_refused_too(tmp_path):
    # DuckDB's sniffer used to read these as day first, silently
    path = write(tmp_path / "eu.csv", "customer_id,date\n1,13/02/2020\n1,14/03/2020\n")
    with pytest.raises(InputError, match=r"datetime_format='%d/%m/%Y'"):
        both(path)
    assert both(path, datetime_format="%d/%m/%Y").loc[1, "recency"] == 30.0


@pytest.mark.parametrize(
    "text",
    [
        "2020/01/02", "20200102", "2 Jan 2020", "Jan 2, 2020", "2020-1-2", "2020-01-02 10",
        "2020-02-30", "2021-02-29", "2020-13-01", "2020-01-02T24:00", "2020-01-02T23:59:60",
        "2020-01-02t10:11", "2020-01-02 10:00:00+25:00", "0000-01-01", "NaT", "yesterday", " ",
    ],
)  # fmt: skip
def test_non_iso_text_is_refused_by_both_engines(tmp_path, text):
    frame = pd.DataFrame({"customer_id": ["a", "a"], "date": ["2020-01-01", text]})
    with pytest.raises(InputError, match=r"column 'date': 1 row cannot be read as dates"):
        both(frame)
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(InputError, match=r"column 'date': 1 row cannot be read as dates"):
        both(tmp_path / "d.csv")


@pytest.mark.parametrize(
    "text",
    [
        "2020-01-02", " 2020-01-02 ", "2020-01-02T10:11", "2020-01-02 10:11:12",
        "2020-01-02T10:11:12.123456789", "2020-01-02T10:11:12,5", "2020-01-02T23:30:00Z",
        "2020-01-02T23:30:00-05:00", "2020-01-02T23:30:00+0530", "2020-01-02T23:30+05",
        "2020-01-02T10:11:12.5Z",
    ],
)  # fmt: skip
def test_iso_layouts_are_read_at_their_wall_time(tmp_path, text):
    frame = pd.DataFrame({"customer_id": ["a", "a"], "date": ["2020-01-01", text]})
    s = both(frame)
    assert s.loc["a", "recency"] == 1.0  # January 2 as written, whatever the offset
    frame.to_csv(tmp_path / "d.csv", index=False)
    pd.testing.assert_frame_equal(both(tmp_path / "d.csv"), s)


def test_the_fast_and_full_iso_parsers_agree():
    """The common layouts go through DuckDB's cast; the parts of the full pattern must give
    the same instant for every one of them."""
    rng = np.random.default_rng(1)
    days = pd.Timestamp("1999-12-25") + pd.to_timedelta(rng.integers(0, 20_000, 400), unit="D")
    seconds = pd.to_timedelta(rng.integers(0, 86_400 * 10**6, 400), unit="us")
    stamps = days + seconds
    texts = (
        list(days.strftime("%Y-%m-%d"))
        + list(stamps.strftime("%Y-%m-%dT%H:%M"))
        + list(stamps.strftime("%Y-%m-%d %H:%M:%S"))
        + [s.strftime("%Y-%m-%dT%H:%M:%S.%f")[: 21 + k % 6] for k, s in enumerate(stamps)]
        + ["2000-02-29", "1900-02-29", "2100-02-28 23:59:59.999999", "0001-01-01"]
    )
    con = data._duck_connect()
    try:
        con.register("t", pd.DataFrame({"v": texts}))
        names = ", ".join(f"'{n}'" for n in data._ISO_PARTS)
        p = "m"
        full = (
            f"TRY_CAST({p}.y || '-' || {p}.mo || '-' || {p}.d || ' ' || "
            f"(CASE WHEN {p}.h = '' THEN '00:00' ELSE {p}.h || ':' || {p}.mi END) || ':' || "
            f"(CASE WHEN {p}.s = '' THEN '00' ELSE {p}.s END) || '.' || "
            f"(CASE WHEN {p}.f = '' THEN '0' ELSE left({p}.f, 6) END) AS TIMESTAMP)"
        )
        rows = con.sql(
            f"SELECT v, regexp_full_match(v, '{data._ISO_FAST_PATTERN}') AS fast, "
            f"TRY_CAST(v AS TIMESTAMP) AS cast, {full} AS parts FROM (SELECT v, "
            f"regexp_extract(v, '{data._ISO_PATTERN}', [{names}]) AS m FROM t)"
        ).fetchall()
    finally:
        con.close()
    for text, fast, cast, parts in rows:
        assert fast, text  # every one is a common layout
        assert cast == parts, text  # 1900-02-29: both None
        if cast is not None:
            assert data._iso_us(text) == (cast - dt.datetime(1970, 1, 1)) // dt.timedelta(
                microseconds=1
            )


def test_mixed_offsets_keep_each_row_at_its_wall_time(tmp_path):
    # 23:30 at -05:00 is 04:30 UTC the next day; as written it is January 1
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a"],
            "date": ["2020-01-01T23:30:00-05:00", "2020-01-02T03:00:00+00:00", "2020-01-05"],
        }
    )
    s = both(frame)
    assert s.loc["a", "frequency"] == 2 and s.loc["a", "recency"] == 4.0
    frame.to_csv(tmp_path / "mixed.csv", index=False)
    pd.testing.assert_frame_equal(both(tmp_path / "mixed.csv"), s)


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata", "UTC", "+05:00", "-03:30"])
def test_time_zones_give_the_same_summary_from_every_source(tmp_path, zone):
    """A tz-aware column (frame, Parquet, Arrow, polars) and the CSV it is written to (which
    holds offsets that change at daylight saving) all count the customer's wall-clock days."""
    naive = pd.to_datetime(
        ["2020-03-07 23:30", "2020-03-08 23:30", "2020-03-09 00:30", "2020-11-01 00:30",
         "2020-11-01 23:59"]
    )  # fmt: skip
    if zone[0] in "+-":
        hours, minutes = int(zone[:3]), int(zone[0] + zone[4:])
        tz = dt.timezone(dt.timedelta(hours=hours, minutes=minutes))
    else:
        tz = zone
    ids = ["a", "a", "b", "b", "a"]
    aware = pd.DataFrame({"customer_id": ids, "date": naive.tz_localize(tz)})
    expected = rfm_summary(pd.DataFrame({"customer_id": ids, "date": naive}), time_unit="H")
    sources = {"frame": aware, "arrow": pa.Table.from_pandas(aware)}
    aware.to_parquet(tmp_path / "tz.parquet")
    aware.to_csv(tmp_path / "tz.csv", index=False)
    sources["parquet"] = tmp_path / "tz.parquet"
    sources["csv"] = tmp_path / "tz.csv"
    if zone[0] not in "+-":  # polars knows named zones only
        sources["polars"] = pl.from_pandas(aware)
    for name, source in sources.items():
        got = both(source, time_unit="H")
        pd.testing.assert_frame_equal(
            got.drop(columns="litt"), expected.drop(columns="litt"), obj=name
        )
        np.testing.assert_allclose(got["litt"], expected["litt"], rtol=1e-15, err_msg=name)


def test_native_date_columns_of_every_source(tmp_path):
    days = [dt.date(2020, 1, 1), dt.date(2020, 1, 5)]
    expected = rfm_summary(pd.DataFrame({"customer_id": ["a", "a"], "date": pd.to_datetime(days)}))
    table = pa.table({"customer_id": ["a", "a"], "date": pa.array(days, pa.date32())})
    pq.write_table(table, tmp_path / "d.parquet")
    for source in (
        pd.DataFrame({"customer_id": ["a", "a"], "date": days}),  # datetime.date objects
        table,
        tmp_path / "d.parquet",
        pl.DataFrame({"customer_id": ["a", "a"], "date": days}),
        pd.DataFrame({"customer_id": ["a", "a"], "date": pd.to_datetime(days).astype("M8[s]")}),
    ):
        pd.testing.assert_frame_equal(both(source), expected)


def test_objects_of_several_zones_are_each_at_their_wall_time():
    moments = [
        pd.Timestamp("2020-01-01 23:00", tz="America/New_York"),
        pd.Timestamp("2020-01-02 01:00", tz="UTC"),
    ]
    frame = pd.DataFrame({"customer_id": ["a", "a"], "date": pd.Series(moments, dtype=object)})
    assert both(frame).loc["a", "recency"] == 1.0


def test_datetime_format_is_read_the_same_way_by_both_engines(tmp_path):
    frame = pd.DataFrame(
        {"customer_id": ["a", "a", "b"], "date": ["1/2/2020", "01/20/2020", "2/3/2020"]}
    )
    s = both(frame, datetime_format="%m/%d/%Y")
    assert s.loc["a", "recency"] == 18.0
    bad = frame.assign(date=["01/02/2020x", "01/20/2020", "2/3/2020"])
    with pytest.raises(InputError, match=r"with datetime_format='%m/%d/%Y'") as exc:
        both(bad, datetime_format="%m/%d/%Y")
    assert "01/02/2020x" in str(exc.value)
    ints = pd.DataFrame({"customer_id": [1, 1], "date": [20200102, 20200120]})
    assert both(ints, datetime_format="%Y%m%d").loc[1, "recency"] == 18.0
    floats = ints.astype({"date": "float64"})
    with pytest.raises(InputError, match="fractional numbers"):
        both(floats, datetime_format="%Y%m%d")


@pytest.mark.parametrize(
    ("fmt", "match"),
    [
        ("%d/%m/%Y %z", "time zone"), ("%Y %Z", "time zone"), ("%Q", "not a valid strftime"),
        ("dd/mm/yyyy", "strftime format"), (5, "strftime format"),
    ],
)  # fmt: skip
def test_bad_datetime_formats(fmt, match):
    frame = pd.DataFrame({"customer_id": ["a"], "date": ["2020-01-01"]})
    for engine in ENGINES:
        with pytest.raises(InputError, match=match):
            rfm_summary(frame, datetime_format=fmt, engine=engine)


def test_numbers_are_not_dates(tmp_path):
    frame = pd.DataFrame({"customer_id": [1, 1], "date": [20200102, 20200120]})
    with pytest.raises(InputError, match=r"holds numbers .* datetime_format='%Y%m%d'"):
        both(frame)
    frame.to_csv(tmp_path / "n.csv", index=False)  # text in a CSV: not ISO
    with pytest.raises(InputError, match=r"datetime_format='%Y%m%d'"):
        both(tmp_path / "n.csv")


# --------------------------------------------------------------------------------------------
# observation_end / calibration_end
# --------------------------------------------------------------------------------------------
@pytest.fixture
def tx():
    return pd.DataFrame(
        {"customer_id": ["a", "a", "b"], "date": ["2020-01-02", "2020-01-20", "2020-02-03"]}
    )


@pytest.mark.parametrize(
    "end",
    [
        "2020-03-01", " 2020-03-01 ", "2020-03-01T18:00", "2020-03-01T23:30:00-05:00",
        dt.date(2020, 3, 1), dt.datetime(2020, 3, 1, 5), pd.Timestamp("2020-03-01 09:00"),
        pd.Timestamp("2020-03-01 08:00", tz="Asia/Tokyo"), np.datetime64("2020-03-01"),
        np.datetime64("2020-03-01T12:00:00.000000001"),
    ],
)  # fmt: skip
def test_observation_end_dates(tx, end):
    for engine in ENGINES:
        s = rfm_summary(tx, observation_end=end, engine=engine)
        assert s.attrs["observation_end"].startswith("2020-03-01")
        assert s.loc["a", "T"] == 59.0


@pytest.mark.parametrize(
    ("end", "match"),
    [
        (20200301, "is a number"), (1583020800, "is a number"), (np.int64(1583020800), "number"),
        (1.5e18, "is a number"), (Decimal("20200301"), "is a number"), (True, "boolean"),
        ("03/01/2020", "not a date; write it in ISO 8601"), ("2020-02-30", "not a date"),
        ("2020-03-01Z", "not a date"), ("2020-03-01\n", "not a date"), ("soon", "not a date"),
        (pd.NaT, "missing"),
        (np.datetime64("NaT"), "missing"), ([2020, 3, 1], "must be a date"),
    ],
)  # fmt: skip
def test_observation_end_non_dates_are_refused(tx, end, match):
    for engine in ENGINES:
        with pytest.raises(InputError, match=match):
            rfm_summary(tx, observation_end=end, engine=engine)
    with pytest.raises(InputError, match=match):
        calibration_holdout_summary(tx, calibration_end=end, observation_end="2020-03-01")


def test_observation_end_in_the_datetime_format(tx):
    us = tx.assign(date=pd.to_datetime(tx.date).dt.strftime("%m/%d/%Y"))
    for engine in ENGINES:
        s = rfm_summary(us, observation_end="03/01/2020", datetime_format="%m/%d/%Y",
                        engine=engine)  # fmt: skip
        assert s.attrs["observation_end"].startswith("2020-03-01")
    odd = tx.assign(date=pd.to_datetime(tx.date).dt.strftime("%Y-%d-%m"))
    with pytest.raises(InputError, match="never guessed"):  # ISO says January 3, the format March 1
        rfm_summary(odd, observation_end="2020-01-03", datetime_format="%Y-%d-%m")


# --------------------------------------------------------------------------------------------
# 2. customer ids: one rule, both engines
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "ids", "dtype"),
    [
        ("007,2020-01-01\n7,2020-01-02\n1,2020-01-03\n7,2020-01-05\n", ["007", "1", "7"], "str"),
        ("10,2020-01-01\n2,2020-01-02\n-3,2020-01-03\n", [-3, 2, 10], "int64"),
        ("1,2020-01-01\nx,2020-01-02\n", ["1", "x"], "str"),
        ("+5,2020-01-01\n5,2020-01-02\n", ["+5", "5"], "str"),
        (" 5,2020-01-01\n5,2020-01-02\n", [" 5", "5"], "str"),
        ("1.0,2020-01-01\n1,2020-01-02\n", ["1", "1.0"], "str"),
        ("-0,2020-01-01\n0,2020-01-02\n", ["-0", "0"], "str"),
        ("99999999999999999999,2020-01-01\n5,2020-01-02\n", ["5", "99999999999999999999"], "str"),
        ("1234567890123456789,2020-01-01\n5,2020-01-02\n", [5, 1234567890123456789], "int64"),
    ],
)  # fmt: skip
def test_csv_ids_are_text_unless_every_one_is_a_plain_integer(tmp_path, body, ids, dtype):
    path = write(tmp_path / "ids.csv", "customer_id,date\n" + body)
    s = both(path)
    assert s.index.tolist() == ids
    assert str(s.index.dtype) == dtype if dtype == "int64" else s.index.dtype != np.int64


def test_csv_with_leading_zeros_keeps_customers_apart(tmp_path):
    path = write(tmp_path / "z.csv", "customer_id,date\n007,2020-01-01\n7,2020-01-02\n")
    s = both(path)
    assert len(s) == 2 and (s.frequency == 0).all()  # 007 and 7 are not one customer


def test_csv_of_integer_ids_equals_its_frame(tmp_path):
    frame = pd.DataFrame(
        {"customer_id": [10, 2, 10, 300], "date": pd.to_datetime(
            ["2020-01-01", "2020-01-02", "2020-01-09", "2020-01-03"])}
    )  # fmt: skip
    frame.to_csv(tmp_path / "f.csv", index=False)
    pd.testing.assert_frame_equal(both(tmp_path / "f.csv"), both(frame))


@pytest.mark.parametrize("n_text", [0, 1])
def test_csv_ids_over_duckdb_partitions(tmp_path, monkeypatch, n_text):
    """The DuckDB engine streams plain integer ids as integers and starts again as text when a
    partition meets an id that is not one: the result is the pandas engine's."""
    rng = np.random.default_rng(0)
    ids = [str(v) for v in rng.integers(0, 500, 3000)]
    ids[-1] = "0042" if n_text else ids[-1]
    days = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 300, 3000), unit="D")
    pd.DataFrame({"customer_id": ids, "date": days}).to_csv(tmp_path / "p.csv", index=False)
    expected = rfm_summary(tmp_path / "p.csv", engine="pandas")
    monkeypatch.setattr(data, "DUCKDB_PARTITION_ROWS", 400)
    got = rfm_summary(tmp_path / "p.csv", engine="duckdb")
    pd.testing.assert_frame_equal(got, expected)
    assert (got.index.dtype == np.int64) == (n_text == 0)


@pytest.mark.parametrize(
    "values",
    [[1, "1"], [1, "x"], [1, 1.0], ["a", b"a"]],
    ids=["int-str", "int-text", "int-float", "bytes"],
)
def test_object_ids_of_mixed_types_are_refused(values):
    frame = pd.DataFrame(
        {"customer_id": pd.Series(values, dtype=object), "date": ["2020-01-01", "2020-01-02"]}
    )
    with pytest.raises(InputError, match="mixes id types") as exc:
        both(frame)
    assert "astype(str)" in str(exc.value)


@pytest.mark.parametrize(
    "dtype", ["int64", "int32", "uint8", "float64", "Int64", "str", "object", "category", "string"]
)
def test_typed_ids_keep_their_dtype_in_both_engines(tmp_path, dtype):
    numbers = dtype not in ("str", "object", "category", "string")
    raw = [3, 10, 2, 3] if numbers else ["b", "a10", "a2", "b"]
    frame = pd.DataFrame(
        {
            "customer_id": pd.Series(raw).astype(dtype),
            "date": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-09"]),
        }
    )
    s = both(frame)
    assert s.index.dtype == frame.customer_id.dtype
    assert s.index.tolist() == sorted(set(raw))
    frame.to_parquet(tmp_path / "ids.parquet")
    p = both(tmp_path / "ids.parquet")
    assert p.index.tolist() == s.index.tolist()
    both(pa.Table.from_pandas(frame))
    both(pl.from_pandas(frame))


# --------------------------------------------------------------------------------------------
# 3. unreadable files: InputError (FileNotFoundError for a missing path), never a raw library error
# --------------------------------------------------------------------------------------------
FILES = {
    "empty.csv": ("", "is empty"),
    "header.csv": ("customer_id,date\n", "empty"),
    "latin.csv": ("customer_id,date\nJos\xe9,2020-01-01\n".encode("latin-1"), "not UTF-8"),
    "utf16.csv": ("customer_id,date\na,2020-01-01\n".encode("utf-16"), "not UTF-8"),
    "short.csv": ("customer_id,date,amount\na,2020-01-01,3\nb,2020-01-02\n", "Found: 2"),
    "long.csv": ("customer_id,date,amount\na,2020-01-01,3\nb,2020-01-02,4,5\n", "Found: 4"),
    "quote.csv": ('customer_id,date\n"a,2020-01-01\n', "unterminated quote"),
    "semicolon.csv": ("customer_id;date\na;2020-01-01\n", "available columns: customer_id;date"),
    "blank.csv": ("\ncustomer_id,date\na,2020-01-01\n", "first line of .* is blank"),
    "noheader.csv": ("a,2020-01-01\nb,2020-01-02\n", "no column 'customer_id'"),
    "corrupt.parquet": (os.urandom(300), "as Parquet"),
    "empty.parquet": (b"", "as Parquet"),
    "cut.csv.gz": (gzip.compress(b"customer_id,date\na,2020-01-01\n" * 200)[:40], "as CSV"),
    "text.parquet": (b"customer_id,date\na,2020-01-01\n", "as Parquet"),
}


@pytest.mark.parametrize("name", list(FILES))
def test_unreadable_files_are_input_errors(tmp_path, name):
    content, match = FILES[name]
    path = write(tmp_path / name, content)
    for engine in [*ENGINES, "auto"]:
        with pytest.raises(InputError, match=match) as exc:
            rfm_summary(path, engine=engine)
        assert type(exc.value).__module__.startswith("clvmodels"), type(exc.value)
        msg = str(exc.value)
        if "cannot read" in msg or "is empty (no header" in msg:
            assert "Fix:" in msg, msg
        assert "Possible fixes" not in msg and "Possible Solution" not in msg


def test_missing_path_and_directory(tmp_path):
    for engine in ENGINES:
        with pytest.raises(FileNotFoundError, match="does not exist") as exc:
            rfm_summary(tmp_path / "nope.csv", engine=engine)
        assert isinstance(exc.value, InputError)
        (tmp_path / "adir.parquet").mkdir(exist_ok=True)
        with pytest.raises(InputError, match="is a directory"):
            rfm_summary(tmp_path / "adir.parquet", engine=engine)


def test_csv_dialect_is_fixed_not_sniffed(tmp_path):
    good = both(write(tmp_path / "a.csv", "customer_id,date\na,2020-01-01\na,2020-01-03\n"))
    variants = {
        "bom.csv": b"\xef\xbb\xbfcustomer_id,date\na,2020-01-01\na,2020-01-03\n",
        "crlf.csv": b"customer_id,date\r\na,2020-01-01\r\na,2020-01-03\r\n",
        "blank_lines.csv": "customer_id,date\na,2020-01-01\n\na,2020-01-03\n\n",
        "tabs.tsv": "customer_id\tdate\na\t2020-01-01\na\t2020-01-03\n",
        "quoted.csv": 'customer_id,date\n"a","2020-01-01"\n"a",2020-01-03\n',
        "zipped.csv.gz": gzip.compress(b"customer_id,date\na,2020-01-01\na,2020-01-03\n"),
    }
    for name, content in variants.items():
        pd.testing.assert_frame_equal(both(write(tmp_path / name, content)), good, obj=name)
    # a name with spaces around it is not silently another name
    with pytest.raises(InputError, match="spaces around them"):
        both(write(tmp_path / "sp.csv", "customer_id, date\na,2020-01-01\n"))


def test_bad_value_deep_in_a_csv_is_reported_by_row(tmp_path):
    """DuckDB's type sniffer looks at the first rows only; nothing is sniffed any more."""
    frame = pd.DataFrame(
        {"customer_id": ["a"] * 5000, "date": ["2020-01-01"] * 5000, "amount": ["1.5"] * 5000}
    )
    frame.loc[4321, "amount"] = "oops"
    frame.loc[4999, "date"] = "01/02/2020"
    path = tmp_path / "late.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"column 'date': 1 row cannot be read") as exc:
        both(path, monetary="amount")
    assert "4999" in str(exc.value)
    frame.loc[4999, "date"] = "2020-01-02"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"column 'amount': 1 row are not numbers") as exc:
        both(path, monetary="amount")
    assert "4321" in str(exc.value) and "oops" in str(exc.value)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("12.50", True), (" 3 ", True), ("1e2", True), ("+4", True), (".5", True), ("5.", True),
        ("1,5", False), ("$3", False), ("1_000", False), ("inf", False), ("nan", False),
        ("0x10", False), ("1e400", False), ("", False), ("twelve", False),
    ],
)  # fmt: skip
def test_amounts_as_text_are_read_the_same_way(tmp_path, text, ok):
    frame = pd.DataFrame(
        {"customer_id": ["a", "a"], "date": ["2020-01-01", "2020-01-02"], "amount": ["1", text]}
    )
    frame.to_csv(tmp_path / "am.csv", index=False)
    for source in (frame, tmp_path / "am.csv"):
        if ok:
            assert both(source, monetary="amount").loc["a", "monetary_value"] == float(text)
        else:
            with pytest.raises(InputError, match="column 'amount'"):
                both(source, monetary="amount")


def test_object_amounts_of_numbers_and_text():
    frame = pd.DataFrame({"customer_id": ["a", "a", "a"], "date": ["2020-01-01", "2020-01-02",
                          "2020-01-03"]})  # fmt: skip
    mixed = frame.assign(amount=pd.Series([1.5, "2.25", 3], dtype=object))
    assert both(mixed, monetary="amount").loc["a", "monetary_value"] == (2.25 + 3) / 2
    decimals = frame.assign(amount=pd.Series([Decimal("1.10")] * 3, dtype=object))
    assert both(decimals, monetary="amount").loc["a", "monetary_value"] == 1.1
    broken = frame.assign(amount=pd.Series([1.5, "12,50", [3]], dtype=object))
    with pytest.raises(InputError, match=r"column 'amount': 2 rows are not numbers"):
        both(broken, monetary="amount")


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        ({"customer_id": ["a", None], "date": [20200101, np.nan]}, "missing customer id"),
        ({"customer_id": ["a", "b"], "date": [20200101, np.nan]}, "missing date"),
        ({"customer_id": ["a", "b"], "date": [np.nan, np.nan]}, "2 rows have a missing date"),
        ({"customer_id": ["a", "b"], "date": [20200101, 20200102]}, "holds numbers"),
        ({"customer_id": ["a", "b"], "date": ["2020-01-01", "x"]}, "cannot be read as dates"),
        ({"customer_id": ["a", "b"], "date": ["2020-01-01"] * 2}, "holds booleans"),
        ({"customer_id": ["a", "b"], "date": pd.to_timedelta([1, 2], unit="D")}, "INTERVAL"),
    ],
)  # fmt: skip
def test_both_engines_report_the_same_first_problem(columns, match):
    frame = pd.DataFrame({**columns, "amount": [True, False]})
    with pytest.raises(InputError, match=match):
        both(frame, monetary="amount")
