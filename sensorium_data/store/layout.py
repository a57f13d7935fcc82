"""Laying out one mouse group: attributes, coordinates, statistics and empty data arrays.

The data arrays are filled afterwards by the converter's tasks; everything small is written
here, at once. The group's ``sensorium`` attribute records every original name and dtype, so
that :mod:`.export` can write the official file tree back.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from .._version import __version__
from ..errors import SchemaError
from ..filetree.npyio import decode_object_array, encode_object_array
from ..filetree.tree import FileTree
from .images import rescaled_size
from .schema import (
    ATTRS_KEY,
    EVERY_CHUNK_WRITTEN,
    FORMAT_VERSION,
    LABELS,
    ChunkOptions,
    choose_chunks,
    coordinate_names,
    data_dims,
    meta_dims,
    scaled_path,
)

__all__ = ["create_mouse_group", "restore_values", "scaled_images", "stored_values"]

_MAX_EXTRA_BYTES = 1 << 20


def stored_values(arr: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """How a meta or statistics array is stored, and the attributes to restore it."""
    info: dict[str, Any] = {"dtype": arr.dtype.str if arr.dtype != object else "object"}
    if arr.dtype == object:
        arr, info["object_encoding"] = encode_object_array(arr)
    return arr, info


def restore_values(values: Any, info: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`stored_values`: the array as it was in the file tree."""
    arr = np.asarray(values)
    if info["dtype"] == "object":
        return decode_object_array(arr, info.get("object_encoding", "str"))
    dtype = np.dtype(info["dtype"])
    if dtype.kind == "U" and arr.dtype.kind != "U":
        return np.array(arr.tolist(), dtype=dtype).reshape(arr.shape)
    return arr.astype(dtype, copy=False)


def _write_small(
    group: zarr.Group,
    name: str,
    arr: np.ndarray,
    dims: tuple[str, ...],
    attrs: dict[str, Any] | None = None,
) -> None:
    if arr.dtype == object or arr.dtype.kind == "U":
        dtype: Any = str
        arr = arr.astype(object) if arr.dtype.kind == "U" else arr
    else:
        dtype = arr.dtype
    z = group.create_array(
        name,
        shape=arr.shape,
        dtype=dtype,
        chunks=arr.shape if arr.size else "auto",
        dimension_names=list(dims),
        attributes=attrs or {},
    )
    if arr.size:  # every chunk, even one equal to the fill value: a missing chunk is an error
        z.with_config({"write_empty_chunks": True})[...] = arr


def _check_dim_sizes(
    sizes: dict[str, int], dims: tuple[str, ...], shape: tuple[int, ...], where: str
) -> None:
    for dim, size in zip(dims, shape, strict=True):
        if sizes.setdefault(dim, size) != size:
            raise SchemaError(
                f"{where}: dimension {dim!r} has size {size}, but {sizes[dim]} elsewhere in the "
                "same mouse"
            )


def create_mouse_group(
    root: zarr.Group, tree: FileTree, chunking: ChunkOptions
) -> tuple[zarr.Group, int]:
    """Create ``tree``'s group (marked incomplete); return it and the trials per write block."""
    sizes: dict[str, int] = {"trial": tree.n_trials, "neuron": tree.n_neurons}
    dims = {}
    for key, spec in tree.specs.items():
        dims[key] = data_dims(tree.kind, key, spec.shape)
        _check_dim_sizes(
            sizes, dims[key], (tree.n_trials, *spec.shape), tree.describe(f"data/{key}/0.npy")
        )
    reserved = set(tree.data_keys) | set(sizes) | {"valid_frames", "statistics"}
    trial_names, neuron_names = coordinate_names(
        sorted(tree.meta_trials), sorted(tree.meta_neurons), reserved
    )
    variables: dict[str, Any] = {}
    meta = {
        "format_version": FORMAT_VERSION,
        "toolkit_version": __version__,
        "complete": False,
        EVERY_CHUNK_WRITTEN: True,  # readers refuse a missing chunk (see stores.RetryingStore)
        "kind": tree.kind,
        "data_key": tree.data_key,
        "source_name": tree.name,
        "source_url": tree.source.describe(),
        "n_trials": tree.n_trials,
        "n_neurons": tree.n_neurons,
        "source_bytes": tree.source_bytes,
        "config": tree.config,
        "variables": variables,
        "statistics": {},
        "extra_files": _extra_files(tree),
    }
    group = root.create_group(tree.data_key, attributes={ATTRS_KEY: meta})

    coords: list[str] = []
    for axis, fields, names in (
        ("trial", tree.meta_trials, trial_names),
        ("neuron", tree.meta_neurons, neuron_names),
    ):
        for field, name in names.items():
            values, info = stored_values(fields[field])
            mdims = meta_dims(axis, field, values.shape)
            _check_dim_sizes(sizes, mdims, values.shape, tree.describe(f"meta/{axis}s/{field}.npy"))
            _write_small(group, name, values, mdims)
            variables[name] = {"source": f"meta/{axis}s/{field}", **info}
            coords.append(name)
    _write_index_coords(group, tree, sizes)
    if tree.kind == "dynamic":
        group.create_array(
            "valid_frames",
            shape=(tree.n_trials,),
            dtype="int32",
            fill_value=-1,
            dimension_names=["trial"],
            chunks=(max(1, tree.n_trials),),
        )
        coords.append("valid_frames")

    block = 0
    for key, spec in tree.specs.items():
        shape = (tree.n_trials, *spec.shape)
        chunks, shards = choose_chunks(tree.kind, dims[key], shape, spec.dtype.itemsize, chunking)
        block = shards[0]
        group.create_array(
            key,
            shape=shape,
            dtype=spec.dtype,
            chunks=chunks,
            shards=shards,
            compressors=BloscCodec(
                cname=chunking.compressor,
                clevel=chunking.clevel,
                shuffle=chunking.shuffle_for(key),
            ),
            dimension_names=list(dims[key]),
            fill_value=np.nan if spec.dtype.kind == "f" else 0,
            attributes={"coordinates": " ".join(coords)},
        )
        variables[key] = {"source": f"data/{key}", "dtype": spec.dtype.str}
    meta["scaled"] = _create_scaled(group, tree, dims, chunking)
    meta["statistics"] = _write_statistics(group, tree, dims)
    group.attrs[ATTRS_KEY] = meta
    return group, block


