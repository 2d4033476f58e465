"""Model files: save and load fitted models without pickle.

A *model directory* holds one fitted model::

    model_dir/
        model.json      schema version, class name, settings, parameters, time unit,
                        fit diagnostics, clvmodels/numpy/... versions, checksums of the
                        other files
        posterior.nc    (Bayesian models only) the posterior as NetCDF, written and read by
                        the model's own hooks

A *scoring directory* (what ``clvmodels fit`` writes) holds a purchase model and a spend model
side by side, each a model directory, plus a ``model.json`` that names them::

    scoring_dir/
        model.json      {"format": "clvmodels-pipeline", "components": {...}, ...}
        purchase/model.json
        spend/model.json

Safety
------
* Loading never imports a module named in the file and never unpickles: the ``class`` field is
  looked up in :mod:`clvmodels.registry`, the fixed registry of the library's own models, and in
  :data:`OTHER_MODEL_CLASSES` (``SubscriptionPrice``, ``TimeVaryingParetoNBD``: a loaded
  time-varying model holds no covariates; attach them with ``with_future_covariates(table)``
  before predicting, or it raises an InputError saying so).
* ``schema_version`` must equal :data:`SCHEMA_VERSION`; anything else is refused with a message
  saying what wrote the file and what to do. A file whose checksum does not match (a truncated
  or edited ``posterior.nc``) is refused too.
* Every field is checked on load against the model class (its family's ``param_names`` and
  settings): a missing, extra or ill-typed field, a parameter that is not a positive finite
  number, a covariance that is not symmetric positive semi-definite (or all NaN: a fit without
  standard errors), a duplicated key, are refused with a :class:`ModelFileError` naming the
  file and the field. A loaded model is never one that could not have been fitted.
* Saving is atomic: everything is written into a temporary sibling directory which then
  replaces the target, so a crash leaves either the previous complete model or none, never a
  half-written one. An existing directory is only ever replaced if it is itself a model
  directory (or empty): ``save_model(model, "/home/me")`` cannot delete your files.

Temporaries
-----------
Every temporary file or directory is a hidden sibling of its target named
``.<target>.tmp-<host>-<pid>-<token>[suffix]`` (``.old-`` for a directory being replaced), with
``<host>`` 8 hex digits of this machine's name and ``<pid>`` the writing process. A run that is
killed (SIGKILL, power loss) leaves them behind; the next write of the same target removes those
whose process is no longer alive on this host (:func:`remove_stale_temporaries`; another host's
only after a week), and puts back a directory that was moved aside (``.old-``) when the run died
before the new one took its place. Scratch folders (``clvmodels-scratch-<host>-<pid>-*`` in the
system temporary directory) are removed the same way (:func:`remove_stale_scratch`).

Outputs with a manifest
-----------------------
:func:`staged_outputs` groups the files of one command so that they and their manifest can
never disagree: the writers (:func:`atomic_write_text`,
:func:`clvmodels.scoring.atomic_output`) leave the claimed files as temporaries, and
:meth:`OutputStaging.commit` records each one's SHA-256 in the manifest, renames the manifest
into place first and the outputs after it (SIGINT/SIGTERM held back meanwhile, and a directory
lock taken against a concurrent commit). A crash between the renames leaves a manifest whose
checksums do not match the files beside it, which readers detect
(:func:`clvmodels.cli.manifest.verify_manifest`); an output is never in place without its
manifest having been written first.

Floats are written with Python's ``repr`` (exact round trip: a loaded model scores identically);
non-finite values (e.g. an unavailable covariance) are written as ``NaN``/``Infinity`` the way
Python's :mod:`json` does.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import importlib
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from clvmodels.errors import ModelFileError

__all__ = [
    "SCHEMA_VERSION",
    "model_class",
    "save_model",
    "load_model",
    "save_pipeline",
    "load_pipeline",
    "ScoringModels",
    "versions",
    "atomic_directory",
    "atomic_write_text",
    "temporary_path",
    "publish",
    "remove_stale_temporaries",
    "remove_stale_scratch",
    "scratch_prefix",
    "file_digest",
    "OutputStaging",
    "staged_outputs",
]

#: Version of the on-disk layout. Bump it whenever a field changes meaning; loading refuses
#: any other version rather than guessing.
SCHEMA_VERSION = 1

MODEL_FILE = "model.json"
MODEL_FORMAT = "clvmodels-model"
PIPELINE_FORMAT = "clvmodels-pipeline"

#: The classes outside :mod:`clvmodels.registry` that a model file may name: class name ->
#: defining module (the spend side of subscriptions and the time-varying Pareto/NBD). Nothing
#: else is ever imported on load.
OTHER_MODEL_CLASSES = MappingProxyType(
    {
        "SubscriptionPrice": "clvmodels.subscriptions",
        "TimeVaryingParetoNBD": "clvmodels.estimators.time_varying",
    }
)


# --------------------------------------------------------------------------------------------
# small helpers shared with the CLI and the scorer
# --------------------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    """Versions of Python, clvmodels and the numerical stack (for manifests and model files)."""
    import clvmodels

    out = {"python": platform.python_version(), "clvmodels": clvmodels.__version__}
    for name in ("numpy", "scipy", "pandas", "pyarrow", "duckdb", "pymc", "arviz"):
        module = sys.modules.get(name)
        if module is None and name in ("numpy", "scipy", "pandas"):
            module = importlib.import_module(name)
        if module is not None:
            out[name] = str(getattr(module, "__version__", "unknown"))
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def file_digest(path: str | os.PathLike) -> dict[str, Any]:
    """``{"bytes": size, "sha256": hex digest}`` of a file."""
    path = Path(path)
    return {"bytes": path.stat().st_size, "sha256": _sha256(path)}


# --------------------------------------------------------------------------------------------
# temporaries: recognisable names; the stale ones of killed runs are removed by the next run
# --------------------------------------------------------------------------------------------
#: This machine, as 8 hex digits: temporaries name the host and the process that wrote them.
HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
#: A temporary of another host (shared file system) is stale only after this many seconds,
#: since whether its process is alive cannot be checked from here.
OTHER_HOST_STALE_SECONDS = 7 * 24 * 3600
#: A temporary named by an older clvmodels (``.NAME.tmp-<token>``, without host and process)
#: is stale after this many seconds.
UNNAMED_STALE_SECONDS = 24 * 3600
SCRATCH_PREFIX = "clvmodels-scratch-"

_TEMPORARY = re.compile(
    r"\.(?P<target>.+)\.(?P<kind>tmp|old)-(?:(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-)?"
    r"(?P<token>[0-9a-f]{8})(?:\..*)?"
)
_SCRATCH = re.compile(
    re.escape(SCRATCH_PREFIX) + r"(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-.*|clvmodels-[a-z0-9_]{8}"
)


def temporary_path(path: str | os.PathLike, kind: str = "tmp", *, keep_suffix: bool = True) -> Path:
    """A fresh, recognisable temporary sibling of ``path``:
    ``.<name>.<kind>-<host>-<pid>-<token>`` plus the extension of ``name`` (so that the format
    of a file can still be told from its temporary name)."""
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]) if keep_suffix else ""
    if not re.fullmatch(r"(\.[A-Za-z0-9]+)*", suffix):
        suffix = path.suffix if re.fullmatch(r"\.[A-Za-z0-9]+", path.suffix) else ""
    token = uuid.uuid4().hex[:8]
    return path.with_name(f".{path.name}.{kind}-{HOST_TAG}-{os.getpid()}-{token}{suffix}")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (True when that cannot be told)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def _stale(host: str | None, pid: str | None, entry: Path) -> bool:
    """Whether a temporary (or scratch folder) written by ``pid`` on ``host`` is left over from
    a run that is over: its process is gone (this host), or it is old (another host, or a name
    without host and process)."""
    if host == HOST_TAG:
        return int(pid) != os.getpid() and not process_alive(int(pid))
    try:
        age = time.time() - entry.lstat().st_mtime
    except OSError:
        return False
    return age > (UNNAMED_STALE_SECONDS if host is None else OTHER_HOST_STALE_SECONDS)


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def remove_stale_temporaries(path: str | os.PathLike, *, any_target: bool = False) -> list[str]:
    """Remove the temporaries of ``path`` left by runs that were killed; return what was done.

    A temporary is stale when the process named in it is no longer alive on this host (see
    :func:`temporary_path`). A stale ``.old-`` directory (a model directory moved aside while
    its replacement was renamed in) is put back when ``path`` does not exist: the run died
    between the two renames, and the previous complete output is restored. With
    ``any_target`` ``path`` is a directory whose stale temporaries of any name are removed.
    """
    path = Path(path)
    directory = path if any_target else path.parent
    try:
        entries = sorted(directory.iterdir(), key=lambda e: e.name)
    except OSError:
        return []
    stale: list[tuple[Path, re.Match]] = []
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry.name)
        if match is None or (not any_target and match["target"] != path.name):
            continue
        if _stale(match["host"], match["pid"], entry):
            stale.append((entry, match))
    done = []
    old = [e for e, m in stale if m["kind"] == "old" and e.is_dir()]
    if old and not any_target and not path.exists():
        newest = max(old, key=lambda e: e.lstat().st_mtime)
        try:
            os.replace(newest, path)
            done.append(f"restored {path} from {newest.name}, left by an interrupted run")
        except OSError:
            pass
    for entry, _ in stale:
        if entry.exists() or entry.is_symlink():
            _remove(entry)
            done.append(f"removed {entry}, left by an interrupted run")
    return done


def scratch_prefix() -> str:
    """Prefix of this process's scratch folders in the system temporary directory."""
    return f"{SCRATCH_PREFIX}{HOST_TAG}-{os.getpid()}-"


