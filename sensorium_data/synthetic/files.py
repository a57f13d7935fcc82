"""File writing for :mod:`~.generate`: ``.npy`` files, a streamed ``.npz``, the
release's statistics files, and zips laid out like the releases (fixed dates, sorted entries)."""

from __future__ import annotations

import math
import os
import pathlib
import shutil
import struct
import zipfile
from typing import Any

import numpy as np

__all__ = [
    "ZIP_TIME",
    "NpzStream",
    "elementwise_statistics",
    "histogram_statistics",
    "nan_statistics",
    "save",
    "write_statistics",
    "zip_tree",
]

ZIP_TIME = (2023, 1, 1, 0, 0, 0)
_STAT_BUDGET = 64 * 2**20


def save(path: pathlib.Path, array: np.ndarray) -> None:
    """``np.save``, making the folders (object arrays pickled, as the releases' timestamps)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array, allow_pickle=array.dtype == object)


class NpzStream:
    """An uncompressed ``.npz`` written entry by entry, the first one streamed block by block."""

    def __init__(self, path: pathlib.Path) -> None:
        self._zip = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True)
        self._handle: Any = None

    def begin(self, name: str, shape: tuple[int, ...]) -> None:
        info = zipfile.ZipInfo(name + ".npy", date_time=ZIP_TIME)
        self._handle = self._zip.open(info, "w", force_zip64=True)
        header = {"descr": "<f4", "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(self._handle, header)

    def write(self, block: np.ndarray) -> None:
        self._handle.write(np.ascontiguousarray(block, dtype="<f4").tobytes())

    def add(self, name: str, array: Any) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        with self._zip.open(zipfile.ZipInfo(name + ".npy", date_time=ZIP_TIME), "w") as fh:
            np.lib.format.write_array(fh, np.asarray(array), allow_pickle=False)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._zip.close()


def nan_statistics(block: np.ndarray) -> dict[str, np.ndarray]:
    """nan-aware mean, std, min, max, median over axis 0 (NaN where no value is valid)."""
    valid = ~np.isnan(block)
    count = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, block, 0.0).sum(axis=0, dtype=np.float64) / count
        var = np.where(valid, (block - mean) ** 2, 0.0).sum(axis=0) / count
    ordered = np.sort(block, axis=0)  # NaN last

    def pick(k: np.ndarray) -> np.ndarray:
        picked = np.take_along_axis(ordered, np.maximum(k, 0)[None], axis=0)[0]
        return np.asarray(picked, dtype=np.float64)

    empty = count == 0
    stats = {
        "mean": mean,
        "std": np.sqrt(var),
        "min": pick(np.zeros_like(count)),
        "max": pick(count - 1),
        "median": 0.5 * (pick((count - 1) // 2) + pick(count // 2)),
    }
    return {k: np.where(empty, np.nan, v).astype(np.float32) for k, v in stats.items()}


def elementwise_statistics(files: list[pathlib.Path]) -> dict[str, np.ndarray]:
    """Statistics over files, element by element, reading blocks of bounded size."""
    first = np.load(files[0], mmap_mode="r")
    shape, size = first.shape, first.size
    del first
    step = max(1, _STAT_BUDGET // (4 * len(files)))
    out: dict[str, np.ndarray] = {}
    for a in range(0, size, step):
        block = np.stack(
            [
                np.load(f, mmap_mode="r" if size > 4096 else None).reshape(-1)[a : a + step]
                for f in files
            ]
        )
        for name, value in nan_statistics(block).items():
            out.setdefault(name, np.empty(size, dtype=np.float32))[a : a + step] = value
    return {name: value.reshape(shape) for name, value in out.items()}


def histogram_statistics(hist: np.ndarray) -> dict[str, np.ndarray]:
    """Scalar statistics of integer-valued pixels from their histogram over 0..255."""
    values = np.arange(len(hist), dtype=np.float64)
    n = hist.sum()
    mean = (hist * values).sum() / n
    cum = np.cumsum(hist)
    lo, hi = np.searchsorted(cum, (n - 1) // 2, "right"), np.searchsorted(cum, n // 2, "right")
    present = np.flatnonzero(hist)
    stats = {
        "mean": mean,
        "std": math.sqrt((hist * (values - mean) ** 2).sum() / n),
        "min": present[0],
        "max": present[-1],
        "median": (lo + hi) / 2,
    }
    return {k: np.array(v, dtype=np.float32) for k, v in stats.items()}


def write_statistics(
    root: pathlib.Path, key: str, stats: dict[str, np.ndarray], subfolders: tuple[str, ...]
) -> None:
    """``meta/statistics/<key>/<subfolder>/<name>.npy`` for each statistic and subfolder."""
    for sub in subfolders:
        for name, value in stats.items():
            save(root / "meta" / "statistics" / key / sub / f"{name}.npy", value)


# ----------------------------------------------------------------------------- zip


def zip_tree(folder: pathlib.Path, mac_junk: bool) -> pathlib.Path:
    """Zip ``folder`` to ``<folder>.zip`` (one top folder, stored, fixed dates; ``mac_junk``
    adds the ``__MACOSX/`` folder of the 2023 release) and delete the folder."""
    target = folder.with_name(folder.name + ".zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            rel = pathlib.Path(dirpath).relative_to(folder.parent).as_posix()
            _zip_dir(zf, rel + "/")
            for name in sorted(filenames, key=lambda s: (len(s), s)):
                src = pathlib.Path(dirpath) / name
                info = zipfile.ZipInfo(f"{rel}/{name}", date_time=ZIP_TIME)
                info.external_attr = 0o100644 << 16
                info.file_size = src.stat().st_size
                with open(src, "rb") as fin, zf.open(info, "w") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
        if mac_junk:
            _zip_dir(zf, "__MACOSX/")
            _zip_dir(zf, f"__MACOSX/{folder.name}/")
            apple_double = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", 0)
            info = zipfile.ZipInfo(f"__MACOSX/{folder.name}/._config.json", date_time=ZIP_TIME)
            zf.writestr(info, apple_double)
    shutil.rmtree(folder)
    return target


def _zip_dir(zf: zipfile.ZipFile, name: str) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.external_attr = (0o40755 << 16) | 0x10
    zf.writestr(info, b"")
