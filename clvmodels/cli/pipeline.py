"""Pipeline steps on files shared by the commands: read a file's columns, summarise
transactions, fit the models chosen by their CLI names, describe a fit.

No model math here: the models are the estimator classes of :mod:`clvmodels.registry`, fitted
through their public ``fit``; this module only reads the files (DuckDB, out of core) and hands
the estimators the rows they need.
"""

from __future__ import annotations

import inspect
import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clvmodels import registry
from clvmodels.cli.console import Console
from clvmodels.cli.manifest import Run
from clvmodels.cli.options import SPEND_CUSTOMERS, check_choice, in_cli_words
from clvmodels.errors import InputError

PURCHASE_COLUMNS = ("frequency", "recency", "T")


def remove_leftovers(console: Console | None, *targets: Path, folders: tuple = ()) -> None:
    """Remove what killed runs left behind: the temporaries of ``targets`` (and of any file in
    ``folders``) whose process is gone, and stale scratch folders; say so on stderr."""
    from clvmodels.io import remove_stale_scratch, remove_stale_temporaries

    done = remove_stale_scratch()
    for target in targets:
        done += remove_stale_temporaries(target)
    for folder in folders:
        done += remove_stale_temporaries(folder, any_target=True)
    if console is not None:
        for line in done:
            console.info(line)


def is_summary_file(path: Path, datetime_col: str) -> bool:
    """A summary has frequency/recency/T and no transaction date column; else transactions."""
    from clvmodels.scoring import file_format

    columns = set(file_columns(path, file_format(path)))
    return bool(columns & {"frequency", "recency", "T"}) and datetime_col not in columns


def file_columns(path: Path, fmt: str) -> list[str]:
    """The column names of a Parquet or CSV file; InputError if it is missing or unreadable."""
    from clvmodels.scoring import check_input_file, connect, describe_file

    check_input_file(path)
    con = connect()
    try:
        rows = describe_file(con, path, fmt)
    finally:
        con.close()
    return [r[0] for r in rows]


def summarize_transactions_file(
    path: Path,
    out: Path,
    *,
    customer_id: str,
    datetime_col: str,
    monetary: str | None,
    time_unit: str,
    observation_end: str | None,
    calibration_end: str | None = None,
    datetime_format: str | None = None,
    after_observation_end: str = "raise",
):
    """Summarise a transactions file (DuckDB, out of core) into the summary file ``out``.

    The summary file records its time unit and the name of its customer id column (Parquet
    metadata; the command's manifest for CSV), so later commands need neither option again
    (:func:`recorded_settings`). Errors of the data layer name the CLI's options.
    """
    from clvmodels import data
    from clvmodels.scoring import check_not_input, file_format, write_summary_file

    check_not_input(out, path)  # never overwrite the transactions with their summary
    file_columns(path, file_format(path))  # missing, empty or unreadable: a clear error first

    kwargs = dict(
        customer_id=customer_id,
        datetime=datetime_col,
        monetary=monetary,
        time_unit=time_unit,
        datetime_format=datetime_format,
        after_observation_end=after_observation_end,
    )
    with in_cli_words():
        if calibration_end is not None:
            summary = data.calibration_holdout_summary(
                str(path),
                calibration_end=calibration_end,
                observation_end=observation_end,
                **kwargs,
            )
        else:
            summary = data.rfm_summary(str(path), observation_end=observation_end, **kwargs)
    # the id column of the file: write_summary_file names it after the index
    summary.attrs["customer_id"] = str(summary.index.name or "customer_id")
    return write_summary_file(summary, out), summary


