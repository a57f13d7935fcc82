"""Per-neuron evaluation, readout positions, the model figures and ``evaluate --plots``.

One tiny static store per module (two mice, the second a competition mouse whose test
responses are withheld) and a tiny untrained model; the CLI test trains a tiny run for 2 epochs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from test_training import TINY_2D

import sensorium_data as sd
import sensorium_models
from sensorium_data import metrics, plotting
from sensorium_models import build_model, evaluate, predict, readout_positions
from sensorium_models.cli import main
from sensorium_models.errors import ModelInputError, UnknownMouseError
from sensorium_models.training import TrainConfig, mouse_infos, train

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sd.example_store(tmp_path_factory.mktemp("store"), n_mice=2, n_trials=120, n_neurons=12)


@pytest.fixture(scope="module")
def model(store: Path):
    torch.manual_seed(0)
    return build_model("sensorium-sota", mouse_infos(store), overrides=TINY_2D).eval()


def _with_test(store: Path) -> str:
    """The mouse whose test responses are not withheld."""
    for mouse in sd.list_mice(store):
        ds = sd.open_mouse(store, mouse)
        if np.any(ds.responses.isel(trial=np.flatnonzero(ds.tiers.values == "test")).values):
            return mouse
    raise AssertionError("no mouse with test responses")


@pytest.fixture(scope="module")
def report(model, store: Path) -> dict:
    return evaluate(model, store, per_neuron=True)


# ----------------------------------------------------------------------------- per-neuron API


class TestPerNeuron:
    def test_floats_unchanged(self, model, store: Path, report: dict) -> None:
        plain = evaluate(model, store)
        assert all("per_neuron" not in e for e in plain["tiers"].values())
        json.dumps(plain)  # still JSON-ready
        assert plain["skipped"] == report["skipped"]
        for tier, entry in plain["tiers"].items():
            assert report["tiers"][tier]["mice"] == entry["mice"]  # exactly the same floats
            assert report["tiers"][tier]["mean"] == entry["mean"]

    def test_labelled_by_neuron_and_reduce_to_the_floats(self, report: dict, store: Path) -> None:
        for tier, entry in report["tiers"].items():
            assert set(entry["per_neuron"]) == set(entry["mice"])
            for mouse, values in entry["per_neuron"].items():
                ids = sd.open_mouse(store, mouse).indexes["neuron"]
                assert set(values) == set(entry["mice"][mouse]), tier
                for name, da in values.items():
                    assert isinstance(da, xr.DataArray) and da.dims == ("neuron",)
                    assert da.indexes["neuron"].equals(ids)
                    np.testing.assert_array_equal(da["unit_ids"].values, ids.values)
                    mean = np.nanmean(da.values) if name == "feve" else da.values.mean()
                    assert mean == pytest.approx(entry["mice"][mouse][name], abs=1e-12)

    def test_matches_the_metrics(self, model, store: Path, report: dict) -> None:
        mouse = _with_test(store)
        ds = sd.open_mouse(store, mouse)
        test = np.flatnonzero(ds.tiers.values == "test")
        pred = predict(model, store, "test", mouse)
        raw = ds.responses.isel(trial=test).values  # correlations ignore the response scale
        got = report["tiers"]["test"]["per_neuron"][mouse]
        expected = metrics.single_trial_correlation(raw, pred, per_neuron=True)
        np.testing.assert_allclose(got["single_trial_correlation"].values, expected, atol=1e-6)
        ids = ds.frame_image_id.values[test]
        expected = metrics.correlation_to_average(raw, pred, ids, per_neuron=True)
        np.testing.assert_allclose(got["correlation_to_average"].values, expected, atol=1e-6)
        assert "feve" in got and got["feve"].shape == (12,)

    def test_withheld_mouse_has_no_test_values(self, report: dict, store: Path) -> None:
        withheld = [m for m in sd.list_mice(store) if m != _with_test(store)]
        assert set(report["tiers"]["test"]["per_neuron"]).isdisjoint(withheld)


def test_per_neuron_2023(tmp_path: Path) -> None:
    """Video models: single-trial correlation and correlation to average per neuron."""
    store = sd.example_store(
        tmp_path, kind="dynamic", n_mice=1, n_trials=40, n_neurons=8, n_frames=70, seed=5
    )
    torch.manual_seed(0)
    infos = mouse_infos(store)
    video = build_model("video-factorised-3d", infos, overrides={"hidden_channels": [4, 4, 4]})
    report = evaluate(video, store, ["oracle"], per_neuron=True)
    (mouse,) = infos
    values = report["tiers"]["oracle"]["per_neuron"][mouse]
    assert set(values) == {"single_trial_correlation", "correlation_to_average"}
    for name, da in values.items():
        assert da.dims == ("neuron",) and da.sizes["neuron"] == 8
        assert float(da.mean()) == report["tiers"]["oracle"]["mice"][mouse][name]


class TestReadoutPositions:
    def test_positions_with_store_ids(self, model, store: Path) -> None:
        mouse = next(iter(model.mice))
        pos = readout_positions(model, mouse, store=store)
        assert pos.dims == ("neuron", "axis") and pos.shape == (12, 2)
        assert pos["axis"].values.tolist() == ["x", "y"]
        assert pos.indexes["neuron"].equals(sd.open_mouse(store, mouse).indexes["neuron"])
        mu = model.readout(mouse).mu.detach().clamp(-1, 1).numpy()
        np.testing.assert_allclose(pos.values, mu)
        assert (np.abs(pos.values) <= 1).all()

    def test_without_store_counts_neurons(self, model) -> None:
        mouse = next(iter(model.mice))
        pos = readout_positions(model, mouse)
        assert pos["neuron"].values.tolist() == list(range(12))

    def test_lazy_public_name(self) -> None:
        assert "readout_positions" in sensorium_models.__all__
        assert sensorium_models.readout_positions is readout_positions

    def test_errors(self, model, store: Path) -> None:
        with pytest.raises(UnknownMouseError, match="no readout for mouse 'nobody'"):
            readout_positions(model, "nobody")
        mouse = next(iter(model.mice))
        info = sensorium_models.MouseInfo(n_neurons=5, coordinates=None, kind="static")
        other = build_model("sensorium-sota", {mouse: info}, overrides=TINY_2D)
        with pytest.raises(ModelInputError, match=f"store: mouse {mouse} holds 12 neurons"):
            readout_positions(other, mouse, store=store)
        other.readouts[mouse] = torch.nn.Linear(2, 5)
        with pytest.raises(ModelInputError, match="has no positions"):
            readout_positions(other, mouse)


# ----------------------------------------------------------------------------- figures


def _boxes(ax) -> int:
    from matplotlib.patches import PathPatch

    return sum(isinstance(p, PathPatch) for p in ax.patches)


class TestMetricDistributions:
    def test_one_box_per_mouse_and_panel_per_metric(self) -> None:
        rng = np.random.default_rng(0)
        data = {
            "a": {"single_trial_correlation": rng.normal(0.3, 0.1, 50), "feve": rng.random(50)},
            "b": {"single_trial_correlation": rng.normal(0.2, 0.1, 30), "feve": rng.random(30)},
            "c": {"single_trial_correlation": rng.normal(0.1, 0.1, 40), "feve": rng.random(40)},
        }
        data["b"]["feve"][:10] = np.nan  # below the FEV threshold: left out
        fig = plotting.metric_distributions(data, title="test")
        axes = fig.axes
        assert len(axes) == 2
        assert [ax.get_ylabel() for ax in axes] == ["single-trial correlation", "FEVE"]
        for ax, metric in zip(axes, ["single_trial_correlation", "feve"], strict=True):
            assert _boxes(ax) == 3
            labels = [t.get_text() for t in ax.get_xticklabels()]
            assert [lab.split("\n")[0] for lab in labels] == ["a", "b", "c"]
            means = [line.get_ydata()[0] for line in ax.lines if line.get_marker() == "D"]
            expected = [np.nanmean(data[m][metric]) for m in "abc"]
            np.testing.assert_allclose(means, expected)
        assert "(n=20)" in axes[1].get_xticklabels()[1].get_text()
        assert fig.get_suptitle() == "test"

    def test_shared_scale_and_empty_metric(self) -> None:
        data = {
            "a": {"single_trial_correlation": [0.1, 0.2, 0.3], "feve": [np.nan, np.nan]},
            "b": {"single_trial_correlation": [0.5, 0.6], "feve": [np.nan]},
        }
        fig = plotting.metric_distributions(data, sharey=True)
        first, second = fig.axes
        assert first.get_shared_y_axes().joined(first, second)
        assert _boxes(second) == 0 and second.texts[0].get_text() == "no values"

    def test_feve_axis_floored_with_a_count_of_what_is_below(self) -> None:
        data = {"a": {"feve": [0.5, 0.2, -6.4, -0.3]}, "b": {"feve": [0.4, -2.0, 0.1]}}
        (ax,) = plotting.metric_distributions(data).axes
        bottom, top = ax.get_ylim()
        assert bottom == pytest.approx(-1.05) and top >= 1.0
        (note,) = [t for t in ax.texts if t.get_gid() == "feve-floor"]
        assert note.get_text() == "2 neurons below -1 not shown"
        (ax,) = plotting.metric_distributions({"a": {"feve": [0.5, -0.4]}}).axes
        assert ax.get_ylim()[0] > -1.0 and not ax.texts  # nothing below: matplotlib's range

    def test_from_an_evaluate_tier(self, report: dict) -> None:
        entry = report["tiers"]["validation"]
        fig = plotting.metric_distributions(entry, metrics=["correlation_to_average"])
        (ax,) = fig.axes
        assert _boxes(ax) == len(entry["per_neuron"]) == 2
        assert ax.get_ylabel() == "correlation to average"

    def test_bad_input(self, model, store: Path) -> None:
        with pytest.raises(TypeError, match="per_neuron"):
            plotting.metric_distributions({"a": 0.3})
        with pytest.raises(TypeError, match="per_neuron"):
            plotting.metric_distributions([])
        with pytest.raises(ValueError, match="metrics: .*'oops'"):
            plotting.metric_distributions({"a": {"feve": [0.1, 0.2]}}, metrics=["oops"])


class TestReadoutPositionsFigure:
    def test_positions_and_cortex(self, model, store: Path) -> None:
        mouse = next(iter(model.mice))
        pos = readout_positions(model, mouse, store=store)
        coords = sd.open_mouse(store, mouse)["cell_motor_coordinates"]
        shuffled = coords.isel(neuron=np.arange(12)[::-1])  # matched by neuron id
        fig = plotting.readout_positions(pos, shuffled, mouse=mouse)
        image, cx, cy, *bars = fig.axes  # the colour bars are axes too, made last
        np.testing.assert_allclose(image.collections[0].get_offsets(), pos.values)
        for ax, k in ((cx, 0), (cy, 1)):
            (dots,) = ax.collections
            assert len(dots.get_offsets()) == 12
            np.testing.assert_allclose(dots.get_offsets(), coords.values[:, :2])
            np.testing.assert_allclose(dots.get_array(), pos.values[:, k])
            assert ax.get_xlabel() == "cortical x (µm)"
        labels = [bar.get_ylabel() for bar in bars]
        assert labels[0].startswith("readout x") and labels[1].startswith("readout y")
        assert image.get_ylim()[0] > image.get_ylim()[1]  # y = -1 (the top) is up
        assert mouse in fig.get_suptitle()

    def test_numpy_and_mismatch(self) -> None:
        pos = np.array([[0.1, -0.2], [0.5, 0.3], [-0.4, 0.0]])
        xyz = np.array([[0.0, 0.0, 200.0], [100.0, 0.0, 210.0], [0.0, 100.0, 220.0]])
        fig = plotting.readout_positions(pos, xyz)
        assert len(fig.axes[0].collections[0].get_offsets()) == 3
        with pytest.raises(ValueError, match="coordinates hold 2 neurons but positions 3"):
            plotting.readout_positions(pos, xyz[:2])
        with pytest.raises(ValueError, match="positions must be"):
            plotting.readout_positions(pos[:, :1], xyz)


class TestPredictedVsRecorded:
    @staticmethod
    def _data(n_trials: int = 30, n_neurons: int = 6) -> tuple[xr.DataArray, np.ndarray]:
        rng = np.random.default_rng(1)
        resp = rng.gamma(2.0, 1.0, (n_trials, n_neurons))
        pred = resp + rng.normal(0, np.arange(1, n_neurons + 1), (n_trials, n_neurons))
        da = xr.DataArray(
            resp, dims=("trial", "neuron"), coords={"neuron": 100 + np.arange(n_neurons)}
        )
        return da, pred

    def test_points_titles_and_data(self) -> None:
        resp, pred = self._data()
        fig = plotting.predicted_vs_recorded(resp, pred, n=3)
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert len(axes) == 3
        shown = []
        for ax in axes:
            (points,) = ax.collections
            offsets = points.get_offsets()
            assert len(offsets) == 30
            neuron = int(ax.get_title().split("\n")[0].split()[1])
            col = neuron - 100
            shown.append(col)
            np.testing.assert_allclose(
                offsets, np.column_stack([resp.values[:, col], pred[:, col]])
            )
            r = np.corrcoef(resp.values[:, col], pred[:, col])[0, 1]
            assert f"r = {r:.2f} (single trials)" in ax.get_title()
            assert ax.get_xlabel() == "recorded response (a.u.)"
        r = [np.corrcoef(resp.values[:, k], pred[:, k])[0, 1] for k in range(6)]
        order = np.argsort(r)[::-1]
        assert shown == [order[0], order[2], order[5]]  # best, middle, worst

    def test_given_neurons_and_repeat_means(self) -> None:
        resp, pred = self._data()
        ids = np.repeat(np.arange(10), 3)
        fig = plotting.predicted_vs_recorded(resp, pred, neurons=[104], image_ids=ids)
        (ax,) = [ax for ax in fig.axes if ax.get_visible()]
        trials, means = ax.collections
        assert len(trials.get_offsets()) == 30 and len(means.get_offsets()) == 10
        np.testing.assert_allclose(
            means.get_offsets()[:, 0], resp.values[:, 4].reshape(10, 3).mean(1)
        )
        assert "averaged over repeats" in ax.get_title() and "neuron 104" in ax.get_title()

    def test_bad_input(self) -> None:
        resp, pred = self._data()
        with pytest.raises(ValueError, match="neurons: 7 is not a neuron id"):
            plotting.predicted_vs_recorded(resp, pred, neurons=[7])
        with pytest.raises(ValueError, match="predictions must match"):
            plotting.predicted_vs_recorded(resp, pred[:, :2])
        with pytest.raises(ValueError, match="responses must be 2-D"):
            plotting.predicted_vs_recorded(np.zeros((3, 2, 4)), np.zeros((3, 2, 4)))
        with pytest.raises(ValueError, match="withheld"):
            plotting.predicted_vs_recorded(np.zeros((5, 2)), np.ones((5, 2)))
        with pytest.raises(ValueError, match="image_ids must hold one id per trial"):
            plotting.predicted_vs_recorded(resp, pred, image_ids=[1, 2])


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def run(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "sota"
    config = TrainConfig(max_epochs=2, batch_size=32, device="cpu", seed=3)
    train(store, "sensorium-sota", out, config=config, overrides=TINY_2D, progress=False)
    return out


class TestEvaluatePlots:
    @pytest.mark.slow
    def test_writes_pngs(self, run: Path, store: Path, tmp_path: Path, capsys) -> None:
        out = tmp_path / "plots"
        args = ["evaluate", "--checkpoint", str(run), "--store", str(store), "--device", "cpu"]
        report = tmp_path / "report.json"
        assert main([*args, "--plots", str(out), "--json", str(report)]) == 0
        mice = list(sd.list_mice(store))
        expected = {
            "metrics_validation.png",
            "metrics_test.png",
            *(f"readout_positions_{m}.png" for m in mice),
            "learning_curve.png",
        }
        assert {p.name for p in out.iterdir()} == expected
        for path in out.iterdir():
            assert path.read_bytes()[:8] == PNG
        printed = capsys.readouterr().out
        assert all(f"wrote {out / name}" in printed for name in expected)
        written = json.loads(report.read_text())
        assert "per_neuron" not in written["tiers"]["test"]

    def test_missing_matplotlib(self, run: Path, store: Path, tmp_path: Path, capsys) -> None:
        args = ["evaluate", "--checkpoint", str(run), "--store", str(store), "--device", "cpu"]
        saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "matplotlib"}
        try:
            for name in saved:
                sys.modules[name] = None  # type: ignore[assignment]
            assert main([*args, "--plots", str(tmp_path / "p")]) == 1
        finally:
            sys.modules.update(saved)
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "--plots" in err and "pip install matplotlib" in err
        assert not (tmp_path / "p").exists()


def test_evaluate_an_unknown_tier_exits_1_naming_the_flag(run: Path, store: Path, capsys) -> None:
    args = ["evaluate", "--checkpoint", str(run), "--store", str(store), "--device", "cpu"]
    assert main([*args, "--tiers", "tset"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sensorium-models evaluate: error: --tiers: no mouse has a tier 'tset'")
    assert "did you mean 'test'?" in err and "\n" not in err