def scaled_images(tree: FileTree, chunking: ChunkOptions) -> tuple[float, ...]:
    """The scales at which ``tree``'s images get a stored model-ready copy."""
    spec = tree.specs.get("images")
    if tree.kind != "static" or spec is None or len(spec.shape) != 3:
        return ()
    return chunking.image_scales


def _create_scaled(
    group: zarr.Group, tree: FileTree, dims: dict[str, Any], chunking: ChunkOptions
) -> dict[str, Any]:
    """Empty arrays for the rescaled images (written block by block with the full ones)."""
    out: dict[str, Any] = {}
    for scale in scaled_images(tree, chunking):
        c, h, w = tree.specs["images"].shape
        shape = (tree.n_trials, c, rescaled_size(h, scale), rescaled_size(w, scale))
        chunks, shards = choose_chunks(tree.kind, dims["images"], shape, 4, chunking)
        path = scaled_path(scale)
        group.create_array(
            path,
            shape=shape,
            dtype="float32",
            chunks=chunks,
            shards=shards,
            compressors=BloscCodec(
                cname=chunking.compressor,
                clevel=chunking.clevel,
                shuffle=chunking.shuffle_for("images"),
            ),
            # own names: a DataTree child must align with its mouse's height and width
            dimension_names=["trial", "channel", "scaled_height", "scaled_width"],
            fill_value=np.nan,
            attributes={
                "scale": scale,
                "source": "images",
                "method": "neuralpredictors ScaleInputs: skimage.transform.rescale, order 1, "
                "mode reflect, no anti-aliasing, preserve_range (bit-identical, float32)",
            },
        )
        out[repr(scale)] = path
    return out


def _write_index_coords(group: zarr.Group, tree: FileTree, sizes: dict[str, int]) -> None:
    _write_small(group, "trial", np.arange(tree.n_trials, dtype=np.int64), ("trial",))
    unit_ids = tree.meta_neurons.get("unit_ids")
    if unit_ids is not None and unit_ids.ndim == 1 and unit_ids.dtype.kind in "iu":
        neuron = unit_ids
    else:
        neuron = np.arange(tree.n_neurons, dtype=np.int64)
    _write_small(group, "neuron", neuron, ("neuron",))
    for dim, by_size in LABELS.items():
        if dim in sizes and sizes[dim] in by_size:
            _write_small(group, dim, np.array(by_size[sizes[dim]], dtype=object), (dim,))


def _write_statistics(
    group: zarr.Group, tree: FileTree, dims: dict[str, tuple[str, ...]]
) -> dict[str, Any]:
    record: dict[str, Any] = {}
    if not tree.statistics:
        return record
    stats_group = group.create_group("statistics")
    for key, subs in sorted(tree.statistics.items()):
        key_group = stats_group.create_group(key)
        for sub, stats in sorted(subs.items()):
            sub_group = key_group.create_group(sub)
            for stat, arr in sorted(stats.items()):
                values, info = stored_values(arr)
                trial_dims = dims.get(key, ("trial",))[1:]
                spec = tree.specs.get(key)
                if spec is not None and values.shape == spec.shape:
                    sdims = trial_dims
                else:
                    sdims = tuple(f"{stat}_dim_{k}" for k in range(values.ndim))
                _write_small(sub_group, stat, values, sdims)
                record.setdefault(key, {}).setdefault(sub, {})[stat] = info
    return record


def _extra_files(tree: FileTree) -> dict[str, str]:
    """Small files of the tree outside the official layout, kept verbatim (base64)."""
    out: dict[str, str] = {}
    total = 0
    for path in tree.extra_files:
        if total + tree.file_sizes.get(path, 0) > _MAX_EXTRA_BYTES:
            break  # sizes from the listing: a file too large to keep is not read at all
        raw = tree.source.read(path)
        total += len(raw)
        if total > _MAX_EXTRA_BYTES:
            break
        out[path] = base64.b64encode(raw).decode("ascii")
    return out
