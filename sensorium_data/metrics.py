"""The official SENSORIUM 2022 and 2023 metrics, on numpy, xarray and dask (streamed).

Conventions
-----------
- 2022 (static) inputs are ``(trial, neuron)``; 2023 (dynamic) inputs are ``(trial, neuron,
  frame)``, the store's order (time last). An :class:`xarray.DataArray` is used by its dimension
  names (``trial``, ``neuron``, ``frame``; any order, so time-major predictions work), and when
  both arguments are DataArrays the predictions are reordered to the responses' ``trial`` and
  ``neuron`` labels (the id sets must match exactly, as the official scorers require).
- Results are computed, never lazy: a float, or with ``per_neuron=True`` a numpy vector (an
  :class:`xarray.DataArray` along ``neuron``, with the responses' neuron coordinates, when the
  responses were one). Dask-backed inputs are read one run of trial chunks at a time (about
  32 MiB), and the per-neuron sums are merged with the pairwise (Chan) formulas, so data larger
  than memory can be scored. Everything is accumulated in float64.
- A correlation is the official ``mean(z1 * z2)`` with ``z = (y - mean) / (std(ddof=0) + 1e-8)``
  (:func:`corr`), computed from centred sums: a constant prediction scores 0, not NaN.
- 2023: frames ``skip <= f < valid`` of each trial are scored (``skip=50``; 250 frames of a
  300-frame trial, the kit's count). The valid length comes from ``valid_frames``, else the
  responses' ``valid_frames`` coordinate, else the NaN padding (the first frame at which every
  neuron is NaN). A pooled correlation does not depend on the order of the trials, so the
  official sort by trial index is not needed. Predictions outside the scored frames are ignored
  and may be NaN; inside they must be finite. A NaN response inside them makes that neuron's
  correlation NaN, which counts as 0 (as the official code does).
- Trials of an image (2022) or clip (2023) shown once are left out of :func:`feve`, :func:`fev`,
  :func:`explainable_variance` and :func:`oracle_correlation`, as neuralpredictors'
  ``get_repeats(min_repeats=2)`` does (a single repeat has no within-image variance).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import numbers
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import xarray as xr

from .errors import SensoriumDataError

__all__ = [
    "MetricInputError",
    "bonus_track_score",
    "corr",
    "correlation_to_average",
    "dynamic_correlation_to_average",
    "dynamic_single_trial_correlation",
    "explainable_variance",
    "fev",
    "feve",
    "main_track_score",
    "oracle_correlation",
    "repeat_groups_from_videos",
    "single_trial_correlation",
    "store_oracle",
]

STATIC_DIMS = ("trial", "neuron")
DYNAMIC_DIMS = ("trial", "neuron", "frame")
SKIP = 50
_EPS = 1e-8
_BLOCK_BYTES = 32 * 2**20
_IMAGE_ID_NAMES = ("frame_image_id", "image_id", "colorframeprojector_image_id")


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
    step = max(1, _BLOCK_BYTES // max(1, 8 * int(np.prod(arr.shape[1:]))))
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


# ----------------------------------------------------------------------------- 2022


def single_trial_correlation(responses: Any, predictions: Any, *, per_neuron: bool = False) -> Any:
    """2022 single-trial correlation: per neuron over all trials, then the mean over neurons.

    Parameters
    ----------
    responses, predictions
        ``(trial, neuron)`` arrays (numpy, dask, or DataArrays matched by labels).
    per_neuron
        Return the per-neuron correlations instead of their mean.
    """
    resp, pred, template = _pair(responses, predictions, STATIC_DIMS)
    _need_trials(resp.shape[0], 2, "single_trial_correlation")
    plan = _static_plan(np.zeros(resp.shape[0], np.int64))
    m = _moments(resp[..., None], pred[..., None], plan, finite_x=True)
    return _result(_moment_corr(m), template, per_neuron, "single_trial_correlation")


def correlation_to_average(
    responses: Any, predictions: Any, image_ids: Any, *, per_neuron: bool = False
) -> Any:
    """2022 correlation to average: responses and predictions averaged over the repeats of each
    image id, correlated per neuron over images, then the mean over neurons.
    """
    resp, pred, template = _pair(responses, predictions, STATIC_DIMS)
    codes = _codes("image_ids", image_ids, resp.shape[0], template)
    m = _moments(resp[..., None], pred[..., None], _static_plan(codes), second=False, finite_x=True)
    if len(m.labels) < 2:
        raise MetricInputError("correlation_to_average needs at least 2 distinct image ids")
    return _result(corr(m.mx, m.my, axis=0), template, per_neuron, "correlation_to_average")


def feve(
    responses: Any,
    predictions: Any,
    image_ids: Any,
    *,
    fev_threshold: float = 0.15,
    per_neuron: bool = False,
) -> Any:
    """2022 fraction of explainable variance explained, mean over neurons with FEV >= threshold.

    Per neuron ``FEVE = 1 - (MSE - noise_var) / (total_var - noise_var)`` with
    ``total_var = var(all trials, ddof=1)``, ``noise_var`` the mean over images of the variance
    over repeats (ddof=1) and ``MSE = mean((r - p)^2)``; trials of images shown once are left
    out. Returns NaN when no neuron reaches the threshold. ``per_neuron=True`` gives every
    neuron, NaN for the unselected ones (the official code returns only the selected values:
    drop the NaNs to get them).
    """
    threshold = _parse_real("fev_threshold", fev_threshold)
    resp, pred, template = _pair(responses, predictions, STATIC_DIMS)
    codes = _codes("image_ids", image_ids, resp.shape[0], template)
    m = _moments(resp[..., None], pred[..., None], _static_plan(codes), finite_x=True)
    m = _repeated(m, "feve")
    total, noise = _variances(m)
    mse = (m.vx + m.vy - 2 * m.cxy + m.n[:, None] * (m.mx - m.my) ** 2).sum(0) / m.n.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        selected = (total - noise) / total >= threshold
        values = np.where(selected, 1 - (mse - noise) / (total - noise), np.nan)
    if per_neuron:
        return _result(values, template, True, "feve")
    return float(values[selected].mean()) if selected.any() else float("nan")


def _repeat_moments(
    what: str, responses: Any, ids: Any, skip: int, valid_frames: Any
) -> tuple[_Moments, Any]:
    """Moments of the responses per image (2-D input) or per (clip, frame) (3-D input)."""
    dynamic = (isinstance(responses, xr.DataArray) and "frame" in responses.dims) or (
        not isinstance(responses, xr.DataArray) and np.ndim(responses) == 3
    )
    resp, template = _parse_array("responses", responses, DYNAMIC_DIMS if dynamic else STATIC_DIMS)
    if resp.shape[0] == 0 or resp.shape[1] == 0:
        raise MetricInputError(f"responses hold no trials or no neurons (shape {resp.shape})")
    codes = _codes("image_ids", ids, resp.shape[0], template)
    if dynamic:
        valid = _parse_valid(valid_frames, template, resp.shape)
        plan = _Plan(codes, _parse_skip(skip), valid, per_frame=True)
        return _repeated(_moments(resp, None, plan), what), template
    m = _moments(resp[..., None], None, _static_plan(codes), finite_x=True)
    return _repeated(m, what), template


def fev(responses: Any, image_ids: Any, *, skip: int = SKIP, valid_frames: Any = None) -> Any:
    """Fraction of explainable variance per neuron, ``(total_var - noise_var) / total_var``.

    The FEV that :func:`feve` selects neurons by (NaN for a neuron of zero variance). 2-D
    ``(trial, neuron)`` responses with image ids, or 2023 ``(trial, neuron, frame)`` responses
    with clip groups (:func:`repeat_groups_from_videos`), whose scored frames are then
    samples grouped by (clip, frame). Trials shown once are left out.
    """
    m, template = _repeat_moments("fev", responses, image_ids, skip, valid_frames)
    total, noise = _variances(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _result((total - noise) / total, template, True, "fev")


def explainable_variance(
    responses: Any, image_ids: Any, *, skip: int = SKIP, valid_frames: Any = None
) -> Any:
    """Per-neuron explainable variance as the kits' ``compute_explainable_var``.

    ``(total_var - noise_var) / (total_var + 1e-9)``, over the repeated images (or clips) only;
    inputs as for :func:`fev`.
    """
    m, template = _repeat_moments("explainable_variance", responses, image_ids, skip, valid_frames)
    total, noise = _variances(m)
    return _result((total - noise) / (total + 1e-9), template, True, "explainable_variance")


def oracle_correlation(
    responses: Any, image_ids: Any, *, skip: int = SKIP, valid_frames: Any = None
) -> Any:
    """Per-neuron leave-one-out oracle correlation (neuralpredictors ``compute_oracle_corr``).

    Every trial of an image with ``r >= 2`` repeats is paired with the mean of the other
    ``r - 1`` repeats; :func:`corr` of the pairs pooled over all those trials, per neuron.
    Images shown once are left out (``get_repeats(min_repeats=2)``). 2023 ``(trial, neuron,
    frame)`` responses with clip groups pair every scored frame with the same frame of the
    other repeats. Computed exactly from per-group sums, so data are read once.
    """
    m, template = _repeat_moments("oracle_correlation", responses, image_ids, skip, valid_frames)
    r, vx = m.n[:, None], m.vx
    centred = m.mx - (m.n @ m.mx) / m.n.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        var_x = (vx + r * centred**2).sum(0)
        var_o = (r * centred**2 + vx / (r - 1) ** 2).sum(0)
        cov = (r * centred**2 - vx / (r - 1)).sum(0)
        scale = (np.sqrt(var_x / m.n.sum()) + _EPS) * (np.sqrt(var_o / m.n.sum()) + _EPS)
        values = cov / m.n.sum() / scale
    return _result(values, template, True, "oracle_correlation")


# ----------------------------------------------------------------------------- 2023


def _dynamic_moments(
    responses: Any, predictions: Any, groups: Any, skip: int, valid_frames: Any
) -> tuple[_Moments, Any]:
    resp, pred, template = _pair(responses, predictions, DYNAMIC_DIMS)
    valid = _parse_valid(valid_frames, template, resp.shape)
    if groups is None:
        plan = _Plan(np.zeros(resp.shape[0], np.int64), _parse_skip(skip), valid)
    else:
        codes = _codes("groups", groups, resp.shape[0], template)
        plan = _Plan(codes, _parse_skip(skip), valid, per_frame=True)
    m = _moments(resp, pred, plan, second=groups is None)
    if m.n.sum() < 2:
        raise MetricInputError(
            f"fewer than 2 scored frames: every trial is at most skip={skip} frames long "
            "(or all NaN)"
        )
    return m, template


def dynamic_single_trial_correlation(
    responses: Any,
    predictions: Any,
    *,
    skip: int = SKIP,
    valid_frames: Any = None,
    per_neuron: bool = False,
) -> Any:
    """2023 single-trial correlation of one mouse (main and bonus tracks).

    The scored frames (``skip <= f < valid length``) of all trials, concatenated along time,
    correlated per neuron (NaN counts as 0), mean over neurons.

    Parameters
    ----------
    responses, predictions
        ``(trial, neuron, frame)``, padded to one length (DataArrays: any dim order).
    skip
        Unscored frames at the start of every trial.
    valid_frames
        Valid length of every trial; default: the responses' ``valid_frames`` coordinate, else
        the NaN padding.
    per_neuron
        Return the per-neuron correlations instead of their mean.
    """
    m, template = _dynamic_moments(responses, predictions, None, skip, valid_frames)
    values = _moment_corr(m)
    values[np.isnan(values)] = 0.0
    return _result(values, template, per_neuron, "single_trial_correlation")


def dynamic_correlation_to_average(
    responses: Any,
    predictions: Any,
    groups: Any,
    *,
    skip: int = SKIP,
    valid_frames: Any = None,
    per_neuron: bool = False,
) -> Any:
    """2023 correlation to average of one mouse.

    Responses and predictions averaged frame by frame over each group of repeats (``groups``: a
    label per trial, e.g. from :func:`repeat_groups_from_videos`), the averages of all groups'
    scored frames concatenated, correlated per neuron (NaN counts as 0), mean over neurons. A
    frame of a group averages the repeats in which it is scored; a group of one trial is its
    own average.
    """
    m, template = _dynamic_moments(responses, predictions, groups, skip, valid_frames)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.asarray(corr(m.mx, m.my, axis=0))
    values[np.isnan(values)] = 0.0
    return _result(values, template, per_neuron, "correlation_to_average")


def _mouse_entry(mouse: str, entry: Any) -> tuple[Any, Any, Any]:
    if isinstance(entry, Mapping) and {"responses", "predictions"} <= set(entry):
        return entry["responses"], entry["predictions"], entry.get("valid_frames")
    if isinstance(entry, tuple | list) and len(entry) in (2, 3):
        return entry[0], entry[1], entry[2] if len(entry) == 3 else None
    raise MetricInputError(
        f"mouse {mouse!r}: expected (responses, predictions[, valid_frames]) or a mapping with "
        f"'responses' and 'predictions', got {type(entry).__name__}"
    )


def main_track_score(mice: Mapping[str, Any], *, skip: int = SKIP) -> float:
    """2023 score: :func:`dynamic_single_trial_correlation` per mouse, equal-weight mean.

    ``mice`` maps a mouse name to ``(responses, predictions)``, ``(responses, predictions,
    valid_frames)`` or a mapping with those keys. (The kit's validation metric instead pools
    the neurons of all mice and scores random windows; this is the leaderboard's definition.)
    """
    if not isinstance(mice, Mapping) or not mice:
        raise MetricInputError(f"mice must be a non-empty mapping of mouse -> arrays, got {mice!r}")
    scores = []
    for mouse, entry in mice.items():
        resp, pred, valid = _mouse_entry(mouse, entry)
        scores.append(dynamic_single_trial_correlation(resp, pred, skip=skip, valid_frames=valid))
    return float(np.mean(scores))


def bonus_track_score(types: Mapping[str, Mapping[str, Any]], *, skip: int = SKIP) -> float:
    """2023 bonus (out-of-distribution) score.

    ``types`` maps a stimulus type to the mice that have it (as for :func:`main_track_score`):
    the single-trial correlation per type and mouse, averaged over mice, then over types.
    """
    if not isinstance(types, Mapping) or not types:
        raise MetricInputError(
            f"types must be a non-empty mapping of stimulus type -> mice, got {types!r}"
        )
    for kind, mice in types.items():
        if not isinstance(mice, Mapping) or not mice:
            raise MetricInputError(f"stimulus type {kind!r} maps to no mice: {mice!r}")
    return float(np.mean([main_track_score(mice, skip=skip) for mice in types.values()]))


def repeat_groups_from_videos(videos: Any) -> np.ndarray:
    """A group label per trial (0, 1, ... in order of first appearance): equal for bit-identical
    clips. ``videos`` has trials first (a DataArray: a ``trial`` dim); dask is read in blocks.
    """
    if isinstance(videos, xr.DataArray):
        if "trial" not in videos.dims:
            raise MetricInputError(f"videos has dims {videos.dims}; expected a 'trial' dim")
        videos = videos.transpose("trial", ...).data
    arr = videos if _is_dask(videos) else np.asarray(videos)
    if arr.ndim < 1:
        raise MetricInputError(f"videos must have a trial axis first, got shape {arr.shape}")
    seen: dict[bytes, int] = {}
    labels = np.empty(arr.shape[0], np.int64)
    for sl in _trial_slices(arr):
        (block,) = _compute(arr[sl])
        for i, clip in enumerate(np.asarray(block), start=sl.start):
            digest = hashlib.blake2b(np.ascontiguousarray(clip).tobytes(), digest_size=16)
            labels[i] = seen.setdefault(digest.digest(), len(seen))
    return labels


# ----------------------------------------------------------------------------- stores


def store_oracle(
    url: Any,
    mouse: str | None = None,
    *,
    tier: str | None = None,
    skip: int = SKIP,
    storage_options: dict[str, Any] | None = None,
) -> xr.DataArray:
    """Per-neuron :func:`oracle_correlation` of one mouse of a store, on one tier's repeats.

    2022 mice group the trials by ``frame_image_id`` (default tier ``"test"``); 2023 mice by
    identical clips (default tier ``"oracle"``) and score frames ``skip`` .. valid length.
    Responses are read lazily, one run of chunks at a time. Withheld (all-zero) responses
    give 0. Returns a DataArray along ``neuron`` with the store's neuron coordinates.
    """
    from .stores import open_mouse

    ds = open_mouse(url, mouse, storage_options)
    dynamic = "frame" in ds["responses"].dims
    tier = tier or ("oracle" if dynamic else "test")
    tiers = np.asarray(ds["tiers"].values).tolist()
    trials = np.flatnonzero([t == tier for t in tiers])
    if not len(trials):
        raise MetricInputError(
            f"{url}: the mouse has no trials of tier {tier!r}; its tiers: {sorted(set(tiers))}"
        )
    sub = ds.isel(trial=trials)
    if dynamic:
        ids: Any = repeat_groups_from_videos(sub["videos"])
    else:
        names = [n for n in _IMAGE_ID_NAMES if n in sub.coords or n in sub.data_vars]
        if not names:
            raise MetricInputError(
                f"{url}: the mouse has no image id ({', '.join(_IMAGE_ID_NAMES)})"
            )
        ids = sub[names[0]].values
    return oracle_correlation(sub["responses"], ids, skip=skip)  # type: ignore[no-any-return]
