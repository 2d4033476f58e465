"""Summaries of the reference data in tests/data, built one way for the tests and the benchmarks
(``benchmarks/`` imports this module as ``tests.reference_data``).

The apparel data are CLVTools' (``apparelTrans``, ``apparelStaticCov``; see tests/data/README.md):
the purchases of 600 customers all acquired on 2005-01-02, calibrated to 2006-12-31 in the
reference runs, and two static 0/1 covariates per customer (gender, channel).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import clvmodels as clv
from clvmodels.covariates import join_covariates

DATA = Path(__file__).parent / "data"
APPAREL_CALIBRATION_END = "2006-12-31"
APPAREL_COVARIATES = ("gender", "channel")


def weekly_summary(transactions: pd.DataFrame, observation_end: str) -> pd.DataFrame:
    """The weekly RFM summary (with spend and litt) of ``transactions`` (columns customer_id,
    date, amount) up to ``observation_end``, later transactions left out."""
    return clv.rfm_summary(
        transactions,
        "customer_id",
        "date",
        "amount",
        observation_end=observation_end,
        time_unit="W",
        after_observation_end="exclude",
    )


def apparel_summary() -> pd.DataFrame:
    """The weekly summary of the apparel transactions up to the calibration end."""
    transactions = pd.read_csv(DATA / "apparel_transactions.csv")
    return weekly_summary(transactions, APPAREL_CALIBRATION_END)


def apparel_with_covariates() -> pd.DataFrame:
    """:func:`apparel_summary` with the customers' gender and channel columns joined."""
    customers = pd.read_csv(DATA / "apparel_customers.csv")
    return join_covariates(apparel_summary(), customers, list(APPAREL_COVARIATES))
