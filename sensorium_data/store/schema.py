"""The store schema: dimension names, labels, naming rules and chunking, declared as data.

Every other part (converter, opener, verifier, exporter, loaders) asks this module how a file
tree maps onto the store, so the mapping lives in one place (the README's "The store" section
describes the layout it declares).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import SchemaError
from ..filetree.statistics import statistic_problem

__all__ = [
    "ATTRS_KEY",
    "DATA_DIMS",
    "EVERY_CHUNK_WRITTEN",
    "FORMAT_VERSION",
    "LABELS",
    "ChunkOptions",
    "check_mouse_attrs",
    "choose_chunks",
    "coordinate_names",
    "data_dims",
    "meta_dims",
    "scaled_path",
    "statistic_problem",
]

FORMAT_VERSION = 1
ATTRS_KEY = "sensorium"  # group attribute holding the toolkit's metadata
#: mouse attribute: the converter wrote every chunk, so a missing one is lost data, not fill
EVERY_CHUNK_WRITTEN = "every_chunk_written"

#: Dimensions of one trial of each official data key (the ``trial`` dimension comes first).
DATA_DIMS: dict[str, dict[str, tuple[str, ...]]] = {
    "static": {
        "images": ("channel", "height", "width"),
        "responses": ("neuron",),
        "behavior": ("behavior_variable",),
        "pupil_center": ("pupil_axis",),
    },
    "dynamic": {
        "videos": ("height", "width", "frame"),
        "responses": ("neuron", "frame"),
        "behavior": ("behavior_variable", "frame"),
        "pupil_center": ("pupil_axis", "frame"),
    },
}

#: Labels of small labelled dimensions, by kind and dimension size.
LABELS: dict[str, dict[int, list[str]]] = {
    "behavior_variable": {
        3: ["pupil_dilation", "pupil_dilation_derivative", "running_speed"],
        2: ["pupil_dilation", "running_speed"],
    },
    "pupil_axis": {2: ["horizontal", "vertical"]},
    "xyz": {3: ["x", "y", "z"]},
}

SHUFFLES = ("auto", "shuffle", "bitshuffle", "noshuffle")

#: Blosc shuffle per data key under ``shuffle="auto"`` (``shuffle`` for the others). Measured on
#: 8000-neuron synthetic 2023 blocks with lz4 (benchmarks/convert.py): stimuli, whole numbers
#: 0-255 held as floats, encode at 2.3 GB/s with bitshuffle against 1.3 GB/s with byte shuffle,
#: slightly smaller; sparse responses (mostly exact zeros, as deconvolved traces are) at 1.3 GB/s
#: without shuffle against 0.7 GB/s with it, and 0.19 against 0.30 of their size.
AUTO_SHUFFLE = {"images": "bitshuffle", "videos": "bitshuffle", "responses": "noshuffle"}

#: Trials smaller than this (bytes) are not chunked along ``frame``: a window read of them costs
#: less than the per-chunk overhead.
FRAME_CHUNKING_MIN_BYTES = 256 * 1024

#: Extra dimensions of well-known meta arrays.
META_DIMS: dict[str, tuple[str, ...]] = {"cell_motor_coordinates": ("xyz",)}


def data_dims(kind: str, key: str, trial_shape: tuple[int, ...]) -> tuple[str, ...]:
    """Dimensions of the stored array of data key ``key`` (``trial`` first)."""
    dims = DATA_DIMS.get(kind, {}).get(key)
    if dims is None or len(dims) != len(trial_shape):
        dims = tuple(f"{key}_dim_{k}" for k in range(1, len(trial_shape) + 1))
    return ("trial", *dims)


def meta_dims(axis: str, name: str, shape: tuple[int, ...]) -> tuple[str, ...]:
    """Dimensions of a meta array ``name`` along ``axis`` (``"trial"`` or ``"neuron"``)."""
    extra = META_DIMS.get(name)
    if extra is None or len(extra) != len(shape) - 1:
        extra = tuple(f"{name}_dim_{k}" for k in range(1, len(shape)))
    return (axis, *extra)


def coordinate_names(
    trial_fields: list[str], neuron_fields: list[str], reserved: set[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Store names of the ``meta/trials`` and ``meta/neurons`` fields.

    A field keeps its name unless the name occurs in both folders (the releases have
    ``scan_idx`` in both) or collides with a data variable or dimension: then it becomes
    ``trial_<f>`` / ``neuron_<f>``.
    """
    both = set(trial_fields) & set(neuron_fields)
    trials = {f: (f"trial_{f}" if f in both or f in reserved else f) for f in trial_fields}
    neurons = {f: (f"neuron_{f}" if f in both or f in reserved else f) for f in neuron_fields}
    taken = set(reserved)
    for mapping in (trials, neurons):
        for field, name in mapping.items():
            if name in taken:
                raise SchemaError(f"meta field {field!r} maps to {name!r}, which is already used")
            taken.add(name)
    return trials, neurons


