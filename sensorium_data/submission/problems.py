"""Errors of the submission writers and readers, and :class:`Problem`, one thing wrong."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..errors import SensoriumDataError

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
