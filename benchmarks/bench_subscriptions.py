"""Subscriptions: sBG and BdW in clvmodels, side by side with pymc-marketing's ShiftedBetaGeoModel.

Usage::

    python benchmarks/bench_subscriptions.py                 # 1,000,000 subscribers
    python benchmarks/bench_subscriptions.py --quick         # smoke run: 50,000 subscribers
    python benchmarks/bench_subscriptions.py --n 200000 --pymc-n 100000

Writes ``benchmarks/results/subscriptions.md``.

What is measured (one process, the same data for both libraries)
----------------------------------------------------------------
* **Published data**: Fader & Hardie (2007), two cohorts of 1,000 (years 0-7): clvmodels'
  ``fit_by_cohort(clv.ShiftedBetaGeo(), table)`` against pymc-marketing's
  ``ShiftedBetaGeoModel`` with flat cohort priors (``HalfFlat``, so its MAP is the maximum
  likelihood) fitted by ``fit(method="map")``; estimates and wall time.
* **Simulated subscribers**: ``--n`` monthly subscribers in 24 cohorts (cohort ``k`` acquired
  ``k`` months before the end of observation, ``k = 2..25``: a cohort observed for one
  period cannot separate alpha from beta), each cohort's churn
  ``theta ~ Beta(alpha_k, beta_k)`` with ``alpha_k = 0.8 (1 + k/48)``, ``beta_k = 2.5``.
  * cohort fits: clvmodels ``fit_by_cohort`` (one maximum-likelihood fit per cohort on its
    distinct ``(tenure, churned)`` rows) against pymc-marketing's cohort model (one ``alpha`` and
    ``beta`` per cohort, flat priors, MAP) on ``--pymc-n`` subscribers (its time at the full size
    is reported as measured when ``--pymc-n`` equals ``--n``);
  * a pooled fit of all subscribers: sBG and BdW (three parameters), clvmodels only;
  * per-customer predictions at the fitted point: expected renewal payments in the next 12
    months and DERT at 10 % a year (clvmodels), pymc-marketing's ``expected_residual_lifetime``
    (FH 2010 eq. 6, which counts the upcoming renewal undiscounted: it equals ``(1 + d)`` times
    clvmodels' DERT, checked below);
  * subscriber value through the valuation engine: ``clv.lifetime_value(sbg, price, table,
    horizon="36M", kind="expected", draws=200)`` (parameter intervals; distinct rows valued once)
    and ``kind="predictive"`` with 100 draws on 100,000 subscribers.

Times are wall-clock seconds on a shared machine; the load average at the start of each section is
printed with it.
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

import clvmodels as clv
from clvmodels.families.shifted_beta_geo import simulate_subscribers
from clvmodels.subscriptions import fit_by_cohort, table_from_survivors

RESULTS = Path(__file__).parent / "results" / "subscriptions.md"
FH_2007 = {
    "regular": [1000, 631, 468, 382, 326, 289, 262, 241],
    "highend": [1000, 869, 743, 653, 593, 551, 517, 491],
}


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def simulated_table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    months = rng.integers(2, 26, size=n).astype(float)
    alpha = 0.8 * (1 + months / 48)
    drawn = simulate_subscribers(alpha, 2.5, months, None, rng)
    table = pd.DataFrame(
        {
            "tenure": drawn["tenure"].astype(np.int64),
            "churned": drawn["churned"],
            "cohort": months.astype(int),
        },
        index=pd.RangeIndex(n, name="customer_id"),
    )
    table.attrs["time_unit"] = "M"
    return table


def pymc_frame(table: pd.DataFrame) -> pd.DataFrame:
    """pymc-marketing's layout: ``recency`` = periods paid (churned) or ``T`` (active), ``T`` =
    the cohort's observed periods + 1 (an active customer with tenure n contributes S(n), which
    its censoring at T gives as P(X >= n + 1))."""
    T = table.groupby("cohort")["tenure"].transform("max").to_numpy() + 1
    return pd.DataFrame(
        {
            "customer_id": np.arange(len(table)),
            "recency": np.where(table["churned"], table["tenure"], T),
            "T": T,
            "cohort": table["cohort"].astype(str).to_numpy(),
        }
    )


def fit_pymc(frame: pd.DataFrame):
    from pymc_extras.prior import Prior
    from pymc_marketing.clv import ShiftedBetaGeoModel

    model = ShiftedBetaGeoModel(
        data=frame,
        model_config={
            "alpha": Prior("HalfFlat", dims="cohort"),
            "beta": Prior("HalfFlat", dims="cohort"),
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(method="map", progressbar=False)
    return model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--pymc-n", type=int, default=None, help="default: --n")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-pymc", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    n = 50_000 if args.quick else args.n
    pymc_n = min(n, args.pymc_n or n)
    lines = [
        "# Subscriptions: sBG and BdW (clvmodels) and pymc-marketing's ShiftedBetaGeoModel",
        "",
        f"Written by `python benchmarks/bench_subscriptions.py{' --quick' if args.quick else ''}` "
        f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Machine: "
        f"{os.cpu_count()} CPU cores ({platform.machine()}), shared with other jobs (load "
        "averages given per section); Python "
        f"{platform.python_version()}. What is measured: the script's docstring.",
        "",
    ]

    # ---- published data ---------------------------------------------------------------------
    fh = table_from_survivors(FH_2007, period="Y")
    lines += ["## Fader & Hardie (2007), years 0-7", "", f"({load()})", ""]
    fits, seconds = timed(fit_by_cohort, clv.ShiftedBetaGeo(), fh)
    rows = [
        "| library | cohort | alpha | beta | log-lik | fit s |",
        "|---|---|---|---|---|---|",
    ]
    for cohort, model in fits.items():
        rows.append(
            f"| clvmodels | {cohort} | {model.params_['alpha']:.3f} | {model.params_['beta']:.3f}"
            f" | {model.log_likelihood_:.2f} | {seconds:.2f} (both) |"
        )
    if not args.no_pymc:
        pm_model, pm_seconds = timed(fit_pymc, pymc_frame(fh))
        posterior = pm_model.fit_result
        for cohort in FH_2007:
            alpha = float(posterior["alpha"].sel(cohort=cohort).values.ravel()[0])
            beta = float(posterior["beta"].sel(cohort=cohort).values.ravel()[0])
            rows.append(
                f"| pymc-marketing (MAP) | {cohort} | {alpha:.3f} | {beta:.3f} | – | "
                f"{pm_seconds:.1f} (both) |"
            )
    rows.append(
        "| published | regular / highend | 0.704 / 0.668 | 1.182 / 3.806 | -1680.27 / -1611.16 | |"
    )
    lines += rows + [""]
    print("\n".join(lines), flush=True)

    # ---- simulated subscribers ----------------------------------------------------------------
    table, build_s = timed(simulated_table, n)
    lines += [
        f"## {n:,} simulated monthly subscribers in 24 cohorts",
        "",
        f"Simulated in {build_s:.1f} s; {int(table['churned'].sum()):,} churned, "
        f"{int((~table['churned']).sum()):,} active.",
        "",
        "| step | clvmodels s | pymc-marketing s | notes |",
        "|---|---|---|---|",
    ]
    start_load = load()
    cohort_fits, cohort_s = timed(fit_by_cohort, clv.ShiftedBetaGeo(), table)
    pooled, pooled_s = timed(clv.ShiftedBetaGeo().fit, table)
    bdw, bdw_s = timed(clv.BetaDiscreteWeibull().fit, table)
    notes = ""
    pm_s_text = "–"
    if not args.no_pymc:
        sample = table.sample(pymc_n, random_state=1) if pymc_n < n else table
        pm_model, pm_s = timed(fit_pymc, pymc_frame(sample))
        posterior = pm_model.fit_result
        worst, gain = 0.0, 0.0
        for cohort, model in cohort_fits.items():
            sub = sample[sample["cohort"] == cohort]
            mine = fit_by_cohort(clv.ShiftedBetaGeo(), sub)[cohort] if pymc_n < n else model
            theirs = {
                name: float(posterior[name].sel(cohort=str(cohort)).values.ravel()[0])
                for name in ("alpha", "beta")
            }
            for name, value in theirs.items():
                worst = max(worst, abs(value / mine.params_[name] - 1))
            rows = mine.rows_
            at_theirs = -mine.family_.negative_log_likelihood(
                np.log([theirs["alpha"], theirs["beta"]]), rows
            )[0]
            gain = max(gain, mine.log_likelihood_ - at_theirs)
        pm_s_text = f"{pm_s:.1f}" + ("" if pymc_n == n else f" (on {pymc_n:,})")
        notes = (
            f"largest relative difference of the 48 estimates: {worst:.1e}; clvmodels' "
            f"log-likelihood is higher than at pymc-marketing's MAP by up to {gain:.2e} per cohort"
        )
    lines.append(
        f"| 24 cohort fits (sBG per cohort) | {cohort_s:.2f} | {pm_s_text} | {notes} ({start_load}) |"
    )
    true_alpha = 0.8 * (1 + np.arange(2, 26) / 48)
    recovered = np.array([cohort_fits[k].params_["alpha"] for k in range(2, 26)])
    lines.append(
        f"| pooled sBG fit | {pooled_s:.2f} | – | {pooled.rows_.n_rows} distinct rows; cohort "
        f"alphas within {np.max(np.abs(recovered / true_alpha - 1)):.1%} of the truth |"
    )
    lines.append(
        f"| pooled BdW fit | {bdw_s:.2f} | – | c = {bdw.params_['c']:.3f} (each cohort is sBG; the pooled mixture of cohorts is not) |"
    )

    params = pooled.customer_params(table)
    family = pooled.family_
    customer = family.customer_arrays(table)
    _, expected_s = timed(family.expected_purchases, params, *customer, 12.0)
    delta = np.log(1.1) / 12
    dert, dert_s = timed(
        clv.discounted_expected_residual_transactions, pooled, table, annual_discount_rate=0.1
    )
    pm_pred_text, pred_note = "–", ""
    if not args.no_pymc:
        sample = table.sample(pymc_n, random_state=1) if pymc_n < n else table
        frame = pymc_frame(sample)
        active = ~sample["churned"].to_numpy()
        d = float(np.expm1(delta))
        erl, erl_s = timed(pm_model.expected_residual_lifetime, frame[active], discount_rate=d)
        theirs = np.asarray(erl).reshape(-1)
        # their cohort parameters, our formula: (1 + d) DERT at each customer's cohort fit
        ours = np.concatenate(
            [
                (1 + d)
                * np.asarray(
                    cohort_fits[k].family_.discounted_expected_residual_transactions(
                        {
                            "alpha": float(posterior["alpha"].sel(cohort=str(k)).values.ravel()[0]),
                            "beta": float(posterior["beta"].sel(cohort=str(k)).values.ravel()[0]),
                        },
                        sample.loc[active & (sample["cohort"] == k).to_numpy(), "tenure"].to_numpy(
                            float
                        ),
                        np.zeros(int((active & (sample["cohort"] == k).to_numpy()).sum())),
                        delta,
                    )
                ).ravel()
                for k in frame.loc[active, "cohort"].astype(int).unique()
            ]
        )
        pm_pred_text = f"{erl_s:.2f}"
        pred_note = (
            f"pymc-marketing's expected_residual_lifetime on its {int(active.sum()):,} active "
            f"customers; its values / clvmodels' (1 + d) DERT: mean {np.mean(theirs) / np.mean(ours):.6f} (same customers)"
        )
    lines.append(f"| expected payments, next 12 months (1 family call) | {expected_s:.2f} | – | |")
    lines.append(f"| DERT at 10 % a year | {dert_s:.2f} | {pm_pred_text} | {pred_note} |")

    price = clv.SubscriptionPrice(price=9.99).fit(table)
    valuation = {"horizon": "36M", "annual_discount_rate": 0.1, "margin": 0.8, "random_seed": 1}
    value, value_s = timed(
        clv.lifetime_value, pooled, price, table, kind="expected", draws=200, **valuation
    )
    lines.append(
        f"| lifetime_value, 36 months, kind='expected', 200 draws | {value_s:.2f} | – | "
        f"mean CLV of active subscribers {value.loc[~table['churned'], 'clv_mean'].mean():.2f} |"
    )
    small = table.iloc[: min(n, 100_000)]
    predictive, predictive_s = timed(
        clv.lifetime_value, pooled, price, small, kind="predictive", draws=100, **valuation
    )
    lines.append(
        f"| lifetime_value, 36 months, kind='predictive', 100 draws, {len(small):,} subscribers "
        f"| {predictive_s:.2f} | – | ({load()}) |"
    )
    lines.append("")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        args.out.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
