"""Per-neuron Gaussian readout: each neuron reads the feature map at one (sampled) position."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["FullGaussian2d", "normalise_coordinates"]


def normalise_coordinates(coordinates: np.ndarray | torch.Tensor) -> np.ndarray:
    """Centre the first two coordinate columns and scale them into ``[-1, 1]``.

    Parameters
    ----------
    coordinates : array-like
        ``(N, k)`` with ``k >= 2`` (``cell_motor_coordinates``, µm); only ``[:, :2]`` is used.

    Returns
    -------
    numpy.ndarray
        float32 ``(N, 2)``: minus the mean, divided by the largest absolute value (as the
        kits' "cortex" grid-mean predictor does; a single position maps to 0).
    """
    coords = np.asarray(coordinates, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] < 2:
        raise ValueError(f"coordinates must be (N, 2) or (N, 3), got shape {coords.shape}")
    if not np.isfinite(coords[:, :2]).all():
        raise ValueError("coordinates hold NaN or infinite values; pass None to learn positions")
    source = coords[:, :2] - coords[:, :2].mean(axis=0, keepdims=True)
    scale = np.abs(source).max() if source.size else 0.0
    return (source / (scale if scale > 0 else 1.0)).astype(np.float32)


class FullGaussian2d(nn.Module):
    """Gaussian readout with a full 2x2 covariance per neuron (Lurz et al. 2021).

    Neuron ``n`` reads the core's feature map by bilinear interpolation (``grid_sample``,
    ``align_corners=True``) at a position in ``[-1, 1]^2``: while training a sample
    ``mu_n + Sigma_n z`` with ``z ~ N(0, I)`` (reparametrised, one per batch element), at
    evaluation the mean ``mu_n``. The feature vector read there is weighted by the neuron's
    feature weights and a bias is added: the output is the linear drive ``(B, N)``.

    Parameters
    ----------
    in_channels : int
        Channels of the core's feature map.
    n_neurons : int
        Neurons of this mouse.
    coordinates : array-like or None
        ``(N, 3)`` ``cell_motor_coordinates``. Given: the mean positions are predicted from
        the normalised ``[:, :2]`` by an MLP ``2 -> hidden -> 2`` (ELU, then tanh), as the
        kits' "cortex" grid-mean predictor. None: the means are free parameters, drawn from
        ``U(-init_mu_range, init_mu_range)``.
    init_mu_range : float
        Range of the initial free means, in ``(0, 1]``.
    init_sigma : float
        The entries of ``Sigma`` (the square root of the covariance) start in
        ``U(-init_sigma, init_sigma)``.
    bias : bool
        Learn a bias per neuron (zero at start; see :meth:`initialize_bias`).
    gamma_readout : float
        Weight of the L1 penalty (sum of absolute values) of the feature weights.
    grid_hidden_features : int
        Hidden units of the position MLP.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        n_neurons: int,
        coordinates: np.ndarray | torch.Tensor | None = None,
        init_mu_range: float = 0.3,
        init_sigma: float = 0.1,
        bias: bool = True,
        gamma_readout: float = 0.0076,
        grid_hidden_features: int = 30,
    ):
        super().__init__()
        if not 0.0 < init_mu_range <= 1.0:
            raise ValueError(f"init_mu_range must be in (0, 1], got {init_mu_range}")
        if init_sigma <= 0.0:
            raise ValueError(f"init_sigma must be positive, got {init_sigma}")
        if n_neurons < 1 or in_channels < 1:
            raise ValueError(
                f"need n_neurons >= 1 and in_channels >= 1, got {n_neurons}, {in_channels}"
            )
        self.in_channels = in_channels
        self.n_neurons = n_neurons
        self.gamma_readout = gamma_readout
        self.mu_transform: nn.Sequential | None = None
        if coordinates is not None:
            source = normalise_coordinates(coordinates)
            if source.shape[0] != n_neurons:
                raise ValueError(
                    f"coordinates give {source.shape[0]} neurons, the readout has {n_neurons}"
                )
            self.register_buffer("source_grid", torch.from_numpy(source))
            self.mu_transform = nn.Sequential(
                nn.Linear(2, grid_hidden_features),
                nn.ELU(),
                nn.Linear(grid_hidden_features, 2),
                nn.Tanh(),
            )
            self.register_parameter("_mu", None)
        else:
            self.register_buffer("source_grid", None)
            self._mu = nn.Parameter(
                torch.empty(n_neurons, 2).uniform_(-init_mu_range, init_mu_range)
            )
        self.sigma = nn.Parameter(torch.empty(n_neurons, 2, 2).uniform_(-init_sigma, init_sigma))
        self.features = nn.Parameter(torch.full((in_channels, n_neurons), 1.0 / in_channels))
        self.bias = nn.Parameter(torch.zeros(n_neurons)) if bias else None

    @property
    def mu(self) -> torch.Tensor:
        """Mean positions ``(N, 2)`` in grid coordinates (x then y, in ``[-1, 1]``)."""
        if self.mu_transform is not None:
            return self.mu_transform(self.source_grid)
        return self._mu

    def initialize_bias(self, mean_activity: torch.Tensor | np.ndarray) -> None:
        """Set the biases to ``mean_activity`` ``(N,)`` (the kits use the mean responses)."""
        if self.bias is None:
            raise ValueError("this readout has no bias (bias=False)")
        if isinstance(mean_activity, torch.Tensor):
            values = mean_activity.detach()
        else:
            values = torch.as_tensor(np.asarray(mean_activity))
        if values.shape != self.bias.shape:
            raise ValueError(
                f"mean_activity must have shape ({self.n_neurons},), got {tuple(values.shape)}"
            )
        with torch.no_grad():
            self.bias.copy_(values.to(device=self.bias.device, dtype=self.bias.dtype))

    def sample_grid(self, batch_size: int, sample: bool | None = None) -> torch.Tensor:
        """Read-out positions ``(batch_size, N, 2)``.

        Parameters
        ----------
        batch_size : int
            Number of position sets (one per batch element).
        sample : bool or None
            Draw from the Gaussians (True) or take the means (False); None: sample while
            training, the means in eval mode.
        """
        if self._mu is not None and bool((self._mu.detach().abs() > 1.0).any()):
            with torch.no_grad():  # keep free means inside the map, as the kits do
                self._mu.clamp_(-1.0, 1.0)
        mu = self.mu
        sample = self.training if sample is None else sample
        if not sample:
            return mu.clamp(-1.0, 1.0).expand(batch_size, -1, -1)
        noise = torch.randn(batch_size, self.n_neurons, 2, device=mu.device, dtype=mu.dtype)
        offsets = torch.einsum("ncd,bnd->bnc", self.sigma, noise)
        return (mu + offsets).clamp(-1.0, 1.0)

    def forward(
        self, x: torch.Tensor, *, shift: torch.Tensor | None = None, sample: bool | None = None
    ) -> torch.Tensor:
        """Read out feature maps ``(B, C, H, W)`` into ``(B, N)``.

        Parameters
        ----------
        x : torch.Tensor
            The core's feature map.
        shift : torch.Tensor or None
            ``(B, 2)`` added to every neuron's position (after sampling and clamping), e.g.
            a shifter's output for the eye position.
        sample : bool or None
            See :meth:`sample_grid`.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"FullGaussian2d expects feature maps (B, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        grid = self.sample_grid(x.shape[0], sample)
        if shift is not None:
            if shift.shape != (x.shape[0], 2):
                raise ValueError(f"shift must be ({x.shape[0]}, 2), got {tuple(shift.shape)}")
            grid = grid + shift[:, None, :]
        read = F.grid_sample(x, grid[:, :, None, :], align_corners=True)  # (B, C, N, 1)
        out = (read[..., 0] * self.features).sum(dim=1)
        if self.bias is not None:
            out = out + self.bias
        return out

    def regularizer(self) -> torch.Tensor:
        """``gamma_readout`` times the L1 norm of the feature weights."""
        return self.gamma_readout * self.features.abs().sum()
