"""The notebook committed with its outputs, so that it reads on a code host without running:
``notebooks/explore_results.ipynb`` re-executed in place from a results folder
(``python -m resdeg.report notebook``; ``make report`` runs it after the figures and tables,
so the notebook never shows older runs than results/figures)."""

from __future__ import annotations

import os
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "explore_results.ipynb"


def execute_in_place(results_dir: Path, notebook: Path = NOTEBOOK, timeout_s: int = 1200) -> Path:
    """Run every cell of ``notebook`` on ``results_dir`` (its kernel reads RESDEG_RESULTS) and
    write it back with the new outputs. A cell that fails raises and the file is not touched."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:  # no execution times: the same results give the same file (no diff to commit)
        cell.metadata.pop("execution", None)
    previous = os.environ.get("RESDEG_RESULTS")
    # the kernel inherits this environment and runs in the notebook's folder; a relative path
    # keeps this machine's folders out of the committed outputs
    os.environ["RESDEG_RESULTS"] = os.path.relpath(Path(results_dir).absolute(), notebook.parent)
    try:
        NotebookClient(
            nb,
            timeout=timeout_s,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": str(notebook.parent)}},
        ).execute()
    finally:
        if previous is None:
            del os.environ["RESDEG_RESULTS"]
        else:
            os.environ["RESDEG_RESULTS"] = previous
    nbformat.write(nb, notebook)
    return notebook
