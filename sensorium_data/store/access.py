"""Opening stores: any fsspec URL -> a zarr store -> lazy xarray objects.

``open_mouse`` gives one mouse as an :class:`xarray.Dataset`, ``open_store`` every mouse as an
:class:`xarray.DataTree`. Both read the consolidated metadata (one or two requests, also over
HTTP or S3), refuse groups whose conversion did not finish, and read no array data.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
import re
import warnings
from typing import Any

import fsspec
import google_crc32c
import numcodecs
import numpy as np
import xarray as xr
import zarr
from zarr.abc.store import RangeByteRequest, Store
from zarr.storage import FsspecStore, LocalStore, WrapperStore

from ..errors import (
    IncompleteStoreError,
    MissingChunkError,
    MouseNotFoundError,
    RemoteReadError,
    SchemaError,
    StoreNotFoundError,
)
from ..remote import check_protocol, is_remote_failure, remote_cause
from .schema import ATTRS_KEY, EVERY_CHUNK_WRITTEN, check_mouse_attrs, statistic_problem
from .shards import shard_layout

__all__ = [
    "check_statistics",
    "list_mice",
    "make_store",
    "open_mouse",
    "open_root",
    "open_statistics",
    "open_store",
    "read_mice",
    "resolve_mouse",
    "settle_io",
    "store_url",
]

_CONSOLIDATED_WARNING = "Consolidated metadata is currently not part"
#: zarr v3 chunk keys (``<array>/c/0/3``): every other key is metadata, which may be absent
_CHUNK_KEY = re.compile(r"(?:^|/)c(?:/\d+)*$")


class quiet:
    """Silence zarr's notice that consolidated metadata is not in the v3 spec (we rely on it)."""

    def __enter__(self) -> None:
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.filterwarnings("ignore", message=_CONSOLIDATED_WARNING)

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is KeyboardInterrupt:  # the request still running on zarr's IO thread may warn
            settle_io()
        self._ctx.__exit__(*exc)


def settle_io(timeout: float = 60.0) -> None:
    """Wait until zarr's IO thread has finished the requests still running on it.

    Ctrl-C raises ``KeyboardInterrupt`` in the main thread while zarr's event loop carries on
    with the request the main thread was waiting for (a ``zarr.json`` with its parent groups, a
    shard). Cleaning up before it ends would race with it (a deleted group written back without
    attributes), and exiting with it pending prints asyncio's "Task was destroyed" warnings.
    """
    from zarr.core import sync as zsync

    loop = zsync.loop[0]
    if loop is None or loop.is_closed() or not loop.is_running():
        return

    async def idle() -> None:
        me = asyncio.current_task()
        while pending := [t for t in asyncio.all_tasks() if t is not me]:
            await asyncio.wait(pending)

    future = asyncio.run_coroutine_threadsafe(idle(), loop)
    try:
        future.result(timeout)
    except concurrent.futures.TimeoutError:  # pragma: no cover - a request hanging for a minute
        future.cancel()


def store_url(url: Any) -> Any:
    """Normalise a path or URL (``~`` expanded, paths made absolute); a zarr ``Store`` object
    is returned as it is."""
    if isinstance(url, Store):
        return url
    url = os.fspath(url)
    if "://" not in url and "::" not in url:
        return os.path.abspath(os.path.expanduser(url))
    return url


def make_store(
    url: str | os.PathLike[str] | Store,
    storage_options: dict[str, Any] | None = None,
    *,
    read_only: bool = True,
    retries: int = 4,
) -> Store:
    """A zarr store for a local path, ``file://``, ``memory://`` or any fsspec URL or chain.

    Remote stores are wrapped in a :class:`RetryingStore` (``retries`` per request).
    """
    if isinstance(url, Store):
        return url
    remote = make_remote_store(url, storage_options, read_only=read_only)
    if isinstance(remote, LocalStore) or retries == 0 or str(url).startswith("memory://"):
        return remote
    return RetryingStore(remote, url=store_url(url), retries=retries)


