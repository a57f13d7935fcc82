"""Which statistics a SENSORIUM tree may hold: the rule the tree reader and the stores share.

The official loaders normalise images/videos, responses, behaviour and pupil position with the
``meta/statistics`` of each key (SENSORIUM_FORMAT.md); a statistic that does not fit one trial of
its key would be broadcast wrongly or fail deep inside a batch, so reading a tree and opening a
store both check them with :func:`statistic_problem`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["NORMALISED_KEYS", "statistic_problem"]

#: Data keys whose statistics the normaliser uses; the stimulus keys may hold fewer values.
NORMALISED_KEYS = ("images", "videos", "responses", "behavior", "pupil_center")


def statistic_problem(
    kind: str, key: str, shape: tuple[int, ...], dtype: Any, trial_shape: tuple[int, ...]
) -> str | None:
    """What is wrong with a statistic of data key ``key`` against its trials, or ``None``.

    Statistics must be numbers. Those of responses, behaviour and pupil position have the shape
    of one trial (SENSORIUM_FORMAT.md: ``(n_neurons,)``, ``(3,)``, ``(2,)``; 2023 per frame:
    ``(n_neurons, T)``, ``(2, T)``). Static images may hold fewer values that broadcast to a
    trial (a scalar in the releases); 2023 videos have a value per frame (last axis ``T``).
    Statistics of other keys are not used and not checked.
    """
    if key not in NORMALISED_KEYS:
        return None
    if np.dtype(dtype).kind not in "biuf":
        return f"holds {np.dtype(dtype)} values; statistics must be numbers"
    shape, trial_shape = tuple(shape), tuple(trial_shape)
    if shape == trial_shape:
        return None
    expected = f"the shape {trial_shape} of one trial of data/{key}"
    stimulus = key in ("images", "videos")
    if stimulus and kind == "static" and _broadcasts(shape, trial_shape):
        return None
    if stimulus and kind == "dynamic":
        per_frame = len(shape) == len(trial_shape) and shape[-1:] == trial_shape[-1:]
        if per_frame and _broadcasts(shape, trial_shape):
            return None
        expected += f" (or one that broadcasts to it with all {trial_shape[-1]} frames)"
    elif stimulus:
        expected += " (or one that broadcasts to it, such as a scalar)"
    return f"has shape {shape} but statistics of {key} need {expected}"


def _broadcasts(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether an array of ``shape`` broadcasts to ``target`` without changing it."""
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(shape[::-1], target[::-1], strict=False))
