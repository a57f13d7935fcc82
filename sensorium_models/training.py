"""Training of the SENSORIUM baselines on a store, as the starter kits train them, resumable.

:func:`train` builds the toolkit's loaders (:func:`sensorium_data.make_loaders`) for a model of
:func:`sensorium_models.configs.build_model`, cycles over the mice with
:class:`~sensorium_data.LongCycler` (one optimiser step per round of mice, the gradients
of every mouse's batch accumulated), minimises the Poisson loss
``sum(rates - responses * log(rates + 1e-12))`` over the batch scaled by
``sqrt(n_train_trials / batch_size)`` plus the model's regulariser (2023: on the last ``T_out``
frames of each window, where the model's predictions are aligned), and stops early on the
single-trial correlation of a held-out tier (2022 ``validation``; 2023 ``oracle``, else
``validation``): after ``patience`` epochs without improvement the best weights are restored and
the learning rate decays by ``lr_decay_factor``, up to ``max_lr_decays`` times, then training
stops with the best weights.

Every epoch writes ``out_dir/checkpoint.pt`` atomically (model, best weights, optimiser,
early-stopping state, sampler passes, RNG states, the model and training configs) and rewrites
``out_dir/log.jsonl`` (one JSON line per finished epoch, from the checkpoint's history, so a
crash between the two leaves no stray line after resuming); running the same call again resumes
after the last finished epoch, with the same batches and random draws as an uninterrupted run.
:func:`load_model` rebuilds the best model from a checkpoint. Tensors are moved to the device in
the training loop only (pinned memory and asynchronous copies on CUDA), with mixed precision
(bfloat16, else float16 with a gradient scaler) on CUDA when ``TrainConfig.amp``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pathlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from sensorium_data import metrics
from sensorium_data.store.access import list_mice, open_mouse
from sensorium_models import distributed
from sensorium_models.checkpoints import (
    CHECKPOINT,
    CHECKPOINT_FORMAT,
    LOG,
    infos_to_state,
    load_checkpoint,
    load_model,
    rng_state,
    set_rng_state,
    write_checkpoint,
    write_log,
)
from sensorium_models.configs import NAMED_CONFIGS, ModelConfig, ModelConfigError, build_model
from sensorium_models.encoders import Encoder
from sensorium_models.errors import TrainingError
from sensorium_models.inference import autocast, collect, model_loaders, prepare, resolve_device
from sensorium_models.train_config import TrainConfig

__all__ = [
    "CHECKPOINT",
    "LOG",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "load_checkpoint",
    "load_model",
    "mouse_infos",
    "poisson_loss",
    "readout_edge_share",
    "step_loss",
    "train",
]

_EPS = 1e-12
#: A readout whose mean positions lie this close to the border of the feature map (in the
#: ``[-1, 1]`` grid coordinates of either axis) counts as being at the edge.
EDGE = 0.95
#: Share of a mouse's neurons at the edge above which the readout is reported as collapsed.
COLLAPSED = 0.9
_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainResult:
    """What :func:`train` did. ``model`` holds the best weights (in eval mode)."""

    model: Encoder
    out_dir: pathlib.Path
    best_score: float
    best_epoch: int
    epochs: int
    resumed_from: int
    stopped_early: bool
    history: list[dict[str, Any]]

    @property
    def checkpoint(self) -> pathlib.Path:
        return self.out_dir / CHECKPOINT


# ----------------------------------------------------------------------------- mice and models


def mouse_infos(
    store: Any, mice: Sequence[str] | None = None, storage_options: Any = None
) -> dict[str, Any]:
    """``{mouse: MouseInfo}`` from a store (neuron count, motor coordinates, kind)."""
    from sensorium_models.configs import MouseInfo

    known = list_mice(store, storage_options)
    by_source = {a["source_name"]: k for k, a in known.items()}
    keys = [by_source.get(m, m) for m in (mice or list(known))]
    missing = [m for m in keys if m not in known]
    if missing:
        raise TrainingError(f"mice: {store} holds no mouse {missing}; it holds {list(known)}")
    kinds = sorted({known[m]["kind"] for m in keys})
    if len(kinds) != 1:
        raise TrainingError(f"mice: one model trains on one kind of mouse, got {kinds}")
    out = {}
    for key in keys:
        ds = open_mouse(store, key, storage_options, chunks=None)
        coords = ds.coords.get("cell_motor_coordinates")
        xyz = None if coords is None else np.asarray(coords.values, dtype=np.float64)
        out[key] = MouseInfo(n_neurons=int(ds.sizes["neuron"]), coordinates=xyz, kind=kinds[0])
    return out


def _build(model: Any, infos: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> Encoder:
    if isinstance(model, str) and model not in NAMED_CONFIGS:
        raise TrainingError(f"model: unknown name {model!r}; known: {sorted(NAMED_CONFIGS)}")
    try:
        net = build_model(model, dict(infos), overrides=dict(overrides) if overrides else None)
    except ModelConfigError as exc:
        raise TrainingError(f"{'overrides' if overrides else 'model'}: {exc}") from None
    kinds = {i.kind for i in infos.values()}
    if kinds != {net.config.kind}:
        raise TrainingError(
            f"model: {net.config.name!r} is a {net.config.kind} model but the mice are "
            f"{sorted(kinds)}"
        )
    return net


# ----------------------------------------------------------------------------- loss


def poisson_loss(rates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``sum(rates - targets * log(rates + 1e-12))`` over every element (float32)."""
    rates, targets = rates.float(), targets.float()
    return (rates - targets * torch.log(rates + _EPS)).sum()


