"""Check a submission (or ground-truth) file set against a store: every problem found."""

from __future__ import annotations

import collections
import functools
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..conventions import (
    DEFAULT_SCORED_FRAMES,
    SCORED_FRAMES,
    describe_scored_frames,
    parse_scored_frames,
)
from ._store import _Mouse, _StoreView
from .names import DEFAULT_SKIP, STATIC_TIERS, file_name
from .parse import SubmissionPart, _Entry
from .problems import Problem, SubmissionError, _listing, _show
from .reader import _read_all

# ----------------------------------------------------------------------------- validation


def _check_trials(
    part: SubmissionPart, ids: Sequence[Any], trials: np.ndarray, mouse: str
) -> tuple[dict[int, int], list[Problem]]:
    """``{entry: file index}`` of the rows that match a trial, and the trial problems.

    ``ids`` are the trial ids the file must hold (compared as text), ``trials`` their file indices.
    """
    keys = {str(t): int(i) for t, i in zip(ids, trials, strict=True)}
    problems, matched = [], {}
    seen: dict[str, list[int]] = collections.defaultdict(list)
    for j, trial in enumerate(part.trial_indices.tolist()):
        seen[str(trial)].append(j)
        at = functools.partial(Problem, file=part.file, mouse=mouse, row=int(part.rows[j]))
        if str(trial) not in keys:
            message = f"not a trial of tier {part.tier!r} of this mouse"
            problems.append(at(trial=trial, code="trial_extra", message=message))
        elif len(seen[str(trial)]) > 1:
            message = f"trial given again (first in row {int(part.rows[seen[str(trial)][0]])})"
            problems.append(at(trial=trial, code="trial_duplicate", message=message))
        else:
            matched[j] = keys[str(trial)]
    at = functools.partial(Problem, file=part.file, mouse=mouse, code="trial_missing")
    for trial, index in zip(ids, trials, strict=True):
        if str(trial) not in seen:
            message = f"no row for this trial (file index {index}) of tier {part.tier!r}"
            problems.append(at(trial=trial, message=message))
    return matched, problems


def _check_neurons(
    part: SubmissionPart, unit_ids: np.ndarray, mouse: str, *, ordered: bool
) -> list[Problem]:
    """Neuron ids: the same in every row, the store's set without duplicates, maybe in order."""
    at = functools.partial(Problem, file=part.file, mouse=mouse)
    problems = []
    for row, ids in part.neuron_id_mismatches:
        trial = part.trial_indices[list(part.rows).index(row)].item()
        message = f"neuron_ids differ from row {int(part.rows[0])}'s ({ids.size} ids: {_show(ids)})"
        problems.append(at(row=row, trial=trial, code="neuron_ids_rows", message=message))
    ids, expected = part.neuron_ids.tolist(), unit_ids.tolist()
    dups = sorted(i for i, c in collections.Counter(ids).items() if c > 1)
    missing, extra = sorted(set(expected) - set(ids)), sorted(set(ids) - set(expected))
    if dups:
        problems.append(at(code="neuron_duplicate", message=f"neuron_ids repeat {_show(dups)}"))
    if missing:
        message = f"neuron_ids lack {len(missing)} of the store's unit_ids: {_show(missing)}"
        problems.append(at(code="neuron_missing", message=message))
    if extra:
        message = f"neuron_ids hold {len(extra)} ids that are not unit_ids: {_show(extra)}"
        problems.append(at(code="neuron_extra", message=message))
    if ordered and not (dups or missing or extra) and ids != expected:
        k = next(k for k, (a, b) in enumerate(zip(ids, expected, strict=True)) if a != b)
        message = (
            f"neuron_ids are not in unit_ids order (first difference at position {k}: "
            f"expected {expected[k]}, found {ids[k]})"
        )
        problems.append(at(code="neuron_order", message=message))
    return problems


