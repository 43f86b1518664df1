"""The quickstart notebook runs top to bottom on the shipped data without an error."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.slow
def test_quickstart_notebook_executes():
    # The kernel is the venv's own python3 (ipykernel ships its kernel spec into the venv).
    os.environ.setdefault("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOKS / "quickstart.ipynb", as_version=4)
    for cell in notebook.cells:  # run what is committed, not its old outputs
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError on any error, naming the cell
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the Pareto frontier and the law figure


def test_notebook_is_built_from_its_script():
    """The committed notebook's cells are exactly what build_quickstart.py writes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_quickstart", NOTEBOOKS / "build_quickstart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = nbformat.read(NOTEBOOKS / "quickstart.ipynb", as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in module.build().cells]
