"""Reading batches of trials straight from the shards the converter writes.

A training batch touches a few dozen inner chunks spread over several shards. zarr-python 3.1
spends about 0.5-1 ms of Python per chunk and per call on that, and reads every shard index
again on every call; at batch sizes of 128 that is most of the time of a batch.
:class:`ChunkReader` reads the layout of :mod:`sensorium_data.store.shards` itself: it keeps each
shard's index once read (a few hundred bytes), fetches every chunk of a batch in one concurrent
round through the array's zarr store (so retries, HTTP, S3 and fsspec chains behave exactly as
for zarr), decodes each chunk once per batch with blosc in threads, and copies each trial's
rows or frame window into the output as the chunk arrives. Rows of a local store written
without compression (``clevel=0``) are read from the shard files straight into the output,
with no decoding. It counts the bytes it fetches.

Only arrays chunked along the first axis (trials) and optionally the last one (frames), with
every other axis whole, stored as ``sharding_indexed`` with ``bytes`` + ``blosc`` inside and a
``bytes`` + ``crc32c`` index at the end, are accepted (:func:`reader_for` returns ``None`` for
anything else, and the caller falls back to zarr).

Arrays of a mouse whose converter wrote every chunk (``strict``) refuse a missing shard or an
unwritten chunk with :class:`~sensorium_data.errors.MissingChunkError`; older stores read them as
the fill value, as zarr does. Every failure names the store's URL and the shard's key.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import google_crc32c
import numpy as np
import zarr
from zarr.abc.store import RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import LocalStore

from ..errors import MissingChunkError, RemoteReadError
from ..store.access import RetryingStore, gather_or_cancel
from ..store.shards import shard_layout

__all__ = ["ChunkReader", "read_windows", "reader_for"]

_EMPTY = np.uint64(2**64 - 1)


Placer = Callable[[tuple[int, int], np.ndarray], None]


def _run(index: np.ndarray) -> np.ndarray | slice:
    """``index`` as a slice when it is a run of consecutive integers (a view, not a copy)."""
    if len(index) and index[-1] - index[0] == len(index) - 1 and np.all(np.diff(index) == 1):
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


_POOL: dict[int, ThreadPoolExecutor] = {}


def decode_pool() -> ThreadPoolExecutor:
    """A small decode pool per process (never shared across a fork)."""
    pid = os.getpid()
    if pid not in _POOL:
        _POOL.clear()
        _POOL[pid] = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sensorium-decode")
    return _POOL[pid]


def read_windows(
    requests: list[tuple[ChunkReader, np.ndarray, np.ndarray, int]],
) -> list[np.ndarray]:
    """Several :meth:`ChunkReader.windows` reads ``(reader, trials, starts, length)`` in one
    concurrent round of requests (one round trip per batch on a remote store)."""
    checked = []
    for reader, trial_list, start_list, length in requests:
        trials = np.asarray(trial_list, dtype=np.int64)
        starts = np.asarray(start_list, dtype=np.int64)
        reader.check(trials, starts, length)
        checked.append((reader, trials, starts, length))

    async def gather() -> list[np.ndarray]:
        return await gather_or_cancel([r.read(t, s, n) for r, t, s, n in checked])

    return sync(gather())


def reader_for(array: zarr.Array, *, strict: bool | None = None) -> ChunkReader | None:
    """A :class:`ChunkReader` for ``array``, or ``None`` if its layout is not one it reads."""
    try:
        return ChunkReader(array, strict=strict)
    except ValueError:
        return None


class ChunkReader:
    """Trial rows and frame windows of one sharded array, read chunk by chunk.

    Parameters
    ----------
    array
        A zarr array written by the converter (see the module docstring for the layouts).
    strict
        Whether every chunk inside the array was written (a missing one is an error); by
        default, what :func:`~sensorium_data.store.access.open_root` found in the mouse's attributes
        (``False`` for arrays opened some other way).
    """

    def __init__(self, array: zarr.Array, *, strict: bool | None = None) -> None:
        layout = shard_layout(array)
        chunk = layout.chunk_shape
        inner = range(1, array.ndim - 1)
        if array.ndim < 2 or any(chunk[i] != array.shape[i] for i in inner):
            raise ValueError("only arrays chunked along the first and last axes")
        if array.ndim == 2 and chunk[1] != array.shape[1]:
            raise ValueError("two-dimensional arrays must be chunked along the first axis only")
        self.store = array.store
        self.path = array.path
        self.shape = tuple(array.shape)
        self.dtype = np.dtype(array.dtype)
        self.fill_value = array.fill_value
        self.codec = layout.codec
        self.chunk = chunk
        self.shard = layout.shard_shape
        self.grid = tuple(s // c for s, c in zip(self.shard, self.chunk, strict=True))
        self.indexes: dict[tuple[int, ...], np.ndarray] = {}
        self.bytes_read = 0
        # a plain local store is read with pread in the decode threads: one hop per chunk
        inner = self.store._store if isinstance(self.store, RetryingStore) else self.store
        self.local_root = str(inner.root) if isinstance(inner, LocalStore) else None
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()
        if isinstance(self.store, RetryingStore):
            self.url = self.store.url.rstrip("/")
            if strict is None:
                strict = self.store.is_written(self._key((0,)))
        else:
            self.url = self.local_root or str(self.store)
        self.strict = bool(strict)

    def __del__(self) -> None:
        for fd in getattr(self, "_fds", {}).values():
            with contextlib.suppress(OSError):
                os.close(fd)

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a ChunkReader holds an open store; open one in each process")

    # -- public ---------------------------------------------------------------------------------
    def rows(self, trials: np.ndarray) -> np.ndarray:
        """``array[trials]`` (every other axis whole)."""
        n_last = self.shape[-1]
        return self.windows(trials, np.zeros(len(trials), dtype=np.int64), n_last)

    def windows(self, trials: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
        """``stack([array[t, ..., s : s + length] for t, s in zip(trials, starts)])``.

        For two-dimensional arrays ``starts`` must be 0 and ``length`` the full last axis.
        """
        return read_windows([(self, trials, starts, length)])[0]

    def check(self, trials: np.ndarray, starts: np.ndarray, length: int) -> None:
        """``IndexError`` unless every window lies inside the array."""
        if len(trials) and (trials.min() < 0 or trials.max() >= self.shape[0]):
            raise IndexError(f"trials out of range 0..{self.shape[0] - 1}: {trials.tolist()}")
        if len(starts) and (starts.min() < 0 or starts.max() + length > self.shape[-1]):
            raise IndexError(f"windows of {length} from {starts.tolist()} exceed {self.shape[-1]}")

    # -- reading --------------------------------------------------------------------------------
    async def read(
        self,
        trials: np.ndarray,
        starts: np.ndarray,
        length: int,
        *,
        out: np.ndarray | None = None,
        select: np.ndarray | None = None,
    ) -> np.ndarray:
        """The coroutine behind :meth:`windows` (for gathering several arrays' reads).

        Each decoded chunk is copied into the output in the decode threads as it arrives:
        into ``out`` when given (any array or view of the output's shape and a dtype the
        stored values cast to, such as the float32 batch a loader fills), keeping only the
        positions ``select`` along axis 1 (a neuron selection) when given.
        """
        cl = self.chunk[-1]
        pieces: dict[tuple[int, int], list[tuple[Any, ...]]] = {}
        if length == self.shape[-1] == cl:  # whole rows: one piece per chunk
            trial_chunks = trials // self.chunk[0]
            for c in np.unique(trial_chunks).tolist():
                rows = np.flatnonzero(trial_chunks == c)
                pieces[(c, 0)] = [(_run(rows), _run(trials[rows] - c * self.chunk[0]), None)]
        else:
            for j, (t, s) in enumerate(zip(trials.tolist(), starts.tolist(), strict=True)):
                pos = 0
                while pos < length:
                    frame = s + pos
                    lo = frame % cl
                    n = min(cl - lo, length - pos)
                    r = t % self.chunk[0]
                    window = (slice(j, j + 1), slice(r, r + 1), (lo, n, pos, frame))
                    pieces.setdefault((t // self.chunk[0], frame // cl), []).append(window)
                    pos += n
        if out is None:
            inner = list(self.shape[1:-1])
            if select is not None:
                inner[0] = len(select)
            out = np.empty((len(trials), *inner, length), dtype=self.dtype)
        place = functools.partial(self._place, pieces, out, select)
        keys = list(pieces)
        await self._load_indexes({self._shard_of(k) for k in keys})
        if self._direct(out, select, length):  # rows read straight into the batch
            loop = asyncio.get_running_loop()
            parts = [keys[i::2] for i in range(2) if keys[i::2]]
            await gather_or_cancel(
                [
                    loop.run_in_executor(decode_pool(), self._read_rows, part, trials, out, place)
                    for part in parts
                ]
            )
        elif self.local_root is not None:
            await self._local_chunks(keys, place)
        else:
            await gather_or_cancel([self._chunk(k, place) for k in keys])
        return out

    def _direct(self, out: np.ndarray, select: np.ndarray | None, length: int) -> bool:
        """Whether whole trial rows can be read from the shard files straight into ``out``:
        a local store written without compression (``clevel=0``, where blosc keeps each chunk
        as a 16-byte header and the raw values), rows of the stored dtype, each contiguous."""
        return (
            self.local_root is not None
            and hasattr(os, "preadv")
            and self.codec.clevel == 0
            and select is None
            and length == self.shape[-1] == self.chunk[-1]
            and out.dtype == self.dtype
            and len(out) > 0
            and out[0].flags.c_contiguous
        )

    def _read_rows(
        self, keys: list[tuple[int, int]], trials: np.ndarray, out: np.ndarray, place: Placer
    ) -> None:
        """Read the batch's rows of the chunks ``keys`` into ``out``, one ``preadv`` per row
        (in a decode thread); a chunk stored otherwise (compressed after all, or unwritten) is
        decoded and placed as usual. ``bytes_read`` counts the rows' bytes."""
        row_bytes = out[0].nbytes
        per_chunk = self.chunk[0]
        for key in keys:
            offset, nbytes = self._location(key)
            path = self._path(key)
            if offset == _EMPTY or int(nbytes) != 16 + row_bytes * per_chunk:
                chunk = (
                    np.full(self.chunk, self.fill_value, dtype=self.dtype)
                    if offset == _EMPTY
                    else self._read_local(path, int(offset), int(nbytes))
                )
                place(key, chunk)
                continue
            fd = self._fd(path)
            rows = np.flatnonzero(trials // per_chunk == key[0])
            for j, t in zip(rows.tolist(), trials[rows].tolist(), strict=True):
                at = int(offset) + 16 + (t - key[0] * per_chunk) * row_bytes
                got = os.preadv(fd, [out[j]], at)
                if got != row_bytes:
                    raise RemoteReadError(f"{path}: expected {row_bytes} bytes at {at}, got {got}")
            with self._lock:
                self.bytes_read += row_bytes * len(rows)

    def _path(self, key: tuple[int, int]) -> str:
        return os.path.join(str(self.local_root), self._key(self._shard_of(key)))

    def _fd(self, path: str) -> int:
        fd = self._fds.get(path)
        if fd is None:  # two decode threads may open the same shard first: keep one
            mine = os.open(path, os.O_RDONLY)
            with self._lock:
                fd = self._fds.setdefault(path, mine)
            if fd != mine:
                os.close(mine)
        return fd

    def _place(
        self,
        pieces: dict[tuple[int, int], list[tuple[Any, ...]]],
        out: np.ndarray,
        select: np.ndarray | None,
        key: tuple[int, int],
        chunk: np.ndarray,
    ) -> None:
        """Copy a decoded chunk's pieces into ``out`` (in a decode thread: the pieces of
        different chunks never overlap), keeping ``select`` along axis 1."""
        for rows, src, window in pieces[key]:
            if window is None:
                values, where = chunk[src], rows
            else:
                lo, n, pos, _ = window
                values, where = chunk[src, ..., lo : lo + n], (rows, Ellipsis, slice(pos, pos + n))
            out[where] = values if select is None else np.take(values, select, axis=1)

    def _shard_of(self, key: tuple[int, int]) -> tuple[int, ...]:
        trial_chunk, frame_chunk = key
        coords = [trial_chunk // self.grid[0]] + [0] * (len(self.shape) - 1)
        if len(self.shape) > 2:
            coords[-1] = frame_chunk // self.grid[-1]
        return tuple(coords)

    def _key(self, shard: tuple[int, ...]) -> str:
        prefix = f"{self.path}/" if self.path else ""
        return prefix + "c/" + "/".join(map(str, shard))

    def _where(self, shard: tuple[int, ...]) -> str:
        """The URL (or path) of a shard, for error messages."""
        return f"{self.url}/{self._key(shard)}"

    async def _load_indexes(self, shards: set[tuple[int, ...]]) -> None:
        missing = [s for s in shards if s not in self.indexes]
        if missing:
            found = await gather_or_cancel([self._read_index(s) for s in missing])
            self.indexes.update(zip(missing, found, strict=True))

    async def _read_index(self, shard: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(self.grid))
        size = 16 * n + 4
        buf = await self.store.get(
            self._key(shard), default_buffer_prototype(), SuffixByteRequest(size)
        )
        if buf is None:
            if self.strict:
                raise MissingChunkError(
                    f"{self._where(shard)}: shard missing (HTTP 404 or no such file); the "
                    "converter wrote every shard, so the store is damaged or incompletely copied"
                )
            return np.full((*self.grid, 2), _EMPTY, dtype="<u8")  # older stores: fill value
        raw = buf.to_bytes()
        if len(raw) > size:
            raise RemoteReadError(
                f"{self._where(shard)}: expected the last {size} bytes (the shard index), got "
                f"{len(raw)}; the server ignored the Range header"
            )
        if len(raw) != size or google_crc32c.value(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
            raise RemoteReadError(
                f"{self._where(shard)}: shard index failed its checksum ({len(raw)} bytes "
                "read); the shard is cut short or damaged"
            )
        return np.frombuffer(raw[:-4], dtype="<u8").reshape(*self.grid, 2)

    async def _chunk(self, key: tuple[int, int], place: Placer) -> None:
        shard = self._shard_of(key)
        offset, nbytes = self._location(key)
        if offset == _EMPTY:
            return place(key, np.full(self.chunk, self.fill_value, dtype=self.dtype))
        buf = await self.store.get(
            self._key(shard),
            default_buffer_prototype(),
            RangeByteRequest(int(offset), int(offset + nbytes)),
        )
        if buf is None or len(buf) != nbytes:
            got = "nothing" if buf is None else f"{len(buf)} bytes"
            raise RemoteReadError(
                f"{self._where(shard)}: expected {nbytes} bytes at {offset}, got {got}"
            )
        self.bytes_read += int(nbytes)
        data = buf.as_numpy_array()
        loop = asyncio.get_running_loop()
        where = f"{self._where(shard)} (bytes {offset}-)"
        await loop.run_in_executor(decode_pool(), lambda: place(key, self._decode(data, where)))

    async def _local_chunks(self, keys: list[tuple[int, int]], place: Placer) -> None:
        """Chunks of a local store, read, decoded and placed in the decode threads in two
        batches (an executor hop per chunk costs as much as decoding a small one)."""
        todo = []
        for key in keys:
            offset, nbytes = self._location(key)
            if offset == _EMPTY:
                place(key, np.full(self.chunk, self.fill_value, dtype=self.dtype))
            else:
                path = os.path.join(str(self.local_root), self._key(self._shard_of(key)))
                todo.append((key, path, int(offset), int(nbytes)))
        loop = asyncio.get_running_loop()
        parts = [todo[i::2] for i in range(2) if todo[i::2]]
        await gather_or_cancel(
            [
                loop.run_in_executor(decode_pool(), self._read_local_many, part, place)
                for part in parts
            ]
        )

    def _read_local_many(self, todo: list[tuple[Any, str, int, int]], place: Placer) -> None:
        for key, path, offset, nbytes in todo:
            place(key, self._read_local(path, offset, nbytes))

    def _location(self, key: tuple[int, int]) -> tuple[Any, Any]:
        """``(offset, nbytes)`` of a chunk in its shard (its index must be loaded)."""
        trial_chunk, frame_chunk = key
        within = [trial_chunk % self.grid[0]] + [0] * (len(self.shape) - 1)
        if len(self.shape) > 2:
            within[-1] = frame_chunk % self.grid[-1]
        offset, nbytes = self.indexes[self._shard_of(key)][tuple(within)]
        if offset == _EMPTY and self.strict:
            raise MissingChunkError(
                f"{self._where(self._shard_of(key))}: inner chunk {tuple(within)} was never "
                "written, but the converter writes every chunk; the shard is damaged"
            )
        return offset, nbytes

    def _read_local(self, path: str, offset: int, nbytes: int) -> np.ndarray:
        """Read and decode one chunk of a local shard (in a decode thread)."""
        fd = self._fd(path)
        data = os.pread(fd, nbytes, offset)
        if len(data) != nbytes:
            raise RemoteReadError(f"{path}: expected {nbytes} bytes at {offset}, got {len(data)}")
        with self._lock:
            self.bytes_read += nbytes
        return self._decode(data, f"{path} (bytes {offset}-)")

    def _decode(self, data: Any, where: str) -> np.ndarray:
        """One chunk's bytes, decompressed, as an array of the chunk's shape."""
        try:
            decoded = self.codec.decode(data)
            return np.frombuffer(decoded, dtype=self.dtype.newbyteorder("<")).reshape(self.chunk)
        except (RuntimeError, ValueError) as exc:
            raise RemoteReadError(
                f"{where}: chunk does not decode ({exc}); the shard is damaged"
            ) from None
