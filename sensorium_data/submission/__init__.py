"""Submission and ground-truth files of the SENSORIUM competitions: write, read and validate.

numpy, pandas and pyarrow only (no torch). The formats are those of docs/format.md.

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

- 2023 frames: a row holds the SCORED frames only, frames ``skip`` (50) to the end of the trial
  under a convention (:mod:`sensorium_data.conventions`, ``scored_frames=``):
  ``"competition"`` (default) ends at ``L-2`` for every NaN-padded trial of valid length ``L``
  (249 of 300: the competition-era kit lost that frame, and the official solution files and
  the scorer's shape check have these lengths), ``"kit-head"`` at ``L-1`` (250, the kit
  today). Writers also accept a trial's whole valid part or the padded trial and cut them;
  validation and scoring detect the convention from the rows. ``skip=51`` is not the
  competition's window (it scores frames 51 .. L-1).
- The 2023 kit's own file names (``predictions_file_{tier}_{track}_track.parquet.brotli``) are
  read as the official files they stand for (:data:`KIT_FILE_NAMES`); :func:`fix_submission`
  renames them for upload.
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

# One module per concern: problems (errors, Problem), names (file names and tiers), _store (the
# store's mice), prepare and writers (write_submission_*), parse and reader (read_submission),
# validate (validate_submission, check_submission), truth (write_ground_truth).
from ._store import _Mouse as _Mouse
from ._store import _StoreView as _StoreView
from ._store import _strings as _strings
from .fix import fix_submission, kit_file_renames
from .names import DEFAULT_SKIP, FILE_SPECS, KIT_FILE_NAMES, FileSpec, file_name
from .names import DYNAMIC_TIERS as DYNAMIC_TIERS
from .names import MAIN_ZIP as MAIN_ZIP
from .names import STATIC_TIERS as STATIC_TIERS
from .parse import SubmissionPart
from .parse import _parse_list as _parse_list
from .problems import Problem, SubmissionError, SubmissionExistsError, SubmissionFormatError
from .reader import read_submission
from .truth import _tier_responses as _tier_responses
from .truth import write_ground_truth
from .validate import _static_mouse as _static_mouse
from .validate import check_submission, validate_submission
from .writers import _list_text as _list_text
from .writers import _zip_files as _zip_files
from .writers import write_submission_2022, write_submission_2023

__all__ = [
    "DEFAULT_SKIP",
    "FILE_SPECS",
    "KIT_FILE_NAMES",
    "FileSpec",
    "Problem",
    "SubmissionError",
    "SubmissionExistsError",
    "SubmissionFormatError",
    "SubmissionPart",
    "check_submission",
    "file_name",
    "fix_submission",
    "kit_file_renames",
    "read_submission",
    "validate_submission",
    "write_ground_truth",
    "write_submission_2022",
    "write_submission_2023",
]
