"""Metrics of the responses' repeats alone: FEV, explainable variance, oracle correlation."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ._core import (
    _EPS,
    DYNAMIC_DIMS,
    SKIP,
    STATIC_DIMS,
    MetricInputError,
    _codes,
    _parse_array,
    _parse_skip,
    _parse_valid,
)
from ._moments import _Moments, _moments, _Plan, _repeated, _result, _static_plan, _variances
from .dynamic import repeat_groups_from_videos

_IMAGE_ID_NAMES = ("frame_image_id", "image_id", "colorframeprojector_image_id")


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
    from ..store.access import open_mouse

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