def _check_values(
    part: SubmissionPart,
    expected: Mapping[int, tuple[int, ...]],
    mouse: str,
    skip_rows: set[int],
    hints: Mapping[int, str] | None = None,
) -> list[Problem]:
    """Shape, NaN and inf of every row; ``expected`` maps entry -> shape, ``hints`` entry ->
    what else the shape would fit (added to a shape problem)."""
    problems = []
    for j, value in enumerate(part.values):
        row = int(part.rows[j])
        if row in skip_rows:
            continue
        trial = part.trial_indices[j].item()
        at = functools.partial(Problem, file=part.file, mouse=mouse, row=row, trial=trial)
        if j in expected and value.shape != expected[j]:
            message = f"{part.column} has shape {value.shape}, expected {expected[j]}"
            if hints and j in hints and value.shape[1:] == (hints[j][0],):
                message += hints[j][1]
            problems.append(at(code="shape", message=message))
        if value.dtype.kind == "f":
            for code, bad in (("nan", np.isnan(value)), ("inf", np.isinf(value))):
                if bad.any():
                    message = f"{part.column} holds {int(bad.sum())} {code.upper()} value(s)"
                    problems.append(at(code=code, message=message))
    return problems


def _static_mouse(
    part: SubmissionPart, view: _StoreView, mouse: str | None
) -> tuple[_Mouse | None, list[Problem]]:
    """The mouse of a 2022 file: given, its folder, its neuron ids, or the only candidate."""
    if mouse is not None:
        return view.get(mouse), []
    if part.mouse is not None and (part.mouse in view.attrs or part.mouse in view.by_source):
        return view.get(part.mouse), []
    candidates = [view.get(k) for k in view.keys("static")]
    candidates = [m for m in candidates if m.trials(part.tier).size]
    by_ids = [m for m in candidates if set(m.unit_ids.tolist()) == set(part.neuron_ids.tolist())]
    for found in (by_ids, candidates):
        if len(found) == 1:
            return found[0], []
    message = (
        f"cannot tell which mouse this file is for (static mice with tier {part.tier!r}: "
        f"{', '.join(m.key for m in candidates) or 'none'}); pass mouse=..."
    )
    return None, [Problem(file=part.file, code="mouse_unknown", message=message)]


def _validate_2022(
    part: SubmissionPart, view: _StoreView, mouse: str | None, skip_rows: set[int]
) -> tuple[_Mouse | None, list[Problem]]:
    m, problems = _static_mouse(part, view, mouse)
    if m is None or m.trial_idx is None:
        return None, problems
    trials = m.trials(part.tier)
    matched, found = _check_trials(part, m.trial_idx[trials].tolist(), trials, m.key)
    problems += found
    for j, index in matched.items():
        given = None if part.image_ids is None else str(part.image_ids[j])
        wanted = None if m.image_ids is None else str(m.image_ids[index])
        if given != wanted:
            at = functools.partial(Problem, file=part.file, mouse=m.key, row=int(part.rows[j]))
            message = f"image_ids {given}, expected {wanted}"
            problems.append(
                at(trial=part.trial_indices[j].item(), code="image_id", message=message)
            )
    problems += _check_neurons(part, m.unit_ids, m.key, ordered=False)
    shapes = dict.fromkeys(range(len(part.values)), m.unit_ids.shape)
    problems += _check_values(part, shapes, m.key, skip_rows)
    return m, problems


