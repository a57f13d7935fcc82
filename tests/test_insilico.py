"""In-silico experiments (``sensorium_models.insilico``) on models whose answers are known.

A *planted* model is a real ``sensorium-ln`` encoder (one linear layer, a Gaussian readout)
whose weights are set by hand: its channels are even Gabor filters of known orientations, and
each neuron reads one channel at a known position of the input. Its receptive fields, centres,
orientations and most exciting inputs are therefore known exactly, and the experiments must
find them. The synthetic-data check with a trained model is in ``test_insilico_trained.py``.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np
import pytest
import torch

import sensorium_data as sd
from sensorium_models import insilico
from sensorium_models.configs import MouseInfo, build_model
from sensorium_models.encoders import FiringRateEncoder

pytestmark = pytest.mark.usefixtures("one_thread")

H, W, K = 36, 64, 9
ORIENTATIONS = np.arange(4) * np.pi / 4  # the planted channels
PERIOD = 6.0
# (row, column) of each neuron's field on the input, and its channel
CENTERS = np.array([[12.0, 20.0], [20.0, 40.0], [16.0, 30.0], [24.0, 14.0], [10.0, 50.0]])
CHANNELS = np.array([0, 1, 2, 3, 1])


def gabor(theta: float) -> np.ndarray:
    r = np.arange(K) - K // 2
    y, x = r[:, None].astype(float), r[None, :].astype(float)
    envelope = np.exp(-(x**2 + y**2) / (2 * 2.0**2))
    k = envelope * np.cos(2 * np.pi * (x * np.cos(theta) + y * np.sin(theta)) / PERIOD)
    k -= envelope * k.sum() / envelope.sum()
    return k / np.sqrt((k**2).sum())


def planted_model(input_channels: int = 1, mouse: str = "m") -> FiringRateEncoder:
    """The planted LN model (eval mode): neuron ``i`` is channel ``CHANNELS[i]`` at ``CENTERS[i]``."""
    mice = {mouse: MouseInfo(n_neurons=len(CENTERS), coordinates=None, kind="static")}
    model = build_model(
        "sensorium-ln",
        mice,
        input_channels=input_channels,
        overrides={"layers": 1, "hidden_channels": len(ORIENTATIONS)},
    )
    assert isinstance(model, FiringRateEncoder)
    layer = model.core.features.layer0
    readout = model.readout(mouse)
    with torch.no_grad():
        layer.conv.weight.zero_()
        for c, theta in enumerate(ORIENTATIONS):
            layer.conv.weight[c, 0] = torch.as_tensor(gabor(theta), dtype=torch.float32)
        layer.norm.running_mean.zero_()
        layer.norm.running_var.fill_(1.0)
        layer.norm.weight.fill_(1.0)
        layer.norm.bias.zero_()
        # valid 9x9 convolution: map pixel (i, j) is centred on input pixel (i + 4, j + 4)
        rows, cols = H - K + 1, W - K + 1
        x = 2 * (CENTERS[:, 1] - K // 2) / (cols - 1) - 1
        y = 2 * (CENTERS[:, 0] - K // 2) / (rows - 1) - 1
        readout._mu.copy_(torch.as_tensor(np.stack([x, y], axis=1), dtype=torch.float32))
        readout.features.zero_()
        readout.features[torch.as_tensor(CHANNELS), torch.arange(len(CENTERS))] = 1.0
        readout.bias.zero_()
    return model.eval()


@pytest.fixture(scope="module")
def model() -> FiringRateEncoder:
    return planted_model()


@pytest.fixture(scope="module")
def space(model: FiringRateEncoder) -> insilico.InputSpace:
    return insilico.InputSpace.default(model)


class TestReceptiveFields:
    def test_fields_are_the_planted_filters_at_their_centres(self, model, space) -> None:
        fields = insilico.gradient_receptive_fields(model, "m", space)
        assert fields.shape == (len(CENTERS), H, W)
        for i, (r, c) in enumerate(CENTERS.astype(int)):
            window = fields[i, r - 4 : r + 5, c - 4 : c + 5]
            planted = gabor(ORIENTATIONS[CHANNELS[i]])
            # ELU'(0) = 1 at the mean stimulus (drive 0): the field is the filter itself
            np.testing.assert_allclose(window, planted, atol=1e-5)
            outside = fields[i].copy()
            outside[r - 4 : r + 5, c - 4 : c + 5] = 0
            assert np.abs(outside).max() < 1e-6

    def test_batches_and_neuron_selection_agree(self, model, space) -> None:
        every = insilico.gradient_receptive_fields(model, "m", space, batch_size=2)
        some = insilico.gradient_receptive_fields(model, "m", space, neurons=[3, 1])
        np.testing.assert_allclose(some, every[[3, 1]], atol=1e-7)

    def test_centres_and_sizes(self, model, space) -> None:
        centers, sizes = insilico.receptive_field_centers(
            insilico.gradient_receptive_fields(model, "m", space)
        )
        np.testing.assert_allclose(centers, CENTERS, atol=1e-6)
        assert np.all(sizes[:, 0] >= sizes[:, 1]) and np.all(sizes[:, 1] > 0.5)

    def test_centre_of_a_gaussian_blob(self) -> None:
        yy, xx = np.mgrid[0:H, 0:W]
        blob = np.exp(-(((yy - 10.3) / 2.0) ** 2 + ((xx - 41.7) / 4.0) ** 2) / 2)
        centers, sizes = insilico.receptive_field_centers(np.sqrt(blob)[None])
        np.testing.assert_allclose(centers[0], [10.3, 41.7], atol=1e-3)
        # the energy of a field sqrt(g) is g: its standard deviations
        np.testing.assert_allclose(sizes[0], [4.0, 2.0], atol=1e-2)

    def test_a_field_without_energy_has_no_centre(self) -> None:
        centers, sizes = insilico.receptive_field_centers(np.zeros((1, H, W)))
        assert np.isnan(centers).all() and np.isnan(sizes).all()

    def test_bad_neurons(self, model, space) -> None:
        with pytest.raises(ValueError, match=r"neurons: \[5\] are not in 0..4"):
            insilico.gradient_receptive_fields(model, "m", space, neurons=[0, 5])
        with pytest.raises(ValueError, match="at least one neuron"):
            insilico.gradient_receptive_fields(model, "m", space, neurons=[])


class TestTuning:
    def test_gratings_orientation_convention(self, space) -> None:
        g = insilico.gratings(space, np.array([0.0, np.pi / 2]), np.array([8.0]), np.array([0.0]))
        assert g.shape == (2, 1, 1, H, W)
        vertical, horizontal = g[0, 0, 0], g[1, 0, 0]
        assert torch.allclose(vertical, vertical[:1].expand(H, W))  # varies along x only
        assert torch.allclose(horizontal, horizontal[:, :1].expand(H, W))
        np.testing.assert_allclose(float(vertical.square().mean()), 1.0, atol=0.02)

    def test_preferred_orientation_and_period(self, model, space) -> None:
        tuning = insilico.grating_tuning(model, "m", space, periods=(3.0, 6.0, 12.0))
        assert tuning["responses"].dims == ("neuron", "orientation", "period", "phase")
        found = tuning["preferred_orientation"].values
        true = ORIENTATIONS[CHANNELS]
        error = np.abs((found - true + np.pi / 2) % np.pi - np.pi / 2)
        assert np.degrees(error).max() < 3.0
        np.testing.assert_array_equal(tuning["preferred_period"].values, 6.0)
        assert (tuning["orientation_selectivity"].values > 0).all()

    def test_a_flat_curve_prefers_nothing(self) -> None:
        import xarray as xr

        flat = xr.Dataset(
            {"responses": (("neuron", "orientation"), np.ones((1, 8)))},
            coords={"neuron": [0], "orientation": np.arange(8) * np.pi / 8},
        )
        assert np.isnan(insilico.preferred(flat, "orientation", np.pi)["preferred_orientation"])

    def test_preferred_is_a_vector_sum(self) -> None:
        import xarray as xr

        theta = np.arange(8) * np.pi / 8
        target = np.radians(100.0)  # between two grid angles
        curve = 1.0 + np.cos(2 * (theta - target))
        tuning = xr.Dataset(
            {"responses": (("neuron", "orientation"), curve[None])},
            coords={"neuron": [0], "orientation": theta},
        )
        out = insilico.preferred(tuning, "orientation", np.pi)
        assert np.degrees(out["preferred_orientation"].values[0]) == pytest.approx(100.0)
        assert 0 < out["orientation_selectivity"].values[0] < 1


class TestMostExcitingInputs:
    def test_a_linear_neuron_is_excited_most_by_its_filter(self, model, space) -> None:
        natural = torch.as_tensor(
            np.random.default_rng(0).normal(size=(40, H, W)), dtype=torch.float32
        )
        # no jitter and no blur: the ascent must reach the matched filter under the norm
        result = insilico.most_exciting_inputs(
            model,
            "m",
            space,
            [0, 1],
            seeds=(0, 1),
            steps=60,
            natural=natural,
            jitter=0,
            sigma=(0.0, 0.0),
        )
        assert result.inputs.shape == (2, 2, H, W)
        flat = result.inputs.reshape(4, -1)
        np.testing.assert_allclose(np.linalg.norm(flat, axis=1), result.norm, rtol=1e-4)
        np.testing.assert_allclose(flat.mean(axis=1), 0.0, atol=1e-4)
        assert result.norm == pytest.approx(
            float(
                (natural.flatten(1) - natural.flatten(1).mean(1, keepdim=True)).norm(dim=1).mean()
            )
        )
        fields = insilico.gradient_receptive_fields(model, "m", space, [0, 1])
        for i in range(2):
            corr = np.corrcoef(result.best[i].ravel(), fields[i].ravel())[0, 1]
            assert corr > 0.9  # the matched filter
        assert result.ratio is not None and (result.ratio > 1.0).all()
        rates = insilico.natural_responses(model, "m", space, natural)
        np.testing.assert_allclose(result.natural_best, rates[:, [0, 1]].max(axis=0), rtol=1e-6)
        # an MEI does not depend on the neurons computed beside it
        alone = insilico.most_exciting_inputs(model, "m", space, [1], seeds=(1,), steps=20)
        beside = insilico.most_exciting_inputs(
            model, "m", space, [3, 1, 0], seeds=(0, 1), steps=20, batch_size=4
        )
        np.testing.assert_allclose(alone.inputs[0, 0], beside.inputs[1, 1], atol=1e-5)
        with pytest.raises(ValueError, match="natural: no natural stimuli"):
            insilico.most_exciting_inputs(model, "m", space, [0], natural=torch.empty(0, H, W))
        # the defaults (jitter, blur) smooth the input but still beat every natural stimulus
        smooth = insilico.most_exciting_inputs(model, "m", space, [2], steps=60, natural=natural)
        assert smooth.ratio is not None and smooth.ratio[0] > 1.0


class TestStimuli:
    @pytest.fixture(scope="class")
    def store(self, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
        return sd.example_store(
            tmp_path_factory.mktemp("insilico"), kind="static", n_mice=1, n_trials=40, n_neurons=6
        )

    def test_space_from_store(self, store: pathlib.Path) -> None:
        (mouse,) = sd.list_mice(store)
        info = MouseInfo.from_dataset(sd.open_mouse(store, mouse))
        plus = build_model("sensorium-plus-sota", {mouse: info}, overrides={"hidden_channels": 4})
        space = insilico.InputSpace.from_store(plus, store, mouse)
        stats = sd.open_statistics(store, mouse)
        assert (space.height, space.width) == (36, 64)
        assert space.mean == pytest.approx(float(stats["images"]["all"]["mean"]))
        assert space.std == pytest.approx(float(stats["images"]["all"]["std"]))
        behavior = np.asarray(stats["behavior"]["all"]["mean"]) / np.asarray(
            stats["behavior"]["all"]["std"]
        )
        np.testing.assert_allclose(space.behavior, behavior, rtol=1e-6)
        x = space.inputs(torch.zeros(2, 36, 64))
        assert x.shape == (2, 4, 36, 64)
        np.testing.assert_allclose(x[:, 1:, 0, 0].numpy(), np.tile(behavior, (2, 1)), rtol=1e-6)
        rates = insilico.natural_responses(plus.eval(), mouse, space, torch.zeros(3, 36, 64))
        assert rates.shape == (3, 6)
        modulated = build_model(
            "sensorium-plus-modulator", {mouse: info}, overrides={"hidden_channels": 4}
        )
        space = insilico.InputSpace.from_store(modulated, store, mouse)
        assert space.behavior == ()  # the core sees only the image
        kwargs = space.model_kwargs(modulated, torch.zeros(2, 36, 64))
        np.testing.assert_allclose(kwargs["behavior"][0].numpy(), behavior, rtol=1e-6)

    def test_pictures_as_the_loaders_give_them(self, store: pathlib.Path, tmp_path) -> None:
        from PIL import Image

        from sensorium_data.store.images import rescale_images

        (mouse,) = sd.list_mice(store)
        model = planted_model()
        space = insilico.InputSpace.from_store(model, store, mouse)
        raw = np.asarray(sd.open_mouse(store, mouse)["images"][:3, 0].values)  # 144 x 256
        stimuli = insilico.load_stimuli(raw, space)
        expected = (rescale_images(raw, 0.25) - space.mean) / space.std
        np.testing.assert_allclose(stimuli.numpy(), expected, rtol=1e-5, atol=1e-5)
        natural = insilico.natural_stimuli(model, store, mouse, space, tiers=("train",), limit=5)
        assert natural.shape == (5, 36, 64)
        folder = tmp_path / "pictures"
        folder.mkdir()
        Image.fromarray(np.full((72, 128), 200, np.uint8)).save(folder / "a.png")
        Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(folder / "b.jpg")
        (folder / "notes.txt").write_text("not a picture")
        loaded = insilico.load_stimuli(folder, space)
        assert loaded.shape == (2, 36, 64)
        np.testing.assert_allclose(loaded[0].numpy(), (200 - space.mean) / space.std, rtol=1e-5)
        np.testing.assert_allclose(loaded[1].numpy(), (0 - space.mean) / space.std, rtol=1e-5)
        with pytest.raises(ValueError, match="no pixel statistics"):
            insilico.load_stimuli(raw, insilico.InputSpace.default(model))
        with pytest.raises(ValueError, match=r"expected \(H, W\) images"):
            insilico.load_stimuli(np.zeros((2, 3, 5, 36, 64)), space)
        colour = insilico.load_stimuli(np.full((2, 36, 64, 3), 90.0), space)
        np.testing.assert_allclose(colour.numpy(), (90 - space.mean) / space.std, rtol=1e-5)
        empty = tmp_path / "empty"
        empty.mkdir()
        with pytest.raises(ValueError, match=f"stimuli: {empty} holds no pictures"):
            insilico.load_stimuli(empty, space)
        with pytest.raises(ValueError, match="does not exist"):
            insilico.load_stimuli(tmp_path / "absent", space)


class TestVideoModels:
    def test_fields_and_drifting_gratings(self) -> None:
        mice = {"v": MouseInfo(n_neurons=3, coordinates=None, kind="dynamic")}
        model = build_model(
            "video-gru",
            mice,
            overrides={"hidden_channels": 2, "layers": 2, "rec_channels": 4, "num_rotations": 4},
        ).eval()
        space = insilico.InputSpace.default(model)
        space = insilico.InputSpace(
            **{**space.__dict__, "frames": 8, "height": 20, "width": 24, "pixel_bounds": (0, 255)}
        )
        fields = insilico.gradient_receptive_fields(model, "v", space)
        assert fields.shape == (3, 8, 20, 24) and np.abs(fields).sum() > 0
        clips = insilico.load_stimuli(np.zeros((5, 8, 20, 24)), space)  # (N, T, H, W)
        assert clips.shape == (5, 8, 20, 24)
        assert insilico.load_stimuli(np.zeros((8, 20, 24)), space).shape == (1, 8, 20, 24)
        tuning = insilico.drifting_grating_tuning(
            model, "v", space, directions=4, temporal_frequencies=(2.0, 4.0)
        )
        assert tuning["responses"].shape == (3, 4, 2)
        assert (
            (tuning["preferred_direction"] >= 0) & (tuning["preferred_direction"] < 2 * np.pi)
        ).all()
        with pytest.raises(ValueError, match="need a video"):
            insilico.drifting_grating_tuning(
                planted_model(), "m", insilico.InputSpace.default(planted_model())
            )


class TestCommandLine:
    def test_every_experiment_writes_arrays_and_a_figure(
        self, tmp_path: pathlib.Path, capsys: Any
    ) -> None:
        from sensorium_models.checkpoints import CHECKPOINT_FORMAT, infos_to_state, write_checkpoint
        from sensorium_models.cli import main

        model = planted_model()
        run = tmp_path / "run"
        run.mkdir()
        state = model.state_dict()
        write_checkpoint(
            run,
            {
                "format": CHECKPOINT_FORMAT,
                "model_config": model.config.to_dict(),
                "mice": infos_to_state(model.mice),
                "model": state,
                "best_model": state,
            },
        )
        common = ["--checkpoint", str(run), "--mouse", "m", "--device", "cpu"]
        out = tmp_path / "rf"
        assert main(["insilico", "rf", *common, "--neurons", "0", "2", "--out", str(out)]) == 0
        np.testing.assert_allclose(np.load(out / "centers.npy"), CENTERS[[0, 2]], atol=1e-6)
        assert (out / "image_grid.png").stat().st_size > 1000
        out = tmp_path / "tuning"
        assert main(["insilico", "tuning", *common, "--out", str(out)]) == 0
        import xarray as xr

        tuning = xr.open_zarr(out / "tuning.zarr", consolidated=False)
        assert tuning["responses"].shape[0] == len(CENTERS)
        assert (out / "tuning_curves.png").is_file()
        summary = json.loads((out / "summary.json").read_text())
        assert len(summary["preferred_orientation_deg"]) == len(CENTERS)
        out = tmp_path / "mei"
        args = ["insilico", "mei", *common, "--neurons", "1", "--seeds", "2", "--steps", "5"]
        assert main([*args, "--out", str(out)]) == 0
        assert np.load(out / "meis.npy").shape == (1, 2, H, W)
        pictures = tmp_path / "pictures.npy"
        np.save(pictures, np.full((4, 144, 256), 128.0))
        out = tmp_path / "predict"
        args = ["insilico", "predict", *common, "--stimuli", str(pictures), "--out", str(out)]
        capsys.readouterr()
        assert main(args) == 1
        assert "--store: predict needs --store" in capsys.readouterr().err
        store = sd.example_store(tmp_path / "data", kind="static", n_mice=1, n_trials=30)
        (mouse,) = sd.list_mice(store)
        named = planted_model(mouse=mouse)
        run2 = tmp_path / "run2"
        run2.mkdir()
        write_checkpoint(
            run2,
            {
                "format": CHECKPOINT_FORMAT,
                "model_config": named.config.to_dict(),
                "mice": infos_to_state(named.mice),
                "model": named.state_dict(),
                "best_model": named.state_dict(),
            },
        )
        args = ["insilico", "predict", "--checkpoint", str(run2), "--mouse", mouse, "--device"]
        args += ["cpu", "--stimuli", str(pictures), "--store", str(store), "--out", str(out)]
        assert main(args) == 0
        rates = np.load(out / "responses.npy")
        assert rates.shape == (4, len(CENTERS))
        space = insilico.InputSpace.from_store(named, store, mouse)
        grey = space.normalise(np.full((1, 36, 64), 128.0))
        np.testing.assert_allclose(rates[:1], insilico.natural_responses(named, mouse, space, grey))
        capsys.readouterr()
        assert main(["insilico", "rf", *common[:2], "--mouse", "x", "--out", str(out)]) == 1
        assert "no readout for mouse 'x'" in capsys.readouterr().err
