"""Options shared by several commands, and the checks of option values made before any work.

The checks fail fast, before any data is read, with an ``InputError`` naming the option (exit
code 2).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from clvmodels.errors import InputError

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="CLVMODELS_CONFIG",
        help="TOML settings file: a table per command (rfm, fit, score, ...) of long option names; the command line wins.",
        show_default=False,
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Print nothing but errors (for cron).", metavar=""),
]
DebugOpt = Annotated[
    bool, typer.Option("--debug", help="Show tracebacks instead of one line.", metavar="")
]
CustomerIdOpt = Annotated[
    str, typer.Option("--customer-id", help="Customer id column.", rich_help_panel="Columns")
]
SummaryCustomerIdOpt = Annotated[
    str | None,
    typer.Option(
        "--customer-id",
        help="Customer id column (default: the one the summary file records, else customer_id).",
        rich_help_panel="Columns",
        show_default=False,
    ),
]
DatetimeOpt = Annotated[
    str, typer.Option("--datetime", help="Transaction date column.", rich_help_panel="Columns")
]
DatetimeFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--datetime-format",
        help="Format of the dates when they are not ISO 8601 (2024-03-01), in strftime codes: "
        "'%m/%d/%Y' for US dates, '%d/%m/%Y', '%Y%m%d'. Dates are never guessed.",
        rich_help_panel="Columns",
        show_default=False,
    ),
]
AfterObservationEndOpt = Annotated[
    str,
    typer.Option(
        "--after-observation-end",
        help="Transactions after --observation-end: error, or exclude (leave them out, e.g. a "
        "later holdout period; their number is reported and recorded in the manifest).",
    ),
]
SpendCustomersOpt = Annotated[
    str,
    typer.Option(
        "--spend-customers",
        help="Customers the spend model is fit on: all repeat customers (a mean spend of zero "
        "or less is then an error: zero-value orders, returns), or positive (only the repeat "
        "customers with a positive mean spend; how many were left out is printed and recorded "
        "in the manifest). Every customer is still scored.",
    ),
]
PeriodOpt = Annotated[
    str | None,
    typer.Option(
        "--period",
        help="Subscriptions: the billing period (D, W, M, Q, Y; default M). BG/BB: the grid of "
        "transaction opportunities (default Y).",
        rich_help_panel="Subscriptions and BG/BB",
        show_default=False,
    ),
]
PriceOpt = Annotated[
    float | None,
    typer.Option(
        "--price",
        help="Value of one payment (subscriptions: the price per period; BG/BB: per "
        "transaction), for every customer; default: the file's price column.",
        rich_help_panel="Subscriptions and BG/BB",
        show_default=False,
    ),
]
StartOpt = Annotated[
    str,
    typer.Option("--start", help="Subscriptions: start date column.", rich_help_panel="Columns"),
]
EndOpt = Annotated[
    str,
    typer.Option(
        "--end",
        help="Subscriptions: end date column (empty while active; may be absent).",
        rich_help_panel="Columns",
    ),
]
CovariatesFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--covariates",
        help="Customer covariates (CSV/Parquet): the customer id column (as in the summary) and "
        "one column per covariate, one row per customer. Name the columns to use with "
        "--purchase-covariates, --dropout-covariates, --spend-covariates; without this file "
        "they are read from the summary.",
        rich_help_panel="Covariates",
        show_default=False,
    ),
]
ScoreCovariatesFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--covariates",
        help="Customer covariates (CSV/Parquet) for a --model fit with covariates: the customer "
        "id column and the model's covariate columns, one row per customer (default: read them "
        "from the summary).",
        rich_help_panel="Covariates",
        show_default=False,
    ),
]
TimeVaryingCovariatesOpt = Annotated[
    Path | None,
    typer.Option(
        "--time-varying-covariates",
        help="--model pareto-tv: covariates per period (CSV/Parquet): date (the start of each "
        "period, a regular grid), optionally customer_id, and the covariate columns; fit: from "
        "each customer's first purchase to the observation end; score: to the end of the "
        "horizon.",
        rich_help_panel="Covariates",
        show_default=False,
    ),
]
PurchaseCovariatesOpt = Annotated[
    str | None,
    typer.Option(
        "--purchase-covariates",
        help="Comma-separated covariate columns of the purchase process (e.g. gender,channel).",
        rich_help_panel="Covariates",
        show_default=False,
    ),
]
DropoutCovariatesOpt = Annotated[
    str | None,
    typer.Option(
        "--dropout-covariates",
        help="Comma-separated covariate columns of the dropout process.",
        rich_help_panel="Covariates",
        show_default=False,
    ),
]
SpendCovariatesOpt = Annotated[
    str | None,
    typer.Option(
        "--spend-covariates",
        help="Comma-separated covariate columns of the spend model's scale.",
        rich_help_panel="Covariates",
        show_default=False,
    ),
]
MonetaryOpt = Annotated[
    str,
    typer.Option("--monetary", help="Transaction amount column.", rich_help_panel="Columns"),
]
TimeUnitOpt = Annotated[
    str | None,
    typer.Option(
        "--time-unit",
        help="Time unit of the summary: D, W, M, Q, Y (read from the file when it records one).",
    ),
]


class _FlagsWithoutType:
    """Help that shows no value type after a flag (``--quiet``, ``--help``): flags take no
    value, so the rich help's ``<bool>`` there would be wrong."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class Command(_FlagsWithoutType, TyperCommand):
    """The commands' class: flags shown without a value type."""


