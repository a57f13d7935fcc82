"""Figures of SENSORIUM data, models and benchmarks (needs matplotlib: the ``notebooks`` extra).

Every function takes labelled data (xarray objects from :func:`sensorium_data.open_mouse`, the
toolkit's results) and returns a :class:`matplotlib.figure.Figure` with titles, labelled axes
(units where there are any) and colour bars where colour carries a value. ``import
sensorium_data`` does not import matplotlib; the first figure function used does, and without
matplotlib it raises an ImportError that says what to install.

- Data, 2022: :func:`response_raster`, :func:`behavior_traces`, :func:`image_responses`,
  :func:`neuron_positions`, :func:`response_statistics`.
- Data, 2023: :func:`frame_strip`, :func:`frame_traces`, :func:`valid_lengths`,
  :func:`frame_statistics`, :func:`repeat_matrix`.
- Models: :func:`metric_distributions`, :func:`readout_positions`,
  :func:`predicted_vs_recorded`; training runs and video models: :func:`learning_curve`,
  :func:`predicted_traces`.
- In-silico experiments: :func:`image_grid` (MEIs, receptive fields), :func:`tuning_curves`,
  :func:`truth_vs_found`.
- Scores and benchmarks: :func:`score_histogram`, :func:`benchmark_bars`.
"""

from __future__ import annotations

import importlib

from ._base import INSTALL_HINT, new_figure, require_matplotlib

_FIGURES = {
    # 2022 data
    "response_raster": "data",
    "behavior_traces": "data",
    "image_responses": "data",
    "neuron_positions": "data",
    "response_statistics": "data",
    # 2023 data
    "frame_strip": "video",
    "frame_traces": "video",
    "valid_lengths": "video",
    "frame_statistics": "video",
    "repeat_matrix": "video",
    # models
    "metric_distributions": "models",
    "readout_positions": "models",
    "predicted_vs_recorded": "models",
    # training runs and video models
    "learning_curve": "training",
    "predicted_traces": "training",
    # in-silico experiments
    "image_grid": "insilico",
    "tuning_curves": "insilico",
    "truth_vs_found": "insilico",
    # benchmarks
    "benchmark_bars": "tables",
    "score_histogram": "tables",
}


def __getattr__(name: str) -> object:
    """Figure functions, imported with their module on first use."""
    if name in _FIGURES:
        require_matplotlib()
        return getattr(importlib.import_module(f".{_FIGURES[name]}", __name__), name)
    raise AttributeError(f"module 'sensorium_data.plotting' has no attribute {name!r}")


__all__ = [
    "INSTALL_HINT",
    "behavior_traces",
    "benchmark_bars",
    "frame_statistics",
    "frame_strip",
    "frame_traces",
    "image_grid",
    "image_responses",
    "learning_curve",
    "metric_distributions",
    "neuron_positions",
    "new_figure",
    "predicted_traces",
    "predicted_vs_recorded",
    "readout_positions",
    "repeat_matrix",
    "require_matplotlib",
    "response_raster",
    "response_statistics",
    "score_histogram",
    "truth_vs_found",
    "tuning_curves",
    "valid_lengths",
]
