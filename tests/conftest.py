"""Fixtures shared by the test modules."""

import os
from pathlib import Path

import pytest

import clvmodels as clv


@pytest.fixture(scope="module")
def cdnow():
    """The published CDNOW calibration summary (2,357 customers, 39 weeks); one per module."""
    return clv.datasets.load_cdnow_summary()


@pytest.fixture(scope="module")
def client():
    """A two-process Dask LocalCluster client; the worker processes import clvmodels from this
    checkout when it is not installed."""
    distributed = pytest.importorskip("distributed")
    repo = str(Path(__file__).resolve().parents[1])
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = repo + (os.pathsep + old if old else "")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        silence_logs=40,
    )  # fmt: skip
    dask_client = distributed.Client(cluster)
    try:
        yield dask_client
    finally:
        dask_client.close()
        cluster.close()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
