"""SENSORIUM 2022/2023 data as labelled, chunked Zarr v3 stores.

Read the official per-trial ``.npy`` trees, convert them, open them lazily from disk, HTTP or
object storage as xarray, and (in :mod:`sensorium_data.torch`) stream them into torch.
``import sensorium_data`` does not import torch.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sensorium-data")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from .convert import convert
from .errors import (
    IncompleteStoreError,
    InvalidFileTreeError,
    MouseExistsError,
    MouseNotFoundError,
    SchemaError,
    SensoriumDataError,
    StoreNotFoundError,
    UnsafePickleError,
)
from .export import export
from .filetree import FileTree, open_tree
from .schema import ChunkOptions
from .stores import list_mice, open_mouse, open_statistics, open_store
from .synthetic import synthesize
from .verify import verify

__all__ = [
    "ChunkOptions",
    "FileTree",
    "IncompleteStoreError",
    "InvalidFileTreeError",
    "MouseExistsError",
    "MouseNotFoundError",
    "SchemaError",
    "SensoriumDataError",
    "StoreNotFoundError",
    "UnsafePickleError",
    "__version__",
    "convert",
    "export",
    "list_mice",
    "open_mouse",
    "open_statistics",
    "open_store",
    "open_tree",
    "synthesize",
    "verify",
]
