"""Where the bytes of an official file tree come from: a folder or a zip, local or remote.

A :class:`TreeSource` lists the files of one tree (paths relative to its top folder, ``/``
separated) and reads them. Sources hold only their URL and options, so they pickle into dask
worker processes; the open filesystem or zip handle is created lazily once per process.
"""

from __future__ import annotations

import abc
import lzma
import os
import posixpath
import threading
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import fsspec

from ..errors import InvalidFileTreeError, RemoteReadError
from ..remote import check_protocol, remote_errors

__all__ = ["DirectorySource", "TreeSource", "ZipSource", "open_source"]

_JUNK_PREFIXES = ("__MACOSX/",)
#: Largest zip member read (uncompressed). The largest file of the releases is about 10 MB; a
#: member announcing more is refused before it is inflated (a zip bomb would be read in full).
MAX_MEMBER_BYTES = 256 * 2**20
#: Largest ratio of inflated to compressed bytes of a whole zip that inflates past
#: ``MAX_MEMBER_BYTES`` (many members each under the limit). The releases' videos and images
#: barely compress; even all-zero withheld responses stay under 1100:1, and they are a fraction.
MAX_ZIP_RATIO = 100
_ZIP_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
    ValueError,
)


class TreeSource(abc.ABC):
    """One official file tree. Subclasses adapt a storage layout; the reader never asks how."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = str(url)
        self.storage_options = dict(storage_options or {})
        self._local: dict[str, Any] = {}
        self._pid = -1
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["storage_options"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @property
    def handles(self) -> dict[str, Any]:
        """Per-process open handles (reopened after a fork)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._local = self._open()
                    self._pid = os.getpid()
        return self._local

    @abc.abstractmethod
    def _open(self) -> dict[str, Any]: ...

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The top folder's name, e.g. ``static26872-17-20-GrayImageNet-94c6...``."""

    def list_files(self) -> list[str]:
        """Every file of the tree, relative to the top folder, sorted."""
        return sorted(self.file_sizes())

    @abc.abstractmethod
    def file_sizes(self) -> dict[str, int]:
        """``{path: bytes}`` of every file of the tree, paths relative to the top folder."""

    @abc.abstractmethod
    def read(self, path: str) -> bytes:
        """The bytes of one file, ``path`` relative to the top folder."""

    def read_many(self, paths: Sequence[str]) -> list[bytes]:
        """The bytes of several files, in order (remote sources fetch them concurrently)."""
        return [self.read(p) for p in paths]

    def iter_read(self, paths: Sequence[str], batch: int = 64) -> Iterator[bytes]:
        """The bytes of ``paths`` in order, fetched ``batch`` at a time (bounded memory)."""
        for start in range(0, len(paths), batch):
            yield from self.read_many(paths[start : start + batch])

    def describe(self, path: str = "") -> str:
        """A human-readable location of ``path`` for error messages."""
        return f"{self.url.rstrip('/')}/{path}" if path else self.url


class DirectorySource(TreeSource):
    """An unpacked tree: the folder that holds ``data/`` and ``meta/``."""

    def _open(self) -> dict[str, Any]:
        with remote_errors(self.url):
            fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        return {"fs": fs, "root": root.rstrip("/"), "local": _is_local(fs)}

    @property
    def name(self) -> str:
        return posixpath.basename(self.url.rstrip("/").split("::")[-1])

    def file_sizes(self) -> dict[str, int]:
        fs, root = self.handles["fs"], self.handles["root"]
        with remote_errors(self.url):
            if not fs.isdir(root):
                raise InvalidFileTreeError(f"{self.url}: no such folder")
            if self.handles["local"]:
                return _scan_local(root)
            found_files = fs.find(root, detail=True)
        prefix = root.replace(os.sep, "/").rstrip("/") + "/"
        out = {}
        for found, detail in found_files.items():
            path = found.replace(os.sep, "/")
            rel = path[len(prefix) :] if path.startswith(prefix) else posixpath.relpath(path, root)
            out[rel] = int(detail.get("size") or 0)
        return out

    def read(self, path: str) -> bytes:
        h = self.handles
        full = f"{h['root']}/{path}"
        try:
            if h["local"]:
                with open(full, "rb") as f:
                    return f.read()
            with remote_errors(self.describe(path)):
                return bytes(h["fs"].cat_file(full))
        except FileNotFoundError:
            raise InvalidFileTreeError(f"{self.describe(path)}: file is missing") from None

    def read_many(self, paths: Sequence[str]) -> list[bytes]:
        h = self.handles
        if h["local"] or len(paths) < 2:
            return [self.read(p) for p in paths]
        full = [f"{h['root']}/{p}" for p in paths]
        with remote_errors(self.describe(paths[0])):
            got = h["fs"].cat(full, on_error="return")
        out = []
        for p, f in zip(paths, full, strict=True):
            value = got[f]
            if isinstance(value, FileNotFoundError):
                raise InvalidFileTreeError(f"{self.describe(p)}: file is missing")
            if isinstance(value, BaseException):
                with remote_errors(self.describe(p)):
                    raise value
            out.append(value)
        return out


