"""The SENSORIUM baseline models: shapes, gradients, sampling, shifters, regularisers, configs."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sensorium_models.configs import (
    NAMED_CONFIGS,
    ModelConfig,
    ModelConfigError,
    ModelInputError,
    MouseInfo,
    UnknownMouseError,
    build_model,
    get_config,
)
from sensorium_models.cores import Factorised3dCore, GRUCore, Stacked2dCore
from sensorium_models.encoders import FiringRateEncoder, VideoEncoder
from sensorium_models.readouts import FullGaussian2d, VideoGaussianReadout
from sensorium_models.regularizers import laplace_l2_norm, temporal_laplace_l2_norm
from sensorium_models.shifters import MLPShifter

# Small enough for a few milliseconds per forward pass.
TINY: dict[str, dict] = {
    "stacked2d": {"hidden_channels": 4},
    "factorised3d": {"hidden_channels": (3, 4, 5)},
    "gru": {
        "hidden_channels": 4,
        "layers": 2,
        "input_kernel": 5,
        "hidden_kernel": 3,
        "rec_channels": 4,
        "rec_input_kernel": 3,
        "rec_kernel": 3,
    },
}
# (frames, height, width) of the tiny inputs per core.
SIZES = {"stacked2d": (1, 20, 28), "factorised3d": (20, 22, 26), "gru": (3, 12, 16)}
NEURONS = {"m1": 5, "m2": 7}


pytestmark = pytest.mark.usefixtures("one_thread")


def make_mice(kind: str) -> dict[str, MouseInfo]:
    coords = np.random.default_rng(0).normal(scale=100.0, size=(NEURONS["m1"], 3))
    return {
        "m1": MouseInfo(n_neurons=NEURONS["m1"], coordinates=coords, kind=kind),
        "m2": MouseInfo(n_neurons=NEURONS["m2"], coordinates=None, kind=kind),
    }


def tiny_model(name: str, seed: int = 0, **extra):
    config = get_config(name)
    torch.manual_seed(seed)
    return build_model(config, make_mice(config.kind), overrides={**TINY[config.core], **extra})


def make_batch(config: ModelConfig, batch: int = 2, seed: int = 1):
    """Stimulus with all channels, pupil_center and behavior shaped like the loaders' batches."""
    gen = torch.Generator().manual_seed(seed)
    frames, height, width = SIZES[config.core]
    if config.kind == "static":
        x = torch.randn(batch, config.input_channels, height, width, generator=gen)
        return x, torch.randn(batch, 2, generator=gen), torch.randn(batch, 3, generator=gen)
    x = torch.randn(batch, config.input_channels, frames, height, width, generator=gen)
    pupil = torch.randn(batch, 2, frames, generator=gen)
    return x, pupil, torch.randn(batch, 2, frames, generator=gen)


def out_shape(model, x: torch.Tensor, mouse: str) -> tuple[int, ...]:
    if model.config.kind == "static":
        return (x.shape[0], NEURONS[mouse])
    return (x.shape[0], model.frames_out(x.shape[2]), NEURONS[mouse])


