"""The CLI's error policy: one line on stderr, ``Error: <what is wrong and how to fix it>``.

Exit codes: 2 for bad input (files, columns, values, options) and for a missing optional
dependency (the message names the extra to install: ``pip install "clvmodels[bayes]"``), 1 for
anything else, 130 when interrupted (Ctrl-C, SIGINT), 143 when terminated (SIGTERM: ``kill``, a
scheduler's timeout).
:func:`handle_errors` wraps every command body; ``--debug`` re-raises instead.

SIGTERM is handled like SIGINT: it raises :class:`Terminated` (a ``KeyboardInterrupt``) in the
command, so the same cleanup runs (temporary outputs and scratch folders removed, previous
outputs left intact) before the process exits with 143.
"""

from __future__ import annotations

import contextlib
import functools
import re
import signal
import sys
import threading
import tomllib
from collections.abc import Callable, Iterator

import typer

from clvmodels.errors import (
    ClvError,
    InputError,
    MissingExtraError,
    ModelFileError,
    TimeUnitError,
    missing_extra,
)

EXIT_INPUT = 2
EXIT_OTHER = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM; raised in the main thread like Ctrl-C's KeyboardInterrupt."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Terminated` (main thread only; elsewhere the
    handler cannot be set and nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError):  # pragma: no cover - embedded interpreters
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    if isinstance(exc, Terminated):
        return EXIT_TERMINATED, (
            "terminated (SIGTERM); no output was written (previous outputs are intact)"
        )
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted; no output was written (previous outputs are intact)"
    if (
        isinstance(exc, FileNotFoundError)
        and exc.filename
        and not str(exc).startswith(("input", "model"))
    ):
        return EXIT_INPUT, f"file not found: {exc.filename}"
    if isinstance(exc, ImportError):
        extra = missing_extra(exc)
        if extra is not None:  # an optional dependency: name the extra that installs it
            return EXIT_INPUT, one_line(extra)
    if isinstance(exc, (MissingExtraError, *_input_error_types())):
        return EXIT_INPUT, one_line(exc)
    if isinstance(exc, MemoryError):
        return EXIT_OTHER, "out of memory; lower --chunk-size or --draws"
    if isinstance(exc, ClvError | ValueError):
        return EXIT_OTHER, one_line(exc)
    return EXIT_OTHER, (
        f"unexpected {type(exc).__name__}: {one_line(exc)} (run again with --debug for the "
        "traceback and report it)"
    )


def handle_errors(func: Callable) -> Callable:
    """Run a command body with the error policy: one line on stderr and an exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        debug = bool(kwargs.get("debug"))
        try:
            with sigterm_as_interrupt():
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
