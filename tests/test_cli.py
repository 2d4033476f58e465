"""The ``clvmodels`` command line: the pipeline, settings, manifests, quiet mode, atomic output
and every error path (exit code + one line, never a traceback or a partial output)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

import clvmodels as clv
from clvmodels import cli, registry, scoring
from clvmodels.io import SCHEMA_VERSION

runner = CliRunner()


def invoke(*args, **kwargs):
    return runner.invoke(cli.app, [str(a) for a in args], **kwargs)


def assert_one_line_error(result, code: int, *fragments: str):
    """Exit code, a single ``Error:`` line on stderr, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert lines[-1] == errors[0]
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Transactions file, its summary, a fitted model directory and a CLV output."""
    root = tmp_path_factory.mktemp("cli")
    tx = clv.datasets.load_cdnow_transactions()
    tx = tx[tx["date"] <= "1997-09-30"][["customer_id", "date", "amount"]]
    tx.to_parquet(root / "tx.parquet")
    tx.to_csv(root / "tx.csv", index=False)
    result = invoke("rfm", root / "tx.parquet", "--out", root / "summary.parquet", "--quiet")
    assert result.exit_code == 0, result.stderr
    result = invoke("fit", root / "summary.parquet", "--out", root / "model", "--quiet")
    assert result.exit_code == 0, result.stderr
    return root


def test_rfm_writes_summary_with_its_unit_and_a_manifest(work):
    table = pq.read_table(work / "summary.parquet")
    assert table.num_rows == 2357
    columns = {"customer_id", "frequency", "recency", "T", "monetary_value"}
    assert columns <= set(table.column_names) <= columns | {"litt"}  # litt: CNBD-k models
    meta = json.loads(table.schema.metadata[b"clvmodels"])
    assert meta["time_unit"] == "W" and meta["kind"] == "rfm_summary"
    # same numbers as the published CDNOW summary (frequency is exact; durations to 2 decimals)
    s = table.to_pandas().set_index("customer_id").sort_index()
    published = clv.datasets.load_cdnow_summary().sort_index()
    np.testing.assert_array_equal(s["frequency"], published["frequency"])
    np.testing.assert_allclose(s["T"], published["T"], atol=0.01)
    manifest = json.loads((work / "summary.parquet.manifest.json").read_text())
    assert manifest["command"] == "rfm"
    assert manifest["inputs"][0]["sha256"] and manifest["inputs"][0]["bytes"] > 0
    assert manifest["settings"]["time_unit"] == "W"
    assert manifest["summary"]["n_customers"] == 2357
    assert {"python", "clvmodels", "numpy", "pandas"} <= set(manifest["versions"])


def test_fit_saves_models_and_diagnostics(work):
    models = clv.io.load_pipeline(work / "model")
    # published BG/NBD estimates for CDNOW (Fader, Hardie & Lee 2005)
    np.testing.assert_allclose(
        models.purchase.params_[["r", "alpha", "a", "b"]], [0.243, 4.414, 0.793, 2.426], atol=2e-3
    )
    manifest = json.loads((work / "model" / "manifest.json").read_text())
    diag = manifest["fit_diagnostics"]
    assert diag["purchase"]["class"] == "BetaGeo" and diag["purchase"]["converged"] is True
    assert diag["spend"]["class"] == "GammaGamma"
    assert diag["purchase"]["n_customers"] == 2357
    document = json.loads((work / "model" / "model.json").read_text())
    assert document["schema_version"] == SCHEMA_VERSION


def test_score_with_model_writes_output_and_manifest(work):
    out = work / "clv.parquet"
    result = invoke(
        "score", work / "summary.parquet", "--model", work / "model", "--horizon", "12M",
        "--discount-rate", 0.1, "--margin", 0.3, "--interval", 0.9, "--draws", 50,
        "--chunk-size", 700, "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "Customer equity (2,357 customers)" in result.stdout
    frame = pd.read_parquet(out)
    assert len(frame) == 2357 and frame["customer_id"].is_unique
    assert list(frame.columns) == [
        "customer_id", "clv_mean", "clv_median", "clv_lower", "clv_upper",
        "expected_purchases", "expected_spend", "probability_alive",
    ]  # fmt: skip
    assert (frame["clv_lower"] <= frame["clv_median"]).all()
    assert (frame["clv_median"] <= frame["clv_upper"]).all()
    manifest = json.loads((work / "clv.parquet.manifest.json").read_text())
    assert manifest["settings"]["margin"] == 0.3 and manifest["settings"]["n_draws"] == 50
    assert {i["role"] for i in manifest["inputs"]} == {"input", "model"}
    eq = manifest["customer_equity"]
    assert eq["equity_lower"] < eq["equity_mean"] < eq["equity_upper"]
    assert eq["equity_mean"] == pytest.approx(frame["clv_mean"].sum(), rel=1e-9)
    # same settings, same seed: the same numbers again
    again = work / "again.parquet"
    result = invoke(
        "score", work / "summary.parquet", "--model", work / "model", "--margin", 0.3,
        "--draws", 50, "--chunk-size", 700, "--out", again, "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0
    pd.testing.assert_frame_equal(pd.read_parquet(again), frame)


def test_limit_scores_the_first_chunks_only(work, tmp_path):
    out = tmp_path / "trial.parquet"
    result = invoke("score", work / "summary.parquet", "--model", work / "model", "--draws", 10,
                    "--chunk-size", 300, "--limit", 500, "--out", out, "-q")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    frame = pd.read_parquet(out)
    expected = _summary_frame(work)["customer_id"].iloc[:600].tolist()
    assert frame["customer_id"].tolist() == expected


def test_expected_kind_does_not_depend_on_chunking(work):
    outs = []
    for chunk in (300, 100_000):
        out = work / f"exp_{chunk}.csv"
        result = invoke(
            "score", work / "summary.parquet", "--model", work / "model", "--kind", "expected",
            "--draws", 30, "--chunk-size", chunk, "--out", out, "--quiet",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        outs.append(pd.read_csv(out))
    pd.testing.assert_frame_equal(outs[0], outs[1])
    # and it agrees with lifetime_value on the whole summary with the same draws
    models = clv.io.load_pipeline(work / "model")
    s = _summary_frame(work).set_index("customer_id")
    s.attrs["time_unit"] = "W"
    draws = scoring.prepare_draws(models.purchase, models.spend, 30, "expected", 0)
    direct = clv.lifetime_value(
        models.purchase, models.spend, s, horizon="12M", annual_discount_rate=0.1,
        kind="expected", draws=draws,
    )  # fmt: skip
    got = outs[0].set_index("customer_id").loc[direct.index]
    np.testing.assert_allclose(got["clv_mean"], direct["clv_mean"], rtol=1e-12)


def test_score_without_arguments_runs_the_cdnow_demo_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke()
    assert result.exit_code == 0 and "score" in result.stdout  # plain `clvmodels`: help
    result = invoke("score")
    assert result.exit_code == 0, result.stderr
    assert "Top 10 customers by CLV over 12M (90% predictive interval" in result.stdout
    assert "Customer equity (2,357 customers)" in result.stdout
    table_rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(table_rows) == 10
    assert os.listdir(tmp_path) == []


def test_score_transactions_csv_directly(work):
    out = work / "from_tx.parquet"
    result = invoke("score", work / "tx.csv", "--draws", 20, "--out", out, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    frame = pd.read_parquet(out)
    assert len(frame) == 2357
    manifest = json.loads((work / "from_tx.parquet.manifest.json").read_text())
    assert manifest["fit_diagnostics"]["purchase"]["class"] == "BetaGeo"


def test_quiet_mode_prints_nothing(work):
    result = invoke("fit", work / "summary.parquet", "--out", work / "model_q", "--quiet")
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""
    result = invoke("fit", work / "summary.parquet", "--out", work / "model_q")
    assert "Fitted parameters" in result.stdout


def test_settings_from_toml_and_command_line_wins(work):
    config = work / "settings.toml"
    config.write_text(
        'time_unit = "W"\n\n[score]\nhorizon = "26W"\ndraws = 20\nmargin = 0.5\nkind = "expected"\n'
    )
    out = work / "toml.parquet"
    result = invoke(
        "score", work / "summary.parquet", "--model", work / "model", "--config", config,
        "--margin", 0.25, "--out", out, "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    settings = json.loads((work / "toml.parquet.manifest.json").read_text())["settings"]
    assert settings["horizon"] == "26W" and settings["n_draws"] == 20
    assert settings["kind"] == "expected" and settings["time_unit"] == "W"
    assert settings["margin"] == 0.25
    env = {"CLVMODELS_CONFIG": str(config)}
    result = invoke(
        "score", work / "summary.parquet", "--model", work / "model", "--out", out, "-q", env=env
    )
    assert result.exit_code == 0
    settings = json.loads((work / "toml.parquet.manifest.json").read_text())["settings"]
    assert settings["margin"] == 0.5


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[score]\nhorizn = "1Y"\n', "unknown setting 'horizn'"),
        ('[scores]\nhorizon = "1Y"\n', "unknown table [scores]"),
        ("[score\n", "not valid TOML"),
        ('[score]\ndraws = "many"\n', "draws"),
    ],
)
def test_bad_settings_files(work, tmp_path, text, fragment):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = invoke("score", work / "summary.parquet", "--config", config, "-q")
    assert_one_line_error(result, 2, fragment)


# --------------------------------------------------------------------------------------------
# bad inputs: clear error, exit code 2, no output, previous output intact
# --------------------------------------------------------------------------------------------
def _summary_frame(work) -> pd.DataFrame:
    return pd.read_parquet(work / "summary.parquet")


@pytest.fixture(scope="module")
def bad_files(work, tmp_path_factory):
    return _bad_files(work, tmp_path_factory.mktemp("bad"))


def _bad_files(work, tmp_path):
    s = _summary_frame(work)
    files = {}
    files["missing_column"] = tmp_path / "missing.parquet"
    s.drop(columns=["T"]).to_parquet(files["missing_column"])
    files["string_column"] = tmp_path / "strings.parquet"
    s.assign(T=s["T"].astype(str)).to_parquet(files["string_column"])
    files["corrupt"] = tmp_path / "corrupt.parquet"
    files["corrupt"].write_bytes(b"PAR1" + os.urandom(300))
    files["truncated"] = tmp_path / "truncated.parquet"
    files["truncated"].write_bytes((work / "summary.parquet").read_bytes()[:-200])
    files["empty"] = tmp_path / "empty.parquet"
    files["empty"].write_bytes(b"")
    files["header_only"] = tmp_path / "header.csv"
    files["header_only"].write_text("customer_id,frequency,recency,T,monetary_value\n")
    files["duplicates"] = tmp_path / "dups.parquet"
    table = pa.Table.from_pandas(pd.concat([s, s.iloc[:3]]), preserve_index=False)
    pq.write_table(table.replace_schema_metadata({b"clvmodels": b'{"time_unit": "W"}'}),
                   files["duplicates"])  # fmt: skip
    files["negative"] = tmp_path / "negative.parquet"
    bad = s.copy()
    bad.loc[2000, "frequency"] = -1
    pq.write_table(
        pa.Table.from_pandas(bad, preserve_index=False).replace_schema_metadata(
            {b"clvmodels": b'{"time_unit": "W"}'}
        ),
        files["negative"],
    )
    files["no_unit"] = tmp_path / "nounit.csv"
    s.to_csv(files["no_unit"], index=False)
    return files


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("missing_column", ["missing column(s) ['T']"]),
        ("string_column", ["column 'T'", "expected numbers"]),
        ("corrupt", ["cannot read", "Parquet"]),
        ("truncated", ["cannot read", "Parquet"]),
        ("empty", ["is empty"]),
        ("header_only", ["no rows"]),
        ("duplicates", ["duplicate customer ids", "3 id(s)"]),
        ("negative", ["frequency is negative", "Fix:"]),
    ],
)
def test_bad_summary_files(work, bad_files, tmp_path, name, fragments):
    files = bad_files
    out = tmp_path / "clv.parquet"
    out.write_bytes(b"previous complete output")
    result = invoke("score", files[name], "--model", work / "model", "--out", out, "--draws", 10,
                    "--chunk-size", 500)  # fmt: skip
    assert_one_line_error(result, 2, *fragments)
    assert out.read_bytes() == b"previous complete output"
    assert not (tmp_path / "clv.parquet.manifest.json").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".clv.parquet")]


def test_bad_transactions_files(work, tmp_path):
    tx = pd.read_parquet(work / "tx.parquet")
    tx.drop(columns=["amount"]).to_parquet(tmp_path / "noamount.parquet")
    result = invoke("rfm", tmp_path / "noamount.parquet", "--out", tmp_path / "s.parquet")
    assert_one_line_error(result, 2, "amount")
    tx.assign(amount="lots").to_csv(tmp_path / "text.csv", index=False)
    result = invoke("rfm", tmp_path / "text.csv", "--out", tmp_path / "s.parquet")
    assert_one_line_error(result, 2, "amount")
    result = invoke("rfm", tmp_path / "nope.csv", "--out", tmp_path / "s.parquet")
    assert_one_line_error(result, 2, "does not exist")
    (tmp_path / "empty.csv").write_text("")
    result = invoke("rfm", tmp_path / "empty.csv", "--out", tmp_path / "s.parquet")
    assert_one_line_error(result, 2, "is empty")
    (tmp_path / "corrupt.parquet").write_bytes(os.urandom(500))
    result = invoke("rfm", tmp_path / "corrupt.parquet", "--out", tmp_path / "s.parquet")
    assert_one_line_error(result, 2, "cannot read", "as Parquet")
    (tmp_path / "header.csv").write_text("customer_id,date,amount\n")
    result = invoke("rfm", tmp_path / "header.csv", "--out", tmp_path / "s.parquet")
    assert_one_line_error(result, 2, "empty")
    result = invoke("rfm", work / "tx.parquet", "--out", tmp_path / "no" / "dir" / "s.parquet")
    assert_one_line_error(result, 2, "does not exist")
    assert not (tmp_path / "s.parquet").exists()


def test_bad_model_directories_and_options(work, tmp_path):
    s = work / "summary.parquet"
    result = invoke("score", s, "--model", tmp_path / "nomodel")
    assert_one_line_error(result, 2, "does not exist")
    old = tmp_path / "old"
    clv.io.save_pipeline(old, *_pipeline(work))
    document = json.loads((old / "model.json").read_text())
    document["schema_version"] = 0
    (old / "model.json").write_text(json.dumps(document))
    result = invoke("score", s, "--model", old)
    assert_one_line_error(result, 2, "schema version 0", "refit")
    result = invoke("score", s, "--model", work / "model", "--kind", "median")
    assert_one_line_error(result, 2, "--kind must be one of")
    result = invoke("score", s, "--model", work / "model", "--horizon", "soon")
    assert_one_line_error(result, 2, "cannot read duration")
    result = invoke("score", s, "--model", work / "model", "--time-unit", "D")
    assert_one_line_error(result, 2, "records time unit 'W' but 'D' was given")
    result = invoke("fit", s, "--model", "bgnbd2", "--out", tmp_path / "m")
    assert_one_line_error(result, 2, "--model must be one of")
    result = invoke("fit", s, "--model", "hierarchical", "--out", tmp_path / "m")
    assert_one_line_error(result, 2, "--group")
    result = invoke("score", s, "--draws", "many")  # click's own usage error
    assert result.exit_code == 2 and "Traceback" not in result.output


def _options(command: str) -> set[str]:
    """The names of a command's options and arguments that are settings (not --config/--debug)."""
    params = typer.main.get_command(cli.app).commands[command].params
    return {p.name for p in params} - {"config", "debug"}


