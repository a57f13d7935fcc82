"""The SENSORIUM 2022/2023 baseline models, trained and evaluated on ``sensorium_data`` stores.

The configurations (:mod:`~sensorium_models.configs`, :class:`TrainConfig`) and the errors do not
import torch; the modules, training and evaluation (``Encoder``, ``train``, ``evaluate``, ...)
are imported on first use.
"""

from sensorium_models.configs import (
    NAMED_CONFIGS,
    ModelConfig,
    MouseInfo,
    build_model,
    get_config,
)
from sensorium_models.errors import (
    KitCheckpointError,
    ModelConfigError,
    ModelInputError,
    TrainingError,
    UnknownMouseError,
)
from sensorium_models.train_config import TrainConfig

_TORCH_API = {
    "Encoder": "encoders",
    "FiringRateEncoder": "encoders",
    "VideoEncoder": "encoders",
    "TrainResult": "training",
    "KIT_CHECKPOINTS": "kit",
    "load_checkpoint": "checkpoints",
    "load_kit_checkpoint": "kit",
    "load_model": "checkpoints",
    "train": "training",
    "evaluate": "evaluation",
    "predict": "evaluation",
    "readout_positions": "inspection",
    "to_kit_state_dict": "kit",
    "write_submission": "evaluation",
}


def __getattr__(name: str) -> object:
    """The torch modules, imported on first use."""
    if name in _TORCH_API:
        import importlib

        return getattr(importlib.import_module(f".{_TORCH_API[name]}", __name__), name)
    raise AttributeError(f"module 'sensorium_models' has no attribute {name!r}")


__all__ = [
    "KIT_CHECKPOINTS",
    "NAMED_CONFIGS",
    "Encoder",
    "FiringRateEncoder",
    "KitCheckpointError",
    "ModelConfig",
    "ModelConfigError",
    "ModelInputError",
    "MouseInfo",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "UnknownMouseError",
    "VideoEncoder",
    "build_model",
    "evaluate",
    "get_config",
    "load_checkpoint",
    "load_kit_checkpoint",
    "load_model",
    "predict",
    "readout_positions",
    "to_kit_state_dict",
    "train",
    "write_submission",
]
