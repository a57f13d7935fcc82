"""Model configurations of the SENSORIUM baselines, and :func:`build_model`.

A :class:`ModelConfig` is a frozen, JSON-serialisable record of every hyper-parameter, so a
checkpoint that stores ``config.to_dict()`` and the :class:`MouseInfo` of its mice can rebuild
its model. ``import sensorium_models.configs`` does not import torch; :func:`build_model` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from sensorium_models.errors import ModelConfigError, ModelInputError, UnknownMouseError

if TYPE_CHECKING:
    from sensorium_models.encoders import Encoder

__all__ = [
    "CORE_KINDS",
    "NAMED_CONFIGS",
    "ModelConfig",
    "ModelConfigError",
    "ModelInputError",
    "MouseInfo",
    "UnknownMouseError",
    "build_model",
    "get_config",
]

#: The data kind each core is built for.
CORE_KINDS = MappingProxyType({"stacked2d": "static", "factorised3d": "dynamic", "gru": "dynamic"})
KINDS = ("static", "dynamic")


@dataclasses.dataclass(frozen=True, eq=False)
class MouseInfo:
    """What a model needs to know about one mouse.

    Attributes
    ----------
    n_neurons : int
        Neurons recorded (the readout's output size).
    coordinates : numpy.ndarray or None
        ``(n_neurons, 3)`` ``cell_motor_coordinates`` (only ``[:, :2]`` is used), or None to
        learn the readout positions freely.
    kind : str
        ``"static"`` (2022 images) or ``"dynamic"`` (2023 videos).
    """

    n_neurons: int
    coordinates: np.ndarray | None
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ModelConfigError(f"MouseInfo.kind must be one of {KINDS}, got {self.kind!r}")
        if int(self.n_neurons) < 1:
            raise ModelConfigError(f"MouseInfo.n_neurons must be >= 1, got {self.n_neurons}")
        if self.coordinates is not None:
            coords = np.asarray(self.coordinates)
            if coords.ndim != 2 or coords.shape[0] != self.n_neurons or coords.shape[1] < 2:
                raise ModelConfigError(
                    f"MouseInfo.coordinates must be ({self.n_neurons}, 3), got {coords.shape}"
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (coordinates as nested lists), e.g. for a checkpoint."""
        coords = None if self.coordinates is None else np.asarray(self.coordinates).tolist()
        return {"n_neurons": int(self.n_neurons), "coordinates": coords, "kind": self.kind}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MouseInfo:
        """Inverse of :meth:`to_dict`."""
        coords = data.get("coordinates")
        return cls(
            n_neurons=int(data["n_neurons"]),
            coordinates=None if coords is None else np.asarray(coords, dtype=np.float64),
            kind=str(data["kind"]),
        )

    @classmethod
    def from_dataset(cls, dataset: Any) -> MouseInfo:
        """The info of one mouse opened with :func:`sensorium_data.open_mouse`.

        Parameters
        ----------
        dataset : xarray.Dataset
            Holds ``images`` (static) or ``videos`` (dynamic), a ``neuron`` dimension and,
            usually, ``cell_motor_coordinates`` along ``neuron``.
        """
        if "videos" in dataset.variables:
            kind = "dynamic"
        elif "images" in dataset.variables:
            kind = "static"
        else:
            raise ModelConfigError("the dataset holds neither 'images' nor 'videos'")
        coords = None
        if "cell_motor_coordinates" in dataset.variables:
            coords = np.asarray(dataset["cell_motor_coordinates"].values, dtype=np.float64)
        return cls(n_neurons=int(dataset.sizes["neuron"]), coordinates=coords, kind=kind)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Every hyper-parameter of one model. The defaults are the 2022 ``sensorium-sota``.

    Attributes
    ----------
    name : str
        Label (the :data:`NAMED_CONFIGS` key it came from, or your own).
    kind : str
        ``"static"`` or ``"dynamic"``; must match ``core`` (see :data:`CORE_KINDS`).
    core : str
        ``"stacked2d"`` (2022), ``"factorised3d"`` or ``"gru"`` (2023).
    input_channels : int
        Stimulus channels: 1, 4 with 2022 behaviour (6 with pupil), 3 with 2023 behaviour.
    hidden_channels : int or tuple of int
        Channels of every core layer (stacked2d, the GRU's frame core), or per layer
        (factorised3d: a tuple of ``layers`` values, or one int for all).
    layers : int
        Core layers, the first included.
    input_kernel, hidden_kernel : int
        Spatial kernel sizes of the first and later layers (``hidden_kernel`` odd for 2D).
    depth_separable : bool
        Depth-separable later layers (stacked2d and the GRU's frame core).
    linear : bool
        No nonlinearities in the stacked2d core (the LN baselines).
    num_rotations : int
        GRU: 0 for a :class:`~sensorium_models.cores.stacked2d.Stacked2dCore` on each frame;
        otherwise the kit's rotation-equivariant Hermite core with this many angles per
        feature (``hidden_channels`` features per layer, so ``hidden_channels *
        num_rotations`` channels; ``depth_separable`` and ``linear`` do not apply).
    gamma_hidden : float
        Rotation-equivariant core: weight of the group-sparsity penalty of the later layers.
    core_bias : bool
        Biases in the stacked2d core's later convolutions although BatchNorm follows them (the 2022
        kit's ``core_bias``: False until its commit a31226d, 2024-03, and in its published
        checkpoints; True since).
    spatial_padding : bool
        stacked2d / GRU frame core: pad the first layer (later ones are always "same");
        factorised3d: pad every spatial convolution. The kits do not pad.
    momentum : float
        BatchNorm momentum.
    gamma_input : float
        Weight of the Laplace smoothness penalty of the first layer's spatial kernels.
    temporal_input_kernel, temporal_hidden_kernel : int
        factorised3d: temporal kernel sizes (no temporal padding).
    gamma_input_temporal : float
        factorised3d: weight of the temporal smoothness penalty of the first layer.
    rec_channels, rec_input_kernel, rec_kernel, gamma_rec
        GRU: state channels, kernel sizes, bias-penalty weight.
    readout_bias : bool
        Bias per neuron in the readout.
    init_mu_range, init_sigma : float
        Readout initialisation (free means in ``U(-r, r)``; ``Sigma`` entries in
        ``U(-s, s)``).
    gamma_readout : float
        Weight of the readout's L1 penalty of the feature weights.
    grid_mean_predictor : bool
        Predict the readout means from the mice's ``cell_motor_coordinates`` (when a mouse
        has them) by an MLP ``2 -> grid_hidden_features -> 2``.
    grid_hidden_features : int
        Hidden units of that MLP.
    use_shifter : bool
        One :class:`~sensorium_models.shifters.MLPShifter` per mouse, fed ``pupil_center``.
    shifter_hidden, shifter_layers : int
        Shifter MLP width and number of linear layers (``2 -> 5 -> 5 -> 2``).
    gamma_shifter : float
        Weight of the shifter's L2 weight penalty (0 in the kits).
    behavior_modulator : bool
        2022 only: one :class:`~sensorium_models.modulators.BehaviorModulator` per mouse,
        fed the behaviour, that multiplies each neuron's rate by a learned gain (not in the
        kits; see ``sensorium-plus-modulator``).
    modulator_hidden, modulator_layers : int
        Modulator MLP width and number of linear layers (``3 -> 10 -> N``).
    gamma_modulator : float
        Weight of the modulator's L2 weight penalty.
    elu_offset : float
        Output ``ELU(drive + elu_offset) + 1``.

    Notes
    -----
    A checkpoint stores its config; one written before a field existed resumes and loads with
    that field's default. A new field must therefore default to what the models did before it.
    """

    name: str
    kind: str = "static"
    core: str = "stacked2d"
    input_channels: int = 1
    hidden_channels: int | tuple[int, ...] = 64
    layers: int = 4
    input_kernel: int = 9
    hidden_kernel: int = 7
    depth_separable: bool = True
    linear: bool = False
    core_bias: bool = False
    num_rotations: int = 0
    gamma_hidden: float = 0.0
    spatial_padding: bool = False
    momentum: float = 0.9
    gamma_input: float = 6.3831
    temporal_input_kernel: int = 11
    temporal_hidden_kernel: int = 5
    gamma_input_temporal: float = 0.01
    rec_channels: int = 64
    rec_input_kernel: int = 9
    rec_kernel: int = 9
    gamma_rec: float = 0.0
    readout_bias: bool = True
    init_mu_range: float = 0.3
    init_sigma: float = 0.1
    gamma_readout: float = 0.0076
    grid_mean_predictor: bool = True
    grid_hidden_features: int = 30
    use_shifter: bool = False
    shifter_hidden: int = 5
    shifter_layers: int = 3
    gamma_shifter: float = 0.0
    behavior_modulator: bool = False
    modulator_hidden: int = 10
    modulator_layers: int = 2
    gamma_modulator: float = 0.0
    elu_offset: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.hidden_channels, list):  # JSON gives lists
            object.__setattr__(self, "hidden_channels", tuple(self.hidden_channels))
        _check_config(self)

    @property
    def layer_channels(self) -> tuple[int, ...]:
        """Channels of each core layer (``hidden_channels`` broadcast to ``layers``)."""
        if isinstance(self.hidden_channels, tuple):
            return self.hidden_channels
        return (self.hidden_channels,) * self.layers

    def frames_out(self, frames: int) -> int:
        """Output frames of this model for a ``frames``-frame input (static: ``frames``)."""
        if self.core != "factorised3d":
            return frames
        return (
            frames
            - (self.temporal_input_kernel - 1)
            - (self.layers - 1) * (self.temporal_hidden_kernel - 1)
        )

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with ``changes``; unknown fields raise :class:`ModelConfigError`."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ModelConfigError(
                f"unknown ModelConfig field(s) {unknown}; valid fields: {_field_names()}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples as lists)."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Rebuild a config from :meth:`to_dict` output (e.g. read back from JSON)."""
        unknown = sorted(set(data) - set(_field_names()))
        if unknown:
            raise ModelConfigError(
                f"unknown ModelConfig field(s) {unknown}; valid fields: {_field_names()}"
            )
        if "name" not in data:
            raise ModelConfigError("a ModelConfig dict needs a 'name'")
        return cls(**dict(data))