def test_manifest_settings_are_the_command_options(work, tmp_path):
    manifest = json.loads((work / "model" / "manifest.json").read_text())
    assert set(manifest["settings"]) == _options("fit")
    out = tmp_path / "clv.parquet"
    result = invoke("score", work / "summary.parquet", "--model", work / "model", "--draws", 5,
                    "--out", out, "-q")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((tmp_path / "clv.parquet.manifest.json").read_text())
    assert set(manifest["settings"]) == _options("score")


def test_model_choices_come_from_the_registry(work, tmp_path):
    purchase, spend = registry.purchase_model_names(), registry.spend_model_names()
    help_text = " ".join(invoke("fit", "--help").stdout.split())
    assert all(name in help_text for name in purchase + spend)
    result = invoke("fit", work / "summary.parquet", "--model", "x", "--out", tmp_path / "m")
    assert_one_line_error(result, 2, "--model must be one of " + ", ".join(purchase))
    result = invoke("fit", work / "summary.parquet", "--spend", "x", "--out", tmp_path / "m")
    assert_one_line_error(result, 2, "--spend must be one of " + ", ".join(spend))
    result = invoke("evaluate", "--models", "x")
    maximum_likelihood = registry.maximum_likelihood_purchase_names()
    assert_one_line_error(result, 2, "--models must be one of " + ", ".join(maximum_likelihood))


