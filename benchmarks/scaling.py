"""Scaling benchmark (issue 15): the toolkit on 1 and 2 processes of each engine it runs on.

- **Training, torch DDP** (gloo, CPU): ``sensorium-models train`` under ``torchrun`` with 1 and 2
  processes on a synthetic 2022 mouse, the same global batch; samples/s of all processes and
  per process (the median over the epochs after the first, from the run's log). The share of a
  step spent communicating: the same DDP steps timed with gradient synchronisation and without
  it (``no_sync``), in 2 processes.
- **Conversion, dask.distributed**: a 10-mouse synthetic 2023 release converted on a
  ``LocalCluster`` of 1 and 2 worker processes (one thread each); MB/s of source files.
- **Analysis, dask.distributed**: :func:`sensorium_data.analysis.store_summary` of the converted
  release (statistics recomputed, oracle correlations) on the same clusters.

A speed-up of 2 processes over 1 is what 2 machines (or 2 GPUs) would give, at best; this
machine has 2 cores, so each measurement with 2 processes uses all of it.

Run::

    python -m benchmarks.scaling            # about 8 minutes on 2 cores
    python -m benchmarks.scaling --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

import sensorium_data as sd
from sensorium_data.analysis import store_summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.scaling",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="small data: a smoke run")
    p.add_argument("--mice", type=int, default=10, help="2023 mice of the release")
    p.add_argument("--dynamic-trials", type=int, default=60)
    p.add_argument("--dynamic-neurons", type=int, default=500)
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--static-trials", type=int, default=2000)
    p.add_argument("--neurons", type=int, default=500)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=64, help="the global batch")
    p.add_argument("--workdir", default="/tmp/sensorium-bench-scaling")
    p.add_argument("--json", default=None, help="default benchmarks/results/scaling.json")
    args = p.parse_args(argv)
    if args.quick:
        args.mice, args.dynamic_trials, args.dynamic_neurons, args.frames = 2, 30, 20, 60
        args.static_trials, args.neurons, args.channels, args.epochs = 300, 20, 4, 2
    return args


def cluster(workers: int) -> Any:
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    )


def tree_bytes(paths: list[pathlib.Path]) -> int:
    return sum(f.stat().st_size for p in paths for f in p.rglob("*") if f.is_file())


# ----------------------------------------------------------------------------- dask


def dask_rows(args: argparse.Namespace, work: pathlib.Path) -> list[dict[str, Any]]:
    trees = work / f"release-{args.mice}x{args.dynamic_trials}x{args.dynamic_neurons}x{args.frames}"
    if not trees.is_dir() or not any(trees.iterdir()):
        print(f"synthesising a {args.mice}-mouse 2023 release", flush=True)
        sd.synthesize(
            trees,
            kind="dynamic",
            n_mice=args.mice,
            n_trials=args.dynamic_trials,
            n_neurons=args.dynamic_neurons,
            n_frames=args.frames,
            progress=True,
        )
    paths = sorted(p for p in trees.iterdir() if p.is_dir())
    size = tree_bytes(paths)
    rows = []
    for workers in (1, 2):
        store = work / f"release-{workers}.zarr"
        shutil.rmtree(store, ignore_errors=True)
        with cluster(workers) as local:
            address = local.scheduler_address
            rows.append(
                timed(
                    "conversion",
                    workers,
                    size,
                    sd.convert,
                    paths,
                    store,
                    scheduler=address,
                    progress=False,
                )
            )
            rows.append(timed("analysis", workers, size, store_summary, store, scheduler=address))
    return rows


def timed(
    work: str, workers: int, size: int, run: Any, *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """The row of one dask run: ``run(*args, **kwargs)`` on ``workers`` worker processes."""
    start = time.perf_counter()
    run(*args, **kwargs)
    seconds = time.perf_counter() - start
    print(f"{work}, {workers} worker(s): {seconds:.1f} s", flush=True)
    return {
        "engine": "dask.distributed",
        "work": work,
        "processes": workers,
        "seconds": round(seconds, 2),
        "MB_per_s": size / 1e6 / seconds,
        "source_MB": round(size / 1e6, 1),
    }


# ----------------------------------------------------------------------------- DDP


def ddp_rows(args: argparse.Namespace, work: pathlib.Path) -> list[dict[str, Any]]:
    store = sd.example_store(
        work / "static",
        kind="static",
        n_mice=1,
        n_trials=args.static_trials,
        n_neurons=args.neurons,
        competition=False,
    )
    rows = []
    for nproc in (1, 2):
        out = work / f"ddp-{nproc}"
        shutil.rmtree(out, ignore_errors=True)
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", "-m", "sensorium_models.cli", "train",
            "--store", str(store), "--model", "sensorium-sota",
            "--overrides", json.dumps({"hidden_channels": args.channels}),
            "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
            "--device", "cpu", "--out", str(out), "--quiet",
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(2 // nproc)}  # the 2 cores, either way
        subprocess.run(command, check=True, env=env, capture_output=True)
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        later = log[1:] or log
        total = float(np.median([h["samples_per_s"] for h in later]))
        rows.append(
            {
                "engine": "torch DDP (gloo)",
                "work": "training",
                "processes": nproc,
                "samples_per_s": total,
                "samples_per_s_per_process": total / nproc,
                "threads_per_process": 2 // nproc,
            }
        )
        print(f"training, {nproc} process(es): {total:.0f} samples/s", flush=True)
    share = allreduce_share(store, args)
    rows[-1]["allreduce_share_of_step"] = share
    print(f"all-reduce share of a 2-process step: {share:.1%}", flush=True)
    return rows


def _steps(rank: int, world: int, init: str, store: str, args: Any, out: str) -> None:
    """One rank: DDP steps of the real model and loaders, timed with and without sync."""
    import torch
    from torch import distributed as dist

    from sensorium_models.distributed import Process
    from sensorium_models.train_config import TrainConfig
    from sensorium_models.training import _build, mouse_infos, poisson_loss, train_loaders_of

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    infos = mouse_infos(store)
    net = _build("sensorium-sota", infos, {"hidden_channels": args.channels})
    cfg = TrainConfig(batch_size=args.batch_size, device="cpu").resolved("static")
    process = Process(rank=rank, world_size=world)
    ((mouse, loader),) = train_loaders_of(
        net, store, cfg, process, mice=list(infos), rank=rank, world_size=world
    ).items()
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-3)
    batches = [b for _, b in zip(range(12), loader, strict=False)]

    def run(sync: bool) -> float:
        start = time.perf_counter()
        for batch in batches:
            with contextlib.nullcontext() if sync else ddp.no_sync():
                rates = ddp(batch["images"], mouse=mouse)
                loss = poisson_loss(rates, batch["responses"]) + net.regularizer(mouse)
                loss.backward()
            opt.step()
            opt.zero_grad()
        dist.barrier()
        return (time.perf_counter() - start) / len(batches)

    run(True)  # warm-up
    synced = min(run(True) for _ in range(2))
    alone = min(run(False) for _ in range(2))
    if rank == 0:
        pathlib.Path(out).write_text(json.dumps({"synced": synced, "alone": alone}))
    dist.destroy_process_group()


def allreduce_share(store: pathlib.Path, args: argparse.Namespace) -> float:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        init = f"file://{tmp}/rendezvous"
        out = f"{tmp}/times.json"
        mp.spawn(_steps, args=(2, init, str(store), args, out), nprocs=2, join=True)
        times = json.loads(pathlib.Path(out).read_text())
    return max(0.0, (times["synced"] - times["alone"]) / times["synced"])


# ----------------------------------------------------------------------------- main


def plot(rows: list[dict[str, Any]], path: pathlib.Path) -> None:
    """Bars of the speed-up of each kind of work, 1 and 2 processes (needs matplotlib)."""
    try:
        from sensorium_data import plotting

        fig = plotting.benchmark_bars(
            rows,
            value="speedup",
            label=lambda r: f"{r['processes']} process{'es' if r['processes'] > 1 else ''}",
            group=lambda r: f"{r['work']} ({r['engine']})",
            reference=lambda r: r["processes"] == 1,
            title="Speed-up of 2 processes over 1 on 2 cores",
            log=False,
            unit="speed relative to 1 process",
        )
        fig.savefig(path, dpi=110)
    except ImportError:
        pass


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = pathlib.Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows = ddp_rows(args, work) + dask_rows(args, work)
    for engine_work in {(r["engine"], r["work"]) for r in rows}:
        pair = [r for r in rows if (r["engine"], r["work"]) == engine_work]
        key = "samples_per_s" if "samples_per_s" in pair[0] else "MB_per_s"
        one = next(r[key] for r in pair if r["processes"] == 1)
        for r in pair:
            r["speedup"] = r[key] / one
    out = pathlib.Path(
        args.json or f"benchmarks/results/scaling{'-quick' if args.quick else ''}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python -m benchmarks.scaling "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "date": datetime.date.today().isoformat(),
        "nproc": os.cpu_count(),
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    out.write_text(json.dumps(report, indent=1) + "\n")
    plot(rows, out.with_suffix(".png"))
    for r in rows:
        print(r)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
