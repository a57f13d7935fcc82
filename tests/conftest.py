"""Shared fixtures: real HTTP (Range-honouring) and S3 (moto) servers on 127.0.0.1.

- ``http_server(root, **options)``: factory, starts a ``RangeHTTPServer`` stopped at teardown.
- ``s3_server``: one moto server per session; ``.endpoint_url``, ``.storage_options``.
- ``s3_bucket``: a fresh, uniquely named, empty bucket per test (deleted at teardown).
- ``one_thread``: torch on one intra-op thread for a module of tiny-tensor tests
  (``pytestmark = pytest.mark.usefixtures("one_thread")``).

``upload_dir(local_dir, "s3://bucket/prefix", storage_options)`` lives in ``tests/servers.py``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

try:  # tests/ is a rootdir-relative folder, not a package (pytest's "prepend" import mode)
    from servers import TEST_AWS_ENV, MotoS3Server, RangeHTTPServer, close_cached_filesystems
except ImportError:  # pragma: no cover - if tests/ becomes a package
    from tests.servers import (
        TEST_AWS_ENV,
        MotoS3Server,
        RangeHTTPServer,
        close_cached_filesystems,
    )

HttpServerFactory = Callable[..., RangeHTTPServer]


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors: a second intra-op thread only adds start-up and contention. (torch is
    imported here, not at the top: the data layer's tests run without it.)"""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def http_server() -> Iterator[HttpServerFactory]:
    """Factory: ``http_server(root, latency=0.0, fail_every=0, reset_every=0, reset_mode="close",
    listing=True, forbidden=())``.

    Returns a running ``RangeHTTPServer`` (``.url``, ``.url_for(rel)``, counters); every server
    started through the factory is stopped at teardown, after cached http filesystems (e.g. the
    ones zarr's ``FsspecStore.from_url`` opened) are closed.
    """
    started: list[RangeHTTPServer] = []

    def start(root: str | os.PathLike[str], **options: Any) -> RangeHTTPServer:
        server = RangeHTTPServer(root, **options).start()
        started.append(server)
        return server

    yield start
    close_cached_filesystems()
    for server in reversed(started):
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3Server]:
    """One moto S3 server for the whole session, with fake AWS credentials in the environment."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            mp.delenv(name, raising=False)
        for name, value in TEST_AWS_ENV.items():
            mp.setenv(name, value)
        with MotoS3Server() as server:
            yield server
            close_cached_filesystems()


@pytest.fixture
def s3_bucket(s3_server: MotoS3Server) -> Iterator[str]:
    """Name of a new empty bucket on ``s3_server``; removed, with its objects, at teardown.

    Cached s3fs/http filesystem instances are closed and dropped at teardown as well, so no
    listing cache or open session outlives a test (see ``close_cached_filesystems``).
    """
    name = f"test-{uuid.uuid4().hex[:16]}"
    fs = s3_server.filesystem()
    fs.mkdir(name)
    try:
        yield name
    finally:
        close_cached_filesystems()
        fs.invalidate_cache()
        fs.rm(name, recursive=True)