def test_a_model_reading_extra_columns_needs_them_in_the_summary(work, tmp_path, monkeypatch):
    """A registry model whose likelihood reads a column the summary lacks."""

    class Family:
        fit_columns = ("frequency", "recency", "T", "regularity")

    class Estimator:
        family_class = Family

    names = [*registry.purchase_model_names(), "extra"]
    real = registry.estimator_class
    monkeypatch.setattr(registry, "purchase_model_names", lambda: names)
    monkeypatch.setattr(
        registry,
        "estimator_class",
        lambda kind, name: Estimator if name == "extra" else real(kind, name),
    )
    result = invoke("fit", work / "summary.parquet", "--model", "extra", "--out", tmp_path / "m")
    assert_one_line_error(result, 2, "missing column(s) ['regularity']", "--model extra")


def test_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "clvmodels.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "Examples" in result.stdout


def _pipeline(work):
    models = clv.io.load_pipeline(work / "model")
    return models.purchase, models.spend


def test_interrupted_scoring_keeps_previous_output(work, tmp_path, monkeypatch):
    out = tmp_path / "clv.parquet"
    args = ("score", work / "summary.parquet", "--model", work / "model", "--draws", 10,
            "--chunk-size", 500, "--out", out, "--quiet")  # fmt: skip
    assert invoke(*args).exit_code == 0
    previous = out.read_bytes()
    real = scoring.score_chunk
    calls = {"n": 0}

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(scoring, "score_chunk", failing)
    result = invoke(*args)
    assert calls["n"] == 3
    assert_one_line_error(result, 130, "interrupted")
    assert out.read_bytes() == previous
    assert sorted(os.listdir(tmp_path)) == ["clv.parquet", "clv.parquet.manifest.json"]

    def broken(*a, **k):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(scoring, "score_chunk", broken)
    result = invoke(*args)
    assert_one_line_error(result, 1, "worker lost", "--debug")
    assert out.read_bytes() == previous
    debug = invoke(*args, "--debug")
    assert isinstance(debug.exception, RuntimeError)
    assert out.read_bytes() == previous
    assert sorted(os.listdir(tmp_path)) == ["clv.parquet", "clv.parquet.manifest.json"]


