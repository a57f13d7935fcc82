"""The official normaliser and sample transforms against an independent reference of the kits.

``tests/official_reference.py`` re-implements the official loaders (per-trial ``np.load`` of the
file tree, the kits' transforms in the kits' order); ``sensorium_data`` reads the converted store
a batch at a time. Both must give the same samples to float32 rounding.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sensorium_data as sd
from sensorium_data.errors import SchemaError
from sensorium_data.loading.normalize import Normalizer, response_precision
from sensorium_data.loading.transforms import (
    add_behavior_channels,
    draw_window_starts,
    rescale_images,
    rescaled_size,
    valid_length,
    valid_window,
)

try:  # tests/ is a rootdir-relative folder, not a package
    from official_reference import _skimage_rescale, reference_sample
    from trees import write_tree
except ImportError:  # pragma: no cover
    from tests.official_reference import _skimage_rescale, reference_sample
    from tests.trees import write_tree

RTOL, ATOL = 1e-6, 1e-5
N_NEURONS = 9
N_FRAMES = 20
FRAMES = 8  # window length of the 2023 parity tests


@dataclass
class Mouse:
    tree: Path
    data: dict[str, np.ndarray]  # every data variable of the store, loaded
    valid: np.ndarray | None
    stats: dict


def _save_stats(root: Path, key: str, source: str, **arrays: np.ndarray) -> None:
    for name, value in arrays.items():
        np.save(root / "meta" / "statistics" / key / source / f"{name}.npy", np.asarray(value))


def _positive(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(0.5, 3.0, size=shape)


def _open(tree: Path, store: Path) -> Mouse:
    sd.convert([tree], store, progress=False)
    ds = sd.open_mouse(store).load()
    valid = ds["valid_frames"].values if "valid_frames" in ds.coords else None
    data = {k: ds[k].values for k in ds.data_vars}
    return Mouse(tree, data, valid, sd.open_statistics(store))


@pytest.fixture(scope="module")
def static_mouse(tmp_path_factory: pytest.TempPathFactory) -> Mouse:
    """2022 tree: `all` has scalar image statistics and responses std with NaN, 0 and tiny
    values; `stimulus_frame` has per-pixel (1, H, W) image statistics."""
    tmp = tmp_path_factory.mktemp("static")
    tree = write_tree(tmp, "static", n_trials=37, n_neurons=N_NEURONS, seed=3)
    rng = np.random.default_rng(7)
    std = _positive(rng, (N_NEURONS,))
    std[1], std[2], std[3] = np.nan, 0.0, 1e-4
    for source in ("all", "stimulus_frame"):
        image_shape = () if source == "all" else (1, 12, 20)
        _save_stats(
            tree,
            "images",
            source,
            mean=rng.normal(45, 3, image_shape),
            std=_positive(rng, image_shape) * 5,
        )
        _save_stats(
            tree,
            "responses",
            source,
            mean=rng.normal(size=N_NEURONS),
            std=std if source == "all" else _positive(rng, (N_NEURONS,)),
        )
        _save_stats(tree, "behavior", source, mean=rng.normal(size=3), std=_positive(rng, (3,)))
        _save_stats(
            tree, "pupil_center", source, mean=rng.normal(50, 2, 2), std=_positive(rng, (2,))
        )
    return _open(tree, tmp / "store.zarr")


@pytest.fixture(scope="module")
def dynamic_mouse(tmp_path_factory: pytest.TempPathFactory) -> Mouse:
    """2023 tree with per-frame statistics: in `all` the responses std is NaN for the last two
    frames (never valid in a training trial) and 0 for one neuron's frames; `stimulus_frame` has
    no NaN."""
    tmp = tmp_path_factory.mktemp("dynamic")
    tree = write_tree(tmp, "dynamic", n_trials=37, n_neurons=N_NEURONS, n_frames=N_FRAMES, seed=5)
    rng = np.random.default_rng(11)
    for source in ("all", "stimulus_frame"):
        std = _positive(rng, (N_NEURONS, N_FRAMES))
        if source == "all":
            std[:, -2:] = np.nan
            std[4, :5] = 0.0
            std[5, 7] = 1e-5
        _save_stats(
            tree,
            "videos",
            source,
            mean=rng.normal(50, 3, (6, 10, N_FRAMES)),
            std=_positive(rng, (6, 10, N_FRAMES)) * 5,
        )
        _save_stats(tree, "responses", source, mean=rng.normal(size=(N_NEURONS, N_FRAMES)), std=std)
        _save_stats(
            tree,
            "behavior",
            source,
            mean=rng.normal(size=(2, N_FRAMES)),
            std=_positive(rng, (2, N_FRAMES)),
        )
        _save_stats(
            tree,
            "pupil_center",
            source,
            mean=rng.normal(50, 2, (2, N_FRAMES)),
            std=_positive(rng, (2, N_FRAMES)),
        )
    return _open(tree, tmp / "store.zarr")


def _assert_samples(got: dict[str, np.ndarray], ref: dict[str, np.ndarray], where: str) -> None:
    assert set(got) == set(ref), where
    for key, value in ref.items():
        assert got[key].dtype == np.float32, (where, key)
        assert got[key].shape == value.shape, (where, key, got[key].shape, value.shape)
        np.testing.assert_allclose(
            got[key], value, rtol=RTOL, atol=ATOL, equal_nan=True, err_msg=f"{where} {key}"
        )


# ----------------------------------------------------------------------------- 2022 parity


def _toolkit_static(
    mouse: Mouse,
    trials: np.ndarray,
    norm: Normalizer | None,
    *,
    scale: float,
    behavior: bool,
    pupil: bool,
    pupil_channels: bool,
    neurons: np.ndarray | None,
) -> dict[str, np.ndarray]:
    keys = ["images", "responses"] + ["behavior"] * behavior + ["pupil_center"] * pupil
    out = {
        k: norm(k, mouse.data[k][trials]) if norm else mouse.data[k][trials].astype(np.float32)
        for k in keys
    }
    images = rescale_images(out["images"], scale)
    if behavior:
        images = add_behavior_channels(
            images, out["behavior"], out["pupil_center"] if pupil_channels else None
        )
    out["images"] = images
    if neurons is not None:
        out["responses"] = out["responses"][:, neurons]
    return out


STATIC_CASES = [
    # source, reduction, normalize, scale, behavior, pupil, pupil_channels, neurons
    ("all", "nanmean", True, 1.0, False, False, False, None),
    ("all", "mean", True, 0.5, True, False, False, None),
    ("all", "nanmean", True, 0.25, True, True, False, [8, 0, 3]),
    ("all", "nanmean", True, 0.5, True, True, True, None),
    ("stimulus_frame", "mean", True, 0.25, True, True, True, [2, 2, 5]),
    ("stimulus_frame", "nanmean", True, 0.3, False, True, False, None),
    ("all", "nanmean", False, 0.5, True, True, True, None),
]


@pytest.mark.parametrize(
    ("source", "reduction", "normalize", "scale", "behavior", "pupil", "pupil_channels", "neurons"),
    STATIC_CASES,
)
def test_static_samples_match_the_official_loader(
    static_mouse: Mouse,
    source,
    reduction,
    normalize,
    scale,
    behavior,
    pupil,
    pupil_channels,
    neurons,
) -> None:
    norm = (
        Normalizer.from_statistics(
            static_mouse.stats, kind="static", source=source, threshold_reduction=reduction
        )
        if normalize
        else None
    )
    trials = np.arange(37)
    got = _toolkit_static(
        static_mouse,
        trials,
        norm,
        scale=scale,
        behavior=behavior,
        pupil=pupil,
        pupil_channels=pupil_channels,
        neurons=None if neurons is None else np.array(neurons),
    )
    for j, i in enumerate(trials):
        ref = reference_sample(
            static_mouse.tree,
            "static",
            int(i),
            normalize=normalize,
            scale=scale,
            include_behavior=behavior,
            include_pupil=pupil,
            pupil_as_channels=pupil_channels,
            neuron_indices=neurons,
            stats_source=source,
            threshold_reduction=reduction,
        )
        _assert_samples({k: v[j] for k, v in got.items()}, ref, f"trial {i}")


def test_static_shapes_and_channel_order(static_mouse: Mouse) -> None:
    norm = Normalizer.from_statistics(static_mouse.stats, kind="static")
    got = _toolkit_static(
        static_mouse,
        np.array([4, 1]),
        norm,
        scale=0.25,
        behavior=True,
        pupil=True,
        pupil_channels=True,
        neurons=None,
    )
    assert got["images"].shape == (2, 1 + 3 + 2, 3, 5)
    np.testing.assert_array_equal(
        got["images"][:, 1:4], np.broadcast_to(got["behavior"][:, :, None, None], (2, 3, 3, 5))
    )
    np.testing.assert_array_equal(
        got["images"][:, 4:], np.broadcast_to(got["pupil_center"][:, :, None, None], (2, 2, 3, 5))
    )


def test_mean_reduction_with_a_nan_std_gives_nan_responses(static_mouse: Mouse) -> None:
    """neuralpredictors 0.3.0: ``0.01 * s.mean()`` is NaN as soon as one std is NaN."""
    raw = static_mouse.data["responses"][:3]
    assert np.isnan(
        Normalizer.from_statistics(static_mouse.stats, kind="static", threshold_reduction="mean")(
            "responses", raw
        )
    ).all()
    assert not np.isnan(
        Normalizer.from_statistics(static_mouse.stats, kind="static")("responses", raw)
    ).any()


# ----------------------------------------------------------------------------- 2023 parity


def _toolkit_dynamic(
    mouse: Mouse,
    trials: np.ndarray,
    starts: np.ndarray | int,
    norm: Normalizer | None,
    *,
    scale: float,
    behavior: bool,
    pupil: bool,
    pupil_channels: bool,
    neurons: np.ndarray | None,
) -> dict[str, np.ndarray]:
    keys = ["videos", "responses"] + ["behavior"] * behavior + ["pupil_center"] * pupil
    out = {}
    for key in keys:
        window = valid_window(
            mouse.data[key][trials],
            frame_start=starts,
            frames=FRAMES,
            valid_frames=mouse.valid[trials],
        )
        out[key] = norm(key, window, frame_start=starts) if norm else window.astype(np.float32)
    videos = rescale_images(np.moveaxis(out["videos"], -1, 1), scale)  # (B, T, H', W')
    if behavior:
        videos = add_behavior_channels(
            videos, out["behavior"], out["pupil_center"] if pupil_channels else None
        )
    else:
        videos = videos[:, None]
    out["videos"] = videos
    if neurons is not None:
        out["responses"] = out["responses"][:, neurons]
    return out


DYNAMIC_CASES = [
    # source, reduction, normalize, scale, behavior, pupil, pupil_channels, neurons
    ("all", "nanmean", True, 1.0, True, True, False, None),
    ("stimulus_frame", "mean", True, 1.0, True, True, False, None),
    ("stimulus_frame", "nanmean", True, 0.5, True, False, False, [7, 1]),
    ("all", "nanmean", True, 0.25, True, True, True, None),
    ("all", "nanmean", True, 0.5, False, True, False, None),
    ("stimulus_frame", "nanmean", False, 0.5, True, True, True, None),
]


@pytest.mark.parametrize(
    ("source", "reduction", "normalize", "scale", "behavior", "pupil", "pupil_channels", "neurons"),
    DYNAMIC_CASES,
)
def test_dynamic_windows_match_the_official_loader(
    dynamic_mouse: Mouse,
    source,
    reduction,
    normalize,
    scale,
    behavior,
    pupil,
    pupil_channels,
    neurons,
) -> None:
    """Per-sample window starts; every window ends before the kit's cut (valid length - 1)."""
    norm = (
        Normalizer.from_statistics(
            dynamic_mouse.stats, kind="dynamic", source=source, threshold_reduction=reduction
        )
        if normalize
        else None
    )
    trials = np.arange(37)
    rng = np.random.default_rng(len(source) + int(scale * 100))
    starts = rng.integers(0, dynamic_mouse.valid[trials] - 1 - FRAMES + 1)
    got = _toolkit_dynamic(
        dynamic_mouse,
        trials,
        starts,
        norm,
        scale=scale,
        behavior=behavior,
        pupil=pupil,
        pupil_channels=pupil_channels,
        neurons=None if neurons is None else np.array(neurons),
    )
    for j, i in enumerate(trials):
        ref = reference_sample(
            dynamic_mouse.tree,
            "dynamic",
            int(i),
            normalize=normalize,
            scale=scale,
            include_behavior=behavior,
            include_pupil=pupil,
            pupil_as_channels=pupil_channels,
            neuron_indices=neurons,
            frames=FRAMES,
            frame_start=int(starts[j]),
            stats_source=source,
            threshold_reduction=reduction,
        )
        _assert_samples({k: v[j] for k, v in got.items()}, ref, f"trial {i} start {starts[j]}")


