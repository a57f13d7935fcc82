"""Training checkpoints and logs: written atomically, read back on the CPU.

A run folder holds ``checkpoint.pt`` (the model and training configs, the mice, the weights and
the best weights, the optimiser, early-stopping and sampler state, RNG states and the per-epoch
history; rewritten every epoch through a temporary file and ``os.replace``) and ``log.jsonl``
(one JSON line per finished epoch, written from the checkpoint's history).
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from sensorium_models.encoders import Encoder
from sensorium_models.errors import TrainingError
from sensorium_models.inference import resolve_device

__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_FORMAT",
    "LOG",
    "infos_from_state",
    "infos_to_state",
    "load_checkpoint",
    "load_model",
    "rng_state",
    "set_rng_state",
    "write_checkpoint",
    "write_log",
]

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
CHECKPOINT_FORMAT = 1


def infos_to_state(infos: Mapping[str, Any]) -> dict[str, Any]:
    """``{mouse: MouseInfo}`` as plain data and tensors (loadable with ``weights_only``)."""
    return {
        m: {
            "n_neurons": int(i.n_neurons),
            "coordinates": None if i.coordinates is None else torch.as_tensor(i.coordinates),
            "kind": i.kind,
        }
        for m, i in infos.items()
    }


def infos_from_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`infos_to_state`."""
    from sensorium_models.configs import MouseInfo

    return {
        m: MouseInfo(
            n_neurons=s["n_neurons"],
            coordinates=None if s["coordinates"] is None else s["coordinates"].numpy(),
            kind=s["kind"],
        )
        for m, s in state.items()
    }


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint dict of a run folder (or a ``checkpoint.pt`` path), loaded on the CPU
    with ``weights_only=True`` (tensors and plain Python only)."""
    p = pathlib.Path(path)
    file = p / CHECKPOINT if p.is_dir() else p
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint: no {CHECKPOINT} at {p}")
    state = torch.load(file, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"checkpoint: {file} is not a sensorium_models checkpoint")
    return state


def load_model(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Encoder:
    """Rebuild the model of a checkpoint with its best weights, in eval mode."""
    from sensorium_models.configs import ModelConfig, build_model

    state = load_checkpoint(path)
    config = ModelConfig.from_dict(state["model_config"])
    net = build_model(config, infos_from_state(state["mice"]))
    net.load_state_dict(state["best_model"])
    return net.to(resolve_device(device)).eval()


def rng_state() -> dict[str, Any]:
    """torch's CPU (and CUDA) random states, to resume a run with the same draws."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_checkpoint(out: pathlib.Path, state: Mapping[str, Any]) -> None:
    """Write ``out/checkpoint.pt`` atomically (temporary file, fsync, ``os.replace``)."""
    tmp = out / f".{CHECKPOINT}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out / CHECKPOINT)
    finally:
        tmp.unlink(missing_ok=True)


def write_log(out: pathlib.Path, history: Sequence[Mapping[str, Any]]) -> None:
    """Rewrite ``out/log.jsonl`` atomically, one JSON line per finished epoch."""
    tmp = out / f".{LOG}.tmp"
    tmp.write_text("".join(json.dumps(h) + "\n" for h in history))
    os.replace(tmp, out / LOG)
