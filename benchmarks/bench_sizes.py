"""Fit, predict and value at several sizes: clvmodels vs lifetimes vs pymc-marketing.

One process, the same simulated customers for all three libraries (BG/NBD purchases + Gamma-Gamma
spend, ages 1-364 days, recency at day resolution, weekly unit), at 10k, 100k and 1M customers:

- fit: ``clv.BetaGeo().fit`` (native engine) vs ``lifetimes.BetaGeoFitter.fit`` vs
  ``pymc_marketing.clv.BetaGeoModel.fit(method="map")``;
- predict: expected purchases in the next 4 weeks + P(alive) for every customer, each library
  at its own fitted point estimate (pymc-marketing: its MAP ``idata``);
- value: 12 monthly periods (4.345 weeks) of point CLV at 1% a month, margin 1, expected spend
  from a Gamma-Gamma fitted once by clvmodels and handed to all three (lifetimes:
  ``GammaGammaFitter.customer_lifetime_value``; pymc-marketing:
  ``pymc_marketing.clv.customer_lifetime_value`` with ``future_spend``).

Each library is fitted, and predicts and values, at its own optimum (the optima agree to
~1e-6, hence the small CLV differences reported). Ratios are the other library's time /
clvmodels' time; "-" where a library was not run at that size (``--pymc-max``). Peak memory is the process's resident
high-water mark during each size (reset between sizes, Linux ``/proc/self/clear_refs``).

    python benchmarks/bench_sizes.py            # 10k, 100k, 1M
    python benchmarks/bench_sizes.py --quick    # 2k, 10k (smoke run)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_valuation import _reset_peak, _vm_hwm_mb  # noqa: E402

import clvmodels as clv  # noqa: E402
from clvmodels.io import atomic_write_text  # noqa: E402

TRUE_BG = dict(r=0.243, alpha=4.414, a=0.793, b=2.426)  # FHL 2005, weeks
TRUE_GG = dict(p=6.25, q=3.74, v=15.44)
MONTH_WEEKS = 4.345
RESULTS = Path(__file__).resolve().parent / "results" / "sizes.md"


def simulate(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age_weeks = rng.integers(1, 365, n).astype(float) / 7.0
    sim = clv.simulate.simulate_beta_geo(n, **TRUE_BG, T=age_weeks, seed=seed)
    sim = clv.simulate.simulate_gamma_gamma_spend(sim, **TRUE_GG, seed=seed + 1)
    s = sim[["frequency", "recency", "T", "monetary_value"]].copy()
    s["recency"] = np.minimum(np.floor(s["recency"].to_numpy() * 7.0) / 7.0, s["T"].to_numpy())
    s.loc[s["frequency"] == 0, "recency"] = 0.0
    s.attrs["time_unit"] = "W"
    return s


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run_size(n: int, with_pymc: bool) -> dict:
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    _reset_peak()
    s = simulate(n)
    row = {"customers": n, "distinct rows": len(s[["frequency", "recency", "T"]].drop_duplicates())}
    f, r, T = s["frequency"], s["recency"], s["T"]

    # ---- fit
    row["fit clvmodels"], bg = timed(lambda: clv.BetaGeo().fit(s))
    row["fit lifetimes"], bgf = timed(lambda: BetaGeoFitter().fit(f, r, T))
    gg = clv.GammaGamma().fit(s)
    ggf = GammaGammaFitter()
    ggf.params_ = gg.params_.copy()

    # ---- predict (each at its own optimum)
    row["predict clvmodels"], _ = timed(
        lambda: (bg.expected_purchases(s, 4.0), bg.probability_alive(s))
    )
    row["predict lifetimes"], _ = timed(
        lambda: (
            bgf.conditional_expected_number_of_purchases_up_to_time(4.0, f, r, T),
            bgf.conditional_probability_alive(f, r, T),
        )
    )

    # ---- value: 12 months of point CLV at 1% a month
    months = 12
    row["value clvmodels"], ours = timed(
        lambda: clv.lifetime_value(
            bg,
            gg,
            s,
            horizon=f"{months * MONTH_WEEKS}W",
            period=f"{MONTH_WEEKS}W",
            period_discount_rate=0.01,
            kind="point",
        )
    )
    row["value lifetimes"], theirs = timed(
        lambda: ggf.customer_lifetime_value(
            bgf, f, r, T, s["monetary_value"], time=months, discount_rate=0.01, freq="W"
        )
    )
    rel = np.abs(ours["clv_mean"].to_numpy() - theirs.to_numpy())
    row["value max rel diff vs lifetimes"] = float(
        np.max(rel / np.maximum(np.abs(theirs.to_numpy()), 1e-9))
    )

    if with_pymc:
        from pymc_marketing.clv import BetaGeoModel, customer_lifetime_value

        data = pd.DataFrame(
            {"customer_id": np.arange(n), "frequency": f.to_numpy(), "recency": r.to_numpy(),
             "T": T.to_numpy()}
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = BetaGeoModel(data=data)
            row["fit pymc-marketing"], _ = timed(lambda: model.fit(method="map", progressbar=False))
            row["predict pymc-marketing"], _ = timed(
                lambda: (
                    model.expected_purchases(future_t=4.0),
                    model.expected_probability_alive(),
                )
            )
            spend = data.assign(future_spend=gg.expected_spend(s).to_numpy())
            row["value pymc-marketing"], _ = timed(
                lambda: customer_lifetime_value(
                    model, spend, future_t=months, discount_rate=0.01, time_unit="W"
                )
            )
    row["peak RSS MB"] = _vm_hwm_mb()
    return row


def to_markdown(rows: list[dict], with_pymc: bool, command: str) -> str:
    libs = ["lifetimes"] + (["pymc-marketing"] if with_pymc else [])
    lines = [
        "# Fit, predict and value at several sizes: clvmodels vs lifetimes vs pymc-marketing",
        "",
        f"Command: `{command}`. Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared "
        "with other jobs: absolute seconds are noisy, ratios measured in one process are what "
        "count). Simulated BG/NBD (FHL 2005 CDNOW parameters) + Gamma-Gamma spend, ages 1-364 "
        "days, recency at day resolution, weekly unit. See the module docstring for what each "
        "step does.",
        "",
        "| customers | distinct rows | step | clvmodels s | "
        + " | ".join(f"{lib} s | speed-up vs {lib}" for lib in libs)
        + " |",
        "|---:|---:|---|---:|" + "---:|---:|" * len(libs),
    ]
    for row in rows:
        for step in ("fit", "predict", "value"):
            ours = row[f"{step} clvmodels"]
            cells = []
            for lib in libs:
                other = row.get(f"{step} {lib}")
                cells += (
                    ["-", "-"] if other is None else [f"{other:.3f}", f"**{other / ours:.1f}x**"]
                )
            lines.append(
                f"| {row['customers']:,} | {row['distinct rows']:,} | {step} | {ours:.3f} | "
                + " | ".join(cells)
                + " |"
            )
    lines += [
        "",
        "| customers | peak RSS MB (process, this size) | point CLV max relative difference vs lifetimes |",
        "|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['customers']:,} | {row['peak RSS MB']:.0f} | "
            f"{row['value max rel diff vs lifetimes']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k and 10k customers only")
    parser.add_argument("--sizes", type=int, nargs="*", help="customer counts to run")
    parser.add_argument(
        "--pymc-max",
        type=int,
        default=1_000_000,
        help="run pymc-marketing only up to this many customers (its MAP fit is slow)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = args.sizes or ([2_000, 10_000] if args.quick else [10_000, 100_000, 1_000_000])
    rows = []
    for n in sizes:
        rows.append(run_size(n, with_pymc=n <= args.pymc_max))
        print(rows[-1], flush=True)
    text = to_markdown(
        rows,
        any("fit pymc-marketing" in row for row in rows),
        "python benchmarks/bench_sizes.py " + " ".join(sys.argv[1:]),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