def recorded_settings(path: Path) -> dict[str, str]:
    """What a summary file records about itself: ``time_unit`` and ``customer_id`` (the name of
    its id column), each only when recorded.

    Read from, in order: the Parquet metadata ``clvmodels rfm`` writes; a pandas-written
    Parquet file's ``DataFrame.attrs`` (``time_unit``) and index (the id column); the manifest
    ``clvmodels rfm`` wrote beside the file (CSV summaries), if it still describes the file.
    An unreadable file records nothing here: reading it later gives the error.
    """
    from clvmodels.cli.manifest import ManifestMismatch, manifest_path, verify_manifest
    from clvmodels.scoring import PARQUET_METADATA_KEY, file_format, json_object

    path = Path(path)
    out: dict[str, str] = {}

    def take(source: dict[str, Any]) -> None:
        for key in ("time_unit", "customer_id"):
            value = source.get(key)
            if isinstance(value, str) and value:
                out.setdefault(key, value)

    if not path.is_file():
        return out
    try:
        fmt = file_format(path)
    except InputError:
        return out
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            meta = pq.read_schema(path).metadata or {}
        except (pa.ArrowException, OSError):
            meta = {}
        take(json_object(meta.get(PARQUET_METADATA_KEY)))
        take({"time_unit": json_object(meta.get(b"PANDAS_ATTRS")).get("time_unit")})
        index = json_object(meta.get(b"pandas")).get("index_columns") or []
        if len(index) == 1 and isinstance(index[0], str) and not index[0].startswith("__"):
            take({"customer_id": index[0]})
    if manifest_path(path).is_file():
        try:
            manifest = verify_manifest(path)
        except ManifestMismatch:
            manifest = None
        if manifest and manifest.get("command") == "rfm":
            summary = manifest.get("summary") or {}
            take({"customer_id": summary.get("customer_id")})
            take(summary.get("attrs") or {})
            take(manifest.get("settings") or {})
    return out


def summary_settings(
    path: Path, customer_id: str | None, time_unit: str | None, fallback_unit: str | None = None
) -> tuple[str, str | None]:
    """The id column and time unit to read a summary file with: the options when given, else
    what the file records (:func:`recorded_settings`), else ``customer_id`` and
    ``fallback_unit`` (a loaded model's unit). A ``time_unit`` option that differs from the
    unit the file records is an InputError: durations are never rescaled silently."""
    from clvmodels import units

    recorded = recorded_settings(path)
    cid = customer_id or recorded.get("customer_id") or "customer_id"
    unit = time_unit or recorded.get("time_unit") or fallback_unit
    if time_unit is not None and "time_unit" in recorded:
        given, stored = units.normalize_unit(time_unit), units.normalize_unit(recorded["time_unit"])
        if given != stored:
            raise InputError(
                f"{Path(path).name} records time unit {stored!r} but {given!r} was given "
                "(--time-unit); durations are never rescaled silently: drop the option or "
                "rebuild the summary"
            )
    return cid, unit


def is_grouped(estimator: type) -> bool:
    """Whether an estimator class is a grouped (hierarchical, Bayesian) model: it takes a
    ``group`` column and is fitted on every customer rather than on the distinct histories."""
    return "group" in inspect.signature(estimator).parameters


def fit_columns(estimator: type, base: tuple[str, ...]) -> tuple[str, ...]:
    """The summary columns a maximum-likelihood estimator is fitted on: ``base`` plus the extra
    columns its family's likelihood reads (e.g. ``litt`` for the CNBD-k models)."""
    family = getattr(estimator, "family_class", None)
    extra = tuple(c for c in getattr(family, "fit_columns", ()) if c not in base)
    return base + extra


def not_positive_spend_error(n_not_positive: int, n_repeat: int, where: str) -> InputError:
    """The error for repeat customers whose mean spend is zero or less, with the CLI's fix."""
    return InputError(
        f"{n_not_positive:,} of the {n_repeat:,} customers with repeat purchases in {where} have "
        "a mean spend (monetary_value) of zero or less (zero-value orders or returns?); the "
        "spend model needs positive spends. Fix: pass --spend-customers positive to fit the "
        "spend model on the others (every customer is still scored), or check the amount column"
    )


def read_covariates_file(path: Path, customer_id: str):
    """A covariate file (CSV/Parquet) as a DataFrame indexed by ``customer_id``."""
    import pandas as pd

    from clvmodels.scoring import check_input_file, file_format

    check_input_file(path)
    frame = pd.read_parquet(path) if file_format(path) == "parquet" else pd.read_csv(path)
    fix = "name it as in the summary (or pass --customer-id)"
    return with_text_customer_ids(frame, path, customer_id, fix).set_index(customer_id)


def with_text_customer_ids(frame, path: Path, customer_id: str, fix: str):
    """``frame`` (read from ``path``) with its ``customer_id`` column as text; InputError with
    ``fix`` when the file has no such column."""
    if customer_id not in frame.columns:
        raise InputError(
            f"{path.name} has no customer id column {customer_id!r}; found "
            + ", ".join(map(str, frame.columns))
            + f". Fix: {fix}"
        )
    frame[customer_id] = frame[customer_id].astype(str)
    return frame