def _validate_2023(
    parts: Sequence[SubmissionPart],
    entry: _Entry,
    view: _StoreView,
    *,
    mice: Sequence[str] | None,
    skip: int,
    scored_frames: str,
    strict_neuron_order: bool,
    skip_rows: set[int],
) -> list[Problem]:
    tier = entry.spec.tier
    other = next(c for c in SCORED_FRAMES if c != scored_frames)
    hint = (
        f" (the length of scored_frames={other!r}, {describe_scored_frames(other, skip)}; "
        f"this check uses scored_frames={scored_frames!r})"
    )
    if mice is None:
        expected = [k for k in view.keys("dynamic") if view.get(k).trials(tier).size]
    else:
        expected = [view.key(m) for m in mice]
    names = _show(view.source(k) for k in expected)
    present = {view.by_source.get(str(p.mouse)) for p in parts}
    message = f"no rows for this mouse; the {tier!r} file must hold every mouse of {names}"
    at = functools.partial(Problem, file=entry.file, message=message, code="mouse_missing")
    problems = [at(mouse=view.source(k)) for k in expected if k not in present]
    for part in parts:
        key = view.by_source.get(str(part.mouse))
        if key not in expected:
            message = f"not a mouse expected in this file (expected {names})"
            problems.append(
                Problem(file=entry.file, mouse=part.mouse, code="mouse_extra", message=message)
            )
            continue
        m = view.get(str(key))
        trials = m.trials(tier)
        matched, found = _check_trials(part, trials.tolist(), trials, m.source)
        problems += found
        problems += _check_neurons(part, m.unit_ids, m.source, ordered=strict_neuron_order)
        n = m.unit_ids.size
        shapes = {j: (n, m.scored_frames(i, skip, scored_frames)) for j, i in matched.items()}
        hints = {j: (m.scored_frames(i, skip, other), hint) for j, i in matched.items()}
        problems += _check_values(part, shapes, m.source, skip_rows, hints)
    return problems


def _detect_scored_frames(
    read: Sequence[tuple[_Entry, Sequence[SubmissionPart]]], view: _StoreView, skip: int
) -> str | None:
    """The convention most 2023 rows follow, counting only the rows of trials where the two
    conventions differ (NaN-padded trials); None when there are none."""
    votes: collections.Counter[str] = collections.Counter()
    for entry, parts in read:
        if entry.spec.year != 2023:
            continue
        for part in parts:
            key = view.by_source.get(str(part.mouse))
            if key is None:
                continue
            m = view.get(key)
            trials = {str(t): int(t) for t in m.trials(entry.spec.tier).tolist()}
            for j, value in enumerate(part.values):
                i = trials.get(str(part.trial_indices[j].item()))
                if i is None or value.ndim != 2:
                    continue
                lengths = {m.scored_frames(i, skip, c): c for c in SCORED_FRAMES}
                if len(lengths) > 1 and value.shape[1] in lengths:
                    votes[lengths[value.shape[1]]] += 1
    if not votes:
        return None
    return max(SCORED_FRAMES, key=lambda c: votes[c])  # a tie keeps the default (first)


def _static_file_set(groups: Mapping[tuple[str, bool], tuple[_Mouse, set[str]]]) -> list[Problem]:
    """Every tier of a 2022 mouse that has trials needs its file in the mouse's folder."""
    problems = []
    for (folder, ground_truth), (m, names) in groups.items():
        for tier in STATIC_TIERS:
            name = file_name(tier, ground_truth=ground_truth)
            if m.trials(tier).size and name not in names:
                message = f"the mouse has {tier!r} trials but this folder holds no {name}"
                file = str(pathlib.Path(folder) / name)
                problems.append(
                    Problem(file=file, mouse=m.key, code="file_missing", message=message)
                )
    return problems


