"""The ``sensorium-models`` command line: train, evaluate, submit.

::

    sensorium-models train --store S.zarr --model sensorium-sota --out runs/sota [--mice M ...]
        [--epochs N] [--batch-size B] [--lr LR] [--device auto|cpu|cuda] [--seed S]
        [--frames F] [--overrides JSON] [--no-resume] [--quiet]
    sensorium-models evaluate --checkpoint runs/sota --store S.zarr [--json OUT] [--tiers ...]
        [--plots DIR]
    sensorium-models submit --checkpoint runs/sota --store S.zarr --out submission/
    sensorium-models export-kit --checkpoint runs/sota --out sota_for_kit.pth
    sensorium-models insilico {predict,mei,rf,tuning} --checkpoint runs/sota --mouse M --out DIR
        [--store S.zarr] [--neurons N ...] [--stimuli PATH]

``--checkpoint`` of evaluate and submit also takes the 2022 kit's published checkpoints by name
(``sensorium-sota``, ...) and kit ``state_dict`` files with ``--kit-model NAME``.

Errors exit with status 1 and a message that names the argument at fault.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["main"]

_PROG = "sensorium-models"


class _UsageError(Exception):
    """A bad command line (argparse's own errors included): exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _json_dict(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object such as '{{\"a\": 1}}', got {text!r}"
        )
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", required=True, metavar="URL", help="converted store, path or URL")
    p.add_argument(
        "--storage-options",
        type=_json_dict,
        default=None,
        metavar="JSON",
        help='fsspec options of the store, e.g. \'{"endpoint_url": "http://..."}\'',
    )
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda:0, ...")
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        metavar="B",
        help="trials per batch (default: the model's, 128 images or 8 videos when evaluating)",
    )


def _checkpoint_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="DIR",
        help="run folder or .pt file; a 2022 kit checkpoint by name (sensorium-sota, "
        "sensorium-ln, sensorium-plus-sota, sensorium-plus-ln, sensorium-generalization; "
        "downloaded once); or a kit .pth path or URL with --kit-model",
    )
    p.add_argument(
        "--kit-model",
        default=None,
        metavar="NAME",
        help="--checkpoint is a 2022 kit state_dict of this architecture (e.g. sensorium-sota)",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sensorium-data")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0+unknown"


def _parser() -> argparse.ArgumentParser:
    from sensorium_data._argparse import HelpFormatter, add_scored_frames, examples
    from sensorium_models.configs import NAMED_CONFIGS

    parser = _Parser(
        prog=_PROG,
        description="Train, evaluate and submit SENSORIUM baselines.",
        formatter_class=HelpFormatter,
        epilog="example:\n  sensorium-models train --store sensorium.zarr --model sensorium-sota",
    )
    parser.add_argument("--version", action="version", version=_version(), help="print the version")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "train",
        help="train a model on a store (resumes an interrupted run)",
        **examples(
            "sensorium-models train --store sensorium.zarr --model sensorium-sota --out runs/sota",
            "sensorium-models train --store videos.zarr --model video-gru --epochs 5",
        ),
    )
    _common(p)
    p.add_argument(
        "--model",
        required=True,
        metavar="NAME",
        help=f"the model to train, one of: {', '.join(NAMED_CONFIGS)}",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="run folder (default: runs/NAME)")
    p.add_argument(
        "--mice", nargs="+", default=None, metavar="MOUSE", help="mice to train on (default: all)"
    )
    p.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="most epochs (default: 200; early stopping usually ends sooner)",
    )
    p.add_argument(
        "--lr", type=_positive_float, default=None, help="learning rate (default: the model's)"
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (default: 42)")
    p.add_argument(
        "--frames",
        type=_positive_int,
        default=None,
        help="2023: training window length in frames (default: 80, as the kits)",
    )
    p.add_argument(
        "--patience",
        type=_positive_int,
        default=None,
        help="epochs without improvement before the learning rate decays (default: 5)",
    )
    p.add_argument(
        "--num-workers",
        type=int,
        default=None,
        metavar="N",
        help="DataLoader worker processes (default: 0, reading ahead in a thread)",
    )
    p.add_argument(
        "--data",
        choices=("auto", "streaming", "memory", "device"),
        default="auto",
        help="how batches are made: 'streaming' from the store, 'memory' from arrays read once, "
        "'device' gathered on the training device, 'auto' memory when a mouse fits in 2 GiB",
    )
    p.add_argument(
        "--overrides",
        type=_json_dict,
        default=None,
        metavar="JSON",
        help="model config overrides, e.g. '{\"hidden_channels\": 16}'",
    )
    p.add_argument("--no-resume", action="store_true", help="start over in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "evaluate",
        help="official metrics of a trained model",
        **examples(
            "sensorium-models evaluate --store sensorium.zarr --checkpoint runs/sota "
            "--json scores.json --plots plots/"
        ),
    )
    _common(p)
    _checkpoint_flags(p)
    p.add_argument(
        "--tiers",
        nargs="+",
        default=None,
        metavar="TIER",
        help="tiers to score (default: 2022 validation, test, final_test; 2023 oracle and the "
        "test tiers)",
    )
    p.add_argument("--json", default=None, metavar="OUT", help="also write the report as JSON")
    p.add_argument(
        "--plots",
        default=None,
        metavar="DIR",
        help="also write PNGs: per-neuron metrics per tier, readout positions per mouse, the "
        "learning curve of a run folder (needs matplotlib)",
    )
    add_scored_frames(p, detect=False)

    p = sub.add_parser(
        "submit",
        help="write the official submission files",
        **examples(
            "sensorium-models submit --store sensorium.zarr --checkpoint runs/sota "
            "--out submission/"
        ),
    )
    _common(p)
    _checkpoint_flags(p)
    p.add_argument("--out", required=True, metavar="DIR", help="submission folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    add_scored_frames(p, detect=False)

    p = sub.add_parser(
        "export-kit",
        help="save a 2022 model as a state_dict the kit's model loads strictly",
        **examples("sensorium-models export-kit --checkpoint runs/sota --out sota_for_kit.pth"),
    )
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="run folder or .pt file")
    p.add_argument("--out", required=True, metavar="FILE", help="the .pth file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")

    from sensorium_models.cli_insilico import add_parser as add_insilico

    add_insilico(sub, _checkpoint_flags)
    return parser


_FLAGS = {"max_epochs": "epochs"}  # TrainConfig fields whose flag has another name


def _train(args: argparse.Namespace) -> int:
    from sensorium_models.configs import NAMED_CONFIGS
    from sensorium_models.training import TrainConfig, train

    if args.model not in NAMED_CONFIGS:
        raise _UsageError(f"--model: unknown model {args.model!r}; known: {sorted(NAMED_CONFIGS)}")
    given = {
        "max_epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "frames": args.frames,
        "patience": args.patience,
        "num_workers": args.num_workers,
        "in_memory": {"auto": "auto", "streaming": False, "memory": True, "device": "device"}[
            args.data
        ],
        "device": args.device,
    }
    try:
        config = TrainConfig(**{k: v for k, v in given.items() if v is not None})
    except ValueError as exc:  # "TrainConfig.<field> must be ..." -> the flag of the field
        field = str(exc).split(" ", 1)[0].removeprefix("TrainConfig.")
        flag = _FLAGS.get(field, field.replace("_", "-"))
        raise _UsageError(f"--{flag}: {str(exc).split(' ', 1)[1]}") from None
    out = pathlib.Path(args.out or f"runs/{args.model}")
    result = train(
        args.store,
        args.model,
        out,
        mice=args.mice,
        config=config,
        overrides=args.overrides,
        progress=not args.quiet,
        resume=not args.no_resume,
        storage_options=args.storage_options,
    )
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 reports
        print(
            f"{args.model}: {result.epochs} epochs (resumed after {result.resumed_from}), best "
            f"score {result.best_score:.4f} at epoch {result.best_epoch}; checkpoint "
            f"{result.checkpoint}"
        )
    return 0


def _load(args: argparse.Namespace) -> Any:
    from sensorium_models.configs import NAMED_CONFIGS
    from sensorium_models.inference import resolve_device
    from sensorium_models.kit import KIT_CHECKPOINTS, load_kit_checkpoint
    from sensorium_models.training import load_model

    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise _UsageError(f"--device: {exc}") from None
    kit_model = getattr(args, "kit_model", None)
    path = pathlib.Path(args.checkpoint)
    if kit_model is not None:
        if kit_model not in NAMED_CONFIGS:
            raise _UsageError(
                f"--kit-model: unknown model {kit_model!r}; known: {sorted(NAMED_CONFIGS)}"
            )
        return load_kit_checkpoint(args.checkpoint, model=kit_model, device=device)
    if not path.exists() and args.checkpoint in KIT_CHECKPOINTS:
        return load_kit_checkpoint(args.checkpoint, device=device)
    if not path.exists():
        raise _UsageError(
            f"--checkpoint: {path} does not exist (nor is it a kit checkpoint name: "
            f"{sorted(KIT_CHECKPOINTS)})"
        )
    return load_model(path, device=device)


def _require_matplotlib() -> None:
    from sensorium_data.plotting import INSTALL_HINT

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise _UsageError(f"--plots: {INSTALL_HINT}") from None


def _save(fig: Any, path: pathlib.Path) -> pathlib.Path:
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")
    return path


def _write_plots(model: Any, report: dict[str, Any], args: argparse.Namespace) -> list[Any]:
    """PNGs in ``args.plots``: metrics per tier, readout positions per mouse, learning curve."""
    from sensorium_data import plotting
    from sensorium_data.store.access import list_mice, open_mouse
    from sensorium_models.checkpoints import LOG
    from sensorium_models.errors import ModelInputError
    from sensorium_models.inspection import readout_positions

    out = pathlib.Path(args.plots)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for tier, entry in report["tiers"].items():
        fig = plotting.metric_distributions(entry["per_neuron"], title=f"tier {tier!r}")
        files.append(_save(fig, out / f"metrics_{tier}.png"))
    held = list_mice(args.store, args.storage_options)
    for mouse in [m for m in model.mice if m in held]:
        ds = open_mouse(args.store, mouse, args.storage_options, chunks=None)
        if "cell_motor_coordinates" not in ds.coords:
            continue
        try:
            pos = readout_positions(
                model, mouse, store=args.store, storage_options=args.storage_options
            )
        except ModelInputError:  # a readout without positions
            continue
        fig = plotting.readout_positions(pos, ds["cell_motor_coordinates"], mouse=mouse)
        files.append(_save(fig, out / f"readout_positions_{mouse}.png"))
    log = pathlib.Path(args.checkpoint) / LOG
    if log.is_file():
        files.append(_save(plotting.learning_curve(log), out / "learning_curve.png"))
    return files


def _json_ready(report: dict[str, Any]) -> dict[str, Any]:
    """The report without the per-neuron DataArrays."""
    tiers = {
        t: {k: v for k, v in e.items() if k != "per_neuron"} for t, e in report["tiers"].items()
    }
    return {**report, "tiers": tiers}


def _evaluate(args: argparse.Namespace) -> int:
    from sensorium_models.evaluation import evaluate, format_report

    if args.plots:
        _require_matplotlib()
    model = _load(args)
    report = evaluate(
        model,
        args.store,
        args.tiers,
        batch_size=args.batch_size,
        scored_frames=args.scored_frames,
        per_neuron=bool(args.plots),
        storage_options=args.storage_options,
    )
    print(format_report(report))
    if args.json:
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(_json_ready(report), indent=2)
        pathlib.Path(args.json).write_text(text + "\n")
    if args.plots:
        _write_plots(model, report, args)
    return 0


def _submit(args: argparse.Namespace) -> int:
    from sensorium_models.evaluation import write_submission

    model = _load(args)
    files = write_submission(
        model,
        args.store,
        args.out,
        overwrite=args.overwrite,
        scored_frames=args.scored_frames,
        batch_size=args.batch_size,
        storage_options=args.storage_options,
    )
    for f in files:
        print(f)
    return 0


def _export_kit(args: argparse.Namespace) -> int:
    import os
    import tempfile

    import torch

    from sensorium_models.kit import to_kit_state_dict
    from sensorium_models.training import load_model

    out = pathlib.Path(args.out)
    if out.exists() and not args.overwrite:
        raise _UsageError(f"--out: {out} already exists (pass --overwrite to replace it)")
    if not pathlib.Path(args.checkpoint).exists():
        raise _UsageError(f"--checkpoint: {args.checkpoint} does not exist")
    state = to_kit_state_dict(load_model(args.checkpoint))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", delete=False) as f:
        torch.save(state, f)
    os.replace(f.name, out)
    print(f"wrote {out}: {len(state)} tensors in the 2022 kit's layout")
    return 0


def _insilico(args: argparse.Namespace) -> int:
    from sensorium_models.cli_insilico import run

    return run(args, _load(args))


_COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "submit": _submit,
    "export-kit": _export_kit,
    "insilico": _insilico,
}


