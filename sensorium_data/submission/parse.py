"""The rows of one submission or ground-truth file (2022 CSV, 2023 parquet) as parts."""

from __future__ import annotations

import dataclasses
import functools
import io
import itertools
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .names import FileSpec
from .problems import Problem, SubmissionFormatError, _show

_CSV_COLUMNS = ("trial_indices", "image_ids", "{value}", "neuron_ids")
_PARQUET_COLUMNS = ("mouse", "trial_indices", "{value}", "neuron_ids")
_INT_TEXT = re.compile(r"\s*-?\d+\s*")


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
