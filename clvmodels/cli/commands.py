"""The commands: ``rfm``, ``fit``, ``score``, ``evaluate`` and ``report``, and the ``app``.

Each command resolves its settings (command line, then the TOML file), checks them (an output
that is an input, or contains one, is refused), removes what killed runs left behind for its
outputs, does its work through the library (:mod:`clvmodels.scoring`, :mod:`clvmodels.io`, the
estimators of :mod:`clvmodels.registry`) and writes its output and manifest atomically and
together (:func:`clvmodels.io.staged_outputs`: the manifest, with the outputs' checksums, is
renamed into place first, then the outputs).
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

from clvmodels import registry
from clvmodels.cli.config import resolve_settings
from clvmodels.cli.console import Console
from clvmodels.cli.errors import handle_errors
from clvmodels.cli.manifest import Run, manifest_path
from clvmodels.cli.options import (
    SPEND_CUSTOMERS,
    AfterObservationEndOpt,
    Command,
    ConfigOpt,
    CovariatesFileOpt,
    CustomerIdOpt,
    DatetimeFormatOpt,
    DatetimeOpt,
    DebugOpt,
    DropoutCovariatesOpt,
    EndOpt,
    Group,
    MonetaryOpt,
    PeriodOpt,
    PriceOpt,
    PurchaseCovariatesOpt,
    QuietOpt,
    ScoreCovariatesFileOpt,
    SpendCovariatesOpt,
    SpendCustomersOpt,
    StartOpt,
    SummaryCustomerIdOpt,
    TimeUnitOpt,
    TimeVaryingCovariatesOpt,
    after_end_policy,
    check_choice,
    check_output_parent,
    check_outputs,
    check_valuation_settings,
    covariate_columns,
    in_cli_words,
)
from clvmodels.cli.pipeline import (
    TIME_VARYING_MODEL,
    customer_table,
    fit_columns,
    fit_diagnostics,
    fit_models,
    fit_table_models,
    fit_time_varying,
    is_summary_file,
    models_diagnostics,
    not_positive_spend_error,
    read_covariates_file,
    read_time_varying_covariates,
    reads_rfm_summary,
    remove_leftovers,
    sampling_settings,
    save_fitted_models,
    score_table,
    summarize_transactions_file,
    summary_settings,
    warnings_recorded,
)
from clvmodels.cli.report import figures_folder, write_report
from clvmodels.errors import InputError
from clvmodels.io import scratch_prefix, staged_outputs


def _fit_model_names() -> list[str]:
    """``fit --model`` choices: the registry's purchase models and the time-varying
    Pareto/NBD."""
    return [*registry.purchase_model_names(), TIME_VARYING_MODEL]


def _rfm_model_names() -> list[str]:
    """The maximum-likelihood purchase models that read the RFM summary (their family's
    ``customer_columns``): what ``evaluate`` fits on a calibration summary."""
    return [
        name
        for name in registry.maximum_likelihood_purchase_names()
        if reads_rfm_summary(registry.estimator_class("purchase", name))
    ]


def _one_of(names: list[str]) -> str:
    """``"a, b or c"``."""
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


app = typer.Typer(
    name="clvmodels",
    help=(
        "Probabilistic customer lifetime value in batch: RFM summaries, model fitting and "
        "bounded-memory CLV scoring with uncertainty intervals.\n\n"
        "Run [bold]clvmodels score[/bold] with no arguments for the whole pipeline on the "
        "bundled CDNOW data."
    ),
    epilog=(
        "Examples:\n\n"
        "  clvmodels score                                   # the CDNOW demo\n\n"
        "  clvmodels rfm tx.parquet --out summary.parquet --time-unit W\n\n"
        "  clvmodels fit summary.parquet --model bgnbd --spend gamma-gamma --out models/m\n\n"
        "  clvmodels score summary.parquet --model models/m --horizon 12M --margin 0.3 "
        "--out clv.parquet --quiet\n\n"
        "  clvmodels report clv.parquet --out report.html\n\n"
        "Errors print one line and exit with 2 (bad input) or 1 (anything else)."
    ),
    cls=Group,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context) -> None:
    """Without a command: show the help (exit code 0)."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


