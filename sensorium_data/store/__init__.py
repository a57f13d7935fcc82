"""The labelled Zarr v3 stores: their schema, how trees become stores and back, how they open.

- :mod:`~sensorium_data.store.schema`: the store schema every part relies on (DESIGN.md).
- :mod:`~sensorium_data.store.layout`, :mod:`~sensorium_data.store.shards`: a mouse's groups and
  arrays, and how their shards are written.
- :mod:`~sensorium_data.store.images`: the official image rescale (the stores' scaled copy).
- :mod:`~sensorium_data.store.convert`, :mod:`~sensorium_data.store.verify`,
  :mod:`~sensorium_data.store.export`, :mod:`~sensorium_data.store.info`: tree to store, store
  against tree, store back to a tree, a store described.
- :mod:`~sensorium_data.store.access`: opening stores from disk, HTTP or object storage as
  xarray (:func:`open_mouse`, :func:`open_store`, ...).

Below it: :mod:`sensorium_data.filetree` and the package's core modules (errors, conventions,
remote); nothing here imports :mod:`sensorium_data.loading` or anything above.
"""

from .access import list_mice, open_mouse, open_statistics, open_store
from .convert import convert
from .export import export
from .schema import ChunkOptions
from .verify import verify

__all__ = [
    "ChunkOptions",
    "convert",
    "export",
    "list_mice",
    "open_mouse",
    "open_statistics",
    "open_store",
    "verify",
]
