"""Figures of in-silico experiments: image grids (MEIs, receptive fields), tuning curves, and
what an experiment found against a ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._base import new_figure

__all__ = ["image_grid", "truth_vs_found", "tuning_curves"]


def image_grid(
    images: Any,
    *,
    titles: Sequence[str] | None = None,
    columns: int = 6,
    symmetric: bool = True,
    title: str | None = None,
    unit: str = "normalised units",
    cell: float = 1.6,
) -> Any:
    """Images ``(N, H, W)`` in a grid with one colour scale and a colour bar.

    ``symmetric``: a diverging map centred on 0 (receptive fields, MEIs in normalised units);
    otherwise grey levels from the smallest to the largest value.
    """
    values = np.asarray(images, dtype=np.float64)
    if values.ndim != 3 or len(values) == 0:
        raise ValueError(f"images must be (N, H, W) with N >= 1, got shape {values.shape}")
    if titles is not None and len(titles) != len(values):
        raise ValueError(f"titles: {len(titles)} for {len(values)} images")
    n = len(values)
    cols = min(columns, n)
    rows = -(-n // cols)
    aspect = values.shape[1] / values.shape[2]
    fig, axes = new_figure(rows, cols, width=cell * cols + 1.0, height=cell * aspect * rows + 0.8)
    finite = values[np.isfinite(values)]
    if symmetric:
        bound = float(np.abs(finite).max()) if finite.size else 1.0
        kw = {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound}
    else:
        kw = {"cmap": "gray", "vmin": float(finite.min()), "vmax": float(finite.max())}
    shown = None
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            shown = ax.imshow(values[i], interpolation="nearest", **kw)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    fig.colorbar(shown, ax=axes, shrink=0.8, label=unit)
    if title:
        fig.suptitle(title)
    return fig


def tuning_curves(tuning: Any, *, neurons: Sequence[int] | None = None, columns: int = 4) -> Any:
    """Each neuron's orientation (or direction) tuning at its preferred other parameters, the
    maximum over phase, from :func:`sensorium_models.insilico.grating_tuning` (or
    ``drifting_grating_tuning``)."""
    responses = tuning["responses"]
    angle = "orientation" if "orientation" in responses.dims else "direction"
    curve = responses.max("phase") if "phase" in responses.dims else responses
    others = [d for d in curve.dims if d not in ("neuron", angle)]
    if others:
        curve = curve.sel({d: tuning[f"preferred_{d}"] for d in others})
    chosen = list(tuning["neuron"].values) if neurons is None else list(neurons)
    cols = min(columns, len(chosen))
    rows = -(-len(chosen) // cols)
    fig, axes = new_figure(rows, cols, width=2.4 * cols, height=1.9 * rows + 0.4)
    degrees = np.degrees(np.asarray(tuning[angle].values))
    for i, ax in enumerate(axes.flat):
        if i >= len(chosen):
            ax.set_axis_off()
            continue
        values = np.asarray(curve.sel(neuron=chosen[i]).values)
        ax.plot(degrees, values, marker="o", markersize=3)
        ax.set_title(f"neuron {chosen[i]}", fontsize=9)
        ax.set_xlabel(f"{angle} (deg)")
        ax.set_ylabel("rate")
    return fig


def truth_vs_found(
    truth: Any,
    found: Any,
    *,
    label: str,
    unit: str,
    period: float | None = None,
    tolerance: float | None = None,
    title: str | None = None,
) -> Any:
    """A scatter of what an in-silico experiment found against the ground truth, one point per
    neuron, with the identity line (and a band of ``tolerance``). ``period``: the values are
    angles of that period (the found ones are drawn at their closest turn to the truth)."""
    t = np.asarray(truth, dtype=np.float64)
    f = np.asarray(found, dtype=np.float64)
    if period is not None:
        f = t + (f - t + period / 2) % period - period / 2
    fig, axes = new_figure(width=4.2, height=4.0)
    ax = axes[0, 0]
    lo, hi = float(min(t.min(), f.min())), float(max(t.max(), f.max()))
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=1, label="identity")
    if tolerance is not None:
        ax.plot([lo, hi], [lo + tolerance, hi + tolerance], "k:", linewidth=1)
        band = f"± {tolerance:g}"
        ax.plot([lo, hi], [lo - tolerance, hi - tolerance], "k:", linewidth=1, label=band)
    ax.scatter(t, f, s=8, alpha=0.6)
    ax.set_xlabel(f"true {label} ({unit})")
    ax.set_ylabel(f"in silico {label} ({unit})")
    ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title)
    return fig
