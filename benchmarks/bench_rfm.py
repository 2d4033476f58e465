"""Speed and memory of turning transactions into an RFM summary, against lifetimes.

Usage::

    python benchmarks/bench_rfm.py            # 1,000,000 customers, ~5,000,000 transactions
    python benchmarks/bench_rfm.py --quick    # 50,000 customers, ~250,000 transactions

Data: :func:`clvmodels.simulate.simulate_transactions` (BG/NBD purchases with Gamma-Gamma
amounts, customers acquired over 2020, observed to 2021-12-31, ~10% extra same-day lines),
ordered by date like a transaction log, with integer customer ids.

Methods, all timed in this one process on the same data (best of ``--repeats`` runs):

* ``lifetimes``: ``lifetimes.utils.summary_data_from_transaction_data(..., freq="D",
  freq_multiplier=7)`` -- the call that gives our convention (day periods, weeks = days / 7);
* ``clvmodels pandas (frame)``: ``clv.rfm_summary(frame, engine="pandas")``;
* ``clvmodels duckdb (frame)``: ``clv.rfm_summary(frame, engine="duckdb")``;
* ``clvmodels duckdb (parquet)``: ``clv.rfm_summary("tx.parquet")`` (DuckDB reads the file;
  nothing is loaded into pandas);
* ``clvmodels pandas (parquet)``: reads the file with pandas, then aggregates.

Every result is checked against lifetimes' (equal counts and durations, amounts to 1e-9).

Memory: each method runs again in a fresh subprocess; the peak resident set size (VmHWM, reset
with ``/proc/self/clear_refs`` after the input is loaded) is reported, and the increase over
the resident size before the call (the input frame included in "before").

Writes ``benchmarks/results/rfm.md``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import clvmodels as clv  # noqa: E402
from clvmodels.io import atomic_write_text  # noqa: E402
from clvmodels.simulate import simulate_transactions  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
OBSERVATION_END = "2021-12-31"
METHODS = [
    "lifetimes",
    "clvmodels pandas (frame)",
    "clvmodels duckdb (frame)",
    "clvmodels duckdb (parquet)",
    "clvmodels pandas (parquet)",
    "floor: duckdb group-by (frame)",
    "floor: duckdb group-by (parquet)",
    "floor: polars group-by (frame)",
]
FLOORS = [name for name in METHODS if name.startswith("floor")]

# The floor: one bare group-by computing lifetimes' columns (frequency, recency, T and the
# mean spend of the repeat purchase days) -- purchases per customer and day first, then per
# customer -- with no checks of the input and no customer-id handling; the result as a pandas
# frame indexed by customer, like every other method.
FLOOR_SQL = """
WITH days AS (
  SELECT customer_id, CAST(date AS DATE) - DATE '1970-01-01' AS d, sum(amount) AS amt
  FROM {relation} GROUP BY ALL
)
SELECT customer_id, count(*) - 1 AS frequency, (max(d) - min(d)) / 7.0 AS recency,
  ((DATE '{end}' - DATE '1970-01-01') - min(d)) / 7.0 AS T,
  CASE WHEN count(*) > 1 THEN (sum(amt) - arg_min(amt, d)) / (count(*) - 1) ELSE 0.0 END
    AS monetary_value
