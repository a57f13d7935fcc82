"""Figures of one 2022 (static image) mouse: responses, behaviour, images, neurons, statistics.

Every function takes a mouse as :func:`sensorium_data.open_mouse` opens it (a lazy
:class:`xarray.Dataset`) and reads only what it draws (``.isel(...)`` then ``.values``), so it is
quick on a real mouse of ~6000 trials x ~8000 neurons. The 2023 (video) figures are in
:mod:`sensorium_data.plotting.video`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from ._base import new_figure

__all__ = [
    "behavior_traces",
    "image_responses",
    "neuron_positions",
    "response_raster",
    "response_statistics",
]

RESPONSE_LABEL = "response (a.u.)"
PRESENTATION_ORDER = "trial (presentation order, trial_idx)"
FILE_ORDER = "trial (file index)"


# ----------------------------------------------------------------------------- checks


def check_mouse(ds: Any, *, kind: str, name: str = "ds", hint: str = "") -> xr.Dataset:
    """``ds`` if it is one mouse of ``kind`` ("static" or "dynamic"), else a one-line error."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(
            f"{name} must be an xarray.Dataset of one mouse (sensorium_data.open_mouse), "
            f"got {type(ds).__name__}"
        )
    if "responses" not in ds.data_vars or "trial" not in ds["responses"].dims:
        raise ValueError(f"{name} has no 'responses' along 'trial': open it with sd.open_mouse")
    dynamic = "frame" in ds["responses"].dims
    if kind == "static" and dynamic:
        raise ValueError(f"{name} is a 2023 (video) mouse; this figure is for 2022 mice{hint}")
    if kind == "dynamic" and not dynamic:
        raise ValueError(f"{name} is a 2022 (static) mouse; this figure is for 2023 mice{hint}")
    return ds


def strings(values: Any) -> np.ndarray:
    """``values`` (numpy StringDType, object or numbers) as a plain ``str`` array."""
    return np.array([str(v) for v in np.asarray(values).tolist()], dtype=str)


def mouse_name(ds: xr.Dataset) -> str:
    """The mouse's short data key, or "mouse" when the attributes do not say."""
    attrs = ds.attrs.get("sensorium", {})
    return str(attrs.get("data_key", "mouse")) if isinstance(attrs, dict) else "mouse"


def tier_trials(ds: xr.Dataset, tier: str | Sequence[str] | None) -> np.ndarray:
    """Positions of the trials of ``tier``: a name, several (grouped in that order), or None for
    all; in file order within a tier."""
    n = ds.sizes["trial"]
    if tier is None:
        return np.arange(n)
    if "tiers" not in ds.coords and "tiers" not in ds.data_vars:
        raise ValueError("tier: the mouse has no 'tiers' coordinate; pass tier=None")
    tiers = strings(ds["tiers"])
    wanted = [tier] if isinstance(tier, str) else list(tier)
    unknown = sorted(set(map(str, wanted)) - set(tiers.tolist()))
    if unknown:
        raise ValueError(
            f"tier {unknown[0]!r} is not a tier of this mouse; its tiers: {sorted(set(tiers))}"
        )
    return np.concatenate([np.flatnonzero(tiers == t) for t in dict.fromkeys(map(str, wanted))])


def _tier_text(tier: str | Sequence[str] | None) -> str:
    if tier is None:
        return "all"
    return tier if isinstance(tier, str) else "+".join(tier)


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def share_x(axes: Any) -> None:
    """Share the x axis of every axes with the first; tick labels only on the bottom row."""
    first = axes.flat[0]
    for ax in axes.flat[1:]:
        ax.sharex(first)
    for ax in axes[:-1].flat:
        ax.tick_params(labelbottom=False)


def _ticks_from(ax: Any, labels: np.ndarray, *, axis: str = "y", n: int = 6) -> None:
    """Label up to ``n`` evenly spaced rows (or columns) of an image with ``labels``."""
    pos = np.unique(np.linspace(0, len(labels) - 1, min(n, len(labels))).round().astype(int))
    setter = ax.set_yticks if axis == "y" else ax.set_xticks
    setter(pos, [str(v) for v in np.asarray(labels)[pos]])


# ----------------------------------------------------------------------------- figures


