"""Conversion throughput: official file trees -> Zarr store, against a bare ``np.load`` pass.

What it measures, per kind (2022 ``static``, 2023 ``dynamic``) and per dask configuration
(``threads`` with 1 and 2 workers, ``processes`` with 2 workers):

- the wall time of :func:`sensorium_data.convert` (opening and validating the tree included, the
  progress bar off), as trials/s and MB/s of source data (MB = 10**6 bytes of the tree's files);
- the same time as a ratio to a bare pass that reads every ``data/<key>/<i>.npy`` of the tree
  with ``np.load`` (one thread, nothing else), measured in the same run;
- the store's size (sum of its files) against the source tree's size (sum of its files).

Every timed run reads from a warm page cache: an untimed pass reads every file of the tree right
before it (on some VMs, page cache left alone for ~30 s is paged out, so one warm-up at the start is
not enough); the page-cache refaults during each timed run are recorded (Linux) as a check. The
store is deleted before each conversion; each run is timed ``--repeats`` times, best kept.
After the first conversion of each kind, :func:`sensorium_data.store.verify.verify` checks the store
(untimed) and the run fails if it finds a difference.

Synthetic trees (:func:`sensorium_data.synthesize`) are generated under ``--workdir``
and reused by later runs with the same sizes. Defaults: a full-size 2022 mouse (6000 trials,
8000 neurons, 144x256 images, about 1.1 GB) and a 2023 mouse of 240 trials x 8000 neurons x 300
frames (36x64 videos, about 3 GB).

Run::

    python -m benchmarks.convert                 # both kinds, full size (several minutes)
    python -m benchmarks.convert --quick         # tiny smoke run, seconds
    python -m benchmarks.convert --kind dynamic --dynamic-trials 120 --repeats 3

It prints a Markdown table for the README, the command line, the machine and the date, and
writes the same to ``--json`` (default ``benchmarks/results/convert.json``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import functools
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
import zarr
from tqdm import tqdm

from sensorium_data.store.convert import convert
from sensorium_data.store.schema import ChunkOptions
from sensorium_data.store.verify import verify
from sensorium_data.synthetic import synthesize

CONFIGS = (("threads", 1), ("threads", 2), ("processes", 2))
BARE = "np.load pass, 1 thread"  # the reference run of each kind
DYNAMIC_HW = (36, 64)  # synthesize's default 2023 video size, as released
STATIC_HW = (144, 256)


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """The synthetic mice a benchmark runs on (shared by the benchmarks)."""
    p.add_argument("--kind", choices=("static", "dynamic", "both"), default="both")
    p.add_argument("--static-trials", type=int, default=6000)
    p.add_argument("--dynamic-trials", type=int, default=240)
    p.add_argument("--neurons", type=int, default=8000)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds")
    p.add_argument("--workdir", default="/tmp/sensorium-bench")


def apply_quick(args: argparse.Namespace) -> None:
    """Shrink the mice for ``--quick``."""
    if args.quick:
        args.static_trials, args.dynamic_trials = 120, 36
        args.neurons, args.frames = 200, 40


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.convert",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_arguments(p)
    p.add_argument("--repeats", type=int, default=1, help="time each run this often, keep the best")
    p.add_argument("--json", default="benchmarks/results/convert.json")
    p.add_argument("--keep", action="store_true", help="keep the stores after the run")
    p.add_argument("--trials-per-chunk", type=int)
    p.add_argument("--trials-per-shard", type=int)
    p.add_argument("--frames-per-chunk", type=int)
    args = p.parse_args(argv)
    apply_quick(args)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    return args


# ----------------------------------------------------------------------------- data


def estimated_bytes(kind: str, args: argparse.Namespace) -> int:
    if kind == "static":
        return args.static_trials * 4 * (STATIC_HW[0] * STATIC_HW[1] + args.neurons + 5)
    return (
        args.dynamic_trials * 4 * args.frames * (DYNAMIC_HW[0] * DYNAMIC_HW[1] + args.neurons + 4)
    )


def make_tree(kind: str, args: argparse.Namespace) -> pathlib.Path:
    """The tree of these sizes under ``--workdir``, generated unless a finished one is there."""
    if kind == "static":
        tag = f"static-t{args.static_trials}-n{args.neurons}-s{args.seed}"
        params = dict(n_trials=args.static_trials, n_neurons=args.neurons)
    else:
        tag = f"dynamic-t{args.dynamic_trials}-n{args.neurons}-f{args.frames}-s{args.seed}"
        params = dict(n_trials=args.dynamic_trials, n_neurons=args.neurons, n_frames=args.frames)
    folder = pathlib.Path(args.workdir) / "trees" / tag
    marker = folder / "finished.json"  # outside the tree: not part of the source
    if marker.exists():
        tree = folder / json.loads(marker.read_text())["tree"]
        if tree.is_dir():
            print(f"reusing {tree}")
            return tree
    if folder.exists():
        shutil.rmtree(folder)
    print(f"generating {kind} tree {tag} (once; later runs reuse it)")
    (tree,) = synthesize(folder, kind=kind, seed=args.seed, progress=True, **params)
    marker.write_text(json.dumps({"tree": tree.name, **params}))
    return tree


def folder_bytes(path: pathlib.Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def data_files(tree: pathlib.Path) -> list[str]:
    return sorted(str(f) for f in (tree / "data").glob("*/*.npy"))


def warm(files: list[str], bar: bool = False) -> None:
    """Read every file once (untimed) so that the next timed run reads from the page cache."""
    for f in tqdm(files, desc="warm page cache", unit="file", disable=not bar):
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass


def refaults() -> int:
    """Page-cache pages read back in since boot (Linux), or 0 where unknown."""
    try:
        with open("/proc/vmstat") as f:
            return next(
                (int(line.split()[1]) for line in f if line.startswith("workingset_refault_file ")),
                0,
            )
    except OSError:
        return 0


def timed(fn: Any, files: list[str], repeats: int) -> tuple[float, float]:
    """Best of ``repeats`` runs of ``fn()`` on a warm cache: (seconds, MB refaulted in that run)."""
    best = (float("inf"), 0.0)
    for _ in range(repeats):
        warm(files)
        before = refaults()
        seconds = fn()
        best = min(best, (seconds, (refaults() - before) * 4096 / 1e6))
    return best


def np_load_pass(files: list[str], workers: int = 1) -> float:
    """Seconds to ``np.load`` every file (``workers`` threads)."""
    t0 = time.perf_counter()
    if workers == 1:
        for f in files:
            np.load(f)
    else:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(np.load, files, chunksize=64):
                pass
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- timing


def time_convert(
    tree: pathlib.Path, store: pathlib.Path, scheduler: str, workers: int, chunking: ChunkOptions
) -> float:
    if store.exists():
        shutil.rmtree(store)
    t0 = time.perf_counter()
    convert(
        [str(tree)],
        str(store),
        scheduler=scheduler,
        num_workers=workers,
        chunking=chunking,
        progress=False,
    )
    return time.perf_counter() - t0


def make_row(
    *,
    kind: str,
    trials: int,
    config: str,
    seconds: float,
    bare_seconds: float,
    source_bytes: int,
    store_bytes: int | None,
    refaulted_mb: float = 0.0,
) -> dict[str, Any]:
    """One row of the table: a run of ``config`` on a tree of ``trials`` trials of ``kind``."""
    return {
        "kind": kind,
        "trials": trials,
        "config": config,
        "seconds": seconds,
        "trials_per_s": trials / seconds,
        "mb_per_s": source_bytes / 1e6 / seconds,
        "ratio_to_np_load": seconds / bare_seconds,
        "source_bytes": source_bytes,
        "store_bytes": store_bytes,
        "store_over_source": None if store_bytes is None else store_bytes / source_bytes,
        "refaulted_mb": refaulted_mb,
    }


def bench_kind(kind: str, args: argparse.Namespace, chunking: ChunkOptions) -> list[dict]:
    tree = make_tree(kind, args)
    files = data_files(tree)
    source = folder_bytes(tree)
    trials = args.static_trials if kind == "static" else args.dynamic_trials
    print(f"{kind}: {tree.name}: {len(files)} data files, {source / 1e6:.1f} MB")
    warm(files, bar=True)
    bare, cold = timed(lambda: np_load_pass(files), files, args.repeats)
    rows = []

    def row(config: str, seconds: float, refaulted: float, store_bytes: int | None) -> None:
        rows.append(
            make_row(
                kind=kind,
                trials=trials,
                config=config,
                seconds=seconds,
                bare_seconds=bare,
                source_bytes=source,
                store_bytes=store_bytes,
                refaulted_mb=refaulted,
            )
        )

    row(BARE, bare, cold, None)
    row(
        "np.load pass, 2 threads", *timed(lambda: np_load_pass(files, 2), files, args.repeats), None
    )
    store = pathlib.Path(args.workdir) / "stores" / f"{kind}.zarr"
    verified = False
    for scheduler, workers in tqdm(CONFIGS, desc=f"convert {kind}", unit="config"):
        run = functools.partial(time_convert, tree, store, scheduler, workers, chunking)
        best = timed(run, files, args.repeats)
        if not verified:  # untimed check that the store equals its source
            problems = verify(str(store), [str(tree)])
            if problems:
                raise SystemExit(f"verify found differences in {store}:\n" + "\n".join(problems))
            verified = True
        row(
            f"convert, {scheduler}, {workers} worker{'s' * (workers > 1)}",
            *best,
            folder_bytes(store),
        )
    if not args.keep:
        shutil.rmtree(store)
    else:
        print(f"kept {store}")
    return rows


# ----------------------------------------------------------------------------- report


def markdown(rows: list[dict]) -> str:
    head = (
        "| kind | trials | run | seconds | trials/s | MB/s | x np.load pass | store/source |\n"
        "|---|---:|---|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        ratio = "-" if r["store_over_source"] is None else f"{r['store_over_source']:.3f}"
        lines.append(
            f"| {r['kind']} | {r['trials']} | {r['config']} | {r['seconds']:.2f} | "
            f"{r['trials_per_s']:.0f} | {r['mb_per_s']:.0f} | {r['ratio_to_np_load']:.2f} | "
            f"{ratio} |"
        )
    return "\n".join(lines)


def targets(rows: list[dict]) -> list[str]:
    """The issue's targets, judged per kind."""
    out = []
    for kind in dict.fromkeys(r["kind"] for r in rows):
        by = {r["config"]: r for r in rows if r["kind"] == kind}
        one, two = by["convert, threads, 1 worker"], by["convert, threads, 2 workers"]
        stores = [r["store_over_source"] for r in by.values() if r["store_over_source"]]
        checks = [
            (
                "1 worker within 2x of the np.load pass",
                one["ratio_to_np_load"] <= 2,
                f"{one['ratio_to_np_load']:.2f}x",
            ),
            (
                "2 workers faster than 1",
                two["seconds"] < one["seconds"],
                f"{two['seconds']:.2f} s vs {one['seconds']:.2f} s",
            ),
            (
                "2 workers faster than the np.load pass",
                two["ratio_to_np_load"] < 1,
                f"{two['ratio_to_np_load']:.2f}x",
            ),
            ("store no larger than its source", max(stores) <= 1, f"{max(stores):.3f}"),
        ]
        out += [
            f"- {kind}: {name}: {'met' if ok else 'MISSED'} ({detail})"
            for name, ok, detail in checks
        ]
    return out