def _targets(responses: torch.Tensor, rates: torch.Tensor) -> torch.Tensor:
    """Responses aligned with the rates: 2023 (B, N, T) -> the last T_out frames, (B, T_out, N)."""
    if rates.ndim == 2:
        return responses
    return responses.transpose(1, 2)[:, responses.shape[2] - rates.shape[1] :]


def step_loss(
    net: Encoder,
    mouse: str,
    rates: torch.Tensor,
    responses: torch.Tensor,
    n_train: int,
    world_size: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, data term, penalty)`` of one batch of one process.

    The data term is the Poisson loss scaled by ``sqrt(n_train / global batch)`` (the global
    batch: this batch times ``world_size``); the loss is ``world_size`` times it plus the
    regulariser, so that the gradients averaged over the processes (what
    ``DistributedDataParallel`` does) are the single-process gradients of the global batch.
    """
    scale = math.sqrt(n_train / (responses.shape[0] * world_size))
    data = scale * poisson_loss(rates, _targets(responses, rates))
    penalty = net.regularizer(mouse)
    return world_size * data + penalty, data, penalty


def readout_edge_share(net: Encoder) -> dict[str, float]:
    """Per mouse, the share of neurons whose mean readout position lies at the edge of the map.

    A healthy Gaussian readout spreads its positions over the map, where the receptive fields
    are. Early in training the positions can instead all run to a border or corner of the core's
    feature map (where zero padding makes the features weakest) and stay there: the position
    predictor's tanh saturates and no gradient brings them back. Predictions then hardly depend
    on the stimulus and the stop score stays near 0. Values near 1 mean such a collapse; another
    ``TrainConfig.seed`` usually avoids it.
    """
    out = {}
    for mouse, readout in getattr(net, "readouts", {}).items():
        mu = getattr(readout, "mu", None)
        if isinstance(mu, torch.Tensor) and mu.numel():
            at_edge = mu.detach().abs().amax(dim=-1) >= EDGE
            out[mouse] = float(at_edge.float().mean())
    return out


# ----------------------------------------------------------------------------- early stopping


@dataclasses.dataclass(kw_only=True)
class _Stopper:
    """Early stopping with learning-rate decay on plateaus (the kits' ``early_stopping``)."""

    patience: int
    max_decays: int
    tolerance: float
    best_score: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    decays: int = 0
    stopped: bool = False

    def update(self, score: float, epoch: int) -> str:
        """``improved``, ``wait``, ``decay`` (restore best, lower lr) or ``stop``."""
        if math.isfinite(score) and score > self.best_score + self.tolerance:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            return "improved"
        self.bad_epochs += 1
        if math.isfinite(score) and self.bad_epochs < self.patience:
            return "wait"
        if math.isfinite(score) and self.decays < self.max_decays:
            self.decays, self.bad_epochs = self.decays + 1, 0
            return "decay"
        self.stopped = True
        return "stop"

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- one run


@dataclasses.dataclass
class _Run:
    """Everything a training run holds."""

    net: Encoder
    cfg: TrainConfig
    device: torch.device
    optimizer: torch.optim.Optimizer
    scaler: Any
    stopper: _Stopper
    train_loaders: dict[str, Any]
    eval_loaders: dict[str, Any]
    stop_tier: str
    n_train: dict[str, int]
    n_frames: dict[str, int | None]
    passes: dict[str, int]
    best_state: dict[str, torch.Tensor]
    process: distributed.Process = dataclasses.field(default_factory=distributed.Process)
    model: Any = None  # what the training steps call: ``net``, or ``net`` in DDP
    epoch: int = 0
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def _cpu_state(net: Encoder) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}


