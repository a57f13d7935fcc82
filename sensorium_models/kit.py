"""The 2022 kit's models: its published checkpoints loaded by name, and ``state_dict``s both ways.

The 2022 kit (``sinzlab/sensorium``) saves ``model.state_dict()`` of its neuralpredictors
``FiringRateEncoder`` and publishes five such files in its repository. Our
:class:`~sensorium_models.encoders.FiringRateEncoder` holds the same tensors under other names
and shapes in the readout; :func:`from_kit_state_dict` and :func:`to_kit_state_dict` translate,
strictly (every tensor is used, every one of ours is given).

::

    import sensorium_models as sm
    model = sm.load_kit_checkpoint("sensorium-sota")           # downloaded once, then cached
    model = sm.load_kit_checkpoint("my_model.pth", model="sensorium-plus-sota")
    torch.save(sm.to_kit_state_dict(model), "for_the_kit.pth")  # the kit loads it strictly

The published files were trained with the kit's ``core_bias=False`` (no biases in the core's
convolutions; its default until commit a31226d, 2024-03); a ``state_dict`` saved by a later kit
has them and loads into a model with ``core_bias=True``, which is inferred from the tensors.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import os
import pathlib
import pickle
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from sensorium_models.configs import ModelConfig, MouseInfo, build_model, get_config
from sensorium_models.encoders import Encoder, FiringRateEncoder
from sensorium_models.errors import KitCheckpointError
from sensorium_models.regularizers import LAPLACE_2D

__all__ = [
    "KIT_BASE_URL",
    "KIT_CHECKPOINTS",
    "KitCheckpoint",
    "fetch_kit_checkpoint",
    "from_kit_state_dict",
    "load_kit_checkpoint",
    "to_kit_state_dict",
]

#: Where the kit's published checkpoints lie (its ``main`` branch); ``SENSORIUM_KIT_URL``
#: replaces it (a mirror).
KIT_BASE_URL = (
    "https://raw.githubusercontent.com/sinzlab/sensorium/main/"
    "notebooks/model_tutorial/model_checkpoints/pretrained"
)
#: What tells the baselines apart and must agree with ``model=`` (the LN and SOTA cores differ
#: in depth and in their nonlinearity, which no tensor shows); the other fields the tensors
#: show (widths, kernels, biases) are taken from them.
_IDENTITY = ("layers", "input_channels", "use_shifter")
#: The kit core's Laplace filter buffer: a constant of the regulariser, not a weight.
_LAPLACE_KEY = "core._input_weights_regularizer.laplace.filter"


@dataclasses.dataclass(frozen=True)
class KitCheckpoint:
    """One published checkpoint of the 2022 kit.

    Attributes
    ----------
    name : str
        The name it loads by (``load_kit_checkpoint(name)``).
    file : str
        Its file name in the kit's ``model_checkpoints/pretrained/`` folder.
    model : str
        The :data:`~sensorium_models.configs.NAMED_CONFIGS` entry of its architecture.
    git_sha1 : str
        Git's blob hash of the file (``git hash-object``), checked after every download.
    size : int or None
        Bytes, where known.
    description : str
        What it is.
    """

    name: str
    file: str
    model: str
    git_sha1: str
    size: int | None
    description: str

    def url(self, base_url: str | None = None) -> str:
        """The file's URL under ``base_url`` (default ``SENSORIUM_KIT_URL`` or the kit's)."""
        base = base_url or os.environ.get("SENSORIUM_KIT_URL") or KIT_BASE_URL
        return f"{base.rstrip('/')}/{self.file}"


#: The kit's published checkpoints (``sinzlab/sensorium`` at ``main``), by name.
KIT_CHECKPOINTS: Mapping[str, KitCheckpoint] = {
    c.name: c
    for c in (
        KitCheckpoint(
            "sensorium-sota",
            "sensorium_sota_model.pth",
            "sensorium-sota",
            "1e0dbbaefba3d362fb00326945ad77d27043d4fa",
            2383728,
            "SENSORIUM SOTA baseline, mouse 26872-17-20 (7776 neurons), images only",
        ),
        KitCheckpoint(
            "sensorium-ln",
            "sensorium_ln_model.pth",
            "sensorium-ln",
            "9fa703c0f1a34d2d149e0b45d2ae3eca63fb6f82",
            2334280,
            "SENSORIUM LN baseline, mouse 26872-17-20 (7776 neurons), images only",
        ),
        KitCheckpoint(
            "sensorium-plus-sota",
            "sensorium_p_sota_model.pth",
            "sensorium-plus-sota",
            "6a168044156a16093d0311344a501ff15511504b",
            2380702,
            "SENSORIUM+ SOTA baseline, mouse 27204-5-13 (7538 neurons), behaviour and shifter",
        ),
        KitCheckpoint(
            "sensorium-plus-ln",
            "sensorium_p_ln_model.pth",
            "sensorium-plus-ln",
            "ce9038dbc82c1161d1c77f698a27c91e52c0e173",
            2331190,
            "SENSORIUM+ LN baseline, mouse 27204-5-13 (7538 neurons), behaviour and shifter",
        ),
        KitCheckpoint(
            "sensorium-generalization",
            "generalization_model.pth",
            "sensorium-sota",
            "728b2985bffcaa24652baed1354669b11eb937df",
            None,
            "SOTA architecture trained on all 7 mice of the 2022 release, images only",
        ),
    )
}


# ----------------------------------------------------------------------------- state dicts


def to_kit_state_dict(model: Encoder) -> collections.OrderedDict[str, torch.Tensor]:
    """``model``'s ``state_dict`` in the kit's names and shapes: the kit's model (built as its
    notebooks build it, for the same mice) loads it with ``strict=True``.

    Raises
    ------
    KitCheckpointError
        For a model the kit has no counterpart of (2023 models, behaviour modulators).
    """
    if not isinstance(model, FiringRateEncoder) or model.modulators is not None:
        raise KitCheckpointError(
            f"model {model.config.name!r}: only 2022 models without a behaviour modulator have "
            "a kit counterpart"
        )
    state = model.state_dict()
    weight = state["core.features.layer0.conv.weight"]
    out: collections.OrderedDict[str, torch.Tensor] = collections.OrderedDict()
    out[_LAPLACE_KEY] = torch.tensor(LAPLACE_2D, dtype=weight.dtype)[None, None]
    for key, tensor in state.items():
        value = tensor.detach().cpu()
        name = key.rsplit(".", 1)[-1]
        readout = key.startswith("readouts.")
        if readout and name in ("features", "_mu"):
            out[_kit_name(key)] = value[None, :, None, :]
        elif readout and name == "sigma":
            out[_kit_name(key)] = value[None]
        else:
            out[_kit_name(key)] = value
    return out


def _from_kit(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    part, rest = key.split(".", 1)
    if part == "core":
        return key, value
    if part == "shifter":
        return f"shifters.{rest}", value
    if part != "readout" or "." not in rest:
        raise KitCheckpointError(f"{key}: not a tensor of the kit's FiringRateEncoder")
    mouse, name = rest.split(".", 1)
    reshape = {"_features": (0, 2), "sigma": (0,), "_mu": (0, 2)}
    if name in reshape:
        dims = reshape[name]
        if value.ndim != 4 or any(value.shape[d] != 1 for d in dims):
            raise KitCheckpointError(
                f"{key}: shape {tuple(value.shape)} is not the kit's readout layout"
            )
        for d in sorted(dims, reverse=True):
            value = value.squeeze(d)
        name = "features" if name == "_features" else name
    return f"readouts.{mouse}.{name}", value


def from_kit_state_dict(
    state: Mapping[str, torch.Tensor],
    model: str | ModelConfig,
    *,
    overrides: Mapping[str, Any] | None = None,
    where: str = "state_dict",
) -> FiringRateEncoder:
    """Our model holding a kit ``state_dict``, in eval mode.

    The mice, their neuron counts and readout source grids, the input channels and the
    shifters are read from ``state``; ``model`` names the architecture (a ``state_dict``
    does not say whether the core is linear). Its layers, input channels and shifters
    must agree with ``model`` (and ``overrides``); the widths, kernels, depth-separable
    layers, core biases and position MLP are taken from the tensors. Every tensor is
    loaded, none is left out.

    Raises
    ------
    KitCheckpointError
        Naming ``where``, the fields that disagree, or the tensors that do not fit.
    """
    tensors = dict(state)
    bad = sorted(k for k, v in tensors.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise KitCheckpointError(f"{where}: not a state_dict (non-tensor entries {bad[:5]})")
    laplace = tensors.pop(_LAPLACE_KEY, None)
    if laplace is not None and not torch.equal(
        laplace.reshape(3, 3).double(), torch.tensor(LAPLACE_2D, dtype=torch.float64)
    ):
        raise KitCheckpointError(f"{where}: {_LAPLACE_KEY} is not the kit's Laplace filter")
    config = get_config(model) if isinstance(model, str) else model
    if overrides:
        config = config.replace(**dict(overrides))
    if config.kind != "static" or config.behavior_modulator:
        raise KitCheckpointError(
            f"{where}: model {config.name!r} has no 2022 kit counterpart; kit checkpoints are "
            "2022 models such as 'sensorium-sota' or 'sensorium-plus-ln'"
        )
    try:
        ours = dict(_from_kit(k, v) for k, v in tensors.items())
    except KitCheckpointError as exc:
        raise KitCheckpointError(f"{where}: {exc}") from None
    seen = _inferred(ours, where)
    differ = [
        f"{name}: {config.name} has {getattr(config, name)!r}, the checkpoint {seen[name]!r}"
        for name in _IDENTITY
        if getattr(config, name) != seen[name]
    ]
    if differ:
        raise KitCheckpointError(
            f"{where} does not fit model {config.name!r}: " + "; ".join(differ) + " (pass "
            "another model=; overrides= for a kit model trained with other settings)"
        )
    config = config.replace(**{k: v for k, v in seen.items() if k not in _IDENTITY})
    mice = _mice(ours, where)
    net = build_model(config, mice)
    if not isinstance(net, FiringRateEncoder):
        raise KitCheckpointError(f"model {config.name!r} is not a 2022 model")
    held = net.state_dict()
    missing = [_kit_name(k) for k in held if k not in ours]
    extra = [_kit_name(k) for k in ours if k not in held]
    wrong = [
        f"{_kit_name(k)} {tuple(v.shape)} (the model's {tuple(held[k].shape)})"
        for k, v in ours.items()
        if k in held and held[k].shape != v.shape
    ]
    if missing or extra or wrong:
        found = (("missing", missing), ("not in the model", extra), ("wrong shapes", wrong))
        parts = [
            f"{label} {keys[:6]}{' ...' if len(keys) > 6 else ''}" for label, keys in found if keys
        ]
        raise KitCheckpointError(f"{where} does not fit {config.name!r}: " + "; ".join(parts))
    net.load_state_dict(ours, strict=True)
    return net.eval()


def _kit_name(key: str) -> str:
    """The kit's name of one of our state's keys."""
    part, rest = key.split(".", 1)
    if part == "core":
        return key
    if part == "shifters":
        return f"shifter.{rest}"
    mouse, name = rest.split(".", 1)
    return f"readout.{mouse}.{'_features' if name == 'features' else name}"


def _inferred(ours: Mapping[str, torch.Tensor], where: str) -> dict[str, Any]:
    """The config fields the tensors show."""
    first = ours.get("core.features.layer0.conv.weight")
    if first is None or first.ndim != 4:
        raise KitCheckpointError(
            f"{where}: no core.features.layer0.conv.weight, so not a kit 2022 model's state_dict"
        )
    layers = 1 + max(
        int(k.split(".")[2].removeprefix("layer")) for k in ours if k.startswith("core.features.")
    )
    seen: dict[str, Any] = {
        "input_channels": int(first.shape[1]),
        "hidden_channels": int(first.shape[0]),
        "input_kernel": int(first.shape[-1]),
        "layers": layers,
        "use_shifter": any(k.startswith("shifters.") for k in ours),
        "grid_mean_predictor": any(".mu_transform." in k for k in ours),
        "readout_bias": any(k.startswith("readouts.") and k.endswith(".bias") for k in ours),
    }
    if layers > 1:
        separable = "core.features.layer1.ds_conv.spatial_conv.weight"
        seen["depth_separable"] = separable in ours
        hidden = ours.get(separable, ours.get("core.features.layer1.conv.weight"))
        if hidden is not None:
            seen["hidden_kernel"] = int(hidden.shape[-1])
        seen["core_bias"] = any(
            k.startswith("core.features.layer1.") and k.endswith("conv.bias") for k in ours
        )
    hidden_mlp = next((v for k, v in ours.items() if k.endswith("mu_transform.0.weight")), None)
    if hidden_mlp is not None:
        seen["grid_hidden_features"] = int(hidden_mlp.shape[0])
    return seen


def _mice(ours: Mapping[str, torch.Tensor], where: str) -> dict[str, MouseInfo]:
    """Each readout's mouse: neurons from its feature weights, positions from its grid."""
    names = sorted({k.split(".")[1] for k in ours if k.startswith("readouts.")})
    if not names:
        raise KitCheckpointError(f"{where}: no readout.<mouse>.* tensors")
    mice = {}
    for mouse in names:
        features = ours.get(f"readouts.{mouse}.features")
        if features is None or features.ndim != 2:
            raise KitCheckpointError(f"{where}: readout.{mouse}._features missing or misshapen")
        grid = ours.get(f"readouts.{mouse}.source_grid")
        coords = None if grid is None else np.asarray(grid.detach().double().numpy())
        mice[mouse] = MouseInfo(n_neurons=int(features.shape[1]), coordinates=coords, kind="static")
    return mice


