"""Errors raised by :mod:`sensorium_data`.

Every error subclasses :class:`SensoriumDataError` and the standard exception that fits, so
``except FileNotFoundError`` keeps working for callers who do not know this package.
Messages say what was expected, what was found, and what to do.
"""

from __future__ import annotations

__all__ = [
    "IncompleteStoreError",
    "InvalidFileTreeError",
    "MissingChunkError",
    "MouseExistsError",
    "MouseNotFoundError",
    "RemoteReadError",
    "SchemaError",
    "SensoriumDataError",
    "StoreNotFoundError",
    "UnsafePickleError",
]


class SensoriumDataError(Exception):
    """Base class of every error raised by sensorium_data."""


class InvalidFileTreeError(SensoriumDataError, ValueError):
    """A SENSORIUM file tree (folder or zip) breaks the official layout."""


class UnsafePickleError(InvalidFileTreeError):
    """A pickled object array holds something other than plain str/int/float/bool/None."""


class StoreNotFoundError(SensoriumDataError, FileNotFoundError):
    """No sensorium Zarr store at the given URL."""


class MouseNotFoundError(SensoriumDataError, KeyError):
    """The store holds no mouse of the requested name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class IncompleteStoreError(SensoriumDataError, RuntimeError):
    """A mouse group whose conversion did not finish (interrupted or failed)."""


class MouseExistsError(SensoriumDataError, FileExistsError):
    """Converting a mouse that the store already holds, without ``overwrite``."""


class RemoteReadError(SensoriumDataError, OSError):
    """A read of a remote store or source failed (after its retries, where retrying helps)."""


class MissingChunkError(RemoteReadError):
    """A chunk the converter wrote is not in the store (HTTP 404, a deleted or uncopied file)."""


class SchemaError(SensoriumDataError, ValueError):
    """A store or dataset does not follow the sensorium_data schema."""
