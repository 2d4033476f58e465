"""Batch scoring with bounded memory: summary file -> CLV file, chunk by chunk.

The one function that turns customers into values is :func:`score_frame` (pandas in, pandas
out). Everything that scores at scale calls it on pieces of the customer base:

* :func:`score_file` streams a summary file (Parquet or CSV) in chunks of customers, calls
  :func:`score_frame` on each and appends the result to a Parquet (or CSV) writer. The output
  goes to a temporary sibling file that is renamed over the target only when every chunk has
  been scored, so an interrupted or failed job leaves either no output or the previous complete
  one, never a truncated file;
* :mod:`clvmodels.distributed` maps it over the partitions of a Dask DataFrame (and documents
  how to run it under Spark's ``mapInPandas``).

Scoring is chunk-invariant: the parameter draws are taken once (:func:`prepare_draws`) and
shared by every chunk, and :func:`clvmodels.lifetime_value` gives each customer results that do
not depend on which other customers share its chunk, so scoring in chunks, on a cluster or all
at once gives identical numbers.

Before scoring, :func:`inspect_summary_file` checks the whole file with DuckDB (out of core):
required columns and their types, missing customer ids, duplicate customer ids, an empty file.
Values (negative frequency, recency > T, ...) are checked chunk by chunk by
:func:`clvmodels.validation.validate_summary`; an error in any chunk aborts the job before the
output is renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clvmodels import units
from clvmodels.errors import InputError

__all__ = [
    "SUMMARY_FILE_COLUMNS",
    "SummaryFile",
    "ScoreResult",
    "inspect_summary_file",
    "iter_summary_chunks",
    "model_columns",
    "prepare_draws",
    "block_seed",
    "score_chunk",
    "score_frame",
    "equity_summary",
    "score_file",
    "atomic_output",
    "check_not_input",
    "same_file",
    "file_format",
    "write_summary_file",
    "connect",
    "duckdb_source",
    "first_line",
    "format_name",
    "sql_string",
    "check_input_file",
    "describe_file",
    "json_object",
]

SUMMARY_FILE_COLUMNS = ("frequency", "recency", "T", "monetary_value")
PARQUET_METADATA_KEY = b"clvmodels"

_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".tsv")


# --------------------------------------------------------------------------------------------
# file formats and atomic output
# --------------------------------------------------------------------------------------------
def file_format(path: str | os.PathLike, purpose: str = "input") -> str:
    """``"parquet"`` or ``"csv"`` from the file name (or the Parquet magic bytes)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    if purpose == "input" and path.is_file():
        with open(path, "rb") as handle:
            if handle.read(4) == b"PAR1":
                return "parquet"
        return "csv"
    raise InputError(
        f"cannot tell the format of {purpose} file {path.name!r}: name it *.parquet or *.csv"
    )


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path that is renamed to ``path`` when the block succeeds.

    On any exception (including KeyboardInterrupt, and SIGTERM under the command line) the
    temporary file is removed and ``path`` keeps its previous content (or stays absent). The
    temporary is named ``.<name>.tmp-<host>-<pid>-<token><extension>``
    (:func:`clvmodels.io.temporary_path`); those left by killed runs are removed here first.
    Within :func:`clvmodels.io.staged_outputs` claiming ``path``, the complete temporary is kept
    for the command to rename together with its manifest.
    """
    from clvmodels.io import publish, remove_stale_temporaries, temporary_path

    path = Path(path)
    if path.is_dir():
        raise InputError(f"output {path} is a directory; give a file name such as clv.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temporary_path(path)
    done = False
    try:
        yield tmp
        if not tmp.exists():  # pragma: no cover - writer bug
            raise RuntimeError(f"nothing was written to {tmp}")
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        publish(tmp, path)
        done = True
    finally:
        if not done:
            tmp.unlink(missing_ok=True)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file: equal once resolved (links, ``..``) or, when both
    exist, the same inode (hard links, bind mounts)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists() and os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_not_input(output: str | os.PathLike, *inputs: str | os.PathLike | None) -> None:
    """InputError when ``output`` is (or is inside, or contains) one of ``inputs``: writing it
    would destroy what is being read."""
    out = Path(output)
    for item in inputs:
        if item is None:
            continue
        source = Path(item)
        if same_file(out, source):
            raise InputError(
                f"the output {out} is the input {source}: writing it would destroy the input. "
                "Fix: choose another output path"
            )
        resolved_out, resolved_in = out.resolve(), source.resolve()
        if resolved_in.is_relative_to(resolved_out):
            raise InputError(
                f"the output {out} contains the input {source}: writing it would destroy the "
                "input. Fix: choose another output path"
            )
        if source.is_dir() and resolved_out.is_relative_to(resolved_in):
            raise InputError(
                f"the output {out} is inside the input directory {source}: writing it would "
                "change the input. Fix: choose another output path"
            )


class _TableWriter:
    """Incremental Parquet or CSV writer over pyarrow tables."""

    def __init__(self, path: Path, fmt: str, metadata: dict[str, Any] | None = None):
        self.path, self.fmt, self.metadata = path, fmt, metadata
        self._writer = None
        self._schema = None

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            schema = table.schema.remove_metadata()
            if self.metadata and self.fmt == "parquet":
                schema = schema.with_metadata(
                    {PARQUET_METADATA_KEY: json.dumps(self.metadata, default=str).encode()}
                )
            self._schema = schema
            if self.fmt == "parquet":
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(self.path, schema, compression="zstd")
            else:
                import pyarrow.csv as pacsv

                self._writer = pacsv.CSVWriter(self.path, schema)
        table = table.cast(self._schema) if table.schema != self._schema else table
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def write_summary_file(summary: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write an RFM summary (indexed by customer id) to Parquet or CSV, atomically.

    The customer id becomes a column (named after the index, ``customer_id`` by default); for
    Parquet the summary's ``attrs`` (time unit, observation end, ...) go into the file's
    metadata so that ``clvmodels fit``/``score`` know the unit without being told.
    """
    path = Path(path)
    fmt = file_format(path, purpose="output")
    attrs = {k: v for k, v in summary.attrs.items() if isinstance(v, str | int | float | bool)}
    with atomic_output(path) as tmp:
        writer = _TableWriter(tmp, fmt, {"kind": "rfm_summary", **attrs})
        try:
            # in slices: no full copy of a large summary (reset_index, Arrow table) at once
            for start in range(0, max(len(summary), 1), _WRITE_ROWS):
                piece = summary.iloc[start : start + _WRITE_ROWS]
                frame = piece.reset_index()
                if summary.index.name is None:
                    frame = frame.rename(columns={"index": "customer_id"})
                writer.write(frame)
        finally:
            writer.close()
    return path


