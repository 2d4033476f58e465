"""Expected CLV over parameter draws against pymc-marketing (issue #17, row 2).

Usage::

    python benchmarks/bench_expected_clv.py                  # 100k customers x 1,000 draws
    python benchmarks/bench_expected_clv.py --quick          # 10k customers x 100 draws
    python benchmarks/bench_expected_clv.py --pymc-size 100000   # pymc-marketing at full size
                                                             # (needs ~8 GB of memory)

The case of pymc-marketing's issue #1077: ``expected_customer_lifetime_value`` over every
posterior draw, 12 monthly periods (4.345 weeks) at 1% a month. Customers: simulated BG/NBD +
Gamma-Gamma at day resolution (ages of 1-364 days, CDNOW parameters, as in
``bench_valuation.py``). Draws: 1,000 draws of our BG/NBD fit on the CDNOW sample (its
asymptotic normal); the Gamma-Gamma at its point estimate in both libraries (pymc-marketing
averages the expected spend over its draws anyway). Both return every draw x customer value.

Each measurement is a fresh subprocess (peak resident set size reset just before the call):

* ``clvmodels``: ``clv.lifetime_value(kind="expected", draws=(draws, point))`` at the full size
  with ``n_jobs`` 1 and 2, and at the size pymc-marketing runs at (ratio at equal size);
* ``pymc-marketing``: ``GammaGammaModel.expected_customer_lifetime_value`` with an
  ``InferenceData`` holding exactly the same draws, at ``--pymc-size`` customers (default
  10,000: at 100,000 it needs ~8 GB) -- both scale linearly in customers x draws;
* exactness: every value of ours against pymc-marketing's, and against the straightforward
  evaluation (``scipy.special.hyp2f1`` once per draw x customer x period end, the code before
  this issue), on ``--check-size`` customers.

The load average (``/proc/loadavg``) is recorded before and after each measurement. Writes
``benchmarks/results/expected_clv.md``.
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
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_valuation import (  # noqa: E402
    _cdnow_models,
    _cpu_seconds,
    _reset_peak,
    _simulated_summary,
    _vm_hwm_mb,
    _vm_rss_mb,
)

import clvmodels as clv  # noqa: E402
from clvmodels.io import atomic_write_text  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MONTHS = 12
MONTH_WEEKS = 4.345
RATE = 0.01


def load_average() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def setup(n: int, n_draws: int):
    warnings.simplefilter("ignore")
    _, bg, gg = _cdnow_models()
    summary = _simulated_summary(n, bg, gg)
    return summary, bg, gg, bg.param_draws(n_draws, seed=1), gg.point_draws()


def ours(summary, bg, gg, draws, spend, n_jobs: int, return_draws: bool = False):
    return clv.lifetime_value(
        bg, gg, summary, horizon=f"{MONTHS * MONTH_WEEKS}W", period=f"{MONTH_WEEKS}W",
        period_discount_rate=RATE, kind="expected", draws=(draws, spend), n_jobs=n_jobs,
        return_draws=return_draws,
    )  # fmt: skip


def pymc_marketing(summary, draws, spend):
    """pymc-marketing's values, shape (draws, customers)."""
    import arviz as az
    import xarray as xr
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    frame = summary.reset_index(drop=True)
    frame.insert(0, "customer_id", np.arange(len(frame)))

    def posterior(table, names):
        return az.InferenceData(
            posterior=xr.Dataset(
                {k: (("chain", "draw"), table[k].to_numpy()[None, :]) for k in names},
                coords={"chain": [0], "draw": np.arange(len(table))},
            )
        )

    bgm = BetaGeoModel(data=frame[["customer_id", "frequency", "recency", "T"]])
    bgm.build_model()
    bgm.idata = posterior(draws, ["r", "alpha", "a", "b"])
    ggm = GammaGammaModel(data=frame[frame["frequency"] > 0])
    ggm.build_model()
    ggm.idata = posterior(spend, ["p", "q", "v"])
    return ggm.expected_customer_lifetime_value(
        transaction_model=bgm, data=frame.copy(), future_t=MONTHS, discount_rate=RATE,
        time_unit="W",
    )  # fmt: skip


