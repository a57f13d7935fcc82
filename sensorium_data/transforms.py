"""Sample transforms of the official SENSORIUM loaders, on numpy batches (no torch).

- :func:`rescale_images` is neuralpredictors' ``ScaleInputs``: ``skimage.transform.rescale`` with
  ``order=1`` (bilinear), ``mode="reflect"``, ``anti_aliasing=False``, ``preserve_range=True``,
  ``clip=True``, which skimage (0.19+) runs as ``scipy.ndimage.zoom(order=1, mode="mirror",
  grid_mode=True)``. It is reimplemented here with the same output size, sample positions, weights
  and edge handling, so skimage is not needed.
- :func:`add_behavior_channels` is ``AddBehaviorAsChannels`` (then ``AddPupilCenterAsChannels``).
- :func:`valid_length`, :func:`draw_window_starts` and :func:`valid_window` are the 2023 kit's
  ``CutVideos`` and ``Subsequence`` for batches: cut at the valid length, then ``frames``
  consecutive frames from a start.

Every function takes a batch (leading batch axis) and returns float32 arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "add_behavior_channels",
    "draw_window_starts",
    "rescale_images",
    "rescaled_size",
    "valid_length",
    "valid_window",
]


# ----------------------------------------------------------------------------- rescaling


def rescaled_size(size: int, scale: float) -> int:
    """Output length of one axis, as skimage ``rescale``: ``max(round(scale * size), 1)``.

    ``np.round`` rounds halves to even (``10 * 0.25 = 2.5`` gives 2), as skimage does.
    """
    if not scale > 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    return max(int(np.round(scale * size)), 1)


def _mirror(index: np.ndarray, n: int) -> np.ndarray:
    """ndimage ``mirror`` (skimage ``reflect``) of an index: reflect about the edge pixels."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.abs(index) % period
    return np.where(index > n - 1, period - index, index)


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Neighbours and weights of linear interpolation from ``n_in`` to ``n_out`` samples.

    ``scipy.ndimage.zoom(grid_mode=True)`` samples output pixel ``o`` at input coordinate
    ``c = (o + 0.5) * (n_in / n_out) - 0.5`` (pixel areas aligned, not corners). Its ``mirror``
    mode reflects ``c < 0`` to ``-c`` and ``c >= n_in`` to ``2 (n_in - 1) - c``, but leaves
    ``n_in - 1 < c < n_in`` alone and mirrors the missing neighbour index ``n_in`` to ``n_in - 2``
    instead. The weights are ``1 - t`` on ``floor(c)`` and ``1 - (1 - t)`` on the next index,
    ``t = c - floor(c)``. Each step is done the same way so that the weights are bit-identical.
    """
    coords = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    if n_in == 1:
        coords = np.zeros_like(coords)
    else:
        period = 2 * (n_in - 1)
        neg = coords < 0
        folded = period * np.trunc(-coords / period) + coords
        coords = np.where(neg, np.where(folded <= 1 - n_in, folded + period, -folded), coords)
        high = coords > n_in - 1
        folded = coords - period * np.trunc(coords / period)
        folded = np.where(folded >= n_in, period - folded, folded)
        coords = np.where(high, folded, coords)
    low = np.floor(coords).astype(np.int64)
    w_low = 1.0 - (coords - low)
    return low, _mirror(low + 1, n_in), w_low, 1.0 - w_low


def _take(values: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
    """``np.take`` along ``axis``, as a strided view when ``index`` is evenly spaced."""
    if len(index) > 1:
        step = int(index[1] - index[0])
        if step > 0 and np.array_equal(index, index[0] + step * np.arange(len(index))):
            sl = [slice(None)] * values.ndim
            sl[axis] = slice(int(index[0]), int(index[-1]) + 1, step)
            return values[tuple(sl)]
    return np.take(values, index, axis=axis)


def _bilinear(values: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resampling of the last two axes, summed in ndimage's order.

    ``scipy.ndimage.zoom`` adds, for each output pixel, ``x * w_row * w_col`` over the 2 x 2
    neighbours (row-major, starting from 0.0) in double precision; doing the same keeps every
    float32 result bit-identical to skimage's. Rows are gathered before columns, so only the
    output-sized neighbour grids are ever formed.
    """
    r_lo, r_hi, wr_lo, wr_hi = _axis_weights(values.shape[-2], out_h)
    c_lo, c_hi, wc_lo, wc_hi = _axis_weights(values.shape[-1], out_w)
    out = np.zeros((*values.shape[:-2], out_h, out_w))
    term = np.empty_like(out)
    for rows, w_rows in ((r_lo, wr_lo), (r_hi, wr_hi)):
        picked = _take(values, rows, axis=-2)
        for cols, w_cols in ((c_lo, wc_lo), (c_hi, wc_hi)):
            np.multiply(_take(picked, cols, axis=-1), w_rows[:, None], out=term)
            term *= w_cols[None, :]
            out += term
    return out


def rescale_images(images: np.ndarray, scale: float) -> np.ndarray:
    """Rescale a batch of images ``(..., H, W)`` by ``scale`` exactly as the kits' ``ScaleInputs``.

    Parameters
    ----------
    images
        Array whose last two axes are height and width, e.g. ``(B, C, H, W)`` images or
        ``(B, C * T, H, W)`` video frames. Other axes are never mixed.
    scale
        Factor for both spatial axes; ``0.25`` turns 144x256 into 36x64. The output size of an
        axis is ``max(round(scale * size), 1)`` and the sampling step is ``size / output size``.

    Returns
    -------
    numpy.ndarray
        float32 array ``(..., H', W')``.

    Notes
    -----
    neuralpredictors ``ScaleInputs`` calls ``skimage.transform.rescale(img, scale, mode="reflect",
    anti_aliasing=False, clip=True, preserve_range=True, channel_axis=...)`` with the default
    ``order=1``. skimage's ``resize`` runs ``scipy.ndimage.zoom(order=1, mode="mirror",
    grid_mode=True)`` over every axis, the channel axis with factor 1. This function computes the
    same bilinear sums, in the same order, in float64 and rounds once to float32: the result is
    bit-identical to skimage's (checked against scikit-image 0.26 / SciPy 1.17 for float32 and
    float64 inputs, downscaling and upscaling). ``clip`` (to the input's min and max) is left
    out: linear interpolation stays within its neighbours up to a float64 rounding, which the
    float32 rounding absorbs.

    Not copied on purpose: the 2023 kit rescales the whole ``(H, W, T)`` trial with the frame
    axis as skimage's channel axis, *before* cutting it at its valid length. ndimage interpolates
    along that axis too (factor 1, neighbour weight 0), and ``0 * NaN`` is NaN, so the first NaN
    padding frame turns the last valid frame into NaN and the kit's ``CutVideos`` then drops it:
    every padded trial loses its last valid frame. This happens whenever ndimage runs: at
    ``scale != 1`` always, and at ``scale == 1`` too with SciPy < 1.16 (the 2023 kit's
    environment pins SciPy 1.13; SciPy 1.16 returns the input unchanged for zoom factor 1). Here
    only height and width are interpolated, so no frame is lost.
    """
    values = np.asarray(images)
    if values.ndim < 2:
        raise ValueError(f"images must have at least 2 axes (..., H, W), got shape {values.shape}")
    height, width = values.shape[-2:]
    out_h, out_w = rescaled_size(height, scale), rescaled_size(width, scale)
    if (out_h, out_w) == (height, width):
        return values.astype(np.float32, copy=False)
    return _bilinear(values.astype(np.float64, copy=False), out_h, out_w).astype(np.float32)


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
