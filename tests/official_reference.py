"""A faithful, independent reimplementation of the official SENSORIUM loading pipelines.

Written from the official sources, not from ``sensorium_data`` (nothing is imported from it), so
that parity tests compare two independent readings. It reads the FILE TREE one trial at a time with
``np.load``, like neuralpredictors' ``FileTreeDataset.__getitem__``, and applies the kits'
transforms in the kits' order, one sample at a time:

- 2022, ``sinzlab/sensorium`` ``sensorium/datasets/mouse_loaders.py`` ``static_loader`` (with
  neuralpredictors 0.3.0, which that kit pins): ``NeuroNormalizer -> AddBehaviorAsChannels ->
  AddPupilCenterAsChannels -> ScaleInputs -> Subsample -> ToTensor`` (the transforms are
  ``insert(0, ...)``-ed in the reverse order).
- 2023, ``ecker-lab/sensorium_2023`` ``sensorium/datasets/mouse_video_loaders.py``
  ``mouse_video_loader`` (with neuralpredictors at the commit its requirements pin, 43faede):
  ``NeuroNormalizer -> ScaleInputs(channel_axis=-1) -> Subsample(target_index=0) -> CutVideos ->
  ChangeChannelsOrder (time first) -> Subsequence -> ChangeChannelsOrder (back) ->
  ExpandChannels -> AddBehaviorAsChannels -> AddPupilCenterAsChannels -> ToTensor``.

Names in comments (``transforms.py: NeuroNormalizer``) refer to neuralpredictors
``neuralpredictors/data/transforms.py``; line numbers are those of release 0.3.0.

skimage's ``rescale`` (which ``ScaleInputs`` calls) is re-derived here in numpy so that the tests
do not need scikit-image: ``resize`` -> ``scipy.ndimage.zoom(order=1, mode="mirror",
grid_mode=True)`` over EVERY axis, the channel axis with factor 1, then ``clip``. Interpolating
the 2023 frame axis with weights (1, 0) turns the last valid frame into NaN (``0 * NaN``), which
the kit then cuts off. SciPy >= 1.16 skips ``zoom`` when every factor is 1
(``scipy_zoom_shortcut=True``); the 2023 kit's environment (SciPy 1.13) does not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

STIMULUS = {"static": "images", "dynamic": "videos"}


# ----------------------------------------------------------------------------- file tree reading


def _links(root: Path) -> dict[str, str]:
    # base.py FileTreeDatasetBase.config / resolve_data_path: config.json {"links": {...}}
    config = root / "config.json"
    return json.loads(config.read_text()).get("links", {}) if config.exists() else {}


def _load_trial(root: Path, key: str, trial_index: int) -> np.ndarray:
    # base.py FileTreeDatasetBase.__getitem__ (0.3.0 line 418): np.load(datapath / f"{item}.npy")
    folder = _links(root).get(key, key)
    return np.load(root / "data" / folder / f"{trial_index}.npy")


def _statistic(root: Path, key: str, source: str, name: str) -> np.ndarray:
    # base.py DirectoryAttributeHandler: data.statistics[key][source][name] -> np.load(...npy)
    key = _links(root).get(key, key)
    return np.load(root / "meta" / "statistics" / key / source / f"{name}.npy")


# ----------------------------------------------------------------------------- NeuroNormalizer


def _neuro_normalizer(
    root: Path, in_name: str, data_keys: list[str], source: str, threshold_reduction: str
) -> dict[str, Any]:
    """transforms.py: NeuroNormalizer.__init__ (0.3.0 lines 304-370; 43faede identical except
    ``np.nanmean``), with ``exclude=None, inputs_mean=None, subtract_behavior_mean=False``."""
    fns: dict[str, Any] = {}
    inputs_mean = _statistic(root, in_name, source, "mean")[()]
    inputs_std = _statistic(root, in_name, source, "std")[()]
    fns[in_name] = lambda x: (x - inputs_mean) / inputs_std

    s = np.array(_statistic(root, "responses", source, "std"))
    # 0.3.0 line 333: threshold = 0.01 * s.mean(); 43faede: threshold = 0.01 * np.nanmean(s)
    threshold = 0.01 * (np.nanmean(s) if threshold_reduction == "nanmean" else s.mean())
    idx = s > threshold
    response_precision = np.ones_like(s) / threshold
    response_precision[idx] = 1 / s[idx]
    fns["responses"] = lambda x: x * response_precision

    if "pupil_center" in data_keys:  # eye_name in data.data_keys
        eye_mean = np.array(_statistic(root, "pupil_center", source, "mean"))
        eye_std = np.array(_statistic(root, "pupil_center", source, "std"))
        fns["pupil_center"] = lambda x: (x - eye_mean) / eye_std
    if "behavior" in data_keys:
        behavior_precision = 1 / np.array(_statistic(root, "behavior", source, "std"))
        fns["behavior"] = lambda x: (x - 0) * behavior_precision
    return fns


# ----------------------------------------------------------------------------- skimage rescale


def _ndimage_mirror_coordinate(c: float, n: int) -> float:
    # scipy ndimage ni_interpolation.c map_coordinate, NI_EXTEND_MIRROR
    if n <= 1:
        return 0.0
    sz2 = 2 * n - 2
    if c < 0:
        c = sz2 * int(-c / sz2) + c
        return c + sz2 if c <= 1 - n else -c
    if c > n - 1:
        c -= sz2 * int(c / sz2)
        return sz2 - c if c >= n else c
    return c


def _ndimage_mirror_index(i: int, n: int) -> int:
    if n <= 1:
        return 0
    sz2 = 2 * n - 2
    i = abs(i) % sz2
    return sz2 - i if i > n - 1 else i


def _zoom_axis_linear(x: np.ndarray, axis: int, n_out: int) -> np.ndarray:
    """One axis of scipy.ndimage.zoom(order=1, mode="mirror", grid_mode=True)."""
    n_in = x.shape[axis]
    zoom = n_in / n_out  # scipy: zoom_nominator / zoom_div with grid_mode
    moved = np.moveaxis(x, axis, 0)
    out = np.empty((n_out, *moved.shape[1:]), dtype=np.float64)
    for o in range(n_out):
        c = _ndimage_mirror_coordinate((o + 0.5) * zoom - 0.5, n_in)
        lo = int(np.floor(c))
        w0 = 1.0 - (c - lo)
        w1 = 1.0 - w0
        # both neighbours always contribute, even with weight 0: 0 * NaN is NaN
        out[o] = moved[lo] * w0 + moved[_ndimage_mirror_index(lo + 1, n_in)] * w1
    return np.moveaxis(out, 0, axis)


def _skimage_rescale(
    img: np.ndarray, scale: float, channel_axis: int, scipy_zoom_shortcut: bool
) -> np.ndarray:
    """skimage.transform.rescale(img, scale, order=None (-> 1), mode="reflect",
    anti_aliasing=False, clip=True, preserve_range=True, channel_axis=channel_axis)."""
    img = np.moveaxis(img, channel_axis, -1)  # @channel_as_last_axis
    orig_shape = np.asarray(img.shape)
    output_shape = np.maximum(np.round(scale * orig_shape), 1)  # rescale
    output_shape[-1] = orig_shape[-1]  # don't scale channel dimension
    if img.dtype.char not in "df":  # resize -> convert_to_float(preserve_range=True)
        img = img.astype(float)
    out_dtype = img.dtype  # ndimage.zoom writes an output of the input's dtype
    factors = [n / int(m) for n, m in zip(img.shape, output_shape, strict=True)]
    if scipy_zoom_shortcut and all(f == 1 for f in factors):
        out = img.copy()  # SciPy >= 1.16 zoom: "early exit for gh-20999"
    else:
        out = img.astype(np.float64)
        for axis, m in enumerate(output_shape):
            out = _zoom_axis_linear(out, axis, int(m))
        out = out.astype(out_dtype)
    # _clip_warp_output: clip to the input's (NaN-safe) min and max
    lo, hi = np.nanmin(img), np.nanmax(img)
    out = np.clip(out, lo, hi)
    return np.moveaxis(out, -1, channel_axis)


# ----------------------------------------------------------------------------- channel transforms


def _transform_function(img: np.ndarray, behavior: np.ndarray, key: str) -> np.ndarray:
    """transforms.py transform_function (43faede; 0.3.0 lines 400-407 are the "images" case)."""
    shape_changer = np.ones((1, *img.shape[-(len(img.shape) - 1) :]))
    if len(img.shape) != 4 and key == "videos":
        img = np.expand_dims(img, axis=(len(img.shape) - 3))
    cat_axis = len(img.shape) - 3 if key == "images" else len(img.shape) - 4
    axis_to_add = (len(img.shape) - 2, len(img.shape) - 1)
    expanded_behavior = shape_changer * np.expand_dims(behavior, axis=axis_to_add)
    return np.concatenate((img, expanded_behavior), axis=cat_axis)


def _cut_videos(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """transforms.py CutVideos(max_frame=None, frame_axis=-1 for every key, all keys).

    The pinned commit calls ``np.argwhere(...).min()``, which fails on a trial with no NaN;
    later neuralpredictors uses the full length then, as here.
    """
    idx = []
    for loc in x.values():
        nans = np.argwhere(np.isnan(loc))[:, -1]
        idx.append(nans.min() if nans.size else loc.shape[-1])
    keep = np.arange(0, min(idx))
    return {k: np.take(v, keep, -1) for k, v in x.items()}


def _to_tensor(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # transforms.py ToTensor (0.3.0 line 253): torch.from_numpy(elem.astype(np.float32))
    return {k: v.astype(np.float32) for k, v in x.items()}


# ----------------------------------------------------------------------------- the pipelines


def _static_sample(
    root: Path,
    i: int,
    *,
    normalize: bool,
    scale: float | None,
    include_behavior: bool,
    include_pupil: bool,
    pupil_as_channels: bool,
    neuron_indices: Any,
    stats_source: str,
    threshold_reduction: str,
) -> dict[str, np.ndarray]:
    # mouse_loaders.py static_loader: data_keys = images, responses (+ behavior, pupil_center)
    data_keys = ["images", "responses"]
    if include_behavior:
        data_keys.append("behavior")
    if include_pupil:
        data_keys.append("pupil_center")
    x = {k: _load_trial(root, k, i) for k in data_keys}
    if normalize:  # NeuroNormalizer(dat, exclude=None, inputs_mean=None, inputs_std=None)
        fns = _neuro_normalizer(root, "images", data_keys, stats_source, threshold_reduction)
        with np.errstate(all="ignore"):
            x = {k: fns[k](v) for k, v in x.items()}
    if include_behavior:  # AddBehaviorAsChannels() (0.3.0 lines 390-425)
        x["images"] = _transform_function(x["images"], x["behavior"], "images")
    if include_pupil and pupil_as_channels:  # AddPupilCenterAsChannels() (lines 428-464)
        x["images"] = _transform_function(x["images"], x["pupil_center"], "images")
    if scale is not None:  # ScaleInputs(scale=scale): channel_axis=0 (lines 482-516)
        x["images"] = _skimage_rescale(x["images"], scale, 0, scipy_zoom_shortcut=True)
    if neuron_indices is not None:  # Subsample(idx): np.take(responses, idx, -1)
        x["responses"] = np.take(x["responses"], neuron_indices, -1)
    return _to_tensor(x)


def _dynamic_sample(
    root: Path,
    i: int,
    *,
    normalize: bool,
    scale: float,
    include_behavior: bool,
    include_pupil: bool,
    pupil_as_channels: bool,
    neuron_indices: Any,
    frames: int | None,
    frame_start: int | None,
    stats_source: str,
    threshold_reduction: str,
    random_state: np.random.RandomState | None,
    scipy_zoom_shortcut: bool,
) -> dict[str, np.ndarray]:
    # mouse_video_loaders.py mouse_video_loader: data_keys = videos, responses (+ ...)
    data_keys = ["videos", "responses"]
    if include_behavior:
        data_keys.append("behavior")
    if include_pupil:
        data_keys.append("pupil_center")
    x = {k: _load_trial(root, k, i) for k in data_keys}
    if normalize:  # NeuroNormalizer(dat2, exclude=None, ..., in_name="videos")
        fns = _neuro_normalizer(root, "videos", data_keys, stats_source, threshold_reduction)
        with np.errstate(all="ignore"):
            x = {k: fns[k](v) for k, v in x.items()}
    # ScaleInputs(scale=scale, in_name="videos", channel_axis=-1), on (H, W, T)
    x["videos"] = _skimage_rescale(x["videos"], scale, -1, scipy_zoom_shortcut)
    n_neurons = x["responses"].shape[0]
    idx = np.arange(n_neurons) if neuron_indices is None else np.asarray(neuron_indices)
    x["responses"] = np.take(x["responses"], idx, 0)  # Subsample(idx, target_index=0)
    x = _cut_videos(x)
    # ChangeChannelsOrder((2, 0, 1), videos); ((1, 0), responses / behavior / pupil_center)
    x = {k: np.transpose(v, (2, 0, 1) if k == "videos" else (1, 0)) for k, v in x.items()}
    if frames is not None:  # Subsequence(frames=frames, channel_first=(), offset=offset)
        t = x["videos"].shape[0]
        if frame_start is None:  # offset=-1: i = np.random.randint(0, t - self.frames)
            rs = random_state if random_state is not None else np.random
            start = rs.randint(0, t - frames)
        else:
            start = frame_start
        x = {k: v[start : start + frames, ...] for k, v in x.items()}
    x = {k: v if k == "videos" else np.transpose(v, (1, 0)) for k, v in x.items()}
    x["videos"] = np.expand_dims(x["videos"], axis=0)  # ExpandChannels("videos"): (1, T, H, W)
    if include_behavior:  # AddBehaviorAsChannels("videos")
        x["videos"] = _transform_function(x["videos"], x["behavior"], "videos")
    if include_pupil and pupil_as_channels:  # AddPupilCenterAsChannels("videos")
        x["videos"] = _transform_function(x["videos"], x["pupil_center"], "videos")
    return _to_tensor(x)


def reference_sample(
    tree_dir: str | Path,
    kind: str,
    trial_index: int,
    *,
    normalize: bool = True,
    scale: float | None = 1.0,
    include_behavior: bool = False,
    include_pupil: bool = False,
    pupil_as_channels: bool = False,
    neuron_indices: Any = None,
    frames: int | None = None,
    frame_start: int | None = None,
    stats_source: str = "all",
    threshold_reduction: str = "nanmean",
    random_state: np.random.RandomState | None = None,
    scipy_zoom_shortcut: bool = False,
) -> dict[str, np.ndarray]:
    """One sample exactly as the official loader of ``kind`` gives it, as float32 numpy arrays.

    2022 (``"static"``): images ``(C, H', W')``, responses ``(N,)``, behavior ``(3,)``,
    pupil_center ``(2,)``. ``include_behavior`` adds the behaviour channels (the kit's
    ``add_behavior_as_channels=True``), ``pupil_as_channels`` the pupil ones
    (``add_eye_pos_as_channels``); ``scale=None`` skips ``ScaleInputs`` as the kit's default.

    2023 (``"dynamic"``): videos ``(C, T, H', W')``, responses ``(N, T)``, behavior ``(2, T)``,
    pupil_center ``(2, T)``; ``frames=None`` is the kit's ``to_cut=False`` (the whole cut trial);
    ``frame_start`` its ``offset`` (``None``: random, ``random_state.randint(0, t - frames)``).
    ``scipy_zoom_shortcut`` is 2023 only: ``False`` is the kit's environment (SciPy 1.13), where
    ``ScaleInputs`` runs even at ``scale=1``.
    """
    root = Path(tree_dir)
    common = dict(
        normalize=normalize,
        include_behavior=include_behavior,
        include_pupil=include_pupil,
        pupil_as_channels=pupil_as_channels,
        neuron_indices=neuron_indices,
        stats_source=stats_source,
        threshold_reduction=threshold_reduction,
    )
    if kind == "static":
        return _static_sample(root, trial_index, scale=scale, **common)
    if kind == "dynamic":
        return _dynamic_sample(
            root,
            trial_index,
            scale=1.0 if scale is None else scale,
            frames=frames,
            frame_start=frame_start,
            random_state=random_state,
            scipy_zoom_shortcut=scipy_zoom_shortcut,
            **common,
        )
    raise ValueError(f"kind must be 'static' or 'dynamic', got {kind!r}")
