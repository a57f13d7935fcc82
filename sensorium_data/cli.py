"""The ``sensorium-data`` command line: convert, verify, info, export, synth, demo, score,
ground-truth, leaderboard."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._argparse import HelpFormatter, add_scored_frames, cli_words, examples
from .errors import SensoriumDataError
from .store.schema import SHUFFLES

__all__ = ["main"]


def _json_dict(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object such as '{\"endpoint_url\": ...}'")
    return value


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected HEIGHTxWIDTH such as 144x256, got {text!r}"
        ) from None
    return h, w


def _add_storage(p: argparse.ArgumentParser, *, sources: bool = False) -> None:
    p.add_argument(
        "--storage-options",
        type=_json_dict,
        default=None,
        metavar="JSON",
        help='fsspec options of the store, e.g. \'{"endpoint_url": "http://..."}\'',
    )
    if sources:
        p.add_argument(
            "--source-options",
            type=_json_dict,
            default=None,
            metavar="JSON",
            help="fsspec options of the sources",
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sensorium-data",
        description="Convert, inspect and verify SENSORIUM data stores; score submissions.",
        formatter_class=HelpFormatter,
        epilog="example:\n  sensorium-data demo\n  sensorium-data convert --help",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "convert",
        help="official file trees (folders or zips) -> Zarr v3 store",
        **examples(
            "sensorium-data convert trees/static*.zip -o sensorium.zarr",
            "sensorium-data convert https://example.org/dynamic29156-Video-...zip -o s3://bucket/s.zarr",
        ),
    )
    p.add_argument("sources", nargs="+", metavar="SRC", help="tree folder or .zip, path or URL")
    p.add_argument("-o", "--output", required=True, metavar="STORE", help="store path or URL")
    p.add_argument("--overwrite", action="store_true", help="replace mice the store already holds")
    p.add_argument(
        "--scheduler",
        default="threads",
        help="threads (default), processes, synchronous, or a dask.distributed "
        "scheduler address such as tcp://10.0.0.5:8786",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="local threads/processes (default: one per core)"
    )
    p.add_argument(
        "--trials-per-chunk",
        type=int,
        default=None,
        help="trials in one chunk (default: chosen per array, about 1 MiB a chunk)",
    )
    p.add_argument(
        "--trials-per-shard",
        type=int,
        default=None,
        help="trials in one shard file (default: chosen per array, tens of MiB a shard)",
    )
    p.add_argument(
        "--frames-per-chunk",
        type=int,
        default=None,
        help="2023: frames in one chunk (default: the whole trial)",
    )
    p.add_argument(
        "--compressor",
        default="lz4",
        choices=["lz4", "lz4hc", "zstd", "blosclz", "zlib"],
        help="blosc codec of every array",
    )
    p.add_argument("--clevel", type=int, default=5, help="blosc compression level, 0-9")
    p.add_argument(
        "--shuffle",
        default="auto",
        choices=list(SHUFFLES),
        help="blosc shuffle: auto (bitshuffle stimuli, no shuffle for responses, "
        "byte shuffle for the rest) or one filter for every array",
    )
    p.add_argument(
        "--image-scale",
        type=float,
        action="append",
        default=None,
        metavar="S",
        help="2022: also store the images rescaled by S as the kits do (repeatable; "
        "default 0.25, the baselines' 36x64)",
    )
    p.add_argument(
        "--no-scaled-images", action="store_true", help="store no rescaled copy of the images"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_storage(p, sources=True)

    p = sub.add_parser(
        "verify",
        help="compare a store with its source trees, value by value",
        **examples("sensorium-data verify sensorium.zarr trees/static*.zip"),
    )
    p.add_argument("store", metavar="STORE", help="store path or URL")
    p.add_argument("sources", nargs="+", metavar="SRC", help="the trees it was converted from")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_storage(p, sources=True)

    p = sub.add_parser(
        "info",
        help="summarise a store: mice, tiers, variables, chunks, sizes",
        **examples(
            "sensorium-data info sensorium.zarr", "sensorium-data info https://host/sensorium.zarr"
        ),
    )
    p.add_argument("store", metavar="URL", help="store path or URL")
    _add_storage(p)

    p = sub.add_parser(
        "stats",
        help="per-neuron statistics, oracle correlation and explainable variance of every mouse "
        "(dask, any scheduler)",
        **examples(
            "sensorium-data stats sensorium.zarr --out stats.zarr",
            "sensorium-data stats s3://bucket/sensorium.zarr --scheduler tcp://10.0.0.5:8786",
        ),
    )
    p.add_argument("store", metavar="URL", help="store path or URL")
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="SCHEDULER",
        help="threads, processes, synchronous or a dask.distributed address (default: threads)",
    )
    p.add_argument("--mice", nargs="+", default=None, metavar="MOUSE", help="default: all")
    p.add_argument(
        "--tier", default="train", help="trials of the response statistics (default: train)"
    )
    p.add_argument(
        "--out", default=None, metavar="PATH", help="also write the summary as a zarr DataTree"
    )
    _add_storage(p)

    p = sub.add_parser(
        "export",
        help="write a mouse back as the official file tree",
        **examples("sensorium-data export sensorium.zarr 26872-17-20 trees/"),
    )
    p.add_argument("store", metavar="STORE", help="store path or URL")
    p.add_argument("mouse", metavar="MOUSE", help="short data key, e.g. 26872-17-20")
    p.add_argument("dest", metavar="DEST", help="local folder; the tree goes to DEST/<name>")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_storage(p)

    p = sub.add_parser(
        "synth",
        help="write synthetic file trees in the official layout",
        **examples("sensorium-data synth trees --kind static --mice 2 --zip"),
    )
    from .synthetic.generate import _DEFAULTS

    st, dy = _DEFAULTS["static"], _DEFAULTS["dynamic"]
    p.add_argument("out", metavar="OUT", help="folder for the trees (created if missing)")
    p.add_argument(
        "--kind",
        required=True,
        choices=["static", "dynamic"],
        help="static: 2022 images; dynamic: 2023 videos",
    )
    p.add_argument("--mice", type=int, default=1, help="number of mice")
    p.add_argument(
        "--trials",
        type=int,
        default=None,
        help=f"trials per mouse (default: {st[0]} static, {dy[0]} dynamic)",
    )
    p.add_argument(
        "--neurons",
        type=int,
        default=None,
        help=f"neurons per mouse (default: {st[1]} static, {dy[1]} dynamic)",
    )
    p.add_argument(
        "--frames",
        type=int,
        default=None,
        help=f"dynamic: frames per trial, T_max (default: {dy[2]})",
    )
    p.add_argument(
        "--image-size",
        type=_size,
        default=None,
        metavar="HxW",
        help="stimulus size (default: {}x{} static, {}x{} dynamic)".format(*st[3], *dy[3]),
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (mouse keys, data)")
    p.add_argument("--zip", action="store_true", help="write .zip files like the releases")
    p.add_argument("--overwrite", action="store_true", help="replace trees of the same name in OUT")
    p.add_argument(
        "--competition",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="make every mouse a competition mouse (withheld test responses), or none "
        "(default: the last mouse when there are two or more)",
    )
    p.add_argument(
        "--behavior-gain",
        type=float,
        default=None,
        help="strength of the behavioural gain (default 0.5; 0: none)",
    )
    p.add_argument(
        "--shift-scale",
        type=float,
        default=None,
        help="receptive-field shift per s.d. of eye position, grid pixels (default 1.5; 0: none)",
    )
    p.add_argument(
        "--fano",
        type=float,
        default=None,
        help="median Fano factor of the noise (default 3.5 for images, 6.0 for videos)",
    )

    p = sub.add_parser(
        "demo",
        help="synthetic data -> convert -> open -> summary",
        **examples("sensorium-data demo --workdir demo/"),
    )
    p.add_argument(
        "--workdir",
        default=None,
        help="folder to keep the trees and the store in (default: a temporary one, removed at "
        "the end)",
    )

    p = sub.add_parser(
        "score",
        help="validate a submission and score it with the official metrics",
        **examples(
            "sensorium-data score submission/ --truth sensorium.zarr --json scores.json",
            "sensorium-data score predictions_main.zip --truth sensorium.zarr",
        ),
    )
    p.add_argument("submission", metavar="SUBMISSION", help="submission file, zip or folder")
    p.add_argument("--truth", required=True, metavar="STORE", help="store with the responses")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the report as JSON")
    p.add_argument("--mouse", default=None, help="2022: the mouse of flat CSVs (default: found)")
    p.add_argument("--skip", type=int, default=50, help="2023: unscored first frames (50)")
    add_scored_frames(p, detect=True)
    p.add_argument(
        "--any-neuron-order", action="store_true", help="2023: accept permuted neuron_ids"
    )
    _add_storage(p)

    p = sub.add_parser(
        "ground-truth",
        help="write the official ground-truth files of a store",
        **examples("sensorium-data ground-truth sensorium.zarr -o ground_truth/"),
    )
    p.add_argument("store", metavar="STORE", help="store path or URL")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--mice", nargs="+", default=None, metavar="MOUSE", help="default: all")
    p.add_argument(
        "--tiers", nargs="+", default=None, metavar="TIER", help="default: the test tiers"
    )
    p.add_argument("--skip", type=int, default=50, help="2023: unscored first frames (50)")
    add_scored_frames(p, detect=False)
    p.add_argument(
        "--column",
        default="responses",
        choices=["responses", "prediction"],
        help="2023 value column (the official scorer's solution files use 'prediction')",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    _add_storage(p)

    p = sub.add_parser(
        "submission",
        help="tidy submission files for upload",
        **examples("sensorium-data submission fix submission/"),
    )
    tasks = p.add_subparsers(dest="task", metavar="TASK", required=True, help="what to do")
    q = tasks.add_parser(
        "fix",
        help="rename the 2023 kit's predictions_file_..._track.parquet.brotli files to the "
        "official names and write the upload zips",
        **examples("sensorium-data submission fix submission/"),
    )
    q.add_argument("folder", metavar="FOLDER", help="folder holding the kit's files")
    q.add_argument("--no-zips", action="store_true", help="rename only, write no upload zips")
    q.add_argument("--dry-run", action="store_true", help="only say what would be renamed")

    p = sub.add_parser(
        "leaderboard",
        help="score every submission in a folder and rank them",
        **examples("sensorium-data leaderboard submissions/ --truth sensorium.zarr"),
    )
    p.add_argument("directory", metavar="DIR", help="one subfolder, zip or file per entry")
    p.add_argument("--truth", required=True, metavar="STORE", help="store with the responses")
    p.add_argument(
        "-o", "--output", default=None, metavar="OUTDIR", help="where to write (default: DIR)"
    )
    p.add_argument("--title", default="SENSORIUM leaderboard", help="heading of the tables")
    add_scored_frames(p, detect=True)
    _add_storage(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sensorium-data``; returns the exit status."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # while parsing the arguments, before a command runs
        print("sensorium-data: interrupted", file=sys.stderr)
        return 130


def _ignore_unawaited() -> None:
    """After Ctrl-C: a coroutine the interrupt caught between its creation and its scheduling
    (zarr's ``sync``) never ran, and Python would warn about it when it is collected, after the
    "interrupted" line. It did nothing, so there is nothing to warn about."""
    import warnings

    warnings.filterwarnings(
        "ignore", message=r"coroutine .* was never awaited", category=RuntimeWarning
    )


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from ._version import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(_COMMANDS[args.command](args) or 0)
    except BrokenPipeError:  # `sensorium-data info ... | head`
        sys.stderr.close()
        return 0
    except Exception as exc:
        from .remote import is_remote_failure, remote_cause

        if isinstance(exc, SensoriumDataError | OSError | ValueError):
            message = cli_words(exc)
        elif is_remote_failure(exc):  # a transfer failed where no URL was at hand (botocore)
            message = remote_cause(exc)
        else:
            raise
        print(f"sensorium-data {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        from .store.access import settle_io

        _ignore_unawaited()
        settle_io()  # no asyncio "Task was destroyed" warnings after the line below
        print(f"sensorium-data {args.command}: interrupted", file=sys.stderr)
        return 130


def _convert(args: argparse.Namespace) -> int:
    from .store.convert import convert
    from .store.schema import ChunkOptions

    chunking = ChunkOptions(
        trials_per_chunk=args.trials_per_chunk,
        trials_per_shard=args.trials_per_shard,
        frames_per_chunk=args.frames_per_chunk,
        compressor=args.compressor,
        clevel=args.clevel,
        shuffle=args.shuffle,
        image_scales=() if args.no_scaled_images else tuple(args.image_scale or (0.25,)),
    )
    mice = convert(
        args.sources,
        args.output,
        storage_options=args.storage_options,
        source_options=args.source_options,
        overwrite=args.overwrite,
        chunking=chunking,
        scheduler=args.scheduler,
        num_workers=args.workers,
        progress=not args.no_progress,
    )
    print(f"wrote {len(mice)} mice to {args.output}: {', '.join(mice)}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .store.verify import verify

    problems = verify(
        args.store,
        args.sources,
        storage_options=args.storage_options,
        source_options=args.source_options,
        progress=not args.no_progress,
    )
    if problems:
        print(f"{args.store} differs from its sources:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"{args.store} equals its {len(args.sources)} source tree(s)")
    return 0


def _info(args: argparse.Namespace) -> int:
    from .store.info import describe_store

    print(describe_store(args.store, args.storage_options))
    return 0


def _stats(args: argparse.Namespace) -> int:
    import numpy as np
    import xarray as xr
    from tqdm.auto import tqdm

    from .analysis import neuron_summary, recompute_statistics
    from .store.access import list_mice, open_statistics

    summary = {}
    rows = ["mouse       neurons  response mean  oracle corr  explainable var  stored stats"]
    mice = args.mice or list(list_mice(args.store, args.storage_options))
    for mouse in tqdm(mice, desc="mice"):
        stored = open_statistics(args.store, mouse, args.storage_options)
        check = args.tier == "train" and bool(stored)  # the released ones: the train trials
        again = recompute_statistics(  # every key when checking them, else the responses
            args.store,
            mouse,
            tier=args.tier,
            keys=None if check else ("responses",),
            scheduler=args.scheduler,
            storage_options=args.storage_options,
        )
        ds = summary[mouse] = neuron_summary(
            args.store,
            mouse,
            tier=args.tier,
            statistics=again["responses"],
            scheduler=args.scheduler,
            storage_options=args.storage_options,
        )
        verdict = "-"
        if check:
            same = all(
                np.array_equal(again[k][n].values, stored[k]["all"][n].values, equal_nan=True)
                for k in again
                if k in stored and "all" in stored[k]
                for n in again[k].data_vars
            )
            verdict = "equal" if same else "DIFFER"
        rows.append(
            f"{mouse:<11} {ds.sizes['neuron']:>7}  {float(ds.response_mean.mean()):>13.4f}  "
            f"{float(ds.oracle_correlation.mean()):>11.4f}  "
            f"{float(ds.explainable_variance.mean()):>15.4f}  {verdict:>12}"
        )
    print("\n".join(rows))
    if args.out:
        tree = xr.DataTree.from_dict({f"/{m}": ds for m, ds in summary.items()})
        tree.to_zarr(args.out, mode="w", consolidated=False)
        print(f"wrote {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .store.export import export

    path = export(
        args.store,
        args.mouse,
        args.dest,
        storage_options=args.storage_options,
        progress=not args.no_progress,
    )
    print(f"wrote {path}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from .synthetic.generate import synthesize

    paths = synthesize(
        args.out,
        kind=args.kind,
        n_mice=args.mice,
        n_trials=args.trials,
        n_neurons=args.neurons,
        n_frames=args.frames,
        image_size=args.image_size,
        seed=args.seed,
        as_zip=args.zip,
        competition=args.competition,
        behavior_gain=args.behavior_gain,
        fano=args.fano,
        shift_scale=args.shift_scale,
        overwrite=args.overwrite,
        progress=True,
    )
    for path in paths:
        print(path)
    return 0


def _demo(args: argparse.Namespace) -> int:
    """The built-in default job: synthetic data -> convert -> open -> summary."""
    from .store.access import open_mouse
    from .store.convert import convert
    from .store.info import describe_store
    from .store.verify import verify
    from .synthetic.generate import synthesize

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        trees = [
            *synthesize(work / "trees", kind="static", n_mice=2, seed=0),
            *synthesize(work / "trees", kind="dynamic", n_mice=1, seed=1, as_zip=True),
        ]
        store = work / "sensorium.zarr"
        print(f"1. synthetic trees: {', '.join(p.name for p in trees)}")
        mice = convert(trees, store, overwrite=True, progress=False)
        print(f"2. converted {len(mice)} mice into {store}")
        problems = verify(store, trees)
        print("3. verify: " + ("store equals its sources" if not problems else "; ".join(problems)))
        ds = open_mouse(store, mice[0])
        train = ds.responses.where(ds.tiers == "train", drop=True)
        print(
            f"4. opened {mice[0]}: {dict(ds.sizes)}; mean train response per neuron "
            f"{float(train.mean()):.3f}"
        )
        print()
        print(describe_store(store))
        if args.workdir:
            print(f"\nkept in {work}: open it with sensorium_data.open_mouse({str(store)!r}, ...)")
        else:
            print(
                f"\n{work} is a temporary folder, removed now; pass --workdir DIR to keep the "
                "trees and the store"
            )
        return 1 if problems else 0


def _score(args: argparse.Namespace) -> int:
    from .submission.scoring import score_submission

    report = score_submission(
        args.submission,
        args.truth,
        mouse=args.mouse,
        skip=args.skip,
        scored_frames=args.scored_frames,
        strict_neuron_order=not args.any_neuron_order,
        storage_options=args.storage_options,
    )
    print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def _ground_truth(args: argparse.Namespace) -> int:
    from .submission import SubmissionExistsError, write_ground_truth

    try:
        written = write_ground_truth(
            args.store,
            args.output,
            mice=args.mice,
            tiers=args.tiers,
            skip=args.skip,
            scored_frames=args.scored_frames,
            column=args.column,
            overwrite=args.overwrite,
            storage_options=args.storage_options,
        )
    except SubmissionExistsError as exc:
        raise SubmissionExistsError(f"{exc} (on the command line: --overwrite)") from None
    for path in written:
        print(path)
    return 0


def _submission(args: argparse.Namespace) -> int:
    from .submission import fix_submission

    renames = fix_submission(args.folder, make_zips=not args.no_zips, dry_run=args.dry_run)
    verb = "would rename" if args.dry_run else "renamed"
    for old, new in renames:
        print(f"{verb} {old} -> {new.name}")
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    from .submission.scoring import leaderboard

    board = leaderboard(
        args.directory,
        args.truth,
        out_dir=args.output,
        title=args.title,
        scored_frames=args.scored_frames,
        storage_options=args.storage_options,
    )
    print(board.to_markdown(), end="")
    for path in board.files:
        print(f"wrote {path}")
    return 0


_COMMANDS = {
    "convert": _convert,
    "verify": _verify,
    "info": _info,
    "stats": _stats,
    "export": _export,
    "synth": _synth,
    "demo": _demo,
    "score": _score,
    "ground-truth": _ground_truth,
    "submission": _submission,
    "leaderboard": _leaderboard,
}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
