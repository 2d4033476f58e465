"""BG/BB: clvmodels' native engine against lifetimes' ``BetaGeoBetaBinomFitter``.

Usage::

    python benchmarks/bench_bg_bb.py            # donations + 1,000,000 simulated customers
    python benchmarks/bench_bg_bb.py --quick    # donations + 20,000 simulated customers

Writes ``benchmarks/results/bg_bb.md``.

What is measured (one process, the same data for both libraries)
----------------------------------------------------------------
* **Donations** (Fader, Hardie & Shang 2010; lifetimes' ``donations.csv``: 11,104 donors of the
  1995 cohort, 6 yearly opportunities, 22 distinct (x, t_x, n) rows with their counts): the fit
  (``clv.BetaGeoBetaBinom().fit(table, weights=counts)`` against
  ``BetaGeoBetaBinomFitter().fit(x, t_x, n, weights=counts)``, lifetimes' defaults), the
  estimates and log-likelihoods against the published ones, and the largest relative
  difference of the predictions (P(alive), E[X(n, n+5)]) at the same parameters.
* **Simulated**: BG/BB customers with the donations estimates, in cohorts observed for 1 to 10
  yearly opportunities (uniform), one row per customer. clvmodels' fit is end to end on the
  per-customer summary (validation, compression to distinct rows, L-BFGS-B with the analytic
  gradient, observed-information standard errors). lifetimes is fitted on the compressed table
  with counts (its documented use for BG/BB) and, to show what one row per customer costs it,
  on the first ``--lifetimes-rows`` customers one row each (clvmodels fitted on the same rows).
  Predictions: P(alive) and E[X(n, n+5)] for every customer at the same parameters,
  ``model.predict(summary, 5)`` against lifetimes' ``conditional_probability_alive`` +
  ``conditional_expected_number_of_purchases_up_to_time``.
* clvmodels' timings and lifetimes' fit on the distinct rows are the best of 3 runs, lifetimes'
  per-customer fit and predictions one run. The machine's load average is recorded with the
  timings (a shared machine: ratios measured in one process are what count).
"""

from __future__ import annotations

import argparse
import os
import resource
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
from clvmodels.families.bg_bb import BetaGeoBetaBinomFamily  # noqa: E402
from clvmodels.io import atomic_write_text  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = ["alpha", "beta", "gamma", "delta"]
PUBLISHED = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}
COLUMNS = ["frequency", "recency", "n_periods"]