def figure(rows: list[dict[str, Any]], *, title: str | None = None) -> Any:
    """The table as bars: MB/s of source data per run, grouped by kind, against the np.load pass.

    (MB/s, not trials/s: a 2023 trial is a hundred times a 2022 one, so MB/s compares the kinds.)
    """
    from sensorium_data.plotting import benchmark_bars

    return benchmark_bars(
        rows,
        value="mb_per_s",
        label="config",
        group=lambda r: f"{'2022' if r['kind'] == 'static' else '2023'} ({r['trials']} trials)",
        reference=lambda r: r["config"] == BARE,
        unit="MB/s of source files (log scale)",
        title=title or "Conversion speed (labels: speed relative to the np.load pass)",
    )


def write_figure(rows: list[dict[str, Any]], json_path: pathlib.Path) -> pathlib.Path:
    """Save :func:`figure` as a PNG next to the JSON (same name, ``.png``); returns its path."""
    png = json_path.with_suffix(".png")
    figure(rows).savefig(png, dpi=100, bbox_inches="tight")
    return png


def machine() -> dict[str, Any]:
    import dask

    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "zarr": zarr.__version__,
        "dask": dask.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chunking = ChunkOptions(
        trials_per_chunk=args.trials_per_chunk,
        trials_per_shard=args.trials_per_shard,
        frames_per_chunk=args.frames_per_chunk,
    )
    kinds = ["static", "dynamic"] if args.kind == "both" else [args.kind]
    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    need = sum(2 * estimated_bytes(k, args) for k in kinds)  # trees + one store each
    free = shutil.disk_usage(workdir).free
    if need > free / 2:
        raise SystemExit(
            f"{workdir}: needs about {need / 1e9:.1f} GB, only {free / 1e9:.1f} GB "
            "free; choose smaller sizes or another --workdir"
        )
    command = "python -m benchmarks.convert" + "".join(
        " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    load_before = [round(x, 2) for x in os.getloadavg()]
    rows = [r for kind in kinds for r in bench_kind(kind, args, chunking)]
    info = machine()
    info["load_average_before"] = load_before
    refault = max(r["refaulted_mb"] for r in rows)
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    report = [
        "",
        markdown(rows),
        "",
        f"Command: `{command}`  ",
        f"Machine: {info['nproc']} cores, Python {info['python']}, numpy {info['numpy']}, "
        f"zarr {info['zarr']}, dask {info['dask']} ({info['platform']})  ",
        f"Load average (1, 5, 15 min) before {load_before}, after {info['load_average']}.  ",
        f"Date: {date}. Page cache warm for every timed run (an untimed read of every file "
        f"right before it; page cache of any file read back during a timed run: at most "
        f"{refault:.0f} MB); best of {args.repeats}; MB = 10^6 bytes of source files; "
        "x np.load pass = seconds / seconds of the 1-thread np.load pass of the same kind.",
        "",
        "Targets:",
        *targets(rows),
    ]
    print("\n".join(report))
    out = pathlib.Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "command": command,
                "date": date,
                "machine": info,
                "page_cache": "warm",
                "repeats": args.repeats,
                "chunking": {
                    k: getattr(chunking, k)
                    for k in (
                        "trials_per_chunk",
                        "trials_per_shard",
                        "frames_per_chunk",
                        "compressor",
                        "clevel",
                    )
                },
                "rows": rows,
                "targets": targets(rows),
                "markdown": markdown(rows),
            },
            indent=2,
        )
    )
    print(f"\nwrote {out}")
    try:
        print(f"wrote {write_figure(rows, out)}")
    except ImportError as exc:  # matplotlib is an optional extra
        print(f"no figure: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
