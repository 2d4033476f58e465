"""Classic data sets, read from the files shipped inside the installed ``lifetimes`` wheel.

Nothing is downloaded: every loader reads ``lifetimes/datasets/`` of the installed
``lifetimes`` package.

CDNOW
-----
Purchases of compact discs at CDNOW by the 23,570 customers who made their first purchase in
the first quarter of 1997, followed to the end of June 1998 (Fader & Hardie 2001; Fader,
Hardie & Lee 2005, "Counting your customers the easy way", Marketing Science 24(2)). The
"sample" is the 1/10th random sample of 2,357 customers used throughout the published papers.

Published conventions (used by :func:`load_cdnow_summary` and
:func:`load_cdnow_calibration_holdout`):

* calibration ends 1997-09-30 (39 weeks), the holdout runs to 1998-06-30 (weeks 40-78);
* the time unit is the week, durations are days / 7;
* ``frequency`` counts distinct purchase *days* after the first (several lines on one day are
  one purchase, their amounts summed);
* ``recency`` is first to last purchase, ``T`` first purchase to the end of calibration;
* ``monetary_value`` is the mean spend of the repeat purchases only (0 without repeats).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

__all__ = [
    "cdnow_path",
    "load_cdnow_transactions",
    "load_cdnow_summary",
    "load_cdnow_calibration_holdout",
    "load_donations_summary",
    "CDNOW_CALIBRATION_END",
    "CDNOW_OBSERVATION_END",
]

CDNOW_CALIBRATION_END = "1997-09-30"
CDNOW_OBSERVATION_END = "1998-06-30"

_FILES = {
    "sample": "CDNOW_sample.txt",
    "master": "CDNOW_master.txt",
    "summary": "cdnow_customers_summary.csv",
    "summary_with_transactions": "cdnow_customers_summary_with_transactions.csv",
    "donations": "donations.csv",
}


def _lifetimes_dir() -> Path:
    """``lifetimes/datasets`` of the installed package, found without importing lifetimes
    (importing it costs seconds: autograd, plotting...)."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the CDNOW and donations files ship inside the 'lifetimes' package; "
            "install it with `pip install lifetimes`"
        )
    return Path(next(iter(spec.submodule_search_locations))).resolve() / "datasets"


def cdnow_path(name: str) -> Path:
    """Path of one of the data files inside ``lifetimes/datasets/``.

    ``name`` is one of "sample", "master", "summary", "summary_with_transactions",
    "donations".
    """
    if name not in _FILES:
        raise ValueError(f"unknown data file {name!r}; use one of {', '.join(_FILES)}")
    path = _lifetimes_dir() / _FILES[name]
    if not path.exists():  # pragma: no cover - broken installation
        raise FileNotFoundError(f"{path} is missing from the installed lifetimes package")
    return path


def load_cdnow_transactions(which: str = "sample") -> pd.DataFrame:
    """CDNOW purchase records, one row per line of the original file.

    Parameters
    ----------
    which : {"sample", "master"}
        "sample" (default): the 1/10th sample, 2,357 customers, 6,919 rows.
        "master": all 23,570 customers, 69,659 rows.

    Returns
    -------
    DataFrame
        One row per line of the file, with columns

        * ``customer_id`` (int64): for the sample, the sample id 1..2,357 used as ``ID`` in the
          published summaries (``cdnow_customers_summary.csv``); for the master file, the
          master id 1..23,570;
        * ``date`` (datetime64): purchase day (the files store ``%Y%m%d`` integers);
        * ``quantity`` (int64): number of CDs on the line;
        * ``amount`` (float64): dollar value of the line;
        * sample only: ``master_customer_id`` (int64), the customer's id in the master file.

    Several lines may share a customer and a day; :func:`clvmodels.rfm_summary` merges them into
    one purchase. Rows are in file order (by customer, then date).
    """
    if which == "sample":
        raw = pd.read_csv(
            cdnow_path("sample"),
            sep=r"\s+",
            header=None,
            names=["master_customer_id", "customer_id", "date", "quantity", "amount"],
            dtype={
                "master_customer_id": "int64",
                "customer_id": "int64",
                "date": "str",
                "quantity": "int64",
                "amount": "float64",
            },
        )
        columns = ["customer_id", "date", "quantity", "amount", "master_customer_id"]
    elif which == "master":
        raw = pd.read_csv(
            cdnow_path("master"),
            sep=r"\s+",
            header=0,
            names=["customer_id", "date", "quantity", "amount"],
            dtype={"customer_id": "int64", "date": "str", "quantity": "int64", "amount": "float64"},
        )
        columns = ["customer_id", "date", "quantity", "amount"]
    else:
        raise ValueError(f"which must be 'sample' or 'master', got {which!r}")
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d").astype("datetime64[ns]")
    out = raw[columns].copy()
    out.attrs["source"] = f"lifetimes/datasets/{_FILES[which]}"
    return out