class ZipSource(TreeSource):
    """A tree read straight from its ``.zip``, member by member, without unpacking.

    The zip must hold exactly one top-level folder (``__MACOSX/`` junk is ignored), and no member
    may escape it (absolute paths or ``..``).
    """

    def _open(self) -> dict[str, Any]:
        with remote_errors(self.url):
            fs, path = fsspec.core.url_to_fs(self.url, **self.storage_options)
        try:
            with remote_errors(self.url):
                fobj = fs.open(path, "rb")
        except FileNotFoundError:
            raise InvalidFileTreeError(f"{self.url}: no such file") from None
        try:
            with remote_errors(self.url):
                zf = zipfile.ZipFile(fobj)
        except RemoteReadError:
            fobj.close()
            raise
        except _ZIP_READ_ERRORS as exc:
            fobj.close()
            why = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else exc
            raise InvalidFileTreeError(f"{self.url}: not a valid zip file ({why})") from None
        top, members = _zip_layout(zf, self.url)
        return {"zip": zf, "top": top, "members": members, "fobj": fobj}

    @property
    def name(self) -> str:
        return str(self.handles["top"])

    def file_sizes(self) -> dict[str, int]:
        return {name: info.file_size for name, info in self.handles["members"].items()}

    def read(self, path: str) -> bytes:
        h = self.handles
        info = h["members"].get(path)
        if info is None:
            raise InvalidFileTreeError(f"{self.describe(path)}: file is missing")
        try:
            with remote_errors(self.describe(path)):
                return h["zip"].read(info)
        except RemoteReadError:
            raise
        except _ZIP_READ_ERRORS as exc:
            raise InvalidFileTreeError(
                f"{self.describe(path)}: cannot read this zip member ({type(exc).__name__}: {exc})"
            ) from None

    def describe(self, path: str = "") -> str:
        if not path:
            return self.url
        top = self.handles["top"] if self._pid == os.getpid() else "…"
        return f"{self.url}!{top}/{path}"


def _zip_layout(zf: zipfile.ZipFile, url: str) -> tuple[str, dict[str, zipfile.ZipInfo]]:
    tops: set[str] = set()
    loose: list[str] = []
    for info in zf.infolist():
        name = info.filename
        if name.startswith(_JUNK_PREFIXES) or name.endswith("/"):
            continue
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or "\\" in name or ":" in parts[0]:
            raise InvalidFileTreeError(
                f"{url}: member {name!r} would escape the zip's top folder; refusing this zip"
            )
        if len(parts) == 1:
            loose.append(name)
        else:
            tops.add(parts[0])
    if loose:
        raise InvalidFileTreeError(
            f"{url}: files such as {loose[0]!r} lie at the zip's root; expected exactly one "
            "top-level folder (named like the zip) holding data/ and meta/"
        )
    if len(tops) != 1:
        found = ", ".join(sorted(tops)) or "none"
        raise InvalidFileTreeError(
            f"{url}: expected exactly one top-level folder in the zip, found {len(tops)}: {found}"
        )
    top = tops.pop()
    members = {
        i.filename[len(top) + 1 :]: i
        for i in zf.infolist()
        if i.filename.startswith(top + "/") and not i.filename.endswith("/")
    }
    for info in members.values():
        _check_member(info, url)
    inflated = sum(i.file_size for i in members.values())
    compressed = sum(i.compress_size for i in members.values())
    if inflated > MAX_MEMBER_BYTES and inflated > MAX_ZIP_RATIO * max(compressed, 1):
        raise InvalidFileTreeError(
            f"{url}: its {len(members)} files inflate to {inflated:,} bytes from {compressed:,} "
            f"compressed, over {MAX_ZIP_RATIO} times; refusing it as a zip bomb (unpack it and "
            "convert the folder if it is meant to be that large)"
        )
    return top, members


