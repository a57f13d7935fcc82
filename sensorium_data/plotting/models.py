"""Figures of trained models: per-neuron metrics, readout positions, predictions against data.

- :func:`metric_distributions`: the per-neuron official metrics of every mouse as box plots,
  one panel per metric (``sensorium_models.evaluate(..., per_neuron=True)`` gives them).
- :func:`readout_positions`: where each neuron's readout looks in the image, and how that
  position varies over the cortex (the retinotopic map).
- :func:`predicted_vs_recorded`: a few neurons' predicted against recorded responses (2022).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ._base import new_figure

__all__ = ["metric_distributions", "predicted_vs_recorded", "readout_positions"]

#: Readable names of the official metrics (the keys of ``sensorium_models.evaluate``).
METRIC_LABELS = {
    "single_trial_correlation": "single-trial correlation",
    "correlation_to_average": "correlation to average",
    "feve": "FEVE",
    "oracle_correlation": "oracle correlation",
}
_MEAN_STYLE = {"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black"}


# ----------------------------------------------------------------------------- metrics


def _per_mouse(per_neuron: Any) -> dict[str, Mapping[str, Any]]:
    """``{mouse: {metric: values}}`` from that mapping or from an evaluate tier entry."""
    if isinstance(per_neuron, Mapping) and isinstance(per_neuron.get("per_neuron"), Mapping):
        per_neuron = per_neuron["per_neuron"]  # a tier of evaluate(..., per_neuron=True)
    if not isinstance(per_neuron, Mapping) or not per_neuron:
        raise TypeError(
            "per_neuron must be a non-empty mapping mouse -> {metric: per-neuron values}, got "
            f"{type(per_neuron).__name__}"
        )
    for mouse, scores in per_neuron.items():
        if not isinstance(scores, Mapping):
            raise TypeError(
                f"per_neuron[{mouse!r}] must map metric names to per-neuron values, got "
                f"{type(scores).__name__} (a float report? pass per_neuron=True to evaluate)"
            )
    return {str(m): s for m, s in per_neuron.items()}


def _values(mouse: str, metric: str, value: Any) -> np.ndarray:
    arr = np.asarray(value.values if isinstance(value, xr.DataArray) else value, np.float64)
    if arr.ndim != 1:
        raise ValueError(
            f"per_neuron[{mouse!r}][{metric!r}] must be one value per neuron (1-D), got shape "
            f"{arr.shape}"
        )
    return arr[np.isfinite(arr)]


def _parse_metrics(metrics: Sequence[str] | None, found: list[str]) -> list[str]:
    if metrics is None:
        known = [m for m in METRIC_LABELS if m in found]
        return known + [m for m in found if m not in METRIC_LABELS]
    if isinstance(metrics, str):
        metrics = [metrics]
    missing = [m for m in metrics if m not in found]
    if missing or not metrics:
        raise ValueError(f"metrics: {missing or metrics} not in per_neuron; it holds {found}")
    return list(metrics)


def _boxes(ax: Any, data: list[np.ndarray], positions: list[int]) -> None:
    ax.boxplot(
        data,
        positions=positions,
        widths=0.6,
        patch_artist=True,
        showmeans=True,
        meanprops=_MEAN_STYLE,
        boxprops={"facecolor": "#9ecae1", "edgecolor": "black"},
        medianprops={"color": "black"},
        flierprops={"marker": ".", "markersize": 3, "alpha": 0.5},
    )


#: FEVE axes start here when some neuron lies below (their count is written on the panel).
FEVE_FLOOR = -1.0


def metric_distributions(
    per_neuron: Mapping[str, Mapping[str, Any]],
    *,
    metrics: Sequence[str] | None = None,
    title: str | None = None,
    sharey: bool = False,
) -> Any:
    """Per-neuron metric distributions per mouse: one panel per metric, one box per mouse.

    Parameters
    ----------
    per_neuron
        ``{mouse: {metric: per-neuron values}}`` (numpy vectors or DataArrays along
        ``neuron``), e.g. ``report["tiers"]["test"]["per_neuron"]`` of
        ``sensorium_models.evaluate(..., per_neuron=True)``; that tier entry itself works too.
        NaN values (FEVE of the neurons below the FEV threshold) are left out.
    metrics
        The metrics to show, in this order; default every metric found, official ones first.
    title
        Figure title (e.g. the tier).
    sharey
        One y scale for every panel (to compare metrics of the same kind, e.g. a model's
        single-trial correlation with the oracle correlation).

    Returns
    -------
    matplotlib.figure.Figure
        Box plots (median line, box from the 25th to the 75th percentile, whiskers to 1.5 IQR,
        outliers as points) with the mean marked by a white diamond; tick labels give each
        mouse and its number of neurons. A FEVE panel starts at -1 when some neuron lies below
        (unless ``sharey``); the number of neurons not shown is written on it.
    """
    scores = _per_mouse(per_neuron)
    found = list(dict.fromkeys(k for s in scores.values() for k in s))
    chosen = _parse_metrics(metrics, found)
    mice = list(scores)
    fig, axes = new_figure(
        1, len(chosen), width=min(16.0, 1.2 + len(chosen) * (1.6 + 0.7 * len(mice))), height=3.8
    )
    if sharey:
        for ax in axes[0, 1:]:
            ax.sharey(axes[0, 0])
    for ax, metric in zip(axes[0], chosen, strict=True):
        data = {m: _values(m, metric, s[metric]) for m, s in scores.items() if metric in s}
        shown = [m for m in mice if m in data and data[m].size]
        positions = [mice.index(m) + 1 for m in shown]
        if not shown:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        else:
            _boxes(ax, [data[m] for m in shown], positions)
        ax.set_xticks(range(1, len(mice) + 1))
        ax.set_xticklabels(
            [f"{m}\n(n={data[m].size})" if m in data else f"{m}\n(none)" for m in mice],
            rotation=30 if len(mice) > 3 else 0,
            fontsize="small",
        )
        ax.set_xlim(0.4, len(mice) + 0.6)
        ax.axhline(0.0, color="grey", lw=0.8, ls=":")
        label = METRIC_LABELS.get(metric, metric.replace("_", " "))
        ax.set_ylabel(label)
        ax.set_xlabel("mouse (neurons)")
        ax.set_title(label + (" (FEV ≥ 0.15)" if metric == "feve" else ""))
        ax.grid(axis="y", alpha=0.3)
        if metric == "feve" and not sharey and shown:
            _floor_feve(ax, [data[m] for m in shown])
    from matplotlib.lines import Line2D

    mean = Line2D([], [], ls="", label="mean", **_MEAN_STYLE)  # type: ignore[arg-type]
    axes[0, -1].legend(handles=[mean], loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def _floor_feve(ax: Any, values: Sequence[np.ndarray]) -> None:
    """FEVE has no lower bound: one badly predicted neuron (-6, say) squashes every box. Show
    the axis from ``FEVE_FLOOR`` and say how many neurons lie below it."""
    below = sum(int(np.sum(v < FEVE_FLOOR)) for v in values)
    if not below:
        return
    top = max(1.05, max(float(np.max(v)) for v in values) + 0.05)
    ax.set_ylim(FEVE_FLOOR - 0.05, top)
    ax.text(
        0.02,
        0.02,
        f"{below} neuron{'s' if below > 1 else ''} below {FEVE_FLOOR:g} not shown",
        transform=ax.transAxes,
        fontsize="small",
        color="grey",
        gid="feve-floor",
    )


# ----------------------------------------------------------------------------- positions


def _as_table(name: str, value: Any, columns: int) -> tuple[np.ndarray, Any]:
    """(float array (n, columns) of the first ``columns`` columns, neuron labels or None)."""
    labels = None
    if isinstance(value, xr.DataArray):
        if "neuron" not in value.dims or value.ndim != 2:
            raise ValueError(f"{name} must be a 2-D DataArray along 'neuron', got {value.dims}")
        other = next(d for d in value.dims if d != "neuron")
        value = value.transpose("neuron", other)
        labels = value.indexes.get("neuron")
    arr = np.asarray(value.values if isinstance(value, xr.DataArray) else value, np.float64)
    if arr.ndim != 2 or arr.shape[1] < columns:
        raise ValueError(f"{name} must be (n_neurons, {columns}+), got shape {arr.shape}")
    return arr[:, :columns], labels


def _matched(positions: Any, coordinates: Any) -> tuple[np.ndarray, np.ndarray]:
    """Positions and cortical x, y of the same neurons (by label where both share them)."""
    pos, pos_ids = _as_table("positions", positions, 2)
    xy, xy_ids = _as_table("coordinates", coordinates, 2)
    if pos_ids is not None and xy_ids is not None and set(pos_ids) == set(xy_ids):
        xy = xy[xy_ids.get_indexer(pos_ids)]
    elif len(pos) != len(xy):
        raise ValueError(
            f"coordinates hold {len(xy)} neurons but positions {len(pos)}; pass the same mouse"
        )
    return pos, xy


def _linear_r2(xy: np.ndarray, target: np.ndarray) -> float:
    """R^2 of the least-squares plane ``target ~ a + b x + c y``."""
    design = np.column_stack([np.ones(len(xy)), xy])
    fit, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ fit
    total = np.sum((target - target.mean()) ** 2)
    return float(1.0 - residual @ residual / total) if total > 0 else float("nan")


def readout_positions(
    positions: Any,
    coordinates: Any,
    *,
    mouse: str | None = None,
    image_aspect: float = 16 / 9,
) -> Any:
    """The retinotopy picture: readout positions in the image and across the cortex.

    Parameters
    ----------
    positions
        ``(neuron, 2)`` mean readout positions (x, y) in ``[-1, 1]``, as
        ``sensorium_models.readout_positions`` gives them (y = -1 is the top of the image).
    coordinates
        The neurons' ``cell_motor_coordinates`` (``(neuron, 3)`` µm; only x and y are used).
        Matched to ``positions`` by neuron label when both are DataArrays with the same ids,
        else by order.
    mouse
        Shown in the title.
    image_aspect
        Width / height of the stimulus the readout grid spans (16:9 for the 2022 images).

    Returns
    -------
    matplotlib.figure.Figure
        (a) the positions in the image plane; (b), (c) the neurons at their cortical position,
        coloured by the horizontal and the vertical component of their readout position (colour
        bars), with the R² of a plane fitted to that component over the cortical x, y.
    """
    pos, xy = _matched(positions, coordinates)
    if not len(pos):
        raise ValueError("positions hold no neurons")
    if not image_aspect > 0:
        raise ValueError(f"image_aspect must be positive, got {image_aspect}")
    fig, axes = new_figure(1, 3, width=15.0, height=4.6)
    image, *cortex = axes[0]
    image.scatter(pos[:, 0], pos[:, 1], s=12, color="C0", alpha=0.7, linewidths=0)
    image.set_xlim(-1.05, 1.05)
    image.set_ylim(1.05, -1.05)  # y = -1 is the top row of the image
    image.set_aspect(1.0 / image_aspect)
    image.set_xlabel("readout x (normalised, left → right)")
    image.set_ylabel("readout y (normalised, top → bottom)")
    image.set_title(f"(a) readout positions in the image\n{len(pos)} neurons")
    for spine in image.spines.values():
        spine.set_color("grey")
    names = (("x", "horizontal", "left → right"), ("y", "vertical", "top → bottom"))
    for k, (ax, (axis, word, direction)) in enumerate(zip(cortex, names, strict=True)):
        dots = ax.scatter(
            xy[:, 0], xy[:, 1], c=pos[:, k], cmap="viridis", s=14, linewidths=0, alpha=0.9
        )
        bar = fig.colorbar(dots, ax=ax, shrink=0.9)
        bar.set_label(f"readout {axis} (normalised, {direction})")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("cortical x (µm)")
        ax.set_ylabel("cortical y (µm)")
        r2 = _linear_r2(xy, pos[:, k])
        ax.set_title(f"({'bc'[k]}) cortex, coloured by {word} position\nplane fit R² = {r2:.2f}")
    fig.suptitle("Retinotopy" + (f": mouse {mouse}" if mouse else ""))
    return fig


# ----------------------------------------------------------------------------- predictions


def _trial_neuron(name: str, value: Any) -> tuple[np.ndarray, Any]:
    labels = None
    if isinstance(value, xr.DataArray):
        if set(value.dims) != {"trial", "neuron"}:
            raise ValueError(
                f"{name} must have dims (trial, neuron) (2022 responses), got {value.dims}; "
                "2023 traces: see predicted_traces"
            )
        value = value.transpose("trial", "neuron")
        labels = value.indexes.get("neuron")
    arr = np.asarray(value.values if isinstance(value, xr.DataArray) else value, np.float64)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (trial, neuron) 2022 responses, got shape {arr.shape}; "
            "2023 traces: see predicted_traces"
        )
    return arr, labels


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The official correlation of the columns (:func:`sensorium_data.metrics.corr`: 0 where
    one of them is constant), so a title shows what the metric computes."""
    from ..metrics import corr

    return np.asarray(corr(a, b, axis=0), dtype=np.float64)


