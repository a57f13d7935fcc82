"""What every core provides, and the kits' convolution initialisation."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

__all__ = ["Core", "init_conv"]


class Core(nn.Module, ABC):
    """A shared feature extractor: stimulus in, feature map out.

    Static cores map ``(B, C, H, W)`` to ``(B, K, H', W')``; video cores map
    ``(B, C, T, H, W)`` to ``(B, K, T_out, H', W')`` where ``T_out = frames_out(T)``.
    """

    @property
    @abstractmethod
    def out_channels(self) -> int:
        """Channels ``K`` of the output feature map."""

    @abstractmethod
    def regularizer(self) -> torch.Tensor:
        """Scalar penalty added to the loss (already multiplied by its gamma)."""

    def frames_out(self, frames: int) -> int:
        """Output frames for ``frames`` input frames (static cores: unchanged)."""
        return frames


def init_conv(module: nn.Module) -> None:
    """Xavier-normal weights and zero biases, as the kits initialise their convolutions."""
    if isinstance(module, nn.Conv2d | nn.Conv3d):
        nn.init.xavier_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
