"""The ``clvmodels`` command line: transactions -> summary -> models -> CLV, in batch.

Commands (``clvmodels COMMAND --help`` shows every option with examples):

* ``clvmodels rfm TRANSACTIONS --out summary.parquet`` -- the RFM summary (DuckDB, out of core);
* ``clvmodels fit SUMMARY --model bgnbd --spend gamma-gamma --out model_dir/`` -- fit and save;
* ``clvmodels score [INPUT] [--model model_dir/] --horizon 12M ... --out clv.parquet`` -- CLV
  with intervals, streamed in chunks of customers (bounded memory). With no arguments it runs
  the whole pipeline on the bundled CDNOW sample and prints the top customers;
* ``clvmodels evaluate TRANSACTIONS --calibration-end ... --observation-end ...`` -- holdout
  accuracy;
* ``clvmodels report CLV --out report.html`` -- an HTML or Markdown report with plots.

Conventions for batch use:

* settings may come from a TOML file (``--config settings.toml``, or ``$CLVMODELS_CONFIG``):
  a table per command (``[score]``, ``[fit]``, ...) whose keys are the long option names
  (``discount_rate = 0.1``); top-level keys apply to every command that has that option.
  Options given on the command line win over the file;
* every command that writes something also writes ``<output>.manifest.json`` (for a model
  directory: ``manifest.json`` inside it) recording inputs (size, SHA-256), settings, versions,
  fit diagnostics, warnings, wall time and peak memory;
* outputs are written to a temporary file and renamed on success: an interrupted job leaves
  the previous complete output or none, never a truncated file;
* errors print one line, ``Error: <what is wrong and how to fix it>``, on stderr and exit with
  code 2 for bad input (files, columns, values, options), 1 for anything else, 130 when
  interrupted; ``--debug`` shows the traceback instead. ``--quiet`` prints nothing but errors
  (for cron).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import re
import resource
import sys
import tempfile
import time
import tomllib
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from clvmodels.errors import ClvError, InputError, ModelFileError, TimeUnitError

PURCHASE_MODELS = {
    "bgnbd": "BetaGeo",
    "pareto": "ParetoNBD",
    "mbgnbd": "ModifiedBetaGeo",
    "hierarchical": "HierarchicalBetaGeo",
}
SPEND_MODELS = {"gamma-gamma": "GammaGamma", "hierarchical": "HierarchicalGammaGamma"}

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


# --------------------------------------------------------------------------------------------
# errors: one line, a clear exit code
# --------------------------------------------------------------------------------------------
EXIT_INPUT = 2
EXIT_OTHER = 1
EXIT_INTERRUPTED = 130


def _input_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [
        InputError,
        TimeUnitError,
        ModelFileError,
        FileNotFoundError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
        UnicodeDecodeError,
        tomllib.TOMLDecodeError,
    ]
    for module, names in (
        ("pyarrow", ("ArrowInvalid", "ArrowTypeError", "ArrowIOError")),
        ("duckdb", ("Error",)),
        ("pandas.errors", ("EmptyDataError", "ParserError")),
    ):
        mod = sys.modules.get(module)
        for name in names:
            cls = getattr(mod, name, None) if mod is not None else None
            if isinstance(cls, type):
                types.append(cls)
    return tuple(types)


def one_line(exc: BaseException) -> str:
    """Condense an error message into one line: its first line plus its "Fix:" line if any."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    # the examples that follow a multi-line message are left out; so is their lead-in
    head = re.sub(r"[,;:]?\s*(e\.g\.|first examples[^:]*|for example)?:?$", "", lines[0])
    fix = next((line for line in lines[1:] if line.startswith("Fix:")), None)
    if not fix or fix in head:
        return head
    return head + (" " if head.endswith((".", "!", "?")) else ". ") + fix


