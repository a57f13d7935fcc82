"""Every notebook in ``notebooks/`` runs top to bottom in a real kernel, and is committed clean.

- Executed: each notebook runs with ``nbclient`` in a fresh ``python3`` kernel, with the small
  sizes of its metadata ``sensorium.test_parameters`` injected after its ``parameters`` cell
  (``notebooks/execute.py``); a cell that raises fails the test. ``06_cloud_in_five_steps`` runs
  against the session's moto S3 server holding a converted store.
- Committed: every code cell has been executed in order, no output is an error, the notebook
  shows figures, is at most 2 MB, and has exactly one ``parameters`` cell.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
MAX_BYTES = 2 * 1024 * 1024
CLOUD = "06_cloud_in_five_steps.ipynb"


def _runner() -> Any:
    spec = importlib.util.spec_from_file_location("notebook_execute", NOTEBOOKS / "execute.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUNNER = _runner()
PATHS = RUNNER.notebooks()
IDS = [p.name for p in PATHS]


def _read(path: pathlib.Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _test_parameters(nb: dict[str, Any]) -> dict[str, Any]:
    return dict(nb["metadata"].get("sensorium", {}).get("test_parameters", {}))


def _errors(nb: Any) -> list[str]:
    found = []
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                found.append(f"cell {i}: {out['ename']}: {out['evalue']}")
    return found


def _figures(nb: Any) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for cell in nb["cells"]
        for out in cell.get("outputs", [])
    )


def test_the_walkthroughs_are_there() -> None:
    names = {p.name for p in PATHS}
    expected = {
        "01_inspect_data_2022.ipynb",
        "02_inspect_data_2023.ipynb",
        "03_train_baselines.ipynb",
        "04_evaluate_and_inspect.ipynb",
        "05_submission.ipynb",
        CLOUD,
        "07_video_models_2023.ipynb",
    }
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize("path", PATHS, ids=IDS)
class TestCommitted:
    def test_executed_in_order_without_errors(self, path: pathlib.Path) -> None:
        nb = _read(path)
        counts = [c["execution_count"] for c in nb["cells"] if c["cell_type"] == "code"]
        assert counts and None not in counts, "commit the notebook with its outputs"
        assert counts == list(range(1, len(counts) + 1)), "run top to bottom in one kernel"
        assert _errors(nb) == []

    def test_small_and_shows_figures(self, path: pathlib.Path) -> None:
        assert path.stat().st_size <= MAX_BYTES
        assert _figures(_read(path)) >= 1

    def test_one_parameters_cell_and_small_test_sizes(self, path: pathlib.Path) -> None:
        nb = _read(path)
        tagged = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
        assert len(tagged) == 1
        assert tagged[0]["cell_type"] == "code"
        names = set(_test_parameters(nb))
        assert names, "metadata.sensorium.test_parameters: the sizes the tests run it at"
        for name in names:  # every overridden name is a parameter of the notebook
            assert f"{name} =" in "".join(tagged[0]["source"]), name


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in PATHS if p.name != CLOUD], ids=lambda p: p.name)
def test_runs_top_to_bottom(path: pathlib.Path, tmp_path: pathlib.Path) -> None:
    parameters = {**_test_parameters(_read(path)), "WORKDIR": str(tmp_path)}
    nb = RUNNER.run(path, parameters=parameters, timeout=300)
    assert _errors(nb) == []
    assert _figures(nb) >= 1


@pytest.mark.slow
def test_cloud_notebook_reads_from_s3(
    s3_server: Any, s3_bucket: str, tmp_path: pathlib.Path
) -> None:
    """The five steps against a moto S3 server on 127.0.0.1 that holds a converted store."""
    import sensorium_data as sd

    try:
        from servers import upload_dir
    except ImportError:  # pragma: no cover
        from tests.servers import upload_dir

    path = NOTEBOOKS / CLOUD
    parameters = _test_parameters(_read(path))
    local = sd.example_store(tmp_path / "local", kind="static", n_mice=2, n_trials=240)
    url = f"s3://{s3_bucket}/sensorium.zarr"
    upload_dir(local, url, s3_server.storage_options)
    parameters.update(
        STORE_URL=url,
        STORAGE_OPTIONS=dict(s3_server.storage_options),
        WORKDIR=str(tmp_path / "work"),
    )
    nb = RUNNER.run(path, parameters=parameters, timeout=300)
    assert _errors(nb) == []
    text = "".join(
        "".join(out.get("text", "")) for cell in nb["cells"] for out in cell.get("outputs", [])
    )
    assert "submission_file_live_test.csv" in text
    assert not (tmp_path / "work" / "sensorium.zarr").exists()  # nothing downloaded
