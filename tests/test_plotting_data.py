"""The data figures draw what a mouse holds: the plotted values, counts, labels and colour bars.

Made from small synthetic stores (one 2022 competition-free mouse, one 2023 mouse); also that
``import sensorium_data.plotting`` leaves matplotlib alone and a missing matplotlib says what to
install.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import sensorium_data as sd
from sensorium_data import metrics
from sensorium_data.plotting import (
    behavior_traces,
    frame_statistics,
    frame_strip,
    frame_traces,
    image_responses,
    neuron_positions,
    repeat_matrix,
    response_raster,
    response_statistics,
    valid_lengths,
)


@pytest.fixture(scope="module")
def static_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("plot_static")
    return sd.example_store(
        folder, kind="static", n_mice=1, n_trials=60, n_neurons=12, image_size=(16, 24)
    )


@pytest.fixture(scope="module")
def static(static_store: Any) -> Any:
    return sd.open_mouse(static_store)


@pytest.fixture(scope="module")
def dynamic_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("plot_dynamic")
    return sd.example_store(folder, kind="dynamic", n_mice=1, n_trials=40, n_neurons=8, n_frames=30)


@pytest.fixture(scope="module")
def dynamic(dynamic_store: Any) -> Any:
    return sd.open_mouse(dynamic_store)


def _colorbars(fig: Any) -> list[str]:
    """Labels of the figure's colour bars (axes that are colour bars carry ``_colorbar``)."""
    return [ax.get_ylabel() for ax in fig.axes if hasattr(ax, "_colorbar")]


def _tiers(ds: Any) -> np.ndarray:
    return np.array([str(t) for t in ds["tiers"].values.tolist()])


# ----------------------------------------------------------------------------- 2022


class TestResponseRaster:
    def test_image_is_the_responses_of_the_tier(self, static: Any) -> None:
        fig = response_raster(static, tier="train", max_trials=20, max_neurons=5)
        ax = fig.axes[0]
        train = np.flatnonzero(_tiers(static) == "train")[:20]
        expected = static["responses"].isel(trial=train, neuron=slice(0, 5)).values
        np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), expected)
        assert ax.get_xlabel() == "neuron"
        assert ax.get_ylabel() == "trial (file index)"
        assert _colorbars(fig) == ["response (a.u.)"]
        assert ax.get_yticklabels()[0].get_text() == str(train[0])

    def test_all_trials_and_at_most_the_neurons_there_are(self, static: Any) -> None:
        fig = response_raster(static, tier=None, max_trials=1000, max_neurons=1000)
        assert fig.axes[0].images[0].get_array().shape == (60, 12)

    def test_several_tiers_one_after_the_other(self, static: Any) -> None:
        fig = response_raster(static, tier=["test", "validation"])
        ax = fig.axes[0]
        tiers = _tiers(static)
        rows = np.r_[np.flatnonzero(tiers == "test"), np.flatnonzero(tiers == "validation")]
        np.testing.assert_array_equal(
            np.asarray(ax.images[0].get_array()), static["responses"].values[rows]
        )
        assert [t.get_text() for t in ax.texts] == ["test", "validation"]

    def test_unknown_tier_and_bad_sizes(self, static: Any) -> None:
        with pytest.raises(ValueError, match="tier 'nope' is not a tier of this mouse"):
            response_raster(static, tier="nope")
        with pytest.raises(ValueError, match="max_trials must be a positive integer"):
            response_raster(static, max_trials=0)

    def test_a_2023_mouse_is_refused(self, dynamic: Any) -> None:
        with pytest.raises(ValueError, match="ds is a 2023 .*frame_traces"):
            response_raster(dynamic)

    def test_not_a_dataset(self, static: Any) -> None:
        with pytest.raises(TypeError, match="ds must be an xarray.Dataset"):
            response_raster(static["responses"])