def test_help_has_examples():
    assert "Examples" in invoke("--help").stdout
    for command in ("rfm", "fit", "score", "evaluate", "report"):
        result = invoke(command, "--help")
        assert result.exit_code == 0
        assert "Examples" in result.stdout, command


def test_evaluate_on_the_cdnow_holdout(tmp_path):
    out = tmp_path / "metrics.csv"
    result = invoke(
        "evaluate", "--models", "bgnbd,mbgnbd", "--draws", 5, "--samples", 50, "--out", out
    )
    assert result.exit_code == 0, result.stderr
    assert "Holdout purchases of 2,357 customers" in result.stdout
    table = pd.read_csv(out, index_col="model")
    assert list(table.index) == ["bgnbd", "mbgnbd"]
    # BG/NBD under-forecasts the CDNOW holdout's 1,788 repeat purchases by about 12%
    assert -0.2 < table.loc["bgnbd", "purchases_total_error"] < -0.05
    assert 0 < table.loc["bgnbd", "coverage_90"] <= 1
    manifest = json.loads((tmp_path / "metrics.csv.manifest.json").read_text())
    assert manifest["split"]["calibration_end"] == "1997-09-30"
    assert manifest["fit_diagnostics"]["bgnbd"]["class"] == "BetaGeo"
    result = invoke("evaluate", "--models", "bgnbd,arima")
    assert_one_line_error(result, 2, "--models must be one of")
    result = invoke("evaluate", tmp_path / "tx.parquet")
    assert_one_line_error(result, 2, "--calibration-end is required")


@pytest.fixture(scope="module")
def clv_file(work):
    path = work / "report_input.parquet"
    result = invoke("score", work / "summary.parquet", "--model", work / "model", "--draws", 20,
                    "--out", path, "-q")  # fmt: skip
    assert result.exit_code == 0
    return path


@pytest.mark.parametrize("suffix", [".html", ".md"])
def test_report(work, clv_file, tmp_path, suffix):
    out = tmp_path / f"report{suffix}"
    result = invoke("report", clv_file, "--out", out, "--top", 5)
    assert result.exit_code == 0, result.stderr
    text = out.read_text()
    assert "Customer equity" in text and "Value by decile" in text
    # the settings in plain words, and why most predictive lower bounds are 0
    words = re.sub(r"<[^>]+>", "", text)
    assert "Horizon: 12 months" in words and "buys nothing at all" in words
    if suffix == ".html":
        assert text.count("<img") == 3 and text.count("<table") == 2
        # proper tables: a header row and a row per decile / customer (test_report_browser.py
        # checks them as a browser reads them)
        assert text.count("<thead>") == text.count("<tbody>") == 2
        assert text.count("<tr>") == 2 + 10 + 5
        assert '<th scope="col" class="number">CLV ($)</th>' in text
    else:
        assert text.count("](report_files/") == 3
        tables = [line for line in text.splitlines() if line.startswith("|")]
        assert len(tables) == 2 * 2 + 10 + 5  # header and rule, a row per decile / customer
        rules = [line for line in tables if set(line) <= set("|:-")]
        assert len(rules) == 2
        assert len({line.count(" | ") for line in tables if line not in rules}) == 2
        assert "| Top 10% | " in text and "CLV ($) |" in text
        # the figures are written atomically: no temporary files are left beside them
        assert sorted(os.listdir(tmp_path / "report_files")) == [
            "clv_by_rank.png", "clv_histogram.png", "gain_curve.png"
        ]  # fmt: skip
    assert (tmp_path / f"report{suffix}.manifest.json").is_file()
    result = invoke("report", work / "summary.parquet", "--out", out)
    assert_one_line_error(result, 2, "missing column(s)")
    result = invoke("report", clv_file, "--out", tmp_path / "report.pdf")
    assert_one_line_error(result, 2, ".html or .md")


def test_report_currency_and_a_file_without_manifest(clv_file, tmp_path):
    """``--currency`` in the headers and amounts; a CLV file written by a script (no manifest,
    settings in the Parquet's pandas attrs) still gets its settings explained; HTML is escaped."""
    s = clv.datasets.load_cdnow_summary().head(200)
    bg, gg = clv.BetaGeo().fit(s), clv.GammaGamma().fit(s)
    values = clv.lifetime_value(bg, gg, s, horizon="52W", draws=10, interval=0.8)
    values.index = [f"<b>{i}</b>" for i in values.index]
    values.index.name = "customer_id"
    values.reset_index().to_parquet(tmp_path / "values.parquet")
    out = tmp_path / "values.html"
    result = invoke("report", tmp_path / "values.parquet", "--out", out, "--currency", "EUR")
    assert result.exit_code == 0, result.stderr
    text = out.read_text()
    words = re.sub(r"<[^>]+>", "", text)
    assert "Total CLV (EUR)" in text and "EUR 0" in text and "$" not in text
    assert "Horizon: 52 weeks" in words and "80% range: low (EUR)" in words
    assert "Discount rate: 10% a year" in words
    assert "&lt;b&gt;" in text and "<b>" not in text
    result = invoke("report", clv_file, "--out", out, "--currency", "euros and cents")
    assert_one_line_error(result, 2, "--currency")


def test_report_templates_ship_with_the_package():
    """The templates are package data (found by an installed, non-editable package too)."""
    import tomllib
    from importlib import resources
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["clvmodels"]
    templates = resources.files("clvmodels.cli") / "templates"
    names = sorted(p.name for p in templates.iterdir() if p.name.endswith(".j2"))
    assert names == ["report.html.j2", "report.md.j2"]
    package = root / "clvmodels"
    shipped = {p.name for pattern in patterns for p in package.glob(pattern)}
    assert set(names) <= shipped
    assert any(d.startswith("jinja2>=3.1") for d in config["project"]["dependencies"])