def test_dynamic_one_start_for_the_whole_batch(dynamic_mouse: Mouse) -> None:
    norm = Normalizer.from_statistics(dynamic_mouse.stats, kind="dynamic")
    trials = np.array([3, 0, 9])
    got = _toolkit_dynamic(
        dynamic_mouse,
        trials,
        4,
        norm,
        scale=1.0,
        behavior=True,
        pupil=True,
        pupil_channels=False,
        neurons=None,
    )
    assert got["videos"].shape == (3, 3, FRAMES, 6, 10)
    for j, i in enumerate(trials):
        ref = reference_sample(
            dynamic_mouse.tree,
            "dynamic",
            int(i),
            include_behavior=True,
            include_pupil=True,
            frames=FRAMES,
            frame_start=4,
        )
        _assert_samples({k: v[j] for k, v in got.items()}, ref, f"trial {i}")


def test_the_kit_drops_the_last_valid_frame(dynamic_mouse: Mouse) -> None:
    """Documented kit fault (see ``rescale_images``): ndimage interpolates the frame axis too, so
    the first NaN frame spills into the last valid one and ``CutVideos`` cuts it. Only SciPy's
    zoom-factor-1 shortcut (SciPy >= 1.16) at scale 1 avoids it. The toolkit keeps it."""
    raw = [dynamic_mouse.data[k] for k in ("videos", "responses", "behavior", "pupil_center")]
    np.testing.assert_array_equal(valid_length(*raw), dynamic_mouse.valid)
    assert (dynamic_mouse.valid < N_FRAMES).any() and (dynamic_mouse.valid == N_FRAMES).any()
    for i, valid in enumerate(dynamic_mouse.valid):
        padded = valid < N_FRAMES
        options = dict(include_behavior=True, include_pupil=True, stats_source="stimulus_frame")
        kit = reference_sample(dynamic_mouse.tree, "dynamic", i, **options)
        assert kit["responses"].shape == (N_NEURONS, valid - padded)
        modern = reference_sample(
            dynamic_mouse.tree, "dynamic", i, scipy_zoom_shortcut=True, **options
        )
        assert modern["responses"].shape == (N_NEURONS, valid)
        scaled = reference_sample(
            dynamic_mouse.tree, "dynamic", i, scale=0.5, scipy_zoom_shortcut=True, **options
        )
        assert scaled["videos"].shape == (3, valid - padded, 3, 5)
        norm = Normalizer.from_statistics(
            dynamic_mouse.stats, kind="dynamic", source="stimulus_frame"
        )
        whole = norm("responses", dynamic_mouse.data["responses"][i : i + 1, :, :valid])[0]
        np.testing.assert_allclose(whole, modern["responses"], rtol=RTOL, atol=ATOL)