_WRITE_ROWS = 1_000_000


# --------------------------------------------------------------------------------------------
# reading summaries in chunks
# --------------------------------------------------------------------------------------------
@dataclass
class SummaryFile:
    """What :func:`inspect_summary_file` learnt about a summary file."""

    path: Path
    format: str
    customer_id: str
    columns: list[str]
    n_customers: int
    time_unit: str | None
    has_monetary: bool
    metadata: dict[str, Any] = field(default_factory=dict)


def sql_string(value: str) -> str:
    """``value`` as a quoted SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def duckdb_source(path: Path, fmt: str) -> str:
    """The DuckDB table function reading ``path`` in format ``fmt``."""
    if fmt == "parquet":
        return f"read_parquet({sql_string(path)})"
    return f"read_csv({sql_string(path)}, header = true)"


def format_name(fmt: str) -> str:
    """The display name of a file format ("Parquet", "CSV")."""
    return {"parquet": "Parquet", "csv": "CSV"}.get(fmt, fmt)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def json_object(raw) -> dict[str, Any]:
    """``raw`` (JSON text or bytes, or None) decoded when it is a JSON object, else ``{}``."""
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _parquet_metadata(path: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    return json_object((pq.read_schema(path).metadata or {}).get(PARQUET_METADATA_KEY))


def check_input_file(path: Path) -> None:
    """FileNotFoundError if ``path`` does not exist, InputError if it is a directory or empty."""
    if not path.exists():
        raise FileNotFoundError(f"input file {path} does not exist")
    if path.is_dir():
        raise InputError(f"input {path} is a directory; pass a Parquet or CSV file")
    if path.stat().st_size == 0:
        raise InputError(f"input file {path} is empty (0 bytes)")


def describe_file(con, path: Path, fmt: str) -> list[tuple]:
    """DuckDB's ``DESCRIBE`` rows (name, type, ...) of the file ``path`` in format ``fmt``, read
    through the connection ``con``; InputError if DuckDB cannot read it."""
    import duckdb

    try:
        return con.execute(f"DESCRIBE SELECT * FROM {duckdb_source(path, fmt)}").fetchall()
    except duckdb.Error as exc:
        raise InputError(
            f"cannot read {path} as {format_name(fmt)} ({first_line(exc)}); is the file complete?"
        ) from None


def connect():
    """A DuckDB connection with bounded memory that keeps the file's row order.

    What DuckDB spills to disk goes to this process's scratch folder in the system temporary
    directory (:func:`clvmodels.io.scratch_directory`), not to ``./.tmp``, so that a killed
    run's spill files are recognised and removed by the next run
    (:func:`clvmodels.io.remove_stale_scratch`).
    """
    import duckdb

    from clvmodels.io import scratch_directory

    con = duckdb.connect()
    con.execute("SET memory_limit = '1GB'")
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"SET temp_directory = {sql_string(scratch_directory('duckdb'))}")
    return con


def inspect_summary_file(
    path: str | os.PathLike,
    *,
    customer_id: str = "customer_id",
    time_unit: str | None = None,
    require_monetary: bool = True,
) -> SummaryFile:
    """Check a summary file as a whole (out of core) before any chunk is scored.

    Raises :class:`~clvmodels.errors.InputError` naming the problem and the fix for: an
    unreadable or corrupt file, an empty file, missing columns, non-numeric columns, missing
    customer ids, duplicate customer ids, an unknown time unit.
    """
    import duckdb

    path = Path(path)
    check_input_file(path)
    fmt = file_format(path)
    metadata: dict[str, Any] = {}
    con = connect()
    source = duckdb_source(path, fmt)
    try:
        if fmt == "parquet":
            import pyarrow as pa

            try:
                metadata = _parquet_metadata(path)
            except (pa.ArrowException, OSError) as exc:
                raise InputError(
                    f"cannot read {path} as Parquet ({first_line(exc)}); the file is corrupt or "
                    "not Parquet"
                ) from None
        described = describe_file(con, path, fmt)
        types = {row[0]: str(row[1]).upper() for row in described}
        required = ["frequency", "recency", "T"] + (["monetary_value"] if require_monetary else [])
        missing = [c for c in [customer_id, *required] if c not in types]
        if missing:
            raise InputError(
                f"{path.name} is missing column(s) {missing}; found {', '.join(types) or '(none)'}."
                " Fix: pass a summary written by `clvmodels rfm` (or name the id column with "
                "--customer-id)"
            )
        cid = '"' + customer_id.replace('"', '""') + '"'
        try:
            n, n_null = con.execute(
                f"SELECT count(*), count(*) - count({cid}) FROM {source}"
            ).fetchall()[0]
            if n == 0:
                raise InputError(f"{path.name} has no rows: there are no customers to score")
            numeric = ("INT", "FLOAT", "DOUBLE", "DECIMAL", "REAL", "NUMERIC", "BIGINT", "HUGEINT")
            for col in required:
                if not any(t in types[col] for t in numeric) or types[col].startswith("INTERVAL"):
                    raise InputError(
                        f"column {col!r} of {path.name} has type {types[col]}, expected numbers. "
                        "Fix: write the summary with numeric columns"
                    )
            if n_null:
                raise InputError(
                    f"{path.name}: column {customer_id!r} is missing in {n_null} row(s). "
                    "Fix: every customer needs an id"
                )
            dups = con.execute(
                f"SELECT {cid}, count(*) AS n FROM {source} GROUP BY {cid} HAVING count(*) > 1 "
                "ORDER BY n DESC LIMIT 5"
            ).fetchall()
            if dups:
                n_dup = con.execute(
                    f"SELECT count(*) FROM (SELECT {cid} FROM {source} GROUP BY {cid} "
                    "HAVING count(*) > 1)"
                ).fetchall()[0][0]
                examples = ", ".join(f"{k!r} ({c} rows)" for k, c in dups)
                raise InputError(
                    f"{path.name} has duplicate customer ids: {n_dup} id(s) appear more than "
                    f"once, e.g. {examples}. Fix: one row per customer (summarise the "
                    "transactions with `clvmodels rfm`)"
                )
        except duckdb.Error as exc:
            raise InputError(f"cannot read {path} ({first_line(exc)})") from None
    finally:
        con.close()
    unit = time_unit or metadata.get("time_unit")
    if unit is None:
        raise InputError(
            f"{path.name} does not record its time unit; pass --time-unit (e.g. W for weeks), "
            "the unit its recency and T are measured in"
        )
    unit = units.normalize_unit(unit)
    if time_unit is not None and metadata.get("time_unit") not in (None, unit):
        recorded = units.normalize_unit(metadata["time_unit"])
        if recorded != unit:
            raise InputError(
                f"{path.name} records time unit {recorded!r} but {unit!r} was given; "
                "durations are never rescaled silently: drop the option or rebuild the summary"
            )
    return SummaryFile(
        path=path,
        format=fmt,
        customer_id=customer_id,
        columns=list(types),
        n_customers=int(n),
        time_unit=unit,
        has_monetary="monetary_value" in types,
        metadata=metadata,
    )


def _frames_from_batches(batches, info: SummaryFile, columns: list[str]) -> Iterator[pd.DataFrame]:
    for batch in batches:
        if batch.num_rows == 0:
            continue
        # pandas' own metadata would restore its index (the id column) and clash with ours
        frame = batch.to_pandas(ignore_metadata=True)
        frame = frame.set_index(info.customer_id)
        frame.index.name = "customer_id"
        frame.attrs["time_unit"] = info.time_unit
        if info.metadata.get("observation_end") is not None:  # where T runs to (time-varying)
            frame.attrs["observation_end"] = info.metadata["observation_end"]
        yield frame[[c for c in columns if c != info.customer_id]]


def model_columns(*models) -> list[str]:
    """Extra summary columns the models need to score: the group column of grouped models and
    the raw covariate columns of static covariate models (their ``covariate_columns``; a
    time-varying model carries its covariate table, attached with ``with_future_covariates``)."""
    out = []
    for model in models:
        group = getattr(model, "group", None)
        wanted = [group] if isinstance(group, str) else []
        if not hasattr(model, "with_future_covariates"):
            wanted += list(getattr(model, "covariate_columns", ()))
        out += [c for c in wanted if c not in out]
    return out


def iter_summary_chunks(
    info: SummaryFile, chunk_size: int = 100_000, extra_columns: list[str] | tuple = ()
) -> Iterator[pd.DataFrame]:
    """Yield the summary in DataFrames of at most ``chunk_size`` customers, in file order.

    Each chunk is indexed by ``customer_id``, holds ``frequency, recency, T,
    monetary_value`` plus ``extra_columns`` (e.g. a group column) and carries
    ``attrs["time_unit"]``.
    """
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of customers, got {chunk_size}")
    missing = [c for c in extra_columns if c not in info.columns]
    if missing:
        raise InputError(
            f"{info.path.name} has no column(s) {missing}, which the model needs (its group "
            f"or covariate columns); found {', '.join(info.columns)}. Fix: add them to the "
            "summary, or pass the covariates as a table (`clvmodels score --covariates FILE`)"
        )
    columns = [info.customer_id] + [c for c in SUMMARY_FILE_COLUMNS if c in info.columns]
    columns += [c for c in extra_columns if c not in columns]
    if info.format == "parquet":
        import pyarrow.parquet as pq

        with pq.ParquetFile(info.path) as handle:
            yield from _frames_from_batches(
                handle.iter_batches(batch_size=chunk_size, columns=columns), info, columns
            )
        return
    con = connect()
    try:
        select = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
        reader = con.sql(
            f"SELECT {select} FROM {duckdb_source(info.path, info.format)}"
        ).to_arrow_reader(chunk_size)
        yield from _frames_from_batches(reader, info, columns)
    finally:
        con.close()


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------
def prepare_draws(
    purchase_model, spend_model, n_draws: int = 200, kind: str = "predictive", random_seed=0
) -> dict[str, pd.DataFrame]:
    """Parameter draws taken once and shared by every chunk, so that chunks agree.

    Returns ``{"purchase": DataFrame, "spend": DataFrame}`` in the layout of
    ``param_draws``; the point estimate (one row) for ``kind="point"``. The seeds of the two
    tables are the first two children of ``numpy.random.SeedSequence(random_seed)``.

    The models are checked first (:func:`clvmodels.valuation.spec.check_model`: fitted, finite
    positive parameters, a spend model whose population mean spend exists), and so are the spend
    draws (:func:`~clvmodels.valuation.spec.check_spend_draws`): a Gamma-Gamma draw with
    ``q <= 1`` would give customers without repeat purchases an infinite expected value.
    """
    from clvmodels.valuation.draws import DrawSpec, resolve_draws
    from clvmodels.valuation.spec import check_model, check_spend_draws

    check_model(purchase_model, "purchase_model")
    check_model(spend_model, "spend_model")  # a spend model without a mean spend: refused
    if kind != "point" and (
        isinstance(n_draws, bool) or int(n_draws) != n_draws or int(n_draws) < 1
    ):
        raise InputError(f"the number of draws must be a positive whole number, got {n_draws!r}")
    spec = DrawSpec(int(n_draws) if kind != "point" else 1, random_seed)
    draws = resolve_draws(purchase_model, spend_model, kind, spec)
    check_spend_draws(spend_model, draws.spend)
    return {"purchase": draws.purchase, "spend": draws.spend}


def block_seed(random_seed: int, block: int) -> list[int]:
    """Entropy of the predictive simulation of block ``block`` (customers
    ``block * chunk_size`` to ``(block + 1) * chunk_size - 1`` in file order)."""
    return [int(random_seed), int(block)]


def score_chunk(
    summary: pd.DataFrame,
    purchase_model,
    spend_model,
    *,
    draws: dict[str, pd.DataFrame],
    block: int = 0,
    random_seed: int = 0,
    **valuation_kwargs,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Score one block like :func:`score_frame` and also return the per-draw totals of its
    customers' values (summed across blocks for customer equity): ``(frame, totals)``."""
    from clvmodels.valuation import lifetime_value

    for key in ("draws", "random_seed", "return_draws"):
        if key in valuation_kwargs:  # pragma: no cover - guarded by the signature
            raise TypeError(f"{key} is set by the scorer")
    frame, value_draws = lifetime_value(
        purchase_model,
        spend_model,
        summary,
        draws=draws,
        random_seed=block_seed(random_seed, block),
        return_draws=True,
        **valuation_kwargs,
    )
    totals = np.asarray(value_draws.sum(dim="customer_id").to_numpy(), dtype=float)
    return frame, totals