def test_transactions_are_summarised_in_the_models_unit(work, tmp_path):
    daily = tmp_path / "daily.parquet"
    assert (
        invoke("rfm", work / "tx.parquet", "--out", daily, "--time-unit", "D", "-q").exit_code == 0
    )
    assert invoke("fit", daily, "--out", tmp_path / "m", "-q").exit_code == 0
    out = tmp_path / "clv.parquet"
    result = invoke("score", work / "tx.parquet", "--model", tmp_path / "m", "--draws", 10,
                    "--out", out, "-q")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert len(pd.read_parquet(out)) == 2357
    result = invoke("score", daily, "--model", work / "model", "-q")  # W model, D summary
    assert_one_line_error(result, 2, "unit 'D'", "'W'")


# --------------------------------------------------------------------------------------------
# no lost data: outputs never overwrite inputs, output and manifest never disagree unnoticed,
# SIGTERM cleans up like Ctrl-C, and what killed runs leave behind is removed by the next run
# --------------------------------------------------------------------------------------------
@pytest.fixture
def inputs(work, clv_file, tmp_path):
    """Copies of the inputs in a fresh folder (transactions, summary, model, CLV file)."""
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy(work / "tx.csv", d / "tx.csv")
    shutil.copy(work / "summary.parquet", d / "s.parquet")
    shutil.copytree(work / "model", d / "m")
    shutil.copy(clv_file, d / "clv.parquet")
    (d / "settings.toml").write_text("[score]\ndraws = 5\n")
    return d


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


OUTPUT_IS_INPUT = [
    ("rfm: same path", lambda d: ("rfm", d / "tx.csv", "--out", d / "tx.csv")),
    ("rfm: same file by another path", lambda d: ("rfm", d / "tx.csv", "--out", d / "." / "tx.csv")),
    ("rfm: hard link", lambda d: ("rfm", d / "tx.csv", "--out", _link(d, os.link))),
    ("rfm: symbolic link", lambda d: ("rfm", d / "tx.csv", "--out", _link(d, os.symlink))),
    ("rfm: the manifest", lambda d: ("rfm", _named(d, "o.csv.manifest.json"), "--out", d / "o.csv")),
    ("score: the summary", lambda d: ("score", d / "s.parquet", "--model", d / "m", "--out", d / "s.parquet")),
    ("score: into the model", lambda d: ("score", d / "s.parquet", "--model", d / "m", "--out", d / "m" / "purchase" / "model.json")),
    ("score: the settings", lambda d: ("score", d / "s.parquet", "--model", d / "m", "--config", d / "settings.toml", "--out", d / "settings.toml")),
    ("fit: a folder holding the summary", lambda d: ("fit", d / "s.parquet", "--out", d)),
    ("fit: the summary", lambda d: ("fit", d / "s.parquet", "--out", d / "s.parquet")),
    ("evaluate: the transactions", lambda d: ("evaluate", d / "tx.csv", "--calibration-end", "1997-06-30", "--out", d / "tx.csv")),
    ("report: the CLV file", lambda d: ("report", d / "clv.parquet", "--out", d / "clv.parquet")),
    ("report: its figures folder", lambda d: ("report", _named(d, "r_files/clv.parquet", "clv.parquet"), "--out", d / "r.md")),
]  # fmt: skip


def _link(d, make):
    target = d / f"link-{make.__name__}.csv"
    make(d / "tx.csv", target)
    return target


def _named(d, name, source="tx.csv"):
    path = d / name
    path.parent.mkdir(exist_ok=True)
    shutil.copy(d / source, path)
    return path


@pytest.mark.parametrize(
    ("label", "args"), OUTPUT_IS_INPUT, ids=[case[0] for case in OUTPUT_IS_INPUT]
)
def test_an_output_that_is_an_input_is_refused(inputs, label, args):
    arguments = args(inputs)
    before = _snapshot(inputs)
    line = assert_one_line_error(invoke(*arguments), 2, "the output")
    assert "would destroy the input" in line or "would change the input" in line
    assert _snapshot(inputs) == before  # nothing written, nothing removed
    assert not [p for p in inputs.rglob(".*tmp-*")]