def test_dynamic_mean_reduction_with_nan_std_empties_the_kit_sample(dynamic_mouse: Mouse) -> None:
    """0.3.0's ``mean`` with per-frame NaN std makes every response NaN; the kit then cuts at 0."""
    ref = reference_sample(dynamic_mouse.tree, "dynamic", 0, threshold_reduction="mean")
    assert ref["responses"].shape == (N_NEURONS, 0)
    norm = Normalizer.from_statistics(
        dynamic_mouse.stats, kind="dynamic", threshold_reduction="mean"
    )
    assert np.isnan(norm("responses", dynamic_mouse.data["responses"][:2])).all()


def _start_of(window: np.ndarray, whole: np.ndarray) -> int:
    hits = [
        s
        for s in range(whole.shape[-1] - window.shape[-1] + 1)
        if np.array_equal(whole[..., s : s + window.shape[-1]], window)
    ]
    assert len(hits) == 1
    return hits[0]


def test_random_starts_cover_the_kit_range(dynamic_mouse: Mouse) -> None:
    """The kit draws ``np.random.randint(0, t - frames)``: the last window is never drawn."""
    i = int(np.flatnonzero(dynamic_mouse.valid == N_FRAMES)[0])
    whole = reference_sample(dynamic_mouse.tree, "dynamic", i)["responses"]
    t = whole.shape[-1]
    rs = np.random.RandomState(0)
    kit = {
        _start_of(
            reference_sample(dynamic_mouse.tree, "dynamic", i, frames=FRAMES, random_state=rs)[
                "responses"
            ],
            whole,
        )
        for _ in range(150)
    }
    assert kit == set(range(t - FRAMES))
    rng = np.random.default_rng(0)
    assert set(draw_window_starts(np.full(2000, t), FRAMES, rng=rng).tolist()) == kit
    assert set(
        draw_window_starts(np.full(2000, t), FRAMES, rng=rng, include_last=True).tolist()
    ) == set(range(t - FRAMES + 1))
    starts = draw_window_starts(np.array([10, 30]), 5, rng=rng)
    assert starts.shape == (2,) and starts[0] < 5 and starts[1] < 25
    with pytest.raises(ValueError, match="needs at least 6 valid frames"):
        draw_window_starts(np.array([5, 30]), 5, rng=rng)
    assert draw_window_starts(5, 5, rng=rng, include_last=True) == 0


