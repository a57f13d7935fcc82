"""Run the notebooks top to bottom, as the tests do, and optionally save them with their outputs.

    python notebooks/execute.py                 # run every notebook, save it with its outputs
    python notebooks/execute.py 01_inspect_data_2022.ipynb --no-save
    python notebooks/execute.py --set N_TRIALS=400 03_train_baselines.ipynb

Parameters: each notebook has one code cell tagged ``parameters`` (the data location and sizes,
as papermill uses them). Values given here (``--set NAME=VALUE``, VALUE a Python literal) go into a
cell inserted right after it, tagged ``injected-parameters``; a saved notebook never keeps that
cell. The tests (``tests/test_notebooks.py``) run every notebook this way at small sizes.
"""

from __future__ import annotations

import argparse
import ast
import copy
import pathlib
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
INJECTED = "injected-parameters"


def notebooks() -> list[pathlib.Path]:
    """The notebooks of this folder, in their numbered order."""
    return sorted(HERE.glob("[0-9][0-9]_*.ipynb"))


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def inject(nb: Any, parameters: Mapping[str, Any]) -> Any:
    """A copy of ``nb`` with ``parameters`` assigned in a cell after its ``parameters`` cell."""
    import nbformat

    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if INJECTED not in _tags(c)]
    if not parameters:
        return nb
    where = [i for i, c in enumerate(nb.cells) if "parameters" in _tags(c)]
    if len(where) != 1:
        raise ValueError(f"expected one cell tagged 'parameters', found {len(where)}")
    source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED]})
    nb.cells.insert(where[0] + 1, cell)
    return nb


def _clean(nb: Any) -> Any:
    """Drop the run's timestamps and the injected cell, so a saved notebook diffs cleanly."""
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if INJECTED not in _tags(c)]
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)
    nb.metadata.pop("widgets", None)
    return nb


def run(
    path: str | pathlib.Path,
    *,
    parameters: Mapping[str, Any] | None = None,
    timeout: int = 600,
    save: bool = False,
) -> Any:
    """Execute a notebook in its own folder with a fresh ``python3`` kernel; returns it executed.

    A cell that raises stops the run with ``nbclient``'s ``CellExecutionError`` (the cell and its
    traceback). ``save=True`` writes the executed notebook back over ``path``, without the
    injected parameters.
    """
    import nbformat
    from nbclient import NotebookClient

    path = pathlib.Path(path)
    nb = inject(nbformat.read(path, as_version=4), parameters or {})
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        store_widget_state=False,
    )
    client.execute()
    if save:
        if parameters:
            raise ValueError("save=True runs the notebook with its own parameters only")
        nbformat.write(_clean(nb), path)
    return nb


def _literal(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise argparse.ArgumentTypeError(f"{name}: {value!r} is not a Python literal") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="notebook files (default: all of them)")
    parser.add_argument("--set", type=_literal, action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--no-save", action="store_true", help="run only, do not save")
    args = parser.parse_args(argv)
    paths = [HERE / pathlib.Path(n).name for n in args.names] or notebooks()
    for path in paths:
        start = time.perf_counter()
        run(path, parameters=dict(args.set), save=not args.no_save and not args.set)
        size = path.stat().st_size / 1e6
        print(f"{path.name}: ran in {time.perf_counter() - start:.1f} s, {size:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
