"""The 2023 kit's own submission file names, and renaming them to the official ones.

The 2023 kit's ``generate_submission`` writes
``predictions_file_{tier}_{track}_track.parquet.brotli`` (for example
``predictions_file_live_test_main_main_track.parquet.brotli``), with ``large_string`` and
``list<list<double>>`` columns; the scorer and the kit's README ask for
``predictions_live_main.parquet.brotli`` and its siblings, the main-track pair zipped together.
Validation and scoring read both names (and both schemas) alike; :func:`kit_file_renames` says
which files need a new name, :func:`fix_submission` renames them and writes the upload zips.
"""

from __future__ import annotations

import os
import pathlib

from .names import FILE_SPECS, KIT_FILE_NAMES, MAIN_ZIP
from .problems import SubmissionError, SubmissionExistsError
from .writers import _atomic_outputs, _package, _zip_plan


def kit_file_renames(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """``(file, official name)`` for every file (or zip member) under ``path`` that has the
    2023 kit's name instead of the official one; empty when there is none."""
    import zipfile

    root = pathlib.Path(path)
    files = sorted(root.rglob("*")) if root.is_dir() else [root]
    out = []
    for file in files:
        if file.name in KIT_FILE_NAMES and file.is_file():
            out.append((str(file), KIT_FILE_NAMES[file.name]))
        elif file.suffix == ".zip" and file.is_file() and zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as zf:
                for member in zf.namelist():
                    name = pathlib.PurePosixPath(member).name
                    if name in KIT_FILE_NAMES:
                        out.append((f"{file}:{member}", KIT_FILE_NAMES[name]))
    return out


def fix_submission(
    folder: str | os.PathLike[str], *, make_zips: bool = True, dry_run: bool = False
) -> list[tuple[pathlib.Path, pathlib.Path]]:
    """Rename the 2023 kit's submission files in ``folder`` to the official names.

    Each ``predictions_file_..._track.parquet.brotli`` is renamed (same bytes, nothing
    rewritten) to its official name; with ``make_zips`` the upload zips of the renamed files
    are written as :func:`~sensorium_data.submission.write_submission_2023` writes them
    (``predictions_main.zip`` once both main files are there, one zip per bonus file). Nothing
    is changed when an official name (or zip) already exists: :class:`SubmissionExistsError`
    names it. ``dry_run``: only return what would be renamed.

    Returns ``(old path, new path)`` of every rename (zips written are not listed).
    """
    root = pathlib.Path(folder)
    if not root.is_dir():
        raise SubmissionError(f"{root}: not a folder (fix_submission renames files in a folder)")
    renames = [
        (root / name, root / official)
        for name, official in KIT_FILE_NAMES.items()
        if (root / name).is_file()
    ]
    if not renames:
        raise SubmissionError(
            f"{root}: no file with the 2023 kit's names ({', '.join(KIT_FILE_NAMES)})"
        )
    taken = [str(new) for _, new in renames if new.exists()]
    if taken:
        raise SubmissionExistsError(
            f"{', '.join(taken)} already exist(s); remove or move them first (nothing renamed)"
        )
    renamed = {new.name for _, new in renames}
    present = renamed | {n for n in FILE_SPECS if (root / n).is_file()}
    plan = _zip_plan(sorted(n for n in present if not FILE_SPECS[n].ground_truth))
    zips = {
        z: members
        for z, members in plan.items()
        if make_zips and (z != MAIN_ZIP or len(members) == 2) and renamed & set(members)
    }
    if dry_run:
        return renames
    with _atomic_outputs([root / z for z in zips], overwrite=False) as temps:
        sources = {new.name: old for old, new in renames}
        for temp, members in zip(temps, zips.values(), strict=True):
            _package()._zip_files(temp, [(sources.get(m, root / m), m) for m in members])
        for old, new in renames:
            os.rename(old, new)
    return renames
