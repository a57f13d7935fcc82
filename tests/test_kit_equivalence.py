"""Our 2022 baselines compute what the official kit computes (neuralpredictors 0.3.0).

The kit (``sinzlab/sensorium``, ``sensorium/models/models.py``
``stacked_core_full_gauss_readout``) builds its models from neuralpredictors 0.3.0: an
``SE2dCore`` without squeeze-excitation blocks (the same layers as ``Stacked2dCore``), a
``MultipleFullGaussian2d`` readout (one ``FullGaussian2d`` per mouse), an ``MLPShifter`` and a
``FiringRateEncoder``. Here each of our modules gets random weights, which are copied into the
kit's module through the explicit mapping :func:`kit_key` (names and shapes differ in the
readout only); then outputs, BatchNorm running statistics, regularisers and gradients must agree.

Train mode is compared too: BatchNorm uses batch statistics, and the readout samples its
positions. Both readouts draw their ``N(0, I)`` noise with one ``normal_`` call of the same
shape, so the same seed gives the same positions; this is what checks the covariance layout,
which evaluation (the mean position) never uses.
"""

from __future__ import annotations

import collections
import collections.abc
import importlib.util
import sys
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from sensorium_models.configs import MouseInfo, build_model, get_config
from sensorium_models.cores import Stacked2dCore
from sensorium_models.encoders import make_core
from sensorium_models.readouts import FullGaussian2d
from sensorium_models.regularizers import LAPLACE_2D
from sensorium_models.shifters import MLPShifter


def _import_kit() -> types.SimpleNamespace:
    """neuralpredictors 0.3.0's model classes.

    0.3.0 imports ``Iterable``/``Mapping`` from ``collections`` (gone in Python 3.10), and its
    ``layers/cores/conv2d.py`` imports torchvision for ``TransferLearningCore`` only, which is
    not used here: without torchvision an empty stand-in module is importable while
    neuralpredictors loads, and removed afterwards, as are the ``collections`` names (0.3.0
    needs them only while it imports), so that no other test runs with them.
    """
    added = [n for n in ("Iterable", "Mapping", "Sequence") if not hasattr(collections, n)]
    for name in added:
        setattr(collections, name, getattr(collections.abc, name))
    stub = "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is None
    if stub:
        sys.modules["torchvision"] = types.ModuleType("torchvision")
    try:
        from neuralpredictors.layers.cores import SE2dCore, Stacked2dCore
        from neuralpredictors.layers.encoders import FiringRateEncoder
        from neuralpredictors.layers.readouts import (
            FullGaussian2d,
            MultiReadoutSharedParametersBase,
        )
        from neuralpredictors.layers.shifters import MLPShifter
        from neuralpredictors.utils import get_module_output
    finally:
        if stub:
            del sys.modules["torchvision"]
        for name in added:
            delattr(collections, name)

    class MultipleFullGaussian2d(MultiReadoutSharedParametersBase):
        """``sensorium/models/readouts.py`` of the 2022 kit, verbatim."""

        _base_readout = FullGaussian2d

    return types.SimpleNamespace(
        Stacked2dCore=Stacked2dCore,
        SE2dCore=SE2dCore,
        FiringRateEncoder=FiringRateEncoder,
        MultipleFullGaussian2d=MultipleFullGaussian2d,
        MLPShifter=MLPShifter,
        get_module_output=get_module_output,
    )


kit = _import_kit()

HIDDEN = 8  # 64 in the baselines
IMAGE = (36, 64)  # the 2022 images at the kits' scale=0.25
BATCH = 4
NEURONS = {"m1": 5, "m2": 7}

