"""A conversion that runs out of disk space fails cleanly: nothing half-written, others kept.

The store lives on a real, tiny tmpfs mounted for the test (root, as on CI machines).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from trees import write_tree

import sensorium_data as sd
from sensorium_data.cli import main
from sensorium_data.store.verify import verify


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Factory: ``tmpfs("2m")`` mounts a tmpfs of that size (again: resizes it) and returns it."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    mounted = False

    def mount(size: str) -> Path:
        nonlocal mounted
        opts = f"remount,size={size}" if mounted else f"size={size}"
        cmd = ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
        mounted = True
        return mnt

    try:
        yield mount
    finally:
        if mounted:
            subprocess.run(["umount", str(mnt)], check=True)


@pytest.fixture
def tiny_disk(tmpfs: Callable[[str], Path]) -> Path:
    return tmpfs("2m")


def used_pages(mnt: Path) -> int:
    st = os.statvfs(mnt)
    return st.f_blocks - st.f_bfree


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


def test_full_disk_at_the_final_metadata_write_fails_and_the_rerun_completes(
    tmp_path: Path, tmpfs: Callable[[str], Path], capsys
) -> None:
    """The disk fills exactly at the root's consolidated metadata, the conversion's last write.

    It used to exit 0 with a mouse that opening called unfinished ("run the same command
    again"), while the rerun said "pass --overwrite".
    """
    src = write_tree(tmp_path / "src", "static", n_trials=24, n_neurons=3)
    disk = tmpfs("16m")
    store = disk / "s.zarr"
    args = ["convert", str(src), "-o", str(store), "--no-progress"]
    assert main(args) == 0
    final = used_pages(disk)  # pages of the finished store
    root_pages = -(-(store / "zarr.json").stat().st_size // 4096)
    shutil.rmtree(store)
    # the root's new metadata is written beside its previous version (about the same size) and
    # renamed over it: one page short of that peak, every other write fits, the last does not
    tmpfs(f"{(final + root_pages - 1) * 4}k")
    capsys.readouterr()
    assert main(args) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert not store.exists()  # the store was new: nothing of it is left
    tmpfs(f"{(final + root_pages + 64) * 4}k")
    assert main(args) == 0
    assert verify(store, [src]) == []
