"""The 2022 baselines' core: a stack of 2D convolutions read out at its last layer."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from sensorium_models.cores.base import Core, init_conv
from sensorium_models.regularizers import laplace_l2_norm

__all__ = ["DepthSeparableConv2d", "Stacked2dCore"]


class DepthSeparableConv2d(nn.Sequential):
    """1x1 convolution, depthwise ``k x k`` convolution, 1x1 convolution ("same" padding).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    kernel_size : int
        Size of the depthwise kernel (odd, so that "same" padding keeps the map's size).
    bias : bool
        Whether the three convolutions learn a bias.
    """

    def __init__(self, *, in_channels: int, out_channels: int, kernel_size: int, bias: bool):
        super().__init__(
            OrderedDict(
                in_depth_conv=nn.Conv2d(in_channels, out_channels, 1, bias=bias),
                spatial_conv=nn.Conv2d(
                    out_channels,
                    out_channels,
                    kernel_size,
                    padding=kernel_size // 2,
                    groups=out_channels,
                    bias=bias,
                ),
                out_depth_conv=nn.Conv2d(out_channels, out_channels, 1, bias=bias),
            )
        )


class Stacked2dCore(Core):
    """Stacked 2D convolutional core of the SENSORIUM 2022 baselines.

    Layer 0 is a ``input_kernel x input_kernel`` convolution (no padding unless
    ``pad_input``), then ``layers - 1`` layers of ``hidden_kernel`` convolutions with "same"
    padding (depth-separable: 1x1 -> depthwise -> 1x1, unless ``depth_separable=False``).
    Every layer is followed by BatchNorm and an ELU; the output is the last layer.

    Parameters
    ----------
    input_channels : int
        Channels of the input images (1, or 4 / 6 with behaviour channels).
    hidden_channels : int
        Channels of every layer (64 in the baselines).
    input_kernel, hidden_kernel : int
        Kernel sizes (9 and 7 in the baselines); ``hidden_kernel`` must be odd.
    layers : int
        Number of layers including the first (4 for the SOTA baseline, 3 for the LN one).
    gamma_input : float
        Weight of the normalised Laplace L2 penalty of the first layer's kernels.
    depth_separable : bool
        Depth-separable hidden layers (the baselines) or full convolutions.
    linear : bool
        Leave out every nonlinearity (the "LN" baseline): in eval mode the core is affine.
    pad_input : bool
        Zero-pad the first layer so that the map keeps the input's size.
    momentum : float
        BatchNorm momentum (PyTorch convention; the 2022 kit uses 0.9).
    batch_norm : bool
        Follow each convolution by BatchNorm (then the convolutions learn no bias, unless
        ``bias``).
    bias : bool
        Give the later layers' convolutions a bias even with BatchNorm (the first layer's has
        none with BatchNorm), as neuralpredictors' cores do with ``bias=True``: the 2022 kit's
        ``core_bias=True`` since its commit a31226d (2024-03); its published checkpoints have
        no core biases.

    Notes
    -----
    The spatial output size is ``(H - input_kernel + 1, W - input_kernel + 1)`` without
    ``pad_input``, e.g. 28 x 56 for 36 x 64 images.
    """

    def __init__(
        self,
        *,
        input_channels: int,
        hidden_channels: int = 64,
        input_kernel: int = 9,
        hidden_kernel: int = 7,
        layers: int = 4,
        gamma_input: float = 6.3831,
        depth_separable: bool = True,
        linear: bool = False,
        pad_input: bool = False,
        momentum: float = 0.9,
        batch_norm: bool = True,
        bias: bool = False,
    ):
        super().__init__()
        if layers < 1:
            raise ValueError(f"Stacked2dCore needs at least 1 layer, got layers={layers}")
        if hidden_kernel % 2 != 1:
            raise ValueError(f"hidden_kernel must be odd for 'same' padding, got {hidden_kernel}")
        self.input_channels = input_channels
        self.hidden_channels = hidden_channels
        self.gamma_input = gamma_input
        self.linear = linear
        self.features = nn.Sequential()
        first = nn.Conv2d(
            input_channels,
            hidden_channels,
            input_kernel,
            padding=input_kernel // 2 if pad_input else 0,
            bias=not batch_norm,
        )
        self.features.add_module("layer0", self._layer("conv", first, momentum, batch_norm))
        for index in range(1, layers):
            conv: nn.Module
            if depth_separable:
                conv = DepthSeparableConv2d(
                    in_channels=hidden_channels,
                    out_channels=hidden_channels,
                    kernel_size=hidden_kernel,
                    bias=bias or not batch_norm,
                )
            else:
                conv = nn.Conv2d(
                    hidden_channels,
                    hidden_channels,
                    hidden_kernel,
                    padding=hidden_kernel // 2,
                    bias=bias or not batch_norm,
                )
            name = "ds_conv" if depth_separable else "conv"
            self.features.add_module(f"layer{index}", self._layer(name, conv, momentum, batch_norm))
        self.apply(init_conv)

    def _layer(
        self, name: str, conv: nn.Module, momentum: float, batch_norm: bool
    ) -> nn.Sequential:
        parts: OrderedDict[str, nn.Module] = OrderedDict({name: conv})
        if batch_norm:
            parts["norm"] = nn.BatchNorm2d(self.hidden_channels, momentum=momentum)
        if not self.linear:
            parts["nonlin"] = nn.ELU()
        return nn.Sequential(parts)

    @property
    def out_channels(self) -> int:
        """Channels of the output feature map."""
        return self.hidden_channels

    @property
    def first_layer_weight(self) -> torch.Tensor:
        """Kernels of the first convolution, ``(hidden, input_channels, k, k)``."""
        return self.features.get_parameter("layer0.conv.weight")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(B, C, H, W)`` to features ``(B, hidden_channels, H', W')``."""
        return self.features(x)

    def regularizer(self) -> torch.Tensor:
        """``gamma_input`` times the normalised Laplace L2 penalty of the first layer."""
        return self.gamma_input * laplace_l2_norm(self.first_layer_weight)
