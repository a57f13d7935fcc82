"""What a model's mouse sees: the input space of in-silico experiments, and running a model in it.

Experiments work on *stimuli* in the model's normalised units: images ``(N, H, W)`` or clips
``(N, T, H, W)`` of ``(pixel - mean) / std`` at the model's input size, one stimulus channel.
:class:`InputSpace` knows the mouse's image statistics (to turn 0-255 pictures into stimuli and
back) and the constant behaviour the model is given (its behaviour channels, the shifter's pupil
position): the mouse's mean behaviour, as the kits normalise it.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from sensorium_models.encoders import Encoder
from sensorium_models.errors import ModelInputError

__all__ = ["InputSpace", "load_stimuli", "model_responses"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")


@dataclasses.dataclass(frozen=True)
class InputSpace:
    """How a model's mouse sees stimuli.

    Attributes
    ----------
    kind : str
        ``"static"`` (2022 images) or ``"dynamic"`` (2023 clips).
    height, width : int
        The model's input size (36 x 64 for both competitions' baselines).
    mean, std : float
        The mouse's pixel statistics (0-255 units): a stimulus is ``(pixel - mean) / std``.
    behavior : tuple of float
        Constant values of the model's behaviour (and pupil) input channels, normalised.
    pupil_center : tuple of float
        Normalised pupil position given to a shifter (the mean: 0, 0).
    frames : int
        Clip length of video experiments (dynamic models).
    pixel_bounds : tuple of float or None
        The values a pixel can take (0-255 units), which bound the stimuli that experiments
        make (MEIs); None: unbounded, and no pixel statistics known (a space without data:
        :func:`load_stimuli` then refuses pictures).
    modulator_behavior : tuple of float
        The behaviour given to a behaviour modulator (normalised mean behaviour).
    """

    kind: str
    height: int = 36
    width: int = 64
    mean: float = 0.0
    std: float = 1.0
    behavior: tuple[float, ...] = ()
    pupil_center: tuple[float, float] = (0.0, 0.0)
    frames: int = 60
    pixel_bounds: tuple[float, float] | None = None
    modulator_behavior: tuple[float, ...] = ()

    @classmethod
    def default(cls, model: Encoder, *, height: int = 36, width: int = 64) -> InputSpace:
        """A space without data: stimuli are taken as normalised already (mean 0, std 1) and
        the behaviour channels are 0 (a mouse at its mean pupil position; behaviour itself is
        only scaled by the kits, so 0 is no running and no pupil)."""
        n = int(model.config.input_channels) - 1
        return cls(kind=model.config.kind, height=height, width=width, behavior=(0.0,) * n)

    @classmethod
    def from_store(
        cls,
        model: Encoder,
        store: Any,
        mouse: str,
        *,
        storage_options: Any = None,
        frames: int = 60,
    ) -> InputSpace:
        """The space of ``mouse`` in a converted store: its ``all`` statistics (pixel mean and
        std; for 2023 the means over pixels and frames) and its mean behaviour, normalised as
        the loaders normalise it, at the input size the loaders give the model."""
        from sensorium_data.store.access import open_mouse, open_statistics
        from sensorium_models.inference import default_scale, input_options

        stats = open_statistics(store, mouse, storage_options)
        kind = model.config.kind
        key = "images" if kind == "static" else "videos"

        def stat(name: str, which: str) -> np.ndarray:
            return np.asarray(stats[name]["all"][which], dtype=np.float64)

        channels = input_options(model)
        mean, std = stat("behavior", "mean"), stat("behavior", "std")
        if kind == "dynamic":
            mean, std = np.nanmean(mean, axis=-1), np.nanmean(std, axis=-1)
        typical = (mean / std).tolist()  # the kits scale behaviour, they do not centre it
        behavior: list[float] = typical if channels["include_behavior"] else []
        if channels["include_pupil"]:
            behavior += [0.0, 0.0]
        ds = open_mouse(store, mouse, storage_options, chunks=None)
        if kind == "static":
            scale = default_scale(store, [mouse], storage_options)
            from sensorium_data.store.images import rescaled_size

            height = rescaled_size(int(ds["images"].shape[-2]), scale)
            width = rescaled_size(int(ds["images"].shape[-1]), scale)
        else:
            height, width = (int(n) for n in ds["videos"].shape[1:3])
        return cls(
            kind=kind,
            height=height,
            width=width,
            mean=float(np.nanmean(stat(key, "mean"))),
            std=float(np.nanmean(stat(key, "std"))),
            behavior=tuple(float(b) for b in behavior),
            frames=frames,
            pixel_bounds=(0.0, 255.0),
            modulator_behavior=tuple(typical) if model.config.behavior_modulator else (),
        )

    # -- stimuli -----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """One stimulus: ``(H, W)``, or ``(frames, H, W)`` for video models."""
        hw = (self.height, self.width)
        return hw if self.kind == "static" else (self.frames, *hw)

    def normalise(self, pixels: Any) -> torch.Tensor:
        """0-255 values as stimuli (float32)."""
        return (torch.as_tensor(np.asarray(pixels, dtype=np.float32)) - self.mean) / self.std

    def pixels(self, stimuli: torch.Tensor | np.ndarray) -> np.ndarray:
        """Stimuli back in 0-255 units (not clipped)."""
        return np.asarray(torch.as_tensor(stimuli).detach().cpu()) * self.std + self.mean

    @property
    def pixel_range(self) -> tuple[float, float]:
        """The stimulus values of the pixel bounds (infinite without bounds)."""
        if self.pixel_bounds is None:
            return -np.inf, np.inf
        low, high = self.pixel_bounds
        return (low - self.mean) / self.std, (high - self.mean) / self.std

    # -- model inputs ----------------------------------------------------------------------------
    def inputs(self, stimuli: torch.Tensor) -> torch.Tensor:
        """The model's input of stimuli ``(N, H, W)`` or ``(N, T, H, W)``: the stimulus channel
        and the constant behaviour channels, ``(N, C, ...)``."""
        x = stimuli[:, None]
        if not self.behavior:
            return x
        values = torch.tensor(self.behavior, dtype=x.dtype, device=x.device)
        extra = values.view(1, -1, *([1] * (x.ndim - 2))).expand(x.shape[0], -1, *x.shape[2:])
        return torch.cat([x, extra], dim=1)

    def model_kwargs(self, model: Encoder, stimuli: torch.Tensor) -> dict[str, torch.Tensor]:
        """``pupil_center`` for a shifter (and ``behavior`` for a modulator), constant."""
        n = stimuli.shape[0]
        out: dict[str, torch.Tensor] = {}
        frames = () if self.kind == "static" else (stimuli.shape[1],)

        def constant(values: Sequence[float]) -> torch.Tensor:
            v = torch.tensor(list(values), dtype=stimuli.dtype, device=stimuli.device)
            return v.view(1, -1, *([1] * len(frames))).expand(n, -1, *frames)

        if model.config.use_shifter:
            out["pupil_center"] = constant(self.pupil_center)
        if model.config.behavior_modulator:
            out["behavior"] = constant(self.modulator_behavior or (0.0, 0.0, 0.0))
        return out


def model_responses(
    model: Encoder, mouse: str, stimuli: torch.Tensor, space: InputSpace
) -> torch.Tensor:
    """The model's rates for stimuli (differentiable): ``(N, neurons)``; for video models the
    mean over the output frames."""
    x = space.inputs(stimuli)
    rates = model(x, mouse=mouse, **space.model_kwargs(model, stimuli))
    return rates if rates.ndim == 2 else rates.mean(dim=1)


def load_stimuli(source: Any, space: InputSpace) -> torch.Tensor:
    """Stimuli (normalised, at the model's size) from what a user has.

    Parameters
    ----------
    source
        A folder or file of pictures (PNG, JPEG, TIFF, BMP; ``.npy`` arrays), a PIL image, a
        list of them, or an array of 0-255 values: images ``(H, W)``/``(N, H, W)``, or for
        video models clips ``(T, H, W)``/``(N, T, H, W)``. Colour images become grey (the mean
        of their channels).
    space
        The model's input space (:class:`InputSpace`).

    Returns
    -------
    torch.Tensor
        ``(N, H, W)`` or ``(N, T, H, W)`` float32 stimuli. Pictures of another size are
        resized: by the kits' bilinear rescale when the size is a whole multiple of the
        model's (e.g. 144 x 256 to 36 x 64, exactly as the data were), otherwise by
        antialiased bilinear interpolation to the model's size (another aspect ratio is
        stretched, not cropped).

    Raises
    ------
    ModelInputError
        Without pixel statistics in ``space`` (:meth:`InputSpace.default`), for shapes that
        are not pictures or clips, and for empty folders or missing paths.
    """
    if space.pixel_bounds is None:
        raise ModelInputError(
            "stimuli: the input space knows no pixel statistics to normalise pictures with; "
            "use InputSpace.from_store(model, store, mouse), or give mean=, std= and "
            "pixel_bounds=(0, 255)"
        )
    batch = []
    for item in _arrays(source):
        values = np.asarray(item, dtype=np.float32)
        if values.shape and values.shape[-1] in (3, 4) and values.ndim in (3, 4):
            values = values[..., :3].mean(axis=-1)  # colour pictures: grey
        if space.kind == "static":
            batch += list(values[None] if values.ndim == 2 else values)
        elif values.ndim == 3:  # one clip (T, H, W)
            batch.append(values)
        else:  # clips (N, T, H, W)
            batch += list(values)
    if not batch:
        raise ModelInputError(f"stimuli: no pictures in {source!r}")
    want = 2 if space.kind == "static" else 3
    bad = [tuple(b.shape) for b in batch if b.ndim != want]
    if bad:
        layout = "(H, W) images" if space.kind == "static" else "(T, H, W) clips"
        raise ModelInputError(f"stimuli: expected {layout}, got shapes {bad[:3]}")
    if space.kind == "static":
        out = np.stack([_resized(b[None], space)[0] for b in batch])
    else:
        out = np.stack([_resized(b, space) for b in batch])
    return space.normalise(out)


def _arrays(source: Any) -> list[Any]:
    if isinstance(source, str | os.PathLike):
        path = pathlib.Path(source)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
            if not files:
                raise ModelInputError(f"stimuli: {path} holds no pictures ({_IMAGE_SUFFIXES})")
            return [_read(p) for p in files]
        if not path.is_file():
            raise ModelInputError(f"stimuli: {path} does not exist")
        return [_read(path)]
    if isinstance(source, list | tuple):
        return [np.asarray(s) for s in source]
    values = np.asarray(source)
    if values.dtype == object:
        raise ModelInputError(f"stimuli: cannot read {type(source).__name__} as pictures")
    return [values]


def _read(path: pathlib.Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        return np.load(path)
    try:
        from PIL import Image
    except ImportError:
        raise ModelInputError(
            f"stimuli: reading {path} needs Pillow (pip install pillow)"
        ) from None
    with Image.open(path) as img:
        return np.asarray(img.convert("L"), dtype=np.float32)


def _resized(values: np.ndarray, space: InputSpace) -> np.ndarray:
    """``(N, H, W)`` or a clip ``(T, H, W)`` at the space's size."""
    h, w = values.shape[-2:]
    if (h, w) == (space.height, space.width):
        return values
    factor = h / space.height
    if factor == w / space.width and float(factor).is_integer():
        from sensorium_data.store.images import rescale_images

        return rescale_images(values, 1.0 / factor)
    t = torch.as_tensor(values)[:, None]
    size = (space.height, space.width)
    return F.interpolate(t, size=size, mode="bilinear", antialias=True)[:, 0].numpy()
