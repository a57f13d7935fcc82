"""Submission and ground-truth files of the SENSORIUM competitions: write, read and validate.

numpy, pandas and pyarrow only (no torch). The formats are those of SENSORIUM_FORMAT.md section 4.

2022 (static images)
    One CSV per tier and mouse, ``submission_file_live_test.csv`` (tier ``test``) and
    ``submission_file_final_test.csv`` (tier ``final_test``); one row per trial with columns
    ``trial_indices`` (the trial's ``trial_idx``), ``image_ids`` (``frame_image_id``),
    ``prediction`` (a Python list literal of n_neurons floats) and ``neuron_ids`` (the ``unit_ids``
    list, the same in every row). The official kit uploads one competition mouse at a time, so
    the files of one mouse lie directly in the output folder; when several mice are written,
    each mouse gets a subfolder named by its full folder name (``static26872-17-20-...``).
2023 (dynamic videos)
    One brotli-compressed parquet per tier holding every mouse: ``mouse`` (full folder name),
    ``trial_indices`` (int64 file index), ``prediction`` (n_neurons lists of T_eval float32) and
    ``neuron_ids`` (uint32 list in ``unit_ids`` order). Main track ``predictions_live_main`` and
    ``predictions_final_main`` (``.parquet.brotli``), zipped together with no folder into
    ``predictions_main.zip``; bonus track ``predictions_live_test_bonus_ood`` and
    ``predictions_final_test_bonus_ood``, each zipped on its own (the kit's README asks for
    separate uploads of the live and final bonus files).

Decisions where the format document is silent or the sources differ:

- 2023 frames: a row holds the SCORED frames only, ``T_eval = valid_frames - skip`` (``skip=50``),
  frames ``skip .. valid_frames - 1`` of the trial, as the kit's ``generate_submission`` writes
  them (the last ``valid - 50`` frames of the cut video) and as the official scorer's shape
  check asks (``(n_neurons, video_frames - 50)``). Writers also accept a trial's whole valid
  part (``valid_frames`` frames) or the padded trial (``T_max`` frames) and cut them. If a
  reference counts 249 scored frames for 300, pass ``skip=51``.
- Ground truth: 2022 ``ground_truth_file_test.csv`` / ``ground_truth_file_final_test.csv``
  with a ``responses`` column (the kit's ``generate_ground_truth_file``); 2023
  ``solutions_<same stem>.parquet.brotli`` (the official scorer's names) laid out like the
  predictions with a ``responses`` column. The official scorer script names that column
  ``prediction`` (it requires equal column sets): ``write_ground_truth(column="prediction")``
  writes that. Tiers whose responses are all zero (withheld in competition mice) are skipped.
- Trial keys given to writers as a mapping are file indices (the store's ``trial``), both years.
- Rows may come in any order; 2022 neuron ids in any order (the evaluator reorders both);
  2023 neuron ids must be in ``unit_ids`` order (the document's rule; the scorer permutes, but
  the kit writes this order), ``strict_neuron_order=False`` accepts a permutation.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import dataclasses
import functools
import io
import itertools
import os
import pathlib
import re
import uuid
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import SensoriumDataError
from .normalize import Normalizer
from .stores import list_mice, open_mouse, open_statistics, resolve_mouse

__all__ = [
    "DEFAULT_SKIP",
    "FILE_SPECS",
    "FileSpec",
    "Problem",
    "SubmissionError",
    "SubmissionExistsError",
    "SubmissionFormatError",
    "SubmissionPart",
    "check_submission",
    "file_name",
    "read_submission",
    "validate_submission",
    "write_ground_truth",
    "write_submission_2022",
    "write_submission_2023",
]

DEFAULT_SKIP = 50  # first frames of every 2023 trial that are not scored
STATIC_TIERS = ("test", "final_test")
DYNAMIC_TIERS = ("live_test_main", "final_test_main", "live_test_bonus", "final_test_bonus")
MAIN_ZIP = "predictions_main.zip"
_CSV_COLUMNS = ("trial_indices", "image_ids", "{value}", "neuron_ids")
_PARQUET_COLUMNS = ("mouse", "trial_indices", "{value}", "neuron_ids")
_IMAGE_ID_NAMES = ("frame_image_id", "image_id", "colorframeprojector_image_id")
_INT_TEXT = re.compile(r"\s*-?\d+\s*")
_MESSAGE_LIMIT = 50


# ----------------------------------------------------------------------------- errors


class SubmissionError(SensoriumDataError, ValueError):
    """Predictions a writer cannot use, or a submission that fails validation.

    ``problems`` holds every :class:`Problem` found (empty for writer errors).
    """

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class SubmissionFormatError(SubmissionError):
    """A file that cannot be read as a submission (name, columns, types, unparseable rows)."""


class SubmissionExistsError(SensoriumDataError, FileExistsError):
    """A file to write exists already and ``overwrite`` was not given."""


# ----------------------------------------------------------------------------- file names


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """What an official file name stands for.

    Attributes
    ----------
    year
        2022 (CSV, one mouse) or 2023 (parquet, every mouse).
    tier
        The store tier it covers (``test``, ``final_test``, ``live_test_main``, ...).
    ground_truth
        A ground-truth (``responses``) file rather than a submission (``prediction``).
    """

    year: int
    tier: str
    ground_truth: bool = False

    @property
    def value_columns(self) -> tuple[str, ...]:
        """Accepted names of the column holding the values."""
        if not self.ground_truth:
            return ("prediction",)
        return ("responses", "prediction") if self.year == 2023 else ("responses",)

    @property
    def track(self) -> str | None:
        """2023 track (``main`` or ``bonus``)."""
        return None if self.year == 2022 else self.tier.rsplit("_", 1)[-1]


_STEMS = {
    "live_test_main": "live_main",
    "final_test_main": "final_main",
    "live_test_bonus": "live_test_bonus_ood",
    "final_test_bonus": "final_test_bonus_ood",
}

#: Every official file name and what it holds.
FILE_SPECS: dict[str, FileSpec] = {
    "submission_file_live_test.csv": FileSpec(2022, "test"),
    "submission_file_final_test.csv": FileSpec(2022, "final_test"),
    "ground_truth_file_test.csv": FileSpec(2022, "test", True),
    "ground_truth_file_final_test.csv": FileSpec(2022, "final_test", True),
    **{f"predictions_{s}.parquet.brotli": FileSpec(2023, t) for t, s in _STEMS.items()},
    **{f"solutions_{s}.parquet.brotli": FileSpec(2023, t, True) for t, s in _STEMS.items()},
}


def file_name(tier: str, *, ground_truth: bool = False) -> str:
    """The official file name of ``tier`` (``test`` -> ``submission_file_live_test.csv``)."""
    for name, spec in FILE_SPECS.items():
        if spec.tier == tier and spec.ground_truth == ground_truth:
            return name
    tiers = ", ".join(STATIC_TIERS + DYNAMIC_TIERS)
    raise SubmissionError(f"no submission file for tier {tier!r}; tiers with files: {tiers}")


# ----------------------------------------------------------------------------- problems


@dataclasses.dataclass(frozen=True, kw_only=True)
class Problem:
    """One thing wrong with a submission.

    Attributes
    ----------
    file
        The file (``archive.zip:member`` for zip members).
    code
        Short kind: ``file_name``, ``file_missing``, ``zip_member``, ``columns``, ``column_type``,
        ``parse``, ``mouse_missing``, ``mouse_extra``, ``mouse_unknown``, ``trial_missing``,
        ``trial_extra``, ``trial_duplicate``, ``image_id``, ``neuron_ids_rows``,
        ``neuron_missing``, ``neuron_extra``, ``neuron_duplicate``, ``neuron_order``, ``shape``,
        ``nan``, ``inf``.
    message
        What was expected and what was found.
    mouse, row, trial
        Where, when known: the mouse, the 0-based data row (header excluded), the trial id as
        written in the file.
    """

    file: str
    code: str
    message: str
    mouse: str | None = None
    row: int | None = None
    trial: Any = None

    def __str__(self) -> str:
        where = [self.file]
        if self.mouse is not None:
            where.append(f"mouse {self.mouse}")
        if self.row is not None:
            trial = f" (trial {self.trial})" if self.trial is not None else ""
            where.append(f"row {self.row}{trial}")
        elif self.trial is not None:
            where.append(f"trial {self.trial}")
        return f"{': '.join(where)}: {self.message} [{self.code}]"


def _show(values: Any, limit: int = 10) -> str:
    """``1, 2, 3, ... (25 in all)``."""
    items = [str(v) for v in values]
    text = ", ".join(items[:limit])
    return f"{text}, ... ({len(items)} in all)" if len(items) > limit else text


def _listing(head: str, lines: Sequence[Any]) -> str:
    """``head: N problem(s):`` and the first lines, one per line."""
    shown = [f"  - {line}" for line in lines[:_MESSAGE_LIMIT]]
    if len(lines) > _MESSAGE_LIMIT:
        shown.append(f"  ... and {len(lines) - _MESSAGE_LIMIT} more")
    return f"{head}: {len(lines)} problem(s):\n" + "\n".join(shown)


# ----------------------------------------------------------------------------- the store


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class _Mouse:
    """What the submission files need of one mouse of a store (metadata only)."""

    key: str
    source: str
    kind: str
    tiers: np.ndarray
    trial_idx: np.ndarray | None
    image_ids: np.ndarray | None
    valid_frames: np.ndarray | None
    n_frames: int | None
    unit_ids: np.ndarray

    def trials(self, tier: str) -> np.ndarray:
        """File indices of the trials of ``tier``, ascending."""
        return np.flatnonzero(self.tiers == tier)

    def scored_frames(self, index: int, skip: int) -> int:
        """2023: the scored frames of trial ``index`` (its valid frames less ``skip``)."""
        valid = self.n_frames if self.valid_frames is None else self.valid_frames[index]
        return int(valid) - skip  # type: ignore[arg-type]


def _strings(values: np.ndarray) -> np.ndarray:
    """A fixed-width str array (xarray gives numpy StringDType, which cannot be cast to it)."""
    return np.array(values.tolist(), dtype=str)


def _coord(ds: Any, names: Sequence[str]) -> np.ndarray | None:
    for name in names:
        for candidate in (name, f"trial_{name}", f"neuron_{name}"):
            if candidate in ds.coords:
                values = ds.coords[candidate].values
                return values if values.dtype.kind in "iufb" else _strings(values)
    return None


class _StoreView:
    """Lazily opened mice of a store, by group name or full folder name."""

    def __init__(self, url: Any, storage_options: dict[str, Any] | None) -> None:
        self.url = url
        self.storage_options = storage_options
        self.attrs = list_mice(url, storage_options)
        self.by_source = {a["source_name"]: k for k, a in self.attrs.items()}
        self._cache: dict[str, _Mouse] = {}

    def key(self, mouse: str) -> str:
        return resolve_mouse(self.attrs, mouse, self.url)

    def keys(self, kind: str) -> list[str]:
        return [k for k, a in self.attrs.items() if a["kind"] == kind and a["complete"]]

    def source(self, key: str) -> str:
        return str(self.attrs[key]["source_name"])

    def dataset(self, key: str) -> Any:
        return open_mouse(self.url, key, self.storage_options, chunks=None)

    def get(self, mouse: str) -> _Mouse:
        key = self.key(mouse)
        if key not in self._cache:
            ds = self.dataset(key)
            unit_ids, valid = _coord(ds, ("unit_ids",)), _coord(ds, ("valid_frames",))
            self._cache[key] = _Mouse(
                key=key,
                source=self.source(key),
                kind=self.attrs[key]["kind"],
                tiers=_strings(ds.coords["tiers"].values),
                trial_idx=_coord(ds, ("trial_idx",)),
                image_ids=_coord(ds, _IMAGE_ID_NAMES),
                valid_frames=valid,
                n_frames=int(ds.sizes["frame"]) if "frame" in ds.sizes else None,
                unit_ids=np.asarray(ds["neuron"].values if unit_ids is None else unit_ids),
            )
        return self._cache[key]


# ----------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def _atomic_outputs(targets: Sequence[pathlib.Path], *, overwrite: bool) -> Iterator[list[Any]]:
    """Temporary paths beside ``targets``, renamed onto them only when the block succeeds.

    Nothing is written when a target exists and ``overwrite`` is false; on any error the
    temporary files are removed and no target is touched.
    """
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise SubmissionExistsError(
            f"{_show(existing)} already exist(s); pass overwrite=True to replace, or choose "
            "another folder"
        )
    temps = [t.with_name(f".{t.name}.{uuid.uuid4().hex[:12]}.tmp") for t in targets]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield temps
        for temp, target in zip(temps, targets, strict=True):
            os.replace(temp, target)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


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


def _fit_frames(array: np.ndarray, m: _Mouse, index: int, skip: int) -> np.ndarray | str:
    """The scored frames of one trial given ``T_eval``, ``valid`` or ``T_max`` frames."""
    t_eval, n = m.scored_frames(index, skip), m.unit_ids.size
    valid = t_eval + skip
    if array.ndim != 2 or array.shape[0] != n:
        return f"expected (n_neurons={n}, frames) with time last, found {array.shape}"
    if t_eval < 1:
        return f"the trial has {valid} valid frames, none left to score after skip={skip}"
    length = array.shape[1]
    if length in (t_eval, valid, m.n_frames):
        return array if length == t_eval else array[:, skip:valid]
    return (
        f"expected {t_eval} scored frames (valid {valid} - skip {skip}), or the {valid} valid "
        f"frames, or the {m.n_frames} padded frames; found {length}"
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


def _prepare_2023(m: _Mouse, tier: str, pred: Any, skip: int, errors: list[str]) -> list[Any]:
    """Rows of a 2023 file, checked: one (n_neurons, T_eval) float32 array per trial."""
    label = f"mouse {m.key} tier {tier!r}"
    trials = m.trials(tier)
    if trials.size == 0:
        errors.append(f"{label}: the store has no trials of this tier")
    rows = []
    for i, value in zip(trials, _per_trial(pred, trials, label, errors), strict=False):
        array = _numeric(value, f"{label} trial {i}", errors, np.float32)
        fitted = "" if array is None else _fit_frames(array, m, int(i), skip)
        if isinstance(fitted, str) and fitted:
            errors.append(f"{label} trial {i}: {fitted}")
        elif not isinstance(fitted, str):
            _check_finite(fitted, f"{label} trial {i} (scored frames)", errors)
        rows.append(fitted)
    return rows


def _raise_errors(errors: list[str]) -> None:
    if errors:
        raise SubmissionError(_listing("cannot write the submission", errors))


# ----------------------------------------------------------------------------- writing


def _list_text(values: np.ndarray) -> str:
    """A Python list literal; floats in Python's shortest round-trip repr."""
    return str(values.tolist())