# ----------------------------------------------------------------------------- hand-computed cases


def test_response_precision_by_hand() -> None:
    std = np.array([1.0, np.nan, 0.0, 2.0, 1e-4])
    thr = 0.01 * (1.0 + 0.0 + 2.0 + 1e-4) / 4
    np.testing.assert_allclose(
        response_precision(std), [1.0, 1 / thr, 1 / thr, 0.5, 1 / thr], rtol=1e-15
    )
    assert np.isnan(response_precision(std, "mean")).all()
    np.testing.assert_allclose(
        response_precision(np.array([1.0, 0.0, 2.0]), "mean"), [1.0, 1 / 0.01, 0.5]
    )
    per_frame = np.array([[1.0, np.nan], [3.0, 0.0]])  # one threshold over neurons AND frames
    thr = 0.01 * 4.0 / 3
    np.testing.assert_allclose(response_precision(per_frame), [[1.0, 1 / thr], [1 / 3.0, 1 / thr]])
    assert np.isnan(response_precision(np.full(3, np.nan))).all()
    with pytest.raises(ValueError, match="threshold_reduction"):
        response_precision(std, "median")


def _stats(**keys: tuple) -> dict:
    return {
        k: {"all": {"mean": np.asarray(m, float), "std": np.asarray(s, float)}}
        for k, (m, s) in keys.items()
    }


