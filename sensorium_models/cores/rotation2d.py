"""The 2023 kit's rotation-equivariant 2D core (Ecker et al. 2019), on Hermite-function kernels.

Every kernel is a combination of 2D Hermite functions; rotating the combination's coefficients
rotates the kernel exactly, so each learned feature is computed at ``num_rotations`` angles.
Output channels are rotation-major (channel ``r * hidden + f`` is feature ``f`` at angle
``r * 2 pi / num_rotations``), and BatchNorm shares its statistics and parameters across the
rotations of a feature. The arithmetic follows neuralpredictors' ``hermite.py`` and
``RotationEquivariant2dCore`` step by step (``tests/test_kit_equivalence_2023.py`` compares).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sensorium_models.cores.base import Core
from sensorium_models.regularizers import laplace_l2_norm

__all__ = ["HermiteConv2d", "RotationEquivariant2dCore", "RotationEquivariantBatchNorm2d"]


def _hermite_coefficients(mu: float, nu: float) -> np.ndarray:
    nur = np.arange(nu + 1)
    num = math.gamma(mu + nu + 1) * math.gamma(nu + 1) * ((-2.0) ** (nu - nur))
    denom = (
        np.array([math.gamma(mu + 1 + r) for r in nur])
        * np.array([math.gamma(1 + r) for r in nur])
        * np.array([math.gamma(nu + 1 - r) for r in nur])
    )
    return num / denom


def hermite_2d(n: int, npts: int, xvalmax: float) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The first ``n`` ranks of 2D Hermite functions on an ``npts`` grid over
    ``[-xvalmax, xvalmax]`` (shrunk by ``1 - 1/npts``), each of unit norm.

    Returns the basis ``(n (n + 1) / 2, npts, npts)``, each function's kind (``"z"``:
    rotationally symmetric, ``"r"``/``"i"``: real and imaginary part of a quadrature pair)
    and its angular frequency ``mu``.
    """
    xvalmax *= 1 - 1 / npts
    xvals = np.linspace(-xvalmax, xvalmax, npts, endpoint=True)[..., None]
    gxv = np.exp(-(xvals**2) / 4)
    gaussian = np.dot(gxv, gxv.T)
    mu = np.array([])
    nu = np.array([])
    desc: list[str] = []
    for rank in range(n):
        muadd = np.sort(np.abs(np.arange(-rank, rank + 0.1, 2)))
        mu = np.hstack([mu, muadd])
        nu = np.hstack([nu, (rank - muadd) / 2])
        if not rank % 2:
            desc.append("z")
        desc += ["r", "i"] * int(np.floor((rank + 1) / 2))
    theta = np.arctan2(xvals, xvals.T)
    radsq = xvals**2 + xvals.T**2
    basis_set = np.zeros([mu.size, npts, npts])
    for i, (mui, nui, kind) in enumerate(zip(mu, nu, desc, strict=True)):
        radvals = np.polynomial.polynomial.polyval(radsq, _hermite_coefficients(mui, nui))
        basis = gaussian * (radsq ** (mui / 2)) * radvals * np.exp(1j * mui * theta)
        basis /= np.sqrt(
            2 ** (mui + 2 * nui)
            * math.pi
            * math.factorial(int(mui + nui))
            * math.factorial(int(nui))
        )
        if kind == "z":
            basis_set[i] = basis.real / np.sqrt(2)
        elif kind == "r":
            basis_set[i] = basis.real
        else:
            basis_set[i] = basis.imag
    norms = np.sqrt(np.sum(basis_set**2, axis=(1, 2), keepdims=True))
    return basis_set / norms, desc, mu


def rotation_matrix(desc: list[str], mu: np.ndarray, angle: float) -> np.ndarray:
    """The matrix that rotates Hermite coefficients by ``angle`` (radians)."""
    rotation = np.zeros((len(desc), len(desc)))
    for i, (kind, m) in enumerate(zip(desc, mu, strict=True)):
        if kind == "r":
            c, s = np.cos(m * angle), np.sin(m * angle)
            rotation[i : i + 2, i : i + 2] = [[c, s], [-s, c]]
        elif kind == "z":
            rotation[i, i] = 1
    return rotation


