"""The small MLPs of the shifters and modulators, and their weight penalty."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["linear_stack", "weight_l2"]


def linear_stack(
    in_features: int,
    hidden_features: int,
    out_features: int,
    layers: int,
    activation: Callable[[], nn.Module],
) -> list[nn.Module]:
    """``layers`` linear layers, ``in -> hidden -> ... -> out``, with ``activation()`` between
    them (none after the last)."""
    parts: list[nn.Module] = []
    previous = in_features
    for _ in range(layers - 1):
        parts += [nn.Linear(previous, hidden_features), activation()]
        previous = hidden_features
    return [*parts, nn.Linear(previous, out_features)]


def weight_l2(module: nn.Module) -> torch.Tensor:
    """Summed squared weights (not biases) of the linear layers of ``module``."""
    weights = [m.weight for m in module.modules() if isinstance(m, nn.Linear)]
    return torch.stack([w.pow(2).sum() for w in weights]).sum()