# ``model_config`` of the kit's notebooks (notebooks/model_tutorial/1a_model_training_sensorium
# and 1b_model_training_sensorium+), with hidden_channels cut from 64 to HIDDEN.
_KIT_SOTA: dict[str, Any] = {
    "pad_input": False,
    "stack": -1,
    "layers": 4,
    "input_kern": 9,
    "gamma_input": 6.3831,
    "gamma_readout": 0.0076,
    "hidden_kern": 7,
    "hidden_channels": HIDDEN,
    "depth_separable": True,
    "grid_mean_predictor": {
        "type": "cortex",
        "input_dimensions": 2,
        "hidden_layers": 1,
        "hidden_features": 30,
        "final_tanh": True,
    },
    "init_sigma": 0.1,
    "init_mu_range": 0.3,
    "gauss_type": "full",
    "shifter": False,
}
KIT_CONFIGS: dict[str, dict[str, Any]] = {
    "sensorium-sota": _KIT_SOTA,
    "sensorium-ln": {**_KIT_SOTA, "layers": 3, "linear": True},
    "sensorium-plus-sota": {**_KIT_SOTA, "shifter": True},
    "sensorium-plus-ln": {**_KIT_SOTA, "layers": 3, "linear": True, "shifter": True},
}
# The defaults of stacked_core_full_gauss_readout that the notebooks leave alone.
KIT_DEFAULTS: dict[str, Any] = {
    "skip": 0,
    "final_nonlinearity": True,
    "momentum": 0.9,
    "batch_norm": True,
    "hidden_dilation": 1,
    "laplace_padding": None,
    "input_regularizer": "LaplaceL2norm",
    "readout_bias": True,
    "elu_offset": 0,
    "linear": False,
    "attention_conv": False,
    "hidden_padding": None,
    "core_bias": False,
    "input_channels_shifter": 2,
    "hidden_channels_shifter": 5,
    "shift_layers": 3,
    "gamma_shifter": 0,
}
# The kit core's Laplace kernel buffer (a constant; ours is LAPLACE_2D, not part of the state).
KIT_LAPLACE = "_input_weights_regularizer.laplace.filter"
# Warnings the kit raises for its own (deprecated) defaults; any other warning is an error.
KIT_WARNINGS = (
    "The averaged value of regularizer will be used.",
    "Use of 'gamma_readout' is deprecated",
    "Readout is NOT initialized with mean activity",
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _seeded() -> Iterator[None]:
    """Deterministic weights and inputs, without moving the global RNG of other tests."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield


@contextmanager
def kit_warnings_ignored() -> Iterator[None]:
    with warnings.catch_warnings():
        for message in KIT_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        yield


# ----------------------------------------------------------------------------- the mapping


def kit_key(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    """One entry of our ``FiringRateEncoder``'s state (or gradients) in the kit's layout.

    ============================================  ==============================================
    ours                                          kit (neuralpredictors 0.3.0)
    ============================================  ==============================================
    ``core.features.layer{i}.*``                  same name, same shape (``conv``, ``ds_conv.
                                                  {in_depth_conv,spatial_conv,out_depth_conv}``,
                                                  ``norm`` with its running statistics)
    ``readouts.{m}.features`` ``(C, N)``          ``readout.{m}._features`` ``(1, C, 1, N)``
    ``readouts.{m}.sigma`` ``(N, 2, 2)``          ``readout.{m}.sigma`` ``(1, N, 2, 2)``
    ``readouts.{m}._mu`` ``(N, 2)``               ``readout.{m}._mu`` ``(1, N, 1, 2)``
    ``readouts.{m}.bias``, ``.source_grid``,      ``readout.{m}.*``, same shapes
    ``.mu_transform.{0,2}.*``
    ``shifters.{m}.mlp.{0,2,4}.*``                ``shifter.{m}.mlp.{0,2,4}.*``
    ============================================  ==============================================
    """
    part, rest = key.split(".", 1)
    if part == "core":
        return key, value
    if part == "shifters":
        return f"shifter.{rest}", value
    if part != "readouts":
        raise KeyError(f"no kit counterpart for {key!r}")
    mouse, name = rest.split(".", 1)
    if name == "features":
        name, value = "_features", value[None, :, None, :]
    elif name == "sigma":
        value = value[None]
    elif name == "_mu":
        value = value[None, :, None, :]
    return f"readout.{mouse}.{name}", value


def kit_state(
    ours: nn.Module, ours_prefix: str = "", kit_prefix: str = ""
) -> dict[str, torch.Tensor]:
    """``ours``'s state dict in the kit's names and shapes.

    ``ours_prefix`` is where ``ours`` sits in our encoder (e.g. ``"readouts.m1."``),
    ``kit_prefix`` where the kit's counterpart sits in the kit's (e.g. ``"readout."``).
    """
    state = {}
    for key, value in ours.state_dict().items():
        new, tensor = kit_key(ours_prefix + key, value)
        if not new.startswith(kit_prefix):
            raise KeyError(f"{ours_prefix + key!r} maps to {new!r}, outside {kit_prefix!r}")
        state[new.removeprefix(kit_prefix)] = tensor
    return state


def load_into_kit(
    ours: nn.Module, theirs: nn.Module, ours_prefix: str = "", kit_prefix: str = ""
) -> None:
    """Copy ``ours`` into ``theirs``; strict: every kit entry must come from one of ours.

    Two kit buffers are constants that we compute, not state: ``source_grid`` (from the same
    coordinates) and the core's Laplace filter (our :data:`LAPLACE_2D`). They are checked and
    kept, not copied.
    """
    state = kit_state(ours, ours_prefix, kit_prefix)
    laplace = torch.tensor(LAPLACE_2D)[None, None]
    for key, value in theirs.state_dict().items():
        if key.endswith("source_grid"):
            torch.testing.assert_close(state[key], value, rtol=0, atol=0)
        elif key.endswith(KIT_LAPLACE) and key not in state:
            torch.testing.assert_close(value, laplace, rtol=0, atol=0)
            state[key] = value
    theirs.load_state_dict(state, strict=True)


def perturb(module: nn.Module, seed: int) -> None:
    """Random weights and BatchNorm statistics, so that no parameter keeps its initial value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(0.2 * torch.randn(param.shape, generator=generator))
        for name, buffer in module.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(0.3 * torch.randn(buffer.shape, generator=generator))
            elif name.endswith("running_var"):
                buffer.copy_(0.5 + torch.rand(buffer.shape, generator=generator))
            elif name.endswith("num_batches_tracked"):
                buffer.fill_(3)


def coordinates(n: int, seed: int) -> np.ndarray:
    """``cell_motor_coordinates``-like ``(n, 3)`` positions in µm."""
    return np.random.default_rng(seed).normal(loc=300.0, scale=150.0, size=(n, 3))


# ----------------------------------------------------------------------------- the kit's models


def kit_core(
    kind: str, name: str, input_channels: int, *, hidden: int = HIDDEN, core_bias: bool = False
) -> nn.Module:
    """The kit's core for our config ``name`` (``hidden`` channels; ``core_bias`` as the kit's).

    ``SE2dCore``: as ``stacked_core_full_gauss_readout`` builds it (``n_se_blocks=0``,
    ``use_avg_reg=False``). ``Stacked2dCore``: the class the kit's TODO names, with
    ``use_avg_reg=True`` (mean over the same number of elements: the same ratio).
    """
    c = {**KIT_DEFAULTS, **KIT_CONFIGS[name], "hidden_channels": hidden, "core_bias": core_bias}
    common = {
        "input_channels": input_channels,
        "hidden_channels": c["hidden_channels"],
        "input_kern": c["input_kern"],
        "hidden_kern": c["hidden_kern"],
        "layers": c["layers"],
        "gamma_input": c["gamma_input"],
        "skip": c["skip"],
        "final_nonlinearity": c["final_nonlinearity"],
        "bias": c["core_bias"],
        "momentum": c["momentum"],
        "pad_input": c["pad_input"],
        "batch_norm": c["batch_norm"],
        "laplace_padding": c["laplace_padding"],
        "input_regularizer": c["input_regularizer"],
        "stack": c["stack"],
        "depth_separable": c["depth_separable"],
        "linear": c["linear"],
    }
    with kit_warnings_ignored():
        if kind == "Stacked2dCore":
            return kit.Stacked2dCore(**common, use_avg_reg=True)
        return kit.SE2dCore(
            **common,
            hidden_dilation=c["hidden_dilation"],
            attention_conv=c["attention_conv"],
            hidden_padding=c["hidden_padding"],
        )


def kit_readout(
    core_shape: tuple[int, int, int],
    sources: dict[str, np.ndarray | None],
    *,
    neurons: dict[str, int] | None = None,
) -> nn.Module:
    """The kit's ``MultipleFullGaussian2d`` (SOTA settings) over ``core_shape`` ``(C, H, W)``.

    A mouse whose source is None gets free means (the kit's readout without a grid predictor;
    the kit cannot mix both, so such mice must come alone).
    """
    c = {**KIT_DEFAULTS, **_KIT_SOTA}
    predictor = dict(c["grid_mean_predictor"])
    predictor_type = predictor.pop("type")
    input_dims = predictor.pop("input_dimensions")
    free = any(source is None for source in sources.values())
    with kit_warnings_ignored():
        return kit.MultipleFullGaussian2d(
            in_shape_dict=dict.fromkeys(sources, core_shape),
            n_neurons_dict={m: (neurons or NEURONS)[m] for m in sources},
            init_mu_range=c["init_mu_range"],
            bias=c["readout_bias"],
            init_sigma=c["init_sigma"],
            gamma_readout=c["gamma_readout"],
            gauss_type=c["gauss_type"],
            grid_mean_predictor=None if free else predictor,
            grid_mean_predictor_type=None if free else predictor_type,
            source_grids=None if free else {m: s[:, :input_dims] for m, s in sources.items()},
        )


def kit_encoder(
    name: str,
    input_channels: int,
    sources: dict[str, np.ndarray],
    *,
    hidden: int = HIDDEN,
    neurons: dict[str, int] | None = None,
    core_bias: bool = False,
) -> nn.Module:
    """``stacked_core_full_gauss_readout`` with the notebook's ``model_config`` for ``name``
    (``hidden`` channels, ``neurons`` per mouse, the kit's ``core_bias``)."""
    c = {**KIT_DEFAULTS, **KIT_CONFIGS[name]}
    core = kit_core("SE2dCore", name, input_channels, hidden=hidden, core_bias=core_bias)
    shape = kit.get_module_output(core, (1, input_channels, *IMAGE), use_cuda=False)[1:]
    shifter = None
    if c["shifter"]:
        shifter = kit.MLPShifter(
            data_keys=list(sources),
            input_channels=c["input_channels_shifter"],
            hidden_channels_shifter=c["hidden_channels_shifter"],
            shift_layers=c["shift_layers"],
            gamma_shifter=c["gamma_shifter"],
        )
    return kit.FiringRateEncoder(
        core=core,
        readout=kit_readout(tuple(shape), sources, neurons=neurons),
        shifter=shifter,
        elu_offset=c["elu_offset"],
    )


def assert_same_state(
    ours: nn.Module, theirs: nn.Module, ours_prefix: str = "", kit_prefix: str = ""
) -> None:
    """Every entry of our state equals the kit's after the mapping (e.g. BatchNorm statistics)."""
    kit_values = theirs.state_dict()
    for key, value in kit_state(ours, ours_prefix, kit_prefix).items():
        torch.testing.assert_close(value, kit_values[key], msg=lambda m, k=key: f"{k}: {m}")


# ----------------------------------------------------------------------------- tests


class TestCore:
    """``Stacked2dCore`` against the kit's ``SE2dCore`` and neuralpredictors' ``Stacked2dCore``."""

    @pytest.mark.parametrize("kind", ["SE2dCore", "Stacked2dCore"])
    @pytest.mark.parametrize("name", list(KIT_CONFIGS))
    def test_outputs_statistics_and_regulariser(self, name: str, kind: str) -> None:
        config = get_config(name).replace(hidden_channels=HIDDEN)
        ours = make_core(config)
        perturb(ours, seed=1)
        theirs = kit_core(kind, name, config.input_channels)
        load_into_kit(ours, theirs, "core.", "core.")
        images = torch.randn(BATCH, config.input_channels, *IMAGE)

        ours.eval()
        theirs.eval()
        with torch.no_grad():
            out = ours(images)
            torch.testing.assert_close(out, theirs(images))
        assert out.shape == (BATCH, HIDDEN, IMAGE[0] - 8, IMAGE[1] - 8)

        ours.train()
        theirs.train()
        with torch.no_grad():
            torch.testing.assert_close(ours(images), theirs(images))
        # the running statistics moved alike (momentum 0.9 in PyTorch's convention)
        assert_same_state(ours, theirs, "core.", "core.")

        torch.testing.assert_close(ours.regularizer(), theirs.regularizer())
        assert ours.regularizer().item() > 0


class TestReadout:
    """``FullGaussian2d`` against the kit's ``MultipleFullGaussian2d`` entry for one mouse."""

    def _pair(self, predicted: bool) -> tuple[FullGaussian2d, nn.Module]:
        config = get_config("sensorium-sota")
        source = coordinates(NEURONS["m1"], seed=2) if predicted else None
        ours = FullGaussian2d(
            in_channels=HIDDEN,
            n_neurons=NEURONS["m1"],
            coordinates=source,
            init_mu_range=config.init_mu_range,
            init_sigma=config.init_sigma,
            bias=config.readout_bias,
            gamma_readout=config.gamma_readout,
            grid_hidden_features=config.grid_hidden_features,
        )
        perturb(ours, seed=3)
        theirs = kit_readout((HIDDEN, IMAGE[0] - 8, IMAGE[1] - 8), {"m1": source})
        load_into_kit(ours, theirs, "readouts.m1.", "readout.")
        return ours, theirs

    @pytest.mark.parametrize("predicted", [True, False], ids=["grid-predictor", "free-means"])
    def test_eval_train_and_regulariser(self, predicted: bool) -> None:
        ours, theirs = self._pair(predicted)
        features = torch.randn(BATCH, HIDDEN, IMAGE[0] - 8, IMAGE[1] - 8)
        shift = 0.3 * torch.randn(BATCH, 2)
        ours.eval()
        theirs.eval()
        with torch.no_grad():
            torch.testing.assert_close(ours(features), theirs(features, data_key="m1"))
            torch.testing.assert_close(
                ours(features, shift=shift), theirs(features, data_key="m1", shift=shift)
            )
            positions = theirs["m1"].sample_grid(batch_size=1, sample=False)[0, :, 0]
            torch.testing.assert_close(ours.sample_grid(1)[0], positions)

        ours.train()
        theirs.train()
        with torch.no_grad():
            torch.manual_seed(4)
            sampled = ours(features, shift=shift)
            torch.manual_seed(4)
            torch.testing.assert_close(sampled, theirs(features, data_key="m1", shift=shift))
            torch.manual_seed(5)
            grid = ours.sample_grid(BATCH)
            torch.manual_seed(5)
            torch.testing.assert_close(grid, theirs["m1"].sample_grid(BATCH)[:, :, 0])
        assert not torch.allclose(grid, ours.sample_grid(BATCH, sample=False))

        torch.testing.assert_close(ours.regularizer(), theirs.regularizer(data_key="m1"))


class TestShifter:
    def test_outputs_and_regulariser(self) -> None:
        config = get_config("sensorium-plus-sota")
        ours = MLPShifter(
            hidden_features=config.shifter_hidden,
            layers=config.shifter_layers,
            gamma_shifter=config.gamma_shifter,
        )
        perturb(ours, seed=6)
        theirs = kit.MLPShifter(
            data_keys=["m1"],
            input_channels=KIT_DEFAULTS["input_channels_shifter"],
            hidden_channels_shifter=KIT_DEFAULTS["hidden_channels_shifter"],
            shift_layers=KIT_DEFAULTS["shift_layers"],
            gamma_shifter=KIT_DEFAULTS["gamma_shifter"],
        )
        load_into_kit(ours, theirs, "shifters.m1.", "shifter.")
        pupil = torch.randn(BATCH, 2)
        with torch.no_grad():
            torch.testing.assert_close(ours(pupil), theirs["m1"](pupil))
        assert ours.regularizer().item() == theirs.regularizer("m1") == 0


class TestEncoder:
    """The whole model: ``ELU(readout(core(x), shifter(pupil))) + 1`` and its regulariser."""

    def _pair(self, name: str) -> tuple[nn.Module, nn.Module, int]:
        sources = {m: coordinates(n, seed=10 + i) for i, (m, n) in enumerate(NEURONS.items())}
        mice = {
            m: MouseInfo(n_neurons=NEURONS[m], coordinates=s, kind="static")
            for m, s in sources.items()
        }
        ours = build_model(name, mice, overrides={"hidden_channels": HIDDEN})
        perturb(ours, seed=7)
        channels = ours.config.input_channels
        theirs = kit_encoder(name, channels, sources)
        load_into_kit(ours, theirs)
        return ours, theirs, channels

    @pytest.mark.parametrize("name", list(KIT_CONFIGS))
    def test_eval_train_regulariser_and_gradients(self, name: str) -> None:
        ours, theirs, channels = self._pair(name)
        images = torch.randn(BATCH, channels, *IMAGE)
        pupil = torch.randn(BATCH, 2)
        shifted = ours.shifters is not None
        kwargs = {"pupil_center": pupil} if shifted else {}

        ours.eval()
        theirs.eval()
        with torch.no_grad():
            for mouse, neurons in NEURONS.items():
                out = ours(images, mouse=mouse, **kwargs)
                torch.testing.assert_close(out, theirs(images, data_key=mouse, **kwargs))
                assert out.shape == (BATCH, neurons)
                assert bool((out > 0).all())
                torch.testing.assert_close(
                    ours.regularizer(mouse), theirs.regularizer(data_key=mouse)
                )

        ours.train()
        theirs.train()
        torch.manual_seed(8)
        ours_loss = ours(images, mouse="m2", **kwargs).sum() + ours.regularizer("m2")
        torch.manual_seed(8)
        kit_loss = theirs(images, data_key="m2", **kwargs).sum() + theirs.regularizer("m2")
        torch.testing.assert_close(ours_loss, kit_loss)
        assert_same_state(ours, theirs)

        ours_loss.backward()
        kit_loss.backward()
        kit_params = dict(theirs.named_parameters())
        for key, param in ours.named_parameters():
            if param.grad is None:  # the other mouse's readout and shifter
                assert key.split(".")[1] == "m1", key
                continue
            kit_name, grad = kit_key(key, param.grad)
            torch.testing.assert_close(
                grad, kit_params[kit_name].grad, msg=lambda m, k=key: f"grad of {k}: {m}"
            )


class TestMappingCanFail:
    """The comparison is not vacuous: a changed model no longer fits or no longer agrees."""

    def _core(self, **changes: Any) -> nn.Module:
        return make_core(get_config("sensorium-sota").replace(hidden_channels=HIDDEN, **changes))

    @pytest.mark.parametrize(
        "changes",
        [{"hidden_kernel": 5}, {"input_kernel": 7}, {"layers": 3}, {"depth_separable": False}],
    )
    def test_other_architecture_does_not_load(self, changes: dict[str, Any]) -> None:
        theirs = kit_core("SE2dCore", "sensorium-sota", 1)
        with pytest.raises(RuntimeError, match="state_dict"):
            load_into_kit(self._core(**changes), theirs, "core.", "core.")

    def test_core_without_batchnorm_does_not_load(self) -> None:
        ours = Stacked2dCore(input_channels=1, hidden_channels=HIDDEN, batch_norm=False)
        with pytest.raises(RuntimeError, match="Missing key"):
            load_into_kit(ours, kit_core("SE2dCore", "sensorium-sota", 1), "core.", "core.")

    def test_one_changed_statistic_is_seen(self) -> None:
        ours = self._core()
        perturb(ours, seed=9)
        theirs = kit_core("SE2dCore", "sensorium-sota", 1)
        load_into_kit(ours, theirs, "core.", "core.")
        with torch.no_grad():
            theirs.features[-1].norm.running_var.mul_(1.01)
        ours.eval()
        theirs.eval()
        images = torch.randn(BATCH, 1, *IMAGE)
        with torch.no_grad(), pytest.raises(AssertionError):
            torch.testing.assert_close(ours(images), theirs(images))