class TestBehaviorTraces:
    def test_five_panels_in_presentation_order(self, static: Any) -> None:
        fig = behavior_traces(static)
        axes = fig.axes
        assert len(axes) == 5
        titles = [ax.get_title(loc="left") for ax in axes]
        assert titles == [
            "pupil dilation",
            "pupil dilation derivative",
            "running speed",
            "pupil centre, horizontal",
            "pupil centre, vertical",
        ]
        order = np.argsort(static["trial_idx"].values)
        x, y = axes[2].lines[0].get_data()
        np.testing.assert_array_equal(x, static["trial_idx"].values[order])
        np.testing.assert_array_equal(y, static["behavior"].values[order, 2])
        x, y = axes[4].lines[0].get_data()
        np.testing.assert_array_equal(y, static["pupil_center"].values[order, 1])
        assert axes[-1].get_xlabel() == "trial (presentation order, trial_idx)"

    def test_hash_trial_idx_falls_back_to_file_order(self, static: Any) -> None:
        hashed = static.assign_coords(
            trial_idx=("trial", [f"{i:032x}" for i in range(static.sizes["trial"])])
        )
        fig = behavior_traces(hashed, tier="validation")
        x, _ = fig.axes[0].lines[0].get_data()
        np.testing.assert_array_equal(x, np.flatnonzero(_tiers(static) == "validation"))
        assert fig.axes[-1].get_xlabel().startswith("trial (file index")

    def test_unknown_tier(self, static: Any) -> None:
        with pytest.raises(ValueError, match="tier 'final' is not a tier"):
            behavior_traces(static, tier="final")


class TestImageResponses:
    def test_images_and_population_responses(self, static: Any) -> None:
        trials = [3, 7, 11]
        fig = image_responses(static, trials, max_neurons=10)
        images = [ax for ax in fig.axes if ax.images]
        lines = [ax for ax in fig.axes if ax.lines]
        assert len(images) == len(lines) == 3
        for k, trial in enumerate(trials):
            np.testing.assert_array_equal(
                images[k].images[0].get_array(), static["images"].values[trial, 0]
            )
            image_id = int(static["frame_image_id"].values[trial])
            assert images[k].get_title() == f"trial {trial}\nimage {image_id}"
            _, y = lines[k].lines[0].get_data()
            np.testing.assert_array_equal(y, static["responses"].values[trial, :10])
        assert lines[0].get_ylabel() == "response (a.u.)"
        assert lines[0].get_xlabel() == "neuron"

    def test_bad_trials(self, static: Any) -> None:
        with pytest.raises(ValueError, match="trials must lie in 0..59"):
            image_responses(static, [0, 60])
        with pytest.raises(ValueError, match="trials must be 1 to 12"):
            image_responses(static, [])


class TestNeuronPositions:
    def test_one_point_per_neuron_coloured_by_the_values(self, static: Any) -> None:
        test = static.isel(trial=_tiers(static) == "test")
        oracle = metrics.oracle_correlation(test["responses"], test["frame_image_id"].values)
        fig = neuron_positions(static, oracle, label="oracle correlation")
        ax = fig.axes[0]
        (points,) = ax.collections
        assert len(points.get_array()) == static.sizes["neuron"] == 12
        np.testing.assert_allclose(points.get_array(), np.asarray(oracle))
        x, y, z = points._offsets3d
        np.testing.assert_allclose(x, static["cell_motor_coordinates"].values[:, 0])
        assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()) == ("x (µm)", "y (µm)", "z (µm)")
        assert _colorbars(fig) == ["oracle correlation"]

    def test_a_dataarray_is_matched_by_neuron_label(self, static: Any) -> None:
        values = static["neuron"].astype(float)
        fig = neuron_positions(static, values[::-1], label="unit id")
        np.testing.assert_allclose(fig.axes[0].collections[0].get_array(), values.values)

    def test_without_values_no_colour_bar_and_wrong_length_refused(self, static: Any) -> None:
        assert _colorbars(neuron_positions(static)) == []
        with pytest.raises(ValueError, match="values must hold one number per neuron"):
            neuron_positions(static, np.zeros(3))