def _write_csv(path: Any, m: _Mouse, tier: str, column: str, rows: Sequence[np.ndarray]) -> None:
    """A 2022 file: one row per trial of ``tier`` of mouse ``m``, in ascending file order."""
    trials = m.trials(tier)
    neurons = _list_text(m.unit_ids)
    ids = zip(m.trial_idx[trials].tolist(), m.image_ids[trials].tolist(), strict=True)  # type: ignore[index]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["trial_indices", "image_ids", column, "neuron_ids"])
        for (trial, image), row in zip(ids, rows, strict=True):
            writer.writerow([trial, image, _list_text(row), neurons])


def _write_csv_files(
    out: pathlib.Path, jobs: Sequence[tuple[_Mouse, str, Any]], column: str, *, overwrite: bool
) -> list[pathlib.Path]:
    """2022 files of ``(mouse, tier, rows)`` jobs: flat for one mouse, else per-mouse folders."""
    mice = {m.key for m, _, _ in jobs}
    folder = {m.key: out if len(mice) == 1 else out / m.source for m, _, _ in jobs}
    truth = column == "responses"
    targets = [folder[m.key] / file_name(tier, ground_truth=truth) for m, tier, _ in jobs]
    with _atomic_outputs(targets, overwrite=overwrite) as temps:
        for temp, (m, tier, rows) in zip(temps, jobs, strict=True):
            _write_csv(temp, m, tier, column, rows)
    return targets


