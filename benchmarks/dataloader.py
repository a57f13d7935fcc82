"""Training-loader throughput: ``make_loaders`` over a store against the official pipeline.

What it measures, on a synthetic 2022 (``static``) and 2023 (``dynamic``) mouse:

- the toolkit: ``make_loaders(...)["train"]`` (2022: batch 128, normalised, ``scale=0.25``,
  ``include_behavior``; 2023: batch 8, ``frames=80``, normalised, ``include_behavior``), for
  ``num_workers`` 0 and 2 (``multiprocessing_context="fork"``), reading the store from local disk
  and over HTTP from :class:`tests.servers.RangeHTTPServer` with 0 and 20 ms latency per request.
  Per configuration: time to first batch (from ``iter(loader)``), then samples/s and MB/s (bytes
  of the returned tensors) over the next ``--batches`` batches (the first excluded);
- the official pipeline: the same samples built trial by trial with ``reference_sample`` from
  ``tests/official_reference.py`` (per-trial ``np.load`` + the kits' transforms; the repo's
  ``tests/`` folder is put on ``sys.path`` for it), one process (the official loaders cannot
  use workers), over ``--official-trials`` trials. Its statistics and ``config.json`` reads are
  cached (the official ``NeuroNormalizer`` reads them once, not per trial), and 2023 uses the
  SciPy >= 1.16 ``zoom`` shortcut at ``scale=1`` (no resampling), so the baseline is not slowed
  by the reference's own overheads.

Every toolkit figure is also given as a ratio to the official samples/s of the same year. Each
configuration runs in a forked child; peak RSS is that child's ``ru_maxrss`` (and its workers').
Page cache is warm (every file of the store or tree is read right before each run).

Trees come from :func:`benchmarks.convert.make_tree` (reused under ``--workdir``/trees); each is
converted once to ``--workdir``/stores/<tag>.zarr and reused.

Run::

    python -m benchmarks.dataloader              # 6000x8000 static, 240x8000x300 dynamic
    python -m benchmarks.dataloader --quick      # tiny smoke run, seconds
    python -m benchmarks.dataloader --batches 10 --official-trials 100
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import multiprocessing
import os
import pathlib
import resource
import shlex
import shutil
import sys
import time
from typing import Any

import numpy as np

from benchmarks.convert import add_data_arguments, apply_quick, machine, make_tree, warm
from sensorium_data.convert import convert
from sensorium_data.loaders import make_loaders

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
import official_reference
from official_reference import reference_sample
from servers import RangeHTTPServer

# the official pipeline reads statistics and config.json once, not per trial
official_reference._statistic = functools.lru_cache(None)(official_reference._statistic)
official_reference._links = functools.lru_cache(None)(official_reference._links)

SOURCES = (("local", None), ("http, 0 ms", 0.0), ("http, 20 ms", 0.02))
TARGETS = {("static", "local"): 50, ("static", "http, 20 ms"): 20, ("dynamic", None): 10}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.dataloader", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(p)
    p.add_argument("--batches", type=int, default=20, help="timed batches per configuration")
    p.add_argument("--official-trials", type=int, default=200)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--json", default="benchmarks/results/dataloader.json")
    args = p.parse_args(argv)
    apply_quick(args)
    if args.quick:
        args.batches, args.official_trials = 3, 20
    return args


def loader_options(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    if kind == "static":
        return dict(batch_size=128, scale=0.25, include_behavior=True)
    frames = 80 if args.frames >= 200 else args.frames // 4  # --quick clips are short
    return dict(batch_size=8, frames=frames, include_behavior=True)


def make_store(kind: str, args: argparse.Namespace) -> tuple[pathlib.Path, pathlib.Path]:
    tree = make_tree(kind, args)
    store = pathlib.Path(args.workdir) / "stores" / f"{tree.parent.name}.zarr"
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
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, kids


def in_child(fn: Any, *a: Any) -> dict[str, Any]:
    """Run ``fn(*a)`` in a forked child (its own peak RSS); return its dict."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)

    def target() -> None:
        try:
            out = fn(*a)
            out["rss_mb"], out["workers_rss_mb"] = peak_rss_mb()
            child.send(out)
        except BaseException as exc:
            child.send({"error": repr(exc)})
            raise

    proc = ctx.Process(target=target)
    proc.start()
    out = parent.recv()
    proc.join()
    if "error" in out:
        raise SystemExit(f"benchmark child failed: {out['error']}")
    return out


def nbytes(batch: dict[str, Any]) -> int:
    return sum(v.numel() * v.element_size() for v in batch.values())


