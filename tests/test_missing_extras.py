"""A missing optional dependency names the extra to install, in the API and the CLI."""

import sys

import pytest

import clvmodels as clv
from clvmodels.errors import MissingExtraError


@pytest.mark.parametrize("cls", ["HierarchicalBetaGeo", "HierarchicalGammaGamma"])
def test_bayesian_fit_without_pymc_names_the_extra(cls, monkeypatch):
    summary = clv.datasets.load_cdnow_summary().assign(channel="web")
    monkeypatch.setitem(sys.modules, "pymc", None)  # import pymc now fails
    with pytest.raises(MissingExtraError, match=r'pip install "clvmodels\[bayes\]"'):
        getattr(clv, cls)(group="channel").fit(summary)


def test_dask_scoring_without_dask_names_the_extra(monkeypatch):
    from clvmodels import distributed

    monkeypatch.setitem(sys.modules, "dask.dataframe", None)
    with pytest.raises(MissingExtraError, match=r"clvmodels\[dask\]"):
        distributed.rfm_summary_dask(None, customer_id="c", datetime="d", time_unit="W")