def test_static_normalizer_by_hand() -> None:
    stats = _stats(
        images=(2.0, 4.0),
        responses=(np.zeros(3), [2.0, np.nan, 0.0]),
        behavior=(np.ones(3), [2.0, 0.0, np.nan]),
        pupil_center=([1.0, -1.0], [2.0, 0.5]),
    )
    norm = Normalizer.from_statistics(stats, kind="static")
    images = np.arange(8, dtype=np.float32).reshape(2, 1, 2, 2)
    np.testing.assert_allclose(norm("images", images), (images - 2.0) / 4.0)
    thr = 0.01 * 1.0
    np.testing.assert_allclose(
        norm("responses", np.array([[2.0, 3.0, 4.0]])), [[1.0, 3.0 / thr, 4.0 / thr]], rtol=1e-6
    )
    behavior = norm("behavior", np.array([[4.0, 1.0, 1.0], [-2.0, 0.0, 5.0]]))
    np.testing.assert_array_equal(
        behavior, np.array([[2.0, np.inf, np.nan], [-1.0, np.nan, np.nan]], np.float32)
    )
    np.testing.assert_allclose(norm("pupil_center", np.array([[3.0, 0.0]])), [[1.0, 2.0]])
    ids = np.array([[1, 2]], dtype=np.int64)
    assert norm("trial_idx", ids).dtype == np.float32 and (norm("trial_idx", ids) == ids).all()
    assert (
        pickle.loads(pickle.dumps(norm))("images", images).tolist()
        == norm("images", images).tolist()
    )