def covariate_frame(con, source: str, info, columns, where: str, covariates: dict[str, Any]):
    """Every customer of the summary (``where``) with ``columns`` and the covariates: joined
    from the covariate table when one is given, else read from the summary file."""
    from clvmodels.covariates import join_covariates

    needed = list(
        dict.fromkeys(
            c for key in ("purchase", "dropout", "spend") for c in covariates.get(key) or ()
        )
    )
    table = covariates.get("table")
    from_file = [] if table is not None else needed
    missing = [c for c in from_file if c not in info.columns]
    if missing:
        raise InputError(
            f"{info.path.name} has no covariate column(s) {missing}. Fix: pass --covariates "
            "FILE with these columns (and the customer id)"
        )
    cid = '"' + info.customer_id.replace('"', '""') + '"'
    select = ", ".join('"' + c.replace('"', '""') + '"' for c in [*columns, *from_file])
    frame = con.sql(f"SELECT CAST({cid} AS VARCHAR) AS {cid}, {select} FROM {source} {where}")
    frame = frame.df().set_index(info.customer_id)
    frame.index.name = "customer_id"
    frame.attrs["time_unit"] = info.time_unit
    if table is not None:
        frame = join_covariates(frame, table, needed)
    return frame


def fit_models(
    info,
    purchase: str,
    spend: str,
    *,
    group: str | None = None,
    sampling: dict[str, Any] | None = None,
    console: Console | None = None,
    spend_customers: str = "all",
    notes: dict[str, Any] | None = None,
    covariates: dict[str, Any] | None = None,
):
    """Fit a purchase and a spend model (CLI names of :mod:`clvmodels.registry`) on a summary file.

    Maximum-likelihood models are fit on the distinct rows of the columns they read, with their
    counts, read with DuckDB, so fitting needs memory for the distinct rows only, not for every
    customer. Grouped models (``--group``) are fit on every customer.

    ``spend_customers``: ``"all"`` fits the spend model on every repeat customer, and a repeat
    customer with a mean spend of zero or less (zero-value orders, returns) is an InputError
    before anything is fit; ``"positive"`` leaves those customers out of the spend fit (they
    are still scored). ``notes``, when given, receives ``notes["spend_fit"]``: the customers
    the spend model was fit on and how many were left out.

    ``covariates``: static covariates, ``{"table": DataFrame indexed by customer id or None,
    "purchase": [...], "dropout": [...], "spend": [...]}``; a model with covariates is fit on
    every customer's row joined with them (it compresses the rows itself).
    """
    import numpy as np

    from clvmodels.scoring import connect, duckdb_source

    check_choice("--spend-customers", spend_customers, SPEND_CUSTOMERS)
    purchase_cls = registry.estimator_class("purchase", purchase)
    spend_cls = registry.estimator_class("spend", spend)
    grouped_purchase, grouped_spend = is_grouped(purchase_cls), is_grouped(spend_cls)
    covariates = covariates or {}
    purchase_settings = {
        f"{k}_covariates": covariates[k] for k in ("purchase", "dropout") if covariates.get(k)
    }
    spend_settings = {"spend_covariates": covariates["spend"]} if covariates.get("spend") else {}
    if (purchase_settings and grouped_purchase) or (spend_settings and grouped_spend):
        raise InputError(
            "covariates (--purchase-covariates, --dropout-covariates, --spend-covariates) work "
            "with the maximum-likelihood models, not --model hierarchical"
        )
    purchase_cols = fit_columns(purchase_cls, PURCHASE_COLUMNS)
    spend_cols = fit_columns(spend_cls, (*PURCHASE_COLUMNS, "monetary_value"))
    missing = [c for c in dict.fromkeys(purchase_cols + spend_cols) if c not in info.columns]
    if missing:
        raise InputError(
            f"{info.path.name} is missing column(s) {missing} that --model {purchase} and "
            f"--spend {spend} read; found " + ", ".join(info.columns)
        )

    def quoted(columns) -> str:
        return ", ".join('"' + c.replace('"', '""') + '"' for c in columns)

    source = duckdb_source(info.path, info.format)
    not_positive = "frequency > 0 AND NOT coalesce(monetary_value > 0, false)"
    con = connect()
    try:
        n_repeat, n_not_positive = con.execute(
            f"SELECT count(*) FILTER (WHERE frequency > 0), count(*) FILTER (WHERE {not_positive}) "
            f"FROM {source}"
        ).fetchall()[0]
        if n_not_positive and spend_customers == "all":
            raise not_positive_spend_error(n_not_positive, n_repeat, info.path.name)
        if grouped_purchase or grouped_spend:
            if group is None:
                raise InputError("--model hierarchical needs --group COLUMN (e.g. channel)")
            if group not in info.columns:
                raise InputError(
                    f"group column {group!r} is not in {info.path.name}; found "
                    + ", ".join(info.columns)
                )
            cid = '"' + info.customer_id.replace('"', '""') + '"'
            full = con.sql(
                f'SELECT {cid}, frequency, recency, "T", monetary_value, "{group}" FROM {source}'
            ).df()
            full = full.set_index(info.customer_id)
            full.index.name = "customer_id"
            full.attrs["time_unit"] = info.time_unit
        rows = con.sql(
            f"SELECT {quoted(purchase_cols)}, count(*) AS n FROM {source} GROUP BY ALL"
        ).df()
        keep = "frequency > 0" + (
            " AND monetary_value > 0" if spend_customers == "positive" else ""
        )
        repeat = con.sql(
            f"SELECT {quoted(spend_cols)}, count(*) AS n FROM {source} WHERE {keep} GROUP BY ALL"
        ).df()
        with in_cli_words():
            if purchase_settings:
                purchase_full = covariate_frame(con, source, info, purchase_cols, "", covariates)
            if spend_settings:
                spend_full = covariate_frame(
                    con, source, info, spend_cols, f"WHERE {keep}", covariates
                )
    finally:
        con.close()
    n_spend = int(n_repeat) - (int(n_not_positive) if spend_customers == "positive" else 0)
    spend_fit = {
        "customers": spend_customers,
        "n_repeat_customers": int(n_repeat),
        "n_fitted": n_spend,
        "n_left_out": int(n_repeat) - n_spend,
    }
    if notes is not None:
        notes["spend_fit"] = spend_fit
    if console is not None and spend_fit["n_left_out"]:
        console.info(
            f"spend model: fit on the {n_spend:,} repeat customers with a positive mean spend; "
            f"left out {spend_fit['n_left_out']:,} with zero or less (--spend-customers positive)"
        )
    for frame in (rows, repeat):
        frame.attrs["time_unit"] = info.time_unit
    if console is not None:
        where = (
            f"{int(rows['n'].sum()):,} customers in groups of {group!r} (sampling the posterior)"
            if grouped_purchase
            else f"{len(rows):,} distinct histories of {int(rows['n'].sum()):,} customers"
        )
        console.info(f"fitting {purchase_cls.__name__} on {where}")
    if grouped_purchase:
        purchase_model = purchase_cls(group=group).fit(full, **(sampling or {}))
    elif purchase_settings:
        purchase_model = purchase_cls(**purchase_settings).fit(purchase_full)
    else:
        purchase_model = purchase_cls().fit(
            rows[list(purchase_cols)], weights=rows["n"].to_numpy(np.float64)
        )
    if grouped_spend:
        spend_rows = full
        if spend_customers == "positive":
            spend_rows = full[~((full["frequency"] > 0) & ~(full["monetary_value"] > 0))]
        spend_model = spend_cls(group=group).fit(spend_rows, **(sampling or {}))
    else:
        if len(repeat) == 0:
            which = " and a positive mean spend" if spend_customers == "positive" else ""
            raise InputError(
                f"{info.path.name} has no customers with repeat purchases (frequency > 0){which}:"
                " the spend model cannot be fit"
            )
        if spend_settings:
            spend_model = spend_cls(**spend_settings).fit(spend_full)
        else:
            spend_model = spend_cls().fit(
                repeat[list(spend_cols)], weights=repeat["n"].to_numpy(np.float64)
            )
        if spend_model.time_unit_ is None:
            spend_model.time_unit_ = info.time_unit
    return purchase_model, spend_model


