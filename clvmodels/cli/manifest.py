"""Run manifests: what a command read, its settings, versions, warnings, wall time, peak memory.

Every command that writes something also writes ``<output>.manifest.json`` (for a model
directory: ``manifest.json`` inside it).

Output and manifest never disagree unnoticed
--------------------------------------------
The manifest records, for every file it describes, its size and SHA-256 (``outputs[i].sha256``,
``outputs[i].file`` the file's path relative to the manifest's folder). The outputs are written
to temporaries first; then the manifest is written and renamed into place, and only then the
outputs (:meth:`clvmodels.io.OutputStaging.commit`, with SIGINT/SIGTERM held back). So:

* an output is in place only after its manifest;
* a run killed between the renames (SIGKILL, power loss) leaves the new manifest beside the old
  output (or none): the checksums differ, and :func:`verify_manifest` says so; :func:`read_manifest`
  (what ``clvmodels report`` uses) then warns and ignores the manifest rather than report
  settings that are not those of the file.

A model directory (``clvmodels fit``) is simpler: its manifest is written inside the temporary
directory, which is renamed into place as a whole; the manifest records a digest of the model
files beside it all the same (``outputs[0].directory`` is true).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clvmodels.cli.config import NOT_SETTINGS
from clvmodels.errors import ClvError

MANIFEST_IN_DIRECTORY = "manifest.json"


class ManifestMismatch(ClvError, ValueError):
    """A manifest does not describe the file beside it (or cannot be checked)."""


class ManifestWarning(UserWarning):
    """A manifest was ignored because it does not describe the file beside it."""


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


def tree_digest(directory: Path, exclude: tuple[str, ...] = (MANIFEST_IN_DIRECTORY,)) -> dict:
    """``{"bytes", "sha256"}`` of the files of a directory (names and contents), leaving out
    ``exclude`` at its top level (the manifest inside it)."""
    directory = Path(directory)
    digest = hashlib.sha256()
    size = 0
    for file in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = file.relative_to(directory).as_posix()
        if name in exclude:
            continue
        size += file.stat().st_size
        digest.update(name.encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return {"bytes": size, "sha256": digest.hexdigest()}


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

    def _finish(self, **extra) -> None:
        from clvmodels.io import versions

        self.record.update(extra)
        self.record["versions"] = versions()
        self.record["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.record["wall_seconds"] = round(time.perf_counter() - self.started, 3)
        self.record["peak_rss_mb"] = round(peak_rss_mb(), 1)

    def _text(self) -> str:
        return json.dumps(self.record, indent=2, default=str, allow_nan=True)

    def _output_entry(self, path: Path) -> dict[str, Any]:
        """The ``outputs`` entry of ``path`` (added when the command did not add one)."""
        key = os.path.abspath(path)
        for entry in self.record["outputs"]:
            if os.path.abspath(entry.get("path", "")) == key:
                return entry
        entry = {"path": str(path)}
        self.record["outputs"].append(entry)
        return entry

    def commit(self, staging, path: Path, **extra) -> Path:
        """Write the manifest ``path`` with the checksums of the outputs staged in ``staging``
        (:class:`clvmodels.io.OutputStaging`), then rename it and them into place (the manifest
        first)."""
        path = Path(path)
        self._finish(**extra)

        def render(described: dict[Path, dict[str, Any]]) -> str:
            for final, digest in described.items():
                entry = self._output_entry(final)
                entry["file"] = os.path.relpath(final, os.path.abspath(path.parent))
                entry.update(digest)
            return self._text()

        staging.commit(path, render)
        return path

    def write_into(self, directory: Path, output: Path, **extra) -> Path:
        """Write the manifest into the (temporary) model ``directory`` about to become
        ``output``, with a digest of the files beside it: the directory's rename makes both
        appear at once."""
        from clvmodels.io import _fsync_write

        self._finish(**extra)
        entry = self._output_entry(output)
        entry.update(file=".", directory=True, **tree_digest(directory))
        path = Path(directory) / MANIFEST_IN_DIRECTORY
        _fsync_write(path, self._text())
        return path


def manifest_path(output: Path) -> Path:
    """Where the manifest of ``output`` goes: inside a directory, beside a file."""
    output = Path(output)
    return (
        output / MANIFEST_IN_DIRECTORY
        if output.is_dir()
        else output.with_name(output.name + ".manifest.json")
    )


def verify_manifest(output: Path) -> dict[str, Any]:
    """The manifest of ``output`` after checking that every file it describes is the one
    beside it (size and SHA-256); :class:`ManifestMismatch` saying what differs otherwise.

    A mismatch means the run was killed between renaming the manifest and its output, or the
    output was replaced or edited afterwards: the manifest's settings and numbers are not those
    of the file.
    """
    from clvmodels.io import file_digest

    output = Path(output)
    path = manifest_path(output)
    if not path.is_file():
        raise ManifestMismatch(f"{output} has no manifest ({path.name})")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestMismatch(f"{path} is unreadable ({exc})") from None
    entries = record.get("outputs") if isinstance(record, dict) else None
    checked = [e for e in entries or [] if isinstance(e, dict) and "sha256" in e and "file" in e]
    if not checked:
        raise ManifestMismatch(
            f"{path} records no checksum of its outputs (written by an older clvmodels), so "
            "whether it describes the files beside it cannot be checked"
        )
    for entry in checked:
        file = (path.parent / entry["file"]) if not entry.get("directory") else output
        try:
            actual = tree_digest(file) if entry.get("directory") else file_digest(file)
        except OSError:
            raise ManifestMismatch(
                f"{path} describes {file}, which is missing: the run that wrote them was "
                "interrupted between the two, or the file was moved"
            ) from None
        if actual["sha256"] != entry["sha256"]:
            raise ManifestMismatch(
                f"{path} does not describe {file}: its SHA-256 differs (the run was interrupted "
                "between writing the manifest and the file, or the file was replaced or edited "
                "afterwards)"
            )
    return record


def read_manifest(output: Path) -> dict[str, Any] | None:
    """The manifest written with ``output`` if it describes it (:func:`verify_manifest`); None
    when there is none, and None with a :class:`ManifestWarning` when it does not match."""
    if not manifest_path(output).is_file():
        return None
    try:
        return verify_manifest(output)
    except ManifestMismatch as exc:
        warnings.warn(f"{exc}; its settings and totals are ignored", ManifestWarning, stacklevel=2)
        return None
