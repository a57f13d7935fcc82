"""The errors of ``sensorium_models`` (no torch needed to import or catch them)."""

from __future__ import annotations

from sensorium_data.errors import SensoriumDataError

__all__ = [
    "KitCheckpointError",
    "ModelConfigError",
    "ModelInputError",
    "TrainingError",
    "UnknownMouseError",
]


class ModelConfigError(ValueError):
    """An unknown configuration name or field, or a hyper-parameter out of range."""


class ModelInputError(ValueError):
    """Model inputs whose shapes do not fit the model (channels, frames, batch)."""


class UnknownMouseError(KeyError):
    """A mouse the model has no readout for."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class TrainingError(SensoriumDataError, ValueError):
    """A training run that cannot start or continue (bad data, a foreign checkpoint)."""


class KitCheckpointError(SensoriumDataError, ValueError):
    """A kit checkpoint that cannot be fetched, or whose tensors do not fit the model."""
