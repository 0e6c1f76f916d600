"""The walkthrough notebook runs as committed (headless); the example scripts run when the
site builds (tests/test_docs.py)."""

import re
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.docs
def test_walkthrough_notebook_executes():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(EXAMPLES / "walkthrough.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    text = "\n".join(output.get("text", "") for cell in notebook.cells
                     if cell.cell_type == "code" for output in cell.get("outputs", []))
    dense = float(re.search(r"dense test accuracy ([0-9.]+)", text).group(1))
    assert dense > 0.85
    assert "meet-irreducible neurons:" in text
    images = [o for cell in notebook.cells for o in cell.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) == 4  # sparsity curves, connectivity, Hasse diagram, embedding
