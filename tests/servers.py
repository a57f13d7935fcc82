"""Real test servers: a Range-honouring HTTP file server here, a moto S3 server in ``s3_server``.

Plain helpers, no pytest: the fixtures in ``conftest.py`` wrap them, and benchmarks may use them
directly.

``RangeHTTPServer`` serves a local directory on ``127.0.0.1`` (port chosen by the OS) the way a
static object host does: ``Range`` requests (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``) get a 206
with ``Content-Range``; unsatisfiable ranges a 416; ``HEAD`` gives ``Content-Length`` and
``Accept-Ranges: bytes``; directories answer with the HTML index of :mod:`http.server`, which is
what fsspec's ``HTTPFileSystem`` parses for ``ls``/``find``, or, with ``listing=False``, with 403 as
nginx does with ``autoindex off``. Paths in ``forbidden`` answer 403 (an object the server
may not serve). It can also sleep per request
(``latency``) and inject faults (``fail_every``, ``reset_every``), and counts what it was asked.

The S3 side (``MotoS3Server``, ``upload_dir``, ``close_cached_filesystems``, ``TEST_AWS_ENV``)
lives in :mod:`s3_server` and is re-exported here, so ``from servers import ...`` finds both.
"""

from __future__ import annotations

import collections
import http.server
import os
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from s3_server import TEST_AWS_ENV, MotoS3Server, close_cached_filesystems, upload_dir

__all__ = [
    "TEST_AWS_ENV",
    "MotoS3Server",
    "RangeHTTPServer",
    "RequestRecord",
    "close_cached_filesystems",
    "parse_byte_range",
    "upload_dir",
]

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


#: The environment the S3 fixtures set (fake credentials; moto accepts any).
class _Unsatisfiable(Exception):
    """A syntactically valid Range that selects no byte of the file (answer 416)."""


def parse_byte_range(header: str, size: int) -> tuple[int, int] | None:
    """Parse a single-range ``Range`` header into an inclusive ``(first, last)`` pair.

    Returns ``None`` when the header is not a single ``bytes=`` range (RFC 9110 lets a server
    ignore such a header and send the whole file). Raises ``_Unsatisfiable`` for a range outside
    the file (answer 416).
    """
    match = _RANGE_RE.match(header)
    if match is None:
        return None
    first_s, last_s = match.groups()
    if not first_s and not last_s:
        return None
    if not first_s:  # suffix range: the last n bytes
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            raise _Unsatisfiable(header)
        return max(size - suffix, 0), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else None
    if last is not None and last < first:
        return None  # invalid: ignore the header
    if first >= size:
        raise _Unsatisfiable(header)
    if last is None:
        last = size - 1
    return first, min(last, size - 1)


@dataclass(frozen=True)
class RequestRecord:
    """One request the HTTP server received (before faults were applied)."""

    method: str
    path: str
    range: str | None
    fault: str | None