def _nested(rows: Sequence[np.ndarray]) -> pa.Array:
    """``list<list<float32>>`` of 2-D arrays (n_neurons, T_i), one per row."""
    n_lists = [r.shape[0] for r in rows]
    lengths = np.concatenate(
        [np.full(r.shape[0], r.shape[1], np.int64) for r in rows] or [np.empty(0, np.int64)]
    )
    flat = np.concatenate(
        [np.ascontiguousarray(r, np.float32).ravel() for r in rows] or [np.empty(0, np.float32)]
    )
    inner_offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int32())
    inner = pa.ListArray.from_arrays(inner_offsets, pa.array(flat, pa.float32()))
    return pa.ListArray.from_arrays(pa.array(np.cumsum([0, *n_lists]), pa.int32()), inner)


def _mouse_table(m: _Mouse, tier: str, rows: Sequence[np.ndarray], column: str) -> pa.Table:
    """The rows of one mouse in a 2023 file, trials in ascending file order."""
    n, ids = len(rows), m.unit_ids.astype(np.uint32)
    offsets = pa.array(np.arange(n + 1) * ids.size, pa.int32())
    return pa.table(
        {
            "mouse": pa.array([m.source] * n, pa.string()),
            "trial_indices": pa.array(m.trials(tier), pa.int64()),
            column: _nested(rows),
            "neuron_ids": pa.ListArray.from_arrays(offsets, pa.array(np.tile(ids, n))),
        }
    )


