"""The SENSORIUM 2022/2023 baseline models, trained and evaluated on ``sensorium_data`` stores.

``sensorium_models.configs`` (named configurations, :func:`build_model`) does not import torch;
the modules themselves (``Encoder``, ``FiringRateEncoder``, ``VideoEncoder``) are imported on
first use.
"""

from .configs import (
    NAMED_CONFIGS,
    ModelConfig,
    ModelConfigError,
    ModelInputError,
    MouseInfo,
    UnknownMouseError,
    build_model,
    get_config,
)

_TORCH_API = {
    "Encoder": "encoders",
    "FiringRateEncoder": "encoders",
    "VideoEncoder": "encoders",
    "TrainConfig": "training",
    "TrainResult": "training",
    "TrainingError": "training",
    "load_checkpoint": "training",
    "load_model": "training",
    "train": "training",
    "evaluate": "evaluation",
    "predict": "evaluation",
    "write_submission": "evaluation",
}


def __getattr__(name: str) -> object:
    """The torch modules, imported on first use."""
    if name in _TORCH_API:
        import importlib

        return getattr(importlib.import_module(f".{_TORCH_API[name]}", __name__), name)
    raise AttributeError(f"module 'sensorium_models' has no attribute {name!r}")


__all__ = [
    "NAMED_CONFIGS",
    "Encoder",
    "FiringRateEncoder",
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
    "load_model",
    "predict",
    "train",
    "write_submission",
]
