"""``make_loaders``: the starter kits' ``{tier: {mouse: DataLoader}}`` over a store, fast.

Selection (tiers, neurons by area / layer / unit id / random count, a random subset of training
images) happens on the coordinates, before any data is read. Train tiers are block-shuffled
(:class:`~.samplers.BlockShuffleSampler`); every other tier runs in ascending file
order. :class:`LongCycler` cycles over the mice of a tier like the kit's ``LongCycler``.
"""

from __future__ import annotations

import collections
import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from ..conventions import DEFAULT_SCORED_FRAMES, parse_scored_frames, usable_frames
from ..errors import SchemaError, SensoriumDataError
from ..store.access import check_statistics, open_root, read_mice, resolve_mouse, store_url
from .checks import (
    LoaderArgumentError,
    check_device_options,
    check_frame_options,
    check_loader_kwargs,
    check_tiers,
    check_windows,
    parse_names,
    parse_optional_int,
    parse_positive_int,
)
from .datasets import RESIDENT_BYTES, MouseDataset, SampleOptions
from .samplers import BlockShuffleSampler

__all__ = ["LongCycler", "make_loaders", "select_neurons", "select_trials"]

IMAGE_ID_NAMES = ("frame_image_id", "image_id", "colorframeprojector_image_id")


def _identity(batch: Any) -> Any:
    return batch


def select_neurons(
    coords: dict[str, np.ndarray],
    *,
    areas: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    neuron_ids: Sequence[int] | None = None,
    n_neurons: int | None = None,
    seed: int = 0,
) -> np.ndarray | None:
    """Positions of the selected neurons (``None``: all), from the neuron coordinates."""
    unit_ids = coords["neuron"]
    keep = np.ones(len(unit_ids), dtype=bool)
    for name, wanted in (("area", areas), ("layer", layers)):
        if wanted is not None:
            if name not in coords:
                raise SensoriumDataError(f"neuron selection by {name}: the store has no '{name}'")
            keep &= np.isin([str(v) for v in coords[name]], list(wanted))
    if neuron_ids is not None:
        missing = sorted(set(np.asarray(neuron_ids).tolist()) - set(unit_ids.tolist()))
        if missing:
            raise SensoriumDataError(f"neuron_ids not in the store: {missing[:10]}")
        keep &= np.isin(unit_ids, neuron_ids)
    positions = np.flatnonzero(keep)
    if n_neurons is not None:
        if n_neurons > len(positions):
            raise SensoriumDataError(
                f"n_neurons={n_neurons} but only {len(positions)} neurons match"
            )
        positions = np.sort(np.random.default_rng(seed).choice(positions, n_neurons, replace=False))
    if len(positions) == 0:
        raise SensoriumDataError("the neuron selection is empty")
    return None if len(positions) == len(unit_ids) else positions


def select_trials(
    tiers: np.ndarray, tier: str, image_ids: np.ndarray | None, n_images: int | None, seed: int
) -> np.ndarray:
    """File indices of ``tier``; for a ``train`` tier optionally only ``n_images`` random images."""
    trials = np.flatnonzero(tiers == tier)
    if n_images is not None and tier == "train":
        if image_ids is None:
            raise SensoriumDataError("n_train_images needs an image id coordinate")
        ids = np.unique(image_ids[trials])
        if n_images > len(ids):
            raise SensoriumDataError(
                f"n_train_images={n_images} but the train tier has {len(ids)} images"
            )
        chosen = np.random.default_rng(seed).choice(ids, n_images, replace=False)
        trials = trials[np.isin(image_ids[trials], chosen)]
    return trials


