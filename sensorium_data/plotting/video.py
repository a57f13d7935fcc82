"""Figures of one 2023 (video) mouse: clips, per-frame traces, valid lengths, statistics, repeats.

2023 trials are clips at 30 Hz, every key padded with NaN to one length after the trial's
``valid_frames``. Every function takes a mouse as :func:`sensorium_data.open_mouse` opens it and
reads only what it draws (``.isel(...)`` then ``.values``); :func:`repeat_matrix` reads the clips it
compares.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..metrics import repeat_groups_from_videos
from ._base import new_figure
from .data import (
    RESPONSE_LABEL,
    check_mouse,
    mouse_name,
    share_x,
    statistics_entry,
    strings,
    tier_trials,
)

__all__ = ["frame_statistics", "frame_strip", "frame_traces", "repeat_matrix", "valid_lengths"]

FRAME_RATE = 30.0
FRAME_LABEL = "frame (30 Hz)"
PADDING_LABEL = "NaN padding (after valid_frames)"
TIER_ORDER = (
    "train",
    "oracle",
    "live_test_main",
    "final_test_main",
    "live_test_bonus",
    "final_test_bonus",
    "none",
)
_HINT_2022 = ": for 2022 see response_raster and behavior_traces"


def _matplotlib() -> Any:
    import matplotlib
    import matplotlib.colors
    import matplotlib.ticker

    return matplotlib


def _trial(ds: xr.Dataset, trial: Any) -> int:
    n = ds.sizes["trial"]
    if isinstance(trial, bool) or not isinstance(trial, (int, np.integer)) or not 0 <= trial < n:
        raise ValueError(f"trial must be a trial index in 0..{n - 1}, got {trial!r}")
    return int(trial)


def _valid(ds: xr.Dataset, trial: int) -> int:
    """The trial's valid length (``valid_frames``; every frame when the coordinate is missing)."""
    if "valid_frames" in ds.coords:
        return int(ds["valid_frames"].values[trial])
    return int(ds.sizes["frame"])


def _tier_of(ds: xr.Dataset, trial: int) -> str:
    return str(ds["tiers"].values[trial]) if "tiers" in ds.coords else "?"


def _seconds_axis(ax: Any) -> None:
    """Seconds at 30 Hz on the top of a frame axis."""
    top = ax.secondary_xaxis("top", functions=(lambda f: f / FRAME_RATE, lambda s: s * FRAME_RATE))
    top.set_xlabel("time (s)")


