"""Minimal official file trees written from docs/format.md (not from the generator).

``write_tree`` writes a small valid tree of either year; tests then break one rule at a time.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

STATIC_SHAPES = {
    "images": (1, 12, 20),
    "responses": (None,),
    "behavior": (3,),
    "pupil_center": (2,),
}
DYNAMIC_SHAPES = {
    "videos": (6, 10, None),
    "responses": (None, None),
    "behavior": (2, None),
    "pupil_center": (2, None),
}


def _trial_shape(key: str, template: tuple, n_neurons: int, n_frames: int) -> tuple[int, ...]:
    """Fill a shape template: ``None`` is neurons (first axis of responses) or frames."""
    return tuple(
        (n_neurons if j == 0 and key == "responses" else n_frames) if s is None else s
        for j, s in enumerate(template)
    )


def write_tree(
    parent: str | os.PathLike[str],
    kind: str = "static",
    *,
    name: str | None = None,
    n_trials: int = 37,
    n_neurons: int = 5,
    n_frames: int = 20,
    seed: int = 0,
    image_dtype: str = "float32",
) -> Path:
    """Write a valid tree; return its top folder. Trial count deliberately not a chunk multiple."""
    rng = np.random.default_rng(seed)
    if name is None:
        name = (
            "static11111-1-1-GrayImageNet-" if kind == "static" else "dynamic22222-2-2-Video-"
        ) + "0123456789abcdef0123456789abcdef"
    root = Path(parent) / name
    template = STATIC_SHAPES if kind == "static" else DYNAMIC_SHAPES
    valid = n_frames - rng.integers(0, n_frames // 3, size=n_trials)
    for key, tshape in template.items():
        shape = _trial_shape(key, tshape, n_neurons, n_frames)
        (root / "data" / key).mkdir(parents=True)
        for i in range(n_trials):
            x = rng.normal(size=shape) * 10 + 50
            x = x.astype(image_dtype if key in ("images", "videos") else "float32")
            if kind == "dynamic":
                x[..., valid[i] :] = np.nan
            np.save(root / "data" / key / f"{i}.npy", x)
    trials = root / "meta" / "trials"
    neurons = root / "meta" / "neurons"
    trials.mkdir(parents=True)
    neurons.mkdir(parents=True)
    tiers = np.array((["train", "validation", "test"] * n_trials)[:n_trials])
    np.save(trials / "tiers.npy", tiers)
    np.save(trials / "frame_image_id.npy", rng.integers(0, 10, n_trials))
    np.save(trials / "trial_idx.npy", rng.permutation(n_trials))
    np.save(trials / "scan_idx.npy", np.full(n_trials, 3))
    ts = np.array(
        [f"Timestamp('2019-07-03 10:{i // 60:02d}:{i % 60:02d}')" for i in range(n_trials)],
        dtype=object,
    )
    np.save(trials / "frame_trial_ts.npy", ts, allow_pickle=True)
    mixed = np.array(
        [i if i % 3 else (None if i % 2 else f"s{i}") for i in range(n_trials)], dtype=object
    )
    np.save(trials / "mixed_objects.npy", mixed, allow_pickle=True)
    np.save(neurons / "unit_ids.npy", np.sort(rng.choice(10_000, n_neurons, replace=False)))
    np.save(neurons / "scan_idx.npy", np.full(n_neurons, 3))
    np.save(neurons / "area.npy", np.array(["V1"] * n_neurons))
    np.save(neurons / "cell_motor_coordinates.npy", rng.normal(size=(n_neurons, 3)) * 100)
    for key, tshape in template.items():
        for sub in ("all", "stimulus_frame"):
            folder = root / "meta" / "statistics" / key / sub
            folder.mkdir(parents=True)
            for stat in ("mean", "std", "min", "max", "median"):
                shape = () if key == "images" else _trial_shape(key, tshape, n_neurons, n_frames)
                np.save(folder / f"{stat}.npy", rng.normal(size=shape))
    (root / "config.json").write_text('{"links": {}}\n')
    return root


def zip_tree(root: Path, *, macosx: bool = True) -> Path:
    """Zip ``root`` the way the releases are packed (one top folder, optional __MACOSX junk)."""
    out = root.parent / (root.name + ".zip")
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted(root.rglob("*")):
            zf.write(path, path.relative_to(root.parent).as_posix())
        if macosx:
            zf.writestr(f"__MACOSX/{root.name}/._config.json", b"junk")
    return out


def copy_tree(root: Path, dest: Path) -> Path:
    target = dest / root.name
    shutil.copytree(root, target)
    return target
