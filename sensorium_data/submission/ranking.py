"""Rank a folder of SENSORIUM submissions per track, as the competitions did.

:func:`leaderboard` scores every entry with :func:`~.scoring.score_submission` and
writes the rankings as Markdown and self-contained HTML (also importable from
:mod:`sensorium_data.submission.scoring`).
"""

from __future__ import annotations

import dataclasses
import functools
import html
import math
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from .. import submission as sub
from ..errors import SensoriumDataError
from .scoring import (
    _TIERS,
    LABELS,
    TRACKS,
    Score,
    ScoreReport,
    ScoringError,
    TrackScore,
    _fmt,
    score_submission,
)

__all__ = ["Leaderboard", "LeaderboardTable", "leaderboard"]

_SUFFIXES = (".zip", ".csv", ".parquet", ".brotli")


# ----------------------------------------------------------------------------- leaderboard

_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin-bottom:1.5em}th{background:#eee}"
    "th,td{border:1px solid #ccc;padding:.3em .7em}td{font-variant-numeric:tabular-nums}"
    "tbody tr:nth-child(even){background:#f7f7f7}pre{white-space:pre-wrap;font-size:.85em}"
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LeaderboardTable:
    """One track's ranking on one tier (2022: and one mouse), best first.

    ``rows`` are ``(rank, submission, ranking score, *other scores)`` as ``columns`` name them;
    ties share a rank; NaN scores come last, without one.
    """

    track: str
    tier: str
    mouse: str | None
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    @property
    def title(self) -> str:
        mouse = f", mouse {self.mouse}" if self.mouse else ""
        return f"{self.track} track, tier {self.tier}{mouse}: ranked by {self.columns[2]}"

    def to_markdown(self) -> str:
        def line(cells: Sequence[Any]) -> str:
            text = (html.escape(_fmt(c), quote=False).replace("|", "\\|") for c in cells)
            return "| " + " | ".join(text) + " |"

        rule = "|" + "|".join(["---:", "---", *["---:"] * (len(self.columns) - 2)]) + "|"
        return "\n".join([f"## {self.title}", "", line(self.columns), rule, *map(line, self.rows)])

    def to_html(self) -> str:
        def line(cells: Sequence[Any], tag: str) -> str:
            text = "".join(f"<{tag}>{html.escape(_fmt(c))}</{tag}>" for c in cells)
            return f"<tr>{text}</tr>"

        body = "\n".join(line(r, "td") for r in self.rows)
        head = f"<h2>{html.escape(self.title)}</h2>\n<table>\n<thead>{line(self.columns, 'th')}"
        return f"<section>\n{head}</thead>\n<tbody>\n{body}\n</tbody>\n</table>\n</section>"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Leaderboard:
    """The tables, the entries not scored with the reason, and the files written."""

    title: str
    tables: tuple[LeaderboardTable, ...]
    invalid: tuple[tuple[str, str], ...] = ()
    files: tuple[pathlib.Path, ...] = ()

    def to_markdown(self) -> str:
        e = functools.partial(html.escape, quote=False)
        invalid = [f"## Not scored: {e(name)}\n\n```\n{why}\n```" for name, why in self.invalid]
        tables = [t.to_markdown() for t in self.tables]
        return "\n\n".join([f"# {e(self.title)}", *tables, *invalid]) + "\n"

    def to_html(self) -> str:
        """A self-contained page: inline CSS, no scripts, no external resources."""
        e = html.escape
        head = '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        parts = [f"{head}<title>{e(self.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>"]
        parts += [f"<h1>{e(self.title)}</h1>"]
        parts += [t.to_html() for t in self.tables]
        if self.invalid:
            items = "".join(f"<li><b>{e(n)}</b><pre>{e(w)}</pre></li>\n" for n, w in self.invalid)
            parts.append(f"<section>\n<h2>Not scored</h2>\n<ul>\n{items}</ul>\n</section>")
        return "\n".join([*parts, "</body>\n</html>\n"])


def _table(entries: list[tuple[str, TrackScore, ScoreReport]]) -> LeaderboardTable:
    """Rows best first, with the entry's other scores of the same tier and mouse."""

    def others(t: TrackScore, r: ScoreReport) -> dict[tuple[str, str | None], Score]:
        same = [s for s in r.scores if (s.tier, s.mouse) == (t.tier, t.mouse)]
        return {
            (s.metric, s.stimulus_type): s
            for s in same
            if (s.metric, s.stimulus_type) != (t.metric, None)
        }

    columns: dict[tuple[str, str | None], str] = {}
    for _, t, r in entries:
        columns.update({k: s.label for k, s in others(t, r).items()})
    rows, rank, previous = [], 0, math.nan
    best_first = [(math.inf if math.isnan(t.value) else -t.value, n) for n, t, _ in entries]
    ordered = [entries[k] for k in sorted(range(len(entries)), key=best_first.__getitem__)]
    for place, (name, t, r) in enumerate(ordered, 1):
        rank, previous = (rank, previous) if t.value == previous else (place, t.value)
        found = others(t, r)
        extra = [found[k].value if k in found else math.nan for k in columns]
        rows.append((None if math.isnan(t.value) else rank, name, t.value, *extra))
    t = entries[0][1]
    head = ("rank", "submission", LABELS[t.metric], *columns.values())
    return LeaderboardTable(
        track=t.track, tier=t.tier, mouse=t.mouse, columns=head, rows=tuple(rows)
    )


def _is_entry(path: pathlib.Path) -> bool:
    return not path.name.startswith(".") and (path.is_dir() or path.name.endswith(_SUFFIXES))


def leaderboard(
    directory: str | os.PathLike[str],
    truth_store: Any,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    title: str = "SENSORIUM leaderboard",
    mice: Sequence[str] | None = None,
    skip: int = sub.DEFAULT_SKIP,
    scored_frames: str | None = None,
    strict_neuron_order: bool = True,
    stimulus_types: Mapping[str, Sequence[str]] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Leaderboard:
    """Score every submission in a folder and rank them per track, as the competitions did.

    Every subfolder, zip, CSV or parquet file of ``directory`` (except ``out_dir`` and names
    starting with ".") is one entry, named by its file name and scored with
    :func:`score_submission`; entries that are invalid or cannot be scored are listed with the
    reason. Writes ``leaderboard.md`` (a Markdown table per track, tier and, in 2022, mouse) and
    a self-contained ``leaderboard.html`` to ``out_dir`` (default ``directory``). The other
    arguments are those of :func:`score_submission`; with ``scored_frames=None`` each 2023
    entry is scored on the frames its rows hold (the convention is detected per entry), so pass
    ``"competition"`` or ``"kit-head"`` to hold every entry to one.
    """
    folder = pathlib.Path(directory)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder of submissions")
    out = folder if out_dir is None else pathlib.Path(out_dir)
    paths = [c for c in sorted(folder.iterdir()) if _is_entry(c) and c.resolve() != out.resolve()]
    if not paths:
        raise ScoringError(f"{folder}: no submissions (subfolders, zip, CSV or parquet files)")
    score = functools.partial(
        score_submission,
        truth_store=truth_store,
        mice=mice,
        skip=skip,
        scored_frames=scored_frames,
        strict_neuron_order=strict_neuron_order,
        stimulus_types=stimulus_types,
        storage_options=storage_options,
    )
    groups: dict[tuple[str, str, str | None], list[tuple[str, TrackScore, ScoreReport]]] = {}
    invalid = []
    for path in paths:
        try:
            report = score(path)
        except (SensoriumDataError, ValueError, OSError) as exc:
            invalid.append((path.name, str(exc)))
            continue
        for t in report.tracks:
            groups.setdefault((t.track, t.tier, t.mouse), []).append((path.name, t, report))
    order = sorted(groups, key=lambda k: (list(TRACKS).index(k[0]), _TIERS.index(k[1]), str(k[2])))
    board = Leaderboard(
        title=title, tables=tuple(_table(groups[k]) for k in order), invalid=tuple(invalid)
    )
    out.mkdir(parents=True, exist_ok=True)
    files = (out / "leaderboard.md", out / "leaderboard.html")
    files[0].write_text(board.to_markdown(), encoding="utf-8")
    files[1].write_text(board.to_html(), encoding="utf-8")
    return dataclasses.replace(board, files=files)