def time_toolkit(url: str, kind: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    extra = dict(num_workers=workers)
    if workers:
        extra["multiprocessing_context"] = "fork"
    t0 = time.perf_counter()
    (loader,) = make_loaders(url, tiers=["train"], **loader_options(kind, args),
                             **extra)["train"].values()
    it = iter(loader)
    first = next(it)
    t_first = time.perf_counter() - t0
    samples = size = 0
    t1 = time.perf_counter()
    for _, batch in zip(range(args.batches), it, strict=False):
        samples += len(batch["trial"])
        size += nbytes(batch)
    seconds = time.perf_counter() - t1
    if samples == 0:  # the epoch was one batch long: time it whole
        samples, size, seconds = len(first["trial"]), nbytes(first), t_first
    del it
    return {"first_batch_s": t_first, "samples": samples, "seconds": seconds,
            "samples_per_s": samples / seconds, "mb_per_s": size / 1e6 / seconds}


def time_official(tree: pathlib.Path, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    opts = loader_options(kind, args)
    trials = np.flatnonzero(np.load(tree / "meta/trials/tiers.npy") == "train")
    trials = np.random.default_rng(0).permutation(trials)[: args.official_trials]
    kw: dict[str, Any]
    if kind == "static":
        kw = dict(scale=opts["scale"], include_behavior=True)
    else:
        kw = dict(scale=1.0, frames=opts["frames"], include_behavior=True,
                  random_state=np.random.RandomState(0), scipy_zoom_shortcut=True)
    t0 = time.perf_counter()
    size = 0
    for i, t in enumerate(trials):
        sample = reference_sample(tree, kind, int(t), **kw)
        size += sum(v.nbytes for v in sample.values())
        if i == 0:
            t_first = time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    return {"first_batch_s": t_first * opts["batch_size"], "samples": len(trials),
            "seconds": seconds, "samples_per_s": len(trials) / seconds,
            "mb_per_s": size / 1e6 / seconds}


def bench_kind(kind: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    tree, store = make_store(kind, args)
    tree_files, store_files = files_of(tree), files_of(store)
    rows = []
    warm(tree_files)
    official = in_child(time_official, tree, kind, args)
    official.update(kind=kind, pipeline="official (np.load per trial)", source="local",
                    workers=0)
    rows.append(official)
    print(f"{kind}: official {official['samples_per_s']:.1f} samples/s", flush=True)
    for source, latency in SOURCES:
        for workers in args.workers:
            warm(store_files)
            if latency is None:
                row = in_child(time_toolkit, str(store), kind, workers, args)
            else:
                with RangeHTTPServer(store.parent, latency=latency) as srv:
                    row = in_child(time_toolkit, srv.url_for(store.name), kind, workers, args)
            row.update(kind=kind, pipeline="toolkit", source=source, workers=workers)
            rows.append(row)
            print(f"{kind}: {source}, {workers} workers: {row['samples_per_s']:.0f} samples/s",
                  flush=True)
    for r in rows:
        r["x_official"] = r["samples_per_s"] / official["samples_per_s"]
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| year | pipeline | source | workers | first batch s | samples/s | MB/s | "
             "x official | peak RSS MB (workers) |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        year = "2022" if r["kind"] == "static" else "2023"
        lines.append(
            f"| {year} | {r['pipeline']} | {r['source']} | {r['workers']} | "
            f"{r['first_batch_s']:.2f} | {r['samples_per_s']:.1f} | {r['mb_per_s']:.1f} | "
            f"{r['x_official']:.1f} | {r['rss_mb']:.0f} ({r['workers_rss_mb']:.0f}) |")
    return "\n".join(lines)


def targets(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for (kind, source), want in TARGETS.items():
        got = [r for r in rows if r["kind"] == kind and r["pipeline"] == "toolkit"
               and (source is None or r["source"] == source)]
        if not got:
            continue
        best = max(got, key=lambda r: r["x_official"])
        worst = min(got, key=lambda r: r["x_official"])
        year = "2022" if kind == "static" else "2023"
        where = source or "every source"
        ok = worst["x_official"] >= want if source is None else best["x_official"] >= want
        out.append(f"- {year} >= {want}x official ({where}, best of workers"
                   f"{'; worst configuration' if source is None else ''}): "
                   f"{'met' if ok else 'MISSED'} (best {best['x_official']:.1f}x, "
                   f"worst {worst['x_official']:.1f}x)")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = ["static", "dynamic"] if args.kind == "both" else [args.kind]
    command = "python -m benchmarks.dataloader" + "".join(
        " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    load_before = [round(x, 2) for x in os.getloadavg()]
    rows = [r for kind in kinds for r in bench_kind(kind, args)]
    info = machine()
    import torch

    info.update(torch=torch.__version__, load_average_before=load_before)
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    report = [
        "", markdown(rows), "",
        f"Command: `{command}`  ",
        f"Machine: {info['nproc']} cores, Python {info['python']}, numpy {info['numpy']}, "
        f"zarr {info['zarr']}, torch {info['torch']} ({info['platform']})  ",
        f"Load average before {load_before}, after {info['load_average']}.  ",
        f"Date: {date}. Warm page cache. Toolkit: {args.batches} timed batches after the first "
        f"(2022 batch 128, scale 0.25, behaviour channels; 2023 batch 8, "
        f"{loader_options('dynamic', args)['frames']} frames, behaviour channels); official: "
        f"{args.official_trials} trials with reference_sample, one process; its first batch = "
        "first sample x batch size. MB = 10^6 bytes of returned tensors. Peak RSS: the "
        "configuration's process (its largest worker).", "",
        "Targets:", *targets(rows),
    ]
    print("\n".join(report))
    out = pathlib.Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": command, "date": date, "machine": info,
                               "page_cache": "warm", "rows": rows, "targets": targets(rows),
                               "markdown": markdown(rows)}, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
