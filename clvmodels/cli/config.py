"""Settings from a TOML file, checked against a command's options and coerced to their types.

The file has a table per command (``[score]``, ``[fit]``, ...) whose keys are the long option
names (``discount_rate = 0.1``); top-level keys apply to every command that has that option.
Options given on the command line (or by an environment variable) win over the file.
"""

from __future__ import annotations

import inspect
import tomllib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from clvmodels.errors import InputError

NOT_SETTINGS = {"config", "debug"}
"""Parameters that are not settings: not read from the file, not recorded in manifests."""


def command_names(ctx: typer.Context) -> list[str]:
    """The names of the commands of the application ``ctx`` belongs to."""
    return list(getattr(ctx.find_root().command, "commands", {}))


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
        if param.name in NOT_SETTINGS or getattr(param, "param_type_name", "") != "option":
            continue
        for opt in param.opts:
            if opt.startswith("--"):
                options[opt[2:].replace("-", "_")] = param.name
                long_names.append(opt[2:].replace("-", "_"))
        options.setdefault(param.name, param.name)
    commands = set(command_names(ctx))
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


def _coerce(name: str, raw: Any, annotation: Any, config: Path) -> Any:
    """Check and convert a TOML value to the option's Python type."""
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
    from_file = load_config(config, ctx.info_name or "", ctx)
    hints = typing.get_type_hints(inspect.unwrap(command), include_extras=True)
    resolved = {k: v for k, v in values.items() if k != "ctx"}
    for name, raw in from_file.items():
        source = ctx.get_parameter_source(name)
        if source is not None and getattr(source, "name", "") != "DEFAULT":
            continue  # given on the command line or by an environment variable: it wins
        resolved[name] = _coerce(name, raw, hints.get(name, str), config)
    return resolved
