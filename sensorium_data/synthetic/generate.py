"""Synthetic SENSORIUM recordings in the exact official file layouts (2022 static, 2023 dynamic).

The responses come from a known ground-truth encoder (:mod:`sensorium_data.synthetic.encoder`);
its noise-free rates are saved beside each tree so that loaders, models and metrics can be tested
against the truth. Only numpy and the standard library are used.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import numbers
import os
import pathlib
import shutil
from typing import Any

import numpy as np

from . import encoder as enc
from . import files

__all__ = ["synthesize"]

_DEFAULTS = {"static": (240, 64, None, (144, 256)), "dynamic": (60, 32, 90, (36, 64))}
_STATIC_BLOCK = 64
_STATIC_TEST_TIERS = ("test", "final_test")
_DYNAMIC_TEST_TIERS = ("live_test_main", "live_test_bonus", "final_test_main", "final_test_bonus")


@dataclasses.dataclass(frozen=True)
class _Args:
    kind: str
    n_mice: int
    n_trials: int
    n_neurons: int
    n_frames: int
    image_size: tuple[int, int]
    seed: int
    competition: tuple[bool, ...]
    encoder: tuple[tuple[str, float], ...] = ()

    def digest(self) -> str:
        """The release suffix: default encoder knobs leave it as it was before they existed."""
        fields = dataclasses.astuple(self)
        return hashlib.md5(repr(fields if self.encoder else fields[:-1]).encode()).hexdigest()


# ----------------------------------------------------------------------------- arguments


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def _parse_args(
    kind: Any,
    n_mice: Any,
    n_trials: Any,
    n_neurons: Any,
    n_frames: Any,
    image_size: Any,
    seed: Any,
    competition: Any,
    behavior_gain: Any = None,
    shift_scale: Any = None,
    fano: Any = None,
) -> _Args:
    if kind not in _DEFAULTS:
        raise ValueError(f"kind must be 'static' (2022) or 'dynamic' (2023), got {kind!r}")
    d_trials, d_neurons, d_frames, d_size = _DEFAULTS[kind]
    if kind == "static" and n_frames is not None:
        raise ValueError(f"n_frames applies to kind='dynamic' only, got n_frames={n_frames!r}")
    n_mice = _positive_int("n_mice", n_mice)
    n_trials = _positive_int("n_trials", d_trials if n_trials is None else n_trials)
    n_neurons = _positive_int("n_neurons", d_neurons if n_neurons is None else n_neurons)
    frames = (
        1
        if kind == "static"
        else _positive_int("n_frames", d_frames if n_frames is None else n_frames, minimum=3)
    )
    size = d_size if image_size is None else image_size
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 4 for v in size)
    ):
        raise ValueError(
            f"image_size must be a pair of integers >= 4 (height, width), got {image_size!r}"
        )
    seed = _positive_int("seed", seed, minimum=0)
    if competition is not None and not isinstance(competition, bool):
        raise ValueError(f"competition must be None, True or False, got {competition!r}")
    if competition is None:
        flags = tuple(n_mice >= 2 and m == n_mice - 1 for m in range(n_mice))
    else:
        flags = (competition,) * n_mice
    encoder = tuple(
        (name, _non_negative(name, value))
        for name, value in (("behavior_gain", behavior_gain), ("shift_scale", shift_scale))
        if value is not None
    )
    if fano is not None:
        if not _non_negative("fano", fano) > 0:
            raise ValueError(f"fano must be a positive number, got {fano!r}")
        encoder += (("fano", float(fano)),)
    args = _Args(
        kind,
        n_mice,
        n_trials,
        n_neurons,
        frames,
        (int(size[0]), int(size[1])),
        seed,
        flags,
        encoder,
    )
    _plan(args, any(flags))  # raises when n_trials cannot hold every tier
    return args


# ----------------------------------------------------------------------------- trial plans


def _static_counts(n: int, competition: bool) -> dict[str, Any] | None:
    budget = n // 6
    repeats = min(10, max(2, round(math.sqrt(budget))))
    images = budget // repeats
    counts = {
        "test": images * repeats,
        "final_test": images * repeats if competition else 0,
        "validation": max(2, n // 10),
    }
    counts["train"] = n - sum(counts.values())
    if images < 2 or counts["train"] < 4:
        return None
    return {"counts": counts, "repeats": repeats, "images": images}


def _dynamic_counts(n: int, competition: bool) -> dict[str, Any] | None:
    budget = n // 12
    repeats = min(10, max(2, budget // 6))
    clips = budget // repeats
    bonus = max(2, n // 14)
    counts = {
        "oracle": clips * repeats,
        "live_test_main": clips * repeats,
        "final_test_main": clips * repeats,
        "live_test_bonus": bonus,
        "final_test_bonus": bonus,
        "none": max(1, n // 70),
    }
    counts["train"] = n - sum(counts.values())
    if clips < 1 or counts["train"] < 4:
        return None
    return {"counts": counts, "repeats": repeats, "clips": clips}


def _plan(args: _Args, competition: bool) -> dict[str, Any]:
    counter = _static_counts if args.kind == "static" else _dynamic_counts
    plan = counter(args.n_trials, competition)
    if plan is None:
        least = next(n for n in range(1, 10_000) if counter(n, competition) is not None)
        raise ValueError(
            f"n_trials={args.n_trials} is too small for kind={args.kind!r}"
            f"{' with a competition mouse' if competition else ''}: every tier needs trials and "
            f"every test tier at least 2 repeats; use n_trials >= {least}"
        )
    return plan


def _shared_stimuli(args: _Args, rng: np.random.Generator) -> dict[str, Any]:
    """Stimulus ids shared by all mice (test sets), and a pool of per-mouse unique ids."""
    plan = _plan(args, any(args.competition))
    n_shared = (
        2 * plan.get("images", 0)
        + 3 * plan.get("clips", 0)
        + 2 * plan["counts"].get("live_test_bonus", 0)
    )
    pool = rng.choice(10**7, size=n_shared + args.n_mice * args.n_trials, replace=False) + 1
    shared, pool = pool[:n_shared], pool[n_shared:].reshape(args.n_mice, args.n_trials)
    out: dict[str, Any] = {"pool": pool}
    if args.kind == "static":
        out["test"], out["final_test"] = np.split(shared, 2)
    else:
        clips, bonus = plan["clips"], plan["counts"]["live_test_bonus"]
        parts = np.split(shared, np.cumsum([clips, clips, clips, bonus]))
        names = (
            "oracle",
            "live_test_main",
            "final_test_main",
            "live_test_bonus",
            "final_test_bonus",
        )
        for name, ids in zip(names, parts, strict=True):
            out[name] = ids
    return out


def _stim_type(tier: str, position: int) -> str:
    if tier.endswith("bonus"):
        return enc.OOD_TYPES[position % len(enc.OOD_TYPES)]
    return "natural_movie"


def _trial_table(
    args: _Args, m: int, shared: dict[str, Any], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Per-trial table in file order: tiers, stimulus ids and types, presentation order."""
    plan = _plan(args, args.competition[m])
    tiers: list[str] = []
    ids: list[int] = []
    types: list[str] = []
    unique = iter(shared["pool"][m])
    for tier, count in plan["counts"].items():
        if tier in shared and tier.endswith("bonus"):
            tier_ids = list(shared[tier][:count])
        elif tier in shared:
            tier_ids = list(np.repeat(shared[tier][: count // plan["repeats"]], plan["repeats"]))
        else:
            tier_ids = [next(unique) for _ in range(count)]
        tiers += [tier] * count
        ids += [int(v) for v in tier_ids]
        types += [_stim_type(tier, j) for j in range(count)]
    order = rng.permutation(args.n_trials)
    table = {
        "tiers": np.array(tiers)[order],
        "stimulus_id": np.array(ids, dtype=np.int64)[order],
        "stimulus_type": np.array(types)[order],
        "presentation_index": rng.permutation(args.n_trials).astype(np.int64),
    }
    if args.kind == "static":
        table["stimulus_type"] = np.full(args.n_trials, "natural_image")
        table["valid_length"] = np.ones(args.n_trials, dtype=np.int64)
    else:
        table["valid_length"] = np.array([_valid_length(args, s) for s in table["stimulus_id"]])
    return table


def _valid_length(args: _Args, stim_id: int) -> int:
    rng = np.random.default_rng([args.seed, 3, int(stim_id)])
    t = args.n_frames
    if rng.random() < 0.25:
        return int(rng.integers(math.ceil(2 * t / 3), t))
    return t


def _neuron_meta(
    args: _Args, encoder: enc.Encoder, rng: np.random.Generator, ids: tuple[int, int, int]
) -> dict[str, np.ndarray]:
    n = args.n_neurons
    unit_ids = np.sort(rng.choice(np.arange(1, 4 * n + 1000), size=n, replace=False))
    l4 = rng.random(n) < 0.25
    depth = np.where(l4, rng.uniform(360.0, 450.0, n), rng.uniform(180.0, 340.0, n))
    angle = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    xy = 900.0 * encoder.params["cortex"] @ rot.T + rng.uniform(-2000.0, 2000.0, 2)
    coords = np.column_stack([xy + rng.normal(0.0, 15.0, (n, 2)), depth]).astype(np.float64)
    if args.kind == "dynamic":
        return {"unit_ids": unit_ids.astype(np.uint32), "cell_motor_coordinates": coords}
    return {
        "unit_ids": unit_ids.astype(np.int64),
        "area": np.full(n, "V1"),
        "layer": np.where(l4, "L4", "L2/3"),
        "cell_motor_coordinates": coords,
        "animal_ids": np.full(n, ids[0], dtype=np.int64),
        "sessions": np.full(n, ids[1], dtype=np.int64),
        "scan_idx": np.full(n, ids[2], dtype=np.int64),
    }


def _static_trial_meta(
    args: _Args,
    table: dict[str, np.ndarray],
    key: str,
    competition: bool,
    rng: np.random.Generator,
    ids: tuple[int, int, int],
) -> dict[str, np.ndarray]:
    n = args.n_trials
    pres = table["presentation_index"]
    blank = rng.uniform(0.3, 0.5, n)
    onset = np.cumsum(blank[np.argsort(pres)] + 0.5)[pres]
    start = datetime.datetime(2019, 7, 3, 9, 0, 0) + datetime.timedelta(
        days=int(rng.integers(0, 900)), seconds=int(rng.integers(0, 7200))
    )
    stamps = [
        f"Timestamp('{(start + datetime.timedelta(seconds=float(s))).isoformat(sep=' ')}')"
        for s in onset
    ]
    if competition:
        trial_idx = np.array(
            [hashlib.md5(f"{args.seed}-{key}-{p}".encode()).hexdigest() for p in pres]
        )
    else:
        trial_idx = pres.astype(np.int64)
    return {
        "tiers": table["tiers"].astype("<U10"),
        "frame_image_id": table["stimulus_id"],
        "frame_image_class": np.full(n, "natural_image"),
        "trial_idx": trial_idx,
        "frame_trial_ts": np.array(stamps, dtype=object),
        "scan_idx": np.full(n, ids[2], dtype=np.int64),
        "frame_pre_blank_period": blank,
    }


# ----------------------------------------------------------------------------- one mouse


@dataclasses.dataclass
class _Mouse:
    args: _Args
    index: int
    key: str
    root: pathlib.Path
    table: dict[str, np.ndarray]
    encoder: enc.Encoder
    behavior: dict[str, np.ndarray]
    noise: np.random.Generator
    bar: Any

    def withheld(self, i: int) -> bool:
        tiers = _STATIC_TEST_TIERS if self.args.kind == "static" else _DYNAMIC_TEST_TIERS
        return self.args.competition[self.index] and str(self.table["tiers"][i]) in tiers


def _write_static_data(mouse: _Mouse, gt: files.NpzStream) -> np.ndarray:
    args, table, beh = mouse.args, mouse.table, mouse.behavior
    samples = table["presentation_index"] * enc.STATIC_STEPS_PER_TRIAL + 5
    hist = np.zeros(256, dtype=np.int64)
    gt.begin("rates", (args.n_trials, args.n_neurons))
    for start in range(0, args.n_trials, _STATIC_BLOCK):
        rows = np.arange(start, min(args.n_trials, start + _STATIC_BLOCK))
        images = np.stack(
            [
                enc.natural_image(np.random.default_rng([args.seed, 1, int(s)]), *args.image_size)
                for s in table["stimulus_id"][rows]
            ]
        )
        s = samples[rows]
        drive = mouse.encoder.spatial_drive(
            enc.grid_spectrum(images, mouse.encoder.grid), beh["eye"][:, s].T
        )
        rates = mouse.encoder.rates(drive, beh["run_z"][s], beh["pupil_z"][s])
        responses = mouse.encoder.sample(mouse.noise, rates)
        behavior = np.stack([beh["pupil"][s], beh["dpupil"][s], beh["run"][s]], 1)
        for j, i in enumerate(rows.tolist()):
            data = {
                "images": images[j][None],
                "responses": responses[j] * (not mouse.withheld(i)),
                "behavior": behavior[j],
                "pupil_center": beh["pupil_center"][:, s[j]],
            }
            for name, value in data.items():
                files.save(mouse.root / "data" / name / f"{i}.npy", value.astype(np.float32))
            if table["tiers"][i] == "train":
                hist += np.bincount(images[j].astype(np.int64).ravel(), minlength=256)
        gt.write(rates)
        mouse.bar.update(len(rows))
    return hist


def _write_dynamic_data(mouse: _Mouse, gt: files.NpzStream) -> None:
    args, table, beh, encoder = mouse.args, mouse.table, mouse.behavior, mouse.encoder
    t_max = args.n_frames
    gt.begin("rates", (args.n_trials, args.n_neurons, t_max))
    for i in range(args.n_trials):
        stim_rng = np.random.default_rng([args.seed, 2, int(table["stimulus_id"][i])])
        kind = str(table["stimulus_type"][i])
        if kind == "natural_movie":
            video = enc.natural_movie(stim_rng, *args.image_size, t_max)
        else:
            video = enc.ood_movie(stim_rng, kind, *args.image_size, t_max)
        f0 = int(table["presentation_index"][i]) * (t_max + enc.GAP_FRAMES)
        frames = slice(f0, f0 + t_max)
        drive = encoder.temporal(
            encoder.spatial_drive(enc.grid_spectrum(video, encoder.grid), beh["eye"][:, frames].T)
        )
        rates_tn = encoder.rates(drive, beh["run_z"][frames], beh["pupil_z"][frames])
        responses = encoder.sample(mouse.noise, rates_tn).T * (not mouse.withheld(int(i)))
        rates = rates_tn.T
        data = {
            "videos": video.transpose(1, 2, 0),
            "responses": responses,
            "behavior": np.stack([beh["pupil"][frames], beh["run"][frames]]),
            "pupil_center": beh["pupil_center"][:, frames],
        }
        length = int(table["valid_length"][i])
        for name, values in data.items():
            value = np.ascontiguousarray(values, dtype=np.float32)
            value[..., length:] = np.nan
            files.save(mouse.root / "data" / name / f"{i}.npy", value)
        rates[:, length:] = np.nan
        gt.write(rates)
        mouse.bar.update(1)


def _make_mouse(
    args: _Args,
    m: int,
    key: str,
    root: pathlib.Path,
    shared: dict[str, Any],
    seq: np.random.SeedSequence,
    bar: Any,
) -> _Mouse:
    r_enc, r_beh, r_noise, r_meta, r_cal = (np.random.default_rng(s) for s in seq.spawn(5))
    grid = enc.encoder_grid(*args.image_size)
    dynamic = args.kind == "dynamic"
    knobs: dict[str, Any] = dict(args.encoder)
    config = dataclasses.replace(enc.DYNAMIC_CONFIG if dynamic else enc.STATIC_CONFIG, **knobs)
    encoder = enc.make_encoder(r_enc, args.n_neurons, grid, config, dynamic)
    h, w = args.image_size
    if dynamic:
        cal = [enc.natural_movie(r_cal, h, w, min(args.n_frames, 60)) for _ in range(3)]
        n_samples, dt = args.n_trials * (args.n_frames + enc.GAP_FRAMES), 1.0 / enc.FRAME_RATE
    else:
        cal = [np.stack([enc.natural_image(r_cal, h, w) for _ in range(48)])]
        n_samples, dt = (args.n_trials + 1) * enc.STATIC_STEPS_PER_TRIAL, enc.STATIC_STEP_S
    enc.calibrate(encoder, cal)
    behavior = enc.behavior_process(r_beh, n_samples, dt)
    eye_center, eye_scale = r_beh.uniform([150.0, 100.0], [350.0, 250.0]), np.array([8.0, 5.0])
    behavior["pupil_center"] = eye_center[:, None] + eye_scale[:, None] * behavior["eye"]
    behavior["eye_center"], behavior["eye_scale"] = eye_center, eye_scale
    table = _trial_table(args, m, shared, r_meta)
    return _Mouse(args, m, key, root, table, encoder, behavior, r_noise, bar)


def _ground_truth_extras(mouse: _Mouse) -> dict[str, Any]:
    args, table, beh, encoder = mouse.args, mouse.table, mouse.behavior, mouse.encoder
    if args.kind == "static":
        idx = table["presentation_index"] * enc.STATIC_STEPS_PER_TRIAL + 5
    else:
        starts = table["presentation_index"] * (args.n_frames + enc.GAP_FRAMES)
        idx = starts[:, None] + np.arange(args.n_frames)[None, :]
    state = np.stack([beh["run_z"][idx], beh["pupil_z"][idx]], axis=1).astype(np.float32)
    eye = np.moveaxis(beh["eye"][:, idx], 0, 1).astype(np.float32)
    if args.kind == "dynamic":
        pad = np.arange(args.n_frames)[None, None, :] >= table["valid_length"][:, None, None]
        state[np.broadcast_to(pad, state.shape)] = np.nan
        eye[np.broadcast_to(pad, eye.shape)] = np.nan
    params = {k: v for k, v in encoder.params.items() if k != "cortex"}
    return {
        **params,
        **{k: table[k] for k in table},
        "behavior_state": state,
        "eye_position": eye,
        "grid_shape": np.array(encoder.grid),
        "behavior_gain": np.float32(encoder.config.behavior_gain),
        "shift_scale": np.float32(encoder.config.shift_scale),
        "eye_center": beh["eye_center"],
        "eye_scale": beh["eye_scale"],
        "competition": np.bool_(args.competition[mouse.index]),
        "config": json.dumps(dataclasses.asdict(encoder.config)),
    }


def _write_mouse(mouse: _Mouse, ids: tuple[int, int, int]) -> None:
    args, root = mouse.args, mouse.root
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"links": {}}))
    neurons = _neuron_meta(
        args, mouse.encoder, np.random.default_rng([args.seed, 4, mouse.index]), ids
    )
    gt = files.NpzStream(root.with_name(root.name + ".ground_truth.npz"))
    try:
        if args.kind == "static":
            hist = _write_static_data(mouse, gt)
            trials = _static_trial_meta(
                args,
                mouse.table,
                mouse.key,
                args.competition[mouse.index],
                np.random.default_rng([args.seed, 5, mouse.index]),
                ids,
            )
        else:
            _write_dynamic_data(mouse, gt)
            trials = {"tiers": mouse.table["tiers"].astype("<U16")}
        gt.add("unit_ids", neurons["unit_ids"])
        for name, value in _ground_truth_extras(mouse).items():
            gt.add(name, value)
    finally:
        gt.close()
    for name, value in neurons.items():
        files.save(root / "meta" / "neurons" / f"{name}.npy", value)
    for name, value in trials.items():
        files.save(root / "meta" / "trials" / f"{name}.npy", value)
    train = np.flatnonzero(mouse.table["tiers"] == "train")
    subs = ("all", "stimulus_frame") if args.kind == "static" else ("all",)
    keys = ("responses", "behavior", "pupil_center") + (
        ("videos",) if args.kind == "dynamic" else ()
    )
    for key in keys:
        stats = files.elementwise_statistics([root / "data" / key / f"{i}.npy" for i in train])
        files.write_statistics(root, key, stats, subs)
    if args.kind == "static":
        files.write_statistics(root, "images", files.histogram_statistics(hist), subs)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- public


