"""The tree stays the tree, and what a store holds still fits its data when it is opened.

Links out of a folder tree, zip members that inflate past the limit or cannot be read, and
statistics that do not fit the trials each get a one-line error naming the path; nothing is
read from outside the tree, and no store is left behind.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr
from test_bad_input import assert_nothing_finished
from trees import write_tree, zip_tree

import sensorium_data as sd
from sensorium_data.errors import InvalidFileTreeError, SchemaError
from sensorium_data.filetree.sources import MAX_MEMBER_BYTES
from sensorium_data.store.access import quiet


def _outside(tmp_path: Path) -> Path:
    """A folder beside the tree holding what links point to: a secret and a whole tree."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text("not for the store\n")
    write_tree(out, name="elsewhere")
    return out


@pytest.mark.parametrize(
    "link, target",
    [
        ("README.txt", "secret.txt"),
        ("data/responses", "elsewhere/data/responses"),
        ("meta/trials", "elsewhere/meta/trials"),
        ("meta", "elsewhere/meta"),
        ("data", "elsewhere/data"),
    ],
    ids=["extra-file", "trial-folder", "meta-folder", "meta", "data"],
)
def test_links_out_of_the_tree_are_refused(tmp_path: Path, link: str, target: str) -> None:
    root = write_tree(tmp_path / "src")
    outside = _outside(tmp_path)
    path = root / link
    if path.is_dir():
        os.rename(path, tmp_path / "moved")  # the tree's own copy is gone: only the link is left
    path.symlink_to(outside / target)
    store = tmp_path / "out.zarr"
    with pytest.raises(InvalidFileTreeError) as info:
        sd.convert([root], store, progress=False)
    message = str(info.value)
    assert message.startswith(f"{root}/{link}: a symbolic link to {outside / target}, outside")
    assert "\n" not in message
    assert not store.exists()


def test_links_inside_the_tree_are_followed(tmp_path: Path) -> None:
    root = write_tree(tmp_path)
    (root / "docs").mkdir()
    (root / "docs" / "README.txt").write_text("read me\n")
    (root / "README.txt").symlink_to("docs/README.txt")
    os.rename(root / "data" / "behavior", root / "behavior_files")
    (root / "data" / "behavior").symlink_to("../behavior_files")
    store = tmp_path / "out.zarr"
    sd.convert([root], store, progress=False)
    assert sd.verify(store, [root]) == []
    extra = sd.list_mice(store)["11111-1-1"]["extra_files"]
    assert base64.b64decode(extra["README.txt"]) == b"read me\n"


def test_link_loops_broken_links_and_fifos_are_refused(tmp_path: Path) -> None:
    root = write_tree(tmp_path)
    (root / "extra").mkdir()
    (root / "extra" / "loop").symlink_to("..")
    with pytest.raises(InvalidFileTreeError, match=r"extra/loop: a symbolic link to .*\(a loop\)"):
        sd.open_tree(root)
    (root / "extra" / "loop").unlink()
    (root / "extra" / "gone").symlink_to("nothing-here")
    with pytest.raises(InvalidFileTreeError, match="extra/gone: a broken symbolic link"):
        sd.open_tree(root)
    (root / "extra" / "gone").unlink()
    os.mkfifo(root / "extra" / "pipe")  # reading it would block for ever
    with pytest.raises(InvalidFileTreeError, match="extra/pipe: not a file; a tree holds only"):
        sd.open_tree(root)


def _bomb(path: Path, top: str, member: str, size: int) -> None:
    """Append ``member`` of ``size`` zero bytes (a few hundred KB deflated) to the zip."""
    zeros = bytes(1 << 20)
    with (
        zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as zf,
        zf.open(f"{top}/{member}", "w", force_zip64=True) as f,
    ):
        for _ in range(size >> 20):
            f.write(zeros)


@pytest.mark.parametrize(
    "members, message",
    [
        (
            {"README.txt": MAX_MEMBER_BYTES + 2**20},
            r"!{top}/README.txt: inflates to 269,484,032 bytes \([\d,]+ compressed\), over the 256 "
            r"MiB limit of a zip member",
        ),
        (
            {f"extra/{k}.bin": 100 * 2**20 for k in range(3)},
            r": its \d+ files inflate to 31\d,\d+,\d+ bytes from [\d,]+ compressed, over 100 "
            r"times; refusing it as a zip bomb",
        ),
    ],
    ids=["one-member", "many-members"],
)
def test_zip_bombs_are_refused_unread(
    tmp_path: Path, members: dict[str, int], message: str
) -> None:
    import resource

    root = write_tree(tmp_path)
    src = zip_tree(root)
    for name, size in members.items():
        _bomb(src, root.name, name, size)
    assert src.stat().st_size < 2 * 2**20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InvalidFileTreeError, match=message.format(top=root.name)) as info:
        sd.convert([src], tmp_path / "out.zarr", progress=False)
    assert str(info.value).startswith(str(src))
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB
    assert grown < 100 * 1024  # never inflated
    assert not (tmp_path / "out.zarr").exists()


