"""Find the submission files of a path (file, zip or folder) and read them."""

from __future__ import annotations

import os
import pathlib
import zipfile
from typing import Any

from .names import FILE_SPECS, FileSpec, official_name, spec_of
from .parse import SubmissionPart, _Entry, _read_csv, _read_parquet
from .problems import Problem, SubmissionFormatError, _listing


def _spec_of(file: str, name: str) -> tuple[FileSpec | None, list[Problem]]:
    spec = spec_of(name)
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
    present = {
        official_name(pathlib.PurePosixPath(e.file.rsplit(":", 1)[-1]).name) for e in entries
    }
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
    return _drop_zipped_copies(entries), problems


def _drop_zipped_copies(entries: list[_Entry]) -> list[_Entry]:
    """Leave out zip members that are byte for byte a file of the same name beside the zip.

    ``write_submission_2023`` writes the parquet files and the upload zips side by side; the
    zip then holds the very files of the folder, which are one submission, not two. A zip
    member that differs from the file of its name is kept (and reported as a second file).
    """
    loose = {
        (pathlib.Path(e.file).name, e.folder): e.source
        for e in entries
        if isinstance(e.source, pathlib.Path)
    }
    kept = []
    for entry in entries:
        if isinstance(entry.source, bytes):
            name = pathlib.PurePosixPath(entry.file.rsplit(":", 1)[-1]).name
            twin = loose.get((name, entry.folder))
            if twin is not None and twin.read_bytes() == entry.source:
                continue
        kept.append(entry)
    return kept


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