def fit_diagnostics(model) -> dict[str, Any]:
    """Parameters and convergence of a fitted model, JSON-able."""
    out: dict[str, Any] = {"class": type(model).__name__}
    params = getattr(model, "params_", None)
    if params is not None:
        out["params"] = {str(k): float(v) for k, v in params.items()}
    for name in ("standard_errors_",):
        value = getattr(model, name, None)
        if value is not None:
            out["standard_errors"] = {str(k): float(v) for k, v in value.items()}
    for name in ("log_likelihood_", "converged_", "optimizer_message_", "n_customers_"):
        value = getattr(model, name, None)
        if value is not None:
            out[name.rstrip("_")] = value if not hasattr(value, "item") else value.item()
    diag = getattr(model, "diagnostics_", None)
    if diag is not None and hasattr(diag, "to_dict"):
        try:
            out["diagnostics"] = json.loads(diag.to_json(orient="index", default_handler=str))
        except (TypeError, ValueError):  # pragma: no cover - exotic index labels
            out["diagnostics"] = str(diag)
    return out


def models_diagnostics(purchase_model, spend_model) -> dict[str, dict[str, Any]]:
    """:func:`fit_diagnostics` of a purchase and a spend model, as the manifests record them."""
    return {"purchase": fit_diagnostics(purchase_model), "spend": fit_diagnostics(spend_model)}


