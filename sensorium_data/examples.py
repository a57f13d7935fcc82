"""A converted store of synthetic mice in one call, for notebooks, tutorials and quick trials.

:func:`example_store` writes synthetic trees (:func:`~sensorium_data.synthesize`) and
converts them (:func:`~sensorium_data.convert`) into ``<folder>/<name>/sensorium.zarr``,
where ``<name>`` is made of the arguments: the same call again finds the finished store and
returns at once, other arguments make another store beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
from typing import Any

from .errors import SensoriumDataError
from .store.access import list_mice
from .store.convert import convert
from .synthetic.generate import synthesize

__all__ = ["example_store"]

STORE_NAME = "sensorium.zarr"
TREES_NAME = "trees"


def _done(store: pathlib.Path, n_mice: int) -> bool:
    if not store.is_dir():
        return False
    try:
        return len(list_mice(store)) == n_mice
    except (SensoriumDataError, OSError, ValueError, KeyError):
        return False


def example_store(
    folder: str | os.PathLike[str],
    *,
    kind: str = "static",
    n_mice: int = 2,
    n_trials: int | None = None,
    n_neurons: int | None = None,
    n_frames: int | None = None,
    image_size: tuple[int, int] | None = None,
    seed: int = 0,
    competition: bool | None = None,
    behavior_gain: float | None = None,
    shift_scale: float | None = None,
    fano: float | None = None,
    progress: bool = False,
) -> pathlib.Path:
    """Make (or find) a converted store of synthetic mice; returns its path.

    Parameters
    ----------
    folder
        Local folder, created if missing. The store is
        ``<folder>/<kind>-<n_mice>mice-<digest>/sensorium.zarr``, its source trees (and each
        tree's ``<tree>.ground_truth.npz`` of noise-free rates) are in ``trees/`` beside it.
    kind, n_mice, n_trials, n_neurons, n_frames, image_size, seed, competition,
    behavior_gain, shift_scale, fano
        As for :func:`~sensorium_data.synthesize` (which checks them). With
        ``n_mice >= 2`` and ``competition=None`` the last mouse is a competition mouse: its test
        responses are withheld (zero), as in the real releases.
    progress
        Show progress bars while synthesising and converting.

    Returns
    -------
    pathlib.Path
        The store, ready for :func:`~sensorium_data.open_mouse` and
        :func:`~sensorium_data.make_loaders`. A finished store of the same arguments is reused.
    """
    args: dict[str, Any] = {
        "kind": kind,
        "n_mice": n_mice,
        "n_trials": n_trials,
        "n_neurons": n_neurons,
        "n_frames": n_frames,
        "image_size": list(image_size) if image_size is not None else None,
        "seed": seed,
        "competition": competition,
        "behavior_gain": behavior_gain,
        "shift_scale": shift_scale,
    }
    if fano is not None:  # only then: the digests of earlier examples stay the same
        args["fano"] = fano
    digest = hashlib.sha1(json.dumps(args, sort_keys=True).encode()).hexdigest()[:10]
    base = pathlib.Path(folder) / f"{kind}-{n_mice}mice-{digest}"
    store = base / STORE_NAME
    if _done(store, n_mice):
        return store
    if base.exists():  # an earlier call was interrupted: start this example over
        shutil.rmtree(base)
    trees = synthesize(
        base / TREES_NAME,
        kind=kind,
        n_mice=n_mice,
        n_trials=n_trials,
        n_neurons=n_neurons,
        n_frames=n_frames,
        image_size=image_size,
        seed=seed,
        competition=competition,
        behavior_gain=behavior_gain,
        shift_scale=shift_scale,
        fano=fano,
        progress=progress,
    )
    convert(trees, store, progress=progress)
    return store
