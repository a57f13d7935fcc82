"""Reader of one official SENSORIUM file tree (both years), with its validation.

:class:`FileTree` checks the layout when it is opened (every data key has files ``0..N-1``, meta
arrays have one entry per trial or neuron, ``meta/trials/tiers.npy`` exists, statistics fit the
trials, every ``.npy`` parses) and reads blocks of trials on demand, checking each trial against
trial 0's shape and dtype. Nothing is written anywhere, and nothing outside the tree is read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidFileTreeError
from .npyio import load_npy, parse_npy_header
from .sources import TreeSource, open_source
from .statistics import statistic_problem

__all__ = ["FileTree", "TrialSpec", "open_tree", "read_trial_block", "short_data_key"]

_TRIAL_FILE = re.compile(r"^(0|[1-9][0-9]*)\.npy$")
#: Deepest nesting of ``config.json`` kept (the releases' is ``{"links": {}}``: 2 levels).
MAX_CONFIG_DEPTH = 32


@dataclass(frozen=True)
class TrialSpec:
    """Shape and dtype that every trial file of one data key must have."""

    shape: tuple[int, ...]
    dtype: np.dtype


def short_data_key(name: str) -> str:
    """``static26872-17-20-GrayImageNet-94c6...`` -> ``26872-17-20``."""
    stem = re.sub(r"^(static|dynamic)", "", name)
    parts = stem.split("-")
    digits = []
    for part in parts:
        if not part.isdigit():
            break
        digits.append(part)
    return "-".join(digits) if digits else name


def _is_hidden(path: str) -> bool:
    return any(p.startswith(".") for p in path.split("/"))


class FileTree:
    """One mouse's official file tree, validated on open, read lazily.

    Parameters
    ----------
    source
        A :class:`~sensorium_data.filetree.sources.TreeSource` (see :func:`open_tree` for URLs).

    Attributes
    ----------
    name, data_key, kind
        Top folder name, short data key (``26872-17-20``), ``"static"`` or ``"dynamic"``.
    n_trials, n_neurons
        Counts from the data files.
    data_keys
        Folders under ``data/``, sorted.
    specs
        :class:`TrialSpec` of each data key, from trial 0.
    meta_trials, meta_neurons
        Every ``meta/trials/*.npy`` and ``meta/neurons/*.npy`` array, by file stem.
    statistics
        ``{key: {subfolder: {stat: array}}}`` from ``meta/statistics``.
    config
        The parsed ``config.json`` or ``None``.
    extra_files
        Other files of the tree (kept verbatim by the converter), relative paths.
    file_sizes
        ``{path: bytes}`` of the tree's files (hidden ones left out).
    source_bytes
        Total size of the tree's files (uncompressed).
    """

    def __init__(self, source: TreeSource) -> None:
        self.source = source
        self.name = source.name
        self.data_key = short_data_key(self.name)
        sizes = {f: n for f, n in source.file_sizes().items() if not _is_hidden(f)}
        self.file_sizes = sizes
        self.source_bytes = sum(sizes.values())
        files = sorted(sizes)
        self._trial_files, other = self._scan_data(files)
        self.data_keys = sorted(self._trial_files)
        self.n_trials = len(self._trial_files[self.data_keys[0]])
        first = source.read_many([self.trial_path(k, 0) for k in self.data_keys])
        self.specs: dict[str, TrialSpec] = {}
        for key, raw in zip(self.data_keys, first, strict=True):
            name = self.describe(self.trial_path(key, 0))
            arr = load_npy(raw, name)
            if arr.dtype.kind not in "biuf":
                raise InvalidFileTreeError(
                    f"{name}: holds {arr.dtype} values; trials hold numbers (bool, integer or "
                    "float), which every trial of the key must share"
                )
            self.specs[key] = TrialSpec(arr.shape, arr.dtype)
        self.kind = self._detect_kind()
        self.config: dict[str, Any] | None = None
        self.meta_trials: dict[str, np.ndarray] = {}
        self.meta_neurons: dict[str, np.ndarray] = {}
        self.statistics: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        self.extra_files: list[str] = []
        self._read_meta(other)
        self.n_neurons = self._count_neurons()
        self._check_meta_lengths()
        self._check_tiers()
        self._check_statistics()

    # -- layout -------------------------------------------------------------------------------
    def _scan_data(self, files: list[str]) -> tuple[dict[str, list[str]], list[str]]:
        per_key: dict[str, set[int]] = {}
        other = []
        for f in files:
            parts = f.split("/")
            if parts[0] != "data":
                other.append(f)
                continue
            if len(parts) != 3:
                raise InvalidFileTreeError(
                    f"{self.describe(f)}: unexpected file; data/ must hold <key>/<i>.npy only"
                )
            m = _TRIAL_FILE.match(parts[2])
            if m is None:
                raise InvalidFileTreeError(
                    f"{self.describe(f)}: unexpected file name; trial files are named <i>.npy "
                    "with i = 0..N-1"
                )
            per_key.setdefault(parts[1], set()).add(int(m.group(1)))
        if not per_key:
            raise InvalidFileTreeError(
                f"{self.source.describe()}: no data/<key>/<i>.npy files; is this the top folder "
                "of a SENSORIUM file tree (the one holding data/ and meta/)?"
            )
        counts = {k: len(v) for k, v in per_key.items()}
        if len(set(counts.values())) > 1:
            listing = ", ".join(f"data/{k}: {n}" for k, n in sorted(counts.items()))
            every = set().union(*per_key.values())
            key = min(k for k in sorted(per_key) if per_key[k] != every)
            raise InvalidFileTreeError(
                f"{self.describe(self.trial_path(key, min(every - per_key[key])))}: trial file "
                f"is missing; data keys hold unequal numbers of trial files ({listing}); every "
                "data/<key>/ must hold the same trials"
            )
        for key, idx in sorted(per_key.items()):
            n = len(idx)
            if max(idx) != n - 1:
                missing = min(set(range(n)) - idx)
                raise InvalidFileTreeError(
                    f"{self.describe(self.trial_path(key, missing))}: trial file is missing "
                    f"(data/{key}/ holds {n} files numbered up to {max(idx)})"
                )
        return {
            k: [self.trial_path(k, i) for i in range(len(v))] for k, v in per_key.items()
        }, other

    def _detect_kind(self) -> str:
        if self.name.startswith("static"):
            return "static"
        if self.name.startswith("dynamic"):
            return "dynamic"
        if "videos" in self.specs:
            return "dynamic"
        if "images" in self.specs:
            return "static"
        resp = self.specs.get("responses")
        return "dynamic" if resp is not None and len(resp.shape) == 2 else "static"

    def _read_meta(self, files: list[str]) -> None:
        meta = [f for f in files if f.startswith("meta/") and f.endswith(".npy")]
        raws = self.source.read_many(meta)
        for f, raw in zip(meta, raws, strict=True):
            parts = f.split("/")
            arr = load_npy(raw, self.describe(f))
            if arr.dtype.kind == "V":
                raise InvalidFileTreeError(
                    f"{self.describe(f)}: holds {arr.dtype} (raw bytes or records), which the "
                    "store cannot keep; meta arrays hold numbers or strings"
                )
            stem = parts[-1][: -len(".npy")]
            if len(parts) == 3 and parts[1] == "trials":
                self.meta_trials[stem] = arr
            elif len(parts) == 3 and parts[1] == "neurons":
                self.meta_neurons[stem] = arr
            elif len(parts) == 5 and parts[1] == "statistics":
                self.statistics.setdefault(parts[2], {}).setdefault(parts[3], {})[stem] = arr
            else:
                self.extra_files.append(f)
        for f in files:
            if f == "config.json":
                self.extra_files.append(f)  # kept verbatim for export
                self.config = self._read_config(f)
            elif f not in meta:
                self.extra_files.append(f)
        self.extra_files.sort()

    def _read_config(self, path: str) -> Any:
        """The parsed ``config.json`` (stored in the mouse's attributes, so kept shallow)."""
        too_deep = (
            f"{self.describe(path)}: JSON nested more than {MAX_CONFIG_DEPTH} levels deep; the "
            'official config.json is {"links": {...}}'
        )
        try:
            config = json.loads(self.source.read(path))
        except RecursionError:
            raise InvalidFileTreeError(too_deep) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidFileTreeError(f"{self.describe(path)}: invalid JSON ({exc})") from None
        if _json_depth(config) > MAX_CONFIG_DEPTH:
            raise InvalidFileTreeError(too_deep)
        return config

    def _count_neurons(self) -> int:
        if "responses" in self.specs and self.specs["responses"].shape:
            return self.specs["responses"].shape[0]
        if "unit_ids" in self.meta_neurons:
            return len(self.meta_neurons["unit_ids"])
        return 0

    def _check_meta_lengths(self) -> None:
        for folder, arrays, n, what in (
            ("trials", self.meta_trials, self.n_trials, "trials"),
            ("neurons", self.meta_neurons, self.n_neurons, "neurons"),
        ):
            for stem, arr in arrays.items():
                if arr.ndim == 0 or arr.shape[0] != n:
                    found = "a scalar" if arr.ndim == 0 else f"length {arr.shape[0]}"
                    raise InvalidFileTreeError(
                        f"{self.describe(f'meta/{folder}/{stem}.npy')}: has {found} but the tree "
                        f"has {n} {what}; meta/{folder} arrays need one entry per {what[:-1]}"
                    )

    def _check_tiers(self) -> None:
        """Every loader selects trials by ``meta/trials/tiers.npy``: it must be there."""
        path = self.describe("meta/trials/tiers.npy")
        tiers = self.meta_trials.get("tiers")
        if tiers is None:
            raise InvalidFileTreeError(
                f"{path}: file is missing; every tree needs the tier of each trial (train, "
                "validation, test, ...), by which the loaders select trials"
            )
        strings = tiers.dtype.kind == "U" or (
            tiers.dtype == object and all(isinstance(v, str) for v in tiers.flat)
        )
        if tiers.ndim != 1 or not strings:
            raise InvalidFileTreeError(
                f"{path}: holds {tiers.dtype}{tiers.shape}; expected one tier name per trial "
                "(strings such as 'train')"
            )

    def _check_statistics(self) -> None:
        """Statistics the normaliser uses must fit the trials of their data key."""
        for key, subs in sorted(self.statistics.items()):
            spec = self.specs.get(key)
            if spec is None:  # statistics of a key without data: nothing to fit
                continue
            for sub, stats in sorted(subs.items()):
                for stat, arr in sorted(stats.items()):
                    problem = statistic_problem(self.kind, key, arr.shape, arr.dtype, spec.shape)
                    if problem:
                        path = f"meta/statistics/{key}/{sub}/{stat}.npy"
                        raise InvalidFileTreeError(f"{self.describe(path)}: {problem}")

    # -- reading ------------------------------------------------------------------------------
    @staticmethod
    def trial_path(key: str, index: int) -> str:
        return f"data/{key}/{index}.npy"

    def describe(self, path: str) -> str:
        return self.source.describe(path)

    def read_trials(self, key: str, indices: Sequence[int]) -> np.ndarray:
        """Stack the trials ``indices`` of ``key``, checking each against trial 0."""
        return read_trial_block(self.source, key, self.specs[key], indices)

    def __repr__(self) -> str:
        return (
            f"<FileTree {self.name}: {self.kind}, {self.n_trials} trials, {self.n_neurons} "
            f"neurons, keys {self.data_keys}>"
        )


def _json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, dict):
            stack += [(v, depth + 1) for v in node.values()]
        elif isinstance(node, list):
            stack += [(v, depth + 1) for v in node]
    return deepest


def read_trial_block(
    source: TreeSource, key: str, spec: TrialSpec, indices: Sequence[int]
) -> np.ndarray:
    """Stack trials ``indices`` of data key ``key`` from ``source``, each checked by ``spec``.

    Files are streamed a few at a time; a header byte-identical to the previous file's is not
    parsed again, and each trial is copied once, straight into the output block.
    """
    out = np.empty((len(indices), *spec.shape), dtype=spec.dtype)
    paths = [FileTree.trial_path(key, int(i)) for i in indices]
    known: bytes | None = None
    header = None
    for j, (path, raw) in enumerate(zip(paths, source.iter_read(paths), strict=True)):
        name = source.describe(path)
        if known is None or raw[: len(known)] != known:
            header = parse_npy_header(raw, name)
            if header.shape != spec.shape or header.dtype != spec.dtype:
                raise InvalidFileTreeError(
                    f"{name}: shape {header.shape} dtype {header.dtype} differs from trial 0's "
                    f"shape {spec.shape} dtype {spec.dtype}; every trial of data/{key} must match"
                )
            known = None if header.dtype.hasobject else raw[: header.offset]
        if known is None:
            out[j] = load_npy(raw, name)
        else:
            out[j] = header.array(raw, name)  # type: ignore[union-attr]
    return out


def open_tree(url: Any, storage_options: dict[str, Any] | None = None) -> FileTree:
    """Open and validate a file tree from a folder or ``.zip`` at any fsspec URL."""
    return FileTree(open_source(url, storage_options))