def make_loaders(
    url: Any,
    mice: Sequence[str] | None = None,
    tiers: Sequence[str] | None = None,
    batch_size: int = 64,
    storage_options: dict[str, Any] | None = None,
    *,
    normalize: bool = True,
    scale: float = 1.0,
    include_behavior: bool = False,
    include_pupil: bool = False,
    frames: int | None = None,
    frame_offset: int | None = None,
    max_frame: int | None = None,
    cut_valid: bool = True,
    scored_frames: str = DEFAULT_SCORED_FRAMES,
    stats_source: str = "all",
    threshold_reduction: str = "nanmean",
    areas: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    neuron_ids: Sequence[int] | None = None,
    n_neurons: int | None = None,
    neuron_seed: int = 0,
    n_train_images: int | None = None,
    image_seed: int = 0,
    seed: int = 0,
    buffer_blocks: int = 8,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    in_memory: bool | str = "auto",
    memory_budget: int = 2 * 2**30,
    device: str | Any | None = None,
    retries: int = 4,
    resident_bytes: int = RESIDENT_BYTES,
    prefetch: int = 2,
    **loader_kwargs: Any,
) -> dict[str, dict[str, DataLoader]]:
    """``{tier: {mouse: DataLoader}}`` for the mice and tiers of a store.

    Parameters
    ----------
    url, mice, tiers, storage_options
        The store (a path or fsspec URL, or a zarr ``Store`` object such as a wrapper: it must
        survive pickling or fork into worker processes), its mice (default all) and tiers
        (default every tier but ``none``).
    batch_size
        Trials per batch.
    normalize, scale, include_behavior, include_pupil, frames, frame_offset, max_frame
        See :class:`~sensorium_data.loading.datasets.SampleOptions`. Tiers other than ``train`` use
        ``frame_offset`` (default 0) instead of random windows.
    cut_valid, scored_frames, stats_source, threshold_reduction
        Likewise. ``scored_frames`` (2023): ``"competition"`` (default) drops the last valid
        frame of every NaN-padded trial as the competition-era kit did (so whole-trial batches
        hold the frames the competition scored), ``"kit-head"`` keeps it as the kit at HEAD.
        A window (``frames``, ``frame_offset``) longer than some trial of a tier is refused
        here, naming them.
    areas, layers, neuron_ids, n_neurons, neuron_seed
        Neuron selection (see :func:`select_neurons`).
    n_train_images, image_seed
        Keep only the trials of ``n_train_images`` random training images.
    seed, buffer_blocks, drop_last, rank, world_size
        Block shuffling of the train tier and the DDP split (see
        :class:`~.samplers.BlockShuffleSampler`); other tiers are split too.
    in_memory, memory_budget
        ``True``: read each dataset's arrays once per process; ``"auto"`` (the default): do so
        when the selected arrays of a dataset fit in ``memory_budget`` bytes (each worker
        process holds its own copy); ``False``: stream. In
        memory, a dataset holds its arrays model-ready (normalised, rescaled, neurons
        selected, float32; 2023 trials whole) and a batch is one gather per array (2023: the
        windows copied from the whole trials). Streamed batches are normalised in float32
        as their chunks are decoded; every mode gives the same batches bit for bit (2023
        windows are drawn when a batch is planned, ``prefetch`` batches ahead, in every mode).
    device
        A torch device (``"cuda"``, ``"cuda:1"``, ``"cpu"``, ...) to hold each dataset's
        model-ready arrays and gather every batch on (2023 windows included); they are read
        and placed when the loaders are made, and a dataset that does not fit the device's
        free memory (or ``memory_budget``) is refused, naming the mouse and the bytes. Same
        samplers, seeds, DDP splits and resumable state as the host loaders; no worker
        processes; implies ``in_memory``. ``None``: the host.
    retries
        Retries of transient read errors (remote stores).
    resident_bytes
        Streamed datasets hold arrays of at most this many bytes in RAM (read once per
        process): behaviour and pupil centre, whose chunks are too small to stream well.
    prefetch
        With ``num_workers=0``, batches read ahead in the background (on zarr's I/O thread),
        so a remote store's latency and the decoding overlap the training step; ``0``: none.
        With workers, DataLoader's own ``prefetch_factor`` applies instead.
    **loader_kwargs
        Passed to :class:`torch.utils.data.DataLoader` (``num_workers``, ``pin_memory``,
        ``persistent_workers``, ``multiprocessing_context``, ``prefetch_factor``, ...).
    """
    if in_memory not in (True, False, "auto"):
        raise ValueError(f"in_memory must be True, False or 'auto', got {in_memory!r}")
    mice, tiers = parse_names("mice", mice), parse_names("tiers", tiers)
    batch_size = parse_positive_int("batch_size", batch_size)
    n_neurons = parse_optional_int("n_neurons", n_neurons, 1)
    n_train_images = parse_optional_int("n_train_images", n_train_images, 1)
    frames = parse_optional_int("frames", frames, 1)
    frame_offset = parse_optional_int("frame_offset", frame_offset, 0)
    max_frame = parse_optional_int("max_frame", max_frame, 1)
    try:
        scored_frames = parse_scored_frames(scored_frames)
    except ValueError as exc:
        raise LoaderArgumentError(str(exc)) from None
    check_loader_kwargs(loader_kwargs, _OWN_OPTIONS)
    if device is not None:
        check_device_options(device, loader_kwargs)
    url = store_url(url)
    layouts = _layouts(url, storage_options, mice, retries, normalize)
    check_tiers(tiers, {m: layout["tiers"].tolist() for m, layout in layouts.items()})
    check_frame_options(
        {m: layout["kind"] for m, layout in layouts.items()},
        {"frames": frames, "frame_offset": frame_offset, "max_frame": max_frame},
    )
    out: dict[str, dict[str, DataLoader]] = {}
    for mouse, layout in layouts.items():
        neurons = select_neurons(
            layout["coords"],
            areas=areas,
            layers=layers,
            neuron_ids=neuron_ids,
            n_neurons=n_neurons,
            seed=neuron_seed,
        )
        tier_values, image_ids = layout["tiers"], layout["image_ids"]
        chunk, per_trial = layout["chunk"], layout["trial_bytes"]
        present = [t for t in dict.fromkeys(tier_values.tolist()) if t != "none"]
        for tier in tiers or present:
            trials = select_trials(tier_values, tier, image_ids, n_train_images, image_seed)
            if len(trials) == 0:
                continue
            train = tier == "train"
            if layout["valid"] is not None and cut_valid:
                usable = usable_frames(layout["valid"][trials], layout["n_frames"], scored_frames)
                if max_frame is not None:
                    usable = np.minimum(usable, max_frame)
                offset = frame_offset if (train or frame_offset is not None) else 0
                check_windows(
                    mouse,
                    tier,
                    trials.tolist(),
                    usable.tolist(),
                    frames=frames,
                    frame_offset=offset,
                    scored_frames=scored_frames,
                )
            options = SampleOptions(
                normalize=normalize,
                stats_source=stats_source,
                threshold_reduction=threshold_reduction,
                scale=scale,
                include_behavior=include_behavior,
                include_pupil=include_pupil,
                frames=frames,
                frame_offset=frame_offset
                if (train or frame_offset is not None)
                else (0 if frames else None),
                max_frame=max_frame,
                cut_valid=cut_valid,
                scored_frames=scored_frames,
            )
            memory = in_memory is True or (
                in_memory == "auto" and per_trial * len(trials) <= memory_budget
            )
            dataset = MouseDataset(
                url,
                mouse,
                trials=trials,
                neurons=neurons,
                options=options,
                storage_options=storage_options,
                in_memory=memory or device is not None,
                retries=retries,
                resident_bytes=resident_bytes,
                device=device,
                memory_limit=memory_budget if device is not None else None,
            )
            if device is not None:
                _ = dataset.opened  # read, made model-ready and placed now (errors here)
            sampler = BlockShuffleSampler(
                trials // chunk,
                batch_size=batch_size,
                shuffle=train,
                buffer_blocks=buffer_blocks,
                seed=seed,
                drop_last=drop_last and train,
                rank=rank,
                world_size=world_size,
            )
            batches: Any = sampler
            # streamed batches are read ahead; 2023 windows are drawn ahead in every mode, so
            # that the random starts do not depend on the mode (or on draws between batches)
            ahead = not dataset.in_memory or layout["kind"] == "dynamic"
            if prefetch and not loader_kwargs.get("num_workers") and ahead:
                batches = Lookahead(sampler, dataset, depth=prefetch)
            out.setdefault(tier, {})[mouse] = DataLoader(
                dataset, batch_sampler=batches, collate_fn=_identity, **loader_kwargs
            )
    return out


