"""What a sample is made of (:class:`SampleOptions`), what a process opens of a mouse
(:class:`OpenedMouse`) and which trials and frames a batch holds (:class:`BatchPlan`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..conventions import DEFAULT_SCORED_FRAMES, parse_scored_frames
from .chunkread import ChunkReader
from .normalize import KeyNormalizer

__all__ = ["BatchPlan", "OpenedMouse", "SampleOptions"]


@dataclass(frozen=True, kw_only=True)
class SampleOptions:
    """How a sample is made, as in the official loaders (docs/format.md, normalisation).

    Attributes
    ----------
    normalize
        Apply the official normaliser (:class:`~sensorium_data.loading.normalize.Normalizer`).
    stats_source, threshold_reduction
        Statistics subfolder (``all``) and the reduction of the response threshold
        (``nanmean``, as later neuralpredictors; ``mean`` as 0.3.0).
    scale
        Image/video rescale factor (0.25 turns 144x256 into 36x64), as the kit's ScaleInputs.
    include_behavior, include_pupil
        Append behaviour (and pupil centre) as constant image channels.
    frames
        2023: window length; ``None`` keeps each trial's whole (valid) length, padding the
        batch with NaN to its longest trial.
    frame_offset
        2023: fixed window start; ``None`` draws a random start per sample (uniform over the
        valid range, from torch's generator, so DataLoader seeding makes it reproducible).
    max_frame
        2023: ignore frames from this index on.
    cut_valid
        2023: cut every key at the trial's valid length (``valid_frames``).
    scored_frames
        2023, with ``cut_valid``: ``"competition"`` (default) also drops the last valid frame
        of every NaN-padded trial, as the competition-era kit's loader did (its frames were
        the ones scored: 249 of a 300-frame trial, see :mod:`sensorium_data.conventions`);
        ``"kit-head"`` keeps it, as the 2023 kit at HEAD.
    """

    normalize: bool = True
    stats_source: str = "all"
    threshold_reduction: str = "nanmean"
    scale: float = 1.0
    include_behavior: bool = False
    include_pupil: bool = False
    frames: int | None = None
    frame_offset: int | None = None
    max_frame: int | None = None
    cut_valid: bool = True
    scored_frames: str = DEFAULT_SCORED_FRAMES

    def __post_init__(self) -> None:
        parse_scored_frames(self.scored_frames)
        if self.scale <= 0:
            raise ValueError(f"scale must be positive, got {self.scale!r}")
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"frames must be a positive integer, got {self.frames!r}")
        if self.frame_offset is not None and self.frame_offset < 0:
            raise ValueError(f"frame_offset must be >= 0, got {self.frame_offset!r}")


@dataclass(eq=False)
class OpenedMouse:
    """What a process opens of its dataset's mouse on first use (never pickled: every process
    opens its own, see :attr:`MouseDataset.opened`).

    Attributes
    ----------
    kind
        ``"static"`` (2022) or ``"dynamic"`` (2023).
    arrays
        The zarr arrays of the data keys (2022 images: the stored rescaled copy when
        ``prescaled``).
    valid
        2023: every trial's valid length (``valid_frames``), else ``None``.
    norms
        Each key's float32 normaliser (:class:`~.normalize.KeyNormalizer`; a float32 copy
        when not normalising), with the neuron selection applied to responses.
    prescaled
        2022: the images are read from the stored copy at the requested scale.
    readers, resident
        Streaming: a chunk reader per key (``None``: read through zarr), and the small arrays
        read whole (raw values, indexed in RAM).
    ready
        In memory (or on a device): every key's model-ready float32 tensor of the dataset's
        trials (row ``j`` is ``trials[j]``); 2023 trials whole and padded, windows gathered
        per batch.
    """

    kind: str
    arrays: dict[str, Any]
    valid: np.ndarray | None
    norms: dict[str, KeyNormalizer]
    prescaled: bool = False
    readers: dict[str, ChunkReader | None] = field(default_factory=dict)
    resident: dict[str, np.ndarray] = field(default_factory=dict)
    ready: dict[str, torch.Tensor] | None = None

    @property
    def dynamic(self) -> bool:
        return self.kind == "dynamic"


@dataclass(frozen=True, eq=False)
class BatchPlan:
    """Which trials a batch holds and which frames of each (2023: drawn when planned)."""

    positions: np.ndarray
    trials: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    length: int | None  # frames read per trial (2023), None for 2022