def test_manifest_records_the_output_checksum_and_goes_first(work, tmp_path, monkeypatch):
    from clvmodels.cli.manifest import verify_manifest

    out = tmp_path / "clv.parquet"
    args = ("score", work / "summary.parquet", "--model", work / "model", "--draws", 10,
            "--out", out, "-q")  # fmt: skip
    assert invoke(*args).exit_code == 0
    entry = json.loads((tmp_path / "clv.parquet.manifest.json").read_text())["outputs"][0]
    assert entry["file"] == "clv.parquet" and entry["bytes"] == out.stat().st_size
    assert entry["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert verify_manifest(out)["command"] == "score"
    model_entry = json.loads((work / "model" / "manifest.json").read_text())["outputs"][0]
    assert model_entry["directory"] is True and verify_manifest(work / "model")

    renamed, real = [], os.replace

    def recording(src, dst):
        renamed.append(os.path.basename(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", recording)
    assert invoke(*args, "--seed", 1).exit_code == 0
    assert renamed == ["clv.parquet.manifest.json", "clv.parquet"]


def test_a_kill_between_the_two_renames_is_detected(work, tmp_path, monkeypatch):
    from clvmodels.cli.manifest import ManifestMismatch, verify_manifest

    out = tmp_path / "clv.parquet"
    args = ("score", work / "summary.parquet", "--model", work / "model", "--draws", 10,
            "--out", out, "-q")  # fmt: skip
    assert invoke(*args).exit_code == 0
    previous = out.read_bytes()
    real = os.replace

    def killed_before_the_output(src, dst):
        if os.path.basename(dst) == "clv.parquet":
            raise KeyboardInterrupt  # as if the process died here: new manifest, old output
        return real(src, dst)

    monkeypatch.setattr(os, "replace", killed_before_the_output)
    assert invoke(*args, "--seed", 2, "--margin", 0.5).exit_code == 130
    monkeypatch.undo()
    assert out.read_bytes() == previous
    with pytest.raises(ManifestMismatch, match="SHA-256 differs"):
        verify_manifest(out)
    # the report notices and leaves the manifest's settings and totals out
    report = tmp_path / "report.html"
    result = invoke("report", out, "--out", report)
    assert result.exit_code == 0, result.stderr
    assert "Warning: ManifestWarning" in result.stderr and "does not describe" in result.stderr
    assert "customer equity" not in report.read_text()
    assert "margin=0.5" not in report.read_text()
    assert (
        "ManifestWarning"
        in json.loads((tmp_path / "report.html.manifest.json").read_text())["warnings"][0]
    )
    # the next complete run puts a matching pair in place
    assert invoke(*args).exit_code == 0
    verify_manifest(out)
    # a manifest without checksums (an older clvmodels) cannot be checked: ignored, with a warning
    manifest = json.loads((tmp_path / "clv.parquet.manifest.json").read_text())
    for entry in manifest["outputs"]:
        entry.pop("sha256")
    (tmp_path / "clv.parquet.manifest.json").write_text(json.dumps(manifest))
    result = invoke("report", out, "--out", report)
    assert result.exit_code == 0 and "records no checksum" in result.stderr


SLOW_SCORING = """
import pathlib, sys, time
from clvmodels import scoring
from clvmodels.cli import app

real, calls, marker = scoring.score_chunk, [], pathlib.Path(sys.argv[1])

def slow(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:  # the first chunk is in the temporary output by now
        marker.write_text("scoring")
        time.sleep(120)
    return real(*args, **kwargs)

scoring.score_chunk = slow
sys.argv = ["clvmodels", *sys.argv[2:]]
app(prog_name="clvmodels")
"""


def test_sigterm_is_handled_like_ctrl_c(work, tmp_path):
    out = tmp_path / "clv.parquet"
    args = ["score", work / "summary.parquet", "--model", work / "model", "--draws", 5,
            "--chunk-size", 500, "--out", out, "-q"]  # fmt: skip
    assert invoke(*args).exit_code == 0
    previous = out.read_bytes(), (tmp_path / "clv.parquet.manifest.json").read_bytes()
    scratch, marker = tmp_path / "scratch", tmp_path / "marker"
    scratch.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_SCORING, str(marker), *map(str, args)],
        env={**os.environ, "TMPDIR": str(scratch)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, process.communicate()
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError(process.communicate())
            time.sleep(0.1)
        # mid-run: a partial temporary output and a scratch folder exist
        assert [p for p in os.listdir(tmp_path) if p.startswith(".clv.parquet.tmp-")]
        assert [p for p in os.listdir(scratch) if p.startswith("clvmodels-scratch-")]
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines() == [
        "Error: terminated (SIGTERM); no output was written (previous outputs are intact)"
    ]
    assert (out.read_bytes(), (tmp_path / "clv.parquet.manifest.json").read_bytes()) == previous
    assert sorted(os.listdir(tmp_path)) == [
        "clv.parquet", "clv.parquet.manifest.json", "marker", "scratch"
    ]  # fmt: skip
    assert os.listdir(scratch) == []


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_next_run_removes_what_a_killed_run_left(work, tmp_path, monkeypatch):
    from clvmodels import io as cio

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    dead, host = _dead_pid(), cio.HOST_TAG
    d = tmp_path / "d"
    d.mkdir()
    # what `kill -9` of score and fit runs leaves: partial outputs, manifests, folders
    leftovers = [
        d / f".clv.parquet.tmp-{host}-{dead}-0123abcd.parquet",
        d / f".clv.parquet.manifest.json.tmp-{host}-{dead}-4567cdef.json",
        scratch / f"clvmodels-scratch-{host}-{dead}-x1y2z3",
        d / f".m.tmp-{host}-{dead}-89abcdef",
    ]
    for path in leftovers:
        if path.suffix:
            path.write_bytes(b"PAR1 half a file")
        else:
            path.mkdir()
            (path / "summary.parquet").write_bytes(b"PAR1")
    running = d / f".clv.parquet.tmp-{host}-{os.getpid()}-fedcba98.parquet"  # a live run's
    running.write_bytes(b"PAR1")
    out = d / "clv.parquet"
    result = invoke("score", work / "summary.parquet", "--model", work / "model", "--draws", 5,
                    "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("left by an interrupted run") == 3
    assert invoke("fit", work / "summary.parquet", "--out", d / "m", "-q").exit_code == 0
    assert not any(path.exists() for path in leftovers)
    assert sorted(os.listdir(d)) == sorted(
        ["clv.parquet", "clv.parquet.manifest.json", "m", running.name]
    )
    assert os.listdir(scratch) == []


def test_a_tampered_model_is_refused_in_one_line_naming_file_and_field(work, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(work / "model", model)
    path = model / "purchase" / "model.json"
    document = json.loads(path.read_text())
    document["model"]["params"]["r"] = -1
    path.write_text(json.dumps(document))
    result = invoke(
        "score", work / "summary.parquet", "--model", model, "--out", tmp_path / "o.csv"
    )
    line = assert_one_line_error(result, 2, str(path), "'model.params.r' = -1")
    assert "unexpected" not in line and "report it" not in line
    assert not (tmp_path / "o.csv").exists()


# --------------------------------------------------------------------------------------------
# the README's workflow from the command line: every option it needs, nothing asked twice
# --------------------------------------------------------------------------------------------
def _transactions_with_later_and_zero_orders() -> pd.DataFrame:
    """CDNOW transactions to 1998-06-30 plus zero-value orders: customer 3's only repeat
    purchase is free (a mean spend of 0), customer 1 has a free order beside paid ones."""
    tx = clv.datasets.load_cdnow_transactions()[["customer_id", "date", "amount"]]
    free = pd.DataFrame(
        {
            "customer_id": [3, 1],
            "date": pd.to_datetime(["1997-05-05", "1997-02-01"]),
            "amount": [0.0, 0.0],
        }
    )
    return pd.concat([tx, free], ignore_index=True)


def test_help_shows_no_type_after_flags():
    for command in ([], ["rfm"], ["fit"], ["score"], ["evaluate"], ["report"]):
        result = invoke(*command, "--help")
        assert result.exit_code == 0, result.output
        assert "--help" in result.stdout
        assert "<bool>" not in result.stdout, command
    assert "--quiet" in invoke("score", "--help").stdout


def test_rfm_options_mirror_the_python_keywords(tmp_path):
    """--datetime-format and --after-observation-end; errors name the options, not the Python
    keywords; the same summary as rfm_summary."""
    tx = _transactions_with_later_and_zero_orders().rename(columns={"customer_id": "cust"})
    us = tx.assign(date=tx["date"].dt.strftime("%m/%d/%Y"))
    us.to_csv(tmp_path / "us.csv", index=False)
    out = tmp_path / "summary.parquet"
    base = ("rfm", tmp_path / "us.csv", "--out", out, "--customer-id", "cust",
            "--observation-end", "1997-09-30")  # fmt: skip
    error = assert_one_line_error(invoke(*base), 2, "--datetime-format '%m/%d/%Y'")
    assert "datetime_format" not in error
    error = assert_one_line_error(
        invoke(*base, "--datetime-format", "%m/%d/%Y"), 2, "--after-observation-end exclude"
    )
    assert "after_observation_end" not in error and "observation_end=" not in error
    result = invoke(*base, "--datetime-format", "%m/%d/%Y", "--after-observation-end", "maybe")
    assert_one_line_error(result, 2, "--after-observation-end must be one of")
    assert not out.exists()
    result = invoke(*base, "--datetime-format", "%m/%d/%Y", "--after-observation-end", "exclude")
    assert result.exit_code == 0, result.stderr
    assert "left out 1,959 transactions after the observation end" in result.stderr
    expected = clv.rfm_summary(
        tx, customer_id="cust", datetime="date", monetary="amount", time_unit="W",
        observation_end="1997-09-30", after_observation_end="exclude",
    )  # fmt: skip
    got = pd.read_parquet(out).set_index("cust")
    pd.testing.assert_frame_equal(got, expected[got.columns], check_like=True)
    manifest = json.loads((tmp_path / "summary.parquet.manifest.json").read_text())
    assert manifest["settings"]["after_observation_end"] == "exclude"
    assert manifest["summary"]["n_transactions_after_observation_end"] == 1959
    assert manifest["summary"]["customer_id"] == "cust"


def test_the_summary_records_its_id_column_and_unit(tmp_path):
    """After `rfm --customer-id cust`, fit and score read the id column (and the unit) from
    the summary: Parquet metadata, or the manifest beside a CSV summary."""
    tx = clv.datasets.load_cdnow_transactions()
    tx = tx[tx["date"] <= "1997-09-30"][["customer_id", "date", "amount"]]
    tx.rename(columns={"customer_id": "cust"}).to_parquet(tmp_path / "tx.parquet")
    for name in ("summary.parquet", "summary.csv"):
        summary = tmp_path / name
        result = invoke("rfm", tmp_path / "tx.parquet", "--out", summary, "--customer-id",
                        "cust", "--time-unit", "D", "-q")  # fmt: skip
        assert result.exit_code == 0, result.stderr
        model = tmp_path / f"model_{summary.suffix[1:]}"
        result = invoke("fit", summary, "--out", model, "-q")
        assert result.exit_code == 0, result.stderr
        manifest = json.loads((model / "manifest.json").read_text())
        assert manifest["settings"]["customer_id"] == "cust"
        assert manifest["settings"]["time_unit"] == "D"
        assert clv.io.load_pipeline(model).time_unit == "D"
        out = tmp_path / f"clv_{summary.suffix[1:]}.parquet"
        result = invoke("score", summary, "--model", model, "--draws", 10, "--out", out, "-q")
        assert result.exit_code == 0, result.stderr
        assert len(pd.read_parquet(out)) == 2357
    # an explicit --customer-id still wins (and a wrong one is an error naming the column)
    result = invoke("fit", tmp_path / "summary.parquet", "--customer-id", "id", "--out",
                    tmp_path / "m3")  # fmt: skip
    assert_one_line_error(result, 2, "missing column(s) ['id']")
    # a CSV summary edited after `rfm` no longer matches its manifest: nothing is taken from it
    summary = tmp_path / "summary.csv"
    assert cli.pipeline.recorded_settings(summary) == {"customer_id": "cust", "time_unit": "D"}
    summary.write_text(summary.read_text() + "\n")
    assert cli.pipeline.recorded_settings(summary) == {}


def test_a_summary_written_by_pandas_needs_no_time_unit(work, tmp_path):
    """score on a pandas-written summary: the file's unit when it records one (Parquet keeps
    DataFrame.attrs), else the model's; a file unit that is not the model's is an error."""
    s = clv.datasets.load_cdnow_summary()  # attrs["time_unit"] == "W", like the model
    s.to_csv(tmp_path / "s.csv")  # no unit in the file
    s.to_parquet(tmp_path / "s.parquet")  # the unit in the pandas attrs
    s.attrs["time_unit"] = "D"
    s.to_parquet(tmp_path / "days.parquet")
    for name in ("s.csv",):
        out = tmp_path / f"clv_{name}.csv"
        result = invoke("score", tmp_path / name, "--model", work / "model", "--draws", 10,
                        "--out", out, "-q")  # fmt: skip
        assert result.exit_code == 0, (name, result.stderr)
        assert len(pd.read_csv(out)) == 2357
        manifest = json.loads(manifest_of(out).read_text())
        assert manifest["settings"]["time_unit"] == "W"
    result = invoke("score", tmp_path / "days.parquet", "--model", work / "model", "-q")
    assert_one_line_error(result, 2, "'W'", "'D'")
    result = invoke("score", tmp_path / "s.parquet", "--model", work / "model", "--time-unit",
                    "D", "-q")  # fmt: skip
    assert_one_line_error(result, 2, "records time unit 'W' but 'D' was given")
    # fit has no model to take the unit from: a CSV without one needs --time-unit
    result = invoke("fit", tmp_path / "s.csv", "--out", tmp_path / "m")
    assert_one_line_error(result, 2, "--time-unit")
    result = invoke("fit", tmp_path / "s.parquet", "--out", tmp_path / "m", "-q")
    assert result.exit_code == 0, result.stderr
    assert clv.io.load_pipeline(tmp_path / "m").time_unit == "W"


def test_score_reads_a_pandas_written_parquet_summary(work, tmp_path):
    s = clv.datasets.load_cdnow_summary()
    s.to_parquet(tmp_path / "s.parquet")  # the unit in the pandas attrs, the id as its index
    result = invoke("score", tmp_path / "s.parquet", "--model", work / "model", "--draws", 10, "-q")
    assert result.exit_code == 0, result.stderr


def manifest_of(path):
    return path.with_name(path.name + ".manifest.json")


def test_zero_value_orders_and_spend_customers(tmp_path):
    """A repeat customer whose mean spend is 0 stops the spend fit with the option that fixes
    it; --spend-customers positive leaves them out of the spend fit, says how many, records it
    and still scores every customer (fit, score from transactions, evaluate)."""
    tx = _transactions_with_later_and_zero_orders()
    tx.to_parquet(tmp_path / "tx.parquet")
    summary = tmp_path / "summary.parquet"
    result = invoke("rfm", tmp_path / "tx.parquet", "--out", summary, "--observation-end",
                    "1997-09-30", "--after-observation-end", "exclude", "-q")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    result = invoke("fit", summary, "--out", tmp_path / "m")
    assert_one_line_error(result, 2, "1 of the 947 customers", "--spend-customers positive")
    assert not (tmp_path / "m").exists()
    result = invoke("fit", summary, "--out", tmp_path / "m", "--spend-customers", "some")
    assert_one_line_error(result, 2, "--spend-customers must be one of")
    result = invoke("fit", summary, "--out", tmp_path / "m", "--spend-customers", "positive")
    assert result.exit_code == 0, result.stderr
    assert "left out 1 with zero or less" in result.stderr
    spend_fit = {"customers": "positive", "n_repeat_customers": 947, "n_fitted": 946,
                 "n_left_out": 1}  # fmt: skip
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["spend_fit"] == spend_fit
    assert clv.io.load_pipeline(tmp_path / "m").metadata["spend_fit"] == spend_fit
    # score straight from the transactions: summarise, fit and score with the same options
    out = tmp_path / "clv.parquet"
    args = ("score", tmp_path / "tx.parquet", "--observation-end", "1997-09-30", "--draws", 10,
            "--out", out, "-q")  # fmt: skip
    assert_one_line_error(invoke(*args), 2, "--after-observation-end exclude")
    args += ("--after-observation-end", "exclude")
    assert_one_line_error(invoke(*args), 2, "--spend-customers positive")
    result = invoke(*args, "--spend-customers", "positive")
    assert result.exit_code == 0, result.stderr
    frame = pd.read_parquet(out).set_index("customer_id")
    assert len(frame) == 2357 and np.isfinite(frame.loc[3, "clv_mean"])
    manifest = json.loads(manifest_of(out).read_text())
    assert manifest["spend_fit"] == spend_fit
    assert manifest["summary"]["n_transactions_after_observation_end"] == 1959
    # evaluate: the same option
    args = ("evaluate", tmp_path / "tx.parquet", "--calibration-end", "1997-09-30", "--models",
            "bgnbd", "--draws", 5, "--samples", 50)  # fmt: skip
    assert_one_line_error(invoke(*args), 2, "--spend-customers positive")
    result = invoke(*args, "--spend-customers", "positive")
    assert result.exit_code == 0, result.stderr
    # no --out: the table does not point to an --out file that was not asked for
    assert "all metrics with --out FILE" in result.stdout
    assert "in the --out file" not in result.stdout


def test_the_demo_headline_counts_the_transactions_it_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("score", "--draws", 10, "--top", 0)
    assert result.exit_code == 0, result.stderr
    # 6,919 CDNOW transactions: 4,960 up to 1997-09-30, 1,959 later (the holdout)
    assert "4,960 transactions of 2,357 customers up to 1997-09-30" in result.stderr
    assert "1,959 later ones left out" in result.stderr
    assert "6,919" not in result.stderr


def test_a_bare_number_is_not_a_horizon(work, tmp_path):
    result = invoke("score", work / "summary.parquet", "--model", work / "model", "--horizon", 12)
    assert_one_line_error(result, 2, "--horizon 12 has no unit", "12M", "12W")
    config = tmp_path / "settings.toml"
    config.write_text("[score]\nhorizon = 12\n")
    result = invoke("score", work / "summary.parquet", "--model", work / "model", "-c", config)
    assert_one_line_error(result, 2, "horizon = 12 must be a string")


# --------------------------------------------------------------------------------------------
# missing optional dependencies: the extra to install, exit code 2
# --------------------------------------------------------------------------------------------
def test_a_missing_extra_names_what_to_install(work, tmp_path, monkeypatch):
    from clvmodels.cli.errors import classify_error
    from clvmodels.errors import MissingExtraError, import_optional

    grouped = _summary_frame(work).assign(channel=lambda f: np.where(f.index % 2, "web", "shop"))
    table = pa.Table.from_pandas(grouped, preserve_index=False)
    pq.write_table(table.replace_schema_metadata({b"clvmodels": b'{"time_unit": "W"}'}),
                   tmp_path / "grouped.parquet")  # fmt: skip
    monkeypatch.setitem(sys.modules, "pymc", None)  # as if PyMC were not installed
    result = invoke("fit", tmp_path / "grouped.parquet", "--model", "hierarchical", "--spend",
                    "hierarchical", "--group", "channel", "--out", tmp_path / "h")  # fmt: skip
    error = assert_one_line_error(result, 2, 'pip install "clvmodels[bayes]"', "pymc")
    assert "unexpected" not in error and "report it" not in error
    assert not (tmp_path / "h").exists()
    # the API: an ImportError that names the extra
    with pytest.raises(MissingExtraError, match=r"clvmodels\[bayes\]") as caught:
        import_optional("pymc", "HierarchicalBetaGeo")
    assert isinstance(caught.value, ImportError) and caught.value.extra == "bayes"
    assert caught.value.name == "pymc"
    for module, extra in (("dask.dataframe", "dask"), ("polars", "polars"), ("nutpie", "bayes")):
        code, message = classify_error(ModuleNotFoundError(f"No module named {module!r}",
                                                           name=module))  # fmt: skip
        assert code == 2 and f'pip install "clvmodels[{extra}]"' in message, message
    code, message = classify_error(ModuleNotFoundError("No module named 'foo'", name="foo"))
    assert code == 1 and "unexpected" in message  # not an optional dependency: a bug
