"""Predictions, official metrics and submission files of a trained model.

:func:`predict` runs a model over one tier of one mouse in ascending file order (the order of the
toolkit's evaluation loaders and of the submission writers), :func:`evaluate` scores every tier
that holds responses with :mod:`sensorium_data.metrics` (with ``per_neuron=True`` also every
neuron's value, labelled by its neuron id), and :func:`write_submission` writes the
official files with :mod:`sensorium_data.submission`.

2023 models are run on whole trials (``frames=None``: every batch is cut at each trial's valid
length and padded with NaN to the longest trial of the batch; the padding is replaced by 0 before
the model sees it). A model returns ``T_out <= T`` frames aligned to the LAST ``T_out`` input
frames; the ``T - T_out`` first frames lost to its temporal kernel get the first predicted frame
repeated backwards (they lie inside the 50 unscored frames of the competition for every baseline:
the factorised core loses 18). Predictions after a trial's valid length are NaN. The cores are
causal (an output frame depends on the frames up to it, and zero padding only follows the valid
part), so batching trials of different lengths does not change the predictions of valid frames.

Rates and responses are in the normalised units of the loaders (``normalize=True``), which is
what the official ground truth holds.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from sensorium_data import metrics
from sensorium_data.conventions import (
    DEFAULT_SCORED_FRAMES,
    describe_scored_frames,
    parse_scored_frames,
)
from sensorium_data.errors import SensoriumDataError
from sensorium_data.store.access import list_mice, open_mouse
from sensorium_models.encoders import Encoder
from sensorium_models.inference import (
    Collected,
    collect,
    model_kind,
    model_loaders,
    resolve_device,
)

__all__ = [
    "DYNAMIC_EVAL_TIERS",
    "STATIC_EVAL_TIERS",
    "evaluate",
    "format_report",
    "predict",
    "score_collected",
    "write_submission",
]

#: Tiers :func:`evaluate` scores by default (where the store holds responses).
STATIC_EVAL_TIERS = ("validation", "test", "final_test")
DYNAMIC_EVAL_TIERS = (
    "oracle",
    "live_test_main",
    "final_test_main",
    "live_test_bonus",
    "final_test_bonus",
)
_SUBMISSION_TIERS = {
    "static": ("test", "final_test"),
    "dynamic": ("live_test_main", "final_test_main", "live_test_bonus", "final_test_bonus"),
}
_IMAGE_ID_NAMES = ("frame_image_id", "image_id", "colorframeprojector_image_id")


def _n_frames(store: Any, mouse: str, storage_options: Any) -> int | None:
    ds = open_mouse(store, mouse, storage_options, chunks=None)
    return int(ds.sizes["frame"]) if "frame" in ds.sizes else None


def _default_batch(model: Encoder) -> int:
    return 8 if model_kind(model) == "dynamic" else 128


def _device_of(model: Encoder, device: str | torch.device | None) -> torch.device:
    if device is None:
        return next(model.parameters()).device
    resolved = resolve_device(device)
    model.to(resolved)
    return resolved


def _run_tiers(
    model: Encoder,
    store: Any,
    tiers: Sequence[str],
    mice: Sequence[str],
    *,
    batch_size: int | None,
    device: str | torch.device | None,
    scale: float | None,
    num_workers: int,
    amp: bool,
    storage_options: Any,
    scored_frames: str = DEFAULT_SCORED_FRAMES,
) -> Iterator[tuple[str, str, Collected]]:
    """(tier, mouse, collected) for every tier of every mouse that has trials of it; 2023
    trials are cut at their last frame under ``scored_frames``."""
    dev = _device_of(model, device)
    loaders = model_loaders(
        model,
        store,
        tiers,
        mice=mice,
        batch_size=batch_size or _default_batch(model),
        scale=scale,
        num_workers=num_workers,
        pin_memory=dev.type == "cuda",
        scored_frames=scored_frames,
        storage_options=storage_options,
    )
    for tier in tiers:
        for mouse, loader in loaders.get(tier, {}).items():
            n_frames = _n_frames(store, mouse, storage_options)
            yield tier, mouse, collect(model, loader, mouse, device=dev, amp=amp, n_frames=n_frames)


def _parse_mice(model: Encoder, store: Any, mice: Sequence[str] | None, storage: Any) -> list[str]:
    known = list_mice(store, storage)
    by_source = {a["source_name"]: k for k, a in known.items()}
    wanted = [by_source.get(m, m) for m in (mice or list(model.mice))]
    missing = [m for m in wanted if m not in model.mice]
    if missing:
        raise SensoriumDataError(
            f"mice: the model has no readout for {missing}; it was trained on {list(model.mice)}"
        )
    absent = [m for m in wanted if m not in known]
    if absent and mice is not None:
        raise SensoriumDataError(f"mice: the store {store} holds no mouse {absent}")
    chosen = [m for m in wanted if m in known]
    if not chosen:
        raise SensoriumDataError(
            f"store: {store} holds none of the model's mice {list(model.mice)} "
            f"(it holds {list(known)})"
        )
    return chosen


def predict(
    model: Encoder,
    store: Any,
    tier: str,
    mouse: str,
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    scale: float | None = None,
    num_workers: int = 0,
    amp: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> np.ndarray:
    """Predictions of ``model`` for every trial of ``tier`` of ``mouse``, ascending file order.

    Parameters
    ----------
    model
        A model of :mod:`sensorium_models` (e.g. from
        :func:`~sensorium_models.training.load_model`).
    store, storage_options
        The converted store (path or URL) and its fsspec options.
    tier, mouse
        The tier (``"test"``, ``"oracle"``, ...) and the mouse (short key or folder name).
    batch_size
        Trials per batch (default 128 for 2022, 8 for 2023).
    device
        ``None``: where the model's parameters are; else the model is moved there
        (``"auto"``: CUDA when available).
    scale
        Image scale; default as in training (:func:`default_scale`).
    num_workers, amp
        DataLoader workers; mixed precision (CUDA only).

    Returns
    -------
    numpy.ndarray
        2022: ``(n_trials, n_neurons)``; 2023: ``(n_trials, n_neurons, T_max)`` float32, time
        last, NaN after each trial's valid length, the first frames lost to the temporal kernel
        filled with the first predicted frame (see the module notes).
    """
    (key,) = _parse_mice(model, store, [mouse], storage_options)
    runs = list(
        _run_tiers(
            model,
            store,
            [tier],
            [key],
            batch_size=batch_size,
            device=device,
            scale=scale,
            num_workers=num_workers,
            amp=amp,
            storage_options=storage_options,
            scored_frames="kit-head",  # every valid frame
        )
    )
    if not runs:
        tiers = sorted(set(np.asarray(open_mouse(store, key, storage_options).tiers).tolist()))
        raise SensoriumDataError(f"tier: mouse {key} has no {tier!r} trials; its tiers: {tiers}")
    return runs[0][2].predictions


# ----------------------------------------------------------------------------- metrics


def _static_values(c: Collected, image_ids: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per-neuron 2022 metrics (FEVE: NaN for neurons below the FEV threshold)."""
    resp, pred = c.responses, c.predictions
    out = {
        "single_trial_correlation": metrics.single_trial_correlation(resp, pred, per_neuron=True)
    }
    if image_ids is not None and np.unique(image_ids).size >= 2:
        out["correlation_to_average"] = metrics.correlation_to_average(
            resp, pred, image_ids, per_neuron=True
        )
        if np.bincount(np.unique(image_ids, return_inverse=True)[1]).max() >= 2:
            out["feve"] = metrics.feve(resp, pred, image_ids, per_neuron=True)
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def _dynamic_values(c: Collected, groups: np.ndarray | None, skip: int) -> dict[str, np.ndarray]:
    """Per-neuron 2023 metrics, frames ``skip ..`` valid length."""
    resp, pred, valid = c.responses, c.predictions, c.valid
    out = {
        "single_trial_correlation": metrics.dynamic_single_trial_correlation(
            resp, pred, skip=skip, valid_frames=valid, per_neuron=True
        )
    }
    if groups is not None and np.bincount(groups).max() >= 2:
        out["correlation_to_average"] = metrics.dynamic_correlation_to_average(
            resp, pred, groups, skip=skip, valid_frames=valid, per_neuron=True
        )
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def _summary(values: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The official per-mouse values: the mean over neurons (FEVE: over the selected neurons,
    left out when no neuron is selected), exactly as :mod:`sensorium_data.metrics` reduces."""
    out = {}
    for name, v in values.items():
        if name == "feve":
            selected = ~np.isnan(v)
            if selected.any():
                out[name] = float(v[selected].mean())
        else:
            out[name] = float(np.mean(v))
    return out


def _labelled(values: Mapping[str, np.ndarray], ds: Any, trials: int) -> dict[str, Any]:
    """Per-neuron vectors as DataArrays along ``neuron`` with the store's neuron coordinates."""
    import xarray as xr

    from sensorium_models.inspection import neuron_coordinates

    coords = neuron_coordinates(ds)
    return {
        k: xr.DataArray(v, dims=("neuron",), coords=coords, name=k, attrs={"n_trials": trials})
        for k, v in values.items()
    }


def _mouse_scores(
    c: Collected, store: Any, mouse: str, *, skip: int, storage_options: Any
) -> tuple[dict[str, np.ndarray], Any]:
    """(per-neuron metrics of one mouse's tier, the mouse's dataset)."""
    ds = open_mouse(store, mouse, storage_options, chunks=None)
    if c.responses.ndim == 2:
        name = next((n for n in _IMAGE_ID_NAMES if n in ds.coords), None)
        ids = None if name is None else np.asarray(ds[name].values)[c.trials]
        return _static_values(c, ids), ds
    groups = metrics.repeat_groups_from_videos(ds["videos"].isel(trial=c.trials).values)
    return _dynamic_values(c, groups, skip), ds


def score_collected(
    c: Collected,
    store: Any,
    mouse: str,
    *,
    skip: int = metrics.SKIP,
    per_neuron: bool = False,
    storage_options: Any = None,
) -> dict[str, Any]:
    """The official metrics of one mouse's tier (2022: single-trial correlation, correlation to
    average and FEVE where images repeat; 2023: single-trial correlation and, where clips
    repeat, correlation to average, frames ``skip ..`` valid length).

    ``per_neuron=True``: every metric as an :class:`xarray.DataArray` along ``neuron`` (the
    store's neuron ids and neuron coordinates; FEVE is NaN for neurons below the FEV threshold)
    instead of its float mean.
    """
    values, ds = _mouse_scores(c, store, mouse, skip=skip, storage_options=storage_options)
    if per_neuron:
        return _labelled(values, ds, len(c.trials))
    return _summary(values)


def evaluate(
    model: Encoder,
    store: Any,
    tiers: Sequence[str] | None = None,
    *,
    mice: Sequence[str] | None = None,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    scale: float | None = None,
    skip: int = metrics.SKIP,
    scored_frames: str = DEFAULT_SCORED_FRAMES,
    num_workers: int = 0,
    amp: bool = False,
    per_neuron: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The official metrics of ``model`` on every tier of ``store`` that holds responses.

    Parameters
    ----------
    tiers
        Default: 2022 ``validation``, ``test``, ``final_test``; 2023 ``oracle`` and the live
        and final main and bonus tiers. Tiers a mouse lacks, or whose responses are all zero
        (withheld, as in competition mice), are skipped and listed under ``"skipped"``.
    mice
        Default: the model's mice that the store holds.
    skip
        2023: unscored first frames of every trial (50 in the competition).
    scored_frames
        2023: where a trial's scored frames end (:mod:`sensorium_data.conventions`):
        ``"competition"`` (default) frames ``skip .. L-2`` of every NaN-padded trial of valid
        length ``L``, as the competition scored them; ``"kit-head"`` frames ``skip .. L-1``.
    per_neuron
        Also give every metric per neuron: each tier's entry then holds ``"per_neuron"``:
        ``{mouse: {metric: xarray.DataArray}}``, one value per neuron along ``neuron`` (the
        store's neuron ids, with its neuron coordinates such as ``unit_ids``); FEVE is NaN for
        the neurons below the FEV threshold that the official mean leaves out. The
        ``"mice"`` and ``"mean"`` floats are the same as without it (that part stays
        JSON-ready; the DataArrays are not).
    batch_size, device, scale, num_workers, amp, storage_options
        As for :func:`predict`.

    Returns
    -------
    dict
        ``{"kind": "static"|"dynamic", "tiers": {tier: {"mice": {mouse: {metric: value}},
        "mean": {metric: equal-weight mean over mice}}}, "skipped": [reasons]}``; metrics
        ``single_trial_correlation``, ``correlation_to_average`` (where stimuli repeat) and,
        2022, ``feve``. Values are JSON-ready floats. The per-mouse value of a metric is
        the mean of its per-neuron values (FEVE: over the selected neurons).
    """
    kind = model_kind(model)
    tiers = list(tiers or (STATIC_EVAL_TIERS if kind == "static" else DYNAMIC_EVAL_TIERS))
    chosen = _parse_mice(model, store, mice, storage_options)
    result: dict[str, Any] = {"kind": kind, "tiers": {}, "skipped": []}
    if kind == "dynamic":
        result["scored_frames"] = parse_scored_frames(scored_frames)
    seen: set[tuple[str, str]] = set()
    runs = _run_tiers(
        model,
        store,
        tiers,
        chosen,
        batch_size=batch_size,
        device=device,
        scale=scale,
        num_workers=num_workers,
        amp=amp,
        storage_options=storage_options,
        scored_frames=parse_scored_frames(scored_frames),
    )
    for tier, mouse, c in runs:
        seen.add((tier, mouse))
        if not np.any(np.nan_to_num(c.responses) != 0):
            result["skipped"].append(f"mouse {mouse} tier {tier!r}: responses withheld (all zero)")
            continue
        values, ds = _mouse_scores(c, store, mouse, skip=skip, storage_options=storage_options)
        entry = result["tiers"].setdefault(tier, {"mice": {}})
        entry["mice"][mouse] = _summary(values)
        if per_neuron:
            entry.setdefault("per_neuron", {})[mouse] = _labelled(values, ds, len(c.trials))
    for tier in tiers:
        for mouse in chosen:
            if (tier, mouse) not in seen:
                result["skipped"].append(f"mouse {mouse} tier {tier!r}: no trials")
    for entry in result["tiers"].values():
        names = dict.fromkeys(k for s in entry["mice"].values() for k in s)
        entry["mean"] = {
            k: float(np.mean([s[k] for s in entry["mice"].values() if k in s])) for k in names
        }
    return result


def format_report(report: Mapping[str, Any]) -> str:
    """A readable table of an :func:`evaluate` result."""
    rows = [("tier", "mouse", "metric", "value")]
    for tier, entry in report["tiers"].items():
        for mouse, scores in [*entry["mice"].items(), ("mean", entry["mean"])]:
            rows += [(tier, mouse, k, f"{v:.4f}") for k, v in scores.items()]
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if report.get("scored_frames"):
        lines.append(f"scored frames: {describe_scored_frames(report['scored_frames'])}")
    lines += [f"skipped: {s}" for s in report.get("skipped", [])]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- submissions


def write_submission(
    model: Encoder,
    store: Any,
    out_dir: str | os.PathLike[str],
    *,
    mice: Sequence[str] | None = None,
    tiers: Sequence[str] | None = None,
    overwrite: bool = False,
    skip: int = metrics.SKIP,
    scored_frames: str = DEFAULT_SCORED_FRAMES,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    scale: float | None = None,
    num_workers: int = 0,
    amp: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> list[pathlib.Path]:
    """Write the official submission files of ``model`` for the test tiers of ``store``.

    2022: ``submission_file_live_test.csv`` / ``submission_file_final_test.csv`` per mouse
    (:func:`sensorium_data.submission.write_submission_2022`: one mouse directly in ``out_dir``,
    several in per-mouse subfolders). 2023: the main and bonus parquet files and upload zips
    (:func:`sensorium_data.submission.write_submission_2023`), frames ``skip`` (50) to the
    end of the trial under ``scored_frames`` (``"competition"``: 249 of a padded 300-frame
    trial, the lengths the official scorer accepted; ``"kit-head"``: 250).
    ``tiers`` default to every test tier the mice have; other arguments as for :func:`predict`.
    Returns the files written.
    """
    from sensorium_data import submission

    kind = model_kind(model)
    tiers = list(tiers or _SUBMISSION_TIERS[kind])
    unknown = sorted(set(tiers) - set(_SUBMISSION_TIERS[kind]))
    if unknown:
        raise SensoriumDataError(
            f"tiers: {unknown} have no submission file; {kind} tiers: {_SUBMISSION_TIERS[kind]}"
        )
    chosen = _parse_mice(model, store, mice, storage_options)
    predictions: dict[str, dict[str, Any]] = {}
    runs = _run_tiers(
        model,
        store,
        tiers,
        chosen,
        batch_size=batch_size,
        device=device,
        scale=scale,
        num_workers=num_workers,
        amp=amp,
        storage_options=storage_options,
        scored_frames=parse_scored_frames(scored_frames),
    )
    for tier, mouse, c in runs:
        if kind == "static":
            predictions.setdefault(mouse, {})[tier] = c.predictions.astype(np.float64)
        else:
            rows = [p[:, :v] for p, v in zip(c.predictions, c.valid, strict=True)]  # type: ignore[arg-type]
            predictions.setdefault(mouse, {})[tier] = rows
    if not predictions:
        raise SensoriumDataError(
            f"store: none of the mice {chosen} has trials of the tiers {tiers} in {store}"
        )
    if kind == "static":
        return submission.write_submission_2022(
            predictions, store, out_dir, overwrite=overwrite, storage_options=storage_options
        )
    return submission.write_submission_2023(
        predictions,
        store,
        out_dir,
        skip=skip,
        scored_frames=scored_frames,
        overwrite=overwrite,
        storage_options=storage_options,
    )
