"""From stores to batches: the official sample pipeline, for torch.

- :mod:`~sensorium_data.loading.normalize`: the official normalisation (:class:`Normalizer`,
  numpy only).
- :mod:`~sensorium_data.loading.transforms`: the kits' sample transforms on numpy batches.
- :mod:`~sensorium_data.loading.chunkread`: whole decoded chunks, read once and shared.
- :mod:`~sensorium_data.loading.options`: :class:`SampleOptions`, the per-process
  :class:`OpenedMouse` and a batch's :class:`BatchPlan`.
- :mod:`~sensorium_data.loading.datasets`: :class:`MouseDataset`, streamed, in memory or on a
  torch device; :mod:`~sensorium_data.loading.gather`: its in-memory and device batches.
- :mod:`~sensorium_data.loading.samplers`, :mod:`~sensorium_data.loading.loaders`,
  :mod:`~sensorium_data.loading.checks`: samplers, :func:`make_loaders` and its argument checks.

Importing this package does not import torch; the torch classes load on first use. Below it:
:mod:`sensorium_data.store`, :mod:`sensorium_data.filetree` and the core modules.
"""

from .normalize import Normalizer

#: The torch classes and functions, by the module that defines them (imported on first use).
TORCH_API = {
    "BlockShuffleSampler": "samplers",
    "LongCycler": "loaders",
    "MouseDataset": "datasets",
    "SampleOptions": "datasets",
    "make_loaders": "loaders",
}


def __getattr__(name: str) -> object:
    """The torch classes and :func:`make_loaders`, imported on first use."""
    if name in TORCH_API:
        import importlib

        return getattr(importlib.import_module(f".{TORCH_API[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BlockShuffleSampler",
    "LongCycler",
    "MouseDataset",
    "Normalizer",
    "SampleOptions",
    "make_loaders",
]