@app.command(
    epilog=(
        "Transactions: one row per purchase with a customer id (--customer-id, default "
        "customer_id), a date (--datetime, default date: a date/datetime column or ISO 8601 "
        "text; other layouts with --datetime-format) and an amount (--monetary, default "
        "amount: numbers >= 0). Other columns are ignored.\n\n"
        "Examples:\n\n"
        "  clvmodels rfm transactions.parquet --out summary.parquet --time-unit W\n\n"
        "  clvmodels rfm tx.csv --out summary.parquet --observation-end 1997-09-30 "
        "--after-observation-end exclude --datetime-format '%m/%d/%Y'\n\n"
        "  clvmodels rfm tx.csv --out ch.parquet --calibration-end 1997-09-30 "
        "--observation-end 1998-06-30"
    ),
)
@handle_errors
def rfm(
    ctx: typer.Context,
    transactions: Annotated[
        Path, typer.Argument(help="Transactions file (Parquet or CSV): one row per purchase.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Summary file to write (.parquet or .csv).")
    ],
    observation_end: Annotated[
        str | None,
        typer.Option(help="End of observation (default: the last transaction date)."),
    ] = None,
    calibration_end: Annotated[
        str | None,
        typer.Option(help="End of calibration: adds holdout columns up to --observation-end."),
    ] = None,
    time_unit: Annotated[str, typer.Option(help="Time unit: D, W, M, Q or Y.")] = "W",
    after_observation_end: AfterObservationEndOpt = "error",
    customer_id: CustomerIdOpt = "customer_id",
    datetime_col: DatetimeOpt = "date",
    datetime_format: DatetimeFormatOpt = None,
    monetary: MonetaryOpt = "amount",
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """Summarise transactions into one row per customer: frequency, recency, T, monetary_value.

    The summary records its time unit and customer id column: later commands read them."""
    s = resolve_settings(ctx, dict(locals()), config, rfm)
    console = Console(s["quiet"])
    after = after_end_policy(s["after_observation_end"])
    run = Run("rfm", s)
    check_output_parent(s["out"])
    outputs = (s["out"], manifest_path(s["out"]))
    check_outputs(outputs, [s["transactions"], s["config"]])
    remove_leftovers(console, *outputs)
    with staged_outputs([s["out"]]) as staging, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, summary = summarize_transactions_file(
            s["transactions"],
            s["out"],
            customer_id=s["customer_id"],
            datetime_col=s["datetime_col"],
            monetary=s["monetary"],
            time_unit=s["time_unit"],
            observation_end=s["observation_end"],
            calibration_end=s["calibration_end"],
            datetime_format=s["datetime_format"],
            after_observation_end=after,
        )
        console.warn(caught)
        run.add_warnings(caught)
        run.add_input(s["transactions"], "transactions")
        run.record["outputs"].append({"path": str(s["out"]), "rows": len(summary)})
        n_after = int(summary.attrs.get("n_transactions_after_observation_end", 0))
        run.record["summary"] = {
            "n_customers": len(summary),
            "repeat_customers": int((summary["frequency"] > 0).sum()),
            "customer_id": summary.attrs["customer_id"],
            "time_unit": summary.attrs.get("time_unit"),
            "n_transactions_after_observation_end": n_after,
            "attrs": {k: str(v) for k, v in summary.attrs.items()},
        }
        run.commit(staging, manifest_path(s["out"]))
    if n_after:
        console.info(
            f"left out {n_after:,} transactions after the observation end "
            f"{summary.attrs.get('observation_end')} (--after-observation-end exclude)"
        )
    console.info(f"wrote {len(summary):,} customers to {s['out']}")


@app.command(
    epilog=(
        "Examples:\n\n"
        "  clvmodels fit summary.parquet --model bgnbd --spend gamma-gamma --out models/cdnow\n\n"
        "  clvmodels fit summary.parquet --spend-customers positive --out models/m   "
        "# zero-value orders\n\n"
        "  clvmodels fit summary.parquet --model hierarchical --spend hierarchical "
        "--group channel --out models/h\n\n"
        "  clvmodels fit subscriptions.csv --model sbg --period M --observation-end 2024-06-30 "
        "--price 9.99 --out models/sbg   # customer_id, start, end (empty: active)\n\n"
        "  clvmodels fit gifts.csv --model bgbb --period Y --price 50 --out models/bgbb   "
        "# transactions: customer_id, date"
    )
)
@handle_errors
def fit(
    ctx: typer.Context,
    summary: Annotated[
        Path,
        typer.Argument(
            help="Summary file from `clvmodels rfm`; for --model sbg, bdw or hierarchical-sbg a "
            "subscriptions file (customer_id, start, end) or a table with tenure, churned; for "
            "--model bgbb a transactions file (customer_id, date) or a table with frequency, "
            "recency, n_periods."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help=f"Purchase model: {', '.join(_fit_model_names())}.",
        ),
    ] = "bgnbd",
    spend: Annotated[
        str, typer.Option(help=f"Spend model: {_one_of(registry.spend_model_names())}.")
    ] = "gamma-gamma",
    group: Annotated[str | None, typer.Option(help="Group column for hierarchical models.")] = None,
    draws: Annotated[int, typer.Option(help="Posterior draws per chain (hierarchical).")] = 1000,
    tune: Annotated[int, typer.Option(help="Tuning steps per chain (hierarchical).")] = 1000,
    chains: Annotated[int, typer.Option(help="Chains (hierarchical).")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    spend_customers: SpendCustomersOpt = "all",
    time_unit: TimeUnitOpt = None,
    customer_id: SummaryCustomerIdOpt = None,
    covariates: CovariatesFileOpt = None,
    purchase_covariates: PurchaseCovariatesOpt = None,
    dropout_covariates: DropoutCovariatesOpt = None,
    spend_covariates: SpendCovariatesOpt = None,
    period: PeriodOpt = None,
    price: PriceOpt = None,
    observation_end: Annotated[
        str | None,
        typer.Option(
            help="Subscriptions and BG/BB: the date the data were extracted (default: the "
            "latest date in the file).",
            rich_help_panel="Subscriptions and BG/BB",
        ),
    ] = None,
    start: StartOpt = "start",
    end: EndOpt = "end",
    datetime_col: DatetimeOpt = "date",
    datetime_format: DatetimeFormatOpt = None,
    monetary: MonetaryOpt = "amount",
    time_varying_covariates: TimeVaryingCovariatesOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """Fit a purchase model and a spend model on a summary and save them (JSON/NetCDF, no pickle).

    Subscription models (sbg, bdw, hierarchical-sbg) and BG/BB (bgbb) read their own tables;
    their spend side is a fixed price per payment (--price or the file's price column)."""
    s = resolve_settings(ctx, dict(locals()), config, fit)  # first: locals() are the options
    from clvmodels.scoring import inspect_summary_file

    console = Console(s["quiet"])
    check_choice("--model", s["model"], _fit_model_names())
    if s["model"] == TIME_VARYING_MODEL:
        _fit_time_varying_model(s, console)
        return
    if s["time_varying_covariates"] is not None:
        raise InputError(f"--time-varying-covariates is for --model {TIME_VARYING_MODEL}")
    purchase_class = registry.estimator_class("purchase", s["model"])
    if not reads_rfm_summary(purchase_class):
        _fit_table_model(s, purchase_class, console)
        return
    table_options = [
        f"--{name.replace('_', '-')}"
        for name in ("period", "price", "observation_end")
        if s[name] is not None
    ]
    if table_options:
        raise InputError(
            f"{', '.join(table_options)}: for the subscription and BG/BB models (--model "
            f"sbg, bdw, hierarchical-sbg, bgbb), not --model {s['model']} (its summary ends "
            "where `clvmodels rfm --observation-end` ended it)"
        )
    check_choice("--spend", s["spend"], registry.spend_model_names())
    check_choice("--spend-customers", s["spend_customers"], SPEND_CUSTOMERS)
    covariate_settings = {
        "purchase": covariate_columns("--purchase-covariates", s["purchase_covariates"]),
        "dropout": covariate_columns("--dropout-covariates", s["dropout_covariates"]),
        "spend": covariate_columns("--spend-covariates", s["spend_covariates"]),
    }
    if s["covariates"] is not None and not any(covariate_settings.values()):
        raise InputError(
            "--covariates needs --purchase-covariates, --dropout-covariates or "
            "--spend-covariates to name the columns to use"
        )
    check_outputs([s["out"]], [s["summary"], s["config"], s["covariates"]])
    remove_leftovers(console, s["out"])
    customer_id, time_unit = summary_settings(s["summary"], s["customer_id"], s["time_unit"])
    s.update(customer_id=customer_id, time_unit=time_unit)  # recorded as used
    run = Run("fit", s)
    info = inspect_summary_file(s["summary"], customer_id=customer_id, time_unit=time_unit)
    if s["covariates"] is not None:
        covariate_settings["table"] = read_covariates_file(Path(s["covariates"]), customer_id)
    notes: dict = {}
    with warnings_recorded(run, console):
        purchase_model, spend_model = fit_models(
            info,
            s["model"],
            s["spend"],
            group=s["group"],
            sampling=sampling_settings(s),
            console=console,
            spend_customers=s["spend_customers"],
            notes=notes,
            covariates=covariate_settings,
        )
    run.add_input(s["summary"], "summary", n_customers=info.n_customers)
    if s["covariates"] is not None:
        run.add_input(s["covariates"], "covariates")
    run.record["spend_fit"] = notes["spend_fit"]
    save_fitted_models(
        s["out"],
        run,
        purchase_model,
        spend_model,
        {
            "fit_on": str(Path(s["summary"]).resolve()),
            "n_customers": info.n_customers,
            "customer_id": info.customer_id,
            "spend_fit": notes["spend_fit"],
        },
    )
    console.params_table(purchase_model, spend_model)
    console.info(f"saved the models to {s['out']}")


def _fit_time_varying_model(s: dict, console: Console) -> None:
    """``clvmodels fit --model pareto-tv``: the time-varying Pareto/NBD and Gamma-Gamma on a
    transactions file with a covariate table per period; the model directory keeps the
    estimates (the covariates are data: ``score`` takes them again)."""
    columns = {
        key: covariate_columns(f"--{key}-covariates", s[f"{key}_covariates"])
        for key in ("purchase", "dropout")
    }
    if s["time_varying_covariates"] is None or not any(columns.values()):
        raise InputError(
            f"--model {TIME_VARYING_MODEL} needs --time-varying-covariates FILE and the columns "
            "to use (--purchase-covariates, --dropout-covariates)"
        )
    if s["covariates"] is not None or s["spend_covariates"] or s["spend"] != "gamma-gamma":
        raise InputError(
            f"--model {TIME_VARYING_MODEL} is fit with Gamma-Gamma without covariates; "
            "--covariates, --spend-covariates and --spend are not used"
        )
    path = Path(s["summary"])
    check_outputs([s["out"]], [path, s["config"], s["time_varying_covariates"]])
    remove_leftovers(console, s["out"])
    run = Run("fit", s)
    with warnings_recorded(run, console):
        purchase_model, spend_model, summary = fit_time_varying(
            path, {**s, **{f"{k}_covariates": v for k, v in columns.items()}}, console
        )
    run.add_input(path, "transactions", n_customers=len(summary))
    run.add_input(s["time_varying_covariates"], "time-varying covariates")
    save_fitted_models(
        s["out"],
        run,
        purchase_model,
        spend_model,
        {
            "fit_on": str(path.resolve()),
            "n_customers": len(summary),
            "customer_id": s["customer_id"] or "customer_id",
        },
    )
    console.params_table(purchase_model, spend_model)
    console.info(f"saved the models to {s['out']}")


def _fit_table_model(s: dict, purchase_class: type, console: Console) -> None:
    """``clvmodels fit`` for the models that read their own customer table (subscriptions,
    BG/BB): build the table from the file, fit the model and the price, save both with the
    settings that rebuild the table (``clvmodels score`` reads them) and the manifest."""
    from clvmodels.cli.pipeline import table_kind

    if s["spend"] != "gamma-gamma" or s["spend_customers"] != "all":
        raise InputError(
            f"--model {s['model']} is valued at a fixed price per payment (--price AMOUNT or the "
            "file's price column); --spend and --spend-customers are for the RFM models"
        )
    if s["covariates"] or s["purchase_covariates"] or s["dropout_covariates"]:
        raise InputError(
            f"the command line fits --model {s['model']} without covariates (the library's "
            "estimators take them: clv.ShiftedBetaGeo(dropout_covariates=[...]))"
        )
    if s["time_unit"] is not None:
        raise InputError(
            f"--model {s['model']} counts whole periods: pass --period (D, W, M, Q or Y), "
            "not --time-unit"
        )
    check_outputs([s["out"]], [s["summary"], s["config"]])
    remove_leftovers(console, s["out"])
    run = Run("fit", s)
    path = Path(s["summary"])
    table, layout = customer_table(path, purchase_class, s)
    with warnings_recorded(run, console):
        purchase_model, spend_model = fit_table_models(
            table,
            s["model"],
            price=s["price"],
            group=s["group"],
            sampling=sampling_settings(s),
            console=console,
        )
    run.add_input(path, layout["layout"], n_customers=len(table))
    run.record["table"] = layout
    save_fitted_models(
        s["out"],
        run,
        purchase_model,
        spend_model,
        {
            "fit_on": str(path.resolve()),
            "n_customers": len(table),
            "customer_id": layout["customer_id"],
            "table": layout,
        },
    )
    what = "subscribers" if table_kind(purchase_class) == "subscriptions" else "customers"
    console.params_table(purchase_model)
    console.info(f"saved the models of {len(table):,} {what} to {s['out']}")


@app.command(
    epilog=(
        "Examples:\n\n"
        "  clvmodels score                       # CDNOW demo: fit, value, print the top 10\n\n"
        "  clvmodels score summary.parquet --model models/cdnow --horizon 12M "
        "--discount-rate 0.1 --margin 0.3 --interval 0.9 --out clv.parquet\n\n"
        "  clvmodels score tx.parquet --out clv.parquet   # transactions: summarise, fit, score"
    )
)
@handle_errors
def score(
    ctx: typer.Context,
    input: Annotated[
        Path | None,
        typer.Argument(
            help="Summary or transactions file (Parquet/CSV). Omit it for the CDNOW demo.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            help="Model directory from `clvmodels fit` (default: fit BG/NBD + "
            "Gamma-Gamma on the input).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="CLV file to write (.parquet or .csv).")
    ] = None,
    horizon: Annotated[str, typer.Option(help="Horizon: 52W, 12M, 365D, 3Y, ...")] = "12M",
    discount_rate: Annotated[float, typer.Option(help="Annual discount rate.")] = 0.10,
    margin: Annotated[float, typer.Option(help="Profit margin on spend.")] = 1.0,
    interval: Annotated[float, typer.Option(help="Interval probability (e.g. 0.9).")] = 0.9,
    kind: Annotated[
        str,
        typer.Option(
            help="predictive (what the customer will actually bring: parameter uncertainty, "
            "survival and purchase noise), expected (parameter uncertainty only) or point."
        ),
    ] = "predictive",
    period: Annotated[str, typer.Option(help="Cash-flow period (discounting step).")] = "M",
    n_draws: Annotated[
        int, typer.Option("--draws", help="Parameter draws for the intervals.")
    ] = 200,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    chunk_size: Annotated[
        int, typer.Option(help="Customers scored at a time (sets peak memory).")
    ] = 20_000,
    top: Annotated[int, typer.Option(help="Customers shown in the table.")] = 10,
    limit: Annotated[
        int | None,
        typer.Option(help="Score only the first N customers (whole chunks): a trial run."),
    ] = None,
    time_unit: Annotated[
        str | None,
        typer.Option(
            "--time-unit",
            help="Time unit: D, W, M, Q, Y (default: the unit the summary file records, else "
            "the --model's unit).",
        ),
    ] = None,
    observation_end: Annotated[
        str | None,
        typer.Option(
            help="Transactions input: end of observation (default: last date; demo: 1997-09-30)."
        ),
    ] = None,
    after_observation_end: AfterObservationEndOpt = "error",
    spend_customers: SpendCustomersOpt = "all",
    customer_id: SummaryCustomerIdOpt = None,
    datetime_col: DatetimeOpt = "date",
    datetime_format: DatetimeFormatOpt = None,
    monetary: MonetaryOpt = "amount",
    covariates: ScoreCovariatesFileOpt = None,
    time_varying_covariates: TimeVaryingCovariatesOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """Score customers: discounted CLV over a horizon with intervals, streamed in chunks.

    Without --model, BG/NBD and Gamma-Gamma are fit on the input first (--spend-customers
    applies to that fit)."""
    s = resolve_settings(ctx, dict(locals()), config, score)  # first: locals() are the options
    console = Console(s["quiet"])
    check_choice("--kind", s["kind"], ("predictive", "expected", "point"))
    check_choice("--spend-customers", s["spend_customers"], SPEND_CUSTOMERS)
    after_end_policy(s["after_observation_end"])
    check_valuation_settings(s)
    outputs = []
    if s["out"] is not None:
        check_output_parent(s["out"])
        outputs = [s["out"], manifest_path(s["out"])]
        check_outputs(
            outputs,
            [s["input"], s["model"], s["config"], s["covariates"], s["time_varying_covariates"]],
        )
    remove_leftovers(console, *outputs)
    run = Run("score", s)
    with (
        staged_outputs(outputs[:1]) as staging,
        tempfile.TemporaryDirectory(prefix=scratch_prefix()) as scratch,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        models = None
        if s["model"] is not None:
            from clvmodels.io import load_pipeline

            models = load_pipeline(s["model"])  # first: its unit is the default for summaries
            run.add_input(s["model"], "model")
        valuation = dict(
            horizon=s["horizon"],
            annual_discount_rate=s["discount_rate"],
            margin=s["margin"],
            interval=s["interval"],
            kind=s["kind"],
            period=s["period"],
        )
        if models is not None and not reads_rfm_summary(type(models.purchase)):
            result = _score_table_model(s, models, console, run, valuation)
        else:
            result = _score_summary(s, models, console, run, valuation, Path(scratch))
        console.warn(caught)
        run.add_warnings(caught)
        if s["out"] is not None:
            run.record["outputs"].append(
                {"path": str(s["out"]), "rows": result.n_customers, "columns": result.columns}
            )
            run.commit(staging, manifest_path(s["out"]), customer_equity=result.equity)
    console.top_table(result, s)
    if s["out"] is not None:
        console.info(f"wrote {result.n_customers:,} customers to {s['out']}")


def _score_table_model(s: dict, models, console: Console, run: Run, valuation: dict):
    """``clvmodels score`` with a subscription or BG/BB model: the customer table is rebuilt
    from the input file with the settings recorded at fit (columns, period; the observation end
    is --observation-end, else the latest date of the file) and valued in blocks."""
    if s["covariates"] is not None:
        raise InputError(f"--covariates is not used by --model {s['model']}")
    if s["input"] is None:
        raise InputError(
            f"the model in {s['model']} is a {type(models.purchase).__name__}: pass the "
            "subscriptions (or transactions) file to score"
        )
    recorded = dict(models.metadata.get("table") or {})
    if not recorded:
        raise InputError(
            f"{s['model']} does not record how its table was read (it was not written by "
            "`clvmodels fit`); score the table with clvmodels.lifetime_value"
        )
    if s["time_unit"] is not None:
        from clvmodels import units

        units.require_same_unit(recorded["period"], s["time_unit"], "--time-unit")
    settings = {
        **recorded,
        "customer_id": s["customer_id"] or recorded.get("customer_id"),
        "observation_end": s["observation_end"],
        "datetime_format": s["datetime_format"] or recorded.get("datetime_format"),
        "group": getattr(models.purchase, "group", None),
    }
    path = Path(s["input"])
    run.add_input(path, "input")
    table, layout = customer_table(path, type(models.purchase), settings)
    run.record["settings"].update(customer_id=layout["customer_id"], time_unit=layout["period"])
    run.record["table"] = layout
    run.record["fit_diagnostics"] = models_diagnostics(models.purchase, models.spend)
    progress, task = console.progress("scoring", len(table))
    with progress:
        return score_table(
            table,
            s["out"],
            models.purchase,
            models.spend,
            n_draws=s["n_draws"],
            random_seed=s["seed"],
            chunk_size=s["chunk_size"],
            top=s["top"],
            limit=s["limit"],
            progress=lambda done, total: progress.update(task, completed=done),
            output_metadata={"valuation": valuation},
            **valuation,
        )


def _score_summary(s: dict, models, console: Console, run: Run, valuation: dict, scratch: Path):
    """``clvmodels score`` on an RFM summary (or transactions summarised first), with the
    loaded models or BG/NBD + Gamma-Gamma fit on it."""
    from clvmodels.scoring import inspect_summary_file, score_file

    model_unit = models.time_unit if models is not None else None
    summary_path, customer_id, summary_unit = _score_input(s, scratch, console, run, model_unit)
    run.record["settings"].update(customer_id=customer_id, time_unit=summary_unit)
    info = inspect_summary_file(summary_path, customer_id=customer_id, time_unit=summary_unit)
    if models is not None:
        purchase_model, spend_model = models.purchase, models.spend
        if hasattr(purchase_model, "with_future_covariates"):
            purchase_model = _attach_time_varying_covariates(s, purchase_model, info, run)
        elif s["time_varying_covariates"] is not None:
            raise InputError(
                f"--time-varying-covariates is for a --model {TIME_VARYING_MODEL} directory"
            )
    else:
        notes: dict = {}
        purchase_model, spend_model = fit_models(
            info,
            "bgnbd",
            "gamma-gamma",
            console=console,
            spend_customers=s["spend_customers"],
            notes=notes,
        )
        run.record["spend_fit"] = notes["spend_fit"]
    run.record["fit_diagnostics"] = models_diagnostics(purchase_model, spend_model)
    covariate_table = None
    if s["covariates"] is not None:
        from clvmodels.scoring import model_columns

        wanted = model_columns(purchase_model, spend_model)
        static = [
            m
            for m in (purchase_model, spend_model)
            if getattr(m, "covariate_columns", ()) and not hasattr(m, "with_future_covariates")
        ]
        if not static:
            raise InputError(
                "--covariates is for models fit with static covariates (fit --covariates); "
                "these models score without them"
            )
        covariate_table = read_covariates_file(Path(s["covariates"]), info.customer_id)
        run.add_input(s["covariates"], "covariates")
        run.record["covariates"] = [c for c in wanted if c in covariate_table.columns]
    progress, task = console.progress("scoring", info.n_customers)
    with progress:
        return score_file(
            summary_path,
            s["out"],
            purchase_model,
            spend_model,
            chunk_size=s["chunk_size"],
            customer_id=info.customer_id,
            time_unit=info.time_unit,
            top=s["top"],
            progress=lambda done, total: progress.update(task, completed=done),
            n_draws=s["n_draws"],
            random_seed=s["seed"],
            limit=s["limit"],
            output_metadata={"valuation": valuation},
            covariates=covariate_table,
            **valuation,
        )


def _attach_time_varying_covariates(s: dict, model, info, run: Run):
    """The loaded time-varying Pareto/NBD with its covariates (``--time-varying-covariates``,
    from the customers' first purchases to the end of the horizon). The summary must end where
    the model's fit did: each customer is placed on the calendar from that date and ``T``."""
    import pandas as pd

    from clvmodels.scoring import connect, describe_file

    if s["time_varying_covariates"] is None:
        raise InputError(
            f"the model in {s['model']} is a time-varying Pareto/NBD: pass "
            "--time-varying-covariates FILE (its covariates per period, to the end of the horizon)"
        )
    recorded = info.metadata.get("observation_end")
    if recorded is None or pd.Timestamp(recorded) != pd.Timestamp(model.observation_end_):
        raise InputError(
            f"{info.path.name} ends on {recorded or 'an unrecorded date'} but the time-varying "
            f"model was fit on data ending {pd.Timestamp(model.observation_end_).date()}: score "
            "the transactions (or the `clvmodels rfm` Parquet summary) it was fit on, with "
            "--observation-end at that date"
        )
    con = connect()
    try:
        types = {row[0]: str(row[1]).upper() for row in describe_file(con, info.path, info.format)}
    finally:
        con.close()
    as_text = "CHAR" in types.get(info.customer_id, "VARCHAR")
    table = read_time_varying_covariates(Path(s["time_varying_covariates"]), id_as_text=as_text)
    run.add_input(s["time_varying_covariates"], "time-varying covariates")
    with in_cli_words():
        return model.with_future_covariates(table)


def _score_input(
    s: dict, scratch: Path, console: Console, run: Run, model_unit: str | None
) -> tuple[Path, str, str | None]:
    """The summary file to score (summarising transactions first when needed), its customer id
    column and its time unit.

    A summary file's unit: ``--time-unit``, else the one the file records, else the model's
    (a unit the file records that differs from ``--time-unit`` or from the model's is an
    error, never a rescale). Transactions are summarised in ``--time-unit``, else the model's
    unit, else weeks."""
    default_unit = s["time_unit"] or model_unit or "W"
    if s["input"] is None:
        from clvmodels import datasets
        from clvmodels.data import rfm_summary
        from clvmodels.scoring import write_summary_file

        tx = datasets.load_cdnow_transactions("sample")
        end = s["observation_end"] or datasets.CDNOW_CALIBRATION_END
        summary = rfm_summary(
            tx,
            customer_id="customer_id",
            datetime="date",
            monetary="amount",
            observation_end=end,
            time_unit=default_unit,
            after_observation_end="exclude",
        )
        path = write_summary_file(summary, scratch / "summary.parquet")
        run.add_input(str(datasets.cdnow_path("sample")), "transactions (CDNOW sample)")
        n_after = int(summary.attrs.get("n_transactions_after_observation_end", 0))
        later = f"; {n_after:,} later ones left out (the holdout)" if n_after else ""
        console.info(
            f"CDNOW sample: {len(tx) - n_after:,} transactions of {len(summary):,} customers "
            f"up to {end}{later}; unit {summary.attrs.get('time_unit', 'W')}"
        )
        return path, "customer_id", summary.attrs.get("time_unit", default_unit)
    path = Path(s["input"])
    run.add_input(path, "input")
    if is_summary_file(path, s["datetime_col"]):
        customer_id, unit = summary_settings(path, s["customer_id"], s["time_unit"], model_unit)
        return path, customer_id, unit
    out, summary = summarize_transactions_file(
        path,
        scratch / "summary.parquet",
        customer_id=s["customer_id"] or "customer_id",
        datetime_col=s["datetime_col"],
        monetary=s["monetary"],
        time_unit=default_unit,
        observation_end=s["observation_end"],
        datetime_format=s["datetime_format"],
        after_observation_end=after_end_policy(s["after_observation_end"]),
    )
    n_after = int(summary.attrs.get("n_transactions_after_observation_end", 0))
    later = f" ({n_after:,} transactions after the observation end left out)" if n_after else ""
    console.info(f"summarised transactions: {len(summary):,} customers{later}")
    run.record["summary"] = {"n_transactions_after_observation_end": n_after}
    return out, summary.attrs["customer_id"], summary.attrs.get("time_unit", default_unit)


@app.command(
    epilog=(
        "Examples:\n\n"
        "  clvmodels evaluate                  # CDNOW: calibration to 1997-09-30, holdout "
        "to 1998-06-30\n\n"
        "  clvmodels evaluate tx.parquet --calibration-end 2021-06-30 --observation-end "
        "2021-12-31 --models bgnbd,pareto --out metrics.csv"
    )
)
@handle_errors
def evaluate(
    ctx: typer.Context,
    transactions: Annotated[
        Path | None,
        typer.Argument(
            help="Transactions file (Parquet/CSV). Omit it for the CDNOW sample.",
            show_default=False,
        ),
    ] = None,
    calibration_end: Annotated[
        str | None, typer.Option(help="End of calibration (fit) period.")
    ] = None,
    observation_end: Annotated[
        str | None, typer.Option(help="End of the holdout period (default: last date).")
    ] = None,
    models: Annotated[
        str,
        typer.Option(help=f"Comma-separated purchase models: {', '.join(_rfm_model_names())}."),
    ] = "bgnbd,pareto,mbgnbd",
    time_unit: Annotated[str, typer.Option(help="Time unit: D, W, M, Q or Y.")] = "W",
    n_draws: Annotated[
        int, typer.Option("--draws", help="Parameter draws for the interval metrics.")
    ] = 100,
    n_samples: Annotated[
        int, typer.Option("--samples", help="Predictive samples per customer (coverage).")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Metrics table to write (.csv, .parquet or .json)."),
    ] = None,
    after_observation_end: AfterObservationEndOpt = "error",
    spend_customers: SpendCustomersOpt = "all",
    customer_id: CustomerIdOpt = "customer_id",
    datetime_col: DatetimeOpt = "date",
    datetime_format: DatetimeFormatOpt = None,
    monetary: MonetaryOpt = "amount",
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """Holdout accuracy: fit on the calibration period, compare predictions with the holdout."""
    s = resolve_settings(ctx, dict(locals()), config, evaluate)  # first: locals() are the options
    choices = _rfm_model_names()
    console = Console(s["quiet"])
    names = [m.strip() for m in s["models"].split(",") if m.strip()]
    if not names:
        raise InputError(f"--models needs at least one of {', '.join(choices)}")
    for name in names:
        check_choice("--models", name, registry.maximum_likelihood_purchase_names())
        if name not in choices:
            raise InputError(
                f"--models {name}: evaluate compares models of the RFM summary (frequency, "
                f"recency, T) on a holdout; {name} reads a table of its own. Choose among "
                f"{', '.join(choices)} (subscription holdouts: "
                "clvmodels.subscriptions.evaluate_payments; BG/BB: clv.discrete_summary(..., "
                "calibration_end=...) with clvmodels.evaluation.evaluate)"
            )
    check_choice("--spend-customers", s["spend_customers"], SPEND_CUSTOMERS)
    after = after_end_policy(s["after_observation_end"])
    outputs = []
    if s["out"] is not None:
        check_output_parent(s["out"])
        if Path(s["out"]).suffix.lower() not in (".csv", ".parquet", ".json"):
            raise InputError(f"--out {s['out']}: use a .csv, .parquet or .json file name")
        outputs = [s["out"], manifest_path(s["out"])]
        check_outputs(outputs, [s["transactions"], s["config"]])
    remove_leftovers(console, *outputs)
    run = Run("evaluate", s)
    import clvmodels as clv
    from clvmodels.evaluation import compare_models

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if s["transactions"] is None:
            from clvmodels import datasets

            source = datasets.load_cdnow_transactions("sample")
            calibration_end = s["calibration_end"] or datasets.CDNOW_CALIBRATION_END
            observation_end = s["observation_end"] or datasets.CDNOW_OBSERVATION_END
            run.add_input(str(datasets.cdnow_path("sample")), "transactions (CDNOW sample)")
        else:
            if s["calibration_end"] is None:
                raise InputError("--calibration-end is required with a transactions file")
            source = str(s["transactions"])
            calibration_end, observation_end = s["calibration_end"], s["observation_end"]
            if not Path(source).exists():
                raise FileNotFoundError(f"input file {source} does not exist")
            run.add_input(Path(source), "transactions")
        with in_cli_words():
            ch = clv.calibration_holdout_summary(
                source,
                customer_id=s["customer_id"],
                datetime=s["datetime_col"],
                monetary=s["monetary"],
                calibration_end=calibration_end,
                observation_end=observation_end,
                time_unit=s["time_unit"],
                datetime_format=s["datetime_format"],
                after_observation_end=after,
            )
        calibration = ch[["frequency", "recency", "T", "monetary_value"]]
        repeat = calibration["frequency"] > 0
        not_positive = repeat & ~(calibration["monetary_value"] > 0)
        if not_positive.any() and s["spend_customers"] == "all":
            raise not_positive_spend_error(
                int(not_positive.sum()), int(repeat.sum()), "the calibration period"
            )
        run.record["spend_fit"] = {
            "customers": s["spend_customers"],
            "n_repeat_customers": int(repeat.sum()),
            "n_fitted": int((repeat & ~not_positive).sum()),
            "n_left_out": int(not_positive.sum()),
        }
        spend_model = registry.estimator_class("spend", "gamma-gamma")().fit(
            calibration[~not_positive]
        )
        fitted = {}
        for name in names:
            estimator = registry.estimator_class("purchase", name)
            # with the extra columns its likelihood reads (a missing one: the estimator's error)
            columns = [c for c in fit_columns(estimator, tuple(calibration)) if c in ch.columns]
            fitted[name] = estimator().fit(ch[columns])
        table = compare_models(
            {name: (model, spend_model) for name, model in fitted.items()},
            ch,
            n_draws=s["n_draws"],
            n_samples=s["n_samples"],
            seed=s["seed"],
        )
    console.warn(caught)
    run.add_warnings(caught)
    run.record["fit_diagnostics"] = {
        **{name: fit_diagnostics(m) for name, m in fitted.items()},
        "spend": fit_diagnostics(spend_model),
    }
    run.record["split"] = {
        "calibration_end": str(calibration_end),
        "observation_end": str(ch.attrs.get("observation_end", observation_end)),
        "n_customers": len(ch),
    }
    console.metrics_table(table, len(ch), calibration_end, out=s["out"])
    if s["out"] is not None:
        from clvmodels.io import atomic_write_text
        from clvmodels.scoring import atomic_output

        out = Path(s["out"])
        suffix = out.suffix.lower()
        with staged_outputs([out]) as staging:
            if suffix == ".json":
                atomic_write_text(out, table.to_json(orient="index", indent=2))
            else:
                with atomic_output(out) as tmp:
                    if suffix == ".csv":
                        table.to_csv(tmp)
                    else:
                        table.to_parquet(tmp)
            run.record["outputs"].append({"path": str(out), "rows": len(table)})
            metrics = json.loads(table.to_json(orient="index"))
            run.commit(staging, manifest_path(out), metrics=metrics)
        console.info(f"wrote the metrics of {len(table)} models to {out}")


@app.command(
    epilog=(
        "Examples:\n\n"
        "  clvmodels report clv.parquet --out report.html\n\n"
        "  clvmodels report clv.parquet --out report.md      # Markdown + PNG files beside it"
    )
)
@handle_errors
def report(
    ctx: typer.Context,
    clv_file: Annotated[Path, typer.Argument(help="Output of `clvmodels score` (Parquet/CSV).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Report to write: .html, or .md (+ PNG files).")
    ],
    top: Annotated[int, typer.Option(help="Customers listed in the top table.")] = 20,
    currency: Annotated[
        str, typer.Option(help="Currency shown with the amounts: $, €, EUR, ... ('' for none).")
    ] = "$",
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """An HTML or Markdown report of a CLV file: totals, deciles, top customers and plots."""
    s = resolve_settings(ctx, dict(locals()), config, report)
    console = Console(s["quiet"])
    check_output_parent(s["out"])
    out = Path(s["out"])
    folders = [figures_folder(out)] if out.suffix.lower() == ".md" else []
    outputs = [out, manifest_path(out), *folders]
    check_outputs(outputs, [s["clv_file"], manifest_path(s["clv_file"]), s["config"]])
    remove_leftovers(console, out, manifest_path(out), folders=tuple(folders))
    run = Run("report", s)
    run.add_input(s["clv_file"], "clv")
    with (
        staged_outputs([out], folders) as staging,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        info = write_report(s["clv_file"], out, top=s["top"], currency=s["currency"])
        console.warn(caught)
        run.add_warnings(caught)
        run.record["outputs"].append({"path": str(out), **info})
        run.commit(staging, manifest_path(out))
    console.info(f"wrote the report of {info['n_customers']:,} customers to {s['out']}")


for _info in app.registered_commands:  # every command's help: no "<bool>" after a flag
    if _info.cls is None or _info.cls is TyperCommand:
        _info.cls = Command