def _field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(ModelConfig)]


def _check_config(config: ModelConfig) -> None:
    """Raise :class:`ModelConfigError` naming the first field out of range."""
    if config.kind not in KINDS:
        raise ModelConfigError(f"kind must be one of {KINDS}, got {config.kind!r}")
    if config.core not in CORE_KINDS:
        raise ModelConfigError(f"core must be one of {sorted(CORE_KINDS)}, got {config.core!r}")
    if CORE_KINDS[config.core] != config.kind:
        raise ModelConfigError(
            f"core {config.core!r} is for {CORE_KINDS[config.core]} data, but kind is "
            f"{config.kind!r}"
        )
    positive = [
        "input_channels",
        "layers",
        "input_kernel",
        "hidden_kernel",
        "temporal_input_kernel",
        "temporal_hidden_kernel",
        "rec_channels",
        "rec_input_kernel",
        "rec_kernel",
        "grid_hidden_features",
        "shifter_hidden",
        "shifter_layers",
        "modulator_hidden",
        "modulator_layers",
    ]
    for name in positive:
        if int(getattr(config, name)) < 1:
            raise ModelConfigError(f"{name} must be >= 1, got {getattr(config, name)}")
    channels = config.hidden_channels
    if isinstance(channels, tuple):
        if config.core != "factorised3d":
            raise ModelConfigError(
                f"hidden_channels must be one int for core {config.core!r}, got {channels}"
            )
        if len(channels) != config.layers:
            raise ModelConfigError(
                f"hidden_channels {channels} gives {len(channels)} layers, but layers is "
                f"{config.layers}"
            )
    if min(config.layer_channels) < 1:
        raise ModelConfigError(f"hidden_channels must be >= 1, got {channels}")
    if config.core != "factorised3d" and config.hidden_kernel % 2 != 1:
        raise ModelConfigError(f"hidden_kernel must be odd, got {config.hidden_kernel}")
    if config.core == "gru" and (config.rec_input_kernel % 2 != 1 or config.rec_kernel % 2 != 1):
        raise ModelConfigError("rec_input_kernel and rec_kernel must be odd")
    if not 0.0 < config.init_mu_range <= 1.0:
        raise ModelConfigError(f"init_mu_range must be in (0, 1], got {config.init_mu_range}")
    if config.init_sigma <= 0.0:
        raise ModelConfigError(f"init_sigma must be positive, got {config.init_sigma}")
    if config.num_rotations < 0:
        raise ModelConfigError(f"num_rotations must be >= 0, got {config.num_rotations}")
    if config.num_rotations and config.core != "gru":
        raise ModelConfigError(
            f"num_rotations is for the GRU's frame core (core 'gru'), not core {config.core!r}"
        )
    for name in (
        "gamma_input",
        "gamma_input_temporal",
        "gamma_rec",
        "gamma_readout",
        "gamma_hidden",
    ):
        if getattr(config, name) < 0:
            raise ModelConfigError(f"{name} must be >= 0, got {getattr(config, name)}")
    for name in ("gamma_shifter", "gamma_modulator"):
        if getattr(config, name) < 0:
            raise ModelConfigError(f"{name} must be >= 0, got {getattr(config, name)}")
    if config.behavior_modulator and config.kind != "static":
        raise ModelConfigError(
            "behavior_modulator is for static (2022) models; the 2023 models take the "
            "behaviour as input channels"
        )


