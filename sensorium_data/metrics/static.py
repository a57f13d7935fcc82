"""The SENSORIUM 2022 (static images) metrics: single-trial correlation, to average, FEVE."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._core import STATIC_DIMS, MetricInputError, _codes, _pair, _parse_real, corr
from ._moments import (
    _moment_corr,
    _moments,
    _need_trials,
    _repeated,
    _result,
    _static_plan,
    _variances,
)

# ----------------------------------------------------------------------------- 2022


def single_trial_correlation(responses: Any, predictions: Any, *, per_neuron: bool = False) -> Any:
    """2022 single-trial correlation: per neuron over all trials, then the mean over neurons.

    Parameters
    ----------
    responses, predictions
        ``(trial, neuron)`` arrays (numpy, dask, or DataArrays matched by labels).
    per_neuron
        Return the per-neuron correlations instead of their mean.
    """
    resp, pred, template = _pair(responses, predictions, STATIC_DIMS)
    _need_trials(resp.shape[0], 2, "single_trial_correlation")
    plan = _static_plan(np.zeros(resp.shape[0], np.int64))
    m = _moments(resp[..., None], pred[..., None], plan, finite_x=True)
    return _result(_moment_corr(m), template, per_neuron, "single_trial_correlation")


def correlation_to_average(
    responses: Any, predictions: Any, image_ids: Any, *, per_neuron: bool = False
) -> Any:
    """2022 correlation to average: responses and predictions averaged over the repeats of each
    image id, correlated per neuron over images, then the mean over neurons.
    """
    resp, pred, template = _pair(responses, predictions, STATIC_DIMS)
    codes = _codes("image_ids", image_ids, resp.shape[0], template)
    m = _moments(resp[..., None], pred[..., None], _static_plan(codes), second=False, finite_x=True)
    if len(m.labels) < 2:
        raise MetricInputError("correlation_to_average needs at least 2 distinct image ids")
    return _result(corr(m.mx, m.my, axis=0), template, per_neuron, "correlation_to_average")


def feve(
    responses: Any,
    predictions: Any,
    image_ids: Any,
    *,
    fev_threshold: float = 0.15,
    per_neuron: bool = False,
) -> Any:
    """2022 fraction of explainable variance explained, mean over neurons with FEV >= threshold.

    Per neuron ``FEVE = 1 - (MSE - noise_var) / (total_var - noise_var)`` with
    ``total_var = var(all trials, ddof=1)``, ``noise_var`` the mean over images of the variance
    over repeats (ddof=1) and ``MSE = mean((r - p)^2)``; trials of images shown once are left
    out. Returns NaN when no neuron reaches the threshold. ``per_neuron=True`` gives every
    neuron, NaN for the unselected ones (the official code returns only the selected values:
    drop the NaNs to get them).
    """
    threshold = _parse_real("fev_threshold", fev_threshold)
    resp, pred, template = _pair(responses, predictions, STATIC_DIMS)
    codes = _codes("image_ids", image_ids, resp.shape[0], template)
    m = _moments(resp[..., None], pred[..., None], _static_plan(codes), finite_x=True)
    m = _repeated(m, "feve")
    total, noise = _variances(m)
    mse = (m.vx + m.vy - 2 * m.cxy + m.n[:, None] * (m.mx - m.my) ** 2).sum(0) / m.n.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        selected = (total - noise) / total >= threshold
        values = np.where(selected, 1 - (mse - noise) / (total - noise), np.nan)
    if per_neuron:
        return _result(values, template, True, "feve")
    return float(values[selected].mean()) if selected.any() else float("nan")
