"""A moto S3 server on ``127.0.0.1`` and the s3fs helpers the tests and benchmarks use.

``MotoS3Server`` runs :class:`moto.server.ThreadedMotoServer` on ``127.0.0.1`` port 0 and closes its
socket on stop; ``upload_dir`` copies a local tree to ``s3://bucket/prefix`` with s3fs;
``close_cached_filesystems`` closes the asynchronous fsspec instances zarr opened. Plain helpers,
no pytest (``conftest.py`` wraps them in fixtures).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["TEST_AWS_ENV", "MotoS3Server", "close_cached_filesystems", "upload_dir"]

#: Environment for botocore with moto: fake credentials, a region, no EC2 metadata lookups.
TEST_AWS_ENV: Mapping[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class MotoS3Server:
    """moto's S3 (and other AWS services) on ``127.0.0.1``, port chosen by the OS.

    ``endpoint_url`` and ``storage_options`` are valid between ``start()`` and ``stop()``.
    """

    region = "us-east-1"

    def __init__(self) -> None:
        self._moto: Any = None
        self.endpoint_url = ""

    def start(self) -> MotoS3Server:
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO on its own stderr handler unless told otherwise.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._moto is None:
            return
        self._moto.stop()
        # ThreadedMotoServer.stop() shuts the loop down but leaves the listening socket open.
        wsgi_server = getattr(self._moto, "_server", None)
        if wsgi_server is not None:
            wsgi_server.server_close()
        self._moto = None

    def __enter__(self) -> MotoS3Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def storage_options(self) -> dict[str, Any]:
        """s3fs / fsspec options for this endpoint (a fresh dict each time)."""
        # No ``client_kwargs={"region_name": ...}``: s3fs turns it into a LocationConstraint on
        # ``mkdir(bucket)``, which S3 (and moto) reject for us-east-1. The region comes from
        # AWS_DEFAULT_REGION (see TEST_AWS_ENV), and moto does not check it anyway.
        return {"key": "testing", "secret": "testing", "endpoint_url": self.endpoint_url}

    def filesystem(self, **extra: Any) -> Any:
        """A new, uncached ``s3fs.S3FileSystem`` for this endpoint."""
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options, skip_instance_cache=True, **extra)


def upload_dir(
    local_dir: str | os.PathLike[str], s3_url: str, storage_options: Mapping[str, Any]
) -> list[str]:
    """Upload the tree under ``local_dir`` to ``s3_url`` (``s3://bucket/prefix``) with s3fs.

    Returns the uploaded keys (``bucket/prefix/rel/path``), sorted. The filesystem used is not
    cached, and every cached s3fs instance's listings are invalidated afterwards, so that readers
    created earlier see the new objects.
    """
    import s3fs

    local = Path(local_dir)
    if not local.is_dir():
        raise NotADirectoryError(f"upload_dir needs a local directory, got {local!s}")
    if not s3_url.startswith("s3://"):
        raise ValueError(f"upload_dir needs an s3:// URL, got {s3_url!r}")
    fs = s3fs.S3FileSystem(**{**storage_options, "skip_instance_cache": True})
    target = s3_url[len("s3://") :].rstrip("/")
    files = sorted(p for p in local.rglob("*") if p.is_file())
    keys = [f"{target}/{p.relative_to(local).as_posix()}" for p in files]
    if files:
        fs.put([str(p) for p in files], keys)  # lists: uploaded concurrently, no path guessing
    for cached in list(getattr(s3fs.S3FileSystem, "_cache", {}).values()):
        cached.invalidate_cache()  # readers opened earlier must see the new objects
    return keys


def close_cached_filesystems() -> None:
    """Close and forget every cached s3fs / fsspec-http filesystem instance.

    ``zarr.storage.FsspecStore.from_url`` makes *asynchronous* instances, and fsspec registers no
    finalizer for those: their aiohttp sessions would be garbage-collected unclosed, which is a
    ``ResourceWarning`` (an error under ``filterwarnings = error``). Their sessions live on zarr's
    event loop, so they are closed there. Synchronous instances close themselves when collected.
    Instances made with ``skip_instance_cache=True`` are not reachable here: tests should let
    fsspec cache the instances that zarr opens.
    """
    import s3fs
    from fsspec.implementations.http import HTTPFileSystem
    from zarr.core.sync import sync

    for cls in (HTTPFileSystem, s3fs.S3FileSystem):
        for fs in list(getattr(cls, "_cache", {}).values()):
            fs.invalidate_cache()
            if getattr(fs, "asynchronous", False):
                try:
                    sync(_close_async_filesystem(fs))
                except Exception:
                    pass
        cls.clear_instance_cache()


async def _close_async_filesystem(fs: Any) -> None:
    session = getattr(fs, "_session", None)  # fsspec HTTPFileSystem: an aiohttp.ClientSession
    if session is not None and hasattr(session, "close"):
        fs._session = None
        await session.close()
    creator = getattr(fs, "_s3creator", None)  # s3fs: aiobotocore ClientCreatorContext
    if getattr(fs, "_s3", None) is not None and hasattr(creator, "__aexit__"):
        fs._s3 = None
        await creator.__aexit__(None, None, None)
