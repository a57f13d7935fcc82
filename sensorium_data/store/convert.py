"""``sensorium-data convert``: official file trees -> one chunked, compressed Zarr v3 store.

Order of work, so that an interrupted conversion never looks finished:

1. every source tree is opened and validated before anything is written;
2. per mouse, a group is created with ``complete = false``, with coordinates, statistics and
   empty data arrays (:mod:`.layout`);
3. dask tasks, one per shard-aligned block of trials, read the trial files and write whole
   shards (no two tasks touch one object);
4. ``complete = true`` is set, then the group's and the root's metadata are consolidated. A
   mouse is finished only once the root's consolidated metadata (what readers see) says so:
   a run stopped between the two writes leaves it unfinished, and the next run redoes it.

A failure (bad trial file, Ctrl-C, full disk) deletes the unfinished group, after waiting for
the writes still running on zarr's IO thread; a store this call created and that holds no
mouse is removed. A ``kill -9`` leaves the group marked incomplete, which opening refuses and
the next run of the same command redoes (removing the temporary files the killed run left).

Conversions of different mice into one store may run at the same time, without a lock: a
root created by another run in the meantime is opened instead, and each run consolidates the
metadata again until the view matches what is on disk.
"""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing
import os
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import dask
import numpy as np
import zarr
from zarr.storage import LocalStore

from .._version import __version__
from ..errors import InvalidFileTreeError, MouseExistsError, SensoriumDataError, StoreNotFoundError
from ..filetree.sources import TreeSource
from ..filetree.tree import FileTree, open_tree, read_trial_block
from .access import make_store, quiet, settle_io, store_url
from .images import rescale_images
from .layout import create_mouse_group, scaled_images
from .schema import ATTRS_KEY, FORMAT_VERSION, ChunkOptions, scaled_path
from .shards import write_shards

__all__ = ["convert", "first_nan_frame"]

_LOCAL_SCHEDULERS = ("threads", "processes", "synchronous", "sync", "single-threaded")
_NOT_A_NODE = "Object at .* is not recognized as a component of a Zarr hierarchy"
_PUBLISH_TRIES = 20


def convert(
    sources: Sequence[Any],
    store: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    source_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    chunking: ChunkOptions | None = None,
    scheduler: str = "threads",
    num_workers: int | None = None,
    progress: bool = True,
) -> list[str]:
    """Convert official file trees (folders or zips) into one Zarr v3 store, a group per mouse.

    Parameters
    ----------
    sources
        Paths or fsspec URLs of trees (the folder holding ``data/`` and ``meta/``) or their
        ``.zip`` files, or :class:`~sensorium_data.filetree.sources.TreeSource` objects.
    store
        Local path or fsspec URL of the store; created if missing. Mice already in it are kept.
    storage_options, source_options
        fsspec options of the store and of the sources.
    overwrite
        Replace mice that the store already holds (otherwise :class:`MouseExistsError`).
    chunking
        Chunk, shard and compression choices (:class:`~sensorium_data.store.schema.ChunkOptions`).
    scheduler
        ``"threads"`` (default), ``"processes"``, ``"synchronous"``, or the address of a
        dask.distributed scheduler (``tcp://host:8786``) whose workers can reach the sources
        and the store.
    num_workers
        Threads or processes of the local schedulers (default: the number of cores).
    progress
        Show a progress bar.

    Returns
    -------
    The names (short data keys) of the mice written.
    """
    chunking = chunking or ChunkOptions()
    url = store_url(store)
    if not isinstance(url, str):
        raise TypeError(f"store must be a path or URL, got {type(store).__name__}")
    _check_scheduler(scheduler, url)
    trees = [
        s if isinstance(s, FileTree) else open_tree(s, source_options) for s in _as_sources(sources)
    ]
    _check_unique(trees)
    zstore = make_store(url, storage_options, read_only=False)
    started = time.time()
    root, created = _open_or_create_root(zstore, url)
    written: list[str] = []
    try:
        for tree in trees:
            _prepare_target(root, tree, overwrite, url)
            _convert_mouse(
                tree, root, url, storage_options, chunking, scheduler, num_workers, progress
            )
            written.append(tree.data_key)
        _publish(zstore, url, started)  # the mice are finished for readers only once this ends
    except BaseException:
        settle_io()  # writes still running on zarr's IO thread end before anything is deleted
        with contextlib.suppress(Exception):
            _clean_up(zstore, url, started, created, written)
        raise
    return written


