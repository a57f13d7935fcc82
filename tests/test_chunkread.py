"""ChunkReader reads exactly what zarr reads, from the shards the converter writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.codecs import BloscCodec
from zarr.core.sync import sync

from sensorium_data.errors import MissingChunkError, RemoteReadError
from sensorium_data.loading.chunkread import ChunkReader, reader_for
from sensorium_data.store.shards import write_shards


def sharded(path: Path, shape, chunks, shards, *, write=True, clevel=5) -> zarr.Array:
    arr = zarr.create_array(
        str(path),
        shape=shape,
        chunks=chunks,
        shards=shards,
        dtype="float32",
        fill_value=np.nan,
        compressors=BloscCodec(cname="lz4", shuffle="shuffle", clevel=clevel),
    )
    if write:
        data = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        for start in range(0, shape[0], shards[0]):
            write_shards(arr, start, data[start : start + shards[0]])
    return arr


@pytest.fixture(scope="module")
def arrays(tmp_path_factory: pytest.TempPathFactory) -> dict[str, zarr.Array]:
    tmp = tmp_path_factory.mktemp("chunkread")
    return {
        "rows": sharded(tmp / "rows", (37, 5), (4, 5), (8, 5)),
        "frames": sharded(tmp / "frames", (13, 3, 2, 41), (1, 3, 2, 6), (4, 3, 2, 42)),
    }


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_rows_equal_zarr(arrays, data) -> None:
    arr = arrays["rows"]
    trials = np.array(data.draw(st.lists(st.integers(0, 36), max_size=20)), dtype=np.int64)
    got = ChunkReader(arr).rows(trials)
    np.testing.assert_array_equal(got, arr[...][trials])


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_windows_equal_zarr(arrays, data) -> None:
    arr = arrays["frames"]
    length = data.draw(st.integers(1, 41))
    n = data.draw(st.integers(0, 6))
    trials = np.array(data.draw(st.lists(st.integers(0, 12), min_size=n, max_size=n)))
    starts = np.array(data.draw(st.lists(st.integers(0, 41 - length), min_size=n, max_size=n)))
    reader = ChunkReader(arr)
    got = reader.windows(trials.astype(np.int64), starts.astype(np.int64), length)
    full = arr[...]
    want = [full[t, ..., s : s + length] for t, s in zip(trials, starts, strict=True)]
    assert got.shape == (n, 3, 2, length)
    np.testing.assert_array_equal(got, np.array(want).reshape(got.shape))
    assert (reader.bytes_read > 0) == (n > 0)


@pytest.mark.parametrize("shape", [(37, 5), (30, 1, 3, 4)], ids=["rows", "images"])
def test_uncompressed_rows_are_read_straight_into_the_batch(tmp_path: Path, shape) -> None:
    """A store written with clevel=0 (blosc keeps the raw values after a 16-byte header): the
    batch's rows are read from the shard files into the output, only their bytes, and equal
    zarr's; a chunk left unwritten still reads as the fill value."""
    chunks, shards = (4, *shape[1:]), (8, *shape[1:])
    arr = sharded(tmp_path / "raw", shape, chunks, shards, clevel=0)
    reader = ChunkReader(arr)
    trials = np.array([9, 3, 36 if shape[0] > 36 else 29, 8, 10, 3, 0], dtype=np.int64)
    out = np.empty((len(trials), *shape[1:]), dtype=np.float32)
    assert reader._direct(out, None, shape[-1])
    got = sync(reader.read(trials, np.zeros(len(trials), np.int64), shape[-1], out=out))
    assert got is out
    np.testing.assert_array_equal(got, arr[...][trials])
    assert reader.bytes_read == len(trials) * out[0].nbytes  # the rows, not whole chunks
    compressed = sharded(tmp_path / "lz4", shape, chunks, shards)
    np.testing.assert_array_equal(ChunkReader(compressed).rows(trials), got)
    assert not ChunkReader(compressed)._direct(out, None, shape[-1])
    empty = sharded(tmp_path / "empty", shape, chunks, shards, write=False, clevel=0)
    assert np.isnan(ChunkReader(empty).rows(trials)).all()


def test_bytes_read_are_the_chunks_touched(arrays) -> None:
    reader = ChunkReader(arrays["frames"])
    reader.windows(np.array([0]), np.array([6]), 6)  # exactly one 6-frame chunk
    one = reader.bytes_read
    reader.windows(np.array([0]), np.array([7]), 6)  # straddles two chunks
    assert 0 < one < reader.bytes_read - one <= 2 * one + 64


def test_unwritten_shards_read_as_the_fill_value(tmp_path: Path) -> None:
    arr = sharded(tmp_path / "empty", (10, 3), (2, 3), (4, 3), write=False)
    assert np.isnan(ChunkReader(arr).rows(np.array([0, 9]))).all()


def test_strict_readers_refuse_unwritten_shards_and_chunks(tmp_path: Path) -> None:
    empty = sharded(tmp_path / "empty", (10, 3), (2, 3), (4, 3), write=False)
    with pytest.raises(MissingChunkError, match=r"empty/c/2/0: shard missing"):
        ChunkReader(empty, strict=True).rows(np.array([9]))
    arr = sharded(tmp_path / "holey", (8, 3), (2, 3), (4, 3), write=False)
    data = np.ones((4, 3), dtype=np.float32)
    arr.with_config({"write_empty_chunks": False})[:4] = np.where(
        np.arange(4)[:, None] < 2, data, np.nan
    )
    assert ChunkReader(arr).rows(np.array([1]))[0, 0] == 1  # zarr skipped the all-NaN chunk
    assert np.isnan(ChunkReader(arr).rows(np.array([2]))).all()
    with pytest.raises(MissingChunkError, match=r"holey/c/0/0: inner chunk \(1, 0\) was never"):
        ChunkReader(arr, strict=True).rows(np.array([2]))


def test_other_layouts_are_left_to_zarr(tmp_path: Path) -> None:
    plain = zarr.create_array(str(tmp_path / "plain"), shape=(4, 3), chunks=(2, 3), dtype="f4")
    assert reader_for(plain) is None
    middle = zarr.create_array(
        str(tmp_path / "mid"), shape=(4, 6, 3), chunks=(2, 2, 3), shards=(2, 6, 3), dtype="f4"
    )
    assert reader_for(middle) is None  # chunked along a middle axis


def test_bad_requests_and_a_corrupt_index(tmp_path: Path) -> None:
    arr = sharded(tmp_path / "a", (8, 3), (2, 3), (4, 3))
    reader = ChunkReader(arr)
    with pytest.raises(IndexError, match="trials out of range 0..7"):
        reader.rows(np.array([8]))
    shard = tmp_path / "a" / "c" / "1" / "0"
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0xFF  # flip a byte of the index
    shard.write_bytes(bytes(raw))
    with pytest.raises(RemoteReadError, match=r"a/c/1/0: shard index failed its checksum|c/1/0"):
        ChunkReader(zarr.open_array(str(tmp_path / "a"), mode="r")).rows(np.array([5]))
    with pytest.raises(TypeError, match="open one in each process"):
        import pickle

        pickle.dumps(reader)
