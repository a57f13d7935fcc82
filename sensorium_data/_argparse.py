"""Help text of the two command lines: every option's default shown, examples kept as written."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["HelpFormatter", "add_scored_frames", "cli_words", "examples"]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to an option's help unless it says its default already, or has
    none worth showing (``None``, ``False``); descriptions and epilogs (the examples) are printed
    as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or "default" in text.lower()
            or default is None
            or default is False
            or default is argparse.SUPPRESS
        ):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else default
        return f"{text} (default: {str(shown).replace('%', '%%')})"


#: Python keyword arguments in library messages -> the flags a command-line user types.
_FLAGS = {
    "pass overwrite=True": "pass --overwrite",
    "overwrite=True": "--overwrite",
    "pass mouse=...": "pass --mouse",
}


def cli_words(message: Any) -> str:
    """A library error message in the command line's words (``--overwrite``, not
    ``overwrite=True``)."""
    text = str(message)
    for words, flag in _FLAGS.items():
        text = text.replace(words, flag)
    return text


def examples(*lines: str) -> dict[str, Any]:
    """``epilog`` and ``formatter_class`` keywords for ``add_parser``: the help ends with the
    example command lines."""
    return {
        "epilog": "example:\n" + "\n".join(f"  {line}" for line in lines),
        "formatter_class": HelpFormatter,
    }


def add_scored_frames(p: argparse.ArgumentParser, *, detect: bool) -> None:
    """``--scored-frames``: the 2023 convention of :mod:`sensorium_data.conventions`; with
    ``detect`` its default is None (found from the submission's rows)."""
    from .conventions import DEFAULT_SCORED_FRAMES, SCORED_FRAMES

    default = "detected from the rows' lengths" if detect else DEFAULT_SCORED_FRAMES
    p.add_argument(
        "--scored-frames",
        choices=SCORED_FRAMES,
        default=None if detect else DEFAULT_SCORED_FRAMES,
        help=(
            "2023: where a trial's scored frames end: 'competition' frames 50..L-2 of each "
            "NaN-padded trial (249 of 300, as the official solution files), 'kit-head' 50..L-1 "
            f"(250, the 2023 kit today) (default: {default})"
        ),
    )
