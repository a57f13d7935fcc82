"""The 2023 GRU baseline's rotation-equivariant frame core computes what the kit's computes.

The 2023 kit (``ecker-lab/sensorium_2023``, ``notebooks/benchmarks_training.ipynb``) builds
neuralpredictors' ``RotationEquivariant2dCore`` with 8 rotations x 8 channels, kernels 9 and 7,
4 layers, batch norm (momentum 0.9), no final nonlinearity, gamma_input 500 and gamma_hidden
500000. Our :class:`RotationEquivariant2dCore` gets random weights, which are copied into
neuralpredictors 0.3.0's core (the same parameter names; its Hermite basis and rotation
matrices, which we compute as constants, are compared instead); then outputs in eval and train
mode, BatchNorm statistics, the regulariser and gradients must agree.

Two faults of neuralpredictors 0.3.0 are worked around here, both fixed in its later versions:
``hermite_2d`` passes floats to ``math.factorial``, which Python 3.10 and later refuse (a
``math`` whose ``factorial`` takes whole floats stands in while the kit's core is built), and
its ``laplace`` reads ``features[0].conv``, a layer the core names ``hermite_conv`` (the
regulariser is computed as the kit's later versions compute it, from the kit's own kernels).
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterator

import pytest
import torch
from test_kit_equivalence import _import_kit, kit_warnings_ignored, perturb
from torch import nn

from sensorium_models.configs import get_config
from sensorium_models.cores import RotationEquivariant2dCore
from sensorium_models.encoders import make_core
from sensorium_models.regularizers import LAPLACE_2D

_import_kit()  # neuralpredictors 0.3.0 imports on Python 3.11 only through its shims

pytestmark = pytest.mark.usefixtures("one_thread")

FRAMES = (36, 64)  # the 2023 videos
BATCH = 4
#: The kit's ``equivar_2D_core_dict`` (without ``final_batchnorm_scale``, which 0.3.0 does
#: not take: it is its default behaviour, an affine BatchNorm after the last layer too).
KIT_CORE = {
    "input_channels": 3,
    "hidden_channels": 8,
    "input_kern": 9,
    "hidden_kern": 7,
    "layers": 4,
    "num_rotations": 8,
    "gamma_input": 500,
    "skip": 0,
    "pad_input": False,
    "final_nonlinearity": False,
    "bias": True,
    "momentum": 0.9,
    "batch_norm": True,
    "hidden_dilation": 1,
    "laplace_padding": None,
    "input_regularizer": "LaplaceL2norm",
    "stack": -1,
    "depth_separable": False,
    "linear": False,
    "attention_conv": False,
    "hidden_padding": None,
    "use_avg_reg": False,
    "gamma_hidden": 500_000,
}
KIT_CONSTANTS = ("rotate_hermite.H", "rotate_hermite.Rs.")


@pytest.fixture(autouse=True)
def _seeded() -> Iterator[None]:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield


def kit_core(**changes: object) -> nn.Module:
    """neuralpredictors 0.3.0's ``RotationEquivariant2dCore`` as the 2023 kit configures it."""
    from neuralpredictors.layers import hermite
    from neuralpredictors.layers.cores import RotationEquivariant2dCore as KitCore

    whole = types.SimpleNamespace(**{n: getattr(math, n) for n in dir(math) if n[0] != "_"})
    whole.factorial = lambda x: math.factorial(int(x))
    saved, hermite.math = hermite.math, whole
    try:
        with kit_warnings_ignored():
            return KitCore(**{**KIT_CORE, **changes})
    finally:
        hermite.math = saved


def ours_for(**changes: object) -> RotationEquivariant2dCore:
    c = {**KIT_CORE, **changes}
    return RotationEquivariant2dCore(
        input_channels=int(c["input_channels"]),
        hidden_channels=int(c["hidden_channels"]),
        input_kernel=int(c["input_kern"]),
        hidden_kernel=int(c["hidden_kern"]),
        layers=int(c["layers"]),
        num_rotations=int(c["num_rotations"]),
        gamma_input=float(c["gamma_input"]),
        gamma_hidden=float(c["gamma_hidden"]),
        momentum=float(c["momentum"]),
        pad_input=bool(c["pad_input"]),
    )


def load_into_kit(ours: nn.Module, theirs: nn.Module) -> None:
    """Copy our state into the kit's core, strictly; its Hermite basis and rotation matrices
    (constants we compute, not state) must equal ours and are kept."""
    state = dict(ours.state_dict())
    buffers = dict(ours.named_buffers())
    for key, value in theirs.state_dict().items():
        if ".rotate_hermite.H" in key:
            mine = buffers[key.replace("rotate_hermite.H", "basis")]
            torch.testing.assert_close(mine, value, rtol=0, atol=1e-6)
            state[key] = value
        elif key == "_input_weights_regularizer.laplace.filter":  # as in the 2022 test
            torch.testing.assert_close(value, torch.tensor(LAPLACE_2D)[None, None], rtol=0, atol=0)
            state[key] = value
        elif ".rotate_hermite.Rs." in key:
            conv, index = key.split(".rotate_hermite.Rs.")
            torch.testing.assert_close(buffers[f"{conv}.rotations"][int(index)], value)
            state[key] = value
    theirs.load_state_dict(state, strict=True)