def _zip_files(path: Any, members: Sequence[tuple[Any, str]]) -> None:
    """A zip of ``(source file, member name)`` pairs, members at the top (no folders)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for source, name in members:
            zf.write(source, name)


def _zip_plan(names: Sequence[str]) -> dict[str, list[str]]:
    """Zip name -> member names: main files together, each bonus file alone."""
    plan: dict[str, list[str]] = {}
    for name in names:
        if FILE_SPECS[name].track == "main":
            plan.setdefault(MAIN_ZIP, []).append(name)
        else:
            plan[name.replace(".parquet.brotli", ".zip")] = [name]
    return plan


def _write_parquet_files(
    out: pathlib.Path, files: Mapping[str, list[pa.Table]], *, make_zips: bool, overwrite: bool
) -> list[pathlib.Path]:
    """Brotli parquet files (one row group per mouse) and, optionally, their upload zips."""
    names = list(files)
    zips = _zip_plan(names) if make_zips else {}
    targets = [out / n for n in names] + [out / z for z in zips]
    with _atomic_outputs(targets, overwrite=overwrite) as temps:
        temp_of = dict(zip(names, temps, strict=False))
        for name, tables in files.items():
            with pq.ParquetWriter(temp_of[name], tables[0].schema, compression="brotli") as w:
                for table in tables:
                    w.write_table(table)
        for temp, members in zip(temps[len(names) :], zips.values(), strict=True):
            _zip_files(temp, [(temp_of[n], n) for n in members])
    return targets


def write_submission_2022(
    predictions: Mapping[str, Mapping[str, Any]],
    store: Any,
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> list[pathlib.Path]:
    """Write SENSORIUM 2022 submission CSVs.

    Parameters
    ----------
    predictions
        ``{mouse: {tier: predictions}}``; ``mouse`` is a short key or full folder name of a
        static mouse of ``store``, ``tier`` is ``"test"`` (written to
        ``submission_file_live_test.csv``) or ``"final_test"``
        (``submission_file_final_test.csv``). ``predictions`` is an array
        ``(n_trials_of_tier, n_neurons)`` in ascending file-index order of the tier's trials
        (the order of the toolkit's non-train loaders) and the store's neuron order, or a
        mapping ``{file index: (n_neurons,) array}``.
    store
        The converted store (path or URL) the predictions belong to.
    out_dir
        Output folder, created if missing. One mouse: its files go directly into it (the
        official upload). Several mice: one subfolder per mouse, named by its full folder name.
    overwrite
        Replace existing files (otherwise :class:`SubmissionExistsError`, nothing written).
    storage_options
        fsspec options of the store.

    Returns
    -------
    list of pathlib.Path
        The files written.

    Raises
    ------
    SubmissionError
        Listing every problem with the predictions (unknown tier, trial count, shape, NaN or
        inf); nothing is written.
    """
    view = _StoreView(store, storage_options)
    errors: list[str] = []
    jobs = []
    for key, by_tier in _resolve(view, predictions, "static", STATIC_TIERS).items():
        m = view.get(key)
        jobs += [(m, tier, _prepare_2022(m, tier, p, errors)) for tier, p in by_tier.items()]
    _raise_errors(errors)
    return _write_csv_files(pathlib.Path(out_dir), jobs, "prediction", overwrite=overwrite)


def write_submission_2023(
    predictions: Mapping[str, Mapping[str, Any]],
    store: Any,
    out_dir: str | os.PathLike[str],
    *,
    skip: int = DEFAULT_SKIP,
    make_zips: bool = True,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> list[pathlib.Path]:
    """Write SENSORIUM 2023 submission parquet files (and the zips to upload).

    Parameters
    ----------
    predictions
        ``{mouse: {tier: predictions}}``; ``mouse`` a short key or full folder name of a dynamic
        mouse of ``store``; ``tier`` one of ``live_test_main``, ``final_test_main`` (files
        ``predictions_live_main`` / ``predictions_final_main``), ``live_test_bonus``,
        ``final_test_bonus`` (``predictions_live_test_bonus_ood`` /
        ``predictions_final_test_bonus_ood``), all ``.parquet.brotli``. Each file holds the
        mice given for its tier. ``predictions`` per tier: a sequence (or array) of per-trial
        arrays ``(n_neurons, frames)``, time last, neurons in store order, trials in ascending
        file-index order; or a mapping ``{file index: array}``. ``frames`` is the trial's scored
        frames (``valid_frames - skip``, written as given), its valid frames or the padded
        ``T_max`` frames (both cut to frames ``skip .. valid_frames - 1``). Cast to float32.
    store
        The converted store (path or URL).
    out_dir
        Output folder, created if missing.
    skip
        Unscored first frames of every trial (50 in the competition).
    make_zips
        Also write the upload zips: ``predictions_main.zip`` holding the main-track files,
        and one zip per bonus file (``predictions_live_test_bonus_ood.zip``, ...), members at
        the top of the zip.
    overwrite
        Replace existing files (otherwise :class:`SubmissionExistsError`, nothing written).
    storage_options
        fsspec options of the store.

    Returns
    -------
    list of pathlib.Path
        The parquet files, then the zips.

    Raises
    ------
    SubmissionError
        Listing every problem with the predictions; nothing is written.
    """
    view = _StoreView(store, storage_options)
    resolved = _resolve(view, predictions, "dynamic", DYNAMIC_TIERS)
    errors: list[str] = []
    jobs = [
        (view.get(key), tier, by_tier[tier])
        for tier in DYNAMIC_TIERS
        for key, by_tier in resolved.items()
        if tier in by_tier
    ]
    rows = [_prepare_2023(m, tier, p, skip, errors) for m, tier, p in jobs]
    _raise_errors(errors)
    files: dict[str, list[pa.Table]] = {}
    for (m, tier, _), trial_rows in zip(jobs, rows, strict=True):
        table = _mouse_table(m, tier, trial_rows, "prediction")
        files.setdefault(file_name(tier), []).append(table)
    out = pathlib.Path(out_dir)
    return _write_parquet_files(out, files, make_zips=make_zips, overwrite=overwrite)


# ----------------------------------------------------------------------------- reading


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class SubmissionPart:
    """The rows of one mouse in one submission (or ground-truth) file, in file order.

    Attributes
    ----------
    file
        File name (``archive.zip:member`` for zip members).
    tier
        Store tier the file covers (``test``, ``live_test_main``, ...), from its name.
    mouse
        Full folder name (2023: the ``mouse`` column; 2022: given, or the name of the
        per-mouse subfolder, else ``None``).
    column
        Name of the value column, ``prediction`` or ``responses``.
    rows
        0-based data row of each entry in the file.
    trial_indices
        2022: ``trial_idx`` (int64, or str for hashed ids); 2023: file indices (int64).
    image_ids
        2022 ``image_ids`` (int64, or str when not integers); ``None`` for 2023.
    neuron_ids
        The neuron ids of the first row.
    values
        Per row: 2022 a 1-D array (float64), 2023 a 2-D array ``(n_neurons, T_eval)`` in the
        stored float type (read-only views of the parquet data).
    neuron_id_mismatches
        ``(row, neuron ids)`` of the rows whose neuron ids differ from the first row's.
    """

    file: str
    tier: str
    mouse: str | None
    column: str
    rows: np.ndarray
    trial_indices: np.ndarray
    image_ids: np.ndarray | None
    neuron_ids: np.ndarray
    values: tuple[np.ndarray, ...]
    neuron_id_mismatches: tuple[tuple[int, np.ndarray], ...] = ()

    def stack(self) -> np.ndarray:
        """All rows as one array: ``(n_rows, n_neurons)`` (2022) or ``(n_rows, n_neurons, T)``."""
        shapes = {v.shape for v in self.values}
        if len(shapes) > 1:
            raise SubmissionFormatError(
                f"{self.file}: rows of mouse {self.mouse} have different shapes {sorted(shapes)}"
            )
        return np.stack(self.values) if self.values else np.empty((0, self.neuron_ids.size))


@dataclasses.dataclass(frozen=True)
class _Entry:
    """One file to read: its display name, official spec, bytes or path, enclosing folder."""

    file: str
    spec: FileSpec
    source: Any
    folder: str | None


def _id_array(texts: Sequence[str]) -> np.ndarray:
    if texts and all(_INT_TEXT.fullmatch(t) for t in texts):
        return np.array([int(t) for t in texts], dtype=np.int64)
    return np.array(texts, dtype=str)


def _parse_list(text: str, dtype: Any) -> np.ndarray | None:
    """A list literal of numbers (``nan``/``inf`` accepted) as an array, or None."""
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        return None
    inner = body[1:-1].strip()
    if not inner:
        return np.empty(0, dtype)
    try:
        values = np.array(inner.split(","), dtype=np.float64)
    except ValueError:
        return None
    if dtype == np.int64:
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            return None
        return values.astype(np.int64)
    return values


def _check_columns(
    file: str, found: Sequence[str], expected: Sequence[str], values: tuple[str, ...]
) -> tuple[str | None, list[Problem]]:
    """The value column (None when a column is missing), and a problem if columns differ."""
    value = next((v for v in values if v in found), None)
    wanted = [c.format(value=value or values[0]) for c in expected]
    missing = [c for c in wanted if c not in found]
    extra = [c for c in found if c not in wanted]
    if not (missing or extra):
        return value, []
    message = f"expected columns {wanted}, found {list(found)}"
    message += f"; missing {missing}" if missing else ""
    message += f"; unexpected {extra}" if extra else ""
    return (None if missing else value), [Problem(file=file, code="columns", message=message)]


def _read_csv(entry: _Entry, mouse: str | None) -> tuple[list[SubmissionPart] | None, list[Any]]:
    """The part of a 2022 CSV (None when it cannot be read), and the problems found."""
    file = entry.file
    src = io.BytesIO(entry.source) if isinstance(entry.source, bytes) else entry.source
    try:
        df = pd.read_csv(src, dtype=str, keep_default_na=False, na_filter=False)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, [Problem(file=file, code="parse", message=f"not a readable CSV: {exc}")]
    columns = list(df.columns)
    column, problems = _check_columns(file, columns, _CSV_COLUMNS, entry.spec.value_columns)
    if column is None:
        return None, problems
    trials = _id_array(df["trial_indices"].tolist())
    at = functools.partial(Problem, file=file, code="parse")
    values = []
    for row, text in enumerate(df[column].tolist()):
        parsed = _parse_list(text, np.float64)
        if parsed is None:
            message = f"{column} is not a list literal of numbers: {text[:60]!r}"
            problems.append(at(row=row, trial=trials[row].item(), message=message))
        values.append(np.empty(0) if parsed is None else parsed)
    ids: dict[int, np.ndarray] = {}
    texts = df["neuron_ids"].tolist()
    for row, text in enumerate(texts):
        if row == 0 or text != texts[0]:
            parsed = _parse_list(text, np.int64)
            if parsed is None:
                message = f"neuron_ids is not a list literal of integers: {text[:60]!r}"
                problems.append(at(row=row, trial=trials[row].item(), message=message))
            ids[row] = np.empty(0, np.int64) if parsed is None else parsed
    part = SubmissionPart(
        file=file,
        tier=entry.spec.tier,
        mouse=mouse if mouse is not None else entry.folder,
        column=column,
        rows=np.arange(len(df)),
        trial_indices=trials,
        image_ids=_id_array(df["image_ids"].tolist()),
        neuron_ids=ids.pop(0, np.empty(0, np.int64)),
        values=tuple(values),
        neuron_id_mismatches=tuple(ids.items()),
    )
    return [part], problems


def _list_rows(column: pa.ChunkedArray, ndim: int) -> list[np.ndarray | str]:
    """Rows of a ``list<number>`` (ndim 1) or ``list<list<number>>`` (ndim 2) column.

    A row of ragged neuron lists is returned as the message saying so.
    """
    out: list[np.ndarray | str] = []
    for chunk in column.chunks:
        outer = chunk.offsets.to_numpy()
        if ndim == 1:
            flat = chunk.values.to_numpy(zero_copy_only=False)
            out += [flat[outer[r] : outer[r + 1]] for r in range(len(chunk))]
            continue
        inner = chunk.values.offsets.to_numpy()
        flat = chunk.values.values.to_numpy(zero_copy_only=False)
        for a, b in itertools.pairwise(outer):
            lengths = np.diff(inner[a : b + 1])
            if lengths.size and np.any(lengths != lengths[0]):
                out.append(f"neuron lists of different lengths {_show(sorted(set(lengths)))}")
            else:
                t = int(lengths[0]) if lengths.size else 0
                out.append(flat[inner[a] : inner[b]].reshape(b - a, t))
    return out


def _list_of(dtype: pa.DataType, check: Any, depth: int) -> bool:
    for _ in range(depth):
        if not (pa.types.is_list(dtype) or pa.types.is_large_list(dtype)):
            return False
        dtype = dtype.value_type
    return bool(check(dtype))


def _number(dtype: pa.DataType) -> bool:
    return bool(pa.types.is_floating(dtype) or pa.types.is_integer(dtype))


def _check_parquet_types(file: str, schema: pa.Schema, column: str) -> list[Problem]:
    rules = {
        "mouse": (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "a string"),
        "trial_indices": (pa.types.is_integer, "an integer (int64)"),
        "neuron_ids": (lambda t: _list_of(t, pa.types.is_integer, 1), "a list of integers"),
        column: (lambda t: _list_of(t, _number, 2), "a list of lists of numbers"),
    }
    problems = []
    for name, (check, what) in rules.items():
        found = schema.field(name).type
        if not check(found):
            message = f"column {name!r} must be {what}, found {found}"
            problems.append(Problem(file=file, code="column_type", message=message))
    return problems


def _read_parquet(entry: _Entry) -> tuple[list[SubmissionPart] | None, list[Problem]]:
    """The parts (one per mouse) of a 2023 parquet file (None when unreadable), and problems."""
    file = entry.file
    src = pa.BufferReader(entry.source) if isinstance(entry.source, bytes) else str(entry.source)
    try:
        table = pq.read_table(src)
    except (pa.ArrowException, OSError) as exc:
        return None, [Problem(file=file, code="parse", message=f"not a readable parquet: {exc}")]
    columns, values = table.column_names, entry.spec.value_columns
    column, problems = _check_columns(file, columns, _PARQUET_COLUMNS, values)
    types = [] if column is None else _check_parquet_types(file, table.schema, column)
    if column is None or types:
        return None, problems + types
    mice = np.array(table["mouse"].to_pylist(), dtype=object)
    trials = table["trial_indices"].to_numpy().astype(np.int64)
    ids, rows = _list_rows(table["neuron_ids"], 1), _list_rows(table[column], 2)
    for r, row in enumerate(rows):
        if isinstance(row, str):
            message = f"{column}: {row}"
            problems.append(
                Problem(file=file, code="shape", row=r, trial=int(trials[r]), message=message)
            )
            rows[r] = np.empty((0, 0), np.float32)
    parts = []
    for mouse in dict.fromkeys(mice.tolist()):
        index = np.flatnonzero(mice == mouse)
        first = ids[index[0]]
        parts.append(
            SubmissionPart(
                file=file,
                tier=entry.spec.tier,
                mouse=mouse,
                column=column,
                rows=index,
                trial_indices=trials[index],
                image_ids=None,
                neuron_ids=np.asarray(first),
                values=tuple(rows[r] for r in index),  # type: ignore[misc]  # str rows replaced
                neuron_id_mismatches=tuple(
                    (int(r), ids[r]) for r in index[1:] if not np.array_equal(ids[r], first)
                ),
            )
        )
    return parts, problems


def _spec_of(file: str, name: str) -> tuple[FileSpec | None, list[Problem]]:
    spec = FILE_SPECS.get(name)
    if spec is not None:
        return spec, []
    message = f"not an official file name; expected one of {', '.join(FILE_SPECS)}"
    return None, [Problem(file=file, code="file_name", message=message)]


def _zip_entries(path: pathlib.Path) -> tuple[list[_Entry], list[Problem]]:
    """The members of a zip; problems for folders in it and, for the main track, a lone file."""
    entries: list[_Entry] = []
    problems: list[Problem] = []
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        return [], [Problem(file=str(path), code="parse", message=f"not a readable zip: {exc}")]
    with zf:
        for info in zf.infolist():
            file = f"{path}:{info.filename}"
            if "/" in info.filename.rstrip("/"):
                message = "the files must sit at the top of the zip, not in a folder"
                problems.append(Problem(file=file, code="zip_member", message=message))
            if info.is_dir() or info.filename.startswith("__MACOSX/"):
                continue
            spec, found = _spec_of(file, pathlib.PurePosixPath(info.filename).name)
            problems += found
            entries += [_Entry(file, spec, zf.read(info), None)] if spec else []
    present = {pathlib.PurePosixPath(e.file.rsplit(":", 1)[-1]).name for e in entries}
    mains = [n for n, s in FILE_SPECS.items() if s.track == "main" and not s.ground_truth]
    for name in sorted(set(mains) - present) if present & set(mains) else []:
        message = f"the main-track zip holds no {name}; it must hold {' and '.join(mains)}"
        problems.append(Problem(file=str(path), code="file_missing", message=message))
    return entries, problems


def _looks_like_submission(path: pathlib.Path) -> bool:
    """A visible file named like a submission file (temporary files start with a dot)."""
    suffixes = (".csv", ".parquet", ".parquet.brotli")
    return path.is_file() and not path.name.startswith(".") and path.name.endswith(suffixes)


def _collect(path: pathlib.Path) -> tuple[list[_Entry], list[Problem]]:
    """Every submission file under ``path`` (a file, a zip, or a folder of them)."""
    if path.is_file() and path.suffix == ".zip":
        return _zip_entries(path)
    if path.is_file():
        spec, problems = _spec_of(str(path), path.name)
        folder = path.parent.name if path.parent.name.startswith("static") else None
        return ([_Entry(str(path), spec, path, folder)] if spec else []), problems
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    entries, problems = [], []
    for child in sorted(path.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            for grand in filter(_looks_like_submission, sorted(child.iterdir())):
                spec, found = _spec_of(str(grand), grand.name)
                entries += [_Entry(str(grand), spec, grand, child.name)] if spec else []
                problems += found
        elif _looks_like_submission(child) or child.suffix == ".zip":
            more, found = _collect(child)
            entries += more
            problems += found
    if not entries and not problems:
        message = f"no submission files here; expected some of {', '.join(FILE_SPECS)}"
        problems.append(Problem(file=str(path), code="file_missing", message=message))
    return entries, problems


def _read_all(
    path: Any, mouse: str | None
) -> tuple[list[tuple[_Entry, list[SubmissionPart]]], list[Problem]]:
    """The readable files under ``path`` with their parts, and every problem found reading."""
    entries, problems = _collect(pathlib.Path(path))
    out = []
    for entry in entries:
        parts, found = _read_csv(entry, mouse) if entry.spec.year == 2022 else _read_parquet(entry)
        out += [(entry, parts)] if parts is not None else []
        problems += found
    return out, problems


def read_submission(
    path: str | os.PathLike[str], *, mouse: str | None = None
) -> dict[str | None, dict[str, SubmissionPart]]:
    """Read submission or ground-truth files.

    Parameters
    ----------
    path
        A 2022 CSV, a 2023 parquet file, a zip of them (the 2023 upload), or a folder holding
        them (2022 also per-mouse subfolders). Files must have official names
        (:data:`FILE_SPECS`), which say the tier.
    mouse
        2022: the mouse the CSVs belong to (they do not say); default the name of the
        per-mouse subfolder (``static...``), else ``None``.

    Returns
    -------
    dict
        ``{mouse: {tier: SubmissionPart}}``.

    Raises
    ------
    SubmissionFormatError
        Listing every reason the files cannot be read: unknown names, wrong columns or column
        types, unparseable rows, rows of ragged shape, two files of the same mouse and tier.
    """
    read, problems = _read_all(path, mouse)
    out: dict[str | None, dict[str, SubmissionPart]] = {}
    for part in (p for _, parts in read for p in parts):
        by_tier = out.setdefault(part.mouse, {})
        if part.tier in by_tier:
            message = f"a second file for tier {part.tier!r} (first: {by_tier[part.tier].file})"
            problems.append(Problem(file=part.file, code="file_name", message=message))
        by_tier[part.tier] = part
    if problems:
        raise SubmissionFormatError(_listing(f"cannot read {path}", problems), problems)
    return out


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
    part: SubmissionPart, expected: Mapping[int, tuple[int, ...]], mouse: str, skip_rows: set[int]
) -> list[Problem]:
    """Shape, NaN and inf of every row; ``expected`` maps entry -> shape."""
    problems = []
    for j, value in enumerate(part.values):
        row = int(part.rows[j])
        if row in skip_rows:
            continue
        trial = part.trial_indices[j].item()
        at = functools.partial(Problem, file=part.file, mouse=mouse, row=row, trial=trial)
        if j in expected and value.shape != expected[j]:
            message = f"{part.column} has shape {value.shape}, expected {expected[j]}"
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
    strict_neuron_order: bool,
    skip_rows: set[int],
) -> list[Problem]:
    tier = entry.spec.tier
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
        shapes = {j: (m.unit_ids.size, m.scored_frames(i, skip)) for j, i in matched.items()}
        problems += _check_values(part, shapes, m.source, skip_rows)
    return problems


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
        Unscored first frames of a 2023 trial: rows must be ``(n_neurons, valid_frames - skip)``.
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
    view = _StoreView(store, storage_options)
    read, problems = _read_all(path, mouse)
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
                strict_neuron_order=strict_neuron_order,
                skip_rows=skip_rows[entry.file],
            )
            continue
        m, found = _validate_2022(parts[0], view, mouse, skip_rows[entry.file])
        problems += found
        if m is not None and pathlib.Path(path).is_dir():
            group = (str(pathlib.Path(entry.file).parent), entry.spec.ground_truth)
            groups.setdefault(group, (m, set()))[1].add(pathlib.Path(entry.file).name)
    return problems + _static_file_set(groups)


def check_submission(path: str | os.PathLike[str], store: Any, **options: Any) -> None:
    """Raise :class:`SubmissionError` listing every problem :func:`validate_submission` finds."""
    problems = validate_submission(path, store, **options)
    if problems:
        message = _listing(f"{path} is not a valid submission", problems)
        raise SubmissionError(message, problems)


# ----------------------------------------------------------------------------- ground truth


def _tier_responses(
    view: _StoreView, m: _Mouse, tier: str, normalizer: Normalizer, skip: int, block: int = 16
) -> list[np.ndarray] | None:
    """Normalised responses of the tier's trials (2023: scored frames), or None if withheld."""
    trials = m.trials(tier)
    responses = view.dataset(m.key)["responses"]
    rows: list[np.ndarray] = []
    held = False
    for a in range(0, trials.size, block):
        index = trials[a : a + block]
        raw = np.asarray(responses.isel(trial=index).values)
        held = held or bool(np.any(np.nan_to_num(raw) != 0))
        values = normalizer("responses", raw, frame_start=0 if m.kind == "dynamic" else None)
        if m.kind == "static":
            rows += list(values)
        else:
            rows += [v[:, skip : m.scored_frames(i, 0)] for v, i in zip(values, index, strict=True)]
    return rows if held else None


def write_ground_truth(
    store: Any,
    out_dir: str | os.PathLike[str],
    *,
    mice: Sequence[str] | None = None,
    tiers: Sequence[str] | None = None,
    skip: int = DEFAULT_SKIP,
    column: str = "responses",
    threshold_reduction: str = "nanmean",
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> list[pathlib.Path]:
    """Write official-style ground-truth files from a store's responses.

    Parameters
    ----------
    store
        The converted store (path or URL).
    out_dir
        Output folder, created if missing.
    mice
        Mice to include (default every mouse). Static mice give 2022 CSVs
        ``ground_truth_file_test.csv`` / ``ground_truth_file_final_test.csv`` (columns
        ``trial_indices``, ``image_ids``, ``responses``, ``neuron_ids``; one mouse directly in
        ``out_dir``, several in per-mouse subfolders as :func:`write_submission_2022`); dynamic
        mice give 2023 ``solutions_<stem>.parquet.brotli`` holding every mouse, laid out as the
        predictions.
    tiers
        Tiers to write; default the test tiers (2022 ``test``, ``final_test``; 2023 the live and
        final main and bonus tiers). Tiers without trials, or whose responses are all zero
        (withheld, as in competition mice), are skipped.
    skip
        2023: unscored first frames; rows hold frames ``skip .. valid_frames - 1``.
    column
        2023: name of the responses column, ``"responses"``, or ``"prediction"`` as in the
        official scorer's solution files. 2022 files always use ``responses``.
    threshold_reduction
        Of the response normaliser (:func:`sensorium_data.normalize.response_precision`).
    overwrite
        Replace existing files (otherwise :class:`SubmissionExistsError`, nothing written).
    storage_options
        fsspec options of the store.

    Returns
    -------
    list of pathlib.Path

    Notes
    -----
    Responses are in normalised units, as the kits' loaders give them (``normalize=True``):
    ``x * precision`` with the ``all`` statistics; 2023 per neuron and frame, normalising the
    whole padded trial before cutting it, as the kit does.
    """
    view = _StoreView(store, storage_options)
    keys = [view.key(m) for m in mice] if mice is not None else list(view.attrs)
    static: list[tuple[_Mouse, str, list[np.ndarray]]] = []
    files: dict[str, list[pa.Table]] = {}
    for key in keys:
        m = view.get(key)
        stats = open_statistics(view.url, key, view.storage_options)
        normalizer = Normalizer.from_statistics(
            stats, kind=m.kind, threshold_reduction=threshold_reduction
        )
        default = STATIC_TIERS if m.kind == "static" else DYNAMIC_TIERS
        for tier in [t for t in tiers or default if t in default and m.trials(t).size]:
            rows = _tier_responses(view, m, tier, normalizer, skip)
            if rows is not None and m.kind == "static":
                static.append((m, tier, rows))
            elif rows is not None:
                table = _mouse_table(m, tier, rows, column)
                files.setdefault(file_name(tier, ground_truth=True), []).append(table)
    if not static and not files:
        raise SubmissionError(
            f"{store}: no tier {list(tiers or ())} with responses in mice {_show(keys)}; "
            "withheld (all-zero) tiers are skipped"
        )
    out = pathlib.Path(out_dir)
    written = _write_csv_files(out, static, "responses", overwrite=overwrite) if static else []
    if files:
        written += _write_parquet_files(out, files, make_zips=False, overwrite=overwrite)
    return written