def test_dynamic_normalizer_slices_per_frame_statistics() -> None:
    t_max = 6
    frames = np.arange(t_max, dtype=float)
    stats = _stats(
        videos=(np.broadcast_to(frames, (2, 3, t_max)), np.full((2, 3, t_max), 2.0)),
        responses=(np.zeros((2, t_max)), np.stack([frames + 1, np.full(t_max, 2.0)])),
        behavior=(np.zeros((2, t_max)), np.full((2, t_max), 4.0)),
        pupil_center=(np.broadcast_to(frames, (2, t_max)), np.ones((2, t_max))),
    )
    norm = Normalizer.from_statistics(stats, kind="dynamic")
    videos = np.zeros((2, 2, 3, 3), np.float32)
    out = norm("videos", videos, frame_start=np.array([1, 3]))
    np.testing.assert_array_equal(out[0, 0, 0], -np.array([1.0, 2.0, 3.0]) / 2)
    np.testing.assert_array_equal(out[1, 1, 2], -np.array([3.0, 4.0, 5.0]) / 2)
    np.testing.assert_array_equal(
        norm("videos", videos, frame_start=2)[:, 0, 0],
        np.broadcast_to(-np.array([2.0, 3.0, 4.0]) / 2, (2, 3)),
    )
    responses = np.ones((2, 2, 2), np.float32)
    np.testing.assert_allclose(
        norm("responses", responses, frame_start=np.array([0, 4]))[:, 0],
        [[1.0, 0.5], [1 / 5, 1 / 6]],
    )
    np.testing.assert_array_equal(norm("pupil_center", np.zeros((1, 2, t_max)))[0, 1], -frames)
    np.testing.assert_array_equal(
        norm("behavior", np.ones((1, 2, 3)), frame_start=3), np.full((1, 2, 3), 0.25)
    )
    with pytest.raises(ValueError, match="do not fit the 6 frames"):
        norm("responses", responses, frame_start=np.array([0, 5]))
    with pytest.raises(ValueError, match="frames last"):
        norm("responses", responses[0])


def test_normalizer_errors() -> None:
    stats = _stats(images=(0.0, 1.0), responses=(np.zeros(2), np.ones(2)))
    with pytest.raises(
        SchemaError,
        match=r"no statistics source 'stimulus_Frame' for 'images'; the store has \['all'\]",
    ):
        Normalizer.from_statistics(stats, kind="static", source="stimulus_Frame")
    norm = Normalizer.from_statistics(stats, kind="static")
    with pytest.raises(SchemaError, match="no 'all' statistics for data key 'behavior'"):
        norm("behavior", np.zeros((1, 3)))
    with pytest.raises(ValueError, match="frame_start is only for dynamic"):
        norm("responses", np.zeros((1, 2)), frame_start=0)
    with pytest.raises(ValueError, match="kind must be one of"):
        Normalizer.from_statistics(stats, kind="movies")
    with pytest.raises(ValueError, match="threshold_reduction must be one of"):
        Normalizer.from_statistics(stats, kind="static", threshold_reduction="median")
    with pytest.raises(SchemaError, match="have no 'std'"):
        Normalizer.from_statistics({"images": {"all": {"mean": np.zeros(())}}}, kind="static")


# ----------------------------------------------------------------------------- transforms


