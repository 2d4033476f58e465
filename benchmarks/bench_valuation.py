"""Valuation: accuracy against lifetimes and pymc-marketing, speed and memory at scale, and the
calibration of predictive intervals on real holdout data.

Usage::

    python benchmarks/bench_valuation.py            # the sizes the issue asks for (long)
    python benchmarks/bench_valuation.py --quick    # smoke run with small sizes

Sections of ``benchmarks/results/valuation.md``:

1. **lifetimes** (CDNOW sample, published weekly summary): ``lifetime_value(kind="point",
   period="4.345W", period_discount_rate=0.01)`` against ``GammaGammaFitter.
   customer_lifetime_value(BetaGeoFitter, ..., time=12, discount_rate=0.01, freq="W")`` at
   identical parameters: largest relative difference and the time ratio.
2. **pymc-marketing** (CDNOW sample, 2,000 parameter draws of our BG/NBD, the Gamma-Gamma at
   its point estimate -- pymc-marketing averages the expected spend over draws anyway): a
   ``BetaGeoModel``/``GammaGammaModel`` whose ``idata`` holds exactly these draws,
   ``expected_customer_lifetime_value`` against ``lifetime_value(kind="expected",
   draws=(draws, point))``, both returning every draw x customer value; time ratio and the
   largest relative difference.
3. **Calibration**: CDNOW master (23,570 customers, weeks 1-39 / 40-78) and apparel (600
   customers, 104 / 104 weeks): coverage of the 50/80/90% predictive intervals of holdout
   purchases and spend -- randomised PIT averaged exactly over the randomisation (the number
   the tests assert), one randomised PIT draw, mid-p, and the naive "inside the interval"
   share -- and the customer-equity interval against the actual holdout totals; Pareto/NBD
   beside BG/NBD on CDNOW master.
4. **Heuristic baseline** (``HeuristicCLV``) against BG/NBD + Gamma-Gamma on the CDNOW master
   holdout.
5. **Scale**: simulated BG/NBD + Gamma-Gamma customers (CDNOW parameters, ages of 1-364 days,
   recency and T at day resolution as ``rfm_summary`` produces them), 200 draws, 12 monthly
   periods, 90% intervals. Each size runs in a fresh subprocess; peak memory is the peak
   resident set size (VmHWM, reset with ``/proc/self/clear_refs`` just before the call).
   lifetimes' point CLV on the same customers is timed side by side (ratio to our point kind).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import clvmodels as clv  # noqa: E402
from clvmodels import valuation as V  # noqa: E402
from clvmodels.io import atomic_write_text  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
APPAREL = ROOT / "tests" / "data" / "apparel_transactions.csv"
LEVELS = (0.5, 0.8, 0.9)


def _timed(fn, repeats: int = 1):
    best, out = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def _cdnow_models():
    s = clv.datasets.load_cdnow_summary()
    bg = clv.BetaGeo().fit(s)
    gg = clv.GammaGamma().fit(s[s["frequency"] > 0])
    return s, bg, gg


# --------------------------------------------------------------------------------------------
# 1. lifetimes
# --------------------------------------------------------------------------------------------
def bench_lifetimes() -> list[str]:
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    s, bg, gg = _cdnow_models()
    bgf, ggf = BetaGeoFitter(), GammaGammaFitter()
    bgf.params_, ggf.params_ = bg.params_.copy(), gg.params_.copy()
    bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time
    rows = []
    for months, rate in ((12, 0.01), (6, 0.03), (24, 0.0)):
        t_lt, theirs = _timed(
            lambda m=months, r=rate: ggf.customer_lifetime_value(
                bgf, s["frequency"], s["recency"], s["T"], s["monetary_value"],
                time=m, discount_rate=r, freq="W",
            ),
            repeats=3,
        )  # fmt: skip
        t_ours, ours = _timed(
            lambda m=months, r=rate: clv.lifetime_value(
                bg, gg, s, horizon=f"{m * 4.345}W", period="4.345W", period_discount_rate=r,
                kind="point",
            ),
            repeats=3,
        )  # fmt: skip
        rel = np.max(
            np.abs(ours["clv_mean"].to_numpy() - theirs.to_numpy())
            / np.maximum(np.abs(theirs.to_numpy()), 1e-12)
        )
        rows.append(
            f"| {months} | {rate} | {rel:.1e} | {t_lt:.3f} | {t_ours:.3f} | {t_lt / t_ours:.1f}x |"
        )
    return [
        "## 1. Point CLV against lifetimes (CDNOW sample, 2,357 customers)",
        "",
        "`GammaGammaFitter.customer_lifetime_value(BetaGeoFitter, ..., freq='W')` at our fitted "
        "parameters vs `clv.lifetime_value(kind='point', period='4.345W', "
        "horizon=months*4.345 weeks, period_discount_rate=rate)`.",
        "",
        "| months | monthly rate | max relative difference | lifetimes s | ours s | speed-up |",
        "|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]


# --------------------------------------------------------------------------------------------
# 2. pymc-marketing
# --------------------------------------------------------------------------------------------
def bench_pymc_marketing(n_draws: int) -> list[str]:
    import arviz as az
    import xarray as xr
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    s, bg, gg = _cdnow_models()
    draws = bg.param_draws(n_draws, seed=1)
    spend_point = gg.point_draws()
    df = s.reset_index()[["customer_id", "frequency", "recency", "T", "monetary_value"]]

    def posterior(table, names):
        return az.InferenceData(
            posterior=xr.Dataset(
                {k: (("chain", "draw"), table[k].to_numpy()[None, :]) for k in names},
                coords={"chain": [0], "draw": np.arange(len(table))},
            )
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgm = BetaGeoModel(data=df[["customer_id", "frequency", "recency", "T"]])
        bgm.build_model()
        bgm.idata = posterior(draws, ["r", "alpha", "a", "b"])
        ggm = GammaGammaModel(data=df[df["frequency"] > 0])
        ggm.build_model()
        ggm.idata = posterior(spend_point, ["p", "q", "v"])
        t_pm, theirs = _timed(
            lambda: ggm.expected_customer_lifetime_value(
                transaction_model=bgm, data=df.copy(), future_t=12, discount_rate=0.01,
                time_unit="W",
            )
        )  # fmt: skip
    t_ours, (frame, arr) = _timed(
        lambda: clv.lifetime_value(
            bg, gg, s, horizon=f"{12 * 4.345}W", period="4.345W", period_discount_rate=0.01,
            kind="expected", draws=(draws, spend_point), return_draws=True,
        )
    )  # fmt: skip
    theirs_values = theirs.values[0]
    rel = np.max(np.abs(arr.values - theirs_values) / np.maximum(np.abs(theirs_values), 1e-12))
    distinct = len(s[["frequency", "recency", "T", "monetary_value"]].drop_duplicates())
    return [
        f"## 2. Expected CLV over {n_draws:,} parameter draws against pymc-marketing "
        "(CDNOW sample)",
        "",
        "Same draws in both (an `InferenceData` built from our BG/NBD asymptotic draws; the "
        "Gamma-Gamma at its point), 12 monthly periods of 4.345 weeks at 1% a month; both "
        "return every draw x customer value.",
        "",
        "| | seconds |",
        "|---|---:|",
        f"| pymc-marketing `expected_customer_lifetime_value` | {t_pm:.2f} |",
        f"| clvmodels `lifetime_value(kind='expected')` | {t_ours:.2f} |",
        f"| **speed-up** | **{t_pm / t_ours:.1f}x** |",
        f"| largest relative difference of the {arr.size:,} values | {rel:.1e} |",
        "",
        f"pymc-marketing evaluates the BG/NBD conditional expectation for {n_draws:,} draws x "
        f"{len(s):,} customers x 12 period ends, one `scipy.special.hyp2f1` each. We value "
        f"each of the {distinct:,} distinct (frequency, recency, T, monetary value) rows once, "
        "form the discounted sum over period ends per distinct (frequency, T) and carry the "
        "hypergeometric function from customer to customer by Taylor steps of its "
        "differential equation (`clvmodels.families.hypergeometric_walk`); on a sample this "
        "small fixed costs (imports, numba's cached kernels) weigh; "
        "`benchmarks/bench_expected_clv.py` measures the 100,000 x 1,000 case.",
        "",
    ]


# --------------------------------------------------------------------------------------------
# 3. scale (one subprocess per size)
# --------------------------------------------------------------------------------------------
def _simulated_summary(n: int, bg, gg, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age_days = rng.integers(1, 365, n).astype(float)
    sim = clv.simulate.simulate_beta_geo(n, *bg.params_.to_numpy(), T=age_days / 7.0, seed=seed)
    sim = clv.simulate.simulate_gamma_gamma_spend(sim, *gg.params_.to_numpy(), seed=seed + 1)
    s = sim[["frequency", "recency", "T", "monetary_value"]].copy()
    # day resolution, as rfm_summary produces: recency in whole days, <= T
    s["recency"] = np.minimum(np.floor(s["recency"].to_numpy() * 7.0) / 7.0, s["T"].to_numpy())
    s.loc[s["frequency"] == 0, "recency"] = 0.0
    s.attrs["time_unit"] = "W"
    return s


def _vm_hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _vm_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:  # pragma: no cover - not Linux
        pass


def scale_child(n: int, what: str, draws: int, n_jobs: int) -> dict:
    """Run one measurement (in a fresh process) and return its numbers."""
    warnings.simplefilter("ignore")
    _, bg, gg = _cdnow_models()
    s = _simulated_summary(n, bg, gg)
    out = {"n": n, "what": what, "draws": draws, "n_jobs": n_jobs}
    out["distinct_rows"] = int(len(s.drop_duplicates()))
    out["load"] = f"{os.getloadavg()[0]:.1f}"
    cpu0 = _cpu_seconds()
    if what == "lifetimes":
        from lifetimes import BetaGeoFitter, GammaGammaFitter

        bgf, ggf = BetaGeoFitter(), GammaGammaFitter()
        bgf.params_, ggf.params_ = bg.params_.copy(), gg.params_.copy()
        bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time
        before = _vm_rss_mb()
        _reset_peak()
        seconds, _ = _timed(
            lambda: ggf.customer_lifetime_value(
                bgf, s["frequency"], s["recency"], s["T"], s["monetary_value"], time=12,
                discount_rate=0.01, freq="W",
            )
        )  # fmt: skip
    else:
        before = _vm_rss_mb()
        _reset_peak()
        seconds, v = _timed(
            lambda: clv.lifetime_value(
                bg, gg, s, horizon="12M", period="1M", interval=0.9, kind=what, draws=draws,
                random_seed=0, n_jobs=n_jobs,
            )
        )  # fmt: skip
        out["nan"] = bool(v.isna().any().any())
    out["seconds"] = seconds
    out["cpu_seconds"] = _cpu_seconds() - cpu0
    out["rss_before_mb"] = before
    out["peak_mb"] = _vm_hwm_mb()
    return out


def _run_child(n: int, what: str, draws: int, n_jobs: int, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n), what, str(draws), str(n_jobs)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {"n": n, "what": what, "error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"n": n, "what": what, "error": proc.stderr.strip().splitlines()[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_scale(sizes, draws: int, n_jobs: int, timeout: float) -> list[str]:
    rows = []
    for n in sizes:
        results = {}
        kinds = ["lifetimes", "point", "predictive"] + (["expected"] if n <= 100_000 else [])
        for what in kinds:
            print(f"   scale n={n:,} {what}", flush=True)
            results[what] = _run_child(n, what, draws, n_jobs, timeout)
        for what in kinds:
            r = results[what]
            if "error" in r:
                rows.append(f"| {n:,} | {what} | failed: {r['error']} | | | | | |")
                continue
            ratio = ""
            if what == "point" and "seconds" in results.get("lifetimes", {}):
                ratio = f"{results['lifetimes']['seconds'] / r['seconds']:.1f}x vs lifetimes"
            if what == "predictive" and "seconds" in results.get("lifetimes", {}):
                ratio = f"{r['seconds'] / results['lifetimes']['seconds']:.1f}x lifetimes' time"
            d = "1" if what in ("point", "lifetimes") else str(draws)
            rows.append(
                f"| {n:,} | {what} | {d} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | "
                f"{r['peak_mb']:,.0f} "
                f"(before: {r['rss_before_mb']:,.0f}) | {r['load']} | {ratio} |"
            )
    return [
        f"## 5. Scale: 12 monthly periods, {draws} draws, 90% intervals (n_jobs={n_jobs})",
        "",
        "Simulated BG/NBD + Gamma-Gamma customers at day resolution, valued with models fit on "
        "CDNOW. Each row is a fresh process; memory is the peak resident set size of the "
        "process during the call (with the summary and the imports, shown as 'before'). CPU s "
        "is the process's user + system time during the call: on a loaded shared machine the "
        "wall time exceeds it; on a dedicated machine wall ~ CPU / threads used.",
        "",
        "| customers | kind | draws | wall s | CPU s | peak RSS MB | load before | ratio |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        "Target of the issue: 1M customers, 200 draws, 12 monthly periods, predictive 90% "
        "intervals in under 30 s and 2 GB on a quiet 2-core machine. The samplers are compiled "
        "(numba), one pass per chunk each, drawing from the chunk's numpy Generator: "
        "`clvmodels.families.sampling.poisson_periods` (BG/NBD: alive ~ Bernoulli(P(alive)); "
        "for the alive one uniform decides whether the path buys, P(N = 0) of the negative "
        "binomial count; the count by inverting its CDF, or above 32 expected purchases from "
        "the Lomax first purchase time, a gamma rate and a Poisson count; uniform times placed "
        "in the periods; the dropout K ~ Geometric(p) with p ~ Beta integrated out) and "
        "`gamma_period_totals` (Gamma-Gamma: nu and period totals only for purchasing paths "
        "and periods); valuation consumes the sparse buying paths (the family's "
        "`sample_future_purchase_periods`).",
        "",
        "The lifetimes rows are the machine's yardstick. On the slower machine of the earlier "
        "sessions (lifetimes 15.0 s at 1M customers) 1M predictive took 361 s wall / 175 s "
        "CPU with dense samplers (12 Poisson draws per draw x customer x period), 39.2 s / "
        "76.6 s with the sparse numpy samplers and 34.5 s / 55.9 s with the compiled ones "
        "(n_jobs=2, load 0.1). On the machine of 2026-12-02 (lifetimes 9.2-9.7 s) the sparse "
        "numpy samplers (the code before commit 4de5023) took 25.8 s wall / 48.7 s CPU / 780 "
        "MB in the same child process, the compiled ones 19.9-20.5 s / 38.9-40.2 s / 670-690 "
        "MB while the per-path discounting (a paths x 12 by 12 product) still went through "
        "BLAS, whose threads spin-waited next to the valuation threads (~8 s of CPU); the rows "
        "above compute it with einsum's own loop.",
        "",
    ]


# --------------------------------------------------------------------------------------------
# 4. calibration
# --------------------------------------------------------------------------------------------
def _coverage_rows(name, draws, observed):
    rows = []
    for level in LEVELS:
        cells = [
            V.interval_coverage(draws, observed, level, "randomized"),
            V.interval_coverage(draws, observed, level, "randomized-draw", random_seed=7),
            V.interval_coverage(draws, observed, level, "mid-p"),
            V.interval_coverage(draws, observed, level, "naive"),
        ]
        rows.append(f"| {name} | {level:.0%} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return rows


def _calibrate(label, summary, purchase_model, spend_model, holdout, n_draws, seed):
    _, counts = clv.predict_purchases(
        purchase_model, summary, t=holdout, draws=n_draws, random_seed=seed, return_draws=True
    )
    _, spend = clv.lifetime_value(
        purchase_model, spend_model, summary, horizon=holdout, period=holdout,
        annual_discount_rate=0.0, draws=n_draws, random_seed=seed + 1, return_draws=True,
    )  # fmt: skip
    y = summary["frequency_holdout"].to_numpy(dtype=float)
    z = y * summary["monetary_value_holdout"].to_numpy(dtype=float)
    cov = _coverage_rows(f"{label} purchases", counts, y) + _coverage_rows(
        f"{label} spend", spend, z
    )
    eq = []
    for what, arr, actual in (("purchases", counts, y.sum()), ("spend", spend, z.sum())):
        totals = arr.sum("customer_id").values
        lo, med, hi = np.quantile(totals, [0.05, 0.5, 0.95])
        inside = "yes" if lo <= actual <= hi else "**no**"
        eq.append(
            f"| {label} | {what} | {actual:,.0f} | {med:,.0f} | [{lo:,.0f}, {hi:,.0f}] | {inside} |"
        )
    return cov, eq


def bench_calibration(n_draws: int, with_pareto: bool) -> list[str]:
    warnings.simplefilter("ignore")
    cov_rows, eq_rows, notes = [], [], []
    ch = clv.datasets.load_cdnow_calibration_holdout("master")
    repeat = ch[(ch["frequency"] > 0) & (ch["monetary_value"] > 0)]
    bg = clv.BetaGeo().fit(ch)
    gg = clv.GammaGamma().fit(repeat)
    c, e = _calibrate("CDNOW BG/NBD", ch, bg, gg, 39.0, n_draws, 2024)
    cov_rows += c
    eq_rows += e
    if with_pareto:
        start = time.perf_counter()
        pn = clv.ParetoNBD().fit(ch)
        notes.append(f"Pareto/NBD fit on CDNOW master: {time.perf_counter() - start:.1f} s.")
        c, e = _calibrate("CDNOW Pareto/NBD", ch, pn, gg, 39.0, n_draws, 2024)
        cov_rows += c
        eq_rows += e
    tx = pd.read_csv(APPAREL, parse_dates=["date"])
    start_date = tx["date"].min()
    ap = clv.calibration_holdout_summary(
        tx, customer_id="customer_id", datetime="date", monetary="amount",
        calibration_end=start_date + pd.Timedelta(weeks=104),
        observation_end=start_date + pd.Timedelta(weeks=208), time_unit="W",
        after_observation_end="exclude",
    )  # fmt: skip
    bga = clv.BetaGeo().fit(ap)
    gga = clv.GammaGamma().fit(ap[(ap["frequency"] > 0) & (ap["monetary_value"] > 0)])
    c, e = _calibrate("apparel BG/NBD", ap, bga, gga, 104.0, max(n_draws, 1000), 99)
    cov_rows += c
    eq_rows += e
    return [
        "## 3. Calibration of predictive intervals on holdout data",
        "",
        f"Fit on the calibration period, {n_draws} predictive draws per customer (apparel: "
        f"{max(n_draws, 1000)}), parameter uncertainty from the asymptotic normal included. "
        "CDNOW master: 23,570 customers, weeks 1-39 / 40-78. Apparel: 600 customers, weeks "
        "1-104 / 105-208 (with shorter calibrations BG/NBD's dropout parameters diverge).",
        "",
        "Coverage = share of customers whose holdout value lies in the central interval. "
        "`randomized` (asserted by the tests): randomised PIT u = (L + V(E+1))/(S+1) averaged "
        "exactly over V; `one draw`: a single randomised PIT per customer; `mid-p`: V = 1/2; "
        "`naive`: observed value inside the reported [q_lo, q_hi] (biased upwards for counts "
        "with a large atom at 0).",
        "",
        "| data / outcome | level | randomized | one draw | mid-p | naive |",
        "|---|---:|---:|---:|---:|---:|",
        *cov_rows,
        "",
        "Customer equity (sum over customers; 90% interval from the joint draws):",
        "",
        "| data | outcome | actual holdout total | predicted median | 90% interval | inside |",
        "|---|---|---:|---:|---:|---|",
        *eq_rows,
        "",
        "On CDNOW master both BG/NBD and Pareto/NBD predict about 14% fewer holdout purchases "
        "than happened (a known feature of this data set: the conditional expectations of the "
        "light buyers are too low), and with 23,570 customers the equity interval is only a "
        "few percent wide, so it misses the actual total although the per-customer intervals "
        "are calibrated. This is a model limitation, reported rather than tuned away "
        "(`tests/test_valuation_calibration.py` keeps it as a strict xfail).",
        *([""] + notes if notes else []),
        "",
    ]


# --------------------------------------------------------------------------------------------
# 5. heuristic baseline
# --------------------------------------------------------------------------------------------
def bench_heuristic() -> list[str]:
    warnings.simplefilter("ignore")
    ch = clv.datasets.load_cdnow_calibration_holdout("master")
    y = ch["frequency_holdout"].to_numpy(dtype=float)
    z = y * ch["monetary_value_holdout"].to_numpy(dtype=float)
    bg = clv.BetaGeo().fit(ch)
    gg = clv.GammaGamma().fit(ch[(ch["frequency"] > 0) & (ch["monetary_value"] > 0)])
    point = clv.lifetime_value(
        bg, gg, ch, horizon=39, period=39, annual_discount_rate=0.0, kind="point"
    )
    rows = []

    def corr(a, b):
        return f"{np.corrcoef(a, b)[0, 1]:.3f}" if np.std(a) > 0 else "- (constant)"

    def row(name, purchases, spend):
        rows.append(
            f"| {name} | {purchases.sum():,.0f} | {np.mean(np.abs(purchases - y)):.3f} | "
            f"{np.sqrt(np.mean((purchases - y) ** 2)):.3f} | {spend.sum():,.0f} | "
            f"{np.mean(np.abs(spend - z)):.2f} | {corr(spend, z)} |"
        )

    row(
        "BG/NBD + Gamma-Gamma",
        point["expected_purchases"].to_numpy(),
        point["clv_mean"].to_numpy(),
    )
    for level in ("population", "customer"):
        h = clv.HeuristicCLV(period="1W", inactive_after="13W", level=level).fit(ch)
        row(
            f"HeuristicCLV ({level})",
            h.expected_purchases(ch, 39).to_numpy(),
            h.predict(ch, horizon=39).to_numpy(),
        )
    return [
        "## 4. Heuristic baseline vs BG/NBD + Gamma-Gamma (CDNOW master holdout, weeks 40-78)",
        "",
        "`HeuristicCLV(period='1W', inactive_after='13W')`: average order value x purchase "
        "frequency x expected active weeks in the 39-week holdout (constant churn). Actual: "
        f"{y.sum():,.0f} purchases, ${z.sum():,.0f}.",
        "",
        "| method | total purchases | MAE purchases | RMSE purchases | total spend | MAE spend "
        "| corr(spend, actual) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]


# --------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--n-jobs", type=int, default=1, help="threads for the scale runs")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n, what, draws, n_jobs = args.child
        print(json.dumps(scale_child(int(n), what, int(draws), int(n_jobs))))
        return
    sizes = [10_000] if args.quick else [10_000, 100_000, 1_000_000]
    pm_draws = 200 if args.quick else 2000
    cal_draws = 200 if args.quick else 500
    started = time.perf_counter()
    lines = [
        "# Valuation benchmark",
        "",
        f"`python benchmarks/bench_valuation.py{' --quick' if args.quick else ''}` on "
        f"{platform.node()} ({os.cpu_count()} CPUs, shared with other jobs: absolute seconds "
        f"are noisy, ratios measured in one process are what count); Python "
        f"{platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}.",
        "",
    ]
    for title, fn in (
        ("lifetimes", bench_lifetimes),
        ("pymc-marketing", lambda: bench_pymc_marketing(pm_draws)),
        ("calibration", lambda: bench_calibration(cal_draws, with_pareto=not args.quick)),
        ("heuristic", bench_heuristic),
        ("scale", lambda: bench_scale(sizes, 200, args.n_jobs, timeout=1800)),
    ):
        print(f"== {title}", flush=True)
        try:
            lines += fn()
        except Exception as exc:  # report, do not hide: the section says it failed
            lines += [f"## {title}: FAILED", "", f"`{type(exc).__name__}: {exc}`", ""]
            print(f"{title} failed: {exc!r}", flush=True)
    lines.append(f"Total benchmark time: {time.perf_counter() - started:.0f} s.")
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / "valuation.md", "\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'valuation.md'}")


if __name__ == "__main__":
    main()
