"""Checks of ``make_loaders``' arguments, made when it is called: one clear error per mistake.

A mistake in a loader's arguments otherwise shows up late and far away: a misspelled option
(``include_behaviour=True``) as an unexpected ``DataLoader`` argument, ``mice="90154-5-14"`` as
"no mouse '9'", a misspelled tier as an empty result, ``frames`` on a 2022 store not at all. The
errors here name the argument and say what was expected.
"""

from __future__ import annotations

import difflib
import inspect
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import SensoriumDataError

__all__ = [
    "check_frame_options",
    "check_loader_kwargs",
    "check_tiers",
    "parse_names",
    "parse_optional_int",
    "parse_positive_int",
]

#: The tier names of the releases (2022 and 2023). A tier that a store lacks but that is one of
#: these (``final_test`` in a pre-training mouse) is simply left out, as the kits do.
OFFICIAL_TIERS = frozenset(
    {
        "train",
        "validation",
        "test",
        "final_test",
        "oracle",
        "live_test_main",
        "live_test_bonus",
        "final_test_main",
        "final_test_bonus",
    }
)
#: DataLoader arguments that make_loaders sets itself.
RESERVED = ("dataset", "batch_size", "shuffle", "sampler", "batch_sampler", "collate_fn")


class LoaderArgumentError(SensoriumDataError, ValueError):
    """An argument of :func:`~sensorium_data.make_loaders` that cannot be used."""


def parse_names(name: str, value: Any) -> list[str] | None:
    """``None`` or a list of strings; a bare string is refused (it would be read by letter)."""
    if value is None:
        return None
    if isinstance(value, str):
        raise LoaderArgumentError(
            f"{name} must be a list of names, got the string {value!r}; use {name}=[{value!r}]"
        )
    if not isinstance(value, Iterable) or not all(isinstance(v, str) for v in value):
        raise LoaderArgumentError(f"{name} must be a list of names (strings), got {value!r}")
    return list(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def parse_positive_int(name: str, value: Any) -> int:
    """An integer >= 1 (``2.5``, ``"64"`` and ``True`` are refused)."""
    if not _is_int(value) or value < 1:
        raise LoaderArgumentError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def parse_optional_int(name: str, value: Any, minimum: int) -> int | None:
    """``None`` or an integer >= ``minimum``."""
    if value is None:
        return None
    if not _is_int(value) or value < minimum:
        raise LoaderArgumentError(f"{name} must be None or an integer >= {minimum}, got {value!r}")
    return int(value)


def check_loader_kwargs(kwargs: Mapping[str, Any], own: Sequence[str]) -> None:
    """Every extra keyword must be a ``DataLoader`` argument that make_loaders leaves free.

    ``own`` are make_loaders' own option names, offered as suggestions for a misspelling.
    """
    from torch.utils.data import DataLoader

    accepted = set(inspect.signature(DataLoader.__init__).parameters) - {"self"}
    for key in kwargs:
        if key in RESERVED:
            raise LoaderArgumentError(
                f"{key} is set by make_loaders itself (batches are made by its block-shuffling "
                "sampler); pass make_loaders' own options instead"
            )
        if key not in accepted:
            close = difflib.get_close_matches(key, [*own, *sorted(accepted)], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            free = ", ".join(sorted(accepted - set(RESERVED)))
            raise LoaderArgumentError(
                f"make_loaders has no option {key!r}{hint}; its options: {', '.join(own)}; "
                f"other keywords go to torch's DataLoader: {free}"
            )


def check_tiers(tiers: Sequence[str] | None, present: Mapping[str, Sequence[str]]) -> None:
    """Requested tiers must exist: in some mouse, or be an official tier name.

    ``present``: ``{mouse: its tiers}``. ``none`` (trials not meant for training or scoring) is
    refused by name; an unknown name lists the tiers the mice have.
    """
    if tiers is None:
        return
    found = sorted({t for ts in present.values() for t in ts if t != "none"})
    for tier in tiers:
        if tier == "none":
            raise LoaderArgumentError(
                "tiers: 'none' holds trials that are neither for training nor for scoring; "
                f"the mice's tiers: {found}"
            )
        if tier not in found and tier not in OFFICIAL_TIERS:
            close = difflib.get_close_matches(tier, found, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise LoaderArgumentError(
                f"tiers: no mouse has a tier {tier!r}{hint}; the mice's tiers: {found}"
            )


def check_frame_options(kinds: Mapping[str, str], options: Mapping[str, Any]) -> None:
    """``frames``, ``frame_offset`` and ``max_frame`` are for 2023 (dynamic) mice only."""
    given = [name for name, value in options.items() if value is not None]
    if given and kinds and all(kind == "static" for kind in kinds.values()):
        raise LoaderArgumentError(
            f"{', '.join(given)}: frame options apply to 2023 (dynamic) mice; "
            f"{', '.join(kinds)} {'is a' if len(kinds) == 1 else 'are'} 2022 (static) "
            f"{'mouse' if len(kinds) == 1 else 'mice'}"
        )


def check_windows(
    mouse: str,
    tier: str,
    trials: Sequence[int],
    usable: Sequence[int],
    *,
    frames: int | None,
    frame_offset: int | None,
    scored_frames: str,
) -> None:
    """Every trial of a tier can give a window of ``frames`` frames (from ``frame_offset``).

    ``usable`` holds each trial's frames under the ``scored_frames`` convention (its valid
    frames, less the last one of a NaN-padded trial under ``"competition"``).
    """
    if frames is None:
        return
    start = frame_offset or 0
    short = [(int(t), int(u)) for t, u in zip(trials, usable, strict=True) if start + frames > u]
    if not short:
        return
    shown = ", ".join(f"trial {t} ({u} frames)" for t, u in short[:3])
    more = f" and {len(short) - 3} more" if len(short) > 3 else ""
    window = f"frame_offset={start} + frames={frames}" if frame_offset else f"frames={frames}"
    raise LoaderArgumentError(
        f"{window}: {len(short)} of the {len(trials)} {tier!r} trials of mouse {mouse} are "
        f"shorter: {shown}{more} (usable frames with scored_frames={scored_frames!r}); "
        "pass a smaller frames, or frames=None for whole trials"
    )


def check_device_options(device: Any, loader_kwargs: Mapping[str, Any]) -> None:
    """``device=`` gathers batches on the device in this process (it implies ``in_memory``):
    no worker processes, no pinned host copies."""
    import torch

    try:
        torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise LoaderArgumentError(f"device: not a torch device: {device!r} ({exc})") from None
    if loader_kwargs.get("num_workers"):
        raise LoaderArgumentError(
            f"num_workers={loader_kwargs['num_workers']!r} with device: batches are gathered on "
            "the device in this process; leave num_workers at 0"
        )
    if loader_kwargs.get("pin_memory"):
        raise LoaderArgumentError(
            "pin_memory=True with device: batches are made on the device, there is no host "
            "copy to pin"
        )
