"""The SENSORIUM 2023 (dynamic videos) metrics: per mouse, and the main and bonus track scores."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from ._core import (
    DYNAMIC_DIMS,
    SKIP,
    MetricInputError,
    _codes,
    _is_dask,
    _pair,
    _parse_skip,
    _parse_valid,
    corr,
)
from ._moments import _compute, _moment_corr, _Moments, _moments, _Plan, _result, _trial_slices

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
