"""Write 2022 submission CSVs and 2023 parquet files (and their upload zips), atomically."""

from __future__ import annotations

import contextlib
import csv
import os
import pathlib
import sys
import uuid
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..conventions import DEFAULT_SCORED_FRAMES, parse_scored_frames
from ._store import _Mouse, _StoreView
from .names import DEFAULT_SKIP, DYNAMIC_TIERS, FILE_SPECS, MAIN_ZIP, STATIC_TIERS, file_name
from .prepare import _prepare_2022, _prepare_2023, _raise_errors, _resolve
from .problems import SubmissionExistsError, _show


def _package() -> Any:
    """The package, ``sensorium_data.submission``.

    :func:`_write_csv` and :func:`_write_parquet_files` look ``_list_text`` and ``_zip_files`` up
    there at call time, so that patching them on the package (as the tests do) takes effect.
    """
    return sys.modules[__package__]


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


# ----------------------------------------------------------------------------- writing


def _list_text(values: np.ndarray) -> str:
    """A Python list literal; floats in Python's shortest round-trip repr."""
    return str(values.tolist())


def _write_csv(path: Any, m: _Mouse, tier: str, column: str, rows: Sequence[np.ndarray]) -> None:
    """A 2022 file: one row per trial of ``tier`` of mouse ``m``, in ascending file order."""
    trials = m.trials(tier)
    neurons = _package()._list_text(m.unit_ids)
    ids = zip(m.trial_idx[trials].tolist(), m.image_ids[trials].tolist(), strict=True)  # type: ignore[index]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["trial_indices", "image_ids", column, "neuron_ids"])
        for (trial, image), row in zip(ids, rows, strict=True):
            writer.writerow([trial, image, _package()._list_text(row), neurons])


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
            _package()._zip_files(temp, [(temp_of[n], n) for n in members])
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
    scored_frames: str = DEFAULT_SCORED_FRAMES,
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
        frames (written as given), or its valid frames or the padded ``T_max`` frames (cut to
        the scored frames). Cast to float32.
    store
        The converted store (path or URL).
    out_dir
        Output folder, created if missing.
    skip
        Unscored first frames of every trial (50 in the competition).
    scored_frames
        Where the scored frames end (:mod:`sensorium_data.conventions`): ``"competition"``
        (default) frames ``skip .. L-2`` of every NaN-padded trial of valid length ``L``, 249 of
        a 300-frame trial, the lengths the official scorer accepted; ``"kit-head"`` frames
        ``skip .. L-1`` (250), as the 2023 kit writes them today.
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
    scored_frames = parse_scored_frames(scored_frames)
    view = _StoreView(store, storage_options)
    resolved = _resolve(view, predictions, "dynamic", DYNAMIC_TIERS)
    errors: list[str] = []
    jobs = [
        (view.get(key), tier, by_tier[tier])
        for tier in DYNAMIC_TIERS
        for key, by_tier in resolved.items()
        if tier in by_tier
    ]
    rows = [_prepare_2023(m, tier, p, skip, scored_frames, errors) for m, tier, p in jobs]
    _raise_errors(errors)
    files: dict[str, list[pa.Table]] = {}
    for (m, tier, _), trial_rows in zip(jobs, rows, strict=True):
        table = _mouse_table(m, tier, trial_rows, "prediction")
        files.setdefault(file_name(tier), []).append(table)
    out = pathlib.Path(out_dir)
    return _write_parquet_files(out, files, make_zips=make_zips, overwrite=overwrite)