def score_frame(
    summary: pd.DataFrame,
    purchase_model,
    spend_model,
    *,
    draws: dict[str, pd.DataFrame],
    block: int = 0,
    random_seed: int = 0,
    **valuation_kwargs,
) -> pd.DataFrame:
    """Score one block of customers: :func:`clvmodels.lifetime_value` on ``summary``.

    The pure per-chunk function shared by :func:`score_file`, :mod:`clvmodels.distributed`
    (Dask) and Spark's ``mapInPandas``. ``draws`` comes from :func:`prepare_draws` (taken once,
    shared by all blocks); the predictive simulation of block ``block`` is seeded with
    ``[random_seed, block]``, so block ``k`` of a job gives the same numbers wherever it runs.
    ``valuation_kwargs`` go to :func:`clvmodels.lifetime_value` unchanged (``horizon``,
    ``annual_discount_rate``, ``margin``, ``interval``, ``kind``, ``period``, ...).

    Returns a DataFrame indexed by ``customer_id`` with ``clv_mean, clv_median, clv_lower,
    clv_upper, expected_purchases, expected_spend, probability_alive``.
    """
    return score_chunk(
        summary,
        purchase_model,
        spend_model,
        draws=draws,
        block=block,
        random_seed=random_seed,
        **valuation_kwargs,
    )[0]


