"""An interrupted conversion never leaves a store that opens as finished; rerunning completes it.

The conversion runs in a real subprocess reading its source from a slow HTTP server, and is
killed (SIGKILL or SIGINT) while it writes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from trees import write_tree

import sensorium_data as sd
from sensorium_data.cli import main
from sensorium_data.store.info import describe_store
from sensorium_data.store.verify import verify

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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_ctrl_c_cleans_up(tmp_path, slow_source) -> None:
    src, url = slow_source
    store = tmp_path / "s.zarr"
    proc = start_convert(url, store)
    wait_for_first_shard(proc, store, "11111-1-1")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err, (proc.returncode, err[-2000:])
    assert not store.exists()  # the store was new: nothing of it is left


def partial_files(store: Path) -> list[Path]:
    return sorted(store.rglob("*.partial"))


def start_terminal_convert(src: Path, store: Path) -> subprocess.Popen:
    """The installed ``sensorium-data convert`` as a terminal starts it: SIGINT at its default
    (Python then installs its handler), nothing blocked; ``exec`` keeps both."""
    exe = shutil.which("sensorium-data")
    assert exe, "the console script is installed by pip install -e ."
    args = [exe, "convert", str(src), "-o", str(store), "--no-progress"]
    boot = (
        "import os, signal, sys\n"
        "signal.pthread_sigmask(signal.SIG_SETMASK, ())\n"
        "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
        "os.execv(sys.argv[1], sys.argv[1:])\n"
    )
    cmd = [sys.executable, "-c", boot, *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_ctrl_c_during_the_layout_leaves_no_stray_group(tmp_path: Path) -> None:
    """Ctrl-C while the mouse's arrays are being created (many meta fields: a long layout).

    Zarr's IO thread finishes the request the main thread was waiting for; the clean-up used
    to race with it, and the request wrote the deleted group (and root) back without
    attributes; exiting with it pending printed asyncio warnings.
    """
    other = write_tree(tmp_path / "other", "dynamic", n_trials=8, n_frames=6)
    src = write_tree(tmp_path / "src", "static", n_trials=8, n_neurons=3)
    for k in range(60):
        np.save(src / "meta" / "trials" / f"extra_{k:02d}.npy", np.arange(8) * k)
    store = tmp_path / "s.zarr"
    sd.convert([other], store, progress=False)
    for attempt in range(3):
        proc = start_convert(str(src), store)
        meta = store / "11111-1-1" / "zarr.json"
        while not meta.exists():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.001)
        time.sleep(0.05 * attempt)  # the layout takes several tenths of a second
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert (proc.returncode, err) == (130, "sensorium-data convert: interrupted\n"), attempt
        assert list(sd.list_mice(store)) == ["22222-2-2"]
        assert not (store / "11111-1-1").exists() and partial_files(store) == []
        assert verify(store, [other]) == []
    again = start_convert(str(src), store)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert verify(store, [other, src]) == []


@pytest.mark.slow
def test_ctrl_c_during_the_layout_of_a_new_store_removes_it(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", "static", n_trials=8, n_neurons=3)
    for k in range(60):
        np.save(src / "meta" / "trials" / f"extra_{k:02d}.npy", np.arange(8) * k)
    store = tmp_path / "s.zarr"
    for attempt in range(3):
        proc = start_convert(str(src), store)
        while not (store / "11111-1-1" / "zarr.json").exists():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.001)
        time.sleep(0.05 * attempt)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert (proc.returncode, err) == (130, "sensorium-data convert: interrupted\n"), attempt
        assert not store.exists(), attempt  # no root written back bare, which refused the rerun
    again = start_convert(str(src), store)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert verify(store, [src]) == []


def test_killed_between_the_mouse_and_the_root_metadata_the_rerun_redoes_it(
    tmp_path: Path, capsys
) -> None:
    """The state ``kill -9`` (or a full disk) leaves between the last two metadata writes: the
    mouse's own zarr.json says complete, the root's consolidated metadata (what readers use)
    does not; and the root's temporary file of the interrupted write is left beside it."""
    src = write_tree(tmp_path / "src", "static", n_trials=8, n_neurons=3)
    store = tmp_path / "s.zarr"
    args = ["convert", str(src), "-o", str(store), "--no-progress"]
    assert main(args) == 0
    root_meta = json.loads((store / "zarr.json").read_text())
    mouse = root_meta["consolidated_metadata"]["metadata"]["11111-1-1"]
    mouse["attributes"]["sensorium"]["complete"] = False
    (store / "zarr.json").write_text(json.dumps(root_meta))
    stale = store / "zarr.0123456789abcdef0123456789abcdef.partial"
    stale.write_text("{")
    os.utime(stale, (time.time() - 5, time.time() - 5))
    assert json.loads((store / "11111-1-1" / "zarr.json").read_text())["attributes"]["sensorium"][
        "complete"
    ]
    with pytest.raises(sd.IncompleteStoreError, match="run the same `sensorium-data convert`"):
        sd.open_mouse(store)
    capsys.readouterr()
    assert main(args) == 0, capsys.readouterr().err  # was: "already holds ...; pass --overwrite"
    assert verify(store, [src]) == [] and partial_files(store) == []
    assert main(args) == 1  # finished now: the same command refuses to replace it
    assert "pass --overwrite" in capsys.readouterr().err


def test_ctrl_c_during_start_up_prints_one_line(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", "static", n_trials=8, n_neurons=3)
    store = tmp_path / "s.zarr"
    proc = start_terminal_convert(src, store)
    maps = Path(f"/proc/{proc.pid}/maps")
    while "_multiarray_umath" not in maps.read_text():  # numpy loaded: importing the package
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.001)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (130, "", "sensorium-data: interrupted\n")
    assert not store.exists()
