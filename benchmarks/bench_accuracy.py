"""Holdout accuracy of every model on real and simulated data.

Usage::

    python benchmarks/bench_accuracy.py            # full: CDNOW master, apparel, 20,000 simulated
    python benchmarks/bench_accuracy.py --quick    # smoke run: CDNOW sample, apparel, 2,000 simulated

Writes ``benchmarks/results/accuracy.md`` (one table per data set) and plots under
``benchmarks/results/plots/``. See ``benchmarks/README.md`` for what the columns mean and how
each model is trained.

Data sets
---------
* **CDNOW master** (23,570 customers; ``--quick``: the 2,357-customer sample): calibration
  1997-01-01..1997-09-30 (39 weeks), holdout to 1998-06-30 (39 weeks), the published split.
  Groups for the hierarchical model: the month of the first purchase (Jan/Feb/Mar 1997).
* **Apparel** (600 customers, CLVTools' ``apparelTrans``; all acquired 2005-01-02): calibration
  104 weeks (to 2006-12-31), holdout to 2010-12-20 (207 weeks); groups: acquisition channel.
  Read from ``tests/data`` (shipped with the repository) or ``$CLV_APPAREL_DIR``.
* **Simulated** BG/NBD + Gamma-Gamma transactions with CDNOW-like parameters (customers acquired
  over 13 weeks, 39-week calibration, 39-week holdout), where the true parameters are known: the
  "oracle" row scores predictions made with them.

Models
------
Heuristic CLV (historical rate carried forward), BG/NBD, Pareto/NBD, MBG/NBD (maximum
likelihood, with Gamma-Gamma for spend), hierarchical BG/NBD (NUTS, partial pooling across
groups, with Gamma-Gamma), lifetimes' ``BetaGeoFitter`` (+ ``GammaGammaFitter``),
pymc-marketing's ``BetaGeoModel`` (MAP fit, purchases only), and a gradient-boosting baseline on
RFM features trained on a split of the calibration period
(:class:`clvmodels.evaluation.RFMGradientBoosting`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import clvmodels as clv  # noqa: E402
from clvmodels import evaluation as ev  # noqa: E402
from clvmodels import plotting  # noqa: E402
from clvmodels.io import atomic_write_text  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PLOTS = RESULTS / "plots"
APPAREL_DIR = Path(
    os.environ.get("CLV_APPAREL_DIR", Path(__file__).resolve().parents[1] / "tests" / "data")
)

# columns of the Markdown table: (metric column, header, format)
TABLE_COLUMNS = [
    ("purchases_mae", "MAE purch.", "{:.3f}"),
    ("purchases_rmse", "RMSE purch.", "{:.3f}"),
    ("purchases_total_error", "total purch. err", "{:+.1%}"),
    ("purchases_spearman", "Spearman", "{:.3f}"),
    ("spend_top_decile", "top-10% spend capt.", "{:.1%}"),
    ("spend_gini", "Gini spend", "{:.3f}"),
    ("coverage_50", "cov. 50%", "{:.3f}"),
    ("coverage_90", "cov. 90%", "{:.3f}"),
    ("width_90", "width 90%", "{:.2f}"),
    ("log_score", "log score", "{:.3f}"),
    ("spend_mae", "MAE spend", "{:.2f}"),
    ("spend_total_error", "total spend err", "{:+.1%}"),
    ("fit_seconds", "fit s", "{:.1f}"),
]


# --------------------------------------------------------------------------------------------
# data sets
# --------------------------------------------------------------------------------------------
class Dataset:
    def __init__(self, name, transactions, calibration_holdout, calibration_end, observation_end,
                 group=None, note="", truth=None):  # fmt: skip
        self.name = name
        self.transactions = transactions
        self.ch = calibration_holdout
        self.calibration_end = calibration_end
        self.observation_end = observation_end
        self.group = group
        self.note = note
        self.truth = truth

    @property
    def calibration(self) -> pd.DataFrame:
        keep = [c for c in self.ch.columns if not c.endswith("_holdout")]
        out = self.ch[keep]
        out.attrs = dict(self.ch.attrs)
        return out


def _cohort_month(tx: pd.DataFrame, index) -> pd.Series:
    first = tx.groupby("customer_id")["date"].min()
    return first.dt.strftime("%Y-%m").reindex(index).rename("cohort")


def weekly_split(tx: pd.DataFrame, calibration_end: str, observation_end: str) -> pd.DataFrame:
    """The weekly calibration/holdout summary of transactions with columns customer_id, date
    and amount."""
    return clv.calibration_holdout_summary(
        tx,
        customer_id="customer_id",
        datetime="date",
        monetary="amount",
        calibration_end=calibration_end,
        observation_end=observation_end,
        time_unit="W",
    )


def load_cdnow(quick: bool) -> Dataset:
    which = "sample" if quick else "master"
    tx = clv.datasets.load_cdnow_transactions(which)
    ch = clv.datasets.load_cdnow_calibration_holdout(which)
    ch["cohort"] = _cohort_month(tx, ch.index).to_numpy()
    return Dataset(
        f"CDNOW {which} ({len(ch):,} customers, 39/39 weeks)",
        tx,
        ch,
        "1997-09-30",
        "1998-06-30",
        group="cohort",
        note="hierarchical groups: month of first purchase",
    )


def load_apparel(quick: bool) -> Dataset | str:
    tx_path = APPAREL_DIR / "apparel_transactions.csv"
    cov_path = APPAREL_DIR / "apparel_customers.csv"
    if not tx_path.exists() or not cov_path.exists():
        return f"apparel data not found under {APPAREL_DIR} (set CLV_APPAREL_DIR); skipped"
    tx = pd.read_csv(tx_path, parse_dates=["date"])
    covariates = pd.read_csv(cov_path).set_index("customer_id")
    ch = weekly_split(tx, "2006-12-31", "2010-12-20")
    ch["channel"] = covariates["channel"].reindex(ch.index).map({0: "channel 0", 1: "channel 1"})
    if ch["channel"].isna().any():
        raise ValueError("apparel customers without a channel")
    return Dataset(
        f"Apparel ({len(ch):,} customers, 104/207 weeks)",
        tx,
        ch,
        "2006-12-31",
        "2010-12-20",
        group="channel",
        note="hierarchical groups: acquisition channel",
    )


TRUE_BG = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.4}
TRUE_GG = {"p": 6.0, "q": 4.0, "v": 15.0}


def load_simulated(quick: bool) -> Dataset:
    from clvmodels.simulate import simulate_transactions

    n = 2_000 if quick else 20_000
    tx, truth = simulate_transactions(
        n,
        **TRUE_BG,
        spend=tuple(TRUE_GG.values()),
        start="2020-01-01",
        acquisition_days=91,
        observation_end="2021-06-29",
        seed=2024,
    )
    ch = weekly_split(tx, "2020-09-29", "2021-06-29")
    ch["cohort"] = _cohort_month(tx, ch.index).to_numpy()
    return Dataset(
        f"Simulated BG/NBD + Gamma-Gamma ({len(ch):,} customers, 39/39 weeks)",
        tx,
        ch,
        "2020-09-29",
        "2021-06-29",
        group="cohort",
        note=f"true parameters BG/NBD {TRUE_BG}, Gamma-Gamma {TRUE_GG}",
        truth=truth,
    )


# --------------------------------------------------------------------------------------------
# models: each builder fits on the calibration part and returns a compare_models entry
# --------------------------------------------------------------------------------------------
def _spend_fit_rows(cal: pd.DataFrame) -> pd.DataFrame:
    """Repeat buyers with a positive mean spend: Gamma-Gamma is defined for positive spend
    (CDNOW master has a repeat buyer whose purchases sum to 0; apparel has 0.00 amounts). The
    excluded customers are counted in the results note; they are still scored, with the
    model's conditional expected spend at their observed mean of 0."""
    return cal[(cal["frequency"] > 0) & (cal["monetary_value"] > 0)]


