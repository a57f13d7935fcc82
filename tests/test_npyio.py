"""The .npy reader: identical to np.load for plain arrays, safe for pickled object arrays."""

from __future__ import annotations

import io
import os
import pickle

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorium_data.errors import InvalidFileTreeError, UnsafePickleError
from sensorium_data.filetree.npyio import decode_object_array, encode_object_array, load_npy


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(dtype=hnp.scalar_dtypes(), shape=hnp.array_shapes(min_dims=0, max_dims=3)))
def test_plain_arrays_equal_np_load(arr: np.ndarray) -> None:
    got = load_npy(npy_bytes(arr), "x.npy")
    assert got.dtype == arr.dtype and got.shape == arr.shape
    np.testing.assert_array_equal(got, arr)


plain = st.one_of(
    st.text(max_size=8),
    st.integers(-(10**12), 10**12),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(plain, min_size=1, max_size=12))
def test_object_arrays_of_plain_values_round_trip(values: list) -> None:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    got = load_npy(npy_bytes(arr), "obj.npy")
    assert got.dtype == object and len(got) == len(values)
    encoded, how = encode_object_array(got)
    back = decode_object_array(encoded, how)
    for a, b in zip(back, values, strict=True):
        assert type(a) is type(b) and (a == b or (a != a and b != b))


def test_numpy_scalars_inside_object_arrays_are_accepted() -> None:
    arr = np.array([np.float64(1.5), np.int64(3), np.str_("x"), np.bool_(True)], dtype=object)
    got = load_npy(npy_bytes(arr), "scalars.npy")
    assert list(got) == [1.5, 3, "x", True]


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


@pytest.mark.parametrize(
    "payload",
    [
        np.array([_RunsCode()], dtype=object),
        np.array([{"a": 1}], dtype=object),
        np.array([np.arange(3)], dtype=object),
        np.array([[1, 2]], dtype=object)[:, :1].astype(object),  # fine: plain ints, control
    ],
    ids=["os.system", "dict", "nested-array", "plain-control"],
)
def test_unsafe_pickles_are_refused_with_the_file_named(payload: np.ndarray) -> None:
    raw = npy_bytes(payload)
    if all(isinstance(v, int) for v in payload.flat):
        assert load_npy(raw, "ok.npy").tolist() == payload.tolist()
        return
    with pytest.raises(UnsafePickleError, match="meta/trials/evil.npy"):
        load_npy(raw, "meta/trials/evil.npy")


def test_handcrafted_pickle_calling_a_builtin_is_refused() -> None:
    buf = io.BytesIO()  # a valid object-array header followed by a pickle of a builtin
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|O", "fortran_order": False, "shape": (1,)}
    )
    raw = buf.getvalue() + pickle.dumps(eval)
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        load_npy(raw, "evil.npy")


@pytest.mark.parametrize(
    "raw, why",
    [
        (b"not a numpy file at all", "not a valid .npy"),
        (npy_bytes(np.arange(10.0))[:-5], "not a valid .npy"),
        (b"", "not a valid .npy"),
    ],
    ids=["garbage", "truncated", "empty"],
)
def test_invalid_files_name_the_file(raw: bytes, why: str) -> None:
    with pytest.raises(InvalidFileTreeError, match=f"data/responses/7.npy: {why}"):
        load_npy(raw, "data/responses/7.npy")


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_format_versions_and_fortran_order(version: tuple[int, int], order: str) -> None:
    arr = np.asarray(np.arange(24, dtype="<f4").reshape(2, 3, 4), order=order)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version)
    got = load_npy(buf.getvalue(), "v.npy")
    np.testing.assert_array_equal(got, arr)
    assert got.dtype == arr.dtype


def test_trailing_bytes_are_ignored_like_np_load() -> None:
    raw = npy_bytes(np.arange(4, dtype="i8")) + b"extra"
    np.testing.assert_array_equal(load_npy(raw, "t.npy"), np.arange(4))


def test_unknown_format_version_and_bad_header() -> None:
    raw = bytearray(npy_bytes(np.arange(3)))
    raw[6] = 9
    with pytest.raises(InvalidFileTreeError, match="unsupported .npy format version 9"):
        load_npy(bytes(raw), "v9.npy")
    good = npy_bytes(np.arange(3))
    broken = good.replace(b"'descr'", b"'dexcr'")
    with pytest.raises(InvalidFileTreeError, match="bad header"):
        load_npy(broken, "h.npy")


def _with_header(text: str, data: bytes = b"\x00" * 24) -> bytes:
    """A version 1.0 file whose header is ``text`` (padded as np.save pads it)."""
    header = text.encode("latin1")
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


def _minor(minor: int) -> bytes:
    raw = bytearray(npy_bytes(np.arange(3)))
    raw[7] = minor
    return bytes(raw)


@pytest.mark.parametrize(
    "raw, why",
    [
        (_minor(136), r"unsupported .npy format version 1.136"),
        (_minor(1), r"unsupported .npy format version 1.1"),
        (_with_header("{'descr': '<i8', 'fortran_order': False, 'shape': [3]}"), "shape is not"),
        (_with_header("{'descr': '<i8', 'fortran_order': False, 'shape': '3'}"), "shape is not"),
        (_with_header("{'descr': '<i8', 'fortran_order': False, 'shape': (3.0,)}"), "shape is"),
        (_with_header("{'descr': '<i8', 'fortran_order': 'no', 'shape': (3,)}"), "fortran_order"),
        (
            _with_header("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), 'x': 1}"),
            r"header keys \['descr', 'fortran_order', 'shape', 'x'\]",
        ),
        (_with_header("[('descr', '<i8')]"), "header is not a dict"),
        (_with_header(f"{{'descr': '<i8', 'fortran_order': False, 'shape': ({2**70},)}}"), "trunc"),
    ],
    ids=[
        "minor-136",
        "minor-1",
        "shape-list",
        "shape-str",
        "shape-float",
        "fortran-str",
        "extra-key",
        "not-dict",
        "huge-shape",
    ],
)
def test_headers_numpy_refuses_are_refused(raw: bytes, why: str) -> None:
    with pytest.raises((ValueError, OverflowError)):
        np.load(io.BytesIO(raw), allow_pickle=True)
    with pytest.raises(InvalidFileTreeError, match=f"^meta/x.npy: .*{why}"):
        load_npy(raw, "meta/x.npy")
