"""Training-loader throughput: ``make_loaders`` over a store against the official pipeline.

What it measures, on a synthetic 2022 (``static``) and 2023 (``dynamic``) mouse:

- the toolkit: ``make_loaders(...)["train"]`` (2022: batch 128, normalised, ``scale=0.25``,
  ``include_behavior``; 2023: batch 8, ``frames=80``, normalised, ``include_behavior``) for
  ``--workers`` (default 0, 1 and 2; ``multiprocessing_context="fork"``), reading the store
  from local disk; from local disk through :class:`LatencyStore`, which adds 20 or 50 ms to
  every request (cloud latency without a slow server in the way); over
  HTTP from :class:`tests.servers.RangeHTTPServer`; and from a moto S3 server on 127.0.0.1
  (about 170 requests/s whatever the load: a correctness row, not a cloud figure). Per
  configuration: time to first batch (from ``iter(loader)``), samples/s and MB/s (bytes of the
  returned tensors) over the whole first epoch (first batch included) and over the second
  epoch, chunk bytes read per sample (``workers`` 0: counted by the dataset) and its ratio to
  the bytes of the sample itself (raw stored values the sample is made from), and peak RSS;
- the official pipeline, one process (the official loaders cannot use workers): 2022 with the
  real neuralpredictors 0.3.0 ``FileTreeDataset`` and transforms when it is installed
  (``pip install -e ".[bench]"``; a three-line ``collections`` shim lets 0.3.0 import on Python
  3.10+), over a random train subset in batches of 128; both years also with ``reference_sample``
  of ``tests/official_reference.py`` (per-trial ``np.load`` + the kits' transforms, statistics
  read once, 2023 with the SciPy >= 1.16 ``zoom`` shortcut at ``scale=1``), which is leaner than
  the kits. Ratios are to neuralpredictors where it ran, else to the reference.

Each configuration runs in a spawned child; peak RSS is that child's (``VmHWM``) and its
largest worker's; the S3 rows' include nothing of the moto server, which runs in the parent.
Page cache is warm (every file of the store or tree is read right before each run). Trees come
from :func:`benchmarks.convert.make_tree` (reused under ``--workdir``/trees); each is converted
once to ``--workdir``/stores/<tag>.zarr and reused.

Run::

    python -m benchmarks.dataloader              # 6000x8000 static, 240x8000x300 dynamic
    python -m benchmarks.dataloader --quick      # tiny smoke run, seconds
    python -m benchmarks.dataloader --kind static --workers 0 2 --sources local "local +20 ms"
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import collections.abc
import contextlib
import datetime
import functools
import json
import logging
import multiprocessing
import os
import pathlib
import resource
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from zarr.abc.store import Store
from zarr.storage import LocalStore, WrapperStore

from benchmarks.convert import add_data_arguments, apply_quick, machine, make_tree, warm
from sensorium_data.loading.loaders import make_loaders
from sensorium_data.store.convert import convert

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
import official_reference
from official_reference import reference_sample
from servers import MotoS3Server, RangeHTTPServer, upload_dir

# the official pipeline reads statistics and config.json once, not per trial
official_reference._statistic = functools.lru_cache(None)(official_reference._statistic)
official_reference._links = functools.lru_cache(None)(official_reference._links)

SOURCES = ("local", "local +20 ms", "local +50 ms", "http", "s3 (moto)")
LATENCY = {"local +20 ms": 0.02, "local +50 ms": 0.05}
TARGETS = {("static", "local"): 50, ("static", "local +20 ms"): 20, ("dynamic", None): 10}
NEURALPREDICTORS = "official (neuralpredictors 0.3.0)"
REFERENCE = "reference (np.load per trial)"
STORE_LAYOUT = "v2"  # bump when the converter's output changes: cached stores are rebuilt


class LatencyStore(WrapperStore):  # type: ignore[type-arg]
    """A store that waits ``latency`` seconds before every read (a model of object storage)."""

    def __init__(self, store: Store, latency: float) -> None:
        super().__init__(store)
        self.latency = latency

    def _with_store(self, store: Store) -> LatencyStore:
        return type(self)(store, self.latency)

    def __repr__(self) -> str:
        return f"LatencyStore({self._store!r}, {self.latency})"

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        await asyncio.sleep(self.latency)
        return await self._store.get(key, prototype, byte_range)

    async def get_partial_values(self, prototype: Any, key_ranges: Any) -> list[Any]:
        return list(await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.dataloader",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_arguments(p)
    p.add_argument(
        "--official-samples",
        type=int,
        default=512,
        help="samples the official pipelines make (2023: a quarter of it)",
    )
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    p.add_argument("--json", default="benchmarks/results/dataloader.json")
    args = p.parse_args(argv)
    apply_quick(args)
    if args.quick:
        args.official_samples = 32
    return args


def loader_options(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    if kind == "static":
        return dict(batch_size=128, scale=0.25, include_behavior=True)
    frames = 80 if args.frames >= 200 else args.frames // 4  # --quick clips are short
    return dict(batch_size=8, frames=frames, include_behavior=True)


def make_store(kind: str, args: argparse.Namespace) -> tuple[pathlib.Path, pathlib.Path]:
    tree = make_tree(kind, args)
    store = pathlib.Path(args.workdir) / "stores" / f"{tree.parent.name}-{STORE_LAYOUT}.zarr"
    done = store.with_suffix(".done")
    if not done.exists():
        print(f"converting {tree.parent.name} -> {store} (once; later runs reuse it)")
        if store.exists():
            shutil.rmtree(store)
        convert([str(tree)], str(store), num_workers=2, progress=False)
        done.write_text("ok")
    return tree, store


def files_of(folder: pathlib.Path) -> list[str]:
    return [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs]


def peak_rss_mb() -> tuple[float, float]:
    """This process's peak RSS (``VmHWM``: of its own address space, unlike ``ru_maxrss``,
    which keeps the parent's across ``exec``) and its largest child's, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with contextlib.suppress(OSError), open("/proc/self/status") as f:
        own = next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, kids