@dataclass
class _Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    total: int = 0
    by_path: collections.Counter[str] = field(default_factory=collections.Counter)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    log: list[RequestRecord] = field(default_factory=list)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler plus Range, latency, faults and counting."""

    protocol_version = "HTTP/1.1"  # keep-alive, like real object stores
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: no line on stderr per request."""

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _serve(self, *, body: bool) -> None:
        fault = self.server.admit(self.command, self.path, self.headers.get("Range"))
        if self.server.latency > 0:
            time.sleep(self.server.latency)
        if fault == "503":
            self.send_error(503, "Injected fault")
            return
        if fault == "reset" and not (self.server.reset_mode == "truncate" and body):
            self._abort()
            return
        fs_path = self.translate_path(self.path)
        url_path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if url_path in self.server.forbidden or (
            os.path.isdir(fs_path) and not self.server.listing
        ):
            self.send_error(403, "Forbidden")  # nginx, autoindex off
            return
        if os.path.isdir(fs_path):
            listing = self.send_head()  # redirect, index.html or HTML listing
            if listing is not None:
                with listing:
                    if body:
                        self.copyfile(listing, self.wfile)
            return
        self._serve_file(fs_path, body=body, truncate=fault == "reset")

    def _serve_file(self, fs_path: str, *, body: bool, truncate: bool) -> None:
        if fs_path.endswith("/") or not os.path.isfile(fs_path):
            self.send_error(404, "File not found")
            return
        with open(fs_path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            header = self.headers.get("Range")
            try:
                span = parse_byte_range(header, size) if header else None
            except _Unsatisfiable:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            first, last = span if span is not None else (0, size - 1)
            length = last - first + 1
            self.send_response(206 if span is not None else 200)
            if span is not None:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.send_header("Content-Type", self.guess_type(fs_path))
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Last-Modified", self.date_time_string(os.fstat(f.fileno()).st_mtime))
            self.end_headers()
            if not body:
                return
            f.seek(first)
            todo = length // 2 if truncate else length
            while todo > 0:
                chunk = f.read(min(todo, 1 << 20))
                if not chunk:
                    break
                self.wfile.write(chunk)
                todo -= len(chunk)
            if truncate:
                self._abort()

    def _abort(self) -> None:
        """Drop the connection with a TCP reset, whatever was (not) sent."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass


class _Server(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its options, counts requests and tracks connections."""

    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 drops the SYNs of fsspec's concurrent requests, which
    # the client kernel then retries after 1, 3, 7... s: a stall, not a fault we asked for.
    request_queue_size = 512

    def __init__(
        self,
        *,
        root: str,
        latency: float,
        fail_every: int,
        reset_every: int,
        reset_mode: Literal["close", "truncate"],
        listing: bool,
        forbidden: frozenset[str],
    ) -> None:
        self.root = root
        self.listing = listing
        self.forbidden = forbidden
        self.latency = latency
        self.fail_every = fail_every
        self.reset_every = reset_every
        self.reset_mode = reset_mode
        self.stats = _Stats()
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()

        def handler(*args: Any) -> _Handler:
            return _Handler(*args, directory=root)

        super().__init__(("127.0.0.1", 0), handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), which can stall on a reverse DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about hang-ups (clients closing, our injected resets, ``stop()``)."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)  # a real bug: print the traceback

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._conn_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive connections so that they exit."""
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def admit(self, method: str, raw_path: str, range_header: str | None) -> str | None:
        """Count one request and decide its fault: ``"503"``, ``"reset"`` or ``None``."""
        path = urllib.parse.unquote(urllib.parse.urlsplit(raw_path).path)
        with self.stats.lock:
            self.stats.total += 1
            n = self.stats.total
            fault = None
            if self.fail_every and n % self.fail_every == 0:
                fault = "503"
            elif self.reset_every and n % self.reset_every == 0:
                fault = "reset"
            self.stats.by_path[path] += 1
            if fault is not None:
                self.stats.faults[fault] += 1
            self.stats.log.append(RequestRecord(method, path, range_header, fault))
        return fault


class RangeHTTPServer:
    """A threaded HTTP server on ``127.0.0.1`` serving ``root`` with Range support.

    Parameters
    ----------
    root
        Directory to serve; URL paths map to paths under it.
    latency
        Seconds slept in the handler before each answer (requests overlap, as over a network).
    fail_every
        If > 0, every ``fail_every``-th request (counted over all paths, from 1) gets a 503.
    reset_every
        If > 0, every ``reset_every``-th request is reset instead of answered. A request hit by
        both ``fail_every`` and ``reset_every`` gets the 503.
    reset_mode
        ``"close"``: drop the connection before any response byte. ``"truncate"``: send the
        headers and half of the body of a file GET, then drop the connection (other requests
        are dropped as with ``"close"``).
    listing
        ``True``: directories answer with an HTML listing (``python -m http.server``);
        ``False``: with 403, as nginx with ``autoindex off`` (and S3 without list permission).
    forbidden
        URL paths (``/store.zarr/m/responses/c/0/0``) answered with 403 Forbidden.

    Examples
    --------
    >>> with RangeHTTPServer(tmp_path, latency=0.0) as srv:  # doctest: +SKIP
    ...     requests.get(srv.url + "/a.bin", headers={"Range": "bytes=0-9"})
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        latency: float = 0.0,
        fail_every: int = 0,
        reset_every: int = 0,
        reset_mode: Literal["close", "truncate"] = "close",
        listing: bool = True,
        forbidden: Collection[str] = (),
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise NotADirectoryError(f"RangeHTTPServer needs a directory to serve, got {root!s}")
        if latency < 0 or fail_every < 0 or reset_every < 0:
            raise ValueError("latency, fail_every and reset_every must be >= 0")
        if reset_mode not in ("close", "truncate"):
            raise ValueError(f"reset_mode must be 'close' or 'truncate', got {reset_mode!r}")
        self.root = root
        self._options: dict[str, Any] = {
            "latency": float(latency),
            "fail_every": int(fail_every),
            "reset_every": int(reset_every),
            "reset_mode": reset_mode,
            "listing": bool(listing),
            "forbidden": frozenset(forbidden),
        }
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> RangeHTTPServer:
        if self._server is not None:
            raise RuntimeError("RangeHTTPServer is already running")
        self._server = _Server(root=str(self.root), **self._options)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"RangeHTTPServer:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close idle client connections and the listening socket."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        thread.join()
        server.close_connections()
        server.server_close()
        self._server = self._thread = None

    def __enter__(self) -> RangeHTTPServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def _running(self) -> _Server:
        if self._server is None:
            raise RuntimeError("RangeHTTPServer is not running: use it as a context manager")
        return self._server

    @property
    def port(self) -> int:
        return int(self._running.server_address[1])

    @property
    def url(self) -> str:
        """Base URL without trailing slash, e.g. ``http://127.0.0.1:41234``."""
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, relpath: str | os.PathLike[str]) -> str:
        """URL of a path relative to ``root`` (POSIX separators, percent-quoted)."""
        rel = Path(relpath).as_posix().lstrip("/")
        return f"{self.url}/{urllib.parse.quote(rel)}"

    # -- counters (thread-safe snapshots) ----------------------------------------------------

    @property
    def request_count(self) -> int:
        """Requests received since start (or the last ``reset_counters``), faults included."""
        stats = self._running.stats
        with stats.lock:
            return stats.total

    @property
    def path_counts(self) -> dict[str, int]:
        """Requests per URL path (unquoted, without query), e.g. ``{"/a/zarr.json": 2}``."""
        stats = self._running.stats
        with stats.lock:
            return dict(stats.by_path)

    @property
    def fault_counts(self) -> dict[str, int]:
        """Injected faults by kind: ``{"503": n, "reset": m}`` (kinds never injected are 0)."""
        stats = self._running.stats
        with stats.lock:
            return {"503": stats.faults["503"], "reset": stats.faults["reset"]}

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request in arrival order (method, path, Range header, fault)."""
        stats = self._running.stats
        with stats.lock:
            return list(stats.log)

    def reset_counters(self) -> None:
        """Zero all counters; fault schedules restart from request 1."""
        stats = self._running.stats
        with stats.lock:
            stats.total = 0
            stats.by_path.clear()
            stats.faults.clear()
            stats.log.clear()
