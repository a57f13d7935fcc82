"""Predictions handed to the writers: matched to the store's trials and checked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._store import _Mouse, _StoreView
from .problems import SubmissionError, _listing, _show

# ----------------------------------------------------------------------------- predictions in


def _per_trial(pred: Any, trials: np.ndarray, label: str, errors: list[str]) -> list[Any]:
    """The prediction of each trial of ``trials`` (file indices, ascending), or ``[]``."""
    if isinstance(pred, Mapping):
        try:
            given = {int(k): v for k, v in pred.items()}
        except (TypeError, ValueError):
            errors.append(f"{label}: mapping keys must be file indices (int), got {list(pred)!r}")
            return []
        missing = sorted(set(trials.tolist()) - set(given))
        extra = sorted(set(given) - set(trials.tolist()))
        if missing:
            errors.append(f"{label}: no prediction for trials (file index) {_show(missing)}")
        if extra:
            errors.append(f"{label}: trials {_show(extra)} are not trials of this tier")
        return [] if missing or extra else [given[int(i)] for i in trials]
    if isinstance(pred, list | tuple):
        rows = list(pred)
    else:
        array = np.asarray(pred)
        rows = list(array) if array.ndim else []
    if len(rows) != len(trials):
        errors.append(
            f"{label}: expected predictions of {len(trials)} trials (the tier's trials in "
            f"ascending file order), found {len(rows)}"
        )
        return []
    return rows


def _numeric(value: Any, label: str, errors: list[str], dtype: Any) -> np.ndarray | None:
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        errors.append(f"{label}: predictions must be numbers, got dtype {array.dtype}")
        return None
    return array.astype(dtype)


def _check_finite(array: np.ndarray, label: str, errors: list[str]) -> None:
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        errors.append(f"{label}: {bad} NaN or infinite value(s)")


def _fit_frames(
    array: np.ndarray, m: _Mouse, index: int, skip: int, scored_frames: str
) -> np.ndarray | str:
    """The scored frames of one trial given those frames, the valid ones or the padded ones."""
    n, valid, stop = m.unit_ids.size, m.valid(index), m.scored_stop(index, scored_frames)
    t_eval = stop - skip
    if array.ndim != 2 or array.shape[0] != n:
        return f"expected (n_neurons={n}, frames) with time last, found {array.shape}"
    if t_eval < 1:
        return f"the trial has {stop} usable frames, none left to score after skip={skip}"
    length = array.shape[1]
    if length == t_eval:
        return array
    if length in (stop, valid, m.n_frames):
        return array[:, skip:stop]
    which = f"frames {skip} .. {stop - 1}, scored_frames={scored_frames!r}"
    return (
        f"expected {t_eval} scored frames ({which}), or the {valid} valid frames, or the "
        f"{m.n_frames} padded frames; found {length}"
    )


def _resolve(
    view: _StoreView, predictions: Mapping[str, Mapping[str, Any]], kind: str, tiers: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """``{group name: {tier: predictions}}``, refusing mice of another kind and unknown tiers."""
    out: dict[str, dict[str, Any]] = {}
    for mouse, by_tier in predictions.items():
        key = view.key(mouse)
        if view.attrs[key]["kind"] != kind:
            raise SubmissionError(f"mouse {mouse!r} holds {view.attrs[key]['kind']}, not {kind}")
        unknown = sorted(set(by_tier) - set(tiers))
        if unknown:
            raise SubmissionError(
                f"mouse {mouse!r}: no submission file for tier(s) {unknown}; {kind} tiers with "
                f"files: {', '.join(tiers)}"
            )
        out[key] = dict(by_tier)
    if not out:
        raise SubmissionError("no predictions given")
    return out


def _prepare_2022(m: _Mouse, tier: str, pred: Any, errors: list[str]) -> list[Any]:
    """Rows of a 2022 file, checked: one (n_neurons,) float64 array per trial of the tier."""
    label = f"mouse {m.key} tier {tier!r}"
    trials = m.trials(tier)
    if trials.size == 0 or m.trial_idx is None or m.image_ids is None:
        errors.append(f"{label}: the store has no trials of this tier, or no trial_idx/image ids")
        return []
    rows = []
    for i, value in zip(trials, _per_trial(pred, trials, label, errors), strict=False):
        array = _numeric(value, f"{label} trial {i}", errors, np.float64)
        if array is not None and array.shape != m.unit_ids.shape:
            errors.append(f"{label} trial {i}: expected {m.unit_ids.shape}, found {array.shape}")
        elif array is not None:
            _check_finite(array, f"{label} trial {i}", errors)
        rows.append(array)
    return rows


def _prepare_2023(
    m: _Mouse, tier: str, pred: Any, skip: int, scored_frames: str, errors: list[str]
) -> list[Any]:
    """Rows of a 2023 file, checked: one (n_neurons, T_eval) float32 array per trial."""
    label = f"mouse {m.key} tier {tier!r}"
    trials = m.trials(tier)
    if trials.size == 0:
        errors.append(f"{label}: the store has no trials of this tier")
    rows = []
    for i, value in zip(trials, _per_trial(pred, trials, label, errors), strict=False):
        array = _numeric(value, f"{label} trial {i}", errors, np.float32)
        fitted = "" if array is None else _fit_frames(array, m, int(i), skip, scored_frames)
        if isinstance(fitted, str) and fitted:
            errors.append(f"{label} trial {i}: {fitted}")
        elif not isinstance(fitted, str):
            _check_finite(fitted, f"{label} trial {i} (scored frames)", errors)
        rows.append(fitted)
    return rows


def _raise_errors(errors: list[str]) -> None:
    if errors:
        raise SubmissionError(_listing("cannot write the submission", errors))