def classify_error(exc: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for an exception raised by a command."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted; no output was written (previous outputs are intact)"
    if (
        isinstance(exc, FileNotFoundError)
        and exc.filename
        and not str(exc).startswith(("input", "model"))
    ):
        return EXIT_INPUT, f"file not found: {exc.filename}"
    if isinstance(exc, _input_error_types()):
        return EXIT_INPUT, one_line(exc)
    if isinstance(exc, MemoryError):
        return EXIT_OTHER, "out of memory; lower --chunk-size or --draws"
    if isinstance(exc, ClvError | ValueError):
        return EXIT_OTHER, one_line(exc)
    return EXIT_OTHER, (
        f"unexpected {type(exc).__name__}: {one_line(exc)} (run again with --debug for the "
        "traceback and report it)"
    )


def _command(func: Callable) -> Callable:
    """Run a command body with the error policy: one line on stderr and an exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        debug = bool(kwargs.get("debug"))
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except BaseException as exc:  # noqa: BLE001 - the CLI's single error boundary
            if isinstance(exc, SystemExit | GeneratorExit):
                raise
            if debug:
                raise
            code, message = classify_error(exc)
            typer.echo(f"Error: {message}", err=True)
            raise typer.Exit(code) from None

    return wrapper


# --------------------------------------------------------------------------------------------
# settings from TOML
# --------------------------------------------------------------------------------------------
_NOT_SETTINGS = {"config", "debug"}


def load_config(path: Path | None, command: str, ctx: typer.Context) -> dict[str, Any]:
    """The settings for ``command`` from a TOML file, checked against the command's options."""
    if path is None:
        return {}
    if not path.is_file():
        raise InputError(f"settings file {path} does not exist")
    with open(path, "rb") as handle:
        try:
            document = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"settings file {path} is not valid TOML: {exc}") from None
    options: dict[str, str] = {}  # key in the file -> parameter name
    long_names: list[str] = []
    for param in ctx.command.params:
        if param.name in _NOT_SETTINGS or getattr(param, "param_type_name", "") != "option":
            continue
        for opt in param.opts:
            if opt.startswith("--"):
                options[opt[2:].replace("-", "_")] = param.name
                long_names.append(opt[2:].replace("-", "_"))
        options.setdefault(param.name, param.name)
    commands = set(app_command_names())
    out: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            if key not in commands:
                raise InputError(
                    f"settings file {path}: unknown table [{key}]; use one of "
                    + ", ".join(f"[{c}]" for c in sorted(commands))
                )
            continue
        name = key.replace("-", "_")
        if name in options:
            out[options[name]] = value
    for key, value in (document.get(command) or {}).items():
        name = key.replace("-", "_")
        if name not in options:
            raise InputError(
                f"settings file {path}: [{command}] has unknown setting {key!r}; valid: "
                + ", ".join(sorted(long_names))
            )
        out[options[name]] = value
    return out


def app_command_names() -> list[str]:
    return [c.name or c.callback.__name__ for c in app.registered_commands]


def _coerce(name: str, raw: Any, annotation: Any, config: Path) -> Any:
    """Check and convert a TOML value to the option's Python type."""
    import types
    import typing

    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    allowed = (
        [a for a in typing.get_args(annotation) if a is not type(None)]
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else [annotation]
    )
    target = allowed[0] if allowed else str

    def bad(what: str):
        return InputError(f"settings file {config}: {name} = {raw!r} must be {what}")

    if target is bool:
        if not isinstance(raw, bool):
            raise bad("true or false")
        return raw
    if target is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise bad("a whole number")
        return raw
    if target is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise bad("a number")
        return float(raw)
    if target is Path:
        if not isinstance(raw, str):
            raise bad("a path (a string)")
        return Path(raw).expanduser()
    if not isinstance(raw, str):
        raise bad("a string")
    return raw


def resolve_settings(
    ctx: typer.Context, values: dict[str, Any], config: Path | None, command: Callable
) -> dict:
    """Command-line values, with settings from the TOML file filling options left at default."""
    import typing

    from_file = load_config(config, ctx.info_name or "", ctx)
    hints = typing.get_type_hints(inspect.unwrap(command), include_extras=True)
    resolved = {k: v for k, v in values.items() if k != "ctx"}
    for name, raw in from_file.items():
        source = ctx.get_parameter_source(name)
        if source is not None and getattr(source, "name", "") != "DEFAULT":
            continue  # given on the command line or by an environment variable: it wins
        resolved[name] = _coerce(name, raw, hints.get(name, str), config)
    return resolved


# --------------------------------------------------------------------------------------------
# run manifests
# --------------------------------------------------------------------------------------------
def _peak_rss_mb() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / 1024.0 if sys.platform != "darwin" else usage / 2**20