class TestResponseStatistics:
    def test_mean_against_std_per_neuron(self, static_store: Any) -> None:
        stats = sd.open_statistics(static_store)
        fig = response_statistics(stats)
        scatter = fig.axes[0]
        np.testing.assert_allclose(
            scatter.collections[0].get_offsets(),
            np.c_[stats["responses"]["all"]["mean"], stats["responses"]["all"]["std"]],
        )
        assert (scatter.get_xlabel(), scatter.get_ylabel()) == ("mean (a.u.)", "std (a.u.)")
        counts = sum(p.get_height() for p in fig.axes[1].patches)
        assert counts == 12

    def test_2023_statistics_point_at_frame_statistics(self, dynamic_store: Any) -> None:
        with pytest.raises(ValueError, match="per-frame .*frame_statistics"):
            response_statistics(sd.open_statistics(dynamic_store))

    def test_bad_key_and_scalar_statistics(self, static_store: Any) -> None:
        stats = sd.open_statistics(static_store)
        with pytest.raises(ValueError, match="key 'video' is not in stats"):
            response_statistics(stats, key="video")
        with pytest.raises(ValueError, match="single value"):
            response_statistics(stats, key="images")
        with pytest.raises(TypeError, match="stats must be the dict"):
            response_statistics([1, 2])


# ----------------------------------------------------------------------------- 2023


class TestFrameStrip:
    def test_frames_spread_over_the_valid_length(self, dynamic: Any) -> None:
        trial = int(np.argmin(dynamic["valid_frames"].values))
        valid = int(dynamic["valid_frames"].values[trial])
        assert valid < dynamic.sizes["frame"]  # the synthetic data pad some trials
        fig = frame_strip(dynamic, trial, n_frames=4)
        shown = [ax for ax in fig.axes if ax.images]
        frames = np.linspace(0, valid - 1, 4).round().astype(int)
        assert len(shown) == 4
        for ax, frame in zip(shown, frames, strict=True):
            assert ax.get_title() == f"frame {frame}\n{frame / 30:.2f} s"
            np.testing.assert_array_equal(
                ax.images[0].get_array(), dynamic["videos"].values[trial, :, :, frame]
            )

    def test_bad_trial_and_2022_mouse(self, dynamic: Any, static: Any) -> None:
        with pytest.raises(ValueError, match="trial must be a trial index in 0..39"):
            frame_strip(dynamic, 40)
        with pytest.raises(ValueError, match="ds is a 2022"):
            frame_strip(static, 0)


class TestFrameTraces:
    def test_traces_and_padding(self, dynamic: Any) -> None:
        trial = int(np.argmin(dynamic["valid_frames"].values))
        valid = int(dynamic["valid_frames"].values[trial])
        units = dynamic["neuron"].values[[1, 5]].tolist()
        fig = frame_traces(dynamic, trial, neurons=units)
        panels = [ax for ax in fig.axes if ax.get_title(loc="left")]
        assert len(panels) == 6
        neurons = panels[0]
        assert [line.get_label() for line in neurons.lines] == [f"unit {u}" for u in units]
        _, y = neurons.lines[1].get_data()
        np.testing.assert_array_equal(y, dynamic["responses"].values[trial, 5])
        _, mean = panels[1].lines[0].get_data()
        np.testing.assert_allclose(
            mean[:valid], dynamic["responses"].values[trial, :, :valid].mean(0), rtol=1e-6
        )
        _, running = panels[3].lines[0].get_data()
        np.testing.assert_array_equal(running, dynamic["behavior"].values[trial, 1])
        assert panels[3].get_title(loc="left") == "running speed"
        for ax in panels:
            spans = [p for p in ax.patches if p.get_label() == "NaN padding (after valid_frames)"]
            assert len(spans) == 1
            assert spans[0].get_x() == valid
        assert panels[-1].get_xlabel() == "frame (30 Hz)"
        assert "NaN padding (after valid_frames)" in [
            t.get_text() for t in panels[1].get_legend().get_texts()
        ]

    def test_default_neurons_and_unknown_unit(self, dynamic: Any) -> None:
        fig = frame_traces(dynamic, 0)
        assert len(fig.axes[0].lines) == 4
        with pytest.raises(ValueError, match="neurons must be 1 to 10 unit ids"):
            frame_traces(dynamic, 0, neurons=[10**9])


