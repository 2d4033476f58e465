"""The documentation site builds with warnings as errors (``mkdocs build --strict``).

The build renders the API pages from the docstrings (mkdocstrings), the command-line reference
from ``clvmodels --help`` and the benchmark pages from ``benchmarks/``, so a docstring that
griffe cannot parse, a broken link or a CLI whose help fails breaks this test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("mkdocs", reason="the docs extra is not installed")
pytest.importorskip("mkdocstrings", reason="the docs extra is not installed")
pytest.importorskip("material", reason="the docs extra is not installed")


def test_mkdocs_build_strict(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(site),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    for page in [
        "index.html",
        "getting-started/index.html",
        "guide/value/index.html",
        "models/bg_nbd/index.html",
        "reference/cli/index.html",
        "benchmarks/results/index.html",
        "architecture/index.html",
    ]:
        assert (site / page).is_file(), page
    # generated content is there: a family's equations, every CLI command, the benchmark plots
    assert "FHL 2005" in (site / "models/bg_nbd/index.html").read_text(encoding="utf-8")
    cli = (site / "reference/cli/index.html").read_text(encoding="utf-8")
    for command in ["rfm", "fit", "score", "evaluate", "report"]:
        assert f"clvmodels {command} [OPTIONS]" in cli, command
    assert any((site / "benchmarks/plots").glob("*.png"))
