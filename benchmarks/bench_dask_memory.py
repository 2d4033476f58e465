"""Worker memory of the Dask pipeline, stage by stage (issue #17, row 5).

Usage::

    python benchmarks/bench_dask_memory.py --customers 10000000      # the issue's size
    python benchmarks/bench_dask_memory.py --customers 2000000 --skip-score
    python benchmarks/bench_dask_memory.py --quick                   # 200,000 customers

Simulates the transactions of ``--customers`` customers into one Parquet file (as
``bench_scoring.py``: BG/NBD + Gamma-Gamma, first purchases over 2020, observed to 2021-12-31),
then on a ``LocalCluster`` of 2 worker processes x 1 thread (no memory limit, so nothing is
spilled): ``rfm_summary_dask(dd.read_parquet(file))`` persisted, the fit on the distinct
histories gathered to the client, ``score_dask`` (20 draws, predictive 90% intervals, 12 months,
chunks of 20,000) written with ``to_parquet``. After each stage every worker's peak resident
set size (``VmHWM``) is read and reset (``/proc/self/clear_refs``), so each stage's peak is its
own; the persisted summary stays in the workers throughout. The load average is recorded.
Writes ``benchmarks/results/scoring_dask_memory.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for path in (REPO, HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_scoring import GENERATE  # noqa: E402


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def peak_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmHWM:"))


def pipeline(transactions: str, out: str, skip_score: bool) -> dict:
    import warnings

    warnings.simplefilter("ignore")
    import dask.dataframe as dd
    from distributed import Client, LocalCluster, wait

    import clvmodels as clv
    from clvmodels.distributed import rfm_summary_dask, score_dask

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        silence_logs=40, memory_limit=0,
    )  # fmt: skip
    client = Client(cluster)
    result = {"stages": {}, "seconds": {}, "load": [" ".join(f"{v:.2f}" for v in os.getloadavg())]}

    def stage(name: str, started: float) -> None:
        result["seconds"][name] = time.perf_counter() - started
        result["stages"][name] = sorted(client.run(peak_mb).values())
        result["load"].append(" ".join(f"{v:.2f}" for v in os.getloadavg()))
        client.run(reset_peak)

    try:
        client.run(reset_peak)
        started = time.perf_counter()
        ddf = dd.read_parquet(transactions)
        result["input_partitions"] = ddf.npartitions
        summary = rfm_summary_dask(ddf, "customer_id", "date", "amount", time_unit="W").persist()
        wait(summary)
        result["summary_partitions"] = summary.npartitions
        stage("summary", started)
        started = time.perf_counter()
        rows = summary.groupby(["frequency", "recency", "T"]).size().compute()
        rows = rows.rename("n").reset_index()
        repeat = summary[summary["frequency"] > 0].compute()
        rows.attrs["time_unit"] = repeat.attrs["time_unit"] = "W"
        weights = rows["n"].to_numpy(float)
        bg = clv.BetaGeo().fit(rows[["frequency", "recency", "T"]], weights=weights)
        gg = clv.GammaGamma().fit(repeat)
        del repeat
        stage("fit", started)
        if not skip_score:
            started = time.perf_counter()
            scored = score_dask(
                summary, bg, gg, time_unit="W", n_draws=20, kind="predictive", horizon="12M",
                annual_discount_rate=0.1, margin=0.3, interval=0.9, chunk_size=20_000,
                random_seed=0, client=client,
            )  # fmt: skip
            scored.to_parquet(out, write_index=True)
            stage("score", started)
    finally:
        client.close()
        cluster.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 customers")
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--skip-score", action="store_true", help="summary and fit only")
    parser.add_argument("--transactions", default=None, help="an existing transactions file")
    args = parser.parse_args()
    n = args.customers or (200_000 if args.quick else 10_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        transactions = args.transactions or str(Path(tmp) / "transactions.parquet")
        if args.transactions is None:
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            code = [sys.executable, "-c", GENERATE, str(n), transactions, "1000000"]
            subprocess.run(code, check=True, env=env, capture_output=True)
        result = pipeline(transactions, str(Path(tmp) / "scored"), args.skip_score)
    stages = "\n".join(
        f"| {name} | {result['seconds'][name]:,.1f} | "
        + " | ".join(f"{m:,.0f}" for m in peaks)
        + f" | {result['load'][k + 1]} |"
        for k, (name, peaks) in enumerate(result["stages"].items())
    )
    command = " ".join(["python benchmarks/bench_dask_memory.py", *sys.argv[1:]])
    text = f"""# Dask pipeline: worker memory by stage

`{command}`: {n:,} customers, LocalCluster of 2 worker processes x 1 thread, no memory limit.
Input: one Parquet file read by `dd.read_parquet` ({result["input_partitions"]} partition(s));
the summary has {result["summary_partitions"]} partitions. Load average at the start:
{result["load"][0]}.

| stage | seconds | worker 1 peak MB | worker 2 peak MB | load after |
|---|---:|---:|---:|---|
{stages}

Each stage's peak resident set size is its own (reset after the previous stage); the persisted
summary stays in the workers from the first stage on. Issue #17's goal: each worker under
4 GB at 10,000,000 customers (before: 5.3-5.7 GB).

```json
{json.dumps(result, indent=1)}
```
"""
    target = HERE / "results" / "scoring_dask_memory.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    from clvmodels.io import atomic_write_text

    atomic_write_text(target, text)
    print(text)


if __name__ == "__main__":
    main()