def load_cdnow_summary() -> pd.DataFrame:
    """The published weekly RFM summary of the 2,357-customer CDNOW sample.

    Read from ``cdnow_customers_summary_with_transactions.csv`` (columns ``ID, x, t_x, T,
    zbar``) as printed by Fader, Hardie & Lee; calibration ends 1997-09-30, unit the week,
    values rounded to 2 decimals in the file.

    Returns
    -------
    DataFrame
        Indexed by ``customer_id`` (the sample id 1..2,357), with columns

        * ``frequency``: repeat purchase days in calibration (x);
        * ``recency``: weeks from first to last purchase (t_x);
        * ``T``: weeks from first purchase to 1997-09-30;
        * ``monetary_value``: mean spend of the repeat purchases (zbar; 0 without repeats).

    ``attrs["time_unit"] == "W"``. Totals: 2,457 repeat purchases, 946 repeat buyers.
    """
    return _read_summary(
        "summary_with_transactions",
        {
            "frequency": ("x", "int64"),
            "recency": ("t_x", "float64"),
            "T": ("T", "float64"),
            "monetary_value": ("zbar", "float64"),
        },
        index=("ID", "customer_id"),
        time_unit="W",
        calibration_end=CDNOW_CALIBRATION_END,
    )


def load_cdnow_calibration_holdout(which: str = "sample") -> pd.DataFrame:
    """Weekly calibration/holdout summary of CDNOW with the published split.

    Calibration 1997-01-01 to 1997-09-30 (39 weeks), holdout 1997-10-01 to 1998-06-30 (39
    weeks), built from :func:`load_cdnow_transactions` with
    :func:`clvmodels.calibration_holdout_summary` (unit "W", monetary from ``amount``).

    Returns
    -------
    DataFrame
        Indexed by ``customer_id``, with ``frequency, recency, T, litt, monetary_value``
        (calibration) and ``frequency_holdout, monetary_value_holdout, duration_holdout``
        (``duration_holdout`` = 39 weeks for every customer). ``attrs["time_unit"] == "W"``.
    """
    from clvmodels.data import calibration_holdout_summary

    tx = load_cdnow_transactions(which)
    return calibration_holdout_summary(
        tx,
        customer_id="customer_id",
        datetime="date",
        monetary="amount",
        calibration_end=CDNOW_CALIBRATION_END,
        observation_end=CDNOW_OBSERVATION_END,
        time_unit="W",
    )


def load_donations_summary() -> pd.DataFrame:
    """Compressed repeat-donation summary of a non-profit (Fader, Hardie & Shang 2010, BG/BB).

    11,104 donors of the 1995 cohort, followed for 6 annual donation opportunities
    (1996-2001). Discrete time: one row per distinct history, not per customer.

    Returns
    -------
    DataFrame
        Columns ``frequency`` (repeat donations, 0..6), ``recency`` (year of the last
        donation, 0..6), ``n_periods`` (opportunities, always 6) and ``count`` (number of donors
        with this history). ``attrs["time_unit"] == "Y"``.
    """
    return _read_summary(
        "donations",
        {
            "frequency": ("frequency", "int64"),
            "recency": ("recency", "int64"),
            "n_periods": ("periods", "int64"),
            "count": ("weights", "int64"),
        },
        time_unit="Y",
    )


def _read_summary(
    name: str,
    columns: dict[str, tuple[str, str]],
    *,
    index: tuple[str, str] | None = None,
    time_unit: str,
    **attrs: str,
) -> pd.DataFrame:
    """The CSV file ``name`` as a summary: ``columns`` maps each column to (the file's column,
    dtype); ``index`` is (the file's int64 id column, index name). ``attrs``: ``time_unit``,
    then ``attrs``, then ``source``."""
    raw = pd.read_csv(cdnow_path(name))
    out = pd.DataFrame(
        {new: raw[old].to_numpy(dtype=dtype) for new, (old, dtype) in columns.items()},
        index=None
        if index is None
        else pd.Index(raw[index[0]].to_numpy(dtype="int64"), name=index[1]),
    )
    out.attrs["time_unit"] = time_unit
    out.attrs.update(attrs)
    out.attrs["source"] = f"lifetimes/datasets/{_FILES[name]}"
    return out
