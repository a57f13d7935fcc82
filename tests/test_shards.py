"""The converter's shard writer produces shards that zarr reads back exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.codecs import BloscCodec

from sensorium_data.store.shards import ShardEncoder, write_shards


@st.composite
def layouts(draw: st.DrawFn) -> tuple:
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 12)) for _ in range(ndim))
    chunks = tuple(draw(st.integers(1, s)) for s in shape)
    rest = tuple(-(-s // c) * c for s, c in zip(shape[1:], chunks[1:], strict=True))
    shards = (chunks[0] * draw(st.integers(1, 3)), *rest)
    dtype = draw(st.sampled_from(["float32", "float64", "uint8", "int64"]))
    shuffle = draw(st.sampled_from(["shuffle", "noshuffle", "bitshuffle"]))
    return shape, chunks, shards, dtype, shuffle


@settings(max_examples=40, deadline=None)
@given(layouts(), st.integers(0, 2**31))
def test_zarr_reads_what_write_shards_wrote(tmp_path_factory, layout, seed) -> None:
    shape, chunks, shards, dtype, shuffle = layout
    store = tmp_path_factory.mktemp("shards") / "a.zarr"
    fill = np.nan if dtype.startswith("float") else 7
    arr = zarr.create_array(
        str(store),
        shape=shape,
        chunks=chunks,
        shards=shards,
        dtype=dtype,
        fill_value=fill,
        compressors=BloscCodec(cname="lz4", shuffle=shuffle),
    )
    data = (np.random.default_rng(seed).normal(size=shape) * 50).astype(dtype)
    for start in range(0, shape[0], shards[0]):
        write_shards(arr, start, data[start : start + shards[0]])
    np.testing.assert_array_equal(zarr.open_array(str(store), mode="r")[...], data)


def test_other_layouts_fall_back_to_zarr(tmp_path: Path) -> None:
    arr = zarr.create_array(str(tmp_path / "plain.zarr"), shape=(10, 3), chunks=(4, 3), dtype="i4")
    with pytest.raises(ValueError, match="not a sharded array"):
        ShardEncoder(arr)
    write_shards(arr, 4, np.ones((6, 3), dtype="i4"))
    np.testing.assert_array_equal(arr[...], np.r_[np.zeros((4, 3)), np.ones((6, 3))])


def test_misaligned_blocks_are_refused(tmp_path: Path) -> None:
    arr = zarr.create_array(
        str(tmp_path / "a.zarr"),
        shape=(10, 3),
        chunks=(2, 3),
        shards=(4, 3),
        dtype="f4",
        compressors=BloscCodec(cname="lz4"),
    )
    with pytest.raises(ValueError, match="not shard-aligned"):
        write_shards(arr, 2, np.ones((4, 3), dtype="f4"))
