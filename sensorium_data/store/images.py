"""The official image rescale of the SENSORIUM loaders, on numpy batches (no torch).

:func:`rescale_images` is neuralpredictors' ``ScaleInputs``: ``skimage.transform.rescale`` with
``order=1`` (bilinear), ``mode="reflect"``, ``anti_aliasing=False``, ``preserve_range=True``,
``clip=True``, which skimage (0.19+) runs as ``scipy.ndimage.zoom(order=1, mode="mirror",
grid_mode=True)``. It is reimplemented here with the same output size, sample positions, weights
and edge handling, so skimage is not needed. Conversion writes the stores' scaled copy with it;
the loaders (:mod:`sensorium_data.loading.transforms`) rescale with it at other scales.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rescale_images", "rescaled_size"]


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
