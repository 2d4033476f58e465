"""Run every notebook in notebooks/ top to bottom with small settings; any cell error fails.

The notebooks read ``CLV_NOTEBOOK_QUICK=1`` in their ``parameters`` cell (fewer draws, smaller
data). They execute in a fresh kernel whose working directory is ``notebooks/`` and whose
``PYTHONPATH`` starts with the repository root, so they test this checkout.
"""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"01_quickstart", "02_hierarchical", "03_model_comparison"} <= names


def test_notebooks_have_a_parameters_cell_and_committed_outputs():
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        tags = [cell.metadata.get("tags", []) for cell in book.cells]
        assert any("parameters" in t for t in tags), f"{path.name}: no cell tagged 'parameters'"
        code = [cell for cell in book.cells if cell.cell_type == "code"]
        with_output = [cell for cell in code if cell.get("outputs")]
        assert len(with_output) >= len(code) // 2, f"{path.name} is committed without outputs"
        errors = [
            out for cell in code for out in cell.get("outputs", []) if out.output_type == "error"
        ]
        assert not errors, f"{path.name} is committed with an error output"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    monkeypatch.setenv("CLV_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        book,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError naming the cell on any error
    errors = [
        out
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.output_type == "error"
    ]
    assert not errors
