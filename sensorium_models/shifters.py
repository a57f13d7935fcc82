"""Shifters: map the eye position to a global shift of a mouse's readout positions."""

from __future__ import annotations

import torch
from torch import nn

from sensorium_models.mlp import linear_stack, weight_l2

__all__ = ["MLPShifter"]


class MLPShifter(nn.Module):
    """One mouse's shifter: an MLP ``2 -> 5 -> 5 -> 2`` with tanh after every layer.

    The final tanh keeps the shift within the readout grid's ``[-1, 1]`` units. This is the
    kits' ``MLPShifter`` entry for one data key (``shift_layers=3``,
    ``hidden_channels_shifter=5``); the multi-mouse container is the encoder's ModuleDict.

    Parameters
    ----------
    input_features : int
        Inputs per sample (2: horizontal and vertical pupil position).
    hidden_features : int
        Units of each hidden layer.
    layers : int
        Linear layers (``layers - 1`` hidden ones); 1 is an affine map and tanh.
    gamma_shifter : float
        Weight of an L2 penalty of the weights (0 in the kits, whose penalty is 0).
    """

    def __init__(
        self,
        *,
        input_features: int = 2,
        hidden_features: int = 5,
        layers: int = 3,
        gamma_shifter: float = 0.0,
    ):
        super().__init__()
        if layers < 1:
            raise ValueError(f"MLPShifter needs at least 1 layer, got layers={layers}")
        self.input_features = input_features
        self.gamma_shifter = gamma_shifter
        parts = linear_stack(input_features, hidden_features, 2, layers, nn.Tanh)
        self.mlp = nn.Sequential(*parts, nn.Tanh())

    def forward(self, pupil_center: torch.Tensor) -> torch.Tensor:
        """Map ``(..., 2)`` pupil positions to ``(..., 2)`` shifts."""
        if pupil_center.shape[-1] != self.input_features:
            raise ValueError(
                f"MLPShifter expects (..., {self.input_features}) pupil positions, "
                f"got {tuple(pupil_center.shape)}"
            )
        return self.mlp(pupil_center)

    def regularizer(self) -> torch.Tensor:
        """``gamma_shifter`` times the summed squared weights (zero by default)."""
        return self.gamma_shifter * weight_l2(self.mlp)
