"""Cores: shared feature extractors, one module each."""

from .base import Core
from .factorised3d import Factorised3dCore
from .gru import ConvGRUCell, GRUCore
from .stacked2d import DepthSeparableConv2d, Stacked2dCore

__all__ = [
    "ConvGRUCell",
    "Core",
    "DepthSeparableConv2d",
    "Factorised3dCore",
    "GRUCore",
    "Stacked2dCore",
]
