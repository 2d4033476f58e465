"""Beyond one machine: RFM summaries and CLV scoring on Dask DataFrames (and Spark).

Both steps are embarrassingly parallel over customers, and both reuse the single-machine
functions unchanged, so the cluster gives the same numbers as a laptop:

* :func:`rfm_summary_dask` shuffles the transactions so that every customer's rows sit in one
  partition, then runs :func:`clvmodels.rfm_summary` (pandas engine) on each partition. The
  observation end, when not given, is computed once over the whole frame first, so every
  partition uses the same one.
* :func:`score_dask` scores a Dask DataFrame of customers with :func:`clvmodels.scoring.
  score_frame`. The fitted models and the parameter draws (taken once, shared by every block)
  are one small payload -- the models' JSON dicts (``to_dict``) and the draw tables -- placed in
  the graph once (``client.scatter(..., broadcast=True)`` when a client is given, otherwise a
  single shared graph key), not copied into every task. The customers are cut into the same
  blocks of ``chunk_size`` rows, in the same order, as :func:`clvmodels.scoring.score_file`
  uses; block ``k`` is seeded with ``[random_seed, k]`` in both, so the result is *identical*
  to scoring the same rows locally with the same ``chunk_size`` -- including the Monte Carlo
  ``kind="predictive"`` intervals.
  A :class:`~clvmodels.TimeVaryingParetoNBD` travels with its covariate table (fit and future
  periods, re-attached on the workers) and needs ``observation_end=``, which every block
  carries as ``attrs["observation_end"]`` to place its customers on the covariate calendar.
* :func:`customer_equity_dask` sums the per-draw totals of every block: customer equity with
  an interval from the joint draws, as :func:`clvmodels.customer_equity`.

Spark (``mapInPandas``)
-----------------------
``pyspark`` is not a dependency, and nothing here imports it. The per-block function
:func:`clvmodels.scoring.score_frame` is plain pandas in, pandas out, so it runs unchanged
inside Spark's pandas UDFs. Take the draws once on the driver, broadcast the models as their
JSON dicts, and score each Arrow batch on the executors::

    from pyspark.sql import functions as F

    import clvmodels as clv
    from clvmodels.scoring import prepare_draws, score_frame

    models = clv.io.load_pipeline("models/cdnow")                      # driver
    draws = prepare_draws(models.purchase, models.spend, 200, "predictive", random_seed=0)
    shared = spark.sparkContext.broadcast(
        {"purchase": models.purchase.to_dict(), "spend": models.spend.to_dict(), "draws": draws}
    )
    valuation = dict(horizon="12M", annual_discount_rate=0.1, margin=0.3, interval=0.9,
                     kind="predictive")

    def score_batches(batches):                                         # executors
        p = shared.value
        purchase = clv.BetaGeo.from_dict(p["purchase"])
        spend = clv.GammaGamma.from_dict(p["spend"])
        for pdf in batches:                                             # pandas DataFrames
            summary = pdf.drop(columns="block").set_index("customer_id")
            summary.attrs["time_unit"] = "W"                            # never assumed
            out = score_frame(summary, purchase, spend, draws=p["draws"],
                              block=int(pdf["block"].iloc[0]), random_seed=0, **valuation)
            yield out.reset_index()

    schema = ("customer_id long, clv_mean double, clv_median double, clv_lower double, "
              "clv_upper double, expected_purchases double, expected_spend double, "
              "probability_alive double")
    # block k = rows k*20000 ... (k+1)*20000-1 in file order, as score_file cuts them
    blocks = summary_sdf.withColumn("block", F.floor(F.col("row") / 20000)).drop("row")
    scored = blocks.groupBy("block").applyInPandas(lambda pdf: next(score_batches([pdf])),
                                                   schema)

Grouping by ``block`` makes every block one pandas frame, so the numbers are bit-identical to
``score_file(..., chunk_size=20000, random_seed=0)`` and to :func:`score_dask`. The simpler
``summary_sdf.withColumn("block", F.spark_partition_id()).mapInPandas(score_batches,
schema)`` scores Spark's Arrow batches as they come (``spark.sql.execution.arrow.
maxRecordsPerBatch`` rows); the per-customer predictive intervals are then equally valid but
drawn from different random streams, while ``kind="point"``/``"expected"`` results and the
point-estimate columns are identical either way (they involve no simulation). Give each batch
a distinct ``block`` so that batches do not share a random stream.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import numpy as np
import pandas as pd

from clvmodels import units
from clvmodels.errors import InputError, import_optional
from clvmodels.valuation.engine import VALUE_COLUMNS

__all__ = ["rfm_summary_dask", "score_dask", "customer_equity_dask"]

SCORE_COLUMNS = list(VALUE_COLUMNS)
# transactions per partition after the shuffle by customer, which bounds the memory of each
# summarising task (about 250 bytes per transaction at the pandas engine's peak)
SUMMARY_PARTITION_ROWS = 1_000_000


def _dd():
    return import_optional("dask.dataframe", "clvmodels.distributed")


def _call_arguments(function, *args, **kwargs) -> dict[str, Any]:
    """The arguments of the call ``function(*args, **kwargs)`` by name, with ``function``'s
    defaults filled in (a TypeError where the call would raise one): how the Dask functions
    take the arguments of the local function they mirror without writing its signature again."""
    bound = inspect.signature(function).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


# --------------------------------------------------------------------------------------------
# RFM summary
# --------------------------------------------------------------------------------------------
def _summary_meta(id_dtype, kwargs: dict) -> pd.DataFrame:
    """An empty summary with the columns and dtypes :func:`clvmodels.rfm_summary` produces
    for these settings (read off its result for one synthetic purchase at the observation
    end, so the Dask summary follows whatever columns the local one has)."""
    from clvmodels.data import rfm_summary

    end = pd.Timestamp(kwargs["observation_end"])
    fmt = kwargs.get("datetime_format")
    one = pd.DataFrame(
        {kwargs["customer_id"]: [0], kwargs["datetime"]: [end.strftime(fmt) if fmt else end]}
    )
    if kwargs.get("monetary"):
        one[kwargs["monetary"]] = [1.0]
    out = rfm_summary(one, engine="pandas", **kwargs).iloc[:0]
    out.index = pd.Index([], dtype=id_dtype, name="customer_id")
    out.attrs = {}
    return out


def _summarise_partition(frame: pd.DataFrame, meta: pd.DataFrame, kwargs: dict) -> pd.DataFrame:
    from clvmodels.data import rfm_summary

    if len(frame) == 0:
        return meta
    out = rfm_summary(frame, engine="pandas", **kwargs)
    out.index.name = "customer_id"
    return out[list(meta.columns)].astype(meta.dtypes.to_dict())


def rfm_summary_dask(ddf, *args, **kwargs):
    """RFM summary of a Dask DataFrame of transactions, identical to :func:`clvmodels.rfm_summary`.

    Arguments as in :func:`clvmodels.rfm_summary` (``customer_id, datetime, monetary,
    observation_end, time_unit`` by position or name, the others by name, with its defaults),
    except ``engine``: every partition is summarised with the pandas engine. Returns a Dask
    DataFrame indexed by ``customer_id`` (index name ``customer_id``; customers sorted within
    each partition, the partitions in hash order) with ``frequency, recency, T``
    [``monetary_value``], in ``time_unit`` -- pass the same ``time_unit`` to :func:`score_dask`.
    """
    from clvmodels.data import rfm_summary

    dd = _dd()
    if not isinstance(ddf, dd.DataFrame):
        raise InputError(f"rfm_summary_dask needs a dask DataFrame, got {type(ddf).__name__}")
    if "engine" in kwargs:
        raise TypeError(
            "rfm_summary_dask() got an unexpected keyword argument 'engine' (every partition is "
            "summarised with the pandas engine)"
        )
    kwargs = _call_arguments(rfm_summary, ddf, *args, **kwargs)
    del kwargs["transactions"], kwargs["engine"]
    customer_id, datetime = kwargs["customer_id"], kwargs["datetime"]
    monetary, datetime_format = kwargs["monetary"], kwargs["datetime_format"]
    needed = [customer_id, datetime] + ([monetary] if monetary else [])
    missing = [c for c in needed if c not in ddf.columns]
    if missing:
        raise InputError(
            f"the transactions have no column(s) {missing}; available: {list(ddf.columns)}"
        )
    units.normalize_unit(kwargs["time_unit"])
    if kwargs["observation_end"] is None:
        # one observation end for every partition: the latest transaction overall
        if datetime_format is not None:
            dates = ddf[datetime].map_partitions(
                lambda s: pd.to_datetime(s.astype(str), format=datetime_format),
                meta=(datetime, "datetime64[ns]"),
            )
        else:
            dates = ddf[datetime].map_partitions(pd.to_datetime, meta=(datetime, "datetime64[ns]"))
        kwargs["observation_end"] = pd.Timestamp(dates.max().compute()).isoformat()
    meta = _summary_meta(ddf.dtypes[customer_id], kwargs)
    # as many partitions as keep each at most SUMMARY_PARTITION_ROWS transactions (Parquet
    # inputs give their row counts from the metadata)
    n_rows = int(ddf.map_partitions(len).sum().compute())
    n_out = max(ddf.npartitions, -(-n_rows // SUMMARY_PARTITION_ROWS))
    columns = ddf[needed]
    if n_out > ddf.npartitions:
        # a large input partition is cut before the shuffle (which copies what it splits)
        columns = columns.repartition(npartitions=n_out)
    shuffled = columns.shuffle(on=customer_id, npartitions=n_out)
    return shuffled.map_partitions(_summarise_partition, meta, kwargs, meta=meta)


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------
def _portable(model) -> tuple[str, Any, pd.DataFrame | None]:
    """A model as something small to ship: its JSON dict when it has one, else the object; and
    the covariate table a time-varying model holds (data its dict leaves out), re-attached
    with ``with_future_covariates`` on the workers."""
    attached = getattr(model, "covariates_", None) if hasattr(model, "covariate_table") else None
    if hasattr(model, "to_dict") and hasattr(type(model), "from_dict"):
        return ("dict", model.to_dict(), attached)
    return ("object", model, None)


def _restore(portable: tuple[str, Any, pd.DataFrame | None]):
    kind, value, attached = portable
    if kind == "object":
        return value
    from clvmodels.io import model_class

    model = model_class(value["class"]).from_dict(value)
    return model if attached is None else model.with_future_covariates(attached)


# the models of the payload last restored in this worker process (tasks of one job share one
# payload object); the lock keeps threads of a worker from restoring them twice at once
_MODEL_CACHE: dict[int, tuple] = {}
_MODEL_CACHE_LOCK = threading.Lock()


def _models_from_payload(payload: dict[str, Any]):
    with _MODEL_CACHE_LOCK:
        cached = _MODEL_CACHE.get(id(payload))
        if cached is None or cached[0] is not payload:
            cached = (payload, _restore(payload["purchase"]), _restore(payload["spend"]))
            _MODEL_CACHE.clear()  # one job at a time per worker process
            _MODEL_CACHE[id(payload)] = cached
    return cached[1], cached[2]


def _block_frame(pieces: list[pd.DataFrame], time_unit: str, observation_end) -> pd.DataFrame:
    frame = pieces[0] if len(pieces) == 1 else pd.concat(pieces)
    frame = frame.copy()
    frame.attrs["time_unit"] = time_unit
    if observation_end is not None:
        frame.attrs["observation_end"] = str(observation_end)
    return frame


def _score_block(pieces, payload, block: int, time_unit: str, valuation: dict):
    from clvmodels.scoring import score_chunk

    purchase, spend = _models_from_payload(payload)
    frame = _block_frame(pieces, time_unit, payload["observation_end"])
    scored, totals = score_chunk(
        frame,
        purchase,
        spend,
        draws=payload["draws"],
        block=block,
        random_seed=payload["random_seed"],
        **valuation,
    )
    return scored, totals


def _slice(frame: pd.DataFrame, start: int, stop: int) -> pd.DataFrame:
    return frame.iloc[start:stop]


def _blocks(ddf, chunk_size: int):
    """Delayed pieces of every block of ``chunk_size`` rows (in row order across partitions)."""
    import dask

    lengths = [int(n) for n in ddf.map_partitions(len).compute()]
    total = sum(lengths)
    if total == 0:
        raise InputError("the summary has no rows: there are no customers to score")
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    parts = ddf.to_delayed()
    blocks = []
    for k in range(-(-total // chunk_size)):
        lo, hi = k * chunk_size, min(total, (k + 1) * chunk_size)
        pieces = []
        for j, part in enumerate(parts):
            start, stop = max(lo, offsets[j]), min(hi, offsets[j + 1])
            if start < stop:
                pieces.append(
                    dask.delayed(_slice, pure=True)(
                        part, int(start - offsets[j]), int(stop - offsets[j])
                    )
                )
        blocks.append(pieces)
    return blocks, total


def _prepare(
    ddf,
    purchase_model,
    spend_model,
    time_unit,
    n_draws,
    random_seed,
    valuation,
    client,
    observation_end=None,
):
    import dask

    from clvmodels.scoring import prepare_draws

    dd = _dd()
    if not isinstance(ddf, dd.DataFrame):
        raise InputError(f"score_dask needs a dask DataFrame, got {type(ddf).__name__}")
    missing = [c for c in ("frequency", "recency", "T", "monetary_value") if c not in ddf.columns]
    if missing:
        raise InputError(
            f"the summary has no column(s) {missing}; build it with rfm_summary_dask(..., "
            "monetary=<amount column>)"
        )
    if time_unit is None:
        raise InputError(
            "score_dask needs time_unit= (the unit of recency and T, e.g. 'W'); a Dask "
            "DataFrame does not carry the summary's attrs, and units are never assumed"
        )
    units.require_same_unit(purchase_model.time_unit_, units.normalize_unit(time_unit), "summary")
    if observation_end is not None:
        try:
            observation_end = pd.Timestamp(observation_end)
        except (TypeError, ValueError) as error:
            raise InputError(
                f"observation_end must be a date (the end the summary's T runs to), got "
                f"{observation_end!r}"
            ) from error
    elif hasattr(purchase_model, "placement_end"):
        raise InputError(
            f"a {type(purchase_model).__name__} places each customer on its covariate calendar "
            "T before the summary's observation end, which a Dask DataFrame does not carry: "
            "pass observation_end= (the date T runs to, e.g. rfm_summary_dask's observation_end)"
        )
    kind = valuation.get("kind", "predictive")
    payload = {
        "purchase": _portable(purchase_model),
        "spend": _portable(spend_model),
        "draws": prepare_draws(purchase_model, spend_model, n_draws, kind, random_seed),
        "random_seed": int(random_seed),
        "observation_end": observation_end,
    }
    if client is not None:
        # one future under a fresh key: a scattered dict would be stored under its own keys
        # ("purchase", "spend", ...), which a later call's payload could not replace
        [shared] = client.scatter([payload], broadcast=True, hash=False)
    else:
        shared = dask.delayed(payload, pure=True, traverse=False)
    return shared


def _per_block(ddf, shared, chunk_size, time_unit: str, valuation: dict, part: int):
    """``(delayed results, n_customers)``: item ``part`` of :func:`_score_block` (0: the scored
    frame, 1: the per-draw totals) of every block of ``chunk_size`` rows, in block order, all
    from the ``shared`` payload of :func:`_prepare`."""
    import dask

    blocks, total = _blocks(ddf, int(chunk_size))
    unit = units.normalize_unit(time_unit)
    # every input is an argument, so the task keys (pure=True) change with any of them
    delayed = [
        dask.delayed(_block_result, pure=True)(pieces, shared, k, unit, valuation, part)
        for k, pieces in enumerate(blocks)
    ]
    return delayed, total


def _block_result(pieces, payload, block: int, time_unit: str, valuation: dict, part: int):
    return _score_block(pieces, payload, block, time_unit, valuation)[part]


def score_dask(
    ddf,
    purchase_model,
    spend_model,
    *,
    time_unit: str,
    n_draws: int = 200,
    random_seed: int = 0,
    chunk_size: int = 20_000,
    client=None,
    observation_end=None,
    **valuation_kwargs,
):
    """Score a Dask DataFrame of customers; identical to local scoring.

    Parameters
    ----------
    ddf : dask DataFrame indexed by customer id with ``frequency, recency, T,
        monetary_value`` (e.g. from :func:`rfm_summary_dask`).
    purchase_model, spend_model : fitted models (the purchase model's ``time_unit_`` must equal
        ``time_unit``).
    time_unit : unit of ``recency`` and ``T`` (Dask frames do not carry ``attrs``).
    n_draws, random_seed, chunk_size : as in :func:`clvmodels.scoring.score_file`: the draws are
        taken once; block ``k`` holds rows ``k * chunk_size ...`` in row order and is seeded with
        ``[random_seed, k]``, so the result equals ``score_file`` on the same rows.
    client : optional ``distributed.Client``; when given, the payload (models + draws) is
        broadcast to the workers once with ``client.scatter``.
    observation_end : the date the summary's ``T`` runs to, set as each block's
        ``attrs["observation_end"]``; required by a :class:`~clvmodels.TimeVaryingParetoNBD`,
        which places each customer on its covariate calendar ``T`` before it (its covariate
        table, future periods included, travels in the payload; a horizon past the table is
        an InputError, never a carry-forward).
    **valuation_kwargs : ``horizon``, ``annual_discount_rate``, ``margin``, ``interval``, ``kind``,
        ``period`` ... for :func:`clvmodels.lifetime_value`.

    Returns
    -------
    dask DataFrame indexed by ``customer_id`` with ``clv_mean, clv_median, clv_lower,
    clv_upper, expected_purchases, expected_spend, probability_alive``; one partition per block.

    Notes
    -----
    The partition lengths are computed first (to cut the blocks), so an expensive input is
    evaluated twice unless it is persisted: ``score_dask(summary.persist(), ...)``.
    """
    dd = _dd()
    shared = _prepare(
        ddf,
        purchase_model,
        spend_model,
        time_unit,
        n_draws,
        random_seed,
        valuation_kwargs,
        client,
        observation_end,
    )
    parts, _ = _per_block(ddf, shared, chunk_size, time_unit, valuation_kwargs, 0)
    index_meta = ddf._meta.index
    meta = pd.DataFrame(
        {c: pd.Series(dtype="float64") for c in SCORE_COLUMNS},
        index=pd.Index([], dtype=index_meta.dtype, name=index_meta.name or "customer_id"),
    )
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


def customer_equity_dask(ddf, purchase_model, spend_model, **kwargs) -> pd.DataFrame:
    """Customer equity of a Dask DataFrame of customers: per-draw totals summed over blocks.

    Arguments as in :func:`score_dask` (with its defaults). Returns a one-row DataFrame (index
    ``"all"``) with ``equity_mean, equity_median, equity_lower, equity_upper, n_customers`` --
    the same numbers as :func:`clvmodels.scoring.score_file`'s ``equity`` for the same rows and
    settings.
    """
    import dask

    from clvmodels.scoring import equity_summary

    args = _call_arguments(score_dask, ddf, purchase_model, spend_model, **kwargs)
    time_unit, valuation_kwargs = args["time_unit"], args["valuation_kwargs"]
    shared = _prepare(
        ddf,
        purchase_model,
        spend_model,
        time_unit,
        args["n_draws"],
        args["random_seed"],
        valuation_kwargs,
        args["client"],
        args["observation_end"],
    )
    per_block, total = _per_block(ddf, shared, args["chunk_size"], time_unit, valuation_kwargs, 1)
    totals = dask.delayed(lambda parts: np.sum(parts, axis=0))(per_block).compute()
    interval = float(valuation_kwargs.get("interval", 0.9))
    row = {**equity_summary(totals, interval), "n_customers": total}
    return pd.DataFrame([row], index=pd.Index(["all"], name="group"))
