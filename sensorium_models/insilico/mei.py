"""Most exciting inputs (Walker et al. 2019): gradient ascent on a model neuron's rate.

Each neuron's image starts from noise (one start per seed, brought to the contrast at once) and
climbs its rate: at every
step the image is shifted by a random jitter (not in the last fifth of the steps), the gradient
is blurred by a Gaussian whose width
shrinks over the steps (preconditioning that favours smooth images first), and the image is
brought back to zero mean, a fixed L2 norm (its contrast) and the range of valid pixels. All
neurons and seeds climb together in batches.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from sensorium_models.encoders import Encoder
from sensorium_models.insilico.inputs import InputSpace, model_responses
from sensorium_models.insilico.rf import _neurons

__all__ = ["MEIResult", "most_exciting_inputs", "natural_responses", "natural_stimuli"]


@dataclasses.dataclass(frozen=True)
class MEIResult:
    """The most exciting inputs of some neurons.

    Attributes
    ----------
    neurons : numpy.ndarray
        ``(n,)`` neuron indices of the mouse.
    inputs : numpy.ndarray
        ``(n, seeds, *space.shape)`` normalised stimuli.
    activations : numpy.ndarray
        ``(n, seeds)`` the model's rate for each.
    norm : float
        The L2 norm every input was held at.
    natural_best : numpy.ndarray or None
        ``(n,)`` the highest rate any natural stimulus gave (when natural stimuli were given).
    natural_index : numpy.ndarray or None
        ``(n,)`` which natural stimulus gave it.
    """

    neurons: np.ndarray
    inputs: np.ndarray
    activations: np.ndarray
    norm: float
    natural_best: np.ndarray | None = None
    natural_index: np.ndarray | None = None

    @property
    def best(self) -> np.ndarray:
        """``(n, *shape)`` each neuron's input of its best seed."""
        pick = self.activations.argmax(axis=1)
        return self.inputs[np.arange(len(pick)), pick]

    @property
    def ratio(self) -> np.ndarray | None:
        """``(n,)`` best activation over the best natural stimulus's (None without natural)."""
        if self.natural_best is None:
            return None
        return self.activations.max(axis=1) / self.natural_best


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of the last two axes (reflected edges)."""
    if sigma < 0.3:
        return x
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    shape = x.shape
    flat = x.reshape(-1, 1, *shape[-2:])
    rows = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    both = F.conv2d(F.pad(rows, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    return both.reshape(shape)


def _project(x: torch.Tensor, norm: float, low: float, high: float) -> torch.Tensor:
    """Zero mean, L2 norm ``norm``, then valid pixels, per stimulus (clipping can leave the
    norm below ``norm``)."""
    dims = tuple(range(1, x.ndim))
    x = x - x.mean(dim=dims, keepdim=True)
    x = x * (norm / x.flatten(1).norm(dim=1).clamp_min(1e-12)).view(-1, *[1] * len(dims))
    return x if np.isinf(low) and np.isinf(high) else x.clamp(low, high)


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def most_exciting_inputs(
    model: Encoder,
    mouse: str,
    space: InputSpace,
    neurons: Sequence[int] | None = None,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    steps: int = 200,
    step_size: float = 0.1,
    norm: float | None = None,
    sigma: tuple[float, float] = (2.0, 0.5),
    jitter: int = 1,
    natural: torch.Tensor | np.ndarray | None = None,
    batch_size: int = 128,
    progress: bool = False,
) -> MEIResult:
    """Most exciting inputs of ``neurons`` of ``mouse`` (all by default).

    Parameters
    ----------
    space
        The model's input space (:class:`InputSpace`); its valid pixel range bounds the inputs.
    seeds
        One start (faint noise) per seed; all are returned with their activations.
    steps, step_size
        Gradient-ascent steps; each moves the stimulus by ``step_size`` times its norm per
        element along the (blurred) gradient, scaled to unit mean magnitude.
    norm
        L2 norm of every input (its contrast, in normalised units; pixels clipped to the
        space's bounds can leave it lower). Default: the mean norm of
        the natural stimuli after removing their mean when given, else ``sqrt(size)`` (a
        root-mean-square contrast of 1, the data's pixel standard deviation).
    sigma
        Width in pixels of the gradient's Gaussian blur at the first and last step
        (geometric in between; a 0 turns the blur off).
    jitter
        Largest random shift in pixels of the stimulus at each step of the first 80% (0:
        none); the last 20% climb without it, so the input is best where it is shown.
    natural
        Natural stimuli ``(N, *space.shape)`` (e.g. :func:`natural_stimuli`): reported are
        the highest rate any of them gives each neuron, and which one.
    """
    chosen = _neurons(model, mouse, neurons)
    device = next(model.parameters()).device
    size = int(np.prod(space.shape))
    nat = None if natural is None else torch.as_tensor(natural, dtype=torch.float32)
    if nat is not None and len(nat) == 0:
        raise ValueError("natural: no natural stimuli given (pass None to skip the comparison)")
    if norm is None:
        if nat is not None and len(nat):
            centred = nat.flatten(1) - nat.flatten(1).mean(dim=1, keepdim=True)
            norm = float(centred.norm(dim=1).mean())
        else:
            norm = math.sqrt(size)
    low, high = space.pixel_range
    jobs = [(int(n), int(s)) for n in chosen for s in seeds]
    inputs = np.empty((len(jobs), *space.shape), dtype=np.float32)
    rates = np.empty(len(jobs), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        for part in tqdm(list(_chunks(len(jobs), batch_size)), disable=not progress, desc="MEIs"):
            batch = jobs[part]
            x = torch.cat(
                [
                    0.1 * torch.randn(1, *space.shape, generator=torch.Generator().manual_seed(s))
                    for _, s in batch
                ]
            ).to(device)
            x = _project(x, norm, low, high)
            idx = torch.as_tensor([n for n, _ in batch], device=device)[:, None]
            # one jitter sequence per neuron and seed: a result does not depend on its batch
            gens = [torch.Generator().manual_seed(1000003 * n + s) for n, s in batch]
            polish = int(0.8 * steps)  # the last steps climb without jitter
            for step in range(steps):
                x.requires_grad_(True)
                moved = x
                if jitter and step < polish:
                    moved = torch.stack(
                        [
                            torch.roll(
                                x[k],
                                shifts=tuple(
                                    torch.randint(-jitter, jitter + 1, (2,), generator=g).tolist()
                                ),
                                dims=(-2, -1),
                            )
                            for k, g in enumerate(gens)
                        ]
                    )
                objective = model_responses(model, mouse, moved, space).gather(1, idx).sum()
                (grad,) = torch.autograd.grad(objective, x)
                fraction = step / max(steps - 1, 1)
                width = sigma[0] * (sigma[1] / sigma[0]) ** fraction if min(sigma) > 0 else 0.0
                grad = _blur(grad, width)
                # unit mean magnitude: a saturated rate (tiny gradient) still moves
                scale = grad.abs().flatten(1).mean(dim=1).clamp_min(torch.finfo(grad.dtype).tiny)
                grad = grad / scale.view(-1, *[1] * (grad.ndim - 1))
                with torch.no_grad():
                    x = _project(x + step_size * (norm / math.sqrt(size)) * grad, norm, low, high)
            with torch.no_grad():
                final = model_responses(model, mouse, x, space).gather(1, idx)[:, 0]
            inputs[part] = x.detach().cpu().numpy()
            rates[part] = final.cpu().numpy()
        best = index = None
        if nat is not None:
            natural_rates = natural_responses(model, mouse, space, nat, batch_size=batch_size)
            best = natural_rates[:, chosen].max(axis=0)
            index = natural_rates[:, chosen].argmax(axis=0)
    finally:
        model.train(was_training)
    shape = (len(chosen), len(seeds))
    return MEIResult(
        neurons=chosen,
        inputs=inputs.reshape(*shape, *space.shape),
        activations=rates.reshape(shape),
        norm=float(norm),
        natural_best=best,
        natural_index=index,
    )


def natural_responses(
    model: Encoder,
    mouse: str,
    space: InputSpace,
    stimuli: torch.Tensor | np.ndarray,
    *,
    batch_size: int = 128,
) -> np.ndarray:
    """The model's rates ``(N, neurons)`` for stimuli ``(N, *space.shape)`` (eval mode; video
    models: the mean over output frames)."""
    device = next(model.parameters()).device
    values = torch.as_tensor(stimuli, dtype=torch.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            parts = [
                model_responses(model, mouse, values[p].to(device), space).cpu().numpy()
                for p in _chunks(len(values), batch_size)
            ]
    finally:
        model.train(was_training)
    n = model.readout(mouse).n_neurons
    return np.concatenate(parts) if parts else np.empty((0, n), dtype=np.float32)


def natural_stimuli(
    model: Encoder,
    store: Any,
    mouse: str,
    space: InputSpace,
    *,
    tiers: Sequence[str] = ("train",),
    limit: int | None = None,
    storage_options: Any = None,
) -> torch.Tensor:
    """The stimulus channel of the data's images (or ``space.frames``-frame clips) of ``tiers``,
    normalised as the loaders give them to the model: ``(N, *space.shape)``."""
    from sensorium_models.inference import model_loaders

    loaders = model_loaders(
        model,
        store,
        list(tiers),
        mice=[mouse],
        batch_size=128 if space.kind == "static" else 8,
        frames=space.frames,
        storage_options=storage_options,
    )
    key = "images" if space.kind == "static" else "videos"
    parts, count = [], 0
    for tier in tiers:
        for batch in loaders[tier][mouse]:
            parts.append(torch.nan_to_num(batch[key][:, 0]))
            count += len(parts[-1])
            if limit is not None and count >= limit:
                return torch.cat(parts)[:limit]
    return torch.cat(parts) if parts else torch.empty(0, *space.shape)
