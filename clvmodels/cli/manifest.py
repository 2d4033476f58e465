"""Run manifests: what a command read, its settings, versions, warnings, wall time, peak memory.

Every command that writes something also writes ``<output>.manifest.json`` (for a model
directory: ``manifest.json`` inside it), atomically like the output itself.
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clvmodels.cli.config import NOT_SETTINGS


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
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
            "settings": {k: v for k, v in settings.items() if k not in NOT_SETTINGS},
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
        self.record["peak_rss_mb"] = round(peak_rss_mb(), 1)
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


def read_manifest(output: Path) -> dict[str, Any] | None:
    """The manifest written with ``output``, or None if there is none or it is unreadable."""
    path = manifest_path(output)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
