"""Tuning to full-field gratings: orientation, spatial period and phase (and, for video models,
drifting gratings: direction and temporal frequency).

A grating is ``contrast * sqrt(2) * sin(2 pi (x cos(theta) + y sin(theta)) / period + phase)``
in normalised units (x: column, y: row, in pixels of the model's input; with ``contrast`` 1 its
root-mean-square contrast is the data's pixel standard deviation). ``theta`` is the direction of
the grating's wave vector: ``orientation`` 0 is vertical stripes (luminance varying along x),
and angles grow toward +y (down the image); the synthetic encoder's ``rf_orientation`` is the
same angle. A drifting grating moves along ``theta`` (its
direction of motion, 0 to 2 pi) at ``temporal_frequency`` cycles per second.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from sensorium_models.encoders import Encoder
from sensorium_models.insilico.inputs import InputSpace
from sensorium_models.insilico.mei import natural_responses
from sensorium_models.insilico.rf import _neurons

__all__ = ["drifting_grating_tuning", "grating_tuning", "gratings", "preferred"]

FRAME_RATE = 30.0


def gratings(
    space: InputSpace,
    orientations: np.ndarray,
    periods: np.ndarray,
    phases: np.ndarray,
    *,
    contrast: float = 1.0,
) -> torch.Tensor:
    """Static gratings ``(len(orientations), len(periods), len(phases), H, W)`` (video models:
    each repeated over ``space.frames``, one more axis before H)."""
    yy = np.arange(space.height, dtype=np.float64)[:, None]
    xx = np.arange(space.width, dtype=np.float64)[None, :]
    theta = np.asarray(orientations, dtype=np.float64)[:, None, None, None, None]
    period = np.asarray(periods, dtype=np.float64)[None, :, None, None, None]
    phase = np.asarray(phases, dtype=np.float64)[None, None, :, None, None]
    arg = 2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + phase
    values = torch.as_tensor(contrast * np.sqrt(2.0) * np.sin(arg), dtype=torch.float32)
    if space.kind == "static":
        return values
    return values[..., None, :, :].expand(*values.shape[:3], space.frames, *values.shape[-2:])


def grating_tuning(
    model: Encoder,
    mouse: str,
    space: InputSpace,
    neurons: Sequence[int] | None = None,
    *,
    orientations: int = 16,
    periods: Sequence[float] = (4.0, 6.0, 8.0, 11.0, 16.0, 24.0),
    phases: int = 8,
    contrast: float = 1.0,
    batch_size: int = 256,
) -> xr.Dataset:
    """Responses to static full-field gratings and what each neuron prefers.

    Returns
    -------
    xarray.Dataset
        ``responses`` (neuron, orientation, period, phase); per neuron the
        ``preferred_period`` (pixels) and ``preferred_phase`` (radians, relative to the image's
        top-left pixel) of the strongest grating, the ``preferred_orientation`` (radians in
        [0, pi), from the orientation curve at the preferred period, see :func:`preferred`) and
        the ``orientation_selectivity`` (1 minus its circular variance).
    """
    chosen = _neurons(model, mouse, neurons)
    theta = np.arange(orientations) * np.pi / orientations
    phase = np.arange(phases) * 2 * np.pi / phases
    period = np.asarray(periods, dtype=np.float64)
    stimuli = gratings(space, theta, period, phase, contrast=contrast)
    flat = stimuli.reshape(-1, *space.shape)
    rates = natural_responses(model, mouse, space, flat, batch_size=batch_size)[:, chosen]
    responses = rates.T.reshape(len(chosen), len(theta), len(period), len(phase))
    out = xr.Dataset(
        {"responses": (("neuron", "orientation", "period", "phase"), responses)},
        coords={"neuron": chosen, "orientation": theta, "period": period, "phase": phase},
    )
    return preferred(out, "orientation", np.pi)


def drifting_grating_tuning(
    model: Encoder,
    mouse: str,
    space: InputSpace,
    neurons: Sequence[int] | None = None,
    *,
    directions: int = 16,
    temporal_frequencies: Sequence[float] = (1.0, 2.0, 4.0, 8.0),
    period: float = 11.0,
    contrast: float = 1.0,
    batch_size: int = 32,
) -> xr.Dataset:
    """Responses of a video model to drifting gratings, averaged over its output frames.

    Returns
    -------
    xarray.Dataset
        ``responses`` (neuron, direction, temporal_frequency); per neuron the
        ``preferred_direction`` (radians in [0, 2 pi)), ``preferred_temporal_frequency`` (Hz at
        30 frames/s) and ``direction_selectivity`` (1 minus circular variance over directions at
        the preferred temporal frequency).
    """
    if space.kind != "dynamic":
        raise ValueError("drifting gratings need a video (2023) model; use grating_tuning")
    chosen = _neurons(model, mouse, neurons)
    theta = np.arange(directions) * 2 * np.pi / directions
    tf = np.asarray(temporal_frequencies, dtype=np.float64)
    yy = np.arange(space.height, dtype=np.float64)[:, None]
    xx = np.arange(space.width, dtype=np.float64)[None, :]
    t = np.arange(space.frames, dtype=np.float64)[:, None, None]
    clips = np.empty((len(theta), len(tf), space.frames, space.height, space.width), np.float32)
    for i, th in enumerate(theta):
        for j, f in enumerate(tf):
            along = (xx * np.cos(th) + yy * np.sin(th))[None]
            clips[i, j] = np.sin(2 * np.pi * (along / period - f * t / FRAME_RATE))
    clips *= contrast * np.sqrt(2.0)
    rates = natural_responses(
        model, mouse, space, clips.reshape(-1, *space.shape), batch_size=batch_size
    )
    responses = rates[:, chosen].T.reshape(len(chosen), len(theta), len(tf))
    out = xr.Dataset(
        {"responses": (("neuron", "direction", "temporal_frequency"), responses)},
        coords={"neuron": chosen, "direction": theta, "temporal_frequency": tf},
    )
    return preferred(out, "direction", 2 * np.pi)


def preferred(tuning: xr.Dataset, angle: str, cycle: float) -> xr.Dataset:
    """Add each neuron's preferred stimulus and its selectivity along ``angle`` (period
    ``cycle``).

    The other axes' preferred values are those of the strongest stimulus. Along ``angle``, the
    tuning curve is taken at the preferred values of the other axes (the maximum over any
    phase axis); the preferred angle is the direction of its vector sum after subtracting its
    minimum (finer than the grid of angles, and robust to a flat top; NaN for a flat curve),
    and the selectivity is one minus the circular variance of the raw curve.
    """
    responses = tuning["responses"]
    stacked = responses.stack(stimulus=[d for d in responses.dims if d != "neuron"])
    best = stacked.isel(stimulus=stacked.argmax("stimulus"))
    out = tuning.copy()
    for dim in stacked.indexes["stimulus"].names:
        out[f"preferred_{dim}"] = ("neuron", np.asarray(best[dim].values))
    curve = responses.max("phase") if "phase" in responses.dims else responses
    others = [d for d in curve.dims if d not in ("neuron", angle)]
    if others:
        curve = curve.sel({d: out[f"preferred_{d}"] for d in others})
    r = np.asarray(curve.transpose("neuron", angle).values, dtype=np.float64)
    turns = np.exp(1j * np.asarray(tuning[angle].values) * (2 * np.pi / cycle))[None]
    summed = ((r - r.min(axis=1, keepdims=True)) * turns).sum(axis=1)
    direction = np.where(np.abs(summed) > 0, np.angle(summed), np.nan)  # flat: no preference
    out[f"preferred_{angle}"] = ("neuron", (direction * cycle / (2 * np.pi)) % cycle)
    positive = np.clip(r, 0, None)
    vector = np.abs((positive * turns).sum(axis=1))
    out[f"{angle}_selectivity"] = ("neuron", vector / np.maximum(positive.sum(axis=1), 1e-12))
    return out
