"""Readouts: per-mouse maps from a core's feature map to neurons, one module each."""

from .gaussian import FullGaussian2d, normalise_coordinates
from .video import VideoGaussianReadout

__all__ = ["FullGaussian2d", "VideoGaussianReadout", "normalise_coordinates"]
