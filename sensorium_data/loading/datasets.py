"""Torch datasets over a store: whole batches per read, lazily opened in every process.

:class:`MouseDataset` holds only picklable configuration (URL, mouse, trial and neuron
selection, :class:`SampleOptions`); the store, its arrays, the statistics and the normaliser are
opened on first use in each process, so DataLoader workers work with fork, forkserver and spawn
and no open handle crosses a fork. ``__getitems__`` reads a whole batch per array (2022: one
orthogonal read; 2023: one window per trial, fetched concurrently). Samples are plain dicts of
float32 CPU tensors with the official key names and shapes, plus ``trial`` (file indices).
Nothing is moved to a device here.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from zarr.core.sync import _get_loop, sync

from ..conventions import DEFAULT_SCORED_FRAMES, parse_scored_frames, usable_frames
from ..errors import SensoriumDataError
from ..store.access import (
    gather_or_cancel,
    open_root,
    open_statistics,
    read_mice,
    resolve_mouse,
    store_url,
)
from ..store.schema import EVERY_CHUNK_WRITTEN
from .chunkread import reader_for
from .normalize import Normalizer
from .transforms import add_behavior_channels, rescale_images

__all__ = ["RESIDENT_BYTES", "MouseDataset", "SampleOptions"]

#: Arrays of at most this many bytes (2022 behaviour and pupil centre: 12 and 8 bytes a trial;
#: 2023: 2.4 KB a trial) are read whole once per process and indexed in RAM; larger ones are
#: streamed chunk by chunk, so memory stays bounded whatever the number of trials.
RESIDENT_BYTES = 32 * 2**20
#: Prefetched batches a dataset holds at most (see :meth:`MouseDataset.prefetch`).
MAX_PENDING = 8


@dataclass(frozen=True, kw_only=True)
class SampleOptions:
    """How a sample is made, as in the official loaders (docs/format.md, normalisation).

    Attributes
    ----------
    normalize
        Apply the official normaliser (:class:`~sensorium_data.loading.normalize.Normalizer`).
    stats_source, threshold_reduction
        Statistics subfolder (``all``) and the reduction of the response threshold
        (``nanmean``, as later neuralpredictors; ``mean`` as 0.3.0).
    scale
        Image/video rescale factor (0.25 turns 144x256 into 36x64), as the kit's ScaleInputs.
    include_behavior, include_pupil
        Append behaviour (and pupil centre) as constant image channels.
    frames
        2023: window length; ``None`` keeps each trial's whole (valid) length, padding the
        batch with NaN to its longest trial.
    frame_offset
        2023: fixed window start; ``None`` draws a random start per sample (uniform over the
        valid range, from torch's generator, so DataLoader seeding makes it reproducible).
    max_frame
        2023: ignore frames from this index on.
    cut_valid
        2023: cut every key at the trial's valid length (``valid_frames``).
    scored_frames
        2023, with ``cut_valid``: ``"competition"`` (default) also drops the last valid frame
        of every NaN-padded trial, as the competition-era kit's loader did (its frames were
        the ones scored: 249 of a 300-frame trial, see :mod:`sensorium_data.conventions`);
        ``"kit-head"`` keeps it, as the 2023 kit at HEAD.
    """

    normalize: bool = True
    stats_source: str = "all"
    threshold_reduction: str = "nanmean"
    scale: float = 1.0
    include_behavior: bool = False
    include_pupil: bool = False
    frames: int | None = None
    frame_offset: int | None = None
    max_frame: int | None = None
    cut_valid: bool = True
    scored_frames: str = DEFAULT_SCORED_FRAMES

    def __post_init__(self) -> None:
        parse_scored_frames(self.scored_frames)
        if self.scale <= 0:
            raise ValueError(f"scale must be positive, got {self.scale!r}")
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"frames must be a positive integer, got {self.frames!r}")
        if self.frame_offset is not None and self.frame_offset < 0:
            raise ValueError(f"frame_offset must be >= 0, got {self.frame_offset!r}")


class DeviceMemoryError(SensoriumDataError, MemoryError):
    """A mouse's model-ready arrays do not fit the device (or the memory budget) asked for."""


