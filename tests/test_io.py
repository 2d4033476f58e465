"""Model files: round trips (a loaded model scores identically), version refusal, corrupt
files, atomic replacement, no code execution on load."""

from __future__ import annotations

import json
import os
import re
import time
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
        (lambda p: _edit(p, model=None), "field 'model' must be an object"),
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
    """A fit without standard errors (covariance all NaN) round trips; a covariance that is
    partly NaN is no fit's and is refused on save as on load."""
    model = cio.load_model(cio.save_model(fitted["BetaGeo"], tmp_path / "m"))
    model.set_log_covariance(np.full((4, 4), np.nan))
    cio.save_model(model, tmp_path / "nan")
    loaded = cio.load_model(tmp_path / "nan")
    assert np.isnan(loaded.log_covariance_.to_numpy()).all()
    with pytest.raises(ValueError, match="finite covariance"):
        loaded.param_draws(5)
    model.log_covariance_ = fitted["BetaGeo"].log_covariance_.copy()
    model.log_covariance_.iloc[0, 0] = np.nan
    with pytest.raises(ValueError, match="cannot save this BetaGeo: its field 'model.log_cov"):
        cio.save_model(model, tmp_path / "mixed")
    assert not (tmp_path / "mixed").exists()


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


# --------------------------------------------------------------------------------------------
# tampered model files: every field checked against the class, refused naming file and field
# --------------------------------------------------------------------------------------------
def _model_edit(**changes):
    """Change fields of the ``model`` section (``_DELETE`` as a value deletes the field)."""

    def edit(document):
        for key, value in changes.items():
            if value is _DELETE:
                del document["model"][key]
            else:
                document["model"][key] = value

    return edit


def _param(name, value):
    def edit(document):
        if value is _DELETE:
            del document["model"]["params"][name]
        else:
            document["model"]["params"][name] = value

    return edit


def _covariance(transform):
    def edit(document):
        document["model"]["log_covariance"] = transform(document["model"]["log_covariance"])

    return edit


def _top(**changes):
    def edit(document):
        for key, value in changes.items():
            if value is _DELETE:
                del document[key]
            else:
                document[key] = value

    return edit


_DELETE = object()


def _asymmetric(cov):
    cov[0][1] += 1.0
    return cov


def _indefinite(cov):
    return (-np.eye(4)).tolist()


def _mixed_nan(cov):
    cov[2][2] = float("nan")
    return cov


def _infinite(cov):
    cov[1][1] = float("inf")
    return cov


def _cnbd(k):
    def edit(document):
        for where in (document, document["model"]):
            where["class"] = "BetaGeoCNBD"
        document["model"]["settings"] = {"engine": "native", "k": None}
        document["model"]["family"] = {"k": k}

    return edit


TAMPERED = [
    ("r = -1", _param("r", -1.0), "'model.params.r' = -1.0: the BetaGeo parameter r must be"),
    ("r = 0", _param("r", 0), "'model.params.r' = 0"),
    ("alpha = inf", _param("alpha", float("inf")), "'model.params.alpha' = inf"),
    ("a = NaN", _param("a", float("nan")), "'model.params.a' = nan"),
    ("b missing", _param("b", _DELETE), "'model.params.b' is missing"),
    ("extra parameter", _param("z", 1.0), "'model.params.z' is not a field"),
    ("r a string", _param("r", "0.24"), "'model.params.r' must be a number, got string"),
    ("r a boolean", _param("r", True), "'model.params.r' must be a number, got True"),
    ("asymmetric covariance", _covariance(_asymmetric), "must be symmetric"),
    ("indefinite covariance", _covariance(_indefinite), "not positive semi-definite"),
    ("covariance 3 x 3", _covariance(lambda c: [row[:3] for row in c[:3]]), "4 x 4 matrix"),
    ("covariance partly NaN", _covariance(_mixed_nan), "all finite, or all NaN"),
    ("covariance infinite", _covariance(_infinite), "all finite, or all NaN"),
    ("covariance of strings", _covariance(lambda c: [["x"] * 4] * 4), "must be a number"),
    ("time unit missing", _model_edit(time_unit=_DELETE), "'model.time_unit' is missing"),
    ("time unit unknown", _model_edit(time_unit="fortnight"), "is not a time unit"),
    ("time unit null", _model_edit(time_unit=None), "'model.time_unit' must be a time unit"),
    ("extra model field", _model_edit(evil="rm -rf"), "'model.evil' is not a field"),
    ("converged a string", _model_edit(converged="yes"), "'model.converged' must be true or"),
    ("engine unknown", _model_edit(settings={"engine": "x"}), "'model.settings.engine' must be"),
    ("log-likelihood NaN", _model_edit(log_likelihood=float("nan")), "'model.log_likelihood'"),
    ("n_customers negative", _model_edit(n_customers=-5), "'model.n_customers' must be"),
    ("boundary names", _model_edit(boundary_parameters=["q"]), "'model.boundary_parameters'"),
    ("kind wrong", _top(kind="spend"), "'kind' = 'spend', but a BetaGeo is a purchase model"),
    ("files missing", _top(files=_DELETE), "field 'files' is missing"),
    ("extra top field", _top(hook="os.system"), "field 'hook' is not a field"),
    ("metadata a list", _top(metadata=[1]), "field 'metadata' must be an object"),
    ("versions ill-typed", _top(versions={"clvmodels": 1}), "'versions.clvmodels' must be"),
    ("bad checksum", _top(files={"x": {"sha256": "zz"}}), "'files.x.sha256' must be a SHA-256"),
    ("schema version true", _top(schema_version=True), "schema version True"),
    ("CNBD k = -1", _cnbd(-1), "'model.family.k' is not accepted"),
    ("CNBD k = 2.5", _cnbd(2.5), "'model.family.k' is not accepted"),
    ("CNBD k = null", _cnbd(None), "'model.family.k' must be a value"),
]


