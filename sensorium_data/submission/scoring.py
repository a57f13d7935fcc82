"""Score SENSORIUM submissions against a store, and rank a folder of them on a leaderboard.

:func:`score_submission` validates a submission, then computes the official metrics
(:mod:`sensorium_data.metrics`) on every tier whose responses the store holds (withheld, all-zero
tiers are skipped and listed), against the responses normalised as the official ground-truth
files are (``write_ground_truth``'s helper). Rows are matched by trial id and neurons by neuron
id. Tracks are ranked as in the competitions (:data:`TRACKS`): 2022 SENSORIUM by correlation to
average and SENSORIUM+ by single-trial correlation, per mouse and tier (the official mice
26872-17-20 and 27204-5-13 on their own track only); 2023 main by single-trial correlation (mean
over mice), bonus by the bonus score (per stimulus type, mean over mice, then over types; types
from ``stimulus_types=``, a ``stimulus_type`` trial coordinate, or else one type ``"ood"``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import metrics
from .. import submission as sub
from ..conventions import describe_scored_frames
from ..errors import SensoriumDataError
from ..loading.normalize import Normalizer
from ..store.access import open_mouse, open_statistics

__all__ = [
    "LABELS",
    "TRACKS",
    "Leaderboard",
    "LeaderboardTable",
    "Score",
    "ScoreReport",
    "ScoringError",
    "TrackScore",
    "leaderboard",
    "score_submission",
]


class ScoringError(SensoriumDataError, ValueError):
    """A valid submission that cannot be scored (every tier's responses are withheld)."""


#: Track name -> (year, the metric that ranks it).
TRACKS = {
    "SENSORIUM": (2022, "correlation_to_average"),
    "SENSORIUM+": (2022, "single_trial_correlation"),
    "main": (2023, "single_trial_correlation"),
    "bonus": (2023, "bonus_track_score"),
}
#: Metric name -> how tables show it.
LABELS = {
    "single_trial_correlation": "single-trial correlation",
    "correlation_to_average": "correlation to average",
    "feve": "FEVE",
    "bonus_track_score": "bonus score",
}
_OFFICIAL_TRACK = {"26872-17-20": "SENSORIUM", "27204-5-13": "SENSORIUM+"}
_TYPE_COORDS = ("stimulus_type", "trial_stimulus_type")
_TIERS = sub.STATIC_TIERS + sub.DYNAMIC_TIERS


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return "" if value is None else str(value)


def _text_table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in lines)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Score:
    """One metric value; ``mouse`` None is the mean over mice (2023), ``stimulus_type`` bonus."""

    tier: str
    metric: str
    value: float
    mouse: str | None = None
    stimulus_type: str | None = None

    @property
    def label(self) -> str:
        return LABELS[self.metric] + (f" [{self.stimulus_type}]" if self.stimulus_type else "")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrackScore:
    """The score that ranks a submission on a track, for one tier (2022: and one mouse)."""

    track: str
    tier: str
    metric: str
    value: float
    mouse: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScoreReport:
    """The scores of one submission; ``str(report)`` is a readable table."""

    submission: str
    store: str
    year: int
    scores: tuple[Score, ...]
    tracks: tuple[TrackScore, ...]
    skipped: tuple[str, ...] = ()
    #: 2023: the convention of the scored frames (:mod:`sensorium_data.conventions`), and
    #: whether it was detected from the submission's rows rather than given; None for 2022.
    scored_frames: str | None = None
    scored_frames_detected: bool = False
    #: ``(file, official name)`` of files with the 2023 kit's own names: scored, but to be
    #: renamed before uploading (:func:`sensorium_data.submission.fix_submission`).
    renames: tuple[tuple[str, str], ...] = ()

    def value(
        self, metric: str, tier: str, mouse: str | None = None, stimulus_type: str | None = None
    ) -> float:
        """The value of ``metric`` on ``tier`` (2023 ``mouse`` None: the mean over mice)."""
        for s in self.scores:
            if (s.metric, s.tier, s.mouse, s.stimulus_type) == (metric, tier, mouse, stimulus_type):
                return s.value
        raise KeyError(f"no {metric} for tier {tier!r}, mouse {mouse}, type {stimulus_type}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (NaN becomes None); ``track_metrics`` says what ranks each track."""

        def plain(item: Any) -> dict[str, Any]:
            value = item.value
            return {**dataclasses.asdict(item), "value": None if math.isnan(value) else value}

        return {
            "submission": self.submission,
            "store": self.store,
            "year": self.year,
            "track_metrics": {k: m for k, (y, m) in TRACKS.items() if y == self.year},
            "tracks": [plain(t) for t in self.tracks],
            "scores": [plain(s) for s in self.scores],
            "skipped": list(self.skipped),
            "scored_frames": self.scored_frames,
            "scored_frames_detected": self.scored_frames_detected,
            "renames": [list(r) for r in self.renames],
        }

    def __str__(self) -> str:
        every = "all mice (mean)" if self.year == 2023 else ""
        typed = any(s.stimulus_type for s in self.scores)
        rows = [["tier", "mouse", *(["stimulus type"] * typed), "metric", "value"]]
        for s in self.scores:
            kind = [s.stimulus_type or ""] * typed
            rows.append([s.tier, s.mouse or every, *kind, LABELS[s.metric], _fmt(s.value)])
        tracks = [["track", "tier", "mouse", "ranked by", "score"]]
        for t in self.tracks:
            tracks.append([t.track, t.tier, t.mouse or every, LABELS[t.metric], _fmt(t.value)])
        title = f"SENSORIUM {self.year} scores of {self.submission} (ground truth: {self.store})"
        text = f"{title}\n\n{_text_table(rows)}\n\nTracks:\n{_text_table(tracks)}"
        if self.scored_frames is not None:
            how = "detected from the submission" if self.scored_frames_detected else "as asked"
            text += f"\nscored frames: {describe_scored_frames(self.scored_frames)}; {how}"
        for file, official in self.renames:
            text += (
                f"\nrename before uploading: {file} is the 2023 kit's name for {official} "
                "(sensorium-data submission fix renames it)"
            )
        return text + "".join(f"\nnot scored: {s}" for s in self.skipped)


# ----------------------------------------------------------------------------- scoring


class _Truth(sub._StoreView):
    """The store's mice, each opened once: normalised responses, repeat groups, stimulus types."""

    def __init__(
        self, store: Any, storage_options: Any, skip: int, scored_frames: str, reduction: str
    ) -> None:
        super().__init__(store, storage_options)
        self.skip, self.scored_frames, self.reduction = skip, scored_frames, reduction
        self._opened: dict[str, Any] = {}
        self._normalizers: dict[str, Normalizer] = {}

    def dataset(self, key: str) -> Any:
        if key not in self._opened:
            self._opened[key] = open_mouse(self.url, key, self.storage_options, chunks=None)
        return self._opened[key]

    def responses(self, m: sub._Mouse, tier: str) -> list[np.ndarray] | None:
        if m.key not in self._normalizers:
            stats = open_statistics(self.url, m.key, self.storage_options)
            self._normalizers[m.key] = Normalizer.from_statistics(
                stats, kind=m.kind, threshold_reduction=self.reduction
            )
        normalizer = self._normalizers[m.key]
        return sub._tier_responses(self, m, tier, normalizer, self.skip, self.scored_frames)

    def groups(self, m: sub._Mouse, trials: np.ndarray) -> np.ndarray:
        videos = self.dataset(m.key)["videos"].isel(trial=trials).values  # one tier in memory
        return metrics.repeat_groups_from_videos(videos)

    def types(self, m: sub._Mouse, trials: np.ndarray, given: Mapping[str, Any] | None) -> Any:
        if given is not None:
            labels = given.get(m.key, given.get(m.source))
            if labels is None or np.shape(labels) != m.tiers.shape:
                found = None if labels is None else np.shape(labels)
                raise ScoringError(
                    f"stimulus_types must give mouse {m.key} one label per trial "
                    f"({m.tiers.size}), got {found}"
                )
            return np.asarray(labels).astype(str)[trials]
        coords = self.dataset(m.key).coords
        for name in (n for n in _TYPE_COORDS if n in coords):
            return sub._strings(coords[name].values)[trials]
        return np.full(trials.size, "ood")


def _columns(part: sub.SubmissionPart, unit_ids: np.ndarray) -> list[int]:
    position = {int(n): k for k, n in enumerate(part.neuron_ids.tolist())}
    return [position[int(u)] for u in unit_ids.tolist()]


def _attempt(notes: list[str], where: str, function: Any, *args: Any, **kw: Any) -> float | None:
    try:
        return float(function(*args, **kw))
    except metrics.MetricInputError as exc:
        notes.append(f"{where}: no {function.__name__}: {exc}")
        return None


def _score_static(
    part: sub.SubmissionPart, m: sub._Mouse, truth: list[np.ndarray], fev: float, notes: list[str]
) -> list[Score]:
    trials, where = m.trials(part.tier), f"mouse {m.key} tier {part.tier!r}"
    row = {str(t): j for j, t in enumerate(part.trial_indices.tolist())}
    rows = [row[str(t)] for t in m.trial_idx[trials].tolist()]  # type: ignore[index]
    pred, resp = part.stack()[np.ix_(rows, _columns(part, m.unit_ids))], np.stack(truth)
    values: dict[str, float | None] = {
        "single_trial_correlation": metrics.single_trial_correlation(resp, pred)
    }
    if m.image_ids is not None:
        ids = m.image_ids[trials]
        average = _attempt(notes, where, metrics.correlation_to_average, resp, pred, ids)
        values["correlation_to_average"] = average
        values["feve"] = _attempt(notes, where, metrics.feve, resp, pred, ids, fev_threshold=fev)
    return [
        Score(tier=part.tier, metric=k, value=v, mouse=m.key)
        for k, v in values.items()
        if v is not None
    ]


def _padded(rows: Sequence[np.ndarray], lengths: np.ndarray) -> np.ndarray:
    out = np.full((len(rows), rows[0].shape[0], max(1, int(lengths.max()))), np.nan, np.float32)
    for i, r in enumerate(rows):
        out[i, :, : r.shape[1]] = r
    return out


def _score_dynamic(
    part: sub.SubmissionPart,
    m: sub._Mouse,
    truth: _Truth,
    rows: list[np.ndarray],
    stimulus_types: Mapping[str, Any] | None,
    notes: list[str],
) -> list[Score]:
    tier, trials, where = part.tier, m.trials(part.tier), f"mouse {m.key} tier {part.tier!r}"
    position = {int(t): j for j, t in enumerate(part.trial_indices.tolist())}
    cols, lengths = _columns(part, m.unit_ids), np.array([r.shape[1] for r in rows], np.int64)
    resp = _padded(rows, lengths)
    pred = _padded([part.values[position[int(i)]][cols] for i in trials], lengths)
    single, average = (
        metrics.dynamic_single_trial_correlation,
        metrics.dynamic_correlation_to_average,
    )
    values: dict[tuple[str | None, str], float | None] = {
        (None, "single_trial_correlation"): single(resp, pred, skip=0, valid_frames=lengths)
    }
    groups = truth.groups(m, trials)
    if np.bincount(groups).max() >= 2:
        values[None, "correlation_to_average"] = _attempt(
            notes, where, average, resp, pred, groups, skip=0, valid_frames=lengths
        )
    types = truth.types(m, trials, stimulus_types) if tier.endswith("bonus") else []
    for kind in dict.fromkeys(types):
        k = types == kind
        at = f"{where} type {kind!r}"
        value = _attempt(notes, at, single, resp[k], pred[k], skip=0, valid_frames=lengths[k])
        values[kind, "single_trial_correlation"] = value
    return [
        Score(tier=tier, metric=metric, value=float(v), mouse=m.key, stimulus_type=kind)
        for (kind, metric), v in values.items()
        if v is not None
    ]


def _mean_over_mice(tier: str, scores: list[Score]) -> list[Score]:
    """Equal-weight means over mice of every (metric, stimulus type), and the bonus score."""
    out = []
    for metric, kind in dict.fromkeys((s.metric, s.stimulus_type) for s in scores):
        values = [s.value for s in scores if (s.metric, s.stimulus_type) == (metric, kind)]
        out.append(
            Score(tier=tier, metric=metric, value=float(np.mean(values)), stimulus_type=kind)
        )
    per_type = [s.value for s in out if s.stimulus_type is not None]
    if per_type:
        out.append(Score(tier=tier, metric="bonus_track_score", value=float(np.mean(per_type))))
    return out


def _tracks(year: int, scores: list[Score]) -> list[TrackScore]:
    """The ranking score of every track: 2022 per mouse, 2023 the mean over mice."""
    out = []
    for s in scores:
        for track, (y, metric) in TRACKS.items():
            if (y, metric, s.stimulus_type) != (year, s.metric, None):
                continue
            official = _OFFICIAL_TRACK.get(str(s.mouse), track) == track
            if (year == 2022 and official) or (s.mouse is None and s.tier.endswith(track)):
                t = TrackScore(
                    track=track, tier=s.tier, metric=metric, value=s.value, mouse=s.mouse
                )
                out.append(t)
    return sorted(out, key=lambda t: (list(TRACKS).index(t.track), _TIERS.index(t.tier)))


def _mouse_of(part: sub.SubmissionPart, view: sub._StoreView, mouse: str | None) -> sub._Mouse:
    if part.tier not in sub.STATIC_TIERS:
        return view.get(str(part.mouse))
    found, problems = sub._static_mouse(part, view, mouse)
    if found is None:  # pragma: no cover - check_submission refuses these
        raise ScoringError("; ".join(map(str, problems)))
    return found


def score_submission(
    path: str | os.PathLike[str],
    truth_store: Any,
    *,
    mouse: str | None = None,
    mice: Sequence[str] | None = None,
    skip: int = sub.DEFAULT_SKIP,
    scored_frames: str | None = None,
    strict_neuron_order: bool = True,
    stimulus_types: Mapping[str, Sequence[str]] | None = None,
    fev_threshold: float = 0.15,
    threshold_reduction: str = "nanmean",
    storage_options: dict[str, Any] | None = None,
) -> ScoreReport:
    """Validate a submission (file, zip or folder), then score it against a store.

    ``mouse``, ``mice``, ``skip`` and ``strict_neuron_order`` are passed to
    ``validate_submission`` (the mouse of flat 2022 CSVs, the mice every 2023 file must hold,
    unscored first frames, 2023 neuron order). ``scored_frames`` is where a 2023 trial's scored
    frames end, ``"competition"`` or ``"kit-head"`` (:mod:`sensorium_data.conventions`); by
    default (None) it is detected from the rows' lengths and the report says which it is
    (``report.scored_frames``, ``report.scored_frames_detected``). ``stimulus_types`` gives the
    2023 bonus types: ``{mouse: one label per trial of the mouse, in file order}``.
    ``fev_threshold`` selects the neurons of the 2022 FEVE; ``threshold_reduction`` is the
    response normaliser's.

    The report holds, 2022 per mouse and tier: single-trial correlation, correlation to
    average, FEVE; 2023 per tier and mouse and the mean over mice (``mouse=None``):
    single-trial correlation, correlation to average where clips repeat, on bonus tiers per
    stimulus type and the bonus score; and the ranking score of every track.

    Raises :class:`~sensorium_data.submission.SubmissionError` (its ``problems`` list every
    problem) for an invalid submission, :class:`ScoringError` when every tier submitted is
    withheld in the store.
    """
    check = {"mice": mice, "skip": skip, "strict_neuron_order": strict_neuron_order}
    convention = sub.check_submission(
        path,
        truth_store,
        mouse=mouse,
        scored_frames=scored_frames,
        storage_options=storage_options,
        **check,
    )
    truth = _Truth(truth_store, storage_options, skip, convention, threshold_reduction)
    read = sub.read_submission(path, mouse=mouse).values()
    parts = [p for by_tier in read for p in by_tier.values()]
    years = {2022 if p.tier in sub.STATIC_TIERS else 2023 for p in parts}
    if len(years) != 1:
        raise ScoringError(f"{path} mixes 2022 and 2023 files; score one year at a time")
    year, notes, scores = years.pop(), [], []
    for tier in sorted({p.tier for p in parts}, key=_TIERS.index):
        found: list[Score] = []
        tier_parts = [(p, _mouse_of(p, truth, mouse)) for p in parts if p.tier == tier]
        for part, m in sorted(tier_parts, key=lambda pm: pm[1].key):
            rows = truth.responses(m, tier)
            if rows is None:
                notes.append(f"mouse {m.key} tier {tier!r}: responses withheld (all zero)")
            elif year == 2022:
                found += _score_static(part, m, rows, fev_threshold, notes)
            else:
                found += _score_dynamic(part, m, truth, rows, stimulus_types, notes)
        scores += found + (_mean_over_mice(tier, found) if year == 2023 and found else [])
    if not scores:
        why = "; ".join(notes) or "no files"
        raise ScoringError(f"{path}: nothing to score against {truth_store}: {why}")
    return ScoreReport(
        submission=str(path),
        store=str(truth_store),
        year=year,
        scores=tuple(scores),
        tracks=tuple(_tracks(year, scores)),
        skipped=tuple(notes),
        scored_frames=convention if year == 2023 else None,
        scored_frames_detected=year == 2023 and scored_frames is None,
        renames=tuple(sub.kit_file_renames(path)),
    )


# The leaderboard lives in its own module; re-exported here, where it was first defined. Imported
# last: sensorium_data.submission.ranking imports the names above from this module.
from .ranking import Leaderboard, LeaderboardTable, leaderboard  # noqa: E402
