"""The official SENSORIUM normaliser (neuralpredictors ``NeuroNormalizer``), on numpy batches.

numpy only. :class:`Normalizer` computes in float64 (scoring, ground truth); the loaders apply
its factors rounded once to float32 with :class:`KeyNormalizer`, straight into each batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import SchemaError

__all__ = ["KeyNormalizer", "Normalizer", "response_precision"]

KINDS = ("static", "dynamic")
THRESHOLD_REDUCTIONS = ("nanmean", "mean")
_CENTRED = ("images", "videos", "pupil_center")  # (x - mean) / std
_SCALED = ("responses", "behavior")  # x * precision
# trailing frame axis of each dynamic key's per-trial array (and of its statistics)
_DYNAMIC_NDIM = {"videos": 3, "responses": 2, "behavior": 2, "pupil_center": 2}


def _parse_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return str(value)


def response_precision(std: Any, threshold_reduction: str = "nanmean") -> np.ndarray:
    """Multiplier of the responses: ``1 / std`` where ``std > thr``, else ``1 / thr``.

    ``thr = 0.01 * nanmean(std)`` (neuralpredictors after 0.3.0, which the 2023 kit uses) or
    ``0.01 * mean(std)`` (0.3.0, which the 2022 kit pins; any NaN std then makes every precision
    NaN). The reduction runs over the whole array: all neurons, and in 2023 all frames. A NaN
    std fails ``std > thr`` and so gets ``1 / thr``.
    """
    reduction = _parse_choice("threshold_reduction", threshold_reduction, THRESHOLD_REDUCTIONS)
    s = np.asarray(std, dtype=np.float64)
    if reduction == "mean" or np.isnan(s).all():
        centre = s.mean() if s.size else np.nan
    else:
        centre = np.nanmean(s)
    with np.errstate(divide="ignore", invalid="ignore"):
        threshold = 0.01 * centre
        precision = np.full(s.shape, 1.0 / threshold)
        above = s > threshold
        precision[above] = 1.0 / s[above]
    return precision


def _statistic(stats: Any, name: str, key: str, source: str) -> np.ndarray:
    try:
        value = stats[name]
    except KeyError:
        raise SchemaError(
            f"statistics of {key!r} (source {source!r}) have no {name!r}; expected the official "
            f"mean/std/min/max/median arrays"
        ) from None
    return np.asarray(value, dtype=np.float64)


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Normalizer:
    """neuralpredictors' ``NeuroNormalizer`` for batches, with 2023's per-frame statistics.

    - images / videos: ``(x - mean) / std`` (2023: per pixel and per frame);
    - responses: ``x * precision`` (see :func:`response_precision`), no mean subtraction;
    - behavior: ``x * (1 / std)``, no mean subtraction;
    - pupil_center: ``(x - mean) / std``.

    Build it with :meth:`from_statistics`; call it on one data key at a time.

    Attributes
    ----------
    kind
        ``"static"`` (2022) or ``"dynamic"`` (2023: statistics end with a frame axis).
    source
        Statistics subfolder used (``"all"`` in both kits).
    threshold_reduction
        ``"nanmean"`` or ``"mean"``, see :func:`response_precision`.
    mean, std
        Per key, for the keys that are centred (images/videos, pupil_center).
    precision
        Per key, for the keys that are only scaled (responses, behavior).

    Notes
    -----
    Reproduced from neuralpredictors ``data/transforms.py`` ``NeuroNormalizer.__init__`` /
    ``__call__`` (0.3.0, and the commit the 2023 kit pins, 43faede), with the kits' arguments:
    ``stats_source="all"``, no ``exclude``, no ``inputs_mean``/``inputs_std`` override,
    ``subtract_behavior_mean=False``.

    Where the sources disagree: 0.3.0 takes ``thr = 0.01 * std.mean()``, later versions
    ``np.nanmean``. Both are offered (``threshold_reduction``); the default is ``"nanmean"``,
    which the 2023 ground truth was made with and which equals ``"mean"`` when no std is NaN
    (the 2022 statistics).

    Differences on purpose:

    - Arithmetic is done in float64 and rounded once to float32. The kits compute in the dtype
      numpy promotion gives the stored arrays (float32 data with float64 statistics gives float32
      under numpy 1's value-based casting, float64 under numpy 2) and cast to float32 in
      ``ToTensor``, so results agree to float32 rounding (a relative 1e-7), not bit for bit.
    - 2023: the kit normalises the whole padded trial and then cuts it; here a window of frames
      is normalised with the statistics of the same frames (``frame_start``), which gives the
      same values.
    - 2023: where the per-frame statistics are NaN (frames never valid in any training trial),
      normalised videos, behaviour and pupil position are NaN; the kit's ``CutVideos`` would end
      the trial at the first such frame, this class does not cut (valid lengths come from the
      raw data, see :mod:`sensorium_data.loading.transforms`).
    - A zero or NaN std of images, videos, behaviour or pupil position gives inf or NaN, as in
      the kits, but without numpy's RuntimeWarnings.
    - ``trial_idx`` (a data key only in some non-SENSORIUM datasets) is not normalised.
    """

    kind: str
    source: str = "all"
    threshold_reduction: str = "nanmean"
    mean: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    std: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    precision: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _parse_choice("kind", self.kind, KINDS)
        _parse_choice("threshold_reduction", self.threshold_reduction, THRESHOLD_REDUCTIONS)

    @classmethod
    def from_statistics(
        cls,
        statistics: Mapping[str, Mapping[str, Any]],
        *,
        kind: str,
        source: str = "all",
        threshold_reduction: str = "nanmean",
    ) -> Normalizer:
        """Build the normaliser from the official statistics of one mouse.

        Parameters
        ----------
        statistics
            ``{key: {subfolder: stats}}`` as returned by :func:`sensorium_data.open_statistics`;
            ``stats`` is an ``xarray.Dataset`` or a mapping with at least ``"mean"`` and
            ``"std"`` arrays.
        kind
            ``"static"`` or ``"dynamic"``.
        source
            Statistics subfolder, ``"all"`` by default (the kits'), or another name on disk
            (``"stimulus_frame"``).
        threshold_reduction
            ``"nanmean"`` (default) or ``"mean"`` (neuralpredictors 0.3.0).

        Returns
        -------
        Normalizer
        """
        kind = _parse_choice("kind", kind, KINDS)
        threshold_reduction = _parse_choice(
            "threshold_reduction", threshold_reduction, THRESHOLD_REDUCTIONS
        )
        mean: dict[str, np.ndarray] = {}
        std: dict[str, np.ndarray] = {}
        precision: dict[str, np.ndarray] = {}
        for key, by_source in statistics.items():
            if key not in _CENTRED + _SCALED:
                continue
            if source not in by_source:
                raise SchemaError(
                    f"no statistics source {source!r} for {key!r}; the store has "
                    f"{sorted(by_source)}. Pass one of those as the source."
                )
            stats = by_source[source]
            if key in _CENTRED:
                mean[key] = _statistic(stats, "mean", key, source)
                std[key] = _statistic(stats, "std", key, source)
            elif key == "responses":
                precision[key] = response_precision(
                    _statistic(stats, "std", key, source), threshold_reduction
                )
            else:
                with np.errstate(divide="ignore"):
                    precision[key] = 1.0 / _statistic(stats, "std", key, source)
        return cls(
            kind=kind,
            source=source,
            threshold_reduction=threshold_reduction,
            mean=mean,
            std=std,
            precision=precision,
        )

    def __call__(
        self, key: str, values: np.ndarray, frame_start: np.ndarray | int | None = None
    ) -> np.ndarray:
        """Normalise a batch of one data key.

        Parameters
        ----------
        key
            Data key: ``images``, ``responses``, ``behavior``, ``pupil_center`` (2022) or
            ``videos``, ``responses``, ``behavior``, ``pupil_center`` (2023). Other keys are
            returned unchanged (as float32).
        values
            A batch in the stored layout with a leading batch axis. 2022: images ``(B, C, H, W)``,
            responses ``(B, N)``, behavior ``(B, 3)``, pupil_center ``(B, 2)``. 2023: videos
            ``(B, H, W, T)``, responses ``(B, N, T)``, behavior ``(B, 2, T)``, pupil_center
            ``(B, 2, T)``, where ``T`` may be a window of the trial.
        frame_start
            2023: first frame of each sample's window, ``(B,)`` or one int (``None``: 0). The
            per-frame statistics of frames ``start .. start + T - 1`` are used.

        Returns
        -------
        numpy.ndarray
            float32, shaped like ``values``.
        """
        values = np.asarray(values)
        if key not in _CENTRED + _SCALED:
            return values.astype(np.float32, copy=False)
        if key not in self.mean and key not in self.precision:
            raise SchemaError(
                f"no {self.source!r} statistics for data key {key!r}; the normaliser has "
                f"{sorted({*self.mean, *self.precision})}"
            )
        out = np.empty(values.shape, dtype=np.float32)
        if self.kind == "dynamic" and values.shape[0] > 0:
            starts = self._starts(key, values, frame_start)
            for j, start in enumerate(starts.tolist()):  # one window's statistics per sample
                self._apply(key, values[j], out[j], slice(start, start + values.shape[-1]))
        elif values.shape[0] > 0:
            if frame_start is not None:
                raise ValueError("frame_start is only for dynamic (2023) data")
            self._apply(key, values, out, None)
        return out

    def for_key(self, key: str, neurons: np.ndarray | None = None) -> KeyNormalizer:
        """The loaders' float32 normaliser of one data key (see :class:`KeyNormalizer`), with
        the factors of the ``neurons`` kept (responses; ``None``: all)."""
        neurons = neurons if key == "responses" else None
        if key not in _CENTRED + _SCALED:
            return KeyNormalizer(key=key, neurons=neurons)
        if key not in self.mean and key not in self.precision:
            raise SchemaError(
                f"no {self.source!r} statistics for data key {key!r}; the normaliser has "
                f"{sorted({*self.mean, *self.precision})}"
            )

        def f32(values: np.ndarray) -> np.ndarray:
            if neurons is not None:
                values = values[neurons]
            return np.ascontiguousarray(values, dtype=np.float32)

        if key in self.precision:
            return KeyNormalizer(key=key, factor=f32(self.precision[key]), neurons=neurons)
        return KeyNormalizer(
            key=key, offset=f32(self.mean[key]), divisor=f32(self.std[key]), neurons=neurons
        )

    def _apply(self, key: str, x: np.ndarray, out: np.ndarray, frames: slice | None) -> None:
        """Normalise ``x`` into ``out`` (float32): computed in float64, rounded once."""

        def stat(values: np.ndarray) -> np.ndarray:
            return values if frames is None else values[..., frames]

        with np.errstate(divide="ignore", invalid="ignore"):
            if key in self.precision:
                np.multiply(x, stat(self.precision[key]), out=out, casting="same_kind")
            else:
                centred = np.subtract(x, stat(self.mean[key]), dtype=np.float64)
                np.divide(centred, stat(self.std[key]), out=out, casting="same_kind")

    def _starts(self, key: str, values: np.ndarray, frame_start: Any) -> np.ndarray:
        """Each sample's first frame, checked against the per-frame statistics."""
        stat = self.precision[key] if key in self.precision else self.mean[key]
        if values.ndim != _DYNAMIC_NDIM[key] + 1 or stat.ndim != _DYNAMIC_NDIM[key]:
            raise ValueError(
                f"{key}: expected a batch of {_DYNAMIC_NDIM[key]}-d trials with frames last and "
                f"per-frame statistics; got values {values.shape}, statistics {stat.shape}"
            )
        batch, n_frames, n_stat = values.shape[0], values.shape[-1], stat.shape[-1]
        starts = np.broadcast_to(np.asarray(0 if frame_start is None else frame_start), (batch,))
        starts = starts.astype(np.int64)
        if np.any(starts < 0) or np.any(starts + n_frames > n_stat):
            raise ValueError(
                f"{key}: windows of {n_frames} frames from starts {starts.tolist()} do not fit "
                f"the {n_stat} frames of the statistics"
            )
        return starts


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class KeyNormalizer:
    """One data key's normalisation as the loaders apply it: float32 arithmetic with the
    statistics rounded once to float32, written straight into the batch.

    - responses, behavior: ``x * f32(precision)`` (one rounding of the product);
    - images / videos, pupil_center: ``(x - f32(mean)) / f32(std)`` in float32, which is what
      neuralpredictors computes under numpy 1 for the 2022 images (scalar statistics keep
      float32 arrays in float32) and within float32 rounding of the float64 result otherwise;
    - other keys, or no statistics (``normalize=False``): a float32 copy.

    The factors are computed once in float64 by :class:`Normalizer` (the official formulas)
    and rounded to float32; no float64 temporaries of batch size are made. ``neurons`` keeps
    those responses (the factors are selected once). 2023 factors end with a frame axis;
    ``frame`` picks the frames of a window.
    """

    key: str
    offset: np.ndarray | None = None
    divisor: np.ndarray | None = None
    factor: np.ndarray | None = None
    neurons: np.ndarray | None = None

    def __call__(
        self, values: np.ndarray, out: np.ndarray | None = None, frame: int | None = None
    ) -> np.ndarray:
        """Normalise ``values`` (a batch, leading axis first; responses with neurons on axis 1,
        all of them) into ``out`` (float32, the selected shape; allocated when ``None``).

        ``frame``: the first frame of the window ``values`` holds on its last axis (2023).
        """
        if self.neurons is not None:
            values = np.take(values, self.neurons, axis=1)
        if out is None:
            out = np.empty(values.shape, dtype=np.float32)
        return self.apply(values, out, frame)

    def apply(self, values: np.ndarray, out: np.ndarray, frame: int | None = None) -> np.ndarray:
        """Normalise ``values`` (already neuron-selected) into ``out``, which may be
        ``values`` itself (in place)."""

        def stat(v: np.ndarray) -> np.ndarray:
            if frame is None or v.ndim == 0:
                return v
            return v[..., frame : frame + values.shape[-1]]

        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if self.factor is not None:
                np.multiply(values, stat(self.factor), out=out, dtype=np.float32, casting="unsafe")
            elif self.offset is not None and self.divisor is not None:
                np.subtract(values, stat(self.offset), out=out, dtype=np.float32, casting="unsafe")
                np.divide(out, stat(self.divisor), out=out)
            elif out is not values:
                np.copyto(out, values, casting="unsafe")
        return out