def _optimizer(net: Encoder, cfg: TrainConfig) -> torch.optim.Optimizer:
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(net.parameters(), lr=_given(cfg.lr), weight_decay=_given(cfg.weight_decay))


def _given(value: Any) -> Any:
    """A field of a resolved :class:`TrainConfig` (never None once resolved)."""
    if value is None:
        raise TrainingError("the TrainConfig was not resolved (call .resolved(kind))")
    return value


def _stop_tier(cfg: TrainConfig, store: Any, mice: Sequence[str], storage: Any) -> str:
    tiers: set[str] = set()
    for m in mice:
        tiers |= set(np.asarray(open_mouse(store, m, storage, chunks=None).tiers.values).tolist())
    wanted = str(cfg.stop_tier)
    if wanted in tiers:
        return wanted
    if wanted == "oracle" and "validation" in tiers:
        return "validation"
    raise TrainingError(
        f"stop_tier: no mouse has a {wanted!r} tier to stop on; tiers: {sorted(tiers)}"
    )


def _setup(
    store: Any,
    model: Any,
    infos: dict[str, Any],
    config: TrainConfig,
    overrides: Mapping[str, Any] | None,
    storage: Any,
) -> _Run:
    torch.manual_seed(config.seed)
    net = _build(model, infos, overrides)
    cfg = config.resolved(net.config.kind)
    process, device_spec = distributed.init(cfg.device)
    device = resolve_device(device_spec)
    net.to(device)
    mice = list(infos)
    stop_tier = _stop_tier(cfg, store, mice, storage)
    split = {"rank": process.rank, "world_size": process.world_size}
    resident = cfg.in_memory == "device"  # batches gathered on the training device
    common = {
        "mice": mice,
        "scale": cfg.scale,
        "seed": cfg.seed,
        "num_workers": cfg.num_workers,
        "pin_memory": device.type == "cuda" and not resident,
        "in_memory": True if resident else cfg.in_memory,
        "storage_options": storage,
        **split,
        **({"device": device} if resident else {}),
    }
    train_loaders = train_loaders_of(net, store, cfg, process, **common)
    missing = [m for m in mice if m not in train_loaders]
    if missing:
        raise TrainingError(f"mice: {missing} have no train trials in {store}")
    _initialize_biases(net, train_loaders, process)
    eval_loaders = model_loaders(
        net, store, [stop_tier], batch_size=_given(cfg.eval_batch_size), **common
    ).get(stop_tier, {})
    amp = cfg.amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()
    return _Run(
        net=net,
        cfg=cfg,
        device=device,
        optimizer=_optimizer(net, cfg),
        scaler=torch.amp.GradScaler("cuda") if amp else None,
        stopper=_Stopper(
            patience=cfg.patience, max_decays=cfg.max_lr_decays, tolerance=cfg.tolerance
        ),
        train_loaders=train_loaders,
        eval_loaders=eval_loaders,
        stop_tier=stop_tier,
        n_train={m: len(loader.dataset) for m, loader in train_loaders.items()},
        n_frames={m: open_mouse(store, m, storage, chunks=None).sizes.get("frame") for m in mice},
        passes=dict.fromkeys(mice, 0),
        best_state=_cpu_state(net),
        process=process,
        model=net,
    )


def train_loaders_of(
    net: Encoder, store: Any, cfg: TrainConfig, process: distributed.Process, **common: Any
) -> dict[str, Any]:
    """The training loaders of this process: its share of each epoch, batches of
    ``batch_size / world_size`` trials; distributed, the surplus that does not fill a step of
    every rank is dropped (no trial twice in an epoch)."""
    return model_loaders(
        net,
        store,
        ["train"],
        batch_size=distributed.local_batch(_given(cfg.batch_size), process),
        frames=cfg.frames,
        drop_last=process.distributed,
        **common,
    ).get("train", {})


