"""What a trained model has learnt about its neurons, as labelled arrays.

:func:`readout_positions` gives the mean position at which each neuron's Gaussian readout reads
the core's feature map: where in the image the model places the neuron's receptive field.
Plotted against the neurons' cortical coordinates it shows the retinotopic map
(:func:`sensorium_data.plotting.readout_positions`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr

from sensorium_models.encoders import Encoder
from sensorium_models.errors import ModelInputError

__all__ = ["readout_positions"]


def _neuron_coords(
    store: Any, mouse: str, n: int, storage_options: dict[str, Any] | None
) -> dict[str, Any]:
    """The store's coordinates along ``neuron`` of ``mouse`` (its ids first), checked."""
    from sensorium_data.store.access import open_mouse

    ds = open_mouse(store, mouse, storage_options, chunks=None)
    if int(ds.sizes["neuron"]) != n:
        raise ModelInputError(
            f"store: mouse {mouse} holds {int(ds.sizes['neuron'])} neurons but the model's "
            f"readout has {n}; pass the store the model was trained on"
        )
    return neuron_coordinates(ds)


def neuron_coordinates(ds: xr.Dataset) -> dict[str, Any]:
    """A mouse's coordinates along ``neuron`` (its ids, ``unit_ids``, ...), loaded, to label
    per-neuron results with."""
    return {k: c.variable.load() for k, c in ds.coords.items() if c.dims == ("neuron",)}


def readout_positions(
    model: Encoder,
    mouse: str,
    *,
    store: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> xr.DataArray:
    """Mean readout position of every neuron of ``mouse``, in the readout's grid coordinates.

    Parameters
    ----------
    model
        A model of :mod:`sensorium_models` whose readouts are Gaussian (every baseline's).
    mouse
        The mouse (its key in ``model.mice``).
    store, storage_options
        Optional: the converted store the model was trained on; its neuron ids (``unit_ids``)
        and neuron coordinates label the result. Without it, ``neuron`` counts 0..N-1 in the
        model's (the store's) neuron order.

    Returns
    -------
    xarray.DataArray
        ``(neuron, axis)`` float32, ``axis`` = ``["x", "y"]``: the position on the core's
        feature map in ``[-1, 1]`` (``x`` horizontal, -1 the left edge; ``y`` vertical,
        -1 the top edge, as ``grid_sample`` reads it), clamped as in evaluation. A model with a
        shifter adds the shift of the eye position to these means for every trial.

    Raises
    ------
    UnknownMouseError
        The model has no readout for ``mouse``.
    ModelInputError
        The readout has no positions, or ``store`` holds another number of neurons.
    """
    readout = model.readout(mouse)
    mu = getattr(readout, "mu", None)
    if not isinstance(mu, torch.Tensor) or mu.ndim != 2 or mu.shape[-1] != 2:
        raise ModelInputError(
            f"model: the readout of mouse {mouse} ({type(readout).__name__}) has no positions "
            "(a Gaussian readout's mean positions, `mu`, of shape (n_neurons, 2))"
        )
    with torch.no_grad():
        values = mu.detach().float().clamp(-1.0, 1.0).cpu().numpy().astype(np.float32)
    n = values.shape[0]
    if store is None:
        coords: dict[str, Any] = {"neuron": np.arange(n)}
    else:
        coords = _neuron_coords(store, mouse, n, storage_options)
    coords["axis"] = ["x", "y"]
    return xr.DataArray(
        values,
        dims=("neuron", "axis"),
        coords=coords,
        name="readout_position",
        attrs={"mouse": mouse, "units": "normalised grid coordinates, -1..1"},
    )