def scratch_directory(name: str) -> Path:
    """A scratch folder of this process (not created), e.g. DuckDB's spill directory."""
    return Path(tempfile.gettempdir()) / f"{scratch_prefix()}{name}"


def remove_stale_scratch(root: str | os.PathLike | None = None) -> list[str]:
    """Remove the scratch folders of runs that were killed (see :func:`scratch_prefix`)."""
    root = Path(root if root is not None else tempfile.gettempdir())
    done = []
    try:
        entries = [e for e in root.iterdir() if e.name.startswith("clvmodels-")]
    except OSError:
        return done
    for entry in entries:
        match = _SCRATCH.fullmatch(entry.name)
        if match is not None and _stale(match["host"], match["pid"], entry):
            _remove(entry)
            done.append(f"removed {entry}, left by an interrupted run")
    return done


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back (main thread only) and deliver them after the block: the
    renames of a commit are never split by Ctrl-C or a polite kill."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
        except (ValueError, OSError):  # pragma: no cover - not the main interpreter
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(received):
            signal.raise_signal(sig)


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[int | None]:
    """An exclusive ``flock`` on ``directory`` (best effort): two commits into the same
    directory do not interleave their renames. Yields the directory's descriptor (to fsync)."""
    try:
        import fcntl

        fd = os.open(directory, os.O_RDONLY)
    except (ImportError, OSError):  # pragma: no cover - not POSIX
        yield None
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _fsync_directory(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.fsync(fd)


# --------------------------------------------------------------------------------------------
# outputs committed together with their manifest
# --------------------------------------------------------------------------------------------
_STAGING: contextvars.ContextVar[OutputStaging | None] = contextvars.ContextVar(
    "clvmodels_output_staging", default=None
)


def _key(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(path))


class OutputStaging:
    """The output files of one command, renamed into place together with their manifest.

    ``files`` are the output paths and ``folders`` directories whose files are all outputs (the
    PNG files of a Markdown report). While the staging is active (:func:`staged_outputs`), the
    writers leave these files as temporaries; :meth:`commit` then writes the manifest with the
    SHA-256 of each, renames the manifest into place and then the outputs.
    """

    def __init__(self, files: Iterable[str | os.PathLike] = (), folders: Iterable = ()):
        self.files = {_key(p) for p in files}
        self.folders = {_key(p) for p in folders}
        self.staged: dict[Path, Path] = {}  # final path -> its complete temporary
        self.committed = False

    def claims(self, path: str | os.PathLike) -> bool:
        key = _key(path)
        return key in self.files or key.parent in self.folders

    def stage(self, tmp: Path, path: str | os.PathLike) -> None:
        """Keep the complete temporary ``tmp`` of ``path`` until :meth:`commit`."""
        previous = self.staged.pop(_key(path), None)
        if previous is not None and previous != Path(tmp):
            previous.unlink(missing_ok=True)
        self.staged[_key(path)] = Path(tmp)

    def discard(self) -> None:
        """Remove the staged temporaries (the previous outputs stay as they were)."""
        for tmp in self.staged.values():
            tmp.unlink(missing_ok=True)
        self.staged.clear()

    def commit(
        self, manifest: str | os.PathLike, render: Callable[[dict[Path, dict[str, Any]]], str]
    ) -> None:
        """Write the manifest ``render({output: {"bytes", "sha256"}})`` and rename it into place,
        then every staged output, SIGINT/SIGTERM held back and the directory locked meanwhile.

        A crash after the manifest's rename and before the last output's leaves a manifest whose
        checksums do not match the files beside it: detectable, never silently inconsistent.
        """
        manifest = Path(manifest)
        remove_stale_temporaries(manifest)
        described = {final: file_digest(tmp) for final, tmp in self.staged.items()}
        text = render(described)
        tmp_manifest = temporary_path(manifest)
        try:
            _fsync_write(tmp_manifest, text)
            with _signals_held(), _directory_lock(manifest.parent) as fd:
                os.replace(tmp_manifest, manifest)
                for final, tmp in self.staged.items():
                    os.replace(tmp, final)
                self.staged.clear()
                self.committed = True
                _fsync_directory(fd)
        finally:
            tmp_manifest.unlink(missing_ok=True)


def current_staging() -> OutputStaging | None:
    """The active :class:`OutputStaging` (None outside :func:`staged_outputs`)."""
    return _STAGING.get()


@contextlib.contextmanager
def staged_outputs(
    files: Iterable[str | os.PathLike] = (), folders: Iterable[str | os.PathLike] = ()
) -> Iterator[OutputStaging]:
    """Within the block, writes to ``files`` (and into ``folders``) are staged, to be renamed
    into place by :meth:`OutputStaging.commit` together with their manifest. On an exception,
    or a block that ends without committing what it staged, the staged files are removed."""
    staging = OutputStaging(files, folders)
    token = _STAGING.set(staging)
    try:
        yield staging
    except BaseException:
        staging.discard()
        raise
    finally:
        _STAGING.reset(token)
    if staging.staged:
        staging.discard()
        raise RuntimeError("outputs were written but not committed with their manifest")


def publish(tmp: Path, path: Path) -> None:
    """Put the complete temporary ``tmp`` in place of ``path`` (``os.replace``), or stage it
    when ``path`` is an output of the active :func:`staged_outputs`."""
    staging = _STAGING.get()
    if staging is not None and staging.claims(path):
        staging.stage(tmp, path)
    else:
        os.replace(tmp, path)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary sibling file and ``os.replace``."""
    path = Path(path)
    remove_stale_temporaries(path)
    tmp = temporary_path(path)
    done = False
    try:
        _fsync_write(tmp, text)
        publish(tmp, path)
        done = True
    finally:
        if not done:
            tmp.unlink(missing_ok=True)


def _is_replaceable(directory: Path) -> bool:
    """An existing path may be replaced only if it is an empty directory or a model directory."""
    if not directory.is_dir():
        return False
    return (directory / MODEL_FILE).is_file() or not any(directory.iterdir())


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` when the block succeeds.

    On an exception the temporary directory is removed and ``target`` is untouched. An
    existing ``target`` is moved aside first and deleted only after the new one is in place
    (POSIX cannot rename a directory over a non-empty one), so at every moment either the old
    or the new complete directory exists under a recognisable name; if the process dies between
    the two renames, the next write of ``target`` puts the old one back first
    (:func:`remove_stale_temporaries`).
    """
    target = Path(target)
    remove_stale_temporaries(target)
    if target.exists() and not _is_replaceable(target):
        kind = "a file" if not target.is_dir() else "a non-empty directory that is not a model"
        raise ModelFileError(
            f"refusing to overwrite {target}: it is {kind}. Choose a new output directory."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(target, keep_suffix=False)
    tmp.mkdir()
    try:
        yield tmp
        with _signals_held(), _directory_lock(target.parent) as fd:
            if target.exists():
                old = temporary_path(target, "old", keep_suffix=False)
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
            _fsync_directory(fd)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# single models
# --------------------------------------------------------------------------------------------
def model_class(name: Any):
    """The clvmodels estimator class named in a model file; ModelFileError when unknown."""
    from clvmodels import registry

    if isinstance(name, str) and name in OTHER_MODEL_CLASSES:
        return getattr(importlib.import_module(OTHER_MODEL_CLASSES[name]), name)
    try:
        return registry.class_by_name(name)
    except (KeyError, TypeError):
        known = ", ".join(saved_class_names())
        raise ModelFileError(
            f"the model file names class {name!r}, which is not a clvmodels model "
            f"(known: {known}); it was not written by clvmodels.save_model"
        ) from None


def saved_class_names() -> list[str]:
    """Every class a model file may hold: the registry's models and :data:`OTHER_MODEL_CLASSES`."""
    from clvmodels import registry

    return [*registry.public_names(), *OTHER_MODEL_CLASSES]


def _subscription_price_payload(model) -> dict[str, Any]:
    """A fitted :class:`~clvmodels.subscriptions.SubscriptionPrice`: its price setting (None:
    each customer's ``price`` column) and time unit; there is nothing estimated."""
    model.check_fitted()
    return {"class": type(model).__name__, "price": model.price, "time_unit": model.time_unit_}


def _subscription_price_from_payload(payload: dict[str, Any]):
    """Rebuild a SubscriptionPrice through its public ``fit`` (which only checks prices and
    records the time unit) on a table without customers."""
    import pandas as pd

    from clvmodels.subscriptions import SubscriptionPrice

    empty = pd.DataFrame({"price": pd.Series(dtype=float)})
    empty.attrs["time_unit"] = payload["time_unit"]
    return SubscriptionPrice(price=payload["price"]).fit(empty)


def _uses_own_files(model_or_class) -> bool:
    """Bayesian models persist themselves (``save(dir)``/``load(dir)``: JSON + NetCDF)."""
    cls = model_or_class if isinstance(model_or_class, type) else type(model_or_class)
    return not hasattr(cls, "from_dict") and callable(getattr(cls, "load", None))


def _model_payload(model) -> dict[str, Any]:
    name = type(model).__name__
    known = saved_class_names()
    if name not in known or type(model) is not model_class(name):
        raise TypeError(f"save_model saves clvmodels models ({', '.join(known)}), got {name}")
    if _uses_own_files(model):
        model.check_fitted()
        return {"class": name, "time_unit": model.time_unit_, "stored_in_files": True}
    payload = _subscription_price_payload(model) if name == "SubscriptionPrice" else model.to_dict()
    try:  # what load_model would refuse is not written in the first place
        _check_payload(type(model), json.loads(json.dumps(payload, allow_nan=True)))
    except _Invalid as exc:
        raise ValueError(
            f"cannot save this {name}: its field {exc.field!r} {exc.problem} (a fitted model "
            "never has this; was it modified after fitting?)"
        ) from None
    return payload


def _write_model(model, directory: Path, metadata: dict[str, Any] | None) -> dict[str, Any]:
    """Write ``model`` into the (new, empty) ``directory``; return the model.json content."""
    payload = _model_payload(model)
    files: dict[str, dict[str, str]] = {}
    if _uses_own_files(model):
        # Bayesian models write settings JSON + posterior NetCDF themselves; we checksum them
        model.save(directory)
        for path in sorted(directory.iterdir()):
            if path.is_file() and path.name != MODEL_FILE:
                files[path.name] = {"sha256": _sha256(path)}
    document = {
        "format": MODEL_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "class": type(model).__name__,
        "kind": getattr(model, "kind", None),
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "files": files,
        "metadata": metadata or {},
        "model": payload,
    }
    _fsync_write(directory / MODEL_FILE, json.dumps(document, indent=2, allow_nan=True))
    return document


def save_model(model, directory: str | os.PathLike, *, metadata: dict | None = None) -> Path:
    """Save a fitted model into ``directory`` (created or atomically replaced).

    Parameters
    ----------
    model
        A fitted clvmodels model: a registry model (``BetaGeo``, ``ParetoNBD``,
        ``ShiftedBetaGeo``, ``GammaGamma``, hierarchical models, ...), ``SubscriptionPrice`` or
        ``TimeVaryingParetoNBD`` (its estimates; the covariate table is data and is not saved).
    directory
        Target directory. An existing model directory is replaced atomically; any other
        existing non-empty directory or file is refused.
    metadata
        Optional JSON-able dict stored alongside (e.g. what data the model was fit on).

    Returns
    -------
    The directory path.

    Examples
    --------
    >>> bg = clv.BetaGeo().fit(summary)                       # doctest: +SKIP
    >>> clv.save_model(bg, "models/bgnbd")                    # doctest: +SKIP
    >>> clv.load_model("models/bgnbd").expected_purchases(summary, "52W")  # doctest: +SKIP
    """
    _model_payload(model)  # fail before touching the disk (unfitted, wrong type)
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        _write_model(model, tmp, metadata)
    return directory


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    if duplicated:
        raise ValueError(f"duplicate key(s) {duplicated}")
    return dict(pairs)


def _read_document(directory: Path) -> dict[str, Any]:
    if not directory.exists():
        raise FileNotFoundError(f"model directory {directory} does not exist")
    if not directory.is_dir():
        raise ModelFileError(
            f"{directory} is a file, not a model directory; pass the directory that "
            "clvmodels.save_model or `clvmodels fit --out` wrote"
        )
    path = directory / MODEL_FILE
    if not path.is_file():
        raise ModelFileError(
            f"{directory} is not a clvmodels model directory: it has no {MODEL_FILE}"
        )
    try:
        document = json.loads(
            path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{path} is corrupt (not valid JSON: {exc})") from None
    if not isinstance(document, dict) or document.get("format") not in (
        MODEL_FORMAT,
        PIPELINE_FORMAT,
    ):
        raise ModelFileError(f"{path} is not a clvmodels model file (no 'format' field)")
    version = document.get("schema_version")
    if isinstance(version, bool) or version != SCHEMA_VERSION:
        versions_field = document.get("versions")
        written_by = (
            versions_field.get("clvmodels", "an unknown version")
            if isinstance(versions_field, dict)
            else "an unknown version"
        )
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            advice = "upgrade clvmodels to read it"
        else:
            advice = "refit the model with this clvmodels and save it again"
        raise ModelFileError(
            f"{path} has schema version {version!r} (written by clvmodels {written_by}); "
            f"this clvmodels reads schema version {SCHEMA_VERSION} only: {advice}"
        )
    _check_document(path, document)
    return document


# --------------------------------------------------------------------------------------------
# field checks: every field of a model file against what the model class writes
# --------------------------------------------------------------------------------------------
#: The fields of a single model's ``model.json`` and of a scoring directory's, with their types.
MODEL_DOCUMENT_FIELDS: dict[str, tuple[type, ...]] = {
    "format": (str,),
    "schema_version": (int,),
    "class": (str,),
    "kind": (str,),
    "saved_at": (str,),
    "versions": (dict,),
    "files": (dict,),
    "metadata": (dict,),
    "model": (dict,),
}
PIPELINE_DOCUMENT_FIELDS: dict[str, tuple[type, ...]] = {
    "format": (str,),
    "schema_version": (int,),
    "saved_at": (str,),
    "versions": (dict,),
    "components": (dict,),
    "metadata": (dict,),
}
#: The fields of ``MaximumLikelihoodModel.to_dict`` (the ``model`` section of an MLE model).
MAXIMUM_LIKELIHOOD_FIELDS = (
    "class",
    "settings",
    "family",
    "time_unit",
    "params",
    "log_covariance",
    "log_likelihood",
    "converged",
    "optimizer_message",
    "n_customers",
)
#: Fields of ``to_dict`` that files written by earlier versions of schema 1 may lack.
MAXIMUM_LIKELIHOOD_OPTIONAL_FIELDS = ("boundary_parameters", "covariates")
#: Settings of a covariate model (``model.settings``), present only when covariates are used.
COVARIATE_SETTINGS = (
    "purchase_covariates",
    "dropout_covariates",
    "spend_covariates",
    "penalty",
    "same_coefficients",
)
#: The ``model`` section of a model that stores itself in its own files (Bayesian models).
OWN_FILES_FIELDS = ("class", "time_unit", "stored_in_files")
#: The ``model`` section of a :class:`~clvmodels.subscriptions.SubscriptionPrice`.
SUBSCRIPTION_PRICE_FIELDS = ("class", "price", "time_unit")
#: The ``model`` section of a :class:`~clvmodels.estimators.time_varying.TimeVaryingParetoNBD`
#: (its ``to_dict``; the covariate table is data and is not saved).
TIME_VARYING_FIELDS = (
    "class",
    "settings",
    "time_unit",
    "observation_end",
    "theta",
    "theta_covariance",
    "log_likelihood",
    "converged",
    "boundary_parameters",
    "optimizer_message",
    "n_customers",
)


class _Invalid(Exception):
    """A field check failed: ``field`` (dotted path) and ``problem``."""

    def __init__(self, field: str, problem: str):
        super().__init__(field, problem)
        self.field, self.problem = field, problem


def _file_error(path: Path, field: str, problem: str) -> ModelFileError:
    return ModelFileError(
        f"{path}: field {field!r} {problem}; the file is corrupt or incomplete, or was edited "
        "after saving: refit the model and save it again"
    )


_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", int: "a whole number"}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    for kind, name in ((bool, "boolean"), (dict, "object"), (list, "list"), (str, "string")):
        if isinstance(value, kind):
            return name
    return "number" if isinstance(value, int | float) else type(value).__name__


def _fields(value: dict[str, Any], expected, where: str, optional=()) -> None:
    """Exactly the ``expected`` keys (plus any of ``optional``): a missing or an extra field is
    an error."""
    missing = [k for k in expected if k not in value]
    if missing:
        raise _Invalid(f"{where}{missing[0]}", "is missing")
    extra = [k for k in value if k not in expected and k not in optional]
    if extra:
        raise _Invalid(f"{where}{extra[0]}", "is not a field of this file (unexpected)")


def _typed(value: Any, types: tuple[type, ...], field: str, what: str) -> Any:
    if isinstance(value, bool) and bool not in types:
        raise _Invalid(field, f"must be {what}, got {value!r}")
    if not isinstance(value, types):
        shown = "null" if value is None else f"{_type_name(value)} {json.dumps(value)[:40]}"
        raise _Invalid(field, f"must be {what}, got {shown}")
    return value


def _number(value: Any, field: str) -> float:
    _typed(value, (int, float), field, "a number")
    return float(value)


def _check_document(path: Path, document: dict[str, Any]) -> None:
    """Top-level fields of a model file: present, no others, of the right types."""
    expected = (
        MODEL_DOCUMENT_FIELDS if document["format"] == MODEL_FORMAT else PIPELINE_DOCUMENT_FIELDS
    )
    try:
        _fields(document, expected, "")
        for name, types in expected.items():
            _typed(document[name], types, name, _JSON_TYPES[types[0]])
        for name, value in document["versions"].items():
            _typed(value, (str,), f"versions.{name}", "a version string")
        for name, info in document.get("files", {}).items():
            if Path(name).name != name or name in ("", ".", ".."):
                raise _Invalid(f"files.{name}", "is not a file name in the model directory")
            _typed(info, (dict,), f"files.{name}", "an object")
            _fields(info, ("sha256",), f"files.{name}.")
            digest = info["sha256"]
            if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
                raise _Invalid(f"files.{name}.sha256", f"must be a SHA-256 digest, got {digest!r}")
        if document["format"] == PIPELINE_FORMAT:
            components = document["components"]
            _fields(components, ("purchase", "spend"), "components.")
            for role, component in components.items():
                where = f"components.{role}"
                _typed(component, (dict,), where, "an object")
                _fields(component, ("directory", "class"), where + ".")
                sub = _typed(component["directory"], (str,), where + ".directory", "a name")
                if Path(sub).name != sub or sub in ("", ".", ".."):
                    raise _Invalid(where + ".directory", f"must name a subdirectory, got {sub!r}")
                _typed(component["class"], (str,), where + ".class", "a class name")
    except _Invalid as exc:
        raise _file_error(path, exc.field, exc.problem) from None


def _check_time_unit(value: Any, field: str, required: bool) -> None:
    from clvmodels import units
    from clvmodels.errors import TimeUnitError

    if value is None and not required:
        return
    _typed(value, (str,), field, "a time unit such as 'W'")
    try:
        units.normalize_unit(value)
    except TimeUnitError:
        raise _Invalid(field, f"is not a time unit: {value!r}") from None


def _check_covariance(value: Any, names: list[str], field: str) -> None:
    """A list of ``len(names)`` rows of numbers: all NaN (a fit without standard errors), or
    finite, symmetric and positive semi-definite."""
    import numpy as np

    n = len(names)
    _typed(value, (list,), field, f"a {n} x {n} matrix (list of lists)")
    if len(value) != n or any(not isinstance(row, list) or len(row) != n for row in value):
        raise _Invalid(field, f"must be a {n} x {n} matrix for parameters {', '.join(names)}")
    for i, row in enumerate(value):
        for j, x in enumerate(row):
            _typed(x, (int, float), f"{field}[{i}][{j}]", "a number")
    matrix = np.array(value, dtype=float)
    if np.all(np.isnan(matrix)):
        return
    if not np.all(np.isfinite(matrix)):
        raise _Invalid(
            field, "must be all finite, or all NaN for a fit without standard errors; it mixes"
        )
    scale = max(float(np.max(np.abs(matrix))), np.finfo(float).tiny)
    asymmetry = float(np.max(np.abs(matrix - matrix.T)))
    if asymmetry > 1e-8 * scale:
        raise _Invalid(field, f"must be symmetric (differs from its transpose by {asymmetry:.3g})")
    eigenvalues = np.linalg.eigvalsh((matrix + matrix.T) / 2)
    if eigenvalues.min() < -1e-8 * max(float(np.max(np.abs(eigenvalues))), scale):
        raise _Invalid(
            field,
            f"is not a covariance matrix: it has a negative eigenvalue {eigenvalues.min():.3g} "
            "(not positive semi-definite)",
        )


def _check_family_settings(cls, value: Any, field: str, *, allow_none: bool) -> None:
    """The family's settings (``{}`` for most, ``{"k": 3}`` for CNBD-k), as the family's
    constructor accepts them."""
    family_class = cls.family_class
    grid = tuple(family_class.settings_grid)
    _typed(value, (dict,), field, "an object")
    _fields(value, grid, field + ".")
    for name in grid:
        setting = value[name]
        if setting is None and allow_none:
            continue
        _typed(setting, (int, float, str), f"{field}.{name}", "a value of the family's setting")
        try:
            family_class(**{name: setting})
        except (TypeError, ValueError) as exc:
            raise _Invalid(f"{field}.{name}", f"is not accepted: {exc}") from None


def _check_subscription_price_payload(payload: dict[str, Any]) -> None:
    _fields(payload, SUBSCRIPTION_PRICE_FIELDS, "model.")
    _check_time_unit(payload["time_unit"], "model.time_unit", required=False)
    price = payload["price"]
    if price is not None:
        value = _number(price, "model.price")
        if not (math.isfinite(value) and value >= 0):
            raise _Invalid("model.price", f"= {price!r} must be a finite amount >= 0 or null")


def _check_time_varying_payload(cls, payload: dict[str, Any]) -> None:
    _fields(payload, TIME_VARYING_FIELDS, "model.")
    settings = _typed(payload["settings"], (dict,), "model.settings", "an object")
    _fields(settings, ("purchase_covariates", "dropout_covariates"), "model.settings.")
    for key in ("purchase_covariates", "dropout_covariates"):
        columns = _typed(settings[key], (list,), f"model.settings.{key}", "a list of columns")
        if not all(isinstance(c, str) and c for c in columns) or len(set(columns)) < len(columns):
            raise _Invalid(f"model.settings.{key}", f"must be distinct column names: {columns!r}")
    names = [
        *cls.family_class.param_names,
        *(f"purchase.{c}" for c in settings["purchase_covariates"]),
        *(f"dropout.{c}" for c in settings["dropout_covariates"]),
    ]
    _check_time_unit(payload["time_unit"], "model.time_unit", required=True)
    end = _typed(payload["observation_end"], (str,), "model.observation_end", "a date")
    try:
        datetime.fromisoformat(end)
    except ValueError:
        raise _Invalid("model.observation_end", f"is not a date: {end!r}") from None
    theta = _typed(payload["theta"], (list,), "model.theta", "a list of numbers")
    if len(theta) != len(names):
        raise _Invalid("model.theta", f"must hold {len(names)} numbers ({', '.join(names)})")
    for i, value in enumerate(theta):
        if not math.isfinite(_number(value, f"model.theta[{i}]")):
            raise _Invalid(f"model.theta[{i}]", f"= {value!r} must be a finite number")
    _check_covariance(payload["theta_covariance"], names, "model.theta_covariance")
    if not math.isfinite(_number(payload["log_likelihood"], "model.log_likelihood")):
        raise _Invalid("model.log_likelihood", f"must be finite, got {payload['log_likelihood']!r}")
    _typed(payload["converged"], (bool,), "model.converged", "true or false")
    boundary = _typed(
        payload["boundary_parameters"], (list,), "model.boundary_parameters", "a list"
    )
    unknown = [b for b in boundary if not isinstance(b, str) or b not in names]
    if unknown:
        raise _Invalid("model.boundary_parameters", f"names {unknown[0]!r}, not an estimate")
    _typed(payload["optimizer_message"], (str,), "model.optimizer_message", "a string")
    n_customers = _number(payload["n_customers"], "model.n_customers")
    if not (math.isfinite(n_customers) and n_customers >= 0):
        raise _Invalid("model.n_customers", f"must be a non-negative number, got {n_customers!r}")


def _check_payload(cls, payload: dict[str, Any]) -> None:
    """The ``model`` section, field by field, against the class ``cls`` and its family."""
    if cls.__name__ == "SubscriptionPrice":
        _check_subscription_price_payload(payload)
        return
    if cls.__name__ == "TimeVaryingParetoNBD":
        _check_time_varying_payload(cls, payload)
        return
    if _uses_own_files(cls):
        _fields(payload, OWN_FILES_FIELDS, "model.")
        _check_time_unit(payload["time_unit"], "model.time_unit", required=False)
        if payload["stored_in_files"] is not True:
            raise _Invalid(
                "model.stored_in_files", f"must be true, got {payload['stored_in_files']!r}"
            )
        return
    from clvmodels.estimators.mle import ENGINES

    _fields(payload, MAXIMUM_LIKELIHOOD_FIELDS, "model.", MAXIMUM_LIKELIHOOD_OPTIONAL_FIELDS)
    family_names = list(cls.family_class.param_names)
    names = family_names + _coefficient_names(cls, payload.get("covariates"))
    settings = _typed(payload["settings"], (dict,), "model.settings", "an object")
    _fields(
        settings,
        ("engine", *cls.family_class.settings_grid),
        "model.settings.",
        COVARIATE_SETTINGS if "covariates" in payload else (),
    )
    if settings["engine"] not in ENGINES:
        raise _Invalid(
            "model.settings.engine", f"must be one of {ENGINES}, got {settings['engine']!r}"
        )
    family_settings = {
        k: v for k, v in settings.items() if k != "engine" and k not in COVARIATE_SETTINGS
    }
    _check_family_settings(cls, family_settings, "model.settings", allow_none=True)
    _check_family_settings(cls, payload["family"], "model.family", allow_none=False)
    _check_time_unit(
        payload["time_unit"], "model.time_unit", required=cls.family_class.kind == "purchase"
    )
    params = _typed(payload["params"], (dict,), "model.params", "an object")
    _fields(params, names, "model.params.")
    for name in names:
        value = _number(params[name], f"model.params.{name}")
        if name not in family_names and not math.isfinite(value):
            raise _Invalid(f"model.params.{name}", f"= {params[name]!r} must be a finite number")
        if name in family_names and not (math.isfinite(value) and value > 0):
            raise _Invalid(
                f"model.params.{name}",
                f"= {params[name]!r}: the {cls.__name__} parameter {name} must be a positive, "
                "finite number",
            )
    _check_covariance(payload["log_covariance"], names, "model.log_covariance")
    if not math.isfinite(_number(payload["log_likelihood"], "model.log_likelihood")):
        raise _Invalid("model.log_likelihood", f"must be finite, got {payload['log_likelihood']!r}")
    _typed(payload["converged"], (bool,), "model.converged", "true or false")
    if "boundary_parameters" in payload:
        boundary = _typed(
            payload["boundary_parameters"], (list,), "model.boundary_parameters", "a list"
        )
        unknown = [b for b in boundary if not isinstance(b, str) or b not in names]
        if unknown:
            raise _Invalid(
                "model.boundary_parameters", f"names {unknown[0]!r}, not one of {', '.join(names)}"
            )
    _typed(payload["optimizer_message"], (str,), "model.optimizer_message", "a string")
    n_customers = _number(payload["n_customers"], "model.n_customers")
    if not (math.isfinite(n_customers) and n_customers >= 0):
        raise _Invalid("model.n_customers", f"must be a non-negative number, got {n_customers!r}")


def _coefficient_names(cls, covariates: Any) -> list[str]:
    """The covariate coefficients that the ``covariates`` section of a model file defines."""
    if covariates is None:
        return []
    from clvmodels.estimators.covariates import CovariateDesign

    _typed(covariates, (dict,), "model.covariates", "an object")
    try:
        design = CovariateDesign.from_dict(cls.family_class, covariates)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _Invalid("model.covariates", f"is not a covariate layout ({exc})") from None
    return list(design.coefficient_names)


def _check_files(directory: Path, document: dict[str, Any]) -> None:
    for name, info in document["files"].items():
        path = directory / name
        if not path.is_file():
            raise ModelFileError(f"{path} is missing: the model directory is incomplete")
        if _sha256(path) != info["sha256"]:
            raise ModelFileError(
                f"{path} does not match the checksum recorded in {MODEL_FILE}: the file is "
                "corrupt or was modified after saving"
            )


def _check_fitted_parameters(path: Path, model) -> None:
    """A rebuilt model's parameters are positive and finite (a backstop for models that load
    themselves from their own files)."""
    params = getattr(model, "params_", None)
    for name in getattr(model, "param_names", ()):
        value = params.get(name) if params is not None else None
        if value is not None and not (math.isfinite(float(value)) and float(value) > 0):
            raise _file_error(
                path,
                f"params.{name}",
                f"= {value!r}: the {type(model).__name__} parameter {name} must be a positive, "
                "finite number",
            )


def _build_model(directory: Path, document: dict[str, Any]):
    path = directory / MODEL_FILE
    cls = model_class(document.get("class"))
    payload = document.get("model")
    if not isinstance(payload, dict) or payload.get("class") != cls.__name__:
        raise ModelFileError(f"{path}: the 'model' section is missing or corrupt")
    kind = getattr(getattr(cls, "family_class", None), "kind", None)
    if kind is not None and document["kind"] != kind:
        raise _file_error(
            path, "kind", f"= {document['kind']!r}, but a {cls.__name__} is a {kind} model"
        )
    try:
        _check_payload(cls, payload)
    except _Invalid as exc:
        raise _file_error(path, exc.field, exc.problem) from None
    _check_files(directory, document)
    try:
        if _uses_own_files(cls):
            model = cls.load(directory)
        elif cls.__name__ == "SubscriptionPrice":
            model = _subscription_price_from_payload(payload)
        else:
            model = cls.from_dict(payload)
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a corrupt file makes the loader raise
        raise ModelFileError(
            f"{directory}: cannot rebuild the {cls.__name__} from its file "
            f"({type(exc).__name__}: {exc}); the file is corrupt or incomplete"
        ) from exc
    _check_fitted_parameters(path, model)
    return model


def load_model(directory: str | os.PathLike):
    """Load a model saved with :func:`save_model`.

    Raises :class:`~clvmodels.errors.ModelFileError` (a ``ValueError``) when the directory is
    not a model directory, its schema version differs from :data:`SCHEMA_VERSION`, it names
    an unknown class, or a file is corrupt; ``FileNotFoundError`` when it does not exist.
    """
    directory = Path(directory)
    document = _read_document(directory)
    if document["format"] == PIPELINE_FORMAT:
        raise ModelFileError(
            f"{directory} holds a purchase model and a spend model (written by `clvmodels "
            "fit`); load it with clvmodels.io.load_pipeline"
        )
    return _build_model(directory, document)


# --------------------------------------------------------------------------------------------
# purchase + spend pairs (what `clvmodels fit` writes and `clvmodels score` reads)
# --------------------------------------------------------------------------------------------
@dataclass
class ScoringModels:
    """A purchase model and a spend model, with the metadata they were saved with."""

    purchase: Any
    spend: Any
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def time_unit(self) -> str:
        return self.purchase.time_unit_


def save_pipeline(
    directory: str | os.PathLike,
    purchase,
    spend,
    *,
    metadata: dict | None = None,
    before_commit: Callable[[Path], None] | None = None,
) -> Path:
    """Save a purchase model and a spend model as one scoring directory (atomically).

    ``before_commit(tmp)`` is called with the complete temporary directory just before it
    replaces ``directory``: what it writes there (``clvmodels fit`` writes its manifest) appears
    together with the models, in the same rename.
    """
    for role, model, kind in (("purchase", purchase, "purchase"), ("spend", spend, "spend")):
        _model_payload(model)
        if getattr(model, "kind", None) != kind:
            raise TypeError(f"{role} must be a {kind} model, got {type(model).__name__}")
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        components = {}
        for role, model in (("purchase", purchase), ("spend", spend)):
            sub = tmp / role
            sub.mkdir()
            _write_model(model, sub, None)
            components[role] = {"directory": role, "class": type(model).__name__}
        document = {
            "format": PIPELINE_FORMAT,
            "schema_version": SCHEMA_VERSION,
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": versions(),
            "components": components,
            "metadata": metadata or {},
        }
        _fsync_write(tmp / MODEL_FILE, json.dumps(document, indent=2, allow_nan=True))
        if before_commit is not None:
            before_commit(tmp)
    return directory


def load_pipeline(directory: str | os.PathLike) -> ScoringModels:
    """Load a scoring directory written by :func:`save_pipeline` / ``clvmodels fit``."""
    directory = Path(directory)
    document = _read_document(directory)
    if document["format"] != PIPELINE_FORMAT:
        raise ModelFileError(
            f"{directory} holds a single {document.get('class')} model; scoring needs a "
            "purchase model and a spend model: write them with `clvmodels fit ... --out DIR` "
            "or clvmodels.io.save_pipeline"
        )
    components = document["components"]  # checked by _read_document
    models = {}
    for role in ("purchase", "spend"):
        sub = directory / components[role]["directory"]
        sub_document = _read_document(sub)
        if sub_document["format"] != MODEL_FORMAT:
            raise ModelFileError(f"{sub} is not a single model directory")
        if sub_document["class"] != components[role]["class"]:
            raise _file_error(
                directory / MODEL_FILE,
                f"components.{role}.class",
                f"= {components[role]['class']!r}, but {sub / MODEL_FILE} holds a "
                f"{sub_document['class']}",
            )
        models[role] = _build_model(sub, sub_document)
        kind = getattr(models[role], "kind", None)
        if kind != role:
            raise ModelFileError(f"{sub} holds a {kind} model where a {role} model belongs")
    return ScoringModels(models["purchase"], models["spend"], document["metadata"])