@pytest.mark.parametrize("name", sorted(NAMED_CONFIGS))
class TestEveryNamedConfig:
    def test_shapes_and_positive_rates(self, name):
        model = tiny_model(name)
        x, pupil, behavior = make_batch(model.config)
        for train in (True, False):
            model.train(train)
            for mouse in NEURONS:
                y = model(x, mouse=mouse, pupil_center=pupil, behavior=behavior)
                assert y.shape == out_shape(model, x, mouse)
                assert torch.isfinite(y).all() and (y > 0).all()

    def test_gradients_reach_core_and_own_readout_only(self, name):
        model = tiny_model(name)
        x, pupil, behavior = make_batch(model.config)
        model(x, mouse="m1", pupil_center=pupil, behavior=behavior).sum().backward()
        assert all(p.grad is not None for p in model.core.parameters())
        own = dict(model.readouts["m1"].named_parameters())
        assert all(own[k].grad is not None for k in own), "m1's readout got no gradient"
        others = list(model.readouts["m2"].parameters())
        for per_mouse in (model.shifters, model.modulators):
            if per_mouse is not None:
                assert all(p.grad is not None for p in per_mouse["m1"].parameters())
                others += list(per_mouse["m2"].parameters())
        assert all(p.grad is None for p in others), "m2's modules must not get gradients"

    def test_regularizer_positive_and_linear_in_gammas(self, name):
        gammas = {"gamma_input": 1.0, "gamma_readout": 0.01, "gamma_input_temporal": 0.5}
        if get_config(name).core == "gru":
            gammas["gamma_rec"] = 0.1
        if get_config(name).num_rotations:
            gammas["gamma_hidden"] = 10.0
        if get_config(name).behavior_modulator:
            gammas["gamma_modulator"] = 0.1
        base = tiny_model(name, **gammas).regularizer("m1")
        doubled = tiny_model(name, **{k: 2 * v for k, v in gammas.items()}).regularizer("m1")
        assert base.ndim == 0 and base.item() > 0
        torch.testing.assert_close(doubled, 2 * base)
        zero = tiny_model(name, **{k: 0.0 for k in gammas}).regularizer("m1")
        assert zero.item() == 0.0

    def test_config_json_round_trip_rebuilds_the_model(self, name):
        model = tiny_model(name).eval()
        config = ModelConfig.from_dict(json.loads(json.dumps(model.config.to_dict())))
        assert config == model.config
        mice = {
            k: MouseInfo.from_dict(json.loads(json.dumps(v.to_dict())))
            for k, v in model.mice.items()
        }
        rebuilt = build_model(config, mice).eval()
        rebuilt.load_state_dict(model.state_dict())
        x, pupil, behavior = make_batch(model.config)
        kwargs = {"pupil_center": pupil, "behavior": behavior}
        torch.testing.assert_close(rebuilt(x, mouse="m2", **kwargs), model(x, mouse="m2", **kwargs))


class TestSampling:
    def test_eval_is_deterministic_train_samples_positions(self):
        model = tiny_model("sensorium-sota")
        x, _, _ = make_batch(model.config)
        readout = model.readouts["m1"]
        model.train()
        assert not torch.equal(readout.sample_grid(2), readout.sample_grid(2))
        assert not torch.equal(model(x, mouse="m1"), model(x, mouse="m1"))
        model.eval()
        torch.testing.assert_close(readout.sample_grid(2), readout.mu.expand(2, -1, -1))
        assert torch.equal(model(x, mouse="m1"), model(x, mouse="m1"))

    def test_video_frames_draw_their_own_positions(self):
        readout = VideoGaussianReadout(in_channels=3, n_neurons=4, init_sigma=0.5)
        frame = torch.randn(1, 3, 1, 8, 8)
        y = readout(frame.expand(1, 3, 5, 8, 8))
        assert y.shape == (1, 5, 4) and not torch.equal(y[:, 0], y[:, 1])
        readout.eval()
        y = readout(frame.expand(1, 3, 5, 8, 8))
        assert torch.equal(y[:, 0], y[:, 4])


class TestShifter:
    @pytest.mark.parametrize("name", ["sensorium-plus-sota", "video-factorised-3d"])
    def test_pupil_position_moves_the_output(self, name):
        model = tiny_model(name).eval()
        x, pupil, _ = make_batch(model.config)
        moved = model(x, mouse="m1", pupil_center=pupil + 1.0)
        assert not torch.allclose(model(x, mouse="m1", pupil_center=pupil), moved)
        with pytest.raises(ModelInputError, match="pupil_center"):
            model(x, mouse="m1")

    def test_video_shift_uses_the_last_frames(self):
        model = tiny_model("video-factorised-3d").eval()
        x, pupil, _ = make_batch(model.config)
        frames_out = model.frames_out(x.shape[2])
        early, late = pupil.clone(), pupil.clone()
        early[:, :, :-frames_out] += 1.0  # frames the output is not aligned with
        late[:, :, -1] += 1.0
        y = model(x, mouse="m1", pupil_center=pupil)
        assert torch.equal(model(x, mouse="m1", pupil_center=early), y)
        y_late = model(x, mouse="m1", pupil_center=late)
        assert torch.equal(y_late[:, :-1], y[:, :-1]) and not torch.equal(y_late[:, -1], y[:, -1])

    def test_mlp_shape(self):
        shifter = MLPShifter()
        sizes = [m.out_features for m in shifter.mlp if isinstance(m, torch.nn.Linear)]
        assert sizes == [5, 5, 2] and shifter(torch.zeros(3, 4, 2)).shape == (3, 4, 2)


