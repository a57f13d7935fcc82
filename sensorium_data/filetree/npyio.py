"""Reading ``.npy`` files safely, including the pickled object arrays of the real releases.

The SENSORIUM releases store some per-trial fields (``frame_trial_ts`` for instance) as object
arrays, which ``np.save`` writes as a pickle. Unpickling can run arbitrary code, so object arrays
are read with :class:`RestrictedUnpickler`, which admits only what ``np.save`` emits for arrays of
plain ``str``, ``int``, ``float``, ``bool`` and ``None`` (and numpy scalars of those kinds).
Anything else raises :class:`~sensorium_data.errors.UnsafePickleError` before it can run.
"""

from __future__ import annotations

import ast
import io
import json
import math
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from ..errors import InvalidFileTreeError, UnsafePickleError

__all__ = [
    "NpyHeader",
    "decode_object_array",
    "encode_object_array",
    "load_npy",
    "parse_npy_header",
    "save_npy",
]

PLAIN_TYPES = (str, int, float, bool, type(None), np.str_, np.integer, np.floating, np.bool_)
_SCALAR_KINDS = set("biufU?")


def _safe_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"refusing to reconstruct {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _safe_scalar(dtype: np.dtype, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.kind not in _SCALAR_KINDS:
        raise pickle.UnpicklingError(f"refusing a numpy scalar of dtype {dtype!r}")
    if not isinstance(data, bytes | None):
        raise pickle.UnpicklingError("numpy scalar data must be bytes")
    return np.frombuffer(data or b"", dtype=dtype, count=1)[0]


def _safe_dtype(*args: Any) -> np.dtype:
    dt = np.dtype(*args)
    if dt.kind not in _SCALAR_KINDS | {"O"}:
        raise pickle.UnpicklingError(f"refusing dtype {dt!r}")
    return dt


_ALLOWED = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _safe_reconstruct
    _ALLOWED[(_mod, "scalar")] = _safe_scalar
_ALLOWED[("numpy", "ndarray")] = np.ndarray
_ALLOWED[("numpy", "dtype")] = _safe_dtype


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that only rebuilds numpy object arrays of plain values."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed") from None


_MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class NpyHeader:
    """The header of a ``.npy`` file: array ``shape``, ``dtype``, memory order, data ``offset``."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int

    def array(self, data: bytes, name: str) -> np.ndarray:
        """A read-only view of the (non-object) array stored after the header in ``data``."""
        count = math.prod(self.shape)
        needed = self.offset + count * self.dtype.itemsize
        if len(data) < needed:
            raise InvalidFileTreeError(
                f"{name}: not a valid .npy file (truncated: {len(data)} bytes, the header "
                f"announces {self.dtype}{self.shape} needing {needed})"
            )
        flat = np.frombuffer(data, dtype=self.dtype, count=count, offset=self.offset)
        return flat.reshape(self.shape, order="F" if self.fortran_order else "C")


def parse_npy_header(data: bytes, name: str) -> NpyHeader:
    """Parse the header of a ``.npy`` file (versions 1.0, 2.0 and 3.0) without evaluating code.

    Whatever ``np.load`` refuses is refused too: other format versions (minor versions
    included), a header that is not a dict of exactly ``descr``, ``fortran_order`` and
    ``shape``, a shape that is not a tuple of integers, a ``fortran_order`` that is not a bool.
    """
    if data[:6] != _MAGIC or len(data) < 10:
        raise InvalidFileTreeError(f"{name}: not a valid .npy file (no NUMPY magic string)")
    major, minor = data[6], data[7]
    if (major, minor) not in ((1, 0), (2, 0), (3, 0)):
        raise InvalidFileTreeError(
            f"{name}: unsupported .npy format version {major}.{minor} (numpy reads 1.0, 2.0 "
            "and 3.0)"
        )
    if major == 1:
        length, start = int.from_bytes(data[8:10], "little"), 10
    else:
        length, start = int.from_bytes(data[8:12], "little"), 12
    try:
        text = data[start : start + length].decode("utf8" if major == 3 else "latin1")
        fields = ast.literal_eval(text)
        _check_header_fields(fields)
        dtype = npy_format.descr_to_dtype(fields["descr"])
    except (
        ValueError,
        SyntaxError,
        KeyError,
        TypeError,
        OverflowError,
        MemoryError,
        RecursionError,
        UnicodeDecodeError,
    ) as exc:
        raise InvalidFileTreeError(f"{name}: not a valid .npy file (bad header: {exc})") from None
    shape, fortran = fields["shape"], fields["fortran_order"]
    if len(data) < start + length or any(n < 0 for n in shape):
        raise InvalidFileTreeError(f"{name}: not a valid .npy file (truncated header)")
    return NpyHeader(tuple(shape), dtype, fortran, start + length)


def _check_header_fields(fields: Any) -> None:
    """numpy's checks of a parsed header (``numpy.lib.format._read_array_header``)."""
    if not isinstance(fields, dict):
        raise ValueError(f"header is not a dict: {fields!r:.80}")
    if set(fields) != {"descr", "fortran_order", "shape"}:
        raise ValueError(
            f"header keys {sorted(map(str, fields))} are not descr, fortran_order, shape"
        )
    shape = fields["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(n, int) for n in shape):
        raise ValueError(f"shape is not a tuple of integers: {shape!r:.80}")
    if not isinstance(fields["fortran_order"], bool):
        raise ValueError(f"fortran_order is not a bool: {fields['fortran_order']!r:.80}")


def load_npy(data: bytes, name: str) -> np.ndarray:
    """Decode the bytes of a ``.npy`` file, refusing unsafe pickles.

    Plain arrays come back as read-only views of ``data`` (no copy).

    Parameters
    ----------
    data
        The whole file.
    name
        Shown in error messages (the path of the file inside its tree).
    """
    header = parse_npy_header(data, name)
    if header.dtype.hasobject:
        fp = io.BytesIO(data)
        fp.seek(header.offset)
        return _load_object_array(fp, header.shape, header.dtype, name)
    return header.array(data, name)


def _load_object_array(
    fp: io.BytesIO, shape: tuple[int, ...], dtype: np.dtype, name: str
) -> np.ndarray:
    if dtype != np.dtype(object):
        raise UnsafePickleError(f"{name}: structured dtype {dtype} with objects is not supported")
    try:
        arr = RestrictedUnpickler(fp).load()
    except pickle.UnpicklingError as exc:
        raise UnsafePickleError(
            f"{name}: refused to unpickle: {exc}; only object arrays of plain "
            "str/int/float/bool/None are accepted"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any failure of a truncated or corrupt pickle
        raise InvalidFileTreeError(f"{name}: corrupt pickled object array ({exc})") from None
    if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
        raise InvalidFileTreeError(
            f"{name}: pickled payload is not an array of the header's shape {tuple(shape)}"
        )
    for value in arr.flat:
        if not isinstance(value, PLAIN_TYPES):
            raise UnsafePickleError(
                f"{name}: object array holds a {type(value).__name__}; only plain "
                "str/int/float/bool/None are accepted"
            )
    return arr


def encode_object_array(arr: np.ndarray) -> tuple[np.ndarray, str]:
    """Turn an object array of plain values into strings: ``(strings, encoding)``.

    Arrays of ``str`` only are kept as they are (encoding ``"str"``); arrays mixing other
    plain types are JSON-encoded element by element (encoding ``"json"``) so that export
    restores the exact values.
    """
    flat = list(arr.flat)
    if all(isinstance(v, str) for v in flat):
        return np.array([str(v) for v in flat], dtype=object).reshape(arr.shape), "str"
    out = [json.dumps(v.item() if isinstance(v, np.generic) else v) for v in flat]
    return np.array(out, dtype=object).reshape(arr.shape), "json"


def decode_object_array(strings: np.ndarray, encoding: str) -> np.ndarray:
    """Inverse of :func:`encode_object_array`."""
    flat = [str(v) for v in np.asarray(strings).flat]
    if encoding == "json":
        flat = [json.loads(v) for v in flat]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(np.shape(strings))


def save_npy(fp: Any, arr: np.ndarray) -> None:
    """Write ``arr`` as ``.npy`` the way the releases do (pickle only for object arrays)."""
    np.save(fp, arr, allow_pickle=arr.dtype.hasobject)
