"""In-memory and device-resident batches: model-ready tensors gathered per batch.

:class:`~.datasets.MouseDataset` holds each array of its trials model-ready (normalised, float32)
in host memory or on a torch device; a batch is gathered from them here, the same on every
device: 2022 one ``index_select`` per array, the behaviour (and pupil) channels written into the
preallocated image batch; 2023 one slice copy per window, the video laid out
``(B, 1 + channels, T, H, W)``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import SensoriumDataError
from .options import BatchPlan

__all__ = ["DeviceMemoryError", "device_free_bytes", "gather_dynamic", "gather_static"]


class DeviceMemoryError(SensoriumDataError, MemoryError):
    """A mouse's model-ready arrays do not fit the device (or the memory budget) asked for."""


def device_free_bytes(device: torch.device) -> int | None:
    """Free memory of a torch device in bytes (CUDA: from the driver); ``None`` for the host,
    where the arrays are built in the first place, and devices that do not say."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return None


def gather_static(
    ready: dict[str, torch.Tensor], plan: BatchPlan, extras: list[str]
) -> dict[str, Any]:
    """A 2022 batch from the model-ready tensors: one gather per array; the behaviour (and
    pupil) channels are written into the preallocated image batch, not concatenated."""
    where = next(iter(ready.values())).device
    index = torch.as_tensor(plan.positions, device=where)
    out = {k: torch.index_select(v, 0, index) for k, v in ready.items() if k != "images"}
    if "images" in ready:
        images = ready["images"]
        channels = [out[k] for k in extras]
        if channels:
            c = images.shape[1]
            n = c + sum(e.shape[1] for e in channels)
            batch = torch.empty(
                (len(index), n, *images.shape[2:]), dtype=torch.float32, device=where
            )
            if where.type == "cpu" and len(index):  # gathered into the image channels
                flat = batch.view(len(index), -1)[:, : images[0].numel()]
                torch.index_select(images.view(len(images), -1), 0, index, out=flat)
            else:  # index_select's out= wants a contiguous tensor on some devices
                batch[:, :c] = torch.index_select(images, 0, index)
            for e in channels:
                batch[:, c : c + e.shape[1]] = e[:, :, None, None]
                c += e.shape[1]
            out["images"] = batch
        else:
            out["images"] = torch.index_select(images, 0, index)
    out["trial"] = torch.as_tensor(plan.trials, device=where)
    return out


def gather_dynamic(
    ready: dict[str, torch.Tensor], plan: BatchPlan, extras: list[str], floats: set[str]
) -> dict[str, Any]:
    """A 2023 batch from the whole normalised trials: each window copied as one slice into
    the preallocated batch (the video straight into ``(B, 1 + channels, T, H, W)``), NaN
    past a short trial's valid length, the behaviour channels written in."""
    where = next(iter(ready.values())).device
    length = plan.length or 0
    rows, starts = plan.positions.tolist(), plan.starts.tolist()
    out: dict[str, Any] = {}
    for key, values in ready.items():
        if key == "videos":  # stored (M, H, W, T): frames first in the batch
            channels = sum(ready[k].shape[1] for k in extras)
            shape = (len(rows), 1 + channels, length, *values.shape[1:3])
            got = torch.empty(shape, dtype=torch.float32, device=where)
            for j, (i, s) in enumerate(zip(rows, starts, strict=True)):
                got[j, 0] = values[i, ..., s : s + length].permute(2, 0, 1)
        else:
            shape = (len(rows), *values.shape[1:-1], length)
            got = torch.empty(shape, dtype=torch.float32, device=where)
            for j, (i, s) in enumerate(zip(rows, starts, strict=True)):
                got[j] = values[i, ..., s : s + length]
        if key in floats:  # past the valid frames: NaN
            for j, n in enumerate(plan.lengths.tolist()):
                if n < length:
                    (got[j, 0, n:] if key == "videos" else got[j, ..., n:]).fill_(float("nan"))
        out[key] = got
    if "videos" in out:
        c = 1
        for key in extras:  # (B, k, T) -> (B, k, T, 1, 1)
            extra = out[key]
            out["videos"][:, c : c + extra.shape[1]] = extra[..., None, None]
            c += extra.shape[1]
    out["trial"] = torch.as_tensor(plan.trials, device=where)
    out["frame_start"] = torch.as_tensor(plan.starts, device=where)
    out["valid_frames"] = torch.as_tensor(plan.lengths, device=where)
    return out
