"""``sensorium-data export``: write a mouse of a store back as the official file tree.

The tree is written under ``DEST/<source name>/`` through a temporary ``.partial`` folder that
is renamed at the end, so an interrupted export never leaves a tree that looks whole. Every
array comes back under its original name and dtype; the result feeds the official starter kits.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import Any

import zarr

from ..filetree.npyio import save_npy
from .access import open_root, read_mice, resolve_mouse
from .layout import restore_values
from .schema import ATTRS_KEY

__all__ = ["export", "iter_blocks"]


def iter_blocks(array: zarr.Array, step: int | None = None) -> Any:
    """``(start, stop, values)`` over the first axis, one shard (or chunk) at a time."""
    step = step or (array.shards or array.chunks)[0]
    for start in range(0, array.shape[0], step):
        stop = min(start + step, array.shape[0])
        yield start, stop, array[start:stop]


def export(
    store: Any,
    mouse: str | None,
    dest: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    progress: bool = False,
) -> Path:
    """Write ``mouse`` of ``store`` as an official file tree in the local folder ``dest``.

    Returns the path of the tree folder (``dest/<source name>``). Refuses to replace an
    existing folder.
    """
    root, _ = open_root(store, storage_options)
    mouse = resolve_mouse(read_mice(root, store), mouse, store)
    group = root[mouse]
    meta = dict(group.attrs)[ATTRS_KEY]
    final = Path(dest) / meta["source_name"]
    if final.exists():
        raise FileExistsError(f"{final}: already exists; choose another destination or remove it")
    tmp = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_tree(group, meta, tmp, progress)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _write_tree(group: zarr.Group, meta: dict[str, Any], out: Path, progress: bool) -> None:
    from tqdm.auto import tqdm

    variables = meta["variables"]
    data = [n for n, info in variables.items() if info["source"].startswith("data/")]
    with tqdm(total=len(data) * meta["n_trials"], unit="file", disable=not progress) as bar:
        for name in data:
            folder = out / variables[name]["source"]
            folder.mkdir(parents=True)
            for start, _, block in iter_blocks(group[name]):
                for j, trial in enumerate(block):
                    save_npy(folder / f"{start + j}.npy", trial)
                bar.update(len(block))
    for name, info in variables.items():
        if info["source"].startswith("meta/"):
            path = out / (info["source"] + ".npy")
            path.parent.mkdir(parents=True, exist_ok=True)
            save_npy(path, restore_values(group[name][...], info))
    for key, subs in meta.get("statistics", {}).items():
        for sub, stats in subs.items():
            folder = out / "meta" / "statistics" / key / sub
            folder.mkdir(parents=True, exist_ok=True)
            for stat, info in stats.items():
                values = group[f"statistics/{key}/{sub}/{stat}"][...]
                save_npy(folder / f"{stat}.npy", restore_values(values, info))
    for rel, b64 in meta.get("extra_files", {}).items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(b64))
    for key in ("meta/trials", "meta/neurons"):
        (out / key).mkdir(parents=True, exist_ok=True)
