"""BG/NBD, MBG/NBD and Gamma-Gamma: clvmodels' native engine against lifetimes, side by side.

Usage::

    python benchmarks/bench_models.py            # 1,000,000 customers
    python benchmarks/bench_models.py --quick    # smoke run: 50,000 customers
    python benchmarks/bench_models.py --n 200000

Writes ``benchmarks/results/models.md``.

What is measured (one process, the same simulated data for both libraries)
--------------------------------------------------------------------------
* Data: BG/NBD customers (r=0.25, alpha=28, a=0.8, b=2.4, in days) with T uniform on 1..730
  days and recency floored to whole days (daily resolution, as an RFM summary built from dates
  has); Gamma-Gamma spend (p=6, q=4, v=15) for the customers with repeat purchases.
* **Fit**: ``clv.BetaGeo().fit(summary)`` (resp. ``ModifiedBetaGeo``, ``GammaGamma``) end to
  end — validation, compression to distinct rows, two L-BFGS-B runs with analytic gradients,
  observed-information standard errors — against ``lifetimes.BetaGeoFitter().fit(frequency,
  recency, T)`` (resp. ``ModifiedBetaGeoFitter``, ``GammaGammaFitter``) with its defaults. Both
  optima are reported with their log-likelihoods, computed by clvmodels' math on the full data.
  When ``--lifetimes-n`` is smaller than the data, lifetimes is fitted on that many customers and
  its full-size time is extrapolated as (its likelihood evaluations on the subset) x (the measured
  time of one evaluation with gradient on the full data); the table says so.
* **Predictions**: E[purchases in the next 30 days] + P(alive) for every customer at the same
  parameters: clvmodels' ``expected_purchases`` + ``probability_alive`` (validation included)
  against lifetimes' ``conditional_expected_number_of_purchases_up_to_time`` +
  ``conditional_probability_alive`` (BG/NBD computes P(alive) in the first call and reuses it
  in the second; its memo is cleared before every timed repetition, so each repetition is a
  cold start); Gamma-Gamma ``expected_spend`` against
  ``conditional_expected_average_profit``. The largest relative difference is reported.
"""

from __future__ import annotations

import os
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
from benchmarks.support import (  # noqa: E402
    lifetimes_comparison_parser,
    peak_rss_mb,
    write_results,
)

RESULTS = Path(__file__).resolve().parent / "results"
TRUE_BG = {"r": 0.25, "alpha": 28.0, "a": 0.8, "b": 2.4}
TRUE_GG = {"p": 6.0, "q": 4.0, "v": 15.0}
REPEATS = 3  # clvmodels fits are timed REPEATS times (median); lifetimes fits once