def sampling_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The posterior-sampling arguments of a hierarchical fit from the ``fit`` options."""
    return {
        "draws": settings["draws"],
        "tune": settings["tune"],
        "chains": settings["chains"],
        "random_seed": settings["seed"],
        "progressbar": not settings["quiet"],
    }


@contextmanager
def warnings_recorded(run: Run, console: Console):
    """Catch every warning of the block, then show it on the console and keep it in the
    manifest of ``run``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    console.warn(caught)
    run.add_warnings(caught)


def save_fitted_models(
    out: Path, run: Run, purchase_model, spend_model, metadata: dict[str, Any]
) -> None:
    """Save the fitted models to the directory ``out`` with ``metadata`` and the manifest of
    ``run`` (with the models' diagnostics), written inside the directory before it takes its
    place."""
    from clvmodels.io import save_pipeline

    diagnostics = models_diagnostics(purchase_model, spend_model)
    run.record["outputs"].append({"path": str(out)})
    save_pipeline(
        out,
        purchase_model,
        spend_model,
        metadata=metadata,
        before_commit=lambda tmp: run.write_into(tmp, out, fit_diagnostics=diagnostics),
    )


# --------------------------------------------------------------------------------------------
# models on their own customer tables: subscriptions (sBG, BdW, hierarchical sBG) and BG/BB
# --------------------------------------------------------------------------------------------
SUBSCRIPTION_COLUMNS = ("tenure", "churned")
DISCRETE_COLUMNS = ("frequency", "recency", "n_periods")


def reads_rfm_summary(estimator: type) -> bool:
    """Whether a purchase model reads the RFM summary (frequency, recency, T) that ``clvmodels
    rfm`` writes, judged by its family's ``customer_columns``; the subscription and BG/BB
    models read tables of their own."""
    family = getattr(estimator, "family_class", None)
    columns = getattr(family, "customer_columns", getattr(family, "fit_columns", ()))
    return set(PURCHASE_COLUMNS) <= set(columns)


def table_kind(estimator: type) -> str:
    """``"subscriptions"`` (tenure, churned) or ``"discrete"`` (frequency, recency,
    n_periods): the customer table a non-RFM purchase model reads."""
    columns = tuple(estimator.family_class.customer_columns)
    if columns == SUBSCRIPTION_COLUMNS:
        return "subscriptions"
    if columns == DISCRETE_COLUMNS:
        return "discrete"
    raise InputError(f"{estimator.__name__} reads columns {columns}, which the CLI cannot build")


def default_period(kind: str) -> str:
    """Months for subscriptions (billing periods), years for BG/BB (opportunities)."""
    return "M" if kind == "subscriptions" else "Y"


def read_frame(path: Path, customer_id: str):
    """A CSV/Parquet file as a DataFrame with the customer ids as text."""
    import pandas as pd

    from clvmodels.scoring import check_input_file, file_format

    check_input_file(path)
    if file_format(path) == "parquet":
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, dtype={customer_id: str}, keep_default_na=True)
    return with_text_customer_ids(frame, path, customer_id, "pass --customer-id COLUMN")


