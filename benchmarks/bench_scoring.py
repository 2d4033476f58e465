"""Batch scoring end to end: transactions -> RFM summary -> fit -> CLV with intervals.

Runs the same job twice on simulated customers (BG/NBD purchases with CDNOW-like parameters,
Gamma-Gamma spend, real dates over two years):

* **local**: what ``clvmodels score TRANSACTIONS --out clv.parquet`` does in one process --
  DuckDB summary of the Parquet transactions, BG/NBD + Gamma-Gamma fit on the distinct
  histories, chunked streaming valuation to Parquet;
* **cluster**: the same on a ``dask.distributed.LocalCluster`` (``--workers`` processes, one
  thread each): :func:`clvmodels.distributed.rfm_summary_dask`, the fit on the distinct
  histories gathered to the client, :func:`clvmodels.distributed.score_dask` written with
  ``to_parquet``.

Each step runs in a fresh subprocess; peak memory is ``getrusage(RUSAGE_SELF).ru_maxrss`` of
that process (for the cluster: of the client process and of each worker process, read with
``client.run``). The transactions are generated beforehand in another subprocess, in batches,
and are not part of the timings.

Usage::

    python benchmarks/bench_scoring.py            # 10,000,000 customers (the issue's size)
    python benchmarks/bench_scoring.py --quick    # 200,000 customers, a smoke run

Writes ``benchmarks/results/scoring.md`` (atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results" / "scoring.md"
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

GENERATE = r"""
import json, sys, time
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
from clvmodels.simulate import simulate_transactions
n, path, batch = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter(); writer = None; rows = 0
for k, start in enumerate(range(0, n, batch)):
    m = min(batch, n - start)
    tx, _ = simulate_transactions(m, 0.243, 4.414, 0.793, 2.426, spend=(6.25, 3.74, 15.44),
                                  start="2020-01-01", acquisition_days=365.0,
                                  observation_end="2021-12-31", seed=1000 + k)
    tx["customer_id"] += start
    table = pa.Table.from_pandas(tx[["customer_id", "date", "amount"]], preserve_index=False)
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema, compression="zstd")
    writer.write_table(table); rows += len(tx)
writer.close()
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t0}))
"""

LOCAL = r"""
import json, resource, sys, tempfile, time, warnings
from pathlib import Path
warnings.simplefilter("ignore")
from clvmodels import cli, scoring
tx, out, draws, kind, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
limit = int(sys.argv[6]) or None
times = {}
with tempfile.TemporaryDirectory() as scratch:
    t = time.perf_counter()
    summary_path, summary = cli.summarize_transactions_file(
        Path(tx), Path(scratch) / "summary.parquet", customer_id="customer_id",
        datetime_col="date", monetary="amount", time_unit="W", observation_end=None)
    n = len(summary); del summary
    times["summary"] = time.perf_counter() - t
    t = time.perf_counter()
    info = scoring.inspect_summary_file(summary_path)
    bg, gg = cli.fit_models(info, "bgnbd", "gamma-gamma")
    times["fit"] = time.perf_counter() - t
    t = time.perf_counter()
    result = scoring.score_file(summary_path, out, bg, gg, n_draws=draws, kind=kind,
                                horizon="12M", annual_discount_rate=0.1, margin=0.3,
                                interval=0.9, chunk_size=chunk, random_seed=0, limit=limit)
    times["score"] = time.perf_counter() - t
print(json.dumps({"n_customers": n, "n_scored": result.n_customers, "times": times,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "params": {**bg.params_.to_dict(), **gg.params_.to_dict()},
                  "equity": result.equity}))
"""

CLUSTER = r"""
import json, os, resource, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
import dask.dataframe as dd
from distributed import Client, LocalCluster, wait
import clvmodels as clv
from clvmodels.distributed import rfm_summary_dask, score_dask
tx, out, draws, kind, chunk, workers = (sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4],
                                        int(sys.argv[5]), int(sys.argv[6]))
times = {}
t = time.perf_counter()
cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                       dashboard_address=None, silence_logs=40, memory_limit=0)
client = Client(cluster)
times["cluster_start"] = time.perf_counter() - t

def reset_peak():  # the peak resident set size (VmHWM) back to the current one
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")

def peak_mb():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) / 1024 for l in fh if l.startswith("VmHWM:"))

stage_peaks = {}
def stage(name):
    stage_peaks[name] = sorted(client.run(peak_mb).values())
    client.run(reset_peak)