def _check_member(info: zipfile.ZipInfo, url: str) -> None:
    """Refuse members that are links or that would inflate past :data:`MAX_MEMBER_BYTES`."""
    where = f"{url}!{info.filename}"
    if info.create_system == 3 and (info.external_attr >> 16) & 0o170000 == 0o120000:
        raise InvalidFileTreeError(
            f"{where}: a symbolic link; links inside a zip are not followed (unpack the zip "
            "and convert the folder, where links inside the tree are followed)"
        )
    if info.file_size > MAX_MEMBER_BYTES:
        raise InvalidFileTreeError(
            f"{where}: inflates to {info.file_size:,} bytes ({info.compress_size:,} compressed), "
            f"over the {MAX_MEMBER_BYTES >> 20} MiB limit of a zip member; unpack the zip and "
            "convert the folder if this file is meant to be that large"
        )


def _scan_local(root: str) -> dict[str, int]:
    """``{relative path: size}`` of a local folder (os.scandir: ~3x faster than fsspec's find).

    Symbolic links are followed only inside the tree: a link that leads out of it (or back to a
    folder that holds it), a broken link and anything that is not a file or a folder (a FIFO
    would block the reader) are refused, naming the path.
    """
    top = os.path.realpath(root)
    out: dict[str, int] = {}
    stack = [(root, "", (top,))]
    while stack:
        folder, prefix, above = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                rel = prefix + entry.name
                real = _check_entry(entry, root, rel, top, above)
                if entry.is_dir():
                    stack.append((entry.path, f"{rel}/", (*above, real)))
                else:
                    out[rel] = entry.stat().st_size
    return out


def _check_entry(
    entry: os.DirEntry[str], root: str, rel: str, top: str, above: tuple[str, ...]
) -> str:
    """The real path of ``entry`` (``rel`` inside the tree ``root``), or a clear error."""
    where = f"{root.rstrip('/')}/{rel}"
    real = os.path.realpath(entry.path) if entry.is_symlink() else ""
    if real and os.path.commonpath([top, real]) != top:
        raise InvalidFileTreeError(
            f"{where}: a symbolic link to {real}, outside the tree {top}; refusing to read "
            "files from outside it (copy them into the tree instead)"
        )
    try:
        is_dir, is_file = entry.is_dir(), entry.is_file()
    except OSError as exc:
        raise InvalidFileTreeError(f"{where}: cannot be read ({exc})") from None
    if real and is_dir and real in above:
        raise InvalidFileTreeError(
            f"{where}: a symbolic link to {real}, a folder that holds it (a loop); remove it"
        )
    if not is_dir and not is_file:
        what = "a broken symbolic link" if real and not os.path.exists(real) else "not a file"
        raise InvalidFileTreeError(
            f"{where}: {what}; a tree holds only files and folders (remove it)"
        )
    if is_dir and not real:
        real = os.path.realpath(entry.path)
    return real


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def open_source(
    url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> TreeSource:
    """A :class:`ZipSource` for ``*.zip`` URLs, else a :class:`DirectorySource`."""
    url = os.fspath(url)
    check_protocol(url)
    if url.rstrip("/").lower().endswith(".zip"):
        return ZipSource(url, storage_options)
    return DirectorySource(url.rstrip("/") or url, storage_options)
