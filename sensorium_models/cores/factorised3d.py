"""The 2023 "factorised" baseline's core: space-then-time 3D convolutions, time unpadded."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from sensorium_models.cores.base import Core, init_conv
from sensorium_models.regularizers import laplace_l2_norm, temporal_laplace_l2_norm

__all__ = ["Factorised3dCore"]


class Factorised3dCore(Core):
    """Factorised 3D convolutional core of the SENSORIUM 2023 baseline.

    Each layer is a spatial ``(1, k, k)`` convolution, then a temporal ``(t, 1, 1)``
    convolution, BatchNorm3d and ELU. Time is never padded, so every layer shortens the
    video: ``T_out = T - (temporal_input_kernel - 1) - (layers - 1) * (temporal_hidden_kernel
    - 1)`` (``T - 18`` with the defaults). The output frame ``t`` sees input frames up to
    ``t + T - T_out``: it is aligned with the *last* ``T_out`` input frames.

    Parameters
    ----------
    input_channels : int
        Channels of the video (1, or 3 with the two behaviour channels).
    hidden_channels : sequence of int
        Channels of each layer; its length is the number of layers (``(32, 64, 128)``).
    spatial_input_kernel, temporal_input_kernel : int
        First layer's kernel sizes (11 and 11).
    spatial_hidden_kernel, temporal_hidden_kernel : int
        Later layers' kernel sizes (5 and 5).
    gamma_input_spatial : float
        Weight of the normalised Laplace L2 penalty of the first spatial kernels (10).
    gamma_input_temporal : float
        Weight of the normalised temporal Laplace penalty of the first temporal kernels (0.01).
    spatial_padding : bool
        Zero-pad the spatial convolutions ("same" size). The kit does not (``padding=False``),
        so 36 x 64 frames become 18 x 46 with the defaults.
    momentum : float
        BatchNorm momentum (the 2023 kit uses 0.7).
    """

    def __init__(
        self,
        *,
        input_channels: int,
        hidden_channels: Sequence[int] = (32, 64, 128),
        spatial_input_kernel: int = 11,
        temporal_input_kernel: int = 11,
        spatial_hidden_kernel: int = 5,
        temporal_hidden_kernel: int = 5,
        gamma_input_spatial: float = 10.0,
        gamma_input_temporal: float = 0.01,
        spatial_padding: bool = False,
        momentum: float = 0.7,
    ):
        super().__init__()
        channels = tuple(int(c) for c in hidden_channels)
        if not channels:
            raise ValueError("Factorised3dCore needs at least one layer (hidden_channels is empty)")
        self.input_channels = input_channels
        self.hidden_channels = channels
        self.temporal_input_kernel = temporal_input_kernel
        self.temporal_hidden_kernel = temporal_hidden_kernel
        self.gamma_input_spatial = gamma_input_spatial
        self.gamma_input_temporal = gamma_input_temporal
        self.features = nn.Sequential()
        previous = input_channels
        for index, out in enumerate(channels):
            spatial = spatial_input_kernel if index == 0 else spatial_hidden_kernel
            temporal = temporal_input_kernel if index == 0 else temporal_hidden_kernel
            pad = spatial // 2 if spatial_padding else 0
            layer = OrderedDict(
                conv_spatial=nn.Conv3d(previous, out, (1, spatial, spatial), padding=(0, pad, pad)),
                conv_temporal=nn.Conv3d(out, out, (temporal, 1, 1)),
                norm=nn.BatchNorm3d(out, momentum=momentum),
                nonlin=nn.ELU(),
            )
            self.features.add_module(f"layer{index}", nn.Sequential(layer))
            previous = out
        self.apply(init_conv)

    @property
    def out_channels(self) -> int:
        """Channels of the last layer."""
        return self.hidden_channels[-1]

    def frames_out(self, frames: int) -> int:
        """``frames`` minus the frames the unpadded temporal convolutions consume."""
        lost = (self.temporal_input_kernel - 1) + (len(self.hidden_channels) - 1) * (
            self.temporal_hidden_kernel - 1
        )
        return frames - lost

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map videos ``(B, C, T, H, W)`` to features ``(B, K, T_out, H', W')``."""
        if x.ndim != 5:
            raise ValueError(f"Factorised3dCore expects (B, C, T, H, W), got {tuple(x.shape)}")
        if self.frames_out(x.shape[2]) < 1:
            raise ValueError(
                f"a {x.shape[2]}-frame video is too short for this core: it consumes "
                f"{x.shape[2] - self.frames_out(x.shape[2])} frames; give at least "
                f"{x.shape[2] - self.frames_out(x.shape[2]) + 1}"
            )
        return self.features(x)

    def regularizer(self) -> torch.Tensor:
        """Spatial plus temporal smoothness penalty of the first layer's kernels."""
        spatial = laplace_l2_norm(
            self.features.get_parameter("layer0.conv_spatial.weight")[:, :, 0]
        )
        temporal = temporal_laplace_l2_norm(
            self.features.get_parameter("layer0.conv_temporal.weight")[:, :, :, 0, 0]
        )
        return self.gamma_input_spatial * spatial + self.gamma_input_temporal * temporal
