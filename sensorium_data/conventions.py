"""Which frames of a 2023 trial are scored: the competition's convention or the kit's at HEAD.

The first 50 frames of every trial are never scored. Where the scored frames END differs:

``"competition"`` (the default)
    Frames ``50 .. L-2`` of every NaN-padded trial of valid length ``L`` (249 of a 300-frame
    trial), ``50 .. L-1`` of a trial that fills the whole padded length. The competition-era kit
    (ecker-lab/sensorium_2023 at c71a451, 2023-09-15) rescaled the whole padded trial *before*
    cutting it at its valid length; with the SciPy it pinned (1.13.1) the interpolation spreads
    the first NaN padding frame into the last valid frame, which the cut then drops (a trial
    without padding has no NaN to spread and keeps every frame). The official
    solution files (shapes ``(249, n_neurons)`` in the scorer's comments) and the winners'
    submissions have these lengths, and the scorer rejects any other length.
``"kit-head"``
    Frames ``50 .. L-1`` (250 of a 300-frame trial): the 2023 kit since 2024-05-28 (commit
    4987681) cuts first and rescales after, so no frame is lost (as with the old order under
    SciPy >= 1.16, whose zoom returns the input unchanged at factor 1).

``skip=51`` is not a way to get 249 frames: it scores frames ``51 .. L-1``, another window.
Ground truth, submission writers, validation, scoring, ``evaluate`` and the loaders' whole-trial
(evaluation) windows all take the convention as ``scored_frames=``; validation and scoring can
also detect it from the file (``scored_frames=None``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_SCORED_FRAMES",
    "SCORED_FRAMES",
    "describe_scored_frames",
    "parse_scored_frames",
    "usable_frames",
]

#: The two conventions, the default first.
SCORED_FRAMES = ("competition", "kit-head")
DEFAULT_SCORED_FRAMES = "competition"


def parse_scored_frames(value: Any, name: str = "scored_frames") -> str:
    """``value`` if it names a convention, else a one-line ``ValueError`` naming ``name``."""
    if isinstance(value, str) and value in SCORED_FRAMES:
        return value
    raise ValueError(f"{name} must be one of {', '.join(map(repr, SCORED_FRAMES))}, got {value!r}")


def usable_frames(valid: Any, n_frames: int | None, scored_frames: str) -> np.ndarray:
    """Each trial's frames ``0 .. usable - 1`` under a convention (int64 array like ``valid``).

    ``valid`` holds the trials' valid lengths (frames before the first NaN), ``n_frames`` the
    padded length of the stored arrays. ``"competition"`` drops the last valid frame of every
    trial shorter than ``n_frames`` (a NaN-padded one); ``"kit-head"`` keeps every valid frame.
    """
    convention = parse_scored_frames(scored_frames)
    values = np.asarray(valid, dtype=np.int64)
    if convention == "kit-head" or n_frames is None:
        return values
    return np.where((values < int(n_frames)) & (values > 0), values - 1, values)


def describe_scored_frames(scored_frames: str, skip: int = 50) -> str:
    """One line: what a convention scores, e.g. for a score report."""
    if parse_scored_frames(scored_frames) == "competition":
        return (
            f"competition (frames {skip} .. L-2 of each NaN-padded trial of valid length L, "
            f"{299 - skip} of a padded 300-frame trial, as the official solution files)"
        )
    return (
        f"kit-head (frames {skip} .. L-1, {300 - skip} of a 300-frame trial, as the 2023 kit today)"
    )