class TestCores:
    def test_linear_core_is_affine_in_eval_mode(self):
        torch.manual_seed(0)
        x = torch.randn(2, 1, 16, 20)
        for linear in (True, False):
            core = Stacked2dCore(input_channels=1, hidden_channels=4, layers=3, linear=linear)
            core(3 * torch.randn(4, 1, 16, 20))  # non-trivial BatchNorm running statistics
            core.eval()
            zero = core(torch.zeros_like(x))
            affine = torch.allclose(core(2.5 * x) - zero, 2.5 * (core(x) - zero), atol=1e-5)
            assert affine == linear

    def test_factorised_output_is_aligned_with_the_last_frames(self):
        core = Factorised3dCore(input_channels=1, hidden_channels=(2, 2, 2)).eval()
        x = torch.randn(1, 1, 21, 22, 22)
        assert core.frames_out(80) == 62 and core(x).shape == (1, 2, 3, 4, 4)
        changed = x.clone()
        changed[:, :, 0] += 1.0  # only the first output frame sees input frame 0
        diff = (core(changed) - core(x)).abs().sum(dim=(0, 1, 3, 4))
        assert diff[0] > 0 and (diff[1:] == 0).all()

    def test_gru_is_causal_and_keeps_frames(self):
        frame_core = Stacked2dCore(input_channels=1, hidden_channels=3, input_kernel=3, layers=2)
        core = GRUCore(frame_core=frame_core, rec_channels=2, rec_input_kernel=3, rec_kernel=3)
        core.eval()
        x = torch.randn(1, 1, 4, 8, 8)
        changed = x.clone()
        changed[:, :, 2] += 1.0
        out, out_changed = core(x), core(changed)
        assert out.shape == (1, 2, 4, 6, 6) and core.frames_out(4) == 4
        assert torch.equal(out[:, :, :2], out_changed[:, :, :2])
        assert not torch.equal(out[:, :, 2:], out_changed[:, :, 2:])

    def test_laplace_penalties_ignore_scale(self):
        weight = torch.randn(3, 2, 5, 5)
        torch.testing.assert_close(laplace_l2_norm(3 * weight), laplace_l2_norm(weight))
        smooth = torch.ones(1, 1, 5, 5)
        assert laplace_l2_norm(smooth) < laplace_l2_norm(weight)
        assert temporal_laplace_l2_norm(torch.randn(2, 2, 7)) > 0


class TestReadout:
    def test_positions_from_coordinates(self):
        coords = np.array([[0.0, 0.0, 5.0], [10.0, 0.0, 1.0], [0.0, 0.0, 9.0]])
        readout = FullGaussian2d(in_channels=2, n_neurons=3, coordinates=coords)
        mu = readout.mu
        assert readout._mu is None and mu.requires_grad
        torch.testing.assert_close(mu[0], mu[2])  # same (x, y), depth ignored
        assert (mu.abs() <= 1).all()

    def test_free_positions_and_l1_penalty(self):
        readout = FullGaussian2d(in_channels=2, n_neurons=3, gamma_readout=0.5, init_mu_range=0.2)
        assert (readout.mu.abs() <= 0.2).all()
        with torch.no_grad():
            readout.features.fill_(-1.0)
        assert readout.regularizer().item() == pytest.approx(0.5 * 6)
        readout.initialize_bias(np.arange(3.0))
        assert readout.bias.tolist() == [0.0, 1.0, 2.0]

    def test_shift_moves_reading_position(self):
        readout = FullGaussian2d(in_channels=1, n_neurons=1).eval()
        ramp = torch.linspace(0, 1, 9).expand(1, 1, 9, 9)  # grows along x
        base = readout(ramp)
        assert readout(ramp, shift=torch.tensor([[0.5, 0.0]])) > base