def kit_regularizer(theirs: nn.Module) -> torch.Tensor:
    """The kit's regulariser as neuralpredictors computes it after 0.3.0 (``hermite_conv``)."""
    weights = [layer.hermite_conv.weights_all_rotations for layer in theirs.features]
    # contiguous: 0.3.0's LaplaceL2norm views the (permuted) kernels, which torch refuses
    laplace = theirs._input_weights_regularizer(weights[0].contiguous(), avg=theirs.use_avg_reg)
    sparsity = sum(
        w.pow(2).sum(3, keepdim=True).sum(2, keepdim=True).sqrt().mean() for w in weights[1:]
    )
    return theirs.gamma_hidden * sparsity / (len(weights) - 1) + theirs.gamma_input * laplace


class TestRotationEquivariantCore:
    def test_outputs_statistics_regulariser_and_gradients(self) -> None:
        ours = ours_for()
        perturb(ours, seed=1)
        theirs = kit_core()
        load_into_kit(ours, theirs)
        frames = torch.randn(BATCH, 3, *FRAMES)

        ours.eval()
        theirs.eval()
        with torch.no_grad():
            out = ours(frames)
            torch.testing.assert_close(out, theirs(frames))
        assert out.shape == (BATCH, 64, FRAMES[0] - 8, FRAMES[1] - 8)
        assert (out < 0).any()  # no final nonlinearity: an ELU would keep it above -1 only

        ours.train()
        theirs.train()
        mine, kits = ours(frames), theirs(frames)
        torch.testing.assert_close(mine, kits)
        kit_state = theirs.state_dict()
        for key, value in ours.state_dict().items():  # running statistics moved alike
            torch.testing.assert_close(value, kit_state[key], msg=lambda m, k=key: f"{k}: {m}")
        reg = ours.regularizer()
        torch.testing.assert_close(reg, kit_regularizer(theirs), rtol=1e-5, atol=0)
        assert reg.item() > 0

        (mine.square().mean() + 1e-6 * reg).backward()
        (kits.square().mean() + 1e-6 * kit_regularizer(theirs)).backward()
        kit_params = dict(theirs.named_parameters())
        for key, param in ours.named_parameters():
            torch.testing.assert_close(
                param.grad,
                kit_params[key].grad,
                rtol=1e-4,
                atol=1e-6,
                msg=lambda m, k=key: f"grad of {k}: {m}",
            )

    def test_one_changed_coefficient_is_seen(self) -> None:
        ours = ours_for(layers=2)
        perturb(ours, seed=2)
        theirs = kit_core(layers=2)
        load_into_kit(ours, theirs)
        with torch.no_grad():
            theirs.features[1].hermite_conv.coeffs[3, 5, 1] += 0.05
        ours.eval()
        theirs.eval()
        frames = torch.randn(2, 3, *FRAMES)
        with torch.no_grad(), pytest.raises(AssertionError):
            torch.testing.assert_close(ours(frames), theirs(frames))

    def test_rotating_the_input_rotates_the_features(self) -> None:
        """Equivariance itself: a quarter turn of the input is a quarter turn of every feature
        map and a shift of the rotation index by num_rotations / 4."""
        core = ours_for(hidden_channels=3, input_kern=5, hidden_kern=3, layers=3, pad_input=True)
        perturb(core, seed=3)
        core.eval()
        x = torch.randn(2, 3, 16, 16)
        with torch.no_grad():
            y, turned = core(x), core(torch.rot90(x, 1, dims=(2, 3)))
        b, c, h, w = y.shape
        expected = torch.rot90(y, 1, dims=(2, 3)).view(b, 8, 3, h, w).roll(2, dims=1)
        torch.testing.assert_close(turned, expected.reshape(b, c, h, w), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(turned, torch.rot90(y, 1, dims=(2, 3)), atol=1e-2)


def test_video_gru_is_the_kits_configuration() -> None:
    config = get_config("video-gru")
    core = make_core(config)
    frame = core.frame_core
    assert isinstance(frame, RotationEquivariant2dCore)
    assert (frame.hidden_channels, frame.num_rotations, frame.out_channels) == (8, 8, 64)
    assert (frame.gamma_input, frame.gamma_hidden) == (500.0, 500_000.0)
    assert core.gru.rec_channels == 64
    ours = ours_for()
    assert [tuple(v.shape) for v in frame.state_dict().values()] == [
        tuple(v.shape) for v in ours.state_dict().values()
    ]
    plain = make_core(get_config("video-gru-plain"))
    assert not isinstance(plain.frame_core, RotationEquivariant2dCore)


def test_a_video_gru_checkpoint_from_before_the_rotation_core_loads_plain() -> None:
    """Its config has no ``num_rotations``: the default (0) is the plain core it was made with."""
    from sensorium_models.configs import ModelConfig, MouseInfo, build_model

    mice = {"m": MouseInfo(n_neurons=4, coordinates=None, kind="dynamic")}
    old = get_config("video-gru-plain").replace(name="video-gru", hidden_channels=4).to_dict()
    del old["num_rotations"], old["gamma_hidden"]
    before = build_model(ModelConfig.from_dict(old), mice)
    assert not isinstance(before.core.frame_core, RotationEquivariant2dCore)
    again = build_model(ModelConfig.from_dict(old), mice)
    again.load_state_dict(before.state_dict(), strict=True)