def _child(fn: Any, args: tuple[Any, ...], conn: Any) -> None:
    try:
        out = fn(*args)
        out["rss_mb"], out["workers_rss_mb"] = peak_rss_mb()
        conn.send(out)
    except BaseException as exc:
        conn.send({"error": repr(exc)})
        raise


def in_child(fn: Any, *a: Any) -> dict[str, Any]:
    """Run ``fn(*a)`` in a fresh (spawned) process, so that its peak RSS is its own."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, a, child))
    proc.start()
    out = parent.recv()
    proc.join()
    if "error" in out:
        raise SystemExit(f"benchmark child failed: {out['error']}")
    return out


def nbytes(batch: Any) -> int:
    values = batch.values() if isinstance(batch, dict) else batch._asdict().values()
    return sum(v.numel() * v.element_size() for v in values)


def raw_sample_bytes(store: pathlib.Path, kind: str, args: argparse.Namespace) -> int:
    """Stored bytes one training sample is made from (2023: the clip's frames only)."""
    import zarr

    root = zarr.open_group(str(store), mode="r")
    group = root[next(iter(root.group_keys()))]
    frames = loader_options(kind, args).get("frames")
    total = 0
    for key in ("images", "videos", "responses", "behavior", "pupil_center"):
        if key not in group:
            continue
        arr = group["scaled/0.25/images"] if key == "images" else group[key]
        per_trial = int(np.prod(arr.shape[1:])) * arr.dtype.itemsize
        total += per_trial if frames is None else per_trial * frames // arr.shape[-1]
    return total


def time_toolkit(url: Any, kind: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    # aiohttp sessions left to the garbage collector in exiting workers are not a result
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    extra: dict[str, Any] = dict(num_workers=workers)
    if workers:
        extra.update(multiprocessing_context="fork", persistent_workers=True)
    storage = {}
    if isinstance(url, tuple):
        url, storage = url
    t0 = time.perf_counter()
    (loader,) = make_loaders(
        url, tiers=["train"], storage_options=storage or None, **loader_options(kind, args), **extra
    )["train"].values()
    out: dict[str, Any] = {}
    for epoch in (1, 2):
        t_start = time.perf_counter() if epoch == 2 else t0
        samples = size = 0
        for i, batch in enumerate(loader):
            if epoch == 1 and i == 0:
                out["first_batch_s"] = time.perf_counter() - t0
            samples += len(batch["trial"])
            size += nbytes(batch)
        seconds = time.perf_counter() - t_start
        out[f"epoch{epoch}"] = {
            "samples": samples,
            "seconds": seconds,
            "samples_per_s": samples / seconds,
            "mb_per_s": size / 1e6 / seconds,
        }
        if epoch == 1:
            bytes_before = loader.dataset.bytes_read
    out["samples_per_s"] = out["epoch2"]["samples_per_s"]
    out["mb_per_s"] = out["epoch2"]["mb_per_s"]
    if workers == 0:
        out["read_bytes_per_sample"] = (loader.dataset.bytes_read - bytes_before) / out["epoch2"][
            "samples"
        ]
    return out


def time_reference(tree: pathlib.Path, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    opts = loader_options(kind, args)
    n = args.official_samples if kind == "static" else max(args.official_samples // 4, 8)
    trials = np.flatnonzero(np.load(tree / "meta/trials/tiers.npy") == "train")
    trials = np.random.default_rng(0).permutation(trials)[:n]
    kw: dict[str, Any]
    if kind == "static":
        kw = dict(scale=opts["scale"], include_behavior=True)
    else:
        kw = dict(
            scale=1.0,
            frames=opts["frames"],
            include_behavior=True,
            random_state=np.random.RandomState(0),
            scipy_zoom_shortcut=True,
        )
    t0 = time.perf_counter()
    size = 0
    for i, t in enumerate(trials):
        sample = reference_sample(tree, kind, int(t), **kw)
        size += sum(v.nbytes for v in sample.values())
        if i == 0:
            t_first = time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    return {
        "first_batch_s": t_first * opts["batch_size"],
        "samples": len(trials),
        "seconds": seconds,
        "samples_per_s": len(trials) / seconds,
        "mb_per_s": size / 1e6 / seconds,
    }


def shim_collections() -> None:
    """neuralpredictors 0.3.0 imports ``Iterable`` from ``collections`` (gone in Python 3.10)."""
    for name in ("Iterable", "Mapping", "Sequence"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))


def neuralpredictors_available() -> bool:
    shim_collections()
    try:
        import neuralpredictors.data.datasets  # noqa: F401
    except ImportError:
        return False
    return True


def time_neuralpredictors(tree: pathlib.Path, args: argparse.Namespace) -> dict[str, Any]:
    """The 2022 kit's loader: FileTreeDataset + NeuroNormalizer, AddBehaviorAsChannels,
    ScaleInputs(0.25), ToTensor(cuda=False), in batches of 128 of random train trials."""
    import torch

    shim_collections()
    from neuralpredictors.data.datasets import FileTreeDataset
    from neuralpredictors.data.transforms import (
        AddBehaviorAsChannels,
        NeuroNormalizer,
        ScaleInputs,
        ToTensor,
    )

    # a shadow folder: neuralpredictors writes config.json into a tree that lacks one
    shadow = pathlib.Path(args.workdir) / "neuralpredictors" / tree.name
    shadow.mkdir(parents=True, exist_ok=True)
    for part in ("data", "meta", "config.json"):
        if (tree / part).exists() and not (shadow / part).exists():
            (shadow / part).symlink_to(tree / part)
    t0 = time.perf_counter()
    dat = FileTreeDataset(str(shadow), "images", "responses", "behavior", "pupil_center")
    dat.transforms.extend(
        [NeuroNormalizer(dat), AddBehaviorAsChannels(), ScaleInputs(scale=0.25), ToTensor(False)]
    )
    train = np.flatnonzero(dat.trial_info.tiers == "train")
    n = args.official_samples
    sampler = torch.utils.data.SubsetRandomSampler(
        train, generator=torch.Generator().manual_seed(0)
    )
    loader = torch.utils.data.DataLoader(dat, sampler=sampler, batch_size=128)
    samples = size = 0
    t1 = time.perf_counter()  # the dataset is open: time the batches
    for i, batch in enumerate(loader):
        if i == 0:
            t_first = time.perf_counter() - t0
        samples += batch.images.shape[0]
        size += nbytes(batch)
        if samples >= n:
            break
    seconds = time.perf_counter() - t1
    return {
        "first_batch_s": t_first,
        "samples": samples,
        "seconds": seconds,
        "samples_per_s": samples / seconds,
        "mb_per_s": size / 1e6 / seconds,
    }


@contextlib.contextmanager
def serve(source: str, store: pathlib.Path) -> Iterator[Any]:
    """What ``make_loaders`` is given for ``source``: a path, a store object, a URL, or a
    ``(URL, storage_options)`` pair (S3), valid inside the block."""
    if source == "local":
        yield str(store)
    elif source in LATENCY:
        yield LatencyStore(LocalStore(str(store), read_only=True), LATENCY[source])
    elif source == "http":
        with RangeHTTPServer(store.parent) as srv:
            yield srv.url_for(store.name)
    else:
        with MotoS3Server() as s3:
            import s3fs

            options = s3.storage_options
            fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
            bucket = f"bench-{os.getpid()}-{time.monotonic_ns()}"
            fs.mkdir(bucket)
            upload_dir(store, f"s3://{bucket}/{store.name}", options)
            yield (f"s3://{bucket}/{store.name}", options)


def time_officials(tree: pathlib.Path, kind: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    if kind == "static" and neuralpredictors_available():
        timing = in_child(time_neuralpredictors, tree, args)
        rows.append(official_row(timing, kind=kind, pipeline=NEURALPREDICTORS))
    timing = in_child(time_reference, tree, kind, args)
    rows.append(official_row(timing, kind=kind, pipeline=REFERENCE))
    for r in rows:
        print(f"{kind}: {r['pipeline']}: {r['samples_per_s']:.1f} samples/s", flush=True)
    return rows


def official_row(timing: dict[str, Any], *, kind: str, pipeline: str) -> dict[str, Any]:
    """The row of an official pipeline's run (one local process)."""
    return {**timing, "kind": kind, "pipeline": pipeline, "source": "local", "workers": 0}


def toolkit_row(
    timing: dict[str, Any], *, kind: str, source: str, workers: int, sample_bytes: int
) -> dict[str, Any]:
    """The row of a :func:`time_toolkit` run: its timing labelled with its configuration."""
    return {
        **timing,
        "kind": kind,
        "pipeline": "toolkit",
        "source": source,
        "workers": workers,
        "sample_bytes": sample_bytes,
    }


def with_ratios(
    before: list[dict[str, Any]], after: list[dict[str, Any]], toolkit: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows of one kind: the faster of each official pipeline's two runs, then the
    toolkit's rows, each with its ratio to the first official pipeline (``x_official``)."""
    officials = []
    for first, second in zip(before, after, strict=True):
        best = max(first, second, key=lambda r: r["samples_per_s"])
        best["runs_samples_per_s"] = [first["samples_per_s"], second["samples_per_s"]]
        officials.append(best)
    official = officials[0]
    rows = officials + toolkit
    for r in rows:
        r["x_official"] = r["samples_per_s"] / official["samples_per_s"]
        r["official"] = official["pipeline"]
    return rows


def bench_kind(kind: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The official pipelines are timed before and after the toolkit's rows; each keeps the
    faster of its two runs (a shared machine's load can only slow a run down), so that the
    ratios are not flattered by a slow official run."""
    tree, store = make_store(kind, args)
    tree_files, store_files = files_of(tree), files_of(store)
    warm(tree_files)
    before = time_officials(tree, kind, args)
    rows: list[dict[str, Any]] = []
    raw = raw_sample_bytes(store, kind, args)
    for source in args.sources:
        with serve(source, store) as url:
            for workers in args.workers:
                warm(store_files)
                timing = in_child(time_toolkit, url, kind, workers, args)
                row = toolkit_row(
                    timing, kind=kind, source=source, workers=workers, sample_bytes=raw
                )
                rows.append(row)
                print(
                    f"{kind}: {source}, {workers} workers: {row['samples_per_s']:.0f} samples/s",
                    flush=True,
                )
    warm(tree_files)
    after = time_officials(tree, kind, args)
    return with_ratios(before, after, rows)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| year | pipeline | source | workers | first batch s | samples/s, epoch 1 | "
        "samples/s, epoch 2 | MB/s | x official | read/sample | peak RSS MB (worker) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        year = "2022" if r["kind"] == "static" else "2023"
        first = f"{r['epoch1']['samples_per_s']:.0f}" if "epoch1" in r else ""
        read = ""
        if "read_bytes_per_sample" in r:
            read = (
                f"{r['read_bytes_per_sample'] / 1e3:.0f} kB "
                f"({r['read_bytes_per_sample'] / r['sample_bytes']:.2f}x)"
            )
        lines.append(
            f"| {year} | {r['pipeline']} | {r['source']} | {r['workers']} | "
            f"{r['first_batch_s']:.2f} | {first} | {r['samples_per_s']:.0f} | "
            f"{r['mb_per_s']:.0f} | {r['x_official']:.1f} | {read} | "
            f"{r['rss_mb']:.0f} ({r['workers_rss_mb']:.0f}) |"
        )
    return "\n".join(lines)


def targets(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for (kind, source), want in TARGETS.items():
        got = [
            r
            for r in rows
            if r["kind"] == kind
            and r["pipeline"] == "toolkit"
            and (source is None or r["source"] == source)
        ]
        if not got:
            continue
        best = max(got, key=lambda r: r["x_official"])
        year = "2022" if kind == "static" else "2023"
        where = source or "any source"
        ok = best["x_official"] >= want
        out.append(
            f"- {year} >= {want}x official ({where}): {'met' if ok else 'MISSED'} "
            f"(best {best['x_official']:.1f}x: {best['source']}, {best['workers']} workers)"
        )
    return out


def bar_label(row: dict[str, Any]) -> str:
    """A row's bar label: the pipeline, and for the toolkit its source and workers."""
    if row["pipeline"] != "toolkit":
        return row["pipeline"]
    workers = row["workers"]
    return f"toolkit, {row['source']}, {workers} worker{'s' * (workers != 1)}"


def figure(rows: list[dict[str, Any]], *, title: str | None = None) -> Any:
    """The table as bars: samples/s of epoch 2 per pipeline, source and workers, grouped by
    year, each with its ratio to the official pipeline of its year."""
    from sensorium_data.plotting import benchmark_bars

    return benchmark_bars(
        rows,
        value="samples_per_s",
        label=bar_label,
        group=lambda r: "2022 (static)" if r["kind"] == "static" else "2023 (dynamic)",
        reference=lambda r: r["pipeline"] == r["official"],
        unit="samples/s, epoch 2 (log scale; 2023: clips/s)",
        title=title or "Training loaders (in brackets: x the official pipeline)",
    )


def write_figure(rows: list[dict[str, Any]], json_path: pathlib.Path) -> pathlib.Path:
    """Save :func:`figure` as a PNG next to the JSON (same name, ``.png``); returns its path."""
    png = json_path.with_suffix(".png")
    figure(rows).savefig(png, dpi=100, bbox_inches="tight")
    return png


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = ["static", "dynamic"] if args.kind == "both" else [args.kind]
    command = "python -m benchmarks.dataloader" + "".join(
        " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    load_before = [round(x, 2) for x in os.getloadavg()]
    rows = [r for kind in kinds for r in bench_kind(kind, args)]
    info = machine()
    import torch

    info.update(torch=torch.__version__, load_average_before=load_before)
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    report = [
        "",
        markdown(rows),
        "",
        f"Command: `{command}`  ",
        f"Machine: {info['nproc']} cores, Python {info['python']}, numpy {info['numpy']}, "
        f"zarr {info['zarr']}, torch {info['torch']} ({info['platform']})  ",
        f"Load average before {load_before}, after {info['load_average']}.  ",
        f"Date: {date}. Warm page cache. Toolkit: train tier, 2022 batch 128, scale 0.25, "
        f"behaviour channels; 2023 batch 8, {loader_options('dynamic', args)['frames']} frames, "
        "behaviour channels. Epoch 1 includes the start (workers, store opening); the main "
        "samples/s and MB/s are epoch 2's. Official: one process, timed before and after the "
        "toolkit (the faster run kept), at most "
        f"{args.official_samples} samples (2023 a quarter); its first batch for the reference = "
        "first sample x batch size. MB = 10^6 bytes of returned tensors. read/sample: chunk "
        "bytes fetched per sample in epoch 2 (0 workers) and its ratio to the stored bytes of "
        "the sample's own values (2022: the 36x64 image, responses, behaviour, pupil; 2023: "
        "the clip's frames of every key). Peak RSS: the configuration's process (its largest "
        "worker).",
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