@dataclass
class ScoreResult:
    """What :func:`score_file` did.

    ``equity`` is the customer equity (sum of CLV over all customers) with the interval of the
    per-draw totals, accumulated across chunks (an interval of a total is not the sum of the
    customers' intervals).
    """

    output: Path | None
    n_customers: int
    n_chunks: int
    equity: dict[str, float]
    top: pd.DataFrame
    columns: list[str]
    random_seed: int


def equity_summary(totals: np.ndarray, interval: float) -> dict[str, float]:
    """Customer equity from the per-draw totals over all customers: ``equity_mean,
    equity_median, equity_lower, equity_upper`` (central ``interval`` of the totals)."""
    from clvmodels.valuation.summaries import equity_columns

    columns = equity_columns(np.asarray(totals, dtype=float), interval)
    return {name: float(value) for name, value in columns.items()}


def score_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike | None,
    purchase_model,
    spend_model,
    *,
    n_draws: int = 200,
    random_seed: int | None = 0,
    chunk_size: int = 20_000,
    customer_id: str = "customer_id",
    time_unit: str | None = None,
    top: int = 10,
    progress: Callable[[int, int], None] | None = None,
    output_metadata: dict[str, Any] | None = None,
    limit: int | None = None,
    covariates: pd.DataFrame | None = None,
    **valuation_kwargs,
) -> ScoreResult:
    """Score every customer of a summary file, ``chunk_size`` customers at a time.

    ``covariates``: a covariate table indexed by customer id (one row per customer): the
    models' covariate columns it holds are joined to each chunk
    (:func:`clvmodels.covariates.join_covariates`) instead of being read from the summary.

    ``limit`` scores only the first ``limit`` customers (whole chunks; a trial run on a large
    file); the result says how many were scored.

    Peak memory is set by ``chunk_size`` (times the number of draws), not by the number of
    customers. With ``output_path`` None nothing is written (the top customers and the total
    are still returned). ``progress(done, total)`` is called after every chunk. The output
    holds ``customer_id`` and the columns of :func:`score_frame`, in file order, and is renamed
    into place only after the last chunk (see :func:`atomic_output`).

    ``random_seed=None`` draws fresh entropy (reported in the result, so the run can be
    repeated exactly). An ``output_path`` that is the input file (same path once resolved, or
    the same file through a link) is refused before anything is read.
    """
    if random_seed is None:
        random_seed = int(np.random.SeedSequence().generate_state(1)[0])
    if output_path is not None:
        check_not_input(output_path, input_path)
    info = inspect_summary_file(input_path, customer_id=customer_id, time_unit=time_unit)
    units.require_same_unit(purchase_model.time_unit_, info.time_unit, f"summary {info.path.name}")
    fmt = file_format(output_path, purpose="output") if output_path is not None else None
    kind = valuation_kwargs.get("kind", "predictive")
    interval = float(valuation_kwargs.get("interval", 0.9))
    draws = prepare_draws(purchase_model, spend_model, n_draws, kind, random_seed)
    state = {"done": 0, "chunks": 0, "totals": None, "best": None, "columns": []}

    def run(writer: _TableWriter | None) -> None:
        from clvmodels.covariates import join_covariates

        extra = model_columns(purchase_model, spend_model)
        joined = [c for c in extra if covariates is not None and c in covariates.columns]
        from_file = [c for c in extra if c not in joined]
        by_text = covariates.set_axis(covariates.index.astype(str)) if joined else None
        for block, chunk in enumerate(iter_summary_chunks(info, chunk_size, from_file)):
            if limit is not None and state["done"] >= limit:
                break
            if joined:  # ids matched as text: a CSV's 7 is the Parquet file's "7"
                keyed = chunk.set_axis(chunk.index.astype(str))
                chunk = join_covariates(keyed, by_text, joined).set_axis(chunk.index)
            scored, totals = score_chunk(
                chunk,
                purchase_model,
                spend_model,
                draws=draws,
                block=block,
                random_seed=random_seed,
                **valuation_kwargs,
            )
            state["columns"] = list(scored.columns)
            state["totals"] = totals if state["totals"] is None else state["totals"] + totals
            if top:
                head = scored.nlargest(top, "clv_mean")
                best = state["best"]
                state["best"] = (
                    head if best is None else pd.concat([best, head]).nlargest(top, "clv_mean")
                )
            if writer is not None:
                writer.write(scored.reset_index())
            state["done"] += len(chunk)
            state["chunks"] += 1
            if progress is not None:
                progress(state["done"], info.n_customers)

    if output_path is None:
        run(None)
    else:
        with atomic_output(output_path) as tmp:
            writer = _TableWriter(
                tmp, fmt, {"kind": "clv", "random_seed": random_seed, **(output_metadata or {})}
            )
            try:
                run(writer)
            finally:
                writer.close()
    if limit is None and state["done"] != info.n_customers:  # pragma: no cover - reader bug
        raise RuntimeError(f"scored {state['done']} customers but the file has {info.n_customers}")
    return ScoreResult(
        output=Path(output_path) if output_path is not None else None,
        n_customers=state["done"],
        n_chunks=state["chunks"],
        equity={**equity_summary(state["totals"], interval), "n_customers": state["done"]},
        top=state["best"] if state["best"] is not None else pd.DataFrame(),
        columns=state["columns"],
        random_seed=random_seed,
    )