def _pick(neurons: Sequence[Any] | None, n: int, labels: Any, r: np.ndarray) -> list[int]:
    """Column indices: the given neurons (labels, or positions without labels), or ``n``
    neurons evenly spaced over the ranking by correlation, best first."""
    if neurons is None:
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        order = np.argsort(-r, kind="stable")
        ranks = np.unique(np.linspace(0, len(order) - 1, min(n, len(order))).round().astype(int))
        return [int(order[k]) for k in ranks]
    picked = []
    for neuron in neurons:
        if labels is not None:
            where = labels.get_indexer([neuron])[0]
            if where < 0:
                raise ValueError(f"neurons: {neuron!r} is not a neuron id of responses")
        else:
            where = int(neuron)
            if not 0 <= where < len(r):
                raise ValueError(f"neurons: {neuron!r} is not a neuron index (0..{len(r) - 1})")
        picked.append(int(where))
    if not picked:
        raise ValueError("neurons: empty; give at least one neuron or None")
    return picked


def _averaged(resp: np.ndarray, pred: np.ndarray, image_ids: Any) -> tuple[Any, Any]:
    ids = np.asarray(image_ids.values if isinstance(image_ids, xr.DataArray) else image_ids)
    if ids.shape != (len(resp),):
        raise ValueError(
            f"image_ids must hold one id per trial ({len(resp)}), got shape {ids.shape}"
        )
    codes = np.unique(ids, return_inverse=True)[1].reshape(-1)
    counts = np.bincount(codes)[:, None]
    mean_r = np.zeros((len(counts), resp.shape[1]))
    mean_p = np.zeros_like(mean_r)
    np.add.at(mean_r, codes, resp)
    np.add.at(mean_p, codes, pred)
    return mean_r / counts, mean_p / counts


