"""Help text of the two command lines: every option's default shown, examples kept as written."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["HelpFormatter", "cli_words", "examples"]


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
