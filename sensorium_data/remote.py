"""Failures of remote reads (HTTP, S3, any fsspec filesystem) as one-line errors.

aiohttp, botocore and fsspec each raise their own exceptions, some of them (botocore's) with
tracebacks of a hundred lines and messages that do not name the URL. :func:`remote_errors`
turns every such failure into a :class:`~sensorium_data.errors.RemoteReadError` that names the
URL (and the key or file) and the cause in one line; :func:`check_protocol` names the URL of a
protocol fsspec does not know.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import fsspec

from .errors import RemoteReadError, SensoriumDataError

__all__ = ["check_protocol", "is_remote_failure", "remote_cause", "remote_errors"]


def check_protocol(url: str) -> None:
    """``ValueError`` naming ``url`` unless fsspec knows each protocol of it (``s3``, ``http``,
    a chain such as ``simplecache::s3``)."""
    for part in url.split("::"):
        if "://" not in part:
            continue
        protocol = part.split("://", 1)[0]
        try:
            fsspec.get_filesystem_class(protocol)
        except ValueError:
            raise ValueError(
                f"{url}: unknown protocol {protocol!r}; give a local path or a URL such as "
                "s3://, gs://, http(s)://, memory:// or simplecache::s3://"
            ) from None
        except ImportError as exc:
            raise ValueError(f"{url}: protocol {protocol!r} needs a package: {exc}") from None


@functools.cache
def _remote_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = []
    with contextlib.suppress(ImportError):
        import aiohttp

        types.append(aiohttp.ClientError)
    with contextlib.suppress(ImportError):
        import botocore.exceptions

        types += [botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError]
    return tuple(types)


def is_remote_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure of a transfer (network, HTTP status, S3 error, I/O)."""
    if isinstance(exc, SensoriumDataError):
        return False
    return isinstance(exc, (OSError, TimeoutError, *_remote_types()))


def remote_cause(exc: BaseException) -> str:
    """The cause of a failed transfer in a few words: ``HTTP 403 Forbidden``, ``AccessDenied``..."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status >= 400:  # aiohttp.ClientResponseError
        return f"HTTP {status} {getattr(exc, 'message', '')}".strip()
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:  # botocore ClientError
        error = response["Error"]
        return f"{error.get('Code', '')}: {error.get('Message', '')}".strip(": ")
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return (
            "no AWS credentials found; give key and secret in the storage options, or "
            '{"anon": true} for a public bucket'
        )
    text = " ".join(str(exc).split())
    return f"{name}: {text}" if text else name


@contextlib.contextmanager
def remote_errors(where: str) -> Iterator[None]:
    """Re-raise a failed transfer as one :class:`RemoteReadError` naming ``where``; missing files
    (``FileNotFoundError``) and this package's own errors pass unchanged."""
    try:
        yield
    except FileNotFoundError:
        raise
    except Exception as exc:
        if not is_remote_failure(exc):
            raise
        raise RemoteReadError(f"{where}: {remote_cause(exc)}") from exc
