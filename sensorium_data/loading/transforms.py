"""Sample transforms of the official SENSORIUM loaders, on numpy batches (no torch).

- :func:`rescale_images` is neuralpredictors' ``ScaleInputs`` (:mod:`sensorium_data.store.images`,
  where conversion uses it for the stores' scaled copy).
- :func:`add_behavior_channels` is ``AddBehaviorAsChannels`` (then ``AddPupilCenterAsChannels``).
- :func:`valid_length`, :func:`draw_window_starts` and :func:`valid_window` are the 2023 kit's
  ``CutVideos`` and ``Subsequence`` for batches: cut at the valid length, then ``frames``
  consecutive frames from a start.

Every function takes a batch (leading batch axis) and returns float32 arrays.
"""

from __future__ import annotations

import numpy as np

from ..store.images import rescale_images, rescaled_size

__all__ = [
    "add_behavior_channels",
    "draw_window_starts",
    "rescale_images",
    "rescaled_size",
    "valid_length",
    "valid_window",
]


# ----------------------------------------------------------------------------- behaviour channels


def _constant_channels(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``(B, k[, T])`` -> ``(B, k[, T], H, W)``, constant over the image."""
    return np.broadcast_to(values[..., None, None], (*values.shape, *shape[-2:]))


def add_behavior_channels(
    images: np.ndarray, behavior: np.ndarray, pupil_center: np.ndarray | None = None
) -> np.ndarray:
    """Append behaviour (then pupil centre) as constant image channels, as the official kits do.

    Parameters
    ----------
    images
        2022: ``(B, C, H, W)`` images. 2023: ``(B, T, H, W)`` video frames (a channel axis of 1 is
        added) or ``(B, C, T, H, W)`` videos.
    behavior
        2022: ``(B, 3)``. 2023: ``(B, 2, T)``, one value per frame.
    pupil_center
        Optional ``(B, 2)`` or ``(B, 2, T)``, appended after the behaviour channels.

    Returns
    -------
    numpy.ndarray
        float32 ``(B, C + 3 [+ 2], H, W)`` (2022) or ``(B, C + 2 [+ 2], T, H, W)`` (2023).

    Notes
    -----
    Reproduces neuralpredictors ``AddBehaviorAsChannels`` followed by ``AddPupilCenterAsChannels``
    (``transform_function``): the stimulus first, then every behaviour variable in its stored
    order (2022: pupil dilation, its derivative, running speed; 2023: pupil dilation, running
    speed), then horizontal and vertical pupil position. In 2023 each frame's channels hold that
    frame's values. The 2022 kit adds the channels before rescaling; the channels are constant,
    so adding them after :func:`rescale_images` gives the same values.
    """
    images = np.asarray(images)
    behavior = np.asarray(behavior)
    extras = [behavior] if pupil_center is None else [behavior, np.asarray(pupil_center)]
    if behavior.ndim == 2:
        if images.ndim != 4:
            raise ValueError(
                f"2022 images must be (B, C, H, W) with behavior (B, k); got images "
                f"{images.shape} and behavior {behavior.shape}"
            )
    elif behavior.ndim == 3:
        if images.ndim == 4:
            images = images[:, None]
        if images.ndim != 5 or images.shape[2] != behavior.shape[2]:
            raise ValueError(
                f"2023 videos must be (B, T, H, W) or (B, C, T, H, W) with behavior (B, k, T) of "
                f"the same T; got videos {images.shape} and behavior {behavior.shape}"
            )
    else:
        raise ValueError(f"behavior must be (B, k) or (B, k, T), got shape {behavior.shape}")
    for extra in extras:
        if extra.shape[0] != images.shape[0] or extra.ndim != behavior.ndim:
            raise ValueError(
                f"behaviour arrays must match the batch: images {images.shape}, got {extra.shape}"
            )
    parts = [images, *(_constant_channels(e, images.shape) for e in extras)]
    return np.concatenate(parts, axis=1, dtype=np.float32)


# ----------------------------------------------------------------------------- 2023 windows


def valid_length(*arrays: np.ndarray) -> np.ndarray:
    """Per-sample valid length of a batch of 2023 trials (time on the last axis).

    The kit's ``CutVideos(max_frame=None)``: the first frame that holds a NaN anywhere, in any
    of the arrays; the full length where there is none.

    Parameters
    ----------
    *arrays
        Arrays ``(B, ..., T)`` of the same batch and frame count (videos, responses, ...).

    Returns
    -------
    numpy.ndarray
        int64 ``(B,)``.
    """
    if not arrays:
        raise ValueError("valid_length needs at least one array")
    batch, n_frames = arrays[0].shape[0], arrays[0].shape[-1]
    out = np.full(batch, n_frames, dtype=np.int64)
    for array in arrays:
        arr = np.asarray(array)
        if arr.shape[0] != batch or arr.shape[-1] != n_frames:
            raise ValueError(
                f"arrays must share batch and frame axes: {arrays[0].shape} and {arr.shape}"
            )
        nan_frames = np.isnan(arr).reshape(batch, -1, n_frames).any(axis=1)
        first = np.where(nan_frames.any(axis=1), nan_frames.argmax(axis=1), n_frames)
        out = np.minimum(out, first)
    return out


def draw_window_starts(
    valid_frames: np.ndarray | int,
    frames: int,
    *,
    rng: np.random.Generator,
    include_last: bool = False,
) -> np.ndarray:
    """Random window starts, uniform over the valid range, as the kit's ``Subsequence``.

    Parameters
    ----------
    valid_frames
        Valid length of each sample (``(B,)``) or one length.
    frames
        Window length.
    rng
        Source of randomness.
    include_last
        ``False`` (the kit): starts in ``[0, valid - frames - 1]``, i.e.
        ``np.random.randint(0, valid - frames)``, so the window that ends on the last valid frame
        is never drawn and ``valid == frames`` is an error. ``True``: starts in
        ``[0, valid - frames]``.

    Returns
    -------
    numpy.ndarray
        int64 starts, shaped like ``valid_frames``.
    """
    valid = np.asarray(valid_frames, dtype=np.int64)
    high = valid - frames + (1 if include_last else 0)
    if np.any(high <= 0):
        need = frames + (0 if include_last else 1)
        raise ValueError(
            f"a random window of {frames} frames needs at least {need} valid frames; "
            f"got valid lengths {np.unique(valid[high <= 0]).tolist()}"
        )
    return rng.integers(0, high, dtype=np.int64)


def valid_window(
    values: np.ndarray,
    *,
    frame_start: np.ndarray | int,
    frames: int,
    valid_frames: np.ndarray | int | None = None,
) -> np.ndarray:
    """Take ``frames`` consecutive frames from each sample's ``frame_start`` (time last).

    Parameters
    ----------
    values
        ``(B, ..., T)`` batch in the stored layout.
    frame_start
        First frame of each sample's window (``(B,)``) or one start for all.
    frames
        Window length.
    valid_frames
        Valid length of each sample (or one): a window running past it is an error. The kit
        slices silently and returns a shorter window; a batch cannot be ragged.

    Returns
    -------
    numpy.ndarray
        ``(B, ..., frames)``, in the input dtype.
    """
    values = np.asarray(values)
    batch, n_frames = values.shape[0], values.shape[-1]
    starts = np.broadcast_to(np.asarray(frame_start, dtype=np.int64), (batch,))
    limit = np.broadcast_to(
        np.asarray(n_frames if valid_frames is None else valid_frames, dtype=np.int64), (batch,)
    )
    limit = np.minimum(limit, n_frames)
    bad = (starts < 0) | (starts + frames > limit)
    if frames < 1 or np.any(bad):
        raise ValueError(
            f"windows of {frames} frames from starts {starts[bad].tolist()} run past the valid "
            f"lengths {limit[bad].tolist()} (or start before 0)"
        )
    if batch == 0 or np.all(starts == starts[0]):
        start = int(starts[0]) if batch else 0
        return values[..., start : start + frames]
    index = starts[:, None] + np.arange(frames)
    index = index.reshape((batch,) + (1,) * (values.ndim - 2) + (frames,))
    return np.take_along_axis(values, index, axis=-1)