_PREFIXES = {  # error prefixes of the library -> the flag they are about
    "mice": "--mice",
    "model": "--model",
    "overrides": "--overrides",
    "tier": "--tiers",
    "tiers": "--tiers",
    "checkpoint": "--checkpoint",
    "store": "--store",
    "device": "--device",
    "out_dir": "--out",
    "plots": "--plots",
}


def _flagged(exc: BaseException) -> str:
    """The message of a library error, led by the flag it is about where one is."""
    from sensorium_data.errors import MouseNotFoundError, StoreNotFoundError

    text = str(exc)
    for prefix, flag in _PREFIXES.items():
        if text.startswith(f"{prefix}: "):
            return f"{flag}: {text[len(prefix) + 2 :]}"
    if isinstance(exc, StoreNotFoundError | MouseNotFoundError):
        return f"--store: {text}"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sensorium-models``; returns the exit status."""
    from sensorium_data.errors import SensoriumDataError

    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 1
    if args.command is None:
        parser.print_help()
        return 1
    try:
        return int(_COMMANDS[args.command](args) or 0)
    except _UsageError as exc:
        print(f"{_PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (SensoriumDataError, OSError, ValueError, KeyError) as exc:
        print(f"{_PROG} {args.command}: error: {_flagged(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{_PROG} {args.command}: interrupted (rerun it to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