def make_remote_store(
    url: str | os.PathLike[str], storage_options: dict[str, Any] | None, *, read_only: bool
) -> Store:
    """The unwrapped zarr store of ``url`` (a :class:`LocalStore` for local paths)."""
    url = store_url(url)
    if url.startswith("file://"):
        url = url[len("file://") :]
    if "://" not in url and "::" not in url:
        if storage_options:
            raise TypeError("storage_options are only accepted for remote URLs, not local paths")
        return LocalStore(url, read_only=read_only)
    check_protocol(url)
    if "::" in url:  # fsspec chains (simplecache::s3://...) are synchronous: wrap them
        fs, path = fsspec.url_to_fs(url, **(storage_options or {}))
        return FsspecStore(_chain_wrapper()(fs, asynchronous=True), path=path, read_only=read_only)
    return FsspecStore.from_url(url, storage_options=storage_options, read_only=read_only)


class RetryingStore(WrapperStore):  # type: ignore[type-arg]
    """Retries every read of a remote store on transient errors (5xx, resets, timeouts).

    Each request is retried on its own, ``retries`` times with jittered exponential backoff from
    ``wait`` seconds; then :class:`~sensorium_data.errors.RemoteReadError` names the URL and
    the key (chunk or metadata document), as it does at once for every other failure (403, S3
    errors). A missing metadata key is not an error (zarr asks for keys that may not exist); a
    missing chunk of a group in ``written`` (prefixes of mice whose converter wrote every chunk)
    is a :class:`~sensorium_data.errors.MissingChunkError`, not the fill value. A partial or
    failed transfer never reaches zarr's decoder: byte ranges must come back whole, and the
    index of a shard of an array in ``index_bytes`` (array path -> bytes of its shard index)
    must match its crc32c, so that a shard cut short is named here, not by a checksum error.
    """

    def __init__(
        self,
        store: Store,
        *,
        url: str,
        retries: int = 4,
        wait: float = 0.1,
        written: tuple[str, ...] = (),
        index_bytes: dict[str, int] | None = None,
    ) -> None:
        super().__init__(store)
        self.url = url
        self.retries = retries
        self.wait = wait
        self.written = written
        self.index_bytes = dict(index_bytes or {})
        self.zstd_arrays: set[str] = set()

    def _with_store(self, store: Store) -> RetryingStore:
        copy = type(self)(
            store,
            url=self.url,
            retries=self.retries,
            wait=self.wait,
            written=self.written,
            index_bytes=self.index_bytes,
        )
        copy.zstd_arrays = self.zstd_arrays
        return copy

    def is_written(self, key: str) -> bool:
        """Whether ``key`` is a chunk the converter wrote (so that it must exist)."""
        return key.startswith(self.written) and bool(_CHUNK_KEY.search(key))

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        buf = await self._get(key, prototype, byte_range)
        if buf is None:
            if self.is_written(key):
                raise MissingChunkError(
                    f"{self.url.rstrip('/')}/{key}: chunk missing (HTTP 404, or no such object "
                    "or file); the converter wrote every chunk, so the store is damaged or "
                    "incompletely copied"
                )
            return None
        if self.index_bytes or self.zstd_arrays:
            self._check(key, byte_range, buf)
        return buf

    def _check(self, key: str, byte_range: Any, buf: Any) -> None:
        """Refuse a short byte range, a small chunk that does not decode or a shard whose index
        fails its crc32c."""
        where = f"{self.url.rstrip('/')}/{key}"
        if isinstance(byte_range, RangeByteRequest):
            wanted = byte_range.end - byte_range.start
            if len(buf) != wanted:
                why = "is cut short" if len(buf) < wanted else "ignored the Range header"
                raise RemoteReadError(
                    f"{where}: expected {wanted} bytes at {byte_range.start}, got {len(buf)}; "
                    f"the {'object' if len(buf) < wanted else 'server'} {why}"
                )
            return
        array = _CHUNK_KEY.sub("", key)
        if array in self.zstd_arrays and byte_range is None:  # small arrays: decoding is cheap
            try:
                numcodecs.Zstd().decode(buf.to_bytes())
            except RuntimeError as exc:
                raise RemoteReadError(
                    f"{where}: chunk does not decode ({exc}); the object is cut short or damaged"
                ) from None
        size = self.index_bytes.get(array)
        if size is None:
            return
        if byte_range is not None and len(buf) > size:
            raise RemoteReadError(
                f"{where}: expected the last {size} bytes (the shard index), got {len(buf)}; "
                "the server ignored the Range header"
            )
        raw = buf.to_bytes()[-size:]  # a whole shard ends with its index: (offset, nbytes)... crc
        if len(raw) != size or google_crc32c.value(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
            raise RemoteReadError(
                f"{where}: shard index failed its checksum ({len(buf)} bytes read); the object "
                "is cut short or damaged"
            )

    async def _get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        for attempt in range(self.retries + 1):
            try:
                return await self._store.get(key, prototype, byte_range)
            except Exception as exc:
                if not is_transient(exc):
                    if isinstance(exc, FileNotFoundError) or not is_remote_failure(exc):
                        raise
                    raise RemoteReadError(
                        f"{self.url.rstrip('/')}/{key}: {remote_cause(exc)}"
                    ) from exc
                if attempt == self.retries:
                    raise RemoteReadError(
                        f"{self.url}: reading {key}"
                        + (f" ({byte_range})" if byte_range is not None else "")
                        + f" failed {self.retries + 1} times; last error: {remote_cause(exc)}"
                    ) from exc
                await asyncio.sleep(self.wait * 2**attempt * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_partial_values(self, prototype: Any, key_ranges: Any) -> list[Any]:
        return await gather_or_cancel([self.get(k, prototype, r) for k, r in key_ranges])


async def gather_or_cancel(coros: list[Any]) -> list[Any]:
    """``asyncio.gather``, but a failure cancels (and awaits) the others.

    Plain ``gather`` leaves the siblings of a failed read running, still retrying against a
    store the caller has given up on.
    """
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def is_transient(exc: BaseException) -> bool:
    """Whether a failed read is worth retrying (network trouble, not a missing or bad key)."""
    if isinstance(exc, RemoteReadError | FileNotFoundError | PermissionError | IsADirectoryError):
        return False
    if isinstance(exc, OSError | TimeoutError | asyncio.TimeoutError):
        return True
    try:
        import aiohttp
    except ImportError:  # pragma: no cover
        return False
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.status >= 500 or exc.status in (408, 429)
    return isinstance(exc, aiohttp.ClientError)


def _chain_wrapper() -> type:
    """An async wrapper of a synchronous fsspec chain that also serves suffix byte ranges.

    Sharded zarr reads a shard's index with a suffix range (``start < 0``); fsspec's caching
    filesystems hand back plain local files for which ``cat_file`` cannot do that.
    """
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

    class SuffixRangeWrapper(AsyncFileSystemWrapper):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            wrapped = self._cat_file  # set per instance by the base class

            async def cat_file(
                path: str, start: int | None = None, end: int | None = None, **kw: Any
            ) -> bytes:
                if start is not None and start < 0:
                    start = max(0, int(await self._size(path)) + start)
                return await wrapped(path, start=start, end=end, **kw)

            self._cat_file = cat_file

    return SuffixRangeWrapper


def open_root(
    url: Any, storage_options: dict[str, Any] | None, *, retries: int = 4
) -> tuple[zarr.Group, Store]:
    """The root group of a sensorium store (read-only) and its zarr store.

    A local path is wrapped too (without retries), so that a missing chunk of a mouse whose
    converter wrote every chunk is an error there as well.
    """
    store = make_store(url, storage_options, retries=retries)
    if isinstance(store, LocalStore) and not isinstance(url, Store):
        store = RetryingStore(store, url=store_url(url), retries=0)
    try:
        with quiet():
            root = zarr.open_group(store, mode="r", zarr_format=3, use_consolidated=None)
    except (zarr.errors.NodeTypeValidationError, zarr.errors.ContainsArrayError):
        raise StoreNotFoundError(
            f"{url}: a Zarr array, not a sensorium_data store (a Zarr group written by "
            "`sensorium-data convert`); pass the store's root folder as url"
        ) from None
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise StoreNotFoundError(f"{url}: no Zarr v3 store here") from None
    except ValueError as exc:  # zarr.json that is not JSON (cut short) or not Zarr metadata
        raise StoreNotFoundError(
            f"{url}: zarr.json does not parse as Zarr v3 metadata ({exc}); the object is cut "
            "short or not a Zarr store"
        ) from None
    if ATTRS_KEY not in root.attrs:
        raise StoreNotFoundError(
            f"{url}: a Zarr group, but not a sensorium_data store; create one with "
            "`sensorium-data convert SRC -o STORE`"
        )
    if isinstance(store, RetryingStore):
        _mark_written(store, root)
    return root, store


def _mark_written(store: RetryingStore, root: zarr.Group) -> None:
    """Tell ``store`` which mice had every chunk written, the index size of their shards and
    which of their chunks are zstd frames (from the consolidated metadata: no request)."""
    mice = dict(root.groups())
    store.written = tuple(
        f"{name}/"
        for name, group in mice.items()
        if dict(group.attrs).get(ATTRS_KEY, {}).get(EVERY_CHUNK_WRITTEN)
    )
    for name, group in mice.items():
        for path, node in group.members(max_depth=None):
            if not isinstance(node, zarr.Array):
                continue
            if node.shards is not None:
                try:
                    shard_layout(node)  # the converter's: an index with a crc32c at the end
                except ValueError:
                    continue
                per_shard = np.prod([s // c for s, c in zip(node.shards, node.chunks, strict=True)])
                store.index_bytes[f"{name}/{path}"] = 16 * int(per_shard) + 4
            elif [c["name"] for c in node.metadata.to_dict()["codecs"]][-1:] == ["zstd"]:
                store.zstd_arrays.add(f"{name}/{path}")


def list_mice(url: Any, storage_options: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """``{mouse: its sensorium attributes}`` of every mouse group in the store."""
    root, _ = open_root(url, storage_options)
    return read_mice(root, url)


def read_mice(root: zarr.Group, url: Any) -> dict[str, dict[str, Any]]:
    """``{mouse: its sensorium attributes}`` of the mouse groups of an opened root."""
    out = {}
    for name, group in sorted(root.groups()):
        out[name] = check_mouse_attrs(dict(group.attrs), f"{url} group {name!r}")
    return out


def resolve_mouse(mice: dict[str, dict[str, Any]], mouse: str | None, url: Any) -> str:
    """The group name of ``mouse`` (short key or source name); refuses incomplete mice."""
    if mouse is None:
        if len(mice) != 1:
            raise MouseNotFoundError(
                f"{url} holds {len(mice)} mice ({', '.join(mice) or 'none'}); pass mouse=..."
            )
        mouse = next(iter(mice))
    if mouse not in mice:
        by_source = {m["source_name"]: name for name, m in mice.items()}
        if mouse not in by_source:
            raise MouseNotFoundError(
                f"{url} holds no mouse {mouse!r}; it holds {', '.join(mice) or 'none'}"
            )
        mouse = by_source[mouse]
    if not mice[mouse]["complete"]:
        raise IncompleteStoreError(
            f"{url}: the conversion of mouse {mouse!r} did not finish; run the same "
            "`sensorium-data convert` command again to redo it"
        )
    return mouse


def _chunk_by_shards(ds: xr.Dataset, group: zarr.Group) -> xr.Dataset:
    """Give every data variable dask chunks equal to its shards (or chunks)."""
    out = {}
    for name, var in ds.data_vars.items():
        arr = group[name]
        out[name] = var.chunk(dict(zip(var.dims, arr.shards or arr.chunks, strict=True)))
    return ds.assign(out)


def open_mouse(
    url: Any,
    mouse: str | None = None,
    storage_options: dict[str, Any] | None = None,
    *,
    chunks: Any = "shards",
) -> xr.Dataset:
    """Open one mouse of a store as a lazy :class:`xarray.Dataset`.

    Parameters
    ----------
    url
        Local path or fsspec URL (``memory://``, ``http(s)://``, ``s3://``,
        ``simplecache::s3://...``) of a store written by ``sensorium-data convert``.
    mouse
        Short data key (``26872-17-20``) or full source name; may be omitted when the store
        holds one mouse.
    storage_options
        Passed to fsspec (e.g. ``{"endpoint_url": ...}`` for S3).
    chunks
        ``"shards"`` (default): dask chunks equal to the stored shards; ``None``: lazily
        indexed arrays without dask; anything else is passed to :func:`xarray.open_zarr`.
    """
    root, store = open_root(url, storage_options)
    mouse = resolve_mouse(read_mice(root, url), mouse, url)
    with quiet():
        ds = xr.open_zarr(
            store,
            group=mouse,
            consolidated=True,
            zarr_format=3,
            chunks=None if chunks == "shards" else chunks,
        )
    if chunks == "shards":
        ds = _chunk_by_shards(ds, root[mouse])
    return ds


def open_statistics(
    url: Any, mouse: str | None = None, storage_options: dict[str, Any] | None = None
) -> dict[str, dict[str, xr.Dataset]]:
    """The official statistics of a mouse: ``{key: {"all": Dataset(mean, std, ...)}}``, loaded."""
    root, store = open_root(url, storage_options)
    mice = read_mice(root, url)
    mouse = resolve_mouse(mice, mouse, url)
    out: dict[str, dict[str, xr.Dataset]] = {}
    if "statistics" not in root[mouse]:
        return out
    check_statistics(root[mouse], mice[mouse], f"{url} mouse {mouse!r}")
    stats = root[mouse]["statistics"]
    for key, kgroup in sorted(stats.groups()):
        for sub, _ in sorted(kgroup.groups()):
            with quiet():
                ds = xr.open_zarr(
                    store,
                    group=f"{mouse}/statistics/{key}/{sub}",
                    consolidated=True,
                    zarr_format=3,
                    chunks=None,
                )
            out.setdefault(key, {})[sub] = ds.load()
    return out


def check_statistics(group: zarr.Group, meta: dict[str, Any], where: str) -> None:
    """Refuse statistics that do not fit the trials of their data key, as converting does (a
    store written by an older version, or edited, may hold them). Reads metadata only."""
    if "statistics" not in group:
        return
    arrays = {
        str(info.get("source", ""))[len("data/") :]: name
        for name, info in meta["variables"].items()
        if str(info.get("source", "")).startswith("data/")
    }
    for key, kgroup in sorted(group["statistics"].groups()):
        if key not in arrays:
            continue
        trial_shape = group[arrays[key]].shape[1:]
        for sub, sgroup in sorted(kgroup.groups()):
            for stat, arr in sorted(sgroup.arrays()):
                problem = statistic_problem(meta["kind"], key, arr.shape, arr.dtype, trial_shape)
                if problem:
                    raise SchemaError(
                        f"{where}: statistics/{key}/{sub}/{stat} {problem}; the normaliser "
                        "cannot use it (fix meta/statistics in the file tree and convert again)"
                    )


def open_store(url: Any, storage_options: dict[str, Any] | None = None) -> xr.DataTree:
    """Open every mouse of a store as a lazy :class:`xarray.DataTree` (one node per mouse)."""
    root, store = open_root(url, storage_options)
    mice = read_mice(root, url)
    for mouse in mice:
        resolve_mouse(mice, mouse, url)
    with quiet():
        tree = xr.open_datatree(store, engine="zarr", consolidated=True, zarr_format=3, chunks=None)
    for mouse in mice:
        tree[mouse].dataset = _chunk_by_shards(tree[mouse].to_dataset(inherit=False), root[mouse])
    return tree
