"""The training figures: learning curves from run logs, a video model's predicted traces."""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import pytest
import xarray as xr

from sensorium_data.plotting import learning_curve, predicted_traces


def _history() -> list[dict]:
    """Six epochs as ``sensorium_models.train`` logs them: best at 3, decays after 4 and 5."""
    scores = [0.05, 0.12, 0.20, 0.18, 0.19, 0.17]
    actions = ["improved", "improved", "improved", "decay", "decay", "stop"]
    lrs = [0.009, 0.009, 0.009, 0.009, 0.0027, 0.00081]
    entries = []
    for k, (score, action, lr) in enumerate(zip(scores, actions, lrs, strict=True), start=1):
        best = max(scores[:k])
        entries.append(
            {
                "epoch": k,
                "loss": 100.0 / k,
                "score": score,
                "tier": "validation",
                "lr": lr,
                "seconds": 1.0,
                "action": action,
                "best_score": best,
                "best_epoch": scores.index(best) + 1,
            }
        )
    return entries


def _write_log(folder: pathlib.Path, entries: list[dict]) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    return folder


def _lines(ax) -> list:
    """Plotted data lines (not the vertical decay markers)."""
    return [line for line in ax.get_lines() if line.get_gid() != "decay"]


class TestLearningCurve:
    def test_panels_show_loss_score_and_lr(self) -> None:
        entries = _history()
        fig = learning_curve(entries, title="my run")
        loss_ax, score_ax, lr_ax = fig.axes
        epochs = [e["epoch"] for e in entries]
        (loss,) = _lines(loss_ax)
        np.testing.assert_array_equal(loss.get_xdata(), epochs)
        np.testing.assert_allclose(loss.get_ydata(), [e["loss"] for e in entries])
        score = _lines(score_ax)[0]
        np.testing.assert_allclose(score.get_ydata(), [e["score"] for e in entries])
        (lr,) = _lines(lr_ax)
        np.testing.assert_allclose(lr.get_ydata(), [e["lr"] for e in entries])
        assert lr_ax.get_yscale() == "log"
        assert "validation single-trial" in score_ax.get_ylabel()
        assert "correlation" in score_ax.get_ylabel()
        assert "loss" in loss_ax.get_ylabel()
        assert "learning rate" in lr_ax.get_ylabel()
        assert lr_ax.get_xlabel() == "epoch"
        assert fig.get_suptitle() == "my run"

    def test_best_epoch_is_marked(self) -> None:
        fig = learning_curve(_history())
        score_ax = fig.axes[1]
        (best,) = [line for line in score_ax.get_lines() if line.get_gid() == "best"]
        np.testing.assert_array_equal(best.get_xdata(), [3])
        np.testing.assert_allclose(best.get_ydata(), [0.20])
        labels = [t.get_text() for t in score_ax.get_legend().get_texts()]
        assert any("best: epoch 3" in label for label in labels)

    def test_decays_are_marked(self) -> None:
        fig = learning_curve(_history())
        for ax in (fig.axes[1], fig.axes[2]):
            decays = [line for line in ax.get_lines() if line.get_gid() == "decay"]
            assert [line.get_xdata()[0] for line in decays] == [4, 5]

    def test_no_decay_no_marker(self) -> None:
        entries = [dict(e, action="improved") for e in _history()[:3]]
        fig = learning_curve(entries)
        assert not [line for line in fig.axes[1].get_lines() if line.get_gid() == "decay"]

    def test_reads_a_run_folder_and_a_log_file(self, tmp_path: pathlib.Path) -> None:
        run = _write_log(tmp_path / "sota", _history())
        for source in (run, run / "log.jsonl", str(run)):
            fig = learning_curve(source)
            assert fig.get_suptitle() == "Learning curve: sota"
            assert len(_lines(fig.axes[0])[0].get_xdata()) == 6

    def test_oracle_tier_names_the_axis(self) -> None:
        entries = [dict(e, tier="oracle") for e in _history()]
        assert "oracle single-trial" in learning_curve(entries).axes[1].get_ylabel()

    def test_nan_scores_leave_no_best_marker(self) -> None:
        entries = [dict(e, score=math.nan, best_score=-math.inf, best_epoch=0) for e in _history()]
        fig = learning_curve(entries)
        assert not [line for line in fig.axes[1].get_lines() if line.get_gid() == "best"]

    def test_missing_log_names_the_path(self, tmp_path: pathlib.Path) -> None:
        with pytest.raises(FileNotFoundError, match=r"log: no training log at .*nothing"):
            learning_curve(tmp_path / "nothing")

    def test_empty_log_names_the_path(self, tmp_path: pathlib.Path) -> None:
        run = tmp_path / "run"
        run.mkdir()
        (run / "log.jsonl").write_text("")
        with pytest.raises(ValueError, match=r"log: the training log .*log.jsonl is empty"):
            learning_curve(run)

    def test_bad_json_line(self, tmp_path: pathlib.Path) -> None:
        (tmp_path / "log.jsonl").write_text('{"epoch": 1}\n{oops\n')
        with pytest.raises(ValueError, match="log: line 2 of .* is not JSON"):
            learning_curve(tmp_path)

    @pytest.mark.parametrize(
        ("log", "error", "message"),
        [
            ([], ValueError, "log: the list of epochs is empty"),
            (42, TypeError, "log: expected a run folder"),
            ([1, 2], TypeError, "log: expected a run folder"),
            ([{"epoch": 1}], ValueError, r"log: epochs lack the keys \['loss', 'score'\]"),
        ],
    )
    def test_bad_input(self, log, error, message) -> None:
        with pytest.raises(error, match=message):
            learning_curve(log)