def _gamma_gamma(ds: Dataset):
    return clv.GammaGamma().fit(_spend_fit_rows(ds.calibration))


def _heuristic(level):
    def build(ds: Dataset, settings):
        from clvmodels import HeuristicCLV

        return HeuristicCLV(period="1W", level=level).fit(ds.calibration)

    return build


def _mle(cls):
    def build(ds: Dataset, settings):
        return cls().fit(ds.calibration), _gamma_gamma(ds)

    return build


def _hierarchical(ds: Dataset, settings):
    from clvmodels import HierarchicalBetaGeo

    model = HierarchicalBetaGeo(group=ds.group).fit(
        ds.calibration,
        draws=settings["nuts_draws"],
        tune=settings["nuts_tune"],
        chains=settings["nuts_chains"],
        random_seed=1,
    )
    return model, _gamma_gamma(ds)


def _lifetimes(ds: Dataset, settings):
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    cal = ds.calibration
    bgf = BetaGeoFitter(penalizer_coef=0.0).fit(cal["frequency"], cal["recency"], cal["T"])
    rep = _spend_fit_rows(cal)
    ggf = GammaGammaFitter(penalizer_coef=0.0).fit(rep["frequency"], rep["monetary_value"])
    return bgf, ggf


def _pymc_marketing(ds: Dataset, settings):
    from pymc_marketing.clv import BetaGeoModel

    cal = ds.calibration
    data = pd.DataFrame(
        {
            "customer_id": np.arange(len(cal)),
            "frequency": cal["frequency"].to_numpy(dtype=float),
            "recency": cal["recency"].to_numpy(dtype=float),
            "T": cal["T"].to_numpy(dtype=float),
        }
    )
    model = BetaGeoModel(data=data)
    model.fit(method="map", progressbar=False)
    return model


