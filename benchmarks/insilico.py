"""In-silico benchmark (issue 14): does a trained model's in-silico biology match the ground truth?

A stimulus-only synthetic 2022 mouse (``behavior_gain=0``, ``shift_scale=0``: the rates depend on
the image alone) whose neurons' true receptive fields are known (``<tree>.ground_truth.npz``:
centre, orientation, period, phase, simple or complex), a ``sensorium-sota`` model trained on it
(the run of ``benchmarks/training.py``'s stimulus-only mouse, reused when the workdir holds it),
then :mod:`sensorium_models.insilico` on the neurons whose test single-trial correlation is at
least 0.3:

- receptive-field centres from the gradient receptive fields, against the true centres on the
  36 x 64 input (the true centres are on the encoder's grid, whose pixel ``j`` is the model's
  pixel ``j - 0.375``: the encoder samples the 144 x 256 image at every 4th pixel, the kits'
  rescale averages around pixel ``4 j + 1.5``);
- preferred orientations from full-field gratings (16 orientations, 6 periods, 8 phases),
  against the true ones (modulo 180 degrees);
- phase modulation of the responses at the preferred grating ((max - min) / (max + min) over
  phase) for the true simple and complex cells;
- most exciting inputs of 32 of these neurons (3 seeds, 200 steps, the natural images' contrast)
  against the best of the training images.

Targets: centres within 2 px for at least 80% of the neurons, orientations within 15 degrees for
at least 70%.

Run::

    python -m benchmarks.insilico            # 4000 trials x 512 neurons, 16-channel core
    python -m benchmarks.insilico --quick    # a smoke run of a minute
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import shlex
import sys
import time
from typing import Any

import numpy as np

import sensorium_data as sd
from benchmarks.training import machine, make_store, run_model
from sensorium_data import metrics
from sensorium_models import insilico
from sensorium_models.evaluation import predict
from sensorium_models.training import TrainConfig

GRID_OFFSET = 0.375  # model pixel = encoder grid pixel - 0.375 (see the module notes)
TARGETS = {"center_within_2px": 0.8, "orientation_within_15deg": 0.7}
MIN_CORRELATION = 0.3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.insilico",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="small data and model: a smoke run")
    p.add_argument("--static-trials", type=int, default=4000)
    p.add_argument("--neurons", type=int, default=512)
    p.add_argument("--channels", type=int, default=16, help="core channels")
    p.add_argument("--epochs", type=int, default=80, help="upper bound (early stopping)")
    p.add_argument("--mei-neurons", type=int, default=32)
    p.add_argument("--seed", type=int, default=0, help="of the synthetic data")
    p.add_argument("--train-seed", type=int, default=42)
    p.add_argument("--device", default="auto")
    p.add_argument("--workdir", default="/tmp/sensorium-bench-insilico")
    p.add_argument("--json", default=None, help="default benchmarks/results/insilico[-quick].json")
    args = p.parse_args(argv)
    if args.quick:
        args.static_trials, args.neurons, args.channels, args.epochs = 600, 48, 8, 4
        args.mei_neurons = 4
    # what make_store expects of the training benchmark's arguments
    args.dynamic_trials, args.dynamic_neurons, args.frames = 0, 0, None
    return args


def test_correlations(model: Any, store: pathlib.Path, mouse: str) -> np.ndarray:
    ds = sd.open_mouse(store, mouse, chunks=None)
    test = np.flatnonzero(np.array(ds.tiers.values.tolist()) == "test")
    responses = np.asarray(ds.responses.values)[test]
    predictions = predict(model, store, "test", mouse)
    return np.asarray(metrics.single_trial_correlation(responses, predictions, per_neuron=True))


def angle_error(a: np.ndarray, b: np.ndarray, period: float) -> np.ndarray:
    d = np.abs(np.asarray(a) - np.asarray(b)) % period
    return np.minimum(d, period - d)


def experiment(args: argparse.Namespace, workdir: pathlib.Path) -> dict[str, Any]:
    store = make_store(workdir, "static", args, {"behavior_gain": 0.0, "shift_scale": 0.0})
    (mouse,) = sd.list_mice(store)
    config = TrainConfig(
        max_epochs=args.epochs,
        batch_size=64,
        seed=args.train_seed,
        device=args.device,
        stop_on_collapse=True,
    )
    print("training (or reusing) sensorium-sota", flush=True)
    model, run = run_model(
        store, "sensorium-sota", config, {"hidden_channels": args.channels}, False
    )
    model.eval()
    with np.load(workdir / f"{store.stem}.ground_truth.npz") as gt:
        truth = {k: gt[k] for k in ("rf_center", "rf_orientation", "rf_period", "is_complex")}
    corr = test_correlations(model, store, mouse)
    good = np.flatnonzero(corr >= MIN_CORRELATION)
    print(f"{len(good)} of {len(corr)} neurons with test correlation >= {MIN_CORRELATION}")
    space = insilico.InputSpace.from_store(model, store, mouse)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    fields = insilico.gradient_receptive_fields(model, mouse, space, good)
    centers, sizes = insilico.receptive_field_centers(fields)
    timings["receptive_fields_s"] = time.perf_counter() - start
    true_centers = truth["rf_center"][good] - GRID_OFFSET
    center_error = np.linalg.norm(centers - true_centers, axis=1)

    start = time.perf_counter()
    tuning = insilico.grating_tuning(model, mouse, space, good)
    timings["tuning_s"] = time.perf_counter() - start
    found_ori = np.asarray(tuning["preferred_orientation"].values)
    ori_error = np.degrees(angle_error(found_ori, truth["rf_orientation"][good], np.pi))
    at_best = tuning["responses"].sel(  # nearest: the preferred orientation is a vector sum
        orientation=tuning["preferred_orientation"].fillna(0.0),
        period=tuning["preferred_period"],
        method="nearest",
    )
    peak, trough = at_best.max("phase").values, at_best.min("phase").values
    modulation = (peak - trough) / np.maximum(peak + trough, 1e-12)
    complex_cell = truth["is_complex"][good].astype(bool)

    start = time.perf_counter()
    mei_neurons = good[np.argsort(-corr[good])[: args.mei_neurons]]
    natural = insilico.natural_stimuli(model, store, mouse, space, tiers=("train",))
    meis = insilico.most_exciting_inputs(model, mouse, space, mei_neurons, natural=natural)
    timings["meis_s"] = time.perf_counter() - start
    ratio = meis.ratio if meis.ratio is not None else np.full(len(mei_neurons), np.nan)

    summary = {
        "neurons": len(corr),
        "neurons_analysed": len(good),
        "test_correlation_median": float(np.median(corr[good])) if len(good) else None,
        "center_within_2px": float(np.mean(center_error <= 2.0)),
        "center_error_median_px": float(np.median(center_error)),
        "orientation_within_15deg": float(np.mean(ori_error <= 15.0)),
        "orientation_error_median_deg": float(np.median(ori_error)),
        "phase_modulation_simple_median": float(np.median(modulation[~complex_cell])),
        "phase_modulation_complex_median": float(np.median(modulation[complex_cell])),
        "mei_over_best_natural_median": float(np.median(ratio)),
        "mei_beats_best_natural": float(np.mean(ratio > 1.0)),
        "rf_size_median_px": float(np.median(sizes[:, 0])),
    }
    return {
        "mouse": mouse,
        "store": str(store),
        "run": run,
        "summary": summary,
        "timings": {k: round(v, 1) for k, v in timings.items()},
        "per_neuron": {
            "neuron": good.tolist(),
            "test_correlation": corr[good].round(4).tolist(),
            "center_found": centers.round(3).tolist(),
            "center_true": true_centers.round(3).tolist(),
            "orientation_found_deg": np.degrees(found_ori).round(2).tolist(),
            "orientation_true_deg": np.degrees(truth["rf_orientation"][good]).round(2).tolist(),
            "phase_modulation": modulation.round(4).tolist(),
            "is_complex": complex_cell.tolist(),
        },
        "meis": {
            "neuron": meis.neurons.tolist(),
            "activation": meis.activations.round(4).tolist(),
            "natural_best": meis.natural_best.round(4).tolist()
            if meis.natural_best is not None
            else None,
        },
        "_figures": (fields, centers, true_centers, found_ori, good, truth, meis, natural),
    }


def write_figures(result: dict[str, Any], out: pathlib.Path) -> list[pathlib.Path]:
    from sensorium_data import plotting

    _, centers, true_centers, found_ori, good, truth, meis, natural = result.pop("_figures")
    files = []
    fig = plotting.truth_vs_found(
        true_centers[:, 1],
        centers[:, 1],
        label="RF centre, column",
        unit="px",
        tolerance=2.0,
        title="receptive-field centres (x)",
    )
    files.append(out.with_name(out.stem + "_centers.png"))
    fig.savefig(files[-1], dpi=110)
    fig = plotting.truth_vs_found(
        np.degrees(truth["rf_orientation"][good]),
        np.degrees(found_ori),
        label="orientation",
        unit="deg",
        period=180.0,
        tolerance=15.0,
        title="preferred orientations",
    )
    files.append(out.with_name(out.stem + "_orientations.png"))
    fig.savefig(files[-1], dpi=110)
    n = min(6, len(meis.neurons))
    best_natural = natural[meis.natural_index[:n]].numpy() if meis.natural_index is not None else []
    rows = [*meis.best[:n], *best_natural]
    best_rates = meis.activations.max(1)[:n]
    titles = [f"MEI {k}: {a:.2f}" for k, a in zip(meis.neurons[:n], best_rates, strict=True)]
    if meis.natural_best is not None:
        natural_rates = meis.natural_best[:n]
        titles += [
            f"best image {k}: {a:.2f}" for k, a in zip(meis.neurons[:n], natural_rates, strict=True)
        ]
    fig = plotting.image_grid(
        np.stack(rows), titles=titles, columns=n, title="MEIs and best natural images (rate)"
    )
    files.append(out.with_name(out.stem + "_meis.png"))
    fig.savefig(files[-1], dpi=110)
    return files


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = experiment(args, workdir)
    out = pathlib.Path(
        args.json or f"benchmarks/results/insilico{'-quick' if args.quick else ''}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    files = write_figures(result, out)
    checks = [
        {
            "check": name,
            "value": result["summary"][name],
            "target": target,
            "met": result["summary"][name] >= target,
        }
        for name, target in TARGETS.items()
    ]
    report = {
        "command": "python -m benchmarks.insilico "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
        **result,
        "checks": checks,
        "figures": [str(f) for f in files],
    }
    out.write_text(json.dumps(report, indent=1) + "\n")
    for key, value in result["summary"].items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    for c in checks:
        verdict = "met" if c["met"] else "NOT met"
        print(f"{c['check']}: {c['value']:.2f} (target {c['target']}) {verdict}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
