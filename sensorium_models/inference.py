"""Running a model over a store: devices, the loaders a model needs, batches in, rates out.

:func:`model_loaders` builds the toolkit's loaders with the inputs a model takes (behaviour
channels, pupil centre, image scale), :func:`prepare` moves a batch to the device (pinned memory
and non-blocking copies on CUDA) and :func:`collect` runs a model over a loader into numpy
predictions aligned with the responses. :mod:`sensorium_models.evaluation` scores them, and
:mod:`sensorium_models.training` trains with them.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from sensorium_data.errors import SensoriumDataError
from sensorium_data.store.access import open_mouse
from sensorium_models.encoders import Encoder

__all__ = [
    "Collected",
    "autocast",
    "collect",
    "default_scale",
    "input_options",
    "model_kind",
    "model_loaders",
    "prepare",
    "resolve_device",
]

_MODEL_HEIGHT = 36  # the baselines' input height (144 x 256 images are scaled by 0.25)


# ----------------------------------------------------------------------------- devices, options


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None): CUDA when available, else CPU; anything else as torch reads it."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: not a torch device: {device!r} ({exc})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} asked for, but CUDA is not available here")
    return resolved


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision on CUDA only (bfloat16 where supported, else float16)."""
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def default_scale(store: Any, mice: Sequence[str], storage_options: Any = None) -> float:
    """The image scale the baselines expect: 0.25 for images taller than 72 px (144 x 256
    releases become 36 x 64), 1.0 for images already near 36 x 64 (videos, derived sets)."""
    heights = set()
    for mouse in mice:
        ds = open_mouse(store, mouse, storage_options, chunks=None)
        if "images" in ds.data_vars:
            heights.add(int(ds["images"].shape[-2]))
    if not heights:
        return 1.0
    return 0.25 if max(heights) > 2 * _MODEL_HEIGHT else 1.0


def model_kind(model: Encoder) -> str:
    """``"static"`` (2022) or ``"dynamic"`` (2023), from the model's config."""
    return str(model.config.kind)


def input_options(model: Encoder) -> dict[str, bool]:
    """The loader options that give the model its input channels: ``include_behavior`` and
    ``include_pupil``, from ``config.input_channels`` (1 stimulus channel, then 3 (2022) or
    2 (2023) behaviour channels, then 2 pupil channels, the loaders' order)."""
    extra = int(model.config.input_channels) - 1
    n_behavior = 3 if model_kind(model) == "static" else 2
    if extra not in (0, n_behavior, n_behavior + 2):
        raise SensoriumDataError(
            f"model: input_channels={extra + 1} fits no loader layout (1, {1 + n_behavior} with "
            f"behaviour, {3 + n_behavior} with behaviour and pupil)"
        )
    return {"include_behavior": extra >= n_behavior, "include_pupil": extra > n_behavior}


def model_loaders(
    model: Encoder,
    store: Any,
    tiers: Sequence[str],
    *,
    mice: Sequence[str],
    batch_size: int,
    frames: int | None = None,
    scale: float | None = None,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
    in_memory: bool | str = "auto",
    scored_frames: str = "competition",
    storage_options: Any = None,
    **split: Any,
) -> dict[str, dict[str, Any]]:
    """``make_loaders`` with the options a model needs (scale, behaviour channels); ``split``
    (``rank``, ``world_size``, ``drop_last``) passes on to it."""
    from sensorium_data.loading.loaders import make_loaders

    if scale is None:
        scale = default_scale(store, mice, storage_options)
    channels = input_options(model)
    extra: dict[str, Any] = {}
    if num_workers:
        extra = {"persistent_workers": True}
    return make_loaders(
        store,
        mice=list(mice),
        tiers=list(tiers),
        batch_size=batch_size,
        storage_options=storage_options,
        scale=scale,
        include_behavior=channels["include_behavior"],
        include_pupil=channels["include_pupil"],
        frames=frames if model_kind(model) == "dynamic" else None,
        seed=seed,
        in_memory=in_memory,
        num_workers=num_workers,
        pin_memory=pin_memory,
        **({"scored_frames": scored_frames} if model_kind(model) == "dynamic" else {}),
        **extra,
        **split,
    )