def timed(fn, repeat: int = 1):
    """(result, best seconds of ``repeat`` runs)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def lifetimes_fitter():
    from lifetimes import BetaGeoBetaBinomFitter

    return BetaGeoBetaBinomFitter()


def lifetimes_predictions(fitter, x, t_x, n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alive = fitter.conditional_probability_alive(0, x, t_x, n)
        expected = fitter.conditional_expected_number_of_purchases_up_to_time(5, x, t_x, n)
    return np.asarray(alive), np.asarray(expected)


def max_relative(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def fit_lifetimes(x, t_x, n, weights):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lifetimes_fitter().fit(x, t_x, n, weights=weights)


def donations_section() -> list[str]:
    from lifetimes.datasets import load_donations

    table = load_donations().rename(columns={"periods": "n_periods"})
    table.attrs["time_unit"] = "Y"
    counts = table["weights"].to_numpy()
    x, t_x, n = (table[c].to_numpy(dtype=float) for c in COLUMNS)
    ours, ours_s = timed(lambda: clv.BetaGeoBetaBinom().fit(table, weights=counts), repeat=3)
    theirs, theirs_s = timed(lambda: fit_lifetimes(x, t_x, n, counts.astype(int)), repeat=3)
    theirs_ll = clv.BetaGeoBetaBinom.family_class().negative_log_likelihood(
        np.log(theirs.params_[NAMES].to_numpy()), ours.rows_
    )[0]
    peer = lifetimes_fitter()
    peer.params_ = ours.params_.copy()
    alive, expected = lifetimes_predictions(peer, x, t_x, n)
    predicted = ours.predict(table, 5)
    lines = [
        "## Donations (Fader, Hardie & Shang 2010)",
        "",
        "11,104 donors, 6 yearly opportunities, 22 distinct rows with counts.",
        "",
        "| | alpha | beta | gamma | delta | log-likelihood | fit (s) |",
        "|---|---|---|---|---|---|---|",
        "| published (FHS 2010) | 1.204 | 0.750 | 0.657 | 2.783 | -33,225.6 | |",
        "| clvmodels | "
        + " | ".join(f"{ours.params_[k]:.4f}" for k in NAMES)
        + f" | {ours.log_likelihood_:,.3f} | {ours_s:.3f} |",
        "| lifetimes | "
        + " | ".join(f"{theirs.params_[k]:.4f}" for k in NAMES)
        + f" | {-theirs_ll:,.3f} | {theirs_s:.3f} |",
        "",
        f"Fit: clvmodels {theirs_s / ours_s:.1f}x faster than lifetimes (best of 3, including "
        "clvmodels' standard errors). Predictions at clvmodels' estimate, largest relative "
        f"difference from lifetimes: P(alive) {max_relative(predicted['probability_alive'], alive):.1e}, "
        f"E[X(n, n+5)] {max_relative(predicted['expected_purchases'], expected):.1e}.",
        "",
    ]
    return lines


def simulate(n_customers: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ages = rng.integers(1, 11, n_customers).astype(float)
    drawn = BetaGeoBetaBinomFamily().simulate(PUBLISHED, ages, None, rng)
    frame = pd.DataFrame({c: drawn[c] for c in COLUMNS})
    frame.index.name = "customer_id"
    frame.attrs["time_unit"] = "Y"
    return frame


def simulated_section(n_customers: int, lifetimes_rows: int) -> list[str]:
    summary = simulate(n_customers)
    x, t_x, n = (summary[c].to_numpy(dtype=float) for c in COLUMNS)
    ours, ours_s = timed(lambda: clv.BetaGeoBetaBinom().fit(summary), repeat=3)
    rows = ours.rows_
    compressed = [rows[c] for c in COLUMNS]
    theirs, theirs_s = timed(lambda: fit_lifetimes(*compressed, rows.counts.astype(int)), repeat=3)
    subset = summary.iloc[:lifetimes_rows]
    sub_arrays = [subset[c].to_numpy(dtype=float) for c in COLUMNS]
    _, ours_sub_s = timed(lambda: clv.BetaGeoBetaBinom().fit(subset), repeat=3)
    theirs_sub, theirs_sub_s = timed(lambda: fit_lifetimes(*sub_arrays, None))
    predicted, ours_pred_s = timed(lambda: ours.predict(summary, 5), repeat=3)
    peer = lifetimes_fitter()
    peer.params_ = ours.params_.copy()
    (alive, expected), theirs_pred_s = timed(lambda: lifetimes_predictions(peer, x, t_x, n))
    family = ours.family_
    ll_theirs = -family.negative_log_likelihood(np.log(theirs.params_[NAMES].to_numpy()), rows)[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        f"## {n_customers:,} simulated customers",
        "",
        f"Donations estimates, cohorts of 1 to 10 yearly opportunities; {rows.n_rows} distinct "
        "(x, t_x, n) rows.",
        "",
        "| step | clvmodels (s) | lifetimes (s) | ratio |",
        "|---|---|---|---|",
        f"| fit, {n_customers:,} rows (lifetimes on the {rows.n_rows} distinct rows with counts) "
        f"| {ours_s:.3f} | {theirs_s:.3f} | {theirs_s / ours_s:.1f}x |",
        f"| fit, {lifetimes_rows:,} rows one per customer (both) | {ours_sub_s:.3f} | "
        f"{theirs_sub_s:.3f} | {theirs_sub_s / ours_sub_s:.1f}x |",
        f"| P(alive) + E[X(n, n+5)] for {n_customers:,} customers | {ours_pred_s:.3f} | "
        f"{theirs_pred_s:.3f} | {theirs_pred_s / ours_pred_s:.1f}x |",
        "",
        "Estimates: clvmodels "
        + ", ".join(f"{k} = {ours.params_[k]:.4f}" for k in NAMES)
        + f" (log-likelihood {ours.log_likelihood_:,.2f}); lifetimes "
        + ", ".join(f"{k} = {theirs.params_[k]:.4f}" for k in NAMES)
        + f" (log-likelihood {ll_theirs:,.2f}); lifetimes on {lifetimes_rows:,} rows: "
        + ", ".join(f"{k} = {theirs_sub.params_[k]:.4f}" for k in NAMES)
        + ".",
        "",
        "Largest relative difference of the predictions from lifetimes at the same parameters: "
        f"P(alive) {max_relative(predicted['probability_alive'], alive):.1e}, "
        f"E[X(n, n+5)] {max_relative(predicted['expected_purchases'], expected):.1e}. "
        f"Peak memory of the process: {peak:,.0f} MiB.",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 simulated customers")
    parser.add_argument("--n", type=int, default=None, help="simulated customers")
    parser.add_argument(
        "--lifetimes-rows", type=int, default=None, help="rows for lifetimes' per-customer fit"
    )
    args = parser.parse_args()
    n_customers = args.n or (20_000 if args.quick else 1_000_000)
    lifetimes_rows = args.lifetimes_rows or min(n_customers, 10_000 if args.quick else 100_000)
    load_before = os.getloadavg()[0]
    lines = [
        "# BG/BB (discrete time): clvmodels vs lifetimes' BetaGeoBetaBinomFitter",
        "",
        "Written by `benchmarks/bench_bg_bb.py`"
        + (" --quick" if args.quick else "")
        + "; see its docstring for what is timed.",
        "",
    ]
    lines += donations_section()
    lines += simulated_section(n_customers, lifetimes_rows)
    load_after = os.getloadavg()[0]
    lines += [
        f"Load average (1 min) at the start {load_before:.2f}, at the end {load_after:.2f} "
        f"({os.cpu_count()} CPUs).",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "bg_bb.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
