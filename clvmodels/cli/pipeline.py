"""Pipeline steps on files shared by the commands: read a file's columns, summarise
transactions, fit the models chosen by their CLI names, describe a fit.

No model math here: the models are the estimator classes of :mod:`clvmodels.registry`, fitted
through their public ``fit``; this module only reads the files (DuckDB, out of core) and hands
the estimators the rows they need.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from clvmodels import registry
from clvmodels.cli.console import Console
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
    import duckdb

    from clvmodels.scoring import connect, duckdb_source, first_line, format_name

    if not path.exists():
        raise FileNotFoundError(f"input file {path} does not exist")
    if path.is_dir():
        raise InputError(f"input {path} is a directory; pass a Parquet or CSV file")
    if path.stat().st_size == 0:
        raise InputError(f"input file {path} is empty (0 bytes)")
    con = connect()
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {duckdb_source(path, fmt)}").fetchall()
    except duckdb.Error as exc:
        raise InputError(
            f"cannot read {path} as {format_name(fmt)} ({first_line(exc)}); is the file complete?"
        ) from None
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
):
    """Summarise a transactions file (DuckDB, out of core) into the summary file ``out``."""
    from clvmodels import data
    from clvmodels.scoring import check_not_input, file_format, write_summary_file

    check_not_input(out, path)  # never overwrite the transactions with their summary
    file_columns(path, file_format(path))  # missing, empty or unreadable: a clear error first

    kwargs = dict(
        customer_id=customer_id, datetime=datetime_col, monetary=monetary, time_unit=time_unit
    )
    if calibration_end is not None:
        summary = data.calibration_holdout_summary(
            str(path), calibration_end=calibration_end, observation_end=observation_end, **kwargs
        )
    else:
        summary = data.rfm_summary(str(path), observation_end=observation_end, **kwargs)
    return write_summary_file(summary, out), summary


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


def fit_models(
    info,
    purchase: str,
    spend: str,
    *,
    group: str | None = None,
    sampling: dict[str, Any] | None = None,
    console: Console | None = None,
):
    """Fit a purchase and a spend model (CLI names of :mod:`clvmodels.registry`) on a summary file.

    Maximum-likelihood models are fit on the distinct rows of the columns they read, with their
    counts, read with DuckDB, so fitting needs memory for the distinct rows only, not for every
    customer. Grouped models (``--group``) are fit on every customer.
    """
    import numpy as np

    from clvmodels.scoring import connect, duckdb_source

    purchase_cls = registry.estimator_class("purchase", purchase)
    spend_cls = registry.estimator_class("spend", spend)
    grouped_purchase, grouped_spend = is_grouped(purchase_cls), is_grouped(spend_cls)
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
    con = connect()
    try:
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
        repeat = con.sql(
            f"SELECT {quoted(spend_cols)}, count(*) AS n FROM {source} WHERE frequency > 0 "
            "GROUP BY ALL"
        ).df()
    finally:
        con.close()
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
    else:
        purchase_model = purchase_cls().fit(
            rows[list(purchase_cols)], weights=rows["n"].to_numpy(np.float64)
        )
    if grouped_spend:
        spend_model = spend_cls(group=group).fit(full, **(sampling or {}))
    else:
        if len(repeat) == 0:
            raise InputError(
                f"{info.path.name} has no customers with repeat purchases (frequency > 0): the "
                "spend model cannot be fit"
            )
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
