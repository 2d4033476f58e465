"""Model files: round trips (a loaded model scores identically), version refusal, corrupt
files, atomic replacement, no code execution on load."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest

import clvmodels as clv
from clvmodels import io as cio
from clvmodels.errors import ModelFileError, NotFittedError

PURCHASE_CLASSES = ["BetaGeo", "ParetoNBD", "ModifiedBetaGeo"]


@pytest.fixture(scope="module")
def summary():
    return clv.datasets.load_cdnow_summary()


@pytest.fixture(scope="module")
def fitted(summary):
    models = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in PURCHASE_CLASSES:
            models[name] = getattr(clv, name)().fit(summary)
        models["GammaGamma"] = clv.GammaGamma().fit(summary)
    return models


def _value(purchase, spend, summary):
    return clv.lifetime_value(
        purchase,
        spend,
        summary,
        horizon="52W",
        annual_discount_rate=0.1,
        margin=0.3,
        interval=0.9,
        kind="predictive",
        draws=50,
        random_seed=7,
    )


@pytest.mark.parametrize("name", PURCHASE_CLASSES)
def test_purchase_model_round_trip_scores_identically(tmp_path, fitted, summary, name):
    model = fitted[name]
    cio.save_model(model, tmp_path / "m")
    loaded = clv.load_model(tmp_path / "m")
    assert type(loaded) is type(model)
    pd.testing.assert_series_equal(loaded.params_, model.params_)
    assert loaded.time_unit_ == model.time_unit_ == "W"
    assert loaded.log_likelihood_ == model.log_likelihood_
    pd.testing.assert_frame_equal(loaded.log_covariance_, model.log_covariance_)
    pd.testing.assert_series_equal(
        loaded.expected_purchases(summary, "39W"), model.expected_purchases(summary, "39W")
    )
    pd.testing.assert_series_equal(
        loaded.probability_alive(summary), model.probability_alive(summary)
    )
    pd.testing.assert_frame_equal(loaded.param_draws(20, seed=3), model.param_draws(20, seed=3))
    gg = fitted["GammaGamma"]
    pd.testing.assert_frame_equal(_value(loaded, gg, summary), _value(model, gg, summary))


def test_spend_model_round_trip(tmp_path, fitted, summary):
    gg = fitted["GammaGamma"]
    path = clv.save_model(gg, tmp_path / "gg", metadata={"data": "cdnow"})
    loaded = clv.load_model(path)
    pd.testing.assert_series_equal(loaded.expected_spend(summary), gg.expected_spend(summary))
    bg = fitted["BetaGeo"]
    pd.testing.assert_frame_equal(_value(bg, loaded, summary), _value(bg, gg, summary))
    document = json.loads((path / "model.json").read_text())
    assert document["schema_version"] == cio.SCHEMA_VERSION
    assert document["class"] == "GammaGamma"
    assert document["kind"] == "spend"
    assert document["metadata"] == {"data": "cdnow"}
    assert set(document["versions"]) >= {"python", "clvmodels", "numpy"}


def test_pipeline_round_trip(tmp_path, fitted, summary):
    bg, gg = fitted["BetaGeo"], fitted["GammaGamma"]
    cio.save_pipeline(tmp_path / "p", bg, gg, metadata={"fit_on": "x"})
    models = cio.load_pipeline(tmp_path / "p")
    assert models.metadata == {"fit_on": "x"}
    assert models.time_unit == "W"
    pd.testing.assert_frame_equal(
        _value(models.purchase, models.spend, summary), _value(bg, gg, summary)
    )
    # only JSON on disk, no pickle anywhere
    files = sorted(p.relative_to(tmp_path / "p").as_posix() for p in (tmp_path / "p").rglob("*"))
    assert files == ["model.json", "purchase", "purchase/model.json", "spend", "spend/model.json"]
    with pytest.raises(ModelFileError, match="load_pipeline"):
        clv.load_model(tmp_path / "p")
    clv.save_model(bg, tmp_path / "single")
    with pytest.raises(ModelFileError, match="purchase model and a spend model"):
        cio.load_pipeline(tmp_path / "single")
    with pytest.raises(TypeError, match="spend must be a spend model"):
        cio.save_pipeline(tmp_path / "bad", bg, bg)


def _edit(path, **changes):
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("version", "advice"), [(99, "upgrade clvmodels"), (0, "refit the model"), ("1", "refit")]
)
def test_other_schema_versions_are_refused(tmp_path, fitted, version, advice):
    clv.save_model(fitted["BetaGeo"], tmp_path / "m")
    _edit(tmp_path / "m" / "model.json", schema_version=version)
    with pytest.raises(ModelFileError, match=f"schema version {version!r}.*{advice}"):
        clv.load_model(tmp_path / "m")


def test_unknown_class_is_refused_without_importing_anything(tmp_path, fitted):
    clv.save_model(fitted["BetaGeo"], tmp_path / "m")
    _edit(tmp_path / "m" / "model.json", **{"class": "os.system"})
    with pytest.raises(ModelFileError, match="not a clvmodels model"):
        clv.load_model(tmp_path / "m")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_text("{ not json"), "not valid JSON"),
        (lambda p: p.write_bytes(b"\x80\x81\x82"), "not valid JSON"),
        (lambda p: p.write_text("[1, 2]"), "not a clvmodels model file"),
        (lambda p: p.write_text('{"format": "x"}'), "not a clvmodels model file"),
        (lambda p: p.unlink(), "has no model.json"),
        (lambda p: _edit(p, model={"class": "BetaGeo"}), "corrupt or incomplete"),
        (lambda p: _edit(p, model=None), "missing or corrupt"),
    ],
)
def test_corrupt_model_files_give_clear_errors(tmp_path, fitted, damage, message):
    clv.save_model(fitted["BetaGeo"], tmp_path / "m")
    damage(tmp_path / "m" / "model.json")
    with pytest.raises(ModelFileError, match=message):
        clv.load_model(tmp_path / "m")


def test_missing_and_wrong_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        clv.load_model(tmp_path / "nope")
    (tmp_path / "file.json").write_text("{}")
    with pytest.raises(ModelFileError, match="is a file"):
        clv.load_model(tmp_path / "file.json")


def test_unfitted_and_foreign_objects_are_not_saved(tmp_path):
    with pytest.raises(NotFittedError):
        clv.save_model(clv.BetaGeo(), tmp_path / "m")
    with pytest.raises(TypeError, match="saves clvmodels models"):
        clv.save_model({"r": 1}, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_save_replaces_a_model_atomically_and_refuses_other_directories(
    tmp_path, fitted, monkeypatch
):
    target = tmp_path / "m"
    clv.save_model(fitted["BetaGeo"], target)
    clv.save_model(fitted["ParetoNBD"], target)  # a model directory is replaced
    assert type(clv.load_model(target)).__name__ == "ParetoNBD"

    # a failure while writing leaves the previous complete model and no temporary files
    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(cio, "_fsync_write", explode)
    with pytest.raises(OSError, match="disk full"):
        clv.save_model(fitted["BetaGeo"], target)
    monkeypatch.undo()
    assert type(clv.load_model(target)).__name__ == "ParetoNBD"
    assert sorted(os.listdir(tmp_path)) == ["m"]

    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(ModelFileError, match="refusing to overwrite"):
        clv.save_model(fitted["BetaGeo"], precious)
    assert (precious / "thesis.txt").read_text() == "do not delete"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ModelFileError, match="refusing to overwrite"):
        clv.save_model(fitted["BetaGeo"], tmp_path / "afile")
    empty = tmp_path / "empty"
    empty.mkdir()
    clv.save_model(fitted["BetaGeo"], empty)
    assert (empty / "model.json").is_file()


def test_non_finite_covariance_round_trips(tmp_path, fitted):
    model = cio.load_model(cio.save_model(fitted["BetaGeo"], tmp_path / "m"))
    model.log_covariance_.iloc[0, 0] = np.nan
    cio.save_model(model, tmp_path / "nan")
    loaded = cio.load_model(tmp_path / "nan")
    assert np.isnan(loaded.log_covariance_.iloc[0, 0])
    with pytest.raises(ValueError, match="finite covariance"):
        loaded.param_draws(5)


@pytest.mark.slow
def test_hierarchical_model_round_trip_with_posterior_checksum(tmp_path, summary):
    small = summary.iloc[:300].copy()
    small["channel"] = np.where(small.index % 2 == 0, "web", "store")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hb = clv.HierarchicalBetaGeo(group="channel").fit(
            small,
            draws=30,
            tune=30,
            chains=1,
            sampler="pymc",
            random_seed=1,
            check_convergence=False,
        )
    path = clv.save_model(hb, tmp_path / "hb")
    document = json.loads((path / "model.json").read_text())
    assert "posterior.nc" in document["files"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = clv.load_model(path)
        pd.testing.assert_series_equal(loaded.params_, hb.params_)
        pd.testing.assert_frame_equal(loaded.param_draws(10, seed=2), hb.param_draws(10, seed=2))
        pd.testing.assert_series_equal(
            loaded.expected_purchases(small, "10W"), hb.expected_purchases(small, "10W")
        )
    # a truncated posterior is caught by the checksum before NetCDF is even opened
    nc = path / "posterior.nc"
    nc.write_bytes(nc.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="checksum"):
        clv.load_model(path)