def _gradient_boosting(ds: Dataset, settings):
    return ev.RFMGradientBoosting(
        ds.transactions,
        customer_id="customer_id",
        datetime="date",
        monetary="amount",
        calibration_end=ds.calibration_end,
        time_unit="W",
    ).fit(float(ds.ch["duration_holdout"].max()))


def _oracle(ds: Dataset, settings):
    from clvmodels import BetaGeo, GammaGamma

    def fixed(cls, params):
        names = list(cls.family_class.param_names)
        return cls.from_dict(
            {
                "class": cls.__name__,
                "settings": {"engine": "native"},
                "time_unit": "W",
                "params": params,
                "log_covariance": np.zeros((len(names), len(names))).tolist(),
                "log_likelihood": float("nan"),
                "converged": True,
                "optimizer_message": "true parameters",
                "n_customers": float(len(ds.ch)),
            }
        )

    return fixed(BetaGeo, TRUE_BG), fixed(GammaGamma, TRUE_GG)


def model_builders(ds: Dataset):
    builders = {
        "Heuristic CLV (population)": _heuristic("population"),
        "Heuristic CLV (per customer)": _heuristic("customer"),
        "BG/NBD (clvmodels)": _mle(clv.BetaGeo),
        "Pareto/NBD (clvmodels)": _mle(clv.ParetoNBD),
        "MBG/NBD (clvmodels)": _mle(clv.ModifiedBetaGeo),
        f"Hierarchical BG/NBD by {ds.group} (clvmodels)": _hierarchical,
        "lifetimes BetaGeoFitter": _lifetimes,
        "pymc-marketing BetaGeoModel (MAP)": _pymc_marketing,
        "Gradient boosting on RFM": _gradient_boosting,
    }
    if ds.truth is not None:
        builders["Oracle: true parameters"] = _oracle
    return builders


