"""``sensorium-data verify``: prove that a store holds exactly what its source trees hold.

Every data value (NaN-aware), dtype, shape, meta array, statistic and index coordinate is
compared; the result is the list of differences, empty when the store equals its sources.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import zarr

from ..errors import SensoriumDataError
from ..filetree.tree import FileTree, open_tree
from .access import open_root, read_mice, resolve_mouse
from .convert import first_nan_frame
from .export import iter_blocks
from .images import rescale_images
from .layout import restore_values
from .schema import ATTRS_KEY

__all__ = ["verify"]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _describe(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"store has {a.dtype}{a.shape}, source has {b.dtype}{b.shape}"
    same = np.array([x == y or (x != x and y != y) for x, y in zip(a.flat, b.flat, strict=True)])
    diff = ~same.reshape(a.shape)
    where = tuple(int(i[0]) for i in np.nonzero(diff))
    return f"{int(diff.sum())} values differ, first at index {where}: {a[where]!r} != {b[where]!r}"


def verify(
    store: Any,
    sources: Sequence[Any],
    *,
    storage_options: dict[str, Any] | None = None,
    source_options: dict[str, Any] | None = None,
    max_differences: int = 20,
    progress: bool = False,
) -> list[str]:
    """Compare a store with its source trees; return the differences (empty: identical)."""
    root, _ = open_root(store, storage_options)
    mice = read_mice(root, store)
    problems: list[str] = []
    for src in [sources] if isinstance(sources, str) else sources:
        tree = src if isinstance(src, FileTree) else open_tree(src, source_options)
        try:
            mouse = resolve_mouse(mice, tree.data_key, store)
        except (SensoriumDataError, KeyError) as exc:  # missing or incomplete mouse
            problems.append(f"{tree.name}: {exc}")
            continue
        problems += _verify_mouse(root[mouse], tree, max_differences - len(problems), progress)
        if len(problems) >= max_differences:
            break
    return problems[:max_differences]


def _verify_mouse(group: zarr.Group, tree: FileTree, budget: int, progress: bool) -> list[str]:
    from tqdm.auto import tqdm

    meta = dict(group.attrs)[ATTRS_KEY]
    out: list[str] = []
    where = f"mouse {tree.data_key}"
    variables = meta["variables"]
    expected = {f"data/{k}" for k in tree.data_keys}
    expected |= {f"meta/trials/{k}" for k in tree.meta_trials}
    expected |= {f"meta/neurons/{k}" for k in tree.meta_neurons}
    stored = {info["source"]: name for name, info in variables.items()}
    for missing in sorted(expected - set(stored)):
        out.append(f"{where}: {missing} is in the source but not in the store")
    for extra in sorted(set(stored) - expected):
        out.append(f"{where}: {extra} is in the store but not in the source")
    if meta["n_trials"] != tree.n_trials:
        out.append(f"{where}: store has {meta['n_trials']} trials, source {tree.n_trials}")
        return out
    valid = None
    total = tree.n_trials * len(tree.data_keys)
    with tqdm(
        total=total, unit="trial", desc=f"verify {tree.data_key}", disable=not progress
    ) as bar:
        for key in tree.data_keys:
            if f"data/{key}" not in stored or len(out) >= budget:
                continue
            arr = group[stored[f"data/{key}"]]
            for start, stop, block in iter_blocks(arr):
                src = tree.read_trials(key, range(start, stop))
                if not _same(block, src):
                    out.append(
                        f"{where}: data/{key} trials {start}..{stop - 1}: " + _describe(block, src)
                    )
                    break
                if key == "images":
                    out += _verify_scaled(group, meta, src, start, where)
                if tree.kind == "dynamic" and "frame" in (arr.metadata.dimension_names or ()):
                    if valid is None:
                        valid = np.full(tree.n_trials, np.iinfo(np.int32).max, dtype=np.int32)
                    valid[start:stop] = np.minimum(valid[start:stop], first_nan_frame(src))
                bar.update(stop - start)
    if valid is not None and "valid_frames" in group:
        got = group["valid_frames"][...]
        if not np.array_equal(got, valid):
            out.append(f"{where}: coordinate 'valid_frames': " + _describe(got, valid))
    for field, arr in [
        *[(f"meta/trials/{k}", v) for k, v in tree.meta_trials.items()],
        *[(f"meta/neurons/{k}", v) for k, v in tree.meta_neurons.items()],
    ]:
        if field in stored:
            name = stored[field]
            got = restore_values(group[name][...], variables[name])
            if not _same_meta(got, arr):
                out.append(f"{where}: {field} (stored as {name!r}): " + _describe(got, arr))
    out += _verify_statistics(group, tree, meta, where)
    out += _verify_index(group, tree, where)
    return out


def _verify_scaled(
    group: zarr.Group, meta: dict[str, Any], images: np.ndarray, start: int, where: str
) -> list[str]:
    """The stored rescaled images of trials ``start..`` equal the kit's rescale of the source."""
    out = []
    for scale, path in meta.get("scaled", {}).items():
        got = group[path][start : start + len(images)]
        want = rescale_images(images, float(scale))
        if not _same(got, want):
            stop = start + len(images) - 1
            out.append(f"{where}: {path} trials {start}..{stop}: " + _describe(got, want))
    return out


def _same_meta(a: np.ndarray, b: np.ndarray) -> bool:
    if object in (a.dtype, b.dtype):
        return (
            a.shape == b.shape
            and a.dtype == b.dtype
            and all(
                type(x) is type(y) and (x == y or (x != x and y != y))
                for x, y in zip(a.flat, b.flat, strict=True)
            )
        )
    return _same(a, b)


def _verify_statistics(
    group: zarr.Group, tree: FileTree, meta: dict[str, Any], where: str
) -> list[str]:
    out = []
    recorded = meta.get("statistics", {})
    for key, subs in tree.statistics.items():
        for sub, stats in subs.items():
            for stat, arr in stats.items():
                info = recorded.get(key, {}).get(sub, {}).get(stat)
                path = f"meta/statistics/{key}/{sub}/{stat}"
                if info is None:
                    out.append(f"{where}: {path} is in the source but not in the store")
                    continue
                got = restore_values(group[f"statistics/{key}/{sub}/{stat}"][...], info)
                if not _same_meta(got, arr):
                    out.append(f"{where}: {path}: " + _describe(got, arr))
    return out


def _verify_index(group: zarr.Group, tree: FileTree, where: str) -> list[str]:
    out = []
    if not np.array_equal(group["trial"][...], np.arange(tree.n_trials)):
        out.append(f"{where}: coordinate 'trial' is not the file index 0..{tree.n_trials - 1}")
    unit_ids = tree.meta_neurons.get("unit_ids")
    is_index = unit_ids is not None and unit_ids.ndim == 1 and unit_ids.dtype.kind in "iu"
    if is_index and not np.array_equal(group["neuron"][...], unit_ids):
        out.append(f"{where}: coordinate 'neuron' differs from meta/neurons/unit_ids")
    return out