FROM days GROUP BY customer_id ORDER BY customer_id
"""


def duckdb_floor(frame: pd.DataFrame | None, parquet: str) -> pd.DataFrame:
    import duckdb

    con = duckdb.connect()
    try:
        if frame is not None:
            con.register("tx_in", frame)
            relation = "tx_in"
        else:
            relation = f"read_parquet('{parquet}')"
        query = FLOOR_SQL.format(relation=relation, end=OBSERVATION_END)
        return con.sql(query).df().set_index("customer_id")
    finally:
        con.close()


def polars_floor(frame: pd.DataFrame) -> pd.DataFrame:
    import polars as pl

    end = pl.lit(pd.Timestamp(OBSERVATION_END).date())
    n = pl.len()
    days = (
        pl.from_pandas(frame)
        .lazy()
        .group_by("customer_id", pl.col("date").dt.date().alias("d"))
        .agg(pl.col("amount").sum().alias("amt"))
    )
    first_day_amount = pl.col("amt").sort_by("d").first()
    out = (
        days.group_by("customer_id")
        .agg(
            frequency=n - 1,
            recency=(pl.col("d").max() - pl.col("d").min()).dt.total_days() / 7.0,
            T=(end - pl.col("d").min()).dt.total_days() / 7.0,
            monetary_value=pl.when(n > 1)
            .then((pl.col("amt").sum() - first_day_amount) / (n - 1))
            .otherwise(0.0),
        )
        .sort("customer_id")
        .collect()
    )
    return out.to_pandas().set_index("customer_id")


def run_method(name: str, frame: pd.DataFrame | None, parquet: str) -> pd.DataFrame:
    if name == "lifetimes":
        from lifetimes.utils import summary_data_from_transaction_data

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return summary_data_from_transaction_data(
                frame,
                "customer_id",
                "date",
                monetary_value_col="amount",
                observation_period_end=OBSERVATION_END,
                freq="D",
                freq_multiplier=7,
            )
    kwargs = dict(
        customer_id="customer_id",
        datetime="date",
        monetary="amount",
        observation_end=OBSERVATION_END,
        time_unit="W",
    )
    if name == "clvmodels pandas (frame)":
        return clv.rfm_summary(frame, engine="pandas", **kwargs)
    if name == "clvmodels duckdb (frame)":
        return clv.rfm_summary(frame, engine="duckdb", **kwargs)
    if name == "clvmodels duckdb (parquet)":
        return clv.rfm_summary(parquet, engine="duckdb", **kwargs)
    if name == "clvmodels pandas (parquet)":
        return clv.rfm_summary(parquet, engine="pandas", **kwargs)
    if name == "floor: duckdb group-by (frame)":
        return duckdb_floor(frame, parquet)
    if name == "floor: duckdb group-by (parquet)":
        return duckdb_floor(None, parquet)
    if name == "floor: polars group-by (frame)":
        return polars_floor(frame)
    raise ValueError(name)


def needs_frame(name: str) -> bool:
    return "parquet" not in name


# ---- memory probe (runs in a subprocess) ------------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def probe(name: str, parquet: str) -> dict:
    frame = pd.read_parquet(parquet) if needs_frame(name) else None
    if name == "lifetimes":  # import outside the measured window, like the other methods
        import lifetimes.utils  # noqa: F401
    else:
        import duckdb  # noqa: F401
        import polars  # noqa: F401
    gc.collect()
    before = _status_kb("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak RSS (VmHWM) to the current RSS
        reset = True
    except OSError:
        reset = False
    start = time.perf_counter()
    out = run_method(name, frame, parquet)
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    return {
        "before_mb": before / 1024,
        "peak_mb": peak / 1024,
        "reset": reset,
        "seconds": seconds,
        "customers": len(out),
    }


def measure_memory(name: str, parquet: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--probe", name, "--parquet", parquet],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- main -------------------------------------------------------------------------------------
def make_data(n_customers: int, seed: int) -> pd.DataFrame:
    # r/alpha/extra lines chosen for ~5 transaction lines per customer
    tx, _ = simulate_transactions(
        n_customers,
        r=0.5,
        alpha=4.0,
        a=0.8,
        b=2.4,
        extra_lines_mean=0.1,
        observation_end=OBSERVATION_END,
        seed=seed,
    )
    # a transaction log is ordered by time, not by customer
    return tx.sort_values("date", kind="stable", ignore_index=True)


def check_equal(reference: pd.DataFrame, got: pd.DataFrame, name: str) -> str:
    ref = reference.to_numpy(dtype=float)
    arr = got[["frequency", "recency", "T", "monetary_value"]].to_numpy(dtype=float)
    same_ids = np.array_equal(reference.index.to_numpy(), got.index.to_numpy())
    close = np.allclose(ref[:, 3], arr[:, 3], rtol=1e-9, atol=1e-9)
    if name in FLOORS:  # polars divides by 7 as a multiplication: last-bit differences
        exact = np.allclose(ref[:, :3], arr[:, :3], rtol=1e-13, atol=0)
        if not (same_ids and exact and close):
            raise AssertionError(f"{name} differs from lifetimes")
        return "same (to 1e-13; amounts to 1e-9)"
    exact = np.array_equal(ref[:, :3], arr[:, :3])
    if not (same_ids and exact and close):
        raise AssertionError(f"{name} differs from lifetimes")
    return "identical (amounts to 1e-9)"


def write_large_parquet(path: str, n_customers: int, seed: int, chunk: int = 1_000_000) -> int:
    """A big transaction file written chunk by chunk (customers of each chunk get their own
    ids), so the benchmark itself never holds it in memory. Returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, n_rows = None, 0
    try:
        for k, start in enumerate(range(0, n_customers, chunk)):
            part = make_data(min(chunk, n_customers - start), seed + 1 + k)
            part["customer_id"] += start
            table = pa.Table.from_pandas(part, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            n_rows += len(part)
    finally:
        if writer is not None:
            writer.close()
    return n_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="runs per method (best taken)")
    parser.add_argument("--lifetimes-repeats", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    parser.add_argument(
        "--large-customers",
        type=int,
        default=None,
        help="customers of the out-of-core run (default 4,000,000, ~20M rows; 0 to skip)",
    )
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--parquet", help=argparse.SUPPRESS)
    parser.add_argument("--output", default=str(RESULTS / "rfm.md"))
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(args.probe, args.parquet)))
        return

    n_customers = args.customers or (50_000 if args.quick else 1_000_000)
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    tx = make_data(n_customers, args.seed)
    sim_seconds = time.perf_counter() - t0
    n_rows = len(tx)
    print(f"simulated {n_rows:,} transactions of {n_customers:,} customers in {sim_seconds:.1f}s")

    with tempfile.TemporaryDirectory() as tmp:
        parquet = str(Path(tmp) / "transactions.parquet")
        tx.to_parquet(parquet, index=False)
        size_mb = Path(parquet).stat().st_size / 2**20
        # warm up imports and code paths on a small slice so no method pays for them
        warm = tx.iloc[:1000]
        for name in METHODS:
            if needs_frame(name):
                run_method(name, warm, parquet)

        timings: dict[str, float] = {}
        cpu: dict[str, float] = {}
        results: dict[str, pd.DataFrame] = {}
        for name in METHODS:
            repeats = args.lifetimes_repeats if name == "lifetimes" else args.repeats
            best, best_cpu = np.inf, np.inf
            for _ in range(max(repeats, 1)):
                gc.collect()
                start, start_cpu = time.perf_counter(), time.process_time()
                out = run_method(name, tx if needs_frame(name) else None, parquet)
                best = min(best, time.perf_counter() - start)
                best_cpu = min(best_cpu, time.process_time() - start_cpu)
            timings[name], cpu[name] = best, best_cpu
            results[name] = out
            print(f"{name:32s} {best:8.2f}s wall {best_cpu:8.2f}s cpu")
        t_read = np.inf
        for _ in range(max(args.repeats, 1)):
            start = time.perf_counter()
            pd.read_parquet(parquet)
            t_read = min(t_read, time.perf_counter() - start)

        agreement = {
            name: check_equal(results["lifetimes"], results[name], name) for name in METHODS
        }
        memory = {}
        if not args.no_memory:
            for name in METHODS:
                memory[name] = measure_memory(name, parquet)
                print(f"{name:32s} peak {memory[name]['peak_mb']:8.0f} MB")
        large = None
        n_large = args.large_customers
        if n_large is None:
            n_large = 200_000 if args.quick else 4_000_000
        if n_large and not args.no_memory:
            big = str(Path(tmp) / "large.parquet")
            n_big = write_large_parquet(big, n_large, args.seed)
            del tx
            gc.collect()
            large = {
                "rows": n_big,
                "customers": n_large,
                "size_mb": Path(big).stat().st_size / 2**20,
                **measure_memory("clvmodels duckdb (parquet)", big),
            }
            print(f"large file: {n_big:,} rows, {large['seconds']:.1f}s, {large['peak_mb']:.0f} MB")
    load_end = os.getloadavg()

    base, base_cpu = timings["lifetimes"], cpu["lifetimes"]
    rows = []
    for name in METHODS:
        mem = memory.get(name)
        reference = name == "lifetimes"
        rows.append(
            "| {name} | {t:.2f} | {ratio} | {c:.2f} | {cratio} | {rate:.2f} | {peak} | {inc} | "
            "{agree} |".format(
                name=name,
                t=timings[name],
                ratio="1.0" if reference else f"**{base / timings[name]:.1f}x**",
                c=cpu[name],
                cratio="1.0" if reference else f"{base_cpu / cpu[name]:.1f}x",
                rate=n_rows / timings[name] / 1e6,
                peak=f"{mem['peak_mb']:.0f}" if mem else "-",
                inc=f"{mem['peak_mb'] - mem['before_mb']:.0f}" if mem else "-",
                agree="reference" if reference else agreement[name],
            )
        )
    floor_name = min(FLOORS, key=lambda name: timings[name])
    floor, floor_cpu = timings[floor_name], cpu[floor_name]
    floor_rows = [
        f"| {name} | {timings[name] / floor:.2f} | {cpu[name] / floor_cpu:.2f} |"
        for name in METHODS
        if name.startswith("clvmodels")
    ]
    floor_text = (
        f"Against the floor: the fastest bare group-by computing lifetimes' columns on the "
        f"same data ({floor_name}, {floor:.2f}s wall, {floor_cpu:.2f}s CPU; the query is "
        "`FLOOR_SQL` in this script, the polars version `polars_floor`) -- no input checks, no "
        "id handling, no `litt` column. Times relative to it (1.0 = the floor; the goal of "
        "issue #17 is at most 2):\n\n| method | wall / floor | CPU / floor |\n|---|---|---|\n"
        + "\n".join(floor_rows)
        + "\n"
    )
    large_text = ""
    if large:
        large_text = (
            f"Out of core: a {large['rows']:,}-row Parquet file ({large['customers']:,} customers, "
            f"{large['size_mb']:.0f} MB) summarised by `clv.rfm_summary(path)` (DuckDB engine, "
            f"never a pandas frame) in a fresh process: {large['seconds']:.1f}s wall, peak RSS "
            f"{large['peak_mb']:.0f} MB ({large['peak_mb'] - large['before_mb']:.0f} MB above the "
            f"process before the call), {large['customers']:,} customers out.\n"
        )
    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "duckdb": __import__("duckdb").__version__,
        "lifetimes": __import__("lifetimes").__version__,
    }
    text = f"""# RFM summary: clvmodels vs lifetimes

Command: `python benchmarks/bench_rfm.py{"".join(" " + a for a in sys.argv[1:])}` (seed {args.seed}).

Data: {n_rows:,} transaction lines of {n_customers:,} customers (simulated BG/NBD +
Gamma-Gamma, ordered by date, ~10% extra same-day lines), Parquet file {size_mb:.0f} MB.
Summary: weekly unit, day purchase periods, observation end {OBSERVATION_END}; every method
returns the same {len(results["lifetimes"]):,} rows.

| method | wall s | speed-up (wall) | CPU s | speed-up (CPU) | M rows/s | peak RSS MB | peak increase MB | result vs lifetimes |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

`pd.read_parquet` of the same file alone takes {t_read:.2f}s; lifetimes starting from the
Parquet file would take about {base + t_read:.2f}s, so the DuckDB-from-Parquet path is
{(base + t_read) / timings["clvmodels duckdb (parquet)"]:.1f}x faster end to end.

{floor_text}
{large_text}
Times are the best of {args.repeats} runs per method (lifetimes: best of {args.lifetimes_repeats}); "CPU s"
is the least process CPU time over the same runs (less sensitive to other jobs; DuckDB's
includes its worker threads).

Machine: {os.cpu_count()} CPUs shared with other jobs (load average {load_start[0]:.1f} at start,
{load_end[0]:.1f} at end), so absolute times are noisy; the ratios, measured in one process on
the same data, are what count. Versions: {", ".join(f"{k} {v}" for k, v in versions.items())}.

Notes
- The pandas engine groups the rows with a numba kernel (`_summarise_rows` in
  `clvmodels/data.py`): one pass scatters them into buckets of customers, then each bucket is
  sorted by customer and day in cache and walked once; its sums equal numpy's
  `np.add.reduceat` / `np.bincount` bit for bit (`tests/test_rfm_fast_paths.py`). It is
  compiled at the first summary of a process (cached on disk, so only the first process pays
  for it); the warm-up excludes that.
- The DuckDB engine reads the file (or the registered frame), parses dates in SQL, and
  streams three compact columns (customer, day number, amount) into the same numpy reduction,
  one hash partition of customers (at most {clv.data.DUCKDB_PARTITION_ROWS:,} rows) at a time, so
  its memory is bounded for files of any size; rows are checked on the way and the full SQL
  validation (naming columns and rows) runs only when something is wrong. Its results are
  bit-identical to the pandas engine's. `engine="auto"` picks DuckDB for file paths and for
  frames of {clv.data.AUTO_DUCKDB_MIN_ROWS:,} rows or more.
- Memory: each method re-run in a fresh process; "peak increase" = peak RSS during the call
  minus RSS before it (input frame already loaded for the frame methods, not for the Parquet
  methods, which read the file inside the call).
"""
    out_path = Path(args.output)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_path, text)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