def frame_strip(ds: xr.Dataset, trial: int, *, n_frames: int = 8) -> Any:
    """``n_frames`` frames of one clip, evenly spaced over its valid length.

    Each title gives the frame index and its time in seconds (30 Hz). Only those frames are read.
    """
    ds = check_mouse(ds, kind="dynamic", hint=": for 2022 see image_responses")
    trial = _trial(ds, trial)
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
    valid = _valid(ds, trial)
    if valid < 1:
        raise ValueError(f"trial {trial} has no valid frame")
    frames = np.unique(np.linspace(0, valid - 1, min(int(n_frames), valid)).round().astype(int))
    clip = np.asarray(
        ds["videos"].isel(trial=trial, frame=frames).transpose("frame", ...).values, dtype=float
    )
    ncols = min(len(frames), 8)
    nrows = -(-len(frames) // ncols)
    aspect = clip.shape[1] / clip.shape[2]
    fig, axes = new_figure(
        nrows, ncols, width=1.5 * ncols + 0.2, height=nrows * (1.5 * aspect + 0.5) + 0.35
    )
    lo, hi = np.nanmin(clip), np.nanmax(clip)
    if lo >= 0 and hi <= 255:
        lo, hi = 0.0, 255.0
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, frame, image in zip(axes.ravel(), frames, clip, strict=False):
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(f"frame {frame}\n{frame / FRAME_RATE:.2f} s", fontsize="small")
    fig.suptitle(
        f"{mouse_name(ds)}, trial {trial} ({_tier_of(ds, trial)}): {len(frames)} of its "
        f"{valid} valid frames (padded to {ds.sizes['frame']})"
    )
    return fig


def _pick_neurons(ds: xr.Dataset, responses: np.ndarray, neurons: Any, valid: int) -> np.ndarray:
    """Positions of ``neurons`` (unit ids), or of the 4 most variable neurons of the trial."""
    labels = np.asarray(ds["neuron"].values)
    if neurons is None:
        part = responses[:, :valid]
        var = (
            np.var(np.where(np.isfinite(part), part, 0.0), axis=1)
            if valid
            else np.zeros(len(labels))
        )
        return np.sort(np.argsort(-var, kind="stable")[: min(4, len(labels))])
    wanted = np.atleast_1d(np.asarray(neurons))
    missing = np.setdiff1d(wanted, labels)
    if missing.size or wanted.ndim != 1 or not 1 <= wanted.size <= 10:
        raise ValueError(
            f"neurons must be 1 to 10 unit ids of this mouse (the 'neuron' coordinate), "
            f"got {np.asarray(neurons).tolist()!r}"
        )
    return np.array([int(np.flatnonzero(labels == w)[0]) for w in wanted])


def frame_traces(ds: xr.Dataset, trial: int, *, neurons: Sequence[int] | None = None) -> Any:
    """Per-frame responses, behaviour and pupil centre of one trial, its NaN padding shaded.

    Parameters
    ----------
    ds
        One 2023 mouse.
    trial
        File index of the trial.
    neurons
        Unit ids (the ``neuron`` coordinate) of up to 10 neurons to draw; default the 4 most
        variable in this trial. The population mean is over all neurons.
    """
    ds = check_mouse(ds, kind="dynamic", hint=_HINT_2022)
    trial = _trial(ds, trial)
    valid, n_frames = _valid(ds, trial), ds.sizes["frame"]
    sub = ds.isel(trial=trial)
    responses = np.asarray(sub["responses"].transpose("neuron", "frame").values, dtype=float)
    picks = _pick_neurons(ds, responses, neurons, valid)
    frames = np.arange(n_frames)
    fig, axes = new_figure(3, 2, width=10.0, height=7.0)
    share_x(axes)
    ax = axes[0, 0]
    for p in picks:
        ax.plot(frames, responses[p], lw=0.9, label=f"unit {ds['neuron'].values[p]}")
    ax.set_title("example neurons", loc="left", fontsize="medium")
    ax.legend(fontsize="x-small", ncol=2, loc="upper left")
    counts = np.isfinite(responses).sum(0)
    total = np.where(np.isfinite(responses), responses, 0.0).sum(0)
    population = np.where(counts > 0, total / np.maximum(counts, 1), np.nan)
    axes[0, 1].plot(frames, population, lw=1.0, color="black")
    axes[0, 1].set_title(f"mean over {responses.shape[0]} neurons", loc="left", fontsize="medium")
    for row in axes[0]:
        row.set_ylabel(RESPONSE_LABEL)
        _seconds_axis(row)
    for row, (var, dim) in zip(
        axes[1:], (("behavior", "behavior_variable"), ("pupil_center", "pupil_axis")), strict=True
    ):
        values = np.asarray(sub[var].transpose(dim, "frame").values, dtype=float)
        names = strings(ds[dim]) if dim in ds.coords else ["0", "1"]
        for ax, name, y in zip(row, names, values, strict=False):
            ax.plot(frames, y, lw=1.0, color="tab:blue" if var == "behavior" else "tab:green")
            what = name if var == "behavior" else f"pupil centre, {name}"
            ax.set_title(what.replace("_", " "), loc="left", fontsize="medium")
            ax.set_ylabel("a.u.")
    for ax in axes.ravel():
        if valid < n_frames:
            ax.axvspan(valid, n_frames - 1, color="0.8", alpha=0.6, lw=0, label=PADDING_LABEL)
        ax.set_xlim(0, n_frames - 1)
    if valid < n_frames:
        axes[0, 1].legend(fontsize="x-small", loc="upper right")
    for ax in axes[-1]:
        ax.set_xlabel(FRAME_LABEL)
    padding = f"NaN after frame {valid - 1}" if valid < n_frames else "no padding"
    fig.suptitle(
        f"{mouse_name(ds)}, trial {trial} ({_tier_of(ds, trial)}): {valid} valid frames of "
        f"{n_frames}, {padding}"
    )
    return fig


def valid_lengths(ds: xr.Dataset) -> Any:
    """Histogram of the trials' valid lengths (``valid_frames``), stacked by tier."""
    ds = check_mouse(ds, kind="dynamic", hint=_HINT_2022)
    if "valid_frames" not in ds.coords:
        raise ValueError("ds has no 'valid_frames' coordinate (open it with sd.open_mouse)")
    valid = np.asarray(ds["valid_frames"].values)
    tiers = strings(ds["tiers"]) if "tiers" in ds.coords else None
    names = _ordered_tiers(tiers) if tiers is not None else ["all"]
    groups = [valid[tiers == t] if tiers is not None else valid for t in names]
    n_frames = ds.sizes["frame"]
    lo = int(valid.min())
    step = max(1, -(-(n_frames + 1 - lo) // 40))
    bins = np.arange(lo, n_frames + step + 1, step) - 0.5
    fig, axes = new_figure(1, 1, width=7.0, height=3.8)
    ax = axes[0, 0]
    ax.hist(
        groups,
        bins=bins,
        stacked=True,
        label=[f"{t} ({len(g)})" for t, g in zip(names, groups, strict=True)],
    )
    ax.axvline(n_frames, color="black", ls="--", lw=1, label=f"padded length ({n_frames})")
    ax.set_xlabel("valid frames (30 Hz)")
    ax.set_ylabel("trials")
    ax.legend(fontsize="small", loc="upper left", title="tier (trials)", title_fontsize="small")
    ax.set_title(f"{mouse_name(ds)}: valid length of each of its {len(valid)} trials")
    return fig


def _ordered_tiers(tiers: np.ndarray) -> list[str]:
    present = list(dict.fromkeys(tiers.tolist()))
    known = [t for t in TIER_ORDER if t in present]
    return known + sorted(t for t in present if t not in TIER_ORDER)


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN; NaN where a column is all NaN (no warning)."""
    finite = np.isfinite(values)
    counts = finite.sum(0)
    total = np.where(finite, values, 0.0).sum(0)
    return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


def _shade_nan(ax: Any, missing: np.ndarray) -> None:
    """Shade each run of frames whose statistics are NaN."""
    edges = np.diff(np.concatenate([[0], missing.astype(int), [0]]))
    for k, (start, stop) in enumerate(
        zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)
    ):
        ax.axvspan(
            start - 0.5,
            stop - 0.5,
            color="tab:red",
            alpha=0.15,
            lw=0,
            label="NaN (frame never valid in training)" if k == 0 else None,
        )


_STAT_PANELS = (
    ("behavior", 0, "pupil dilation", "a.u."),
    ("behavior", 1, "running speed", "a.u."),
    ("pupil_center", 0, "pupil centre, horizontal", "a.u."),
    ("pupil_center", 1, "pupil centre, vertical", "a.u."),
    ("videos", None, "video intensity (mean over pixels)", "0-255"),
)


def _frame_rows(part: xr.Dataset, name: str) -> np.ndarray:
    values = np.asarray(part[name].transpose(..., "frame").values, dtype=float)
    return values.reshape(-1, values.shape[-1])


def frame_statistics(stats: Any, *, source: str = "all") -> Any:
    """The official per-frame statistics of a 2023 mouse (``sd.open_statistics(store, mouse)``).

    Responses: the mean over neurons of each frame's per-neuron mean and std. Behaviour, each
    pupil-centre axis and the video intensity (averaged over pixels): mean +- std per frame,
    one panel each. Frames whose statistics are NaN (never valid in a training trial) are
    shaded.
    """
    entry = statistics_entry(stats, key="responses", source=source)
    if "frame" not in entry["mean"].dims:
        raise ValueError(
            "stats holds per-neuron (2022) statistics: use "
            "sensorium_data.plotting.response_statistics"
        )
    fig, axes = new_figure(2, 3, width=13.0, height=6.0)
    share_x(axes)
    mean, std = _frame_rows(entry, "mean"), _frame_rows(entry, "std")
    frames = np.arange(mean.shape[-1])
    ax = axes[0, 0]
    ax.plot(frames, _nanmean_rows(mean), color="black", label="mean")
    ax.plot(frames, _nanmean_rows(std), color="tab:orange", label="std")
    ax.set_ylabel(RESPONSE_LABEL)
    ax.set_title(
        f"responses (averaged over {mean.shape[0]} neurons)", loc="left", fontsize="medium"
    )
    _shade_nan(ax, ~np.isfinite(mean).any(0))
    ax.legend(fontsize="small")
    slots = iter(axes.ravel()[1:])
    for key, row, title, unit in _STAT_PANELS:
        if key not in stats or source not in stats[key]:
            continue
        m, s = _frame_rows(stats[key][source], "mean"), _frame_rows(stats[key][source], "std")
        if row is None:
            m, s = _nanmean_rows(m)[None], _nanmean_rows(s)[None]
        elif row >= len(m):
            continue
        ax = next(slots, None)
        if ax is None:
            break
        mi, si = m[row or 0], s[row or 0]
        ax.plot(frames, mi, lw=1.0, label="mean")
        ax.fill_between(frames, mi - si, mi + si, alpha=0.25, lw=0, label="± std")
        _shade_nan(ax, ~np.isfinite(mi))
        ax.set_title(title, loc="left", fontsize="medium")
        ax.set_ylabel(unit)
        ax.legend(fontsize="x-small", ncol=2, loc="upper right")
    for ax in slots:
        ax.set_axis_off()
    for ax in axes[-1]:
        ax.set_xlabel(FRAME_LABEL)
    fig.suptitle(f"official per-frame statistics ({source!r}), {len(frames)} frames")
    return fig


def repeat_matrix(ds: xr.Dataset, *, tier: str | Sequence[str] | None = None) -> Any:
    """Which clips are repeats of one another, found by comparing the clips themselves.

    The 2023 data have no clip id: :func:`sensorium_data.metrics.repeat_groups_from_videos`
    groups bit-identical clips. Left: a trial x trial matrix (trials sorted by tier, then clip)
    where a cell is coloured when the two trials showed the same clip; right: how often each
    repeated clip was shown.

    Parameters
    ----------
    ds
        One 2023 mouse.
    tier
        Tier name, several, or None for every tier except ``train`` (whose clips are each shown
        once). The clips of these trials are read whole.
    """
    ds = check_mouse(ds, kind="dynamic", hint=_HINT_2022)
    if tier is None and "tiers" in ds.coords:
        tiers_all = strings(ds["tiers"])
        trials = np.flatnonzero(tiers_all != "train")
    else:
        trials = tier_trials(ds, tier)
    if len(trials) < 2:
        raise ValueError(f"tier {tier!r} has {len(trials)} trials; need at least 2 to compare")
    groups = repeat_groups_from_videos(ds["videos"].isel(trial=trials))
    tiers = strings(ds["tiers"])[trials] if "tiers" in ds.coords else np.full(len(trials), "all")
    names = _ordered_tiers(tiers)
    rank = np.array([names.index(t) for t in tiers])
    order = np.lexsort((trials, groups, rank))
    groups, tiers = groups[order], tiers[order]
    ids, sizes = np.unique(groups, return_counts=True)
    repeated = ids[sizes > 1]
    number = {g: k for k, g in enumerate(dict.fromkeys(g for g in groups if g in set(repeated)))}
    label = np.array([number.get(g, -1) for g in groups], dtype=float)
    same = (groups[:, None] == groups[None, :]) & (label[:, None] >= 0)
    matrix = np.where(same, label[:, None], np.nan)
    fig, axes = new_figure(1, 2, width=11.0, height=5.0)
    ax = axes[0, 0]
    mpl = _matplotlib()
    # tab20 without its two greys, so that no repeated clip looks like the grey of "shown once"
    palette = [c for k, c in enumerate(mpl.colormaps["tab20"].colors) if k not in (14, 15)]
    if len(number) <= len(palette):
        cmap = mpl.colors.ListedColormap(palette[: max(len(number), 1)])
    else:
        cmap = mpl.colormaps["viridis"].resampled(len(number))
    image = ax.imshow(
        matrix,
        cmap=cmap,
        interpolation="nearest",
        vmin=-0.5,
        vmax=max(len(number), 1) - 0.5,
    )
    once = np.where(np.diag(label < 0), 1.0, np.nan)  # clips shown once: grey diagonal
    ax.imshow(once, cmap=_matplotlib().colors.ListedColormap(["0.7"]), interpolation="nearest")
    starts = [int(np.flatnonzero(tiers == t)[0]) for t in names]
    ends = [*starts[1:], len(tiers)]
    for edge in starts[1:]:
        ax.axhline(edge - 0.5, color="0.4", lw=0.6)
        ax.axvline(edge - 0.5, color="0.4", lw=0.6)
    centres = [(a + b - 1) / 2 for a, b in zip(starts, ends, strict=True)]
    ax.set_yticks(centres, names, fontsize="small")
    ax.set_xticks(centres, names, fontsize="small", rotation=35, ha="right")
    ax.set_xlabel("trial (sorted by tier, then clip)")
    ax.set_ylabel("trial (sorted by tier, then clip)")
    ax.set_title(
        f"{mouse_name(ds)}: same clip in both trials (grey: shown once)", fontsize="medium"
    )
    bar_ = fig.colorbar(image, ax=ax, label="repeated clip (group number)", shrink=0.8)
    bar_.ax.yaxis.set_major_locator(_matplotlib().ticker.MaxNLocator(integer=True))
    bar = axes[0, 1]
    counts = np.array([int((groups == g).sum()) for g in number])
    colours = image.cmap(image.norm(np.arange(len(number))))
    bar.bar(np.arange(len(number)), counts, color=colours)
    bar.set_xlabel("repeated clip (group number)")
    bar.set_ylabel("trials showing it")
    bar.yaxis.set_major_locator(_matplotlib().ticker.MaxNLocator(integer=True))
    bar.xaxis.set_major_locator(_matplotlib().ticker.MaxNLocator(integer=True))
    bar.set_title(
        f"{len(number)} clips shown more than once, {int((label < 0).sum())} once",
        fontsize="medium",
    )
    return fig
