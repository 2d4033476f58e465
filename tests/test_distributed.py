"""Dask: RFM summary and scoring on a real LocalCluster (2 worker processes) give results
identical to local scoring."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import clvmodels as clv
from clvmodels import scoring
from clvmodels.distributed import customer_equity_dask, rfm_summary_dask, score_dask
from clvmodels.errors import InputError, TimeUnitError

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

VALUATION = dict(horizon="12M", annual_discount_rate=0.1, margin=0.3, interval=0.9)


@pytest.fixture(scope="module")
def data():
    tx = clv.datasets.load_cdnow_transactions()[["customer_id", "date", "amount"]]
    local = clv.rfm_summary(tx, "customer_id", "date", "amount", time_unit="W", engine="pandas")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bg = clv.BetaGeo().fit(local)
        gg = clv.GammaGamma().fit(local)
    return tx, local, bg, gg


def test_rfm_summary_dask_equals_local(client, data):
    tx, local, _, _ = data
    ddf = dd.from_pandas(tx, npartitions=4)
    remote = rfm_summary_dask(ddf, "customer_id", "date", "amount", time_unit="W")
    got = remote.compute().sort_index()
    assert got.index.is_unique and len(got) == len(local) == 2357
    pd.testing.assert_frame_equal(got, local, check_names=False, check_like=False)


def test_score_dask_is_identical_to_local_file_scoring(client, data, tmp_path):
    _, local, bg, gg = data
    path = scoring.write_summary_file(local, tmp_path / "summary.parquet")
    result = scoring.score_file(
        path, tmp_path / "clv.parquet", bg, gg, n_draws=40, random_seed=5, chunk_size=400,
        kind="predictive", **VALUATION,
    )  # fmt: skip
    expected = pd.read_parquet(tmp_path / "clv.parquet").set_index("customer_id")
    # partitions of uneven sizes that do not line up with the blocks of 400 customers
    ddf = dd.from_pandas(local, npartitions=7)
    remote = score_dask(
        ddf, bg, gg, time_unit="W", n_draws=40, random_seed=5, chunk_size=400, client=client,
        kind="predictive", **VALUATION,
    )  # fmt: skip
    got = remote.compute()
    assert remote.npartitions == 6
    pd.testing.assert_frame_equal(got, expected, check_names=False)
    equity = customer_equity_dask(
        ddf, bg, gg, time_unit="W", n_draws=40, random_seed=5, chunk_size=400,
        kind="predictive", **VALUATION,
    )  # fmt: skip
    for key in ("equity_mean", "equity_lower", "equity_upper"):
        assert equity[key].iloc[0] == pytest.approx(result.equity[key], rel=1e-12)
    assert equity["n_customers"].iloc[0] == 2357


def test_summary_then_score_on_the_cluster_matches_direct_lifetime_value(client, data):
    tx, local, bg, gg = data
    ddf = dd.from_pandas(tx, npartitions=3)
    summary = rfm_summary_dask(ddf, "customer_id", "date", "amount", time_unit="W")
    scored = score_dask(
        summary, bg, gg, time_unit="W", n_draws=20, random_seed=1, chunk_size=1000,
        kind="expected", **VALUATION,
    ).compute().sort_index()  # fmt: skip
    draws = scoring.prepare_draws(bg, gg, 20, "expected", 1)
    direct = clv.lifetime_value(bg, gg, local, kind="expected", draws=draws, **VALUATION)
    np.testing.assert_allclose(scored.to_numpy(), direct.loc[scored.index].to_numpy(), rtol=1e-12)


def test_score_dask_refuses_missing_or_wrong_units(data):
    _, local, bg, gg = data
    ddf = dd.from_pandas(local, npartitions=2)
    with pytest.raises(InputError, match="time_unit="):
        score_dask(ddf, bg, gg, time_unit=None, **VALUATION)
    with pytest.raises(TimeUnitError, match="unit 'D'"):
        score_dask(ddf, bg, gg, time_unit="D", **VALUATION)
    with pytest.raises(InputError, match="monetary_value"):
        score_dask(ddf[["frequency", "recency", "T"]], bg, gg, time_unit="W", **VALUATION)
    with pytest.raises(InputError, match="dask DataFrame"):
        score_dask(local, bg, gg, time_unit="W", **VALUATION)
    with pytest.raises(InputError, match="no column"):
        rfm_summary_dask(dd.from_pandas(local.reset_index(), npartitions=1), time_unit="W")