def straightforward(summary, bg, gg, draws, spend) -> np.ndarray:
    """The expected values by the closed form with ``scipy.special.hyp2f1`` once per draw x
    customer x period end (no distinct rows, no walk): the reference for exactness."""
    from clvmodels.families import bg_nbd

    r, alpha, a, b = (draws[k].to_numpy()[:, None] for k in ("r", "alpha", "a", "b"))
    x, t_x, T = (summary[k].to_numpy(dtype=float) for k in ("frequency", "recency", "T"))
    p_alive = bg_nbd.probability_alive(r, alpha, a, b, x, t_x, T)
    mean_spend = gg.expected_spend(summary).to_numpy()
    total = np.zeros((len(draws), len(summary)))
    previous = 0.0
    for k in range(1, MONTHS + 1):
        t = k * MONTH_WEEKS
        cumulative = p_alive * bg_nbd.active_expected_purchases(r + x, alpha + T, a, b + x, t)
        total += (cumulative - previous) / (1.0 + RATE) ** k
        previous = cumulative
    return mean_spend * total


def child(what: str, n: int, n_draws: int, n_jobs: int) -> dict:
    summary, bg, gg, draws, spend = setup(n, n_draws)
    out = {"what": what, "n": n, "draws": n_draws, "n_jobs": n_jobs, "load_before": load_average()}
    if what == "check":
        _, mine = ours(summary, bg, gg, draws, spend, 1, return_draws=True)
        mine = mine.values
        reference = straightforward(summary, bg, gg, draws, spend)
        theirs = np.asarray(pymc_marketing(summary, draws, spend).values[0])
        scale = np.maximum(np.abs(reference), 1e-12)
        out["vs_reference"] = float(np.max(np.abs(mine - reference) / scale))
        out["vs_pymc"] = float(np.max(np.abs(mine - theirs) / np.maximum(np.abs(theirs), 1e-12)))
        out["values"] = int(mine.size)
        out["load_after"] = load_average()
        return out
    before = _vm_rss_mb()
    cpu = _cpu_seconds()
    _reset_peak()
    start = time.perf_counter()
    if what == "clvmodels":
        ours(summary, bg, gg, draws, spend, n_jobs)
    else:
        pymc_marketing(summary, draws, spend)
    out["seconds"] = time.perf_counter() - start
    out["cpu_seconds"] = _cpu_seconds() - cpu
    out["peak_mb"] = _vm_hwm_mb()
    out["rss_before_mb"] = before
    out["load_after"] = load_average()
    return out


