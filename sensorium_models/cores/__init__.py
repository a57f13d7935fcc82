"""Cores: shared feature extractors, one module each."""

from sensorium_models.cores.base import Core
from sensorium_models.cores.factorised3d import Factorised3dCore
from sensorium_models.cores.gru import ConvGRUCell, GRUCore
from sensorium_models.cores.rotation2d import RotationEquivariant2dCore
from sensorium_models.cores.stacked2d import DepthSeparableConv2d, Stacked2dCore

__all__ = [
    "ConvGRUCell",
    "Core",
    "DepthSeparableConv2d",
    "Factorised3dCore",
    "GRUCore",
    "RotationEquivariant2dCore",
    "Stacked2dCore",
]