def simulate(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    T = rng.integers(1, 731, n).astype(float)
    sim = clv.simulate.simulate_beta_geo(n, **TRUE_BG, T=T, seed=seed + 1, time_unit="D")
    summary = pd.DataFrame(
        {
            "frequency": sim["frequency"].to_numpy(dtype=float),
            "recency": np.floor(sim["recency"].to_numpy(dtype=float)),
            "T": T,
        },
        index=pd.RangeIndex(n, name="customer_id"),
    )
    spend = clv.simulate.simulate_gamma_gamma_spend(
        summary["frequency"].to_numpy(), **TRUE_GG, seed=seed + 2
    )
    summary["monetary_value"] = spend["monetary_value"].to_numpy(dtype=float)
    summary.attrs["time_unit"] = "D"
    return summary


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def median_timed(fn, repeats: int = 3):
    """(result, median seconds over ``repeats`` runs)."""
    runs = [timed(fn) for _ in range(repeats)]
    return runs[0][0], float(np.median([seconds for _, seconds in runs]))


def _counting(fitter_cls):
    """Patch ``fitter_cls._negative_log_likelihood`` to count calls; returns (counter, undo)."""
    calls = {"n": 0}
    original = fitter_cls.__dict__["_negative_log_likelihood"]
    function = original.__func__ if isinstance(original, staticmethod) else original

    def counting(*args, **kwargs):
        calls["n"] += 1
        return function(*args, **kwargs)

    fitter_cls._negative_log_likelihood = staticmethod(counting)

    def undo():
        fitter_cls._negative_log_likelihood = original

    return calls, undo


def fit_lifetimes_purchase(fitter_cls, summary):
    calls, undo = _counting(fitter_cls)
    try:
        fitter, seconds = timed(
            fitter_cls().fit, summary["frequency"], summary["recency"], summary["T"]
        )
    finally:
        undo()
    # autograd's value_and_grad calls the function once per evaluation; the final Hessian
    # traces it once more
    return fitter, seconds, calls["n"]


def lifetimes_eval_seconds(fitter_cls, summary, params, repeats: int = 2) -> float:
    """Seconds of one lifetimes likelihood + gradient evaluation on all of ``summary``."""
    from autograd import value_and_grad

    scale = 1.0 / summary["T"].max()
    args = (
        summary["frequency"].to_numpy().astype(int),
        summary["recency"].to_numpy() * scale,
        summary["T"].to_numpy() * scale,
        np.ones(len(summary), dtype=np.int64),
        0.0,
    )
    log_params = np.log([params[0], params[1] * scale, params[2], params[3]])
    fn = value_and_grad(fitter_cls._negative_log_likelihood)
    return min(timed(fn, log_params, *args)[1] for _ in range(repeats))


def fmt(values) -> str:
    return " | ".join(f"{v:.6g}" for v in values)


def bench_purchase(name, model_cls, fitter_cls, module, summary, lifetimes_n, lines, ratios):
    x, t_x, T = (summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    names = list(model_cls.family_class.param_names)

    def loglik(params) -> float:
        return float(module.log_likelihood(*np.asarray(params, float), x, t_x, T).sum())

    # warm-up of both libraries (imports, first-call costs) on a small slice, not timed
    model_cls().fit(summary.iloc[:20_000])
    fitter_cls().fit(*(summary[c].iloc[:20_000] for c in ("frequency", "recency", "T")))
    runs = [timed(model_cls().fit, summary) for _ in range(REPEATS)]
    model = runs[0][0]
    native_seconds = float(np.median([seconds for _, seconds in runs]))
    native = model.params_.to_numpy()
    n = len(summary)
    sub = summary if lifetimes_n >= n else summary.iloc[:lifetimes_n]
    fitter, lt_seconds, lt_evals = fit_lifetimes_purchase(fitter_cls, sub)
    lt_params = fitter.params_[names].to_numpy()
    extrapolated = lifetimes_n < n
    if extrapolated:
        per_eval = lifetimes_eval_seconds(fitter_cls, summary, native)
        lt_full_seconds = lt_evals * per_eval
        sub_model = model_cls().fit(sub)
    else:
        lt_full_seconds = lt_seconds
    lines += [
        f"## {name}: fit",
        "",
        f"| | customers | seconds | {' | '.join(names)} | log-likelihood (full data) |",
        "|---|---:|---:|" + "---:|" * len(names) + "---:|",
        f"| clvmodels native | {n:,} | {native_seconds:.2f} | {fmt(native)} | {model.log_likelihood_:.3f} |",
    ]
    if extrapolated:
        lines.append(
            f"| clvmodels native (subset) | {len(sub):,} | - | {fmt(sub_model.params_)} | "
            f"{loglik(sub_model.params_):.3f} |"
        )
        lines.append(
            f"| lifetimes (subset) | {len(sub):,} | {lt_seconds:.2f} | {fmt(lt_params)} | "
            f"{loglik(lt_params):.3f} |"
        )
        lines.append(
            f"| lifetimes, full size extrapolated | {n:,} | {lt_full_seconds:.1f} | "
            f"({lt_evals} evaluations x {per_eval:.2f} s) | | | | |"
        )
        compare = sub_model.params_.to_numpy()
    else:
        lines.append(
            f"| lifetimes | {n:,} | {lt_seconds:.2f} | {fmt(lt_params)} | {loglik(lt_params):.3f} |"
        )
        compare = native
    rel = np.max(np.abs(lt_params / compare - 1))
    ratio = lt_full_seconds / native_seconds
    ratios[f"{name} fit"] = ratio
    lines += [
        "",
        f"**Speed-up: {ratio:.1f}x** (lifetimes {lt_full_seconds:.1f} s / clvmodels "
        f"{native_seconds:.2f} s{', lifetimes extrapolated' if extrapolated else ''}). "
        f"Largest relative parameter difference: {rel:.1e}"
        f"{' (both fitted on the subset)' if extrapolated else ''}; "
        f"clvmodels: {model.optimizer_message_}; lifetimes made {lt_evals} likelihood calls.",
        "",
    ]

    # ---- predictions at the same parameters -------------------------------------------------
    fitter.params_ = pd.Series(native, index=names)

    def ours():
        # both answers in one call: P(alive) is computed once and passed on (no cache)
        out = model.predict(summary, 30.0)
        return out["expected_purchases"], out["probability_alive"]

    def theirs():
        return (
            fitter.conditional_expected_number_of_purchases_up_to_time(30.0, x, t_x, T),
            fitter.conditional_probability_alive(x, t_x, T),
        )

    ours()  # warm-up (imports, caches) for both
    theirs()
    (e_ours, a_ours), s_ours = median_timed(ours)
    (e_lt, a_lt), s_lt = median_timed(theirs)
    diff = max(
        np.max(np.abs(e_ours.to_numpy() / np.asarray(e_lt) - 1)),
        np.max(np.abs(a_ours.to_numpy() / np.asarray(a_lt) - 1)),
    )
    ratio = s_lt / s_ours
    ratios[f"{name} predictions"] = ratio
    lines += [
        f"## {name}: predictions (E[purchases in 30 days] + P(alive), {n:,} customers)",
        "",
        "| | seconds |",
        "|---|---:|",
        f"| clvmodels | {s_ours:.2f} |",
        f"| lifetimes | {s_lt:.2f} |",
        "",
        f"**Speed-up: {ratio:.1f}x**; largest relative difference between the two: {diff:.1e}. "
        "clvmodels answers both with `model.predict(summary, t)`, which computes P(alive) once "
        "and passes it to the expectation (nothing is cached between calls).",
        "",
    ]


def bench_gamma_gamma(summary, lines, ratios):
    from lifetimes import GammaGammaFitter

    rep = summary[summary["frequency"] > 0]
    clv.GammaGamma().fit(summary.iloc[:20_000])  # warm-up, not timed
    small = rep.iloc[:10_000]
    GammaGammaFitter().fit(small["frequency"], small["monetary_value"])
    model, native_seconds = median_timed(lambda: clv.GammaGamma().fit(summary))
    fitter, lt_seconds = timed(GammaGammaFitter().fit, rep["frequency"], rep["monetary_value"])
    names = ["p", "q", "v"]
    lt_params = fitter.params_[names].to_numpy()
    from clvmodels.families import gamma_gamma as ggm

    def loglik(params):
        return float(
            ggm.log_likelihood(
                *params, rep["frequency"].to_numpy(float), rep["monetary_value"].to_numpy(float)
            ).sum()
        )

    ratio = lt_seconds / native_seconds
    ratios["Gamma-Gamma fit"] = ratio
    lines += [
        f"## Gamma-Gamma: fit on the {len(rep):,} repeat customers",
        "",
        "| | seconds | p | q | v | log-likelihood |",
        "|---|---:|---:|---:|---:|---:|",
        f"| clvmodels native | {native_seconds:.2f} | {fmt(model.params_)} | {model.log_likelihood_:.3f} |",
        f"| lifetimes | {lt_seconds:.2f} | {fmt(lt_params)} | {loglik(lt_params):.3f} |",
        "",
        f"**Speed-up: {ratio:.1f}x**; largest relative parameter difference "
        f"{np.max(np.abs(lt_params / model.params_.to_numpy() - 1)):.1e}. (Gamma-Gamma data "
        "compress little: mean spends are continuous, so both fit on about as many rows.)",
        "",
    ]
    fitter.params_ = model.params_.copy()
    ours, s_ours = median_timed(lambda: model.expected_spend(summary))
    theirs, s_lt = median_timed(
        lambda: fitter.conditional_expected_average_profit(
            summary["frequency"], summary["monetary_value"]
        )
    )
    diff = np.max(np.abs(ours.to_numpy() / np.asarray(theirs) - 1))
    ratios["Gamma-Gamma expected spend"] = s_lt / s_ours
    lines += [
        f"Expected spend for all {len(summary):,} customers: clvmodels {s_ours:.3f} s, lifetimes "
        f"{s_lt:.3f} s (**{s_lt / s_ours:.1f}x**; clvmodels validates the summary and returns a "
        f"Series by customer, lifetimes evaluates the bare formula); largest relative "
        f"difference {diff:.1e}.",
        "",
    ]


def run(n: int, lifetimes_n: int) -> str:
    from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter

    from clvmodels.families import bg_nbd as beta_geo
    from clvmodels.families import mbg_nbd as modified_beta_geo

    warnings.simplefilter("ignore")
    summary, sim_seconds = timed(simulate, n)
    n_distinct = len(summary[["frequency", "recency", "T"]].drop_duplicates())
    lines = [
        "# BG/NBD, MBG/NBD, Gamma-Gamma: clvmodels (native) vs lifetimes",
        "",
        f"Simulated BG/NBD with r={TRUE_BG['r']}, alpha={TRUE_BG['alpha']} (days), "
        f"a={TRUE_BG['a']}, b={TRUE_BG['b']}; Gamma-Gamma spend p={TRUE_GG['p']}, "
        f"q={TRUE_GG['q']}, v={TRUE_GG['v']}. {n:,} customers, T uniform on 1..730 days, recency "
        f"in whole days: {n_distinct:,} distinct (frequency, recency, T) rows.",
        f"Machine: {os.cpu_count()} CPUs, shared with other jobs (timings are noisy; ratios "
        "measured in one process are what count). Both libraries are warmed up on a small "
        "slice first; clvmodels fits are the median of 3 runs, lifetimes fits a single run (they "
        "take ~100x longer); predictions are medians of 3 runs for both. Generated by "
        f"`benchmarks/bench_models.py{' --quick' if n < 1_000_000 else ''}`.",
        "",
    ]
    ratios: dict[str, float] = {}
    bench_purchase(
        "BG/NBD", clv.BetaGeo, BetaGeoFitter, beta_geo, summary, lifetimes_n, lines, ratios
    )
    bench_purchase(
        "MBG/NBD",
        clv.ModifiedBetaGeo,
        ModifiedBetaGeoFitter,
        modified_beta_geo,
        summary,
        lifetimes_n,
        lines,
        ratios,
    )
    bench_gamma_gamma(summary, lines, ratios)
    peak_mb = peak_rss_mb()
    header = next(i for i, line in enumerate(lines) if line.startswith("## "))
    lines[header:header] = [
        "## Summary (lifetimes time / clvmodels time)",
        "",
        "| step | speed-up |",
        "|---|---:|",
        *[f"| {k} | {v:.1f}x |" for k, v in ratios.items()],
        "",
        f"Peak resident memory of the whole benchmark process: {peak_mb:,.0f} MB.",
        "",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = lifetimes_comparison_parser(
        __doc__.splitlines()[0],
        quick_help="smoke run with 50,000 customers",
        n_help="number of customers (default 1M)",
        lifetimes_help="fit lifetimes on this many customers and extrapolate (default: all)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "models.md")
    args = parser.parse_args(argv)
    n = args.n or (50_000 if args.quick else 1_000_000)
    lifetimes_n = args.lifetimes_n or n
    text = run(n, lifetimes_n)
    write_results(args.output, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
