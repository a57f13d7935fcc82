"""Writing whole zarr v3 shards fast, for the converter.

zarr-python 3.1 encodes the inner chunks of a shard on its single event-loop thread, at about
0.5 GB/s whatever the number of writer threads. A converter task always holds a whole shard in
memory, so it can encode the inner chunks itself with blosc (which releases the GIL, so two
tasks encode in parallel) and store the shard in one ``set``. The bytes follow the zarr v3
sharding specification (chunks, then an index of ``(offset, nbytes)`` uint64 pairs and its
crc32c), and :class:`ShardEncoder` only accepts arrays whose codecs are exactly the layout this
module writes (bytes/little + blosc inside, bytes + crc32c index at the end); anything else
falls back to zarr's own writer. zarr itself reads these shards and checks their index
checksums.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import google_crc32c
import numcodecs
import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

__all__ = ["ShardEncoder", "ShardLayout", "shard_layout", "write_shards"]

_EMPTY = np.uint64(2**64 - 1)
_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


@dataclass(frozen=True)
class ShardLayout:
    """The one sharded layout this module writes and :mod:`.chunkread` reads."""

    codec: numcodecs.Blosc
    chunk_shape: tuple[int, ...]
    shard_shape: tuple[int, ...]


def shard_layout(array: zarr.Array) -> ShardLayout:
    """The layout of ``array``; ``ValueError`` unless it is bytes/little + blosc inside shards
    with a bytes + crc32c index at the end."""
    codecs = array.metadata.to_dict().get("codecs", [])
    if len(codecs) != 1 or codecs[0]["name"] != "sharding_indexed":
        raise ValueError("not a sharded array")
    conf = codecs[0]["configuration"]
    inner = conf["codecs"]
    ok = (
        conf["index_location"] == "end"
        and [c["name"] for c in conf["index_codecs"]] == ["bytes", "crc32c"]
        and [c["name"] for c in inner] == ["bytes", "blosc"]
        and inner[0].get("configuration", {}).get("endian", "little") == "little"
    )
    if not ok:
        raise ValueError(f"unsupported shard layout {conf}")
    blosc = inner[1]["configuration"]
    codec = numcodecs.Blosc(
        cname=blosc["cname"],
        clevel=blosc["clevel"],
        shuffle=_SHUFFLE[blosc["shuffle"]],
        blocksize=blosc.get("blocksize", 0),
    )
    return ShardLayout(codec, tuple(conf["chunk_shape"]), tuple(array.shards or ()))


class ShardEncoder:
    """Encodes blocks of an array into shards, as zarr's ``sharding_indexed`` codec would."""

    def __init__(self, array: zarr.Array) -> None:
        layout = shard_layout(array)
        self.codec = layout.codec
        self.array = array
        self.chunk_shape = layout.chunk_shape
        self.shard_shape = layout.shard_shape
        self.dtype = array.dtype.newbyteorder("<")
        self.fill_value = array.fill_value

    def encode(self, block: np.ndarray) -> bytes:
        """The shard bytes of ``block``: one shard's data, cut at the array's edge."""
        grid = tuple(s // c for s, c in zip(self.shard_shape, self.chunk_shape, strict=True))
        index = np.full((*grid, 2), _EMPTY, dtype="<u8")
        parts: list[bytes] = []
        offset = 0
        for coords in itertools.product(*(range(n) for n in grid)):
            lo = [i * c for i, c in zip(coords, self.chunk_shape, strict=True)]
            if any(start >= extent for start, extent in zip(lo, block.shape, strict=True)):
                continue  # wholly outside the array: never read, left empty
            piece = block[tuple(slice(s, s + c) for s, c in zip(lo, self.chunk_shape, strict=True))]
            if piece.shape != self.chunk_shape:  # the array's edge: pad with the fill value
                full = np.full(self.chunk_shape, self.fill_value, dtype=self.dtype)
                full[tuple(slice(0, n) for n in piece.shape)] = piece
                piece = full
            data = self.codec.encode(np.ascontiguousarray(piece, dtype=self.dtype))
            index[coords] = (offset, len(data))
            parts.append(bytes(data))
            offset += len(data)
        index_bytes = index.tobytes()
        checksum = google_crc32c.value(index_bytes).to_bytes(4, "little")
        return b"".join([*parts, index_bytes, checksum])

    def key(self, shard_coords: tuple[int, ...]) -> str:
        prefix = f"{self.array.path}/" if self.array.path else ""
        return prefix + "c/" + "/".join(map(str, shard_coords))


def write_shards(array: zarr.Array, start: int, block: np.ndarray) -> None:
    """Write ``block`` (trials ``start:start+len(block)``, every other axis whole) as whole shards.

    ``start`` must be a multiple of the shard length along the first axis and the block must end
    at a shard boundary or at the array's end. Arrays with another layout use zarr's writer.
    """
    try:
        encoder = ShardEncoder(array)
    except ValueError:
        array[start : start + len(block)] = block
        return
    shard = encoder.shard_shape
    if start % shard[0] or block.shape[1:] != tuple(array.shape[1:]):
        raise ValueError(f"block at {start} of shape {block.shape} is not shard-aligned")
    proto: Any = default_buffer_prototype()
    grid = [range(0, n, s) for n, s in zip(block.shape, shard, strict=True)]
    for origin in itertools.product(*grid):
        part = block[tuple(slice(o, o + s) for o, s in zip(origin, shard, strict=True))]
        coords = (
            (start + origin[0]) // shard[0],
            *(o // s for o, s in zip(origin[1:], shard[1:], strict=True)),
        )
        data = encoder.encode(part)
        sync(array.store.set(encoder.key(coords), proto.buffer.from_bytes(data)))