def customer_table(path: Path, estimator: type, settings: dict[str, Any]):
    """The customer table of a subscription or BG/BB model from a file, and how it was read.

    ``settings``: ``customer_id``, ``period``, ``observation_end``, ``start``, ``end``,
    ``datetime_col``, ``datetime_format``, ``group`` (None where not given). The file is either
    ready (the family's ``customer_columns``: tenure and churned, or frequency, recency and
    n_periods) or raw: subscriptions (customer id, start, end; an empty end is active) built
    with :func:`clvmodels.subscriptions.subscription_table`, or transactions summarised with
    :func:`clvmodels.discrete_summary`. Optional ``price``, ``cohort`` and group columns are
    kept. The table is checked with the family's ``validate_summary``.

    Returns ``(table, layout)`` with ``layout`` the settings that rebuild the table from a file
    of the same layout (recorded in the model directory for ``clvmodels score``).
    """
    from clvmodels import units

    kind = table_kind(estimator)
    family = estimator.family_class
    customer_id = settings.get("customer_id") or "customer_id"
    period = units.normalize_unit(settings.get("period") or default_period(kind))
    frame = read_frame(path, customer_id)
    ready = set(family.customer_columns) <= set(frame.columns)
    group = settings.get("group")
    extra = [c for c in ("price", "cohort", group) if c and c in frame.columns]
    extra = list(dict.fromkeys(extra))
    layout: dict[str, Any] = {"kind": kind, "customer_id": customer_id, "period": period}
    with in_cli_words():
        if ready:
            table = frame.set_index(customer_id)
            table.attrs["time_unit"] = period
            layout["layout"] = "table"
        elif kind == "subscriptions":
            start, end = settings.get("start") or "start", settings.get("end") or "end"
            if start not in frame.columns:
                raise InputError(
                    f"{path.name} has neither the columns tenure, churned of a subscription "
                    f"table nor a start date column {start!r}; found "
                    + ", ".join(map(str, frame.columns))
                    + ". Fix: one row per subscription with customer_id, start, end (empty "
                    "while active), or name the columns with --start/--end"
                )
            table = subscription_table_of(frame, customer_id, start, end, settings, period)
            keep = [c for c in extra if c != "cohort"]
            layout.update(layout="subscriptions", start=start, end=end)
            if keep:
                attrs = dict(table.attrs)
                table = table.join(frame.set_index(customer_id)[keep])
                table.attrs.update(attrs)
        else:
            datetime_col = settings.get("datetime_col") or "date"
            table = discrete_summary_of(frame, customer_id, datetime_col, settings, period)
            layout.update(
                layout="transactions",
                datetime_col=datetime_col,
                datetime_format=settings.get("datetime_format"),
            )
        family.validate_summary(table, what=path.name)
    layout["observation_end"] = table.attrs.get("observation_end")
    return table, layout


def subscription_table_of(frame, customer_id, start, end, settings, period):
    """:func:`clvmodels.subscriptions.subscription_table` of a subscriptions file (its
    ``cohort`` column kept when it has one)."""
    from clvmodels.subscriptions import subscription_table

    table = subscription_table(
        frame,
        customer_id=customer_id,
        start=start,
        end=end,
        observation_end=settings.get("observation_end"),
        period=period,
        cohort="cohort" if "cohort" in frame.columns else None,
    )
    return table


def discrete_summary_of(frame, customer_id, datetime_col, settings, period):
    """:func:`clvmodels.discrete_summary` of a transactions file (one row per customer); a
    ``price`` column of the file is each customer's value per transaction (the last one)."""
    from clvmodels.discrete import discrete_summary

    table = discrete_summary(
        frame,
        customer_id=customer_id,
        datetime=datetime_col,
        period=period,
        observation_end=settings.get("observation_end"),
        datetime_format=settings.get("datetime_format"),
    )
    if "price" in frame.columns:
        attrs = dict(table.attrs)
        table = table.join(frame.groupby(customer_id)["price"].last())
        table.attrs.update(attrs)
    return table