client.run(reset_peak)
t = time.perf_counter()
ddf = dd.read_parquet(tx)
summary = rfm_summary_dask(ddf, "customer_id", "date", "amount", time_unit="W").persist()
wait(summary)
n = int(summary.map_partitions(len).compute().sum())
times["summary"] = time.perf_counter() - t
stage("summary")
t = time.perf_counter()
rows = summary.groupby(["frequency", "recency", "T"]).size().compute().rename("n").reset_index()
repeat = summary[summary["frequency"] > 0].compute()
rows.attrs["time_unit"] = repeat.attrs["time_unit"] = "W"
bg = clv.BetaGeo().fit(rows[["frequency", "recency", "T"]], weights=rows["n"].to_numpy(float))
gg = clv.GammaGamma().fit(repeat); del repeat
times["fit"] = time.perf_counter() - t
stage("fit")
t = time.perf_counter()
scored = score_dask(summary, bg, gg, time_unit="W", n_draws=draws, kind=kind, horizon="12M",
                    annual_discount_rate=0.1, margin=0.3, interval=0.9, chunk_size=chunk,
                    random_seed=0, client=client)
scored.to_parquet(out, write_index=True)
times["score"] = time.perf_counter() - t
stage("score")
worker_rss = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
client.close(); cluster.close()
print(json.dumps({"n_customers": n, "times": times,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_peak_rss_mb": sorted(worker_rss.values()),
                  "worker_stage_peak_mb": stage_peaks,
                  "params": {**bg.params_.to_dict(), **gg.params_.to_dict()}}))
