"""Figures of training runs and video models: the learning curve of a run, predicted traces.

:func:`learning_curve` reads the ``log.jsonl`` that :func:`sensorium_models.train` writes (one
JSON line per epoch); :func:`predicted_traces` draws the per-frame predictions of a 2023 video
model (as :func:`sensorium_models.predict` returns them) over the recorded traces.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._base import new_figure

__all__ = ["learning_curve", "predicted_traces"]

LOG_NAME = "log.jsonl"
_TRACE_DIMS = ("trial", "neuron", "frame")


# ----------------------------------------------------------------------------- learning curve


def _read_log(path: pathlib.Path) -> list[dict[str, Any]]:
    """The per-epoch entries of a ``log.jsonl`` file (or of the one in a run folder)."""
    file = path / LOG_NAME if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"log: no training log at {file} (train a model into it first)")
    entries = []
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"log: line {number} of {file} is not JSON: {exc.msg}") from exc
    if not entries:
        raise ValueError(f"log: the training log {file} is empty (no finished epoch yet)")
    return entries


def _parse_log(log: Any) -> tuple[list[dict[str, Any]], str]:
    """``(entries, where)``: the epochs of ``log`` and a name for it in titles and errors."""
    if isinstance(log, (str, os.PathLike)):
        path = pathlib.Path(log)
        return _read_log(path), path.name if path.is_dir() else path.parent.name
    if isinstance(log, Sequence) and not isinstance(log, (str, bytes)):
        entries = list(log)
        if not entries:
            raise ValueError("log: the list of epochs is empty (no finished epoch yet)")
        if not all(isinstance(e, Mapping) for e in entries):
            raise TypeError("log: expected a run folder, a log.jsonl path or a list of dicts")
        return [dict(e) for e in entries], ""
    raise TypeError(
        f"log: expected a run folder, a log.jsonl path or a list of per-epoch dicts, "
        f"got {type(log).__name__}"
    )


def _column(entries: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """One per-epoch value as floats (NaN where an entry lacks it)."""
    values = [e.get(key) for e in entries]
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _check_entries(entries: Sequence[Mapping[str, Any]]) -> None:
    missing = [k for k in ("epoch", "loss", "score") if any(k not in e for e in entries)]
    if missing:
        raise ValueError(f"log: epochs lack the keys {missing} that sensorium_models.train writes")


def learning_curve(log: Any, *, title: str | None = None) -> Any:
    """The learning curve of a training run: loss, stop-tier score and learning rate per epoch.

    Parameters
    ----------
    log
        A run folder of :func:`sensorium_models.train` (holding ``log.jsonl``), the path of a
        ``log.jsonl`` file, or a list of the per-epoch dicts it holds (``TrainResult.history``):
        keys ``epoch``, ``loss``, ``score``, ``tier``, ``lr``, ``action``, ``best_score``,
        ``best_epoch``.
    title
        Figure title (default: "Learning curve" and the run folder's name).

    Returns
    -------
    matplotlib.figure.Figure
        Three panels over the epochs, sharing the x axis: the training loss; the single-trial
        correlation on the stop tier with the best epoch marked by a star and learning-rate
        decays (``action == "decay"``) by dashed vertical lines; the learning rate on a log axis.
    """
    entries, where = _parse_log(log)
    _check_entries(entries)
    epochs = _column(entries, "epoch")
    tier = next((str(e["tier"]) for e in reversed(entries) if e.get("tier")), "stop-tier")
    fig, axes = new_figure(3, 1, width=6.4, height=6.4)
    loss_ax, score_ax, lr_ax = axes[:, 0]
    for ax in (loss_ax, score_ax):
        ax.sharex(lr_ax)
        ax.tick_params(labelbottom=False)
    loss_ax.plot(epochs, _column(entries, "loss"), "o-", color="C0", label="training loss")
    loss_ax.set_ylabel("training loss\n(per step)")
    loss_ax.set_title("Training loss")
    score_ax.plot(epochs, _column(entries, "score"), "o-", color="C1", label=f"{tier} score")
    score_ax.set_ylabel(f"{tier} single-trial\ncorrelation")
    score_ax.set_title(f"Score on the {tier} tier (early stopping)")
    _mark_decays(score_ax, epochs, entries)
    _mark_best(score_ax, entries)
    score_ax.legend(loc="best", fontsize="small")
    lr = _column(entries, "lr")
    if np.any(np.isfinite(lr) & (lr > 0)):
        lr_ax.plot(epochs, lr, "o-", color="C2", label="learning rate")
        lr_ax.set_yscale("log")
        _mark_decays(lr_ax, epochs, entries)
    lr_ax.set_ylabel("learning rate\n(log scale)")
    lr_ax.set_title("Learning rate (lowered after each decay)")
    lr_ax.set_xlabel("epoch")
    from matplotlib.ticker import MaxNLocator

    lr_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title or ("Learning curve" + (f": {where}" if where else "")))
    return fig


def _mark_best(ax: Any, entries: Sequence[Mapping[str, Any]]) -> None:
    """A star at the best epoch (as the last entry records it)."""
    last = entries[-1]
    best_epoch, best_score = last.get("best_epoch"), last.get("best_score")
    if not best_epoch or best_score is None or not math.isfinite(float(best_score)):
        return
    ax.plot(
        [best_epoch],
        [best_score],
        "*",
        color="C3",
        markersize=14,
        label=f"best: epoch {best_epoch} ({float(best_score):.3f})",
        gid="best",
    )


def _mark_decays(ax: Any, epochs: np.ndarray, entries: Sequence[Mapping[str, Any]]) -> None:
    """A dashed vertical line at each epoch after which the learning rate was lowered."""
    decays = [x for x, e in zip(epochs, entries, strict=True) if e.get("action") == "decay"]
    for k, x in enumerate(decays):
        ax.axvline(
            x,
            color="grey",
            linestyle="--",
            linewidth=1,
            label="lr decay (best weights restored)" if k == 0 else None,
            gid="decay",
        )


# ----------------------------------------------------------------------------- traces


def _as_trials(value: Any, name: str) -> tuple[np.ndarray, Any]:
    """``(array (trial, neuron, frame), neuron labels or None)`` from an array or DataArray."""
    labels = None
    dims = getattr(value, "dims", None)
    if dims is not None and hasattr(value, "transpose"):
        if set(_TRACE_DIMS) <= set(dims) and len(dims) == 3:
            value = value.transpose(*_TRACE_DIMS)
        neuron_dim = value.dims[1]
        if neuron_dim in value.coords:
            labels = np.asarray(value.coords[neuron_dim].values)
        value = value.values
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a numeric (trial, neuron, frame) array") from exc
    if array.ndim != 3:
        raise ValueError(
            f"{name}: expected a (trial, neuron, frame) array, got {array.ndim} dimensions "
            f"{array.shape} (2022 models predict one value per image: use predicted_vs_recorded)"
        )
    return array, labels


def _valid_length(valid_frames: Any, trial: int, recorded: np.ndarray) -> int:
    """Frames of the trial that hold data: given, or up to the first NaN of any neuron."""
    n_frames = recorded.shape[-1]
    if valid_frames is None:
        nan = np.isnan(recorded).any(axis=0)
        return int(np.argmax(nan)) if nan.any() else n_frames
    if np.ndim(valid_frames) == 0:
        length = int(valid_frames)
    else:
        lengths = np.asarray(valid_frames).ravel()
        if trial >= lengths.size:
            raise ValueError(f"valid_frames: {lengths.size} lengths, no entry for trial {trial}")
        length = int(lengths[trial])
    if not 0 < length <= n_frames:
        raise ValueError(f"valid_frames: {length} is not within 1..{n_frames} frames")
    return length


def _pick_neurons(neurons: Any, n: int, n_neurons: int) -> list[int]:
    if neurons is None:
        if n < 1:
            raise ValueError(f"n: expected at least one neuron, got {n}")
        return list(range(min(n, n_neurons)))
    picked = [int(k) for k in np.atleast_1d(neurons)]
    bad = [k for k in picked if not 0 <= k < n_neurons]
    if not picked or bad:
        raise ValueError(f"neurons: indices {bad or picked} not within 0..{n_neurons - 1}")
    return picked


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """The official correlation (:func:`sensorium_data.metrics.corr`) over the frames where
    both traces are finite; NaN when there are none."""
    from ..metrics import corr

    ok = np.isfinite(a) & np.isfinite(b)
    return float(corr(a[ok], b[ok])) if ok.any() else math.nan


def _trace_panel(
    ax: Any, frames: np.ndarray, rec: np.ndarray, pred: np.ndarray, *, skip: int, name: Any
) -> Any:
    """One neuron: recorded (left axis), predicted (right axis), unscored frames shaded."""
    ax.axvspan(0, skip, color="0.85", zorder=0, label=f"not scored (frames < {skip})")
    ax.plot(frames, rec, color="black", linewidth=1, label="recorded")
    ax.set_ylabel("recorded (a.u.)")
    right = ax.twinx()
    right.plot(frames, pred, color="C1", linewidth=1.5, label="predicted")
    right.set_ylabel("predicted (a.u.)", color="C1")
    right.tick_params(axis="y", colors="C1")
    r = _correlation(rec[skip:], pred[skip:])
    ax.set_title(f"neuron {name}: r = {r:.2f} over frames {skip}..{len(frames) - 1}")
    return right


def predicted_traces(
    responses: Any,
    predictions: Any,
    *,
    trial: int = 0,
    neurons: Sequence[int] | None = None,
    n: int = 4,
    skip: int = 50,
    valid_frames: Any = None,
) -> Any:
    """Predicted and recorded per-frame traces of a few neurons in one 2023 trial.

    Parameters
    ----------
    responses, predictions
        ``(trial, neuron, frame)`` arrays or DataArrays of the same shape: the recorded responses
        and a video model's predictions (:func:`sensorium_models.predict`), NaN after each
        trial's valid length.
    trial
        Position of the trial along the first axis.
    neurons, n
        Positions of the neurons to draw (default: the first ``n``), one panel each.
    skip
        Unscored first frames (50 in the competition), shaded; the correlation in each panel's
        title is over frames ``skip`` .. valid length.
    valid_frames
        The trial's valid length (an int), or one per trial; default: the responses'
        ``valid_frames`` coordinate (DataArrays of :func:`sensorium_data.open_mouse`), else up
        to the first NaN frame of the recorded responses.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per neuron: the recorded trace (black, left axis) and the prediction (orange,
        right axis: models predict normalised responses, so the scales differ; the correlation
        does not depend on them) over frames at 30 Hz, the unscored frames shaded grey.
    """
    recorded, labels = _as_trials(responses, "responses")
    predicted, _ = _as_trials(predictions, "predictions")
    if recorded.shape != predicted.shape:
        raise ValueError(
            f"predictions: shape {predicted.shape} differs from the responses' {recorded.shape}"
        )
    if not 0 <= int(trial) < recorded.shape[0]:
        raise ValueError(f"trial: {trial} is not within 0..{recorded.shape[0] - 1}")
    if int(skip) < 0:
        raise ValueError(f"skip: expected a number of frames >= 0, got {skip}")
    trial, skip = int(trial), int(skip)
    picked = _pick_neurons(neurons, n, recorded.shape[1])
    if valid_frames is None and "valid_frames" in getattr(responses, "coords", {}):
        valid_frames = np.asarray(responses.coords["valid_frames"].values)
    length = _valid_length(valid_frames, trial, recorded[trial])
    if skip >= length:
        raise ValueError(f"skip: {skip} frames leave none of the trial's {length} valid frames")
    frames = np.arange(length)
    fig, axes = new_figure(len(picked), 1, width=7.0, height=1.2 + 1.5 * len(picked))
    for ax in axes[:-1, 0]:
        ax.sharex(axes[-1, 0])
        ax.tick_params(labelbottom=False)
    twins = [
        _trace_panel(
            ax,
            frames,
            recorded[trial, neuron, :length],
            predicted[trial, neuron, :length],
            skip=skip,
            name=labels[neuron] if labels is not None else neuron,
        )
        for ax, neuron in zip(axes[:, 0], picked, strict=True)
    ]
    left, right = axes[0, 0].get_legend_handles_labels(), twins[0].get_legend_handles_labels()
    fig.legend(left[0] + right[0], left[1] + right[1], loc="outside lower center", ncol=3)
    axes[-1, 0].set_xlabel("frame (30 Hz)")
    axes[-1, 0].set_xlim(0, length - 1)
    fig.suptitle(f"Predicted and recorded responses, trial {trial}")
    return fig
