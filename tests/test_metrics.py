"""The official metrics against straightforward references written here (loops, scipy).

The references follow the kits' code: ``corr`` z-scores with ddof=0 and ``+1e-8``, 2022 metrics
split the trials by image id, 2023 metrics cut every trial at ``[skip, valid)`` and concatenate.
``sensorium_data.metrics`` computes the same numbers from merged per-block moments, eagerly or
streaming dask chunks; ``_BLOCK_BYTES`` is shrunk to force many blocks.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Any

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import pearsonr

import sensorium_data as sd
from sensorium_data import metrics as M
from sensorium_data.errors import SensoriumDataError
from sensorium_data.metrics import MetricInputError

# ----------------------------------------------------------------------------- references


def ref_corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per column, a loop over neurons, exactly the kits' formula."""
    out = []
    for j in range(x.shape[1]):
        a, b = x[:, j].astype(np.float64), y[:, j].astype(np.float64)
        za = (a - a.mean()) / (a.std() + 1e-8)
        zb = (b - b.mean()) / (b.std() + 1e-8)
        out.append(np.mean(za * zb))
    return np.array(out)


def split(x: np.ndarray, ids: np.ndarray) -> list[np.ndarray]:
    """Rows per image id, in float64 (the metrics accumulate in float64)."""
    return [x[ids == i].astype(np.float64) for i in np.unique(ids)]


def ref_corr_to_average(r: np.ndarray, p: np.ndarray, ids: np.ndarray) -> np.ndarray:
    rm = np.stack([g.mean(0) for g in split(r, ids)])
    pm = np.stack([g.mean(0) for g in split(p, ids)])
    return ref_corr(rm, pm)