#: make_loaders' own options (suggested when an unknown keyword looks like one of them).
_OWN_OPTIONS = [
    name
    for name in inspect.signature(make_loaders).parameters
    if name not in ("url", "loader_kwargs")
]


def _layouts(
    url: str,
    storage_options: dict[str, Any] | None,
    mice: Sequence[str] | None,
    retries: int,
    normalize: bool,
) -> dict[str, dict[str, Any]]:
    """What selection needs of each mouse: coordinates, tiers, image ids, chunking (and, when
    normalising, statistics that fit the data: checked from metadata, before any batch)."""
    root, _ = open_root(url, storage_options, retries=retries)
    known = read_mice(root, url)
    out = {}
    for mouse in [resolve_mouse(known, m, url) for m in (mice or list(known))]:
        group = root[mouse]
        if "tiers" not in group:
            raise SchemaError(
                f"{url} mouse {mouse!r}: no 'tiers' coordinate (its tree had no "
                "meta/trials/tiers.npy); loaders select trials by tier"
            )
        if normalize:
            check_statistics(group, known[mouse], f"{url} mouse {mouse!r}")
        data = [k for k, i in known[mouse]["variables"].items() if i["source"].startswith("data/")]
        image_name = next((n for n in IMAGE_ID_NAMES if n in group), None)
        out[mouse] = {
            "kind": known[mouse]["kind"],
            "coords": {k: group[k][...] for k in ("neuron", "area", "layer") if k in group},
            "tiers": np.array([str(v) for v in group["tiers"][...]]),
            "image_ids": group[image_name][...] if image_name else None,
            "chunk": group[data[0]].chunks[0],
            "valid": group["valid_frames"][...] if "valid_frames" in group else None,
            "n_frames": group[data[0]].shape[-1],
            # in memory every value is float32 (stored uint8 images take 4x their bytes)
            "trial_bytes": sum(int(np.prod(group[k].shape[1:])) * 4 for k in data),
        }
    return out