class TestValidLengths:
    def test_every_trial_counted_once(self, dynamic: Any) -> None:
        fig = valid_lengths(dynamic)
        ax = fig.axes[0]
        tiers = _tiers(dynamic)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert f"train ({(tiers == 'train').sum()})" in labels
        assert "padded length (30)" in labels
        assert ax.get_xlabel() == "valid frames (30 Hz)"
        assert ax.get_ylabel() == "trials"
        # stacked bars: the top layer's tops count every trial of each bin
        heights: dict[float, float] = {}
        for patch in ax.patches:
            x = round(patch.get_x(), 6)
            heights[x] = max(heights.get(x, 0.0), patch.get_y() + patch.get_height())
        assert sum(heights.values()) == dynamic.sizes["trial"]


class TestFrameStatistics:
    def test_per_frame_means_and_nan_frames_shaded(self, dynamic_store: Any) -> None:
        stats = sd.open_statistics(dynamic_store)
        responses = stats["responses"]["all"]
        responses["mean"][:, -3:] = np.nan
        responses["std"][:, -3:] = np.nan
        fig = frame_statistics(stats)
        ax = fig.axes[0]
        _, mean = ax.lines[0].get_data()
        np.testing.assert_allclose(mean[:-3], responses["mean"].values[:, :-3].mean(0), rtol=1e-6)
        assert np.isnan(mean[-3:]).all()
        (span,) = [p for p in ax.patches if p.get_label().startswith("NaN")]
        assert span.get_x() == pytest.approx(30 - 3 - 0.5)
        assert ax.get_ylabel() == "response (a.u.)"
        titles = [a.get_title(loc="left") for a in fig.axes]
        assert titles == [
            "responses (averaged over 8 neurons)",
            "pupil dilation",
            "running speed",
            "pupil centre, horizontal",
            "pupil centre, vertical",
            "video intensity (mean over pixels)",
        ]
        _, running = fig.axes[2].lines[0].get_data()
        np.testing.assert_array_equal(running, stats["behavior"]["all"]["mean"].values[1])

    def test_2022_statistics_point_at_response_statistics(self, static_store: Any) -> None:
        with pytest.raises(ValueError, match="per-neuron .*response_statistics"):
            frame_statistics(sd.open_statistics(static_store))


class TestRepeatMatrix:
    def test_repeats_found_by_comparing_clips(self, dynamic: Any) -> None:
        fig = repeat_matrix(dynamic, tier="oracle")
        ax = fig.axes[0]
        matrix = np.asarray(ax.images[0].get_array())
        oracle = np.flatnonzero(_tiers(dynamic) == "oracle")
        groups = metrics.repeat_groups_from_videos(dynamic["videos"].isel(trial=oracle))
        n_clips = len(np.unique(groups))
        assert matrix.shape == (len(oracle), len(oracle))
        assert np.isfinite(matrix).sum() == sum(np.bincount(groups) ** 2)
        bars = fig.axes[1].patches
        assert len(bars) == n_clips
        assert sorted(b.get_height() for b in bars) == sorted(np.bincount(groups).tolist())
        assert "repeated clip (group number)" in _colorbars(fig)

    def test_default_leaves_out_train_and_unknown_tier(self, dynamic: Any) -> None:
        fig = repeat_matrix(dynamic)
        n = int((_tiers(dynamic) != "train").sum())
        assert fig.axes[0].images[0].get_array().shape == (n, n)
        with pytest.raises(ValueError, match="tier 'oracles' is not a tier"):
            repeat_matrix(dynamic, tier="oracles")


# ----------------------------------------------------------------------------- imports


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_importing_does_not_import_matplotlib() -> None:
    done = _python(
        "import sys, sensorium_data, sensorium_data.plotting\n"
        "assert 'matplotlib' not in sys.modules, 'imported on import'\n"
        "sensorium_data.plotting.response_raster\n"
        "assert 'matplotlib' in sys.modules\n"
    )
    assert done.returncode == 0, done.stderr


def test_without_matplotlib_a_figure_says_what_to_install() -> None:
    done = _python(
        "import sys\n"
        "sys.modules['matplotlib'] = None\n"
        "import sensorium_data.plotting as p\n"
        "try:\n"
        "    p.frame_traces\n"
        "except ImportError as e:\n"
        "    print(e)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    assert done.returncode == 0, done.stderr
    assert "pip install" in done.stdout