# --------------------------------------------------------------------------------------------
def run_dataset(ds: Dataset, settings) -> tuple[pd.DataFrame, dict[str, str], dict]:
    rows = []
    failures: dict[str, str] = {}
    fitted = {}
    for name, build in model_builders(ds).items():
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                entry = build(ds, settings)
            fit_seconds = time.perf_counter() - start
            table = ev.compare_models(
                {name: entry},
                ds.ch,
                n_samples=settings["n_samples"],
                n_draws=settings["n_draws"],
                seed=0,
            )
        except Exception as exc:  # noqa: BLE001 - reported in the results, never hidden
            failures[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            print(f"  {name}: FAILED {failures[name]}", flush=True)
            if settings.get("verbose"):
                traceback.print_exc()
            continue
        table["fit_seconds"] = fit_seconds
        rows.append(table)
        fitted[name] = entry
        print(
            f"  {name}: MAE {table['purchases_mae'].iloc[0]:.3f}, fit {fit_seconds:.1f}s, "
            f"score {table['seconds'].iloc[0]:.1f}s",
            flush=True,
        )
    result = pd.concat(rows) if rows else pd.DataFrame()
    return result, failures, fitted


def _fmt(value, pattern):
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    text = pattern.format(value)
    digits = "".join(ch for ch in text if ch.isdigit())
    if text.startswith("-") and not digits.strip("0"):
        text = text[1:]  # "-0.000" -> "0.000"
    return text


def markdown_table(table: pd.DataFrame) -> str:
    headers = ["model"] + [h for _, h, _ in TABLE_COLUMNS]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for name, row in table.iterrows():
        cells = [str(name)] + [
            _fmt(row.get(col, np.nan), pattern) for col, _, pattern in TABLE_COLUMNS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plots(ds: Dataset, fitted: dict, table: pd.DataFrame, slug: str) -> list[str]:
    PLOTS.mkdir(parents=True, exist_ok=True)
    written = []
    bg_name = "BG/NBD (clvmodels)"
    if bg_name in fitted:
        bg = fitted[bg_name][0]
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
        plotting.plot_tracking(
            bg,
            ds.transactions,
            calibration_end=ds.calibration_end,
            observation_end=ds.observation_end,
            ax=axes[0],
        )
        plotting.plot_calibration_vs_holdout(bg, ds.ch, ax=axes[1])
        fig.suptitle(ds.name)
        fig.tight_layout()
        path = PLOTS / f"{slug}_bgnbd_tracking.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path.name)
    metrics = [m for m in ("purchases_rmse", "purchases_total_error", "coverage_90") if m in table]
    if len(table) and metrics:
        fig, axes = plt.subplots(
            1, len(metrics), figsize=(5 * len(metrics) + 3, 0.45 * len(table) + 2), squeeze=False
        )
        for i, metric in enumerate(metrics):
            plotting.plot_model_comparison(table, metric, ax=axes[0, i])
            if i:
                axes[0, i].set_yticklabels([])
        fig.suptitle(ds.name)
        fig.tight_layout()
        path = PLOTS / f"{slug}_comparison.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path.name)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, few draws (smoke run)")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of failures")
    parser.add_argument("--output", default=str(RESULTS / "accuracy.md"))
    args = parser.parse_args(argv)
    settings = {
        "n_samples": 300 if args.quick else 500,
        "n_draws": 100 if args.quick else 100,
        "nuts_draws": 200 if args.quick else 500,
        "nuts_tune": 200 if args.quick else 500,
        "nuts_chains": 2,
        "verbose": args.verbose,
    }
    started = time.perf_counter()
    sections = [
        "# Accuracy on holdout data\n",
        f"Mode: {'quick (smoke run)' if args.quick else 'full'}; predictive samples per "
        f"customer {settings['n_samples']} over {settings['n_draws']} parameter draws; "
        f"hierarchical NUTS {settings['nuts_chains']} chains x {settings['nuts_draws']} draws "
        f"({settings['nuts_tune']} tuning). Column definitions: benchmarks/README.md.\n",
    ]
    all_tables = {}
    for loader in (load_cdnow, load_apparel, load_simulated):
        ds = loader(args.quick)
        if isinstance(ds, str):
            sections.append(f"## {loader.__name__[5:].capitalize()}\n\n**Skipped:** {ds}\n")
            continue
        print(f"{ds.name}", flush=True)
        table, failures, fitted = run_dataset(ds, settings)
        all_tables[ds.name] = table
        slug = loader.__name__[5:]
        plots = _plots(ds, fitted, table, slug)
        actual = ev.holdout_actuals(ds.ch)
        cal = ds.calibration
        n_zero = int(((cal["frequency"] > 0) & (cal["monetary_value"] <= 0)).sum())
        spend_note = (
            f" Gamma-Gamma is fit on repeat buyers with positive mean spend ({n_zero} repeat "
            "buyer(s) with zero spend left out of the spend fit, still scored)."
            if n_zero
            else ""
        )
        text = [
            f"## {ds.name}\n",
            f"{ds.note}. Holdout: {actual['purchases'].sum():,.0f} repeat purchases, "
            f"spend {actual['spend'].sum():,.0f}.{spend_note}\n",
            markdown_table(table) if len(table) else "(no model could be scored)",
        ]
        if failures:
            text.append("\n**Not scored** (the error is reported, not hidden):\n")
            text.extend(f"- {name}: `{reason}`" for name, reason in failures.items())
        if plots:
            text.append("\nPlots: " + ", ".join(f"[{p}](plots/{p})" for p in plots))
        sections.append("\n".join(text) + "\n")
        csv_path = RESULTS / f"accuracy_{slug}.csv"
        tmp = csv_path.with_suffix(".csv.tmp")
        table.to_csv(tmp)
        os.replace(tmp, csv_path)
    sections.append(f"_Total run time {time.perf_counter() - started:.0f} s._\n")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(sections))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