def ref_fev_feve(r: np.ndarray, p: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """neuralpredictors ``fev(..., return_exp_var=True)`` on images with >= 2 repeats."""
    keep = np.isin(ids, [i for i in np.unique(ids) if (ids == i).sum() >= 2])
    targets, preds = split(r[keep], ids[keep]), split(p[keep], ids[keep])
    img_var = np.vstack([np.var(t, axis=0, ddof=1) for t in targets])
    pred_var = np.vstack([(t - q) ** 2 for t, q in zip(targets, preds, strict=True)])
    total_var = np.var(np.vstack(targets), axis=0, ddof=1)
    noise_var = img_var.mean(0)
    return (total_var - noise_var) / total_var, 1 - (pred_var.mean(0) - noise_var) / (
        total_var - noise_var
    )


def ref_oracle(r: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Leave-one-out: each repeat against the mean of the other repeats, pooled, per neuron."""
    held, others = [], []
    r = r.astype(np.float64)
    for i in np.unique(ids):
        rows = np.flatnonzero(ids == i)
        if len(rows) < 2:
            continue
        for k in rows:
            held.append(r[k])
            others.append(np.mean([r[j] for j in rows if j != k], axis=0))
    return ref_corr(np.array(held), np.array(others))


def ref_oracle_clips(r: np.ndarray, groups: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The 2022 oracle with every scored (clip, frame) as an image."""
    rows = [(i, f) for i in range(len(r)) for f in range(50, valid[i])]
    flat = np.array([r[i, :, f] for i, f in rows])
    return ref_oracle(flat, np.array([groups[i] * 100_000 + f for i, f in rows]))


def ref_dynamic(r: np.ndarray, p: np.ndarray, valid: np.ndarray, skip: int = 50) -> np.ndarray:
    """Cut every (neuron, frame) trial to [skip, valid), concatenate along time, corr, NaN->0."""
    rr = np.concatenate([r[i][:, skip : valid[i]] for i in range(len(r))], axis=1).T
    pp = np.concatenate([p[i][:, skip : valid[i]] for i in range(len(p))], axis=1).T
    with np.errstate(invalid="ignore"):
        c = ref_corr(rr, pp)
    return np.where(np.isnan(c), 0.0, c)


def ref_dynamic_average(r: np.ndarray, p: np.ndarray, groups: np.ndarray, valid: np.ndarray):
    rs, ps = [], []
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        end = valid[rows[0]]
        rs.append(np.mean([r[i][:, 50:end] for i in rows], axis=0))
        ps.append(np.mean([p[i][:, 50:end] for i in rows], axis=0))
    return ref_corr(np.concatenate(rs, axis=1).T, np.concatenate(ps, axis=1).T)


# ----------------------------------------------------------------------------- data


def static_data(seed: int = 0, n_images: int = 12, repeats: int = 4, n_neurons: int = 7):
    rng = np.random.default_rng(seed)
    ids = np.repeat(rng.choice(1000, n_images, replace=False), repeats)
    signal = rng.gamma(2.0, size=(n_images, n_neurons))
    r = np.repeat(signal, repeats, axis=0) + rng.normal(0, 0.7, (len(ids), n_neurons))
    p = np.repeat(signal, repeats, axis=0) * rng.uniform(0.5, 1.5, n_neurons) + rng.normal(
        0, 0.5, r.shape
    )
    order = rng.permutation(len(ids))  # trials in no particular order
    return r[order].astype(np.float32), p[order], ids[order]


def dynamic_data(seed: int = 0, n_trials: int = 8, n_neurons: int = 5, n_frames: int = 90):
    rng = np.random.default_rng(seed)
    groups = np.arange(n_trials) % 3
    valid = np.array([90, 70, 80])[groups]  # one length per clip
    signal = rng.gamma(2.0, size=(3, n_neurons, n_frames))
    r = signal[groups] + rng.normal(0, 0.5, (n_trials, n_neurons, n_frames))
    p = signal[groups] * 0.8 + rng.normal(0, 0.5, r.shape)
    pad = np.arange(n_frames)[None, None, :] >= valid[:, None, None]
    r[np.broadcast_to(pad, r.shape)] = np.nan
    return r, p, valid, groups


@pytest.fixture(params=["one block", "many blocks"])
def blocks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "many blocks":
        monkeypatch.setattr(M, "_BLOCK_BYTES", 1)  # a block per trial (numpy) or chunk (dask)
    return str(request.param)


def as_static_xr(x: np.ndarray, neurons: Any = None) -> xr.DataArray:
    n_trials, n_neurons = x.shape
    neurons = np.arange(100, 100 + n_neurons) if neurons is None else neurons
    return xr.DataArray(
        x, dims=("trial", "neuron"), coords={"trial": np.arange(n_trials), "neuron": neurons}
    )


def as_dynamic_xr(x: np.ndarray, valid: Any = None) -> xr.DataArray:
    coords: dict[str, Any] = {"trial": np.arange(len(x)), "neuron": np.arange(x.shape[1]) + 7}
    if valid is not None:
        coords["valid_frames"] = ("trial", valid)
    return xr.DataArray(x, dims=("trial", "neuron", "frame"), coords=coords)


# ----------------------------------------------------------------------------- corr


class TestCorr:
    def test_matches_pearsonr(self) -> None:
        rng = np.random.default_rng(1)
        x, y = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
        expected = [pearsonr(x[:, j], y[:, j]).statistic for j in range(4)]
        np.testing.assert_allclose(M.corr(x, y, axis=0), expected, atol=1e-6)
        np.testing.assert_allclose(M.corr(x.T, y.T, axis=1), expected, atol=1e-6)

    def test_constant_gives_zero_not_nan(self) -> None:
        x = np.random.default_rng(2).normal(size=(20, 3))
        out = M.corr(x, np.full_like(x, 0.1), axis=0)
        assert np.isfinite(out).all()
        np.testing.assert_allclose(out, 0.0, atol=1e-7)

    def test_xarray_by_dim_name_and_dask(self) -> None:
        rng = np.random.default_rng(3)
        x, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
        expected = ref_corr(x, y)
        out = M.corr(as_static_xr(x), as_static_xr(y), axis="trial")
        np.testing.assert_allclose(out.values, expected, rtol=1e-12)
        lazy = M.corr(da.from_array(x, chunks=7), da.from_array(y, chunks=7), axis=0)
        np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-12)


# ----------------------------------------------------------------------------- 2022


class TestStatic:
    def test_single_trial(self, blocks: str) -> None:
        r, p, _ = static_data()
        expected = ref_corr(r, p)
        np.testing.assert_allclose(M.single_trial_correlation(r, p, per_neuron=True), expected)
        assert M.single_trial_correlation(r, p) == pytest.approx(expected.mean(), rel=1e-12)
        scipy_r = [pearsonr(r[:, j], p[:, j]).statistic for j in range(r.shape[1])]
        np.testing.assert_allclose(expected, scipy_r, atol=1e-6)

    def test_correlation_to_average(self, blocks: str) -> None:
        r, p, ids = static_data(1)
        expected = ref_corr_to_average(r, p, ids)
        out = M.correlation_to_average(r, p, ids, per_neuron=True)
        np.testing.assert_allclose(out, expected, rtol=1e-10)
        string_ids = np.array([f"img{i}" for i in ids])
        assert M.correlation_to_average(r, p, string_ids) == pytest.approx(expected.mean())

    def test_feve_and_fev(self, blocks: str) -> None:
        r, p, ids = static_data(2, repeats=5)
        fev_ref, feve_ref = ref_fev_feve(r, p, ids)
        np.testing.assert_allclose(M.fev(r, ids), fev_ref, rtol=1e-10)
        out = M.feve(r, p, ids, fev_threshold=-np.inf, per_neuron=True)
        np.testing.assert_allclose(out, feve_ref, rtol=1e-10)
        threshold = float(np.sort(fev_ref)[2:4].mean())  # between two neurons' FEV
        selected = fev_ref >= threshold
        out = M.feve(r, p, ids, fev_threshold=threshold, per_neuron=True)
        np.testing.assert_allclose(out[selected], feve_ref[selected], rtol=1e-10)
        assert np.isnan(out[~selected]).all()
        assert M.feve(r, p, ids, fev_threshold=threshold) == pytest.approx(
            feve_ref[selected].mean(), rel=1e-10
        )

    def test_feve_no_neuron_selected_is_nan(self) -> None:
        r, p, ids = static_data(3)
        assert np.isnan(M.feve(r, p, ids, fev_threshold=2.0))

    def test_explainable_variance_and_oracle(self, blocks: str) -> None:
        r, _, ids = static_data(4, repeats=3)
        fev_ref, _ = ref_fev_feve(r, r, ids)
        total = np.var(r.astype(np.float64), axis=0, ddof=1)
        np.testing.assert_allclose(
            M.explainable_variance(r, ids), fev_ref * total / (total + 1e-9), rtol=1e-10
        )
        np.testing.assert_allclose(M.oracle_correlation(r, ids), ref_oracle(r, ids), rtol=1e-10)

    def test_single_repeat_images_are_left_out(self) -> None:
        r, p, ids = static_data(5)
        rng = np.random.default_rng(5)
        r1 = np.vstack([r, rng.normal(size=(2, r.shape[1]))])
        p1 = np.vstack([p, rng.normal(size=(2, r.shape[1]))])
        ids1 = np.concatenate([ids, [-1, -2]])  # two images shown once
        for fn in (M.oracle_correlation, M.fev, M.explainable_variance):
            np.testing.assert_allclose(fn(r1, ids1), fn(r, ids), rtol=1e-12)
        np.testing.assert_allclose(M.oracle_correlation(r1, ids1), ref_oracle(r1, ids1))
        assert M.feve(r1, p1, ids1, fev_threshold=-1) == pytest.approx(
            M.feve(r, p, ids, fev_threshold=-1), rel=1e-12
        )
        # single-trial and average correlations keep every trial
        assert M.correlation_to_average(r1, p1, ids1) == pytest.approx(
            ref_corr_to_average(r1, p1, ids1).mean()
        )

    def test_no_repeats_at_all(self) -> None:
        r, p, _ = static_data(6)
        ids = np.arange(len(r))
        for call in (
            lambda: M.oracle_correlation(r, ids),
            lambda: M.fev(r, ids),
            lambda: M.feve(r, p, ids),
        ):
            with pytest.raises(MetricInputError, match="needs repeats"):
                call()

    def test_adversarial_columns(self) -> None:
        r, p, ids = static_data(7)
        r, p = r.astype(np.float64), p.copy()
        p[:, 0] = 3.25  # constant prediction
        r[:, 1] = 2.0  # a neuron that never varies
        r[:, 2] += 1e6  # a large offset: one-pass sums would lose every digit
        single = M.single_trial_correlation(r, p, per_neuron=True)
        assert single[0] == 0.0 or abs(single[0]) < 1e-7
        assert abs(single[1]) < 1e-7
        np.testing.assert_allclose(single[2:], ref_corr(r, p)[2:], rtol=1e-7)
        average = M.correlation_to_average(r, p, ids, per_neuron=True)
        np.testing.assert_allclose(average, ref_corr_to_average(r, p, ids), atol=1e-7)
        oracle = M.oracle_correlation(r, ids)
        assert abs(oracle[1]) < 1e-7
        np.testing.assert_allclose(oracle[2:], ref_oracle(r, ids)[2:], rtol=1e-7)
        fev = M.fev(r, ids)
        assert np.isnan(fev[1])  # 0/0: never selected
        assert np.isnan(M.feve(r, p, ids, fev_threshold=-np.inf, per_neuron=True)[1])

    def test_noiseless_repeats(self) -> None:
        rng = np.random.default_rng(8)
        ids = np.repeat(np.arange(6), 3)
        r = rng.normal(size=(6, 4))[ids]
        np.testing.assert_allclose(M.oracle_correlation(r, ids), 1.0, atol=1e-7)
        np.testing.assert_allclose(M.fev(r, ids), 1.0)
        assert M.feve(r, r, ids) == pytest.approx(1.0)

    def test_joint_permutation_invariance(self) -> None:
        r, p, ids = static_data(9)
        rng = np.random.default_rng(9)
        rows, cols = rng.permutation(len(r)), rng.permutation(r.shape[1])
        r2, p2, ids2 = r[rows][:, cols], p[rows][:, cols], ids[rows]
        for fn, args, args2 in [
            (M.single_trial_correlation, (r, p), (r2, p2)),
            (M.correlation_to_average, (r, p, ids), (r2, p2, ids2)),
            (M.feve, (r, p, ids), (r2, p2, ids2)),
        ]:
            a = fn(*args, per_neuron=True)
            b = fn(*args2, per_neuron=True)
            np.testing.assert_allclose(a[cols], b, rtol=1e-10)
            assert fn(*args) == pytest.approx(fn(*args2), rel=1e-12)
        np.testing.assert_allclose(
            M.oracle_correlation(r, ids)[cols], M.oracle_correlation(r2, ids2)
        )

    @settings(max_examples=25, deadline=None)
    @given(
        n_trials=st.integers(2, 12),
        n_neurons=st.integers(1, 4),
        seed=st.integers(0, 2**16),
        scale=st.sampled_from([1e-3, 1.0, 1e3]),
    )
    def test_single_trial_property(
        self, n_trials: int, n_neurons: int, seed: int, scale: float
    ) -> None:
        rng = np.random.default_rng(seed)
        r = rng.normal(size=(n_trials, n_neurons)) * scale
        p = rng.normal(size=(n_trials, n_neurons))
        out = M.single_trial_correlation(r, p, per_neuron=True)
        np.testing.assert_allclose(out, ref_corr(r, p), rtol=1e-8, atol=1e-12)
        assert (np.abs(out) <= 1 + 1e-12).all()


# ----------------------------------------------------------------------------- xarray, dask


class TestLabelledAndLazy:
    def test_xarray_equals_numpy(self) -> None:
        r, p, ids = static_data(10)
        rx, px = as_static_xr(r), as_static_xr(p)
        out = M.single_trial_correlation(rx, px, per_neuron=True)
        assert isinstance(out, xr.DataArray) and out.dims == ("neuron",)
        np.testing.assert_array_equal(out["neuron"], rx["neuron"])
        np.testing.assert_allclose(out, M.single_trial_correlation(r, p, per_neuron=True))
        assert M.feve(rx, px, xr.DataArray(ids, dims="trial")) == pytest.approx(M.feve(r, p, ids))
        oracle = M.oracle_correlation(rx, ids)
        np.testing.assert_allclose(oracle, M.oracle_correlation(r, ids))
        assert list(oracle.coords) == ["neuron"]

    def test_predictions_matched_by_labels(self) -> None:
        r, p, ids = static_data(11)
        rx, px = as_static_xr(r), as_static_xr(p)
        rng = np.random.default_rng(11)
        shuffled = px.isel(trial=rng.permutation(len(r)), neuron=rng.permutation(r.shape[1]))
        shuffled = shuffled.transpose("neuron", "trial")
        for fn, args in [
            (M.single_trial_correlation, ()),
            (M.correlation_to_average, (ids,)),
            (M.feve, (ids,)),
        ]:
            np.testing.assert_allclose(
                fn(rx, shuffled, *args, per_neuron=True), fn(r, p, *args, per_neuron=True)
            )

    def test_lazy_equals_eager(self, blocks: str) -> None:
        r, p, ids = static_data(12)
        rx = as_static_xr(r).chunk({"trial": 5, "neuron": 3})
        px = as_static_xr(p).chunk({"trial": 7})
        for fn, args in [
            (M.single_trial_correlation, ()),
            (M.correlation_to_average, (ids,)),
            (M.feve, (ids,)),
        ]:
            lazy = fn(rx, px, *args, per_neuron=True)
            assert isinstance(lazy, xr.DataArray) and not lazy.chunks
            np.testing.assert_allclose(lazy, fn(r, p, *args, per_neuron=True), rtol=1e-12)
        np.testing.assert_allclose(M.oracle_correlation(rx, ids), M.oracle_correlation(r, ids))
        raw = M.single_trial_correlation(da.from_array(r, chunks=4), da.from_array(p, chunks=6))
        assert raw == pytest.approx(M.single_trial_correlation(r, p), rel=1e-12)

    def test_lazy_dynamic_equals_eager(self, blocks: str) -> None:
        r, p, valid, groups = dynamic_data(13)
        rx = as_dynamic_xr(r, valid).chunk({"trial": 3, "frame": 40})
        px = as_dynamic_xr(p).transpose("trial", "frame", "neuron").chunk({"trial": 2})
        out = M.dynamic_single_trial_correlation(rx, px, per_neuron=True)
        np.testing.assert_allclose(out, ref_dynamic(r, p, valid), rtol=1e-10)
        avg = M.dynamic_correlation_to_average(rx, px, groups, per_neuron=True)
        np.testing.assert_allclose(avg, ref_dynamic_average(r, p, groups, valid), rtol=1e-10)

    def test_per_neuron_keeps_neuron_coordinates(self) -> None:
        r, p, _ = static_data(14)
        rx = as_static_xr(r).assign_coords(unit_ids=("neuron", np.arange(r.shape[1]) * 3))
        out = M.single_trial_correlation(rx, p, per_neuron=True)
        np.testing.assert_array_equal(out["unit_ids"], rx["unit_ids"])
        assert out.name == "single_trial_correlation"


# ----------------------------------------------------------------------------- 2023


class TestDynamic:
    def test_single_trial_with_different_valid_lengths(self, blocks: str) -> None:
        r, p, valid, _ = dynamic_data(20)
        expected = ref_dynamic(r, p, valid)
        inferred = M.dynamic_single_trial_correlation(r, p, per_neuron=True)
        np.testing.assert_allclose(inferred, expected, rtol=1e-10)
        given_ = M.dynamic_single_trial_correlation(r, p, valid_frames=valid, per_neuron=True)
        np.testing.assert_allclose(given_, expected, rtol=1e-10)
        assert M.dynamic_single_trial_correlation(r, p) == pytest.approx(expected.mean())

    def test_valid_frames_coordinate_and_skip(self) -> None:
        r, p, valid, _ = dynamic_data(21)
        shorter = valid - 5  # the coordinate wins over the NaN padding
        out = M.dynamic_single_trial_correlation(as_dynamic_xr(r, shorter), p, per_neuron=True)
        np.testing.assert_allclose(out, ref_dynamic(r, p, shorter), rtol=1e-10)
        out = M.dynamic_single_trial_correlation(r, p, skip=10, per_neuron=True)
        np.testing.assert_allclose(out, ref_dynamic(r, p, valid, skip=10), rtol=1e-10)

    def test_predictions_outside_scored_frames_are_ignored(self) -> None:
        r, p, valid, _ = dynamic_data(22)
        p2 = p.copy()
        p2[:, :, :50] = np.nan
        p2[np.broadcast_to(np.isnan(r), p.shape)] = np.inf
        assert M.dynamic_single_trial_correlation(r, p2) == pytest.approx(
            M.dynamic_single_trial_correlation(r, p)
        )

    def test_trial_order_does_not_matter(self) -> None:
        r, p, valid, _ = dynamic_data(23)
        order = np.random.default_rng(23).permutation(len(r))
        assert M.dynamic_single_trial_correlation(r[order], p[order]) == pytest.approx(
            M.dynamic_single_trial_correlation(r, p), rel=1e-12
        )

    def test_nan_response_and_constant_prediction_give_zero(self) -> None:
        r, p, valid, _ = dynamic_data(24)
        r[0, 1, 60] = np.nan  # a NaN inside the scored frames of one neuron
        p[:, 2, :] = 1.5
        out = M.dynamic_single_trial_correlation(r, p, per_neuron=True)
        assert out[1] == 0.0 and abs(out[2]) < 1e-7
        np.testing.assert_allclose(out, ref_dynamic(r, p, valid), atol=1e-7)

    def test_correlation_to_average(self, blocks: str) -> None:
        r, p, valid, groups = dynamic_data(25)
        labels = np.array(["a", "b", "c"])[groups]
        out = M.dynamic_correlation_to_average(r, p, labels, per_neuron=True)
        np.testing.assert_allclose(out, ref_dynamic_average(r, p, groups, valid), rtol=1e-10)

    def test_repeat_groups_from_videos(self, blocks: str) -> None:
        rng = np.random.default_rng(26)
        clips = rng.normal(size=(3, 4, 5, 6))
        clips[1, ..., 4:] = np.nan
        order = np.array([2, 0, 2, 1, 0, 1, 1])
        videos = clips[order]
        expected = np.array([0, 1, 0, 2, 1, 2, 2])
        np.testing.assert_array_equal(M.repeat_groups_from_videos(videos), expected)
        np.testing.assert_array_equal(
            M.repeat_groups_from_videos(da.from_array(videos, chunks=(2, 4, 5, 6))), expected
        )
        labelled = xr.DataArray(videos, dims=("trial", "height", "width", "frame"))
        np.testing.assert_array_equal(
            M.repeat_groups_from_videos(labelled.transpose("frame", ...)), expected
        )
        almost = videos.copy()
        almost[2, 0, 0, 0] += 1e-12  # no longer a repeat of trial 0
        np.testing.assert_array_equal(M.repeat_groups_from_videos(almost), [0, 1, 2, 3, 1, 3, 3])

    def test_oracle_of_clips(self) -> None:
        r, _, valid, groups = dynamic_data(27)
        out = M.oracle_correlation(r, groups, valid_frames=valid)
        np.testing.assert_allclose(out, ref_oracle_clips(r, groups, valid), rtol=1e-10)
        np.testing.assert_allclose(M.oracle_correlation(as_dynamic_xr(r), groups), out)

    def test_track_scores(self) -> None:
        mice: dict[str, Any] = {}
        per_mouse = []
        for k in range(3):
            r, p, valid, _ = dynamic_data(30 + k, n_trials=4 + k)
            per_mouse.append(ref_dynamic(r, p, valid).mean())
            mice[f"m{k}"] = {"responses": r, "predictions": p, "valid_frames": valid}
        mice["m1"] = (mice["m1"]["responses"], mice["m1"]["predictions"])  # valid from NaNs
        assert M.main_track_score(mice) == pytest.approx(np.mean(per_mouse))
        types = {"pink_noise": {"m0": mice["m0"], "m2": mice["m2"]}, "gabor": {"m1": mice["m1"]}}
        expected = np.mean([np.mean([per_mouse[0], per_mouse[2]]), per_mouse[1]])
        assert M.bonus_track_score(types) == pytest.approx(expected)


# ----------------------------------------------------------------------------- validation


class TestValidation:
    def test_error_classes(self) -> None:
        assert issubclass(MetricInputError, SensoriumDataError)
        assert issubclass(MetricInputError, ValueError)

    def test_static_inputs(self) -> None:
        r, p, ids = static_data(40)
        cases: list[tuple[Any, str]] = [
            (
                lambda: M.single_trial_correlation(r[:-1], p),
                "predictions hold 48 trials but responses hold 47",
            ),
            (
                lambda: M.single_trial_correlation(r, p[:, :-1]),
                "predictions hold 6 neurons but responses hold 7",
            ),
            (
                lambda: M.single_trial_correlation(r[0], p[0]),
                r"responses must be 2-D \(trial, neuron\)",
            ),
            (lambda: M.single_trial_correlation(r[:1], p[:1]), "at least 2 trials, got 1"),
            (lambda: M.single_trial_correlation(r[:0], p[:0]), "no trials or no neurons"),
            (
                lambda: M.single_trial_correlation(r, p.astype(str)),
                "predictions must hold real numbers",
            ),
            (
                lambda: M.correlation_to_average(r, p, ids[:-1]),
                r"image_ids must hold one entry per trial \(48\)",
            ),
            (
                lambda: M.correlation_to_average(r, p, np.zeros(len(r))),
                "at least 2 distinct image ids",
            ),
            (
                lambda: M.feve(r, p, ids, fev_threshold="high"),
                "fev_threshold must be a real number",
            ),
            (lambda: M.oracle_correlation(r, ids[:3]), "image_ids must hold one entry per trial"),
        ]
        for call, message in cases:
            with pytest.raises(MetricInputError, match=message):
                call()

    @pytest.mark.parametrize("bad", [np.nan, np.inf])
    def test_non_finite(self, bad: float) -> None:
        r, p, ids = static_data(41)
        p2, r2 = p.copy(), r.copy()
        p2[3, 2], r2[5, 1] = bad, bad
        for fn, args in [(M.single_trial_correlation, ()), (M.feve, (ids,))]:
            with pytest.raises(MetricInputError, match="predictions hold NaN or inf"):
                fn(r, p2, *args)
            with pytest.raises(MetricInputError, match="responses hold NaN or inf"):
                fn(r2, p, *args)
        with pytest.raises(MetricInputError, match="predictions hold NaN or inf"):
            M.single_trial_correlation(da.from_array(r, chunks=5), da.from_array(p2, chunks=5))
        dr, dp, _, _ = dynamic_data(41)
        dp[1, 0, 60] = bad
        with pytest.raises(MetricInputError, match="predictions hold NaN or inf in scored"):
            M.dynamic_single_trial_correlation(dr, dp)

    def test_labelled_inputs(self) -> None:
        r, p, _ = static_data(42)
        rx, px = as_static_xr(r), as_static_xr(p)
        with pytest.raises(MetricInputError, match=r"predictions has dims \('trial', 'unit'\)"):
            M.single_trial_correlation(rx, px.rename(neuron="unit"))
        other = px.assign_coords(neuron=px["neuron"].values + 1)
        with pytest.raises(MetricInputError, match="neuron labels differ .* 1 missing .* 1 extra"):
            M.single_trial_correlation(rx, other)
        with pytest.raises(MetricInputError, match="trial labels differ"):
            M.single_trial_correlation(rx, px.assign_coords(trial=px["trial"].values * 2))

    def test_dynamic_inputs(self) -> None:
        r, p, valid, groups = dynamic_data(43)
        cases: list[tuple[Any, str]] = [
            (
                lambda: M.dynamic_single_trial_correlation(r[..., :-1], p),
                "predictions hold 90 frames but responses hold 89",
            ),
            (
                lambda: M.dynamic_single_trial_correlation(r[:, 0], p[:, 0]),
                r"must be 3-D \(trial, neuron, frame\)",
            ),
            (
                lambda: M.dynamic_single_trial_correlation(r, p, skip=-1),
                "skip must be an integer >= 0",
            ),
            (
                lambda: M.dynamic_single_trial_correlation(r, p, skip=90),
                "fewer than 2 scored frames",
            ),
            (
                lambda: M.dynamic_single_trial_correlation(r, p, valid_frames=valid[:-1]),
                r"valid_frames must hold one integer in 0..90 per trial \(8\)",
            ),
            (
                lambda: M.dynamic_single_trial_correlation(r, p, valid_frames=valid + 1),
                "range 71..91",
            ),
            (
                lambda: M.dynamic_correlation_to_average(r, p, groups[:2]),
                "groups must hold one entry per trial",
            ),
            (lambda: M.main_track_score({}), "non-empty mapping of mouse"),
            (lambda: M.main_track_score({"m": r}), "mouse 'm': expected"),
            (lambda: M.bonus_track_score({"gabor": {}}), "stimulus type 'gabor' maps to no mice"),
            (lambda: M.bonus_track_score({}), "non-empty mapping of stimulus type"),
            (lambda: M.repeat_groups_from_videos(xr.DataArray(r[0])), "expected a 'trial' dim"),
            (lambda: M.repeat_groups_from_videos(np.float64(1.0)), "trial axis first"),
        ]
        for call, message in cases:
            with pytest.raises(MetricInputError, match=message):
                call()


def test_import_does_not_import_torch() -> None:
    code = "import sys, sensorium_data.metrics; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ----------------------------------------------------------------------------- stores


def _synthetic_store(tmp_path: pathlib.Path, kind: str, **kwargs: Any) -> tuple[pathlib.Path, Any]:
    [tree] = sd.synthesize(tmp_path / kind, kind=kind, competition=False, seed=3, **kwargs)
    return tree, np.load(str(tree) + ".ground_truth.npz")


def _stack(tree: pathlib.Path, key: str, n: int) -> np.ndarray:
    return np.stack([np.load(tree / "data" / key / f"{i}.npy") for i in range(n)])


def test_store_oracle_static_noiseless_beats_noisy(tmp_path: pathlib.Path) -> None:
    tree, truth = _synthetic_store(
        tmp_path, "static", n_trials=240, n_neurons=16, image_size=(16, 16)
    )
    tiers = np.load(tree / "meta" / "trials" / "tiers.npy")
    ids = np.load(tree / "meta" / "trials" / "frame_image_id.npy")
    test = np.flatnonzero(tiers == "test")
    sd.convert([tree], tmp_path / "noisy.zarr", progress=False)
    noisy = M.store_oracle(tmp_path / "noisy.zarr")
    responses = _stack(tree, "responses", len(tiers))
    np.testing.assert_allclose(noisy, ref_oracle(responses[test], ids[test]), rtol=1e-6)
    np.testing.assert_array_equal(noisy["neuron"], truth["unit_ids"])
    for i in test:  # the noise-free rates of the ground-truth encoder
        np.save(tree / "data" / "responses" / f"{i}.npy", truth["rates"][i].astype(np.float32))
    sd.convert([tree], tmp_path / "clean.zarr", progress=False)
    clean = M.store_oracle(tmp_path / "clean.zarr")
    assert float(clean.mean()) > float(noisy.mean()) + 0.1
    with pytest.raises(MetricInputError, match="no trials of tier 'oracle'"):
        M.store_oracle(tmp_path / "clean.zarr", tier="oracle")


def test_store_oracle_dynamic(tmp_path: pathlib.Path) -> None:
    tree, truth = _synthetic_store(tmp_path, "dynamic", n_trials=60, n_neurons=6, image_size=(8, 8))
    sd.convert([tree], tmp_path / "dyn.zarr", progress=False)
    out = M.store_oracle(tmp_path / "dyn.zarr")
    oracle = np.flatnonzero(truth["tiers"] == "oracle")
    groups = M.repeat_groups_from_videos(_stack(tree, "videos", 60)[oracle])
    stimulus = truth["stimulus_id"][oracle]  # identical clips are the repeats of one stimulus
    np.testing.assert_array_equal(groups[:, None] == groups, stimulus[:, None] == stimulus)
    assert len(set(groups.tolist())) >= 2
    responses = _stack(tree, "responses", 60)[oracle]
    expected = ref_oracle_clips(responses, stimulus, truth["valid_length"][oracle])
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert out.dims == ("neuron",) and np.isfinite(out).all()
