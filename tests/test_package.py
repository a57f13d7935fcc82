"""The public API and its import cost."""

from __future__ import annotations

import subprocess
import sys

import sensorium_data as sd


def test_public_api_is_exported() -> None:
    for name in sd.__all__:
        assert getattr(sd, name) is not None
    assert callable(sd.convert) and callable(sd.open_mouse) and callable(sd.synthesize)
    assert sd.__version__ != "0.0.0+unknown"


def test_import_does_not_pull_torch() -> None:
    code = "import sys, sensorium_data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
