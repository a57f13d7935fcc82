"""Encoders: a shared core, one readout (and shifter) per mouse, positive firing rates out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from sensorium_models.configs import ModelConfig, ModelInputError, MouseInfo, UnknownMouseError
from sensorium_models.cores import (
    Core,
    Factorised3dCore,
    GRUCore,
    RotationEquivariant2dCore,
    Stacked2dCore,
)
from sensorium_models.modulators import BehaviorModulator
from sensorium_models.readouts import FullGaussian2d, VideoGaussianReadout
from sensorium_models.shifters import MLPShifter

__all__ = ["Encoder", "FiringRateEncoder", "VideoEncoder", "make_core", "make_encoder"]

Readout = FullGaussian2d | VideoGaussianReadout


class Encoder(nn.Module):
    """What the static and the video encoder share: mice, regularisers, input checks.

    Parameters
    ----------
    core : Core
        The shared core.
    readouts : mapping of str to nn.Module
        One readout per mouse (the keys are the mice).
    shifters : mapping of str to MLPShifter or None
        One shifter per mouse, or None for no shifter.
    config : ModelConfig
        The config the model was built from (kept as ``model.config``).
    mice : mapping of str to MouseInfo
        The mice (kept as ``model.mice``).
    modulators : mapping of str to BehaviorModulator or None
        One behaviour modulator per mouse (static models), or None for none.
    """

    def __init__(
        self,
        *,
        core: Core,
        readouts: Mapping[str, Readout],
        shifters: Mapping[str, MLPShifter] | None,
        config: ModelConfig,
        mice: Mapping[str, MouseInfo],
        modulators: Mapping[str, BehaviorModulator] | None = None,
    ):
        super().__init__()
        for label, per_mouse in (
            ("readouts", readouts),
            ("shifters", shifters),
            ("modulators", modulators),
        ):
            if per_mouse is not None and set(per_mouse) != set(mice):
                raise ValueError(
                    f"{label} must have exactly one entry per mouse: mice {sorted(mice)}, "
                    f"{label} {sorted(per_mouse)}"
                )
        if modulators is not None and config.kind != "static":
            raise ValueError("modulators: only static (2022) encoders take a behaviour modulator")
        self.core = core
        self.readouts = nn.ModuleDict(dict(readouts))
        self.shifters = nn.ModuleDict(dict(shifters)) if shifters is not None else None
        self.modulators = nn.ModuleDict(dict(modulators)) if modulators is not None else None
        self.config = config
        self.mice = dict(mice)

    def frames_out(self, frames: int) -> int:
        """Output frames for a ``frames``-frame input (static models: ``frames``)."""
        return self.core.frames_out(frames)

    def regularizer(self, mouse: str) -> torch.Tensor:
        """Scalar penalty: the core's plus ``mouse``'s readout (and shifter, modulator)."""
        reg = self.core.regularizer() + self.readout(mouse).regularizer()
        if self.shifters is not None:
            reg = reg + cast(MLPShifter, self.shifters[mouse]).regularizer()
        if self.modulators is not None:
            reg = reg + cast(BehaviorModulator, self.modulators[mouse]).regularizer()
        return reg

    def readout(self, mouse: str) -> Readout:
        """``mouse``'s readout; :class:`UnknownMouseError` names the known mice."""
        if mouse not in self.readouts:
            raise UnknownMouseError(
                f"model {self.config.name!r} has no readout for mouse {mouse!r}; "
                f"its mice are {sorted(self.readouts)}"
            )
        return cast(Readout, self.readouts[mouse])

    def _stimulus(
        self, inputs: torch.Tensor, behavior: torch.Tensor | None, pupil: torch.Tensor | None
    ) -> torch.Tensor:
        """``inputs`` with behaviour (then pupil) channels appended if the core needs them.

        The loaders append these channels themselves (``include_behavior``); this covers
        batches that come without them, in the loaders' order: stimulus, behaviour, pupil.
        """
        ndim = 4 if self.config.kind == "static" else 5
        if inputs.ndim != ndim:
            layout = "(B, C, H, W)" if ndim == 4 else "(B, C, T, H, W)"
            raise ModelInputError(
                f"model {self.config.name!r} expects {layout} inputs, got {tuple(inputs.shape)}"
            )
        want, have = self.config.input_channels, inputs.shape[1]
        if have == want:
            return inputs
        for extras in ((behavior,), (behavior, pupil)):
            if all(e is not None for e in extras):
                parts = [_constant_channels(e, inputs) for e in extras if e is not None]
                if have + sum(p.shape[1] for p in parts) == want:
                    return torch.cat([inputs, *parts], dim=1)
        raise ModelInputError(
            f"model {self.config.name!r} expects {want} input channels, got {have} (and "
            f"behaviour/pupil of {_channels(behavior)}/{_channels(pupil)} channels to append); "
            "load the data with the matching include_behavior/include_pupil, or pass behavior="
        )

    def _shift(self, mouse: str, pupil: torch.Tensor | None) -> torch.Tensor | None:
        if self.shifters is None:
            return None
        if pupil is None:
            raise ModelInputError(
                f"model {self.config.name!r} has a shifter: pass pupil_center= to forward"
            )
        return self.shifters[mouse](pupil)

    def _gain(self, mouse: str, behavior: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if self.modulators is None:
            return None
        if behavior is None:
            raise ModelInputError(
                f"model {self.config.name!r} has a behaviour modulator: pass behavior= to forward"
            )
        modulator = cast(BehaviorModulator, self.modulators[mouse])
        if behavior.shape != (batch, modulator.input_features):
            raise ModelInputError(
                f"behavior must be ({batch}, {modulator.input_features}), got "
                f"{tuple(behavior.shape)}"
            )
        return modulator(behavior)

    def _rates(self, drive: torch.Tensor) -> torch.Tensor:
        return F.elu(drive + self.config.elu_offset) + 1.0


class FiringRateEncoder(Encoder):
    """2022 model: ``ELU(readout(core(images), shifter(pupil_center))) + 1``, shape ``(B, N)``,
    times ``modulator(behavior)`` with a behaviour modulator."""

    def forward(
        self,
        inputs: torch.Tensor,
        *,
        mouse: str,
        pupil_center: torch.Tensor | None = None,
        behavior: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Positive rates ``(B, N)`` of ``mouse``'s neurons.

        Parameters
        ----------
        inputs : torch.Tensor
            Images ``(B, C, H, W)``, with behaviour channels if the config wants them.
        mouse : str
            Which readout to use.
        pupil_center : torch.Tensor or None
            ``(B, 2)``; required with a shifter.
        behavior : torch.Tensor or None
            ``(B, 3)``; appended as constant channels when ``inputs`` lacks them, and fed
            to the modulator (required with one).
        """
        readout = self.readout(mouse)
        x = self._stimulus(inputs, behavior, pupil_center)
        gain = self._gain(mouse, behavior, x.shape[0])
        if (
            pupil_center is not None
            and self.shifters is not None
            and pupil_center.shape != (x.shape[0], 2)
        ):
            raise ModelInputError(
                f"pupil_center must be ({x.shape[0]}, 2), got {tuple(pupil_center.shape)}"
            )
        shift = self._shift(mouse, pupil_center)
        rates = self._rates(readout(self.core(x), shift=shift))
        return rates if gain is None else rates * gain


class VideoEncoder(Encoder):
    """2023 model: core, per-frame readout and shifter, ``ELU + 1``; shape ``(B, T_out, N)``.

    Output frame ``i`` belongs to input frame ``T - T_out + i``: the output is aligned with
    the last ``T_out = frames_out(T)`` input frames (compare it with
    ``responses[:, :, -T_out:]``).
    """

    def forward(
        self,
        inputs: torch.Tensor,
        *,
        mouse: str,
        pupil_center: torch.Tensor | None = None,
        behavior: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Positive rates ``(B, T_out, N)`` of ``mouse``'s neurons.

        Parameters
        ----------
        inputs : torch.Tensor
            Videos ``(B, C, T, H, W)``, with behaviour channels if the config wants them.
        mouse : str
            Which readout to use.
        pupil_center : torch.Tensor or None
            ``(B, 2, T)``; required with a shifter (its last ``T_out`` frames are used).
        behavior : torch.Tensor or None
            ``(B, 2, T)``; appended as constant channels when ``inputs`` lacks them.
        """
        readout = self.readout(mouse)
        x = self._stimulus(inputs, behavior, pupil_center)
        batch, frames = x.shape[0], x.shape[2]
        frames_out = self.frames_out(frames)
        if frames_out < 1:
            raise ModelInputError(
                f"model {self.config.name!r} needs more than {frames - frames_out} frames, "
                f"got {frames}"
            )
        pupil = None
        if pupil_center is not None and self.shifters is not None:
            if pupil_center.shape != (batch, 2, frames):
                raise ModelInputError(
                    f"pupil_center must be ({batch}, 2, {frames}), got {tuple(pupil_center.shape)}"
                )
            pupil = pupil_center[:, :, frames - frames_out :].transpose(1, 2)
        shift = self._shift(mouse, pupil)
        return self._rates(readout(self.core(x), shift=shift))


def _constant_channels(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(B, k)`` or ``(B, k, T)`` values broadcast to channels of ``like``'s image size."""
    if values.ndim == 2 and like.ndim == 4:
        shaped = values[:, :, None, None]
    elif values.ndim == 3 and like.ndim == 5 and values.shape[2] == like.shape[2]:
        shaped = values[:, :, :, None, None]
    else:
        raise ModelInputError(
            f"behaviour/pupil of shape {tuple(values.shape)} does not fit inputs "
            f"{tuple(like.shape)}: give (B, k) for images, (B, k, T) for videos"
        )
    if values.shape[0] != like.shape[0]:
        raise ModelInputError(
            f"batch sizes differ: inputs {like.shape[0]}, extra {values.shape[0]}"
        )
    return shaped.expand(*values.shape, *like.shape[-2:]).to(like.dtype)


def _channels(values: torch.Tensor | None) -> int:
    return 0 if values is None else int(values.shape[1])


def make_core(config: ModelConfig) -> Core:
    """The core of ``config`` (see :class:`~sensorium_models.configs.ModelConfig`)."""
    if config.core == "factorised3d":
        return Factorised3dCore(
            input_channels=config.input_channels,
            hidden_channels=config.layer_channels,
            spatial_input_kernel=config.input_kernel,
            temporal_input_kernel=config.temporal_input_kernel,
            spatial_hidden_kernel=config.hidden_kernel,
            temporal_hidden_kernel=config.temporal_hidden_kernel,
            gamma_input_spatial=config.gamma_input,
            gamma_input_temporal=config.gamma_input_temporal,
            spatial_padding=config.spatial_padding,
            momentum=config.momentum,
        )
    frame: Core
    if config.core == "gru" and config.num_rotations:
        frame = RotationEquivariant2dCore(
            input_channels=config.input_channels,
            hidden_channels=config.layer_channels[0],
            input_kernel=config.input_kernel,
            hidden_kernel=config.hidden_kernel,
            layers=config.layers,
            num_rotations=config.num_rotations,
            gamma_input=config.gamma_input,
            gamma_hidden=config.gamma_hidden,
            momentum=config.momentum,
            pad_input=config.spatial_padding,
        )
        return _gru(config, frame)
    stacked = Stacked2dCore(
        input_channels=config.input_channels,
        hidden_channels=config.layer_channels[0],
        input_kernel=config.input_kernel,
        hidden_kernel=config.hidden_kernel,
        layers=config.layers,
        gamma_input=config.gamma_input,
        depth_separable=config.depth_separable,
        linear=config.linear,
        pad_input=config.spatial_padding,
        momentum=config.momentum,
        bias=config.core_bias,
    )
    if config.core == "stacked2d":
        return stacked
    return _gru(config, stacked)


def _gru(config: ModelConfig, frame: Core) -> GRUCore:
    return GRUCore(
        frame_core=frame,
        rec_channels=config.rec_channels,
        rec_input_kernel=config.rec_input_kernel,
        rec_kernel=config.rec_kernel,
        gamma_rec=config.gamma_rec,
    )


def make_encoder(config: ModelConfig, mice: Mapping[str, MouseInfo]) -> Encoder:
    """Assemble core, readouts and shifters (unchecked: use ``build_model``)."""
    core = make_core(config)
    readout_cls = FullGaussian2d if config.kind == "static" else VideoGaussianReadout
    readouts = {
        mouse: readout_cls(
            in_channels=core.out_channels,
            n_neurons=int(info.n_neurons),
            coordinates=info.coordinates if config.grid_mean_predictor else None,
            init_mu_range=config.init_mu_range,
            init_sigma=config.init_sigma,
            bias=config.readout_bias,
            gamma_readout=config.gamma_readout,
            grid_hidden_features=config.grid_hidden_features,
        )
        for mouse, info in mice.items()
    }
    shifters = None
    if config.use_shifter:
        shifters = {
            mouse: MLPShifter(
                hidden_features=config.shifter_hidden,
                layers=config.shifter_layers,
                gamma_shifter=config.gamma_shifter,
            )
            for mouse in mice
        }
    modulators = None
    if config.behavior_modulator:
        modulators = {
            mouse: BehaviorModulator(
                n_neurons=int(info.n_neurons),
                hidden_features=config.modulator_hidden,
                layers=config.modulator_layers,
                gamma_modulator=config.gamma_modulator,
            )
            for mouse, info in mice.items()
        }
    encoder_cls = FiringRateEncoder if config.kind == "static" else VideoEncoder
    return encoder_cls(
        core=core,
        readouts=readouts,
        shifters=shifters,
        config=config,
        mice=mice,
        modulators=modulators,
    )
