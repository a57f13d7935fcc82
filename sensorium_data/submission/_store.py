"""What the submission files need of a store's mice: tiers, trial and image ids, unit ids."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..conventions import usable_frames
from ..store.access import list_mice, open_mouse, resolve_mouse

_IMAGE_ID_NAMES = ("frame_image_id", "image_id", "colorframeprojector_image_id")


# ----------------------------------------------------------------------------- the store


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class _Mouse:
    """What the submission files need of one mouse of a store (metadata only)."""

    key: str
    source: str
    kind: str
    tiers: np.ndarray
    trial_idx: np.ndarray | None
    image_ids: np.ndarray | None
    valid_frames: np.ndarray | None
    n_frames: int | None
    unit_ids: np.ndarray

    def trials(self, tier: str) -> np.ndarray:
        """File indices of the trials of ``tier``, ascending."""
        return np.flatnonzero(self.tiers == tier)

    def valid(self, index: int) -> int:
        """2023: the valid frames of trial ``index``."""
        valid = self.n_frames if self.valid_frames is None else self.valid_frames[index]
        return int(valid)  # type: ignore[arg-type]

    def scored_stop(self, index: int, scored_frames: str) -> int:
        """2023: one past the last scored frame of trial ``index`` under a convention."""
        return int(usable_frames(self.valid(index), self.n_frames, scored_frames))

    def scored_frames(self, index: int, skip: int, scored_frames: str) -> int:
        """2023: how many frames of trial ``index`` are scored (``skip .. scored_stop - 1``)."""
        return self.scored_stop(index, scored_frames) - skip


def _strings(values: np.ndarray) -> np.ndarray:
    """A fixed-width str array (xarray gives numpy StringDType, which cannot be cast to it)."""
    return np.array(values.tolist(), dtype=str)


def _coord(ds: Any, names: Sequence[str]) -> np.ndarray | None:
    for name in names:
        for candidate in (name, f"trial_{name}", f"neuron_{name}"):
            if candidate in ds.coords:
                values = ds.coords[candidate].values
                return values if values.dtype.kind in "iufb" else _strings(values)
    return None


class _StoreView:
    """Lazily opened mice of a store, by group name or full folder name."""

    def __init__(self, url: Any, storage_options: dict[str, Any] | None) -> None:
        self.url = url
        self.storage_options = storage_options
        self.attrs = list_mice(url, storage_options)
        self.by_source = {a["source_name"]: k for k, a in self.attrs.items()}
        self._cache: dict[str, _Mouse] = {}

    def key(self, mouse: str) -> str:
        return resolve_mouse(self.attrs, mouse, self.url)

    def keys(self, kind: str) -> list[str]:
        return [k for k, a in self.attrs.items() if a["kind"] == kind and a["complete"]]

    def source(self, key: str) -> str:
        return str(self.attrs[key]["source_name"])

    def dataset(self, key: str) -> Any:
        return open_mouse(self.url, key, self.storage_options, chunks=None)

    def get(self, mouse: str) -> _Mouse:
        key = self.key(mouse)
        if key not in self._cache:
            ds = self.dataset(key)
            unit_ids, valid = _coord(ds, ("unit_ids",)), _coord(ds, ("valid_frames",))
            self._cache[key] = _Mouse(
                key=key,
                source=self.source(key),
                kind=self.attrs[key]["kind"],
                tiers=_strings(ds.coords["tiers"].values),
                trial_idx=_coord(ds, ("trial_idx",)),
                image_ids=_coord(ds, _IMAGE_ID_NAMES),
                valid_frames=valid,
                n_frames=int(ds.sizes["frame"]) if "frame" in ds.sizes else None,
                unit_ids=np.asarray(ds["neuron"].values if unit_ids is None else unit_ids),
            )
        return self._cache[key]