def _initialize_biases(
    net: Encoder, loaders: Mapping[str, Any], process: distributed.Process
) -> None:
    """Readout biases = the mean response of a first training batch, as the kits do
    (distributed: of the first batch of every rank, together the single-process first batch)."""
    for mouse, loader in loaders.items():
        readouts = getattr(net, "readouts", None)  # an EncoderDict: no .get
        if readouts is None or mouse not in readouts:
            continue
        readout = readouts[mouse]
        if not hasattr(readout, "initialize_bias"):
            continue
        iterator = iter(loader)
        responses = next(iterator)["responses"]
        del iterator
        dims = (0,) if responses.ndim == 2 else (0, 2)
        values = torch.nan_to_num(responses).double()
        count = torch.tensor(float(np.prod([values.shape[d] for d in dims])), dtype=torch.float64)
        total = distributed.all_sum(torch.cat([values.sum(dim=dims), count[None]]), process)
        readout.initialize_bias((total[:-1] / total[-1]).float())


def _train_epoch(run: _Run, bar: Any) -> dict[str, float]:
    """One pass of ``LongCycler`` over the train tiers; timing and loss statistics."""
    from sensorium_data.loading.loaders import LongCycler

    net, opt, device = run.net, run.optimizer, run.device
    world = run.process.world_size
    net.train()
    for mouse, loader in run.train_loaders.items():
        loader.batch_sampler.set_epoch(run.passes[mouse])
    cycler = LongCycler(run.train_loaders)
    n_mice, steps = len(run.train_loaders), len(cycler)
    consumed = dict.fromkeys(run.train_loaders, 0)
    total = torch.zeros((), device=device)
    samples, wait, start = 0, 0.0, time.perf_counter()
    opt.zero_grad(set_to_none=True)
    iterator = iter(cycler)
    for step in range(steps):
        tick = time.perf_counter()
        mouse, batch = next(iterator)
        wait += time.perf_counter() - tick
        consumed[mouse] += 1
        inputs, kwargs, responses = prepare(net, batch, device)
        if responses is None:  # pragma: no cover - prepare returns them by default
            raise TrainingError(f"mouse {mouse}: a training batch without responses")
        with autocast(device, run.cfg.amp):
            rates = run.model(inputs, mouse=mouse, **kwargs)
        loss, data, penalty = step_loss(net, mouse, rates, responses, run.n_train[mouse], world)
        (run.scaler.scale(loss) if run.scaler else loss).backward()
        if (step + 1) % n_mice == 0 or step + 1 == steps:
            if run.scaler:
                run.scaler.step(opt)
                run.scaler.update()
            else:
                opt.step()
            opt.zero_grad(set_to_none=True)
        total += data.detach() + penalty.detach() / world  # summed over ranks below
        samples += responses.shape[0]
        bar.update(1)
    both = torch.stack([total.double().cpu(), torch.tensor(float(samples), dtype=torch.float64)])
    total_all, samples_all = distributed.all_sum(both, run.process).tolist()
    mean_loss = total_all / max(steps, 1)  # synchronises the device before the clock stops
    seconds = time.perf_counter() - start
    for mouse, loader in run.train_loaders.items():
        run.passes[mouse] += math.ceil(consumed[mouse] / max(len(loader), 1))
    return {
        "loss": mean_loss,
        "train_seconds": seconds,
        "samples_per_s": samples_all / seconds if seconds else 0.0,
        "samples": int(samples_all),
        "processes": world,
        "data_wait_share": wait / seconds if seconds else 0.0,
    }


def stop_score(run: _Run) -> float:
    """Single-trial correlation on the stop tier, neurons of all mice pooled (the kits' way);
    distributed, of every rank's predictions gathered."""
    per_neuron = []
    for mouse, loader in run.eval_loaders.items():
        mine = collect(
            run.net,
            loader,
            mouse,
            device=run.device,
            amp=run.cfg.amp,
            n_frames=run.n_frames[mouse],
        )
        c = distributed.gather_collected(mine, run.process)  # every rank's share, once each
        if c.responses.ndim == 2:
            values = metrics.single_trial_correlation(c.responses, c.predictions, per_neuron=True)
        else:
            values = metrics.dynamic_single_trial_correlation(
                c.responses, c.predictions, skip=run.cfg.skip, valid_frames=c.valid, per_neuron=True
            )
        per_neuron.append(np.nan_to_num(np.asarray(values, dtype=np.float64)))
    return float(np.mean(np.concatenate(per_neuron))) if per_neuron else float("nan")