@pytest.mark.parametrize(("label", "edit", "message"), TAMPERED, ids=[t[0] for t in TAMPERED])
def test_tampered_model_files_are_refused_naming_file_and_field(
    tmp_path, fitted, label, edit, message
):
    clv.save_model(fitted["BetaGeo"], tmp_path / "m")
    path = tmp_path / "m" / "model.json"
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document, allow_nan=True))
    with pytest.raises(ModelFileError) as info:
        clv.load_model(tmp_path / "m")
    text = str(info.value)
    assert message in text, text
    assert str(path) in text or "schema version" in text


def test_the_untampered_file_and_a_valid_cnbd_file_load(tmp_path, fitted, summary):
    clv.save_model(fitted["BetaGeo"], tmp_path / "m")
    path = tmp_path / "m" / "model.json"
    document = json.loads(path.read_text())
    _cnbd(2)(document)
    path.write_text(json.dumps(document, allow_nan=True))
    model = clv.load_model(tmp_path / "m")
    assert type(model).__name__ == "BetaGeoCNBD" and model.k_ == 2


def test_duplicate_keys_are_refused(tmp_path, fitted):
    clv.save_model(fitted["BetaGeo"], tmp_path / "m")
    path = tmp_path / "m" / "model.json"
    text = path.read_text()
    path.write_text(text.replace('"params": {', '"params": {"r": -1.0, ', 1))
    with pytest.raises(ModelFileError, match="duplicate key"):
        clv.load_model(tmp_path / "m")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_param("p", -2.0), "'model.params.p' = -2.0: the GammaGamma parameter p must be"),
        (_param("q", float("nan")), "'model.params.q' = nan"),
        (_model_edit(time_unit=None), None),  # a spend model may have no time unit
    ],
)
def test_tampered_spend_model_in_a_scoring_directory(tmp_path, fitted, edit, message):
    cio.save_pipeline(tmp_path / "p", fitted["BetaGeo"], fitted["GammaGamma"])
    path = tmp_path / "p" / "spend" / "model.json"
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document, allow_nan=True))
    if message is None:
        assert cio.load_pipeline(tmp_path / "p").spend.time_unit_ is None
        return
    with pytest.raises(ModelFileError, match="spend/model.json: field " + re.escape(message)):
        cio.load_pipeline(tmp_path / "p")


