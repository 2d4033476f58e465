"""Fixtures shared by the test modules."""

import pytest

import clvmodels as clv


@pytest.fixture(scope="module")
def cdnow():
    """The published CDNOW calibration summary (2,357 customers, 39 weeks); one per module."""
    return clv.datasets.load_cdnow_summary()
