"""Readouts: per-mouse maps from a core's feature map to neurons, one module each."""

from sensorium_models.readouts.gaussian import FullGaussian2d, normalise_coordinates
from sensorium_models.readouts.video import VideoGaussianReadout

__all__ = ["FullGaussian2d", "VideoGaussianReadout", "normalise_coordinates"]
