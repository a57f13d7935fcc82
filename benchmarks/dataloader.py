"""Training-loader throughput: ``make_loaders`` against the official loaders and the limit.

What it measures, in one run, on a synthetic 2022 (``static``) and 2023 (``dynamic``) mouse
(2022: the train tier in batches of 128, normalised, ``scale=0.25``, behaviour channels; 2023:
batches of 8 clips of 80 frames, normalised, behaviour channels):

- the official loaders as their users run them, one process, their cache on: 2022 the real
  neuralpredictors 0.3.0 ``FileTreeDataset`` (default ``use_cache=True``) with the kit's
  transforms (``pip install -e ".[bench]"``), 2023 neuralpredictors at HEAD
  ``MovieFileTreeDataset`` with the transforms the 2023 kit's ``mouse_video_loader`` builds
  (``--neuralpredictors-head``: a folder holding neuralpredictors HEAD's ``neuralpredictors``
  package; without one, the leaner reference of ``tests/official_reference.py`` stands in);
  epoch 1 (files read) and epoch 2 (from the cache) over the same trials, epoch 2 reported;
- the machine's limit: a ``torch.index_select`` gather of the same batches (2023: the same
  80-frame windows) from pre-normalised float32 arrays in RAM, no layout work;
- the toolkit: ``make_loaders(...)["train"]`` streaming with 0 and 2 workers (and with 0 from
  the same mouse converted with ``clevel=0``, whose rows are read straight into the batch), in
  memory (``in_memory=True``), and device-resident (``device="cpu"``; ``"cuda"`` too when a GPU
  is present), from local disk; ``--sources`` adds remote rows for streaming (a store adding
  20 or 50 ms to every request, HTTP from :class:`tests.servers.RangeHTTPServer`, a moto S3
  server on 127.0.0.1);
- per row: time to first batch (from making the loader), samples/s of epoch 1 and epoch 2
  (reported), the ratio to the official loader's epoch 2 and the share of the limit, chunk
  bytes read per sample (streaming, 0 workers) and their ratio to the sample's own stored
  bytes, and peak RSS.

Each configuration runs in a spawned child; peak RSS is that child's (``VmHWM``) and its
largest worker's. Page cache is warm (every file of the store or tree is read right before each
run). Trees come from :func:`benchmarks.convert.make_tree` (reused under ``--workdir``/trees);
each is converted once to ``--workdir``/stores/<tag>.zarr and reused.

Run::

    python -m benchmarks.dataloader              # 6000x8000 static, 240x8000x300 dynamic
    python -m benchmarks.dataloader --quick      # tiny smoke run, seconds
    python -m benchmarks.dataloader --kind static --sources local "local +20 ms" http
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
from sensorium_data.store.schema import ChunkOptions

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
import official_reference
from official_reference import reference_sample
from servers import MotoS3Server, RangeHTTPServer, upload_dir

# the official pipeline reads statistics and config.json once, not per trial
official_reference._statistic = functools.lru_cache(None)(official_reference._statistic)
official_reference._links = functools.lru_cache(None)(official_reference._links)

SOURCES = ("local", "local +20 ms", "local +50 ms", "http", "s3 (moto)")
UNCOMPRESSED = "local, clevel 0"  # the same mouse converted without compression
LATENCY = {"local +20 ms": 0.02, "local +50 ms": 0.05}
MODES = ("streaming", "in memory", "device cpu", "device cuda")
NEURALPREDICTORS = "official (neuralpredictors 0.3.0, cached)"
KIT_2023 = "official (2023 kit, neuralpredictors HEAD, cached)"
REFERENCE = "reference (np.load per trial)"
LIMIT = "limit (in-RAM gather)"
LIMIT_EPOCHS = 6  # the limit is the fastest of epochs 2.. (it is the run most shaken by load)
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
        default=1024,
        help="2022 train trials the official loader runs two epochs over (2023: every one)",
    )
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="streaming rows")
    p.add_argument("--sources", nargs="+", default=["local"], choices=SOURCES)
    p.add_argument(
        "--neuralpredictors-head",
        help="folder with neuralpredictors HEAD's package (the 2023 kit's loader); default: "
        "<workdir>/neuralpredictors-head if it exists",
    )
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


def make_store(
    kind: str, args: argparse.Namespace, *, clevel: int | None = None
) -> tuple[pathlib.Path, pathlib.Path]:
    """The tree and its store (``clevel``: another compression level than the default)."""
    tree = make_tree(kind, args)
    tag = "" if clevel is None else f"-clevel{clevel}"
    store = pathlib.Path(args.workdir) / "stores" / f"{tree.parent.name}-{STORE_LAYOUT}{tag}.zarr"
    done = store.with_suffix(".done")
    if not done.exists():
        print(f"converting {tree.parent.name} -> {store} (once; later runs reuse it)")
        if store.exists():
            shutil.rmtree(store)
        chunking = None if clevel is None else ChunkOptions(clevel=clevel)
        convert([str(tree)], str(store), chunking=chunking, num_workers=2, progress=False)
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


#: Passes every pipeline makes; the reported throughput is the fastest after the first (short
#: epochs on a shared 2-core machine vary by tens of percent from one pass to the next).
EPOCHS = 4


def _epochs(loader: Any, t0: float, count: Any, epochs: int = EPOCHS) -> dict[str, Any]:
    """Time ``epochs`` passes over ``loader`` (the first from ``t0``, the loader's making);
    ``epoch1`` is the first, ``epoch2`` the fastest of the others."""
    out: dict[str, Any] = {}
    passes = []
    for epoch in range(1, epochs + 1):
        t_start = time.perf_counter() if epoch > 1 else t0
        samples = size = 0
        for i, batch in enumerate(loader):
            if epoch == 1 and i == 0:
                out["first_batch_s"] = time.perf_counter() - t0
            samples += count(batch)
            size += nbytes(batch)
        seconds = time.perf_counter() - t_start
        passes.append(
            {
                "samples": samples,
                "seconds": seconds,
                "samples_per_s": samples / seconds,
                "mb_per_s": size / 1e6 / seconds,
            }
        )
    out["epoch1"] = passes[0]
    out["epoch2"] = max(passes[1:] or passes, key=lambda p: p["samples_per_s"])
    out["samples_per_s"] = out["epoch2"]["samples_per_s"]
    out["mb_per_s"] = out["epoch2"]["mb_per_s"]
    out["epochs_samples_per_s"] = [p["samples_per_s"] for p in passes]
    return out


def time_toolkit(
    url: Any, kind: str, mode: str, workers: int, args: argparse.Namespace
) -> dict[str, Any]:
    # aiohttp sessions left to the garbage collector in exiting workers are not a result
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    extra: dict[str, Any] = dict(num_workers=workers)
    if workers:
        extra.update(multiprocessing_context="fork", persistent_workers=True)
    if mode == "streaming":
        extra.update(in_memory=False)
    elif mode == "in memory":
        extra.update(in_memory=True)
    elif mode.startswith("device"):
        extra.update(device=mode.split()[1], memory_budget=2**36)
    storage = {}
    if isinstance(url, tuple):
        url, storage = url
    t0 = time.perf_counter()
    (loader,) = make_loaders(
        url, tiers=["train"], storage_options=storage or None, **loader_options(kind, args), **extra
    )["train"].values()

    def count(batch: Any) -> int:
        return len(batch["trial"])

    first = _epochs(loader, t0, count, epochs=1)
    before = loader.dataset.bytes_read
    rest = _epochs(loader, time.perf_counter(), count, epochs=EPOCHS - 1)
    out = {**rest, "first_batch_s": first["first_batch_s"], "epoch1": first["epoch1"]}
    out["epoch2"] = max([rest["epoch1"], rest["epoch2"]], key=lambda p: p["samples_per_s"])
    out["samples_per_s"] = out["epoch2"]["samples_per_s"]
    out["mb_per_s"] = out["epoch2"]["mb_per_s"]
    out["epochs_samples_per_s"] = first["epochs_samples_per_s"] + rest["epochs_samples_per_s"]
    if workers == 0 and mode == "streaming":
        samples = first["epoch1"]["samples"] * (EPOCHS - 1)  # every epoch has the same batches
        out["read_bytes_per_sample"] = (loader.dataset.bytes_read - before) / samples
    return out


def time_limit(store: pathlib.Path, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """The machine's limit for the same batches: ``torch.index_select`` of each from
    pre-normalised float32 arrays in RAM (2023: 80-frame windows of the same trials, one slice
    copy each), no layout work (no behaviour channels, no video transpose)."""
    import torch

    (loader,) = make_loaders(str(store), tiers=["train"], **loader_options(kind, args))[
        "train"
    ].values()
    batch = next(iter(loader))
    ds = loader.dataset
    n = len(ds)
    g = torch.Generator().manual_seed(0)
    if kind == "static":
        shapes = {k: tuple(v.shape[1:]) for k, v in batch.items() if k != "trial"}
        shapes["images"] = (1, *shapes["images"][1:])  # the stored channel, not the extras
        arrays = {k: torch.rand((n, *shape), generator=g) for k, shape in shapes.items()}
    else:
        frames = loader_options(kind, args)["frames"]
        arrays = {
            k: torch.rand((n, *a.shape[1:]), generator=g) for k, a in ds.opened.arrays.items()
        }
    order = [torch.as_tensor(b) for b in loader.batch_sampler]
    out: dict[str, Any] = {"first_batch_s": 0.0}
    for epoch in range(1, LIMIT_EPOCHS + 1):
        samples = size = 0
        t0 = time.perf_counter()
        for index in order:
            if kind == "static":
                got = [torch.index_select(a, 0, index) for a in arrays.values()]
            else:  # each window one slice copy (faster here than unfold + advanced indexing)
                starts = torch.randint(0, arrays["responses"].shape[-1] - frames, (len(index),))
                got = []
                for a in arrays.values():
                    batch = torch.empty((len(index), *a.shape[1:-1], frames))
                    for j, (i, t) in enumerate(zip(index.tolist(), starts.tolist(), strict=True)):
                        batch[j] = a[i, ..., t : t + frames]
                    got.append(batch)
            samples += len(index)
            size += sum(t.numel() * 4 for t in got)
        seconds = time.perf_counter() - t0
        out[f"epoch{epoch}"] = {
            "samples": samples,
            "seconds": seconds,
            "samples_per_s": samples / seconds,
            "mb_per_s": size / 1e6 / seconds,
        }
    best = max(range(2, LIMIT_EPOCHS + 1), key=lambda e: out[f"epoch{e}"]["samples_per_s"])
    out["epoch2"] = out[f"epoch{best}"]  # the fastest pass after the first: the limit
    out["samples_per_s"] = out["epoch2"]["samples_per_s"]
    out["mb_per_s"] = out["epoch2"]["mb_per_s"]
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


def _shadow(tree: pathlib.Path, args: argparse.Namespace) -> pathlib.Path:
    """A shadow folder of the tree: neuralpredictors writes config.json into a tree without one."""
    shadow = pathlib.Path(args.workdir) / "neuralpredictors" / tree.name
    shadow.mkdir(parents=True, exist_ok=True)
    for part in ("data", "meta", "config.json"):
        if (tree / part).exists() and not (shadow / part).exists():
            (shadow / part).symlink_to(tree / part)
    return shadow


def time_neuralpredictors(tree: pathlib.Path, args: argparse.Namespace) -> dict[str, Any]:
    """The 2022 kit's loader: FileTreeDataset (its default cache on) + NeuroNormalizer,
    AddBehaviorAsChannels, ScaleInputs(0.25), ToTensor(cuda=False), batches of 128 of random
    train trials; two epochs over the same ``--official-samples`` trials."""
    import torch

    shim_collections()
    from neuralpredictors.data.datasets import FileTreeDataset
    from neuralpredictors.data.transforms import (
        AddBehaviorAsChannels,
        NeuroNormalizer,
        ScaleInputs,
        ToTensor,
    )

    shadow = _shadow(tree, args)
    t0 = time.perf_counter()
    dat = FileTreeDataset(str(shadow), "images", "responses", "behavior", "pupil_center")
    dat.transforms.extend(
        [NeuroNormalizer(dat), AddBehaviorAsChannels(), ScaleInputs(scale=0.25), ToTensor(False)]
    )
    train = np.flatnonzero(dat.trial_info.tiers == "train")
    train = np.random.default_rng(0).permutation(train)[: args.official_samples]
    sampler = torch.utils.data.SubsetRandomSampler(
        train, generator=torch.Generator().manual_seed(0)
    )
    loader = torch.utils.data.DataLoader(dat, sampler=sampler, batch_size=128)
    return _epochs(loader, t0, lambda b: b.images.shape[0])


def head_path(args: argparse.Namespace) -> pathlib.Path | None:
    """The folder holding neuralpredictors HEAD's package, if there is one."""
    path = pathlib.Path(
        args.neuralpredictors_head or pathlib.Path(args.workdir) / "neuralpredictors-head"
    )
    return path if (path / "neuralpredictors" / "data").is_dir() else None


def time_kit_2023(tree: pathlib.Path, args: argparse.Namespace) -> dict[str, Any]:
    """The 2023 kit's loader as ``mouse_video_loader`` builds it (ecker-lab/sensorium_2023,
    with ``include_pupil_centers=False``, ``scale=1``): MovieFileTreeDataset (its default cache
    on) of neuralpredictors HEAD, NeuroNormalizer, Subsample, CutVideos, the channel-order
    changes, Subsequence(80 frames, random offset), ExpandChannels, AddBehaviorAsChannels,
    ScaleInputs(1), ToTensor; batches of 8 over the train tier, two epochs."""
    import torch

    sys.path.insert(0, str(head_path(args)))
    from neuralpredictors.data.datasets import MovieFileTreeDataset
    from neuralpredictors.data.transforms import (
        AddBehaviorAsChannels,
        ChangeChannelsOrder,
        CutVideos,
        ExpandChannels,
        NeuroNormalizer,
        ScaleInputs,
        Subsample,
        Subsequence,
        ToTensor,
    )

    keys = ["videos", "responses", "behavior"]
    frames = loader_options("dynamic", args)["frames"]
    shadow = _shadow(tree, args)
    t0 = time.perf_counter()
    dat = MovieFileTreeDataset(str(shadow), *keys)
    idx = np.arange(len(dat.neurons.cell_motor_coordinates))
    dat.transforms.extend(
        [
            NeuroNormalizer(dat, exclude=None, in_name="videos"),
            Subsample(idx, target_index=0),
            CutVideos(max_frame=None, frame_axis={k: -1 for k in keys}, target_groups=keys),
            ChangeChannelsOrder((2, 0, 1), in_name="videos"),
            ChangeChannelsOrder((1, 0), in_name="responses"),
            ChangeChannelsOrder((1, 0), in_name="behavior"),
            Subsequence(frames=frames, channel_first=(), offset=-1),
            ChangeChannelsOrder((1, 0), in_name="responses"),
            ExpandChannels("videos"),
            ChangeChannelsOrder((1, 0), in_name="behavior"),
            AddBehaviorAsChannels("videos"),
            ScaleInputs(scale=1, in_name="videos", channel_axis=-1),
            ToTensor(False),
        ]
    )
    train = np.flatnonzero(dat.trial_info.tiers == "train")
    sampler = torch.utils.data.SubsetRandomSampler(
        train, generator=torch.Generator().manual_seed(0)
    )
    loader = torch.utils.data.DataLoader(dat, sampler=sampler, batch_size=8)
    return _epochs(loader, t0, lambda b: b.videos.shape[0])


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


def time_official(tree: pathlib.Path, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """The official loader of ``kind`` as its users run it, or the reference without it."""
    if kind == "static" and neuralpredictors_available():
        row = official_row(in_child(time_neuralpredictors, tree, args), kind=kind)
        row["pipeline"] = NEURALPREDICTORS
    elif kind == "dynamic" and head_path(args) is not None:
        row = official_row(in_child(time_kit_2023, tree, args), kind=kind)
        row["pipeline"] = KIT_2023
    else:
        row = official_row(in_child(time_reference, tree, kind, args), kind=kind)
        row["pipeline"] = REFERENCE
    first = row.get("epoch1", {}).get("samples_per_s")
    print(
        f"{kind}: {row['pipeline']}: {row['samples_per_s']:.1f} samples/s"
        + (f" (epoch 1: {first:.1f})" if first else ""),
        flush=True,
    )
    return row


def official_row(timing: dict[str, Any], *, kind: str) -> dict[str, Any]:
    """The row of an official pipeline's run (one local process)."""
    return {**timing, "kind": kind, "source": "local", "workers": 0, "mode": "files"}


def toolkit_row(
    timing: dict[str, Any], *, kind: str, source: str, mode: str, workers: int, sample_bytes: int
) -> dict[str, Any]:
    """The row of a :func:`time_toolkit` run: its timing labelled with its configuration."""
    return {
        **timing,
        "kind": kind,
        "pipeline": "toolkit",
        "source": source,
        "mode": mode,
        "workers": workers,
        "sample_bytes": sample_bytes,
    }


def with_ratios(
    before: dict[str, Any], after: dict[str, Any], limit: dict[str, Any], toolkit: list[dict]
) -> list[dict[str, Any]]:
    """The rows of one kind: the faster of the official loader's two runs, the limit, the
    toolkit's rows, each with its ratio to the official loader (``x_official``) and its share
    of the limit (``of_limit``)."""
    official = max(before, after, key=lambda r: r["samples_per_s"])
    official["runs_samples_per_s"] = [before["samples_per_s"], after["samples_per_s"]]
    rows = [official, limit, *toolkit]
    for r in rows:
        r["x_official"] = r["samples_per_s"] / official["samples_per_s"]
        r["of_limit"] = r["samples_per_s"] / limit["samples_per_s"]
        r["official"] = official["pipeline"]
    return rows


def modes() -> list[str]:
    import torch

    return [m for m in MODES if m != "device cuda" or torch.cuda.is_available()]


def bench_kind(kind: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The official loader is timed before and after the toolkit's rows and keeps the faster
    run (a shared machine's load can only slow a run down), so that no ratio is flattered by a
    slow official run."""
    tree, store = make_store(kind, args)
    tree_files, store_files = files_of(tree), files_of(store)
    warm(tree_files)
    before = time_official(tree, kind, args)
    limit_before = in_child(time_limit, store, kind, args)  # timed again after, the faster kept
    rows: list[dict[str, Any]] = []
    raw = raw_sample_bytes(store, kind, args)
    configs = [("local", "streaming", w) for w in args.workers]
    if "local" in args.sources:
        configs.append((UNCOMPRESSED, "streaming", 0))
    configs += [("local", m, 0) for m in modes() if m != "streaming"]
    configs += [(s, "streaming", w) for s in args.sources if s != "local" for w in args.workers]
    if "local" not in args.sources:
        configs = [c for c in configs if c[0] != "local" or c[1] != "streaming"]
    for source, mode, workers in configs:
        here, files = store, store_files
        if source == UNCOMPRESSED:
            here = make_store(kind, args, clevel=0)[1]
            files = files_of(here)
        with serve("local" if source == UNCOMPRESSED else source, here) as url:
            warm(files)
            timing = in_child(time_toolkit, url, kind, mode, workers, args)
        row = toolkit_row(
            timing, kind=kind, source=source, mode=mode, workers=workers, sample_bytes=raw
        )
        rows.append(row)
        print(
            f"{kind}: {source}, {mode}, {workers} workers: {row['samples_per_s']:.0f} samples/s",
            flush=True,
        )
    warm(store_files)
    limit = max(
        [limit_before, in_child(time_limit, store, kind, args)], key=lambda r: r["samples_per_s"]
    )
    limit.update(kind=kind, pipeline=LIMIT, source="RAM", mode="gather", workers=0)
    print(f"{kind}: {LIMIT}: {limit['samples_per_s']:.0f} samples/s", flush=True)
    warm(tree_files)
    after = time_official(tree, kind, args)
    return with_ratios(before, after, limit, rows)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| year | pipeline | source | mode | workers | first batch s | samples/s, epoch 1 | "
        "samples/s, epochs 2+ | x official | of limit | read/sample | peak RSS MB (worker) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        year = "2022" if r["kind"] == "static" else "2023"
        first = f"{r['epoch1']['samples_per_s']:,.0f}" if "epoch1" in r else ""
        read = ""
        if "read_bytes_per_sample" in r:
            read = (
                f"{r['read_bytes_per_sample'] / 1e3:,.0f} kB "
                f"({r['read_bytes_per_sample'] / r['sample_bytes']:.2f}x)"
            )
        rss = f"{r['rss_mb']:.0f} ({r['workers_rss_mb']:.0f})" if "rss_mb" in r else ""
        lines.append(
            f"| {year} | {r['pipeline']} | {r['source']} | {r['mode']} | {r['workers']} | "
            f"{r['first_batch_s']:.2f} | {first} | {r['samples_per_s']:,.0f} | "
            f"{r['x_official']:.1f} | {r['of_limit']:.0%} | {read} | {rss} |"
        )
    return "\n".join(lines)


#: The issue's targets: (kind, mode, what, value).
TARGETS = (
    ("static", "in memory", "of_limit", 0.5),
    ("static", "streaming", "of_limit", 0.15),
    ("dynamic", "streaming", "x_official", 10.0),
)


def targets(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for kind, mode, what, want in TARGETS:
        got = [r for r in rows if r["kind"] == kind and r.get("mode") == mode]
        local = ("local", UNCOMPRESSED)
        got = [r for r in got if r["pipeline"] == "toolkit" and r["source"] in local]
        if not got:
            continue
        best = max(got, key=lambda r: r[what])
        year = "2022" if kind == "static" else "2023"
        shown = f"{want:.0%} of the limit" if what == "of_limit" else f"{want:.0f}x official"
        value = f"{best[what]:.0%}" if what == "of_limit" else f"{best[what]:.1f}x"
        ok = best[what] >= want
        out.append(
            f"- {year} {mode} >= {shown}: {'met' if ok else 'MISSED'} "
            f"({value}, {best['workers']} workers)"
        )
    for r in rows:
        if r["kind"] == "dynamic" and "read_bytes_per_sample" in r:
            ratio = r["read_bytes_per_sample"] / r["sample_bytes"]
            out.append(
                f"- 2023 streaming reads <= 1.5x the clip's bytes: "
                f"{'met' if ratio <= 1.5 else 'MISSED'} ({ratio:.2f}x, {r['source']})"
            )
    return out


def bar_label(row: dict[str, Any]) -> str:
    """A row's bar label: the pipeline, and for the toolkit its source, mode and workers."""
    if row["pipeline"] != "toolkit":
        return row["pipeline"]
    workers = row["workers"]
    where = "" if row["source"] == "local" else f"{row['source']}, "
    return f"toolkit, {where}{row['mode']}, {workers} worker{'s' * (workers != 1)}"


def figure(rows: list[dict[str, Any]], *, title: str | None = None) -> Any:
    """The table as bars: samples/s of epoch 2 per configuration, grouped by year, each with
    its ratio to the official loader of its year."""
    from sensorium_data.plotting import benchmark_bars

    return benchmark_bars(
        rows,
        value="samples_per_s",
        label=bar_label,
        group=lambda r: "2022 (static)" if r["kind"] == "static" else "2023 (dynamic)",
        reference=lambda r: r["pipeline"] == r["official"],
        unit="samples/s, epoch 2 (log scale; 2023: clips/s)",
        title=title or "Training loaders (in brackets: x the official loader, cached)",
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
        f"Date: {date}. Warm page cache. Train tier; 2022 batch 128, scale 0.25, behaviour "
        f"channels; 2023 batch 8, {loader_options('dynamic', args)['frames']} frames, "
        "behaviour channels. Epoch 1 includes making the loader (the store opened, in-memory "
        f"and device arrays read); the reported samples/s are the fastest of epochs 2-{EPOCHS}. "
        "Official loaders: one process, cache on, epoch 1 reads the files and the later ones "
        "the cache, timed before and "
        f"after the toolkit (the faster run kept); 2022 over {args.official_samples} train "
        "trials. Limit: index_select of the same batches from float32 arrays in RAM, the fastest "
        "epoch of two runs (before and after the toolkit). "
        "read/sample: chunk bytes fetched per sample in epoch 2 (streaming, 0 workers) and its "
        "ratio to the stored bytes of the sample's own values. Peak RSS: the configuration's "
        "process (its largest worker).",
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