def _clean_up(zstore: Any, url: str, started: float, created: bool, written: list[str]) -> None:
    """After a failure: publish the mice finished here (or delete them if that fails too, as
    on a full disk); remove the store this call created if it holds no mouse."""
    if not (created and not _mouse_groups(zstore)):
        try:
            _publish(zstore, url, started)
            return
        except (OSError, SensoriumDataError):  # a full disk, a store gone read-only
            published = _published(zstore)
            for name in written:
                if not published.get(name):
                    _delete(zstore, name)
    if created and not _mouse_groups(zstore):
        _remove_root(zstore, started)
    else:  # the view must not list the mice deleted above
        _publish(zstore, url, started)


def _as_sources(sources: Sequence[Any]) -> list[Any]:
    if isinstance(sources, str | os.PathLike | TreeSource):
        sources = [sources]
    if not sources:
        raise ValueError("sources: give at least one file tree folder or zip")
    return list(sources)


def _check_scheduler(scheduler: str, url: str) -> None:
    if scheduler not in _LOCAL_SCHEDULERS and "://" not in scheduler and ":" not in scheduler:
        raise ValueError(
            f"scheduler must be threads, processes, synchronous or a dask.distributed address "
            f"like tcp://127.0.0.1:8786; got {scheduler!r}"
        )
    if url.startswith("memory://") and scheduler not in ("threads", "synchronous", "sync"):
        raise ValueError(
            "a memory:// store lives in one process: use scheduler='threads' or 'synchronous'"
        )


def _check_unique(trees: list[FileTree]) -> None:
    seen: dict[str, str] = {}
    for tree in trees:
        if tree.data_key in seen:
            raise InvalidFileTreeError(
                f"{tree.source.describe()} and {seen[tree.data_key]} are the same mouse "
                f"({tree.data_key}); give each mouse once"
            )
        seen[tree.data_key] = tree.source.describe()


def _root_attrs() -> dict[str, Any]:
    return {ATTRS_KEY: {"format_version": FORMAT_VERSION, "toolkit_version": __version__}}


def _open_or_create_root(zstore: Any, url: str) -> tuple[zarr.Group, bool]:
    """The store's root group, created if missing; and whether this call created it.

    Two conversions into one new store may both find it missing: the one whose create meets
    the other's root opens that instead.
    """
    for _ in range(3):
        try:
            with quiet():
                root = zarr.open_group(zstore, mode="r+", zarr_format=3, use_consolidated=False)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError):
            with contextlib.suppress(zarr.errors.ContainsGroupError):
                return zarr.create_group(zstore, zarr_format=3, attributes=_root_attrs()), True
            continue
        except zarr.errors.NodeTypeValidationError:
            raise StoreNotFoundError(f"{url}: holds a Zarr array, not a sensorium store") from None
        break
    else:  # pragma: no cover - created and removed again three times by other writers
        raise SensoriumDataError(f"{url}: other writers keep creating and removing this store")
    if ATTRS_KEY not in root.attrs:
        if dict(root.attrs) or _members(root):
            raise SensoriumDataError(
                f"{url}: a Zarr group that is not a sensorium_data store; refusing to write into "
                "it (choose another output path)"
            )
        # an empty group without attributes: what a concurrent run's removal of an empty store
        # leaves when another run adds a mouse at that moment (zarr writes missing parents bare)
        root.attrs.update(_root_attrs())
    return root, False


def _members(group: zarr.Group) -> list[str]:
    with quiet(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NOT_A_NODE)  # a folder without zarr.json
        return [name for name, _ in group.members()]


