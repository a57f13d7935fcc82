"""Official-style ground-truth files from a store's (normalised) responses."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..conventions import DEFAULT_SCORED_FRAMES, parse_scored_frames
from ..loading.normalize import Normalizer
from ..store.access import open_statistics
from ._store import _Mouse, _StoreView
from .names import DEFAULT_SKIP, DYNAMIC_TIERS, STATIC_TIERS, file_name
from .problems import SubmissionError, _show
from .writers import _mouse_table, _write_csv_files, _write_parquet_files

# ----------------------------------------------------------------------------- ground truth


def _tier_responses(
    view: _StoreView,
    m: _Mouse,
    tier: str,
    normalizer: Normalizer,
    skip: int,
    scored_frames: str,
    block: int = 16,
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
            stops = [m.scored_stop(i, scored_frames) for i in index]
            rows += [v[:, skip:stop] for v, stop in zip(values, stops, strict=True)]
    return rows if held else None


def write_ground_truth(
    store: Any,
    out_dir: str | os.PathLike[str],
    *,
    mice: Sequence[str] | None = None,
    tiers: Sequence[str] | None = None,
    skip: int = DEFAULT_SKIP,
    scored_frames: str = DEFAULT_SCORED_FRAMES,
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
        2023: unscored first frames.
    scored_frames
        2023: where the scored frames end (:mod:`sensorium_data.conventions`):
        ``"competition"`` (default) rows hold frames ``skip .. L-2`` of every NaN-padded trial
        of valid length ``L`` (249 of a 300-frame trial), as the official solution files;
        ``"kit-head"`` frames ``skip .. L-1`` (250), as the 2023 kit at HEAD.
    column
        2023: name of the responses column, ``"responses"``, or ``"prediction"`` as in the
        official scorer's solution files. 2022 files always use ``responses``.
    threshold_reduction
        Of the response normaliser (:func:`sensorium_data.loading.normalize.response_precision`).
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
    scored_frames = parse_scored_frames(scored_frames)
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
            rows = _tier_responses(view, m, tier, normalizer, skip, scored_frames)
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