# ----------------------------------------------------------------------------- files


def _cache_dir(cache_dir: str | os.PathLike[str] | None) -> pathlib.Path:
    if cache_dir is not None:
        return pathlib.Path(cache_dir)
    root = os.environ.get("SENSORIUM_CACHE")
    if root:
        return pathlib.Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(xdg) / "sensorium"


def git_blob_sha1(data: bytes) -> str:
    """Git's hash of a file's bytes (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def fetch_kit_checkpoint(
    checkpoint: str | KitCheckpoint,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    progress: bool = True,
) -> pathlib.Path:
    """The local path of a published checkpoint, downloaded on first use.

    The file is kept under ``cache_dir`` (default ``$SENSORIUM_CACHE``, else
    ``~/.cache/sensorium``) in ``kit/<git_sha1>/``; a download shows a progress bar, is
    checked against the file's size and git hash, and is moved into place only then (a
    failed or cut download leaves nothing behind).
    """
    entry = _entry(checkpoint)
    folder = _cache_dir(cache_dir) / "kit" / entry.git_sha1
    path = folder / entry.file
    if path.is_file():
        return path
    url = entry.url(base_url)
    data = _download(url, entry.size, progress)
    if entry.size is not None and len(data) != entry.size:
        raise KitCheckpointError(f"{url}: expected {entry.size} bytes, got {len(data)}")
    got = git_blob_sha1(data)
    if got != entry.git_sha1:
        raise KitCheckpointError(
            f"{url}: checksum mismatch (git hash {got}, expected {entry.git_sha1}); the file "
            "is not the published one"
        )
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{entry.file}.", delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, path)
    return path


def _entry(checkpoint: str | KitCheckpoint) -> KitCheckpoint:
    if isinstance(checkpoint, KitCheckpoint):
        return checkpoint
    try:
        return KIT_CHECKPOINTS[checkpoint]
    except KeyError:
        raise KitCheckpointError(
            f"unknown kit checkpoint {checkpoint!r}; known: {sorted(KIT_CHECKPOINTS)} (or give "
            "a path or URL of a .pth file with model=)"
        ) from None


def _download(url: str, size: int | None, progress: bool) -> bytes:
    """The bytes at ``url`` (any fsspec URL), read in 1 MiB blocks under a progress bar."""
    import fsspec
    from tqdm.auto import tqdm

    from sensorium_data.remote import remote_errors

    parts = []
    with remote_errors(url), _not_found(url), fsspec.open(url, "rb", block_size=0) as f:
        total = size if size is not None else getattr(f, "size", None)
        name = url.rsplit("/", 1)[-1]
        with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not progress) as bar:
            while block := f.read(1 << 20):
                parts.append(block)
                bar.update(len(block))
    return b"".join(parts)


@contextlib.contextmanager
def _not_found(url: str) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        raise KitCheckpointError(f"{url}: no such file (HTTP 404 or a missing path)") from None


def _read_state(source: str, where: str, progress: bool) -> Mapping[str, torch.Tensor]:
    import io

    if "://" in source:
        data = _download(source, None, progress=progress)
        handle: Any = io.BytesIO(data)
    else:
        if not pathlib.Path(source).is_file():
            raise KitCheckpointError(f"{source}: no such file")
        handle = source
    try:
        state = torch.load(handle, map_location="cpu", weights_only=True)
    except (RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise KitCheckpointError(f"{where}: not a torch state_dict ({exc})") from None
    if not isinstance(state, Mapping):
        raise KitCheckpointError(f"{where}: holds a {type(state).__name__}, not a state_dict")
    return state


def load_kit_checkpoint(
    checkpoint: str | os.PathLike[str] | KitCheckpoint,
    *,
    model: str | ModelConfig | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> FiringRateEncoder:
    """A 2022 kit model as our :class:`~sensorium_models.encoders.FiringRateEncoder`, in eval
    mode, ready for ``predict``, ``evaluate``, submissions and ``sensorium_models.insilico``.

    Parameters
    ----------
    checkpoint
        A name of :data:`KIT_CHECKPOINTS` (downloaded once, see
        :func:`fetch_kit_checkpoint`), or the path or URL of a kit ``state_dict`` (``.pth``).
    model
        The architecture (a :data:`~sensorium_models.configs.NAMED_CONFIGS` name or a
        config); required for a path or URL, checked against the published entry for a name.
    overrides
        Config fields of a kit model trained with other settings that no tensor shows (e.g.
        ``{"layers": 3}`` with ``model="sensorium-sota"``, ``momentum``, ``elu_offset``);
        widths, kernels and core biases are always read from the tensors.
    device
        Where the model is placed.
    cache_dir, progress
        Download cache (names only) and progress bar (names and URLs).
    """
    from sensorium_models.inference import resolve_device

    if isinstance(checkpoint, KitCheckpoint) or str(checkpoint) in KIT_CHECKPOINTS:
        entry = _entry(checkpoint if isinstance(checkpoint, KitCheckpoint) else str(checkpoint))
        given = model.name if isinstance(model, ModelConfig) else model
        if given is not None and given != entry.model:
            raise KitCheckpointError(
                f"kit checkpoint {entry.name!r} is a {entry.model!r} model, not {model!r}"
            )
        source = str(fetch_kit_checkpoint(entry, cache_dir=cache_dir, progress=progress))
        model, where = entry.model, f"kit checkpoint {entry.name!r} ({source})"
    else:
        source = where = os.fspath(checkpoint)
        if model is None:
            raise KitCheckpointError(
                f"{source}: pass model= (e.g. 'sensorium-sota' or 'sensorium-ln'): a "
                f"state_dict does not say whether its core is linear; published names are "
                f"{sorted(KIT_CHECKPOINTS)}"
            )
    state = _read_state(source, where, progress)
    net = from_kit_state_dict(state, model, overrides=overrides, where=where)
    return net.to(resolve_device(device))
