"""Options shared by several commands, and the checks of option values made before any work.

The checks fail fast, before any data is read, with an ``InputError`` naming the option (exit
code 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

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
    bool, typer.Option("--quiet", "-q", help="Print nothing but errors (for cron).")
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one line.")]
CustomerIdOpt = Annotated[
    str, typer.Option("--customer-id", help="Customer id column.", rich_help_panel="Columns")
]
DatetimeOpt = Annotated[
    str, typer.Option("--datetime", help="Transaction date column.", rich_help_panel="Columns")
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

    units.parse_duration(s["horizon"])
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