# ----------------------------------------------------------------------------- checkpoints


def _save_checkpoint(run: _Run, out: pathlib.Path, infos: Mapping[str, Any], store: Any) -> None:
    state = {
        "format": CHECKPOINT_FORMAT,
        "model_config": run.net.config.to_dict(),
        "mice": infos_to_state(infos),
        "train_config": run.cfg.to_dict(),
        "store": str(store),
        "stop_tier": run.stop_tier,
        "epoch": run.epoch,
        "model": _cpu_state(run.net),
        "best_model": run.best_state,
        "best_score": run.stopper.best_score,
        "best_epoch": run.stopper.best_epoch,
        "finished": run.stopper.stopped or run.epoch >= run.cfg.max_epochs,
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.stopper.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler else None,
        "sampler": {"passes": dict(run.passes)},
        "rng": rng_state(),
        "history": run.history,
        "versions": {"torch": str(torch.__version__)},
    }
    write_checkpoint(out, state)


def _restore(run: _Run, state: Mapping[str, Any]) -> None:
    run.net.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scaler and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    for name, value in state["scheduler"].items():
        if name not in ("patience", "max_decays", "tolerance"):
            setattr(run.stopper, name, value)
    run.best_state = {k: v.clone() for k, v in state["best_model"].items()}
    run.passes.update(state["sampler"]["passes"])
    run.epoch = int(state["epoch"])
    run.history = list(state["history"])
    set_rng_state(state["rng"])


def _check_same_run(state: Mapping[str, Any], run: _Run, out: pathlib.Path) -> None:
    # through from_dict: fields added since the checkpoint was written take their defaults
    try:
        stored = ModelConfig.from_dict(state["model_config"]).to_dict()
    except ModelConfigError as exc:
        raise TrainingError(
            f"out_dir: {out} holds a checkpoint whose model config this version cannot read "
            f"({exc}); pick another output folder or pass resume=False"
        ) from exc
    current = run.net.config.to_dict()
    if stored != current:
        diff = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
        raise TrainingError(
            f"out_dir: {out} holds a checkpoint of another model config (differs in {diff}); "
            "pick another output folder or pass resume=False to start over"
        )
    if list(state["mice"]) != list(run.train_loaders):
        raise TrainingError(
            f"out_dir: {out} holds a checkpoint trained on mice {list(state['mice'])}, not "
            f"{list(run.train_loaders)}; pick another output folder or pass resume=False"
        )


# ----------------------------------------------------------------------------- public


