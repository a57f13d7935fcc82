"""An interrupted conversion never leaves a store that opens as finished; rerunning completes it.

The conversion runs in a real subprocess reading its source from a slow HTTP server, and is
killed (SIGKILL or SIGINT) while it writes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trees import write_tree

import sensorium_data as sd
from sensorium_data.info import describe_store
from sensorium_data.verify import verify

# The child starts as a terminal would start it: SIGINT handled (KeyboardInterrupt), nothing
# blocked. A test run started in the background of a non-interactive shell (``cmd &``) inherits
# SIGINT ignored, and Python then leaves it ignored in every child, so Ctrl-C would do nothing.
_AS_FROM_A_TERMINAL = (
    "import runpy, signal\n"
    "signal.pthread_sigmask(signal.SIG_SETMASK, ())\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "runpy.run_module('sensorium_data.cli', run_name='__main__', alter_sys=True)\n"
)


def start_convert(src_url: str, store: Path, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-c",
        _AS_FROM_A_TERMINAL,
        "convert",
        src_url,
        "-o",
        str(store),
        "--no-progress",
        "--scheduler",
        "synchronous",
        "--trials-per-chunk",
        "4",
        "--trials-per-shard",
        "4",
        *extra,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_first_shard(proc: subprocess.Popen, store: Path, mouse: str) -> None:
    """Wait until the (new, incomplete) group of ``mouse`` holds a written shard."""
    deadline = time.monotonic() + 60
    shard_dir = store / mouse / "responses" / "c"
    meta = store / mouse / "zarr.json"
    while time.monotonic() < deadline:
        started = meta.exists() and '"complete": false' in meta.read_text()
        if started and shard_dir.exists() and any(shard_dir.iterdir()):
            return
        if proc.poll() is not None:
            raise AssertionError(f"convert ended before it was interrupted: {proc.communicate()}")
        time.sleep(0.02)
    proc.kill()
    proc.communicate()
    raise AssertionError("convert wrote no shard within 60 s")


@pytest.fixture
def slow_source(tmp_path: Path, http_server):
    src = write_tree(tmp_path / "src", "static", n_trials=48)
    srv = http_server(src.parent, latency=0.03)
    return src, srv.url_for(src.name)


def test_kill_9_leaves_an_incomplete_mouse_that_rerunning_redoes(tmp_path, slow_source) -> None:
    src, url = slow_source
    store = tmp_path / "s.zarr"
    proc = start_convert(url, store)
    wait_for_first_shard(proc, store, "11111-1-1")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert sd.list_mice(store)["11111-1-1"]["complete"] is False
    with pytest.raises(sd.IncompleteStoreError, match="did not finish; run the same"):
        sd.open_mouse(store)
    with pytest.raises(sd.IncompleteStoreError):
        sd.open_store(store)
    assert "INCOMPLETE" in describe_store(store)
    again = start_convert(url, store)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert verify(store, [src]) == []


def test_kill_9_during_overwrite_does_not_leave_the_old_mouse_looking_finished(
    tmp_path, slow_source
) -> None:
    src, url = slow_source
    store = tmp_path / "s.zarr"
    sd.convert([src], store, progress=False)
    proc = start_convert(url, store, "--overwrite")
    wait_for_first_shard(proc, store, "11111-1-1")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    with pytest.raises(sd.IncompleteStoreError):
        sd.open_mouse(store)


def test_ctrl_c_cleans_up(tmp_path, slow_source) -> None:
    src, url = slow_source
    store = tmp_path / "s.zarr"
    proc = start_convert(url, store)
    wait_for_first_shard(proc, store, "11111-1-1")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err, (proc.returncode, err[-2000:])
    assert not store.exists()  # the store was new: nothing of it is left