def run_child(what: str, n: int, n_draws: int, n_jobs: int = 1, timeout: float = 3600) -> dict:
    cmd = [sys.executable, __file__, "--child", what, str(n), str(n_draws), str(n_jobs)]
    print(f"  {what} n={n:,} draws={n_draws:,} n_jobs={n_jobs}", flush=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"what": what, "n": n, "error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"what": what, "n": n, "error": proc.stderr.strip().splitlines()[-1][:300]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"    {result}", flush=True)
    return result


def row(r: dict) -> str:
    if "error" in r:
        return f"| {r['what']} | {r['n']:,} | | | failed: {r['error']} | | | |"
    return (
        f"| {r['what']} | {r['n']:,} | {r['draws']:,} | {r['n_jobs']} | {r['seconds']:.2f} | "
        f"{r['cpu_seconds']:.2f} | {r['peak_mb'] - r['rss_before_mb']:,.0f} "
        f"({r['peak_mb']:,.0f}) | {r['load_before']} / {r['load_after']} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k customers x 100 draws")
    parser.add_argument("--pymc-size", type=int, default=None, help="customers for pymc-marketing")
    parser.add_argument("--check-size", type=int, default=None, help="customers for exactness")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, n, n_draws, n_jobs = args.child
        print(json.dumps(child(what, int(n), int(n_draws), int(n_jobs))))
        return
    n, n_draws = (10_000, 100) if args.quick else (100_000, 1_000)
    pymc_size = args.pymc_size or (2_000 if args.quick else 10_000)
    check_size = args.check_size or (1_000 if args.quick else 5_000)
    started = time.perf_counter()
    runs = [
        run_child("clvmodels", n, n_draws, 1),
        run_child("clvmodels", n, n_draws, 2),
        run_child("clvmodels", pymc_size, n_draws, 1),
        run_child("pymc-marketing", pymc_size, n_draws, 1),
    ]
    check = run_child("check", check_size, n_draws, 1)
    command = f"python benchmarks/bench_expected_clv.py{' --quick' if args.quick else ''}"
    write_results(runs, check, command, time.perf_counter() - started)


def write_results(runs: list[dict], check: dict, command: str, seconds: float) -> None:
    """``benchmarks/results/expected_clv.md`` from the measurements of :func:`main`."""
    n, n_draws = runs[0]["n"], runs[0]["draws"]
    pymc_size, check_size = runs[3]["n"], check["n"]
    ours_equal, theirs = runs[2], runs[3]
    lines = [
        "# Expected CLV over parameter draws: clvmodels vs pymc-marketing",
        "",
        f"`{command}` on "
        f"{platform.node()} ({os.cpu_count()} CPUs); Python {platform.python_version()}, "
        f"numpy {np.__version__}, pandas {pd.__version__}. Load average (1, 5, 15 min) before / "
        "after each run is shown: on a shared machine the wall time exceeds the CPU time, and "
        "the ratios of runs under similar load are what count.",
        "",
        f"{MONTHS} monthly periods of {MONTH_WEEKS} weeks at {RATE:.0%} a month, every draw x "
        "customer value computed (pymc-marketing's issue #1077 case); simulated customers at "
        "day resolution with CDNOW parameters; BG/NBD draws from our CDNOW fit, Gamma-Gamma at "
        "its point estimate in both. Each row is a fresh process; memory is the peak resident "
        "set size during the call minus the size before it (the peak itself in brackets).",
        "",
        "| library | customers | draws | n_jobs | wall s | CPU s | peak increase MB (peak) | "
        "load before / after |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        *(row(r) for r in runs),
        "",
    ]
    if "error" not in ours_equal and "error" not in theirs:
        lines += [
            f"At equal size ({pymc_size:,} customers x {n_draws:,} draws): "
            f"**{theirs['seconds'] / ours_equal['seconds']:.1f}x** less wall time, "
            f"{theirs['cpu_seconds'] / ours_equal['cpu_seconds']:.1f}x less CPU time, "
            f"{(theirs['peak_mb'] - theirs['rss_before_mb']) / max(ours_equal['peak_mb'] - ours_equal['rss_before_mb'], 1):.0f}x "  # noqa: E501
            "less memory than pymc-marketing.",
            "",
        ]
        if "error" not in runs[0] and "error" not in runs[1] and pymc_size != n:
            scale = n / pymc_size
            wall, cpu = theirs["seconds"] * scale, theirs["cpu_seconds"] * scale
            lines += [
                f"pymc-marketing's work scales linearly in customers x draws (one closed form "
                f"per draw x customer x period end), so at {n:,} customers it would take about "
                f"{wall:,.0f} s wall / {cpu:,.0f} s CPU under the same load: "
                f"**{wall / runs[0]['seconds']:.0f}x** our wall time at n_jobs=1 "
                f"({wall / runs[1]['seconds']:.0f}x at n_jobs=2), "
                f"**{cpu / runs[0]['cpu_seconds']:.0f}x** our CPU time (estimate; "
                "`--pymc-size` measures it).",
                "",
            ]
    if "error" in check:
        lines += [f"Exactness check failed: {check['error']}", ""]
    else:
        lines += [
            f"Exactness ({check['values']:,} values, {check_size:,} customers x {n_draws:,} "
            "draws): largest relative difference "
            f"{check['vs_reference']:.1e} from the straightforward evaluation (scipy's hyp2f1 "
            f"per draw x customer x period end) and {check['vs_pymc']:.1e} from pymc-marketing.",
            "",
        ]
    lines += [
        "How: the BG/NBD expectation's hypergeometric term depends on (draw, frequency, T, "
        "period end) only; the engine values each distinct customer row once, sorted by "
        "frequency, and for each draw, frequency and period end the family carries that one "
        "function from customer to customer (in order of T) by Taylor steps of its "
        "differential equation (`clvmodels.families.hypergeometric_walk`, numba) instead of "
        "calling `scipy.special.hyp2f1` for each; the discounted sum over the period ends is "
        "formed per distinct (frequency, T) in one family call "
        "(`discounted_expected_purchases`), then multiplied by P(alive) and gathered to the "
        "customers once (no draws x customers x periods array).",
        "",
        f"Total benchmark time: {seconds:.0f} s.",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw = json.dumps({"runs": runs, "check": check}, indent=1)
    lines += ["", "Raw measurements:", "", "```json", raw, "```"]
    atomic_write_text(RESULTS / "expected_clv.md", "\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'expected_clv.md'}")


if __name__ == "__main__":
    main()