def fit_table_models(
    table,
    model: str,
    *,
    price: float | None,
    group: str | None = None,
    sampling: dict[str, Any] | None = None,
    console: Console | None = None,
):
    """Fit a subscription or BG/BB purchase model (CLI name) on its customer table, and the
    spend side: :class:`clvmodels.SubscriptionPrice`, the fixed ``price`` per payment
    (per transaction for BG/BB), or each customer's ``price`` column when ``price`` is None."""
    from clvmodels.subscriptions import SubscriptionPrice

    estimator = registry.estimator_class("purchase", model)
    if price is None and "price" not in table.columns:
        raise InputError(
            "the value of a payment is needed: pass --price AMOUNT (one price per period for "
            "everybody) or give the file a 'price' column"
        )
    with in_cli_words():
        spend_model = SubscriptionPrice(price=price).fit(table)
    if is_grouped(estimator):
        group = group or inspect.signature(estimator).parameters["group"].default
        if group not in table.columns:
            raise InputError(
                f"--model {model} pools the groups of column {group!r}, which the table does "
                "not have; found " + ", ".join(map(str, table.columns)) + ". Fix: pass --group "
                "COLUMN (the subscriptions file's cohort column, or another)"
            )
        if console is not None:
            console.info(
                f"fitting {estimator.__name__} on {len(table):,} customers in groups of "
                f"{group!r} (sampling the posterior)"
            )
        purchase_model = estimator(group=group).fit(table, **(sampling or {}))
    else:
        if group is not None:
            raise InputError(f"--group is for the hierarchical models, not --model {model}")
        if console is not None:
            console.info(f"fitting {estimator.__name__} on {len(table):,} customers")
        purchase_model = estimator().fit(table)
    return purchase_model, spend_model


