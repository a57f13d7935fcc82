"""A conversion that runs out of disk space fails cleanly: nothing half-written, others kept.

The store lives on a real, tiny tmpfs mounted for the test (root, as on CI machines).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from trees import write_tree

import sensorium_data as sd
from sensorium_data.cli import main
from sensorium_data.verify import verify


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_full_disk_leaves_no_store_and_a_clear_error(
    tmp_path: Path, tiny_disk: Path, capsys
) -> None:
    src = write_tree(tmp_path / "src", "dynamic", n_trials=60, n_neurons=100, n_frames=80)
    store = tiny_disk / "s.zarr"
    assert main(["convert", str(src), "-o", str(store), "--no-progress"]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert not store.exists()


def test_full_disk_keeps_the_mice_already_there(tmp_path: Path, tiny_disk: Path) -> None:
    small = write_tree(tmp_path / "a", "static", n_trials=24, n_neurons=3)
    big = write_tree(tmp_path / "b", "dynamic", n_trials=60, n_neurons=100, n_frames=80)
    store = tiny_disk / "s.zarr"
    sd.convert([small], store, progress=False)
    with pytest.raises(OSError, match="No space left"):
        sd.convert([big], store, progress=False)
    assert list(sd.list_mice(store)) == ["11111-1-1"]
    assert verify(store, [small]) == []
    assert not (store / "22222-2-2").exists()
