"""Smoothness regularisers of the baselines' first-layer filters.

Both are *normalised*: the energy of the Laplace-filtered kernels divided by the energy of the
kernels, so they penalise the shape of a filter and not its scale (neuralpredictors'
``LaplaceL2norm`` and ``DepthLaplaceL21d``, with ``avg=False`` as the SENSORIUM kits use them).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["LAPLACE_1D", "LAPLACE_2D", "laplace_l2_norm", "temporal_laplace_l2_norm"]

#: The 3x3 Laplace filter of the 2D regulariser.
LAPLACE_2D = ((0.0, -1.0, 0.0), (-1.0, 4.0, -1.0), (0.0, -1.0, 0.0))

#: The 1D filter of the temporal regulariser. The kits use ``[-1, 4, -1]`` (not the textbook
#: ``[-1, 2, -1]``); it is kept so that ``gamma_input_temporal`` means what it meant there.
LAPLACE_1D = (-1.0, 4.0, -1.0)


def laplace_l2_norm(weight: torch.Tensor) -> torch.Tensor:
    """Normalised Laplace L2 penalty of 2D convolution kernels.

    Parameters
    ----------
    weight : torch.Tensor
        Kernels of shape ``(out_channels, in_channels, kh, kw)``.

    Returns
    -------
    torch.Tensor
        Scalar ``sum(laplace(w) ** 2) / sum(w ** 2)``, the Laplace filter applied to every
        2D kernel with zero padding 1.
    """
    if weight.ndim != 4:
        raise ValueError(f"expected 2D kernels (out, in, kh, kw), got shape {tuple(weight.shape)}")
    kernels = weight.reshape(-1, 1, *weight.shape[-2:])
    laplace = torch.tensor(LAPLACE_2D, dtype=weight.dtype, device=weight.device)[None, None]
    filtered = F.conv2d(kernels, laplace, padding=1)
    return filtered.pow(2).sum() / kernels.pow(2).sum()


def temporal_laplace_l2_norm(weight: torch.Tensor) -> torch.Tensor:
    """Normalised Laplace L2 penalty of 1D (temporal) convolution kernels.

    Parameters
    ----------
    weight : torch.Tensor
        Kernels of shape ``(out_channels, in_channels, kt)``.

    Returns
    -------
    torch.Tensor
        Scalar ``sum(laplace(w) ** 2) / sum(w ** 2)`` with the filter :data:`LAPLACE_1D` and
        zero padding 1.
    """
    if weight.ndim != 3:
        raise ValueError(f"expected 1D kernels (out, in, kt), got shape {tuple(weight.shape)}")
    kernels = weight.reshape(-1, 1, weight.shape[-1])
    laplace = torch.tensor(LAPLACE_1D, dtype=weight.dtype, device=weight.device)[None, None]
    filtered = F.conv1d(kernels, laplace, padding=1)
    return filtered.pow(2).sum() / kernels.pow(2).sum()