def score_table(
    table,
    output_path: Path | None,
    purchase_model,
    spend_model,
    *,
    n_draws: int,
    random_seed: int,
    chunk_size: int,
    top: int,
    limit: int | None = None,
    progress=None,
    output_metadata: dict[str, Any] | None = None,
    **valuation,
):
    """Score the customers of an in-memory table in blocks of ``chunk_size`` as
    :func:`clvmodels.scoring.score_file` does a summary file: the same draws for every block
    (:func:`~clvmodels.scoring.prepare_draws`), block ``k`` seeded ``[random_seed, k]``
    (:func:`~clvmodels.scoring.score_chunk`), equity from the per-draw totals. The output
    (Parquet or CSV) is written atomically."""
    import pandas as pd
    import pyarrow as pa

    from clvmodels import units
    from clvmodels.scoring import (
        PARQUET_METADATA_KEY,
        ScoreResult,
        atomic_output,
        equity_summary,
        file_format,
        prepare_draws,
        score_chunk,
    )

    units.require_same_unit(purchase_model.time_unit_, table.attrs.get("time_unit"), "the table")
    fmt = file_format(output_path, purpose="output") if output_path is not None else None
    kind = valuation.get("kind", "predictive")
    draws = prepare_draws(purchase_model, spend_model, n_draws, kind, random_seed)
    n = len(table) if limit is None else min(len(table), -(-int(limit) // chunk_size) * chunk_size)
    frames, totals = [], None
    for block, first in enumerate(range(0, n, chunk_size)):
        chunk = table.iloc[first : first + chunk_size]
        scored, block_totals = score_chunk(
            chunk,
            purchase_model,
            spend_model,
            draws=draws,
            block=block,
            random_seed=random_seed,
            **valuation,
        )
        frames.append(scored)
        totals = block_totals if totals is None else totals + block_totals
        if progress is not None:
            progress(first + len(chunk), len(table))
    scored = pd.concat(frames)
    scored.index.name = "customer_id"
    if output_path is not None:
        arrow = pa.Table.from_pandas(scored.reset_index(), preserve_index=False)
        metadata = {"kind": "clv", "random_seed": random_seed, **(output_metadata or {})}
        with atomic_output(output_path) as tmp:
            if fmt == "parquet":
                import pyarrow.parquet as pq

                arrow = arrow.replace_schema_metadata(
                    {PARQUET_METADATA_KEY: json.dumps(metadata, default=str).encode()}
                )
                pq.write_table(arrow, tmp, compression="zstd")
            else:
                import pyarrow.csv as pacsv

                pacsv.write_csv(arrow, tmp)
    return ScoreResult(
        output=Path(output_path) if output_path is not None else None,
        n_customers=len(scored),
        n_chunks=len(frames),
        equity={
            **equity_summary(totals, float(valuation.get("interval", 0.9))),
            "n_customers": len(scored),
        },
        top=scored.nlargest(top, "clv_mean") if top else pd.DataFrame(),
        columns=list(scored.columns),
        random_seed=random_seed,
    )


# --------------------------------------------------------------------------------------------
# the time-varying Pareto/NBD: covariates per customer and period
# --------------------------------------------------------------------------------------------
#: the command line's name of :class:`clvmodels.TimeVaryingParetoNBD` (not a registry model:
#: it is fit on the summary, the transactions and a covariate table per period)
TIME_VARYING_MODEL = "pareto-tv"


def read_time_varying_covariates(path: Path, id_as_text: bool):
    """A covariate table per period (CSV/Parquet): ``date`` (the start of each period),
    optionally ``customer_id``, and the covariate columns. The customer ids are read as text
    (``id_as_text``) or as numbers, to match the summary they are joined with."""
    import numpy as np
    import pandas as pd

    from clvmodels.scoring import check_input_file, file_format

    check_input_file(path)
    if file_format(path) == "parquet":
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, dtype={"customer_id": str})
    if "date" not in frame.columns:
        raise InputError(
            f"{path.name} has no 'date' column; found "
            + ", ".join(map(str, frame.columns))
            + ". Fix: one row per period (and customer), dated at the start of the period"
        )
    if "customer_id" in frame.columns:
        ids = frame["customer_id"]
        if id_as_text:
            frame["customer_id"] = ids.astype(str)
        else:
            numbers = pd.to_numeric(ids, errors="coerce")
            bad = numbers.isna().to_numpy()
            if bad.any():
                raise InputError(
                    f"{path.name}: the summary's customer ids are numbers but 'customer_id' "
                    f"is not a number in {int(bad.sum())} rows (e.g. "
                    f"{ids[bad].head(3).tolist()}). Fix: use the summary's ids"
                )
            frame["customer_id"] = numbers.astype(np.int64) if (numbers % 1 == 0).all() else numbers
    return frame


def fit_time_varying(path: Path, settings: dict[str, Any], console: Console | None = None):
    """Fit :class:`clvmodels.TimeVaryingParetoNBD` and Gamma-Gamma on a transactions file.

    ``settings``: ``customer_id``, ``datetime_col``, ``datetime_format``, ``monetary``,
    ``observation_end``, ``time_unit``, ``time_varying_covariates`` (the file),
    ``purchase_covariates`` and ``dropout_covariates`` (lists), ``spend_customers``. The
    summary is :func:`clvmodels.rfm_summary` of the file. Returns ``(purchase,
    spend, summary)``.
    """
    import pandas as pd

    import clvmodels as clv

    customer_id = settings.get("customer_id") or "customer_id"
    datetime_col = settings.get("datetime_col") or "date"
    with in_cli_words():
        summary = clv.rfm_summary(
            str(path),
            customer_id=customer_id,
            datetime=datetime_col,
            monetary=settings.get("monetary"),
            observation_end=settings.get("observation_end"),
            time_unit=settings.get("time_unit") or "W",
            datetime_format=settings.get("datetime_format"),
        )
    frame = read_frame(path, customer_id)
    as_text = not pd.api.types.is_numeric_dtype(summary.index.dtype)  # ids as the summary's
    transactions = pd.DataFrame(
        {
            "customer_id": frame[customer_id].astype(summary.index.dtype).to_numpy(),
            "date": pd.to_datetime(frame[datetime_col], format=settings.get("datetime_format")),
        }
    )
    covariates = read_time_varying_covariates(
        Path(settings["time_varying_covariates"]), id_as_text=as_text
    )
    if console is not None:
        console.info(f"fitting TimeVaryingParetoNBD on {len(summary):,} customers")
    purchase_model = clv.TimeVaryingParetoNBD(
        settings.get("purchase_covariates") or (), settings.get("dropout_covariates") or ()
    ).fit(summary, covariates, transactions)
    repeat = summary["frequency"] > 0
    not_positive = repeat & ~(summary["monetary_value"] > 0)
    if not_positive.any() and settings.get("spend_customers", "all") == "all":
        raise not_positive_spend_error(int(not_positive.sum()), int(repeat.sum()), path.name)
    spend_model = registry.estimator_class("spend", "gamma-gamma")().fit(
        summary[repeat & ~not_positive]
    )
    return purchase_model, spend_model, summary