class Lookahead:
    """A batch sampler that has the dataset prefetch the next ``depth`` batches it will yield.

    Wraps a :class:`~.samplers.BlockShuffleSampler` (any other attribute, such
    as ``set_epoch`` or ``state_dict``, is the wrapped sampler's) for ``num_workers=0``
    loaders: when batch ``k`` is handed out, batches ``k + 1 .. k + depth`` are being read.
    Batches prefetched but never asked for (a loop left early) are dropped.
    """

    def __init__(self, sampler: BlockShuffleSampler, dataset: MouseDataset, *, depth: int) -> None:
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth!r}")
        self.sampler = sampler
        self.dataset = dataset
        self.depth = depth

    def __len__(self) -> int:
        return len(self.sampler)

    def __getattr__(self, name: str) -> Any:
        if name in ("sampler", "dataset", "depth"):  # not yet set (unpickling)
            raise AttributeError(name)
        return getattr(self.sampler, name)

    def __iter__(self) -> Iterator[list[int]]:
        ahead: collections.deque[list[int]] = collections.deque()
        try:
            for batch in self.sampler:
                self.dataset.prefetch(batch)
                ahead.append(batch)
                if len(ahead) > self.depth:
                    yield ahead.popleft()
            while ahead:
                yield ahead.popleft()
        finally:
            for batch in ahead:
                self.dataset.discard(batch)


class LongCycler:
    """Cycle over several mice's loaders: ``(mouse, batch)``, ``len = n_mice * longest``.

    Like the kits' ``LongCycler``, one round visits every mouse once; a mouse whose loader is
    exhausted starts its next epoch (a new shuffle) while the longest one finishes.
    """

    def __init__(self, loaders: dict[str, DataLoader]) -> None:
        if not loaders:
            raise ValueError("LongCycler needs at least one loader")
        self.loaders = loaders
        self.max_batches = max(len(loader) for loader in loaders.values())

    def __len__(self) -> int:
        return len(self.loaders) * self.max_batches

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        iters = {m: iter(loader) for m, loader in self.loaders.items()}
        for _ in range(self.max_batches):
            for mouse, loader in self.loaders.items():
                try:
                    batch = next(iters[mouse])
                except StopIteration:
                    iters[mouse] = iter(loader)
                    batch = next(iters[mouse])
                yield mouse, batch
