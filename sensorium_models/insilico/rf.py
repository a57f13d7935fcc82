"""Receptive fields of a model: its linearisation around the mean stimulus, centres and sizes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from sensorium_models.encoders import Encoder
from sensorium_models.insilico.inputs import InputSpace, model_responses

__all__ = ["gradient_receptive_fields", "receptive_field_centers"]


def _neurons(model: Encoder, mouse: str, neurons: Sequence[int] | None) -> np.ndarray:
    n = model.readout(mouse).n_neurons
    chosen = np.arange(n) if neurons is None else np.asarray(list(neurons), dtype=np.int64)
    if chosen.ndim != 1 or len(chosen) == 0:
        raise ValueError(f"neurons: give at least one neuron index of mouse {mouse!r}")
    if chosen.min() < 0 or chosen.max() >= n:
        bad = chosen[(chosen < 0) | (chosen >= n)].tolist()
        raise ValueError(f"neurons: {bad} are not in 0..{n - 1} (mouse {mouse!r})")
    return chosen


def gradient_receptive_fields(
    model: Encoder,
    mouse: str,
    space: InputSpace,
    neurons: Sequence[int] | None = None,
    *,
    batch_size: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Each neuron's gradient of its rate with respect to the stimulus at the mean stimulus.

    The mean stimulus is 0 in normalised units (the mouse's mean luminance); a linear model's
    gradient is its filter. Neurons are done ``batch_size`` at a time: a batch of copies of the
    mean stimulus, copy ``i`` differentiated for neuron ``i`` (default 256 images, 8 clips).

    Returns
    -------
    numpy.ndarray
        ``(len(neurons), *space.shape)`` float32 (video models: the gradient of the mean rate
        over the output frames, a spatio-temporal field).
    """
    chosen = _neurons(model, mouse, neurons)
    if batch_size is None:  # clips hold a video each: fewer at a time
        batch_size = 256 if space.kind == "static" else 8
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = np.empty((len(chosen), *space.shape), dtype=np.float32)
    try:
        for start in tqdm(range(0, len(chosen), batch_size), disable=not progress, desc="RFs"):
            idx = torch.as_tensor(chosen[start : start + batch_size], device=device)
            stimuli = torch.zeros(len(idx), *space.shape, device=device, requires_grad=True)
            rates = model_responses(model, mouse, stimuli, space)
            (grad,) = torch.autograd.grad(rates.gather(1, idx[:, None]).sum(), stimuli)
            out[start : start + len(idx)] = grad.cpu().numpy()
    finally:
        model.train(was_training)
    return out


def receptive_field_centers(
    fields: np.ndarray, *, threshold: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and size of each receptive field from its energy.

    The energy is the squared field (video fields: summed over frames); values below
    ``threshold`` times its maximum can be set to 0 (a field with a noisy surround). On the
    synthetic benchmark mouse (``benchmarks/insilico.py``) the full energy, ``threshold=0``,
    located centres best.

    Returns
    -------
    centers : numpy.ndarray
        ``(N, 2)`` (row, column) in pixels of the model's input, the energy's centroid.
    sizes : numpy.ndarray
        ``(N, 2)`` standard deviations of the energy along its principal axes (larger first);
        for a Gaussian field these are ``1 / sqrt(2)`` of the field's own.

    A field without energy (a neuron the stimulus does not reach) gets NaN centre and size.
    """
    energy = np.asarray(fields, dtype=np.float64) ** 2
    if energy.ndim == 4:  # (N, T, H, W)
        energy = energy.sum(axis=1)
    if energy.ndim != 3:
        raise ValueError(f"fields must be (N, H, W) or (N, T, H, W), got {np.shape(fields)}")
    peak = energy.max(axis=(1, 2), keepdims=True)
    weights = np.where(energy >= threshold * peak, energy, 0.0)
    total = weights.sum(axis=(1, 2))
    total = np.where(total > 0, total, np.nan)
    rows = np.arange(energy.shape[1], dtype=np.float64)[None, :, None]
    cols = np.arange(energy.shape[2], dtype=np.float64)[None, None, :]
    cy = (weights * rows).sum(axis=(1, 2)) / total
    cx = (weights * cols).sum(axis=(1, 2)) / total
    dy, dx = rows - cy[:, None, None], cols - cx[:, None, None]
    cov = (
        np.stack(
            [
                np.stack([(weights * dy * dy).sum((1, 2)), (weights * dy * dx).sum((1, 2))], -1),
                np.stack([(weights * dy * dx).sum((1, 2)), (weights * dx * dx).sum((1, 2))], -1),
            ],
            axis=-2,
        )
        / total[:, None, None]
    )
    sizes = np.sqrt(np.clip(np.linalg.eigvalsh(cov)[:, ::-1], 0.0, None))
    return np.stack([cy, cx], axis=1), sizes
