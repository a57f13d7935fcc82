"""The 2023 "GRU" baseline's core: a 2D core on every frame, then a convolutional GRU in time.

The kit's frame core is the rotation-equivariant one
(:class:`~sensorium_models.cores.rotation2d.RotationEquivariant2dCore`); any 2D core fits.
"""

from __future__ import annotations

import torch
from torch import nn

from sensorium_models.cores.base import Core, init_conv
from sensorium_models.cores.stacked2d import Stacked2dCore  # noqa: F401 (docs)

__all__ = ["ConvGRUCell", "GRUCore"]


class ConvGRUCell(nn.Module):
    """Convolutional GRU cell (Sinz et al. 2018, as in neuralpredictors' ``ConvGRUCell``).

    ``z = sigmoid(W_z * x + U_z * h)``, ``r = sigmoid(W_r * x + U_r * h)``,
    ``n = tanh(W_n * x + U_n * (r h))``, ``h' = (1 - z) h + z n``, every product a "same"
    padded convolution. The three input convolutions (and the two gate convolutions of the
    state) are computed as one convolution each, which is the same function.

    Parameters
    ----------
    input_channels, rec_channels : int
        Channels of the input and of the hidden state.
    input_kernel, rec_kernel : int
        Odd kernel sizes of the input and the recurrent convolutions.
    gamma_rec : float
        Weight of an L1 penalty on the recurrent convolutions' biases (0 in the kit).
    """

    def __init__(
        self,
        *,
        input_channels: int,
        rec_channels: int,
        input_kernel: int = 9,
        rec_kernel: int = 9,
        gamma_rec: float = 0.0,
    ):
        super().__init__()
        for name, kernel in (("input_kernel", input_kernel), ("rec_kernel", rec_kernel)):
            if kernel % 2 != 1:
                raise ValueError(f"{name} must be odd for 'same' padding, got {kernel}")
        self.rec_channels = rec_channels
        self.gamma_rec = gamma_rec
        self.input_gates = nn.Conv2d(
            input_channels, 3 * rec_channels, input_kernel, padding=input_kernel // 2
        )
        self.state_gates = nn.Conv2d(
            rec_channels, 2 * rec_channels, rec_kernel, padding=rec_kernel // 2
        )
        self.state_out = nn.Conv2d(rec_channels, rec_channels, rec_kernel, padding=rec_kernel // 2)
        self.apply(init_conv)

    def input_part(self, x: torch.Tensor) -> torch.Tensor:
        """The input convolutions of all three gates, ``(N, 3 * rec, H, W)``."""
        return self.input_gates(x)

    def step(self, gates_in: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """One time step from precomputed :meth:`input_part` and the previous state."""
        update_in, reset_in, out_in = gates_in.chunk(3, dim=1)
        update_h, reset_h = self.state_gates(state).chunk(2, dim=1)
        update = torch.sigmoid(update_in + update_h)
        reset = torch.sigmoid(reset_in + reset_h)
        candidate = torch.tanh(out_in + self.state_out(state * reset))
        return state * (1 - update) + candidate * update

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """One step: input ``(B, C, H, W)`` and state ``(B, rec, H, W)`` (zeros if None)."""
        if state is None:
            state = x.new_zeros(x.shape[0], self.rec_channels, *x.shape[-2:])
        return self.step(self.input_part(x), state)

    def regularizer(self) -> torch.Tensor:
        """``gamma_rec`` times the mean absolute bias of the recurrent convolutions."""
        biases = [c.bias for c in (self.state_gates, self.state_out) if c.bias is not None]
        return self.gamma_rec * torch.cat(biases).abs().mean()


class GRUCore(Core):
    """A per-frame 2D core, then a :class:`ConvGRUCell` over time.

    Frames are folded into the batch for the 2D core, so its BatchNorm pools over batch and
    time. The GRU starts from a zero state at the first frame and returns its state at every
    frame: ``T_out = T``.

    Parameters
    ----------
    frame_core : Core
        The 2D core applied to every frame (:class:`Stacked2dCore` or
        :class:`~sensorium_models.cores.rotation2d.RotationEquivariant2dCore`).
    rec_channels : int
        Channels of the GRU state (the output channels).
    rec_input_kernel, rec_kernel : int
        GRU input and recurrent kernel sizes.
    gamma_rec : float
        Weight of the GRU's bias penalty.
    """

    def __init__(
        self,
        *,
        frame_core: Core,
        rec_channels: int = 64,
        rec_input_kernel: int = 9,
        rec_kernel: int = 9,
        gamma_rec: float = 0.0,
    ):
        super().__init__()
        self.frame_core = frame_core
        self.gru = ConvGRUCell(
            input_channels=frame_core.out_channels,
            rec_channels=rec_channels,
            input_kernel=rec_input_kernel,
            rec_kernel=rec_kernel,
            gamma_rec=gamma_rec,
        )

    @property
    def out_channels(self) -> int:
        """Channels of the GRU state."""
        return self.gru.rec_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map videos ``(B, C, T, H, W)`` to features ``(B, rec, T, H', W')``."""
        if x.ndim != 5:
            raise ValueError(f"GRUCore expects (B, C, T, H, W), got {tuple(x.shape)}")
        batch, channels, frames = x.shape[:3]
        flat = x.transpose(1, 2).reshape(batch * frames, channels, *x.shape[-2:])
        gates = self.gru.input_part(self.frame_core(flat))
        gates = gates.reshape(batch, frames, *gates.shape[1:])
        state = gates.new_zeros(batch, self.gru.rec_channels, *gates.shape[-2:])
        states = []
        for t in range(frames):
            state = self.gru.step(gates[:, t], state)
            states.append(state)
        return torch.stack(states, dim=2)

    def regularizer(self) -> torch.Tensor:
        """The frame core's penalty plus the GRU's."""
        return self.frame_core.regularizer() + self.gru.regularizer()