def test_zip_links_and_unreadable_members_are_named(tmp_path: Path) -> None:
    root = write_tree(tmp_path)
    src = zip_tree(root)
    link = zipfile.ZipInfo(f"{root.name}/README.txt")
    link.create_system, link.external_attr = 3, (0o120777 << 16)
    with zipfile.ZipFile(src, "a") as zf:
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(InvalidFileTreeError, match=r"README.txt: a symbolic link; links inside"):
        sd.open_tree(src)

    src = zip_tree(root)  # again, now with one trial stored with a wrong checksum
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo(f"{root.name}/data/behavior/7.npy")
    raw = bytearray(src.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + info.compress_size - 1] ^= 0xFF  # last data byte of a stored member
    src.write_bytes(bytes(raw))
    store = tmp_path / "out.zarr"
    with pytest.raises(InvalidFileTreeError, match=r"behavior/7.npy: cannot read this zip member"):
        sd.convert([src], store, progress=False)
    assert_nothing_finished(store)


def test_large_extra_files_are_not_read(tmp_path: Path) -> None:
    """Extra files over the 1 MiB kept in the attributes are left unread (here: unreadable)."""
    root = write_tree(tmp_path)
    (root / "notes.txt").write_text("kept\n")
    src = zip_tree(root)
    with zipfile.ZipFile(src, "a", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{root.name}/zz_large.bin", bytes(2 << 20))
        info = zf.getinfo(f"{root.name}/zz_large.bin")
    raw = bytearray(src.read_bytes())
    raw[info.header_offset + 30 + len(info.filename.encode()) + 5] ^= 0xFF  # bad CRC if read
    src.write_bytes(bytes(raw))
    store = tmp_path / "out.zarr"
    sd.convert([src], store, progress=False)
    extra = sd.list_mice(store)["11111-1-1"]["extra_files"]
    assert sorted(extra) == ["config.json", "notes.txt"]


def test_nested_config_is_one_line_from_the_command(tmp_path: Path) -> None:
    root = write_tree(tmp_path)
    (root / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    env = {**os.environ, "PYTHONPATH": str(Path(sd.__file__).parents[1])}
    cmd = [sys.executable, "-m", "sensorium_data.cli", "convert", str(root), "-o"]
    done = subprocess.run(
        [*cmd, str(tmp_path / "o.zarr")], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 1
    assert done.stderr == (
        f"sensorium-data convert: error: {root}/config.json: JSON nested more than 32 levels "
        'deep; the official config.json is {"links": {...}}\n'
    )


def _replace(store: Path, path: str, value: np.ndarray | None) -> None:
    """Overwrite (``None``: delete) array ``path`` of a finished store, as an older toolkit or
    an edit could."""
    group = zarr.open_group(str(store), mode="r+")
    attrs = dict(group[path].attrs)
    del group[path]
    if value is not None:
        dims = tuple(f"d{k}" for k in range(value.ndim))
        group.create_array(path, data=value, dimension_names=dims, attributes=attrs)
    with quiet():
        zarr.consolidate_metadata(str(store))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    out = tmp_path / "s.zarr"
    sd.convert([write_tree(tmp_path, n_neurons=16)], out, progress=False)
    return out


def test_statistics_that_do_not_fit_are_refused_when_opening(store: Path) -> None:
    _replace(store, "11111-1-1/statistics/responses/all/std", np.ones(1))
    message = (
        r"mouse '11111-1-1': statistics/responses/all/std has shape \(1,\) but statistics of "
        r"responses need the shape \(16,\) of one trial of data/responses; the normaliser cannot"
    )
    with pytest.raises(SchemaError, match=message):
        sd.open_statistics(store)
    with pytest.raises(SchemaError, match=message):
        sd.make_loaders(store, batch_size=8)
    loaders = sd.make_loaders(store, batch_size=8, normalize=False)  # not needed: not checked
    assert next(iter(loaders["train"]["11111-1-1"]))["responses"].shape == (8, 16)


def test_store_without_tiers_is_refused_by_the_loaders(store: Path) -> None:
    _replace(store, "11111-1-1/tiers", None)
    with pytest.raises(SchemaError, match=r"mouse '11111-1-1': no 'tiers' coordinate"):
        sd.make_loaders(store, batch_size=8)
