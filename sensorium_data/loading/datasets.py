"""Torch datasets over a store: whole batches per read, lazily opened in every process.

:class:`MouseDataset` holds only picklable configuration (URL, mouse, trial and neuron
selection, :class:`SampleOptions`); the store, its arrays, the statistics and the normaliser are
opened on first use in each process, so DataLoader workers work with fork, forkserver and spawn
and no open handle crosses a fork. ``__getitems__`` makes a whole batch at once: streamed, every
chunk it needs fetched in one concurrent round and copied into the preallocated batch; in
memory (or on a device), one gather per array (2023: one slice copy per window). Samples are
plain dicts of float32 tensors with the official key names and shapes, plus ``trial`` (file
indices; 2023 also ``frame_start`` and ``valid_frames``), on the host or on ``device``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm
from zarr.core.sync import _get_loop, sync

from ..conventions import usable_frames
from ..store.access import (
    gather_or_cancel,
    open_root,
    open_statistics,
    read_mice,
    resolve_mouse,
    store_url,
)
from ..store.schema import EVERY_CHUNK_WRITTEN
from .chunkread import decode_pool, reader_for
from .gather import DeviceMemoryError, device_free_bytes, gather_dynamic, gather_static
from .normalize import KeyNormalizer, Normalizer
from .options import BatchPlan, OpenedMouse, SampleOptions
from .transforms import rescale_images, rescaled_size

__all__ = ["RESIDENT_BYTES", "BatchPlan", "MouseDataset", "OpenedMouse", "SampleOptions"]

#: Arrays of at most this many bytes (2022 behaviour and pupil centre: 12 and 8 bytes a trial;
#: 2023: 2.4 KB a trial) are read whole once per process and indexed in RAM; larger ones are
#: streamed chunk by chunk, so memory stays bounded whatever the number of trials.
RESIDENT_BYTES = 32 * 2**20
#: Prefetched batches a dataset holds at most (see :meth:`MouseDataset.prefetch`).
MAX_PENDING = 8


async def trial_rows(arr: Any, trials: np.ndarray) -> np.ndarray:
    """``arr[trials]`` through zarr, by reading whole runs of the chunks that hold them as plain
    slices (for arrays :class:`~sensorium_data.loading.chunkread.ChunkReader` does not read).

    zarr's integer (orthogonal) indexing through a sharded array costs about 4x more than
    slicing the same chunks and picking the rows in numpy.
    """
    step = arr.chunks[0]
    chunk_ids = np.unique(trials // step)
    runs = np.split(chunk_ids, np.flatnonzero(np.diff(chunk_ids) > 1) + 1)
    spans = [(int(r[0]) * step, min((int(r[-1]) + 1) * step, arr.shape[0])) for r in runs]
    reads = [arr._async_array.getitem(slice(a, b)) for a, b in spans]
    blocks = [np.asarray(b) for b in await gather_or_cancel(reads)]
    starts = np.array([a for a, _ in spans])
    which = np.searchsorted(starts, trials, side="right") - 1
    out = np.empty((len(trials), *arr.shape[1:]), dtype=arr.dtype)
    for j, (w, t) in enumerate(zip(which, trials, strict=True)):
        out[j] = blocks[w][t - starts[w]]
    return out


async def _zarr_read(arr: Any, trials: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Windows through zarr itself, for arrays :class:`ChunkReader` does not read."""
    if length == arr.shape[-1]:
        return await trial_rows(arr, trials)
    sels = [
        (int(t), Ellipsis, slice(int(s), int(s) + length))
        for t, s in zip(trials, starts, strict=True)
    ]
    parts = await gather_or_cancel([arr._async_array.getitem(sel) for sel in sels])
    return np.stack([np.asarray(p) for p in parts])


