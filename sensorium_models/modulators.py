"""Behaviour modulators: a multiplicative gain per neuron from the mouse's behaviour.

The 2022 kit's ``sensorium-plus`` models feed the behaviour to the core as constant image
channels. On the synthetic mice of ``benchmarks/training.py``, whose behaviour scales each
neuron's rate, that model learns the gain in its first epoch, then hardly learns the stimulus
and scores below the stimulus-only model (README, "Baseline models"). A modulator keeps the
two paths apart, like the modulator network of Sinz et al. (2018, NeurIPS): the core sees
only the stimulus, and the rate of neuron ``n`` is multiplied by ``exp(mlp(behavior))[n]``.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from sensorium_models.mlp import linear_stack, weight_l2

__all__ = ["BehaviorModulator"]

#: Bound of the log gain: keeps the gain and its gradient finite, far beyond any real gain.
LOG_GAIN_BOUND = 10.0


class BehaviorModulator(nn.Module):
    """One mouse's modulator: an MLP ``behavior -> hidden -> ... -> neurons``, then ``exp``.

    The last layer starts at zero, so an untrained modulator is a gain of exactly 1 and the
    model starts as its stimulus-only counterpart.

    Parameters
    ----------
    n_neurons : int
        Neurons of the mouse (one gain each).
    input_features : int
        Behaviour values per sample (3 in 2022: pupil dilation, its derivative, running speed).
    hidden_features : int
        Units of each hidden layer (ReLU).
    layers : int
        Linear layers (``layers - 1`` hidden ones); 1 is a log-linear gain.
    gamma_modulator : float
        Weight of an L2 penalty of the weights (0 by default).
    """

    def __init__(
        self,
        *,
        n_neurons: int,
        input_features: int = 3,
        hidden_features: int = 10,
        layers: int = 2,
        gamma_modulator: float = 0.0,
    ):
        super().__init__()
        if layers < 1:
            raise ValueError(f"BehaviorModulator needs at least 1 layer, got layers={layers}")
        self.input_features = input_features
        self.gamma_modulator = gamma_modulator
        parts = linear_stack(input_features, hidden_features, n_neurons, layers, nn.ReLU)
        last = cast(nn.Linear, parts[-1])
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(*parts)

    def forward(self, behavior: torch.Tensor) -> torch.Tensor:
        """Gains ``(..., n_neurons)`` (positive) of ``(..., input_features)`` behaviour."""
        if behavior.shape[-1] != self.input_features:
            raise ValueError(
                f"BehaviorModulator expects (..., {self.input_features}) behaviour, "
                f"got {tuple(behavior.shape)}"
            )
        return torch.exp(self.mlp(behavior).clamp(-LOG_GAIN_BOUND, LOG_GAIN_BOUND))

    def regularizer(self) -> torch.Tensor:
        """``gamma_modulator`` times the summed squared weights (zero by default)."""
        return self.gamma_modulator * weight_l2(self.mlp)