def _mouse_groups(zstore: Any) -> dict[str, Any]:
    """``{group: its complete flag}`` of the mouse groups on disk (not the consolidated view)."""
    try:
        with quiet():
            root = zarr.open_group(zstore, mode="r", zarr_format=3, use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return {}
    return _complete_flags(root)


def _published(zstore: Any) -> dict[str, Any]:
    """``{group: its complete flag}`` as readers see them (the consolidated metadata)."""
    with quiet():
        root = zarr.open_group(zstore, mode="r", zarr_format=3, use_consolidated=None)
    return _complete_flags(root)


def _complete_flags(root: zarr.Group) -> dict[str, Any]:
    with quiet(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NOT_A_NODE)
        return {
            name: dict(group.attrs).get(ATTRS_KEY, {}).get("complete")
            for name, group in root.groups()
        }


def _publish(zstore: Any, url: str, started: float) -> None:
    """Consolidate the store's metadata, until readers see every mouse as it is on disk.

    Concurrent conversions into one store each consolidate it; one may write a view read
    before the other's mouse was finished. Each checks after its own write and writes again
    until the view matches, so the last one to finish leaves a view that holds every mouse.
    """
    for _ in range(_PUBLISH_TRIES):
        _ensure_root(zstore)
        _consolidate(zstore)
        if _published(zstore) == _mouse_groups(zstore):
            _remove_stale_partials(zstore, started)
            return
    raise SensoriumDataError(  # pragma: no cover - needs writers that never stop
        f"{url}: other conversions kept changing the store while its metadata was consolidated; "
        "run the same command again"
    )


def _consolidate(zstore: Any, path: str | None = None) -> None:
    with quiet(), warnings.catch_warnings():
        # a folder without zarr.json (a mouse another run is creating), a killed run's temp file
        warnings.filterwarnings("ignore", message=_NOT_A_NODE)
        zarr.consolidate_metadata(zstore, path=path)


def _ensure_root(zstore: Any) -> None:
    """The root group with its attributes, written again if a concurrent run removed it."""
    try:
        with quiet():
            root = zarr.open_group(zstore, mode="r+", zarr_format=3, use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        with contextlib.suppress(zarr.errors.ContainsGroupError):
            zarr.create_group(zstore, zarr_format=3, attributes=_root_attrs())
        return
    if ATTRS_KEY not in root.attrs:
        root.attrs.update(_root_attrs())


def _remove_root(zstore: Any, started: float) -> None:
    """Remove the (empty) store this call created: its root document, then its folder.

    Only the root's own files go: a mouse that a concurrent run adds meanwhile is kept (and
    that run writes the root again).
    """
    zarr.core.sync.sync(zstore.delete("zarr.json"))
    _remove_stale_partials(zstore, started)
    if isinstance(zstore, LocalStore):
        with contextlib.suppress(OSError):
            os.rmdir(zstore.root)


def _remove_stale_partials(zstore: Any, started: float) -> None:
    """Delete the temporary ``zarr.*.partial`` files a killed run left at the store's root.

    Zarr writes a local file under a temporary name and renames it, which takes milliseconds;
    one older than this whole conversion is left from a run killed mid-write.
    """
    if not isinstance(zstore, LocalStore):
        return
    with contextlib.suppress(FileNotFoundError), os.scandir(zstore.root) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith("zarr.") and name.endswith(".partial"):
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime < started:
                        os.unlink(entry.path)


def _prepare_target(root: zarr.Group, tree: FileTree, overwrite: bool, url: str) -> None:
    """Make room for ``tree``'s group: refuse a finished one unless ``overwrite``.

    Finished means marked complete in its own metadata and in the consolidated view readers
    use; a run killed (or out of disk) between those two writes left it unfinished.
    """
    name = tree.data_key
    if name not in root:
        _delete(root.store, name)  # stray shards of a group deleted while a task still wrote
        return
    meta = dict(root[name].attrs).get(ATTRS_KEY, {})
    if meta.get("complete") and _published(root.store).get(name) and not overwrite:
        raise MouseExistsError(
            f"{url} already holds mouse {name} (from {meta.get('source_name')}); pass "
            "--overwrite (overwrite=True) to replace it"
        )
    _delete(root.store, name)


def _delete(zstore: Any, prefix: str) -> None:
    zarr.core.sync.sync(zstore.delete_dir(prefix))


def _convert_mouse(
    tree: FileTree,
    root: zarr.Group,
    url: str,
    storage_options: dict[str, Any] | None,
    chunking: ChunkOptions,
    scheduler: str,
    num_workers: int | None,
    progress: bool,
) -> None:
    try:
        group, block = create_mouse_group(root, tree, chunking)
        _consolidate(root.store)  # readers now see the mouse as incomplete
        token = uuid.uuid4().hex  # new array handles per conversion: shapes may have changed
        target = (url, json.dumps(storage_options or {}, sort_keys=True), tree.data_key, token)
        starts = range(0, tree.n_trials, block)
        scales = scaled_images(tree, chunking)
        tasks = [
            dask.delayed(_write_block, pure=False)(
                tree.source,
                tree.specs,
                tree.kind,
                target,
                start,
                min(start + block, tree.n_trials),
                scales,
            )
            for start in starts
        ]
        results = _run(tasks, scheduler, num_workers, progress, tree)
        if tree.kind == "dynamic":
            valid = np.concatenate([r for r in results if r is not None])  # in trial order
            group["valid_frames"][:] = valid
        meta = dict(group.attrs)[ATTRS_KEY]
        group.attrs[ATTRS_KEY] = {**meta, "complete": True}
        _consolidate(root.store, tree.data_key)
    except BaseException:
        settle_io()  # a write still running on zarr's IO thread would recreate what is deleted
        with contextlib.suppress(Exception):
            _delete(root.store, tree.data_key)
        raise


def _run(
    tasks: list[Any], scheduler: str, num_workers: int | None, progress: bool, tree: FileTree
) -> list[Any]:
    from tqdm.auto import tqdm

    with tqdm(total=tree.n_trials, unit="trial", desc=tree.data_key, disable=not progress) as bar:
        if scheduler in _LOCAL_SCHEDULERS:
            with _local_pool(scheduler, num_workers) as pool, _ProgressCallback(bar):
                done = dask.compute(*tasks, scheduler=scheduler, pool=pool)
            return [valid for _, valid in done]
        from distributed import Client, as_completed, wait

        with Client(scheduler) as client:
            futures = client.compute(tasks)
            try:
                for fut in as_completed(futures):
                    bar.update(fut.result()[0])
            except BaseException:
                client.cancel(futures)
                wait(futures)
                raise
            return [f.result()[1] for f in futures]


@contextlib.contextmanager
def _local_pool(scheduler: str, num_workers: int | None) -> Iterator[Executor | None]:
    """The pool dask's local scheduler runs on, shut down (running tasks waited for) on exit.

    Waiting matters on failure: a task still writing after the unfinished group was deleted
    would leave stray shards behind.
    """
    workers = num_workers or os.cpu_count() or 1
    if scheduler == "threads":
        pool: Executor | None = ThreadPoolExecutor(workers)
    elif scheduler == "processes":
        context = multiprocessing.get_context(dask.config.get("multiprocessing.context", "spawn"))
        pool = ProcessPoolExecutor(workers, mp_context=context)
    else:
        pool = None
    try:
        yield pool
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class _ProgressCallback(dask.callbacks.Callback):
    def __init__(self, bar: Any) -> None:
        super().__init__()
        self.bar = bar

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], int):
            self.bar.update(result[0])


