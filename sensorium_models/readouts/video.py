"""Gaussian readout of video feature maps, frame by frame."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sensorium_models.readouts.gaussian import FullGaussian2d

__all__ = ["VideoGaussianReadout"]


class VideoGaussianReadout(nn.Module):
    """A :class:`FullGaussian2d` applied to every frame (time folded into the batch).

    Every frame of every batch element draws its own positions while training, as the 2023
    kit's readout does on the folded batch.

    Parameters
    ----------
    in_channels, n_neurons, coordinates, init_mu_range, init_sigma, bias, gamma_readout, \
grid_hidden_features
        As for :class:`FullGaussian2d` (the 2023 kit: ``init_mu_range=0.2``,
        ``init_sigma=1.0``, ``gamma_readout=0.0``).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        n_neurons: int,
        coordinates: np.ndarray | torch.Tensor | None = None,
        init_mu_range: float = 0.2,
        init_sigma: float = 1.0,
        bias: bool = True,
        gamma_readout: float = 0.0,
        grid_hidden_features: int = 30,
    ):
        super().__init__()
        self.frame_readout = FullGaussian2d(
            in_channels=in_channels,
            n_neurons=n_neurons,
            coordinates=coordinates,
            init_mu_range=init_mu_range,
            init_sigma=init_sigma,
            bias=bias,
            gamma_readout=gamma_readout,
            grid_hidden_features=grid_hidden_features,
        )

    @property
    def n_neurons(self) -> int:
        """Neurons of this mouse."""
        return self.frame_readout.n_neurons

    @property
    def mu(self) -> torch.Tensor:
        """Mean positions ``(N, 2)``."""
        return self.frame_readout.mu

    def forward(
        self, x: torch.Tensor, *, shift: torch.Tensor | None = None, sample: bool | None = None
    ) -> torch.Tensor:
        """Read out ``(B, C, T, H, W)`` into time-major ``(B, T, N)``.

        Parameters
        ----------
        x : torch.Tensor
            Video feature maps.
        shift : torch.Tensor or None
            ``(B, T, 2)`` position shift of each frame.
        sample : bool or None
            See :meth:`FullGaussian2d.sample_grid`.
        """
        if x.ndim != 5:
            raise ValueError(f"VideoGaussianReadout expects (B, C, T, H, W), got {tuple(x.shape)}")
        batch, channels, frames = x.shape[:3]
        flat = x.transpose(1, 2).reshape(batch * frames, channels, *x.shape[-2:])
        if shift is not None:
            if shift.shape != (batch, frames, 2):
                raise ValueError(f"shift must be ({batch}, {frames}, 2), got {tuple(shift.shape)}")
            shift = shift.reshape(batch * frames, 2)
        out = self.frame_readout(flat, shift=shift, sample=sample)
        return out.reshape(batch, frames, -1)

    def initialize_bias(self, mean_activity: torch.Tensor | np.ndarray) -> None:
        """Set the biases to ``mean_activity`` ``(N,)``."""
        self.frame_readout.initialize_bias(mean_activity)

    def regularizer(self) -> torch.Tensor:
        """The frame readout's L1 penalty of the feature weights."""
        return self.frame_readout.regularizer()