class HermiteConv2d(nn.Module):
    """A convolution whose kernels are Hermite combinations, applied at every rotation.

    Parameters
    ----------
    input_features : int
        Input channels (for a hidden layer: features times rotations).
    output_features : int
        Learned features; the output has ``output_features * num_rotations`` channels.
    filter_size : int
        Kernel size; the basis holds ``filter_size (filter_size + 1) / 2`` functions.
    padding : int
        Zero padding.
    num_rotations : int
        Angles per feature.
    upsampling : int
        The kernels are built on a grid ``upsampling`` times finer, then summed down.
    first_layer : bool
        A hidden layer's input channels are rotations of features too: rotating a kernel also
        cycles its input rotations (the first layer's input has none).
    """

    def __init__(
        self,
        *,
        input_features: int,
        output_features: int,
        filter_size: int,
        padding: int,
        num_rotations: int,
        upsampling: int,
        first_layer: bool,
    ):
        super().__init__()
        self.padding = padding
        self.upsampling = upsampling
        self.num_rotations = num_rotations
        self.first_layer = first_layer
        n_coeffs = filter_size * (filter_size + 1) // 2
        self.coeffs = nn.Parameter(torch.empty(n_coeffs, input_features, output_features))
        basis, desc, mu = hermite_2d(
            filter_size, filter_size * upsampling, 2 * np.sqrt(filter_size)
        )
        angles = [i * 2 * math.pi / num_rotations for i in range(num_rotations)]
        rotations = np.stack([rotation_matrix(desc, mu, a) for a in angles])
        # constants of the layer's shape, rebuilt with it: not part of the state
        self.register_buffer("basis", torch.tensor(basis, dtype=torch.float32), persistent=False)
        self.register_buffer(
            "rotations", torch.tensor(rotations, dtype=torch.float32), persistent=False
        )

    def weights_all_rotations(self) -> torch.Tensor:
        """The kernels ``(output_features * num_rotations, input_features, k, k)``."""
        total = self.coeffs.shape[1]
        per_rotation = total // self.num_rotations
        rotated = []
        for i in range(self.num_rotations):
            coeffs = torch.tensordot(self.rotations[i], self.coeffs, dims=([1], [0]))
            w = torch.tensordot(self.basis, coeffs, dims=[[0], [0]])
            if i and not self.first_layer:
                shift = total - i * per_rotation
                w = torch.cat([w[:, :, shift:, :], w[:, :, :shift, :]], dim=2)
            rotated.append(w)
        weights = torch.cat(rotated, dim=3)
        f = self.upsampling
        down = sum(weights[i::f, j::f] for i in range(f) for j in range(f))
        return torch.as_tensor(down).permute(3, 2, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weights_all_rotations(), padding=self.padding)