class Group(_FlagsWithoutType, TyperGroup):
    """The application's class: flags shown without a value type."""


AFTER_OBSERVATION_END = {"error": "raise", "raise": "raise", "exclude": "exclude"}
SPEND_CUSTOMERS = ("all", "positive")


def after_end_policy(value: str) -> str:
    """The ``after_observation_end`` of :func:`clvmodels.rfm_summary` for the CLI's
    ``--after-observation-end`` (``error`` or ``exclude``; ``raise`` as in Python is accepted)."""
    check_choice("--after-observation-end", value, AFTER_OBSERVATION_END)
    return AFTER_OBSERVATION_END[value]


# Python keywords of the data layer named in its messages -> the CLI's options
_KEYWORD_OPTIONS = {
    "after_observation_end": "--after-observation-end",
    "datetime_format": "--datetime-format",
    "observation_end": "--observation-end",
    "calibration_end": "--calibration-end",
    "time_unit": "--time-unit",
}
_COLUMN_OPTIONS = {
    "customer_id": "--customer-id",
    "datetime": "--datetime",
    "monetary": "--monetary",
}
_VALUE = r"""('[^']*'|"[^"]*"|[^\s,;)]+)"""


def cli_wording(message: str) -> str:
    """A message of the Python API in the CLI's words: ``pass after_observation_end='exclude'``
    becomes ``pass --after-observation-end exclude``, ``datetime_format='%m/%d/%Y'`` becomes
    ``--datetime-format '%m/%d/%Y'``."""

    def option_value(option: str, value: str) -> str:
        bare = value.strip("'\"")
        if re.fullmatch(r"[\w.:+-]+", bare):
            return f"{option} {bare}"
        return f"{option} '{bare}'"

    for keyword, option in {**_KEYWORD_OPTIONS, **_COLUMN_OPTIONS}.items():
        message = re.sub(
            rf"\b{keyword}={_VALUE}", lambda m, o=option: option_value(o, m.group(1)), message
        )
    for keyword, option in _KEYWORD_OPTIONS.items():
        message = re.sub(rf"\b{keyword}\b", option, message)
    return message


@contextlib.contextmanager
def in_cli_words() -> Iterator[None]:
    """Errors of the data layer raised in the block name the CLI's options rather than the
    Python keywords (:func:`cli_wording`); same exception class, same cause."""
    from clvmodels.errors import ClvError

    try:
        yield
    except ClvError as exc:
        text = str(exc)
        worded = cli_wording(text)
        if worded == text or len(exc.args) != 1:
            raise
        try:
            new = type(exc)(worded)
        except Exception:  # pragma: no cover - an error class with other arguments
            raise exc from None
        raise new.with_traceback(exc.__traceback__) from exc.__cause__


def covariate_columns(option: str, value: str | None) -> list[str] | None:
    """The column names of a comma-separated covariate option (None when not given)."""
    if value is None:
        return None
    columns = [c.strip() for c in str(value).split(",")]
    if not all(columns):
        raise InputError(f"{option} must be comma-separated column names, got {value!r}")
    return columns


def check_choice(name: str, value: str, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``; else an InputError listing them."""
    choices = list(choices)
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_valuation_settings(s: dict[str, Any]) -> None:
    """Fail fast, before any data is read, on settings the valuation would refuse later: the
    ranges are those of :mod:`clvmodels.valuation.spec` (margin in [0, 1], discount rate in
    [0, 1) a year, interval in (0, 1)), with the option's name in the message."""
    from clvmodels import units
    from clvmodels.valuation.spec import check_discount_rate, check_interval, check_margin

    horizon = str(s["horizon"]).strip()
    if re.fullmatch(r"[0-9.eE+-]+", horizon):  # a bare number: which unit would be a guess
        raise InputError(
            f"--horizon {horizon} has no unit; write {horizon}M for months, {horizon}W for weeks, "
            f"{horizon}D for days or {horizon}Y for years (a bare number is never taken to be "
            "in some unit)"
        )
    units.parse_duration(horizon)
    period = s["period"]
    units.parse_duration(f"1{period}" if period.strip().isalpha() else period)
    check_margin(s["margin"], "--margin")
    check_discount_rate(s["discount_rate"], "--discount-rate", "year")
    check_interval(s["interval"], "--interval")
    if s["n_draws"] < 1:
        raise InputError(f"--draws must be at least 1, got {s['n_draws']}")
    if s["chunk_size"] < 1:
        raise InputError(f"--chunk-size must be at least 1, got {s['chunk_size']}")
    if s["limit"] is not None and s["limit"] < 1:
        raise InputError(f"--limit must be at least 1, got {s['limit']}")
    if s["time_unit"] is not None:
        units.normalize_unit(s["time_unit"])


def check_outputs(outputs: Iterable[Path | None], inputs: Iterable[Path | str | None]) -> None:
    """No output may be an input, contain one (an output directory) or lie inside an input
    directory (a model directory): InputError before anything is read or written."""
    from clvmodels.scoring import check_not_input

    inputs = [Path(i) for i in inputs if i is not None]
    for out in outputs:
        if out is not None:
            check_not_input(out, *inputs)


def check_output_parent(out: Path) -> None:
    """The directory an output goes into must exist (it is not created)."""
    parent = out.resolve().parent
    if not parent.exists():
        raise InputError(f"cannot write {out}: directory {parent} does not exist")