def test_rescale_by_hand() -> None:
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    blocks = x.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(2, 2, 4).mean(-1)
    np.testing.assert_array_equal(rescale_images(x, 0.5)[0, 0], blocks)  # 2x2 block means
    y = np.arange(64, dtype=np.float32).reshape(1, 8, 8)
    np.testing.assert_array_equal(
        rescale_images(y, 0.25)[0],
        y[:, 1:3, 1:3].mean((1, 2)).reshape(1, 1) + np.array([[0, 4], [32, 36]]),
    )
    assert rescale_images(np.full((2, 3, 144, 256), 7.5), 0.25).shape == (2, 3, 36, 64)
    assert (rescale_images(np.full((2, 3, 144, 256), 7.5), 0.25) == 7.5).all()
    assert [
        rescaled_size(n, s) for n, s in [(10, 0.25), (144, 0.25), (6, 0.25), (1, 0.1), (3, 0.5)]
    ] == [2, 36, 2, 1, 2]
    frames = np.ones((1, 4, 6, 10), np.float32)
    frames[0, 2:] = np.nan  # NaN frames never spill into valid ones: frames are not interpolated
    out = rescale_images(frames, 0.5)
    assert (out[0, :2] == 1).all() and np.isnan(out[0, 2:]).all()
    assert rescale_images(x.astype(np.float64), 1.0).dtype == np.float32
    with pytest.raises(ValueError, match="positive"):
        rescale_images(x, 0)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 30),
    w=st.integers(1, 30),
    scale=st.sampled_from([0.1, 0.25, 1 / 3, 0.5, 0.7, 1.5, 2.0]),
    seed=st.integers(0, 2**16),
)
def test_rescale_matches_the_reference_skimage(h: int, w: int, scale: float, seed: int) -> None:
    x = np.random.default_rng(seed).normal(50, 10, size=(2, h, w)).astype(np.float32)
    ref = _skimage_rescale(x, scale, 0, scipy_zoom_shortcut=True)
    np.testing.assert_allclose(rescale_images(x[None], scale)[0], ref, rtol=RTOL, atol=0)


def test_rescale_is_bit_identical_to_skimage() -> None:
    skimage = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(0)
    for shape, scale in [
        ((1, 144, 256), 0.25),
        ((4, 12, 20), 0.5),
        ((3, 7, 13), 1 / 3),
        ((2, 10, 10), 1.5),
    ]:
        x = rng.normal(50, 10, size=shape).astype(np.float32)
        ref = skimage.rescale(
            x,
            scale,
            mode="reflect",
            anti_aliasing=False,
            clip=True,
            preserve_range=True,
            channel_axis=0,
        )
        np.testing.assert_array_equal(rescale_images(x[None], scale)[0], ref)


def test_add_behavior_channels() -> None:
    images = np.zeros((2, 1, 3, 4), np.float32)
    behavior = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    pupil = np.array([[7.0, 8.0], [9.0, 10.0]])
    out = add_behavior_channels(images, behavior, pupil)
    assert out.shape == (2, 6, 3, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(
        out[:, :, 1, 2], np.concatenate([np.zeros((2, 1)), behavior, pupil], 1)
    )
    videos = np.zeros((2, 5, 3, 4))  # (B, T, H, W)
    beh = np.arange(20.0).reshape(2, 2, 5)
    out = add_behavior_channels(videos, beh)
    assert out.shape == (2, 3, 5, 3, 4)
    np.testing.assert_array_equal(out[:, 1:, :, 2, 3], beh)
    out = add_behavior_channels(out, beh, beh + 100)  # (B, C, T, H, W) takes more channels
    assert out.shape == (2, 7, 5, 3, 4)
    np.testing.assert_array_equal(out[:, 5:, :, 0, 0], beh + 100)
    with pytest.raises(ValueError, match="same T"):
        add_behavior_channels(videos, beh[..., :4])
    with pytest.raises(ValueError, match=r"2022 images must be \(B, C, H, W\)"):
        add_behavior_channels(images[:, 0], behavior)
    with pytest.raises(ValueError, match="must match the batch"):
        add_behavior_channels(images, behavior, pupil[:1])


def test_valid_length_and_windows() -> None:
    a = np.zeros((3, 2, 6))
    b = np.zeros((3, 6))
    a[0, 1, 4:] = np.nan
    b[1, 2] = np.nan  # one NaN anywhere in a frame ends the trial, in any key
    np.testing.assert_array_equal(valid_length(a, b), [4, 2, 6])
    x = np.arange(3 * 2 * 6, dtype=np.float32).reshape(3, 2, 6)
    out = valid_window(x, frame_start=np.array([0, 1, 3]), frames=3)
    np.testing.assert_array_equal(out, np.stack([x[0, :, 0:3], x[1, :, 1:4], x[2, :, 3:6]]))
    np.testing.assert_array_equal(valid_window(x, frame_start=2, frames=2), x[..., 2:4])
    with pytest.raises(ValueError, match=r"run past the valid lengths \[4\]"):
        valid_window(x, frame_start=np.array([0, 2, 0]), frames=3, valid_frames=np.array([6, 4, 6]))
    with pytest.raises(ValueError, match="arrays must share"):
        valid_length(a, b[:, :5])