class TestBehaviourChannels:
    @pytest.mark.parametrize("name", ["sensorium-plus-sota", "video-gru"])
    def test_behaviour_appended_when_missing(self, name):
        model = tiny_model(name).eval()
        x, pupil, behavior = make_batch(model.config)
        stimulus = x[:, :1]
        shape = (-1, -1, *x.shape[2:-2], *x.shape[-2:])
        full = torch.cat([stimulus, behavior[(...,) + (None,) * 2].expand(shape)], dim=1)
        expected = model(full, mouse="m2", pupil_center=pupil)
        got = model(stimulus, mouse="m2", pupil_center=pupil, behavior=behavior)
        torch.testing.assert_close(got, expected)
        with pytest.raises(ModelInputError, match="input channels"):
            model(stimulus, mouse="m2", pupil_center=pupil)


class TestBehaviourModulator:
    def test_untrained_modulator_is_a_gain_of_one(self):
        plain = tiny_model("sensorium-sota", use_shifter=True).eval()
        model = tiny_model("sensorium-plus-modulator").eval()
        assert model.config.input_channels == 1  # the core sees only the images
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("modulators.")}
        plain.load_state_dict(state)
        x, pupil, behavior = make_batch(model.config)
        torch.testing.assert_close(
            model(x, mouse="m1", pupil_center=pupil, behavior=behavior),
            plain(x, mouse="m1", pupil_center=pupil),
        )

    def test_gain_scales_each_neuron_by_its_behaviour_weight(self):
        model = tiny_model("sensorium-plus-modulator", modulator_layers=1).eval()
        x, pupil, behavior = make_batch(model.config)
        base = model(x, mouse="m1", pupil_center=pupil, behavior=behavior)
        last = model.modulators["m1"].mlp[-1]
        weights = torch.linspace(-1.0, 1.0, NEURONS["m1"])
        with torch.no_grad():
            last.weight[:, 0] = weights  # log gain of neuron n: weights[n] * behavior[:, 0]
        gained = model(x, mouse="m1", pupil_center=pupil, behavior=behavior)
        expected = base * torch.exp(behavior[:, :1] * weights)
        torch.testing.assert_close(gained, expected)
        other = model(x, mouse="m2", pupil_center=pupil, behavior=behavior)
        assert other.shape == (x.shape[0], NEURONS["m2"])

    def test_modulator_needs_behaviour_of_the_right_shape(self):
        model = tiny_model("sensorium-plus-modulator")
        x, pupil, behavior = make_batch(model.config)
        with pytest.raises(ModelInputError, match="behaviour modulator: pass behavior="):
            model(x, mouse="m1", pupil_center=pupil)
        with pytest.raises(ModelInputError, match=r"behavior must be \(2, 3\), got \(2, 2\)"):
            model(x, mouse="m1", pupil_center=pupil, behavior=behavior[:, :2])

    def test_encoder_refuses_misplaced_modulators(self):
        model = tiny_model("sensorium-plus-modulator")
        parts = {"core": model.core, "readouts": dict(model.readouts), "config": model.config}
        one = {"m1": model.modulators["m1"]}
        with pytest.raises(ValueError, match=r"modulators must have .* mice \['m1', 'm2'\]"):
            FiringRateEncoder(**parts, shifters=None, mice=model.mice, modulators=one)
        video = tiny_model("video-gru")
        with pytest.raises(ValueError, match="only static .* encoders take a behaviour modulator"):
            VideoEncoder(
                core=video.core,
                readouts=dict(video.readouts),
                shifters=None,
                config=video.config,
                mice=video.mice,
                modulators=dict(model.modulators),
            )

    def test_modulator_config_is_checked(self):
        with pytest.raises(ModelConfigError, match="behavior_modulator is for static"):
            get_config("video-gru").replace(behavior_modulator=True)
        with pytest.raises(ModelConfigError, match="modulator_layers must be >= 1"):
            get_config("sensorium-plus-modulator").replace(modulator_layers=0)
        with pytest.raises(ModelConfigError, match="gamma_modulator must be >= 0"):
            get_config("sensorium-plus-modulator").replace(gamma_modulator=-1.0)