def test_tampered_pipeline_document(tmp_path, fitted):
    cio.save_pipeline(tmp_path / "p", fitted["BetaGeo"], fitted["GammaGamma"])
    path = tmp_path / "p" / "model.json"
    original = json.loads(path.read_text())
    cases = [
        (lambda d: d["components"].pop("spend"), "'components.spend' is missing"),
        (lambda d: d["components"]["purchase"].update(directory="../x"), "must name a subdir"),
        (lambda d: d["components"]["purchase"].update(**{"class": "ParetoNBD"}), "holds a BetaGeo"),
        (lambda d: d.update(extra=1), "field 'extra' is not a field"),
        (lambda d: d.update(metadata=None), "field 'metadata' must be an object"),
    ]
    for edit, message in cases:
        document = json.loads(json.dumps(original))
        edit(document)
        path.write_text(json.dumps(document))
        with pytest.raises(ModelFileError, match=re.escape(message)):
            cio.load_pipeline(tmp_path / "p")


def test_the_checked_fields_are_those_the_models_write(fitted):
    """A guard against drift: a field added to ``to_dict`` must be added to the checks."""
    known = set(cio.MAXIMUM_LIKELIHOOD_FIELDS) | set(cio.MAXIMUM_LIKELIHOOD_OPTIONAL_FIELDS)
    for model in fitted.values():
        assert set(cio.MAXIMUM_LIKELIHOOD_FIELDS) <= set(model.to_dict()) <= known


# --------------------------------------------------------------------------------------------
# temporaries left by killed runs
# --------------------------------------------------------------------------------------------
def _dead_pid() -> int:
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_model_directory_moved_aside_by_a_killed_run_is_put_back(tmp_path, fitted):
    target = tmp_path / "m"
    clv.save_model(fitted["ParetoNBD"], target)
    dead = _dead_pid()
    # killed between "move the old model aside" and "rename the new one in"
    old = tmp_path / f".m.old-{cio.HOST_TAG}-{dead}-0123abcd"
    half = tmp_path / f".m.tmp-{cio.HOST_TAG}-{dead}-4567cdef"
    os.replace(target, old)
    half.mkdir()
    (half / "model.json").write_text("{")
    mine = tmp_path / f".m.tmp-{cio.HOST_TAG}-{os.getpid()}-89abcdef"  # a live process's
    mine.mkdir()
    done = cio.remove_stale_temporaries(target)
    assert any("restored" in line for line in done)
    assert type(clv.load_model(target)).__name__ == "ParetoNBD"
    assert sorted(os.listdir(tmp_path)) == sorted(["m", mine.name])
    # the next save removes what is stale and replaces the model as usual
    clv.save_model(fitted["BetaGeo"], target)
    assert type(clv.load_model(target)).__name__ == "BetaGeo"


def test_temporaries_are_recognisable_and_stale_ones_removed(tmp_path):
    dead = _dead_pid()
    target = tmp_path / "clv.parquet"
    tmp = cio.temporary_path(target)
    assert tmp.name.startswith(f".clv.parquet.tmp-{cio.HOST_TAG}-{os.getpid()}-")
    assert tmp.name.endswith(".parquet")  # the format can still be told from the name
    stale = tmp_path / f".clv.parquet.tmp-{cio.HOST_TAG}-{dead}-0123abcd.parquet"
    other_host = tmp_path / f".clv.parquet.tmp-ffffffff-{dead}-0123abcd.parquet"
    old_style = tmp_path / ".clv.parquet.tmp-0123abcd"
    recent_old_style = tmp_path / ".clv.parquet.tmp-4567cdef"
    unrelated = tmp_path / ".clv.parquet.tmp-notours"
    other_target = tmp_path / f".other.parquet.tmp-{cio.HOST_TAG}-{dead}-0123abcd.parquet"
    for path in (stale, other_host, old_style, recent_old_style, unrelated, other_target):
        path.write_text("x")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old_style, (two_days_ago, two_days_ago))
    os.utime(other_host, (two_days_ago, two_days_ago))  # another host's: kept for a week
    done = cio.remove_stale_temporaries(target)
    assert len(done) == 2
    assert not stale.exists() and not old_style.exists()
    for kept in (other_host, recent_old_style, unrelated, other_target):
        assert kept.exists()


def test_stale_scratch_folders_are_removed(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f"{cio.SCRATCH_PREFIX}{cio.HOST_TAG}-{dead}-abc"
    live = tmp_path / f"{cio.scratch_prefix()}def"
    unrelated = tmp_path / "clvmodels-data"
    for folder in (stale, live, unrelated):
        folder.mkdir()
        (folder / "spill.tmp").write_text("x")
    assert len(cio.remove_stale_scratch(tmp_path)) == 1
    assert not stale.exists() and live.exists() and unrelated.exists()
