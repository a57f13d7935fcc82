"""Training benchmark (issue 5): do the baselines learn what the synthetic ground truth holds?

On synthetic mice (:func:`sensorium_data.synthesize`, whose noise-free rates are known) it trains
with :func:`sensorium_models.training.train` and scores with the official metrics:

- 2022, three static mice (144 x 256 images, trained at scale 0.25), scored on the ``test`` tier
  against the single-trial correlation of the ground-truth rates with the same responses (the
  noise ceiling: what a perfect model would score):

  - a stimulus-only mouse (``behavior_gain=0``, ``shift_scale=0``: the rates depend on the image
    alone, so a stimulus-only model can reach the ceiling): the CNN baseline
    (``sensorium-sota``) and the LN baseline (``sensorium-ln``);
  - two behaviour mice, where a gain set by running and pupil scales the rates and the receptive
    fields move with the eye: ``behaviour`` (the synthetic defaults, ``behavior_gain=0.5``:
    gains between about 0.5 and 2) and ``moderate`` (``behavior_gain=0.25``). On each,
    ``sensorium-sota`` against two behaviour-aware models: the kit's ``sensorium-plus-sota``
    (behaviour channels and a shifter) and ``sensorium-plus-modulator`` (a shifter and a
    multiplicative behaviour gain per neuron). Here the ceiling of a stimulus-only model is the
    correlation of the rates' stimulus-only part, also reported.
- 2023, one dynamic mouse (36 x 64 videos): ``video-factorised-3d`` against a per-frame-mean
  predictor (every neuron's mean normalised training response at each frame index), on the
  ``oracle``, ``live_test_main`` and ``final_test_main`` tiers (official 2023 single-trial
  correlation, frames 50 .. valid length).
- Throughput of every training run: samples/s and the share of step time spent waiting for
  data (target < 10%), the medians over epochs after the first.

Targets: CNN >= 0.8 x ground truth, CNN > LN, behaviour-aware > stimulus-only, video model >
per-frame mean, data wait < 10%. Cores are shrunk with ``--channels`` / ``--dynamic-channels``
to fit a CPU; everything else is the named configs and the kits' training settings
(``TrainConfig`` defaults: early stopping with patience 5 and up to 4 lr decays), with
``--epochs`` / ``--dynamic-epochs`` as upper bounds. Stores and runs are kept in ``--workdir``
and named by their arguments: a rerun reuses finished runs and resumes interrupted ones
(``--fresh`` retrains); "train s" and the throughput come from the runs' logs. A run whose
readout positions all ran to the edge of the feature map (a collapse the kits' models can fall
into, see ``readout_edge_share``) is reported and retrained with the next seed.

Run::

    python -m benchmarks.training            # 4000 static trials, 300 dynamic trials
    python -m benchmarks.training --quick    # about a minute on 2 cores: a smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import shlex
import shutil
import sys
import time
from typing import Any

import numpy as np
import torch

import sensorium_data as sd
from sensorium_data import metrics
from sensorium_data.store.access import open_statistics
from sensorium_models.evaluation import evaluate
from sensorium_models.inference import collect, model_loaders
from sensorium_models.training import COLLAPSED, TrainConfig, readout_edge_share, train

# (mouse, synthesize() encoder knobs, models trained on it)
STATIC_MICE: tuple[tuple[str, dict[str, float], tuple[str, ...]], ...] = (
    ("stimulus", {"behavior_gain": 0.0, "shift_scale": 0.0}, ("sensorium-ln", "sensorium-sota")),
    ("behaviour", {}, ("sensorium-sota", "sensorium-plus-sota", "sensorium-plus-modulator")),
    (
        "moderate",
        {"behavior_gain": 0.25},
        ("sensorium-sota", "sensorium-plus-sota", "sensorium-plus-modulator"),
    ),
)
#: The behaviour-aware models, each checked against the stimulus-only sensorium-sota: the kit's
#: (behaviour as image channels) and the toolkit's (a multiplicative behaviour modulator).
BEHAVIOUR_MODELS = ("sensorium-plus-sota", "sensorium-plus-modulator")
VIDEO_MODEL = "video-factorised-3d"
RETRIES = 2  # further seeds for a run whose readout collapsed
DYNAMIC_TIERS = ("oracle", "live_test_main", "final_test_main")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.training",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--static-trials", type=int, default=4000)
    p.add_argument("--dynamic-trials", type=int, default=300)
    p.add_argument("--neurons", type=int, default=512, help="2022 neurons per mouse")
    p.add_argument("--dynamic-neurons", type=int, default=64, help="2023 neurons")
    p.add_argument("--frames", type=int, default=150, help="2023 padded trial length")
    p.add_argument("--window", type=int, default=80, help="2023 training window")
    p.add_argument("--channels", type=int, default=16, help="2022 core channels")
    p.add_argument("--dynamic-channels", type=int, default=8, help="2023: per layer x1, 2, 2")
    p.add_argument("--epochs", type=int, default=80, help="2022 upper bound (early stopping)")
    p.add_argument("--dynamic-epochs", type=int, default=15, help="2023 upper bound")
    p.add_argument("--fresh", action="store_true", help="retrain runs the workdir holds")
    p.add_argument("--batch-size", type=int, default=64, help="2022 batch (2023: the kit's 8)")
    p.add_argument("--seed", type=int, default=0, help="of the synthetic data")
    p.add_argument("--train-seed", type=int, default=42, help="of training (TrainConfig.seed)")
    p.add_argument("--device", default="auto")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes: about a minute on 2 cores")
    p.add_argument("--workdir", default="/tmp/sensorium-bench-training")
    p.add_argument("--json", default=None, help="default benchmarks/results/training[-quick].json")
    args = p.parse_args(argv)
    if args.quick:
        args.static_trials, args.dynamic_trials, args.neurons = 400, 60, 16
        args.dynamic_neurons = 16
        args.frames, args.window, args.channels, args.epochs = 90, 60, 8, 3
        args.dynamic_channels, args.dynamic_epochs = 8, 3
    if args.json is None:
        suffix = "-quick" if args.quick else ""
        args.json = f"benchmarks/results/training{suffix}.json"
    return args


# ----------------------------------------------------------------------------- data


def make_store(
    workdir: pathlib.Path,
    kind: str,
    args: argparse.Namespace,
    encoder: dict[str, float] | None = None,
) -> pathlib.Path:
    """One synthetic mouse of ``kind``, converted; reused when its arguments match.

    ``encoder``: :func:`sensorium_data.synthesize` knobs (``behavior_gain``, ``shift_scale``).
    """
    encoder = encoder or {}
    sizes = {"static": (args.static_trials, None), "dynamic": (args.dynamic_trials, args.frames)}
    trials, frames = sizes[kind]
    neurons = args.neurons if kind == "static" else args.dynamic_neurons
    tag = f"{kind}-{trials}x{neurons}" + (f"x{frames}" if frames else "") + f"-s{args.seed}"
    tag += "".join(f"-{k[0]}{v:g}" for k, v in sorted(encoder.items()))  # -b0-s0
    store = workdir / f"{tag}.zarr"
    if not store.exists():
        trees = workdir / f"{tag}-trees"
        shutil.rmtree(trees, ignore_errors=True)
        paths = sd.synthesize(
            trees,
            kind=kind,
            n_trials=trials,
            n_neurons=neurons,
            n_frames=frames,
            seed=args.seed,
            competition=False,
            behavior_gain=encoder.get("behavior_gain"),
            shift_scale=encoder.get("shift_scale"),
        )
        sd.convert(paths, store, progress=False)
        for npz in trees.glob("*.ground_truth.npz"):
            shutil.copy(npz, workdir / f"{tag}.ground_truth.npz")
        shutil.rmtree(trees)
    return store


def ground_truth(store: pathlib.Path) -> dict[str, np.ndarray]:
    with np.load(store.parent / f"{store.stem}.ground_truth.npz") as gt:
        return {k: gt[k] for k in ("rates", "behavior_state", "gain_weights", "behavior_gain")}


def static_ceilings(store: pathlib.Path) -> dict[str, float]:
    """Test-tier single-trial correlation of the noise-free rates (and of their stimulus-only
    part) with the responses; a correlation per neuron does not depend on its scale."""
    ds = sd.open_mouse(store, chunks=None)
    test = np.flatnonzero(np.array(ds.tiers.values.tolist()) == "test")
    responses = np.asarray(ds.responses.values)[test]
    gt = ground_truth(store)
    gain = np.exp(
        gt["behavior_gain"] * (gt["behavior_state"][:, None, :] * gt["gain_weights"]).sum(-1)
    )
    return {
        "ground_truth": float(metrics.single_trial_correlation(responses, gt["rates"][test])),
        "ground_truth_stimulus_only": float(
            metrics.single_trial_correlation(responses, (gt["rates"] / gain)[test])
        ),
    }


# ----------------------------------------------------------------------------- runs


def _throughput(history: list[dict[str, Any]]) -> dict[str, float]:
    later = history[1:] or history
    return {
        "samples_per_s": float(np.median([h["samples_per_s"] for h in later])),
        "data_wait_share": float(np.median([h["data_wait_share"] for h in later])),
    }


def run_model(
    store: pathlib.Path,
    name: str,
    config: TrainConfig,
    overrides: dict[str, Any],
    fresh: bool,
) -> tuple[Any, dict[str, Any]]:
    """Train (or, unless ``fresh``, reuse or resume the run in the workdir) and time it.

    A run whose readout positions collapsed to the edge of the feature map (see
    :func:`sensorium_models.training.readout_edge_share`) is reported and trained again with the
    next seed, at most ``RETRIES`` times; the row names the seeds that collapsed.
    """
    channels = overrides["hidden_channels"]
    width = channels if isinstance(channels, int) else channels[0]
    collapsed: list[dict[str, Any]] = []
    for attempt in range(RETRIES + 1):
        seed = config.seed + attempt
        out = store.parent / f"{store.stem}-{name}-c{width}-e{config.max_epochs}-t{seed}"
        start = time.perf_counter()
        result = train(
            store,
            name,
            out,
            config=dataclasses.replace(config, seed=seed),
            overrides=overrides,
            progress=False,
            resume=not fresh,
        )
        edge = max(readout_edge_share(result.model).values())
        reused = f", {result.resumed_from} of them done before" if result.resumed_from else ""
        seconds = time.perf_counter() - start
        print(f"  {name} (seed {seed}): {result.epochs} epochs{reused}; {seconds:.0f} s now")
        if edge <= COLLAPSED or attempt == RETRIES:
            break
        print(f"    readout collapsed ({edge:.0%} of positions at the map's edge): next seed")
        collapsed.append({"seed": seed, "stop_score": result.best_score, "edge_share": edge})
    row = {
        "model": name,
        "seed": seed,
        "collapsed_seeds": collapsed,
        "readout_edge_share": edge,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "stop_score": result.best_score,
        "train_seconds": round(sum(h["seconds"] for h in result.history), 1),
        **_throughput(result.history),
    }
    return result.model, row


def static_experiment(workdir: pathlib.Path, args: argparse.Namespace) -> dict[str, Any]:
    config = TrainConfig(
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.train_seed,
        device=args.device,
        num_workers=args.num_workers,
        stop_on_collapse=True,
    )
    overrides = {"hidden_channels": args.channels}
    out: dict[str, Any] = {}
    for mouse, encoder, names in STATIC_MICE:
        print(f"2022: {mouse} mouse", flush=True)
        store = make_store(workdir, "static", args, encoder)
        rows = []
        for name in names:
            model, row = run_model(store, name, config, overrides, args.fresh)
            scores = evaluate(model, store, ["test"])["tiers"]["test"]["mean"]
            rows.append({**row, "mouse": mouse, "tier": "test", **scores})
        out[mouse] = {"encoder": encoder, "rows": rows, **static_ceilings(store)}
    return out


def per_frame_mean(store: pathlib.Path, model: Any) -> np.ndarray:
    """(N, T_max) mean normalised training response at each frame index."""
    (mouse,) = sd.list_mice(store)
    loader = model_loaders(model, store, ["train"], mice=[mouse], batch_size=16)["train"][mouse]
    n_frames = sd.open_mouse(store, chunks=None).sizes["frame"]
    total = np.zeros((model.mice[mouse].n_neurons, n_frames))
    count = np.zeros(n_frames)
    for batch in loader:
        r = batch["responses"].numpy().astype(np.float64)  # (B, N, T), NaN after valid
        t = r.shape[2]
        total[:, :t] += np.nansum(r, axis=0)
        count[:t] += np.isfinite(r[:, 0, :]).sum(axis=0)
    return total / np.maximum(count, 1)


def dynamic_experiment(store: pathlib.Path, args: argparse.Namespace) -> dict[str, Any]:
    config = TrainConfig(
        max_epochs=args.dynamic_epochs,
        frames=args.window,
        seed=args.train_seed,
        device=args.device,
        num_workers=args.num_workers,
        stop_on_collapse=True,
    )
    c = args.dynamic_channels
    overrides = {"hidden_channels": [c, 2 * c, 2 * c]}
    model, row = run_model(store, VIDEO_MODEL, config, overrides, args.fresh)
    (mouse,) = sd.list_mice(store)
    mean = per_frame_mean(store, model)
    loaders = model_loaders(model, store, DYNAMIC_TIERS, mice=[mouse], batch_size=8)
    device = next(model.parameters()).device
    n_frames = mean.shape[1]
    stats = open_statistics(store, mouse)
    normalize = sd.Normalizer.from_statistics(stats, kind="dynamic")
    rates = normalize("responses", ground_truth(store)["rates"], frame_start=0)
    rows = []
    for tier in DYNAMIC_TIERS:
        if mouse not in loaders.get(tier, {}):
            continue
        got = collect(model, loaders[tier][mouse], mouse, device=device, n_frames=n_frames)
        baseline = np.broadcast_to(mean, got.predictions.shape).copy()
        truth = rates[got.trials]
        for j, v in enumerate(got.valid):  # type: ignore[arg-type]
            baseline[j, :, v:] = np.nan
        kw: dict[str, Any] = {"valid_frames": got.valid}
        score = metrics.dynamic_single_trial_correlation
        rows.append(
            {
                **row,
                "tier": tier,
                "single_trial_correlation": float(score(got.responses, got.predictions, **kw)),
                "per_frame_mean": float(score(got.responses, baseline, **kw)),
                "ground_truth": float(score(got.responses, np.nan_to_num(truth), **kw)),
            }
        )
    return {"rows": rows}


# ----------------------------------------------------------------------------- report


def checks(static: dict[str, Any], dynamic: dict[str, Any]) -> list[dict[str, Any]]:
    plain = static["stimulus"]

    def score(mouse: dict[str, Any], model: str) -> float:
        (row,) = [r for r in mouse["rows"] if r["model"] == model]
        return float(row["single_trial_correlation"])

    cnn, ln = score(plain, "sensorium-sota"), score(plain, "sensorium-ln")
    video = [(r["single_trial_correlation"], r["per_frame_mean"]) for r in dynamic["rows"]]
    rows = [r for mouse in static.values() for r in mouse["rows"]] + dynamic["rows"]
    wait = max(r["data_wait_share"] for r in rows)
    return [
        {
            "check": "CNN >= 0.8 x ground truth (stimulus-only mouse, test)",
            "value": cnn / plain["ground_truth"],
            "target": 0.8,
            "met": cnn >= 0.8 * plain["ground_truth"],
        },
        {
            "check": "CNN > LN (stimulus-only mouse, test)",
            "value": cnn - ln,
            "target": 0.0,
            "met": cnn > ln,
        },
        *(
            {
                "check": f"{aware} > sensorium-sota ({mouse} mouse, test)",
                "value": score(static[mouse], aware) - score(static[mouse], "sensorium-sota"),
                "target": 0.0,
                "met": score(static[mouse], aware) > score(static[mouse], "sensorium-sota"),
            }
            for mouse in ("behaviour", "moderate")
            if mouse in static
            for aware in BEHAVIOUR_MODELS
        ),
        {
            "check": "video model > per-frame mean (every tier)",
            "value": min(v - m for v, m in video),
            "target": 0.0,
            "met": all(v > m for v, m in video),
        },
        {
            "check": "data wait share < 10% (worst run)",
            "value": wait,
            "target": 0.1,
            "met": wait < 0.1,
        },
    ]


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    cells = [columns] + [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[k]) for row in cells) for k in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells)


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    static = static_experiment(workdir, args)
    print("2023: dynamic mouse", flush=True)
    dynamic = dynamic_experiment(make_store(workdir, "dynamic", args), args)
    found = checks(static, dynamic)
    static_cols = [
        "mouse",
        "model",
        "seed",
        "tier",
        "single_trial_correlation",
        "correlation_to_average",
        "feve",
        "epochs",
        "best_epoch",
        "samples_per_s",
        "data_wait_share",
    ]
    dynamic_cols = [
        "model",
        "tier",
        "single_trial_correlation",
        "per_frame_mean",
        "ground_truth",
        "epochs",
        "samples_per_s",
        "data_wait_share",
    ]
    ceilings = "; ".join(
        f"{mouse} mouse {m['ground_truth']:.3f}, its stimulus-only part "
        f"{m['ground_truth_stimulus_only']:.3f}"
        for mouse, m in static.items()
    )
    report = [
        f"2022, test tier (ground truth: {ceilings}):",
        table([r for m in static.values() for r in m["rows"]], static_cols),
        "",
        "2023 (official single-trial correlation, frames 50 .. valid):",
        table(dynamic["rows"], dynamic_cols),
        "",
        table(found, ["check", "value", "target", "met"]),
        f"\n{time.perf_counter() - start:.0f} s in all",
    ]
    print("\n".join(report))
    out = pathlib.Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.training " + shlex.join(sys.argv[1:] if argv is None else argv)
    out.write_text(
        json.dumps(
            {
                "command": command.strip(),
                "date": datetime.datetime.now().isoformat(timespec="seconds"),
                "machine": machine(),
                "arguments": vars(args),
                "static": static,
                "dynamic": dynamic,
                "checks": found,
                "seconds": round(time.perf_counter() - start, 1),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