def describe_input(path: Path) -> dict[str, Any]:
    """Path, size and SHA-256 of an input file (or directory of model files)."""
    path = Path(path)
    entry: dict[str, Any] = {"path": str(path.resolve())}
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    size = 0
    for file in files:
        size += file.stat().st_size
        with open(file, "rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
    entry.update(bytes=size, sha256=digest.hexdigest())
    return entry


def relevant_warnings(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    """Warnings about the data and the fit (not library deprecation notices), deduplicated."""
    seen, out = set(), []
    for w in caught:
        if issubclass(w.category, DeprecationWarning | PendingDeprecationWarning | FutureWarning):
            continue
        key = (w.category, str(w.message))
        if key not in seen:
            seen.add(key)
            out.append(w)
    return out


class Run:
    """Collects what a command did and writes it as a JSON manifest next to its output."""

    def __init__(self, command: str, settings: dict[str, Any]):
        from clvmodels.io import versions

        self.started = time.perf_counter()
        self.record: dict[str, Any] = {
            "command": command,
            "argv": sys.argv[1:],
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "settings": {k: v for k, v in settings.items() if k not in _NOT_SETTINGS},
            "inputs": [],
            "outputs": [],
            "versions": versions(),
            "warnings": [],
        }

    def add_input(self, path: Path | str, role: str, **extra) -> None:
        if isinstance(path, Path) and path.exists():
            entry = describe_input(path)
        else:
            entry = {"path": str(path)}
        self.record["inputs"].append({"role": role, **entry, **extra})

    def add_warnings(self, caught: list[warnings.WarningMessage]) -> None:
        for w in relevant_warnings(caught):
            self.record["warnings"].append(f"{w.category.__name__}: {w.message}")

    def write(self, path: Path, **extra) -> Path:
        from clvmodels.io import atomic_write_text, versions

        self.record.update(extra)
        self.record["versions"] = versions()
        self.record["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.record["wall_seconds"] = round(time.perf_counter() - self.started, 3)
        self.record["peak_rss_mb"] = round(_peak_rss_mb(), 1)
        atomic_write_text(path, json.dumps(self.record, indent=2, default=str, allow_nan=True))
        return path


def manifest_path(output: Path) -> Path:
    """Where the manifest of ``output`` goes: inside a directory, beside a file."""
    output = Path(output)
    return (
        output / "manifest.json"
        if output.is_dir()
        else output.with_name(output.name + ".manifest.json")
    )


# --------------------------------------------------------------------------------------------
# console helpers
# --------------------------------------------------------------------------------------------
class Console:
    """stdout for results, stderr for progress and warnings; silent with --quiet."""

    def __init__(self, quiet: bool):
        from rich.console import Console as RichConsole

        self.quiet = quiet
        if quiet:  # libraries that log to stderr (ArviZ, PyMC) stay silent too
            import logging

            for name in ("arviz", "pymc", "pytensor", "distributed"):
                logging.getLogger(name).setLevel(logging.ERROR)
        self.out = RichConsole(quiet=quiet, soft_wrap=True)
        self.err = RichConsole(stderr=True, quiet=quiet, soft_wrap=True)

    def info(self, message: str) -> None:
        self.err.print(message, highlight=False)

    def warn(self, caught: list[warnings.WarningMessage]) -> None:
        for w in relevant_warnings(caught):
            self.err.print(f"Warning: {w.category.__name__}: {w.message}", highlight=False)

    def progress(self, description: str, total: int | None):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.err,
            disable=self.quiet,
            transient=False,
        )
        task = progress.add_task(description, total=total)
        return progress, task


# --------------------------------------------------------------------------------------------
# shared option types
# --------------------------------------------------------------------------------------------
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


def _check_choice(name: str, value: str, choices) -> str:
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _check_settings(s: dict[str, Any]) -> None:
    """Fail fast, before any data is read, on settings the valuation would refuse later."""
    from clvmodels import units

    units.parse_duration(s["horizon"])
    period = s["period"]
    units.parse_duration(f"1{period}" if period.strip().isalpha() else period)
    if not 0 < s["interval"] < 1:
        raise InputError(f"--interval must be between 0 and 1 (e.g. 0.9), got {s['interval']}")
    if not s["discount_rate"] > -1:
        raise InputError(f"--discount-rate must be greater than -1, got {s['discount_rate']}")
    if s["n_draws"] < 1:
        raise InputError(f"--draws must be at least 1, got {s['n_draws']}")
    if s["chunk_size"] < 1:
        raise InputError(f"--chunk-size must be at least 1, got {s['chunk_size']}")
    if s["limit"] is not None and s["limit"] < 1:
        raise InputError(f"--limit must be at least 1, got {s['limit']}")
    if s["time_unit"] is not None:
        units.normalize_unit(s["time_unit"])


def _check_output_parent(out: Path) -> None:
    parent = out.resolve().parent
    if not parent.exists():
        raise InputError(f"cannot write {out}: directory {parent} does not exist")


# --------------------------------------------------------------------------------------------
# pipeline pieces shared by the commands
# --------------------------------------------------------------------------------------------
def is_summary_file(path: Path, datetime_col: str) -> bool:
    """A summary has frequency/recency/T and no transaction date column; else transactions."""
    from clvmodels.scoring import file_format

    columns = set(file_columns(path, file_format(path)))
    return bool(columns & {"frequency", "recency", "T"}) and datetime_col not in columns


def file_columns(path: Path, fmt: str) -> list[str]:
    import duckdb

    from clvmodels.scoring import _connect, _duckdb_source, _first_line, _format_name

    if not path.exists():
        raise FileNotFoundError(f"input file {path} does not exist")
    if path.is_dir():
        raise InputError(f"input {path} is a directory; pass a Parquet or CSV file")
    if path.stat().st_size == 0:
        raise InputError(f"input file {path} is empty (0 bytes)")
    con = _connect()
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {_duckdb_source(path, fmt)}").fetchall()
    except duckdb.Error as exc:
        raise InputError(
            f"cannot read {path} as {_format_name(fmt)} ({_first_line(exc)}); is the file complete?"
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
    from clvmodels.scoring import file_format

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
    from clvmodels.scoring import write_summary_file

    return write_summary_file(summary, out), summary


def fit_models(
    info,
    purchase: str,
    spend: str,
    *,
    group: str | None = None,
    sampling: dict[str, Any] | None = None,
    console: Console | None = None,
):
    """Fit a purchase and a spend model on a summary file.

    MLE models are fit on the distinct (frequency, recency, T) rows with their counts, read with
    DuckDB, so fitting needs memory for the distinct rows only, not for every customer.
    """
    import numpy as np

    import clvmodels as clv
    from clvmodels.scoring import _connect, _duckdb_source

    source = _duckdb_source(info.path, info.format)
    con = _connect()
    try:
        if purchase == "hierarchical" or spend == "hierarchical":
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
        cols = 'frequency, recency, "T"'
        rows = con.sql(f"SELECT {cols}, count(*) AS n FROM {source} GROUP BY ALL").df()
        rep_cols = 'frequency, recency, "T", monetary_value'
        repeat = con.sql(
            f"SELECT {rep_cols}, count(*) AS n FROM {source} WHERE frequency > 0 GROUP BY ALL"
        ).df()
    finally:
        con.close()
    for frame in (rows, repeat):
        frame.attrs["time_unit"] = info.time_unit
    if console is not None:
        where = (
            f"{int(rows['n'].sum()):,} customers in groups of {group!r} (sampling the posterior)"
            if purchase == "hierarchical"
            else f"{len(rows):,} distinct histories of {int(rows['n'].sum()):,} customers"
        )
        console.info(f"fitting {PURCHASE_MODELS[purchase]} on {where}")
    if purchase == "hierarchical":
        purchase_model = clv.HierarchicalBetaGeo(group=group).fit(full, **(sampling or {}))
    else:
        cls = getattr(clv, PURCHASE_MODELS[purchase])
        purchase_model = cls().fit(
            rows[["frequency", "recency", "T"]], weights=rows["n"].to_numpy(np.float64)
        )
    if spend == "hierarchical":
        spend_model = clv.HierarchicalGammaGamma(group=group).fit(full, **(sampling or {}))
    else:
        if len(repeat) == 0:
            raise InputError(
                f"{info.path.name} has no customers with repeat purchases (frequency > 0): the "
                "spend model cannot be fit"
            )
        spend_model = clv.GammaGamma().fit(
            repeat[["frequency", "recency", "T", "monetary_value"]],
            weights=repeat["n"].to_numpy(np.float64),
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


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------
@app.command(
    epilog=(
        "Examples:\n\n"
        "  clvmodels rfm transactions.parquet --out summary.parquet --time-unit W\n\n"
        "  clvmodels rfm tx.csv --out ch.parquet --calibration-end 1997-09-30 "
        "--observation-end 1998-06-30"
    )
)
@_command
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
    customer_id: CustomerIdOpt = "customer_id",
    datetime_col: DatetimeOpt = "date",
    monetary: MonetaryOpt = "amount",
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """Summarise transactions into one row per customer: frequency, recency, T, monetary_value."""
    s = resolve_settings(ctx, dict(locals()), config, rfm)
    console = Console(s["quiet"])
    run = Run("rfm", s)
    _check_output_parent(s["out"])
    with warnings.catch_warnings(record=True) as caught:
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
        )
    console.warn(caught)
    run.add_warnings(caught)
    run.add_input(s["transactions"], "transactions")
    run.record["outputs"].append({"path": str(s["out"]), "rows": len(summary)})
    run.record["summary"] = {
        "n_customers": len(summary),
        "repeat_customers": int((summary["frequency"] > 0).sum()),
        "attrs": {k: str(v) for k, v in summary.attrs.items()},
    }
    run.write(manifest_path(s["out"]))
    console.info(f"wrote {len(summary):,} customers to {s['out']}")


@app.command(
    epilog=(
        "Examples:\n\n"
        "  clvmodels fit summary.parquet --model bgnbd --spend gamma-gamma --out models/cdnow\n\n"
        "  clvmodels fit summary.parquet --model hierarchical --spend hierarchical "
        "--group channel --out models/h"
    )
)
@_command
def fit(
    ctx: typer.Context,
    summary: Annotated[Path, typer.Argument(help="Summary file from `clvmodels rfm`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    model: Annotated[
        str,
        typer.Option("--model", "-m", help="Purchase model: bgnbd, pareto, mbgnbd, hierarchical."),
    ] = "bgnbd",
    spend: Annotated[
        str, typer.Option(help="Spend model: gamma-gamma or hierarchical.")
    ] = "gamma-gamma",
    group: Annotated[str | None, typer.Option(help="Group column for hierarchical models.")] = None,
    draws: Annotated[int, typer.Option(help="Posterior draws per chain (hierarchical).")] = 1000,
    tune: Annotated[int, typer.Option(help="Tuning steps per chain (hierarchical).")] = 1000,
    chains: Annotated[int, typer.Option(help="Chains (hierarchical).")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    time_unit: TimeUnitOpt = None,
    customer_id: CustomerIdOpt = "customer_id",
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """Fit a purchase model and a spend model on a summary and save them (JSON/NetCDF, no pickle)."""
    from clvmodels.io import save_pipeline
    from clvmodels.scoring import inspect_summary_file

    s = resolve_settings(ctx, dict(locals()), config, fit)
    console = Console(s["quiet"])
    _check_choice("--model", s["model"], PURCHASE_MODELS)
    _check_choice("--spend", s["spend"], SPEND_MODELS)
    run = Run("fit", s)
    info = inspect_summary_file(
        s["summary"], customer_id=s["customer_id"], time_unit=s["time_unit"]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        purchase_model, spend_model = fit_models(
            info,
            s["model"],
            s["spend"],
            group=s["group"],
            sampling={
                "draws": s["draws"],
                "tune": s["tune"],
                "chains": s["chains"],
                "random_seed": s["seed"],
            },
            console=console,
        )
    console.warn(caught)
    run.add_warnings(caught)
    run.add_input(s["summary"], "summary", n_customers=info.n_customers)
    diagnostics = {
        "purchase": fit_diagnostics(purchase_model),
        "spend": fit_diagnostics(spend_model),
    }
    save_pipeline(
        s["out"],
        purchase_model,
        spend_model,
        metadata={"fit_on": str(Path(s["summary"]).resolve()), "n_customers": info.n_customers},
    )
    run.record["outputs"].append({"path": str(s["out"])})
    run.write(manifest_path(s["out"]), fit_diagnostics=diagnostics)
    _print_params(console, purchase_model, spend_model)
    console.info(f"saved the models to {s['out']}")


def _print_params(console: Console, *models) -> None:
    if console.quiet:
        return
    from rich.table import Table

    table = Table(title="Fitted parameters", show_header=True)
    table.add_column("model")
    table.add_column("parameters")
    table.add_column("log-likelihood", justify="right")
    for m in models:
        params = ", ".join(f"{k}={v:.4g}" for k, v in m.params_.items())
        ll = getattr(m, "log_likelihood_", None)
        table.add_row(type(m).__name__, params, "" if ll is None else f"{ll:,.2f}")
    console.out.print(table)


@app.command(
    epilog=(
        "Examples:\n\n"
        "  clvmodels score                       # CDNOW demo: fit, value, print the top 10\n\n"
        "  clvmodels score summary.parquet --model models/cdnow --horizon 12M "
        "--discount-rate 0.1 --margin 0.3 --interval 0.9 --out clv.parquet\n\n"
        "  clvmodels score tx.parquet --out clv.parquet   # transactions: summarise, fit, score"
    )
)
@_command
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
    time_unit: TimeUnitOpt = None,
    observation_end: Annotated[
        str | None,
        typer.Option(
            help="Transactions input: end of observation (default: last date; demo: 1997-09-30)."
        ),
    ] = None,
    customer_id: CustomerIdOpt = "customer_id",
    datetime_col: DatetimeOpt = "date",
    monetary: MonetaryOpt = "amount",
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """Score customers: discounted CLV over a horizon with intervals, streamed in chunks."""
    from clvmodels.scoring import inspect_summary_file, score_file

    s = resolve_settings(ctx, dict(locals()), config, score)
    console = Console(s["quiet"])
    _check_choice("--kind", s["kind"], ("predictive", "expected", "point"))
    _check_settings(s)
    if s["out"] is not None:
        _check_output_parent(s["out"])
    run = Run("score", s)
    with (
        tempfile.TemporaryDirectory(prefix="clvmodels-") as scratch,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        models = None
        if s["model"] is not None:
            from clvmodels.io import load_pipeline

            models = load_pipeline(s["model"])  # first: its unit is the default for summaries
            run.add_input(s["model"], "model")
        default_unit = s["time_unit"] or (models.time_unit if models is not None else "W")
        summary_path, summary_unit = _score_input(s, Path(scratch), console, run, default_unit)
        info = inspect_summary_file(
            summary_path,
            customer_id=s["customer_id"] if s["input"] else "customer_id",
            time_unit=summary_unit,
        )
        if models is not None:
            purchase_model, spend_model = models.purchase, models.spend
        else:
            purchase_model, spend_model = fit_models(info, "bgnbd", "gamma-gamma", console=console)
        run.record["fit_diagnostics"] = {
            "purchase": fit_diagnostics(purchase_model),
            "spend": fit_diagnostics(spend_model),
        }
        valuation = dict(
            horizon=s["horizon"],
            annual_discount_rate=s["discount_rate"],
            margin=s["margin"],
            interval=s["interval"],
            kind=s["kind"],
            period=s["period"],
        )
        progress, task = console.progress("scoring", info.n_customers)
        with progress:
            result = score_file(
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
                **valuation,
            )
    console.warn(caught)
    run.add_warnings(caught)
    _print_top(console, result, s)
    if s["out"] is not None:
        run.record["outputs"].append(
            {"path": str(s["out"]), "rows": result.n_customers, "columns": result.columns}
        )
        run.write(
            manifest_path(s["out"]),
            customer_equity=result.equity,
        )
        console.info(f"wrote {result.n_customers:,} customers to {s['out']}")


def _score_input(
    s: dict, scratch: Path, console: Console, run: Run, default_unit: str
) -> tuple[Path, str | None]:
    """The summary file to score (summarising transactions first when needed) and its unit."""
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
        console.info(
            f"CDNOW sample: {len(tx):,} transactions of {len(summary):,} customers, observed to "
            f"{end}, unit {summary.attrs.get('time_unit', 'W')}"
        )
        return path, None
    path = Path(s["input"])
    run.add_input(path, "input")
    if is_summary_file(path, s["datetime_col"]):
        return path, s["time_unit"]
    out, summary = summarize_transactions_file(
        path,
        scratch / "summary.parquet",
        customer_id=s["customer_id"],
        datetime_col=s["datetime_col"],
        monetary=s["monetary"],
        time_unit=default_unit,
        observation_end=s["observation_end"],
    )
    console.info(f"summarised transactions: {len(summary):,} customers")
    return out, None


def _print_top(console: Console, result, s: dict) -> None:
    if console.quiet or result.top is None or len(result.top) == 0:
        return
    from rich.table import Table

    level = f"{s['interval']:.0%}"
    table = Table(
        title=f"Top {len(result.top)} customers by CLV over {s['horizon']} "
        f"({level} {s['kind']} interval, {s['discount_rate']:.0%} annual discount, "
        f"margin {s['margin']:g})"
    )
    columns = [
        ("customer_id", "customer", None),
        ("clv_mean", "CLV", "{:,.2f}"),
        ("clv_lower", "lower", "{:,.2f}"),
        ("clv_upper", "upper", "{:,.2f}"),
        ("probability_alive", "P(alive)", "{:.3f}"),
        ("expected_purchases", "exp. purchases", "{:.2f}"),
    ]
    top = result.top.reset_index()
    columns = [c for c in columns if c[0] in top.columns]
    for _, header, _ in columns:
        table.add_column(header, justify="right")
    records = top.to_dict(orient="records")
    for row in records:
        table.add_row(
            *[str(row[name]) if fmt is None else fmt.format(row[name]) for name, _, fmt in columns]
        )
    console.out.print(table)
    eq = result.equity
    console.out.print(
        f"Customer equity ({result.n_customers:,} customers): {eq['equity_mean']:,.2f} "
        f"[{level} interval {eq['equity_lower']:,.2f} to {eq['equity_upper']:,.2f}]",
        highlight=False,
    )


EVALUATE_MODELS = {"bgnbd": "BetaGeo", "pareto": "ParetoNBD", "mbgnbd": "ModifiedBetaGeo"}


@app.command(
    epilog=(
        "Examples:\n\n"
        "  clvmodels evaluate                  # CDNOW: calibration to 1997-09-30, holdout "
        "to 1998-06-30\n\n"
        "  clvmodels evaluate tx.parquet --calibration-end 2021-06-30 --observation-end "
        "2021-12-31 --models bgnbd,pareto --out metrics.csv"
    )
)
@_command
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
        str, typer.Option(help="Comma-separated purchase models: bgnbd, pareto, mbgnbd.")
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
    customer_id: CustomerIdOpt = "customer_id",
    datetime_col: DatetimeOpt = "date",
    monetary: MonetaryOpt = "amount",
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """Holdout accuracy: fit on the calibration period, compare predictions with the holdout."""
    import clvmodels as clv
    from clvmodels.evaluation import compare_models

    s = resolve_settings(ctx, dict(locals()), config, evaluate)
    console = Console(s["quiet"])
    names = [m.strip() for m in s["models"].split(",") if m.strip()]
    if not names:
        raise InputError("--models needs at least one of bgnbd, pareto, mbgnbd")
    for name in names:
        _check_choice("--models", name, EVALUATE_MODELS)
    if s["out"] is not None:
        _check_output_parent(s["out"])
        if Path(s["out"]).suffix.lower() not in (".csv", ".parquet", ".json"):
            raise InputError(f"--out {s['out']}: use a .csv, .parquet or .json file name")
    run = Run("evaluate", s)
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
        ch = clv.calibration_holdout_summary(
            source,
            customer_id=s["customer_id"],
            datetime=s["datetime_col"],
            monetary=s["monetary"],
            calibration_end=calibration_end,
            observation_end=observation_end,
            time_unit=s["time_unit"],
        )
        calibration = ch[["frequency", "recency", "T", "monetary_value"]]
        spend_model = clv.GammaGamma().fit(calibration)
        fitted = {}
        for name in names:
            fitted[name] = getattr(clv, EVALUATE_MODELS[name])().fit(calibration)
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
    _print_metrics(console, table, len(ch), calibration_end)
    if s["out"] is not None:
        from clvmodels.io import atomic_write_text
        from clvmodels.scoring import atomic_output

        out = Path(s["out"])
        suffix = out.suffix.lower()
        if suffix == ".json":
            atomic_write_text(out, table.to_json(orient="index", indent=2))
        else:
            with atomic_output(out) as tmp:
                if suffix == ".csv":
                    table.to_csv(tmp)
                else:
                    table.to_parquet(tmp)
        run.record["outputs"].append({"path": str(out), "rows": len(table)})
        run.write(manifest_path(out), metrics=json.loads(table.to_json(orient="index")))
        console.info(f"wrote the metrics of {len(table)} models to {out}")


def _print_metrics(console: Console, table, n_customers: int, calibration_end) -> None:
    if console.quiet:
        return
    from rich.table import Table

    preferred = {
        "purchases_mae": "MAE",
        "purchases_rmse": "RMSE",
        "purchases_total_error": "total error",
        "purchases_spearman": "Spearman",
        "coverage_90": "90% coverage",
        "log_score": "log score",
        "spend_mae": "spend MAE",
    }
    columns = [c for c in preferred if c in table.columns]
    out = Table(
        title=f"Holdout purchases of {n_customers:,} customers (calibration to "
        f"{calibration_end}; all metrics in the --out file)"
    )
    out.add_column("model")
    for c in columns:
        out.add_column(preferred[c], justify="right")
    for name, row in table.iterrows():
        out.add_row(str(name), *[f"{row[c]:.4g}" for c in columns])
    console.out.print(out)


@app.command(
    epilog=(
        "Examples:\n\n"
        "  clvmodels report clv.parquet --out report.html\n\n"
        "  clvmodels report clv.parquet --out report.md      # Markdown + PNG files beside it"
    )
)
@_command
def report(
    ctx: typer.Context,
    clv_file: Annotated[Path, typer.Argument(help="Output of `clvmodels score` (Parquet/CSV).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Report to write: .html, or .md (+ PNG files).")
    ],
    top: Annotated[int, typer.Option(help="Customers listed in the top table.")] = 20,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
):
    """An HTML or Markdown report of a CLV file: totals, deciles, top customers and plots."""
    s = resolve_settings(ctx, dict(locals()), config, report)
    console = Console(s["quiet"])
    _check_output_parent(s["out"])
    run = Run("report", s)
    run.add_input(s["clv_file"], "clv")
    info = write_report(s["clv_file"], s["out"], top=s["top"])
    run.record["outputs"].append({"path": str(s["out"]), **info})
    run.write(manifest_path(s["out"]))
    console.info(f"wrote the report of {info['n_customers']:,} customers to {s['out']}")


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------
def _report_data(path: Path, top: int) -> dict[str, Any]:
    """Aggregates of a CLV file computed by DuckDB (out of core), plus small samples to plot."""
    import duckdb

    from clvmodels.scoring import _connect, _duckdb_source, _first_line, file_format

    columns = file_columns(path, file_format(path))
    needed = ["customer_id", "clv_mean", "clv_lower", "clv_upper"]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise InputError(
            f"{path.name} is missing column(s) {missing}; pass the output of `clvmodels score`"
        )
    source = _duckdb_source(path, file_format(path))
    extra = [c for c in ("probability_alive", "expected_purchases") if c in columns]
    con = _connect()
    try:
        n, total = con.execute(f"SELECT count(*), sum(clv_mean) FROM {source}").fetchall()[0]
        if n == 0:
            raise InputError(f"{path.name} has no rows")
        alive = ", avg(probability_alive) AS mean_p_alive" if "probability_alive" in extra else ""
        deciles = con.sql(
            f"""SELECT decile, count(*) AS customers, sum(clv_mean) AS total_clv,
                       avg(clv_mean) AS mean_clv{alive}
                FROM (SELECT *, ntile(10) OVER (ORDER BY clv_mean DESC) AS decile FROM {source})
                GROUP BY decile ORDER BY decile"""
        ).df()
        show = ", ".join(needed + extra)
        best = con.sql(f"SELECT {show} FROM {source} ORDER BY clv_mean DESC LIMIT {int(top)}").df()
        step = max(1, int(n) // 400)
        ranked = con.sql(
            f"""SELECT rank_, clv_mean, clv_lower, clv_upper FROM (
                  SELECT clv_mean, clv_lower, clv_upper,
                         row_number() OVER (ORDER BY clv_mean DESC) AS rank_ FROM {source})
                WHERE (rank_ - 1) % {step} = 0 ORDER BY rank_"""
        ).df()
        sample = con.sql(
            f"SELECT clv_mean FROM {source} USING SAMPLE reservoir(100000 ROWS) REPEATABLE (1)"
        ).df()
    except duckdb.Error as exc:
        raise InputError(f"cannot read {path} ({_first_line(exc)})") from None
    finally:
        con.close()
    deciles["share"] = deciles["total_clv"] / total if total else float("nan")
    manifest = None
    manifest_file = manifest_path(path)
    if manifest_file.is_file():
        try:
            manifest = json.loads(manifest_file.read_text())
        except (OSError, ValueError):
            manifest = None
    return {
        "n": int(n),
        "total": float(total),
        "deciles": deciles,
        "top": best,
        "ranked": ranked,
        "sample": sample["clv_mean"].to_numpy(),
        "manifest": manifest,
    }


def _report_figures(data: dict[str, Any]) -> dict[str, bytes]:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figures = {}

    def png(fig) -> bytes:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        return buffer.getvalue()

    ranked, n = data["ranked"], data["n"]
    fig, ax = plt.subplots(figsize=(7, 4))
    x = ranked["rank_"].to_numpy() / n * 100
    ax.vlines(x, ranked["clv_lower"], ranked["clv_upper"], color="tab:blue", alpha=0.35,
              label="interval")  # fmt: skip
    ax.plot(x, ranked["clv_mean"], "o", color="tab:blue", markersize=2.5, label="mean CLV")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("customer rank by CLV (percent of customers)")
    ax.set_ylabel("CLV")
    ax.set_title("CLV with its interval, customers ranked")
    ax.legend()
    figures["clv_by_rank.png"] = png(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    values = data["sample"]
    positive = values[values > 0]
    if len(positive):
        bins = np.logspace(np.log10(positive.min()), np.log10(positive.max()), 50)
        ax.hist(positive, bins=bins, color="tab:green", alpha=0.8)
        ax.set_xscale("log")
    ax.set_xlabel("mean CLV (log scale)")
    ax.set_ylabel("customers" + (" (sample)" if n > len(values) else ""))
    ax.set_title("Distribution of CLV")
    figures["clv_histogram.png"] = png(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    deciles = data["deciles"]
    cumulative = np.concatenate([[0.0], np.cumsum(deciles["share"].to_numpy())])
    ax.plot(np.arange(0, len(deciles) + 1) * 10, cumulative * 100, "o-", color="tab:purple")
    ax.plot([0, 100], [0, 100], "--", color="grey", label="all customers equal")
    ax.set_xlabel("top percent of customers by CLV")
    ax.set_ylabel("percent of total CLV")
    ax.set_title("Concentration of value (gain curve by decile)")
    ax.legend()
    figures["gain_curve.png"] = png(fig)
    return figures


def _markdown_table(frame, formats: dict[str, str]) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---:" for _ in frame.columns) + "|"
    rows = []
    for record in frame.to_dict(orient="records"):
        cells = [
            formats.get(c, "{}").format(record[c]) if record[c] is not None else ""
            for c in frame.columns
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])


def write_report(clv_file: Path, out: Path, top: int = 20) -> dict[str, Any]:
    """Write an HTML (plots inline) or Markdown (plots as PNG files beside it) report."""
    import base64
    import html

    from clvmodels.io import atomic_write_text

    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".md"):
        raise InputError(f"--out {out}: use a .html or .md file name")
    data = _report_data(Path(clv_file), top)
    figures = _report_figures(data)
    fmt = {
        "clv_mean": "{:,.2f}",
        "clv_lower": "{:,.2f}",
        "clv_upper": "{:,.2f}",
        "total_clv": "{:,.2f}",
        "mean_clv": "{:,.2f}",
        "share": "{:.1%}",
        "probability_alive": "{:.3f}",
        "mean_p_alive": "{:.3f}",
        "expected_purchases": "{:.2f}",
        "customers": "{:,}",
    }
    lines = [
        f"# Customer lifetime value report: {Path(clv_file).name}",
        "",
        f"- customers: {data['n']:,}",
        f"- total CLV (sum of the customers' means): {data['total']:,.2f}",
    ]
    manifest = data["manifest"] or {}
    eq = manifest.get("customer_equity")
    if eq:
        level = manifest.get("settings", {}).get("interval", 0.9)
        lines.append(
            f"- customer equity: {eq['equity_mean']:,.2f} ({level:.0%} interval "
            f"{eq['equity_lower']:,.2f} to {eq['equity_upper']:,.2f}, from the joint draws)"
        )
    settings = manifest.get("settings")
    if settings:
        keys = ("horizon", "discount_rate", "margin", "interval", "kind", "n_draws", "period")
        lines.append(
            "- settings: " + ", ".join(f"{k}={settings[k]}" for k in keys if k in settings)
        )
    for role, diag in (manifest.get("fit_diagnostics") or {}).items():
        params = ", ".join(f"{k}={v:.4g}" for k, v in (diag.get("params") or {}).items())
        lines.append(f"- {role} model: {diag.get('class')} ({params})")
    lines += [
        "",
        "## Value by decile",
        "",
        _markdown_table(data["deciles"], fmt),
        "",
        f"## Top {len(data['top'])} customers",
        "",
        _markdown_table(data["top"], fmt),
        "",
        "## Plots",
        "",
    ]
    info = {"n_customers": data["n"], "total_clv": data["total"]}
    if suffix == ".md":
        folder = out.with_name(out.stem + "_files")
        folder.mkdir(exist_ok=True)
        for name, content in figures.items():
            tmp = folder / f".{name}.tmp"
            tmp.write_bytes(content)
            os.replace(tmp, folder / name)
            lines += [f"![{name}]({folder.name}/{name})", ""]
        atomic_write_text(out, "\n".join(lines))
        info["figures"] = [str(folder / n) for n in figures]
        return info
    body = []
    in_table: list[str] = []
    for line in lines + [""]:
        if line.startswith("|"):
            in_table.append(line)
            continue
        if in_table:
            body.append(_html_table(in_table))
            in_table = []
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("- "):
            body.append(f"<p>{html.escape(line[2:])}</p>")
    for name, content in figures.items():
        encoded = base64.b64encode(content).decode()
        body.append(f'<img alt="{name}" src="data:image/png;base64,{encoded}">')
    document = (
        "<!doctype html><html><head><meta charset='utf-8'><title>CLV report</title><style>"
        "body{font-family:sans-serif;max-width:960px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
        "text-align:right}img{max-width:100%;display:block;margin:1em 0}</style></head><body>"
        + "\n".join(body)
        + "</body></html>"
    )
    atomic_write_text(out, document)
    return info


def _html_table(rows: list[str]) -> str:
    import html

    cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows]
    header, body = cells[0], cells[2:]
    out = ["<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr>"]
    for row in body:
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return "".join(out) + "</table>"


def main() -> None:  # pragma: no cover - console entry point alias
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