def _cut(rows: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """``rows[j, ..., starts[j] : starts[j] + length]`` for every ``j``."""
    if length == rows.shape[-1]:
        return rows
    return np.stack([r[..., s : s + length] for r, s in zip(rows, starts, strict=True)])


class MouseDataset(Dataset):  # type: ignore[type-arg]
    """One mouse's selected trials of a store, as official-style samples.

    Parameters
    ----------
    url, mouse, storage_options
        The store (any fsspec URL) and the mouse's short data key.
    trials
        File indices of the trials, ascending (dataset position ``i`` is ``trials[i]``).
    neurons
        Positions along the neuron axis to keep (``None``: all).
    options
        :class:`SampleOptions`.
    in_memory
        Read the selected arrays once per process, normalise them once and serve batches from
        RAM (2022: one gather per array and batch; 2023: one slice copy per window).
    device
        With ``in_memory``: place the model-ready arrays on this torch device and gather every
        batch there (``None``: host memory). ``memory_limit`` bytes at most.
    retries
        Transient errors of each remote read are retried this many times
        (:class:`~sensorium_data.store.access.RetryingStore`).
    resident_bytes
        When streaming, arrays of at most this many bytes are read whole once per process
        (see :data:`RESIDENT_BYTES`); ``0`` streams every array.

    Notes
    -----
    Streamed batches are normalised in float32 as each chunk is decoded, straight into the
    batch (:class:`~.normalize.KeyNormalizer`); in-memory arrays are normalised by the same
    code once, so every mode gives the same batches bit for bit.
    """

    def __init__(
        self,
        url: Any,
        mouse: str,
        *,
        trials: np.ndarray,
        neurons: np.ndarray | None = None,
        options: SampleOptions | None = None,
        storage_options: dict[str, Any] | None = None,
        in_memory: bool = False,
        retries: int = 4,
        resident_bytes: int = RESIDENT_BYTES,
        device: str | torch.device | None = None,
        memory_limit: int | None = None,
    ) -> None:
        self.url = store_url(url)
        self.mouse = mouse
        self.trials = np.asarray(trials, dtype=np.int64)
        self.neurons = None if neurons is None else np.asarray(neurons, dtype=np.int64)
        self.options = options or SampleOptions()
        self.storage_options = storage_options
        self.in_memory = in_memory
        self.retries = retries
        self.resident_bytes = resident_bytes
        self.device = None if device is None else torch.device(device)
        self.memory_limit = memory_limit
        self._opened: OpenedMouse | None = None
        self._pid = -1
        self._pending: dict[tuple[int, ...], Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_opened"], state["_pid"] = None, -1  # reopened lazily in the new process
        state["_pending"] = {}
        return state

    def __len__(self) -> int:
        return len(self.trials)

    # -- opening --------------------------------------------------------------------------------
    @property
    def opened(self) -> OpenedMouse:
        """This process's :class:`OpenedMouse` (opened on first use, again after a fork)."""
        if self._opened is None or self._pid != os.getpid():
            self._pending = {}  # a fork's copy: the futures belong to the parent
            self._opened = self._open()
            self._pid = os.getpid()
        return self._opened

    def _open(self) -> OpenedMouse:
        root, _ = open_root(self.url, self.storage_options, retries=self.retries)
        mouse = resolve_mouse(read_mice(root, self.url), self.mouse, self.url)
        group = root[mouse]
        meta = dict(group.attrs)["sensorium"]
        keys = [n for n, i in meta["variables"].items() if i["source"].startswith("data/")]
        arrays = {k: group[k] for k in keys}
        normalizer = None
        if self.options.normalize:
            stats = open_statistics(self.url, mouse, self.storage_options)
            normalizer = Normalizer.from_statistics(
                stats,
                kind=meta["kind"],
                source=self.options.stats_source,
                threshold_reduction=self.options.threshold_reduction,
            )
        norms = {
            k: KeyNormalizer(key=k, neurons=self.neurons if k == "responses" else None)
            if normalizer is None
            else normalizer.for_key(k, self.neurons)
            for k in keys
        }
        opened = OpenedMouse(
            kind=meta["kind"],
            arrays=arrays,
            valid=group["valid_frames"][...] if "valid_frames" in group else None,
            norms=norms,
        )
        scaled = meta.get("scaled", {}).get(repr(float(self.options.scale)))
        if scaled is not None and "images" in arrays and _commutes(normalizer):
            arrays["images"] = group[scaled]
            opened.prescaled = True
        if self.in_memory or self.device is not None:
            ready = {
                k: torch.from_numpy(v)
                for k, v in self._model_ready(opened, bool(meta.get(EVERY_CHUNK_WRITTEN))).items()
            }
            opened.ready = ready if self.device is None else self._place(ready)
        else:
            opened.resident = {
                k: a[...] for k, a in arrays.items() if a.nbytes <= self.resident_bytes
            }
            opened.readers = {
                k: reader_for(a, strict=bool(meta.get(EVERY_CHUNK_WRITTEN)))
                for k, a in arrays.items()
                if k not in opened.resident
            }
        return opened

    def _model_ready(self, opened: OpenedMouse, strict: bool, block: int = 32) -> dict[str, Any]:
        """Every array of the dataset's trials (row ``j`` is ``self.trials[j]``) normalised
        and neuron-selected once, float32, contiguous; images (videos) also rescaled where no
        stored copy has the scale. 2023 trials are whole (padded) and normalised from frame 0:
        a window gathered from them equals the window normalised on its own, element by
        element with the same float32 factors.

        A block of trials at a time is read by the chunk reader straight into the final array
        and normalised there (no copy of the stored values is held; a stimulus that is
        rescaled, or an array of another layout, is read through zarr a block at a time), with
        a progress bar when it takes a while.
        """
        out = {}
        n = len(self.trials)
        bar = tqdm(
            total=n * len(opened.arrays),
            desc=f"{self.mouse} into memory",
            unit="trial",
            disable=n * sum(a.nbytes // max(a.shape[0], 1) for a in opened.arrays.values()) < 2**30,
            leave=False,
        )
        with bar:
            for key, arr in opened.arrays.items():
                norm = opened.norms[key]
                rescale = key in ("images", "videos") and not self._fused(opened)
                dest = np.empty((n, *self._shape(opened, key)), dtype=np.float32)
                reader = None if rescale else reader_for(arr, strict=strict)
                frame = 0 if opened.dynamic else None
                for a in range(0, n, block):
                    trials = self.trials[a : a + block]
                    into = dest[a : a + len(trials)]
                    if reader is not None:  # read into the final array, normalise in place
                        zeros = np.zeros(len(trials), dtype=np.int64)
                        sync(
                            reader.read(trials, zeros, arr.shape[-1], out=into, select=norm.neurons)
                        )
                        norm.apply(into, into, frame)
                    else:
                        part = norm(arr.get_orthogonal_selection((trials,)), frame=frame)
                        into[...] = self._rescale(part, opened.dynamic) if rescale else part
                    bar.update(len(trials))
                out[key] = dest
        return out

    def _rescale(self, values: np.ndarray, dynamic: bool) -> np.ndarray:
        """Images ``(B, C, H, W)``, or videos in the stored layout ``(B, H, W, T)``, rescaled
        as the kits' ScaleInputs (every frame on its own)."""
        if not dynamic:
            return rescale_images(values, self.options.scale)
        scaled = rescale_images(np.moveaxis(values, -1, 1), self.options.scale)
        return np.ascontiguousarray(np.moveaxis(scaled, 1, -1))

    def _shape(self, opened: OpenedMouse, key: str) -> tuple[int, ...]:
        """One trial's model-ready shape of ``key`` (before behaviour channels)."""
        shape = list(opened.arrays[key].shape[1:])
        if key == "responses" and self.neurons is not None:
            shape[0] = len(self.neurons)
        if key in ("images", "videos") and not self._fused(opened):
            at = slice(-2, None) if key == "images" else slice(0, 2)  # videos: (H, W, T)
            shape[at] = [rescaled_size(n, self.options.scale) for n in shape[at]]
        return tuple(shape)

    def _place(self, ready: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The model-ready tensors on ``self.device``, if they fit (else a one-line error)."""
        device = self.device
        assert device is not None
        needed = sum(t.numel() * t.element_size() for t in ready.values())
        free = device_free_bytes(device)
        for room, what in ((free, "bytes free"), (self.memory_limit, "bytes of memory_budget")):
            if room is not None and needed > room:
                raise DeviceMemoryError(
                    f"mouse {self.mouse}: its {len(self)} selected trials need {needed:,} bytes "
                    f"on {device}, which has {room:,} {what}; select fewer trials or neurons, "
                    "or leave device unset to stream"
                )
        return {k: t.to(device) for k, t in ready.items()}

    @property
    def bytes_read(self) -> int:
        """Bytes of chunk data this process has fetched for streamed batches (not counting
        shard indexes, resident arrays or zarr fallback reads)."""
        if self._opened is None or self._pid != os.getpid():
            return 0
        return sum(r.bytes_read for r in self._opened.readers.values() if r is not None)

    # -- batches --------------------------------------------------------------------------------
    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}

    def __getitems__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        opened = self.opened
        pending = self._pending.pop(tuple(positions), None)
        if opened.ready is not None:
            plan = self._plan(opened, positions) if pending is None else pending[0]
            if opened.dynamic:
                return self._gather_dynamic(opened, opened.ready, plan)
            return self._gather_static(opened.ready, plan)
        if pending is None:
            plan = self._plan(opened, positions)
            got = sync(self._read(opened, plan))
        else:
            plan, future = pending
            got = future.result()
        return self._assemble(opened, plan, got)

    def prefetch(self, positions: list[int]) -> None:
        """Start reading the batch at ``positions`` in the background (on zarr's I/O thread;
        chunks are decoded and normalised into the batch in the decode threads).

        The next ``__getitems__(positions)`` in this process takes the result instead of
        reading; errors surface there. At most :data:`MAX_PENDING` batches are held (older
        ones are dropped). ``make_loaders`` calls this a few batches ahead when
        ``num_workers=0``. 2023 windows are drawn here, in batch order.
        """
        opened = self.opened
        plan = self._plan(opened, positions)
        if opened.ready is not None:  # in memory: nothing to read ahead, the plan is kept
            self._pending[tuple(positions)] = (plan, None)
            return
        future = asyncio.run_coroutine_threadsafe(self._read(opened, plan), _get_loop())
        self._pending[tuple(positions)] = (plan, future)
        while len(self._pending) > MAX_PENDING:
            dropped = self._pending.pop(next(iter(self._pending)))[1]
            if dropped is not None:
                dropped.cancel()

    def discard(self, positions: list[int] | None = None) -> None:
        """Drop the prefetched batch at ``positions`` (``None``: all of them)."""
        keys = list(self._pending) if positions is None else [tuple(positions)]
        for key in keys:
            entry = self._pending.pop(key, None)
            if entry is not None and entry[1] is not None:
                entry[1].cancel()

    def _plan(self, opened: OpenedMouse, positions: Any) -> BatchPlan:
        """Which trials, and (2023) which window of each, a batch holds."""
        rows = np.asarray(positions, dtype=np.int64)
        trials = self.trials[rows]
        if not opened.dynamic:
            zeros = np.zeros(len(trials), dtype=np.int64)
            return BatchPlan(rows, trials, zeros, zeros, None)
        starts, lengths = self._window(opened, trials)
        length = int(lengths.max()) if len(lengths) else 0
        for reader in opened.readers.values():
            if reader is not None:
                reader.check(trials, starts, length)
        return BatchPlan(rows, trials, starts, lengths, length)

    def _window(self, opened: OpenedMouse, trials: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and length of each trial's window."""
        n_frames = next(a.shape[-1] for a in opened.arrays.values())
        if self.options.cut_valid and opened.valid is not None:
            valid = usable_frames(opened.valid[trials], n_frames, self.options.scored_frames)
        else:
            valid = np.full(len(trials), n_frames)
        if self.options.max_frame is not None:
            valid = np.minimum(valid, self.options.max_frame)
        frames = self.options.frames
        if frames is None:
            return np.zeros(len(trials), dtype=np.int64), valid.astype(np.int64)
        short = trials[valid < frames]
        if len(short):
            raise ValueError(
                f"mouse {self.mouse}: trials {short.tolist()} have fewer valid frames than "
                f"frames={frames}"
            )
        if self.options.frame_offset is not None:
            starts = np.full(len(trials), self.options.frame_offset, dtype=np.int64)
            late = trials[starts + frames > valid]
            if len(late):
                raise ValueError(
                    f"mouse {self.mouse}: frame_offset={self.options.frame_offset} + "
                    f"frames={frames} runs past the valid frames of trials {late.tolist()}"
                )
        else:
            # as the kit: np.random.randint(0, valid - frames), so a window never ends on the
            # last valid frame, except that a trial exactly ``frames`` long starts at 0
            high = torch.as_tensor(np.maximum(valid - frames, 1), dtype=torch.float64)
            starts = (torch.rand(len(trials), dtype=torch.float64) * high).long().numpy()
        return starts, np.full(len(trials), frames, dtype=np.int64)

    # -- streamed batches -----------------------------------------------------------------------
    def _fused(self, opened: OpenedMouse) -> bool:
        """Whether the stimulus is normalised straight into the batch (no rescale after)."""
        return self.options.scale == 1 or (not opened.dynamic and opened.prescaled)

    def _extras(self) -> list[str]:
        """The keys written into the stimulus batch as constant channels."""
        if not self.options.include_behavior:
            return []
        return ["behavior", "pupil_center"] if self.options.include_pupil else ["behavior"]

    def _stimulus_batch(
        self, opened: OpenedMouse, key: str, n: int, length: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The preallocated stimulus batch (behaviour channels included) and the view of it
        that the stored stimulus values are normalised into (stored layout)."""
        shape = self._shape(opened, key)
        channels = sum(opened.arrays[k].shape[1] for k in self._extras())
        if key == "images":
            batch = np.empty((n, shape[0] + channels, *shape[1:]), dtype=np.float32)
            return batch, batch[:, : shape[0]]
        h, w = shape[0], shape[1]
        batch = np.empty((n, 1 + channels, length or 0, h, w), dtype=np.float32)
        return batch, batch[:, 0].transpose(0, 2, 3, 1)  # (B, T, H, W) -> stored (B, H, W, T)

    async def _read(self, opened: OpenedMouse, plan: BatchPlan) -> dict[str, np.ndarray]:
        """Every key of a batch, normalised (float32) into preallocated arrays; the stored
        stimulus straight into the model's batch when nothing has to be rescaled after."""
        trials, n = plan.trials, len(plan.trials)
        dynamic = opened.dynamic
        length = plan.length
        out: dict[str, np.ndarray] = {}
        dest: dict[str, np.ndarray] = {}
        layout: dict[str, np.ndarray] = {}  # the batch's view of a key read elsewhere first
        for key in opened.arrays:
            if key == "images" and self._fused(opened):
                out[key], dest[key] = self._stimulus_batch(opened, key, n, length)
            elif key == "videos" and self._fused(opened):  # read and normalised contiguous,
                out[key], layout[key] = self._stimulus_batch(opened, key, n, length)
                dest[key] = np.empty(layout[key].shape, dtype=np.float32)  # moved in after
            else:
                shape = list(opened.arrays[key].shape[1:])
                if key == "responses" and self.neurons is not None:
                    shape[0] = len(self.neurons)
                if dynamic:
                    shape[-1] = length or 0
                out[key] = dest[key] = np.empty((n, *shape), dtype=np.float32)
        loop = asyncio.get_running_loop()

        async def one(key: str) -> None:
            arr, norm = opened.arrays[key], opened.norms[key]
            size = length if length is not None else arr.shape[-1]
            reader = opened.readers.get(key)
            raw = None
            if key in opened.resident:
                raw = _cut(opened.resident[key][trials], plan.starts, size)
            elif reader is not None:  # chunks copied into the batch as they are decoded
                await reader.read(trials, plan.starts, size, out=dest[key], select=norm.neurons)
            else:
                raw = await _zarr_read(arr, trials, plan.starts, size)
            normalise = norm.apply if raw is None else norm  # in place, or selecting neurons
            values = dest[key] if raw is None else raw
            float_data = np.dtype(arr.dtype).kind == "f"

            def finish() -> None:
                """Normalise into the batch; 2023: each window with its own frames."""
                if not dynamic:
                    normalise(values, dest[key])
                    return
                for j, start in enumerate(plan.starts.tolist()):
                    normalise(values[j : j + 1], dest[key][j : j + 1], start)
                    if float_data and plan.lengths[j] < size:  # past a short trial's frames
                        dest[key][j, ..., plan.lengths[j] :] = np.nan
                if key in layout:  # (B, H, W, T) into the batch's (B, T, H, W) channel
                    layout[key][...] = dest[key]

            await loop.run_in_executor(decode_pool(), finish)

        await gather_or_cancel([one(key) for key in opened.arrays])
        return out

    def _assemble(
        self, opened: OpenedMouse, plan: BatchPlan, got: dict[str, np.ndarray]
    ) -> dict[str, torch.Tensor]:
        """The batch's tensors: the stimulus rescaled (if it has to be) and its behaviour
        channels written in."""
        stimulus = "videos" if opened.dynamic else "images"
        if stimulus in got:
            values = got[stimulus]
            if not self._fused(opened):  # normalised in the stored layout: rescale, lay out
                values = self._rescale(values, opened.dynamic)
                if opened.dynamic:  # (B, H, W, T) -> (B, 1, T, H, W)
                    values = np.moveaxis(values, -1, 1)[:, None]
                c = values.shape[1]
                channels = sum(got[k].shape[1] for k in self._extras())
                batch = np.empty((values.shape[0], c + channels, *values.shape[2:]), np.float32)
                batch[:, :c] = values
                values = batch
            c = values.shape[1] - sum(got[k].shape[1] for k in self._extras())
            for key in self._extras():  # (B, k) -> (B, k, 1, 1); 2023 (B, k, T) -> (B, k, T, 1, 1)
                extra = got[key]
                values[:, c : c + extra.shape[1]] = extra[..., None, None]
                c += extra.shape[1]
            got[stimulus] = values
        batch = {k: torch.from_numpy(v) for k, v in got.items()}
        batch["trial"] = torch.as_tensor(plan.trials)
        if opened.dynamic:
            batch["frame_start"] = torch.as_tensor(plan.starts)
            batch["valid_frames"] = torch.as_tensor(plan.lengths)
        return batch

    # -- in-memory batches (host or device) -----------------------------------------------------
    def _gather_static(self, ready: dict[str, torch.Tensor], plan: BatchPlan) -> dict[str, Any]:
        return gather_static(ready, plan, self._extras())

    def _gather_dynamic(
        self, opened: OpenedMouse, ready: dict[str, torch.Tensor], plan: BatchPlan
    ) -> dict[str, Any]:
        floats = {k for k, a in opened.arrays.items() if np.dtype(a.dtype).kind == "f"}
        return gather_dynamic(ready, plan, self._extras(), floats)


def _commutes(normalizer: Normalizer | None) -> bool:
    """Whether normalising the stored rescaled images equals rescaling normalised ones: true
    for scalar image statistics (rescaling is linear with weights summing to 1)."""
    return normalizer is None or (
        np.size(normalizer.mean.get("images", 0)) == 1
        and np.size(normalizer.std.get("images", 1)) == 1
    )