def response_raster(
    ds: xr.Dataset,
    *,
    tier: str | Sequence[str] | None = "train",
    max_trials: int = 200,
    max_neurons: int = 200,
) -> Any:
    """Responses of the first trials and neurons of one tier as an image (trials x neurons).

    Parameters
    ----------
    ds
        One 2022 mouse (:func:`sensorium_data.open_mouse`).
    tier
        Tier name, several (shown one after the other, separated by a line), or None for every
        trial. Trials are taken in file order within a tier.
    max_trials, max_neurons
        At most this many trials (rows) and neurons (columns), the first ones; only they are read.

    Returns
    -------
    matplotlib.figure.Figure
        One image; colour is the response (up to its 99th percentile, so a few large
        responses do not wash out the rest), with a colour bar.
    """
    ds = check_mouse(ds, kind="static", hint=": for 2023 see frame_traces")
    trials = tier_trials(ds, tier)[: _positive("max_trials", max_trials)]
    if not len(trials):
        raise ValueError(f"tier {tier!r} has no trials")
    n_neurons = min(_positive("max_neurons", max_neurons), ds.sizes["neuron"])
    values = np.asarray(ds["responses"].isel(trial=trials, neuron=slice(0, n_neurons)).values)
    fig, axes = new_figure(1, 1, width=7.0, height=4.6)
    ax = axes[0, 0]
    finite = values[np.isfinite(values)]
    vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
    image = ax.imshow(
        values, aspect="auto", interpolation="nearest", cmap="magma", vmin=0.0, vmax=vmax or 1.0
    )
    _ticks_from(ax, np.asarray(ds["trial"].values)[trials], axis="y")
    if tier is not None and not isinstance(tier, str) and len(tier) > 1:
        names = strings(ds["tiers"])[trials]
        for start in np.flatnonzero(names[1:] != names[:-1]) + 1:
            ax.axhline(start - 0.5, color="white", lw=1.2)
        for name in dict.fromkeys(names.tolist()):
            row = np.flatnonzero(names == name)[0]
            ax.annotate(
                name,
                (0, row - 0.5),
                xytext=(4, -4),
                textcoords="offset points",
                color="white",
                va="top",
                fontsize="small",
                bbox={"facecolor": "black", "alpha": 0.6, "lw": 0},
            )
    ax.set_xlabel("neuron")
    ax.set_ylabel(FILE_ORDER)
    ax.set_title(
        f"{mouse_name(ds)}: responses of {len(trials)} {_tier_text(tier)} trials"
        f" x {n_neurons} neurons"
    )
    fig.colorbar(image, ax=ax, label=RESPONSE_LABEL, extend="max")
    return fig


