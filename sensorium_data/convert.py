"""``sensorium-data convert``: official file trees -> one chunked, compressed Zarr v3 store.

Order of work, so that an interrupted conversion never looks finished:

1. every source tree is opened and validated before anything is written;
2. per mouse, a group is created with ``complete = false``, with coordinates, statistics and
   empty data arrays (:mod:`.layout`);
3. dask tasks, one per shard-aligned block of trials, read the trial files and write whole
   shards (no two tasks touch one object);
4. ``complete = true`` is set, then the group's and the root's metadata are consolidated.

A failure (bad trial file, Ctrl-C, full disk) deletes the unfinished group; a ``kill -9`` leaves
it marked incomplete, which opening refuses and the next run of the same command redoes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing
import os
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import dask
import numpy as np
import zarr

from . import __version__
from .errors import InvalidFileTreeError, MouseExistsError, SensoriumDataError, StoreNotFoundError
from .filetree import FileTree, open_tree, read_trial_block
from .layout import create_mouse_group, scaled_images
from .schema import ATTRS_KEY, FORMAT_VERSION, ChunkOptions, scaled_path
from .shards import write_shards
from .sources import TreeSource
from .stores import make_store, quiet, store_url
from .transforms import rescale_images

__all__ = ["convert", "first_nan_frame"]

_LOCAL_SCHEDULERS = ("threads", "processes", "synchronous", "sync", "single-threaded")


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
        ``.zip`` files, or :class:`~sensorium_data.sources.TreeSource` objects.
    store
        Local path or fsspec URL of the store; created if missing. Mice already in it are kept.
    storage_options, source_options
        fsspec options of the store and of the sources.
    overwrite
        Replace mice that the store already holds (otherwise :class:`MouseExistsError`).
    chunking
        Chunk, shard and compression choices (:class:`~sensorium_data.schema.ChunkOptions`).
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
    root, created = _open_or_create_root(zstore, url)
    written: list[str] = []
    try:
        for tree in trees:
            _prepare_target(root, tree, overwrite, url)
            _convert_mouse(
                tree, root, url, storage_options, chunking, scheduler, num_workers, progress
            )
            written.append(tree.data_key)
    except BaseException:
        if created and not written:  # a store made by this call and holding nothing: remove it
            with contextlib.suppress(Exception):
                _delete(zstore, "")
        raise
    finally:
        if written or not created:  # the consolidated view must match what is on disk now
            with quiet(), contextlib.suppress(Exception):
                zarr.consolidate_metadata(zstore)
    return written


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


def _open_or_create_root(zstore: Any, url: str) -> tuple[zarr.Group, bool]:
    try:
        with quiet():
            root = zarr.open_group(zstore, mode="r+", zarr_format=3, use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        attrs = {ATTRS_KEY: {"format_version": FORMAT_VERSION, "toolkit_version": __version__}}
        return zarr.create_group(zstore, zarr_format=3, attributes=attrs), True
    except zarr.errors.NodeTypeValidationError:
        raise StoreNotFoundError(f"{url}: holds a Zarr array, not a sensorium store") from None
    if ATTRS_KEY not in root.attrs:
        raise SensoriumDataError(
            f"{url}: a Zarr group that is not a sensorium_data store; refusing to write into it "
            "(choose another output path)"
        )
    return root, False


def _prepare_target(root: zarr.Group, tree: FileTree, overwrite: bool, url: str) -> None:
    """Make room for ``tree``'s group: refuse a finished one unless ``overwrite``."""
    name = tree.data_key
    if name not in root:
        _delete(root.store, name)  # stray shards of a group deleted while a task still wrote
        return
    meta = dict(root[name].attrs).get(ATTRS_KEY, {})
    if meta.get("complete") and not overwrite:
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
        with quiet():  # readers of the consolidated metadata now see the mouse as incomplete
            zarr.consolidate_metadata(root.store)
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
        with quiet():
            zarr.consolidate_metadata(root.store, path=tree.data_key)
    except BaseException:
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