def device_free_bytes(device: torch.device) -> int | None:
    """Free memory of a torch device in bytes (CUDA: from the driver); ``None`` for the host,
    where the arrays are built in the first place, and devices that do not say."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return None


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
        Read the selected arrays once per process and serve batches from RAM.
    device
        2022, with ``in_memory``: place the model-ready arrays on this torch device and gather
        every batch there (``None``: host memory). ``memory_limit`` bytes at most.
    retries
        Transient errors of each remote read are retried this many times
        (:class:`~sensorium_data.store.access.RetryingStore`).
    resident_bytes
        When streaming, arrays of at most this many bytes are read whole once per process
        (see :data:`RESIDENT_BYTES`); ``0`` streams every array.
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
        self._opened: dict[str, Any] | None = None
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
    def opened(self) -> dict[str, Any]:
        if self._opened is None or self._pid != os.getpid():
            self._pending = {}  # a fork's copy: the futures belong to the parent
            self._opened = self._open()
            self._pid = os.getpid()
        return self._opened

    def _open(self) -> dict[str, Any]:
        root, _ = open_root(self.url, self.storage_options, retries=self.retries)
        mouse = resolve_mouse(read_mice(root, self.url), self.mouse, self.url)
        group = root[mouse]
        meta = dict(group.attrs)["sensorium"]
        keys = [n for n, i in meta["variables"].items() if i["source"].startswith("data/")]
        opened: dict[str, Any] = {
            "kind": meta["kind"],
            "arrays": {k: group[k] for k in keys},
            "valid": group["valid_frames"][...] if "valid_frames" in group else None,
            "memory": None,
            "ready": None,
            "normalized": False,
            "prescaled": False,
        }
        if self.options.normalize:
            stats = open_statistics(self.url, mouse, self.storage_options)
            opened["normalizer"] = Normalizer.from_statistics(
                stats,
                kind=meta["kind"],
                source=self.options.stats_source,
                threshold_reduction=self.options.threshold_reduction,
            )
        scaled = meta.get("scaled", {}).get(repr(float(self.options.scale)))
        if scaled is not None and "images" in opened["arrays"] and self._commutes(opened):
            opened["arrays"]["images"] = group[scaled]
            opened["prescaled"] = True
        opened["resident"], opened["readers"] = {}, {}
        if self.in_memory:
            opened["memory"] = {
                k: a.get_orthogonal_selection((self.trials,)) for k, a in opened["arrays"].items()
            }
            if opened["kind"] == "static":
                ready = {
                    k: torch.from_numpy(np.ascontiguousarray(v))
                    for k, v in self._model_ready(opened).items()
                }
                opened["memory"] = None  # the model-ready copy replaces the stored values
                opened["ready"] = ready if self.device is None else self._place(ready)
            else:  # 2023: whole trials normalised once; windows are cut per batch
                opened["memory"] = self._model_ready(opened)
                opened["normalized"] = True
        else:
            opened["resident"] = {
                k: a[...] for k, a in opened["arrays"].items() if a.nbytes <= self.resident_bytes
            }
            opened["readers"] = {
                k: reader_for(a, strict=bool(meta.get(EVERY_CHUNK_WRITTEN)))
                for k, a in opened["arrays"].items()
                if k not in opened["resident"]
            }
        return opened

    def _model_ready(self, opened: dict[str, Any], block: int = 32) -> dict[str, np.ndarray]:
        """In memory: every array of the dataset's trials (row ``j`` is ``self.trials[j]``)
        normalised and neuron-selected once, float32, a block of trials at a time (so the
        float64 temporaries stay block-sized); 2022 images also rescaled. 2023 trials are whole
        (padded) and normalised from frame 0: a window cut from them equals the window
        normalised on its own, since the per-frame statistics are indexed by the same frames.

        Each value is computed by the same code, element by element, as a streamed batch's, so
        batches made from here equal streamed ones bit for bit.
        """
        dynamic = opened["kind"] == "dynamic"
        rescale = not dynamic and self.options.scale != 1 and not opened["prescaled"]
        out = {}
        for key, rows in opened["memory"].items():
            parts = []
            for a in range(0, len(rows), block):
                chunk = rows[a : a + block]
                starts = np.zeros(len(chunk), np.int64) if dynamic else None
                part = self._finish(opened, key, chunk, starts)
                parts.append(
                    rescale_images(part, self.options.scale)
                    if key == "images" and rescale
                    else part
                )
            out[key] = np.concatenate(parts) if parts else rows.astype(np.float32)
        return out

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

    def _gather_static(self, ready: dict[str, torch.Tensor], positions: Any) -> dict[str, Any]:
        """A 2022 batch from the model-ready tensors: one gather per array; the behaviour (and
        pupil) channels are written into the preallocated image batch, not concatenated."""
        where = next(iter(ready.values())).device
        rows = np.asarray(positions, dtype=np.int64)
        index = torch.as_tensor(rows, device=where)
        out = {k: torch.index_select(v, 0, index) for k, v in ready.items() if k != "images"}
        if "images" in ready:
            images = ready["images"]
            extras = []
            if self.options.include_behavior:
                extras.append(out["behavior"])
                if self.options.include_pupil:
                    extras.append(out["pupil_center"])
            if extras:
                c = images.shape[1]
                n = c + sum(e.shape[1] for e in extras)
                batch = torch.empty(
                    (len(index), n, *images.shape[2:]), dtype=torch.float32, device=where
                )
                batch[:, :c] = images[index]
                for e in extras:
                    batch[:, c : c + e.shape[1]] = e[:, :, None, None]
                    c += e.shape[1]
                out["images"] = batch
            else:
                out["images"] = torch.index_select(images, 0, index)
        out["trial"] = torch.as_tensor(self.trials[rows], device=where)
        return out

    @staticmethod
    def _commutes(opened: dict[str, Any]) -> bool:
        """Whether normalising the stored rescaled images equals rescaling normalised ones:
        true for scalar image statistics (rescaling is linear with weights summing to 1)."""
        norm = opened.get("normalizer")
        return norm is None or (
            np.size(norm.mean.get("images", 0)) == 1 and np.size(norm.std.get("images", 1)) == 1
        )

    @property
    def bytes_read(self) -> int:
        """Bytes of chunk data this process has fetched for streamed batches (not counting
        shard indexes, resident arrays or zarr fallback reads)."""
        if self._opened is None or self._pid != os.getpid():
            return 0
        readers = self._opened.get("readers", {}).values()
        return sum(r.bytes_read for r in readers if r is not None)

    # -- reading --------------------------------------------------------------------------------
    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}

    def __getitems__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        opened = self.opened
        pending = self._pending.pop(tuple(positions), None)
        if opened["ready"] is not None:
            return self._gather_static(opened["ready"], positions)
        if pending is None:
            plan = self._plan(opened, positions)
            raw = sync(self._read(opened, plan))
        else:
            plan, future = pending
            raw = future.result()
        if opened["kind"] == "dynamic":
            return self._dynamic_batch(opened, plan, raw)
        return self._static_batch(opened, plan, raw)

    def prefetch(self, positions: list[int]) -> None:
        """Start reading the batch at ``positions`` in the background (on zarr's I/O thread).

        The next ``__getitems__(positions)`` in this process takes the result instead of
        reading; errors surface there. At most :data:`MAX_PENDING` batches are held (older
        ones are dropped). ``make_loaders`` calls this a few batches ahead when
        ``num_workers=0``. 2023 windows are drawn here, in batch order.
        """
        opened = self.opened
        if opened["ready"] is not None:  # in memory, model-ready: nothing to read ahead
            return
        plan = self._plan(opened, positions)
        future = asyncio.run_coroutine_threadsafe(self._read(opened, plan), _get_loop())
        self._pending[tuple(positions)] = (plan, future)
        while len(self._pending) > MAX_PENDING:
            self._pending.pop(next(iter(self._pending)))[1].cancel()

    def discard(self, positions: list[int] | None = None) -> None:
        """Drop the prefetched batch at ``positions`` (``None``: all of them)."""
        keys = list(self._pending) if positions is None else [tuple(positions)]
        for key in keys:
            entry = self._pending.pop(key, None)
            if entry is not None:
                entry[1].cancel()

    def _plan(self, opened: dict[str, Any], positions: Any) -> dict[str, Any]:
        """Which trials and which frames of each array a batch reads."""
        trials = self.trials[np.asarray(positions, dtype=np.int64)]
        plan: dict[str, Any] = {"positions": list(positions), "trials": trials}
        if opened["kind"] == "dynamic":
            starts, lengths = self._window(opened, trials)
            length = int(lengths.max()) if len(lengths) else 0
            plan.update(starts=starts, lengths=lengths)
            plan["windows"] = {k: (starts, length) for k in opened["arrays"]}
        else:
            zeros = np.zeros(len(trials), dtype=np.int64)
            plan["windows"] = {k: (zeros, a.shape[-1]) for k, a in opened["arrays"].items()}
        for key, (starts, length) in plan["windows"].items():
            reader = opened["readers"].get(key) if opened["memory"] is None else None
            if reader is not None:
                reader.check(trials, starts, length)
        return plan

    async def _read(self, opened: dict[str, Any], plan: dict[str, Any]) -> dict[str, np.ndarray]:
        """Each array's window ``(starts, length)`` of every trial, last axis (whole rows of
        arrays without frames); the streamed ones in one concurrent round of requests."""
        trials, windows = plan["trials"], plan["windows"]
        out: dict[str, np.ndarray] = {}
        streamed, fallback = [], []
        for key, (starts, length) in windows.items():
            if opened["memory"] is not None:
                rows = opened["memory"][key][np.asarray(plan["positions"], dtype=np.int64)]
                out[key] = _cut(rows, starts, length)
            elif key in opened["resident"]:
                out[key] = _cut(opened["resident"][key][trials], starts, length)
            elif opened["readers"][key] is not None:
                streamed.append(key)
            else:
                fallback.append(key)
        reads = [opened["readers"][k].read(trials, *windows[k]) for k in streamed]
        reads += [_zarr_read(opened["arrays"][k], trials, *windows[k]) for k in fallback]
        out.update(zip(streamed + fallback, await gather_or_cancel(reads), strict=True))
        return {k: out[k] for k in windows}

    def _static_batch(
        self, opened: dict[str, Any], plan: dict[str, Any], raw: dict[str, np.ndarray]
    ) -> dict[str, torch.Tensor]:
        out = {k: self._finish(opened, k, v, None) for k, v in raw.items()}
        stimulus = "images" if "images" in out else None
        if stimulus is not None:
            images = out[stimulus]
            if self.options.scale != 1 and not opened["prescaled"]:
                images = rescale_images(images, self.options.scale)
            if self.options.include_behavior:
                pupil = out.get("pupil_center") if self.options.include_pupil else None
                images = add_behavior_channels(images, out["behavior"], pupil)
            out[stimulus] = images
        return self._tensors(out, plan["trials"])

    def _window(self, opened: dict[str, Any], trials: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and length of each trial's window."""
        n_frames = next(a.shape[-1] for a in opened["arrays"].values())
        if self.options.cut_valid and opened["valid"] is not None:
            valid = usable_frames(opened["valid"][trials], n_frames, self.options.scored_frames)
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

    def _dynamic_batch(
        self, opened: dict[str, Any], plan: dict[str, Any], raw: dict[str, np.ndarray]
    ) -> dict[str, torch.Tensor]:
        trials, starts, lengths = plan["trials"], plan["starts"], plan["lengths"]
        out = {}
        for key, block in raw.items():
            if block.dtype.kind == "f":
                for j, n in enumerate(lengths):  # windows past a short trial's valid length
                    block[j, ..., n:] = np.nan
            out[key] = self._finish(opened, key, block, starts)
        if "videos" in out:
            videos = np.moveaxis(out["videos"], -1, 1)[:, None]  # (B,H,W,T) -> (B,1,T,H,W)
            if self.options.scale != 1:
                b, c, t, h, w = videos.shape
                scaled = rescale_images(videos.reshape(b, c * t, h, w), self.options.scale)
                videos = scaled.reshape(b, c, t, *scaled.shape[-2:])
            if self.options.include_behavior:
                pupil = out.get("pupil_center") if self.options.include_pupil else None
                videos = add_behavior_channels(videos, out["behavior"], pupil)
            out["videos"] = videos
        batch = self._tensors(out, trials)
        batch["frame_start"] = torch.as_tensor(starts)
        batch["valid_frames"] = torch.as_tensor(lengths)
        return batch

    def _finish(
        self, opened: dict[str, Any], key: str, values: np.ndarray, starts: np.ndarray | None
    ) -> np.ndarray:
        """Normalise (every neuron's statistics, as the kit does), then keep the selection."""
        if opened["normalized"]:  # in memory, done once when the arrays were read
            return values
        if self.options.normalize:
            values = opened["normalizer"](key, values, frame_start=starts)
        if key == "responses" and self.neurons is not None:
            values = values[:, self.neurons]
        return np.asarray(values, dtype=np.float32)

    @staticmethod
    def _tensors(out: dict[str, np.ndarray], trials: np.ndarray) -> dict[str, torch.Tensor]:
        batch = {
            k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in out.items()
        }
        batch["trial"] = torch.as_tensor(trials)
        return batch
