"""How a baseline is trained: :class:`TrainConfig` (no torch needed to build or check one)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

from sensorium_data import metrics

__all__ = ["TrainConfig"]

_YEAR_DEFAULTS = {
    "static": {"optimizer": "adam", "lr": 0.009, "batch_size": 128, "stop_tier": "validation"},
    "dynamic": {"optimizer": "adamw", "lr": 0.005, "batch_size": 8, "stop_tier": "oracle"},
}


def _int_from(low: int, optional: bool = False) -> Callable[[Any], bool]:
    def test(value: Any) -> bool:
        if value is None:
            return optional
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    return test


def _number(low: float, high: float = math.inf, optional: bool = False) -> Callable[[Any], bool]:
    def test(value: Any) -> bool:
        if value is None:
            return optional
        ok = isinstance(value, float | int) and not isinstance(value, bool)
        return ok and low <= value <= high

    return test


_RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("lr", _number(1e-12, optional=True), "a positive number or None"),
    ("optimizer", lambda v: v in (None, "adam", "adamw"), "'adam', 'adamw' or None"),
    ("weight_decay", _number(0.0, optional=True), "a number >= 0 or None"),
    ("batch_size", _int_from(1, optional=True), "an integer >= 1 or None"),
    ("eval_batch_size", _int_from(1, optional=True), "an integer >= 1 or None"),
    ("max_epochs", _int_from(1), "an integer >= 1"),
    ("patience", _int_from(1), "an integer >= 1"),
    ("lr_decay_factor", _number(1e-12, 1 - 1e-12), "in (0, 1)"),
    ("max_lr_decays", _int_from(0), "an integer >= 0"),
    ("tolerance", _number(0.0), "a number >= 0"),
    ("stop_tier", lambda v: v is None or (isinstance(v, str) and bool(v)), "a tier name or None"),
    ("frames", _int_from(1), "an integer >= 1"),
    ("skip", _int_from(0), "an integer >= 0"),
    ("scale", _number(1e-12, optional=True), "a positive number or None"),
    ("seed", _int_from(0), "an integer >= 0"),
    ("device", lambda v: isinstance(v, str) and bool(v), "a device name such as 'auto'"),
    ("amp", lambda v: isinstance(v, bool), "True or False"),
    ("num_workers", _int_from(0), "an integer >= 0"),
    (
        "in_memory",
        lambda v: v in (True, False, "auto", "device"),
        "True, False, 'auto' or 'device'",
    ),
    ("stop_on_collapse", lambda v: isinstance(v, bool), "True or False"),
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How a model is trained (the starter kits' settings by default).

    ``None`` fields take the year's default (:meth:`resolved`): 2022 Adam, lr 0.009, batch 128,
    stopping on ``validation``; 2023 AdamW, lr 0.005, batch 8, stopping on ``oracle``.

    Attributes
    ----------
    lr, optimizer, weight_decay
        Initial learning rate; ``"adam"`` or ``"adamw"``; weight decay (default 0 for Adam,
        torch's 0.01 for AdamW).
    batch_size, eval_batch_size
        Training trials per batch; trials per batch when scoring (default: ``batch_size``).
    max_epochs
        Upper bound on epochs (one epoch = ``LongCycler`` over every mouse's train tier).
    patience, lr_decay_factor, max_lr_decays, tolerance
        Early stopping: epochs without an improvement of more than ``tolerance``, then restore
        the best weights and multiply the lr by ``lr_decay_factor``; stop after
        ``max_lr_decays`` decays.
    stop_tier
        Tier whose single-trial correlation (neurons of all mice pooled, as the kits' validation
        metric) decides early stopping; 2023 falls back to ``validation`` when no mouse has an
        ``oracle`` tier.
    frames
        2023: training window length (the kits use 80); scoring runs on whole trials.
    skip
        2023: unscored first frames of a trial when scoring the stop tier (50, the official
        count; smaller for short synthetic trials).
    scale
        Image scale; ``None``: 0.25 for images taller than 72 px, else 1.0.
    seed
        Model initialisation, batch order, random windows and readout sampling.
    device, amp
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``, ...; mixed precision
        (bfloat16, else float16 with a gradient scaler), used on CUDA only.
    num_workers, in_memory
        DataLoader worker processes (0: the loader reads ahead in a background thread); the
        loaders' ``in_memory`` (``"auto"``: read each mouse's arrays once when they fit in 2 GiB;
        ``False``: stream every batch from the store; ``"device"``: hold each mouse's arrays on
        the training device and gather batches there, see ``make_loaders(device=...)``).
    stop_on_collapse
        Stop (as finished) after an epoch that leaves a mouse's readout collapsed: more than 90%
        of its positions at the edge of the feature map
        (:func:`sensorium_models.training.readout_edge_share`). Such a run rarely recovers;
        the warning is logged either way.
    """

    lr: float | None = None
    optimizer: str | None = None
    weight_decay: float | None = None
    batch_size: int | None = None
    eval_batch_size: int | None = None
    max_epochs: int = 200
    patience: int = 5
    lr_decay_factor: float = 0.3
    max_lr_decays: int = 4
    tolerance: float = 1e-6
    stop_tier: str | None = None
    frames: int = 80
    skip: int = metrics.SKIP
    scale: float | None = None
    seed: int = 42
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    in_memory: bool | str = "auto"
    stop_on_collapse: bool = False

    def __post_init__(self) -> None:
        for name, test, expected in _RULES:
            value = getattr(self, name)
            if not test(value):
                raise ValueError(f"TrainConfig.{name} must be {expected}, got {value!r}")

    def resolved(self, kind: str) -> TrainConfig:
        """A copy with the year's defaults in place of ``None`` (``kind``: static/dynamic)."""
        filled: dict[str, Any] = {
            k: v for k, v in _YEAR_DEFAULTS[kind].items() if getattr(self, k) is None
        }
        out = dataclasses.replace(self, **filled)
        if out.weight_decay is None:
            out = dataclasses.replace(out, weight_decay=0.0 if out.optimizer == "adam" else 0.01)
        if out.eval_batch_size is None:
            out = dataclasses.replace(out, eval_batch_size=out.batch_size)
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)