def train(
    store: Any,
    model: Any,
    out_dir: str | os.PathLike[str],
    *,
    mice: Sequence[str] | None = None,
    config: TrainConfig | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
    resume: bool = True,
    storage_options: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a model on the train tiers of a store's mice, resumably.

    Parameters
    ----------
    store, storage_options
        The converted store (path or URL) and its fsspec options.
    model
        A name of :data:`sensorium_models.configs.NAMED_CONFIGS` or a ``ModelConfig``.
    out_dir
        Run folder: ``checkpoint.pt`` and ``log.jsonl`` (one JSON line per epoch: ``epoch``,
        ``loss`` (mean objective per step), ``score`` (stop-tier single-trial correlation),
        ``tier``, ``lr``, ``seconds``, ``samples_per_s`` and ``samples`` (of all processes),
        ``processes``, ``data_wait_share`` (share of the
        training time spent waiting for batches), ``action``, ``best_score``,
        ``readout_edge_share`` (the largest share over the mice of readout positions at the edge
        of the feature map, see :func:`readout_edge_share`) and ``readout_collapsed``; a
        collapse is also logged as a warning on the ``sensorium_models.training`` logger).
    mice
        Mice to train on (default every mouse of the store); all of one kind.
    config
        :class:`TrainConfig` (default: the kits' settings).
    overrides
        Passed to ``build_model`` (e.g. smaller cores).
    progress
        Show a tqdm progress bar.
    resume
        Continue from ``out_dir/checkpoint.pt`` when it exists (the model config and mice must
        match; the new ``config`` applies from the next epoch, so ``max_epochs`` can be raised).
        A finished run (stopped early, or at ``max_epochs``) returns at once. ``False`` starts
        over and replaces the folder's checkpoint and log.

    Returns
    -------
    TrainResult
        With the best weights loaded into ``model``.
    """
    from tqdm.auto import tqdm

    config = config or TrainConfig()
    out = pathlib.Path(out_dir)
    infos = mouse_infos(store, mice, storage_options)
    run = _setup(store, model, infos, config, overrides, storage_options)
    if run.process.main:
        out.mkdir(parents=True, exist_ok=True)
        if not resume:
            for name in (CHECKPOINT, LOG):
                (out / name).unlink(missing_ok=True)
    distributed.barrier(run.process)
    state = load_checkpoint(out) if resume and (out / CHECKPOINT).is_file() else None
    if state is not None:
        _check_same_run(state, run, out)
        _restore(run, state)
    run.model = distributed.wrap(run.net, run.process, run.device, len(infos))
    resumed_from = run.epoch
    done = state is not None and state["finished"] and run.epoch >= 1
    done = done and (run.stopper.stopped or run.epoch >= run.cfg.max_epochs)
    for group in run.optimizer.param_groups:
        group["lr"] = _given(run.cfg.lr) * run.cfg.lr_decay_factor**run.stopper.decays
    shown = progress and run.process.main
    bar = tqdm(total=0, disable=not shown, desc=f"train {run.net.config.name}", unit="step")
    try:
        while not done and run.epoch < run.cfg.max_epochs:
            done = _epoch(run, out, infos, store, bar)
    finally:
        bar.close()
    run.net.load_state_dict(run.best_state)
    run.net.eval()
    if run.process.main:
        _save_checkpoint(run, out, infos, store)
    distributed.shutdown(run.process)
    return TrainResult(
        model=run.net,
        out_dir=out,
        best_score=run.stopper.best_score,
        best_epoch=run.stopper.best_epoch,
        epochs=run.epoch,
        resumed_from=resumed_from,
        stopped_early=run.stopper.stopped,
        history=list(run.history),
    )


def _epoch(run: _Run, out: pathlib.Path, infos: Mapping[str, Any], store: Any, bar: Any) -> bool:
    """Train and score one epoch, log and checkpoint it; whether training stops."""
    bar.reset(total=len(run.train_loaders) * max(len(x) for x in run.train_loaders.values()))
    bar.set_description(f"epoch {run.epoch + 1}")
    start = time.perf_counter()
    lr = run.optimizer.param_groups[0]["lr"]
    stats = _train_epoch(run, bar)
    score = stop_score(run)
    run.epoch += 1
    action = run.stopper.update(score, run.epoch)
    if action == "improved":
        run.best_state = _cpu_state(run.net)
    elif action == "decay":  # the kits restore the best weights before lowering the lr
        run.net.load_state_dict(run.best_state)
        for group in run.optimizer.param_groups:
            group["lr"] = group["lr"] * run.cfg.lr_decay_factor
    edges = readout_edge_share(run.net)
    collapsed = sorted(m for m, share in edges.items() if share > COLLAPSED)
    if collapsed and not any(h.get("readout_collapsed") for h in run.history):
        _log.warning(
            "epoch %d: the readout positions of %s have collapsed to the edge of the feature map "
            "(%s of the neurons); the model will hardly learn from the stimulus. "
            "Train again with another TrainConfig.seed.",
            run.epoch,
            ", ".join(collapsed),
            ", ".join(f"{edges[m]:.0%}" for m in collapsed),
        )
    if collapsed and run.cfg.stop_on_collapse:
        run.stopper.stopped = True
        action = "collapsed"
    entry = {
        "epoch": run.epoch,
        **stats,
        "score": score,
        "readout_edge_share": max(edges.values(), default=0.0),
        "readout_collapsed": bool(collapsed),
        "tier": run.stop_tier,
        "lr": lr,
        "seconds": time.perf_counter() - start,
        "action": action,
        "best_score": run.stopper.best_score,
        "best_epoch": run.stopper.best_epoch,
    }
    run.history.append(entry)
    bar.set_postfix(loss=f"{stats['loss']:.4g}", score=f"{score:.4f}")
    if run.process.main:  # rank 0 alone writes
        write_log(out, run.history)
        _save_checkpoint(run, out, infos, store)
    return run.stopper.stopped