def _traces(n_trials: int = 3, n_neurons: int = 5, n_frames: int = 40) -> tuple:
    rng = np.random.default_rng(0)
    responses = rng.random((n_trials, n_neurons, n_frames)).astype(np.float32)
    predictions = (responses + 0.5 * rng.random(responses.shape)).astype(np.float32)
    responses[1, :, 30:] = np.nan  # trial 1 is 30 frames long
    predictions[1, :, 30:] = np.nan
    return responses, predictions


class TestPredictedTraces:
    def test_one_panel_per_neuron_with_both_traces(self) -> None:
        responses, predictions = _traces()
        fig = predicted_traces(responses, predictions, trial=0, neurons=[1, 3], skip=10)
        panels = [ax for ax in fig.axes if ax.get_ylabel() == "recorded (a.u.)"]
        twins = [ax for ax in fig.axes if ax.get_ylabel() == "predicted (a.u.)"]
        assert len(panels) == len(twins) == 2
        for ax, twin, neuron in zip(panels, twins, [1, 3], strict=True):
            (recorded,) = ax.get_lines()
            (predicted,) = twin.get_lines()
            np.testing.assert_array_equal(recorded.get_xdata(), np.arange(40))
            np.testing.assert_array_equal(recorded.get_ydata(), responses[0, neuron])
            np.testing.assert_array_equal(predicted.get_ydata(), predictions[0, neuron])
            r = np.corrcoef(responses[0, neuron, 10:], predictions[0, neuron, 10:])[0, 1]
            assert ax.get_title() == f"neuron {neuron}: r = {r:.2f} over frames 10..39"
        assert panels[-1].get_xlabel() == "frame (30 Hz)"
        assert "trial 0" in fig.get_suptitle()

    def test_unscored_frames_are_shaded(self) -> None:
        responses, predictions = _traces()
        fig = predicted_traces(responses, predictions, n=2, skip=12)
        panels = [ax for ax in fig.axes if ax.get_ylabel() == "recorded (a.u.)"]
        assert len(panels) == 2
        for ax in panels:
            (span,) = ax.patches  # axvspan: a Rectangle in data x, axes y
            x0, x1 = span.get_bbox().x0, span.get_bbox().x1
            assert (x0, x1) == (0, 12)
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert labels == ["not scored (frames < 12)", "recorded", "predicted"]

    def test_valid_length_cuts_the_nan_padding(self) -> None:
        responses, predictions = _traces()
        fig = predicted_traces(responses, predictions, trial=1, n=1, skip=5)
        (line,) = fig.axes[0].get_lines()
        assert len(line.get_xdata()) == 30
        assert not np.isnan(line.get_ydata()).any()
        assert fig.axes[0].get_title().endswith("over frames 5..29")

    def test_explicit_valid_frames(self) -> None:
        responses, predictions = _traces()
        fig = predicted_traces(responses, predictions, n=1, skip=5, valid_frames=[20, 30, 40])
        assert len(fig.axes[0].get_lines()[0].get_xdata()) == 20

    def test_dataarrays_use_neuron_ids_and_valid_frames(self) -> None:
        responses, predictions = _traces()
        da = xr.DataArray(
            responses.transpose(0, 2, 1),  # any dimension order
            dims=("trial", "frame", "neuron"),
            coords={"neuron": [16, 31, 36, 62, 70], "valid_frames": ("trial", [40, 25, 40])},
        )
        fig = predicted_traces(da, predictions, trial=1, neurons=[2], skip=5)
        (line,) = fig.axes[0].get_lines()
        np.testing.assert_array_equal(line.get_ydata(), responses[1, 2, :25])
        assert fig.axes[0].get_title().startswith("neuron 36: ")

    @pytest.mark.parametrize(
        ("kwargs", "error", "message"),
        [
            ({"trial": 3}, ValueError, r"trial: 3 is not within 0..2"),
            ({"neurons": [7]}, ValueError, r"neurons: indices \[7\] not within 0..4"),
            ({"n": 0}, ValueError, "n: expected at least one neuron"),
            ({"skip": -1}, ValueError, "skip: expected a number of frames >= 0"),
            ({"skip": 40}, ValueError, "skip: 40 frames leave none"),
            ({"valid_frames": 99}, ValueError, r"valid_frames: 99 is not within 1..40"),
        ],
    )
    def test_bad_options(self, kwargs, error, message) -> None:
        responses, predictions = _traces()
        with pytest.raises(error, match=message):
            predicted_traces(responses, predictions, **kwargs)

    def test_shapes_must_match(self) -> None:
        responses, predictions = _traces()
        with pytest.raises(ValueError, match="predictions: shape .* differs"):
            predicted_traces(responses, predictions[:, :3])

    def test_2022_predictions_are_refused(self) -> None:
        with pytest.raises(ValueError, match="responses: expected a .trial, neuron, frame."):
            predicted_traces(np.zeros((4, 3)), np.zeros((4, 3)))

    def test_non_numeric_input(self) -> None:
        with pytest.raises(TypeError, match="responses: expected a numeric"):
            predicted_traces([[["a"]]], np.zeros((1, 1, 1)))