def predicted_vs_recorded(
    responses: Any,
    predictions: Any,
    *,
    neurons: Sequence[Any] | None = None,
    n: int = 4,
    image_ids: Any = None,
) -> Any:
    """Predicted against recorded responses of a few neurons over the trials (2022).

    Parameters
    ----------
    responses, predictions
        ``(trial, neuron)``: recorded responses (e.g. the test tier of
        :func:`~sensorium_data.open_mouse`) and the model's predictions of the same trials
        (``sensorium_models.predict``). DataArrays are used by their dimension names.
    neurons
        Neuron ids (the ``neuron`` labels of a DataArray ``responses``), else column indices.
        Default: ``n`` neurons spread evenly over the ranking by single-trial correlation, from
        the best predicted to the worst.
    n
        Neurons to show when ``neurons`` is None.
    image_ids
        One image id per trial (e.g. ``frame_image_id``): also plots the responses and
        predictions averaged over the repeats of each image, with their correlation.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per neuron: a point per trial (recorded on x, predicted on y), the
        correlation in the title. Recorded and predicted responses may be in different units
        (e.g. raw responses against the model's normalised ones); correlations do not depend
        on the scale of either.
    """
    resp, labels = _trial_neuron("responses", responses)
    pred, _ = _trial_neuron("predictions", predictions)
    if resp.shape != pred.shape:
        raise ValueError(
            f"predictions must match responses' (trial, neuron) shape {resp.shape}, got "
            f"{pred.shape}"
        )
    if resp.shape[0] < 2:
        raise ValueError(f"responses need at least 2 trials, got {resp.shape[0]}")
    if not np.any(resp):
        raise ValueError(
            "responses are all zero: withheld (the test tiers of a competition mouse)? "
            "Pass a tier that holds responses"
        )
    r = _corr(resp, pred)
    columns = _pick(neurons, n, labels, r)
    averaged = None if image_ids is None else _averaged(resp, pred, image_ids)
    r_avg = None if averaged is None else _corr(*averaged)
    ncols = min(4, len(columns))
    nrows = -(-len(columns) // ncols)
    fig, axes = new_figure(nrows, ncols, width=3.3 * ncols, height=3.2 * nrows)
    for ax, col in zip(axes.flat, columns, strict=False):
        name = labels[col] if labels is not None else col
        ax.scatter(resp[:, col], pred[:, col], s=10, alpha=0.5, color="C0", label="trials")
        text = f"neuron {name}\nr = {r[col]:.2f} (single trials)"
        if averaged is not None and r_avg is not None:
            ax.scatter(
                averaged[0][:, col],
                averaged[1][:, col],
                s=22,
                color="C1",
                edgecolors="black",
                linewidths=0.4,
                label="image means",
            )
            text += f"\nr = {r_avg[col]:.2f} (averaged over repeats)"
        ax.set_title(text, fontsize="medium")
        ax.set_xlabel("recorded response (a.u.)")
        ax.set_ylabel("predicted response (a.u.)")
    for ax in list(axes.flat)[len(columns) :]:
        ax.set_visible(False)
    if averaged is not None:
        axes[0, 0].legend(loc="best", fontsize="small")
    fig.suptitle(f"Predicted against recorded responses over {resp.shape[0]} trials")
    return fig