"""


def compare_with_lifetimes(n: int) -> str:
    """Point CLV of the same customers, side by side in this process: clvmodels' chunked
    scorer vs lifetimes' ``GammaGammaFitter.customer_lifetime_value`` (same parameters, the
    lifetimes convention: 12 steps of 4.345 weeks, 1% per step)."""
    import warnings

    import numpy as np
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    import clvmodels as clv
    from clvmodels import scoring
    from clvmodels.simulate import simulate_beta_geo, simulate_gamma_gamma_spend

    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    s = simulate_beta_geo(n, 0.243, 4.414, 0.793, 2.426, T=rng.uniform(30, 78, n), seed=1)
    s = simulate_gamma_gamma_spend(s, 6.25, 3.74, 15.44, seed=2)
    s = s[["frequency", "recency", "T", "monetary_value"]]
    bg, gg = clv.BetaGeo().fit(s), clv.GammaGamma().fit(s)
    bgf, ggf = BetaGeoFitter(), GammaGammaFitter()
    bgf.params_, ggf.params_ = bg.params_.copy(), gg.params_.copy()
    bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time  # set by lifetimes' fit
    settings = dict(horizon=12 * 4.345, period="4.345W", period_discount_rate=0.01, kind="point")
    draws = scoring.prepare_draws(bg, gg, 1, "point", 0)
    scoring.score_frame(s.iloc[:100], bg, gg, draws=draws, **settings)  # imports, warm-up
    t = time.perf_counter()
    ours = pd_concat(
        scoring.score_frame(s.iloc[k : k + 20_000], bg, gg, draws=draws, block=k, **settings)
        for k in range(0, n, 20_000)
    )
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    theirs = ggf.customer_lifetime_value(
        bgf, s["frequency"], s["recency"], s["T"], s["monetary_value"], time=12,
        discount_rate=0.01, freq="W",
    )  # fmt: skip
    t_theirs = time.perf_counter() - t
    diff = np.max(np.abs(ours["clv_mean"].to_numpy() - theirs.to_numpy()))
    rel = diff / float(np.max(np.abs(theirs.to_numpy())))
    return (
        f"| {n:,} | {t_ours:,.2f} | {t_theirs:,.2f} | {t_theirs / t_ours:,.2f} | {diff:.2e} "
        f"({rel:.1e} of the largest CLV) |"
    )


def pd_concat(frames):
    import pandas as pd

    return pd.concat(list(frames))


def run_child(code: str, *args) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall"] = wall
    return out


def fmt_times(times: dict) -> str:
    return ", ".join(f"{k} {v:,.1f} s" for k, v in times.items())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 customers")
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--kind", default="predictive", choices=["predictive", "expected", "point"])
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument(
        "--score-limit",
        type=int,
        default=None,
        help="local run: summarise and fit all customers but score only the first N (a memory "
        "probe when the full valuation does not fit the time available)",
    )
    parser.add_argument(
        "--cluster-customers",
        type=int,
        default=None,
        help="customers for the LocalCluster run (default: the same as the local run)",
    )
    parser.add_argument("--workdir", default=None, help="where the data goes (default: a temp dir)")
    parser.add_argument(
        "--results",
        default="scoring",
        help="name of the results file: benchmarks/results/NAME.md (default: scoring)",
    )
    parser.add_argument(
        "--compare-only",
        action="store_true",
        help="only the side-by-side comparison with lifetimes; writes "
        "results/scoring_vs_lifetimes.md",
    )
    parser.add_argument(
        "--compare-customers",
        type=int,
        default=None,
        help="customers for the side-by-side point-CLV comparison with lifetimes "
        "(default 1,000,000; 50,000 with --quick; 0 skips it)",
    )
    args = parser.parse_args(argv)
    n = args.customers or (200_000 if args.quick else 10_000_000)
    n_compare = args.compare_customers
    if n_compare is None:
        n_compare = 50_000 if args.quick else 1_000_000
    comparison = None
    if n_compare:
        print(f"point CLV of {n_compare:,} customers: clvmodels vs lifetimes ...", flush=True)
        comparison = compare_with_lifetimes(n_compare)
        print("  " + comparison, flush=True)
    if args.compare_only:
        if not comparison:
            raise SystemExit("--compare-only needs --compare-customers > 0")
        text = "\n".join(
            [
                "# Point CLV: clvmodels vs lifetimes (`benchmarks/bench_scoring.py "
                "--compare-only`)",
                "",
                "Same simulated customers and parameters, one process; lifetimes' convention "
                "(12 steps of 4.345 weeks, 1% discount per step).",
                "",
                "| customers | clvmodels (s) | lifetimes (s) | speed-up | max abs difference |",
                "|---:|---:|---:|---:|---|",
                comparison,
                "",
                f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, shared with other jobs.",
                "",
            ]
        )
        target = RESULTS.with_name("scoring_vs_lifetimes.md")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_file = target.with_suffix(".md.tmp")
        tmp_file.write_text(text)
        os.replace(tmp_file, target)
        print(text)
        return

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        tx = tmp / "transactions.parquet"
        print(f"generating transactions of {n:,} customers ...", flush=True)
        gen = run_child(GENERATE, n, tx, 1_000_000)
        size_mb = tx.stat().st_size / 2**20
        print(f"  {gen['rows']:,} rows, {size_mb:,.0f} MB Parquet, {gen['seconds']:.0f} s")
        print("local pipeline ...", flush=True)
        local = run_child(
            LOCAL, tx, tmp / "clv.parquet", args.draws, args.kind, args.chunk_size,
            args.score_limit or 0,
        )  # fmt: skip
        print(f"  {fmt_times(local['times'])}; peak RSS {local['peak_rss_mb']:,.0f} MB", flush=True)
        cluster = None
        n_cluster = args.cluster_customers or n
        if not args.skip_cluster:
            tx_cluster = tx
            if n_cluster != n:
                tx_cluster = tmp / "transactions_cluster.parquet"
                print(f"generating transactions of {n_cluster:,} customers ...", flush=True)
                run_child(GENERATE, n_cluster, tx_cluster, 1_000_000)
            print("LocalCluster pipeline ...", flush=True)
            cluster = run_child(
                CLUSTER,
                tx_cluster,
                tmp / "clv_dask",
                args.draws,
                args.kind,
                args.chunk_size,
                args.workers,
            )
            print(
                f"  {fmt_times(cluster['times'])}; client {cluster['peak_rss_mb']:,.0f} MB, "
                f"workers {cluster['worker_peak_rss_mb']}",
                flush=True,
            )

    def total(times, skip=("cluster_start",)):
        return sum(v for k, v in times.items() if k not in skip)

    rows = [
        "| run | customers | summary (s) | fit (s) | score (s) | end to end (s) | customers/s "
        "(score) | peak memory |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    t = local["times"]
    scored = local.get("n_scored", local["n_customers"])
    label = (
        "local, 1 process"
        if scored == local["n_customers"]
        else f"local, 1 process (scoring only the first {scored:,})"
    )
    rows.append(
        f"| {label} | {local['n_customers']:,} | {t['summary']:,.1f} | {t['fit']:,.1f} | "
        f"{t['score']:,.1f} | {total(t):,.1f} | {scored / t['score']:,.0f} | "
        f"{local['peak_rss_mb']:,.0f} MB |"
    )
    if cluster is not None:
        t = cluster["times"]
        mem = (
            f"client {cluster['peak_rss_mb']:,.0f} MB, workers "
            + ", ".join(f"{m:,.0f}" for m in cluster["worker_peak_rss_mb"])
            + " MB"
        )
        rows.append(
            f"| LocalCluster, {args.workers} workers x 1 thread | {cluster['n_customers']:,} | "
            f"{t['summary']:,.1f} | {t['fit']:,.1f} | {t['score']:,.1f} | {total(t):,.1f} | "
            f"{cluster['n_customers'] / t['score']:,.0f} | {mem} |"
        )
    if cluster is not None and cluster.get("worker_stage_peak_mb"):
        stages = "; ".join(
            f"{name}: " + ", ".join(f"{m:,.0f}" for m in peaks) + " MB"
            for name, peaks in cluster["worker_stage_peak_mb"].items()
        )
        rows += [
            "",
            "Worker peak resident set size by stage of the LocalCluster run (the peak is reset "
            f"after each stage; the persisted summary stays in the workers): {stages}.",
        ]
    params = ", ".join(f"{k}={v:.4g}" for k, v in local["params"].items())
    eq = local["equity"]
    ratio = ""
    if cluster is not None and n_cluster != n:
        ratio = (
            f"\nThe LocalCluster run used {n_cluster:,} customers (fewer than the local run's "
            f"{n:,}, to fit the time available on the shared machine); compare customers/s. "
            "Fitted parameters: "
            + ", ".join(f"{k} {v:.4g}" for k, v in cluster["params"].items())
            + "."
        )
    elif cluster is not None:
        ratio = (
            f"\nCluster / local end-to-end wall-time ratio: "
            f"{total(cluster['times']) / total(local['times']):.2f} (cluster start "
            f"{cluster['times']['cluster_start']:.1f} s not included). Fitted parameters agree: "
            + ", ".join(
                f"{k} {local['params'][k]:.4g} vs {cluster['params'][k]:.4g}"
                for k in local["params"]
            )
            + "."
        )
    command = " ".join(
        ["benchmarks/bench_scoring.py", *(argv if argv is not None else sys.argv[1:])]
    )
    lines = [
        f"# Batch scoring benchmark (`{command}`)",
        "",
        f"{n:,} simulated customers (BG/NBD r=0.243, alpha=4.414, a=0.793, b=2.426 per week; "
        "Gamma-Gamma p=6.25, q=3.74, v=15.44; first purchases over 2020, observed to "
        f"2021-12-31): {gen['rows']:,} transactions, {size_mb:,.0f} MB of Parquet. Valuation: "
        "12 months, monthly cash flows, 10% annual discount, margin 0.3, 90% "
        f"`{args.kind}` intervals from {args.draws} parameter draws, chunks of "
        f"{args.chunk_size:,} customers.",
        "",
        *rows,
        "",
        ratio.strip(),
        "",
        *(
            [
                "Point CLV (no intervals) of the same simulated customers, side by side in one "
                "process: clvmodels' chunked scorer (`score_frame`, blocks of 20,000) vs "
                "lifetimes' `GammaGammaFitter.customer_lifetime_value` with the same "
                "parameters and lifetimes' convention (12 steps of 4.345 weeks, 1% discount "
                "per step):",
                "",
                "| customers | clvmodels (s) | lifetimes (s) | speed-up | max abs difference |",
                "|---:|---:|---:|---:|---|",
                comparison,
                "",
            ]
            if comparison
            else []
        ),
        f"Fitted on the simulated data (local): {params}. Customer equity "
        f"{eq['equity_mean']:,.0f} (90% interval {eq['equity_lower']:,.0f} to "
        f"{eq['equity_upper']:,.0f}).",
        "",
        "Peak memory is the maximum resident set size of each process (`getrusage`); the local "
        "run includes DuckDB's buffers (the scorer's connection is limited to 1 GB). Machine: "
        f"{platform.machine()}, {os.cpu_count()} CPUs visible, shared with other jobs while this "
        "ran (timings are noisy; the memory figures much less so). Python "
        f"{platform.python_version()}.",
        "",
    ]
    text = "\n".join(lines)
    target = RESULTS.with_name(f"{args.results}.md")
    target.parent.mkdir(parents=True, exist_ok=True)
    from clvmodels.io import atomic_write_text

    atomic_write_text(target, text)
    print(text)


if __name__ == "__main__":
    main()