def validate_submission(
    path: str | os.PathLike[str],
    store: Any,
    *,
    mouse: str | None = None,
    mice: Sequence[str] | None = None,
    skip: int = DEFAULT_SKIP,
    scored_frames: str | None = None,
    strict_neuron_order: bool = True,
    storage_options: dict[str, Any] | None = None,
) -> list[Problem]:
    """Every problem of a submission (or ground-truth) file set against a store.

    Parameters
    ----------
    path
        A file, a zip (the 2023 upload) or a folder (2022: flat or per-mouse subfolders).
    store
        The converted store (path or URL) of the mice.
    mouse
        2022: the mouse of the CSVs. Default: the per-mouse subfolder's name, else the static
        mouse whose ``unit_ids`` equal the file's neuron ids, else the only static mouse with
        trials of the file's tier.
    mice
        2023: the mice every file must hold. Default: every dynamic mouse of the store with
        trials of the file's tier.
    skip
        Unscored first frames of a 2023 trial.
    scored_frames
        2023: where a trial's scored frames end (:mod:`sensorium_data.conventions`), so rows
        must be ``(n_neurons, frames)`` with frames ``skip .. L-2`` of every NaN-padded trial
        of valid length ``L`` (``"competition"``, 249 of 300) or ``skip .. L-1``
        (``"kit-head"``, 250). Default None: the convention most rows follow (the competition's
        when they agree); :func:`check_submission` returns it.
    strict_neuron_order
        2023: neuron ids must be in ``unit_ids`` order (a permutation is a problem).
    storage_options
        fsspec options of the store.

    Returns
    -------
    list of Problem
        Empty when the submission is valid. Checked: file names (and, for a 2022 folder, one
        file per tier with trials; a 2023 main zip holds both main files at its top), columns
        and their types, mice (2023: the same set), trial ids (the tier's set: none missing,
        extra or repeated), 2022 image ids, neuron ids (the same in every row of a mouse, the
        ``unit_ids`` set without duplicates; 2023 in ``unit_ids`` order), the shape of every
        row, NaN and inf.
    """
    return _validate(
        path, store, mouse, mice, skip, scored_frames, strict_neuron_order, storage_options
    )[0]


def _validate(
    path: str | os.PathLike[str],
    store: Any,
    mouse: str | None,
    mice: Sequence[str] | None,
    skip: int,
    scored_frames: str | None,
    strict_neuron_order: bool,
    storage_options: dict[str, Any] | None,
) -> tuple[list[Problem], str]:
    """The problems, and the 2023 convention used (given or detected)."""
    view = _StoreView(store, storage_options)
    read, problems = _read_all(path, mouse)
    if scored_frames is None:
        scored_frames = _detect_scored_frames(read, view, skip) or DEFAULT_SCORED_FRAMES
    else:
        scored_frames = parse_scored_frames(scored_frames)
    skip_rows: dict[str, set[int]] = collections.defaultdict(set)
    for p in problems:
        if p.code in ("parse", "shape") and p.row is not None:
            skip_rows[p.file].add(p.row)
    groups: dict[tuple[str, bool], tuple[_Mouse, set[str]]] = {}
    for entry, parts in read:
        if entry.spec.year == 2023:
            problems += _validate_2023(
                parts,
                entry,
                view,
                mice=mice,
                skip=skip,
                scored_frames=scored_frames,
                strict_neuron_order=strict_neuron_order,
                skip_rows=skip_rows[entry.file],
            )
            continue
        m, found = _validate_2022(parts[0], view, mouse, skip_rows[entry.file])
        problems += found
        if m is not None and pathlib.Path(path).is_dir():
            group = (str(pathlib.Path(entry.file).parent), entry.spec.ground_truth)
            groups.setdefault(group, (m, set()))[1].add(pathlib.Path(entry.file).name)
    return problems + _static_file_set(groups), scored_frames


def check_submission(
    path: str | os.PathLike[str],
    store: Any,
    *,
    mouse: str | None = None,
    mice: Sequence[str] | None = None,
    skip: int = DEFAULT_SKIP,
    scored_frames: str | None = None,
    strict_neuron_order: bool = True,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Raise :class:`SubmissionError` listing every problem :func:`validate_submission` finds;
    return the 2023 ``scored_frames`` convention the rows were checked against (given, or
    detected when ``scored_frames`` is None)."""
    problems, convention = _validate(
        path, store, mouse, mice, skip, scored_frames, strict_neuron_order, storage_options
    )
    if problems:
        message = _listing(f"{path} is not a valid submission", problems)
        raise SubmissionError(message, problems)
    return convention
