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
  looked up in :mod:`clvmodels.registry`, the fixed registry of the library's own models.
* ``schema_version`` must equal :data:`SCHEMA_VERSION`; anything else is refused with a message
  saying what wrote the file and what to do. A file whose checksum does not match (a truncated
  or edited ``posterior.nc``) is refused too.
* Saving is atomic: everything is written into a temporary sibling directory which then
  replaces the target, so a crash leaves either the previous complete model or none, never a
  half-written one. An existing directory is only ever replaced if it is itself a model
  directory (or empty): ``save_model(model, "/home/me")`` cannot delete your files.

Floats are written with Python's ``repr`` (exact round trip: a loaded model scores identically);
non-finite values (e.g. an unavailable covariance) are written as ``NaN``/``Infinity`` the way
Python's :mod:`json` does.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import platform
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
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
]

#: Version of the on-disk layout. Bump it whenever a field changes meaning; loading refuses
#: any other version rather than guessing.
SCHEMA_VERSION = 1

MODEL_FILE = "model.json"
MODEL_FORMAT = "clvmodels-model"
PIPELINE_FORMAT = "clvmodels-pipeline"

#: The only classes a model file may name: class name -> defining module. Nothing else is
#: ever imported on load.



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


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary sibling file and ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        _fsync_write(tmp, text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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
    or the new complete directory exists under a recognisable name.
    """
    target = Path(target)
    if target.exists() and not _is_replaceable(target):
        kind = "a file" if not target.is_dir() else "a non-empty directory that is not a model"
        raise ModelFileError(
            f"refusing to overwrite {target}: it is {kind}. Choose a new output directory."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    tmp = target.with_name(f".{target.name}.tmp-{token}")
    tmp.mkdir()
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old-{token}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# single models
# --------------------------------------------------------------------------------------------
def model_class(name: Any):
    """The clvmodels estimator class named in a model file; ModelFileError when unknown."""
    from clvmodels import registry

    try:
        return registry.class_by_name(name)
    except (KeyError, TypeError):
        known = ", ".join(registry.public_names())
        raise ModelFileError(
            f"the model file names class {name!r}, which is not a clvmodels model "
            f"(known: {known}); it was not written by clvmodels.save_model"
        ) from None


def _uses_own_files(model_or_class) -> bool:
    """Bayesian models persist themselves (``save(dir)``/``load(dir)``: JSON + NetCDF)."""
    cls = model_or_class if isinstance(model_or_class, type) else type(model_or_class)
    return not hasattr(cls, "from_dict") and callable(getattr(cls, "load", None))


def _model_payload(model) -> dict[str, Any]:
    from clvmodels import registry

    name = type(model).__name__
    if name not in registry.public_names():
        raise TypeError(
            f"save_model saves clvmodels models ({', '.join(registry.public_names())}), "
            f"got {type(model).__name__}"
        )
    if _uses_own_files(model):
        model.check_fitted()
        return {"class": name, "time_unit": model.time_unit_, "stored_in_files": True}
    return model.to_dict()


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
        A fitted clvmodels model (``BetaGeo``, ``ParetoNBD``, ``ModifiedBetaGeo``,
        ``GammaGamma``, hierarchical models).
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
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path} is corrupt (not valid JSON: {exc})") from None
    if not isinstance(document, dict) or document.get("format") not in (
        MODEL_FORMAT,
        PIPELINE_FORMAT,
    ):
        raise ModelFileError(f"{path} is not a clvmodels model file (no 'format' field)")
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        written_by = document.get("versions", {}).get("clvmodels", "an unknown version")
        if isinstance(version, int) and version > SCHEMA_VERSION:
            advice = "upgrade clvmodels to read it"
        else:
            advice = "refit the model with this clvmodels and save it again"
        raise ModelFileError(
            f"{path} has schema version {version!r} (written by clvmodels {written_by}); "
            f"this clvmodels reads schema version {SCHEMA_VERSION} only: {advice}"
        )
    return document


def _check_files(directory: Path, document: dict[str, Any]) -> None:
    for name, info in (document.get("files") or {}).items():
        path = directory / name
        if Path(name).name != name:
            raise ModelFileError(f"{directory / MODEL_FILE} names an invalid file {name!r}")
        if not path.is_file():
            raise ModelFileError(f"{path} is missing: the model directory is incomplete")
        if _sha256(path) != info.get("sha256"):
            raise ModelFileError(
                f"{path} does not match the checksum recorded in {MODEL_FILE}: the file is "
                "corrupt or was modified after saving"
            )


def _build_model(directory: Path, document: dict[str, Any]):
    cls = model_class(document.get("class"))
    payload = document.get("model")
    if not isinstance(payload, dict) or payload.get("class") != cls.__name__:
        raise ModelFileError(f"{directory / MODEL_FILE}: the 'model' section is missing or corrupt")
    _check_files(directory, document)
    try:
        if _uses_own_files(cls):
            return cls.load(directory)
        return cls.from_dict(payload)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ModelFileError(
            f"{directory}: cannot rebuild the {cls.__name__} from its file "
            f"({type(exc).__name__}: {exc}); the file is corrupt or incomplete"
        ) from exc


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
) -> Path:
    """Save a purchase model and a spend model as one scoring directory (atomically)."""
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
    components = document.get("components")
    if not isinstance(components, dict) or set(components) != {"purchase", "spend"}:
        raise ModelFileError(f"{directory / MODEL_FILE}: 'components' is missing or corrupt")
    models = {}
    for role in ("purchase", "spend"):
        sub_name = components[role].get("directory") if isinstance(components[role], dict) else None
        if not isinstance(sub_name, str) or Path(sub_name).name != sub_name:
            raise ModelFileError(f"{directory / MODEL_FILE}: invalid {role} component")
        sub = directory / sub_name
        sub_document = _read_document(sub)
        if sub_document["format"] != MODEL_FORMAT:
            raise ModelFileError(f"{sub} is not a single model directory")
        models[role] = _build_model(sub, sub_document)
        kind = getattr(models[role], "kind", None)
        if kind != role:
            raise ModelFileError(f"{sub} holds a {kind} model where a {role} model belongs")
    return ScoringModels(models["purchase"], models["spend"], document.get("metadata") or {})