@dataclass(frozen=True, kw_only=True)
class ChunkOptions:
    """How arrays are chunked, sharded and compressed. ``None`` means the schema's default.

    Attributes
    ----------
    trials_per_chunk
        Trials in one chunk of every trial-major array (the unit of block shuffling).
        Default: 16 for static data, 1 for dynamic data.
    trials_per_shard
        Trials in one shard (one stored object). Default: 512 static, 4 dynamic.
    frames_per_chunk
        Frames in one chunk of dynamic arrays: an 80-frame window reads about 80 + this many
        frames. Default 25, applied to arrays whose trials hold at least 256 KiB (videos,
        responses); given explicitly, it applies to every array with a ``frame`` axis.
    compressor
        Blosc codec name: ``lz4`` (default, decodes at several GB/s), ``zstd``, ``lz4hc``,
        ``blosclz``, ``zlib``.
    clevel
        Compression level, default 5.
    shuffle
        Blosc filter before compression: ``auto`` (default: see :data:`AUTO_SHUFFLE`),
        ``shuffle`` (bytes), ``bitshuffle`` or ``noshuffle`` for every array.
    image_scales
        2022 (static) data: also store the images rescaled by these factors, as the kits'
        ``ScaleInputs`` does it (bit-identical), under ``<mouse>/scaled/<scale>/images``
        (float32). Loaders asking for one of these scales read the small copy instead of
        rescaling every batch. Default ``(0.25,)``: the baselines' 36x64; ``()`` stores none.
    """

    trials_per_chunk: int | None = None
    trials_per_shard: int | None = None
    frames_per_chunk: int | None = None
    compressor: str = "lz4"
    clevel: int = 5
    shuffle: str = "auto"
    image_scales: tuple[float, ...] = (0.25,)

    def __post_init__(self) -> None:
        scales = tuple(self.image_scales)
        if any(not isinstance(x, int | float) or not 0 < x < 1 for x in scales):
            raise ValueError(f"image_scales must be factors between 0 and 1, got {scales!r}")
        object.__setattr__(self, "image_scales", tuple(sorted({float(x) for x in scales})))
        for name in ("trials_per_chunk", "trials_per_shard", "frames_per_chunk"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.compressor not in ("lz4", "lz4hc", "zstd", "blosclz", "zlib"):
            raise ValueError(
                "compressor must be one of lz4, lz4hc, zstd, blosclz, zlib; "
                f"got {self.compressor!r}"
            )
        if self.shuffle not in SHUFFLES:
            raise ValueError(f"shuffle must be one of {', '.join(SHUFFLES)}; got {self.shuffle!r}")
        if not 0 <= self.clevel <= 9:
            raise ValueError(f"clevel must be 0..9, got {self.clevel!r}")

    def shuffle_for(self, key: str) -> str:
        """The blosc shuffle of data key ``key``."""
        if self.shuffle != "auto":
            return self.shuffle
        return AUTO_SHUFFLE.get(key, "shuffle")

    def resolved(self, kind: str) -> tuple[int, int, int]:
        """``(trials_per_chunk, trials_per_shard, frames_per_chunk)`` for ``kind``."""
        tpc = self.trials_per_chunk or (16 if kind == "static" else 1)
        tps = self.trials_per_shard or (512 if kind == "static" else 4)
        tps = max(tpc, tps // tpc * tpc)  # a shard holds whole chunks
        return tpc, tps, self.frames_per_chunk or 25


def scaled_path(scale: float, key: str = "images") -> str:
    """Path, inside a mouse group, of the copy of ``key`` rescaled by ``scale``."""
    return f"scaled/{float(scale)!r}/{key}"


def choose_chunks(
    kind: str,
    dims: tuple[str, ...],
    shape: tuple[int, ...],
    itemsize: int,
    options: ChunkOptions,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(chunks, shards)`` of a trial-major data array of ``shape``.

    Chunks hold ``trials_per_chunk`` trials (and ``frames_per_chunk`` frames, where one trial of
    the array is big enough for a window read to matter); shards hold ``trials_per_shard``
    trials and every frame, so one conversion task writes whole shards.
    """
    tpc, tps, fpc = options.resolved(kind)
    n_trials = shape[0]
    chunks = [min(tpc, n_trials), *shape[1:]]
    shards = [min(tps, _round_up(n_trials, chunks[0])), *shape[1:]]
    trial_bytes = itemsize * math.prod(shape[1:])
    split = options.frames_per_chunk is not None or trial_bytes >= FRAME_CHUNKING_MIN_BYTES
    if "frame" in dims and split:
        axis = dims.index("frame")
        frames = shape[axis]
        chunks[axis] = min(fpc, frames)
        shards[axis] = _round_up(frames, chunks[axis])
    chunks = [max(1, c) for c in chunks]
    shards = [max(c, s) for c, s in zip(chunks, shards, strict=True)]
    return tuple(chunks), tuple(shards)


def _round_up(n: int, step: int) -> int:
    return max(step, -(-n // step) * step)


def check_mouse_attrs(attrs: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate the toolkit's attributes of a mouse group and return them."""
    meta = attrs.get(ATTRS_KEY)
    if not isinstance(meta, dict):
        raise SchemaError(f"{where}: not a sensorium_data mouse group (no '{ATTRS_KEY}' attribute)")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise SchemaError(
            f"{where}: store format version {version!r}, this toolkit reads version "
            f"{FORMAT_VERSION}; convert the data again with this version"
        )
    for key in ("kind", "source_name", "variables", "complete"):
        if key not in meta:
            raise SchemaError(f"{where}: attribute '{ATTRS_KEY}.{key}' is missing")
    return meta
