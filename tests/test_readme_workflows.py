"""The README's workflows run verbatim.

The code blocks of the README's "Quick start" (Python, run with ``exec``) and "Batch scoring
from the command line" (bash, run with the installed ``clvmodels`` entry point in a temporary
directory) are taken from README.md as they are, so a documented step that needs an option the
code lacks, or a comment that no longer matches the numbers, fails here. The command-line
workflow reads CDNOW transactions with later dates (the holdout after 1997-09-30, and a few
rows added after the last CDNOW date) and zero-value orders (one repeat customer whose only
repeat purchase is free): what a real transactions file has.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clvmodels as clv

README = Path(__file__).resolve().parents[1] / "README.md"


def section(title: str) -> str:
    """The text of the README's ``## title`` section (up to the next ``## `` heading)."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no section '## {title}'"
    return match.group(1)


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.M | re.S)


def transactions_file(directory: Path) -> Path:
    """``transactions.parquet``: CDNOW (6,919 transactions to 1998-06-30) plus zero-value
    orders and a few transactions after the last CDNOW date."""
    tx = clv.datasets.load_cdnow_transactions()[["customer_id", "date", "amount"]]
    added = pd.DataFrame(
        {
            "customer_id": [3, 1, 2, 4, 5],
            "date": pd.to_datetime(
                ["1997-05-05", "1997-02-01", "1998-07-02", "1998-08-15", "1998-12-31"]
            ),
            "amount": [0.0, 0.0, 25.5, 0.0, 12.0],
        }
    )
    path = directory / "transactions.parquet"
    pd.concat([tx, added], ignore_index=True).to_parquet(path, index=False)
    return path


def clvmodels_command() -> Path:
    """The installed ``clvmodels`` entry point of this interpreter's environment."""
    candidate = Path(sys.executable).parent / "clvmodels"
    found = candidate if candidate.exists() else shutil.which("clvmodels")
    assert found, "the clvmodels entry point is not installed (pip install -e .)"
    return Path(found)


def test_quick_start_runs_verbatim_and_its_comments_hold(tmp_path, monkeypatch):
    blocks = code_blocks(section("Quick start"), "python")
    assert blocks, "the Quick start has no Python block"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for block in blocks:
        exec(compile(block, f"{README}:Quick start", "exec"), namespace)
    s, bg, gg, v = (namespace[name] for name in ("s", "bg", "gg", "v"))
    # the numbers in the block's comments
    assert s.attrs["n_transactions_after_observation_end"] > 0  # the later rows: excluded
    np.testing.assert_allclose(
        bg.params_[["r", "alpha", "a", "b"]], [0.243, 4.414, 0.793, 2.426], atol=2e-3
    )
    np.testing.assert_allclose(gg.params_[["p", "q", "v"]], [6.25, 3.74, 15.44], rtol=2e-3)
    assert len(v) == len(s) == 2357
    assert (v["clv_lower"] <= v["clv_upper"]).all()


def test_batch_scoring_runs_verbatim_on_transactions_with_later_dates_and_free_orders(tmp_path):
    blocks = code_blocks(section("Batch scoring from the command line"), "bash")
    assert blocks, "the Batch scoring section has no bash block"
    transactions_file(tmp_path)
    command = clvmodels_command()
    env = {k: v for k, v in os.environ.items() if k != "CLVMODELS_CONFIG"}
    env["PATH"] = f"{command.parent}{os.pathsep}{env.get('PATH', '')}"
    for block in blocks:
        assert "clvmodels " in block
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"{block}\n--- stderr:\n{result.stderr}"
        assert "Traceback" not in result.stderr
    # the steps did what the README says
    rfm = json.loads((tmp_path / "summary.parquet.manifest.json").read_text())
    assert rfm["summary"]["n_transactions_after_observation_end"] == 1959 + 3
    assert rfm["summary"]["n_customers"] == 2357
    fit = json.loads((tmp_path / "models" / "cdnow" / "manifest.json").read_text())
    assert fit["spend_fit"]["n_left_out"] == 1  # customer 3: a free repeat purchase
    assert fit["fit_diagnostics"]["purchase"]["converged"] is True
    values = pd.read_parquet(tmp_path / "clv.parquet")
    assert len(values) == 2357 and values["clv_mean"].notna().all()
    assert json.loads((tmp_path / "clv.parquet.manifest.json").read_text())["settings"][
        "margin"
    ] == pytest.approx(0.3)


@pytest.mark.filterwarnings("ignore:The 'mode.chained_assignment' option")
def test_the_lifetimes_counts_in_the_readme():
    """The README's lifetimes section: ``freq="W"`` counts purchase weeks, ``rfm_summary``
    purchase days; ``freq="D", freq_multiplier=7`` counts like ``rfm_summary``."""
    from lifetimes.utils import summary_data_from_transaction_data

    text = section("Quick start")
    tx = clv.datasets.load_cdnow_transactions()
    tx = tx[tx["date"] <= "1997-09-30"]
    ours = clv.rfm_summary(tx, "customer_id", "date", "amount", time_unit="W",
                           observation_end="1997-09-30")  # fmt: skip
    weeks = summary_data_from_transaction_data(
        tx, "customer_id", "date", monetary_value_col="amount", freq="W",
        observation_period_end="1997-09-30",
    )  # fmt: skip
    days = summary_data_from_transaction_data(
        tx, "customer_id", "date", monetary_value_col="amount", freq="D", freq_multiplier=7,
        observation_period_end="1997-09-30",
    )  # fmt: skip
    n_weeks, n_ours = int(weeks["frequency"].sum()), int(ours["frequency"].sum())
    assert f"{n_weeks:,} repeat purchases with `lifetimes` and {n_ours:,} with" in text
    np.testing.assert_array_equal(days["frequency"], ours["frequency"])
    np.testing.assert_allclose(days["T"], ours["T"], rtol=1e-12)