def _trial_order(ds: xr.Dataset, trials: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """``(positions, x values, x label)``: by ``trial_idx`` when it is numeric, else file order."""
    if "trial_idx" in ds.coords or "trial_idx" in ds.data_vars:
        idx = np.asarray(ds["trial_idx"].values)[trials]
        if np.issubdtype(idx.dtype, np.number):
            order = np.argsort(idx, kind="stable")
            return trials[order], idx[order], PRESENTATION_ORDER
    label = (
        "trial (file index: trial_idx is not numeric)" if "trial_idx" in ds.coords else FILE_ORDER
    )
    return trials, np.asarray(ds["trial"].values)[trials], label


def behavior_traces(ds: xr.Dataset, *, tier: str | Sequence[str] | None = None) -> Any:
    """The 3 behaviour variables and the 2 pupil-centre axes over trials, one panel each.

    Trials are in presentation order (``trial_idx``) when ``trial_idx`` is numeric; the
    competition mice have hash strings there, and are then shown in file order (the x label
    says which). ``tier`` selects trials (a name, several, or None for all).
    """
    ds = check_mouse(ds, kind="static", hint=": for 2023 see frame_traces")
    trials = tier_trials(ds, tier)
    if not len(trials):
        raise ValueError(f"tier {tier!r} has no trials")
    trials, x, xlabel = _trial_order(ds, trials)
    panels = []
    for var, dim in (("behavior", "behavior_variable"), ("pupil_center", "pupil_axis")):
        if var not in ds.data_vars:
            continue
        values = np.asarray(ds[var].isel(trial=trials).transpose("trial", dim).values)
        names = strings(ds[dim]) if dim in ds.coords else strings(np.arange(values.shape[1]))
        panels += [(var, str(name), values[:, j]) for j, name in enumerate(names)]
    if not panels:
        raise ValueError("ds has neither 'behavior' nor 'pupil_center'")
    fig, axes = new_figure(len(panels), 1, width=8.0, height=1.25 * len(panels) + 0.8)
    share_x(axes)
    for ax, (var, name, y) in zip(axes[:, 0], panels, strict=True):
        ax.plot(x, y, lw=0.6, color="tab:blue" if var == "behavior" else "tab:green")
        what = name if var == "behavior" else f"pupil centre, {name}"
        ax.set_title(what.replace("_", " "), loc="left", fontsize="medium")
        ax.set_ylabel("a.u.")
    axes[-1, 0].set_xlabel(xlabel)
    fig.suptitle(f"{mouse_name(ds)}: behaviour and pupil centre ({_tier_text(tier)} trials)")
    return fig


def image_responses(
    ds: xr.Dataset, trials: Sequence[int], *, max_neurons: int | None = None
) -> Any:
    """Example images (top row, with their image id) and each trial's population response below.

    Parameters
    ----------
    ds
        One 2022 mouse.
    trials
        File indices (the ``trial`` coordinate) of 1 to 12 trials.
    max_neurons
        Show the first ``max_neurons`` neurons only (default all).
    """
    ds = check_mouse(ds, kind="static", hint=": for 2023 see frame_strip")
    picks = np.atleast_1d(np.asarray(trials))
    if picks.ndim != 1 or not 1 <= len(picks) <= 12 or not np.issubdtype(picks.dtype, np.integer):
        raise ValueError(f"trials must be 1 to 12 trial indices, got {trials!r}")
    n = ds.sizes["trial"]
    if picks.min() < 0 or picks.max() >= n:
        raise ValueError(f"trials must lie in 0..{n - 1}, got {picks.tolist()}")
    n_neurons = ds.sizes["neuron"] if max_neurons is None else _positive("max_neurons", max_neurons)
    n_neurons = min(n_neurons, ds.sizes["neuron"])
    sub = ds.isel(trial=picks)
    images = np.asarray(sub["images"].values)  # (trial, channel, height, width)
    responses = np.asarray(sub["responses"].isel(neuron=slice(0, n_neurons)).values)
    ids = (
        np.asarray(sub["frame_image_id"].values)
        if "frame_image_id" in sub.coords
        else np.full(len(picks), "?")
    )
    k = len(picks)
    fig, axes = new_figure(2, k, width=max(2.3 * k, 4.5), height=4.4)
    lo, hi = float(np.nanmin(images)), float(np.nanmax(images))
    for j in range(k):
        top, bottom = axes[0, j], axes[1, j]
        top.imshow(images[j, 0], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        top.set_title(f"trial {picks[j]}\nimage {ids[j]}", fontsize="medium")
        top.set_xticks([])
        top.set_yticks([])
        bottom.plot(np.arange(n_neurons), responses[j], lw=0.7, color="tab:purple")
        bottom.set_xlabel("neuron")
        if j:
            bottom.sharey(axes[1, 0])
            bottom.tick_params(labelleft=False)
    axes[1, 0].set_ylabel(RESPONSE_LABEL)
    fig.suptitle(f"{mouse_name(ds)}: images and the population response to each")
    return fig


def _per_neuron(ds: xr.Dataset, values: Any) -> np.ndarray:
    """``values`` as a float array in the order of ``ds.neuron`` (DataArrays aligned by label)."""
    n = ds.sizes["neuron"]
    if isinstance(values, xr.DataArray):
        if values.dims != ("neuron",):
            raise ValueError(f"values must be along 'neuron' only, got dims {values.dims}")
        if "neuron" in values.coords:
            missing = np.setdiff1d(ds["neuron"].values, values["neuron"].values)
            if missing.size:
                raise ValueError(f"values has no entry for neurons {missing[:5].tolist()}")
            values = values.sel(neuron=ds["neuron"].values)
        values = values.values
    arr = np.asarray(values, dtype=float)
    if arr.shape != (n,):
        raise ValueError(f"values must hold one number per neuron ({n}), got shape {arr.shape}")
    return arr


def neuron_positions(ds: xr.Dataset, values: Any = None, *, label: str = "value") -> Any:
    """Neurons at their ``cell_motor_coordinates`` (µm) in 3D, coloured by ``values``.

    Parameters
    ----------
    ds
        One mouse (2022 or 2023).
    values
        One number per neuron (an array in neuron order, or a DataArray along ``neuron``
        matched by label), e.g. :func:`sensorium_data.metrics.oracle_correlation`; None: one colour.
    label
        Name of ``values`` for the colour bar.
    """
    if not isinstance(ds, xr.Dataset) or "cell_motor_coordinates" not in ds.coords:
        raise ValueError("ds must be a mouse with a 'cell_motor_coordinates' coordinate")
    xyz = np.asarray(ds["cell_motor_coordinates"].transpose("neuron", ...).values, dtype=float)
    fig, axes = new_figure(1, 1, width=6.4, height=5.2, projection="3d")
    ax = axes[0, 0]
    if values is None:
        ax.scatter(xyz[:, 0], xyz[:, 1], xyz[:, 2], s=6, color="tab:blue", depthshade=False)
    else:
        colour = _per_neuron(ds, values)
        points = ax.scatter(
            xyz[:, 0], xyz[:, 1], xyz[:, 2], c=colour, s=6, cmap="viridis", depthshade=False
        )
        fig.colorbar(points, ax=ax, label=label, shrink=0.7, pad=0.1)
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    ax.set_zlabel("z (µm)")
    ax.set_title(
        f"{mouse_name(ds)}: {len(xyz)} neurons"
        + (f", colour: {label}" if values is not None else "")
    )
    return fig


def response_statistics(stats: Any, *, key: str = "responses", source: str = "all") -> Any:
    """The official per-neuron statistics of a 2022 mouse: std against mean, and their histograms.

    Parameters
    ----------
    stats
        ``sd.open_statistics(store, mouse)``: ``{key: {source: Dataset(mean, std, ...)}}``.
    key
        Which statistics: ``"responses"`` (per neuron), ``"behavior"`` or ``"pupil_center"``.
    source
        The statistics' subfolder, ``"all"`` as the official loaders use.

    2023 statistics are per frame: use :func:`sensorium_data.plotting.frame_statistics`.
    """
    entry = statistics_entry(stats, key=key, source=source)
    if "frame" in entry["mean"].dims:
        raise ValueError(
            "stats holds per-frame (2023) statistics: use sensorium_data.plotting.frame_statistics"
        )
    mean = np.asarray(entry["mean"].values, dtype=float).ravel()
    std = np.asarray(entry["std"].values, dtype=float).ravel()
    if mean.size < 2:
        raise ValueError(f"stats[{key!r}] holds a single value; nothing to plot per element")
    unit = "neuron" if key == "responses" else "element"
    fig, axes = new_figure(1, 3, width=11.0, height=3.6)
    axes[0, 0].scatter(mean, std, s=8, alpha=0.7, color="tab:blue")
    axes[0, 0].set_xlabel("mean (a.u.)")
    axes[0, 0].set_ylabel("std (a.u.)")
    axes[0, 0].set_title(f"std against mean, one point per {unit}", fontsize="medium")
    bins = int(np.clip(1.5 * np.sqrt(mean.size), 8, 60))
    for ax, values, name in ((axes[0, 1], mean, "mean"), (axes[0, 2], std, "std")):
        ax.hist(values[np.isfinite(values)], bins=bins, color="tab:gray")
        ax.set_xlabel(f"{name} (a.u.)")
        ax.set_ylabel(f"{unit}s")
        ax.set_title(f"{name} over {unit}s", fontsize="medium")
    fig.suptitle(f"official statistics of {key} ({source!r}, {mean.size} {unit}s)")
    return fig


def statistics_entry(stats: Any, *, key: str, source: str) -> xr.Dataset:
    """``stats[key][source]`` with ``mean`` and ``std``, or a one-line error naming what is off."""
    if not isinstance(stats, dict) or not stats:
        raise TypeError(
            "stats must be the dict of sd.open_statistics(store, mouse), "
            f"got {type(stats).__name__}"
        )
    if key not in stats:
        raise ValueError(f"key {key!r} is not in stats; it holds {sorted(stats)}")
    if source not in stats[key]:
        raise ValueError(f"source {source!r} is not in stats[{key!r}]; it has {sorted(stats[key])}")
    entry = stats[key][source]
    if not isinstance(entry, xr.Dataset) or not {"mean", "std"} <= set(entry.data_vars):
        raise ValueError(f"stats[{key!r}][{source!r}] must be a Dataset with 'mean' and 'std'")
    return entry