class RotationEquivariantBatchNorm2d(nn.Module):
    """BatchNorm whose statistics and affine parameters each feature shares across rotations."""

    def __init__(self, num_features: int, num_rotations: int, momentum: float):
        super().__init__()
        self.num_features = num_features
        self.num_rotations = num_rotations
        self.batch_norm = nn.BatchNorm1d(num_features, momentum=momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        r, f = self.num_rotations, self.num_features
        pooled = x.view(b, r, f, h, w).permute(0, 2, 1, 3, 4).reshape(b, f, r * h * w)
        out = self.batch_norm(pooled).view(b, f, r, h, w).permute(0, 2, 1, 3, 4)
        return out.reshape(b, r * f, h, w)


class RotationEquivariant2dCore(Core):
    """The 2023 kit's GRU-baseline frame core: Hermite convolutions at ``num_rotations`` angles.

    A first layer of ``input_kernel`` kernels (no padding unless ``pad_input``), then
    ``layers - 1`` layers of ``hidden_kernel`` kernels with "same" padding; each followed by
    rotation-shared BatchNorm and, except the last (the kit's ``final_nonlinearity=False``),
    an ELU. The output has ``hidden_channels * num_rotations`` channels.

    Parameters
    ----------
    input_channels : int
        Channels of each frame (3: the video and 2 behaviour channels).
    hidden_channels : int
        Learned features per layer (8 in the kit; 64 channels with 8 rotations).
    input_kernel, hidden_kernel : int
        Kernel sizes (9 and 7).
    layers : int
        Layers, the first included (4).
    num_rotations : int
        Angles per feature (8).
    gamma_input : float
        Weight of the Laplace L2 penalty of the first layer's kernels (all rotations; 500).
    gamma_hidden : float
        Weight of the group-sparsity penalty of the later layers' kernels (500000).
    momentum : float
        BatchNorm momentum (PyTorch convention; 0.9 in the kit).
    pad_input : bool
        Zero-pad the first layer.
    upsampling : int
        Fineness of the grid the kernels are built on (2).
    """

    def __init__(
        self,
        *,
        input_channels: int,
        hidden_channels: int = 8,
        input_kernel: int = 9,
        hidden_kernel: int = 7,
        layers: int = 4,
        num_rotations: int = 8,
        gamma_input: float = 500.0,
        gamma_hidden: float = 500_000.0,
        momentum: float = 0.9,
        pad_input: bool = False,
        upsampling: int = 2,
    ):
        super().__init__()
        if layers < 1 or num_rotations < 1:
            raise ValueError(
                f"need layers >= 1 and num_rotations >= 1, got {layers}, {num_rotations}"
            )
        self.hidden_channels = hidden_channels
        self.num_rotations = num_rotations
        self.gamma_input = gamma_input
        self.gamma_hidden = gamma_hidden
        self.features = nn.Sequential()
        for index in range(layers):
            first = index == 0
            kernel = input_kernel if first else hidden_kernel
            parts: OrderedDict[str, nn.Module] = OrderedDict()
            parts["hermite_conv"] = HermiteConv2d(
                input_features=input_channels if first else hidden_channels * num_rotations,
                output_features=hidden_channels,
                filter_size=kernel,
                padding=(kernel // 2 if pad_input else 0) if first else kernel // 2,
                num_rotations=num_rotations,
                upsampling=upsampling,
                first_layer=first,
            )
            parts["norm"] = RotationEquivariantBatchNorm2d(hidden_channels, num_rotations, momentum)
            if index < layers - 1:
                parts["nonlin"] = nn.ELU()
            self.features.add_module(f"layer{index}", nn.Sequential(parts))
        for module in self.modules():
            if isinstance(module, HermiteConv2d):
                nn.init.normal_(module.coeffs, std=0.1)

    @property
    def out_channels(self) -> int:
        """Channels of the output: features times rotations."""
        return self.hidden_channels * self.num_rotations

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map frames ``(N, C, H, W)`` to features ``(N, hidden * rotations, H', W')``."""
        return self.features(x)

    def _convs(self) -> list[HermiteConv2d]:
        return [m for m in self.modules() if isinstance(m, HermiteConv2d)]

    def regularizer(self) -> torch.Tensor:
        """``gamma_input`` times the Laplace L2 penalty of the first layer's kernels plus
        ``gamma_hidden`` times the later layers' group sparsity (the mean over output and input
        channels of each kernel's L2 norm, averaged over the later layers)."""
        convs = self._convs()
        laplace = laplace_l2_norm(convs[0].weights_all_rotations())
        sparsity = laplace.new_zeros(())
        for conv in convs[1:]:
            sparsity = sparsity + conv.weights_all_rotations().pow(2).sum((2, 3)).sqrt().mean()
        sparsity = sparsity / max(len(convs) - 1, 1)
        return self.gamma_hidden * sparsity + self.gamma_input * laplace