@functools.lru_cache(maxsize=64)
def _target_array(url: str, options: str, mouse: str, token: str, key: str) -> zarr.Array:
    """Array ``key`` of the mouse being written, opened once per process and conversion."""
    zstore = make_store(url, json.loads(options) or None, read_only=False)
    group = zarr.open_group(zstore, path=mouse, mode="r+", zarr_format=3, use_consolidated=False)
    # every shard is written whole: skip zarr's per-chunk "all fill value?" scan (NaN padding)
    return group[key].with_config({"write_empty_chunks": True})


def first_nan_frame(block: np.ndarray) -> np.ndarray:
    """Per trial of ``block`` (trial first, time last): index of the first frame holding a NaN."""
    if block.dtype.kind != "f":
        return np.full(block.shape[0], block.shape[-1], dtype=np.int32)
    nan = np.isnan(block).reshape(block.shape[0], -1, block.shape[-1]).any(axis=1)
    has = nan.any(axis=1)
    return np.where(has, nan.argmax(axis=1), block.shape[-1]).astype(np.int32)


def _write_block(
    source: TreeSource,
    specs: dict[str, Any],
    kind: str,
    target: tuple[str, str, str, str],
    start: int,
    stop: int,
    scales: tuple[float, ...] = (),
) -> tuple[int, np.ndarray | None]:
    """Read trials ``start:stop`` of every data key and write them (whole shards), and the
    rescaled copies of the images at ``scales``."""
    valid = None
    for key, spec in specs.items():
        block = read_trial_block(source, key, spec, range(start, stop))
        array = _target_array(*target, key)
        write_shards(array, start, block)
        if key == "images":
            for scale in scales:
                scaled = _target_array(*target, scaled_path(scale))
                write_shards(scaled, start, rescale_images(block, scale))
        if kind == "dynamic" and "frame" in (array.metadata.dimension_names or ()):
            v = first_nan_frame(block)
            valid = v if valid is None else np.minimum(valid, v)
    return stop - start, valid
