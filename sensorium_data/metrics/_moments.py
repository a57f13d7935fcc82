"""Grouped per-neuron moments, read one run of trial chunks at a time and merged exactly.

Every metric is computed from these sums (counts, means, centred (co)moments per group), so
dask-backed data larger than memory is read once, block by block.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import xarray as xr

from ._core import _EPS, MetricInputError, _is_dask

# Bytes of a run of trials read at once. _trial_slices reads the package's value
# (sensorium_data.metrics._BLOCK_BYTES), so that setting it there, as the tests do, works.
_BLOCK_BYTES = 32 * 2**20


# ----------------------------------------------------------------------------- moments


@dataclasses.dataclass(frozen=True)
class _Moments:
    """Per-group counts, means and centred (co)moment sums; a row per group, a column per neuron."""

    labels: np.ndarray
    n: np.ndarray
    mx: np.ndarray
    my: Any = None  # the optional fields are arrays like mx, or None when not computed
    vx: Any = None
    vy: Any = None
    cxy: Any = None

    def subset(self, keep: np.ndarray) -> _Moments:
        kept: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            kept[field.name] = None if value is None else value[keep]
        return _Moments(**kept)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Which entries of a trial block are scored and in which group they fall."""

    codes: np.ndarray
    skip: int = 0
    valid: np.ndarray | None = None
    per_frame: bool = False

    def layout(self, sl: slice, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_frames = block.shape[2]
        valid = self.valid[sl] if self.valid is not None else _infer_valid(block)
        frames = np.arange(n_frames)
        mask = (frames >= self.skip) & (frames < valid[:, None])
        codes = self.codes[sl][:, None] * (n_frames if self.per_frame else 1)
        return mask, np.broadcast_to(codes + frames * self.per_frame, mask.shape)


def _infer_valid(block: np.ndarray) -> np.ndarray:
    """Valid length per trial: the first frame at which every neuron is NaN (else all)."""
    padding = np.isnan(block).all(axis=1)
    return np.asarray(np.where(padding.any(axis=1), padding.argmax(axis=1), block.shape[2]))


def _segment_sum(inv: np.ndarray, rows: np.ndarray, n_groups: int) -> np.ndarray:
    if n_groups <= 1:
        return np.asarray(rows.sum(axis=0, keepdims=True)[:n_groups])
    order = np.argsort(inv, kind="stable")
    starts = np.searchsorted(inv[order], np.arange(n_groups))
    return np.asarray(np.add.reduceat(rows[order], starts, axis=0))


def _merge(parts: list[_Moments], second: bool) -> _Moments:
    """Merge per-group moments by label (pairwise formulas of Chan, Golub and LeVeque)."""
    labels, inv = np.unique(np.concatenate([p.labels for p in parts]), return_inverse=True)
    inv, groups = inv.reshape(-1), len(labels)
    n = np.concatenate([p.n for p in parts])
    total = np.bincount(inv, weights=n, minlength=groups)
    out: dict[str, Any] = {"labels": labels, "n": total}
    deviations = {}
    for k in ("x", "y"):
        if getattr(parts[0], "m" + k) is None:
            continue
        means = np.concatenate([getattr(p, "m" + k) for p in parts])
        out["m" + k] = _segment_sum(inv, n[:, None] * means, groups) / total[:, None]
        if second:
            deviations[k] = means - out["m" + k][inv]
    if second:
        for key, (a, b) in {"vx": ("x", "x"), "vy": ("y", "y"), "cxy": ("x", "y")}.items():
            if a in deviations and b in deviations:
                base = [getattr(p, key) for p in parts]
                base_rows = 0.0 if base[0] is None else np.concatenate(base)
                terms = base_rows + n[:, None] * deviations[a] * deviations[b]
                out[key] = _segment_sum(inv, terms, groups)
    return _Moments(**out)


def _block_moments(
    xb: Any, yb: Any, mask: np.ndarray, codes: np.ndarray, *, second: bool, finite_x: bool
) -> _Moments:
    """Moments of the scored entries of one block: every entry is a group of one, merged."""
    rows = mask.reshape(-1)

    def flat(a: np.ndarray) -> np.ndarray:
        return np.asarray(
            np.moveaxis(np.asarray(a, np.float64), 2, 1).reshape(-1, a.shape[1])[rows]
        )

    x, y = flat(xb), None if yb is None else flat(yb)
    if y is not None and not np.isfinite(y).all():
        raise MetricInputError(
            "predictions hold NaN or inf in scored entries; every scored prediction must be finite"
        )
    if finite_x and not np.isfinite(x).all():
        raise MetricInputError("responses hold NaN or inf; 2022 responses must be finite")
    part = _Moments(codes.reshape(-1)[rows], np.ones(len(x)), x, y)
    return _merge([part], second)


def _trial_slices(arr: Any) -> Iterator[slice]:
    """Runs of whole trial chunks (dask) or trials (numpy) of about ``_BLOCK_BYTES`` each."""
    n = arr.shape[0]
    block_bytes = sys.modules[__package__]._BLOCK_BYTES
    step = max(1, block_bytes // max(1, 8 * int(np.prod(arr.shape[1:]))))
    edges = np.cumsum(arr.chunks[0]) if _is_dask(arr) else np.arange(1, n + 1)
    start = 0
    for edge in edges.tolist():
        if edge - start >= step or edge == n:
            yield slice(start, edge)
            start = edge


def _compute(*arrays: Any) -> tuple[Any, ...]:
    if any(_is_dask(a) for a in arrays):
        from dask.base import compute

        return tuple(compute(*arrays))  # type: ignore[no-untyped-call]
    return arrays


def _moments(
    x: Any, y: Any, plan: _Plan, *, second: bool = True, finite_x: bool = False
) -> _Moments:
    """Grouped moments of responses ``x`` (and predictions ``y``), (trial, neuron, frame)."""
    acc = None
    for sl in _trial_slices(x):
        xb, yb = _compute(x[sl], None if y is None else y[sl])
        mask, codes = plan.layout(sl, xb)
        part = _block_moments(xb, yb, mask, codes, second=second, finite_x=finite_x)
        acc = part if acc is None else _merge([acc, part], second)
    if acc is None:  # pragma: no cover - callers refuse inputs without trials
        raise MetricInputError("no trials to score")
    return acc


def _pooled(m: _Moments) -> _Moments:
    return _merge([dataclasses.replace(m, labels=np.zeros(len(m.labels), np.int64))], True)


def _moment_corr(m: _Moments) -> np.ndarray:
    """``corr`` of the pooled entries of a one-group ``_Moments``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        sx, sy = np.sqrt(m.vx[0] / m.n[0]), np.sqrt(m.vy[0] / m.n[0])
        return np.asarray(m.cxy[0] / m.n[0] / ((sx + _EPS) * (sy + _EPS)))


def _repeated(m: _Moments, what: str) -> _Moments:
    keep = m.n >= 2
    if not keep.any():
        raise MetricInputError(
            f"{what} needs repeats: every image (or clip) occurs in one trial only"
        )
    return m.subset(keep)


def _variances(m: _Moments) -> tuple[np.ndarray, np.ndarray]:
    """(total variance over all trials, mean within-group variance), both ddof=1."""
    pooled = _pooled(m)
    total = pooled.vx[0] / (pooled.n[0] - 1)
    return total, (m.vx / (m.n[:, None] - 1)).mean(axis=0)


def _result(values: np.ndarray, template: Any, per_neuron: bool, name: str) -> Any:
    if not per_neuron:
        return float(np.mean(values))
    if template is None:
        return values
    coords = {k: c.variable for k, c in template.coords.items() if c.dims == ("neuron",)}
    return xr.DataArray(values, dims=("neuron",), coords=coords, name=name)


def _static_plan(codes: np.ndarray) -> _Plan:
    return _Plan(codes, valid=np.ones(len(codes), np.int64))


def _need_trials(n: int, minimum: int, what: str) -> None:
    if n < minimum:
        raise MetricInputError(f"{what} needs at least {minimum} trials, got {n}")