class TestErrors:
    def test_unknown_config_name(self):
        with pytest.raises(ModelConfigError, match="known configs: .*sensorium-sota"):
            build_model("sensorium-best", make_mice("static"))

    def test_unknown_override_field(self):
        with pytest.raises(ModelConfigError, match="unknown ModelConfig field.*hidden_chanels"):
            build_model("sensorium-sota", make_mice("static"), overrides={"hidden_chanels": 8})
        with pytest.raises(ModelConfigError, match="unknown ModelConfig field"):
            ModelConfig.from_dict({"name": "x", "colour": 1})

    def test_unknown_mouse(self):
        model = tiny_model("sensorium-sota")
        x, _, _ = make_batch(model.config)
        with pytest.raises(UnknownMouseError, match=r"no readout for mouse 'm3'.*\['m1', 'm2'\]"):
            model(x, mouse="m3")
        with pytest.raises(KeyError):
            model.regularizer("m3")

    def test_mismatched_mice_and_values(self):
        with pytest.raises(ModelConfigError, match="dynamic data but config"):
            build_model("sensorium-sota", make_mice("dynamic"))
        with pytest.raises(ModelConfigError, match="at least one mouse"):
            build_model("video-gru", {})
        with pytest.raises(ModelConfigError, match="coordinates must be"):
            MouseInfo(n_neurons=4, coordinates=np.zeros((3, 3)), kind="static")
        with pytest.raises(ModelConfigError, match="one int for core 'stacked2d'"):
            get_config("sensorium-sota").replace(hidden_channels=(4, 4, 4, 4))
        with pytest.raises(ModelConfigError, match="for dynamic data, but kind"):
            ModelConfig(name="x", core="gru")

    def test_short_video(self):
        model = tiny_model("video-factorised-3d")
        x, pupil, _ = make_batch(model.config)
        with pytest.raises(ModelInputError, match="needs more than 18 frames"):
            model(x[:, :, :18], mouse="m1", pupil_center=pupil[:, :, :18])


def test_frames_out_and_input_channels_argument():
    assert get_config("video-factorised-3d").frames_out(80) == 62
    assert get_config("video-gru").frames_out(80) == 80
    model = build_model(
        "sensorium-sota", make_mice("static"), input_channels=6, overrides=TINY["stacked2d"]
    )
    assert model.config.input_channels == 6 and model.frames_out(1) == 1


class _FakeDataset:
    """The part of an ``open_mouse`` xarray.Dataset that MouseInfo.from_dataset reads."""

    def __init__(self, stimulus: str, coordinates: np.ndarray | None):
        self.variables = {stimulus: None}
        if coordinates is not None:
            self.variables["cell_motor_coordinates"] = SimpleNamespace(values=coordinates)
        self.sizes = {"neuron": 4, "trial": 1}

    def __getitem__(self, name):
        return self.variables[name]


def test_mouse_info_from_dataset():
    info = MouseInfo.from_dataset(_FakeDataset("videos", np.ones((4, 3))))
    assert (info.n_neurons, info.kind, info.coordinates.shape) == (4, "dynamic", (4, 3))
    info = MouseInfo.from_dataset(_FakeDataset("images", None))
    assert (info.n_neurons, info.kind, info.coordinates) == (4, "static", None)
    with pytest.raises(ModelConfigError, match="neither 'images' nor 'videos'"):
        MouseInfo.from_dataset(_FakeDataset("responses", None))
