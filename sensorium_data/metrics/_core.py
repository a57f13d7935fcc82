"""The official correlation primitive, the metrics' error, and their input checks.

Inputs are numpy, dask or xarray: :func:`_pair` gives numpy or dask arrays in a fixed dimension
order (predictions aligned to the responses' labels), :func:`_codes` a group code per trial.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import xarray as xr

from ..errors import SensoriumDataError

STATIC_DIMS = ("trial", "neuron")
DYNAMIC_DIMS = ("trial", "neuron", "frame")
SKIP = 50
_EPS = 1e-8


class MetricInputError(SensoriumDataError, ValueError):
    """Inputs a metric cannot score: shapes, trial counts, labels, non-finite predictions."""


def corr(y1: Any, y2: Any, axis: int | str = 0, eps: float = _EPS) -> Any:
    """The official correlation primitive (neuralpredictors ``corr``), along ``axis``.

    ``z = (y - mean(y)) / (std(y, ddof=0) + eps)`` for both arguments, then ``mean(z1 * z2)``.
    numpy, dask or xarray (``axis`` may then be a dimension name); a constant input gives 0.
    """
    kw: dict[str, Any] = {"dim": axis} if isinstance(axis, str) else {"axis": axis}
    z1, z2 = (_zscore(y, kw, eps) for y in (y1, y2))
    return (z1 * z2).mean(**kw)


def _zscore(y: Any, kw: dict[str, Any], eps: float) -> Any:
    if isinstance(y, xr.DataArray):
        return (y - y.mean(**kw)) / (y.std(ddof=0, **kw) + eps)
    return (y - y.mean(**kw, keepdims=True)) / (y.std(ddof=0, **kw, keepdims=True) + eps)


# ----------------------------------------------------------------------------- inputs


def _is_dask(value: Any) -> bool:
    return type(value).__module__.split(".")[0] == "dask"


def _parse_array(name: str, value: Any, dims: tuple[str, ...]) -> tuple[Any, xr.DataArray | None]:
    """(numpy or dask array in ``dims`` order, the DataArray it came from or None)."""
    template = None
    if isinstance(value, xr.DataArray):
        if sorted(map(str, value.dims)) != sorted(dims):
            raise MetricInputError(f"{name} has dims {value.dims}; expected {dims} (any order)")
        template = value.transpose(*dims)
        value = template.data
    arr = value if _is_dask(value) else np.asarray(value)
    if arr.ndim != len(dims):
        raise MetricInputError(
            f"{name} must be {len(dims)}-D ({', '.join(dims)}), got shape {arr.shape}"
        )
    if arr.dtype.kind not in "iuf":
        raise MetricInputError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr, template


def _align(pred: xr.DataArray, resp: xr.DataArray, dims: tuple[str, ...]) -> xr.DataArray:
    """``pred`` reordered to the labels of ``resp`` along the dims both index."""
    for dim in dims:
        if dim not in resp.indexes or dim not in pred.indexes:
            continue
        want, have = resp.indexes[dim], pred.indexes[dim]
        if want.equals(have):
            continue
        missing, extra = want.difference(have), have.difference(want)
        if len(missing) or len(extra) or not have.is_unique or len(have) != len(want):
            raise MetricInputError(
                f"predictions' {dim} labels differ from the responses': {len(missing)} missing "
                f"(e.g. {list(missing[:3])}), {len(extra)} extra (e.g. {list(extra[:3])}); "
                "the label sets must match exactly, each label once"
            )
        pred = pred.sel({dim: want})
    return pred


def _pair(responses: Any, predictions: Any, dims: tuple[str, ...]) -> tuple[Any, Any, Any]:
    resp, template = _parse_array("responses", responses, dims)
    pred, ptemplate = _parse_array("predictions", predictions, dims)
    if template is not None and ptemplate is not None:
        pred = _align(ptemplate, template, dims).data
    for axis, dim in enumerate(dims):
        if resp.shape[axis] != pred.shape[axis]:
            raise MetricInputError(
                f"predictions hold {pred.shape[axis]} {dim}s but responses hold "
                f"{resp.shape[axis]}; shapes {pred.shape} and {resp.shape} ({', '.join(dims)}) "
                "must be equal"
            )
    if resp.shape[0] == 0 or resp.shape[1] == 0:
        raise MetricInputError(f"responses hold no trials or no neurons (shape {resp.shape})")
    return resp, pred, template


def _codes(name: str, ids: Any, n_trials: int, template: xr.DataArray | None) -> np.ndarray:
    """Group code 0..G-1 of every trial from image ids or clip groups (any hashable labels)."""
    if isinstance(ids, xr.DataArray):
        if template is not None and "trial" in ids.indexes and "trial" in template.indexes:
            ids = ids.sel(trial=template.indexes["trial"])
        ids = ids.values
    ids = np.asarray(ids.compute() if _is_dask(ids) else ids)
    if ids.shape != (n_trials,):
        raise MetricInputError(
            f"{name} must hold one entry per trial ({n_trials}), got shape {ids.shape}"
        )
    return np.unique(ids, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _parse_skip(skip: Any) -> int:
    if isinstance(skip, bool) or not isinstance(skip, numbers.Integral) or skip < 0:
        raise MetricInputError(f"skip must be an integer >= 0, got {skip!r}")
    return int(skip)


def _parse_valid(valid: Any, template: xr.DataArray | None, shape: tuple[int, ...]) -> Any:
    """Valid lengths (n_trials,) or None (infer them from the NaN padding)."""
    if valid is None and template is not None and "valid_frames" in template.coords:
        valid = template.coords["valid_frames"].values
    if valid is None:
        return None
    v = np.asarray(valid.values if isinstance(valid, xr.DataArray) else valid)
    if v.shape != shape[:1] or v.dtype.kind not in "iu" or (v < 0).any() or (v > shape[2]).any():
        raise MetricInputError(
            f"valid_frames must hold one integer in 0..{shape[2]} per trial ({shape[0]}), "
            f"got {v.dtype} of shape {v.shape}"
            + (f", range {v.min()}..{v.max()}" if v.size else "")
        )
    return v.astype(np.int64)


def _parse_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise MetricInputError(f"{name} must be a real number, got {value!r}")
    return float(value)
