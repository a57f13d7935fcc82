"""The official SENSORIUM 2022 and 2023 metrics, on numpy, xarray and dask (streamed).

Conventions
-----------
- 2022 (static) inputs are ``(trial, neuron)``; 2023 (dynamic) inputs are ``(trial, neuron,
  frame)``, the store's order (time last). An :class:`xarray.DataArray` is used by its dimension
  names (``trial``, ``neuron``, ``frame``; any order, so time-major predictions work), and when
  both arguments are DataArrays the predictions are reordered to the responses' ``trial`` and
  ``neuron`` labels (the id sets must match exactly, as the official scorers require).
- Results are computed, never lazy: a float, or with ``per_neuron=True`` a numpy vector (an
  :class:`xarray.DataArray` along ``neuron``, with the responses' neuron coordinates, when the
  responses were one). Dask-backed inputs are read one run of trial chunks at a time (about
  32 MiB), and the per-neuron sums are merged with the pairwise (Chan) formulas, so data larger
  than memory can be scored. Everything is accumulated in float64.
- A correlation is the official ``mean(z1 * z2)`` with ``z = (y - mean) / (std(ddof=0) + 1e-8)``
  (:func:`corr`), computed from centred sums: a constant prediction scores 0, not NaN.
- 2023: frames ``skip <= f < valid`` of each trial are scored (``skip=50``; 250 frames of a
  300-frame trial, the kit's count). The valid length comes from ``valid_frames``, else the
  responses' ``valid_frames`` coordinate, else the NaN padding (the first frame at which every
  neuron is NaN). A pooled correlation does not depend on the order of the trials, so the
  official sort by trial index is not needed. Predictions outside the scored frames are ignored
  and may be NaN; inside they must be finite. A NaN response inside them makes that neuron's
  correlation NaN, which counts as 0 (as the official code does).
- Trials of an image (2022) or clip (2023) shown once are left out of :func:`feve`, :func:`fev`,
  :func:`explainable_variance` and :func:`oracle_correlation`, as neuralpredictors'
  ``get_repeats(min_repeats=2)`` does (a single repeat has no within-image variance).
"""

from __future__ import annotations

# _core (corr, input checks), _moments (streamed grouped sums), static (2022), dynamic (2023),
# repeats (FEV, explainable variance, oracle correlation, store_oracle).
from ._core import DYNAMIC_DIMS as DYNAMIC_DIMS
from ._core import SKIP as SKIP
from ._core import STATIC_DIMS as STATIC_DIMS
from ._core import MetricInputError, corr
from ._moments import _BLOCK_BYTES as _BLOCK_BYTES
from .dynamic import (
    bonus_track_score,
    dynamic_correlation_to_average,
    dynamic_single_trial_correlation,
    main_track_score,
    repeat_groups_from_videos,
)
from .repeats import explainable_variance, fev, oracle_correlation, store_oracle
from .static import correlation_to_average, feve, single_trial_correlation

__all__ = [
    "MetricInputError",
    "bonus_track_score",
    "corr",
    "correlation_to_average",
    "dynamic_correlation_to_average",
    "dynamic_single_trial_correlation",
    "explainable_variance",
    "fev",
    "feve",
    "main_track_score",
    "oracle_correlation",
    "repeat_groups_from_videos",
    "single_trial_correlation",
    "store_oracle",
]