_SOTA = ModelConfig(name="sensorium-sota")
_LN = _SOTA.replace(name="sensorium-ln", linear=True, layers=3)
_VIDEO_READOUT: dict[str, Any] = {
    "kind": "dynamic",
    "input_channels": 3,
    "init_mu_range": 0.2,
    "init_sigma": 1.0,
    "gamma_readout": 0.0,
    "use_shifter": True,
}

#: The baselines by name: 2022 ``sensorium-*`` (``plus``: 3 behaviour channels and a shifter),
#: 2023 ``video-*`` (behaviour channels and a shifter; ``video-gru`` is the kit's GRU baseline
#: with its rotation-equivariant frame core, ``video-gru-plain`` the same with the 2022
#: stacked core on each frame). ``sensorium-plus-modulator`` is not a
#: kit's: the SOTA core sees only the images, a shifter moves the readout and the behaviour
#: scales each neuron's rate (:class:`~sensorium_models.modulators.BehaviorModulator`).
NAMED_CONFIGS: Mapping[str, ModelConfig] = MappingProxyType(
    {
        "sensorium-sota": _SOTA,
        "sensorium-ln": _LN,
        "sensorium-plus-sota": _SOTA.replace(
            name="sensorium-plus-sota", input_channels=4, use_shifter=True
        ),
        "sensorium-plus-ln": _LN.replace(
            name="sensorium-plus-ln", input_channels=4, use_shifter=True
        ),
        "sensorium-plus-modulator": _SOTA.replace(
            name="sensorium-plus-modulator", use_shifter=True, behavior_modulator=True
        ),
        "video-gru": _SOTA.replace(
            name="video-gru",
            core="gru",
            num_rotations=8,
            hidden_channels=8,
            depth_separable=False,
            gamma_input=500.0,
            gamma_hidden=500_000.0,
            **_VIDEO_READOUT,
        ),
        "video-gru-plain": _SOTA.replace(name="video-gru-plain", core="gru", **_VIDEO_READOUT),
        "video-factorised-3d": _SOTA.replace(
            name="video-factorised-3d",
            core="factorised3d",
            hidden_channels=(32, 64, 128),
            layers=3,
            input_kernel=11,
            hidden_kernel=5,
            momentum=0.7,
            gamma_input=10.0,
            **_VIDEO_READOUT,
        ),
    }
)