def synthesize(
    out: str | os.PathLike[str],
    *,
    kind: str,
    n_mice: int = 1,
    n_trials: int | None = None,
    n_neurons: int | None = None,
    n_frames: int | None = None,
    image_size: tuple[int, int] | None = None,
    seed: int = 0,
    as_zip: bool = False,
    competition: bool | None = None,
    behavior_gain: float | None = None,
    shift_scale: float | None = None,
    fano: float | None = None,
    overwrite: bool = True,
    progress: bool = False,
) -> list[pathlib.Path]:
    """Write synthetic SENSORIUM recordings, one per mouse, in the official file layout.

    Parameters
    ----------
    out : path-like
        Local folder, created if missing. Each mouse gets a tree named
        ``static<key>-GrayImageNet-<32 hex>`` (kind ``"static"``, 2022) or
        ``dynamic<key>-Video-<32 hex>`` (kind ``"dynamic"``, 2023) holding ``config.json``,
        ``data/<key>/<i>.npy`` for every trial ``i`` and key, ``meta/neurons/*.npy``,
        ``meta/trials/*.npy`` and ``meta/statistics/<key>/all/{mean,std,min,max,median}.npy``
        (2022 also ``stimulus_frame/``). Mouse keys look like ``90421-7-3``: distinct per mouse,
        drawn from ``seed``; the 32-hex suffix is shared by the mice of one call, as in a release.
        An existing tree or zip of the same name is replaced (``overwrite=False``: a
        ``FileExistsError`` naming them, nothing written).
    kind : {"static", "dynamic"}
        ``"static"`` (2022): per trial ``images`` (1, H, W) integer-valued 0-255,
        ``responses`` (n_neurons,), ``behavior`` (3,) = pupil dilation, its derivative, running
        speed, ``pupil_center`` (2,) = horizontal, vertical; all float32. ``meta/neurons``:
        ``unit_ids`` int64 (unique, sorted, not 0..n-1), ``area`` (``'V1'``), ``layer``
        (``'L2/3'`` or ``'L4'``), ``cell_motor_coordinates`` float64 (n, 3) in µm, ``animal_ids``,
        ``sessions``, ``scan_idx`` int64. ``meta/trials``: ``tiers`` '<U10' (train, validation,
        test, plus final_test in competition mice), ``frame_image_id`` int64 (repeats share it),
        ``frame_image_class`` str, ``trial_idx`` int64 presentation order (a random permutation;
        32-hex hash strings in competition mice), ``frame_trial_ts`` object array of
        ``"Timestamp('...')"`` strings (saved pickled, as released), ``scan_idx`` int64 and
        ``frame_pre_blank_period`` float64. Statistics over the train trials: images scalars,
        the others per element.
        ``"dynamic"`` (2023): time is the last axis, padded to ``n_frames`` with NaN after each
        trial's valid length (most trials full, some shorter, never below 2/3): ``videos``
        (H, W, T) 0-255, ``responses`` (n_neurons, T), ``behavior`` (2, T) = pupil dilation,
        running speed, ``pupil_center`` (2, T); all float32. ``meta/neurons``: ``unit_ids``
        uint32, ``cell_motor_coordinates`` float64 (n, 3). ``meta/trials/tiers.npy`` '<U16'
        (train, oracle, live_test_main, live_test_bonus, final_test_main, final_test_bonus, none).
        Statistics per frame over the train trials, nan-aware; never-valid frames are NaN.
    n_mice : int
        Number of recordings.
    n_trials, n_neurons : int, optional
        Per mouse. Defaults: static 240 and 64, dynamic 60 and 32 (official: static about 6000
        and 8000, dynamic about 700 and 8000). Data are generated and written in blocks, so
        memory stays bounded at any size.
    n_frames : int, optional
        Dynamic only: padded trial length T (default 90, official 300). At least 3.
    image_size : (int, int), optional
        (H, W) of images or video frames, each >= 4. Defaults 144 x 256 (static), 36 x 64
        (dynamic). The encoder sees every stimulus resampled to a grid of about 36 x 64.
    seed : int
        Everything derives from ``numpy.random.default_rng``-style seeding: the same arguments
        give byte-identical files, another seed gives different data.
    as_zip : bool
        Zip each tree to ``<folder>.zip`` holding one top folder of that name (dynamic zips also
        hold a ``__MACOSX/`` junk folder, as the 2023 release does) and delete the tree.
    competition : bool, optional
        Competition mice withhold the responses of the test tiers (all zeros: 2022 ``test`` and
        ``final_test``, 2023 ``live_*`` and ``final_*``), and in 2022 have a ``final_test`` tier and
        hash ``trial_idx``. ``None``: the last mouse when ``n_mice >= 2``, else none; ``True`` or
        ``False``: all or none.
    behavior_gain : float, optional
        Strength of the encoder's multiplicative behavioural gain (``EncoderConfig.behavior_gain``;
        default 0.5). ``0``: responses do not depend on running or pupil.
    shift_scale : float, optional
        Receptive-field shift in encoder-grid pixels per standard deviation of eye position
        (``EncoderConfig.shift_scale``; default 1.5). ``0``: the eye does not move the fields.
        With both at 0 the rates depend on the stimulus alone, so a stimulus-only model can reach
        the noise ceiling.
    fano : float, optional
        Median Fano factor of the trial-to-trial noise relative to each neuron's amplitude
        (``EncoderConfig.fano``; default 3.5 for images, 6.0 per frame for videos). Smaller is
        less noisy: a model learns the same neurons from fewer trials.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    list of pathlib.Path
        The tree folders, or the zip files when ``as_zip``.

    Notes
    -----
    Tiers: 2022 test images (about 10 repeats each, at least 2; fewer repeats for small
    ``n_trials``) and final_test images are the same images with the same ``frame_image_id`` in
    every mouse of a call; 2023 oracle / live_test_main / final_test_main hold clips repeated
    frame for frame, shared by all mice; the bonus tiers hold out-of-distribution clips
    (pink noise, gaussian dots, drifting gratings, static images). The file index is not the
    presentation order.

    Responses come from :mod:`sensorium_data.synthetic.encoder`: oriented Gabor simple and
    complex cells at random central positions, read out at positions shifted with the eye, a
    temporal kernel for videos, a softplus output, a multiplicative gain driven by running and
    pupil (``EncoderConfig.behavior_gain``) and Poisson-gamma noise around the rate.

    The noise-free rates are written OUTSIDE the layout, to ``<out>/<folder>.ground_truth.npz``
    (also when ``as_zip``): ``rates`` (n_trials, n_neurons) or (n_trials, n_neurons, T) float32
    in file order (NaN in the padding; true rates also where the data are withheld),
    ``unit_ids``; per trial ``tiers``, ``stimulus_id``, ``stimulus_type``,
    ``presentation_index``, ``valid_length``, ``behavior_state`` (run_z, pupil_z: (n_trials, 2)
    or (n_trials, 2, T)) and ``eye_position`` (same shapes; the grid shift is
    ``shift_scale * eye``); per neuron ``rf_center`` (y, x on the encoder grid),
    ``rf_orientation``, ``rf_period``, ``rf_phase``, ``is_complex``, ``channel``, ``threshold``,
    ``slope``, ``amplitude``, ``fano``, ``gain_weights`` (run, pupil), ``drive_mean``,
    ``drive_std`` and ``temporal_kernel`` (dynamic); and ``grid_shape``, ``behavior_gain``,
    ``shift_scale``, ``eye_center``, ``eye_scale``, ``competition``, ``config`` (JSON). The
    stimulus-only rate is ``rates / exp(behavior_gain * sum_k behavior_state[:, k] *
    gain_weights[:, k])`` (broadcast over neurons, and frames for videos).

    Raises
    ------
    ValueError
        For a bad argument, naming it (unknown kind, non-positive counts, n_trials too small to
        hold every tier, image_size not two integers >= 4, n_frames given for static, ...).
    """
    args = _parse_args(
        kind,
        n_mice,
        n_trials,
        n_neurons,
        n_frames,
        image_size,
        seed,
        competition,
        behavior_gain,
        shift_scale,
        fano,
    )
    root = pathlib.Path(out)
    root.mkdir(parents=True, exist_ok=True)
    seqs = np.random.SeedSequence(args.seed).spawn(args.n_mice + 1)
    call_rng = np.random.default_rng(seqs[0])
    animals = call_rng.choice(np.arange(90001, 100000), size=args.n_mice, replace=False)
    shared = _shared_stimuli(args, call_rng)
    digest = args.digest()
    ids_of = [
        (int(animals[m]), int(call_rng.integers(1, 21)), int(call_rng.integers(1, 21)))
        for m in range(args.n_mice)
    ]
    kind_name = "GrayImageNet" if args.kind == "static" else "Video"
    names = [f"{args.kind}{'-'.join(map(str, ids))}-{kind_name}-{digest}" for ids in ids_of]
    if not overwrite:
        found = [
            str(root / f"{n}{suffix}")
            for n in names
            for suffix in ("", ".zip")
            if (root / f"{n}{suffix}").exists()
        ]
        if found:
            raise FileExistsError(
                f"{', '.join(found)} already exist(s); pass overwrite=True to replace them"
            )
    if progress:
        from tqdm import tqdm

        bar: Any = tqdm(
            total=args.n_mice * args.n_trials, desc=f"synthesize {args.kind}", unit="trial"
        )
    else:
        bar = _NoBar()
    written = []
    try:
        for m, (ids, name) in enumerate(zip(ids_of, names, strict=True)):
            key = "-".join(map(str, ids))
            mouse = _make_mouse(args, m, key, root / name, shared, seqs[m + 1], bar)
            _write_mouse(mouse, ids)
            written.append(
                files.zip_tree(root / name, args.kind == "dynamic") if as_zip else root / name
            )
    finally:
        bar.close()
    return written