# ----------------------------------------------------------------------------- running a model


def prepare(
    model: Encoder,
    batch: Mapping[str, torch.Tensor],
    device: torch.device,
    *,
    responses: bool = True,
) -> tuple[torch.Tensor, dict[str, Any], torch.Tensor | None]:
    """(inputs, keyword arguments of the model, responses or None) of a batch, on ``device``
    (copied asynchronously from pinned memory on CUDA).

    NaN padding of whole-trial 2023 batches becomes 0 in the inputs; responses keep it.
    """
    asynchronous = device.type == "cuda"
    dynamic = "videos" in batch
    inputs = batch["videos" if dynamic else "images"].to(device, non_blocking=asynchronous)
    pupil = batch.get("pupil_center")
    kwargs: dict[str, Any] = {}
    if pupil is not None and model.config.use_shifter:
        kwargs["pupil_center"] = pupil.to(device, non_blocking=asynchronous)
    if model.config.behavior_modulator:
        if "behavior" not in batch:
            raise SensoriumDataError(
                f"model {model.config.name!r} has a behaviour modulator, but the data have no "
                "'behavior' variable"
            )
        kwargs["behavior"] = batch["behavior"].to(device, non_blocking=asynchronous)
    if dynamic:  # on the device: the pinned batch is copied as it is
        inputs = torch.nan_to_num(inputs)
        if "pupil_center" in kwargs:
            kwargs["pupil_center"] = torch.nan_to_num(kwargs["pupil_center"])
    if not responses:
        return inputs, kwargs, None
    return inputs, kwargs, batch["responses"].to(device, non_blocking=asynchronous)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Collected:
    """A model's predictions over one loader, in its (ascending file) order.

    ``predictions`` and ``responses`` are ``(trial, neuron)`` (2022) or ``(trial, neuron,
    frame)`` padded with NaN to ``n_frames`` after each trial's ``valid`` length (2023).
    """

    trials: np.ndarray
    predictions: np.ndarray
    responses: np.ndarray
    valid: np.ndarray | None = None


def _in_time(rates: torch.Tensor, frames: int, valid: torch.Tensor, n_frames: int) -> np.ndarray:
    """(B, T_out, N) rates of ``frames`` input frames (aligned to the last T_out of them) ->
    (B, N, n_frames): the lost first frames get the first prediction, NaN after ``valid``."""
    b, t_out, n = rates.shape
    lost = frames - t_out
    if lost < 0:
        raise SensoriumDataError(f"the model returned {t_out} frames for {frames} input frames")
    out = np.full((b, n, n_frames), np.nan, np.float32)
    values = rates.float().cpu().numpy().transpose(0, 2, 1)
    out[:, :, lost:frames] = values
    out[:, :, :lost] = values[:, :, :1]  # the first predicted frame, repeated backwards
    for j, v in enumerate(valid.tolist()):
        out[j, :, v:] = np.nan
    return out


def collect(
    model: Encoder,
    loader: Any,
    mouse: str,
    *,
    device: torch.device,
    amp: bool = False,
    n_frames: int | None = None,
) -> Collected:
    """Run ``model`` in eval mode over ``loader`` (one mouse, whole trials)."""
    trials, preds, resps, valids = [], [], [], []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in loader:
                inputs, kwargs, _ = prepare(model, batch, device, responses=False)
                with autocast(device, amp):
                    rates = model(inputs, mouse=mouse, **kwargs)
                trials.append(batch["trial"].numpy())
                responses = batch["responses"].numpy()
                if rates.ndim == 2:
                    preds.append(rates.float().cpu().numpy())
                    resps.append(responses)
                    continue
                valid, frames = batch["valid_frames"], inputs.shape[2]
                total = n_frames or frames
                preds.append(_in_time(rates, frames, valid, total))
                resp = np.full((len(valid), responses.shape[1], total), np.nan, np.float32)
                resp[:, :, :frames] = responses
                resps.append(resp)
                valids.append(valid.numpy())
    finally:
        model.train(was_training)
    return Collected(
        trials=np.concatenate(trials),
        predictions=np.concatenate(preds),
        responses=np.concatenate(resps),
        valid=np.concatenate(valids) if valids else None,
    )