def get_config(name: str) -> ModelConfig:
    """The named baseline config; :class:`ModelConfigError` lists the names if unknown."""
    try:
        return NAMED_CONFIGS[name]
    except KeyError:
        raise ModelConfigError(
            f"unknown model config {name!r}; known configs: {sorted(NAMED_CONFIGS)}"
        ) from None


def build_model(
    config: ModelConfig | str,
    mice: Mapping[str, MouseInfo],
    *,
    input_channels: int | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Encoder:
    """Build the model of ``config`` with one readout (and shifter) per mouse.

    Parameters
    ----------
    config : ModelConfig or str
        A config, or a :data:`NAMED_CONFIGS` name.
    mice : mapping of str to MouseInfo
        The mice, by data key; their ``kind`` must match the config's.
    input_channels : int or None
        Replaces ``config.input_channels`` (e.g. from a loader's first batch).
    overrides : mapping or None
        Field replacements, applied after ``input_channels`` (e.g.
        ``{"hidden_channels": 8}`` for a small model).

    Returns
    -------
    Encoder
        :class:`~sensorium_models.encoders.FiringRateEncoder` (static) or
        :class:`~sensorium_models.encoders.VideoEncoder` (dynamic), with ``.config`` the
        final config.
    """
    if isinstance(config, str):
        config = get_config(config)
    elif not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig or a name, got {type(config).__name__}")
    if input_channels is not None:
        config = config.replace(input_channels=input_channels)
    if overrides:
        config = config.replace(**dict(overrides))
    _check_mice(mice, config)
    from sensorium_models.encoders import make_encoder

    return make_encoder(config, dict(mice))


def _check_mice(mice: Mapping[str, MouseInfo], config: ModelConfig) -> None:
    if not mice:
        raise ModelConfigError("build_model needs at least one mouse")
    for key, info in mice.items():
        if not isinstance(info, MouseInfo):
            raise TypeError(f"mice[{key!r}] must be a MouseInfo, got {type(info).__name__}")
        if not key or "." in key:
            raise ModelConfigError(f"mouse names must be non-empty and free of '.', got {key!r}")
        if info.kind != config.kind:
            raise ModelConfigError(
                f"mouse {key!r} holds {info.kind} data but config {config.name!r} is for "
                f"{config.kind} data"
            )
