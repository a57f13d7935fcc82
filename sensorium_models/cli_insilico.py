"""``sensorium-models insilico {predict,mei,rf,tuning}``: in-silico experiments from the shell.

Each writes its arrays into ``--out`` (``.npy``; tuning as an xarray ``tuning.zarr``), a
``summary.json`` and a PNG figure (with matplotlib). ``--store`` gives the mouse's statistics
and mean behaviour (:meth:`InputSpace.from_store`) and, for MEIs, the natural images to beat;
without it the stimuli are taken as normalised already.
"""

from __future__ import annotations

import argparse
import json
import pathlib
from typing import Any

import numpy as np

__all__ = ["add_parser", "run"]

_WHAT = {
    "predict": "predicted responses to pictures or clips (a folder, a file or a .npy array)",
    "mei": "most exciting inputs, against the best natural image when --store is given",
    "rf": "gradient receptive fields, their centres and sizes",
    "tuning": "tuning to full-field gratings (video models: also drifting gratings)",
}


def add_parser(sub: Any, common: Any) -> None:
    """The ``insilico`` command and its four subcommands (``common`` adds the checkpoint
    flags)."""
    from sensorium_data._argparse import examples

    first = "sensorium-models insilico rf --checkpoint runs/sota --store S.zarr --mouse M --out rf/"
    p = sub.add_parser("insilico", help="in-silico experiments on a model", **examples(first))
    inner = p.add_subparsers(
        dest="experiment", metavar="EXPERIMENT", parser_class=type(p), help="the experiment"
    )
    inner.required = True
    for name, what in _WHAT.items():
        extra = " --store S.zarr --stimuli pictures/" if name == "predict" else ""
        q = inner.add_parser(
            name,
            help=what,
            **examples(
                f"sensorium-models insilico {name} --checkpoint sensorium-sota --mouse 26872-17-20"
                f"{extra} --out {name}/"
            ),
        )
        common(q)
        q.add_argument("--mouse", required=True, help="which of the model's mice")
        q.add_argument("--out", required=True, metavar="DIR", help="folder for the results")
        q.add_argument(
            "--store", default=None, metavar="URL", help="the mouse's data (statistics, images)"
        )
        q.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda:0")
        if name == "predict":
            q.add_argument("--stimuli", required=True, metavar="PATH", help="pictures or .npy")
        else:
            q.add_argument(
                "--neurons",
                type=int,
                nargs="+",
                default=None,
                metavar="N",
                help="neuron indices (default: all; MEIs: the first 8)",
            )
        if name == "mei":
            q.add_argument("--seeds", type=int, default=3, help="starts per neuron")
            q.add_argument("--steps", type=int, default=200, help="gradient-ascent steps")


def run(args: argparse.Namespace, model: Any) -> int:
    """Run ``args.experiment`` on ``model``; print what was written."""
    from sensorium_models import insilico
    from sensorium_models.insilico.rf import _neurons

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mouse = args.mouse
    model.readout(mouse)  # an unknown mouse fails here, naming the model's mice
    if args.store is not None:
        space = insilico.InputSpace.from_store(model, args.store, mouse)
    else:
        space = insilico.InputSpace.default(model)
    written: list[pathlib.Path] = []
    summary: dict[str, Any] = {"mouse": mouse, "space": space.__dict__}
    figure = None
    if args.experiment == "predict":
        if args.store is None:
            raise ValueError(
                "store: predict needs --store, the mouse's pixel statistics to normalise the "
                "pictures with"
            )
        stimuli = insilico.load_stimuli(args.stimuli, space)
        rates = insilico.natural_responses(model, mouse, space, stimuli)
        written.append(_save(out / "responses.npy", rates))
        summary["stimuli"] = len(stimuli)
    elif args.experiment == "rf":
        fields = insilico.gradient_receptive_fields(model, mouse, space, args.neurons)
        centers, sizes = insilico.receptive_field_centers(fields)
        neurons = _neurons(model, mouse, args.neurons)
        written += [
            _save(out / "receptive_fields.npy", fields),
            _save(out / "centers.npy", centers),
            _save(out / "sizes.npy", sizes),
            _save(out / "neurons.npy", neurons),
        ]
        shown = fields if fields.ndim == 3 else fields.mean(axis=1)
        figure = ("image_grid", shown[:24], [f"neuron {n}" for n in neurons[:24]])
    elif args.experiment == "mei":
        first = min(8, model.readout(mouse).n_neurons)
        neurons = args.neurons if args.neurons is not None else list(range(first))
        natural = None
        if args.store is not None:
            natural = insilico.natural_stimuli(model, args.store, mouse, space)
        result = insilico.most_exciting_inputs(
            model,
            mouse,
            space,
            neurons,
            seeds=range(args.seeds),
            steps=args.steps,
            natural=natural,
            progress=True,
        )
        written += [
            _save(out / "meis.npy", result.inputs),
            _save(out / "activations.npy", result.activations),
            _save(out / "neurons.npy", result.neurons),
        ]
        summary["norm"] = result.norm
        if result.natural_best is not None and result.ratio is not None:
            written.append(_save(out / "natural_best.npy", result.natural_best))
            summary["mei_over_best_natural"] = result.ratio.tolist()
        best = result.best if result.best.ndim == 3 else result.best.mean(axis=1)
        titles = [
            f"neuron {n}: {a:.2f}"
            for n, a in zip(result.neurons, result.activations.max(1), strict=True)
        ]
        figure = ("image_grid", best, titles)
    else:
        tuning = insilico.grating_tuning(model, mouse, space, args.neurons)
        tuning.to_zarr(out / "tuning.zarr", mode="w", consolidated=False)
        written.append(out / "tuning.zarr")
        if space.kind == "dynamic":
            drifting = insilico.drifting_grating_tuning(model, mouse, space, args.neurons)
            drifting.to_zarr(out / "drifting.zarr", mode="w", consolidated=False)
            written.append(out / "drifting.zarr")
        summary["preferred_orientation_deg"] = (
            np.degrees(tuning["preferred_orientation"].values).round(2).tolist()
        )
        figure = ("tuning_curves", tuning, None)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    written.append(out / "summary.json")
    if figure is not None:
        written += _figure(out, *figure)
    for path in written:
        print(f"wrote {path}")
    return 0


def _save(path: pathlib.Path, values: Any) -> pathlib.Path:
    np.save(path, np.asarray(values))
    return path


def _figure(out: pathlib.Path, kind: str, values: Any, titles: Any) -> list[pathlib.Path]:
    try:
        from sensorium_data import plotting

        plotting.require_matplotlib()
    except ImportError:
        return []  # arrays only: the figure needs matplotlib
    if kind == "image_grid":
        fig = plotting.image_grid(values, titles=titles)
    else:
        fig = plotting.tuning_curves(values, neurons=list(values["neuron"].values[:12]))
    path = out / f"{kind}.png"
    fig.savefig(path, dpi=100)
    return [path]
